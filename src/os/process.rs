//! The process model: command line, master thread, worker threads, signals, pid file, reload.
//!
//! nginx: src/core/nginx.c (`main`, `ngx_get_options`, `ngx_signal_process`),
//! src/os/unix/ngx_process_cycle.c (`ngx_master_process_cycle`, `ngx_worker_process_cycle`,
//! `ngx_single_process_cycle`), src/os/unix/ngx_process.c (signal handling),
//! src/core/ngx_cycle.c (`ngx_create_pidfile`, reload via `ngx_init_cycle`).
//!
//! Differs from nginx:
//! - workers are threads, not processes: each has its own `mio::Poll`, slab, timer wheel and
//!   `Cycle`, and shares nothing with the others but the read-only configuration (`Arc<Conf>`).
//!   The main thread plays the master: it owns the listening sockets, waits for signals, and on
//!   HUP starts new workers with the new configuration and tells the old ones to quit.
//! - rginx never forks into the background (`daemon on` is accepted and ignored), so the pid
//!   in the pid file is the process that was started.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use crate::conf::{self, Conf, LoadOpts};
use crate::core::cycle::{Cycle, Signals, Stats};
use crate::core::id::GenSlab;
use crate::core::log::{self as rlog, Level};
use crate::core::times::Times;
use crate::event::{self, accept};
use crate::http::{HttpModule, ListenOpt};

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

/// Set by [`stop`]; the master takes it for a SIGTERM.
static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Asks a [`main`] running in this process (on another thread) to stop as on SIGTERM, and
/// returns at once; `main` returns when its workers are done. For embedders and in-process
/// tests (a module linked into a test binary), which cannot signal their own process without
/// hitting everything else in it. nginx has no equivalent: it is always its own process.
pub fn stop() {
    STOP.store(true, Ordering::Release);
}

