//! The error log: nginx's levels, line shape and file, with `env_logger` as the backend.
//!
//! nginx: `ngx_log_error_core()`, `ngx_log_set_log()`, `ngx_reopen_files()` (src/core/ngx_log.c,
//! src/core/ngx_cycle.c).
//!
//! Lines look like nginx's: `2026/11/22 10:00:00 [error] 4242#1: *5 upstream timed out ...`.
//! Before the configuration is read, messages go to stderr as `rginx: [emerg] ...` (nginx's
//! `ngx_log_stderr`).
//!
//! The pieces: `env_logger::Logger` formats each record into its per-thread buffer with
//! [`nginx_line`] and writes it in one `write_all` to its `Target::Pipe`, which is
//! [`ErrorLogFile`], a handle on the one shared sink (the file or stderr) that `error_log`, `-e`
//! and USR1 swap underneath it. [`ErrorLog`], the `log::Log` that is installed, decides which
//! records reach env_logger: the configured `error_log` level, or `RUST_LOG` (env_logger's
//! filter syntax, read once at start) where it lets more through. `RUST_LOG` only ever raises
//! the level: `RUST_LOG=debug` with `error_log ... error;` shows the debug lines of
//! `http::trace`, `RUST_LOG=error` with `error_log ... info;` still shows info lines.
//!
//! Differs from nginx:
//! - the `log` crate has five levels; nginx has eight. `error!`/`warn!`/`info!`/`debug!` print as
//!   `error`/`warn`/`info`/`debug`, and a `target` of `"emerg"`, `"alert"`, `"crit"` or `"notice"`
//!   prints that nginx level instead (see the `ngx_log!` macro).
//! - one error log per process (the main-level `error_log`); http/server-level `error_log` are not
//!   in rginx's subset.
//! - `RUST_LOG` is rginx's own addition (nginx raises the level only through `error_log`).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
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

const LEVELS: [Level; 8] =
    [Level::Emerg, Level::Alert, Level::Crit, Level::Error, Level::Warn, Level::Notice, Level::Info, Level::Debug];

