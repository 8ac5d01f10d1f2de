//! Subrequests: a request asks for another URI of the same server and uses the answer — kept
//! in memory for itself, or sent to the client in its place among its own output.
//!
//! nginx: src/http/ngx_http_core_module.c (`ngx_http_subrequest()`), src/http/ngx_http_request.c
//! (the `r != r->main` branch of `ngx_http_finalize_request()`, `ngx_http_request_finalizer()`,
//! `ngx_http_post_request()`, `ngx_http_run_posted_requests()`), src/http/ngx_http_request.h
//! (`ngx_http_post_subrequest_t`, `NGX_HTTP_SUBREQUEST_*`, `NGX_HTTP_MAX_SUBREQUESTS`).
//!
//! # Using it
//!
//! A handler creates a child with a URI and arguments; the child goes through location matching
//! like any request (so it may reach `proxy_pass`, `return`, or another module) and starts from
//! the posted-requests queue once the handler returns. When the child is finalized, its
//! `post_subrequest` handler runs with the child's id, the creator's `data` and the child's
//! result; the parent is then woken through its write-event handler:
//!
//! ```ignore
//! use rginx::http::subrequest::{self, PostSubrequest, SubrequestFlags};
//!
//! // The content handler (the seed's `ngx_http_mytest_handler`).
//! fn handler(cy: &mut Cycle, r: RequestId) -> HandlerRc {
//!     let ps = PostSubrequest { handler: quote_done, data: 0 };
//!     if subrequest::subrequest(cy, r, b"/list=s_sh000001", b"", Some(ps), SubrequestFlags::IN_MEMORY).is_err() {
//!         return HandlerRc::Status(500); // nginx logged why ("subrequests cycle ...")
//!     }
//!     // `Done` gives a reference back: keep one for the parent, which answers later.
//!     subrequest::hold(cy, r);
//!     HandlerRc::Done
//! }
//!
//! // The child ended (the seed's `mytest_subrequest_post_handler`): read what it kept, and
//! // say what the parent runs when it is woken (`pr->write_event_handler = ...`).
//! fn quote_done(cy: &mut Cycle, sr: RequestId, _data: usize, rc: HandlerRc) -> HandlerRc {
//!     let body = subrequest::in_memory_body(cy, sr); // the upstream's body, at most buffer_size
//!     let status = cy.requests.get(sr).map_or(0, |r| r.headers_out.status);
//!     let parent = cy.requests.get(sr).and_then(|r| r.parent);
//!     if let Some(pr) = parent.and_then(|p| cy.requests.get_mut(p)) {
//!         // keep `body`/`status` in the parent's ctx, then:
//!         pr.write_event_handler = answer;
//!     }
//!     rc
//! }
//!
//! // The parent re-activated (the seed's `mytest_post_handler`): send, then finalize.
//! fn answer(cy: &mut Cycle, r: RequestId) {
//!     let rc = special_response::send_response(cy, r, Some(b"...".to_vec()));
//!     request::finalize_request(cy, r, rc);
//! }
//! ```
//!
//! A handler that writes its own output around its children (as SSI or `addition` do) sends
//! its header first, then creates children and writes text in any order, ends with `last_buf`,
//! and returns `Ok`: the postpone filter puts everything in request order, and the main request
//! finishes when its last child has (`docs/subrequests.md`).
//!
//! Differs from nginx:
//! - `post_subrequest`'s `data` is a number the creator chooses (nginx: a `void *`); state lives
//!   in the parent's `ctx`, which the handler reaches through `r.parent`.
//! - the body of an in-memory child is in the child's `r.out` once it ends
//!   (`in_memory_body`): the upstream moves it there from `u.out`, bounded by its
//!   `buffer_size`; other content passes the postpone filter into it, bounded by
//!   `SUBREQUEST_OUTPUT_BUFFER_SIZE` (nginx 1.22's default `subrequest_output_buffer_size`, one
//!   page; the directive itself is not in rginx's subset).
//! - a subrequest does not share the main request's body (nginx: `sr->request_body =
//!   r->request_body`): a child that proxies sends a GET without a body, unless its creator
//!   gives it a copy of a body read whole (`share_request_body`, for `mirror`).
//! - the main request keeps every child (`tree`) until it is freed, as nginx keeps them in its
//!   pool: a parent may read a finished child.

use std::collections::VecDeque;
use std::fmt::Write as _;

use super::cycle::{Cycle, RequestId};
use super::request::{self, finalize_request, http_handler, Request};
use super::request_alloc::{new_request, RequestInit};
use crate::core::buf::{chain_len, Chain};
use crate::core::step::HandlerRc;

