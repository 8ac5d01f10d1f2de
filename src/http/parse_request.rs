//! The client request head: nginx's request-line and header-line state machines, resumable
//! byte by byte.
//!
//! nginx: src/http/ngx_http_parse.c (`ngx_http_parse_request_line()`,
//! `ngx_http_parse_header_line()`), as nginx 1.22.1 answers.
//!
//! The parser state nginx keeps in `ngx_http_request_t` (`r->state`, `r->request_start`,
//! `r->uri_start`, ..., `r->header_name_start`, ...) lives in `RequestHead` as offsets into the
//! head buffer instead of pointers, and `RequestHead::pos` is nginx's `b->pos`. Each call
//! resumes at `pos`, so every byte is examined once however the head is split into reads.
//! The offsets stay valid when the head buffer grows: `alloc_large_header_buffer`
//! (request_head.rs) keeps the whole head in one buffer whose start does not move.
//!
//! The header-line half is in parse_request_header.rs (same state, a second `impl` block),
//! the request line's whole-line fast path in parse_request_plain.rs.
//!
//! Differs from nginx:
//! - no `uri_ext`/`plus_in_uri` bookkeeping (rginx has no use for `$exten`), no Win32 rules.
//! - the method name is matched with a `match` on the bytes, not nginx's 4-byte compares.

use std::ops::Range;

use super::parse::ParseError;
pub use super::parse_request_header::{RequestHeaderLine, RequestHeaderState};
use crate::core::step::Step;

/// The request method. nginx: `r->method` (NGX_HTTP_GET ...), set by the parser when the
/// method name ends; `Unknown` is NGX_HTTP_UNKNOWN, any other name of `A-Z`, `_`, `-`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Method {
    /// NGX_HTTP_UNKNOWN: a name nginx does not know; served like any other.
    #[default]
    Unknown,
    /// GET
    Get,
    /// HEAD
    Head,
    /// POST
    Post,
    /// PUT
    Put,
    /// DELETE
    Delete,
    /// MKCOL
    Mkcol,
    /// COPY
    Copy,
    /// MOVE
    Move,
    /// OPTIONS
    Options,
    /// PROPFIND
    Propfind,
    /// PROPPATCH
    Proppatch,
    /// LOCK
    Lock,
    /// UNLOCK
    Unlock,
    /// PATCH
    Patch,
    /// TRACE: refused with 405 once the head is read.
    Trace,
    /// CONNECT: refused with 405 once the head is read (nginx 1.22 parses its target as any
    /// other, so "CONNECT host:443" is a 400 first).
    Connect,
}

impl Method {
    /// The method a name stands for. nginx: the `switch (p - m)` of `sw_method`.
    pub fn from_bytes(m: &[u8]) -> Method {
        match m {
            b"GET" => Method::Get,
            b"HEAD" => Method::Head,
            b"POST" => Method::Post,
            b"PUT" => Method::Put,
            b"DELETE" => Method::Delete,
            b"MKCOL" => Method::Mkcol,
            b"COPY" => Method::Copy,
            b"MOVE" => Method::Move,
            b"OPTIONS" => Method::Options,
            b"PROPFIND" => Method::Propfind,
            b"PROPPATCH" => Method::Proppatch,
            b"LOCK" => Method::Lock,
            b"UNLOCK" => Method::Unlock,
            b"PATCH" => Method::Patch,
            b"TRACE" => Method::Trace,
            b"CONNECT" => Method::Connect,
            _ => Method::Unknown,
        }
    }
}

/// Where the request-line parser stands: the `sw_*` states of
/// `ngx_http_parse_request_line()` (nginx 1.22, without the later `sw_spaces_before_host`).
#[allow(missing_docs)] // each variant is the nginx state of the same name
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RequestLineState {
    #[default]
    Start,
    Method,
    SpacesBeforeUri,
    Schema,
    SchemaSlash,
    SchemaSlashSlash,
    HostStart,
    Host,
    HostEnd,
    HostIpLiteral,
    Port,
    AfterSlashInUri,
    CheckUri,
    Uri,
    Http09,
    HttpH,
    HttpHT,
    HttpHTT,
    HttpHTTP,
    FirstMajorDigit,
    MajorDigit,
    FirstMinorDigit,
    MinorDigit,
    SpacesAfterDigit,
    AlmostDone,
}

/// A request head being parsed, and once parsed: nginx's parser fields of
/// `ngx_http_request_t`, as offsets into the head buffer (`r->header_in`).
///
/// nginx: `r->state`, `r->request_start`, `r->method_end`, `r->uri_start`, ...,
/// `r->header_name_start`, ... and `r->headers_in.headers`.
#[derive(Debug, Clone, Default)]
pub struct RequestHead {
    /// The next byte to examine (nginx: `b->pos`).
    pub pos: usize,
    /// Request-line state (nginx: `r->state` while reading the line).
    pub state: RequestLineState,
    /// Header-line state (nginx: `r->state` while reading headers).
    pub header_state: RequestHeaderState,
    /// The request line has been parsed (the handler moved on to the headers).
    pub line_done: bool,

