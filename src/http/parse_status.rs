//! Upstream response heads: the status line and header lines (also chunked trailers).
//!
//! nginx: src/http/ngx_http_parse.c (`ngx_http_parse_status_line()`,
//! `ngx_http_parse_header_line()` as called with `r->upstream` set)
//!
//! Differs from nginx:
//! - No parser state lives in the request: both parsers are pure functions of the buffer.
//!   `Again` leaves `*pos` where it was and the caller re-parses the (now longer) line from
//!   there. nginx keeps `r->state` and resumes mid-line; an upstream head is bounded by
//!   `proxy_buffer_size`, so re-scanning one line costs little. (The client side keeps its
//!   state: see `parse_request.rs`.)
//! - `parse_header_line` returns ranges; it does not lowercase the name or compute
//!   `r->header_hash` (callers compare names with `core::header_list::eq_nocase` or find them with
//!   `upstream::headers_in::find`).
//! - SP and HTAB are both trimmed around a value; nginx 1.22 trims only SP.

use std::ops::Range;

// VALUE_PLAIN: the bytes that leave `sw_value` (and `sw_space_after_value`) where it is:
// all but NUL, LF and CR. Trailing SP/HTAB are trimmed when the line ends.
use super::parse::{run_end, value_end, ParseError, VALUE_BYTE as VALUE_PLAIN};
use crate::core::step::Step;

/// A parsed upstream status line.
///
/// nginx: `ngx_http_status_t`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatusLine {
    /// `1000 * major + minor`, as nginx's `http_version`: 1001 for HTTP/1.1. (9, HTTP/0.9,
    /// is what the caller sets itself on the fallback; a status line cannot say it.)
    pub http_version: u16,
    /// The status code: exactly three digits, 000..=999. nginx does not check the range.
    pub code: u16,
    /// Start of the status code in `buf` (nginx: `status->start`).
    pub start: usize,
    /// End of the reason phrase, before CR/LF (nginx: `status->end`). `start..end` is
    /// "200 OK", nginx's `u->headers_in.status_line`; the whole line without CRLF is
    /// `*pos_before_the_call..end`.
    pub end: usize,
}

/// States of `ngx_http_parse_status_line()`; `Prefix(n)` covers `sw_start`..`sw_HTTP`
/// (n bytes of "HTTP/" matched).
#[derive(Clone, Copy)]
enum StatusState {
    Prefix(usize),
    FirstMajorDigit,
    MajorDigit,
    FirstMinorDigit,
    MinorDigit,
    Status,
    SpaceAfterStatus,
    StatusText,
    AlmostDone,
}

/// Parses the status line at `buf[*pos..]`.
///
/// # Returns
/// - `Done(StatusLine)`: `*pos` is advanced past the line's LF.
/// - `Again`: need more bytes; `*pos` is unchanged, call again with the same `*pos`.
/// - `Err(NoValidStatusLine | InvalidStatusLine)`: not an HTTP/1.x status line. nginx
///   (`ngx_http_proxy_process_status_line()`) logs "upstream sent no valid HTTP/1.0 header"
///   and treats the whole response, from `*pos`, as an HTTP/0.9 body with status 200 and
///   `connection_close`, for *either* error: `ngx_http_parse_status_line()` returns the
///   same NGX_ERROR for "not HTTP" and for "HTTP/1.1 2x0".
///
/// Rules (nginx's): "HTTP/", major 1..=999 with no leading zero, '.', minor 0..=999, one
/// space, optional further spaces, exactly 3 digits, then ' ' or '.' (IIS "403.1") and any
/// text, or the line end. CRLF or bare LF. Differs: a version whose `1000 * major + minor`
/// does not fit `u16` (major > 65) is rejected; nginx keeps it in an `ngx_uint_t`.
///
/// nginx: `ngx_http_parse_status_line()`
pub fn parse_status_line(buf: &[u8], pos: &mut usize) -> Result<Step<StatusLine>, ParseError> {
    if let Some((status, next)) = plain_status_line(buf, *pos) {
        *pos = next;
        return Ok(Step::Done(status));
    }
    parse_status_line_bytewise(buf, pos)
}

