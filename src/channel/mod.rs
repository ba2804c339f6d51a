//! The typed layer: [`Sender`], [`Receiver`] and duplex [`Connection`] over a [`Codec`](crate::Codec).
//!
//! Each half is a message-layer half ([`MessageSender`], [`MessageReceiver`]) with its
//! codec kept under the same lock; every operation on messages is the message layer's,
//! and this layer only encodes and decodes. The receive kinds come in the three waits of
//! `std::sync::mpsc`: `recv_*` blocks, `try_recv_*` never waits, `recv_*_timeout` waits
//! at most its timeout. `_with` in a name always means "with this codec".

use std::fmt;
use std::marker::PhantomData;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytemuck::Pod;

use crate::auth::PeerCredentials;
use crate::codec::api::{Decode, Encode};
use crate::error::{Error, Result};
use crate::message::{
    close_fd, Duplex, MessageReceiver, MessageSender, Reader, Wait, Writer, STREAM_MIN,
};
use crate::transport::{Kind, Stream};
#[cfg(feature = "postcard")]
use crate::Postcard;

mod fds;
mod file;
mod forward;
mod large;
mod pairs;
mod progress;
#[cfg(feature = "rkyv")]
mod rkyv;
mod slices;
mod timed;
mod waitable;

#[cfg(feature = "postcard")]
pub use self::pairs::{duplex, pipe};
pub use self::pairs::{duplex_with, pipe_with};

/// A typed sender's state beside its writer: the codec and the reused encode buffer.
pub(crate) struct Encoder<C> {
    pub(crate) codec: C,
    pub(crate) buf: Vec<u8>,
    /// Whether the last message sent was at least [`STREAM_MIN`] long: the next one is
    /// measured ([`Encode::encoded_len`]), to be written in place.
    pub(crate) large: bool,
}

impl<C> Encoder<C> {
    pub(crate) fn new(codec: C, buf: Vec<u8>) -> Encoder<C> {
        Encoder {
            codec,
            buf,
            large: false,
        }
    }

    /// Encodes `value` into the reused buffer and returns it.
    fn encode<T: ?Sized>(&mut self, value: &T) -> Result<&[u8]>
    where
        C: Encode<T>,
    {
        self.buf.clear();
        self.codec
            .encode(value, &mut self.buf)
            .map_err(encode_error)?;
        self.large = self.buf.len() >= STREAM_MIN;
        Ok(&self.buf)
    }
}

