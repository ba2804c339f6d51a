//! Transports: where a connection's descriptors come from, and how they are written.
//!
//! This is the lowest layer. It knows sockets, pipes and FIFOs and nothing of frames,
//! codecs or typed values: it imports only [`Address`] and the error type. Every backend
//! provides the same five things, and the layers above rely on nothing else:
//!
//! 1. **Bind** an endpoint ([`Bound::bind`]): a listening socket or a rendezvous FIFO,
//!    with the options of [`BindOptions`] (backlog, the mode of a file in the file system).
//!    Everything about the file system (stale socket files, binding in a private staging
//!    directory so that nobody can connect before the mode is set, removing the file on
//!    close only if it is still ours) lives in the backend.
//! 2. **Accept** a stream without blocking ([`Bound::try_accept`]) together with the peer's
//!    address when the operating system gives one, telling apart the three outcomes a
//!    server must treat differently ([`Accepted`]): a client, nothing yet, or one client's
//!    failure; an error is the endpoint's own (descriptors exhausted, see
//!    `error::is_exhaustion`). The listening descriptor is non-blocking; the layer above waits
//!    for it with `polling`.
//! 3. **Connect** before a deadline ([`connect`]): a listener that is not there (a missing
//!    socket file or FIFO, a refused connection) fails at once, as in CPython, unless the
//!    caller waits for it ([`Absent::Wait`]); a full backlog is retried until the deadline;
//!    every error names the address and the cause.
//! 4. The **descriptor kind** ([`Kind`]) of every stream it hands out, probed at most once
//!    per connection; it decides how the message layer reads (with or without a control
//!    buffer for descriptors) and writes.
//! 5. **Writing without `SIGPIPE`** ([`write_vectored`]): `MSG_NOSIGNAL` on sockets,
//!    the signal blocked around the write on pipes (`sigpipe.rs`), so a vanished reader
//!    is an `EPIPE` error and never kills the process.
//!
//! Every descriptor a backend creates is close-on-exec, and every stream it hands out is in
//! blocking mode except the two FIFOs of an accepted FIFO client, which stay non-blocking
//! until the layer above has authenticated the client ([`set_blocking`]).
//!
//! | transport | file | directions | kind |
//! | --- | --- | --- | --- |
//! | `socketpair(AF_UNIX, SOCK_STREAM)` | `socketpair.rs` | both | [`Kind::Unix`] |
//! | anonymous pipe | `pipe.rs` | one | [`Kind::Pipe`] |
//! | TCP over IPv4 and IPv6 | `tcp.rs` | both | [`Kind::Tcp`] |
//! | Unix path and Linux abstract socket | `unix.rs` | both | [`Kind::Unix`] |
//! | named pipes (`fifo:///path`) | `fifo.rs` | both, as two FIFOs | [`Kind::Pipe`] |
//! | TLS over TCP (feature `tls`) | `tls/`: a session over a `tcp.rs` socket | both | [`Kind::Tcp`] |
//!
//! Windows named pipes are not provided: the crate builds for Unix only, and no Windows
//! target can be built or tested where it is developed. A Windows backend belongs in a
//! `transport/windows_pipe.rs` of its own: CPython's `AF_PIPE` uses message-mode pipes with
//! no length header (see `docs/wire-format.md`), so it would bypass the frame decoder.

pub(crate) mod fifo;
mod pipe;
pub(crate) mod sigpipe;
mod socketpair;
pub(crate) mod tcp;
#[cfg(feature = "tls")]
pub(crate) mod tls;
pub(crate) mod unix;

pub(crate) use self::pipe::pipe;
pub(crate) use self::socketpair::socketpair;

