//! The error log: nginx's levels and line format over the `log` crate.
//!
//! nginx: `ngx_log_error_core()`, `ngx_log_set_log()`, `ngx_reopen_files()` (src/core/ngx_log.c,
//! src/core/ngx_cycle.c).
//!
//! Lines look like nginx's: `2026/11/22 10:00:00 [error] 4242#1: *5 upstream timed out ...`.
//! Before the configuration is read, messages go to stderr as `rginx: [emerg] ...` (nginx's
//! `ngx_log_stderr`).
//!
//! Differs from nginx:
//! - the `log` crate has five levels; nginx has eight. `error!`/`warn!`/`info!`/`debug!` print as
//!   `error`/`warn`/`info`/`debug`, and a `target` of `"emerg"`, `"alert"`, `"crit"` or `"notice"`
//!   prints that nginx level instead (see the `ngx_log!` macro).
//! - one error log per process (the main-level `error_log`); http/server-level `error_log` are not
//!   in rginx's subset.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

/// nginx's log levels, most severe first. nginx: `ngx_log_error` levels (NGX_LOG_EMERG...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// NGX_LOG_EMERG
    Emerg,
    /// NGX_LOG_ALERT
    Alert,
    /// NGX_LOG_CRIT
    Crit,
    /// NGX_LOG_ERR
    Error,
    /// NGX_LOG_WARN
    Warn,
    /// NGX_LOG_NOTICE
    Notice,
    /// NGX_LOG_INFO
    Info,
    /// NGX_LOG_DEBUG
    Debug,
}

impl Level {
    /// Parses an `error_log` level name.
    pub fn parse(s: &str) -> Option<Level> {
        Some(match s {
            "emerg" => Level::Emerg,
            "alert" => Level::Alert,
            "crit" => Level::Crit,
            "error" => Level::Error,
            "warn" => Level::Warn,
            "notice" => Level::Notice,
            "info" => Level::Info,
            "debug" => Level::Debug,
            _ => return None,
        })
    }
    fn name(self) -> &'static str {
        match self {
            Level::Emerg => "emerg",
            Level::Alert => "alert",
            Level::Crit => "crit",
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Notice => "notice",
            Level::Info => "info",
            Level::Debug => "debug",
        }
    }
    fn of(r: &log::Record<'_>) -> Level {
        match r.target() {
            "emerg" => return Level::Emerg,
            "alert" => return Level::Alert,
            "crit" => return Level::Crit,
            "notice" => return Level::Notice,
            _ => {}
        }
        match r.level() {
            log::Level::Error => Level::Error,
            log::Level::Warn => Level::Warn,
            log::Level::Info => Level::Info,
            _ => Level::Debug,
        }
    }
    fn filter(self) -> log::LevelFilter {
        match self {
            Level::Debug => log::LevelFilter::Debug,
            Level::Info | Level::Notice => log::LevelFilter::Info,
            Level::Warn => log::LevelFilter::Warn,
            _ => log::LevelFilter::Error,
        }
    }
}

/// Logs at an nginx level: `ngx_log!(Crit, "...")`. nginx: `ngx_log_error(NGX_LOG_CRIT, ...)`.
#[macro_export]
macro_rules! ngx_log {
    (Emerg, $($a:tt)*) => { log::error!(target: "emerg", $($a)*) };
    (Alert, $($a:tt)*) => { log::error!(target: "alert", $($a)*) };
    (Crit, $($a:tt)*) => { log::error!(target: "crit", $($a)*) };
    (Notice, $($a:tt)*) => { log::info!(target: "notice", $($a)*) };
}

enum Sink {
    Stderr,
    File(PathBuf, File),
}

struct ErrorLog {
    sink: Mutex<Sink>,
    level: Mutex<Level>,
}

static LOG: OnceLock<ErrorLog> = OnceLock::new();

thread_local! {
    /// The worker number printed after the pid (`pid#tid` in nginx).
    static WORKER: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Names the current thread's worker in log lines.
pub fn set_worker(n: usize) {
    WORKER.with(|w| w.set(n));
}

impl log::Log for ErrorLog {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.target().starts_with("rginx") || !m.target().contains("::")
    }
    fn log(&self, r: &log::Record<'_>) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let level = Level::of(r);
        if level > *self.level.lock().unwrap_or_else(|e| e.into_inner()) {
            return;
        }
        let t = crate::core::times::Times::new();
        let line = format!(
            "{} [{}] {}#{}: {}\n",
            t.err_log_time,
            level.name(),
            std::process::id(),
            WORKER.with(|w| w.get()),
            r.args()
        );
        let mut sink = self.sink.lock().unwrap_or_else(|e| e.into_inner());
        match &mut *sink {
            Sink::Stderr => {
                let _ = std::io::stderr().write_all(line.as_bytes());
            }
            Sink::File(_, f) => {
                let _ = f.write_all(line.as_bytes());
            }
        }
    }
    fn flush(&self) {}
}

fn global() -> &'static ErrorLog {
    LOG.get_or_init(|| ErrorLog { sink: Mutex::new(Sink::Stderr), level: Mutex::new(Level::Notice) })
}

/// Installs the logger writing to stderr (before the config is read). nginx: `ngx_log_init()`.
pub fn init() {
    let g = global();
    if log::set_logger(g).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
    }
}

fn open(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// Points the error log at `path` ("stderr" allowed) with `level`.
/// nginx: `ngx_log_set_log()` + opening the file in `ngx_init_cycle()`.
pub fn set_error_log(path: &str, level: Level) -> std::io::Result<()> {
    let g = global();
    let sink = if path == "stderr" {
        Sink::Stderr
    } else {
        let p = PathBuf::from(path);
        let f = open(&p)?;
        Sink::File(p, f)
    };
    *g.sink.lock().unwrap_or_else(|e| e.into_inner()) = sink;
    *g.level.lock().unwrap_or_else(|e| e.into_inner()) = level;
    log::set_max_level(level.filter());
    Ok(())
}

/// Reopens the error log file (USR1). nginx: `ngx_reopen_files()`.
pub fn reopen() {
    let g = global();
    let mut sink = g.sink.lock().unwrap_or_else(|e| e.into_inner());
    if let Sink::File(p, f) = &mut *sink {
        if let Ok(nf) = open(p) {
            *f = nf;
        }
    }
}

/// Prints `rginx: [LEVEL] MSG` on stderr, nginx's `ngx_log_stderr()` shape used for start-up and
/// configuration errors, and copies it to the error log when that is a file.
pub fn stderr(level: Level, msg: &str) {
    eprintln!("rginx: [{}] {}", level.name(), msg);
    let g = global();
    let to_file = matches!(&*g.sink.lock().unwrap_or_else(|e| e.into_inner()), Sink::File(..));
    if to_file {
        match level {
            Level::Emerg => ngx_log!(Emerg, "{}", msg),
            Level::Alert => ngx_log!(Alert, "{}", msg),
            _ => log::error!("{}", msg),
        }
    }
}

/// "2: No such file or directory", nginx's errno rendering.
/// nginx: `ngx_log_errno()`.
pub fn os_err(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => {
            let s = e.to_string();
            let msg = s.split(" (os error").next().unwrap_or(&s).to_string();
            format!("{n}: {msg}")
        }
        None => e.to_string(),
    }
}