/// The fast path of `parse_status_line`: a whole "HTTP/1.d ddd" line, then ' ' or '.' and
/// any text, or nothing, ended by CRLF or LF. Anything else gives `None` and the state
/// machine parses the line (a subset of what it accepts, with the same answer).
#[inline]
fn plain_status_line(buf: &[u8], base: usize) -> Option<(StatusLine, usize)> {
    let line = buf.get(base..)?;
    let head = line.get(..12)?;
    let digit = |i: usize| head[i].wrapping_sub(b'0');
    if head[..7] != *b"HTTP/1." || head[8] != b' ' || [7, 9, 10, 11].iter().any(|&i| digit(i) > 9) {
        return None;
    }
    let code = u16::from(digit(9)) * 100 + u16::from(digit(10)) * 10 + u16::from(digit(11));
    let mut end = 12;
    if matches!(*line.get(end)?, b' ' | b'.') {
        // sw_status_text: anything up to CR or LF
        end += line.get(end..)?.iter().position(|&c| c == b'\r' || c == b'\n')?;
    }
    let next = match line[end] {
        b'\n' => end + 1,
        b'\r' if *line.get(end + 1)? == b'\n' => end + 2,
        _ => return None,
    };
    let http_version = 1000 + u16::from(digit(7));
    Some((StatusLine { http_version, code, start: base + 9, end: base + end }, base + next))
}

/// `parse_status_line` one byte at a time: every line the fast path leaves, and the
/// reference the fast path is tested against.
fn parse_status_line_bytewise(buf: &[u8], pos: &mut usize) -> Result<Step<StatusLine>, ParseError> {
    use StatusState::*;
    let base = *pos;
    let line = buf.get(base..).unwrap_or(&[]);
    let (mut major, mut minor, mut code, mut digits) = (0u32, 0u32, 0u16, 0);
    let mut status = StatusLine::default();
    let mut state = Prefix(0);
    let bad = ParseError::InvalidStatusLine;
    for (i, &ch) in line.iter().enumerate() {
        let p = base + i;
        state = match (state, ch) {
            (Prefix(n), _) if ch == b"HTTP/"[n] && n == 4 => FirstMajorDigit,
            (Prefix(n), _) if ch == b"HTTP/"[n] => Prefix(n + 1),
            (Prefix(_), _) => return Err(ParseError::NoValidStatusLine),
            (FirstMajorDigit, b'1'..=b'9') => {
                major = u32::from(ch - b'0');
                MajorDigit
            }
            (MajorDigit, b'.') => FirstMinorDigit,
            (MajorDigit, b'0'..=b'9') if major <= 99 => {
                major = major * 10 + u32::from(ch - b'0');
                MajorDigit
            }
            (FirstMinorDigit, b'0'..=b'9') => {
                minor = u32::from(ch - b'0');
                MinorDigit
            }
            (MinorDigit, b' ') => Status,
            (MinorDigit, b'0'..=b'9') if minor <= 99 => {
                minor = minor * 10 + u32::from(ch - b'0');
                MinorDigit
            }
            (Status, b' ') => Status,
            (Status, b'0'..=b'9') => {
                code = code * 10 + u16::from(ch - b'0');
                digits += 1;
                if digits < 3 {
                    Status
                } else {
                    status.start = p - 2;
                    SpaceAfterStatus
                }
            }
            (SpaceAfterStatus | StatusText, b'\r') => {
                status.end = p;
                AlmostDone
            }
            (SpaceAfterStatus | StatusText | AlmostDone, b'\n') => {
                if !matches!(state, AlmostDone) {
                    status.end = p;
                }
                let version = major * 1000 + minor;
                status.http_version = u16::try_from(version).map_err(|_| bad)?;
                status.code = code;
                *pos = p + 1;
                return Ok(Step::Done(status));
            }
            (SpaceAfterStatus, b' ' | b'.') => StatusText,
            (StatusText, _) => StatusText,
            _ => return Err(bad),
        };
    }
    Ok(Step::Again)
}

/// One line of a header section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderLine {
    /// A header: ranges into the buffer. The value has no leading or trailing SP/HTAB.
    Header {
        /// The name as sent (not lowercased).
        name: Range<usize>,
        /// The value, possibly empty.
        value: Range<usize>,
    },
    /// The empty line ending the header section (nginx: NGX_HTTP_PARSE_HEADER_DONE).
    End,
}

