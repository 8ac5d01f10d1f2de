//! Reading the upstream response header until the module says it is complete, then turning
//! it into the client's response header.
//!
//! nginx: `ngx_http_upstream_process_header()`, `ngx_http_upstream_test_next()`,
//! `ngx_http_upstream_process_headers()`, the `ngx_http_upstream_headers_in[]` copy/hide rules
//! (src/http/ngx_http_upstream.c).

use super::conf::FT_NON_IDEMPOTENT;
use super::{finalize, next, response, u_mut, with_module, Ft, Rewrite, UpstreamError};
use crate::core::step::{HandlerRc, Step};
use crate::event;
use crate::event::connection::Ev;
use crate::event::io::{self, Recv};
use crate::http::cycle::Cycle;
use crate::http::cycle::RequestId;

/// Reads into `u.buffer` and asks the module to parse, until it stops saying `Again`.
/// nginx: `ngx_http_upstream_process_header()`.
pub fn process_header(cy: &mut Cycle, rid: RequestId) {
    let now = cy.ev.times.msec;
    let Some(u) = u_mut(cy, rid) else { return };
    let Some(cid) = u.peer.connection else { return };
    let request_sent = u.request_sent;
    if cy.ev.conns.get(cid).is_some_and(|c| c.read.timedout) {
        return next(cy, rid, Ft::Timeout);
    }
    if !request_sent {
        // The response arrived before we finished sending (or the connect failed): nginx
        // checks the connection here too.
        if let Some(c) = cy.ev.conns.get_mut(cid) {
            if let Err(e) = crate::event::connect::test_connect(c) {
                super::log_error(cy, rid, &format!("connect() failed ({})", crate::core::log::os_err(&e)));
                return next(cy, rid, Ft::Error);
            }
        }
    }
    loop {
        let Cycle { requests, http, ev, .. } = &mut *cy;
        let Some(ctx) = requests.get(rid).and_then(|r| super::ctx_mut(http, r)) else {
            return;
        };
        let conns = &mut ev.conns;
        let u = &mut ctx.u;
        let Some(c) = conns.get_mut(cid) else { return };
        if u.buffer.is_full() {
            u.buffer.compact();
        }
        if u.buffer.is_full() {
            super::log_error(cy, rid, "upstream sent too big header");
            return next(cy, rid, Ft::InvalidHeader);
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
                return;
            }
            Recv::Eof => {
                super::log_error(cy, rid, "upstream prematurely closed connection");
                return next(cy, rid, Ft::Error);
            }
            Recv::Error(e) => {
                super::log_error(cy, rid, &format!("recv() failed ({})", crate::core::log::os_err(&e)));
                return next(cy, rid, Ft::Error);
            }
        }
        match with_module(cy, rid, |m, cy| m.process_header(cy, rid)) {
            Some(Ok(Step::Again)) => continue, // read more
            Some(Ok(Step::Done(()))) => break, // here: header complete
            // The module logged what was wrong (nginx's framework does not log this either).
            Some(Err(UpstreamError::InvalidHeader)) => return next(cy, rid, Ft::InvalidHeader),
            Some(Err(e)) => {
                log::error!("upstream process_header failed: {e:?}");
                return finalize(cy, rid, HandlerRc::Status(500));
            }
            None => return,
        }
    }
    let Some(r) = cy.requests.get(rid) else { return };
    let (idempotent, streamed) = (super::is_idempotent(r), super::no_buffering(r));
    let Some(u) = u_mut(cy, rid) else { return };
    u.state.header_time = Some(now.saturating_sub(u.state.start));
    u.state.status = u.headers_in.status_n;
    if let Some(ft) = test_next(u, idempotent, streamed, now) {
        return next(cy, rid, ft);
    }
    if let Err(rc) = process_headers(cy, rid) {
        return finalize(cy, rid, rc);
    }
    response::send_response(cy, rid);
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

/// Headers the framework itself never passes (hop-by-hop or recomputed).
/// nginx: the `ngx_http_upstream_headers_in[]` entries with `copy_header` = ignore.
fn framework_hidden(name: &str) -> bool {
    [
        "connection",
        "transfer-encoding",
        "keep-alive",
        "content-length",
        "content-type",
        "location",
        "refresh",
        "last-modified",
    ]
    .iter()
    .any(|h| name.eq_ignore_ascii_case(h))
}

/// Copies the upstream header into `r.headers_out`, applying `hide_headers` and the module's
/// `rewrite_redirect`/`rewrite_cookie`. nginx: `ngx_http_upstream_process_headers()`.
pub fn process_headers(cy: &mut Cycle, rid: RequestId) -> Result<(), HandlerRc> {
    let Some(u) = u_mut(cy, rid) else {
        return Err(HandlerRc::Error);
    };
    // Walk the headers by index (no copy of the whole set); names compare case-insensitively
    // in place, without lowercased copies.
    let conf = u.conf.clone();
    let hi = &u.headers_in;
    let chunked = hi.chunked;
    let mut out = crate::http::request::HeadersOut {
        status: hi.status_n,
        status_line: (!hi.status_line.is_empty()).then(|| hi.status_line.clone()),
        content_length_n: if chunked { None } else { hi.content_length_n },
        ..Default::default()
    };
    out.headers.reserve(hi.headers.len());
    let n = hi.headers.len();
    for i in 0..n {
        let Some(u) = u_mut(cy, rid) else {
            return Err(HandlerRc::Error);
        };
        let (name, value) = &u.headers_in.headers[i];
        let is = |h: &str| name.eq_ignore_ascii_case(h);
        if conf.hide_headers.iter().any(|h| is(h)) {
            continue;
        }
        if is("content-type") {
            out.content_type = Some(value.clone());
        } else if is("last-modified") {
            out.last_modified = Some(value.clone());
        } else if is("location") {
            // Only a rewritten Location becomes `headers_out.location` (which the header
            // filter makes absolute); one left alone passes exactly as sent.
            // nginx: `ngx_http_upstream_rewrite_location()`.
            let (name, value) = (name.clone(), value.clone());
            let mut v = value.clone();
            match with_module(cy, rid, |m, cy| m.rewrite_redirect(cy, rid, &mut v)) {
                Some(Rewrite::Done) => out.location = Some(v),
                _ => out.headers.push((name, value)),
            }
        } else if is("refresh") {
            // Only the URL after "url=" is the module's to rewrite.
            // nginx: `ngx_http_upstream_rewrite_refresh()`.
            let (name, value) = (name.clone(), value.clone());
            let at = value.to_ascii_lowercase().find("url=").map(|i| i + 4);
            let mut v = value.clone();
            if let Some(at) = at {
                let mut url = value[at..].to_string();
                if let Some(Rewrite::Done) = with_module(cy, rid, |m, cy| m.rewrite_redirect(cy, rid, &mut url)) {
                    v = format!("{}{url}", &value[..at]);
                }
            }
            out.headers.push((name, v));
        } else if is("set-cookie") {
            let name = name.clone();
            let mut v = value.clone();
            let _: Option<Rewrite> = with_module(cy, rid, |m, cy| m.rewrite_cookie(cy, rid, &mut v));
            out.headers.push((name, v));
        } else if is("server") || is("date") {
            out.no_server |= is("server");
            out.no_date |= is("date");
            out.headers.push((name.clone(), value.clone()));
        } else if !framework_hidden(name) {
            out.headers.push((name.clone(), value.clone()));
        }
    }
    let Some(r) = cy.requests.get_mut(rid) else {
        return Err(HandlerRc::Error);
    };
    r.headers_out = out;
    Ok(())
}
