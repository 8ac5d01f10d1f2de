//! The proxy module's location configuration: what the directives set, and how a location
//! inherits and completes it into the settings its requests share.
//!
//! nginx: src/http/modules/ngx_http_proxy_module.c — `ngx_http_proxy_loc_conf_t`,
//! `ngx_http_proxy_create_loc_conf()`, `ngx_http_proxy_merge_loc_conf()`,
//! `ngx_http_proxy_init_headers()`, `ngx_http_proxy_headers[]`, `ngx_http_proxy_hide_headers[]`.
//!
//! Differs from nginx:
//! - unset is `None` (nginx: `NGX_CONF_UNSET`), and the merged result is built once per
//!   location as `Arc`s (`ProxyShared`, `UpstreamConf`); a worker's recycled upstream
//!   contexts hold a reference, replaced only when a request is for another location.
//! - the header list is kept as (name, complex value) pairs evaluated per request; nginx
//!   compiles it into a script with a hash of the names.

use std::sync::Arc;

use super::header_script::HeaderScript;
use super::ProxyModule;
use crate::http::variables::ComplexValue;
use crate::http::Confs;
use crate::upstream::conf::UpstreamConf;

/// The parsed `proxy_pass` URL. nginx: `plcf->url`, `plcf->vars`, `plcf->location`.
#[derive(Clone, Debug)]
pub struct ProxyPass {
    /// The URL as written ("http://b:8080/x/").
    pub url: String,
    /// `$proxy_host`: "host" or "host:port" (port omitted when 80).
    pub host: String,
    /// The URI part, if any ("/x/"): the location prefix is replaced by it.
    pub uri: Option<String>,
    /// Upstream group index.
    pub group: usize,
    /// The location's name (prefix) for the URI replacement.
    pub location: String,
}

/// `proxy_redirect`. nginx: `plcf->redirect` / `plcf->redirects`.
#[derive(Clone, Debug)]
pub enum Redirect {
    /// `proxy_redirect off`.
    Off,
    /// `proxy_redirect default` (and the implicit default).
    Default,
    /// Explicit `FROM TO` pairs (may include the default).
    List(Vec<(String, ComplexValue)>),
}

/// The proxy module's location conf. nginx: `ngx_http_proxy_loc_conf_t`. `None` = unset.
#[derive(Default)]
pub struct ProxyLocConf {
    /// `proxy_pass` (not inherited, as in nginx).
    pub pass: Option<ProxyPass>,
    /// `proxy_set_header`s (inherited as a whole).
    pub set_headers: Option<Vec<(String, ComplexValue)>>,
    /// `proxy_hide_header`s.
    pub hide: Option<Vec<String>>,
    /// `proxy_pass_header`s.
    pub pass_headers: Option<Vec<String>>,
    /// `proxy_http_version` (1000 or 1001).
    pub http_version: Option<u16>,
    /// `proxy_redirect`.
    pub redirect: Option<Redirect>,
    /// Upstream settings as written.
    pub connect_timeout: Option<u64>,
    /// `proxy_send_timeout`.
    pub send_timeout: Option<u64>,
    /// `proxy_read_timeout`.
    pub read_timeout: Option<u64>,
    /// `proxy_buffering`.
    pub buffering: Option<bool>,
    /// `proxy_request_buffering`.
    pub request_buffering: Option<bool>,
    /// `proxy_buffer_size`.
    pub buffer_size: Option<usize>,
    /// `proxy_buffers`.
    pub bufs: Option<(usize, usize)>,
    /// `proxy_busy_buffers_size`.
    pub busy_buffers_size: Option<usize>,
    /// `proxy_max_temp_file_size`.
    pub max_temp_file_size: Option<u64>,
    /// `proxy_temp_file_write_size`.
    pub temp_file_write_size: Option<usize>,
    /// `proxy_temp_path`.
    pub temp_path: Option<String>,
    /// `proxy_next_upstream`.
    pub next_upstream: Option<u32>,
    /// `proxy_next_upstream_tries`.
    pub next_upstream_tries: Option<usize>,
    /// `proxy_next_upstream_timeout`.
    pub next_upstream_timeout: Option<u64>,
    /// `proxy_intercept_errors`.
    pub intercept_errors: Option<bool>,
    /// The merged settings handed to the framework.
    pub upstream: Option<Arc<UpstreamConf>>,
    /// The merged header list: (name, value) to send, in nginx's order.
    pub headers: Option<Arc<Vec<(String, ComplexValue)>>>,
    /// Everything a request of this location needs, shared by its requests (a recycled
    /// context keeps its reference from one request to the next).
    pub shared: Option<Arc<ProxyShared>>,
}

/// The per-location proxy settings a request uses. nginx: the `plcf` a request reads through
/// `ngx_http_get_module_loc_conf()`.
#[derive(Debug)]
pub struct ProxyShared {
    /// `proxy_pass`.
    pub(super) pass: ProxyPass,
    /// The headers to send, `proxy_set_header`s merged with nginx's defaults.
    pub(super) headers: Arc<Vec<(String, ComplexValue)>>,
    /// `headers` compiled: what `create_request` appends.
    pub(super) script: HeaderScript,
    /// `proxy_http_version` (1000 or 1001).
    pub(super) http_version: u16,
    /// `proxy_redirect` (`Default` when unset).
    pub(super) redirect: Redirect,
}

/// nginx: `ngx_http_proxy_hide_headers[]` (the mytest module hides these too, as the seed's
/// `merge_loc_conf` does).
pub const HIDE_HEADERS: &[&str] = &[
    "date",
    "server",
    "x-pad",
    "x-accel-expires",
    "x-accel-redirect",
    "x-accel-limit-rate",
    "x-accel-buffering",
    "x-accel-charset",
];

