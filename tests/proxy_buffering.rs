//! nginx-tests: proxy_buffering.t, proxy_max_temp_file_size.t, proxy_non_buffered.t — large
//! bodies through both forwarding modes, slow clients, memory bounds and temp files.
//!
//! Bodies are tens of MiB and checked by digest. "Slow client" = a client that does not read for
//! a while, then reads in small steps: with buffering off rginx must stop reading the upstream
//! (back-pressure, memory bounded by one buffer); with buffering on it must spill to
//! `proxy_temp_path` and release the upstream as soon as the body is read. Expectations checked
//! with `RGINX_BIN=/usr/sbin/nginx cargo test --test proxy_buffering`.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::{digest, Conn, Rginx};

const MIB: usize = 1024 * 1024;

fn conf(locations: &str) -> String {
    "
%%TEST_GLOBALS%%
events {}
http {
    %%TEST_GLOBALS_HTTP%%
    proxy_temp_path %%PREFIX%%/proxy_temp;
    send_timeout 20s;
    server {
        listen 127.0.0.1:%%PORT%%;
        server_name localhost;
        LOCATIONS
    }
}
"
    .replace("LOCATIONS", locations)
}

/// How the big backend frames the body.
#[derive(Clone, Copy, Debug)]
enum Framing {
    Length,
    Chunked,
    Close,
}

/// A backend for big bodies on a plain std socket, which reports what the generic scripted
/// backend cannot: how much of the body it got out, and when rginx closed the connection.
struct BigBackend {
    addr: SocketAddr,
    /// Body bytes written to the socket so far (last connection).
    sent: Arc<AtomicU64>,
    /// rginx closed the upstream connection (EOF or error on read/write after the body).
    released: Arc<AtomicBool>,
}

impl BigBackend {
    /// Serves every connection: reads a request head, sends the body with `framing`, then
    /// waits for rginx to close. Threads end with the test process (all waits are bounded).
    fn start(body: Arc<Vec<u8>>, framing: Framing) -> BigBackend {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let sent = Arc::new(AtomicU64::new(0));
        let released = Arc::new(AtomicBool::new(false));
        let (s, r) = (sent.clone(), released.clone());
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (body, s, r) = (body.clone(), s.clone(), r.clone());
                s.store(0, Ordering::SeqCst);
                r.store(false, Ordering::SeqCst);
                thread::spawn(move || serve_big(stream, &body, framing, &s, &r));
            }
        });
        BigBackend { addr, sent, released }
    }

    fn sent(&self) -> u64 {
        self.sent.load(Ordering::SeqCst)
    }

    fn wait_released(&self, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if self.released.load(Ordering::SeqCst) {
                return true;
            }
            thread::sleep(Duration::from_millis(10));
        }
        false
    }
}

fn serve_big(mut s: TcpStream, body: &[u8], framing: Framing, sent: &AtomicU64, released: &AtomicBool) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(30)));
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let header = match framing {
        Framing::Length => format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()),
        Framing::Chunked => "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_string(),
        Framing::Close => "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_string(),
    };
    if s.write_all(header.as_bytes()).is_err() {
        released.store(true, Ordering::SeqCst);
        return;
    }
    for piece in body.chunks(61_440) {
        let ok = match framing {
            Framing::Chunked => {
                let size = format!("{:x}\r\n", piece.len());
                s.write_all(size.as_bytes()).and_then(|_| s.write_all(piece)).and_then(|_| s.write_all(b"\r\n"))
            }
            _ => s.write_all(piece),
        };
        if ok.is_err() {
            released.store(true, Ordering::SeqCst);
            return;
        }
        sent.fetch_add(piece.len() as u64, Ordering::SeqCst);
    }
    if let Framing::Chunked = framing {
        let _ = s.write_all(b"0\r\n\r\n");
    }
    if let Framing::Close = framing {
        let _ = s.shutdown(std::net::Shutdown::Write);
    }
    // Wait for rginx to close its side: it has read the whole body and let go.
    let mut sink = [0u8; 4096];
    loop {
        match s.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    released.store(true, Ordering::SeqCst);
}

