//! The reactor driven alone, by a toy world that is not HTTP: accept, read readiness, a posted
//! event, a timer, close — over real sockets on 127.0.0.1.
//!
//! nginx: none (nginx's event loop cannot run without a cycle); this is the proof that `event/`
//! names nothing above it: the only world here is `Toy`, and this file uses `crate::event` and
//! `crate::core` alone.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::accept::{self, Listening};
use super::connect::close_connection;
use super::connection::ConnId;
use super::io::{recv, Recv};
use super::posted::{self, Queue};
use super::{add_timer, process_events_and_timers, timer_set, Ev, Reactor, World};

/// Who a toy connection belongs to (the toy's `c->data`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
enum Who {
    #[default]
    Nobody,
    /// The n-th accepted client.
    Client(u32),
}

/// The toy world: a reactor and what its handlers saw.
struct Toy {
    ev: Reactor<Toy>,
    /// One line per handler call, in order.
    log: Vec<String>,
    /// Connections handed to the listening handler.
    accepted: Vec<ConnId>,
    /// Bytes the read handler received.
    received: Vec<u8>,
}

impl World for Toy {
    type Data = Who;
    fn reactor(&mut self) -> &mut Reactor<Toy> {
        &mut self.ev
    }
}

/// The listening handler (nginx's `ls->handler`): takes the connection, installs handlers.
fn toy_init_connection(w: &mut Toy, id: ConnId) {
    let n = w.accepted.len() as u32 + 1;
    let Some(c) = w.ev.conn(id) else { return };
    c.owner = Who::Client(n);
    c.read.handler = toy_read;
    w.accepted.push(id);
    w.log.push(format!("accept {n}"));
}

/// The read handler: a timeout, or read until `Again`. Survives spurious wake-ups.
fn toy_read(w: &mut Toy, ev: Ev) {
    let Some(c) = w.ev.conn(ev.c) else { return };
    if std::mem::take(&mut c.read.timedout) {
        w.log.push("timedout".into());
        return;
    }
    let mut buf = [0u8; 16];
    loop {
        match recv(c, &mut buf) {
            Recv::Data(n) => w.received.extend_from_slice(&buf[..n]),
            Recv::Again => return,
            Recv::Eof => return w.log.push("eof".into()),
            Recv::Error(e) => return w.log.push(format!("error {e}")),
        }
    }
}

/// The write handler installed just before the event is posted. (Until then the write event
/// keeps `empty_handler`, which absorbs the writable edge every new connection reports.)
fn toy_posted(w: &mut Toy, _ev: Ev) {
    w.log.push("posted".into());
}

impl Toy {
    /// A toy world listening on an ephemeral 127.0.0.1 port.
    fn listen() -> (Toy, SocketAddr) {
        let std_l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        std_l.set_nonblocking(true).expect("nonblocking");
        let addr = std_l.local_addr().expect("local_addr");
        let poll = mio::Poll::new().expect("mio::Poll");
        let mut toy = Toy { ev: Reactor::new(poll, 16), log: Vec::new(), accepted: Vec::new(), received: Vec::new() };
        toy.ev.listening.push(Listening { addr, conn: None, handler: toy_init_connection, servers: 0 });
        accept::event_process_init(&mut toy.ev, vec![(0, mio::net::TcpListener::from_std(std_l))]);
        (toy, addr)
    }

    /// Runs loop turns until `done` holds; panics after ~5 s of turns (a bound, not a timing
    /// assertion: each turn sleeps at most until the next timer or readiness).
    fn turn_until(&mut self, what: &str, done: impl Fn(&Toy) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !done(self) {
            assert!(Instant::now() < deadline, "no {what} within 5 s; log: {:?}", self.log);
            process_events_and_timers(self).expect("process_events_and_timers");
        }
    }

    fn count(&self, line: &str) -> usize {
        self.log.iter().filter(|l| *l == line).count()
    }
}

fn client(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("read timeout");
    s
}

#[test]
fn toy_world_drives_accept_read_posted_timer_close() {
    let (mut toy, addr) = Toy::listen();
    let listener = toy.ev.listening[0].conn.expect("listening connection registered");

    // accept: the listening handler gets a fresh connection, owned by nobody until it says so.
    let mut cl = client(addr);
    toy.turn_until("accept", |t| !t.accepted.is_empty());
    let c = toy.accepted[0];
    assert_eq!(toy.log, ["accept 1"]);
    assert_eq!(toy.ev.conn(c).map(|c| c.owner), Some(Who::Client(1)));
    assert_eq!((toy.ev.stats.accepted, toy.ev.stats.handled, toy.ev.conns.len()), (1, 1, 2));

    // read readiness: what the client writes reaches the read handler.
    cl.write_all(b"hello, reactor").expect("client write");
    toy.turn_until("read", |t| t.received.len() >= 14);
    assert_eq!(toy.received, b"hello, reactor");

    // a posted event runs in the same turn, once, even though the socket said nothing.
    let wev = Ev { c, write: true };
    toy.ev.conn(c).expect("client connection").write.handler = toy_posted;
    posted::post_event(&mut toy.ev, wev, Queue::Events);
    posted::post_event(&mut toy.ev, wev, Queue::Events); // already posted: queued once
    assert_eq!(toy.ev.posted.len(), 1);
    assert_eq!(toy.count("posted"), 0);
    process_events_and_timers(&mut toy).expect("turn");
    assert!(toy.count("posted") >= 1, "posted handler did not run in the turn: {:?}", toy.log);
    assert!(toy.ev.posted.is_empty());
    assert_eq!(toy.ev.conn(c).map(|c| c.write.posted), Some(false));

    // a timer: the handler sees `timedout`, and the timer is no longer set.
    let rev = Ev { c, write: false };
    add_timer(&mut toy.ev, rev, 20);
    assert!(timer_set(&toy.ev, rev));
    toy.turn_until("timeout", |t| t.count("timedout") == 1);
    assert!(!timer_set(&toy.ev, rev));
    assert_eq!(toy.ev.conn(c).map(|c| c.read.timedout), Some(false));

    // close: the slot is freed with its timer and posted entry; the client sees EOF.
    add_timer(&mut toy.ev, rev, 60_000);
    posted::post_event(&mut toy.ev, wev, Queue::Events);
    let posted_before = toy.count("posted");
    close_connection(&mut toy.ev, c);
    assert!(toy.ev.conn(c).is_none());
    assert_eq!(toy.ev.conns.len(), 1, "only the listening connection is left");
    assert!(toy.ev.timers.is_empty(), "close_connection left a timer behind");
    process_events_and_timers(&mut toy).expect("turn");
    assert_eq!(toy.count("posted"), posted_before, "a closed connection's posted event ran");
    let mut buf = [0u8; 8];
    assert_eq!(cl.read(&mut buf).expect("client read after close"), 0, "client did not see EOF");

    // a stale id finds nothing, even once its slot holds the next connection.
    let _cl2 = client(addr);
    toy.turn_until("second accept", |t| t.accepted.len() == 2);
    let c2 = toy.accepted[1];
    assert_eq!(c2.key(), c.key(), "the freed slot is reused");
    assert_ne!(c2, c);
    assert!(toy.ev.conn(c).is_none());
    assert_eq!(toy.ev.conn(c2).map(|c| c.owner), Some(Who::Client(2)));
    assert!(toy.ev.conn(listener).is_some());

    close_connection(&mut toy.ev, c2);
    accept::close_listening_sockets(&mut toy.ev);
    assert!(toy.ev.conns.is_empty());
}
