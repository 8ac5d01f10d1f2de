//! Sending the upstream response on: the header through the filters, then the body in one of
//! the seed's three ways — kept for the module (`input_filter`), forwarded through one buffer
//! (buffering off), or through `bufs` plus a temp file (buffering on).
//!
//! nginx: `ngx_http_upstream_send_response()`, `ngx_http_upstream_process_non_buffered_request()`,
//! `ngx_http_upstream_non_buffered_filter_init()` / `_filter()`,
//! `ngx_http_upstream_process_body_in_memory()`, `ngx_http_upstream_process_upstream()`,
//! `ngx_http_upstream_process_downstream()` and `ngx_event_pipe()`.
//!
//! Differs from nginx:
//! - a long body of known length that no filter needs to see skips user memory: upstream
//!   socket → kernel pipe → client socket (`upstream::body_splice`). The pipe's bytes go to
//!   the client before anything else, and while they wait the ordinary path below reads on.
//! - in the in-memory mode of a main request the framework sends what the module left in
//!   `r.headers_out` and `u.out` after `finalize_request(Ok)` (`send_in_memory`); nginx leaves
//!   the body in `u->buffer` for a parent request. For a subrequest the body goes to the
//!   child's `r.out` for its parent (`keep_in_memory`), at most `buffer_size` bytes.
//! - one burst of reads per event: when the upstream has more, its read event is posted
//!   behind the other connections ready in the turn (nginx's pipe reads until EAGAIN), so one
//!   fast response does not run to its end while the others wait (1 MiB p99, performance.md).
//! - one loop (`process_body`) serves the two forwarding modes; they differ only in how much
//!   memory may wait for the client (one `buffer_size`, or `bufs`), whether the overflow may
//!   go to a temp file, and how much is handed to the client at once (`busy_buffers_size`).
//! - a buffer the body was read into goes down the chain itself (nginx links shadow bufs that
//!   point into it); `u.buffer` then takes a fresh one from the worker's pool. A small piece
//!   (under half a buffer) is copied instead, so that a buffer is not held for a few bytes.
//! - buffering on, the whole waiting chain is offered to one `writev` and what the socket does
//!   not take beyond `busy_buffers_size` comes back (`reclaim`); nginx passes at most
//!   `busy_buffers_size` per call. What stays in flight is bounded the same way.

use super::body_read::{input, mem_held, read_upstream};
use super::body_splice;
use super::{callback, finalize, u_mut, u_ref, BodyMode, ReadHandler, UpstreamCx, UpstreamError};
use crate::core::buf::{chain_held, Buf, BufPool, Chain};
use crate::core::step::{HandlerRc, Step};
use crate::event;
use crate::event::connection::Ev;
use crate::event::posted;
use crate::http::cycle::Cycle;
use crate::http::cycle::RequestId;
use crate::http::{self, postpone_filter, request::Method};

/// Sends the header and starts the body. nginx: `ngx_http_upstream_send_response()`.
pub fn send_response(cy: &mut Cycle, rid: RequestId) {
    let Some(u) = u_mut(cy, rid) else { return };
    u.mode = if u.in_memory {
        BodyMode::InMemory
    } else if u.conf.buffering {
        BodyMode::Buffered
    } else {
        BodyMode::NonBuffered
    };
    let mode = u.mode;
    crate::http::trace::step(cy, rid, format_args!("upstream send_response: body mode {mode:?}"));
    if mode != BodyMode::InMemory {
        if http::send_header(cy, rid).is_err() {
            return finalize(cy, rid, HandlerRc::Error);
        }
        let Some((r, u, _)) = super::parts(cy, rid) else { return };
        u.header_sent = true;
        if r.header_only {
            return finalize(cy, rid, HandlerRc::Ok);
        }
    }
    // The steps up to the first body bytes run inside the callback's borrow of the context
    // (one lookup); it hands back the peer connection and how many body bytes came with the
    // header.
    let started = callback(cy, rid, |m, cx| {
        m.input_filter_init(cx)?;
        let u = &mut *cx.u;
        // `Content-Length: 0`, HEAD, 204, 304: no body to wait for (the upstream may keep the
        // connection open or close it; either is fine). nginx: `if (u->length == 0)` in
        // `ngx_http_upstream_send_response()`.
        if u.length == Some(0) {
            u.upstream_done = true;
        }
        cx.r.write_event_handler = process_downstream;
        u.read_handler = ReadHandler::ProcessBody;
        let preread = u.buffer.last - u.buffer.pos;
        u.state.response_length += preread as u64;
        let long = u.copy_filter && u.length.is_some_and(|len| len >= body_splice::SPLICE_MIN + preread as u64);
        Ok::<_, UpstreamError>((u.peer.connection, preread, long))
    });
    let (pc, preread, long) = match started {
        Some(Ok(started)) => started,
        Some(Err(_)) => return finalize(cy, rid, HandlerRc::Error),
        None => return, // a stale id
    };
    if let Some(c) = pc.and_then(|c| cy.ev.conns.get_mut(c)) {
        c.action = "reading upstream";
    }
    if preread > 0 && !input(cy, rid, preread) {
        return;
    }
    if long {
        body_splice::init(cy, rid);
    }
    process_body(cy, rid);
}

