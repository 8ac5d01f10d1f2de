//! Header-line families of the differential corpus: names, values, Host, Expect, Connection.
//!
//! nginx: src/http/ngx_http_parse.c (`ngx_http_parse_header_line`), src/http/ngx_http_request.c
//! (`ngx_http_process_request_headers`, `ngx_http_validate_host`, `ngx_http_process_connection`),
//! src/http/ngx_http_request_body.c (`ngx_http_test_expect`).
//!
//! Differs from nginx: nothing; test input.

use crate::gen::{cat, get, msg, post, rep, Corpus, CHUNKED, HOST, P, R, V10, V11};

/// Adds `GET LOC VERSION` with `Host` and `hs` for each of `hs_list`, to a random location.
fn with_headers(c: &mut Corpus, family: &'static str, hs_list: &[&[u8]]) {
    for &h in hs_list {
        let (loc, v) = (c.loc(), c.ver());
        c.add(family, get(loc, v, &[h]));
    }
}

pub fn names(c: &mut Corpus) {
    with_headers(
        c,
        "header-name/underscore",
        &[b"X_Foo: 1", b"_: 1", b"X-Foo_: 1", b"Host_: x", b"Content_Length: 5", b"X__: a"],
    );
    with_headers(
        c,
        "header-name/invalid",
        &[
            b"X@Foo: 1",
            b"X(Foo): 1",
            b"X<F>: 1",
            b"X,F: 1",
            b"X;F: 1",
            b"X=F: 1",
            b"X\"F: 1",
            b"X/F: 1",
            b"X[F]: 1",
            b"X?F: 1",
            b"X{F}: 1",
            b"X\\F: 1",
            b"X\x7fF: 1",
            b"X\x01F: 1",
            b"X\x80F: 1",
            b"X\xffF: 1",
            b"X\x00F: 1",
            b"X\tF: 1",
            b"X:F: 1",
            b"\xc3\xa9: 1",
        ],
    );
    with_headers(
        c,
        "header-name/token",
        &[b"X.F: 1", b"X~F: 1", b"X!#$%&'*+-.^`|~: 1", b"x-lower: 1", b"X-UPPER: 1", b"9: 1"],
    );
    with_headers(c, "header-name/space", &[b"X-Foo : v", b"X-Foo\t: v", b"X Foo: v", b"X-Foo  : v", b"Host : other"]);
    with_headers(c, "header-name/empty", &[b": v", b" : v", b":", b"\t: v"]);
    with_headers(c, "header-name/no-colon", &[b"XFoo", b"X-Foo v", b"X-Foo", b"X-Foo;v", b"="]);
    with_headers(
        c,
        "header-name/fold",
        &[b"X-A: 1\r\n 2", b"X-A: 1\r\n\t2", b"X-A: 1\r\n  ", b"X-A: 1\r\n : 2", b"X-A:\r\n 2"],
    );
    for first in [&b" X-A: 1"[..], b"\tX-A: 1", b" Host: other"] {
        c.add("header-name/fold", msg(b"GET /p HTTP/1.1", &[first, HOST], b""));
    }
    c.add("header-name/fold", msg(b"GET /p HTTP/1.1", &[HOST, b" continued"], b""));
    for n in [100, 1000, 4000, 8200, 10000] {
        let h = cat(&[&rep(b'a', n), b": 1"]);
        c.add("header-name/long", get(P, V11, &[&h]));
    }
    c.add("header-name/case", msg(b"GET /h HTTP/1.1", &[b"HOST: localhost"], b""));
    c.add("header-name/case", msg(b"GET /h HTTP/1.1", &[b"hOsT: localhost"], b""));
    c.add("header-name/case", get(P, V11, &[b"CONTENT-LENGTH: 0"]));
    c.add("header-name/case", get(P, V11, &[b"connection: close"]));
}