/// The instant `timeout` from now; `None` when it is too far away to represent.
fn deadline(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

/// The error of a codec's `encode`, as the send reports it.
fn encode_error(e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::Encode(Box::new(e))
}

/// Receives one message and decodes it with `codec`.
fn decode<T, C: Decode<T>>(reader: &mut Reader, codec: &mut C) -> Result<T> {
    reader
        .recv_with_maybe_memfd(|bytes| codec.decode(bytes))? // large-message hook
        .map_err(|e| Error::Decode(Box::new(e)))
}

/// The sending half of a typed connection: values of `T`, encoded by `C`.
///
/// Made by [`pipe`](crate::pipe), by [`Connection::split`], or by the process and socket
/// constructors. Like `std::sync::mpsc::Sender`, it is `Clone`: clones share one
/// descriptor and one lock, so several threads can send at once, each message goes out
/// whole, never interleaved with another thread's, and the descriptor is closed when the
/// last clone (and, for a [`split`](Connection::split) connection, the receiver) is gone.
/// The sending half of a duplex [`Connection`] is cloned the same way:
/// `conn.sender().clone()`.
///
/// ```
/// let (tx, rx) = procwire::pipe::<(u32, u32)>()?;
/// let threads: Vec<_> = (0..4)
///     .map(|t| {
///         let tx = tx.clone();
///         std::thread::spawn(move || (0..100).try_for_each(|i| tx.send(&(t, i))))
///     })
///     .collect();
/// drop(tx);
/// for t in threads {
///     t.join().unwrap()?;
/// }
/// assert_eq!(rx.iter().count(), 400); // ends when the last clone is gone
/// # Ok::<(), procwire::Error>(())
/// ```
///
/// # Blocking
///
/// A send blocks until the kernel has taken the whole message; when the peer does not read
/// and its buffer is full, that is until the peer reads or goes away. A send that returns
/// `Ok` promises only that the bytes were handed to the kernel, not that the peer received
/// them. [`send_timeout`](Sender::send_timeout) bounds the wait (`Duration::ZERO` never
/// waits) without ever leaving half a message on the stream.
pub struct Sender<T, #[cfg(feature = "postcard")] C = Postcard, #[cfg(not(feature = "postcard"))] C>
{
    io: Arc<MessageSender<Encoder<C>>>,
    _marker: PhantomData<fn(&T)>,
}

impl<T, C> Clone for Sender<T, C> {
    /// Another sender on the same descriptor, sharing this one's lock, codec and encode
    /// buffer.
    fn clone(&self) -> Self {
        Sender {
            io: Arc::clone(&self.io),
            _marker: PhantomData,
        }
    }
}

impl<T, C> Sender<T, C> {
    /// Takes the sender apart (for the async drivers): descriptor, writer, encoder.
    #[cfg_attr(not(any(feature = "tokio", feature = "async-io")), allow(dead_code))]
    ///
    /// Errors: [`Error::Io`] of kind `InvalidInput` when clones of the sender are alive.
    pub(crate) fn into_parts(self) -> Result<(Arc<OwnedFd>, Writer, Encoder<C>)> {
        let io = Arc::try_unwrap(self.io).map_err(|_| {
            Error::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "a sender whose clones are alive cannot be taken apart: drop the clones first",
            ))
        })?;
        Ok(io.into_parts())
    }

    /// Puts a sender back together from [`into_parts`](Sender::into_parts).
    #[cfg_attr(not(any(feature = "tokio", feature = "async-io")), allow(dead_code))]
    pub(crate) fn from_parts(fd: Arc<OwnedFd>, writer: Writer, encoder: Encoder<C>) -> Self {
        Sender {
            io: Arc::new(MessageSender::from_parts(fd, writer, encoder)),
            _marker: PhantomData,
        }
    }

    pub(crate) fn from_fd(fd: Arc<OwnedFd>, kind: Kind, codec: C) -> Self {
        let encoder = Encoder::new(codec, Vec::new());
        Sender {
            io: Arc::new(MessageSender::new(fd, kind, encoder)),
            _marker: PhantomData,
        }
    }

    /// Sends `value` as one message.
    ///
    /// The value is encoded into a buffer the sender keeps (it keeps the capacity of the
    /// largest message sent), so a steady stream of values allocates nothing.
    ///
    /// # Errors
    ///
    /// - [`Error::Encode`] when the codec refuses the value; nothing was sent.
    /// - [`Error::Io`] of kind `BrokenPipe` or `ConnectionReset` when the peer is gone
    ///   (see [`Error::is_disconnected`]), or any other I/O error.
    ///
    /// # Examples
    ///
    /// ```
    /// let (tx, rx) = procwire::pipe::<(u32, String)>()?;
    /// tx.send(&(1, "one".to_string()))?;
    /// assert_eq!(rx.recv()?, (1, "one".to_string()));
    /// # Ok::<(), procwire::Error>(())
    /// ```
    pub fn send(&self, value: &T) -> Result<()>
    where
        C: Encode<T>,
    {
        self.encode_and_send(value, None)
    }

    /// Encodes `value` into the sender's reused buffer and sends it as one frame, before
    /// `deadline` when there is one.
    pub(crate) fn encode_and_send(&self, value: &T, deadline: Option<Instant>) -> Result<()>
    where
        C: Encode<T>,
    {
        let mut out = self.io.lock();
        let crate::message::Out { writer, state } = &mut *out;
        if deadline.is_none() && state.large {
            let Encoder { codec, buf, large } = state;
            if let Some(len) = codec.encoded_len(value).map_err(encode_error)? {
                *large = len >= STREAM_MIN;
                // Written in place as the codec makes it: no copy into `buf`.
                return writer.send_in_place(len, buf, &mut |sink| {
                    codec.encode_to(value, sink).map_err(encode_error)
                });
            }
        }
        // Large-message hook: through a memfd when enabled and large enough.
        writer.send_maybe_memfd(state.encode(value)?, deadline)
    }

    /// Encodes `value` into the reused buffer and hands it to `send` with the writer,
    /// both under the sender's lock.
    fn encoded<R>(&self, value: &T, send: impl FnOnce(&mut Writer, &[u8]) -> Result<R>) -> Result<R>
    where
        C: Encode<T>,
    {
        let mut out = self.io.lock();
        let crate::message::Out { writer, state } = &mut *out;
        send(writer, state.encode(value)?)
    }

    /// Sends the bytes of `data` as one message, without encoding.
    ///
    /// `data` may be a slice of any
    /// [`Pod`](https://docs.rs/bytemuck/1/bytemuck/trait.Pod.html) type (`u8`, `f64`,
    /// `i32`, arrays of them…); its bytes are sent in native byte order, as Python's `send_bytes` sends an `array`.
    /// Header and payload leave in one vectored write.
    ///
    /// The size limit is the receiver's (256 MiB unless it changed it): a larger message
    /// is not refused here; the receiver refuses it with [`Error::MessageTooLarge`] and
    /// stops reading. This side sees nothing, or, for a message larger than the kernel's
    /// buffer, a send that blocks and then fails with [`Error::Io`] of kind `BrokenPipe`
    /// or `ConnectionReset` once the receiver closes. Agree on the limit
    /// with the receiver, or send a [`SharedArray`](crate::SharedArray), which has none.
    ///
    /// # Errors
    ///
    /// As [`send`](Sender::send), without [`Error::Encode`].
    ///
    /// # Examples
    ///
    /// ```
    /// let (tx, rx) = procwire::pipe::<()>()?;
    /// tx.send_bytes(&[1.5f64, -2.0])?;
    /// let mut out = [0f64; 2];
    /// assert_eq!(rx.recv_bytes_into(&mut out)?, 16);
    /// assert_eq!(out, [1.5, -2.0]);
    /// # Ok::<(), procwire::Error>(())
    /// ```
    pub fn send_bytes<P: Pod>(&self, data: &[P]) -> Result<()> {
        self.io.send_bytes(bytemuck::cast_slice(data), None)
    }

    /// Closes the sender, reporting any error from `close(2)`.
    ///
    /// Dropping a sender closes it too, ignoring errors. When the descriptor is shared with
    /// a clone of this sender or with the other half of a [`split`](Connection::split)
    /// connection, it is closed when all of them are gone and this returns `Ok`.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the operating system reports an error on close.
    ///
    /// # Examples
    ///
    /// ```
    /// let (tx, rx) = procwire::pipe::<u8>()?;
    /// tx.close()?;
    /// assert!(matches!(rx.recv(), Err(procwire::Error::Disconnected)));
    /// # Ok::<(), procwire::Error>(())
    /// ```
    pub fn close(self) -> Result<()> {
        close_fd(self.into_fd())
    }

    /// Gives up this sender, returning its share of the descriptor.
    fn into_fd(self) -> Arc<OwnedFd> {
        match Arc::try_unwrap(self.io) {
            Ok(io) => io.into_fd(),
            Err(shared) => Arc::clone(shared.fd()),
        }
    }
}

