//! Connections: a socket, its two events, and who owns it.
//!
//! nginx: `ngx_connection_t` and `ngx_event_t` (src/core/ngx_connection.{c,h},
//! src/event/ngx_event.h); `ngx_get_connection()`, `ngx_close_connection()`.
//!
//! Differs from nginx:
//! - connections live in a generational slab (`GenSlab`), whose key is the `mio::Token`; the
//!   generation replaces the `instance` bit.
//! - `c->data` (a `void *`) becomes `data: W::Data`, a type the world above chooses (http's
//!   `Owner` names the request a client or upstream connection serves).
//! - the event handler is a plain `fn(&mut W, Ev)` pointer installed by the owning layer, just
//!   as `ev->handler` is in C; `W` is the world type of whoever runs the reactor, so this file
//!   (and all of `event/`) never names requests or upstreams.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd};

use super::reactor::World;
use super::timer::TimerId;
use crate::core::buf::Buf;
use crate::core::id::Id;

/// What a `ConnId` names: a connection of any world (the id type does not depend on `W`).
#[derive(Debug)]
pub enum ConnKey {}

/// A connection's id (slab key + generation). nginx: `ngx_connection_t *`.
pub type ConnId = Id<ConnKey>;

/// Names one of a connection's two events. nginx: `ngx_event_t *` (`c->read` or `c->write`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ev {
    /// The connection the event belongs to.
    pub c: ConnId,
    /// `ev->write`: the write event, else the read event.
    pub write: bool,
}

/// The handler an event runs when it fires, is posted, or times out. nginx: `ev->handler`.
pub type EventHandler<W> = fn(&mut W, Ev);

/// A do-nothing handler. nginx: `ngx_http_empty_handler`.
pub fn empty_handler<W>(_: &mut W, _: Ev) {}

/// Readiness and timer state of one direction. nginx: `ngx_event_t`.
///
/// mio is edge-triggered (as nginx's `EPOLLET`), so `ready` is kept here: it is set by the
/// poller and cleared only when a read or write returns `WouldBlock`.
pub struct Event<W> {
    /// The socket can be read (written) without blocking. nginx: `ev->ready`.
    pub ready: bool,
    /// Set by the timer wheel before calling the handler. nginx: `ev->timedout`.
    pub timedout: bool,
    /// The pending timer, if any (`ev->timer_set` is `timer.is_some()`).
    pub timer: Option<TimerId>,
    /// The event is in the posted queue. nginx: `ev->posted`.
    pub posted: bool,
    /// The peer closed its side (read) — nginx: `ev->eof` / `pending_eof`.
    pub eof: bool,
    /// A socket error was reported. nginx: `ev->error`.
    pub error: bool,
    /// Registered with the poller for this direction. nginx: `ev->active`. Set by
    /// `add_connection`, cleared by `del_connection`: the poller ignores the write readiness of
    /// an inactive event (a listening socket's), and pausing accept reads it.
    pub active: bool,
    /// What to run. nginx: `ev->handler`.
    pub handler: EventHandler<W>,
}

impl<W> std::fmt::Debug for Event<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Event")
            .field("ready", &self.ready)
            .field("timedout", &self.timedout)
            .field("timer", &self.timer)
            .field("posted", &self.posted)
            .field("eof", &self.eof)
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl<W> Default for Event<W> {
    fn default() -> Self {
        Event {
            ready: false,
            timedout: false,
            timer: None,
            posted: false,
            eof: false,
            error: false,
            active: false,
            handler: empty_handler,
        }
    }
}

/// The socket behind a connection.
#[derive(Debug)]
pub enum Stream {
    /// A listening socket; its read event accepts.
    Listener(mio::net::TcpListener),
    /// A TCP connection (client or upstream).
    Tcp(mio::net::TcpStream),
    /// A UNIX-domain connection (upstream `unix:` peers).
    Unix(mio::net::UnixStream),
}