    /// First byte of the request line, after leading CR/LF (nginx: `r->request_start`).
    pub request_start: usize,
    /// Last byte of the method (nginx: `r->method_end`).
    pub method_end: usize,
    /// nginx: `r->uri_start`: the origin-form part of the target (also of an absolute one).
    pub uri_start: Option<usize>,
    /// nginx: `r->uri_end`.
    pub uri_end: Option<usize>,
    /// nginx: `r->args_start`: just after the first '?' the line parser saw.
    pub args_start: Option<usize>,
    /// nginx: `r->schema_start` / `r->schema_end` of an absolute-form target.
    pub schema: Option<Range<usize>>,
    /// nginx: `r->host_start`, of an absolute-form target.
    pub host_start: Option<usize>,
    /// nginx: `r->host_end` (after the port, if any).
    pub host_end: Option<usize>,
    /// nginx: `r->http_protocol.data`: the 'H' of "HTTP/1.1"; none for HTTP/0.9.
    pub http_protocol: Option<usize>,
    /// nginx: `r->request_end`: the CR ending the line, else its LF.
    pub request_end: Option<usize>,
    /// nginx: `r->http_major`.
    pub http_major: u16,
    /// nginx: `r->http_minor`.
    pub http_minor: u16,
    /// The path has "//", "/.", '#': it needs normalising (nginx: `r->complex_uri`).
    pub complex_uri: bool,
    /// The path has '%' (nginx: `r->quoted_uri`).
    pub quoted_uri: bool,
    /// "http://host?args": no path at all (nginx: `r->empty_path_in_uri`).
    pub empty_path_in_uri: bool,

    /// nginx: `r->header_name_start` of the header line being parsed.
    pub header_name_start: usize,
    /// nginx: `r->header_name_end`.
    pub header_name_end: usize,
    /// nginx: `r->header_start` (the value).
    pub header_start: usize,
    /// nginx: `r->header_end`; on an error, the offending byte (logged as `\xNN`).
    pub header_end: usize,
    /// nginx: `r->invalid_header`.
    pub invalid_header: bool,

    /// The method name, e.g. "GET" (nginx: `r->method_name`).
    pub method: Range<usize>,
    /// nginx: `r->method`.
    pub method_code: Method,
    /// The target as sent, origin-form: "/a/b?x=1" also for "http://h/a/b?x=1"
    /// (nginx: `r->unparsed_uri`, `$request_uri`).
    pub target: Range<usize>,
    /// The whole request line without CRLF (nginx: `r->request_line`, `$request`).
    pub request_line: Range<usize>,
    /// `1000 * major + minor`: 9 for HTTP/0.9, 1000, 1001, 1002 ... (nginx: `r->http_version`).
    pub version: u16,
    /// The header lines kept, as (name, value) ranges, in arrival order
    /// (nginx: `r->headers_in.headers`).
    pub headers: Vec<(Range<usize>, Range<usize>)>,
    /// End of the head: the body (or the next pipelined request) starts at `buf[len..]`.
    pub len: usize,
}

/// Bytes `sw_check_uri` and `sw_uri` pass over: nginx's `usual[]` table on Unix, i.e. all
/// but the controls, SP, '#', '%', '+', '.', '/', '?' and DEL.
pub(super) static USUAL: [bool; 256] = {
    let mut t = [true; 256];
    let mut b = 0;
    while b <= 0x20 {
        t[b] = false;
        b += 1;
    }
    let special = b"#%+./?\x7f";
    let mut i = 0;
    while i < special.len() {
        t[special[i] as usize] = false;
        i += 1;
    }
    t
};

fn is_method_byte(ch: u8) -> bool {
    ch.is_ascii_uppercase() || ch == b'_' || ch == b'-'
}

/// One request-line byte's outcome: go on in this state, or the line is complete ("goto done").
type LineStep = Result<Option<RequestLineState>, ParseError>;

impl RequestHead {
    /// Parses the request line at `buf[self.pos..]`, resuming where the last call stopped.
    ///
    /// # Returns
    /// - `Done`: `self.pos` is past the line's LF; `method`, `method_code`, `target`,
    ///   `request_line`, `version` are set.
    /// - `Again`: `buf` ends mid-line; `self.pos == buf.len()`. Call again with more bytes
    ///   (the same buffer, grown; earlier bytes unchanged).
    /// - `Err`: `InvalidMethod`, `InvalidRequest`, `InvalidVersion` (505), `InvalidMethod09`
    ///   (then `version` is 9: the answer goes without a header, as nginx's does).
    ///
    /// nginx: `ngx_http_parse_request_line()`
    pub fn parse_request_line(&mut self, buf: &[u8]) -> Result<Step, ParseError> {
        if self.state == RequestLineState::Start {
            if let Some(done) = self.plain_request_line(buf) {
                return done;
            }
        }
        self.parse_request_line_bytewise(buf)
    }

