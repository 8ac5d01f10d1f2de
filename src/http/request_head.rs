//! Reading the request head: the request line, then the header lines, each parsed as it
//! arrives, in a buffer that grows to large header buffers when a line needs it.
//!
//! nginx: src/http/ngx_http_request.c — `ngx_http_process_request_line()`,
//! `ngx_http_process_request_headers()`, `ngx_http_read_request_header()`,
//! `ngx_http_alloc_large_header_buffer()`, and the tail of `ngx_http_process_request_header()`
//! that hands the request on. What the head means (URI, host, headers) is in headers_in.rs.
//!
//! The parser state lives in `r.head` (`parse::RequestHead`, nginx's `r->state` and
//! pointers), so each read resumes where the last one stopped: a client sending its head one
//! byte at a time costs O(n), as in nginx.
//!
//! Differs from nginx:
//! - the head lives in one buffer that grows when a line needs a large buffer (nginx chains
//!   several large buffers and copies the partial line into the new one); the room the line
//!   gets, and so the 414/494 limits, are nginx's. Offsets into the buffer never move.
//! - large buffers are counted per request (`r.large_header_bufs`), not per connection
//!   (`hc->nbusy`), and freed with the request.

use super::core_module::find_virtual_server;
use super::headers_in::{self, Refusal};
use super::parse::{ParseError, RequestHeaderLine};
use super::request::{close_request_now, finalize_request, process_request, start_request_processing};
use crate::core::buf::Buf;
use crate::core::step::{HandlerRc, Step};
use crate::event::connection::Ev;
use crate::event::io::{self, Recv};
use crate::http::cycle::Cycle;
use crate::http::cycle::{Owner, RequestId};

/// NGX_MAX_ERROR_STR - 300: how much of a too long header line nginx logs.
const LOGGED_LINE: usize = 2048 - 300;

/// The read handler while the request line is incomplete.
pub(super) fn process_request_line_handler(cy: &mut Cycle, ev: Ev) {
    if let Some(Owner::Client(Some(rid))) = cy.ev.conns.get(ev.c).map(|c| c.owner) {
        process_request_line(cy, rid);
    }
}

/// The read handler while the header lines are incomplete.
fn process_request_headers_handler(cy: &mut Cycle, ev: Ev) {
    if let Some(Owner::Client(Some(rid))) = cy.ev.conns.get(ev.c).map(|c| c.owner) {
        process_request_headers(cy, rid);
    }
}

/// What the read loops do after a parser's `Again`.
enum More {
    /// More bytes are in the buffer: parse again.
    Data,
    /// Nothing to read now: wait for the next read event (the header timer runs).
    Wait,
    /// The request was finalized or closed.
    Gone,
}

/// Parses the request line as its bytes arrive, then hands over to the header lines.
///
/// nginx: `ngx_http_process_request_line()`
pub(super) fn process_request_line(cy: &mut Cycle, rid: RequestId) {
    // Once per event, as nginx: a timer cannot expire inside the loop below.
    if timed_out(cy, rid) {
        return;
    }
    loop {
        let Some(r) = cy.requests.get_mut(rid) else { return };
        let data = r.header_in.mem.get(..r.header_in.last).unwrap_or(b"");
        match r.head.parse_request_line(data) {
            Ok(Step::Done(())) => return request_line_done(cy, rid),
            Ok(Step::Again) => {}
            Err(e) => return bad_request_line(cy, rid, e),
        }
        match more(cy, rid, true) {
            More::Data => continue,
            More::Wait | More::Gone => return,
        }
    }
}

