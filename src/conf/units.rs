//! Measurement units in directive arguments: sizes (`8k`, `1m`), offsets (`1g`) and time
//! intervals (`500ms`, `1h 30m`), parsed exactly as nginx parses them so that the same file
//! means the same thing to both.
//!
//! nginx: src/core/ngx_parse.c (`ngx_parse_size`, `ngx_parse_offset`, `ngx_parse_time`)
//!
//! Differs from nginx:
//! - Failure is `None` instead of the `NGX_ERROR` sentinel (-1 cast to the result type).
//! - `parse_time(s, is_sec)` is split into [`parse_msec`] (`is_sec = 0`) and [`parse_sec`]
//!   (`is_sec = 1`); the results are unsigned, with nginx's 64-bit limits
//!   (`NGX_MAX_SIZE_T_VALUE`, `NGX_MAX_OFF_T_VALUE`, `NGX_MAX_INT_T_VALUE`, all `i64::MAX`).

/// `NGX_MAX_SIZE_T_VALUE`: nginx keeps sizes in a signed `ssize_t` so that -1 can mean error.
const MAX_SIZE: u64 = isize::MAX as u64;

/// `NGX_MAX_OFF_T_VALUE` (a 64-bit `off_t`).
const MAX_OFF: u64 = i64::MAX as u64;

/// `NGX_MAX_INT_T_VALUE` (a 64-bit `ngx_int_t`): the ceiling of every time computation.
const MAX_INT: i64 = i64::MAX;

/// Parses a size: decimal bytes with an optional `k`/`K` (KiB) or `m`/`M` (MiB) suffix.
///
/// # Returns
/// The number of bytes, or `None` for an empty string, anything but digits before the suffix
/// (no sign, no spaces), or a value above `NGX_MAX_SIZE_T_VALUE` once scaled.
///
/// nginx: `ngx_parse_size()` (src/core/ngx_parse.c)
pub fn parse_size(s: &str) -> Option<usize> {
    let (digits, scale) = match s.as_bytes().last()? {
        b'k' | b'K' => (&s[..s.len() - 1], 1024),
        b'm' | b'M' => (&s[..s.len() - 1], 1024 * 1024),
        _ => (s, 1),
    };
    let n = atoi(digits, MAX_SIZE / scale)?;
    usize::try_from(n * scale).ok()
}

/// Parses an offset (a file size or position): as [`parse_size`], plus `g`/`G` (GiB).
///
/// # Returns
/// The number of bytes, or `None` on junk or a value above `NGX_MAX_OFF_T_VALUE` once scaled.
///
/// nginx: `ngx_parse_offset()` (src/core/ngx_parse.c)
pub fn parse_offset(s: &str) -> Option<u64> {
    let (digits, scale) = match s.as_bytes().last()? {
        b'k' | b'K' => (&s[..s.len() - 1], 1024),
        b'm' | b'M' => (&s[..s.len() - 1], 1024 * 1024),
        b'g' | b'G' => (&s[..s.len() - 1], 1024 * 1024 * 1024),
        _ => (s, 1),
    };
    Some(atoi(digits, MAX_OFF / scale)? * scale)
}

/// Parses a time interval for a millisecond slot (`proxy_read_timeout`, `keepalive_timeout`, ...).
///
/// Units are `ms`, `s`, `m`, `h`, `d`, `w`, each at most once and from the most to the least
/// significant, optionally separated by spaces (`"1h 30m"`, `"1h30m"`). A number without a
/// unit means seconds (`"60"` is 60000). `y` and `M` are rejected here, as nginx does: its
/// msec parser starts past the month step, because `ngx_msec_t` timers would not hold them.
///
/// # Returns
/// Milliseconds, or `None` on junk, a repeated or out-of-order unit, no digits at all, or overflow.
///
/// nginx: `ngx_parse_time(line, 0)` (src/core/ngx_parse.c), used by `ngx_conf_set_msec_slot()`
pub fn parse_msec(s: &str) -> Option<u64> {
    parse_time(s.as_bytes(), false).and_then(|v| u64::try_from(v).ok())
}

/// Parses a time interval for a second slot (e.g. the header timeout of `keepalive_timeout`).
///
/// Units are `y` (365 days), `M` (30 days), `w`, `d`, `h`, `m`, `s`, in decreasing order, each
/// at most once; a number without a unit is seconds; `ms` is an error.
///
/// # Returns
/// Seconds, or `None` on junk, a repeated or out-of-order unit, `ms`, or overflow.
///
/// nginx: `ngx_parse_time(line, 1)` (src/core/ngx_parse.c), used by `ngx_conf_set_sec_slot()`
pub fn parse_sec(s: &str) -> Option<u64> {
    parse_time(s.as_bytes(), true).and_then(|v| u64::try_from(v).ok())
}

