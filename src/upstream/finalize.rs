//! The end of the upstream side of a request: the peer connection closed or kept, the
//! module's `finalize_request` called once, the HTTP request finalized, the context freed; and
//! the client watched for going away meanwhile.
//!
//! nginx: src/http/ngx_http_upstream.c — `ngx_http_upstream_finalize_request()`,
//! `ngx_http_upstream_cleanup()`, `ngx_http_upstream_rd_check_broken_connection()`, the
//! peer's `free()` and `ngx_close_connection(u->peer.connection)`.
//!
//! Differs from nginx:
//! - the context is freed by a request pool cleanup (`free_upstream`) after the access log
//!   line was written, where nginx frees it with the request's pool.
//! - `cleanup` calls the module's `abort_request` (nginx sets it and never calls it).

use super::round_robin::{self, PeerPick};
use super::{
    callback, ctx_mut, keepalive, response, u_ref, worker, BodyMode, ReadHandler, Upstream, UpstreamCtx, WriteHandler,
};
use crate::core::buf::Chain;
use crate::core::step::HandlerRc;
use crate::event::connection::ConnId;
use crate::http::cycle::{Cycle, RequestId};
use crate::http::request::{self as http_request, Cleanup};

/// Closes the current peer connection and tells the balancer how it went.
/// nginx: `u->peer.free()` + `ngx_close_connection(u->peer.connection)`.
pub(super) fn close_peer(cy: &mut Cycle, rid: RequestId, failed: bool) {
    let now = cy.ev.times.msec;
    let Cycle { requests, http, .. } = &mut *cy;
    let Some(r) = requests.get(rid) else { return };
    let header_only = r.header_only;
    let Some(ctx) = ctx_mut(http, r) else { return };
    let peer = take_peer(&mut ctx.u, now, header_only, failed);
    release_peer(cy, peer, failed);
}

/// What `take_peer` took from the upstream: the connection, the pick, and whether the
/// connection may be cached.
type TakenPeer = (Option<ConnId>, Option<PeerPick>, bool);

/// The upstream's half of `close_peer`: takes the connection and pick out of `u`, closes the
/// try's accounting, and says whether the connection may be reused.
fn take_peer(u: &mut Upstream, now: u64, header_only: bool, failed: bool) -> TakenPeer {
    // The connection can serve another request only if this response was read to its exact
    // end: the module vouched for the framing (`u.keepalive`), nothing extra came, and the
    // request went out whole. nginx: the checks of `ngx_http_upstream_free_keepalive_peer()`.
    let clean = !failed
        && u.keepalive
        && u.request_body_sent
        && (u.upstream_done || header_only)
        && u.buffer.pos == u.buffer.last;
    let conn = u.peer.connection.take();
    let pick = u.peer.pick.take();
    if u.state.peer.is_some() || u.state.start > 0 {
        u.state.response_time = now.saturating_sub(u.state.start);
        // (`states` keeps its memory from request to request: the context is recycled.)
        let st = std::mem::take(&mut u.state);
        u.states.push(st);
    }
    (conn, pick, clean)
}

/// The world's half of `close_peer`: the balancer hears how it went, the connection is cached
/// or closed.
fn release_peer(cy: &mut Cycle, (conn, pick, clean): TakenPeer, failed: bool) {
    if let Some(p) = pick {
        round_robin::free_peer(cy, p, failed);
    }
    let Some(c) = conn else { return };
    // The cache keys idle connections by the peer's address (nginx: `item->sockaddr`).
    let addr = pick.filter(|_| clean).and_then(|p| {
        let w = worker(&mut cy.http)?;
        w.rr.peer(p)?.addr.clone().map(|a| (p.group, a))
    });
    match addr {
        Some((group, addr)) => keepalive::put(cy, group, c, addr),
        None => crate::event::connect::close_connection(&mut cy.ev, c),
    }
}