/// The request line is in: the URI, the host of an absolute-form target, then the headers
/// (none for HTTP/0.9, which is processed at once).
///
/// nginx: the `rc == NGX_OK` branch of `ngx_http_process_request_line()`
fn request_line_done(cy: &mut Cycle, rid: RequestId) {
    let Some(r) = cy.requests.get_mut(rid) else { return };
    r.http_version = r.head.version;
    r.method = r.head.method_code;
    r.request_length = r.head.pos.saturating_sub(r.head.request_start) as u64;
    let result = headers_in::process_request_uri(r).and_then(|()| headers_in::process_request_line_host(r));
    match result {
        Err(refusal) => return refuse(cy, rid, refusal),
        Ok(true) => set_virtual_server(cy, rid),
        Ok(false) => {}
    }
    let Some(r) = cy.requests.get_mut(rid) else { return };
    if r.http_version < 1000 {
        r.head.len = r.head.pos;
        return process_request_header_done(cy, rid);
    }
    let cid = r.connection;
    if let Some(c) = cy.ev.conns.get_mut(cid) {
        c.action = "reading client request headers";
        c.read.handler = process_request_headers_handler;
    }
    // the timeout was checked above, in this same event
    parse_request_headers(cy, rid);
}

/// Parses header lines as they arrive: each kept line is processed at once (duplicates,
/// `Host`), invalid ones are dropped or refused, and the empty line ends the head.
///
/// nginx: `ngx_http_process_request_headers()`
fn process_request_headers(cy: &mut Cycle, rid: RequestId) {
    if timed_out(cy, rid) {
        return;
    }
    parse_request_headers(cy, rid);
}

/// The loop of `process_request_headers` once the timeout is checked.
fn parse_request_headers(cy: &mut Cycle, rid: RequestId) {
    loop {
        let Some(r) = cy.requests.get_mut(rid) else { return };
        // read per line: the host header may change the server, and with it these settings
        let (underscores, ignore_invalid) = (r.srv.core.underscores_in_headers(), r.srv.core.ignore_invalid_headers());
        let data = r.header_in.mem.get(..r.header_in.last).unwrap_or(b"");
        match r.head.parse_header_line(data, underscores) {
            Ok(Step::Done(RequestHeaderLine::Header { name, value, invalid })) => {
                r.request_length = r.head.pos.saturating_sub(r.head.request_start) as u64;
                if invalid && ignore_invalid {
                    log_header_line(cy, rid, "client sent invalid header line: \"", "\"");
                    continue;
                }
                r.head.headers.push((name, value));
                let i = r.head.headers.len() - 1;
                match headers_in::process_header_line(r, i) {
                    Ok(true) => set_virtual_server(cy, rid),
                    Ok(false) => {}
                    Err(refusal) => return refuse(cy, rid, refusal),
                }
                continue;
            }
            Ok(Step::Done(RequestHeaderLine::Done)) => {
                r.head.len = r.head.pos;
                return process_request_header_done(cy, rid);
            }
            Ok(Step::Again) => {}
            Err(_) => return bad_header_line(cy, rid),
        }
        match more(cy, rid, false) {
            More::Data => continue,
            More::Wait | More::Gone => return,
        }
    }
}

/// The head is complete: check it as a whole, then process the request.
///
/// nginx: `ngx_http_process_request_header()` + `ngx_http_process_request()`
fn process_request_header_done(cy: &mut Cycle, rid: RequestId) {
    let Some(r) = cy.requests.get_mut(rid) else { return };
    r.head_done = true;
    r.request_length = r.head.len.saturating_sub(r.head.request_start) as u64;
    if let Err((status, msg)) = headers_in::process_request_header(r) {
        // The head is complete: the answer is sent after the body nginx already knows of
        // (a valid Content-Length) is discarded, as ngx_http_special_response_handler does.
        r.header_in.pos += r.head.len;
        log_refusal(cy, rid, &msg);
        return finalize_refused_head(cy, rid, status);
    }
    // nginx: `ngx_http_handler()` picks keepalive from the Connection header and the version
    r.keepalive =
        if r.headers_in.connection_close { false } else { r.headers_in.connection_keep_alive || r.http_version > 1000 };
    // here: the body (if any) and the next pipelined request start at head.len
    r.header_in.pos += r.head.len;
    start_request_processing(cy, rid);
    process_request(cy, rid);
}

