//! Framing families of the differential corpus: Content-Length, Transfer-Encoding, chunked
//! bodies, pipelined pairs, and response splitting through `$uri`.
//!
//! nginx: src/http/ngx_http_request.c (`ngx_http_process_request_header`: the
//! Content-Length and Transfer-Encoding checks), src/http/ngx_http_parse.c
//! (`ngx_http_parse_chunked`), src/http/ngx_http_request_body.c.
//!
//! Differs from nginx: nothing; test input.

use crate::gen::{cat, get, line, msg, post, rep, Corpus, CHUNKED, HOST, P, R, V10, V11};

/// (family, header lines, body).
type Framed<'a> = (&'static str, &'a [&'a [u8]], &'a [u8]);

pub fn content_length(c: &mut Corpus) {
    let cases: &[Framed] = &[
        ("cl/valid", &[b"Content-Length: 5"], b"hello"),
        ("cl/valid", &[b"Content-Length: 0"], b""),
        ("cl/valid", &[b"Content-Length:  5 "], b"hello"),
        ("cl/valid", &[b"Content-Length: 05"], b"hello"),
        ("cl/valid", &[b"Content-Length: 000"], b""),
        ("cl/dup-equal", &[b"Content-Length: 5", b"Content-Length: 5"], b"hello"),
        ("cl/dup-equal", &[b"Content-Length: 5, 5"], b"hello"),
        ("cl/dup-diff", &[b"Content-Length: 5", b"Content-Length: 6"], b"hello!"),
        ("cl/dup-diff", &[b"Content-Length: 5, 6"], b"hello!"),
        ("cl/sign", &[b"Content-Length: +5"], b"hello"),
        ("cl/sign", &[b"Content-Length: -5"], b"hello"),
        ("cl/sign", &[b"Content-Length: -0"], b""),
        ("cl/bad", &[b"Content-Length: 5 5"], b"hello"),
        ("cl/bad", &[b"Content-Length: 5a"], b"hello"),
        ("cl/bad", &[b"Content-Length: 0x5"], b"hello"),
        ("cl/bad", &[b"Content-Length: 1e1"], b"helloworld"),
        ("cl/bad", &[b"Content-Length:"], b""),
        ("cl/bad", &[b"Content-Length: 5.0"], b"hello"),
        ("cl/bad", &[b"Content-Length: \x355"], b"hello"),
        ("cl/huge", &[b"Content-Length: 99999999999999999999"], b"hello"),
        ("cl/huge", &[b"Content-Length: 9223372036854775807"], b"hello"),
        ("cl/huge", &[b"Content-Length: 9223372036854775808"], b"hello"),
        ("cl/huge", &[b"Content-Length: 18446744073709551616"], b"hello"),
        ("cl/huge", &[b"Content-Length: 2000"], b"hello"),
        ("cl/short-body", &[b"Content-Length: 10"], b"hello"),
        ("cl/short-body", &[b"Content-Length: 3"], b"hello"),
        ("cl/short-body", &[b"Content-Length: 3"], b"abcGET /ret HTTP/1.1\r\nHost: x\r\n\r\n"),
    ];
    for &(family, hs, body) in cases {
        for &loc in &[P, R] {
            for &v in &[V10, V11] {
                c.add(family, post(loc, v, hs, body));
            }
        }
    }
    for m in [&b"GET"[..], b"HEAD", b"DELETE", b"OPTIONS"] {
        let l = line(m, P, V11);
        c.add("cl/on-get", msg(&l, &[HOST, b"Content-Length: 5"], b"hello"));
    }
}

