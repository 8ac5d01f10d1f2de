//! The cached clock: read once per loop turn, formatted once per second.
//!
//! nginx: `ngx_time_update()`, `ngx_current_msec`, `ngx_cached_http_time`,
//! `ngx_cached_err_log_time`, `ngx_cached_http_log_time`, `ngx_cached_http_log_iso8601`
//! (src/core/ngx_times.c).
//!
//! Differs from nginx:
//! - nginx keeps slots of cached strings for signal-safety; rginx is one thread per worker, so one
//!   `Times` per worker, updated at the top of every loop turn, is enough.
//! - `msec` is monotonic (from `Instant`), as `ngx_current_msec` is since nginx 1.13.
//! - nginx's `ngx_time_update()` calls `ngx_localtime()` (src/os) itself. In rginx `core` sits
//!   below `os` in the layer table, so the clock cannot name `os`: the top of the program
//!   installs the local-offset function once (`set_local_offset(os::sys::local_offset)` in
//!   `process::main`), before any time is formatted. It is one process-wide hook rather than an
//!   argument to `update` because the error log (`core::log`, also below `os`) reads the clock
//!   on every thread, the master's included, not only where a worker updates it. Until it is
//!   installed (unit tests, a library user that skips `process::main`) local time is UTC.
//! - one clock read per turn: nginx reads the wall clock and the monotonic clock in every
//!   `ngx_time_update()`; rginx reads the monotonic clock and derives the wall time from the
//!   offset between the two measured at the last wall-clock read, which it repeats whenever the
//!   derived time enters a new second (so the strings are formatted from a fresh wall-clock
//!   reading, at most once a second as before). A step of the wall clock (date, NTP) shows in
//!   `unix_ms` at the next second boundary instead of the next loop turn, and so does the
//!   time a suspended machine or paused VM missed (the monotonic clock does not count it);
//!   both clocks tick at the same rate between readings.

use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The local time zone's offset from UTC, in seconds, at a unix time. nginx: `tm_gmtoff` of
/// `ngx_localtime()`.
pub type LocalOffset = fn(u64) -> i64;

static LOCAL_OFFSET: OnceLock<LocalOffset> = OnceLock::new();

/// Tells the clock how to find the local UTC offset (`os::sys::local_offset`); called once by
/// the top of the program. A second call is ignored: the time zone is the process's.
pub fn set_local_offset(f: LocalOffset) {
    LOCAL_OFFSET.get_or_init(|| f);
}

/// The local UTC offset at `secs`; 0 (UTC) until `set_local_offset` ran.
fn local_offset(secs: u64) -> i64 {
    LOCAL_OFFSET.get().map_or(0, |f| f(secs))
}

/// Cached time for one worker. nginx: the `ngx_cached_*` globals.
pub struct Times {
    start: Instant,
    /// Monotonic milliseconds since the worker started. nginx: `ngx_current_msec`.
    pub msec: u64,
    /// Wall clock in milliseconds since the epoch (for `$msec`, `$request_time`).
    pub unix_ms: u64,
    /// `unix_ms - msec` at the last wall-clock read (wrapping: the difference of two `u64`s).
    wall_offset: u64,
    sec: u64,
    /// "Sun, 22 Nov 2026 10:00:00 GMT" — the `Date` header. nginx: `ngx_cached_http_time`.
    pub http_time: String,
    /// "2026/11/22 10:00:00" — error log lines. nginx: `ngx_cached_err_log_time`.
    pub err_log_time: String,
    /// "22/Nov/2026:10:00:00 +0000" — `$time_local`. nginx: `ngx_cached_http_log_time`.
    pub http_log_time: String,
    /// "2026-11-22T10:00:00+00:00" — `$time_iso8601`.
    pub iso8601: String,
}

const WDAY: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MON: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// Civil date from days since 1970-01-01 (Howard Hinnant's algorithm). nginx: `ngx_gmtime()`.
pub fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Formats a unix time as an HTTP date ("Sun, 06 Nov 1994 08:49:37 GMT").
/// nginx: `ngx_http_time()`.
pub fn http_time(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil(days);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        WDAY[days.rem_euclid(7) as usize],
        d,
        MON[(m - 1) as usize],
        y,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

impl Times {
    /// Starts the clock.
    pub fn new() -> Times {
        let mut t = Times {
            start: Instant::now(),
            msec: 0,
            unix_ms: 0,
            wall_offset: 0,
            sec: u64::MAX,
            http_time: String::new(),
            err_log_time: String::new(),
            http_log_time: String::new(),
            iso8601: String::new(),
        };
        t.update();
        t
    }

    /// Re-reads the clock; reformats the strings when the second changed.
    /// nginx: `ngx_time_update()`.
    ///
    /// Only the monotonic clock is read on a turn that stays within the second the strings
    /// were formatted for: the wall time is derived from it (see the header).
    pub fn update(&mut self) {
        let msec = self.start.elapsed().as_millis() as u64;
        self.msec = msec;
        let unix_ms = msec.wrapping_add(self.wall_offset);
        if unix_ms / 1000 == self.sec {
            self.unix_ms = unix_ms;
            return;
        }
        self.read_wall_clock(msec);
    }

    /// Reads the wall clock (a new second, by the derived time): re-measures the offset and
    /// reformats the strings when the second really changed.
    #[cold]
    fn read_wall_clock(&mut self, msec: u64) {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        self.unix_ms = now;
        self.wall_offset = now.wrapping_sub(msec);
        let sec = now / 1000;
        if sec == self.sec {
            return;
        }
        self.sec = sec;
        self.http_time = http_time(sec);
        let off = local_offset(sec);
        let local = (sec as i64 + off) as u64;
        let (y, m, d) = civil((local / 86_400) as i64);
        let rem = local % 86_400;
        let (hh, mm, ss) = (rem / 3600, rem % 3600 / 60, rem % 60);
        self.err_log_time = format!("{y}/{m:02}/{d:02} {hh:02}:{mm:02}:{ss:02}");
        let sign = if off < 0 { '-' } else { '+' };
        let (oh, om) = (off.abs() / 3600, off.abs() % 3600 / 60);
        self.http_log_time =
            format!("{d:02}/{}/{y}:{hh:02}:{mm:02}:{ss:02} {sign}{oh:02}{om:02}", MON[(m - 1) as usize]);
        self.iso8601 = format!("{y}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}{sign}{oh:02}:{om:02}");
    }
}

impl Default for Times {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_date_format() {
        assert_eq!(http_time(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_time(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_time(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
    }

    fn wall_ms() -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
    }

    /// The derived wall time is always in the second the strings were formatted for.
    #[test]
    fn strings_match_the_derived_second() {
        let mut t = Times::new();
        for _ in 0..1000 {
            t.update();
            assert_eq!(t.unix_ms / 1000, t.sec);
            assert_eq!(t.http_time, http_time(t.sec));
        }
    }

    /// A derived time that leaves the formatted second (here: an offset made 5 s wrong, as
    /// after a step of the wall clock) makes `update` read the wall clock again.
    #[test]
    fn a_wrong_offset_is_corrected_at_the_next_second() {
        let mut t = Times::new();
        t.wall_offset = t.wall_offset.wrapping_add(5000);
        let before = wall_ms();
        t.update();
        let after = wall_ms();
        assert!(before <= t.unix_ms && t.unix_ms <= after, "{before} {} {after}", t.unix_ms);
        assert_eq!(t.http_time, http_time(t.unix_ms / 1000));
    }
}