/// Ends the upstream side exactly once: the peer released, then the module's
/// `finalize_request`. Returns false if it had already ended.
///
/// This is the only caller of `finalize_request`, and `u.finalized` (private to this module)
/// is set before it runs; a callback cannot reach this function (`UpstreamCx` does not reach
/// the framework), so the module hears it once on every path.
pub(super) fn finalize_upstream(cy: &mut Cycle, rid: RequestId, rc: HandlerRc) -> bool {
    let now = cy.ev.times.msec;
    let Cycle { requests, http, .. } = &mut *cy;
    let Some(r) = requests.get_mut(rid) else {
        return false;
    };
    let header_only = r.header_only;
    let Some(UpstreamCtx { u, .. }) = ctx_mut(http, r) else {
        return false;
    };
    if u.finalized {
        return false;
    }
    u.finalized = true;
    // The request's cleanup would find nothing left to do: taken off the list, as nginx sets
    // `*u->cleanup = NULL`.
    r.cleanup.retain(|&f| !std::ptr::fn_addr_eq(f, cleanup as Cleanup));
    u.read_handler = ReadHandler::Dummy;
    u.write_handler = WriteHandler::Dummy;
    let failed = matches!(rc, HandlerRc::Status(502 | 504)) && !u.header_sent;
    let peer = take_peer(u, now, header_only, failed);
    release_peer(cy, peer, failed);
    callback(cy, rid, |m, cx| m.finalize_request(cx, rc));
    true
}

/// Releases the upstream side early (buffered mode, body fully read, client still receiving).
pub fn release(cy: &mut Cycle, rid: RequestId) {
    finalize_upstream(cy, rid, HandlerRc::Ok);
}

/// Ends the request's upstream and the request itself. nginx:
/// `ngx_http_upstream_finalize_request()`.
pub fn finalize(cy: &mut Cycle, rid: RequestId, rc: HandlerRc) {
    finalize_upstream(cy, rid, rc);
    let Cycle { requests, http, .. } = &mut *cy;
    let Some(r) = requests.get_mut(rid) else {
        return;
    };
    r.read_event_handler = http_request::block_reading;
    let sub = r.main != rid;
    let Some((mode, header_sent)) = ctx_mut(http, r).map(|c| (c.u.mode, c.u.header_sent)) else {
        // No context (a stale id): the request still ends here, never left without a timer.
        return http_request::finalize_request(cy, rid, rc);
    };
    if mode == BodyMode::InMemory {
        // The module kept the body. A subrequest leaves it to its parent; a main request's
        // answer goes out now.
        let rc = match rc {
            HandlerRc::Ok if sub => response::keep_in_memory(cy, rid),
            HandlerRc::Ok => response::send_in_memory(cy, rid),
            rc => rc,
        };
        return http_request::finalize_request(cy, rid, rc);
    }
    if !header_sent || matches!(rc, HandlerRc::Status(408 | 499)) {
        return http_request::finalize_request(cy, rid, rc);
    }
    let rc = match rc {
        HandlerRc::Status(s) if s >= 300 => {
            // The response already started: it can only be cut short.
            if let Some(r) = cy.requests.get_mut(rid) {
                r.keepalive = false;
            }
            HandlerRc::Error
        }
        HandlerRc::Error => HandlerRc::Error,
        _ => response::send_last(cy, rid),
    };
    http_request::finalize_request(cy, rid, rc);
}

/// The request ends (or is terminated) while the upstream runs. nginx:
/// `ngx_http_upstream_cleanup()`, which goes straight to `finalize_request(r, NGX_DONE)`;
/// rginx first tells the module through `abort_request` when the response had not started
/// (nginx never calls that field: docs/upstream.md, "abort_request").
pub(super) fn cleanup(cy: &mut Cycle, rid: RequestId) {
    let Some(u) = u_ref(cy, rid) else { return };
    if u.finalized {
        return; // `finalize_upstream` would do nothing
    }
    if !u.header_sent {
        callback(cy, rid, |m, cx| m.abort_request(cx));
    }
    finalize_upstream(cy, rid, HandlerRc::Done);
}

