//! The HTTP core module: `http`, `server`, `location`, `listen`, `server_name`, the core
//! settings of each level, their merge, and location matching.
//!
//! nginx: src/http/ngx_http_core_module.c (`ngx_http_core_commands`, `ngx_http_core_server`,
//! `ngx_http_core_location`, `ngx_http_core_listen`, `ngx_http_core_merge_loc_conf`,
//! `ngx_http_core_find_location`), src/http/ngx_http.c (`ngx_http_block`,
//! `ngx_http_merge_servers`, `ngx_http_optimize_servers`).
//!
//! Differs from nginx:
//! - locations are matched by a linear scan of each level (exact first, then the longest prefix,
//!   then its nested locations) instead of nginx's static location tree; without regex
//!   locations `^~` therefore behaves as a plain prefix, which is what nginx does too.
//! - unset values stay `None` after merge where a getter supplies the default; nginx writes the
//!   default into the struct during merge.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use super::{
    Command, Confs, ContentHandler, Cx, HttpConf, HttpModule, ListenAddr, ListenOpt, LocConf, SetError, SrvBuild,
    SrvConf,
};
use crate::conf::{self, check_directive, Args, ConfError, Ctx, Directive, LoadOpts};

/// Core settings of a server. nginx: `ngx_http_core_srv_conf_t`.
#[derive(Clone, Debug, Default)]
pub struct CoreSrvConf {
    /// `server_name`s, lowercased.
    pub server_names: Vec<String>,
    /// `listen`s.
    pub listens: Vec<ListenOpt>,
    /// `client_header_buffer_size` (default 1k).
    pub client_header_buffer_size: Option<usize>,
    /// `large_client_header_buffers NUM SIZE` (default 4 8k).
    pub large_client_header_buffers: Option<(usize, usize)>,
    /// `client_header_timeout` ms (default 60s).
    pub client_header_timeout: Option<u64>,
    /// `underscores_in_headers` (default off: a header name with '_' is invalid).
    pub underscores_in_headers: Option<bool>,
    /// `ignore_invalid_headers` (default on: invalid header lines are dropped).
    pub ignore_invalid_headers: Option<bool>,
}

impl CoreSrvConf {
    /// nginx default 1k.
    pub fn client_header_buffer_size(&self) -> usize {
        self.client_header_buffer_size.unwrap_or(1024)
    }
    /// nginx default `4 8k`.
    pub fn large_client_header_buffers(&self) -> (usize, usize) {
        self.large_client_header_buffers.unwrap_or((4, 8192))
    }
    /// nginx default 60s.
    pub fn client_header_timeout(&self) -> u64 {
        self.client_header_timeout.unwrap_or(60_000)
    }
    /// nginx default off.
    pub fn underscores_in_headers(&self) -> bool {
        self.underscores_in_headers.unwrap_or(false)
    }
    /// nginx default on.
    pub fn ignore_invalid_headers(&self) -> bool {
        self.ignore_invalid_headers.unwrap_or(true)
    }
}

