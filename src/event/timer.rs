//! Event timers: a hashed timer wheel that tells the event loop how long it may
//! sleep (`find_timer`) and which timers ran out while it slept (`expire_timers`).
//!
//! nginx: src/event/ngx_event_timer.c, src/event/ngx_event_timer.h
//!
//! nginx keeps every armed `ngx_event_t` in an rbtree keyed by its expiry
//! (`ngx_event_timer_rbtree`): add and delete are O(log n) and the nearest timer
//! is the tree's minimum. rginx keeps a hashed wheel with the same four verbs,
//! `add_timer`, `del_timer`, `find_timer` and `expire_timers`, because a
//! keepalive request arms and cancels several timers per request and a wheel
//! makes both O(1).
//!
//! The wheel has `WHEEL_SIZE` slots of 1 ms (4096, about 4 s per revolution).
//! A timer lives in the slot `expires % WHEEL_SIZE`, in an intrusive doubly
//! linked list threaded through one entry vector (a slab with a free list), so
//! adding appends to a list and cancelling unlinks in place. Each entry keeps
//! its absolute expiry: a 60 s or one-hour timer simply stays in its slot while
//! the wheel turns past it, and fires on the turn where it is due. A bitmap of
//! occupied slots (64 words plus one summary word) lets `find_timer` and
//! `expire_timers` skip empty slots with a few `trailing_zeros`, and a lower
//! bound of each slot's expiries lets them look past a slot that only holds
//! timers of later rounds without walking its list.
//!
//! Differs from nginx:
//! - a hashed wheel instead of an rbtree; add and delete are O(1).
//! - `find_timer` may answer early, never late: it reads per-slot lower bounds
//!   (left stale by `del_timer` to keep it O(1)) and looks at no more than
//!   `FIND_SCAN_SLOTS` occupied slots. When it is early, the loop wakes up,
//!   finds nothing due and asks again, the price of not scanning every timer.
//!   Before scanning it answers from the nearest expiry when that is known
//!   exactly (`nearest`: kept by `add_timer`, lost when the nearest timer is
//!   cancelled or timers fire, known again whenever the wheel empties), which
//!   on a keep-alive worker is most turns.
//! - `expire_timers` does not call `ev->handler`; it pushes the fired timers'
//!   data into `fired` and the caller (`event::expire_timers`) dispatches
//!   them and sets `timedout`, because the wheel lives inside the `Reactor`,
//!   inside the world the handlers need mutably.
//! - no `NGX_TIMER_LAZY_DELAY`: nginx skips re-arming a timer that moves by less
//!   than 300 ms to spare the rbtree; re-arming here is two list operations.
//! - the owner keeps a `TimerId` (slab index + generation) instead of the
//!   `ev->timer` node and `ev->timer_set` flag; a stale id is harmless.
//! - time is an argument, not the global `ngx_current_msec`, and a 64-bit
//!   millisecond count that never wraps, so plain comparisons replace nginx's
//!   `(ngx_msec_int_t) (a - b)` casts. Time going backwards counts as standing still.
//! - no `ngx_event_no_timers_left()` (graceful shutdown's cancelable timers).

use std::fmt;
use std::num::NonZeroU32;

/// Milliseconds on the reactor's monotonic clock (`Times::msec`).
///
/// nginx: `ngx_msec_t` / `ngx_current_msec` (src/core/ngx_times.h)
pub type Msec = u64;

/// log2 of the number of slots.
const WHEEL_BITS: u32 = 12;
/// Slots of 1 ms: one revolution is 4096 ms, long enough that the common
/// short timeouts (send/read timeouts of a few seconds) never wait a round.
const WHEEL_SIZE: usize = 1 << WHEEL_BITS;
const WHEEL_MASK: usize = WHEEL_SIZE - 1;
/// One bit per slot; the summary word has one bit per bitmap word.
const BITMAP_WORDS: usize = WHEEL_SIZE / 64;
const _: () = assert!(BITMAP_WORDS <= 64, "the summary word must cover the bitmap");
/// How many occupied slots `find_timer` looks at before it settles for the
/// next slot's tick as its answer; bounds the work when many slots hold only
/// timers of later revolutions.
const FIND_SCAN_SLOTS: usize = 64;
/// End of a list (slot list or free list).
const NIL: u32 = u32::MAX;

/// Handle of a pending timer, returned by `add_timer` and taken by `del_timer`.
///
/// The generation makes it safe to keep after the timer fired: the entry's
/// generation changes when it is freed, so an old id misses instead of
/// cancelling whichever timer reuses the entry, as nginx's `instance` bit does
/// for stale epoll events.
///
/// nginx: `ev->timer` (the rbtree node) plus `ev->timer_set`
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimerId {
    /// The entry's index plus one: never zero, so `Option<TimerId>` (every event's `timer`)
    /// takes no more room than the id itself.
    index: NonZeroU32,
    gen: u32,
}

