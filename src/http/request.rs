//! The life of an HTTP request on a client connection: wait, read the head, run the phases,
//! finalize, then keepalive, lingering close or close.
//!
//! nginx: src/http/ngx_http_request.c — `ngx_http_init_connection`,
//! `ngx_http_wait_request_handler`, `ngx_http_process_request_line`/`_headers`,
//! `ngx_http_process_request`, `ngx_http_request_handler`, `ngx_http_run_posted_requests`,
//! `ngx_http_finalize_request`, `ngx_http_finalize_connection`, `ngx_http_set_keepalive`,
//! `ngx_http_set_lingering_close`, `ngx_http_terminate_request`, `ngx_http_close_request`,
//! `ngx_http_free_request`.
//!
//! Differs from nginx:
//! - httparse parses the request line and the headers in one call, so nginx's two handlers
//!   `process_request_line` and `process_request_headers` are one, `process_request_headers`;
//!   it re-parses from the start of the buffer on every read (`Again` until complete), which is
//!   bounded by `large_client_header_buffers`.
//! - a request's head lives in one buffer that grows to a large buffer when needed (nginx chains
//!   several large buffers and copies the partial line).
//! - the reference count `r->main->count` and the finalize logic are kept as in nginx, because
//!   subrequests and the upstream rely on them.

use std::sync::Arc;

use super::core_module::{find_location, find_virtual_server};
use super::parse::{self, ParseError, RequestHead};
use super::{LocConf, SrvConf};
use crate::core::buf::{Buf, Chain};
use crate::core::connection::{ConnId, Ev, Owner, RequestId, Stream};
use crate::core::cycle::Cycle;
use crate::core::step::{HandlerRc, Step};
use crate::event::{self, connect::close_connection, posted};
use crate::os::io::{self, Recv};

/// A request-level event handler. nginx: `r->read_event_handler` / `r->write_event_handler`.
pub type RequestHandler = fn(&mut Cycle, RequestId);

/// A cleanup run when the request is freed or terminated. nginx: `ngx_http_cleanup_t`.
pub type Cleanup = fn(&mut Cycle, RequestId);

/// The request method. nginx: `r->method` (NGX_HTTP_GET ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// GET
    Get,
    /// HEAD
    Head,
    /// POST
    Post,
    /// PUT
    Put,
    /// DELETE
    Delete,
    /// OPTIONS
    Options,
    /// PATCH
    Patch,
    /// Anything else (a valid token).
    Other,
}

impl Method {
    fn from_bytes(m: &[u8]) -> Method {
        match m {
            b"GET" => Method::Get,
            b"HEAD" => Method::Head,
            b"POST" => Method::Post,
            b"PUT" => Method::Put,
            b"DELETE" => Method::Delete,
            b"OPTIONS" => Method::Options,
            b"PATCH" => Method::Patch,
            _ => Method::Other,
        }
    }
}

/// Request headers nginx gives a meaning to. nginx: `ngx_http_headers_in_t`.
#[derive(Clone, Debug, Default)]
pub struct HeadersIn {
    /// `Host` value (lowercased, without port), as bytes.
    pub host: Vec<u8>,
    /// `Content-Length`. nginx: `content_length_n`.
    pub content_length_n: Option<u64>,
    /// `Transfer-Encoding: chunked`.
    pub chunked: bool,
    /// `Connection: close`.
    pub connection_close: bool,
    /// `Connection: keep-alive`.
    pub connection_keep_alive: bool,
    /// `Expect: 100-continue`.
    pub expect_continue: bool,
}

/// Response headers. nginx: `ngx_http_headers_out_t`.
#[derive(Clone, Debug, Default)]
pub struct HeadersOut {
    /// Status code. nginx: `headers_out.status`.
    pub status: u16,
    /// Verbatim status line (from an upstream), e.g. "200 OK". nginx: `status_line`.
    pub status_line: Option<String>,
    /// `Content-Length`, when known. nginx: `content_length_n`.
    pub content_length_n: Option<u64>,
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// `Location`.
    pub location: Option<String>,
    /// `Last-Modified` (already formatted).
    pub last_modified: Option<String>,
    /// Do not add `Server` (an upstream sent one that is passed through).
    pub no_server: bool,
    /// Do not add `Date` (likewise).
    pub no_date: bool,
    /// Every other header, in order. nginx: `headers_out.headers`.
    pub headers: Vec<(String, String)>,
}

/// Body reading state. See `body.rs`.
pub use super::body::RequestBody;

