//! `mytest [HOST[:PORT]]`: the upstream demo of the seed document 000 ("深入理解Nginx"'s
//! mytest module), callback by callback. `GET /test?lumia` in a `mytest` location makes rginx
//! send `GET /s?wd=lumia HTTP/1.1` to the upstream (`www.baidu.com:80` unless the argument
//! names another) and pass its answer to the client without buffering it.
//!
//! The file follows the seed's order, one item per C function:
//!
//! | seed (C) | here |
//! | --- | --- |
//! | `ngx_http_mytest_commands[]`, `ngx_http_mytest()` | `COMMANDS`, `mytest()` |
//! | `ngx_http_mytest_create_loc_conf()` | `MytestModule::create_loc_conf` → `create_loc_conf()` |
//! | `ngx_http_mytest_merge_loc_conf()` | `MytestModule::merge_loc_conf` → `merge_loc_conf()` |
//! | `ngx_http_mytest_ctx_t` | `MytestCtx` |
//! | `mytest_upstream_create_request()` | `MytestCtx::create_request` |
//! | `mytest_process_status_line()` | `MytestCtx::process_status_line` |
//! | `mytest_upstream_process_header()` | `MytestCtx::upstream_process_header` |
//! | `mytest_upstream_finalize_request()` | `MytestCtx::finalize_request` |
//! | `ngx_http_mytest_handler()` | `mytest_handler()` |
//!
//! docs/tutorial-upstream-module.md walks through it with the C beside the Rust.
//!
//! nginx: the seed's module (../shared/seeds/000_*.txt); what it calls in nginx:
//! src/http/ngx_http_upstream.c (`ngx_http_upstream_create()`, `ngx_http_upstream_init()`,
//! `ngx_http_upstream_hide_headers_hash()`, `ngx_http_upstream_headers_in[]`),
//! src/http/ngx_http_parse.c (`ngx_http_parse_status_line()`, `ngx_http_parse_header_line()`).
//!
//! Differs from the seed:
//! - the upstream address is resolved when the configuration is read, not per request with
//!   `gethostbyname()` in the handler (see `mytest()`), and the directive takes an optional
//!   `HOST[:PORT]` so the demo can run offline. (The seed's handler resolves "www.google.com"
//!   while its request says `Host: www.baidu.com`; rginx takes baidu, as the seed's scenario
//!   says.)
//! - the directive is allowed in `location` only (the seed also lists http, server and
//!   `limit_except` levels; rginx sets content handlers per location).
//! - the C module swaps the function pointer `u->process_header`; here the module's context
//!   keeps the choice in its `process_header` field, matched in the trait's `process_header`.
//! - a header handler that refuses a line (a malformed `Content-Length`) gives 502, as
//!   nginx's own modules do (`NGX_HTTP_UPSTREAM_INVALID_HEADER`); the seed returns
//!   `NGX_ERROR` (500), which nginx 1.22's lenient handlers never trigger.
//! - on the HTTP/0.9 fallback `u.headers_in.status_n` is set to 200 too, so that the request's
//!   status (`$status`) is 200; the seed sets only `u->state->status`.

use std::sync::Arc;

use crate::conf::{Args, Ctx};
use crate::core::buf::Buf;
use crate::core::step::{HandlerRc, Step};
use crate::http::cycle::{Cycle, RequestId};
use crate::http::parse::{self, HeaderLine};
use crate::http::{trace, AnyConf, Command, Confs, Cx, HttpModule, SetError};
use crate::modules::proxy::HIDE_HEADERS;
use crate::upstream::conf::{resolve, split_host_port, ServerConf, UpstreamMainConf, UpstreamSrvConf};
use crate::upstream::{self, headers_in, Resolved, Upstream, UpstreamConf, UpstreamCx, UpstreamError, UpstreamHandler};

/// The upstream when `mytest` has no argument: the seed's search engine.
const DEFAULT_UPSTREAM: &str = "www.baidu.com:80";

/// The request the seed sends, `%V` standing for the client's query string.
/// nginx: `backendQueryLine` in `mytest_upstream_create_request()`.
const BACKEND_QUERY_LINE: &str = "GET /s?wd=%V HTTP/1.1\r\nHost: www.baidu.com\r\nConnection: close\r\n\r\n";

/// nginx: `ngx_pagesize` (`getpagesize()`), 4 KiB on the machines rginx runs on.
const PAGE_SIZE: usize = 4096;

/// The module. nginx: `ngx_http_mytest_module`.
pub struct MytestModule;

