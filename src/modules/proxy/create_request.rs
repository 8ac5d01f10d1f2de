//! The request to the upstream: `METHOD URI HTTP/1.x`, the `proxy_set_header` list merged
//! with nginx's defaults, the client's other headers, then the body buffers.
//!
//! nginx: src/http/modules/ngx_http_proxy_module.c — `ngx_http_proxy_create_request()`
//! (the URI part as `ngx_http_proxy_create_key()` also computes it).
//!
//! Differs from nginx:
//! - the header values are evaluated once into the buffer (nginx runs a length pass, then a
//!   value pass of the compiled script).
//! - a header value with CR, LF or NUL (from a variable) is escaped (`%0D`...) instead of sent.
//! - memory body buffers are copied into the request (nginx chains the client's bufs); file
//!   regions are shared. Both stay for a retry.

use std::io::Write;

use super::ProxyCtx;
use crate::core::buf::{Buf, Chain};
use crate::core::header_list::eq_nocase;
use crate::http::request::Request;
use crate::http::variables::Vars;
use crate::upstream::{UpstreamCx, UpstreamError};

/// Room for the `proxy_set_header` lines beyond the client's own head, in the first guess
/// of the head's size (a longer head grows the buffer).
const HEAD_SLACK: usize = 512;

impl ProxyCtx {
    /// Fills `u.request_bufs` and `u.uri`. nginx: `ngx_http_proxy_create_request()`.
    ///
    /// The head is written into one buffer of the worker's pool, sized once from the client's
    /// head (what the upstream's is made of, give or take the `proxy_set_header`s); nginx
    /// computes the exact length in a first pass instead. Header values are evaluated straight
    /// into it, so nothing else is allocated.
    pub(super) fn create_request(&mut self, cx: &mut UpstreamCx<'_>) -> Result<(), UpstreamError> {
        let r = &*cx.r;
        // Appended to: `get_vec` hands the memory over without zero-filling it first.
        let mut b = Buf::from_vec(cx.bufs.get_vec(r.header_in.last + HEAD_SLACK));
        let head = &mut b.mem;
        let uri = self.request_line(r, head);
        // nginx: `ctx->internal_chunked` — a chunked body still streaming goes on chunked.
        self.internal_chunked = r.headers_in.chunked && r.request_body.as_ref().is_some_and(|b| b.reading);
        self.set_headers(&cx.vars(), head);
        self.client_headers(r, head);
        head.extend_from_slice(b"\r\n");
        let len = head.len();
        cx.u.uri.clear();
        match std::str::from_utf8(&head[uri.clone()]) {
            // (`from_utf8_lossy` walks the bytes chunk by chunk even when they are all valid)
            Ok(text) => cx.u.uri.push_str(text),
            Err(_) => cx.u.uri.push_str(&String::from_utf8_lossy(&head[uri])),
        }
        b.last = len;
        let method = r.method_name().escape_ascii();
        cx.debug(format_args!("proxy create_request: {method} {}, {len} bytes of header", cx.u.uri));
        cx.u.request_bufs.push_back(b);
        push_body(r, &mut cx.u.request_bufs);
        Ok(())
    }

    /// `METHOD URI HTTP/1.x\r\n`; returns where the URI is (for `u.uri`).
    fn request_line(&self, r: &Request, head: &mut Vec<u8>) -> std::ops::Range<usize> {
        head.extend_from_slice(r.method_name());
        head.push(b' ');
        let uri_start = head.len();
        self.upstream_uri(r, head);
        let uri = uri_start..head.len();
        head.extend_from_slice(if self.shared.http_version == 1001 { b" HTTP/1.1\r\n" } else { b" HTTP/1.0\r\n" });
        uri
    }

