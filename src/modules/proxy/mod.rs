//! `proxy_pass`: nginx's reverse proxy, an upstream module written against the public
//! `UpstreamHandler` trait like any third-party module. This file holds the module, its
//! directives, the content handler and the per-request context; the callbacks live one
//! concept per file:
//!
//! | file | what | nginx |
//! | --- | --- | --- |
//! | `conf.rs` | location conf, merge, header defaults | `ngx_http_proxy_merge_loc_conf()` |
//! | `create_request.rs` | the request line, headers, body | `ngx_http_proxy_create_request()` |
//! | `header_script.rs` | the header list compiled per location | `ngx_http_proxy_init_headers()` |
//! | `process_header.rs` | status line, header lines | `ngx_http_proxy_process_status_line()`, `_process_header()` |
//! | `input_filter.rs` | body framing in, chunked body out | `ngx_http_proxy_input_filter_init()`, `_non_buffered_chunked_filter()`, `_body_output_filter()` |
//! | `redirect.rs` | `proxy_redirect` | `ngx_http_proxy_rewrite_redirect()` |
//! | `variables.rs` | `$proxy_host`, `$proxy_add_x_forwarded_for` | `ngx_http_proxy_vars[]` |
//!
//! nginx: src/http/modules/ngx_http_proxy_module.c — `ngx_http_proxy_commands[]`,
//! `ngx_http_proxy_pass()`, `ngx_http_proxy_redirect()`, `ngx_http_proxy_handler()`,
//! `ngx_http_proxy_reinit_request()`, `ngx_http_proxy_finalize_request()`.
//!
//! As the seed's mytest module does in C (`u->process_header = ngx_http_proxy_process_header`
//! after the status line), `ProxyCtx::process_header` first parses the status line, then
//! switches its `Phase` to the header parser.
//!
//! Differs from nginx:
//! - no variables in `proxy_pass`, no `https://`, no caching, no `proxy_store`.
//! - the callbacks receive an `UpstreamCx` (the request, its upstream, buffers, clock), not
//!   `r`: they cannot call the upstream framework, only return what happened.

mod conf;
mod create_request;
mod header_script;
mod input_filter;
mod process_header;
mod redirect;
mod variables;

use std::sync::Arc;

pub use conf::{ProxyLocConf, ProxyPass, ProxyShared, Redirect, HIDE_HEADERS};
pub use variables::PROXY_VARIABLES;

use crate::conf::{self as core_conf, Args, ConfError, Ctx};
use crate::core::buf::Chain;
use crate::core::step::{HandlerRc, Step};
use crate::http::cycle::{Cycle, RequestId};
use crate::http::parse::ChunkedDecoder;
use crate::http::trace;
use crate::http::variables::ComplexValue;
use crate::http::{body, AnyConf, Command, Confs, Cx, HttpConf, HttpModule, SetError, VariableDef};
use crate::upstream::conf::{split_host_port, Ft, UpstreamMainConf, FT_NON_IDEMPOTENT, FT_OFF};
use crate::upstream::{self, Resolved, Rewrite, UpstreamCtx, UpstreamCx, UpstreamError, UpstreamHandler};

/// The module. nginx: `ngx_http_proxy_module`.
pub struct ProxyModule;

macro_rules! slot {
    ($name:expr, $args:expr, $field:ident, $parse:expr) => {
        Command {
            name: $name,
            ctx: Ctx::HTTP_ANY,
            args: $args,
            set: |cx: &mut Cx<'_>| -> Result<(), SetError> {
                let v = $parse(cx)?;
                let c = cx.loc_conf::<ProxyLocConf>()?;
                if c.$field.is_some() {
                    return Err("is duplicate".into());
                }
                c.$field = Some(v);
                Ok(())
            },
        }
    };
}

fn p_msec(cx: &mut Cx<'_>) -> Result<u64, SetError> {
    Ok(core_conf::msec(cx.d, 0)?)
}
fn p_size(cx: &mut Cx<'_>) -> Result<usize, SetError> {
    Ok(core_conf::size(cx.d, 0)?)
}
fn p_flag(cx: &mut Cx<'_>) -> Result<bool, SetError> {
    Ok(core_conf::flag(cx.d)?)
}

