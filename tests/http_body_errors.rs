//! nginx-tests: body.t, body_chunked.t, proxy_request_buffering*.t (their error cases) — every
//! family of bad request body, sent as a batch to a `return` location (the body is discarded)
//! and to proxied ones (the body is read): nginx's status, the close where nginx closes (or the
//! keep-alive where it keeps), and the server's descriptors back to their baseline; QUIT then
//! ends the process at once. Expectations checked with
//! `RGINX_BIN=/usr/sbin/nginx cargo test --test http_body_errors`.

mod common;

use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::thread;
use std::time::Duration;

use common::{Action, Backend, Conn, Rginx};

const CONF: &str = "
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    client_max_body_size 10;
    client_body_buffer_size 1k;
    client_body_timeout 1s;
    lingering_timeout 1s;
    proxy_send_timeout 1s;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /return { return 200 ok; }
        location /proxy { proxy_pass http://%%BACKEND1%%; }
        location /off { proxy_pass http://%%BACKEND1%%; proxy_request_buffering off; }
        location /slow { proxy_pass http://%%BACKEND2%%; client_max_body_size 0; }
        location /slowoff {
            proxy_pass http://%%BACKEND2%%;
            proxy_request_buffering off;
            client_max_body_size 0;
        }
    }
}
";

/// How many connections each batch opens at once.
const BATCH: usize = 20;
/// How long a close may take: lingering and body timeouts are 1 s here.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// What nginx does with one request of a family.
#[derive(Clone, Copy, Debug)]
enum Answer {
    /// This status, then the connection closes.
    Close(u16),
    /// This status, then the connection serves the next request.
    KeepAlive(u16),
    /// This status, saying keep-alive; but the rest of the body never comes, so the connection
    /// closes once the wait for it (`lingering_timeout`) runs out.
    KeepAliveThenClose(u16),
    /// No response at all; the connection closes.
    Silent,
}

/// A server with an echo backend and a backend that reads the request head, then sits.
fn start() -> (Rginx, Backend, Backend) {
    let echo = Backend::echo();
    let slow = Backend::scripted(|_| {
        vec![Action::Expect(b"POST /".to_vec()), Action::Sleep(Duration::from_secs(8)), Action::Close]
    });
    let r = Rginx::start(CONF, &[echo.addr, slow.addr]);
    (r, echo, slow)
}

/// Warms up what opens lazily (log files), then counts descriptors.
fn baseline(r: &Rginx) -> usize {
    let mut c = Conn::new(r.port);
    c.send(b"GET /proxy HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(c.read_response(false).status, 200);
    assert!(c.is_closed(CLOSE_WAIT));
    drop(c);
    thread::sleep(Duration::from_millis(300));
    let n = r.fd_count();
    assert!(n > 0);
    n
}

/// Sends `raw` on `BATCH` connections at once, then checks each gets `answer`.
fn batch(r: &Rginx, raw: &[u8], answer: Answer) {
    let mut conns: Vec<Conn> = (0..BATCH).map(|_| Conn::new(r.port)).collect();
    for c in &mut conns {
        let _ = c.stream.write_all(raw);
    }
    for c in &mut conns {
        match answer {
            Answer::Close(status) | Answer::KeepAlive(status) | Answer::KeepAliveThenClose(status) => {
                let resp = c.read_response(false);
                assert_eq!(resp.status, status, "{}", String::from_utf8_lossy(raw));
                let keep = !matches!(answer, Answer::Close(_));
                let want = if keep { "keep-alive" } else { "close" };
                assert_eq!(resp.header("Connection"), Some(want), "{}", resp.head);
            }
            Answer::Silent => {}
        }
    }
    for c in &mut conns {
        match answer {
            Answer::Close(_) | Answer::KeepAliveThenClose(_) | Answer::Silent => {
                assert!(c.is_closed(CLOSE_WAIT), "left open: {}", String::from_utf8_lossy(raw))
            }
            Answer::KeepAlive(_) => {
                c.send(b"GET /return HTTP/1.1\r\nHost: x\r\n\r\n");
                assert_eq!(c.read_response(false).body_str(), "ok");
            }
        }
    }
}

/// Every descriptor of the batch is gone, and QUIT ends the server promptly.
fn released(mut r: Rginx, base: usize) {
    let now = r.wait_fd_count(base, Duration::from_secs(10));
    assert_eq!(now, base, "descriptors leaked: {base} at start, {now} now");
    r.assert_no_alerts();
    r.signal("QUIT");
    assert!(r.wait_exit(Duration::from_secs(5)).is_some(), "QUIT did not end the server");
}

fn request(loc: &str, head: &str, body: &str) -> Vec<u8> {
    format!("POST {loc} HTTP/1.1\r\nHost: x\r\n{head}\r\n\r\n{body}").into_bytes()
}

#[test]
fn bad_chunk_size() {
    let (r, echo, _slow) = start();
    let base = baseline(&r);
    for loc in ["/return", "/proxy", "/off"] {
        batch(&r, &request(loc, "Transfer-Encoding: chunked", "zz\r\n"), Answer::Close(400));
    }
    assert!(r.wait_log("error.log", "client sent invalid chunked body", common::TIMEOUT));
    assert_eq!(echo.connections(), 1, "a bad body reached the upstream");
    released(r, base);
}

#[test]
fn chunked_body_over_max_size() {
    let (r, echo, _slow) = start();
    let base = baseline(&r);
    let body = "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    // A discarded body is not measured; a read one is, chunk by chunk.
    batch(&r, &request("/return", "Transfer-Encoding: chunked", body), Answer::KeepAlive(200));
    for loc in ["/proxy", "/off"] {
        batch(&r, &request(loc, "Transfer-Encoding: chunked", body), Answer::Close(413));
        // Refused as soon as the chunk size says too much, before its data.
        batch(&r, &request(loc, "Transfer-Encoding: chunked", "20\r\nabc"), Answer::Close(413));
    }
    assert!(r.wait_log("error.log", "client intended to send too large chunked body: 5+6 bytes", common::TIMEOUT));
    assert_eq!(echo.connections(), 1, "a refused body reached the upstream");
    released(r, base);
}

#[test]
fn content_length_over_max_size() {
    let (r, echo, _slow) = start();
    let base = baseline(&r);
    for loc in ["/return", "/proxy", "/off"] {
        batch(&r, &request(loc, "Content-Length: 11", "hello"), Answer::Close(413));
    }
    assert!(r.wait_log("error.log", "client intended to send too large body: 11 bytes", common::TIMEOUT));
    assert_eq!(echo.connections(), 1, "a refused body reached the upstream");
    released(r, base);
}

/// Clients that send part of a body, then go (FIN or RST), `BATCH` of each at once.
fn vanish(r: &Rginx, raw: &[u8], reset: bool) {
    let conns: Vec<TcpStream> = (0..BATCH)
        .map(|_| {
            let mut s = TcpStream::connect(r.addr()).unwrap();
            s.write_all(raw).unwrap();
            s
        })
        .collect();
    thread::sleep(Duration::from_millis(100));
    for s in conns {
        if reset {
            common::set_linger_zero(&s);
        } else {
            let _ = s.shutdown(Shutdown::Write);
        }
    }
}

#[test]
fn client_vanishes_mid_body() {
    let (r, _echo, _slow) = start();
    let base = baseline(&r);
    for loc in ["/return", "/proxy", "/off"] {
        // nginx, reset while it discards a body after the answer, keeps the connection until
        // `keepalive_timeout` (it goes to keepalive with the error noted); rginx closes it.
        let resets: &[bool] = if common::is_nginx() && loc == "/return" { &[false] } else { &[false, true] };
        for &reset in resets {
            vanish(&r, &request(loc, "Content-Length: 10", "12345"), reset);
            vanish(&r, &request(loc, "Transfer-Encoding: chunked", "5\r\n12"), reset);
        }
    }
    released(r, base);
}

#[test]
fn client_vanishes_mid_body_streamed_to_slow_upstream() {
    let (r, _echo, slow) = start();
    let base = baseline(&r);
    for reset in [false, true] {
        vanish(&r, &request("/slowoff", "Content-Length: 100000", "12345"), reset);
    }
    assert!(slow.wait_connections(2 * BATCH, common::TIMEOUT));
    released(r, base);
}

#[test]
fn body_timeout() {
    let (r, echo, _slow) = start();
    let base = baseline(&r);
    // `return` answers at once and drops the body; the rest never comes: closed after
    // `lingering_timeout`.
    batch(&r, &request("/return", "Content-Length: 10", "123"), Answer::KeepAliveThenClose(200));
    // A body read for an upstream: no answer, closed after `client_body_timeout`.
    for loc in ["/proxy", "/off"] {
        batch(&r, &request(loc, "Content-Length: 10", "123"), Answer::Silent);
        batch(&r, &request(loc, "Transfer-Encoding: chunked", "5\r\n12"), Answer::Silent);
    }
    // Buffered bodies never reach the upstream; streamed ones started to (a chunked body is
    // buffered for an HTTP/1.0 upstream).
    assert_eq!(echo.connections(), 1 + BATCH);
    released(r, base);
}

#[test]
fn client_vanishes_while_upstream_is_slow() {
    let (r, _echo, slow) = start();
    let base = baseline(&r);
    // The whole body went to an upstream that does not answer; the client goes: 499.
    vanish(&r, &request("/slow", "Content-Length: 5", "hello"), false);
    assert!(slow.wait_connections(BATCH, common::TIMEOUT));
    // A large streamed body the upstream does not read: the send times out, then all goes.
    let head = request("/slowoff", "Content-Length: 50000000", "");
    let mut conns = Vec::new();
    for _ in 0..4 {
        let mut s = TcpStream::connect(r.addr()).unwrap();
        s.write_all(&head).unwrap();
        s.set_write_timeout(Some(Duration::from_millis(500))).unwrap();
        let chunk = vec![b'b'; 64 * 1024];
        // Until the server and the upstream stop taking it, or 16 MiB (loopback buffers can
        // take that much).
        for _ in 0..256 {
            if s.write_all(&chunk).is_err() {
                break;
            }
        }
        conns.push(s);
    }
    drop(conns);
    assert!(r.wait_log("access.log", "\" 499 ", common::TIMEOUT));
    released(r, base);
}
