//! `proxy_pass`: nginx's reverse proxy, an upstream module written against the public
//! `UpstreamHandler` trait like any third-party module.
//!
//! nginx: src/http/modules/ngx_http_proxy_module.c — `ngx_http_proxy_handler`,
//! `ngx_http_proxy_create_request`, `ngx_http_proxy_process_status_line`,
//! `ngx_http_proxy_process_header`, `ngx_http_proxy_input_filter_init`,
//! `ngx_http_proxy_non_buffered_chunked_filter` / `_copy_filter`,
//! `ngx_http_proxy_rewrite_redirect`, `ngx_http_proxy_merge_loc_conf`, `ngx_http_proxy_headers[]`,
//! `ngx_http_proxy_hide_headers[]`.
//!
//! As the seed's mytest module does in C (`u->process_header = ngx_http_proxy_process_header`
//! after the status line), `ProxyCtx::process_header` first parses the status line, then
//! switches its `Phase` to the header parser.
//!
//! Differs from nginx:
//! - no variables in `proxy_pass`, no `https://`, no caching, no `proxy_store`.

use std::io::Write;
use std::sync::Arc;

use crate::conf::{self, Args, ConfError, Ctx};
use crate::core::buf::{chain_len, Buf, Chain};
use crate::core::step::{HandlerRc, Step};
use crate::http::cycle::Cycle;
use crate::http::cycle::RequestId;
use crate::http::parse::{self, Chunked, ChunkedDecoder, HeaderLine};
use crate::http::variables::ComplexValue;
use crate::http::{body, AnyConf, Command, Confs, Cx, HttpConf, HttpModule, SetError, VariableDef};
use crate::upstream::conf::{split_host_port, Ft, UpstreamConf, UpstreamMainConf, FT_NON_IDEMPOTENT, FT_OFF};
use crate::upstream::{self, response, Resolved, Rewrite, UpstreamError, UpstreamHandler};

/// The parsed `proxy_pass` URL. nginx: `plcf->url`, `plcf->vars`, `plcf->location`.
#[derive(Clone, Debug)]
pub struct ProxyPass {
    /// The URL as written ("http://b:8080/x/").
    pub url: String,
    /// `$proxy_host`: "host" or "host:port" (port omitted when 80).
    pub host: String,
    /// The URI part, if any ("/x/"): the location prefix is replaced by it.
    pub uri: Option<String>,
    /// Upstream group index.
    pub group: usize,
    /// The location's name (prefix) for the URI replacement.
    pub location: String,
}

/// `proxy_redirect`. nginx: `plcf->redirect` / `plcf->redirects`.
#[derive(Clone, Debug)]
pub enum Redirect {
    /// `proxy_redirect off`.
    Off,
    /// `proxy_redirect default` (and the implicit default).
    Default,
    /// Explicit `FROM TO` pairs (may include the default).
    List(Vec<(String, ComplexValue)>),
}

/// The proxy module's location conf. nginx: `ngx_http_proxy_loc_conf_t`. `None` = unset.
#[derive(Default)]
pub struct ProxyLocConf {
    /// `proxy_pass` (not inherited, as in nginx).
    pub pass: Option<ProxyPass>,
    /// `proxy_set_header`s (inherited as a whole).
    pub set_headers: Option<Vec<(String, ComplexValue)>>,
    /// `proxy_hide_header`s.
    pub hide: Option<Vec<String>>,
    /// `proxy_pass_header`s.
    pub pass_headers: Option<Vec<String>>,
    /// `proxy_http_version` (1000 or 1001).
    pub http_version: Option<u16>,
    /// `proxy_redirect`.
    pub redirect: Option<Redirect>,
    /// Upstream settings as written.
    pub connect_timeout: Option<u64>,
    /// `proxy_send_timeout`.
    pub send_timeout: Option<u64>,
    /// `proxy_read_timeout`.
    pub read_timeout: Option<u64>,
    /// `proxy_buffering`.
    pub buffering: Option<bool>,
    /// `proxy_request_buffering`.
    pub request_buffering: Option<bool>,
    /// `proxy_buffer_size`.
    pub buffer_size: Option<usize>,
    /// `proxy_buffers`.
    pub bufs: Option<(usize, usize)>,
    /// `proxy_busy_buffers_size`.
    pub busy_buffers_size: Option<usize>,
    /// `proxy_max_temp_file_size`.
    pub max_temp_file_size: Option<u64>,
    /// `proxy_temp_file_write_size`.
    pub temp_file_write_size: Option<usize>,
    /// `proxy_temp_path`.
    pub temp_path: Option<String>,
    /// `proxy_next_upstream`.
    pub next_upstream: Option<u32>,
    /// `proxy_next_upstream_tries`.
    pub next_upstream_tries: Option<usize>,
    /// `proxy_next_upstream_timeout`.
    pub next_upstream_timeout: Option<u64>,
    /// `proxy_intercept_errors`.
    pub intercept_errors: Option<bool>,
    /// The merged settings handed to the framework.
    pub upstream: Option<Arc<UpstreamConf>>,
    /// The merged header list: (name, value) to send, in nginx's order.
    pub headers: Option<Arc<Vec<(String, ComplexValue)>>>,
    /// Everything a request of this location needs, shared by its requests (one `Arc`
    /// clone per request instead of copies).
    pub shared: Option<Arc<ProxyShared>>,
}

