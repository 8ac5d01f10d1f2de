//! Accepting client connections, until `WouldBlock`.
//!
//! nginx: `ngx_event_accept()` (src/event/ngx_event_accept.c), `ngx_listening_t`
//! (src/core/ngx_connection.h).
//!
//! Differs from nginx:
//! - no accept mutex: workers either share one listening socket (the kernel wakes them all, and
//!   the losers get `WouldBlock`) or each has its own `SO_REUSEPORT` socket.

use std::net::SocketAddr;

use super::epoll;
use crate::core::connection::{ConnId, Connection, Ev, Owner, Stream};
use crate::core::cycle::Cycle;

/// A listening socket of this worker. nginx: `ngx_listening_t`.
pub struct Listening {
    /// The address as configured (`listen`).
    pub addr: SocketAddr,
    /// Its connection in the slab (the read event accepts).
    pub conn: Option<ConnId>,
    /// Called for each accepted connection. nginx: `ls->handler` (`ngx_http_init_connection`).
    pub handler: fn(&mut Cycle, ConnId),
    /// Index of the HTTP address configuration (servers on this address). nginx:
    /// `ls->servers`.
    pub servers: usize,
}

/// Registers every listening socket of the worker and installs `event_accept` on it.
/// nginx: `ngx_event_process_init()` (the listening part).
pub fn enable_accept_events(cy: &mut Cycle, sockets: Vec<(usize, mio::net::TcpListener)>) {
    for (i, l) in sockets {
        let mut c = Connection::new(Stream::Listener(l), Owner::Listening(i));
        c.read.handler = event_accept;
        let id = cy.conns.insert(c);
        if let Err(e) = epoll::add_connection(cy, id) {
            log::error!("epoll add listening socket failed ({e})");
        }
        cy.listening[i].conn = Some(id);
    }
}

/// Stops accepting (graceful shutdown): closes this worker's listening connections.
/// nginx: `ngx_close_listening_sockets()`.
pub fn close_listening_sockets(cy: &mut Cycle) {
    for i in 0..cy.listening.len() {
        if let Some(id) = cy.listening[i].conn.take() {
            epoll::del_connection(cy, id);
            cy.conns.remove(id);
        }
    }
}

/// Accepts every pending connection. nginx: `ngx_event_accept()`.
pub fn event_accept(cy: &mut Cycle, ev: Ev) {
    let Some(ls) = cy.conns.get(ev.c).map(|c| c.owner) else {
        return;
    };
    let Owner::Listening(li) = ls else { return };
    loop {
        let accepted = match cy.conns.get_mut(ev.c).map(|c| &mut c.stream) {
            Some(Stream::Listener(l)) => l.accept(),
            _ => return,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if let Some(c) = cy.conns.get_mut(ev.c) {
                    c.read.ready = false;
                }
                return;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionAborted => continue,
            Err(e) => {
                // EMFILE/ENFILE: nginx disables accept events for a while; we log and retry on
                // the next edge.
                log::error!("accept() failed ({e})");
                return;
            }
        };
        if cy.conns.len() >= cy.conf.main.worker_connections && !drain_connections(cy) {
            crate::ngx_log!(Alert, "{} worker_connections are not enough", cy.conf.main.worker_connections);
            drop(stream);
            continue;
        }
        cy.stats.accepted += 1;
        let local = stream.local_addr().ok();
        let mut c = Connection::new(Stream::Tcp(stream), Owner::Client(None));
        cy.connection_counter += 1;
        c.number = cy.connection_counter;
        c.peer = Some(peer);
        c.local = local;
        c.listening = li;
        c.start_msec = cy.times.msec;
        let id = cy.conns.insert(c);
        if let Err(e) = epoll::add_connection(cy, id) {
            log::error!("epoll add connection failed ({e})");
            cy.conns.remove(id);
            continue;
        }
        cy.stats.handled += 1;
        cy.stats.active += 1;
        let h = cy.listening[li].handler;
        h(cy, id);
    }
}

/// Makes room for a new connection by closing idle keepalive connections: an eighth of them,
/// at least one and at most 32. Each is closed by its owner: `close` is set and its read
/// handler runs, as nginx does. Returns whether a slot is free now.
///
/// nginx: `ngx_drain_connections()`. Differs: nginx takes the least recently used reusable
/// connections (also fresh ones that have sent nothing yet); rginx takes idle keepalive
/// connections in slab order.
fn drain_connections(cy: &mut Cycle) -> bool {
    let ids = cy.conns.ids();
    // Client keepalive connections only (nginx's `ngx_reusable_connection`); cached upstream
    // connections are the keepalive module's to manage.
    let idle: Vec<ConnId> = ids
        .into_iter()
        .filter(|&id| {
            cy.conns.get(id).is_some_and(|c| c.idle && matches!(c.owner, crate::core::connection::Owner::Client(None)))
        })
        .collect();
    if idle.is_empty() {
        return false;
    }
    log::warn!("{} worker_connections are not enough, reusing connections", cy.conf.main.worker_connections);
    for id in idle.iter().take((idle.len() / 8).clamp(1, 32)) {
        let Some(c) = cy.conns.get_mut(*id) else {
            continue;
        };
        c.close = true;
        let h = c.read.handler;
        h(cy, Ev { c: *id, write: false });
    }
    cy.conns.len() < cy.conf.main.worker_connections
}
