//! Accepting client connections, until `WouldBlock`.
//!
//! nginx: `ngx_event_accept()` (src/event/ngx_event_accept.c), `ngx_listening_t`
//! (src/core/ngx_connection.h).
//!
//! When `accept()` fails for want of descriptors (EMFILE, ENFILE), retrying at once would fail
//! again, and with edge-triggered events returning would leave the pending connections unseen
//! until a new one arrives. So, as nginx does, every listening socket leaves the poller
//! (`disable_accept_events`) and a timer of `ACCEPT_DELAY` is armed; when it fires they come
//! back (`enable_accept_events`) and each is tried again by posting its accept event (mio is
//! edge-triggered: connections queued meanwhile raise no new edge).
//!
//! Differs from nginx:
//! - no accept mutex: workers either share one listening socket (the kernel wakes them all, and
//!   the losers get `WouldBlock`) or each has its own `SO_REUSEPORT` socket. The retry delay is
//!   therefore nginx's no-mutex path (`ngx_add_timer(ev, ecf->accept_mutex_delay)`), with
//!   `accept_mutex_delay`'s default of 500 ms fixed.
//! - other `accept()` errors (ENOBUFS, ENOMEM, EPERM...) take the same pause: nginx just returns
//!   and its level-triggered listening socket reports the backlog again on the next turn; an
//!   edge-triggered one would not.

use std::io;
use std::net::SocketAddr;

use super::connection::{ConnId, Connection, Ev, Stream};
use super::reactor::{Reactor, World};
use super::{epoll, posted};

/// A listening socket of this worker. nginx: `ngx_listening_t`.
pub struct Listening<W> {
    /// The address as configured (`listen`).
    pub addr: SocketAddr,
    /// Its connection in the slab (the read event accepts).
    pub conn: Option<ConnId>,
    /// Called for each accepted connection. nginx: `ls->handler` (`ngx_http_init_connection`).
    pub handler: fn(&mut W, ConnId),
    /// Index of the owner's configuration for this address (for http: the servers listening on
    /// it). nginx: `ls->servers`.
    pub servers: usize,
}

/// How long accepting pauses after `accept()` ran out of descriptors.
/// nginx: `accept_mutex_delay` (default 500 ms), used as the retry timer without a mutex.
pub const ACCEPT_DELAY: u64 = 500;

/// Registers every listening socket of the worker and installs `event_accept` on it.
/// nginx: `ngx_event_process_init()` (the listening part).
pub fn event_process_init<W: World>(rx: &mut Reactor<W>, sockets: Vec<(usize, mio::net::TcpListener)>) {
    for (i, l) in sockets {
        let mut c = Connection::new(Stream::Listener(l), W::Data::default());
        c.listening = u32::try_from(i).unwrap_or(u32::MAX);
        c.read.handler = event_accept::<W>;
        let id = rx.conns.insert(c);
        if let Err(e) = epoll::add_connection(rx, id) {
            log::error!("epoll add listening socket failed ({e})");
        }
        if let Some(l) = rx.listening.get_mut(i) {
            l.conn = Some(id);
        }
    }
}

/// Stops accepting (graceful shutdown): closes this worker's listening connections.
/// nginx: `ngx_close_listening_sockets()`.
pub fn close_listening_sockets<W: World>(rx: &mut Reactor<W>) {
    for i in 0..rx.listening.len() {
        if let Some(id) = rx.listening[i].conn.take() {
            super::del_timer(rx, Ev { c: id, write: false });
            posted::delete_posted_event(rx, Ev { c: id, write: false });
            epoll::del_connection(rx, id, true);
            rx.conns.remove(id);
        }
    }
}

/// Takes every listening socket out of the poller: nothing is accepted until
/// `enable_accept_events`. nginx: `ngx_disable_accept_events()`.
fn disable_accept_events<W: World>(rx: &mut Reactor<W>) {
    for id in listening_conns(rx) {
        if rx.conns.get(id).is_some_and(|c| c.read.active) {
            epoll::del_connection(rx, id, false);
        }
    }
}

/// Puts every listening socket back into the poller and posts its accept event: connections
/// that queued up while it was out raise no edge of their own. nginx:
/// `ngx_enable_accept_events()` (there, the level-triggered listening socket reports them).
fn enable_accept_events<W: World>(rx: &mut Reactor<W>) {
    for id in listening_conns(rx) {
        if rx.conns.get(id).is_some_and(|c| !c.read.active) {
            if let Err(e) = epoll::add_connection(rx, id) {
                crate::ngx_log!(Alert, "epoll add listening socket failed ({e})");
                continue;
            }
        }
        posted::post_event(rx, Ev { c: id, write: false }, posted::Queue::Accept);
    }
}

