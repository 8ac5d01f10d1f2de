//! `mirror URI|off` (repeatable), `mirror_request_body on|off`: send a copy of each request to
//! other locations in background subrequests, whose answers are dropped.
//!
//! nginx: src/http/modules/ngx_http_mirror_module.c (`ngx_http_mirror_handler`,
//! `ngx_http_mirror_body_handler`, `ngx_http_mirror_handler_internal`,
//! `ngx_http_mirror_create_loc_conf`/`_merge_loc_conf`, and 1.22's `ngx_http_mirror`).
//!
//! A precontent-phase handler. The main request does not wait for its mirrors: a background
//! subrequest has no place in the output, its output is dropped, and whatever it ends with
//! (a 502 from a dead mirror) stays its own. What it does hold is a reference on the main
//! request: the client has its whole response at once, but the connection is kept alive (or
//! closed) only when the last mirror has finished, as in nginx.
//!
//! With `mirror_request_body on` (the default) the client's body is read whole first; the
//! phases then go on from the body's post handler, and each mirror gets a copy of the body
//! (`subrequest::share_request_body`).
//!
//! Differs from nginx:
//! - with `mirror_request_body off` a mirror of a POST sends no `Content-Length` (nginx passes
//!   the client's on, announcing a body it never sends: docs/differences.md).
//! - each mirror holds a copy of an in-memory body (nginx's subrequests share one); file parts
//!   are shared.

use crate::conf::{Args, Ctx};
use crate::core::step::HandlerRc;
use crate::http::cycle::{Cycle, RequestId};
use crate::http::subrequest::{self, SubrequestFlags};
use crate::http::{body, request, trace, AnyConf, Command, Confs, Cx, HttpConf, HttpModule, SetError};

/// nginx: `ngx_http_mirror_loc_conf_t`; `None` plays NGX_CONF_UNSET.
#[derive(Default)]
pub struct MirrorConf {
    /// The URIs; `Some(empty)` is `mirror off`. nginx: `mlcf->mirror` (NULL for off).
    pub mirror: Option<Vec<String>>,
    /// `mirror_request_body` (default on). nginx: `mlcf->request_body`.
    pub request_body: Option<bool>,
}

/// nginx: `ngx_http_mirror_ctx_t` — what the handler answers once the body is read.
struct MirrorCtx {
    /// `Done` while the body is read, then `Declined` (or 500 if a mirror could not start).
    status: HandlerRc,
}

/// The module. nginx: `ngx_http_mirror_module`.
pub struct MirrorModule;

/// nginx: `ngx_http_mirror_commands[]`.
static COMMANDS: &[Command] = &[
    Command { name: "mirror", ctx: Ctx::HTTP_ANY, args: Args::TAKE1, set: set_mirror },
    Command {
        name: "mirror_request_body",
        ctx: Ctx::HTTP_ANY,
        args: Args::FLAG,
        set: |cx| {
            let v = crate::conf::flag(cx.d)?;
            let c = cx.loc_conf::<MirrorConf>()?;
            Ok(crate::conf::set_once(&mut c.request_body, v)?)
        },
    },
];

/// `off` only alone, a URI only beside other URIs. nginx (1.22): `ngx_http_mirror()`.
/// Whether any location of this `http {}` uses the module: its handler or filters are
/// installed only then, so a configuration without it pays nothing per request. nginx installs
/// them always and tests its loc conf on each request.
#[derive(Default)]
struct MirrorUsed {
    used: bool,
}

fn set_mirror(cx: &mut Cx<'_>) -> Result<(), SetError> {
    let v = cx.arg(0).to_string();
    if v != "off" {
        cx.main_conf::<MirrorUsed>()?.used = true;
    }
    let c = cx.loc_conf::<MirrorConf>()?;
    match (&mut c.mirror, v == "off") {
        (None, true) => c.mirror = Some(Vec::new()),
        (None, false) => c.mirror = Some(vec![v]),
        (Some(list), false) if !list.is_empty() => list.push(v),
        _ => return Err("is duplicate".into()),
    }
    Ok(())
}

