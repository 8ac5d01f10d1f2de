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

use std::sync::Arc;

use crate::conf::Conf;
use crate::core::cycle::{Cycle, Signals, Stats};
use crate::core::id::GenSlab;
use crate::core::log as rlog;
use crate::core::times::Times;
use crate::event::{self, accept};

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
    let mut cy = init_cycle(conf.clone(), poll, signals, n);
    worker_process_init(&mut cy, &conf, socks);
    process_events_until_exit(&mut cy, &conf);
    close_all(&mut cy);
}

/// The worker's empty cycle. nginx: the cycle a worker inherits from `ngx_init_cycle()`.
fn init_cycle(conf: Arc<Conf>, poll: mio::Poll, signals: Arc<Signals>, n: usize) -> Cycle {
    let mut cy = Cycle {
        poll,
        events: None,
        ready: Vec::new(),
        listening: Vec::new(),
        conns: GenSlab::with_capacity(1024),
        requests: GenSlab::with_capacity(256),
        upstreams: GenSlab::new(),
        timers: event::timer::TimerWheel::new(0),
        fired: Vec::new(),
        posted_accept: Default::default(),
        posted: Default::default(),
        posted_requests: Default::default(),
        times: Times::new(),
        conf,
        bufs: Default::default(),
        stats: Stats::default(),
        connection_counter: 0,
        signals,
        exiting: false,
        worker: n,
        http: Default::default(),
    };
    cy.timers = event::timer::TimerWheel::new(cy.times.msec);
    cy
}

/// Registers the listening sockets and runs each module's `init_worker`.
/// nginx: `ngx_worker_process_init()` (`ngx_event_process_init`, `init_process`).
fn worker_process_init(cy: &mut Cycle, conf: &Conf, socks: Vec<(usize, std::net::TcpListener)>) {
    let listens = conf.listens();
    for (i, opt) in listens.iter().enumerate() {
        cy.listening.push(accept::Listening {
            addr: opt.addr,
            conn: None,
            handler: crate::http::request::init_connection,
            servers: i,
        });
    }
    let mut mio_socks = Vec::new();
    for (i, s) in socks {
        mio_socks.push((i, mio::net::TcpListener::from_std(s)));
    }
    accept::event_process_init(cy, mio_socks);
    if let Some(http) = conf.http.as_ref() {
        for m in http.modules {
            m.init_worker(cy);
        }
    }
}

/// The worker's loop: the master's flags first, then one turn of events and timers.
/// nginx: the `for ( ;; )` of `ngx_worker_process_cycle()`.
fn process_events_until_exit(cy: &mut Cycle, conf: &Conf) {
    let mut shutdown_deadline: Option<u64> = None;
    loop {
        if Signals::take(&cy.signals.terminate) {
            break;
        }
        if Signals::take(&cy.signals.reopen) {
            for m in conf.http.iter().flat_map(|h| h.modules.iter()) {
                m.reopen_files(cy);
            }
        }
        if Signals::take(&cy.signals.quit) && !cy.exiting {
            cy.exiting = true;
            accept::close_listening_sockets(cy);
            shutdown_deadline = conf.main.worker_shutdown_timeout.map(|t| cy.times.msec + t);
        }
        if cy.exiting {
            close_idle_connections(cy);
            if cy.conns.is_empty() {
                break;
            }
            if shutdown_deadline.is_some_and(|d| cy.times.msec >= d) {
                log::info!("worker_shutdown_timeout expired, closing {} connection(s)", cy.conns.len());
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
    for id in cy.conns.ids() {
        let idle = cy
            .conns
            .get(id)
            .is_some_and(|c| c.idle && c.owner == crate::core::connection::Owner::Client(None) && c.buffer.is_none());
        // Idle upstream connections of the keepalive cache go too (nginx marks them idle).
        let cached = cy.conns.get(id).is_some_and(|c| c.idle && c.owner == crate::core::connection::Owner::Cached);
        if idle {
            cy.stats.active = cy.stats.active.saturating_sub(1);
        }
        if idle || cached {
            event::connect::close_connection(cy, id);
        }
    }
}

/// Ends what is still open when the loop stops: requests first, then their connections.
/// nginx: `ngx_worker_process_exit()`.
fn close_all(cy: &mut Cycle) {
    for rid in cy.requests.ids() {
        crate::http::request::terminate_request(cy, rid, crate::core::step::HandlerRc::Error);
    }
    for id in cy.conns.ids() {
        event::connect::close_connection(cy, id);
    }
}
