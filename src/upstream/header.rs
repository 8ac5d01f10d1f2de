//! Reading the upstream response header until the module says it is complete, then turning
//! it into the client's response header.
//!
//! nginx: `ngx_http_upstream_process_header()`, `ngx_http_upstream_test_next()`,
//! `ngx_http_upstream_process_headers()`, the `ngx_http_upstream_headers_in[]` copy/hide rules
//! (src/http/ngx_http_upstream.c).

use super::conf::FT_NON_IDEMPOTENT;
use super::headers_in::{self, CopyHeader};
use super::{callback, finalize, next, response, Ft, Rewrite, UpstreamCx, UpstreamError, UpstreamHandler};
use crate::core::step::{HandlerRc, Step};
use crate::event;
use crate::event::connection::Ev;
use crate::event::io::{self, Recv};
use crate::http::cycle::Cycle;
use crate::http::cycle::RequestId;
use crate::http::special_response::status_line;
use crate::http::trace;

/// Reads into `u.buffer` and asks the module to parse, until it stops saying `Again`.
/// nginx: `ngx_http_upstream_process_header()`.
pub fn process_header(cy: &mut Cycle, rid: RequestId) {
    let now = cy.ev.times.msec;
    let mut first = true;
    loop {
        match read_header(cy, rid, first, now) {
            Ok(Step::Again) => first = false, // read more
            Ok(Step::Done(())) => break,      // here: header complete and copied
            Err(Exit::Wait) => return,        // the read timer runs
            Err(Exit::Next(ft)) => return next(cy, rid, ft),
            Err(Exit::Finalize(rc)) => return finalize(cy, rid, rc),
        }
    }
    response::send_response(cy, rid)
}

/// How a step of `process_header` ends when it does not go on. nginx: the `return`s of
/// `ngx_http_upstream_process_header()`.
enum Exit {
    /// Wait for the next read event (the timer is armed), or the request is gone.
    Wait,
    /// `ngx_http_upstream_next(ft)`.
    Next(Ft),
    /// `ngx_http_upstream_finalize_request(rc)`.
    Finalize(HandlerRc),
}

/// One read into `u.buffer`, then the module's `process_header` on what is there; once it
/// says the header is complete, `header_done`. The first read of an event checks the
/// connection first. One look-up of the request and its context for all of it.
fn read_header(cy: &mut Cycle, rid: RequestId, first: bool, now: u64) -> Result<Step, Exit> {
    let Cycle { requests, http, ev, .. } = &mut *cy;
    let r = requests.get_mut(rid).ok_or(Exit::Wait)?;
    let ctx = super::ctx_mut(http, r).ok_or(Exit::Wait)?;
    let u = &mut ctx.u;
    let cid = u.peer.connection.ok_or(Exit::Wait)?;
    let c = ev.conns.get_mut(cid).ok_or(Exit::Wait)?;
    if first && u.request_sent {
        // Set here, as at the top of nginx's `ngx_http_upstream_process_header()`: until the
        // first read event, a line about the request says "while sending request to upstream"
        // (and before the request went out, a failed connect "while connecting to upstream").
        c.action = "reading response header from upstream";
    }
    if first && c.read.timedout {
        return Err(Exit::Next(Ft::Timeout));
    }
    if first && !u.request_sent {
        // The response arrived before we finished sending (or the connect failed): nginx
        // checks the connection here too.
        if let Err(e) = crate::event::connect::test_connect(c) {
            super::log_error(cy, rid, &format!("connect() failed ({})", crate::core::log::os_err(&e)));
            return Err(Exit::Next(Ft::Error));
        }
    }
    if u.buffer.is_full() {
        u.buffer.compact();
    }
    if u.buffer.is_full() {
        super::log_error(cy, rid, "upstream sent too big header");
        return Err(Exit::Next(Ft::InvalidHeader));
    }
    match io::recv(c, u.buffer.free_space()) {
        Recv::Data(n) => {
            u.buffer.last += n;
            u.state.bytes_received += n as u64;
        }
        Recv::Again => {
            let timeout = u.conf.read_timeout;
            if !event::timer_set(&cy.ev, Ev { c: cid, write: false }) {
                event::add_timer(&mut cy.ev, Ev { c: cid, write: false }, timeout);
            }
            return Err(Exit::Wait);
        }
        Recv::Eof => {
            super::log_error(cy, rid, "upstream prematurely closed connection");
            return Err(Exit::Next(Ft::Error));
        }
        Recv::Error(e) => {
            super::log_error(cy, rid, &format!("recv() failed ({})", crate::core::log::os_err(&e)));
            return Err(Exit::Next(Ft::Error));
        }
    }
    let received = u.state.bytes_received;
    // The module parses in the same borrow of the request and its context, and the copy
    // follows in it once the header is in.
    let Some((rc, done)) = super::call(r, ctx, ev, |m, cx| {
        let rc = m.process_header(cx);
        let done = matches!(rc, Ok(Step::Done(()))).then(|| header_done(m, cx, now));
        (rc, done)
    }) else {
        return Err(Exit::Wait); // a stale id
    };
    trace::step(cy, rid, format_args!("upstream process_header: {} ({received} bytes read)", HeaderRc(&rc)));
    match rc {
        Ok(Step::Done(())) => match done {
            Some(Err(ft)) => Err(Exit::Next(ft)),
            _ => Ok(Step::Done(())),
        },
        Ok(step) => Ok(step),
        // The module logged what was wrong (nginx's framework does not log this either).
        Err(UpstreamError::InvalidHeader) => Err(Exit::Next(Ft::InvalidHeader)),
        Err(e) => {
            log::error!("upstream process_header failed: {e:?}");
            Err(Exit::Finalize(HandlerRc::Status(500)))
        }
    }
}