/// `end` moved back over the SP/HTAB that end `buf[start..end]`.
fn trim_end(buf: &[u8], start: usize, mut end: usize) -> usize {
    while end > start && matches!(buf[end - 1], b' ' | b'\t') {
        end -= 1;
    }
    end
}

/// Bytes that leave `sw_name` where it is: all but NUL..SP, DEL, ':' and '/' (which may
/// start IIS's "HTTP/" line); CR and LF are below SP.
static NAME_PLAIN: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0x21;
    while b < 256 {
        t[b] = b != 0x7f && b != b':' as usize && b != b'/' as usize;
        b += 1;
    }
    t
};

/// For the other states: look at every byte.
static NOTHING_PLAIN: [bool; 256] = [false; 256];

/// States of `ngx_http_parse_header_line()`.
#[derive(Clone, Copy)]
enum HeaderState {
    Start,
    Name,
    SpaceBeforeValue,
    /// Also nginx's `sw_space_after_value`: inner SP/HTAB are scanned over like other value
    /// bytes and the trailing ones trimmed at the line end, which yields nginx's
    /// `header_end`.
    Value,
    IgnoreLine,
    AlmostDone,
    HeaderAlmostDone,
}

/// The bytes that leave `state` where it is.
#[inline]
fn plain(state: HeaderState) -> &'static [bool; 256] {
    match state {
        HeaderState::Name => &NAME_PLAIN,
        HeaderState::Value => &VALUE_PLAIN,
        _ => &NOTHING_PLAIN,
    }
}

/// What `parse_header_line` has found so far in one call: the positions nginx keeps in
/// `r->header_name_start`, `header_name_end`, `header_start`, `header_end`.
struct HeaderScan {
    line_start: usize,
    name_end: usize,
    value: Range<usize>,
}

/// Parses one header line at `buf[*pos..]`, with the rules nginx applies to upstream
/// response headers (`ngx_http_parse_header_line(r, b, 1)`: underscores allowed).
///
/// # Returns
/// - `Done(Header{..})` or `Done(End)`: `*pos` is advanced past the line's LF.
/// - `Again`: the line is incomplete; `*pos` is unchanged.
/// - `Err(InvalidHeader)`: a line nginx rejects (logged "upstream sent invalid header").
///
/// Rules (nginx 1.22's): a name may not start with a byte <= 0x20, DEL or ':' (so obs-fold
/// continuation lines are errors), and may not contain a byte <= 0x20 or DEL (so "Name :"
/// is an error); other non-token bytes are accepted as nginx does for upstreams (it only
/// flags them `invalid_header`, which nothing checks upstream-side). A line without ':' is
/// a header with an empty value, as in nginx. SP/HTAB around the value are trimmed; NUL in
/// the value is an error, other bytes pass. CRLF, bare LF, and "CR CR LF" end a line; a CR
/// followed by anything else is an error. IIS's duplicate "HTTP/1.1 ..." lines are skipped
/// (nginx does that only when `r->upstream` is set; here always, trailers included).
///
/// nginx: `ngx_http_parse_header_line()`
#[inline]
pub fn parse_header_line(buf: &[u8], pos: &mut usize) -> Result<Step<HeaderLine>, ParseError> {
    if let Some((line, next)) = whole_line(buf, *pos) {
        *pos = next;
        return Ok(Step::Done(line));
    }
    parse_header_line_bytewise(buf, pos)
}