    /// `parse_request_line` one byte at a time, resumable: every line the fast path leaves,
    /// and the reference the fast path is tested against.
    pub(super) fn parse_request_line_bytewise(&mut self, buf: &[u8]) -> Result<Step, ParseError> {
        let mut p = self.pos;
        while let Some(&ch) = buf.get(p) {
            if matches!(self.state, RequestLineState::CheckUri | RequestLineState::Uri) && USUAL[usize::from(ch)] {
                p += 1; // the common case: a run of plain path bytes changes nothing
                continue;
            }
            match self.line_byte(buf, p, ch) {
                Ok(Some(s)) => self.state = s,
                Ok(None) => return self.line_done(p),
                Err(e) => {
                    self.pos = p;
                    return Err(e);
                }
            }
            p += 1;
        }
        self.pos = p;
        Ok(Step::Again)
    }

    /// The `switch (state)` of `ngx_http_parse_request_line()`, one group of states per helper.
    #[inline]
    fn line_byte(&mut self, buf: &[u8], p: usize, ch: u8) -> LineStep {
        use RequestLineState::*;
        match self.state {
            Start | Method => self.method_byte(buf, p, ch),
            SpacesBeforeUri | Schema | SchemaSlash | SchemaSlashSlash => self.schema_byte(p, ch),
            HostStart | Host | HostEnd | HostIpLiteral | Port => self.host_byte(p, ch),
            AfterSlashInUri | CheckUri | Uri => self.uri_byte(p, ch),
            _ => self.version_byte(p, ch),
        }
    }

    /// nginx: `sw_start`, `sw_method`.
    #[inline]
    fn method_byte(&mut self, buf: &[u8], p: usize, ch: u8) -> LineStep {
        if self.state == RequestLineState::Start {
            self.request_start = p;
            if ch == b'\r' || ch == b'\n' {
                return Ok(Some(RequestLineState::Start)); // empty lines before the request
            }
        } else if ch == b' ' {
            self.method_end = p - 1;
            self.method_code = Method::from_bytes(buf.get(self.request_start..p).unwrap_or(b""));
            return Ok(Some(RequestLineState::SpacesBeforeUri));
        }
        if !is_method_byte(ch) {
            return Err(ParseError::InvalidMethod);
        }
        Ok(Some(RequestLineState::Method))
    }

    /// nginx: `sw_spaces_before_uri`, `sw_schema`, `sw_schema_slash`, `sw_schema_slash_slash`.
    fn schema_byte(&mut self, p: usize, ch: u8) -> LineStep {
        use RequestLineState::*;
        let next = match (self.state, ch) {
            (SpacesBeforeUri, b'/') => {
                self.uri_start = Some(p);
                AfterSlashInUri
            }
            (SpacesBeforeUri, _) if ch.is_ascii_alphabetic() => {
                self.schema = Some(p..p);
                Schema
            }
            (SpacesBeforeUri, b' ') => SpacesBeforeUri,
            (Schema, _) if ch.is_ascii_alphanumeric() || matches!(ch, b'+' | b'-' | b'.') => Schema,
            (Schema, b':') => {
                if let Some(s) = self.schema.as_mut() {
                    s.end = p;
                }
                SchemaSlash
            }
            (SchemaSlash, b'/') => SchemaSlashSlash,
            (SchemaSlashSlash, b'/') => HostStart,
            _ => return Err(ParseError::InvalidRequest),
        };
        Ok(Some(next))
    }

    /// nginx: `sw_host_start`, `sw_host`, `sw_host_end`, `sw_host_ip_literal`, `sw_port`
    /// (the first three fall through into each other, as in nginx).
    fn host_byte(&mut self, p: usize, ch: u8) -> LineStep {
        use RequestLineState::*;
        let mut state = self.state;
        if state == HostStart {
            self.host_start = Some(p);
            if ch == b'[' {
                return Ok(Some(HostIpLiteral));
            }
            state = Host;
        }
        match state {
            Host if ch.is_ascii_alphanumeric() || ch == b'.' || ch == b'-' => Ok(Some(Host)),
            Host | HostEnd if ch == b':' => Ok(Some(Port)),
            HostIpLiteral => match ch {
                b']' => Ok(Some(HostEnd)),
                _ if ch.is_ascii_alphanumeric() || b":-._~!$&'()*+,;=".contains(&ch) => Ok(Some(HostIpLiteral)),
                _ => Err(ParseError::InvalidRequest),
            },
            Port if ch.is_ascii_digit() => Ok(Some(Port)),
            _ => self.after_host(p, ch), // here: Host, HostEnd or Port, at the host's end
        }
    }