/// The receiving half of a typed connection: values of `T`, decoded by `C`.
///
/// Made by [`pipe`](crate::pipe), by [`Connection::split`], or by the process and socket
/// constructors. Methods take `&self`; a receiver shared between threads hands each
/// message to exactly one of them.
///
/// # Blocking
///
/// [`recv`](Receiver::recv), [`recv_bytes`](Receiver::recv_bytes) and
/// [`recv_bytes_into`](Receiver::recv_bytes_into) block until a whole message has arrived
/// or the stream ends. [`try_recv`](Receiver::try_recv) never blocks and
/// [`recv_timeout`](Receiver::recv_timeout) blocks at most for its timeout; both keep the
/// bytes of a message that arrived only in part, so nothing is lost.
pub struct Receiver<
    T,
    #[cfg(feature = "postcard")] C = Postcard,
    #[cfg(not(feature = "postcard"))] C,
> {
    io: MessageReceiver<C>,
    _marker: PhantomData<fn() -> T>,
}

impl<T, C> Receiver<T, C> {
    /// Takes the receiver apart (for the async drivers): descriptor, kind, reader, codec.
    #[cfg_attr(not(any(feature = "tokio", feature = "async-io")), allow(dead_code))]
    pub(crate) fn into_parts(self) -> (Arc<OwnedFd>, Kind, Reader, C, u64) {
        self.io.into_parts()
    }

