//! Posted events: handlers deferred to the end of the loop turn.
//!
//! nginx: `ngx_post_event()`, `ngx_delete_posted_event()`, `ngx_event_process_posted()`
//! (src/event/ngx_event_posted.{c,h}).
//!
//! An event is posted when work is left behind without the socket having said so again — e.g. a
//! request was written while the read side was still `ready` (mio is edge-triggered: no new edge
//! will come). The queue holds ids; a closed connection's entries are recognised as stale.

use super::connection::Ev;
use super::reactor::{Reactor, World};

/// Which queue. nginx: `ngx_posted_accept_events` / `ngx_posted_events`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Queue {
    /// Accept events (run before timers).
    Accept,
    /// Everything else (run last in the turn).
    Events,
}

/// Queues `ev` once. nginx: `ngx_post_event()`.
pub fn post_event<W: World>(rx: &mut Reactor<W>, ev: Ev, q: Queue) {
    let Some(c) = rx.conns.get_mut(ev.c) else {
        return;
    };
    let e = c.event(ev.write);
    if e.posted {
        return;
    }
    e.posted = true;
    match q {
        Queue::Accept => rx.posted_accept.push_back(ev),
        Queue::Events => rx.posted.push_back(ev),
    }
}

/// Unqueues `ev` (its queue entry becomes stale). nginx: `ngx_delete_posted_event()`.
pub fn delete_posted_event<W: World>(rx: &mut Reactor<W>, ev: Ev) {
    if let Some(c) = rx.conns.get_mut(ev.c) {
        c.event(ev.write).posted = false;
    }
}

/// Runs every event of the queue, including ones posted while running.
/// nginx: `ngx_event_process_posted()`.
pub fn process<W: World>(w: &mut W, q: Queue) {
    loop {
        let rx = w.reactor();
        let ev = match q {
            Queue::Accept => rx.posted_accept.pop_front(),
            Queue::Events => rx.posted.pop_front(),
        };
        let Some(ev) = ev else { return };
        let Some(c) = rx.conns.get_mut(ev.c) else {
            continue;
        };
        let e = c.event(ev.write);
        if !e.posted {
            continue; // deleted after it was queued
        }
        e.posted = false;
        let h = e.handler;
        h(w, ev);
    }
}