pub fn transfer_encoding(c: &mut Corpus) {
    let cases: &[(&'static str, &[&[u8]])] = &[
        ("te/chunked", &[b"Transfer-Encoding: chunked"]),
        ("te/chunked", &[b"Transfer-Encoding: Chunked"]),
        ("te/chunked", &[b"Transfer-Encoding: CHUNKED"]),
        ("te/chunked", &[b"Transfer-Encoding:   chunked  "]),
        ("te/chunked", &[b"transfer-encoding: chunked"]),
        ("te/list", &[b"Transfer-Encoding: chunked, chunked"]),
        ("te/list", &[b"Transfer-Encoding: gzip, chunked"]),
        ("te/list", &[b"Transfer-Encoding: chunked, gzip"]),
        ("te/list", &[b"Transfer-Encoding: identity, chunked"]),
        ("te/list", &[b"Transfer-Encoding: chunked,"]),
        ("te/list", &[b"Transfer-Encoding: ,chunked"]),
        ("te/list", &[b"Transfer-Encoding: chunked , chunked"]),
        ("te/identity", &[b"Transfer-Encoding: identity"]),
        ("te/identity", &[b"Transfer-Encoding: identity", b"Content-Length: 5"]),
        ("te/unknown", &[b"Transfer-Encoding: gzip"]),
        ("te/unknown", &[b"Transfer-Encoding: foo"]),
        ("te/unknown", &[b"Transfer-Encoding: x-chunked"]),
        ("te/unknown", &[b"Transfer-Encoding: chunkedx"]),
        ("te/unknown", &[b"Transfer-Encoding: chunked;q=1"]),
        ("te/unknown", &[b"Transfer-Encoding:"]),
        ("te/unknown", &[b"Transfer-Encoding: chun ked"]),
        ("te/unknown", &[b"Transfer-Encoding: \"chunked\""]),
        ("te/with-cl", &[b"Transfer-Encoding: chunked", b"Content-Length: 5"]),
        ("te/with-cl", &[b"Content-Length: 5", b"Transfer-Encoding: chunked"]),
        ("te/with-cl", &[b"Content-Length: 100", b"Transfer-Encoding: chunked"]),
        ("te/dup", &[b"Transfer-Encoding: chunked", b"Transfer-Encoding: chunked"]),
        ("te/dup", &[b"Transfer-Encoding: gzip", b"Transfer-Encoding: chunked"]),
        ("te/dup", &[b"Transfer-Encoding: chunked", b"Transfer-Encoding: identity"]),
    ];
    for &(family, hs) in cases {
        for &loc in &[P, R] {
            c.add(family, post(loc, V11, hs, CHUNKED));
        }
        let loc = c.loc();
        c.add("te/http10", post(loc, V10, hs, CHUNKED));
    }
}

pub fn chunked_bodies(c: &mut Corpus) {
    let big = cat(&[b"800\r\n", &rep(b'x', 0x800), b"\r\n0\r\n\r\n"]);
    let many: Vec<u8> = (0..12).flat_map(|_| cat(&[b"64\r\n", &rep(b'y', 100), b"\r\n"])).collect();
    let many = cat(&[&many, b"0\r\n\r\n"]);
    let ext = cat(&[b"5;", &rep(b'e', 500), b"\r\nhello\r\n0\r\n\r\n"]);
    let bodies: &[(&'static str, &[u8])] = &[
        ("chunked/valid", CHUNKED),
        ("chunked/valid", b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
        ("chunked/valid", b"A\r\n0123456789\r\n0\r\n\r\n"),
        ("chunked/valid", b"a\r\n0123456789\r\n0\r\n\r\n"),
        ("chunked/valid", b"0\r\n\r\n"),
        ("chunked/valid", b"005\r\nhello\r\n000\r\n\r\n"),
        ("chunked/size", b"5 \r\nhello\r\n0\r\n\r\n"),
        ("chunked/size", b" 5\r\nhello\r\n0\r\n\r\n"),
        ("chunked/size", b"5\t\r\nhello\r\n0\r\n\r\n"),
        ("chunked/size", b"+5\r\nhello\r\n0\r\n\r\n"),
        ("chunked/size", b"-5\r\nhello\r\n0\r\n\r\n"),
        ("chunked/size", b"0x5\r\nhello\r\n0\r\n\r\n"),
        ("chunked/size", b"g\r\nhello\r\n0\r\n\r\n"),
        ("chunked/size", b"\r\nhello\r\n0\r\n\r\n"),
        ("chunked/size", b"fffffffffffffffff\r\nhello\r\n0\r\n\r\n"),
        ("chunked/size", b"7fffffffffffffff\r\nhello\r\n0\r\n\r\n"),
        ("chunked/size", b"3\r\nhello\r\n0\r\n\r\n"),
        ("chunked/size", b"8\r\nhello\r\n0\r\n\r\n"),
        ("chunked/ext", b"5;a=b\r\nhello\r\n0\r\n\r\n"),
        ("chunked/ext", b"5;\r\nhello\r\n0\r\n\r\n"),
        ("chunked/ext", b"5 ;a\r\nhello\r\n0\r\n\r\n"),
        ("chunked/ext", b"5;a=\"b;c\"\r\nhello\r\n0\r\n\r\n"),
        ("chunked/ext", b"5;a\x01\r\nhello\r\n0\r\n\r\n"),
        ("chunked/ext", b"5\r\nhello\r\n0;x=y\r\n\r\n"),
        ("chunked/ext", &ext),
        ("chunked/trailer", b"5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n"),
        ("chunked/trailer", b"5\r\nhello\r\n0\r\nbad trailer\r\n\r\n"),
        ("chunked/trailer", b"5\r\nhello\r\n0\r\nX_T: 1\r\nX-U: 2\r\n\r\n"),
        ("chunked/trailer", b"5\r\nhello\r\n0\r\nContent-Length: 5\r\n\r\n"),
        ("chunked/framing", b"5\r\nhelloX0\r\n\r\n"),
        ("chunked/framing", b"5\nhello\n0\n\n"),
        ("chunked/framing", b"5\r\nhello\n0\r\n\r\n"),
        ("chunked/framing", b"5\r\nhello\r\n"),
        ("chunked/framing", b"5\r\nhello\r\n0\r\n"),
        ("chunked/framing", b"5\r\nhel"),
        ("chunked/framing", b"5\r\nhello\r\n0\r\n\r\nGET /ret HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("chunked/framing", b"5\r\nhello\r\r0\r\n\r\n"),
        ("chunked/oversize", &big),
        ("chunked/oversize", &many),
    ];
    for &(family, body) in bodies {
        for &loc in &[P, R] {
            c.add(family, post(loc, V11, &[b"Transfer-Encoding: chunked"], body));
        }
    }
    let cl = cat(&[b"Content-Length: 1100"]);
    c.add("cl/oversize", post(P, V11, &[&cl], &rep(b'z', 1100)));
    c.add("cl/oversize", post(R, V11, &[&cl], &rep(b'z', 1100)));
}

pub fn pipelines(c: &mut Corpus) {
    let g11 = get(P, V11, &[]);
    let r11 = get(R, V11, &[]);
    let g10ka = get(P, V10, &[b"Connection: keep-alive"]);
    let head = msg(b"HEAD /p HTTP/1.1", &[HOST], b"");
    let post_cl = post(P, V11, &[b"Content-Length: 5"], b"hello");
    let post_ch = post(P, V11, &[b"Transfer-Encoding: chunked"], CHUNKED);
    let close = get(P, V11, &[b"Connection: close"]);
    let firsts: &[&[u8]] = &[&g11, &r11, &g10ka, &head, &post_cl, &post_ch, &close];
    for &a in firsts {
        c.add("pipeline/valid", cat(&[a, &g11]));
        c.add("pipeline/valid", cat(&[a, &r11]));
    }
    let bad: &[&[u8]] = &[
        b"XYZ\r\n\r\n",
        b"GET /p\r\n",
        b"GET /p HTTP/1.2\r\nHost: localhost\r\n\r\n",
        b"\r\n\r\n",
        b"GET /p HTTP/1.1\r\n\r\n",
        b"GET /p HTTP/1.1\r\nHost: localhost\r\n",
        b"TRACE /p HTTP/1.1\r\nHost: localhost\r\n\r\n",
        b"GET /p HTTP/1.1\r\nHost: localhost\r\nX_A: 1\r\n\r\n",
    ];
    for &b in bad {
        c.add("pipeline/bad-second", cat(&[&g11, b]));
        c.add("pipeline/bad-second", cat(&[&post_ch, b]));
    }
    let smuggle: &[&[u8]] = &[
        b"POST /p HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /ret HTTP/1.1\r\nHost: localhost\r\n\r\n",
        b"POST /p HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nContent-Length: 30\r\n\r\n0\r\n\r\nGET /ret HTTP/1.1\r\nHost: localhost\r\n\r\n",
        b"POST /p HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\nGET /ret HTTP/1.1\r\nHost: localhost\r\n\r\n",
        b"POST /p HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nContent-Length: 39\r\n\r\nGET /ret HTTP/1.1\r\nHost: localhost\r\n\r\n",
        b"GET /p HTTP/1.1\r\nHost: localhost\r\nContent-Length: 39\r\n\r\nGET /ret HTTP/1.1\r\nHost: localhost\r\n\r\n",
        b"POST /p HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n3;x\nabc\r\n0\r\n\r\nGET /ret HTTP/1.1\r\nHost: localhost\r\n\r\n",
        b"POST /p HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\nGET /ret HTTP/1.1\r\nHost: localhost\r\n\r\n",
        b"POST /p HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding\r\n : chunked\r\n\r\n0\r\n\r\nGET /ret HTTP/1.1\r\nHost: localhost\r\n\r\n",
    ];
    for &s in smuggle {
        c.add("pipeline/smuggle", s.to_vec());
    }
}

/// `$uri` is decoded: `return 302 http://localhost$uri;` (location `/redir`) with `%0d%0a` in
/// the path splits nginx's response (issue 11 item 6). A status line injected after the
/// blank line shows as a second status in the comparison.
pub fn splitting(c: &mut Corpus) {
    let targets: &[&[u8]] = &[
        b"/redir/plain",
        b"/redir/%0d%0aX-Injected:%201",
        b"/redir/%0d%0a%0d%0aHTTP/1.1%20200%20OK%0d%0aContent-Length:%200%0d%0a%0d%0a",
        b"/redir/%0aX:1",
        b"/redir/%0dx",
        b"/redir/%00x",
    ];
    for &t in targets {
        for &v in &[V10, V11] {
            c.add("split/uri", get(t, v, &[]));
        }
    }
}
