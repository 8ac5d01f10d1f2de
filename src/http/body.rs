//! Reading or discarding the client request body: `Content-Length` or chunked, bounded by
//! `client_max_body_size`, kept in one `client_body_buffer_size` buffer and spilled to a temp
//! file beyond it, or streamed to a consumer (`proxy_request_buffering off`).
//!
//! nginx: src/http/ngx_http_request_body.c — `ngx_http_read_client_request_body()`,
//! `ngx_http_do_read_client_request_body()`, `ngx_http_read_unbuffered_request_body()`,
//! `ngx_http_discard_request_body()`, `ngx_http_read_discarded_request_body()`,
//! `ngx_http_test_expect()`.
//!
//! Differs from nginx:
//! - no request body filter chain: the chunked decoder is applied here directly.
//! - chunked bodies are read through `r.header_in`, so bytes past the end of the body (the next
//!   pipelined request) stay there; `Content-Length` bodies are read straight into the body
//!   buffer, never past their end.

use std::path::PathBuf;

use super::parse::{Chunked, ChunkedDecoder};
use super::request::{self, Request, RequestHandler};
use crate::core::buf::{Buf, Chain};
use crate::core::connection::{Ev, RequestId};
use crate::core::cycle::Cycle;
use crate::core::step::HandlerRc;
use crate::core::temp_file::TempFile;
use crate::event;
use crate::os::io::{self, Recv};

/// A request body being read. nginx: `ngx_http_request_body_t`.
pub struct RequestBody {
    /// The body so far: file region (if spilled) then memory. nginx: `rb->bufs`.
    pub bufs: Chain,
    /// The buffer being filled. nginx: `rb->buf`.
    pub buf: Option<Buf>,
    /// Bytes still expected (Content-Length mode). nginx: `rb->rest`.
    pub rest: u64,
    /// The chunked decoder. nginx: `rb->chunked`.
    pub chunked: Option<ChunkedDecoder>,
    /// Body bytes received.
    pub received: u64,
    /// The whole body has been received.
    pub done: bool,
    /// Spill file. nginx: `rb->temp_file`.
    pub temp_file: Option<TempFile>,
    /// Called once the body is ready (whole, or — unbuffered — as soon as reading started).
    /// nginx: `rb->post_handler`.
    pub post_handler: RequestHandler,
    /// Streamed to a consumer that drains `bufs` (nginx: `r->request_body_no_buffering`).
    pub unbuffered: bool,
    /// The post handler has run (unbuffered mode calls it before the body is complete).
    pub started: bool,
    /// Called when new data arrives in unbuffered mode (the upstream's send handler).
    pub data_handler: Option<RequestHandler>,
}

fn body_temp_dir(cy: &Cycle) -> PathBuf {
    cy.conf.prefix.join("client_body_temp")
}

/// Moves the unread bytes of `header_in` down to just past the request head, never over it:
/// the method, URI and header ranges of `r.head` point into that buffer, and the upstream
/// request (proxy's `create_request`) and the access log read them after the body.
fn compact_past_head(b: &mut Buf, head_len: usize) {
    if b.pos > head_len {
        b.mem.copy_within(b.pos..b.last, head_len);
        b.last -= b.pos - head_len;
        b.pos = head_len;
    }
}

/// Whether the request has a body at all.
pub fn has_body(r: &Request) -> bool {
    r.headers_in.chunked || r.headers_in.content_length_n.is_some_and(|n| n > 0)
}

/// Sends "100 Continue" when asked. nginx: `ngx_http_test_expect()`.
fn test_expect(cy: &mut Cycle, rid: RequestId) -> Result<(), ()> {
    let Some(r) = cy.requests.get_mut(rid) else {
        return Err(());
    };
    if !r.headers_in.expect_continue || r.http_version < 1001 {
        return Ok(());
    }
    r.headers_in.expect_continue = false;
    let Some(c) = cy.conns.get_mut(r.connection) else {
        return Err(());
    };
    match io::send(c, b"HTTP/1.1 100 Continue\r\n\r\n") {
        Ok(crate::core::step::Step::Done(25)) => Ok(()),
        _ => Err(()), // nginx: a short write here is treated as an error too
    }
}

