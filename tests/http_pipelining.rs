//! nginx-tests: http_pipelining.t (and the pipelined parts of http_keepalive.t) — requests
//! sent back to back are answered in order, whatever the write boundaries.

mod common;

use std::io::Write;
use std::time::Duration;

use common::{Conn, Rginx, TIMEOUT};

const CONF: &str = "
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    client_header_buffer_size 1k;
    large_client_header_buffers 4 4k;
    server {
        listen 127.0.0.1:%%PORT%%;
        location / { return 200 \"r=$request_uri\"; }
        location /missing { return 404; }
        location /moved { return 302 http://example.com/; }
    }
}
";

const WANT_ALL: usize = 3;

#[test]
fn pipelined_in_one_write() {
    let r = Rginx::start(CONF, &[]);
    let mut c = Conn::new(r.port);
    c.send(
        b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /2 HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    for i in 1..=WANT_ALL {
        let resp = c.read_response(false);
        assert_eq!(resp.body_str(), format!("r=/{i}"));
        let want = if i == WANT_ALL { "close" } else { "keep-alive" };
        assert_eq!(resp.header("Connection"), Some(want));
    }
    assert!(c.is_closed(TIMEOUT));
}

#[test]
fn pipelined_byte_by_byte() {
    let r = Rginx::start(CONF, &[]);
    let mut c = Conn::new(r.port);
    let reqs = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nHEAD /b HTTP/1.1\r\nHost: x\r\n\r\n\
                 GET /c?q=1 HTTP/1.1\r\nHost: x\r\n\r\n";
    for b in reqs.iter() {
        c.send(&[*b]);
    }
    assert_eq!(c.read_response(false).body_str(), "r=/a");
    let head = c.read_response(true);
    assert_eq!(head.status, 200);
    assert_eq!(head.header("Content-Length"), Some("4"));
    assert_eq!(c.read_response(false).body_str(), "r=/c?q=1");
    assert!(!c.is_closed(Duration::from_millis(100)));
}

/// Errors and redirects in the middle of a pipeline keep their place in the order.
#[test]
fn pipelined_mixed_statuses() {
    let r = Rginx::start(CONF, &[]);
    let mut c = Conn::new(r.port);
    c.send(
        b"GET /missing HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /moved HTTP/1.1\r\nHost: x\r\n\r\n\
          HEAD /missing HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /last HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert_eq!(c.read_response(false).status, 404);
    let moved = c.read_response(false);
    assert_eq!(moved.status, 302);
    assert_eq!(moved.header("Location"), Some("http://example.com/"));
    assert_eq!(c.read_response(true).status, 404);
    assert_eq!(c.read_response(false).body_str(), "r=/last");
}

/// Bodies in the pipeline (Content-Length and chunked) are skipped exactly: the next request
/// starts right after them.
#[test]
fn pipelined_with_bodies() {
    let r = Rginx::start(CONF, &[]);
    let mut c = Conn::new(r.port);
    c.send(
        b"POST /p1 HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\nGET /evil\
          POST /p2 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
          5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: t\r\n\r\n\
          GET /p3 HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert_eq!(c.read_response(false).body_str(), "r=/p1");
    assert_eq!(c.read_response(false).body_str(), "r=/p2");
    assert_eq!(c.read_response(false).body_str(), "r=/p3");
    assert!(!c.is_closed(Duration::from_millis(100)));
}

/// A pipelined request whose head needs a large buffer, behind a small one, and many small
/// requests in one segment (more than one buffer's worth).
#[test]
fn pipelined_large_and_many() {
    let r = Rginx::start(CONF, &[]);
    let mut c = Conn::new(r.port);
    let big = "b".repeat(3000);
    let raw = format!(
        "GET /small HTTP/1.1\r\nHost: x\r\n\r\nGET /{big} HTTP/1.1\r\nHost: x\r\n\r\n\
         GET /after HTTP/1.1\r\nHost: x\r\n\r\n"
    );
    c.send(raw.as_bytes());
    assert_eq!(c.read_response(false).body_str(), "r=/small");
    assert_eq!(c.read_response(false).body_str(), format!("r=/{big}"));
    assert_eq!(c.read_response(false).body_str(), "r=/after");

    let n = 200;
    let mut raw = String::new();
    for i in 0..n {
        raw += &format!("GET /m{i} HTTP/1.1\r\nHost: x\r\n\r\n");
    }
    c.stream.write_all(raw.as_bytes()).unwrap();
    for i in 0..n {
        assert_eq!(c.read_response(false).body_str(), format!("r=/m{i}"));
    }
    r.assert_no_alerts();
}

/// A bad request in a pipeline is answered in its turn, then the connection closes: what
/// follows it is never answered.
#[test]
fn pipelined_bad_request_stops_the_pipeline() {
    let r = Rginx::start(CONF, &[]);
    let mut c = Conn::new(r.port);
    c.send(
        b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /bad HTTP/1.1\r\n\r\n\
          GET /never HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert_eq!(c.read_response(false).body_str(), "r=/ok");
    let bad = c.read_response(false);
    assert_eq!(bad.status, 400);
    assert_eq!(bad.header("Connection"), Some("close"));
    let rest = c.read_to_close();
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
}
