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
//! - in the in-memory mode of a main request the framework sends what the module left in
//!   `r.headers_out` and `u.out` after `finalize_request(Ok)` (`send_in_memory`); nginx leaves
//!   the body in `u->buffer` for a parent request. For a subrequest the body goes to the
//!   child's `r.out` for its parent (`keep_in_memory`), at most `buffer_size` bytes.
//! - one loop (`process_body`) serves the two forwarding modes; they differ only in how much
//!   memory may wait for the client (one `buffer_size`, or `bufs`), whether the overflow may
//!   go to a temp file, and how much is handed to the client at once (`busy_buffers_size`).
//! - the body is copied out of `u.buffer` into the chain (nginx shadows it).

use super::{callback, finalize, u_mut, u_ref, BodyMode, ReadHandler, UpstreamCx, UpstreamError};
use crate::core::buf::{chain_held, Buf, BufPool, Chain};
use crate::core::step::{HandlerRc, Step};
use crate::event;
use crate::event::connection::Ev;
use crate::event::io::{self, Recv};
use crate::http::cycle::Cycle;
use crate::http::cycle::RequestId;
use crate::http::{self, postpone_filter, request::Method};
use std::io::IoSliceMut;

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
        let Some(u) = u_mut(cy, rid) else { return };
        u.header_sent = true;
        if cy.requests.get(rid).is_some_and(|r| r.header_only) {
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
        Ok::<_, UpstreamError>((u.peer.connection, preread))
    });
    let (pc, preread) = match started {
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
    process_body(cy, rid);
}

/// Runs the module's `input_filter` on `bytes` new bytes; false if the request was finalized.
fn input(cy: &mut Cycle, rid: RequestId, bytes: usize) -> bool {
    let rc = callback(cy, rid, |m, cx| {
        let rc = m.input_filter(cx, bytes);
        let u = &mut *cx.u;
        if rc.is_err() {
            u.pipe.take_shadows();
            return rc;
        }
        // The buffer may go down the chain only once the filter consumed all of it (the
        // framework's and the proxy's filters always do; a module keeping bytes keeps its
        // buffer) and only when it is forwarded (the in-memory body is bounded by its live
        // bytes).
        let give = u.mode != BodyMode::InMemory && u.buffer.pos == u.buffer.last;
        place_shadows(u, cx.bufs, give);
        if u.length == Some(0) {
            u.upstream_done = true;
        }
        rc
    });
    match rc {
        Some(Ok(())) => true,
        Some(Err(e)) => {
            // InvalidBody: the module logged what was wrong, in its own words.
            if e != UpstreamError::InvalidBody {
                super::log_error(cy, rid, &format!("upstream input filter failed: {e:?}"));
            }
            finalize(cy, rid, HandlerRc::Error);
            false
        }
        None => false, // a stale id
    }
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
    let (u, pool) = (&mut *cx.u, &mut *cx.bufs);
    let start = u.buffer.last - bytes;
    let take = match u.length {
        Some(len) => (bytes as u64).min(len) as usize,
        None => bytes,
    };
    if take < bytes {
        log::warn!("upstream sent more data than specified in \"Content-Length\" header");
        u.keepalive = false;
    }
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
        place_shadows(u, pool, false);
        u.pipe.push_shadow(start, end);
    }
}

/// Places the ranges of `u.buffer` the input filter passed on in `u.out`, in order.
///
/// With `give`, the last range takes the buffer itself — no byte is copied: the buffer goes
/// down the chain to the client, and `u.buffer` is left without memory (`read_upstream` takes
/// a fresh one from the pool; the write side gives this one back once it is sent). Only a
/// range of at least half the buffer takes it, so that a buffer's memory is not held for a few
/// bytes (everything waiting is bounded by the memory it holds, `Buf::held`). The other ranges
/// are copied into the chain's last buffer while it has room. nginx: the shadow bufs of
/// `ngx_http_proxy_copy_filter()` / `ngx_http_proxy_non_buffered_copy_filter()`, which point
/// into the buffer the bytes were read into.
fn place_shadows(u: &mut super::Upstream, pool: &mut BufPool, give: bool) {
    let (ranges, n) = u.pipe.take_shadows();
    let ranges = ranges.get(..n).unwrap_or(&[]);
    let Some(&(ls, le)) = ranges.last() else { return };
    let give = give && le <= u.buffer.last && (le - ls) * 2 >= u.buffer.mem.len();
    let copied = if give { ranges.get(..n - 1).unwrap_or(&[]) } else { ranges };
    let size = match u.mode {
        BodyMode::Buffered => u.conf.bufs.1,
        _ => u.conf.buffer_size,
    };
    if u.out.capacity() == 0 {
        u.out = pool.chain();
    }
    for &(s, e) in copied {
        if let Some(src) = u.buffer.mem.get(s..e) {
            copy_into(&mut u.out, pool, src, size);
        }
    }
    if give {
        let mut b = std::mem::take(&mut u.buffer);
        (b.pos, b.last) = (ls, le);
        u.out.push_back(b);
    }
}

