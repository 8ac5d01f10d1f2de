//! The chunked transfer-coding decoder, for request bodies and upstream response bodies.
//!
//! nginx: src/http/ngx_http_parse.c (`ngx_http_parse_chunked()`)
//!
//! Differs from nginx:
//! - Chunked framing accepts a bare LF wherever CRLF is expected, as nginx 1.22 did; newer
//!   nginx (current nginx/nginx master) insists on CRLF there. Trailers are always skipped
//!   (no `keep_trailers`, which newer nginx added for `proxy_pass_trailers`).
//! - The decoder does not count the framing still due (nginx's `ctx->length`).

use std::ops::Range;

use super::parse::{hex_digit, ParseError};

/// nginx's NGX_MAX_OFF_T_VALUE: chunk sizes must fit a signed 64-bit file offset.
const MAX_OFF_T: u64 = i64::MAX as u64;

/// The largest chunk size nginx takes: it computes `ctx->length = ctx->size + 4` (the
/// framing still due: LF "0" LF LF) in an `off_t` and refuses a negative result, so a size
/// within 4 of NGX_MAX_OFF_T_VALUE is invalid (400), as the differential test showed.
const MAX_CHUNK: u64 = MAX_OFF_T - 4;

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
        ChunkedDecoder { state: ChunkedState::Start, size: 0, max_chunk_size: max_chunk_size.min(MAX_CHUNK) }
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
        assert!(decode(b"7ffffffffffffffb\r\nabc").is_ok()); // NGX_MAX_OFF_T_VALUE - 4
        assert!(decode(b"7ffffffffffffffc\r\nabc").is_err()); // its `size + 4` overflows
        assert!(decode(b"7fffffffffffffff\r\nabc").is_err());
        let mut dec = ChunkedDecoder::new(1024);
        let mut pos = 0;
        assert!(dec.parse(b"400\r\n", &mut pos).is_ok());
        let mut dec = ChunkedDecoder::new(1024);
        let mut pos = 0;
        assert_eq!(dec.parse(b"401\r\n", &mut pos), Err(ParseError::InvalidChunk));
    }

    // ----- properties -----

    /// What decoding `input`, read in pieces ending at `arrivals`, yields: the body, and
    /// where the body ended (`Ok(Some(offset))`), or that it has not (`Ok(None)`), or where
    /// the framing broke (`Err(offset)`). Offsets count from the start of `input`.
    fn decode_in_pieces(input: &[u8], arrivals: &[usize], max: u64) -> (Vec<u8>, Result<Option<usize>, usize>) {
        let mut dec = ChunkedDecoder::new(max);
        let (mut body, mut from) = (Vec::new(), 0);
        for &n in arrivals {
            let piece = &input[from..n];
            let mut pos = 0;
            loop {
                match dec.parse(piece, &mut pos) {
                    Ok(Chunked::Data(r)) => body.extend_from_slice(&piece[r]),
                    Ok(Chunked::Again) => break,
                    Ok(Chunked::Done) => return (body, Ok(Some(from + pos))),
                    Err(_) => return (body, Err(from + pos)),
                }
            }
            from = n;
        }
        (body, Ok(None))
    }

    #[test]
    fn random_splits_agree_with_one_shot() {
        use crate::http::parse::{random_arrivals, random_bytes, xorshift};
        const ALPHABET: &[u8] = b"0123456789abcdefxX;= \t\r\n\r\nA:b";
        let mut seed = 3;
        for round in 0..20_000 {
            let input = if round % 2 == 0 {
                let mut v = CHUNKED.to_vec();
                let at = (xorshift(&mut seed) % v.len() as u64) as usize;
                v[at] = random_bytes(&mut seed, ALPHABET, 1)[0];
                v
            } else {
                let n = (xorshift(&mut seed) % 48) as usize;
                random_bytes(&mut seed, ALPHABET, n)
            };
            let max = if round % 3 == 0 { 0x20 } else { u64::MAX };
            let whole = decode_in_pieces(&input, &[input.len()], max);
            let arrivals = random_arrivals(&mut seed, input.len());
            assert_eq!(decode_in_pieces(&input, &arrivals, max), whole, "{input:?} as {arrivals:?}");
            if round % 64 == 0 {
                let one_by_one: Vec<usize> = (0..=input.len()).collect();
                assert_eq!(decode_in_pieces(&input, &one_by_one, max), whole, "{input:?} byte by byte");
            }
        }
    }

    #[test]
    fn any_bytes_never_panic() {
        use crate::http::parse::{random_bytes, xorshift};
        let all: Vec<u8> = (0..=255).collect();
        let mut seed = 5;
        for _ in 0..20_000 {
            let n = (xorshift(&mut seed) % 48) as usize;
            let buf = random_bytes(&mut seed, &all, n);
            let mut dec = ChunkedDecoder::new(xorshift(&mut seed));
            let mut pos = (xorshift(&mut seed) % 50) as usize;
            while let Ok(Chunked::Data(_)) = dec.parse(&buf, &mut pos) {}
        }
    }
}
