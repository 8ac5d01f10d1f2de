//! The seed's stock_quote module (`stock_quote [PREFIX]`, seed 002): `/query?CODE` asks
//! `/list=CODE` in memory through a `proxy_pass` location and answers the quote in the seed's
//! words; every way the quote service can fail gives 502 (504 when too slow), one clear
//! error-log line, and leaves nothing open. The quote service is the scripted `Backend` on
//! 127.0.0.1, or a `return` location in a second server block (as the default conf does).
//!
//! stock_quote is rginx's own (nginx has no such module), so under `RGINX_BIN=/usr/sbin/nginx`
//! every test returns at once.

mod common;

use common::assert_log;

use std::time::{Duration, Instant};

use common::{Action, Backend, Conn, Rginx};

/// `/query` is stock_quote with `prefix` (empty: the default); `/list` proxies to the quote
/// service `quote`, as the seed's conf does, with a short read timeout for the slow case.
fn conf(prefix: &str, quote: &str) -> String {
    "
%%TEST_GLOBALS%%
error_log %%PREFIX%%/logs/error.log debug;
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    server {
        listen 127.0.0.1:%%PORT%%;
        server_name localhost;
        location /query { stock_quote SQ_PREFIX; }
        location /list {
            proxy_pass http://QUOTE;
            proxy_set_header Accept-Encoding \"\";
            proxy_read_timeout 500ms;
        }
    }
}
"
    .replace("SQ_PREFIX", prefix)
    .replace("QUOTE", quote)
}

fn skip() -> bool {
    common::is_nginx()
}

/// The service's answer: status line, length, body.
fn quote_answer(status: &str, body: &[u8]) -> Vec<u8> {
    let mut v =
        format!("HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
    v.extend_from_slice(body);
    v
}

/// A quote service answering each request with `answers[i]` (the last one repeated).
fn service(answers: Vec<Vec<u8>>) -> Backend {
    Backend::scripted(move |i| {
        let a = answers.get(i).or(answers.last()).cloned().unwrap_or_default();
        vec![Action::ReadRequest, Action::Send(a)]
    })
}

/// The error-log lines at `[error]` level.
fn error_lines(r: &Rginx) -> Vec<String> {
    r.error_log().lines().filter(|l| l.contains(" [error] ")).map(str::to_string).collect()
}

/// Sends `GET path` on `c` (keep-alive) and reads the answer.
fn get(c: &mut Conn, path: &str) -> common::Response {
    c.send(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes());
    c.read_response(false)
}

#[test]
fn good_quote_gives_the_seeds_answer() {
    if skip() {
        return;
    }
    // The name in GBK ("上证指数"), as the real service sends it: passed on byte for byte.
    let quote = b"var hq_str_s_sh000001=\"\xc9\xcf\xd6\xa4\xd6\xb8\xca\xfd,3000.12,-5.01,-0.17,123456,789012\";\n";
    let b = service(vec![quote_answer("200 OK", quote)]);
    let r = Rginx::start(&conf("", "%%BACKEND%%"), &[b.addr]);
    let base = r.fd_baseline();
    let mut c = Conn::new(r.port);
    c.send(b"GET /query?s_sh000001 HTTP/1.1\r\nHost: localhost\r\nAccept-Encoding: gzip\r\n\r\n");
    let resp = c.read_response(false);
    let mut want = b"stock[\xc9\xcf\xd6\xa4\xd6\xb8\xca\xfd],Today current price: 3000.12".to_vec();
    want.extend_from_slice(b", volumn: 123456");
    assert_eq!(resp.status, 200);
    assert!(resp.head.starts_with("HTTP/1.1 200 OK\r\n"), "{}", resp.head);
    assert_eq!(resp.header("Content-Type"), Some("text/plain; charset=GBK"));
    assert_eq!(resp.header("Content-Length"), Some(want.len().to_string().as_str()));
    assert_eq!(resp.body, want);
    // The subrequest reached the service as the seed's `/list=` + args, without the
    // client's Accept-Encoding (`proxy_set_header Accept-Encoding ""`).
    let got = b.requests();
    assert_eq!(got.len(), 1);
    let req = String::from_utf8_lossy(&got[0]).to_string();
    assert!(req.starts_with("GET /list=s_sh000001 HTTP/1.0\r\n"), "{req}");
    assert!(!req.to_ascii_lowercase().contains("accept-encoding"), "{req}");
    // The seed's steps, in order, at debug level.
    let sent = format!("stock_quote answer sent: {} bytes", want.len());
    let steps = [
        "stock_quote handler: subrequest \"/list=s_sh000001\"",
        "subrequest \"/list=s_sh000001",
        "stock_quote post_subrequest: rc Ok, status 200, ",
        "stock_quote parent re-activated: status 200",
        &sent,
    ];
    assert_log(&r, &["[debug]", &sent]);
    let log = r.error_log();
    let at: Vec<usize> = steps.iter().map(|s| log.find(s).unwrap_or_else(|| panic!("no {s:?}:\n{log}"))).collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "steps out of order:\n{log}");
    assert!(error_lines(&r).is_empty(), "{log}");
    // The connection stays open for the next request.
    let again = {
        c.send(b"GET /query?s_sh000001 HTTP/1.1\r\nHost: localhost\r\n\r\n");
        c.read_response(false)
    };
    assert_eq!((again.status, again.body), (200, want));
    drop(c);
    r.assert_fds_back(base);
    r.assert_no_alerts();
}

