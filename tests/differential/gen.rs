//! The differential test's corpus: odd HTTP/1 requests, each tagged with its family
//! (`group/sub`), from a seeded generator, so that every run sends the same bytes.
//!
//! nginx: the inputs of src/http/ngx_http_parse.c (`ngx_http_parse_request_line`,
//! `ngx_http_parse_header_line`, `ngx_http_parse_chunked`) and of
//! src/http/ngx_http_request.c (`ngx_http_process_request_headers`, the Host,
//! Content-Length, Transfer-Encoding and Expect checks).
//!
//! Differs from nginx: nothing; this is test input. Requests go to one of three locations of
//! the test's config: `/p` (proxied with nginx's default headers), `/h` (proxied, with
//! `X-Host: $host` added, so that the host a server settled on shows in the backend bytes),
//! `/ret` (`return 200`) and `/redir` (`return 302` to a URL with `$uri`).

use crate::{framing, header_lines, request_line};

/// One request of the corpus.
#[derive(Debug, Clone)]
pub struct Case {
    /// `group/sub`, e.g. `version/minor`; the unit of the report and of the allowlist.
    pub family: &'static str,
    /// The bytes sent, as they go on the wire.
    pub raw: Vec<u8>,
}

/// xorshift64*: tiny, deterministic, good enough to pick test input.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1) // zero is xorshift's fixed point
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (`0` when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        (self.next() % n as u64) as usize
    }

    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
}

/// The corpus under construction; `rng` picks versions and locations where a family does not
/// care which.
pub struct Corpus {
    pub cases: Vec<Case>,
    pub rng: Rng,
}

impl Corpus {
    pub fn add(&mut self, family: &'static str, raw: Vec<u8>) {
        self.cases.push(Case { family, raw });
    }

    /// A location: mostly proxied (the backend bytes are the richest comparison).
    pub fn loc(&mut self) -> &'static [u8] {
        let locs = [P, P, P, H, R];
        locs[self.rng.below(locs.len())]
    }

    pub fn ver(&mut self) -> &'static [u8] {
        let versions = [V10, V11, V11];
        versions[self.rng.below(versions.len())]
    }
}

pub const P: &[u8] = b"/p";
pub const H: &[u8] = b"/h";
pub const R: &[u8] = b"/ret";
pub const V10: &[u8] = b"HTTP/1.0";
pub const V11: &[u8] = b"HTTP/1.1";
pub const HOST: &[u8] = b"Host: localhost";

/// A valid chunked body for "hello".
pub const CHUNKED: &[u8] = b"5\r\nhello\r\n0\r\n\r\n";

pub fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

pub fn rep(b: u8, n: usize) -> Vec<u8> {
    vec![b; n]
}

/// `LINE CRLF (HEADER CRLF)* CRLF BODY`.
pub fn msg(line: &[u8], headers: &[&[u8]], body: &[u8]) -> Vec<u8> {
    let mut v = line.to_vec();
    v.extend_from_slice(b"\r\n");
    for h in headers {
        v.extend_from_slice(h);
        v.extend_from_slice(b"\r\n");
    }
    v.extend_from_slice(b"\r\n");
    v.extend_from_slice(body);
    v
}

/// `METHOD TARGET VERSION`.
pub fn line(method: &[u8], target: &[u8], version: &[u8]) -> Vec<u8> {
    cat(&[method, b" ", target, b" ", version])
}

/// A GET with `Host: localhost` and the extra header lines `headers`.
pub fn get(target: &[u8], version: &[u8], headers: &[&[u8]]) -> Vec<u8> {
    let mut hs: Vec<&[u8]> = vec![HOST];
    hs.extend_from_slice(headers);
    msg(&line(b"GET", target, version), &hs, b"")
}

/// The whole corpus, in a fixed order for a given seed.
pub fn corpus(seed: u64) -> Vec<Case> {
    let mut c = Corpus { cases: Vec::new(), rng: Rng::new(seed) };
    request_line::methods(&mut c);
    request_line::targets(&mut c);
    request_line::long_targets(&mut c);
    request_line::versions(&mut c);
    request_line::spacing(&mut c);
    request_line::line_endings(&mut c);
    header_lines::names(&mut c);
    header_lines::values(&mut c);
    header_lines::hosts(&mut c);
    header_lines::expect(&mut c);
    header_lines::connection(&mut c);
    framing::content_length(&mut c);
    framing::transfer_encoding(&mut c);
    framing::chunked_bodies(&mut c);
    framing::pipelines(&mut c);
    framing::splitting(&mut c);
    mutations(&mut c, 320);
    c.cases
}

/// A POST to `loc` with `Host` and `hs`, then `body`.
pub fn post(loc: &[u8], v: &[u8], hs: &[&[u8]], body: &[u8]) -> Vec<u8> {
    let mut all: Vec<&[u8]> = vec![HOST];
    all.extend_from_slice(hs);
    msg(&line(b"POST", loc, v), &all, body)
}

// --- random mutations of valid requests ------------------------------------------------------

/// Bytes that parsers treat specially.
const ODD: &[u8] = b"\x00\t\n\r \"%/:;_,.@\\\x01\x7f\x80\xffA0-?#";

/// `n` valid requests with one to three random edits each: finds the families no one named.
fn mutations(c: &mut Corpus, n: usize) {
    let seeds: Vec<Vec<u8>> = vec![
        get(P, V11, &[b"User-Agent: t/1", b"Accept: */*"]),
        get(H, V10, &[b"X-A: 1"]),
        get(R, V11, &[]),
        post(P, V11, &[b"Content-Length: 5"], b"hello"),
        post(P, V11, &[b"Transfer-Encoding: chunked"], b"5;e=1\r\nhello\r\n0\r\nX-T: 1\r\n\r\n"),
        post(H, V11, &[b"Expect: 100-continue", b"Content-Length: 3"], b"abc"),
    ];
    for _ in 0..n {
        let mut raw = c.rng.pick(&seeds).clone();
        let edits = 1 + c.rng.below(3);
        let mut family = "mutate/replace";
        for _ in 0..edits {
            family = mutate(&mut c.rng, &mut raw);
        }
        c.add(family, raw);
    }
}

/// One random edit of `raw`; returns the family of the edit.
fn mutate(rng: &mut Rng, raw: &mut Vec<u8>) -> &'static str {
    let at = rng.below(raw.len());
    let byte = *rng.pick(ODD);
    match rng.below(5) {
        0 => {
            if let Some(b) = raw.get_mut(at) {
                *b = byte;
            }
            "mutate/replace"
        }
        1 => {
            raw.insert(at, byte);
            "mutate/insert"
        }
        2 => {
            if at < raw.len() {
                raw.remove(at);
            }
            "mutate/delete"
        }
        3 => {
            if let Some(b) = raw.get_mut(at) {
                *b = if b.is_ascii_uppercase() { b.to_ascii_lowercase() } else { b.to_ascii_uppercase() };
            }
            "mutate/case"
        }
        _ => {
            // Duplicate one whole line (a header twice, a chunk twice, a request line twice).
            let start = raw[..at].iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            let end = raw[at..].iter().position(|&b| b == b'\n').map_or(raw.len(), |i| at + i + 1);
            let line = raw[start..end].to_vec();
            raw.splice(end..end, line);
            "mutate/dup-line"
        }
    }
}
