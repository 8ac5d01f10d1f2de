//! The command line: options, `-t`/`-T` testing, `-s` signalling, then the master.
//!
//! nginx: src/core/nginx.c (`main`, `ngx_get_options`, `ngx_signal_process`).
//!
//! Differs from nginx:
//! - `-s` reads the pid file and sends the signal itself; nginx first builds a whole cycle.
//! - a pid of 0 in the pid file is refused (see `pid_number`); nginx 1.22 signals its own
//!   process group.

use std::io;
use std::path::PathBuf;

use crate::conf::{self, Conf, CoreModule, LoadOpts};
use crate::core::log::{self as rlog, os_err, Level};
use crate::core::times;
use crate::http::HttpBlock;
use crate::http::HttpModule;
use crate::os;

/// The version string. nginx: `NGINX_VER`.
pub const VERSION: &str = concat!("rginx/", env!("CARGO_PKG_VERSION"));

/// Parsed command line. nginx: `ngx_get_options()`.
#[derive(Debug, Default)]
pub struct Options {
    /// `-p`
    pub prefix: Option<PathBuf>,
    /// `-c`
    pub conf_file: Option<PathBuf>,
    /// `-g`
    pub globals: Option<String>,
    /// `-e`
    pub error_log: Option<String>,
    /// `-t`
    pub test: bool,
    /// `-T`
    pub dump: bool,
    /// `-q`
    pub quiet: bool,
    /// `-s`
    pub signal: Option<String>,
    /// `-v`
    pub version: bool,
    /// `-V`
    pub configure: bool,
    /// `-h` / `-?`
    pub help: bool,
}

/// Parses nginx-style flags: `-t`, `-tq`, `-c FILE`, `-cFILE`, ...
/// nginx: `ngx_get_options()`.
pub fn parse_options(args: &[String]) -> Result<Options, String> {
    let mut o = Options::default();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        let Some(flags) = a.strip_prefix('-') else {
            return Err(format!("invalid option: \"{a}\""));
        };
        if flags.is_empty() {
            return Err(format!("invalid option: \"{a}\""));
        }
        for (pos, ch) in flags.char_indices() {
            match ch {
                '?' | 'h' => o.help = true,
                'v' => o.version = true,
                'V' => {
                    o.version = true;
                    o.configure = true;
                }
                't' => o.test = true,
                'T' => {
                    o.test = true;
                    o.dump = true;
                }
                'q' => o.quiet = true,
                'p' | 'c' | 'g' | 'e' | 's' => {
                    let rest = &flags[pos + ch.len_utf8()..];
                    let val = if !rest.is_empty() {
                        rest.to_string()
                    } else {
                        i += 1;
                        match args.get(i) {
                            Some(v) => v.clone(),
                            None => return Err(format!("option \"-{ch}\" requires {}", arg_name(ch))),
                        }
                    };
                    match ch {
                        'p' => o.prefix = Some(PathBuf::from(val)),
                        'c' => o.conf_file = Some(PathBuf::from(val)),
                        'g' => o.globals = Some(val),
                        'e' => o.error_log = Some(val),
                        _ => match val.as_str() {
                            "stop" | "quit" | "reopen" | "reload" => o.signal = Some(val),
                            _ => return Err(format!("invalid option: \"-s {val}\"")),
                        },
                    }
                    break;
                }
                _ => return Err(format!("invalid option: \"{}\"", &flags[pos..])),
            }
        }
        i += 1;
    }
    Ok(o)
}

fn arg_name(ch: char) -> &'static str {
    match ch {
        'p' => "directory name",
        'c' | 'e' => "file name",
        _ => "parameter",
    }
}

fn usage() {
    eprint!(
        "rginx version: {VERSION}\n\
Usage: rginx [-?hvVtTq] [-s signal] [-p prefix]\n             [-e filename] [-c filename] [-g directives]\n\n\
Options:\n  -?,-h         : this help\n  -v            : show version and exit\n\
  -V            : show version and configure options then exit\n\
  -t            : test configuration and exit\n  -T            : test configuration, dump it and exit\n\
  -q            : suppress non-error messages during configuration testing\n\
  -s signal     : send signal to a master process: stop, quit, reopen, reload\n\
  -p prefix     : set prefix path (default: current directory)\n\
  -e filename   : set error log file (default: logs/error.log)\n\
  -c filename   : set configuration file (default: conf/rginx.conf)\n\
  -g directives : set global directives out of configuration file\n\n"
    );
}

