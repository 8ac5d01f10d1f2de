//! The per-worker spares of freed requests: their vectors, emptied with their capacity kept,
//! for the next request (`RequestSpares`), and the boxes of freed request bodies.
//!
//! nginx: what the request pool (`r->pool`, src/core/ngx_palloc.c) gives each request, one
//! allocation cut into pieces by `ngx_palloc()`; rginx keeps the pieces instead.
//!
//! Differs from nginx: nginx frees the pool with the request and allocates the next one; rginx
//! keeps a bounded number of emptied sets per worker (see `RequestSpares`' bounds).

use super::request::{Cleanup, Request, RequestBody};
use crate::core::buf::Chain;

/// What a freed main request leaves for the next one on this worker: its vectors, emptied
/// with their capacity kept, so that a keep-alive request allocates nothing for its path,
/// arguments, header index, host and output chain. nginx gets the same from its request pool,
/// one allocation per request that `ngx_palloc` cuts into pieces; rginx keeps the pieces.
///
/// Bounded: at most `MAX_SPARES` sets here plus one in each of the first `IN_SLOT` request
/// slots (the freed request there keeps its own, `keep_in_place`), and a vector grown past
/// its bound (a long URI, many headers) is freed rather than kept. Per worker, never per connection: an idle keep-alive
/// connection holds none of it.
#[derive(Default)]
pub struct RequestSpares {
    sets: Vec<RequestSpare>,
    /// A chain to carry a response's buffers into the body filters (`send_response`): taken
    /// and given back around the call, so it keeps its capacity.
    pub chain: Chain,
    /// Emptied request bodies (`body::free_body_keep`): their boxes, for the next bodies.
    /// Boxes on purpose: the box is the allocation kept, and `r.request_body` takes it whole.
    #[allow(clippy::vec_box)]
    pub(super) bodies: Vec<Box<RequestBody>>,
}

/// The reusable storage of one request.
#[derive(Default)]
struct RequestSpare {
    uri: Vec<u8>,
    args: Vec<u8>,
    headers: Vec<(std::ops::Range<usize>, std::ops::Range<usize>)>,
    host: Vec<u8>,
    out: Chain,
    /// `r.cleanup` and `r.pool_cleanup`, emptied: an upstream request pushes one of each.
    cleanup: Vec<Cleanup>,
    pool_cleanup: Vec<Cleanup>,
}

impl RequestSpares {
    /// Sets kept at once, in the pool: with the `IN_SLOT` slots' own, enough for the
    /// requests one turn of the event loop finishes.
    const MAX_SPARES: usize = 16;
    /// Spare request-body boxes kept (as many as before the slots kept their own sets).
    const MAX_BODIES: usize = 32;
    /// Request slots (keys below it) whose freed request keeps its emptied storage in
    /// place for the next request of the slot (`keep_in_place`): the keep-alive path, whose
    /// requests reuse the last freed slot, moves no storage at all. Bounded by the slot
    /// key, not a count, so nothing can drift: at most `IN_SLOT` sets live there.
    pub(super) const IN_SLOT: usize = 16;
    /// Largest URI, arguments or host kept (bytes), and header index kept (lines).
    const MAX_BYTES: usize = 4096;
    const MAX_HEADERS: usize = 64;
    /// Largest cleanup list kept (entries).
    const MAX_CLEANUPS: usize = 16;
    /// Largest chain storage kept (buffers): an output or body chain that grew past it (a
    /// long response or a body in many pieces) is freed, not kept.
    pub(super) const MAX_CHAIN: usize = 64;

    /// Gives a new request the storage a freed one left (nothing to do when none is left).
    pub(super) fn fill(&mut self, r: &mut Request) {
        let Some(s) = self.sets.pop() else { return };
        r.uri = s.uri;
        r.args = s.args;
        r.head.headers = s.headers;
        r.headers_in.host = s.host;
        r.out = s.out;
        r.cleanup = s.cleanup;
        r.pool_cleanup = s.pool_cleanup;
    }

    /// Keeps the box of a freed, emptied request body.
    pub(super) fn keep_body(&mut self, mut rb: Box<RequestBody>) {
        if rb.bufs.capacity() > Self::MAX_CHAIN {
            rb.bufs = Chain::new();
        }
        if self.bodies.len() < Self::MAX_BODIES {
            self.bodies.push(rb);
        }
    }

    /// Empties a freed request's storage where it is, for the next request of its slot
    /// (see `IN_SLOT`); what grew past its bound is freed, as `keep` does. `r.out` must
    /// already be empty of buffers.
    pub(super) fn keep_in_place(r: &mut Request) {
        let bytes = |v: &mut Vec<u8>| {
            if v.capacity() > Self::MAX_BYTES {
                *v = Vec::new();
            }
            v.clear();
        };
        bytes(&mut r.uri);
        bytes(&mut r.args);
        bytes(&mut r.headers_in.host);
        if r.head.headers.capacity() > Self::MAX_HEADERS {
            r.head.headers = Vec::new();
        }
        r.head.headers.clear();
        if r.out.capacity() > Self::MAX_CHAIN || !r.out.is_empty() {
            r.out = Chain::new();
        }
        let cleanups = |v: &mut Vec<Cleanup>| {
            if v.capacity() > Self::MAX_CLEANUPS {
                *v = Vec::new();
            }
            v.clear();
        };
        cleanups(&mut r.cleanup);
        cleanups(&mut r.pool_cleanup);
    }

    /// Keeps the storage of a freed request. `r.out` must already be empty. Storage not kept
    /// is freed, so that the emptied request left in its slot holds none of it.
    pub(super) fn keep(&mut self, r: &mut Request) {
        if self.sets.len() >= Self::MAX_SPARES || !r.out.is_empty() {
            (r.uri, r.args, r.head.headers, r.headers_in.host) = Default::default();
            (r.cleanup, r.pool_cleanup) = Default::default();
            r.out = Default::default(); // its storage too, however long the chain grew
            return;
        }
        let bytes = |v: &mut Vec<u8>| {
            let mut v = std::mem::take(v);
            v.clear();
            if v.capacity() > Self::MAX_BYTES {
                v = Vec::new();
            }
            v
        };
        let mut headers = std::mem::take(&mut r.head.headers);
        headers.clear();
        if headers.capacity() > Self::MAX_HEADERS {
            headers = Vec::new();
        }
        let (uri, args, host) = (bytes(&mut r.uri), bytes(&mut r.args), bytes(&mut r.headers_in.host));
        let mut out = std::mem::take(&mut r.out);
        if out.capacity() > Self::MAX_CHAIN {
            out = Chain::new();
        }
        let cleanups = |v: &mut Vec<Cleanup>| {
            let mut v = std::mem::take(v);
            v.clear();
            if v.capacity() > Self::MAX_CLEANUPS {
                v = Vec::new();
            }
            v
        };
        let (cleanup, pool_cleanup) = (cleanups(&mut r.cleanup), cleanups(&mut r.pool_cleanup));
        self.sets.push(RequestSpare { uri, args, headers, host, out, cleanup, pool_cleanup });
    }
}
