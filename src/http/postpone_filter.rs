//! Request order for the output of a request and its subrequests: what a request writes goes
//! to the client only while it is the active request (nginx's `c->data`); otherwise it is held
//! in its `sr.postponed` list until its turn, whatever order the children finish in.
//!
//! nginx: src/http/ngx_http_postpone_filter_module.c (`ngx_http_postpone_filter()`,
//! `ngx_http_postpone_filter_add()`, `ngx_http_postpone_filter_in_memory()`).
//!
//! The turn passes like this: a parent's `sr.postponed` list holds, in order, its own held
//! buffers (`Postponed::Out`) and its children (`Postponed::Request`). When the active parent
//! writes, the filter sends the held buffers at the front of the list; on reaching a child it
//! makes the child active and posts it, and stops. The child's output (held or new) then goes
//! out; when the child ends, it makes its parent active again and posts it
//! (`subrequest::finalize_subrequest`), and the parent's next write continues down the list.
//!
//! Memory: output written directly by a module (`return`, error pages, a module's own text)
//! is held whole; its size is the module's (a `return` text is in the configuration). Output
//! of a child's upstream counts against that upstream's own bound while it is held
//! (`held_len`, read by `upstream::response`): at most `busy_buffers_size` (buffering on) or
//! `buffer_size` (off) is held; past that the upstream keeps its body in `bufs` and its temp
//! file, then stops reading (back-pressure) until the child's turn. An in-memory child's
//! output is collected in its `r.out`, at most `SUBREQUEST_OUTPUT_BUFFER_SIZE` bytes; past that
//! the child fails with nginx's "too big subrequest response".
//!
//! Differs from nginx:
//! - nginx's modules set `last_buf` only for the main request (`r == r->main`); rginx's modules
//!   set it for whichever request they serve, so the filter turns a subrequest's `last_buf`
//!   into `flush`: the child's end does not end the client's response.
//! - a background subrequest's output is dropped at once (nginx holds it in the subrequest's
//!   own list until the main request is freed).

use super::cycle::{Cycle, RequestId};
use super::request::{self, Postponed, Request};
use super::{Error, FilterRc, Next};
use crate::core::buf::{chain_held, chain_len, Buf, BufPool, Chain};
use crate::core::step::Step;

/// The most an in-memory subrequest's output may hold. nginx: the default of
/// `subrequest_output_buffer_size` (4k|8k: one page).
pub const SUBREQUEST_OUTPUT_BUFFER_SIZE: usize = 4096;

/// nginx: `ngx_http_postpone_filter()`.
pub fn postpone_filter(cy: &mut Cycle, rid: RequestId, input: &mut Chain, next: Next) -> FilterRc {
    let Some(r) = cy.requests.get_mut(rid) else { return Err(Error) };
    let main = r.main;
    let Some(sr) = r.sr.as_ref() else {
        return next.body(cy, rid, input); // a request without subrequests
    };
    if main == rid {
        if sr.active.is_none() && sr.postponed.is_empty() {
            return next.body(cy, rid, input);
        }
    } else {
        if sr.flags.in_memory {
            return in_memory(cy, rid, input);
        }
        if sr.flags.background {
            cy.ev.bufs.put_chain(input);
            return Ok(Step::Done(()));
        }
        for b in input.iter_mut().filter(|b| b.last_buf) {
            b.last_buf = false;
            b.flush = true;
        }
    }
    let active = cy.requests.get(main).is_some_and(|m| m.active() == rid);
    let Some(r) = cy.requests.get_mut(rid) else { return Err(Error) };
    if !active {
        if !input.is_empty() {
            add(r, input);
            super::trace::step(
                cy,
                rid,
                format_args!("postpone: output held ({} bytes of buffers)", held_len(r_ref(cy, rid))),
            );
        }
        return Ok(Step::Done(()));
    }
    if !r.has_postponed() {
        return next.body(cy, main, input);
    }
    if !input.is_empty() {
        add(r, input);
    }
    release(cy, rid, main, next)
}

fn r_ref(cy: &Cycle, rid: RequestId) -> Option<&Request> {
    cy.requests.get(rid)
}

