//! The upstream framework: a request talks to another server without blocking the loop.
//!
//! nginx: src/http/ngx_http_upstream.{c,h}.

use crate::core::id::Id;

/// An upstream context: the per-request state plus the module that drives it.
/// nginx: `ngx_http_upstream_t` with its callback pointers.
pub struct UpstreamCtx {}

/// Id of an upstream context. nginx: `r->upstream`.
pub type UpstreamId = Id<UpstreamCtx>;
