//! The reactor: everything the event loop owns, generic over the world it serves.
//!
//! nginx: the event part of `ngx_cycle_t` (`cycle->connections`, `cycle->listening`) and the
//! globals of src/event/ (`ngx_posted_events`, `ngx_posted_accept_events`,
//! `ngx_event_timer_rbtree`, `ngx_current_msec`, `ngx_stat_*`, `ngx_exiting`).
//!
//! Differs from nginx:
//! - nginx's event handlers are `void (*)(ngx_event_t *)` and reach everything through globals
//!   and `ev->data`; rginx's are `fn(&mut W, Ev)`, where `W` is the world of whoever runs the
//!   loop (the HTTP layer's `http::Cycle`, or a test's toy world). The world contains a
//!   `Reactor<W>` and hands it out through [`World::reactor`], so this folder runs handlers it
//!   cannot name, exactly as nginx calls `ev->handler`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::accept::Listening;
use super::connection::{ConnId, ConnKey, Connection, Ev};
use super::timer::TimerWheel;
use crate::core::buf::BufPool;
use crate::core::id::GenSlab;
use crate::core::times::Times;

/// What runs the reactor: a world that contains one. The handlers installed in its connections'
/// events receive the whole world.
pub trait World: Sized + 'static {
    /// What a connection belongs to. nginx: `c->data`. The default value is "nobody yet"
    /// (a listening socket, or a connection between `accept()` and its listening handler).
    type Data: Copy + Default + PartialEq + std::fmt::Debug;
    /// The reactor inside the world.
    fn reactor(&mut self) -> &mut Reactor<Self>;
}

/// Counters for `stub_status`. nginx: `ngx_stat_accepted` etc. Each worker counts its own in
/// plain fields (`Reactor::stats`) and publishes them to its [`StatsSlot`] once per loop turn;
/// `stub_status` sums the slots, as nginx reads its counters from shared memory.
#[derive(Default, Debug, Clone, Copy, PartialEq, Eq)]
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

/// One worker's published [`Stats`], in cache lines of its own (nginx also gives each
/// `ngx_stat_*` counter 128 bytes): written only by its worker, read by `stub_status`.
#[repr(align(128))]
#[derive(Default, Debug)]
pub struct StatsSlot {
    accepted: AtomicU64,
    handled: AtomicU64,
    requests: AtomicU64,
    active: AtomicU64,
}

impl StatsSlot {
    fn store(&self, s: &Stats) {
        // One writer: plain stores, no read-modify-write.
        self.accepted.store(s.accepted, Ordering::Relaxed);
        self.handled.store(s.handled, Ordering::Relaxed);
        self.requests.store(s.requests, Ordering::Relaxed);
        self.active.store(s.active, Ordering::Relaxed);
    }
    fn load(&self) -> Stats {
        Stats {
            accepted: self.accepted.load(Ordering::Relaxed),
            handled: self.handled.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            active: self.active.load(Ordering::Relaxed),
        }
    }
}

/// Every worker's [`StatsSlot`], for the life of the process: a worker that exits (reload,
/// graceful stop) leaves its counts behind, so the totals stay cumulative across reloads, as
/// nginx's shared counters are (`ngx_event_module_init()` allocates them once).
#[derive(Default, Debug)]
pub struct StatusBoard {
    slots: Mutex<Vec<Arc<StatsSlot>>>,
}

impl StatusBoard {
    /// A slot for a new worker.
    pub fn join(&self) -> Arc<StatsSlot> {
        let slot = Arc::new(StatsSlot::default());
        self.slots.lock().unwrap_or_else(|e| e.into_inner()).push(slot.clone());
        slot
    }
    /// The published counters of every worker but `mine`, summed.
    fn others(&self, mine: &Arc<StatsSlot>) -> Stats {
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let mut t = Stats::default();
        for s in slots.iter().filter(|s| !Arc::ptr_eq(s, mine)).map(|s| s.load()) {
            t.accepted += s.accepted;
            t.handled += s.handled;
            t.requests += s.requests;
            t.active += s.active;
        }
        t
    }
}

/// One worker's event loop state.
pub struct Reactor<W: World> {
    /// The poller. nginx: the epoll fd of `ngx_epoll_module`.
    pub poll: mio::Poll,
    /// Reused event buffer for `poll()`.
    pub events: Option<mio::Events>,
    /// This worker's listening sockets. nginx: `cycle->listening`.
    pub listening: Vec<Listening<W>>,
    /// Every socket: listeners, clients, upstreams. nginx: `cycle->connections`.
    pub conns: GenSlab<Connection<W>, ConnKey>,
    /// The hashed timer wheel; entries name an event. nginx: `ngx_event_timer_rbtree`.
    pub timers: TimerWheel<Ev>,
    /// Scratch for expired timers.
    pub fired: Vec<Ev>,
    /// nginx: `ngx_posted_accept_events`.
    pub posted_accept: VecDeque<Ev>,
    /// nginx: `ngx_posted_events`.
    pub posted: VecDeque<Ev>,
    /// Cached time. nginx: `ngx_cached_*`, `ngx_current_msec`.
    pub times: Times,
    /// Recycled buffer memory.
    pub bufs: BufPool,
    /// `stub_status` counters of this worker.
    pub stats: Stats,
    /// Where this worker publishes `stats` for the others (`None`: a lone reactor, in tests).
    pub board: Option<(Arc<StatusBoard>, Arc<StatsSlot>)>,
    /// Next connection serial number (`*N`). nginx: `ngx_connection_counter`.
    pub connection_counter: u64,
    /// `worker_connections`: accept stops (after reusing idle connections) at this many.
    pub worker_connections: usize,
    /// Graceful shutdown in progress: accept nothing, close idle connections. nginx: `ngx_exiting`.
    pub exiting: bool,
}

impl<W: World> Reactor<W> {
    /// An empty reactor around `poll`. nginx: `ngx_event_process_init()` before the listening
    /// sockets are added.
    pub fn new(poll: mio::Poll, worker_connections: usize) -> Reactor<W> {
        let times = Times::new();
        Reactor {
            poll,
            events: None,
            listening: Vec::new(),
            conns: GenSlab::with_capacity(1024),
            timers: TimerWheel::new(times.msec),
            fired: Vec::new(),
            posted_accept: VecDeque::new(),
            posted: VecDeque::new(),
            times,
            bufs: BufPool::default(),
            stats: Stats::default(),
            board: None,
            connection_counter: 0,
            worker_connections,
            exiting: false,
        }
    }
    /// Publishes this worker's counters to its slot; the worker calls it every loop turn,
    /// before it sleeps in the poller, so a slot is never behind by more than one turn.
    pub fn publish_stats(&self) {
        if let Some((_, slot)) = &self.board {
            slot.store(&self.stats);
        }
    }
    /// Every worker's counters summed: this worker's live ones plus the others' published
    /// ones. nginx: reading the `ngx_stat_*` counters in shared memory.
    pub fn total_stats(&self) -> Stats {
        let mut t = self.stats;
        if let Some((board, slot)) = &self.board {
            let o = board.others(slot);
            t.accepted += o.accepted;
            t.handled += o.handled;
            t.requests += o.requests;
            t.active += o.active;
        }
        t
    }
    /// The connection behind an id, if still live.
    pub fn conn(&mut self, c: ConnId) -> Option<&mut Connection<W>> {
        self.conns.get_mut(c)
    }
}