use std::io::{self, IoSlice};
use std::os::fd::{AsFd, BorrowedFd, IntoRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::net::{AddressFamily, SendFlags};

use crate::address::Address;
use crate::error::{Context, Error, Result};

/// What a connection's descriptor is: decides how it is read and written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A Unix-domain stream socket: `sendmsg(MSG_NOSIGNAL)`, read with `recvmsg` and a
    /// control buffer, so it can carry descriptors.
    Unix,
    /// A TCP socket: `send(MSG_NOSIGNAL)`, plain reads.
    Tcp,
    /// Another stream socket (a family procwire does not make, received from elsewhere).
    Socket,
    /// A pipe or FIFO: `write`/`writev` with `SIGPIPE` blocked unless ignored, reads
    /// preceded by `poll` when they must not block.
    Pipe,
}

impl Kind {
    /// Probes `fd` once: its socket family, or [`Kind::Pipe`] for anything that is not a
    /// socket.
    pub(crate) fn probe(fd: BorrowedFd<'_>) -> Kind {
        match rustix::net::sockopt::socket_domain(fd) {
            Ok(AddressFamily::UNIX) => Kind::Unix,
            Ok(AddressFamily::INET | AddressFamily::INET6) => Kind::Tcp,
            Ok(_) => Kind::Socket,
            Err(_) => Kind::Pipe,
        }
    }

    /// Whether the descriptor is a socket (so `send`/`recv` flags apply).
    #[inline]
    pub(crate) fn is_socket(self) -> bool {
        self != Kind::Pipe
    }
}

/// A connected stream, as a backend hands it up.
#[derive(Debug)]
pub(crate) enum Stream {
    /// One duplex socket.
    Socket {
        /// The socket.
        fd: OwnedFd,
        /// Its kind.
        kind: Kind,
    },
    /// A TCP socket with a TLS session whose handshake is done: the session encrypts
    /// everything written and decrypts everything read.
    #[cfg(feature = "tls")]
    Tls {
        /// The socket.
        fd: OwnedFd,
        /// The session.
        session: std::sync::Arc<tls::Session>,
    },
    /// Two one-way descriptors: a pair of FIFOs.
    Pipes {
        /// The end this side reads.
        read: OwnedFd,
        /// The end this side writes.
        write: OwnedFd,
    },
}

/// What [`Bound::try_accept`] found.
#[derive(Debug)]
pub(crate) enum Accepted {
    /// A client: its stream and, when the OS gives one, its address.
    Client(Stream, Option<Address>),
    /// No client is waiting.
    Nothing,
    /// A client came and could not be taken (it reset the connection first, or sent a
    /// FIFO announcement that does not verify); the endpoint serves on.
    Failed(Error),
}

/// Errors of `accept(2)` that concern the one connection it tried to take: Linux reports
/// pending network errors of the new socket through `accept`, and `accept(2)` says to treat
/// them like `EAGAIN`.
fn is_client_error(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::ECONNABORTED
                | libc::EPROTO
                | libc::EPERM
                | libc::ENETDOWN
                | libc::ENOPROTOOPT
                | libc::EHOSTDOWN
                | libc::ENONET
                | libc::EHOSTUNREACH
                | libc::EOPNOTSUPP
                | libc::ENETUNREACH
                | libc::ETIMEDOUT
                | libc::ECONNRESET
        )
    )
}

/// Makes a socket `accept(2)` gave blocking: Linux's `accept4` makes it so already, other
/// systems let it inherit the listening socket's `O_NONBLOCK`.
fn accepted_blocking(socket: &socket2::Socket) -> io::Result<()> {
    if cfg!(any(target_os = "linux", target_os = "android")) {
        return Ok(());
    }
    socket.set_nonblocking(false)
}

/// Puts `fd` in blocking (`true`) or non-blocking mode.
pub(crate) fn set_blocking(fd: BorrowedFd<'_>, blocking: bool) -> io::Result<()> {
    let flags = rustix::fs::fcntl_getfl(fd)?;
    let flags = if blocking {
        flags - rustix::fs::OFlags::NONBLOCK
    } else {
        flags | rustix::fs::OFlags::NONBLOCK
    };
    rustix::fs::fcntl_setfl(fd, flags)?;
    Ok(())
}