/// The unit just read. The order matters: a unit is only accepted after a larger one
/// (`step` only moves forward), which is how nginx rejects `"30m 1h"` and `"1s 1s"`.
///
/// nginx: the `step` enum local to `ngx_parse_time()`
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    Start,
    Year,
    Month,
    Week,
    Day,
    Hour,
    Min,
    Sec,
    Msec,
    /// A bare number followed by a space: counted as seconds; only a final bare number may follow.
    Last,
}

const MIN: i64 = 60;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;

/// What `parse_time` has read so far. nginx: the locals of `ngx_parse_time()`.
struct TimeParser {
    /// `parse_sec` (a unit-less number is seconds, `ms` is an error) or `parse_msec`.
    is_sec: bool,
    /// The last unit read: the next one must be smaller.
    step: Step,
    /// A digit was seen: an input of only units and spaces is an error.
    valid: bool,
    /// The number being read, before its unit scales it.
    value: i64,
    /// The sum of the numbers whose unit has been read, in the result's unit.
    total: i64,
}

/// The shared body of [`parse_msec`] and [`parse_sec`]; the result is never negative.
///
/// nginx: `ngx_parse_time()` (src/core/ngx_parse.c)
fn parse_time(s: &[u8], is_sec: bool) -> Option<i64> {
    // nginx starts msec parsing at st_month, so "y" and "M" are already out of order there
    let step = if is_sec { Step::Start } else { Step::Month };
    let mut t = TimeParser { is_sec, step, valid: false, value: 0, total: 0 };
    let mut p = 0;
    while let Some(&ch) = s.get(p) {
        p += 1;
        if ch.is_ascii_digit() {
            t.digit(ch)?;
            continue;
        }
        // here: a unit letter (or a space) closes the number read so far
        let (next, scale) = t.unit(ch, s.get(p).copied())?;
        if next == Step::Msec {
            p += 1; // the 's' of "ms"
        }
        t.close_number(next, scale)?;
        while s.get(p) == Some(&b' ') {
            p += 1;
        }
    }
    t.finish()
}

impl TimeParser {
    /// Appends a decimal digit to the number being read; `None` past `NGX_MAX_INT_T_VALUE`.
    fn digit(&mut self, ch: u8) -> Option<()> {
        let (cutoff, cutlim) = (MAX_INT / 10, MAX_INT % 10);
        let d = i64::from(ch - b'0');
        if self.value >= cutoff && (self.value > cutoff || d > cutlim) {
            return None;
        }
        self.value = self.value * 10 + d;
        self.valid = true;
        Some(())
    }

    /// The unit that `ch` (followed by `after`) names, and its length in seconds (1 for `ms`,
    /// which `close_number` does not scale). A space after a bare number counts as seconds.
    /// `None` for anything else, `ms` in a second slot, or `y` anywhere but first.
    fn unit(&self, ch: u8, after: Option<u8>) -> Option<(Step, i64)> {
        Some(match ch {
            b'y' if self.step == Step::Start => (Step::Year, 365 * DAY),
            b'M' => (Step::Month, 30 * DAY),
            b'w' => (Step::Week, 7 * DAY),
            b'd' => (Step::Day, DAY),
            b'h' => (Step::Hour, HOUR),
            b'm' if after == Some(b's') && self.is_sec => return None,
            b'm' if after == Some(b's') => (Step::Msec, 1),
            b'm' => (Step::Min, MIN),
            b's' => (Step::Sec, 1),
            b' ' if self.step < Step::Sec => (Step::Last, 1),
            _ => return None,
        })
    }

    /// Moves to unit `next` (each unit at most once, largest first) and adds the number read
    /// so far, times `scale` seconds, to the total. `None` out of order or on overflow.
    fn close_number(&mut self, next: Step, scale: i64) -> Option<()> {
        if next != Step::Last && self.step >= next {
            return None;
        }
        self.step = next;
        let (mut scale, mut max) = (scale, MAX_INT / scale);
        if next != Step::Msec && !self.is_sec {
            scale *= 1000;
            max /= 1000;
        }
        if self.value > max {
            return None;
        }
        self.add(self.value * scale)
    }

    /// Adds `v` to the total and starts a new number; `None` on overflow.
    fn add(&mut self, v: i64) -> Option<()> {
        if self.total > MAX_INT - v {
            return None;
        }
        self.total += v;
        self.value = 0;
        Some(())
    }

    /// The end of the input: a trailing number without a unit means seconds.
    fn finish(mut self) -> Option<i64> {
        if !self.valid {
            return None;
        }
        if !self.is_sec {
            if self.value > MAX_INT / 1000 {
                return None;
            }
            self.value *= 1000;
        }
        self.add(self.value)?;
        Some(self.total)
    }
}

