//! Subrequests and the postpone filter, through a test-only module written against the public
//! API (as a third-party module would be, see tests/upstream_module.rs), over real sockets.
//!
//! The module's directives (content handlers):
//! - `sr_seq URI...;` — the SSI/addition pattern: header first, then `[`, each child separated
//!   by `,`, then `]` with `last_buf`, returning `Ok`; the postpone filter orders the output.
//! - `sr_memory URI;` — the seed's stock_quote pattern: one in-memory child, `hold` + `Done`;
//!   its `post_subrequest` handler reads the kept body and wakes the parent, which answers
//!   `kept STATUS: BODY` (502 if the child failed).
//! - `sr_loop URI;` — each level waits (in memory) for a child at `URI` and fails with 500 if
//!   its child failed: `/loop` calling itself hits nginx's depth limit.
//! - `sr_background URI;` — a background child, then the parent's own answer at once.
//!
//! One server for everything: a process has one logger and one signal setup.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use common::Conn;

use rginx::conf::{Args, Ctx};
use rginx::core::buf::{Buf, Chain};
use rginx::core::step::HandlerRc;
use rginx::http::cycle::{Cycle, RequestId};
use rginx::http::request;
use rginx::http::special_response::send_response;
use rginx::http::subrequest::{self, PostSubrequest, SubrequestFlags};
use rginx::http::{self as rhttp, AnyConf, Command, Confs, Cx, HttpModule, SetError};

// --- the module -------------------------------------------------------------------------------

#[derive(Clone, Copy, Default, PartialEq, Eq)]
enum Mode {
    #[default]
    Seq,
    Memory,
    Loop,
    Background,
}

#[derive(Default)]
struct SrLocConf {
    mode: Mode,
    uris: Vec<String>,
}

struct SrModule;

fn set(cx: &mut Cx<'_>, mode: Mode) -> Result<(), SetError> {
    let uris: Vec<String> = cx.d.args.to_vec();
    let c = cx.loc_conf::<SrLocConf>()?;
    c.mode = mode;
    c.uris = uris;
    cx.loc.core.handler = Some(sr_handler);
    Ok(())
}

static COMMANDS: &[Command] = &[
    Command { name: "sr_seq", ctx: Ctx::HTTP_LOC, args: Args::ONE_MORE, set: |cx| set(cx, Mode::Seq) },
    Command { name: "sr_memory", ctx: Ctx::HTTP_LOC, args: Args::TAKE1, set: |cx| set(cx, Mode::Memory) },
    Command { name: "sr_loop", ctx: Ctx::HTTP_LOC, args: Args::TAKE1, set: |cx| set(cx, Mode::Loop) },
    Command { name: "sr_background", ctx: Ctx::HTTP_LOC, args: Args::TAKE1, set: |cx| set(cx, Mode::Background) },
    Command {
        name: "sr_live",
        ctx: Ctx::HTTP_LOC,
        args: Args::NOARGS,
        set: |cx| {
            cx.loc.core.handler = Some(live_handler);
            Ok(())
        },
    },
];

/// `sr_live;`: what the worker holds, seen from inside: live requests (this one included) and
/// pending timers. The in-process server lets a test read the slab and the wheel, which a
/// client cannot see.
fn live_handler(cy: &mut Cycle, rid: RequestId) -> HandlerRc {
    let text = format!("requests {} timers {}", cy.requests.len(), cy.ev.timers.len());
    send_response(cy, rid, Some(text.into_bytes()))
}

impl HttpModule for SrModule {
    fn name(&self) -> &'static str {
        "ngx_http_sr_test_module"
    }
    fn commands(&self) -> &'static [Command] {
        COMMANDS
    }
    fn create_loc_conf(&self) -> Option<AnyConf> {
        Some(Box::new(SrLocConf::default()))
    }
    fn merge_loc_conf(&self, _prev: &Confs, _conf: &mut Confs) -> Result<(), String> {
        Ok(())
    }
}

/// What a waiting parent learns from its child (kept in the parent's ctx).
#[derive(Default)]
struct WaitCtx {
    status: u16,
    body: Vec<u8>,
    failed: bool,
}

fn split(uri: &str) -> (&[u8], &[u8]) {
    match uri.split_once('?') {
        Some((p, a)) => (p.as_bytes(), a.as_bytes()),
        None => (uri.as_bytes(), b""),
    }
}