/// The per-location proxy settings a request uses. nginx: the `plcf` a request reads through
/// `ngx_http_get_module_loc_conf()`.
#[derive(Debug)]
pub struct ProxyShared {
    pass: ProxyPass,
    headers: Arc<Vec<(String, ComplexValue)>>,
    http_version: u16,
    redirect: Redirect,
}

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
    Ok(conf::msec(cx.d, 0)?)
}
fn p_size(cx: &mut Cx<'_>) -> Result<usize, SetError> {
    Ok(conf::size(cx.d, 0)?)
}
fn p_flag(cx: &mut Cx<'_>) -> Result<bool, SetError> {
    Ok(conf::flag(cx.d)?)
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
            let n = conf::num(cx.d, 0)?;
            let s = conf::size(cx.d, 1)?;
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
        |cx: &mut Cx<'_>| -> Result<u64, SetError> { Ok(conf::offset(cx.d, 0)?) }
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
        |cx: &mut Cx<'_>| -> Result<usize, SetError> { Ok(conf::num(cx.d, 0)?) }
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

/// nginx: `ngx_http_proxy_hide_headers[]`.
const HIDE_HEADERS: &[&str] = &[
    "date",
    "server",
    "x-pad",
    "x-accel-expires",
    "x-accel-redirect",
    "x-accel-limit-rate",
    "x-accel-buffering",
    "x-accel-charset",
];

/// nginx: `ngx_http_proxy_headers[]` (values resolved in `create_request`).
const DEFAULT_HEADERS: &[(&str, &str)] = &[
    ("Host", "$proxy_host"),
    ("Connection", "close"),
    ("Content-Length", ""),
    ("Transfer-Encoding", ""),
    ("TE", ""),
    ("Keep-Alive", ""),
    ("Expect", ""),
    ("Upgrade", ""),
];

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
        let Some(p) = prev.get::<ProxyLocConf>() else {
            return Ok(());
        };
        let Some(c) = conf.get_mut::<ProxyLocConf>() else {
            return Ok(());
        };
        macro_rules! inherit {
            ($($f:ident),*) => { $( if c.$f.is_none() { c.$f = p.$f.clone(); } )* };
        }
        inherit!(
            set_headers,
            hide,
            pass_headers,
            http_version,
            redirect,
            connect_timeout,
            send_timeout,
            read_timeout,
            buffering,
            request_buffering,
            buffer_size,
            bufs,
            busy_buffers_size,
            max_temp_file_size,
            temp_file_write_size,
            temp_path,
            next_upstream,
            next_upstream_tries,
            next_upstream_timeout,
            intercept_errors
        );
        let d = UpstreamConf::default();
        let buffer_size = c.buffer_size.unwrap_or(d.buffer_size);
        let bufs = c.bufs.unwrap_or(d.bufs);
        let busy = c.busy_buffers_size.unwrap_or(buffer_size.max(bufs.1) * 2);
        if bufs.0 < 2 {
            return Err("there must be at least 2 \"proxy_buffers\"".into());
        }
        if busy < buffer_size.max(bufs.1) {
            return Err("\"proxy_busy_buffers_size\" must be equal to or greater than the maximum of the value of \"proxy_buffer_size\" and one of the \"proxy_buffers\"".into());
        }
        if busy > (bufs.0 - 1) * bufs.1 {
            return Err(
                "\"proxy_busy_buffers_size\" must be less than the size of all \"proxy_buffers\" minus one buffer"
                    .into(),
            );
        }
        let mut hide: Vec<String> = HIDE_HEADERS.iter().map(|s| s.to_string()).collect();
        if let Some(ph) = &c.pass_headers {
            hide.retain(|h| !ph.contains(h));
        }
        hide.extend(c.hide.clone().unwrap_or_default());
        let u = UpstreamConf {
            connect_timeout: c.connect_timeout.unwrap_or(d.connect_timeout),
            send_timeout: c.send_timeout.unwrap_or(d.send_timeout),
            read_timeout: c.read_timeout.unwrap_or(d.read_timeout),
            buffering: c.buffering.unwrap_or(true),
            request_buffering: c.request_buffering.unwrap_or(true),
            buffer_size,
            bufs,
            busy_buffers_size: busy,
            max_temp_file_size: c.max_temp_file_size.unwrap_or(d.max_temp_file_size),
            temp_file_write_size: c.temp_file_write_size.unwrap_or(buffer_size.max(bufs.1) * 2),
            temp_path: c.temp_path.clone().map(Into::into).unwrap_or(d.temp_path),
            hide_headers: hide,
            next_upstream: c.next_upstream.unwrap_or(d.next_upstream),
            next_upstream_tries: c.next_upstream_tries.unwrap_or(0),
            next_upstream_timeout: c.next_upstream_timeout.unwrap_or(0),
            intercept_errors: c.intercept_errors.unwrap_or(false),
        };
        c.upstream = Some(Arc::new(u));
        let headers = Arc::new(merge_headers(c.set_headers.as_deref().unwrap_or(&[])));
        c.shared = c.pass.clone().map(|pass| {
            Arc::new(ProxyShared {
                pass,
                headers: headers.clone(),
                http_version: c.http_version.unwrap_or(1000),
                redirect: c.redirect.clone().unwrap_or(Redirect::Default),
            })
        });
        c.headers = Some(headers);
        Ok(())
    }
    fn postconfiguration(&self, _http: &mut HttpConf) -> Result<(), ConfError> {
        Ok(())
    }
}