/// Core settings of a location (and of the http/server levels). nginx:
/// `ngx_http_core_loc_conf_t`.
#[derive(Clone, Debug, Default)]
pub struct CoreLocConf {
    /// The location's prefix (or `@name`). nginx: `clcf->name`.
    pub name: String,
    /// `location = URI`. nginx: `clcf->exact_match`.
    pub exact: bool,
    /// `location ^~ URI`. nginx: `clcf->noregex`.
    pub noregex: bool,
    /// `location @name`. nginx: `clcf->named`.
    pub named: bool,
    /// Where the block was written (file, line), for errors found while merging.
    pub pos: Option<(String, usize)>,
    /// The content handler set by `return`, `proxy_pass`, ... nginx: `clcf->handler`.
    pub handler: Option<ContentHandler>,
    /// `keepalive_timeout` ms (default 75s); 0 disables keepalive.
    pub keepalive_timeout: Option<u64>,
    /// `keepalive_timeout`'s second argument: the `Keep-Alive: timeout=N` header (seconds).
    pub keepalive_header: Option<u64>,
    /// `keepalive_requests` (default 1000).
    pub keepalive_requests: Option<u64>,
    /// `keepalive_time` ms (default 1h).
    pub keepalive_time: Option<u64>,
    /// `client_max_body_size` (default 1m; 0 = unlimited).
    pub client_max_body_size: Option<u64>,
    /// `client_body_buffer_size` (default 16k).
    pub client_body_buffer_size: Option<usize>,
    /// `client_body_timeout` ms (default 60s).
    pub client_body_timeout: Option<u64>,
    /// `send_timeout` ms (default 60s).
    pub send_timeout: Option<u64>,
    /// `default_type` (default text/plain).
    pub default_type: Option<String>,
    /// `server_tokens` (default on).
    pub server_tokens: Option<bool>,
    /// `tcp_nodelay` (default on).
    pub tcp_nodelay: Option<bool>,
    /// `types { }`: (extension, MIME type).
    pub types: Option<Arc<Vec<(String, String)>>>,
    /// `lingering_time` ms: how long at most to drain a client after the response.
    pub lingering_time: Option<u64>,
    /// `lingering_timeout` ms: how long to wait for more client data while draining.
    pub lingering_timeout: Option<u64>,
}

impl CoreLocConf {
    /// nginx default 75s.
    pub fn keepalive_timeout(&self) -> u64 {
        self.keepalive_timeout.unwrap_or(75_000)
    }
    /// nginx default 1000.
    pub fn keepalive_requests(&self) -> u64 {
        self.keepalive_requests.unwrap_or(1000)
    }
    /// nginx default 1h.
    pub fn keepalive_time(&self) -> u64 {
        self.keepalive_time.unwrap_or(3_600_000)
    }
    /// nginx default 1m.
    pub fn client_max_body_size(&self) -> u64 {
        self.client_max_body_size.unwrap_or(1024 * 1024)
    }
    /// nginx default 16k (2 pages).
    pub fn client_body_buffer_size(&self) -> usize {
        self.client_body_buffer_size.unwrap_or(16 * 1024)
    }
    /// nginx default 60s.
    pub fn client_body_timeout(&self) -> u64 {
        self.client_body_timeout.unwrap_or(60_000)
    }
    /// nginx default 60s.
    pub fn send_timeout(&self) -> u64 {
        self.send_timeout.unwrap_or(60_000)
    }
    /// nginx default `text/plain`.
    pub fn default_type(&self) -> &str {
        self.default_type.as_deref().unwrap_or("text/plain")
    }
    /// nginx default on.
    pub fn server_tokens(&self) -> bool {
        self.server_tokens.unwrap_or(true)
    }
    /// nginx defaults: lingering_time 30s, lingering_timeout 5s.
    pub fn lingering(&self) -> (u64, u64) {
        (self.lingering_time.unwrap_or(30_000), self.lingering_timeout.unwrap_or(5_000))
    }

    /// nginx: `ngx_http_core_merge_loc_conf()` for the fields above.
    fn merge(&mut self, prev: &CoreLocConf) {
        macro_rules! m {
            ($($f:ident),*) => { $( if self.$f.is_none() { self.$f = prev.$f.clone(); } )* };
        }
        m!(
            keepalive_timeout,
            keepalive_header,
            keepalive_requests,
            keepalive_time,
            client_max_body_size,
            client_body_buffer_size,
            client_body_timeout,
            send_timeout,
            default_type,
            server_tokens,
            tcp_nodelay,
            types,
            lingering_time,
            lingering_timeout
        );
    }
}

/// The http core module. nginx: `ngx_http_core_module`.
pub struct CoreModule;

impl HttpModule for CoreModule {
    fn name(&self) -> &'static str {
        "ngx_http_core_module"
    }
    fn commands(&self) -> &'static [Command] {
        CORE_COMMANDS
    }
    fn variables(&self) -> &'static [super::VariableDef] {
        super::variables::CORE_VARIABLES
    }
}

const SRV: Ctx = Ctx(Ctx::HTTP_MAIN.0 | Ctx::HTTP_SRV.0);

