//! nginx-tests: rewrite_return.t (the `return` directive), plus HEAD and HTTP/1.0 framing.
//!
//! Each test starts its own server and talks raw HTTP over loopback; the expected bytes are what
//! nginx 1.22 sends (checked with `RGINX_BIN=/usr/sbin/nginx cargo test --test http_return`).

mod common;

use std::time::Duration;

use common::{error_page, server_token, Conn, Rginx};

const CONF: &str = "
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    server {
        listen 127.0.0.1:%%PORT%%;
        server_name localhost;

        location /text { return 200 \"uri=$uri args=$args method=$request_method a=$arg_a host=$host\"; }
        location /empty { return 200; }
        location /nocontent { return 204; }
        location /created { return 201 created; }
        location /status { return 201 \"status=$status\"; }
        location /moved { return 301 http://example.com/new; }
        location /found { return 302 /relative; }
        location /bare { return http://example.com/bare; }
        location /var-url { return 307 http://$host/v?$args; }
        location /missing { return 404; }
        location /missing-text { return 404 \"custom not found\"; }
        location /teapot { return 418; }
        location /unavailable { return 503; }
        location /close { return 444; }
        location / { return 200 root; }
    }
}
";

fn get(port: u16, path: &str) -> common::Response {
    let mut c = Conn::new(port);
    c.send(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes());
    c.read_response(false)
}

#[test]
fn return_text_with_variables() {
    let r = Rginx::start(CONF, &[]);
    let resp = get(r.port, "/text/a%20b?a=1&b=2");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body_str(), "uri=/text/a b args=a=1&b=2 method=GET a=1 host=localhost");
    assert_eq!(resp.header("Content-Type"), Some("text/plain"));
    assert_eq!(resp.header("Content-Length"), Some(resp.body.len().to_string().as_str()));
    assert_eq!(resp.header("Connection"), Some("keep-alive"));
    assert_eq!(resp.header("Server"), Some(server_token().as_str()), "{}", resp.head);
    assert!(resp.header("Date").is_some_and(|d| d.ends_with(" GMT")));
    assert!(resp.head.starts_with("HTTP/1.1 200 OK\r\n"), "{}", resp.head);
    r.assert_no_alerts();
}

/// `$status` in the text is the code returned: nginx's `ngx_http_send_response()` sets the
/// status before it evaluates the text.
#[test]
fn return_text_sees_its_status() {
    let r = Rginx::start(CONF, &[]);
    let resp = get(r.port, "/status");
    assert_eq!(resp.status, 201);
    assert_eq!(resp.body_str(), "status=201");
    r.assert_no_alerts();
}

#[test]
fn return_codes_without_text() {
    let r = Rginx::start(CONF, &[]);
    let resp = get(r.port, "/empty");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("Content-Length"), Some("0"));
    assert!(resp.body.is_empty());

    // 204: no body, no Content-Length, no Content-Type, and the connection stays open.
    let mut c = Conn::new(r.port);
    c.send(b"GET /nocontent HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let resp = c.read_response(false);
    assert!(resp.head.starts_with("HTTP/1.1 204 No Content\r\n"), "{}", resp.head);
    assert_eq!(resp.header("Content-Length"), None, "{}", resp.head);
    assert_eq!(resp.header("Content-Type"), None, "{}", resp.head);
    c.send(b"GET /created HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let resp = c.read_response(false);
    assert!(resp.head.starts_with("HTTP/1.1 201 Created\r\n"), "{}", resp.head);
    assert_eq!(resp.body_str(), "created");
}

#[test]
fn return_redirects() {
    let r = Rginx::start(CONF, &[]);
    let resp = get(r.port, "/moved");
    assert!(resp.head.starts_with("HTTP/1.1 301 Moved Permanently\r\n"));
    assert_eq!(resp.header("Location"), Some("http://example.com/new"));
    assert_eq!(resp.header("Content-Type"), Some("text/html"));
    assert_eq!(resp.body_str(), error_page("301 Moved Permanently"));
    assert_eq!(resp.header("Content-Length"), Some(resp.body.len().to_string().as_str()));

    // 302's page title is "302 Found", its status line "302 Moved Temporarily".
    let resp = get(r.port, "/found");
    assert!(resp.head.starts_with("HTTP/1.1 302 Moved Temporarily\r\n"));
    assert_eq!(resp.body_str(), error_page("302 Found"));
    // A relative URL is made absolute from the Host (nginx: `absolute_redirect on`).
    let loc = resp.header("Location").unwrap_or("");
    assert_eq!(loc, format!("http://localhost:{}/relative", r.port));

    // `return URL` alone means 302.
    let resp = get(r.port, "/bare");
    assert_eq!(resp.status, 302);
    assert_eq!(resp.header("Location"), Some("http://example.com/bare"));

    let resp = get(r.port, "/var-url?x=1");
    assert!(resp.head.starts_with("HTTP/1.1 307 Temporary Redirect\r\n"));
    assert_eq!(resp.header("Location"), Some("http://localhost/v?x=1"));
    assert_eq!(resp.body_str(), error_page("307 Temporary Redirect"));
}

#[test]
fn return_error_pages() {
    let r = Rginx::start(CONF, &[]);
    let mut c = Conn::new(r.port);
    c.send(b"GET /missing HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let resp = c.read_response(false);
    assert!(resp.head.starts_with("HTTP/1.1 404 Not Found\r\n"));
    assert_eq!(resp.body_str(), error_page("404 Not Found"));
    // A 404 keeps the connection.
    assert_eq!(resp.header("Connection"), Some("keep-alive"));

    // With a text, `return 404 TEXT` sends the text, not the page.
    c.send(b"GET /missing-text HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let resp = c.read_response(false);
    assert_eq!(resp.status, 404);
    assert_eq!(resp.body_str(), "custom not found");
    assert_eq!(resp.header("Content-Type"), Some("text/plain"));

    c.send(b"GET /unavailable HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let resp = c.read_response(false);
    assert!(resp.head.starts_with("HTTP/1.1 503 Service Temporarily Unavailable\r\n"));
    assert_eq!(resp.body_str(), error_page("503 Service Temporarily Unavailable"));

    // An unknown code: "418 " with an empty reason and no page.
    c.send(b"GET /teapot HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let resp = c.read_response(false);
    assert!(resp.head.starts_with("HTTP/1.1 418 \r\n"), "{}", resp.head);
    assert_eq!(resp.header("Content-Length"), Some("0"));
}

#[test]
fn return_444_closes_without_response() {
    let r = Rginx::start(CONF, &[]);
    let mut c = Conn::new(r.port);
    c.send(b"GET /close HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert!(c.read_to_close().is_empty());
    // Logged with status 444.
    assert!(r.wait_log("access.log", "\"GET /close HTTP/1.1\" 444 0", common::TIMEOUT), "{}", r.access_log());
}

#[test]
fn head_gets_no_body() {
    let r = Rginx::start(CONF, &[]);
    let mut c = Conn::new(r.port);
    c.send(b"HEAD /text HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let resp = c.read_response(true);
    assert_eq!(resp.status, 200);
    // The length of the body a GET would get.
    let len = "uri=/text args= method=HEAD a= host=localhost".len().to_string();
    assert_eq!(resp.header("Content-Length"), Some(len.as_str()));
    // An error page too: headers only.
    c.send(b"HEAD /missing HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let resp = c.read_response(true);
    assert_eq!(resp.status, 404);
    assert_eq!(resp.header("Content-Type"), Some("text/html"));
    // Nothing else arrives: the next response must start right away.
    c.send(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let resp = c.read_response(false);
    assert_eq!(resp.body_str(), "root");
}

#[test]
fn http10_framing_and_keepalive() {
    let r = Rginx::start(CONF, &[]);
    // HTTP/1.0 without keep-alive: answered with HTTP/1.1, Connection: close, then closed.
    let mut c = Conn::new(r.port);
    c.send(b"GET / HTTP/1.0\r\n\r\n");
    let resp = c.read_response(false);
    assert!(resp.head.starts_with("HTTP/1.1 200 OK\r\n"));
    assert_eq!(resp.header("Connection"), Some("close"));
    assert_eq!(resp.body_str(), "root");
    assert!(c.is_closed(common::TIMEOUT));

    // HTTP/1.0 with Connection: keep-alive: kept.
    let mut c = Conn::new(r.port);
    c.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    let resp = c.read_response(false);
    assert_eq!(resp.header("Connection"), Some("keep-alive"));
    c.send(b"GET /text HTTP/1.0\r\nHost: h\r\nConnection: keep-alive\r\n\r\n");
    let resp = c.read_response(false);
    assert!(resp.body_str().ends_with("host=h"), "{}", resp.body_str());
    assert!(!c.is_closed(Duration::from_millis(200)));

    // HTTP/1.1 with Connection: close: closed after the response.
    let mut c = Conn::new(r.port);
    c.send(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let resp = c.read_response(false);
    assert_eq!(resp.header("Connection"), Some("close"));
    assert!(c.is_closed(common::TIMEOUT));

    // HTTP/0.9-less: a bare HTTP/1.0 request without Host is fine; $host is the server name.
    let mut c = Conn::new(r.port);
    c.send(b"GET /text HTTP/1.0\r\n\r\n");
    let resp = c.read_response(false);
    assert!(resp.body_str().ends_with("host=localhost"), "{}", resp.body_str());
}

#[test]
fn server_level_return() {
    let r = Rginx::start(
        "
%%TEST_GLOBALS%%
events {}
http {
    server {
        listen 127.0.0.1:%%PORT%%;
        return 200 \"server $request_uri\";
        location / { return 500; }
    }
}
",
        &[],
    );
    let resp = get(r.port, "/any/where?q");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body_str(), "server /any/where?q");
}

/// `server_tokens off`: the name without the version, in `Server` and in error pages.
#[test]
fn server_tokens_off() {
    let r = Rginx::start(
        "
%%TEST_GLOBALS%%
events {}
http {
    server_tokens off;
    server {
        listen 127.0.0.1:%%PORT%%;
        location / { return 404; }
    }
}
",
        &[],
    );
    let resp = get(r.port, "/");
    let name = if common::is_nginx() { "nginx" } else { "rginx" };
    assert_eq!(resp.header("Server"), Some(name));
    let page = error_page("404 Not Found").replace(&server_token(), name);
    assert_eq!(resp.body_str(), page);
}
