//! Temporary files for bodies that do not fit in memory (client request bodies, buffered
//! upstream responses).
//!
//! nginx: `ngx_create_temp_file()`, `ngx_write_chain_to_temp_file()` (src/core/ngx_file.c),
//! `ngx_path_t` levels.
//!
//! Differs from nginx:
//! - the file is unlinked right after it is created, so it disappears on every path — request
//!   end, error, crash — when its last descriptor closes. nginx keeps the name and removes it in
//!   a pool cleanup (it needs the name for `proxy_store` and `client_body_in_file_only`).
//! - no hashed sub-directory levels.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(1);

/// An anonymous temporary file being appended to.
pub struct TempFile {
    /// The open file (shared with buffers that point into it).
    pub file: Rc<File>,
    /// Bytes written so far. nginx: `tf->offset`.
    pub len: u64,
}

impl TempFile {
    /// Creates (and immediately unlinks) a file in `dir`, creating `dir` if needed.
    /// nginx: `ngx_create_temp_file()`.
    pub fn create(dir: &Path) -> io::Result<TempFile> {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = dir.join(format!("{:010}{:05}", n, std::process::id() % 100_000));
        let open = || OpenOptions::new().read(true).write(true).create_new(true).open(&name);
        let file = match open() {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                std::fs::create_dir_all(dir)?;
                open()?
            }
            Err(e) => return Err(e),
        };
        std::fs::remove_file(&name)?;
        Ok(TempFile { file: Rc::new(file), len: 0 })
    }

    /// Appends bytes. A regular-file write: bounded by the caller's chunk size
    /// (`proxy_temp_file_write_size`), as nginx bounds it.
    pub fn append(&mut self, data: &[u8]) -> io::Result<()> {
        (&*self.file).write_all(data)?;
        self.len += data.len() as u64;
        Ok(())
    }
}
