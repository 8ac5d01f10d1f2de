//! nginx-tests: http_request.t, http_absolute_redirect-less parts of http_uri.t — the request
//! line as nginx 1.22 parses it: HTTP/0.9, versions, spaces, methods, absolute-form targets,
//! bytes in the target.
//!
//! Every answer here was recorded from nginx 1.22.1 (`../shared/tools/nginx-compare`, and
//! `RGINX_BIN=/usr/sbin/nginx cargo test --test http_request_line`): the status, whether the
//! connection closes, what reaches the backend of a proxied location, and that the open
//! descriptors go back to the baseline after each batch.

mod common;

use std::time::Duration;

use common::{error_page, Backend, Conn, Rginx, TIMEOUT};

const CONF: &str = "
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    server {
        listen 127.0.0.1:%%PORT%%;
        server_name localhost;
        location / { return 200 \"uri=$uri args=$args host=$host ru=$request_uri m=$request_method\\n\"; }
        location /p { proxy_pass http://%%BACKEND%%; }
    }
}
";

fn start() -> (Rginx, Backend) {
    let b = Backend::echo();
    let r = Rginx::start(CONF, &[b.addr]);
    (r, b)
}

/// Sends `raw` on a new connection and expects a complete `status` response.
fn answer(r: &Rginx, raw: &[u8], status: u16) -> (Conn, common::Response) {
    let mut c = Conn::new(r.port);
    let _ = std::io::Write::write_all(&mut c.stream, raw);
    let resp = c.read_response(false);
    assert_eq!(resp.status, status, "{:?} -> {}", String::from_utf8_lossy(raw), resp.head);
    (c, resp)
}

/// nginx's error page with `status`, then the close.
fn refused(r: &Rginx, raw: &[u8], status: u16, title: &str) {
    let (mut c, resp) = answer(r, raw, status);
    let what = String::from_utf8_lossy(raw);
    assert_eq!(resp.header("Connection"), Some("close"), "{what:?}");
    assert_eq!(resp.body_str(), error_page(title), "{what:?}");
    assert!(c.is_closed(TIMEOUT), "{what:?}: connection not closed");
}

/// 200 with `body`, and the connection stays open for the next request.
fn served(r: &Rginx, raw: &[u8], body: &str) {
    let (mut c, resp) = answer(r, raw, 200);
    assert_eq!(resp.body_str(), body, "{:?}", String::from_utf8_lossy(raw));
    c.send(b"GET /next HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(c.read_response(false).status, 200, "keepalive after {:?}", String::from_utf8_lossy(raw));
}

/// The body of a 200 answer to `raw`; the connection is closed by the client afterwards.
fn body_of(r: &Rginx, raw: &[u8]) -> Vec<u8> {
    answer(r, raw, 200).1.body
}

fn ok_body(uri: &str, args: &str, host: &str, ru: &str, m: &str) -> String {
    format!("uri={uri} args={args} host={host} ru={ru} m={m}\n")
}

/// HTTP/0.9: "GET /" with no version. nginx answers with the body alone (no status line, no
/// header) and closes; any other method is 400, its page also sent without a header.
#[test]
fn http09_simple_requests() {
    let (r, _b) = start();
    let base = r.fd_baseline();
    for (raw, body) in [
        (&b"GET /\r\n"[..], ok_body("/", "", "localhost", "/", "GET")),
        (b"GET /x?a=1\n", ok_body("/x", "a=1", "localhost", "/x?a=1", "GET")),
        (b"GET /  \r\n", ok_body("/", "", "localhost", "/", "GET")),
        (b"\r\n\r\nGET  /\r\n", ok_body("/", "", "localhost", "/", "GET")),
        (b"GET http://h:8?x\r\n", ok_body("/", "x", "h", "?x", "GET")),
        // the rest of the bytes is not read as headers
        (b"GET /y\r\nHost: h\r\n\r\n", ok_body("/y", "", "localhost", "/y", "GET")),
    ] {
        assert_eq!(common::http(r.port, raw), body.as_bytes(), "{:?}", String::from_utf8_lossy(raw));
    }
    let page = common::http(r.port, b"POST /\r\n");
    assert_eq!(String::from_utf8_lossy(&page), error_page("400 Bad Request"));
    assert!(r.wait_log("error.log", "client sent invalid method in HTTP/0.9 request", TIMEOUT));
    for raw in [&b"GET \r\n"[..], b"GET http://a.com\r\n"] {
        refused(&r, raw, 400, "400 Bad Request");
    }
    r.assert_fds_back(base);
    r.assert_no_alerts();
}

/// An HTTP/0.9 request to a proxied location: the upstream gets an HTTP/1.0 request, the
/// client the upstream's body alone.
#[test]
fn http09_proxied() {
    let (r, b) = start();
    let body = common::http(r.port, b"GET /p/x\r\n");
    let req = format!("GET /p/x HTTP/1.0\r\nHost: {}\r\nConnection: close\r\n\r\n", b.addr);
    assert_eq!(String::from_utf8_lossy(&body), req);
    assert_eq!(b.requests(), [req.into_bytes()]);
}

/// HTTP/1.x: any minor version up to 999 is served as 1.1 (keepalive, Host required);
/// HTTP/2 and up is 505; a malformed version is 400.
#[test]
fn http_versions() {
    let (r, _b) = start();
    let base = r.fd_baseline();
    let root = ok_body("/", "", "h", "/", "GET");
    for v in ["HTTP/1.2", "HTTP/1.99", "HTTP/1.999", "HTTP/1.1 ", "HTTP/1.1  ", "HTTP/1.0 "] {
        let raw = format!("GET / {v}\r\nHost: h\r\nConnection: keep-alive\r\n\r\n");
        served(&r, raw.as_bytes(), &root);
    }
    let v505 = "505 HTTP Version Not Supported";
    for v in ["HTTP/2.0", "HTTP/3", "HTTP/10.0"] {
        refused(&r, format!("GET / {v}\r\nHost: h\r\n\r\n").as_bytes(), 505, v505);
    }
    for v in ["HTTP/1.1000", "HTTP/01.1", "HTTP/0.9", "HTTP/1.", "HTTP/1", "http/1.1", "HTTP/1.1 x"] {
        refused(&r, format!("GET / {v}\r\nHost: h\r\n\r\n").as_bytes(), 400, "400 Bad Request");
    }
    refused(&r, b"GET / HTTP/1.1\rHost: h\r\n\r\n", 400, "400 Bad Request");
    // 1.2 is 1.1: Host is required
    refused(&r, b"GET / HTTP/1.2\r\n\r\n", 400, "400 Bad Request");
    assert!(r.wait_log("error.log", "client sent invalid version while reading client request line", TIMEOUT));
    assert!(r.wait_log("error.log", "client sent HTTP/1.1 request without \"Host\" header", TIMEOUT));
    r.assert_fds_back(base);
    r.assert_no_alerts();
}

/// Methods: `A-Z`, `_`, `-`; unknown names are served (and proxied as they are); TRACE and
/// CONNECT are 405 before any location runs.
#[test]
fn methods() {
    let (r, b) = start();
    let base = r.fd_baseline();
    for raw in [
        &b"TRACE / HTTP/1.1\r\nHost: h\r\n\r\n"[..],
        b"TRACE /p HTTP/1.1\r\nHost: h\r\n\r\n",
        b"CONNECT / HTTP/1.1\r\nHost: h\r\n\r\n",
    ] {
        refused(&r, raw, 405, "405 Not Allowed");
    }
    assert!(r.wait_log("error.log", "client sent TRACE method while reading client request headers", TIMEOUT));
    assert!(r.wait_log("error.log", "client sent CONNECT method", TIMEOUT));
    assert!(b.requests().is_empty(), "TRACE reached the backend");
    // nginx 1.22 parses a CONNECT target like any other: "host:443" is not one
    refused(&r, b"CONNECT h:443 HTTP/1.1\r\nHost: h\r\n\r\n", 400, "400 Bad Request");
    for m in ["FOO", "F_O-O", "PROPFIND"] {
        let raw = format!("{m} /p/a HTTP/1.1\r\nHost: h\r\n\r\n");
        let body = String::from_utf8_lossy(&body_of(&r, raw.as_bytes())).into_owned();
        assert!(body.starts_with(&format!("{m} /p/a HTTP/1.0\r\n")), "{}", body);
    }
    for raw in
        [&b"get / HTTP/1.1\r\nHost: h\r\n\r\n"[..], b" GET / HTTP/1.1\r\n\r\n", b"GET\t/ HTTP/1.1\r\n\r\n", b"GET\r\n"]
    {
        refused(&r, raw, 400, "400 Bad Request");
    }
    assert!(r.wait_log("error.log", "client sent invalid method while reading client request line", TIMEOUT));
    r.assert_fds_back(base);
    r.assert_no_alerts();
}

/// Absolute-form targets: the host in the target is checked and becomes `$host`; the path is
/// `$request_uri` and what the upstream gets (origin-form). `Host` is still required for
/// HTTP/1.1 and may not be repeated.
#[test]
fn absolute_form_targets() {
    let (r, b) = start();
    let base = r.fd_baseline();
    served(&r, b"GET http://example.com HTTP/1.1\r\nHost: other\r\n\r\n", &ok_body("/", "", "example.com", "/", "GET"));
    served(
        &r,
        b"GET http://example.com?x=1 HTTP/1.1\r\nHost: o\r\n\r\n",
        &ok_body("/", "x=1", "example.com", "?x=1", "GET"),
    );
    served(&r, b"GET http://a.com./ HTTP/1.1\r\nHost: o\r\n\r\n", &ok_body("/", "", "a.com", "/", "GET"));
    served(&r, b"GET ftp://A.com:99999/b HTTP/1.1\r\nHost: o\r\n\r\n", &ok_body("/b", "", "a.com", "/b", "GET"));
    served(&r, b"GET http://a.com:/ HTTP/1.1\r\nHost: o\r\n\r\n", &ok_body("/", "", "a.com", "/", "GET"));
    for (target, path) in [("http://Example.COM:80/p/a?b", "/p/a?b"), ("http://[::1]:80/p/z", "/p/z")] {
        let raw = format!("GET {target} HTTP/1.1\r\nHost: h\r\n\r\n");
        let (_c, resp) = answer(&r, raw.as_bytes(), 200);
        let want = format!("GET {path} HTTP/1.0\r\n");
        assert!(resp.body_str().starts_with(&want), "{target}: {}", resp.body_str());
    }
    assert!(b.requests().iter().all(|q| !String::from_utf8_lossy(q).contains("http://")));
    let bad = "400 Bad Request";
    for target in ["http://ex..com/", "http://ex_a.com/", "http:/a.com/", "*"] {
        refused(&r, format!("GET {target} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes(), 400, bad);
    }
    assert!(r.wait_log("error.log", "client sent invalid host in request line", TIMEOUT));
    refused(&r, b"GET http://example.com/p/x HTTP/1.1\r\n\r\n", 400, bad);
    refused(&r, b"GET http://a.com/ HTTP/1.1\r\nHost: h\r\nHost: i\r\n\r\n", 400, bad);
    assert!(r.wait_log(
        "error.log",
        "client sent duplicate host header: \"Host: i\", previous value: \"Host: h\"",
        TIMEOUT
    ));
    r.assert_fds_back(base);
    r.assert_no_alerts();
}

/// Bytes in the target: controls, SP inside, HTAB and DEL are 400; bytes >= 0x80 pass; a
/// fragment is cut from `$uri` but kept in `$request_uri` and sent upstream.
#[test]
fn target_bytes() {
    let (r, _b) = start();
    let base = r.fd_baseline();
    for t in [&b"/a\x01b"[..], b"/a\x7fb", b"/a\tb", b"/a b"] {
        let raw = [&b"GET "[..], t, b" HTTP/1.1\r\nHost: h\r\n\r\n"].concat();
        refused(&r, &raw, 400, "400 Bad Request");
    }
    assert!(r.wait_log("error.log", "client sent invalid request while reading client request line", TIMEOUT));
    let body = body_of(&r, b"GET /a\x80b HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(body, b"uri=/a\x80b args= host=h ru=/a\x80b m=GET\n");
    served(&r, b"GET /a?x#y HTTP/1.1\r\nHost: h\r\n\r\n", &ok_body("/a", "x", "h", "/a?x#y", "GET"));
    served(&r, b"GET /a#y?x HTTP/1.1\r\nHost: h\r\n\r\n", &ok_body("/a", "", "h", "/a#y?x", "GET"));
    served(
        &r,
        b"GET /a%3fb/./c?x?y HTTP/1.1\r\nHost: h\r\n\r\n",
        &ok_body("/a?b/c", "x?y", "h", "/a%3fb/./c?x?y", "GET"),
    );
    let body = String::from_utf8_lossy(&body_of(&r, b"GET /p/a#frag HTTP/1.1\r\nHost: h\r\n\r\n")).into_owned();
    assert!(body.starts_with("GET /p/a#frag HTTP/1.0\r\n"), "{}", body);
    r.assert_fds_back(base);
    r.assert_no_alerts();
}

/// A head sent one byte per packet is parsed where it stopped each time (nginx keeps the
/// parser state), and answers as the whole head does.
#[test]
fn head_one_byte_at_a_time() {
    let (r, _b) = start();
    let mut c = Conn::new(r.port);
    c.stream.set_nodelay(true).unwrap();
    for b in b"GET http://x.org/a?b HTTP/1.1\r\nHost: h\r\nX_Under: 1\r\nNoColon\r\n\r\n" {
        c.send(std::slice::from_ref(b));
        std::thread::sleep(Duration::from_millis(1));
    }
    let resp = c.read_response(false);
    assert_eq!(resp.body_str(), ok_body("/a", "b", "x.org", "/a?b", "GET"));
    r.assert_no_alerts();
}
