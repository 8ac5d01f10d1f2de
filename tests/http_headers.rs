//! nginx-tests: http_header_buffers.t-less parts of http_request.t, http_host.t,
//! http_headers_multi.t — request header lines as nginx 1.22 takes them: names nginx ignores
//! (`ignore_invalid_headers`, `underscores_in_headers`), values, lines nginx refuses, `Host`,
//! `Connection`, the headers that may not repeat, `Transfer-Encoding`.
//!
//! Every answer here was recorded from nginx 1.22.1 (`../shared/tools/nginx-compare`, and
//! `RGINX_BIN=/usr/sbin/nginx cargo test --test http_headers`): the status, the close or the
//! keepalive, the exact header lines that reach the backend, and the descriptors back to
//! the baseline after each batch.

mod common;

use common::{error_page, Backend, Conn, Rginx, TIMEOUT};

const CONF: &str = "
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    server {
        listen 127.0.0.1:%%PORT%%;
        server_name localhost;
        location / { return 200 \"host=$host\\n\"; }
        location /p { proxy_pass http://%%BACKEND%%; }
    }
    server {
        listen 127.0.0.1:%%PORT%%;
        server_name lax;
        underscores_in_headers on;
        ignore_invalid_headers off;
        location /p { proxy_pass http://%%BACKEND%%; }
    }
    server {
        listen 127.0.0.1:%%PORT2%%;
        underscores_in_headers on;
        location / { return 200 ok; }
        location /p { proxy_pass http://%%BACKEND%%; }
    }
}
";

fn start() -> (Rginx, Backend) {
    let b = Backend::echo();
    let r = Rginx::start(CONF, &[b.addr]);
    (r, b)
}

/// The header lines the backend got for one proxied request whose own lines are `lines`,
/// sent to `port` with `Host: host`; the client connection stays open (keepalive).
fn forwarded_to(b: &Backend, port: u16, host: &str, lines: &[u8]) -> Vec<u8> {
    let before = b.connections();
    let mut c = Conn::new(port);
    c.send(&[format!("GET /p HTTP/1.1\r\nHost: {host}\r\n").as_bytes(), lines, b"\r\n"].concat());
    let resp = c.read_response(false);
    assert_eq!(resp.status, 200, "{:?}: {}", String::from_utf8_lossy(lines), resp.head);
    c.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(c.read_response(false).status, 200, "keepalive after {:?}", String::from_utf8_lossy(lines));
    assert!(b.wait_connections(before + 1, TIMEOUT));
    let got = b.requests().pop().unwrap_or_default();
    // the lines after the ones nginx's proxy adds itself (Host, Connection)
    let head = String::from_utf8_lossy(&got).into_owned();
    let start = head.find("Connection: close\r\n").map_or(0, |i| i + "Connection: close\r\n".len());
    got[start..].to_vec()
}

fn forwarded(r: &Rginx, b: &Backend, lines: &[u8]) -> Vec<u8> {
    forwarded_to(b, r.port, "h", lines)
}

/// nginx's error page with `status`, then the close; nothing reaches the backend.
fn refused(r: &Rginx, b: &Backend, raw: &[u8], status: u16, title: &str) {
    let before = b.connections();
    let mut c = Conn::new(r.port);
    let _ = std::io::Write::write_all(&mut c.stream, raw);
    let resp = c.read_response(false);
    let what = String::from_utf8_lossy(raw);
    assert_eq!(resp.status, status, "{what:?} -> {}", resp.head);
    assert_eq!(resp.header("Connection"), Some("close"), "{what:?}");
    assert_eq!(resp.body_str(), error_page(title), "{what:?}");
    assert!(c.is_closed(TIMEOUT), "{what:?}: connection not closed");
    assert_eq!(b.connections(), before, "{what:?} reached the backend");
}

fn get_p(lines: &[u8]) -> Vec<u8> {
    [&b"GET /p HTTP/1.1\r\nHost: h\r\n"[..], lines, b"\r\n"].concat()
}

/// Names with bytes outside `A-Za-z0-9-`, or with '_', are dropped (and logged) by default;
/// `underscores_in_headers on` keeps '_', `ignore_invalid_headers off` keeps them all. The
/// setting is the one of the server `Host` selects.
#[test]
fn invalid_names_are_dropped() {
    let (r, b) = start();
    let base = r.fd_baseline();
    let odd = b"X_Under: 1\r\n_X: 2\r\nX@Y: 3\r\nX.Y: 4\r\nX{Y}: 5\r\n@X: 6\r\nX\x80Y: 7\r\nNo/Colon\r\nX-Ok: 8\r\n";
    assert_eq!(forwarded(&r, &b, odd), b"X-Ok: 8\r\n\r\n");
    for line in ["X_Under: 1", "_X: 2", "X@Y: 3", "X.Y: 4", "X{Y}: 5", "@X: 6", "No/Colon"] {
        let msg = format!("client sent invalid header line: \"{line}\" while reading client request headers");
        assert!(r.wait_log("error.log", &msg, TIMEOUT), "no {msg:?}");
    }
    let all =
        b"X_Under: 1\r\n_X: 2\r\nX@Y: 3\r\nX.Y: 4\r\nX{Y}: 5\r\n@X: 6\r\nX\x80Y: 7\r\nNo/Colon: \r\nX-Ok: 8\r\n\r\n";
    assert_eq!(forwarded_to(&b, r.port, "lax", odd), all);
    assert_eq!(forwarded_to(&b, r.port2, "h", b"X_Under: 1\r\nX@Y: 3\r\n"), b"X_Under: 1\r\n\r\n");
    // a dropped Host_ is no Host: HTTP/1.1 needs one
    refused(&r, &b, b"GET / HTTP/1.1\r\nHost_: a\r\n\r\n", 400, "400 Bad Request");
    r.assert_fds_back(base);
    r.assert_no_alerts();
}

/// Values: any byte but NUL, CR and LF is forwarded, controls and DEL included; only SP (not
/// HTAB) is trimmed around them; a line without a colon is a header with an empty value;
/// a bare LF or "CR CR LF" ends a line.
#[test]
fn values_and_line_ends() {
    let (r, b) = start();
    let base = r.fd_baseline();
    let cases: &[(&[u8], &[u8])] = &[
        (b"X: a\x01b\x7fc\x1fd\r\n", b"X: a\x01b\x7fc\x1fd\r\n"),
        (b"X:   a  b \t \r\n", b"X: a  b \t\r\n"),
        (b"X:\ta\r\n", b"X: \ta\r\n"),
        (b"X: \xff\xfe\r\n", b"X: \xff\xfe\r\n"),
        (b"NoColon\r\n", b"NoColon: \r\n"),
        (b"X: a\r\r\n", b"X: a\r\n"),
        (b"X: y\nZ: w\r\n", b"X: y\r\nZ: w\r\n"),
        (b"User-Agent: a\r\nUser-Agent: b\r\n", b"User-Agent: a\r\nUser-Agent: b\r\n"),
    ];
    for (sent, got) in cases {
        let mut want = got.to_vec();
        want.extend_from_slice(b"\r\n");
        assert_eq!(forwarded(&r, &b, sent), want, "{:?}", String::from_utf8_lossy(sent));
    }
    r.assert_fds_back(base);
    r.assert_no_alerts();
}

/// Lines nginx refuses with 400, logged with the offending byte.
#[test]
fn refused_lines() {
    let (r, b) = start();
    let base = r.fd_baseline();
    let cases: &[(&[u8], &str)] = &[
        (b"X: a\x00b\r\n", "\"X: a\\x00...\""),
        (b"X:\x00\r\n", "\"X:\\x00...\""),
        (b"X: a\rb\r\n", "\"X: a\\x0d...\""),
        (b"X : a\r\n", "\"X\\x20...\""),
        (b"X\x01: a\r\n", "\"X\\x01...\""),
        (b"X\x7f: a\r\n", "\"X\\x7f...\""),
        (b" folded\r\n", "\"\\x20...\""),
        (b"X: a\r\n folded\r\n", "\"\\x20...\""),
        (b":X\r\n", "\"\\x3a...\""),
        (b"\r\r\n", "\"\\x0d...\""),
        (b"HTTP/1.1 200 OK\r\n", "\"HTTP/1.1\\x20...\""),
    ];
    for (line, logged) in cases {
        refused(&r, &b, &get_p(line), 400, "400 Bad Request");
        let msg = format!("client sent invalid header line: {logged} while reading client request headers");
        assert!(r.wait_log("error.log", &msg, TIMEOUT), "no {msg:?}");
    }
    r.assert_fds_back(base);
    r.assert_no_alerts();
}

/// `Host`: validated, lowercased, port and one trailing dot dropped; refused when empty,
/// with "..", '/', a control byte or SP, and when repeated.
#[test]
fn host_header() {
    let (r, b) = start();
    let base = r.fd_baseline();
    for (host, shown) in [
        ("H.Example.Com.:8080", "h.example.com"),
        (".a", ".a"),
        ("a.", "a"),
        ("[::1]:80", "[::1]"),
        ("a:b:c", "a"),
        ("h_x", "h_x"),
    ] {
        let raw = format!("GET / HTTP/1.0\r\nHost: {host}\r\n\r\n");
        let got = String::from_utf8_lossy(&common::http(r.port, raw.as_bytes())).into_owned();
        assert!(got.ends_with(&format!("\r\n\r\nhost={shown}\n")), "{host}: {got}");
    }
    let t = "400 Bad Request";
    for host in [&b"a.."[..], b"a..b", b".", b":80", b"a/b", b"a\tb", b"a\x01b", b""] {
        refused(&r, &b, &[&b"GET / HTTP/1.1\r\nHost: "[..], host, b"\r\n\r\n"].concat(), 400, t);
    }
    refused(&r, &b, b"GET / HTTP/1.0\r\nHost:\r\n\r\n", 400, t);
    assert!(r.wait_log("error.log", "client sent invalid host header while reading client request headers", TIMEOUT));
    refused(&r, &b, b"GET / HTTP/1.1\r\nhost: a\r\nHOST: b\r\n\r\n", 400, t);
    let msg = "client sent duplicate host header: \"HOST: b\", previous value: \"host: a\"";
    assert!(r.wait_log("error.log", msg, TIMEOUT));
    r.assert_fds_back(base);
    r.assert_no_alerts();
}

/// Headers nginx takes once only: a second one is 400, logged with both values. Others may
/// repeat and are all forwarded.
#[test]
fn unique_headers() {
    let (r, b) = start();
    let base = r.fd_baseline();
    for name in [
        "Content-Length",
        "Transfer-Encoding",
        "Expect",
        "If-Modified-Since",
        "If-Unmodified-Since",
        "If-Match",
        "If-None-Match",
        "Content-Range",
        "If-Range",
        "Authorization",
    ] {
        let lines = format!("{name}: 1\r\n{name}: 1\r\n");
        refused(&r, &b, &get_p(lines.as_bytes()), 400, "400 Bad Request");
        let msg = format!("client sent duplicate header line: \"{name}: 1\", previous value: \"{name}: 1\"");
        assert!(r.wait_log("error.log", &msg, TIMEOUT), "no {msg:?}");
    }
    for name in ["Range", "Referer", "Cookie", "Content-Type", "X-Real-IP"] {
        let lines = format!("{name}: a\r\n{name}: b\r\n");
        let want = format!("{lines}\r\n");
        assert_eq!(String::from_utf8_lossy(&forwarded(&r, &b, lines.as_bytes())), want);
    }
    r.assert_fds_back(base);
    r.assert_no_alerts();
}

/// `Transfer-Encoding`: exactly "chunked" in any case (SP around it trimmed), else 501;
/// HTTP/1.0 with it, or with `Content-Length` too, 400.
#[test]
fn transfer_encoding() {
    let (r, b) = start();
    let base = r.fd_baseline();
    for te in ["chunked", "CHUNKED", "chunked ", " chunked"] {
        let raw = format!("POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: {te}\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
        let mut c = Conn::new(r.port);
        c.send(raw.as_bytes());
        let resp = c.read_response(false);
        assert_eq!(resp.status, 200, "{te:?}");
        assert!(resp.body_str().ends_with("Content-Length: 3\r\n\r\nabc"), "{te:?}: {}", resp.body_str());
    }
    let t501 = "501 Not Implemented";
    for te in [&b"chunked\t"[..], b"gzip, chunked", b"chunked, chunked", b"identity", b""] {
        let raw = [&b"POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: "[..], te, b"\r\n\r\n0\r\n\r\n"].concat();
        refused(&r, &b, &raw, 501, t501);
    }
    let msg = "client sent unknown \"Transfer-Encoding\": \"gzip, chunked\" while reading client request headers";
    assert!(r.wait_log("error.log", msg, TIMEOUT));
    let raw = b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: gzip\r\n\r\n0\r\n\r\n";
    refused(&r, &b, raw, 501, t501);
    let t400 = "400 Bad Request";
    let raw = b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    refused(&r, &b, raw, 400, t400);
    refused(&r, &b, b"POST /p HTTP/1.0\r\nTransfer-Encoding: gzip\r\n\r\n", 400, t400);
    // a dropped Transfer_Encoding frames nothing: Content-Length does
    let raw = b"POST /p HTTP/1.1\r\nHost: h\r\nTransfer_Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc";
    let mut c = Conn::new(r.port);
    c.send(raw);
    let resp = c.read_response(false);
    assert!(resp.body_str().ends_with("\r\nContent-Length: 3\r\n\r\nabc"), "{}", resp.body_str());
    assert!(!resp.body_str().contains("Transfer_Encoding"));
    drop(c);
    r.assert_fds_back(base);
    r.assert_no_alerts();
}

/// `Connection`: "close" anywhere in the value (any case) closes, else "keep-alive" anywhere
/// keeps; the last header naming either decides.
#[test]
fn connection_header() {
    let (r, _b) = start();
    let base = r.fd_baseline();
    let cases: &[(&[u8], bool)] = &[
        (b"GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, close\r\n\r\n", false),
        (b"GET / HTTP/1.1\r\nHost: h\r\nConnection: xclosex\r\n\r\n", false),
        (b"GET / HTTP/1.0\r\nConnection: xkeep-alivex\r\n\r\n", true),
        (b"GET / HTTP/1.0\r\nConnection: close, keep-alive\r\n\r\n", false),
        (b"GET / HTTP/1.1\r\nHost: h\r\nConnection: a\r\nConnection: close\r\n\r\n", false),
        (b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\nConnection: keep-alive\r\n\r\n", true),
        (b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\nConnection: other\r\n\r\n", false),
    ];
    for (raw, keep) in cases {
        let mut c = Conn::new(r.port);
        c.send(raw);
        assert_eq!(c.read_response(false).status, 200);
        let what = String::from_utf8_lossy(raw);
        assert_eq!(!c.is_closed(std::time::Duration::from_millis(300)), *keep, "{what:?}");
    }
    r.assert_fds_back(base);
    r.assert_no_alerts();
}
