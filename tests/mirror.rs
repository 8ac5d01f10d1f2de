//! nginx-tests: mirror.t, mirror_proxy.t — `mirror URI`: background subrequests with the
//! request's method, arguments and (by default) body, whose answers are dropped; the client
//! gets its whole response without waiting for them, and a mirror that fails leaves it alone.
//! Recorded with nginx-compare and checked with `RGINX_BIN=/usr/sbin/nginx cargo test --test
//! mirror`.
//!
//! As in nginx, the connection itself is released (closed, or kept alive for the next
//! request) when the last mirror has finished: the mirrors hold references on the request.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{Backend, Conn, Rginx};

/// An upstream that records each request (its head, and with `body` the bytes its
/// `Content-Length` announces), waits until `gate()` (at most 10 s), then answers 200.
struct Mirror {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<String>>>,
}

fn mirror_mock(body: bool, gate: impl Fn() -> bool + Send + Sync + 'static) -> Mirror {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (seen2, gate) = (seen.clone(), Arc::new(gate));
    thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let (seen, gate) = (seen2.clone(), gate.clone());
            thread::spawn(move || {
                let _ = s.set_read_timeout(Some(common::TIMEOUT));
                let mut req = Vec::new();
                let mut b = [0u8; 1024];
                let complete = |req: &[u8]| {
                    let Some(end) = req.windows(4).position(|w| w == b"\r\n\r\n") else { return false };
                    let text = String::from_utf8_lossy(&req[..end]).to_ascii_lowercase();
                    let len = text
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .map_or(0, |v| v.trim().parse::<usize>().unwrap_or(0));
                    !body || req.len() >= end + 4 + len
                };
                while !complete(&req) {
                    match s.read(&mut b) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&b[..n]),
                    }
                }
                seen.lock().unwrap().push(String::from_utf8_lossy(&req).into_owned());
                let end = Instant::now() + common::TIMEOUT;
                while !gate() && Instant::now() < end {
                    thread::sleep(Duration::from_millis(5));
                }
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\nConnection: close\r\n\r\nmirror\n");
                while matches!(s.read(&mut b), Ok(n) if n > 0) {}
            });
        }
    });
    Mirror { addr, seen }
}

