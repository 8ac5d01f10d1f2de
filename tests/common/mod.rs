//! Shared helpers for rginx's integration tests: the counterpart of nginx-tests'
//! `lib/Test/Nginx.pm`.
//!
//! - [`Rginx`] starts the binary from an inline config with nginx-tests' placeholders
//!   (`%%TEST_GLOBALS%%`, `%%PORT%%`, `%%BACKEND%%`, ...), waits for its pid file and stops it
//!   on drop; [`run_cli`] runs it once for `-t`/`-v`/... tests.
//! - [`Conn`], [`http`], [`http_get`] are raw-TCP clients; [`Response`] is one parsed response.
//! - [`Backend`] is a scripted fake upstream on std threads, byte-exact in what it sends and when.
//!
//! Only std; Linux (`/proc`, `SO_LINGER`). Every wait is bounded (10 s unless told), so a broken
//! server fails a test instead of hanging it. `RGINX_BIN=/usr/sbin/nginx` runs them against nginx.
#![allow(dead_code)]

pub mod limits;

use std::collections::HashSet;
use std::fs;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How long any single wait in these helpers lasts before the test fails.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// The binary under test: `$RGINX_BIN` if set (e.g. `/usr/sbin/nginx`), else cargo's `rginx`.
fn bin() -> String {
    std::env::var("RGINX_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_rginx").to_string())
}

/// Polls `f` every 10 ms until it returns `Some` or `timeout` passes.
fn poll<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn read_lossy(path: &Path) -> String {
    fs::read(path).map(|b| lossy(&b)).unwrap_or_default()
}

// --- ports and directories ---------------------------------------------------------------------

/// A free loopback port (bind 127.0.0.1:0, read the port, drop). Never the same port twice in
/// one test binary, so parallel tests cannot collide (another process still can, before the
/// server binds it: the race nginx-tests accepts too).
pub fn free_port() -> u16 {
    static USED: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    loop {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        if USED.lock().unwrap().get_or_insert_with(HashSet::new).insert(port) {
            return port;
        }
    }
}

/// An address where nothing listens (bind, then drop) — for "connection refused" tests.
pub fn refused_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

/// A fresh dir `rginx-test-<pid>-<n>` under `std::env::temp_dir()`, with `conf/` and `logs/`.
pub fn temp_prefix() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("rginx-test-{}-{n}", std::process::id()));
    let _ = fs::remove_dir_all(&dir); // left by an earlier run that had the same pid
    fs::create_dir_all(dir.join("conf")).unwrap();
    fs::create_dir_all(dir.join("logs")).unwrap();
    dir
}

// --- the server under test ---------------------------------------------------------------------

/// A running rginx started from an inline config; stopped (TERM, then KILL) on drop.
pub struct Rginx {
    /// The port `%%PORT%%` expanded to.
    pub port: u16,
    /// The port `%%PORT2%%` expanded to (a second `listen`).
    pub port2: u16,
    /// The `-p` dir: `conf/rginx.conf`, `logs/{error,access}.log`, `logs/rginx.pid`.
    pub prefix: PathBuf,
    /// The pid of the started process, which is the one the pid file names.
    pub pid: u32,
    child: Child,
    /// Kept so that `rewrite_conf` expands `%%BACKEND%%` as `start` did.
    backends: Vec<SocketAddr>,
}

impl Rginx {
    /// Writes `conf` to `PREFIX/conf/rginx.conf` after expanding the placeholders, starts
    /// `BIN -p PREFIX/ -c PREFIX/conf/rginx.conf -e PREFIX/logs/error.log` and returns once
    /// `PREFIX/logs/rginx.pid` holds the child's pid (polled every 10 ms, up to 10 s).
    /// Panics with stderr and the tail of error.log if the binary exits or times out.
    ///
    /// Placeholders, as nginx-tests: `%%TEST_GLOBALS%%` → `daemon off; master_process off;
    /// pid PREFIX/logs/rginx.pid; error_log PREFIX/logs/error.log info;` (`info`, not `debug`:
    /// a test that wants more writes its own `error_log`); `%%TEST_GLOBALS_HTTP%%` →
    /// `access_log PREFIX/logs/access.log;`; `%%PORT%%`, `%%PORT2%%` → fresh loopback ports;
    /// `%%PREFIX%%` → the prefix (no trailing slash); `%%BACKEND%%` (or `%%BACKEND1%%`),
    /// `%%BACKEND2%%`, ... → `backends[0]`, `backends[1]`, ... as `127.0.0.1:N`. A placeholder
    /// left unexpanded panics.
    ///
    /// Nothing else is added: configs write `events {}` themselves. A config without
    /// `%%TEST_GLOBALS%%` gets `-g "pid ...; error_log ...;"` (as nginx-tests' `run()`), so it
    /// must not set `pid` or `error_log`, and relies on the binary staying in the foreground.
    pub fn start(conf: &str, backends: &[SocketAddr]) -> Rginx {
        match Self::try_start(conf, backends) {
            Ok(r) => r,
            Err((out, code)) => panic!("rginx failed to start (exit code {code:?}):\n{out}"),
        }
    }

