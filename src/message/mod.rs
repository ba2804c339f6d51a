//! The message layer: an untyped message connection over one descriptor (a socket) or
//! two (a pipe pair).
//!
//! [`MessageSender`] and [`MessageReceiver`] hold a [`Writer`] and a [`Reader`] behind a
//! lock each, and implement every operation on messages once: sends with and without a
//! deadline, with descriptors, of a file; receives as a new `Vec`, into a slice, with
//! descriptors, into a writer, with the three waits of [`Wait`]; `poll`. Authentication,
//! shared arrays, file transfer, the rkyv receive path and the typed
//! [`Sender`](crate::Sender) / [`Receiver`](crate::Receiver) all use these.
//!
//! Each half carries `X`, state that the layer above keeps under the same lock (the typed
//! layer's codec and encode buffer): a typed send encodes and writes under one lock, and
//! the untyped layer never looks at it. Untyped users use `()`.

use std::fs::File;
use std::io::Write;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::transport::{self, Kind};

mod fds;
mod file;
mod in_place;
mod large;
mod nonblocking;
mod progress;
mod reader;
mod sink;
mod spin;
mod writer;

pub(crate) use self::in_place::STREAM_MIN;
pub(crate) use self::nonblocking::remaining;
#[cfg(any(feature = "tokio", feature = "async-io"))]
pub(crate) use self::nonblocking::wait_fd;
use self::progress::Report;
#[cfg(any(feature = "tokio", feature = "async-io"))]
pub(crate) use self::reader::Progress;
pub(crate) use self::reader::Reader;
#[cfg(feature = "rkyv")]
pub(crate) use self::sink::Put;
pub use self::sink::Sink;
pub(crate) use self::writer::Writer;

/// A destination for a payload that grows as the payload arrives (see
/// [`EAGER_ALLOC`](crate::frame::EAGER_ALLOC)).
pub(crate) trait Grow {
    /// How many bytes it holds now.
    fn size(&self) -> usize;
    /// Grows it, keeping its bytes, to hold at least `len`; returns the first `len` bytes.
    fn grow_to(&mut self, len: usize) -> &mut [u8];
}

impl Grow for Vec<u8> {
    fn size(&self) -> usize {
        self.len()
    }

    fn grow_to(&mut self, len: usize) -> &mut [u8] {
        if self.len() < len {
            self.resize(len, 0);
        }
        &mut self[..len]
    }
}

/// How long a receive waits for its message to arrive whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    /// As long as it takes.
    Block,
    /// Not at all: [`Error::Empty`] unless a whole message is there.
    Now,
    /// At most this long: [`Error::Timeout`] when none came in time.
    Within(Duration),
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Closes `fd` and reports the error, if this was its last owner.
pub(crate) fn close_fd(fd: Arc<OwnedFd>) -> Result<()> {
    match Arc::try_unwrap(fd) {
        Ok(fd) => transport::close(fd),
        Err(_) => Ok(()),
    }
}

/// A sender's state behind its lock: the writer and the state of the layer above.
pub(crate) struct Out<X> {
    pub(crate) writer: Writer,
    pub(crate) state: X,
}

/// The sending half of a message connection.
pub(crate) struct MessageSender<X = ()> {
    fd: Arc<OwnedFd>,
    out: Mutex<Out<X>>,
}

impl<X> MessageSender<X> {
    /// A sender writing `fd`, a descriptor of `kind`.
    pub(crate) fn new(fd: Arc<OwnedFd>, kind: Kind, state: X) -> Self {
        let writer = Writer::new(Arc::clone(&fd), kind);
        MessageSender {
            fd,
            out: Mutex::new(Out { writer, state }),
        }
    }

    /// The descriptor it writes.
    pub(crate) fn fd(&self) -> &Arc<OwnedFd> {
        &self.fd
    }

