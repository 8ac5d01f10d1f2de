//! Configuration: reading nginx.conf into a directive tree, directive tables, create/merge.
//!
//! nginx: src/core/ngx_conf_file.{c,h} (`ngx_command_t`, `ngx_conf_parse`, the `NGX_CONF_TAKE*`
//! flags, `ngx_conf_set_*_slot`), src/core/nginx.c (`ngx_core_commands`),
//! src/event/ngx_event.c (`events {}`).
//!
//! How it fits together:
//! 1. `parse::parse_file` turns the text (with `include`s expanded) into a `Directive` tree.
//! 2. `load` walks the main context with `CORE_COMMANDS`; a block such as `http {}` is handed
//!    to the core module that registered it (`CoreModule`, given in `LoadOpts::modules` by the
//!    top of the program, as nginx's `ngx_modules[]`). The HTTP one (`http::HttpBlock`)
//!    creates every HTTP module's main/srv/loc confs, runs each directive's setter from the
//!    module tables, and merges http → server → location, as `ngx_http_block()` does. This
//!    folder names no module: it keeps each block's result as `dyn Any` (`Conf::get`).
//!
//! Differs from nginx:
//! - nginx parses and dispatches in one streaming pass; rginx builds the tree first (it is also
//!   what `-T` dumps), then dispatches. Errors still carry the file and line of the directive.

pub mod parse;
mod token;
pub mod units;

use std::any::Any;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use parse::{ConfError, Directive, ParsedConf};

use crate::core::log::Level;
use crate::os::resolve::{with_memo, Memo};

/// Contexts a directive may appear in. nginx: `NGX_MAIN_CONF`, `NGX_EVENT_CONF`,
/// `NGX_HTTP_MAIN_CONF`, `NGX_HTTP_SRV_CONF`, `NGX_HTTP_LOC_CONF`, `NGX_HTTP_UPS_CONF`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ctx(pub u8);
impl Ctx {
    /// The main context.
    pub const MAIN: Ctx = Ctx(1);
    /// `events {}`.
    pub const EVENT: Ctx = Ctx(2);
    /// `http {}`.
    pub const HTTP_MAIN: Ctx = Ctx(4);
    /// `server {}`.
    pub const HTTP_SRV: Ctx = Ctx(8);
    /// `location {}`.
    pub const HTTP_LOC: Ctx = Ctx(16);
    /// `upstream {}`.
    pub const HTTP_UPS: Ctx = Ctx(32);
    /// http, server and location: the usual place of a loc-level directive.
    pub const HTTP_ANY: Ctx = Ctx(4 | 8 | 16);
    /// Whether `self` allows `level`.
    pub fn allows(self, level: Ctx) -> bool {
        self.0 & level.0 != 0
    }
}
impl std::ops::BitOr for Ctx {
    type Output = Ctx;
    fn bitor(self, o: Ctx) -> Ctx {
        Ctx(self.0 | o.0)
    }
}

/// Argument counts a directive takes. nginx: `NGX_CONF_NOARGS`, `NGX_CONF_TAKE1..7`,
/// `NGX_CONF_FLAG`, `NGX_CONF_1MORE`, `NGX_CONF_2MORE`, `NGX_CONF_BLOCK`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Args(pub u16);
impl Args {
    /// No arguments.
    pub const NOARGS: Args = Args(1);
    /// One argument.
    pub const TAKE1: Args = Args(1 << 1);
    /// Two arguments.
    pub const TAKE2: Args = Args(1 << 2);
    /// Three arguments.
    pub const TAKE3: Args = Args(1 << 3);
    /// Four arguments.
    pub const TAKE4: Args = Args(1 << 4);
    /// One or two.
    pub const TAKE12: Args = Args(Self::TAKE1.0 | Self::TAKE2.0);
    /// One to three.
    pub const TAKE123: Args = Args(Self::TAKE1.0 | Self::TAKE2.0 | Self::TAKE3.0);
    /// Two or three.
    pub const TAKE23: Args = Args(Self::TAKE2.0 | Self::TAKE3.0);
    /// `on` or `off`.
    pub const FLAG: Args = Args(1 << 8);
    /// One or more.
    pub const ONE_MORE: Args = Args(1 << 9);
    /// Two or more.
    pub const TWO_MORE: Args = Args(1 << 10);
    /// Takes a `{ }` block (combined with a count).
    pub const BLOCK: Args = Args(1 << 11);
    /// Any number.
    pub const ANY: Args = Args(1 << 12);

