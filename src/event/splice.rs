//! Moving bytes from one socket to another through a kernel pipe, without copying them into
//! user memory: `splice(2)` from the upstream socket into the pipe, and from the pipe into
//! the client socket; and the count of a worker's pipes (`Pipes`).
//!
//! nginx: none. nginx keeps a proxied body in user memory (`ngx_event_pipe_t`'s buffers) and
//! uses zero copy only for files (`sendfile`, src/os/unix/ngx_linux_sendfile_chain.c). The
//! readiness rules are those of `event::io`: `WouldBlock` becomes `Again` once, here.
//! haproxy's `raw_sock_to_pipe()` / `raw_sock_from_pipe()` (src/raw_sock.c) and its
//! `maxpipes` (src/pipe.c) are the model.
//!
//! A pipe is full after a number of pieces (slots), not bytes: a `splice` into a pipe that
//! still holds bytes can fail with `EAGAIN` because the pipe is full as well as because the
//! socket is empty. That answer is `SpliceIn::Full`, which says nothing of the socket: its
//! `read.ready` is left alone, and the caller reads it another way or waits for the pipe to
//! drain. Only `EAGAIN` into an empty pipe means the socket is empty (`Again`).

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use super::connection::{Connection, Stream};
use super::io::write_with;
use super::reactor::World;
use crate::core::step::Step;
use crate::os::sys;

/// A kernel pipe and the count of the bytes in it. Its two descriptors close when it is
/// dropped, whatever ends the request.
pub struct SplicePipe {
    rd: OwnedFd,
    wr: OwnedFd,
    /// Bytes in the pipe: moved in, not yet out.
    held: u64,
}

/// Result of one `splice` from a socket into the pipe.
#[derive(Debug)]
pub enum SpliceIn {
    /// `n > 0` bytes moved into the pipe.
    Data(usize),
    /// The socket has nothing (`EAGAIN` into an empty pipe); `read.ready` is now false.
    Again,
    /// `EAGAIN` with bytes in the pipe: it may be full. The socket's state is unknown.
    Full,
    /// The peer closed its side; `read.eof` is set.
    Eof,
    /// This socket cannot be spliced (`EINVAL`, `ENOSYS`, `EOPNOTSUPP`: a sandbox's filter,
    /// an old kernel, a socket type without `splice_read`). Nothing moved, no flag is set: the
    /// caller reads it the ordinary way.
    Unsupported,
    /// A socket error; `read.error` is set.
    Error(io::Error),
}

impl SplicePipe {
    /// Bytes waiting in the pipe.
    pub fn held(&self) -> u64 {
        self.held
    }

    /// Moves up to `len` bytes from `c`'s socket into the pipe.
    pub fn splice_in<W: World>(&mut self, c: &mut Connection<W>, len: usize) -> SpliceIn {
        let Some(fd) = c.stream.socket_fd() else {
            return SpliceIn::Unsupported;
        };
        match sys::splice(fd, self.wr.as_fd(), len) {
            Ok(0) if len > 0 => {
                c.read.ready = false;
                c.read.eof = true;
                SpliceIn::Eof
            }
            Ok(n) => {
                self.held += n as u64;
                SpliceIn::Data(n)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && self.held > 0 => SpliceIn::Full,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                c.read.ready = false;
                SpliceIn::Again
            }
            Err(e) if self.held == 0 && unsupported(&e) => SpliceIn::Unsupported,
            Err(e) => {
                c.read.ready = false;
                c.read.error = true;
                c.error = true;
                SpliceIn::Error(e)
            }
        }
    }

    /// Moves what the pipe holds into `c`'s socket, counting it in `c.sent`: `Done(())` when
    /// the pipe is empty, `Again` (with `write.ready` cleared) when the socket is full.
    pub fn splice_out<W: World>(&mut self, c: &mut Connection<W>) -> io::Result<Step> {
        while self.held > 0 {
            let want = usize::try_from(self.held).unwrap_or(usize::MAX);
            let rd = self.rd.as_fd();
            let into = |s: &mut Stream| match s.socket_fd() {
                Some(fd) => sys::splice(rd, fd, want),
                None => Err(io::ErrorKind::Unsupported.into()),
            };
            // `io`'s rules for a write: EINTR retried, EAGAIN clears `write.ready`, an error
            // marks the connection.
            let n = match write_with(c, into)? {
                Step::Done(0) => return Err(io::ErrorKind::WriteZero.into()),
                Step::Done(n) => n,
                Step::Again => return Ok(Step::Again),
            };
            self.held = self.held.saturating_sub(n as u64);
            c.sent += n as u64;
            if n < want {
                // The socket took less: it is full. Wait for the next EPOLLOUT edge instead
                // of an EAGAIN splice, as `io::send_chain` does.
                c.write.ready = false;
                return Ok(Step::Again);
            }
        }
        Ok(Step::Done(()))
    }
}

/// The errors that say splicing is not possible here, rather than that the socket failed.
fn unsupported(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP))
}

/// A worker's pipes: at most `max` open at once, as each costs two descriptors and pins up to
/// a pipe's worth of kernel memory. A pipe is opened per body and closed after it, so that
/// a worker's descriptors come back to their count between responses (three system calls,
/// nothing beside a body of at least `SPLICE_MIN`). haproxy: `maxpipes` (`maxconn / 4` by
/// default), which also keeps unused pipes for reuse.
#[derive(Default)]
pub struct Pipes {
    open: usize,
    /// `splice` was refused here (`SpliceIn::Unsupported`): no more pipes for this worker.
    off: bool,
}

impl Pipes {
    /// A new, empty pipe, or `None` when `max` are open already (the body goes through
    /// memory). `Err` when the process is out of descriptors (EMFILE, ENFILE).
    pub fn open(&mut self, max: usize) -> Option<io::Result<SplicePipe>> {
        if self.off || self.open >= max {
            return None;
        }
        Some(sys::pipe_nonblocking().map(|(rd, wr)| {
            self.open += 1;
            SplicePipe { rd, wr, held: 0 }
        }))
    }

    /// Splicing is refused on this system: every body goes through memory from now on.
    pub fn turn_off(&mut self) {
        self.off = true;
    }

    /// Closes a pipe this worker opened; what it still holds (a response cut short) is lost.
    pub fn close(&mut self, p: SplicePipe) {
        drop(p);
        self.open = self.open.saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_max_pipes_are_open() {
        let mut pipes = Pipes::default();
        let a = pipes.open(2).unwrap().unwrap();
        let b = pipes.open(2).unwrap().unwrap();
        assert!(pipes.open(2).is_none(), "a third pipe past the cap");
        pipes.close(b);
        let c = pipes.open(2).unwrap().unwrap();
        assert_eq!(c.held(), 0);
        pipes.close(a);
        pipes.close(c);
        assert_eq!(pipes.open, 0);
        pipes.turn_off();
        assert!(pipes.open(2).is_none(), "a pipe after splicing was refused");
    }
}