#[rustfmt::skip]
static COMMANDS: &[Command] = &[
    Command {
        name: "proxy_pass",
        ctx: Ctx::HTTP_LOC,
        args: Args::TAKE1,
        set: set_pass,
    },
    Command {
        name: "proxy_set_header",
        ctx: Ctx::HTTP_ANY,
        args: Args::TAKE2,
        set: set_header,
    },
    Command {
        name: "proxy_hide_header",
        ctx: Ctx::HTTP_ANY,
        args: Args::TAKE1,
        set: |cx| {
            let v = cx.arg(0).to_ascii_lowercase();
            cx.loc_conf::<ProxyLocConf>()?
                .hide
                .get_or_insert_with(Vec::new)
                .push(v);
            Ok(())
        },
    },
    Command {
        name: "proxy_pass_header",
        ctx: Ctx::HTTP_ANY,
        args: Args::TAKE1,
        set: |cx| {
            let v = cx.arg(0).to_ascii_lowercase();
            cx.loc_conf::<ProxyLocConf>()?
                .pass_headers
                .get_or_insert_with(Vec::new)
                .push(v);
            Ok(())
        },
    },
    slot!(
        "proxy_http_version",
        Args::TAKE1,
        http_version,
        |cx: &mut Cx<'_>| -> Result<u16, SetError> {
            match cx.arg(0) { "1.0" => Ok(1000), "1.1" => Ok(1001), v => Err(format!("invalid value \"{v}\" in \"proxy_http_version\" directive, it must be \"1.0\" or \"1.1\"").into()) }
        }
    ),
    Command {
        name: "proxy_redirect",
        ctx: Ctx::HTTP_ANY,
        args: Args::TAKE12,
        set: set_redirect,
    },
    slot!(
        "proxy_connect_timeout",
        Args::TAKE1,
        connect_timeout,
        p_msec
    ),
    slot!("proxy_send_timeout", Args::TAKE1, send_timeout, p_msec),
    slot!("proxy_read_timeout", Args::TAKE1, read_timeout, p_msec),
    slot!("proxy_buffering", Args::FLAG, buffering, p_flag),
    slot!(
        "proxy_request_buffering",
        Args::FLAG,
        request_buffering,
        p_flag
    ),
    slot!("proxy_buffer_size", Args::TAKE1, buffer_size, p_size),
    slot!(
        "proxy_buffers",
        Args::TAKE2,
        bufs,
        |cx: &mut Cx<'_>| -> Result<(usize, usize), SetError> {
            let n = core_conf::num(cx.d, 0)?;
            let s = core_conf::size(cx.d, 1)?;
            if n == 0 || s == 0 {
                return Err("invalid value".into());
            }
            Ok((n, s))
        }
    ),
    slot!(
        "proxy_busy_buffers_size",
        Args::TAKE1,
        busy_buffers_size,
        p_size
    ),
    slot!(
        "proxy_max_temp_file_size",
        Args::TAKE1,
        max_temp_file_size,
        |cx: &mut Cx<'_>| -> Result<u64, SetError> { Ok(core_conf::offset(cx.d, 0)?) }
    ),
    slot!(
        "proxy_temp_file_write_size",
        Args::TAKE1,
        temp_file_write_size,
        p_size
    ),
    slot!(
        "proxy_temp_path",
        Args(Args::TAKE1.0 | Args::TAKE2.0 | Args::TAKE3.0 | Args::TAKE4.0),
        temp_path,
        |cx: &mut Cx<'_>| -> Result<String, SetError> { Ok(cx.arg(0).to_string()) }
    ),
    slot!(
        "proxy_next_upstream",
        Args::ONE_MORE,
        next_upstream,
        parse_next_upstream
    ),
    slot!(
        "proxy_next_upstream_tries",
        Args::TAKE1,
        next_upstream_tries,
        |cx: &mut Cx<'_>| -> Result<usize, SetError> { Ok(core_conf::num(cx.d, 0)?) }
    ),
    slot!(
        "proxy_next_upstream_timeout",
        Args::TAKE1,
        next_upstream_timeout,
        p_msec
    ),
    slot!(
        "proxy_intercept_errors",
        Args::FLAG,
        intercept_errors,
        p_flag
    ),
];

