//! nginx-tests: http_error_page-less checks of bad input — http_request.t, http_header_buffers.t,
//! http_uri.t, http_host.t, http_chunked.t (the framing guards), body.t (413).
//!
//! Every bad request gets nginx's status, `Connection: close`, nginx's short HTML page, and the
//! connection is closed after it; the error log says why, in nginx's words. The statuses and the
//! messages are nginx 1.22's (checked with `RGINX_BIN=/usr/sbin/nginx`).

mod common;

use std::time::Duration;

use common::{error_page, Conn, Rginx, TIMEOUT};

const CONF: &str = "
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    client_header_buffer_size 1k;
    large_client_header_buffers 2 1k;
    client_max_body_size 100;
    lingering_timeout 500ms;
    server {
        listen 127.0.0.1:%%PORT%%;
        server_name localhost;
        location / { return 200 \"ok $request_method $uri\"; }
        location /big { client_max_body_size 1k; return 200 big; }
        location /nolimit { client_max_body_size 0; return 200 nolimit; }
    }
}
";

/// Sends `raw`, expects one response with `status` and nginx's page titled `title`, then a
/// close; `log` must show up in error.log.
fn expect_error(r: &Rginx, raw: &[u8], status: u16, title: &str, log: &str) {
    let mut c = Conn::new(r.port);
    // The server may close before taking everything (it stops reading at the bad byte).
    let _ = std::io::Write::write_all(&mut c.stream, raw);
    let resp = c.read_response(false);
    let what = String::from_utf8_lossy(raw);
    assert_eq!(resp.status, status, "{what:?} -> {}", resp.head);
    let line = format!("HTTP/1.1 {title}\r\n");
    if title.starts_with(&status.to_string()) {
        assert!(resp.head.starts_with(&line), "{what:?} -> {}", resp.head);
    }
    assert_eq!(resp.header("Connection"), Some("close"), "{what:?}");
    assert_eq!(resp.header("Content-Type"), Some("text/html"), "{what:?}");
    assert_eq!(resp.body_str(), error_page(title), "{what:?}");
    assert!(c.is_closed(TIMEOUT), "{what:?}: connection not closed");
    assert!(r.wait_log("error.log", log, TIMEOUT), "{what:?}: no {log:?} in error.log:\n{}", r.error_log());
}

