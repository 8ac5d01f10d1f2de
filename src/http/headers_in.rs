//! What the request head means: the URI, the host, the headers nginx gives a meaning to, and
//! the checks once the head is complete.
//!
//! nginx: src/http/ngx_http_request.c — `ngx_http_process_request_uri()`, the
//! `ngx_http_headers_in[]` handlers (`ngx_http_process_host()`,
//! `ngx_http_process_connection()`, `ngx_http_process_unique_header_line()`),
//! `ngx_http_validate_host()`, `ngx_http_process_request_header()`.
//!
//! Each function takes the request alone and answers `Err((status, log message))`; the
//! caller (request_head.rs) logs the message at info level and finalizes with the status, as
//! nginx's handlers call `ngx_http_finalize_request()`.
//!
//! Differs from nginx:
//! - headers are matched by a `match` on the lowercased name, not `cmcf->headers_in_hash`;
//!   only the handlers whose effect rginx uses exist (no User-Agent browser sniffing, no
//!   `Keep-Alive: timeout`).
//! - `merge_slashes` is always on (`parse::normalize_uri`).

use super::parse;
use super::request::Request;

/// A refusal: the status to answer and the info-level log line.
pub(super) type Refusal = (u16, String);

/// The request headers nginx refuses to see twice (`ngx_http_process_unique_header_line`
/// in nginx 1.22's `ngx_http_headers_in[]`); their index is the slot in `HeadersIn::unique`.
pub const UNIQUE_HEADERS: [&str; 10] = [
    "content-length",
    "transfer-encoding",
    "expect",
    "if-modified-since",
    "if-unmodified-since",
    "if-match",
    "if-none-match",
    "content-range",
    "if-range",
    "authorization",
];
const CONTENT_LENGTH: usize = 0;
const TRANSFER_ENCODING: usize = 1;
const EXPECT: usize = 2;

/// Splits the target into `r.uri` (decoded, normalised when needed) and `r.args`.
///
/// nginx: `ngx_http_process_request_uri()` (with `ngx_http_parse_complex_uri()` for a path
/// with "//", "/.", '%' or '#', and "/" for "http://host?args").
pub(super) fn process_request_uri(r: &mut Request) -> Result<(), Refusal> {
    let Request { header_in, head, uri, args, .. } = r;
    let invalid = || (400, "client sent invalid request".to_string());
    let target = header_in.mem.get(head.target.clone()).ok_or_else(invalid)?;
    // "http://h?x" leaves the target "?x": no path, and split_target finds the args
    let (path, a, complex) = parse::split_target(target);
    args.clear();
    args.extend_from_slice(a.unwrap_or(b""));
    uri.clear();
    if head.empty_path_in_uri {
        uri.push(b'/');
    } else if complex {
        parse::normalize_uri(path, uri).map_err(|_| invalid())?;
    } else {
        uri.extend_from_slice(path);
    }
    Ok(())
}

/// Checks a host (from the request line or the `Host` header) and returns it lowercased,
/// without the port and one trailing dot. `None`: nginx refuses it (400).
///
/// Refused: an empty name, "..", '/', a byte <= 0x20 or DEL. A '[' at the start opens an
/// IPv6 literal up to ']'; the first ':' outside it starts the port.
///
/// nginx: `ngx_http_validate_host()`
pub fn validate_host(host: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    validate_host_into(host, &mut out).then_some(out)
}

/// `validate_host` into `out` (cleared first), whose capacity a request keeps from the last
/// one: no allocation per request. `false`: refused (`out` then says nothing).
pub fn validate_host_into(host: &[u8], out: &mut Vec<u8>) -> bool {
    out.clear();
    let Some(len) = valid_host_len(host) else { return false };
    out.extend_from_slice(host.get(..len).unwrap_or(host));
    out.make_ascii_lowercase();
    true
}

