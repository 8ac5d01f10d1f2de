//! The buffered upstream body's overflow: when the in-memory buffers are all waiting for a
//! slow client, the oldest of them go to a temp file, `temp_file_write_size` at a time, up to
//! `max_temp_file_size`.
//!
//! nginx: src/event/ngx_event_pipe.{c,h} (`ngx_event_pipe_write_chain_to_temp_file`,
//! `p->temp_file`, `p->max_temp_file_size`, `p->temp_file_write_size`).
//!
//! Differs from nginx: `ngx_event_pipe` also owns reading and writing; in rginx the upstream's
//! body loop (`upstream::response::process_body`) does both and uses this only to spill. The
//! chain it spills from keeps the order `[file regions][memory buffers]`, so the client still
//! receives the bytes in order.

use std::fs::File;
use std::io;
use std::path::Path;
use std::rc::Rc;

use crate::core::buf::{Buf, BufPool, Chain};
use crate::core::temp_file::TempFile;

/// Most body ranges one read may pass on before they are placed in the chain.
pub const SHADOWS: usize = 8;

/// Temp-file state of one buffered response, and the body ranges of the read in progress.
/// nginx: part of `ngx_event_pipe_t`.
#[derive(Default)]
pub struct Pipe {
    /// The temp file, created on first spill. nginx: `p->temp_file`.
    pub temp_file: Option<TempFile>,
    /// The ranges of `u.buffer` the input filter passed on during the current read, in order;
    /// `upstream::response` places them in the chain once the filter returns (the buffer
    /// itself goes down the chain when it can, so the ranges wait until the filter is done
    /// with it). nginx: the shadow bufs an input filter links to `p->in`, pointing into the
    /// raw buffer the bytes were read into.
    shadows: [(usize, usize); SHADOWS],
    /// How many of `shadows` are in use.
    nshadows: usize,
}

impl Pipe {
    /// Records a body range of the current read; false when `SHADOWS` ranges wait already
    /// (the caller places them first).
    pub fn push_shadow(&mut self, start: usize, end: usize) -> bool {
        let Some(slot) = self.shadows.get_mut(self.nshadows) else { return false };
        *slot = (start, end);
        self.nshadows += 1;
        true
    }

    /// Takes the waiting ranges, in order (borrowed, not copied: the caller reads them before
    /// the next `push_shadow`).
    pub fn take_shadows(&mut self) -> &[(usize, usize)] {
        let n = std::mem::take(&mut self.nshadows);
        self.shadows.get(..n).unwrap_or(&[])
    }

    /// Bytes written to the temp file so far.
    pub fn spilled(&self) -> u64 {
        self.temp_file.as_ref().map_or(0, |t| t.len)
    }

    /// Moves up to `write_size` bytes of the first memory buffers of `out` into the temp file,
    /// never letting the file exceed `max_size`. Returns the bytes moved (0: nothing to spill
    /// or the file is full). nginx: `ngx_event_pipe_write_chain_to_temp_file()`.
    ///
    /// The chain stays exact after every single write: a piece leaves its memory buffer only
    /// once it is whole in the file, and the file region naming it is extended (or added) at
    /// once. So an error (creating the file, or a failed or short write: ENOSPC, EFBIG) leaves
    /// nothing half-moved, and no region ever covers bytes that were not written. The error
    /// carries nginx's words (`pwrite() "NAME" failed (28: No space left on device)`); the
    /// caller ends the response, as nginx's NGX_ABORT does.
    pub fn spill(
        &mut self,
        out: &mut Chain,
        pool: &mut BufPool,
        dir: &Path,
        write_size: usize,
        max_size: u64,
    ) -> io::Result<usize> {
        let room = max_size.saturating_sub(self.spilled());
        let budget = (write_size as u64).min(room) as usize;
        let Some(start) = out.iter().position(|b| b.file.is_none()) else { return Ok(0) };
        if budget == 0 || out.get(start).is_none_or(|b| b.last_buf) {
            return Ok(0);
        }
        if self.temp_file.is_none() {
            self.temp_file = Some(TempFile::create(dir)?);
            log::warn!("an upstream response is buffered to a temporary file");
        }
        let Some(tf) = self.temp_file.as_mut() else {
            return Ok(0);
        };
        let (mut moved, mut start) = (0, start);
        while moved < budget {
            let Some(b) = out.get_mut(start) else { break };
            if b.file.is_some() || b.last_buf {
                break;
            }
            let take = b.data().len().min(budget - moved);
            let at = tf.len;
            tf.append(&b.data()[..take])?;
            b.consume(take);
            moved += take;
            if b.is_empty() {
                if let Some(b) = out.remove(start) {
                    pool.put(b);
                }
            }
            if add_region(out, start, &tf.file, at, take as u64) {
                start += 1;
            }
        }
        Ok(moved)
    }
}

