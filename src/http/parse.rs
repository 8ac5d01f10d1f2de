//! HTTP/1 wire parsers: what they share (`ParseError`), and the one path every caller names
//! them by (`http::parse::*`).
//!
//! - `parse_request.rs`, `parse_request_header.rs`: the client request line and header lines,
//!   resumable byte by byte (`ngx_http_parse_request_line()`, `ngx_http_parse_header_line()`).
//! - `parse_status.rs`: the upstream status line and header lines.
//! - `parse_chunked.rs`: chunked bodies, both directions (`ngx_http_parse_chunked()`).
//! - `parse_uri.rs`: splitting and normalising the request URI (`ngx_http_parse_complex_uri()`).
//!
//! Every parser is incremental in nginx's sense: given a partial input it answers `Again`
//! (NGX_AGAIN) and the caller reads more bytes and calls again. None of them panics, whatever
//! the bytes; malformed input is an `Err(ParseError)` whose `Display` is nginx's log string.
//!
//! nginx: src/http/ngx_http_parse.c
//!
//! Differs from nginx: see each file's header.

use std::fmt;

pub use super::parse_chunked::{Chunked, ChunkedDecoder, ChunkedState};
pub use super::parse_request::{
    parse_request_head, Method, RequestHead, RequestHeaderLine, RequestHeaderState, RequestLineState,
};
pub use super::parse_status::{parse_header_line, parse_status_line, HeaderLine, StatusLine};
pub use super::parse_uri::{normalize_uri, split_target};

/// Why a parser gave up. One variant per distinct nginx reaction.
///
/// nginx: the NGX_HTTP_PARSE_* codes (src/http/ngx_http_request.h) and NGX_ERROR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// Bad chunked framing: non-hex size, size overflow or over the decoder's limit, junk
    /// after a size or after chunk data. nginx: NGX_ERROR from `ngx_http_parse_chunked()`;
    /// the upstream side logs "upstream sent invalid chunked response" instead.
    InvalidChunk,
    /// The upstream response does not start with "HTTP/": not HTTP/1.x at all.
    /// nginx: NGX_ERROR from `ngx_http_parse_status_line()` → HTTP/0.9 fallback.
    NoValidStatusLine,
    /// "HTTP/" was there but the rest of the line is malformed (bad version, status code
    /// not exactly 3 digits, junk after the code). nginx does not distinguish this from
    /// `NoValidStatusLine`: both are NGX_ERROR and `ngx_http_proxy_process_status_line()`
    /// applies the same HTTP/0.9 fallback; rginx keeps them apart for the debug log only.
    InvalidStatusLine,
    /// A response (or trailer) header line nginx rejects. nginx: NGX_HTTP_PARSE_INVALID_HEADER
    /// → NGX_HTTP_UPSTREAM_INVALID_HEADER (tries the next upstream, else 502).
    InvalidHeader,
    /// Malformed request line. nginx: NGX_HTTP_PARSE_INVALID_REQUEST → 400.
    InvalidRequest,
    /// A method byte outside `A-Z`, `_`, `-`. nginx: NGX_HTTP_PARSE_INVALID_METHOD → 400.
    InvalidMethod,
    /// HTTP/2 or later on an HTTP/1 connection. nginx: NGX_HTTP_PARSE_INVALID_VERSION → 505.
    InvalidVersion,
    /// An HTTP/0.9 request line ("POST /") with another method than GET.
    /// nginx: NGX_HTTP_PARSE_INVALID_09_METHOD → 400.
    InvalidMethod09,
    /// A request header line nginx rejects. nginx: NGX_HTTP_PARSE_INVALID_HEADER → 400.
    InvalidRequestHeader,
    /// `normalize_uri` failed: ".." above the root, bad or truncated `%XX`, `%00`, or a path
    /// not starting with '/'. nginx: NGX_HTTP_PARSE_INVALID_REQUEST from
    /// `ngx_http_parse_complex_uri()` → 400.
    InvalidUri,
}