fn sr_handler(cy: &mut Cycle, rid: RequestId) -> HandlerRc {
    let Some(c) = cy.requests.get(rid).and_then(|r| r.loc.confs.get::<SrLocConf>()) else {
        return HandlerRc::Status(500);
    };
    let (mode, uris) = (c.mode, c.uris.clone());
    match mode {
        Mode::Seq => seq(cy, rid, &uris),
        Mode::Memory | Mode::Loop => wait_for_child(cy, rid, &uris[0]),
        Mode::Background => background(cy, rid, &uris[0]),
    }
}

fn write(cy: &mut Cycle, rid: RequestId, text: &str, last: bool) -> bool {
    let mut out = Chain::new();
    let mut b = Buf::from_vec(text.as_bytes().to_vec());
    b.last_buf = last;
    out.push_back(b);
    rhttp::output_filter(cy, rid, &mut out).is_ok()
}

/// Header, `[`, children separated by `,`, `]`.
fn seq(cy: &mut Cycle, rid: RequestId, uris: &[String]) -> HandlerRc {
    if let Some(r) = cy.requests.get_mut(rid) {
        r.headers_out.status = 200;
        r.headers_out.set_content_type(b"text/plain");
    }
    if rhttp::send_header(cy, rid).is_err() || !write(cy, rid, "[", false) {
        return HandlerRc::Error;
    }
    for (i, u) in uris.iter().enumerate() {
        if i > 0 && !write(cy, rid, ",", false) {
            return HandlerRc::Error;
        }
        let (path, args) = split(u);
        if subrequest::subrequest(cy, rid, path, args, None, SubrequestFlags::NONE).is_err() {
            return HandlerRc::Error;
        }
    }
    if !write(cy, rid, "]", true) {
        return HandlerRc::Error;
    }
    HandlerRc::Ok
}

/// The stock_quote pattern: an in-memory child, then `Done`; the child wakes us.
fn wait_for_child(cy: &mut Cycle, rid: RequestId, uri: &str) -> HandlerRc {
    if let Some(r) = cy.requests.get_mut(rid) {
        r.ctx.push(Box::new(WaitCtx::default()));
    }
    let (path, args) = split(uri);
    let ps = PostSubrequest { handler: child_done, data: 7 };
    if subrequest::subrequest(cy, rid, path, args, Some(ps), SubrequestFlags::IN_MEMORY).is_err() {
        return HandlerRc::Status(500);
    }
    subrequest::hold(cy, rid);
    HandlerRc::Done
}

/// The child's `post_subrequest`: keep what it says in the parent's ctx, set the parent's
/// write handler. A failure is remembered (this may run again with `Ok` after an error page).
fn child_done(cy: &mut Cycle, sr: RequestId, data: usize, rc: HandlerRc) -> HandlerRc {
    assert_eq!(data, 7);
    let body = subrequest::in_memory_body(cy, sr);
    let Some((parent, status)) = cy.requests.get(sr).and_then(|r| Some((r.parent?, r.headers_out.status))) else {
        return rc;
    };
    let failed = matches!(rc, HandlerRc::Error) || matches!(rc, HandlerRc::Status(s) if s >= 300);
    if let Some(p) = cy.requests.get_mut(parent) {
        p.write_event_handler = parent_wakes;
        if let Some(w) = p.ctx::<WaitCtx>() {
            w.failed |= failed;
            if !w.failed {
                w.status = status;
                w.body = body;
            }
        }
    }
    // Handled: the parent answers for the child (an `Error` would end the whole request).
    if failed {
        HandlerRc::Ok
    } else {
        rc
    }
}

/// The parent re-activated: answer from what the child kept.
fn parent_wakes(cy: &mut Cycle, rid: RequestId) {
    let Some(r) = cy.requests.get_mut(rid) else { return };
    let loop_mode = r.loc.confs.get::<SrLocConf>().is_some_and(|c| c.mode == Mode::Loop);
    let Some(w) = r.ctx::<WaitCtx>() else { return };
    let (failed, status, body) = (w.failed, w.status, std::mem::take(&mut w.body));
    r.write_event_handler = request::empty_handler;
    if failed {
        let s = if loop_mode { 500 } else { 502 };
        return request::finalize_request(cy, rid, HandlerRc::Status(s));
    }
    let text = format!("kept {status}: {}", String::from_utf8_lossy(&body));
    r.headers_out.status = 200;
    r.headers_out.set_content_type(b"text/plain");
    r.headers_out.content_length_n = Some(text.len() as u64);
    let rc = send_response(cy, rid, Some(text.into_bytes()));
    request::finalize_request(cy, rid, rc);
}