/// Host bytes `valid_host_len` looks at in its first pass: '.', ':', '/', the bytes <= 0x20
/// and DEL.
static HOST_SPECIAL: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b <= 0x20 {
        t[b] = true;
        b += 1;
    }
    t[b'.' as usize] = true;
    t[b':' as usize] = true;
    t[b'/' as usize] = true;
    t[0x7f] = true;
    t
};

/// The length of the name part of a valid host, `None` if nginx refuses it.
///
/// nginx's one loop with its state (`dot_pos`, `host_len`, the IPv6 literal) as one tight
/// pass over the bytes: the refused bytes, ".." and the last dot anywhere, and the first
/// ':', which ends the name; then, for an IPv6 literal only, a second pass for its first
/// ']', which ends the name instead.
fn valid_host_len(host: &[u8]) -> Option<usize> {
    let (mut dot_pos, mut colon, mut prev) = (None, None, 0u8);
    for (i, &ch) in host.iter().enumerate() {
        if HOST_SPECIAL[usize::from(ch)] {
            if ch == b':' {
                colon = colon.or(Some(i));
            } else if ch != b'.' || prev == b'.' {
                return None;
            } else {
                dot_pos = Some(i);
            }
        }
        prev = ch;
    }
    let mut host_len = if host.first() == Some(&b'[') {
        host.iter().position(|&c| c == b']').map_or(host.len(), |e| e + 1)
    } else {
        colon.unwrap_or(host.len())
    };
    // nginx's `dot_pos` is the last dot of the whole host, port included
    if host_len > 0 && dot_pos == Some(host_len - 1) {
        host_len -= 1;
    }
    (host_len > 0).then_some(host_len)
}

/// The host of an absolute-form target becomes the request's host (`$host`, the virtual
/// server), whatever `Host` says later. `Ok(true)` when there was one.
///
/// nginx: the `r->host_end` branch of `ngx_http_process_request_line()`
pub(super) fn process_request_line_host(r: &mut Request) -> Result<bool, Refusal> {
    let Some(range) = r.head.host() else { return Ok(false) };
    let host = r.header_in.mem.get(range).unwrap_or(b"");
    if validate_host_into(host, &mut r.headers_in.host) {
        Ok(true)
    } else {
        r.headers_in.host.clear();
        Err((400, "client sent invalid host in request line".into()))
    }
}

/// Runs the handler nginx has for the header just added as `r.head.headers[i]`.
/// `Ok(true)`: the host was set (the caller switches the virtual server).
///
/// nginx: the `hh->handler(r, h, hh->offset)` call in `ngx_http_process_request_headers()`
pub(super) fn process_header_line(r: &mut Request, i: usize) -> Result<bool, Refusal> {
    let Some((n, v)) = r.head.headers.get(i).cloned() else { return Ok(false) };
    let name = r.header_in.mem.get(n).unwrap_or(b"");
    // Compared without a lowercased copy: one allocation per header line less (nginx finds
    // the handler in a hash of lowercased names, `r->lowcase_header`, in the request pool).
    let is = |h: &str| name.eq_ignore_ascii_case(h.as_bytes());
    if is("host") {
        return process_host(r, i, v);
    }
    if is("connection") {
        process_connection(r, v);
        return Ok(false);
    }
    if let Some(slot) = UNIQUE_HEADERS.iter().position(|u| is(u)) {
        process_unique_header_line(r, i, slot)?;
    }
    Ok(false)
}

/// `"Name: value"` of header `i`, for log lines.
fn header_text(r: &Request, i: usize) -> String {
    let Some((n, v)) = r.head.headers.get(i) else { return String::new() };
    let mem = &r.header_in.mem;
    let part = |rg: &std::ops::Range<usize>| String::from_utf8_lossy(mem.get(rg.clone()).unwrap_or(b"")).into_owned();
    format!("{}: {}", part(n), part(v))
}

