//! Reading and checking the request head: the request line and headers, the large header
//! buffers, the URI, `Host`, and the framing headers that guard against smuggling.
//!
//! nginx: src/http/ngx_http_request.c — `ngx_http_process_request_line()`,
//! `ngx_http_process_request_headers()`, `ngx_http_read_request_header()`,
//! `ngx_http_alloc_large_header_buffer()`, `ngx_http_process_request_uri()`,
//! `ngx_http_validate_host()`, `ngx_http_process_request_header()`.
//!
//! Differs from nginx:
//! - httparse parses the request line and the headers in one call, so nginx's two handlers are
//!   one, `process_request_headers`; it re-parses from the start of the buffer on every read
//!   (`Again` until complete), bounded by `large_client_header_buffers`.
//! - the head lives in one buffer that grows to a large buffer when needed (nginx chains
//!   several large buffers and copies the partial line).

use super::core_module::find_virtual_server;
use super::parse::{self, ParseError};
use super::request::{close_request_now, finalize_request, process_request, start_request_processing, Method, Request};
use crate::core::buf::Buf;
use crate::core::connection::{Ev, Owner, RequestId};
use crate::core::cycle::Cycle;
use crate::core::step::{HandlerRc, Step};
use crate::os::io::{self, Recv};

/// The read handler while the head is incomplete.
pub(super) fn process_request_headers_handler(cy: &mut Cycle, ev: Ev) {
    if let Some(Owner::Client(Some(rid))) = cy.conns.get(ev.c).map(|c| c.owner) {
        process_request_headers(cy, rid);
    }
}

/// Reads and parses the request head until it is complete. nginx:
/// `ngx_http_process_request_line()` + `ngx_http_process_request_headers()`.
pub(super) fn process_request_headers(cy: &mut Cycle, rid: RequestId) {
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
pub(super) fn finalize_bad_head(cy: &mut Cycle, rid: RequestId, status: u16) {
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
