//! Ending a request: `finalize_request` and the writer that finishes sending, then the
//! connection's fate (keepalive, lingering close or close), and terminate, close and free,
//! which give back every resource of the request (and of its subrequest tree).
//!
//! nginx: src/http/ngx_http_request.c — `ngx_http_finalize_request()`,
//! `ngx_http_set_write_handler()`, `ngx_http_writer()`, `ngx_http_finalize_connection()`,
//! `ngx_http_terminate_request()`, `ngx_http_close_request()`, `ngx_http_free_request()`,
//! `ngx_http_log_request()`.
//!
//! Differs from nginx:
//! - one file of `ngx_http_request.c` became `request.rs` (the request's start and phases) and
//!   this one (its end); `request.rs` re-exports these functions, so
//!   `http::request::finalize_request` is still the name to grep.
//! - `finalize_connection` closes a connection whose client failed (a reset while its body was
//!   discarded); nginx goes to keepalive and holds it until `keepalive_timeout`.

use super::keepalive::{set_keepalive, set_lingering_close};
use super::request::{close_client, empty_handler};
use crate::core::buf::Chain;
use crate::core::step::{HandlerRc, Step};
use crate::event;
use crate::event::connection::Ev;
use crate::http::cycle::Cycle;
use crate::http::cycle::{Owner, RequestId};

/// Ends a request with a result code. nginx: `ngx_http_finalize_request()`.
pub fn finalize_request(cy: &mut Cycle, rid: RequestId, rc: HandlerRc) {
    let Some(r) = cy.requests.get_mut(rid) else { return };
    let cid = r.connection;
    if rc == HandlerRc::Done {
        return finalize_connection(cy, rid);
    }
    // A request that neither is nor has a subrequest has no `sr`: one test on its path.
    let in_tree = r.sr.is_some();
    let is_sub = in_tree && r.main != rid;
    // The seed's check: `if (r != r->main && r->post_subrequest)`.
    let ps = if is_sub { r.sr.as_ref().and_then(|s| s.post_subrequest) } else { None };
    let rc = match ps {
        Some(ps) => super::subrequest::post_subrequest(cy, rid, ps, rc),
        None => rc,
    };
    let Some(r) = cy.requests.get_mut(rid) else { return };
    let c_error = cy.ev.conns.get(cid).is_none_or(|c| c.error);
    match rc {
        HandlerRc::Error | HandlerRc::Status(408) | HandlerRc::Status(499) => return terminate_request(cy, rid, rc),
        _ if c_error => return terminate_request(cy, rid, rc),
        HandlerRc::Status(444) => {
            r.keepalive = false;
            return terminate_request(cy, rid, rc);
        }
        HandlerRc::Status(s) if s >= 300 || s == 204 && !r.header_sent => {
            if r.header_sent {
                // The response already started: nothing can be said any more; close.
                return terminate_request(cy, rid, rc);
            }
            if !is_sub {
                event::del_timer(&mut cy.ev, Ev { c: cid, write: false });
                event::del_timer(&mut cy.ev, Ev { c: cid, write: true });
            }
            let rc2 = super::special_response::special_response_handler(cy, rid, s);
            return finalize_request(cy, rid, rc2);
        }
        _ => {}
    }
    // here: the handler is done producing output (NGX_OK or a 1xx/2xx status already sent)
    if is_sub {
        return super::subrequest::finalize_subrequest(cy, rid);
    }
    let Some(r) = cy.requests.get_mut(rid) else { return };
    if !r.out.is_empty() || in_tree && r.has_postponed() {
        // Output still buffered, or held behind subrequests: wait for the socket, or for the
        // children. nginx: `ngx_http_set_write_handler()`.
        return set_write_handler(cy, rid);
    }
    if in_tree && r.active() != rid {
        let n = cy.ev.conns.get(cid).map_or(0, |c| c.number);
        crate::ngx_log!(Alert, "*{n} http finalize non-active request: \"{}\"", String::from_utf8_lossy(&r.uri));
        return;
    }
    r.done = true;
    r.write_event_handler = empty_handler;
    let count = r.count;
    event::del_timer(&mut cy.ev, Ev { c: cid, write: true });
    if log::max_level() >= log::LevelFilter::Debug {
        super::trace::step(cy, rid, format_args!("finalize: count {count}"));
    }
    finalize_connection(cy, rid);
}