#[test]
fn bad_request_line() {
    let r = Rginx::start(CONF, &[]);
    let base = r.fd_baseline();
    let msg = "client sent invalid method while reading client request line";
    expect_error(&r, b"BAD\r\n\r\n", 400, "400 Bad Request", msg);
    expect_error(&r, b"get / HTTP/1.1\r\nHost: x\r\n\r\n", 400, "400 Bad Request", msg);
    let msg = "client sent invalid request while reading client request line";
    expect_error(&r, b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", 400, "400 Bad Request", msg);
    expect_error(&r, b"GET /../x HTTP/1.1\r\nHost: x\r\n\r\n", 400, "400 Bad Request", msg);
    expect_error(&r, b"GET /a%00b HTTP/1.1\r\nHost: x\r\n\r\n", 400, "400 Bad Request", msg);
    let msg = "client sent invalid version while reading client request line";
    let v = "505 HTTP Version Not Supported";
    expect_error(&r, b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505, v, msg);
    expect_error(&r, b"GET / HTTP/3.0\r\nHost: x\r\n\r\n", 505, v, msg);
    r.assert_fds_back(base);
    r.assert_no_alerts();
}

#[test]
fn bad_headers() {
    let r = Rginx::start(CONF, &[]);
    let base = r.fd_baseline();
    let t = "400 Bad Request";
    let msg = "client sent HTTP/1.1 request without \"Host\" header";
    expect_error(&r, b"GET / HTTP/1.1\r\n\r\n", 400, t, msg);
    let msg = "client sent duplicate host header";
    expect_error(&r, b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, t, msg);
    let msg = "client sent invalid host header";
    expect_error(&r, b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400, t, msg);
    expect_error(&r, b"GET / HTTP/1.1\r\nHost: ..\r\n\r\n", 400, t, msg);
    expect_error(&r, b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, t, msg);
    expect_error(&r, b"GET / HTTP/1.1\r\nHost: a\x01b\r\n\r\n", 400, t, msg);
    expect_error(&r, b"GET / HTTP/1.1\r\nHost:\r\n\r\n", 400, t, msg);
    let msg = "client sent invalid header line";
    expect_error(&r, b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400, t, msg);
    expect_error(&r, b"GET / HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n", 400, t, msg);
    expect_error(&r, b"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", 400, t, msg);
    r.assert_fds_back(base);
    r.assert_no_alerts();
}

/// Request smuggling guards: the framing cannot be trusted, so 400/501 and close.
#[test]
fn bad_body_framing() {
    let r = Rginx::start(CONF, &[]);
    let base = r.fd_baseline();
    let t = "400 Bad Request";
    let msg = "client sent duplicate header line: \"Content-Length";
    let raw = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc";
    expect_error(&r, raw, 400, t, msg);
    let raw = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd";
    expect_error(&r, raw, 400, t, msg);
    let msg = "client sent invalid \"Content-Length\" header";
    expect_error(&r, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400, t, msg);
    expect_error(&r, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n", 400, t, msg);
    let msg = "client sent \"Content-Length\" and \"Transfer-Encoding\" headers at the same time";
    let raw = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\
                Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    expect_error(&r, raw, 400, t, msg);
    let msg = "client sent HTTP/1.0 request with \"Transfer-Encoding\" header";
    let raw = b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    expect_error(&r, raw, 400, t, msg);
    let msg = "client sent unknown \"Transfer-Encoding\"";
    let raw = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n";
    expect_error(&r, raw, 501, "501 Not Implemented", msg);
    let raw = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n";
    expect_error(&r, raw, 501, "501 Not Implemented", msg);
    r.assert_fds_back(base);
    r.assert_no_alerts();
}

#[test]
fn bad_chunk_size() {
    let r = Rginx::start(CONF, &[]);
    let base = r.fd_baseline();
    let t = "400 Bad Request";
    let msg = "client sent invalid chunked body";
    // The bad size arrives with the head: the discard notices it before answering.
    let raw = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
    expect_error(&r, raw, 400, t, msg);
    // A size that overflows 64 bits.
    let raw = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
                fffffffffffffffffffff\r\n";
    expect_error(&r, raw, 400, t, msg);
    r.assert_fds_back(base);
    r.assert_no_alerts();
}

#[test]
fn bad_chunk_after_response_closes() {
    let r = Rginx::start(CONF, &[]);
    // The head alone: answered at once, the body is discarded as it comes; a bad chunk
    // later can only close the connection (the next request can no longer be found).
    let mut c = Conn::new(r.port);
    c.send(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    let resp = c.read_response(false);
    assert_eq!(resp.status, 200);
    c.send(b"5\r\nhello\r\nxyz\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(c.is_closed(TIMEOUT), "connection not closed after a bad chunk");
}

/// `client_max_body_size` against Content-Length: 413 before the location's `return` runs.
#[test]
fn body_too_large_content_length() {
    let r = Rginx::start(CONF, &[]);
    let t = "413 Request Entity Too Large";
    let msg = "client intended to send too large body: 101 bytes";
    let raw = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n";
    expect_error(&r, raw, 413, t, msg);
    let msg = "client intended to send too large body: 1025 bytes";
    let raw = b"POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: 1025\r\n\r\n";
    expect_error(&r, raw, 413, t, msg);

    // At the limit, or with the limit off, the body is discarded and the answer is 200.
    let mut c = Conn::new(r.port);
    let body = vec![b'x'; 100];
    c.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n");
    c.send(&body);
    assert_eq!(c.read_response(false).body_str(), "ok POST /");
    c.send(b"POST /nolimit HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n");
    c.send(&vec![b'y'; 100_000]);
    assert_eq!(c.read_response(false).body_str(), "nolimit");
    c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.read_response(false).body_str(), "ok GET /");
}

/// A request line longer than a large buffer: 414. A header line longer than a large buffer,
/// or a head larger than all of them: 400 "Request Header Or Cookie Too Large" (nginx's 494).
#[test]
fn header_buffers() {
    let r = Rginx::start(CONF, &[]);
    let base = r.fd_baseline();
    let long_uri = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(1100));
    let msg = "client sent too long URI while reading client request line";
    let t = "414 Request-URI Too Large";
    expect_error(&r, long_uri.as_bytes(), 414, t, msg);

    let t = "400 Request Header Or Cookie Too Large";
    let page = |body: &str| body.contains("<center>Request Header Or Cookie Too Large</center>");
    let full = error_page("x");
    let tail = &full[full.find("<hr>").unwrap()..];
    let long_header = format!("GET / HTTP/1.1\r\nHost: x\r\nX-Long: {}\r\n\r\n", "b".repeat(1100));
    let many = format!(
        "GET / HTTP/1.1\r\nHost: x\r\n{}\r\n",
        "X-Header: 0123456789012345678901234567890123456789\r\n".repeat(60)
    );
    for raw in [long_header, many] {
        let mut c = Conn::new(r.port);
        let _ = std::io::Write::write_all(&mut c.stream, raw.as_bytes());
        let resp = c.read_response(false);
        assert!(resp.head.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{}", resp.head);
        assert_eq!(resp.header("Connection"), Some("close"));
        let body = resp.body_str();
        assert!(body.starts_with(&format!("<html>\r\n<head><title>{t}</title>")), "{body}");
        assert!(page(&body), "{body}");
        assert!(body.ends_with(tail), "{body}");
        assert!(c.is_closed(TIMEOUT));
    }
    assert!(r.wait_log("error.log", "client sent too long header line: \"X-Long: bbb", TIMEOUT));

    // A URI that needs the large buffer but fits in it is fine.
    let mut c = Conn::new(r.port);
    let uri = format!("/{}", "c".repeat(900));
    c.send(format!("GET {uri} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
    assert_eq!(c.read_response(false).body_str(), format!("ok GET {uri}"));
    // ... and the connection goes on with the small buffer again.
    c.send(b"GET /again HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.read_response(false).body_str(), "ok GET /again");
    drop(c);
    r.assert_fds_back(base);
    r.assert_no_alerts();
}

/// A client that closes (or half-closes) mid-head gets nothing and costs nothing: the next
/// connection is served.
#[test]
fn partial_head_then_close() {
    let r = Rginx::start(CONF, &[]);
    for partial in [&b"GET / HTT"[..], b"GET / HTTP/1.1\r\nHost: x\r\n", b"G"] {
        let mut c = Conn::new(r.port);
        c.send(partial);
        c.stream.shutdown(std::net::Shutdown::Write).unwrap();
        assert!(c.read_to_close().is_empty());
    }
    let mut c = Conn::new(r.port);
    c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.read_response(false).status, 200);
    assert!(!c.is_closed(Duration::from_millis(100)));
    r.assert_no_alerts();
}

/// Tolerated oddities, as nginx: empty lines before the request line, bare LF line ends,
/// several spaces between the parts, absolute-form targets (host from the target), header
/// names with '_' or '.' (dropped: see http_headers.rs), `Transfer-Encoding: Chunked` in any
/// case.
#[test]
fn tolerated_input() {
    let r = Rginx::start(CONF, &[]);
    let mut c = Conn::new(r.port);
    c.send(b"\r\n\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.read_response(false).body_str(), "ok GET /a");
    c.send(b"GET /b HTTP/1.1\nHost: x\n\n");
    assert_eq!(c.read_response(false).body_str(), "ok GET /b");
    c.send(b"GET   /c   HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.read_response(false).body_str(), "ok GET /c");
    c.send(b"GET http://other:99/d?x HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.read_response(false).body_str(), "ok GET /d");
    c.send(b"GET /e HTTP/1.1\r\nHost: x\r\nX-A_b: 1\r\nX-C.d: 2\r\nX-Empty:\r\n\r\n");
    assert_eq!(c.read_response(false).body_str(), "ok GET /e");
    c.send(b"POST /f HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n0\r\n\r\n");
    assert_eq!(c.read_response(false).body_str(), "ok POST /f");
    c.send(b"GET /%61%2Fb//c/./d/../e HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.read_response(false).body_str(), "ok GET /a/b/c/e");
    r.assert_no_alerts();
}
