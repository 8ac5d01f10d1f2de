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

use std::io;
use std::path::Path;

use crate::core::buf::{Buf, BufPool, Chain};
use crate::core::temp_file::TempFile;

/// Temp-file state of one buffered response. nginx: part of `ngx_event_pipe_t`.
#[derive(Default)]
pub struct Pipe {
    /// The temp file, created on first spill. nginx: `p->temp_file`.
    pub temp_file: Option<TempFile>,
}

impl Pipe {
    /// Bytes written to the temp file so far.
    pub fn spilled(&self) -> u64 {
        self.temp_file.as_ref().map_or(0, |t| t.len)
    }

    /// Moves up to `write_size` bytes of the first memory buffers of `out` into the temp file,
    /// never letting the file exceed `max_size`. Returns the bytes moved (0: nothing to spill
    /// or the file is full). nginx: `ngx_event_pipe_write_chain_to_temp_file()`.
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
        let first_mem = out.iter().position(|b| b.file.is_none());
        let Some(start) = first_mem else { return Ok(0) };
        if budget == 0 {
            return Ok(0);
        }
        if self.temp_file.is_none() {
            self.temp_file = Some(TempFile::create(dir)?);
            log::warn!("an upstream response is buffered to a temporary file");
        }
        let Some(tf) = self.temp_file.as_mut() else {
            return Ok(0);
        };
        let file_start = tf.len;
        let mut moved = 0;
        while moved < budget {
            let Some(b) = out.get_mut(start) else { break };
            if b.file.is_some() || b.last_buf {
                break;
            }
            let take = b.data().len().min(budget - moved);
            tf.append(&b.data()[..take])?;
            b.consume(take);
            moved += take;
            if b.is_empty() {
                if let Some(b) = out.remove(start) {
                    pool.put(b);
                }
            }
        }
        if moved > 0 {
            // Extend the last file region when it ends where we wrote, else add one.
            let extend =
                start > 0 && out.get(start - 1).and_then(|b| b.file.as_ref()).is_some_and(|f| f.last == file_start);
            if extend {
                if let Some(f) = out.get_mut(start - 1).and_then(|b| b.file.as_mut()) {
                    f.last += moved as u64;
                }
            } else {
                out.insert(start, Buf::from_file(tf.file.clone(), file_start, file_start + moved as u64));
            }
        }
        Ok(moved)
    }
}