/// nginx: `ngx_http_upstream_non_buffered_filter_init()` — the body length is the upstream's
/// `Content-Length`, or unknown (until close); none for HEAD, 204, 304.
pub fn non_buffered_filter_init(cx: &mut UpstreamCx<'_>) -> Result<(), UpstreamError> {
    let head = cx.r.method == Method::Head;
    let u = &mut *cx.u;
    let s = u.headers_in.status_n;
    u.length =
        if head || s == 204 || s == 304 || (100..200).contains(&s) { Some(0) } else { u.headers_in.content_length_n };
    Ok(())
}

/// nginx: `ngx_http_upstream_non_buffered_filter()` — passes the new bytes on, up to
/// `u.length`.
pub fn non_buffered_filter(cx: &mut UpstreamCx<'_>, bytes: usize) -> Result<(), UpstreamError> {
    let take = match cx.u.length {
        Some(len) => (bytes as u64).min(len) as usize,
        None => bytes,
    };
    if take < bytes {
        cx.log_warn("upstream sent more data than specified in \"Content-Length\" header");
        cx.u.keepalive = false;
    }
    let (u, pool) = (&mut *cx.u, &mut *cx.bufs);
    let start = u.buffer.last - bytes;
    emit(u, pool, start, start + take);
    if let Some(len) = u.length.as_mut() {
        *len -= take as u64;
    }
    u.buffer.pos = u.buffer.last;
    Ok(())
}

/// Passes `u.buffer[start..end]` on to the client (helper for input filters). The range waits
/// in `u.pipe` until the filter returns (`place_shadows`), so the filter may go on reading
/// `u.buffer`; more than `pipe::SHADOWS` ranges in one read are placed (copied) at once.
pub fn emit(u: &mut super::Upstream, pool: &mut BufPool, start: usize, end: usize) {
    if start >= end {
        return;
    }
    if !u.pipe.push_shadow(start, end) {
        super::body_read::place_shadows(u, pool, false);
        u.pipe.push_shadow(start, end);
    }
}

/// The upstream's read handler during the body. nginx:
/// `ngx_http_upstream_process_non_buffered_upstream()` / `ngx_http_upstream_process_upstream()`.
pub fn process_upstream(cy: &mut Cycle, rid: RequestId) {
    let Some(cid) = u_ref(cy, rid).and_then(|u| u.peer.connection) else {
        return;
    };
    if let Some(c) = cy.ev.conns.get_mut(cid) {
        if c.read.timedout {
            c.read.timedout = false;
            super::log_error(cy, rid, "upstream timed out (110: Connection timed out)");
            return finalize(cy, rid, HandlerRc::Status(504));
        }
    }
    process_body(cy, rid);
}