pub fn values(c: &mut Corpus) {
    with_headers(
        c,
        "header-value/ctl",
        &[
            b"X-A: a\x01b",
            b"X-A: a\x08b",
            b"X-A: a\x0bb",
            b"X-A: a\x0cb",
            b"X-A: a\x1bb",
            b"X-A: a\x1fb",
            b"X-A: a\x7fb",
            b"X-A: a\rb",
            b"X-A: a\x00b",
            b"X-A: \x00",
            b"X-A: \x7f",
            b"X-A: a\tb",
            b"User-Agent: x\x01y",
        ],
    );
    with_headers(
        c,
        "header-value/high",
        &[b"X-A: \x80", b"X-A: \xff\xfe", b"X-A: caf\xc3\xa9", b"X-A: \xc3\x28", b"X-A: \xa0x"],
    );
    with_headers(
        c,
        "header-value/space",
        &[b"X-A:   v   ", b"X-A:\tv\t", b"X-A:", b"X-A: ", b"X-A: v \t", b"X-A: a  b", b"X-A:v", b"X-A: \t \t"],
    );
    for n in [1000, 4000, 8100, 9000] {
        let h = cat(&[b"X-A: ", &rep(b'v', n)]);
        c.add("header-value/long", get(P, V11, &[&h]));
    }
    let many: Vec<Vec<u8>> = (0..120).map(|i| format!("X-N{i}: {i}").into_bytes()).collect();
    let refs: Vec<&[u8]> = many.iter().map(|h| &h[..]).collect();
    c.add("header-value/many", get(P, V11, &refs));
    c.add("header-value/many", get(P, V11, &refs[..60]));
}

pub fn hosts(c: &mut Corpus) {
    c.add("host/missing", msg(b"GET /h HTTP/1.1", &[], b""));
    c.add("host/missing", msg(b"GET /h HTTP/1.0", &[], b""));
    c.add("host/missing", msg(b"GET /ret HTTP/1.1", &[], b""));
    c.add("host/missing", msg(b"POST /h HTTP/1.1", &[b"Content-Length: 5"], b"hello"));
    let dups: &[&[&[u8]]] = &[
        &[b"Host: localhost", b"Host: localhost"],
        &[b"Host: localhost", b"Host: other"],
        &[b"Host: localhost", b"Host:"],
        &[b"Host:", b"Host: localhost"],
    ];
    for &hs in dups {
        c.add("host/dup", msg(b"GET /h HTTP/1.1", hs, b""));
        c.add("host/dup", msg(b"GET /h HTTP/1.0", hs, b""));
    }
    let values: &[&[u8]] = &[
        b"",
        b" ",
        b"h/x",
        b"h\\x",
        b"h x",
        b"h_x",
        b"h@x",
        b"..",
        b"h..x",
        b".h",
        b"h.",
        b"H.EXAMPLE.",
        b"%41",
        b"h\x01",
        b"h\x7f",
        b"h\x80",
        b"h:80",
        b"h:",
        b"h:abc",
        b"h:99999",
        b"[::1]",
        b"[::1]:80",
        b"[::1",
        b"::1",
        b"[x]",
        b"h:80:80",
        b"h?x",
        b"h#x",
        b"LOCALHOST",
        b"localhost.",
        b"a-b.c",
        b"-h",
        b"h\t",
        b"\x00",
    ];
    for &v in values {
        let h = cat(&[b"Host: ", v]);
        c.add("host/value", msg(b"GET /h HTTP/1.1", &[&h], b""));
        c.add("host/value", msg(b"GET /ret HTTP/1.0", &[&h], b""));
    }
    let long = cat(&[b"Host: ", &rep(b'h', 300), b".example"]);
    c.add("host/value", msg(b"GET /h HTTP/1.1", &[&long], b""));
}

pub fn expect(c: &mut Corpus) {
    let values: &[&[u8]] =
        &[b"100-continue", b"100-Continue", b"100-continue ", b"foo", b"100-continue, foo", b"", b"200-ok"];
    for &v in values {
        let e = cat(&[b"Expect: ", v]);
        for &loc in &[P, R] {
            c.add("expect/body", post(loc, V11, &[&e, b"Content-Length: 5"], b"hello"));
            c.add("expect/no-body", get(loc, V11, &[&e]));
        }
        c.add("expect/http10", post(P, V10, &[&e, b"Content-Length: 5"], b"hello"));
        let te = b"Transfer-Encoding: chunked";
        c.add("expect/chunked", post(P, V11, &[&e, te], CHUNKED));
    }
}

pub fn connection(c: &mut Corpus) {
    let values: &[&[u8]] = &[
        b"Connection: close",
        b"Connection: keep-alive",
        b"Connection: Keep-Alive",
        b"Connection: close, keep-alive",
        b"Connection: keep-alive, close",
        b"Connection: foo",
        b"Connection: TE",
        b"Connection:",
        b"Connection: CLOSE",
        b"Connection: x, close",
        b"Connection: upgrade\r\nUpgrade: websocket",
        b"Connection: keep-alive\r\nKeep-Alive: 300",
        b"Connection: close\r\nConnection: keep-alive",
        b"Connection: X-A\r\nX-A: 1",
    ];
    for &h in values {
        for &v in &[V10, V11] {
            let loc = c.loc();
            c.add("connection", get(loc, v, &[h]));
        }
    }
}
