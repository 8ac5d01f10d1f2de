//! Reading the client request body: `Content-Length` or chunked, bounded by
//! `client_max_body_size`, kept in one `client_body_buffer_size` buffer and spilled to a temp
//! file beyond it, or streamed to a consumer (`proxy_request_buffering off`) one buffer at a
//! time. Discarding a body is in `body_discard.rs`.
//!
//! nginx: src/http/ngx_http_request_body.c — `ngx_http_read_client_request_body()`,
//! `ngx_http_read_client_request_body_handler()`, `ngx_http_do_read_client_request_body()`,
//! `ngx_http_read_unbuffered_request_body()`, `ngx_http_write_request_body()`,
//! `ngx_http_request_body_length_filter()`, `ngx_http_request_body_chunked_filter()`,
//! `ngx_http_test_expect()`.
//!
//! The reference on the main request (`r->main->count++`) is taken on entry and given back on
//! one path only: every error of the first read returns through `read_client_request_body`'s
//! tail (nginx's `done:` label), every later error through `finalize_request(status)`, which
//! consumes the reference the post handler would have released.
//!
//! Differs from nginx:
//! - no request body filter chain: the length and chunked filters are applied here. The
//!   chunked filter decodes in place: raw bytes are read into `rb.buf` and decoded where they
//!   lie, so `rb.buf` only ever holds body bytes.
//! - the bytes that came with the head are copied into the body buffer (nginx may use
//!   `r->header_in` itself as the body buffer).
//! - bytes read past the end of a chunked body (a pipelined request) are kept in
//!   `rb.pipelined`, and `set_keepalive` hands them to the next request (nginx copies them into
//!   `r->header_in`: `ngx_http_copy_pipelined_header()`).
//! - streamed (`no_buffering`): the reader hands its whole buffer to the consumer and gets
//!   another only when the consumer asks again, which the upstream does once everything it
//!   holds went out. So at most one `client_body_buffer_size` of body is held. nginx keeps
//!   reading into the same buffer while the upstream is busy, until that buffer is full.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::parse::Chunked;
use super::request::{self, Request, RequestHandler};
use crate::core::buf::{Buf, BufPool};
use crate::core::step::{HandlerRc, Step};
use crate::core::temp_file::TempFile;
use crate::event;
use crate::event::connection::Ev;
use crate::event::io::{self, Recv};
use crate::http::cycle::Cycle;
use crate::http::cycle::RequestId;

pub use super::body_discard::{discard_request_body, discarded_request_body_handler};
pub(super) use super::request_body::free_body_keep;
pub use super::request_body::{free_body, pipelined, RequestBody};

/// Whether the request has a body at all.
pub fn has_body(r: &Request) -> bool {
    r.headers_in.chunked || r.headers_in.content_length_n.is_some_and(|n| n > 0)
}

/// Why reading stopped: the status to finalize with and nginx's error-log line.
pub(super) struct Failure {
    status: u16,
    level: log::Level,
    msg: String,
}

impl Failure {
    pub(super) fn new(status: u16, level: log::Level, msg: impl Into<String>) -> Failure {
        Failure { status, level, msg: msg.into() }
    }
    pub(super) fn invalid_chunked() -> Failure {
        Failure::new(400, log::Level::Error, "client sent invalid chunked body")
    }
}

/// Logs `f` with the request context nginx's `ngx_http_log_error()` appends, and returns its
/// status.
pub(super) fn log_failure(cy: &Cycle, rid: RequestId, f: &Failure) -> u16 {
    let (Some(r), mut line) = (cy.requests.get(rid), String::new()) else { return f.status };
    let Some(c) = cy.ev.conns.get(r.connection) else { return f.status };
    let _ = write!(line, "*{} {}", c.number, f.msg);
    if let Some(p) = c.peer {
        let _ = write!(line, ", client: {}", p.ip());
    }
    let server = r.srv.core.server_names.first().map(String::as_str).unwrap_or("");
    let _ = write!(line, ", server: {server}, request: \"{}\"", String::from_utf8_lossy(r.request_line()));
    if let Some(h) = r.header("host") {
        let _ = write!(line, ", host: \"{}\"", String::from_utf8_lossy(h));
    }
    log::log!(f.level, "{line}");
    f.status
}

