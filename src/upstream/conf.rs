//! Upstream configuration: the per-location `UpstreamConf` every upstream module fills in, and
//! the `upstream NAME { server ...; }` blocks.
//!
//! nginx: `ngx_http_upstream_conf_t` (src/http/ngx_http_upstream.h), `ngx_http_upstream_add()`,
//! `ngx_http_upstream()` / `ngx_http_upstream_server()` (the `upstream` block and its `server`
//! directive), `ngx_http_upstream_init_main_conf()`, the keepalive module's `keepalive`
//! directives (src/http/modules/ngx_http_upstream_keepalive_module.c).
//!
//! Differs from nginx:
//! - a `proxy_pass` host that names no `upstream {}` block becomes an implicit group, resolved
//!   once when the configuration is read, exactly as nginx does; the groups live in the upstream
//!   module's main conf and are referred to by index.

use std::path::PathBuf;

use crate::conf::{self, Args, ConfError, Ctx, Directive};
use crate::event::connect::PeerAddr;
use crate::http::{AnyConf, Command, Cx, HttpConf, HttpModule, SetError};

/// `proxy_next_upstream` conditions. nginx: `NGX_HTTP_UPSTREAM_FT_*`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ft {
    /// A connection error, reset, or premature close.
    Error,
    /// A timeout.
    Timeout,
    /// An invalid or too big response header.
    InvalidHeader,
    /// The upstream answered 500.
    Http500,
    /// 502
    Http502,
    /// 503
    Http503,
    /// 504
    Http504,
    /// 403
    Http403,
    /// 404
    Http404,
    /// 429
    Http429,
    /// No live peer left.
    NoLive,
}

impl Ft {
    /// The bit of this condition in `UpstreamConf::next_upstream`.
    pub fn bit(self) -> u32 {
        1 << (self as u32)
    }
    /// The status a request gets when this failure ends it. nginx: the `status` computed in
    /// `ngx_http_upstream_next()`.
    pub fn status(self) -> u16 {
        match self {
            Ft::Timeout => 504,
            Ft::Http500 => 500,
            Ft::Http503 => 503,
            Ft::Http504 => 504,
            Ft::Http403 => 403,
            Ft::Http404 => 404,
            Ft::Http429 => 429,
            _ => 502,
        }
    }
}

impl std::fmt::Display for Ft {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Ft::Error => "error",
            Ft::Timeout => "timeout",
            Ft::InvalidHeader => "invalid_header",
            Ft::Http500 => "http_500",
            Ft::Http502 => "http_502",
            Ft::Http503 => "http_503",
            Ft::Http504 => "http_504",
            Ft::Http403 => "http_403",
            Ft::Http404 => "http_404",
            Ft::Http429 => "http_429",
            Ft::NoLive => "noliveupstream",
        })
    }
}

/// `proxy_next_upstream non_idempotent`.
pub const FT_NON_IDEMPOTENT: u32 = 1 << 30;
/// `proxy_next_upstream off`.
pub const FT_OFF: u32 = 1 << 31;

/// Settings an upstream module gives the framework. nginx: `ngx_http_upstream_conf_t`.
#[derive(Clone, Debug)]
pub struct UpstreamConf {
    /// `*_connect_timeout` (ms).
    pub connect_timeout: u64,
    /// `*_send_timeout` (ms).
    pub send_timeout: u64,
    /// `*_read_timeout` (ms).
    pub read_timeout: u64,
    /// `*_buffering`.
    pub buffering: bool,
    /// `*_request_buffering`.
    pub request_buffering: bool,
    /// `*_buffer_size`: the header buffer, and the only buffer when buffering is off.
    pub buffer_size: usize,
    /// `*_buffers NUM SIZE`.
    pub bufs: (usize, usize),
    /// `*_busy_buffers_size`.
    pub busy_buffers_size: usize,
    /// `*_max_temp_file_size`.
    pub max_temp_file_size: u64,
    /// `*_temp_file_write_size`.
    pub temp_file_write_size: usize,
    /// `*_temp_path`.
    pub temp_path: PathBuf,
    /// Upstream response headers not passed to the client (lowercase).
    /// nginx: `hide_headers_hash` built from the module's defaults, `*_hide_header` and
    /// `*_pass_header`.
    pub hide_headers: super::headers_in::HideHeaders,
    /// `*_next_upstream` bits (`Ft::bit`, `FT_NON_IDEMPOTENT`, `FT_OFF`).
    pub next_upstream: u32,
    /// `*_next_upstream_tries` (0 = unlimited).
    pub next_upstream_tries: usize,
    /// `*_next_upstream_timeout` ms (0 = unlimited).
    pub next_upstream_timeout: u64,
    /// `*_intercept_errors`.
    pub intercept_errors: bool,
}

