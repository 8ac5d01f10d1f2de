//! The system calls std does not wrap: the only `unsafe` code in rginx.
//!
//! The crate is `#![deny(unsafe_code)]` (src/lib.rs); this module alone is allowed it (src/os/mod.rs),
//! so a reader auditing rginx's `unsafe` reads this one file. Each call is wrapped in a safe
//! function that owns every buffer it hands to libc, with a `// SAFETY:` note saying why the
//! call is sound.
//!
//! nginx: `ngx_localtime()` (src/os/unix/ngx_time.c), `ngx_os_signal_process()`
//! (src/os/unix/ngx_process.c), the `MSG_PEEK` `recv` of the keepalive module; `pipe2` and
//! `splice` have no nginx counterpart (haproxy's src/pipe.c and src/raw_sock.c).
//!
//! Differs from nginx:
//! - nginx calls `localtime_r` from `ngx_time_update()` in src/core; in rginx `core` sits below
//!   `os` in the layer table, so the clock (`core::times`) cannot call this file: the top of the
//!   program installs `local_offset` into it (`core::times::set_local_offset`).

#![deny(clippy::undocumented_unsafe_blocks)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// The local time zone's offset from UTC, in seconds, at the unix time `secs` (east positive:
/// +3600 for CET in winter). 0 when libc cannot convert the time, as UTC is the safe reading.
///
/// nginx: `ngx_localtime()` and its `tm_gmtoff` (`cached_gmtoff` in `ngx_time_update()`).
pub fn local_offset(secs: u64) -> i64 {
    let Ok(t) = libc::time_t::try_from(secs) else {
        return 0;
    };
    // SAFETY: `tm` is a plain C struct for which all-zero bytes are a valid value; it lives on
    // our stack for the whole call, and `localtime_r` (the reentrant form: no static buffer
    // shared with other threads) only reads `t` and writes `tm`.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers come from references to locals that outlive the call.
    let r = unsafe { libc::localtime_r(&t, &mut tm) };
    if r.is_null() {
        0
    } else {
        tm.tm_gmtoff
    }
}

/// Sends signal `sig` to process `pid`.
///
/// # Returns
/// `Err` with the OS error (`ESRCH`, `EPERM`, ...) when `kill(2)` fails.
///
/// nginx: the `kill()` in `ngx_os_signal_process()`.
pub fn kill(pid: libc::pid_t, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: kill(2) takes two integers and touches no memory of ours. Which processes it
    // reaches is the caller's decision (`process::cli::pid_number` refuses 0 and negative pids,
    // which would signal a process group).
    if unsafe { libc::kill(pid, sig) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A pipe whose two ends never block, closed on exec: `(read end, write end)`. The kernel
/// buffer `splice` moves body bytes through (`event::splice`).
///
/// nginx: none (nginx never splices); haproxy's `get_pipe()` makes the same pipe.
pub fn pipe_nonblocking() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds: [libc::c_int; 2] = [-1, -1];
    // SAFETY: `fds` is a local array of the two ints pipe2(2) writes; it outlives the call.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both descriptors are open and nothing else owns them; each
    // `OwnedFd` closes its own exactly once.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Moves up to `len` bytes from `from` to `to` inside the kernel, one of them a pipe
/// (`splice(2)` with `SPLICE_F_MOVE | SPLICE_F_NONBLOCK`): the bytes never enter user memory.
/// `Ok(0)`: the input socket reached its end. `WouldBlock`: nothing to move now (the socket
/// has no data or no room, or the pipe is empty or full). Retried on EINTR.
pub fn splice(from: BorrowedFd<'_>, to: BorrowedFd<'_>, len: usize) -> io::Result<usize> {
    loop {
        // SAFETY: both descriptors are borrowed for the call, so they are open; the offsets
        // are null (socket and pipe have none) and no memory of ours is passed.
        let n = unsafe {
            libc::splice(
                from.as_raw_fd(),
                std::ptr::null_mut(),
                to.as_raw_fd(),
                std::ptr::null_mut(),
                len,
                libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
            )
        };
        if let Ok(n) = usize::try_from(n) {
            return Ok(n);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Whether a byte waits on socket `fd`, without taking it (`recv` with `MSG_PEEK |
/// MSG_DONTWAIT`): `Ok(1)` a byte waits, `Ok(0)` the peer closed, `WouldBlock` nothing yet.
/// Any stream socket, TCP or UNIX-domain (std's `peek` exists for TCP only).
///
/// nginx: the `recv(c->fd, buf, 1, MSG_PEEK)` of `ngx_http_upstream_keepalive_close_handler()`.
pub fn peek(fd: BorrowedFd<'_>) -> io::Result<usize> {
    let mut b = [0u8; 1];
    loop {
        // SAFETY: `b` is a local buffer of 1 byte that outlives the call, and recv(2) writes
        // at most the length given; the descriptor is borrowed, so it is open.
        let n = unsafe { libc::recv(fd.as_raw_fd(), b.as_mut_ptr().cast(), 1, libc::MSG_PEEK | libc::MSG_DONTWAIT) };
        if let Ok(n) = usize::try_from(n) {
            return Ok(n);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_zero_checks_a_process_exists() {
        let me = std::process::id() as libc::pid_t;
        assert!(kill(me, 0).is_ok());
        // pid_max on Linux is at most 2^22: this pid cannot exist.
        let err = kill(i32::MAX, 0).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ESRCH));
    }

    #[test]
    fn local_offset_is_a_whole_zone_offset() {
        // Whatever TZ the machine has: since 1972 every zone is within a day of UTC, on
        // 15-minute steps.
        for secs in [784_111_777, 1_800_000_000] {
            let off = local_offset(secs);
            assert!(off.abs() < 86_400 && off % 900 == 0, "{secs}: {off}");
        }
    }
}