/// The user's `proxy_set_header`s first, then nginx's defaults they do not override.
/// nginx: `ngx_http_proxy_init_headers()`.
fn merge_headers(user: &[(String, ComplexValue)]) -> Vec<(String, ComplexValue)> {
    let mut v: Vec<(String, ComplexValue)> = user.to_vec();
    for (n, val) in DEFAULT_HEADERS {
        if !user.iter().any(|(u, _)| u.eq_ignore_ascii_case(n)) {
            // `$proxy_host` resolves through the proxy module's own variable table.
            let cv = if val.starts_with('$') {
                ComplexValue::compile(val, &[&ProxyModule]).unwrap_or_default()
            } else {
                ComplexValue::literal(val)
            };
            v.push((n.to_string(), cv));
        }
    }
    v
}

/// Where `ProxyCtx::process_header` stands. nginx swaps `u->process_header` between these two
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
    phase: Phase,
    shared: Arc<ProxyShared>,
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
fn proxy_handler(cy: &mut Cycle, rid: RequestId) -> HandlerRc {
    let Some(r) = cy.requests.get(rid) else {
        return HandlerRc::Error;
    };
    let Some(plcf) = r.loc.confs.get::<ProxyLocConf>() else {
        return HandlerRc::Status(500);
    };
    let (Some(shared), Some(uconf)) = (plcf.shared.clone(), plcf.upstream.clone()) else {
        return HandlerRc::Status(500);
    };
    // A chunked body is streamed only to an HTTP/1.1 upstream (re-chunked); for HTTP/1.0 it
    // is read whole to learn its length.
    let no_buffering = !uconf.request_buffering && (!r.headers_in.chunked || shared.http_version == 1001);
    let resolved = Resolved { group: shared.pass.group, host: shared.pass.host.clone() };
    let ctx = ProxyCtx {
        phase: Phase::StatusLine,
        shared,
        chunked: None,
        closes: true,
        internal_chunked: false,
        upstream_http09: false,
    };
    if upstream::create(cy, rid, Box::new(ctx), uconf, resolved).is_none() {
        return HandlerRc::Status(500);
    }
    match body::read_client_request_body(cy, rid, upstream::init, no_buffering) {
        HandlerRc::Status(s) => HandlerRc::Status(s),
        HandlerRc::Error => HandlerRc::Error,
        _ => HandlerRc::Done,
    }
}

