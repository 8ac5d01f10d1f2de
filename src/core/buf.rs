//! Buffers and chains: the unit in which bytes move between sockets, filters and files.
//!
//! nginx: `ngx_buf_t` / `ngx_chain_t` (src/core/ngx_buf.{c,h}).
//!
//! Differs from nginx:
//! - a `Buf` owns its memory (a `Vec<u8>` initialised once, `len() == capacity`), and `pos..last`
//!   marks the live bytes exactly as in nginx; ownership moves along the chain instead of several
//!   `ngx_buf_t` headers pointing into one pool allocation.
//! - a chain is a `VecDeque<Buf>`; nginx links `ngx_chain_t` nodes from a pool.
//! - spent buffers go back to a per-worker `BufPool` of fixed power-of-two classes (32 bytes to
//!   1 MiB, a bounded number each), which plays the role of nginx's per-request pools and
//!   `free`/`busy` lists: the hot path allocates nothing once warm, and no size a request asks
//!   for can change which sizes are pooled.

use std::collections::VecDeque;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::rc::Rc;

/// A region of a file to send (a buffered upstream body spilled to a temp file).
///
/// nginx: `b->in_file`, `b->file`, `b->file_pos`, `b->file_last`.
#[derive(Clone, Debug)]
pub struct FileRegion {
    /// The open file; shared because the writer keeps appending while bufs point into it.
    pub file: Rc<File>,
    /// First byte still to send.
    pub pos: u64,
    /// One past the last byte.
    pub last: u64,
}

/// One buffer: `mem[pos..last]` holds the bytes still to be consumed.
///
/// nginx: `ngx_buf_t` with `pos`/`last`/`start`/`end`, plus the flags filters look at.
#[derive(Debug, Default)]
pub struct Buf {
    /// Storage; its whole length is usable (`end` in nginx).
    pub mem: Vec<u8>,
    /// First unconsumed byte.
    pub pos: usize,
    /// One past the last valid byte.
    pub last: usize,
    /// Set when the bytes live in a file instead of `mem`.
    pub file: Option<FileRegion>,
    /// nginx `b->last_buf`: the end of the whole response.
    pub last_buf: bool,
    /// nginx `b->flush`: send what is queued now, do not wait to fill a packet.
    pub flush: bool,
}

impl Buf {
    /// A buffer that owns `v` as its content (`pos = 0`, `last = len`).
    pub fn from_vec(v: Vec<u8>) -> Buf {
        let last = v.len();
        Buf { mem: v, pos: 0, last, ..Buf::default() }
    }
    /// An empty buffer marking the end of the response (nginx: `b->last_buf = 1` with no data).
    pub fn last_buf() -> Buf {
        Buf { last_buf: true, ..Buf::default() }
    }
    /// A buffer describing a file region.
    pub fn from_file(file: Rc<File>, pos: u64, last: u64) -> Buf {
        Buf { file: Some(FileRegion { file, pos, last }), ..Buf::default() }
    }
    /// The live bytes in memory.
    pub fn data(&self) -> &[u8] {
        &self.mem[self.pos..self.last]
    }
    /// Room after `last` to read into.
    pub fn free_space(&mut self) -> &mut [u8] {
        &mut self.mem[self.last..]
    }
    /// Bytes still to consume, in memory or in the file region.
    pub fn len(&self) -> u64 {
        match &self.file {
            Some(f) => f.last - f.pos,
            None => (self.last - self.pos) as u64,
        }
    }
    /// No bytes left (flags may still matter).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// No room left after `last`.
    pub fn is_full(&self) -> bool {
        self.last == self.mem.len()
    }
    /// Marks `n` bytes consumed. nginx: `b->pos += n` (or `b->file_pos += n`).
    pub fn consume(&mut self, n: usize) {
        match &mut self.file {
            Some(f) => f.pos += n as u64,
            None => self.pos += n,
        }
    }
    /// Empties the buffer for reuse. nginx: `b->pos = b->last = b->start`.
    pub fn reset(&mut self) {
        self.pos = 0;
        self.last = 0;
        self.file = None;
        self.last_buf = false;
        self.flush = false;
    }
    /// Moves the live bytes to the start so more can be read after them.
    pub fn compact(&mut self) {
        if self.pos > 0 {
            self.mem.copy_within(self.pos..self.last, 0);
            self.last -= self.pos;
            self.pos = 0;
        }
    }
    /// Appends as much of `src` as fits; returns how much was copied.
    pub fn append(&mut self, src: &[u8]) -> usize {
        let n = src.len().min(self.mem.len() - self.last);
        self.mem[self.last..self.last + n].copy_from_slice(&src[..n]);
        self.last += n;
        n
    }
    /// Reads `min(out.len(), len())` bytes of the file region at its current position, at that
    /// explicit offset (`pread`: the writer's appends and this read share no cursor). A blocking
    /// read of a regular file, bounded by the caller's buffer: nginx does the same in
    /// `ngx_read_file`. Fewer bytes than the region promises is an error, never a short buffer
    /// (the file was truncated under us): nginx's "read only N of M" alert.
    ///
    /// nginx: `ngx_read_file()` as `ngx_output_chain_copy_buf()` checks it.
    pub fn read_file(&self, out: &mut [u8]) -> std::io::Result<usize> {
        let Some(f) = &self.file else { return Ok(0) };
        let want = out.len().min((f.last - f.pos) as usize);
        let mut got = 0;
        while got < want {
            match f.file.read_at(&mut out[got..want], f.pos + got as u64) {
                Ok(0) => {
                    let msg = format!("read only {got} of {want} from temp file at offset {}", f.pos);
                    return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, msg));
                }
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(want)
    }
}