/// The core modules of this build: `http {}` owning the given HTTP modules. Made once per
/// process and kept for its lifetime (nginx: the static `ngx_modules[]`), which is what
/// `'static` says; `main` runs once.
fn core_modules(http: &'static [&'static dyn HttpModule]) -> &'static [&'static dyn CoreModule] {
    let block: &'static HttpBlock = Box::leak(Box::new(HttpBlock { modules: http }));
    Box::leak(Box::new([block as &'static dyn CoreModule]))
}

/// Runs rginx with `args` (without the program name) and the given HTTP modules; returns the
/// exit status. nginx: `main()`.
pub fn main(args: &[String], modules: &'static [&'static dyn HttpModule]) -> i32 {
    // First, before any line is logged: the clock's local time comes from os (see core::times).
    times::set_local_offset(os::sys::local_offset);
    rlog::init();
    let o = match parse_options(args) {
        Ok(o) => o,
        Err(e) => {
            // nginx: `ngx_log_stderr(0, ...)` — a usage error has no level.
            eprintln!("rginx: {e}");
            return 1;
        }
    };
    if o.version {
        eprintln!("rginx version: {VERSION}");
        if o.configure {
            eprintln!("built with Rust (edition 2021), mio + slab");
            eprintln!("configure arguments: --prefix=. --conf-path=conf/rginx.conf");
        }
    }
    if o.help {
        usage();
    }
    if o.version || o.help {
        return 0;
    }
    if let Some(e) = &o.error_log {
        if let Err(err) = rlog::set_error_log(e, Level::Notice) {
            rlog::stderr(Level::Alert, &format!("could not open error log file: open() \"{e}\" failed ({err})"));
        }
    }
    let opts = LoadOpts {
        prefix: o.prefix.clone().unwrap_or_default(),
        conf_file: o.conf_file.clone().unwrap_or_else(|| PathBuf::from("conf/rginx.conf")),
        globals: o.globals.clone(),
        modules: core_modules(modules),
    };
    let shown = conf::full_name(&opts.prefix, &opts.conf_file.to_string_lossy());
    let conf = match conf::load(&opts) {
        Ok(c) => c,
        Err(e) => {
            rlog::stderr(Level::Emerg, &e.to_string());
            if o.test {
                eprintln!("rginx: configuration file {} test failed", shown.display());
            }
            return 1;
        }
    };
    if o.test {
        if !o.quiet {
            eprintln!("rginx: the configuration file {} syntax is ok", shown.display());
            eprintln!("rginx: configuration file {} test is successful", shown.display());
        }
        if o.dump {
            for (path, text) in &conf.files {
                println!("# configuration file {}:", path.display());
                print!("{text}");
                if !text.ends_with('\n') {
                    println!();
                }
                println!();
            }
        }
        return 0;
    }
    if let Some(s) = &o.signal {
        return signal_process(&conf, s);
    }
    super::master::run_master(conf, opts, o.error_log.is_some())
}

/// Sends a signal to the running instance. nginx: `ngx_signal_process()`.
fn signal_process(conf: &Conf, name: &str) -> i32 {
    let pidfile = &conf.main.pid;
    // nginx reads NGX_INT64_LEN + 2 bytes: a pid and its line end, whatever the file holds.
    let mut head = Vec::with_capacity(22);
    let read = std::fs::File::open(pidfile).and_then(|f| io::Read::read_to_end(&mut io::Read::take(f, 22), &mut head));
    if let Err(e) = read {
        rlog::stderr(Level::Error, &format!("open() \"{}\" failed ({})", pidfile.display(), os_err(&e)));
        return 1;
    }
    let text = String::from_utf8_lossy(&head);
    let Some(pid) = pid_number(&text) else {
        let shown = text.trim_end_matches(['\r', '\n']);
        rlog::stderr(Level::Error, &format!("invalid PID number \"{shown}\" in \"{}\"", pidfile.display()));
        return 1;
    };
    let sig = match name {
        "stop" => libc::SIGTERM,
        "quit" => libc::SIGQUIT,
        "reopen" => libc::SIGUSR1,
        _ => libc::SIGHUP,
    };
    if let Err(e) = os::sys::kill(pid, sig) {
        rlog::stderr(Level::Alert, &format!("kill({pid}, {sig}) failed ({})", os_err(&e)));
        return 1;
    }
    0
}

/// The pid in a pid file's text: digits only after nginx's trailing CR/LF are cut, and greater
/// than 0 — `kill(0)` would signal our own process group and `kill(-1)` every process we may
/// signal. nginx: the `ngx_atoi()` check in `ngx_signal_process()`.
///
/// Differs from nginx: nginx 1.22 takes "0" (ngx_atoi accepts it) and signals its own process
/// group; rginx refuses it as an invalid PID number.
fn pid_number(text: &str) -> Option<i32> {
    let digits = text.trim_end_matches(['\r', '\n']);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<i32>().ok().filter(|&pid| pid > 0)
}