    /// Puts a receiver back together from [`into_parts`](Receiver::into_parts).
    #[cfg_attr(not(any(feature = "tokio", feature = "async-io")), allow(dead_code))]
    pub(crate) fn from_parts(
        fd: Arc<OwnedFd>,
        kind: Kind,
        reader: Reader,
        codec: C,
        max_array: u64,
    ) -> Self {
        Receiver {
            io: MessageReceiver::from_parts(fd, kind, reader, codec, max_array),
            _marker: PhantomData,
        }
    }

    pub(crate) fn from_fd(fd: Arc<OwnedFd>, kind: Kind, codec: C) -> Self {
        Receiver {
            io: MessageReceiver::new(fd, kind, codec),
            _marker: PhantomData,
        }
    }

    /// Receives and decodes the next message after waiting as `wait` says.
    fn recv_waiting(&self, wait: Wait) -> Result<T>
    where
        C: Decode<T>,
    {
        self.io.receive(wait, decode)
    }

    /// Receives and decodes the next message, blocking until it has arrived.
    ///
    /// A message that fits in the receive buffer (64 KiB) is decoded in place: a steady
    /// stream of small values allocates nothing beyond what `T` itself owns. A larger one
    /// is read into a second buffer that the receiver keeps, as large as the largest such
    /// message so far (at most [`max_message_size`](Receiver::max_message_size)), so large
    /// messages do not allocate either.
    ///
    /// # Errors
    ///
    /// - [`Error::Disconnected`] when the peer closed the stream between messages.
    /// - [`Error::Truncated`] when it closed the stream inside a message. The partial
    ///   message is discarded and every later receive reports the same truncation.
    /// - [`Error::Decode`] when the codec refuses the payload; the message is consumed and
    ///   the next one is readable.
    /// - [`Error::MessageTooLarge`], [`Error::Protocol`] and [`Error::Io`] as described
    ///   on [`Error`].
    ///
    /// # Examples
    ///
    /// ```
    /// let (tx, rx) = procwire::pipe::<Vec<u16>>()?;
    /// tx.send(&vec![1, 2, 3])?;
    /// assert_eq!(rx.recv()?, [1, 2, 3]);
    /// # Ok::<(), procwire::Error>(())
    /// ```
    pub fn recv(&self) -> Result<T>
    where
        C: Decode<T>,
    {
        self.recv_waiting(Wait::Block)
    }

    /// Receives the next message if a whole one is ready, without blocking.
    ///
    /// # Errors
    ///
    /// - [`Error::Empty`] when no whole message is ready yet; bytes of a partly arrived
    ///   message stay buffered.
    /// - Otherwise as [`recv`](Receiver::recv).
    ///
    /// # Examples
    ///
    /// ```
    /// let (tx, rx) = procwire::pipe::<u8>()?;
    /// assert!(matches!(rx.try_recv(), Err(procwire::Error::Empty)));
    /// tx.send(&9)?;
    /// assert_eq!(rx.try_recv()?, 9);
    /// # Ok::<(), procwire::Error>(())
    /// ```
    pub fn try_recv(&self) -> Result<T>
    where
        C: Decode<T>,
    {
        self.recv_waiting(Wait::Now)
    }

    /// Receives the next message, waiting at most `timeout` for it to arrive whole.
    ///
    /// # Errors
    ///
    /// - [`Error::Timeout`] when no whole message arrived in time; nothing is lost.
    /// - Otherwise as [`recv`](Receiver::recv).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let (tx, rx) = procwire::pipe::<u8>()?;
    /// let err = rx.recv_timeout(Duration::from_millis(10)).unwrap_err();
    /// assert!(matches!(err, procwire::Error::Timeout));
    /// tx.send(&1)?;
    /// assert_eq!(rx.recv_timeout(Duration::from_secs(5))?, 1);
    /// # Ok::<(), procwire::Error>(())
    /// ```
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T>
    where
        C: Decode<T>,
    {
        self.recv_waiting(Wait::Within(timeout))
    }

