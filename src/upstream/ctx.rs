//! The upstream contexts of a worker: the table that `r.upstream` indexes, the spare
//! contexts kept for later requests, and the look-ups the framework's steps make.
//!
//! nginx: `ngx_http_upstream_create()` (src/http/ngx_http_upstream.c); `r->upstream` and
//! the module's ctx allocated from the request's pool.
//!
//! Differs from nginx:
//! - the contexts live in this worker's table (`UpstreamWorker::ctxs`), the request keeps
//!   an id; a finished context is kept (`UpstreamWorker::spare`, at most `SPARE_MAX`) and
//!   re-initialised for a later request with the memory of its collections, its module's
//!   boxed state and its references to the location's settings — the keep-alive path
//!   allocates nothing and writes no reference count shared by the workers (nginx's pool
//!   allocator recycles the memory in a similar way; the settings are plain pointers there).

use std::any::Any;
use std::sync::Arc;

use super::{
    finalize::free_upstream, BodyMode, HeadersIn, PeerConnection, ReadHandler, Resolved, Upstream, UpstreamConf,
    UpstreamCx, UpstreamHandler, UpstreamId, UpstreamState, WriteHandler,
};
use super::{keepalive, round_robin};
use crate::core::buf::{Buf, BufPool, Chain};
use crate::core::id::GenSlab;
use crate::event::pipe::Pipe;
use crate::event::splice::Pipes;
use crate::event::Reactor;
use crate::http::cycle::{Cycle, RequestId};
use crate::http::request::Request;
use crate::http::HttpWorker;

/// A context in `UpstreamWorker::ctxs`: the state plus the module driving it. The framework borrows
/// the two apart (`let UpstreamCtx { u, module } = ctx`) to call `module.process_header(cx)`
/// with `cx.u = u`: no `Option`, no taking the module out, nothing to put back.
pub struct UpstreamCtx {
    /// The state.
    pub u: Upstream,
    /// The module's callbacks and per-request state. nginx: the callback fields of `u` and
    /// the module's `ngx_http_get_module_ctx(r, ...)`.
    pub module: Box<dyn UpstreamHandler>,
}

impl UpstreamCtx {
    /// A context that has not served a request yet (`attach` initialises the rest).
    pub fn new(module: Box<dyn UpstreamHandler>, conf: Arc<UpstreamConf>, resolved: Resolved) -> Box<UpstreamCtx> {
        // (Field by field rather than `reset`: `Upstream` has no `Default`, as a context
        // without a request and settings means nothing.)
        let u = Upstream {
            request: RequestId::from_token(0), // set by `attach`
            conf,
            request_bufs: Chain::new(),
            uri: String::new(),
            send_pos: (0, 0),
            resolved,
            peer: PeerConnection::default(),
            buffer: Buf::default(),
            headers_in: HeadersIn::default(),
            state: UpstreamState::default(),
            states: Vec::new(),
            mode: BodyMode::NonBuffered,
            in_memory: false,
            request_sent: false,
            request_body_sent: false,
            request_body_blocked: false,
            header_sent: false,
            read_handler: ReadHandler::Dummy,
            write_handler: WriteHandler::Dummy,
            length: None,
            keepalive: false,
            out: Chain::new(),
            pipe: Pipe::default(),
            copy_filter: false,
            splice: None,
            finalized: false,
            upstream_done: false,
            start_msec: 0,
        };
        Box::new(UpstreamCtx { u, module })
    }

    /// The module's state, if it is of type `M` (a spare context is re-initialised in place
    /// through it).
    pub fn module_mut<M: UpstreamHandler>(&mut self) -> Option<&mut M> {
        let m: &mut dyn Any = self.module.as_mut();
        m.downcast_mut::<M>()
    }

    /// Points the context at the location's settings. A spare context usually served the same
    /// location: its reference is kept, and no count shared by the workers is written.
    pub fn set_conf(&mut self, conf: &Arc<UpstreamConf>) {
        if !Arc::ptr_eq(&self.u.conf, conf) {
            self.u.conf = Arc::clone(conf);
        }
    }
}