/// Levels of nesting allowed below a main request. nginx: `NGX_HTTP_MAX_SUBREQUESTS`.
pub const MAX_SUBREQUESTS: u8 = 50;

/// References a main request may hold; nginx keeps 1000 of its 16-bit counter for other uses.
/// nginx: the `r->main->count >= 65535 - 1000` test of `ngx_http_subrequest()`.
pub const MAX_COUNT: u32 = 65535 - 1000;

/// How a child's output is used. nginx: `NGX_HTTP_SUBREQUEST_IN_MEMORY`, `_WAITED`,
/// `_BACKGROUND`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SubrequestFlags {
    /// The body is kept for the parent (`in_memory_body`), not sent to the client.
    pub in_memory: bool,
    /// The child is marked `done` even when it ends before its turn.
    pub waited: bool,
    /// The parent does not wait: no place in the output, output dropped (`mirror`).
    pub background: bool,
}

impl SubrequestFlags {
    /// The output goes to the client in its place among the parent's.
    pub const NONE: SubrequestFlags = SubrequestFlags { in_memory: false, waited: false, background: false };
    /// nginx: `NGX_HTTP_SUBREQUEST_IN_MEMORY`.
    pub const IN_MEMORY: SubrequestFlags = SubrequestFlags { in_memory: true, waited: false, background: false };
    /// nginx: `NGX_HTTP_SUBREQUEST_WAITED`.
    pub const WAITED: SubrequestFlags = SubrequestFlags { in_memory: false, waited: true, background: false };
    /// nginx: `NGX_HTTP_SUBREQUEST_BACKGROUND`.
    pub const BACKGROUND: SubrequestFlags = SubrequestFlags { in_memory: false, waited: false, background: true };
}

/// Runs when a child is finalized: `(cycle, the child, data, rc) -> rc`; what it returns
/// replaces the child's result. It may run twice for a child that ends before its turn (then
/// again with `Ok` when its held output has gone out), as in nginx.
/// nginx: `ngx_http_post_subrequest_pt`.
pub type PostSubrequestHandler = fn(&mut Cycle, RequestId, usize, HandlerRc) -> HandlerRc;

/// nginx: `ngx_http_post_subrequest_t`.
#[derive(Clone, Copy, Debug)]
pub struct PostSubrequest {
    /// nginx: `handler`.
    pub handler: PostSubrequestHandler,
    /// nginx: `data` (here a number; see the file header).
    pub data: usize,
}

/// One place in a request's output order. nginx: `ngx_http_postponed_request_t` (`request` or
/// `out`).
#[derive(Debug)]
pub enum Postponed {
    /// A child whose output comes here.
    Request(RequestId),
    /// Output of the request itself, held until the children before it are done.
    Out(Chain),
}

/// A request's part in a tree of subrequests (`Request::sr`, boxed: a request without
/// subrequests carries only `None`).
#[derive(Debug)]
pub struct SubState {
    /// Output held until its turn, in request order: this request's own buffers and its
    /// children's places. nginx: `r->postponed` (see `postpone_filter.rs`).
    pub postponed: VecDeque<Postponed>,
    /// On a main request: the request whose output may go out now (`None`: the main request
    /// itself). nginx: `c->data`.
    pub active: Option<RequestId>,
    /// On a main request: every subrequest under it, in creation order, freed with it.
    /// nginx: their memory in the main request's pool.
    pub tree: Vec<RequestId>,
    /// Levels of subrequests still allowed below this request. nginx: `r->subrequests`.
    pub subrequests: u8,
    /// Called when this subrequest is finalized. nginx: `r->post_subrequest`.
    pub post_subrequest: Option<PostSubrequest>,
    /// nginx: `r->subrequest_in_memory`, `r->waited`, `r->background`.
    pub flags: SubrequestFlags,
    /// The method name a subrequest's copy of the head does not say (`GET`).
    /// nginx: `sr->method_name = ngx_http_core_get_method`.
    pub method: Option<&'static [u8]>,
}

impl Default for SubState {
    /// A main request's state when it creates its first child.
    fn default() -> SubState {
        SubState {
            postponed: VecDeque::new(),
            active: None,
            tree: Vec::new(),
            subrequests: MAX_SUBREQUESTS + 1,
            post_subrequest: None,
            flags: SubrequestFlags::NONE,
            method: None,
        }
    }
}

/// Why no subrequest was created (the error-log line is written).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubrequestError {
    /// More than `MAX_SUBREQUESTS` levels: "subrequests cycle while processing".
    Cycle,
    /// The main request holds `MAX_COUNT` references: "request reference counter overflow".
    Overflow,
    /// The parent is gone.
    Gone,
}