/// The response waits: `writer` takes over the request's write events, under `send_timeout`.
/// nginx: `ngx_http_set_write_handler()`.
pub(super) fn set_write_handler(cy: &mut Cycle, rid: RequestId) {
    let Some(r) = cy.requests.get_mut(rid) else { return };
    r.write_event_handler = writer;
    let (cid, timeout) = (r.connection, r.loc.core.send_timeout());
    if !event::timer_set(&cy.ev, Ev { c: cid, write: true }) {
        event::add_timer(&mut cy.ev, Ev { c: cid, write: true }, timeout);
    }
}

/// Keeps writing buffered output; for a request with subrequests, also lets the postpone
/// filter release what waited and wake the next child. nginx: `ngx_http_writer()`.
pub fn writer(cy: &mut Cycle, rid: RequestId) {
    let Some(r) = cy.requests.get(rid) else { return };
    let cid = r.connection;
    if let Some(c) = cy.ev.conns.get_mut(cid) {
        if c.write.timedout {
            c.write.timedout = false;
            c.error = true;
            log::info!("*{} client timed out while sending response to client", c.number);
            return finalize_request(cy, rid, HandlerRc::Status(408));
        }
    }
    let mut empty = Chain::new();
    let rc = super::output_filter(cy, rid, &mut empty);
    let Some(r) = cy.requests.get_mut(rid) else { return };
    // A subrequest waits only for its own held output; the socket is the main request's.
    // nginx: `if (r->buffered || r->postponed || (r == r->main && c->buffered))`.
    let waits = r.has_postponed() || r.main == rid && (rc == Ok(Step::Again) || !r.out.is_empty());
    match rc {
        Err(_) => finalize_request(cy, rid, HandlerRc::Error),
        Ok(_) if waits => {
            let timeout = r.loc.core.send_timeout();
            if !event::timer_set(&cy.ev, Ev { c: cid, write: true }) {
                event::add_timer(&mut cy.ev, Ev { c: cid, write: true }, timeout);
            }
        }
        Ok(_) => {
            r.write_event_handler = empty_handler;
            finalize_request(cy, rid, HandlerRc::Ok);
        }
    }
}

/// Drops a reference and decides the connection's fate. nginx: `ngx_http_finalize_connection()`.
pub(super) fn finalize_connection(cy: &mut Cycle, rid: RequestId) {
    let now = cy.ev.times.msec;
    let Some(r) = cy.requests.get(rid) else { return };
    let main = r.main;
    let Some(mr) = cy.requests.get_mut(main) else { return };
    if mr.count != 1 {
        if mr.discard_body {
            // The response is done; the body still arrives: drop it for a while, bounded by
            // `lingering_time`, idle at most `lingering_timeout` (re-armed on each read).
            let (time, timeout) = mr.loc.core.lingering();
            mr.read_event_handler = super::body::discarded_request_body_handler;
            if let Some(rb) = mr.request_body.as_mut().filter(|rb| rb.lingering_time == 0) {
                rb.lingering_time = now + time;
            }
            let cid = mr.connection;
            event::add_timer(&mut cy.ev, Ev { c: cid, write: false }, timeout);
            // Body bytes that came while a subrequest was active were seen by its read handler
            // (which only peeks) and raise no new edge: drain them now. nginx gets there by
            // giving the child `discard_body`, so the child's read handler drains them.
            if cy.ev.conns.get(cid).is_some_and(|c| c.read.ready) {
                event::posted::post_event(&mut cy.ev, Ev { c: cid, write: false }, event::posted::Queue::Events);
            }
        }
        return close_request(cy, main, 0);
    }
    // The client closed (its EOF was read: nginx's `rev->eof`), or failed (reset) while its
    // body was discarded: nothing more will come, not even a new event. (nginx goes to
    // keepalive after a reset and holds the connection until `keepalive_timeout`.)
    if cy.ev.conns.get(mr.connection).is_none_or(|c| c.error || c.read.eof && !c.read.ready) {
        return close_request(cy, main, 0);
    }
    if mr.request_body.as_ref().is_some_and(|rb| rb.reading) {
        // A streamed body was not read to its end: the rest must be drained, not parsed.
        mr.keepalive = false;
        mr.lingering_close = true;
    }
    let (keepalive, linger) = (mr.keepalive && !cy.ev.exiting, needs_lingering(cy, main));
    if keepalive && !linger_data_blocks_keepalive(cy, main) {
        return set_keepalive(cy, main);
    }
    if linger {
        return set_lingering_close(cy, main);
    }
    close_request(cy, main, 0);
}

