//! nginx-tests: http_header_timeout (client_header_timeout), body_timeout (client_body_timeout),
//! send_timeout, and keepalive_timeout on a fresh connection — each with a 1 s timeout, checked
//! against generous bounds.
//!
//! nginx closes on a header or body timeout without sending anything (the 408 appears only in
//! the access log), and on a send timeout simply stops and closes.

mod common;

use std::io::{Read, Write};
use std::thread;
use std::time::{Duration, Instant};

use common::{Backend, Conn, Rginx, TIMEOUT};

const CONF: &str = "
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    client_header_timeout 1s;
    client_body_timeout 1s;
    send_timeout 1s;
    keepalive_timeout 1s;
    keepalive_requests 100000;
    server {
        listen 127.0.0.1:%%PORT%%;
        location / { return 200 \"r=$uri\"; }
        location /big { return 200 \"%%BIG%%\"; }
        location /proxy { proxy_pass http://%%BACKEND%%; }
    }
}
";

fn start() -> (Rginx, Backend) {
    let backend = Backend::echo();
    let conf = CONF.replace("%%BIG%%", &"x".repeat(3000));
    let r = Rginx::start(&conf, &[backend.addr]);
    (r, backend)
}

/// Asserts that the server closes `c` with no bytes between `min` and 6 s from now.
fn closed_silently_after(c: &mut Conn, min: Duration) {
    let start = Instant::now();
    let got = c.read_to_close();
    let took = start.elapsed();
    assert!(got.is_empty(), "got {:?}", String::from_utf8_lossy(&got));
    assert!(took >= min, "closed after {took:?}, before the timeout");
    assert!(took < Duration::from_secs(6), "closed only after {took:?}");
}

#[test]
fn client_header_timeout() {
    let (r, _b) = start();
    // Part of a head: closed without a response, logged as 408.
    let mut c = Conn::new(r.port);
    c.send(b"GET /partial HTTP/1.1\r\nHost: x\r\n");
    closed_silently_after(&mut c, Duration::from_millis(700));
    assert!(r.wait_log("access.log", "\"GET /partial HTTP/1.1\" 408 0", TIMEOUT), "{}", r.access_log());
    assert!(r.wait_log("error.log", "client timed out", TIMEOUT));

    // Nothing at all: closed the same way (nginx logs no request for it).
    let mut c = Conn::new(r.port);
    closed_silently_after(&mut c, Duration::from_millis(700));

    // Bytes trickling in do not extend the header timeout: it covers the whole head.
    let mut c = Conn::new(r.port);
    let start = Instant::now();
    let mut closed = false;
    for b in b"GET /slow HTTP/1.1\r\nHost: x\r\nX-Slow: 1234567890\r\n".iter() {
        if c.stream.write_all(&[*b]).is_err() {
            closed = true;
            break;
        }
        thread::sleep(Duration::from_millis(60));
        if start.elapsed() > Duration::from_secs(4) {
            break;
        }
    }
    assert!(closed || c.is_closed(Duration::from_secs(3)));
    assert!(start.elapsed() < Duration::from_secs(5));
    r.assert_no_alerts();
}

#[test]
fn keepalive_timeout() {
    let (r, _b) = start();
    let mut c = Conn::new(r.port);
    c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.read_response(false).status, 200);
    closed_silently_after(&mut c, Duration::from_millis(700));
}

/// A body that stops arriving: the connection is closed without a response, the 408 goes to
/// the access log, and the backend never sees the request (bodies are buffered first).
#[test]
fn client_body_timeout() {
    let (r, b) = start();
    let mut c = Conn::new(r.port);
    c.send(b"POST /proxy HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc");
    closed_silently_after(&mut c, Duration::from_millis(700));
    assert!(r.wait_log("access.log", "\"POST /proxy HTTP/1.1\" 408 0", TIMEOUT), "{}", r.access_log());
    assert_eq!(b.connections(), 0);

    // Each piece restarts the body timer (it is a timeout between two reads).
    let mut c = Conn::new(r.port);
    c.send(b"POST /proxy HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\n");
    for piece in [b"a", b"b", b"c", b"d"] {
        thread::sleep(Duration::from_millis(400));
        c.send(piece);
    }
    let resp = c.read_response(false);
    assert_eq!(resp.status, 200);
    assert!(resp.body_str().ends_with("\r\n\r\nabcd"), "{}", resp.body_str());
}

/// A client that asks for a lot and reads nothing: once the socket buffers are full, nothing
/// moves for `send_timeout`, and the server gives up and closes.
#[test]
fn send_timeout() {
    let (r, _b) = start();
    let c = Conn::new(r.port);
    // 8000 pipelined requests for 3000 bytes each: 24 MB of answers, far more than loopback
    // socket buffers hold. Written from a thread, as the server stops reading too.
    let mut w = c.stream.try_clone().unwrap();
    let n = 8000;
    let writer = thread::spawn(move || {
        let req = b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n".repeat(n);
        let _ = w.write_all(&req);
    });
    // Stay away longer than send_timeout, then read whatever was sent.
    thread::sleep(Duration::from_millis(2500));
    let mut s = c.stream;
    s.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
    let (mut total, mut buf) = (0usize, vec![0u8; 65536]);
    let start = Instant::now();
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => total += k,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("still open after {:?} and {total} bytes: {e}", start.elapsed()),
        }
    }
    let _ = writer.join();
    let full = n * 3000;
    assert!(total < full, "all {total} bytes arrived: the socket never blocked");
    assert!(r.wait_log("error.log", "client timed out", TIMEOUT), "{}", r.error_log());
    // The server is fine afterwards.
    let mut c = Conn::new(r.port);
    c.send(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.read_response(false).body_str(), "r=/ok");
    r.assert_no_alerts();
}