    /// A blocking iterator over received values; it ends when the peer disconnects at a
    /// message boundary and yields every other error. `for v in &rx` is the same.
    ///
    /// # Examples
    ///
    /// ```
    /// let (tx, rx) = procwire::pipe::<u32>()?;
    /// for i in 0..3 {
    ///     tx.send(&i)?;
    /// }
    /// drop(tx);
    /// let got: Vec<u32> = rx.iter().collect::<Result<_, _>>()?;
    /// assert_eq!(got, [0, 1, 2]);
    ///
    /// let (tx, rx) = procwire::pipe::<u32>()?;
    /// tx.send(&7)?;
    /// drop(tx);
    /// for v in &rx {
    ///     assert_eq!(v?, 7);
    /// }
    /// # Ok::<(), procwire::Error>(())
    /// ```
    pub fn iter(&self) -> Iter<'_, T, C>
    where
        C: Decode<T>,
    {
        Iter { rx: self }
    }

    /// Receives the next message's bytes as a new `Vec`, blocking until it has arrived.
    ///
    /// # Errors
    ///
    /// As [`recv`](Receiver::recv), without [`Error::Decode`].
    ///
    /// # Examples
    ///
    /// ```
    /// let (tx, rx) = procwire::pipe::<()>()?;
    /// tx.send_bytes(b"hello")?;
    /// assert_eq!(rx.recv_bytes()?, b"hello");
    /// # Ok::<(), procwire::Error>(())
    /// ```
    pub fn recv_bytes(&self) -> Result<Vec<u8>> {
        self.io.recv_vec(Wait::Block)
    }

    /// Receives the next message straight into `out`, returning the number of bytes
    /// written; blocks until it has arrived.
    ///
    /// `out` may be a slice of any
    /// [`Pod`](https://docs.rs/bytemuck/1/bytemuck/trait.Pod.html) type; the bytes land in
    /// it as sent, in the
    /// sender's byte order. Start at an offset by slicing: `&mut buf[3..]`. A large payload
    /// is read from the kernel directly into `out`, with no copy through a buffer and no
    /// allocation.
    ///
    /// # Errors
    ///
    /// - [`Error::BufferTooShort`] when the message is longer than `out`'s bytes: it holds
    ///   the whole message, which counts as received, and `out` is left untouched. The next
    ///   message is still readable.
    /// - Otherwise as [`recv_bytes`](Receiver::recv_bytes).
    ///
    /// # Examples
    ///
    /// ```
    /// let (tx, rx) = procwire::pipe::<()>()?;
    /// tx.send_bytes(&[42i32, 1729])?;
    /// tx.send_bytes(b"next")?;
    ///
    /// let mut small = [0i32; 1];
    /// let Err(procwire::Error::BufferTooShort(whole)) = rx.recv_bytes_into(&mut small) else {
    ///     panic!("expected BufferTooShort");
    /// };
    /// assert_eq!(whole.len(), 8);
    /// assert_eq!(rx.recv_bytes()?, b"next");
    /// # Ok::<(), procwire::Error>(())
    /// ```
    pub fn recv_bytes_into<P: Pod>(&self, out: &mut [P]) -> Result<usize> {
        self.io
            .recv_into(bytemuck::cast_slice_mut(out), Wait::Block)
    }

    /// Waits until the next receive will not block: a whole message has arrived, the stream
    /// ended, or a framing error is pending. Returns `false` when `timeout` passed first.
    ///
    /// `None` waits forever; `Some(Duration::ZERO)` only looks. Bytes that arrive meanwhile
    /// are kept for the next receive, so a message already buffered counts without a
    /// system call.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when waiting fails.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let (tx, rx) = procwire::pipe::<u8>()?;
    /// assert!(!rx.poll(Some(Duration::ZERO))?);
    /// tx.send(&1)?;
    /// assert!(rx.poll(None)?);
    /// # Ok::<(), procwire::Error>(())
    /// ```
    pub fn poll(&self, timeout: Option<Duration>) -> Result<bool> {
        self.io.poll(timeout)
    }

