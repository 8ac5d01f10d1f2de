//! The top of the program: command line, master, workers. The only layer that names every
//! other one.
//!
//! nginx: src/core/nginx.c, src/os/unix/ngx_process_cycle.c.
//!
//! Differs from nginx:
//! - workers are threads of one process, not processes (see `worker`), and the master is the
//!   main thread (see `master`).

mod cli;
mod master;
mod worker;

pub use cli::{main, parse_options, Options, VERSION};
pub use master::{local_addr, stop};
pub use worker::WAKE_TOKEN;
