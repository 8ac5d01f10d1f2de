//! The differential test's runner: one nginx and one rginx on the same config, each with a
//! recording mock backend per lane, and the raw exchange of one request with each.
//!
//! nginx: nginx-tests' lib/Test/Nginx.pm (`run`, `stop`), and a mock upstream as in its
//! proxy tests.
//!
//! Differs from nginx: nothing; test code. A lane is one `server { listen PORT; }` block with
//! its own backend in each process, so that lanes run side by side and the backend bytes of
//! one request are never confused with another's.

use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How long the mock backend waits for more of a request before it answers anyway.
const BACKEND_WAIT: Duration = Duration::from_millis(1000);

/// Longest time one exchange may take, however chatty the server.
const EXCHANGE_CAP: Duration = Duration::from_secs(6);

/// What one server did with one request.
#[derive(Debug, Clone, Default)]
pub struct Answer {
    /// Every byte the client got, in order.
    pub response: Vec<u8>,
    /// The server closed (FIN or reset) before the client gave up.
    pub closed: bool,
    /// The connect failed: the server is gone or refuses connections.
    pub refused: bool,
    /// Bytes each backend connection received, with the lane's backend port masked.
    pub backend: Vec<Vec<u8>>,
}

// --- the mock backend ------------------------------------------------------------------------

type Record = Arc<Mutex<Vec<u8>>>;

/// A backend on 127.0.0.1 that answers `200 ok` to each connection's first request and records
/// every byte each connection sends, until dropped.
pub struct Backend {
    pub addr: SocketAddr,
    conns: Arc<Mutex<Vec<Record>>>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl Backend {
    pub fn start() -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a backend port");
        let addr = listener.local_addr().expect("backend address");
        let conns: Arc<Mutex<Vec<Record>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (c, s) = (conns.clone(), stop.clone());
        let accept = thread::spawn(move || {
            for stream in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let rec = Record::default();
                c.lock().unwrap().push(rec.clone());
                thread::spawn(move || serve(stream, &rec));
            }
        });
        Backend { addr, conns, stop, accept: Some(accept) }
    }

    /// The bytes of every connection accepted since the last call, in accept order; forgets
    /// them.
    pub fn take(&self) -> Vec<Vec<u8>> {
        let conns = std::mem::take(&mut *self.conns.lock().unwrap());
        conns.iter().map(|r| r.lock().unwrap().clone()).collect()
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr); // wakes accept()
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

/// Reads one request (head, then a Content-Length or chunked body, waiting at most
/// `BACKEND_WAIT` for each read), answers, half-closes and records the rest until EOF.
fn serve(mut s: TcpStream, rec: &Record) {
    let _ = s.set_nodelay(true);
    let _ = s.set_read_timeout(Some(BACKEND_WAIT));
    let mut buf = Vec::new();
    while !request_complete(&buf) {
        if !read_into(&mut s, &mut buf, rec) {
            break;
        }
    }
    let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n");
    let _ = s.shutdown(Shutdown::Write);
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    while read_into(&mut s, &mut buf, rec) {}
}

/// One read into `buf` and `rec`; false on EOF, error or timeout.
fn read_into(s: &mut TcpStream, buf: &mut Vec<u8>, rec: &Record) -> bool {
    let mut tmp = [0u8; 16384];
    match s.read(&mut tmp) {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buf.extend_from_slice(&tmp[..n]);
            rec.lock().unwrap().extend_from_slice(&tmp[..n]);
            true
        }
    }
}