    /// Locks the sending state.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Out<X>> {
        lock(&self.out)
    }

    /// Sends `payload` as one message, before `deadline` when there is one.
    pub(crate) fn send_bytes(&self, payload: &[u8], deadline: Option<Instant>) -> Result<()> {
        // Large-message hook: through a memfd when enabled and large enough (`large.rs`).
        self.lock().writer.send_maybe_memfd(payload, deadline)
    }

    /// Sends `payload` with the descriptors `fds` attached.
    pub(crate) fn send_bytes_fds(&self, payload: &[u8], fds: &[BorrowedFd<'_>]) -> Result<()> {
        self.lock().writer.send_frame_with_fds(payload, fds)
    }

    /// Writes the rest of a frame a deadline interrupted, giving up at `deadline`.
    pub(crate) fn flush(&self, deadline: Option<Instant>) -> Result<()> {
        self.lock().writer.flush_until(deadline)
    }

    /// Sends the whole of `file` as one message; returns its length.
    ///
    /// With `progress`, reports the bytes sent to it (see `progress.rs`).
    pub(crate) fn send_file(
        &self,
        file: &File,
        progress: Option<&mut dyn FnMut(u64, u64)>,
    ) -> Result<u64> {
        let mut out = self.lock();
        let len = file.metadata()?.len();
        let mut report = progress.map(|f| Report::new(f, len));
        out.writer.send_file(file, len, report.as_mut())?;
        Ok(len)
    }

    /// Whether a frame that a deadline interrupted still has bytes to send.
    pub(crate) fn has_unsent(&self) -> bool {
        self.lock().writer.has_unsent()
    }

    /// Takes the sender apart: its descriptor, writer (with any unsent rest of a frame)
    /// and the state of the layer above.
    #[cfg_attr(not(any(feature = "tokio", feature = "async-io")), allow(dead_code))]
    pub(crate) fn into_parts(self) -> (Arc<OwnedFd>, Writer, X) {
        let MessageSender { fd, out } = self;
        let Out { writer, state } = out.into_inner().unwrap_or_else(PoisonError::into_inner);
        (fd, writer, state)
    }

    /// Puts a sender back together from [`into_parts`](MessageSender::into_parts).
    #[cfg_attr(not(any(feature = "tokio", feature = "async-io")), allow(dead_code))]
    pub(crate) fn from_parts(fd: Arc<OwnedFd>, writer: Writer, state: X) -> Self {
        MessageSender {
            fd,
            out: Mutex::new(Out { writer, state }),
        }
    }

    /// Sends everything through the TLS session `session` from now on; before any send.
    #[cfg(feature = "tls")]
    pub(crate) fn set_tls(&self, session: Arc<crate::transport::tls::Session>) {
        self.lock().writer.tls = Some(session);
    }

    /// Gives up the sending state and returns the descriptor.
    pub(crate) fn into_fd(self) -> Arc<OwnedFd> {
        let MessageSender { fd, out } = self;
        drop(out);
        fd
    }
}

/// A receiver's state behind its lock: the reader and the state of the layer above.
pub(crate) struct In<X> {
    pub(crate) reader: Reader,
    pub(crate) state: X,
}

impl<X> In<X> {
    /// Waits as `wait` says until the next receive will not block.
    ///
    /// Errors: [`Error::Empty`] or [`Error::Timeout`] when no whole message came; nothing
    /// is lost. The caller holds the lock throughout, so another thread sharing the
    /// receiver cannot take the message between the wait and the receive.
    #[inline]
    pub(crate) fn ready(&mut self, wait: Wait) -> Result<()> {
        match wait {
            Wait::Block => {
                self.reader.spin_before_block();
                Ok(())
            }
            Wait::Now if self.reader.poll_now() => Ok(()),
            Wait::Now => Err(Error::Empty),
            Wait::Within(t) if self.reader.poll(Some(t))? => Ok(()),
            Wait::Within(_) => Err(Error::Timeout),
        }
    }
}

/// The receiving half of a message connection.
pub(crate) struct MessageReceiver<X = ()> {
    fd: Arc<OwnedFd>,
    kind: Kind,
    inp: Mutex<In<X>>,
    /// The largest shared array (in bytes) it maps; no limit unless set.
    max_array: AtomicU64,
}

impl<X> MessageReceiver<X> {
    /// A receiver reading `fd`, a descriptor of `kind`.
    pub(crate) fn new(fd: Arc<OwnedFd>, kind: Kind, state: X) -> Self {
        let reader = Reader::new(Arc::clone(&fd), kind);
        MessageReceiver {
            fd,
            kind,
            inp: Mutex::new(In { reader, state }),
            max_array: AtomicU64::new(u64::MAX),
        }
    }

    /// The descriptor it reads.
    pub(crate) fn fd(&self) -> &Arc<OwnedFd> {
        &self.fd
    }

    /// The kind of that descriptor.
    pub(crate) fn kind(&self) -> Kind {
        self.kind
    }

