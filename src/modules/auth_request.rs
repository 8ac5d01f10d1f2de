//! `auth_request URI|off`: ask another location whether the request may go on, by the status
//! of a subrequest — 2xx lets it through, 401 and 403 go to the client, anything else is 500.
//!
//! nginx: src/http/modules/ngx_http_auth_request_module.c (`ngx_http_auth_request_handler`,
//! `ngx_http_auth_request_done`, `ngx_http_auth_request_create_conf`/`_merge_conf`,
//! `ngx_http_auth_request`).
//!
//! The access-phase handler runs twice. The first time it creates a waited subrequest to `URI`
//! that sends its header only (the answer's body is never read), and returns `Done`: the phase
//! engine stops, the request's write handler stays `core_run_phases`. When the subrequest is
//! finalized, `auth_request_done` (its `post_subrequest`) records its status in the parent's
//! context, and the subrequest framework posts the parent; the phases run again from the same
//! handler, which now answers from the recorded status.
//!
//! Differs from nginx:
//! - `auth_request_set` is not implemented.
//! - the subrequest sends no body and no `Content-Length` (rginx's subrequests have no body;
//!   nginx gives this one an empty body but passes the client's `Content-Length` on, so a POST
//!   reaches the auth location as a GET announcing a body it never sends: docs/differences.md).

use crate::conf::{Args, Ctx};
use crate::core::step::HandlerRc;
use crate::http::cycle::{Cycle, RequestId};
use crate::http::subrequest::{self, PostSubrequest, SubrequestFlags};
use crate::http::{trace, AnyConf, Command, Confs, Cx, HttpConf, HttpModule, SetError};

/// nginx: `ngx_http_auth_request_conf_t` (without `vars`).
#[derive(Default)]
pub struct AuthRequestConf {
    /// The URI to ask; `Some("")` is `auth_request off`, `None` unset (inherited).
    pub uri: Option<String>,
}

/// What the handler knows between its two runs. nginx: `ngx_http_auth_request_ctx_t`.
struct AuthRequestCtx {
    /// The subrequest was finalized. nginx: `ctx->done`.
    done: bool,
    /// Its status. nginx: `ctx->status`.
    status: u16,
    /// The subrequest, for its `WWW-Authenticate`. nginx: `ctx->subrequest`.
    subrequest: RequestId,
}

/// The module. nginx: `ngx_http_auth_request_module`.
pub struct AuthRequestModule;

/// nginx: `ngx_http_auth_request_commands[]` (without `auth_request_set`).
static COMMANDS: &[Command] =
    &[Command { name: "auth_request", ctx: Ctx::HTTP_ANY, args: Args::TAKE1, set: set_auth_request }];

/// nginx: `ngx_http_auth_request()`.
/// Whether any location of this `http {}` uses the module: its handler or filters are
/// installed only then, so a configuration without it pays nothing per request. nginx installs
/// them always and tests its loc conf on each request.
#[derive(Default)]
struct AuthRequestUsed {
    used: bool,
}

fn set_auth_request(cx: &mut Cx<'_>) -> Result<(), SetError> {
    let v = cx.arg(0).to_string();
    if v != "off" {
        cx.main_conf::<AuthRequestUsed>()?.used = true;
    }
    let conf = cx.loc_conf::<AuthRequestConf>()?;
    let uri = if v == "off" { String::new() } else { v };
    Ok(crate::conf::set_once(&mut conf.uri, uri)?)
}

/// The access-phase handler. nginx: `ngx_http_auth_request_handler()`.
fn auth_request_handler(cy: &mut Cycle, rid: RequestId) -> HandlerRc {
    let Some(r) = cy.requests.get_mut(rid) else { return HandlerRc::Error };
    let uri = match r.loc.confs.get::<AuthRequestConf>().and_then(|c| c.uri.as_deref()) {
        Some(u) if !u.is_empty() => u.as_bytes().to_vec(),
        _ => return HandlerRc::Declined,
    };
    let answer = r.ctx::<AuthRequestCtx>().map(|ctx| (ctx.done, ctx.status, ctx.subrequest));
    trace::step(cy, rid, format_args!("auth request handler"));
    match answer {
        Some((false, ..)) => HandlerRc::Done, // still waiting (a spurious run)
        Some((true, status, sr)) => answer_with(cy, rid, status, sr),
        None => start(cy, rid, &uri),
    }
}