/// The client's write handler while the body flows. nginx:
/// `ngx_http_upstream_process_non_buffered_downstream()` /
/// `ngx_http_upstream_process_downstream()`.
pub fn process_downstream(cy: &mut Cycle, rid: RequestId) {
    let Some(r) = cy.requests.get(rid) else {
        return;
    };
    if let Some(c) = cy.ev.conns.get_mut(r.connection) {
        if c.write.timedout {
            c.write.timedout = false;
            c.error = true;
            log::info!("*{} client timed out while sending to client", c.number);
            return finalize(cy, rid, HandlerRc::Status(408));
        }
    }
    process_body(cy, rid);
}

/// Hands waiting body buffers to the output filters until the client socket is full or
/// nothing is left, at most `busy_buffers_size` in flight when buffering; with nothing new it
/// still flushes what the client connection holds. Returns false if the request was finalized.
///
/// It must not stop while the socket is still writable and buffers wait: with edge-triggered
/// events no write event would come to resume it (the body would stall at its end).
/// nginx: `ngx_event_pipe_write_to_downstream()` / the output part of
/// `ngx_http_upstream_process_non_buffered_request()`.
fn pass_downstream(cy: &mut Cycle, rid: RequestId) -> bool {
    loop {
        let Some((main_out, held)) = downstream(cy, rid) else {
            return false;
        };
        if main_out == 0 && held > 0 && active(cy, rid) {
            // Output the postpone filter holds goes first now that it is this request's turn
            // (a subrequest that started at the first body buffers, addition's
            // `add_before_body`, finished; or this child's turn came). Nothing else would pass
            // it on: the held memory counts against the budget below.
            match release_postponed(cy, rid, held) {
                Some(true) => continue,
                Some(false) => {} // a child's turn: the budget below decides
                None => return false,
            }
        }
        let Some((r, u, pool)) = super::parts(cy, rid) else {
            return false;
        };
        if body_splice::held(u) > 0 {
            // The pipe's bytes came before anything in `u.out` (a request with a pipe has no
            // subrequest, so nothing is postponed): they go first.
            debug_assert!(held == 0, "output postponed while the pipe holds bytes");
            match body_splice::drain(cy, rid) {
                Some(true) => continue,
                Some(false) => return true, // the client's write event resumes the loop
                None => return false,
            }
        }
        if u.out.is_empty() && main_out == 0 {
            return true;
        }
        let in_flight = main_out + held;
        let busy = u.conf.busy_buffers_size as u64;
        let mut out;
        let mut offered = false;
        if u.mode == BodyMode::Buffered {
            let mut budget = busy.saturating_sub(in_flight);
            if budget > 0 && plain(r, rid) {
                // Everything waiting goes to one `writev`; what the socket does not take beyond
                // `busy_buffers_size` comes back (`reclaim`).
                out = std::mem::take(&mut u.out);
                offered = true;
            } else {
                out = pool.chain();
                while budget > 0 {
                    let Some(b) = u.out.pop_front() else { break };
                    budget = budget.saturating_sub(b.held());
                    out.push_back(b);
                }
            }
        } else {
            out = std::mem::take(&mut u.out);
        }
        if out.is_empty() && main_out == 0 {
            // The budget is spent on output held until this subrequest's turn; the turn
            // posts its write handler (`process_downstream`), which resumes here.
            return true;
        }
        if let Some(b) = out.back_mut() {
            b.flush = true;
        }
        let rc = http::output_filter(cy, rid, &mut out);
        cy.ev.bufs.put_chain(&mut out);
        if offered && matches!(rc, Ok(Step::Again)) {
            reclaim(cy, rid, busy);
        }
        match rc {
            Err(_) => {
                finalize(cy, rid, HandlerRc::Error);
                return false;
            }
            Ok(Step::Again) => return true, // the client's write event resumes the loop
            Ok(Step::Done(())) => {}        // all went out (nothing in flight): pass more
        }
    }
}

/// Whether `rid` is the request whose output goes to the client now (nginx: `c->data == r`).
fn active(cy: &Cycle, rid: RequestId) -> bool {
    let main = cy.requests.get(rid).map(|r| r.main);
    main.and_then(|m| cy.requests.get(m)).is_some_and(|m| m.active() == rid)
}

