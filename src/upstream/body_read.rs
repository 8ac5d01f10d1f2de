//! The upstream body on its way in: one read from the upstream socket (`recv`, or buffering
//! on, one `readv` into `u.buffer` and the free `proxy_buffers` after it), the module's input
//! filter on what came, and the body ranges it passed on (`response::emit`) placed in the
//! chain for the client — the buffer they were read into itself when it can, a copy when not.
//!
//! nginx: `ngx_event_pipe_read_upstream()` (src/event/ngx_event_pipe.c), the `recv` part of
//! `ngx_http_upstream_process_non_buffered_request()`, and the shadow bufs of the proxy's
//! input filters (`ngx_http_proxy_copy_filter()`, `ngx_http_proxy_non_buffered_copy_filter()`).
//!
//! Differs from nginx:
//! - a buffer the body was read into goes down the chain whole (`Buf` owns its memory; nginx
//!   links shadow bufs that point into it), and `u.buffer` takes a fresh one from the pool.
//!   A piece under half a buffer is copied instead, so that a buffer is not held for a few
//!   bytes; everything waiting is bounded by the memory it holds (`Buf::held`).
//! - the ranges of one read wait in `u.pipe` until the filter returns (the filter may still
//!   read `u.buffer`); the last one takes the buffer, the others are copied.

use std::io::IoSliceMut;

use super::{callback, finalize, u_mut, u_ref, BodyMode, UpstreamError};
use crate::core::buf::{Buf, BufPool, Chain};
use crate::core::step::HandlerRc;
use crate::event;
use crate::event::connection::{ConnId, Ev};
use crate::event::io::{self, Recv};
use crate::http::cycle::{Cycle, RequestId};

/// Runs the module's `input_filter` on `bytes` new bytes; false if the request was finalized.
pub(super) fn input(cy: &mut Cycle, rid: RequestId, bytes: usize) -> bool {
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
pub(super) fn place_shadows(u: &mut super::Upstream, pool: &mut BufPool, give: bool) {
    let ranges = u.pipe.take_shadows();
    let Some((&(ls, le), first)) = ranges.split_last() else { return };
    let give = give && le <= u.buffer.last && (le - ls) * 2 >= u.buffer.mem.len();
    let copied = if give { first } else { ranges };
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
pub(super) fn mem_held(chain: &Chain) -> u64 {
    chain.iter().filter(|b| b.file.is_none()).map(Buf::held).sum()
}

/// Live bytes of the memory buffers of a chain.
fn mem_len(chain: &Chain) -> usize {
    chain.iter().filter(|b| b.file.is_none()).map(|b| b.last - b.pos).sum()
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
pub(super) fn read_upstream(cy: &mut Cycle, rid: RequestId, cid: ConnId) -> Option<bool> {
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
    // Bytes came: the read timeout bounds a silence, not the whole transfer (nginx's
    // `ngx_event_pipe()` deletes it while the upstream is ready).
    if let Some(t) = c.read.timer.take() {
        ev.timers.del_timer(t);
    }
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
fn read_failed(cy: &mut Cycle, rid: RequestId, cid: ConnId, rc: Recv) -> Option<bool> {
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
            let call = super::body_splice::read_call(cy, rid);
            super::log_error(cy, rid, &format!("{call}() failed ({})", crate::core::log::os_err(&e)));
            finalize(cy, rid, HandlerRc::Error);
            None
        }
    }
}