/// Creates the subrequest and waits for it.
fn start(cy: &mut Cycle, rid: RequestId, uri: &[u8]) -> HandlerRc {
    let ps = PostSubrequest { handler: auth_request_done, data: 0 };
    let Ok(sr) = subrequest::subrequest(cy, rid, uri, b"", Some(ps), SubrequestFlags::WAITED) else {
        return HandlerRc::Error; // logged by `subrequest`
    };
    // Only the status matters: the answer's body is not read. nginx: `sr->header_only = 1`.
    if let Some(s) = cy.requests.get_mut(sr) {
        s.header_only = true;
    }
    let Some(r) = cy.requests.get_mut(rid) else { return HandlerRc::Error };
    r.ctx.push(Box::new(AuthRequestCtx { done: false, status: 0, subrequest: sr }));
    // nginx returns NGX_AGAIN: the phase engine stops and runs this handler again once the
    // subrequest wakes the request.
    HandlerRc::Done
}

/// The second run: the subrequest's status decides.
fn answer_with(cy: &mut Cycle, rid: RequestId, status: u16, sr: RequestId) -> HandlerRc {
    match status {
        403 => HandlerRc::Status(403),
        401 => {
            copy_www_authenticate(cy, rid, sr);
            HandlerRc::Status(401)
        }
        200..=299 => HandlerRc::Ok,
        _ => {
            let msg = format!("auth request unexpected status: {status}");
            log::error!("{}", subrequest::context_line(cy, rid, &msg));
            HandlerRc::Status(500)
        }
    }
}

/// The subrequest's (its upstream's) first `WWW-Authenticate` goes to the client with the 401.
/// nginx 1.22 copies the one `headers_out.www_authenticate` (1.23 copies every one).
fn copy_www_authenticate(cy: &mut Cycle, rid: RequestId, sr: RequestId) {
    let Some(h) = cy
        .requests
        .get(sr)
        .and_then(|s| s.headers_out.headers().iter().find(|(n, _)| n.eq_ignore_ascii_case(b"www-authenticate")))
        .map(|(n, v)| (n.to_vec(), v.to_vec()))
    else {
        return;
    };
    if let Some(r) = cy.requests.get_mut(rid) {
        r.headers_out.push(&h.0, &h.1);
    }
}

/// The subrequest was finalized: keep its status for the parent. It may run twice (an error
/// page is a second finalization); the last status counts, as in nginx.
/// nginx: `ngx_http_auth_request_done()`.
fn auth_request_done(cy: &mut Cycle, sr: RequestId, _data: usize, rc: HandlerRc) -> HandlerRc {
    let Some((parent, status)) = cy.requests.get(sr).and_then(|s| Some((s.parent?, s.headers_out.status))) else {
        return rc;
    };
    trace::step(cy, sr, format_args!("auth request done s:{status}"));
    if let Some(ctx) = cy.requests.get_mut(parent).and_then(|p| p.ctx::<AuthRequestCtx>()) {
        ctx.done = true;
        ctx.status = status;
    }
    rc
}

impl HttpModule for AuthRequestModule {
    fn name(&self) -> &'static str {
        "ngx_http_auth_request_module"
    }
    fn commands(&self) -> &'static [Command] {
        COMMANDS
    }
    fn create_main_conf(&self) -> Option<AnyConf> {
        Some(Box::new(AuthRequestUsed::default()))
    }
    /// nginx: `ngx_http_auth_request_create_conf()`.
    fn create_loc_conf(&self) -> Option<AnyConf> {
        Some(Box::new(AuthRequestConf::default()))
    }
    /// nginx: `ngx_http_auth_request_merge_conf()`.
    fn merge_loc_conf(&self, prev: &Confs, conf: &mut Confs) -> Result<(), String> {
        let p = prev.get::<AuthRequestConf>().and_then(|c| c.uri.clone());
        if let Some(c) = conf.get_mut::<AuthRequestConf>() {
            crate::conf::merge(&mut c.uri, &p, String::new());
        }
        Ok(())
    }
    /// nginx: `ngx_http_auth_request_init()` — an access-phase handler.
    fn postconfiguration(&self, http: &mut HttpConf) -> Result<(), crate::conf::ConfError> {
        if http.main.get::<AuthRequestUsed>().is_some_and(|u| u.used) {
            http.phases.access.push(auth_request_handler);
        }
        Ok(())
    }
}