/// Starts reading the body; calls `post_handler` when it is complete (or, `unbuffered`, right
/// away). Takes a reference on the request (`r->main->count++`).
///
/// # Returns
/// `Ok` (reading started or finished), or `Status` for an error to finalize with.
///
/// nginx: `ngx_http_read_client_request_body()`.
pub fn read_client_request_body(
    cy: &mut Cycle,
    rid: RequestId,
    post_handler: RequestHandler,
    unbuffered: bool,
) -> HandlerRc {
    let Some(r) = cy.requests.get_mut(rid) else {
        return HandlerRc::Error;
    };
    let main = r.main;
    if let Some(mr) = cy.requests.get_mut(main) {
        mr.count += 1;
    }
    let Some(r) = cy.requests.get_mut(rid) else {
        return HandlerRc::Error;
    };
    if r.request_body.is_some() || r.discard_body || r.main != rid {
        post_handler(cy, rid);
        return HandlerRc::Ok;
    }
    let body_size = r.loc.core.client_body_buffer_size();
    let chunked = r.headers_in.chunked.then(|| ChunkedDecoder::new(i64::MAX as u64));
    let rest = r.headers_in.content_length_n.unwrap_or(0);
    let mut rb = Box::new(RequestBody {
        bufs: Chain::new(),
        buf: None,
        rest,
        chunked,
        received: 0,
        done: !has_body(r),
        temp_file: None,
        post_handler,
        unbuffered,
        started: false,
        data_handler: None,
    });
    if !rb.done {
        let size = if rb.chunked.is_some() { body_size } else { (rest as usize).min(body_size) };
        rb.buf = Some(cy.bufs.get(size.max(1)));
    }
    let done = rb.done;
    if let Some(r) = cy.requests.get_mut(rid) {
        r.request_body = Some(rb);
    }
    if done {
        post_handler(cy, rid);
        return HandlerRc::Ok;
    }
    if test_expect(cy, rid).is_err() {
        return HandlerRc::Status(500);
    }
    if let Err(s) = do_read(cy, rid) {
        return HandlerRc::Status(s);
    }
    // Unbuffered: the consumer starts now, with whatever has arrived; it is told about more
    // through `data_handler`. nginx: `rb->post_handler(r)` for `request_body_no_buffering`.
    let start =
        cy.requests.get_mut(rid).and_then(|r| r.request_body.as_mut()).filter(|rb| rb.unbuffered && !rb.started).map(
            |rb| {
                rb.started = true;
                rb.post_handler
            },
        );
    if let Some(h) = start {
        flush_unbuffered(cy, rid);
        h(cy, rid);
    }
    HandlerRc::Ok
}

/// Unbuffered: moves a partly filled buffer to `bufs` so the consumer can send it now.
fn flush_unbuffered(cy: &mut Cycle, rid: RequestId) {
    let Some(r) = cy.requests.get_mut(rid) else {
        return;
    };
    let Some(rb) = r.request_body.as_mut() else {
        return;
    };
    if rb.buf.as_ref().is_some_and(|b| !b.is_empty()) {
        let size = rb.buf.as_ref().map_or(1, |b| b.mem.len());
        if let Some(b) = rb.buf.replace(cy.bufs.get(size)) {
            rb.bufs.push_back(b);
        }
    }
}

/// Continues an unbuffered body after the consumer drained `bufs`.
/// nginx: `ngx_http_read_unbuffered_request_body()`.
pub fn read_unbuffered_request_body(cy: &mut Cycle, rid: RequestId) -> Result<(), u16> {
    do_read(cy, rid)
}

/// The read handler while a body is read. nginx: `ngx_http_read_client_request_body_handler()`.
pub fn read_client_request_body_handler(cy: &mut Cycle, rid: RequestId) {
    let Some(r) = cy.requests.get(rid) else {
        return;
    };
    let cid = r.connection;
    if let Some(c) = cy.conns.get_mut(cid) {
        if c.read.timedout {
            c.read.timedout = false;
            log::info!("*{} client timed out while reading client request body", c.number);
            return request::finalize_request(cy, rid, HandlerRc::Status(408));
        }
    }
    if let Err(s) = do_read(cy, rid) {
        request::finalize_request(cy, rid, HandlerRc::Status(s));
    }
}

