//! nginx-tests: http_location.t, http_server_name.t, http_listen.t (default_server) — which
//! location and which virtual server answer a request.

mod common;

use common::{Conn, Rginx};

const CONF: &str = "
%%TEST_GLOBALS%%
events {}
http {
    server {
        listen 127.0.0.1:%%PORT%%;
        server_name first.example;

        location = / { return 200 \"exact /\"; }
        location / { return 200 \"prefix /\"; }
        location /a { return 200 \"prefix /a\"; }
        location /a/b { return 200 \"prefix /a/b\"; }
        location = /a/b/c { return 200 \"exact /a/b/c\"; }
        location ^~ /img { return 200 \"priority /img\"; }
        location ^~ /img/big { return 200 \"priority /img/big\"; }
        location /outer {
            location /outer/inner { return 200 \"nested /outer/inner\"; }
            location = /outer/exact { return 200 \"nested exact\"; }
            return 200 \"outer\";
        }
        location /limits {
            client_max_body_size 5;
            location /limits/inherit { return 200 \"inherited\"; }
        }
    }
}
";

fn body(port: u16, host: &str, path: &str) -> String {
    let mut c = Conn::new(port);
    c.send(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes());
    c.read_response(false).body_str()
}

#[test]
fn location_matching() {
    let r = Rginx::start(CONF, &[]);
    let cases = [
        ("/", "exact /"),
        ("/?q=1", "exact /"),
        ("/x", "prefix /"),
        ("/A", "prefix /"),
        ("/a", "prefix /a"),
        ("/abc", "prefix /a"),
        ("/a/", "prefix /a"),
        ("/a/b", "prefix /a/b"),
        ("/a/bc", "prefix /a/b"),
        ("/a/b/c", "exact /a/b/c"),
        ("/a/b/c/", "prefix /a/b"),
        ("/a/b/cd", "prefix /a/b"),
        ("/img", "priority /img"),
        ("/img/x.png", "priority /img"),
        ("/img/big/y", "priority /img/big"),
        ("/outer", "outer"),
        ("/outer/x", "outer"),
        ("/outer/inner/deep", "nested /outer/inner"),
        ("/outer/exact", "nested exact"),
        ("/outer/exact/", "outer"),
        // Matching is done on the normalised, decoded URI.
        ("/x/../a/b", "prefix /a/b"),
        ("//a///b", "prefix /a/b"),
        ("/%61/%62", "prefix /a/b"),
        ("/a/./b/./c", "exact /a/b/c"),
    ];
    for (path, want) in cases {
        assert_eq!(body(r.port, "first.example", path), want, "{path}");
    }
}

#[test]
fn nested_location_inherits() {
    let r = Rginx::start(CONF, &[]);
    let mut c = Conn::new(r.port);
    c.send(b"POST /limits/inherit HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\n123456");
    assert_eq!(c.read_response(false).status, 413);
    let mut c = Conn::new(r.port);
    c.send(b"POST /limits/inherit HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n12345");
    assert_eq!(c.read_response(false).body_str(), "inherited");
}

const SERVERS: &str = "
%%TEST_GLOBALS%%
events {}
http {
    server {
        listen 127.0.0.1:%%PORT%%;
        listen 127.0.0.1:%%PORT2%%;
        server_name first.example;
        location / { return 200 \"first $host\"; }
    }
    server {
        listen 127.0.0.1:%%PORT%%;
        server_name second.example www.second.example;
        location / { return 200 \"second $host\"; }
    }
    server {
        listen 127.0.0.1:%%PORT%%;
        server_name *.wild.example;
        location / { return 200 \"star-suffix\"; }
    }
    server {
        listen 127.0.0.1:%%PORT%%;
        server_name *.deeper.wild.example;
        location / { return 200 \"longer star-suffix\"; }
    }
    server {
        listen 127.0.0.1:%%PORT%%;
        server_name www.prefix.*;
        location / { return 200 \"star-prefix\"; }
    }
    server {
        listen 127.0.0.1:%%PORT%%;
        server_name .dot.example;
        location / { return 200 \"dot\"; }
    }
    server {
        listen 127.0.0.1:%%PORT2%% default_server;
        server_name default2.example;
        location / { return 200 \"default2 $host\"; }
    }
}
";

#[test]
fn server_name_selection() {
    let r = Rginx::start(SERVERS, &[]);
    let p = r.port;
    assert_eq!(body(p, "first.example", "/"), "first first.example");
    assert_eq!(body(p, "second.example", "/"), "second second.example");
    // Host is case-insensitive; the port and a trailing dot are not part of the name.
    assert_eq!(body(p, "WWW.Second.Example:8080", "/"), "second www.second.example");
    assert_eq!(body(p, "second.example.", "/"), "second second.example");
    assert_eq!(body(p, "a.wild.example", "/"), "star-suffix");
    assert_eq!(body(p, "a.b.wild.example", "/"), "star-suffix");
    // The longest matching wildcard wins, whatever the order of the servers.
    assert_eq!(body(p, "x.deeper.wild.example", "/"), "longer star-suffix");
    assert_eq!(body(p, "www.prefix.org", "/"), "star-prefix");
    assert_eq!(body(p, "dot.example", "/"), "dot");
    assert_eq!(body(p, "sub.dot.example", "/"), "dot");
    // No match: the first server on the address is its default.
    assert_eq!(body(p, "unknown.example", "/"), "first unknown.example");
    assert_eq!(body(p, "wild.example", "/"), "first wild.example");
    // An absolute-form target names the host, over the Host header.
    let mut c = Conn::new(p);
    c.send(b"GET http://second.example/x HTTP/1.1\r\nHost: first.example\r\n\r\n");
    assert_eq!(c.read_response(false).body_str(), "second second.example");
    // HTTP/1.0 without Host: the default server; $host is its server_name.
    let mut c = Conn::new(p);
    c.send(b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(c.read_response(false).body_str(), "first first.example");
}

#[test]
fn default_server_per_address() {
    let r = Rginx::start(SERVERS, &[]);
    // On the second port, `default_server` beats the first server listed.
    assert_eq!(body(r.port2, "nothing.example", "/"), "default2 nothing.example");
    assert_eq!(body(r.port2, "first.example", "/"), "first first.example");
    // Names of servers that do not listen on this address are not considered.
    assert_eq!(body(r.port2, "second.example", "/"), "default2 second.example");
}

#[test]
fn duplicate_default_server_is_an_error() {
    let conf = "
%%TEST_GLOBALS%%
events {}
http {
    server { listen 127.0.0.1:%%PORT%% default_server; }
    server { listen 127.0.0.1:%%PORT%% default_server; }
}
";
    let Err((out, code)) = Rginx::try_start(conf, &[]) else {
        panic!("started with two default servers");
    };
    assert_eq!(code, Some(1));
    assert!(out.contains("[emerg]"), "{out}");
    assert!(out.contains("a duplicate default server for 127.0.0.1:"), "{out}");
}