    /// Like [`Rginx::start`], but a binary that exits (or times out) before writing its pid
    /// gives `Err((stderr + error.log text, exit code))`, for config-error tests. The prefix
    /// dir is removed then.
    pub fn try_start(conf: &str, backends: &[SocketAddr]) -> Result<Rginx, (String, Option<i32>)> {
        let prefix = temp_prefix();
        let p = prefix.display().to_string();
        let (port, port2) = (free_port(), free_port());
        match expand(conf, &prefix, (port, port2), backends) {
            Ok(text) => fs::write(prefix.join("conf/rginx.conf"), text).unwrap(),
            Err(e) => {
                let _ = fs::remove_dir_all(&prefix);
                panic!("{e}");
            }
        }
        let out = fs::File::create(prefix.join("logs/stderr.log")).unwrap();
        let dir = format!("{p}/");
        let conf_file = format!("{p}/conf/rginx.conf");
        let err_file = format!("{p}/logs/error.log");
        let mut cmd = Command::new(bin());
        cmd.args(["-p", &dir, "-c", &conf_file, "-e", &err_file]);
        if !conf.contains("%%TEST_GLOBALS%%") {
            let globals = format!("pid {p}/logs/rginx.pid; error_log {err_file} info;");
            cmd.args(["-g", &globals]);
        }
        let out2 = out.try_clone().unwrap();
        cmd.stdin(Stdio::null()).stdout(out2).stderr(out);
        let mut child = cmd.spawn().expect("cannot run the binary (RGINX_BIN?)");
        let (pid, pid_file) = (child.id(), prefix.join("logs/rginx.pid"));
        let ready = poll(TIMEOUT, || match child.try_wait().unwrap() {
            Some(status) => Some(Err(status.code())),
            None => (read_lossy(&pid_file).trim() == pid.to_string()).then_some(Ok(())),
        });
        let code = match ready {
            Some(Ok(())) => {
                let backends = backends.to_vec();
                return Ok(Rginx { port, port2, prefix, pid, child, backends });
            }
            Some(Err(code)) => code,
            None => {
                let _ = child.kill();
                let _ = child.wait();
                None
            }
        };
        let error_log = read_lossy(Path::new(&err_file));
        let lines: Vec<&str> = error_log.lines().collect();
        let tail = lines[lines.len().saturating_sub(40)..].join("\n");
        let stderr = read_lossy(&prefix.join("logs/stderr.log"));
        let mut text = format!("--- stderr ---\n{stderr}--- error.log (tail) ---\n{tail}");
        if code.is_none() {
            text += "\n--- no pid file after 10 s ---";
        }
        let _ = fs::remove_dir_all(&prefix);
        Err((text, code))
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Sends a signal by name ("TERM", "QUIT", "HUP", "USR1", "INT") with `kill -s SIG PID`;
    /// panics if `kill` fails (e.g. the process is gone).
    pub fn signal(&self, sig: &str) {
        assert!(kill(sig, self.pid), "kill -s {sig} {} failed", self.pid);
    }

    /// Waits up to `timeout` for the process to exit; `None` if it still runs.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let child = &mut self.child;
        poll(timeout, || child.try_wait().unwrap())
    }

    /// Contents of `PREFIX/logs/error.log` (empty if missing).
    pub fn error_log(&self) -> String {
        read_lossy(&self.prefix.join("logs/error.log"))
    }

    /// Contents of `PREFIX/logs/access.log` (empty if missing).
    pub fn access_log(&self) -> String {
        read_lossy(&self.prefix.join("logs/access.log"))
    }

    /// Panics if error.log has an `[alert]`, `[crit]` or `[emerg]` line (nginx-tests ends each
    /// `.t` file with the same check).
    pub fn assert_no_alerts(&self) {
        let log = self.error_log();
        let bad = ["[alert]", "[crit]", "[emerg]"];
        let lines: Vec<&str> = log.lines().filter(|l| bad.iter().any(|b| l.contains(b))).collect();
        assert!(lines.is_empty(), "error.log has alerts:\n{}", lines.join("\n"));
    }

