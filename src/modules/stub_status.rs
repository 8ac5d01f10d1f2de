//! `stub_status`: the basic status page, in nginx's exact text format.
//!
//! nginx: src/http/modules/ngx_http_stub_status_module.c.
//!
//! Differs from nginx:
//! - each worker counts in its own memory and publishes its counts once per loop turn; the
//!   page sums them (nginx's workers bump shared counters), so another worker's counts may be
//!   one loop turn old.
//! - "Reading/Writing/Waiting" are counted from the answering worker's own connections when
//!   asked (nginx: shared counters), so with `worker_processes` > 1 they cover that worker
//!   only; "Active connections" adds the other workers' open client connections.

use std::io::Write;

use crate::conf::{Args, Ctx};
use crate::core::step::HandlerRc;
use crate::http::cycle::Cycle;
use crate::http::cycle::{Owner, RequestId};
use crate::http::request::Method;
use crate::http::special_response::send_response;
use crate::http::{body, Command, Cx, HttpModule, SetError};

/// The module. nginx: `ngx_http_stub_status_module`.
pub struct StubStatusModule;

static COMMANDS: &[Command] = &[Command {
    name: "stub_status",
    ctx: Ctx(Ctx::HTTP_SRV.0 | Ctx::HTTP_LOC.0),
    args: Args(Args::NOARGS.0 | Args::TAKE1.0),
    set: |cx: &mut Cx<'_>| -> Result<(), SetError> {
        cx.loc.core.handler = Some(stub_status_handler);
        Ok(())
    },
}];

/// Counts (reading, writing, waiting) over the worker's client connections.
fn connection_states(cy: &Cycle) -> (u64, u64, u64, u64) {
    let (mut active, mut reading, mut writing, mut waiting) = (0, 0, 0, 0);
    for id in cy.ev.conns.ids() {
        let Some(c) = cy.ev.conns.get(id) else { continue };
        let Owner::Client(r) = c.owner else { continue };
        active += 1;
        match r.and_then(|r| cy.requests.get(r)) {
            Some(r) if r.reading => reading += 1,
            Some(_) => writing += 1,
            None => waiting += 1,
        }
    }
    (active, reading, writing, waiting)
}

/// nginx: `ngx_http_stub_status_handler()`.
fn stub_status_handler(cy: &mut Cycle, rid: RequestId) -> HandlerRc {
    let method = cy.requests.get(rid).map(|r| r.method);
    if !matches!(method, Some(Method::Get | Method::Head)) {
        return HandlerRc::Status(405);
    }
    if let Err(status) = body::discard_request_body(cy, rid) {
        return HandlerRc::Status(status);
    }
    let (active, reading, writing, waiting) = connection_states(cy);
    let s = cy.ev.total_stats();
    let active = active + (s.active - cy.ev.stats.active.min(s.active));
    let mut v = Vec::with_capacity(128);
    let _ = write!(
        v,
        "Active connections: {active} \nserver accepts handled requests\n {} {} {} \nReading: {reading} Writing: {writing} Waiting: {waiting} \n",
        s.accepted, s.handled, s.requests
    );
    let Some(r) = cy.requests.get_mut(rid) else {
        return HandlerRc::Error;
    };
    r.headers_out.status = 200;
    r.headers_out.set_content_type(b"text/plain");
    r.headers_out.content_length_n = Some(v.len() as u64);
    send_response(cy, rid, Some(v))
}

impl HttpModule for StubStatusModule {
    fn name(&self) -> &'static str {
        "ngx_http_stub_status_module"
    }
    fn commands(&self) -> &'static [Command] {
        COMMANDS
    }
}