/// Appends `src` to the chain's last buffer while it has room, then to new ones of `size`.
fn copy_into(out: &mut Chain, pool: &mut BufPool, mut src: &[u8], size: usize) {
    while !src.is_empty() {
        let need_new = out.back().is_none_or(|b| b.file.is_some() || b.is_full() || b.mem.is_empty());
        if need_new {
            out.push_back(pool.get(size.max(1)));
        }
        let Some(b) = out.back_mut() else { return };
        let n = b.append(src);
        src = src.get(n..).unwrap_or(&[]);
    }
}

/// Memory held by the memory buffers of a chain (file regions cost no memory).
fn mem_held(chain: &Chain) -> u64 {
    chain.iter().filter(|b| b.file.is_none()).map(Buf::held).sum()
}

/// Live bytes of the memory buffers of a chain.
fn mem_len(chain: &Chain) -> usize {
    chain.iter().filter(|b| b.file.is_none()).map(|b| b.last - b.pos).sum()
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
        let Some((_, u, pool)) = super::parts(cy, rid) else {
            return false;
        };
        if u.out.is_empty() && main_out == 0 {
            return true;
        }
        let in_flight = main_out + held;
        let mut out;
        if u.mode == BodyMode::Buffered {
            out = pool.chain();
            let mut budget = (u.conf.busy_buffers_size as u64).saturating_sub(in_flight);
            while budget > 0 {
                let Some(b) = u.out.pop_front() else { break };
                budget = budget.saturating_sub(b.held());
                out.push_back(b);
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
    loop {
        let Some(u) = u_ref(cy, rid) else { return };
        if u.mode != BodyMode::InMemory && !pass_downstream(cy, rid) {
            return;
        }
        let Some(u) = u_ref(cy, rid) else { return };
        if u.upstream_done {
            let done = u.mode == BodyMode::InMemory || u.out.is_empty();
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
        // A burst of reads: buffered, as many as `bufs` hold before the client gets them in
        // one go (nginx's pipe fills its free bufs before writing downstream); otherwise one.
        let mut got = false;
        loop {
            match read_upstream(cy, rid, cid) {
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

/// Most buffers one read fills after `u.buffer` (16 iovecs in all).
const SPARES: usize = 15;

/// The size of a fresh read buffer: one of `proxy_buffers` when buffering, else
/// `proxy_buffer_size` (the one buffer of the non-buffered mode).
fn read_size(u: &super::Upstream) -> usize {
    match u.mode {
        BodyMode::Buffered => u.conf.bufs.1.max(1),
        _ => u.conf.buffer_size.max(1),
    }
}

/// Buffered mode: how many more of `proxy_buffers` the next read may fill after `u.buffer`,
/// so that one `readv` takes as much as the free buffers hold (nginx's pipe reads into its
/// chain of free raw buffers at once). The other modes read into `u.buffer` alone.
fn spares(u: &super::Upstream) -> usize {
    if u.mode != BodyMode::Buffered {
        return 0;
    }
    let total = (u.conf.bufs.0 * u.conf.bufs.1) as u64;
    let held = mem_held(&u.out) + u.buffer.mem.len() as u64;
    (total.saturating_sub(held) / u.conf.bufs.1.max(1) as u64).min(SPARES as u64) as usize
}

/// One read from the upstream into `u.buffer` (and, buffered, the free buffers after it),
/// through the input filter. `Some(true)`: read something, go on; `Some(false)`: wait for an
/// event; `None`: finalized. nginx: `ngx_event_pipe_read_upstream()` / the `recv` of
/// `ngx_http_upstream_process_non_buffered_request()`.
fn read_upstream(cy: &mut Cycle, rid: RequestId, cid: crate::event::connection::ConnId) -> Option<bool> {
    let Cycle { requests, http, ev, .. } = &mut *cy;
    let (conns, pool) = (&mut ev.conns, &mut ev.bufs);
    let u = &mut super::ctx_mut(http, requests.get(rid)?)?.u;
    let c = conns.get_mut(cid)?;
    if u.buffer.mem.is_empty() {
        // The last one went down the chain to the client.
        u.buffer = pool.get(read_size(u));
    } else if u.buffer.pos == u.buffer.last {
        u.buffer.reset();
    }
    // In memory, what the input filter kept in `u.out` counts against `buffer_size` too: the
    // body a parent receives is at most `buffer_size` (nginx keeps it in `u->buffer` itself).
    let room = match u.mode {
        BodyMode::InMemory => u.conf.buffer_size.saturating_sub(mem_len(&u.out)),
        _ => usize::MAX,
    };
    if u.buffer.is_full() || room == 0 {
        // Only the in-memory mode leaves data in the buffer.
        super::log_error(cy, rid, "upstream buffer is too small to read response");
        finalize(cy, rid, HandlerRc::Error);
        return None;
    }
    let mut spare: [Buf; SPARES] = Default::default();
    let k = spares(u);
    for b in spare.iter_mut().take(k) {
        *b = pool.get(u.conf.bufs.1);
    }
    let n0 = u.buffer.free_space().len().min(room);
    let rc = if k == 0 {
        io::recv(c, &mut u.buffer.free_space()[..n0])
    } else {
        let mut iov: [IoSliceMut<'_>; SPARES + 1] = std::array::from_fn(|_| IoSliceMut::new(&mut []));
        iov[0] = IoSliceMut::new(&mut u.buffer.free_space()[..n0]);
        for (slot, b) in iov[1..].iter_mut().zip(spare.iter_mut().take(k)) {
            *slot = IoSliceMut::new(&mut b.mem);
        }
        io::readv(c, &mut iov[..=k])
    };
    let Recv::Data(n) = rc else {
        spare.into_iter().for_each(|b| pool.put(b));
        return read_failed(cy, rid, cid, rc);
    };
    let first = n.min(n0);
    u.buffer.last += first;
    let mut rest = n - first;
    for b in spare.iter_mut().take(k) {
        b.last = rest.min(b.mem.len());
        rest -= b.last;
    }
    u.state.bytes_received += n as u64;
    u.state.response_length += n as u64;
    feed(cy, rid, first, spare)
}

/// Runs the input filter on what one read brought: `first` bytes at the end of `u.buffer`,
/// then each filled spare buffer in turn as `u.buffer`. Once the body is complete, one more
/// piece still goes through the filter (which says, in its words, that the upstream sent too
/// much, and stops the connection's reuse); the rest is dropped.
fn feed(cy: &mut Cycle, rid: RequestId, first: usize, spare: [Buf; SPARES]) -> Option<bool> {
    let mut spare = spare.into_iter();
    let mut ok = first == 0 || input(cy, rid, first);
    while let Some(b) = spare.next() {
        let (_, u, pool) = match super::parts(cy, rid) {
            Some(p) if ok && b.last > 0 => p,
            _ => {
                cy.ev.bufs.put(b);
                continue;
            }
        };
        let (n, extra) = (b.last, u.upstream_done);
        if u.buffer.pos < u.buffer.last {
            // A module kept bytes (the forwarding filters never do): the new ones go after
            // them, as one `recv` would have put them.
            u.buffer.compact();
            let copied = u.buffer.append(b.data());
            pool.put(b);
            if copied < n {
                super::log_error(cy, rid, "upstream buffer is too small to read response");
                finalize(cy, rid, HandlerRc::Error);
                ok = false;
                continue;
            }
        } else {
            pool.put(std::mem::replace(&mut u.buffer, b));
        }
        ok = input(cy, rid, n) && !extra;
        if extra {
            spare.by_ref().for_each(|b| cy.ev.bufs.put(b));
        }
    }
    let finalized = u_ref(cy, rid).is_none_or(|u| u.finalized());
    (!finalized).then_some(true)
}

/// A read that brought no bytes: wait (`Some(false)`), the end of a body delimited by close
/// (`Some(true)`), or an error that ends the request (`None`).
fn read_failed(cy: &mut Cycle, rid: RequestId, cid: crate::event::connection::ConnId, rc: Recv) -> Option<bool> {
    let u = u_mut(cy, rid)?;
    match rc {
        Recv::Data(_) => Some(true),
        Recv::Again => {
            let timeout = u.conf.read_timeout;
            event::add_timer(&mut cy.ev, Ev { c: cid, write: false }, timeout);
            Some(false)
        }
        Recv::Eof => {
            if u.length.is_none() {
                u.upstream_done = true;
                return Some(true);
            }
            super::log_error(cy, rid, "upstream prematurely closed connection");
            finalize(cy, rid, HandlerRc::Error);
            None
        }
        Recv::Error(e) => {
            super::log_error(cy, rid, &format!("recv() failed ({})", crate::core::log::os_err(&e)));
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
    let (cid, pending, t) = (m.connection, !m.out.is_empty(), m.loc.core.send_timeout());
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
