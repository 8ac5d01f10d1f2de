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
//! - reading and checking the head (nginx's `process_request_line`/`_headers` and friends) is
//!   in `request_head.rs`, one concept per file.
//! - the reference count `r->main->count` and the finalize logic are kept as in nginx, because
//!   subrequests and the upstream rely on them.
//! - ending a request (`finalize_request`, the writer, the connection's fate, terminate,
//!   close, free) is in `finalize.rs`, re-exported here under nginx's file's roof.

use std::sync::Arc;

use super::parse::RequestHead;
use super::request_alloc::{new_request, reset_request, RequestInit};
use super::request_head::{process_request_line, process_request_line_handler};
use super::{LocConf, SrvConf};
use crate::core::buf::{Buf, Chain};
use crate::core::step::HandlerRc;
use crate::event::connection::{ConnId, Ev, Stream};
use crate::event::io::{self, Recv};
use crate::event::{self, connect::close_connection};
use crate::http::cycle::Cycle;
use crate::http::cycle::{Owner, RequestId};

pub use super::finalize::{close_request, finalize_request, free_request, terminate_request, writer};
pub(super) use super::finalize::{close_request_now, finalize_connection, log_request, run_cleanup, set_write_handler};
pub use super::phases::{core_run_phases, find_config, update_location_config};

/// A request-level event handler. nginx: `r->read_event_handler` / `r->write_event_handler`.
pub type RequestHandler = fn(&mut Cycle, RequestId);

/// A cleanup run when the request is freed or terminated. nginx: `ngx_http_cleanup_t`.
pub type Cleanup = fn(&mut Cycle, RequestId);

/// The request method: defined beside the parser that sets it. nginx: `r->method`.
pub use super::parse::Method;

/// Request headers nginx gives a meaning to. nginx: `ngx_http_headers_in_t`.
#[derive(Clone, Debug, Default)]
pub struct HeadersIn {
    /// The host: from an absolute-form target, else from `Host`; lowercased, without port
    /// (nginx: `headers_in.server`, what `$host` shows).
    pub host: Vec<u8>,
    /// Index in `head.headers` of the `Host` header line (nginx: `headers_in.host`).
    pub host_line: Option<usize>,
    /// Index in `head.headers` of each header nginx refuses twice, in the order of
    /// `headers_in::UNIQUE_HEADERS` (nginx: `headers_in.content_length`, `.expect`, ...).
    pub unique: [Option<usize>; 10],
    /// `Content-Length`. nginx: `content_length_n`.
    pub content_length_n: Option<u64>,
    /// `Transfer-Encoding: chunked`.
    pub chunked: bool,
    /// The last `Connection` naming "close" or "keep-alive" said "close"
    /// (nginx: `connection_type == NGX_HTTP_CONNECTION_CLOSE`).
    pub connection_close: bool,
    /// ... said "keep-alive" (nginx: NGX_HTTP_CONNECTION_KEEP_ALIVE).
    pub connection_keep_alive: bool,
    /// `Expect: 100-continue`.
    pub expect_continue: bool,
}

/// Response headers. nginx: `ngx_http_headers_out_t` (headers_out.rs).
pub use super::headers_out::HeadersOut;

/// Body reading state. See `body.rs`.
pub use super::body::RequestBody;

pub use super::subrequest::{PostSubrequest, Postponed, SubState};

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
    /// A body filter reads or changes the body's bytes (set in its header filter): they must
    /// pass through memory, so a proxied body is not spliced. No filter of rginx's does yet.
    /// nginx: `r->filter_need_in_memory`, which turns off `sendfile` for the same reason.
    pub filter_need_in_memory: bool,
    /// Output not yet written to the socket (main request only). nginx: `r->out`.
    pub out: Chain,
    /// nginx: `r->read_event_handler`.
    pub read_event_handler: RequestHandler,
    /// nginx: `r->write_event_handler`.
    pub write_event_handler: RequestHandler,
    /// The upstream context's id in the upstream framework's table. nginx: `r->upstream`.
    /// Untyped because `upstream/` sits above `http/`; only `upstream/` turns it back.
    /// Not public: an upstream callback, handed `&mut Request`, must not detach its own
    /// upstream (the framework finalizes through it).
    pub(crate) upstream: Option<crate::core::id::RawId>,
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
    /// Its place in a tree of subrequests, if it is or has one (nginx: `r->postponed`,
    /// `c->data`, `r->subrequests`, `r->post_subrequest`, the subrequest flags). Boxed and
    /// absent for a request without subrequests, which then stays as small as before.
    pub sr: Option<Box<SubState>>,
}