/// The fast path of `parse_header_line`: a complete, plain line "Name: value\r\n" (or
/// LF-ended, or the empty line) in one pass of tight loops, with no state. Anything else
/// (the buffer ends mid-line, a byte that is an error or a special case: IIS's "HTTP/", CR
/// not followed by LF, NUL) gives `None`, and the state machine parses the line from its
/// start: so this path accepts a subset of what it accepts, with the same answer.
/// nginx has no such path: its `sw_name`/`sw_value` cases are its inner loops.
#[inline(always)]
fn whole_line(buf: &[u8], base: usize) -> Option<(HeaderLine, usize)> {
    let mut p = base;
    match *buf.get(p)? {
        b'\r' if *buf.get(p + 1)? == b'\n' => return Some((HeaderLine::End, p + 2)),
        b'\n' => return Some((HeaderLine::End, p + 1)),
        _ => {}
    }
    // sw_start, sw_name: NAME_PLAIN excludes ':', the bytes that are errors and '/'
    p = name_end(buf, p);
    if p == base || *buf.get(p)? != b':' {
        return None;
    }
    let name = base..p;
    p += 1;
    // sw_space_before_value
    while matches!(*buf.get(p)?, b' ' | b'\t') {
        p += 1;
    }
    // sw_value: up to NUL, CR or LF
    let start = p;
    p = value_end(buf, p);
    let end = trim_end(buf, start, p);
    let value = start..end;
    match *buf.get(p)? {
        b'\n' => Some((HeaderLine::Header { name, value }, p + 1)),
        b'\r' if *buf.get(p + 1)? == b'\n' => Some((HeaderLine::Header { name, value }, p + 2)),
        _ => None,
    }
}

/// The end of the run of `NAME_PLAIN` bytes at `buf[p..]`, 8 at a time: a word stops on a
/// byte below 0x21, ':', '/' or DEL (each test exact up to its lowest flagged lane; the
/// bytes >= 0x80, plain, are never flagged).
#[inline]
fn name_end(buf: &[u8], p: usize) -> usize {
    run_end(buf, p, &NAME_PLAIN, |w| {
        const ONES: u64 = 0x0101_0101_0101_0101;
        let below = |c: u8| w.wrapping_sub(ONES * u64::from(c));
        let eq = |c: u8| (w ^ (ONES * u64::from(c))).wrapping_sub(ONES);
        // `!w & 0x80..`: the high bit of `w ^ c` is that of `w` for the c < 0x80 here
        (below(0x21) | eq(b':') | eq(b'/') | eq(0x7f)) & !w & 0x8080_8080_8080_8080
    })
}

/// `parse_header_line` one byte at a time: every line the fast path leaves, and the
/// reference the fast path is tested against.
fn parse_header_line_bytewise(buf: &[u8], pos: &mut usize) -> Result<Step<HeaderLine>, ParseError> {
    let base = *pos;
    let mut h = HeaderScan { line_start: base, name_end: base, value: base..base };
    let mut state = HeaderState::Start;
    let mut next = base;
    while next < buf.len() {
        // fast path: runs of plain name or value bytes change nothing but the position
        let plain = plain(state);
        while next < buf.len() && plain[usize::from(buf[next])] {
            next += 1;
        }
        let Some(&ch) = buf.get(next) else { break };
        let p = next;
        next += 1;
        if ch != b'\n' {
            state = h.step(state, buf, p, ch)?;
            continue;
        }
        let Some(line) = h.line_end(state, buf, p) else {
            state = HeaderState::Start; // an IIS status line skipped: the next line starts
            continue;
        };
        *pos = p + 1;
        return Ok(Step::Done(line));
    }
    Ok(Step::Again)
}

impl HeaderScan {
    /// The LF at `p` ends the line: the header found, `End` for the empty line, or `None`
    /// when the line was an IIS status line to skip.
    #[inline]
    fn line_end(&mut self, state: HeaderState, buf: &[u8], p: usize) -> Option<HeaderLine> {
        use HeaderState::*;
        match state {
            Start | HeaderAlmostDone => return Some(HeaderLine::End),
            IgnoreLine => return None,
            Name => (self.name_end, self.value) = (p, p..p),
            SpaceBeforeValue => self.value = p..p,
            Value => self.value.end = trim_end(buf, self.value.start, p),
            AlmostDone => {}
        }
        Some(HeaderLine::Header { name: self.line_start..self.name_end, value: self.value.clone() })
    }

