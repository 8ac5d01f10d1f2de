//! nginx-tests: auth_request.t — `auth_request URI`: the subrequest's status decides. 2xx
//! lets the request through, 401 and 403 go to the client (401 with the auth answer's first
//! `WWW-Authenticate`), anything else is 500 with "auth request unexpected status: N"; the
//! client's body never reaches the auth location. Recorded with nginx-compare and checked with
//! `RGINX_BIN=/usr/sbin/nginx cargo test --test auth_request`.

mod common;

use common::assert_log;

use std::time::{Duration, Instant};

use common::{proxy_conf, send, Action, Backend, Conn, Rginx};

/// `%%BACKEND%%` answers the auth subrequests, `%%BACKEND2%%` is the protected content.
const LOCATIONS: &str = "
        location = / { return 200 \"root\"; }
        location /p/ { auth_request /auth; proxy_pass http://%%BACKEND2%%/main; }
        location = /auth { proxy_pass http://%%BACKEND%%/check; }
        location /r403/ { auth_request /a403; proxy_pass http://%%BACKEND2%%/main; }
        location = /a403 { return 403; }
        location /r404/ { auth_request /a404; proxy_pass http://%%BACKEND2%%/main; }
        location = /a404 { return 404; }
        location /r204/ { auth_request /a204; proxy_pass http://%%BACKEND2%%/main; }
        location = /a204 { return 204; }
        location /off/ { auth_request /a403; location /off/in/ { auth_request off; proxy_pass http://%%BACKEND2%%/main; } }";

/// One keepalive request on `c`.
fn get(c: &mut Conn, path: &str) -> common::Response {
    c.send(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes());
    c.read_response(false)
}

const MAIN: &str = "HTTP/1.1 200 OK\r\nContent-Length: 7\r\nConnection: close\r\n\r\nsecret\n";

#[test]
fn allow_2xx_passes_to_content() {
    let auth = Backend::fixed(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nyes!!\n");
    let main = Backend::fixed(MAIN.as_bytes());
    let r = Rginx::start(&proxy_conf(LOCATIONS), &[auth.addr, main.addr]);
    let mut c = Conn::new(r.port);
    let resp = get(&mut c, "/p/x");
    assert_eq!((resp.status, resp.body_str().as_str()), (200, "secret\n"));
    // A 204 from a location's `return` counts as 2xx too.
    let resp = get(&mut c, "/r204/x");
    assert_eq!((resp.status, resp.body_str().as_str()), (200, "secret\n"));
    // The auth subrequest is a GET of the auth URI, the client's headers passed on.
    let reqs = auth.requests();
    assert_eq!(reqs.len(), 1);
    let text = String::from_utf8_lossy(&reqs[0]);
    assert!(text.starts_with("GET /check HTTP/1.0\r\n"), "{text}");
    assert_eq!(main.connections(), 2);
    // `auth_request off` in a nested location.
    let resp = get(&mut c, "/off/in/x");
    assert_eq!(resp.status, 200);
    assert_eq!(get(&mut c, "/off/x").status, 403);
    r.assert_no_alerts();
}

#[test]
fn deny_401_copies_www_authenticate() {
    let auth = Backend::scripted(|_| {
        vec![
            Action::ReadRequest,
            send(
                "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"a\"\r\nWWW-Authenticate: Bearer\r\n\
                 X-Other: 1\r\nContent-Length: 5\r\n\r\nnope\n",
            ),
        ]
    });
    let main = Backend::fixed(MAIN.as_bytes());
    let r = Rginx::start(&proxy_conf(LOCATIONS), &[auth.addr, main.addr]);
    let base = r.fd_baseline();
    let mut c = Conn::new(r.port);
    let resp = get(&mut c, "/p/x");
    assert_eq!(resp.status, 401);
    assert_eq!(resp.body_str(), common::error_page("401 Authorization Required"));
    // nginx 1.22 copies the first WWW-Authenticate only, and nothing else of the answer.
    let www: Vec<&str> = resp
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("www-authenticate"))
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(www, ["Basic realm=\"a\""]);
    assert_eq!(resp.header("x-other"), None);
    assert_eq!(main.connections(), 0, "the content is not asked for");
    // The connection is kept alive after a 401, as nginx keeps it.
    let resp = get(&mut c, "/r403/x");
    assert_eq!(resp.status, 403);
    drop(c);
    r.assert_fds_back(base);
}

#[test]
fn deny_403() {
    let main = Backend::fixed(MAIN.as_bytes());
    let r = Rginx::start(&proxy_conf(LOCATIONS), &[common::refused_addr(), main.addr]);
    let base = r.fd_baseline();
    let mut c = Conn::new(r.port);
    let resp = get(&mut c, "/r403/x");
    assert_eq!(resp.status, 403);
    assert_eq!(resp.body_str(), common::error_page("403 Forbidden"));
    assert_eq!(resp.header("connection"), Some("keep-alive"));
    assert_eq!(get(&mut c, "/").status, 200, "kept alive");
    assert_eq!(main.connections(), 0);
    drop(c);
    r.assert_fds_back(base);
}

#[test]
fn other_status_is_500() {
    // A 404 from a `return`, a 500 from the auth server, a refused auth server (502): 500,
    // logged, and the connection closed (nginx closes after a 500).
    let auth = Backend::fixed(b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    let main = Backend::fixed(MAIN.as_bytes());
    let r = Rginx::start(&proxy_conf(LOCATIONS), &[auth.addr, main.addr]);
    let base = r.fd_baseline();
    let mut c = Conn::new(r.port);
    let resp = get(&mut c, "/r404/x");
    assert_eq!(resp.status, 500);
    assert_eq!(resp.body_str(), common::error_page("500 Internal Server Error"));
    assert_eq!(resp.header("connection"), Some("close"));
    assert!(c.is_closed(common::TIMEOUT));
    assert_log(
        &r,
        &[
            "[error]",
            "auth request unexpected status: 404",
            "client: 127.0.0.1, server: localhost, request: \"GET /r404/x HTTP/1.1\"",
            "host: \"localhost\"",
        ],
    );
    let mut c = Conn::new(r.port);
    assert_eq!(get(&mut c, "/p/x").status, 500);
    assert!(c.is_closed(common::TIMEOUT));
    assert_log(&r, &["auth request unexpected status: 500"]);
    assert_eq!(main.connections(), 0);
    r.assert_fds_back(base);
    drop(auth);

    let r = Rginx::start(&proxy_conf(LOCATIONS), &[common::refused_addr(), main.addr]);
    let base = r.fd_baseline();
    let mut c = Conn::new(r.port);
    assert_eq!(get(&mut c, "/p/x").status, 500);
    assert!(c.is_closed(common::TIMEOUT));
    assert_log(&r, &["connect() failed (111: Connection refused)", "subrequest: \"/auth\""]);
    assert_log(&r, &["auth request unexpected status: 502"]);
    r.assert_fds_back(base);
}

#[test]
fn body_not_sent_to_auth() {
    // The request line only, then the answer: nginx announces a body it never sends, so the
    // mock must not wait for one. The rest of the head is recorded as the mock drains.
    let auth = Backend::scripted(|_| {
        vec![
            Action::Expect(b"GET /check HTTP/1.0\r\n".to_vec()),
            send("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
        ]
    });
    let main = Backend::echo();
    let r = Rginx::start(&proxy_conf(LOCATIONS), &[auth.addr, main.addr]);
    let mut c = Conn::new(r.port);
    c.send(b"POST /p/x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 9\r\n\r\nclientbod");
    let resp = c.read_response(false);
    assert_eq!(resp.status, 200);
    assert!(resp.body_str().ends_with("\r\n\r\nclientbod"), "the content gets the body: {}", resp.body_str());
    // The auth location gets the head alone.
    let end = Instant::now() + common::TIMEOUT;
    let seen = loop {
        let seen = auth.requests().first().map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
        if seen.contains("\r\n\r\n") || Instant::now() > end {
            break seen;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(seen.ends_with("\r\n\r\n"), "no body: {seen:?}");
    assert!(!seen.contains("clientbod"));
    // nginx passes the client's Content-Length on without the body; rginx sends none
    // (docs/differences.md).
    let cl = seen.to_ascii_lowercase().contains("content-length");
    assert_eq!(cl, common::is_nginx(), "{seen}");
}

#[test]
fn client_gone_while_auth_waits() {
    // The auth server never answers; the client leaves: the whole tree goes, the auth
    // connection with it, and the content is never asked for.
    let auth = Backend::scripted(|_| vec![Action::ReadRequest, Action::Sleep(common::TIMEOUT)]);
    let main = Backend::fixed(MAIN.as_bytes());
    let r = Rginx::start(&proxy_conf(LOCATIONS), &[auth.addr, main.addr]);
    let base = r.fd_baseline();
    let mut c = Conn::new(r.port);
    c.send(b"GET /p/x HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert!(auth.wait_connections(1, common::TIMEOUT));
    drop(c);
    r.assert_fds_back(base);
    // nginx: "epoll_wait() reported that client prematurely closed connection, so upstream
    // connection is closed too while sending request to upstream, client: ..., subrequest:
    // \"/auth\", ...".
    let line = "epoll_wait() reported that client prematurely closed connection, so upstream connection is closed \
                too while sending request to upstream";
    assert_log(&r, &["[info]", line, "subrequest: \"/auth\""]);
    assert_eq!(main.connections(), 0);
}