impl Level {
    /// Parses an `error_log` level name.
    pub fn parse(s: &str) -> Option<Level> {
        LEVELS.into_iter().find(|l| l.name() == s)
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
    /// The nginx level of a record: its target when that names one, else its `log` level.
    fn of(m: &log::Metadata<'_>) -> Level {
        match m.target() {
            "emerg" => return Level::Emerg,
            "alert" => return Level::Alert,
            "crit" => return Level::Crit,
            "notice" => return Level::Notice,
            _ => {}
        }
        match m.level() {
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

/// Where lines go. nginx: the `ngx_open_file_t` behind `cycle->new_log`.
enum Sink {
    Stderr,
    File(PathBuf, File),
}

/// The installed logger: rginx's filter in front of env_logger. nginx: `ngx_log_t`'s
/// `log_level` check in `ngx_log_error()`.
struct ErrorLog {
    /// The configured `error_log` level, as an index into [`LEVELS`].
    level: AtomicU8,
    /// `RUST_LOG`, parsed by env_logger's own filter crate; `None` when unset or empty.
    rust_log: Option<env_filter::Filter>,
    /// Formats and writes: the backend.
    backend: env_logger::Logger,
}

static SINK: Mutex<Sink> = Mutex::new(Sink::Stderr);
static LOG: OnceLock<ErrorLog> = OnceLock::new();

thread_local! {
    /// The worker number printed after the pid (`pid#tid` in nginx).
    static WORKER: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Names the current thread's worker in log lines.
pub fn set_worker(n: usize) {
    WORKER.with(|w| w.set(n));
}

/// env_logger's `Target::Pipe`: every write goes to the current [`Sink`], so that
/// `set_error_log` and `reopen` can swap the file without rebuilding the backend. env_logger
/// hands over each line whole, in one `write_all`, so lines from two workers never interleave.
struct ErrorLogFile;

impl Write for ErrorLogFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match &mut *SINK.lock().unwrap_or_else(|e| e.into_inner()) {
            Sink::Stderr => std::io::stderr().write(buf),
            Sink::File(_, f) => f.write(buf),
        }
    }
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match &mut *SINK.lock().unwrap_or_else(|e| e.into_inner()) {
            Sink::Stderr => std::io::stderr().write_all(buf),
            Sink::File(_, f) => f.write_all(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// env_logger's format: nginx's `ngx_log_error_core()` line, `TIME [LEVEL] PID#WORKER: MSG`.
fn nginx_line(buf: &mut env_logger::fmt::Formatter, r: &log::Record<'_>) -> std::io::Result<()> {
    let t = crate::core::times::Times::new();
    writeln!(
        buf,
        "{} [{}] {}#{}: {}",
        t.err_log_time,
        Level::of(r.metadata()).name(),
        std::process::id(),
        WORKER.with(|w| w.get()),
        r.args()
    )
}

impl ErrorLog {
    fn new() -> ErrorLog {
        let backend = env_logger::Builder::new()
            .format(nginx_line)
            .target(env_logger::Target::Pipe(Box::new(ErrorLogFile)))
            // ErrorLog::enabled has decided already: the backend lets everything through.
            .filter_level(log::LevelFilter::Trace)
            .build();
        let rust_log = std::env::var("RUST_LOG")
            .ok()
            .filter(|s| !s.trim().is_empty())
            .map(|s| env_filter::Builder::new().parse(&s).build());
        ErrorLog { level: AtomicU8::new(Level::Notice as u8), rust_log, backend }
    }
    fn level(&self) -> Level {
        LEVELS.get(usize::from(self.level.load(Ordering::Relaxed))).copied().unwrap_or(Level::Notice)
    }
    /// Sets the configured level and the `log` crate's global gate, the one check a disabled
    /// `debug!` costs: the wider of the configured level and `RUST_LOG`'s.
    fn set_level(&self, level: Level) {
        self.level.store(level as u8, Ordering::Relaxed);
        let env = self.rust_log.as_ref().map_or(log::LevelFilter::Off, |f| f.filter());
        log::set_max_level(level.filter().max(env));
    }
}

impl log::Log for ErrorLog {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        // Other crates' records (mio's) are not nginx's error log's business.
        let ours = m.target().starts_with("rginx") || !m.target().contains("::");
        ours && (Level::of(m) <= self.level() || self.rust_log.as_ref().is_some_and(|f| f.enabled(m)))
    }
    fn log(&self, r: &log::Record<'_>) {
        if self.enabled(r.metadata()) {
            self.backend.log(r);
        }
    }
    fn flush(&self) {}
}

fn global() -> &'static ErrorLog {
    LOG.get_or_init(ErrorLog::new)
}

/// Installs the logger writing to stderr (before the config is read). nginx: `ngx_log_init()`.
pub fn init() {
    let g = global();
    if log::set_logger(g).is_ok() {
        g.set_level(Level::Notice);
    }
}

fn open(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// Points the error log at `path` ("stderr" allowed) with `level`.
/// nginx: `ngx_log_set_log()` + opening the file in `ngx_init_cycle()`.
pub fn set_error_log(path: &str, level: Level) -> std::io::Result<()> {
    let sink = if path == "stderr" {
        Sink::Stderr
    } else {
        let p = PathBuf::from(path);
        let f = open(&p)?;
        Sink::File(p, f)
    };
    *SINK.lock().unwrap_or_else(|e| e.into_inner()) = sink;
    global().set_level(level);
    Ok(())
}

/// Reopens the error log file (USR1). nginx: `ngx_reopen_files()`.
pub fn reopen() {
    let mut sink = SINK.lock().unwrap_or_else(|e| e.into_inner());
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
    let to_file = matches!(&*SINK.lock().unwrap_or_else(|e| e.into_inner()), Sink::File(..));
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
