//! HTTP/1 wire parsers: the client request head (glue over `httparse`), the upstream status
//! line and header lines, chunked bodies (both directions), and request-URI normalisation.
//!
//! Every parser is incremental in nginx's sense: given a partial input it answers `Again`
//! (NGX_AGAIN) and the caller reads more bytes and calls again. None of them panics, whatever
//! the bytes; malformed input is an `Err(ParseError)` whose `Display` is nginx's log string.
//!
//! nginx: src/http/ngx_http_parse.c
//!
//! Differs from nginx:
//! - No parser state lives in the request. The status-line, header-line and request-head
//!   parsers are pure functions of the buffer: `Again` leaves `*pos` where it was and the
//!   caller re-parses the (now longer) line from there. nginx keeps `r->state` and resumes
//!   mid-line; lines are short and bounded by the header buffer, so re-scanning costs little.
//!   Only the chunked decoder, which spans a whole body, keeps a state (`ChunkedDecoder`).
//! - The client request line and headers are parsed by `httparse` (SIMD scanning), not by
//!   `ngx_http_parse_request_line()`; see `parse_request_head` for every rule that differs.
//! - `parse_header_line` returns ranges; it does not lowercase the name or compute
//!   `r->header_hash` (callers compare names with `eq_ignore_ascii_case`).
//! - Chunked framing accepts a bare LF wherever CRLF is expected, as nginx 1.22 did; newer
//!   nginx (current nginx/nginx master) insists on CRLF there. Trailers are always skipped
//!   (no `keep_trailers`, which newer nginx added for `proxy_pass_trailers`).
//! - `normalize_uri` is `ngx_http_parse_complex_uri()` with `merge_slashes on` and without
//!   the Win32 backslash rules; it takes only the path (`split_target` cuts the args off).

use std::fmt;
use std::mem::MaybeUninit;
use std::ops::Range;

use crate::core::step::Step;

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
    /// HTTP/2 or later on an HTTP/1 connection, or (rginx only) HTTP/0.9 and HTTP/1.x with
    /// x > 1. nginx: NGX_HTTP_PARSE_INVALID_VERSION → 505.
    InvalidVersion,
    /// A request header line nginx rejects. nginx: NGX_HTTP_PARSE_INVALID_HEADER → 400.
    InvalidRequestHeader,
    /// More than `MAX_HEADERS` request headers. nginx has no count limit, only the buffer
    /// size (NGX_HTTP_REQUEST_HEADER_TOO_LARGE, sent as a 400).
    TooManyHeaders,
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
            | ParseError::InvalidRequestHeader
            | ParseError::TooManyHeaders
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
            ParseError::InvalidRequestHeader => "client sent invalid header line",
            // rginx's own: nginx has no header count limit
            ParseError::TooManyHeaders => "client sent too many header lines",
        })
    }
}

impl std::error::Error for ParseError {}

// ---------------------------------------------------------------------------------------
// Chunked bodies
// ---------------------------------------------------------------------------------------

/// nginx's NGX_MAX_OFF_T_VALUE: chunk sizes must fit a signed 64-bit file offset.
const MAX_OFF_T: u64 = i64::MAX as u64;

/// Where the chunked decoder stands. One variant per `sw_*` state of
/// `ngx_http_parse_chunked()`, plus `Done`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkedState {
    /// nginx: `sw_chunk_start`, expecting the first hex digit of a size.
    Start,
    /// nginx: `sw_chunk_size`, reading hex digits.
    Size,
    /// nginx: `sw_chunk_extension`, skipping `;ext=val` up to the line end.
    Extension,
    /// nginx: `sw_chunk_extension_almost_done`, CR seen after a size line, LF due.
    ExtensionAlmostDone,
    /// nginx: `sw_chunk_data`, inside chunk data.
    Data,
    /// nginx: `sw_after_data`, expecting the CRLF that closes the data.
    AfterData,
    /// nginx: `sw_after_data_almost_done`, CR seen after data, LF due.
    AfterDataAlmostDone,
    /// nginx: `sw_last_chunk_extension`, skipping extensions of the "0" chunk.
    LastExtension,
    /// nginx: `sw_last_chunk_extension_almost_done`, CR seen after "0", LF due.
    LastExtensionAlmostDone,
    /// nginx: `sw_trailer`, at the start of a trailer line (or of the final empty line).
    Trailer,
    /// nginx: `sw_trailer_almost_done`, CR of the final empty line seen, LF due.
    TrailerAlmostDone,
    /// nginx: `sw_trailer_header`, skipping a trailer header line.
    TrailerHeader,
    /// nginx: `sw_trailer_header_almost_done`, CR ending a trailer line seen, LF due.
    TrailerHeaderAlmostDone,
    /// The last chunk and the trailer section are consumed (nginx returns NGX_DONE).
    Done,
}

