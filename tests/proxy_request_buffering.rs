//! nginx-tests: proxy_request_buffering.t, proxy_request_buffering_chunked.t,
//! body_chunked.t... — the client request body on its way to the upstream.
//!
//! `proxy_request_buffering on` (the default): the whole body is read before the upstream is
//! even contacted, as the seed notes. `off`: the upstream is connected at once and the body is
//! streamed, so it sees the first bytes before the client has finished. Expectations checked
//! with `RGINX_BIN=/usr/sbin/nginx cargo test --test proxy_request_buffering`.

mod common;

use std::thread;
use std::time::{Duration, Instant};

use common::{digest, Backend, Conn, Rginx};

fn conf(locations: &str) -> String {
    "
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    proxy_temp_path %%PREFIX%%/proxy_temp;
    client_max_body_size 64m;
    server {
        listen 127.0.0.1:%%PORT%%;
        server_name localhost;
        LOCATIONS
    }
}
"
    .replace("LOCATIONS", locations)
}

const LOCATIONS: &str = "
        location /on/ { proxy_pass http://%%BACKEND%%/; }
        location /off/ { proxy_pass http://%%BACKEND%%/; proxy_request_buffering off; }
        location /off11/ { proxy_pass http://%%BACKEND%%/; proxy_request_buffering off; proxy_http_version 1.1; }";

/// Polls `f` every 10 ms for up to `timeout`.
fn wait_for(timeout: Duration, f: impl Fn() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if f() {
            return true;
        }
        thread::sleep(Duration::from_millis(10));
    }
    f()
}

/// Everything the backend received on its first connection, as text.
fn received(b: &Backend) -> String {
    b.requests().first().map(|r| String::from_utf8_lossy(r).into_owned()).unwrap_or_default()
}

#[test]
fn buffering_on_waits_for_the_whole_body() {
    let b = Backend::echo();
    let r = Rginx::start(&conf(LOCATIONS), &[b.addr]);
    let mut c = Conn::new(r.port);
    c.send(b"POST /on/x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\n\r\n12345");
    thread::sleep(Duration::from_millis(700));
    assert_eq!(b.connections(), 0, "the upstream was contacted before the body was complete");
    c.send(b"67890");
    let resp = c.read_response(false);
    assert_eq!(resp.status, 200);
    let body = resp.body_str();
    assert!(body.starts_with("POST /x HTTP/1.0\r\n"), "{body}");
    assert!(body.contains("\r\nContent-Length: 10\r\n"), "{body}");
    assert!(body.ends_with("\r\n\r\n1234567890"), "{body}");
}

#[test]
fn buffering_off_streams_the_body() {
    let b = Backend::echo();
    let r = Rginx::start(&conf(LOCATIONS), &[b.addr]);
    let mut c = Conn::new(r.port);
    c.send(b"POST /off/x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\n\r\n12345");
    // The upstream sees the head and the first half while the client still holds the rest.
    let first = wait_for(Duration::from_secs(5), || received(&b).ends_with("\r\n\r\n12345"));
    assert!(first, "the upstream did not get the first bytes: {:?}", received(&b));
    assert!(received(&b).contains("\r\nContent-Length: 10\r\n"), "{}", received(&b));
    thread::sleep(Duration::from_millis(100));
    c.send(b"67890");
    let resp = c.read_response(false);
    assert_eq!(resp.status, 200);
    assert!(resp.body_str().ends_with("\r\n\r\n1234567890"), "{}", resp.body_str());
    r.assert_no_alerts();
}

#[test]
fn buffering_off_slow_client_body_in_many_pieces() {
    let b = Backend::echo();
    let r = Rginx::start(&conf(LOCATIONS), &[b.addr]);
    let mut c = Conn::new(r.port);
    let body: Vec<u8> = (0..50u8).map(|i| b'a' + i % 26).collect();
    c.send(format!("POST /off/ HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes());
    for (i, piece) in body.chunks(5).enumerate() {
        c.send(piece);
        // Each piece reaches the upstream before the next is sent.
        let want = &body[..(i + 1) * 5];
        let ok = wait_for(Duration::from_secs(5), || {
            let got = b.requests().first().cloned().unwrap_or_default();
            got.ends_with(want)
        });
        assert!(ok, "piece {i} not forwarded: {:?}", received(&b));
    }
    let resp = c.read_response(false);
    assert!(resp.body.ends_with(&body));
}

#[test]
fn buffering_off_chunked_body_to_http10_upstream_is_buffered() {
    // nginx streams a chunked body only to an HTTP/1.1 upstream; for HTTP/1.0 it reads it all
    // and sends it with a Content-Length.
    let b = Backend::echo();
    let r = Rginx::start(&conf(LOCATIONS), &[b.addr]);
    let mut c = Conn::new(r.port);
    c.send(b"POST /off/ HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
    thread::sleep(Duration::from_millis(500));
    assert_eq!(b.connections(), 0);
    c.send(b"6\r\n world\r\n0\r\n\r\n");
    let resp = c.read_response(false);
    let body = resp.body_str();
    assert!(body.contains("\r\nContent-Length: 11\r\n"), "{body}");
    assert!(!body.contains("Transfer-Encoding"), "{body}");
    assert!(body.ends_with("\r\n\r\nhello world"), "{body}");
}

#[test]
fn buffering_off_chunked_body_to_http11_upstream() {
    // nginx streams it to an HTTP/1.1 upstream re-chunked, one chunk per piece it read.
    let b = Backend::echo();
    let r = Rginx::start(&conf(LOCATIONS), &[b.addr]);
    let mut c = Conn::new(r.port);
    c.send(b"POST /off11/ HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
    let first = wait_for(Duration::from_secs(5), || received(&b).ends_with("\r\n\r\n5\r\nhello\r\n"));
    assert!(first, "the upstream did not get the first chunk: {:?}", received(&b));
    c.send(b"6\r\n world\r\n0\r\n\r\n");
    let resp = c.read_response(false);
    let body = resp.body_str();
    assert!(body.starts_with("POST / HTTP/1.1\r\n"), "{body}");
    assert!(body.contains("\r\nTransfer-Encoding: chunked\r\n"), "{body}");
    assert!(!body.contains("Content-Length"), "{body}");
    assert!(body.ends_with("\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"), "{body}");
    r.assert_no_alerts();
}

/// A large body through both modes, checked by digest on the upstream side.
fn big_body(path: &str) {
    let b = Backend::echo();
    let r = Rginx::start(&conf(LOCATIONS), &[b.addr]);
    let body: Vec<u8> = (0..8 * 1024 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    let mut c = Conn::new(r.port);
    c.stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let head = format!("PUT {path}big HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n", body.len());
    let (s, data) = (c.stream.try_clone().unwrap(), body.clone());
    let writer = thread::spawn(move || {
        let mut s = s;
        std::io::Write::write_all(&mut s, head.as_bytes())?;
        for piece in data.chunks(256 * 1024) {
            std::io::Write::write_all(&mut s, piece)?;
        }
        Ok::<(), std::io::Error>(())
    });
    let resp = c.read_response(false);
    writer.join().unwrap().unwrap();
    assert_eq!(resp.status, 200);
    let echoed = &resp.body[resp.body.len() - body.len()..];
    assert_eq!(digest(echoed), digest(&body), "{path}");
    let up = &b.requests()[0];
    assert_eq!(digest(&up[up.len() - body.len()..]), digest(&body), "{path}");
    r.assert_no_alerts();
}

#[test]
fn big_body_buffering_on() {
    big_body("/on/");
}

#[test]
fn big_body_buffering_off() {
    big_body("/off/");
}

#[test]
fn expect_100_continue_streamed() {
    let b = Backend::echo();
    let r = Rginx::start(&conf(LOCATIONS), &[b.addr]);
    let mut c = Conn::new(r.port);
    c.send(b"POST /off/e HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n");
    let interim = c.read_some(Duration::from_secs(5));
    assert_eq!(String::from_utf8_lossy(&interim), "HTTP/1.1 100 Continue\r\n\r\n");
    c.send(b"body");
    let resp = c.read_response(false);
    assert_eq!(resp.status, 200);
    let body = resp.body_str();
    assert!(!body.contains("Expect"), "{body}");
    assert!(body.ends_with("\r\n\r\nbody"), "{body}");
}

#[test]
fn client_leaves_mid_body_buffering_off() {
    // The upstream connection goes when the client does; nothing leaks.
    let b = common::Backend::scripted(|_| vec![common::Action::ReadRequest]);
    let r = Rginx::start(&conf(LOCATIONS), &[b.addr]);
    let mut warm = Conn::new(r.port);
    warm.send(b"GET /nothing HTTP/1.0\r\n\r\n");
    let _ = warm.read_to_close();
    drop(warm);
    thread::sleep(Duration::from_millis(200));
    let fds = r.fd_count();
    for _ in 0..3 {
        let mut c = Conn::new(r.port);
        c.send(b"POST /off/ HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000\r\n\r\nfirst bytes");
        assert!(wait_for(Duration::from_secs(5), || b.requests().last().is_some_and(|q| q.ends_with(b"first bytes"))));
        drop(c);
    }
    let left = r.wait_fd_count(fds, Duration::from_secs(10));
    assert_eq!(left, fds);
    r.assert_no_alerts();
}

#[test]
fn upstream_failure_while_streaming_body() {
    // The upstream answers (and closes) before the body is complete: the client gets that
    // answer; nothing hangs.
    let b = common::Backend::scripted(|_| {
        vec![
            common::Action::Expect(b"POST / HTTP/1.0\r\n".to_vec()),
            common::send("HTTP/1.1 413 Request Entity Too Large\r\nContent-Length: 3\r\nConnection: close\r\n\r\nbig"),
            common::Action::Sleep(Duration::from_millis(100)),
        ]
    });
    let r = Rginx::start(&conf(LOCATIONS), &[b.addr]);
    let mut c = Conn::new(r.port);
    c.send(b"POST /off/ HTTP/1.0\r\nHost: localhost\r\nContent-Length: 1000000\r\n\r\nsome");
    let resp = c.read_response(false);
    assert_eq!(resp.status, 413);
    assert_eq!(resp.body_str(), "big");
}