    /// The largest payload this receiver accepts, in bytes
    /// ([`DEFAULT_MAX_MESSAGE_SIZE`](crate::frame::DEFAULT_MAX_MESSAGE_SIZE) unless changed).
    pub fn max_message_size(&self) -> u64 {
        self.io.max_message_size()
    }

    /// Sets the largest payload this receiver accepts. A longer message is refused with
    /// [`Error::MessageTooLarge`] before anything of its size is allocated.
    ///
    /// Even under a large limit (`u64::MAX` included), a header alone never makes the
    /// receiver allocate more than 64 MiB: past that, memory for a message grows as its
    /// bytes arrive, so a peer that announces a huge message and sends little costs
    /// little.
    ///
    /// # Examples
    ///
    /// ```
    /// let (tx, rx) = procwire::pipe::<()>()?;
    /// rx.set_max_message_size(4);
    /// tx.send_bytes(b"12345")?;
    /// let err = rx.recv_bytes().unwrap_err();
    /// let text = err.to_string();
    /// assert!(text.starts_with("message of 5 bytes exceeds the receiver's 4-byte limit"));
    /// assert!(text.contains("set_max_message_size"), "the text names the setting");
    /// # Ok::<(), procwire::Error>(())
    /// ```
    pub fn set_max_message_size(&self, max: u64) {
        self.io.set_max_message_size(max);
    }

    /// Makes blocking receives spin for up to `max` before they block, when nothing has
    /// arrived yet; `None` (the default) blocks at once.
    ///
    /// A blocking receive that finds nothing puts the thread to sleep, and waking it on
    /// another core when the peer's answer comes costs more than the answer itself on a
    /// fast peer. With a spin, the receive first retries a non-blocking read (one system
    /// call per try) until bytes arrive or `max` has passed, then blocks as usual. The
    /// budget adapts: it halves after two spins in a row that found nothing, drops to zero
    /// below a microsecond (receives then block at once), grows back after spins that found
    /// bytes, and every 64th receive with a zero budget tries a quarter of `max` again.
    ///
    /// The cost is CPU time: up to `max` per receive, spent only while waiting, on a core
    /// another thread or process might have used. It pays off for request/reply traffic
    /// between processes on different cores that answer within microseconds (the
    /// `floor` benchmark measures the cross-core round trip with and without it); a peer
    /// on the same core gains nothing, as it cannot run while this thread spins. The
    /// timed and non-blocking receives (`recv_timeout`, `try_recv`, `poll`) and the async
    /// types never spin.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let (a, b) = procwire::duplex::<u64, u64>()?;
    /// b.set_spin(Some(Duration::from_micros(50)));
    /// assert_eq!(b.spin(), Some(Duration::from_micros(50)));
    /// a.send(&7)?;
    /// assert_eq!(b.recv()?, 7);
    /// b.set_spin(None);
    /// # Ok::<(), procwire::Error>(())
    /// ```
    pub fn set_spin(&self, max: Option<Duration>) {
        self.io.set_spin(max);
    }

    /// How long a blocking receive spins at most before it blocks, if it does; see
    /// [`set_spin`](Receiver::set_spin).
    pub fn spin(&self) -> Option<Duration> {
        self.io.spin()
    }

    /// Closes the receiver, reporting any error from `close(2)`; see [`Sender::close`].
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the operating system reports an error on close.
    pub fn close(self) -> Result<()> {
        self.io.close()
    }
}

/// A blocking iterator over a [`Receiver`]'s values; see [`Receiver::iter`].
pub struct Iter<'a, T, C> {
    rx: &'a Receiver<T, C>,
}

/// `for value in &rx` is `for value in rx.iter()`.
impl<'a, T, C: Decode<T>> IntoIterator for &'a Receiver<T, C> {
    type Item = Result<T>;
    type IntoIter = Iter<'a, T, C>;

    fn into_iter(self) -> Iter<'a, T, C> {
        self.iter()
    }
}

/// `for value in &conn` is `for value in conn.iter()`.
impl<'a, S, R, C: Decode<R>> IntoIterator for &'a Connection<S, R, C> {
    type Item = Result<R>;
    type IntoIter = Iter<'a, R, C>;

    fn into_iter(self) -> Iter<'a, R, C> {
        self.iter()
    }
}

