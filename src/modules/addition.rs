//! `add_before_body URI`, `add_after_body URI`, `addition_types MIME...`: the answers of two
//! subrequests around a response's body — before, body, after, in that order, whichever
//! finishes first.
//!
//! nginx: src/http/modules/ngx_http_addition_filter_module.c
//! (`ngx_http_addition_header_filter`, `ngx_http_addition_body_filter`,
//! `ngx_http_addition_create_conf`/`_merge_conf`), and `ngx_http_types_slot()` /
//! `ngx_http_test_content_type()` (src/http/ngx_http.c, ngx_http_core_module.c) for the types.
//!
//! The header filter picks the responses to wrap (a main request's 200 of a listed type) and
//! clears their `Content-Length`: the length is no longer known, so the chunked filter frames
//! them. The body filter creates the before-subrequest ahead of the first body buffer, takes
//! `last_buf` off the body's end, and creates the after-subrequest once the end has passed,
//! followed by an empty `last_buf` of its own. The postpone filter, which runs after this one,
//! puts the three in order whatever order they finish in: output of a request that is not yet
//! the active one waits in its `postponed` list.
//!
//! Differs from nginx: no `Accept-Ranges` to clear (rginx never sends one).

use std::sync::Arc;

use crate::conf::{Args, Ctx};
use crate::core::buf::{Buf, Chain};
use crate::http::cycle::{Cycle, RequestId};
use crate::http::subrequest::{self, SubrequestFlags};
use crate::http::{
    self, trace, AnyConf, Command, Confs, Cx, Error, FilterRc, HttpConf, HttpModule, LocConf, Next, SetError,
};

/// The MIME types a module applies to. nginx: the `types_keys` array of
/// `ngx_http_types_slot()`; `*` is its "any" sentinel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Types {
    /// `addition_types *`.
    Any,
    /// Lowercased types; the default `text/html` always among them (nginx adds the defaults
    /// before the first listed type).
    List(Vec<String>),
}

/// nginx: `ngx_http_addition_conf_t`; `None` plays NGX_CONF_UNSET.
#[derive(Default)]
pub struct AdditionConf {
    /// `add_before_body`; empty: none.
    pub before_body: Option<String>,
    /// `add_after_body`; empty: none.
    pub after_body: Option<String>,
    /// `addition_types` (default `text/html`).
    pub types: Option<Types>,
}

/// nginx: `ngx_http_addition_ctx_t`; `active` false stands for nginx's
/// `ngx_http_set_ctx(r, NULL, ...)` (the request's additions are all created).
struct AdditionCtx {
    /// nginx: `ctx->before_body_sent`.
    before_body_sent: bool,
    active: bool,
}

/// The module. nginx: `ngx_http_addition_filter_module`.
pub struct AdditionFilterModule;

/// nginx: `ngx_http_addition_commands[]`.
static COMMANDS: &[Command] = &[
    Command {
        name: "add_before_body",
        ctx: Ctx::HTTP_ANY,
        args: Args::TAKE1,
        set: |cx| set_uri(cx, |c| &mut c.before_body),
    },
    Command {
        name: "add_after_body",
        ctx: Ctx::HTTP_ANY,
        args: Args::TAKE1,
        set: |cx| set_uri(cx, |c| &mut c.after_body),
    },
    Command { name: "addition_types", ctx: Ctx::HTTP_ANY, args: Args::ONE_MORE, set: set_types },
];

/// nginx: `ngx_conf_set_str_slot()`.
/// Whether any location of this `http {}` uses the module: its handler or filters are
/// installed only then, so a configuration without it pays nothing per request. nginx installs
/// them always and tests its loc conf on each request.
#[derive(Default)]
struct AdditionUsed {
    used: bool,
}

fn set_uri(cx: &mut Cx<'_>, slot: fn(&mut AdditionConf) -> &mut Option<String>) -> Result<(), SetError> {
    cx.main_conf::<AdditionUsed>()?.used = true;
    let v = cx.arg(0).to_string();
    let conf = cx.loc_conf::<AdditionConf>()?;
    Ok(crate::conf::set_once(slot(conf), v)?)
}

/// nginx: `ngx_http_types_slot()` with `ngx_http_html_default_types`.
fn set_types(cx: &mut Cx<'_>) -> Result<(), SetError> {
    let args: Vec<String> = cx.d.args.iter().map(|a| a.to_ascii_lowercase()).collect();
    let conf = cx.loc_conf::<AdditionConf>()?;
    let mut list = match conf.types.take() {
        Some(Types::Any) => return Err("is duplicate".into()),
        Some(Types::List(l)) => l,
        None => vec!["text/html".to_string()],
    };
    for a in args {
        if a == "*" {
            conf.types = Some(Types::Any);
            return Ok(());
        }
        if !list.contains(&a) {
            list.push(a);
        }
    }
    conf.types = Some(Types::List(list));
    Ok(())
}

/// Whether `content_type` (up to its `;`) is one of `types`.
/// nginx: `ngx_http_test_content_type()`.
pub fn test_content_type(types: &Types, content_type: Option<&[u8]>) -> bool {
    let list = match types {
        Types::Any => return true,
        Types::List(l) => l,
    };
    let Some(ct) = content_type else { return false };
    let ct = ct.split(|&b| b == b';').next().unwrap_or(b"").trim_ascii_end();
    list.iter().any(|t| t.as_bytes().eq_ignore_ascii_case(ct))
}

fn conf_of(loc: &LocConf) -> Option<&AdditionConf> {
    loc.confs.get::<AdditionConf>()
}

