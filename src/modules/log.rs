//! `access_log` and `log_format`: one line per request, written in the log phase.
//!
//! nginx: src/http/modules/ngx_http_log_module.c (`ngx_http_log_handler`,
//! `ngx_http_log_set_log`, `ngx_http_log_set_format`, the predefined `combined` format,
//! `ngx_http_log_escape`).
//!
//! Differs from nginx:
//! - no `buffer=`, `gzip=`, `flush=`, `if=` parameters, and only `escape=default` (anything
//!   else is an `[emerg]`).
//! - files are opened per worker on first use and reopened on USR1; nginx opens them in the
//!   master and shares the descriptors.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use crate::conf::{self, Args, Ctx};
use crate::http::cycle::Cycle;
use crate::http::cycle::RequestId;
use crate::http::variables::{ComplexValue, Vars};
use crate::http::{AnyConf, Command, Confs, Cx, HttpConf, HttpModule, SetError};

/// nginx's predefined format.
const COMBINED: &str = "$remote_addr - $remote_user [$time_local] \"$request\" $status $body_bytes_sent \"$http_referer\" \"$http_user_agent\"";

/// `log_format`s. nginx: `ngx_http_log_main_conf_t`.
#[derive(Default)]
pub struct LogMainConf {
    formats: Vec<(String, Arc<ComplexValue>)>,
}

/// One `access_log` target.
#[derive(Clone)]
pub struct AccessLog {
    path: PathBuf,
    format: Arc<ComplexValue>,
}

/// `access_log`s of a level; `Some(vec![])` is `access_log off`. nginx: `ngx_http_log_loc_conf_t`.
#[derive(Default)]
pub struct LogLocConf {
    logs: Option<Vec<AccessLog>>,
}

/// Per-worker open log files, and the buffer each line is formatted into (reused: no
/// allocation per line).
#[derive(Default)]
struct LogFiles {
    files: Vec<(PathBuf, File)>,
    default: Option<AccessLog>,
    line: Vec<u8>,
}

/// The module. nginx: `ngx_http_log_module`.
pub struct LogModule;

#[rustfmt::skip]
static COMMANDS: &[Command] = &[
    Command {
        name: "log_format",
        ctx: Ctx::HTTP_MAIN,
        args: Args::TWO_MORE,
        set: set_format,
    },
    Command {
        name: "access_log",
        ctx: Ctx::HTTP_ANY,
        args: Args(Args::TAKE12.0 | Args::TAKE3.0 | Args::TAKE4.0),
        set: set_log,
    },
];

fn combined(cx: &Cx<'_>) -> Result<Arc<ComplexValue>, SetError> {
    Ok(Arc::new(ComplexValue::compile(COMBINED, cx.modules)?))
}

fn set_format(cx: &mut Cx<'_>) -> Result<(), SetError> {
    let name = cx.arg(0).to_string();
    let mut args = &cx.d.args[1..];
    if args.first().is_some_and(|a| a.starts_with("escape=")) {
        if args[0] != "escape=default" {
            return Err(format!("unknown log format escaping \"{}\"", &args[0][7..]).into());
        }
        args = &args[1..];
    }
    let text: String = args.concat();
    let cv = Arc::new(ComplexValue::compile(&text, cx.modules)?);
    let m = cx.main_conf::<LogMainConf>()?;
    if name == "combined" || m.formats.iter().any(|(n, _)| *n == name) {
        return Err(format!("duplicate \"log_format\" name \"{name}\"").into());
    }
    m.formats.push((name, cv));
    Ok(())
}

fn set_log(cx: &mut Cx<'_>) -> Result<(), SetError> {
    if cx.arg(0) == "off" {
        if cx.d.args.len() > 1 {
            return Err(format!("invalid parameter \"{}\"", cx.arg(1)).into());
        }
        cx.loc_conf::<LogLocConf>()?.logs = Some(Vec::new());
        return Ok(());
    }
    if cx.arg(0) == "syslog:" || cx.arg(0).starts_with("syslog:") {
        return Err("syslog is not supported by rginx".into());
    }
    let path = conf::full_name(&cx.opts.prefix, cx.arg(0));
    let format = match cx.d.args.get(1).map(String::as_str) {
        None | Some("combined") => combined(cx)?,
        Some(n) => {
            let n = n.to_string();
            let m = cx.main_conf::<LogMainConf>()?;
            match m.formats.iter().find(|(f, _)| *f == n) {
                Some((_, f)) => f.clone(),
                None => return Err(format!("unknown log format \"{n}\"").into()),
            }
        }
    };
    if let Some(p) = cx.d.args.get(2) {
        return Err(format!("invalid parameter \"{p}\"").into());
    }
    let lc = cx.loc_conf::<LogLocConf>()?;
    lc.logs.get_or_insert_with(Vec::new).push(AccessLog { path, format });
    Ok(())
}

