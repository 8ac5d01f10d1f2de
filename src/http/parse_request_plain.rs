//! The client request line's fast path: a whole, plain "GET /path HTTP/1.1" line parsed in
//! tight loops, the state machine of parse_request.rs (same `RequestHead`, a third `impl`
//! block) taking every other line.
//!
//! nginx: src/http/ngx_http_parse.c (`ngx_http_parse_request_line()`); nginx has no such
//! path: its `sw_*` cases are its inner loops.
//!
//! Differs from nginx: nothing seen from outside (the same fields, offsets and answers as
//! the state machine; tests compare the two).

use super::parse::ParseError;
use super::parse_request::{Method, RequestHead, RequestLineState, USUAL};
use crate::core::step::Step;

impl RequestHead {
    /// The fast path of `parse_request_line`: a whole line "METHOD /path[?args] HTTP/1.d"
    /// ended by CRLF or LF, at `self.pos`, in tight loops with no per-byte state. The method
    /// is `A-Z` only; the path takes `USUAL` bytes, '+', and '/' or '.' not after a '/';
    /// the args any byte but controls, SP, DEL and '#'; one SP on each side of the target.
    /// Anything else (the buffer ends mid-line, empty lines first, "//", "/.", '%', '#', an
    /// absolute-form target, HTTP/0.9, another version, extra spaces, an error) gives
    /// `None` with nothing changed, and the state machine parses the line from its start:
    /// so this path accepts a subset of what it accepts, and sets the same fields (it
    /// commits them and ends in `line_done`, as the state machine does). nginx has no such
    /// path.
    #[inline]
    pub(super) fn plain_request_line(&mut self, buf: &[u8]) -> Option<Result<Step, ParseError>> {
        let start = self.pos;
        let line = buf.get(start..)?;
        // sw_method
        let m = line.iter().position(|c| !c.is_ascii_uppercase())?;
        if m == 0 || *line.get(m)? != b' ' || *line.get(m + 1)? != b'/' {
            return None;
        }
        let (uri, mut p) = (m + 1, m + 2);
        // sw_after_slash_in_uri (after_slash) and sw_check_uri
        let mut after_slash = true;
        let mut args = None;
        loop {
            let ch = *line.get(p)?;
            p += 1;
            if USUAL[usize::from(ch)] {
                after_slash = false;
                continue;
            }
            match ch {
                b'/' | b'.' if after_slash => return None,
                b'/' => after_slash = true,
                b'.' | b'+' => {}
                b'?' => {
                    args = Some(p);
                    break;
                }
                b' ' => {
                    p -= 1;
                    break;
                }
                _ => return None,
            }
        }
        if args.is_some() {
            // sw_uri: what is left of the target
            while !matches!(*line.get(p)?, 0..=b' ' | b'#' | 0x7f) {
                p += 1;
            }
            if *line.get(p)? != b' ' {
                return None;
            }
        }
        // sw_http_09 .. sw_almost_done: "HTTP/1.d" then CRLF or LF
        let v = p + 1;
        if line.get(v..v + 7)? != b"HTTP/1." {
            return None;
        }
        let minor = line.get(v + 7)?.wrapping_sub(b'0');
        let (lf, state) = match *line.get(v + 8)? {
            _ if minor > 9 => return None,
            b'\n' => (v + 8, RequestLineState::MinorDigit),
            b'\r' if *line.get(v + 9)? == b'\n' => (v + 9, RequestLineState::AlmostDone),
            _ => return None,
        };
        self.request_start = start;
        self.method_end = start + m - 1;
        self.method_code = Method::from_bytes(line.get(..m)?);
        self.uri_start = Some(start + uri);
        if let Some(a) = args {
            self.args_start = Some(start + a);
        }
        self.uri_end = Some(start + p);
        self.http_protocol = Some(start + v);
        (self.http_major, self.http_minor) = (1, u16::from(minor));
        self.state = state;
        Some(self.line_done(start + lf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::parse::{random_bytes, xorshift};

    /// The outcome and every field `RequestHead` holds after one call from `start`.
    fn run(buf: &[u8], start: usize, fast: bool) -> String {
        let mut h = RequestHead { pos: start, ..RequestHead::default() };
        let r = if fast { h.parse_request_line(buf) } else { h.parse_request_line_bytewise(buf) };
        format!("{r:?} {h:?}")
    }

    /// Plain lines with a few bytes that matter to either parser put anywhere, cut anywhere,
    /// from any start: the fast path (with the state machine behind it) leaves exactly what
    /// the state machine alone leaves: outcome, position, every offset and flag.
    #[test]
    fn fast_path_agrees_with_bytewise() {
        let mut seed = 37;
        let special = b"/.+?%# \t\r\n\0\x01\x7f\x80_-:HTP19[]ab";
        let methods: [&[u8]; 5] = [b"GET", b"HEAD", b"POST", b"PROPPATCH", b"X"];
        let mut accepted = 0;
        for round in 0..200_000 {
            let empty_lines = (xorshift(&mut seed) % 8 / 6) as usize;
            let mut buf = random_bytes(&mut seed, b"\r\n", empty_lines);
            let start = (xorshift(&mut seed) % 2) as usize * buf.len();
            buf.extend_from_slice(methods[(xorshift(&mut seed) % 5) as usize]);
            buf.extend_from_slice(b" /");
            let path_len = (xorshift(&mut seed) % 20) as usize;
            buf.extend(random_bytes(&mut seed, b"ab/.+?=&x", path_len));
            buf.extend_from_slice(b" HTTP/1.");
            buf.extend(random_bytes(&mut seed, b"01", 1));
            buf.extend_from_slice(if xorshift(&mut seed).is_multiple_of(2) { b"\r\n" } else { b"\n" });
            buf.extend_from_slice(b"Host: a\r\n\r\n");
            for _ in 0..xorshift(&mut seed) % 3 {
                let at = (xorshift(&mut seed) % buf.len() as u64) as usize;
                buf[at] = special[(xorshift(&mut seed) % special.len() as u64) as usize];
            }
            if round % 4 == 0 {
                let n = (xorshift(&mut seed) % 40) as usize;
                buf = random_bytes(&mut seed, b"GET /a.?% HTTP/1.0\r\n", n);
            }
            let cut = buf.len() - (xorshift(&mut seed) % 16).min(buf.len() as u64) as usize;
            let fast = run(&buf[..cut], start, true);
            assert_eq!(fast, run(&buf[..cut], start, false), "{:?} from {start}", String::from_utf8_lossy(&buf[..cut]));
            let mut h = RequestHead { pos: start, ..RequestHead::default() };
            accepted += usize::from(h.plain_request_line(&buf[..cut]).is_some());
        }
        // the fast path did take a good share of the lines, so the comparison means something
        assert!(accepted > 20_000, "{accepted}");
    }
}
