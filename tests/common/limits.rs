//! Running the binary under operating-system limits, for the tests of what a server does when
//! the system says no: out of descriptors (`RLIMIT_NOFILE` → EMFILE on `accept`), out of disk
//! (`RLIMIT_FSIZE` → EFBIG on temp-file writes, standing in for ENOSPC), and a `-s` that must
//! not signal anyone else.
//!
//! Limits are set on the running process with `prlimit(2)` after [`Rginx::start`] returned, so
//! a test can first measure the baseline (open descriptors) and set the limit relative to it.
#![allow(dead_code)]

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};

use super::{bin, poll, TIMEOUT};

/// A resource limit [`set_limit`] can lower.
#[derive(Clone, Copy, Debug)]
pub enum Limit {
    /// Open descriptors (`RLIMIT_NOFILE`): `accept()` fails with EMFILE past it.
    Nofile,
    /// Bytes any file may grow to (`RLIMIT_FSIZE`): writes past it fail with EFBIG, once
    /// SIGXFSZ is ignored (see [`ignore_sigxfsz`]), else the signal kills the process.
    Fsize,
}

/// Sets both the soft and hard limit of `resource` of process `pid` to `value`; panics if the
/// kernel refuses (the test needs the limit to mean anything).
pub fn set_limit(pid: u32, resource: Limit, value: u64) {
    let which = match resource {
        Limit::Nofile => libc::RLIMIT_NOFILE,
        Limit::Fsize => libc::RLIMIT_FSIZE,
    };
    let new = libc::rlimit { rlim_cur: value, rlim_max: value };
    // SAFETY: prlimit(2) on a pid we started, reading only `new`; no old value is asked for.
    let rc = unsafe { libc::prlimit(pid as libc::pid_t, which, &new, std::ptr::null_mut()) };
    assert_eq!(rc, 0, "prlimit({pid}, {resource:?}, {value}): {}", std::io::Error::last_os_error());
}

/// Ignores SIGXFSZ in this test process, so that every server it starts from now on inherits
/// the ignored disposition across `exec` (POSIX keeps ignored signals ignored; neither Rust's
/// `Command` nor nginx resets this one) and a write past `RLIMIT_FSIZE` fails with EFBIG
/// instead of killing the server. Harmless to the test process: it sets no file size limit on
/// itself.
pub fn ignore_sigxfsz() {
    // SAFETY: installing SIG_IGN for one signal; no handler code runs.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}

/// Whether `unshare --user --map-root-user --pid --fork` works here (user namespaces allowed).
pub fn can_isolate() -> bool {
    let probe = Command::new("unshare")
        .args(["--user", "--map-root-user", "--pid", "--fork", "true"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    probe.is_ok_and(|s| s.success())
}

/// Runs the binary with `args` in `cwd` as the only process of a new pid namespace (and in a
/// new process group): whatever pid it signals — its own group (`kill(0)`), everyone
/// (`kill(-1)`) — nothing outside can be hit, so a test of a bad pid file cannot kill the test
/// harness when it fails. Returns (exit code, stderr); `None` if namespaces are unavailable
/// (see [`can_isolate`]). Killed, and the test panics, after 10 s.
pub fn run_cli_isolated(args: &[&str], cwd: &Path) -> Option<(Option<i32>, String)> {
    use std::os::unix::process::CommandExt;
    if !can_isolate() {
        return None;
    }
    let mut cmd = Command::new("unshare");
    cmd.args(["--user", "--map-root-user", "--pid", "--fork", "--kill-child", "--"]);
    cmd.arg(bin()).args(args).current_dir(cwd).process_group(0);
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("cannot run unshare");
    let Some(status) = poll(TIMEOUT, || child.try_wait().unwrap()) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{} {args:?} did not exit within 10 s", bin());
    };
    let mut err = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut err);
    Some((status.code(), err))
}
