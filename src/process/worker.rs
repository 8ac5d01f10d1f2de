//! A worker: one thread, one `Cycle`, the event loop until quit or terminate.
//!
//! nginx: src/os/unix/ngx_process_cycle.c (`ngx_worker_process_cycle`,
//! `ngx_worker_process_init`), src/core/ngx_connection.c (`ngx_close_idle_connections`).
//!
//! Differs from nginx:
//! - a worker is a thread, not a process: it has its own `mio::Poll`, slab, timer wheel and
//!   `Cycle`, and its own copy of the configuration, built on its thread (`own_conf`); it
//!   shares with the others only its `stub_status` slot (written by it alone, read by the page).
//!   The master reaches it through `Signals` flags and a `mio::Waker` ([`WAKE_TOKEN`]), where
//!   nginx sends a signal or a channel message.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::conf::{Conf, LoadOpts};
use crate::core::log as rlog;
use crate::event::reactor::StatusBoard;
use crate::event::{self, accept};
use crate::http::cycle::{Cycle, Owner};

/// Commands the master thread sends a worker (nginx's `ngx_quit`, `ngx_terminate`,
/// `ngx_reopen` flags, set from signal handlers there).
#[derive(Default, Debug)]
pub struct Signals {
    /// Fast stop (TERM/INT). nginx: `ngx_terminate`.
    pub terminate: AtomicBool,
    /// Graceful stop (QUIT, or old workers after a reload). nginx: `ngx_quit`.
    pub quit: AtomicBool,
    /// Reopen log files (USR1). nginx: `ngx_reopen`.
    pub reopen: AtomicBool,
}

impl Signals {
    /// Reads and clears a flag.
    pub fn take(flag: &AtomicBool) -> bool {
        // Read first: the worker asks every loop turn, and a plain load leaves the line
        // shared with the master unwritten until the master has set the flag.
        flag.load(Ordering::Acquire) && flag.swap(false, Ordering::AcqRel)
    }
}

/// The token of a worker's waker in its poll.
pub const WAKE_TOKEN: usize = crate::event::epoll::WAKER.0;

/// One worker's life. nginx: `ngx_worker_process_cycle()`.
pub(super) fn worker_process_cycle(
    shared: Arc<Conf>,
    opts: &LoadOpts,
    poll: mio::Poll,
    socks: Vec<(usize, std::net::TcpListener)>,
    signals: Arc<Signals>,
    board: Arc<StatusBoard>,
    n: usize,
) {
    rlog::set_worker(n);
    let mut cy = Cycle::new(own_conf(shared, opts), poll, n);
    let slot = board.join();
    cy.ev.board = Some((board, slot));
    worker_process_init(&mut cy, socks);
    process_events_until_exit(&mut cy, &signals);
    close_all(&mut cy);
    // Its connections are gone; what it accepted and served still counts.
    cy.ev.stats.active = 0;
    cy.ev.publish_stats();
}

/// This worker's own configuration, built on its own thread from the master's directives: the
/// reference counts of its `Arc`s (cloned and dropped by every request) then sit in memory
/// that no other worker writes, and come from this thread's allocator arena, so not even a
/// cache line is shared with another worker's tree. The master's copy is let go at once. The
/// build replays the master's name lookups (`os::resolve`), so it should not fail where the
/// master's succeeded; if it does all the same (a temp path made unusable in between, say),
/// the worker runs on the master's copy, as it did before per-worker copies.
fn own_conf(shared: Arc<Conf>, opts: &LoadOpts) -> Arc<Conf> {
    match shared.rebuild(opts) {
        Ok(c) => Arc::new(c),
        Err(e) => {
            crate::ngx_log!(Alert, "{e}: the worker shares the master's configuration");
            shared
        }
    }
}

/// Registers the listening sockets and runs each module's `init_worker`.
/// nginx: `ngx_worker_process_init()` (`ngx_event_process_init`, `init_process`).
fn worker_process_init(cy: &mut Cycle, socks: Vec<(usize, std::net::TcpListener)>) {
    for (i, opt) in crate::http::listens(&cy.conf).iter().enumerate() {
        cy.ev.listening.push(accept::Listening {
            addr: opt.addr,
            conn: None,
            handler: crate::http::request::init_connection,
            servers: i,
        });
    }
    let socks = socks.into_iter().map(|(i, s)| (i, mio::net::TcpListener::from_std(s))).collect();
    accept::event_process_init(&mut cy.ev, socks);
    if let Some(http) = cy.http_conf.clone() {
        for m in http.modules {
            m.init_worker(cy);
        }
    }
}

