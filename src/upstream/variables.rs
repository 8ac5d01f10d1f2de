//! `$upstream_addr`, `$upstream_status`, `$upstream_*_time`, `$upstream_http_NAME`, ...:
//! one value per try, joined with ", " as nginx does.
//!
//! nginx: `ngx_http_upstream_vars[]` and `ngx_http_upstream_addr_variable()` et al.
//! (src/http/ngx_http_upstream.c).

use std::io::Write;

use super::{u_ref, UpstreamState};
use crate::http::cycle::Cycle;
use crate::http::cycle::RequestId;
use crate::http::VariableDef;

fn each(cy: &Cycle, r: RequestId, out: &mut Vec<u8>, f: impl Fn(&UpstreamState, &mut Vec<u8>)) -> bool {
    let Some(u) = u_ref(cy, r) else { return false };
    let live = (!u.state.peer.is_empty()).then_some(&u.state);
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
        get: |cy, r, _, o| each(cy, r, o, |s, o| o.extend_from_slice(s.peer.as_bytes())),
    },
    VariableDef {
        name: "upstream_status",
        prefix: false,
        get: |cy, r, _, o| {
            each(cy, r, o, |s, o| {
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
        get: |cy, r, _, o| each(cy, r, o, |s, o| msec(o, s.connect_time)),
    },
    VariableDef {
        name: "upstream_header_time",
        prefix: false,
        get: |cy, r, _, o| each(cy, r, o, |s, o| msec(o, s.header_time)),
    },
    VariableDef {
        name: "upstream_response_time",
        prefix: false,
        get: |cy, r, _, o| each(cy, r, o, |s, o| msec(o, Some(s.response_time))),
    },
    VariableDef {
        name: "upstream_response_length",
        prefix: false,
        get: |cy, r, _, o| {
            each(cy, r, o, |s, o| {
                let _ = write!(o, "{}", s.response_length);
            })
        },
    },
    VariableDef {
        name: "upstream_bytes_received",
        prefix: false,
        get: |cy, r, _, o| {
            each(cy, r, o, |s, o| {
                let _ = write!(o, "{}", s.bytes_received);
            })
        },
    },
    VariableDef {
        name: "upstream_bytes_sent",
        prefix: false,
        get: |cy, r, _, o| {
            each(cy, r, o, |s, o| {
                let _ = write!(o, "{}", s.bytes_sent);
            })
        },
    },
    VariableDef {
        name: "upstream_http_",
        prefix: true,
        get: |cy, r, name, o| {
            let Some(u) = u_ref(cy, r) else { return false };
            let want: String = name.chars().map(|c| if c == '_' { '-' } else { c }).collect();
            match u.headers_in.get(&want) {
                Some(v) => {
                    o.extend_from_slice(v.as_bytes());
                    true
                }
                None => false,
            }
        },
    },
];
