//! nginx-tests: proxy_chunked.t — upstream responses framed by `Content-Length`, chunked or
//! close, reaching HTTP/1.0 and HTTP/1.1 clients with buffering on and off.
//!
//! The rule (nginx's chunked filter): a known length is passed as `Content-Length`; an unknown
//! one is re-chunked for an HTTP/1.1 client and close-delimited for an HTTP/1.0 client. The
//! expectations were checked with `RGINX_BIN=/usr/sbin/nginx cargo test --test proxy_chunked`.

mod common;

use std::time::Duration;

use common::{send, Action, Backend, Conn, Rginx};

use common::proxy_conf as conf;

const LOCATIONS: &str = "
        location /on/ { proxy_pass http://%%BACKEND%%/; }
        location /off/ { proxy_pass http://%%BACKEND%%/; proxy_buffering off; }";

/// How the fake upstream frames its body.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Framing {
    Length,
    Chunked,
    Close,
}

/// The body every framing carries; long enough to take several reads and chunks.
fn body() -> Vec<u8> {
    (0..20_000u32).map(|i| b"abcdefghijklmnopqrstuvwxyz0123456789"[(i % 36) as usize]).collect()
}

fn response(framing: Framing) -> Vec<Action> {
    let body = body();
    let mut v = vec![Action::ReadRequest];
    match framing {
        Framing::Length => {
            v.push(send(&format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len())));
            v.push(Action::Send(body[..7000].to_vec()));
            v.push(Action::Sleep(Duration::from_millis(20)));
            v.push(Action::Send(body[7000..].to_vec()));
        }
        Framing::Chunked => {
            v.push(send("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"));
            // Uneven chunks, a chunk extension, a chunk header split across writes, trailers.
            let mut wire = Vec::new();
            let mut pos = 0;
            for (i, size) in [1usize, 4095, 10, 8000, 3].into_iter().cycle().enumerate() {
                if pos >= body.len() {
                    break;
                }
                let n = size.min(body.len() - pos);
                let ext = if i == 2 { ";name=value" } else { "" };
                wire.extend_from_slice(format!("{n:x}{ext}\r\n").as_bytes());
                wire.extend_from_slice(&body[pos..pos + n]);
                wire.extend_from_slice(b"\r\n");
                pos += n;
            }
            wire.extend_from_slice(b"0\r\nX-Trailer: t\r\n\r\n");
            for piece in wire.chunks(4999) {
                v.push(Action::Send(piece.to_vec()));
                v.push(Action::Sleep(Duration::from_millis(2)));
            }
        }
        Framing::Close => {
            v.push(send("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"));
            v.push(Action::Send(body[..10].to_vec()));
            v.push(Action::Sleep(Duration::from_millis(20)));
            v.push(Action::Send(body[10..].to_vec()));
            v.push(Action::Close);
        }
    }
    v
}