/// Sends "100 Continue" when asked, once. nginx: `ngx_http_test_expect()`.
pub(super) fn test_expect(cy: &mut Cycle, rid: RequestId) -> Result<(), ()> {
    let Some(r) = cy.requests.get_mut(rid) else { return Err(()) };
    if !r.headers_in.expect_continue || r.http_version < 1001 {
        return Ok(());
    }
    r.headers_in.expect_continue = false; // nginx: `r->expect_tested = 1`
    let Some(c) = cy.ev.conns.get_mut(r.connection) else { return Err(()) };
    match io::send(c, b"HTTP/1.1 100 Continue\r\n\r\n") {
        Ok(Step::Done(25)) => Ok(()),
        _ => {
            // nginx: "we assume that such small packet should be send successfully"
            c.error = true;
            Err(())
        }
    }
}

/// Starts reading the body; `post_handler` runs when it is complete, or — `no_buffering` —
/// as soon as reading started (the consumer then pulls the rest with
/// `read_unbuffered_request_body`). Takes a reference on the main request.
///
/// # Returns
/// `Ok` (reading started or finished), or `Status` to finalize with; then the reference is
/// already given back and the error logged.
///
/// nginx: `ngx_http_read_client_request_body()`.
pub fn read_client_request_body(
    cy: &mut Cycle,
    rid: RequestId,
    post_handler: RequestHandler,
    no_buffering: bool,
) -> HandlerRc {
    let Some(r) = cy.requests.get(rid) else { return HandlerRc::Error };
    let main = r.main;
    let skip = r.request_body.is_some() || r.discard_body || main != rid;
    if let Some(mr) = cy.requests.get_mut(main) {
        mr.count += 1;
    }
    if skip {
        post_handler(cy, rid);
        return HandlerRc::Ok;
    }
    match start(cy, rid, post_handler, no_buffering) {
        Ok(Step::Done(())) => {
            if let Some(r) = cy.requests.get_mut(rid) {
                r.read_event_handler = request::block_reading;
                if let Some(rb) = r.request_body.as_deref_mut() {
                    rb.no_buffering = false; // all of it is here: the consumer sends it whole
                }
            }
            post_handler(cy, rid);
            HandlerRc::Ok
        }
        Ok(Step::Again) => {
            let Some(r) = cy.requests.get_mut(rid) else { return HandlerRc::Ok };
            if let Some(rb) = r.request_body.as_deref_mut().filter(|rb| rb.no_buffering) {
                // The consumer drives the reading from now on.
                rb.reading = true;
                r.read_event_handler = request::block_reading;
                post_handler(cy, rid);
            }
            HandlerRc::Ok
        }
        Err(f) => {
            // nginx: the `done:` label — the reference taken above is given back here, the
            // one place every early error passes.
            let status = body_failed(cy, rid, &f);
            if let Some(mr) = cy.requests.get_mut(main) {
                debug_assert!(mr.count > 0, "r->main->count underflow");
                mr.count = mr.count.saturating_sub(1);
            }
            HandlerRc::Status(status)
        }
    }
}

/// Creates the body, takes what came with the head, and reads what the socket has.
fn start(cy: &mut Cycle, rid: RequestId, post_handler: RequestHandler, no_buffering: bool) -> Result<Step, Failure> {
    if test_expect(cy, rid).is_err() {
        return Err(Failure::new(500, log::Level::Info, "send() of \"100 Continue\" failed"));
    }
    let spare = cy.request_spares.bodies.pop();
    let Some(r) = cy.requests.get_mut(rid) else { return Ok(Step::Again) };
    let mut rb = RequestBody::renew(spare, r, post_handler);
    rb.no_buffering = no_buffering;
    let done = rb.done;
    r.request_body = Some(rb);
    if done {
        return Ok(Step::Done(()));
    }
    r.read_event_handler = read_client_request_body_handler;
    r.write_event_handler = request::empty_handler;
    let size = r.loc.core.client_body_buffer_size().max(1);
    let size = match &r.request_body {
        // nginx: a Content-Length body that fits in 1.25 buffers gets a buffer of its size.
        Some(rb) if rb.chunked.is_none() && rb.rest < (size + size / 4) as u64 => rb.rest as usize,
        _ => size,
    };
    let buf = cy.ev.bufs.get(size.max(1));
    if let Some(rb) = rb_mut(cy, rid) {
        rb.buf = Some(buf);
    }
    preread(cy, rid)?;
    do_read(cy, rid)
}

/// The request's body, if any.
fn rb_mut(cy: &mut Cycle, rid: RequestId) -> Option<&mut RequestBody> {
    cy.requests.get_mut(rid)?.request_body.as_deref_mut()
}