/// Escapes a URI path for the request line. nginx: `ngx_escape_uri(NGX_ESCAPE_URI)`.
fn escape_uri(out: &mut Vec<u8>, s: &[u8]) {
    for &b in s {
        if b <= b' ' || b >= 0x7f || b == b'%' || b == b'?' || b == b'#' || b == b'"' {
            let _ = write!(out, "%{b:02X}");
        } else {
            out.push(b);
        }
    }
}

impl ProxyCtx {
    /// The URI for the upstream request line. nginx: `ngx_http_proxy_create_key`-like logic in
    /// `ngx_http_proxy_create_request()`: no URI in `proxy_pass` → the client's URI as sent;
    /// with one → the location prefix of the normalised URI replaced by it.
    fn upstream_uri(&self, r: &crate::http::request::Request, out: &mut Vec<u8>) {
        match &self.shared.pass.uri {
            // nginx's `r->valid_unparsed_uri`: "http://h?x" has no path to pass on as sent
            None if !r.internal && !r.head.empty_path_in_uri => out.extend_from_slice(r.unparsed_uri()),
            None => {
                escape_uri(out, &r.uri);
                if !r.args.is_empty() {
                    out.push(b'?');
                    out.extend_from_slice(&r.args);
                }
            }
            Some(u) => {
                out.extend_from_slice(u.as_bytes());
                let loc = self.shared.pass.location.as_bytes();
                let rest = if r.uri.starts_with(loc) { &r.uri[loc.len()..] } else { &r.uri[..] };
                escape_uri(out, rest);
                if !r.args.is_empty() {
                    out.push(b'?');
                    out.extend_from_slice(&r.args);
                }
            }
        }
    }

    /// nginx: `ngx_http_proxy_process_status_line()`.
    fn process_status_line(&mut self, cy: &mut Cycle, rid: RequestId) -> Result<Step, UpstreamError> {
        let Some((r, u, _)) = upstream::parts(cy, rid) else {
            return Err(UpstreamError::Internal("gone".into()));
        };
        let mut pos = u.buffer.pos;
        match parse::parse_status_line(&u.buffer.mem[..u.buffer.last], &mut pos) {
            Ok(Step::Again) => Ok(Step::Again),
            Ok(Step::Done(st)) => {
                u.headers_in.status_n = st.code;
                u.headers_in.status_line = String::from_utf8_lossy(&u.buffer.mem[st.start..st.end]).into_owned();
                if st.http_version < 1001 {
                    u.headers_in.connection_close = true;
                }
                u.buffer.pos = pos;
                self.phase = Phase::Header;
                Ok(Step::Done(()))
            }
            Err(_) => {
                // nginx: "upstream sent no valid HTTP/1.0 header" — the whole response is an
                // HTTP/0.9 body, sent to the client without a header (`u.buffer.pos` stays
                // at its first byte).
                r.http_version = 9;
                self.upstream_http09 = true;
                u.headers_in.status_n = 200;
                u.headers_in.connection_close = true;
                u.state.status = 200;
                upstream::log_error(cy, rid, "upstream sent no valid HTTP/1.0 header");
                Ok(Step::Done(()))
            }
        }
    }

    /// nginx: `ngx_http_proxy_process_header()`; an invalid header is logged here, with the
    /// request context, as nginx's module does (the framework only tries the next peer).
    fn process_header_lines(&mut self, cy: &mut Cycle, rid: RequestId) -> Result<Step, UpstreamError> {
        match Self::parse_header_lines(cy, rid) {
            Ok(Step::Done(())) if self.closes => {
                if let Some(u) = upstream::u_mut(cy, rid) {
                    u.keepalive = false;
                }
                Ok(Step::Done(()))
            }
            Ok(step) => Ok(step),
            Err(msg) => {
                upstream::log_error(cy, rid, &msg);
                Err(UpstreamError::InvalidHeader)
            }
        }
    }

