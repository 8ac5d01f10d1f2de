//! Generational ids over `slab::Slab` (`GenSlab`, the connections) and over a slab of kept
//! values (`ReuseSlab`, the requests: a freed slot keeps its emptied value for the next one to
//! reset in place, as nginx's request pool is reused): the Rust form of nginx's `instance` bit.
//!
//! nginx: `ngx_get_connection()` flips `rev->instance` so that an epoll event for a descriptor
//! closed earlier in the same batch is recognised as stale (src/core/ngx_connection.c, checked in
//! src/event/modules/ngx_epoll_module.c). Slab keys are reused just as fast as nginx's free list,
//! so every slot carries a generation and every id names both; a stale id simply finds nothing.
//!
//! Differs from nginx:
//! - one bit is enough for nginx because only the current epoll batch can be stale; rginx ids also
//!   live in timers, posted queues and parent/child links, so the generation is 32 bits (still
//!   one per slot, as `instance` is, and wrapping to 0 after `u32::MAX`).

use std::fmt;
use std::marker::PhantomData;

/// A slab key plus the generation of the value it was issued for.
pub struct Id<T> {
    key: u32,
    gen: u32,
    _t: PhantomData<fn() -> T>,
}

impl<T> Id<T> {
    /// The slab key (for logs and tokens).
    pub fn key(self) -> usize {
        self.key as usize
    }
    /// Packs the id into a `mio::Token` value: key in the low half, generation in the high half.
    pub fn to_token(self) -> usize {
        (self.key as usize) | ((self.gen as usize) << 32)
    }
    /// Unpacks `to_token`.
    pub fn from_token(t: usize) -> Self {
        Id { key: (t & 0xffff_ffff) as u32, gen: (t >> 32) as u32, _t: PhantomData }
    }
}

/// An id whose type is not named: kept by a layer that must not name the type above it (a
/// request keeps its upstream context's id so, as nginx's `r->upstream`, while `upstream/` sits
/// above `http/`). Only the owner of the table turns it back with [`RawId::typed`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RawId {
    key: u32,
    gen: u32,
}

impl RawId {
    /// The typed id again.
    pub fn typed<T>(self) -> Id<T> {
        Id { key: self.key, gen: self.gen, _t: PhantomData }
    }
}

impl<T> Id<T> {
    /// Forgets the type (see [`RawId`]).
    pub fn raw(self) -> RawId {
        RawId { key: self.key, gen: self.gen }
    }
}

impl<T> Clone for Id<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Id<T> {}
impl<T> PartialEq for Id<T> {
    fn eq(&self, o: &Self) -> bool {
        self.key == o.key && self.gen == o.gen
    }
}
impl<T> Eq for Id<T> {}
impl<T> fmt::Debug for Id<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}.{}", self.key, self.gen)
    }
}

/// A `slab::Slab` whose every slot keeps its own generation, across frees.
///
/// A slot's generation is bumped when its value is removed, so the next value put in that slot
/// gets a new id. A table-wide counter would not do: it aliases after 2^32 inserts of *any* key,
/// which a busy worker reaches; a per-slot counter needs 2^32 reuses of *one* slot while an old
/// id to it is still held. nginx: the `instance` bit of `ngx_connection_t`, one per slot.
///
/// At wrap the generation goes from `u32::MAX` back to 0 (`wrapping_add`: no panic, no skipped
/// value); only an id kept across exactly 2^32 reuses of its slot could then match again.
///
/// `K` is the type the ids name: `T` itself unless the value type is generic (a connection is
/// `Connection<W>`, generic over the world, but its id `ConnId` is one type for every world).
pub struct GenSlab<T, K = T> {
    /// The live values, each with the generation it was inserted with (so `get` reads one entry).
    slab: slab::Slab<(u32, T)>,
    /// Per slot key: the generation the slot hands to its next value. Grows with the slab's
    /// high-water mark and never shrinks, so a freed slot remembers where it was.
    next_gen: Vec<u32>,
    _k: PhantomData<fn() -> K>,
}

