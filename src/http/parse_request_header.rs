//! The client request head, header lines: nginx's `ngx_http_parse_header_line()` as it runs
//! for a client (no `r->upstream`), resumable byte by byte on the state in `RequestHead`.
//!
//! nginx: src/http/ngx_http_parse.c (`ngx_http_parse_header_line()`), as nginx 1.22.1 answers:
//! only SP, not HTAB, is whitespace around a value.
//!
//! Differs from nginx:
//! - no header-name hash and lowercased copy (`r->header_hash`, `r->lowcase_header`):
//!   callers compare names with `eq_ignore_ascii_case`.

use std::ops::Range;

use super::parse::{run_end, value_end, ParseError, HIGHS, ONES};
use super::parse_request::RequestHead;
use crate::core::step::Step;

/// Where the header-line parser stands: the `sw_*` states of `ngx_http_parse_header_line()`
/// for a client (`sw_ignore_line` is upstream-only).
#[allow(missing_docs)] // each variant is the nginx state of the same name
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RequestHeaderState {
    #[default]
    Start,
    Name,
    SpaceBeforeValue,
    Value,
    SpaceAfterValue,
    AlmostDone,
    HeaderAlmostDone,
}

/// What `RequestHead::parse_header_line` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestHeaderLine {
    /// One header line (nginx: NGX_OK). `invalid`: the name has bytes outside `A-Za-z0-9-`
    /// (or `_` when underscores are not allowed): `r->invalid_header`, which
    /// `ignore_invalid_headers on` drops.
    Header {
        /// The name as sent (`header_name_start..header_name_end`).
        name: Range<usize>,
        /// The value (`header_start..header_end`): leading and trailing SP dropped, HTAB kept.
        value: Range<usize>,
        /// nginx: `r->invalid_header`.
        invalid: bool,
    },
    /// The empty line ending the head (nginx: NGX_HTTP_PARSE_HEADER_DONE).
    Done,
}

/// Bytes that leave `sw_name` as it is whatever `allow_underscores` says: nginx's `lowcase[]`
/// letters, digits and '-'.
static NAME_PLAIN: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || c == b'-';
        b += 1;
    }
    t
};

/// Flags (high bit of the lane) every lane of `w` whose byte is not an ASCII letter: all
/// the bytes that are not `NAME_PLAIN`, and digits and '-', which `run_end` then finds plain
/// and passes over (a '-' costs a restart; a test of the letters alone is half the
/// operations of an exact one, and names are mostly letters). Each lane is computed alone
/// (every sum stays below 0x100 in its lane: no carry crosses lanes).
#[inline(always)]
pub(super) const fn name_stops(w: u64) -> u64 {
    // the low 7 bits folded to lower case; a byte >= 0x80 is flagged by `w` itself
    let l = (w & !HIGHS) | (ONES * 0x20);
    (!(l + ONES * (0x80 - 0x61)) | (l + ONES * (0x80 - 0x7b)) | w) & HIGHS
}

/// Bytes that leave `sw_value` as it is: all but NUL, CR, LF and SP.
static VALUE_PLAIN: [bool; 256] = {
    let mut t = [true; 256];
    t[0] = false;
    t[b'\r' as usize] = false;
    t[b'\n' as usize] = false;
    t[b' ' as usize] = false;
    t
};

/// For the other states: look at every byte.
static NOTHING_PLAIN: [bool; 256] = [false; 256];

/// A header-name byte that is always valid: nginx's `lowcase[]` table is non-zero for
/// `-`, digits and letters only.
fn is_token(ch: u8) -> bool {
    ch.is_ascii_alphanumeric() || ch == b'-'
}

