//! The event core: readiness from mio, timers from the wheel, posted queues; one loop turn.
//!
//! nginx: src/event/ngx_event.{c,h}, ngx_event_timer.{c,h}, ngx_event_posted.{c,h}.
//!
//! The reactor never names its users: it knows connections, their two events, timers and posted
//! queues, and calls the `handler` each event carries (installed by `http`/`upstream`), exactly
//! as nginx calls `ev->handler`.

pub mod accept;
pub mod connect;
pub mod epoll;
pub mod pipe;
pub mod posted;
pub mod timer;

use std::io;
use std::time::Duration;

use crate::core::connection::Ev;
use crate::core::cycle::Cycle;

/// Longest poll sleep when no timer is pending: a worker still wakes to notice signals.
/// nginx sleeps forever (`NGX_TIMER_INFINITE`) and is woken by the signal itself.
const MAX_WAIT_MS: u64 = 500;

/// One turn of the worker loop.
///
/// nginx: `ngx_process_events_and_timers()` — find_timer → process_events → posted accept →
/// expire_timers → posted events.
pub fn process_events_and_timers(cy: &mut Cycle) -> io::Result<()> {
    let wait = cy.timers.find_timer(cy.times.msec).unwrap_or(MAX_WAIT_MS).min(MAX_WAIT_MS);
    let wait = if cy.posted.is_empty() { wait } else { 0 };
    epoll::process_events(cy, Some(Duration::from_millis(wait)))?; // sets ev.ready, runs handlers
    posted::process(cy, posted::Queue::Accept);
    expire_timers(cy);
    posted::process(cy, posted::Queue::Events);
    Ok(())
}

/// Arms (or re-arms) the timer of `ev` to fire `after` ms from now. nginx: `ngx_add_timer()`.
pub fn add_timer(cy: &mut Cycle, ev: Ev, after: u64) {
    let now = cy.times.msec;
    let Some(c) = cy.conns.get_mut(ev.c) else {
        return;
    };
    let e = c.event(ev.write);
    if let Some(t) = e.timer.take() {
        cy.timers.del_timer(t);
    }
    e.timer = Some(cy.timers.add_timer(ev, after, now));
}

/// Cancels the timer of `ev`, if set. nginx: `ngx_del_timer()`.
pub fn del_timer(cy: &mut Cycle, ev: Ev) {
    if let Some(c) = cy.conns.get_mut(ev.c) {
        if let Some(t) = c.event(ev.write).timer.take() {
            cy.timers.del_timer(t);
        }
    }
}

/// Whether `ev` has a pending timer. nginx: `ev->timer_set`.
pub fn timer_set(cy: &Cycle, ev: Ev) -> bool {
    cy.conns.get(ev.c).is_some_and(|c| if ev.write { c.write.timer.is_some() } else { c.read.timer.is_some() })
}

/// Runs the handlers of every due timer with `timedout` set. nginx: `ngx_event_expire_timers()`.
pub fn expire_timers(cy: &mut Cycle) {
    let mut fired = std::mem::take(&mut cy.fired);
    cy.timers.expire_timers(cy.times.msec, &mut fired);
    for ev in fired.drain(..) {
        let Some(c) = cy.conns.get_mut(ev.c) else {
            continue; // closed earlier in this batch
        };
        let e = c.event(ev.write);
        e.timer = None;
        e.timedout = true;
        let h = e.handler;
        h(cy, ev);
    }
    cy.fired = fired;
}
