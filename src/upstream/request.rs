//! Sending the request to the upstream, resuming partial writes; a streamed client body
//! (`proxy_request_buffering off`) is pulled from the client as the upstream takes it.
//!
//! nginx: `ngx_http_upstream_send_request()`, `ngx_http_upstream_send_request_body()`,
//! `ngx_http_upstream_send_request_handler()`, `ngx_http_upstream_read_request_handler()`
//! (src/http/ngx_http_upstream.c).
//!
//! Reading and sending a streamed body never call each other: `send_request_body` is one loop
//! that writes what is queued, then asks the body reader for more
//! (`read_unbuffered_request_body`, which only reads and returns), and is entered again from
//! the upstream's write event or the client's read event (`read_request_handler`). The
//! reader gets a new buffer only once everything queued went out, so at most one
//! `client_body_buffer_size` of body waits in memory.
//!
//! Differs from nginx: the request buffers are never consumed; a cursor (`u.send_pos`) walks
//! them, so `reinit` only rewinds the cursor (a streamed body's sent buffers are dropped: it
//! is never retried once sending started). File buffers (a spilled request body) are read a
//! piece at a time into a scratch buffer.

use std::io::IoSlice;

use super::{finalize, header, next, u_mut, u_ref, Ft, WriteHandler};
use crate::core::buf::{Buf, Chain};
use crate::core::step::{HandlerRc, Step};
use crate::event::connection::Ev;
use crate::event::{self, connect::test_connect, posted};
use crate::http::body;
use crate::http::cycle::Cycle;
use crate::http::cycle::{Connection, RequestId};
use crate::http::trace;

/// The write handler while connecting and sending. nginx:
/// `ngx_http_upstream_send_request_handler()`.
pub fn send_request_handler(cy: &mut Cycle, rid: RequestId) {
    let Some((u, ev)) = super::u_ev(cy, rid) else { return };
    let Some(cid) = u.peer.connection else { return };
    if ev.conns.get(cid).is_some_and(|c| c.write.timedout) {
        return next(cy, rid, Ft::Timeout);
    }
    if u.header_sent {
        u.write_handler = WriteHandler::Dummy;
        return;
    }
    send_request(cy, rid, true);
}

/// The client's read handler while a streamed body is sent: more body arrived.
/// nginx: `ngx_http_upstream_read_request_handler()`.
pub fn read_request_handler(cy: &mut Cycle, rid: RequestId) {
    if u_ref(cy, rid).is_none_or(|u| u.finalized || u.peer.connection.is_none()) {
        return;
    }
    // A client timeout is noticed by the body reader (408).
    send_request(cy, rid, false);
}

/// Why sending stopped early.
enum SendError {
    /// Writing to the upstream failed: try the next peer. nginx: NGX_ERROR.
    Io(std::io::Error),
    /// Reading the client body failed (already logged): finalize with this status.
    Body(u16),
}

/// Connect check, then the request (and a streamed body as it comes); once all of it is out,
/// wait for the header. `do_write`: the upstream is writable (false: the client sent more).
/// nginx: `ngx_http_upstream_send_request()`.
pub fn send_request(cy: &mut Cycle, rid: RequestId, do_write: bool) {
    let now = cy.ev.times.msec;
    let Some((u, ev)) = super::u_ev(cy, rid) else { return };
    let Some(cid) = u.peer.connection else { return };
    let (request_sent, cached) = (u.request_sent, u.peer.cached);
    let Some(c) = ev.conns.get_mut(cid) else { return };
    if !request_sent {
        // A cached keepalive connection is known to be connected: no getpeername().
        match if cached { Ok(true) } else { test_connect(c) } {
            Ok(true) => {}
            Ok(false) => return, // spurious wakeup: still connecting
            Err(e) => {
                let msg = format!("connect() failed ({})", crate::core::log::os_err(&e));
                super::log_error(cy, rid, &msg);
                return next(cy, rid, Ft::Error);
            }
        }
    }
    if u.state.connect_time.is_none() {
        u.state.connect_time = Some(now.saturating_sub(u.state.start));
    }
    c.action = "sending request to upstream";
    let (sent, sent_before) = (if request_sent { Some(c.sent) } else { None }, c.sent);
    let rc = send_request_body(cy, rid, do_write);
    let Some(c) = cy.ev.conns.get(cid) else { return };
    let (write_ready, read_ready, sent_now) = (c.write.ready, c.read.ready, c.sent);
    let n = sent_now.saturating_sub(sent_before);
    trace::step(cy, rid, format_args!("upstream send: {n} bytes, {}", SendRc(&rc)));
    match rc {
        Ok(Step::Again) => {
            let (blocked, timeout) =
                u_ref(cy, rid).map_or((false, 60_000), |u| (u.request_body_blocked, u.conf.send_timeout));
            let wev = Ev { c: cid, write: true };
            if !write_ready || blocked {
                if sent != Some(sent_now) || !event::timer_set(&cy.ev, wev) {
                    event::add_timer(&mut cy.ev, wev, timeout);
                }
            } else {
                event::del_timer(&mut cy.ev, wev); // waiting for the client, not the upstream
            }
            if read_ready {
                // The response may already be here; no new edge will announce it.
                posted::post_event(&mut cy.ev, Ev { c: cid, write: false }, posted::Queue::Events);
            }
        }
        Ok(Step::Done(())) => request_body_sent(cy, rid, cid),
        Err(SendError::Io(e)) => {
            super::log_error(cy, rid, &format!("writev() failed ({})", crate::core::log::os_err(&e)));
            next(cy, rid, Ft::Error)
        }
        Err(SendError::Body(status)) => finalize(cy, rid, HandlerRc::Status(status)),
    }
}

