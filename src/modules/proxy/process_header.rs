//! Parsing the upstream's response head: the status line, then the header lines, refusing
//! what would make the body's framing ambiguous.
//!
//! nginx: src/http/modules/ngx_http_proxy_module.c — `ngx_http_proxy_process_status_line()`,
//! `ngx_http_proxy_process_header()`.
//!
//! Differs from nginx:
//! - nginx swaps `u->process_header` from the first function to the second once the status
//!   line is in; `ProxyCtx` keeps the choice in its `Phase` (see `mod.rs`).
//! - the headers are kept as (name, value) bytes, exactly as sent, in `u.headers_in`'s one
//!   pooled buffer (`HeadersIn::push`), not in a hashed list of `ngx_table_elt_t`; the known
//!   ones go through the framework's table (`upstream::headers_in`), as nginx's
//!   `umcf->headers_in_hash` lookup does.
//! - an upstream HTTP/0.9 answer is recorded in the module (`upstream_http09`), not only in
//!   `r->http_version`, which the client's own HTTP/0.9 request also sets.

use super::{Phase, ProxyCtx};
use crate::core::step::Step;
use crate::http::parse::{self, HeaderLine};
use crate::upstream::{headers_in, HeadersIn, Upstream, UpstreamCx, UpstreamError};

impl ProxyCtx {
    /// nginx: `ngx_http_proxy_process_status_line()`.
    pub(super) fn process_status_line(&mut self, cx: &mut UpstreamCx<'_>) -> Result<Step, UpstreamError> {
        let u = &mut *cx.u;
        let mut pos = u.buffer.pos;
        match parse::parse_status_line(&u.buffer.mem[..u.buffer.last], &mut pos) {
            Ok(Step::Again) => Ok(Step::Again),
            Ok(Step::Done(st)) => {
                u.headers_in.status_n = st.code;
                u.headers_in.set_status_line(u.buffer.mem.get(st.start..st.end).unwrap_or(b""));
                if st.http_version < 1001 {
                    u.headers_in.connection_close = true;
                }
                u.buffer.pos = pos;
                self.phase = Phase::Header;
                Ok(Step::Done(()))
            }
            Err(_) => {
                // nginx: "upstream sent no valid HTTP/1.0 header" — the whole response is an
                // HTTP/0.9 body, sent to the client without a header (`u.buffer.pos` stays
                // at its first byte).
                self.upstream_http09 = true;
                u.headers_in.status_n = 200;
                u.headers_in.connection_close = true;
                u.state.status = 200;
                cx.r.http_version = 9;
                cx.log_error("upstream sent no valid HTTP/1.0 header");
                Ok(Step::Done(()))
            }
        }
    }

    /// nginx: `ngx_http_proxy_process_header()`; an invalid header is logged here, with the
    /// request context, as nginx's module does (the framework only tries the next peer).
    pub(super) fn process_header_lines(&mut self, cx: &mut UpstreamCx<'_>) -> Result<Step, UpstreamError> {
        match parse_header_lines(cx.u) {
            Ok(Step::Done(())) if self.closes => {
                cx.u.keepalive = false;
                Ok(Step::Done(()))
            }
            Ok(step) => Ok(step),
            Err(msg) => {
                cx.log_error(&msg);
                Err(UpstreamError::InvalidHeader)
            }
        }
    }
}

/// Parses header lines until the blank line; `Err` is the message for the error log.
fn parse_header_lines(u: &mut Upstream) -> Result<Step, String> {
    loop {
        let mut pos = u.buffer.pos;
        match parse::parse_header_line(&u.buffer.mem[..u.buffer.last], &mut pos) {
            Ok(Step::Again) => return Ok(Step::Again),
            Ok(Step::Done(HeaderLine::Header { name, value })) => {
                let buf = &u.buffer.mem;
                let (n, v) = (buf.get(name).unwrap_or(b""), buf.get(value).unwrap_or(b""));
                header_line(&mut u.headers_in, n, v)?;
                u.buffer.pos = pos;
            }
            Ok(Step::Done(HeaderLine::End)) => {
                u.buffer.pos = pos;
                let hi = &u.headers_in;
                if hi.chunked && hi.content_length_n.is_some() {
                    return Err(
                        "upstream sent \"Content-Length\" and \"Transfer-Encoding\" headers at the same time".into()
                    );
                }
                u.keepalive = !hi.connection_close;
                return Ok(Step::Done(()));
            }
            Err(_) => return Err(invalid_header_message(&u.buffer.mem[..u.buffer.last], u.buffer.pos)),
        }
    }
}

/// Records one header line, refusing a bad or conflicting `Content-Length` and an unknown
/// `Transfer-Encoding`. nginx: `ngx_hash_find(&umcf->headers_in_hash, ...)` and the
/// `ngx_http_upstream_headers_in[]` handlers (`ngx_http_upstream_process_content_length()`,
/// `_process_transfer_encoding()`, ...) in `ngx_http_proxy_process_header()`.
fn header_line(hi: &mut HeadersIn, n: &[u8], v: &[u8]) -> Result<(), String> {
    let found = headers_in::find_index(n);
    if let Some(hh) = found.and_then(|i| headers_in::UPSTREAM_HEADERS_IN.get(i)) {
        (hh.handler)(hi, n, v)?;
    }
    hi.push_found(n, v, found);
    Ok(())
}

/// nginx's "upstream sent invalid header: \"NAME...\xNN...\"": the line up to the byte that
/// broke it, then that byte in hex. The parser only says "invalid", and it never goes back on
/// a verdict, so the shortest prefix of the line it rejects ends at that byte.
fn invalid_header_message(buf: &[u8], start: usize) -> String {
    let rejects = |end: usize| {
        let mut pos = start;
        parse::parse_header_line(&buf[..end], &mut pos).is_err()
    };
    let (mut lo, mut hi) = (start + 1, buf.len());
    while lo < hi {
        let mid = (lo + hi) / 2;
        if rejects(mid) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    let mut bad = lo.saturating_sub(1).max(start);
    if bad > start && buf[bad - 1] == b'\r' {
        bad -= 1; // "CR not followed by LF": nginx points at the CR
    }
    let shown = String::from_utf8_lossy(&buf[start..bad]);
    format!("upstream sent invalid header: \"{shown}\\x{:02x}...\"", buf.get(bad).copied().unwrap_or(0))
}
