//! The HTTP core module: its directive table, the core settings of each level and their
//! merge, and location matching.
//!
//! nginx: src/http/ngx_http_core_module.c (`ngx_http_core_module`, `ngx_http_core_commands`,
//! `ngx_http_core_srv_conf_t`, `ngx_http_core_loc_conf_t`, `ngx_http_core_merge_loc_conf`,
//! `ngx_http_core_keepalive`, `ngx_http_core_types`, `ngx_http_core_server_name`,
//! `ngx_http_core_find_location`). The block directives
//! (`http`, `server`, `location`) are read in `conf_block.rs`, `listen` and the grouping of
//! servers by address in `listen.rs`.
//!
//! Differs from nginx:
//! - locations are matched by a linear scan of each level (exact first, then the longest prefix,
//!   then its nested locations) instead of nginx's static location tree; without regex
//!   locations `^~` therefore behaves as a plain prefix, which is what nginx does too.
//! - unset values stay `None` after merge where a getter supplies the default; nginx writes the
//!   default into the struct during merge.
//! - `location @name` is read and checked, but no directive jumps to one yet: there is no
//!   `ngx_http_named_location()` (nginx's `error_page`/`try_files` targets).

use std::sync::Arc;

use super::{conf_block, listen, Command, ContentHandler, Cx, HttpModule, ListenOpt, LocConf, SetError};
use crate::conf::{self, Args, Ctx};

// `request_head.rs` finds its server through here, as it did before `listen.rs` existed.
pub use super::listen::find_virtual_server;

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
    pub(super) fn merge(&mut self, prev: &CoreLocConf) {
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
        set: conf_block::server,
    },
    Command {
        name: "location",
        ctx: Ctx(Ctx::HTTP_SRV.0 | Ctx::HTTP_LOC.0),
        args: Args(Args::BLOCK.0 | Args::TAKE12.0),
        set: conf_block::location,
    },
    Command {
        name: "listen",
        ctx: Ctx::HTTP_SRV,
        args: Args::ONE_MORE,
        set: listen::listen,
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

/// The server level's core conf, or nginx's error for a server directive used elsewhere.
pub(super) fn srv<'a>(cx: &'a mut Cx<'_>) -> Result<&'a mut CoreSrvConf, String> {
    match cx.srv.as_deref_mut() {
        Some(s) => Ok(s),
        None => Err(format!("\"{}\" directive is not allowed here", cx.d.name)),
    }
}

/// `types { ext... type; }`. nginx: `ngx_http_core_types()`.
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

/// nginx: `ngx_http_core_server_name()` (no regex names).
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
