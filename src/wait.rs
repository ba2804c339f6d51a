//! Waiting on many sources at once: [`wait`], like CPython's
//! `multiprocessing.connection.wait`, for one call, and [`WaitSet`] for a registry kept
//! across calls. What "ready" means is on [`Waitable`].

use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};

use crate::error::{Error, Result};
use crate::message::remaining;

mod poller;
mod set;

pub use self::set::{InsertError, WaitSet};

/// Something [`wait`] and [`WaitSet`] can wait on: procwire's
/// [`Receiver`](crate::Receiver), [`Connection`](crate::Connection),
/// [`Listener`](crate::Listener) and [`Child`](crate::Child), and references, `Box`es, `Rc`s and `Arc`s of
/// them.
///
/// What "ready" means, for both, per kind of source:
///
/// | source | ready when |
/// | --- | --- |
/// | [`Receiver`](crate::Receiver), [`Connection`](crate::Connection) | the next receive will not block: a whole message is buffered, the stream ended, or an error is pending |
/// | [`Listener`](crate::Listener) | a client is waiting, so `accept(2)` will not block (with a key, the handshake that `accept` runs still takes up to its timeout) |
/// | [`Child`](crate::Child) | the process has exited (through a pidfd; Linux 5.3 or later) |
///
/// A [`WaitSource`] can only be made by procwire, so your own type implements this by
/// delegating to the procwire value it holds. That is how one [`WaitSet`] holds sources
/// of several kinds:
///
/// ```
/// use procwire::{Connection, Listener, WaitSource, Waitable};
///
/// enum Peer {
///     Listener(Listener),
///     Client(Connection<String, String>),
/// }
///
/// impl Waitable for Peer {
///     fn wait_source(&self) -> WaitSource<'_> {
///         match self {
///             Peer::Listener(l) => l.wait_source(),
///             Peer::Client(c) => c.wait_source(),
///         }
///     }
/// }
/// ```
pub trait Waitable {
    /// What to watch for `self`, and how to tell that it is ready.
    fn wait_source(&self) -> WaitSource<'_>;
}

impl<W: Waitable + ?Sized> Waitable for &W {
    fn wait_source(&self) -> WaitSource<'_> {
        (**self).wait_source()
    }
}

impl<W: Waitable + ?Sized> Waitable for Box<W> {
    fn wait_source(&self) -> WaitSource<'_> {
        (**self).wait_source()
    }
}

impl<W: Waitable + ?Sized> Waitable for Rc<W> {
    fn wait_source(&self) -> WaitSource<'_> {
        (**self).wait_source()
    }
}

impl<W: Waitable + ?Sized> Waitable for Arc<W> {
    fn wait_source(&self) -> WaitSource<'_> {
        (**self).wait_source()
    }
}

/// A receiver's read buffer, as [`wait`] and [`WaitSet`] look at it.
pub(crate) trait Probe {
    /// Whether the next receive will not block, from the buffer alone; `None` when another
    /// thread holds the receiver.
    fn buffered(&self) -> Option<bool>;
    /// Reads what has arrived without blocking; whether the next receive will not block.
    /// `true` when another thread holds the receiver (the kernel said it is readable).
    fn read_now(&self) -> bool;
}

/// How to wait for one [`Waitable`]: a borrowed descriptor and what counts as ready.
///
/// Only procwire makes these; see [`Waitable`] for implementing it on your own type.
pub struct WaitSource<'a> {
    fd: std::result::Result<BorrowedFd<'a>, &'static str>,
    keep: Keep<'a>,
    probe: Option<&'a dyn Probe>,
}

/// How a [`WaitSet`] keeps a registered descriptor open for as long as it is registered.
enum Keep<'a> {
    /// Another reference to the descriptor the source owns.
    Shared(&'a Arc<OwnedFd>),
    /// A duplicate the set makes and owns.
    Duplicate,
}

impl<'a> WaitSource<'a> {
    /// A receiver's descriptor, ready when its reader says so.
    pub(crate) fn receiver(fd: &'a Arc<OwnedFd>, probe: &'a dyn Probe) -> Self {
        WaitSource {
            fd: Ok(fd.as_fd()),
            keep: Keep::Shared(fd),
            probe: Some(probe),
        }
    }

    /// A source whose readiness a probe decides, on a descriptor it does not share
    /// (registrations duplicate it).
    pub(crate) fn probed(fd: BorrowedFd<'a>, probe: &'a dyn Probe) -> Self {
        WaitSource {
            fd: Ok(fd),
            keep: Keep::Duplicate,
            probe: Some(probe),
        }
    }

    /// A descriptor the source shares through an `Arc`, ready when readable.
    pub(crate) fn shared(fd: &'a Arc<OwnedFd>) -> Self {
        WaitSource {
            fd: Ok(fd.as_fd()),
            keep: Keep::Shared(fd),
            probe: None,
        }
    }

    /// A source that cannot be waited on here, for the reason `why`.
    pub(crate) fn unsupported(why: &'static str) -> Self {
        WaitSource {
            fd: Err(why),
            keep: Keep::Duplicate,
            probe: None,
        }
    }

