//! The request URI: splitting the target into path and args, and normalising the path.
//!
//! nginx: src/http/ngx_http_parse.c (`ngx_http_parse_complex_uri()`), src/http/ngx_http_request.c
//! (`ngx_http_process_request_uri()`)
//!
//! Differs from nginx:
//! - `normalize_uri` is `ngx_http_parse_complex_uri()` with `merge_slashes on` and without
//!   the Win32 backslash rules; it takes only the path (`split_target` cuts the args off).

use super::parse::{hex_digit, ParseError};

/// States of `ngx_http_parse_complex_uri()`; `sw_quoted`/`sw_quoted_second` are folded into
/// an inline `%XX` decode.
#[derive(Clone, Copy, PartialEq, Eq)]
enum UriState {
    Usual,
    Slash,
    Dot,
    DotDot,
}

/// Normalises a request path into `out` (cleared first): decodes `%XX`, merges "//"
/// (nginx's `merge_slashes on`), resolves "." and ".." segments.
///
/// `path` is the path part of the request target (see `split_target`) and must start with
/// '/'. A raw '?' or '#' ends it, as in nginx. Decoded bytes are re-examined like raw ones
/// ("%2e%2e" is "..", "%2F" is a '/'), except decoded '%', '#' and '?', which are plain
/// data. The result may hold any byte but NUL.
///
/// # Errors
/// `InvalidUri` (nginx answers 400) when ".." climbs above the root, on `%00`, on a '%' not
/// followed by two hex digits, and when `path` does not start with '/'.
///
/// nginx: `ngx_http_parse_complex_uri()`
pub fn normalize_uri(path: &[u8], out: &mut Vec<u8>) -> Result<(), ParseError> {
    out.clear();
    if path.first() != Some(&b'/') {
        return Err(ParseError::InvalidUri);
    }
    out.reserve(path.len());
    out.push(b'/');
    let mut state = UriState::Slash;
    let mut i = 1;
    while i < path.len() {
        let mut ch = path[i];
        i += 1;
        match ch {
            b'?' | b'#' => break,
            b'%' => {
                ch = percent_decode(path, i)?;
                i += 2;
                if matches!(ch, b'%' | b'#' | b'?') {
                    out.push(ch);
                    state = UriState::Usual;
                    continue;
                }
            }
            _ => {}
        }
        state = uri_step(state, ch, out)?;
    }
    match state {
        UriState::Dot => {
            out.pop();
        }
        UriState::DotDot => uri_parent(out)?,
        UriState::Usual | UriState::Slash => {}
    }
    Ok(())
}

/// The byte encoded by the two hex digits at `path[i..i + 2]`; NUL is refused.
///
/// nginx: `sw_quoted`, `sw_quoted_second`
fn percent_decode(path: &[u8], i: usize) -> Result<u8, ParseError> {
    let hi = path.get(i).copied().and_then(hex_digit);
    let lo = path.get(i + 1).copied().and_then(hex_digit);
    match (hi, lo) {
        (Some(hi), Some(lo)) if hi | lo != 0 => Ok(hi << 4 | lo),
        _ => Err(ParseError::InvalidUri),
    }
}

/// One (decoded) byte of the path through nginx's `sw_usual`/`sw_slash`/`sw_dot`/
/// `sw_dot_dot` states.
fn uri_step(state: UriState, ch: u8, out: &mut Vec<u8>) -> Result<UriState, ParseError> {
    let next = match (state, ch) {
        (UriState::Slash, b'/') => UriState::Slash, // merge_slashes: drop it
        (UriState::Dot, b'/') => {
            out.pop(); // "/./" → "/"
            UriState::Slash
        }
        (UriState::DotDot, b'/') => {
            uri_parent(out)?;
            UriState::Slash
        }
        (_, b'/') => {
            out.push(b'/');
            UriState::Slash
        }
        (UriState::Slash, b'.') => {
            out.push(b'.');
            UriState::Dot
        }
        (UriState::Dot, b'.') => {
            out.push(b'.');
            UriState::DotDot
        }
        _ => {
            out.push(ch);
            UriState::Usual
        }
    };
    Ok(next)
}

/// `out` ends with "/..": drop it and the segment before it, keeping that segment's '/'.
/// nginx: `u -= 4; for (;;) { if (u < r->uri.data) return INVALID; if (*u == '/') ... }`
fn uri_parent(out: &mut Vec<u8>) -> Result<(), ParseError> {
    let before_dots = out.len().checked_sub(3).ok_or(ParseError::InvalidUri)?;
    match out[..before_dots].iter().rposition(|&b| b == b'/') {
        Some(slash) => {
            out.truncate(slash + 1);
            Ok(())
        }
        None => Err(ParseError::InvalidUri), // ".." above the root
    }
}