    /// One byte `ch` (not LF) at `p`: the next state.
    #[inline]
    fn step(&mut self, state: HeaderState, buf: &[u8], p: usize, ch: u8) -> Result<HeaderState, ParseError> {
        use HeaderState::*;
        match state {
            Start => self.start(p, ch),
            Name => self.name(buf, p, ch),
            SpaceBeforeValue => self.space_before_value(p, ch),
            Value => self.value(buf, p, ch),
            IgnoreLine => Ok(IgnoreLine),
            // "CR CR LF" ends a line, as in nginx
            AlmostDone if ch == b'\r' => Ok(AlmostDone),
            AlmostDone | HeaderAlmostDone => Err(ParseError::InvalidHeader),
        }
    }

    /// nginx: `sw_start`. A CR starts the empty line; anything else but a control byte, DEL
    /// or ':' starts a name.
    #[inline]
    fn start(&mut self, p: usize, ch: u8) -> Result<HeaderState, ParseError> {
        match ch {
            b'\r' => Ok(HeaderState::HeaderAlmostDone),
            _ if ch <= 0x20 || ch == 0x7f || ch == b':' => Err(ParseError::InvalidHeader),
            _ => {
                self.line_start = p;
                Ok(HeaderState::Name)
            }
        }
    }

    /// nginx: `sw_name`, at a byte `NAME_PLAIN` stopped on.
    #[inline]
    fn name(&mut self, buf: &[u8], p: usize, ch: u8) -> Result<HeaderState, ParseError> {
        match ch {
            b':' => {
                self.name_end = p;
                Ok(HeaderState::SpaceBeforeValue)
            }
            b'\r' => {
                (self.name_end, self.value) = (p, p..p);
                Ok(HeaderState::AlmostDone)
            }
            // IIS may send the duplicate "HTTP/1.1 ..." lines
            b'/' if buf[self.line_start..p] == *b"HTTP" => Ok(HeaderState::IgnoreLine),
            _ if ch <= 0x20 || ch == 0x7f => Err(ParseError::InvalidHeader),
            _ => Ok(HeaderState::Name),
        }
    }

    /// nginx: `sw_space_before_value`.
    #[inline]
    fn space_before_value(&mut self, p: usize, ch: u8) -> Result<HeaderState, ParseError> {
        match ch {
            b' ' | b'\t' => Ok(HeaderState::SpaceBeforeValue),
            0 => Err(ParseError::InvalidHeader),
            b'\r' => {
                self.value = p..p;
                Ok(HeaderState::AlmostDone)
            }
            _ => {
                self.value = p..p;
                Ok(HeaderState::Value)
            }
        }
    }