/// Reads until the body is complete or the socket is empty, then calls the handler.
/// nginx: `ngx_http_do_read_client_request_body()`.
fn do_read(cy: &mut Cycle, rid: RequestId) -> Result<(), u16> {
    loop {
        consume_preread(cy, rid)?;
        let Some(r) = cy.requests.get_mut(rid) else {
            return Ok(());
        };
        let Some(rb) = r.request_body.as_mut() else {
            return Ok(());
        };
        if rb.done {
            return body_done(cy, rid);
        }
        if rb.buf.as_ref().is_some_and(Buf::is_full) {
            if rb.unbuffered {
                return notify(cy, rid); // wait for the consumer to drain
            }
            spill(cy, rid)?;
            continue;
        }
        let cid = r.connection;
        let Some(c) = cy.conns.get_mut(cid) else {
            return Ok(());
        };
        let recv = if rb.chunked.is_some() {
            compact_past_head(&mut r.header_in, r.head.len);
            if r.header_in.is_full() {
                return Err(400);
            }
            let res = io::recv(c, r.header_in.free_space());
            if let Recv::Data(n) = res {
                r.header_in.last += n;
            }
            res
        } else {
            let Some(b) = rb.buf.as_mut() else {
                return Ok(());
            };
            let want = (rb.rest as usize).min(b.free_space().len());
            let res = io::recv(c, &mut b.free_space()[..want]);
            if let Recv::Data(n) = res {
                b.last += n;
                rb.rest -= n as u64;
                rb.received += n as u64;
                r.request_length += n as u64;
                if rb.rest == 0 {
                    rb.done = true;
                }
            }
            res
        };
        match recv {
            Recv::Data(_) => {
                if rb_unbuffered(cy, rid) {
                    notify(cy, rid)?;
                }
            }
            Recv::Again => {
                let Some(r) = cy.requests.get_mut(rid) else {
                    return Ok(());
                };
                r.read_event_handler = read_client_request_body_handler;
                let timeout = r.loc.core.client_body_timeout();
                event::add_timer(cy, Ev { c: cid, write: false }, timeout);
                return Ok(());
            }
            Recv::Eof | Recv::Error(_) => {
                if let Some(c) = cy.conns.get_mut(cid) {
                    log::info!("*{} client prematurely closed connection while reading client request body", c.number);
                    c.error = true;
                }
                return Err(400);
            }
        }
    }
}

fn rb_unbuffered(cy: &Cycle, rid: RequestId) -> bool {
    cy.requests.get(rid).and_then(|r| r.request_body.as_ref()).is_some_and(|rb| rb.unbuffered)
}

/// Unbuffered mode: hands the filled buffer to `bufs` and tells the consumer.
fn notify(cy: &mut Cycle, rid: RequestId) -> Result<(), u16> {
    let Some(r) = cy.requests.get_mut(rid) else {
        return Ok(());
    };
    let Some(rb) = r.request_body.as_mut() else {
        return Ok(());
    };
    if let Some(b) = rb.buf.as_mut() {
        if !b.is_empty() {
            let size = b.mem.len();
            if let Some(full) = rb.buf.replace(cy.bufs.get(size)) {
                rb.bufs.push_back(full);
            }
        }
    }
    if let Some(h) = rb.data_handler {
        h(cy, rid);
    }
    Ok(())
}

/// Moves body bytes already read with the head (or read via `header_in` for chunked bodies)
/// into the body buffer.
fn consume_preread(cy: &mut Cycle, rid: RequestId) -> Result<(), u16> {
    let Some(r) = cy.requests.get_mut(rid) else {
        return Ok(());
    };
    let max = r.loc.core.client_max_body_size();
    let Some(rb) = r.request_body.as_mut() else {
        return Ok(());
    };
    while !rb.done && !r.header_in.is_empty() {
        let Some(b) = rb.buf.as_mut() else {
            return Ok(());
        };
        if b.is_full() {
            return Ok(());
        }
        let data = r.header_in.data();
        match rb.chunked.as_mut() {
            None => {
                let n = b.append(&data[..(rb.rest as usize).min(data.len())]);
                r.header_in.consume(n);
                rb.rest -= n as u64;
                rb.received += n as u64;
                r.request_length += n as u64;
                rb.done = rb.rest == 0;
            }
            Some(dec) => {
                let mut pos = 0;
                let room = b.free_space().len();
                match dec.parse(&data[..data.len()], &mut pos) {
                    Ok(Chunked::Data(range)) => {
                        // Copy what fits; give the rest back by rewinding `pos`.
                        let take = range.len().min(room);
                        b.append(&data[range.start..range.start + take]);
                        let unread = range.len() - take;
                        if unread > 0 {
                            dec.unread(unread as u64);
                            pos -= unread;
                        }
                        rb.received += take as u64;
                        if max > 0 && rb.received > max {
                            log::error!("client intended to send too large chunked body: {} bytes", rb.received);
                            return Err(413);
                        }
                    }
                    Ok(Chunked::Again) => {}
                    Ok(Chunked::Done) => rb.done = true,
                    Err(e) => {
                        log::info!("{e}");
                        return Err(400);
                    }
                }
                r.header_in.consume(pos);
                r.request_length += pos as u64;
            }
        }
    }
    Ok(())
}