/// The header is in: the try's accounting, `test_next`, then the copy into `r.headers_out`;
/// `Err` names the failure that asks for the next peer.
/// nginx: the end of `ngx_http_upstream_process_header()`, `ngx_http_upstream_process_headers()`.
fn header_done(m: &mut dyn UpstreamHandler, cx: &mut UpstreamCx<'_>, now: u64) -> Result<(), Ft> {
    let (idempotent, streamed) = (super::is_idempotent(cx.r), super::no_buffering(cx.r));
    let u = &mut *cx.u;
    u.state.header_time = Some(now.saturating_sub(u.state.start));
    u.state.status = u.headers_in.status_n;
    if let Some(ft) = test_next(u, idempotent, streamed, now) {
        return Err(ft);
    }
    copy_headers(m, cx);
    Ok(())
}

/// What the module's `process_header` said, for the trace line; formatted only when the
/// line is written.
struct HeaderRc<'a>(&'a Result<Step, UpstreamError>);

impl std::fmt::Display for HeaderRc<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Ok(Step::Again) => f.write_str("again"),
            Ok(Step::Done(())) => f.write_str("done"),
            Err(e) => write!(f, "error ({e:?})"),
        }
    }
}

/// Whether the status asks for another peer (`proxy_next_upstream http_502 ...`), only when
/// one is left and the request may be sent again (a non-idempotent one only with
/// `non_idempotent`, a streamed body never). nginx: `ngx_http_upstream_test_next()`.
fn test_next(u: &super::Upstream, idempotent: bool, streamed: bool, now: u64) -> Option<Ft> {
    let ft = match u.headers_in.status_n {
        500 => Ft::Http500,
        502 => Ft::Http502,
        503 => Ft::Http503,
        504 => Ft::Http504,
        403 => Ft::Http403,
        404 => Ft::Http404,
        429 => Ft::Http429,
        _ => return None,
    };
    let mask = if u.request_sent && !idempotent { ft.bit() | FT_NON_IDEMPOTENT } else { ft.bit() };
    let timeout = u.conf.next_upstream_timeout;
    let timed_out = timeout > 0 && now.saturating_sub(u.start_msec) >= timeout;
    let retry = u.peer.tries > 1 && u.conf.next_upstream & mask == mask && !(u.request_sent && streamed) && !timed_out;
    retry.then_some(ft)
}

/// Copies the upstream header into `r.headers_out`, applying `hide_headers` and the module's
/// `rewrite_redirect`/`rewrite_cookie`. nginx: `ngx_http_upstream_process_headers()`.
pub fn process_headers(cy: &mut Cycle, rid: RequestId) -> Result<(), HandlerRc> {
    callback(cy, rid, copy_headers).ok_or(HandlerRc::Error)
}

