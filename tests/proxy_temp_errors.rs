//! A buffered upstream response whose temp file cannot grow (disk full): the failed write is
//! logged, the client gets exactly a prefix of the body and then a close, never bytes from a
//! wrong offset, and everything is released. (nginx-tests has no .t for this; it is
//! `ngx_event_pipe_write_chain_to_temp_file()` returning NGX_ABORT.)
//!
//! "Disk full" is `RLIMIT_FSIZE` on the running server with SIGXFSZ ignored: writes past the
//! limit fail with EFBIG, as they would with ENOSPC on a full disk.

mod common;

use common::limits::{ignore_sigxfsz, set_limit, Limit};
use common::{proxy_conf, Action, Backend, Conn, Rginx, TIMEOUT};

const MIB: usize = 1024 * 1024;

/// Every byte depends on its offset, so a piece sent from the wrong place cannot pass for the
/// right one.
fn body(len: usize) -> Vec<u8> {
    (0..len as u64).map(|i| (i.wrapping_mul(0x9E37_79B9) >> 11) as u8 ^ (i >> 16) as u8).collect()
}

#[test]
fn temp_file_write_failure_closes_after_an_exact_prefix() {
    ignore_sigxfsz();
    const LEN: usize = 32 * MIB;
    let expected = body(LEN);
    let payload = expected.clone();
    let backend = Backend::scripted(move |_| {
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {LEN}\r\n\r\n");
        vec![Action::ReadRequest, Action::Send(head.into_bytes()), Action::Send(payload.clone())]
    });
    let conf = proxy_conf(
        "location / {
            proxy_pass http://%%BACKEND%%;
            proxy_buffering on;
            proxy_buffer_size 4k;
            proxy_buffers 4 4k;
        }
        location /warm { return 200 ok; }",
    );
    let r = Rginx::start(&conf, &[backend.addr]);
    // The baseline after one request came and went (the access log is open then).
    let mut warm = Conn::new(r.port);
    warm.send(b"GET /warm HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    warm.read_to_close();
    let baseline = r.fd_count();
    // Files may not grow past 256 KiB from now on: the logs stay far below it.
    set_limit(r.pid, Limit::Fsize, 256 * 1024);

    // The client reads nothing until the temp file has hit the limit.
    let mut c = Conn::new(r.port);
    c.send(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(r.wait_log("error.log", "File too large", TIMEOUT), "{}", r.error_log());
    let log = r.error_log();
    let line = log.lines().find(|l| l.contains("File too large")).unwrap();
    assert!(line.contains("/proxy_temp/"), "the log names the temp file: {line}");
    // nginx gathers the chain into one pwritev() (a short write, then "has written only N of
    // M", or EFBIG at once); rginx writes each buffer with pwrite().
    let what = ["pwrite() \"", "pwritev() \""].iter().any(|w| line.contains(w));
    assert!(what, "{line}");
    assert!(line.contains("failed (27: File too large)") || line.contains("has written only"), "{line}");

    // Whatever came before the failure arrives, in order, then the connection closes.
    let got = c.read_to_close();
    let head_end = got.windows(4).position(|w| w == b"\r\n\r\n").expect("a response head") + 4;
    let head = String::from_utf8_lossy(&got[..head_end]);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains(&format!("Content-Length: {LEN}\r\n")), "{head}");
    let sent = &got[head_end..];
    assert!(sent.len() < LEN, "the whole body arrived: the failure went unnoticed");
    if let Some(at) = sent.iter().zip(&expected).position(|(a, b)| a != b) {
        panic!("byte {at} of {} differs from the backend's", sent.len());
    }
    drop(c);
    // Nothing is held: the client socket, the upstream socket and the temp file are closed.
    assert_eq!(r.wait_fd_count(baseline, TIMEOUT), baseline, "{:?}\n{}", open_files(r.pid), r.error_log());
}

/// What the server's descriptors point at, for a failure message.
fn open_files(pid: u32) -> Vec<String> {
    let dir = std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.flatten().collect::<Vec<_>>());
    let links = dir.unwrap_or_default().into_iter().map(|e| std::fs::read_link(e.path()));
    links.map(|l| l.map_or_else(|e| e.to_string(), |p| p.display().to_string())).collect()
}
