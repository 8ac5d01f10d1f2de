//! Sending the request to the upstream, resuming partial writes.
//!
//! nginx: `ngx_http_upstream_send_request()`, `ngx_http_upstream_send_request_body()`,
//! `ngx_http_upstream_send_request_handler()` (src/http/ngx_http_upstream.c).
//!
//! Differs from nginx: the request buffers are never consumed; a cursor (`u.send_pos`) walks
//! them, so `reinit` only rewinds the cursor. File buffers (a spilled request body) are read a
//! piece at a time into a scratch buffer.

use std::io::IoSlice;

use super::{finalize, header, next, u_mut, Ft, WriteHandler};
use crate::core::buf::{Buf, Chain};
use crate::core::connection::{Connection, Ev, RequestId};
use crate::core::cycle::Cycle;
use crate::core::step::{HandlerRc, Step};
use crate::event::{self, connect::test_connect, posted};

/// The write handler while connecting and sending. nginx:
/// `ngx_http_upstream_send_request_handler()`.
pub fn send_request_handler(cy: &mut Cycle, rid: RequestId) {
    let Some(u) = u_mut(cy, rid) else { return };
    let Some(cid) = u.peer.connection else { return };
    if u.header_sent {
        u.write_handler = WriteHandler::Dummy;
        return;
    }
    if cy.conns.get(cid).is_some_and(|c| c.write.timedout) {
        return next(cy, rid, Ft::Timeout);
    }
    send_request(cy, rid);
}

/// Connect check, then write `request_bufs` from the cursor; once all is out, wait for the
/// header. nginx: `ngx_http_upstream_send_request()`.
pub fn send_request(cy: &mut Cycle, rid: RequestId) {
    let now = cy.times.msec;
    let Some(u) = u_mut(cy, rid) else { return };
    let Some(cid) = u.peer.connection else { return };
    let first = u.state.connect_time.is_none();
    let cached = u.peer.cached;
    let Some(c) = cy.conns.get_mut(cid) else {
        return;
    };
    if first {
        // A cached keepalive connection is known to be connected: no getpeername().
        match if cached { Ok(true) } else { test_connect(c) } {
            Ok(true) => {}
            Ok(false) => return, // spurious wakeup: still connecting
            Err(e) => {
                let msg = format!("connect() failed ({})", crate::os::process::os_err(&e));
                super::log_error(cy, rid, &msg);
                return next(cy, rid, Ft::Error);
            }
        }
        c.action = "sending request to upstream";
        let Some(u) = u_mut(cy, rid) else { return };
        u.state.connect_time = Some(now.saturating_sub(u.state.start));
    }
    match write_request(cy, rid) {
        Ok(Step::Done(())) => {}
        Ok(Step::Again) => {
            let timeout = u_mut(cy, rid).map_or(60_000, |u| u.conf.send_timeout);
            event::add_timer(cy, Ev { c: cid, write: true }, timeout);
            return;
        }
        Err(e) => {
            super::log_error(cy, rid, &format!("writev() failed ({})", crate::os::process::os_err(&e)));
            return next(cy, rid, Ft::Error);
        }
    }
    // here: everything queued is out; a streamed body may still be arriving
    if body_pending(cy, rid) {
        drop_sent(cy, rid);
        if let Err(status) = crate::http::body::read_unbuffered_request_body(cy, rid) {
            return finalize(cy, rid, HandlerRc::Status(status));
        }
        return;
    }
    let Some(u) = u_mut(cy, rid) else { return };
    u.request_sent = true;
    u.write_handler = WriteHandler::Dummy;
    let timeout = u.conf.read_timeout;
    event::del_timer(cy, Ev { c: cid, write: true });
    let Some(c) = cy.conns.get_mut(cid) else {
        return;
    };
    c.action = "reading response header from upstream";
    let ready = c.read.ready;
    if !event::timer_set(cy, Ev { c: cid, write: false }) {
        event::add_timer(cy, Ev { c: cid, write: false }, timeout);
    }
    if ready {
        // The response may already be here; no new edge will announce it.
        header::process_header(cy, rid);
    }
    let _ = posted::Queue::Events;
}

/// A streamed (`proxy_request_buffering off`) body is not complete yet.
fn body_pending(cy: &Cycle, rid: RequestId) -> bool {
    cy.requests
        .get(rid)
        .and_then(|r| r.request_body.as_ref())
        .is_some_and(|rb| rb.unbuffered && (!rb.done || !rb.bufs.is_empty()))
}