/// How an endpoint is bound.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BindOptions {
    /// The `listen(2)` backlog.
    pub(crate) backlog: u32,
    /// Permission bits of a socket file or rendezvous FIFO.
    pub(crate) mode: u32,
}

/// How a TCP connection is set up.
#[derive(Debug, Clone, Default)]
pub(crate) struct TcpOptions {
    /// Whether `TCP_NODELAY` is set.
    pub(crate) nodelay: bool,
    /// TCP keepalive, when on.
    pub(crate) keepalive: Option<socket2::TcpKeepalive>,
}

/// A bound endpoint, listening.
#[derive(Debug)]
pub(crate) enum Bound {
    /// TCP, IPv4 or IPv6.
    Tcp(tcp::TcpListener),
    /// A Unix path or an abstract name.
    Unix(unix::UnixListener),
    /// A rendezvous FIFO.
    Fifo(fifo::FifoListener),
}

impl Bound {
    /// Binds `addr` and starts listening; see the module docs for what each family does.
    pub(crate) fn bind(addr: &Address, opts: BindOptions) -> Result<Bound> {
        Ok(match addr {
            Address::Tcp(_) | Address::TcpHost { .. } => {
                Bound::Tcp(tcp::TcpListener::bind(addr, opts)?)
            }
            Address::Unix(path) => Bound::Unix(unix::UnixListener::bind_path(path, opts)?),
            Address::Abstract(name) => Bound::Unix(unix::UnixListener::bind_abstract(name, opts)?),
            Address::Fifo(path) => Bound::Fifo(fifo::FifoListener::bind(path, opts.mode)?),
        })
    }

    /// The address it serves; for TCP with the real port after binding port 0.
    pub(crate) fn local_addr(&self, bound: &Address) -> Result<Address> {
        match self {
            Bound::Tcp(l) => Ok(l.local_addr()?.unwrap_or_else(|| bound.clone())),
            Bound::Unix(_) | Bound::Fifo(_) => Ok(bound.clone()),
        }
    }

    /// Takes the next waiting client without blocking.
    ///
    /// # Errors
    ///
    /// Only errors of the endpoint itself: `error::is_exhaustion` tells apart the ones that pass
    /// when descriptors or memory are freed (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`).
    /// Errors that concern one client (it reset the connection before it was accepted, a
    /// garbled FIFO announcement) are [`Accepted::Failed`].
    pub(crate) fn try_accept(&self) -> io::Result<Accepted> {
        let outcome = match self {
            Bound::Tcp(l) => l.try_accept(),
            Bound::Unix(l) => l.try_accept(),
            Bound::Fifo(f) => return f.try_accept(),
        };
        match outcome {
            Ok((stream, peer)) => Ok(Accepted::Client(stream, peer)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Accepted::Nothing),
            Err(e) if is_client_error(&e) => Ok(Accepted::Failed(e.into())),
            Err(e) => Err(e),
        }
    }

    /// Stops listening, removing a socket file this endpoint made if it is still ours.
    pub(crate) fn close(self) -> Result<()> {
        match self {
            Bound::Tcp(l) => close(l.into()),
            Bound::Unix(l) => l.close(),
            Bound::Fifo(f) => f.close(),
        }
    }
}

impl AsFd for Bound {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Bound::Tcp(l) => l.as_fd(),
            Bound::Unix(l) => l.as_fd(),
            Bound::Fifo(f) => f.as_fd(),
        }
    }
}

/// A file an endpoint made in the file system (a socket file, a rendezvous FIFO),
/// identified by device and inode so that only that file is ever removed. Dropping it
/// removes the file; [`remove`](EndpointFile::remove) does too and reports errors.
#[derive(Debug)]
pub(crate) struct EndpointFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
    removed: bool,
}