impl RequestHead {
    /// Parses one header line at `buf[self.pos..]`, resuming where the last call stopped.
    /// `allow_underscores`: `underscores_in_headers on` (else a '_' makes the line invalid).
    ///
    /// # Returns
    /// `Done(Header{..})` or `Done(Done)` with `self.pos` past the line's LF; `Again` with
    /// `self.pos == buf.len()`; `Err(InvalidRequestHeader)` for what nginx refuses with 400: a
    /// name starting with a byte <= 0x20, DEL or ':' (so folded lines), a control byte or SP
    /// in a name, NUL in a value, CR not followed by LF. `header_name_start..header_end` and
    /// the byte at `header_end` are what nginx logs.
    ///
    /// nginx: `ngx_http_parse_header_line(r, b, allow_underscores)` (1.22: only SP, not HTAB,
    /// is whitespace around a value)
    #[inline]
    pub fn parse_header_line(
        &mut self,
        buf: &[u8],
        allow_underscores: bool,
    ) -> Result<Step<RequestHeaderLine>, ParseError> {
        if self.header_state == RequestHeaderState::Start {
            if let Some(line) = self.whole_line(buf, allow_underscores) {
                return Ok(Step::Done(line));
            }
        }
        self.parse_header_line_bytewise(buf, allow_underscores)
    }

    /// The fast path of `parse_header_line`, for a line that starts at `self.pos` and is
    /// whole in `buf`: "Name: value" ended by CRLF or LF, or the empty line, in tight loops
    /// over runs of plain bytes. It sets what the state machine would have set; for anything
    /// else (the buffer ends mid-line, a byte that is an error or needs a state: CR not
    /// followed by LF, NUL, a control byte in the name, no ':') it changes nothing and gives
    /// `None`, and the state machine parses the line from its start. nginx has no such path:
    /// its `sw_name`/`sw_value` cases are its inner loops.
    #[inline(always)]
    fn whole_line(&mut self, buf: &[u8], allow_underscores: bool) -> Option<RequestHeaderLine> {
        let base = self.pos;
        let mut p = base;
        let first = *buf.get(p)?;
        if first == b'\n' || first == b'\r' && *buf.get(p + 1)? == b'\n' {
            (self.header_name_start, self.header_end, self.invalid_header) = (p, p, false);
            self.pos = p + 1 + usize::from(first == b'\r');
            return Some(RequestHeaderLine::Done);
        }
        // sw_start, sw_name: a byte outside NAME_PLAIN only flags the line invalid, unless it
        // is ':' or one that is an error or ends the line
        let mut invalid = false;
        loop {
            // eight name bytes at a time up to the first that is not a letter, digit or '-'
            p = run_end(buf, p, &NAME_PLAIN, name_stops);
            let ch = *buf.get(p)?;
            if ch == b':' || ch <= 0x20 || ch == 0x7f {
                break;
            }
            invalid |= !(ch == b'_' && allow_underscores);
            p += 1;
        }
        if p == base || buf[p] != b':' {
            return None;
        }
        let name_end = p;
        p += 1;
        // sw_space_before_value: only SP, as nginx 1.22
        while *buf.get(p)? == b' ' {
            p += 1;
        }
        // sw_value, sw_space_after_value: up to NUL, CR or LF; trailing SP is not the value
        let start = p;
        p = value_end(buf, p);
        buf.get(p)?;
        let mut end = p;
        while end > start && buf[end - 1] == b' ' {
            end -= 1;
        }
        let next = match buf[p] {
            b'\n' => p + 1,
            b'\r' if *buf.get(p + 1)? == b'\n' => p + 2,
            _ => return None,
        };
        (self.header_name_start, self.header_name_end) = (base, name_end);
        (self.header_start, self.header_end, self.invalid_header) = (start, end, invalid);
        self.pos = next;
        Some(RequestHeaderLine::Header { name: base..name_end, value: start..end, invalid })
    }

    /// `parse_header_line` one byte at a time, resumable: every line the fast path leaves,
    /// and the reference the fast path is tested against.
    fn parse_header_line_bytewise(
        &mut self,
        buf: &[u8],
        allow_underscores: bool,
    ) -> Result<Step<RequestHeaderLine>, ParseError> {
        let mut p = self.pos;
        while let Some(&ch) = buf.get(p) {
            // the common case: runs of name or value bytes change nothing but the position
            let plain = match self.header_state {
                RequestHeaderState::Name => &NAME_PLAIN,
                RequestHeaderState::Value => &VALUE_PLAIN,
                _ => &NOTHING_PLAIN,
            };
            if plain[usize::from(ch)] {
                p += 1;
                continue;
            }
            let done = match self.header_state {
                RequestHeaderState::Start | RequestHeaderState::Name => self.name_byte(p, ch, allow_underscores),
                _ => self.value_byte(p, ch),
            };
            match done {
                Ok(None) => p += 1,
                Ok(Some(line)) => {
                    self.pos = p + 1;
                    self.header_state = RequestHeaderState::Start;
                    return Ok(Step::Done(line));
                }
                Err(e) => {
                    self.pos = p;
                    return Err(e);
                }
            }
        }
        self.pos = p;
        Ok(Step::Again)
    }

