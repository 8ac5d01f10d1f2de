//! Choosing a peer: nginx's smooth weighted round robin with `max_fails`/`fail_timeout`
//! health, backups, and tries.
//!
//! nginx: src/http/ngx_http_upstream_round_robin.c (`ngx_http_upstream_init_round_robin`,
//! `ngx_http_upstream_get_round_robin_peer`, `ngx_http_upstream_get_peer`,
//! `ngx_http_upstream_free_round_robin_peer`).
//!
//! Differs from nginx: peer state (weights, failures) is per worker, never shared — nginx
//! shares it only when a `zone` is configured.

use std::rc::Rc;

use super::conf::UpstreamMainConf;
use crate::event::connect::PeerAddr;
use crate::http::cycle::Cycle;

/// Runtime state of one peer. nginx: `ngx_http_upstream_rr_peer_t` (its mutable fields).
#[derive(Clone, Debug, Default)]
pub struct PeerState {
    /// The address.
    pub addr: Option<PeerAddr>,
    /// The address as text, for `$upstream_addr` and logs: this worker's copy, shared by
    /// count with the tries that name it (nothing is allocated or written across workers when
    /// a try names its peer). nginx: `peer->name`.
    pub name: Rc<str>,
    /// `weight`.
    pub weight: i64,
    /// nginx: `effective_weight` (lowered on failure, recovers on success).
    pub effective_weight: i64,
    /// nginx: `current_weight` of the smooth algorithm.
    pub current_weight: i64,
    /// Failures counted within `fail_timeout`. nginx: `fails`.
    pub fails: usize,
    /// `max_fails`.
    pub max_fails: usize,
    /// `fail_timeout` ms.
    pub fail_timeout: u64,
    /// Last failure time (ms). nginx: `accessed`.
    pub accessed: u64,
    /// Last time the peer was chosen after a failure. nginx: `checked`.
    pub checked: u64,
    /// `down`.
    pub down: bool,
    /// Open connections to this peer. nginx: `conns`.
    pub conns: usize,
    /// Requests sent (for the status page).
    pub requests: u64,
    /// Failures seen (for the status page).
    pub failures: u64,
}

/// A group's peers in this worker. nginx: `ngx_http_upstream_rr_peers_t` (+ `next` = backups).
#[derive(Clone, Debug, Default)]
pub struct PeerGroup {
    /// Primary peers.
    pub primary: Vec<PeerState>,
    /// `backup` peers.
    pub backup: Vec<PeerState>,
}

/// Every group's peers in this worker.
#[derive(Default)]
pub struct RoundRobin {
    /// Indexed like `UpstreamMainConf::upstreams`.
    pub groups: Vec<PeerGroup>,
}

/// The peer chosen for one try, by index: its address and name stay in `PeerState`
/// (`peer`). nginx: the fields `get` fills in `ngx_peer_connection_t` (pointers to the
/// peer's sockaddr and name).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerPick {
    /// Group index.
    pub group: usize,
    /// From the backup list.
    pub backup: bool,
    /// Index in its list.
    pub index: usize,
}

impl RoundRobin {
    /// The state of a chosen peer.
    pub fn peer(&self, pick: PeerPick) -> Option<&PeerState> {
        let g = self.groups.get(pick.group)?;
        if pick.backup {
            g.backup.get(pick.index)
        } else {
            g.primary.get(pick.index)
        }
    }
}

/// Builds the worker's peer lists. nginx: `ngx_http_upstream_init_round_robin()`.
pub fn init_worker(cy: &Cycle) -> RoundRobin {
    let Some(m) = cy.http_conf.as_deref().and_then(|h| h.main.get::<UpstreamMainConf>()) else {
        return RoundRobin::default();
    };
    let mut rr = RoundRobin::default();
    for us in &m.upstreams {
        let mut g = PeerGroup::default();
        for s in &us.servers {
            for a in &s.addrs {
                let p = PeerState {
                    addr: Some(a.clone()),
                    name: Rc::from(a.to_string()),
                    weight: s.weight as i64,
                    effective_weight: s.weight as i64,
                    max_fails: s.max_fails,
                    fail_timeout: s.fail_timeout,
                    down: s.down,
                    ..Default::default()
                };
                if s.backup {
                    g.backup.push(p)
                } else {
                    g.primary.push(p)
                }
            }
        }
        rr.groups.push(g);
    }
    rr
}

/// How many tries a request gets: every peer once. nginx: `rrp->peers->tries`.
pub fn tries(rr: &RoundRobin, group: usize) -> usize {
    rr.groups.get(group).map_or(0, |g| g.primary.len() + g.backup.len())
}

