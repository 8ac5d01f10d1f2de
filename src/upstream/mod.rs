//! The upstream framework: a request talks to another server without blocking the loop.
//!
//! nginx: src/http/ngx_http_upstream.{c,h} — `ngx_http_upstream_t`,
//! `ngx_http_upstream_create()`, `ngx_http_upstream_init()`, `ngx_http_upstream_handler()`,
//! `ngx_http_upstream_next()`, `ngx_http_upstream_finalize_request()`,
//! `ngx_http_upstream_cleanup()`.
//!
//! The lifecycle (see docs/upstream.md for the diagram):
//! `create` → `init` (after the client body, as `proxy_request_buffering on` wants) →
//! `connect` → `send_request` → `process_header` (module says `Again` until the header is
//! complete) → `send_response` → body in one of three modes (`response.rs`) → `finalize`.
//! Failures before the response starts go through `next(Ft)`: another peer, or an error page.
//!
//! Differs from nginx:
//! - the context lives in this worker's `UpstreamWorker` table, kept in `cy.http` (its id in
//!   `r.upstream`, as a `RawId`: `http/` sits below and cannot name it); the module's callbacks are a
//!   trait object beside it (`UpstreamCtx::module`), and the handler pointers
//!   `u->read_event_handler`/`u->write_event_handler` are the enums `ReadHandler`/`WriteHandler`.
//! - a callback receives an `UpstreamCx` (request, upstream, buffers, client connection, clock;
//!   `callback()` borrows them apart), never the cycle: it cannot re-enter the framework, so
//!   `finalize_request` has one caller (`finalize_upstream`) and runs once; the fields the
//!   framework steers by (`u.finalized`, `r.upstream`) are not public to modules.
//! - `cleanup` calls the module's `abort_request` before finalizing (nginx never calls it).
//! - nginx's flag bits (`request_sent`, `header_sent`, ...) are kept as bools where they name a
//!   fact, and the handler enums say where the state machine stands.
//! - a finished context is kept by its worker and re-initialised for a later request
//!   (`ctx.rs`); nginx allocates `u` from each request's pool.

pub mod body_read;
pub mod body_splice;
pub mod conf;
pub mod connect;
pub mod ctx;
pub mod finalize;
pub mod handler;
pub mod header;
pub mod headers_in;
pub mod keepalive;
pub mod request;
pub mod response;
pub mod round_robin;
pub mod variables;

use std::rc::Rc;
use std::sync::Arc;

pub use conf::{Ft, UpstreamConf};
pub use ctx::{attach, create, ctx_mut, spare, u_mut, u_ref, UpstreamCtx, UpstreamWorker};
pub(crate) use ctx::{call, callback, parts, u_ev, worker, SPARE_MAX};
use finalize::{cleanup, close_peer};
pub use finalize::{finalize, rd_check_broken_connection, release};
pub use handler::{Rewrite, UpstreamCx, UpstreamError, UpstreamHandler};

use crate::core::buf::{Buf, BufPool, Chain};
use crate::core::header_list::{HeaderList, Lines, Records, Text};
use crate::core::id::Id;
use crate::core::step::HandlerRc;
use crate::event::connection::{ConnId, Ev};
use crate::event::pipe::Pipe;
use crate::event::splice::SplicePipe;
use crate::http::cycle::{Connection, Cycle, Owner, RequestId};
use crate::http::request::{self as http_request, Request};
use round_robin::PeerPick;

/// Id of an upstream context. nginx: `r->upstream`.
pub type UpstreamId = Id<Box<UpstreamCtx>>;

/// Where the upstream's read side stands. nginx: `u->read_event_handler`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadHandler {
    /// Waiting for / reading the response header. nginx: `ngx_http_upstream_process_header`.
    ProcessHeader,
    /// Reading the body (all three body modes). nginx:
    /// `ngx_http_upstream_process_non_buffered_upstream`, `ngx_http_upstream_process_upstream`,
    /// `ngx_http_upstream_process_body_in_memory`.
    ProcessBody,
    /// Nothing to do. nginx: `ngx_http_upstream_dummy_handler`.
    Dummy,
}

