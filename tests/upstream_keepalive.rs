//! nginx-tests: upstream_keepalive.t — `keepalive N` in an `upstream` block: idle upstream
//! connections cached per worker and reused, only after a response that ended cleanly.
//!
//! Expectations checked with `RGINX_BIN=/usr/sbin/nginx cargo test --test upstream_keepalive`.

mod common;

use std::thread;
use std::time::{Duration, Instant};

use common::{send, Action, Backend, Conn, Rginx};

/// `upstream u` with `KEEPALIVE` (the directives inside the block) in front of one backend;
/// `/` speaks HTTP/1.1 without `Connection: close`, as keepalive needs.
fn conf(keepalive: &str) -> String {
    "
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    proxy_temp_path %%PREFIX%%/proxy_temp;
    upstream u { server %%BACKEND%%; KEEPALIVE }
    server {
        listen 127.0.0.1:%%PORT%%;
        server_name localhost;
        location / {
            proxy_pass http://u;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
        }
        location /off/ {
            proxy_pass http://u/;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_buffering off;
        }
        location /http10/ { proxy_pass http://u/; }
        location /warm { return 200; }
    }
}
"
    .replace("KEEPALIVE", keepalive)
}

fn get(port: u16, path: &str) -> common::Response {
    let mut c = Conn::new(port);
    let head = path.starts_with("HEAD ");
    let (method, path) = if head { ("HEAD", &path[5..]) } else { ("GET", path) };
    c.send(format!("{method} {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes());
    c.read_response(head)
}

#[test]
fn connections_are_reused() {
    let b = Backend::fixed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    let r = Rginx::start(&conf("keepalive 4;"), &[b.addr]);
    for i in 0..5 {
        let resp = get(r.port, &format!("/r{i}"));
        assert_eq!((resp.status, resp.body_str().as_str()), (200, "ok"));
    }
    assert_eq!(b.connections(), 1, "one upstream connection for every request");
    let reqs = String::from_utf8_lossy(&b.requests()[0]).into_owned();
    assert_eq!(reqs.matches("GET /r").count(), 5, "{reqs}");
    assert!(!reqs.contains("Connection:"), "{reqs}");
    r.assert_no_alerts();
}

#[test]
fn chunked_and_buffered_modes_reuse_too() {
    let body: String = (0..50_000).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
    let mut chunked = String::from("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    for piece in body.as_bytes().chunks(7000) {
        chunked += &format!("{:x}\r\n{}\r\n", piece.len(), String::from_utf8_lossy(piece));
    }
    chunked += "0\r\n\r\n";
    let b = Backend::fixed(chunked.as_bytes());
    let r = Rginx::start(&conf("keepalive 4;"), &[b.addr]);
    for path in ["/a", "/off/b", "/c", "/off/d", "HEAD /e"] {
        let resp = get(r.port, path);
        assert_eq!(resp.status, 200, "{path}");
        if !path.starts_with("HEAD") {
            assert!(resp.body_str() == body, "{path}: body differs");
        }
    }
    // HEAD: the upstream answers HEAD with a head only; the connection stays usable.
    assert_eq!(b.connections(), 1);
}

#[test]
fn unclean_ends_are_not_reused() {
    // A body delimited by close, "Connection: close", an HTTP/1.0 answer: a new connection
    // each time, and no error.
    let answers = [
        "HTTP/1.1 200 OK\r\n\r\nuntil close",
        "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
        "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
    ];
    let b = Backend::scripted(move |i| vec![Action::ReadRequest, send(answers[i % 3]), Action::Close]);
    let r = Rginx::start(&conf("keepalive 4;"), &[b.addr]);
    for i in 0..6 {
        let resp = get(r.port, "/");
        assert_eq!(resp.status, 200, "request {i}");
    }
    assert_eq!(b.connections(), 6);
    assert!(!r.error_log().contains("[error]"), "{}", r.error_log());
}

#[test]
fn extra_bytes_after_the_body_forbid_reuse() {
    let b = Backend::scripted(|_| {
        vec![
            Action::ReadRequest,
            send("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA"),
            Action::Sleep(Duration::from_secs(2)),
        ]
    });
    let r = Rginx::start(&conf("keepalive 4;"), &[b.addr]);
    assert_eq!(get(r.port, "/").body_str(), "ok");
    assert_eq!(get(r.port, "/").body_str(), "ok");
    assert_eq!(b.connections(), 2);
}

#[test]
fn default_proxy_settings_close_each_connection() {
    // HTTP/1.0 + "Connection: close": the backend closes, nothing is cached, nothing fails.
    let b = Backend::fixed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    let r = Rginx::start(&conf("keepalive 4;"), &[b.addr]);
    for _ in 0..3 {
        assert_eq!(get(r.port, "/http10/").body_str(), "ok");
    }
    assert_eq!(b.connections(), 3);
    assert!(!r.error_log().contains("[error]"), "{}", r.error_log());
}

#[test]
fn connection_closed_by_the_upstream_while_idle() {
    // The backend closes its idle connection after the first answer: the cached connection
    // is dropped (its FIN makes it readable), the next request connects anew.
    let b = Backend::scripted(|_| {
        vec![Action::ReadRequest, send("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"), Action::Close]
    });
    let r = Rginx::start(&conf("keepalive 4;"), &[b.addr]);
    assert_eq!(get(r.port, "/").body_str(), "ok");
    thread::sleep(Duration::from_millis(300));
    assert_eq!(get(r.port, "/").body_str(), "ok");
    assert_eq!(b.connections(), 2);
    assert!(!r.error_log().contains("[error]"), "{}", r.error_log());
}

#[test]
fn stale_connection_is_retried() {
    // The backend takes the second request on the reused connection and closes without an
    // answer (the close raced with the request): the request goes again on a new connection,
    // even with a single server.
    let b = Backend::scripted(|i| {
        let ok = send("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        if i == 0 {
            vec![Action::ReadRequest, ok, Action::ReadRequest, Action::Close]
        } else {
            vec![Action::ReadRequest, ok, Action::Sleep(Duration::from_secs(2))]
        }
    });
    let r = Rginx::start(&conf("keepalive 4;"), &[b.addr]);
    assert_eq!(get(r.port, "/one").body_str(), "ok");
    let resp = get(r.port, "/two");
    assert_eq!((resp.status, resp.body_str().as_str()), (200, "ok"));
    assert_eq!(b.connections(), 2);
    let second = String::from_utf8_lossy(&b.requests()[1]).into_owned();
    assert!(second.starts_with("GET /two HTTP/1.1\r\n"), "{second}");
}

#[test]
fn keepalive_requests_limit() {
    let b = Backend::fixed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    let r = Rginx::start(&conf("keepalive 4; keepalive_requests 2;"), &[b.addr]);
    for _ in 0..5 {
        assert_eq!(get(r.port, "/").body_str(), "ok");
    }
    assert_eq!(b.connections(), 3);
}

#[test]
fn keepalive_timeout_closes_idle_connections() {
    let b = Backend::fixed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    let r = Rginx::start(&conf("keepalive 4; keepalive_timeout 1500ms;"), &[b.addr]);
    assert_eq!(get(r.port, "/warm").status, 200);
    thread::sleep(Duration::from_millis(200));
    let fds = r.fd_count();
    let start = Instant::now();
    assert_eq!(get(r.port, "/").body_str(), "ok");
    // The idle connection is cached (one more fd once the client's is closed), then closed
    // when the timeout expires.
    assert_eq!(r.wait_fd_count(fds + 1, Duration::from_millis(1000)), fds + 1);
    assert_eq!(r.wait_fd_count(fds, Duration::from_secs(5)), fds);
    assert!(start.elapsed() >= Duration::from_millis(1400), "{:?}", start.elapsed());
    assert_eq!(get(r.port, "/").body_str(), "ok");
    assert_eq!(b.connections(), 2);
}

#[test]
fn at_most_n_idle_connections_are_kept() {
    // Three requests at once need three connections; `keepalive 1` keeps one afterwards.
    let b = Backend::scripted(|_| {
        let ok = send("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        vec![Action::ReadRequest, Action::Sleep(Duration::from_millis(300)), ok, Action::Sleep(Duration::from_secs(5))]
    });
    let r = Rginx::start(&conf("keepalive 1;"), &[b.addr]);
    assert_eq!(get(r.port, "/warm").status, 200);
    thread::sleep(Duration::from_millis(200));
    let fds = r.fd_count();
    let port = r.port;
    let clients: Vec<_> = (0..3).map(|_| thread::spawn(move || get(port, "/").body_str())).collect();
    for c in clients {
        assert_eq!(c.join().unwrap(), "ok");
    }
    assert_eq!(b.connections(), 3);
    assert_eq!(r.wait_fd_count(fds + 1, Duration::from_secs(5)), fds + 1);
}

#[test]
fn graceful_stop_closes_idle_connections() {
    let b = Backend::fixed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    let mut r = Rginx::start(&conf("keepalive 4;"), &[b.addr]);
    assert_eq!(get(r.port, "/").body_str(), "ok");
    let start = Instant::now();
    r.signal("QUIT");
    assert!(r.wait_exit(Duration::from_secs(5)).is_some(), "still running: idle upstream connections kept it");
    assert!(start.elapsed() < Duration::from_secs(3));
}

/// A backend whose first connection holds its first response until `release` is sent; every
/// request otherwise gets `ok` at once. Counts connections; records what each received.
struct GatedBackend {
    addr: std::net::SocketAddr,
    received: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    release: std::sync::mpsc::Sender<()>,
    sent_first: std::sync::mpsc::Receiver<()>,
}

impl GatedBackend {
    fn start() -> GatedBackend {
        use std::io::{Read, Write};
        use std::sync::{mpsc, Arc, Mutex};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let (release, gate) = mpsc::channel::<()>();
        let (sent, sent_first) = mpsc::channel::<()>();
        let rec = received.clone();
        thread::spawn(move || {
            let mut gate = Some((gate, sent));
            for (idx, s) in l.incoming().enumerate() {
                let Ok(mut s) = s else { return };
                rec.lock().unwrap().push(String::new());
                let (rec, mut gate) = (rec.clone(), if idx == 0 { gate.take() } else { None });
                thread::spawn(move || {
                    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                    let mut buf = [0u8; 4096];
                    let mut pending = String::new();
                    while let Ok(n @ 1..) = s.read(&mut buf) {
                        pending += &String::from_utf8_lossy(&buf[..n]);
                        rec.lock().unwrap()[idx] += &String::from_utf8_lossy(&buf[..n]);
                        while let Some(end) = pending.find("\r\n\r\n") {
                            pending.drain(..end + 4);
                            if let Some((gate, sent)) = gate.take() {
                                let _ = gate.recv_timeout(Duration::from_secs(10));
                                let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
                                let _ = sent.send(());
                                continue;
                            }
                            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
                        }
                    }
                });
            }
        });
        GatedBackend { addr, received, release, sent_first }
    }

    fn connections(&self) -> usize {
        self.received.lock().unwrap().len()
    }

    fn received(&self, conn: usize) -> String {
        self.received.lock().unwrap().get(conn).cloned().unwrap_or_default()
    }
}

/// Waits until every thread of `pid` is stopped (state `T` in /proc/PID/task/*/stat).
fn wait_stopped(pid: u32) -> bool {
    let stopped = || {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return false };
        tasks.flatten().all(|t| {
            let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
            stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('T'))
        })
    };
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        if stopped() {
            return true;
        }
        thread::sleep(Duration::from_millis(5));
    }
    false
}

