//! Fuzz target: the upstream status-line parser (`http::parse::parse_status_line`).
//!
//! Whatever the bytes, it must not panic; a `Done` must advance past a line end inside the
//! buffer and give ranges inside it; and the answer must not depend on how much of the
//! input had arrived: every prefix that the parser accepts as `Again` must, once complete,
//! give the same result as the whole input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rginx::core::step::Step;
use rginx::http::parse::parse_status_line;

fuzz_target!(|data: &[u8]| {
    let mut pos = 0;
    let whole = parse_status_line(data, &mut pos);
    if let Ok(Step::Done(s)) = &whole {
        assert!(pos <= data.len() && data[pos - 1] == b'\n');
        assert!(s.start <= s.end && s.end <= pos);
    }
    // byte-at-a-time arrival: each shorter prefix is Again, an error, or the same Done
    for n in 0..data.len() {
        let mut p = 0;
        match parse_status_line(&data[..n], &mut p) {
            Ok(Step::Again) => assert_eq!(p, 0),
            Ok(Step::Done(s)) => {
                assert_eq!(whole, Ok(Step::Done(s)));
                break;
            }
            Err(e) => {
                assert_eq!(whole, Err(e));
                break;
            }
        }
    }
});