/// nginx: `ngx_http_core_commands[]`.
#[rustfmt::skip]
static CORE_COMMANDS: &[Command] = &[
    Command {
        name: "server",
        ctx: Ctx::HTTP_MAIN,
        args: Args(Args::BLOCK.0 | Args::NOARGS.0),
        set: server,
    },
    Command {
        name: "location",
        ctx: Ctx(Ctx::HTTP_SRV.0 | Ctx::HTTP_LOC.0),
        args: Args(Args::BLOCK.0 | Args::TAKE12.0),
        set: location,
    },
    Command {
        name: "listen",
        ctx: Ctx::HTTP_SRV,
        args: Args::ONE_MORE,
        set: listen,
    },
    Command {
        name: "server_name",
        ctx: Ctx::HTTP_SRV,
        args: Args::ONE_MORE,
        set: server_name,
    },
    Command {
        name: "client_header_buffer_size",
        ctx: SRV,
        args: Args::TAKE1,
        set: |cx| {
            let v = conf::size(cx.d, 0)?;
            srv(cx)?.client_header_buffer_size = Some(v);
            Ok(())
        },
    },
    Command {
        name: "large_client_header_buffers",
        ctx: SRV,
        args: Args::TAKE2,
        set: |cx| {
            let n = conf::num(cx.d, 0)?;
            let s = conf::size(cx.d, 1)?;
            if n == 0 || s == 0 {
                return Err("invalid value".into());
            }
            srv(cx)?.large_client_header_buffers = Some((n, s));
            Ok(())
        },
    },
    Command {
        name: "underscores_in_headers",
        ctx: SRV,
        args: Args::FLAG,
        set: |cx| {
            let v = conf::flag(cx.d)?;
            srv(cx)?.underscores_in_headers = Some(v);
            Ok(())
        },
    },
    Command {
        name: "ignore_invalid_headers",
        ctx: SRV,
        args: Args::FLAG,
        set: |cx| {
            let v = conf::flag(cx.d)?;
            srv(cx)?.ignore_invalid_headers = Some(v);
            Ok(())
        },
    },
    Command {
        name: "client_header_timeout",
        ctx: SRV,
        args: Args::TAKE1,
        set: |cx| {
            let v = conf::msec(cx.d, 0)?;
            srv(cx)?.client_header_timeout = Some(v);
            Ok(())
        },
    },
    Command {
        name: "keepalive_timeout",
        ctx: Ctx::HTTP_ANY,
        args: Args::TAKE12,
        set: set_keepalive_timeout,
    },
    Command {
        name: "keepalive_requests",
        ctx: Ctx::HTTP_ANY,
        args: Args::TAKE1,
        set: |cx| {
            cx.loc.core.keepalive_requests = Some(conf::num(cx.d, 0)? as u64);
            Ok(())
        },
    },
    Command {
        name: "keepalive_time",
        ctx: Ctx::HTTP_ANY,
        args: Args::TAKE1,
        set: |cx| {
            cx.loc.core.keepalive_time = Some(conf::msec(cx.d, 0)?);
            Ok(())
        },
    },
    Command {
        name: "client_max_body_size",
        ctx: Ctx::HTTP_ANY,
        args: Args::TAKE1,
        set: |cx| {
            cx.loc.core.client_max_body_size = Some(conf::offset(cx.d, 0)?);
            Ok(())
        },
    },
    Command {
        name: "client_body_buffer_size",
        ctx: Ctx::HTTP_ANY,
        args: Args::TAKE1,
        set: |cx| {
            cx.loc.core.client_body_buffer_size = Some(conf::size(cx.d, 0)?);
            Ok(())
        },
    },
    Command {
        name: "client_body_timeout",
        ctx: Ctx::HTTP_ANY,
        args: Args::TAKE1,
        set: |cx| {
            cx.loc.core.client_body_timeout = Some(conf::msec(cx.d, 0)?);
            Ok(())
        },
    },
    Command {
        name: "send_timeout",
        ctx: Ctx::HTTP_ANY,
        args: Args::TAKE1,
        set: |cx| {
            cx.loc.core.send_timeout = Some(conf::msec(cx.d, 0)?);
            Ok(())
        },
    },
    Command {
        name: "default_type",
        ctx: Ctx::HTTP_ANY,
        args: Args::TAKE1,
        set: |cx| {
            cx.loc.core.default_type = Some(cx.arg(0).to_string());
            Ok(())
        },
    },
    Command {
        name: "server_tokens",
        ctx: Ctx::HTTP_ANY,
        args: Args::FLAG,
        set: |cx| {
            cx.loc.core.server_tokens = Some(conf::flag(cx.d)?);
            Ok(())
        },
    },
    Command {
        name: "tcp_nodelay",
        ctx: Ctx::HTTP_ANY,
        args: Args::FLAG,
        set: |cx| {
            cx.loc.core.tcp_nodelay = Some(conf::flag(cx.d)?);
            Ok(())
        },
    },
    Command {
        name: "sendfile",
        ctx: Ctx::HTTP_ANY,
        args: Args::FLAG,
        set: |cx| Ok(conf::flag(cx.d).map(|_| ())?),
    },
    Command {
        name: "tcp_nopush",
        ctx: Ctx::HTTP_ANY,
        args: Args::FLAG,
        set: |cx| Ok(conf::flag(cx.d).map(|_| ())?),
    },
    Command {
        name: "lingering_close",
        ctx: Ctx::HTTP_ANY,
        args: Args::TAKE1,
        set: |cx| match cx.arg(0) {
            "on" | "off" | "always" => Ok(()),
            _ => Err("invalid value".into()),
        },
    },
    Command {
        name: "lingering_time",
        ctx: Ctx::HTTP_ANY,
        args: Args::TAKE1,
        set: |cx| {
            cx.loc.core.lingering_time = Some(conf::msec(cx.d, 0)?);
            Ok(())
        },
    },
    Command {
        name: "lingering_timeout",
        ctx: Ctx::HTTP_ANY,
        args: Args::TAKE1,
        set: |cx| {
            cx.loc.core.lingering_timeout = Some(conf::msec(cx.d, 0)?);
            Ok(())
        },
    },
    Command {
        name: "types",
        ctx: Ctx::HTTP_ANY,
        args: Args(Args::BLOCK.0 | Args::NOARGS.0),
        set: types,
    },
];