    fn fd(&self) -> Result<BorrowedFd<'a>> {
        self.fd
            .map_err(|why| Error::Io(io::Error::new(io::ErrorKind::Unsupported, why)))
    }

    /// A descriptor for a [`WaitSet`] to register and own.
    fn keep_alive(&self) -> Result<Arc<OwnedFd>> {
        let fd = self.fd()?;
        match self.keep {
            Keep::Shared(arc) => Ok(Arc::clone(arc)),
            Keep::Duplicate => Ok(Arc::new(rustix::io::fcntl_dupfd_cloexec(fd, 0)?)),
        }
    }

    fn has_buffer(&self) -> bool {
        self.probe.is_some()
    }

    fn buffered(&self) -> Option<bool> {
        self.probe.and_then(|p| p.buffered())
    }

    /// After the kernel reported the descriptor readable: whether the source is ready.
    fn read_now(&self) -> bool {
        self.probe.is_none_or(|p| p.read_now())
    }
}

impl fmt::Debug for WaitSource<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("WaitSource");
        match &self.fd {
            Ok(fd) => d.field("fd", &fd.as_raw_fd()),
            Err(why) => d.field("unsupported", why),
        };
        d.field("buffered", &self.has_buffer()).finish()
    }
}

/// Waits until at least one of `sources` is ready, or `timeout` passes; returns the
/// indices of the ready ones, in the order of `sources` (empty on timeout).
///
/// This is CPython's `multiprocessing.connection.wait(object_list, timeout)`, returning
/// indices instead of the objects. "Ready" is as in the table on [`Waitable`]: for a
/// connection, that the next receive will not block, which is stronger than CPython's
/// "some bytes arrived". A connection whose buffer already holds a whole message is ready
/// without a system call; when every source is like that, none is made.
///
/// `None` waits forever; `Some(Duration::ZERO)` only looks. The timeout bounds the whole
/// call, also when only part of a message arrived and the wait went on. A source listed
/// twice is reported at both indices. The cost of a call grows with `sources.len()`
/// (it is one `poll(2)`); to wait on thousands of sources again and again, use a
/// [`WaitSet`].
///
/// # Blocking
///
/// Until a source is ready or the timeout passes. Bytes of a partly arrived message are
/// read into that connection's buffer meanwhile; nothing is lost.
///
/// # Errors
///
/// - [`Error::Io`] of kind `Unsupported` for a [`Child`](crate::Child) without a pidfd
///   (Linux before 5.3, or another Unix).
/// - [`Error::Io`] when `poll(2)` fails.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// let (a, a_peer) = procwire::duplex::<u32, u32>()?;
/// let (b, b_peer) = procwire::duplex::<u32, u32>()?;
/// assert!(procwire::wait(&[&a, &b], Some(Duration::ZERO))?.is_empty());
///
/// b_peer.send(&7)?;
/// assert_eq!(procwire::wait(&[&a, &b], Some(Duration::from_secs(5)))?, [1]);
/// assert_eq!(b.try_recv()?, 7);
/// # drop(a_peer);
/// # Ok::<(), procwire::Error>(())
/// ```
pub fn wait(sources: &[&dyn Waitable], timeout: Option<Duration>) -> Result<Vec<usize>> {
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    let srcs: Vec<WaitSource<'_>> = sources.iter().map(|s| s.wait_source()).collect();
    let fds = srcs
        .iter()
        .map(WaitSource::fd)
        .collect::<Result<Vec<_>>>()?;
    let mut ready: Vec<usize> = (0..srcs.len())
        .filter(|&i| srcs[i].buffered() == Some(true))
        .collect();
    let rest: Vec<usize> = (0..srcs.len()).filter(|i| !ready.contains(i)).collect();
    while !rest.is_empty() {
        let t = if ready.is_empty() {
            remaining(timeout, deadline)
        } else {
            Some(Duration::ZERO)
        };
        let hits = poll_readable(&fds, &rest, t)?;
        ready.extend(hits.iter().copied().filter(|&i| srcs[i].read_now()));
        if !ready.is_empty()
            || hits.is_empty()
            || remaining(timeout, deadline) == Some(Duration::ZERO)
        {
            break;
        }
    }
    ready.sort_unstable();
    Ok(ready)
}

/// One `poll(2)` for readability of `fds[i]` for each `i` in `which`; returns the `i`s
/// the kernel reported (readable, hung up or failed). Empty on timeout.
fn poll_readable(
    fds: &[BorrowedFd<'_>],
    which: &[usize],
    timeout: Option<Duration>,
) -> Result<Vec<usize>> {
    let mut pfds: Vec<PollFd<'_>> = which
        .iter()
        .map(|&i| PollFd::from_borrowed_fd(fds[i], PollFlags::IN))
        .collect();
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    loop {
        let ts = remaining(timeout, deadline).and_then(|d| Timespec::try_from(d).ok());
        match rustix::event::poll(&mut pfds, ts.as_ref()) {
            Ok(_) => break,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(which
        .iter()
        .zip(&pfds)
        .filter(|(_, p)| !p.revents().is_empty())
        .map(|(&i, _)| i)
        .collect())
}
