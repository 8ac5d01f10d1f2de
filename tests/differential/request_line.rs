//! Request-line families of the differential corpus: methods, targets, versions, the spaces
//! between them and the line endings.
//!
//! nginx: src/http/ngx_http_parse.c (`ngx_http_parse_request_line`,
//! `ngx_http_parse_complex_uri`), src/http/ngx_http_request.c (`ngx_http_process_request_uri`).
//!
//! Differs from nginx: nothing; test input.

use crate::gen::{cat, get, line, msg, rep, Corpus, HOST, P, R, V10, V11};

pub fn methods(c: &mut Corpus) {
    let known: &[&[u8]] = &[
        b"GET",
        b"HEAD",
        b"POST",
        b"PUT",
        b"DELETE",
        b"OPTIONS",
        b"PATCH",
        b"PROPFIND",
        b"PROPPATCH",
        b"MKCOL",
        b"COPY",
        b"MOVE",
        b"LOCK",
        b"UNLOCK",
    ];
    let case: &[&[u8]] = &[b"get", b"Get", b"gET", b"head", b"post", b"options", b"trace"];
    let long = rep(b'M', 40);
    let longer = rep(b'M', 300);
    let unknown: &[&[u8]] = &[
        b"FOO",
        b"BREW",
        b"M-SEARCH",
        b"G3T",
        b"GET_",
        b"GETT",
        b"X.Y",
        b"GE!T",
        &long,
        &longer,
        b"\xc3\x89T",
        b"GE\x01T",
        b"G\x7fT",
    ];
    for &loc in &[P, R] {
        for &v in &[V10, V11] {
            for &m in known {
                c.add("method/known", msg(&line(m, loc, v), &[HOST], b""));
            }
            c.add("method/trace", msg(&line(b"TRACE", loc, v), &[HOST], b""));
            c.add("method/connect", msg(&line(b"CONNECT", b"localhost:80", v), &[HOST], b""));
            for &m in case {
                c.add("method/case", msg(&line(m, loc, v), &[HOST], b""));
            }
            for &m in unknown {
                c.add("method/unknown", msg(&line(m, loc, v), &[HOST], b""));
            }
        }
    }
    c.add("method/connect", msg(b"CONNECT /p HTTP/1.1", &[HOST], b""));
    c.add("method/unknown", msg(b" /p HTTP/1.1", &[HOST], b""));
}