impl Request {
    /// The module context of type `T`. nginx: `ngx_http_get_module_ctx()`.
    pub fn ctx<T: 'static>(&mut self) -> Option<&mut T> {
        self.ctx.iter_mut().find_map(|c| c.downcast_mut::<T>())
    }
    /// The request whose output may go to the client now (meaningful on a main request).
    /// nginx: `c->data`.
    #[inline]
    pub fn active(&self) -> RequestId {
        self.sr.as_ref().and_then(|s| s.active).unwrap_or(self.id)
    }
    /// Output or children wait in `postponed`. nginx: `r->postponed != NULL`.
    #[inline]
    pub fn has_postponed(&self) -> bool {
        self.sr.as_ref().is_some_and(|s| !s.postponed.is_empty())
    }
    /// The subrequest state, created on first use.
    pub fn sub_mut(&mut self) -> &mut SubState {
        self.sr.get_or_insert_with(Box::default)
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
    /// The method as sent (`GET` for a subrequest). nginx: `r->method_name`.
    pub fn method_name(&self) -> &[u8] {
        if let Some(m) = self.sr.as_ref().and_then(|s| s.method) {
            return m;
        }
        self.header_in.mem.get(self.head.method.clone()).unwrap_or(b"")
    }
    /// The whole request line. nginx: `r->request_line`.
    ///
    /// For a head whose line did not parse (a bad request, a timeout mid-line, a 414),
    /// nginx's `$request` is the line as far as it came: from the first byte of the request
    /// to CR, LF or the end of the data. nginx: `ngx_http_variable_request_line()`.
    pub fn request_line(&self) -> &[u8] {
        let b = &self.header_in.mem;
        if self.head.line_done {
            return b.get(self.head.request_line.clone()).unwrap_or(b"");
        }
        let data = b.get(self.head.request_start..self.header_in.last).unwrap_or(b"");
        let start = data.iter().position(|&c| c != b'\r' && c != b'\n').unwrap_or(data.len());
        let line = &data[start..];
        let end = line.iter().position(|&c| c == b'\r' || c == b'\n').unwrap_or(line.len());
        &line[..end]
    }
    /// "HTTP/1.1" as sent (nginx: `r->http_protocol`, `$server_protocol`); empty for HTTP/0.9.
    pub fn http_protocol(&self) -> &[u8] {
        self.header_in.mem.get(self.head.protocol()).unwrap_or(b"")
    }
}

pub use super::request_spares::RequestSpares;

pub(super) fn noop(_: &mut Cycle, _: RequestId) {}

/// nginx: `ngx_http_request_empty_handler`.
pub fn empty_handler(_: &mut Cycle, _: RequestId) {}

/// A new client connection. nginx: `ngx_http_init_connection()`.
pub fn init_connection(cy: &mut Cycle, cid: ConnId) {
    let timeout = default_server(cy, cid).map(|s| s.core.client_header_timeout()).unwrap_or(60_000);
    let nodelay = default_server(cy, cid).map(|s| s.loc.core.tcp_nodelay.unwrap_or(true)).unwrap_or(true);
    let Some(c) = cy.ev.conns.get_mut(cid) else { return };
    c.owner = Owner::Client(None); // nginx: `c->data = hc` (the `ngx_http_connection_t`)
    c.read.handler = wait_request_handler;
    c.write.handler = crate::event::connection::empty_handler;
    c.action = "waiting for request";
    if nodelay {
        if let Stream::Tcp(s) = &c.stream {
            // Ignored: it fails only on a broken socket, which the first read reports (nginx
            // logs `setsockopt(TCP_NODELAY) failed` and closes at once).
            let _ = s.set_nodelay(true);
        }
    }
    event::add_timer(&mut cy.ev, Ev { c: cid, write: false }, timeout);
}