impl EndpointFile {
    /// Identifies the file now at `path`.
    pub(crate) fn of(path: &Path) -> io::Result<EndpointFile> {
        let md = std::fs::symlink_metadata(path)?;
        Ok(EndpointFile {
            path: path.to_owned(),
            dev: md.dev(),
            ino: md.ino(),
            removed: false,
        })
    }

    /// Removes the file if it is still ours, and the private directory
    /// `Address::arbitrary` made around it.
    pub(crate) fn remove(mut self) -> io::Result<()> {
        self.removed = true;
        self.remove_now()
    }

    fn remove_now(&self) -> io::Result<()> {
        match std::fs::symlink_metadata(&self.path) {
            Ok(md) if md.dev() == self.dev && md.ino() == self.ino => {
                std::fs::remove_file(&self.path)?;
            }
            Ok(_) => return Ok(()), // replaced by someone else: not ours to remove
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        }
        if let Some(dir) = self.path.parent() {
            let mut dirs = crate::address::arbitrary_dirs();
            if dirs.contains(dir) && std::fs::remove_dir(dir).is_ok() {
                dirs.remove(dir);
            }
        }
        Ok(())
    }
}

impl Drop for EndpointFile {
    fn drop(&mut self) {
        if !self.removed {
            let _ = self.remove_now();
        }
    }
}

/// What a connect does when no listener is there: the socket file or FIFO does not exist,
/// or the connection is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Absent {
    /// Fail at once, as CPython's `Client` does.
    Fail,
    /// Try again until the deadline: the listener may not have started yet.
    Wait,
}

impl Absent {
    /// Whether a failure of `kind` is worth another attempt: a full backlog always is (the
    /// listener is there), a missing or refusing listener only when waiting for one.
    fn retries(self, kind: io::ErrorKind) -> bool {
        use io::ErrorKind as K;
        match kind {
            K::WouldBlock => true,
            K::NotFound | K::ConnectionRefused => self == Absent::Wait,
            _ => false,
        }
    }
}

/// How long the read end of a FIFO connection takes end of file before the first byte for
/// a peer that has not opened its write end yet (it does so right after the pair is handed
/// over, or gives up at its connect deadline).
pub(crate) const FIFO_WRITER_WAIT: Duration = Duration::from_secs(10);

/// Connects to `addr` before `deadline`, waiting for a listener that is not there only
/// when `absent` says so. Every error names `addr`.
pub(crate) fn connect(
    addr: &Address,
    tcp: &TcpOptions,
    deadline: Instant,
    absent: Absent,
) -> Result<Stream> {
    let made = match addr {
        Address::Tcp(_) | Address::TcpHost { .. } => tcp::connect(addr, tcp, deadline, absent),
        Address::Unix(_) | Address::Abstract(_) => unix::connect(addr, deadline, absent),
        Address::Fifo(path) => fifo::connect(path, deadline, absent).map(|pair| Stream::Pipes {
            read: pair.read,
            write: pair.write,
        }),
    };
    made.map_err(|e| e.context(|| format!("cannot connect to {addr}")))
}

/// The error for a connection that could not be made: `err`'s kind, or `TimedOut` when the
/// connect timeout ran out, with the address and the underlying failure in the message.
pub(crate) fn connect_failed(addr: &Address, err: Option<io::Error>, out_of_time: bool) -> Error {
    let what = if out_of_time {
        format!("cannot connect to {addr} in time")
    } else {
        format!("cannot connect to {addr}")
    };
    let err = err.unwrap_or_else(|| io::ErrorKind::TimedOut.into());
    let kind = if out_of_time {
        io::ErrorKind::TimedOut
    } else {
        err.kind()
    };
    Error::Io(Context::io(kind, what, err, String::new()))
}

/// Sleeps before the next connection attempt: `pause`, at most until `deadline`, then
/// doubles `pause` up to `max`. Returns `false` when the deadline has passed.
fn back_off(pause: &mut Duration, max: Duration, deadline: Instant) -> bool {
    let remaining = deadline.saturating_duration_since(Instant::now());
    if remaining.is_zero() {
        return false;
    }
    std::thread::sleep((*pause).min(remaining));
    *pause = (*pause * 2).min(max);
    true
}

