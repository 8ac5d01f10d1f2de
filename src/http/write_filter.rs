//! The last body filter: queue on the request's output chain and write to the socket.
//!
//! nginx: src/http/ngx_http_write_filter_module.c (`ngx_http_write_filter`).
//!
//! Small output waits (nginx's `postpone_output 1460`) unless it is the last buffer or a flush,
//! so header and body usually leave in one `writev`.

use super::{Error, FilterRc, Next};
use crate::core::buf::Chain;
use crate::core::step::Step;
use crate::event;
use crate::event::connection::Ev;
use crate::event::io;
use crate::http::cycle::Cycle;
use crate::http::cycle::RequestId;

/// nginx: `postpone_output` default.
const POSTPONE_OUTPUT: u64 = 1460;

/// nginx: `ngx_http_write_filter()`.
pub fn write_filter(cy: &mut Cycle, rid: RequestId, input: &mut Chain, _next: Next) -> FilterRc {
    let Some(r) = cy.requests.get(rid) else { return Err(Error) };
    let main = r.main;
    let Cycle { requests, ev, .. } = cy;
    let (conns, bufs) = (&mut ev.conns, &mut ev.bufs);
    let Some(mr) = requests.get_mut(main) else { return Err(Error) };
    let cid = mr.connection;
    let Some(c) = conns.get_mut(cid) else { return Err(Error) };
    if c.error {
        bufs.put_chain(input);
        return Err(Error);
    }
    let new_data = !input.is_empty();
    if mr.out.is_empty() {
        // Take the input's storage instead of copying into (and allocating) our own.
        std::mem::swap(&mut mr.out, input);
    } else {
        // A buffer or two at a time: moved one by one, cheaper than `append`'s general copy.
        while let Some(b) = input.pop_front() {
            mr.out.push_back(b);
        }
    }
    // Postpone only when new data arrived; a call with no input (the writer) always sends.
    if new_data && !flush_or_enough(&mr.out) {
        return Ok(Step::Done(()));
    }
    match io::send_chain(c, &mut mr.out, bufs) {
        Ok(Step::Done(())) => {
            // Drop the flags-only buffers left behind. The chain's storage stays with the
            // request (`put_chain` would take it to the pool): `free_request` hands `r.out`,
            // storage and all, to the worker's request spares, and the next request's
            // response head is queued without an allocation.
            while let Some(b) = mr.out.pop_front() {
                bufs.put(b);
            }
            event::del_timer(&mut cy.ev, Ev { c: cid, write: true });
            Ok(Step::Done(()))
        }
        Ok(Step::Again) => Ok(Step::Again),
        Err(e) => {
            log::info!("*{} writev() failed ({e}) while sending to client", c.number);
            c.error = true;
            Err(Error)
        }
    }
}

/// Whether the queued output goes now: a last or flush buffer in it, or at least
/// `postpone_output` bytes. One pass over the chain. nginx: the `last`/`flush`/`size` loop
/// of `ngx_http_write_filter()`.
fn flush_or_enough(out: &Chain) -> bool {
    let mut size = 0;
    for b in out {
        if b.last_buf || b.flush {
            return true;
        }
        size += b.len();
    }
    size >= POSTPONE_OUTPUT
}

/// The module. nginx: `ngx_http_write_filter_module`.
pub struct WriteFilterModule;

impl super::HttpModule for WriteFilterModule {
    fn name(&self) -> &'static str {
        "ngx_http_write_filter_module"
    }
    fn postconfiguration(&self, http: &mut super::HttpConf) -> Result<(), crate::conf::ConfError> {
        http.filters.body.insert(0, write_filter);
        Ok(())
    }
}