impl Default for UpstreamConf {
    /// nginx 1.22's defaults for the proxy module.
    fn default() -> Self {
        UpstreamConf {
            connect_timeout: 60_000,
            send_timeout: 60_000,
            read_timeout: 60_000,
            buffering: true,
            request_buffering: true,
            buffer_size: 4096,
            bufs: (8, 4096),
            busy_buffers_size: 8192,
            max_temp_file_size: 1024 * 1024 * 1024,
            temp_file_write_size: 8192,
            temp_path: PathBuf::from("proxy_temp"),
            hide_headers: Default::default(),
            next_upstream: Ft::Error.bit() | Ft::Timeout.bit(),
            next_upstream_tries: 0,
            next_upstream_timeout: 0,
            intercept_errors: false,
        }
    }
}

/// One `server` line of an upstream block. nginx: `ngx_http_upstream_server_t`.
#[derive(Clone, Debug)]
pub struct ServerConf {
    /// Every address the name resolved to (each becomes a peer).
    pub addrs: Vec<PeerAddr>,
    /// The name as written (for `$upstream_addr` of unresolved... and logs).
    pub name: String,
    /// `weight=N` (default 1).
    pub weight: usize,
    /// `max_fails=N` (default 1; 0 disables accounting).
    pub max_fails: usize,
    /// `fail_timeout=T` ms (default 10s).
    pub fail_timeout: u64,
    /// `backup`.
    pub backup: bool,
    /// `down`.
    pub down: bool,
}

/// An upstream group, explicit (`upstream NAME {}`) or implicit (a `proxy_pass` host).
/// nginx: `ngx_http_upstream_srv_conf_t`.
#[derive(Clone, Debug, Default)]
pub struct UpstreamSrvConf {
    /// The block name or the implicit `host:port`.
    pub name: String,
    /// Servers.
    pub servers: Vec<ServerConf>,
    /// Defined by an `upstream {}` block (else implicit). nginx: `NGX_HTTP_UPSTREAM_CREATE`.
    pub explicit: bool,
    /// Implicit groups: the host and port to resolve, and where they were written.
    pub host: Option<(String, u16, String, usize)>,
    /// `keepalive N`: idle connections cached per worker (0 = none).
    pub keepalive: usize,
    /// `keepalive_requests` (default 1000).
    pub keepalive_requests: u64,
    /// `keepalive_timeout` ms (default 60s).
    pub keepalive_timeout: u64,
}

/// Every upstream group. nginx: `ngx_http_upstream_main_conf_t`.
#[derive(Default)]
pub struct UpstreamMainConf {
    /// Groups, referred to by index (`UpstreamRef`).
    pub upstreams: Vec<UpstreamSrvConf>,
}