/// nginx: `ngx_http_mytest_commands[]`.
static COMMANDS: &[Command] =
    &[Command { name: "mytest", ctx: Ctx::HTTP_LOC, args: Args(Args::NOARGS.0 | Args::TAKE1.0), set: mytest }];

/// Where the requests of one `mytest` location go: the resolved peer, as an upstream group
/// of one server. nginx: what the seed's handler puts in `u->resolved` (and
/// `myctx->backendServer`).
#[derive(Clone, Debug)]
struct Backend {
    /// Index of the group in `UpstreamMainConf::upstreams`.
    group: usize,
    /// `HOST:PORT` as configured (the `$proxy_host`-like name of `u.resolved`).
    host: String,
    /// The address it resolved to, for the debug log. nginx: `myctx->backendServer`.
    server: String,
}

/// One level's settings. nginx: `ngx_http_mytest_conf_t`, whose only member is the
/// `ngx_http_upstream_conf_t` every request of the location shares.
pub struct MytestConf {
    /// The seed's hard-coded upstream settings (`create_loc_conf`).
    upstream: UpstreamConf,
    /// `None` until merged: nginx's `NGX_CONF_UNSET_PTR` in `hide_headers`, which only
    /// `ngx_http_upstream_hide_headers_hash()` may fill.
    hide_headers: Option<Vec<String>>,
    /// Likewise unset (no directive sets it in mytest). nginx: `pass_headers`.
    pass_headers: Option<Vec<String>>,
    /// The merged settings the requests share. nginx: `&mycf->upstream`.
    shared: Option<Arc<UpstreamConf>>,
    /// Set by the `mytest` directive at this level.
    backend: Option<Backend>,
}

/// Fills in the upstream settings by hand, as the seed does instead of offering directives:
/// one-minute timeouts (proxy's defaults), buffering off (the body goes through one
/// `buffer_size` buffer, in step with the client), and the sizes buffering would use were it
/// on. `hide_headers` stays unset for `merge_loc_conf`. nginx: the seed's
/// `ngx_http_mytest_create_loc_conf()`.
fn create_loc_conf() -> MytestConf {
    let upstream = UpstreamConf {
        connect_timeout: 60_000,
        send_timeout: 60_000,
        read_timeout: 60_000,
        buffering: false,
        bufs: (8, PAGE_SIZE),
        buffer_size: PAGE_SIZE,
        busy_buffers_size: 2 * PAGE_SIZE,
        temp_file_write_size: 2 * PAGE_SIZE,
        max_temp_file_size: 1024 * 1024 * 1024,
        // What `ngx_pcalloc()` leaves at zero in the seed: no retry on another peer (there
        // is one), no request-body streaming (mytest sends none). `store_access = 0600`
        // has no counterpart: rginx has no `proxy_store`.
        request_buffering: false,
        next_upstream: 0,
        next_upstream_tries: 0,
        next_upstream_timeout: 0,
        intercept_errors: false,
        hide_headers: Default::default(),
        ..UpstreamConf::default()
    };
    MytestConf { upstream, hide_headers: None, pass_headers: None, shared: None, backend: None }
}

/// Prepares `hide_headers` from the proxy module's list, as the seed's merge does: nginx's
/// framework reads the hide list as a hash that must exist, and only
/// `ngx_http_upstream_hide_headers_hash()` builds it, in a merge. The result is shared by the
/// location's requests. nginx: the seed's
/// `ngx_http_mytest_merge_loc_conf()` calling `ngx_http_upstream_hide_headers_hash(cf,
/// &conf->upstream, &prev->upstream, ngx_http_proxy_hide_headers, &hash)`.
fn merge_loc_conf(prev: &MytestConf, conf: &mut MytestConf) {
    let (hide, pass) = hide_headers_hash(conf, prev, HIDE_HEADERS);
    conf.hide_headers = Some(hide.clone());
    conf.pass_headers = Some(pass);
    conf.upstream.hide_headers = hide.into();
    conf.shared = Some(Arc::new(conf.upstream.clone()));
}