    /// Parses header lines until the blank line; `Err` is the message for the error log.
    fn parse_header_lines(cy: &mut Cycle, rid: RequestId) -> Result<Step, String> {
        let Some((_, u, _)) = upstream::parts(cy, rid) else {
            return Ok(Step::Again);
        };
        loop {
            let mut pos = u.buffer.pos;
            match parse::parse_header_line(&u.buffer.mem[..u.buffer.last], &mut pos) {
                Ok(Step::Again) => return Ok(Step::Again),
                Ok(Step::Done(HeaderLine::Header { name, value })) => {
                    let n = String::from_utf8_lossy(&u.buffer.mem[name]).into_owned();
                    let v = String::from_utf8_lossy(&u.buffer.mem[value]).into_owned();
                    u.buffer.pos = pos;
                    let hi = &mut u.headers_in;
                    if n.eq_ignore_ascii_case("content-length") {
                        let len =
                            v.parse::<u64>().ok().filter(|_| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()));
                        match len {
                            Some(l) if hi.content_length_n.is_none_or(|o| o == l) => hi.content_length_n = Some(l),
                            _ => return Err(format!("upstream sent invalid \"Content-Length\" header: \"{n}: {v}\"")),
                        }
                    } else if n.eq_ignore_ascii_case("transfer-encoding") {
                        if v.eq_ignore_ascii_case("chunked") {
                            hi.chunked = true;
                        } else {
                            return Err(format!("upstream sent unknown \"Transfer-Encoding\": \"{v}\""));
                        }
                    } else if n.eq_ignore_ascii_case("connection") && v.to_ascii_lowercase().contains("close") {
                        hi.connection_close = true;
                    }
                    hi.headers.push((n, v));
                }
                Ok(Step::Done(HeaderLine::End)) => {
                    u.buffer.pos = pos;
                    let hi = &mut u.headers_in;
                    if hi.chunked && hi.content_length_n.is_some() {
                        return Err(
                            "upstream sent \"Content-Length\" and \"Transfer-Encoding\" headers at the same time"
                                .into(),
                        );
                    }
                    u.keepalive = !hi.connection_close;
                    return Ok(Step::Done(()));
                }
                Err(_) => return Err(invalid_header_message(&u.buffer.mem[..u.buffer.last], u.buffer.pos)),
            }
        }
    }
}

