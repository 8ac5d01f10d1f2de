//! The error log through env_logger: nginx's line shape, `RUST_LOG` raising (never lowering)
//! the configured level so that `http::trace`'s debug lines show a request's steps, and USR1
//! reopening the file underneath the logger.
//!
//! `RUST_LOG` reaches the server through the environment it inherits, so each test sets it
//! (or removes it) while holding `ENV`, and starts its server before letting go: the tests of
//! this file may run in parallel without seeing each other's value.

mod common;

use std::fs;
use std::sync::Mutex;
use std::thread;
use std::time::Duration;

use common::{Backend, Conn, Rginx, TIMEOUT};

static ENV: Mutex<()> = Mutex::new(());

/// Starts `conf` with `RUST_LOG` set to `rust_log` (or unset).
fn start_with(rust_log: Option<&str>, conf: &str, backends: &[std::net::SocketAddr]) -> Rginx {
    let _guard = ENV.lock().unwrap_or_else(|e| e.into_inner());
    match rust_log {
        Some(v) => std::env::set_var("RUST_LOG", v),
        None => std::env::remove_var("RUST_LOG"),
    }
    let r = Rginx::start(conf, backends);
    std::env::remove_var("RUST_LOG");
    r
}

/// `2026/12/03 02:43:49 [LEVEL] PID#N: ` — nginx's `ngx_log_error_core()` prefix.
fn nginx_shape(line: &str, level: &str, pid: u32) -> bool {
    let b = line.as_bytes();
    let digits = |r: std::ops::Range<usize>| b.get(r).is_some_and(|s| s.iter().all(u8::is_ascii_digit));
    let time = digits(0..4)
        && b.get(4) == Some(&b'/')
        && digits(5..7)
        && b.get(7) == Some(&b'/')
        && digits(8..10)
        && b.get(10) == Some(&b' ')
        && digits(11..13)
        && b.get(13) == Some(&b':')
        && digits(14..16)
        && b.get(16) == Some(&b':')
        && digits(17..19);
    let rest = line.get(19..).unwrap_or("");
    let Some(rest) = rest.strip_prefix(&format!(" [{level}] {pid}#")) else { return false };
    let worker = rest.split(": ").next().unwrap_or("");
    time && !worker.is_empty() && worker.bytes().all(|c| c.is_ascii_digit())
}

fn proxy_get(r: &Rginx, path: &str) -> common::Response {
    let mut c = Conn::new(r.port);
    c.send(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes());
    c.read_response(false)
}

const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";

/// `RUST_LOG=debug` over `error_log ... info`: each step of a proxied request is one debug
/// line `*N +Tms what`, in the order the framework runs them, in nginx's line shape.
#[test]
fn rust_log_debug_shows_the_steps() {
    if common::is_nginx() {
        return; // RUST_LOG is rginx's own
    }
    let backend = Backend::fixed(RESPONSE);
    let conf = common::proxy_conf("location /p { proxy_pass http://%%BACKEND%%; }");
    let r = start_with(Some("debug"), &conf, &[backend.addr]);
    assert_eq!(proxy_get(&r, "/p/1").status, 200);
    // Every step below is logged before the response is sent.
    let log = r.error_log();
    let port = backend.addr.port();
    let steps = [
        "proxy handler: proxy_pass http://127.0.0.1:".to_string(),
        "proxy create_request: GET /p/1, ".to_string(),
        format!("upstream connect: 127.0.0.1:{port} (new connection)"),
        "upstream send: ".to_string(),
        "upstream process_header: done (".to_string(),
    ];
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("[debug]")).collect();
    let mut at = 0;
    for step in &steps {
        let Some(i) = lines[at..].iter().position(|l| l.contains(step.as_str())) else {
            panic!("no \"{step}\" after line {at} in:\n{log}");
        };
        let line = lines[at + i];
        assert!(nginx_shape(line, "debug", r.pid), "{line}");
        let what = line.split(": ").skip(1).collect::<Vec<_>>().join(": ");
        assert!(what.starts_with("*1 +") && what.contains("ms "), "{line}");
        at += i + 1;
    }
    let send = lines.iter().find(|l| l.contains("upstream send: ")).copied().unwrap_or("");
    assert!(send.ends_with(" bytes, request sent"), "{send}");
    r.assert_no_alerts();
}

/// Without `RUST_LOG`, `error_log ... info` writes no debug line (and none of the trace
/// lines costs more than the level check). Runs against nginx too.
#[test]
fn no_rust_log_no_debug_lines() {
    let backend = Backend::fixed(RESPONSE);
    let conf = common::proxy_conf("location /p { proxy_pass http://%%BACKEND%%; }");
    let r = start_with(None, &conf, &[backend.addr]);
    assert_eq!(proxy_get(&r, "/p/1").status, 200);
    let log = r.error_log();
    assert!(!log.contains("[debug]"), "{log}");
    r.assert_no_alerts();
}

/// `RUST_LOG=error` does not lower `error_log ... info`: a client that closes mid request
/// line still gets its `[info]` line, in nginx's shape.
#[test]
fn rust_log_never_lowers_the_level() {
    let conf = common::proxy_conf("location / { return 200 ok; }");
    let r = start_with(Some("error"), &conf, &[]);
    let mut c = Conn::new(r.port);
    c.send(b"GET / HT");
    drop(c);
    let needle = "client prematurely closed connection while reading client request line";
    assert!(r.wait_log("error.log", needle, TIMEOUT), "{}", r.error_log());
    let log = r.error_log();
    let line = log.lines().find(|l| l.contains(needle)).unwrap_or("");
    assert!(nginx_shape(line, "info", r.pid), "{line}");
    assert!(line.contains(": *1 client prematurely"), "{line}");
    r.assert_no_alerts();
}

/// USR1 reopens the error log: after the file is renamed away, the next line goes to a new
/// file of the same name, the old one keeps what was written before.
#[test]
fn usr1_reopens_the_error_log() {
    let conf = "
daemon off;
master_process on;
events {}
http {
    access_log off;
    server {
        listen 127.0.0.1:%%PORT%%;
        location / { return 200 ok; }
    }
}
";
    let r = start_with(None, conf, &[]);
    let logs = r.prefix.join("logs");
    let closed = |tag: &str| {
        let mut c = Conn::new(r.port);
        c.send(format!("GET /{tag} HT").as_bytes());
        drop(c);
    };
    closed("before");
    assert!(r.wait_log("error.log", "client prematurely closed", TIMEOUT), "{}", r.error_log());
    fs::rename(logs.join("error.log"), logs.join("error.log.1")).unwrap();
    r.signal("USR1");
    let mut reopened = false;
    for _ in 0..500 {
        if logs.join("error.log").exists() {
            reopened = true;
            break;
        }
        thread::sleep(Duration::from_millis(10));
    }
    assert!(reopened, "error.log not reopened");
    closed("after");
    assert!(r.wait_log("error.log", "client prematurely closed", TIMEOUT), "nothing in the reopened error.log");
    let old = fs::read_to_string(logs.join("error.log.1")).unwrap();
    assert_eq!(old.matches("client prematurely closed").count(), 1, "{old}");
    r.assert_no_alerts();
}