/// A queue of buffers. nginx: `ngx_chain_t *`.
pub type Chain = VecDeque<Buf>;

/// Total bytes still to send in a chain.
pub fn chain_len(chain: &Chain) -> u64 {
    chain.iter().map(Buf::len).sum()
}

impl Buf {
    /// What the buffer holds while it waits, for the bounds of `proxy_buffers` and
    /// `proxy_busy_buffers_size`: a memory buffer with live bytes holds its whole memory, not
    /// only the live bytes (a buffer handed down the chain keeps its size until it is sent;
    /// nginx counts `b->end - b->start` of busy buffers), a file region its length, a spent
    /// buffer nothing.
    pub fn held(&self) -> u64 {
        match &self.file {
            Some(f) => f.last - f.pos,
            None if self.pos < self.last => self.mem.len() as u64,
            None => 0,
        }
    }
}

/// What a chain holds while it waits (see `Buf::held`).
pub fn chain_held(chain: &Chain) -> u64 {
    chain.iter().map(Buf::held).sum()
}

/// Smallest pooled class: 2^5 = 32 bytes (a chunk-size line); smaller requests use it too.
const MIN_SHIFT: u32 = 5;
/// Largest pooled class: 2^20 = 1 MiB. Bigger buffers are allocated exactly and freed on `put`.
const MAX_SHIFT: u32 = 20;
/// Number of classes, one per power of two from `MIN_SHIFT` to `MAX_SHIFT`.
const CLASSES: usize = (MAX_SHIFT - MIN_SHIFT + 1) as usize;
/// Bytes each class may keep spare; beyond it (or `CLASS_KEEP` buffers) buffers are freed.
const CLASS_BYTES: usize = 2 * 1024 * 1024;
/// Spare buffers kept per class at most, however small the class.
const CLASS_KEEP: usize = 512;
/// Spare chain storages kept (an empty `VecDeque` with room for a few buffers).
const CHAINS_KEEP: usize = 64;
/// A chain storage with room for more buffers than this is freed, not kept.
const CHAIN_CAP: usize = 64;

/// Recycles buffer memory in fixed power-of-two classes, so steady-state traffic allocates
/// nothing.
///
/// A request for `size` bytes is served from the class `size.next_power_of_two()` (at least
/// 32 bytes, at most 1 MiB): the `Vec` has that capacity and a length of exactly `size`, so a
/// buffer never holds more than its configuration says. The classes are fixed in advance, not
/// learned from the sizes asked for, so request-dependent sizes (a body buffer sized by
/// `Content-Length`, an error page) land in the same classes as everything else and cannot
/// push the common sizes out; memory of any other capacity (grown `Vec`s, `from_vec` of a
/// foreign `Vec`, anything over 1 MiB) is freed on `put`. Each class keeps at most
/// `CLASS_BYTES` (and `CLASS_KEEP` buffers), so the whole pool holds at most
/// [`BufPool::MAX_POOLED`] bytes per worker. Once warm, `get` and `put` move a `Vec` between
/// the caller and a free list: no allocation, no zero-filling beyond a length change.
///
/// nginx: request pools and the `free` lists of `ngx_chain_update_chains()`; nginx frees a
/// request's buffers with its pool and lets malloc recycle them.
#[derive(Default)]
pub struct BufPool {
    /// Free memory per class: `free[i]` holds `Vec`s of capacity `1 << (MIN_SHIFT + i)`.
    free: [Vec<Vec<u8>>; CLASSES],
    /// Empty chain storages, so that building a chain (a filter's output, the body waiting for
    /// the client) allocates nothing once warm. nginx: the pool's `chain` free list
    /// (`ngx_alloc_chain_link()`).
    chains: Vec<Chain>,
}