/// Sends the held buffers at the front of the active `rid`'s list, up to its next child, which
/// becomes active and is posted. nginx: the `do { ... } while (r->postponed)` loop.
fn release(cy: &mut Cycle, rid: RequestId, main: RequestId, next: Next) -> FilterRc {
    let mut rc = Ok(Step::Done(()));
    loop {
        let front = cy.requests.get_mut(rid).and_then(|r| r.sr.as_mut()).and_then(|s| s.postponed.pop_front());
        let Some(front) = front else {
            return rc;
        };
        match front {
            Postponed::Request(sr) => {
                if let Some(mr) = cy.requests.get_mut(main) {
                    mr.sub_mut().active = Some(sr);
                }
                super::trace::step(cy, sr, format_args!("postpone: subrequest's turn, posted"));
                request::post_request(cy, sr);
                return rc;
            }
            Postponed::Out(mut out) => {
                let n = chain_len(&out);
                super::trace::step(cy, rid, format_args!("postpone: held output released ({n} bytes)"));
                let step = next.body(cy, main, &mut out);
                cy.ev.bufs.put_chain(&mut out);
                rc = Ok(step?);
            }
        }
    }
}

/// Appends `input` to the last held output, or as a new place at the end of the list.
/// nginx: `ngx_http_postpone_filter_add()`.
fn add(r: &mut Request, input: &mut Chain) {
    let list = &mut r.sub_mut().postponed;
    if let Some(Postponed::Out(out)) = list.back_mut() {
        out.append(input);
        return;
    }
    list.push_back(Postponed::Out(std::mem::take(input)));
}

/// An in-memory subrequest's output goes into its `r.out`, one buffer of at most
/// `SUBREQUEST_OUTPUT_BUFFER_SIZE` bytes. nginx: `ngx_http_postpone_filter_in_memory()`.
fn in_memory(cy: &mut Cycle, rid: RequestId, input: &mut Chain) -> FilterRc {
    let Cycle { requests, ev, .. } = cy;
    let Some(r) = requests.get_mut(rid) else { return Err(Error) };
    let held: u64 = chain_len(&r.out);
    let mut room = (SUBREQUEST_OUTPUT_BUFFER_SIZE as u64).saturating_sub(held);
    while let Some(mut b) = input.pop_front() {
        let n = b.len();
        if n > room {
            ev.bufs.put(b);
            ev.bufs.put_chain(input);
            let msg = super::subrequest::context_line(cy, rid, "too big subrequest response");
            log::error!("{msg}");
            return Err(Error);
        }
        room -= n;
        if n == 0 {
            ev.bufs.put(b);
            continue;
        }
        if let Some(f) = b.file.take() {
            // Read a file region into memory (rare: a child serving a temp file in memory).
            let mut mem = vec![0u8; n as usize];
            let got = Buf::from_file(f.file, f.pos, f.last).read_file(&mut mem).map_err(|_| Error)?;
            mem.truncate(got);
            b = Buf::from_vec(mem);
        }
        b.last_buf = false;
        b.flush = false;
        r.out.push_back(b);
    }
    Ok(Step::Done(()))
}

/// Memory the output `r` holds until its turn takes (upstreams count it against their
/// bounds): whole buffers, as `Buf::held` counts them, since a buffer handed down the chain
/// keeps all its memory while any byte of it waits.
#[inline]
pub fn held_len(r: Option<&Request>) -> u64 {
    let Some(s) = r.and_then(|r| r.sr.as_ref()) else { return 0 };
    s.postponed
        .iter()
        .map(|p| match p {
            Postponed::Out(c) => chain_held(c),
            Postponed::Request(_) => 0,
        })
        .sum()
}

/// Gives held buffers back to the pool (a request being freed).
pub fn free_postponed(bufs: &mut BufPool, list: &mut std::collections::VecDeque<Postponed>) {
    for p in list.iter_mut() {
        if let Postponed::Out(c) = p {
            bufs.put_chain(c);
        }
    }
    list.clear();
}

/// The module. nginx: `ngx_http_postpone_filter_module`.
pub struct PostponeFilterModule;

impl super::HttpModule for PostponeFilterModule {
    fn name(&self) -> &'static str {
        "ngx_http_postpone_filter_module"
    }
    fn postconfiguration(&self, http: &mut super::HttpConf) -> Result<(), crate::conf::ConfError> {
        http.filters.body.insert(0, postpone_filter);
        Ok(())
    }
}