/// Where the upstream's write side stands. nginx: `u->write_event_handler`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteHandler {
    /// Connecting / sending the request. nginx: `ngx_http_upstream_send_request_handler`.
    SendRequest,
    /// Nothing to do. nginx: `ngx_http_upstream_dummy_handler`.
    Dummy,
}

/// How the response body is handled (the three ways of the seed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyMode {
    /// The module's `input_filter` consumes the body; nothing goes to the client.
    /// nginx: `r->subrequest_in_memory`.
    InMemory,
    /// One buffer, back-pressure from the client. nginx: `u->buffering = 0`.
    NonBuffered,
    /// `bufs` in memory plus a temp file; the upstream is released as soon as the body is read.
    /// nginx: `u->buffering = 1` with `ngx_event_pipe`.
    Buffered,
}

/// The upstream response header as parsed by the module. nginx: `ngx_http_upstream_headers_in_t`.
#[derive(Clone, Debug, Default)]
pub struct HeadersIn {
    /// Status code. nginx: `status_n`.
    pub status_n: u16,
    /// `Content-Length`. nginx: `content_length_n`.
    pub content_length_n: Option<u64>,
    /// `Transfer-Encoding: chunked`.
    pub chunked: bool,
    /// `Connection: close`. nginx: `connection_close`.
    pub connection_close: bool,
    /// Status line after the version ("200 OK"). nginx: `u->headers_in.status_line`.
    status_line: Option<StatusLine>,
    /// Every header line as the upstream sent it, bytes untouched, and the status line: one
    /// pooled buffer per response (the lines are copied out of `u.buffer`, which the body
    /// reuses and a long head compacts, as nginx copies them into the request pool). nginx:
    /// the `ngx_list_t` of `ngx_table_elt_t` in `u->headers_in.headers`.
    lines: HeaderList,
}

/// Where the upstream's status line is: most often it is nginx's own line for its code
/// ("200 OK"), which is not copied; any other is kept in the header list's buffer.
#[derive(Clone, Copy, Debug)]
enum StatusLine {
    /// Byte for byte `special_response::status_line(code)`.
    Own(&'static str),
    /// Kept in `HeadersIn::lines`.
    Kept(Text),
}

impl Upstream {
    /// The upstream side is over (peer released, `finalize_request` called).
    pub fn finalized(&self) -> bool {
        self.finalized
    }
}

impl HeadersIn {
    /// An empty header whose buffer comes from the worker's pool.
    pub fn from_pool(pool: &mut BufPool) -> HeadersIn {
        HeadersIn { lines: HeaderList::from_pool(pool), ..HeadersIn::default() }
    }
    /// Back to an empty header before another try, keeping the buffer.
    /// nginx: `ngx_http_upstream_reinit()` zeroing `u->headers_in` and re-creating the list.
    pub fn clear(&mut self) {
        let mut lines = std::mem::take(&mut self.lines);
        lines.clear();
        *self = HeadersIn { lines, ..HeadersIn::default() };
    }
    /// Gives the buffer back to the pool. nginx: the request pool's destruction.
    pub fn release(&mut self, pool: &mut BufPool) {
        self.status_line = None;
        self.lines.release(pool);
    }
    /// Records the status line after the version, bytes as sent ("200 OK"); set `status_n`
    /// first (nginx's own line for it is recognised and not copied).
    pub fn set_status_line(&mut self, line: &[u8]) {
        self.status_line = Some(match crate::http::special_response::status_line(self.status_n) {
            Some(own) if own.as_bytes() == line => StatusLine::Own(own),
            _ => StatusLine::Kept(self.lines.keep(line)),
        });
    }
    /// The status line after the version; empty when the upstream sent none (HTTP/0.9).
    pub fn status_line(&self) -> &[u8] {
        match self.status_line {
            Some(StatusLine::Own(own)) => own.as_bytes(),
            Some(StatusLine::Kept(t)) => self.lines.text(t),
            None => b"",
        }
    }
    /// Appends a header line (name as sent, value). nginx: `ngx_list_push(&u->headers_in.headers)`.
    pub fn push(&mut self, name: &[u8], value: &[u8]) {
        self.lines.push(name, value);
    }
    /// Appends a header line whose name was looked up in `headers_in`'s table
    /// (`find_index`): the copy to the client uses the answer.
    pub fn push_found(&mut self, name: &[u8], value: &[u8], found: Option<usize>) {
        self.lines.push_kind(name, value, headers_in::kind_of(found));
    }
    /// Every header line, in order: (name, value).
    pub fn iter(&self) -> Lines<'_> {
        self.lines.iter()
    }
    /// Every header line, in order: (name, value, its `headers_in::kind`).
    pub fn iter_kinds(&self) -> Records<'_> {
        self.lines.iter_kinds()
    }
    /// The number of header lines.
    pub fn len(&self) -> usize {
        self.lines.len()
    }
    /// No header line (yet).
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }
    /// The first header named `name` (case-insensitive).
    pub fn get(&self, name: &[u8]) -> Option<&[u8]> {
        self.lines.get(name)
    }
}

