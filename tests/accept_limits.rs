//! `accept()` out of descriptors: the listener pauses and comes back, the connections that
//! queued meanwhile are served once descriptors free up. (nginx-tests has no .t for this; it
//! is `ngx_event_accept()`'s EMFILE path: `ngx_disable_accept_events()` and a retry timer of
//! `accept_mutex_delay`.)

mod common;

use common::limits::{set_limit, Limit};
use common::{Conn, Rginx, TIMEOUT};

const CONF: &str = "
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    keepalive_timeout 60s;
    server {
        listen 127.0.0.1:%%PORT%%;
        location / { return 200 ok; }
    }
}
";

/// One request on a kept-alive connection; the body must be "ok".
fn ask(c: &mut Conn) {
    c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.read_response(false).body_str(), "ok");
}

#[test]
fn emfile_pauses_accepting_and_queued_connections_are_served_later() {
    let r = Rginx::start(CONF, &[]);
    // The baseline after one connection came and went (logs opened, buffers warm); the
    // server closes it before the client sees the end, so it is not counted.
    let mut c = Conn::new(r.port);
    c.send(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(String::from_utf8_lossy(&c.read_to_close()).ends_with("\r\n\r\nok"));
    let baseline = r.fd_count();
    const ROOM: usize = 4;
    set_limit(r.pid, Limit::Nofile, (baseline + ROOM) as u64);

    // Fill every descriptor the server has left with idle keepalive connections.
    let mut held: Vec<Conn> = (0..ROOM).map(|_| Conn::new(r.port)).collect();
    for c in &mut held {
        ask(c);
    }
    assert_eq!(r.fd_count(), baseline + ROOM);

    // These complete the TCP handshake in the kernel's backlog, but accept() fails: EMFILE.
    let mut queued: Vec<Conn> = (0..3).map(|_| Conn::new(r.port)).collect();
    for c in &mut queued {
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    }
    assert!(r.wait_log("error.log", "Too many open files", TIMEOUT), "{}", r.error_log());
    let log = r.error_log();
    let line = log.lines().find(|l| l.contains("Too many open files")).unwrap();
    assert!(line.contains("[crit]"), "{line}");
    assert!(line.contains("accept4() failed (24: Too many open files)"), "{line}");

    // Descriptors free up: the queued connections are accepted (on the retry timer: no new
    // connection arrives to raise an edge) and served.
    held.truncate(1);
    for c in &mut queued {
        assert_eq!(c.read_response(false).body_str(), "ok");
    }
    // The listener stays alive: a new connection is served too, and so is the held one.
    held.truncate(0);
    ask(&mut Conn::new(r.port));
    drop(queued);
    assert_eq!(r.wait_fd_count(baseline, TIMEOUT), baseline);
    ask(&mut Conn::new(r.port));
}
