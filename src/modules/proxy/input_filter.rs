//! The response body on its way in (framing: `Content-Length`, chunked, or until close) and
//! a streamed request body on its way out (re-chunked for an HTTP/1.1 upstream).
//!
//! nginx: src/http/modules/ngx_http_proxy_module.c — `ngx_http_proxy_input_filter_init()`,
//! `ngx_http_proxy_non_buffered_copy_filter()`, `ngx_http_proxy_non_buffered_chunked_filter()`
//! (and the pipe's `ngx_http_proxy_chunked_filter()`), `ngx_http_proxy_body_output_filter()`.
//!
//! Differs from nginx: one input filter serves the buffered and the non-buffered modes (the
//! framework's `response::emit` passes the decoded ranges on, the buffer itself when it can);
//! nginx has a pipe filter and a non-buffered filter for each framing.

use super::ProxyCtx;
use crate::core::buf::{chain_len, Buf, Chain};
use crate::http::parse::{Chunked, ChunkedDecoder};
use crate::upstream::{response, UpstreamCx, UpstreamError};

impl ProxyCtx {
    /// Chooses the framing: the length, the chunked decoder, or until close (then the
    /// connection cannot be kept). nginx: `ngx_http_proxy_input_filter_init()`.
    pub(super) fn input_filter_init(&mut self, cx: &mut UpstreamCx<'_>) -> Result<(), UpstreamError> {
        response::non_buffered_filter_init(cx)?;
        let u = &mut *cx.u;
        if u.length != Some(0) && u.headers_in.chunked {
            self.chunked = Some(ChunkedDecoder::new(i64::MAX as u64));
            u.length = Some(u64::MAX); // until the last chunk
        } else if u.length.is_none() {
            u.keepalive = false; // delimited by close
        }
        // Without chunks the body passes as it came (`ngx_http_proxy_copy_filter`), so it may
        // skip user memory (`upstream::body_splice`).
        u.copy_filter = self.chunked.is_none();
        Ok(())
    }

    /// Decodes the `bytes` new bytes at the end of `u.buffer` and passes the data on.
    /// nginx: `ngx_http_proxy_non_buffered_chunked_filter()` /
    /// `ngx_http_proxy_non_buffered_copy_filter()`.
    pub(super) fn input_filter(&mut self, cx: &mut UpstreamCx<'_>, bytes: usize) -> Result<(), UpstreamError> {
        let Some(dec) = self.chunked.as_mut() else {
            return response::non_buffered_filter(cx, bytes);
        };
        let (u, pool) = (&mut *cx.u, &mut *cx.bufs);
        let mut pos = u.buffer.last - bytes;
        let end = u.buffer.last;
        let mut extra = false;
        while pos < end {
            match dec.parse(&u.buffer.mem[..end], &mut pos) {
                Ok(Chunked::Data(range)) => response::emit(u, pool, range.start, range.end),
                Ok(Chunked::Again) => break,
                Ok(Chunked::Done) => {
                    u.length = Some(0);
                    if pos < end {
                        extra = true;
                        u.keepalive = false;
                    }
                    break;
                }
                Err(_) => {
                    u.keepalive = false;
                    cx.log_error("upstream sent invalid chunked response");
                    return Err(UpstreamError::InvalidBody);
                }
            }
        }
        u.buffer.pos = end;
        if extra {
            cx.log_warn("upstream sent data after final chunk");
        }
        Ok(())
    }

    /// Frames each piece of a streamed chunked body as a chunk, and ends the body with the
    /// last chunk. nginx: `ngx_http_proxy_body_output_filter()`.
    pub(super) fn body_output_filter(&mut self, body: &mut Chain, last: bool) {
        if !self.internal_chunked {
            return;
        }
        let size = chain_len(body);
        if size > 0 {
            body.push_front(Buf::from_vec(format!("{size:x}\r\n").into_bytes()));
        }
        match (last, size > 0) {
            (true, true) => body.push_back(Buf::from_vec(b"\r\n0\r\n\r\n".to_vec())),
            (true, false) => body.push_back(Buf::from_vec(b"0\r\n\r\n".to_vec())),
            (false, true) => body.push_back(Buf::from_vec(b"\r\n".to_vec())),
            (false, false) => {}
        }
    }
}