/// Splits a request target "path?args#fragment" into the path and the args (without '?',
/// cut at '#'), and reports whether the path needs `normalize_uri`: it contains '%', "//"
/// or "/." (which covers "/./", "/../" and a trailing "/." or "/.."), or does not start
/// with '/' (then `normalize_uri` refuses it: absolute-form targets must have their
/// "scheme://host" stripped by the caller first).
///
/// A '#' before any '?' ends the path and there are no args, as in nginx.
///
/// nginx: the `complex_uri`/`quoted_uri`/`args_start` bookkeeping of
/// `ngx_http_parse_request_line()`, `ngx_http_split_args()`
pub fn split_target(target: &[u8]) -> (&[u8], Option<&[u8]>, bool) {
    let path_end = target.iter().position(|&b| b == b'?' || b == b'#').unwrap_or(target.len());
    let path = &target[..path_end];
    let args = match target.get(path_end) {
        Some(b'?') => {
            let rest = &target[path_end + 1..];
            let end = rest.iter().position(|&b| b == b'#').unwrap_or(rest.len());
            Some(&rest[..end])
        }
        _ => None,
    };
    let mut complex = path.first() != Some(&b'/');
    let mut prev = 0u8;
    for &b in path {
        if b == b'%' || (prev == b'/' && (b == b'/' || b == b'.')) {
            complex = true;
            break;
        }
        prev = b;
    }
    (path, args, complex)
}

#[cfg(test)]
mod tests {
    use super::*;

    // ----- URI -----

    fn norm(path: &[u8]) -> Result<Vec<u8>, ParseError> {
        let mut out = b"garbage".to_vec();
        normalize_uri(path, &mut out).map(|()| out)
    }

    #[test]
    fn normalize_uri_cases() {
        let good: &[(&[u8], &[u8])] = &[
            (b"/", b"/"),
            (b"/a/../b", b"/b"),
            (b"/a/./b", b"/a/b"),
            (b"//a", b"/a"),
            (b"/a//b///c", b"/a/b/c"),
            (b"/a/b/..", b"/a/"),
            (b"/a/..", b"/"),
            (b"/a/b/.", b"/a/b/"),
            (b"/a/%2e%2e/b", b"/b"),
            (b"/a/.%2E/b", b"/b"),
            (b"/%2e", b"/"),
            (b"/a%2Fb", b"/a/b"),
            (b"/a%2F%2fb", b"/a/b"),
            (b"/%41%62", b"/Ab"),
            (b"/%25", b"/%"),
            (b"/%2541", b"/%41"),
            (b"/%3F", b"/?"),
            (b"/%23x", b"/#x"),
            (b"/...", b"/..."),
            (b"/a/.b/..c", b"/a/.b/..c"),
            (b"/a.b/c.", b"/a.b/c."),
            (b"/a?b/../..", b"/a"),
            (b"/a/..#x", b"/"),
            (b"/%ff%20", b"/\xff "),
            (b"/a/b/../../c/./d/", b"/c/d/"),
        ];
        for (path, want) in good {
            assert_eq!(norm(path).as_deref(), Ok(*want), "{path:?}");
        }
        let bad: &[&[u8]] = &[
            b"/..",
            b"/../",
            b"/a/../..",
            b"/a/../../b",
            b"/%2e%2e/",
            b"/.%2e",
            b"/%00",
            b"/a%00b",
            b"/%",
            b"/%4",
            b"/%zz",
            b"/%g0",
            b"a/b",
            b"",
            b"/a/b/../../..",
        ];
        for path in bad {
            assert_eq!(norm(path), Err(ParseError::InvalidUri), "{path:?}");
        }
    }

    #[test]
    fn split_target_cases() {
        assert_eq!(split_target(b"/a/b"), (&b"/a/b"[..], None, false));
        assert_eq!(split_target(b"/a?x=1&y"), (&b"/a"[..], Some(&b"x=1&y"[..]), false));
        assert_eq!(split_target(b"/a?"), (&b"/a"[..], Some(&b""[..]), false));
        assert_eq!(split_target(b"/a?x#frag"), (&b"/a"[..], Some(&b"x"[..]), false));
        assert_eq!(split_target(b"/a#f?x"), (&b"/a"[..], None, false));
        assert_eq!(split_target(b"/a.b/c?x=/../"), (&b"/a.b/c"[..], Some(&b"x=/../"[..]), false));
        for complex in [&b"/a%20b"[..], b"//a", b"/a/./b", b"/a/../b", b"/a/.", b"/a/..", b"/.h", b"*"] {
            assert!(split_target(complex).2, "{complex:?}");
        }
        assert!(split_target(b"").2);
        assert!(split_target(b"?a").2);
    }

    #[test]
    fn any_bytes_never_panic() {
        use crate::http::parse::{random_bytes, xorshift};
        let all: Vec<u8> = (0..=255).collect();
        let (mut seed, mut out) = (9, Vec::new());
        for _ in 0..20_000 {
            let n = (xorshift(&mut seed) % 40) as usize;
            let mut buf = random_bytes(&mut seed, b"/.%2eE0fF?#a", n);
            if n.is_multiple_of(3) {
                buf = random_bytes(&mut seed, &all, n);
            }
            let _ = normalize_uri(&buf, &mut out);
            let _ = split_target(&buf);
        }
    }
}