    /// nginx: `sw_value` / `sw_space_after_value`, at a byte `VALUE_PLAIN` stopped on: NUL or
    /// CR (LF is the caller's).
    #[inline]
    fn value(&mut self, buf: &[u8], p: usize, ch: u8) -> Result<HeaderState, ParseError> {
        match ch {
            b'\r' => {
                self.value.end = trim_end(buf, self.value.start, p);
                Ok(HeaderState::AlmostDone)
            }
            _ => Err(ParseError::InvalidHeader),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // ----- status line + header lines -----

    const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nServer: rginx-test\r\nContent-Type:  text/html \r\n\
        X-Empty:\r\nX_Under: a b\r\nContent-Length: 4\r\nConnection: keep-alive\r\n\r\nBODY";

    #[derive(Debug, PartialEq)]
    struct Parsed {
        status: StatusLine,
        headers: Vec<(Vec<u8>, Vec<u8>)>,
        body_at: usize,
    }

    /// Drives status + header parsing over a buffer that grows to each of `arrivals`,
    /// like nginx's `u->buffer`; `pos` survives across arrivals as `b->pos` does.
    fn parse_response(input: &[u8], arrivals: &[usize]) -> Parsed {
        let (mut pos, mut status, mut headers) = (0, None, Vec::new());
        for &n in arrivals {
            let buf = &input[..n];
            if status.is_none() {
                match parse_status_line(buf, &mut pos).unwrap() {
                    Step::Again => continue,
                    Step::Done(s) => status = Some(s),
                }
            }
            loop {
                let before = pos;
                match parse_header_line(buf, &mut pos).unwrap() {
                    Step::Again => {
                        assert_eq!(pos, before);
                        break;
                    }
                    Step::Done(HeaderLine::End) => {
                        let status = status.unwrap();
                        return Parsed { status, headers, body_at: pos };
                    }
                    Step::Done(HeaderLine::Header { name, value }) => {
                        headers.push((buf[name].to_vec(), buf[value].to_vec()))
                    }
                }
            }
        }
        panic!("response head incomplete");
    }

    #[test]
    fn response_head_whole_and_split() {
        let whole = parse_response(RESPONSE, &[RESPONSE.len()]);
        assert_eq!(whole.status.http_version, 1001);
        assert_eq!(whole.status.code, 200);
        assert_eq!(&RESPONSE[whole.status.start..whole.status.end], b"200 OK");
        assert_eq!(&RESPONSE[whole.body_at..], b"BODY");
        let expect: Vec<(Vec<u8>, Vec<u8>)> = [
            ("Server", "rginx-test"),
            ("Content-Type", "text/html"),
            ("X-Empty", ""),
            ("X_Under", "a b"),
            ("Content-Length", "4"),
            ("Connection", "keep-alive"),
        ]
        .iter()
        .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect();
        assert_eq!(whole.headers, expect);
        for i in 0..=RESPONSE.len() {
            assert_eq!(parse_response(RESPONSE, &[i, RESPONSE.len()]), whole, "split at {i}");
        }
        let one_by_one: Vec<usize> = (0..=RESPONSE.len()).collect();
        assert_eq!(parse_response(RESPONSE, &one_by_one), whole);
    }

    fn status(line: &[u8]) -> Result<Step<StatusLine>, ParseError> {
        parse_status_line(line, &mut 0)
    }

    #[test]
    fn status_line_good() {
        let mut pos = 0;
        let buf = b"HTTP/1.0 404\nX";
        let s = parse_status_line(buf, &mut pos).unwrap();
        let want = StatusLine { http_version: 1000, code: 404, start: 9, end: 12 };
        assert_eq!((s, pos), (Step::Done(want), 13));
        let Ok(Step::Done(s)) = status(b"HTTP/1.1 403.1 Forbidden\r\n") else { panic!() };
        assert_eq!((s.code, s.start, s.end), (403, 9, 24));
        let Ok(Step::Done(s)) = status(b"HTTP/1.1   099 x\r\n") else { panic!() };
        assert_eq!(s.code, 99); // nginx takes any three digits
        let Ok(Step::Done(s)) = status(b"HTTP/65.535 200\r\n") else { panic!() };
        assert_eq!(s.http_version, 65535);
        // status line starting mid-buffer
        let mut pos = 4;
        let Ok(Step::Done(s)) = parse_status_line(b"junkHTTP/1.1 200 OK\r\n", &mut pos) else { panic!() };
        assert_eq!((s.start, s.end, pos), (13, 19, 21));
    }

    #[test]
    fn status_line_partial_is_again() {
        let full = b"HTTP/1.1 200 OK\r\n";
        for i in 0..full.len() {
            let mut pos = 0;
            assert_eq!(parse_status_line(&full[..i], &mut pos), Ok(Step::Again), "{i}");
            assert_eq!(pos, 0);
        }
        assert_eq!(parse_status_line(full, &mut 99), Ok(Step::Again)); // pos past the end
    }

    #[test]
    fn status_line_http09_fallback() {
        for input in [&b"<html>"[..], b"ICY 200 OK\r\n", b"http/1.1 200 OK\r\n", b"HTTP 200", b"\r\n"] {
            assert_eq!(status(input), Err(ParseError::NoValidStatusLine), "{input:?}");
        }
        let bad: &[&[u8]] = &[
            b"HTTP/1.1 20x OK\r\n",
            b"HTTP/1.1 2000 OK\r\n",
            b"HTTP/2 200 OK\r\n",
            b"HTTP/0.9 200 OK\r\n",
            b"HTTP/1.1200 OK\r\n",
            b"HTTP/1.1 200\rX",
            b"HTTP/1.1 200 OK\rX",
            b"HTTP/1.1 200-OK\r\n",
            b"HTTP/1000.1 200\r\n",
            b"HTTP/1.1000 200\r\n",
            b"HTTP/99.9 200\r\n", // 99009 does not fit u16
        ];
        for input in bad {
            assert_eq!(status(input), Err(ParseError::InvalidStatusLine), "{input:?}");
        }
    }

    fn header(line: &[u8]) -> Result<Step<HeaderLine>, ParseError> {
        parse_header_line(line, &mut 0)
    }

    fn header_pair(line: &[u8]) -> (&[u8], &[u8]) {
        match header(line) {
            Ok(Step::Done(HeaderLine::Header { name, value })) => (&line[name], &line[value]),
            other => panic!("{line:?}: {other:?}"),
        }
    }

    #[test]
    fn header_line_rules() {
        assert_eq!(header_pair(b"A:b\n"), (&b"A"[..], &b"b"[..]));
        assert_eq!(header_pair(b"A: \t b  c \t\r\n"), (&b"A"[..], &b"b  c"[..]));
        assert_eq!(header_pair(b"NoColon\r\n"), (&b"NoColon"[..], &b""[..]));
        assert_eq!(header_pair(b"Foo@bar.x: 1\r\n"), (&b"Foo@bar.x"[..], &b"1"[..]));
        assert_eq!(header_pair(b"A: b\r\r\n"), (&b"A"[..], &b"b"[..]));
        assert_eq!(header_pair(b"A: \x01\xff\r\n"), (&b"A"[..], &b"\x01\xff"[..]));
        assert_eq!(header_pair(b"HTTP/1.1 200 OK\r\nA: b\r\n"), (&b"A"[..], &b"b"[..]));
        let mut pos = 0;
        assert_eq!(parse_header_line(b"\r\nX", &mut pos), Ok(Step::Done(HeaderLine::End)));
        assert_eq!(pos, 2);
        assert_eq!(header(b"\n"), Ok(Step::Done(HeaderLine::End)));
        for partial in [&b""[..], b"A", b"A:", b"A: b", b"A: b\r", b"\r", b"HTTP/1.1 200 OK\r\n"] {
            assert_eq!(header(partial), Ok(Step::Again), "{partial:?}");
        }
        let bad: &[&[u8]] = &[
            b" folded\r\n",
            b"\tfolded\r\n",
            b":empty-name\r\n",
            b"Name : v\r\n",
            b"Na me: v\r\n",
            b"A: b\0c\r\n",
            b"A:\0\r\n",
            b"A: b \0\r\n",
            b"Bad\rHeader\r\n",
            b"\rX",
            b"\x7fA: b\r\n",
            b"\0A: b\r\n",
        ];
        for line in bad {
            assert_eq!(header(line), Err(ParseError::InvalidHeader), "{line:?}");
        }
    }

    // ----- properties -----

    const ALPHABET: &[u8] = b"HTTP/1.0 200 OK\r\n:X-y_ \t\0\x7f\x80.0123456789";

    /// Pure parsers: every prefix of an input gives `Again` (with `pos` unchanged) or the
    /// answer the whole input gives, so reading byte by byte agrees with one shot.
    fn prefixes_agree<T: PartialEq + std::fmt::Debug>(
        input: &[u8],
        parse: impl Fn(&[u8], &mut usize) -> Result<Step<T>, ParseError>,
    ) {
        let mut pos = 0;
        let whole = parse(input, &mut pos);
        for i in 0..input.len() {
            let mut p = 0;
            match parse(&input[..i], &mut p) {
                Ok(Step::Again) => assert_eq!(p, 0, "{input:?} at {i}"),
                other => assert_eq!(other, whole, "{input:?}: prefix {i}"),
            }
        }
    }

    #[test]
    fn status_and_header_lines_split_anywhere() {
        for input in [RESPONSE, b"HTTP/1.0 404\nX", b"HTTP/1.1 403.1 Forbidden\r\n", b"HTTP/1.1 20x\r\n"] {
            prefixes_agree(input, parse_status_line);
        }
        for line in [
            &b"A:b\n"[..],
            b"A: \t b  c \t\r\n",
            b"NoColon\r\n",
            b"A: b\r\r\n",
            b"HTTP/1.1 200 OK\r\nA: b\r\n",
            b"\r\nX",
        ] {
            prefixes_agree(line, parse_header_line);
        }
        let mut seed = 7;
        for _ in 0..20_000 {
            let n = (crate::http::parse::xorshift(&mut seed) % 40) as usize;
            let input = crate::http::parse::random_bytes(&mut seed, ALPHABET, n);
            prefixes_agree(&input, parse_status_line);
            prefixes_agree(&input, parse_header_line);
        }
    }

    /// The fast path answers exactly as the state machine alone, on whole lines, prefixes,
    /// and random bytes from an alphabet of every byte that matters to either.
    #[test]
    fn fast_path_agrees_with_bytewise() {
        let mut seed = 13;
        let alphabet = b"Ab:/ \t\r\n\0\x7f\x80HTP1.";
        for _ in 0..50_000 {
            let n = (crate::http::parse::xorshift(&mut seed) % 24) as usize;
            let buf = crate::http::parse::random_bytes(&mut seed, alphabet, n);
            let start = (crate::http::parse::xorshift(&mut seed) % 4) as usize;
            let (mut fast, mut slow) = (start, start);
            let a = parse_header_line(&buf, &mut fast);
            let b = parse_header_line_bytewise(&buf, &mut slow);
            assert_eq!((a, fast), (b, slow), "{buf:?} from {start}");
        }
        let alphabet = b"HTTP/1.0 2\r\n\x80";
        for _ in 0..50_000 {
            let n = (crate::http::parse::xorshift(&mut seed) % 24) as usize;
            let mut buf = b"HTTP/1.1 200".to_vec();
            let keep = (crate::http::parse::xorshift(&mut seed) % 13) as usize;
            buf.truncate(keep);
            buf.extend(crate::http::parse::random_bytes(&mut seed, alphabet, n));
            let (mut fast, mut slow) = (0, 0);
            let a = parse_status_line(&buf, &mut fast);
            let b = parse_status_line_bytewise(&buf, &mut slow);
            assert_eq!((a, fast), (b, slow), "{buf:?}");
        }
        for i in 0..=RESPONSE.len() {
            let (mut fast, mut slow) = (17, 17);
            let a = parse_header_line(&RESPONSE[..i], &mut fast);
            assert_eq!((a, fast), (parse_header_line_bytewise(&RESPONSE[..i], &mut slow), slow));
        }
    }

    /// `name_end` stops where the byte loop over `NAME_PLAIN` stops: every byte value at
    /// every position, from every start.
    #[test]
    fn name_end_agrees_with_byte_loop() {
        for b in 0..=255u8 {
            for i in 0..20 {
                let mut buf = vec![b'N'; 20];
                buf[i] = b;
                for start in 0..buf.len() {
                    let mut p = start;
                    while buf.get(p).is_some_and(|&c| NAME_PLAIN[usize::from(c)]) {
                        p += 1;
                    }
                    assert_eq!(name_end(&buf, start), p, "{buf:?} {start}");
                }
            }
        }
    }

    /// Long plain lines (the word-at-a-time scans run) with a few bytes that matter put
    /// anywhere: the fast path answers as the state machine, outcome and position.
    #[test]
    fn long_lines_agree_with_bytewise() {
        use crate::http::parse::random_header_line;
        let mut seed = 29;
        let special = b":/ \t\r\n\0\x7f\x80\x0bH";
        for _ in 0..100_000 {
            let (name, value) = ((&b"Content-Type"[..], 20), b"text/html; charset=1 ");
            let (buf, cut) = random_header_line(&mut seed, name, value, b"Next: x\r\n\r\n", special);
            let (mut fast, mut slow) = (0, 0);
            let a = parse_header_line(&buf[..cut], &mut fast);
            let b = parse_header_line_bytewise(&buf[..cut], &mut slow);
            assert_eq!((a, fast), (b, slow), "{buf:?} cut at {cut}");
        }
    }

    #[test]
    fn any_bytes_never_panic() {
        let all: Vec<u8> = (0..=255).collect();
        let mut seed = 11;
        for _ in 0..20_000 {
            let n = (crate::http::parse::xorshift(&mut seed) % 48) as usize;
            let buf = crate::http::parse::random_bytes(&mut seed, &all, n);
            let start = (crate::http::parse::xorshift(&mut seed) % 50) as usize;
            let _ = parse_status_line(&buf, &mut start.clone());
            let _ = parse_header_line(&buf, &mut start.clone());
        }
    }
}