    /// Checks `n` arguments against the flags. nginx: the `argument_number[]` check of
    /// `ngx_conf_handler()`.
    pub fn accepts(self, n: usize) -> bool {
        let a = self.0;
        if a & Self::ANY.0 != 0 {
            return true;
        }
        if a & Self::FLAG.0 != 0 {
            return n == 1;
        }
        if a & Self::ONE_MORE.0 != 0 {
            return n >= 1;
        }
        if a & Self::TWO_MORE.0 != 0 {
            return n >= 2;
        }
        n <= 7 && a & (1 << n) != 0
    }
    /// Whether the directive must carry a block.
    pub fn block(self) -> bool {
        self.0 & Self::BLOCK.0 != 0
    }
}
impl std::ops::BitOr for Args {
    type Output = Args;
    fn bitor(self, o: Args) -> Args {
        Args(self.0 | o.0)
    }
}

/// Checks context, argument count and block shape of `d` against a command's flags, with
/// nginx's messages. nginx: the checks of `ngx_conf_handler()`.
pub fn check_directive(d: &Directive, ctx: Ctx, args: Args, level: Ctx) -> Result<(), ConfError> {
    if !ctx.allows(level) {
        return Err(ConfError::at(format!("\"{}\" directive is not allowed here", d.name), d));
    }
    if args.block() && d.block.is_none() {
        return Err(ConfError::at(format!("directive \"{}\" has no opening \"{{\"", d.name), d));
    }
    if !args.block() && d.block.is_some() {
        return Err(ConfError::at(format!("directive \"{}\" is not terminated by \";\"", d.name), d));
    }
    if !args.accepts(d.args.len()) {
        return Err(ConfError::at(format!("invalid number of arguments in \"{}\" directive", d.name), d));
    }
    Ok(())
}

/// Parses `on`/`off`. nginx: `ngx_conf_set_flag_slot()`.
pub fn flag(d: &Directive) -> Result<bool, String> {
    match d.args.first().map(String::as_str) {
        Some("on") => Ok(true),
        Some("off") => Ok(false),
        Some(v) => Err(format!("invalid value \"{v}\" in \"{}\" directive, it must be \"on\" or \"off\"", d.name)),
        None => Err(format!("invalid number of arguments in \"{}\" directive", d.name)),
    }
}

/// Parses a size argument. nginx: `ngx_conf_set_size_slot()` ("invalid value").
pub fn size(d: &Directive, i: usize) -> Result<usize, String> {
    let v = d.args.get(i).map(String::as_str).unwrap_or("");
    units::parse_size(v).ok_or_else(|| "invalid value".to_string())
}

/// Parses an offset argument (`g` allowed). nginx: `ngx_conf_set_off_slot()`.
pub fn offset(d: &Directive, i: usize) -> Result<u64, String> {
    let v = d.args.get(i).map(String::as_str).unwrap_or("");
    units::parse_offset(v).ok_or_else(|| "invalid value".to_string())
}

/// Parses a time argument into milliseconds. nginx: `ngx_conf_set_msec_slot()`.
pub fn msec(d: &Directive, i: usize) -> Result<u64, String> {
    let v = d.args.get(i).map(String::as_str).unwrap_or("");
    units::parse_msec(v).ok_or_else(|| "invalid value".to_string())
}