/// One HTTP request (main request or subrequest). nginx: `ngx_http_request_t`.
pub struct Request {
    /// This request's own id.
    pub id: RequestId,
    /// The client connection (shared by subrequests). nginx: `r->connection`.
    pub connection: ConnId,
    /// The main request. nginx: `r->main`.
    pub main: RequestId,
    /// The parent of a subrequest. nginx: `r->parent`.
    pub parent: Option<RequestId>,
    /// References held on the main request. nginx: `r->main->count`.
    pub count: u32,
    /// The virtual server. nginx: `r->srv_conf`.
    pub srv: Arc<SrvConf>,
    /// The matched location. nginx: `r->loc_conf`.
    pub loc: Arc<LocConf>,
    /// Index of the listening address (for `find_virtual_server`).
    pub addr: usize,
    /// The buffer holding the request head (and maybe body bytes / the next pipelined request
    /// after `head.len`). nginx: `r->header_in`.
    pub header_in: Buf,
    /// Large header buffers taken so far (at most `large_client_header_buffers` N).
    /// nginx: `hc->nbusy`.
    pub large_header_bufs: usize,
    /// Parsed head: ranges into `header_in`.
    pub head: RequestHead,
    /// The head has been parsed completely.
    pub head_done: bool,
    /// Method.
    pub method: Method,
    /// 1000 * major + minor. nginx: `r->http_version`.
    pub http_version: u16,
    /// The normalised, decoded path. nginx: `r->uri`.
    pub uri: Vec<u8>,
    /// The query string, without `?`. nginx: `r->args`.
    pub args: Vec<u8>,
    /// Headers with meaning.
    pub headers_in: HeadersIn,
    /// Response headers.
    pub headers_out: HeadersOut,
    /// Keep the connection after this request. nginx: `r->keepalive`.
    pub keepalive: bool,
    /// Unread client data may remain: close lingering. nginx: `r->lingering_close`.
    pub lingering_close: bool,
    /// Send the header only (HEAD, 204, 304). nginx: `r->header_only`.
    pub header_only: bool,
    /// The header went through the filters. nginx: `r->header_sent`.
    pub header_sent: bool,
    /// The response is chunked. nginx: `r->chunked`.
    pub chunked: bool,
    /// Output not yet written to the socket (main request only). nginx: `r->out`.
    pub out: Chain,
    /// nginx: `r->read_event_handler`.
    pub read_event_handler: RequestHandler,
    /// nginx: `r->write_event_handler`.
    pub write_event_handler: RequestHandler,
    /// The upstream context. nginx: `r->upstream`.
    pub upstream: Option<crate::upstream::UpstreamId>,
    /// The request body being read or read. nginx: `r->request_body`.
    pub request_body: Option<Box<RequestBody>>,
    /// A body is being discarded. nginx: `r->discard_body`.
    pub discard_body: bool,
    /// Monotonic ms at start. nginx: `r->start_msec`.
    pub start_msec: u64,
    /// Wall clock ms at start (`$request_time`, `$msec`).
    pub start_unix_ms: u64,
    /// Next phase handler to run. nginx: `r->phase_handler`.
    pub phase_handler: usize,
    /// The request was finalized and its response is complete. nginx: `r->done`.
    pub done: bool,
    /// The access log line was written. nginx: `r->logged`.
    pub logged: bool,
    /// Response header bytes (for `$body_bytes_sent`). nginx: `r->header_size`.
    pub header_size: u64,
    /// Bytes of the request read (head + body). nginx: `r->request_length`.
    pub request_length: u64,
    /// An internal redirect or subrequest. nginx: `r->internal`.
    pub internal: bool,
    /// Cleanups, run when the request ends or is terminated. nginx: `r->cleanup`.
    pub cleanup: Vec<Cleanup>,
    /// Cleanups run after the access log line (state the log reads). nginx: pool cleanups.
    pub pool_cleanup: Vec<Cleanup>,
    /// Per-module request contexts. nginx: `r->ctx[]`.
    pub ctx: Vec<Box<dyn std::any::Any>>,
    /// While reading the head (for `stub_status` "Reading").
    pub reading: bool,
    /// `c.sent` when the request started (for `$bytes_sent`).
    pub sent_start: u64,
    /// The request arrived pipelined behind another (`$pipe`).
    pub pipelined: bool,
}

impl Request {
    /// The module context of type `T`. nginx: `ngx_http_get_module_ctx()`.
    pub fn ctx<T: 'static>(&mut self) -> Option<&mut T> {
        self.ctx.iter_mut().find_map(|c| c.downcast_mut::<T>())
    }
    /// A request header by name (case-insensitive), the first if repeated.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        let buf = &self.header_in.mem;
        self.head
            .headers
            .iter()
            .find(|(n, _)| buf[n.clone()].eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| &buf[v.clone()])
    }
    /// Bytes of the request target as sent. nginx: `r->unparsed_uri`.
    pub fn unparsed_uri(&self) -> &[u8] {
        self.header_in.mem.get(self.head.target.clone()).unwrap_or(b"")
    }
    /// The method as sent. nginx: `r->method_name`.
    pub fn method_name(&self) -> &[u8] {
        self.header_in.mem.get(self.head.method.clone()).unwrap_or(b"")
    }
    /// The whole request line. nginx: `r->request_line`.
    ///
    /// For a head that did not parse (a bad request, a timeout mid-head), nginx's
    /// `$request` is the line as far as it came: from the first byte of the request to CR, LF
    /// or the end of the data. nginx: `ngx_http_variable_request_line()`.
    pub fn request_line(&self) -> &[u8] {
        let b = &self.header_in.mem;
        if self.head.len == 0 {
            let data = b.get(self.header_in.pos..self.header_in.last).unwrap_or(b"");
            let start = data.iter().position(|&c| c != b'\r' && c != b'\n').unwrap_or(data.len());
            let line = &data[start..];
            let end = line.iter().position(|&c| c == b'\r' || c == b'\n').unwrap_or(line.len());
            return &line[..end];
        }
        let start = self.head.method.start;
        let line = b.get(start..self.head.len.max(start)).unwrap_or(b"");
        let end = line.iter().position(|&c| c == b'\r' || c == b'\n').unwrap_or(0);
        &line[..end]
    }
}

fn noop(_: &mut Cycle, _: RequestId) {}

/// nginx: `ngx_http_request_empty_handler`.
pub fn empty_handler(_: &mut Cycle, _: RequestId) {}

/// A new client connection. nginx: `ngx_http_init_connection()`.
pub fn init_connection(cy: &mut Cycle, cid: ConnId) {
    let timeout = default_server(cy, cid).map(|s| s.core.client_header_timeout()).unwrap_or(60_000);
    let nodelay = default_server(cy, cid).map(|s| s.loc.core.tcp_nodelay.unwrap_or(true)).unwrap_or(true);
    let Some(c) = cy.conns.get_mut(cid) else { return };
    c.read.handler = wait_request_handler;
    c.write.handler = crate::core::connection::empty_handler;
    c.action = "waiting for request";
    if nodelay {
        if let Stream::Tcp(s) = &c.stream {
            let _ = s.set_nodelay(true);
        }
    }
    event::add_timer(cy, Ev { c: cid, write: false }, timeout);
}