/// The hide list: unset lists inherit the enclosing level's; then the module's defaults,
/// minus `pass_headers`, plus `hide_headers`. nginx: `ngx_http_upstream_hide_headers_hash()`
/// (a hash there, a list of lowercase names here).
fn hide_headers_hash(conf: &MytestConf, prev: &MytestConf, default: &[&str]) -> (Vec<String>, Vec<String>) {
    let own = conf.hide_headers.as_ref().or(prev.hide_headers.as_ref()).cloned().unwrap_or_default();
    let pass = conf.pass_headers.as_ref().or(prev.pass_headers.as_ref()).cloned().unwrap_or_default();
    let mut hide: Vec<String> = default.iter().map(|h| h.to_ascii_lowercase()).filter(|h| !pass.contains(h)).collect();
    for h in own {
        if !hide.contains(&h) {
            hide.push(h);
        }
    }
    (hide, pass)
}

/// Which parser `process_header` runs: the seed starts `u->process_header` as
/// `mytest_process_status_line` and, once the status line is in, points it at
/// `mytest_upstream_process_header`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ProcessHeader {
    /// nginx: `mytest_process_status_line()`.
    StatusLine,
    /// nginx: `mytest_upstream_process_header()`.
    Header,
}

/// Per-request state: what survives between two `process_header` calls, since the response
/// head arrives in as many pieces as the network likes. nginx: the seed's
/// `ngx_http_mytest_ctx_t` (kept with `ngx_http_set_ctx()`), plus the current
/// `u->process_header`.
struct MytestCtx {
    /// The parsed status line. nginx: `ctx->status` (`ngx_http_status_t`), which in nginx also
    /// holds the parser's state between calls; rginx's parser re-reads the line instead.
    status: parse::StatusLine,
    /// The peer's address, for the debug log. nginx: `ctx->backendServer`.
    backend_server: String,
    /// nginx: `u->process_header`.
    process_header: ProcessHeader,
}

/// Takes the upstream from the configuration and makes this location's requests go there.
///
/// The seed resolves the name in its content handler, per request, with `gethostbyname()`:
/// a blocking call, which in a worker would stop every other connection while DNS answers.
/// rginx resolves here instead, once, while the configuration is read (before any worker
/// runs), and fails `-t` and startup with `host not found in upstream "..."` when the name
/// does not resolve. Like the seed (`h_addr_list[0]`), the first address is used.
/// nginx: the seed's `ngx_http_mytest()` (the command's `set`), which sets
/// `clcf->handler = ngx_http_mytest_handler`.
fn mytest(cx: &mut Cx<'_>) -> Result<(), SetError> {
    if cx.loc_conf::<MytestConf>()?.backend.is_some() {
        return Err("is duplicate".into());
    }
    let arg = if cx.d.args.is_empty() { DEFAULT_UPSTREAM } else { cx.arg(0) };
    let (host, port) = split_host_port(arg, 80)?;
    let addr =
        resolve(&host, port)?.into_iter().next().ok_or_else(|| format!("host not found in upstream \"{host}\""))?;
    let server = addr.to_string();
    let name = if host.starts_with("unix:") { host.clone() } else { format!("{host}:{port}") };
    let m = cx.main_conf::<UpstreamMainConf>()?;
    m.upstreams.push(UpstreamSrvConf {
        name: name.clone(),
        servers: vec![ServerConf {
            addrs: vec![addr],
            name: server.clone(),
            weight: 1,
            max_fails: 1,
            fail_timeout: 10_000,
            backup: false,
            down: false,
        }],
        keepalive_requests: 1000,
        keepalive_timeout: 60_000,
        ..Default::default()
    });
    let group = m.upstreams.len() - 1;
    cx.loc_conf::<MytestConf>()?.backend = Some(Backend { group, host: name, server });
    cx.loc.core.handler = Some(mytest_handler);
    Ok(())
}

impl HttpModule for MytestModule {
    fn name(&self) -> &'static str {
        "ngx_http_mytest_module"
    }
    fn commands(&self) -> &'static [Command] {
        COMMANDS
    }
    /// nginx: `ngx_http_mytest_create_loc_conf()`.
    fn create_loc_conf(&self) -> Option<AnyConf> {
        Some(Box::new(create_loc_conf()))
    }
    /// nginx: `ngx_http_mytest_merge_loc_conf()`.
    fn merge_loc_conf(&self, prev: &Confs, conf: &mut Confs) -> Result<(), String> {
        let (Some(p), Some(c)) = (prev.get::<MytestConf>(), conf.get_mut::<MytestConf>()) else {
            return Ok(());
        };
        merge_loc_conf(p, c);
        Ok(())
    }
}

