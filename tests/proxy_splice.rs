//! A proxied body moved upstream socket -> kernel pipe -> client socket with `splice(2)`
//! (src/upstream/body_splice.rs): which responses take that way, that their bytes, framing,
//! access-log line and keep-alive are those of a body that went through memory, and that every
//! end (upstream close or reset, client close) gives nginx's answer and releases the pipe.
//!
//! The pipe is seen from outside: while a spliced body is in flight rginx holds two more
//! descriptors that `/proc/PID/fd` names `pipe:[N]`. nginx never splices, so those asserts are
//! rginx's only (`common::is_nginx()`); the rest is nginx's behaviour, checked with
//! `RGINX_BIN=/usr/sbin/nginx cargo test --test proxy_splice`.
//!
//! "In flight" is made by a gate, not by timing: the backend sends the head and a part of the
//! body, then waits until the test opens the gate (or 10 s pass).

mod common;

use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{assert_log, digest, random_body, Rginx, TIMEOUT};

const MIB: usize = 1024 * 1024;

fn conf() -> String {
    "
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    proxy_temp_path %%PREFIX%%/proxy_temp;
    upstream ka {
        server %%BACKEND%%;
        keepalive 4;
    }
    server {
        listen 127.0.0.1:%%PORT%%;
        server_name localhost;
        location /ka/ {
            proxy_pass http://ka/;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
        }
        location /ka-off/ {
            proxy_pass http://ka/;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_buffering off;
        }
        location /on/ { proxy_pass http://%%BACKEND%%/; }
        location /off/ { proxy_pass http://%%BACKEND%%/; proxy_buffering off; }
        location /add/ { add_after_body /after; proxy_pass http://%%BACKEND%%/; }
        location = /after { return 200 \"AFTER\"; }
        location /addb/ { add_before_body /before; proxy_pass http://%%BACKEND%%/; }
        location = /before { return 200 \"BEFORE\"; }
    }
}
"
    .to_string()
}

// --- the pipe, seen from /proc ------------------------------------------------------------------

/// Descriptors of the server that are pipes (`/proc/PID/fd/N -> pipe:[INODE]`).
fn pipes(r: &Rginx) -> usize {
    let Ok(dir) = fs::read_dir(format!("/proc/{}/fd", r.pid)) else { return 0 };
    let is_pipe = |e: &fs::DirEntry| fs::read_link(e.path()).is_ok_and(|l| l.to_string_lossy().starts_with("pipe:"));
    dir.filter_map(Result::ok).filter(is_pipe).count()
}

/// Polls until the server holds `want` pipe descriptors, up to `TIMEOUT`; the last count seen.
fn wait_pipes(r: &Rginx, want: usize) -> usize {
    let end = Instant::now() + TIMEOUT;
    loop {
        let n = pipes(r);
        if n == want || Instant::now() >= end {
            return n;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// rginx only: a spliced body is in flight, so two pipe descriptors more than `base`.
fn assert_spliced(r: &Rginx, base: usize, what: &str) {
    if !common::is_nginx() {
        assert_eq!(wait_pipes(r, base + 2), base + 2, "{what}: no pipe while the body is in flight");
    }
}

/// No pipe held for this response (checked while it is in flight: after its first body bytes
/// reached the client, before the gate lets the rest come).
fn assert_not_spliced(r: &Rginx, base: usize, what: &str) {
    assert_eq!(pipes(r), base, "{what}: a pipe for a body that must go through memory");
}

// --- a backend that holds the rest of a body until the test says so ----------------------------

/// One step of a [`Gated`] backend's script.
#[derive(Clone)]
enum Step {
    /// Read one request head (the proxy sends GETs without a body).
    Read,
    Send(Vec<u8>),
    /// Wait until the gate was opened `n` times (at most `TIMEOUT`).
    Wait(usize),
    /// FIN, then drain until the server closes.
    Close,
    /// RST (SO_LINGER 0, close).
    Reset,
}

/// A scripted upstream whose `Step::Wait` is released by [`Gated::open`]: a response stays in
/// flight exactly as long as the test needs, whatever the speed of the machine.
struct Gated {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    gate: Arc<(Mutex<usize>, Condvar)>,
    stop: Arc<AtomicBool>,
}

impl Gated {
    fn start(script: impl Fn(usize) -> Vec<Step> + Send + Sync + 'static) -> Gated {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new((Mutex::new(0), Condvar::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (acc, g, st, script) = (accepted.clone(), gate.clone(), stop.clone(), Arc::new(script));
        thread::spawn(move || {
            for s in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(s) = s else { continue };
                let steps = script(acc.fetch_add(1, Ordering::SeqCst));
                let g = g.clone();
                thread::spawn(move || run(s, steps, &g));
            }
        });
        Gated { addr, accepted, gate, stop }
    }

    /// Lets the next `Step::Wait` go.
    fn open(&self) {
        let (m, cv) = &*self.gate;
        *m.lock().unwrap() += 1;
        cv.notify_all();
    }

    fn connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Gated {
    fn drop(&mut self) {
        let (m, cv) = &*self.gate;
        *m.lock().unwrap() = usize::MAX;
        cv.notify_all();
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

fn run(mut s: TcpStream, steps: Vec<Step>, gate: &(Mutex<usize>, Condvar)) {
    let _ = s.set_nodelay(true);
    let _ = s.set_read_timeout(Some(TIMEOUT));
    let _ = s.set_write_timeout(Some(TIMEOUT));
    for step in steps {
        let go_on = match step {
            Step::Read => read_head(&mut s),
            Step::Send(b) => s.write_all(&b).is_ok(),
            Step::Wait(n) => {
                let (m, cv) = gate;
                let opened = cv.wait_timeout_while(m.lock().unwrap(), TIMEOUT, |o| *o < n);
                drop(opened);
                true
            }
            Step::Close => false,
            Step::Reset => return common::set_linger_zero(&s),
        };
        if !go_on {
            break;
        }
    }
    // FIN first, then drain: unread bytes would turn the close into a reset.
    let _ = s.shutdown(Shutdown::Write);
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let mut b = [0u8; 4096];
    while matches!(s.read(&mut b), Ok(n) if n > 0) {}
}

/// Reads one request head byte by byte (so nothing of a next request is taken); false on EOF.
fn read_head(s: &mut TcpStream) -> bool {
    let (mut head, mut b) = (Vec::new(), [0u8; 1]);
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(1) => head.push(b[0]),
            _ => return false,
        }
    }
    true
}

/// `HTTP/1.1 200 OK` with `Content-Length: len` and the first `first` bytes of `body`, in one
/// write.
fn head_and(len: usize, extra: &str, part: &[u8]) -> Vec<u8> {
    let mut v = format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n{extra}\r\n").into_bytes();
    v.extend_from_slice(part);
    v
}

// --- a client that reads a response step by step -----------------------------------------------

struct Client {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    fn new(r: &Rginx) -> Client {
        Client { s: common::connect(r.port), buf: Vec::new() }
    }

    fn send(&mut self, req: &str) {
        self.s.write_all(req.as_bytes()).expect("send the request");
    }

    /// One read into `buf`; 0 on EOF or reset. Panics on timeout.
    fn fill(&mut self) -> usize {
        let mut tmp = vec![0u8; 65536];
        match self.s.read(&mut tmp) {
            Ok(n) => {
                self.buf.extend_from_slice(&tmp[..n]);
                n
            }
            Err(e) if e.kind() == ErrorKind::ConnectionReset => 0,
            Err(e) => panic!("client read: {e} after {} unconsumed bytes", self.buf.len()),
        }
    }

    /// The response head, through its blank line.
    fn head(&mut self) -> String {
        loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head: Vec<u8> = self.buf.drain(..i + 4).collect();
                return String::from_utf8_lossy(&head).into_owned();
            }
            assert!(self.fill() > 0, "closed before the end of the head");
        }
    }

    /// Waits until at least `n` body bytes are buffered (not consumed).
    fn wait_bytes(&mut self, n: usize) {
        while self.buf.len() < n {
            assert!(self.fill() > 0, "closed after {} of {n} bytes", self.buf.len());
        }
    }

    /// Exactly `n` bytes.
    fn take(&mut self, n: usize) -> Vec<u8> {
        self.wait_bytes(n);
        self.buf.drain(..n).collect()
    }

    /// Everything until the server closes.
    fn rest(&mut self) -> Vec<u8> {
        while self.fill() > 0 {}
        std::mem::take(&mut self.buf)
    }
}

fn get11(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n")
}

fn get10(path: &str) -> String {
    format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n")
}

/// The server's descriptors and pipes when idle.
fn baselines(r: &Rginx) -> (usize, usize) {
    let fds = r.fd_baseline();
    (fds, pipes(r))
}

// --- spliced: bytes, keep-alive, access log -----------------------------------------------------

/// A 4 MiB body held mid-way is spliced in both forwarding modes, arrives byte-exact over one
/// client connection, and the upstream connection is kept and reused for the second response;
/// the access log counts the body bytes; then no pipe and no descriptor is left.
#[test]
fn spliced_body_keepalive_both_modes() {
    let len = 4 * MIB;
    let body = Arc::new(random_body(len));
    let b2 = body.clone();
    let b = Gated::start(move |i| {
        let one = |n| {
            vec![Step::Read, Step::Send(head_and(len, "", &b2[..MIB])), Step::Wait(n), Step::Send(b2[MIB..].to_vec())]
        };
        match i {
            0 => [one(1), one(2)].concat(),
            _ => one(2),
        }
    });
    let r = Rginx::start(&conf(), &[b.addr]);
    let (fds, base) = baselines(&r);
    let mut c = Client::new(&r);
    for (n, path) in ["/ka/1", "/ka-off/2"].iter().enumerate() {
        c.send(&get11(path));
        let head = c.head();
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{path}: {head}");
        assert!(head.contains(&format!("Content-Length: {len}\r\n")), "{path}: {head}");
        assert_spliced(&r, base, path);
        b.open();
        let got = c.take(len);
        assert!(digest(&got) == digest(&body), "{path}: the body differs");
        assert_eq!(b.connections(), 1, "{path}: the upstream connection was not reused ({n})");
    }
    assert_eq!(wait_pipes(&r, base), base, "the pipe outlived its response");
    for path in ["/ka/1", "/ka-off/2"] {
        let line = format!("\"GET {path} HTTP/1.1\" 200 {len} ");
        assert!(r.wait_log("access.log", &line, TIMEOUT), "no {line:?} in:\n{}", r.access_log());
    }
    drop(c);
    r.assert_fds_back(fds);
    r.assert_no_alerts();
}

/// The threshold counts what is left after the bytes that came with the header: 40000 bytes
/// with 3000 in the header's read leave 37000 (spliced), 34000 with 3000 leave 31000 (not, under
/// 32 KiB), though both lengths are over 32 KiB.
#[test]
fn splice_threshold_counts_after_header_bytes() {
    for (len, spliced) in [(40_000usize, true), (34_000, false)] {
        let body = Arc::new(random_body(len));
        let b2 = body.clone();
        let b = Gated::start(move |_| {
            vec![Step::Read, Step::Send(head_and(len, "", &b2[..3000])), Step::Wait(1), Step::Send(b2[3000..].to_vec())]
        });
        let r = Rginx::start(&conf(), &[b.addr]);
        let (fds, base) = baselines(&r);
        let mut c = Client::new(&r);
        c.send(&get11("/off/t"));
        assert!(c.head().starts_with("HTTP/1.1 200 OK\r\n"));
        c.wait_bytes(3000);
        let what = format!("{len} bytes");
        if spliced {
            assert_spliced(&r, base, &what);
        } else {
            assert_not_spliced(&r, base, &what);
        }
        b.open();
        assert!(digest(&c.take(len)) == digest(&body), "{what}: the body differs");
        drop(c);
        r.assert_fds_back(fds);
        assert_eq!(pipes(&r), base);
    }
}

// --- not spliced --------------------------------------------------------------------------------

/// Sends `first`, waits for the gate, sends `rest`, then closes; for one connection.
fn two_parts(first: Vec<u8>, rest: Vec<u8>) -> Gated {
    Gated::start(move |_| {
        vec![Step::Read, Step::Send(first.clone()), Step::Wait(1), Step::Send(rest.clone()), Step::Close]
    })
}

/// A chunked upstream body (the module's input filter is not a plain copy) goes through
/// memory, to an HTTP/1.1 client (re-chunked) and to an HTTP/1.0 one (until close).
#[test]
fn chunked_upstream_not_spliced() {
    let body = random_body(200_000);
    let chunk = |b: &[u8]| [format!("{:x}\r\n", b.len()).into_bytes(), b.to_vec(), b"\r\n".to_vec()].concat();
    for http11 in [true, false] {
        let mut first = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        first.extend(chunk(&body[..100_000]));
        let rest = [chunk(&body[100_000..]), b"0\r\n\r\n".to_vec()].concat();
        let b = two_parts(first, rest);
        let r = Rginx::start(&conf(), &[b.addr]);
        let (fds, base) = baselines(&r);
        let mut c = Client::new(&r);
        c.send(&if http11 { get11("/on/c") } else { get10("/on/c") });
        let head = c.head();
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        c.wait_bytes(1);
        assert_not_spliced(&r, base, "chunked");
        b.open();
        let got = if http11 {
            assert!(head.contains("Transfer-Encoding: chunked\r\n"), "{head}");
            common::parse_response(&[head.as_bytes(), &c.rest_of_chunked()].concat()).body
        } else {
            c.rest()
        };
        assert!(got.len() == body.len() && digest(&got) == digest(&body), "chunked: {} bytes", got.len());
        drop(c);
        r.assert_fds_back(fds);
        assert_eq!(pipes(&r), base);
    }
}

impl Client {
    /// The raw bytes of a chunked body through its last chunk (as long as the server keeps
    /// the connection open after it).
    fn rest_of_chunked(&mut self) -> Vec<u8> {
        while !self.buf.ends_with(b"\r\n0\r\n\r\n") {
            assert!(self.fill() > 0, "closed inside a chunked body");
        }
        std::mem::take(&mut self.buf)
    }
}

/// A Content-Length body whose remainder after the header's read is under 32 KiB goes through
/// memory (head + 1000 bytes, then 20000).
#[test]
fn short_body_not_spliced() {
    let body = random_body(21_000);
    let b = two_parts(head_and(21_000, "", &body[..1000]), body[1000..].to_vec());
    let r = Rginx::start(&conf(), &[b.addr]);
    let (fds, base) = baselines(&r);
    let mut c = Client::new(&r);
    c.send(&get11("/off/s"));
    assert!(c.head().contains("Content-Length: 21000\r\n"));
    c.wait_bytes(1000);
    assert_not_spliced(&r, base, "21000 bytes");
    b.open();
    assert!(digest(&c.take(21_000)) == digest(&body), "the body differs");
    drop(c);
    r.assert_fds_back(fds);
    assert_eq!(pipes(&r), base);
}

/// A body without Content-Length (delimited by the upstream's close) goes through memory, and
/// reaches an HTTP/1.0 client whole, ended by close.
#[test]
fn close_delimited_not_spliced() {
    let body = random_body(200_000);
    let mut first = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n".to_vec();
    first.extend_from_slice(&body[..100_000]);
    let b = two_parts(first, body[100_000..].to_vec());
    let r = Rginx::start(&conf(), &[b.addr]);
    let (fds, base) = baselines(&r);
    let mut c = Client::new(&r);
    c.send(&get10("/on/e"));
    let head = c.head();
    assert!(!head.contains("Content-Length"), "{head}");
    c.wait_bytes(1);
    assert_not_spliced(&r, base, "close-delimited");
    b.open();
    let got = c.rest();
    assert!(got.len() == body.len() && digest(&got) == digest(&body), "{} bytes", got.len());
    r.assert_fds_back(fds);
    assert_eq!(pipes(&r), base);
}

// --- a filter after the spliced body ------------------------------------------------------------

/// `add_after_body` on a spliced text/html body to an HTTP/1.0 client (no chunked framing):
/// the whole body, then the added part, then close.
#[test]
fn add_after_body_follows_spliced_body() {
    let body = random_body(102_400);
    let first = head_and(102_400, "Content-Type: text/html\r\n", &body[..50_000]);
    let b = two_parts(first, body[50_000..].to_vec());
    let r = Rginx::start(&conf(), &[b.addr]);
    let (fds, base) = baselines(&r);
    let mut c = Client::new(&r);
    c.send(&get10("/add/x"));
    let head = c.head();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(!head.contains("Content-Length"), "{head}");
    assert_spliced(&r, base, "add_after_body");
    b.open();
    let got = c.rest();
    let want = [body.as_slice(), b"AFTER"].concat();
    assert_eq!(got.len(), want.len(), "body + AFTER");
    assert!(
        digest(&got) == digest(&want),
        "the bytes differ; tail {:?}",
        String::from_utf8_lossy(&got[got.len().saturating_sub(5)..])
    );
    r.assert_fds_back(fds);
    assert_eq!(pipes(&r), base);
    r.assert_no_alerts();
}

/// `add_before_body` starts its subrequest at the first body buffer, so the body must pass the
/// filters: not spliced, and the added part comes first. The head comes alone, so that the
/// first body buffer would be the spliced one (spliced, the body would come before the part).
#[test]
fn add_before_body_is_not_spliced_and_comes_first() {
    let body = random_body(102_400);
    let first = head_and(102_400, "Content-Type: text/html\r\n", &[]);
    let b = two_parts(first, body.clone());
    let r = Rginx::start(&conf(), &[b.addr]);
    let (fds, base) = baselines(&r);
    let mut c = Client::new(&r);
    c.send(&get10("/addb/x"));
    let head = c.head();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(!head.contains("Content-Length"), "{head}");
    assert_not_spliced(&r, base, "add_before_body");
    b.open();
    let got = c.rest();
    let want = [b"BEFORE".as_slice(), body.as_slice()].concat();
    assert_eq!(got.len(), want.len(), "BEFORE + body");
    assert!(
        digest(&got) == digest(&want),
        "the bytes differ; head {:?}",
        String::from_utf8_lossy(&got[..got.len().min(8)])
    );
    r.assert_fds_back(fds);
    assert_eq!(pipes(&r), base);
    r.assert_no_alerts();
}

/// At most `worker_connections / 4` pipes per worker (haproxy's default `maxpipes`): with 8,
/// two of three long bodies in flight are spliced and the third goes through memory; all three
/// arrive whole, and nothing is left open.
#[test]
fn pipes_per_worker_are_capped() {
    let body = random_body(300_000);
    let first = head_and(300_000, "", &body[..10_000]);
    let b = two_parts(first, body[10_000..].to_vec());
    let conf = conf().replace("events {}", "events { worker_connections 8; }");
    let r = Rginx::start(&conf, &[b.addr]);
    let (fds, base) = baselines(&r);
    let mut clients: Vec<Client> = (0..3).map(|_| Client::new(&r)).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        c.send(&get11(&format!("/off/{i}")));
        let head = c.head();
        assert!(head.contains("Content-Length: 300000\r\n"), "{i}: {head}");
    }
    // Every response's head is out, so each one's pipe was opened or refused already.
    if !common::is_nginx() {
        assert_eq!(pipes(&r), base + 4, "two pipes (four descriptors), not three");
    }
    b.open();
    for (i, c) in clients.iter_mut().enumerate() {
        assert!(digest(&c.take(300_000)) == digest(&body), "{i}: the body differs");
    }
    drop(clients);
    r.assert_fds_back(fds);
    assert_eq!(pipes(&r), base);
    r.assert_no_alerts();
}

// --- more than Content-Length -------------------------------------------------------------------

/// An upstream that writes 5 bytes past its Content-Length with the body: the client gets the
/// announced bytes only, the warning is logged, and the upstream connection is not kept (the
/// second request opens another).
#[test]
fn more_than_content_length_not_kept() {
    let body = Arc::new(random_body(100_000));
    let b2 = body.clone();
    let second = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond".to_vec();
    let b = Gated::start(move |i| {
        let ok = vec![Step::Read, Step::Send(second.clone())];
        match i {
            0 => [vec![Step::Read, Step::Send([head_and(100_000, "", &b2), b"EXTRA".to_vec()].concat())], ok].concat(),
            _ => ok,
        }
    });
    let r = Rginx::start(&conf(), &[b.addr]);
    let fds = r.fd_baseline();
    let mut c = Client::new(&r);
    c.send(&get11("/ka/1"));
    assert!(c.head().contains("Content-Length: 100000\r\n"));
    assert!(digest(&c.take(100_000)) == digest(&body), "the body differs");
    c.send(&get11("/ka/2"));
    let head = c.head();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "second: {head}");
    assert_eq!(c.take(6), b"second", "second response");
    assert_eq!(b.connections(), 2, "the upstream connection was kept after extra bytes");
    drop(c);
    r.assert_fds_back(fds);
    // nginx 1.22: "*2 upstream sent more data than specified in "Content-Length" header while
    // reading upstream, client: 127.0.0.1, server: localhost, request: "GET /ka/1 HTTP/1.1", ..."
    let warn = "upstream sent more data than specified in \"Content-Length\" header while reading upstream";
    assert_log(&r, &["[warn]", warn, "request: \"GET /ka/1 HTTP/1.1\""]);
}

// --- ends while spliced -------------------------------------------------------------------------

const CUT_LEN: usize = 204_800;
const CUT_SENT: usize = 100_000;

/// A 204800-byte body of which 100000 bytes are sent, then the gate, then `end`.
fn cut_backend(end: Step) -> (Gated, Vec<u8>) {
    let body = random_body(CUT_SENT);
    let b2 = body.clone();
    let b =
        Gated::start(move |i| vec![Step::Read, Step::Send(head_and(CUT_LEN, "", &b2)), Step::Wait(i + 1), end.clone()]);
    (b, body)
}

/// The upstream ends (`end`) after half the body, while the body is spliced: the client gets
/// the head and a prefix of the body, then a close; no descriptor or pipe is left; error.log
/// has `logs[i]` for `PATHS[i]`. For `proxy_buffering on` and `off`.
fn upstream_ends_mid_body(end: Step, logs: [&str; 2]) {
    let (b, body) = cut_backend(end);
    let r = Rginx::start(&conf(), &[b.addr]);
    let (fds, base) = baselines(&r);
    for path in PATHS {
        let mut c = Client::new(&r);
        c.send(&get11(path));
        let head = c.head();
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{path}: {head}");
        assert!(head.contains(&format!("Content-Length: {CUT_LEN}\r\n")), "{path}: {head}");
        c.wait_bytes(CUT_SENT / 2);
        assert_spliced(&r, base, path);
        b.open();
        let got = c.rest();
        assert!(got.len() >= CUT_SENT / 2 && got.len() <= CUT_SENT, "{path}: {} body bytes", got.len());
        assert!(got[..] == body[..got.len()], "{path}: the bytes before the cut differ");
        r.assert_fds_back(fds);
        assert_eq!(pipes(&r), base, "{path}: a pipe left");
    }
    for (path, log) in PATHS.iter().zip(logs) {
        assert_log(&r, &["[error]", log, &format!("request: \"GET {path} HTTP/1.1\"")]);
    }
    r.assert_no_alerts();
}

const PATHS: [&str; 2] = ["/on/cut", "/off/cut"];

#[test]
fn upstream_close_mid_spliced_body() {
    let log = "upstream prematurely closed connection while reading upstream";
    upstream_ends_mid_body(Step::Close, [log, log]);
}

/// nginx reads a buffered body with `readv` and an unbuffered one with `recv`, and names the
/// call that failed.
#[test]
fn upstream_reset_mid_spliced_body() {
    let logs = [
        "readv() failed (104: Connection reset by peer) while reading upstream",
        "recv() failed (104: Connection reset by peer) while reading upstream",
    ];
    upstream_ends_mid_body(Step::Reset, logs);
}

/// The client closes after part of a spliced body: the upstream connection is closed too, the
/// close is logged as nginx does, and no descriptor or pipe is left. Both forwarding modes.
#[test]
fn client_close_mid_spliced_body() {
    let (b, _) = cut_backend(Step::Send(vec![b'x'; CUT_LEN - CUT_SENT]));
    let r = Rginx::start(&conf(), &[b.addr]);
    let (fds, base) = baselines(&r);
    for path in PATHS {
        let mut c = Client::new(&r);
        c.send(&get11(path));
        assert!(c.head().starts_with("HTTP/1.1 200 OK\r\n"), "{path}");
        c.wait_bytes(CUT_SENT / 2);
        assert_spliced(&r, base, path);
        drop(c);
        r.assert_fds_back(fds);
        assert_eq!(pipes(&r), base, "{path}: a pipe left");
        b.open();
    }
    // nginx 1.22, in both modes: "[info] *2 epoll_wait() reported that client prematurely closed
    // connection, so upstream connection is closed too (104: Connection reset by peer) while
    // reading upstream, client: ..., request: "GET /on/cut HTTP/1.1", ..." (or "while sending
    // to client": the client's last action), or "writev() failed (32: Broken pipe) while sending
    // to client" (or 104, or "while reading upstream") when it still had bytes to write.
    for path in PATHS {
        let request = format!("request: \"GET {path} HTTP/1.1\"");
        let noticed = "client prematurely closed connection, so upstream connection is closed too";
        let to_client = "while sending to client";
        let action = |l: &str| l.contains("while reading upstream") || l.contains(to_client);
        let read_side = |l: &str| l.contains(noticed) && action(l);
        let write_side = |l: &str| l.contains("writev() failed") && action(l);
        let found = || {
            r.error_log()
                .lines()
                .any(|l| l.contains("[info]") && l.contains(&request) && (read_side(l) || write_side(l)))
        };
        let end = Instant::now() + TIMEOUT;
        while !found() {
            assert!(Instant::now() < end, "{path}: no [info] line for the client's close:\n{}", r.error_log());
            thread::sleep(Duration::from_millis(20));
        }
    }
    r.assert_no_alerts();
}