/// How a send ended, for the trace line; formatted only when the line is written.
struct SendRc<'a>(&'a Result<Step, SendError>);

impl std::fmt::Display for SendRc<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.0 {
            Ok(Step::Done(())) => "request sent",
            Ok(Step::Again) => "again",
            Err(_) => "error",
        })
    }
}

/// Everything went out: wait for the response header (it may be here already).
fn request_body_sent(cy: &mut Cycle, rid: RequestId, cid: crate::event::connection::ConnId) {
    event::del_timer(&mut cy.ev, Ev { c: cid, write: true });
    let Some(u) = u_mut(cy, rid) else { return };
    u.write_handler = WriteHandler::Dummy;
    let timeout = u.conf.read_timeout;
    if u.request_body_sent {
        return;
    }
    u.request_body_sent = true;
    if u.header_sent {
        return;
    }
    let Some(c) = cy.ev.conns.get(cid) else { return };
    let ready = c.read.ready;
    event::add_timer(&mut cy.ev, Ev { c: cid, write: false }, timeout);
    if ready {
        header::process_header(cy, rid);
    }
}

/// Writes the request; a streamed body is read from the client and queued as the upstream
/// takes it. `u.request_sent` is set as sending *starts*: from then on a non-idempotent
/// request is not retried without `non_idempotent`, and a streamed one never.
///
/// # Returns
/// `Done` when everything went out; `Again` when the upstream is full (`request_body_blocked`)
/// or the client has sent nothing more yet.
///
/// nginx: `ngx_http_upstream_send_request_body()`.
fn send_request_body(cy: &mut Cycle, rid: RequestId, mut do_write: bool) -> Result<Step, SendError> {
    let no_buffering = cy.requests.get(rid).and_then(|r| r.request_body.as_ref()).is_some_and(|rb| rb.no_buffering);
    if !no_buffering {
        // (`write_request` sets `request_sent` and `request_body_blocked`.)
        return write_request(cy, rid).map_err(SendError::Io);
    }
    let Some(u) = u_mut(cy, rid) else { return Ok(Step::Again) };
    let first = !u.request_sent;
    u.request_sent = true;
    if first {
        if let Some(r) = cy.requests.get_mut(rid) {
            r.read_event_handler = read_request_handler;
        }
    }
    if !do_write && u_ref(cy, rid).is_some_and(|u| u.request_body_blocked) {
        return Ok(Step::Again); // the upstream's write event continues
    }
    loop {
        if do_write {
            let step = write_request(cy, rid).map_err(SendError::Io)?;
            drop_sent(cy, rid);
            if step == Step::Again {
                // The client is not read while the upstream is full: its idle timer must not
                // run meanwhile (`send_timeout` bounds the upstream).
                if let Some(cid) = cy.requests.get(rid).map(|r| r.connection) {
                    event::del_timer(&mut cy.ev, Ev { c: cid, write: false });
                }
                return Ok(Step::Again);
            }
            if !reading_body(cy, rid) {
                break;
            }
        }
        // here: everything queued went out, and the client body is still being read
        let step = body::read_unbuffered_request_body(cy, rid).map_err(SendError::Body)?;
        if !queue_body(cy, rid, step == Step::Done(())) && step == Step::Again {
            return Ok(Step::Again); // wait for the client
        }
        do_write = true;
    }
    // here: the whole body went out; from now on the client is only watched for a close
    if let Some(r) = cy.requests.get_mut(rid) {
        r.read_event_handler = super::rd_check_broken_connection;
    }
    Ok(Step::Done(()))
}