/// nginx: `ngx_http_core_keepalive()`.
fn set_keepalive_timeout(cx: &mut Cx<'_>) -> Result<(), SetError> {
    cx.loc.core.keepalive_timeout = Some(conf::msec(cx.d, 0)?);
    if let Some(h) = cx.d.args.get(1) {
        let secs = crate::conf::units::parse_sec(h).ok_or_else(|| format!("invalid value \"{h}\""))?;
        cx.loc.core.keepalive_header = Some(secs);
    }
    Ok(())
}

fn srv<'a>(cx: &'a mut Cx<'_>) -> Result<&'a mut CoreSrvConf, String> {
    match cx.srv.as_deref_mut() {
        Some(s) => Ok(s),
        None => Err(format!("\"{}\" directive is not allowed here", cx.d.name)),
    }
}

/// The core module that owns `http {}`, carrying the HTTP modules rginx is built with.
/// nginx: `ngx_http_module` (src/http/ngx_http.c), whose `http` directive runs
/// `ngx_http_block()`; the top of the program lists it among the core modules.
pub struct HttpBlock {
    /// The HTTP modules, in order. nginx: the `NGX_HTTP_MODULE`s of `ngx_modules[]`.
    pub modules: &'static [&'static dyn HttpModule],
}

impl conf::CoreModule for HttpBlock {
    fn block(&self) -> &'static str {
        "http"
    }
    fn knows(&self, name: &str) -> bool {
        self.modules.iter().flat_map(|m| m.commands()).any(|c| c.name == name)
    }
    fn read_block(&self, d: &Directive, opts: &LoadOpts) -> Result<Arc<dyn std::any::Any + Send + Sync>, ConfError> {
        Ok(Arc::new(http_block(d, opts, self.modules)?))
    }
}