    /// Polls `PREFIX/logs/FILE` ("error.log", "access.log") until it contains `needle`; false
    /// after `timeout`. Log lines are written after the response is sent: wait, don't read.
    pub fn wait_log(&self, file: &str, needle: &str, timeout: Duration) -> bool {
        let path = self.prefix.join("logs").join(file);
        poll(timeout, || read_lossy(&path).contains(needle).then_some(())).is_some()
    }

    /// Rewrites `PREFIX/conf/rginx.conf`, expanded with the same ports and backends, for
    /// reload (`HUP`) tests.
    pub fn rewrite_conf(&self, conf: &str) {
        let text = expand(conf, &self.prefix, (self.port, self.port2), &self.backends);
        let text = text.unwrap_or_else(|e| panic!("{e}"));
        fs::write(self.prefix.join("conf/rginx.conf"), text).unwrap();
    }

    /// Open file descriptors (entries of `/proc/PID/fd`), for leak tests.
    pub fn fd_count(&self) -> usize {
        fs::read_dir(format!("/proc/{}/fd", self.pid)).map_or(0, |d| d.count())
    }

    /// Polls until `fd_count() == expected` or `timeout`; returns the last count seen.
    pub fn wait_fd_count(&self, expected: usize, timeout: Duration) -> usize {
        let mut last = 0;
        poll(timeout, || {
            last = self.fd_count();
            (last == expected).then_some(())
        });
        last
    }

    /// The descriptors held when idle, after one `GET /` over HTTP/1.0 has opened what opens
    /// on first use (the access log). The server closes before the client sees EOF, so the
    /// count is settled when this returns. Pairs with [`Rginx::assert_fds_back`].
    pub fn fd_baseline(&self) -> usize {
        assert!(!http(self.port, b"GET / HTTP/1.0\r\n\r\n").is_empty());
        self.fd_count()
    }

    /// After a batch: every connection of it is closed and released (waits up to
    /// [`TIMEOUT`] for the count to come back to `base`).
    pub fn assert_fds_back(&self, base: usize) {
        assert_eq!(self.wait_fd_count(base, TIMEOUT), base, "descriptors not back to baseline");
    }

    /// Resident set size in KiB (`VmRSS` in `/proc/PID/status`); 0 if unavailable.
    pub fn rss_kib(&self) -> u64 {
        let status = read_lossy(Path::new(&format!("/proc/{}/status", self.pid)));
        let rss = status.lines().find_map(|l| l.strip_prefix("VmRSS:"));
        let kib = rss.map(|v| v.trim().trim_end_matches("kB").trim());
        kib.and_then(|v| v.parse().ok()).unwrap_or(0)
    }
}

impl Drop for Rginx {
    /// TERM, up to 5 s to exit, then KILL. The prefix dir is removed, unless the test is
    /// panicking: then it is kept, and its path printed, for the logs.
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            kill("TERM", self.pid);
            if self.wait_exit(Duration::from_secs(5)).is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
        if thread::panicking() {
            eprintln!("rginx test prefix kept: {}", self.prefix.display());
        } else {
            let _ = fs::remove_dir_all(&self.prefix);
        }
    }
}

fn kill(sig: &str, pid: u32) -> bool {
    let (mut cmd, pid) = (Command::new("kill"), pid.to_string());
    cmd.args(["-s", sig, &pid]).stderr(Stdio::null());
    cmd.status().is_ok_and(|s| s.success())
}

/// Expands the placeholders documented on [`Rginx::start`]; `Err` names one left over.
fn expand(conf: &str, dir: &Path, ports: (u16, u16), peers: &[SocketAddr]) -> Result<String, String> {
    let p = dir.display();
    let globals = format!(
        "daemon off;\nmaster_process off;\npid {p}/logs/rginx.pid;\n\
         error_log {p}/logs/error.log info;\n"
    );
    let pairs = [
        ("%%TEST_GLOBALS_HTTP%%", format!("access_log {p}/logs/access.log;\n")),
        ("%%TEST_GLOBALS%%", globals),
        ("%%PREFIX%%", p.to_string()),
        ("%%PORT2%%", ports.1.to_string()),
        ("%%PORT%%", ports.0.to_string()),
    ];
    let mut s = conf.replace("%%BACKEND%%", "%%BACKEND1%%");
    for (name, value) in pairs {
        s = s.replace(name, &value);
    }
    for (i, a) in peers.iter().enumerate() {
        let name = format!("%%BACKEND{}%%", i + 1);
        s = s.replace(&name, &format!("127.0.0.1:{}", a.port()));
    }
    let name = s.split("%%").nth(1).unwrap_or("");
    let upper = |c: char| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_';
    if !name.is_empty() && name.chars().all(upper) {
        return Err(format!("placeholder %%{name}%% not expanded (missing backend?)"));
    }
    Ok(s)
}

