//! The per-worker world: poller, connection slab, requests, timers, posted events, config.
//!
//! nginx: `ngx_cycle_t` (src/core/ngx_cycle.{c,h}) plus the globals a worker process owns
//! (`ngx_posted_events`, the timer rbtree, `ngx_current_msec`).
//!
//! Differs from nginx:
//! - nginx has one cycle per configuration generation shared by a process; rginx has one `Cycle`
//!   per worker thread, and nothing in it is shared with other workers. A reload starts new
//!   workers with the new configuration (as nginx's master starts new worker processes).
//! - requests and upstream contexts live in slabs here, referred to by ids (`RequestId`),
//!   instead of being allocated from per-request pools and linked by pointers.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::buf::BufPool;
use super::connection::{ConnId, Connection, Ev, RequestId};
use super::id::GenSlab;
use super::times::Times;
use crate::conf::Conf;
use crate::event::timer::TimerWheel;
use crate::http::request::Request;
use crate::upstream::UpstreamCtx;

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

/// Counters for `stub_status`. nginx: `ngx_stat_accepted` etc. (per worker here).
#[derive(Default, Debug, Clone, Copy)]
pub struct Stats {
    /// Accepted client connections.
    pub accepted: u64,
    /// Handled client connections.
    pub handled: u64,
    /// Client requests.
    pub requests: u64,
    /// Client connections open now.
    pub active: u64,
}

/// One worker's world. nginx: `ngx_cycle_t` + worker globals.
pub struct Cycle {
    /// The poller. nginx: the epoll fd of `ngx_epoll_module`.
    pub poll: mio::Poll,
    /// Reused event buffer for `poll()`.
    pub events: Option<mio::Events>,
    /// Scratch copy of one poll's (token, readiness bits), reused every turn.
    pub ready: Vec<(usize, u8)>,
    /// This worker's listening sockets. nginx: `cycle->listening`.
    pub listening: Vec<crate::event::accept::Listening>,
    /// Every socket: listeners, clients, upstreams. nginx: `cycle->connections`.
    pub conns: GenSlab<Connection>,
    /// HTTP requests (main requests and subrequests). nginx: `ngx_http_request_t` pool objects.
    pub requests: GenSlab<Request>,
    /// Upstream contexts, attached to requests. nginx: `r->upstream`.
    pub upstreams: GenSlab<UpstreamCtx>,
    /// The hashed timer wheel; entries name an event. nginx: `ngx_event_timer_rbtree`.
    pub timers: TimerWheel<Ev>,
    /// Scratch for expired timers.
    pub fired: Vec<Ev>,
    /// nginx: `ngx_posted_accept_events`.
    pub posted_accept: VecDeque<Ev>,
    /// nginx: `ngx_posted_events`.
    pub posted: VecDeque<Ev>,
    /// Requests whose write handler must run after the current event. nginx:
    /// `r->main->posted_requests` (one queue per worker suffices: `run_posted_requests` drains it).
    pub posted_requests: VecDeque<RequestId>,
    /// Cached time. nginx: `ngx_cached_*`.
    pub times: Times,
    /// The configuration this worker runs. nginx: `cycle->conf_ctx`.
    pub conf: Arc<Conf>,
    /// Recycled buffer memory.
    pub bufs: BufPool,
    /// `stub_status` counters.
    pub stats: Stats,
    /// Next connection serial number (`*N`). nginx: `ngx_connection_counter`.
    pub connection_counter: u64,
    /// Commands from the master thread.
    pub signals: Arc<Signals>,
    /// Graceful shutdown in progress: accept nothing, close idle connections. nginx: `ngx_exiting`.
    pub exiting: bool,
    /// Worker number (for logs).
    pub worker: usize,
    /// Per-worker state of HTTP modules (access log files, upstream peers, keepalive caches).
    pub http: crate::http::HttpWorker,
}

impl Cycle {
    /// The connection behind an event, if still live.
    pub fn conn(&mut self, c: ConnId) -> Option<&mut Connection> {
        self.conns.get_mut(c)
    }
    /// Monotonic now in ms. nginx: `ngx_current_msec`.
    pub fn now(&self) -> u64 {
        self.times.msec
    }
}