fn default_server(cy: &Cycle, cid: ConnId) -> Option<Arc<SrvConf>> {
    let c = cy.conns.get(cid)?;
    let http = cy.conf.http.as_ref()?;
    let li = cy.listening.get(c.listening)?.servers;
    let a = http.addrs.get(li)?;
    a.servers.get(a.default).cloned()
}

/// Waits for the first bytes of a request (also the keepalive wait).
/// nginx: `ngx_http_wait_request_handler()` and `ngx_http_keepalive_handler()`.
pub fn wait_request_handler(cy: &mut Cycle, ev: Ev) {
    let cid = ev.c;
    let Some(c) = cy.conns.get_mut(cid) else { return };
    if c.read.timedout {
        log::info!("*{} client timed out while {}", c.number, c.action);
        return close_client(cy, cid);
    }
    if cy.exiting && c.idle || c.close {
        // a keepalive wait during a graceful stop, or a slot wanted for a new connection
        return close_client(cy, cid);
    }
    let size = default_server(cy, cid).map(|s| s.core.client_header_buffer_size()).unwrap_or(1024);
    let Some(c) = cy.conns.get_mut(cid) else { return };
    let pipelined = c.buffer.as_ref().is_some_and(|b| !b.is_empty());
    let mut b = match c.buffer.take() {
        Some(b) if !b.is_empty() => b, // pipelined bytes of the next request
        other => {
            let mut b = match other {
                Some(b) => b,
                None => cy.bufs.get(size),
            };
            b.reset();
            match io::recv(c, b.free_space()) {
                Recv::Data(n) => b.last += n,
                Recv::Again => {
                    // nginx frees the buffer of an idle connection: 10k idle keepalive
                    // connections then cost no buffer memory.
                    cy.bufs.put(b);
                    return;
                }
                Recv::Eof => {
                    cy.bufs.put(b);
                    return close_client(cy, cid);
                }
                Recv::Error(e) => {
                    log::info!("*{} recv() failed ({e}) while {}", c.number, c.action);
                    cy.bufs.put(b);
                    return close_client(cy, cid);
                }
            }
            b
        }
    };
    b.compact();
    c.idle = false;
    c.action = "reading client request line";
    let Some(rid) = create_request(cy, cid, b, pipelined) else { return };
    if let Some(c) = cy.conns.get_mut(cid) {
        c.read.handler = process_request_headers_handler;
    }
    process_request_headers(cy, rid);
}

fn close_client(cy: &mut Cycle, cid: ConnId) {
    cy.stats.active = cy.stats.active.saturating_sub(1);
    close_connection(cy, cid);
}

/// Creates the request object for a connection. nginx: `ngx_http_create_request()`.
fn create_request(cy: &mut Cycle, cid: ConnId, header_in: Buf, pipelined: bool) -> Option<RequestId> {
    let srv = default_server(cy, cid)?;
    let li = cy.conns.get(cid).map(|c| c.listening)?;
    let addr = cy.listening.get(li).map(|l| l.servers).unwrap_or(0);
    let timeout = srv.core.client_header_timeout();
    let id = cy.requests.vacant_id();
    let r = Request {
        id,
        connection: cid,
        main: id,
        parent: None,
        count: 1,
        loc: srv.loc.clone(),
        srv,
        addr,
        header_in,
        large_header_bufs: 0,
        head: RequestHead::default(),
        head_done: false,
        method: Method::Get,
        http_version: 1000,
        uri: Vec::new(),
        args: Vec::new(),
        headers_in: HeadersIn::default(),
        headers_out: HeadersOut::default(),
        keepalive: false,
        lingering_close: false,
        header_only: false,
        header_sent: false,
        chunked: false,
        out: Chain::new(),
        read_event_handler: noop,
        write_event_handler: noop,
        upstream: None,
        request_body: None,
        discard_body: false,
        start_msec: cy.times.msec,
        start_unix_ms: cy.times.unix_ms,
        phase_handler: 0,
        done: false,
        logged: false,
        header_size: 0,
        request_length: 0,
        internal: false,
        cleanup: Vec::new(),
        pool_cleanup: Vec::new(),
        ctx: Vec::new(),
        reading: true,
        sent_start: 0,
        pipelined,
    };
    let rid = cy.requests.insert(r);
    cy.stats.requests += 1;
    if let Some(c) = cy.conns.get_mut(cid) {
        c.owner = Owner::Client(Some(rid));
        c.requests += 1;
        let sent = c.sent;
        if let Some(r) = cy.requests.get_mut(rid) {
            r.sent_start = sent;
        }
    }
    if !event::timer_set(cy, Ev { c: cid, write: false }) {
        event::add_timer(cy, Ev { c: cid, write: false }, timeout);
    }
    Some(rid)
}

/// The read handler while the head is incomplete.
fn process_request_headers_handler(cy: &mut Cycle, ev: Ev) {
    if let Some(Owner::Client(Some(rid))) = cy.conns.get(ev.c).map(|c| c.owner) {
        process_request_headers(cy, rid);
    }
}

/// Reads and parses the request head until it is complete. nginx:
/// `ngx_http_process_request_line()` + `ngx_http_process_request_headers()`.
fn process_request_headers(cy: &mut Cycle, rid: RequestId) {
    loop {
        let Some(r) = cy.requests.get_mut(rid) else { return };
        let cid = r.connection;
        if cy.conns.get(cid).is_some_and(|c| c.read.timedout) {
            if let Some(c) = cy.conns.get(cid) {
                log::info!("*{} client timed out while {}", c.number, c.action);
            }
            return close_request_now(cy, rid, 408);
        }
        match parse::parse_request_head(r.header_in.data(), &mut r.head) {
            Ok(Step::Done(())) => break, // here: head complete
            Ok(Step::Again) => {}
            Err(e) => return bad_request(cy, rid, e),
        }
        // here: head incomplete — make room, then read more.
        if r.header_in.is_full() {
            if let Err(status) = alloc_large_header_buffer(cy, rid) {
                return finalize_bad_head(cy, rid, status);
            }
        }
        match read_request_header(cy, rid) {
            ReadHead::Data => continue,
            ReadHead::Again => return,
            ReadHead::Closed => return close_request_now(cy, rid, 400),
        }
    }
    process_request_header(cy, rid);
}