/// Reads one response head from `s`, returning (head, body bytes already read).
fn read_head(s: &mut TcpStream) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 65536];
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..i + 4]).into_owned();
            return (head, buf[i + 4..].to_vec());
        }
        let n = s.read(&mut tmp).expect("reading the response head");
        assert!(n > 0, "closed before the head: {:?}", String::from_utf8_lossy(&buf));
        buf.extend_from_slice(&tmp[..n]);
    }
}

/// Reads the rest of a body until `len` bytes or EOF, sleeping `pause` after every `step`
/// bytes; calls `sample` between steps (for RSS).
fn read_body(
    s: &mut TcpStream,
    mut got: Vec<u8>,
    len: usize,
    step: usize,
    pause: Duration,
    mut sample: impl FnMut(),
) -> Vec<u8> {
    let mut tmp = vec![0u8; 65536];
    let mut since = 0;
    while got.len() < len {
        let n = match s.read(&mut tmp) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("read after {} bytes: {e}", got.len()),
        };
        got.extend_from_slice(&tmp[..n]);
        since += n;
        if since >= step {
            since = 0;
            sample();
            thread::sleep(pause);
        }
    }
    got
}

/// Entries in the temp dir (0 if it does not exist).
fn temp_files(r: &Rginx) -> usize {
    fs::read_dir(r.prefix.join("proxy_temp")).map_or(0, |d| d.count())
}

/// A request for `path`, HTTP/1.0 (close-delimited if the length is unknown).
fn request(r: &Rginx, path: &str) -> TcpStream {
    let mut s = common::connect(r.port);
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    s
}

/// Warm-up request, then the RSS baseline, once the warm-up connection is gone (the fd
/// count is steady).
fn baseline(r: &Rginx) -> u64 {
    let mut c = Conn::new(r.port);
    c.send(b"GET /warmup HTTP/1.0\r\nHost: localhost\r\n\r\n");
    let _ = c.read_to_close();
    drop(c);
    let mut fds = r.fd_count();
    for _ in 0..50 {
        thread::sleep(Duration::from_millis(100));
        let now = r.fd_count();
        if now == fds {
            break;
        }
        fds = now;
    }
    r.rss_kib()
}

/// Decodes a chunked body; panics (briefly) on bad framing.
fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(i) = raw.windows(2).position(|w| w == b"\r\n") else {
            panic!("chunk size line missing after {} bytes", out.len())
        };
        let line = String::from_utf8_lossy(&raw[..i]).into_owned();
        let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16);
        let size = size.unwrap_or_else(|_| panic!("bad chunk size line {line:?} after {} bytes", out.len()));
        raw = &raw[i + 2..];
        if size == 0 {
            assert!(raw.ends_with(b"\r\n"), "no end of trailers");
            return out;
        }
        assert!(raw.len() >= size + 2, "chunk cut short after {} bytes", out.len());
        out.extend_from_slice(&raw[..size]);
        assert_eq!(&raw[size..size + 2], b"\r\n", "chunk without CRLF after {} bytes", out.len());
        raw = &raw[size + 2..];
    }
}

/// Reads a whole response until the server closes (`Connection: close` requested); returns
/// the head and the decoded body. No body bytes in panic messages: they are megabytes.
fn read_all(s: &mut TcpStream) -> (String, Vec<u8>) {
    let (head, pre) = read_head(s);
    let raw = read_body(s, pre, usize::MAX, usize::MAX, Duration::ZERO, || {});
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") { dechunk(&raw) } else { raw };
    (head, body)
}

