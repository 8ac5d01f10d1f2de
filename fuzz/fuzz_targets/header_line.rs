//! Fuzz target: the header-line parser (`http::parse::parse_header_line`), as the upstream
//! response path drives it: line after line until the empty line, `Again` or an error.
//!
//! No panic; ranges inside the buffer; and parsing the input as it arrives byte by byte
//! (re-calling on `Again` with a longer buffer) gives the same lines as parsing it whole.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rginx::core::step::Step;
use rginx::http::parse::{parse_header_line, HeaderLine};

/// The lines found (name, value bytes) and how it ended: Some(pos) at the end line, None on
/// Again, Err on an error.
fn lines(buf: &[u8]) -> (Vec<(Vec<u8>, Vec<u8>)>, Result<Option<usize>, ()>) {
    let mut out = Vec::new();
    let mut pos = 0;
    loop {
        let before = pos;
        match parse_header_line(buf, &mut pos) {
            Ok(Step::Done(HeaderLine::Header { name, value })) => {
                assert!(pos > before && name.end <= pos && value.end <= pos && value.start <= value.end);
                out.push((buf[name].to_vec(), buf[value].to_vec()));
            }
            Ok(Step::Done(HeaderLine::End)) => return (out, Ok(Some(pos))),
            Ok(Step::Again) => {
                assert_eq!(pos, before, "Again leaves pos where the line began");
                return (out, Ok(None));
            }
            Err(_) => return (out, Err(())),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let whole = lines(data);
    if data.len() > 512 {
        return; // keep the quadratic arrival check cheap
    }
    for n in 0..data.len() {
        let (got, end) = lines(&data[..n]);
        assert!(whole.0.starts_with(&got) || end.is_err(), "a prefix found lines the whole input does not");
        if end != Ok(None) {
            assert_eq!((got, end), whole);
            break;
        }
    }
});
