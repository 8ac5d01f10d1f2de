//! `$variables` and complex values ("text with $vars") used by `return`, `log_format`,
//! `proxy_set_header`, `add_header`.
//!
//! nginx: src/http/ngx_http_variables.c (`ngx_http_core_variables[]`, prefix variables
//! `$arg_`, `$http_`, `$sent_http_`, `$cookie_`) and src/http/ngx_http_script.c
//! (`ngx_http_complex_value_t`, `ngx_http_compile_complex_value()`).
//!
//! Differs from nginx:
//! - a compiled value is a list of literal and variable parts evaluated on demand; nginx
//!   compiles to a little bytecode with separate length and value passes, and caches values
//!   per request.
//! - modules add variables through `HttpModule::variables()`; names are resolved when the
//!   configuration is read ("unknown "foo" variable" is an `[emerg]`, as in nginx).

use std::io::Write;

use super::{HttpModule, VariableDef};
use crate::http::cycle::Cycle;
use crate::http::cycle::RequestId;

/// One piece of a complex value.
#[derive(Clone)]
enum Part {
    Lit(Vec<u8>),
    Var(&'static VariableDef, String),
}

/// A string with variables, compiled at configuration time.
/// nginx: `ngx_http_complex_value_t`.
#[derive(Clone, Default)]
pub struct ComplexValue {
    parts: Vec<Part>,
    /// The text as written in the configuration.
    pub source: String,
}

impl std::fmt::Debug for ComplexValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.source)
    }
}

/// Finds a variable by name among the modules' tables: exact names first, then prefixes.
/// nginx: `ngx_http_get_variable_index()` + the prefix variable lookup.
pub fn lookup(name: &str, modules: &[&'static dyn HttpModule]) -> Option<(&'static VariableDef, String)> {
    let all = || modules.iter().flat_map(|m| m.variables().iter());
    if let Some(d) = all().find(|d| !d.prefix && d.name == name) {
        return Some((d, String::new()));
    }
    all()
        .filter(|d| d.prefix && name.len() > d.name.len() && name.starts_with(d.name))
        .max_by_key(|d| d.name.len())
        .map(|d| (d, name[d.name.len()..].to_ascii_lowercase()))
}

impl ComplexValue {
    /// Compiles `s`. nginx: `ngx_http_compile_complex_value()`.
    pub fn compile(s: &str, modules: &[&'static dyn HttpModule]) -> Result<ComplexValue, String> {
        let b = s.as_bytes();
        let mut parts = Vec::new();
        let mut lit = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] != b'$' {
                lit.push(b[i]);
                i += 1;
                continue;
            }
            i += 1;
            let (name, next) = if b.get(i) == Some(&b'{') {
                let end = b[i..]
                    .iter()
                    .position(|&c| c == b'}')
                    .ok_or_else(|| format!("the closing bracket in \"{}\" variable is missing", &s[i + 1..]))?;
                (&s[i + 1..i + end], i + end + 1)
            } else {
                let end = b[i..]
                    .iter()
                    .position(|c| !(c.is_ascii_alphanumeric() || *c == b'_'))
                    .map(|p| i + p)
                    .unwrap_or(b.len());
                (&s[i..end], end)
            };
            if name.is_empty() {
                return Err("invalid variable name".into());
            }
            let (def, param) = lookup(name, modules).ok_or_else(|| format!("unknown \"{name}\" variable"))?;
            if !lit.is_empty() {
                parts.push(Part::Lit(std::mem::take(&mut lit)));
            }
            parts.push(Part::Var(def, param));
            i = next;
        }
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        Ok(ComplexValue { parts, source: s.to_string() })
    }

    /// A value with no variables.
    pub fn literal(s: &str) -> ComplexValue {
        ComplexValue { parts: vec![Part::Lit(s.as_bytes().to_vec())], source: s.to_string() }
    }

    /// Whether the value has no variables.
    pub fn is_static(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Lit(_)))
    }

    /// Appends the value for request `r`; a variable that is not found appends nothing.
    /// nginx: `ngx_http_complex_value()`.
    pub fn eval(&self, cy: &Cycle, r: RequestId, out: &mut Vec<u8>) {
        for p in &self.parts {
            match p {
                Part::Lit(l) => out.extend_from_slice(l),
                Part::Var(d, param) => {
                    (d.get)(cy, r, param, out);
                }
            }
        }
    }

    /// Appends the value as a header value (`proxy_set_header`): like `eval`, then CR, LF and
    /// NUL are written as `%0D`, `%0A`, `%00`, so a variable (`$uri` is percent-decoded) cannot
    /// end the header line and add headers of its own. Returns whether anything was escaped.
    ///
    /// nginx: `ngx_http_complex_value()`; the escaping is rginx's (see `header_filter`).
    pub fn eval_header(&self, cy: &Cycle, r: RequestId, out: &mut Vec<u8>) -> bool {
        let start = out.len();
        self.eval(cy, r, out);
        if !out[start..].iter().any(|b| matches!(*b, b'\r' | b'\n' | 0)) {
            return false;
        }
        let raw = out.split_off(start);
        super::header_filter::push_header_value(out, &raw)
    }

    /// Appends the value, writing "-" for variables that are not found (access log rule).
    pub fn eval_log(&self, cy: &Cycle, r: RequestId, out: &mut Vec<u8>) {
        for p in &self.parts {
            match p {
                Part::Lit(l) => out.extend_from_slice(l),
                Part::Var(d, param) => {
                    let start = out.len();
                    if !(d.get)(cy, r, param, out) || out.len() == start {
                        out.push(b'-');
                    } else {
                        escape_log(out, start);
                    }
                }
            }
        }
    }
}

