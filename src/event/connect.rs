//! Non-blocking connect to a peer.
//!
//! nginx: `ngx_event_connect_peer()` (src/event/ngx_event_connect.c) and the `SO_ERROR` check of
//! `ngx_http_upstream_test_connect()`.
//!
//! A connect that cannot complete at once returns `Again`; the connection is registered for both
//! directions, and writability — or data or a FIN on the read side — later says it finished
//! (or failed: `test_connect`).

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

use super::connection::{ConnId, Connection, Ev, Stream};
use super::epoll;
use super::reactor::{Reactor, World};

/// Where a peer lives. nginx: `pc->sockaddr` (`AF_INET`/`AF_INET6`/`AF_UNIX`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerAddr {
    /// A TCP address.
    Inet(SocketAddr),
    /// A UNIX-domain socket path (`unix:/path`).
    Unix(PathBuf),
}

impl std::fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeerAddr::Inet(a) => write!(f, "{a}"),
            PeerAddr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// Starts connecting to `addr`; the new connection is registered and owned by `owner`.
///
/// # Returns
/// The connection id, or the error of a connect that failed at once (e.g. `ECONNREFUSED` on
/// loopback), which the caller treats as nginx's `NGX_DECLINED` (try the next peer).
///
/// nginx: `ngx_event_connect_peer()`.
pub fn connect_peer<W: World>(rx: &mut Reactor<W>, addr: &PeerAddr, owner: W::Data) -> io::Result<ConnId> {
    let stream = match addr {
        PeerAddr::Inet(a) => Stream::Tcp(mio::net::TcpStream::connect(*a)?),
        PeerAddr::Unix(p) => Stream::Unix(mio::net::UnixStream::connect(p)?),
    };
    let mut c = Connection::new(stream, owner);
    rx.connection_counter += 1;
    c.number = rx.connection_counter;
    c.peer = match addr {
        PeerAddr::Inet(a) => Some(*a),
        PeerAddr::Unix(_) => None,
    };
    c.start_msec = rx.times.msec;
    let id = rx.conns.insert(c);
    if let Err(e) = epoll::add_connection(rx, id) {
        rx.conns.remove(id);
        return Err(e);
    }
    Ok(id)
}

/// Whether a pending connect has finished: `Ok(true)` connected, `Ok(false)` still in
/// progress (a spurious wakeup), `Err` failed (`SO_ERROR`).
///
/// nginx: `ngx_http_upstream_test_connect()`: `getsockopt(SO_ERROR)` only. The socket is
/// registered edge-triggered for writing, and a connecting socket becomes writable only when
/// the connect is over; so with no pending error, the write event having fired
/// (`write.ready`) means connected, and so does data or a FIN on the read side — no
/// `getpeername()` (mio's recipe, `peer_addr()`, is
/// for a caller that does not know this).
pub fn test_connect<W: World>(c: &mut Connection<W>) -> io::Result<bool> {
    let err = match &c.stream {
        Stream::Tcp(s) => s.take_error()?,
        Stream::Unix(s) => s.take_error()?,
        _ => return Err(io::ErrorKind::NotConnected.into()),
    };
    if let Some(e) = err {
        return Err(e);
    }
    if c.write.error || c.read.error {
        // An error edge whose error was read (and cleared) already.
        return Err(io::ErrorKind::ConnectionRefused.into());
    }
    // Bytes or a FIN can only come from a connected peer; and the read handler can run
    // before `write.ready` is set for the same epoll event (a backend that answers at once
    // and closes), so any of the three means connected.
    Ok(c.write.ready || c.read.ready || c.read.eof)
}

/// Closes a connection: timers, posted events, registration, socket, slab slot — every one.
/// nginx: `ngx_close_connection()`.
pub fn close_connection<W: World>(rx: &mut Reactor<W>, id: ConnId) {
    super::del_timer(rx, Ev { c: id, write: false });
    super::del_timer(rx, Ev { c: id, write: true });
    // No EPOLL_CTL_DEL: the close right below takes the socket out of the epoll set.
    epoll::del_connection(rx, id, true);
    // Dropping the connection closes the descriptor; queued posted entries are now stale.
    if let Some(b) = rx.conns.remove(id).and_then(|mut c| c.buffer.take()) {
        rx.bufs.put(*b);
    }
}
