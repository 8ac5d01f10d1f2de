//! Fuzz target: the client request head parser (`http::parse::parse_request_head`, nginx's
//! request-line and header-line state machines, resumable).
//!
//! No panic; ranges inside the buffer; and the same answer whether the head arrives whole, in
//! two reads split where the first byte says, or one byte per read: the parser keeps its
//! state between calls (nginx's `r->state`), so each byte is looked at once.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rginx::core::step::Step;
use rginx::http::parse::{parse_request_head, ParseError, RequestHead};

/// What a parse produced, as bytes: comparable across runs.
#[derive(Debug, PartialEq)]
struct Seen {
    rc: Result<bool, ParseError>,
    method: Vec<u8>,
    target: Vec<u8>,
    version: u16,
    headers: Vec<(Vec<u8>, Vec<u8>)>,
    len: usize,
}

/// Parses `buf` as it would arrive in reads ending at each of `cuts` (then the rest).
fn parse(buf: &[u8], cuts: &[usize]) -> Seen {
    let mut head = RequestHead::default();
    let mut rc = Ok(false);
    for &end in cuts.iter().chain(std::iter::once(&buf.len())) {
        rc = match parse_request_head(&buf[..end], &mut head) {
            Ok(Step::Done(())) => Ok(true),
            Ok(Step::Again) => Ok(false),
            Err(e) => Err(e),
        };
        if rc != Ok(false) {
            break;
        }
    }
    let done = rc == Ok(true);
    let get = |r: &std::ops::Range<usize>| buf.get(r.clone()).map(<[u8]>::to_vec).unwrap_or_default();
    if done {
        assert!(head.len <= buf.len());
        for (n, v) in &head.headers {
            assert!(n.end <= head.len && v.end <= head.len && n.start <= n.end && v.start <= v.end);
        }
    }
    Seen {
        rc,
        method: if done { get(&head.method) } else { Vec::new() },
        target: if done { get(&head.target) } else { Vec::new() },
        version: if done { head.version } else { 0 },
        headers: if done { head.headers.iter().map(|(n, v)| (get(n), get(v))).collect() } else { Vec::new() },
        len: if done { head.len } else { 0 },
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&k, buf)) = data.split_first() else { return };
    let whole = parse(buf, &[]);
    let split = usize::from(k) % (buf.len() + 1);
    assert_eq!(parse(buf, &[split]), whole, "split at {split}");
    if buf.len() <= 256 {
        let cuts: Vec<usize> = (0..buf.len()).collect();
        assert_eq!(parse(buf, &cuts), whole, "byte at a time");
    }
});