/// Calls the output filters with nothing new, so that the postpone filter releases what it
/// holds for the active `rid` (`held` bytes before). `Some(true)`: some went on (pass more),
/// `Some(false)`: nothing did (a child's turn), `None`: finalized. nginx: the writer's
/// `ngx_http_output_filter(r, NULL)` when the parent's turn comes.
fn release_postponed(cy: &mut Cycle, rid: RequestId, held: u64) -> Option<bool> {
    let mut none = Chain::new();
    match http::output_filter(cy, rid, &mut none) {
        Err(_) => {
            finalize(cy, rid, HandlerRc::Error);
            None
        }
        Ok(_) => Some(downstream(cy, rid).is_some_and(|(_, now)| now < held)),
    }
}

/// Whether the body buffers `rid` passes reach the client's chain as they are: a main request
/// without subrequests and without chunk framing (so `reclaim` can find them at its end).
fn plain(r: &http::request::Request, rid: RequestId) -> bool {
    r.main == rid && r.sr.is_none() && !r.chunked
}

/// After a `writev` that left output waiting: the whole buffers at the end of the client's
/// chain beyond `busy_buffers_size` go back to the front of `u.out`, so that what is in flight
/// to the client stays within `busy_buffers_size` (and the rest may still go to the temp file)
/// as if only that much had been passed. The socket saw one large write instead of several of
/// `busy_buffers_size`. nginx: none — `ngx_event_pipe_write_to_downstream()` passes at most
/// `busy_size` per output filter call.
fn reclaim(cy: &mut Cycle, rid: RequestId, busy: u64) {
    let Some((r, u, pool)) = super::parts(cy, rid) else { return };
    if !plain(r, rid) {
        return;
    }
    let mut held = chain_held(&r.out);
    while held > busy && r.out.len() > 1 && r.out.back().is_some_and(|b| !b.last_buf) {
        let Some(mut b) = r.out.pop_back() else { break };
        held = held.saturating_sub(b.held());
        b.flush = false;
        if u.out.capacity() == 0 {
            u.out = pool.chain();
        }
        u.out.push_front(b);
    }
}

/// What waits downstream of `rid`: the client's output, counted only while `rid` is the
/// active request (only then can its writes flush it), and the output `rid` holds until its
/// turn (a subrequest's, see `http::postpone_filter`). `None`: the request is gone.
fn downstream(cy: &Cycle, rid: RequestId) -> Option<(u64, u64)> {
    let r = cy.requests.get(rid)?;
    if r.sr.is_none() {
        // A main request without subrequests (a subrequest always has `sr`).
        return Some((chain_held(&r.out), 0));
    }
    let m = cy.requests.get(r.main)?;
    let main_out = if m.active() == rid { chain_held(&m.out) } else { 0 };
    Some((main_out, postpone_filter::held_len(Some(r))))
}