/// Reads `http { }`. nginx: `ngx_http_block()`.
pub fn http_block(
    d: &Directive,
    opts: &LoadOpts,
    modules: &'static [&'static dyn HttpModule],
) -> Result<HttpConf, ConfError> {
    let mut main = Confs::create(modules, |m| m.create_main_conf());
    // The http level has srv and loc confs of its own, merged into every server
    // (nginx: the http-level `ctx->srv_conf` / `ctx->loc_conf`).
    let mut http = new_srv(modules);
    let mut servers = Vec::new();
    let block = d.block.as_deref().unwrap_or(&[]);
    let mut lv = Level {
        main: &mut main,
        srv: Some(&mut http.core),
        srv_confs: Some(&mut http.confs),
        servers: Some(&mut servers),
        loc: &mut http.loc,
    };
    run_block(block, Ctx::HTTP_MAIN, &mut lv, opts, modules)?;
    let mut built = Vec::new();
    for mut s in servers {
        merge_srv(&mut s, &http, modules).map_err(|e| pos_error(e, &s.loc))?;
        merge_locations(&mut s.loc, modules)?;
        built.push(Arc::new(SrvConf { core: s.core, confs: s.confs, loc: Arc::new(s.loc) }));
    }
    let addrs = optimize_servers(&built)?;
    let mut variables = Vec::new();
    for m in modules {
        variables.extend(m.variables().iter());
    }
    let mut conf = HttpConf {
        main,
        servers: built,
        addrs,
        filters: Default::default(),
        phases: Default::default(),
        variables,
        modules,
    };
    for m in modules {
        m.postconfiguration(&mut conf)?;
    }
    Ok(conf)
}

fn new_loc(modules: &[&'static dyn HttpModule]) -> LocConf {
    LocConf {
        core: CoreLocConf::default(),
        confs: Confs::create(modules, |m| m.create_loc_conf()),
        locations: Vec::new(),
    }
}

fn new_srv(modules: &[&'static dyn HttpModule]) -> SrvBuild {
    SrvBuild {
        core: CoreSrvConf::default(),
        confs: Confs::create(modules, |m| m.create_srv_conf()),
        loc: new_loc(modules),
    }
}

/// The confs a block's directives write into.
struct Level<'a> {
    main: &'a mut Confs,
    srv: Option<&'a mut CoreSrvConf>,
    srv_confs: Option<&'a mut Confs>,
    servers: Option<&'a mut Vec<SrvBuild>>,
    loc: &'a mut LocConf,
}

/// Runs every directive of a block through the module tables. nginx: `ngx_conf_parse()` →
/// `ngx_conf_handler()`.
fn run_block(
    block: &[Directive],
    level: Ctx,
    lv: &mut Level<'_>,
    opts: &LoadOpts,
    modules: &'static [&'static dyn HttpModule],
) -> Result<(), ConfError> {
    for d in block {
        let cmd = modules.iter().flat_map(|m| m.commands().iter()).find(|c| c.name == d.name).ok_or_else(|| {
            match conf::is_main_directive(&d.name) {
                true => ConfError::at(format!("\"{}\" directive is not allowed here", d.name), d),
                false => ConfError::at(format!("unknown directive \"{}\"", d.name), d),
            }
        })?;
        check_directive(d, cmd.ctx, cmd.args, level)?;
        let mut cx = Cx {
            d,
            main: lv.main,
            srv: lv.srv.as_deref_mut(),
            srv_confs: lv.srv_confs.as_deref_mut(),
            loc: lv.loc,
            level,
            opts,
            modules,
            servers: lv.servers.as_deref_mut(),
        };
        match (cmd.set)(&mut cx) {
            Ok(()) => {}
            Err(SetError::Msg(m)) => return Err(conf::setter_error(d, m)),
            Err(SetError::Conf(e)) => return Err(e),
        }
    }
    Ok(())
}