    /// The end of the host (and port) of an absolute-form target: the path, the args or the
    /// space before the version begins. nginx: the tail of `sw_host_end` and `sw_port`.
    fn after_host(&mut self, p: usize, ch: u8) -> LineStep {
        use RequestLineState::*;
        self.host_end = Some(p);
        match ch {
            b'/' => {
                self.uri_start = Some(p);
                Ok(Some(AfterSlashInUri))
            }
            b'?' => {
                self.uri_start = Some(p);
                self.args_start = Some(p + 1);
                self.empty_path_in_uri = true;
                Ok(Some(Uri))
            }
            b' ' => {
                // No path: the URI is the single '/' of "//" (nginx keeps the pointers inside
                // the request line for the same reason: they survive a buffer copy).
                let slash = self.schema.as_ref().map_or(p, |s| s.end + 1);
                self.uri_start = Some(slash);
                self.uri_end = Some(slash + 1);
                Ok(Some(Http09))
            }
            _ => Err(ParseError::InvalidRequest),
        }
    }

    /// nginx: `sw_after_slash_in_uri`, `sw_check_uri`, `sw_uri`.
    #[inline]
    fn uri_byte(&mut self, p: usize, ch: u8) -> LineStep {
        use RequestLineState::*;
        let state = self.state;
        match ch {
            b' ' => {
                self.uri_end = Some(p);
                return Ok(Some(Http09));
            }
            b'\r' | b'\n' => {
                self.uri_end = Some(p);
                self.http_minor = 9;
                return if ch == b'\r' { Ok(Some(AlmostDone)) } else { Ok(None) };
            }
            _ if ch < 0x20 || ch == 0x7f => return Err(ParseError::InvalidRequest),
            _ => {}
        }
        let next = match (state, ch) {
            (AfterSlashInUri, _) if USUAL[usize::from(ch)] => CheckUri,
            (_, b'#') => {
                self.complex_uri = true;
                Uri
            }
            (Uri, _) => Uri,
            (AfterSlashInUri, b'.' | b'/') => {
                self.complex_uri = true;
                Uri
            }
            (CheckUri, b'/') => AfterSlashInUri,
            (_, b'%') => {
                self.quoted_uri = true;
                Uri
            }
            (_, b'?') => {
                self.args_start = Some(p + 1);
                Uri
            }
            (AfterSlashInUri, b'+') => AfterSlashInUri,
            _ => CheckUri, // here: '.', '+' or a byte >= 0x80 in sw_check_uri
        };
        Ok(Some(next))
    }

    /// nginx: `sw_http_09` through `sw_almost_done`.
    #[inline]
    fn version_byte(&mut self, p: usize, ch: u8) -> LineStep {
        use RequestLineState::*;
        let digit = ch.wrapping_sub(b'0');
        let next = match (self.state, ch) {
            (Http09, b' ') => Http09,
            (Http09, b'\r' | b'\n') => {
                self.http_minor = 9;
                return if ch == b'\r' { Ok(Some(AlmostDone)) } else { Ok(None) };
            }
            (Http09, b'H') => {
                self.http_protocol = Some(p);
                HttpH
            }
            (HttpH, b'T') => HttpHT,
            (HttpHT, b'T') => HttpHTT,
            (HttpHTT, b'P') => HttpHTTP,
            (HttpHTTP, b'/') => FirstMajorDigit,
            (FirstMajorDigit, b'1'..=b'9') => {
                self.http_major = u16::from(digit);
                if self.http_major > 1 {
                    return Err(ParseError::InvalidVersion);
                }
                MajorDigit
            }
            (MajorDigit, b'.') => FirstMinorDigit,
            (MajorDigit, b'0'..=b'9') => return Err(ParseError::InvalidVersion), // here: major is 1
            (FirstMinorDigit, b'0'..=b'9') => {
                self.http_minor = u16::from(digit);
                MinorDigit
            }
            (MinorDigit | SpacesAfterDigit, b'\r') => AlmostDone,
            (MinorDigit | SpacesAfterDigit, b'\n') => return Ok(None),
            (MinorDigit | SpacesAfterDigit, b' ') => SpacesAfterDigit,
            (MinorDigit, b'0'..=b'9') if self.http_minor <= 99 => {
                self.http_minor = self.http_minor * 10 + u16::from(digit);
                MinorDigit
            }
            (AlmostDone, b'\n') => {
                self.request_end = Some(p - 1);
                return Ok(None);
            }
            _ => return Err(ParseError::InvalidRequest),
        };
        Ok(Some(next))
    }