/// Frees the context after the access log line was written (it reads `$upstream_*`).
/// nginx: the request pool's destruction.
pub(super) fn free_upstream(cy: &mut Cycle, rid: RequestId) {
    let Cycle { requests, http, ev, .. } = &mut *cy;
    let Some(r) = requests.get_mut(rid) else { return };
    let Some(uid) = r.upstream else { return };
    let Some(w) = worker(http) else { return };
    // Usually the response ended it already; one lookup serves the check and the removal.
    if w.ctxs.get(uid.typed()).is_some_and(|c| !c.u.finalized) {
        finalize_upstream(cy, rid, HandlerRc::Done);
        // Finalized now (`finalize_upstream` sets the flag on every path that finds the
        // context), so this second call frees it.
        return free_upstream(cy, rid);
    }
    r.upstream = None;
    let Some(mut ctx) = w.ctxs.remove(uid.typed()) else { return };
    let (u, bufs) = (&mut ctx.u, &mut ev.bufs);
    bufs.put(std::mem::take(&mut u.buffer));
    u.headers_in.release(bufs);
    bufs.put_chain(&mut u.request_bufs);
    bufs.put_chain(&mut u.out);
    // The next request of this worker reuses it (`upstream::spare`). A temp file closes now.
    u.pipe = Default::default();
    if let Some(p) = u.splice.take() {
        w.pipes.close(p);
    }
    // What a long URI or a long chain grew is not kept in a spare: 256 spares must not each
    // hold the largest request the worker ever proxied.
    if u.uri.capacity() > SPARE_MAX_BYTES {
        u.uri = String::new();
    }
    for chain in [&mut u.request_bufs, &mut u.out] {
        if chain.capacity() > SPARE_MAX_CHAIN {
            *chain = Chain::new();
        }
    }
    if w.spare.len() < super::SPARE_MAX {
        w.spare.push(ctx);
    }
}

/// Largest URI (bytes) and chain storage (buffers) a spare context keeps.
const SPARE_MAX_BYTES: usize = 4096;
const SPARE_MAX_CHAIN: usize = 64;

/// The client's read handler while the upstream works: notices a client that went away, and
/// says so in nginx's words on Linux (its epoll module registers `EPOLLRDHUP`, as mio does):
/// "epoll_wait() reported that client prematurely closed connection, so upstream connection
/// is closed too", with the error a reset left and the upstream's action.
/// nginx: `ngx_http_upstream_rd_check_broken_connection()`.
pub fn rd_check_broken_connection(cy: &mut Cycle, rid: RequestId) {
    let Some(r) = cy.requests.get(rid) else {
        return;
    };
    let cid = r.connection;
    let Some(c) = cy.ev.conns.get_mut(cid) else {
        return;
    };
    let (gone, err) = match c.stream.socket_fd().map(crate::os::sys::peek) {
        Some(Ok(0)) => (true, None),
        Some(Err(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {
            c.read.ready = false;
            (false, None)
        }
        Some(Err(e)) => (true, Some(e)),
        Some(Ok(_)) | None => (false, None),
    };
    if !gone {
        return;
    }
    c.read.eof = true;
    c.error = true;
    let Some(u) = u_ref(cy, rid).filter(|u| !u.finalized) else { return };
    let mut msg = String::from("epoll_wait() reported that client prematurely closed connection");
    if u.peer.connection.is_some() {
        msg.push_str(", so upstream connection is closed too");
    }
    if let Some(e) = err {
        msg.push_str(&format!(" ({})", crate::core::log::os_err(&e)));
    }
    super::log_at(cy, rid, log::Level::Info, &msg);
    finalize(cy, rid, HandlerRc::Status(499));
}