/// Writes the request's line to each log. nginx: `ngx_http_log_handler()`.
fn log_handler(cy: &mut Cycle, rid: RequestId) {
    // The location's configuration is shared and read-only: an `Arc` clone lets the logs be
    // borrowed while the world is borrowed for the variables (no copy of the list).
    let Some(loc) = cy.requests.get(rid).map(|r| r.loc.clone()) else { return };
    match loc.confs.get::<LogLocConf>().and_then(|l| l.logs.as_ref()) {
        Some(logs) => {
            for l in logs {
                log_line(cy, rid, l);
            }
        }
        None => {
            if let Some(l) = default_log(cy) {
                log_line(cy, rid, &l);
                put_default_log(cy, l);
            }
        }
    }
}

/// Formats one line into the worker's line buffer and writes it with one `write()`, as
/// nginx does for a log without `buffer=`.
fn log_line(cy: &mut Cycle, rid: RequestId, l: &AccessLog) {
    let Some(files) = log_files(cy) else { return };
    let mut line = std::mem::take(&mut files.line);
    line.clear();
    let formatted = Vars::of(cy, rid).map(|v| l.format.eval_log(&v, &mut line)).is_some();
    line.push(b'\n');
    let Some(files) = log_files(cy) else { return };
    if formatted {
        files.write(&l.path, &line);
    }
    // a line grown past any usual length is not kept
    if line.capacity() <= MAX_KEPT_LINE {
        files.line = line;
    }
}

/// The longest line buffer kept between lines.
const MAX_KEPT_LINE: usize = 64 * 1024;

/// The worker's log state, created on first use.
fn log_files(cy: &mut Cycle) -> Option<&mut LogFiles> {
    if cy.http.get::<LogFiles>().is_none() {
        cy.http.insert(LogFiles::default());
    }
    cy.http.get::<LogFiles>()
}

impl LogFiles {
    /// Writes `line` to the file at `path`, opened on first use.
    fn write(&mut self, path: &PathBuf, line: &[u8]) {
        // compared as bytes: `Path`'s `==` compares component by component
        let pos = match self.files.iter().position(|(p, _)| p.as_os_str() == path.as_os_str()) {
            Some(i) => i,
            None => match OpenOptions::new().create(true).append(true).open(path) {
                Ok(f) => {
                    self.files.push((path.clone(), f));
                    self.files.len() - 1
                }
                Err(e) => {
                    log::error!("open() \"{}\" failed ({e})", path.display());
                    return;
                }
            },
        };
        if let Some((_, f)) = self.files.get_mut(pos) {
            let _ = f.write_all(line);
        }
    }
}

/// nginx's default when no `access_log` is configured: `logs/access.log combined`. It is taken
/// out of the worker's `LogFiles` for the line and put back after (`put_default_log`), so the
/// default log costs no copy of its path per line.
fn default_log(cy: &mut Cycle) -> Option<AccessLog> {
    if let Some(l) = log_files(cy)?.default.take() {
        return Some(l);
    }
    let modules = cy.http_conf.as_deref()?.modules;
    let format = Arc::new(ComplexValue::compile(COMBINED, modules).ok()?);
    Some(AccessLog { path: cy.conf.prefix.join("logs/access.log"), format })
}

/// Gives the default log back to the worker's `LogFiles` (see `default_log`).
fn put_default_log(cy: &mut Cycle, l: AccessLog) {
    if let Some(files) = log_files(cy) {
        files.default = Some(l);
    }
}

/// Reopens the worker's log files (USR1) by name, so that a file renamed away (logrotate) is
/// created anew at once, as nginx's `ngx_reopen_files()` does; a file that cannot be opened
/// keeps its old descriptor.
pub fn reopen(cy: &mut Cycle) {
    let Some(f) = cy.http.get::<LogFiles>() else {
        return;
    };
    for (path, file) in f.files.iter_mut() {
        match OpenOptions::new().create(true).append(true).open(&*path) {
            Ok(nf) => *file = nf,
            Err(e) => log::error!("open() \"{}\" failed ({e})", path.display()),
        }
    }
}

impl HttpModule for LogModule {
    fn name(&self) -> &'static str {
        "ngx_http_log_module"
    }
    fn commands(&self) -> &'static [Command] {
        COMMANDS
    }
    fn create_main_conf(&self) -> Option<AnyConf> {
        Some(Box::new(LogMainConf::default()))
    }
    fn create_loc_conf(&self) -> Option<AnyConf> {
        Some(Box::new(LogLocConf::default()))
    }
    fn merge_loc_conf(&self, prev: &Confs, conf: &mut Confs) -> Result<(), String> {
        let p = prev.get::<LogLocConf>().and_then(|p| p.logs.clone());
        if let Some(c) = conf.get_mut::<LogLocConf>() {
            if c.logs.is_none() {
                c.logs = p;
            }
        }
        Ok(())
    }
    fn postconfiguration(&self, http: &mut HttpConf) -> Result<(), crate::conf::ConfError> {
        http.phases.log.push(log_handler);
        Ok(())
    }
    fn reopen_files(&self, cy: &mut Cycle) {
        reopen(cy);
    }
}
