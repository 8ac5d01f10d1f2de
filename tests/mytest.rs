//! The seed's mytest module (`mytest [HOST[:PORT]]`): the exact request it sends, its
//! two-stage header parsing however the response head is cut, the HTTP/0.9 fallback, and its
//! error paths. The upstream is always the scripted `Backend` on 127.0.0.1 (never baidu).
//!
//! mytest is rginx's own (nginx has no such module), so under `RGINX_BIN=/usr/sbin/nginx`
//! every test returns at once.

mod common;

use common::assert_log;

use std::time::Duration;

use common::{Action, Backend, Conn, Rginx};

/// One server on %%PORT%% whose `/test` is a mytest location pointed at `upstream`.
fn conf(upstream: &str) -> String {
    "
%%TEST_GLOBALS%%
error_log %%PREFIX%%/logs/error.log debug;
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    server {
        listen 127.0.0.1:%%PORT%%;
        server_name localhost;
        location /test { mytest UPSTREAM; }
    }
}
"
    .replace("UPSTREAM", upstream)
}

fn skip() -> bool {
    common::is_nginx()
}

/// The seed's `backendQueryLine` with `args` in place of `%V`.
fn seed_request(args: &str) -> Vec<u8> {
    format!("GET /s?wd={args} HTTP/1.1\r\nHost: www.baidu.com\r\nConnection: close\r\n\r\n").into_bytes()
}

/// A response without its `Date` line (the only part that changes from second to second).
fn without_date(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    text.split("\r\n").filter(|l| !l.starts_with("Date: ")).collect::<Vec<_>>().join("\r\n")
}

#[test]
fn sends_the_seeds_request_line() {
    if skip() {
        return;
    }
    let answer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    let b = Backend::scripted(move |_| vec![Action::ReadRequest, common::send(answer)]);
    let r = Rginx::start(&conf("%%BACKEND%%"), &[b.addr]);
    for path in ["/test?lumia", "/test", "/test?a=1&b=%20x"] {
        let resp = common::parse_response(&common::http(
            r.port,
            format!("GET {path} HTTP/1.0\r\nHost: localhost\r\nX-Client: not-sent\r\n\r\n").as_bytes(),
        ));
        assert_eq!((resp.status, resp.body_str().as_str()), (200, "ok"), "{path}");
    }
    // Exactly the seed's bytes: the raw query string in `wd`, the fixed Host, nothing of the
    // client's headers.
    let want: Vec<Vec<u8>> = ["lumia", "", "a=1&b=%20x"].iter().map(|a| seed_request(a)).collect();
    let got = b.requests();
    assert_eq!(got.len(), 3);
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(String::from_utf8_lossy(g), String::from_utf8_lossy(w));
    }
    // The steps at debug level, with the seed's names.
    assert_log(&r, &["[debug]", "mytest handler: upstream 127.0.0.1:"]);
    assert_log(&r, &["[debug]", "mytest create_request: \"GET /s?wd=lumia\""]);
    assert_log(&r, &["[debug]", "mytest process_header (", "): done, status 200"]);
    assert_log(&r, &["[debug]", "mytest_upstream_finalize_request: Ok"]);
    r.assert_no_alerts();
}

