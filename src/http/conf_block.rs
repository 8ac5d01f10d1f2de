//! Reading the block directives: `http { }`, `server { }`, `location { }`, running each
//! directive of a block through the modules' tables, then merging http → server → location.
//!
//! nginx: src/http/ngx_http.c (`ngx_http_module`, `ngx_http_block`, `ngx_http_merge_servers`,
//! `ngx_http_merge_locations`), src/http/ngx_http_core_module.c (`ngx_http_core_server`,
//! `ngx_http_core_location`), src/core/ngx_conf_file.c (`ngx_conf_handler`, for `run_block`).
//!
//! Differs from nginx:
//! - `conf/` parses the whole file into `Directive` trees first; `http_block` then walks the
//!   `http` tree (nginx's `ngx_conf_parse` reads and runs the directives in one pass).
//! - a server without `listen` listens on `*:80` (nginx: `*:80` as root, `*:8000` otherwise).

use std::net::SocketAddr;
use std::sync::Arc;

use super::listen::optimize_servers;
use super::{
    Confs, CoreLocConf, CoreSrvConf, Cx, HttpConf, HttpModule, ListenOpt, LocConf, SetError, SrvBuild, SrvConf,
};
use crate::conf::{self, check_directive, ConfError, Ctx, Directive, LoadOpts};

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

/// `server { }`: a new server level, its directives, a default `listen`.
/// nginx: `ngx_http_core_server()`.
pub(super) fn server(cx: &mut Cx<'_>) -> Result<(), SetError> {
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

/// `location [=|^~] URI { }` and `location @name { }`, nested or not.
/// nginx: `ngx_http_core_location()`.
pub(super) fn location(cx: &mut Cx<'_>) -> Result<(), SetError> {
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

/// Merges one server's confs (and its own location level) with the http level's.
/// nginx: `ngx_http_merge_servers()`, `ngx_http_core_merge_srv_conf()`.
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
