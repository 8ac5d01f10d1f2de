//! Choosing a peer and connecting to it, and re-initialising the request for a retry.
//!
//! nginx: `ngx_http_upstream_connect()`, `ngx_http_upstream_reinit()`,
//! `ngx_http_upstream_test_connect()` (src/http/ngx_http_upstream.c).

use super::{callback, keepalive, next, round_robin, u_mut, Ft, ReadHandler, UpstreamState, WriteHandler};
use crate::core::step::HandlerRc;
use crate::event::connection::{ConnId, Ev};
use crate::event::{self, connect::connect_peer, connect::PeerAddr};
use crate::http::cycle::Cycle;
use crate::http::cycle::{Owner, RequestId};
use crate::http::trace;

/// Picks a peer and starts a non-blocking connect; the write event says when it is done.
/// nginx: `ngx_http_upstream_connect()`.
pub fn connect(cy: &mut Cycle, rid: RequestId) {
    let now = cy.ev.times.msec;
    // The context and the balancer's peers are fields of one worker entry: one lookup.
    let Cycle { requests, http, .. } = &mut *cy;
    let Some(uid) = requests.get(rid).and_then(|r| r.upstream) else { return };
    let Some(super::UpstreamWorker { ctxs, rr, .. }) = super::worker(http) else { return };
    let Some(ctx) = ctxs.get_mut(uid.typed()) else { return };
    let may_keep = ctx.module.may_keep_connection();
    let u = &mut ctx.u;
    let retry = u.request_sent || u.state.start > 0 || !u.states.is_empty();
    u.state = UpstreamState { start: now, ..Default::default() };
    let group = u.resolved.group;
    let Some(pick) = round_robin::get_peer(rr, group, &u.peer.tried, now) else {
        return no_live(cy, rid, group);
    };
    // The address is copied (a TCP address is a few words), the name shared by count: the
    // peer's own stay in the worker's list. nginx: `pc->sockaddr`, `pc->name` point to them.
    let Some((addr, name)) = rr.peer(pick).and_then(|p| Some((p.addr.clone()?, p.name.clone()))) else {
        return no_live(cy, rid, group); // (`get_peer` picks only peers with an address)
    };
    let timeout = u.conf.connect_timeout;
    // Recorded before a retry's `reinit`, in the same borrow, as nginx sets
    // `u->state->peer` before `ngx_http_upstream_reinit()`.
    u.peer.tried.push((pick.backup, pick.index));
    u.state.peer = Some(name);
    u.peer.pick = Some(pick);
    if retry && reinit(cy, rid).is_err() {
        return super::finalize(cy, rid, HandlerRc::Status(500));
    }
    if let Some(cid) = keepalive::get(cy, group, &addr) {
        // An idle connection to this peer: no connect, send at once (no write edge will come
        // on a socket that is writable already). nginx: `rc == NGX_DONE` of
        // `ngx_event_connect_peer()` with `pc->cached`.
        let number = adopt(cy, rid, cid, true);
        trace::step(cy, rid, format_args!("upstream connect: {addr} (cached connection *{number})"));
        return super::request::send_request(cy, rid, true);
    }
    if may_keep && keepalive::wait(cy, group, rid, &addr) {
        // None idle now, but a request of this loop turn may finish and give one back before
        // the turn ends; at the latest then it connects (`keepalive::connect_waiting`).
        trace::step(cy, rid, format_args!("upstream connect: {addr} (waiting for a cached connection)"));
        return;
    }
    connect_new(cy, rid, &addr, timeout);
}

/// Opens a new connection to `addr` for the request's current try.
/// nginx: `ngx_event_connect_peer()` (the part that is not `pc->get`).
pub(super) fn connect_new(cy: &mut Cycle, rid: RequestId, addr: &PeerAddr, timeout: u64) {
    match connect_peer(&mut cy.ev, addr, Owner::Upstream(rid)) {
        Ok(cid) => {
            adopt(cy, rid, cid, false);
            trace::step(cy, rid, format_args!("upstream connect: {addr} (new connection)"));
            event::add_timer(&mut cy.ev, Ev { c: cid, write: true }, timeout);
        }
        Err(e) => {
            super::log_error(cy, rid, &format!("connect() to {addr} failed ({})", crate::core::log::os_err(&e)));
            next(cy, rid, Ft::Error);
        }
    }
}

/// Every peer of the group is down or tried: "no live upstreams", and the request ends (or
/// tries nothing more). nginx: `NGX_BUSY` from `ngx_event_connect_peer()`.
fn no_live(cy: &mut Cycle, rid: RequestId, group: usize) {
    let name = cy
        .http_conf
        .as_deref()
        .and_then(|h| h.main.get::<super::conf::UpstreamMainConf>())
        .and_then(|m| m.upstreams.get(group))
        .map(|g| g.name.clone())
        .unwrap_or_default();
    super::log_error(cy, rid, &format!("no live upstreams while connecting to upstream \"{name}\""));
    // `$upstream_addr` names the group when no peer was tried. nginx: `state->peer =
    // u->peer.name` (the upstream's name) on NGX_BUSY.
    if let Some(u) = u_mut(cy, rid) {
        u.state.peer = Some(name.into());
    }
    next(cy, rid, Ft::NoLive)
}

/// Makes `cid` the current try's connection: owner, handlers, the upstream's state.
/// Returns its number (`*N`, for the trace line).
pub(super) fn adopt(cy: &mut Cycle, rid: RequestId, cid: ConnId, cached: bool) -> u64 {
    let mut number = 0;
    if let Some(c) = cy.ev.conns.get_mut(cid) {
        c.owner = Owner::Upstream(rid);
        c.read.handler = super::handler;
        c.write.handler = super::handler;
        c.action = "connecting to upstream";
        c.requests += 1;
        number = c.number;
    }
    if let Some(u) = u_mut(cy, rid) {
        u.peer.connection = Some(cid);
        u.peer.cached = cached;
        u.write_handler = WriteHandler::SendRequest;
        u.read_handler = ReadHandler::ProcessHeader;
    }
    number
}

/// Rewinds everything a try changed, so the request can go to another peer.
/// nginx: `ngx_http_upstream_reinit()` (and the module's `reinit_request`).
fn reinit(cy: &mut Cycle, rid: RequestId) -> Result<(), ()> {
    match callback(cy, rid, |m, cx| m.reinit_request(cx)) {
        Some(Ok(())) => {}
        _ => return Err(()),
    }
    let Some(u) = u_mut(cy, rid) else {
        return Err(());
    };
    u.send_pos = (0, 0);
    u.request_sent = false;
    u.request_body_sent = false;
    u.request_body_blocked = false;
    u.headers_in.clear();
    u.buffer.reset();
    u.length = None;
    u.keepalive = false;
    Ok(())
}