/// Per-try accounting for `$upstream_*` variables. nginx: `ngx_http_upstream_state_t`.
#[derive(Clone, Debug, Default)]
pub struct UpstreamState {
    /// Peer name ("127.0.0.1:8081"); `None` until a peer (or, for "no live upstreams", the
    /// group) is named. The worker's own copy of the name (`PeerState::name`), shared by
    /// count: naming the peer allocates nothing. nginx: `state->peer`, a pointer to the
    /// peer's name.
    pub peer: Option<Rc<str>>,
    /// Status received (0 if none). nginx: `state->status`.
    pub status: u16,
    /// ms from start of try to connected (None: never). nginx: `connect_time`.
    pub connect_time: Option<u64>,
    /// ms to the end of the header. nginx: `header_time`.
    pub header_time: Option<u64>,
    /// ms to the end of the try. nginx: `response_time`.
    pub response_time: u64,
    /// Bytes received. nginx: `bytes_received`.
    pub bytes_received: u64,
    /// Bytes sent. nginx: `bytes_sent`.
    pub bytes_sent: u64,
    /// Body bytes received. nginx: `response_length`.
    pub response_length: u64,
    /// Start of the try (ms).
    pub start: u64,
}

/// Which peers to use. nginx: `ngx_http_upstream_resolved_t` / `u->upstream`.
#[derive(Clone, Debug, Default)]
pub struct Resolved {
    /// Index of the upstream group in `UpstreamMainConf::upstreams`.
    pub group: usize,
    /// `$proxy_host`: the host (and port if not 80) as written in `proxy_pass`.
    pub host: String,
}

/// The peer connection of the current try. nginx: `ngx_peer_connection_t`.
#[derive(Debug, Default)]
pub struct PeerConnection {
    /// The socket. nginx: `pc->connection`.
    pub connection: Option<ConnId>,
    /// The chosen peer, by index into the worker's peer lists (its address and name are
    /// read there). nginx: `pc->sockaddr`, `pc->name` (pointers to the peer's).
    pub pick: Option<PeerPick>,
    /// Peers tried so far (backup flag, index). nginx: `rrp->tried` bitmap.
    pub tried: Vec<(bool, usize)>,
    /// Tries left. nginx: `pc->tries`.
    pub tries: usize,
    /// The connection came from the keepalive cache. nginx: `pc->cached`.
    pub cached: bool,
}

