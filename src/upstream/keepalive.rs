//! Keeping upstream connections open between requests: per worker and per upstream group, a
//! cache of at most `keepalive N` idle connections, most recently used first.
//!
//! nginx: src/http/modules/ngx_http_upstream_keepalive_module.c —
//! `ngx_http_upstream_get_keepalive_peer()` (reuse a cached connection to the peer the
//! balancer chose), `ngx_http_upstream_free_keepalive_peer()` (cache it if the response left
//! it clean), `ngx_http_upstream_keepalive_close_handler()` (an idle connection that becomes
//! readable was closed by the peer, or sent garbage: drop it).
//!
//! Differs from nginx:
//! - nginx wraps the balancer's get/free callbacks; rginx calls `get` from `connect` and `put`
//!   from `close_peer` directly. No `keepalive_time`.
//! - A request that finds no idle connection waits until the end of the loop turn before it
//!   opens one (`wait`, `connect_waiting`): a request that finishes in the same turn hands its
//!   connection over instead of closing it for lack of room in the cache. nginx opens a new
//!   connection at once. The cache still never holds more than `keepalive N` idle
//!   connections; with 1,000 clients and `keepalive 64`, nginx opens ~380 upstream
//!   connections per 1,000 requests and closes as many (docs/decisions.md, "Waiting for a
//!   cached connection until the end of the turn").

use std::collections::VecDeque;

use super::conf::UpstreamMainConf;
use crate::core::id::RawId;
use crate::event::connection::{ConnId, Ev};
use crate::event::posted;
use crate::event::{self, connect::PeerAddr};
use crate::http::cycle::Cycle;
use crate::http::cycle::{Owner, RequestId};

/// The idle connections of every group in this worker, most recently used at the front.
/// nginx: `kcf->cache` (and `kcf->free`, which a `VecDeque` makes unnecessary).
#[derive(Default)]
pub struct KeepaliveCache {
    groups: Vec<VecDeque<(ConnId, PeerAddr)>>,
    /// Requests of this loop turn that found no idle connection to their peer, first come
    /// first served: a connection given back in the same turn goes to them instead of the
    /// cache. Emptied at the end of every turn (`connect_waiting`).
    waiting: VecDeque<Waiter>,
    /// `connect_waiting` is running: requests connect at once (a retry must not wait for a
    /// turn that has ended).
    draining: bool,
    /// Per group (indexed like `UpstreamMainConf::upstreams`): `keepalive`,
    /// `keepalive_requests`, `keepalive_timeout`; `None` when it caches nothing. Copied from
    /// the configuration once, so `get`/`put` find it with the cache (one lookup, not two).
    settings: Vec<Option<(usize, u64, u64)>>,
}

/// A request waiting, until the end of the turn, for a connection to `addr` in `group`.
struct Waiter {
    rid: RequestId,
    /// The request's upstream context when it began to wait: a request that ends this try
    /// and starts another (a redirect to another group) is not served by the old entry.
    uid: RawId,
    group: usize,
    addr: PeerAddr,
}

impl KeepaliveCache {
    /// The group's settings; `None` when it caches nothing.
    fn settings(&self, group: usize) -> Option<(usize, u64, u64)> {
        self.settings.get(group).copied().flatten()
    }
}

/// Installs the (empty) cache. nginx: `ngx_http_upstream_init_keepalive()`.
pub fn init_worker(cy: &Cycle) -> KeepaliveCache {
    let settings = cy
        .http_conf
        .as_deref()
        .and_then(|h| h.main.get::<UpstreamMainConf>())
        .map(|m| {
            let each = |g: &super::conf::UpstreamSrvConf| {
                (g.keepalive > 0).then_some((g.keepalive, g.keepalive_requests, g.keepalive_timeout))
            };
            m.upstreams.iter().map(each).collect()
        })
        .unwrap_or_default();
    KeepaliveCache { settings, ..Default::default() }
}

