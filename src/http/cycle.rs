//! One worker's world as the HTTP layer and every layer above it see it: the reactor, the
//! requests, the configuration, and the modules' per-worker state.
//!
//! nginx: `ngx_cycle_t` (src/core/ngx_cycle.h) together with what an HTTP worker keeps in
//! globals and in `r->main` (`posted_requests`).
//!
//! Differs from nginx:
//! - nginx has one cycle per configuration generation shared by a process; rginx has one
//!   `Cycle` per worker thread, each with its own copy of the `Conf`, sharing nothing with
//!   other workers on the request path.
//! - the event loop's part of the cycle is a `Reactor<Cycle>` (`cy.ev`, in `event/`), generic
//!   over this type: its handlers are `fn(&mut Cycle, Ev)` and it never names anything here.
//! - the world is defined here, in `http/`, and not at the top of the program: the handler
//!   pointers kept in the shared configuration (content handlers, filters, phase handlers,
//!   variables) must name one concrete type, and `http/` is the lowest layer that installs
//!   them. Layers above keep their per-worker state in `cy.http` (`HttpWorker`) by type, as
//!   nginx modules keep theirs in their own statics; `process/` builds and runs the world.
//! - requests live in a slab, referred to by ids (`RequestId`), instead of per-request pools
//!   linked by pointers.

use std::collections::VecDeque;
use std::sync::Arc;

use super::request::{Request, RequestSpares};
use super::{HttpConf, HttpWorker};
use crate::conf::Conf;
use crate::core::id::{Id, ReuseSlab};
use crate::event::{Reactor, World};

/// A request's id. nginx: `ngx_http_request_t *`.
pub type RequestId = Id<Request>;

/// A connection of this world. nginx: `ngx_connection_t`.
pub type Connection = crate::event::connection::Connection<Cycle>;

/// Who a connection belongs to. nginx: `c->data` (an `ngx_http_connection_t` while a client
/// connection is idle, the request `r` while one runs, `r` for `u->peer.connection`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Owner {
    /// Nobody yet: a listening socket, or a client connection before `init_connection`.
    #[default]
    None,
    /// A client connection, with the request being served if any.
    Client(Option<RequestId>),
    /// An upstream connection serving the request (`u->peer.connection->data = r`).
    Upstream(RequestId),
    /// An idle cached upstream connection (`ngx_http_upstream_keepalive_module`'s cache item).
    Cached,
}

/// One worker's world. nginx: `ngx_cycle_t` + worker globals.
pub struct Cycle {
    /// The event loop: poller, connections, timers, posted events, clock, buffers, stats.
    pub ev: Reactor<Cycle>,
    /// HTTP requests (main requests and subrequests). nginx: `ngx_http_request_t` pool objects.
    pub requests: ReuseSlab<Request>,
    /// Requests whose write handler must run after the current event. nginx:
    /// `r->main->posted_requests` (one queue per worker suffices: `run_posted_requests` drains it).
    pub posted_requests: VecDeque<RequestId>,
    /// Storage freed requests left for the next ones (no allocation per keep-alive request).
    pub request_spares: RequestSpares,
    /// The configuration this worker runs. nginx: `cycle->conf_ctx`.
    pub conf: Arc<Conf>,
    /// The `http {}` block of `conf`, if any, kept typed. nginx: `ngx_http_conf_ctx_t`.
    pub http_conf: Option<Arc<HttpConf>>,
    /// Per-worker state of HTTP modules (access log files, upstream contexts and peers,
    /// keepalive caches).
    pub http: HttpWorker,
    /// Worker number (for logs).
    pub worker: usize,
}

impl World for Cycle {
    type Data = Owner;
    fn reactor(&mut self) -> &mut Reactor<Cycle> {
        &mut self.ev
    }
}

impl Cycle {
    /// A worker's empty world around `poll`. nginx: the cycle a worker inherits from
    /// `ngx_init_cycle()`.
    pub fn new(conf: Arc<Conf>, poll: mio::Poll, worker: usize) -> Cycle {
        Cycle {
            ev: Reactor::new(poll, conf.main.worker_connections),
            requests: ReuseSlab::with_capacity(256),
            posted_requests: VecDeque::new(),
            request_spares: RequestSpares::default(),
            http_conf: conf.get_arc::<HttpConf>(),
            conf,
            http: HttpWorker::default(),
            worker,
        }
    }
    /// The connection behind an id, if still live.
    pub fn conn(&mut self, c: crate::event::ConnId) -> Option<&mut Connection> {
        self.ev.conns.get_mut(c)
    }
    /// Monotonic now in ms. nginx: `ngx_current_msec`.
    pub fn now(&self) -> u64 {
        self.ev.times.msec
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An idle keepalive connection holds its slab slot, its timer entry and nothing else, so
    /// the slot's size is most of what 10k idle connections cost (`benches/idle.sh`). A field
    /// that grows it past this bound should say why it belongs in every idle connection.
    #[test]
    fn idle_connection_slot_stays_small() {
        // mio's sockets carry a selector id in debug builds only: count the release size.
        let stream = std::mem::size_of::<crate::event::connection::Stream>();
        let size = std::mem::size_of::<Connection>() - stream + std::mem::size_of::<usize>();
        eprintln!("size_of::<Connection>() in a release build = {size}");
        assert!(size <= 192, "Connection is {size} bytes");
    }
}