/// Picks the next peer not yet `tried`. `None` means "no live upstreams".
/// nginx: `ngx_http_upstream_get_round_robin_peer()`.
/// `rr` is the worker's (`UpstreamWorker::rr`), borrowed beside the request's context.
pub fn get_peer(rr: &mut RoundRobin, group: usize, tried: &[(bool, usize)], now: u64) -> Option<PeerPick> {
    let g = rr.groups.get_mut(group)?;
    let single = g.primary.len() == 1 && g.backup.is_empty();
    for backup in [false, true] {
        let list = if backup { &mut g.backup } else { &mut g.primary };
        if let Some(i) = pick(list, backup, tried, now, single) {
            let p = list.get_mut(i)?;
            p.addr.as_ref()?;
            p.conns += 1;
            p.requests += 1;
            return Some(PeerPick { group, backup, index: i });
        }
    }
    // All peers failed: mark them live again for a quick recovery, as nginx does.
    for p in g.primary.iter_mut().chain(g.backup.iter_mut()) {
        p.fails = 0;
    }
    None
}

/// The smooth weighted choice over one list. nginx: `ngx_http_upstream_get_peer()`.
fn pick(list: &mut [PeerState], backup: bool, tried: &[(bool, usize)], now: u64, single: bool) -> Option<usize> {
    if single {
        // nginx skips health accounting and the tried set for a single peer, except `down`
        // (its one try is bounded by `tries`; a retry after a stale keepalive connection
        // picks it again).
        let p = list.first()?;
        if p.down {
            return None;
        }
        return Some(0);
    }
    let mut best: Option<usize> = None;
    let mut total = 0i64;
    for i in 0..list.len() {
        if !eligible(&list[i], backup, i, tried, now) {
            continue;
        }
        let p = &mut list[i];
        p.current_weight += p.effective_weight;
        total += p.effective_weight;
        if p.effective_weight < p.weight {
            p.effective_weight += 1;
        }
        if best.is_none_or(|b| list[i].current_weight > list[b].current_weight) {
            best = Some(i);
        }
    }
    let bi = best?;
    let p = &mut list[bi];
    p.current_weight -= total;
    if now.saturating_sub(p.checked) > p.fail_timeout {
        p.checked = now;
    }
    Some(bi)
}

fn eligible(p: &PeerState, backup: bool, i: usize, tried: &[(bool, usize)], now: u64) -> bool {
    // nginx: a peer with `max_fails` failures is skipped until `fail_timeout` has passed.
    let failing = p.max_fails > 0 && p.fails >= p.max_fails && now.saturating_sub(p.checked) <= p.fail_timeout;
    !p.down && !tried.contains(&(backup, i)) && !failing
}

/// Returns a peer after a try, counting a failure or clearing them.
/// nginx: `ngx_http_upstream_free_round_robin_peer()`.
pub fn free_peer(cy: &mut Cycle, pick: PeerPick, failed: bool) {
    let now = cy.ev.times.msec;
    let Some(rr) = super::worker(&mut cy.http).map(|w| &mut w.rr) else {
        return;
    };
    let Some(g) = rr.groups.get_mut(pick.group) else {
        return;
    };
    let single = g.primary.len() == 1 && g.backup.is_empty();
    let list = if pick.backup { &mut g.backup } else { &mut g.primary };
    let Some(p) = list.get_mut(pick.index) else {
        return;
    };
    p.conns = p.conns.saturating_sub(1);
    if failed {
        p.failures += 1;
    }
    if single {
        return; // nginx: a single peer is never marked down (`rrp->peers->single`)
    }
    if failed {
        p.fails += 1;
        p.accessed = now;
        p.checked = now;
        if p.max_fails > 0 {
            p.effective_weight -= p.weight / p.max_fails as i64;
            if p.fails >= p.max_fails {
                log::warn!(
                    "upstream server temporarily disabled while connecting to upstream, upstream: \"{}\"",
                    p.name
                );
            }
        }
        if p.effective_weight < 0 {
            p.effective_weight = 0;
        }
    } else if p.accessed < p.checked {
        p.fails = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(w: i64) -> PeerState {
        PeerState { weight: w, effective_weight: w, max_fails: 1, fail_timeout: 10_000, ..Default::default() }
    }

    #[test]
    fn smooth_weighted_sequence_matches_nginx() {
        let mut l = vec![peer(5), peer(1), peer(1)];
        let seq: String =
            (0..7).map(|_| [b'a', b'b', b'c'][pick(&mut l, false, &[], 0, false).unwrap_or(0)] as char).collect();
        assert_eq!(seq, "aabacaa");
    }
}
