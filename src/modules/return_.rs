//! `return CODE [TEXT|URL]` / `return URL`: answer from the configuration.
//!
//! nginx: the `return` directive of src/http/modules/ngx_http_rewrite_module.c
//! (`ngx_http_rewrite_return`, `ngx_http_script_return_code`) and `ngx_http_send_response()`
//! (src/http/ngx_http_core_module.c).
//!
//! As in nginx, `return` runs in the rewrite phases: in `server {}` before the location is
//! chosen, in a location before access checks. It is not inherited by nested locations.
//!
//! Differs from nginx: no other rewrite-module directives (`rewrite`, `if`, `set`).

use crate::conf::{Args, Ctx};
use crate::core::step::HandlerRc;
use crate::http::cycle::Cycle;
use crate::http::cycle::RequestId;
use crate::http::special_response::send_response;
use crate::http::variables::{ComplexValue, Vars};
use crate::http::{body, AnyConf, Command, Confs, Cx, HttpConf, HttpModule, SetError};

/// `return` of one level. nginx: the `ngx_http_script_return_code_t` in the rewrite codes.
#[derive(Default)]
pub struct ReturnConf {
    /// Status and optional text/URL.
    pub ret: Option<(u16, Option<ComplexValue>)>,
}

/// The module. nginx: `ngx_http_rewrite_module` (its `return` part).
pub struct ReturnModule;

static COMMANDS: &[Command] =
    &[Command { name: "return", ctx: Ctx(Ctx::HTTP_SRV.0 | Ctx::HTTP_LOC.0), args: Args::TAKE12, set: set_return }];

fn is_redirect(code: u16) -> bool {
    matches!(code, 301 | 302 | 303 | 307 | 308)
}

fn set_return(cx: &mut Cx<'_>) -> Result<(), SetError> {
    let modules = cx.modules;
    let a0 = cx.arg(0).to_string();
    let (code, text) = match a0.parse::<u16>() {
        Ok(c) if c <= 999 => (c, cx.d.args.get(1).cloned()),
        _ if cx.d.args.len() == 1
            && (a0.starts_with("http://") || a0.starts_with("https://") || a0.starts_with("$scheme")) =>
        {
            (302, Some(a0))
        }
        _ => return Err(format!("invalid return code \"{a0}\"").into()),
    };
    let text = match text {
        Some(t) => Some(ComplexValue::compile(&t, modules)?),
        None => None,
    };
    let rc = cx.loc_conf::<ReturnConf>()?;
    if rc.ret.is_none() {
        rc.ret = Some((code, text));
    }
    Ok(())
}

/// Server-level `return`. nginx: the server rewrite phase.
fn server_rewrite_handler(cy: &mut Cycle, rid: RequestId) -> HandlerRc {
    // Borrow the `return` from an `Arc` of the level's conf instead of cloning it per request.
    let Some(loc) = cy.requests.get(rid).map(|r| r.srv.loc.clone()) else {
        return HandlerRc::Declined;
    };
    match loc.confs.get::<ReturnConf>().and_then(|c| c.ret.as_ref()) {
        Some((code, text)) => run_return(cy, rid, *code, text.as_ref()),
        None => HandlerRc::Declined,
    }
}

/// Location-level `return`. nginx: the rewrite phase.
fn rewrite_handler(cy: &mut Cycle, rid: RequestId) -> HandlerRc {
    let Some(loc) = cy.requests.get(rid).map(|r| r.loc.clone()) else {
        return HandlerRc::Declined;
    };
    match loc.confs.get::<ReturnConf>().and_then(|c| c.ret.as_ref()) {
        Some((code, text)) => run_return(cy, rid, *code, text.as_ref()),
        None => HandlerRc::Declined,
    }
}

/// nginx: `ngx_http_script_return_code()` → `ngx_http_send_response()`.
fn run_return(cy: &mut Cycle, rid: RequestId, code: u16, text: Option<&ComplexValue>) -> HandlerRc {
    if code == 444 {
        return HandlerRc::Status(444);
    }
    let Some(text) = text else {
        if code >= 400 {
            return HandlerRc::Status(code);
        }
        return send_text(cy, rid, code, Vec::new());
    };
    // nginx: `ngx_http_send_response()` sets the status before it evaluates the text, so
    // `$status` in it is the code returned
    if let Some(r) = cy.requests.get_mut(rid) {
        r.headers_out.status = code;
    }
    // Into a pooled buffer: the write filter gives it back once the body is sent.
    let mut v = cy.ev.bufs.get_vec(text.len_hint());
    if let Some(vars) = Vars::of(cy, rid) {
        text.eval(&vars, &mut v);
    }
    if is_redirect(code) {
        if let Some(r) = cy.requests.get_mut(rid) {
            r.headers_out.set_location(&v);
        }
        return HandlerRc::Status(code);
    }
    send_text(cy, rid, code, v)
}

fn send_text(cy: &mut Cycle, rid: RequestId, code: u16, body: Vec<u8>) -> HandlerRc {
    // A body that cannot be discarded (bad chunked framing) is answered with its own status
    // (400), as nginx does.
    if let Err(status) = body::discard_request_body(cy, rid) {
        return HandlerRc::Status(status);
    }
    let Some(r) = cy.requests.get_mut(rid) else {
        return HandlerRc::Error;
    };
    r.headers_out.status = code;
    let default_type = r.loc.core.default_type().as_bytes();
    r.headers_out.set_content_type(default_type);
    r.headers_out.content_length_n = Some(body.len() as u64);
    send_response(cy, rid, Some(body))
}

impl HttpModule for ReturnModule {
    fn name(&self) -> &'static str {
        "ngx_http_rewrite_module"
    }
    fn commands(&self) -> &'static [Command] {
        COMMANDS
    }
    fn create_loc_conf(&self) -> Option<AnyConf> {
        Some(Box::new(ReturnConf::default()))
    }
    fn merge_loc_conf(&self, _prev: &Confs, _conf: &mut Confs) -> Result<(), String> {
        Ok(()) // rewrite directives are not inherited
    }
    fn postconfiguration(&self, http: &mut HttpConf) -> Result<(), crate::conf::ConfError> {
        http.phases.server_rewrite.push(server_rewrite_handler);
        http.phases.rewrite.push(rewrite_handler);
        Ok(())
    }
}