impl TimerId {
    fn new(index: u32, gen: u32) -> TimerId {
        TimerId { index: NonZeroU32::MIN.saturating_add(index), gen }
    }
    /// The index of the entry it names.
    fn index(self) -> u32 {
        self.index.get() - 1
    }
}

/// One timer; vacant entries are chained on the free list through `next`.
struct Entry<T> {
    /// The caller's payload; `None` while the entry is vacant.
    data: Option<T>,
    /// Absolute expiry, so a timer longer than one revolution can wait in its
    /// slot across rounds and fire only when due.
    expires: Msec,
    /// The slot the entry is linked in: `expires % WHEEL_SIZE`, except for an
    /// overdue timer, which goes to the next tick to be walked.
    slot: u32,
    prev: u32,
    /// Next entry in the slot list, or next vacant entry on the free list.
    next: u32,
    /// Bumped when the entry is freed, so ids handed out before miss.
    gen: u32,
}

/// One slot of the wheel: a list of timers whose expiry is congruent to the
/// slot's index, from this revolution or later ones.
#[derive(Clone, Copy)]
struct Slot {
    head: u32,
    /// The tail keeps appends O(1) and FIFO, so timers with equal expiry fire
    /// in the order they were added, as in nginx's rbtree
    /// (`ngx_rbtree_insert_timer_value` puts equal keys to the right).
    tail: u32,
    /// A lower bound of the slot's expiries: exact after each walk of the
    /// slot, lowered by `add_timer`, left stale (too low, never too high) by
    /// `del_timer` so cancelling stays O(1). It lets `find_timer` see past a
    /// slot that only holds later-round timers, and `expire_timers` skip one.
    min: Msec,
}

impl Slot {
    const EMPTY: Slot = Slot { head: NIL, tail: NIL, min: Msec::MAX };
}

/// The timers of one reactor (one worker).
///
/// nginx: `ngx_event_timer_rbtree` (src/event/ngx_event_timer.c)
pub struct TimerWheel<T: Copy> {
    /// All timers, pending and vacant; indices are stable while pending.
    entries: Vec<Entry<T>>,
    /// Head of the vacant entries, reused before the vector grows, so a warm
    /// wheel never allocates in `add_timer`.
    free: u32,
    slots: Box<[Slot; WHEEL_SIZE]>,
    /// Bit `s` is set when slot `s` has at least one timer.
    bitmap: [u64; BITMAP_WORDS],
    /// Bit `w` is set when `bitmap[w] != 0`.
    summary: u64,
    /// The `now` of the last `expire_timers`: every timer that expired at or
    /// before it has fired, so every pending timer has `expires > last` unless
    /// it was added already overdue.
    last: Msec,
    len: usize,
    /// Timers added with `expires <= last`. They sit in the slot of tick
    /// `last + 1`, which `find_timer` cannot tell from a future slot, so it
    /// answers 0 while there are any.
    overdue: usize,
    /// Fired timers of one `expire_timers` call with their expiry, kept to be
    /// sorted when a huge time jump or an overdue timer mixed their order;
    /// reused so expiring does not allocate either.
    scratch: Vec<(Msec, T)>,
    /// The earliest expiry of the pending timers (`Msec::MAX` with none) while it is known
    /// exactly; `None` once the timer holding it was cancelled or fired with others left.
    /// `add_timer` keeps it exact, and the wheel emptying makes it known again: on the
    /// keep-alive path every turn cancels the nearest timer, but the set also empties on every
    /// turn (the one upstream read timer goes before the idle timers are armed), so
    /// `find_timer` mostly answers from it without walking the slots.
    nearest: Option<Msec>,
}

impl<T: Copy> TimerWheel<T> {
    /// Creates an empty wheel whose clock starts at `now`.
    ///
    /// nginx: `ngx_event_timer_init()`
    pub fn new(now: Msec) -> Self {
        TimerWheel {
            entries: Vec::new(),
            free: NIL,
            slots: Box::new([Slot::EMPTY; WHEEL_SIZE]),
            bitmap: [0; BITMAP_WORDS],
            summary: 0,
            last: now,
            len: 0,
            overdue: 0,
            scratch: Vec::new(),
            nearest: Some(Msec::MAX),
        }
    }