/// nginx: `ngx_http_proxy_headers[]` (values resolved in `create_request`).
const DEFAULT_HEADERS: &[(&str, &str)] = &[
    ("Host", "$proxy_host"),
    ("Connection", "close"),
    ("Content-Length", ""),
    ("Transfer-Encoding", ""),
    ("TE", ""),
    ("Keep-Alive", ""),
    ("Expect", ""),
    ("Upgrade", ""),
];

/// nginx: `ngx_http_proxy_merge_loc_conf()`: the unset settings inherited from the enclosing
/// level, the buffer sizes checked, and the merged result built for the requests.
pub(super) fn merge_loc_conf(prev: &Confs, conf: &mut Confs) -> Result<(), String> {
    let Some(p) = prev.get::<ProxyLocConf>() else {
        return Ok(());
    };
    let Some(c) = conf.get_mut::<ProxyLocConf>() else {
        return Ok(());
    };
    inherit(c, p);
    let u = upstream_conf(c)?;
    c.upstream = Some(Arc::new(u));
    let headers = Arc::new(merge_headers(c.set_headers.as_deref().unwrap_or(&[])));
    c.shared = c.pass.clone().map(|pass| {
        Arc::new(ProxyShared {
            script: HeaderScript::compile(&headers, &pass.host),
            pass,
            headers: headers.clone(),
            http_version: c.http_version.unwrap_or(1000),
            redirect: c.redirect.clone().unwrap_or(Redirect::Default),
        })
    });
    c.headers = Some(headers);
    Ok(())
}

/// Every setting left unset takes the enclosing level's (`proxy_pass` is not inherited).
/// nginx: the `ngx_conf_merge_*_value()` calls.
fn inherit(c: &mut ProxyLocConf, p: &ProxyLocConf) {
    macro_rules! inherit {
        ($($f:ident),*) => { $( if c.$f.is_none() { c.$f = p.$f.clone(); } )* };
    }
    inherit!(
        set_headers,
        hide,
        pass_headers,
        http_version,
        redirect,
        connect_timeout,
        send_timeout,
        read_timeout,
        buffering,
        request_buffering,
        buffer_size,
        bufs,
        busy_buffers_size,
        max_temp_file_size,
        temp_file_write_size,
        temp_path,
        next_upstream,
        next_upstream_tries,
        next_upstream_timeout,
        intercept_errors
    );
}

/// The framework's settings, defaults filled in, buffer sizes checked as nginx checks them.
fn upstream_conf(c: &ProxyLocConf) -> Result<UpstreamConf, String> {
    let d = UpstreamConf::default();
    let buffer_size = c.buffer_size.unwrap_or(d.buffer_size);
    let bufs = c.bufs.unwrap_or(d.bufs);
    let busy = c.busy_buffers_size.unwrap_or(buffer_size.max(bufs.1) * 2);
    if bufs.0 < 2 {
        return Err("there must be at least 2 \"proxy_buffers\"".into());
    }
    if busy < buffer_size.max(bufs.1) {
        return Err("\"proxy_busy_buffers_size\" must be equal to or greater than the maximum of the value of \"proxy_buffer_size\" and one of the \"proxy_buffers\"".into());
    }
    if busy > (bufs.0 - 1) * bufs.1 {
        return Err(
            "\"proxy_busy_buffers_size\" must be less than the size of all \"proxy_buffers\" minus one buffer".into()
        );
    }
    let mut hide: Vec<String> = HIDE_HEADERS.iter().map(|s| s.to_string()).collect();
    if let Some(ph) = &c.pass_headers {
        hide.retain(|h| !ph.contains(h));
    }
    hide.extend(c.hide.clone().unwrap_or_default());
    Ok(UpstreamConf {
        connect_timeout: c.connect_timeout.unwrap_or(d.connect_timeout),
        send_timeout: c.send_timeout.unwrap_or(d.send_timeout),
        read_timeout: c.read_timeout.unwrap_or(d.read_timeout),
        buffering: c.buffering.unwrap_or(true),
        request_buffering: c.request_buffering.unwrap_or(true),
        buffer_size,
        bufs,
        busy_buffers_size: busy,
        max_temp_file_size: c.max_temp_file_size.unwrap_or(d.max_temp_file_size),
        temp_file_write_size: c.temp_file_write_size.unwrap_or(buffer_size.max(bufs.1) * 2),
        temp_path: c.temp_path.clone().map(Into::into).unwrap_or(d.temp_path),
        hide_headers: hide.into(),
        next_upstream: c.next_upstream.unwrap_or(d.next_upstream),
        next_upstream_tries: c.next_upstream_tries.unwrap_or(0),
        next_upstream_timeout: c.next_upstream_timeout.unwrap_or(0),
        intercept_errors: c.intercept_errors.unwrap_or(false),
    })
}

/// The user's `proxy_set_header`s first, then nginx's defaults they do not override.
/// nginx: `ngx_http_proxy_init_headers()`.
fn merge_headers(user: &[(String, ComplexValue)]) -> Vec<(String, ComplexValue)> {
    let mut v: Vec<(String, ComplexValue)> = user.to_vec();
    for (n, val) in DEFAULT_HEADERS {
        if !user.iter().any(|(u, _)| u.eq_ignore_ascii_case(n)) {
            // `$proxy_host` resolves through the proxy module's own variable table.
            let cv = if val.starts_with('$') {
                ComplexValue::compile(val, &[&ProxyModule]).unwrap_or_default()
            } else {
                ComplexValue::literal(val)
            };
            v.push((n.to_string(), cv));
        }
    }
    v
}