/// Escapes a variable's bytes the way nginx's `escape=default` does: `"`, `\`, and bytes
/// outside printable ASCII become `\xXX`. nginx: `ngx_http_log_escape()`.
fn escape_log(out: &mut Vec<u8>, from: usize) {
    let plain = |b: u8| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\';
    if out[from..].iter().all(|&b| plain(b)) {
        return;
    }
    let tail: Vec<u8> = out.drain(from..).collect();
    for b in tail {
        if plain(b) {
            out.push(b);
        } else {
            let _ = write!(out, "\\x{b:02X}");
        }
    }
}

macro_rules! var {
    ($name:expr, $f:expr) => {
        VariableDef { name: $name, prefix: false, get: $f }
    };
}
macro_rules! prefix {
    ($name:expr, $f:expr) => {
        VariableDef { name: $name, prefix: true, get: $f }
    };
}

/// The core variables. nginx: `ngx_http_core_variables[]`.
pub static CORE_VARIABLES: &[VariableDef] = &[
    var!("uri", |cy, r, _, o| with_r(cy, r, |r| o.extend_from_slice(&r.uri))),
    var!("document_uri", |cy, r, _, o| with_r(cy, r, |r| o.extend_from_slice(&r.uri))),
    var!("args", |cy, r, _, o| with_r(cy, r, |r| o.extend_from_slice(&r.args))),
    var!("query_string", |cy, r, _, o| with_r(cy, r, |r| o.extend_from_slice(&r.args))),
    var!("is_args", |cy, r, _, o| with_r(cy, r, |r| if !r.args.is_empty() {
        o.push(b'?')
    })),
    var!("request_uri", |cy, r, _, o| with_r(cy, r, |r| o.extend_from_slice(r.unparsed_uri()))),
    var!("request_method", |cy, r, _, o| with_r(cy, r, |r| o.extend_from_slice(r.method_name()))),
    var!("request", |cy, r, _, o| with_r(cy, r, |r| o.extend_from_slice(r.request_line()))),
    // nginx: `r->http_protocol`: not found before an "H" was seen (HTTP/0.9, a bad method),
    // empty while the line is not complete
    var!("server_protocol", |cy, r, _, o| cy.requests.get(r).is_some_and(|r| {
        o.extend_from_slice(r.http_protocol());
        r.head.http_protocol.is_some()
    })),
    var!("scheme", |_, _, _, o| {
        o.extend_from_slice(b"http");
        true
    }),
    var!("host", |cy, r, _, o| with_r(cy, r, |r| {
        if r.headers_in.host.is_empty() {
            o.extend_from_slice(r.srv.core.server_names.first().map(String::as_bytes).unwrap_or(b""));
        } else {
            o.extend_from_slice(&r.headers_in.host);
        }
    })),
    var!("server_name", |cy, r, _, o| with_r(cy, r, |r| o
        .extend_from_slice(r.srv.core.server_names.first().map(String::as_bytes).unwrap_or(b"")))),
    var!("remote_addr", |cy, r, _, o| with_c(cy, r, |c| {
        if let Some(p) = c.peer {
            let _ = write!(o, "{}", p.ip());
        }
    })),
    var!("remote_port", |cy, r, _, o| with_c(cy, r, |c| {
        if let Some(p) = c.peer {
            let _ = write!(o, "{}", p.port());
        }
    })),
    var!("remote_user", |_, _, _, _| false),
    var!("server_addr", |cy, r, _, o| with_c(cy, r, |c| {
        if let Some(p) = c.local {
            let _ = write!(o, "{}", p.ip());
        }
    })),
    var!("server_port", |cy, r, _, o| with_c(cy, r, |c| {
        if let Some(p) = c.local {
            let _ = write!(o, "{}", p.port());
        }
    })),
    var!("connection", |cy, r, _, o| with_c(cy, r, |c| {
        let _ = write!(o, "{}", c.number);
    })),
    var!("connection_requests", |cy, r, _, o| with_c(cy, r, |c| {
        let _ = write!(o, "{}", c.requests);
    })),
    var!("status", |cy, r, _, o| with_r(cy, r, |r| {
        let _ = write!(o, "{:03}", r.headers_out.status);
    })),
    var!("request_time", |cy, r, _, o| with_r(cy, r, |r| {
        let ms = cy.ev.times.unix_ms.saturating_sub(r.start_unix_ms);
        let _ = write!(o, "{}.{:03}", ms / 1000, ms % 1000);
    })),
    var!("msec", |cy, _, _, o| {
        let ms = cy.ev.times.unix_ms;
        let _ = write!(o, "{}.{:03}", ms / 1000, ms % 1000);
        true
    }),
    var!("time_local", |cy, _, _, o| {
        o.extend_from_slice(cy.ev.times.http_log_time.as_bytes());
        true
    }),
    var!("time_iso8601", |cy, _, _, o| {
        o.extend_from_slice(cy.ev.times.iso8601.as_bytes());
        true
    }),
    var!("request_length", |cy, r, _, o| with_r(cy, r, |r| {
        let _ = write!(o, "{}", r.request_length);
    })),
    var!("body_bytes_sent", |cy, r, _, o| with_rc(cy, r, |r, c| {
        let sent = c.sent.saturating_sub(r.sent_start).saturating_sub(r.header_size);
        let _ = write!(o, "{sent}");
    })),
    var!("bytes_sent", |cy, r, _, o| with_rc(cy, r, |r, c| {
        let _ = write!(o, "{}", c.sent.saturating_sub(r.sent_start));
    })),
    var!("pipe", |cy, r, _, o| with_r(cy, r, |r| o.push(if r.pipelined { b'p' } else { b'.' }))),
    var!("content_length", |cy, r, _, o| with_r(cy, r, |r| {
        if let Some(n) = r.headers_in.content_length_n {
            let _ = write!(o, "{n}");
        }
    })),
    var!("content_type", |cy, r, _, o| with_r(cy, r, |r| {
        if let Some(v) = r.header("content-type") {
            o.extend_from_slice(v);
        }
    })),
    var!("nginx_version", |_, _, _, o| {
        o.extend_from_slice(b"1.22.1");
        true
    }),
    var!("rginx_version", |_, _, _, o| {
        o.extend_from_slice(env!("CARGO_PKG_VERSION").as_bytes());
        true
    }),
    var!("pid", |_, _, _, o| {
        let _ = write!(o, "{}", std::process::id());
        true
    }),
    var!("request_body", |cy, r, _, o| with_r(cy, r, |r| {
        if let Some(rb) = &r.request_body {
            if rb.done && rb.temp_file.is_none() {
                for b in rb.bufs.iter().filter(|b| b.file.is_none()) {
                    o.extend_from_slice(b.data());
                }
            }
        }
    })),
    prefix!("arg_", |cy, r, name, o| cy
        .requests
        .get(r)
        .and_then(|r| arg(&r.args, name.as_bytes()))
        .map(|v| o.extend_from_slice(v))
        .is_some()),
    prefix!("http_", |cy, r, name, o| cy
        .requests
        .get(r)
        .and_then(|r| {
            let want: Vec<u8> = name.bytes().map(|b| if b == b'_' { b'-' } else { b }).collect();
            let want = std::str::from_utf8(&want).ok()?.to_string();
            r.header(&want).map(|v| o.extend_from_slice(v))
        })
        .is_some()),
    prefix!("sent_http_", |cy, r, name, o| cy
        .requests
        .get(r)
        .and_then(|r| {
            let want: String = name.chars().map(|c| if c == '_' { '-' } else { c }).collect();
            let ho = &r.headers_out;
            let v: Option<String> = match want.as_str() {
                "content-type" => ho.content_type.clone(),
                "content-length" => ho.content_length_n.map(|n| n.to_string()),
                "location" => ho.location.clone(),
                "last-modified" => ho.last_modified.clone(),
                "connection" => Some(if r.keepalive { "keep-alive".into() } else { "close".into() }),
                "transfer-encoding" => r.chunked.then(|| "chunked".into()),
                _ => ho.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(&want)).map(|(_, v)| v.clone()),
            };
            v.map(|v| o.extend_from_slice(v.as_bytes()))
        })
        .is_some()),
    prefix!("cookie_", |cy, r, name, o| cy
        .requests
        .get(r)
        .and_then(|r| {
            let c = r.header("cookie")?;
            c.split(|&b| b == b';').find_map(|kv| {
                let kv = kv.trim_ascii();
                let eq = kv.iter().position(|&b| b == b'=')?;
                kv[..eq].eq_ignore_ascii_case(name.as_bytes()).then(|| o.extend_from_slice(&kv[eq + 1..]))
            })
        })
        .is_some()),
];

