//! The return vocabulary every step of rginx speaks.
//!
//! nginx: `NGX_OK`, `NGX_AGAIN`, `NGX_DECLINED`, `NGX_DONE`, `NGX_ERROR` (src/core/ngx_core.h).
//!
//! Differs from nginx:
//! - nginx returns one `ngx_int_t` for all of them; rginx splits the vocabulary by what a caller
//!   may see: I/O and parsing steps return `Step` (OK or AGAIN), errors travel in `Result::Err`,
//!   and content handlers return `HandlerRc`.

/// Outcome of a non-blocking step: finished, or "call me again when the socket is ready".
///
/// nginx: NGX_OK (`Done`) / NGX_AGAIN (`Again`). NGX_ERROR travels in `Result::Err`.
/// "Again" is not an error: it means the caller arms its timer and returns to the event loop.
#[must_use = "Again: arm the timer/event and return to the loop"]
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Step<T = ()> {
    /// The step completed (NGX_OK), with its result.
    Done(T),
    /// More input, or socket space, is needed (NGX_AGAIN).
    Again,
}

/// What a content (or access) handler tells the HTTP core.
///
/// nginx: the `ngx_int_t` returned by `clcf->handler` and phase handlers.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum HandlerRc {
    /// NGX_OK: the handler finished the response itself; finalize with "ok".
    Ok,
    /// NGX_DECLINED: not mine, try the next handler.
    Declined,
    /// NGX_DONE: the handler continues later (it took a reference on the request, nginx's
    /// `r->main->count++`); the core must not finalize now.
    Done,
    /// NGX_ERROR: give up on the request and close the connection without a response.
    Error,
    /// An HTTP status (or 444 / 499): finalize the request with it, sending nginx's error page
    /// when nothing has been sent yet.
    Status(u16),
}