    /// Arms a timer that fires at `now + after`; `after == 0` fires on the next
    /// `expire_timers` whose `now` has reached it. O(1).
    ///
    /// nginx: `ngx_event_add_timer()` (`ngx_add_timer`)
    pub fn add_timer(&mut self, data: T, after: Msec, now: Msec) -> TimerId {
        let expires = now.saturating_add(after);
        // A timer that is already due cannot go to its own slot, which the
        // wheel has passed: park it in the next slot to be walked.
        let tick = if expires > self.last {
            expires
        } else {
            self.overdue += 1;
            self.last.wrapping_add(1)
        };
        let slot = (tick as usize & WHEEL_MASK) as u32;
        let index = self.alloc(data, expires, slot);
        self.link(index);
        self.len += 1;
        self.nearest = self.nearest.map(|m| m.min(expires));
        TimerId::new(index, self.entries[index as usize].gen)
    }

    /// Cancels a pending timer and returns its data; `None` if the id is stale
    /// (the timer already fired or was deleted). O(1).
    ///
    /// nginx: `ngx_event_del_timer()` (`ngx_del_timer`)
    pub fn del_timer(&mut self, id: TimerId) -> Option<T> {
        let e = self.pending(id)?;
        let expires = e.expires;
        if expires <= self.last {
            self.overdue -= 1;
        }
        self.unlink(id.index());
        let data = self.release(id.index());
        self.forget_nearest(expires);
        Some(data)
    }

    /// Keeps `nearest` true after timers up to `expires` left the wheel.
    fn forget_nearest(&mut self, expires: Msec) {
        if self.len == 0 {
            self.nearest = Some(Msec::MAX);
        } else if self.nearest.is_some_and(|m| m >= expires) {
            self.nearest = None;
        }
    }

    /// Milliseconds the loop may sleep before a timer is due: 0 if one is due
    /// already, `None` if there are no timers.
    ///
    /// Looks at the occupied slots in tick order and stops at the first one
    /// whose tick is not before the best expiry seen so far, or after
    /// `FIND_SCAN_SLOTS` of them. The answer is exact unless a cancelled
    /// timer left a slot's bound stale or the scan was cut short; then it is
    /// early, never late, and the loop wakes up to find nothing due.
    ///
    /// nginx: `ngx_event_find_timer()`; `None` plays `NGX_TIMER_INFINITE`.
    pub fn find_timer(&self, now: Msec) -> Option<Msec> {
        if self.len == 0 {
            return None;
        }
        if self.overdue > 0 {
            return Some(0);
        }
        // The known nearest expiry, exact; with more timers than a scan looks at, the scan
        // answers (it never reads more than `FIND_SCAN_SLOTS` slots either way).
        if let Some(m) = self.nearest.filter(|_| self.len <= FIND_SCAN_SLOTS) {
            return Some(m.max(self.last.saturating_add(1)).saturating_sub(now.max(self.last)));
        }
        // here: every pending timer has expires > last and sits in its own
        // slot, so a slot whose next tick is `t` holds nothing due before `t`.
        let mut nearest = Msec::MAX;
        let mut pos = self.last.wrapping_add(1) as usize & WHEEL_MASK;
        let mut scanned = 0; // ticks from last+1 up to the slot looked at
        for n in 0..=FIND_SCAN_SLOTS {
            let Some(distance) = self.next_occupied(pos) else {
                break;
            };
            scanned += distance;
            let tick = self.last.saturating_add(scanned as Msec + 1);
            if scanned >= WHEEL_SIZE || tick >= nearest {
                break; // all slots seen, or none of the rest can be nearer
            }
            if n == FIND_SCAN_SLOTS {
                nearest = tick; // cut short: this slot's tick bounds the rest
                break;
            }
            let slot = (pos + distance) & WHEEL_MASK;
            nearest = nearest.min(self.slots[slot].min);
            scanned += 1;
            pos = (slot + 1) & WHEEL_MASK;
        }
        // A bound left stale by a cancelled overdue timer may be <= last,
        // where nothing pending can expire; answering 0 for it would spin the
        // loop, since expire_timers at the same `now` does not walk the slot.
        let nearest = nearest.max(self.last.saturating_add(1));
        Some(nearest.saturating_sub(now.max(self.last)))
    }

