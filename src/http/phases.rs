//! The phase engine: find the location, run the rewrite, access and precontent handlers, then
//! the location's content handler.
//!
//! nginx: src/http/ngx_http_core_module.c — `ngx_http_core_run_phases()`,
//! `ngx_http_core_find_config_phase()`, `ngx_http_update_location_config()`,
//! `ngx_http_core_content_phase()`.
//!
//! Differs from nginx:
//! - only the phases rginx's modules use are kept (server rewrite, rewrite, access,
//!   precontent, content, log); `request.rs` re-exports these functions, so
//!   `http::request::core_run_phases` is still the name to grep.

use super::core_module::find_location;
use super::finalize::finalize_request;
use super::request::empty_handler;
use crate::core::step::HandlerRc;
use crate::http::cycle::{Cycle, RequestId};

/// Matches the location and applies its limits. nginx: `ngx_http_core_find_config_phase()`
/// + `ngx_http_update_location_config()`.
pub fn find_config(cy: &mut Cycle, rid: RequestId) {
    let Some(r) = cy.requests.get_mut(rid) else { return };
    let loc = find_location(&r.srv.loc.locations, &r.uri).cloned();
    if let Some(l) = loc {
        r.loc = l;
    }
    update_location_config(cy, rid);
}

/// Re-derives per-location request state. nginx: `ngx_http_update_location_config()`.
pub fn update_location_config(cy: &mut Cycle, rid: RequestId) {
    let (now, exiting) = (cy.ev.times.msec, cy.ev.exiting);
    let Some(r) = cy.requests.get_mut(rid) else { return };
    let Some(c) = cy.ev.conns.get(r.connection) else { return };
    let lc = &r.loc.core;
    if r.keepalive {
        // A worker that is shutting down closes after this request: say so in the header.
        if exiting
            || lc.keepalive_timeout() == 0
            || u64::from(c.requests) >= lc.keepalive_requests()
            || now.saturating_sub(c.start_msec) > lc.keepalive_time()
        {
            r.keepalive = false;
        }
    }
}

/// Runs the phases from `r.phase_handler` on: rewrite, access, precontent, then content.
/// nginx: `ngx_http_core_run_phases()`.
pub fn core_run_phases(cy: &mut Cycle, rid: RequestId) {
    loop {
        let Some(r) = cy.requests.get(rid) else { return };
        let i = r.phase_handler;
        let Some(http) = cy.http_conf.as_deref() else { return };
        let ph = &http.phases;
        let (nr, na, np) = (ph.rewrite.len(), ph.access.len(), ph.precontent.len());
        if i == 0 {
            // The find-config phase refuses a too large Content-Length before the rewrite
            // phase runs, so a location's `return` cannot bypass `client_max_body_size`.
            if let Err(status) = check_body_size(cy, rid) {
                return finalize_request(cy, rid, HandlerRc::Status(status));
            }
        }
        if i >= nr && i < nr + na && cy.requests.get(rid).is_some_and(|r| r.main != rid) {
            // A subrequest skips the access phase: its main request passed it.
            // nginx: `if (r != r->main)` in `ngx_http_core_access_phase()`.
            if let Some(r) = cy.requests.get_mut(rid) {
                r.phase_handler = nr + na;
            }
            continue;
        }
        let Some(http) = cy.http_conf.as_deref() else { return };
        let ph = &http.phases;
        let h = if i < nr {
            ph.rewrite[i]
        } else if i < nr + na {
            ph.access[i - nr]
        } else if i < nr + na + np {
            ph.precontent[i - nr - na]
        } else {
            return content_phase(cy, rid);
        };
        match h(cy, rid) {
            HandlerRc::Declined => {
                if let Some(r) = cy.requests.get_mut(rid) {
                    r.phase_handler += 1;
                }
            }
            HandlerRc::Ok if i >= nr && i < nr + na => {
                // access granted: skip the other access handlers
                if let Some(r) = cy.requests.get_mut(rid) {
                    r.phase_handler = nr + na;
                }
            }
            HandlerRc::Done => return,
            rc => return finalize_request(cy, rid, rc),
        }
    }
}

/// nginx checks `client_max_body_size` against `Content-Length` in the find-config phase.
fn check_body_size(cy: &Cycle, rid: RequestId) -> Result<(), u16> {
    let Some(r) = cy.requests.get(rid) else { return Ok(()) };
    let max = r.loc.core.client_max_body_size();
    match r.headers_in.content_length_n {
        Some(n) if max > 0 && n > max => {
            if let Some(c) = cy.ev.conns.get(r.connection) {
                log::error!("*{} client intended to send too large body: {} bytes, client: {}", c.number, n, peer(c));
            }
            Err(413)
        }
        _ => Ok(()),
    }
}

fn peer(c: &crate::http::cycle::Connection) -> String {
    c.peer.map(|p| p.ip().to_string()).unwrap_or_default()
}

/// Runs the location's content handler. nginx: `ngx_http_core_content_phase()`.
fn content_phase(cy: &mut Cycle, rid: RequestId) {
    let Some(r) = cy.requests.get_mut(rid) else { return };
    r.write_event_handler = empty_handler;
    let h = r.loc.core.handler;
    let rc = match h {
        Some(h) => h(cy, rid),
        None => HandlerRc::Status(404),
    };
    finalize_request(cy, rid, rc);
}
