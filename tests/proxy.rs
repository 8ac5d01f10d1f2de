//! nginx-tests: proxy.t, proxy_set_header.t, proxy_pass_request.t, proxy_xff.t,
//! proxy_hide_header.t, proxy_http_version... — the proxy module's request and header rules.
//!
//! Every test starts its own server in front of a scripted backend and checks the raw bytes on
//! both sides. The expected bytes are what nginx 1.22 sends and forwards (checked with
//! `RGINX_BIN=/usr/sbin/nginx cargo test --test proxy`).

mod common;

use std::io::Write;
use std::thread;
use std::time::Duration;

use common::{send, Action, Backend, Conn, Rginx};

use common::proxy_conf as conf;

/// Sends `raw` on a fresh connection and reads one response.
fn ask(port: u16, raw: &str) -> common::Response {
    let mut c = Conn::new(port);
    c.send(raw.as_bytes());
    c.read_response(raw.starts_with("HEAD "))
}

fn get(port: u16, path: &str) -> common::Response {
    ask(port, &format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n"))
}

/// The request head the backend received on connection `i`.
fn upstream_request(b: &Backend, i: usize) -> String {
    let reqs = b.requests();
    String::from_utf8_lossy(reqs.get(i).map_or(&[][..], |v| v)).into_owned()
}

#[test]
fn proxy_request_and_response() {
    let b = Backend::fixed(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/x-test\r\nX-Backend: yes\r\nContent-Length: 8\r\n\r\nSEE-THIS",
    );
    let r = Rginx::start(&conf("location / { proxy_pass http://%%BACKEND%%; }"), &[b.addr]);
    let resp = ask(r.port, "GET /path?x=1 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body_str(), "SEE-THIS");
    assert_eq!(resp.header("Content-Type"), Some("text/x-test"));
    assert_eq!(resp.header("Content-Length"), Some("8"));
    assert_eq!(resp.header("X-Backend"), Some("yes"));
    assert_eq!(resp.header("Server"), Some(common::server_token().as_str()));
    r.assert_no_alerts();
}

#[test]
fn default_upstream_request_headers() {
    // nginx's defaults: HTTP/1.0, `Host: $proxy_host`, `Connection: close`; the client's own
    // Host, Connection, Keep-Alive, TE, Upgrade and Expect headers are not passed.
    let b = Backend::echo();
    let r = Rginx::start(&conf("location / { proxy_pass http://%%BACKEND%%; }"), &[b.addr]);
    let resp = ask(
        r.port,
        "GET /a%20b/?x=1&y=%41 HTTP/1.1\r\nHost: example.org\r\nConnection: keep-alive, TE\r\n\
         Keep-Alive: 300\r\nTE: trailers\r\nUser-Agent: test/1.0\r\nX-Custom: one\r\nX-Custom: two\r\n\r\n",
    );
    assert_eq!(resp.status, 200);
    let port = b.addr.port();
    assert_eq!(
        resp.body_str(),
        format!(
            "GET /a%20b/?x=1&y=%41 HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
             User-Agent: test/1.0\r\nX-Custom: one\r\nX-Custom: two\r\n\r\n"
        )
    );
    assert_eq!(upstream_request(&b, 0), resp.body_str());
}

#[test]
fn proxy_set_header_with_variables() {
    let b = Backend::echo();
    let locations = "
        location / {
            proxy_pass http://%%BACKEND%%;
            proxy_set_header Host $host;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Uri \"$uri|$args|$request_method\";
            proxy_set_header X-Drop \"\";
            proxy_set_header Connection \"\";
        }";
    let r = Rginx::start(&conf(locations), &[b.addr]);
    let resp =
        ask(r.port, "GET /a%20b?q=1 HTTP/1.0\r\nHost: example.org\r\nX-Drop: from-client\r\nX-Keep: yes\r\n\r\n");
    // Set headers come first in their order; an empty value drops the header (and the
    // client's header of the same name).
    assert_eq!(
        resp.body_str(),
        "GET /a%20b?q=1 HTTP/1.0\r\nHost: example.org\r\nX-Real-IP: 127.0.0.1\r\n\
         X-Uri: /a b|q=1|GET\r\nX-Keep: yes\r\n\r\n"
    );
}

/// Constant and variable `proxy_set_header` lines interleaved keep their order (constant ones
/// are written once per location, variable ones per request); a long name still replaces
/// the client's line of that name (in any case); a variable that evaluates empty drops its
/// line and the client's.
#[test]
fn proxy_set_header_constant_and_variable_lines_keep_their_order() {
    let b = Backend::echo();
    let long = "X-".to_string() + &"L".repeat(38);
    let locations = format!(
        "
        location / {{
            proxy_pass http://%%BACKEND%%;
            proxy_set_header X-C1 one;
            proxy_set_header X-C2 \"two words\";
            proxy_set_header X-V1 $request_method;
            proxy_set_header X-Empty $http_x_missing;
            proxy_set_header X-C3 three;
            proxy_set_header {long} long;
            proxy_set_header X-V2 \"<$args>\";
        }}"
    );
    let r = Rginx::start(&conf(&locations), &[b.addr]);
    let port = b.addr.port();
    let req = format!(
        "GET /p?a=1 HTTP/1.0\r\nHost: h\r\nX-Empty: client\r\n{}: client\r\nX-Keep: k\r\n\r\n",
        long.to_ascii_lowercase()
    );
    for _ in 0..2 {
        let resp = ask(r.port, &req);
        assert_eq!(
            resp.body_str(),
            format!(
                "GET /p?a=1 HTTP/1.0\r\nX-C1: one\r\nX-C2: two words\r\nX-V1: GET\r\nX-C3: three\r\n\
                 {long}: long\r\nX-V2: <a=1>\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nX-Keep: k\r\n\r\n"
            )
        );
    }
}

#[test]
fn proxy_set_header_inheritance() {
    // proxy_set_header is inherited only by levels that have none of their own.
    let b = Backend::echo();
    let locations = "
        proxy_set_header X-Server srv;
        location /inherit { proxy_pass http://%%BACKEND%%; }
        location /own { proxy_pass http://%%BACKEND%%; proxy_set_header X-Own own; }";
    let r = Rginx::start(&conf(locations), &[b.addr]);
    let a = get(r.port, "/inherit").body_str();
    assert!(a.contains("\r\nX-Server: srv\r\n"), "{a}");
    let o = get(r.port, "/own").body_str();
    assert!(o.contains("\r\nX-Own: own\r\n") && !o.contains("X-Server"), "{o}");
}

#[test]
fn x_forwarded_for() {
    let b = Backend::echo();
    let locations = "location / { proxy_pass http://%%BACKEND%%;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for; }";
    let r = Rginx::start(&conf(locations), &[b.addr]);
    let first = get(r.port, "/").body_str();
    assert!(first.contains("\r\nX-Forwarded-For: 127.0.0.1\r\n"), "{first}");
    let resp = ask(r.port, "GET / HTTP/1.0\r\nHost: x\r\nX-Forwarded-For: 10.0.0.1, 10.0.0.2\r\n\r\n");
    let again = resp.body_str();
    assert!(again.contains("\r\nX-Forwarded-For: 10.0.0.1, 10.0.0.2, 127.0.0.1\r\n"), "{again}");
    assert_eq!(again.matches("X-Forwarded-For").count(), 1, "{again}");
}

#[test]
fn proxy_pass_uri_replacement() {
    let b = Backend::echo();
    let locations = "
        location / { proxy_pass http://%%BACKEND%%; }
        location /noslash/ { proxy_pass http://%%BACKEND%%; }
        location /replace/ { proxy_pass http://%%BACKEND%%/new/; }
        location /root/ { proxy_pass http://%%BACKEND%%/; }
        location /short { proxy_pass http://%%BACKEND%%/long/path; }
        location = /exact { proxy_pass http://%%BACKEND%%/other; }";
    let r = Rginx::start(&conf(locations), &[b.addr]);
    let line = |path: &str| {
        let body = get(r.port, path).body_str();
        body.split("\r\n").next().unwrap_or("").to_string()
    };
    // Without a URI part the client's URI goes as sent (escapes untouched).
    assert_eq!(line("/noslash/a%2Fb%20c?x=%20"), "GET /noslash/a%2Fb%20c?x=%20 HTTP/1.0");
    assert_eq!(line("/plain/../x"), "GET /plain/../x HTTP/1.0");
    // With one, the location prefix of the decoded, normalised URI is replaced and the rest
    // escaped again; the arguments go as sent.
    assert_eq!(line("/replace/a%20b?x=1"), "GET /new/a%20b?x=1 HTTP/1.0");
    assert_eq!(line("/replace/"), "GET /new/ HTTP/1.0");
    assert_eq!(line("/root/deep/file.txt"), "GET /deep/file.txt HTTP/1.0");
    assert_eq!(line("/shortcut"), "GET /long/pathcut HTTP/1.0");
    assert_eq!(line("/exact?a=b"), "GET /other?a=b HTTP/1.0");
}

#[test]
fn proxy_http_version_1_1() {
    let b = Backend::echo();
    let locations = "location / { proxy_pass http://%%BACKEND%%; proxy_http_version 1.1; }";
    let r = Rginx::start(&conf(locations), &[b.addr]);
    let resp = get(r.port, "/v");
    let port = b.addr.port();
    assert_eq!(resp.body_str(), format!("GET /v HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"));
}

#[test]
fn hide_and_pass_headers() {
    let head = "HTTP/1.1 200 OK\r\nServer: backend/1\r\nDate: Thu, 01 Jan 1970 00:00:00 GMT\r\n\
                X-Pad: pad\r\nX-Accel-Expires: 10\r\nX-Secret: s\r\nX-Other: o\r\nContent-Length: 2\r\n\r\nok";
    let b = Backend::fixed(head.as_bytes());
    let locations = "
        location /default { proxy_pass http://%%BACKEND%%; }
        location /custom {
            proxy_pass http://%%BACKEND%%;
            proxy_hide_header X-Secret;
            proxy_pass_header Server;
            proxy_pass_header Date;
        }";
    let r = Rginx::start(&conf(locations), &[b.addr]);
    let d = get(r.port, "/default");
    assert_eq!(d.body_str(), "ok");
    assert_eq!(d.header("Server"), Some(common::server_token().as_str()));
    assert_ne!(d.header("Date"), Some("Thu, 01 Jan 1970 00:00:00 GMT"));
    assert!(d.header("Date").is_some());
    assert_eq!(d.header("X-Pad"), None);
    assert_eq!(d.header("X-Accel-Expires"), None);
    assert_eq!(d.header("X-Secret"), Some("s"));
    let c = get(r.port, "/custom");
    assert_eq!(c.header("Server"), Some("backend/1"));
    assert_eq!(c.header("Date"), Some("Thu, 01 Jan 1970 00:00:00 GMT"));
    assert_eq!(c.header("X-Secret"), None);
    assert_eq!(c.header("X-Other"), Some("o"));
    assert_eq!(c.headers.iter().filter(|(n, _)| n == "Server").count(), 1, "{}", c.head);
    assert_eq!(c.headers.iter().filter(|(n, _)| n == "Date").count(), 1, "{}", c.head);
}

#[test]
fn status_line_is_passed() {
    let b = Backend::fixed(b"HTTP/1.1 299 Custom Thing\r\nContent-Length: 0\r\n\r\n");
    let r = Rginx::start(&conf("location / { proxy_pass http://%%BACKEND%%; }"), &[b.addr]);
    let resp = get(r.port, "/");
    assert!(resp.head.starts_with("HTTP/1.1 299 Custom Thing\r\n"), "{}", resp.head);
}

/// A known status with a reason phrase other than nginx's own (in any byte, case included)
/// passes as sent; nginx's own passes too (rginx writes it without copying it).
#[test]
fn status_line_near_the_standard_one_is_passed_as_sent() {
    for (line, sent) in [
        ("HTTP/1.1 200 ok", "HTTP/1.1 200 ok\r\n"),
        ("HTTP/1.1 200 OK ", "HTTP/1.1 200 OK \r\n"),
        ("HTTP/1.0 200 OK", "HTTP/1.1 200 OK\r\n"),
        ("HTTP/1.1 302 Found", "HTTP/1.1 302 Found\r\n"),
        ("HTTP/1.1 404 Not Found", "HTTP/1.1 404 Not Found\r\n"),
    ] {
        let answer = format!("{line}\r\nContent-Length: 0\r\n\r\n");
        let b = Backend::fixed(answer.as_bytes());
        let r = Rginx::start(&conf("location / { proxy_pass http://%%BACKEND%%; }"), &[b.addr]);
        let resp = get(r.port, "/");
        assert!(resp.head.starts_with(sent), "{line:?}: {}", resp.head);
    }
}

#[test]
fn head_request() {
    let b = Backend::scripted(|_| {
        vec![Action::ReadRequest, send("HTTP/1.1 200 OK\r\nContent-Length: 100\r\nX-H: 1\r\n\r\n")]
    });
    let r = Rginx::start(&conf("location / { proxy_pass http://%%BACKEND%%; }"), &[b.addr]);
    let mut c = Conn::new(r.port);
    c.send(b"HEAD /h HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let resp = c.read_response(true);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("Content-Length"), Some("100"));
    assert_eq!(resp.header("X-H"), Some("1"));
    assert!(upstream_request(&b, 0).starts_with("HEAD /h HTTP/1.0\r\n"));
    // The connection stays usable: nothing follows the head.
    c.send(b"HEAD /h HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let again = c.read_response(true);
    assert_eq!(again.status, 200);
    assert!(c.read_to_close().is_empty());
}

#[test]
fn request_body_is_forwarded_with_length() {
    let b = Backend::echo();
    let r = Rginx::start(&conf("location / { proxy_pass http://%%BACKEND%%; }"), &[b.addr]);
    let resp = ask(
        r.port,
        "POST /p HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: 11\r\n\r\nhello world",
    );
    let body = resp.body_str();
    assert!(body.starts_with("POST /p HTTP/1.0\r\n"), "{body}");
    assert!(body.contains("\r\nContent-Length: 11\r\n"), "{body}");
    assert!(body.ends_with("\r\n\r\nhello world"), "{body}");
    // A chunked client body reaches an HTTP/1.0 upstream with a Content-Length.
    let resp = ask(
        r.port,
        "POST /c HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n\
         5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    );
    let body = resp.body_str();
    assert!(body.contains("\r\nContent-Length: 11\r\n"), "{body}");
    assert!(!body.contains("Transfer-Encoding"), "{body}");
    assert!(body.ends_with("\r\n\r\nhello world"), "{body}");
}

#[test]
fn expect_100_continue() {
    let b = Backend::echo();
    let r = Rginx::start(&conf("location / { proxy_pass http://%%BACKEND%%; }"), &[b.addr]);
    let mut c = Conn::new(r.port);
    c.send(b"POST /e HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n");
    let interim = c.read_some(Duration::from_secs(5));
    assert_eq!(String::from_utf8_lossy(&interim), "HTTP/1.1 100 Continue\r\n\r\n");
    c.send(b"body");
    let resp = c.read_response(false);
    assert_eq!(resp.status, 200);
    let body = resp.body_str();
    assert!(!body.contains("Expect"), "the Expect header is not forwarded: {body}");
    assert!(body.ends_with("\r\n\r\nbody"), "{body}");
}

#[test]
fn upstream_variables_in_access_log() {
    let b = Backend::scripted(|_| {
        vec![
            Action::ReadRequest,
            Action::Sleep(Duration::from_millis(150)),
            send("HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"),
        ]
    });
    let conf = "
%%TEST_GLOBALS%%
events {}
http {
    log_format up \"U $upstream_addr|$upstream_status|$upstream_response_time|$upstream_connect_time|$upstream_header_time|$status\";
    access_log %%PREFIX%%/logs/access.log up;
    server {
        listen 127.0.0.1:%%PORT%%;
        location / { proxy_pass http://%%BACKEND%%; }
    }
}";
    let r = Rginx::start(conf, &[b.addr]);
    assert_eq!(get(r.port, "/").status, 201);
    assert!(r.wait_log("access.log", "U ", common::TIMEOUT));
    let log = r.access_log();
    let line = log.lines().find(|l| l.starts_with("U ")).unwrap_or_default().to_string();
    let f: Vec<&str> = line[2..].split('|').collect();
    assert_eq!(f.len(), 6, "{line}");
    assert_eq!(f[0], format!("127.0.0.1:{}", b.addr.port()));
    assert_eq!(f[1], "201");
    for t in &f[2..5] {
        let secs: f64 = t.parse().unwrap_or_else(|_| panic!("not a time: {t} in {line}"));
        assert!(secs < 5.0, "{line}");
        assert_eq!(t.split('.').nth(1).map(str::len), Some(3), "{line}");
    }
    let response: f64 = f[2].parse().unwrap();
    assert!(response >= 0.1, "the backend slept 150 ms: {line}");
    assert_eq!(f[5], "201");
}

#[test]
fn upstream_variables_after_next_upstream() {
    let good = Backend::fixed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    let dead = common::refused_addr();
    let conf = "
%%TEST_GLOBALS%%
events {}
http {
    log_format up \"U $upstream_addr|$upstream_status\";
    access_log %%PREFIX%%/logs/access.log up;
    upstream u { server %%BACKEND1%%; server %%BACKEND2%%; }
    server {
        listen 127.0.0.1:%%PORT%%;
        location / { proxy_pass http://u; }
    }
}";
    let r = Rginx::start(conf, &[dead, good.addr]);
    for _ in 0..2 {
        let resp = get(r.port, "/");
        assert_eq!((resp.status, resp.body_str().as_str()), (200, "ok"));
    }
    assert!(r.wait_log("access.log", "U ", common::TIMEOUT));
    thread::sleep(Duration::from_millis(100));
    let log = r.access_log();
    let want_both = format!("U 127.0.0.1:{}, 127.0.0.1:{}|502, 200", dead.port(), good.addr.port());
    let want_good = format!("U 127.0.0.1:{}|200", good.addr.port());
    let lines: Vec<&str> = log.lines().collect();
    // Whichever the round robin tried first, the dead peer shows up once as "502" before the
    // good one, and is skipped afterwards (max_fails=1).
    assert!(lines.contains(&want_both.as_str()), "{log}");
    assert!(lines.iter().all(|l| *l == want_both || *l == want_good), "{log}");
    assert!(r.wait_log("error.log", "connect() failed (111: Connection refused)", common::TIMEOUT));
}

#[test]
fn keepalive_client_between_proxied_requests() {
    let b = Backend::fixed(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc");
    let r = Rginx::start(&conf("location / { proxy_pass http://%%BACKEND%%; }"), &[b.addr]);
    let mut c = Conn::new(r.port);
    // Pipelined: both requests in one write.
    c.send(b"GET /1 HTTP/1.1\r\nHost: localhost\r\n\r\nGET /2 HTTP/1.1\r\nHost: localhost\r\n\r\n");
    for _ in 0..2 {
        let resp = c.read_response(false);
        assert_eq!((resp.status, resp.body_str().as_str()), (200, "abc"));
        assert_eq!(resp.header("Connection"), Some("keep-alive"));
    }
    c.send(b"GET /3 HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(c.read_response(false).body_str(), "abc");
    assert!(b.wait_connections(3, common::TIMEOUT));
}

/// A real response, sent with a split at every byte offset: the status line, each header and
/// the blank line all arrive in pieces (nginx's process_header must return AGAIN and resume).
const SPLIT_RESPONSE: &str = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Long-Header: \
     some value that is long enough\r\nX-Empty:\r\nContent-Length: 12\r\n\r\nhello world!";

#[test]
fn header_split_at_every_point() {
    // Connection i sends the first i bytes, pauses, then the rest.
    let total = SPLIT_RESPONSE.len();
    let b = Backend::scripted(move |i| {
        let split = (i % total).max(1);
        vec![
            Action::ReadRequest,
            Action::Send(SPLIT_RESPONSE.as_bytes()[..split].to_vec()),
            Action::Sleep(Duration::from_millis(30)),
            Action::Send(SPLIT_RESPONSE.as_bytes()[split..].to_vec()),
        ]
    });
    let r = Rginx::start(&conf("location / { proxy_pass http://%%BACKEND%%; }"), &[b.addr]);
    let port = r.port;
    // Eight clients at once, so the whole sweep takes about total / 8 pauses.
    let workers: Vec<_> = (0..8)
        .map(|_| {
            thread::spawn(move || {
                let mut seen = Vec::new();
                for _ in 0..total.div_ceil(8) {
                    let resp = get(port, "/split");
                    assert_eq!(resp.status, 200);
                    assert_eq!(resp.body_str(), "hello world!");
                    assert_eq!(resp.header("X-Long-Header"), Some("some value that is long enough"));
                    assert_eq!(resp.header("X-Empty"), Some(""));
                    assert_eq!(resp.header("Content-Type"), Some("text/plain"));
                    seen.push(());
                }
                seen.len()
            })
        })
        .collect();
    let done: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
    assert!(done >= total - 1);
    assert!(b.connections() >= total - 1);
    r.assert_no_alerts();
}

#[test]
fn header_byte_by_byte() {
    // One connection: every byte its own segment.
    let b = Backend::scripted(|_| {
        let mut v = vec![Action::ReadRequest];
        for byte in SPLIT_RESPONSE.bytes() {
            v.push(Action::Send(vec![byte]));
            v.push(Action::Sleep(Duration::from_millis(2)));
        }
        v
    });
    let r = Rginx::start(&conf("location / { proxy_pass http://%%BACKEND%%; }"), &[b.addr]);
    let resp = get(r.port, "/bytes");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body_str(), "hello world!");
    assert_eq!(resp.header("X-Long-Header"), Some("some value that is long enough"));
}

#[test]
fn no_fd_leak_after_battery() {
    // A mixed battery on one server: success, refused, reset, timeout, clients that leave.
    let ok = Backend::fixed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    let reset = Backend::scripted(|_| vec![Action::ReadRequest, Action::Reset]);
    let stall = Backend::scripted(|_| {
        vec![
            Action::ReadRequest,
            send("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npart"),
            Action::Sleep(Duration::from_secs(3)),
        ]
    });
    let dead = common::refused_addr();
    let locations = "
        location /ok { proxy_pass http://%%BACKEND1%%; }
        location /reset { proxy_pass http://%%BACKEND2%%; }
        location /stall { proxy_pass http://%%BACKEND3%%; proxy_read_timeout 500ms; }
        location /dead { proxy_pass http://%%BACKEND4%%; }";
    let r = Rginx::start(&conf(locations), &[ok.addr, reset.addr, stall.addr, dead]);
    // Warm up (lazily opened log files and the like), then take the baseline.
    assert_eq!(get(r.port, "/ok").status, 200);
    thread::sleep(Duration::from_millis(100));
    let base = r.fd_count();
    for _ in 0..5 {
        assert_eq!(get(r.port, "/ok").status, 200);
        assert_eq!(get(r.port, "/reset").status, 502);
        assert_eq!(get(r.port, "/dead").status, 502);
        // A client that leaves before the header arrives.
        let mut c = Conn::new(r.port);
        c.send(b"GET /reset HTTP/1.1\r\nHost: localhost\r\n\r\n");
        drop(c);
        // A client that leaves mid-body.
        let mut c = Conn::new(r.port);
        c.send(b"GET /stall HTTP/1.1\r\nHost: localhost\r\n\r\n");
        let first = c.read_some(Duration::from_secs(5));
        assert!(String::from_utf8_lossy(&first).starts_with("HTTP/1.1 200 OK"));
        drop(c);
    }
    // A stalled body ends by the read timeout: truncated, closed.
    let mut c = Conn::new(r.port);
    c.send(b"GET /stall HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let all = c.read_to_close();
    let all = String::from_utf8_lossy(&all);
    assert!(all.starts_with("HTTP/1.1 200 OK\r\n"), "{all}");
    // nginx's buffered pipe keeps a partly filled buffer until it is full or the upstream is
    // done, so it may close before "part" went out; rginx sends it. Either way: truncated.
    let body = all.split("\r\n\r\n").nth(1).unwrap_or("");
    assert!(body == "part" || body.is_empty(), "{all}");
    let left = r.wait_fd_count(base, Duration::from_secs(8));
    assert_eq!(left, base, "fds: baseline {base}, now {left}");
    r.assert_no_alerts();
}

#[test]
fn upstream_http_1_0_response_and_connection_close() {
    // An HTTP/1.0 upstream answer without a length is delimited by close; a 1.1 client gets it
    // re-chunked and the connection stays open.
    let b = Backend::scripted(|_| {
        vec![Action::ReadRequest, send("HTTP/1.0 200 OK\r\nConnection: close\r\n\r\nuntil close")]
    });
    let r = Rginx::start(&conf("location / { proxy_pass http://%%BACKEND%%; }"), &[b.addr]);
    let mut c = Conn::new(r.port);
    c.send(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let resp = c.read_response(false);
    assert!(resp.chunked, "{}", resp.head);
    assert_eq!(resp.body_str(), "until close");
    assert_eq!(resp.header("Connection"), Some("keep-alive"));
    c.send(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(c.read_response(false).body_str(), "until close");
    let _ = c.stream.flush();
}

#[test]
fn chunked_request_body_in_pieces() {
    // The body arrives after the head, chunk by chunk: the request line and headers sent
    // upstream must still be the client's (the head stays intact while the body is read).
    let b = Backend::echo();
    let r = Rginx::start(&conf("location / { proxy_pass http://%%BACKEND%%; }"), &[b.addr]);
    let mut c = Conn::new(r.port);
    c.send(b"POST /pieces?a=1 HTTP/1.1\r\nHost: localhost\r\nX-Client: kept\r\nTransfer-Encoding: chunked\r\n\r\n");
    for piece in ["5\r\nhel", "lo\r\n", "6\r\n worl", "d\r\n0\r\n", "\r\n"] {
        thread::sleep(Duration::from_millis(50));
        c.send(piece.as_bytes());
    }
    let resp = c.read_response(false);
    let body = resp.body_str();
    assert!(body.starts_with("POST /pieces?a=1 HTTP/1.0\r\n"), "{body}");
    assert!(body.contains("\r\nX-Client: kept\r\n"), "{body}");
    assert!(
        body.contains("\r\nConnection: close\r\nContent-Length: 11\r\nX-Client: kept\r\n\r\nhello world"),
        "{body}"
    );
    assert!(r.wait_log("access.log", "\"POST /pieces?a=1 HTTP/1.1\" 200", common::TIMEOUT));
}

#[test]
fn upstream_group_name_is_proxy_host() {
    let b = Backend::echo();
    let conf = "
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    upstream backend { server %%BACKEND%%; }
    server {
        listen 127.0.0.1:%%PORT%%;
        location / { proxy_pass http://backend; }
        location /h/ { proxy_pass http://backend/x/; proxy_set_header X-PH $proxy_host; }
    }
}";
    let r = Rginx::start(conf, &[b.addr]);
    let body = get(r.port, "/a").body_str();
    assert!(body.starts_with("GET /a HTTP/1.0\r\nHost: backend\r\n"), "{body}");
    let body = get(r.port, "/h/b").body_str();
    assert!(body.starts_with("GET /x/b HTTP/1.0\r\nX-PH: backend\r\nHost: backend\r\n"), "{body}");
}

#[test]
fn hop_by_hop_response_headers_are_not_passed() {
    let b = Backend::fixed(
        b"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Hop\r\nKeep-Alive: timeout=5\r\n\
          Set-Cookie: a=1\r\nSet-Cookie: b=2\r\nLast-Modified: Thu, 01 Jan 1970 00:00:01 GMT\r\n\
          Content-Type: text/x-one\r\nX-Accel-Buffering: no\r\nContent-Length: 2\r\n\r\nok",
    );
    let r = Rginx::start(&conf("location / { proxy_pass http://%%BACKEND%%; }"), &[b.addr]);
    let resp = get(r.port, "/");
    assert_eq!(resp.body_str(), "ok");
    assert_eq!(resp.header("Connection"), Some("close"));
    assert_eq!(resp.header("Keep-Alive"), None);
    assert_eq!(resp.header("X-Accel-Buffering"), None);
    let cookies: Vec<&str> = resp.headers.iter().filter(|(n, _)| n == "Set-Cookie").map(|(_, v)| v.as_str()).collect();
    assert_eq!(cookies, ["a=1", "b=2"]);
    assert_eq!(resp.header("Last-Modified"), Some("Thu, 01 Jan 1970 00:00:01 GMT"));
    assert_eq!(resp.header("Content-Type"), Some("text/x-one"));
}

#[test]
fn http10_client_keepalive() {
    let b = Backend::fixed(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc");
    let r = Rginx::start(&conf("location / { proxy_pass http://%%BACKEND%%; }"), &[b.addr]);
    let mut c = Conn::new(r.port);
    for _ in 0..2 {
        c.send(b"GET / HTTP/1.0\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n");
        let resp = c.read_response(false);
        assert_eq!(resp.body_str(), "abc");
        assert_eq!(resp.header("Connection"), Some("keep-alive"));
    }
}

#[test]
fn pipelined_requests_with_bodies() {
    let b = Backend::echo();
    let r = Rginx::start(&conf("location / { proxy_pass http://%%BACKEND%%; }"), &[b.addr]);
    let mut c = Conn::new(r.port);
    c.send(
        b"POST /1 HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\n\r\none\
          POST /2 HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n3\r\ntwo\r\n0\r\n\r\n\
          GET /3 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    let one = c.read_response(false).body_str();
    assert!(one.starts_with("POST /1 HTTP/1.0\r\n") && one.ends_with("\r\n\r\none"), "{one}");
    let two = c.read_response(false).body_str();
    assert!(two.starts_with("POST /2 HTTP/1.0\r\n") && two.ends_with("\r\n\r\ntwo"), "{two}");
    let three = c.read_response(false).body_str();
    assert!(three.starts_with("GET /3 HTTP/1.0\r\n"), "{three}");
    assert!(c.read_to_close().is_empty());
}

#[test]
fn many_concurrent_clients() {
    // 64 clients at once over both body modes; every answer intact, nothing left open.
    let body: String = (0..30_000).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
    let answer = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len());
    let b = Backend::fixed(answer.as_bytes());
    let locations = "
        location /on/ { proxy_pass http://%%BACKEND%%/; }
        location /off/ { proxy_pass http://%%BACKEND%%/; proxy_buffering off; }
        location /warm { return 200; }";
    let r = Rginx::start(&conf(locations), &[b.addr]);
    assert_eq!(get(r.port, "/warm").status, 200);
    thread::sleep(Duration::from_millis(200));
    let fds = r.fd_count();
    let port = r.port;
    let clients: Vec<_> = (0..64)
        .map(|i| {
            let body = body.clone();
            thread::spawn(move || {
                let path = if i % 2 == 0 { "/on/x" } else { "/off/x" };
                for _ in 0..3 {
                    let mut c = Conn::new(port);
                    c.send(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes());
                    let resp = c.read_response(false);
                    assert_eq!(resp.status, 200);
                    assert!(resp.body_str() == body, "{path}: body differs");
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    assert_eq!(r.wait_fd_count(fds, Duration::from_secs(10)), fds);
    r.assert_no_alerts();
}

#[test]
fn graceful_stop_finishes_proxied_requests() {
    // QUIT while a proxied request waits for its upstream: it completes, then rginx exits.
    let b = Backend::scripted(|_| {
        vec![
            Action::ReadRequest,
            Action::Sleep(Duration::from_millis(800)),
            send("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ndone"),
        ]
    });
    if common::is_nginx() {
        return; // nginx with `master_process off` (the test globals) exits at once on QUIT
    }
    let mut r = Rginx::start(&conf("location / { proxy_pass http://%%BACKEND%%; }"), &[b.addr]);
    let mut c = Conn::new(r.port);
    c.send(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert!(b.wait_connections(1, common::TIMEOUT));
    r.signal("QUIT");
    let resp = c.read_response(false);
    assert_eq!((resp.status, resp.body_str().as_str()), (200, "done"));
    assert!(c.is_closed(Duration::from_secs(5)), "the keepalive connection is closed on exit");
    drop(c);
    assert!(r.wait_exit(Duration::from_secs(5)).is_some());
}

/// A worker reuses the upstream state of finished requests (rginx recycles it; nginx
/// allocates it from each request's pool): on one keep-alive client connection, requests
/// alternating between two locations — different upstreams, URIs, `proxy_set_header`s and
/// HTTP versions — each send exactly their own location's request, and each access-log line
/// names only its own tries (a failed try of an earlier request does not linger).
#[test]
fn alternating_locations_keep_their_own_settings() {
    let a = Backend::echo();
    let b = Backend::echo();
    let dead = common::refused_addr();
    let conf = "
%%TEST_GLOBALS%%
events {}
http {
    log_format up \"U $request_uri $upstream_addr|$upstream_status\";
    access_log %%PREFIX%%/logs/access.log up;
    upstream ua { server %%BACKEND1%%; keepalive 4; }
    upstream ub { server %%BACKEND3%%; server %%BACKEND2%%; }
    server {
        listen 127.0.0.1:%%PORT%%;
        location /a/ {
            proxy_pass http://ua/x/;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_set_header X-Loc a;
        }
        location /b/ {
            proxy_pass http://ub;
            proxy_set_header X-Loc b;
            proxy_set_header X-Other other;
        }
    }
}";
    let r = Rginx::start(conf, &[a.addr, b.addr, dead]);
    let mut c = Conn::new(r.port);
    for i in 0..3 {
        for loc in ["a", "b"] {
            c.send(format!("GET /{loc}/{i} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes());
            let resp = c.read_response(false);
            assert_eq!(resp.status, 200, "/{loc}/{i}");
            let body = resp.body_str();
            if loc == "a" {
                assert!(body.starts_with(&format!("GET /x/{i} HTTP/1.1\r\n")), "{body}");
                assert!(body.contains("\r\nX-Loc: a\r\n") && !body.contains("X-Other"), "{body}");
                assert!(!body.contains("Connection:"), "{body}");
            } else {
                assert!(body.starts_with(&format!("GET /b/{i} HTTP/1.0\r\n")), "{body}");
                assert!(body.contains("\r\nX-Loc: b\r\nX-Other: other\r\n"), "{body}");
                assert!(body.contains("\r\nConnection: close\r\n"), "{body}");
            }
        }
    }
    assert_eq!(a.connections(), 1, "the keepalive upstream's connection is reused");
    assert!(r.wait_log("access.log", "U /b/2 ", common::TIMEOUT));
    let log = r.access_log();
    let (pa, pb, pd) = (a.addr.port(), b.addr.port(), dead.port());
    for line in log.lines() {
        let ok = if line.starts_with("U /a/") {
            line.ends_with(&format!(" 127.0.0.1:{pa}|200"))
        } else {
            // The dead peer is tried once (whichever request the round robin sends to it
            // first), then skipped (max_fails=1).
            line.ends_with(&format!(" 127.0.0.1:{pb}|200"))
                || line.ends_with(&format!(" 127.0.0.1:{pd}, 127.0.0.1:{pb}|502, 200"))
        };
        assert!(ok, "{log}");
    }
    assert_eq!(log.lines().count(), 6, "{log}");
    assert_eq!(log.matches(&format!("127.0.0.1:{pd}")).count(), 1, "{log}");
    r.assert_no_alerts();
}