/// Takes an idle connection to `addr` out of the group's cache, if there is one; the caller
/// owns it from then on (handlers, timers). nginx: `ngx_http_upstream_get_keepalive_peer()`.
pub fn get(cy: &mut Cycle, group: usize, addr: &PeerAddr) -> Option<ConnId> {
    let cache = &mut super::worker(&mut cy.http)?.keepalive;
    cache.settings(group)?;
    let items = cache.groups.get_mut(group)?;
    let i = items.iter().position(|(_, a)| a == addr)?;
    let (cid, _) = items.remove(i)?;
    event::del_timer(&mut cy.ev, Ev { c: cid, write: false });
    let c = cy.ev.conns.get_mut(cid)?;
    c.idle = false;
    c.read.timedout = false;
    log::debug!("get keepalive peer: using connection *{}", c.number);
    Some(cid)
}

/// Caches `cid` (a connection whose response was read completely and cleanly) for the next
/// request to its peer, or closes it when the group keeps none, it served
/// `keepalive_requests` requests, or the worker is exiting. The least recently used
/// connection makes room when the cache is full. nginx: `ngx_http_upstream_free_keepalive_peer()`.
pub fn put(cy: &mut Cycle, group: usize, cid: ConnId, addr: PeerAddr) {
    let Cycle { http, ev, .. } = &mut *cy;
    let Some(cache) = super::worker(http).map(|w| &mut w.keepalive) else {
        return event::connect::close_connection(ev, cid);
    };
    let Some((max, requests, timeout)) = cache.settings(group) else {
        return event::connect::close_connection(ev, cid);
    };
    let usable = ev.conns.get(cid).is_some_and(|c| {
        !(c.read.eof || c.read.error || c.write.error || c.error || c.read.timedout) && u64::from(c.requests) < requests
    });
    if !usable || ev.exiting {
        return event::connect::close_connection(ev, cid);
    }
    if !cache.waiting.is_empty() && hand_over(cy, group, cid, &addr) {
        return;
    }
    let Some(cache) = super::worker(&mut cy.http).map(|w| &mut w.keepalive) else {
        return event::connect::close_connection(&mut cy.ev, cid);
    };
    if cache.groups.len() <= group {
        cache.groups.resize_with(group + 1, VecDeque::new);
    }
    let items = &mut cache.groups[group];
    let evicted = if items.len() >= max { items.pop_back() } else { None };
    items.push_front((cid, addr));
    if let Some((old, _)) = evicted {
        event::connect::close_connection(&mut cy.ev, old);
    }
    event::del_timer(&mut cy.ev, Ev { c: cid, write: true });
    event::add_timer(&mut cy.ev, Ev { c: cid, write: false }, timeout);
    let Some(c) = cy.ev.conns.get_mut(cid) else {
        return;
    };
    c.owner = Owner::Cached;
    c.idle = true;
    c.action = "keepalive";
    c.read.handler = close_handler;
    c.write.handler = crate::event::connection::empty_handler;
    // Bytes or a FIN may already be here, and no new edge would announce them — but only if
    // the last read did not drain the socket (`ready`). nginx checks `c->read->ready` too.
    if c.read.ready || c.read.eof {
        close_handler(cy, Ev { c: cid, write: false });
    }
}

/// The read handler of an idle cached connection: anything readable (the peer closed it, or
/// sent what nobody asked for) or the keepalive timeout ends it.
/// nginx: `ngx_http_upstream_keepalive_close_handler()`.
fn close_handler(cy: &mut Cycle, ev: Ev) {
    let Some(c) = cy.ev.conns.get_mut(ev.c) else {
        return;
    };
    if !c.read.timedout && quiet(c) {
        return; // still idle
    }
    if let Some(cache) = super::worker(&mut cy.http).map(|w| &mut w.keepalive) {
        for items in &mut cache.groups {
            items.retain(|(id, _)| *id != ev.c);
        }
    }
    event::connect::close_connection(&mut cy.ev, ev.c);
}

