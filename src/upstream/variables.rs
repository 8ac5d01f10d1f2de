//! `$upstream_addr`, `$upstream_status`, `$upstream_*_time`, `$upstream_http_NAME`, ...:
//! one value per try, joined with ", " as nginx does.
//!
//! nginx: `ngx_http_upstream_vars[]` and `ngx_http_upstream_addr_variable()` et al.
//! (src/http/ngx_http_upstream.c).

use std::io::Write;

use super::{Upstream, UpstreamId, UpstreamState, UpstreamWorker};
use crate::http::variables::Vars;
use crate::http::VariableDef;

/// The request's upstream: handed over directly inside a callback (`UpstreamCx::vars`), else
/// found in the worker's table by `r.upstream`. nginx: `r->upstream`.
pub fn upstream<'a>(v: &Vars<'a>) -> Option<&'a Upstream> {
    if let Some(u) = v.upstream {
        return u.downcast_ref::<Upstream>();
    }
    let uid: UpstreamId = v.r.upstream?.typed();
    v.http?.hot_ref::<UpstreamWorker>()?.ctxs.get(uid).map(|c| &c.u)
}

fn each(v: &Vars<'_>, out: &mut Vec<u8>, f: impl Fn(&UpstreamState, &mut Vec<u8>)) -> bool {
    let Some(u) = upstream(v) else { return false };
    let live = u.state.peer.is_some().then_some(&u.state);
    let mut first = true;
    for s in u.states.iter().chain(live) {
        if !first {
            out.extend_from_slice(b", ");
        }
        first = false;
        f(s, out);
    }
    !first
}

fn msec(out: &mut Vec<u8>, v: Option<u64>) {
    match v {
        Some(ms) => {
            let _ = write!(out, "{}.{:03}", ms / 1000, ms % 1000);
        }
        None => out.push(b'-'),
    }
}

/// nginx: `ngx_http_upstream_vars[]`.
pub static UPSTREAM_VARIABLES: &[VariableDef] = &[
    VariableDef {
        name: "upstream_addr",
        prefix: false,
        get: |v, _, o| each(v, o, |s, o| o.extend_from_slice(s.peer.as_deref().unwrap_or("").as_bytes())),
    },
    VariableDef {
        name: "upstream_status",
        prefix: false,
        get: |v, _, o| {
            each(v, o, |s, o| {
                if s.status > 0 {
                    let _ = write!(o, "{}", s.status);
                } else {
                    o.push(b'-')
                }
            })
        },
    },
    VariableDef {
        name: "upstream_connect_time",
        prefix: false,
        get: |v, _, o| each(v, o, |s, o| msec(o, s.connect_time)),
    },
    VariableDef {
        name: "upstream_header_time",
        prefix: false,
        get: |v, _, o| each(v, o, |s, o| msec(o, s.header_time)),
    },
    VariableDef {
        name: "upstream_response_time",
        prefix: false,
        get: |v, _, o| each(v, o, |s, o| msec(o, Some(s.response_time))),
    },
    VariableDef {
        name: "upstream_response_length",
        prefix: false,
        get: |v, _, o| {
            each(v, o, |s, o| {
                let _ = write!(o, "{}", s.response_length);
            })
        },
    },
    VariableDef {
        name: "upstream_bytes_received",
        prefix: false,
        get: |v, _, o| {
            each(v, o, |s, o| {
                let _ = write!(o, "{}", s.bytes_received);
            })
        },
    },
    VariableDef {
        name: "upstream_bytes_sent",
        prefix: false,
        get: |v, _, o| {
            each(v, o, |s, o| {
                let _ = write!(o, "{}", s.bytes_sent);
            })
        },
    },
    VariableDef {
        name: "upstream_http_",
        prefix: true,
        get: |v, name, o| {
            let Some(u) = upstream(v) else { return false };
            let want: String = name.chars().map(|c| if c == '_' { '-' } else { c }).collect();
            match u.headers_in.get(want.as_bytes()) {
                Some(h) => {
                    o.extend_from_slice(h);
                    true
                }
                None => false,
            }
        },
    },
];