/// The worker's loop: the master's flags first, then one turn of events and timers.
/// nginx: the `for ( ;; )` of `ngx_worker_process_cycle()`.
fn process_events_until_exit(cy: &mut Cycle, signals: &Signals) {
    let mut shutdown_deadline: Option<u64> = None;
    loop {
        if Signals::take(&signals.terminate) {
            break;
        }
        if Signals::take(&signals.reopen) {
            for m in cy.http_conf.clone().iter().flat_map(|h| h.modules.iter()) {
                m.reopen_files(cy);
            }
        }
        if Signals::take(&signals.quit) && !cy.ev.exiting {
            cy.ev.exiting = true;
            accept::close_listening_sockets(&mut cy.ev);
            shutdown_deadline = cy.conf.main.worker_shutdown_timeout.map(|t| cy.ev.times.msec + t);
        }
        if cy.ev.exiting {
            close_idle_connections(cy);
            if cy.ev.conns.is_empty() {
                break;
            }
            if shutdown_deadline.is_some_and(|d| cy.ev.times.msec >= d) {
                log::info!("worker_shutdown_timeout expired, closing {} connection(s)", cy.ev.conns.len());
                break;
            }
        }
        cy.ev.publish_stats();
        if let Err(e) = event::process_events_and_timers(cy) {
            crate::ngx_log!(Alert, "epoll_wait() failed ({e})");
            break;
        }
        // Requests that waited this turn for an idle upstream connection connect now.
        crate::upstream::keepalive::connect_waiting(cy);
    }
}

/// Closes idle keepalive connections during a graceful stop. A connection accepted but not
/// yet read from is not idle: its first request is served (with `Connection: close`), else a
/// client connecting during a reload would see its connection dropped.
/// nginx: `ngx_close_idle_connections()` (only `c->idle` ones).
fn close_idle_connections(cy: &mut Cycle) {
    for id in cy.ev.conns.ids() {
        let Some(c) = cy.ev.conns.get(id) else { continue };
        let idle = c.idle && c.owner == Owner::Client(None) && c.buffer.is_none();
        // Idle upstream connections of the keepalive cache go too (nginx marks them idle).
        let cached = c.idle && c.owner == Owner::Cached;
        if idle {
            cy.ev.stats.active = cy.ev.stats.active.saturating_sub(1);
        }
        if idle || cached {
            event::connect::close_connection(&mut cy.ev, id);
        }
    }
}

/// Ends what is still open when the loop stops: requests first, then their connections.
/// nginx: `ngx_worker_process_exit()`.
fn close_all(cy: &mut Cycle) {
    for rid in cy.requests.ids() {
        crate::http::request::terminate_request(cy, rid, crate::core::step::HandlerRc::Error);
    }
    for id in cy.ev.conns.ids() {
        event::connect::close_connection(&mut cy.ev, id);
    }
}

#[cfg(test)]
mod tests {
    //! A worker on its own thread, as `start_workers` starts it, with a request in flight: no
    //! reference count of the master's configuration moves. nginx's workers are processes and
    //! share nothing by construction; this is the check that rginx's threads do the same.

    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::mpsc;
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::http::{HttpConf, LocConf};
    use crate::modules::proxy::ProxyLocConf;

    /// The strong count of every `Arc` reachable from `conf`, in a fixed walk order.
    fn counts(conf: &Arc<Conf>) -> Vec<usize> {
        fn loc(l: &Arc<LocConf>, out: &mut Vec<usize>) {
            out.push(Arc::strong_count(l));
            if let Some(p) = l.confs.get::<ProxyLocConf>() {
                out.extend(p.upstream.iter().map(Arc::strong_count));
                out.extend(p.shared.iter().map(Arc::strong_count));
            }
            l.locations.iter().for_each(|n| loc(n, out));
        }
        let mut out = vec![Arc::strong_count(conf)];
        out.extend(conf.blocks.iter().map(Arc::strong_count));
        for s in conf.get::<HttpConf>().iter().flat_map(|h| h.servers.iter()) {
            out.push(Arc::strong_count(s));
            loc(&s.loc, &mut out);
        }
        out
    }

    /// Reads one response head (up to the blank line) and `len` body bytes.
    fn read_response(c: &mut TcpStream) -> String {
        let mut v = Vec::new();
        let mut b = [0u8; 1];
        while !v.ends_with(b"\r\n\r\n") && c.read(&mut b).unwrap_or(0) == 1 {
            v.push(b[0]);
        }
        let head = String::from_utf8_lossy(&v).into_owned();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        c.read_exact(&mut body).expect("body");
        head + &String::from_utf8_lossy(&body)
    }