    /// Removes every timer with `expires <= now` and pushes its data into
    /// `fired`, in expiry order (equal expiries in the order they were added).
    ///
    /// Walks the occupied slots of the ticks since the last call, at most one
    /// revolution: after a long stall (a blocked loop, a suspended machine)
    /// every slot is visited once instead of every elapsed millisecond.
    ///
    /// nginx: `ngx_event_expire_timers()`
    pub fn expire_timers(&mut self, now: Msec, fired: &mut Vec<T>) {
        let now = now.max(self.last);
        if self.len == 0 {
            self.last = now;
            return;
        }
        if now == self.last && self.overdue == 0 {
            return;
        }
        // Ticks last+1 ..= now, capped at one revolution; at least one, because
        // the next tick's slot is where overdue timers wait.
        let mut left = (now - self.last).clamp(1, WHEEL_SIZE as Msec) as usize;
        let mut pos = self.last.wrapping_add(1) as usize & WHEEL_MASK;
        while let Some(distance) = self.next_occupied(pos) {
            if distance >= left {
                break;
            }
            let slot = (pos + distance) & WHEEL_MASK;
            self.expire_slot(slot, now);
            left -= distance + 1;
            pos = (slot + 1) & WHEEL_MASK;
        }
        self.last = now;
        if !self.scratch.is_empty() {
            // Something fired: the nearest expiry is known again only if nothing is left.
            self.nearest = (self.len == 0).then_some(Msec::MAX);
        }
        // A walk in slot order is expiry order unless a jump of more than one
        // revolution or an overdue timer mixed rounds; the stable sort then
        // restores it and keeps FIFO among equal expiries.
        if !self.scratch.is_sorted_by_key(|&(expires, _)| expires) {
            self.scratch.sort_by_key(|&(expires, _)| expires);
        }
        fired.extend(self.scratch.drain(..).map(|(_, data)| data));
    }

    /// Number of pending timers.
    ///
    /// nginx: none; the rbtree is only asked whether it is empty.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no timer is pending.
    ///
    /// nginx: `ngx_event_timer_rbtree.root == ngx_event_timer_rbtree.sentinel`
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The absolute expiry of a pending timer, `None` for a stale id.
    ///
    /// nginx: `ev->timer.key`
    pub fn expires(&self, id: TimerId) -> Option<Msec> {
        self.pending(id).map(|e| e.expires)
    }

    /// The entry behind `id` if it still names a pending timer.
    fn pending(&self, id: TimerId) -> Option<&Entry<T>> {
        let e = self.entries.get(id.index() as usize)?;
        (e.gen == id.gen && e.data.is_some()).then_some(e)
    }

    /// Fires the timers of one slot that are due by `now`; the others belong to
    /// a later revolution and stay, and their earliest expiry becomes the
    /// slot's exact bound.
    fn expire_slot(&mut self, slot: usize, now: Msec) {
        if self.slots[slot].min > now {
            return; // only later rounds here: skip the walk
        }
        let mut min = Msec::MAX;
        let mut index = self.slots[slot].head;
        while index != NIL {
            let e = &self.entries[index as usize];
            let (next, expires) = (e.next, e.expires);
            if expires <= now {
                if expires <= self.last {
                    self.overdue -= 1;
                }
                self.unlink(index);
                let data = self.release(index);
                self.scratch.push((expires, data));
            } else {
                min = min.min(expires);
            }
            index = next;
        }
        self.slots[slot].min = min;
    }

    /// Takes a vacant entry (or grows the vector) and fills it in, unlinked.
    fn alloc(&mut self, data: T, expires: Msec, slot: u32) -> u32 {
        if self.free != NIL {
            let index = self.free;
            let e = &mut self.entries[index as usize];
            self.free = e.next;
            e.data = Some(data);
            e.expires = expires;
            e.slot = slot;
            return index;
        }
        let index = u32::try_from(self.entries.len())
            .ok()
            .filter(|&i| i != NIL)
            .expect("timer wheel: more than u32::MAX - 1 timers");
        self.entries.push(Entry { data: Some(data), expires, slot, prev: NIL, next: NIL, gen: 0 });
        index
    }

    /// Frees an unlinked entry: bumps its generation and pushes it on the free list.
    fn release(&mut self, index: u32) -> T {
        let e = &mut self.entries[index as usize];
        let data = e.data.take().expect("released entry was pending");
        e.gen = e.gen.wrapping_add(1);
        e.next = self.free;
        self.free = index;
        self.len -= 1;
        data
    }

    /// Appends an entry to the tail of its slot's list.
    fn link(&mut self, index: u32) {
        let e = &mut self.entries[index as usize];
        // `e.slot` is below WHEEL_SIZE: the mask changes nothing but lets the compiler drop
        // the bounds checks of the slot and bitmap accesses (a fixed-size array).
        let slot = e.slot as usize & WHEEL_MASK;
        let tail = self.slots[slot].tail;
        e.prev = tail;
        e.next = NIL;
        let expires = e.expires;
        if tail == NIL {
            self.slots[slot].head = index;
            self.slots[slot].min = expires;
            self.bitmap[slot >> 6] |= 1 << (slot & 63);
            self.summary |= 1 << (slot >> 6);
        } else {
            self.entries[tail as usize].next = index;
            self.slots[slot].min = self.slots[slot].min.min(expires);
        }
        self.slots[slot].tail = index;
    }