    /// The URI for the upstream request line. nginx: in `ngx_http_proxy_create_request()`
    /// (as `ngx_http_proxy_create_key()`): no URI in `proxy_pass` → the client's URI as sent;
    /// with one → the location prefix of the normalised URI replaced by it.
    fn upstream_uri(&self, r: &Request, out: &mut Vec<u8>) {
        match &self.shared.pass.uri {
            // nginx's `r->valid_unparsed_uri`: "http://h?x" has no path to pass on as sent
            None if !r.internal && !r.head.empty_path_in_uri => out.extend_from_slice(r.unparsed_uri()),
            None => {
                escape_uri(out, &r.uri);
                if !r.args.is_empty() {
                    out.push(b'?');
                    out.extend_from_slice(&r.args);
                }
            }
            Some(u) => {
                out.extend_from_slice(u.as_bytes());
                let loc = self.shared.pass.location.as_bytes();
                let rest = if r.uri.starts_with(loc) { &r.uri[loc.len()..] } else { &r.uri[..] };
                escape_uri(out, rest);
                if !r.args.is_empty() {
                    out.push(b'?');
                    out.extend_from_slice(&r.args);
                }
            }
        }
    }

    /// The merged header list, compiled per location (`HeaderScript`): constant lines copied,
    /// the others evaluated (the body's framing headers computed), empty ones left out.
    /// Decides `closes` from the `Connection` sent.
    /// nginx: the `headers.lengths`/`headers.values` script of `ngx_http_proxy_create_request()`.
    fn set_headers(&mut self, v: &Vars<'_>, head: &mut Vec<u8>) {
        let body_len = body_length(v.r, self.internal_chunked);
        let sent_connection = self.shared.script.run(v, body_len, self.internal_chunked, head);
        let sent = sent_connection.map_or(&[][..], |c| &head[c]);
        self.closes = contains_nocase(sent, b"close")
            || (self.shared.http_version < 1001 && !contains_nocase(sent, b"keep-alive"));
    }

    /// The client's headers that the list above does not name, as the client sent them.
    fn client_headers(&self, r: &Request, head: &mut Vec<u8>) {
        let buf = &r.header_in.mem;
        for (n, v) in &r.head.headers {
            let name = &buf[n.clone()];
            let script = &self.shared.script;
            if script.may_name(name) && self.shared.headers.iter().any(|(h, _)| eq_nocase(h.as_bytes(), name)) {
                continue;
            }
            head.extend_from_slice(name);
            head.extend_from_slice(b": ");
            head.extend_from_slice(&buf[v.clone()]);
            head.extend_from_slice(b"\r\n");
        }
    }
}

/// The `Content-Length` to send: the client's length, or what was read of a chunked body;
/// none for a chunked body still streaming, nor for an empty body the client did not frame.
/// nginx: `ctx->internal_body_length`.
fn body_length(r: &Request, internal_chunked: bool) -> Option<u64> {
    let rb = r.request_body.as_ref().filter(|_| !internal_chunked)?;
    let n = if rb.no_buffering { r.headers_in.content_length_n.unwrap_or(0) } else { rb.received };
    (n > 0 || r.headers_in.content_length_n.is_some() || r.headers_in.chunked).then_some(n)
}

/// Appends the body to send: copies of memory buffers, shared file regions, kept for a
/// retry. A streamed body is queued by the framework as it is sent.
fn push_body(r: &Request, bufs: &mut Chain) {
    let Some(rb) = r.request_body.as_ref().filter(|rb| !rb.no_buffering) else {
        return;
    };
    bufs.extend(rb.bufs.iter().map(|b| match &b.file {
        Some(f) => Buf::from_file(f.file.clone(), f.pos, f.last),
        None => Buf::from_vec(b.data().to_vec()),
    }));
}

/// Whether `hay` contains `needle` (lower case), ignoring ASCII case.
fn contains_nocase(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle))
}

/// Escapes a URI path for the request line. nginx: `ngx_escape_uri(NGX_ESCAPE_URI)`.
fn escape_uri(out: &mut Vec<u8>, s: &[u8]) {
    for &b in s {
        if b <= b' ' || b >= 0x7f || b == b'%' || b == b'?' || b == b'#' || b == b'"' {
            let _ = write!(out, "%{b:02X}");
        } else {
            out.push(b);
        }
    }
}