/// Runs the binary with `args` in `cwd`; returns (exit code, stdout, stderr) — for
/// `-t`/`-T`/`-v`/`-V`/`-h` tests. Killed, and the test panics, after 10 s.
pub fn run_cli(args: &[&str], cwd: &Path) -> (Option<i32>, String, String) {
    let mut cmd = Command::new(bin());
    cmd.args(args).current_dir(cwd).stdin(Stdio::null());
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("cannot run the binary (RGINX_BIN?)");
    // Drained on threads, so a chatty binary cannot block on a full pipe.
    let drain = |mut r: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            lossy(&v)
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let Some(status) = poll(TIMEOUT, || child.try_wait().unwrap()) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{} {args:?} did not exit within 10 s", bin());
    };
    (status.code(), out.join().unwrap(), err.join().unwrap())
}

// --- the wire: buffered reading with HTTP/1 framing ---------------------------------------------

/// Bytes read from `src` but not consumed yet stay in `buf`, so pipelined or keepalive
/// messages are never lost between two reads.
struct Wire<R> {
    src: R,
    buf: Vec<u8>,
}

fn eof(what: &str) -> io::Error {
    let msg = format!("connection closed in {what}");
    io::Error::new(ErrorKind::UnexpectedEof, msg)
}

/// The first header named `name` (case-insensitive).
fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    let h = headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name));
    h.map(|(_, v)| v.as_str())
}

/// (first line, headers) of a raw message head.
fn parse_head(raw: &[u8]) -> (String, Vec<(String, String)>) {
    let text = lossy(raw);
    let mut lines = text.split("\r\n");
    let first = lines.next().unwrap_or("").to_string();
    let pairs = lines.filter_map(|l| l.split_once(':'));
    let headers = pairs.map(|(k, v)| (k.to_string(), v.trim().to_string()));
    (first, headers.collect())
}

/// Whether `headers` frame a chunked body.
fn is_chunked(headers: &[(String, String)]) -> bool {
    let te = header(headers, "transfer-encoding");
    te.is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
}

impl<R: Read> Wire<R> {
    fn new(src: R) -> Self {
        Wire { src, buf: Vec::new() }
    }

