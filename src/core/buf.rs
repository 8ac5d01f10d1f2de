//! Buffers and chains: the unit in which bytes move between sockets, filters and files.
//!
//! nginx: `ngx_buf_t` / `ngx_chain_t` (src/core/ngx_buf.{c,h}).
//!
//! Differs from nginx:
//! - a `Buf` owns its memory (a `Vec<u8>` initialised once, `len() == capacity`), and `pos..last`
//!   marks the live bytes exactly as in nginx; ownership moves along the chain instead of several
//!   `ngx_buf_t` headers pointing into one pool allocation.
//! - a chain is a `VecDeque<Buf>`; nginx links `ngx_chain_t` nodes from a pool.
//! - spent buffers go back to a per-worker `BufPool` keyed by size, which plays the role of
//!   nginx's per-request pools and `free`/`busy` lists: the hot path allocates nothing once warm.

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
    /// Reads up to `out.len()` bytes of the file region at its current position (blocking read of
    /// a regular file, bounded by the caller's buffer: nginx does the same in `ngx_read_file`).
    pub fn read_file(&self, out: &mut [u8]) -> std::io::Result<usize> {
        match &self.file {
            Some(f) => {
                let want = out.len().min((f.last - f.pos) as usize);
                f.file.read_at(&mut out[..want], f.pos)
            }
            None => Ok(0),
        }
    }
}

/// A queue of buffers. nginx: `ngx_chain_t *`.
pub type Chain = VecDeque<Buf>;

/// Total bytes still to send in a chain.
pub fn chain_len(chain: &Chain) -> u64 {
    chain.iter().map(Buf::len).sum()
}

/// Recycles buffer memory per size class, so steady-state traffic allocates nothing.
///
/// nginx: request pools and the `free` lists of `ngx_chain_update_chains()`.
#[derive(Default)]
pub struct BufPool {
    classes: Vec<(usize, Vec<Vec<u8>>)>,
}

/// Spare buffers kept per size class; beyond this they are freed.
const POOL_KEEP: usize = 256;

impl BufPool {
    /// A zero-filled buffer of exactly `size` bytes, recycled when possible.
    pub fn get(&mut self, size: usize) -> Buf {
        // A size asked for becomes a class (up to 16); only classes are recycled, so odd
        // one-off buffers (chunk trailers, error pages) never crowd out the real sizes.
        if self.classes.len() < 16 && !self.classes.iter().any(|(s, _)| *s == size) {
            self.classes.push((size, Vec::new()));
        }
        let v = self
            .classes
            .iter_mut()
            .find(|(s, _)| *s == size)
            .and_then(|(_, l)| l.pop())
            .unwrap_or_else(|| vec![0; size]);
        Buf { mem: v, ..Buf::default() }
    }
    /// Returns a buffer's memory to the pool.
    pub fn put(&mut self, b: Buf) {
        let mut v = b.mem;
        // A buffer built with `from_vec` over pooled memory has len < capacity: restore it
        // to its class size. Unknown sizes beyond 16 classes are simply freed.
        let size = v.capacity();
        if size == 0 {
            return;
        }
        if let Some((_, l)) = self.classes.iter_mut().find(|(s, _)| *s == size) {
            if l.len() < POOL_KEEP {
                v.resize(size, 0);
                l.push(v);
            }
        }
    }
    /// Returns every buffer of a chain.
    pub fn put_chain(&mut self, chain: &mut Chain) {
        while let Some(b) = chain.pop_front() {
            self.put(b);
        }
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
}