/// Runs rginx with `args` (without the program name) and the given HTTP modules; returns the
/// exit status. nginx: `main()`.
pub fn main(args: &[String], modules: &'static [&'static dyn HttpModule]) -> i32 {
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
        modules,
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
    run_master(conf, opts, o.error_log.is_some())
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
    // SAFETY: kill(2) with a pid read from our own pid file and a valid signal number.
    if unsafe { libc::kill(pid, sig) } != 0 {
        let e = io::Error::last_os_error();
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

/// "2: No such file or directory", nginx's errno rendering.
pub fn os_err(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => {
            let s = e.to_string();
            let msg = s.split(" (os error").next().unwrap_or(&s).to_string();
            format!("{n}: {msg}")
        }
        None => e.to_string(),
    }
}

/// Binds one listening socket. nginx: `ngx_open_listening_sockets()`.
fn bind(opt: &ListenOpt, reuseport: bool) -> io::Result<std::net::TcpListener> {
    let domain = if opt.addr.is_ipv4() { Domain::IPV4 } else { Domain::IPV6 };
    let s = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    if reuseport {
        s.set_reuse_port(true)?;
    }
    if opt.addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.bind(&opt.addr.into())?;
    s.listen(opt.backlog)?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

/// The master's listening sockets: per address, one socket shared by all workers, or with
/// `reuseport` one per worker.
struct Listeners {
    socks: Vec<(ListenOpt, Vec<std::net::TcpListener>)>,
}

impl Listeners {
    /// Opens (or keeps, across a reload) the sockets `conf` needs.
    fn open(conf: &Conf, old: Option<Listeners>) -> io::Result<Listeners> {
        let mut old = old.map(|l| l.socks).unwrap_or_default();
        let workers = conf.main.worker_processes;
        let mut socks = Vec::new();
        for opt in conf.listens() {
            let want = if opt.reuseport { workers } else { 1 };
            let mut have = match old.iter().position(|(o, _)| o.addr == opt.addr && o.reuseport == opt.reuseport) {
                Some(i) => old.swap_remove(i).1,
                None => Vec::new(),
            };
            while have.len() < want {
                match bind(&opt, opt.reuseport) {
                    Ok(s) => have.push(s),
                    Err(e) => {
                        return Err(io::Error::new(
                            e.kind(),
                            format!("bind() to {} failed ({})", opt.addr, os_err(&e)),
                        ));
                    }
                }
            }
            have.truncate(want);
            socks.push((opt, have));
        }
        Ok(Listeners { socks })
    }

    /// The sockets worker `n` registers: a duplicate of each shared socket, or its own.
    fn for_worker(&self, n: usize) -> io::Result<Vec<(usize, std::net::TcpListener)>> {
        let mut v = Vec::new();
        for (i, (opt, socks)) in self.socks.iter().enumerate() {
            let s = if opt.reuseport { &socks[n % socks.len()] } else { &socks[0] };
            v.push((i, s.try_clone()?));
        }
        Ok(v)
    }
}

/// A running worker thread.
struct Worker {
    signals: Arc<Signals>,
    waker: Arc<mio::Waker>,
    handle: Option<JoinHandle<()>>,
}

impl Worker {
    fn tell(&self, f: impl Fn(&Signals)) {
        f(&self.signals);
        let _ = self.waker.wake();
    }
    fn finished(&self) -> bool {
        self.handle.as_ref().is_none_or(JoinHandle::is_finished)
    }
    fn join(&mut self) {
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// The token of a worker's waker in its poll.
pub const WAKE_TOKEN: usize = usize::MAX;

fn start_workers(conf: &Arc<Conf>, ls: &Listeners, gen: usize) -> io::Result<Vec<Worker>> {
    let mut workers = Vec::new();
    for n in 0..conf.main.worker_processes {
        let poll = mio::Poll::new()?;
        let waker = Arc::new(mio::Waker::new(poll.registry(), mio::Token(WAKE_TOKEN))?);
        let signals = Arc::new(Signals::default());
        let socks = ls.for_worker(n)?;
        let (c, s) = (conf.clone(), signals.clone());
        let handle = std::thread::Builder::new()
            .name(format!("rginx-worker-{n}"))
            .spawn(move || worker_process_cycle(c, poll, socks, s, gen * 100 + n + 1))?;
        workers.push(Worker { signals, waker, handle: Some(handle) });
    }
    Ok(workers)
}

fn apply_error_log(conf: &Conf, cli: bool) -> bool {
    if cli && conf.main.error_log.is_none() {
        return true;
    }
    let (path, level) = conf
        .main
        .error_log
        .clone()
        .unwrap_or_else(|| (conf.prefix.join("logs/error.log").to_string_lossy().into_owned(), Level::Error));
    if let Err(e) = rlog::set_error_log(&path, level) {
        rlog::stderr(Level::Emerg, &format!("open() \"{path}\" failed ({})", os_err(&e)));
        return false;
    }
    true
}

fn write_pid(path: &Path) -> io::Result<()> {
    std::fs::write(path, format!("{}\n", std::process::id()))
}

/// The master: bind, write the pid file, start workers, then handle signals until exit.
/// nginx: `ngx_master_process_cycle()`.
fn run_master(conf: Conf, opts: LoadOpts, cli_log: bool) -> i32 {
    if !apply_error_log(&conf, cli_log) {
        return 1;
    }
    let ls = match Listeners::open(&conf, None) {
        Ok(l) => l,
        Err(e) => {
            rlog::stderr(Level::Emerg, &e.to_string());
            return 1;
        }
    };
    let mut conf = Arc::new(conf);
    // The master waits for signals; signal-hook's handler only records them (async-signal-safe)
    // and `pending()` hands them over here. nginx: `ngx_signal_handler` setting flags that
    // `ngx_master_process_cycle` reads after `sigsuspend()`.
    let mut signals = match signal_hook::iterator::Signals::new([
        libc::SIGTERM,
        libc::SIGINT,
        libc::SIGQUIT,
        libc::SIGHUP,
        libc::SIGUSR1,
    ]) {
        Ok(s) => s,
        Err(e) => {
            rlog::stderr(Level::Emerg, &format!("sigaction() failed ({e})"));
            return 1;
        }
    };
    // SIGPIPE: writes to closed sockets must return EPIPE, not kill us (Rust ignores it already).
    let mut gen = 0;
    let mut workers = match start_workers(&conf, &ls, gen) {
        Ok(w) => w,
        Err(e) => {
            rlog::stderr(Level::Emerg, &format!("could not start workers ({e})"));
            return 1;
        }
    };
    let mut ls = Some(ls);
    if let Err(e) = write_pid(&conf.main.pid) {
        rlog::stderr(Level::Emerg, &format!("open() \"{}\" failed ({})", conf.main.pid.display(), os_err(&e)));
        for w in &mut workers {
            w.tell(|s| s.terminate.store(true, Ordering::Release));
            w.join();
        }
        return 1;
    }
    crate::ngx_log!(Notice, "{VERSION} started, {} worker(s)", workers.len());
    let mut old: Vec<Worker> = Vec::new();
    let mut stopping = false;
    let mut queue: Vec<i32> = Vec::new();
    loop {
        if queue.is_empty() {
            queue.extend(signals.pending());
            queue.reverse();
        }
        let mut sig = queue.pop();
        if sig.is_none() && STOP.swap(false, Ordering::AcqRel) {
            sig = Some(libc::SIGTERM); // `stop()`: an in-process fast stop
        }
        if sig.is_none() {
            std::thread::sleep(Duration::from_millis(20));
        }
        old.retain_mut(|w| {
            if w.finished() {
                w.join();
                false
            } else {
                true
            }
        });
        match sig {
            Some(s) if s == libc::SIGTERM || s == libc::SIGINT => {
                crate::ngx_log!(Notice, "signal {s} received, exiting");
                for w in workers.iter().chain(old.iter()) {
                    w.tell(|s| s.terminate.store(true, Ordering::Release));
                }
                stopping = true;
            }
            Some(s) if s == libc::SIGQUIT => {
                crate::ngx_log!(Notice, "signal {s} received, shutting down gracefully");
                for w in workers.iter().chain(old.iter()) {
                    w.tell(|s| s.quit.store(true, Ordering::Release));
                }
                ls = None; // close the master's copies: nothing new is accepted
                stopping = true;
            }
            Some(s) if s == libc::SIGUSR1 => {
                crate::ngx_log!(Notice, "signal {s} received, reopening logs");
                rlog::reopen();
                for w in &workers {
                    w.tell(|s| s.reopen.store(true, Ordering::Release));
                }
            }
            Some(s) if s == libc::SIGHUP && !stopping => {
                crate::ngx_log!(Notice, "signal {s} received, reconfiguring");
                match reload(&opts, ls.take(), gen + 1) {
                    (Ok((nconf, nls, nworkers)), _) => {
                        for w in &workers {
                            w.tell(|s| s.quit.store(true, Ordering::Release));
                        }
                        old.append(&mut workers);
                        workers = nworkers;
                        conf = nconf;
                        ls = Some(nls);
                        gen += 1;
                        let _ = apply_error_log(&conf, cli_log);
                    }
                    (Err(e), back) => {
                        ngx_log_emerg(&e);
                        ls = back;
                    }
                }
            }
            _ => {}
        }
        if stopping && workers.iter().chain(old.iter()).all(Worker::finished) {
            break;
        }
        if !stopping && !workers.is_empty() && workers.iter().all(Worker::finished) {
            crate::ngx_log!(Alert, "all workers exited unexpectedly");
            break;
        }
    }
    for w in workers.iter_mut().chain(old.iter_mut()) {
        w.join();
    }
    drop(ls);
    let _ = std::fs::remove_file(&conf.main.pid);
    crate::ngx_log!(Notice, "exit");
    0
}

fn ngx_log_emerg(msg: &str) {
    crate::ngx_log!(Emerg, "{msg}");
}

type Reloaded = (Arc<Conf>, Listeners, Vec<Worker>);

/// Reads the configuration again and starts workers with it; on any error the old
/// listeners are handed back. nginx: `ngx_init_cycle()` on SIGHUP.
fn reload(opts: &LoadOpts, ls: Option<Listeners>, gen: usize) -> (Result<Reloaded, String>, Option<Listeners>) {
    let conf = match conf::load(opts) {
        Ok(c) => c,
        Err(e) => return (Err(e.to_string()), ls),
    };
    // Keep copies of the old sockets so a failure can hand them back intact.
    let backup = ls.as_ref().and_then(|l| {
        l.socks
            .iter()
            .map(|(o, v)| v.iter().map(|s| s.try_clone()).collect::<io::Result<Vec<_>>>().map(|v| (o.clone(), v)))
            .collect::<io::Result<Vec<_>>>()
            .ok()
            .map(|socks| Listeners { socks })
    });
    let nls = match Listeners::open(&conf, ls) {
        Ok(l) => l,
        Err(e) => return (Err(e.to_string()), backup),
    };
    let conf = Arc::new(conf);
    match start_workers(&conf, &nls, gen) {
        Ok(w) => (Ok((conf, nls, w)), None),
        Err(e) => (Err(format!("could not start workers ({e})")), Some(nls)),
    }
}

/// One worker's life. nginx: `ngx_worker_process_cycle()`.
fn worker_process_cycle(
    conf: Arc<Conf>,
    poll: mio::Poll,
    socks: Vec<(usize, std::net::TcpListener)>,
    signals: Arc<Signals>,
    n: usize,
) {
    rlog::set_worker(n);
    let mut cy = Cycle {
        poll,
        events: None,
        ready: Vec::new(),
        listening: Vec::new(),
        conns: GenSlab::with_capacity(1024),
        requests: GenSlab::with_capacity(256),
        upstreams: GenSlab::new(),
        timers: event::timer::TimerWheel::new(0),
        fired: Vec::new(),
        posted_accept: Default::default(),
        posted: Default::default(),
        posted_requests: Default::default(),
        times: Times::new(),
        conf: conf.clone(),
        bufs: Default::default(),
        stats: Stats::default(),
        connection_counter: 0,
        signals,
        exiting: false,
        worker: n,
        http: Default::default(),
    };
    cy.timers = event::timer::TimerWheel::new(cy.times.msec);
    let listens = conf.listens();
    for (i, opt) in listens.iter().enumerate() {
        cy.listening.push(accept::Listening {
            addr: opt.addr,
            conn: None,
            handler: crate::http::request::init_connection,
            servers: i,
        });
    }
    let mut mio_socks = Vec::new();
    for (i, s) in socks {
        mio_socks.push((i, mio::net::TcpListener::from_std(s)));
    }
    accept::event_process_init(&mut cy, mio_socks);
    if let Some(http) = conf.http.as_ref() {
        for m in http.modules {
            m.init_worker(&mut cy);
        }
    }
    let mut shutdown_deadline: Option<u64> = None;
    loop {
        if Signals::take(&cy.signals.terminate) {
            break;
        }
        if Signals::take(&cy.signals.reopen) {
            for m in conf.http.iter().flat_map(|h| h.modules.iter()) {
                m.reopen_files(&mut cy);
            }
        }
        if Signals::take(&cy.signals.quit) && !cy.exiting {
            cy.exiting = true;
            accept::close_listening_sockets(&mut cy);
            shutdown_deadline = conf.main.worker_shutdown_timeout.map(|t| cy.times.msec + t);
        }
        if cy.exiting {
            close_idle_connections(&mut cy);
            if cy.conns.is_empty() {
                break;
            }
            if shutdown_deadline.is_some_and(|d| cy.times.msec >= d) {
                log::info!("worker_shutdown_timeout expired, closing {} connection(s)", cy.conns.len());
                break;
            }
        }
        if let Err(e) = event::process_events_and_timers(&mut cy) {
            crate::ngx_log!(Alert, "epoll_wait() failed ({e})");
            break;
        }
    }
    close_all(&mut cy);
}

/// Closes idle keepalive connections during a graceful stop. A connection accepted but not
/// yet read from is not idle: its first request is served (with `Connection: close`), else a
/// client connecting during a reload would see its connection dropped.
/// nginx: `ngx_close_idle_connections()` (only `c->idle` ones).
fn close_idle_connections(cy: &mut Cycle) {
    for id in cy.conns.ids() {
        let idle = cy
            .conns
            .get(id)
            .is_some_and(|c| c.idle && c.owner == crate::core::connection::Owner::Client(None) && c.buffer.is_none());
        // Idle upstream connections of the keepalive cache go too (nginx marks them idle).
        let cached = cy.conns.get(id).is_some_and(|c| c.idle && c.owner == crate::core::connection::Owner::Cached);
        if idle {
            cy.stats.active = cy.stats.active.saturating_sub(1);
        }
        if idle || cached {
            event::connect::close_connection(cy, id);
        }
    }
}

fn close_all(cy: &mut Cycle) {
    for rid in cy.requests.ids() {
        crate::http::request::terminate_request(cy, rid, crate::core::step::HandlerRc::Error);
    }
    for id in cy.conns.ids() {
        event::connect::close_connection(cy, id);
    }
}

/// The address a listening socket was bound to (for tests and logs).
pub fn local_addr(l: &std::net::TcpListener) -> Option<SocketAddr> {
    l.local_addr().ok()
}
