//! A third-party upstream module, written outside `src/` against rginx's public API only: the
//! proof that the upstream framework is a framework (issue 3, "Done when").
//!
//! `echo_upstream HOST:PORT;` is the seed's mytest module with a twist: it asks the upstream
//! for the client's URI, keeps the whole response body itself — the in-memory mode of the
//! seed's `subrequest_in_memory` (`u.in_memory = true`, its own `input_filter`) — and, in
//! `finalize_request`, leaves the answer for the client: the body upper-cased and the
//! upstream's status in `X-Upstream-Status`, which the framework sends.
//!
//! The module registers its own directive in its own `HttpModule`; the server runs in this
//! test process with `rginx::modules::HTTP_MODULES` plus this module, as a build of rginx with
//! a third-party module compiled in would (nginx's `--add-module`).

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use common::{digest, send, Action, Backend, Conn};

use rginx::conf::{Args, Ctx};
use rginx::core::buf::Buf;
use rginx::core::step::{HandlerRc, Step};
use rginx::http::cycle::Cycle;
use rginx::http::cycle::RequestId;
use rginx::http::parse::{self, HeaderLine};
use rginx::http::{self as rhttp, AnyConf, Command, Confs, Cx, HttpModule, SetError};
use rginx::upstream::conf::{split_host_port, UpstreamConf, UpstreamMainConf};
use rginx::upstream::{self, Resolved, UpstreamCx, UpstreamError, UpstreamHandler};

// --- the module -------------------------------------------------------------------------------

/// The location conf. nginx: `ngx_http_mytest_conf_t` (with its `ngx_http_upstream_conf_t`).
#[derive(Default)]
struct EchoLocConf {
    /// (upstream group, `Host` to send), from `echo_upstream`.
    target: Option<(usize, String)>,
    /// The framework's settings: nginx's defaults, as the seed hard-codes them.
    upstream: Option<Arc<UpstreamConf>>,
}

/// nginx: `ngx_http_mytest_module`.
struct EchoUpstreamModule;

static COMMANDS: &[Command] =
    &[Command { name: "echo_upstream", ctx: Ctx::HTTP_LOC, args: Args::TAKE1, set: set_echo_upstream }];

/// `echo_upstream HOST:PORT;` — resolved at configuration time by the upstream module (an
/// implicit upstream group, as `proxy_pass http://HOST:PORT` gets), then this location's
/// content handler. nginx: `ngx_http_mytest()` setting `clcf->handler`.
fn set_echo_upstream(cx: &mut Cx<'_>) -> Result<(), SetError> {
    let (host, port) = split_host_port(cx.arg(0), 80)?;
    let (file, line) = (cx.d.file.to_string(), cx.d.line);
    let group = cx.main_conf::<UpstreamMainConf>()?.add(&host, Some((host.clone(), port, file, line)));
    let c = cx.loc_conf::<EchoLocConf>()?;
    if c.target.is_some() {
        return Err("is duplicate".into());
    }
    c.target = Some((group, format!("{host}:{port}")));
    cx.loc.core.handler = Some(echo_handler);
    Ok(())
}

impl HttpModule for EchoUpstreamModule {
    fn name(&self) -> &'static str {
        "ngx_http_echo_upstream_module"
    }
    fn commands(&self) -> &'static [Command] {
        COMMANDS
    }
    fn create_loc_conf(&self) -> Option<AnyConf> {
        Some(Box::new(EchoLocConf::default()))
    }
    /// nginx: `ngx_http_mytest_merge_loc_conf()`.
    fn merge_loc_conf(&self, _prev: &Confs, conf: &mut Confs) -> Result<(), String> {
        if let Some(c) = conf.get_mut::<EchoLocConf>() {
            let u = UpstreamConf { read_timeout: 5_000, ..UpstreamConf::default() };
            c.upstream = Some(Arc::new(u));
        }
        Ok(())
    }
}