/// Writes the full body buffer to the temp file. nginx: `ngx_http_write_request_body()`.
fn spill(cy: &mut Cycle, rid: RequestId) -> Result<(), u16> {
    let dir = body_temp_dir(cy);
    let Some(r) = cy.requests.get_mut(rid) else {
        return Ok(());
    };
    let Some(rb) = r.request_body.as_mut() else {
        return Ok(());
    };
    if rb.temp_file.is_none() {
        match TempFile::create(&dir) {
            Ok(t) => rb.temp_file = Some(t),
            Err(e) => {
                log::error!("create temp file in \"{}\" failed ({e})", dir.display());
                return Err(500);
            }
        }
    }
    if let (Some(tf), Some(b)) = (rb.temp_file.as_mut(), rb.buf.as_mut()) {
        if let Err(e) = tf.append(b.data()) {
            log::error!("write to client body temp file failed ({e})");
            return Err(500);
        }
        b.reset();
    }
    Ok(())
}

/// The body is complete: assemble `bufs`, stop the timer, run the post handler.
fn body_done(cy: &mut Cycle, rid: RequestId) -> Result<(), u16> {
    let Some(r) = cy.requests.get_mut(rid) else {
        return Ok(());
    };
    let cid = r.connection;
    r.read_event_handler = request::block_reading;
    let Some(rb) = r.request_body.as_mut() else {
        return Ok(());
    };
    if let Some(tf) = &rb.temp_file {
        if !rb.bufs.iter().any(|b| b.file.is_some()) {
            rb.bufs.push_front(Buf::from_file(tf.file.clone(), 0, tf.len));
        }
    }
    if let Some(b) = rb.buf.take() {
        if b.is_empty() {
            cy.bufs.put(b);
        } else {
            rb.bufs.push_back(b);
        }
    }
    let h = if rb.unbuffered && rb.started {
        rb.data_handler
    } else {
        rb.started = true;
        Some(rb.post_handler)
    };
    event::del_timer(cy, Ev { c: cid, write: false });
    if let Some(h) = h {
        h(cy, rid);
    }
    Ok(())
}

/// Returns a body's buffers to the pool (the temp file closes and, being unlinked, vanishes).
pub fn free_body(cy: &mut Cycle, mut rb: RequestBody) {
    cy.bufs.put_chain(&mut rb.bufs);
    if let Some(b) = rb.buf.take() {
        cy.bufs.put(b);
    }
}

/// Throws the body away so the connection can be kept alive.
/// nginx: `ngx_http_discard_request_body()`.
pub fn discard_request_body(cy: &mut Cycle, rid: RequestId) -> Result<(), u16> {
    let Some(r) = cy.requests.get_mut(rid) else {
        return Ok(());
    };
    if r.main != rid || r.discard_body || r.request_body.is_some() || !has_body(r) {
        return Ok(());
    }
    if test_expect(cy, rid).is_err() {
        return Err(500);
    }
    let Some(r) = cy.requests.get_mut(rid) else {
        return Ok(());
    };
    r.request_body = Some(Box::new(RequestBody {
        bufs: Chain::new(),
        buf: None,
        rest: r.headers_in.content_length_n.unwrap_or(0),
        chunked: r.headers_in.chunked.then(|| ChunkedDecoder::new(i64::MAX as u64)),
        received: 0,
        done: false,
        temp_file: None,
        post_handler: request::empty_handler,
        unbuffered: false,
        started: false,
        data_handler: None,
    }));
    match read_discarded_request_body(cy, rid)? {
        true => {
            // All of it came with the head: nothing is left to drain, the connection can
            // be kept (an error page must not linger for a body that is gone).
            if let Some(rb) = cy.requests.get_mut(rid).and_then(|r| r.request_body.as_mut()) {
                rb.done = true;
            }
            Ok(())
        }
        false => {
            let Some(r) = cy.requests.get_mut(rid) else {
                return Ok(());
            };
            r.discard_body = true;
            r.count += 1;
            r.read_event_handler = discarded_request_body_handler;
            let (_, timeout) = r.loc.core.lingering();
            let cid = r.connection;
            event::add_timer(cy, Ev { c: cid, write: false }, timeout);
            Ok(())
        }
    }
}