/// The body loop of all three modes. nginx: `ngx_http_upstream_process_non_buffered_request()`,
/// `ngx_event_pipe()`, `ngx_http_upstream_process_body_in_memory()`.
pub fn process_body(cy: &mut Cycle, rid: RequestId) {
    let mut bursts = 0;
    loop {
        let Some(u) = u_ref(cy, rid) else { return };
        if u.mode != BodyMode::InMemory && !pass_downstream(cy, rid) {
            return;
        }
        let Some(u) = u_ref(cy, rid) else { return };
        if u.upstream_done {
            let done = u.mode == BodyMode::InMemory || (u.out.is_empty() && body_splice::held(u) == 0);
            return body_done(cy, rid, done);
        }
        let Some(cid) = u.peer.connection else { return };
        if !may_read(cy, rid, u) {
            let Some(u) = u_mut(cy, rid) else { return };
            if u.mode == BodyMode::Buffered {
                match spill(cy, rid) {
                    Some(true) => continue,
                    Some(false) => {}
                    None => return, // finalized
                }
            }
            // Back-pressure: the client is slow; stop reading the upstream.
            event::del_timer(&mut cy.ev, Ev { c: cid, write: false });
            arm_client_timer(cy, rid);
            return;
        }
        if bursts == 1 && u.mode != BodyMode::InMemory && cy.ev.conns.get(cid).is_some_and(|c| c.read.ready) {
            // One burst per event: the rest waits behind the other connections ready in this
            // turn (the posted queue), so that one fast response does not run to its end while
            // the others wait. nginx's pipe runs until EAGAIN.
            posted::post_event(&mut cy.ev, Ev { c: cid, write: false }, posted::Queue::Events);
            return;
        }
        bursts += 1;
        // Only `body_splice::init` opens a pipe, before this loop: without one, no look-up.
        let has_pipe = u.splice.is_some();
        // A burst of reads: buffered, as many as `bufs` hold before the client gets them in
        // one go (nginx's pipe fills its free bufs before writing downstream); otherwise one.
        let mut got = false;
        loop {
            let pipe_ready = has_pipe && u_ref(cy, rid).is_some_and(|u| body_splice::ready(cy, rid, u));
            let (rc, piped) = if pipe_ready {
                match body_splice::read(cy, rid, cid) {
                    body_splice::Read::Rc(rc) => (rc, true),
                    // The client is slow and the pipe full: memory takes the next bytes,
                    // behind the pipe's (`proxy_buffers`, then the temp file).
                    body_splice::Read::Full => (read_upstream(cy, rid, cid), false),
                }
            } else {
                (read_upstream(cy, rid, cid), false)
            };
            match rc {
                Some(true) if piped => break, // the pipe goes to the client before more comes in
                Some(true) => {
                    got = true;
                    let burst = u_ref(cy, rid)
                        .is_some_and(|u| u.mode == BodyMode::Buffered && !u.upstream_done && may_read(cy, rid, u));
                    if !burst {
                        break;
                    }
                }
                Some(false) if got => break, // pass what came; the next read says Again
                Some(false) => {
                    arm_client_timer(cy, rid);
                    return;
                }
                None => return,
            }
        }
    }
}

/// Whether memory allows another read from the upstream.
///
/// Non-buffered: one `buffer_size` for everything not yet written to the client. Buffered:
/// `bufs` for what waits in `u.out`; what is in flight to the client is bounded apart, by
/// `busy_buffers_size` in `pass_downstream` (plus the one piece of the temp file the write
/// side reads at a time, nginx's `output_buffers`), so a stalled client cannot stop the spill.
fn may_read(cy: &Cycle, rid: RequestId, u: &super::Upstream) -> bool {
    match u.mode {
        BodyMode::InMemory => true,
        BodyMode::NonBuffered => {
            let r = cy.requests.get(rid);
            let client = r.and_then(|r| cy.requests.get(r.main)).map_or(0, |m| mem_held(&m.out));
            let held = postpone_filter::held_len(r);
            mem_held(&u.out) + client + held < u.conf.buffer_size.max(1) as u64
        }
        BodyMode::Buffered => mem_held(&u.out) < (u.conf.bufs.0 * u.conf.bufs.1).max(1) as u64,
    }
}

/// Buffered mode: moves waiting memory to the temp file. `Some(moved anything)`, or `None`
/// when the temp file could not be created or written (ENOSPC, EFBIG, a short write): the
/// error is logged in nginx's words and the response ends at once — the header is out, so the
/// client connection is closed after the bytes that were already whole, never with a gap or
/// bytes from the wrong offset (`event::pipe` keeps the chain exact after every write).
///
/// nginx: `ngx_event_pipe_write_chain_to_temp_file()` returning NGX_ABORT, on which
/// `ngx_http_upstream_process_request()` finalizes with NGX_ERROR.
fn spill(cy: &mut Cycle, rid: RequestId) -> Option<bool> {
    let dir = {
        let u = u_ref(cy, rid)?;
        crate::conf::full_name(&cy.conf.prefix, &u.conf.temp_path.to_string_lossy())
    };
    let (_, u, pool) = super::parts(cy, rid)?;
    let (ws, max) = (u.conf.temp_file_write_size, u.conf.max_temp_file_size);
    match u.pipe.spill(&mut u.out, pool, &dir, ws, max) {
        Ok(n) => Some(n > 0),
        Err(e) => {
            super::log_error(cy, rid, &e.to_string());
            finalize(cy, rid, HandlerRc::Error);
            None
        }
    }
}

