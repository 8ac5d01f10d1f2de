//! Fuzz target: the chunked decoder (`http::parse::ChunkedDecoder`).
//!
//! The first byte picks a split point; the rest is a body. Decoding it in one piece and in
//! two pieces (as two socket reads would deliver it) must give the same data and the same
//! end: `Done` at the same offset, `Again`, or an error. Nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rginx::http::parse::{Chunked, ChunkedDecoder};

/// Data decoded, and how it ended: Some(consumed) for Done, None for Again, Err for errors.
type Outcome = (Vec<u8>, Result<Option<usize>, ()>);

fn decode(pieces: &[&[u8]]) -> Outcome {
    let mut dec = ChunkedDecoder::new(u64::MAX);
    let mut out = Vec::new();
    let mut consumed = 0;
    for piece in pieces {
        let mut pos = 0;
        loop {
            match dec.parse(piece, &mut pos) {
                Ok(Chunked::Data(r)) => out.extend_from_slice(&piece[r]),
                Ok(Chunked::Again) => break,
                Ok(Chunked::Done) => return (out, Ok(Some(consumed + pos))),
                Err(_) => return (out, Err(())),
            }
        }
        assert_eq!(pos, piece.len(), "Again must consume the whole buffer");
        consumed += piece.len();
    }
    (out, Ok(None))
}

fuzz_target!(|data: &[u8]| {
    let Some((&k, body)) = data.split_first() else { return };
    let split = usize::from(k) % (body.len() + 1);
    let whole = decode(&[body]);
    let parts = decode(&[&body[..split], &body[split..]]);
    match (&whole.1, &parts.1) {
        // an error may be found at a different byte, but data before it must agree
        (Err(()), Err(())) => assert!(whole.0.starts_with(&parts.0) || parts.0.starts_with(&whole.0)),
        _ => assert_eq!(whole, parts),
    }
});
