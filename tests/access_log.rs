//! nginx-tests: access_log.t — the `combined` format, `log_format` with variables, per-location
//! `access_log` and `off`, and what nginx logs for requests that never got a proper answer.

mod common;

use std::time::Duration;

use common::{Conn, Rginx, TIMEOUT};

const CONF: &str = "
%%TEST_GLOBALS%%
events {}
http {
    log_format vars '$request_method|$uri|$args|$arg_a|$status|$body_bytes_sent|'
                    '$http_x_foo|$host|$server_port|$remote_addr|$request_uri|$scheme|'
                    '$request|$http_user_agent|$http_referer';
    log_format timing '$request_time $status';
    access_log %%PREFIX%%/logs/access.log;
    client_header_timeout 1s;
    server {
        listen 127.0.0.1:%%PORT%%;
        server_name localhost;
        location / { return 200 hello; }
        location /vars { access_log %%PREFIX%%/logs/vars.log vars; return 200 vars; }
        location /both {
            access_log %%PREFIX%%/logs/both.log timing;
            access_log %%PREFIX%%/logs/access.log combined;
            return 201 both;
        }
        location /quiet { access_log off; return 200 quiet; }
        location /close { return 444; }
        location /missing { return 404; }
    }
}
";

fn log_file(r: &Rginx, name: &str) -> String {
    std::fs::read_to_string(r.prefix.join("logs").join(name)).unwrap_or_default()
}

/// Waits until `name` has a line containing `needle`, and returns that line.
fn line_with(r: &Rginx, name: &str, needle: &str) -> String {
    assert!(r.wait_log(name, needle, TIMEOUT), "no {needle:?} in {name}:\n{}", log_file(r, name));
    let log = log_file(r, name);
    log.lines().find(|l| l.contains(needle)).unwrap_or_default().to_string()
}

/// Checks `[22/Nov/2026:01:02:03 +0000]`: nginx's `$time_local`.
fn is_time_local(t: &str) -> bool {
    let b = t.as_bytes();
    let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    b.len() == 26
        && digits(0..2)
        && b[2] == b'/'
        && months.contains(&&t[3..6])
        && b[6] == b'/'
        && digits(7..11)
        && b[11] == b':'
        && digits(12..14)
        && digits(15..17)
        && digits(18..20)
        && (b[21] == b'+' || b[21] == b'-')
        && digits(22..26)
}

#[test]
fn combined_format() {
    let r = Rginx::start(CONF, &[]);
    let mut c = Conn::new(r.port);
    c.send(
        b"GET /x?a=1 HTTP/1.1\r\nHost: h\r\nUser-Agent: agent/1.0\r\n\
          Referer: http://ref/\r\n\r\n",
    );
    assert_eq!(c.read_response(false).body_str(), "hello");
    c.send(b"HEAD /y HTTP/1.1\r\nHost: h\r\n\r\n");
    c.read_response(true);
    c.send(b"GET /missing HTTP/1.1\r\nHost: h\r\n\r\n");
    let page = c.read_response(false).body.len();

    let line = line_with(&r, "access.log", "GET /x?a=1");
    let (start, rest) = line.split_once('[').unwrap();
    let (time, rest) = rest.split_once(']').unwrap();
    assert_eq!(start, "127.0.0.1 - - ");
    assert!(is_time_local(time), "{time}");
    assert_eq!(rest, " \"GET /x?a=1 HTTP/1.1\" 200 5 \"http://ref/\" \"agent/1.0\"");
    // HEAD: no body bytes sent.
    let line = line_with(&r, "access.log", "HEAD /y");
    assert!(line.ends_with("\"HEAD /y HTTP/1.1\" 200 0 \"-\" \"-\""), "{line}");
    let line = line_with(&r, "access.log", "GET /missing");
    assert!(line.ends_with(&format!("\" 404 {page} \"-\" \"-\"")), "{line}");
}

#[test]
fn log_format_variables() {
    let r = Rginx::start(CONF, &[]);
    let mut c = Conn::new(r.port);
    c.send(
        b"GET /vars/p%20q?a=1&b=2 HTTP/1.1\r\nHost: Example.COM:8080\r\nX-Foo: bar\r\n\
          User-Agent: ua\r\n\r\n",
    );
    assert_eq!(c.read_response(false).body_str(), "vars");
    let line = line_with(&r, "vars.log", "GET|");
    let want = format!(
        "GET|/vars/p q|a=1&b=2|1|200|4|bar|example.com|{}|127.0.0.1|/vars/p%20q?a=1&b=2|http|\
         GET /vars/p%20q?a=1&b=2 HTTP/1.1|ua|-",
        r.port
    );
    assert_eq!(line, want);
    // Not in the http-level log: a location's access_log replaces it.
    assert!(!r.access_log().contains("/vars"));
}