    #[test]
    fn a_worker_writes_nothing_in_the_masters_configuration() {
        let backend = TcpListener::bind("127.0.0.1:0").expect("bind backend");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let (bport, port) = (backend.local_addr().unwrap().port(), listener.local_addr().unwrap().port());
        // The backend answers only when told: the proxied request stays in flight till then.
        let (go, wait) = mpsc::channel::<()>();
        let backend_thread = std::thread::spawn(move || {
            let (mut s, _) = backend.accept().expect("accept");
            let mut buf = [0u8; 4096];
            let mut got = Vec::new();
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.read(&mut buf).expect("read");
                assert!(n > 0, "upstream request cut short");
                got.extend_from_slice(&buf[..n]);
            }
            let _ = wait.recv_timeout(Duration::from_secs(10));
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nup").expect("write");
        });
        let text = format!(
            "events {{}}\nhttp {{ access_log off; server {{ listen 127.0.0.1:{port};\n\
             location / {{ return 200 ok; }}\n location /p {{ proxy_pass http://127.0.0.1:{bport}; }} }} }}\n"
        );
        let prefix = std::env::temp_dir().join(format!("rginx-worker-test-{}", std::process::id()));
        let opts =
            LoadOpts { prefix, conf_file: "t.conf".into(), globals: None, modules: crate::modules::CORE_MODULES };
        let master = Arc::new(crate::conf::load_str(&text, "t.conf", &opts).expect("conf"));
        let before = counts(&master);

        let poll = mio::Poll::new().expect("poll");
        let waker = Arc::new(mio::Waker::new(poll.registry(), mio::Token(WAKE_TOKEN)).expect("waker"));
        let signals = Arc::new(Signals::default());
        listener.set_nonblocking(true).expect("nonblocking");
        let (c, o, s) = (master.clone(), opts.clone(), signals.clone());
        let board = Arc::new(StatusBoard::default());
        let worker = std::thread::spawn(move || worker_process_cycle(c, &o, poll, vec![(0, listener)], s, board, 1));

        let mut client = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        client.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        for _ in 0..3 {
            client.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").expect("send");
            assert!(read_response(&mut client).ends_with("\r\n\r\nok"));
        }
        let mut proxied = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        proxied.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        proxied.write_all(b"GET /p HTTP/1.1\r\nHost: x\r\n\r\n").expect("send");
        // While the worker holds the proxied request (and the keepalive connection), the
        // master's configuration is exactly as it was: the worker holds none of it.
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(counts(&master), before, "a worker holds a reference into the master's configuration");
        go.send(()).expect("backend gone");
        assert!(read_response(&mut proxied).ends_with("\r\n\r\nup"));
        assert_eq!(counts(&master), before);

        signals.terminate.store(true, Ordering::Release);
        waker.wake().expect("wake");
        worker.join().expect("worker panicked");
        backend_thread.join().expect("backend panicked");
    }

    /// Two workers' copies share no allocation: nothing one worker's requests touch is in
    /// the other's tree.
    #[test]
    fn copies_share_nothing() {
        let text = "events {}\nhttp { server { listen 127.0.0.1:1; location / { proxy_pass http://127.0.0.1:2; } } }\n";
        let opts = LoadOpts {
            prefix: std::env::temp_dir(),
            conf_file: "t.conf".into(),
            globals: None,
            modules: crate::modules::CORE_MODULES,
        };
        let master = crate::conf::load_str(text, "t.conf", &opts).expect("conf");
        let (a, b) = (master.rebuild(&opts).expect("a"), master.rebuild(&opts).expect("b"));
        let servers = |c: &Conf| c.get::<HttpConf>().map(|h| h.servers.clone()).unwrap_or_default();
        let (sa, sb) = (servers(&a), servers(&b));
        assert_eq!(sa.len(), 1);
        assert!(!Arc::ptr_eq(&sa[0], &sb[0]));
        let (la, lb) = (&sa[0].loc.locations[0], &sb[0].loc.locations[0]);
        assert!(!Arc::ptr_eq(la, lb));
        let up = |l: &LocConf| l.confs.get::<ProxyLocConf>().and_then(|p| p.upstream.clone());
        let (ua, ub) = (up(la).expect("proxy a"), up(lb).expect("proxy b"));
        assert!(!Arc::ptr_eq(&ua, &ub));
    }
}