/// nginx: `ngx_http_process_host()`: a second `Host` is refused, also after an
/// absolute-form target; the first is validated even when the target's host wins.
fn process_host(r: &mut Request, i: usize, value: std::ops::Range<usize>) -> Result<bool, Refusal> {
    if let Some(prev) = r.headers_in.host_line {
        let msg = format!(
            "client sent duplicate host header: \"{}\", previous value: \"{}\"",
            header_text(r, i),
            header_text(r, prev)
        );
        return Err((400, msg));
    }
    r.headers_in.host_line = Some(i);
    let value = r.header_in.mem.get(value).unwrap_or(b"");
    let Some(len) = valid_host_len(value) else {
        return Err((400, "client sent invalid host header".into()));
    };
    if !r.headers_in.host.is_empty() {
        return Ok(false); // the request line named the host
    }
    // into the request's own vector: its capacity is kept from request to request
    // copied, then lowered in place: two loops over the whole run, not a push per byte
    r.headers_in.host.extend_from_slice(value.get(..len).unwrap_or(value));
    r.headers_in.host.make_ascii_lowercase();
    Ok(true)
}

/// nginx: `ngx_http_process_connection()`: "close" anywhere in the value (any case) wins
/// over "keep-alive"; the last `Connection` header that names either decides.
fn process_connection(r: &mut Request, value: std::ops::Range<usize>) {
    // compared case-insensitively in place (nginx's `ngx_strcasestrn`): no lowercased copy
    let value = r.header_in.mem.get(value).unwrap_or(b"");
    let has = |needle: &[u8]| value.windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle));
    if has(b"close") {
        r.headers_in.connection_close = true;
        r.headers_in.connection_keep_alive = false;
    } else if has(b"keep-alive") {
        r.headers_in.connection_close = false;
        r.headers_in.connection_keep_alive = true;
    }
}

/// nginx: `ngx_http_process_unique_header_line()`
fn process_unique_header_line(r: &mut Request, i: usize, slot: usize) -> Result<(), Refusal> {
    match r.headers_in.unique.get(slot).copied().flatten() {
        None => {
            if let Some(s) = r.headers_in.unique.get_mut(slot) {
                *s = Some(i);
            }
            Ok(())
        }
        Some(prev) => {
            let msg = format!(
                "client sent duplicate header line: \"{}\", previous value: \"{}\"",
                header_text(r, i),
                header_text(r, prev)
            );
            Err((400, msg))
        }
    }
}

/// The value of the unique header in `slot`, if sent.
fn unique_value(r: &Request, slot: usize) -> Option<&[u8]> {
    let i = r.headers_in.unique.get(slot).copied().flatten()?;
    let (_, v) = r.head.headers.get(i)?;
    r.header_in.mem.get(v.clone())
}