fn parse_next_upstream(cx: &mut Cx<'_>) -> Result<u32, SetError> {
    let mut bits = 0;
    for a in &cx.d.args {
        bits |= match a.as_str() {
            "error" => Ft::Error.bit(),
            "timeout" => Ft::Timeout.bit(),
            "invalid_header" => Ft::InvalidHeader.bit(),
            "http_500" => Ft::Http500.bit(),
            "http_502" => Ft::Http502.bit(),
            "http_503" => Ft::Http503.bit(),
            "http_504" => Ft::Http504.bit(),
            "http_403" => Ft::Http403.bit(),
            "http_404" => Ft::Http404.bit(),
            "http_429" => Ft::Http429.bit(),
            "non_idempotent" => FT_NON_IDEMPOTENT,
            "off" => FT_OFF,
            v => return Err(format!("invalid value \"{v}\"").into()),
        };
    }
    if bits & FT_OFF != 0 && bits != FT_OFF {
        return Err("invalid value \"off\"".into());
    }
    Ok(bits)
}

/// nginx: `ngx_http_proxy_pass()`.
fn set_pass(cx: &mut Cx<'_>) -> Result<(), SetError> {
    if cx.loc_conf::<ProxyLocConf>()?.pass.is_some() {
        return Err("is duplicate".into());
    }
    let url = cx.arg(0).to_string();
    if url.contains('$') {
        return Err("variables in \"proxy_pass\" are not supported by rginx".into());
    }
    let rest = if let Some(r) = url.strip_prefix("http://") {
        r
    } else if url.starts_with("https://") {
        return Err("https protocol requires SSL support".into());
    } else {
        return Err(format!("invalid URL prefix in \"{url}\"").into());
    };
    let (hostport, uri) = if let Some(h) = rest.strip_prefix("unix:") {
        // unix:/path:/uri — the socket path ends at the first ':' after it
        match h.find(':') {
            Some(i) => (format!("unix:{}", &h[..i]), Some(h[i + 1..].to_string())),
            None => (format!("unix:{h}"), None),
        }
    } else {
        match rest.find('/') {
            Some(i) => (rest[..i].to_string(), Some(rest[i..].to_string())),
            None => (rest.to_string(), None),
        }
    };
    let (host, port) = split_host_port(&hostport, 80).map_err(SetError::from)?;
    let explicit_port = hostport.starts_with('[') && hostport.contains("]:")
        || !hostport.starts_with('[') && hostport.contains(':') && !hostport.starts_with("unix:");
    let file = cx.d.file.to_string();
    let line = cx.d.line;
    let m = cx.main_conf::<UpstreamMainConf>()?;
    // `http://NAME` names an upstream block (now or later); with an explicit port it is a host.
    let group = if explicit_port || host.starts_with("unix:") {
        m.add(&host, Some((host.clone(), port, file, line)))
    } else {
        match m.upstreams.iter().position(|u| u.explicit && u.name == host) {
            Some(i) => i,
            None => m.add(&host, Some((host.clone(), port, file, line))),
        }
    };
    let location = cx.loc.core.name.clone();
    let proxy_host = if port == 80 || host.starts_with("unix:") { host.clone() } else { format!("{host}:{port}") };
    let proxy_host = if host.starts_with("unix:") { "localhost".to_string() } else { proxy_host };
    cx.loc_conf::<ProxyLocConf>()?.pass = Some(ProxyPass { url, host: proxy_host, uri, group, location });
    cx.loc.core.handler = Some(proxy_handler);
    Ok(())
}

fn set_header(cx: &mut Cx<'_>) -> Result<(), SetError> {
    let name = cx.arg(0).to_string();
    let v = ComplexValue::compile(cx.arg(1), cx.modules)?;
    cx.loc_conf::<ProxyLocConf>()?.set_headers.get_or_insert_with(Vec::new).push((name, v));
    Ok(())
}

fn set_redirect(cx: &mut Cx<'_>) -> Result<(), SetError> {
    let modules = cx.modules;
    let (a0, a1) = (cx.arg(0).to_string(), cx.d.args.get(1).cloned());
    let c = cx.loc_conf::<ProxyLocConf>()?;
    match (a0.as_str(), a1) {
        ("off", None) => c.redirect = Some(Redirect::Off),
        ("default", None) => match c.redirect.get_or_insert(Redirect::List(Vec::new())) {
            Redirect::List(l) => l.push((String::new(), ComplexValue::default())),
            r => *r = Redirect::Default,
        },
        (_, None) => return Err(format!("invalid parameter \"{a0}\"").into()),
        (from, Some(to)) => {
            let to = ComplexValue::compile(&to, modules)?;
            match c.redirect.get_or_insert(Redirect::List(Vec::new())) {
                Redirect::List(l) => l.push((from.to_string(), to)),
                r => *r = Redirect::List(vec![(from.to_string(), to)]),
            }
        }
    }
    Ok(())
}