/// Parses a positive number. nginx: `ngx_conf_set_num_slot()`.
pub fn num(d: &Directive, i: usize) -> Result<usize, String> {
    let v = d.args.get(i).map(String::as_str).unwrap_or("");
    v.parse::<usize>().map_err(|_| "invalid number".to_string())
}

/// Sets an unset (`None`) slot, or reports nginx's duplicate error.
pub fn set_once<T>(slot: &mut Option<T>, v: T) -> Result<(), String> {
    if slot.is_some() {
        return Err("is duplicate".into());
    }
    *slot = Some(v);
    Ok(())
}

/// nginx's merge: the child's value if set, else the parent's, else the default.
/// nginx: `ngx_conf_merge_value()` and friends; `None` plays `NGX_CONF_UNSET`.
pub fn merge<T: Clone>(conf: &mut Option<T>, prev: &Option<T>, default: T) {
    if conf.is_none() {
        *conf = Some(prev.clone().unwrap_or(default));
    }
}

/// The main context. nginx: `ngx_core_conf_t` + `ngx_event_conf_t`.
#[derive(Debug, Clone)]
pub struct MainConf {
    /// `worker_processes N|auto`.
    pub worker_processes: usize,
    /// `daemon on|off` (accepted; rginx stays in the foreground).
    pub daemon: bool,
    /// `master_process on|off` (accepted; the master is rginx's main thread either way).
    pub master_process: bool,
    /// `error_log FILE [LEVEL]`: resolved path (or "stderr") and level.
    pub error_log: Option<(String, Level)>,
    /// `pid FILE`, resolved against the prefix.
    pub pid: PathBuf,
    /// `events { worker_connections N; }`.
    pub worker_connections: usize,
    /// `worker_shutdown_timeout T` (ms), if set.
    pub worker_shutdown_timeout: Option<u64>,
    /// `user` (accepted; rginx never changes user).
    pub user: Option<String>,
}

/// The whole configuration. nginx: `cycle->conf_ctx` + paths.
pub struct Conf {
    /// Main context.
    pub main: MainConf,
    /// What each core module's block built (`http {}` → `HttpConf`), in the order read.
    /// nginx: `cycle->conf_ctx[module->index]`.
    pub blocks: Vec<Arc<dyn Any + Send + Sync>>,
    /// Every file read, for `-T`.
    pub files: Vec<(PathBuf, String)>,
    /// `-p` prefix.
    pub prefix: PathBuf,
    /// The `-c` file as given (for messages).
    pub file: PathBuf,
    /// The directive tree it was built from (`-g` first), so that each worker can build its
    /// own copy ([`Conf::rebuild`]); empty in such a copy.
    tree: Vec<Directive>,
    /// The names this build resolved, and their addresses: a rebuild uses them instead of
    /// asking DNS again (`os::resolve`).
    memo: Arc<Memo>,
}

/// What `load` needs from the command line.
#[derive(Clone)]
pub struct LoadOpts {
    /// `-p PREFIX` (default: current directory).
    pub prefix: PathBuf,
    /// `-c FILE` (default `conf/rginx.conf`).
    pub conf_file: PathBuf,
    /// `-g "DIRECTIVES"`.
    pub globals: Option<String>,
    /// The core modules compiled in, each owning a block of the main context (nginx's
    /// `ngx_modules[]` of type `NGX_CORE_MODULE`: `ngx_http_module` owns `http {}`).
    pub modules: &'static [&'static dyn CoreModule],
}

/// A module that owns a block of the main context. nginx: an `NGX_CORE_MODULE` with a block
/// directive (`ngx_http_module`'s `http`, whose handler is `ngx_http_block()`).
pub trait CoreModule: Sync {
    /// The block directive it owns, e.g. `"http"`.
    fn block(&self) -> &'static str;
    /// Whether `name` is one of its directives (inside its block), so that the main context
    /// can say "is not allowed here" rather than "unknown directive".
    fn knows(&self, name: &str) -> bool;
    /// Reads its block: the directive itself (arguments checked) and everything inside.
    fn read_block(&self, d: &Directive, opts: &LoadOpts) -> Result<Arc<dyn Any + Send + Sync>, ConfError>;
}

