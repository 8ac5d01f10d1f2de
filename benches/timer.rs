//! Micro-benchmark of the event timer wheel: the four verbs in the patterns the
//! event loop uses them. Plain `fn main` (`harness = false`), no dependencies;
//! run with `cargo bench --bench timer`. Prints one line per case in ns/op.
//!
//! nginx: src/event/ngx_event_timer.{c,h} (nginx has no timer benchmark; its
//! rbtree costs O(log n) per add/del where the wheel costs O(1))

use std::hint::black_box;
use std::time::{Duration, Instant};

use rginx::event::timer::{Msec, TimerWheel};

/// Timers kept pending in the background of the add/del cases, so the wheel is
/// not trivially empty (roughly a busy worker's idle keepalive connections).
const BACKGROUND: u64 = 10_000;

/// xorshift64*: spreads expiries without a rand dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// A wheel at `now` holding `n` timers spread over (0, `spread`] ms.
fn wheel_with(n: u64, spread: Msec, now: Msec) -> TimerWheel<u64> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut w = TimerWheel::new(now);
    for i in 0..n {
        w.add_timer(i, 1 + rng.below(spread), now);
    }
    w
}

fn report(case: &str, ops: u64, elapsed: Duration) {
    let ns = elapsed.as_nanos() as f64 / ops as f64;
    println!("{case:<52} {ns:>8.1} ns/op  ({ops} ops)");
}

/// The keepalive pattern: a request arms a 60 s timer and cancels it soon after.
fn add_del() {
    let now = 1_000_000;
    let mut w = wheel_with(BACKGROUND, 60_000, now);
    let ops = 5_000_000;
    let start = Instant::now();
    for i in 0..ops {
        let id = w.add_timer(i, black_box(60_000), now + (i >> 10));
        black_box(w.del_timer(id));
    }
    report("add_timer + del_timer (60 s, 10k pending)", ops, start.elapsed());
}

/// A 1 ms timer armed and fired on the next loop turn, one per turn.
fn add_expire() {
    let mut now = 1_000_000;
    let mut w = wheel_with(BACKGROUND, 60_000, now);
    let mut fired = Vec::with_capacity(64);
    let ops = 2_000_000;
    let start = Instant::now();
    for i in 0..ops {
        w.add_timer(i, 1, now);
        now += 1;
        w.expire_timers(now, &mut fired);
        black_box(&fired);
        fired.clear();
    }
    report("add_timer + expire_timers (1 ms, 10k pending)", ops, start.elapsed());
}

/// What the loop asks before every epoll_wait.
fn find() {
    let now = 1_000_000;
    let w = wheel_with(10_000, 60_000, now);
    let ops = 20_000_000;
    let start = Instant::now();
    for i in 0..ops {
        black_box(w.find_timer(black_box(now + (i & 1023))));
    }
    report("find_timer (10k pending over 60 s)", ops, start.elapsed());

    // one timer a revolution away: the bitmap search has to wrap round
    let mut w = TimerWheel::new(now);
    w.add_timer(0u64, 4_095, now);
    let start = Instant::now();
    for _ in 0..ops {
        black_box(w.find_timer(black_box(now)));
    }
    report("find_timer (1 pending, 4095 ms away)", ops, start.elapsed());
}

/// 100k timers spread over `spread` ms, expired by calls `step` ms apart;
/// ns per fired timer, the wheel's construction not counted.
fn expire(case: &str, spread: Msec, step: Msec) {
    let (n, rounds) = (100_000, 5);
    let mut fired = Vec::with_capacity(n as usize);
    let mut elapsed = Duration::ZERO;
    for _ in 0..rounds {
        let now = 1_000_000;
        let mut w = wheel_with(n, spread, now);
        let start = Instant::now();
        let mut t = now;
        while !w.is_empty() {
            t += step;
            w.expire_timers(t, &mut fired);
        }
        elapsed += start.elapsed();
        assert_eq!(fired.len(), n as usize);
        fired.clear();
    }
    report(case, n * rounds, elapsed);
}

fn main() {
    let start = Instant::now();
    add_del();
    add_expire();
    find();
    expire("expire_timers (100k over 10 s, 1 ms steps)", 10_000, 1);
    expire("expire_timers (100k over 60 s, one 1 h jump)", 60_000, 3_600_000);
    println!("total {:.2} s", start.elapsed().as_secs_f64());
}
