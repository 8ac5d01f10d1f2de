//! Chunked transfer encoding of responses whose length is unknown.
//!
//! nginx: src/http/modules/ngx_http_chunked_filter_module.c.
//!
//! The header part decides the framing: a known length is sent as is; otherwise an HTTP/1.1
//! client gets chunks and an HTTP/1.0 client a close-delimited body (keepalive off).

use std::io::Write;

use super::{FilterRc, Next};
use crate::core::buf::{Buf, Chain};
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
    let mut out = Chain::new();
    let mut size = 0u64;
    let mut last = false;
    let mut data = Chain::new();
    while let Some(b) = input.pop_front() {
        size += b.len();
        last |= b.last_buf;
        if !b.is_empty() || b.flush {
            data.push_back(b);
        } else {
            cy.ev.bufs.put(b);
        }
    }
    if size > 0 {
        let mut h = cy.ev.bufs.get(32).mem;
        h.clear();
        let _ = write!(h, "{size:x}\r\n");
        out.push_back(Buf::from_vec(h));
        out.append(&mut data);
        let mut t = Buf::from_vec(if last { b"\r\n0\r\n\r\n".to_vec() } else { b"\r\n".to_vec() });
        t.last_buf = last;
        t.flush = true;
        out.push_back(t);
    } else {
        out.append(&mut data);
        if last {
            let mut t = Buf::from_vec(b"0\r\n\r\n".to_vec());
            t.last_buf = true;
            out.push_back(t);
        }
    }
    next.body(cy, rid, &mut out)
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