impl Upstream {
    /// Makes a context (new, or a spare one) ready for request `rid`: every per-request field
    /// reset, the collections emptied with their memory kept. `conf`, `resolved` and the
    /// module are set by the caller.
    fn reset(&mut self, rid: RequestId, buffer: Buf, headers_in: HeadersIn, now: u64) {
        self.request = rid;
        self.request_bufs.clear();
        self.uri.clear();
        self.send_pos = (0, 0);
        self.peer.connection = None;
        self.peer.pick = None;
        self.peer.tried.clear();
        self.peer.tries = 0;
        self.peer.cached = false;
        self.buffer = buffer;
        self.headers_in = headers_in;
        self.state = UpstreamState::default();
        self.states.clear();
        self.mode = BodyMode::NonBuffered;
        self.in_memory = false;
        self.request_sent = false;
        self.request_body_sent = false;
        self.request_body_blocked = false;
        self.header_sent = false;
        self.read_handler = ReadHandler::Dummy;
        self.write_handler = WriteHandler::Dummy;
        self.length = None;
        self.keepalive = false;
        self.out.clear();
        self.pipe = Pipe::default();
        self.copy_filter = false;
        // `free_upstream` gave the pipe back to the worker's count; dropped here, it would
        // close without leaving the count.
        debug_assert!(self.splice.is_none(), "a pipe reached reset");
        self.splice = None;
        self.finalized = false;
        self.upstream_done = false;
        self.start_msec = now;
    }
}

/// Every upstream context of this worker, kept in `cy.http` (installed by the upstream
/// module's `init_worker`). nginx: each `r->upstream`, allocated from its request's pool.
#[derive(Default)]
pub struct UpstreamWorker {
    /// The contexts, boxed: a context moves between this table and `spare` as a pointer,
    /// not as the few hundred bytes it is. nginx: each `r->upstream`.
    pub ctxs: GenSlab<Box<UpstreamCtx>>,
    /// The balancer's peer state, beside the contexts so that one look-up in `cy.http`
    /// finds both.
    pub(crate) rr: round_robin::RoundRobin,
    /// The idle connections, likewise.
    pub(crate) keepalive: keepalive::KeepaliveCache,
    /// Contexts of finished requests, kept for the next ones with their memory (buffers of
    /// the collections, the module's boxed state, the settings' reference): a keep-alive
    /// request allocates nothing here. At most `SPARE_MAX`. nginx: the request pool, which
    /// nginx's allocator recycles in the same way.
    #[allow(clippy::vec_box)] // boxed as in `ctxs`, between which they move as pointers
    pub(crate) spare: Vec<Box<UpstreamCtx>>,
    /// The count of the kernel pipes long bodies move through (`body_splice`): one per body,
    /// closed when its context is freed.
    pub(crate) pipes: Pipes,
}

/// Spare contexts a worker keeps at most (beyond, finished contexts are freed).
pub(crate) const SPARE_MAX: usize = 256;

/// A spare context whose module is of type `M`, taken out of the worker's list; the caller
/// fills it in (`UpstreamCtx::module_mut`, `set_conf`, `u.resolved`) and hands it to
/// `attach`.
pub fn spare<M: UpstreamHandler>(http: &mut HttpWorker) -> Option<Box<UpstreamCtx>> {
    let w = worker(http)?;
    let i = w.spare.iter_mut().rposition(|c| c.module_mut::<M>().is_some())?;
    Some(w.spare.swap_remove(i))
}

/// The worker's upstream state (`cy.http`'s `hot` state: one check, no search).
#[inline]
pub(crate) fn worker(http: &mut HttpWorker) -> Option<&mut UpstreamWorker> {
    http.hot::<UpstreamWorker>()
}

/// The context of `r`, from the worker's table.
pub fn ctx_mut<'a>(http: &'a mut HttpWorker, r: &Request) -> Option<&'a mut UpstreamCtx> {
    let uid: UpstreamId = r.upstream?.typed();
    worker(http)?.ctxs.get_mut(uid).map(|c| &mut **c)
}

/// The upstream of a request.
pub fn u_mut(cy: &mut Cycle, rid: RequestId) -> Option<&mut Upstream> {
    let Cycle { requests, http, .. } = cy;
    ctx_mut(http, requests.get(rid)?).map(|c| &mut c.u)
}

/// The upstream of a request, read-only.
pub fn u_ref(cy: &Cycle, rid: RequestId) -> Option<&Upstream> {
    let uid: UpstreamId = cy.requests.get(rid)?.upstream?.typed();
    cy.http.hot_ref::<UpstreamWorker>()?.ctxs.get(uid).map(|c| &c.u)
}

