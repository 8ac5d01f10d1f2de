//! The HTTP framework: modules, their configuration levels, filters and phases.
//!
//! nginx: src/http/ngx_http.c (`ngx_http_block`, phase engine init, filter chains),
//! src/http/ngx_http_config.h (`ngx_http_module_t`: create/merge of main/srv/loc confs),
//! src/http/ngx_http_core_module.h (`ngx_http_core_main/srv/loc_conf_t`).
//!
//! Differs from nginx:
//! - a module's configuration is a `Box<dyn Any>` in a `Confs` list (nginx: `void **loc_conf`
//!   indexed by `ctx_index`); `Confs::get::<T>()` finds it by type.
//! - filter chains are vectors of function pointers; a filter calls the next through `Next`
//!   (nginx: the `ngx_http_next_header_filter` static each filter module saves).
//! - the phase engine keeps only the phases rginx's modules use: server rewrite, rewrite, access,
//!   precontent, content, log.

pub mod body;
pub mod body_discard;
pub mod chunked_filter;
pub mod conf_block;
pub mod core_module;
pub mod cycle;
pub mod finalize;
pub mod header_filter;
pub mod headers_in;
pub mod headers_out;
pub mod keepalive;
pub mod listen;
pub mod parse;
pub mod parse_chunked;
pub mod parse_request;
pub mod parse_request_header;
pub mod parse_request_plain;
pub mod parse_status;
pub mod parse_uri;
pub mod phases;
pub mod postpone_filter;
pub mod request;
mod request_alloc;
pub mod request_body;
pub mod request_head;
pub mod request_spares;
pub mod special_response;
pub mod subrequest;
pub mod trace;
pub mod variables;
pub mod write_filter;

use std::any::{Any, TypeId};
use std::net::SocketAddr;
use std::sync::Arc;

use crate::conf::{Args, ConfError, Ctx, Directive, LoadOpts};
use crate::core::buf::Chain;
use crate::core::step::{HandlerRc, Step};
use crate::http::cycle::Cycle;
use crate::http::cycle::RequestId;

pub use conf_block::HttpBlock;
pub use core_module::{CoreLocConf, CoreSrvConf};

/// A module's configuration at one level.
pub type AnyConf = Box<dyn Any + Send + Sync>;

/// Every module's configuration at one level. nginx: `ctx->main_conf` / `srv_conf` / `loc_conf`.
///
/// Each conf keeps its `TypeId` beside it: a lookup compares ids inline and makes one virtual
/// call (the downcast's own check) for the conf it finds, not one per module passed on the way
/// (nginx indexes by `ctx_index` instead). Lookups run per request, e.g. `return`'s rewrite
/// handlers and the upstream keepalive settings.
#[derive(Default)]
pub struct Confs(Vec<(TypeId, AnyConf)>);

impl Confs {
    /// The configuration of type `T`, if a module created one. nginx:
    /// `ngx_http_get_module_loc_conf(r, module)`.
    pub fn get<T: 'static>(&self) -> Option<&T> {
        let id = TypeId::of::<T>();
        self.0.iter().find(|(t, _)| *t == id).and_then(|(_, c)| c.downcast_ref::<T>())
    }
    /// Mutable access, during configuration.
    pub fn get_mut<T: 'static>(&mut self) -> Option<&mut T> {
        let id = TypeId::of::<T>();
        self.0.iter_mut().find(|(t, _)| *t == id).and_then(|(_, c)| c.downcast_mut::<T>())
    }
    fn push(&mut self, c: Option<AnyConf>) {
        if let Some(c) = c {
            // `c` is the boxed conf: its own type id, not the box's.
            let id = (*c).type_id();
            self.0.push((id, c));
        }
    }
    fn create(modules: &[&dyn HttpModule], f: impl Fn(&dyn HttpModule) -> Option<AnyConf>) -> Confs {
        let mut cs = Confs::default();
        for m in modules {
            cs.push(f(*m));
        }
        cs
    }
}

/// A content handler. nginx: `clcf->handler` (`ngx_http_handler_pt`).
pub type ContentHandler = fn(&mut Cycle, RequestId) -> HandlerRc;
/// A phase handler (access, precontent): `Declined` continues, `Done` waits, `Ok` skips to
/// content, `Status` finalizes. nginx: `ngx_http_phase_handler_t`'s handler.
pub type PhaseHandler = fn(&mut Cycle, RequestId) -> HandlerRc;
/// A log-phase handler, run once per request at its end.
pub type LogHandler = fn(&mut Cycle, RequestId);