fn server(cx: &mut Cx<'_>) -> Result<(), SetError> {
    let modules = cx.modules;
    let mut s = new_srv(modules);
    s.loc.core.pos = Some((cx.d.file.to_string(), cx.d.line));
    {
        let SrvBuild { core, confs, loc } = &mut s;
        let mut lv = Level { main: cx.main, srv: Some(core), srv_confs: Some(confs), servers: None, loc };
        run_block(cx.d.block.as_deref().unwrap_or(&[]), Ctx::HTTP_SRV, &mut lv, cx.opts, cx.modules)?;
    }
    if s.core.listens.is_empty() {
        s.core.listens.push(ListenOpt {
            addr: SocketAddr::from(([0, 0, 0, 0], 80)),
            default_server: false,
            reuseport: false,
            backlog: 511,
        });
    }
    match cx.servers.as_deref_mut() {
        Some(list) => list.push(s),
        None => return Err("\"server\" directive is not allowed here".into()),
    }
    Ok(())
}

fn location(cx: &mut Cx<'_>) -> Result<(), SetError> {
    let (modifier, name) = match cx.d.args.len() {
        2 => (cx.arg(0).to_string(), cx.arg(1).to_string()),
        _ => (String::new(), cx.arg(0).to_string()),
    };
    let mut l = new_loc(cx.modules);
    match modifier.as_str() {
        "" if name.starts_with('@') => l.core.named = true,
        "" => {}
        "=" => l.core.exact = true,
        "^~" => l.core.noregex = true,
        "~" | "~*" => return Err("regex locations are not supported by rginx".into()),
        m => return Err(format!("invalid location modifier \"{m}\"").into()),
    }
    if cx.loc.core.exact {
        return Err(format!("location \"{name}\" cannot be inside the exact location \"{}\"", cx.loc.core.name).into());
    }
    if cx.loc.core.named || (l.core.named && cx.level == Ctx::HTTP_LOC) {
        return Err(format!("location \"{name}\" cannot be inside the named location \"{}\"", cx.loc.core.name).into());
    }
    if cx.level == Ctx::HTTP_LOC && !l.core.named && !name.starts_with(&cx.loc.core.name) {
        return Err(format!("location \"{name}\" is outside location \"{}\"", cx.loc.core.name).into());
    }
    l.core.name = name;
    l.core.pos = Some((cx.d.file.to_string(), cx.d.line));
    let mut lv = Level { main: cx.main, srv: None, srv_confs: None, servers: None, loc: &mut l };
    run_block(cx.d.block.as_deref().unwrap_or(&[]), Ctx::HTTP_LOC, &mut lv, cx.opts, cx.modules)?;
    if cx.loc.locations.iter().any(|o| o.core.name == l.core.name && o.core.exact == l.core.exact) {
        return Err(format!("duplicate location \"{}\"", l.core.name).into());
    }
    cx.loc.locations.push(Arc::new(l));
    Ok(())
}

fn types(cx: &mut Cx<'_>) -> Result<(), SetError> {
    let mut map = Vec::new();
    for t in cx.d.block.as_deref().unwrap_or(&[]) {
        if t.block.is_some() || t.args.is_empty() {
            return Err(format!("invalid number of arguments in \"{}\" directive", t.name).into());
        }
        for ext in &t.args {
            map.push((ext.to_ascii_lowercase(), t.name.clone()));
        }
    }
    cx.loc.core.types = Some(Arc::new(map));
    Ok(())
}

fn listen(cx: &mut Cx<'_>) -> Result<(), SetError> {
    let spec = cx.arg(0).to_string();
    let addr = parse_listen_addr(&spec)?;
    let mut opt = ListenOpt { addr, default_server: false, reuseport: false, backlog: 511 };
    for a in &cx.d.args[1..] {
        match a.as_str() {
            "default_server" | "default" => opt.default_server = true,
            "reuseport" => opt.reuseport = true,
            b if b.starts_with("backlog=") => {
                opt.backlog = b[8..].parse().map_err(|_| format!("invalid backlog \"{}\"", &b[8..]))?;
            }
            p => return Err(format!("invalid parameter \"{p}\"").into()),
        }
    }
    srv(cx)?.listens.push(opt);
    Ok(())
}

