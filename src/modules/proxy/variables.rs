//! `$proxy_host` and `$proxy_add_x_forwarded_for`.
//!
//! nginx: src/http/modules/ngx_http_proxy_module.c — `ngx_http_proxy_vars[]`,
//! `ngx_http_proxy_host_variable()`, `ngx_http_proxy_add_x_forwarded_for_variable()`.
//!
//! Differs from nginx: `$proxy_host` is read from the request's upstream (`u.resolved.host`),
//! not from the module's per-request context; `$proxy_port` and `$proxy_internal_*` do not
//! exist.

use std::io::Write;

use crate::http::VariableDef;
use crate::upstream::variables::upstream;

/// nginx: `ngx_http_proxy_vars[]`.
pub static PROXY_VARIABLES: &[VariableDef] = &[
    VariableDef {
        name: "proxy_host",
        prefix: false,
        get: |v, _, o| match upstream(v) {
            Some(u) => {
                o.extend_from_slice(u.resolved.host.as_bytes());
                true
            }
            None => false,
        },
    },
    VariableDef {
        name: "proxy_add_x_forwarded_for",
        prefix: false,
        get: |v, _, o| {
            if let Some(x) = v.r.header("x-forwarded-for") {
                o.extend_from_slice(x);
                o.extend_from_slice(b", ");
            }
            if let Some(p) = v.c.peer {
                let _ = write!(o, "{}", p.ip());
            }
            true
        },
    },
];