fn with_r(cy: &Cycle, r: RequestId, f: impl FnOnce(&super::request::Request)) -> bool {
    match cy.requests.get(r) {
        Some(r) => {
            f(r);
            true
        }
        None => false,
    }
}

fn with_c(cy: &Cycle, r: RequestId, f: impl FnOnce(&crate::http::cycle::Connection)) -> bool {
    match cy.requests.get(r).and_then(|r| cy.ev.conns.get(r.connection)) {
        Some(c) => {
            f(c);
            true
        }
        None => false,
    }
}

fn with_rc(
    cy: &Cycle,
    r: RequestId,
    f: impl FnOnce(&super::request::Request, &crate::http::cycle::Connection),
) -> bool {
    match cy.requests.get(r).and_then(|r| cy.ev.conns.get(r.connection).map(|c| (r, c))) {
        Some((r, c)) => {
            f(r, c);
            true
        }
        None => false,
    }
}

/// Finds `name=value` in a query string. nginx: `ngx_http_arg()`.
pub fn arg<'a>(args: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    args.split(|&b| b == b'&').find_map(|kv| {
        let eq = kv.iter().position(|&b| b == b'=').unwrap_or(kv.len());
        kv[..eq].eq_ignore_ascii_case(name).then(|| if eq < kv.len() { &kv[eq + 1..] } else { &kv[eq..] })
    })
}
