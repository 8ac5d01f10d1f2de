//! After a response: keep the connection for the next request, or close it lingering so the
//! client reads the response instead of a reset.
//!
//! nginx: src/http/ngx_http_request.c — `ngx_http_set_keepalive()`,
//! `ngx_http_keepalive_handler()` (here `request::wait_request_handler` serves both waits),
//! `ngx_http_set_lingering_close()`, `ngx_http_lingering_close_handler()`.
//!
//! Differs from nginx: the request is freed before the lingering close (nginx keeps it until
//! the connection closes), so the lingering handler uses the default server's
//! `lingering_timeout`, and the deadline lives in `Connection::start_msec`.

use super::request::{close_client, free_request, log_request, wait_request_handler};
use crate::event::connection::{ConnId, Ev, Stream};
use crate::event::io::{self, Recv};
use crate::event::{self, posted};
use crate::http::cycle::Cycle;
use crate::http::cycle::RequestId;

/// Keeps the connection for the next request. nginx: `ngx_http_set_keepalive()`.
pub(super) fn set_keepalive(cy: &mut Cycle, rid: RequestId) {
    // The log line reads `$request` out of `header_in`, which a pipelined request takes below.
    log_request(cy, rid);
    let Some(r) = cy.requests.get_mut(rid) else { return };
    let cid = r.connection;
    let timeout = r.loc.core.keepalive_timeout();
    // Bytes after this request are the next pipelined request: copy them to a fresh buffer
    // (the head stays in `header_in` for the access log). A chunked body read from the socket
    // may have brought some along (`rb.pipelined`); they follow whatever `header_in` holds.
    let extra = super::body::pipelined(r);
    let leftover = if r.header_in.is_empty() && extra.is_empty() {
        None
    } else {
        let len = r.header_in.data().len() + extra.len();
        let mut nb = cy.ev.bufs.get(r.srv.core.client_header_buffer_size().max(len));
        nb.append(r.header_in.data());
        nb.append(extra);
        Some(nb)
    };
    free_request(cy, rid, 0);
    let Some(c) = cy.ev.conns.get_mut(cid) else { return };
    c.read.handler = wait_request_handler;
    c.write.handler = crate::event::connection::empty_handler;
    c.action = "keepalive";
    let pipelined = leftover.is_some();
    c.buffer = leftover.map(Box::new);
    // Idle unless the next request is already buffered: a graceful stop closes idle ones.
    c.idle = !pipelined;
    // ...and may be closed to make room when worker_connections run out (nginx:
    // `ngx_reusable_connection(c, 1)` in `ngx_http_set_keepalive()`).
    c.reusable = !pipelined;
    if pipelined || c.read.ready {
        // Data is already here (no new edge will announce it): handle it in this turn.
        posted::post_event(&mut cy.ev, Ev { c: cid, write: false }, posted::Queue::Events);
    }
    event::del_timer(&mut cy.ev, Ev { c: cid, write: true });
    event::add_timer(&mut cy.ev, Ev { c: cid, write: false }, timeout);
}

/// Closes the write side and drains the read side for a while, so the client gets the response
/// instead of a reset. nginx: `ngx_http_set_lingering_close()`.
pub(super) fn set_lingering_close(cy: &mut Cycle, rid: RequestId) {
    let Some(r) = cy.requests.get(rid) else { return };
    let cid = r.connection;
    let (time, timeout) = r.loc.core.lingering();
    free_request(cy, rid, 0);
    let now = cy.ev.times.msec;
    let Some(c) = cy.ev.conns.get_mut(cid) else { return };
    c.read.handler = lingering_close_handler;
    c.write.handler = crate::event::connection::empty_handler;
    c.start_msec = now + time; // reused as the lingering deadline: nginx's `r->lingering_time`
    c.action = "lingering close";
    if let Stream::Tcp(s) = &c.stream {
        if s.shutdown(std::net::Shutdown::Write).is_err() {
            return close_client(cy, cid);
        }
    }
    event::del_timer(&mut cy.ev, Ev { c: cid, write: true });
    event::add_timer(&mut cy.ev, Ev { c: cid, write: false }, timeout);
    if c_ready(cy, cid) {
        lingering_close_handler(cy, Ev { c: cid, write: false });
    }
}

fn c_ready(cy: &Cycle, cid: ConnId) -> bool {
    cy.ev.conns.get(cid).is_some_and(|c| c.read.ready)
}

/// Reads and drops client data until EOF, timeout or the lingering deadline; each read re-arms
/// the idle timer, never past the deadline. nginx: `ngx_http_lingering_close_handler()`.
fn lingering_close_handler(cy: &mut Cycle, ev: Ev) {
    let now = cy.ev.times.msec;
    // The request is gone (nginx keeps it until the close): the server's setting applies.
    let timeout = super::request::default_server(cy, ev.c).map_or(5_000, |s| s.loc.core.lingering().1);
    let Some(c) = cy.ev.conns.get_mut(ev.c) else { return };
    if c.read.timedout || now >= c.start_msec {
        return close_client(cy, ev.c);
    }
    let deadline = c.start_msec;
    let mut scratch = [0u8; 4096];
    loop {
        match io::recv(c, &mut scratch) {
            Recv::Data(_) if c.read.ready => continue,
            Recv::Data(_) | Recv::Again => break,
            Recv::Eof | Recv::Error(_) => return close_client(cy, ev.c),
        }
    }
    event::add_timer(&mut cy.ev, ev, (deadline - now).min(timeout));
}
