//! The last header filter: turns `headers_out` into the bytes of the response head.
//!
//! nginx: src/http/ngx_http_header_filter_module.c (`ngx_http_header_filter`).
//!
//! The head is queued on the request's output chain, not sent: the write filter sends it
//! together with the first body bytes in one `writev`, as nginx does.
//!
//! Differs from nginx: no header rginx writes can split the response. Every name and value goes
//! through `push_header_value`, which writes CR, LF and NUL as `%0D`, `%0A`, `%00` — whatever a
//! variable brought in (`$uri` is percent-decoded, so `return 302 https://$host$uri;` with
//! `%0d%0a` in the path would otherwise add headers of the client's choosing). In a `Location`
//! this gives back the URL the client sent; anywhere else it keeps the bytes visible and
//! harmless. nginx writes them raw (docs/differences.md).

use std::io::Write;
use std::net::SocketAddr;

use super::request::{HeadersOut, Method, Request};
use super::special_response::status_line;
use super::{FilterRc, Next};
use crate::core::buf::Buf;
use crate::core::step::Step;
use crate::http::cycle::Cycle;
use crate::http::cycle::RequestId;

/// Initial size of the head buffer; grown only for unusually large heads.
const HEAD_BUF: usize = 1024;

/// nginx: `ngx_http_header_filter()`.
pub fn header_filter(cy: &mut Cycle, rid: RequestId, _next: Next) -> FilterRc {
    let Some(r) = cy.requests.get_mut(rid) else {
        return Err(super::Error);
    };
    if r.header_sent {
        return Ok(Step::Done(()));
    }
    r.header_sent = true;
    if r.main != rid {
        // A subrequest's header never goes on the wire: its body takes a place in the parent's.
        return Ok(Step::Done(()));
    }
    if r.http_version < 1000 {
        // nginx sends no header to an HTTP/0.9 response (the proxy's 0.9 fallback).
        r.keepalive = false;
        return Ok(Step::Done(()));
    }
    set_header_only(r);
    // Appended to: `get_vec` hands the memory over without zero-filling it first.
    let mut head = cy.ev.bufs.get_vec(HEAD_BUF);
    let mut escaped = push_status_line(&mut head, &r.headers_out);
    // The local address only for a relative Location (one look-up of the connection less
    // in every other response).
    let conns = &cy.ev.conns;
    let local = || conns.get(r.connection).and_then(|c| c.local);
    escaped |= push_standard_headers(&mut head, r, &cy.ev.times.http_time, local);
    push_connection(&mut head, r);
    escaped |= push_module_headers(&mut head, &r.headers_out);
    head.extend_from_slice(b"\r\n");
    if escaped {
        let n = cy.ev.conns.get(r.connection).map_or(0, |c| c.number);
        log::info!("*{n} CR, LF or NUL in a response header escaped, request: \"{}\"", request_line(r));
    }
    r.header_size = head.len() as u64;
    r.out.push_back(Buf::from_vec(head));
    Ok(Step::Done(()))
}

/// A HEAD request gets the head alone. So do a 204 and a 304 without a status line of their
/// own (a proxied one has the upstream's, and its body is none by its length); such a 204 also
/// loses its Content-Type, Content-Length and Last-Modified. nginx: the start of
/// `ngx_http_header_filter()`, whose status rules sit in the branch without `status_line`.
fn set_header_only(r: &mut Request) {
    if r.method == Method::Head {
        r.header_only = true;
    }
    if r.headers_out.has_status_line() {
        return;
    }
    let status = r.headers_out.status;
    if status == 204 || status == 304 {
        r.header_only = true;
    }
    if status == 204 {
        r.headers_out.clear_content_type();
        r.headers_out.content_length_n = None;
        r.headers_out.clear_last_modified();
    }
}

/// `HTTP/1.1 200 OK\r\n`: the upstream's own status line if it brought one, else nginx's line
/// for the status, else the bare number. Returns whether anything was escaped.
fn push_status_line(head: &mut Vec<u8>, ho: &HeadersOut) -> bool {
    let mut escaped = false;
    head.extend_from_slice(b"HTTP/1.1 ");
    match (ho.status_line(), status_line(ho.status)) {
        (Some(l), _) => escaped = push_header_value(head, l),
        (None, Some(l)) => head.extend_from_slice(l.as_bytes()),
        (None, None) => push_fmt(head, format_args!("{:03} ", ho.status)),
    }
    head.extend_from_slice(b"\r\n");
    escaped
}