/// What one `ChunkedDecoder::parse` call found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chunked {
    /// Body bytes at this range of the buffer, already consumed. Never empty.
    Data(Range<usize>),
    /// The buffer ended mid-frame: read more and call again (NGX_AGAIN).
    Again,
    /// Last chunk and trailers consumed (NGX_DONE).
    Done,
}

/// Decoder for `Transfer-Encoding: chunked`, for request and upstream response bodies.
///
/// A hand-rolled byte state machine, as nginx has, rather than `httparse::parse_chunk_size`:
/// that function needs the whole size line in one slice, so a line split across two reads
/// would force us to copy and bound a partial line, while a state machine carries the split
/// for free in two words (`state`, `size`) and never buffers anything. Extensions and
/// trailers are skipped byte by byte, costing no memory, so they need no length limit.
///
/// nginx: `ngx_http_chunked_t` + `ngx_http_parse_chunked()`
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    /// Where we are in the framing (nginx: `ctx->state`).
    state: ChunkedState,
    /// While reading a size line: the size so far. In `Data`: bytes left in this chunk
    /// (nginx: `ctx->size`, which the caller there decrements itself).
    size: u64,
    /// Larger chunk sizes are an error; at most NGX_MAX_OFF_T_VALUE as in nginx.
    max_chunk_size: u64,
}

impl ChunkedDecoder {
    /// A decoder at the start of a body. Chunk sizes over `max_chunk_size` (or over
    /// `i64::MAX`, nginx's off_t limit) make `parse` fail with `InvalidChunk`.
    ///
    /// nginx: `ngx_pcalloc(sizeof(ngx_http_chunked_t))`
    pub fn new(max_chunk_size: u64) -> Self {
        ChunkedDecoder { state: ChunkedState::Start, size: 0, max_chunk_size: max_chunk_size.min(MAX_OFF_T) }
    }

    /// Consumes bytes from `buf[*pos..]`, advancing `*pos`.
    ///
    /// # Returns
    /// - `Data(range)`: the next piece of body data, a range into `buf`, already consumed.
    /// - `Again`: `buf` is exhausted mid-frame; `*pos == buf.len()`.
    /// - `Done`: the body ended. `*pos` is just past the final CRLF of the trailer section;
    ///   bytes after it belong to the next pipelined message and are left alone. Later calls
    ///   keep returning `Done` without consuming.
    /// - `Err(InvalidChunk)`: `*pos` points at the offending byte.
    ///
    /// nginx: `ngx_http_parse_chunked()`
    pub fn parse(&mut self, buf: &[u8], pos: &mut usize) -> Result<Chunked, ParseError> {
        while *pos < buf.len() {
            match self.state {
                ChunkedState::Done => return Ok(Chunked::Done),
                ChunkedState::Data => {
                    // here: size > 0, as only a non-zero size line leads to Data
                    let start = *pos;
                    let n = self.size.min((buf.len() - start) as u64);
                    *pos += n as usize;
                    self.size -= n;
                    if self.size == 0 {
                        self.state = ChunkedState::AfterData;
                    }
                    return Ok(Chunked::Data(start..*pos));
                }
                _ => {
                    self.state = self.step(buf[*pos])?;
                    *pos += 1;
                }
            }
        }
        if self.state == ChunkedState::Done {
            return Ok(Chunked::Done);
        }
        Ok(Chunked::Again)
    }

    /// True once the last chunk and the trailers have been consumed.
    pub fn is_done(&self) -> bool {
        self.state == ChunkedState::Done
    }

    /// Bytes of body still expected in the current chunk (for sizing reads); 0 when not
    /// inside chunk data.
    ///
    /// nginx: `ctx->size` (nginx's `ctx->length` also counts the framing still due).
    pub fn size_hint(&self) -> u64 {
        match self.state {
            ChunkedState::Data => self.size,
            _ => 0,
        }
    }

    /// Gives back the last `n` bytes of the `Data` range just returned, so a caller with less
    /// room than data can take part of it now and the rest on the next `parse` (the caller also
    /// rewinds its `pos` by `n`).
    pub fn unread(&mut self, n: u64) {
        if n > 0 {
            self.size += n;
            self.state = ChunkedState::Data;
        }
    }

    /// The framing state, for debug logs (nginx: "http chunked byte: %02Xd s:%d").
    pub fn state(&self) -> ChunkedState {
        self.state
    }