/// One client request with `framing` from the upstream; checks the body, the client framing
/// and that a keepalive connection is still usable after it.
fn check(framing: Framing, http11: bool, buffering: bool) {
    let b = Backend::scripted(move |_| response(framing));
    let r = Rginx::start(&conf(LOCATIONS), &[b.addr]);
    let mode = if buffering { "on" } else { "off" };
    let version = if http11 { "1.1" } else { "1.0" };
    let what = format!("{framing:?} to HTTP/{version}, buffering {mode}");
    let mut c = Conn::new(r.port);
    c.send(format!("GET /{mode}/x HTTP/{version}\r\nHost: localhost\r\n\r\n").as_bytes());
    let resp = c.read_response(false);
    assert_eq!(resp.status, 200, "{what}");
    assert_eq!(resp.body.len(), body().len(), "{what}");
    assert!(resp.body == body(), "{what}: body differs");
    assert_eq!(resp.header("X-Trailer"), None, "{what}");
    let length = resp.header("Content-Length");
    match (framing, http11) {
        (Framing::Length, _) => {
            assert_eq!(length, Some("20000"), "{what}");
            assert!(!resp.chunked, "{what}");
        }
        (_, true) => {
            assert!(resp.chunked, "{what}: {}", resp.head);
            assert_eq!(length, None, "{what}");
        }
        (_, false) => {
            assert!(!resp.chunked && length.is_none(), "{what}: {}", resp.head);
            assert_eq!(resp.header("Connection"), Some("close"), "{what}");
        }
    }
    if http11 {
        // The framing held: the connection is still usable.
        assert_eq!(resp.header("Connection"), Some("keep-alive"), "{what}");
        c.send(b"GET /on/again HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        let again = c.read_response(false);
        assert!(again.body == body(), "{what}: second response");
    } else if framing == Framing::Length {
        assert!(c.is_closed(Duration::from_secs(5)), "{what}");
    }
    r.assert_no_alerts();
}

#[test]
fn length_to_http11_buffered() {
    check(Framing::Length, true, true);
}
#[test]
fn length_to_http11_unbuffered() {
    check(Framing::Length, true, false);
}
#[test]
fn length_to_http10_buffered() {
    check(Framing::Length, false, true);
}
#[test]
fn length_to_http10_unbuffered() {
    check(Framing::Length, false, false);
}
#[test]
fn chunked_to_http11_buffered() {
    check(Framing::Chunked, true, true);
}
#[test]
fn chunked_to_http11_unbuffered() {
    check(Framing::Chunked, true, false);
}
#[test]
fn chunked_to_http10_buffered() {
    check(Framing::Chunked, false, true);
}
#[test]
fn chunked_to_http10_unbuffered() {
    check(Framing::Chunked, false, false);
}
#[test]
fn close_to_http11_buffered() {
    check(Framing::Close, true, true);
}
#[test]
fn close_to_http11_unbuffered() {
    check(Framing::Close, true, false);
}
#[test]
fn close_to_http10_buffered() {
    check(Framing::Close, false, true);
}
#[test]
fn close_to_http10_unbuffered() {
    check(Framing::Close, false, false);
}

#[test]
fn chunked_byte_by_byte() {
    // Every byte of the chunk framing in its own segment.
    let wire = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                3;ext=1\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nTrailer: x\r\n\r\n";
    let b = Backend::scripted(move |_| {
        let mut v = vec![Action::ReadRequest];
        for byte in wire.bytes() {
            v.push(Action::Send(vec![byte]));
            v.push(Action::Sleep(Duration::from_millis(1)));
        }
        v.push(Action::Sleep(Duration::from_secs(2))); // the chunked framing ends it, not close
        v
    });
    let r = Rginx::start(&conf(LOCATIONS), &[b.addr]);
    for mode in ["on", "off"] {
        let mut c = Conn::new(r.port);
        c.send(format!("GET /{mode}/ HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes());
        let resp = c.read_response(false);
        assert_eq!(resp.body_str(), "abc0123456789abcdef", "buffering {mode}");
        assert!(resp.chunked);
    }
}

#[test]
fn empty_bodies() {
    // Content-Length: 0, an empty chunked body and 204/304 need no body read at all, and the
    // upstream may keep its connection open.
    let answers = [
        "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "HTTP/1.1 204 No Content\r\n\r\n",
        "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n",
    ];
    let b = Backend::scripted(move |i| {
        vec![Action::ReadRequest, send(answers[i % answers.len()]), Action::Sleep(Duration::from_secs(3))]
    });
    let r = Rginx::start(&conf(LOCATIONS), &[b.addr]);
    let mut c = Conn::new(r.port);
    for (i, status) in [200, 200, 204, 304].into_iter().enumerate() {
        let mode = if i % 2 == 0 { "on" } else { "off" };
        let start = std::time::Instant::now();
        c.send(format!("GET /{mode}/{i} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes());
        let resp = c.read_response(false);
        assert_eq!(resp.status, status, "answer {i}");
        assert!(resp.body.is_empty(), "answer {i}");
        assert!(start.elapsed() < Duration::from_secs(2), "answer {i} waited for the upstream");
        if i == 0 {
            assert_eq!(resp.header("Content-Length"), Some("0"));
        }
        if i == 1 {
            assert!(resp.chunked, "an empty chunked body stays chunked: {}", resp.head);
        }
    }
}

#[test]
fn invalid_chunked_body_truncates() {
    // A broken chunk size after some data: the client response is cut short (no final chunk),
    // the connection closed.
    let b = Backend::scripted(|_| {
        vec![
            Action::ReadRequest,
            send("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nZZ\r\nxx\r\n0\r\n\r\n"),
            Action::Sleep(Duration::from_secs(2)),
        ]
    });
    let r = Rginx::start(&conf(LOCATIONS), &[b.addr]);
    for mode in ["on", "off"] {
        let mut c = Conn::new(r.port);
        c.send(format!("GET /{mode}/ HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes());
        let all = String::from_utf8_lossy(&c.read_to_close()).into_owned();
        if all.is_empty() {
            // nginx, buffering on: the error comes while the header still waits in the write
            // filter for body bytes, so the connection closes with nothing sent at all.
            continue;
        }
        assert!(all.starts_with("HTTP/1.1 200 OK\r\n"), "{mode}: {all}");
        assert!(all.contains("Transfer-Encoding: chunked"), "{mode}: {all}");
        assert!(!all.ends_with("0\r\n\r\n"), "{mode}: must not look complete: {all}");
    }
    assert!(r.wait_log("error.log", "upstream sent invalid chunked response", common::TIMEOUT));
}

#[test]
fn data_after_final_chunk_is_dropped() {
    let b = Backend::scripted(|_| {
        vec![
            Action::ReadRequest,
            send("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\nGARBAGE"),
            Action::Close,
        ]
    });
    let r = Rginx::start(&conf(LOCATIONS), &[b.addr]);
    for mode in ["on", "off"] {
        let mut c = Conn::new(r.port);
        c.send(format!("GET /{mode}/ HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes());
        let all = String::from_utf8_lossy(&c.read_to_close()).into_owned();
        assert!(all.ends_with("\r\n\r\nok"), "{mode}: {all}");
    }
}

#[test]
fn length_with_extra_data_is_cut() {
    // More bytes than Content-Length: only Content-Length bytes reach the client.
    let b = Backend::scripted(|_| {
        vec![Action::ReadRequest, send("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nfour and more"), Action::Close]
    });
    let r = Rginx::start(&conf(LOCATIONS), &[b.addr]);
    for mode in ["on", "off"] {
        let mut c = Conn::new(r.port);
        c.send(format!("GET /{mode}/ HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes());
        let resp = c.read_response(false);
        assert_eq!(resp.body_str(), "four", "{mode}");
        c.send(b"GET /on/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        assert_eq!(c.read_response(false).body_str(), "four", "{mode}: framing kept");
    }
}