impl Stream {
    /// As `mio::event::Source`, for (de)registration.
    pub fn source(&mut self) -> &mut dyn mio::event::Source {
        match self {
            Stream::Listener(l) => l,
            Stream::Tcp(s) => s,
            Stream::Unix(s) => s,
        }
    }
    /// The socket of a connection (not of a listener), for the system calls std does not
    /// offer on every kind of stream (`os::sys::{peek, splice}`).
    pub fn socket_fd(&self) -> Option<BorrowedFd<'_>> {
        match self {
            Stream::Tcp(s) => Some(s.as_fd()),
            Stream::Unix(s) => Some(s.as_fd()),
            Stream::Listener(_) => None,
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
            _ => Err(io::ErrorKind::NotConnected.into()),
        }
    }
    fn read_vectored(&mut self, bufs: &mut [io::IoSliceMut<'_>]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read_vectored(bufs),
            Stream::Unix(s) => s.read_vectored(bufs),
            _ => Err(io::ErrorKind::NotConnected.into()),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
            _ => Err(io::ErrorKind::NotConnected.into()),
        }
    }
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write_vectored(bufs),
            Stream::Unix(s) => s.write_vectored(bufs),
            _ => Err(io::ErrorKind::NotConnected.into()),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// One connection. nginx: `ngx_connection_t`.
pub struct Connection<W: World> {
    /// The socket.
    pub stream: Stream,
    /// Read side. nginx: `c->read`.
    pub read: Event<W>,
    /// Write side. nginx: `c->write`.
    pub write: Event<W>,
    /// Who the connection belongs to. nginx: `c->data`.
    pub owner: W::Data,
    /// Serial number shown as `*N` in log lines. nginx: `c->number`.
    pub number: u64,
    /// The peer's address. nginx: `c->sockaddr`.
    pub peer: Option<SocketAddr>,
    /// Our local address. nginx: `c->local_sockaddr`.
    pub local: Option<SocketAddr>,
    /// Index of the listening socket this connection was accepted on (`u32`: it shares a
    /// word with `requests`).
    pub listening: u32,
    /// Bytes written so far. nginx: `c->sent`.
    pub sent: u64,
    /// Requests served on this connection. nginx: `c->requests`.
    pub requests: u32,
    /// What the connection is doing, appended to error lines as "while ...". nginx: `log->action`.
    pub action: &'static str,
    /// Bytes read but not yet consumed by a request (the next pipelined request).
    /// nginx: `c->buffer` / `hc->busy`. Boxed: only a pipelining client leaves one behind,
    /// and every idle connection would otherwise carry a whole `Buf` of room for it.
    pub buffer: Option<Box<Buf>>,
    /// A fatal socket error happened. nginx: `c->error`.
    pub error: bool,
    /// The connection should close instead of keepalive. nginx: `c->close`.
    pub close: bool,
    /// Idle (keepalive) connection, closable on graceful shutdown. nginx: `c->idle`.
    pub idle: bool,
    /// An idle client connection that may be closed to make room when `worker_connections`
    /// run out. nginx: `c->reusable` (`ngx_reusable_connection()`).
    pub reusable: bool,
    /// Timestamp (ms) when the connection started; `keepalive_time` counts from it.
    pub start_msec: u64,
}

impl<W: World> Connection<W> {
    /// A fresh connection around `stream`. Handlers are installed by the owning layer.
    pub fn new(stream: Stream, owner: W::Data) -> Connection<W> {
        Connection {
            stream,
            read: Event::default(),
            write: Event::default(),
            owner,
            number: 0,
            peer: None,
            local: None,
            listening: 0,
            sent: 0,
            requests: 0,
            action: "",
            buffer: None,
            error: false,
            close: false,
            idle: false,
            reusable: false,
            start_msec: 0,
        }
    }
    /// The event named by `write`.
    pub fn event(&mut self, write: bool) -> &mut Event<W> {
        if write {
            &mut self.write
        } else {
            &mut self.read
        }
    }
}