/// The content handler: attach an upstream, then start it once the client body is read.
/// nginx: `ngx_http_mytest_handler()` (`ngx_http_upstream_create` + `ngx_http_upstream_init`).
fn echo_handler(cy: &mut Cycle, rid: RequestId) -> HandlerRc {
    let Some(r) = cy.requests.get(rid) else {
        return HandlerRc::Error;
    };
    let Some(conf) = r.loc.confs.get::<EchoLocConf>() else {
        return HandlerRc::Status(500);
    };
    let (Some((group, host)), Some(uconf)) = (conf.target.clone(), conf.upstream.clone()) else {
        return HandlerRc::Status(500);
    };
    let ctx = EchoCtx { host: host.clone(), phase: Phase::StatusLine, body: Vec::new() };
    let resolved = Resolved { group, host };
    if upstream::create(cy, rid, Box::new(ctx), uconf, resolved).is_none() {
        return HandlerRc::Status(500);
    }
    match rhttp::body::read_client_request_body(cy, rid, upstream::init, false) {
        HandlerRc::Status(s) => HandlerRc::Status(s),
        HandlerRc::Error => HandlerRc::Error,
        _ => HandlerRc::Done,
    }
}

/// Where `process_header` stands: the seed's swap of `u->process_header` from
/// `mytest_process_status_line` to `mytest_upstream_process_header`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    StatusLine,
    Header,
}

/// Per-request state. nginx: `ngx_http_mytest_ctx_t`.
struct EchoCtx {
    host: String,
    phase: Phase,
    /// The upstream body, kept here: nothing is forwarded while it arrives.
    body: Vec<u8>,
}

impl EchoCtx {
    fn parse_status_line(&mut self, cx: &mut UpstreamCx<'_>) -> Result<Step, UpstreamError> {
        let u = &mut *cx.u;
        let mut pos = u.buffer.pos;
        match parse::parse_status_line(&u.buffer.mem[..u.buffer.last], &mut pos) {
            Ok(Step::Again) => Ok(Step::Again),
            Ok(Step::Done(st)) => {
                u.headers_in.status_n = st.code;
                u.buffer.pos = pos;
                self.phase = Phase::Header;
                Ok(Step::Done(()))
            }
            Err(_) => {
                cx.log_error("echo_upstream: upstream sent no valid HTTP/1.x status line");
                Err(UpstreamError::InvalidHeader)
            }
        }
    }

    fn parse_headers(&mut self, cx: &mut UpstreamCx<'_>) -> Result<Step, UpstreamError> {
        let u = &mut *cx.u;
        loop {
            let mut pos = u.buffer.pos;
            match parse::parse_header_line(&u.buffer.mem[..u.buffer.last], &mut pos) {
                Ok(Step::Again) => return Ok(Step::Again),
                Ok(Step::Done(HeaderLine::Header { name, value })) => {
                    let (n, v) = (&u.buffer.mem[name], &u.buffer.mem[value]);
                    if n.eq_ignore_ascii_case(b"content-length") {
                        u.headers_in.content_length_n = std::str::from_utf8(v).ok().and_then(|v| v.parse().ok());
                    }
                    u.headers_in.push(n, v);
                    u.buffer.pos = pos;
                }
                Ok(Step::Done(HeaderLine::End)) => {
                    u.buffer.pos = pos;
                    return Ok(Step::Done(()));
                }
                Err(_) => return Err(UpstreamError::InvalidHeader),
            }
        }
    }
}

impl UpstreamHandler for EchoCtx {
    /// nginx: `mytest_upstream_create_request()`.
    fn create_request(&mut self, cx: &mut UpstreamCx<'_>) -> Result<(), UpstreamError> {
        let uri = String::from_utf8_lossy(cx.r.unparsed_uri()).into_owned();
        let head = format!("GET {uri} HTTP/1.0\r\nHost: {}\r\nConnection: close\r\n\r\n", self.host);
        // The seed's subrequest_in_memory: the module consumes the body itself.
        cx.u.in_memory = true;
        upstream::request::push_bytes(cx.u, head.into_bytes());
        Ok(())
    }

    /// nginx: `mytest_process_status_line()`, then `mytest_upstream_process_header()`.
    fn process_header(&mut self, cx: &mut UpstreamCx<'_>) -> Result<Step, UpstreamError> {
        if self.phase == Phase::StatusLine && self.parse_status_line(cx)? == Step::Again {
            return Ok(Step::Again);
        }
        self.parse_headers(cx)
    }

