//! The upstream's response head reaches the client as the bytes the upstream sent: a status
//! line, header names and values that are not UTF-8 pass untouched (nginx copies them into its
//! pool and out again, never decoding them), through `proxy_redirect`, and into
//! `$upstream_http_*` / `$sent_http_*`. The header lists are reused from request to request
//! (a pooled buffer each): nothing of one response may show in the next.
//!
//! Expectations checked with `RGINX_BIN=/usr/sbin/nginx cargo test --test proxy_header_bytes`
//! (and with `../shared/tools/nginx-compare`: same client bytes).

mod common;

use std::time::Duration;

use common::{proxy_conf, Action, Backend, Conn, Rginx};

/// The response head up to the blank line, without its `Server:` and `Date:` lines.
fn head_without_server_date(raw: &[u8]) -> Vec<u8> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").map_or(raw.len(), |i| i + 4);
    let mut out = Vec::new();
    for line in raw[..end].split_inclusive(|&b| b == b'\n') {
        if !line.starts_with(b"Server: ") && !line.starts_with(b"Date: ") {
            out.extend_from_slice(line);
        }
    }
    out
}

#[test]
fn non_utf8_status_line_and_values_pass_byte_for_byte() {
    let b = Backend::scripted(|_| {
        vec![
            Action::ReadRequest,
            Action::Send(
                b"HTTP/1.1 200 \xc9t\xe9 OK\r\nContent-Length: 2\r\nX-Raw: caf\xe9 \xff\xfe end\r\n\
                  Content-Type: text/pl\xe4in\r\nX-N\xe4me: v\r\nConnection: close\r\n\r\nhi"
                    .to_vec(),
            ),
            Action::Close,
        ]
    });
    let r = Rginx::start(&proxy_conf("location / { proxy_pass http://%%BACKEND%%; }"), &[b.addr]);
    let base = r.fd_baseline();
    let mut c = Conn::new(r.addr().port());
    c.send(b"GET /x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let raw = c.read_to_close();
    assert_eq!(
        head_without_server_date(&raw),
        b"HTTP/1.1 200 \xc9t\xe9 OK\r\nContent-Type: text/pl\xe4in\r\nContent-Length: 2\r\n\
          Connection: close\r\nX-Raw: caf\xe9 \xff\xfe end\r\nX-N\xe4me: v\r\n\r\n"
            .to_vec(),
        "{}",
        String::from_utf8_lossy(&raw)
    );
    assert!(raw.ends_with(b"\r\n\r\nhi"));
    r.assert_fds_back(base);
}

#[test]
fn non_utf8_location_is_rewritten_around_its_bytes() {
    let b = Backend::scripted(|_| {
        vec![
            Action::ReadRequest,
            Action::Send(b"HTTP/1.1 302 Found\r\nLocation: /a/\xe9\xff?q=\xfe\r\nContent-Length: 0\r\n\r\n".to_vec()),
            Action::Close,
        ]
    });
    let conf = proxy_conf("location / { proxy_pass http://%%BACKEND%%; proxy_redirect /a/ /b/; }");
    let r = Rginx::start(&conf, &[b.addr]);
    let mut c = Conn::new(r.addr().port());
    c.send(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n");
    let raw = c.read_to_close();
    let want = format!("Location: http://localhost:{}/b/", r.addr().port()).into_bytes();
    let line = raw.split(|&b| b == b'\n').find(|l| l.starts_with(b"Location: ")).unwrap_or(b"");
    assert_eq!(line, [&want[..], b"\xe9\xff?q=\xfe\r"].concat(), "{}", String::from_utf8_lossy(&raw));
}

#[test]
fn header_variables_see_the_bytes_sent() {
    let b = Backend::scripted(|_| {
        vec![
            Action::ReadRequest,
            Action::Send(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Raw: a\xe9b\r\n\r\n".to_vec()),
            Action::Close,
        ]
    });
    let conf = proxy_conf("location / { proxy_pass http://%%BACKEND%%; }").replace(
        "proxy_temp_path",
        "log_format raw '[$upstream_http_x_raw|$sent_http_x_raw]';\n    \
         access_log %%PREFIX%%/logs/raw.log raw;\n    proxy_temp_path",
    );
    let r = Rginx::start(&conf, &[b.addr]);
    let mut c = Conn::new(r.addr().port());
    c.send(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n");
    let raw = c.read_to_close();
    assert!(raw.starts_with(b"HTTP/1.1 200 OK\r\n"), "{}", String::from_utf8_lossy(&raw));
    // The access log escapes bytes above 0x7e as nginx does ("\xE9"): the variables held
    // the raw byte, not a replacement character (which would log as three escaped bytes).
    assert!(
        r.wait_log("raw.log", "[a\\xE9b|a\\xE9b]", Duration::from_secs(5)),
        "{}",
        std::fs::read_to_string(r.prefix.join("logs/raw.log")).unwrap_or_default()
    );
}

#[test]
fn reused_header_lists_keep_nothing_of_the_previous_response() {
    // One upstream keepalive connection, three different responses, one client connection.
    let b = Backend::scripted(|_| {
        vec![
            Action::ReadRequest,
            Action::Send(
                b"HTTP/1.1 201 Made\r\nContent-Type: a/b\r\nX-First: 1\r\nLast-Modified: Mon, 01 Jan 2024 00:00:00 GMT\r\n\
                  Content-Length: 1\r\n\r\n1"
                    .to_vec(),
            ),
            Action::ReadRequest,
            Action::Send(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nX-Second: 2\r\n\r\n2".to_vec()),
            Action::ReadRequest,
            Action::Send(b"HTTP/1.1 404 Gone Away\r\nContent-Length: 1\r\n\r\n3".to_vec()),
            Action::Close,
        ]
    });
    let conf = "
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    proxy_temp_path %%PREFIX%%/proxy_temp;
    upstream u { server %%BACKEND%%; keepalive 4; }
    server {
        listen 127.0.0.1:%%PORT%%;
        server_name localhost;
        location / { proxy_pass http://u; proxy_http_version 1.1; proxy_set_header Connection \"\"; }
    }
}
";
    let r = Rginx::start(conf, &[b.addr]);
    let mut c = Conn::new(r.addr().port());
    let mut resps = Vec::new();
    for _ in 0..3 {
        c.send(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
        resps.push(c.read_response(false));
    }
    let seen = |i: usize| (resps[i].status, resps[i].header("content-type"), resps[i].body_str());
    assert_eq!(seen(0), (201, Some("a/b"), "1".to_string()));
    assert_eq!(seen(1), (200, None, "2".to_string()));
    assert_eq!(seen(2), (404, None, "3".to_string()));
    let heads: Vec<&str> = resps.iter().map(|r| r.head.as_str()).collect();
    assert!(heads[0].starts_with("HTTP/1.1 201 Made\r\n"), "{}", heads[0]);
    assert!(heads[0].contains("\r\nX-First: 1\r\n") && heads[0].contains("\r\nLast-Modified: "), "{}", heads[0]);
    assert!(heads[1].starts_with("HTTP/1.1 200 OK\r\n"), "{}", heads[1]);
    assert!(!heads[1].contains("X-First") && !heads[1].contains("Last-Modified") && heads[1].contains("X-Second: 2"));
    assert!(heads[2].starts_with("HTTP/1.1 404 Gone Away\r\n"), "{}", heads[2]);
    assert!(!heads[2].contains("X-First") && !heads[2].contains("X-Second") && !heads[2].contains("Last-Modified"));
    assert_eq!(b.connections(), 1, "the upstream connection was kept alive");
}

/// A proxied 204 keeps the upstream's `Content-Type` (nginx applies its 204 rules only to a
/// response without a status line of its own, and a proxied one always has the upstream's),
/// and a proxied `Last-Modified` goes out where the upstream had it, name as sent, after
/// `Connection` (nginx copies it into the header list). The same for the standard line
/// ("204 No Content", which rginx does not copy) and an unusual one.
#[test]
fn proxied_204_keeps_content_type_and_last_modified_keeps_its_place() {
    for status in ["204 No Content", "204 Nothing"] {
        let resp = format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nlast-modified: Wed, 01 Jan 2025 00:00:00 GMT\r\n\
             X-A: 1\r\nConnection: close\r\n\r\n"
        );
        let b = Backend::scripted(move |_| {
            vec![Action::ReadRequest, Action::Send(resp.clone().into_bytes()), Action::Close]
        });
        let locations = "location / { proxy_pass http://%%BACKEND%%; }
            location /off/ { proxy_pass http://%%BACKEND%%; proxy_buffering off; }";
        let r = Rginx::start(&proxy_conf(locations), &[b.addr]);
        let base = r.fd_baseline();
        for path in ["/x", "/off/x"] {
            let mut c = Conn::new(r.addr().port());
            c.send(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes());
            let raw = c.read_some(Duration::from_secs(5));
            let want = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nConnection: keep-alive\r\n\
                 last-modified: Wed, 01 Jan 2025 00:00:00 GMT\r\nX-A: 1\r\n\r\n"
            );
            let what = format!("{status} {path}");
            assert_eq!(
                String::from_utf8_lossy(&head_without_server_date(&raw)),
                want,
                "{what}: {}",
                String::from_utf8_lossy(&raw)
            );
            // No body, no chunk framing, and the connection stays open for the next request.
            assert!(raw.ends_with(b"X-A: 1\r\n\r\n"), "{what}: {}", String::from_utf8_lossy(&raw));
            assert!(!c.is_closed(Duration::from_millis(200)), "{what}: closed");
        }
        r.assert_fds_back(base);
    }
}