/// Continues a streamed body for its consumer: reads what the client has sent (into a fresh
/// buffer: the consumer has sent the previous one) and hands it over in `rb.bufs`.
///
/// # Returns
/// `Done` once the whole body is handed over; `Again` while more is to come (a read timer is
/// armed when the socket ran dry); `Err(status)`: finalize with it (already logged).
///
/// nginx: `ngx_http_read_unbuffered_request_body()`.
pub fn read_unbuffered_request_body(cy: &mut Cycle, rid: RequestId) -> Result<Step, u16> {
    let Some(r) = cy.requests.get(rid) else { return Ok(Step::Done(())) };
    if cy.ev.conns.get(r.connection).is_some_and(|c| c.read.timedout) {
        let f = Failure::new(408, log::Level::Info, "client timed out while reading client request body");
        return Err(body_failed(cy, rid, &f));
    }
    let Some(rb) = rb_mut(cy, rid) else { return Ok(Step::Done(())) };
    if !rb.reading {
        return Ok(Step::Done(()));
    }
    match do_read(cy, rid) {
        Ok(step) => {
            if step == Step::Done(()) {
                if let Some(rb) = rb_mut(cy, rid) {
                    rb.reading = false;
                }
            }
            Ok(step)
        }
        Err(f) => Err(body_failed(cy, rid, &f)),
    }
}

/// The client read handler while a buffered body is read.
/// nginx: `ngx_http_read_client_request_body_handler()`.
pub fn read_client_request_body_handler(cy: &mut Cycle, rid: RequestId) {
    let Some(r) = cy.requests.get(rid) else { return };
    if cy.ev.conns.get(r.connection).is_some_and(|c| c.read.timedout) {
        let f = Failure::new(408, log::Level::Info, "client timed out while reading client request body");
        let status = body_failed(cy, rid, &f);
        return request::finalize_request(cy, rid, HandlerRc::Status(status));
    }
    match do_read(cy, rid) {
        Ok(Step::Again) => {}
        Ok(Step::Done(())) => {
            let h = cy.requests.get(rid).and_then(|r| r.request_body.as_ref()).map(|rb| rb.post_handler);
            if let Some(h) = h {
                h(cy, rid);
            }
        }
        Err(f) => {
            let status = body_failed(cy, rid, &f);
            request::finalize_request(cy, rid, HandlerRc::Status(status));
        }
    }
}

/// Nothing more of this body will be read, and what was read is dropped: the error page
/// closes the connection (or lingers), never waits for the rest. Logs `f`.
///
/// nginx: the `rc >= NGX_HTTP_SPECIAL_RESPONSE` exits of `ngx_http_read_client_request_body()`
/// and its handler: `r->lingering_close = 1; r->headers_in.content_length_n = 0;
/// rb->bufs = NULL; r->read_event_handler = ngx_http_block_reading`.
fn body_failed(cy: &mut Cycle, rid: RequestId, f: &Failure) -> u16 {
    let status = log_failure(cy, rid, f);
    let Some(r) = cy.requests.get_mut(rid) else { return status };
    r.lingering_close = true;
    r.read_event_handler = request::block_reading;
    let cid = r.connection;
    if let Some(rb) = r.request_body.as_deref_mut() {
        rb.done = true;
        rb.reading = false;
        cy.ev.bufs.put_chain(&mut rb.bufs);
        if let Some(b) = rb.buf.take() {
            cy.ev.bufs.put(b);
        }
        rb.temp_file = None;
    }
    event::del_timer(&mut cy.ev, Ev { c: cid, write: false });
    status
}

