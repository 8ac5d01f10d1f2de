//! The master: listening sockets, pid file, signals, reload, starting and stopping workers.
//!
//! nginx: src/os/unix/ngx_process_cycle.c (`ngx_master_process_cycle`,
//! `ngx_start_worker_processes`), src/os/unix/ngx_process.c (signal handling),
//! src/core/ngx_cycle.c (`ngx_create_pidfile`, reload via `ngx_init_cycle`),
//! src/core/ngx_connection.c (`ngx_open_listening_sockets`).
//!
//! Differs from nginx:
//! - the master is the main thread and the workers are threads (see `process::worker`): it owns
//!   the listening sockets, waits for signals, and on HUP starts new workers with the new
//!   configuration and tells the old ones to quit.
//! - rginx never forks into the background (`daemon on` is accepted and ignored), so the pid
//!   in the pid file is the process that was started.
//! - the master polls for signals every 20 ms instead of sleeping in `sigsuspend()`.
//! - [`stop`] ends an rginx running on a thread of the calling process, as SIGTERM would.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use super::cli::VERSION;
use super::worker::Signals;
use super::worker::{self, WAKE_TOKEN};
use crate::conf::{self, Conf, LoadOpts};
use crate::core::log::{self as rlog, os_err, Level};
use crate::event::reactor::StatusBoard;
use crate::http::ListenOpt;

/// Set by [`stop`]; the master takes it for a SIGTERM.
static STOP: AtomicBool = AtomicBool::new(false);