enum ReadHead {
    Data,
    Again,
    Closed,
}

/// Reads more of the head. nginx: `ngx_http_read_request_header()`.
fn read_request_header(cy: &mut Cycle, rid: RequestId) -> ReadHead {
    let Cycle { requests, conns, .. } = cy;
    let Some(r) = requests.get_mut(rid) else { return ReadHead::Closed };
    let Some(c) = conns.get_mut(r.connection) else { return ReadHead::Closed };
    match io::recv(c, r.header_in.free_space()) {
        Recv::Data(n) => {
            r.header_in.last += n;
            ReadHead::Data
        }
        Recv::Again => ReadHead::Again,
        Recv::Eof => {
            log::info!("*{} client prematurely closed connection while {}", c.number, c.action);
            ReadHead::Closed
        }
        Recv::Error(e) => {
            log::info!("*{} recv() failed ({e}) while {}", c.number, c.action);
            ReadHead::Closed
        }
    }
}

/// Moves the line being read into a new large buffer, as nginx does when the head buffer is
/// full: the request line may not reach a large buffer's size (414), nor may a header line
/// (494 → "Request Header Or Cookie Too Large"), and a request takes at most N large buffers.
///
/// rginx keeps the head in one contiguous buffer, so "a new large buffer" is the same memory
/// grown to end `size` bytes after the start of the current line: the line in progress then
/// has exactly the room nginx's copy would have, and the limits fall where nginx's do.
///
/// nginx: `ngx_http_alloc_large_header_buffer()`.
fn alloc_large_header_buffer(cy: &mut Cycle, rid: RequestId) -> Result<(), u16> {
    let Some(r) = cy.requests.get_mut(rid) else { return Err(400) };
    let (num, size) = r.srv.core.large_client_header_buffers();
    let data = r.header_in.data();
    // The current line starts after the last LF; while the request line is still incomplete,
    // at the request (leading empty lines are skipped, as nginx does).
    let request_line = !data.iter().skip_while(|&&b| b == b'\r' || b == b'\n').any(|&b| b == b'\n');
    let line_start = if request_line {
        data.iter().position(|&b| b != b'\r' && b != b'\n').unwrap_or(data.len())
    } else {
        data.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1)
    };
    let status = if request_line { 414 } else { 494 };
    if data.len() - line_start >= size || r.large_header_bufs >= num {
        if status == 494 {
            if let Some(c) = cy.conns.get(r.connection) {
                // nginx logs the start of the offending line.
                let line = &data[line_start..data.len().min(line_start + 1748)];
                log::info!(
                    "*{} client sent too long header line: \"{}...\" while reading client request headers",
                    c.number,
                    String::from_utf8_lossy(line)
                );
            }
        }
        return Err(status);
    }
    r.large_header_bufs += 1;
    // Not from the pool: these sizes vary with every request, and each would become a class.
    let mut nb = Buf { mem: vec![0; line_start + size], ..Buf::default() };
    nb.append(data);
    let old = std::mem::replace(&mut r.header_in, nb);
    cy.bufs.put(old);
    Ok(())
}

fn bad_request(cy: &mut Cycle, rid: RequestId, e: ParseError) {
    if let Some(r) = cy.requests.get(rid) {
        if let Some(c) = cy.conns.get(r.connection) {
            log::info!("*{} {} while {}", c.number, e, c.action);
        }
    }
    finalize_bad_head(cy, rid, e.status());
}

/// Answers a request whose head could not be read: nginx uses HTTP/1.0 defaults for it and
/// closes afterwards.
fn finalize_bad_head(cy: &mut Cycle, rid: RequestId, status: u16) {
    if let Some(r) = cy.requests.get_mut(rid) {
        r.keepalive = false;
        r.lingering_close = true;
        r.reading = false;
        r.head_done = true;
        r.head.len = 0;
        if status == 414 {
            if let Some(c) = cy.conns.get(r.connection) {
                log::info!("*{} client sent too long URI while {}", c.number, c.action);
            }
        }
    }
    start_request_processing(cy, rid);
    finalize_request(cy, rid, HandlerRc::Status(status));
}

/// Installs the request-phase handlers and stops the header timer.
fn start_request_processing(cy: &mut Cycle, rid: RequestId) {
    let Some(r) = cy.requests.get_mut(rid) else { return };
    let cid = r.connection;
    r.reading = false;
    r.read_event_handler = block_reading;
    r.write_event_handler = noop;
    event::del_timer(cy, Ev { c: cid, write: false });
    if let Some(c) = cy.conns.get_mut(cid) {
        c.read.handler = request_handler;
        c.write.handler = request_handler;
        c.action = "processing request";
    }
}

/// Interprets the parsed head: method, URI, Host, framing headers, keepalive.
/// nginx: `ngx_http_process_request_uri()`, the `ngx_http_headers_in[]` handlers and
/// `ngx_http_process_request_header()`.
fn process_request_header(cy: &mut Cycle, rid: RequestId) {
    let Some(r) = cy.requests.get_mut(rid) else { return };
    r.head_done = true;
    r.http_version = r.head.version;
    r.method = Method::from_bytes(r.method_name());
    r.request_length = r.head.len as u64;
    if let Err((status, msg)) = process_uri(r).and_then(|_| process_headers(r)) {
        if let Some(c) = cy.conns.get(r.connection) {
            log::info!("*{} {} while {}", c.number, msg, c.action);
        }
        return finalize_bad_head(cy, rid, status);
    }
    // Select the virtual server by Host. nginx: `ngx_http_set_virtual_server()`.
    if let Some(http) = cy.conf.http.as_ref() {
        if let Some(a) = http.addrs.get(r.addr) {
            r.srv = find_virtual_server(a, &r.headers_in.host);
            r.loc = r.srv.loc.clone();
        }
    }
    r.keepalive = match r.http_version {
        v if v >= 1001 => !r.headers_in.connection_close,
        _ => r.headers_in.connection_keep_alive,
    };
    // here: the body (if any) and the next pipelined request start at head.len
    r.header_in.pos += r.head.len;
    start_request_processing(cy, rid);
    process_request(cy, rid);
}