/// Resolves a path from the config against the prefix. nginx: `ngx_conf_full_name()`.
pub fn full_name(prefix: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        prefix.join(p)
    }
}

/// A main-context directive. nginx: `ngx_core_commands[]`, `ngx_events_commands[]`.
struct MainCommand {
    name: &'static str,
    ctx: Ctx,
    args: Args,
    set: fn(&mut MainConf, &Directive, &Path) -> Result<(), String>,
}

#[rustfmt::skip]
const CORE_COMMANDS: &[MainCommand] = &[
    MainCommand {
        name: "worker_processes",
        ctx: Ctx::MAIN,
        args: Args::TAKE1,
        set: set_worker_processes,
    },
    MainCommand {
        name: "daemon",
        ctx: Ctx::MAIN,
        args: Args::FLAG,
        set: |m, d, _| {
            m.daemon = flag(d)?;
            Ok(())
        },
    },
    MainCommand {
        name: "master_process",
        ctx: Ctx::MAIN,
        args: Args::FLAG,
        set: |m, d, _| {
            m.master_process = flag(d)?;
            Ok(())
        },
    },
    MainCommand {
        name: "error_log",
        ctx: Ctx::MAIN,
        args: Args::TAKE12,
        set: set_error_log,
    },
    MainCommand {
        name: "pid",
        ctx: Ctx::MAIN,
        args: Args::TAKE1,
        set: |m, d, p| {
            m.pid = full_name(p, &d.args[0]);
            Ok(())
        },
    },
    MainCommand {
        name: "user",
        ctx: Ctx::MAIN,
        args: Args::TAKE12,
        set: |m, d, _| {
            m.user = Some(d.args[0].clone());
            Ok(())
        },
    },
    MainCommand {
        name: "worker_shutdown_timeout",
        ctx: Ctx::MAIN,
        args: Args::TAKE1,
        set: |m, d, _| {
            m.worker_shutdown_timeout = Some(msec(d, 0)?);
            Ok(())
        },
    },
    MainCommand {
        name: "worker_connections",
        ctx: Ctx::EVENT,
        args: Args::TAKE1,
        set: |m, d, _| {
            m.worker_connections = num(d, 0)?;
            Ok(())
        },
    },
    MainCommand {
        name: "use",
        ctx: Ctx::EVENT,
        args: Args::TAKE1,
        set: |_, d, _| {
            if d.args[0] == "epoll" {
                Ok(())
            } else {
                Err(format!("invalid event type \"{}\"", d.args[0]))
            }
        },
    },
    MainCommand {
        name: "multi_accept",
        ctx: Ctx::EVENT,
        args: Args::FLAG,
        set: |_, d, _| flag(d).map(|_| ()),
    },
    MainCommand {
        name: "accept_mutex",
        ctx: Ctx::EVENT,
        args: Args::FLAG,
        set: |_, d, _| flag(d).map(|_| ()),
    },
];

fn set_worker_processes(m: &mut MainConf, d: &Directive, _: &Path) -> Result<(), String> {
    m.worker_processes = if d.args[0] == "auto" {
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    } else {
        match d.args[0].parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => return Err(format!("invalid value \"{}\" in \"worker_processes\" directive", d.args[0])),
        }
    };
    Ok(())
}

fn set_error_log(m: &mut MainConf, d: &Directive, prefix: &Path) -> Result<(), String> {
    let level = match d.args.get(1) {
        Some(l) => Level::parse(l).ok_or_else(|| format!("invalid log level \"{l}\""))?,
        None => Level::Error,
    };
    let path = if d.args[0] == "stderr" {
        "stderr".to_string()
    } else {
        full_name(prefix, &d.args[0]).to_string_lossy().into_owned()
    };
    m.error_log = Some((path, level));
    Ok(())
}