fn linger_data_blocks_keepalive(cy: &Cycle, rid: RequestId) -> bool {
    // A body left unread makes the connection unusable for the next request.
    cy.requests.get(rid).is_some_and(|r| r.lingering_close)
}

/// nginx: the `lingering_close on` test of `ngx_http_finalize_connection()`.
fn needs_lingering(cy: &Cycle, rid: RequestId) -> bool {
    let Some(r) = cy.requests.get(rid) else { return false };
    let Some(c) = cy.ev.conns.get(r.connection) else { return false };
    let unread = !r.header_in.is_empty() || !super::body::pipelined(r).is_empty();
    !c.error && (r.lingering_close || c.read.ready || unread && !r.keepalive)
}

/// Closes a request immediately (no response): header timeout, early EOF.
pub(super) fn close_request_now(cy: &mut Cycle, rid: RequestId, status: u16) {
    if let Some(r) = cy.requests.get_mut(rid) {
        r.headers_out.status = status;
        r.count = 1;
        r.keepalive = false;
    }
    close_request(cy, rid, status);
}

/// Aborts everything about a request and closes its connection. nginx:
/// `ngx_http_terminate_request()`.
pub fn terminate_request(cy: &mut Cycle, rid: RequestId, rc: HandlerRc) {
    let Some(r) = cy.requests.get(rid) else { return };
    let main = r.main;
    // Every request of the tree: nginx keeps all their cleanups on `r->main->cleanup`.
    super::subrequest::run_tree_cleanups(cy, main);
    run_cleanup(cy, main);
    let count = cy.requests.get(main).map_or(0, |m| m.count);
    super::trace::step(cy, main, format_args!("terminate: count {count} -> 1"));
    let Some(mr) = cy.requests.get_mut(main) else { return };
    if let HandlerRc::Status(s) = rc {
        if mr.headers_out.status == 0 || !mr.header_sent {
            mr.headers_out.status = s;
        }
    }
    mr.count = 1;
    mr.keepalive = false;
    close_request(cy, main, 0);
}

/// Runs and empties a request's cleanups, last pushed first. The list keeps its storage for
/// the request spares (unless a cleanup pushed another, which then stays for the next run).
pub(super) fn run_cleanup(cy: &mut Cycle, rid: RequestId) {
    let mut cl = match cy.requests.get_mut(rid) {
        Some(r) if !r.cleanup.is_empty() => std::mem::take(&mut r.cleanup),
        _ => return,
    };
    for &f in cl.iter().rev() {
        f(cy, rid);
    }
    cl.clear();
    if let Some(r) = cy.requests.get_mut(rid).filter(|r| r.cleanup.is_empty()) {
        r.cleanup = cl;
    }
}