/// nginx: `r->reading_body`.
fn reading_body(cy: &Cycle, rid: RequestId) -> bool {
    cy.requests.get(rid).and_then(|r| r.request_body.as_ref()).is_some_and(|rb| rb.reading)
}

/// Moves what the body reader handed over to the request buffers, through the module's
/// `body_output_filter` (proxy re-chunks a chunked body there). `last`: the body ends here.
/// Returns whether anything was queued.
fn queue_body(cy: &mut Cycle, rid: RequestId, last: bool) -> bool {
    let Some(rb) = cy.requests.get_mut(rid).and_then(|r| r.request_body.as_mut()) else { return false };
    let mut body: Chain = rb.bufs.drain(..).collect();
    super::callback(cy, rid, |m, cx| m.body_output_filter(cx, &mut body, last));
    let Some(u) = u_mut(cy, rid) else { return false };
    let queued = !body.is_empty();
    u.request_bufs.extend(body);
    queued
}

/// Frees the buffers already sent of a streamed body (it is never retried), so memory stays
/// bounded by the body buffer.
fn drop_sent(cy: &mut Cycle, rid: RequestId) {
    let Some((_, u, pool)) = super::parts(cy, rid) else { return };
    while u.send_pos.0 > 0 {
        if let Some(b) = u.request_bufs.pop_front() {
            pool.put(b);
        }
        u.send_pos.0 -= 1;
    }
}

/// Writes from `u.send_pos` until done or the socket is full; sets `u.request_sent` (sending
/// started) and `u.request_body_blocked` (bytes left behind) with the one look-up of the
/// context it makes.
fn write_request(cy: &mut Cycle, rid: RequestId) -> std::io::Result<Step> {
    let Cycle { requests, http, ev, .. } = cy;
    let conns = &mut ev.conns;
    let Some(ctx) = requests.get(rid).and_then(|r| super::ctx_mut(http, r)) else {
        return Ok(Step::Done(()));
    };
    let u = &mut ctx.u;
    u.request_sent = true;
    let Some(c) = u.peer.connection.and_then(|cid| conns.get_mut(cid)) else {
        u.request_body_blocked = false;
        return Ok(Step::Done(()));
    };
    let mut scratch = Vec::new();
    loop {
        let (i, off) = u.send_pos;
        if i >= u.request_bufs.len() {
            u.request_body_blocked = false;
            return Ok(Step::Done(()));
        }
        let n = match write_from(c, &u.request_bufs, i, off, &mut scratch)? {
            Step::Done(n) => n,
            Step::Again => {
                u.request_body_blocked = true;
                return Ok(Step::Again);
            }
        };
        u.state.bytes_sent += n as u64;
        advance(&u.request_bufs, &mut u.send_pos, n as u64);
    }
}

/// Buffers one `writev` takes at most. nginx: `NGX_IOVS_PREALLOCATE`.
const IOVS: usize = 64;
/// The iovec array of a request this short or shorter (in buffers).
const SMALL_IOVS: usize = 8;

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
        return crate::event::io::send(c, &scratch[..n]);
    }
    // A request is most often one or two buffers: filling a 64-entry array first would cost
    // more than the gathering itself.
    if bufs.len() - i <= SMALL_IOVS {
        writev_from::<SMALL_IOVS>(c, bufs, i, off)
    } else {
        writev_from::<IOVS>(c, bufs, i, off)
    }
}

/// One `writev` of up to `N` memory buffers from (i, off); `N` is `SMALL_IOVS` or `IOVS`.
fn writev_from<const N: usize>(c: &mut Connection, bufs: &Chain, i: usize, off: u64) -> std::io::Result<Step<usize>> {
    // On the stack, as nginx's `NGX_IOVS_PREALLOCATE` array: no allocation per write.
    let mut iov = [IoSlice::new(&[]); N];
    let mut n = 0;
    let first = bufs.get(i).map_or(&[][..], |b| &b.data()[off as usize..]);
    if !first.is_empty() {
        iov[0] = IoSlice::new(first);
        n = 1;
    }
    for b in bufs.iter().skip(i + 1).take(N - 1) {
        if b.file.is_some() {
            break;
        }
        iov[n] = IoSlice::new(b.data());
        n += 1;
    }
    let iov = &iov[..n];
    if iov.is_empty() {
        return Ok(Step::Done(0));
    }
    let stream = &mut c.stream;
    loop {
        match std::io::Write::write_vectored(stream, iov) {
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