/// `send_timeout` runs while output waits for the client, and is re-armed as the body moves
/// (so it bounds a stall, not the whole transfer); it is removed once nothing waits.
/// nginx: the `ngx_add_timer(downstream->write, send_timeout)` / `ngx_del_timer()` pair at
/// the end of `ngx_http_upstream_process_non_buffered_request()` and `ngx_event_pipe()`.
fn arm_client_timer(cy: &mut Cycle, rid: RequestId) {
    let Some(r) = cy.requests.get(rid) else {
        return;
    };
    let Some(m) = cy.requests.get(r.main) else {
        return;
    };
    let in_pipe = u_ref(cy, rid).is_some_and(|u| body_splice::held(u) > 0);
    let (cid, pending, t) = (m.connection, in_pipe || !m.out.is_empty(), m.loc.core.send_timeout());
    let ev = Ev { c: cid, write: true };
    if pending {
        event::add_timer(&mut cy.ev, ev, t);
    } else {
        event::del_timer(&mut cy.ev, ev);
    }
}

/// The upstream body is complete: release the upstream at once (even if the client is still
/// receiving, as buffering promises), then finish when everything is handed to the client.
/// `done`: nothing waits for the client (or the module keeps the body).
fn body_done(cy: &mut Cycle, rid: RequestId, done: bool) {
    if done {
        return finalize(cy, rid, HandlerRc::Ok);
    }
    super::release(cy, rid);
    arm_client_timer(cy, rid);
}

/// In-memory mode, after the module's `finalize_request(Ok)`: sends what it left —
/// `r.headers_out` (the upstream's header as `process_headers` copied it, then changed by the
/// module) and `u.out` as the whole body. The module never sends anything itself: a callback
/// cannot reach the filters. The rc for `finalize_request`.
///
/// nginx: none — there the body stays in `u->buffer` for whoever asked for it (the parent's
/// `post_subrequest` handler of a `subrequest_in_memory`); rginx has no subrequests yet, so
/// the module's answer is the client's response (docs/upstream.md).
pub fn send_in_memory(cy: &mut Cycle, rid: RequestId) -> HandlerRc {
    if http::send_header(cy, rid).is_err() {
        return HandlerRc::Error;
    }
    let Some(u) = u_mut(cy, rid) else {
        return HandlerRc::Error;
    };
    let mut out = std::mem::take(&mut u.out);
    match out.back_mut() {
        Some(b) => b.last_buf = true,
        None => out.push_back(Buf::last_buf()),
    }
    let rc = http::output_filter(cy, rid, &mut out);
    cy.ev.bufs.put_chain(&mut out);
    match rc {
        Ok(_) => HandlerRc::Ok,
        Err(_) => HandlerRc::Error,
    }
}

/// In-memory mode of a subrequest, after the module's `finalize_request(Ok)`: the body it left
/// in `u.out` becomes the child's `r.out`, where the parent's `post_subrequest` handler reads
/// it (`http::subrequest::in_memory_body`). Nothing is sent. The rc for `finalize_request`.
///
/// nginx: none — the body stays in `u->buffer`, which the seed's handler reads.
pub fn keep_in_memory(cy: &mut Cycle, rid: RequestId) -> HandlerRc {
    let Some((r, u, _)) = super::parts(cy, rid) else {
        return HandlerRc::Error;
    };
    r.out.append(&mut u.out);
    HandlerRc::Ok
}

/// Sends the final (empty, `last_buf`) buffer; the rc for `finalize_request`.
/// nginx: `ngx_http_send_special(r, NGX_HTTP_LAST)`.
pub fn send_last(cy: &mut Cycle, rid: RequestId) -> HandlerRc {
    let mut out = cy.ev.bufs.chain();
    out.push_back(Buf::last_buf());
    let rc = http::output_filter(cy, rid, &mut out);
    cy.ev.bufs.put_chain(&mut out);
    match rc {
        Ok(Step::Done(())) | Ok(Step::Again) => HandlerRc::Ok,
        Err(_) => HandlerRc::Error,
    }
}
