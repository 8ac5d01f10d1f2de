//! The callbacks an upstream module implements: the Rust form of the function pointers of
//! `ngx_http_upstream_t`.
//!
//! nginx: `create_request`, `reinit_request`, `process_header`, `abort_request`,
//! `finalize_request`, `rewrite_redirect`, `rewrite_cookie`, `input_filter_init`,
//! `input_filter`, `output.output_filter` (src/http/ngx_http_upstream.h). The seed document 000 lists them; its
//! mytest module implements the three required ones.
//!
//! Every callback receives the cycle and the request id (the C callbacks receive `r`, and
//! reach `r->upstream`); `super::parts()` gives `(&mut Request, &mut Upstream, &mut BufPool)` at once.
//! While a callback runs, the framework holds the module outside the upstream context, so the
//! callback may use all of the cycle.

use crate::core::buf::Chain;
use crate::core::step::{HandlerRc, Step};
use crate::http::cycle::Cycle;
use crate::http::cycle::RequestId;

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

/// An upstream module. nginx: the callback fields of `ngx_http_upstream_t`.
pub trait UpstreamHandler {
    /// Fills `u.request_bufs` with the bytes to send. nginx: `create_request(r)`.
    fn create_request(&mut self, cy: &mut Cycle, r: RequestId) -> Result<(), UpstreamError>;

    /// Parses what has arrived in `u.buffer[pos..last]`: `Again` = a partial header, read more
    /// (nginx: NGX_AGAIN); `Done` = the header is complete, `u.buffer.pos` at the body.
    /// nginx: `process_header(r)`.
    fn process_header(&mut self, cy: &mut Cycle, r: RequestId) -> Result<Step, UpstreamError>;

    /// Called exactly once when the upstream part of the request ends, on every path.
    /// nginx: `finalize_request(r, rc)`.
    fn finalize_request(&mut self, cy: &mut Cycle, r: RequestId, rc: HandlerRc);

    /// Resets per-try state before a retry on another peer. nginx: `reinit_request(r)`.
    fn reinit_request(&mut self, _cy: &mut Cycle, _r: RequestId) -> Result<(), UpstreamError> {
        Ok(())
    }

    /// The client went away before the upstream answered. nginx: `abort_request(r)`.
    fn abort_request(&mut self, _cy: &mut Cycle, _r: RequestId) {}

    /// Prepares body processing once the header is in: sets `u.length`.
    /// nginx: `input_filter_init(data)`; default `ngx_http_upstream_non_buffered_filter_init`.
    fn input_filter_init(&mut self, cy: &mut Cycle, r: RequestId) -> Result<(), UpstreamError> {
        super::response::non_buffered_filter_init(cy, r)
    }

    /// Consumes `bytes` new body bytes at the end of `u.buffer`; the default passes them on
    /// to the client (through `u.out`) until `u.length` is reached.
    /// nginx: `input_filter(data, bytes)`; default `ngx_http_upstream_non_buffered_filter`.
    fn input_filter(&mut self, cy: &mut Cycle, r: RequestId, bytes: usize) -> Result<(), UpstreamError> {
        super::response::non_buffered_filter(cy, r, bytes)
    }

    /// Rewrites a redirect: the whole `Location` value, or the URL after "url=" of a
    /// `Refresh` (nginx passes that offset as `prefix`). `Done` when it changed the value.
    /// nginx: `rewrite_redirect(r, h, prefix)`.
    fn rewrite_redirect(&mut self, _cy: &Cycle, _r: RequestId, _value: &mut String) -> Rewrite {
        Rewrite::Declined
    }

    /// Transforms a streamed request body (`proxy_request_buffering off`) on its way to the
    /// upstream: `body` is what the client sent since the last call (maybe nothing), `last`
    /// says the body ends with it. The default passes it unchanged; proxy re-chunks a chunked
    /// body for an HTTP/1.1 upstream. nginx: `u->output.output_filter`
    /// (`ngx_http_proxy_body_output_filter()`).
    fn body_output_filter(&mut self, _cy: &mut Cycle, _r: RequestId, _body: &mut Chain, _last: bool) {}

    /// Rewrites a `Set-Cookie` header value. nginx: `rewrite_cookie(r, h)`.
    fn rewrite_cookie(&mut self, _cy: &Cycle, _r: RequestId, _value: &mut String) -> Rewrite {
        Rewrite::Declined
    }
}
