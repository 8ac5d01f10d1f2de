//! The `rginx` binary: nginx's command line over the `rginx` library.
//!
//! nginx: src/core/nginx.c (`main`).

#![forbid(unsafe_code)]

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = rginx::process::main(&args, rginx::modules::HTTP_MODULES);
    std::process::exit(code);
}