/// The per-request upstream state. nginx: `ngx_http_upstream_t`.
pub struct Upstream {
    /// The request it serves.
    pub request: RequestId,
    /// Settings from the module's location conf. nginx: `u->conf`.
    pub conf: Arc<UpstreamConf>,
    /// What to send; never consumed, so a retry can resend it. nginx: `u->request_bufs`.
    pub request_bufs: Chain,
    /// The URI as sent upstream (with arguments), for the "upstream: ..." part of error-log
    /// lines; the module sets it in `create_request` (empty: the client's URI). nginx: `u->uri`.
    pub uri: String,
    /// Send position in `request_bufs`: (buffer index, offset). nginx keeps it in the bufs.
    pub send_pos: (usize, u64),
    /// Peers to use. nginx: `u->resolved` / `u->upstream`.
    pub resolved: Resolved,
    /// The current peer. nginx: `u->peer`.
    pub peer: PeerConnection,
    /// Receive buffer (`buffer_size`): the header, then body bytes. nginx: `u->buffer`.
    pub buffer: Buf,
    /// Parsed response header. nginx: `u->headers_in`.
    pub headers_in: HeadersIn,
    /// Accounting of the current try. nginx: `u->state`.
    pub state: UpstreamState,
    /// Earlier tries. nginx: `r->upstream_states`.
    pub states: Vec<UpstreamState>,
    /// Body mode, chosen in `send_response` from `in_memory` and `conf.buffering`.
    pub mode: BodyMode,
    /// Keep the body for the module (nginx: `r->subrequest_in_memory`).
    pub in_memory: bool,
    /// Sending the request started (a byte may have reached the peer): a non-idempotent
    /// request is then not retried without `non_idempotent`, a streamed body never.
    /// nginx: `u->request_sent`.
    pub request_sent: bool,
    /// The whole request, body included, went out. nginx: `u->request_body_sent`.
    pub request_body_sent: bool,
    /// The last write of the request left bytes behind: the upstream's write event continues,
    /// and a streamed body is not read meanwhile. nginx: `u->request_body_blocked`.
    pub request_body_blocked: bool,
    /// The response header went to the client. nginx: `u->header_sent`.
    pub header_sent: bool,
    /// nginx: `u->read_event_handler`.
    pub read_handler: ReadHandler,
    /// nginx: `u->write_event_handler`.
    pub write_handler: WriteHandler,
    /// Body bytes still expected (`None`: until the upstream closes). nginx: `u->length`.
    pub length: Option<u64>,
    /// The upstream connection may be reused (framing intact, no `close`). nginx: `u->keepalive`.
    pub keepalive: bool,
    /// Decoded body waiting for the client. nginx: `u->out_bufs` / the pipe's `out`.
    pub out: Chain,
    /// Temp file state of the buffered mode. nginx: `u->pipe`.
    pub pipe: Pipe,
    /// The input filter passes the body as it came, up to `length` (the proxy without chunked
    /// framing): the bytes may then skip user memory. Set by the module's
    /// `input_filter_init`. nginx: `u->input_filter == ngx_http_proxy_copy_filter`.
    pub copy_filter: bool,
    /// The kernel pipe the body goes through when it skips user memory (`body_splice`).
    /// nginx: none.
    pub splice: Option<SplicePipe>,
    /// The upstream side is over: peer released, `finalize_request` called. Private, so that
    /// nothing but `finalize_upstream` sets it and no callback can clear it (`finalized()`
    /// reads it). nginx: `u->cleanup == NULL`.
    finalized: bool,
    /// The whole body has been read.
    pub upstream_done: bool,
    /// When the first try started (for `next_upstream_timeout`).
    pub start_msec: u64,
}

