//! The last header filter: turns `headers_out` into the bytes of the response head.
//!
//! nginx: src/http/ngx_http_header_filter_module.c (`ngx_http_header_filter`).
//!
//! The head is queued on the request's output chain, not sent: the write filter sends it
//! together with the first body bytes in one `writev`, as nginx does.

use std::io::Write;

use super::request::Method;
use super::special_response::status_line;
use super::{FilterRc, Next};
use crate::core::buf::Buf;
use crate::core::connection::RequestId;
use crate::core::cycle::Cycle;
use crate::core::step::Step;

/// Initial size of the head buffer; grown only for unusually large heads.
const HEAD_BUF: usize = 1024;

/// nginx: `ngx_http_header_filter()`.
pub fn header_filter(cy: &mut Cycle, rid: RequestId, _next: Next) -> FilterRc {
    let Some(r) = cy.requests.get_mut(rid) else {
        return Err(super::Error);
    };
    if r.header_sent {
        return Ok(Step::Done(()));
    }
    r.header_sent = true;
    if r.main != rid || r.http_version < 1000 {
        // nginx sends no header to an HTTP/0.9 response (the proxy's 0.9 fallback).
        r.keepalive = false;
        return Ok(Step::Done(()));
    }
    let status = r.headers_out.status;
    if r.method == Method::Head {
        r.header_only = true;
    }
    if status == 204 || status == 304 {
        r.header_only = true;
        if status == 204 {
            r.headers_out.content_type = None;
            r.headers_out.content_length_n = None;
        }
    }
    let mut head = cy.bufs.get(HEAD_BUF).mem;
    head.clear();
    let ho = &r.headers_out;
    head.extend_from_slice(b"HTTP/1.1 ");
    match (&ho.status_line, status_line(status)) {
        (Some(l), _) => head.extend_from_slice(l.as_bytes()),
        (None, Some(l)) => head.extend_from_slice(l.as_bytes()),
        (None, None) => {
            let _ = write!(head, "{status:03} ");
        }
    }
    head.extend_from_slice(b"\r\n");
    if !ho.no_server {
        head.extend_from_slice(if r.loc.core.server_tokens() {
            concat!("Server: rginx/", env!("CARGO_PKG_VERSION"), "\r\n").as_bytes()
        } else {
            b"Server: rginx\r\n"
        });
    }
    if !ho.no_date {
        head.extend_from_slice(b"Date: ");
        head.extend_from_slice(cy.times.http_time.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    if let Some(ct) = &ho.content_type {
        head.extend_from_slice(b"Content-Type: ");
        head.extend_from_slice(ct.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    if let Some(n) = ho.content_length_n {
        let _ = write!(head, "Content-Length: {n}\r\n");
    }
    if let Some(lm) = &ho.last_modified {
        head.extend_from_slice(b"Last-Modified: ");
        head.extend_from_slice(lm.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    if let Some(loc) = &ho.location {
        head.extend_from_slice(b"Location: ");
        if loc.starts_with('/') {
            // A relative redirect is made absolute from the Host the client used (nginx's
            // defaults `absolute_redirect on`, `server_name_in_redirect off`,
            // `port_in_redirect on`), else from the local address.
            let local = cy.conns.get(r.connection).and_then(|c| c.local);
            head.extend_from_slice(b"http://");
            match local {
                _ if !r.headers_in.host.is_empty() => head.extend_from_slice(&r.headers_in.host),
                Some(std::net::SocketAddr::V6(a)) => {
                    let _ = write!(head, "[{}]", a.ip());
                }
                Some(a) => {
                    let _ = write!(head, "{}", a.ip());
                }
                None => {}
            }
            match local.map(|a| a.port()) {
                Some(80) | None => {}
                Some(port) => {
                    let _ = write!(head, ":{port}");
                }
            }
        }
        head.extend_from_slice(loc.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    if r.chunked {
        head.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
    }
    head.extend_from_slice(if r.keepalive { b"Connection: keep-alive\r\n" } else { b"Connection: close\r\n" });
    if let (true, Some(t)) = (r.keepalive, r.loc.core.keepalive_header) {
        let _ = write!(head, "Keep-Alive: timeout={t}\r\n");
    }
    for (n, v) in &ho.headers {
        head.extend_from_slice(n.as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(v.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    r.header_size = head.len() as u64;
    r.out.push_back(Buf::from_vec(head));
    Ok(Step::Done(()))
}

/// The module. nginx: `ngx_http_header_filter_module`.
pub struct HeaderFilterModule;

impl super::HttpModule for HeaderFilterModule {
    fn name(&self) -> &'static str {
        "ngx_http_header_filter_module"
    }
    fn postconfiguration(&self, http: &mut super::HttpConf) -> Result<(), crate::conf::ConfError> {
        http.filters.header.insert(0, header_filter);
        Ok(())
    }
}
