//! The response body's way from the upstream socket to the client socket: the buffer a body
//! was read into goes down the chain to the client (no copy), buffered reads fill several
//! `proxy_buffers` at once, and the whole waiting chain is offered to one `writev`. These
//! tests check what that must not change: the bytes and their order when many chunks arrive
//! in one read (more body pieces than the per-read list holds), in every forwarding mode, and
//! the reuse of a keep-alive upstream connection after large bodies.
//! Expectations checked with `RGINX_BIN=/usr/sbin/nginx cargo test --test proxy_body_path`.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::{digest, Rginx};

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
        location /on/ { proxy_pass http://%%BACKEND%%/; }
        location /small/ { proxy_pass http://%%BACKEND%%/; proxy_buffers 4 4k; proxy_busy_buffers_size 8k; }
        location /off/ { proxy_pass http://%%BACKEND%%/; proxy_buffering off; }
        location /ka/ {
            proxy_pass http://ka/;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
        }
    }
}
"
    .to_string()
}

/// The body as chunks of 1 to 300 bytes (sizes vary), written in 64 KiB writes: one read of
/// the proxy then holds dozens of chunks.
fn small_chunks(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() * 2);
    let (mut pos, mut i) = (0, 0usize);
    while pos < body.len() {
        let size = (1 + (i * 37) % 300).min(body.len() - pos);
        out.extend_from_slice(format!("{size:x}\r\n").as_bytes());
        out.extend_from_slice(&body[pos..pos + size]);
        out.extend_from_slice(b"\r\n");
        pos += size;
        i += 1;
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// A backend on a std socket that answers every request on a connection with `head` + `raw`
/// (keep-alive), and counts the connections it accepted.
struct Backend {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
}

impl Backend {
    fn start(head: String, raw: Arc<Vec<u8>>) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        thread::spawn(move || {
            for s in listener.incoming() {
                let Ok(s) = s else { return };
                count.fetch_add(1, Ordering::SeqCst);
                let (head, raw) = (head.clone(), raw.clone());
                thread::spawn(move || serve(s, &head, &raw));
            }
        });
        Backend { addr, accepted }
    }
}

fn serve(mut s: TcpStream, head: &str, raw: &[u8]) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(30)));
    loop {
        let mut req = Vec::new();
        let mut byte = [0u8; 1];
        while !req.ends_with(b"\r\n\r\n") {
            match s.read(&mut byte) {
                Ok(1) => req.push(byte[0]),
                _ => return,
            }
        }
        if s.write_all(head.as_bytes()).is_err() {
            return;
        }
        for piece in raw.chunks(65_536) {
            if s.write_all(piece).is_err() {
                return;
            }
        }
    }
}

/// Reads one response of a keep-alive connection: the head, then the body by its framing
/// (`Content-Length` or chunked, decoded). No body bytes in panic messages: they are MiBs.
fn read_response(s: &mut TcpStream) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    let mut tmp = vec![0u8; 65_536];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut tmp).expect("reading the head");
        assert!(n > 0, "closed before the head");
        buf.extend_from_slice(&tmp[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut raw = buf.split_off(head_end);
    let lower = head.to_ascii_lowercase();
    let length = lower
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .map(|v| v.trim().parse::<usize>().expect("a length"));
    let complete = |raw: &[u8]| match length {
        Some(len) => raw.len() >= len,
        None => raw.ends_with(b"\r\n0\r\n\r\n") || raw == b"0\r\n\r\n",
    };
    while !complete(&raw) {
        let n = s.read(&mut tmp).expect("reading the body");
        assert!(n > 0, "closed after {} body bytes", raw.len());
        raw.extend_from_slice(&tmp[..n]);
    }
    let body = if length.is_some() { raw } else { dechunk(&raw) };
    (head, body)
}

/// Decodes a chunked body; panics (briefly) on bad framing.
fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let i = raw.windows(2).position(|w| w == b"\r\n").expect("a chunk size line");
        let size = usize::from_str_radix(&String::from_utf8_lossy(&raw[..i]), 16).expect("a chunk size");
        raw = &raw[i + 2..];
        if size == 0 {
            return out;
        }
        assert!(raw.len() >= size + 2, "chunk cut short after {} bytes", out.len());
        out.extend_from_slice(&raw[..size]);
        assert_eq!(&raw[size..size + 2], b"\r\n", "chunk without CRLF after {} bytes", out.len());
        raw = &raw[size + 2..];
    }
}

#[test]
fn many_small_chunks_per_read_arrive_whole_in_every_mode() {
    let body = common::random_body(2 * 1024 * 1024 + 5);
    let raw = Arc::new(small_chunks(&body));
    let head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_string();
    let b = Backend::start(head, raw);
    let r = Rginx::start(&conf(), &[b.addr]);
    for path in ["/on/", "/small/", "/off/"] {
        let mut s = common::connect(r.port);
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
        let (head, got) = read_response(&mut s);
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{path}: {head}");
        assert!(head.contains("Transfer-Encoding: chunked\r\n"), "{path}: {head}");
        assert_eq!(got.len(), body.len(), "{path}");
        assert_eq!(digest(&got), digest(&body), "{path}");
    }
    r.assert_no_alerts();
}

#[test]
fn keepalive_upstream_is_reused_after_large_bodies() {
    let body = Arc::new(common::random_body(1024 * 1024 + 3));
    let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
    let b = Backend::start(head, body.clone());
    let r = Rginx::start(&conf(), &[b.addr]);
    let mut s = common::connect(r.port);
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    for i in 0..4 {
        write!(s, "GET /ka/{i} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
        let (head, got) = read_response(&mut s);
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "request {i}: {head}");
        assert_eq!(got.len(), body.len(), "request {i}");
        assert_eq!(digest(&got), digest(&body), "request {i}");
    }
    // Every response was read to its exact end, so one upstream connection served them all.
    assert_eq!(b.accepted.load(Ordering::SeqCst), 1);
    r.assert_no_alerts();
}