pub(super) fn default_server(cy: &Cycle, cid: ConnId) -> Option<Arc<SrvConf>> {
    let c = cy.ev.conns.get(cid)?;
    let http = cy.http_conf.as_deref()?;
    let li = cy.ev.listening.get(c.listening as usize)?.servers;
    let a = http.addrs.get(li)?;
    a.servers.get(a.default).cloned()
}

/// Waits for the first bytes of a request (also the keepalive wait).
/// nginx: `ngx_http_wait_request_handler()` and `ngx_http_keepalive_handler()`.
pub fn wait_request_handler(cy: &mut Cycle, ev: Ev) {
    let cid = ev.c;
    let Some(c) = cy.ev.conns.get_mut(cid) else { return };
    if c.read.timedout {
        log::info!("*{} client timed out while {}", c.number, c.action);
        return close_client(cy, cid);
    }
    if cy.ev.exiting && c.idle || c.close {
        // a keepalive wait during a graceful stop, or a slot wanted for a new connection
        return close_client(cy, cid);
    }
    let size = default_server(cy, cid).map(|s| s.core.client_header_buffer_size()).unwrap_or(1024);
    let Some(c) = cy.ev.conns.get_mut(cid) else { return };
    let pipelined = c.buffer.as_ref().is_some_and(|b| !b.is_empty());
    let mut b = match c.buffer.take().map(|b| *b) {
        Some(b) if !b.is_empty() => b, // pipelined bytes of the next request
        other => {
            let mut b = match other {
                Some(b) => b,
                None => cy.ev.bufs.get(size),
            };
            b.reset();
            match io::recv(c, b.free_space()) {
                Recv::Data(n) => b.last += n,
                Recv::Again => {
                    // nginx frees the buffer of an idle connection: 10k idle keepalive
                    // connections then cost no buffer memory.
                    cy.ev.bufs.put(b);
                    return;
                }
                Recv::Eof => {
                    cy.ev.bufs.put(b);
                    return close_client(cy, cid);
                }
                Recv::Error(e) => {
                    log::info!("*{} recv() failed ({e}) while {}", c.number, c.action);
                    cy.ev.bufs.put(b);
                    return close_client(cy, cid);
                }
            }
            b
        }
    };
    b.compact();
    c.idle = false;
    c.reusable = false;
    c.action = "reading client request line";
    let Some(rid) = create_request(cy, cid, b, pipelined) else { return };
    if let Some(c) = cy.ev.conns.get_mut(cid) {
        c.read.handler = process_request_line_handler;
    }
    process_request_line(cy, rid);
}

pub(super) fn close_client(cy: &mut Cycle, cid: ConnId) {
    cy.ev.stats.active = cy.ev.stats.active.saturating_sub(1);
    close_connection(&mut cy.ev, cid);
}