impl UpstreamMainConf {
    /// Finds or adds a group. For an implicit one, `host` is the `host:port` to resolve later.
    /// nginx: `ngx_http_upstream_add()`.
    pub fn add(&mut self, name: &str, implicit_host: Option<(String, u16, String, usize)>) -> usize {
        let key = match &implicit_host {
            Some((h, p, _, _)) => format!("{h}:{p}"),
            None => name.to_string(),
        };
        if let Some(i) = self.upstreams.iter().position(|u| u.name == key || u.explicit && u.name == name) {
            return i;
        }
        self.upstreams.push(UpstreamSrvConf {
            name: key,
            host: implicit_host,
            keepalive_requests: 1000,
            keepalive_timeout: 60_000,
            ..Default::default()
        });
        self.upstreams.len() - 1
    }
}

/// Resolves `host:port` to every address (config time only: blocking DNS is allowed here, as
/// in nginx's `ngx_parse_url()` / `ngx_inet_resolve_host()`).
pub fn resolve(host: &str, port: u16) -> Result<Vec<PeerAddr>, String> {
    if let Some(path) = host.strip_prefix("unix:") {
        return Ok(vec![PeerAddr::Unix(PathBuf::from(path))]);
    }
    let h = host.trim_start_matches('[').trim_end_matches(']');
    match crate::os::resolve::lookup(h, port) {
        Ok(it) => {
            let v: Vec<PeerAddr> = it.into_iter().map(PeerAddr::Inet).collect();
            if v.is_empty() {
                Err(format!("host not found in upstream \"{host}\""))
            } else {
                Ok(v)
            }
        }
        Err(_) => Err(format!("host not found in upstream \"{host}\"")),
    }
}