/// nginx's NGX_ERROR from a filter: the request cannot continue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Error;

/// What filters return. nginx: NGX_OK / NGX_AGAIN / NGX_ERROR.
pub type FilterRc = Result<Step, Error>;
/// A header filter. nginx: `ngx_http_output_header_filter_pt`.
pub type HeaderFilter = fn(&mut Cycle, RequestId, Next) -> FilterRc;
/// A body filter; it consumes `input` (moving buffers on or keeping them).
/// nginx: `ngx_http_output_body_filter_pt`.
pub type BodyFilter = fn(&mut Cycle, RequestId, &mut Chain, Next) -> FilterRc;

/// The position of the next filter in the chain. nginx: `ngx_http_next_header_filter` /
/// `ngx_http_next_body_filter`.
#[derive(Clone, Copy, Debug)]
pub struct Next(usize);

impl Next {
    /// Calls the next header filter.
    pub fn header(self, cy: &mut Cycle, r: RequestId) -> FilterRc {
        let f = cy.http_conf.as_deref().and_then(|h| h.filters.header.get(self.0).copied());
        match f {
            Some(f) => f(cy, r, Next(self.0 + 1)),
            None => Ok(Step::Done(())),
        }
    }
    /// Calls the next body filter.
    pub fn body(self, cy: &mut Cycle, r: RequestId, input: &mut Chain) -> FilterRc {
        let f = cy.http_conf.as_deref().and_then(|h| h.filters.body.get(self.0).copied());
        match f {
            Some(f) => f(cy, r, input, Next(self.0 + 1)),
            None => Ok(Step::Done(())),
        }
    }
}

/// Sends the response header through the header filters. nginx: `ngx_http_send_header()`.
pub fn send_header(cy: &mut Cycle, r: RequestId) -> FilterRc {
    Next(0).header(cy, r)
}

/// Sends body buffers through the body filters. nginx: `ngx_http_output_filter()`.
pub fn output_filter(cy: &mut Cycle, r: RequestId, input: &mut Chain) -> FilterRc {
    Next(0).body(cy, r, input)
}

/// The filter chains. Modules insert themselves at the front in `postconfiguration`, so the
/// module listed last runs first — nginx's `ngx_http_top_header_filter` rule.
#[derive(Default)]
pub struct Filters {
    /// Header filters, outermost first.
    pub header: Vec<HeaderFilter>,
    /// Body filters, outermost first.
    pub body: Vec<BodyFilter>,
}

/// Handlers of the phases rginx runs. nginx: `cmcf->phases[]`.
#[derive(Default)]
pub struct Phases {
    /// NGX_HTTP_SERVER_REWRITE_PHASE (server-level `return`), before the location is found.
    pub server_rewrite: Vec<PhaseHandler>,
    /// NGX_HTTP_REWRITE_PHASE (location-level `return`).
    pub rewrite: Vec<PhaseHandler>,
    /// NGX_HTTP_ACCESS_PHASE (auth_request).
    pub access: Vec<PhaseHandler>,
    /// NGX_HTTP_PRECONTENT_PHASE (mirror).
    pub precontent: Vec<PhaseHandler>,
    /// NGX_HTTP_LOG_PHASE (access_log).
    pub log: Vec<LogHandler>,
}

/// The context a directive's setter works in. nginx: `ngx_conf_t` + the `conf` pointer.
pub struct Cx<'a> {
    /// The directive.
    pub d: &'a Directive,
    /// Main confs of every module (`http {}` level).
    pub main: &'a mut Confs,
    /// Core settings of the server being configured (http and server levels).
    pub srv: Option<&'a mut CoreSrvConf>,
    /// Module srv confs of the current http/server level.
    pub srv_confs: Option<&'a mut Confs>,
    /// Loc-level confs of the current level (http, server or location).
    pub loc: &'a mut LocConf,
    /// Where the directive stands.
    pub level: Ctx,
    /// Command-line options (prefix).
    pub opts: &'a LoadOpts,
    /// The HTTP modules (`HttpBlock::modules`).
    pub modules: &'static [&'static dyn HttpModule],
    /// Servers collected so far (`http {}` level only).
    pub servers: Option<&'a mut Vec<SrvBuild>>,
}