const _: () = assert!(BufPool::MAX_POOLED <= 24 << 20, "the pool's bound grew: say so in the docs");

/// The class of a buffer of `size` bytes, `None` above the largest class.
fn class_of(size: usize) -> Option<usize> {
    let shift = size.max(1).next_power_of_two().trailing_zeros().max(MIN_SHIFT);
    (shift <= MAX_SHIFT).then(|| (shift - MIN_SHIFT) as usize)
}

/// How many spare buffers class `i` keeps.
const fn class_keep(i: usize) -> usize {
    let n = CLASS_BYTES >> (MIN_SHIFT as usize + i);
    if n > CLASS_KEEP {
        CLASS_KEEP
    } else {
        n
    }
}

/// `class_keep` of every class, computed once.
const KEEP: [usize; CLASSES] = {
    let mut keep = [0; CLASSES];
    let mut i = 0;
    while i < CLASSES {
        keep[i] = class_keep(i);
        i += 1;
    }
    keep
};

impl BufPool {
    /// The most memory the pool can hold at once: each class's keep times its size.
    pub const MAX_POOLED: usize = {
        let mut total = 0;
        let mut i = 0;
        while i < CLASSES {
            total += class_keep(i) << (MIN_SHIFT as usize + i);
            i += 1;
        }
        total
    };

    /// A buffer of exactly `size` usable bytes (`mem.len() == size`), recycled when possible.
    /// Its bytes are not cleared: `pos..last` says what is live.
    pub fn get(&mut self, size: usize) -> Buf {
        let mem = match class_of(size) {
            Some(i) => match self.free[i].pop() {
                Some(mut v) => {
                    v.resize(size, 0);
                    v
                }
                None => {
                    let mut v = vec![0; 1 << (MIN_SHIFT as usize + i)];
                    v.truncate(size);
                    v
                }
            },
            None => vec![0; size],
        };
        Buf { mem, ..Buf::default() }
    }

    /// An empty `Vec` with room for at least `size` bytes, recycled when possible: for memory
    /// that is appended to (a header list), so nothing is zero-filled first, unlike `get`.
    /// Goes back with `put(Buf::from_vec(v))`.
    pub fn get_vec(&mut self, size: usize) -> Vec<u8> {
        let Some(i) = class_of(size) else { return Vec::with_capacity(size) };
        match self.free[i].pop() {
            Some(mut v) => {
                v.clear();
                v
            }
            None => Vec::with_capacity(1 << (MIN_SHIFT as usize + i)),
        }
    }

    /// Returns a buffer's memory to the pool: kept if its capacity is exactly a class and the
    /// class has room, freed otherwise.
    pub fn put(&mut self, b: Buf) {
        let v = b.mem;
        let cap = v.capacity();
        // A class's memory has exactly the class's capacity, a power of two within the
        // classes; anything else (a flags-only buffer's 0 among it) is freed.
        // The class from the lowest set bit (64 for 0: out of range, as is a shift below
        // MIN_SHIFT, which wraps), then whether that bit is the only one: fewer steps than
        // `is_power_of_two` plus a range test, and `i < CLASSES` drops the bounds checks.
        let tz = cap.trailing_zeros();
        let i = tz.wrapping_sub(MIN_SHIFT) as usize;
        if i >= CLASSES || cap != 1 << tz {
            return;
        }
        if self.free[i].len() < KEEP[i] {
            self.free[i].push(v);
        }
    }

    /// Returns every buffer of a chain, and the chain's storage (`chain` is left empty,
    /// without storage).
    pub fn put_chain(&mut self, chain: &mut Chain) {
        while let Some(b) = chain.pop_front() {
            self.put(b);
        }
        if chain.capacity() > 0 && chain.capacity() <= CHAIN_CAP && self.chains.len() < CHAINS_KEEP {
            self.chains.push(std::mem::take(chain));
        }
    }

    /// An empty chain, with recycled storage when there is some. nginx:
    /// `ngx_alloc_chain_link()`.
    pub fn chain(&mut self) -> Chain {
        self.chains.pop().unwrap_or_default()
    }