/// Starts the upstream once the client body is in (the post handler of
/// `read_client_request_body`). nginx: `ngx_http_upstream_init()` /
/// `ngx_http_upstream_init_request()`.
pub fn init(cy: &mut Cycle, rid: RequestId) {
    let Some(r) = cy.requests.get_mut(rid) else {
        return;
    };
    r.cleanup.push(cleanup);
    r.read_event_handler = rd_check_broken_connection;
    r.write_event_handler = http_request::empty_handler;
    let (cid, in_memory) = (r.connection, r.sr.as_ref().is_some_and(|s| s.flags.in_memory));
    // The seed: `subrequest_in_memory` — the body is kept for the parent. `resolved` is set
    // by `create`; no callback changes it. The context and the group's peers are fields of
    // one worker entry: one look-up (nginx: `ngx_http_upstream_init_round_robin_peer()`'s
    // `tries`).
    let uid = r.upstream;
    let tries = worker(&mut cy.http).map_or(0, |UpstreamWorker { ctxs, rr, .. }| {
        let Some(u) = uid.and_then(|uid| ctxs.get_mut(uid.typed())).map(|c| &mut c.u) else {
            return 0;
        };
        u.in_memory |= in_memory;
        round_robin::tries(rr, u.resolved.group)
    });
    if let Some(c) = cy.ev.conns.get_mut(cid) {
        c.action = "connecting to upstream";
    }
    // A streamed body's client timer waits until sending starts (nginx:
    // `ngx_http_upstream_init()` deletes the read timer).
    crate::event::del_timer(&mut cy.ev, Ev { c: cid, write: false });
    let now = cy.ev.times.msec;
    let rc = callback(cy, rid, |m, cx| {
        let rc = m.create_request(cx);
        let max = cx.u.conf.next_upstream_tries;
        cx.u.peer.tries = if max > 0 { tries.min(max) } else { tries }.max(1);
        cx.u.start_msec = now;
        rc
    });
    match rc {
        Some(Ok(())) => {}
        Some(Err(e)) => {
            log::error!("upstream create_request failed: {e:?}");
            return finalize(cy, rid, HandlerRc::Status(500));
        }
        None => return, // a stale id
    }
    connect::connect(cy, rid);
}

/// The event handler of every upstream connection. nginx: `ngx_http_upstream_handler()`.
pub fn handler(cy: &mut Cycle, ev: Ev) {
    let Some(Owner::Upstream(rid)) = cy.ev.conns.get(ev.c).map(|c| c.owner) else {
        return;
    };
    let Some(u) = u_ref(cy, rid) else { return };
    if u.peer.connection != Some(ev.c) {
        return; // an event of a previous try's connection
    }
    if ev.write {
        match u.write_handler {
            WriteHandler::SendRequest => request::send_request_handler(cy, rid),
            WriteHandler::Dummy => {}
        }
    } else {
        match u.read_handler {
            ReadHandler::ProcessHeader => header::process_header(cy, rid),
            ReadHandler::ProcessBody => response::process_upstream(cy, rid),
            ReadHandler::Dummy => {}
        }
    }
    http_request::run_posted_requests(cy);
}

/// nginx: `!(r->method & (NGX_HTTP_POST|NGX_HTTP_LOCK|NGX_HTTP_PATCH))`.
pub(super) fn is_idempotent(r: &Request) -> bool {
    !matches!(r.method_name(), b"POST" | b"LOCK" | b"PATCH")
}

/// The client body is streamed (`proxy_request_buffering off`): once sending started, the
/// request cannot be sent again. nginx: `r->request_body_no_buffering`.
pub(super) fn no_buffering(r: &Request) -> bool {
    r.request_body.as_ref().is_some_and(|rb| rb.no_buffering)
}

