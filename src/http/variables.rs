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
//! - a getter receives `Vars`, a read-only view of the request (nginx passes `r` and the
//!   getter reaches anything through it). The view is built from the whole world (`Vars::of`:
//!   the access log, `return`) or from inside an upstream callback, which holds the request
//!   and its upstream but not the world (`UpstreamCx::vars`), so `$upstream_*` and `$proxy_*`
//!   resolve in both places.

use std::any::Any;
use std::io::Write;

use super::request::Request;
use super::{HttpModule, HttpWorker, VariableDef};
use crate::core::times::Times;
use crate::http::cycle::{Connection, Cycle, RequestId};

/// What a variable getter may read: the request, its client connection, the clock, and the
/// state of the module that owns the variable. Read-only: evaluating a value never changes
/// the request. nginx: the `r` every `ngx_http_variable_t::get_handler` receives.
#[derive(Clone, Copy)]
pub struct Vars<'a> {
    /// The request. nginx: `r`.
    pub r: &'a Request,
    /// Its client connection (addresses, counters). nginx: `r->connection`.
    pub c: &'a Connection,
    /// The cached clock (`$msec`, `$time_local`, `$request_time`). nginx: `ngx_cached_*`.
    pub times: &'a Times,
    /// The modules' per-worker state, when built from the whole world (`Vars::of`): a module's
    /// getter finds its own state there by type (`$upstream_*` find the request's upstream).
    pub http: Option<&'a HttpWorker>,
    /// The upstream being driven, when built inside one of its callbacks: its context is
    /// borrowed out of `http` then, so it is handed over directly. Typed `Any` because
    /// `upstream/` sits above `http/`; only `upstream/` downcasts it. nginx: `r->upstream`.
    pub upstream: Option<&'a dyn Any>,
}

impl<'a> Vars<'a> {
    /// The view of request `rid` from the whole world; `None` if the request or its
    /// connection is gone.
    pub fn of(cy: &'a Cycle, rid: RequestId) -> Option<Vars<'a>> {
        let r = cy.requests.get(rid)?;
        let c = cy.ev.conns.get(r.connection)?;
        Some(Vars { r, c, times: &cy.ev.times, http: Some(&cy.http), upstream: None })
    }
}

/// One piece of a complex value.
#[derive(Clone)]
enum Part {
    Lit(Vec<u8>),
    /// A variable, its prefix variable's suffix, and whether the access log writes it
    /// without the escaping scan (`LOG_PLAIN`).
    Var(&'static VariableDef, String, bool),
}

/// The variables nginx's log module writes with its own code, never escaped (their text is
/// digits, '.', '-', ':', '+', '/', letters and a space: nothing to escape). nginx:
/// `ngx_http_log_vars[]`.
const LOG_PLAIN: [&str; 9] = [
    "pipe",
    "time_local",
    "time_iso8601",
    "msec",
    "request_time",
    "status",
    "bytes_sent",
    "body_bytes_sent",
    "request_length",
];

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
            // a module's variable of the same name keeps the escaping
            let core = CORE_VARIABLES.iter().any(|d| std::ptr::eq(d, def));
            let plain = core && LOG_PLAIN.contains(&def.name);
            parts.push(Part::Var(def, param, plain));
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

    /// The length of the literal parts: the whole length of a value without variables, the
    /// least length of any other (a size for the buffer it is evaluated into).
    pub fn len_hint(&self) -> usize {
        self.parts.iter().map(|p| if let Part::Lit(l) = p { l.len() } else { 0 }).sum()
    }

    /// The value with every use of `var` replaced by `value`: for a variable whose value is
    /// known where the complex value is used (`$proxy_host` in a location's own
    /// `proxy_set_header`s), so that the line can be written once.
    pub fn substitute(&self, var: &'static VariableDef, value: &[u8]) -> ComplexValue {
        let parts = self
            .parts
            .iter()
            .map(|p| match p {
                Part::Var(d, _, _) if std::ptr::eq(*d, var) => Part::Lit(value.to_vec()),
                p => p.clone(),
            })
            .collect();
        ComplexValue { parts, source: self.source.clone() }
    }