/// Records that `len` bytes now sit in `file` at `at`, just before the memory buffer at
/// `start`: extends the file region in front of it when that region ends at `at`, else
/// inserts one (then returns true: the memory buffer moved one place back).
fn add_region(out: &mut Chain, start: usize, file: &Rc<File>, at: u64, len: u64) -> bool {
    let prev = start.checked_sub(1).and_then(|i| out.get_mut(i)).and_then(|b| b.file.as_mut());
    match prev {
        Some(f) if f.last == at && Rc::ptr_eq(&f.file, file) => {
            f.last += len;
            false
        }
        _ => {
            out.insert(start, Buf::from_file(file.clone(), at, at + len));
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::OpenOptions;

    fn mem(pool: &mut BufPool, s: &[u8]) -> Buf {
        let mut b = pool.get(s.len());
        b.append(s);
        b
    }

    /// What the client would receive from `out`: file regions read back at their offsets.
    fn contents(out: &Chain) -> Vec<u8> {
        let mut v = Vec::new();
        for b in out {
            if b.file.is_some() {
                let mut piece = vec![0; b.len() as usize];
                assert_eq!(b.read_file(&mut piece).unwrap(), piece.len());
                v.extend_from_slice(&piece);
            } else {
                v.extend_from_slice(b.data());
            }
        }
        v
    }

    #[test]
    fn spill_keeps_order_and_offsets_and_a_failed_write_moves_nothing() {
        let dir = std::env::temp_dir().join(format!("rginx-pipe-{}", std::process::id()));
        let mut pool = BufPool::default();
        let mut out: Chain = [b"aaaa", b"bbbb", b"cccc", b"dddd"].iter().map(|s| mem(&mut pool, *s)).collect();
        let mut p = Pipe::default();
        assert_eq!(p.spill(&mut out, &mut pool, &dir, 6, 1 << 20).unwrap(), 6);
        assert_eq!(p.spill(&mut out, &mut pool, &dir, 4, 1 << 20).unwrap(), 4);
        // One region (extended), then the rest in memory.
        assert_eq!(out.iter().filter(|b| b.file.is_some()).count(), 1);
        assert_eq!(contents(&out), b"aaaabbbbccccdddd");
        assert_eq!(p.spilled(), 10);

        // The disk is full now: the next write fails, and the chain is exactly as before.
        let full = OpenOptions::new().read(true).write(true).open("/dev/full").unwrap();
        let tf = p.temp_file.as_mut().unwrap();
        let real = std::mem::replace(&mut tf.file, Rc::new(full));
        let e = p.spill(&mut out, &mut pool, &dir, 4, 1 << 20).unwrap_err();
        assert!(e.to_string().ends_with("failed (28: No space left on device)"), "{e}");
        assert_eq!(p.spilled(), 10);
        p.temp_file.as_mut().unwrap().file = real;
        assert_eq!(contents(&out), b"aaaabbbbccccdddd");

        // The file limit stops spilling without an error.
        assert_eq!(p.spill(&mut out, &mut pool, &dir, 100, 12).unwrap(), 2);
        assert_eq!(p.spill(&mut out, &mut pool, &dir, 100, 12).unwrap(), 0);
        assert_eq!(contents(&out), b"aaaabbbbccccdddd");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
