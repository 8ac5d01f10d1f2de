//! Generational ids over `slab::Slab`: the Rust form of nginx's `instance` bit.
//!
//! nginx: `ngx_get_connection()` flips `rev->instance` so that an epoll event for a descriptor
//! closed earlier in the same batch is recognised as stale (src/core/ngx_connection.c, checked in
//! src/event/modules/ngx_epoll_module.c). Slab keys are reused just as fast as nginx's free list,
//! so every slot carries a generation and every id names both; a stale id simply finds nothing.
//!
//! Differs from nginx:
//! - one bit is enough for nginx because only the current epoll batch can be stale; rginx ids also
//!   live in timers, posted queues and parent/child links, so the generation is 32 bits.

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

/// A `slab::Slab` whose entries remember the generation they were inserted with.
pub struct GenSlab<T> {
    slab: slab::Slab<(u32, T)>,
    next_gen: u32,
}

impl<T> Default for GenSlab<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> GenSlab<T> {
    /// An empty slab.
    pub fn new() -> Self {
        GenSlab { slab: slab::Slab::new(), next_gen: 1 }
    }
    /// An empty slab with room for `n` entries before it reallocates.
    pub fn with_capacity(n: usize) -> Self {
        GenSlab { slab: slab::Slab::with_capacity(n), next_gen: 1 }
    }
    /// Stores `v` and returns its id. nginx: `ngx_get_connection()` taking a free slot.
    pub fn insert(&mut self, v: T) -> Id<T> {
        let gen = self.next_gen;
        self.next_gen = self.next_gen.wrapping_add(1).max(1);
        let key = self.slab.insert((gen, v));
        Id { key: key as u32, gen, _t: PhantomData }
    }
    /// The id the next `insert` will return: lets a value record its own id before insertion.
    pub fn vacant_id(&self) -> Id<T> {
        Id { key: self.slab.vacant_key() as u32, gen: self.next_gen, _t: PhantomData }
    }
    /// The value, if the id is still current.
    pub fn get(&self, id: Id<T>) -> Option<&T> {
        match self.slab.get(id.key as usize) {
            Some((g, v)) if *g == id.gen => Some(v),
            _ => None,
        }
    }
    /// The value, mutably, if the id is still current.
    pub fn get_mut(&mut self, id: Id<T>) -> Option<&mut T> {
        match self.slab.get_mut(id.key as usize) {
            Some((g, v)) if *g == id.gen => Some(v),
            _ => None,
        }
    }
    /// Whether the id still names a live value.
    pub fn contains(&self, id: Id<T>) -> bool {
        self.get(id).is_some()
    }
    /// Frees the slot. nginx: `ngx_free_connection()`.
    pub fn remove(&mut self, id: Id<T>) -> Option<T> {
        if self.contains(id) {
            Some(self.slab.remove(id.key as usize).1)
        } else {
            None
        }
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
    pub fn ids(&self) -> Vec<Id<T>> {
        self.slab.iter().map(|(k, (g, _))| Id { key: k as u32, gen: *g, _t: PhantomData }).collect()
    }
}

impl<T> std::ops::Index<Id<T>> for GenSlab<T> {
    type Output = T;
    /// Panics on a stale id: only for ids whose owner guarantees they are live.
    fn index(&self, id: Id<T>) -> &T {
        match self.get(id) {
            Some(v) => v,
            None => panic!("stale id {:?}", id),
        }
    }
}
impl<T> std::ops::IndexMut<Id<T>> for GenSlab<T> {
    fn index_mut(&mut self, id: Id<T>) -> &mut T {
        match self.get_mut(id) {
            Some(v) => v,
            None => panic!("stale id {:?}", id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_id_finds_nothing() {
        let mut s = GenSlab::new();
        let a = s.insert(1);
        assert_eq!(s.remove(a), Some(1));
        let b = s.insert(2);
        assert_eq!(a.key(), b.key());
        assert!(s.get(a).is_none());
        assert_eq!(s.get(b), Some(&2));
        assert_eq!(Id::<i32>::from_token(b.to_token()), b);
    }
}
