//! The repository's own `conf/rginx.conf`, run as a fresh clone runs it: `rginx` with no flag
//! in a directory that has `conf/` and nothing else (no `logs/`). Only the two ports are
//! changed (8080 and 8081 become free ones), so the test cannot collide with an rginx the
//! reader left running.
//!
//! It checks what the README promises: the server starts without any directory made by hand,
//! the error log is on stderr and the access log on stdout, the pid file is in the prefix, and
//! the second server block plays baidu and the quote service for the two seed modules, and
//! `/test?lumia` (mytest) and `/query?s_sh000001` (stock_quote) answer as the README says.

mod common;

use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::{free_port, http, parse_response, temp_prefix, TIMEOUT};

/// The running server; stopped (TERM, then KILL) on drop, prefix removed unless panicking.
struct Server {
    child: Child,
    prefix: PathBuf,
    ports: (u16, u16),
}

impl Drop for Server {
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-s", "TERM", &pid]).status();
        let end = Instant::now() + TIMEOUT;
        while Instant::now() < end && self.child.try_wait().ok().flatten().is_none() {
            thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !thread::panicking() {
            let _ = fs::remove_dir_all(&self.prefix);
        }
    }
}

/// Copies `conf/rginx.conf` into a fresh prefix without `logs/`, starts `rginx` there with no
/// argument, and returns once the pid file names it.
fn start() -> Server {
    let prefix = temp_prefix();
    fs::remove_dir_all(prefix.join("logs")).unwrap();
    let text = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/conf/rginx.conf")).unwrap();
    let ports = (free_port(), free_port());
    assert!(text.contains("127.0.0.1:8080") && text.contains("127.0.0.1:8081"), "{text}");
    let text = text.replace("127.0.0.1:8080", &format!("127.0.0.1:{}", ports.0));
    let text = text.replace("127.0.0.1:8081", &format!("127.0.0.1:{}", ports.1));
    fs::write(prefix.join("conf/rginx.conf"), text).unwrap();
    let out = fs::File::create(prefix.join("stdout.txt")).unwrap();
    let err = fs::File::create(prefix.join("stderr.txt")).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_rginx"))
        .current_dir(&prefix)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap();
    let mut s = Server { child, prefix, ports };
    let pid = s.child.id().to_string();
    let end = Instant::now() + TIMEOUT;
    loop {
        let written = fs::read_to_string(s.prefix.join("rginx.pid")).unwrap_or_default();
        if written.trim() == pid {
            return s;
        }
        let exited = s.child.try_wait().unwrap();
        if exited.is_some() || Instant::now() > end {
            let stderr = fs::read_to_string(s.prefix.join("stderr.txt")).unwrap_or_default();
            panic!("default conf did not start ({exited:?}):\n{stderr}");
        }
        thread::sleep(Duration::from_millis(10));
    }
}

fn get(port: u16, target: &str) -> common::Response {
    parse_response(&http(port, format!("GET {target} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes()))
}

#[test]
fn default_conf_runs_from_a_fresh_clone() {
    if common::is_nginx() {
        return; // the test runs the file with rginx's compiled-in defaults (no -p, no -c)
    }
    let s = start();
    let (front, back) = s.ports;
    let welcome = get(front, "/");
    assert_eq!(welcome.status, 200);
    assert_eq!(welcome.body_str(), "Welcome to rginx: nginx's architecture in Rust.\n");
    assert_eq!(get(front, "/hello?name=rginx").body_str(), "hello from /hello, args=name=rginx\n");

    // baidu, as mytest asks it (seed 000)
    let baidu = get(back, "/s?wd=lumia");
    assert_eq!(baidu.status, 200);
    assert_eq!(baidu.header("Content-Type"), Some("text/html"));
    let page = "<html><head><title>lumia - baidu, played by rginx</title></head>\
                <body>results for lumia</body></html>\n";
    assert_eq!(baidu.body_str(), page);

    // the quote service, through the front server's /list proxy, as stock_quote's
    // subrequest goes (seed 002)
    let quote = get(front, "/list=s_sh000001");
    assert_eq!(quote.status, 200);
    let body = "var hq_str_s_sh000001=\"SSE Composite,3094.668,-12.073,-0.39,436653,5458126\";\n";
    assert_eq!(quote.body_str(), body);
    assert_eq!(get(front, "/list=s_xx000000").status, 404);

    // The two seeds, end to end (mytest and stock_quote through the server above).
    let test = get(front, "/test?lumia");
    assert_eq!(test.status, 200);
    assert_eq!(test.body_str(), page);
    let query = get(front, "/query?s_sh000001");
    assert_eq!(query.status, 200);
    let answer = "stock[SSE Composite],Today current price: 3094.668, volumn: 436653";
    assert_eq!(query.body_str().trim_end(), answer);

    // Logs: the access log on stdout, the error log on stderr, nothing under logs/.
    let end = Instant::now() + TIMEOUT;
    let stdout = s.prefix.join("stdout.txt");
    while Instant::now() < end && !fs::read_to_string(&stdout).unwrap_or_default().contains("/list=s_xx000000") {
        thread::sleep(Duration::from_millis(10));
    }
    let access = fs::read_to_string(&stdout).unwrap();
    assert!(access.contains("\"GET /list=s_sh000001 HTTP/1.0\" 200 "), "{access}");
    let stderr = fs::read_to_string(s.prefix.join("stderr.txt")).unwrap();
    assert!(stderr.contains("[notice]") && stderr.contains("started"), "{stderr}");
    assert!(!["[alert]", "[crit]", "[emerg]"].iter().any(|l| stderr.contains(l)), "{stderr}");
    assert!(!s.prefix.join("logs").exists(), "something made logs/");
}