/// Frees the buffers already sent of a streamed body (it cannot be retried anyway), so memory
/// stays bounded by the body buffer.
fn drop_sent(cy: &mut Cycle, rid: RequestId) {
    let Some((_, u, pool)) = super::parts(cy, rid) else {
        return;
    };
    while u.send_pos.0 > 0 {
        if let Some(b) = u.request_bufs.pop_front() {
            pool.put(b);
        }
        u.send_pos.0 -= 1;
    }
    u.peer.tries = u.peer.tries.min(1);
}

/// Writes from `u.send_pos` until done or the socket is full.
fn write_request(cy: &mut Cycle, rid: RequestId) -> std::io::Result<Step> {
    let Cycle { requests, upstreams, conns, .. } = cy;
    let Some(uid) = requests.get(rid).and_then(|r| r.upstream) else {
        return Ok(Step::Done(()));
    };
    let Some(ctx) = upstreams.get_mut(uid) else {
        return Ok(Step::Done(()));
    };
    let u = &mut ctx.u;
    let Some(c) = u.peer.connection.and_then(|cid| conns.get_mut(cid)) else {
        return Ok(Step::Done(()));
    };
    let mut scratch = Vec::new();
    loop {
        let (i, off) = u.send_pos;
        if i >= u.request_bufs.len() {
            return Ok(Step::Done(()));
        }
        let n = match write_from(c, &u.request_bufs, i, off, &mut scratch)? {
            Step::Done(n) => n,
            Step::Again => return Ok(Step::Again),
        };
        u.state.bytes_sent += n as u64;
        advance(&u.request_bufs, &mut u.send_pos, n as u64);
    }
}

/// One `writev` of the memory buffers from (i, off), or one piece of a file buffer.
fn write_from(
    c: &mut Connection,
    bufs: &Chain,
    i: usize,
    off: u64,
    scratch: &mut Vec<u8>,
) -> std::io::Result<Step<usize>> {
    let b = &bufs[i];
    if let Some(f) = &b.file {
        let want = ((f.last - f.pos - off) as usize).min(32 * 1024);
        scratch.resize(want, 0);
        let n = std::os::unix::fs::FileExt::read_at(&*f.file, &mut scratch[..want], f.pos + off)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        return crate::os::io::send(c, &scratch[..n]);
    }
    let mut iov: Vec<IoSlice<'_>> = Vec::with_capacity(8);
    let first = &b.data()[off as usize..];
    if !first.is_empty() {
        iov.push(IoSlice::new(first));
    }
    for b in bufs.iter().skip(i + 1).take(63) {
        if b.file.is_some() {
            break;
        }
        iov.push(IoSlice::new(b.data()));
    }
    if iov.is_empty() {
        return Ok(Step::Done(0));
    }
    let stream = &mut c.stream;
    loop {
        match std::io::Write::write_vectored(stream, &iov) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                c.sent += n as u64;
                return Ok(Step::Done(n));
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                c.write.ready = false;
                return Ok(Step::Again);
            }
            Err(e) => return Err(e),
        }
    }
}

/// Moves the cursor `n` bytes forward across buffers (skipping empty ones).
fn advance(bufs: &Chain, pos: &mut (usize, u64), mut n: u64) {
    while pos.0 < bufs.len() {
        let len = bufs[pos.0].len() - pos.1;
        if n < len {
            pos.1 += n;
            return;
        }
        n -= len;
        pos.0 += 1;
        pos.1 = 0;
        if n == 0 && bufs.get(pos.0).is_none_or(|b| !b.is_empty()) {
            return;
        }
    }
}

/// Appends a copy of memory bytes to the request buffers (helper for `create_request`).
pub fn push_bytes(u: &mut super::Upstream, bytes: Vec<u8>) {
    u.request_bufs.push_back(Buf::from_vec(bytes));
}

/// New client body bytes arrived (`proxy_request_buffering off`): queue them and send.
/// nginx: `ngx_http_upstream_read_request_handler()` → `ngx_http_upstream_send_request()`.
pub fn body_data(cy: &mut Cycle, rid: RequestId) {
    let Some(r) = cy.requests.get_mut(rid) else {
        return;
    };
    let Some(rb) = r.request_body.as_mut() else {
        return;
    };
    let more: Vec<Buf> = rb.bufs.drain(..).collect();
    let Some(u) = u_mut(cy, rid) else { return };
    u.request_bufs.extend(more);
    let connected = u.state.connect_time.is_some() && !u.request_sent;
    if connected {
        send_request(cy, rid);
    }
}

/// Ends the request when it cannot even be sent.
pub fn fail(cy: &mut Cycle, rid: RequestId) {
    finalize(cy, rid, HandlerRc::Status(500));
}