/// nginx: `ngx_http_addition_header_filter()`.
fn addition_header_filter(cy: &mut Cycle, rid: RequestId, next: Next) -> FilterRc {
    let Some(r) = cy.requests.get_mut(rid) else { return Err(Error) };
    if r.headers_out.status != 200 || r.main != rid {
        return next.header(cy, rid);
    }
    let loc: Arc<LocConf> = r.loc.clone();
    let Some(conf) = conf_of(&loc) else { return next.header(cy, rid) };
    let (before, after) = (conf.before_body.as_deref().unwrap_or(""), conf.after_body.as_deref().unwrap_or(""));
    if before.is_empty() && after.is_empty() {
        return next.header(cy, rid);
    }
    let ct = r.headers_out.content_type();
    let listed = match &conf.types {
        Some(t) => test_content_type(t, ct),
        None => test_content_type(&Types::List(vec!["text/html".into()]), ct), // never merged
    };
    if !listed {
        return next.header(cy, rid);
    }
    r.ctx.push(Box::new(AdditionCtx { before_body_sent: false, active: true }));
    // The subrequest before the body starts at the first body buffer: this filter must see
    // it, so a proxied body may not skip the filters (`upstream::body_splice`). The part after
    // the body hangs on the last buffer, which always passes.
    if !before.is_empty() {
        r.filter_need_in_memory = true;
    }
    // nginx: `ngx_http_clear_content_length(r)`.
    r.headers_out.content_length_n = None;
    next.header(cy, rid)
}

/// nginx: `ngx_http_addition_body_filter()`.
fn addition_body_filter(cy: &mut Cycle, rid: RequestId, input: &mut Chain, next: Next) -> FilterRc {
    let Some(r) = cy.requests.get_mut(rid) else { return Err(Error) };
    if input.is_empty() || r.header_only {
        return next.body(cy, rid, input);
    }
    let loc: Arc<LocConf> = r.loc.clone();
    let Some(ctx) = r.ctx::<AdditionCtx>().filter(|c| c.active) else { return next.body(cy, rid, input) };
    let first = !ctx.before_body_sent;
    ctx.before_body_sent = true;
    let Some(conf) = conf_of(&loc) else { return next.body(cy, rid, input) };
    let before = conf.before_body.as_deref().unwrap_or("");
    let after = conf.after_body.as_deref().unwrap_or("");
    if first && !before.is_empty() {
        add_subrequest(cy, rid, before)?;
    }
    if after.is_empty() {
        set_done(cy, rid);
        return next.body(cy, rid, input);
    }
    // The body's end is not the response's end any more.
    let mut last = false;
    for b in input.iter_mut().filter(|b| b.last_buf) {
        b.last_buf = false;
        b.flush = true;
        last = true;
    }
    let rc = next.body(cy, rid, input);
    if rc.is_err() || !last {
        return rc;
    }
    add_subrequest(cy, rid, after)?;
    set_done(cy, rid);
    // nginx: `ngx_http_send_special(r, NGX_HTTP_LAST)`.
    let mut end = Chain::new();
    end.push_back(Buf::last_buf());
    http::output_filter(cy, rid, &mut end)
}

/// A subrequest whose output takes its place among the request's. nginx:
/// `ngx_http_subrequest(r, uri, NULL, &sr, NULL, 0)`.
fn add_subrequest(cy: &mut Cycle, rid: RequestId, uri: &str) -> Result<(), Error> {
    trace::step(cy, rid, format_args!("addition: subrequest \"{uri}\""));
    subrequest::subrequest(cy, rid, uri.as_bytes(), b"", None, SubrequestFlags::NONE).map(|_| ()).map_err(|_| Error)
}

fn set_done(cy: &mut Cycle, rid: RequestId) {
    if let Some(ctx) = cy.requests.get_mut(rid).and_then(|r| r.ctx::<AdditionCtx>()) {
        ctx.active = false;
    }
}

impl HttpModule for AdditionFilterModule {
    fn name(&self) -> &'static str {
        "ngx_http_addition_filter_module"
    }
    fn commands(&self) -> &'static [Command] {
        COMMANDS
    }
    fn create_main_conf(&self) -> Option<AnyConf> {
        Some(Box::new(AdditionUsed::default()))
    }
    /// nginx: `ngx_http_addition_create_conf()`.
    fn create_loc_conf(&self) -> Option<AnyConf> {
        Some(Box::new(AdditionConf::default()))
    }
    /// nginx: `ngx_http_addition_merge_conf()` (with `ngx_http_merge_types()`).
    fn merge_loc_conf(&self, prev: &Confs, conf: &mut Confs) -> Result<(), String> {
        let Some(p) = prev.get::<AdditionConf>() else { return Ok(()) };
        let (before, after, types) = (p.before_body.clone(), p.after_body.clone(), p.types.clone());
        if let Some(c) = conf.get_mut::<AdditionConf>() {
            crate::conf::merge(&mut c.before_body, &before, String::new());
            crate::conf::merge(&mut c.after_body, &after, String::new());
            crate::conf::merge(&mut c.types, &types, Types::List(vec!["text/html".into()]));
        }
        Ok(())
    }
    /// nginx: `ngx_http_addition_filter_init()` — at the top of both chains, so it runs
    /// before the postpone filter (listed after it in `HTTP_MODULES`).
    fn postconfiguration(&self, http: &mut HttpConf) -> Result<(), crate::conf::ConfError> {
        if http.main.get::<AdditionUsed>().is_some_and(|u| u.used) {
            http.filters.header.insert(0, addition_header_filter);
            http.filters.body.insert(0, addition_body_filter);
        }
        Ok(())
    }
}