impl Cx<'_> {
    /// This module's loc conf at the current level.
    pub fn loc_conf<T: 'static>(&mut self) -> Result<&mut T, SetError> {
        self.loc.confs.get_mut::<T>().ok_or_else(|| "module has no location configuration".into())
    }
    /// This module's main conf.
    pub fn main_conf<T: 'static>(&mut self) -> Result<&mut T, SetError> {
        self.main.get_mut::<T>().ok_or_else(|| "module has no main configuration".into())
    }
    /// Argument `i` (checked by the argument-count flags before the setter runs).
    pub fn arg(&self, i: usize) -> &str {
        self.d.args.get(i).map(String::as_str).unwrap_or("")
    }
}

/// Why a setter failed: a message about its own directive, or an error from a nested block
/// (which already carries its file and line).
#[derive(Debug)]
pub enum SetError {
    /// nginx: the string a `cmd->set` returns.
    Msg(String),
    /// An error inside a block this directive opened.
    Conf(ConfError),
}
impl From<String> for SetError {
    fn from(s: String) -> Self {
        SetError::Msg(s)
    }
}
impl From<&str> for SetError {
    fn from(s: &str) -> Self {
        SetError::Msg(s.to_string())
    }
}
impl From<ConfError> for SetError {
    fn from(e: ConfError) -> Self {
        SetError::Conf(e)
    }
}

/// A directive of an HTTP module. nginx: `ngx_command_t`.
pub struct Command {
    /// Directive name.
    pub name: &'static str,
    /// Where it may appear.
    pub ctx: Ctx,
    /// How many arguments.
    pub args: Args,
    /// The setter. nginx: `cmd->set`. A returned message becomes `[emerg] MSG in FILE:LINE`.
    pub set: fn(&mut Cx<'_>) -> Result<(), SetError>,
}

/// A `$variable` provider. nginx: `ngx_http_variable_t`.
pub struct VariableDef {
    /// Name without `$`; for a prefix variable, the prefix (`"arg_"`).
    pub name: &'static str,
    /// `name` is a prefix (`$arg_NAME`, `$http_NAME`). nginx: `NGX_HTTP_VAR_PREFIX`.
    pub prefix: bool,
    /// Appends the value; returns false when the variable is not found (logged as "-").
    /// The `&str` is a prefix variable's suffix (lowercased), empty otherwise.
    pub get: fn(&variables::Vars<'_>, &str, &mut Vec<u8>) -> bool,
}

/// An HTTP module. nginx: `ngx_module_t` + `ngx_http_module_t`.
pub trait HttpModule: Sync {
    /// Module name, e.g. `"ngx_http_proxy_module"`.
    fn name(&self) -> &'static str;
    /// Its directives. nginx: `module->commands`.
    fn commands(&self) -> &'static [Command] {
        &[]
    }
    /// Its variables. nginx: `preconfiguration` adding variables.
    fn variables(&self) -> &'static [VariableDef] {
        &[]
    }
    /// nginx: `create_main_conf`.
    fn create_main_conf(&self) -> Option<AnyConf> {
        None
    }
    /// nginx: `create_srv_conf`.
    fn create_srv_conf(&self) -> Option<AnyConf> {
        None
    }
    /// nginx: `create_loc_conf`.
    fn create_loc_conf(&self) -> Option<AnyConf> {
        None
    }
    /// nginx: `merge_srv_conf`. `prev` is the enclosing level's conf of the same module.
    fn merge_srv_conf(&self, _prev: &Confs, _conf: &mut Confs) -> Result<(), String> {
        Ok(())
    }
    /// nginx: `merge_loc_conf`.
    fn merge_loc_conf(&self, _prev: &Confs, _conf: &mut Confs) -> Result<(), String> {
        Ok(())
    }
    /// nginx: `init_main_conf` + `postconfiguration`: resolve references, install filters and
    /// phase handlers.
    fn postconfiguration(&self, _http: &mut HttpConf) -> Result<(), ConfError> {
        Ok(())
    }
    /// Per-worker state. nginx: `init_process`.
    fn init_worker(&self, _cy: &mut Cycle) {}
    /// Reopen files on USR1. nginx: `ngx_reopen_files()` over `cycle->open_files`.
    fn reopen_files(&self, _cy: &mut Cycle) {}
}

/// A `listen` directive's options. nginx: `ngx_http_listen_opt_t`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenOpt {
    /// Address (IPv4/IPv6 + port).
    pub addr: SocketAddr,
    /// `default_server`.
    pub default_server: bool,
    /// `reuseport`: each worker binds its own socket.
    pub reuseport: bool,
    /// `backlog=N` (nginx default 511).
    pub backlog: i32,
}