    /// One framing byte: the `switch (state)` of `ngx_http_parse_chunked()` (1.22, which
    /// takes a bare LF wherever CRLF is due).
    #[inline]
    fn step(&mut self, ch: u8) -> Result<ChunkedState, ParseError> {
        use ChunkedState::*;
        let next = match (self.state, ch) {
            (Start, _) => {
                self.size = u64::from(hex_digit(ch).ok_or(ParseError::InvalidChunk)?);
                Size
            }
            (Size, _) if hex_digit(ch).is_some() => {
                self.push_size_digit(ch)?;
                Size
            }
            (Size, b'\r') if self.size == 0 => LastExtensionAlmostDone,
            (Size, b'\n') if self.size == 0 => Trailer,
            (Size, b';' | b' ' | b'\t') if self.size == 0 => LastExtension,
            (Size, b'\r') => ExtensionAlmostDone,
            (Size, b'\n') => Data,
            (Size, b';' | b' ' | b'\t') => Extension,
            (Extension, b'\r') => ExtensionAlmostDone,
            (Extension, b'\n') | (ExtensionAlmostDone, b'\n') => Data,
            (Extension, _) => Extension,
            (AfterData, b'\r') => AfterDataAlmostDone,
            (AfterData, b'\n') | (AfterDataAlmostDone, b'\n') => Start,
            (LastExtension, b'\r') => LastExtensionAlmostDone,
            (LastExtension, b'\n') | (LastExtensionAlmostDone, b'\n') => Trailer,
            (LastExtension, _) => LastExtension,
            (Trailer, b'\r') => TrailerAlmostDone,
            (Trailer, b'\n') | (TrailerAlmostDone, b'\n') => Done,
            (Trailer, _) => TrailerHeader,
            (TrailerHeader, b'\r') => TrailerHeaderAlmostDone,
            (TrailerHeader, b'\n') | (TrailerHeaderAlmostDone, b'\n') => Trailer,
            (TrailerHeader, _) => TrailerHeader,
            // Data and Done never reach here (see parse); all else is junk: "goto invalid"
            _ => return Err(ParseError::InvalidChunk),
        };
        Ok(next)
    }

    /// `size = size * 16 + digit`, refusing what nginx refuses (`size > NGX_MAX_OFF_T_VALUE
    /// / 16`) and anything over this decoder's limit.
    fn push_size_digit(&mut self, ch: u8) -> Result<(), ParseError> {
        if self.size > MAX_OFF_T / 16 {
            return Err(ParseError::InvalidChunk);
        }
        self.size = self.size * 16 + u64::from(hex_digit(ch).unwrap_or(0));
        if self.size > self.max_chunk_size {
            return Err(ParseError::InvalidChunk);
        }
        Ok(())
    }
}