    /// Body length from the upstream's Content-Length, else until it closes.
    fn input_filter_init(&mut self, cx: &mut UpstreamCx<'_>) -> Result<(), UpstreamError> {
        cx.u.length = cx.u.headers_in.content_length_n;
        Ok(())
    }

    /// Keeps every new byte; frees the receive buffer for the next read.
    /// nginx: `input_filter(data, bytes)` of a `subrequest_in_memory` user.
    fn input_filter(&mut self, cx: &mut UpstreamCx<'_>, bytes: usize) -> Result<(), UpstreamError> {
        let u = &mut *cx.u;
        let start = u.buffer.last - bytes;
        let take = u.length.map_or(bytes, |l| (l as usize).min(bytes));
        self.body.extend_from_slice(&u.buffer.mem[start..start + take]);
        if let Some(l) = u.length.as_mut() {
            *l -= take as u64;
        }
        u.buffer.pos = u.buffer.last;
        Ok(())
    }

    /// The upstream part is over: on success, leave the answer for the client — the kept body
    /// upper-cased in `u.out`, the header in `r.headers_out` — which the framework sends once
    /// this returns (a callback cannot send: it cannot reach the framework); on failure the
    /// framework's error page stands. nginx: `mytest_upstream_finalize_request()`.
    fn finalize_request(&mut self, cx: &mut UpstreamCx<'_>, rc: HandlerRc) {
        if rc != HandlerRc::Ok {
            return;
        }
        let body = std::mem::take(&mut self.body).to_ascii_uppercase();
        let ho = &mut cx.r.headers_out;
        ho.status = 200;
        ho.set_content_type(b"text/plain");
        ho.content_length_n = Some(body.len() as u64);
        ho.push(b"X-Upstream-Status", cx.u.headers_in.status_n.to_string().as_bytes());
        cx.u.out.push_back(Buf::from_vec(body));
    }
}

// --- running it in this process ------------------------------------------------------------------

/// rginx's own modules plus this one: what a build with `--add-module` would list.
fn modules() -> &'static [&'static dyn HttpModule] {
    static LIST: OnceLock<Vec<&'static dyn HttpModule>> = OnceLock::new();
    LIST.get_or_init(|| {
        let mut v: Vec<&'static dyn HttpModule> = rginx::modules::HTTP_MODULES.to_vec();
        v.push(&EchoUpstreamModule);
        v
    })
}

/// The server on a background thread of this process; `stop()` ends it.
struct InProcess {
    port: u16,
    prefix: PathBuf,
    thread: Option<thread::JoinHandle<i32>>,
}

impl InProcess {
    fn start(conf: &str) -> InProcess {
        let prefix = common::temp_prefix();
        let port = common::free_port();
        let p = prefix.display().to_string();
        let text = conf.replace("%%PREFIX%%", &p).replace("%%PORT%%", &port.to_string());
        std::fs::write(prefix.join("conf/rginx.conf"), text).unwrap();
        let args: Vec<String> =
            ["-p", &format!("{p}/"), "-c", &format!("{p}/conf/rginx.conf"), "-e", &format!("{p}/logs/error.log")]
                .iter()
                .map(|s| s.to_string())
                .collect();
        let thread = thread::spawn(move || rginx::process::main(&args, modules()));
        let pid = prefix.join("logs/rginx.pid");
        let end = Instant::now() + common::TIMEOUT;
        while !pid.exists() {
            assert!(!thread.is_finished(), "rginx exited: {}", read(&prefix.join("logs/error.log")));
            assert!(Instant::now() < end, "no pid file after 10 s");
            thread::sleep(Duration::from_millis(10));
        }
        InProcess { port, prefix, thread: Some(thread) }
    }

