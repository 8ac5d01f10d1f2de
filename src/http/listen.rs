//! `listen`, and the listening addresses built from it: servers grouped by address, each with
//! its default server, and the choice of a server by `Host` on an address.
//!
//! nginx: src/http/ngx_http_core_module.c (`ngx_http_core_listen`), src/core/ngx_inet.c
//! (`ngx_parse_url` for listen), src/http/ngx_http.c (`ngx_http_optimize_servers`,
//! `ngx_http_add_addrs`), src/http/ngx_http_request.c (`ngx_http_find_virtual_server`).
//!
//! Differs from nginx:
//! - `listen` takes an address and `default_server` (or `default`), `reuseport`, `backlog=N`
//!   only.
//! - server names are matched by scanning the address's servers (exact, then the longest
//!   leading wildcard, then the longest trailing one) instead of nginx's hashes; no regex names.

use std::net::SocketAddr;
use std::sync::Arc;

use super::core_module::srv;
use super::{Cx, ListenAddr, ListenOpt, SetError, SrvConf};
use crate::conf::ConfError;

/// `listen ADDR [default_server] [reuseport] [backlog=N]`. nginx: `ngx_http_core_listen()`.
pub(super) fn listen(cx: &mut Cx<'_>) -> Result<(), SetError> {
    let spec = cx.arg(0).to_string();
    let addr = parse_listen_addr(&spec)?;
    let mut opt = ListenOpt { addr, default_server: false, reuseport: false, backlog: 511 };
    for a in &cx.d.args[1..] {
        match a.as_str() {
            "default_server" | "default" => opt.default_server = true,
            "reuseport" => opt.reuseport = true,
            b if b.starts_with("backlog=") => {
                opt.backlog = b[8..].parse().map_err(|_| format!("invalid backlog \"{}\"", &b[8..]))?;
            }
            p => return Err(format!("invalid parameter \"{p}\"").into()),
        }
    }
    srv(cx)?.listens.push(opt);
    Ok(())
}

/// `listen 8080`, `listen *:8080`, `listen 127.0.0.1:8080`, `listen [::1]:8080`,
/// `listen localhost:8080`. nginx: `ngx_parse_url()` for listen.
fn parse_listen_addr(s: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::from(([0, 0, 0, 0], port)));
    }
    if let Some(p) = s.strip_prefix("*:") {
        let port = p.parse::<u16>().map_err(|_| format!("invalid port in \"{s}\" of the \"listen\" directive"))?;
        return Ok(SocketAddr::from(([0, 0, 0, 0], port)));
    }
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    let bracketed = s.strip_prefix('[').and_then(|h| h.strip_suffix(']'));
    let (host, port) = match bracketed.map_or_else(|| s.rsplit_once(':'), |h| Some((h, "80"))) {
        Some((h, p)) => {
            (h, p.parse::<u16>().map_err(|_| format!("invalid port in \"{s}\" of the \"listen\" directive"))?)
        }
        None => (s, 80),
    };
    match crate::os::resolve::lookup(host, port) {
        Ok(v) => v.into_iter().next().ok_or_else(|| format!("host not found in \"{s}\" of the \"listen\" directive")),
        Err(_) => Err(format!("host not found in \"{s}\" of the \"listen\" directive")),
    }
}

/// Groups servers by listening address and picks each address's default server.
/// nginx: `ngx_http_optimize_servers()`.
pub(super) fn optimize_servers(servers: &[Arc<SrvConf>]) -> Result<Vec<ListenAddr>, ConfError> {
    let mut addrs: Vec<ListenAddr> = Vec::new();
    for s in servers {
        for l in &s.core.listens {
            let i = match addrs.iter().position(|a| a.opt.addr == l.addr) {
                Some(i) => i,
                None => {
                    addrs.push(ListenAddr { opt: l.clone(), servers: Vec::new(), default: 0 });
                    addrs.len() - 1
                }
            };
            let a = &mut addrs[i];
            if l.default_server {
                // A server that names itself default twice for an address is no duplicate.
                let same = a.opt.default_server && a.servers.get(a.default).is_some_and(|d| Arc::ptr_eq(d, s));
                let other_default =
                    a.servers.iter().any(|x| x.core.listens.iter().any(|xl| xl.addr == l.addr && xl.default_server));
                if !same && other_default {
                    return Err(ConfError {
                        msg: format!("a duplicate default server for {}", l.addr),
                        file: None,
                        line: 0,
                    });
                }
                a.opt.default_server = true;
                a.default = a.servers.len();
            }
            a.opt.reuseport |= l.reuseport;
            a.servers.push(s.clone());
        }
    }
    Ok(addrs)
}

/// Picks the server for a `Host` on a listening address: an exact name, then the longest
/// `*.suffix` (or `.suffix`) wildcard, then the longest `prefix.*` wildcard, else the default
/// server. Ties go to the server listed first. `host` is already lowercased.
/// nginx: `ngx_http_find_virtual_server()` (exact hash, then `dns_wc_head`, then `dns_wc_tail`).
pub fn find_virtual_server(addr: &ListenAddr, host: &[u8]) -> Arc<SrvConf> {
    if host.is_empty() {
        return addr.servers[addr.default].clone();
    }
    let ends_with = |suf: &[u8]| host.len() >= suf.len() && host[host.len() - suf.len()..].eq_ignore_ascii_case(suf);
    let starts_with = |pre: &[u8]| host.len() > pre.len() && host[..pre.len()].eq_ignore_ascii_case(pre);
    // (length of the matched part, server) of the best head and tail wildcards so far
    let mut head: Option<(usize, &Arc<SrvConf>)> = None;
    let mut tail: Option<(usize, &Arc<SrvConf>)> = None;
    for s in &addr.servers {
        for n in s.core.server_names.iter().map(String::as_bytes) {
            let head_len = match n {
                [b'*', suf @ ..] if host.len() > suf.len() && ends_with(suf) => Some(suf.len()),
                // ".example.com" is "example.com" and "*.example.com" in one
                [b'.', name @ ..] if host.eq_ignore_ascii_case(name) || ends_with(n) => Some(name.len()),
                _ => None,
            };
            if let Some(len) = head_len {
                if head.is_none_or(|(best, _)| len > best) {
                    head = Some((len, s));
                }
                continue;
            }
            if let Some(pre) = n.strip_suffix(b"*") {
                if starts_with(pre) && tail.is_none_or(|(best, _)| pre.len() > best) {
                    tail = Some((pre.len(), s));
                }
                continue;
            }
            if host.eq_ignore_ascii_case(n) {
                return s.clone();
            }
        }
    }
    match head.or(tail) {
        Some((_, s)) => s.clone(),
        None => addr.servers[addr.default].clone(),
    }
}
