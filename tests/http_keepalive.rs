//! nginx-tests: http_keepalive.t — keepalive_requests, keepalive_timeout, HTTP/1.0 and 1.1
//! connection rules, many idle keepalive connections.

mod common;

use std::time::{Duration, Instant};

use common::{Conn, Rginx, TIMEOUT};

const CONF: &str = "
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    keepalive_requests 3;
    keepalive_timeout 1s;
    server {
        listen 127.0.0.1:%%PORT%%;
        location / { return 200 \"r=$uri\"; }
        location /nokeepalive { keepalive_timeout 0; return 200 none; }
        location /long { keepalive_timeout 30s; return 200 long; }
        location /missing { return 404; }
        location /vars { return 200 \"$host|$args|$uri\"; }
    }
}
";

fn get(c: &mut Conn, path: &str) -> common::Response {
    c.send(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes());
    c.read_response(false)
}

#[test]
fn keepalive_requests_limit() {
    let r = Rginx::start(CONF, &[]);
    let mut c = Conn::new(r.port);
    for i in 1..=2 {
        let resp = get(&mut c, &format!("/{i}"));
        assert_eq!(resp.body_str(), format!("r=/{i}"));
        assert_eq!(resp.header("Connection"), Some("keep-alive"));
    }
    // The third request is the last one the connection serves.
    let resp = get(&mut c, "/3");
    assert_eq!(resp.body_str(), "r=/3");
    assert_eq!(resp.header("Connection"), Some("close"));
    assert!(c.is_closed(TIMEOUT));
    r.assert_no_alerts();
}

/// A request on a kept connection starts from nothing: no host, arguments or path of the
/// request before it (rginx reuses their storage from request to request).
#[test]
fn next_request_starts_clean() {
    let r = Rginx::start(CONF, &[]);
    let mut c = Conn::new(r.port);
    c.send(b"GET /vars/one?a=1&b=2 HTTP/1.1\r\nHost: First.Example.:8080\r\n\r\n");
    assert_eq!(c.read_response(false).body_str(), "first.example|a=1&b=2|/vars/one");
    // HTTP/1.0 without Host: `$host` is the server name (none here), no arguments
    c.send(b"GET /vars/two HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    let resp = c.read_response(false);
    assert_eq!(resp.body_str(), "||/vars/two");
    assert_eq!(resp.header("Connection"), Some("keep-alive"));
    c.send(b"GET /vars HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(c.read_response(false).body_str(), "h||/vars");
    assert!(c.is_closed(TIMEOUT)); // keepalive_requests 3
    r.assert_no_alerts();
}

#[test]
fn keepalive_timeout_closes_idle() {
    let r = Rginx::start(CONF, &[]);
    let mut c = Conn::new(r.port);
    assert_eq!(get(&mut c, "/").status, 200);
    let start = Instant::now();
    // Still open well before the 1 s timeout ...
    assert!(!c.is_closed(Duration::from_millis(300)));
    // ... and closed, with no bytes, within generous bounds after it.
    assert!(c.is_closed(Duration::from_secs(5)));
    let idle = start.elapsed();
    assert!(idle >= Duration::from_millis(700), "closed after {idle:?}");

    // A request just before the deadline restarts the wait: the connection serves it.
    let mut c = Conn::new(r.port);
    assert_eq!(get(&mut c, "/").status, 200);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(get(&mut c, "/again").body_str(), "r=/again");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(get(&mut c, "/again2").body_str(), "r=/again2");
}

#[test]
fn keepalive_timeout_zero_and_per_location() {
    let r = Rginx::start(CONF, &[]);
    let mut c = Conn::new(r.port);
    let resp = get(&mut c, "/nokeepalive");
    assert_eq!(resp.header("Connection"), Some("close"));
    assert!(c.is_closed(TIMEOUT));

    // The location's keepalive_timeout is the one the idle wait uses.
    let mut c = Conn::new(r.port);
    assert_eq!(get(&mut c, "/long").header("Connection"), Some("keep-alive"));
    assert!(!c.is_closed(Duration::from_millis(1500)));
    assert_eq!(get(&mut c, "/").status, 200);
}

#[test]
fn keepalive_after_error_page() {
    let r = Rginx::start(CONF, &[]);
    let mut c = Conn::new(r.port);
    // 404 keeps the connection; the error page is framed by Content-Length.
    let resp = get(&mut c, "/missing");
    assert_eq!(resp.status, 404);
    assert_eq!(resp.header("Connection"), Some("keep-alive"));
    assert_eq!(get(&mut c, "/x").body_str(), "r=/x");
}

#[test]
fn http10_keepalive() {
    let r = Rginx::start(CONF, &[]);
    let mut c = Conn::new(r.port);
    for _ in 0..2 {
        c.send(b"GET /ten HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        let resp = c.read_response(false);
        assert_eq!(resp.header("Connection"), Some("keep-alive"));
        assert_eq!(resp.body_str(), "r=/ten");
    }
    c.send(b"GET /ten HTTP/1.0\r\n\r\n");
    let resp = c.read_response(false);
    assert_eq!(resp.header("Connection"), Some("close"));
    assert!(c.is_closed(TIMEOUT));
}

/// Idle keepalive connections cost the server nothing it cannot give back: 200 of them are
/// held, all still answer, and all are closed by the timeout.
#[test]
fn many_idle_connections() {
    let r = Rginx::start(CONF, &[]);
    let mut conns: Vec<Conn> = (0..200).map(|_| Conn::new(r.port)).collect();
    for (i, c) in conns.iter_mut().enumerate() {
        assert_eq!(get(c, &format!("/{i}")).body_str(), format!("r=/{i}"));
    }
    for (i, c) in conns.iter_mut().enumerate().step_by(10) {
        assert_eq!(get(c, &format!("/b{i}")).body_str(), format!("r=/b{i}"));
    }
    for c in conns.iter_mut() {
        assert!(c.is_closed(Duration::from_secs(5)));
    }
    r.assert_no_alerts();
}

/// `worker_connections` counts the listening socket too (as nginx): with 4, three clients are
/// held. A new client over the limit takes the slot of an idle keepalive connection, which is
/// closed ("reusing connections"); when no connection is idle, the new one is closed at once.
#[test]
fn worker_connections_limit() {
    let r = Rginx::start(
        "
%%TEST_GLOBALS%%
events { worker_connections 4; }
http {
    server { listen 127.0.0.1:%%PORT%%; location / { return 200 ok; } }
}
",
        &[],
    );
    let mut held: Vec<Conn> = (0..3).map(|_| Conn::new(r.port)).collect();
    for c in held.iter_mut() {
        assert_eq!(get(c, "/").body_str(), "ok");
    }
    let mut extra = Conn::new(r.port);
    assert_eq!(get(&mut extra, "/").body_str(), "ok");
    assert!(r.wait_log("error.log", "4 worker_connections are not enough, reusing connections", TIMEOUT));
    let closed = held.iter_mut().map(|c| c.is_closed(Duration::from_millis(300))).filter(|&x| x).count();
    assert_eq!(closed, 1, "one idle connection gives its slot");

    // Now every slot is busy with a request in progress: nothing to reuse.
    let mut busy: Vec<Conn> = (0..3).map(|_| Conn::new(r.port)).collect();
    for c in busy.iter_mut() {
        c.send(b"GET / HTTP/1.1\r\n");
    }
    std::thread::sleep(Duration::from_millis(200));
    let mut over = Conn::new(r.port);
    let _ = std::io::Write::write_all(&mut over.stream, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(over.read_to_close().is_empty(), "a connection over the limit was served");
    assert!(r.wait_log("error.log", "[alert]", TIMEOUT));
    assert!(r.error_log().contains("4 worker_connections are not enough\n"));
    // The busy ones are still served.
    for c in busy.iter_mut() {
        c.send(b"Host: x\r\n\r\n");
        assert_eq!(c.read_response(false).body_str(), "ok");
    }
}