/// Reads and checks the whole configuration. nginx: `ngx_init_cycle()` up to opening sockets.
///
/// # Returns
/// The configuration, or the first error with nginx's message and `file:line`.
pub fn load(opts: &LoadOpts) -> Result<Conf, ConfError> {
    let conf_path = full_name(&opts.prefix, &opts.conf_file.to_string_lossy());
    let conf_prefix = conf_path.parent().map(Path::to_path_buf).unwrap_or_default();
    let parsed = parse::parse_file(&conf_path, &conf_prefix)?;
    // nginx applies -g before the file (`ngx_conf_param()` runs first).
    let mut directives = match &opts.globals {
        Some(g) => parse::parse_str(g, "command line", &conf_prefix)?,
        None => Vec::new(),
    };
    directives.extend(parsed.directives);
    let memo = Arc::new(Memo::default());
    let mut conf = with_memo(&memo, || init_conf(&directives, parsed.files, conf_path, opts))?;
    conf.tree = directives;
    conf.memo = memo;
    Ok(conf)
}

/// Reads and checks a configuration given as text, named `file` in messages; `include`
/// resolves against the prefix. For tests and the fuzzer (`fuzz/fuzz_targets/conf.rs`),
/// which must not touch the disk per input.
pub fn load_str(text: &str, file: &str, opts: &LoadOpts) -> Result<Conf, ConfError> {
    let directives = parse::parse_str(text, file, &opts.prefix)?;
    let memo = Arc::new(Memo::default());
    let mut conf = with_memo(&memo, || init_conf(&directives, Vec::new(), opts.prefix.join(file), opts))?;
    conf.tree = directives;
    conf.memo = memo;
    Ok(conf)
}

/// Runs every directive of the parsed tree through its module's table, then merges.
/// nginx: the part of `ngx_init_cycle()` after `ngx_conf_parse()`.
fn init_conf(
    directives: &[Directive],
    files: Vec<(PathBuf, String)>,
    conf_path: PathBuf,
    opts: &LoadOpts,
) -> Result<Conf, ConfError> {
    let mut main = MainConf {
        worker_processes: 1,
        daemon: true,
        master_process: true,
        error_log: None,
        pid: full_name(&opts.prefix, "logs/rginx.pid"),
        worker_connections: 512,
        worker_shutdown_timeout: None,
        user: None,
    };
    let mut blocks: Vec<(&str, Arc<dyn Any + Send + Sync>)> = Vec::new();
    let mut seen_events = false;
    let mut seen: Vec<&str> = Vec::new();
    for d in directives {
        match d.name.as_str() {
            "events" => {
                check_directive(d, Ctx::MAIN, Args::NOARGS | Args::BLOCK, Ctx::MAIN)?;
                if seen_events {
                    return Err(ConfError::at("\"events\" directive is duplicate", d));
                }
                seen_events = true;
                let mut seen_ev: Vec<&str> = Vec::new();
                for e in d.block.as_deref().unwrap_or(&[]) {
                    if seen_ev.contains(&e.name.as_str()) {
                        return Err(ConfError::at(format!("\"{}\" directive is duplicate", e.name), e));
                    }
                    seen_ev.push(&e.name);
                    main_directive(&mut main, e, Ctx::EVENT, opts)?;
                }
            }
            name if opts.modules.iter().any(|m| m.block() == name) => {
                check_directive(d, Ctx::MAIN, Args::NOARGS | Args::BLOCK, Ctx::MAIN)?;
                if blocks.iter().any(|(b, _)| *b == name) {
                    return Err(ConfError::at(format!("\"{name}\" directive is duplicate"), d));
                }
                let Some(m) = opts.modules.iter().find(|m| m.block() == name) else { continue };
                blocks.push((m.block(), m.read_block(d, opts)?));
            }
            name => {
                // nginx's slot setters refuse a second value; error_log and user may repeat
                // in nginx only as error_log, which rginx keeps singular too.
                if name != "error_log" && seen.contains(&name) {
                    return Err(ConfError::at(format!("\"{name}\" directive is duplicate"), d));
                }
                seen.push(name);
                main_directive(&mut main, d, Ctx::MAIN, opts)?
            }
        }
    }
    if !seen_events {
        return Err(ConfError { msg: "no \"events\" section in configuration".into(), file: None, line: 0 });
    }
    let blocks = blocks.into_iter().map(|(_, b)| b).collect();
    Ok(Conf {
        main,
        blocks,
        files,
        prefix: opts.prefix.clone(),
        file: conf_path,
        tree: Vec::new(),
        memo: Arc::default(),
    })
}