/// `listen 8080`, `listen *:8080`, `listen 127.0.0.1:8080`, `listen [::1]:8080`,
/// `listen localhost:8080`. nginx: `ngx_parse_url()` for listen.
fn parse_listen_addr(s: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::from(([0, 0, 0, 0], port)));
    }
    if let Some(p) = s.strip_prefix("*:") {
        let port = p.parse::<u16>().map_err(|_| format!("invalid port in \"{s}\" of the \"listen\" directive"))?;
        return Ok(SocketAddr::from(([0, 0, 0, 0], port)));
    }
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    let with_port = if s.contains(':') { s.to_string() } else { format!("{s}:80") };
    match with_port.to_socket_addrs() {
        Ok(mut it) => it.next().ok_or_else(|| format!("host not found in \"{s}\" of the \"listen\" directive")),
        Err(_) => Err(format!("host not found in \"{s}\" of the \"listen\" directive")),
    }
}

fn server_name(cx: &mut Cx<'_>) -> Result<(), SetError> {
    let names: Vec<String> = cx.d.args.iter().map(|n| n.to_ascii_lowercase()).collect();
    for n in &names {
        if n.starts_with('~') {
            return Err("regex server names are not supported by rginx".into());
        }
    }
    srv(cx)?.server_names.extend(names);
    Ok(())
}