/// Moves body bytes that came with the head into the body buffer.
/// nginx: the preread part of `ngx_http_read_client_request_body()`.
fn preread(cy: &mut Cycle, rid: RequestId) -> Result<(), Failure> {
    let dir = body_temp_dir(cy);
    let Cycle { requests, ev, .. } = cy;
    let pool = &mut ev.bufs;
    let Some(r) = requests.get_mut(rid) else { return Ok(()) };
    let max = r.loc.core.client_max_body_size();
    let Some(rb) = r.request_body.as_deref_mut() else { return Ok(()) };
    let hin = &mut r.header_in;
    let before = hin.data().len();
    while !rb.done && !hin.is_empty() {
        make_room(rb, pool, &dir)?;
        let Some(b) = rb.buf.as_mut() else { break };
        let data = hin.data();
        let Some(dec) = rb.chunked.as_mut() else {
            let n = b.append(&data[..(rb.rest as usize).min(data.len())]);
            hin.consume(n);
            rb.rest -= n as u64;
            rb.received += n as u64;
            rb.done = rb.rest == 0;
            continue;
        };
        let mut pos = 0;
        let res = dec.parse(data, &mut pos);
        match res {
            Ok(Chunked::Data(range)) => {
                // Copy what fits; give the rest back to the decoder for the next round.
                let take = range.len().min(b.mem.len() - b.last);
                check_chunk_size(rb.received, range.len() as u64 + dec.size_hint(), max)?;
                b.append(&data[range.start..range.start + take]);
                let unread = range.len() - take;
                dec.unread(unread as u64);
                pos -= unread;
                rb.received += take as u64;
            }
            Ok(Chunked::Again) => check_chunk_size(rb.received, dec.size_hint(), max)?,
            Ok(Chunked::Done) => rb.done = true,
            Err(_) => return Err(Failure::invalid_chunked()),
        }
        hin.consume(pos);
    }
    r.request_length += (before - r.header_in.data().len()) as u64;
    Ok(())
}

/// nginx's check of each chunk against `client_max_body_size`, as soon as its size is known:
/// `received` body bytes before the chunk, `size` of the chunk.
fn check_chunk_size(received: u64, size: u64, max: u64) -> Result<(), Failure> {
    if max > 0 && size > 0 && max.saturating_sub(received) < size {
        let msg = format!("client intended to send too large chunked body: {received}+{size} bytes");
        return Err(Failure::new(413, log::Level::Error, msg));
    }
    Ok(())
}

/// Makes room in a full body buffer: a buffered body spills it to the temp file, a streamed
/// one hands it to the consumer and takes another (only the preread, bounded by the header
/// buffer, can overflow one buffer here).
fn make_room(rb: &mut RequestBody, pool: &mut BufPool, dir: &Path) -> Result<(), Failure> {
    let Some(b) = rb.buf.as_mut() else { return Ok(()) };
    if !b.is_full() {
        return Ok(());
    }
    if rb.no_buffering {
        let size = b.mem.len();
        if let Some(full) = rb.buf.replace(pool.get(size)) {
            rb.bufs.push_back(full);
        }
        return Ok(());
    }
    write_request_body(rb, dir)
}

fn body_temp_dir(cy: &Cycle) -> PathBuf {
    cy.conf.prefix.join("client_body_temp")
}

/// Writes the body buffer to the temp file and empties it. nginx: `ngx_http_write_request_body()`.
fn write_request_body(rb: &mut RequestBody, dir: &Path) -> Result<(), Failure> {
    if rb.temp_file.is_none() {
        match TempFile::create(dir) {
            Ok(t) => rb.temp_file = Some(t),
            Err(e) => {
                let msg = format!("create temp file in \"{}\" failed ({e})", dir.display());
                return Err(Failure::new(500, log::Level::Error, msg));
            }
        }
    }
    if let (Some(tf), Some(b)) = (rb.temp_file.as_mut(), rb.buf.as_mut()) {
        if let Err(e) = tf.append(b.data()) {
            let msg = format!("write to client body temp file failed ({e})");
            return Err(Failure::new(500, log::Level::Error, msg));
        }
        b.reset();
    }
    Ok(())
}

/// Reads until the body is complete or the socket is empty (or, streamed, the buffer full).
///
/// # Returns
/// `Done` when the last byte was read (buffered: `rb.bufs` is the whole body; streamed: all
/// handed over); `Again` to wait, with the read timer armed while waiting for the client.
///
/// nginx: `ngx_http_do_read_client_request_body()`.
fn do_read(cy: &mut Cycle, rid: RequestId) -> Result<Step, Failure> {
    let Some(r) = cy.requests.get(rid) else { return Ok(Step::Again) };
    let ev = Ev { c: r.connection, write: false };
    let timeout = r.loc.core.client_body_timeout();
    match read_loop(cy, rid)? {
        Read::Done => {
            event::del_timer(&mut cy.ev, ev);
            Ok(Step::Done(()))
        }
        Read::Client => {
            event::add_timer(&mut cy.ev, ev, timeout);
            Ok(Step::Again)
        }
        Read::Consumer => {
            event::del_timer(&mut cy.ev, ev); // a streamed body waits for its consumer, not the client
            Ok(Step::Again)
        }
    }
}

/// What `read_loop` stopped for.
enum Read {
    /// The last body byte is in.
    Done,
    /// The socket is empty: wait for the client.
    Client,
    /// Streamed, the buffer is full: wait for the consumer to take it.
    Consumer,
}