fn main_directive(m: &mut MainConf, d: &Directive, level: Ctx, opts: &LoadOpts) -> Result<(), ConfError> {
    let Some(cmd) = CORE_COMMANDS.iter().find(|c| c.name == d.name) else {
        // nginx knows every module's directives in every context: a known one in the wrong
        // place is "not allowed here", not "unknown".
        let known = is_main_directive(&d.name) || opts.modules.iter().any(|m| m.knows(&d.name));
        let msg = match known {
            true => format!("\"{}\" directive is not allowed here", d.name),
            false => format!("unknown directive \"{}\"", d.name),
        };
        return Err(ConfError::at(msg, d));
    };
    check_directive(d, cmd.ctx, cmd.args, level)?;
    (cmd.set)(m, d, &opts.prefix).map_err(|msg| setter_error(d, msg))
}

/// Whether `name` is a directive of the main or events context (`http`, `events` included),
/// for the "is not allowed here" message when one turns up inside `http {}`. `http` is named
/// here as a word only: nginx's message depends on whether the directive exists anywhere.
pub fn is_main_directive(name: &str) -> bool {
    matches!(name, "http" | "events") || CORE_COMMANDS.iter().any(|c| c.name == name)
}

/// Turns a setter's message into nginx's error: slot-style messages ("invalid value", "is
/// duplicate") are prefixed with the directive name, as `ngx_conf_handler()` does with the
/// string a handler returns; other messages are complete already.
pub fn setter_error(d: &Directive, msg: String) -> ConfError {
    match msg.as_str() {
        "invalid value" | "invalid number" | "is duplicate" => {
            ConfError::at(format!("\"{}\" directive {}", d.name, msg), d)
        }
        _ => ConfError::at(msg, d),
    }
}

impl Conf {
    /// The block of type `T` (e.g. the `HttpConf` of `http {}`), if the file had one.
    /// nginx: `ngx_get_conf(cycle->conf_ctx, ngx_http_module)`.
    pub fn get<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.blocks.iter().find_map(|b| b.downcast_ref::<T>())
    }
    /// A second configuration built from the same directives, sharing nothing with this one:
    /// a worker's own, so that the reference counts its requests bump (`Arc<LocConf>`,
    /// `Arc<UpstreamConf>`, ...) live in no cache line another worker writes. Nothing is read
    /// from disk again (the text was read and checked once) and no name is resolved again:
    /// every `upstream` server, `proxy_pass` host and `listen` name gets the master's answer
    /// (`os::resolve`'s memo), so the workers' peers and listening addresses are the
    /// master's. The copy keeps neither the files (`-T` is the master's) nor the tree.
    ///
    /// nginx: each worker process holds its own copy of the cycle's configuration after
    /// `fork()` (copy-on-write pages written by that process alone).
    pub fn rebuild(&self, opts: &LoadOpts) -> Result<Conf, ConfError> {
        with_memo(&self.memo, || init_conf(&self.tree, Vec::new(), self.file.clone(), opts))
    }
    /// The block of type `T`, shared (a worker keeps its own handle to it).
    pub fn get_arc<T: Any + Send + Sync>(&self) -> Option<Arc<T>> {
        self.blocks.iter().find_map(|b| b.clone().downcast::<T>().ok())
    }
}
