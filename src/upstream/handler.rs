//! The callbacks an upstream module implements — the Rust form of the function pointers of
//! `ngx_http_upstream_t` — and the context they receive.
//!
//! nginx: `create_request`, `reinit_request`, `process_header`, `abort_request`,
//! `finalize_request`, `rewrite_redirect`, `rewrite_cookie`, `input_filter_init`,
//! `input_filter`, `output.output_filter` (src/http/ngx_http_upstream.h). The seed document 000
//! lists them; its mytest module implements the three required ones.
//!
//! Differs from nginx: a C callback receives `r` and can reach the whole world through it —
//! call `ngx_http_upstream_finalize_request()` from inside `process_header`, say. A callback
//! here receives an `UpstreamCx`: disjoint borrows of what one upstream request owns (the
//! request, its upstream, the buffer pool, the client connection read-only, the clock), plus
//! the module's own state as `&mut self`. Nothing in it reaches the framework (no cycle, no
//! request or upstream tables), so a callback cannot re-enter it: the framework decides every
//! next step from what the callback returns, and `finalize_request` runs exactly once by
//! construction (docs/decisions.md, "Upstream callbacks get a context, not the world").

use std::any::Any;

use super::Upstream;
use crate::core::buf::{BufPool, Chain};
use crate::core::step::{HandlerRc, Step};
use crate::core::times::Times;
use crate::http::cycle::Connection;
use crate::http::request::Request;
use crate::http::variables::Vars;

/// Why a callback failed. nginx: the `NGX_ERROR` / `NGX_HTTP_UPSTREAM_INVALID_HEADER`
/// results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamError {
    /// The upstream sent something that is not a valid response (502, try the next peer).
    /// The module logs what was wrong; the framework does not. nginx:
    /// `NGX_HTTP_UPSTREAM_INVALID_HEADER`.
    InvalidHeader,
    /// The upstream broke the body framing (truncate the client response). The module logs
    /// what was wrong (nginx: "upstream sent invalid chunked response"); the framework does not.
    InvalidBody,
    /// An internal failure (500). nginx: `NGX_ERROR`.
    Internal(String),
}

/// What `rewrite_redirect` did. nginx: NGX_DECLINED (unchanged) or NGX_OK (rewritten).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rewrite {
    /// Left as is.
    Declined,
    /// Rewritten.
    Done,
}

/// What a callback may touch: the parts of the world one upstream request owns, borrowed
/// apart. nginx: `r` and `r->upstream` as a C callback sees them, without the rest.
pub struct UpstreamCx<'a> {
    /// The client request. nginx: `r`.
    pub r: &'a mut Request,
    /// Its upstream. nginx: `r->upstream`.
    pub u: &'a mut Upstream,
    /// The worker's buffer pool (body buffers for `u.out`, `response::emit`).
    pub bufs: &'a mut BufPool,
    /// The client connection, read-only: the error log's context and variables
    /// (`$remote_addr`). nginx: `r->connection`.
    pub c: &'a Connection,
    /// The cached clock. nginx: `ngx_cached_*`, `ngx_current_msec`.
    pub times: &'a Times,
    /// What the request is doing, for "while ..." in error-log lines: the upstream
    /// connection's action while there is one, else the client's. nginx: `c->log->action`.
    pub(super) action: &'static str,
}

impl UpstreamCx<'_> {
    /// A debug-level trace line for this request (`http::trace`): `*N +Tms what`. Inlined
    /// for the reason `trace::step` is.
    #[inline(always)]
    pub fn debug(&self, what: std::fmt::Arguments<'_>) {
        if log::log_enabled!(log::Level::Debug) {
            crate::http::trace::line(self.c.number, self.times.msec.saturating_sub(self.r.start_msec), what);
        }
    }
    /// Monotonic now in ms. nginx: `ngx_current_msec`.
    pub fn now(&self) -> u64 {
        self.times.msec
    }

    /// The variables' view of this request, with this upstream (`$upstream_*`, `$proxy_host`
    /// resolve from it). nginx: evaluating a complex value with `r`.
    pub fn vars(&self) -> Vars<'_> {
        let u: &dyn Any = &*self.u;
        Vars { r: &*self.r, c: self.c, times: self.times, http: None, upstream: Some(u) }
    }

    /// Logs `msg` at `error` with nginx's request context, byte for byte the line the
    /// framework writes (`upstream::log_error`). nginx: `ngx_log_error(NGX_LOG_ERR,
    /// r->connection->log, ...)` with `ngx_http_log_error()` adding the context.
    pub fn log_error(&self, msg: &str) {
        super::log_error_line(log::Level::Error, self.c, self.action, self.r, Some(self.u), msg);
    }
    /// `log_error` at `warn`. nginx: `ngx_log_error(NGX_LOG_WARN, ...)`.
    pub fn log_warn(&self, msg: &str) {
        super::log_error_line(log::Level::Warn, self.c, self.action, self.r, Some(self.u), msg);
    }
}