    /// Removes an entry from its slot's list, clearing the slot's bit when it empties.
    fn unlink(&mut self, index: u32) {
        let e = &self.entries[index as usize];
        let (slot, prev, next) = (e.slot as usize & WHEEL_MASK, e.prev, e.next);
        match prev {
            NIL => self.slots[slot].head = next,
            p => self.entries[p as usize].next = next,
        }
        match next {
            NIL => self.slots[slot].tail = prev,
            n => self.entries[n as usize].prev = prev,
        }
        if self.slots[slot].head == NIL {
            self.bitmap[slot >> 6] &= !(1 << (slot & 63));
            if self.bitmap[slot >> 6] == 0 {
                self.summary &= !(1 << (slot >> 6));
            }
        }
    }

    /// Distance in slots from `from` to the first occupied slot at or after
    /// it, going round the wheel; `None` when the wheel is empty.
    fn next_occupied(&self, from: usize) -> Option<usize> {
        let word = from >> 6;
        let bits = self.bitmap[word] & (!0u64 << (from & 63));
        if bits != 0 {
            return Some((word << 6 | bits.trailing_zeros() as usize) - from);
        }
        // here: nothing in `from`'s word at or after it; try the later words,
        // then wrap to the lowest occupied slot, which lies before `from`.
        let later = self.summary & (!1u64 << word);
        let (word, wrapped) = match (later, self.summary) {
            (0, 0) => return None,
            (0, all) => (all.trailing_zeros() as usize, WHEEL_SIZE),
            (later, _) => (later.trailing_zeros() as usize, 0),
        };
        let slot = word << 6 | self.bitmap[word].trailing_zeros() as usize;
        Some(slot + wrapped - from)
    }
}