/// The default conf's shape: the quote service is a `return` in a second server block of
/// the same rginx; here with a prefix of its own, and a body on the client's request (thrown
/// away, the connection goes on).
#[test]
fn quote_from_a_return_location_with_a_custom_prefix() {
    if skip() {
        return;
    }
    let text = "
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    server {
        listen 127.0.0.1:%%PORT%%;
        location /query { stock_quote /quote/; }
        location /quote/ { proxy_pass http://127.0.0.1:%%PORT2%%; proxy_set_header Accept-Encoding \"\"; }
    }
    server {
        listen 127.0.0.1:%%PORT2%%;
        location = /quote/s_sz399001 { return 200 'var hq_str_s_sz399001=\"SZ,9876.5,1.2,0.01,42,43\";'; }
    }
}
";
    let r = Rginx::start(text, &[]);
    let base = r.fd_baseline();
    let mut c = Conn::new(r.port);
    let want = "stock[SZ],Today current price: 9876.5, volumn: 42";
    let resp = get(&mut c, "/query?s_sz399001");
    assert_eq!((resp.status, resp.body_str().as_str()), (200, want));
    c.send(b"POST /query?s_sz399001 HTTP/1.1\r\nHost: localhost\r\nContent-Length: 11\r\n\r\nhello=world");
    let resp = c.read_response(false);
    assert_eq!((resp.status, resp.body_str().as_str()), (200, want));
    let resp = get(&mut c, "/query?s_sz399001");
    assert_eq!((resp.status, resp.body_str().as_str()), (200, want));
    // The body arrives after the head, in two pieces, while the quote may already be back.
    c.send(b"POST /query?s_sz399001 HTTP/1.1\r\nHost: localhost\r\nContent-Length: 11\r\n\r\nhello");
    std::thread::sleep(Duration::from_millis(50));
    c.send(b"=world");
    let resp = c.read_response(false);
    assert_eq!((resp.status, resp.body_str().as_str()), (200, want));
    let resp = get(&mut c, "/query?s_sz399001");
    assert_eq!((resp.status, resp.body_str().as_str()), (200, want));
    drop(c);
    r.assert_fds_back(base);
    r.assert_no_alerts();
}