fn listening_conns<W: World>(rx: &Reactor<W>) -> Vec<ConnId> {
    rx.listening.iter().filter_map(|l| l.conn).collect()
}

/// Accepts every pending connection. nginx: `ngx_event_accept()`.
///
/// Also the handler of the retry timer armed by `accept_failed`: it brings every listening
/// socket back first, as nginx's `if (ev->timedout) ngx_enable_accept_events()`.
pub fn event_accept<W: World>(w: &mut W, ev: Ev) {
    let rx = w.reactor();
    let Some(c) = rx.conns.get_mut(ev.c) else {
        return;
    };
    let li = c.listening;
    if std::mem::take(&mut c.read.timedout) {
        enable_accept_events(rx);
    }
    loop {
        let rx = w.reactor();
        let accepted = match rx.conns.get_mut(ev.c).map(|c| &mut c.stream) {
            Some(Stream::Listener(l)) => l.accept(),
            _ => return,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if let Some(c) = rx.conns.get_mut(ev.c) {
                    c.read.ready = false;
                }
                return;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => {
                log::error!("accept4() failed ({})", errno(&e));
                continue;
            }
            Err(e) => return accept_failed(rx, ev, &e),
        };
        if rx.conns.len() >= rx.worker_connections && !drain_connections(w) {
            crate::ngx_log!(Alert, "{} worker_connections are not enough", w.reactor().worker_connections);
            drop(stream);
            continue;
        }
        let rx = w.reactor();
        rx.stats.accepted += 1;
        let local = stream.local_addr().ok();
        let mut c = Connection::new(Stream::Tcp(stream), W::Data::default());
        rx.connection_counter += 1;
        c.number = rx.connection_counter;
        c.peer = Some(peer);
        c.local = local;
        c.listening = li;
        c.start_msec = rx.times.msec;
        let id = rx.conns.insert(c);
        if let Err(e) = epoll::add_connection(rx, id) {
            log::error!("epoll add connection failed ({e})");
            rx.conns.remove(id);
            continue;
        }
        rx.stats.handled += 1;
        rx.stats.active += 1;
        let Some(h) = rx.listening.get(li as usize).map(|l| l.handler) else {
            continue;
        };
        h(w, id);
    }
}

/// `accept()` failed and retrying now would fail again: pause accepting for `ACCEPT_DELAY`.
/// Out of descriptors (EMFILE/ENFILE) is `crit`, anything else `alert`, as nginx logs them.
/// nginx: the error path of `ngx_event_accept()`.
fn accept_failed<W: World>(rx: &mut Reactor<W>, ev: Ev, e: &io::Error) {
    const EMFILE: i32 = 24;
    const ENFILE: i32 = 23;
    if matches!(e.raw_os_error(), Some(EMFILE | ENFILE)) {
        crate::ngx_log!(Crit, "accept4() failed ({})", errno(e));
    } else {
        crate::ngx_log!(Alert, "accept4() failed ({})", errno(e));
    }
    disable_accept_events(rx);
    super::add_timer(rx, ev, ACCEPT_DELAY);
}

/// "24: Too many open files", nginx's rendering of an errno.
fn errno(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => {
            let s = e.to_string();
            format!("{n}: {}", s.split(" (os error").next().unwrap_or(&s))
        }
        None => e.to_string(),
    }
}

/// Makes room for a new connection by closing idle keepalive connections: an eighth of them,
/// at least one and at most 32. Each is closed by its owner: `close` is set and its read
/// handler runs, as nginx does. Returns whether a slot is free now.
///
/// nginx: `ngx_drain_connections()`. Differs: nginx takes the least recently used reusable
/// connections (also fresh ones that have sent nothing yet); rginx takes idle keepalive
/// connections in slab order.
fn drain_connections<W: World>(w: &mut W) -> bool {
    let rx = w.reactor();
    let ids = rx.conns.ids();
    // Client keepalive connections only (nginx's `ngx_reusable_connection`); cached upstream
    // connections are the keepalive module's to manage and are never `reusable`.
    let idle: Vec<ConnId> = ids.into_iter().filter(|&id| rx.conns.get(id).is_some_and(|c| c.reusable)).collect();
    if idle.is_empty() {
        return false;
    }
    log::warn!("{} worker_connections are not enough, reusing connections", rx.worker_connections);
    for id in idle.iter().take((idle.len() / 8).clamp(1, 32)) {
        let Some(c) = w.reactor().conns.get_mut(*id) else {
            continue;
        };
        c.close = true;
        let h = c.read.handler;
        h(w, Ev { c: *id, write: false });
    }
    let rx = w.reactor();
    rx.conns.len() < rx.worker_connections
}