impl<T: Copy> fmt::Debug for TimerWheel<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimerWheel")
            .field("len", &self.len)
            .field("last", &self.last)
            .field("overdue", &self.overdue)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    const REV: Msec = WHEEL_SIZE as Msec;

    /// Expires at `now` and returns what fired.
    fn expire(w: &mut TimerWheel<u32>, now: Msec) -> Vec<u32> {
        let mut fired = Vec::new();
        w.expire_timers(now, &mut fired);
        fired
    }

    /// xorshift64*: deterministic, no dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    #[test]
    fn fires_at_the_exact_millisecond() {
        let mut w = TimerWheel::new(1000);
        let id = w.add_timer(7, 50, 1000);
        assert_eq!(w.expires(id), Some(1050));
        assert_eq!(w.find_timer(1000), Some(50));
        assert_eq!(w.find_timer(1020), Some(30));
        assert!(expire(&mut w, 1049).is_empty());
        assert_eq!(w.find_timer(1049), Some(1));
        assert_eq!(expire(&mut w, 1050), vec![7]);
        assert_eq!(w.find_timer(1050), None);
        assert!(w.is_empty());
    }

    #[test]
    fn zero_timeout_fires_on_the_next_expire_at_the_same_now() {
        let mut w = TimerWheel::new(500);
        assert!(expire(&mut w, 500).is_empty());
        w.add_timer(1, 0, 500);
        w.add_timer(2, 3, 500);
        assert_eq!(w.find_timer(500), Some(0));
        assert_eq!(expire(&mut w, 500), vec![1]);
        assert_eq!(w.find_timer(500), Some(3));
        assert_eq!(expire(&mut w, 503), vec![2]);
    }

    #[test]
    fn time_going_backwards_stands_still() {
        let mut w = TimerWheel::new(10_000);
        w.add_timer(1, 10, 10_000);
        assert!(expire(&mut w, 10_005).is_empty());
        assert!(expire(&mut w, 9_000).is_empty());
        assert_eq!(w.find_timer(9_000), Some(5));
        // a stale `now` in add_timer gives a timer that is already due
        w.add_timer(2, 100, 9_000);
        assert_eq!(w.find_timer(10_005), Some(0));
        assert_eq!(expire(&mut w, 10_005), vec![2]);
        assert_eq!(expire(&mut w, 10_010), vec![1]);
    }

    #[test]
    fn cancel() {
        let mut w = TimerWheel::new(0);
        let a = w.add_timer(1, 100, 0);
        let b = w.add_timer(2, 100, 0);
        assert_eq!(w.del_timer(a), Some(1));
        assert_eq!(w.del_timer(a), None);
        assert_eq!(w.expires(a), None);
        assert_eq!(w.len(), 1);
        assert_eq!(expire(&mut w, 100), vec![2]);
        assert_eq!(w.del_timer(b), None);
    }

    #[test]
    fn stale_id_after_fire_and_after_reuse() {
        let mut w = TimerWheel::new(0);
        let old = w.add_timer(1, 10, 0);
        assert_eq!(expire(&mut w, 10), vec![1]);
        assert_eq!(w.del_timer(old), None);
        // the freed entry is reused at once; the old id must not reach it
        let new = w.add_timer(2, 10, 10);
        assert_eq!(new.index(), old.index());
        assert_ne!(new, old);
        assert_eq!(w.del_timer(old), None);
        assert_eq!(w.expires(old), None);
        assert_eq!(w.len(), 1);
        assert_eq!(w.del_timer(new), Some(2));
        let newer = w.add_timer(3, 10, 10);
        assert_eq!(w.del_timer(new), None);
        assert_eq!(w.del_timer(old), None);
        assert_eq!(expire(&mut w, 20), vec![3]);
        assert_eq!(w.del_timer(newer), None);
    }

    #[test]
    fn keepalive_pattern_does_not_grow() {
        let mut w = TimerWheel::new(0);
        for now in 0..10_000 {
            let read = w.add_timer(1, 60_000, now);
            let send = w.add_timer(2, 60_000, now);
            assert_eq!(w.del_timer(read), Some(1));
            assert_eq!(w.del_timer(send), Some(2));
        }
        assert_eq!(w.entries.len(), 2);
        assert!(w.is_empty());
        assert_eq!(w.find_timer(10_000), None);
    }

    #[test]
    fn many_timers_in_one_slot_fire_in_order_added() {
        let mut w = TimerWheel::new(0);
        let ids: Vec<_> = (0..1000).map(|i| w.add_timer(i, 42, 0)).collect();
        for id in ids.iter().skip(1).step_by(2) {
            w.del_timer(*id).unwrap();
        }
        assert_eq!(w.len(), 500);
        assert!(expire(&mut w, 41).is_empty());
        let want: Vec<u32> = (0..1000).step_by(2).collect();
        assert_eq!(expire(&mut w, 42), want);
        assert_eq!(w.summary, 0);
    }

    #[test]
    fn one_slot_shared_by_several_rounds() {
        let mut w = TimerWheel::new(0);
        w.add_timer(3, 100 + 2 * REV, 0);
        w.add_timer(1, 100, 0);
        w.add_timer(2, 100 + REV, 0);
        assert_eq!(expire(&mut w, 100), vec![1]);
        assert_eq!(w.len(), 2);
        assert!(expire(&mut w, 99 + REV).is_empty());
        assert_eq!(expire(&mut w, 100 + REV), vec![2]);
        assert!(expire(&mut w, 99 + 2 * REV).is_empty());
        assert_eq!(expire(&mut w, 100 + 2 * REV), vec![3]);
    }

    #[test]
    fn wraps_around_the_wheel() {
        let start = 3 * REV - 3;
        let mut w = TimerWheel::new(start);
        for after in 1..=6 {
            w.add_timer(after as u32, after, start);
        }
        for now in start + 1..=start + 6 {
            assert_eq!(w.find_timer(now - 1), Some(1));
            assert_eq!(expire(&mut w, now), vec![(now - start) as u32]);
        }
        assert!(w.is_empty());
    }

    #[test]
    fn long_timeouts_fire_exactly_when_due() {
        let start = 123_456;
        let mut w = TimerWheel::new(start);
        let afters = [1, 4_095, 4_096, 4_097, 60_000, 75_000, 3_600_000];
        for (i, after) in afters.iter().enumerate() {
            w.add_timer(i as u32, *after, start);
        }
        // drive the wheel as the event loop does: sleep what find_timer says
        let (mut now, mut fired, mut wakeups) = (start, Vec::new(), 0);
        while let Some(sleep) = w.find_timer(now) {
            now += sleep;
            wakeups += 1;
            w.expire_timers(now, &mut fired);
            for i in fired.drain(..) {
                assert_eq!(now, start + afters[i as usize], "timer {i} fired late or early");
            }
        }
        assert_eq!(now, start + 3_600_000);
        // the far slots' bounds let find_timer sleep straight to each expiry
        assert_eq!(wakeups, afters.len());
    }

    #[test]
    fn huge_time_jump_fires_everything_due_in_order() {
        let mut w = TimerWheel::new(0);
        let afters = [3_600_000, 5, 60_000, 4_096, 10, 8_192 + 5, 0, 4_096];
        for (i, after) in afters.iter().enumerate() {
            w.add_timer(i as u32, *after, 0);
        }
        let late = w.add_timer(99, 2_000_000_000_000, 0);
        assert_eq!(expire(&mut w, 1_000_000_000_000), vec![6, 1, 4, 3, 7, 5, 2, 0]);
        assert_eq!(w.len(), 1);
        assert!(w.find_timer(1_000_000_000_000).unwrap() <= 1_000_000_000_000);
        // the wheel keeps working from the new time
        w.add_timer(100, 5, 1_000_000_000_000);
        assert_eq!(w.find_timer(1_000_000_000_000), Some(5));
        assert!(expire(&mut w, 1_000_000_000_004).is_empty());
        assert_eq!(expire(&mut w, 1_000_000_000_005), vec![100]);
        assert_eq!(w.expires(late), Some(2_000_000_000_000));
        assert_eq!(expire(&mut w, u64::MAX - 1), vec![99]);
    }

    #[test]
    fn cancelled_overdue_timer_does_not_spin_the_loop() {
        let mut w = TimerWheel::new(100);
        w.add_timer(1, 10, 100);
        let due = w.add_timer(2, 0, 100);
        assert_eq!(w.find_timer(100), Some(0));
        w.del_timer(due);
        assert_eq!(w.find_timer(100), Some(10));
        // the same again with a later-round timer keeping the slot occupied
        w.add_timer(3, 1 + REV, 100);
        let due = w.add_timer(4, 0, 100);
        w.del_timer(due);
        assert_eq!(w.find_timer(100), Some(1));
        assert!(expire(&mut w, 101).is_empty());
        assert_eq!(w.find_timer(101), Some(9));
    }

    #[test]
    fn find_timer_bounds_its_scan_of_later_round_slots() {
        let mut w = TimerWheel::new(0);
        for i in 1..=1000 {
            w.add_timer(i as u32, 2 * REV + i, 0);
        }
        let early = w.find_timer(0).unwrap();
        assert_eq!(early, FIND_SCAN_SLOTS as Msec + 1);
        // driving the loop by it still fires each timer exactly on time
        let (mut now, mut fired, mut wakeups) = (0, Vec::new(), 0);
        while let Some(sleep) = w.find_timer(now) {
            now += sleep;
            wakeups += 1;
            w.expire_timers(now, &mut fired);
            for i in fired.drain(..) {
                assert_eq!(now, 2 * REV + i as Msec);
            }
        }
        assert!(wakeups < 1000 + 2 * 1000 / FIND_SCAN_SLOTS + 4, "{wakeups}");
    }

    /// The keep-alive proxy's pattern: the nearest timer is cancelled on every turn, but the
    /// wheel also empties on every turn, so the nearest expiry is known (and exact) when the
    /// loop asks; cancelling the nearest with others left makes it unknown, and the scan
    /// answers as before.
    #[test]
    fn nearest_known_across_the_keepalive_pattern() {
        let mut w = TimerWheel::new(0);
        let (mut k, mut u) = (w.add_timer(1, 75_000, 0), w.add_timer(2, 60_000, 0));
        for turn in 1..=20u64 {
            let now = turn * 7;
            // a request: the client's and the idle upstream's timers go, the read timer comes
            w.del_timer(k);
            w.del_timer(u);
            let r = w.add_timer(3, 60_000, now);
            assert_eq!(w.nearest, Some(now + 60_000));
            assert_eq!(w.find_timer(now), Some(60_000));
            // the response: the read timer goes, the idle timers come
            w.del_timer(r);
            u = w.add_timer(2, 60_000, now + 1);
            k = w.add_timer(1, 75_000, now + 1);
            assert_eq!(w.find_timer(now + 1), Some(60_000));
            assert_consistent(&w);
        }
        // the nearest cancelled with another left: unknown, the scan answers (exactly here)
        w.del_timer(u);
        assert_eq!(w.nearest, None);
        assert_eq!(w.find_timer(141), Some(75_000));
        assert_consistent(&w);
        // a timer firing with others left: unknown; the wheel emptying: known again
        w.add_timer(4, 5, 141);
        assert_eq!(expire(&mut w, 146), vec![4]);
        assert_eq!(w.nearest, None);
        w.del_timer(k);
        assert_eq!(w.nearest, Some(Msec::MAX));
        assert_eq!(w.find_timer(146), None);
    }

    #[test]
    fn len_bookkeeping() {
        let mut w = TimerWheel::new(0);
        assert!(w.is_empty());
        let a = w.add_timer(1, 10, 0);
        w.add_timer(2, 20, 0);
        w.add_timer(3, 0, 0);
        assert_eq!(w.len(), 3);
        w.del_timer(a);
        w.del_timer(a);
        assert_eq!(w.len(), 2);
        assert_eq!(expire(&mut w, 0), vec![3]);
        assert_eq!(w.len(), 1);
        assert_eq!(expire(&mut w, 20), vec![2]);
        assert_eq!((w.len(), w.is_empty(), w.overdue), (0, true, 0));
    }

    /// Random add/del/advance/expire against a `BTreeMap` keyed by (expiry,
    /// insertion order), which is the order nginx's rbtree fires in.
    #[test]
    fn matches_a_sorted_map_model() {
        for seed in [1, 0x9e37_79b9_7f4a_7c15, 42] {
            run_model(seed, 20_000);
        }
    }

    fn random_after(rng: &mut Rng) -> Msec {
        match rng.below(10) {
            0 => 0,
            1..=4 => rng.below(100),
            5..=6 => rng.below(2 * REV),
            7..=8 => rng.below(70_000),
            _ => rng.below(10_000_000),
        }
    }

    fn run_model(seed: u64, ops: usize) {
        let mut rng = Rng(seed);
        let mut now = REV - 100 + rng.below(200);
        let mut last = now;
        let mut w = TimerWheel::new(now);
        let mut model: BTreeMap<(Msec, u32), TimerId> = BTreeMap::new();
        let mut ids: Vec<(TimerId, Msec, u32)> = Vec::new();
        let mut seq = 0u32;
        for _ in 0..ops {
            match rng.below(100) {
                0..=39 => {
                    let expires = now + random_after(&mut rng);
                    let id = w.add_timer(seq, expires - now, now);
                    model.insert((expires, seq), id);
                    ids.push((id, expires, seq));
                    seq += 1;
                }
                // delete a random id: pending, fired or deleted already
                40..=64 if !ids.is_empty() => {
                    let (id, expires, data) = ids.swap_remove(rng.below(ids.len() as u64) as usize);
                    let want = model.remove(&(expires, data)).map(|_| data);
                    assert_eq!(w.del_timer(id), want);
                    if rng.below(4) == 0 {
                        ids.push((id, expires, data)); // stays around as a stale id
                    }
                }
                65..=84 => now += if rng.below(200) == 0 { rng.below(100_000_000) } else { rng.below(40) },
                _ => {
                    let mut fired = Vec::new();
                    w.expire_timers(now, &mut fired);
                    let later = model.split_off(&(now + 1, 0));
                    let want: Vec<u32> = model.keys().map(|&(_, s)| s).collect();
                    model = later;
                    assert_eq!(fired, want, "seed {seed} now {now}");
                    last = now;
                }
            }
            check_against_model(&w, &model, now, last, &ids);
            if seq.is_multiple_of(97) {
                assert_consistent(&w);
            }
        }
        let mut fired = Vec::new();
        w.expire_timers(u64::MAX, &mut fired);
        assert_eq!(fired, model.keys().map(|&(_, s)| s).collect::<Vec<_>>());
        assert!(w.is_empty() && w.summary == 0 && w.overdue == 0);
    }

    /// The wheel's own invariants: lists, bitmap, slot bounds, counters.
    fn assert_consistent(w: &TimerWheel<u32>) {
        let (mut len, mut overdue) = (0, 0);
        for (s, slot) in w.slots.iter().enumerate() {
            let occupied = w.bitmap[s >> 6] & (1 << (s & 63)) != 0;
            assert_eq!(occupied, slot.head != NIL, "bitmap of slot {s}");
            let (mut index, mut prev) = (slot.head, NIL);
            while index != NIL {
                let e = &w.entries[index as usize];
                assert!(e.data.is_some() && e.prev == prev && e.slot as usize == s);
                assert!(slot.min <= e.expires, "slot {s} bound above an expiry");
                if e.expires <= w.last {
                    overdue += 1;
                } else {
                    assert_eq!(e.expires as usize & WHEEL_MASK, s);
                }
                (prev, index, len) = (index, e.next, len + 1);
            }
            assert_eq!(slot.tail, prev);
        }
        for (word, bits) in w.bitmap.iter().enumerate() {
            assert_eq!(*bits != 0, w.summary & (1 << word) != 0);
        }
        assert_eq!((len, overdue), (w.len, w.overdue));
        if let Some(m) = w.nearest {
            let min = w.entries.iter().filter(|e| e.data.is_some()).map(|e| e.expires).min();
            assert_eq!(m, min.unwrap_or(Msec::MAX), "the known nearest expiry is not exact");
        }
    }

    fn check_against_model(
        w: &TimerWheel<u32>,
        model: &BTreeMap<(Msec, u32), TimerId>,
        now: Msec,
        last: Msec,
        ids: &[(TimerId, Msec, u32)],
    ) {
        assert_eq!(w.len(), model.len());
        let found = w.find_timer(now);
        match (model.keys().next(), model.keys().next_back()) {
            (None, _) => assert_eq!(found, None),
            (Some(&(first, _)), Some(&(final_, _))) => {
                let exact = first.saturating_sub(now);
                let found = found.expect("timers pending");
                assert!(found <= exact, "find_timer {found} later than {exact}");
                // within one revolution of the last expire the answer is exact
                if final_ <= last + REV {
                    assert_eq!(found, exact);
                }
            }
            _ => unreachable!(),
        }
        if let Some(&(id, expires, data)) = ids.last() {
            let pending = model.contains_key(&(expires, data));
            assert_eq!(w.expires(id), pending.then_some(expires));
        }
    }
}