    /// Reads once more into `buf`; `Ok(0)` is EOF. A reset counts as EOF: nginx may reset
    /// after its last byte (lingering close), which is not what tests look at.
    fn fill(&mut self) -> io::Result<usize> {
        let mut tmp = [0u8; 16384];
        loop {
            match self.src.read(&mut tmp) {
                Ok(n) => {
                    self.buf.extend_from_slice(&tmp[..n]);
                    return Ok(n);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return Ok(0),
                Err(e) => return Err(e),
            }
        }
    }

    /// Panics with `what`, the error and the bytes read but not consumed.
    fn check<T>(&self, r: io::Result<T>, what: &str) -> T {
        r.unwrap_or_else(|e| panic!("{what}: {e}; unconsumed bytes: {:?}", lossy(&self.buf)))
    }

    /// The next `n` bytes.
    fn take(&mut self, n: usize) -> io::Result<Vec<u8>> {
        while self.buf.len() < n {
            if self.fill()? == 0 {
                return Err(eof("body"));
            }
        }
        Ok(self.buf.drain(..n).collect())
    }

    /// Everything up to and including `delim`.
    fn until(&mut self, delim: &[u8], what: &str) -> io::Result<Vec<u8>> {
        loop {
            if let Some(i) = self.buf.windows(delim.len()).position(|w| w == delim) {
                return Ok(self.buf.drain(..i + delim.len()).collect());
            }
            if self.fill()? == 0 {
                return Err(eof(what));
            }
        }
    }

    /// A message head through its blank line; `Ok(None)` on EOF before its first byte.
    fn head(&mut self) -> io::Result<Option<Vec<u8>>> {
        while self.buf.is_empty() {
            if self.fill()? == 0 {
                return Ok(None);
            }
        }
        self.until(b"\r\n\r\n", "head").map(Some)
    }

    /// A chunked body: (decoded data, raw bytes as on the wire). Trailers are skipped.
    fn chunked(&mut self) -> io::Result<(Vec<u8>, Vec<u8>)> {
        let (mut data, mut raw) = (Vec::new(), Vec::new());
        loop {
            let line = self.until(b"\r\n", "chunk size")?;
            raw.extend_from_slice(&line);
            let text = lossy(&line);
            let hex = text.split([';', '\r']).next().unwrap_or("").trim();
            let size = usize::from_str_radix(hex, 16).map_err(io::Error::other)?;
            if size == 0 {
                loop {
                    let line = self.until(b"\r\n", "trailer")?;
                    raw.extend_from_slice(&line);
                    if line == b"\r\n" {
                        return Ok((data, raw));
                    }
                }
            }
            let chunk = self.take(size + 2)?;
            data.extend_from_slice(&chunk[..size]);
            raw.extend(chunk);
        }
    }

    /// Everything until EOF, buffered bytes first.
    fn read_to_eof(&mut self) -> io::Result<Vec<u8>> {
        while self.fill()? > 0 {}
        Ok(std::mem::take(&mut self.buf))
    }

    /// One response; `head_request` (or a 1xx/204/304 status) means no body.
    fn response(&mut self, head_request: bool) -> io::Result<Response> {
        let raw = self.head()?.ok_or_else(|| eof("status line"))?;
        let (status_line, headers) = parse_head(&raw);
        let code = status_line.split(' ').nth(1);
        let status = code.and_then(|s| s.parse().ok()).unwrap_or(0);
        let chunked = is_chunked(&headers);
        let body_less = head_request || status < 200 || status == 204 || status == 304;
        let body = if body_less {
            Vec::new()
        } else if chunked {
            self.chunked()?.0
        } else if let Some(len) = header(&headers, "content-length") {
            self.take(len.parse().unwrap_or(0))?
        } else {
            self.read_to_eof()?
        };
        let head = lossy(&raw);
        Ok(Response { status, head, headers, body, chunked })
    }

    /// One request as raw bytes (head + body framed by Content-Length or chunked); `Ok(None)`
    /// on EOF before it starts.
    fn request(&mut self) -> io::Result<Option<Vec<u8>>> {
        let Some(mut raw) = self.head()? else {
            return Ok(None);
        };
        let (_, headers) = parse_head(&raw);
        if is_chunked(&headers) {
            raw.extend(self.chunked()?.1);
        } else if let Some(len) = header(&headers, "content-length") {
            raw.extend(self.take(len.parse().unwrap_or(0))?);
        }
        Ok(Some(raw))
    }
}

// --- client side -------------------------------------------------------------------------------

/// One HTTP response as read from the wire.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code (0 if the status line did not parse).
    pub status: u16,
    /// Status line and headers as received, through the blank line (ends in "\r\n\r\n").
    pub head: String,
    /// Header (name, value) pairs in order; values trimmed.
    pub headers: Vec<(String, String)>,
    /// The body, decoded if it was chunked.
    pub body: Vec<u8>,
    /// True if the body came with `Transfer-Encoding: chunked`.
    pub chunked: bool,
}

impl Response {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// The body as (lossy) UTF-8 text.
    pub fn body_str(&self) -> String {
        lossy(&self.body)
    }
}

/// A client socket to 127.0.0.1:`port` with 10 s read and write timeouts.
pub fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port));
    let s = s.unwrap_or_else(|e| panic!("connect to port {port}: {e}"));
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.set_write_timeout(Some(TIMEOUT)).unwrap();
    s
}

/// Sends `raw` and reads until the server closes; panics (showing what was read) on timeout.
/// A failed write is ignored: the server may answer and close before taking all of `raw`.
pub fn http(port: u16, raw: &[u8]) -> Vec<u8> {
    let mut c = Conn::new(port);
    let _ = c.stream.write_all(raw);
    c.read_to_close()
}

/// [`http`] for `GET PATH HTTP/1.0` with `Host: localhost`, as text.
pub fn http_get(port: u16, path: &str) -> String {
    let req = format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n");
    lossy(&http(port, req.as_bytes()))
}

/// Reads one response straight from a stream. Bytes past it are lost: use [`Conn`] for
/// keepalive and pipelining.
pub fn read_response(s: &mut TcpStream, head_request: bool) -> Response {
    let mut w = Wire::new(s);
    let r = w.response(head_request);
    w.check(r, "reading response")
}

/// One complete response from a byte slice (a body without framing runs to the slice's end).
pub fn parse_response(raw: &[u8]) -> Response {
    let mut w = Wire::new(raw);
    let r = w.response(false);
    w.check(r, "parsing response")
}