/// Whether an idle connection that looked readable has nothing to say after all (no byte, no
/// FIN); clears `read.ready` if so. Anything else means the peer closed it or sent what
/// nobody asked for (TCP and UNIX-domain peers alike).
fn quiet(c: &mut crate::event::connection::Connection<Cycle>) -> bool {
    let r = match c.stream.socket_fd() {
        Some(fd) => crate::os::sys::peek(fd),
        None => Err(std::io::ErrorKind::WouldBlock.into()),
    };
    let quiet = matches!(&r, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
    if quiet {
        c.read.ready = false;
    }
    quiet
}

/// Makes `rid` wait for a connection to `addr` until the end of the turn, if the group keeps
/// connections; false: connect now. Part of `ngx_http_upstream_get_keepalive_peer()`'s
/// "no cached connection" path, which in nginx connects at once.
pub(super) fn wait(cy: &mut Cycle, group: usize, rid: RequestId, addr: &PeerAddr) -> bool {
    let Some(cache) = super::worker(&mut cy.http).map(|w| &mut w.keepalive) else {
        return false;
    };
    if cache.draining || cache.settings(group).is_none() {
        return false;
    }
    let Some(uid) = cy.requests.get(rid).and_then(|r| r.upstream) else {
        return false;
    };
    cache.waiting.push_back(Waiter { rid, uid, group, addr: addr.clone() });
    true
}

/// Gives `cid`, just released clean, to the first request still waiting for a connection to
/// its peer. True if it went (or was closed: its peer had closed it); false if nobody waits,
/// and the caller caches it. A given connection never enters the cache, so the cap on idle
/// ones holds.
fn hand_over(cy: &mut Cycle, group: usize, cid: ConnId, addr: &PeerAddr) -> bool {
    let Some(c) = cy.ev.conns.get_mut(cid) else {
        return false;
    };
    if (c.read.ready || c.read.eof) && !quiet(c) {
        // The peer closed it (or sent garbage): nobody gets it, and the waiters stay in line.
        event::connect::close_connection(&mut cy.ev, cid);
        return true;
    }
    let Some(w) = take_waiter(cy, group, addr) else {
        return false;
    };
    let rid = w.rid;
    event::del_timer(&mut cy.ev, Ev { c: cid, write: false });
    event::del_timer(&mut cy.ev, Ev { c: cid, write: true });
    let number = super::connect::adopt(cy, rid, cid, true);
    let msg = format_args!("upstream connect: {addr} (connection *{number} handed over)");
    crate::http::trace::step(cy, rid, msg);
    // Sent from the posted queue, as if the (already writable) socket had said so: the
    // request that gave the connection back is still finishing.
    posted::post_event(&mut cy.ev, Ev { c: cid, write: true }, posted::Queue::Events);
    true
}

/// The first waiter for `addr` in `group` whose request still waits; stale entries (the
/// request ended, or its try moved on) are dropped on the way.
fn take_waiter(cy: &mut Cycle, group: usize, addr: &PeerAddr) -> Option<Waiter> {
    loop {
        let cache = &mut super::worker(&mut cy.http)?.keepalive;
        let i = cache.waiting.iter().position(|w| w.group == group && w.addr == *addr)?;
        let w = cache.waiting.remove(i)?;
        if still_waiting(cy, &w) {
            return Some(w);
        }
    }
}

/// The request exists, has the upstream context it waited with, and that context's current
/// try has a peer but no connection yet.
fn still_waiting(cy: &Cycle, w: &Waiter) -> bool {
    cy.requests.get(w.rid).is_some_and(|r| r.upstream == Some(w.uid))
        && super::u_ref(cy, w.rid).is_some_and(|u| !u.finalized && u.peer.connection.is_none() && u.peer.pick.is_some())
}

/// The end of a loop turn: every request still waiting opens its own connection now.
/// Called by the worker after each turn of events, timers and posted events.
pub fn connect_waiting(cy: &mut Cycle) {
    let Some(cache) = super::worker(&mut cy.http).map(|w| &mut w.keepalive) else {
        return;
    };
    if cache.waiting.is_empty() {
        return;
    }
    cache.draining = true;
    while let Some(w) = super::worker(&mut cy.http).and_then(|w| w.keepalive.waiting.pop_front()) {
        if !still_waiting(cy, &w) {
            continue;
        }
        let timeout = super::u_ref(cy, w.rid).map_or(60_000, |u| u.conf.connect_timeout);
        super::connect::connect_new(cy, w.rid, &w.addr, timeout);
        crate::http::request::run_posted_requests(cy);
    }
    if let Some(cache) = super::worker(&mut cy.http).map(|w| &mut w.keepalive) {
        cache.draining = false;
    }
}
