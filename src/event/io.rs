//! Socket I/O at the edge: `WouldBlock` becomes `Again` here, once, and clears `ready`.
//!
//! nginx: `ngx_unix_recv()` (src/os/unix/ngx_recv.c), `ngx_unix_send()` (ngx_send.c),
//! `ngx_writev_chain()` / `ngx_linux_sendfile_chain()` (ngx_writev_chain.c,
//! ngx_linux_sendfile_chain.c).
//!
//! Differs from nginx:
//! - it lives in `event/`, not `os/`: like nginx's, these functions set the readiness flags of
//!   the connection's events (`rev->ready = 0`, `rev->eof`), so they take an `event` connection,
//!   and `os/` sits below `event/` in rginx's layers.
//! - file buffers are not sent with `sendfile(2)`: a bounded piece of the file is read into a
//!   memory buffer just before it is sent (see `send_chain`).

use std::io::{self, IoSlice, IoSliceMut, Read, Write};

use super::connection::Connection;
use super::reactor::World;
use crate::core::buf::{BufPool, Chain};
use crate::core::step::Step;

/// Result of one `recv`. nginx: the `ssize_t` of `ngx_unix_recv` (n, 0, NGX_AGAIN, NGX_ERROR).
#[derive(Debug)]
pub enum Recv {
    /// `n > 0` bytes were read.
    Data(usize),
    /// Nothing to read now (`EAGAIN`); `read.ready` is now false.
    Again,
    /// The peer closed its side; `read.eof` is set.
    Eof,
    /// A socket error; `read.error` is set.
    Error(io::Error),
}

/// Reads into `buf`. nginx: `ngx_unix_recv()`.
pub fn recv<W: World>(c: &mut Connection<W>, buf: &mut [u8]) -> Recv {
    let want = buf.len();
    read_with(c, want, |s| s.read(buf))
}

/// Reads into several buffers at once with `readv`, filling each before the next (larger
/// reads of a large body into the configured buffers, one system call). The same results and
/// readiness rules as `recv`. nginx: `ngx_readv_chain()`.
pub fn readv<W: World>(c: &mut Connection<W>, iov: &mut [IoSliceMut<'_>]) -> Recv {
    let want: usize = iov.iter().map(|s| s.len()).sum();
    read_with(c, want, |s| s.read_vectored(iov))
}

/// One read of up to `want` bytes through `f`, retried on EINTR, with nginx's readiness rules:
/// EOF and errors mark the event (and the connection), EAGAIN clears `read.ready`.
fn read_with<W: World>(
    c: &mut Connection<W>,
    want: usize,
    mut f: impl FnMut(&mut super::connection::Stream) -> io::Result<usize>,
) -> Recv {
    loop {
        match f(&mut c.stream) {
            Ok(0) if want > 0 => {
                c.read.ready = false;
                c.read.eof = true;
                return Recv::Eof;
            }
            Ok(n) => {
                // A short read drained the socket. mio registers EPOLLRDHUP, so a pending EOF
                // would have been reported (`read.eof`); otherwise the next data brings a new
                // edge. Clearing `ready` here saves the EAGAIN read, as `ngx_unix_recv()` does
                // with `ngx_use_epoll_rdhup` — and keeps a loop of posted events from
                // re-reading sockets that are empty instead of returning to epoll.
                if n < want && !c.read.eof {
                    c.read.ready = false;
                }
                return Recv::Data(n);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                c.read.ready = false;
                return Recv::Again;
            }
            Err(e) => {
                c.read.ready = false;
                c.read.error = true;
                c.error = true;
                return Recv::Error(e);
            }
        }
    }
}

/// Writes from `buf`; `Done(n)` with `n > 0`, or `Again` with `write.ready` cleared.
/// nginx: `ngx_unix_send()`.
pub fn send<W: World>(c: &mut Connection<W>, buf: &[u8]) -> io::Result<Step<usize>> {
    let n = match write_with(c, |s| s.write(buf))? {
        Step::Done(n) => n,
        Step::Again => return Ok(Step::Again),
    };
    if n == 0 && !buf.is_empty() {
        return Err(io::ErrorKind::WriteZero.into());
    }
    c.sent += n as u64;
    Ok(Step::Done(n))
}

/// One write through `f`, retried on EINTR: `Again` clears `write.ready` (nginx:
/// `wev->ready = 0` on `NGX_EAGAIN`), any other error marks the event and the connection.
pub(super) fn write_with<W: World>(
    c: &mut Connection<W>,
    mut f: impl FnMut(&mut super::connection::Stream) -> io::Result<usize>,
) -> io::Result<Step<usize>> {
    loop {
        match f(&mut c.stream) {
            Ok(n) => return Ok(Step::Done(n)),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                c.write.ready = false;
                return Ok(Step::Again);
            }
            Err(e) => {
                c.write.error = true;
                c.error = true;
                return Err(e);
            }
        }
    }
}