/// Creates a child of `r` for `uri` (a decoded path) and `args`, and posts it: it runs once
/// the current handler returns. nginx: `ngx_http_subrequest()`.
pub fn subrequest(
    cy: &mut Cycle,
    r: RequestId,
    uri: &[u8],
    args: &[u8],
    ps: Option<PostSubrequest>,
    flags: SubrequestFlags,
) -> Result<RequestId, SubrequestError> {
    let Some(pr) = cy.requests.get(r) else { return Err(SubrequestError::Gone) };
    let main = pr.main;
    let quoted = String::from_utf8_lossy(uri);
    if pr.sr.as_ref().is_some_and(|s| s.subrequests == 0) {
        log_error(cy, r, log::Level::Error, &format!("subrequests cycle while processing \"{quoted}\""));
        return Err(SubrequestError::Cycle);
    }
    if cy.requests.get(main).is_none_or(|m| m.count >= MAX_COUNT) {
        let msg = format!("request reference counter overflow while processing \"{quoted}\"");
        crate::ngx_log!(Crit, "{}", context_line(cy, r, &msg));
        return Err(SubrequestError::Overflow);
    }
    let sr = new_subrequest(cy, r, uri, args, ps, flags).ok_or(SubrequestError::Gone)?;
    let srid = cy.requests.insert(sr);
    let Some(mr) = cy.requests.get_mut(main) else { return Err(SubrequestError::Gone) };
    mr.count += 1;
    let (count, active) = (mr.count, mr.active());
    mr.sub_mut().tree.push(srid);
    if !flags.background {
        let Some(pr) = cy.requests.get_mut(r) else { return Err(SubrequestError::Gone) };
        let first = !pr.has_postponed();
        pr.sub_mut().postponed.push_back(Postponed::Request(srid));
        if active == r && first {
            // Nothing of the parent waits: the child's output may go out as it comes.
            if let Some(mr) = cy.requests.get_mut(main) {
                mr.sub_mut().active = Some(srid);
            }
        }
    }
    let left = cy.requests.get(srid).and_then(|s| s.sr.as_ref()).map_or(0, |s| s.subrequests);
    let depth = MAX_SUBREQUESTS + 1 - left;
    super::trace::step(
        cy,
        srid,
        format_args!(
            "subrequest \"{}{}{}\" created: in_memory {} waited {} background {}, depth {depth}, count {count}",
            quoted,
            if args.is_empty() { "" } else { "?" },
            String::from_utf8_lossy(args),
            flags.in_memory,
            flags.waited,
            flags.background
        ),
    );
    request::post_request(cy, srid);
    Ok(srid)
}

/// The child's request object: the parent's server, head (a copy) and version; GET; no body.
fn new_subrequest(
    cy: &mut Cycle,
    r: RequestId,
    uri: &[u8],
    args: &[u8],
    ps: Option<PostSubrequest>,
    flags: SubrequestFlags,
) -> Option<Request> {
    let pr = cy.requests.get(r)?;
    let head = pr.header_in.mem.get(..pr.header_in.last)?;
    let mut header_in = cy.ev.bufs.get(head.len().max(1));
    header_in.append(head);
    let id = cy.requests.vacant_id();
    let (now, unix) = (cy.ev.times.msec, cy.ev.times.unix_ms);
    let pr = cy.requests.get(r)?;
    let init = RequestInit {
        id,
        connection: pr.connection,
        srv: pr.srv.clone(),
        addr: pr.addr,
        header_in,
        start_msec: now,
        start_unix_ms: unix,
        pipelined: false,
    };
    let mut sr = new_request(init);
    sr.main = pr.main;
    sr.parent = Some(r);
    sr.count = 0; // only the main request's count is used
    sr.head = pr.head.clone();
    sr.head_done = true;
    sr.reading = false;
    sr.http_version = pr.http_version;
    sr.headers_in = pr.headers_in.clone();
    // The child has no body of its own (file header).
    sr.headers_in.content_length_n = None;
    sr.headers_in.chunked = false;
    sr.headers_in.expect_continue = false;
    sr.uri = uri.to_vec();
    sr.args = args.to_vec();
    sr.internal = true;
    sr.read_event_handler = request::empty_handler;
    sr.write_event_handler = subrequest_handler;
    let left = pr.sr.as_ref().map_or(MAX_SUBREQUESTS + 1, |s| s.subrequests);
    sr.sr = Some(Box::new(SubState {
        subrequests: left.saturating_sub(1),
        post_subrequest: ps,
        flags,
        method: Some(b"GET"),
        ..SubState::default()
    }));
    Some(sr)
}