impl ParseError {
    /// The status nginx answers with. Client-side errors: 400, or 505 for `InvalidVersion`.
    /// Upstream-side errors: 502, what the client gets once nginx gives up on the upstream
    /// (a bad status line normally never gets here: it means an HTTP/0.9 200 response).
    ///
    /// nginx: `ngx_http_process_request_line()`, `ngx_http_process_request_headers()`,
    /// `ngx_http_upstream_next()`.
    pub fn status(&self) -> u16 {
        match self {
            ParseError::InvalidVersion => 505,
            ParseError::NoValidStatusLine | ParseError::InvalidStatusLine | ParseError::InvalidHeader => 502,
            ParseError::InvalidChunk
            | ParseError::InvalidRequest
            | ParseError::InvalidMethod
            | ParseError::InvalidMethod09
            | ParseError::InvalidRequestHeader
            | ParseError::InvalidUri => 400,
        }
    }
}

/// nginx's log strings (`ngx_http_client_errors[]`, the proxy module's messages).
impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ParseError::InvalidChunk => "client sent invalid chunked body",
            ParseError::NoValidStatusLine | ParseError::InvalidStatusLine => "upstream sent no valid HTTP/1.0 header",
            ParseError::InvalidHeader => "upstream sent invalid header",
            ParseError::InvalidRequest | ParseError::InvalidUri => "client sent invalid request",
            ParseError::InvalidMethod => "client sent invalid method",
            ParseError::InvalidVersion => "client sent invalid version",
            ParseError::InvalidMethod09 => "client sent invalid method in HTTP/0.9 request",
            ParseError::InvalidRequestHeader => "client sent invalid header line",
        })
    }
}

impl std::error::Error for ParseError {}

/// The value of one hex digit, either case.
pub(super) fn hex_digit(ch: u8) -> Option<u8> {
    match ch {
        b'0'..=b'9' => Some(ch - b'0'),
        b'a'..=b'f' => Some(ch - b'a' + 10),
        b'A'..=b'F' => Some(ch - b'A' + 10),
        _ => None,
    }
}

/// Word-at-a-time scanning (SWAR): eight bytes of the buffer as one little-endian `u64`,
/// byte `p` in the low lane, so the lowest flagged lane is the first byte in the buffer.
pub(super) const ONES: u64 = 0x0101_0101_0101_0101;
pub(super) const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The 8 bytes at `buf[p..p + 8]` as a little-endian word; `None` when fewer remain.
#[inline]
pub(super) fn word_at(buf: &[u8], p: usize) -> Option<u64> {
    let bytes: &[u8; 8] = buf.get(p..)?.first_chunk()?;
    Some(u64::from_le_bytes(*bytes))
}

/// The high bit of each lane of `x` whose byte is below `n` (`n` <= 0x80). A borrow can
/// flag a lane only above a truly flagged one, so the lowest flagged lane is exact, which is
/// all `run_end` uses.
#[inline]
pub(super) const fn lanes_below(x: u64, n: u8) -> u64 {
    x.wrapping_sub(ONES * n as u64) & !x & HIGHS
}

/// The end of the run of bytes at `buf[p..]` that `plain` says are plain: the first byte that
/// is not, or `buf.len()`. Eight bytes at a time while `stops(word)` flags no lane; `stops`
/// must flag every lane whose byte is not plain (it may flag more: a flagged byte is looked
/// up in `plain`, and the scan goes on after it if it is plain). The last < 8 bytes go one
/// at a time. Gives exactly what the byte loop over `plain` gives.
#[inline(always)]
pub(super) fn run_end(buf: &[u8], mut p: usize, plain: &[bool; 256], stops: impl Fn(u64) -> u64) -> usize {
    while let Some(w) = word_at(buf, p) {
        let m = stops(w);
        if m == 0 {
            p += 8;
            continue;
        }
        p += (m.trailing_zeros() / 8) as usize;
        match buf.get(p) {
            Some(&ch) if plain[usize::from(ch)] => p += 1,
            _ => return p,
        }
    }
    while let Some(&ch) = buf.get(p) {
        if !plain[usize::from(ch)] {
            break;
        }
        p += 1;
    }
    p
}

/// Bytes of a header value up to its line end: all but NUL, LF and CR (trailing SP and HTAB
/// are trimmed by the callers).
pub(super) static VALUE_BYTE: [bool; 256] = {
    let mut t = [true; 256];
    t[0] = false;
    t[b'\n' as usize] = false;
    t[b'\r' as usize] = false;
    t
};