/// Parses plain decimal digits (no sign, no spaces, at least one digit) not above `max`.
///
/// nginx: `ngx_atosz()` / `ngx_atoof()` (src/core/ngx_string.c) followed by the `> max` check
/// of the callers
fn atoi(s: &str, max: u64) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    for ch in s.bytes() {
        if !ch.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(ch - b'0'))?;
        if n > max {
            return None;
        }
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1024"), Some(1024));
        assert_eq!(parse_size("8k"), Some(8 * 1024));
        assert_eq!(parse_size("8K"), Some(8 * 1024));
        assert_eq!(parse_size("1m"), Some(1024 * 1024));
        assert_eq!(parse_size("1M"), Some(1024 * 1024));
        assert_eq!(parse_size("0"), Some(0));
        assert_eq!(parse_size("007k"), Some(7 * 1024));
    }

    #[test]
    fn bad_sizes() {
        for s in ["", "k", "m", "1g", "1G", "-1", "+1", " 1", "1 ", "1.5k", "1kb", "k1", "1mm"] {
            assert_eq!(parse_size(s), None, "{s:?}");
        }
        let max = isize::MAX as usize;
        assert_eq!(parse_size(&max.to_string()), Some(max));
        assert_eq!(parse_size(&(max as u64 + 1).to_string()), None);
        assert_eq!(parse_size(&format!("{}k", max / 1024)), Some(max / 1024 * 1024));
        assert_eq!(parse_size(&format!("{}k", max / 1024 + 1)), None);
        assert_eq!(parse_size("99999999999999999999999"), None);
    }

    #[test]
    fn offsets() {
        assert_eq!(parse_offset("1g"), Some(1 << 30));
        assert_eq!(parse_offset("2G"), Some(2 << 30));
        assert_eq!(parse_offset("10m"), Some(10 << 20));
        assert_eq!(parse_offset("3k"), Some(3 << 10));
        assert_eq!(parse_offset("12345"), Some(12345));
        assert_eq!(parse_offset("1t"), None);
        assert_eq!(parse_offset("g"), None);
        assert_eq!(parse_offset(""), None);
        assert_eq!(parse_offset(&format!("{}g", (i64::MAX as u64 >> 30) + 1)), None);
    }

    #[test]
    fn msec_units() {
        assert_eq!(parse_msec("500ms"), Some(500));
        assert_eq!(parse_msec("60s"), Some(60_000));
        assert_eq!(parse_msec("60"), Some(60_000)); // a bare number is seconds
        assert_eq!(parse_msec("1m"), Some(60_000));
        assert_eq!(parse_msec("1h"), Some(3_600_000));
        assert_eq!(parse_msec("1d"), Some(86_400_000));
        assert_eq!(parse_msec("1w"), Some(7 * 86_400_000));
        assert_eq!(parse_msec("0"), Some(0));
    }

    #[test]
    fn msec_multi_unit() {
        assert_eq!(parse_msec("1h 30m"), Some(5_400_000));
        assert_eq!(parse_msec("1h30m"), Some(5_400_000));
        assert_eq!(parse_msec("1h  30m  "), Some(5_400_000));
        assert_eq!(parse_msec("1m 30"), Some(90_000)); // trailing bare number: seconds
        assert_eq!(parse_msec("1s 500ms"), Some(1_500));
        assert_eq!(parse_msec("1d 2h 3m 4s 5ms"), Some(93_784_005));
        // nginx quirks: a leading space is skipped, "1 2" is 1s + 2s
        assert_eq!(parse_msec(" 5"), Some(5_000));
        assert_eq!(parse_msec("1 2"), Some(3_000));
    }

    #[test]
    fn msec_rejects() {
        for s in [
            "", " ", "s", "ms", "abc", "1x", "-1", "1.5s", "30m 1h", "1s 1s", "1m1m", "5ms 1s", "1ms1ms", "1 2 3",
            "1 2s", "1y", "1M", "1S", "1H",
        ] {
            assert_eq!(parse_msec(s), None, "{s:?}");
        }
        assert_eq!(parse_msec("9223372036854775807ms"), Some(i64::MAX as u64));
        assert_eq!(parse_msec("9223372036854775808ms"), None);
        assert_eq!(parse_msec("9223372036854775s"), Some(9_223_372_036_854_775_000));
        assert_eq!(parse_msec("9223372036854776s"), None);
        assert_eq!(parse_msec("9223372036854776"), None);
        assert_eq!(parse_msec("9223372036854775807ms 1ms"), None);
    }

    #[test]
    fn sec_units() {
        assert_eq!(parse_sec("60"), Some(60));
        assert_eq!(parse_sec("60s"), Some(60));
        assert_eq!(parse_sec("2m"), Some(120));
        assert_eq!(parse_sec("1h 30m"), Some(5_400));
        assert_eq!(parse_sec("1y"), Some(365 * 86_400));
        assert_eq!(parse_sec("1M"), Some(30 * 86_400));
        assert_eq!(parse_sec("1y 1M 1w 1d 1h 1m 1s"), Some(34_822_861));
        assert_eq!(parse_sec("1M 1y"), None);
        assert_eq!(parse_sec("1w 1M"), None);
        assert_eq!(parse_sec("500ms"), None);
        assert_eq!(parse_sec("1s 5ms"), None);
        assert_eq!(parse_sec(""), None);
        assert_eq!(parse_sec("9223372036854775807"), Some(i64::MAX as u64));
        assert_eq!(parse_sec("9223372036854775807 1s"), None);
    }
}