    /// The value's bytes when it has no variables (its literal parts joined).
    pub fn static_bytes(&self) -> Option<Vec<u8>> {
        self.is_static()
            .then(|| self.parts.iter().flat_map(|p| if let Part::Lit(l) = p { &l[..] } else { &[] }).copied().collect())
    }

    /// Whether the value has no variables.
    pub fn is_static(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Lit(_)))
    }

    /// Appends the value; a variable that is not found appends nothing.
    /// nginx: `ngx_http_complex_value()`.
    pub fn eval(&self, v: &Vars<'_>, out: &mut Vec<u8>) {
        for p in &self.parts {
            match p {
                Part::Lit(l) => out.extend_from_slice(l),
                Part::Var(d, param, _) => {
                    (d.get)(v, param, out);
                }
            }
        }
    }

    /// Appends the value as a header value (`proxy_set_header`): like `eval`, then CR, LF and
    /// NUL are written as `%0D`, `%0A`, `%00`, so a variable (`$uri` is percent-decoded) cannot
    /// end the header line and add headers of its own. Returns whether anything was escaped.
    ///
    /// nginx: `ngx_http_complex_value()`; the escaping is rginx's (see `header_filter`).
    pub fn eval_header(&self, v: &Vars<'_>, out: &mut Vec<u8>) -> bool {
        let start = out.len();
        self.eval(v, out);
        if !out[start..].iter().any(|b| matches!(*b, b'\r' | b'\n' | 0)) {
            return false;
        }
        let raw = out.split_off(start);
        super::header_filter::push_header_value(out, &raw)
    }

    /// Appends the value, writing "-" for variables that are not found (access log rule).
    pub fn eval_log(&self, v: &Vars<'_>, out: &mut Vec<u8>) {
        for p in &self.parts {
            match p {
                Part::Lit(l) => out.extend_from_slice(l),
                Part::Var(d, param, plain) => {
                    let start = out.len();
                    if !(d.get)(v, param, out) || out.len() == start {
                        out.push(b'-');
                    } else if !plain {
                        escape_log(out, start);
                    }
                }
            }
        }
    }
}

/// 1 for the bytes the access log escapes: below 0x20, `"`, `\\`, 0x7f and above. A table
/// (nginx: the `escape` bitmap of `ngx_http_log_escape()`): one load per byte of each value.
static LOG_ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = (b < 0x20 || b >= 0x7f || b == b'"' || b == b'\\') as u8;
        i += 1;
    }
    t
};

