//! No descriptor leaks: after a battery of good and bad requests, timeouts, resets and clients
//! that vanish at every stage, the server's open descriptors return to their baseline.
//! (nginx-tests has no single .t for this; it is the "no fd leak on any input".)

mod common;

use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::thread;
use std::time::Duration;

use common::{send, Action, Backend, Conn, Rginx};

const CONF: &str = "
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    client_header_timeout 1s;
    client_body_timeout 1s;
    keepalive_timeout 1s;
    lingering_timeout 1s;
    client_header_buffer_size 1k;
    large_client_header_buffers 2 1k;
    client_max_body_size 1k;
    proxy_read_timeout 1s;
    server {
        listen 127.0.0.1:%%PORT%%;
        location / { return 200 ok; }
        location /close { return 444; }
        location /missing { return 404; }
        location /proxy { proxy_pass http://%%BACKEND1%%; }
        location /refused { proxy_pass http://%%BACKEND2%%; }
        location /slow { proxy_pass http://%%BACKEND3%%; }
    }
}
";

/// A connection that is reset (RST) when dropped.
fn reset(s: TcpStream) {
    common::set_linger_zero(&s);
    drop(s);
}

fn raw(port: u16, bytes: &[u8]) {
    let _ = common::http(port, bytes);
}

#[test]
fn descriptors_return_to_baseline() {
    let backend = Backend::echo();
    let slow = Backend::scripted(|_| {
        vec![
            Action::ReadRequest,
            Action::Sleep(Duration::from_millis(300)),
            send("HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n"),
            Action::Send(vec![b'x'; 50_000]),
            Action::Sleep(Duration::from_millis(300)),
            Action::Send(vec![b'x'; 50_000]),
        ]
    });
    let r = Rginx::start(CONF, &[backend.addr, common::refused_addr(), slow.addr]);
    let p = r.port;
    // Warm up: whatever is opened lazily on first use (log files) is part of the baseline.
    assert!(common::http_get(p, "/").ends_with("ok"));
    let mut warm = Conn::new(p);
    warm.send(b"GET /proxy HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(warm.read_response(false).status, 200);
    drop(warm);
    thread::sleep(Duration::from_millis(300));
    let baseline = r.fd_count();
    assert!(baseline > 0);

    // Good requests: keepalive, pipelined, HEAD, bodies, proxied.
    let mut c = Conn::new(p);
    for _ in 0..5 {
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nHEAD /missing HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(c.read_response(false).status, 200);
        assert_eq!(c.read_response(true).status, 404);
    }
    c.send(b"POST /proxy HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
    assert_eq!(c.read_response(false).status, 200);
    c.send(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
    assert_eq!(c.read_response(false).status, 200);
    drop(c);

    // Bad requests of every kind.
    let long_uri = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "u".repeat(2000));
    let long_header = format!("GET / HTTP/1.1\r\nHost: x\r\nX: {}\r\n\r\n", "h".repeat(2000));
    let bad: Vec<Vec<u8>> = vec![
        b"BAD\r\n\r\n".to_vec(),
        b"GET / HTTP/1.1\r\n\r\n".to_vec(),
        b"GET / HTTP/2.0\r\nHost: x\r\n\r\n".to_vec(),
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n".to_vec(),
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n".to_vec(),
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_vec(),
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n".to_vec(),
        b"POST /proxy HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n".to_vec(),
        b"GET /close HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        b"GET /refused HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
        long_uri.into_bytes(),
        long_header.into_bytes(),
    ];
    for b in &bad {
        raw(p, b);
    }

    // Clients that vanish: at connect, mid-head, mid-body, mid-response, with FIN or RST.
    for _ in 0..5 {
        drop(TcpStream::connect(("127.0.0.1", p)).unwrap());
        reset(TcpStream::connect(("127.0.0.1", p)).unwrap());
        let mut s = TcpStream::connect(("127.0.0.1", p)).unwrap();
        let _ = s.write_all(b"GET / HTTP/1.1\r\nHo");
        reset(s);
        let mut s = TcpStream::connect(("127.0.0.1", p)).unwrap();
        let _ = s.write_all(b"POST /proxy HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nab");
        let _ = s.shutdown(Shutdown::Write);
        drop(s);
        let mut s = TcpStream::connect(("127.0.0.1", p)).unwrap();
        let _ = s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nab");
        thread::sleep(Duration::from_millis(20));
        reset(s);
        let mut s = TcpStream::connect(("127.0.0.1", p)).unwrap();
        let _ = s.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
        thread::sleep(Duration::from_millis(50));
        reset(s);
    }
    // A client that reads part of a slow proxied response, then goes.
    let mut c = Conn::new(p);
    c.send(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
    let first = c.read_some(Duration::from_secs(5));
    assert!(!first.is_empty());
    reset(c.stream);

    // Timeouts: header, body, keepalive — left to expire.
    let mut idle = Conn::new(p);
    idle.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    idle.read_response(false);
    let mut half = Conn::new(p);
    half.send(b"GET / HTTP/1.1\r\n");
    let mut body = Conn::new(p);
    body.send(b"POST /proxy HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n1");
    assert!(idle.is_closed(Duration::from_secs(5)));
    assert!(half.is_closed(Duration::from_secs(5)));
    assert!(body.is_closed(Duration::from_secs(5)));

    // Everything is back where it started (lingering closes and timeouts take up to ~1 s).
    let now = r.wait_fd_count(baseline, Duration::from_secs(8));
    assert_eq!(now, baseline, "descriptors leaked: {baseline} at start, {now} now");
    // And the server still works.
    assert!(common::http_get(p, "/").ends_with("ok"));
    r.assert_no_alerts();
}