/// nginx: `ngx_atoof()`: decimal digits only, at least one, within `off_t`.
fn atoof(v: &[u8]) -> Option<u64> {
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut n: u64 = 0;
    for &d in v {
        n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    (n <= i64::MAX as u64).then_some(n)
}

/// The checks nginx makes once the whole head is in: `Host` for HTTP/1.1, the body framing
/// (a bad `Content-Length`, `Transfer-Encoding` on HTTP/1.0, both headers at once, a coding
/// other than exactly "chunked": 501), CONNECT and TRACE (405).
///
/// nginx: `ngx_http_process_request_header()`
pub(super) fn process_request_header(r: &mut Request) -> Result<(), Refusal> {
    let refuse = |status: u16, msg: &str| Err((status, msg.to_string()));
    if r.headers_in.host_line.is_none() && r.http_version > 1000 {
        return refuse(400, "client sent HTTP/1.1 request without \"Host\" header");
    }
    if let Some(v) = unique_value(r, CONTENT_LENGTH) {
        match atoof(v) {
            Some(n) => r.headers_in.content_length_n = Some(n),
            None => return refuse(400, "client sent invalid \"Content-Length\" header"),
        }
    }
    if let Some(te) = unique_value(r, TRANSFER_ENCODING) {
        if r.http_version < 1001 {
            return refuse(400, "client sent HTTP/1.0 request with \"Transfer-Encoding\" header");
        }
        if !te.eq_ignore_ascii_case(b"chunked") {
            let msg = format!("client sent unknown \"Transfer-Encoding\": \"{}\"", String::from_utf8_lossy(te));
            return Err((501, msg));
        }
        if r.headers_in.content_length_n.is_some() {
            return refuse(400, "client sent \"Content-Length\" and \"Transfer-Encoding\" headers at the same time");
        }
        r.headers_in.chunked = true;
    }
    r.headers_in.expect_continue = unique_value(r, EXPECT).is_some_and(|v| v.eq_ignore_ascii_case(b"100-continue"));
    match r.method {
        parse::Method::Connect => refuse(405, "client sent CONNECT method"),
        parse::Method::Trace => refuse(405, "client sent TRACE method"),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_host_as_nginx() {
        let ok: &[(&[u8], &[u8])] = &[
            (b"Example.COM", b"example.com"),
            (b"a.", b"a"),
            (b".a", b".a"),
            (b"a:b:c", b"a"),
            (b"h.example.com.:8080", b"h.example.com"),
            (b"[::1]:80", b"[::1]"),
            (b"[::1", b"[::1"),
            (b"a\\b", b"a\\b"),
            (b"a\x80b", b"a\x80b"),
            (b"h_x", b"h_x"),
        ];
        for (h, want) in ok {
            assert_eq!(validate_host(h).as_deref(), Some(*want), "{h:?}");
        }
        for bad in [&b""[..], b".", b"..", b"a..", b"a..b", b":80", b"a/b", b"a b", b"a\tb", b"a\x7f", b"a\x01"] {
            assert_eq!(validate_host(bad), None, "{bad:?}");
        }
    }

    /// nginx's loop as it was written before `valid_host_len` took two passes.
    fn valid_host_len_reference(host: &[u8]) -> Option<usize> {
        let (mut dot_pos, mut host_len) = (None, host.len());
        let (mut literal, mut rest) = (false, false);
        for (i, &ch) in host.iter().enumerate() {
            match ch {
                b'.' => {
                    if i > 0 && dot_pos == Some(i - 1) {
                        return None;
                    }
                    dot_pos = Some(i);
                }
                b':' if !literal && !rest => {
                    host_len = i;
                    rest = true;
                }
                b'[' if i == 0 => literal = true,
                b']' if literal && !rest => {
                    host_len = i + 1;
                    literal = false;
                    rest = true;
                }
                b'/' => return None,
                _ if ch <= 0x20 || ch == 0x7f => return None,
                _ => {}
            }
        }
        if host_len > 0 && dot_pos == Some(host_len - 1) {
            host_len -= 1;
        }
        (host_len > 0).then_some(host_len)
    }

    /// `valid_host_len` answers as nginx's one loop on random hosts of the bytes that matter.
    #[test]
    fn valid_host_len_agrees_with_one_loop() {
        use crate::http::parse::{random_bytes, xorshift};
        let mut seed = 41;
        for _ in 0..400_000 {
            let n = (xorshift(&mut seed) % 24) as usize;
            let host = random_bytes(&mut seed, b"a1.:[]/ \x7f\x80-", n);
            assert_eq!(valid_host_len(&host), valid_host_len_reference(&host), "{host:?}");
        }
    }

    #[test]
    fn atoof_as_nginx() {
        assert_eq!(atoof(b"0"), Some(0));
        assert_eq!(atoof(b"03"), Some(3));
        assert_eq!(atoof(b"9223372036854775807"), Some(i64::MAX as u64));
        for bad in [&b""[..], b"+3", b"-1", b"3 ", b"1x", b"9223372036854775808", b"99999999999999999999"] {
            assert_eq!(atoof(bad), None, "{bad:?}");
        }
    }
}
