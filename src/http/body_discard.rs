//! Discarding the client request body, so the connection can serve the next request: what
//! came with the head is skipped at once, the rest is read and dropped as it comes, after the
//! response if need be, for at most `lingering_time` (idle at most `lingering_timeout`).
//!
//! nginx: src/http/ngx_http_request_body.c — `ngx_http_discard_request_body()`,
//! `ngx_http_discarded_request_body_handler()`, `ngx_http_read_discarded_request_body()`,
//! `ngx_http_discard_request_body_filter()`.
//!
//! Differs from nginx:
//! - a `RequestBody` holds the discarding state (the chunked decoder, the bytes still
//!   expected, the lingering deadline); nginx keeps them in `r->headers_in.content_length_n`,
//!   `rb->chunked` and `r->lingering_time`.
//! - bytes read past the end of a chunked body go to `rb.pipelined` (see `body.rs`).

use super::body::{has_body, log_failure, test_expect, Failure, RequestBody};
use super::parse::Chunked;
use super::request::{self, empty_handler};
use crate::core::step::{HandlerRc, Step};
use crate::event;
use crate::event::connection::Ev;
use crate::event::io::{self, Recv};
use crate::http::cycle::Cycle;
use crate::http::cycle::RequestId;

/// nginx: `NGX_HTTP_DISCARD_BUFFER_SIZE`.
const DISCARD_BUFFER_SIZE: usize = 4096;

/// Throws the body away so the connection can be kept alive; takes a reference on the request
/// while bytes are still to come.
///
/// # Returns
/// `Err(status)` when the body cannot be skipped (bad chunked framing: 400), already logged.
///
/// nginx: `ngx_http_discard_request_body()`.
pub fn discard_request_body(cy: &mut Cycle, rid: RequestId) -> Result<(), u16> {
    let Some(r) = cy.requests.get(rid) else { return Ok(()) };
    if r.main != rid || r.discard_body || r.request_body.is_some() {
        return Ok(());
    }
    // nginx 1.22 sends "100 Continue" before looking for a body: a bodiless request that
    // asked for it gets it too.
    if test_expect(cy, rid).is_err() {
        return Err(500);
    }
    let Some(cid) = cy.requests.get(rid).map(|r| r.connection) else { return Ok(()) };
    event::del_timer(&mut cy.ev, Ev { c: cid, write: false });
    let Some(r) = cy.requests.get_mut(rid) else { return Ok(()) };
    if !has_body(r) {
        return Ok(());
    }
    r.request_body = Some(RequestBody::new(r, empty_handler));
    if let Err(f) = discard_preread(cy, rid) {
        return Err(log_failure(cy, rid, &f));
    }
    match read_discarded_request_body(cy, rid) {
        Ok(Step::Done(())) => {
            if let Some(r) = cy.requests.get_mut(rid) {
                r.lingering_close = false;
            }
            Ok(())
        }
        Ok(Step::Again) => {
            // The timer is armed once the response is done (`finalize_connection`).
            let Some(r) = cy.requests.get_mut(rid) else { return Ok(()) };
            r.read_event_handler = discarded_request_body_handler;
            r.count += 1;
            r.discard_body = true;
            Ok(())
        }
        Err(f) => Err(log_failure(cy, rid, &f)),
    }
}