/// A server being built (also the http level's srv settings).
/// nginx: the `ngx_http_conf_ctx_t` of a `server {}`.
pub struct SrvBuild {
    /// Core server settings.
    pub core: CoreSrvConf,
    /// Module srv confs.
    pub confs: Confs,
    /// The server-level loc confs (holding the locations).
    pub loc: LocConf,
}

/// A configured server. nginx: `ngx_http_core_srv_conf_t` + its ctx.
pub struct SrvConf {
    /// Core server settings (merged).
    pub core: CoreSrvConf,
    /// Module srv confs (merged).
    pub confs: Confs,
    /// Server-level location conf; its `locations` are the server's locations.
    pub loc: Arc<LocConf>,
}

/// A location (or the http/server level). nginx: `ngx_http_core_loc_conf_t` + module loc confs.
pub struct LocConf {
    /// Core settings.
    pub core: CoreLocConf,
    /// Module loc confs.
    pub confs: Confs,
    /// Nested locations, sorted for matching.
    pub locations: Vec<Arc<LocConf>>,
}

/// One listening address and the servers on it. nginx: `ngx_http_conf_addr_t` /
/// `ngx_http_addr_conf_t`.
pub struct ListenAddr {
    /// Socket options.
    pub opt: ListenOpt,
    /// Servers listening here, in configuration order.
    pub servers: Vec<Arc<SrvConf>>,
    /// The `default_server` (or the first).
    pub default: usize,
}

/// The `http {}` block, fully merged. nginx: the http `ngx_http_conf_ctx_t` + core main conf.
pub struct HttpConf {
    /// Module main confs.
    pub main: Confs,
    /// Every server.
    pub servers: Vec<Arc<SrvConf>>,
    /// Listening addresses.
    pub addrs: Vec<ListenAddr>,
    /// Filter chains.
    pub filters: Filters,
    /// Phase handlers.
    pub phases: Phases,
    /// Variable providers (core + modules).
    pub variables: Vec<&'static VariableDef>,
    /// The modules, in order. nginx: `ngx_modules[]`.
    pub modules: &'static [&'static dyn HttpModule],
}

/// Every distinct listen address of `conf` with its options (none without `http {}`).
/// nginx: `cycle->listening`, filled by `ngx_http_optimize_servers()`.
pub fn listens(conf: &crate::conf::Conf) -> Vec<ListenOpt> {
    conf.get::<HttpConf>().map(|h| h.addrs.iter().map(|a| a.opt.clone()).collect()).unwrap_or_default()
}

/// Per-worker state of HTTP modules (open log files, upstream peer state, keepalive caches).
/// nginx: what modules keep in their own process-global statics.
#[derive(Default)]
pub struct HttpWorker {
    state: Vec<Box<dyn Any>>,
    /// The one state found on nearly every step of a proxied request (the upstream
    /// framework's: contexts, peers, idle connections; installed with `insert_hot`), kept
    /// apart: a search of `state` costs a virtual `type_id` call per entry passed and keeps
    /// the look-up from inlining; this is one check. (A typed field would make this layer
    /// name the one above it.) nginx: the upstream module's structures are plain pointers.
    hot: Option<Box<dyn Any>>,
}

impl HttpWorker {
    /// The state of type `T`, if installed.
    pub fn get<T: 'static>(&mut self) -> Option<&mut T> {
        self.state.iter_mut().find_map(|s| s.downcast_mut::<T>())
    }
    /// Read-only state of type `T`.
    pub fn get_ref<T: 'static>(&self) -> Option<&T> {
        self.state.iter().find_map(|s| s.downcast_ref::<T>())
    }
    /// Installs state (in `init_worker`).
    pub fn insert<T: 'static>(&mut self, v: T) {
        self.state.push(Box::new(v));
    }
    /// Installs the state that the request path looks up most (`hot`): the upstream
    /// framework's, once per worker. A second install is refused (logged) rather than
    /// replacing the first, whose users would then find nothing.
    pub(crate) fn insert_hot<T: 'static>(&mut self, v: T) {
        if self.hot.is_some() {
            log::error!("HttpWorker::insert_hot: a hot state is installed already; kept it");
            return;
        }
        self.hot = Some(Box::new(v));
    }
    /// The state installed with `insert_hot`, if it is of type `T`.
    #[inline]
    pub fn hot<T: 'static>(&mut self) -> Option<&mut T> {
        self.hot.as_mut()?.downcast_mut::<T>()
    }
    /// Read-only `hot`.
    #[inline]
    pub fn hot_ref<T: 'static>(&self) -> Option<&T> {
        self.hot.as_ref()?.downcast_ref::<T>()
    }
}
