//! Watching a request's life: one debug-level line per step, with the client connection's
//! `*N` and the milliseconds since the request started.
//!
//! nginx: the `ngx_log_debug*(NGX_LOG_DEBUG_HTTP, r->connection->log, 0, "http ...")` lines of
//! a `--with-debug` build, shown with `error_log ... debug;`.
//!
//! Differs from nginx: the lines are always compiled in; they cost one check of the log level
//! when debug is off (`RUST_LOG=debug` or `error_log FILE debug;` turns them on). The text is
//! rginx's own ("upstream process_header: again"), one line per step of the seeds' lifecycle.

use std::fmt::Arguments;

use super::cycle::{Cycle, RequestId};

/// Logs `what` for request `rid` at debug level: `*N +Tms what`. Build `what` with
/// `format_args!`, which costs nothing until the line is written.
/// Inlined, so that with debug off a call site costs the level check alone: the `Arguments`
/// are built only on the taken branch.
#[inline(always)]
pub fn step(cy: &Cycle, rid: RequestId, what: Arguments<'_>) {
    if log::log_enabled!(log::Level::Debug) {
        step_line(cy, rid, what);
    }
}

/// The rest of [`step`], out of line.
#[cold]
#[inline(never)]
fn step_line(cy: &Cycle, rid: RequestId, what: Arguments<'_>) {
    let Some(r) = cy.requests.get(rid) else { return };
    let number = cy.ev.conns.get(r.connection).map_or(0, |c| c.number);
    line(number, cy.ev.times.msec.saturating_sub(r.start_msec), what);
}

/// Writes one trace line for connection `*number`, `elapsed` ms into its request (for callers
/// that hold the request and connection already, such as an upstream callback's context).
#[cold]
#[inline(never)]
pub fn line(number: u64, elapsed: u64, what: Arguments<'_>) {
    log::debug!("*{number} +{elapsed}ms {what}");
}