pub fn targets(c: &mut Corpus) {
    let absolute: &[&[u8]] = &[
        b"http://localhost/h",
        b"http://LOCALHOST/h",
        b"http://localhost:80/h",
        b"http://localhost:8080/h?x=1",
        b"http://other.example/h",
        b"http://localhost",
        b"http://localhost?x",
        b"http://localhost./h",
        b"https://localhost/h",
        b"HTTP://localhost/h",
        b"ftp://localhost/h",
        b"http://bad_host/h",
        b"http://[::1]/h",
        b"http://[::1]:80/h",
        b"http://[::1/h",
        b"http://user@localhost/h",
        b"http://localhost:abc/h",
        b"http:///h",
        b"http:/h",
        b"http://localhost/h#f",
        b"http://-h/h",
        b"http://a..b/h",
        b"http://a/b/../../h",
        b"http://%41/h",
        b"http://local\x01host/h",
        b"h1ttp://localhost/h",
        b"http://localhost/ret",
    ];
    for &t in absolute {
        let v = c.ver();
        c.add("target/absolute", get(t, v, &[]));
        c.add("target/absolute", msg(&line(b"GET", t, V11), &[], b""));
    }
    let mut each = |family: &'static str, ts: &[&[u8]]| {
        for &t in ts {
            for &v in &[V10, V11] {
                c.add(family, get(t, v, &[]));
            }
        }
    };
    each("target/asterisk", &[b"*", b"*/p", b"**"]);
    each(
        "target/escape",
        &[
            b"/p/%00x",
            b"/p/%2e%2e/x",
            b"/p/%2E%2E/%2e%2e/x",
            b"/p/%2fx",
            b"/p/%zz",
            b"/p/%",
            b"/p/%4",
            b"/p/a%20b",
            b"/p/%u0041",
            b"/p/%c0%ae%c0%ae/x",
            b"/ret%2Fx",
            b"/%72et",
            b"/p?%00",
            b"/p/%0d%0aX:1",
            b"/p/%25",
            b"/%2e%2e/p",
        ],
    );
    each(
        "target/dots",
        &[
            b"/p/../x",
            b"/p/../../x",
            b"/../p",
            b"/p/./x",
            b"/p/.",
            b"/p/..",
            b"/./p",
            b"//p",
            b"/p//x",
            b"/p/x/../../../",
            b"/p/.../x",
            b"/p/..%2f..",
            b"/ret/../p",
            b"/p/../ret",
            b"/p/.%2e/x",
            b"/p/x/..?a",
        ],
    );
    each(
        "target/bytes",
        &[
            b"/p/a\x01b",
            b"/p/a\x7fb",
            b"/p/a\x80b",
            b"/p/\xff",
            b"/p/a\tb",
            b"/p/a b",
            b"/p/a\x00b",
            b"/p/a\\b",
            b"/p/a\"b",
            b"/p/a<b>",
            b"/p/a{b}",
            b"/p/a^b",
            b"/p/a`b",
            b"/p/a|b",
            b"/p?a b",
            b"/p/a\x0bb",
            b"/p/\xc3\xa9",
        ],
    );
    each("target/fragment", &[b"/p#f", b"/p?x#f", b"/p#", b"/p/#/../x", b"#f", b"/p#f g"]);
    each("target/form", &[b"p", b"?x", b"/p?", b"/p?a=1&b=2;c", b";x", b"/p;a", b"", b"/p?x?y", b"/\\p"]);
}

pub fn long_targets(c: &mut Corpus) {
    for n in [1000, 4000, 8000, 8100, 9000, 20000] {
        let t = cat(&[b"/p/", &rep(b'a', n)]);
        let v = c.ver();
        c.add("target/long", get(&t, v, &[]));
    }
    for n in [4000, 9000] {
        let t = cat(&[b"/p?", &rep(b'q', n)]);
        c.add("target/long", get(&t, V11, &[]));
    }
}

pub fn versions(c: &mut Corpus) {
    for &loc in &[P, R] {
        let simple: &[&[u8]] = &[b"GET ", b"HEAD ", b"POST ", b"get "];
        for &m in simple {
            c.add("version/0.9-simple", cat(&[m, loc, b"\r\n"]));
        }
        c.add("version/0.9-simple", cat(&[b"GET ", loc, b"\n"]));
        c.add("version/0.9-simple", cat(&[b"GET ", loc, b" \r\n"]));
        c.add("version/0.9-simple", cat(&[b"GET  ", loc, b"\r\n"]));
        c.add("version/0.9-simple", cat(&[b"GET ", loc, b"\r\nHost: x\r\n\r\n"]));
        c.add("version/0.9-simple", cat(&[b"GET ", loc, b"?a=b\r\n"]));
        let mut with = |family: &'static str, vs: &[&[u8]]| {
            for &v in vs {
                c.add(family, msg(&line(b"GET", loc, v), &[HOST], b""));
            }
        };
        with("version/0.9-explicit", &[b"HTTP/0.9"]);
        with(
            "version/minor",
            &[
                b"HTTP/1.2",
                b"HTTP/1.9",
                b"HTTP/1.10",
                b"HTTP/1.01",
                b"HTTP/1.00",
                b"HTTP/1.001",
                b"HTTP/1.99",
                b"HTTP/1.999",
                b"HTTP/1.1000",
                b"HTTP/1.65535",
            ],
        );
        with(
            "version/major",
            &[
                b"HTTP/2.0",
                b"HTTP/2.1",
                b"HTTP/3.0",
                b"HTTP/9.9",
                b"HTTP/10.0",
                b"HTTP/01.1",
                b"HTTP/0.1",
                b"HTTP/0.0",
                b"HTTP/1000.1",
                b"HTTP/2",
            ],
        );
        with(
            "version/junk",
            &[
                b"http/1.1",
                b"HTTP/1",
                b"HTTP/1.",
                b"HTTP/.1",
                b"HTTP/1.1.1",
                b"HTTPS/1.1",
                b"HTTP/1.a",
                b"HTTP/a.1",
                b"HTTP 1.1",
                b"HTTP/ 1.1",
                b"HTTP/1 .1",
                b"HTTP1.1",
                b"HTTX/1.1",
                b"HTTP/1.1x",
                b"HTTP/-1.1",
                b"HTTP/+1.1",
                b"H",
                b"Http/1.1",
            ],
        );
    }
}