impl Mirror {
    /// The requests seen so far, waiting (up to 10 s) for at least `n`.
    fn wait_seen(&self, n: usize) -> Vec<String> {
        let end = Instant::now() + common::TIMEOUT;
        loop {
            let v = self.seen.lock().unwrap().clone();
            if v.len() >= n || Instant::now() > end {
                return v;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }
}

/// `%%BACKEND%%` is the content, `%%BACKEND2%%` the mirror.
const CONF: &str = "
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    server {
        listen 127.0.0.1:%%PORT%%;
        server_name localhost;
        location = / { return 200 \"root\"; }
        location /p/ { mirror /m; proxy_pass http://%%BACKEND%%/main; }
        location /off/ { mirror /m; mirror_request_body off; proxy_pass http://%%BACKEND%%/main; }
        location /two/ { mirror /m; mirror /m; proxy_pass http://%%BACKEND%%/main; }
        location /none/ { mirror /m; location /none/in/ { mirror off; proxy_pass http://%%BACKEND%%/main; } }
        location = /m { proxy_pass http://%%BACKEND2%%/mirror; }
    }
}
";

#[test]
fn main_response_does_not_wait() {
    let release = Arc::new(AtomicBool::new(false));
    let rel = release.clone();
    let mirror = mirror_mock(true, move || rel.load(Ordering::SeqCst));
    let main = Backend::echo();
    let r = Rginx::start(CONF, &[main.addr, mirror.addr]);
    let base = r.fd_baseline();
    let mut c = Conn::new(r.port);
    c.send(b"GET /p/x?a=1 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    // The whole response, while the mirror holds its answer.
    let resp = c.read_response(false);
    assert_eq!(resp.status, 200);
    assert!(resp.body_str().starts_with("GET /mainx?a=1 HTTP/1.0\r\n"), "{}", resp.body_str());
    assert_eq!(mirror.wait_seen(1).len(), 1);
    assert!(!release.load(Ordering::SeqCst));
    // The connection goes once the mirror has answered.
    release.store(true, Ordering::SeqCst);
    assert!(c.is_closed(common::TIMEOUT));
    drop(c);
    r.assert_fds_back(base);
}

#[test]
fn mirror_gets_method_args_and_body() {
    let mirror = mirror_mock(true, || true);
    let main = Backend::echo();
    let r = Rginx::start(CONF, &[main.addr, mirror.addr]);
    let mut c = Conn::new(r.port);
    c.send(b"POST /p/x?a=1 HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\n\r\nbody");
    let resp = c.read_response(false);
    assert_eq!(resp.status, 200);
    assert!(resp.body_str().ends_with("Content-Length: 4\r\n\r\nbody"), "{}", resp.body_str());
    let seen = mirror.wait_seen(1);
    assert!(seen[0].starts_with("POST /mirror?a=1 HTTP/1.0\r\n"), "{}", seen[0]);
    assert!(seen[0].ends_with("Content-Length: 4\r\n\r\nbody"), "{:?}", seen[0]);
    // Kept alive: two mirrors for the next one.
    c.send(b"GET /two/y HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(c.read_response(false).status, 200);
    let seen = mirror.wait_seen(3);
    assert_eq!(seen.len(), 3);
    assert!(seen[1..].iter().all(|s| s.starts_with("GET /mirror HTTP/1.0\r\n")), "{seen:?}");
    // `mirror off` in a nested location.
    c.send(b"GET /none/in/z HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(c.read_response(false).status, 200);
    r.assert_no_alerts();
    assert_eq!(mirror.seen.lock().unwrap().len(), 3);
}

#[test]
fn mirror_request_body_off() {
    let mirror = mirror_mock(false, || true);
    let main = Backend::echo();
    let r = Rginx::start(CONF, &[main.addr, mirror.addr]);
    let mut c = Conn::new(r.port);
    c.send(b"POST /off/x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbody");
    let resp = c.read_response(false);
    assert!(resp.body_str().ends_with("\r\n\r\nbody"), "{}", resp.body_str());
    let seen = mirror.wait_seen(1);
    assert!(seen[0].starts_with("POST /mirror HTTP/1.0\r\n"), "{}", seen[0]);
    assert!(seen[0].ends_with("\r\n\r\n"), "no body: {:?}", seen[0]);
    // nginx announces the body it does not send; rginx does not (docs/differences.md).
    assert_eq!(seen[0].contains("Content-Length"), common::is_nginx(), "{}", seen[0]);
}

#[test]
fn failing_mirror_is_harmless() {
    let main = Backend::echo();
    let dead = common::refused_addr();
    let r = Rginx::start(CONF, &[main.addr, dead]);
    let base = r.fd_baseline();
    let mut c = Conn::new(r.port);
    for path in ["/p/a", "/p/b"] {
        c.send(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes());
        let resp = c.read_response(false);
        assert_eq!(resp.status, 200, "{path}");
        assert_eq!(resp.header("connection"), Some("keep-alive"));
        assert!(resp.body_str().starts_with(&format!("GET /main{} HTTP/1.0\r\n", &path[3..])), "{}", resp.body_str());
    }
    assert!(r.wait_log("error.log", "subrequest: \"/m\"", common::TIMEOUT), "{}", r.error_log());
    assert!(r.error_log().contains("connect() failed (111: Connection refused) while connecting to upstream"));
    drop(c);
    r.assert_fds_back(base);
}

#[test]
fn mirror_gets_a_body_kept_in_a_temp_file() {
    // 100 KB: past `client_body_buffer_size` (16k), so the body is in a temp file that the
    // main request and its mirror both send.
    let mirror = mirror_mock(true, || true);
    let main = Backend::echo();
    let r = Rginx::start(CONF, &[main.addr, mirror.addr]);
    let base = r.fd_baseline();
    let body: Vec<u8> = (0..100_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let mut c = Conn::new(r.port);
    c.send(
        format!(
            "PUT /p/big HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    c.send(&body);
    let resp = c.read_response(false);
    assert_eq!(resp.status, 200);
    assert_eq!(common::digest(&resp.body[resp.body.len() - body.len()..]), common::digest(&body));
    let seen = mirror.wait_seen(1);
    assert!(seen[0].starts_with("PUT /mirror HTTP/1.0\r\n"), "{}", &seen[0][..40]);
    assert_eq!(common::digest(&seen[0].as_bytes()[seen[0].len() - body.len()..]), common::digest(&body));
    assert!(c.is_closed(common::TIMEOUT));
    drop(c);
    r.assert_fds_back(base);
}