    /// Locks the receiving state.
    pub(crate) fn lock(&self) -> MutexGuard<'_, In<X>> {
        lock(&self.inp)
    }

    /// Runs `f` on the reader unless another thread holds the receiver.
    pub(crate) fn try_reader<R>(&self, f: impl FnOnce(&mut Reader) -> R) -> Option<R> {
        match self.inp.try_lock() {
            Ok(mut inp) => Some(f(&mut inp.reader)),
            Err(TryLockError::Poisoned(p)) => Some(f(&mut p.into_inner().reader)),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    /// Waits as `wait` says, then runs one receive `f` under the same lock.
    pub(crate) fn receive<R>(
        &self,
        wait: Wait,
        f: impl FnOnce(&mut Reader, &mut X) -> Result<R>,
    ) -> Result<R> {
        let mut inp = self.lock();
        inp.ready(wait)?;
        let In { reader, state } = &mut *inp;
        f(reader, state)
    }

    /// Receives the next message as a new `Vec`.
    pub(crate) fn recv_vec(&self, wait: Wait) -> Result<Vec<u8>> {
        self.receive(wait, |r, _| r.recv_vec_maybe_memfd()) // large-message hook
    }

    /// Receives the next message into `dst`; its length.
    pub(crate) fn recv_into(&self, dst: &mut [u8], wait: Wait) -> Result<usize> {
        self.receive(wait, |r, _| r.recv_into_maybe_memfd(dst)) // large-message hook
    }

    /// Receives the next message as a new `Vec`, with its descriptors.
    pub(crate) fn recv_vec_fds(&self, wait: Wait) -> Result<(Vec<u8>, Vec<OwnedFd>)> {
        self.receive(wait, |r, _| r.claiming_fds(Reader::recv_vec))
    }

    /// Receives the next message, hands its payload to `f` in place, and returns what `f`
    /// made of it with the message's descriptors.
    pub(crate) fn recv_parsed_fds<R>(
        &self,
        wait: Wait,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<(R, Vec<OwnedFd>)> {
        self.receive(wait, |r, _| r.claiming_fds(|r| r.recv_with(f)))
    }

    /// Receives one message of at most `limit` bytes into `out`; its length.
    /// With `progress`, reports the bytes received to it (see `progress.rs`).
    pub(crate) fn recv_to(
        &self,
        limit: u64,
        out: &mut dyn Write,
        wait: Wait,
        progress: Option<&mut dyn FnMut(u64, u64)>,
    ) -> Result<u64> {
        self.receive(wait, |r, _| r.recv_to(limit, out, progress))
    }

    /// Waits until the next receive will not block; `false` when `timeout` passed first.
    pub(crate) fn poll(&self, timeout: Option<Duration>) -> Result<bool> {
        self.lock().reader.poll(timeout)
    }

    /// The largest payload it accepts.
    pub(crate) fn max_message_size(&self) -> u64 {
        self.lock().reader.max_message_size()
    }

    /// Sets the largest payload it accepts.
    pub(crate) fn set_max_message_size(&self, max: u64) {
        self.lock().reader.set_max_message_size(max);
    }

    /// The largest shared array, in bytes, it maps.
    pub(crate) fn max_array_size(&self) -> u64 {
        self.max_array.load(Ordering::Relaxed)
    }

    /// Sets the largest shared array, in bytes, it maps.
    pub(crate) fn set_max_array_size(&self, max: u64) {
        self.max_array.store(max, Ordering::Relaxed);
    }

    /// Starts receiving the descriptors that come with messages; see `fds.rs`.
    pub(crate) fn enable_fds(&self) -> Result<()> {
        self.lock().reader.enable_fds()
    }

    /// Until `due`, end of file before the first byte means the peer has not opened its
    /// write end yet (a FIFO pair); see `Inbox::await_writer`.
    pub(crate) fn await_writer(&self, due: Instant) {
        self.lock().reader.anc.await_writer(due);
    }

    /// Reads everything through the TLS session `session` from now on; before any
    /// receive.
    #[cfg(feature = "tls")]
    pub(crate) fn set_tls(&self, session: Arc<crate::transport::tls::Session>) {
        self.lock().reader.anc.tls = Some(session);
    }

    /// Sets the spin of blocking receives; see `spin.rs`.
    pub(crate) fn set_spin(&self, max: Option<Duration>) {
        self.lock().reader.set_spin(max);
    }

    /// The longest a blocking receive spins, if it does.
    pub(crate) fn spin(&self) -> Option<Duration> {
        self.lock().reader.spin()
    }

    /// Whether nothing of the stream is held here: no buffered bytes, no descriptors.
    pub(crate) fn is_idle(&self) -> bool {
        self.lock().reader.is_idle()
    }

    /// Takes the receiver apart: its descriptor and kind, reader (with everything it has
    /// buffered), the state of the layer above and the shared-array limit.
    #[cfg_attr(not(any(feature = "tokio", feature = "async-io")), allow(dead_code))]
    pub(crate) fn into_parts(self) -> (Arc<OwnedFd>, Kind, Reader, X, u64) {
        let MessageReceiver {
            fd,
            kind,
            inp,
            max_array,
        } = self;
        let In { reader, state } = inp.into_inner().unwrap_or_else(PoisonError::into_inner);
        (fd, kind, reader, state, max_array.into_inner())
    }

    /// Puts a receiver back together from [`into_parts`](MessageReceiver::into_parts).
    #[cfg_attr(not(any(feature = "tokio", feature = "async-io")), allow(dead_code))]
    pub(crate) fn from_parts(
        fd: Arc<OwnedFd>,
        kind: Kind,
        reader: Reader,
        state: X,
        max_array: u64,
    ) -> Self {
        MessageReceiver {
            fd,
            kind,
            inp: Mutex::new(In { reader, state }),
            max_array: AtomicU64::new(max_array),
        }
    }

    /// Closes the receiver, reporting `close(2)`'s error if it held the last reference.
    pub(crate) fn close(self) -> Result<()> {
        let MessageReceiver { fd, inp, .. } = self;
        drop(inp);
        close_fd(fd)
    }
}

/// A duplex message connection, borrowed from its two halves: what the handshake runs
/// over.
pub(crate) struct Duplex<'a, X, Y> {
    pub(crate) tx: &'a MessageSender<X>,
    pub(crate) rx: &'a MessageReceiver<Y>,
}