impl<T, K> Default for GenSlab<T, K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T, K> GenSlab<T, K> {
    /// An empty slab.
    pub fn new() -> Self {
        GenSlab { slab: slab::Slab::new(), next_gen: Vec::new(), _k: PhantomData }
    }
    /// An empty slab with room for `n` entries before it reallocates.
    pub fn with_capacity(n: usize) -> Self {
        GenSlab { slab: slab::Slab::with_capacity(n), next_gen: Vec::with_capacity(n), _k: PhantomData }
    }
    /// Stores `v` and returns its id. nginx: `ngx_get_connection()` taking a free slot.
    #[inline(always)]
    pub fn insert(&mut self, v: T) -> Id<K> {
        let id = self.vacant_id();
        if id.key() == self.next_gen.len() {
            self.next_gen.push(id.gen);
        }
        let key = self.slab.insert((id.gen, v));
        debug_assert_eq!(key, id.key());
        id
    }
    /// The id the next `insert` will return: lets a value record its own id before insertion.
    pub fn vacant_id(&self) -> Id<K> {
        let key = self.slab.vacant_key();
        // A key past the high-water mark has never held a value: its first generation is 0.
        let gen = self.next_gen.get(key).copied().unwrap_or(0);
        Id { key: key as u32, gen, _t: PhantomData }
    }
    /// The value, if the id is still current.
    pub fn get(&self, id: Id<K>) -> Option<&T> {
        match self.slab.get(id.key as usize) {
            Some((g, v)) if *g == id.gen => Some(v),
            _ => None,
        }
    }
    /// The value, mutably, if the id is still current.
    pub fn get_mut(&mut self, id: Id<K>) -> Option<&mut T> {
        match self.slab.get_mut(id.key as usize) {
            Some((g, v)) if *g == id.gen => Some(v),
            _ => None,
        }
    }
    /// Whether the id still names a live value.
    pub fn contains(&self, id: Id<K>) -> bool {
        self.get(id).is_some()
    }
    /// Frees the slot and moves it to its next generation, so `id` (and every copy of it kept
    /// in timers, posted queues or links) finds nothing from now on. nginx:
    /// `ngx_free_connection()`; the flip of `instance` happens in `ngx_get_connection()`.
    pub fn remove(&mut self, id: Id<K>) -> Option<T> {
        if !self.contains(id) {
            return None;
        }
        let (gen, v) = self.slab.remove(id.key as usize);
        if let Some(next) = self.next_gen.get_mut(id.key as usize) {
            *next = gen.wrapping_add(1);
        }
        Some(v)
    }
    /// Live entries.
    pub fn len(&self) -> usize {
        self.slab.len()
    }
    /// No live entries.
    pub fn is_empty(&self) -> bool {
        self.slab.is_empty()
    }
    /// Ids of every live entry (for shutdown sweeps; allocates).
    pub fn ids(&self) -> Vec<Id<K>> {
        self.slab.iter().map(|(k, (g, _))| Id { key: k as u32, gen: *g, _t: PhantomData }).collect()
    }
}

/// A generational slab whose slots keep their last value after it is freed, for a large
/// value built once per use (a request, ~1 KB): the next use resets the old value in place
/// ([`ReuseSlab::insert_with`]) instead of building a new one and moving it in, and freeing
/// ([`ReuseSlab::discard`]) moves nothing out. nginx gets the same from its pools: a request
/// is `ngx_pcalloc`ed where it will live, and freed by dropping the pool, not by a copy.
///
/// Ids behave as [`GenSlab`]'s: a slot's generation moves on when its value is freed, free
/// slots are reused last freed first, and a stale id finds nothing. What a freed slot keeps is
/// up to its owner: the owner releases every resource of the value before `discard` (the
/// value left behind must hold nothing that is expected to be gone: no socket, no file, no
/// buffer of a pool).
pub struct ReuseSlab<T, K = T> {
    slots: Vec<Slot<T>>,
    /// Keys of the free slots; the last pushed is reused first (as `slab::Slab` does).
    free: Vec<u32>,
    len: usize,
    _k: PhantomData<fn() -> K>,
}

struct Slot<T> {
    /// The generation of the live value; while free, the one the next value gets with
    /// `FREE` added, so that `get` checks liveness and generation with one comparison.
    tag: u64,
    /// The live value, or what a freed one left (`None` after `remove`).
    val: Option<T>,
}

/// Set in the tag of a free slot: no id's generation (a `u32`) equals it.
const FREE: u64 = 1 << 32;

