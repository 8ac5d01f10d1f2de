//! nginx-tests: addition.t — `add_before_body` / `add_after_body`: the answers of two
//! subrequests around the body of a main request's 200 of an `addition_types` type, in the
//! order before, body, after, whatever order they finish in; other responses untouched.
//! Recorded with nginx-compare and checked with `RGINX_BIN=/usr/sbin/nginx cargo test --test
//! addition`.
//!
//! The orders are made by the mocks, not by timing: a mock holds its answer until another
//! mock's connection was closed by the server, which the server does when it has read that
//! answer whole (the subrequest is finished).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::{Conn, Rginx};

/// A one-answer-per-connection upstream: reads a request head, waits until `gate()` (at most
/// 10 s), answers `200` with `ctype` and `body`, then reads until the server closes, and only
/// then counts the answer as `finished`.
struct Mock {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    finished: Arc<AtomicBool>,
}

fn mock(ctype: &'static str, body: &'static str, gate: impl Fn() -> bool + Send + Sync + 'static) -> Mock {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let (accepted, finished) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)));
    let (acc, fin, gate) = (accepted.clone(), finished.clone(), Arc::new(gate));
    thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            acc.fetch_add(1, Ordering::SeqCst);
            let (fin, gate) = (fin.clone(), gate.clone());
            thread::spawn(move || {
                let _ = s.set_read_timeout(Some(common::TIMEOUT));
                let mut head = Vec::new();
                let mut b = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut b) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&b[..n]),
                    }
                }
                wait_until(&*gate);
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes());
                while matches!(s.read(&mut b), Ok(n) if n > 0) {}
                fin.store(true, Ordering::SeqCst);
            });
        }
    });
    Mock { addr, accepted, finished }
}

fn wait_until(f: &dyn Fn() -> bool) {
    let end = Instant::now() + common::TIMEOUT;
    while !f() && Instant::now() < end {
        thread::sleep(Duration::from_millis(5));
    }
}

/// `%%BACKEND%%` plays the main content, `%%BACKEND2%%` the before part, `%%BACKEND3%%` the
/// after part.
const CONF: &str = "
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    server {
        listen 127.0.0.1:%%PORT%%;
        server_name localhost;
        location = / { return 200 \"root\"; }
        location /p/ { add_before_body /before; add_after_body /after; proxy_pass http://%%BACKEND%%/main; }
        location = /before { proxy_pass http://%%BACKEND2%%/b; }
        location = /after { proxy_pass http://%%BACKEND3%%/a; }
        location /t/ { default_type text/html; add_before_body /rb; add_after_body /ra; return 200 \"main\\n\"; }
        location /plain/ { add_before_body /rb; add_after_body /ra; return 200 \"main\\n\"; }
        location /types/ { addition_types text/plain; add_before_body /rb; return 200 \"main\\n\"; }
        location /after-only/ { default_type text/html; add_after_body /ra; return 200 \"main\\n\"; }
        location /nf/ { default_type text/html; add_before_body /rb; return 404; }
        location = /rb { return 200 \"BEFORE\\n\"; }
        location = /ra { return 200 \"AFTER\\n\"; }
    }
}
";

fn get(c: &mut Conn, path: &str) -> common::Response {
    c.send(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes());
    c.read_response(false)
}

#[test]
fn before_main_after_in_order() {
    let main = mock("text/html", "main\n", || true);
    let before = mock("text/plain", "BEFORE\n", || true);
    let after = mock("text/plain", "AFTER\n", || true);
    let r = Rginx::start(CONF, &[main.addr, before.addr, after.addr]);
    let mut c = Conn::new(r.port);
    let resp = get(&mut c, "/p/x");
    assert_eq!(resp.status, 200);
    assert!(resp.chunked, "the length is no longer known");
    assert_eq!(resp.header("content-length"), None);
    assert_eq!(resp.header("content-type"), Some("text/html"));
    assert_eq!(resp.body_str(), "BEFORE\nmain\nAFTER\n");
    // The same with `return` answers, kept alive; and close-delimited for HTTP/1.0.
    let resp = get(&mut c, "/t/");
    assert_eq!((resp.chunked, resp.body_str().as_str()), (true, "BEFORE\nmain\nAFTER\n"));
    let resp = get(&mut c, "/after-only/");
    assert_eq!(resp.body_str(), "main\nAFTER\n");
    let raw = common::http(r.port, b"GET /t/ HTTP/1.0\r\nHost: localhost\r\n\r\n");
    let resp = common::parse_response(&raw);
    assert_eq!((resp.chunked, resp.body_str().as_str()), (false, "BEFORE\nmain\nAFTER\n"));
    r.assert_no_alerts();
}

#[test]
fn after_finishing_before_before() {
    // The main answer and the after part go first; the before part answers only once the
    // server has read the after part whole: its output waits for the before part's turn.
    let after = mock("text/plain", "AFTER\n", || true);
    let after_done = after.finished.clone();
    let before = mock("text/plain", "BEFORE\n", move || after_done.load(Ordering::SeqCst));
    let main = mock("text/html", "main\n", || true);
    let r = Rginx::start(CONF, &[main.addr, before.addr, after.addr]);
    let base = r.fd_baseline();
    let mut c = Conn::new(r.port);
    let resp = get(&mut c, "/p/x");
    assert_eq!((resp.status, resp.body_str().as_str()), (200, "BEFORE\nmain\nAFTER\n"));
    drop(c);
    r.assert_fds_back(base);
}

#[test]
fn main_finishing_before_before() {
    // The before part holds its answer until the main answer was read whole.
    let main = mock("text/html", "main\n", || true);
    let main_done = main.finished.clone();
    let before = mock("text/plain", "BEFORE\n", move || main_done.load(Ordering::SeqCst));
    let after = mock("text/plain", "AFTER\n", || true);
    let r = Rginx::start(CONF, &[main.addr, before.addr, after.addr]);
    let base = r.fd_baseline();
    let mut c = Conn::new(r.port);
    let resp = get(&mut c, "/p/x");
    assert_eq!((resp.status, resp.body_str().as_str()), (200, "BEFORE\nmain\nAFTER\n"));
    drop(c);
    r.assert_fds_back(base);
}

#[test]
fn other_types_and_statuses_untouched() {
    let main = mock("text/plain", "main\n", || true);
    let before = mock("text/plain", "BEFORE\n", || true);
    let after = mock("text/plain", "AFTER\n", || true);
    let r = Rginx::start(CONF, &[main.addr, before.addr, after.addr]);
    let mut c = Conn::new(r.port);
    // text/plain is not in the default `addition_types text/html`.
    let resp = get(&mut c, "/p/x");
    assert_eq!((resp.status, resp.body_str().as_str()), (200, "main\n"));
    assert_eq!(resp.header("content-length"), Some("5"));
    let resp = get(&mut c, "/plain/");
    assert_eq!((resp.chunked, resp.body_str().as_str()), (false, "main\n"));
    // `addition_types text/plain` adds to text/html.
    let resp = get(&mut c, "/types/");
    assert_eq!((resp.chunked, resp.body_str().as_str()), (true, "BEFORE\nmain\n"));
    // Only a 200 is wrapped.
    let resp = get(&mut c, "/nf/");
    assert_eq!(resp.status, 404);
    assert_eq!(resp.body_str(), common::error_page("404 Not Found"));
    assert_eq!((before.accepted.load(Ordering::SeqCst), after.accepted.load(Ordering::SeqCst)), (0, 0));
}