/// Gives up on the current peer: tries the next one, or ends the request with an error.
/// nginx: `ngx_http_upstream_next()`.
pub fn next(cy: &mut Cycle, rid: RequestId, ft: Ft) {
    let now = cy.ev.times.msec;
    if ft == Ft::Timeout {
        log_error(cy, rid, "upstream timed out (110: Connection timed out)");
    }
    let failed = !matches!(ft, Ft::Http403 | Ft::Http404);
    let status = if ft == Ft::NoLive { 502 } else { ft.status() };
    if let Some(u) = u_mut(cy, rid) {
        // `$upstream_status` of a failed try is the status it would give ("502, 200").
        // nginx: `u->state->status = status` in `ngx_http_upstream_next()`.
        u.state.status = status;
    }
    close_peer(cy, rid, failed);
    let Some(r) = cy.requests.get(rid) else {
        return;
    };
    let (idempotent, streamed) = (is_idempotent(r), no_buffering(r));
    let Some(u) = u_mut(cy, rid) else { return };
    if u.peer.cached && ft == Ft::Error {
        // A cached connection the peer had closed meanwhile: that try does not count.
        // nginx: "TODO: inform balancer instead" `u->peer.tries++` in ngx_http_upstream_next().
        u.peer.tries += 1;
    }
    u.peer.tries = u.peer.tries.saturating_sub(1);
    let c = &u.conf;
    let timed_out = c.next_upstream_timeout > 0 && now.saturating_sub(u.start_msec) >= c.next_upstream_timeout;
    let give_up = u.peer.tries == 0
        || ft == Ft::NoLive
        || c.next_upstream & FT_OFF_BIT != 0
        || c.next_upstream & ft.bit() == 0
        || (u.request_sent && !idempotent && c.next_upstream & conf::FT_NON_IDEMPOTENT == 0)
        || (u.request_sent && streamed)
        || timed_out
        || u.header_sent;
    if give_up {
        return finalize(cy, rid, HandlerRc::Status(status));
    }
    connect::connect(cy, rid);
}

const FT_OFF_BIT: u32 = conf::FT_OFF;

/// Logs an error with nginx's request context ("while ..., client: ..., server: ...,
/// request: "...", upstream: "...", host: "..."). Callbacks log through `UpstreamCx::log_error`,
/// which writes the same line.
pub fn log_error(cy: &Cycle, rid: RequestId, msg: &str) {
    log_at(cy, rid, log::Level::Error, msg);
}

/// `log_error` at another level (nginx's `NGX_LOG_WARN`, `NGX_LOG_INFO` lines about an
/// upstream request carry the same context).
pub fn log_at(cy: &Cycle, rid: RequestId, level: log::Level, msg: &str) {
    let Some(r) = cy.requests.get(rid) else {
        return;
    };
    let Some(c) = cy.ev.conns.get(r.connection) else {
        return;
    };
    let u = u_ref(cy, rid);
    let action = u.and_then(|u| u.peer.connection).and_then(|uc| cy.ev.conns.get(uc)).map_or(c.action, |uc| uc.action);
    log_error_line(level, c, action, r, u, msg);
}

/// The one formatter of upstream error-log lines. nginx: `ngx_http_log_error()` with
/// `ngx_http_upstream_log_error()`'s "upstream:" part.
fn log_error_line(level: log::Level, c: &Connection, action: &str, r: &Request, u: Option<&Upstream>, msg: &str) {
    let (upstream, uri) = u.map(|u| (u.state.peer.as_deref().unwrap_or(""), u.uri.as_str())).unwrap_or_default();
    let unparsed;
    let uri = if uri.is_empty() {
        unparsed = String::from_utf8_lossy(r.unparsed_uri());
        &*unparsed
    } else {
        uri
    };
    let client = c.peer.map(|p| p.ip().to_string()).unwrap_or_default();
    let server = r.srv.core.server_names.first().map(String::as_str).unwrap_or("");
    // nginx: `, subrequest: "URI"` when the line is about a subrequest.
    let sub =
        if r.main != r.id { format!(", subrequest: \"{}\"", String::from_utf8_lossy(&r.uri)) } else { String::new() };
    log::log!(
        level,
        "*{} {} while {}, client: {}, server: {}, request: \"{}\"{}, upstream: \"http://{}{}\", host: \"{}\"",
        c.number,
        msg,
        action,
        client,
        server,
        String::from_utf8_lossy(r.request_line()),
        sub,
        upstream,
        uri,
        String::from_utf8_lossy(r.header("host").unwrap_or(&r.headers_in.host))
    );
}