#[test]
fn response_passes_with_the_seeds_header_handling() {
    if skip() {
        return;
    }
    // Server and Date of the upstream are hidden (the proxy's hide list, prepared in
    // merge_loc_conf); so are X-Accel-*; Content-Type and other headers pass.
    let with = "HTTP/1.1 201 Created\r\nServer: baidu\r\nDate: Thu, 01 Jan 1970 00:00:00 GMT\r\n\
                Content-Type: text/html\r\nX-Accel-Buffering: no\r\nX-Custom: y\r\nContent-Length: 5\r\n\r\nhello";
    // None sent: the empty entries the seed adds are hidden too, and rginx's own go out.
    let without = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nbye";
    let b = Backend::scripted(move |i| vec![Action::ReadRequest, common::send(if i == 0 { with } else { without })]);
    let r = Rginx::start(&conf("%%BACKEND%%"), &[b.addr]);
    let mut c = Conn::new(r.port);
    c.send(b"GET /test?lumia HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let resp = c.read_response(false);
    assert_eq!(resp.status, 201);
    assert!(resp.head.starts_with("HTTP/1.1 201 Created\r\n"), "{}", resp.head);
    assert_eq!(resp.header("Server"), Some(common::server_token().as_str()));
    assert_ne!(resp.header("Date"), Some("Thu, 01 Jan 1970 00:00:00 GMT"));
    assert!(resp.header("Date").is_some_and(|d| d.ends_with(" GMT")));
    assert_eq!(resp.header("Content-Type"), Some("text/html"));
    assert_eq!(resp.header("X-Custom"), Some("y"));
    assert_eq!(resp.header("X-Accel-Buffering"), None);
    assert_eq!(resp.header("Content-Length"), Some("5"));
    assert_eq!(resp.body_str(), "hello");
    // The same client connection goes on (keep-alive), and gets a Server and a Date although
    // the upstream sent neither; each appears once.
    c.send(b"GET /test HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let resp = c.read_response(false);
    assert_eq!((resp.status, resp.body_str().as_str()), (200, "bye"));
    assert_eq!(resp.header("Server"), Some(common::server_token().as_str()));
    assert!(resp.header("Date").is_some_and(|d| !d.is_empty()));
    let count = |name: &str| resp.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).count();
    assert_eq!((count("Server"), count("Date")), (1, 1), "{}", resp.head);
    // The seed's empty entries were added for the second response only.
    let added = |name: &str| format!("mytest: no \"{name}\" from upstream, empty one added");
    assert_log(&r, &["[debug]", &added("Server")]);
    assert_log(&r, &["[debug]", &added("Date")]);
    let log = r.error_log();
    assert_eq!((log.matches(&added("Server")).count(), log.matches(&added("Date")).count()), (1, 1), "{log}");
}

#[test]
fn header_parsing_survives_every_split() {
    if skip() {
        return;
    }
    let answer: &'static str =
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-A: 1\r\nSet-Cookie: k=v\r\nContent-Length: 4\r\n\r\nbody";
    let n = answer.len();
    // Connection 0 gets the answer byte by byte; connection i > 0 in two pieces cut after
    // byte i. A pause between pieces makes rginx see them in separate reads.
    let b = Backend::scripted(move |i| {
        let bytes = answer.as_bytes();
        let mut script = vec![Action::ReadRequest];
        let cuts: Vec<usize> = if i == 0 { (1..n).collect() } else { vec![i] };
        let mut from = 0;
        for cut in cuts.into_iter().chain([n]) {
            script.push(Action::Send(bytes[from..cut].to_vec()));
            script.push(Action::Sleep(Duration::from_millis(if i == 0 { 2 } else { 15 })));
            from = cut;
        }
        script
    });
    let r = Rginx::start(&conf("%%BACKEND%%"), &[b.addr]);
    let get = || common::http(r.port, b"GET /test?split HTTP/1.0\r\nHost: localhost\r\n\r\n");
    let first = without_date(&get());
    assert!(first.starts_with("HTTP/1.1 200 OK\r\n"), "{first}");
    assert!(first.ends_with("\r\n\r\nbody"), "{first}");
    assert!(first.contains("\r\nX-A: 1\r\n") && first.contains("\r\nSet-Cookie: k=v\r\n"), "{first}");
    for cut in 1..n {
        assert_eq!(without_date(&get()), first, "cut after byte {cut}");
    }
    // Both parsers were really called on partial input: the status line cut short, the
    // status line done and the header lines cut short in the same call (the seed's
    // `return mytest_upstream_process_header(r)` after the swap), and the header-line parser
    // alone, later.
    assert_log(&r, &["mytest process_header (StatusLine): again"]);
    assert_log(&r, &["mytest process_header (StatusLine+Header): again"]);
    assert_log(&r, &["mytest process_header (Header): again"]);
    assert_log(&r, &["mytest process_header (Header): done, status 200"]);
    r.assert_no_alerts();
}

#[test]
fn invalid_status_line_is_http09() {
    if skip() {
        return;
    }
    let raw = "FOO BAR\r\nX: y\r\n\r\nbody text";
    let b = Backend::scripted(move |_| vec![Action::ReadRequest, common::send(raw), Action::Close]);
    let r = Rginx::start(&conf("%%BACKEND%%"), &[b.addr]);
    let base = r.fd_baseline();
    // The whole upstream answer is the body, sent without a status line or headers.
    let got = common::http(r.port, b"GET /test?lumia HTTP/1.0\r\nHost: localhost\r\n\r\n");
    assert_eq!(String::from_utf8_lossy(&got), raw);
    assert_log(
        &r,
        &[
            "[error]",
            "upstream sent no valid HTTP/1.0 header while reading response header from upstream",
            "request: \"GET /test?lumia HTTP/1.0\"",
            &format!("upstream: \"http://127.0.0.1:{}/s?wd=lumia\"", b.addr.port()),
        ],
    );
    // Status 200, as the seed sets it.
    assert!(r.wait_log("access.log", "\"GET /test?lumia HTTP/1.0\" 200 ", common::TIMEOUT), "{}", r.access_log());
    r.assert_fds_back(base);
}

#[test]
fn invalid_header_line_is_502() {
    if skip() {
        return;
    }
    let b = Backend::scripted(|i| {
        let bad = if i == 0 { "Bad Header\x01: x" } else { "Content-Length: 1x" };
        vec![Action::ReadRequest, common::send(&format!("HTTP/1.1 200 OK\r\n{bad}\r\n\r\nok"))]
    });
    let r = Rginx::start(&conf("%%BACKEND%%"), &[b.addr]);
    for _ in 0..2 {
        let resp = common::parse_response(&common::http(r.port, b"GET /test HTTP/1.0\r\nHost: localhost\r\n\r\n"));
        assert_eq!(resp.status, 502);
        assert_eq!(resp.body_str(), common::error_page("502 Bad Gateway"));
    }
    let tail = "while reading response header from upstream";
    assert_log(&r, &["[error]", "upstream sent invalid header while", tail]);
    assert_log(&r, &["[error]", "upstream sent invalid \"Content-Length\" header: \"Content-Length: 1x\"", tail]);
}

#[test]
fn refused_upstream_is_502() {
    if skip() {
        return;
    }
    let dead = common::refused_addr();
    let r = Rginx::start(&conf("%%BACKEND%%"), &[dead]);
    let base = r.fd_baseline();
    let mut c = Conn::new(r.port);
    for _ in 0..2 {
        c.send(b"GET /test?lumia HTTP/1.1\r\nHost: localhost\r\n\r\n");
        let resp = c.read_response(false);
        assert_eq!(resp.status, 502);
        assert_eq!(resp.body_str(), common::error_page("502 Bad Gateway"));
    }
    // keep-alive after the error page (the second answer came on the same connection)
    drop(c);
    assert_log(
        &r,
        &[
            "[error]",
            "connect() failed (111: Connection refused) while connecting to upstream",
            &format!("upstream: \"http://127.0.0.1:{}/s?wd=lumia\"", dead.port()),
        ],
    );
    assert_log(&r, &["[debug]", "mytest_upstream_finalize_request: Status(502)"]);
    r.assert_fds_back(base);
    r.assert_no_alerts();
}

/// The seed hard-codes a 60 s read timeout, which no test waits for: the 504 path is the
/// framework's (tests/proxy_errors.rs checks it with a short `proxy_read_timeout`). Here the
/// upstream never answers and the client gives up: the upstream connection is closed with
/// the client's, nothing is left behind.
#[test]
fn silent_upstream_and_client_leaving_frees_everything() {
    if skip() {
        return;
    }
    let b = Backend::scripted(|_| vec![Action::ReadRequest, Action::Sleep(Duration::from_secs(8))]);
    let r = Rginx::start(&conf("%%BACKEND%%"), &[b.addr]);
    let base = r.fd_baseline();
    let mut c = Conn::new(r.port);
    c.send(b"GET /test?wait HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert!(b.wait_connections(1, common::TIMEOUT));
    let sent = || b.requests().first().is_some_and(|q| q.ends_with(b"\r\n\r\n"));
    let end = std::time::Instant::now() + common::TIMEOUT;
    while !sent() {
        assert!(std::time::Instant::now() < end, "the request never reached the upstream");
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(c);
    assert_log(&r, &["[info]", "client prematurely closed connection"]);
    assert_log(&r, &["[debug]", "mytest_upstream_finalize_request: Status(499)"]);
    assert!(r.wait_log("access.log", "\"GET /test?wait HTTP/1.1\" 499 ", common::TIMEOUT), "{}", r.access_log());
    r.assert_fds_back(base);
}

#[test]
fn config_errors() {
    if skip() {
        return;
    }
    let bad = |upstream: &str, location: bool| {
        let text = if location {
            conf(upstream)
        } else {
            conf(upstream).replace("location /test { mytest", "mytest").replace("; }", ";")
        };
        match Rginx::try_start(&text, &[]) {
            Ok(_) => panic!("started with mytest {upstream}"),
            Err((out, code)) => (code, out),
        }
    };
    let (code, out) = bad("127.0.0.1:0", true);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("[emerg]") && out.contains("invalid port in upstream \"127.0.0.1:0\""), "{out}");
    // (A name that does not resolve fails at startup too, "host not found in upstream": not
    // tested here, since asking the system resolver may leave the machine, and the suite
    // stays on loopback.)
    let (_, out) = bad("127.0.0.1:1 127.0.0.1:2", true);
    assert!(out.contains("[emerg]") && out.contains("invalid number of arguments in \"mytest\" directive"), "{out}");
    let (_, out) = bad("127.0.0.1:1", false);
    assert!(out.contains("[emerg]") && out.contains("\"mytest\" directive is not allowed here"), "{out}");
}
