//! A request's initial state: built in a fresh slab slot (`new_request`), or reset in place
//! over the emptied request a freed slot still holds (`reset_request`).
//!
//! nginx: `ngx_http_alloc_request()` — `ngx_pcalloc` of the request in its pool, then the
//! fields that do not start at zero.
//!
//! Differs from nginx: the request slab keeps a freed request in its slot
//! (`core::id::ReuseSlab`), so the next request resets that one field by field instead of
//! building 1 KiB anew; vectors keep their storage (`RequestSpares::IN_SLOT`).

use std::sync::Arc;

use super::parse::{Method, RequestHead};
use super::request::{noop, HeadersIn, HeadersOut, Request};
use super::SrvConf;
use crate::core::buf::{Buf, Chain};
use crate::event::connection::ConnId;
use crate::http::cycle::RequestId;

/// What a new request starts from; the rest is the initial state.
pub(super) struct RequestInit {
    /// Its id (a main request is its own `main`).
    pub id: RequestId,
    /// The client connection.
    pub connection: ConnId,
    /// The default server of the listening address (its location settings too).
    pub srv: Arc<SrvConf>,
    /// Index of the listening address's server list.
    pub addr: usize,
    /// The buffer the request head is read into.
    pub header_in: Buf,
    /// `ngx_current_msec` at the start.
    pub start_msec: u64,
    /// The wall time at the start, in ms.
    pub start_unix_ms: u64,
    /// It came pipelined behind the previous request.
    pub pipelined: bool,
}

/// A request in its initial state: a main request of its own (`main`, `active` = `id`,
/// `count` 1), GET, HTTP/1.0, nothing parsed. `create_request` and `subrequest::subrequest`
/// fill in the rest. nginx: the `ngx_pcalloc` and the settings of `ngx_http_alloc_request()`.
///
/// Inlined so that `create_request` builds the request in its slab slot, not on the stack.
#[inline(always)]
pub(super) fn new_request(init: RequestInit) -> Request {
    let RequestInit { id, connection, srv, addr, header_in, start_msec, start_unix_ms, pipelined } = init;
    Request {
        id,
        connection,
        main: id,
        parent: None,
        count: 1,
        loc: srv.loc.clone(),
        srv,
        addr,
        header_in,
        large_header_bufs: 0,
        head: RequestHead::default(),
        head_done: false,
        method: Method::Get,
        http_version: 1000,
        uri: Vec::new(),
        args: Vec::new(),
        headers_in: HeadersIn::default(),
        headers_out: HeadersOut::default(),
        keepalive: false,
        lingering_close: false,
        header_only: false,
        header_sent: false,
        chunked: false,
        filter_need_in_memory: false,
        out: Chain::new(),
        read_event_handler: noop,
        write_event_handler: noop,
        upstream: None,
        request_body: None,
        discard_body: false,
        start_msec,
        start_unix_ms,
        phase_handler: 0,
        done: false,
        logged: false,
        header_size: 0,
        request_length: 0,
        internal: false,
        cleanup: Vec::new(),
        pool_cleanup: Vec::new(),
        ctx: Vec::new(),
        reading: true,
        sent_start: 0,
        pipelined,
        sr: None,
    }
}

/// `new_request` over a freed request left in its slot: every field set to what
/// `new_request` gives it. Vectors are emptied, keeping the storage `free_request` left
/// them (in a slot below `RequestSpares::IN_SLOT`; elsewhere the spares took it); the
/// response header is set up by `create_request`. Fields listed without `..`, so a new
/// field cannot be forgotten here.
#[inline(always)]
pub(super) fn reset_request(r: &mut Request, init: RequestInit) {
    let RequestInit {
        id: new_id,
        connection: new_connection,
        srv: new_srv,
        addr: new_addr,
        header_in: new_header_in,
        start_msec: new_start_msec,
        start_unix_ms: new_start_unix_ms,
        pipelined: new_pipelined,
    } = init;
    let Request {
        id,
        connection,
        main,
        parent,
        count,
        srv,
        loc,
        addr,
        header_in,
        large_header_bufs,
        head,
        head_done,
        method,
        http_version,
        uri,
        args,
        headers_in,
        headers_out: _, // set by `create_request`
        keepalive,
        lingering_close,
        header_only,
        header_sent,
        chunked,
        filter_need_in_memory,
        out,
        read_event_handler,
        write_event_handler,
        upstream,
        request_body,
        discard_body,
        start_msec,
        start_unix_ms,
        phase_handler,
        done,
        logged,
        header_size,
        request_length,
        internal,
        cleanup,
        pool_cleanup,
        ctx,
        reading,
        sent_start,
        pipelined,
        sr,
    } = r;
    (*id, *connection, *main, *parent, *count) = (new_id, new_connection, new_id, None, 1);
    *loc = new_srv.loc.clone();
    *srv = new_srv;
    *addr = new_addr;
    *header_in = new_header_in;
    *large_header_bufs = 0;
    // The header index and the host keep their storage (see `RequestSpares::IN_SLOT`).
    // Emptied already by `free_request`'s `keep`/`keep_in_place`; cleared again here (a length
    // store each) so that no other path to a reused slot can leave old ranges behind.
    let mut headers = std::mem::take(&mut head.headers);
    headers.clear();
    *head = RequestHead { headers, ..RequestHead::default() };
    (*head_done, *method, *http_version) = (false, Method::Get, 1000);
    uri.clear();
    args.clear();
    let mut host = std::mem::take(&mut headers_in.host);
    host.clear();
    *headers_in = HeadersIn { host, ..HeadersIn::default() };
    (*keepalive, *lingering_close, *header_only, *header_sent, *chunked) = (false, false, false, false, false);
    *filter_need_in_memory = false;
    // Empty already (`free_request` gives its buffers back): `clear` would be a call.
    if !out.is_empty() {
        out.clear();
    }
    (*read_event_handler, *write_event_handler) = (noop, noop);
    (*upstream, *request_body, *discard_body) = (None, None, false);
    (*start_msec, *start_unix_ms, *phase_handler) = (new_start_msec, new_start_unix_ms, 0);
    (*done, *logged, *header_size, *request_length, *internal) = (false, false, 0, 0, false);
    cleanup.clear();
    pool_cleanup.clear();
    if !ctx.is_empty() {
        ctx.clear();
    }
    (*reading, *sent_start, *pipelined, *sr) = (true, 0, new_pipelined, None);
}