/// Splits "host[:port]" (default port `dflt`). IPv6 in brackets.
pub fn split_host_port(s: &str, dflt: u16) -> Result<(String, u16), String> {
    if s.starts_with("unix:") {
        return Ok((s.to_string(), 0));
    }
    let (host, port) = if let Some(end) = s.strip_prefix('[').and_then(|r| r.find(']')) {
        let host = &s[..end + 2];
        let rest = &s[end + 2..];
        (host, rest.strip_prefix(':'))
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let port = match port {
        Some(p) => {
            p.parse::<u16>().ok().filter(|&p| p > 0).ok_or_else(|| format!("invalid port in upstream \"{s}\""))?
        }
        None => dflt,
    };
    if host.is_empty() {
        return Err(format!("no host in upstream \"{s}\""));
    }
    Ok((host.to_string(), port))
}

/// The upstream module (the `upstream {}` block). nginx: `ngx_http_upstream_module`.
pub struct UpstreamModule;

static COMMANDS: &[Command] = &[Command {
    name: "upstream",
    ctx: Ctx::HTTP_MAIN,
    args: Args(Args::BLOCK.0 | Args::TAKE1.0),
    set: upstream_block,
}];

/// nginx: `ngx_http_upstream()`.
fn upstream_block(cx: &mut Cx<'_>) -> Result<(), SetError> {
    let name = cx.arg(0).to_string();
    let mut us = UpstreamSrvConf {
        name: name.clone(),
        explicit: true,
        keepalive_requests: 1000,
        keepalive_timeout: 60_000,
        ..Default::default()
    };
    for d in cx.d.block.as_deref().unwrap_or(&[]) {
        upstream_directive(&mut us, d)?;
    }
    if us.servers.is_empty() {
        return Err("no servers are inside upstream".into());
    }
    let m = cx.main_conf::<UpstreamMainConf>()?;
    if m.upstreams.iter().any(|u| u.explicit && u.name == name) {
        return Err(format!("duplicate upstream \"{name}\"").into());
    }
    // An earlier `proxy_pass http://NAME` created an implicit entry with this name: take it
    // over, as `ngx_http_upstream_add()` does with NGX_HTTP_UPSTREAM_CREATE.
    match m.upstreams.iter().position(|u| !u.explicit && u.host.as_ref().is_some_and(|(h, _, _, _)| *h == name)) {
        Some(i) => m.upstreams[i] = us,
        None => m.upstreams.push(us),
    }
    Ok(())
}

/// The directives inside `upstream {}`. nginx: `ngx_http_upstream_server()` and the
/// keepalive module's commands.
fn upstream_directive(us: &mut UpstreamSrvConf, d: &Directive) -> Result<(), ConfError> {
    let e = |m: String| conf::setter_error(d, m);
    let check = |args: Args| conf::check_directive(d, Ctx::HTTP_UPS, args, Ctx::HTTP_UPS);
    match d.name.as_str() {
        "server" => {
            check(Args::ONE_MORE)?;
            us.servers.push(parse_server(d).map_err(e)?);
        }
        "keepalive" => {
            check(Args::TAKE1)?;
            us.keepalive = conf::num(d, 0).map_err(e)?;
        }
        "keepalive_requests" => {
            check(Args::TAKE1)?;
            us.keepalive_requests = conf::num(d, 0).map_err(e)? as u64;
        }
        "keepalive_timeout" => {
            check(Args::TAKE1)?;
            us.keepalive_timeout = conf::msec(d, 0).map_err(e)?;
        }
        _ => return Err(ConfError::at(format!("unknown directive \"{}\"", d.name), d)),
    }
    Ok(())
}

fn parse_server(d: &Directive) -> Result<ServerConf, String> {
    let mut s = ServerConf {
        addrs: Vec::new(),
        name: d.args[0].clone(),
        weight: 1,
        max_fails: 1,
        fail_timeout: 10_000,
        backup: false,
        down: false,
    };
    for a in &d.args[1..] {
        let bad = || format!("invalid parameter \"{a}\"");
        if let Some(v) = a.strip_prefix("weight=") {
            s.weight = v.parse().ok().filter(|&w| w > 0).ok_or_else(bad)?;
        } else if let Some(v) = a.strip_prefix("max_fails=") {
            s.max_fails = v.parse().map_err(|_| bad())?;
        } else if let Some(v) = a.strip_prefix("fail_timeout=") {
            s.fail_timeout = crate::conf::units::parse_msec(v).ok_or_else(bad)?;
        } else if a == "backup" {
            s.backup = true;
        } else if a == "down" {
            s.down = true;
        } else {
            return Err(bad());
        }
    }
    let (host, port) = split_host_port(&d.args[0], 80)?;
    s.addrs = resolve(&host, port)?;
    Ok(s)
}

impl HttpModule for UpstreamModule {
    fn name(&self) -> &'static str {
        "ngx_http_upstream_module"
    }
    fn commands(&self) -> &'static [Command] {
        COMMANDS
    }
    fn variables(&self) -> &'static [crate::http::VariableDef] {
        super::variables::UPSTREAM_VARIABLES
    }
    fn create_main_conf(&self) -> Option<AnyConf> {
        Some(Box::new(UpstreamMainConf::default()))
    }
    /// Resolves implicit groups. nginx: `ngx_http_upstream_init_main_conf()` →
    /// `ngx_http_upstream_init_round_robin()` (which resolves implicit hosts).
    fn postconfiguration(&self, http: &mut HttpConf) -> Result<(), ConfError> {
        let Some(m) = http.main.get_mut::<UpstreamMainConf>() else {
            return Ok(());
        };
        for us in m.upstreams.iter_mut().filter(|u| !u.explicit) {
            let Some((host, port, file, line)) = us.host.clone() else {
                continue;
            };
            let addrs = resolve(&host, port).map_err(|msg| ConfError::new(msg, &file, line))?;
            us.servers.push(ServerConf {
                addrs,
                name: format!("{host}:{port}"),
                weight: 1,
                max_fails: 1,
                fail_timeout: 10_000,
                backup: false,
                down: false,
            });
        }
        Ok(())
    }
    fn init_worker(&self, cy: &mut crate::http::cycle::Cycle) {
        let rr = super::round_robin::init_worker(cy);
        let keepalive = super::keepalive::init_worker(cy);
        cy.http.insert_hot(super::UpstreamWorker {
            ctxs: Default::default(),
            rr,
            keepalive,
            spare: Vec::new(),
            pipes: Default::default(),
        });
    }
}