/// A child's first run, from the posted queue: location, phases, content.
/// nginx: `sr->write_event_handler = ngx_http_handler`.
fn subrequest_handler(cy: &mut Cycle, rid: RequestId) {
    if let Some(r) = cy.requests.get(rid) {
        let uri = String::from_utf8_lossy(&r.uri);
        super::trace::step(cy, rid, format_args!("subrequest \"{uri}\" runs"));
    }
    http_handler(cy, rid);
}

/// Takes a reference on the main request: for a handler that returns `Done` and answers
/// later, when a child wakes it. nginx: `r->main->count++`.
pub fn hold(cy: &mut Cycle, r: RequestId) {
    let Some(main) = cy.requests.get(r).map(|r| r.main) else { return };
    if let Some(mr) = cy.requests.get_mut(main) {
        mr.count += 1;
    }
}

/// The body an in-memory child kept (empty if none). nginx: what the seed reads from
/// `r->upstream->buffer` (nginx 1.22 also keeps it in `r->out`).
pub fn in_memory_body(cy: &Cycle, sr: RequestId) -> Vec<u8> {
    let Some(r) = cy.requests.get(sr) else { return Vec::new() };
    let mut v = Vec::with_capacity(chain_len(&r.out) as usize);
    for b in r.out.iter().filter(|b| b.file.is_none()) {
        v.extend_from_slice(b.data());
    }
    v
}

/// Gives child `sr` its parent's request body, read whole (`body::read_client_request_body`
/// done): memory buffers copied, temp-file regions shared (the unlinked file stays open while
/// a buffer points into it). Returns false, leaving the child without a body, when the parent
/// has no complete body. For `mirror_request_body on`.
/// nginx: `sr->request_body = r->request_body` in `ngx_http_subrequest()` (one shared body).
pub fn share_request_body(cy: &mut Cycle, sr: RequestId) -> bool {
    let Some(parent) = cy.requests.get(sr).and_then(|s| s.parent) else { return false };
    let Some(pr) = cy.requests.get(parent) else { return false };
    let Some(rb) = pr.request_body.as_ref().filter(|rb| rb.done && !rb.no_buffering && !rb.reading) else {
        return false;
    };
    let framed = pr.headers_in.content_length_n.is_some() || pr.headers_in.chunked;
    let received = rb.received;
    let bufs: Chain = rb
        .bufs
        .iter()
        .map(|b| match &b.file {
            Some(f) => crate::core::buf::Buf::from_file(f.file.clone(), f.pos, f.last),
            None => crate::core::buf::Buf::from_vec(b.data().to_vec()),
        })
        .collect();
    let Some(s) = cy.requests.get_mut(sr) else { return false };
    let mut body = super::body::RequestBody::new(s, request::empty_handler);
    body.bufs = bufs;
    body.received = received;
    body.rest = 0;
    body.chunked = None;
    body.done = true;
    s.request_body = Some(body);
    if framed {
        // The upstream's `Content-Length` is the body's length, as for the parent.
        s.headers_in.content_length_n = Some(received);
    }
    true
}

/// Calls the child's `post_subrequest` handler. nginx: the seed's
/// `rc = r->post_subrequest->handler(r, r->post_subrequest->data, rc)`.
pub(super) fn post_subrequest(cy: &mut Cycle, rid: RequestId, ps: PostSubrequest, rc: HandlerRc) -> HandlerRc {
    super::trace::step(cy, rid, format_args!("post_subrequest: rc {rc:?}"));
    let rc2 = (ps.handler)(cy, rid, ps.data, rc);
    if rc2 != rc {
        super::trace::step(cy, rid, format_args!("post_subrequest returned {rc2:?}"));
    }
    rc2
}