/// nginx's "upstream sent invalid header: \"NAME...\xNN...\"": the line up to the byte that
/// broke it, then that byte in hex. The parser only says "invalid", and it never goes back on
/// a verdict, so the shortest prefix of the line it rejects ends at that byte.
fn invalid_header_message(buf: &[u8], start: usize) -> String {
    let rejects = |end: usize| {
        let mut pos = start;
        parse::parse_header_line(&buf[..end], &mut pos).is_err()
    };
    let (mut lo, mut hi) = (start + 1, buf.len());
    while lo < hi {
        let mid = (lo + hi) / 2;
        if rejects(mid) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    let mut bad = lo.saturating_sub(1).max(start);
    if bad > start && buf[bad - 1] == b'\r' {
        bad -= 1; // "CR not followed by LF": nginx points at the CR
    }
    let shown = String::from_utf8_lossy(&buf[start..bad]);
    format!("upstream sent invalid header: \"{shown}\\x{:02x}...\"", buf.get(bad).copied().unwrap_or(0))
}

impl UpstreamHandler for ProxyCtx {
    /// nginx: `ngx_http_proxy_create_request()`.
    fn create_request(&mut self, cy: &mut Cycle, rid: RequestId) -> Result<(), UpstreamError> {
        let Some(r) = cy.requests.get(rid) else {
            return Err(UpstreamError::Internal("gone".into()));
        };
        let mut head = Vec::with_capacity(512);
        head.extend_from_slice(r.method_name());
        head.push(b' ');
        let uri_start = head.len();
        self.upstream_uri(r, &mut head);
        let uri = String::from_utf8_lossy(&head[uri_start..]).into_owned();
        head.extend_from_slice(if self.shared.http_version == 1001 { b" HTTP/1.1\r\n" } else { b" HTTP/1.0\r\n" });
        // nginx: `ctx->internal_body_length` — the client's length, or what was read of a
        // chunked body; none (and chunked framing) while a chunked body is still streaming.
        self.internal_chunked = r.headers_in.chunked && r.request_body.as_ref().is_some_and(|b| b.reading);
        let body_len: Option<u64> = r.request_body.as_ref().filter(|_| !self.internal_chunked).map(|b| {
            if b.no_buffering {
                r.headers_in.content_length_n.unwrap_or(0)
            } else {
                b.received
            }
        });
        let mut val = Vec::new();
        let mut sent_connection = String::new();
        for (name, cv) in self.shared.headers.iter() {
            val.clear();
            if name.eq_ignore_ascii_case("Content-Length") && cv.source.is_empty() {
                match body_len {
                    Some(n) if n > 0 || r.headers_in.content_length_n.is_some() || r.headers_in.chunked => {
                        let _ = write!(val, "{n}");
                    }
                    _ => {}
                }
            } else if name.eq_ignore_ascii_case("Transfer-Encoding") && cv.source.is_empty() {
                if self.internal_chunked {
                    val.extend_from_slice(b"chunked");
                }
            } else {
                cv.eval_header(cy, rid, &mut val);
            }
            if val.is_empty() {
                continue;
            }
            if name.eq_ignore_ascii_case("Connection") {
                sent_connection = String::from_utf8_lossy(&val).to_ascii_lowercase();
            }
            head.extend_from_slice(name.as_bytes());
            head.extend_from_slice(b": ");
            head.extend_from_slice(&val);
            head.extend_from_slice(b"\r\n");
        }
        self.closes = sent_connection.contains("close")
            || (self.shared.http_version < 1001 && !sent_connection.contains("keep-alive"));
        let buf = &r.header_in.mem;
        for (n, v) in &r.head.headers {
            let name = &buf[n.clone()];
            if self.shared.headers.iter().any(|(h, _)| h.as_bytes().eq_ignore_ascii_case(name)) {
                continue;
            }
            head.extend_from_slice(name);
            head.extend_from_slice(b": ");
            head.extend_from_slice(&buf[v.clone()]);
            head.extend_from_slice(b"\r\n");
        }
        head.extend_from_slice(b"\r\n");
        // The body: copies of memory buffers, shared file regions (nginx chains the same bufs),
        // kept for a retry. A streamed body is queued by the framework as it is sent.
        let mut body = Vec::new();
        if let Some(rb) = cy.requests.get_mut(rid).and_then(|r| r.request_body.as_mut()) {
            if !rb.no_buffering {
                for b in &rb.bufs {
                    body.push(match &b.file {
                        Some(f) => Buf::from_file(f.file.clone(), f.pos, f.last),
                        None => Buf::from_vec(b.data().to_vec()),
                    });
                }
            }
        }
        let Some(u) = upstream::u_mut(cy, rid) else {
            return Err(UpstreamError::Internal("gone".into()));
        };
        u.uri = uri;
        u.request_bufs.push_back(Buf::from_vec(head));
        u.request_bufs.extend(body);
        Ok(())
    }

    fn process_header(&mut self, cy: &mut Cycle, rid: RequestId) -> Result<Step, UpstreamError> {
        if self.phase == Phase::StatusLine {
            match self.process_status_line(cy, rid)? {
                Step::Again => return Ok(Step::Again),
                Step::Done(()) => {
                    if self.upstream_http09 {
                        return Ok(Step::Done(()));
                    }
                }
            }
        }
        // here: the status line is in; parse header lines (nginx swapped u->process_header)
        self.process_header_lines(cy, rid)
    }

    /// Frames each piece of a streamed chunked body as a chunk, and ends the body with the
    /// last chunk. nginx: `ngx_http_proxy_body_output_filter()`.
    fn body_output_filter(&mut self, _cy: &mut Cycle, _rid: RequestId, body: &mut Chain, last: bool) {
        if !self.internal_chunked {
            return;
        }
        let size = chain_len(body);
        if size > 0 {
            body.push_front(Buf::from_vec(format!("{size:x}\r\n").into_bytes()));
        }
        match (last, size > 0) {
            (true, true) => body.push_back(Buf::from_vec(b"\r\n0\r\n\r\n".to_vec())),
            (true, false) => body.push_back(Buf::from_vec(b"0\r\n\r\n".to_vec())),
            (false, true) => body.push_back(Buf::from_vec(b"\r\n".to_vec())),
            (false, false) => {}
        }
    }

    /// nginx: `ngx_http_proxy_finalize_request()` — only a debug line.
    fn finalize_request(&mut self, _cy: &mut Cycle, _rid: RequestId, rc: HandlerRc) {
        log::debug!("finalize http proxy request: {rc:?}");
    }

    /// nginx: `ngx_http_proxy_reinit_request()`.
    fn reinit_request(&mut self, _cy: &mut Cycle, _rid: RequestId) -> Result<(), UpstreamError> {
        self.phase = Phase::StatusLine;
        self.chunked = None;
        self.upstream_http09 = false;
        Ok(())
    }

    /// nginx: `ngx_http_proxy_input_filter_init()`.
    fn input_filter_init(&mut self, cy: &mut Cycle, rid: RequestId) -> Result<(), UpstreamError> {
        response::non_buffered_filter_init(cy, rid)?;
        let Some(u) = upstream::u_mut(cy, rid) else {
            return Ok(());
        };
        if u.length != Some(0) && u.headers_in.chunked {
            self.chunked = Some(ChunkedDecoder::new(i64::MAX as u64));
            u.length = Some(u64::MAX); // until the last chunk
        } else if u.length.is_none() {
            u.keepalive = false; // delimited by close
        }
        Ok(())
    }

    /// nginx: `ngx_http_proxy_non_buffered_chunked_filter()` / `ngx_http_proxy_copy_filter()`.
    fn input_filter(&mut self, cy: &mut Cycle, rid: RequestId, bytes: usize) -> Result<(), UpstreamError> {
        let Some(dec) = self.chunked.as_mut() else {
            return response::non_buffered_filter(cy, rid, bytes);
        };
        let Some((_, u, pool)) = upstream::parts(cy, rid) else {
            return Ok(());
        };
        let mut pos = u.buffer.last - bytes;
        let end = u.buffer.last;
        while pos < end {
            let res = dec.parse(&u.buffer.mem[..end], &mut pos);
            match res {
                Ok(Chunked::Data(range)) => response::emit(u, pool, range.start, range.end),
                Ok(Chunked::Again) => break,
                Ok(Chunked::Done) => {
                    u.length = Some(0);
                    if pos < end {
                        log::warn!("upstream sent data after final chunk");
                        u.keepalive = false;
                    }
                    break;
                }
                Err(_) => {
                    u.keepalive = false;
                    upstream::log_error(cy, rid, "upstream sent invalid chunked response");
                    return Err(UpstreamError::InvalidBody);
                }
            }
        }
        u.buffer.pos = end;
        Ok(())
    }

    /// nginx: `ngx_http_proxy_rewrite_redirect()` with the `proxy_redirect` rules.
    fn rewrite_redirect(&mut self, cy: &Cycle, rid: RequestId, value: &mut String) -> Rewrite {
        let rules: Vec<(String, Option<&ComplexValue>)> = match &self.shared.redirect {
            Redirect::Off => return Rewrite::Declined,
            Redirect::Default => vec![(String::new(), None)],
            Redirect::List(l) => l.iter().map(|(f, t)| (f.clone(), (!f.is_empty()).then_some(t))).collect(),
        };
        for (from, to) in rules {
            let (from, to_bytes) = match to {
                None => {
                    // `default`: proxy_pass URL → location name ("url/" → "/" without a URI part).
                    match &self.shared.pass.uri {
                        Some(_) => (self.shared.pass.url.clone(), self.shared.pass.location.clone().into_bytes()),
                        None => (format!("{}/", self.shared.pass.url), b"/".to_vec()),
                    }
                }
                Some(t) => {
                    let mut v = Vec::new();
                    t.eval(cy, rid, &mut v);
                    (from, v)
                }
            };
            if !from.is_empty() && value.starts_with(&from) {
                let rest = value[from.len()..].to_string();
                *value = format!("{}{}", String::from_utf8_lossy(&to_bytes), rest);
                return Rewrite::Done;
            }
        }
        Rewrite::Declined
    }
}

/// nginx: `ngx_http_proxy_vars[]`.
pub static PROXY_VARIABLES: &[VariableDef] = &[
    VariableDef {
        name: "proxy_host",
        prefix: false,
        get: |cy, r, _, o| match upstream::u_ref(cy, r) {
            Some(u) => {
                o.extend_from_slice(u.resolved.host.as_bytes());
                true
            }
            None => false,
        },
    },
    VariableDef {
        name: "proxy_add_x_forwarded_for",
        prefix: false,
        get: |cy, r, _, o| {
            let Some(req) = cy.requests.get(r) else {
                return false;
            };
            if let Some(x) = req.header("x-forwarded-for") {
                o.extend_from_slice(x);
                o.extend_from_slice(b", ");
            }
            if let Some(p) = cy.ev.conns.get(req.connection).and_then(|c| c.peer) {
                let _ = write!(o, "{}", p.ip());
            }
            true
        },
    },
];