/// Creates the request object for a connection. nginx: `ngx_http_create_request()`.
fn create_request(cy: &mut Cycle, cid: ConnId, header_in: Buf, pipelined: bool) -> Option<RequestId> {
    let srv = default_server(cy, cid)?;
    let li = cy.ev.conns.get(cid).map(|c| c.listening)?;
    let addr = cy.ev.listening.get(li as usize).map(|l| l.servers).unwrap_or(0);
    let timeout = srv.core.client_header_timeout();
    let (msec, unix_ms) = (cy.ev.times.msec, cy.ev.times.unix_ms);
    // A slot freed by an earlier request still holds that request, emptied by
    // `free_request`: it is reset where it lies, as nginx `ngx_pcalloc`s a request in place.
    // A slot below `IN_SLOT` reused keeps the storage of its last request: nothing to fill.
    let mut fill = true;
    let rid = cy.requests.insert_with(|id, slot| {
        let init = RequestInit {
            id,
            connection: cid,
            srv,
            addr,
            header_in,
            start_msec: msec,
            start_unix_ms: unix_ms,
            pipelined,
        };
        match slot {
            Some(r) => {
                fill = id.key() >= RequestSpares::IN_SLOT;
                reset_request(r, init)
            }
            None => *slot = Some(new_request(init)),
        }
    })?;
    if let Some(r) = cy.requests.get_mut(rid).filter(|_| fill) {
        cy.request_spares.fill(r);
    }
    cy.ev.stats.requests += 1;
    if let Some(c) = cy.ev.conns.get_mut(cid) {
        c.owner = Owner::Client(Some(rid));
        c.requests += 1;
        let sent = c.sent;
        if let Some(r) = cy.requests.get_mut(rid) {
            r.sent_start = sent;
            r.headers_out = HeadersOut::from_pool(&mut cy.ev.bufs);
        }
    }
    if !event::timer_set(&cy.ev, Ev { c: cid, write: false }) {
        event::add_timer(&mut cy.ev, Ev { c: cid, write: false }, timeout);
    }
    Some(rid)
}

/// Installs the request-phase handlers and stops the header timer.
#[inline]
pub(super) fn start_request_processing(cy: &mut Cycle, rid: RequestId) {
    let Some(r) = cy.requests.get_mut(rid) else { return };
    let cid = r.connection;
    r.reading = false;
    r.read_event_handler = block_reading;
    r.write_event_handler = noop;
    event::del_timer(&mut cy.ev, Ev { c: cid, write: false });
    if let Some(c) = cy.ev.conns.get_mut(cid) {
        c.read.handler = request_handler;
        c.write.handler = request_handler;
        c.action = "processing request";
    }
}

/// Starts processing a complete request. nginx: `ngx_http_process_request()` →
/// `ngx_http_handler()`.
pub fn process_request(cy: &mut Cycle, rid: RequestId) {
    http_handler(cy, rid);
    run_posted_requests(cy);
}

/// Runs a request from the server rewrite phase on: a main request once its head is read, a
/// subrequest when its turn in the posted queue comes. nginx: `ngx_http_handler()`.
pub(super) fn http_handler(cy: &mut Cycle, rid: RequestId) {
    if let Some(r) = cy.requests.get_mut(rid) {
        r.phase_handler = 0;
        r.write_event_handler = core_run_phases;
    }
    // NGX_HTTP_SERVER_REWRITE_PHASE, then NGX_HTTP_FIND_CONFIG_PHASE.
    let n = cy.http_conf.as_deref().map_or(0, |h| h.phases.server_rewrite.len());
    for i in 0..n {
        let Some(h) = cy.http_conf.as_deref().and_then(|h| h.phases.server_rewrite.get(i).copied()) else { break };
        match h(cy, rid) {
            HandlerRc::Declined => {}
            rc => return finalize_request(cy, rid, rc),
        }
    }
    find_config(cy, rid);
    core_run_phases(cy, rid);
}

/// Dispatches a client connection's events to the current request.
/// nginx: `ngx_http_request_handler()`.
pub fn request_handler(cy: &mut Cycle, ev: Ev) {
    let Some(Owner::Client(Some(main))) = cy.ev.conns.get(ev.c).map(|c| c.owner) else { return };
    let Some(mr) = cy.requests.get(main) else { return };
    // The events go to the request whose output may go out now (nginx: `r = c->data`).
    let (rid, r) = match mr.sr.as_ref().and_then(|s| s.active) {
        None => (main, mr),
        Some(a) => match cy.requests.get(a) {
            Some(r) => (a, r),
            None => (main, mr),
        },
    };
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
