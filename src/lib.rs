//! rginx: nginx's event-driven architecture ported to Rust, as a teaching reverse proxy.
//!
//! The crate mirrors nginx's `src/` tree; each module says which nginx file it teaches.
//!
//! | module | what it is | nginx |
//! | --- | --- | --- |
//! | [`core`] | buffers, ids, clock, error log, temp files, step results: names no other layer | src/core/ |
//! | [`os`] | the system calls std does not wrap (`kill`, `localtime_r`): the only `unsafe` | src/os/unix/ |
//! | [`event`] | the reactor, generic over its world: connections, mio poll, hashed timer wheel, posted queues, accept, connect, socket I/O | src/event/ |
//! | [`conf`] | nginx.conf parser and main directives; core modules' blocks without naming them | src/core/ngx_conf_file.c |
//! | [`http`] | the HTTP server and the worker's world (`http::cycle::Cycle`): requests, phases, filters, variables, request bodies, subrequests | src/http/ |
//! | [`upstream`] | talking to other servers without blocking: the upstream framework | src/http/ngx_http_upstream.c |
//! | [`modules`] | modules on top: return, stub_status, access log, proxy, auth_request, addition, mirror, the seeds' mytest and stock_quote | src/http/modules/ |
//! | [`process`] | the top: command line, master (signals, pid file, reload), worker threads | src/core/nginx.c, src/os/unix/ngx_process_cycle.c |
//!
//! Each folder uses only the folders above it in this table (`tests/layers.rs`). Start with
//! `docs/README.md` for the guided tour.

#![deny(missing_docs)]
// `unsafe` lives in one file, `os::sys`, the only module that allows it (src/os/mod.rs).
#![deny(unsafe_code)]

pub mod conf;
pub mod core;
pub mod event;
pub mod http;
pub mod modules;
pub mod os;
pub mod process;
pub mod upstream;