pub fn spacing(c: &mut Corpus) {
    let lines: &[&[u8]] = &[
        b"GET  /p HTTP/1.1",
        b"GET /p  HTTP/1.1",
        b" GET /p HTTP/1.1",
        b"GET /p HTTP/1.1 ",
        b"GET /p HTTP/1.1  ",
        b"GET /p HTTP/1.1\t",
        b"GET\t/p\tHTTP/1.1",
        b"GET /p HTTP/1.1 x",
        b"GET /p HTTP/1.1\x00",
        b"GET /p\tHTTP/1.1",
        b"GET /ret HTTP/1.0 ",
        b"GET /ret  HTTP/1.1",
        b"GET /p HTTP/1.1\x0b",
        b"GET /p HTTP/1.1\r",
        b"GET /p HTTP/1.1 \x01",
    ];
    for &l in lines {
        c.add("request-line/spaces", msg(l, &[HOST], b""));
    }
    let leading: &[&[u8]] = &[b"\r\n", b"\n", b"\r\n\r\n", b"\r\n\r\n\r\n\r\n", b" \r\n", b"\x00"];
    for &pre in leading {
        let loc = c.loc();
        c.add("request-line/leading", cat(&[pre, &get(loc, V11, &[])]));
    }
}

pub fn line_endings(c: &mut Corpus) {
    let reqs: &[&[u8]] = &[
        b"GET /p HTTP/1.1\nHost: localhost\n\n",
        b"GET /p HTTP/1.1\nHost: localhost\r\n\r\n",
        b"GET /p HTTP/1.1\r\nHost: localhost\n\n",
        b"GET /p HTTP/1.1\r\nHost: localhost\r\n\n",
        b"GET /p HTTP/1.1\r\nHost: localhost\n\r\n",
        b"GET /p HTTP/1.0\nX-A: 1\n\n",
        b"GET /p HTTP/1.1\rHost: localhost\r\r",
        b"GET /p HTTP/1.1\r\rHost: localhost\r\n\r\n",
        b"GET /p HTTP/1.1\r\r\nHost: localhost\r\n\r\n",
        b"GET /p HTTP/1.1\r\nHost: localhost\r\r\n\r\n",
        b"GET /p HTTP/1.1\r\nHost: localhost\r\nX-A: 1\r\r\n\r\n",
        b"GET /p HTTP/1.1\r\nHost: localhost \r \n\r\n",
        b"GET /p HTTP/1.1\r\nHost: localhost\rX-A: 1\r\n\r\n",
        b"GET /p HTTP/1.1\r\nHost: localhost\r\n\r\r\n",
        b"GET /ret HTTP/1.1\nHost: localhost\n\n",
        b"POST /p HTTP/1.1\nHost: localhost\nContent-Length: 5\n\nhello",
        b"POST /p HTTP/1.1\nHost: localhost\nTransfer-Encoding: chunked\n\n5\r\nhello\r\n0\r\n\r\n",
        b"GET /p HTTP/1.1\r\nHost: localhost\r\n \r\n\r\n",
        b"GET /p HTTP/1.1\r\n\r\nHost: localhost\r\n\r\n",
        b"GET /p HTTP/1.1\r\nHost: localhost\r\n\t\r\n\r\n",
    ];
    for &r in reqs {
        c.add("line-endings", r.to_vec());
    }
}