#[test]
fn several_logs_and_off() {
    let r = Rginx::start(CONF, &[]);
    let mut c = Conn::new(r.port);
    c.send(b"GET /both HTTP/1.1\r\nHost: h\r\n\r\nGET /quiet HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(c.read_response(false).status, 201);
    assert_eq!(c.read_response(false).body_str(), "quiet");
    c.send(b"GET /last HTTP/1.1\r\nHost: h\r\n\r\n");
    c.read_response(false);
    line_with(&r, "access.log", "GET /last");
    let both = line_with(&r, "both.log", " 201");
    let (time, status) = both.split_once(' ').unwrap();
    assert_eq!(status, "201");
    // $request_time: seconds with milliseconds.
    assert!(time.len() >= 5 && time.as_bytes()[time.len() - 4] == b'.', "{time}");
    assert!(time.parse::<f64>().is_ok_and(|t| t < 5.0), "{time}");
    let access = r.access_log();
    assert!(access.contains("\"GET /both HTTP/1.1\" 201 4"), "{access}");
    assert!(!access.contains("/quiet"), "{access}");
}

/// `$http_NAME` as nginx finds it (a '-' in the header's name reads as '_', an '_' is an
/// '_'), the escaping of `"`, `\\` and control bytes, and the numbers the log writes itself.
#[test]
fn header_variables_and_escaping() {
    let conf = "
%%TEST_GLOBALS%%
events {}
http {
    log_format h '$http_x_under|$http_x_dash|$http_x_esc|$status|$request_length|$remote_addr';
    underscores_in_headers on;
    server {
        listen 127.0.0.1:%%PORT%%;
        location / { access_log %%PREFIX%%/logs/h.log h; return 404; }
    }
}
";
    let r = Rginx::start(conf, &[]);
    let mut c = Conn::new(r.port);
    let req = b"GET /h HTTP/1.1\r\nHost: h\r\nX_Under: u\r\nX-Dash: d\r\nX-Esc: a\"b\\c\x01\xe9\r\n\r\n";
    c.send(req);
    assert_eq!(c.read_response(false).status, 404);
    let line = line_with(&r, "h.log", "|404|");
    assert_eq!(line, format!("u|d|a\\x22b\\x5Cc\\x01\\xE9|404|{}|127.0.0.1", req.len()));
}

/// What nginx logs for requests that were refused, closed or timed out.
#[test]
fn odd_requests_are_logged() {
    let r = Rginx::start(CONF, &[]);
    let t = |raw: &[u8]| {
        let mut c = Conn::new(r.port);
        let _ = std::io::Write::write_all(&mut c.stream, raw);
        c.read_to_close()
    };
    let bad = t(b"BAD\r\n\r\n");
    let bad_len = common::parse_response(&bad).body.len();
    t(b"GET /nohost HTTP/1.1\r\n\r\n");
    t(b"GET /v HTTP/2.0\r\nHost: x\r\n\r\n");
    t(b"GET /close HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut c = Conn::new(r.port);
    c.send(b"GET /partial HTTP/1.1\r\n");
    assert!(c.is_closed(Duration::from_secs(5)));

    let line = line_with(&r, "access.log", "\"BAD\"");
    assert!(line.ends_with(&format!("\"BAD\" 400 {bad_len} \"-\" \"-\"")), "{line}");
    let line = line_with(&r, "access.log", "/nohost");
    assert!(line.contains("\"GET /nohost HTTP/1.1\" 400 "), "{line}");
    let line = line_with(&r, "access.log", "HTTP/2.0");
    assert!(line.contains("\"GET /v HTTP/2.0\" 505 "), "{line}");
    let line = line_with(&r, "access.log", "/close");
    assert!(line.contains("\"GET /close HTTP/1.1\" 444 0 "), "{line}");
    let line = line_with(&r, "access.log", "/partial");
    assert!(line.contains("\"GET /partial HTTP/1.1\" 408 0 "), "{line}");
}
