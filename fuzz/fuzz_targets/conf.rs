//! Fuzz target: the configuration reader, tokenizer to merge (`conf::load_str`), as
//! `rginx -t` reads a file, with every compiled-in module.
//!
//! Inputs naming `include` are skipped: they would read arbitrary files of the machine (an
//! `include /dev/zero` never ends, in nginx too).
#![no_main]

use std::path::PathBuf;

use libfuzzer_sys::fuzz_target;
use rginx::conf::{load_str, LoadOpts};

fuzz_target!(|data: &[u8]| {
    if data.windows(7).any(|w| w.eq_ignore_ascii_case(b"include")) {
        return;
    }
    let Ok(text) = std::str::from_utf8(data) else { return };
    let opts = LoadOpts {
        prefix: PathBuf::from("/nonexistent-rginx-fuzz"),
        conf_file: PathBuf::from("conf/rginx.conf"),
        globals: None,
        modules: rginx::modules::CORE_MODULES,
    };
    let _ = load_str(text, "fuzz.conf", &opts);
});
