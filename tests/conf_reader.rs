//! Property tests of the whole configuration reader (the fuzzer's `conf` target, in
//! miniature): no input may panic, and every refusal names where it happened. They load with
//! every module rginx is built with (`modules::CORE_MODULES`), so they live here rather than in
//! `conf/`, which names no module.

use std::path::PathBuf;

use rginx::conf::{load_str, LoadOpts};

const VALID: &str = "worker_processes 2;\nevents { worker_connections 64; }\nhttp {\n\
    log_format main '$remote_addr \"$request\" $status';\n\
    upstream b { server 127.0.0.1:9 weight=2 max_fails=3; keepalive 8; }\n\
    server { listen 127.0.0.1:8081 default_server; server_name *.example.com;\n\
    location ^~ /p/ { proxy_pass http://b/q/; proxy_set_header X-A \"$host\\\"\"; }\n\
    location = /r { return 302 http://$host$request_uri; } # comment\n\
    location /n { location /n/m { proxy_buffers 4 8k; client_max_body_size 1m; } } } }\n";

fn opts() -> LoadOpts {
    LoadOpts {
        prefix: PathBuf::from("/nonexistent-rginx-test"),
        conf_file: PathBuf::from("conf/rginx.conf"),
        globals: None,
        modules: rginx::modules::CORE_MODULES,
    }
}

/// xorshift64*: enough randomness for a property test, no crate.
fn rng(seed: &mut u64) -> u64 {
    *seed ^= *seed >> 12;
    *seed ^= *seed << 25;
    *seed ^= *seed >> 27;
    seed.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

#[test]
fn valid_config_loads() {
    let conf = load_str(VALID, "t.conf", &opts());
    assert!(conf.is_ok(), "{:?}", conf.err().map(|e| e.to_string()));
}

#[test]
fn every_truncation_fails_cleanly_with_a_position() {
    for n in 0..VALID.len() {
        if !VALID.is_char_boundary(n) {
            continue;
        }
        // a cut config may still be complete (cut after a `}` or `;`), else an error
        // that says where, as nginx's "unexpected end of file" does
        if let Err(e) = load_str(&VALID[..n], "t.conf", &opts()) {
            let shown = e.to_string();
            assert!(shown.contains("t.conf") || shown.contains("no \"events\""), "cut at {n}: {shown}");
        }
    }
}

#[test]
fn random_mutations_never_panic() {
    let alphabet = b"{};'\"\\$# \n\tabcxyz0129kmsK:/*.=~^@";
    let mut seed = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..3000 {
        let mut text = VALID.as_bytes().to_vec();
        for _ in 0..1 + rng(&mut seed) % 4 {
            let at = (rng(&mut seed) % text.len() as u64) as usize;
            let b = alphabet[(rng(&mut seed) % alphabet.len() as u64) as usize];
            match rng(&mut seed) % 3 {
                0 => text[at] = b,
                1 => text.insert(at, b),
                _ => {
                    text.remove(at);
                }
            }
        }
        if let Ok(s) = std::str::from_utf8(&text) {
            let _ = load_str(s, "t.conf", &opts());
        }
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut seed = 7;
    for _ in 0..3000 {
        let len = (rng(&mut seed) % 200) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| (rng(&mut seed) % 128) as u8).collect();
        if let Ok(s) = std::str::from_utf8(&bytes) {
            let _ = load_str(s, "t.conf", &opts());
        }
    }
}
