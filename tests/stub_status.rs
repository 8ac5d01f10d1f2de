//! nginx-tests: stub_status.t — the status page's exact text, its counters, and its methods.

mod common;

use std::thread;
use std::time::Duration;

use common::{Conn, Rginx};

const CONF: &str = "
%%TEST_GLOBALS%%
events {}
http {
    server {
        listen 127.0.0.1:%%PORT%%;
        location / { return 200 ok; }
        location /status { stub_status; }
    }
}
";

#[test]
fn counters_and_format() {
    let r = Rginx::start(CONF, &[]);
    // An idle keepalive connection (one request), one with half a head (reading), one that
    // has sent nothing yet (waiting, as nginx counts it).
    let mut idle = Conn::new(r.port);
    idle.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(idle.read_response(false).body_str(), "ok");
    let mut half = Conn::new(r.port);
    half.send(b"GET / HTTP/1.1\r\n");
    let _fresh = Conn::new(r.port);
    thread::sleep(Duration::from_millis(200));

    let mut c = Conn::new(r.port);
    c.send(b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n");
    let resp = c.read_response(false);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("Content-Type"), Some("text/plain"));
    assert_eq!(
        resp.body_str(),
        "Active connections: 4 \nserver accepts handled requests\n 4 4 3 \n\
         Reading: 1 Writing: 1 Waiting: 2 \n"
    );
    // HEAD: the same length, no body.
    c.send(b"HEAD /status HTTP/1.1\r\nHost: x\r\n\r\n");
    let head = c.read_response(true);
    assert_eq!(head.status, 200);
    assert_eq!(head.header("Content-Length"), resp.header("Content-Length"));
}

#[test]
fn only_get_and_head() {
    let r = Rginx::start(CONF, &[]);
    let mut c = Conn::new(r.port);
    c.send(b"POST /status HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nab");
    let resp = c.read_response(false);
    assert!(resp.head.starts_with("HTTP/1.1 405 Not Allowed\r\n"), "{}", resp.head);
    assert_eq!(resp.body_str(), common::error_page("405 Not Allowed"));
    // The body was skipped: the connection goes on.
    c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.read_response(false).body_str(), "ok");
}

/// With two workers the counters are the whole server's, as nginx's shared-memory counters
/// are, whichever worker answers: every connection accepted and every request, summed. A
/// worker publishes its counts once per loop turn, so the page is asked again (on the same
/// connection, bounded) until the other worker's last turn shows.
#[test]
fn counters_summed_over_workers() {
    let r = Rginx::start(
        "
daemon off;
worker_processes 2;
events {}
http {
    server {
        listen 127.0.0.1:%%PORT%%;
        location / { return 200 ok; }
        location /status { stub_status; }
    }
}
",
        &[],
    );
    for _ in 0..6 {
        let mut c = Conn::new(r.port);
        c.send(b"GET / HTTP/1.0\r\n\r\n");
        assert_eq!(c.read_response(false).body_str(), "ok");
    }
    let mut c = Conn::new(r.port);
    let mut seen = String::new();
    for asked in 1..=50u64 {
        c.send(b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n");
        let resp = c.read_response(false);
        assert_eq!(resp.status, 200);
        seen = resp.body_str();
        let want = format!("server accepts handled requests\n 7 7 {} \n", 6 + asked);
        if seen.contains(&want) {
            return;
        }
        thread::sleep(Duration::from_millis(20));
    }
    panic!("the counters never added up: {seen}");
}