/// A keepalive client connection: bytes read past one response are kept for the next.
pub struct Conn {
    /// The socket, for raw writes, `shutdown` or timeouts a test sets itself.
    pub stream: TcpStream,
    wire: Wire<TcpStream>,
}

impl Conn {
    /// Connects to 127.0.0.1:`port` (10 s timeouts).
    pub fn new(port: u16) -> Conn {
        let stream = connect(port);
        Conn { wire: Wire::new(stream.try_clone().unwrap()), stream }
    }

    /// Writes all of `bytes`; panics on error.
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send to the server");
    }

    /// Reads exactly one response (framed by Content-Length, chunked, or close); `head`: the
    /// request was HEAD, so no body. Panics on timeout or early close, showing what was read.
    pub fn read_response(&mut self, head: bool) -> Response {
        let r = self.wire.response(head);
        self.wire.check(r, "reading response")
    }

    /// Buffered bytes plus everything until the peer closes; panics on timeout.
    pub fn read_to_close(&mut self) -> Vec<u8> {
        let r = self.wire.read_to_eof();
        self.wire.check(r, "waiting for close")
    }

    /// True if EOF or a reset comes within `timeout` with no data before it; false if data
    /// comes (kept for later reads) or the connection is still open at the deadline.
    pub fn is_closed(&mut self, timeout: Duration) -> bool {
        self.wire.buf.is_empty() && self.with_timeout(timeout, |w| matches!(w.fill(), Ok(0)))
    }

    /// Buffered bytes if any, else what one read gets within `timeout` (empty on timeout/EOF).
    pub fn read_some(&mut self, timeout: Duration) -> Vec<u8> {
        if self.wire.buf.is_empty() {
            self.with_timeout(timeout, |w| w.fill().ok());
        }
        std::mem::take(&mut self.wire.buf)
    }

    fn with_timeout<T>(&mut self, t: Duration, f: impl FnOnce(&mut Wire<TcpStream>) -> T) -> T {
        let t = t.max(Duration::from_millis(1)); // zero would mean "block forever"
        self.stream.set_read_timeout(Some(t)).unwrap();
        let v = f(&mut self.wire);
        self.stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        v
    }
}

// --- fake backend ------------------------------------------------------------------------------

/// One step of a [`Backend`] script. The connection closes gracefully when the script ends.
#[derive(Debug, Clone)]
pub enum Action {
    /// Write these bytes (TCP_NODELAY is on, so `Send, Sleep, Send` gives separate segments).
    Send(Vec<u8>),
    /// Pause.
    Sleep(Duration),
    /// Graceful close: FIN, then drain until the peer closes (up to 2 s), so that unread
    /// bytes do not turn the close into a reset. Ends the script.
    Close,
    /// Abortive close: SO_LINGER 0, then close, so the peer sees RST. std's `set_linger` is
    /// unstable, so this calls libc's `setsockopt` itself. Ends the script.
    Reset,
    /// Read one full request: head, then a Content-Length or chunked body. EOF ends the script.
    ReadRequest,
    /// Read as many bytes as given and check they are equal; a mismatch is recorded (see
    /// [`Backend::errors`]) and ends the script.
    Expect(Vec<u8>),
}

/// `Action::Send` from text.
pub fn send(s: &str) -> Action {
    Action::Send(s.as_bytes().to_vec())
}

type Answer = dyn Fn(&[u8]) -> Vec<u8> + Send + Sync;

/// What each accepted connection runs.
enum Mode {
    Script(Box<dyn Fn(usize) -> Vec<Action> + Send + Sync>),
    /// Keepalive loop: read a request, write `f(request)`, until EOF or a close is due.
    Answer(Box<Answer>),
}

/// State shared by the test, the accept thread and the connection threads.
#[derive(Default)]
struct Shared {
    /// Raw bytes received per connection, in accept order.
    received: Mutex<Vec<Vec<u8>>>,
    /// Failed `Expect`s, reported by `Drop`.
    errors: Mutex<Vec<String>>,
    stop: AtomicBool,
}