impl<T, K> Default for ReuseSlab<T, K> {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

impl<T, K> ReuseSlab<T, K> {
    /// An empty slab with room for `n` entries before it reallocates.
    pub fn with_capacity(n: usize) -> Self {
        ReuseSlab { slots: Vec::with_capacity(n), free: Vec::new(), len: 0, _k: PhantomData }
    }
    /// The id the next insert will return: lets a value record its own id before insertion.
    pub fn vacant_id(&self) -> Id<K> {
        match self.free.last() {
            Some(&key) => Id { key, gen: self.slots[key as usize].tag as u32, _t: PhantomData },
            None => Id { key: self.slots.len() as u32, gen: 0, _t: PhantomData },
        }
    }
    /// Takes a free slot and lets `init` fill it: `init` gets the new value's id and the
    /// slot's content, `Some(old)` to reset in place or `None` (a slot never used, or emptied
    /// by `remove`) to set. `None` (and the slot stays free) if `init` left it empty.
    /// nginx: `ngx_get_connection()` / `ngx_pcalloc()` of a request.
    #[inline(always)]
    pub fn insert_with(&mut self, init: impl FnOnce(Id<K>, &mut Option<T>)) -> Option<Id<K>> {
        let id = self.vacant_id();
        let new = id.key() == self.slots.len();
        if new {
            self.slots.push(Slot { tag: FREE, val: None });
        }
        let slot = self.slots.get_mut(id.key())?;
        init(id, &mut slot.val);
        if slot.val.is_none() {
            if new {
                self.free.push(id.key); // a slot pushed for nothing stays free
            }
            return None;
        }
        slot.tag = id.gen as u64;
        if !new {
            self.free.pop(); // `vacant_id` took the last free key
        }
        self.len += 1;
        Some(id)
    }
    /// Stores `v` (dropping what the slot kept) and returns its id.
    pub fn insert(&mut self, v: T) -> Id<K> {
        let mut v = Some(v);
        let id = self.insert_with(|_, slot| *slot = v.take());
        id.expect("insert_with with a value always fills the slot")
    }
    /// The value, if the id is still current.
    #[inline]
    pub fn get(&self, id: Id<K>) -> Option<&T> {
        match self.slots.get(id.key as usize) {
            Some(s) if s.tag == id.gen as u64 => s.val.as_ref(),
            _ => None,
        }
    }
    /// The value, mutably, if the id is still current.
    #[inline]
    pub fn get_mut(&mut self, id: Id<K>) -> Option<&mut T> {
        match self.slots.get_mut(id.key as usize) {
            Some(s) if s.tag == id.gen as u64 => s.val.as_mut(),
            _ => None,
        }
    }
    /// Frees the slot: `id` and its copies find nothing from now on.
    fn free_slot(&mut self, id: Id<K>) -> Option<&mut Slot<T>> {
        let slot = self.slots.get_mut(id.key as usize).filter(|s| s.tag == id.gen as u64)?;
        slot.tag = id.gen.wrapping_add(1) as u64 | FREE;
        self.free.push(id.key);
        self.len -= 1;
        Some(slot)
    }
    /// Frees the slot and moves the value out (the slot keeps nothing).
    pub fn remove(&mut self, id: Id<K>) -> Option<T> {
        self.free_slot(id)?.val.take()
    }
    /// Frees the slot and leaves the value in it for the next `insert_with` (the owner has
    /// released its resources). Whether the id was current.
    pub fn discard(&mut self, id: Id<K>) -> bool {
        self.free_slot(id).is_some()
    }
    /// Live entries.
    pub fn len(&self) -> usize {
        self.len
    }
    /// No live entries.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Ids of every live entry (for shutdown sweeps; allocates).
    pub fn ids(&self) -> Vec<Id<K>> {
        let live = self.slots.iter().enumerate().filter(|(_, s)| s.tag & FREE == 0 && s.val.is_some());
        live.map(|(k, s)| Id { key: k as u32, gen: s.tag as u32, _t: PhantomData }).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_id_finds_nothing() {
        let mut s: GenSlab<_> = GenSlab::new();
        let a = s.insert(1);
        assert_eq!(s.remove(a), Some(1));
        let b = s.insert(2);
        assert_eq!(a.key(), b.key());
        assert!(s.get(a).is_none());
        assert_eq!(s.get(b), Some(&2));
        assert_eq!(Id::<i32>::from_token(b.to_token()), b);
    }

    /// One slot freed and reused many times never answers any of its earlier ids, while the
    /// other slots' ids (issued in between) stay valid: the generation is per slot.
    #[test]
    fn reused_slot_never_answers_old_ids() {
        let mut s: GenSlab<_> = GenSlab::new();
        let keep = s.insert(-1);
        let mut old = Vec::new();
        for i in 0..10_000 {
            let id = s.insert(i);
            assert_eq!(id.key(), 1, "the freed slot is reused");
            assert_eq!(s.get(id), Some(&i));
            assert_eq!(s.remove(id), Some(i));
            assert_eq!(s.remove(id), None, "a second free of the same id does nothing");
            old.push(id);
        }
        let current = s.insert(7);
        assert_eq!(current.key(), 1);
        for id in &old {
            assert!(s.get(*id).is_none(), "old id {id:?} answered");
            assert!(s.get_mut(*id).is_none());
            assert!(s.remove(*id).is_none());
        }
        assert_eq!(s.get(current), Some(&7));
        assert_eq!(s.get(keep), Some(&-1), "the other slot keeps its id");
    }

    /// Generations are per slot: inserts into other slots do not move a slot's generation.
    #[test]
    fn generation_moves_only_on_reuse_of_that_slot() {
        let mut s: GenSlab<_> = GenSlab::new();
        let a = s.insert(0);
        for i in 1..100 {
            s.insert(i);
        }
        assert_eq!(s.remove(a), Some(0));
        let next = s.vacant_id();
        let b = s.insert(42);
        assert_eq!(b, next, "vacant_id predicts the insert");
        assert_eq!(b.key(), a.key());
        assert_eq!(b.gen, a.gen.wrapping_add(1));
    }

    /// At `u32::MAX` a slot's generation wraps to 0 without a panic, and the id from before the
    /// wrap is stale.
    #[test]
    fn generation_wraps_without_panic() {
        let mut s: GenSlab<_> = GenSlab::new();
        let a = s.insert("a");
        s.remove(a);
        s.next_gen[a.key()] = u32::MAX; // as if the slot had been reused 2^32 - 1 times
        let b = s.insert("b");
        assert_eq!(b.gen, u32::MAX);
        assert_eq!(Id::<&str>::from_token(b.to_token()), b);
        assert_eq!(s.remove(b), Some("b"));
        let c = s.insert("c");
        assert_eq!((c.key(), c.gen), (b.key(), 0), "wrapped to 0");
        assert!(s.get(b).is_none());
        assert_eq!(s.get(c), Some(&"c"));
    }

    /// A `ReuseSlab` gives ids as `GenSlab` does (stale after a free, the last freed slot
    /// reused first, `vacant_id` predicting the insert) and hands the freed value back to the
    /// next `insert_with` of its slot.
    #[test]
    fn reuse_slab_ids_and_kept_values() {
        let mut s: ReuseSlab<Vec<u8>> = ReuseSlab::default();
        let a = s.insert(vec![1]);
        let b = s.insert(vec![2]);
        assert_eq!(s.len(), 2);
        assert!(s.discard(a));
        assert!(!s.discard(a), "a second discard of the same id does nothing");
        assert!(s.get(a).is_none() && s.get_mut(a).is_none() && s.remove(a).is_none());
        assert_eq!(s.len(), 1);
        let next = s.vacant_id();
        let mut seen = None;
        let c = s
            .insert_with(|id, slot| {
                seen = slot.clone();
                let v = slot.as_mut().unwrap();
                v.clear();
                v.push(id.gen as u8 + 10);
            })
            .unwrap();
        assert_eq!(c, next, "vacant_id predicts the insert");
        assert_eq!((c.key(), c.gen), (a.key(), a.gen + 1));
        assert_eq!(seen, Some(vec![1]), "the freed value was handed back");
        assert_eq!(s.get(c), Some(&vec![11]));
        assert!(s.get(a).is_none(), "the old id stays stale");
        assert_eq!(s.remove(b), Some(vec![2]));
        let d = s.insert_with(|_, slot| assert!(slot.is_none(), "remove took the value")).is_none();
        assert!(d, "a slot left empty stays free");
        assert!(s.vacant_id().key() == b.key() && s.vacant_id().gen == b.gen + 1);
        let e = s.insert(vec![3]);
        assert_eq!(e.key(), b.key());
        assert_eq!(s.ids(), vec![c, e]);
        assert_eq!(s.len(), 2);
        let f = s.insert(vec![4]);
        assert_eq!((f.key(), f.gen), (2, 0), "no free slot: a new one");
    }
}