impl HttpModule for ProxyModule {
    fn name(&self) -> &'static str {
        "ngx_http_proxy_module"
    }
    fn commands(&self) -> &'static [Command] {
        COMMANDS
    }
    fn variables(&self) -> &'static [VariableDef] {
        PROXY_VARIABLES
    }
    fn create_loc_conf(&self) -> Option<AnyConf> {
        Some(Box::new(ProxyLocConf::default()))
    }
    /// nginx: `ngx_http_proxy_merge_loc_conf()`.
    fn merge_loc_conf(&self, prev: &Confs, conf: &mut Confs) -> Result<(), String> {
        conf::merge_loc_conf(prev, conf)
    }
    fn postconfiguration(&self, _http: &mut HttpConf) -> Result<(), ConfError> {
        Ok(())
    }
}

/// functions; rginx keeps the choice in the module's context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// nginx: `ngx_http_proxy_process_status_line()`.
    StatusLine,
    /// nginx: `ngx_http_proxy_process_header()`.
    Header,
}

/// Per-request proxy state. nginx: `ngx_http_proxy_ctx_t`.
pub struct ProxyCtx {
    /// Which parser `process_header` runs.
    phase: Phase,
    /// The location's settings.
    shared: Arc<ProxyShared>,
    /// The chunked decoder of a chunked response (`input_filter_init` sets it).
    chunked: Option<ChunkedDecoder>,
    /// Our request asked the upstream to close after answering (`Connection: close`, or
    /// HTTP/1.0 without `keep-alive`): the connection is never cached for keepalive, as the
    /// peer is about to close it. nginx caches it anyway and may then find it closed when it
    /// reuses it (retried, but logged as an error).
    closes: bool,
    /// The client's chunked body is streamed still chunked: `Transfer-Encoding: chunked`, and
    /// `body_output_filter` frames each piece. nginx: `ctx->internal_chunked`.
    internal_chunked: bool,
    /// The upstream answered without a status line (HTTP/0.9): no header lines follow.
    /// nginx sets `r->http_version = NGX_HTTP_VERSION_9` for this, which the client's own
    /// HTTP/0.9 request also sets, so rginx keeps the upstream's case apart.
    upstream_http09: bool,
}

/// The content handler. nginx: `ngx_http_proxy_handler()`.
///
/// The context is this worker's spare one when there is one (`upstream::spare`): it usually
/// served this location already, so it is re-initialised in place and keeps its references to
/// the location's settings — no allocation, and no reference count that the workers share is
/// written. nginx allocates `u` and the ctx from the request's pool.
fn proxy_handler(cy: &mut Cycle, rid: RequestId) -> HandlerRc {
    let Cycle { requests, http, .. } = &mut *cy;
    let Some(r) = requests.get(rid) else {
        return HandlerRc::Error;
    };
    let Some(plcf) = r.loc.confs.get::<ProxyLocConf>() else {
        return HandlerRc::Status(500);
    };
    let (Some(shared), Some(uconf)) = (plcf.shared.as_ref(), plcf.upstream.as_ref()) else {
        return HandlerRc::Status(500);
    };
    // A chunked body is streamed only to an HTTP/1.1 upstream (re-chunked); for HTTP/1.0 it
    // is read whole to learn its length.
    let no_buffering = !uconf.request_buffering && (!r.headers_in.chunked || shared.http_version == 1001);
    let ctx = match upstream::spare::<ProxyCtx>(http) {
        Some(mut ctx) => {
            let same_location = ctx.module_mut::<ProxyCtx>().is_some_and(|m| m.reset(shared));
            ctx.set_conf(uconf);
            ctx.u.resolved.group = shared.pass.group;
            if !same_location {
                // (the context's last request, of this location, set the same host)
                ctx.u.resolved.host.clone_from(&shared.pass.host);
            }
            ctx
        }
        None => {
            let resolved = Resolved { group: shared.pass.group, host: shared.pass.host.clone() };
            UpstreamCtx::new(Box::new(ProxyCtx::new(Arc::clone(shared))), Arc::clone(uconf), resolved)
        }
    };
    trace::step(cy, rid, format_args!("proxy handler: proxy_pass http://{}", ctx.u.resolved.host));
    if upstream::attach(cy, rid, ctx).is_none() {
        return HandlerRc::Status(500);
    }
    match body::read_client_request_body(cy, rid, upstream::init, no_buffering) {
        HandlerRc::Status(s) => HandlerRc::Status(s),
        HandlerRc::Error => HandlerRc::Error,
        _ => HandlerRc::Done,
    }
}