fn merge_srv(s: &mut SrvBuild, http: &SrvBuild, modules: &[&'static dyn HttpModule]) -> Result<(), String> {
    let hs = &http.core;
    let c = &mut s.core;
    if c.client_header_buffer_size.is_none() {
        c.client_header_buffer_size = hs.client_header_buffer_size;
    }
    if c.large_client_header_buffers.is_none() {
        c.large_client_header_buffers = hs.large_client_header_buffers;
    }
    if c.client_header_timeout.is_none() {
        c.client_header_timeout = hs.client_header_timeout;
    }
    if c.underscores_in_headers.is_none() {
        c.underscores_in_headers = hs.underscores_in_headers;
    }
    if c.ignore_invalid_headers.is_none() {
        c.ignore_invalid_headers = hs.ignore_invalid_headers;
    }
    for m in modules {
        m.merge_srv_conf(&http.confs, &mut s.confs)?;
        m.merge_loc_conf(&http.loc.confs, &mut s.loc.confs)?;
    }
    s.loc.core.merge(&http.loc.core);
    Ok(())
}

/// An error found while merging, reported at the block it concerns.
fn pos_error(msg: String, l: &LocConf) -> ConfError {
    match &l.core.pos {
        Some((f, line)) => ConfError::new(msg, f, *line),
        None => ConfError { msg, file: None, line: 0 },
    }
}

/// Merges every nested location with its parent. nginx: `ngx_http_merge_locations()`.
fn merge_locations(parent: &mut LocConf, modules: &[&'static dyn HttpModule]) -> Result<(), ConfError> {
    let mut locs = std::mem::take(&mut parent.locations);
    for l in locs.iter_mut() {
        let Some(l) = Arc::get_mut(l) else { continue };
        l.core.merge(&parent.core);
        for m in modules {
            m.merge_loc_conf(&parent.confs, &mut l.confs).map_err(|e| pos_error(e, l))?;
        }
        merge_locations(l, modules)?;
    }
    parent.locations = locs;
    Ok(())
}

/// Groups servers by listening address and picks each address's default server.
/// nginx: `ngx_http_optimize_servers()`.
fn optimize_servers(servers: &[Arc<SrvConf>]) -> Result<Vec<ListenAddr>, ConfError> {
    let mut addrs: Vec<ListenAddr> = Vec::new();
    for s in servers {
        for l in &s.core.listens {
            let i = match addrs.iter().position(|a| a.opt.addr == l.addr) {
                Some(i) => i,
                None => {
                    addrs.push(ListenAddr { opt: l.clone(), servers: Vec::new(), default: 0 });
                    addrs.len() - 1
                }
            };
            let a = &mut addrs[i];
            if l.default_server {
                if a.opt.default_server
                    && !a.servers.is_empty()
                    && a.servers.iter().enumerate().any(|(k, _)| k == a.default && a.opt.default_server)
                    && a.servers.len() > a.default
                    && Arc::ptr_eq(&a.servers[a.default], s)
                {
                    // same server listed twice
                } else if a
                    .servers
                    .iter()
                    .any(|x| x.core.listens.iter().any(|xl| xl.addr == l.addr && xl.default_server))
                {
                    return Err(ConfError {
                        msg: format!("a duplicate default server for {}", l.addr),
                        file: None,
                        line: 0,
                    });
                }
                a.opt.default_server = true;
                a.default = a.servers.len();
            }
            a.opt.reuseport |= l.reuseport;
            a.servers.push(s.clone());
        }
    }
    Ok(addrs)
}

/// Picks the server for a `Host` on a listening address: an exact name, then the longest
/// `*.suffix` (or `.suffix`) wildcard, then the longest `prefix.*` wildcard, else the default
/// server. Ties go to the server listed first. `host` is already lowercased.
/// nginx: `ngx_http_find_virtual_server()` (exact hash, then `dns_wc_head`, then `dns_wc_tail`).
pub fn find_virtual_server(addr: &ListenAddr, host: &[u8]) -> Arc<SrvConf> {
    if host.is_empty() {
        return addr.servers[addr.default].clone();
    }
    let ends_with = |suf: &[u8]| host.len() >= suf.len() && host[host.len() - suf.len()..].eq_ignore_ascii_case(suf);
    let starts_with = |pre: &[u8]| host.len() > pre.len() && host[..pre.len()].eq_ignore_ascii_case(pre);
    // (length of the matched part, server) of the best head and tail wildcards so far
    let mut head: Option<(usize, &Arc<SrvConf>)> = None;
    let mut tail: Option<(usize, &Arc<SrvConf>)> = None;
    for s in &addr.servers {
        for n in s.core.server_names.iter().map(String::as_bytes) {
            let head_len = match n {
                [b'*', suf @ ..] if host.len() > suf.len() && ends_with(suf) => Some(suf.len()),
                // ".example.com" is "example.com" and "*.example.com" in one
                [b'.', name @ ..] if host.eq_ignore_ascii_case(name) || ends_with(n) => Some(name.len()),
                _ => None,
            };
            if let Some(len) = head_len {
                if head.is_none_or(|(best, _)| len > best) {
                    head = Some((len, s));
                }
                continue;
            }
            if let Some(pre) = n.strip_suffix(b"*") {
                if starts_with(pre) && tail.is_none_or(|(best, _)| pre.len() > best) {
                    tail = Some((pre.len(), s));
                }
                continue;
            }
            if host.eq_ignore_ascii_case(n) {
                return s.clone();
            }
        }
    }
    match head.or(tail) {
        Some((_, s)) => s.clone(),
        None => addr.servers[addr.default].clone(),
    }
}

/// Finds the location for `uri` among `locs`: an exact match wins, else the longest prefix,
/// then its nested locations are searched the same way. nginx: `ngx_http_core_find_location()`.
pub fn find_location<'a>(locs: &'a [Arc<LocConf>], uri: &[u8]) -> Option<&'a Arc<LocConf>> {
    let mut best: Option<&Arc<LocConf>> = None;
    for l in locs {
        let c = &l.core;
        if c.named {
            continue;
        }
        if c.exact {
            if uri == c.name.as_bytes() {
                return Some(l);
            }
            continue;
        }
        if uri.starts_with(c.name.as_bytes()) && best.is_none_or(|b| b.core.name.len() < c.name.len()) {
            best = Some(l);
        }
    }
    let b = best?;
    find_location(&b.locations, uri).or(Some(b))
}

/// Finds `location @name`. nginx: `ngx_http_named_location()`.
pub fn find_named_location<'a>(locs: &'a [Arc<LocConf>], name: &str) -> Option<&'a Arc<LocConf>> {
    locs.iter().find(|l| l.core.named && l.core.name == name)
}