/// A scripted fake upstream on std threads, for proxy tests: byte-exact control of what is
/// sent and when. Listens on a fresh 127.0.0.1 port until dropped.
pub struct Backend {
    /// Where it listens; pass it to [`Rginx::start`] for a `%%BACKEND%%`.
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

/// A `Read` that records every byte it returns in `Shared::received[idx]`.
struct Recording {
    stream: TcpStream,
    shared: Arc<Shared>,
    idx: usize,
}

impl Read for Recording {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.stream.read(buf)?;
        self.shared.received.lock().unwrap()[self.idx].extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

impl Backend {
    /// Every accepted connection runs `script(connection index)` on its own thread; the bytes
    /// each connection receives are recorded (see [`Backend::requests`]).
    pub fn scripted(script: impl Fn(usize) -> Vec<Action> + Send + Sync + 'static) -> Backend {
        Self::spawn(Mode::Script(Box::new(script)))
    }

    /// Answers every request on a connection with `response`, keepalive, until the peer closes,
    /// either side says `Connection: close` (nginx's default HTTP/1.0 proxying does), or the
    /// request is HTTP/1.0 without keep-alive.
    pub fn fixed(response: &[u8]) -> Backend {
        let response = response.to_vec();
        Self::spawn(Mode::Answer(Box::new(move |_| response.clone())))
    }

    /// Answers 200 with the raw request (head + body as received) as a Content-Length body;
    /// keepalive as [`Backend::fixed`].
    pub fn echo() -> Backend {
        Self::spawn(Mode::Answer(Box::new(|req| {
            let r = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", req.len());
            r.into_bytes().into_iter().chain(req.iter().copied()).collect()
        })))
    }

    fn spawn(mode: Mode) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared::default());
        let (sh, mode) = (shared.clone(), Arc::new(mode));
        let accept = thread::spawn(move || {
            for stream in listener.incoming() {
                if sh.stop.load(Ordering::SeqCst) {
                    return; // woken by Drop's own connection
                }
                let Ok(stream) = stream else { continue };
                let mut received = sh.received.lock().unwrap();
                received.push(Vec::new());
                let rec = Recording { stream, shared: sh.clone(), idx: received.len() - 1 };
                drop(received);
                let mode = mode.clone();
                thread::spawn(move || serve(rec, &mode));
            }
        });
        Backend { addr, shared, accept: Some(accept) }
    }

    /// Raw bytes received per connection, in accept order.
    pub fn requests(&self) -> Vec<Vec<u8>> {
        self.shared.received.lock().unwrap().clone()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.received.lock().unwrap().len()
    }

    /// Polls until at least `n` connections were accepted; false after `timeout`.
    pub fn wait_connections(&self, n: usize, timeout: Duration) -> bool {
        poll(timeout, || (self.connections() >= n).then_some(())).is_some()
    }

    /// Failed `Expect` actions so far ("conn I: expected .., got ..").
    pub fn errors(&self) -> Vec<String> {
        self.shared.errors.lock().unwrap().clone()
    }
}

impl Drop for Backend {
    /// Stops the accept thread (a flag, then a connection to itself to wake `accept`).
    /// Connection threads end on their own (10 s timeouts at most). Panics if an `Expect`
    /// failed, unless the test is already panicking.
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        let errors = self.errors();
        if !errors.is_empty() && !thread::panicking() {
            panic!("backend {}: {}", self.addr, errors.join("; "));
        }
    }
}

/// Runs one backend connection to its end.
fn serve(rec: Recording, mode: &Mode) {
    let _ = rec.stream.set_nodelay(true);
    let _ = rec.stream.set_read_timeout(Some(TIMEOUT));
    let _ = rec.stream.set_write_timeout(Some(TIMEOUT));
    let (idx, shared) = (rec.idx, rec.shared.clone());
    let mut w = Wire::new(rec);
    match mode {
        Mode::Answer(f) => {
            while let Ok(Some(req)) = w.request() {
                let resp = f(&req);
                if w.src.stream.write_all(&resp).is_err() || wants_close(&req, &resp) {
                    break;
                }
            }
        }
        Mode::Script(script) => {
            for action in script(idx) {
                let go_on = match action {
                    Action::Send(b) => w.src.stream.write_all(&b).is_ok(),
                    Action::Sleep(d) => {
                        thread::sleep(d);
                        true
                    }
                    Action::Close => false,
                    Action::Reset => return set_linger_zero(&w.src.stream),
                    Action::ReadRequest => matches!(w.request(), Ok(Some(_))),
                    Action::Expect(want) => match w.take(want.len()) {
                        Ok(got) if got == want => true,
                        got => {
                            let got = got.map(|g| lossy(&g));
                            let msg = format!("conn {idx}: expected {:?}, got {got:?}", lossy(&want));
                            shared.errors.lock().unwrap().push(msg);
                            false
                        }
                    },
                };
                if !go_on {
                    break;
                }
            }
        }
    }
    // Graceful close: FIN first, then drain, as unread bytes would make the kernel send RST.
    let _ = w.src.stream.shutdown(Shutdown::Write);
    let _ = w.src.stream.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = w.read_to_eof();
}