/// The headers the filter writes itself, in nginx's order, up to `Transfer-Encoding`: Server,
/// Date, Content-Type, Content-Length, Last-Modified, a relative Location made absolute.
/// Returns whether anything was escaped.
fn push_standard_headers(
    head: &mut Vec<u8>,
    r: &Request,
    http_time: &str,
    local: impl FnOnce() -> Option<SocketAddr>,
) -> bool {
    let ho = &r.headers_out;
    let mut escaped = false;
    if !ho.no_server {
        head.extend_from_slice(if r.loc.core.server_tokens() {
            concat!("Server: rginx/", env!("CARGO_PKG_VERSION"), "\r\n").as_bytes()
        } else {
            b"Server: rginx\r\n"
        });
    }
    if !ho.no_date {
        head.extend_from_slice(b"Date: ");
        head.extend_from_slice(http_time.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    if let Some(ct) = ho.content_type() {
        escaped |= push_known_header(head, b"Content-Type: ", ct);
    }
    if let Some(n) = ho.content_length_n {
        head.extend_from_slice(b"Content-Length: ");
        push_decimal(head, n);
        head.extend_from_slice(b"\r\n");
    }
    if let Some(lm) = ho.last_modified().filter(|_| !ho.last_modified_listed()) {
        escaped |= push_known_header(head, b"Last-Modified: ", lm);
    }
    // A relative Location made absolute comes here; an absolute one is one of the module
    // headers, after Connection, as in nginx (which keeps it in the headers list).
    if let Some(loc) = ho.location().filter(|l| l.starts_with(b"/")) {
        escaped |= push_relative_location(head, &r.headers_in.host, local(), loc);
    }
    if r.chunked {
        head.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
    }
    escaped
}

/// `Connection: keep-alive` (with `Keep-Alive: timeout=N` if configured) or `Connection: close`.
fn push_connection(head: &mut Vec<u8>, r: &Request) {
    head.extend_from_slice(if r.keepalive { b"Connection: keep-alive\r\n" } else { b"Connection: close\r\n" });
    if let (true, Some(t)) = (r.keepalive, r.loc.core.keepalive_header) {
        head.extend_from_slice(b"Keep-Alive: timeout=");
        push_decimal(head, t);
        head.extend_from_slice(b"\r\n");
    }
}

/// The headers modules set (an absolute Location first, then `headers_out.headers` in order).
/// Returns whether anything was escaped. nginx: the loop over `r->headers_out.headers`.
fn push_module_headers(head: &mut Vec<u8>, ho: &HeadersOut) -> bool {
    let mut escaped = false;
    if let Some(loc) = ho.location().filter(|l| !l.starts_with(b"/")) {
        escaped |= push_known_header(head, b"Location: ", loc);
    }
    for (n, v) in ho.headers().iter() {
        escaped |= push_header(head, n, v);
    }
    escaped
}

/// Appends formatted text to the head.
fn push_fmt(head: &mut Vec<u8>, args: std::fmt::Arguments<'_>) {
    // Ignored: `io::Write` for `Vec<u8>` cannot fail.
    let _ = head.write_fmt(args);
}

/// `Location: http://HOST[:PORT]/path` for a relative redirect: made absolute from the Host the
/// client used (nginx's defaults `absolute_redirect on`, `server_name_in_redirect off`,
/// `port_in_redirect on`), else from the local address. Returns whether anything was escaped.
///
/// nginx: the `r->headers_out.location` block of `ngx_http_header_filter()`.
fn push_relative_location(head: &mut Vec<u8>, host: &[u8], local: Option<SocketAddr>, loc: &[u8]) -> bool {
    head.extend_from_slice(b"Location: http://");
    let mut escaped = false;
    match local {
        _ if !host.is_empty() => escaped |= push_header_value(head, host),
        Some(SocketAddr::V6(a)) => push_fmt(head, format_args!("[{}]", a.ip())),
        Some(a) => push_fmt(head, format_args!("{}", a.ip())),
        None => {}
    }
    if let Some(port) = local.map(|a| a.port()).filter(|&p| p != 80) {
        push_fmt(head, format_args!(":{port}"));
    }
    escaped |= push_header_value(head, loc);
    head.extend_from_slice(b"\r\n");
    escaped
}

/// Appends `NAME: VALUE\r\n` for a name of the filter's own (`name_colon` is "Name: ", with
/// nothing to escape): only the value goes through `push_header_value`; whether anything
/// was escaped.
fn push_known_header(head: &mut Vec<u8>, name_colon: &[u8], value: &[u8]) -> bool {
    head.extend_from_slice(name_colon);
    let escaped = push_header_value(head, value);
    head.extend_from_slice(b"\r\n");
    escaped
}

/// Appends `n` in decimal, the digits `write!(out, "{n}")` writes, without the formatting
/// machinery (a `Content-Length` in every response head: `write_fmt` cost ~350
/// instructions a call).
pub fn push_decimal(out: &mut Vec<u8>, n: u64) {
    let mut digits = [0u8; 20]; // u64::MAX has 20 digits
    let mut at = digits.len();
    let mut rest = n;
    while let Some(d) = at.checked_sub(1).and_then(|i| digits.get_mut(i)) {
        *d = b'0' + (rest % 10) as u8;
        at -= 1;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    out.extend_from_slice(digits.get(at..).unwrap_or(b"0"));
}

/// Appends `NAME: VALUE\r\n`, both escaped by `push_header_value`; whether anything was.
fn push_header(head: &mut Vec<u8>, name: &[u8], value: &[u8]) -> bool {
    let escaped = push_header_value(head, name);
    head.extend_from_slice(b": ");
    let escaped = push_header_value(head, value) | escaped;
    head.extend_from_slice(b"\r\n");
    escaped
}

/// Appends a header name or value, writing CR, LF and NUL as `%0D`, `%0A`, `%00` so that
/// nothing a variable holds can end the header line or the head. Returns whether any byte was
/// escaped. Values without those bytes (all of them, in practice) are copied as they are.
///
/// nginx: none — nginx copies values raw; this is rginx's one step beyond it (see the header
/// of this file). Also used for the headers sent upstream (`ComplexValue::eval_header`).
pub fn push_header_value(out: &mut Vec<u8>, v: &[u8]) -> bool {
    let unsafe_byte = |b: &u8| matches!(*b, b'\r' | b'\n' | 0);
    if !has_unsafe_byte(v) {
        out.extend_from_slice(v);
        return false;
    }
    for &b in v {
        if unsafe_byte(&b) {
            push_fmt(out, format_args!("%{b:02X}"));
        } else {
            out.push(b);
        }
    }
    true
}

/// Whether `v` holds a CR, LF or NUL, looked for 8 bytes at a time (every header name and
/// value of every response passes here): a word has a zero byte iff
/// `(x - 0x01..01) & !x & 0x80..80` is not zero, and `x ^ 0x0d..0d` zeroes its CRs.
pub fn has_unsafe_byte(v: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let has_zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH != 0;
    let mut words = v.chunks_exact(8);
    for w in &mut words {
        let x = w.try_into().map_or(0, u64::from_le_bytes);
        if has_zero(x) || has_zero(x ^ (ONES * u64::from(b'\r'))) || has_zero(x ^ (ONES * u64::from(b'\n'))) {
            return true;
        }
    }
    words.remainder().iter().any(|b| matches!(*b, b'\r' | b'\n' | 0))
}

/// The request line for a log message, with its own control bytes shown harmlessly.
fn request_line(r: &Request) -> String {
    String::from_utf8_lossy(r.request_line()).escape_debug().to_string()
}

/// The module. nginx: `ngx_http_header_filter_module`.
pub struct HeaderFilterModule;

impl super::HttpModule for HeaderFilterModule {
    fn name(&self) -> &'static str {
        "ngx_http_header_filter_module"
    }
    fn postconfiguration(&self, http: &mut super::HttpConf) -> Result<(), crate::conf::ConfError> {
        http.filters.header.insert(0, header_filter);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn push_decimal_writes_what_format_writes() {
        let mut n = 1u64;
        for x in [0, 1, 9, 10, 99, 100, 12345, u64::from(u32::MAX), u64::MAX - 1, u64::MAX].into_iter().chain(
            (0..64).map(|i| {
                n = n.wrapping_mul(7).wrapping_add(i);
                n
            }),
        ) {
            let mut out = b"x".to_vec();
            super::push_decimal(&mut out, x);
            assert_eq!(out, format!("x{x}").into_bytes());
        }
    }

    #[test]
    fn has_unsafe_byte_finds_cr_lf_nul_anywhere() {
        let naive = |v: &[u8]| v.iter().any(|b| matches!(*b, b'\r' | b'\n' | 0));
        for len in 0..20 {
            for at in 0..len {
                for b in 0..=255u8 {
                    let mut v = vec![b'a'; len];
                    v[at] = b;
                    assert_eq!(super::has_unsafe_byte(&v), naive(&v), "{len} {at} {b:#x}");
                    v.iter_mut().for_each(|x| *x = 0xff);
                    v[at] = b;
                    assert_eq!(super::has_unsafe_byte(&v), naive(&v), "{len} {at} {b:#x} in 0xff");
                }
            }
        }
        assert!(!super::has_unsafe_byte(b""));
    }
}
