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

/// Back-pressure: a 64 MiB streamed upload to a backend that reads nothing for 2 s, then all
/// of it. Reading from the client stops while the upstream cannot take more, so the server's
/// memory stays bounded (the body waits in the socket buffers, not in the server), and the body
/// arrives intact.
#[test]
fn streamed_body_is_read_only_as_fast_as_the_upstream_takes_it() {
    let b = Backend::scripted(|_| {
        vec![
            common::Action::Sleep(Duration::from_secs(2)),
            common::Action::ReadRequest,
            common::send("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"),
        ]
    });
    let r = Rginx::start(&conf(LOCATIONS), &[b.addr]);
    let before = r.rss_kib();
    let body: Vec<u8> = (0..64 * 1024 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    let mut c = Conn::new(r.port);
    c.stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let head = format!("POST /off/big HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n", body.len());
    let (s, data) = (c.stream.try_clone().unwrap(), body.clone());
    let writer = thread::spawn(move || {
        let mut s = s;
        s.set_write_timeout(Some(Duration::from_secs(60)))?;
        std::io::Write::write_all(&mut s, head.as_bytes())?;
        for piece in data.chunks(256 * 1024) {
            std::io::Write::write_all(&mut s, piece)?;
        }
        Ok::<(), std::io::Error>(())
    });
    let mut peak = before;
    while !writer.is_finished() {
        peak = peak.max(r.rss_kib());
        thread::sleep(Duration::from_millis(20));
    }
    writer.join().unwrap().unwrap();
    let resp = c.read_response(false);
    assert_eq!((resp.status, resp.body_str().as_str()), (200, "ok"));
    let grown = peak.saturating_sub(before);
    assert!(grown < 32 * 1024, "RSS grew by {grown} KiB for a 64 MiB streamed body");
    let up = &b.requests()[0];
    assert_eq!(digest(&up[up.len() - body.len()..]), digest(&body));
    r.assert_no_alerts();
}

/// Decodes a chunked body (test side); `None` if the framing is broken.
fn dechunk(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = raw.windows(2).position(|w| w == b"\r\n")?;
        let size = usize::from_str_radix(std::str::from_utf8(&raw[..line_end]).ok()?, 16).ok()?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return (raw == b"\r\n").then_some(out);
        }
        out.extend_from_slice(raw.get(..size)?);
        raw = raw.get(size..)?.strip_prefix(b"\r\n")?;
    }
}

/// A chunked upload to an HTTP/1.1 upstream is streamed re-chunked: the upstream gets the
/// first chunk and answers while the client still holds the end of the body.
#[test]
fn chunked_body_is_streamed_before_the_client_finishes() {
    let head = b"POST /x HTTP/1.1\r\nHost: up\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n";
    let b = Backend::scripted(move |_| {
        vec![
            common::Action::Expect(head.to_vec()),
            common::Action::Expect(b"5\r\nhello\r\n".to_vec()),
            common::send("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nearly"),
        ]
    });
    let locations = "location / { proxy_pass http://%%BACKEND%%; proxy_http_version 1.1; \
                     proxy_request_buffering off; proxy_set_header Host up; }";
    let r = Rginx::start(&conf(locations), &[b.addr]);
    let mut c = Conn::new(r.port);
    c.send(b"POST /x HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
    let resp = c.read_response(false);
    assert_eq!((resp.status, resp.body_str().as_str()), (200, "early"));
    assert!(b.errors().is_empty(), "{:?}", b.errors());
    r.assert_no_alerts();
}

/// A 1 MiB chunked upload in uneven chunks and uneven writes reaches an HTTP/1.1 upstream
/// chunked, exactly, with no `Content-Length`.
#[test]
fn chunked_body_is_streamed_exactly() {
    let b = Backend::echo();
    let r = Rginx::start(&conf(LOCATIONS), &[b.addr]);
    let body: Vec<u8> = (0..1024 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    let mut raw = b"POST /off11/chunky HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    let mut rest = &body[..];
    let mut n = 1usize;
    while !rest.is_empty() {
        let take = (n * 7919 % 40_000 + 1).min(rest.len());
        raw.extend_from_slice(format!("{take:x}\r\n").as_bytes());
        raw.extend_from_slice(&rest[..take]);
        raw.extend_from_slice(b"\r\n");
        rest = &rest[take..];
        n += 1;
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    let mut c = Conn::new(r.port);
    let (s, data) = (c.stream.try_clone().unwrap(), raw.clone());
    let writer = thread::spawn(move || {
        let mut s = s;
        for (i, piece) in data.chunks(30_011).enumerate() {
            std::io::Write::write_all(&mut s, piece)?;
            if i % 8 == 0 {
                thread::sleep(Duration::from_millis(5));
            }
        }
        Ok::<(), std::io::Error>(())
    });
    let resp = c.read_response(false);
    writer.join().unwrap().unwrap();
    assert_eq!(resp.status, 200);
    let up = &b.requests()[0];
    let split = up.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&up[..split]);
    assert!(head.starts_with("POST /chunky HTTP/1.1\r\n"), "{head}");
    assert!(head.contains("\r\nTransfer-Encoding: chunked\r\n"), "{head}");
    assert!(!head.contains("Content-Length"), "{head}");
    let got = dechunk(&up[split..]).expect("the upstream got broken chunked framing");
    assert_eq!(digest(&got), digest(&body));
    r.assert_no_alerts();
}

/// While the upstream cannot take more, the client is not read, and that wait is the
/// upstream's (`proxy_send_timeout`), not the client's: an upstream that stalls for longer than
/// `client_body_timeout` does not make the client "time out".
#[test]
fn upstream_stall_is_not_a_client_timeout() {
    let b = Backend::scripted(|_| {
        vec![
            common::Action::Sleep(Duration::from_millis(2500)),
            common::Action::ReadRequest,
            common::send("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"),
        ]
    });
    let locations = "location / { proxy_pass http://%%BACKEND%%; proxy_request_buffering off; \
                     client_body_timeout 1s; }";
    let r = Rginx::start(&conf(locations), &[b.addr]);
    let body = vec![b'k'; 32 * 1024 * 1024];
    let mut c = Conn::new(r.port);
    c.stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let head = format!("PUT /x HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n", body.len());
    let (s, data) = (c.stream.try_clone().unwrap(), body.clone());
    let writer = thread::spawn(move || {
        let mut s = s;
        std::io::Write::write_all(&mut s, head.as_bytes())?;
        std::io::Write::write_all(&mut s, &data)
    });
    let resp = c.read_response(false);
    writer.join().unwrap().unwrap();
    assert_eq!((resp.status, resp.body_str().as_str()), (200, "ok"));
    let up = &b.requests()[0];
    assert_eq!(digest(&up[up.len() - body.len()..]), digest(&body));
    r.assert_no_alerts();
}
