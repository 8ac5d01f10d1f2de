//! The poller: mio in edge-triggered mode, one registration per connection.
//!
//! nginx: src/event/modules/ngx_epoll_module.c — `ngx_epoll_add_connection()` registers
//! `EPOLLIN|EPOLLOUT|EPOLLET|EPOLLRDHUP` once; `ngx_epoll_process_events()` sets `ev->ready`
//! and calls `ev->handler`, dropping stale events by the `instance` bit.
//!
//! Differs from nginx:
//! - the stale check compares the generation packed in the token (see `core::id`).
//! - the `mio::Events` buffer is taken out of the reactor for the turn, because handlers need
//!   the whole world (`&mut W`) while it is read.

use std::io;
use std::time::Duration;

use mio::{Interest, Token};

use super::connection::{ConnId, Ev, Stream};
use super::reactor::{Reactor, World};

/// Registers a connection for both directions, once. nginx: `ngx_epoll_add_connection()`.
pub fn add_connection<W: World>(rx: &mut Reactor<W>, id: ConnId) -> io::Result<()> {
    let Some(c) = rx.conns.get_mut(id) else {
        return Ok(());
    };
    let interest = match c.stream {
        Stream::Listener(_) => Interest::READABLE,
        _ => Interest::READABLE | Interest::WRITABLE,
    };
    c.read.active = true;
    c.write.active = !matches!(c.stream, Stream::Listener(_));
    rx.poll.registry().register(c.stream.source(), Token(id.to_token()), interest)
}

/// Deregisters a connection, before close or to pause accepting. nginx:
/// `ngx_epoll_del_connection()`, whose `NGX_CLOSE_EVENT` flag is `close` here.
///
/// On close nothing is asked of the kernel for a client or upstream socket: closing the
/// descriptor removes it from the epoll set (nginx: "when the file descriptor is closed the
/// epoll automatically deletes it from its queue"), and mio keeps no state per source on
/// epoll (its `IoSourceState` is stateless there), so its "deregister before drop" rule
/// guards against nothing on Linux. The kernel drops the registration only when the last
/// descriptor of the open file goes: a listening socket has duplicates (the master's copy,
/// the other workers'), so it is always deregistered explicitly.
pub fn del_connection<W: World>(rx: &mut Reactor<W>, id: ConnId, close: bool) {
    if let Some(c) = rx.conns.get_mut(id) {
        if !close || matches!(c.stream, Stream::Listener(_)) {
            // Ignored: a pause retried later, or a registration that is going anyway.
            let _ = rx.poll.registry().deregister(c.stream.source());
        }
        c.read.active = false;
        c.write.active = false;
    }
}

/// The token the worker's `mio::Waker` is registered with: the master wakes a worker with it
/// after setting one of its signal flags (nginx: the channel socket between master and worker,
/// `ngx_channel_handler()`).
///
/// It names no connection. Every other token is a `ConnId` (key in the low half, generation in
/// the high half), and `usize::MAX` would decode to key `u32::MAX`, a slot the slab never
/// reaches, so today it would also fall through as a stale event; it is matched by name
/// instead, first, so that the wake-up does not depend on that accident of the packing.
pub const WAKER: Token = Token(usize::MAX);

/// Readiness of one mio event.
#[derive(Clone, Copy)]
struct Ready {
    token: usize,
    read: bool,
    write: bool,
    eof: bool,
    error: bool,
}

/// Waits up to `timeout`, then runs the handler of every ready event.
/// nginx: `ngx_epoll_process_events()`.
pub fn process_events<W: World>(w: &mut W, timeout: Option<Duration>) -> io::Result<()> {
    let rx = w.reactor();
    let mut events = rx.events.take().unwrap_or_else(|| mio::Events::with_capacity(512));
    let r = rx.poll.poll(&mut events, timeout);
    rx.times.update(); // nginx: ngx_time_update() right after epoll_wait
    if let Err(e) = r {
        rx.events = Some(events);
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(());
        }
        return Err(e);
    }
    // `events` was taken out of the reactor, so the handlers may have the whole world while
    // this loop reads it; it goes back afterwards for the next turn.
    for e in events.iter() {
        if e.token() == WAKER {
            // Its only job was to end `poll()`: the caller reads the signal flags next turn.
            continue;
        }
        let error = e.is_error();
        dispatch(
            w,
            Ready {
                token: e.token().0,
                read: e.is_readable() || e.is_read_closed() || error,
                write: e.is_writable() || e.is_write_closed() || error,
                eof: e.is_read_closed(),
                error,
            },
        );
    }
    w.reactor().events = Some(events);
    Ok(())
}

fn dispatch<W: World>(w: &mut W, r: Ready) {
    let id = ConnId::from_token(r.token);
    if r.read {
        // A stale event (connection closed earlier in this batch) finds no connection.
        let Some(c) = w.reactor().conns.get_mut(id) else {
            return;
        };
        c.read.ready = true;
        c.read.eof |= r.eof;
        c.read.error |= r.error;
        let h = c.read.handler;
        h(w, Ev { c: id, write: false });
    }
    if r.write {
        let Some(c) = w.reactor().conns.get_mut(id) else {
            return; // the read handler closed it
        };
        if !c.write.active {
            return;
        }
        c.write.ready = true;
        c.write.error |= r.error;
        let h = c.write.handler;
        h(w, Ev { c: id, write: true });
    }
}