/// Runs and empties a request's pool cleanups, in the order pushed, keeping the list's
/// storage as `run_cleanup` does. nginx: the pool cleanups of `ngx_destroy_pool()`.
pub(super) fn run_pool_cleanup(cy: &mut Cycle, rid: RequestId) {
    let mut pool = match cy.requests.get_mut(rid) {
        Some(r) if !r.pool_cleanup.is_empty() => std::mem::take(&mut r.pool_cleanup),
        _ => return,
    };
    for &f in pool.iter() {
        f(cy, rid);
    }
    pool.clear();
    if let Some(r) = cy.requests.get_mut(rid).filter(|r| r.pool_cleanup.is_empty()) {
        r.pool_cleanup = pool;
    }
}

/// Drops one reference; at zero frees the request and closes the connection.
/// nginx: `ngx_http_close_request()`.
pub fn close_request(cy: &mut Cycle, rid: RequestId, status: u16) {
    let Some(r) = cy.requests.get_mut(rid) else { return };
    let main = r.main;
    let Some(mr) = cy.requests.get_mut(main) else { return };
    debug_assert!(mr.count > 0, "r->main->count underflow");
    mr.count = mr.count.saturating_sub(1);
    if mr.count > 0 {
        return;
    }
    let cid = mr.connection;
    free_request(cy, main, status);
    close_client(cy, cid);
}

/// Logs and frees the request object. nginx: `ngx_http_free_request()`.
pub fn free_request(cy: &mut Cycle, rid: RequestId, status: u16) {
    run_cleanup(cy, rid);
    let Some(r) = cy.requests.get_mut(rid) else { return };
    if status != 0 && r.headers_out.status == 0 {
        r.headers_out.status = status;
    }
    let in_tree = r.sr.is_some();
    log_request(cy, rid);
    run_pool_cleanup(cy, rid);
    if in_tree {
        super::subrequest::free_tree(cy, rid);
    }
    // Released in place, then the slot discarded: moving the whole `Request` out of the slab
    // copied it, and building the next one into it another time.
    let Some(r) = cy.requests.get_mut(rid) else { return };
    // The buffers go back to the pool; the chain's storage stays for the request spares
    // (`RequestSpares::keep`, bounded by `MAX_CHAIN`).
    while let Some(b) = r.out.pop_front() {
        cy.ev.bufs.put(b);
    }
    r.headers_out.release(&mut cy.ev.bufs);
    if let Some(mut sr) = r.sr.take() {
        super::postpone_filter::free_postponed(&mut cy.ev.bufs, &mut sr.postponed);
    }
    let body = r.request_body.take();
    if let Some(c) = cy.ev.conns.get_mut(r.connection) {
        if c.owner == Owner::Client(Some(rid)) {
            c.owner = Owner::Client(None);
        }
    }
    cy.ev.bufs.put(std::mem::take(&mut r.header_in));
    if rid.key() < super::request::RequestSpares::IN_SLOT {
        super::request::RequestSpares::keep_in_place(r);
    } else {
        cy.request_spares.keep(r);
    }
    // The slot keeps the emptied request for the next one (`ReuseSlab`): what a module
    // context holds is released now, as when the request was dropped.
    r.ctx.clear();
    cy.requests.discard(rid);
    if let Some(b) = body {
        super::body::free_body_keep(cy, b);
    }
}

/// Runs the log phase once. nginx: `ngx_http_log_request()`.
#[inline]
pub(super) fn log_request(cy: &mut Cycle, rid: RequestId) {
    let Some(r) = cy.requests.get_mut(rid) else { return };
    // Every request is logged, also one whose head never completed (400, 408), as nginx does.
    if !r.logged && r.main == rid {
        r.logged = true;
        let conf = cy.http_conf.clone();
        for h in conf.iter().flat_map(|h| h.phases.log.iter()) {
            h(cy, rid);
        }
    }
}