    /// Bytes of spare memory held now (bounded by `MAX_POOLED`).
    pub fn pooled(&self) -> usize {
        self.free.iter().flatten().map(Vec::capacity).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_consume_compact() {
        let mut p = BufPool::default();
        let mut b = p.get(8);
        assert_eq!(b.append(b"hello world"), 8);
        assert!(b.is_full());
        b.consume(6);
        b.compact();
        assert_eq!(b.data(), b"wo");
        assert_eq!(b.free_space().len(), 6);
        p.put(b);
        let b2 = p.get(8);
        assert_eq!(b2.mem.len(), 8);
        assert!(b2.is_empty());
    }

    /// The addresses of `n` warm buffers of `size`, taken and given back.
    fn warm(p: &mut BufPool, size: usize, n: usize) -> Vec<*const u8> {
        let bufs: Vec<Buf> = (0..n).map(|_| p.get(size)).collect();
        let ptrs = bufs.iter().map(|b| b.mem.as_ptr()).collect();
        for b in bufs {
            p.put(b);
        }
        ptrs
    }

    /// A stream of request-dependent sizes, each used once and given back.
    fn odd_stream(p: &mut BufPool, seed: usize) {
        let mut x = seed;
        for _ in 0..5_000 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let size = 1 + (x >> 33) % (3 * 1024 * 1024);
            let b = p.get(size);
            assert_eq!(b.mem.len(), size);
            p.put(b);
        }
    }

    #[test]
    fn odd_sizes_cannot_evict_the_common_classes() {
        let mut p = BufPool::default();
        // Odd sizes first: the old pool made the first 16 sizes ever seen its only classes,
        // after which 4096 and 1024 were never recycled.
        odd_stream(&mut p, 1);
        let mut common = warm(&mut p, 4096, 64);
        common.extend(warm(&mut p, 1024, 64));
        odd_stream(&mut p, 2);
        // Every common buffer is still there: the next gets reuse exactly that memory.
        let again: Vec<Buf> = (0..128).map(|i| p.get(if i < 64 { 4096 } else { 1024 })).collect();
        for b in &again {
            assert!(common.contains(&b.mem.as_ptr()), "a common buffer was not recycled");
        }
        assert!(again.iter().take(64).all(|b| b.mem.len() == 4096));
    }

    #[test]
    fn an_odd_size_is_served_from_its_class_exactly_sized() {
        let mut p = BufPool::default();
        let b = p.get(3000);
        assert_eq!((b.mem.len(), b.mem.capacity()), (3000, 4096));
        let ptr = b.mem.as_ptr();
        p.put(b);
        let b = p.get(4096);
        assert_eq!((b.mem.as_ptr(), b.mem.len()), (ptr, 4096));
        let b = p.get(2049);
        assert_ne!(b.mem.as_ptr(), ptr);
    }

    #[test]
    fn pooled_memory_is_bounded() {
        let mut p = BufPool::default();
        let sizes = [1, 31, 32, 33, 1000, 4096, 5000, 65536, 100_000, 1 << 20, (1 << 20) + 1, 8 << 20];
        for &size in &sizes {
            let bufs: Vec<Buf> = (0..2000).map(|_| p.get(size)).collect();
            for b in bufs {
                p.put(b);
            }
            assert!(p.pooled() <= BufPool::MAX_POOLED, "{} > {}", p.pooled(), BufPool::MAX_POOLED);
        }
        // Foreign memory of a non-class capacity and anything over 1 MiB is not kept.
        let before = p.pooled();
        p.put(Buf::from_vec(Vec::with_capacity(3000)));
        p.put(Buf::from_vec(vec![0; 2 << 20]));
        assert_eq!(p.pooled(), before);
    }

    /// Only memory of exactly a class's capacity is kept: not a flags-only buffer's 0, not
    /// below the smallest class or above the largest, not between two classes.
    #[test]
    fn put_keeps_exactly_the_class_capacities() {
        let mut p = BufPool::default();
        for cap in [0, 1, 16, 31, 33, 48, 3000, (1 << MAX_SHIFT) + 1, 1 << (MAX_SHIFT + 1), usize::MAX / 2 + 1] {
            if cap <= 1 << (MAX_SHIFT + 1) {
                p.put(Buf::from_vec(Vec::with_capacity(cap)));
            } else {
                // too large to allocate: the same test on the capacity alone
                let tz = cap.trailing_zeros();
                assert!(tz.wrapping_sub(MIN_SHIFT) as usize >= CLASSES || cap != 1 << tz);
            }
            assert_eq!(p.pooled(), 0, "capacity {cap} was kept");
        }
        p.put(Buf::from_vec(Vec::with_capacity(1 << MIN_SHIFT)));
        p.put(Buf::from_vec(Vec::with_capacity(1 << MAX_SHIFT)));
        assert_eq!(p.pooled(), (1 << MIN_SHIFT) + (1 << MAX_SHIFT));
    }
}
