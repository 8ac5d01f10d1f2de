//! No response splitting: a header value rginx writes never holds CR, LF or NUL, whatever a
//! variable brings in. `$uri` is percent-decoded, so `%0d%0a` in the path becomes a line break
//! in `return 302 https://$host$uri;` or `proxy_set_header X-Uri $uri;`: nginx writes it raw
//! (the client, or the backend, gets a header of the attacker's choosing); rginx writes
//! `%0D%0A` (docs/differences.md). nginx's answers are recorded under `is_nginx()`.
//! (nginx-tests has no .t for this.)

mod common;

use common::{is_nginx, proxy_conf, Backend, Conn, Rginx, TIMEOUT};

const EVIL: &str = "/a%0d%0aSet-Cookie:%20x=1";

/// Every path (the part after "/r" or "/s") gets an absolute and a relative redirect built from
/// `$uri`, and `/p/` a proxied request with `$uri` in a header.
fn conf() -> String {
    proxy_conf(
        "location /r/ { return 302 https://$host$uri; }
        location /s/ { return 301 /moved$uri; }
        location /p/ { proxy_set_header X-Uri $uri; proxy_pass http://%%BACKEND%%; }",
    )
}

/// Open descriptors after one request came and went (the access log is open then).
fn baseline(r: &Rginx) -> usize {
    let mut c = Conn::new(r.port);
    c.send(b"GET /r/warm HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
    c.read_to_close();
    r.fd_count()
}

#[test]
fn redirect_with_decoded_crlf_cannot_add_headers() {
    let backend = Backend::echo();
    let r = Rginx::start(&conf(), &[backend.addr]);
    let baseline = baseline(&r);
    let mut c = Conn::new(r.port);
    for (path, status, location) in [
        (format!("/r{EVIL}"), 302, "https://h/r/a%0D%0ASet-Cookie: x=1".to_string()),
        (format!("/s{EVIL}"), 301, format!("http://h:{}/moved/s/a%0D%0ASet-Cookie: x=1", r.port)),
    ] {
        c.send(format!("GET {path} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes());
        let resp = c.read_response(false);
        assert_eq!(resp.status, status, "{}", resp.head);
        if is_nginx() {
            // nginx: the decoded CR LF ends the Location line; the rest is a header of its own.
            assert_eq!(resp.header("set-cookie"), Some("x=1"), "{}", resp.head);
            assert!(resp.header("location").is_some_and(|l| l.ends_with("/a")), "{}", resp.head);
        } else {
            assert_eq!(resp.header("set-cookie"), None, "{}", resp.head);
            assert_eq!(resp.header("location"), Some(location.as_str()), "{}", resp.head);
        }
        // Either way the framing holds: the connection is kept alive and the next request on
        // it is answered.
        assert_eq!(resp.header("connection"), Some("keep-alive"), "{}", resp.head);
    }
    c.send(b"GET /r/next HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
    assert_eq!(c.read_response(false).header("location"), Some("https://h/r/next"));
    assert!(c.is_closed(TIMEOUT));
    assert_eq!(r.wait_fd_count(baseline, TIMEOUT), baseline);
}

#[test]
fn proxy_set_header_with_decoded_crlf_cannot_add_upstream_headers() {
    let backend = Backend::echo();
    let r = Rginx::start(&conf(), &[backend.addr]);
    let baseline = baseline(&r);
    let mut c = Conn::new(r.port);
    c.send(format!("GET /p{EVIL} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes());
    let resp = c.read_response(false);
    assert_eq!(resp.status, 200, "{}", resp.head);
    let sent = resp.body_str();
    let head = sent.split("\r\n\r\n").next().unwrap_or("");
    let lines: Vec<&str> = head.lines().collect();
    if is_nginx() {
        assert!(lines.contains(&"X-Uri: /p/a"), "{sent}");
        assert!(lines.contains(&"Set-Cookie: x=1"), "{sent}");
    } else {
        assert!(lines.contains(&"X-Uri: /p/a%0D%0ASet-Cookie: x=1"), "{sent}");
        assert!(!lines.iter().any(|l| l.starts_with("Set-Cookie")), "{sent}");
    }
    assert_eq!(resp.header("connection"), Some("keep-alive"), "{}", resp.head);
    drop(c);
    assert_eq!(r.wait_fd_count(baseline, TIMEOUT), baseline);
}