/// A background child, then the answer at once.
fn background(cy: &mut Cycle, rid: RequestId, uri: &str) -> HandlerRc {
    let (path, args) = split(uri);
    if subrequest::subrequest(cy, rid, path, args, None, SubrequestFlags::BACKGROUND).is_err() {
        return HandlerRc::Status(500);
    }
    let Some(r) = cy.requests.get_mut(rid) else { return HandlerRc::Error };
    r.headers_out.status = 200;
    r.headers_out.content_length_n = Some(11);
    send_response(cy, rid, Some(b"main answer".to_vec()))
}

// --- running it in this process ------------------------------------------------------------------

fn modules() -> &'static [&'static dyn HttpModule] {
    static LIST: OnceLock<Vec<&'static dyn HttpModule>> = OnceLock::new();
    LIST.get_or_init(|| {
        let mut v: Vec<&'static dyn HttpModule> = rginx::modules::HTTP_MODULES.to_vec();
        v.push(&SrModule);
        v
    })
}

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

    fn wait_log(&self, needle: &str) -> bool {
        let end = Instant::now() + common::TIMEOUT;
        while Instant::now() < end {
            if self.error_log().contains(needle) {
                return true;
            }
            thread::sleep(Duration::from_millis(10));
        }
        false
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

/// Open descriptors of this process (the server runs in it).
fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

fn wait_fd_count(expected: usize) -> usize {
    let end = Instant::now() + common::TIMEOUT;
    let mut last = fd_count();
    while last != expected && Instant::now() < end {
        thread::sleep(Duration::from_millis(10));
        last = fd_count();
    }
    last
}

fn get(port: u16, path: &str) -> common::Response {
    let mut c = Conn::new(port);
    c.send(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes());
    c.read_response(false)
}

/// A backend whose every connection reads one request, waits until `gate()` is true (polled,
/// at most 10 s), answers `body` with a Content-Length, and reads to EOF. `accepted` counts
/// connections.
struct Gated {
    port: u16,
    accepted: Arc<AtomicUsize>,
}

fn gated(body: &'static str, gate: impl Fn() -> bool + Send + Sync + 'static) -> Gated {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let (acc, gate) = (accepted.clone(), Arc::new(gate));
    thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            acc.fetch_add(1, Ordering::SeqCst);
            let gate = gate.clone();
            thread::spawn(move || {
                let _ = s.set_read_timeout(Some(common::TIMEOUT));
                let mut head = Vec::new();
                let mut b = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut b) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&b[..n]),
                    }
                }
                // Wait for the gate; a peer that closes meanwhile ends the connection.
                let end = Instant::now() + common::TIMEOUT;
                let _ = s.set_read_timeout(Some(Duration::from_millis(5)));
                while !gate() && Instant::now() < end {
                    if matches!(s.read(&mut b), Ok(0)) {
                        return;
                    }
                }
                let _ = s.set_read_timeout(Some(common::TIMEOUT));
                let resp = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len());
                let _ = s.write_all(resp.as_bytes());
                while matches!(s.read(&mut b), Ok(n) if n > 0) {}
            });
        }
    });
    Gated { port, accepted }
}

// --- the tests -----------------------------------------------------------------------------------