/// A child is done producing output: give back its reference and wake its parent — at once if
/// its output went out (it was the active request), else once its turn comes.
/// nginx: the `r != r->main` branch of `ngx_http_finalize_request()`.
pub(super) fn finalize_subrequest(cy: &mut Cycle, rid: RequestId) {
    let Some(r) = cy.requests.get_mut(rid) else { return };
    let (main, Some(parent)) = (r.main, r.parent) else { return };
    let flags = r.sr.as_ref().map_or(SubrequestFlags::NONE, |s| s.flags);
    if flags.background {
        r.done = true;
        super::trace::step(cy, rid, format_args!("background subrequest done"));
        return request::finalize_connection(cy, rid);
    }
    if r.has_postponed() {
        // Its own output still waits (for a grandchild, or for its turn): `writer` sends it
        // when the turn comes, then finalizes again.
        super::trace::step(cy, rid, format_args!("subrequest finished before its turn, output held"));
        return request::set_write_handler(cy, rid);
    }
    let Some(mr) = cy.requests.get_mut(main) else { return };
    if mr.active() == rid {
        debug_assert!(mr.count > 0, "r->main->count underflow");
        mr.count = mr.count.saturating_sub(1);
        mr.sub_mut().active = (parent != main).then_some(parent);
        let count = mr.count;
        if let Some(r) = cy.requests.get_mut(rid) {
            r.done = true;
        }
        if let Some(pr) = cy.requests.get_mut(parent) {
            let list = &mut pr.sub_mut().postponed;
            if matches!(list.front(), Some(Postponed::Request(s)) if *s == rid) {
                list.pop_front();
            }
        }
        super::trace::step(cy, rid, format_args!("subrequest done, wake parent: count {count}"));
    } else if let Some(r) = cy.requests.get_mut(rid) {
        // Finished before its turn: the postpone filter posts it when the turn comes.
        r.write_event_handler = request_finalizer;
        if flags.waited {
            r.done = true;
        }
        super::trace::step(cy, rid, format_args!("subrequest finished before its turn"));
    }
    request::post_request(cy, parent);
}

/// A child that finished before its turn, now active. nginx: `ngx_http_request_finalizer()`.
fn request_finalizer(cy: &mut Cycle, rid: RequestId) {
    finalize_request(cy, rid, HandlerRc::Ok);
}

/// Runs the cleanups of every child of `main` (upstreams still running, ...), latest first.
/// nginx: `r->main->cleanup`, where `ngx_http_cleanup_add()` puts every request's cleanups.
pub(super) fn run_tree_cleanups(cy: &mut Cycle, main: RequestId) {
    let tree = cy.requests.get(main).and_then(|m| m.sr.as_ref()).map(|s| s.tree.clone()).unwrap_or_default();
    for &sr in tree.iter().rev() {
        request::run_cleanup(cy, sr);
    }
}

/// Frees every child of `main` with it: cleanups left, pool cleanups (upstream contexts, temp
/// files), held output, slots. nginx: `ngx_destroy_pool(r->main->pool)`.
pub(super) fn free_tree(cy: &mut Cycle, main: RequestId) {
    let tree = match cy.requests.get_mut(main).and_then(|m| m.sr.as_mut()) {
        Some(s) if !s.tree.is_empty() => std::mem::take(&mut s.tree),
        _ => return,
    };
    for &sr in tree.iter().rev() {
        request::run_cleanup(cy, sr);
        let pool = cy.requests.get_mut(sr).map(|r| std::mem::take(&mut r.pool_cleanup)).unwrap_or_default();
        for f in pool {
            f(cy, sr);
        }
        if let Some(mut r) = cy.requests.remove(sr) {
            cy.ev.bufs.put_chain(&mut r.out);
            r.headers_out.release(&mut cy.ev.bufs);
            if let Some(s) = r.sr.as_mut() {
                super::postpone_filter::free_postponed(&mut cy.ev.bufs, &mut s.postponed);
            }
            if let Some(b) = r.request_body.take() {
                super::body::free_body(cy, *b);
            }
            cy.ev.bufs.put(r.header_in);
        }
    }
}

/// Logs `msg` at `level` with nginx's request context, naming the subrequest.
fn log_error(cy: &Cycle, r: RequestId, level: log::Level, msg: &str) {
    log::log!(level, "{}", context_line(cy, r, msg));
}

/// `*N msg, client: A, server: S, request: "LINE", subrequest: "URI", host: "H"`.
/// nginx: `ngx_http_log_error()` + `ngx_http_log_error_handler()`.
pub fn context_line(cy: &Cycle, rid: RequestId, msg: &str) -> String {
    let mut line = String::new();
    let Some(r) = cy.requests.get(rid) else { return msg.to_string() };
    let Some(c) = cy.ev.conns.get(r.connection) else { return msg.to_string() };
    let _ = write!(line, "*{} {msg}", c.number);
    if let Some(p) = c.peer {
        let _ = write!(line, ", client: {}", p.ip());
    }
    let server = r.srv.core.server_names.first().map(String::as_str).unwrap_or("");
    let _ = write!(line, ", server: {server}, request: \"{}\"", String::from_utf8_lossy(r.request_line()));
    if r.main != rid {
        let _ = write!(line, ", subrequest: \"{}\"", String::from_utf8_lossy(&r.uri));
    }
    if let Some(h) = r.header("host") {
        let _ = write!(line, ", host: \"{}\"", String::from_utf8_lossy(h));
    }
    line
}