/// Most iovecs gathered into one `writev`. nginx: `NGX_IOVS_PREALLOCATE` (64).
const IOVS: usize = 64;
/// The iovec array of a chain this short or shorter: the common response, a head and a body.
const SMALL_IOVS: usize = 8;
/// Bytes of a file buffer read into memory at a time before sending.
const FILE_CHUNK: usize = 32 * 1024;

/// Sends as much of `chain` as the socket takes, with `writev`, dropping (recycling) finished
/// buffers. `Done` when the chain is empty, `Again` when the socket is full.
///
/// nginx: `ngx_writev_chain()` / `c->send_chain`.
pub fn send_chain<W: World>(c: &mut Connection<W>, chain: &mut Chain, pool: &mut BufPool) -> io::Result<Step> {
    loop {
        drop_empty(chain, pool);
        if chain.is_empty() {
            return Ok(Step::Done(()));
        }
        if chain.front().is_some_and(|b| b.file.is_some()) {
            load_file_piece(chain, pool)?;
            continue;
        }
        // A response is most often a few buffers: filling a 64-entry array first would cost
        // more than the gathering itself.
        let (written, asked) = match if chain.len() <= SMALL_IOVS {
            writev_front::<W, SMALL_IOVS>(c, chain)?
        } else {
            writev_front::<W, IOVS>(c, chain)?
        } {
            Step::Done(w) => w,
            Step::Again => return Ok(Step::Again),
        };
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        c.sent += written as u64;
        consume_chain(chain, written as u64);
        if written < asked {
            // The socket buffer is full: wait for the next EPOLLOUT edge instead of an
            // EAGAIN writev. nginx: `wev->ready = 0` in `ngx_writev_chain()`.
            c.write.ready = false;
            drop_empty(chain, pool);
            return Ok(Step::Again);
        }
    }
}

/// One `writev` of the memory buffers at the front of `chain`, at most `N` of them (`N` is
/// `SMALL_IOVS` or `IOVS`): the bytes written and the bytes offered.
fn writev_front<W: World, const N: usize>(c: &mut Connection<W>, chain: &Chain) -> io::Result<Step<(usize, usize)>> {
    let mut iov: [IoSlice<'_>; N] = [IoSlice::new(&[]); N];
    let (mut n, mut asked) = (0, 0);
    for b in chain.iter() {
        if b.file.is_some() || n == N {
            break;
        }
        if b.pos < b.last {
            iov[n] = IoSlice::new(b.data());
            asked += iov[n].len();
            n += 1;
        }
    }
    Ok(match write_with(c, |s| s.write_vectored(&iov[..n]))? {
        Step::Done(w) => Step::Done((w, asked)),
        Step::Again => Step::Again,
    })
}

/// Marks `n` bytes of the chain's front buffers as sent. nginx: `ngx_chain_update_sent()`.
pub fn consume_chain(chain: &mut Chain, mut n: u64) {
    for b in chain.iter_mut() {
        if n == 0 {
            break;
        }
        let take = b.len().min(n);
        b.consume(take as usize);
        n -= take;
    }
}

fn drop_empty(chain: &mut Chain, pool: &mut BufPool) {
    while chain.front().is_some_and(|b| b.is_empty()) {
        if let Some(b) = chain.pop_front() {
            pool.put(b);
        }
    }
}

/// Replaces the front file buffer's first piece with a memory buffer holding those bytes.
fn load_file_piece(chain: &mut Chain, pool: &mut BufPool) -> io::Result<()> {
    let Some(fb) = chain.front_mut() else {
        return Ok(());
    };
    let mut mb = pool.get(FILE_CHUNK);
    let n = fb.read_file(&mut mb.mem)?;
    if n == 0 {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "temp file shorter than expected"));
    }
    fb.consume(n);
    mb.last = n;
    chain.push_front(mb);
    Ok(())
}
