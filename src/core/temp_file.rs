//! Temporary files for bodies that do not fit in memory (client request bodies, buffered
//! upstream responses).
//!
//! nginx: `ngx_create_temp_file()`, `ngx_write_chain_to_temp_file()` (src/core/ngx_file.c),
//! `ngx_write_file()` (src/os/unix/ngx_files.c), `ngx_path_t` levels.
//!
//! Every write names its offset (`pwrite`, as `ngx_write_file()` does), and the file's length
//! (`len`, nginx's `tf->offset`) moves only after a whole write succeeded: a failed or short
//! write (ENOSPC, EFBIG) leaves `len` where it was, so no buffer can ever point at bytes that
//! were not written, and the file's own cursor plays no part. Readers use `read_at` the same
//! way (`core::buf::Buf::read_file`).
//!
//! Differs from nginx:
//! - the file is unlinked right after it is created, so it disappears on every path — request
//!   end, error, crash — when its last descriptor closes. nginx keeps the name and removes it in
//!   a pool cleanup (it needs the name for `proxy_store` and `client_body_in_file_only`). The
//!   name is kept only for log messages.
//! - no hashed sub-directory levels.
//! - one `pwrite` per buffer; nginx gathers a chain into one `pwritev` (and then reports a short
//!   write as "pwritev() ... has written only N of M" instead of retrying it).

use std::cell::Cell;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

/// How many names a thread takes from [`BLOCKS`] at a time.
const BLOCK: u64 = 1_000_000;
/// The next block of temp file numbers to hand to a thread. nginx: `ngx_temp_number`, one
/// counter in shared memory that every worker bumps per file; here a worker bumps it once per
/// million files and counts on its own in between, so creating a temp file writes no cache
/// line another worker writes.
static BLOCKS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// This thread's next number and the end of its block (`next == end`: take a block).
    static COUNTER: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

/// The next temp file number of this thread: unique in the process. nginx:
/// `ngx_next_temp_number()`.
fn next_temp_number() -> u64 {
    COUNTER.with(|c| {
        let (mut next, mut end) = c.get();
        if next == end {
            next = BLOCKS.fetch_add(1, Ordering::Relaxed) * BLOCK + 1;
            end = next + BLOCK;
        }
        c.set((next + 1, end));
        next
    })
}

/// An anonymous temporary file being appended to. nginx: `ngx_temp_file_t`.
pub struct TempFile {
    /// The open file (shared with buffers that point into it).
    pub file: Rc<File>,
    /// Bytes written so far, all of them whole: the next write goes here. nginx: `tf->offset`.
    pub len: u64,
    /// The name it had before it was unlinked, for messages. nginx: `tf->file.name`.
    pub name: PathBuf,
}

impl TempFile {
    /// Creates (and immediately unlinks) a file in `dir`, creating `dir` if needed. The error
    /// reads as nginx's: `open() "NAME" failed (13: Permission denied)`.
    ///
    /// nginx: `ngx_create_temp_file()` (with `ngx_create_full_path()` on ENOENT).
    pub fn create(dir: &Path) -> io::Result<TempFile> {
        let n = next_temp_number();
        let name = dir.join(format!("{:010}{:05}", n, std::process::id() % 100_000));
        let open = || OpenOptions::new().read(true).write(true).create_new(true).open(&name);
        let file = match open() {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                std::fs::create_dir_all(dir).map_err(|e| describe(e, "mkdir()", dir))?;
                open().map_err(|e| describe(e, "open()", &name))?
            }
            Err(e) => return Err(describe(e, "open()", &name)),
        };
        std::fs::remove_file(&name).map_err(|e| describe(e, "unlink()", &name))?;
        Ok(TempFile { file: Rc::new(file), len: 0, name })
    }

    /// Writes `data` at `len` and advances `len` past it; on any error `len` stays, so the
    /// bytes of a partial write are never referenced (the next write overwrites them). The
    /// error reads as nginx's `pwrite() "NAME" failed (28: No space left on device)`. A
    /// regular-file write: bounded by the caller's chunk size (`proxy_temp_file_write_size`),
    /// as nginx bounds it.
    ///
    /// nginx: `ngx_write_file()` (pwrite, retried after a short write and on EINTR).
    pub fn append(&mut self, data: &[u8]) -> io::Result<()> {
        let mut done = 0;
        while done < data.len() {
            match self.file.write_at(&data[done..], self.len + done as u64) {
                Ok(0) => {
                    let msg = format!("pwrite() \"{}\" has written only {done} of {}", self.name.display(), data.len());
                    return Err(io::Error::new(io::ErrorKind::WriteZero, msg));
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(describe(e, "pwrite()", &self.name)),
            }
        }
        self.len += data.len() as u64;
        Ok(())
    }
}

/// `CALL "NAME" failed (N: strerror)`, nginx's shape for a failed file call; the kind is kept.
fn describe(e: io::Error, call: &str, name: &Path) -> io::Error {
    let why = match e.raw_os_error() {
        Some(n) => {
            let s = e.to_string();
            format!("{n}: {}", s.split(" (os error").next().unwrap_or(&s))
        }
        None => e.to_string(),
    };
    io::Error::new(e.kind(), format!("{call} \"{}\" failed ({why})", name.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each thread counts in its own block: numbers never repeat across threads.
    #[test]
    fn temp_numbers_unique_across_threads() {
        let take = || (0..1000).map(|_| next_temp_number()).collect::<Vec<_>>();
        let other = std::thread::spawn(take).join().expect("thread");
        let mine = take();
        assert!(mine.iter().all(|n| !other.contains(n)));
        assert!(mine.windows(2).all(|w| w[0] < w[1]));
    }

    fn dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("rginx-tf-{}-{}", std::process::id(), next_temp_number()));
        let _ = std::fs::create_dir_all(&d);
        d
    }

    #[test]
    fn append_writes_at_len_and_ignores_the_cursor() {
        let d = dir();
        let mut tf = TempFile::create(&d).unwrap();
        tf.append(b"hello ").unwrap();
        // Reading (or anything else moving the shared cursor) must not shift later writes.
        let mut skip = [0u8; 3];
        std::io::Read::read(&mut &*tf.file, &mut skip).unwrap();
        tf.append(b"world").unwrap();
        assert_eq!(tf.len, 11);
        let mut all = [0u8; 11];
        tf.file.read_exact_at(&mut all, 0).unwrap();
        assert_eq!(&all, b"hello world");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn failed_write_keeps_len_and_names_the_file() {
        let d = dir();
        let mut tf = TempFile::create(&d).unwrap();
        tf.append(b"abc").unwrap();
        // A read-only descriptor makes every pwrite fail (EBADF) without touching the file.
        tf.file = Rc::new(File::open("/dev/null").unwrap());
        let e = tf.append(b"def").unwrap_err();
        assert_eq!(tf.len, 3);
        let msg = e.to_string();
        assert!(msg.starts_with(&format!("pwrite() \"{}\" failed (9: ", tf.name.display())), "{msg}");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn create_in_an_impossible_dir_says_what_failed() {
        let e = TempFile::create(Path::new("/dev/null/sub")).err().unwrap();
        assert!(e.to_string().contains("failed (20: Not a directory)"), "{e}");
    }
}