/// The body of `process_headers`, run with the module beside its context (the rewrite
/// callbacks read it). Walks the headers in place and copies their bytes, untouched, into
/// `r.headers_out`'s own buffer (reused: it came from the worker's pool with the request);
/// what each known line becomes is its entry's `copy` in the table (`headers_in.rs`), as
/// nginx calls `hh->copy_handler`. Names are compared case-insensitively, without copies.
fn copy_headers(m: &mut dyn UpstreamHandler, cx: &mut UpstreamCx<'_>) {
    // Filled in place: the lines are read from `cx.u` and written to `cx.r`, and a rewrite
    // callback borrows `cx` whole only between two writes.
    cx.r.headers_out.reset();
    let hi = &cx.u.headers_in;
    cx.r.headers_out.status = hi.status_n;
    // Most upstreams send nginx's own line for the status ("200 OK"), which the header
    // filter writes when no line is set: the same bytes, without copying the line here and
    // scanning it there. Any other line is kept as sent (nginx: `status_line` copied).
    let line = hi.status_line();
    if !line.is_empty() {
        if status_line(hi.status_n).is_none_or(|own| own.as_bytes() != line) {
            cx.r.headers_out.set_status_line(line);
        } else {
            cx.r.headers_out.set_standard_status_line();
        }
    }
    cx.r.headers_out.content_length_n = if hi.chunked { None } else { hi.content_length_n };
    // A value a module may rewrite is copied here first; allocated only when one comes.
    let mut scratch = Vec::new();
    let hide = &cx.u.conf.hide_headers;
    for (name, value, kind) in hi.iter_kinds() {
        let found = headers_in::index_by_kind(kind, name);
        if hide.hides(name, found) {
            continue;
        }
        let hh = found.and_then(|i| headers_in::UPSTREAM_HEADERS_IN.get(i));
        match hh.map_or(CopyHeader::HeaderLine, |hh| hh.copy) {
            CopyHeader::Ignore => {}
            CopyHeader::ContentType => cx.r.headers_out.set_content_type(value),
            CopyHeader::LastModified => cx.r.headers_out.push_last_modified(name, value),
            CopyHeader::RewriteLocation => {
                // Only a rewritten Location becomes `r.headers_out.location` (which the header
                // filter makes absolute); one left alone passes exactly as sent.
                // nginx: `ngx_http_upstream_rewrite_location()`.
                scratch.clear();
                scratch.extend_from_slice(value);
                match m.rewrite_redirect(cx, &mut scratch) {
                    Rewrite::Done => cx.r.headers_out.set_location(&scratch),
                    Rewrite::Declined => cx.r.headers_out.push(name, value),
                }
            }
            CopyHeader::RewriteRefresh => {
                rewrite_refresh(m, cx, value, &mut scratch);
                cx.r.headers_out.push(name, &scratch);
            }
            CopyHeader::RewriteSetCookie => {
                scratch.clear();
                scratch.extend_from_slice(value);
                let _: Rewrite = m.rewrite_cookie(cx, &mut scratch);
                cx.r.headers_out.push(name, &scratch);
            }
            CopyHeader::HeaderLine => {
                // nginx: `headers_out.server`/`.date` set: the header filter adds none. (A
                // line not in the table is neither: `find_index` knows every spelling.)
                cx.r.headers_out.no_server |= found == Some(headers_in::SERVER);
                cx.r.headers_out.no_date |= found == Some(headers_in::DATE);
                cx.r.headers_out.push(name, value);
            }
        }
    }
}

/// Only the URL after "url=" of a `Refresh` is the module's to rewrite; `out` gets the value
/// to send. nginx: `ngx_http_upstream_rewrite_refresh()`.
fn rewrite_refresh(m: &mut dyn UpstreamHandler, cx: &UpstreamCx<'_>, value: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let Some(at) = value.windows(4).position(|w| w.eq_ignore_ascii_case(b"url=")).map(|i| i + 4) else {
        out.extend_from_slice(value);
        return;
    };
    out.extend_from_slice(&value[at..]);
    match m.rewrite_redirect(cx, out) {
        Rewrite::Done => {
            out.splice(0..0, value[..at].iter().copied());
        }
        Rewrite::Declined => {
            out.clear();
            out.extend_from_slice(value);
        }
    }
}
