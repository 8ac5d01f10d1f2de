//! nginx-tests: body.t, body_chunked.t, http_expect_100_continue.t — request bodies that a
//! `return` location discards, bodies a proxied location reads (to see `client_max_body_size`
//! on chunked bodies), and `Expect: 100-continue`.

mod common;

use std::io::Write;
use std::time::Duration;

use common::{Backend, Conn, Rginx, TIMEOUT};

const CONF: &str = "
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    client_max_body_size 1m;
    client_body_buffer_size 1k;
    server {
        listen 127.0.0.1:%%PORT%%;
        location / { return 200 \"r=$request_method $uri\"; }
        location /small { client_max_body_size 10; return 200 small; }
        location /missing { return 404; }
        location /proxy {
            client_max_body_size 10;
            proxy_pass http://%%BACKEND%%;
        }
    }
}
";

fn start() -> (Rginx, Backend) {
    let backend = Backend::echo();
    let r = Rginx::start(CONF, &[backend.addr]);
    (r, backend)
}

/// A Content-Length body sent after the answer came, in pieces: discarded, and the
/// connection then serves the next request.
#[test]
fn content_length_body_discarded() {
    let (r, _b) = start();
    let mut c = Conn::new(r.port);
    c.send(b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\n");
    // nginx answers a `return` before the body arrives.
    assert_eq!(c.read_response(false).body_str(), "r=POST /a");
    for piece in [&b"0123456"[..], b"789012", b"3456789"] {
        std::thread::sleep(Duration::from_millis(20));
        c.send(piece);
    }
    c.send(b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.read_response(false).body_str(), "r=GET /b");

    // A body larger than every buffer, in one go.
    let body = vec![b'z'; 500_000];
    c.send(format!("PUT /c HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes());
    c.send(&body);
    c.send(b"GET /d HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.read_response(false).body_str(), "r=PUT /c");
    assert_eq!(c.read_response(false).body_str(), "r=GET /d");
    r.assert_no_alerts();
}

/// A chunked body split at awkward places (inside sizes, CRLFs, extensions, trailers).
#[test]
fn chunked_body_discarded() {
    let (r, _b) = start();
    let mut c = Conn::new(r.port);
    let raw: &[u8] = b"POST /chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
        1a;name=value\r\nabcdefghijklmnopqrstuvwxyz\r\n10\r\n0123456789abcdef\r\n\
        0\r\nX-Trailer: yes\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\n\r\n";
    for piece in raw.chunks(7) {
        c.send(piece);
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(c.read_response(false).body_str(), "r=POST /chunked");
    assert_eq!(c.read_response(false).body_str(), "r=GET /next");

    // A big chunked body (many chunks, more than a buffer) then a request behind it.
    let mut raw = b"POST /big HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..100 {
        raw.extend_from_slice(b"400\r\n");
        raw.extend_from_slice(&[b'q'; 0x400]);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\nGET /after HTTP/1.1\r\nHost: x\r\n\r\n");
    c.stream.write_all(&raw).unwrap();
    assert_eq!(c.read_response(false).body_str(), "r=POST /big");
    assert_eq!(c.read_response(false).body_str(), "r=GET /after");
    r.assert_no_alerts();
}

/// An error page for a request with a body: the body is skipped and the connection kept,
/// whether the body came with the head or comes after the answer.
#[test]
fn error_page_skips_body_and_keeps_connection() {
    let (r, _b) = start();
    let mut c = Conn::new(r.port);
    c.send(b"POST /missing HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
    let resp = c.read_response(false);
    assert_eq!(resp.status, 404);
    assert_eq!(resp.header("Connection"), Some("keep-alive"));
    c.send(b"POST /missing HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_eq!(c.read_response(false).status, 404);
    c.send(b"3\r\nabc\r\n0\r\n\r\n");
    c.send(b"POST /missing HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n");
    assert_eq!(c.read_response(false).status, 404);
    c.send(b"12345GET /next HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.read_response(false).body_str(), "r=GET /next");
    r.assert_no_alerts();
}

/// The client closes in the middle of a body being discarded: nothing breaks.
#[test]
fn client_closes_during_body() {
    let (r, _b) = start();
    let mut c = Conn::new(r.port);
    c.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nabc");
    assert_eq!(c.read_response(false).status, 200);
    drop(c);
    let mut c = Conn::new(r.port);
    c.send(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n100\r\nabc");
    assert_eq!(c.read_response(false).status, 200);
    drop(c);
    let mut c = Conn::new(r.port);
    c.send(b"GET /alive HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.read_response(false).body_str(), "r=GET /alive");
    r.assert_no_alerts();
}

/// `Expect: 100-continue` on HTTP/1.1 gets "100 Continue" first (the body is wanted, even if
/// only to be discarded); HTTP/1.0 never gets it; a body that is too large gets 413 instead.
#[test]
fn expect_100_continue() {
    let (r, b) = start();
    let mut c = Conn::new(r.port);
    c.send(b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    let cont = c.read_response(false);
    assert_eq!(cont.head, "HTTP/1.1 100 Continue\r\n\r\n");
    assert_eq!(c.read_response(false).body_str(), "r=POST /");
    c.send(b"hello");
    c.send(b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.read_response(false).body_str(), "r=GET /next");

    let mut c = Conn::new(r.port);
    c.send(b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    let resp = c.read_response(false);
    assert_eq!(resp.status, 200, "{}", resp.head);

    // Too large: 413 and no 100.
    let mut c = Conn::new(r.port);
    c.send(b"POST /small HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 11\r\n\r\n");
    let resp = c.read_response(false);
    assert_eq!(resp.status, 413, "{}", resp.head);

    // Proxied: 100 Continue, then the body goes to the backend.
    let mut c = Conn::new(r.port);
    c.send(b"POST /proxy HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    assert_eq!(c.read_response(false).head, "HTTP/1.1 100 Continue\r\n\r\n");
    c.send(b"howdy");
    let resp = c.read_response(false);
    assert_eq!(resp.status, 200);
    assert!(resp.body_str().ends_with("\r\n\r\nhowdy"), "{}", resp.body_str());
    assert_eq!(b.connections(), 1);
}

/// `client_max_body_size` on a chunked body can only be checked as it is read: a proxied
/// location reads it, and answers 413 without ever contacting the backend.
#[test]
fn chunked_body_too_large() {
    let (r, b) = start();
    let mut c = Conn::new(r.port);
    c.send(
        b"POST /proxy HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
          5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    );
    let resp = c.read_response(false);
    assert_eq!(resp.status, 413);
    assert_eq!(resp.header("Connection"), Some("close"));
    assert_eq!(resp.body_str(), common::error_page("413 Request Entity Too Large"));
    assert!(r.wait_log("error.log", "client intended to send too large chunked body", TIMEOUT));
    assert_eq!(b.connections(), 0);

    // Within the limit the body is read and passed on, de-chunked.
    let mut c = Conn::new(r.port);
    c.send(
        b"POST /proxy HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
          5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n",
    );
    let resp = c.read_response(false);
    assert_eq!(resp.status, 200);
    let echoed = resp.body_str();
    assert!(echoed.contains("Content-Length: 10\r\n"), "{echoed}");
    assert!(echoed.ends_with("\r\n\r\nhelloworld"), "{echoed}");
}

/// A head that fills `client_header_buffer_size` exactly, then a chunked body: the body is
/// read into its own buffer (not the rest of the header buffer), for a proxied location and
/// for a `return` one (discarded), and the connection serves the next request.
#[test]
fn head_filling_the_header_buffer_then_chunked_body() {
    let conf = "
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    client_header_buffer_size 1k;
    client_body_buffer_size 1k;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /return { return 200 ok; }
        location /proxy { proxy_pass http://%%BACKEND%%; }
    }
}
";
    let backend = Backend::echo();
    let r = Rginx::start(conf, &[backend.addr]);
    for loc in ["/proxy", "/return"] {
        let start = format!("POST {loc} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nX-Pad: ");
        let pad = 1024 - start.len() - "\r\n\r\n".len();
        let head = format!("{start}{}\r\n\r\n", "p".repeat(pad));
        assert_eq!(head.len(), 1024);
        let mut c = Conn::new(r.port);
        c.send(head.as_bytes());
        std::thread::sleep(Duration::from_millis(100)); // the head arrives alone
        c.send(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
        let resp = c.read_response(false);
        assert_eq!(resp.status, 200, "{loc}: {}", resp.head);
        if loc == "/proxy" {
            let echoed = resp.body_str();
            assert!(echoed.contains("\r\nContent-Length: 11\r\n"), "{echoed}");
            assert!(echoed.ends_with("\r\n\r\nhello world"), "{echoed}");
        }
        c.send(b"GET /return HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(c.read_response(false).body_str(), "ok");
    }
    r.assert_no_alerts();
}

/// nginx 1.22 answers `Expect: 100-continue` with "100 Continue" when the handler reads or
/// discards the body, even when there is none; never before an error page.
#[test]
fn expect_100_continue_without_body() {
    let (r, b) = start();
    for (path, cont, status) in [("/", true, 200), ("/proxy", true, 200), ("/missing", false, 404)] {
        let mut c = Conn::new(r.port);
        c.send(format!("GET {path} HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n").as_bytes());
        if cont {
            assert_eq!(c.read_response(false).head, "HTTP/1.1 100 Continue\r\n\r\n", "{path}");
        }
        let resp = c.read_response(false);
        assert_eq!(resp.status, status, "{path}: {}", resp.head);
        assert_eq!(resp.header("Connection"), Some("keep-alive"));
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(c.read_response(false).body_str(), "r=GET /");
    }
    // The backend never sees the Expect header.
    let up = String::from_utf8_lossy(&b.requests()[0]).into_owned();
    assert!(!up.to_ascii_lowercase().contains("expect"), "{up}");
}

/// The next request arrives in the same read as the end of a chunked body (read from the
/// socket, not with the head): it is served next, whether the body was read or discarded.
#[test]
fn pipelined_request_after_chunked_body() {
    let (r, _b) = start();
    for loc in ["/proxy", "/"] {
        let mut c = Conn::new(r.port);
        c.send(format!("POST {loc} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n").as_bytes());
        std::thread::sleep(Duration::from_millis(100)); // the head arrives alone
        c.send(b"3\r\nabc\r\n0\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\n\r\n");
        let resp = c.read_response(false);
        assert_eq!(resp.status, 200, "{loc}: {}", resp.head);
        if loc == "/proxy" {
            assert!(resp.body_str().ends_with("\r\n\r\nabc"), "{}", resp.body_str());
        }
        assert_eq!(c.read_response(false).body_str(), "r=GET /next", "{loc}");
    }
    r.assert_no_alerts();
}