/// Whether `buf` holds a whole request, judged loosely: the backend only needs to know when
/// to answer, and a wrong guess costs `BACKEND_WAIT`, not a wrong record.
fn request_complete(buf: &[u8]) -> bool {
    let Some(end) = find(buf, b"\r\n\r\n") else { return false };
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    let body = &buf[end + 4..];
    let value = |name: &str| {
        let l = head.lines().find(|l| l.starts_with(name))?;
        Some(l[name.len()..].trim().to_string())
    };
    if value("transfer-encoding:").is_some_and(|v| v.contains("chunked")) {
        return find(body, b"0\r\n\r\n").is_some();
    }
    let len = value("content-length:").and_then(|v| v.parse::<usize>().ok()).unwrap_or(0);
    body.len() >= len
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

// --- the servers -----------------------------------------------------------------------------

/// One lane's addresses in one process.
pub struct Lane {
    pub port: u16,
    pub backend: Backend,
}

/// A running nginx or rginx with its lanes; stopped (TERM, then KILL) on drop.
pub struct Server {
    pub name: &'static str,
    pub lanes: Vec<Lane>,
    pub prefix: PathBuf,
    child: Child,
}

/// The config both servers run: one server block per lane. `client_max_body_size 1k` makes
/// the oversize cases small.
fn config(prefix: &str, lanes: &[Lane]) -> String {
    let mut servers = String::new();
    for l in lanes {
        let b = l.backend.addr.port();
        servers += &format!(
            "    server {{
        listen 127.0.0.1:{};
        server_name localhost;
        client_max_body_size 1k;
        location / {{ proxy_pass http://127.0.0.1:{b}; }}
        location /h {{ proxy_pass http://127.0.0.1:{b}; proxy_set_header X-Host $host; }}
        location /ret {{ return 200 \"ret\\n\"; }}
        location /redir {{ return 302 http://localhost$uri; }}
    }}\n",
            l.port
        );
    }
    format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {prefix}/logs/server.pid;\n\
         error_log {prefix}/logs/error.log info;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n    access_log {prefix}/logs/access.log;\n    \
         proxy_temp_path {prefix}/proxy_temp;\n{servers}}}\n"
    )
}

impl Server {
    /// Starts `bin` with `n` lanes, each answering `return 200` on its port; three tries, as a
    /// port found free may be taken by another process before the server binds it.
    pub fn start(name: &'static str, bin: &str, n: usize) -> Server {
        let mut errors = String::new();
        for _ in 0..3 {
            match Self::try_start(name, bin, n) {
                Ok(s) => return s,
                Err(e) => errors += &e,
            }
        }
        panic!("{name} ({bin}) did not start:\n{errors}");
    }

    fn try_start(name: &'static str, bin: &str, n: usize) -> Result<Server, String> {
        // The backends first: a port they hold is never handed out as a lane's.
        let backends: Vec<Backend> = (0..n).map(|_| Backend::start()).collect();
        let lanes: Vec<Lane> =
            backends.into_iter().map(|backend| Lane { port: crate::common::free_port(), backend }).collect();
        let prefix = crate::common::temp_prefix();
        let p = prefix.display().to_string();
        fs::write(prefix.join("conf/server.conf"), config(&p, &lanes)).expect("write the config");
        let log = fs::File::create(prefix.join("logs/stderr.log")).expect("stderr file");
        let mut cmd = Command::new(bin);
        let (dir, conf, err) = (format!("{p}/"), format!("{p}/conf/server.conf"), format!("{p}/logs/error.log"));
        cmd.args(["-p", &dir, "-c", &conf, "-e", &err]);
        cmd.stdin(Stdio::null()).stdout(log.try_clone().expect("dup")).stderr(log);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run {bin}: {e}"));
        let mut s = Server { name, lanes, prefix, child };
        let end = Instant::now() + Duration::from_secs(10);
        for port in s.lanes.iter().map(|l| l.port).collect::<Vec<_>>() {
            // Its own answer, not just a listener: another process could hold the port.
            while !exchange(port, b"GET /ret HTTP/1.0\r\nHost: localhost\r\n\r\n", Duration::from_secs(2))
                .response
                .ends_with(b"\r\n\r\nret\n")
            {
                let out = s.log("logs/stderr.log") + &s.log("logs/error.log");
                if !s.alive() || Instant::now() > end {
                    return Err(format!("--- port {port}, output and error.log:\n{out}\n"));
                }
                thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(s)
    }

    pub fn log(&self, file: &str) -> String {
        fs::read(self.prefix.join(file)).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
    }

    /// Whether the process still runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Open descriptors of the process.
    pub fn fd_count(&self) -> usize {
        fs::read_dir(format!("/proc/{}/fd", self.child.id())).map_or(0, |d| d.count())
    }

    /// Polls `fd_count` every 100 ms for up to `t`: returns as soon as it equals `want` (any
    /// count when `None`, once it held still for 300 ms); the last count seen.
    pub fn wait_fd_count(&self, want: Option<usize>, t: Duration) -> usize {
        let end = Instant::now() + t;
        let (mut last, mut still) = (self.fd_count(), 0);
        while Instant::now() < end && want != Some(last) && (want.is_some() || still < 3) {
            thread::sleep(Duration::from_millis(100));
            let now = self.fd_count();
            still = if now == last { still + 1 } else { 0 };
            last = now;
        }
        last
    }

    /// Sends `raw` to lane `lane` and records the answer and what the lane's backend got.
    pub fn ask(&self, lane: usize, raw: &[u8], quiet: Duration) -> Answer {
        let l = &self.lanes[lane];
        l.backend.take(); // a late connection of the previous request is not this one's
        let mut a = exchange(l.port, raw, quiet);
        let port = format!("127.0.0.1:{}", l.backend.addr.port());
        a.backend = l.backend.take().into_iter().map(|b| replace(&b, port.as_bytes(), b"127.0.0.1:BACKEND")).collect();
        a
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.alive() {
            let pid = self.child.id().to_string();
            let _ = Command::new("kill").args(["-s", "TERM", &pid]).stderr(Stdio::null()).status();
            let end = Instant::now() + Duration::from_secs(5);
            while self.alive() && Instant::now() < end {
                thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!("{} prefix kept: {}", self.name, self.prefix.display());
        } else {
            let _ = fs::remove_dir_all(&self.prefix);
        }
    }
}

/// Every occurrence of `from` in `hay` replaced by `to`.
pub fn replace(hay: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hay.len());
    let mut i = 0;
    while i < hay.len() {
        if hay[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(hay[i]);
            i += 1;
        }
    }
    out
}

/// Connects, sends `raw` (a failed write is fine: the server may answer and close first), and
/// reads until the server closes or sends nothing for `quiet`. The write side stays open: a
/// half-close would be a request of its own.
fn exchange(port: u16, raw: &[u8], quiet: Duration) -> Answer {
    let mut a = Answer::default();
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        a.refused = true;
        return a;
    };
    let _ = s.set_nodelay(true);
    let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
    let _ = s.write_all(raw);
    let _ = s.set_read_timeout(Some(quiet));
    let end = Instant::now() + EXCHANGE_CAP;
    let mut tmp = [0u8; 16384];
    while Instant::now() < end {
        match s.read(&mut tmp) {
            Ok(0) => {
                a.closed = true;
                break;
            }
            Ok(n) => a.response.extend_from_slice(&tmp[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
            Err(_) => {
                a.closed = true; // a reset: closed, maybe before all was read
                break;
            }
        }
    }
    a
}