/// Selects the server by the host just learnt. nginx: `ngx_http_set_virtual_server()`.
fn set_virtual_server(cy: &mut Cycle, rid: RequestId) {
    let Some(r) = cy.requests.get_mut(rid) else { return };
    if let Some(a) = cy.http_conf.as_deref().and_then(|h| h.addrs.get(r.addr)) {
        r.srv = find_virtual_server(a, &r.headers_in.host);
        r.loc = r.srv.loc.clone();
    }
}

/// nginx: the `rev->timedout` check at the top of both handlers.
fn timed_out(cy: &mut Cycle, rid: RequestId) -> bool {
    let Some(r) = cy.requests.get(rid) else { return true };
    let Some(c) = cy.ev.conns.get(r.connection) else { return true };
    if !c.read.timedout {
        return false;
    }
    log::info!("*{} client timed out while {}", c.number, c.action);
    close_request_now(cy, rid, 408);
    true
}

/// After `Again`: makes room if the buffer is full, then reads.
fn more(cy: &mut Cycle, rid: RequestId, request_line: bool) -> More {
    if cy.requests.get(rid).is_some_and(|r| r.header_in.is_full()) {
        if let Err(status) = alloc_large_header_buffer(cy, rid, request_line) {
            finalize_bad_head(cy, rid, status);
            return More::Gone;
        }
    }
    match read_request_header(cy, rid) {
        ReadHead::Data => More::Data,
        ReadHead::Again => More::Wait,
        ReadHead::Closed => {
            close_request_now(cy, rid, 400);
            More::Gone
        }
    }
}

enum ReadHead {
    Data,
    Again,
    Closed,
}