#[test]
fn non_200_quote_is_502() {
    if skip() {
        return;
    }
    let b = service(vec![quote_answer("404 Not Found", b"var hq_str_x=\"A,1,2,3,4,5\";")]);
    let r = Rginx::start(&conf("", "%%BACKEND%%"), &[b.addr]);
    let base = r.fd_baseline();
    let mut c = Conn::new(r.port);
    for _ in 0..2 {
        let resp = get(&mut c, "/query?s_sh000001");
        assert_eq!(resp.status, 502);
        assert_eq!(resp.body_str(), common::error_page("502 Bad Gateway"));
    }
    // keep-alive after the error page (both answers came on one connection)
    drop(c);
    assert_log(
        &r,
        &[
            "[error]",
            "stock_quote: quote service answered 404, expected 200",
            "request: \"GET /query?s_sh000001 HTTP/1.1\"",
            "subrequest: \"/list=s_sh000001\"",
        ],
    );
    assert_log(&r, &["[debug]", "stock_quote post_subrequest: rc Ok, status 404, ", "not parsed"]);
    assert!(r.wait_log("access.log", "\"GET /query?s_sh000001 HTTP/1.1\" 502 ", common::TIMEOUT));
    assert_eq!(error_lines(&r).len(), 2, "{}", r.error_log());
    r.assert_fds_back(base);
    r.assert_no_alerts();
}

#[test]
fn malformed_quote_is_502() {
    if skip() {
        return;
    }
    let bodies: [(&[u8], &str); 5] = [
        (b"var hq_str_s_sh000001=\"\";\n", "fewer than 5 fields"),
        (b"var hq_str_s_sh000001=\"A,1,2,3\";", "fewer than 5 fields"),
        (b"var hq_str_s_sh000001=\",1,2,3,4,5\";", "empty name, price or volume"),
        (b"<html>maintenance</html>", "no opening quote"),
        (b"var hq_str_s_sh000001=\"A,1,2,3,4,5", "no closing quote"),
    ];
    let b = service(bodies.iter().map(|(q, _)| quote_answer("200 OK", q)).collect());
    let r = Rginx::start(&conf("", "%%BACKEND%%"), &[b.addr]);
    let base = r.fd_baseline();
    let mut c = Conn::new(r.port);
    for (_, why) in bodies {
        let resp = get(&mut c, "/query?s_sh000001");
        assert_eq!(resp.status, 502, "{why}");
        assert_eq!(resp.body_str(), common::error_page("502 Bad Gateway"));
        assert_log(&r, &["[error]", &format!("stock_quote: malformed quote ({why}): \""), "subrequest: \"/list="]);
    }
    drop(c);
    assert_log(&r, &["[error]", "malformed quote (no opening quote): \"<html>maintenance</html>\""]);
    assert_eq!(error_lines(&r).len(), bodies.len(), "{}", r.error_log());
    r.assert_fds_back(base);
    r.assert_no_alerts();
}

#[test]
fn refused_quote_service_is_502() {
    if skip() {
        return;
    }
    let dead = common::refused_addr();
    let r = Rginx::start(&conf("", "%%BACKEND%%"), &[dead]);
    let base = r.fd_baseline();
    let mut c = Conn::new(r.port);
    for _ in 0..2 {
        let resp = get(&mut c, "/query?s_sh000001");
        assert_eq!(resp.status, 502);
        assert_eq!(resp.body_str(), common::error_page("502 Bad Gateway"));
    }
    drop(c);
    // One line per request, the proxy's: it says what happened and where.
    assert_log(
        &r,
        &[
            "[error]",
            "connect() failed (111: Connection refused) while connecting to upstream",
            "subrequest: \"/list=s_sh000001\"",
            &format!("upstream: \"http://127.0.0.1:{}/list=s_sh000001\"", dead.port()),
        ],
    );
    assert_log(&r, &["[debug]", "stock_quote post_subrequest: rc Status(502), status 0, 0 body bytes, not parsed"]);
    assert_eq!(error_lines(&r).len(), 2, "{}", r.error_log());
    r.assert_fds_back(base);
    r.assert_no_alerts();
}

/// The service takes the request and says nothing: `proxy_read_timeout 500ms` in `/list`
/// gives 504.
#[test]
fn slow_quote_service_is_504() {
    if skip() {
        return;
    }
    let b = Backend::scripted(|_| vec![Action::ReadRequest, Action::Sleep(Duration::from_secs(3))]);
    let r = Rginx::start(&conf("", "%%BACKEND%%"), &[b.addr]);
    let base = r.fd_baseline();
    let mut c = Conn::new(r.port);
    let resp = get(&mut c, "/query?s_sh000001");
    assert_eq!(resp.status, 504);
    assert_eq!(resp.body_str(), common::error_page("504 Gateway Time-out"));
    drop(c);
    assert_log(&r, &["[error]", "upstream timed out", "subrequest: \"/list=s_sh000001\""]);
    assert_log(&r, &["[debug]", "stock_quote post_subrequest: rc Status(504)"]);
    assert!(r.wait_log("access.log", "\"GET /query?s_sh000001 HTTP/1.1\" 504 ", common::TIMEOUT));
    assert_eq!(error_lines(&r).len(), 1, "{}", r.error_log());
    r.assert_fds_back(base);
    r.assert_no_alerts();
}