/// Whether a keepalive backend closes after answering `req` with `resp`.
fn wants_close(req: &[u8], resp: &[u8]) -> bool {
    let (line, req_h) = parse_head(req);
    let resp_head = lossy(resp).split("\r\n\r\n").next().unwrap_or("").to_string();
    let (_, resp_h) = parse_head(resp_head.as_bytes());
    let connection = |h| header(h, "connection").map(|v| v.to_ascii_lowercase());
    let closes = |h| connection(h).is_some_and(|v| v.contains("close"));
    let keep_alive = connection(&req_h).is_some_and(|v| v.contains("keep-alive"));
    (line.ends_with("HTTP/1.0") && !keep_alive) || closes(&req_h) || closes(&resp_h)
}

/// SO_LINGER {on, 0 s}: closing the socket then sends RST instead of FIN.
pub fn set_linger_zero(s: &TcpStream) {
    use std::os::fd::AsRawFd;
    unsafe extern "C" {
        fn setsockopt(fd: i32, level: i32, name: i32, val: *const [i32; 2], len: u32) -> i32;
    }
    // Linux: SOL_SOCKET = 1, SO_LINGER = 13; `struct linger` is { int l_onoff; int l_linger; }.
    let linger: [i32; 2] = [1, 0];
    // SAFETY: `s` owns a valid fd, and `linger` has the layout and size of `struct linger`.
    let rc = unsafe { setsockopt(s.as_raw_fd(), 1, 13, &linger, 8) };
    assert_eq!(rc, 0, "setsockopt(SO_LINGER) failed");
}

/// `len` pseudo-random bytes (xorshift), so a misplaced or repeated piece changes the digest.
pub fn random_body(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ len as u64;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// FNV-1a 64-bit digest, to compare large bodies without printing them.
pub fn digest(bytes: &[u8]) -> u64 {
    let fnv = |h: u64, &b: &u8| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, fnv)
}

// --- what the binary under test calls itself ---------------------------------------------------

/// True when the suite runs against nginx itself (`RGINX_BIN=/usr/sbin/nginx`), to check that
/// a test records nginx's real behaviour. Tests use it only where rginx deliberately differs
/// (its name in `Server` and in error pages).
pub fn is_nginx() -> bool {
    let b = bin();
    let name = Path::new(&b).file_name().map(|n| n.to_string_lossy().into_owned());
    name.is_some_and(|n| n.starts_with("nginx"))
}

/// The token of `Server:` and of the error page tail: `rginx/0.1.0`, or nginx's own
/// (`nginx/1.22.1`, read from `nginx -v`) under `RGINX_BIN=nginx`.
pub fn server_token() -> String {
    if !is_nginx() {
        return format!("rginx/{}", env!("CARGO_PKG_VERSION"));
    }
    let (_, _, err) = run_cli(&["-v"], &std::env::temp_dir());
    let v = err.trim().rsplit(' ').next().unwrap_or("nginx");
    v.to_string()
}

/// The exact bytes of the built-in error page whose title is `title` (e.g. "404 Not Found"):
/// nginx's `ngx_http_error_*_page` followed by the tail with [`server_token`].
pub fn error_page(title: &str) -> String {
    format!(
        "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n\
         <center><h1>{title}</h1></center>\r\n<hr><center>{}</center>\r\n</body>\r\n</html>\r\n",
        server_token()
    )
}

/// A config with one server on %%PORT%% and a `proxy_temp_path` under the prefix;
/// `locations` is the text of the server's locations (shared by the proxy test files).
pub fn proxy_conf(locations: &str) -> String {
    "
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    proxy_temp_path %%PREFIX%%/proxy_temp;
    server {
        listen 127.0.0.1:%%PORT%%;
        server_name localhost;
        LOCATIONS
    }
}
"
    .replace("LOCATIONS", locations)
}

/// Waits (bounded by `TIMEOUT`) for an error-log line containing every one of `parts`.
pub fn assert_log(r: &Rginx, parts: &[&str]) {
    let found = || r.error_log().lines().any(|l| parts.iter().all(|p| l.contains(p)));
    let end = Instant::now() + TIMEOUT;
    while !found() {
        assert!(Instant::now() < end, "no error.log line with {parts:?}:\n{}", r.error_log());
        std::thread::sleep(Duration::from_millis(20));
    }
}