/// The read handler while discarding: re-armed on every read, never past the deadline.
/// nginx: `ngx_http_discarded_request_body_handler()`.
pub fn discarded_request_body_handler(cy: &mut Cycle, rid: RequestId) {
    let now = cy.ev.times.msec;
    let Some(r) = cy.requests.get_mut(rid) else { return };
    let cid = r.connection;
    let (_, lingering_timeout) = r.loc.core.lingering();
    if cy.ev.conns.get(cid).is_some_and(|c| c.read.timedout) {
        if let Some(c) = cy.ev.conns.get_mut(cid) {
            c.error = true;
        }
        return request::finalize_request(cy, rid, HandlerRc::Error);
    }
    let deadline = r.request_body.as_ref().map_or(0, |rb| rb.lingering_time);
    let timer = match deadline {
        0 => None, // the response is not done yet: no deadline so far
        d if d <= now => {
            r.discard_body = false;
            r.lingering_close = false;
            return request::finalize_request(cy, rid, HandlerRc::Error);
        }
        d => Some((d - now).min(lingering_timeout)),
    };
    match read_discarded_request_body(cy, rid) {
        Ok(Step::Done(())) => {
            if let Some(r) = cy.requests.get_mut(rid) {
                r.discard_body = false;
                r.lingering_close = false;
                if let Some(rb) = r.request_body.as_mut() {
                    rb.lingering_time = 0;
                }
            }
            event::del_timer(&mut cy.ev, Ev { c: cid, write: false });
            request::finalize_request(cy, rid, HandlerRc::Done);
        }
        Ok(Step::Again) => {
            if let Some(t) = timer {
                event::add_timer(&mut cy.ev, Ev { c: cid, write: false }, t);
            }
        }
        Err(f) => {
            log_failure(cy, rid, &f);
            if let Some(c) = cy.ev.conns.get_mut(cid) {
                c.error = true;
            }
            request::finalize_request(cy, rid, HandlerRc::Error);
        }
    }
}

/// Skips the body bytes that came with the head. nginx: `ngx_http_discard_request_body_filter()`
/// on `r->header_in`.
fn discard_preread(cy: &mut Cycle, rid: RequestId) -> Result<(), Failure> {
    let Some(r) = cy.requests.get_mut(rid) else { return Ok(()) };
    let Some(rb) = r.request_body.as_deref_mut() else { return Ok(()) };
    let hin = &mut r.header_in;
    let n = discard_filter(rb, hin.data())?;
    hin.consume(n);
    Ok(())
}

/// Drops body bytes from `data`; returns how many were body (the rest is the next request).
/// nginx: `ngx_http_discard_request_body_filter()`.
fn discard_filter(rb: &mut RequestBody, data: &[u8]) -> Result<usize, Failure> {
    let Some(dec) = rb.chunked.as_mut() else {
        let n = (rb.rest as usize).min(data.len());
        rb.rest -= n as u64;
        rb.done = rb.rest == 0;
        return Ok(n);
    };
    let mut pos = 0;
    while pos < data.len() {
        match dec.parse(data, &mut pos) {
            Ok(Chunked::Data(_)) => {}
            Ok(Chunked::Again) => break,
            Ok(Chunked::Done) => {
                rb.done = true;
                break;
            }
            Err(_) => return Err(Failure::invalid_chunked()),
        }
    }
    Ok(pos)
}

/// Reads and drops body bytes until the body ends or the socket is empty. A client that
/// closes or fails ends the discarding (`c.read.eof` / `c.error` then close the connection).
/// nginx: `ngx_http_read_discarded_request_body()`.
fn read_discarded_request_body(cy: &mut Cycle, rid: RequestId) -> Result<Step, Failure> {
    let mut scratch = [0u8; DISCARD_BUFFER_SIZE];
    let Cycle { requests, ev, .. } = cy;
    let (conns, pool) = (&mut ev.conns, &mut ev.bufs);
    let Some(r) = requests.get_mut(rid) else { return Ok(Step::Done(())) };
    let (Some(c), Some(rb)) = (conns.get_mut(r.connection), r.request_body.as_deref_mut()) else {
        return Ok(Step::Done(()));
    };
    while !rb.done {
        let want = if rb.chunked.is_some() { scratch.len() } else { (rb.rest as usize).min(scratch.len()) };
        match io::recv(c, &mut scratch[..want]) {
            Recv::Data(n) => {
                let used = discard_filter(rb, &scratch[..n])?;
                if used < n {
                    // Past the last chunk: the start of the next request.
                    let mut p = pool.get(DISCARD_BUFFER_SIZE);
                    p.append(&scratch[used..n]);
                    rb.pipelined = Some(p);
                }
            }
            Recv::Again => return Ok(Step::Again),
            Recv::Eof => rb.done = true,
            Recv::Error(_) => {
                c.error = true;
                rb.done = true;
            }
        }
    }
    r.read_event_handler = request::block_reading;
    Ok(Step::Done(()))
}
