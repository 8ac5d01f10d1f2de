//! A proxied body that skips user memory: from the upstream socket into a kernel pipe and from
//! the pipe into the client socket (`splice(2)`), when nothing on the way needs its bytes.
//!
//! nginx: none. nginx reads every proxied byte into `proxy_buffers` and writes it out again
//! (`ngx_event_pipe()`); it avoids the copies only for files, with `sendfile`. This is the
//! proxy's counterpart, used under the same condition as nginx's `sendfile`: no body filter
//! needs the bytes in memory (`r.filter_need_in_memory`).
//!
//! When: a main request without subrequests, no chunked framing on either side (the module's
//! input filter is a plain copy, `u.copy_filter`, and `r.chunked` is off), a known length of at
//! least `SPLICE_MIN` after the bytes that came with the header, and any body mode but the
//! in-memory one. Otherwise, or if no pipe can be had, the body goes through memory as always.
//!
//! How it keeps the forwarding rules:
//! - Order: bytes enter the pipe only while nothing else waits for the client (`u.out` and
//!   the client's chain are empty), and what waits in the pipe goes out before anything else
//!   (`response::pass_downstream` drains it first).
//! - `proxy_buffering`: when the client is slow and the pipe will take no more (`SpliceIn::
//!   Full`), the upstream is read into `proxy_buffers` and the temp file as always, behind the
//!   pipe, so a slow client still does not hold the upstream. What the pipe holds is bounded by
//!   the pipe (64 KiB by Linux's default), what waits in memory by `proxy_buffers`.
//! - The length: at most `u.length` bytes are moved, so nothing of a next response on a
//!   kept-alive connection is taken; at the end one peek says whether the upstream sent more
//!   than its `Content-Length` (nginx's copy filter sees that when the extra bytes share a
//!   read), and then the connection is not kept.
//! - Timers: the upstream's `proxy_read_timeout` is armed when the upstream has nothing and
//!   deleted when bytes come; `send_timeout` runs while the pipe waits for the client.
//! - The pipe is opened per body (at most `worker_connections / 4` per worker, `Pipes`) and
//!   closed by `free_upstream` on every path.
//! - A subrequest started after `init` stops the splicing (`ready`); addition's
//!   `add_before_body`, which starts one at the first body buffer, opts out beforehand with
//!   `r.filter_need_in_memory`.

use super::{finalize, u_ev, BodyMode, UpstreamWorker};
use crate::core::log::os_err;
use crate::core::step::{HandlerRc, Step};
use crate::event;
use crate::event::connection::{ConnId, Ev};
use crate::event::splice::{SpliceIn, SplicePipe};
use crate::http::cycle::{Connection, Cycle, RequestId};
use crate::os::sys;

/// Bodies shorter than this (after what came with the header) go through memory: the pipe
/// costs three system calls (`pipe2` and two `close`) that copying a small body does not.
pub const SPLICE_MIN: u64 = 32 * 1024;

/// After `input_filter_init` and the bytes read with the header: opens a pipe for this body
/// if it may skip user memory. At most `worker_connections / 4` pipes are open per worker
/// (haproxy's default `maxpipes`); past that, or out of descriptors, the body goes through
/// memory.
pub(super) fn init(cy: &mut Cycle, rid: RequestId) {
    let max = (cy.ev.worker_connections / 4).max(1);
    let Cycle { requests, http, .. } = &mut *cy;
    let Some(r) = requests.get(rid) else { return };
    // (A header-only response never gets here: `send_response` finalizes it first.)
    let filters_pass = r.main == rid && r.sr.is_none() && !r.chunked && !r.filter_need_in_memory;
    let (Some(uid), Some(w)) = (r.upstream, super::worker(http)) else { return };
    let UpstreamWorker { ctxs, pipes, .. } = w;
    let Some(u) = ctxs.get_mut(uid.typed()).map(|c| &mut c.u) else { return };
    let eligible = filters_pass
        && u.copy_filter
        && u.mode != BodyMode::InMemory
        && !u.upstream_done
        && u.length.is_some_and(|len| len >= SPLICE_MIN);
    if !eligible {
        return;
    }
    match pipes.open(max) {
        Some(Ok(p)) => u.splice = Some(p),
        Some(Err(e)) => log::warn!("pipe2() failed ({}), the body goes through memory", os_err(&e)),
        None => {} // the worker has `max` open
    }
}

/// Whether the next upstream bytes go into the pipe: it is open, the body is not complete and
/// nothing else waits for the client (what is in the pipe would pass it).
pub(super) fn ready(cy: &Cycle, rid: RequestId, u: &super::Upstream) -> bool {
    if u.splice.is_none() || u.upstream_done || !u.out.is_empty() {
        return false;
    }
    // A subrequest started since `init` (addition's `add_before_body` does, at the first
    // body buffer) owns the order of the output from then on.
    cy.requests.get(rid).is_some_and(|r| r.out.is_empty() && r.sr.is_none())
}

/// What one `read` did: as `body_read::read_upstream` (`Some(true)` moved bytes, `Some(false)`
/// wait for the upstream, `None` finalized), or `Full`: the pipe takes no more now.
pub(super) enum Read {
    /// As `read_upstream`'s answer.
    Rc(Option<bool>),
    /// The pipe takes no more until the client drains it; the upstream may be read into
    /// memory meanwhile.
    Full,
}