#[test]
fn a_connection_given_back_in_the_same_turn_goes_to_the_waiting_request() {
    // Request B arrives while A holds the only upstream connection, and A's response arrives
    // right after it, in the same loop turn (the server is stopped while both are sent, so
    // one epoll_wait reports both, B first). nginx opens a second connection for B; rginx
    // lets B wait to the end of the turn, and A hands its connection over.
    let b = GatedBackend::start();
    let r = Rginx::start(&conf("keepalive 1;"), &[b.addr]);
    // Opens what opens on first use; read to EOF, so the server has closed it.
    assert!(!common::http(r.port, b"GET /warm HTTP/1.0\r\n\r\n").is_empty());
    let fds = r.fd_count();
    let mut a = Conn::new(r.port);
    let mut c2 = Conn::new(r.port);
    a.send(b"GET /a HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let end = Instant::now() + Duration::from_secs(10);
    while !b.received(0).contains("GET /a ") && Instant::now() < end {
        thread::sleep(Duration::from_millis(5));
    }
    assert!(b.received(0).contains("GET /a "), "the backend never got A");
    // Client 2 accepted, upstream connection open, nothing else to do: the server is idle.
    assert_eq!(r.wait_fd_count(fds + 3, Duration::from_secs(10)), fds + 3);
    thread::sleep(Duration::from_millis(100));
    r.signal("STOP");
    assert!(wait_stopped(r.pid), "the server did not stop");
    c2.send(b"GET /b HTTP/1.1\r\nHost: localhost\r\n\r\n");
    b.release.send(()).unwrap();
    b.sent_first.recv_timeout(Duration::from_secs(10)).expect("A's response written");
    r.signal("CONT");
    let (ra, rb) = (a.read_response(false), c2.read_response(false));
    assert_eq!((ra.status, ra.body_str().as_str()), (200, "ok"));
    assert_eq!((rb.status, rb.body_str().as_str()), (200, "ok"));
    if common::is_nginx() {
        assert_eq!(b.connections(), 2, "nginx connects anew for B");
    } else {
        assert_eq!(b.connections(), 1, "B got A's connection");
        let first = b.received(0);
        assert!(first.contains("GET /a ") && first.contains("GET /b "), "{first}");
    }
    drop((a, c2));
    // Only the one cached upstream connection is left beside the baseline.
    assert_eq!(r.wait_fd_count(fds + 1, Duration::from_secs(10)), fds + 1);
    r.assert_no_alerts();
}

#[test]
fn only_a_request_that_can_keep_its_connection_waits_for_one() {
    // A request that asks the peer to close (`/http10/`: HTTP/1.0, `Connection: close`) can
    // never leave a connection for the cache, so it connects at once; one that can (`/`)
    // waits to the end of the turn for one given back. rginx's own debug lines (nginx has
    // no such wait).
    if common::is_nginx() {
        return;
    }
    let b = Backend::fixed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    let globals = "daemon off; master_process off; error_log %%PREFIX%%/logs/debug.log debug;";
    let text = conf("keepalive 4;").replace("%%TEST_GLOBALS%%", globals);
    let r = Rginx::start(&text, &[b.addr]);
    assert_eq!(get(r.port, "/http10/x").body_str(), "ok");
    assert!(r.wait_log("debug.log", "(new connection)", Duration::from_secs(10)), "no connect line");
    let log = std::fs::read_to_string(r.prefix.join("logs/debug.log")).unwrap_or_default();
    assert!(!log.contains("waiting for a cached connection"), "{log}");
    assert_eq!(get(r.port, "/y").body_str(), "ok");
    assert!(r.wait_log("debug.log", "waiting for a cached connection", Duration::from_secs(10)), "no wait line");
    assert_eq!(b.connections(), 2, "the first connection was closed, the second is new");
    r.assert_no_alerts();
}