/// The upstream of a request beside the reactor (disjoint borrows of the cycle): one lookup
/// for a step that touches both the upstream and a connection or timer.
pub(crate) fn u_ev(cy: &mut Cycle, rid: RequestId) -> Option<(&mut Upstream, &mut Reactor<Cycle>)> {
    let Cycle { requests, http, ev, .. } = cy;
    let u = &mut ctx_mut(http, requests.get(rid)?)?.u;
    Some((u, ev))
}

/// The request and its upstream at once (disjoint borrows of the cycle), for the framework's
/// own steps.
pub(crate) fn parts(cy: &mut Cycle, rid: RequestId) -> Option<(&mut Request, &mut Upstream, &mut BufPool)> {
    let Cycle { requests, http, ev, .. } = cy;
    let r = requests.get_mut(rid)?;
    let u = &mut ctx_mut(http, r)?.u;
    Some((r, u, &mut ev.bufs))
}

/// Calls one of the module's callbacks with its context: the request, the upstream, the
/// buffer pool, the client connection and the clock, borrowed apart from the rest of the
/// world, which the callback therefore cannot reach. `None` only for a stale id (the request
/// or its upstream is gone: nothing is left to finish); the client connection lives as long
/// as its request (`close_request` frees the request before it closes the connection).
pub(crate) fn callback<T>(
    cy: &mut Cycle,
    rid: RequestId,
    f: impl FnOnce(&mut dyn UpstreamHandler, &mut UpstreamCx<'_>) -> T,
) -> Option<T> {
    let Cycle { requests, http, ev, .. } = cy;
    let r = requests.get_mut(rid)?;
    call(r, ctx_mut(http, r)?, ev, f)
}

/// `callback` with the request and its context already found (a step that has just used
/// them does not look them up again).
#[inline]
pub(crate) fn call<T>(
    r: &mut Request,
    ctx: &mut UpstreamCtx,
    ev: &mut Reactor<Cycle>,
    f: impl FnOnce(&mut dyn UpstreamHandler, &mut UpstreamCx<'_>) -> T,
) -> Option<T> {
    let Reactor { conns, bufs, times, .. } = ev;
    let UpstreamCtx { u, module } = ctx;
    let c = conns.get(r.connection)?;
    let action = u.peer.connection.and_then(|pc| conns.get(pc)).map_or(c.action, |pc| pc.action);
    let mut cx = UpstreamCx { r, u, bufs, c, times, action };
    Some(f(module.as_mut(), &mut cx))
}

/// Attaches an upstream to a request. nginx: `ngx_http_upstream_create()`.
///
/// A spare context of this worker is reused if there is one (its module box replaced);
/// modules on the hot path take a spare of their own type instead (`spare` + `attach`) and
/// allocate nothing.
pub fn create(
    cy: &mut Cycle,
    rid: RequestId,
    module: Box<dyn UpstreamHandler>,
    conf: Arc<UpstreamConf>,
    resolved: Resolved,
) -> Option<UpstreamId> {
    let ctx = match worker(&mut cy.http).and_then(|w| w.spare.pop()) {
        Some(mut ctx) => {
            ctx.module = module;
            ctx.u.conf = conf;
            ctx.u.resolved = resolved;
            ctx
        }
        None => UpstreamCtx::new(module, conf, resolved),
    };
    attach(cy, rid, ctx)
}

/// Attaches a filled-in context (`spare`, or `UpstreamCtx::new`) to a request: its
/// per-request state reset, its receive buffer taken from the pool.
/// nginx: the rest of `ngx_http_upstream_create()`.
pub fn attach(cy: &mut Cycle, rid: RequestId, mut ctx: Box<UpstreamCtx>) -> Option<UpstreamId> {
    let buffer = cy.ev.bufs.get(ctx.u.conf.buffer_size);
    let headers_in = HeadersIn::from_pool(&mut cy.ev.bufs);
    ctx.u.reset(rid, buffer, headers_in, cy.ev.times.msec);
    let w = worker(&mut cy.http)?;
    let Some(r) = cy.requests.get_mut(rid) else {
        cy.ev.bufs.put(std::mem::take(&mut ctx.u.buffer));
        ctx.u.headers_in.release(&mut cy.ev.bufs);
        return None;
    };
    let uid = w.ctxs.insert(ctx);
    r.upstream = Some(uid.raw());
    r.pool_cleanup.push(free_upstream);
    Some(uid)
}