/// The end of a header value at `buf[p..]`: the first NUL, CR or LF, or `buf.len()`. A word
/// with no byte below 0x0e has none of the three (a HTAB or other control is looked at alone).
#[inline]
pub(super) fn value_end(buf: &[u8], p: usize) -> usize {
    run_end(buf, p, &VALUE_BYTE, |w| lanes_below(w, 0x0e))
}

/// xorshift64*: the deterministic byte source of the parsers' property tests (no crate).
#[cfg(test)]
pub(super) fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

/// `n` random bytes drawn from `alphabet`.
#[cfg(test)]
pub(super) fn random_bytes(seed: &mut u64, alphabet: &[u8], n: usize) -> Vec<u8> {
    (0..n).map(|_| alphabet[(xorshift(seed) % alphabet.len() as u64) as usize]).collect()
}

/// A long plain header line for the fast paths' agreement tests: a name of 1..=`name.1` bytes
/// from `name.0`, ": ", a value of up to 29 bytes from `value`, CRLF or LF, then `next`; up
/// to two bytes anywhere replaced by bytes of `special`. Returns it with a cut point up to 11
/// bytes before its end (a line that has not all arrived).
#[cfg(test)]
pub(super) fn random_header_line(
    seed: &mut u64,
    name: (&[u8], u64),
    value: &[u8],
    next: &[u8],
    special: &[u8],
) -> (Vec<u8>, usize) {
    let name_len = 1 + (xorshift(seed) % name.1) as usize;
    let mut buf = random_bytes(seed, name.0, name_len);
    buf.extend_from_slice(b": ");
    let value_len = (xorshift(seed) % 30) as usize;
    buf.extend(random_bytes(seed, value, value_len));
    buf.extend_from_slice(if xorshift(seed).is_multiple_of(2) { b"\r\n" } else { b"\n" });
    buf.extend_from_slice(next);
    for _ in 0..xorshift(seed) % 3 {
        let at = (xorshift(seed) % buf.len() as u64) as usize;
        buf[at] = special[(xorshift(seed) % special.len() as u64) as usize];
    }
    let cut = buf.len() - (xorshift(seed) % 12) as usize;
    (buf, cut)
}

/// Random cut points: the lengths at which successive reads end, ending with `len`.
#[cfg(test)]
pub(super) fn random_arrivals(seed: &mut u64, len: usize) -> Vec<usize> {
    let mut cuts: Vec<usize> = (0..xorshift(seed) % 6).map(|_| (xorshift(seed) % (len as u64 + 1)) as usize).collect();
    cuts.push(len);
    cuts.sort_unstable();
    cuts
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The byte loop `value_end` replaces.
    fn value_end_bytewise(buf: &[u8], mut p: usize) -> usize {
        while buf.get(p).is_some_and(|&c| VALUE_BYTE[usize::from(c)]) {
            p += 1;
        }
        p
    }

    /// Every byte value at every position of a line, alone and followed by every byte that
    /// stops a value (so a flagged but plain byte, e.g. HTAB, is passed over): `value_end`
    /// answers as the byte loop, from every start, with the word path and the < 8 tail.
    #[test]
    fn value_end_agrees_with_byte_loop() {
        for b in 0..=255u8 {
            for stop in [0u8, b'\n', b'\r', b'a'] {
                for i in 0..20 {
                    let mut buf = vec![b'v'; 20];
                    buf[i] = b;
                    if i + 1 < buf.len() {
                        buf[i + 1] = stop;
                    }
                    for start in 0..buf.len() {
                        assert_eq!(value_end(&buf, start), value_end_bytewise(&buf, start), "{buf:?} {start}");
                    }
                }
            }
        }
    }

    /// `lanes_below` flags the lowest lane below `n` exactly, whatever the other lanes hold.
    #[test]
    fn lanes_below_lowest_lane_exact() {
        let mut seed = 5;
        for _ in 0..200_000 {
            let w = xorshift(&mut seed);
            for n in [0x0e, 0x21, 0x80, 1] {
                let first = w.to_le_bytes().iter().position(|&c| c < n);
                let m = lanes_below(w, n);
                let got = (m != 0).then(|| (m.trailing_zeros() / 8) as usize);
                assert_eq!(got, first, "{w:#x} {n}");
            }
        }
    }
}