/// Reads more of the head. nginx: `ngx_http_read_request_header()`.
fn read_request_header(cy: &mut Cycle, rid: RequestId) -> ReadHead {
    let Cycle { requests, ev, .. } = cy;
    let conns = &mut ev.conns;
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

/// Makes room when the head buffer is full: a request line may not reach a large buffer's
/// size (414), nor may a header line (494, answered as 400 "Request Header Or Cookie Too
/// Large"), and a request takes at most N large buffers. A buffer filled with the CR/LF of
/// empty lines before the request is simply emptied.
///
/// rginx keeps the head in one contiguous buffer, so "a new large buffer" is the same bytes
/// grown to end `size` bytes after the start of the current line: the line in progress then
/// has exactly the room nginx's copy would have, and every offset in `r.head` stays valid.
///
/// nginx: `ngx_http_alloc_large_header_buffer()`.
fn alloc_large_header_buffer(cy: &mut Cycle, rid: RequestId, request_line: bool) -> Result<(), u16> {
    let Some(r) = cy.requests.get_mut(rid) else { return Err(400) };
    if request_line && !r.head.in_line() {
        // "the client fills up the buffer with \r\n"
        r.header_in.last = 0;
        r.head.pos = 0;
        return Ok(());
    }
    let (num, size) = r.srv.core.large_client_header_buffers();
    let line_start = r.head.line_start();
    let used = r.header_in.last;
    if r.head.in_line() && used - line_start.min(used) >= size || r.large_header_bufs >= num {
        if !request_line {
            r.lingering_close = true;
            log_too_long_header(cy, rid);
        }
        return Err(if request_line { 414 } else { 494 });
    }
    r.large_header_bufs += 1;
    // Not from the pool: these sizes vary with every request, and each would become a class.
    let mut nb = Buf { mem: vec![0; line_start + size], ..Buf::default() };
    nb.append(r.header_in.mem.get(..used).unwrap_or(b""));
    let old = std::mem::replace(&mut r.header_in, nb);
    cy.ev.bufs.put(old);
    Ok(())
}

/// nginx: the NGX_DECLINED branch of `ngx_http_process_request_headers()`.
fn log_too_long_header(cy: &Cycle, rid: RequestId) {
    let Some(r) = cy.requests.get(rid) else { return };
    let Some(c) = cy.ev.conns.get(r.connection) else { return };
    let start = r.head.header_name_start;
    if start == 0 {
        // no header line began: nginx's `header_name_start == NULL`
        log::info!("*{} client sent too large request while {}", c.number, c.action);
        return;
    }
    let end = r.header_in.last.min(start + LOGGED_LINE);
    let line = String::from_utf8_lossy(r.header_in.mem.get(start..end).unwrap_or(b""));
    log::info!("*{} client sent too long header line: \"{line}...\" while {}", c.number, c.action);
}

/// Logs `header_name_start..header_end` between `pre` and `post` (nginx's two
/// "client sent invalid header line" messages).
fn log_header_line(cy: &Cycle, rid: RequestId, pre: &str, post: &str) {
    let Some(r) = cy.requests.get(rid) else { return };
    let Some(c) = cy.ev.conns.get(r.connection) else { return };
    let h = &r.head;
    let line = r.header_in.mem.get(h.header_name_start..h.header_end.max(h.header_name_start)).unwrap_or(b"");
    log::info!("*{} {pre}{}{post} while {}", c.number, String::from_utf8_lossy(line), c.action);
}

/// A header line nginx refuses: 400, logged with the offending byte.
/// nginx: the NGX_HTTP_PARSE_INVALID_HEADER tail of `ngx_http_process_request_headers()`.
fn bad_header_line(cy: &mut Cycle, rid: RequestId) {
    let bad = cy.requests.get(rid).map_or(0, |r| r.header_in.mem.get(r.head.header_end).copied().unwrap_or(0));
    log_header_line(cy, rid, "client sent invalid header line: \"", &format!("\\x{bad:02x}...\""));
    finalize_bad_head(cy, rid, 400);
}

/// A request line nginx refuses: 400, or 505 for a version above 1.x.
/// nginx: the `rc != NGX_AGAIN` branch of `ngx_http_process_request_line()`.
fn bad_request_line(cy: &mut Cycle, rid: RequestId, e: ParseError) {
    if let Some(r) = cy.requests.get_mut(rid) {
        if e == ParseError::InvalidMethod09 {
            r.http_version = r.head.version; // answered without a header, as nginx does
        }
        if let Some(c) = cy.ev.conns.get(r.connection) {
            log::info!("*{} {} while {}", c.number, e, c.action);
        }
    }
    finalize_bad_head(cy, rid, e.status());
}

/// Logs a refusal from headers_in.rs and answers with its status.
fn refuse(cy: &mut Cycle, rid: RequestId, (status, msg): Refusal) {
    log_refusal(cy, rid, &msg);
    finalize_bad_head(cy, rid, status);
}

fn log_refusal(cy: &Cycle, rid: RequestId, msg: &str) {
    if let Some(r) = cy.requests.get(rid) {
        if let Some(c) = cy.ev.conns.get(r.connection) {
            log::info!("*{} {} while {}", c.number, msg, c.action);
        }
    }
}

/// Answers a complete head refused by the final checks (framing, TRACE, Host): no
/// keepalive (nginx decides it only in `ngx_http_handler()`, never reached), and the body a
/// valid `Content-Length` announces is discarded first (`head.len` stays set for that).
fn finalize_refused_head(cy: &mut Cycle, rid: RequestId, status: u16) {
    if let Some(r) = cy.requests.get_mut(rid) {
        r.keepalive = false;
        r.reading = false;
    }
    start_request_processing(cy, rid);
    finalize_request(cy, rid, HandlerRc::Status(status));
}

/// Answers a request whose head could not be read or was refused; the connection closes
/// afterwards (lingering: unread bytes may follow).
pub(super) fn finalize_bad_head(cy: &mut Cycle, rid: RequestId, status: u16) {
    if let Some(r) = cy.requests.get_mut(rid) {
        r.keepalive = false;
        r.lingering_close = true;
        r.reading = false;
        r.head_done = true;
        r.head.len = 0;
        if r.http_version >= 1000 {
            // a HEAD gets its error without a body; an HTTP/0.9 answer has no header, and
            // nginx's header filter returns before it looks at the method
            r.method = r.head.method_code;
        }
        if status == 414 {
            if let Some(c) = cy.ev.conns.get(r.connection) {
                log::info!("*{} client sent too long URI while {}", c.number, c.action);
            }
        }
    }
    start_request_processing(cy, rid);
    finalize_request(cy, rid, HandlerRc::Status(status));
}