/// The value of one hex digit, either case.
fn hex_digit(ch: u8) -> Option<u8> {
    match ch {
        b'0'..=b'9' => Some(ch - b'0'),
        b'a'..=b'f' => Some(ch - b'a' + 10),
        b'A'..=b'F' => Some(ch - b'A' + 10),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------
// Upstream status line
// ---------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------
// Header lines (upstream responses, trailers)
// ---------------------------------------------------------------------------------------

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

/// Bytes that leave `sw_value` (and `sw_space_after_value`) where it is: all but NUL, LF
/// and CR. Trailing SP/HTAB are trimmed when the line ends.
static VALUE_PLAIN: [bool; 256] = {
    let mut t = [true; 256];
    t[0] = false;
    t[b'\n' as usize] = false;
    t[b'\r' as usize] = false;
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
pub fn parse_header_line(buf: &[u8], pos: &mut usize) -> Result<Step<HeaderLine>, ParseError> {
    use HeaderState::*;
    let base = *pos;
    let invalid = ParseError::InvalidHeader;
    let (mut line_start, mut name_end, mut value) = (base, base, base..base);
    let mut state = Start;
    let mut next = base;
    while next < buf.len() {
        // fast path: runs of plain name or value bytes change nothing but the position
        let plain = match state {
            Name => &NAME_PLAIN,
            Value => &VALUE_PLAIN,
            _ => &NOTHING_PLAIN,
        };
        while next < buf.len() && plain[usize::from(buf[next])] {
            next += 1;
        }
        let Some(&ch) = buf.get(next) else { break };
        let p = next;
        next += 1;
        if ch == b'\n' {
            match state {
                Start | HeaderAlmostDone => {
                    *pos = p + 1;
                    return Ok(Step::Done(HeaderLine::End));
                }
                IgnoreLine => {
                    state = Start;
                    continue;
                }
                Name => (name_end, value) = (p, p..p),
                SpaceBeforeValue => value = p..p,
                Value => value.end = trim_end(buf, value.start, p),
                AlmostDone => {}
            }
            *pos = p + 1;
            let name = line_start..name_end;
            return Ok(Step::Done(HeaderLine::Header { name, value }));
        }
        // here: not LF
        state = match (state, ch) {
            (Start, b'\r') => HeaderAlmostDone,
            (Start, _) if ch <= 0x20 || ch == 0x7f || ch == b':' => return Err(invalid),
            (Start, _) => {
                line_start = p;
                Name
            }
            (Name, b':') => {
                name_end = p;
                SpaceBeforeValue
            }
            (Name, b'\r') => {
                (name_end, value) = (p, p..p);
                AlmostDone
            }
            // IIS may send the duplicate "HTTP/1.1 ..." lines
            (Name, b'/') if buf[line_start..p] == *b"HTTP" => IgnoreLine,
            (Name, _) if ch <= 0x20 || ch == 0x7f => return Err(invalid),
            (Name, _) => Name,
            (SpaceBeforeValue, b' ' | b'\t') => SpaceBeforeValue,
            (SpaceBeforeValue | Value, 0) => return Err(invalid),
            (SpaceBeforeValue, b'\r') => {
                value = p..p;
                AlmostDone
            }
            (SpaceBeforeValue, _) => {
                value = p..p;
                Value
            }
            (Value, b'\r') => {
                value.end = trim_end(buf, value.start, p);
                AlmostDone
            }
            // here: Value only stops at NUL, CR, LF (VALUE_PLAIN)
            (AlmostDone, b'\r') => AlmostDone,
            (IgnoreLine, _) => IgnoreLine,
            _ => return Err(invalid),
        };
    }
    Ok(Step::Again)
}

// ---------------------------------------------------------------------------------------
// Request URI
// ---------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------
// Client request head
// ---------------------------------------------------------------------------------------

/// Most request headers `parse_request_head` accepts; more is `TooManyHeaders` (400).
///
/// nginx has no count limit, only `large_client_header_buffers` (4 × 8k by default). 100 is
/// generous (browsers send 10-20), keeps the `httparse` header array on the stack (3.2 KiB)
/// and bounds the work per request.
pub const MAX_HEADERS: usize = 100;

/// A parsed request head: ranges into the buffer it was parsed from.
///
/// nginx: the `request_start`..`http_protocol` pointers and `headers_in.headers` of
/// `ngx_http_request_t`
#[derive(Debug, Clone, Default)]
pub struct RequestHead {
    /// The method token, e.g. "GET" (nginx: `r->method_name`).
    pub method: Range<usize>,
    /// The request target as sent, e.g. "/a/b?x=1" (nginx: `r->unparsed_uri`); see
    /// `split_target` and `normalize_uri`.
    pub target: Range<usize>,
    /// 1000 for HTTP/1.0, 1001 for HTTP/1.1 (nginx: `r->http_version`).
    pub version: u16,
    /// (name, value) ranges in arrival order; values are trimmed of SP/HTAB.
    pub headers: Vec<(Range<usize>, Range<usize>)>,
    /// Length of the head including leading empty lines and the final empty line: the body
    /// (or the next pipelined request) starts at `buf[len..]`.
    pub len: usize,
}

/// Parses a complete request head from `buf[0..]`.
///
/// # Returns
/// `Done(())` with `head` filled in, or `Again` when the head is incomplete (`head.headers`
/// is then cleared; its allocation is reused across calls). Errors: `InvalidMethod`,
/// `InvalidRequest`, `InvalidVersion` (505), `InvalidRequestHeader`, `TooManyHeaders`; see
/// `ParseError::status`.
///
/// Like nginx: empty lines (any CR/LF bytes) before the request line are skipped; method
/// bytes must be `A-Z`, `_` or `-`; several spaces may separate the request-line parts;
/// CRLF or bare LF end lines; "HTTP/2.0" and up is 505; control bytes and spaces in the
/// target are 400.
///
/// Differs from nginx (`httparse` is stricter):
/// - HTTP/0.9 requests ("GET /\r\n") and HTTP/1.x with x > 1 ("HTTP/1.2", which nginx takes
///   as 1.1-compatible) are `InvalidVersion` (505); trailing spaces after the version are 400.
/// - A header name with non-token bytes (e.g. '@') is 400; nginx ignores the line
///   (`ignore_invalid_headers on`). Underscores are kept: applying nginx's default
///   `underscores_in_headers off` (drop such headers) is the caller's job.
/// - Control bytes other than HTAB in a header value are 400; nginx refuses only NUL.
///
/// nginx: `ngx_http_parse_request_line()` + `ngx_http_parse_header_line()` as driven by
/// `ngx_http_process_request_line()` / `ngx_http_process_request_headers()`
pub fn parse_request_head(buf: &[u8], head: &mut RequestHead) -> Result<Step, ParseError> {
    head.headers.clear();
    // nginx's sw_start: skip CR and LF bytes before the method
    let skip = buf.iter().position(|&b| b != b'\r' && b != b'\n').unwrap_or(buf.len());
    let rest = &buf[skip..];
    if check_method(rest)? == Step::Again {
        return Ok(Step::Again);
    }
    let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let mut config = httparse::ParserConfig::default();
    config.allow_multiple_spaces_in_request_line_delimiters(true);
    let n = match config.parse_request_with_uninit_headers(&mut req, rest, &mut headers) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(Step::Again),
        Err(e) => return Err(map_httparse_error(e, rest)),
    };
    // httparse hands out slices of `rest`; turn them back into offsets into `buf`
    let at = |part: &[u8]| {
        let start = part.as_ptr() as usize - buf.as_ptr() as usize;
        start..start + part.len()
    };
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(ParseError::InvalidRequest); // here: unreachable once Complete
    };
    head.method = at(method.as_bytes());
    head.target = at(target.as_bytes());
    head.version = 1000 + u16::from(minor);
    for h in req.headers.iter() {
        head.headers.push((at(h.name.as_bytes()), at(h.value)));
    }
    head.len = skip + n;
    Ok(Step::Done(()))
}

/// nginx's method rule, checked before `httparse` (which takes any token): `A-Z`, `_`, `-`,
/// at least one byte, up to the first space. `Again` if no space has arrived yet.
///
/// nginx: `sw_start` and `sw_method` of `ngx_http_parse_request_line()`
fn check_method(line: &[u8]) -> Result<Step, ParseError> {
    for (i, &b) in line.iter().enumerate() {
        match b {
            b'A'..=b'Z' | b'_' | b'-' => {}
            b' ' if i > 0 => return Ok(Step::Done(())),
            _ => return Err(ParseError::InvalidMethod),
        }
    }
    Ok(Step::Again)
}

/// Turns an `httparse` error into nginx's reaction. Request-line errors are re-examined
/// with nginx's rules, because `httparse` says only "Version"/"Token"/"NewLine" and nginx
/// answers 505 for a too-new version but 400 for other garbage.
fn map_httparse_error(e: httparse::Error, rest: &[u8]) -> ParseError {
    match e {
        httparse::Error::TooManyHeaders => ParseError::TooManyHeaders,
        httparse::Error::HeaderName | httparse::Error::HeaderValue => ParseError::InvalidRequestHeader,
        // a bare CR in the header section is NewLine too: a sound request line blames it
        httparse::Error::NewLine => request_line_error(rest).unwrap_or(ParseError::InvalidRequestHeader),
        _ => request_line_error(rest).unwrap_or(ParseError::InvalidRequest),
    }
}

/// Why nginx would refuse the request line at the start of `rest` (possibly incomplete),
/// or `None` if it would not. The method is already checked.
fn request_line_error(rest: &[u8]) -> Option<ParseError> {
    let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
    let line = rest[..end].strip_suffix(b"\r").unwrap_or(&rest[..end]);
    let mut parts = line.split(|&b| b == b' ').filter(|p| !p.is_empty());
    let _method = parts.next();
    let target = parts.next()?;
    if target.iter().any(|&b| b < 0x21 || b == 0x7f) {
        return Some(ParseError::InvalidRequest);
    }
    let Some(version) = parts.next() else {
        // "GET /": HTTP/0.9, which rginx does not serve
        return Some(ParseError::InvalidVersion);
    };
    if parts.next().is_some() {
        return Some(ParseError::InvalidRequest);
    }
    let err = version_error(version);
    if err.is_none() && line.ends_with(b" ") {
        // "HTTP/1.1 ": nginx's sw_spaces_after_digit takes it, httparse does not
        return Some(ParseError::InvalidRequest);
    }
    err
}

/// nginx's version rules (`sw_http_H`..`sw_minor_digit`): "HTTP/", major with no leading
/// zero, major > 1 is 505 as soon as seen; "." and minor digits. rginx adds: minor other
/// than 0 or 1 is 505. `None`: the version is fine (or only incomplete).
fn version_error(v: &[u8]) -> Option<ParseError> {
    let prefix = &v[..v.len().min(5)];
    if *prefix != b"HTTP/"[..prefix.len()] {
        return Some(ParseError::InvalidRequest);
    }
    let digits = &v[prefix.len()..];
    let major_len = digits.iter().take_while(|b| b.is_ascii_digit()).count();
    let major = &digits[..major_len];
    match major.first() {
        None if digits.is_empty() => return None,
        None | Some(b'0') => return Some(ParseError::InvalidRequest),
        Some(_) if major != b"1" => return Some(ParseError::InvalidVersion),
        Some(_) => {}
    }
    let minor = match &digits[major_len..] {
        [] => return None,
        [b'.', minor @ ..] => minor,
        _ => return Some(ParseError::InvalidRequest),
    };
    match minor {
        [] | [b'0'] | [b'1'] => None,
        _ if minor.iter().all(u8::is_ascii_digit) => Some(ParseError::InvalidVersion),
        _ => Some(ParseError::InvalidRequest),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // ----- chunked -----

    const CHUNKED: &[u8] = b"4\r\nWiki\r\n5;ext=1\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n\
                             0\r\nX-Trailer: yes\r\n\r\nGET /next HTTP/1.1\r\n";
    const NEXT: &[u8] = b"GET /next HTTP/1.1\r\n";

    /// Feeds one read's worth of bytes; Some(pos) once the body is done.
    fn feed(dec: &mut ChunkedDecoder, buf: &[u8], body: &mut Vec<u8>) -> Result<Option<usize>, ParseError> {
        let mut pos = 0;
        loop {
            match dec.parse(buf, &mut pos)? {
                Chunked::Data(r) => {
                    assert!(!r.is_empty());
                    body.extend_from_slice(&buf[r]);
                }
                Chunked::Again => {
                    assert_eq!(pos, buf.len());
                    return Ok(None);
                }
                Chunked::Done => return Ok(Some(pos)),
            }
        }
    }

    fn decode(input: &[u8]) -> Result<(Vec<u8>, Option<usize>), ParseError> {
        let mut dec = ChunkedDecoder::new(u64::MAX);
        let mut body = Vec::new();
        let done = feed(&mut dec, input, &mut body)?;
        Ok((body, done))
    }

    #[test]
    fn chunked_whole() {
        let (body, done) = decode(CHUNKED).unwrap();
        assert_eq!(body, b"Wikipedia in\r\n\r\nchunks.");
        assert_eq!(&CHUNKED[done.unwrap()..], NEXT);
    }

    #[test]
    fn chunked_every_split_point() {
        for i in 0..=CHUNKED.len() {
            let (a, b) = CHUNKED.split_at(i);
            let mut dec = ChunkedDecoder::new(u64::MAX);
            let mut body = Vec::new();
            let done = match feed(&mut dec, a, &mut body).unwrap() {
                Some(p) => a.len() - p + b.len(), // done inside a: rest of a is the next request
                None => b.len() - feed(&mut dec, b, &mut body).unwrap().unwrap(),
            };
            assert_eq!(body, b"Wikipedia in\r\n\r\nchunks.", "split at {i}");
            assert_eq!(done, NEXT.len(), "split at {i}");
            assert!(dec.is_done());
        }
    }

    #[test]
    fn chunked_byte_at_a_time() {
        let mut dec = ChunkedDecoder::new(u64::MAX);
        let mut body = Vec::new();
        let body_end = CHUNKED.len() - NEXT.len();
        for (i, b) in CHUNKED[..body_end].iter().enumerate() {
            let done = feed(&mut dec, std::slice::from_ref(b), &mut body).unwrap();
            assert_eq!(done.is_some(), i == body_end - 1, "byte {i}");
            if dec.state() == ChunkedState::Data {
                assert!(dec.size_hint() > 0);
            }
        }
        assert_eq!(body, b"Wikipedia in\r\n\r\nchunks.");
    }

    #[test]
    fn chunked_done_is_sticky_and_leaves_pipelined_bytes() {
        let mut dec = ChunkedDecoder::new(u64::MAX);
        let buf = b"0\r\n\r\nNEXT";
        let mut pos = 0;
        assert_eq!(dec.parse(buf, &mut pos), Ok(Chunked::Done));
        assert_eq!(pos, 5);
        assert_eq!(dec.parse(buf, &mut pos), Ok(Chunked::Done));
        assert_eq!(pos, 5);
        let mut pos = 0;
        assert_eq!(dec.parse(b"", &mut pos), Ok(Chunked::Done));
    }

    #[test]
    fn chunked_size_hint() {
        let mut dec = ChunkedDecoder::new(u64::MAX);
        let mut pos = 0;
        assert_eq!(dec.parse(b"10\r\nabc", &mut pos), Ok(Chunked::Data(4..7)));
        assert_eq!(dec.size_hint(), 13);
        assert_eq!(dec.state(), ChunkedState::Data);
    }

    #[test]
    fn chunked_bare_lf_and_trailers() {
        let (body, done) = decode(b"4\nWiki\n0\nA: b\nC: d\r\n\nX").unwrap();
        assert_eq!(body, b"Wiki");
        assert_eq!(done, Some(21));
        let (body, done) = decode(b"3 ; x\r\nabc\r\n0;last\r\n\r\n").unwrap();
        assert_eq!((body.as_slice(), done), (&b"abc"[..], Some(22)));
        let (body, done) = decode(b"000\r\n\r\n").unwrap();
        assert_eq!((body.len(), done), (0, Some(7)));
    }

    #[test]
    fn chunked_incomplete_is_again() {
        for input in [&b""[..], b"4", b"4\r", b"4\r\nWi", b"4\r\nWiki\r", b"0\r\n", b"0\r\nX: y\r\n"] {
            assert_eq!(decode(input).unwrap().1, None, "{input:?}");
        }
    }

    #[test]
    fn chunked_bad_input() {
        let bad: &[&[u8]] = &[
            b"zz\r\n",
            b"-1\r\n",
            b"\r\n",
            b"4x\r\n",
            b"ffffffffffffffffff\r\n",
            b"8000000000000000\r\n",
            b"4\r\nWikiX\r\n",
            b"4\r\nWiki\rX",
            b"4\rX",
            b"4;a\rX",
            b"0\r\n\rX",
            b"0\r\nA: b\rX",
            b"0\rX",
            b" 4\r\n",
        ];
        for input in bad {
            assert_eq!(decode(input), Err(ParseError::InvalidChunk), "{input:?}");
        }
        // the error points at the offending byte
        let mut dec = ChunkedDecoder::new(u64::MAX);
        let mut pos = 0;
        assert_eq!(dec.parse(b"4x", &mut pos), Err(ParseError::InvalidChunk));
        assert_eq!(pos, 1);
    }

    #[test]
    fn chunked_size_limits() {
        assert!(decode(b"7fffffffffffffff\r\nabc").is_ok()); // NGX_MAX_OFF_T_VALUE itself
        let mut dec = ChunkedDecoder::new(1024);
        let mut pos = 0;
        assert!(dec.parse(b"400\r\n", &mut pos).is_ok());
        let mut dec = ChunkedDecoder::new(1024);
        let mut pos = 0;
        assert_eq!(dec.parse(b"401\r\n", &mut pos), Err(ParseError::InvalidChunk));
    }

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

    // ----- request head -----

    const BROWSER_GET: &[u8] = b"GET /index.html?q=1 HTTP/1.1\r\nHost: example.com\r\n\
        User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0\r\n\
        Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n\
        Accept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate, br\r\n\
        Connection: keep-alive\r\nUpgrade-Insecure-Requests: 1\r\n\r\nBODY";

    fn head(buf: &[u8]) -> Result<Step, ParseError> {
        parse_request_head(buf, &mut RequestHead::default())
    }

    #[test]
    fn request_head_browser_get() {
        let mut h = RequestHead::default();
        assert_eq!(parse_request_head(BROWSER_GET, &mut h), Ok(Step::Done(())));
        assert_eq!(&BROWSER_GET[h.method.clone()], b"GET");
        assert_eq!(&BROWSER_GET[h.target.clone()], b"/index.html?q=1");
        assert_eq!(h.version, 1001);
        assert_eq!(h.headers.len(), 7);
        let (n, v) = h.headers[0].clone();
        assert_eq!((&BROWSER_GET[n], &BROWSER_GET[v]), (&b"Host"[..], &b"example.com"[..]));
        assert_eq!(&BROWSER_GET[h.len..], b"BODY");
        // every shorter prefix is Again, and the Vec's allocation is reused
        let cap = h.headers.capacity();
        for i in 0..h.len {
            assert_eq!(parse_request_head(&BROWSER_GET[..i], &mut h), Ok(Step::Again), "{i}");
        }
        assert_eq!(parse_request_head(BROWSER_GET, &mut h), Ok(Step::Done(())));
        assert_eq!(h.headers.capacity(), cap);
    }

    #[test]
    fn request_head_leading_empty_lines_and_bare_lf() {
        let buf = b"\r\n\n\r\nPOST  /x   HTTP/1.0\nA:  b \nC:\n\nrest";
        let mut h = RequestHead::default();
        assert_eq!(parse_request_head(buf, &mut h), Ok(Step::Done(())));
        assert_eq!(&buf[h.method.clone()], b"POST");
        assert_eq!(&buf[h.target.clone()], b"/x");
        assert_eq!(h.version, 1000);
        let values: Vec<&[u8]> = h.headers.iter().map(|(_, v)| &buf[v.clone()]).collect();
        assert_eq!(values, [&b"b"[..], b""]);
        assert_eq!(&buf[h.len..], b"rest");
        assert_eq!(head(b"\r\n\r\n"), Ok(Step::Again));
        assert_eq!(head(b"\r"), Ok(Step::Again));
    }

    #[test]
    fn request_head_too_many_headers() {
        let mut req = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..MAX_HEADERS {
            req.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
        }
        let mut ok = req.clone();
        ok.extend_from_slice(b"\r\n");
        let mut h = RequestHead::default();
        assert_eq!(parse_request_head(&ok, &mut h), Ok(Step::Done(())));
        assert_eq!(h.headers.len(), MAX_HEADERS);
        req.extend_from_slice(b"One-More: v\r\n\r\n");
        assert_eq!(head(&req), Err(ParseError::TooManyHeaders));
    }

    #[test]
    fn request_head_errors() {
        let cases: &[(&[u8], ParseError)] = &[
            (b"get / HTTP/1.1\r\n\r\n", ParseError::InvalidMethod),
            (b"G@T / HTTP/1.1\r\n\r\n", ParseError::InvalidMethod),
            (b"GE\x01", ParseError::InvalidMethod),
            (b" GET / HTTP/1.1\r\n\r\n", ParseError::InvalidMethod),
            (b"GET / HTTP/2.0\r\n\r\n", ParseError::InvalidVersion),
            (b"GET / HTTP/2", ParseError::InvalidVersion),
            (b"GET / HTTP/10.0\r\n\r\n", ParseError::InvalidVersion),
            (b"GET / HTTP/1.2\r\n\r\n", ParseError::InvalidVersion),
            (b"GET /\r\n\r\n", ParseError::InvalidVersion),
            (b"GET / HTTP/0.9\r\n\r\n", ParseError::InvalidRequest),
            (b"GET / HTTX/1.1\r\n\r\n", ParseError::InvalidRequest),
            (b"GET / HTTP/1.1 \r\n\r\n", ParseError::InvalidRequest),
            (b"GET / HTTP/1.x\r\n\r\n", ParseError::InvalidRequest),
            (b"GET /a b HTTP/1.1\r\n\r\n", ParseError::InvalidRequest),
            (b"GET /a\x01b HTTP/1.1\r\n\r\n", ParseError::InvalidRequest),
            (b"GET / HTTP/1.1\rX\r\n\r\n", ParseError::InvalidRequest),
            (b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", ParseError::InvalidRequestHeader),
            (b"GET / HTTP/1.1\r\nName : x\r\n\r\n", ParseError::InvalidRequestHeader),
            (b"GET / HTTP/1.1\r\nA: b\0c\r\n\r\n", ParseError::InvalidRequestHeader),
            (b"GET / HTTP/1.1\r\n folded\r\n\r\n", ParseError::InvalidRequestHeader),
            (b"GET / HTTP/1.1\r\nA: b\r\n\rX", ParseError::InvalidRequestHeader),
        ];
        for (input, want) in cases {
            assert_eq!(head(input), Err(*want), "{:?}", String::from_utf8_lossy(input));
        }
        assert_eq!(ParseError::InvalidVersion.status(), 505);
        assert_eq!(ParseError::InvalidMethod.status(), 400);
        assert_eq!(ParseError::InvalidMethod.to_string(), "client sent invalid method");
    }

    // ----- never panic -----

    /// xorshift64*: a deterministic byte source for the no-panic sweep.
    fn rng(state: &mut u64) -> u64 {
        *state ^= *state >> 12;
        *state ^= *state << 25;
        *state ^= *state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    #[test]
    fn random_input_never_panics() {
        const ALPHABET: &[u8] = b"HTP/1.0 9a:\r\n\r\n%2e./?#\0\x7f\xffGET-_;fF";
        let mut seed = 0x9e37_79b9_7f4a_7c15;
        let mut out = Vec::new();
        let mut h = RequestHead::default();
        for _ in 0..20_000 {
            let len = (rng(&mut seed) % 40) as usize;
            let buf: Vec<u8> = (0..len).map(|_| ALPHABET[(rng(&mut seed) % ALPHABET.len() as u64) as usize]).collect();
            let start = (rng(&mut seed) % 48) as usize;
            let mut dec = ChunkedDecoder::new(rng(&mut seed));
            let mut pos = start;
            while let Ok(Chunked::Data(_)) = dec.parse(&buf, &mut pos) {}
            let _ = parse_status_line(&buf, &mut start.clone());
            let _ = parse_header_line(&buf, &mut start.clone());
            let _ = normalize_uri(&buf, &mut out);
            let _ = split_target(&buf);
            let _ = parse_request_head(&buf, &mut h);
        }
    }
}