fn big_body_through(framing: Framing, locations: &str, path: &str, http11: bool) {
    let body = Arc::new(common::random_body(20 * MIB + 17));
    let b = BigBackend::start(body.clone(), framing);
    let r = Rginx::start(&conf(locations), &[b.addr]);
    let mut s = common::connect(r.port);
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let v = if http11 { "1.1" } else { "1.0" };
    write!(s, "GET {path} HTTP/{v}\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
    let (head, got) = read_all(&mut s);
    let what = format!("{framing:?} {path} HTTP/{v}");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{what}: {head}");
    assert_eq!(got.len(), body.len(), "{what}");
    assert_eq!(digest(&got), digest(&body), "{what}");
    assert!(b.wait_released(Duration::from_secs(10)));
    assert_eq!(temp_files(&r), 0, "temp files left");
    r.assert_no_alerts();
}

const LOCATIONS: &str = "
        location /on/ { proxy_pass http://%%BACKEND%%/; }
        location /off/ { proxy_pass http://%%BACKEND%%/; proxy_buffering off; }
        location /small/ { proxy_pass http://%%BACKEND%%/; proxy_buffers 4 4k; proxy_busy_buffers_size 8k; }
        location /notemp/ { proxy_pass http://%%BACKEND%%/; proxy_buffers 4 4k; proxy_busy_buffers_size 8k; proxy_max_temp_file_size 0; }
        location /warmup { return 200 ok; }";

#[test]
fn big_length_body_buffering_on() {
    big_body_through(Framing::Length, LOCATIONS, "/on/", true);
}

#[test]
fn big_chunked_body_buffering_on() {
    big_body_through(Framing::Chunked, LOCATIONS, "/small/", true);
}

#[test]
fn big_close_body_buffering_off() {
    big_body_through(Framing::Close, LOCATIONS, "/off/", true);
}

#[test]
fn big_chunked_body_buffering_off_to_http10() {
    big_body_through(Framing::Chunked, LOCATIONS, "/off/", false);
}

#[test]
fn slow_client_buffering_off_applies_back_pressure() {
    let len = 64 * MIB;
    let body = Arc::new(common::random_body(len));
    let b = BigBackend::start(body.clone(), Framing::Length);
    let r = Rginx::start(&conf(LOCATIONS), &[b.addr]);
    let base = baseline(&r);
    let mut s = request(&r, "/off/");
    let (head, pre) = read_head(&mut s);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains(&format!("Content-Length: {len}\r\n")), "{head}");
    // The client stalls: socket buffers fill, then rginx must stop reading the upstream.
    thread::sleep(Duration::from_millis(1500));
    let stalled = b.sent();
    let mut peak = r.rss_kib();
    thread::sleep(Duration::from_millis(500));
    assert!(stalled < (len / 2) as u64, "the upstream kept sending: {stalled} bytes");
    assert!(b.sent() - stalled < MIB as u64, "the upstream kept sending while the client stalled");
    assert!(!b.released.load(Ordering::SeqCst));
    let got = read_body(&mut s, pre, len, MIB, Duration::from_millis(2), || peak = peak.max(r.rss_kib()));
    assert_eq!(got.len(), len);
    assert_eq!(digest(&got), digest(&body));
    let grew = peak.saturating_sub(base);
    assert!(grew < 16 * 1024, "RSS grew by {grew} KiB (base {base}, peak {peak})");
    assert!(b.wait_released(Duration::from_secs(10)));
    r.assert_no_alerts();
}

#[test]
fn slow_client_buffering_on_spills_and_releases_upstream() {
    let len = 64 * MIB;
    let body = Arc::new(common::random_body(len));
    let b = BigBackend::start(body.clone(), Framing::Length);
    let r = Rginx::start(&conf(LOCATIONS), &[b.addr]);
    let base = baseline(&r);
    let mut s = request(&r, "/small/");
    let (head, pre) = read_head(&mut s);
    assert!(head.contains(&format!("Content-Length: {len}\r\n")), "{head}");
    // The client stalls; the whole body goes to the temp file and the upstream is let go.
    let released = b.wait_released(Duration::from_secs(20));
    assert!(released, "upstream not released while the client stalls (sent {})", b.sent());
    assert_eq!(b.sent(), len as u64);
    let mut peak = r.rss_kib();
    let got = read_body(&mut s, pre, len, MIB, Duration::from_millis(2), || peak = peak.max(r.rss_kib()));
    assert_eq!(got.len(), len);
    assert_eq!(digest(&got), digest(&body));
    let grew = peak.saturating_sub(base);
    assert!(grew < 16 * 1024, "RSS grew by {grew} KiB (base {base}, peak {peak})");
    assert!(r.wait_log("error.log", "an upstream response is buffered to a temporary file", common::TIMEOUT));
    drop(s);
    thread::sleep(Duration::from_millis(100));
    // The spill went to proxy_temp_path (rginx creates it on first use, nginx at start) and
    // left nothing behind.
    assert!(r.prefix.join("proxy_temp").is_dir());
    assert_eq!(temp_files(&r), 0, "temp files left");
    r.assert_no_alerts();
}

#[test]
fn slow_client_without_temp_file_applies_back_pressure() {
    // proxy_max_temp_file_size 0: buffering on, but only the in-memory buffers; the upstream
    // waits for the client as with buffering off.
    let len = 32 * MIB;
    let body = Arc::new(common::random_body(len));
    let b = BigBackend::start(body.clone(), Framing::Close);
    let r = Rginx::start(&conf(LOCATIONS), &[b.addr]);
    let base = baseline(&r);
    let mut s = request(&r, "/notemp/");
    let (head, pre) = read_head(&mut s);
    assert!(!head.contains("Content-Length"), "{head}");
    thread::sleep(Duration::from_millis(1500));
    let stalled = b.sent();
    assert!(stalled < (len / 2) as u64, "the upstream kept sending: {stalled} bytes");
    assert!(!b.released.load(Ordering::SeqCst));
    let mut peak = r.rss_kib();
    let got = read_body(&mut s, pre, usize::MAX, MIB, Duration::from_millis(2), || peak = peak.max(r.rss_kib()));
    assert_eq!(got.len(), len);
    assert_eq!(digest(&got), digest(&body));
    let grew = peak.saturating_sub(base);
    assert!(grew < 16 * 1024, "RSS grew by {grew} KiB (base {base}, peak {peak})");
    assert!(!r.error_log().contains("buffered to a temporary file"));
    assert_eq!(temp_files(&r), 0);
}

#[test]
fn non_buffered_passes_each_piece_at_once() {
    // Buffering off: what the upstream sends reaches the client without waiting for more.
    let b = common::Backend::scripted(|_| {
        vec![
            common::Action::ReadRequest,
            common::send("HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nfirst"),
            common::Action::Sleep(Duration::from_millis(1500)),
            common::send("-second"),
        ]
    });
    let r = Rginx::start(&conf(LOCATIONS), &[b.addr]);
    let mut c = Conn::new(r.port);
    let start = Instant::now();
    c.send(b"GET /off/ HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let mut got = Vec::new();
    while !String::from_utf8_lossy(&got).ends_with("first") {
        let more = c.read_some(Duration::from_secs(5));
        assert!(!more.is_empty(), "nothing more: {:?}", String::from_utf8_lossy(&got));
        got.extend(more);
    }
    assert!(start.elapsed() < Duration::from_millis(1000), "the first piece waited");
    let rest = c.read_some(Duration::from_secs(5));
    assert_eq!(String::from_utf8_lossy(&rest), "-second");
}

/// The client reads 1 MiB of a 20 MiB response, then closes: the upstream connection must be
/// closed, the temp file dropped and every fd released.
fn client_leaves(path: &str) {
    let len = 20 * MIB;
    let body = Arc::new(common::random_body(len));
    let b = BigBackend::start(body, Framing::Length);
    let r = Rginx::start(&conf(LOCATIONS), &[b.addr]);
    baseline(&r);
    let fds = r.fd_count();
    let mut s = request(&r, path);
    let (_, pre) = read_head(&mut s);
    let got = read_body(&mut s, pre, MIB, MIB, Duration::ZERO, || {});
    assert!(got.len() >= MIB);
    // Let the upstream fill whatever buffers and temp file there are before leaving.
    thread::sleep(Duration::from_millis(300));
    drop(s);
    assert!(b.wait_released(Duration::from_secs(10)), "upstream still connected ({path})");
    let left = r.wait_fd_count(fds, Duration::from_secs(10));
    assert_eq!(left, fds, "fds ({path})");
    assert_eq!(temp_files(&r), 0, "temp files left ({path})");
    r.assert_no_alerts();
}

#[test]
fn client_leaves_mid_response_buffering_off() {
    client_leaves("/off/");
}

#[test]
fn client_leaves_mid_response_buffering_on() {
    client_leaves("/small/");
}
