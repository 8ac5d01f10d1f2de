//! A worker: one thread, one `Cycle`, the event loop until quit or terminate.
//!
//! nginx: src/os/unix/ngx_process_cycle.c (`ngx_worker_process_cycle`,
//! `ngx_worker_process_init`), src/core/ngx_connection.c (`ngx_close_idle_connections`).
//!
//! Differs from nginx:
//! - a worker is a thread, not a process: it has its own `mio::Poll`, slab, timer wheel and
//!   `Cycle`, and shares nothing with the others but the read-only configuration (`Arc<Conf>`).
//!   The master reaches it through `Signals` flags and a `mio::Waker` ([`WAKE_TOKEN`]), where
//!   nginx sends a signal or a channel message.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::conf::Conf;
use crate::core::log as rlog;
use crate::event::{self, accept};
use crate::http::cycle::{Cycle, Owner};

/// Commands the master thread sends a worker (nginx's `ngx_quit`, `ngx_terminate`,
/// `ngx_reopen` flags, set from signal handlers there).
#[derive(Default, Debug)]
pub struct Signals {
    /// Fast stop (TERM/INT). nginx: `ngx_terminate`.
    pub terminate: AtomicBool,
    /// Graceful stop (QUIT, or old workers after a reload). nginx: `ngx_quit`.
    pub quit: AtomicBool,
    /// Reopen log files (USR1). nginx: `ngx_reopen`.
    pub reopen: AtomicBool,
}

impl Signals {
    /// Reads and clears a flag.
    pub fn take(flag: &AtomicBool) -> bool {
        flag.swap(false, Ordering::AcqRel)
    }
}

/// The token of a worker's waker in its poll.
pub const WAKE_TOKEN: usize = crate::event::epoll::WAKER.0;

/// One worker's life. nginx: `ngx_worker_process_cycle()`.
pub(super) fn worker_process_cycle(
    conf: Arc<Conf>,
    poll: mio::Poll,
    socks: Vec<(usize, std::net::TcpListener)>,
    signals: Arc<Signals>,
    n: usize,
) {
    rlog::set_worker(n);
    let mut cy = Cycle::new(conf, poll, n);
    worker_process_init(&mut cy, socks);
    process_events_until_exit(&mut cy, &signals);
    close_all(&mut cy);
}

/// Registers the listening sockets and runs each module's `init_worker`.
/// nginx: `ngx_worker_process_init()` (`ngx_event_process_init`, `init_process`).
fn worker_process_init(cy: &mut Cycle, socks: Vec<(usize, std::net::TcpListener)>) {
    for (i, opt) in crate::http::listens(&cy.conf).iter().enumerate() {
        cy.ev.listening.push(accept::Listening {
            addr: opt.addr,
            conn: None,
            handler: crate::http::request::init_connection,
            servers: i,
        });
    }
    let socks = socks.into_iter().map(|(i, s)| (i, mio::net::TcpListener::from_std(s))).collect();
    accept::event_process_init(&mut cy.ev, socks);
    if let Some(http) = cy.http_conf.clone() {
        for m in http.modules {
            m.init_worker(cy);
        }
    }
}

/// The worker's loop: the master's flags first, then one turn of events and timers.
/// nginx: the `for ( ;; )` of `ngx_worker_process_cycle()`.
fn process_events_until_exit(cy: &mut Cycle, signals: &Signals) {
    let mut shutdown_deadline: Option<u64> = None;
    loop {
        if Signals::take(&signals.terminate) {
            break;
        }
        if Signals::take(&signals.reopen) {
            for m in cy.http_conf.clone().iter().flat_map(|h| h.modules.iter()) {
                m.reopen_files(cy);
            }
        }
        if Signals::take(&signals.quit) && !cy.ev.exiting {
            cy.ev.exiting = true;
            accept::close_listening_sockets(&mut cy.ev);
            shutdown_deadline = cy.conf.main.worker_shutdown_timeout.map(|t| cy.ev.times.msec + t);
        }
        if cy.ev.exiting {
            close_idle_connections(cy);
            if cy.ev.conns.is_empty() {
                break;
            }
            if shutdown_deadline.is_some_and(|d| cy.ev.times.msec >= d) {
                log::info!("worker_shutdown_timeout expired, closing {} connection(s)", cy.ev.conns.len());
                break;
            }
        }
        if let Err(e) = event::process_events_and_timers(cy) {
            crate::ngx_log!(Alert, "epoll_wait() failed ({e})");
            break;
        }
    }
}

/// Closes idle keepalive connections during a graceful stop. A connection accepted but not
/// yet read from is not idle: its first request is served (with `Connection: close`), else a
/// client connecting during a reload would see its connection dropped.
/// nginx: `ngx_close_idle_connections()` (only `c->idle` ones).
fn close_idle_connections(cy: &mut Cycle) {
    for id in cy.ev.conns.ids() {
        let Some(c) = cy.ev.conns.get(id) else { continue };
        let idle = c.idle && c.owner == Owner::Client(None) && c.buffer.is_none();
        // Idle upstream connections of the keepalive cache go too (nginx marks them idle).
        let cached = c.idle && c.owner == Owner::Cached;
        if idle {
            cy.ev.stats.active = cy.ev.stats.active.saturating_sub(1);
        }
        if idle || cached {
            event::connect::close_connection(&mut cy.ev, id);
        }
    }
}

/// Ends what is still open when the loop stops: requests first, then their connections.
/// nginx: `ngx_worker_process_exit()`.
fn close_all(cy: &mut Cycle) {
    for rid in cy.requests.ids() {
        crate::http::request::terminate_request(cy, rid, crate::core::step::HandlerRc::Error);
    }
    for id in cy.ev.conns.ids() {
        event::connect::close_connection(&mut cy.ev, id);
    }
}
