//! The request body's state: nginx's `ngx_http_request_body_t`, how it is made for a request
//! (from a freed request's spare box when there is one) and how its buffers, temp file and
//! box are given back. Reading it is `body.rs`; discarding it, `body_discard.rs`.
//!
//! nginx: src/http/ngx_http_request.h (`ngx_http_request_body_t`), the body parts of
//! `ngx_http_free_request()`.
//!
//! Differs from nginx: the box of a freed body is kept in the worker's request spares for the
//! next request's body (nginx allocates it from the request's pool, freed with the pool).

use super::body::has_body;
use super::parse::ChunkedDecoder;
use super::request::{Request, RequestHandler};
use crate::core::buf::{Buf, Chain};
use crate::core::temp_file::TempFile;
use crate::http::cycle::Cycle;

/// A request body being read (or discarded). nginx: `ngx_http_request_body_t`.
pub struct RequestBody {
    /// Body ready for its user: the whole body once `done` (file region, then memory), or,
    /// streamed, what the consumer has not taken yet. nginx: `rb->bufs`.
    pub bufs: Chain,
    /// The buffer being filled; `None` while a streamed body's consumer holds it.
    /// nginx: `rb->buf`.
    pub buf: Option<Buf>,
    /// `Content-Length` bytes still to read. nginx: `rb->rest`.
    pub rest: u64,
    /// The chunked decoder. nginx: `rb->chunked`.
    pub chunked: Option<ChunkedDecoder>,
    /// Body bytes received (decoded). nginx: `rb->received`, and `r->headers_in.content_length_n`
    /// as the chunked filter counts it.
    pub received: u64,
    /// The last body byte was read. nginx: `rb->rest == 0 && rb->last_saved`.
    pub done: bool,
    /// Spill file. nginx: `rb->temp_file`.
    pub temp_file: Option<TempFile>,
    /// Called once the body is complete (streamed: once reading started). nginx:
    /// `rb->post_handler`.
    pub post_handler: RequestHandler,
    /// Streamed to a consumer. nginx: `r->request_body_no_buffering` / `rb->no_buffering`.
    pub no_buffering: bool,
    /// Streamed and not all handed over yet. nginx: `r->reading_body`.
    pub reading: bool,
    /// Bytes read past the end of a chunked body: the start of the next pipelined request.
    pub pipelined: Option<Buf>,
    /// Discarding after the response: when to give up (ms). nginx: `r->lingering_time`.
    pub lingering_time: u64,
}

impl RequestBody {
    /// A body about to be read for `r`. nginx: `ngx_pcalloc()` + `rb->rest = -1` + the first
    /// call of the length or chunked filter.
    pub(super) fn new(r: &Request, post_handler: RequestHandler) -> Box<RequestBody> {
        RequestBody::renew(None, r, post_handler)
    }

    /// `new` into `spare`, the box of a freed request's body (emptied by `free_body_keep`):
    /// no allocation per request that reads a body.
    pub(super) fn renew(
        spare: Option<Box<RequestBody>>,
        r: &Request,
        post_handler: RequestHandler,
    ) -> Box<RequestBody> {
        let body = RequestBody {
            bufs: Chain::new(),
            buf: None,
            rest: if r.headers_in.chunked { 0 } else { r.headers_in.content_length_n.unwrap_or(0) },
            chunked: r.headers_in.chunked.then(|| ChunkedDecoder::new(i64::MAX as u64)),
            received: 0,
            done: !has_body(r),
            temp_file: None,
            post_handler,
            no_buffering: false,
            reading: false,
            pipelined: None,
            lingering_time: 0,
        };
        match spare {
            // The box and its chain's storage are what is kept.
            Some(mut b) => {
                let bufs = std::mem::take(&mut b.bufs);
                *b = RequestBody { bufs, ..body };
                b
            }
            None => Box::new(body),
        }
    }
}

/// Bytes of the next pipelined request read along with the body (see `rb.pipelined`).
pub fn pipelined(r: &Request) -> &[u8] {
    r.request_body.as_ref().and_then(|rb| rb.pipelined.as_ref()).map_or(&[][..], |b| b.data())
}

/// Returns a body's buffers to the pool (the temp file closes and, being unlinked, vanishes).
pub fn free_body(cy: &mut Cycle, mut rb: RequestBody) {
    release(cy, &mut rb);
}

/// `free_body`, keeping the emptied box for the next request's body (`RequestBody::renew`).
pub(super) fn free_body_keep(cy: &mut Cycle, mut rb: Box<RequestBody>) {
    release(cy, &mut rb);
    cy.request_spares.keep_body(rb);
}

/// Gives the buffers back to the pool and removes the temp file.
/// The chain's storage stays in the body: a kept box carries it to the next request's body
/// (`RequestSpares::keep_body` bounds it).
fn release(cy: &mut Cycle, rb: &mut RequestBody) {
    while let Some(b) = rb.bufs.pop_front() {
        cy.ev.bufs.put(b);
    }
    for b in [rb.buf.take(), rb.pipelined.take()].into_iter().flatten() {
        cy.ev.bufs.put(b);
    }
    rb.temp_file = None;
    rb.chunked = None;
}
