//! Keeping upstream connections open between requests: per worker and per upstream group, a
//! cache of at most `keepalive N` idle connections, most recently used first.
//!
//! nginx: src/http/modules/ngx_http_upstream_keepalive_module.c —
//! `ngx_http_upstream_get_keepalive_peer()` (reuse a cached connection to the peer the
//! balancer chose), `ngx_http_upstream_free_keepalive_peer()` (cache it if the response left
//! it clean), `ngx_http_upstream_keepalive_close_handler()` (an idle connection that becomes
//! readable was closed by the peer, or sent garbage: drop it).
//!
//! Differs from nginx: nginx wraps the balancer's get/free callbacks; rginx calls `get` from
//! `connect` and `put` from `close_peer` directly. No `keepalive_time`.

use std::collections::VecDeque;

use super::conf::UpstreamMainConf;
use crate::event::connection::{ConnId, Ev, Stream};
use crate::event::{self, connect::PeerAddr};
use crate::http::cycle::Cycle;
use crate::http::cycle::Owner;

/// The idle connections of every group in this worker, most recently used at the front.
/// nginx: `kcf->cache` (and `kcf->free`, which a `VecDeque` makes unnecessary).
#[derive(Default)]
pub struct KeepaliveCache {
    groups: Vec<VecDeque<(ConnId, PeerAddr)>>,
    /// Per group (indexed like `UpstreamMainConf::upstreams`): `keepalive`,
    /// `keepalive_requests`, `keepalive_timeout`; `None` when it caches nothing. Copied from
    /// the configuration once, so `get`/`put` find it with the cache (one lookup, not two).
    settings: Vec<Option<(usize, u64, u64)>>,
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
    KeepaliveCache { groups: Vec::new(), settings }
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
    if !c.read.timedout {
        let mut b = [0u8; 1];
        // (A UNIX-domain peer that closes is noticed when the connection is used again.)
        let quiet = match &c.stream {
            Stream::Tcp(s) => s.peek(&mut b),
            _ => Err(std::io::ErrorKind::WouldBlock.into()),
        };
        if matches!(&quiet, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock) {
            c.read.ready = false;
            return; // still idle
        }
    }
    if let Some(cache) = super::worker(&mut cy.http).map(|w| &mut w.keepalive) {
        for items in &mut cache.groups {
            items.retain(|(id, _)| *id != ev.c);
        }
    }
    event::connect::close_connection(&mut cy.ev, ev.c);
}