fn process_uri(r: &mut Request) -> Result<(), (u16, &'static str)> {
    let Request { header_in, head, uri, args, headers_in, .. } = r;
    let Some(target) = header_in.mem.get(head.target.clone()) else {
        return Err((400, "client sent invalid request"));
    };
    if target.first() != Some(&b'/') {
        // absolute-form ("http://host/path") is accepted by nginx: take host and path from it
        if let Some(rest) = target.strip_prefix(b"http://").or_else(|| target.strip_prefix(b"https://")) {
            let slash = rest.iter().position(|&b| b == b'/').unwrap_or(rest.len());
            headers_in.host = host_without_port(&rest[..slash]);
            let path: &[u8] = if slash == rest.len() { b"/" } else { &rest[slash..] };
            return set_uri(uri, args, path);
        }
        return Err((400, "client sent invalid request"));
    }
    set_uri(uri, args, target)
}

/// Splits the target into `r.uri` (decoded, normalised when needed) and `r.args`.
/// nginx: `ngx_http_process_request_uri()`.
fn set_uri(uri: &mut Vec<u8>, args: &mut Vec<u8>, target: &[u8]) -> Result<(), (u16, &'static str)> {
    let (path, a, complex) = parse::split_target(target);
    args.clear();
    if let Some(a) = a {
        args.extend_from_slice(a);
    }
    uri.clear();
    if complex {
        parse::normalize_uri(path, uri).map_err(|_| (400, "client sent invalid request"))?;
    } else {
        uri.extend_from_slice(path);
    }
    Ok(())
}

fn host_without_port(h: &[u8]) -> Vec<u8> {
    let end = if h.first() == Some(&b'[') {
        h.iter().position(|&b| b == b']').map(|p| p + 1).unwrap_or(h.len())
    } else {
        h.iter().position(|&b| b == b':').unwrap_or(h.len())
    };
    let mut v = h[..end].to_ascii_lowercase();
    while v.last() == Some(&b'.') {
        v.pop();
    }
    v
}

/// nginx: `ngx_http_validate_host()`: no '/', no control bytes, spaces or DEL, no "..", no
/// leading '.'.
fn valid_host(h: &[u8]) -> bool {
    !h.is_empty()
        && h[0] != b'.'
        && !h.windows(2).any(|w| w == b"..")
        && !h.iter().any(|&b| b == b'/' || b <= 0x20 || b == 0x7f)
}