/// Escapes a variable's bytes the way nginx's `escape=default` does: `"`, `\`, and bytes
/// outside printable ASCII become `\xXX`. nginx: `ngx_http_log_escape()`.
fn escape_log(out: &mut Vec<u8>, from: usize) {
    let plain = |b: u8| LOG_ESCAPE[usize::from(b)] == 0;
    if out.get(from..).unwrap_or(b"").iter().all(|&b| plain(b)) {
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
    var!("uri", |v, _, o| put(o, &v.r.uri)),
    var!("document_uri", |v, _, o| put(o, &v.r.uri)),
    var!("args", |v, _, o| put(o, &v.r.args)),
    var!("query_string", |v, _, o| put(o, &v.r.args)),
    var!("is_args", |v, _, o| put(o, if v.r.args.is_empty() { b"" } else { b"?" })),
    var!("request_uri", |v, _, o| put(o, v.r.unparsed_uri())),
    var!("request_method", |v, _, o| put(o, v.r.method_name())),
    var!("request", |v, _, o| put(o, v.r.request_line())),
    // nginx: `r->http_protocol`: not found before an "H" was seen (HTTP/0.9, a bad method),
    // empty while the line is not complete
    var!("server_protocol", |v, _, o| {
        o.extend_from_slice(v.r.http_protocol());
        v.r.head.http_protocol.is_some()
    }),
    var!("scheme", |_, _, o| put(o, b"http")),
    var!("host", |v, _, o| {
        if v.r.headers_in.host.is_empty() {
            put(o, server_name(v.r))
        } else {
            put(o, &v.r.headers_in.host)
        }
    }),
    var!("server_name", |v, _, o| put(o, server_name(v.r))),
    var!("remote_addr", |v, _, o| {
        if let Some(p) = v.c.peer {
            ip(o, p.ip());
        }
        true
    }),
    var!("remote_port", |v, _, o| {
        if let Some(p) = v.c.peer {
            let _ = write!(o, "{}", p.port());
        }
        true
    }),
    var!("remote_user", |_, _, _| false),
    var!("server_addr", |v, _, o| {
        if let Some(p) = v.c.local {
            ip(o, p.ip());
        }
        true
    }),
    var!("server_port", |v, _, o| {
        if let Some(p) = v.c.local {
            let _ = write!(o, "{}", p.port());
        }
        true
    }),
    var!("connection", |v, _, o| num(o, v.c.number)),
    var!("connection_requests", |v, _, o| num(o, u64::from(v.c.requests))),
    var!("status", |v, _, o| {
        let s = v.r.headers_out.status;
        if s < 100 {
            o.extend_from_slice(if s < 10 { b"00" } else { b"0" }); // nginx's "%03ui"
        }
        num(o, u64::from(s))
    }),
    var!("request_time", |v, _, o| msec(o, v.times.unix_ms.saturating_sub(v.r.start_unix_ms))),
    var!("msec", |v, _, o| msec(o, v.times.unix_ms)),
    var!("time_local", |v, _, o| put(o, v.times.http_log_time.as_bytes())),
    var!("time_iso8601", |v, _, o| put(o, v.times.iso8601.as_bytes())),
    var!("request_length", |v, _, o| num(o, v.r.request_length)),
    var!("body_bytes_sent", |v, _, o| {
        num(o, v.c.sent.saturating_sub(v.r.sent_start).saturating_sub(v.r.header_size))
    }),
    var!("bytes_sent", |v, _, o| num(o, v.c.sent.saturating_sub(v.r.sent_start))),
    var!("pipe", |v, _, o| put(o, if v.r.pipelined { b"p" } else { b"." })),
    var!("content_length", |v, _, o| {
        if let Some(n) = v.r.headers_in.content_length_n {
            let _ = write!(o, "{n}");
        }
        true
    }),
    var!("content_type", |v, _, o| put(o, v.r.header("content-type").unwrap_or(b""))),
    var!("nginx_version", |_, _, o| put(o, b"1.22.1")),
    var!("rginx_version", |_, _, o| put(o, env!("CARGO_PKG_VERSION").as_bytes())),
    var!("pid", |_, _, o| num(o, u64::from(std::process::id()))),
    var!("request_body", |v, _, o| {
        if let Some(rb) = &v.r.request_body {
            if rb.done && rb.temp_file.is_none() {
                for b in rb.bufs.iter().filter(|b| b.file.is_none()) {
                    o.extend_from_slice(b.data());
                }
            }
        }
        true
    }),
    prefix!("arg_", |v, name, o| arg(&v.r.args, name.as_bytes()).map(|a| o.extend_from_slice(a)).is_some()),
    prefix!("http_", |v, name, o| unknown_header(v.r, name).map(|h| o.extend_from_slice(h)).is_some()),
    prefix!("sent_http_", |v, name, o| sent_http(v.r, name, o)),
    prefix!("cookie_", |v, name, o| {
        let Some(c) = v.r.header("cookie") else { return false };
        c.split(|&b| b == b';')
            .find_map(|kv| {
                let kv = kv.trim_ascii();
                let eq = kv.iter().position(|&b| b == b'=')?;
                kv[..eq].eq_ignore_ascii_case(name.as_bytes()).then(|| o.extend_from_slice(&kv[eq + 1..]))
            })
            .is_some()
    }),
];

/// Appends `b`; the variable is found.
fn put(o: &mut Vec<u8>, b: &[u8]) -> bool {
    o.extend_from_slice(b);
    true
}

/// Appends a decimal number; the variable is found. Digits by hand, as nginx's
/// `ngx_sprintf("%uA")`: `write!` goes through `core::fmt`, several times the instructions,
/// and a log line has several numbers.
fn num(o: &mut Vec<u8>, mut n: u64) -> bool {
    let mut d = [0u8; 20];
    let mut i = d.len();
    loop {
        i -= 1;
        d[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    o.extend_from_slice(&d[i..]);
    true
}

/// Appends an address as text: an IPv4 one by hand (nginx keeps `c->addr_text`, made once at
/// accept; rginx makes it when a variable asks), an IPv6 one through `Display`.
fn ip(o: &mut Vec<u8>, a: std::net::IpAddr) {
    match a {
        std::net::IpAddr::V4(a) => {
            // into a stack buffer, then one copy: "255.255.255.255" is 15 bytes
            let mut t = [0u8; 16];
            let mut n = 0;
            for (i, b) in a.octets().into_iter().enumerate() {
                if i > 0 {
                    t[n] = b'.';
                    n += 1;
                }
                for (d, div) in [(b / 100, b >= 100), ((b / 10) % 10, b >= 10), (b % 10, true)] {
                    if div {
                        t[n] = b'0' + d;
                        n += 1;
                    }
                }
            }
            o.extend_from_slice(&t[..n]);
        }
        std::net::IpAddr::V6(a) => {
            let _ = write!(o, "{a}");
        }
    }
}

/// `$http_NAME`: the first request header whose name, lowercased with '-' read as '_', is
/// `name` (already lowercased), compared in place. nginx: `ngx_http_variable_unknown_header()`.
fn unknown_header<'a>(r: &'a Request, name: &str) -> Option<&'a [u8]> {
    let buf = &r.header_in.mem;
    let same = |h: &[u8]| {
        h.len() == name.len()
            && h.iter().zip(name.bytes()).all(|(&c, n)| if c == b'-' { n == b'_' } else { c.to_ascii_lowercase() == n })
    };
    r.head.headers.iter().find(|(n, _)| buf.get(n.clone()).is_some_and(same)).and_then(|(_, v)| buf.get(v.clone()))
}

/// Appends milliseconds as seconds with three decimals ("1.005"); the variable is found.
fn msec(o: &mut Vec<u8>, ms: u64) -> bool {
    let _ = write!(o, "{}.{:03}", ms / 1000, ms % 1000);
    true
}

/// The server's first name ("" when it has none).
fn server_name(r: &Request) -> &[u8] {
    r.srv.core.server_names.first().map(String::as_bytes).unwrap_or(b"")
}

/// `$sent_http_NAME`: the response header as it will be (or was) sent.
fn sent_http(r: &Request, name: &str, o: &mut Vec<u8>) -> bool {
    let want: String = name.chars().map(|c| if c == '_' { '-' } else { c }).collect();
    let ho = &r.headers_out;
    let v: Option<&[u8]> = match want.as_str() {
        "content-type" => ho.content_type(),
        "content-length" => {
            return ho.content_length_n.map(|n| o.extend_from_slice(n.to_string().as_bytes())).is_some();
        }
        "location" => ho.location(),
        "last-modified" => ho.last_modified(),
        "connection" => Some(if r.keepalive { b"keep-alive" } else { b"close" }),
        "transfer-encoding" => r.chunked.then_some(b"chunked"),
        _ => ho.headers().get(want.as_bytes()),
    };
    v.map(|v| o.extend_from_slice(v)).is_some()
}

/// Finds `name=value` in a query string. nginx: `ngx_http_arg()`.
pub fn arg<'a>(args: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    args.split(|&b| b == b'&').find_map(|kv| {
        let eq = kv.iter().position(|&b| b == b'=').unwrap_or(kv.len());
        kv[..eq].eq_ignore_ascii_case(name).then(|| if eq < kv.len() { &kv[eq + 1..] } else { &kv[eq..] })
    })
}