    /// The request line is complete at the LF at `p`. nginx: the `done:` label.
    pub(super) fn line_done(&mut self, p: usize) -> Result<Step, ParseError> {
        self.pos = p + 1;
        if self.state == RequestLineState::AlmostDone {
            self.request_end = Some(p - 1);
        }
        if self.http_major == 0 && self.method_code != Method::Get {
            // nginx sets `r->http_version` (9: the answer has no header), nothing else
            self.version = 9;
            return Err(ParseError::InvalidMethod09);
        }
        let request_end = *self.request_end.get_or_insert(p);
        self.request_line = self.request_start..request_end;
        self.method = self.request_start..self.method_end + 1;
        let uri_start = self.uri_start.unwrap_or(p);
        self.target = uri_start..self.uri_end.unwrap_or(uri_start).max(uri_start);
        self.version = self.http_major * 1000 + self.http_minor;
        self.state = RequestLineState::Start;
        self.line_done = true;
        Ok(Step::Done(()))
    }

    /// nginx's `r->state != 0`: a line (request or header) is partly parsed, so a buffer
    /// change must keep its bytes.
    pub fn in_line(&self) -> bool {
        if self.line_done {
            self.header_state != RequestHeaderState::Start
        } else {
            self.state != RequestLineState::Start
        }
    }

    /// Where the line being parsed starts (for the large header buffer limits): the request
    /// start, or the header name start; `pos` between lines.
    pub fn line_start(&self) -> usize {
        match (self.line_done, self.in_line()) {
            (false, true) => self.request_start,
            (true, true) => self.header_name_start,
            _ => self.pos,
        }
    }

    /// The path of the target without the args: `uri_start..args_start - 1` or `..uri_end`
    /// (nginx: what `ngx_http_process_request_uri()` takes as `r->uri`).
    pub fn uri_path(&self) -> Range<usize> {
        match self.args_start {
            Some(a) if a > self.target.start && a - 1 <= self.target.end => self.target.start..a - 1,
            _ => self.target.clone(),
        }
    }

    /// The host of an absolute-form target, port included (nginx: `r->host_start..host_end`).
    pub fn host(&self) -> Option<Range<usize>> {
        match (self.host_start, self.host_end) {
            (Some(s), Some(e)) if e >= s => Some(s..e),
            _ => None,
        }
    }

    /// "HTTP/1.1" as sent, with trailing spaces (nginx: `r->http_protocol`); empty for 0.9.
    pub fn protocol(&self) -> Range<usize> {
        match self.http_protocol {
            Some(s) if self.line_done => s..self.request_line.end.max(s),
            _ => 0..0,
        }
    }

    /// Forgets everything but the `headers` allocation, for the next request.
    pub fn reset(&mut self) {
        let mut headers = std::mem::take(&mut self.headers);
        headers.clear();
        *self = RequestHead { headers, ..RequestHead::default() };
    }
}