impl<T, C: Decode<T>> Iterator for Iter<'_, T, C> {
    type Item = Result<T>;

    fn next(&mut self) -> Option<Result<T>> {
        match self.rx.recv() {
            Err(Error::Disconnected) => None,
            other => Some(other),
        }
    }
}

impl<T, C> fmt::Debug for Iter<'_, T, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iter").finish_non_exhaustive()
    }
}

/// A duplex typed connection: sends `S`, receives `R`, both through codec `C`.
///
/// Made by [`duplex`](crate::duplex), [`spawn`](crate::spawn),
/// [`from_parent`](crate::from_parent) and the socket constructors. It is a
/// [`Sender<S, C>`] and a [`Receiver<R, C>`] on one descriptor: every method of those is
/// here too, and [`split`](Connection::split) separates them for two threads.
///
/// # Examples
///
/// ```
/// let (a, b) = procwire::duplex::<String, usize>()?;
/// a.send(&"four".to_string())?;
/// let s = b.recv()?;
/// b.send(&s.len())?;
/// assert_eq!(a.recv()?, 4);
/// # Ok::<(), procwire::Error>(())
/// ```
pub struct Connection<
    S,
    R,
    #[cfg(feature = "postcard")] C = Postcard,
    #[cfg(not(feature = "postcard"))] C,
> {
    tx: Sender<S, C>,
    rx: Receiver<R, C>,
}

impl<S, R, C: Clone> Connection<S, R, C> {
    /// A connection over a stream a transport handed up.
    pub(crate) fn from_stream(stream: Stream, codec: C) -> Self {
        match stream {
            Stream::Socket { fd, kind } => Connection::from_socket(fd, kind, codec),
            #[cfg(feature = "tls")]
            Stream::Tls { fd, session } => {
                let conn = Connection::from_socket(fd, Kind::Tcp, codec);
                conn.tx.io.set_tls(Arc::clone(&session));
                conn.rx.io.set_tls(session);
                conn
            }
            Stream::Pipes { read, write } => {
                let rx = Receiver::from_fd(Arc::new(read), Kind::Pipe, codec.clone());
                // The peer opens its write end just after the pair was handed over.
                rx.io
                    .await_writer(std::time::Instant::now() + crate::transport::FIFO_WRITER_WAIT);
                Connection {
                    tx: Sender::from_fd(Arc::new(write), Kind::Pipe, codec),
                    rx,
                }
            }
        }
    }

    /// A connection over one duplex socket of `kind`.
    pub(crate) fn from_socket(fd: OwnedFd, kind: Kind, codec: C) -> Self {
        let fd = Arc::new(fd);
        Connection {
            tx: Sender::from_fd(Arc::clone(&fd), kind, codec.clone()),
            rx: Receiver::from_fd(fd, kind, codec),
        }
    }
}

impl<S, R, C> Connection<S, R, C> {
    /// A connection of two halves over one stream (for the async drivers).
    #[cfg_attr(not(any(feature = "tokio", feature = "async-io")), allow(dead_code))]
    pub(crate) fn from_halves(tx: Sender<S, C>, rx: Receiver<R, C>) -> Self {
        Connection { tx, rx }
    }

    /// The sending half, borrowed: every method of [`Sender`] is also a method of
    /// `Connection` (see below); this reaches the half itself, for code written against
    /// [`Sender`].
    pub fn sender(&self) -> &Sender<S, C> {
        &self.tx
    }

    /// The receiving half, borrowed; see [`sender`](Connection::sender).
    pub fn receiver(&self) -> &Receiver<R, C> {
        &self.rx
    }

    /// Splits the connection into its sending and receiving halves, for two threads.
    ///
    /// The halves share the descriptor; it is closed when both are dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// let (a, b) = procwire::duplex::<u64, u64>()?;
    /// let (tx, rx) = b.split();
    /// let echo = std::thread::spawn(move || -> procwire::Result<()> {
    ///     for v in rx.iter() {
    ///         tx.send(&(v? * 2))?;
    ///     }
    ///     Ok(())
    /// });
    /// a.send(&21)?;
    /// assert_eq!(a.recv()?, 42);
    /// drop(a);
    /// echo.join().unwrap()?;
    /// # Ok::<(), procwire::Error>(())
    /// ```
    pub fn split(self) -> (Sender<S, C>, Receiver<R, C>) {
        (self.tx, self.rx)
    }