impl ProxyCtx {
    /// The state of a new request. nginx: `ngx_pcalloc(r->pool, sizeof(ngx_http_proxy_ctx_t))`.
    fn new(shared: Arc<ProxyShared>) -> ProxyCtx {
        ProxyCtx {
            phase: Phase::StatusLine,
            shared,
            chunked: None,
            closes: true,
            internal_chunked: false,
            upstream_http09: false,
        }
    }

    /// Makes a spare context new for the next request; the settings' reference is replaced
    /// only when the request is for another location.
    /// Returns whether the context's last request was of the same location (`shared`).
    fn reset(&mut self, shared: &Arc<ProxyShared>) -> bool {
        let same = Arc::ptr_eq(&self.shared, shared);
        if !same {
            self.shared = Arc::clone(shared);
        }
        self.phase = Phase::StatusLine;
        self.chunked = None;
        self.closes = true;
        self.internal_chunked = false;
        self.upstream_http09 = false;
        same
    }
}

impl UpstreamHandler for ProxyCtx {
    /// rginx: a request that says `Connection: close` never leaves its connection cached.
    fn may_keep_connection(&self) -> bool {
        !self.closes
    }

    /// nginx: `ngx_http_proxy_create_request()` (create_request.rs).
    fn create_request(&mut self, cx: &mut UpstreamCx<'_>) -> Result<(), UpstreamError> {
        ProxyCtx::create_request(self, cx)
    }

    /// The status line, then the header lines (process_header.rs).
    fn process_header(&mut self, cx: &mut UpstreamCx<'_>) -> Result<Step, UpstreamError> {
        if self.phase == Phase::StatusLine {
            match self.process_status_line(cx)? {
                Step::Again => return Ok(Step::Again),
                Step::Done(()) => {
                    if self.upstream_http09 {
                        return Ok(Step::Done(()));
                    }
                }
            }
        }
        // here: the status line is in; parse header lines (nginx swapped u->process_header)
        self.process_header_lines(cx)
    }

    /// nginx: `ngx_http_proxy_finalize_request()` — only a debug line.
    fn finalize_request(&mut self, cx: &mut UpstreamCx<'_>, rc: HandlerRc) {
        cx.debug(format_args!("finalize http proxy request: {rc:?}"));
    }

    /// nginx: `ngx_http_proxy_reinit_request()`.
    fn reinit_request(&mut self, _cx: &mut UpstreamCx<'_>) -> Result<(), UpstreamError> {
        self.phase = Phase::StatusLine;
        self.chunked = None;
        self.upstream_http09 = false;
        Ok(())
    }

    /// nginx: `ngx_http_proxy_input_filter_init()` (input_filter.rs).
    fn input_filter_init(&mut self, cx: &mut UpstreamCx<'_>) -> Result<(), UpstreamError> {
        ProxyCtx::input_filter_init(self, cx)
    }

    /// nginx: `ngx_http_proxy_non_buffered_chunked_filter()` / `_copy_filter()` (input_filter.rs).
    fn input_filter(&mut self, cx: &mut UpstreamCx<'_>, bytes: usize) -> Result<(), UpstreamError> {
        ProxyCtx::input_filter(self, cx, bytes)
    }

    /// nginx: `ngx_http_proxy_rewrite_redirect()` (redirect.rs).
    fn rewrite_redirect(&mut self, cx: &UpstreamCx<'_>, value: &mut Vec<u8>) -> Rewrite {
        ProxyCtx::rewrite_redirect(self, cx, value)
    }

    /// nginx: `ngx_http_proxy_body_output_filter()` (input_filter.rs).
    fn body_output_filter(&mut self, _cx: &mut UpstreamCx<'_>, body: &mut Chain, last: bool) {
        ProxyCtx::body_output_filter(self, body, last)
    }
}
