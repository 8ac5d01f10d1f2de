//! The event core: readiness from mio, timers from the wheel, posted queues; one loop turn.
//!
//! nginx: src/event/ngx_event.{c,h}, ngx_event_timer.{c,h}, ngx_event_posted.{c,h}.
//!
//! The reactor never names its users: it knows connections, their two events, timers and posted
//! queues, and calls the `handler` each event carries (installed by `http`/`upstream`), exactly
//! as nginx calls `ev->handler`. Everything here is generic over the world `W` that contains the
//! [`Reactor`] (see `reactor.rs`); timer and posting functions take the reactor alone, and only
//! the functions that run handlers take the whole world.

pub mod accept;
pub mod connect;
pub mod connection;
pub mod epoll;
pub mod io;
pub mod pipe;
pub mod posted;
pub mod reactor;
pub mod splice;
pub mod timer;

use std::time::Duration;

pub use connection::{ConnId, Ev};
pub use reactor::{Reactor, Stats, World};

/// Longest poll sleep when no timer is pending: a worker still wakes to notice signals.
/// nginx sleeps forever (`NGX_TIMER_INFINITE`) and is woken by the signal itself.
const MAX_WAIT_MS: u64 = 500;

/// One turn of the worker loop.
///
/// nginx: `ngx_process_events_and_timers()` — find_timer → process_events → posted accept →
/// expire_timers → posted events.
pub fn process_events_and_timers<W: World>(w: &mut W) -> std::io::Result<()> {
    let rx = w.reactor();
    let wait = rx.timers.find_timer(rx.times.msec).unwrap_or(MAX_WAIT_MS).min(MAX_WAIT_MS);
    let wait = if rx.posted.is_empty() { wait } else { 0 };
    epoll::process_events(w, Some(Duration::from_millis(wait)))?; // sets ev.ready, runs handlers
    posted::process(w, posted::Queue::Accept);
    expire_timers(w);
    posted::process(w, posted::Queue::Events);
    Ok(())
}

/// Arms (or re-arms) the timer of `ev` to fire `after` ms from now. nginx: `ngx_add_timer()`.
pub fn add_timer<W: World>(rx: &mut Reactor<W>, ev: Ev, after: u64) {
    let now = rx.times.msec;
    let Some(c) = rx.conns.get_mut(ev.c) else {
        return;
    };
    let e = c.event(ev.write);
    if let Some(t) = e.timer.take() {
        rx.timers.del_timer(t);
    }
    e.timer = Some(rx.timers.add_timer(ev, after, now));
}

/// Cancels the timer of `ev`, if set. nginx: `ngx_del_timer()`.
pub fn del_timer<W: World>(rx: &mut Reactor<W>, ev: Ev) {
    if let Some(c) = rx.conns.get_mut(ev.c) {
        if let Some(t) = c.event(ev.write).timer.take() {
            rx.timers.del_timer(t);
        }
    }
}

/// Whether `ev` has a pending timer. nginx: `ev->timer_set`.
pub fn timer_set<W: World>(rx: &Reactor<W>, ev: Ev) -> bool {
    rx.conns.get(ev.c).is_some_and(|c| if ev.write { c.write.timer.is_some() } else { c.read.timer.is_some() })
}

/// Runs the handlers of every due timer with `timedout` set. nginx: `ngx_event_expire_timers()`.
pub fn expire_timers<W: World>(w: &mut W) {
    let rx = w.reactor();
    let mut fired = std::mem::take(&mut rx.fired);
    rx.timers.expire_timers(rx.times.msec, &mut fired);
    for ev in fired.drain(..) {
        let Some(c) = w.reactor().conns.get_mut(ev.c) else {
            continue; // closed earlier in this batch
        };
        let e = c.event(ev.write);
        e.timer = None;
        e.timedout = true;
        let h = e.handler;
        h(w, ev);
    }
    w.reactor().fired = fired;
}

#[cfg(test)]
mod tests;