    fn error_log(&self) -> String {
        read(&self.prefix.join("logs/error.log"))
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        rginx::process::stop();
        if let Some(t) = self.thread.take() {
            let end = Instant::now() + Duration::from_secs(5);
            while !t.is_finished() && Instant::now() < end {
                thread::sleep(Duration::from_millis(10));
            }
            if !thread::panicking() {
                assert!(t.is_finished(), "rginx did not stop within 5 s of stop()");
                assert_eq!(t.join().ok(), Some(0), "exit status");
            }
        }
        if !thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.prefix);
        }
    }
}

fn read(path: &std::path::Path) -> String {
    std::fs::read(path).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
}

fn get(port: u16, path: &str) -> common::Response {
    let mut c = Conn::new(port);
    c.send(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes());
    c.read_response(false)
}

/// One in-process server for everything (a process has one logger and one signal setup).
#[test]
fn third_party_upstream_module() {
    // Connection i: 0 a plain answer, 1 a status line and header in many small pieces,
    // 2 a 16 MiB close-delimited body, 3 a 404.
    let big: Arc<Vec<u8>> = Arc::new((0..16 * 1024 * 1024u32).map(|i| b"abcdefghij"[(i % 10) as usize]).collect());
    let big2 = big.clone();
    let b = Backend::scripted(move |i| match i {
        0 => vec![Action::ReadRequest, send("HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world")],
        1 => {
            let wire = "HTTP/1.1 200 OK\r\nX-Pad: some padding here\r\nContent-Length: 5\r\n\r\nsplit";
            let mut v = vec![Action::ReadRequest];
            for piece in wire.as_bytes().chunks(3) {
                v.push(Action::Send(piece.to_vec()));
                v.push(Action::Sleep(Duration::from_millis(2)));
            }
            v
        }
        2 => vec![Action::ReadRequest, send("HTTP/1.0 200 OK\r\n\r\n"), Action::Send(big2.to_vec()), Action::Close],
        _ => vec![Action::ReadRequest, send("HTTP/1.1 404 Not Found\r\nContent-Length: 7\r\n\r\nmissing")],
    });
    let dead = common::refused_addr();
    let conf = format!(
        "
daemon off;
master_process off;
pid %%PREFIX%%/logs/rginx.pid;
error_log %%PREFIX%%/logs/error.log info;
events {{}}
http {{
    access_log %%PREFIX%%/logs/access.log;
    server {{
        listen 127.0.0.1:%%PORT%%;
        location / {{ echo_upstream 127.0.0.1:{}; }}
        location /dead {{ echo_upstream 127.0.0.1:{}; }}
        location /proxied {{ proxy_pass http://127.0.0.1:{}; }}
    }}
}}
",
        b.addr.port(),
        dead.port(),
        b.addr.port()
    );
    let s = InProcess::start(&conf);

    let resp = get(s.port, "/first?q=1");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body_str(), "HELLO WORLD");
    assert_eq!(resp.header("Content-Length"), Some("11"));
    assert_eq!(resp.header("X-Upstream-Status"), Some("200"));
    let reqs = b.requests();
    let first = String::from_utf8_lossy(&reqs[0]);
    assert_eq!(
        first,
        format!("GET /first?q=1 HTTP/1.0\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n", b.addr.port())
    );

    let resp = get(s.port, "/split");
    assert_eq!((resp.status, resp.body_str().as_str()), (200, "SPLIT"));

    let resp = get(s.port, "/big");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body.len(), big.len());
    assert_eq!(digest(&resp.body), digest(&big.to_ascii_uppercase()));

    let resp = get(s.port, "/missing");
    assert_eq!((resp.status, resp.body_str().as_str()), (200, "MISSING"));
    assert_eq!(resp.header("X-Upstream-Status"), Some("404"));

    // Failures are the framework's: a 502 page, the module's finalize_request called once.
    let resp = get(s.port, "/dead");
    assert_eq!(resp.status, 502);
    assert!(s.error_log().contains("connect() failed (111: Connection refused) while connecting to upstream"));

    // The built-in modules still work next to it.
    let mut c = Conn::new(s.port);
    c.send(b"GET /proxied HTTP/1.0\r\nHost: localhost\r\n\r\n");
    let _ = c.stream.flush();
    let resp = c.read_response(false);
    assert_eq!((resp.status, resp.body_str().as_str()), (404, "missing"));
}