impl MytestCtx {
    /// Parses the status line: `Again` until its LF is in; then records it in
    /// `u.headers_in` (whence the framework builds the client's status, after applying its
    /// rules to the whole head), switches `process_header` to the header-line parser and
    /// runs it at once on whatever followed the line in the same read. A response that does
    /// not start like an HTTP/1.x status line is taken as HTTP/0.9: all of it is the body,
    /// status 200. nginx: the seed's `mytest_process_status_line()`.
    fn process_status_line(&mut self, cx: &mut UpstreamCx<'_>) -> Result<Step, UpstreamError> {
        let u = &mut *cx.u;
        let mut pos = u.buffer.pos;
        let parsed = parse::parse_status_line(u.buffer.mem.get(..u.buffer.last).unwrap_or(&[]), &mut pos);
        let st = match parsed {
            Ok(Step::Again) => return Ok(Step::Again),
            Ok(Step::Done(st)) => st,
            Err(_) => {
                // `u.buffer.pos` stays at the first byte: the whole answer goes to the client.
                cx.log_error("upstream sent no valid HTTP/1.0 header");
                cx.r.http_version = 9;
                cx.u.state.status = 200;
                cx.u.headers_in.status_n = 200;
                return Ok(Step::Done(()));
            }
        };
        self.status = st;
        u.state.status = st.code;
        u.headers_in.status_n = st.code;
        u.headers_in.set_status_line(u.buffer.mem.get(st.start..st.end).unwrap_or(&[]));
        u.buffer.pos = pos;
        self.process_header = ProcessHeader::Header; // the seed: u->process_header = mytest_upstream_process_header
        self.upstream_process_header(cx)
    }

    /// Parses header lines until the blank line. Each complete line is added to
    /// `u.headers_in` and run through the upstream's table of known headers
    /// (`headers_in::find`), whose handler records what the framework needs (the body's
    /// length, `chunked`, `Connection: close`). At the blank line, a `Server` and a `Date`
    /// with empty values are added if the upstream sent none, as nginx's proxy does: the
    /// framework then treats the response like one that had them (hidden from the client by
    /// the hide list, so rginx's own go out). A line cut short asks for more (`Again`); a
    /// malformed one is the upstream's fault (`InvalidHeader`: 502).
    /// nginx: the seed's `mytest_upstream_process_header()`.
    fn upstream_process_header(&mut self, cx: &mut UpstreamCx<'_>) -> Result<Step, UpstreamError> {
        match parse_header_lines(cx.u) {
            Ok(Step::Done(())) => {
                for name in ["Server", "Date"] {
                    if cx.u.headers_in.get(name.as_bytes()).is_none() {
                        cx.u.headers_in.push(name.as_bytes(), b"");
                        cx.debug(format_args!("mytest: no \"{name}\" from upstream, empty one added"));
                    }
                }
                Ok(Step::Done(()))
            }
            Ok(Step::Again) => Ok(Step::Again),
            Err(msg) => {
                cx.log_error(&msg);
                Err(UpstreamError::InvalidHeader)
            }
        }
    }
}

/// The loop of `mytest_upstream_process_header()`, on the upstream alone; `Err` is the
/// error-log message: the seed's "upstream sent invalid header", or the message of the table
/// handler that refused the line (nginx >= 1.23's handlers log their own).
fn parse_header_lines(u: &mut Upstream) -> Result<Step, String> {
    loop {
        let mut pos = u.buffer.pos;
        let buf = u.buffer.mem.get(..u.buffer.last).unwrap_or(&[]);
        match parse::parse_header_line(buf, &mut pos) {
            Ok(Step::Done(HeaderLine::Header { name, value })) => {
                let (name, value) = (buf.get(name).unwrap_or(&[]), buf.get(value).unwrap_or(&[]));
                u.headers_in.push(name, value);
                if let Some(hh) = headers_in::find(name) {
                    (hh.handler)(&mut u.headers_in, name, value)?;
                }
                u.buffer.pos = pos;
            }
            Ok(Step::Done(HeaderLine::End)) => {
                u.buffer.pos = pos;
                return Ok(Step::Done(()));
            }
            Ok(Step::Again) => return Ok(Step::Again),
            Err(_) => return Err("upstream sent invalid header".into()),
        }
    }
}