/// The loop of `do_read`, on the request and its connection only.
fn read_loop(cy: &mut Cycle, rid: RequestId) -> Result<Read, Failure> {
    let dir = body_temp_dir(cy);
    let Cycle { requests, ev, .. } = cy;
    let (conns, pool) = (&mut ev.conns, &mut ev.bufs);
    let Some(r) = requests.get_mut(rid) else { return Ok(Read::Client) };
    let max = r.loc.core.client_max_body_size();
    let size = r.loc.core.client_body_buffer_size().max(1);
    let (Some(c), Some(rb)) = (conns.get_mut(r.connection), r.request_body.as_deref_mut()) else {
        return Ok(Read::Client);
    };
    if rb.no_buffering && rb.buf.is_none() {
        rb.buf = Some(pool.get(size));
    }
    let mut stop = Read::Consumer;
    while !rb.done {
        if rb.buf.as_ref().is_some_and(Buf::is_full) {
            if rb.no_buffering {
                break; // the consumer takes it first, and asks again once it is sent
            }
            write_request_body(rb, &dir)?;
        }
        let Some(b) = rb.buf.as_mut() else { break };
        let start = b.last;
        let room = b.mem.len() - start;
        let want = if rb.chunked.is_some() { room } else { (rb.rest as usize).min(room) };
        match io::recv(c, &mut b.mem[start..start + want]) {
            Recv::Data(n) => {
                b.last += n;
                filter(rb, start, max, pool)?;
                // Bytes of the next request are its own (`$request_length`).
                r.request_length += (n - rb.pipelined.as_ref().map_or(0, |p| p.data().len())) as u64;
                if !c.read.ready {
                    stop = Read::Client;
                    break;
                }
            }
            Recv::Again => {
                stop = Read::Client;
                break;
            }
            Recv::Eof | Recv::Error(_) => {
                c.error = true;
                return Err(Failure::new(400, log::Level::Info, "client prematurely closed connection"));
            }
        }
    }
    if rb.no_buffering {
        // Hand over what was read; the consumer asks for more once it has sent it.
        if let Some(b) = rb.buf.take_if(|b| !b.is_empty()) {
            rb.bufs.push_back(b);
        }
    }
    if !rb.done {
        return Ok(stop);
    }
    if !rb.no_buffering {
        finish(rb, pool);
        r.read_event_handler = request::block_reading;
    }
    Ok(Read::Done)
}

/// Runs the length or chunked filter over the `rb.buf` bytes from `start` (just read).
/// nginx: `ngx_http_request_body_length_filter()` / `_chunked_filter()`.
fn filter(rb: &mut RequestBody, start: usize, max: u64, pool: &mut BufPool) -> Result<(), Failure> {
    let Some(b) = rb.buf.as_mut() else { return Ok(()) };
    let Some(dec) = rb.chunked.as_mut() else {
        let n = (b.last - start) as u64;
        rb.rest -= n;
        rb.received += n;
        rb.done = rb.rest == 0;
        return Ok(());
    };
    // Decode in place: body bytes move down over the framing before them.
    let (end, mut pos, mut out) = (b.last, start, start);
    while pos < end {
        let res = dec.parse(&b.mem[..end], &mut pos);
        match res {
            Ok(Chunked::Data(range)) => {
                check_chunk_size(rb.received, range.len() as u64 + dec.size_hint(), max)?;
                let n = range.len();
                b.mem.copy_within(range, out);
                out += n;
                rb.received += n as u64;
            }
            Ok(Chunked::Again) => check_chunk_size(rb.received, dec.size_hint(), max)?,
            Ok(Chunked::Done) => {
                rb.done = true;
                if pos < end {
                    let mut p = pool.get(b.mem.len());
                    p.append(&b.mem[pos..end]);
                    rb.pipelined = Some(p);
                }
                break;
            }
            Err(_) => return Err(Failure::invalid_chunked()),
        }
    }
    b.last = out;
    Ok(())
}

/// The buffered body is complete: `rb.bufs` = the spilled part (a file region), then memory.
fn finish(rb: &mut RequestBody, pool: &mut BufPool) {
    if let Some(tf) = &rb.temp_file {
        rb.bufs.push_back(Buf::from_file(tf.file.clone(), 0, tf.len));
    }
    if let Some(b) = rb.buf.take() {
        if b.is_empty() {
            pool.put(b);
        } else {
            rb.bufs.push_back(b);
        }
    }
}