#[test]
fn subrequests() {
    // Children finishing in reverse order: /slow answers only once the server logged that
    // /fast finished before its turn.
    let log_path: Arc<OnceLock<PathBuf>> = Arc::new(OnceLock::new());
    let lp = log_path.clone();
    let slow = gated("SLOW", move || {
        lp.get().is_some_and(|p| read(&p.join("logs/error.log")).contains("subrequest finished before its turn"))
    });
    let fast = gated("FAST", || true);
    let release = Arc::new(AtomicBool::new(false));
    let rel = release.clone();
    let held = gated("HELD", move || rel.load(Ordering::SeqCst));
    let quote = gated("var hq_str_s=\"x\";", || true);
    let big = gated(Box::leak("q".repeat(3000).into_boxed_str()), || true);
    let dead = common::refused_addr();
    let conf = format!(
        "
daemon off;
master_process off;
pid %%PREFIX%%/logs/rginx.pid;
error_log %%PREFIX%%/logs/error.log debug;
events {{}}
http {{
    access_log %%PREFIX%%/logs/access.log;
    server {{
        listen 127.0.0.1:%%PORT%%;
        server_name localhost;
        location = /a {{ return 200 \"A\"; }}
        location = /b {{ return 200 \"B\"; }}
        location = /leaf {{ return 200 \"leaf\"; }}
        location = /seq {{ sr_seq /a /b /a; }}
        location = /reverse {{ sr_seq /slow /fast; }}
        location = /nested {{ sr_seq /inner /b; }}
        location = /inner {{ sr_seq /leaf; }}
        location = /slow {{ proxy_pass http://127.0.0.1:{slow}; }}
        location = /fast {{ proxy_pass http://127.0.0.1:{fast}; }}
        location = /held {{ proxy_pass http://127.0.0.1:{held}; }}
        location = /tree {{ sr_seq /held /held; }}
        location = /quote {{ sr_memory /list?s_sh000001; }}
        location = /list {{ proxy_pass http://127.0.0.1:{quote}; }}
        location = /toobig {{ sr_memory /big; }}
        location = /kept_return {{ sr_memory /a; }}
        location = /big {{ proxy_buffer_size 1k; proxy_pass http://127.0.0.1:{big}; }}
        location = /mirror {{ sr_background /dead; }}
        location = /mirror_held {{ sr_background /held; }}
        location = /dead {{ proxy_pass http://127.0.0.1:{dead}; }}
        location = /loop {{ sr_loop /loop; }}
        location = /live {{ sr_live; }}
        location = /status {{ stub_status; }}
    }}
}}
",
        slow = slow.port,
        fast = fast.port,
        held = held.port,
        quote = quote.port,
        big = big.port,
        dead = dead.port(),
    );
    let s = InProcess::start(&conf);
    let _ = log_path.set(s.prefix.clone());

    postpone_order(&s);
    children_in_reverse_order(&s);
    nested(&s);
    in_memory(&s);
    in_memory_return(&s);
    in_memory_too_big(&s);
    background_failure_harmless(&s);
    background_does_not_delay(&s, &release, &held);
    subrequest_cycle(&s);
    release.store(false, Ordering::SeqCst);
    client_leaves_mid_tree(&s, &held);
    assert!(!s.error_log().contains("[alert]"), "{}", s.error_log());
}

/// `return` children: the parent's text and theirs in request order, chunked, keep-alive.
fn postpone_order(s: &InProcess) {
    let mut c = Conn::new(s.port);
    for _ in 0..2 {
        c.send(b"GET /seq HTTP/1.1\r\nHost: localhost\r\n\r\n");
        let resp = c.read_response(false);
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("Transfer-Encoding"), Some("chunked"));
        assert_eq!(resp.header("Connection"), Some("keep-alive"));
        assert_eq!(resp.body_str(), "[A,B,A]");
    }
}

/// /fast finishes while /slow (first) still runs: its output is held until /slow is done.
fn children_in_reverse_order(s: &InProcess) {
    let resp = get(s.port, "/reverse");
    assert_eq!((resp.status, resp.body_str().as_str()), (200, "[SLOW,FAST]"));
    let log = s.error_log();
    assert!(log.contains("subrequest finished before its turn"), "{log}");
    assert!(log.contains("postpone: output held"), "{log}");
    assert!(log.contains("postpone: held output released"), "{log}");
}

/// A child that creates a grandchild: the grandchild's output inside the child's.
fn nested(s: &InProcess) {
    let resp = get(s.port, "/nested");
    assert_eq!((resp.status, resp.body_str().as_str()), (200, "[[leaf],B]"));
    assert!(s.error_log().contains("depth 2"));
}

/// The in-memory child's body read by the parent's `post_subrequest` handler.
fn in_memory(s: &InProcess) {
    let resp = get(s.port, "/quote");
    assert_eq!((resp.status, resp.body_str().as_str()), (200, "kept 200: var hq_str_s=\"x\";"));
    let log = s.error_log();
    assert!(log.contains("post_subrequest: rc Ok"), "{log}");
    assert!(log.contains("subrequest done, wake parent"), "{log}");
}

/// An in-memory child served by `return`: its body passes the postpone filter into `r.out`.
fn in_memory_return(s: &InProcess) {
    let resp = get(s.port, "/kept_return");
    assert_eq!((resp.status, resp.body_str().as_str()), (200, "kept 200: A"));
}

/// A body larger than the upstream's `buffer_size`: nginx's error, the parent answers 502.
fn in_memory_too_big(s: &InProcess) {
    let resp = get(s.port, "/toobig");
    assert_eq!(resp.status, 502);
    let log = s.error_log();
    assert!(
        log.contains("upstream buffer is too small to read response while reading upstream, client: 127.0.0.1, server: localhost, request: \"GET /toobig HTTP/1.1\", subrequest: \"/big\""),
        "{log}"
    );
}

/// A background child to a dead upstream: the main response is untouched, the connection
/// stays usable.
fn background_failure_harmless(s: &InProcess) {
    let mut c = Conn::new(s.port);
    for _ in 0..2 {
        c.send(b"GET /mirror HTTP/1.1\r\nHost: localhost\r\n\r\n");
        let resp = c.read_response(false);
        assert_eq!((resp.status, resp.body_str().as_str()), (200, "main answer"));
    }
    assert!(s.error_log().contains("subrequest: \"/dead\""));
}

/// The main answer arrives while the background child's upstream still holds its answer.
fn background_does_not_delay(s: &InProcess, release: &AtomicBool, held: &Gated) {
    let before = held.accepted.load(Ordering::SeqCst);
    let resp = get(s.port, "/mirror_held");
    assert_eq!((resp.status, resp.body_str().as_str()), (200, "main answer"));
    // Answered while the background child's upstream could not have answered yet.
    assert!(!release.load(Ordering::SeqCst));
    let end = Instant::now() + common::TIMEOUT;
    while held.accepted.load(Ordering::SeqCst) < before + 1 && Instant::now() < end {
        thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(held.accepted.load(Ordering::SeqCst), before + 1, "the background child reached its upstream");
    release.store(true, Ordering::SeqCst);
    // Once the background child is done, the main request's connection goes (it held it).
    let end = Instant::now() + common::TIMEOUT;
    let mut st = String::new();
    while Instant::now() < end {
        st = get(s.port, "/status").body_str();
        if st.starts_with("Active connections: 1 ") {
            break;
        }
        thread::sleep(Duration::from_millis(10));
    }
    assert!(st.starts_with("Active connections: 1 "), "{st}");
}

/// `/loop` asks for itself: past nginx's depth limit its error, and 500 for the client.
fn subrequest_cycle(s: &InProcess) {
    let resp = get(s.port, "/loop");
    assert_eq!(resp.status, 500);
    let log = s.error_log();
    assert!(
        log.contains("subrequests cycle while processing \"/loop\", client: 127.0.0.1, server: localhost, request: \"GET /loop HTTP/1.1\", subrequest: \"/loop\", host: \"localhost\""),
        "{log}"
    );
    // nginx's counter starts at NGX_HTTP_MAX_SUBREQUESTS + 1 and refuses at 0: the 51st
    // level still runs (nginx 1.22 logs 51 "http subrequest" lines for the same config).
    assert!(log.contains("depth 51,"), "{log}");
    assert!(!log.contains("depth 52"), "{log}");
}

/// The client goes away while two proxied children wait for their upstreams: the whole tree is
/// freed (both upstream sockets, the client socket, slots, timers) and the server serves on.
fn client_leaves_mid_tree(s: &InProcess, held: &Gated) {
    let _ = get(s.port, "/a");
    // Earlier tests' backend threads close their sockets on their own time: settle first.
    let mut base = fd_count();
    let end = Instant::now() + common::TIMEOUT;
    while Instant::now() < end {
        thread::sleep(Duration::from_millis(100));
        let now = fd_count();
        if now == base {
            break;
        }
        base = now;
    }
    // Slots and timers as they are with nothing running (each /live asks on a new connection,
    // so its own request and timers count the same both times).
    let live_before = get(s.port, "/live").body_str();
    let before = held.accepted.load(Ordering::SeqCst);
    let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    c.write_all(b"GET /tree HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let end = Instant::now() + common::TIMEOUT;
    while held.accepted.load(Ordering::SeqCst) < before + 2 && Instant::now() < end {
        thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(held.accepted.load(Ordering::SeqCst), before + 2, "both children reached the upstream");
    drop(c);
    assert!(s.wait_log("client prematurely closed connection"), "{}", s.error_log());
    assert_eq!(wait_fd_count(base), base, "descriptors back to baseline");
    assert_eq!(get(s.port, "/live").body_str(), live_before, "request slots and timers back to baseline");
    let st = get(s.port, "/status").body_str();
    assert!(st.starts_with("Active connections: 1 "), "{st}");
    assert_eq!(get(s.port, "/seq").body_str(), "[A,B,A]");
}