    /// The line as parsed, at its LF. nginx: the `done:` label.
    fn header_done(&self) -> Option<RequestHeaderLine> {
        let name = self.header_name_start..self.header_name_end;
        let value = self.header_start..self.header_end.max(self.header_start);
        Some(RequestHeaderLine::Header { name, value, invalid: self.invalid_header })
    }

    /// The header line ends with the name (no colon): an empty value.
    fn end_of_name(&mut self, p: usize) {
        self.header_name_end = p;
        self.header_start = p;
        self.header_end = p;
    }

    /// nginx: `sw_start`, `sw_name`.
    #[inline]
    fn name_byte(
        &mut self,
        p: usize,
        ch: u8,
        allow_underscores: bool,
    ) -> Result<Option<RequestHeaderLine>, ParseError> {
        use RequestHeaderState::*;
        if self.header_state == Start {
            self.header_name_start = p;
            self.invalid_header = false;
            match ch {
                b'\r' => {
                    self.header_end = p;
                    self.header_state = HeaderAlmostDone;
                    return Ok(None);
                }
                b'\n' => {
                    self.header_end = p;
                    return Ok(Some(RequestHeaderLine::Done));
                }
                _ if ch <= 0x20 || ch == 0x7f || ch == b':' => {
                    self.header_end = p;
                    return Err(ParseError::InvalidRequestHeader);
                }
                _ => self.header_state = Name,
            }
        } else {
            match ch {
                b':' => {
                    self.header_name_end = p;
                    self.header_state = SpaceBeforeValue;
                    return Ok(None);
                }
                b'\r' => {
                    self.end_of_name(p);
                    self.header_state = AlmostDone;
                    return Ok(None);
                }
                b'\n' => {
                    self.end_of_name(p);
                    return Ok(self.header_done());
                }
                _ if ch <= 0x20 || ch == 0x7f => {
                    self.header_end = p;
                    return Err(ParseError::InvalidRequestHeader);
                }
                _ => {}
            }
        }
        // here: a name byte, the first or a later one
        if !(is_token(ch) || ch == b'_' && allow_underscores) {
            self.invalid_header = true;
        }
        Ok(None)
    }