/// An upstream module. nginx: the callback fields of `ngx_http_upstream_t`.
///
/// Every callback returns what happened; the framework acts on it (reads more, tries the next
/// peer, finalizes). None can call the framework: `UpstreamCx` does not reach it.
///
/// `Any`: a worker keeps the contexts of finished requests, and a module finds a spare one
/// of its own type to re-initialise in place (`upstream::spare`) instead of allocating.
pub trait UpstreamHandler: Any {
    /// Fills `u.request_bufs` with the bytes to send. nginx: `create_request(r)`.
    fn create_request(&mut self, cx: &mut UpstreamCx<'_>) -> Result<(), UpstreamError>;

    /// Parses what has arrived in `u.buffer[pos..last]`: `Again` = a partial header, read more
    /// (nginx: NGX_AGAIN); `Done` = the header is complete, `u.buffer.pos` at the body.
    /// nginx: `process_header(r)`.
    fn process_header(&mut self, cx: &mut UpstreamCx<'_>) -> Result<Step, UpstreamError>;

    /// Called exactly once when the upstream part of the request ends, on every path, after
    /// the peer connection was released. In the in-memory mode with `rc` = `Ok`, what the
    /// module leaves in `r.headers_out` and `u.out` is then sent to the client.
    /// nginx: `finalize_request(r, rc)`.
    fn finalize_request(&mut self, cx: &mut UpstreamCx<'_>, rc: HandlerRc);

    /// Resets per-try state before a retry on another peer. nginx: `reinit_request(r)`.
    fn reinit_request(&mut self, _cx: &mut UpstreamCx<'_>) -> Result<(), UpstreamError> {
        Ok(())
    }

    /// The request is ending from outside (the client went away, the request was
    /// terminated) while the upstream still runs and before the response header went to the
    /// client; `finalize_request` follows at once. nginx has the field (`abort_request(r)`)
    /// but never calls it; see docs/upstream.md.
    fn abort_request(&mut self, _cx: &mut UpstreamCx<'_>) {}

    /// Prepares body processing once the header is in: sets `u.length`. A module's own must
    /// say `Some(0)` for HEAD, 1xx, 204 and 304 as the default does: a response with the
    /// upstream's status line is not made header-only by the header filter (nginx's rule), so
    /// the length is what ends it.
    /// nginx: `input_filter_init(data)`; default `ngx_http_upstream_non_buffered_filter_init`.
    fn input_filter_init(&mut self, cx: &mut UpstreamCx<'_>) -> Result<(), UpstreamError> {
        super::response::non_buffered_filter_init(cx)
    }

    /// Consumes `bytes` new body bytes at the end of `u.buffer`; the default passes them on
    /// to the client (through `u.out`) until `u.length` is reached.
    /// nginx: `input_filter(data, bytes)`; default `ngx_http_upstream_non_buffered_filter`.
    fn input_filter(&mut self, cx: &mut UpstreamCx<'_>, bytes: usize) -> Result<(), UpstreamError> {
        super::response::non_buffered_filter(cx, bytes)
    }

    /// Rewrites a redirect: the whole `Location` value, or the URL after "url=" of a
    /// `Refresh` (nginx passes that offset as `prefix`). `Done` when it changed the value.
    /// nginx: `rewrite_redirect(r, h, prefix)`.
    fn rewrite_redirect(&mut self, _cx: &UpstreamCx<'_>, _value: &mut Vec<u8>) -> Rewrite {
        Rewrite::Declined
    }

    /// Rewrites a `Set-Cookie` header value. nginx: `rewrite_cookie(r, h)`.
    fn rewrite_cookie(&mut self, _cx: &UpstreamCx<'_>, _value: &mut Vec<u8>) -> Rewrite {
        Rewrite::Declined
    }

    /// Whether this request can leave its connection clean for the keepalive cache; a
    /// module that asks the peer to close it says no. Asked by `connect` only, before it lets
    /// the request wait to the end of the loop turn for a connection another request gives
    /// back (`keepalive::wait`): a request that will close its connection gains nothing by
    /// waiting. nginx connects at once and has no such callback. Default: no.
    fn may_keep_connection(&self) -> bool {
        false
    }

    /// Transforms a streamed request body (`proxy_request_buffering off`) on its way to the
    /// upstream: `body` is what the client sent since the last call (maybe nothing), `last`
    /// says the body ends with it. The default passes it unchanged; proxy re-chunks a chunked
    /// body for an HTTP/1.1 upstream. nginx: `u->output.output_filter`
    /// (`ngx_http_proxy_body_output_filter()`).
    fn body_output_filter(&mut self, _cx: &mut UpstreamCx<'_>, _body: &mut Chain, _last: bool) {}
}