/// A quote larger than `proxy_buffer_size` cannot be kept in memory: 502.
#[test]
fn quote_too_big_for_the_buffer_is_502() {
    if skip() {
        return;
    }
    let mut big = b"var hq_str_s_sh000001=\"A,1,2,3,4,".to_vec();
    big.extend(std::iter::repeat_n(b'9', 3000));
    big.extend_from_slice(b"\";");
    let b = service(vec![quote_answer("200 OK", &big)]);
    let text = conf("", "%%BACKEND%%").replace("proxy_read_timeout 500ms;", "proxy_buffer_size 1k;");
    let r = Rginx::start(&text, &[b.addr]);
    let base = r.fd_baseline();
    let mut c = Conn::new(r.port);
    let resp = get(&mut c, "/query?s_sh000001");
    assert_eq!(resp.status, 502);
    drop(c);
    assert_log(&r, &["[error]", "upstream buffer is too small to read response"]);
    assert_eq!(error_lines(&r).len(), 1, "{}", r.error_log());
    r.assert_fds_back(base);
    r.assert_no_alerts();
}

/// The client goes away while the quote is pending: the child's upstream connection, the
/// client's, and both requests are freed, without waiting for the service.
#[test]
fn client_leaving_while_the_quote_is_pending_frees_everything() {
    if skip() {
        return;
    }
    let b = Backend::scripted(|_| vec![Action::ReadRequest, Action::Sleep(Duration::from_secs(8))]);
    let r = Rginx::start(&conf("", "%%BACKEND%%").replace("500ms", "60s"), &[b.addr]);
    let base = r.fd_baseline();
    let mut c = Conn::new(r.port);
    c.send(b"GET /query?s_sh000001 HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let sent = || b.requests().first().is_some_and(|q| q.ends_with(b"\r\n\r\n"));
    let end = Instant::now() + common::TIMEOUT;
    while !sent() {
        assert!(Instant::now() < end, "the subrequest never reached the quote service");
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(c);
    let line = "epoll_wait() reported that client prematurely closed connection, so upstream connection is closed \
                too while sending request to upstream";
    assert_log(&r, &["[info]", line]);
    assert_log(&r, &["[debug]", "stock_quote post_subrequest: rc Status(499), client gone"]);
    assert!(r.wait_log("access.log", "\"GET /query?s_sh000001 HTTP/1.1\" 499 ", common::TIMEOUT), "{}", r.access_log());
    r.assert_fds_back(base);
    assert!(error_lines(&r).is_empty(), "{}", r.error_log());
    r.assert_no_alerts();
}

#[test]
fn config_errors() {
    if skip() {
        return;
    }
    let bad = |text: String| match Rginx::try_start(&text, &[]) {
        Ok(_) => panic!("started with:\n{text}"),
        Err((out, code)) => (code, out),
    };
    let (code, out) = bad(conf("/a /b", "127.0.0.1:1"));
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("[emerg]") && out.contains("invalid number of arguments in \"stock_quote\" directive"),
        "{out}"
    );
    let (_, out) = bad(conf("list=", "127.0.0.1:1"));
    assert!(out.contains("[emerg]") && out.contains("invalid prefix \"list=\""), "{out}");
    let (_, out) = bad(conf("", "127.0.0.1:1").replace("location /query { stock_quote ; }", "stock_quote;"));
    assert!(out.contains("[emerg]") && out.contains("\"stock_quote\" directive is not allowed here"), "{out}");
    let (_, out) = bad(conf("", "127.0.0.1:1").replace("stock_quote ;", "stock_quote; stock_quote;"));
    assert!(out.contains("[emerg]") && out.contains("\"stock_quote\" directive is duplicate"), "{out}");
}

/// A service that answers HTTP/1.1 chunked (to rginx's HTTP/1.0 request) with the quote cut
/// across chunks: the parent gets the body without the framing.
#[test]
fn chunked_quote_is_unframed() {
    if skip() {
        return;
    }
    let answer = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                  10\r\nvar hq_str_s=\"AB\r\n14\r\nC,1.25,0,0,9999,1\";\n\r\n0\r\n\r\n";
    let b = service(vec![answer.as_bytes().to_vec()]);
    let r = Rginx::start(&conf("", "%%BACKEND%%"), &[b.addr]);
    let mut c = Conn::new(r.port);
    let resp = get(&mut c, "/query?s");
    assert_eq!((resp.status, resp.body_str().as_str()), (200, "stock[ABC],Today current price: 1.25, volumn: 9999"));
}

/// The child needs no upstream: a `return` location of the same server answers it, in memory
/// all the same. A HEAD gets the head alone, with the length the body would have. A child
/// location that answers with an error status of its own gives 502 and the module's line.
#[test]
fn quote_from_a_return_in_the_same_server_and_head() {
    if skip() {
        return;
    }
    let text = "
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    server {
        listen 127.0.0.1:%%PORT%%;
        location /query { stock_quote /direct=; }
        location /direct { return 200 'var hq_str_x=\"D,1.5,0,0,77,88\";'; }
        location /refused { stock_quote /forbidden=; }
        location /forbidden { return 403; }
    }
}
";
    let r = Rginx::start(text, &[]);
    let base = r.fd_baseline();
    let mut c = Conn::new(r.port);
    let want = "stock[D],Today current price: 1.5, volumn: 77";
    let resp = get(&mut c, "/query?x");
    assert_eq!((resp.status, resp.body_str().as_str()), (200, want));
    c.send(b"HEAD /query?x HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let resp = c.read_response(true);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("Content-Length"), Some(want.len().to_string().as_str()));
    assert!(resp.body.is_empty());
    let resp = get(&mut c, "/query?x");
    assert_eq!((resp.status, resp.body_str().as_str()), (200, want));
    // A child that ends with an error status of its own: 502, and the module says why.
    let resp = get(&mut c, "/refused?x");
    assert_eq!(resp.status, 502);
    assert_eq!(resp.body_str(), common::error_page("502 Bad Gateway"));
    drop(c);
    assert_log(&r, &["[error]", "stock_quote: quote subrequest failed with 403", "subrequest: \"/forbidden=x\""]);
    assert_eq!(error_lines(&r).len(), 1, "{}", r.error_log());
    r.assert_fds_back(base);
    r.assert_no_alerts();
}

/// The rest of a request body, and a pipelined request behind it, arrive while the quote
/// subrequest is still running: the body is discarded once the answer went out and the
/// pipelined request is served on the same connection (nginx 1.22: both answers; before the
/// fix rginx reset the connection after `lingering_timeout`, the second request lost).
#[test]
fn body_tail_and_pipelined_request_while_the_quote_runs() {
    if skip() {
        return;
    }
    let good = quote_answer("200 OK", b"var hq_str_s_sh000001=\"A,1.5,0,0,7,9\";");
    let b = Backend::scripted(move |_| {
        vec![Action::ReadRequest, Action::Sleep(Duration::from_millis(300)), Action::Send(good.clone())]
    });
    let r = Rginx::start(&conf("", "%%BACKEND%%"), &[b.addr]);
    let base = r.fd_baseline();
    let mut c = Conn::new(r.port);
    c.send(b"POST /query?s_sh000001 HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\n\r\n12345");
    assert!(b.wait_connections(1, common::TIMEOUT), "the quote subrequest never reached the service");
    c.send(b"67890GET /query?s_sh000001 HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let want = "stock[A],Today current price: 1.5, volumn: 7";
    for n in 1..=2 {
        let resp = c.read_response(false);
        assert_eq!((resp.status, resp.body_str().as_str()), (200, want), "answer {n}");
    }
    drop(c);
    r.assert_fds_back(base);
    r.assert_no_alerts();
}