    /// nginx: `sw_space_before_value`, `sw_value`, `sw_space_after_value`, `sw_almost_done`,
    /// `sw_header_almost_done`.
    #[inline]
    fn value_byte(&mut self, p: usize, ch: u8) -> Result<Option<RequestHeaderLine>, ParseError> {
        use RequestHeaderState::*;
        let state = self.header_state;
        let next = match (state, ch) {
            (HeaderAlmostDone, b'\n') => return Ok(Some(RequestHeaderLine::Done)),
            (AlmostDone, b'\n') => return Ok(self.header_done()),
            (AlmostDone, b'\r') => AlmostDone,
            (HeaderAlmostDone | AlmostDone, _) => return Err(ParseError::InvalidRequestHeader),
            (_, 0) => {
                self.header_end = p;
                return Err(ParseError::InvalidRequestHeader);
            }
            (SpaceBeforeValue | SpaceAfterValue, b' ') => state,
            (SpaceBeforeValue, b'\r' | b'\n') => {
                self.header_start = p;
                self.header_end = p;
                if ch == b'\n' {
                    return Ok(self.header_done());
                }
                AlmostDone
            }
            (Value, b'\r' | b'\n') => {
                self.header_end = p;
                if ch == b'\n' {
                    return Ok(self.header_done());
                }
                AlmostDone
            }
            (SpaceAfterValue, b'\r') => AlmostDone,
            (SpaceAfterValue, b'\n') => return Ok(self.header_done()),
            (Value, b' ') => {
                self.header_end = p;
                SpaceAfterValue
            }
            (SpaceBeforeValue, _) => {
                self.header_start = p;
                Value
            }
            _ => Value, // here: a value byte in sw_value or sw_space_after_value
        };
        self.header_state = next;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::parse::{random_bytes, random_header_line, xorshift};

    /// Runs one parser over `buf` from `start`; the outcome and every field it leaves.
    fn run(
        buf: &[u8],
        start: usize,
        underscores: bool,
        fast: bool,
    ) -> (Result<Step<RequestHeaderLine>, ParseError>, [usize; 5], bool, RequestHeaderState) {
        let mut h = RequestHead { pos: start, ..RequestHead::default() };
        let r =
            if fast { h.parse_header_line(buf, underscores) } else { h.parse_header_line_bytewise(buf, underscores) };
        let at = [h.pos, h.header_name_start, h.header_name_end, h.header_start, h.header_end];
        (r, at, h.invalid_header, h.header_state)
    }

    /// `name_stops` flags exactly the lanes whose byte is not a letter (so every byte that
    /// is not `NAME_PLAIN`): every byte in every lane, the other lanes random.
    #[test]
    fn name_stops_exact_in_every_lane() {
        let mut seed = 7;
        for b in 0..=255u8 {
            for lane in 0..8 {
                for _ in 0..64 {
                    let mut bytes = xorshift(&mut seed).to_le_bytes();
                    bytes[lane] = b;
                    let m = name_stops(u64::from_le_bytes(bytes));
                    for (i, &c) in bytes.iter().enumerate() {
                        assert_eq!(m >> (8 * i + 7) & 1 == 1, !c.is_ascii_alphabetic(), "{bytes:?} lane {i}");
                    }
                }
            }
        }
    }

    /// Names of the bytes at the edges of `name_stops`' ranges (and '_', ':', controls), long
    /// enough for the word scan, cut anywhere: the fast path leaves what the state machine
    /// leaves.
    #[test]
    fn names_agree_with_bytewise() {
        let mut seed = 37;
        let alphabet = b"aAzZ09-_/@[`{:.,\x20\t\x7f\x80\xff\x1f\x10";
        for _ in 0..100_000 {
            let n = 1 + (xorshift(&mut seed) % 24) as usize;
            let mut buf = random_bytes(&mut seed, alphabet, n);
            buf.extend_from_slice(b": v\r\nHost: x\r\n\r\n");
            let cut = buf.len() - (xorshift(&mut seed) % 16) as usize;
            for underscores in [false, true] {
                let fast = run(&buf[..cut], 0, underscores, true);
                assert_eq!(fast, run(&buf[..cut], 0, underscores, false), "{buf:?} cut at {cut}");
            }
        }
    }

    /// Long plain lines (the word-at-a-time value scan runs) with a few bytes that matter put
    /// anywhere: the fast path leaves what the state machine leaves, every field.
    #[test]
    fn long_lines_agree_with_bytewise() {
        let mut seed = 31;
        let special = b"_:@ \t\r\n\0\x7f\x80\x0b";
        for _ in 0..100_000 {
            let (name, value) = ((&b"User-Agent"[..], 16), b"Mozilla/5.0 (X11) ");
            let (buf, cut) = random_header_line(&mut seed, name, value, b"Host: x\r\n\r\n", special);
            for underscores in [false, true] {
                let fast = run(&buf[..cut], 0, underscores, true);
                assert_eq!(fast, run(&buf[..cut], 0, underscores, false), "{buf:?} cut at {cut}");
            }
        }
    }

    /// The fast path answers exactly as the state machine alone, leaving the same fields,
    /// on random bytes from an alphabet of every byte that matters to either.
    #[test]
    fn fast_path_agrees_with_bytewise() {
        let mut seed = 17;
        let alphabet = b"Ab_-:@ \t\r\n\0\x7f\x80";
        for _ in 0..60_000 {
            let n = (xorshift(&mut seed) % 20) as usize;
            let buf = random_bytes(&mut seed, alphabet, n);
            let start = (xorshift(&mut seed) % 3) as usize;
            for underscores in [false, true] {
                let fast = run(&buf, start, underscores, true);
                assert_eq!(fast, run(&buf, start, underscores, false), "{buf:?} from {start}");
            }
        }
    }
}