/// Asks a [`main`](super::main) running in this process (on another thread) to stop as on
/// SIGTERM, and returns at once; `main` returns when its workers are done. For embedders and
/// in-process tests (a module linked into a test binary), which cannot signal their own process
/// without hitting everything else in it. nginx has no equivalent: it is always its own process.
pub fn stop() {
    STOP.store(true, Ordering::Release);
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
        for opt in crate::http::listens(conf) {
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

/// Starts `worker_processes` worker threads, each with its own poll and waker; each builds its
/// own copy of `conf` (see `worker::worker_process_cycle`). nginx: `ngx_start_worker_processes()`.
fn start_workers(conf: &Arc<Conf>, opts: &LoadOpts, ls: &Listeners, gen: usize) -> io::Result<Vec<Worker>> {
    let board = status_board();
    let mut workers = Vec::new();
    for n in 0..conf.main.worker_processes {
        let poll = mio::Poll::new()?;
        let waker = Arc::new(mio::Waker::new(poll.registry(), mio::Token(WAKE_TOKEN))?);
        let signals = Arc::new(Signals::default());
        let socks = ls.for_worker(n)?;
        let (c, o, s, b) = (conf.clone(), opts.clone(), signals.clone(), board.clone());
        let handle = std::thread::Builder::new()
            .name(format!("rginx-worker-{n}"))
            .spawn(move || worker::worker_process_cycle(c, &o, poll, socks, s, b, gen * 100 + n + 1))?;
        workers.push(Worker { signals, waker, handle: Some(handle) });
    }
    Ok(workers)
}

/// The process's one `stub_status` board, shared by the workers of every configuration
/// generation. nginx: the counters `ngx_event_module_init()` puts in shared memory once.
fn status_board() -> Arc<StatusBoard> {
    static BOARD: std::sync::OnceLock<Arc<StatusBoard>> = std::sync::OnceLock::new();
    BOARD.get_or_init(Arc::default).clone()
}

/// Points the error log at the configuration's `error_log` unless `-e` chose it and the
/// configuration names none; `false` when the file cannot be opened.
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

/// nginx: `ngx_create_pidfile()`.
fn write_pid(path: &Path) -> io::Result<()> {
    std::fs::write(path, format!("{}\n", std::process::id()))
}

/// The signals the master waits for. nginx: `ngx_signals[]`.
type SignalSet = signal_hook::iterator::Signals;

/// The master's state between signals. nginx: the cycle, `ngx_processes[]` and the
/// `ngx_quit`/`ngx_terminate` flags of `ngx_master_process_cycle()`.
struct Master {
    conf: Arc<Conf>,
    /// How to read the configuration again on HUP.
    opts: LoadOpts,
    /// `-e` was given: it wins over a configuration without `error_log`.
    cli_log: bool,
    /// The master's copies of the listening sockets; `None` after a graceful stop closed them.
    ls: Option<Listeners>,
    /// The configuration generation, numbering the workers in log lines.
    gen: usize,
    /// The workers of the current configuration.
    workers: Vec<Worker>,
    /// Workers of earlier configurations, still finishing their connections after a reload.
    old: Vec<Worker>,
    /// TERM, INT or QUIT arrived: exit once every worker has finished.
    stopping: bool,
}

/// The master: bind, write the pid file, start workers, then handle signals until exit.
/// nginx: `ngx_master_process_cycle()`.
pub(super) fn run_master(conf: Conf, opts: LoadOpts, cli_log: bool) -> i32 {
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
    let conf = Arc::new(conf);
    let Some(mut signals) = catch_signals() else {
        return 1;
    };
    // SIGPIPE: writes to closed sockets must return EPIPE, not kill us (Rust ignores it already).
    let workers = match start_workers(&conf, &opts, &ls, 0) {
        Ok(w) => w,
        Err(e) => {
            rlog::stderr(Level::Emerg, &format!("could not start workers ({e})"));
            return 1;
        }
    };
    let mut m = Master { conf, opts, cli_log, ls: Some(ls), gen: 0, workers, old: Vec::new(), stopping: false };
    if let Err(e) = write_pid(&m.conf.main.pid) {
        rlog::stderr(Level::Emerg, &format!("open() \"{}\" failed ({})", m.conf.main.pid.display(), os_err(&e)));
        for w in &mut m.workers {
            w.tell(|s| s.terminate.store(true, Ordering::Release));
            w.join();
        }
        return 1;
    }
    crate::ngx_log!(Notice, "{VERSION} started, {} worker(s)", m.workers.len());
    m.wait_for_signals(&mut signals);
    m.exit()
}

/// The master waits for signals; signal-hook's handler only records them (async-signal-safe)
/// and `pending()` hands them over to the master's loop. nginx: `ngx_signal_handler` setting
/// flags that `ngx_master_process_cycle` reads after `sigsuspend()`.
fn catch_signals() -> Option<SignalSet> {
    match SignalSet::new([libc::SIGTERM, libc::SIGINT, libc::SIGQUIT, libc::SIGHUP, libc::SIGUSR1]) {
        Ok(s) => Some(s),
        Err(e) => {
            rlog::stderr(Level::Emerg, &format!("sigaction() failed ({e})"));
            None
        }
    }
}

/// The next signal to act on, oldest first; a [`stop`] call counts as SIGTERM.
fn next_signal(signals: &mut SignalSet, queue: &mut Vec<i32>) -> Option<i32> {
    if queue.is_empty() {
        queue.extend(signals.pending());
        queue.reverse();
    }
    let sig = queue.pop();
    if sig.is_none() && STOP.swap(false, Ordering::AcqRel) {
        return Some(libc::SIGTERM); // `stop()`: an in-process fast stop
    }
    sig
}

impl Master {
    /// The master's loop: one signal at a time, until every worker is done.
    /// nginx: the `for ( ;; )` of `ngx_master_process_cycle()`.
    fn wait_for_signals(&mut self, signals: &mut SignalSet) {
        let mut queue: Vec<i32> = Vec::new();
        loop {
            let sig = next_signal(signals, &mut queue);
            if sig.is_none() {
                std::thread::sleep(Duration::from_millis(20));
            }
            self.reap_old();
            if let Some(s) = sig {
                self.handle(s);
            }
            if self.stopping && self.workers.iter().chain(self.old.iter()).all(Worker::finished) {
                break;
            }
            if !self.stopping && !self.workers.is_empty() && self.workers.iter().all(Worker::finished) {
                crate::ngx_log!(Alert, "all workers exited unexpectedly");
                break;
            }
        }
    }

    /// Joins the old workers that have finished. nginx: `ngx_reap_children()`.
    fn reap_old(&mut self) {
        self.old.retain_mut(|w| {
            if w.finished() {
                w.join();
                false
            } else {
                true
            }
        });
    }

    /// Acts on one signal. nginx: the `ngx_terminate`/`ngx_quit`/`ngx_reopen`/`ngx_reconfigure`
    /// branches of `ngx_master_process_cycle()`.
    fn handle(&mut self, s: i32) {
        match s {
            libc::SIGTERM | libc::SIGINT => {
                crate::ngx_log!(Notice, "signal {s} received, exiting");
                for w in self.workers.iter().chain(self.old.iter()) {
                    w.tell(|s| s.terminate.store(true, Ordering::Release));
                }
                self.stopping = true;
            }
            libc::SIGQUIT => {
                crate::ngx_log!(Notice, "signal {s} received, shutting down gracefully");
                for w in self.workers.iter().chain(self.old.iter()) {
                    w.tell(|s| s.quit.store(true, Ordering::Release));
                }
                self.ls = None; // close the master's copies: nothing new is accepted
                self.stopping = true;
            }
            libc::SIGUSR1 => {
                crate::ngx_log!(Notice, "signal {s} received, reopening logs");
                rlog::reopen();
                for w in &self.workers {
                    w.tell(|s| s.reopen.store(true, Ordering::Release));
                }
            }
            libc::SIGHUP if !self.stopping => {
                crate::ngx_log!(Notice, "signal {s} received, reconfiguring");
                self.reconfigure();
            }
            _ => {}
        }
    }

    /// HUP: new configuration, new workers; the old workers quit gracefully. On failure the
    /// old configuration and workers go on. nginx: `ngx_reconfigure` in the master's loop.
    fn reconfigure(&mut self) {
        match reload(&self.opts, self.ls.take(), self.gen + 1) {
            (Ok((nconf, nls, nworkers)), _) => {
                for w in &self.workers {
                    w.tell(|s| s.quit.store(true, Ordering::Release));
                }
                self.old.append(&mut self.workers);
                self.workers = nworkers;
                self.conf = nconf;
                self.ls = Some(nls);
                self.gen += 1;
                let _ = apply_error_log(&self.conf, self.cli_log);
            }
            (Err(e), back) => {
                ngx_log_emerg(&e);
                self.ls = back;
            }
        }
    }

    /// Joins every worker, closes the sockets and removes the pid file.
    /// nginx: `ngx_master_process_exit()`.
    fn exit(mut self) -> i32 {
        for w in self.workers.iter_mut().chain(self.old.iter_mut()) {
            w.join();
        }
        drop(self.ls.take());
        let _ = std::fs::remove_file(&self.conf.main.pid);
        crate::ngx_log!(Notice, "exit");
        0
    }
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
    match start_workers(&conf, opts, &nls, gen) {
        Ok(w) => (Ok((conf, nls, w)), None),
        Err(e) => (Err(format!("could not start workers ({e})")), Some(nls)),
    }
}

/// The address a listening socket was bound to (for tests and logs).
pub fn local_addr(l: &std::net::TcpListener) -> Option<SocketAddr> {
    l.local_addr().ok()
}