fn process_headers(r: &mut Request) -> Result<(), (u16, &'static str)> {
    let mut host_seen = !r.headers_in.host.is_empty();
    let mut cl: Option<u64> = None;
    let mut te: Option<Vec<u8>> = None;
    for (n, v) in &r.head.headers {
        let name = &r.header_in.mem[n.clone()];
        let value = &r.header_in.mem[v.clone()];
        if name.eq_ignore_ascii_case(b"host") {
            if host_seen && r.head.target.start < r.header_in.mem.len() && r.header_in.mem[r.head.target.start] == b'/'
            {
                return Err((400, "client sent duplicate host header"));
            }
            if !host_seen {
                let h = host_without_port(value);
                if !valid_host(&h) {
                    return Err((400, "client sent invalid host header"));
                }
                r.headers_in.host = h;
            }
            host_seen = true;
        } else if name.eq_ignore_ascii_case(b"content-length") {
            if cl.is_some() {
                return Err((400, "client sent duplicate header line: \"Content-Length\""));
            }
            let s = std::str::from_utf8(value).ok().filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()));
            match s.and_then(|s| s.parse::<u64>().ok()).filter(|&n| n <= i64::MAX as u64) {
                Some(n) => cl = Some(n),
                None => return Err((400, "client sent invalid \"Content-Length\" header")),
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            if te.is_some() {
                return Err((400, "client sent duplicate header line: \"Transfer-Encoding\""));
            }
            te = Some(value.to_vec());
        } else if name.eq_ignore_ascii_case(b"connection") {
            for tok in value.split(|&b| b == b',') {
                let t = tok.trim_ascii();
                if t.eq_ignore_ascii_case(b"close") {
                    r.headers_in.connection_close = true;
                } else if t.eq_ignore_ascii_case(b"keep-alive") {
                    r.headers_in.connection_keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case(b"expect") {
            r.headers_in.expect_continue = value.eq_ignore_ascii_case(b"100-continue");
        }
    }
    if !host_seen && r.http_version >= 1001 {
        return Err((400, "client sent HTTP/1.1 request without \"Host\" header"));
    }
    r.headers_in.content_length_n = cl;
    if let Some(te) = te {
        if r.http_version < 1001 {
            return Err((400, "client sent HTTP/1.0 request with \"Transfer-Encoding\" header"));
        }
        if te.eq_ignore_ascii_case(b"chunked") {
            if cl.is_some() {
                return Err((400, "client sent \"Content-Length\" and \"Transfer-Encoding\" headers at the same time"));
            }
            r.headers_in.chunked = true;
        } else {
            return Err((501, "client sent unknown \"Transfer-Encoding\""));
        }
    }
    Ok(())
}

/// Starts processing a complete request. nginx: `ngx_http_process_request()` →
/// `ngx_http_handler()`.
pub fn process_request(cy: &mut Cycle, rid: RequestId) {
    if let Some(r) = cy.requests.get_mut(rid) {
        r.phase_handler = 0;
        r.write_event_handler = core_run_phases;
    }
    // NGX_HTTP_SERVER_REWRITE_PHASE, then NGX_HTTP_FIND_CONFIG_PHASE.
    let n = cy.conf.http.as_ref().map_or(0, |h| h.phases.server_rewrite.len());
    for i in 0..n {
        let Some(h) = cy.conf.http.as_ref().and_then(|h| h.phases.server_rewrite.get(i).copied()) else { break };
        match h(cy, rid) {
            HandlerRc::Declined => {}
            rc => {
                finalize_request(cy, rid, rc);
                return run_posted_requests(cy);
            }
        }
    }
    find_config(cy, rid);
    core_run_phases(cy, rid);
    run_posted_requests(cy);
}

/// Matches the location and applies its limits. nginx: `ngx_http_core_find_config_phase()`
/// + `ngx_http_update_location_config()`.
pub fn find_config(cy: &mut Cycle, rid: RequestId) {
    let Some(r) = cy.requests.get_mut(rid) else { return };
    let loc = find_location(&r.srv.loc.locations, &r.uri).cloned();
    if let Some(l) = loc {
        r.loc = l;
    }
    update_location_config(cy, rid);
}

/// Re-derives per-location request state. nginx: `ngx_http_update_location_config()`.
pub fn update_location_config(cy: &mut Cycle, rid: RequestId) {
    let (now, exiting) = (cy.times.msec, cy.exiting);
    let Some(r) = cy.requests.get_mut(rid) else { return };
    let Some(c) = cy.conns.get(r.connection) else { return };
    let lc = &r.loc.core;
    if r.keepalive {
        // A worker that is shutting down closes after this request: say so in the header.
        if exiting
            || lc.keepalive_timeout() == 0
            || u64::from(c.requests) >= lc.keepalive_requests()
            || now.saturating_sub(c.start_msec) > lc.keepalive_time()
        {
            r.keepalive = false;
        }
    }
}

/// Runs the phases from `r.phase_handler` on: rewrite, access, precontent, then content.
/// nginx: `ngx_http_core_run_phases()`.
pub fn core_run_phases(cy: &mut Cycle, rid: RequestId) {
    loop {
        let Some(r) = cy.requests.get(rid) else { return };
        let i = r.phase_handler;
        let Some(http) = cy.conf.http.as_ref() else { return };
        let ph = &http.phases;
        let (nr, na, np) = (ph.rewrite.len(), ph.access.len(), ph.precontent.len());
        if i == 0 {
            // The find-config phase refuses a too large Content-Length before the rewrite
            // phase runs, so a location's `return` cannot bypass `client_max_body_size`.
            if let Err(status) = check_body_size(cy, rid) {
                return finalize_request(cy, rid, HandlerRc::Status(status));
            }
        }
        let Some(http) = cy.conf.http.as_ref() else { return };
        let ph = &http.phases;
        let h = if i < nr {
            ph.rewrite[i]
        } else if i < nr + na {
            ph.access[i - nr]
        } else if i < nr + na + np {
            ph.precontent[i - nr - na]
        } else {
            return content_phase(cy, rid);
        };
        match h(cy, rid) {
            HandlerRc::Declined => {
                if let Some(r) = cy.requests.get_mut(rid) {
                    r.phase_handler += 1;
                }
            }
            HandlerRc::Ok if i >= nr && i < nr + na => {
                // access granted: skip the other access handlers
                if let Some(r) = cy.requests.get_mut(rid) {
                    r.phase_handler = nr + na;
                }
            }
            HandlerRc::Done => return,
            rc => return finalize_request(cy, rid, rc),
        }
    }
}

/// nginx checks `client_max_body_size` against `Content-Length` in the find-config phase.
fn check_body_size(cy: &Cycle, rid: RequestId) -> Result<(), u16> {
    let Some(r) = cy.requests.get(rid) else { return Ok(()) };
    let max = r.loc.core.client_max_body_size();
    match r.headers_in.content_length_n {
        Some(n) if max > 0 && n > max => {
            if let Some(c) = cy.conns.get(r.connection) {
                log::error!("*{} client intended to send too large body: {} bytes, client: {}", c.number, n, peer(c));
            }
            Err(413)
        }
        _ => Ok(()),
    }
}

fn peer(c: &crate::core::connection::Connection) -> String {
    c.peer.map(|p| p.ip().to_string()).unwrap_or_default()
}

/// Runs the location's content handler. nginx: `ngx_http_core_content_phase()`.
fn content_phase(cy: &mut Cycle, rid: RequestId) {
    let Some(r) = cy.requests.get_mut(rid) else { return };
    r.write_event_handler = empty_handler;
    let h = r.loc.core.handler;
    let rc = match h {
        Some(h) => h(cy, rid),
        None => HandlerRc::Status(404),
    };
    finalize_request(cy, rid, rc);
}

/// Dispatches a client connection's events to the current request.
/// nginx: `ngx_http_request_handler()`.
pub fn request_handler(cy: &mut Cycle, ev: Ev) {
    let Some(Owner::Client(Some(rid))) = cy.conns.get(ev.c).map(|c| c.owner) else { return };
    let Some(r) = cy.requests.get(rid) else { return };
    let h = if ev.write { r.write_event_handler } else { r.read_event_handler };
    h(cy, rid);
    run_posted_requests(cy);
}

/// Runs requests posted during this event. nginx: `ngx_http_run_posted_requests()`.
pub fn run_posted_requests(cy: &mut Cycle) {
    while let Some(rid) = cy.posted_requests.pop_front() {
        if let Some(r) = cy.requests.get(rid) {
            let h = r.write_event_handler;
            h(cy, rid);
        }
    }
}

/// Posts a request to have its write handler run. nginx: `ngx_http_post_request()`.
pub fn post_request(cy: &mut Cycle, rid: RequestId) {
    cy.posted_requests.push_back(rid);
}

/// A read handler that does nothing while the response is produced; it notices a client that
/// went away only through later write errors, like nginx's `ngx_http_block_reading` with
/// level-triggered events off.
pub fn block_reading(_: &mut Cycle, _: RequestId) {}

/// Ends a request with a result code. nginx: `ngx_http_finalize_request()`.
pub fn finalize_request(cy: &mut Cycle, rid: RequestId, rc: HandlerRc) {
    let Some(r) = cy.requests.get_mut(rid) else { return };
    let cid = r.connection;
    if rc == HandlerRc::Done {
        return finalize_connection(cy, rid);
    }
    let c_error = cy.conns.get(cid).is_none_or(|c| c.error);
    match rc {
        HandlerRc::Error | HandlerRc::Status(408) | HandlerRc::Status(499) => return terminate_request(cy, rid, rc),
        _ if c_error => return terminate_request(cy, rid, rc),
        HandlerRc::Status(444) => {
            r.keepalive = false;
            return terminate_request(cy, rid, rc);
        }
        HandlerRc::Status(s) if s >= 300 || s == 204 && !r.header_sent => {
            if r.header_sent {
                // The response already started: nothing can be said any more; close.
                return terminate_request(cy, rid, rc);
            }
            event::del_timer(cy, Ev { c: cid, write: false });
            event::del_timer(cy, Ev { c: cid, write: true });
            let rc2 = super::special_response::special_response_handler(cy, rid, s);
            return finalize_request(cy, rid, rc2);
        }
        _ => {}
    }
    // here: the handler is done producing output (NGX_OK or a 1xx/2xx status already sent)
    let Some(r) = cy.requests.get_mut(rid) else { return };
    if r.main != rid {
        // Subrequests are finished by their owner (see subrequest.rs, issue 5).
        return;
    }
    if !r.out.is_empty() {
        // Output still buffered: wait for the socket. nginx: `ngx_http_set_write_handler()`.
        r.write_event_handler = writer;
        let timeout = r.loc.core.send_timeout();
        if !event::timer_set(cy, Ev { c: cid, write: true }) {
            event::add_timer(cy, Ev { c: cid, write: true }, timeout);
        }
        return;
    }
    r.done = true;
    r.write_event_handler = empty_handler;
    event::del_timer(cy, Ev { c: cid, write: true });
    finalize_connection(cy, rid);
}

/// Keeps writing buffered output. nginx: `ngx_http_writer()`.
pub fn writer(cy: &mut Cycle, rid: RequestId) {
    let Some(r) = cy.requests.get(rid) else { return };
    let cid = r.connection;
    if let Some(c) = cy.conns.get_mut(cid) {
        if c.write.timedout {
            c.write.timedout = false;
            c.error = true;
            log::info!("*{} client timed out while sending response to client", c.number);
            return finalize_request(cy, rid, HandlerRc::Status(408));
        }
    }
    let mut empty = Chain::new();
    let rc = super::output_filter(cy, rid, &mut empty);
    match rc {
        Ok(Step::Again) => {
            let timeout = cy.requests.get(rid).map(|r| r.loc.core.send_timeout()).unwrap_or(60_000);
            if !event::timer_set(cy, Ev { c: cid, write: true }) {
                event::add_timer(cy, Ev { c: cid, write: true }, timeout);
            }
        }
        Ok(Step::Done(())) => {
            if let Some(r) = cy.requests.get_mut(rid) {
                r.write_event_handler = empty_handler;
            }
            finalize_request(cy, rid, HandlerRc::Ok);
        }
        Err(_) => finalize_request(cy, rid, HandlerRc::Error),
    }
}

/// Drops a reference and decides the connection's fate. nginx: `ngx_http_finalize_connection()`.
fn finalize_connection(cy: &mut Cycle, rid: RequestId) {
    let Some(r) = cy.requests.get(rid) else { return };
    let main = r.main;
    let Some(mr) = cy.requests.get(main) else { return };
    if mr.count != 1 {
        if mr.discard_body {
            if let Some(mr) = cy.requests.get_mut(main) {
                mr.read_event_handler = super::body::discarded_request_body_handler;
            }
        }
        return close_request(cy, main, 0);
    }
    let (keepalive, linger) = (mr.keepalive && !cy.exiting, needs_lingering(cy, main));
    if keepalive && !linger_data_blocks_keepalive(cy, main) {
        return set_keepalive(cy, main);
    }
    if linger {
        return set_lingering_close(cy, main);
    }
    close_request(cy, main, 0);
}

fn linger_data_blocks_keepalive(cy: &Cycle, rid: RequestId) -> bool {
    // A body left unread makes the connection unusable for the next request.
    cy.requests.get(rid).is_some_and(|r| r.lingering_close)
}

fn needs_lingering(cy: &Cycle, rid: RequestId) -> bool {
    let Some(r) = cy.requests.get(rid) else { return false };
    let Some(c) = cy.conns.get(r.connection) else { return false };
    !c.error && (r.lingering_close || c.read.ready || !r.header_in.is_empty() && !r.keepalive)
}

/// Closes a request immediately (no response): header timeout, early EOF.
fn close_request_now(cy: &mut Cycle, rid: RequestId, status: u16) {
    if let Some(r) = cy.requests.get_mut(rid) {
        r.headers_out.status = status;
        r.count = 1;
        r.keepalive = false;
    }
    close_request(cy, rid, status);
}

/// Aborts everything about a request and closes its connection. nginx:
/// `ngx_http_terminate_request()`.
pub fn terminate_request(cy: &mut Cycle, rid: RequestId, rc: HandlerRc) {
    let Some(r) = cy.requests.get(rid) else { return };
    let main = r.main;
    run_cleanup(cy, main);
    let Some(mr) = cy.requests.get_mut(main) else { return };
    if let HandlerRc::Status(s) = rc {
        if mr.headers_out.status == 0 || !mr.header_sent {
            mr.headers_out.status = s;
        }
    }
    mr.count = 1;
    mr.keepalive = false;
    close_request(cy, main, 0);
}

fn run_cleanup(cy: &mut Cycle, rid: RequestId) {
    let cl = match cy.requests.get_mut(rid) {
        Some(r) => std::mem::take(&mut r.cleanup),
        None => return,
    };
    for f in cl.into_iter().rev() {
        f(cy, rid);
    }
}

/// Drops one reference; at zero frees the request and closes the connection.
/// nginx: `ngx_http_close_request()`.
pub fn close_request(cy: &mut Cycle, rid: RequestId, status: u16) {
    let Some(r) = cy.requests.get_mut(rid) else { return };
    let main = r.main;
    let Some(mr) = cy.requests.get_mut(main) else { return };
    mr.count = mr.count.saturating_sub(1);
    if mr.count > 0 {
        return;
    }
    let cid = mr.connection;
    free_request(cy, main, status);
    close_client(cy, cid);
}

/// Logs and frees the request object. nginx: `ngx_http_free_request()`.
pub fn free_request(cy: &mut Cycle, rid: RequestId, status: u16) {
    run_cleanup(cy, rid);
    let Some(r) = cy.requests.get_mut(rid) else { return };
    if status != 0 && r.headers_out.status == 0 {
        r.headers_out.status = status;
    }
    log_request(cy, rid);
    let pool = cy.requests.get_mut(rid).map(|r| std::mem::take(&mut r.pool_cleanup)).unwrap_or_default();
    for f in pool {
        f(cy, rid);
    }
    if let Some(mut r) = cy.requests.remove(rid) {
        cy.bufs.put_chain(&mut r.out);
        if let Some(b) = r.request_body.take() {
            super::body::free_body(cy, *b);
        }
        if let Some(c) = cy.conns.get_mut(r.connection) {
            if c.owner == Owner::Client(Some(rid)) {
                c.owner = Owner::Client(None);
            }
        }
        cy.bufs.put(r.header_in);
    }
}

/// Runs the log phase once. nginx: `ngx_http_log_request()`.
fn log_request(cy: &mut Cycle, rid: RequestId) {
    let Some(r) = cy.requests.get_mut(rid) else { return };
    // Every request is logged, also one whose head never completed (400, 408), as nginx does.
    if !r.logged && r.main == rid {
        r.logged = true;
        let conf = cy.conf.clone();
        for h in conf.http.iter().flat_map(|h| h.phases.log.iter()) {
            h(cy, rid);
        }
    }
}

/// Keeps the connection for the next request. nginx: `ngx_http_set_keepalive()`.
fn set_keepalive(cy: &mut Cycle, rid: RequestId) {
    // The log line reads `$request` out of `header_in`, which a pipelined request takes below.
    log_request(cy, rid);
    let Some(r) = cy.requests.get_mut(rid) else { return };
    let cid = r.connection;
    let timeout = r.loc.core.keepalive_timeout();
    // Bytes after this request are the next pipelined request: copy them to a fresh buffer
    // (the head stays in `header_in` for the access log).
    let leftover = if r.header_in.is_empty() {
        None
    } else {
        let size = r.srv.core.client_header_buffer_size().max(r.header_in.data().len());
        let mut nb = cy.bufs.get(size);
        nb.append(r.header_in.data());
        Some(nb)
    };
    free_request(cy, rid, 0);
    let Some(c) = cy.conns.get_mut(cid) else { return };
    c.read.handler = wait_request_handler;
    c.write.handler = crate::core::connection::empty_handler;
    c.action = "keepalive";
    let pipelined = leftover.is_some();
    c.buffer = leftover;
    // Idle unless the next request is already buffered: a graceful stop closes idle ones.
    c.idle = !pipelined;
    if pipelined || c.read.ready {
        // Data is already here (no new edge will announce it): handle it in this turn.
        posted::post_event(cy, Ev { c: cid, write: false }, posted::Queue::Events);
    }
    event::del_timer(cy, Ev { c: cid, write: true });
    event::add_timer(cy, Ev { c: cid, write: false }, timeout);
}

/// Closes the write side and drains the read side for a while, so the client gets the response
/// instead of a reset. nginx: `ngx_http_set_lingering_close()`.
fn set_lingering_close(cy: &mut Cycle, rid: RequestId) {
    let Some(r) = cy.requests.get(rid) else { return };
    let cid = r.connection;
    let (time, timeout) = r.loc.core.lingering();
    free_request(cy, rid, 0);
    let now = cy.times.msec;
    let Some(c) = cy.conns.get_mut(cid) else { return };
    c.read.handler = lingering_close_handler;
    c.write.handler = crate::core::connection::empty_handler;
    c.start_msec = now + time; // reused as the lingering deadline
    c.action = "lingering close";
    if let Stream::Tcp(s) = &c.stream {
        if s.shutdown(std::net::Shutdown::Write).is_err() {
            return close_client(cy, cid);
        }
    }
    event::del_timer(cy, Ev { c: cid, write: true });
    event::add_timer(cy, Ev { c: cid, write: false }, timeout);
    if c_ready(cy, cid) {
        lingering_close_handler(cy, Ev { c: cid, write: false });
    }
}

fn c_ready(cy: &Cycle, cid: ConnId) -> bool {
    cy.conns.get(cid).is_some_and(|c| c.read.ready)
}

/// Reads and drops client data until EOF, timeout or the lingering deadline.
/// nginx: `ngx_http_lingering_close_handler()`.
fn lingering_close_handler(cy: &mut Cycle, ev: Ev) {
    let now = cy.times.msec;
    let Some(c) = cy.conns.get_mut(ev.c) else { return };
    if c.read.timedout || now >= c.start_msec {
        return close_client(cy, ev.c);
    }
    let mut scratch = [0u8; 4096];
    loop {
        match io::recv(c, &mut scratch) {
            Recv::Data(_) => continue,
            Recv::Again => return,
            Recv::Eof | Recv::Error(_) => return close_client(cy, ev.c),
        }
    }
}