/// Reads and drops body bytes; `Ok(true)` when the body has ended.
/// nginx: `ngx_http_read_discarded_request_body()`.
fn read_discarded_request_body(cy: &mut Cycle, rid: RequestId) -> Result<bool, u16> {
    let mut scratch = [0u8; 4096];
    loop {
        let Some(r) = cy.requests.get_mut(rid) else {
            return Ok(true);
        };
        let Some(rb) = r.request_body.as_mut() else {
            return Ok(true);
        };
        // First whatever came with the head.
        match rb.chunked.as_mut() {
            None => {
                let n = (rb.rest as usize).min(r.header_in.data().len());
                r.header_in.consume(n);
                rb.rest -= n as u64;
                if rb.rest == 0 {
                    return Ok(true);
                }
            }
            Some(dec) => loop {
                let data = r.header_in.data();
                if data.is_empty() {
                    break;
                }
                let mut pos = 0;
                let res = dec.parse(data, &mut pos);
                r.header_in.consume(pos);
                match res {
                    Ok(Chunked::Done) => return Ok(true),
                    Ok(Chunked::Data(_)) => continue,
                    Ok(Chunked::Again) => break,
                    Err(_) => {
                        log::error!("client sent invalid chunked body");
                        return Err(400);
                    }
                }
            },
        }
        let cid = r.connection;
        let Some(c) = cy.conns.get_mut(cid) else {
            return Ok(true);
        };
        let recv = if rb.chunked.is_some() {
            compact_past_head(&mut r.header_in, r.head.len);
            if r.header_in.is_full() {
                return Err(400);
            }
            let res = io::recv(c, r.header_in.free_space());
            if let Recv::Data(n) = res {
                r.header_in.last += n;
            }
            res
        } else {
            let want = (rb.rest as usize).min(scratch.len());
            let res = io::recv(c, &mut scratch[..want]);
            if let Recv::Data(n) = res {
                rb.rest -= n as u64;
            }
            res
        };
        match recv {
            Recv::Data(_) => continue,
            Recv::Again => return Ok(false),
            Recv::Eof | Recv::Error(_) => {
                if let Some(c) = cy.conns.get_mut(cid) {
                    c.error = true;
                }
                return Ok(true);
            }
        }
    }
}

/// The read handler while discarding. nginx: `ngx_http_discarded_request_body_handler()`.
pub fn discarded_request_body_handler(cy: &mut Cycle, rid: RequestId) {
    let Some(r) = cy.requests.get(rid) else {
        return;
    };
    let cid = r.connection;
    if cy.conns.get(cid).is_some_and(|c| c.read.timedout) {
        if let Some(c) = cy.conns.get_mut(cid) {
            c.error = true;
        }
        return request::finalize_request(cy, rid, HandlerRc::Error);
    }
    match read_discarded_request_body(cy, rid) {
        Ok(true) => {
            event::del_timer(cy, Ev { c: cid, write: false });
            if let Some(r) = cy.requests.get_mut(rid) {
                if let Some(rb) = r.request_body.as_mut() {
                    rb.done = true;
                }
                r.discard_body = false;
                r.lingering_close = false;
                r.read_event_handler = request::block_reading;
            }
            request::finalize_request(cy, rid, HandlerRc::Done);
        }
        Ok(false) => {}
        Err(_) => {
            if let Some(c) = cy.conns.get_mut(cid) {
                c.error = true;
            }
            request::finalize_request(cy, rid, HandlerRc::Error);
        }
    }
}
