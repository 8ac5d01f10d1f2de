//! nginx-tests: proxy_redirect.t — `Location` and `Refresh` from the upstream rewritten by
//! `proxy_redirect default | off | FROM TO` (the module's `rewrite_redirect` callback).
//!
//! A rewritten `Location` that came out relative is then made absolute by the header filter
//! (`absolute_redirect on`); one left alone is passed exactly as the upstream sent it.
//! Expectations checked with `RGINX_BIN=/usr/sbin/nginx cargo test --test proxy_redirect`.

mod common;

use std::sync::{Arc, OnceLock};

use common::{Action, Backend, Conn, Rginx};

const CONF: &str = "
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    server {
        listen 127.0.0.1:%%PORT%%;
        server_name localhost;
        location / { proxy_pass http://%%BACKEND%%; }
        location /off/ { proxy_pass http://%%BACKEND%%; proxy_redirect off; }
        location /uri/ { proxy_pass http://%%BACKEND%%/x/; }
        location /explicit/ {
            proxy_pass http://%%BACKEND%%;
            proxy_redirect http://%%BACKEND%%/a/ http://$host:$server_port/b/;
        }
        location /both/ {
            proxy_pass http://%%BACKEND%%;
            proxy_redirect http://other.example/ /o/;
            proxy_redirect default;
        }
        location /inherit/ {
            proxy_redirect http://other.example/ /i/;
            location /inherit/in/ { proxy_pass http://%%BACKEND%%; }
        }
    }
}
";

/// Each case: (request path, what the upstream's `Location` says — `B` is the backend's own
/// `127.0.0.1:port`, `P` the proxy's port — and what the client must see).
const CASES: &[(&str, &str, &str)] = &[
    ("/", "http://B/x/foo", "http://localhost:P/x/foo"),
    ("/", "http://B/", "http://localhost:P/"),
    ("/", "http://elsewhere/x", "http://elsewhere/x"),
    ("/", "/relative", "/relative"),
    ("/off/", "http://B/x/foo", "http://B/x/foo"),
    ("/uri/", "http://B/x/foo?a=b", "http://localhost:P/uri/foo?a=b"),
    ("/uri/", "http://B/y", "http://B/y"),
    ("/explicit/", "http://B/a/z", "http://localhost:P/b/z"),
    ("/explicit/", "http://B/x/foo", "http://B/x/foo"),
    ("/both/", "http://other.example/q", "http://localhost:P/o/q"),
    ("/both/", "http://B/x/foo", "http://localhost:P/x/foo"),
    ("/inherit/in/", "http://other.example/q", "http://localhost:P/i/q"),
];

#[test]
fn location_rewrites() {
    let port: Arc<OnceLock<u16>> = Arc::new(OnceLock::new());
    let p = port.clone();
    let b = Backend::scripted(move |i| {
        let own = format!("127.0.0.1:{}", p.get().copied().unwrap_or(0));
        let loc = CASES[i % CASES.len()].1.replace('B', &own);
        let answer = format!("HTTP/1.1 302 Found\r\nLocation: {loc}\r\nContent-Length: 0\r\n\r\n");
        vec![Action::ReadRequest, Action::Send(answer.into_bytes())]
    });
    let _ = port.set(b.addr.port());
    let r = Rginx::start(CONF, &[b.addr]);
    let own = format!("127.0.0.1:{}", b.addr.port());
    for (i, (path, sent, want)) in CASES.iter().enumerate() {
        let want = want.replace('B', &own).replace('P', &r.port.to_string());
        let mut c = Conn::new(r.port);
        c.send(format!("GET {path}r HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes());
        let resp = c.read_response(false);
        assert_eq!(resp.status, 302, "case {i}");
        assert_eq!(resp.header("Location"), Some(want.as_str()), "case {i}: {path} with {sent}");
    }
}

#[test]
fn refresh_rewrites() {
    let port: Arc<OnceLock<u16>> = Arc::new(OnceLock::new());
    let p = port.clone();
    let b = Backend::scripted(move |_| {
        let own = format!("127.0.0.1:{}", p.get().copied().unwrap_or(0));
        let answer = format!("HTTP/1.1 200 OK\r\nRefresh: 5; URL=http://{own}/x/foo\r\nContent-Length: 0\r\n\r\n");
        vec![Action::ReadRequest, Action::Send(answer.into_bytes())]
    });
    let _ = port.set(b.addr.port());
    let r = Rginx::start(CONF, &[b.addr]);
    let get = |path: &str| {
        let mut c = Conn::new(r.port);
        c.send(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes());
        c.read_response(false)
    };
    // The part after "url=" is rewritten; a Refresh is never made absolute.
    assert_eq!(get("/r").header("Refresh"), Some("5; URL=/x/foo"));
    assert_eq!(get("/uri/r").header("Refresh"), Some("5; URL=/uri/foo"));
    let off = get("/off/r");
    let want = format!("5; URL=http://127.0.0.1:{}/x/foo", b.addr.port());
    assert_eq!(off.header("Refresh"), Some(want.as_str()));
    assert_eq!(off.header("Location"), None);
}