impl UpstreamHandler for MytestCtx {
    /// Builds the one request the upstream gets: the seed's fixed search line with the
    /// client's query string in the `wd` argument. It is put in `u.request_bufs`, which the
    /// framework owns from now on: it may take several writable events to send, and stays
    /// whole for a retry. Nothing else needs doing here: the seed's `request_sent`,
    /// `header_sent` and `header_hash` assignments are the framework's own state in rginx.
    /// nginx: the seed's `mytest_upstream_create_request()`.
    fn create_request(&mut self, cx: &mut UpstreamCx<'_>) -> Result<(), UpstreamError> {
        let (head, tail) = BACKEND_QUERY_LINE.split_once("%V").unwrap_or((BACKEND_QUERY_LINE, ""));
        let args = &cx.r.args;
        // The seed's `queryLineLen = backendQueryLine.len + r->args.len - 2` ("%V" goes).
        let mut line = Vec::with_capacity(BACKEND_QUERY_LINE.len() + args.len() - 2);
        line.extend_from_slice(head.as_bytes());
        line.extend_from_slice(args);
        line.extend_from_slice(tail.as_bytes());
        cx.u.uri = format!("/s?wd={}", String::from_utf8_lossy(args));
        cx.debug(format_args!(
            "mytest create_request: \"GET {}\" to {}, {} bytes",
            cx.u.uri,
            self.backend_server,
            line.len()
        ));
        cx.u.request_bufs.push_back(Buf::from_vec(line));
        Ok(())
    }

    /// Runs the parser `self.process_header` names; `Again` (NGX_AGAIN) makes the framework
    /// read more and call again, `Done` (NGX_OK) means the head is complete.
    /// nginx: `u->process_header(r)`.
    fn process_header(&mut self, cx: &mut UpstreamCx<'_>) -> Result<Step, UpstreamError> {
        let phase = self.process_header;
        let rc = match phase {
            ProcessHeader::StatusLine => self.process_status_line(cx),
            ProcessHeader::Header => self.upstream_process_header(cx),
        };
        // "StatusLine+Header": the status line completed and the swapped-in parser went on.
        let ran = if self.process_header == phase { format!("{phase:?}") } else { format!("{phase:?}+Header") };
        let status = cx.u.headers_in.status_n;
        match &rc {
            Ok(Step::Again) => cx.debug(format_args!("mytest process_header ({ran}): again")),
            Ok(Step::Done(())) => cx.debug(format_args!("mytest process_header ({ran}): done, status {status}")),
            Err(e) => cx.debug(format_args!("mytest process_header ({ran}): {e:?}")),
        }
        rc
    }

    /// Nothing to release (no file, no socket of its own): the seed only logs, at debug
    /// level. nginx: the seed's `mytest_upstream_finalize_request()`.
    fn finalize_request(&mut self, cx: &mut UpstreamCx<'_>, rc: HandlerRc) {
        cx.debug(format_args!("mytest_upstream_finalize_request: {rc:?}"));
    }

    /// A new try starts with a new status line. The seed leaves `reinit_request` unset: with
    /// one peer and `next_upstream` off nginx never retries, and neither does rginx.
    /// nginx: `u->reinit_request`.
    fn reinit_request(&mut self, _cx: &mut UpstreamCx<'_>) -> Result<(), UpstreamError> {
        self.process_header = ProcessHeader::StatusLine;
        self.status = parse::StatusLine::default();
        Ok(())
    }
}

/// The content handler: gives the request an upstream with the location's shared settings,
/// the resolved peer and mytest's callbacks, takes a reference on the main request for the
/// upstream's time (the seed's `r->main->count++`), starts it, and returns `Done`
/// (NGX_DONE): the request is not finished, the upstream will finish it.
/// nginx: the seed's `ngx_http_mytest_handler()`.
fn mytest_handler(cy: &mut Cycle, rid: RequestId) -> HandlerRc {
    let Some(r) = cy.requests.get(rid) else { return HandlerRc::Error };
    let Some(mycf) = r.loc.confs.get::<MytestConf>() else { return HandlerRc::Status(500) };
    let (Some(conf), Some(backend)) = (mycf.shared.clone(), mycf.backend.clone()) else {
        return HandlerRc::Status(500);
    };
    let main = r.main;
    trace::step(cy, rid, format_args!("mytest handler: upstream {} ({})", backend.host, backend.server));
    let ctx = MytestCtx {
        status: parse::StatusLine::default(),
        backend_server: backend.server,
        process_header: ProcessHeader::StatusLine,
    };
    let resolved = Resolved { group: backend.group, host: backend.host };
    if upstream::create(cy, rid, Box::new(ctx), conf, resolved).is_none() {
        log::error!("ngx_http_upstream_create() failed");
        return HandlerRc::Error;
    }
    if let Some(mr) = cy.requests.get_mut(main) {
        mr.count += 1;
    }
    upstream::init(cy, rid);
    HandlerRc::Done
}