/// Parses a whole request head in `buf`, resuming where `head` stopped (a complete `head` is
/// reset first), with nginx's defaults: `underscores_in_headers off`,
/// `ignore_invalid_headers on` (invalid lines are dropped). The server does the same with its
/// configuration in request_head.rs; this is the entry point for benches, fuzzing and tests.
///
/// # Returns
/// `Done(())` with `head.len` set (an HTTP/0.9 head ends with its request line); `Again`;
/// the `ParseError` of the request line or of a header line.
///
/// nginx: `ngx_http_process_request_line()` + `ngx_http_process_request_headers()`, parsing only
pub fn parse_request_head(buf: &[u8], head: &mut RequestHead) -> Result<Step, ParseError> {
    if head.len > 0 {
        head.reset();
    }
    if !head.line_done {
        if head.parse_request_line(buf)? == Step::Again {
            return Ok(Step::Again);
        }
        if head.version < 1000 {
            head.len = head.pos;
            return Ok(Step::Done(()));
        }
    }
    loop {
        match head.parse_header_line(buf, false)? {
            Step::Again => return Ok(Step::Again),
            Step::Done(RequestHeaderLine::Header { name, value, invalid }) => {
                if !invalid {
                    head.headers.push((name, value));
                }
            }
            Step::Done(RequestHeaderLine::Done) => {
                head.len = head.pos;
                return Ok(Step::Done(()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::parse::{random_arrivals, random_bytes, xorshift};

    /// Everything a parsed head says, for comparing two ways of parsing the same bytes.
    #[derive(Debug, PartialEq, Eq)]
    struct Parsed {
        method: Vec<u8>,
        code: Method,
        target: Vec<u8>,
        line: Vec<u8>,
        version: u16,
        host: Option<Vec<u8>>,
        args_start: Option<usize>,
        flags: (bool, bool, bool),
        headers: Vec<(Vec<u8>, Vec<u8>)>,
        len: usize,
    }

    type Outcome = Result<Option<Parsed>, ParseError>;

    /// Feeds `input` as reads ending at each of `arrivals` (the buffer grows, as `header_in`
    /// does), resuming one `RequestHead`. `Ok(None)`: still incomplete at the end.
    fn feed(input: &[u8], arrivals: &[usize]) -> Outcome {
        let mut h = RequestHead::default();
        for &n in arrivals {
            if parse_request_head(&input[..n], &mut h)? == Step::Done(()) {
                let b = |r: Range<usize>| input[r].to_vec();
                return Ok(Some(Parsed {
                    method: b(h.method.clone()),
                    code: h.method_code,
                    target: b(h.target.clone()),
                    line: b(h.request_line.clone()),
                    version: h.version,
                    host: h.host().map(b),
                    args_start: h.args_start,
                    flags: (h.complex_uri, h.quoted_uri, h.empty_path_in_uri),
                    headers: h.headers.iter().map(|(n, v)| (b(n.clone()), b(v.clone()))).collect(),
                    len: h.len,
                }));
            }
            assert_eq!(h.pos, n, "Again leaves pos at the end of the data");
        }
        Ok(None)
    }

    fn one_shot(input: &[u8]) -> Outcome {
        feed(input, &[input.len()])
    }

    fn parsed(input: &[u8]) -> Parsed {
        match one_shot(input) {
            Ok(Some(p)) => p,
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(input)),
        }
    }

    fn error(input: &[u8]) -> ParseError {
        match one_shot(input) {
            Err(e) => e,
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(input)),
        }
    }

    // ----- the request line, as nginx 1.22 answers (recorded with tools/nginx-compare) -----

    #[test]
    fn request_line_versions() {
        assert_eq!(parsed(b"GET / HTTP/1.1\r\n\r\n").version, 1001);
        assert_eq!(parsed(b"GET / HTTP/1.0\n\n").version, 1000);
        assert_eq!(parsed(b"GET / HTTP/1.2\r\n\r\n").version, 1002); // served as 1.1
        assert_eq!(parsed(b"GET / HTTP/1.999\r\n\r\n").version, 1999);
        let p = parsed(b"GET / HTTP/1.1  \r\n\r\n"); // spaces after the version
        assert_eq!((p.version, &p.line[..]), (1001, &b"GET / HTTP/1.1  "[..]));
        for v in [&b"2.0"[..], b"3", b"10.0", b"1"] {
            let line = [&b"GET / HTTP/"[..], v, b"1\r\n\r\n"].concat();
            assert_eq!(error(&line), ParseError::InvalidVersion, "{v:?}");
        }
        for bad in [
            &b"HTTP/1.1000"[..],
            b"HTTP/01.1",
            b"HTTP/0.9",
            b"HTTP/1.",
            b"HTTP/1",
            b"http/1.1",
            b"HTTP/1.1 x",
            b"HTTX/1.1",
        ] {
            let line = [&b"GET / "[..], bad, b"\r\n\r\n"].concat();
            assert_eq!(error(&line), ParseError::InvalidRequest, "{bad:?}");
        }
        assert_eq!(error(b"GET / HTTP/1.1\rX"), ParseError::InvalidRequest);
    }

    #[test]
    fn request_line_http09() {
        for line in [&b"GET /\r\n"[..], b"GET /\n", b"GET / \r\n", b"GET  /x?a=1  \r\n", b"\r\n\r\nGET /\r\n"] {
            let p = parsed(line);
            assert_eq!((p.version, p.len), (9, line.len()), "{line:?}");
            assert!(p.headers.is_empty());
        }
        assert_eq!(parsed(b"GET /x?a=1\r\nHost: h\r\n\r\n").len, 12); // the rest is not a head
        assert_eq!(error(b"POST /\r\n"), ParseError::InvalidMethod09);
        assert_eq!(error(b"GET http://a.com\r\n"), ParseError::InvalidRequest);
        assert_eq!(parsed(b"GET http://a.com/p/q\r\n").target, b"/p/q");
    }

    #[test]
    fn request_line_methods() {
        let cases: &[(&[u8], Method)] = &[
            (b"GET", Method::Get),
            (b"HEAD", Method::Head),
            (b"TRACE", Method::Trace),
            (b"CONNECT", Method::Connect),
            (b"PROPPATCH", Method::Proppatch),
            (b"FOO", Method::Unknown),
            (b"F_O-O", Method::Unknown),
        ];
        for (m, code) in cases {
            let p = parsed(&[m, &b" / HTTP/1.1\r\n\r\n"[..]].concat());
            assert_eq!((&p.method[..], p.code), (*m, *code));
        }
        for bad in [&b"get / HTTP/1.1\r\n"[..], b" GET / HTTP/1.1\r\n", b"GET\t/ HTTP/1.1\r\n", b"GET\r\n", b"G@T /"] {
            assert_eq!(error(bad), ParseError::InvalidMethod, "{bad:?}");
        }
        assert_eq!(error(b"GET \r\n"), ParseError::InvalidRequest);
        assert_eq!(error(b"CONNECT h:443 HTTP/1.1\r\n"), ParseError::InvalidRequest);
        // 1.22
    }

    #[test]
    fn request_line_targets() {
        let p = parsed(b"GET http://Example.COM:80/p/a?b HTTP/1.1\r\n\r\n");
        assert_eq!((&p.target[..], p.host.as_deref()), (&b"/p/a?b"[..], Some(&b"Example.COM:80"[..])));
        let p = parsed(b"GET http://example.com HTTP/1.1\r\n\r\n");
        assert_eq!((&p.target[..], p.host.as_deref()), (&b"/"[..], Some(&b"example.com"[..])));
        let p = parsed(b"GET http://example.com?x=1 HTTP/1.1\r\n\r\n");
        assert_eq!((&p.target[..], p.flags.2), (&b"?x=1"[..], true));
        let p = parsed(b"GET http://[::1]:80/z HTTP/1.1\r\n\r\n");
        assert_eq!((&p.target[..], p.host.as_deref()), (&b"/z"[..], Some(&b"[::1]:80"[..])));
        assert_eq!(parsed(b"GET ftp://a.com:/ HTTP/1.1\r\n\r\n").host.as_deref(), Some(&b"a.com:"[..]));
        for bad in [&b"http://ex_a.com/"[..], b"http:/a.com/", b"*", b"/a\x01b", b"/a\x7fb", b"/a\tb", b"1http://a/"] {
            let line = [&b"GET "[..], bad, b" HTTP/1.1\r\n\r\n"].concat();
            assert_eq!(error(&line), ParseError::InvalidRequest, "{bad:?}");
        }
        let p = parsed(b"GET /a\x80b/./c%41?x#y HTTP/1.1\r\n\r\n");
        // sw_uri does not look at '%': quoted_uri stays off once "/." made the URI complex
        assert_eq!((&p.target[..], p.flags.0, p.flags.1), (&b"/a\x80b/./c%41?x#y"[..], true, false));
        assert!(!parsed(b"GET /a/b.c?x/../y HTTP/1.1\r\n\r\n").flags.0);
    }

    // ----- header lines -----

    fn headers(input: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        parsed(&[&b"GET / HTTP/1.1\r\n"[..], input].concat()).headers
    }

    fn header_error(input: &[u8]) -> (ParseError, Vec<u8>) {
        let buf = [&b"GET / HTTP/1.1\r\n"[..], input].concat();
        let mut h = RequestHead::default();
        let e = parse_request_head(&buf, &mut h).unwrap_err();
        (e, buf[h.header_name_start..=h.header_end].to_vec())
    }

    #[test]
    fn header_lines_kept_dropped_refused() {
        let pair = |n: &str, v: &[u8]| (n.as_bytes().to_vec(), v.to_vec());
        assert_eq!(
            headers(b"A:b\r\nNoColon\r\nX:   a  b \t \r\n\r\n"),
            [pair("A", b"b"), pair("NoColon", b""), pair("X", b"a  b \t")]
        );
        assert_eq!(
            headers(b"X:\ta\r\nY: a\x01b\x7f\xff\r\nZ: a\r\r\n\r\n"),
            [pair("X", b"\ta"), pair("Y", b"a\x01b\x7f\xff"), pair("Z", b"a")]
        );
        // invalid names are dropped by parse_request_head (ignore_invalid_headers on)
        assert_eq!(
            headers(b"X_Under: 1\r\n_X: 1\r\nX@Y: 1\r\nX\x80Y: 1\r\nNo/Colon\r\nOk: 2\r\n\r\n"),
            [pair("Ok", b"2")]
        );
        assert_eq!(headers(b"A: b\nC: d\r\n\n"), [pair("A", b"b"), pair("C", b"d")]);
        let refused: &[(&[u8], &[u8])] = &[
            (b"X: a\x00b\r\n", b"X: a\x00"),
            (b"X:\x00\r\n", b"X:\x00"),
            (b"X: a\rb\r\n", b"X: a\r"),
            (b"X : a\r\n", b"X "),
            (b"X\x01: a\r\n", b"X\x01"),
            (b"X\x7f: a\r\n", b"X\x7f"),
            (b" folded\r\n", b" "),
            (b":X\r\n", b":"),
            (b"\r\r\n", b"\r"),
            (b"HTTP/1.1 200 OK\r\n", b"HTTP/1.1 "),
        ];
        for (line, logged) in refused {
            assert_eq!(header_error(line), (ParseError::InvalidRequestHeader, logged.to_vec()), "{line:?}");
        }
    }

    #[test]
    fn header_line_underscores_and_invalid_flag() {
        let mut h = RequestHead::default();
        let buf = b"GET / HTTP/1.1\r\nX_A: 1\r\nX@A: 2\r\n";
        assert_eq!(h.parse_request_line(buf), Ok(Step::Done(())));
        let Ok(Step::Done(RequestHeaderLine::Header { invalid, .. })) = h.parse_header_line(buf, true) else {
            panic!()
        };
        assert!(!invalid, "underscores_in_headers on");
        let Ok(Step::Done(RequestHeaderLine::Header { invalid, value, .. })) = h.parse_header_line(buf, true) else {
            panic!()
        };
        assert!(invalid);
        assert_eq!(&buf[value], b"2");
        assert_eq!(h.parse_header_line(buf, true), Ok(Step::Again));
    }

    #[test]
    fn line_start_and_in_line() {
        let mut h = RequestHead::default();
        assert_eq!(h.parse_request_line(b"\r\n\r\n"), Ok(Step::Again));
        assert!(!h.in_line(), "only empty lines so far: nginx's state 0");
        assert_eq!(h.parse_request_line(b"\r\n\r\nGET /ab"), Ok(Step::Again));
        assert_eq!((h.in_line(), h.line_start()), (true, 4));
        let buf = b"\r\n\r\nGET /ab HTTP/1.0\r\nHost: x";
        assert_eq!(h.parse_request_line(buf), Ok(Step::Done(())));
        assert_eq!(h.parse_header_line(buf, false), Ok(Step::Again));
        assert_eq!((h.in_line(), h.line_start()), (true, 22));
    }

    // ----- properties -----

    /// Requests nginx answers, with most of the request-line and header-line paths.
    const VALID: &[&[u8]] = &[
        b"GET /index.html?q=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: Mozilla/5.0 (X11)\r\n\
          Accept: text/html,*/*;q=0.8\r\nX-Empty:\r\nNoColon\r\nX_Under: 1\r\n\r\nBODY",
        b"\r\n\nPOST  /a//b/../c%20d#f   HTTP/1.0 \nA:  b \nC:\n\nrest",
        b"GET http://Ex.com:8080/p?x=1 HTTP/1.2\r\nHost: h\r\nX: a\tb \t\r\nY: \x01\xff\r\r\n\r\n",
        b"GET http://[::1]/ HTTP/1.1\r\n\r\n",
        b"GET http://h?x HTTP/1.1\r\n\r\n",
        b"GET /x?a=1\r\n",
        b"HEAD /+.a/.b HTTP/1.1\nHost: h\n\n",
    ];

    #[test]
    fn every_split_point_agrees_with_one_shot() {
        for input in VALID {
            let whole = one_shot(input);
            assert!(matches!(whole, Ok(Some(_))), "{:?}: {whole:?}", String::from_utf8_lossy(input));
            for i in 0..=input.len() {
                assert_eq!(feed(input, &[i, input.len()]), whole, "split at {i}");
            }
            let one_by_one: Vec<usize> = (0..=input.len()).collect();
            assert_eq!(feed(input, &one_by_one), whole, "byte at a time");
        }
    }

    /// Bytes that steer the two state machines.
    const ALPHABET: &[u8] = b"GETPOSH HTTP/1.0 9 \r\n\r\n:%./?#[]_-@\t\0\x01\x7f\x80\xffhttp://a:80";

    /// A valid request with some bytes replaced, inserted or dropped.
    fn mutate(seed: &mut u64) -> Vec<u8> {
        let mut v = VALID[(xorshift(seed) % VALID.len() as u64) as usize].to_vec();
        for _ in 0..xorshift(seed) % 4 {
            let at = (xorshift(seed) % (v.len() as u64 + 1)) as usize;
            let b = random_bytes(seed, ALPHABET, 1)[0];
            match xorshift(seed) % 3 {
                0 if at < v.len() => v[at] = b,
                1 if at < v.len() => {
                    v.remove(at);
                }
                _ => v.insert(at, b),
            }
        }
        v
    }

    #[test]
    fn random_splits_agree_and_never_panic() {
        let mut seed = 0x9e37_79b9_7f4a_7c15;
        for round in 0..30_000 {
            let input = if round % 2 == 0 {
                mutate(&mut seed)
            } else {
                let n = (xorshift(&mut seed) % 64) as usize;
                random_bytes(&mut seed, ALPHABET, n)
            };
            let whole = one_shot(&input);
            let arrivals = random_arrivals(&mut seed, input.len());
            assert_eq!(feed(&input, &arrivals), whole, "{:?} as {arrivals:?}", String::from_utf8_lossy(&input));
            if round % 64 == 0 {
                let one_by_one: Vec<usize> = (0..=input.len()).collect();
                assert_eq!(feed(&input, &one_by_one), whole);
            }
        }
    }

    #[test]
    fn any_bytes_never_panic() {
        let all: Vec<u8> = (0..=255).collect();
        let mut seed = 42;
        let mut h = RequestHead::default();
        for _ in 0..20_000 {
            let n = (xorshift(&mut seed) % 48) as usize;
            let buf = random_bytes(&mut seed, &all, n);
            h.reset();
            h.pos = (xorshift(&mut seed) % 50) as usize; // even a position past the data
            let _ = parse_request_head(&buf, &mut h);
            let _ = (h.uri_path(), h.host(), h.protocol(), h.line_start());
        }
    }
}