/// One write of `iov` to a descriptor of `kind` that never raises `SIGPIPE`: a vanished
/// reader is an `EPIPE` error. Sockets are written with `MSG_NOSIGNAL` (and `MSG_DONTWAIT`
/// when `nonblocking`; a pipe is only written when `poll` said it has room).
#[inline] // the hot path of every send, from the message layer
pub(crate) fn write_vectored(
    fd: BorrowedFd<'_>,
    kind: Kind,
    iov: &[IoSlice<'_>],
    nonblocking: bool,
) -> io::Result<usize> {
    let flags = if nonblocking {
        SendFlags::NOSIGNAL | SendFlags::DONTWAIT
    } else {
        SendFlags::NOSIGNAL
    };
    let result = match (kind.is_socket(), iov) {
        (true, [one]) => rustix::net::send(fd, one, flags),
        (true, _) => rustix::net::sendmsg(
            fd,
            iov,
            &mut rustix::net::SendAncillaryBuffer::default(),
            flags,
        ),
        // The disposition is looked up at every write, not once: a host may reset
        // `SIGPIPE` to its default after the pipe was made.
        (false, _) if !sigpipe::is_ignored() => {
            return sigpipe::with_sigpipe_blocked(|| {
                rustix::io::writev(fd, iov).map_err(io::Error::from)
            })
        }
        (false, [one]) => rustix::io::write(fd, one),
        (false, _) => rustix::io::writev(fd, iov),
    };
    result.map_err(io::Error::from)
}

/// Runs a write that may raise `SIGPIPE` and has no `MSG_NOSIGNAL` (`sendfile`) with the
/// signal blocked, unless the process ignores it anyway.
pub(crate) fn without_sigpipe(write: impl FnOnce() -> io::Result<usize>) -> io::Result<usize> {
    if sigpipe::is_ignored() {
        write()
    } else {
        sigpipe::with_sigpipe_blocked(write)
    }
}

/// Closes `fd`, reporting the error `close(2)` gives (which dropping an `OwnedFd` ignores).
#[allow(unsafe_code)]
pub(crate) fn close(fd: OwnedFd) -> Result<()> {
    let raw = fd.into_raw_fd();
    // SAFETY: `raw` came from `into_raw_fd`, so we own it and nothing else will use or
    // close it; it is closed exactly once, here.
    let rc = unsafe { libc::close(raw) };
    if rc == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    // On Linux the descriptor is released even when close is interrupted.
    if err.kind() == io::ErrorKind::Interrupted {
        return Ok(());
    }
    Err(err.into())
}

/// Retries `f` while a signal interrupts it.
fn retry_intr<T>(mut f: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match f() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

/// Waits until `fd` reports one of `events`, a hang-up or an error; `false` when `timeout`
/// passed first. `None` waits forever; a signal does not cut the wait short.
pub(crate) fn wait_fd(
    fd: BorrowedFd<'_>,
    events: PollFlags,
    timeout: Option<Duration>,
) -> io::Result<bool> {
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    loop {
        let mut fds = [PollFd::from_borrowed_fd(fd, events)];
        let ts = remaining(timeout, deadline).and_then(|d| Timespec::try_from(d).ok());
        match rustix::event::poll(&mut fds, ts.as_ref()) {
            Ok(n) => return Ok(n > 0),
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// The time left until `deadline`; `None` (forever) without a timeout or when the
/// deadline is too far away to represent.
pub(crate) fn remaining(timeout: Option<Duration>, deadline: Option<Instant>) -> Option<Duration> {
    match (timeout, deadline) {
        (Some(_), Some(d)) => Some(d.saturating_duration_since(Instant::now())),
        _ => None,
    }
}
