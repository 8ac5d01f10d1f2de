//! Parser micro-benchmarks (harness = false): `cargo bench --bench parse`.
//!
//! Measures, in release mode, with std `Instant` and ~3 s in all:
//! - ns per typical browser request head (`parse_request_head`, ~400 bytes), per small head
//!   (the one benches/callgrind.sh sends), and an 8 KiB head fed one byte per call (a slow
//!   client);
//! - ns per upstream status line + 6 header lines (`parse_status_line`, `parse_header_line`);
//! - chunked decode throughput (`ChunkedDecoder`) for 16 KiB chunks and for 10-byte chunks.
//!
//! nginx: the parsers of src/http/ngx_http_parse.c; nginx has no such bench.

use std::hint::black_box;
use std::time::{Duration, Instant};

use rginx::core::step::Step;
use rginx::http::parse::*;

/// Time given to each measurement.
const BUDGET: Duration = Duration::from_millis(700);

const REQUEST: &[u8] = b"GET /static/js/app.bundle.js?v=20240101 HTTP/1.1\r\n\
Host: www.example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0\r\n\
Accept: */*\r\n\
Accept-Language: en-US,en;q=0.5\r\n\
Accept-Encoding: gzip, deflate, br\r\n\
Referer: https://www.example.com/index.html\r\n\
Connection: keep-alive\r\n\
Cookie: session=3f2a9c1be7d04e5a; theme=dark\r\n\
Sec-Fetch-Dest: script\r\n\
\r\n";

/// What benches/callgrind.sh's client (python's http.client) sends.
const SMALL_REQUEST: &[u8] =
    b"GET /small HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nAccept-Encoding: identity\r\nUser-Agent: callgrind.sh\r\n\r\n";

const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\n\
Server: backend/1.0\r\n\
Date: Mon, 01 Jan 2024 00:00:00 GMT\r\n\
Content-Type: text/html; charset=utf-8\r\n\
Content-Length: 1234\r\n\
Connection: keep-alive\r\n\
Cache-Control: max-age=60\r\n\
\r\n";

/// Runs `f` in batches until `BUDGET` is spent; returns (calls, elapsed).
fn run(mut f: impl FnMut()) -> (u64, Duration) {
    let start = Instant::now();
    let mut calls = 0u64;
    loop {
        for _ in 0..64 {
            f();
        }
        calls += 64;
        let elapsed = start.elapsed();
        if elapsed >= BUDGET {
            return (calls, elapsed);
        }
    }
}

fn bench_request_head(request: &[u8]) {
    let mut head = RequestHead::default();
    let (calls, t) = run(|| {
        let r = parse_request_head(black_box(request), &mut head);
        assert_eq!(r, Ok(Step::Done(())));
        black_box(&head);
    });
    let ns = t.as_nanos() as f64 / calls as f64;
    println!("request head ({} bytes, {} headers): {ns:.0} ns", request.len(), head.headers.len());
}

fn bench_response_head() {
    let (calls, t) = run(|| {
        let buf = black_box(RESPONSE);
        let mut pos = 0;
        let Ok(Step::Done(status)) = parse_status_line(buf, &mut pos) else { panic!("status line") };
        black_box(status);
        loop {
            match parse_header_line(buf, &mut pos) {
                Ok(Step::Done(HeaderLine::End)) => break,
                Ok(Step::Done(h)) => {
                    black_box(h);
                }
                other => panic!("header line: {other:?}"),
            }
        }
    });
    let ns = t.as_nanos() as f64 / calls as f64;
    println!("status line + 6 headers ({} bytes): {ns:.0} ns", RESPONSE.len());
}

/// A chunked body of `count` chunks of `size` bytes, plus the last chunk.
fn chunked_body(size: usize, count: usize) -> Vec<u8> {
    let mut body = Vec::with_capacity(count * (size + 12));
    for i in 0..count {
        body.extend_from_slice(format!("{size:x}\r\n").as_bytes());
        body.extend(std::iter::repeat_n(b'a' + (i % 26) as u8, size));
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"0\r\n\r\n");
    body
}

fn bench_chunked(label: &str, size: usize, count: usize) {
    let wire = chunked_body(size, count);
    let payload = (size * count) as f64;
    let (calls, t) = run(|| {
        let mut dec = ChunkedDecoder::new(u64::MAX);
        let (mut pos, mut got) = (0, 0);
        loop {
            match dec.parse(black_box(&wire), &mut pos) {
                Ok(Chunked::Data(r)) => got += r.len(),
                Ok(Chunked::Done) => break,
                other => panic!("chunked: {other:?}"),
            }
        }
        assert_eq!(got, size * count);
    });
    // the decoder returns data as ranges and never copies it: big chunks cost per chunk,
    // not per byte, hence the ns/chunk column
    let secs = t.as_secs_f64() / calls as f64;
    println!(
        "chunked {label}: {:.0} MB/s payload, {:.0} MB/s wire, {:.1} ns/chunk",
        payload / secs / 1e6,
        wire.len() as f64 / secs / 1e6,
        secs * 1e9 / (count + 1) as f64
    );
}

/// A slow client: an 8 KiB head arriving one byte per read. The parser resumes where it
/// stopped (nginx's `r->state`), so this costs about what one 8 KiB parse does, not n²/2.
fn bench_request_head_byte_at_a_time() {
    let mut big = b"GET / HTTP/1.1\r\nHost: h\r\n".to_vec();
    while big.len() < 8 * 1024 {
        big.extend_from_slice(b"X-Filler: 0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz\r\n");
    }
    big.extend_from_slice(b"\r\n");
    let mut head = RequestHead::default();
    let (calls, t) = run(|| {
        head.reset();
        for n in 1..=big.len() {
            if parse_request_head(black_box(&big[..n]), &mut head) == Ok(Step::Done(())) {
                break;
            }
        }
        black_box(&head);
    });
    let us = t.as_nanos() as f64 / calls as f64 / 1000.0;
    println!("request head ({} bytes) fed one byte per call: {us:.1} us", big.len());
}

fn main() {
    bench_request_head(REQUEST);
    bench_request_head(SMALL_REQUEST);
    bench_request_head_byte_at_a_time();
    bench_response_head();
    bench_chunked("16 KiB chunks", 16 * 1024, 64);
    bench_chunked("10-byte chunks", 10, 100_000);
}