/// One `splice` from the upstream into the pipe, at most the body's remaining length.
/// nginx: the `recv` of `ngx_event_pipe_read_upstream()`, without the buffer.
pub(super) fn read(cy: &mut Cycle, rid: RequestId, cid: ConnId) -> Read {
    let Some((u, ev)) = u_ev(cy, rid) else { return Read::Rc(None) };
    let (Some(p), Some(len), Some(c)) = (u.splice.as_mut(), u.length, ev.conns.get_mut(cid)) else {
        // Not reached: `ready` said there is a pipe, and a length, and the body is not done.
        super::log_error(cy, rid, "upstream body pipe lost");
        finalize(cy, rid, HandlerRc::Error);
        return Read::Rc(None);
    };
    let want = usize::try_from(len).unwrap_or(usize::MAX);
    match p.splice_in(c, want) {
        SpliceIn::Data(n) => {
            let n64 = n as u64;
            u.state.bytes_received += n64;
            u.state.response_length += n64;
            let left = len.saturating_sub(n64);
            u.length = Some(left);
            let extra = left == 0 && sent_more(c);
            if left == 0 {
                u.upstream_done = true;
                u.keepalive &= !extra;
            }
            // Bytes came: the read timeout bounds a silence, not the transfer (nginx deletes
            // it while the upstream is ready, `ngx_event_pipe()`).
            if let Some(t) = c.read.timer.take() {
                ev.timers.del_timer(t);
            }
            if extra {
                let msg = "upstream sent more data than specified in \"Content-Length\" header";
                super::log_at(cy, rid, log::Level::Warn, msg);
            }
            Read::Rc(Some(true))
        }
        SpliceIn::Full => Read::Full,
        SpliceIn::Unsupported => {
            // Nothing moved: this body, and the worker's next ones, go through memory.
            log::warn!("splice() is not supported here, proxied bodies go through memory");
            let p = u.splice.take();
            if let Some(w) = super::worker(&mut cy.http) {
                p.into_iter().for_each(|p| w.pipes.close(p));
                w.pipes.turn_off();
            }
            Read::Full
        }
        SpliceIn::Again => {
            let timeout = u.conf.read_timeout;
            event::add_timer(ev, Ev { c: cid, write: false }, timeout);
            Read::Rc(Some(false))
        }
        SpliceIn::Eof => {
            super::log_error(cy, rid, "upstream prematurely closed connection");
            finalize(cy, rid, HandlerRc::Error);
            Read::Rc(None)
        }
        SpliceIn::Error(e) => {
            // nginx's words for a failed read of the upstream (what operators search the log
            // for), though the call was `splice`: `readv` buffered (its pipe reads into the
            // chain of `proxy_buffers`), `recv` not. The action adds "while ...".
            let msg = format!("{}() failed ({})", read_call(cy, rid), os_err(&e));
            super::log_error(cy, rid, &msg);
            finalize(cy, rid, HandlerRc::Error);
            Read::Rc(None)
        }
    }
}

/// The call nginx names when reading the body fails: its pipe reads `proxy_buffers` with
/// `readv` (`ngx_readv_chain()`), the non-buffered mode one buffer with `recv`.
pub(super) fn read_call(cy: &Cycle, rid: RequestId) -> &'static str {
    match super::u_ref(cy, rid).map(|u| u.mode) {
        Some(BodyMode::Buffered) => "readv",
        _ => "recv",
    }
}

/// After the last body byte: whether the upstream already sent more (a peek, nothing taken;
/// TCP and UNIX-domain alike). The end of the stream or an error is left to the keepalive
/// cache, which checks the connection when it takes it.
fn sent_more(c: &Connection) -> bool {
    c.stream.socket_fd().is_some_and(|fd| sys::peek(fd).is_ok_and(|n| n > 0))
}

/// Moves what the pipe holds to the client. `Some(true)`: the pipe is empty (or there is none);
/// `Some(false)`: the client socket is full, its write event resumes; `None`: finalized.
/// nginx: none (the `writev` of `ngx_event_pipe_write_to_downstream()`, without the buffers).
pub(super) fn drain(cy: &mut Cycle, rid: RequestId) -> Option<bool> {
    let main = cy.requests.get(rid)?.main;
    let cid = cy.requests.get(main)?.connection;
    let (u, ev) = u_ev(cy, rid)?;
    let Some(p) = u.splice.as_mut().filter(|p| p.held() > 0) else {
        return Some(true);
    };
    let c = ev.conns.get_mut(cid)?;
    match p.splice_out(c) {
        Ok(Step::Done(())) => Some(true),
        Ok(Step::Again) => Some(false),
        Err(e) => {
            // nginx's words for a failed write to the client, though the call was `splice`,
            // with the request's context as nginx's line has it.
            let msg = format!("writev() failed ({})", os_err(&e));
            super::log_at(cy, rid, log::Level::Info, &msg);
            finalize(cy, rid, HandlerRc::Error);
            None
        }
    }
}

/// Bytes the pipe holds for the client (0 without a pipe).
pub(super) fn held(u: &super::Upstream) -> u64 {
    u.splice.as_ref().map_or(0, SplicePipe::held)
}