    /// Closes the connection, reporting any error from `close(2)`.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the operating system reports an error on close.
    ///
    /// # Examples
    ///
    /// ```
    /// let (a, b) = procwire::duplex::<u8, u8>()?;
    /// a.close()?;
    /// assert!(matches!(b.recv(), Err(procwire::Error::Disconnected)));
    /// # Ok::<(), procwire::Error>(())
    /// ```
    pub fn close(self) -> Result<()> {
        let Connection { tx, rx } = self;
        // Drop the sender's share of the descriptor too, so that `rx.close` holds the last
        // one and reports what `close(2)` says.
        drop(tx.into_fd());
        rx.close()
    }
}

macro_rules! impl_fd {
    ($($ty:ident<$($p:ident),+>),+) => {$(
        impl<$($p),+> AsFd for $ty<$($p),+> {
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.fd().as_fd()
            }
        }

        impl<$($p),+> AsRawFd for $ty<$($p),+> {
            fn as_raw_fd(&self) -> RawFd {
                self.fd().as_raw_fd()
            }
        }

        impl<$($p),+> fmt::Debug for $ty<$($p),+> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($ty))
                    .field("fd", &self.fd().as_raw_fd())
                    .finish_non_exhaustive()
            }
        }
    )+};
}

impl<T, C> Sender<T, C> {
    fn fd(&self) -> &OwnedFd {
        self.io.fd()
    }

    /// A copy of the sender's codec, for encoding ahead of sending (see `rpc`).
    pub(crate) fn codec(&self) -> C
    where
        C: Clone,
    {
        self.io.lock().state.codec.clone()
    }
}

impl<T, C> Receiver<T, C> {
    fn fd(&self) -> &OwnedFd {
        self.io.fd()
    }

    /// The process, user and group of the peer, as the kernel recorded them when it
    /// connected; only for Unix-domain sockets (a [`duplex`](crate::duplex) pair, a Unix
    /// path or abstract address). See [`PeerCredentials`].
    ///
    /// # Errors
    ///
    /// - [`Error::Io`] of kind `Unsupported` for TCP, pipe and FIFO connections, and off
    ///   Linux and Android.
    /// - [`Error::Io`] when `getsockopt(SO_PEERCRED)` fails.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[cfg(target_os = "linux")] {
    /// let (a, _b) = procwire::duplex::<(), ()>()?;
    /// let me = a.peer_credentials()?; // the other end is this process
    /// assert_eq!(me.pid(), std::process::id());
    /// # }
    /// # Ok::<(), procwire::Error>(())
    /// ```
    pub fn peer_credentials(&self) -> Result<PeerCredentials> {
        PeerCredentials::of(self.fd().as_fd(), self.io.kind())
    }
}

impl<S, R, C> Connection<S, R, C> {
    fn fd(&self) -> &OwnedFd {
        self.rx.fd()
    }
}

impl_fd!(Sender<T, C>, Receiver<T, C>, Connection<S, R, C>);

/// A typed connection runs the handshake ([`server_handshake`](crate::auth::server_handshake)
/// and the others) over its two message-layer halves.
impl<S, R, C> crate::auth::sealed::MessageIo for Connection<S, R, C> {
    fn send_message(&self, payload: &[u8]) -> Result<()> {
        self.duplex().send_message(payload)
    }

    fn wait_message(&self, timeout: Option<Duration>) -> Result<bool> {
        self.duplex().wait_message(timeout)
    }

    fn recv_message(&self) -> Result<Vec<u8>> {
        self.duplex().recv_message()
    }

    fn message_limit(&self) -> u64 {
        self.duplex().message_limit()
    }

    fn set_message_limit(&self, max: u64) {
        self.duplex().set_message_limit(max);
    }
}

impl<S, R, C> Connection<S, R, C> {
    /// The two message-layer halves, borrowed as one untyped duplex connection.
    fn duplex(&self) -> Duplex<'_, Encoder<C>, C> {
        Duplex {
            tx: &self.tx.io,
            rx: &self.rx.io,
        }
    }
}