/// The precontent-phase handler. nginx: `ngx_http_mirror_handler()`.
fn mirror_handler(cy: &mut Cycle, rid: RequestId) -> HandlerRc {
    let Some(r) = cy.requests.get_mut(rid) else { return HandlerRc::Error };
    if r.main != rid {
        return HandlerRc::Declined;
    }
    let Some(conf) = r.loc.confs.get::<MirrorConf>() else { return HandlerRc::Declined };
    if conf.mirror.as_ref().is_none_or(|m| m.is_empty()) {
        return HandlerRc::Declined;
    }
    let with_body = conf.request_body.unwrap_or(true);
    trace::step(cy, rid, format_args!("mirror handler"));
    if !with_body {
        return mirror_handler_internal(cy, rid);
    }
    let Some(r) = cy.requests.get_mut(rid) else { return HandlerRc::Error };
    if let Some(ctx) = r.ctx::<MirrorCtx>() {
        return ctx.status;
    }
    r.ctx.push(Box::new(MirrorCtx { status: HandlerRc::Done }));
    if let HandlerRc::Status(s) = body::read_client_request_body(cy, rid, mirror_body_handler, false) {
        return HandlerRc::Status(s);
    }
    // Give back the reference the body reading took: the post handler goes on with the phases.
    request::finalize_request(cy, rid, HandlerRc::Done);
    HandlerRc::Done
}

/// The body is read: start the mirrors, then go on with the phases (this handler, again,
/// answers what `ctx.status` says). nginx: `ngx_http_mirror_body_handler()`.
fn mirror_body_handler(cy: &mut Cycle, rid: RequestId) {
    let status = mirror_handler_internal(cy, rid);
    let Some(r) = cy.requests.get_mut(rid) else { return };
    if let Some(ctx) = r.ctx::<MirrorCtx>() {
        ctx.status = status;
    }
    r.write_event_handler = request::core_run_phases;
    request::core_run_phases(cy, rid);
}

/// One background subrequest per `mirror`, with the request's method and arguments, sending
/// its header only. nginx: `ngx_http_mirror_handler_internal()`.
fn mirror_handler_internal(cy: &mut Cycle, rid: RequestId) -> HandlerRc {
    let Some(r) = cy.requests.get(rid) else { return HandlerRc::Error };
    let uris = r.loc.confs.get::<MirrorConf>().and_then(|c| c.mirror.clone()).unwrap_or_default();
    let (method, args) = (r.method, r.args.clone());
    for uri in uris {
        let Ok(sr) = subrequest::subrequest(cy, rid, uri.as_bytes(), &args, None, SubrequestFlags::BACKGROUND) else {
            return HandlerRc::Status(500);
        };
        if let Some(s) = cy.requests.get_mut(sr) {
            s.header_only = true;
            // The copied head names the client's method. nginx: `sr->method_name = r->method_name`.
            s.method = method;
            if let Some(st) = s.sr.as_mut() {
                st.method = None;
            }
        }
        subrequest::share_request_body(cy, sr);
    }
    HandlerRc::Declined
}

impl HttpModule for MirrorModule {
    fn name(&self) -> &'static str {
        "ngx_http_mirror_module"
    }
    fn commands(&self) -> &'static [Command] {
        COMMANDS
    }
    fn create_main_conf(&self) -> Option<AnyConf> {
        Some(Box::new(MirrorUsed::default()))
    }
    /// nginx: `ngx_http_mirror_create_loc_conf()`.
    fn create_loc_conf(&self) -> Option<AnyConf> {
        Some(Box::new(MirrorConf::default()))
    }
    /// nginx: `ngx_http_mirror_merge_loc_conf()`.
    fn merge_loc_conf(&self, prev: &Confs, conf: &mut Confs) -> Result<(), String> {
        let Some(p) = prev.get::<MirrorConf>() else { return Ok(()) };
        let (mirror, body) = (p.mirror.clone(), p.request_body);
        if let Some(c) = conf.get_mut::<MirrorConf>() {
            crate::conf::merge(&mut c.mirror, &mirror, Vec::new());
            crate::conf::merge(&mut c.request_body, &body, true);
        }
        Ok(())
    }
    /// nginx: `ngx_http_mirror_init()` — a precontent-phase handler.
    fn postconfiguration(&self, http: &mut HttpConf) -> Result<(), crate::conf::ConfError> {
        if http.main.get::<MirrorUsed>().is_some_and(|u| u.used) {
            http.phases.precontent.push(mirror_handler);
        }
        Ok(())
    }
}
