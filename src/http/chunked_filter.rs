//! Chunked transfer encoding of responses whose length is unknown.
//!
//! nginx: src/http/modules/ngx_http_chunked_filter_module.c.
//!
//! The header part decides the framing: a known length is sent as is; otherwise an HTTP/1.1
//! client gets chunks and an HTTP/1.0 client a close-delimited body (keepalive off).

use std::io::Write;

use super::{FilterRc, Next};
use crate::core::buf::{Buf, BufPool, Chain};
use crate::http::cycle::Cycle;
use crate::http::cycle::RequestId;

/// nginx: `ngx_http_chunked_header_filter()`.
pub fn chunked_header_filter(cy: &mut Cycle, rid: RequestId, next: Next) -> FilterRc {
    if let Some(r) = cy.requests.get_mut(rid) {
        let s = r.headers_out.status;
        let head = r.method == super::request::Method::Head;
        if r.main == rid
            && !r.header_sent
            && s != 204
            && s != 304
            && !r.header_only
            && !head
            && r.headers_out.content_length_n.is_none()
        {
            if r.http_version >= 1001 {
                r.chunked = true;
            } else {
                r.keepalive = false;
            }
        }
    }
    next.header(cy, rid)
}

/// nginx: `ngx_http_chunked_body_filter()`.
pub fn chunked_body_filter(cy: &mut Cycle, rid: RequestId, input: &mut Chain, next: Next) -> FilterRc {
    let chunked = cy.requests.get(rid).is_some_and(|r| r.chunked && r.main == rid);
    if !chunked || input.is_empty() {
        return next.body(cy, rid, input);
    }
    let pool = &mut cy.ev.bufs;
    let mut out = pool.chain();
    let mut size = 0u64;
    let mut last = false;
    let mut data = pool.chain();
    while let Some(b) = input.pop_front() {
        size += b.len();
        last |= b.last_buf;
        if !b.is_empty() || b.flush {
            data.push_back(b);
        } else {
            pool.put(b);
        }
    }
    if size > 0 {
        let mut h = pool.get(32);
        let mut w = h.free_space();
        let _ = write!(w, "{size:x}\r\n");
        let left = w.len();
        h.last = h.mem.len() - left;
        out.push_back(h);
        out.append(&mut data);
        let mut t = small(pool, if last { b"\r\n0\r\n\r\n" } else { b"\r\n" });
        t.last_buf = last;
        t.flush = true;
        out.push_back(t);
    } else {
        out.append(&mut data);
        if last {
            let mut t = small(pool, b"0\r\n\r\n");
            t.last_buf = true;
            out.push_back(t);
        }
    }
    pool.put_chain(&mut data);
    let rc = next.body(cy, rid, &mut out);
    cy.ev.bufs.put_chain(&mut out);
    rc
}

/// A pooled buffer holding `bytes` (a chunk's framing): no allocation once the pool is warm.
fn small(pool: &mut BufPool, bytes: &[u8]) -> Buf {
    let mut b = pool.get(bytes.len());
    b.append(bytes);
    b
}

/// The module. nginx: `ngx_http_chunked_filter_module`.
pub struct ChunkedFilterModule;

impl super::HttpModule for ChunkedFilterModule {
    fn name(&self) -> &'static str {
        "ngx_http_chunked_filter_module"
    }
    fn postconfiguration(&self, http: &mut super::HttpConf) -> Result<(), crate::conf::ConfError> {
        http.filters.header.insert(0, chunked_header_filter);
        http.filters.body.insert(0, chunked_body_filter);
        Ok(())
    }
}
