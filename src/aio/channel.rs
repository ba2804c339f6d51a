//! Async typed halves and duplex connections over the message layer's reader and writer.
//!
//! A receive is the reader's own resumable receive (`Reader::*_from` with a
//! [`Progress`]): it reads until the descriptor would block, the runtime waits for
//! readiness, and the same receive resumes. A send is the writer's resumable write. The
//! futures own their progress; dropping one part-way hands what it has back to the reader
//! or writer (see the module docs on cancel safety).

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::io;
use std::marker::PhantomData;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytemuck::Pod;

use super::runtime::Runtime;
use crate::channel::Encoder;
use crate::codec::api::{Decode, Encode};
use crate::error::{Error, Result};
use crate::frame::{EncodedHeader, Header};
use crate::message::{Progress, Reader, Writer};
use crate::transport::{self, Kind, Stream};
#[cfg(feature = "postcard")]
use crate::Postcard;

/// `Some` of a result, `None` for an operation that would block.
#[inline]
fn unless_blocked<T>(result: Result<T>) -> Result<Option<T>> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
        Err(e) => Err(e),
    }
}

/// Runs the receive `op` as [`Runtime::poll_io`] does, but at once when the reader holds
/// a whole message already: the descriptor will not turn readable for bytes that have
/// been read, and a runtime that waits for readiness first (tokio) would wait forever.
#[inline]
fn poll_recv<Rt: Runtime, T>(
    reg: &Rt::Registration,
    reader: &mut Reader,
    cx: &mut Context<'_>,
    mut op: impl FnMut(&mut Reader) -> Result<Option<T>>,
) -> Poll<Result<T>> {
    if reader.ready_buffered() || reader.holds_unread() {
        if let Some(value) = op(reader)? {
            return Poll::Ready(Ok(value));
        }
    }
    let drained = Cell::new(reader.drained());
    Rt::poll_io(reg, false, &drained, cx, || {
        let out = op(reader);
        drained.set(reader.drained());
        out
    })
}

/// Fails when the other half of a duplex connection still holds `fd`, of which this half
/// holds `own` references (its own and its reader's or writer's, and its registration's).
fn check_alone(fd: &Arc<OwnedFd>, own: usize) -> Result<()> {
    if Arc::strong_count(fd) > own {
        return Err(Error::Io(io::Error::new(
            io::ErrorKind::InvalidInput,
            "this half shares its socket with the other half of its connection, which is \
             still blocking: convert both with `Connection::from_blocking_halves`",
        )));
    }
    Ok(())
}

/// Registers `fd` with `Rt`'s reactor after putting it in non-blocking mode.
fn register<Rt: Runtime>(fd: &Arc<OwnedFd>) -> Result<Arc<Rt::Registration>> {
    transport::set_blocking(fd.as_fd(), false)?;
    Ok(Arc::new(Rt::register(Arc::clone(fd))?))
}

/// The sending half of an async typed connection: values of `T`, encoded by `C`, on the
/// runtime `Rt`.
///
/// The async twin of [`crate::Sender`], made by [`pipe`](crate::tokio::pipe), by
/// [`Connection::into_split`], by converting a blocking sender
/// ([`from_blocking`](Sender::from_blocking)), or through the setup functions of
/// [`procwire::tokio`](crate::tokio) and [`procwire::async_io`](crate::async_io).
/// Methods take `&mut self`: one send at a time, each message whole. It is also a
/// [`Sink`](https://docs.rs/futures-sink/0.3/futures_sink/trait.Sink.html) of `T`.
///
/// # Cancel safety
///
/// Every send is cancel safe in the sense that matters for a stream of frames: a future
/// dropped before its message went out sends nothing; one dropped part-way keeps the rest
/// of its frame (copied from the caller's data) and sends it before the next message, so
/// the peer never sees half a message followed by another.
pub struct Sender<
    T,
    #[cfg(feature = "postcard")] C = Postcard,
    #[cfg(not(feature = "postcard"))] C,
    Rt: Runtime = DefaultRuntime,
> {
    fd: Arc<OwnedFd>,
    writer: Writer,
    codec: C,
    buf: Vec<u8>,
    reg: Arc<Rt::Registration>,
    _marker: PhantomData<fn(&T)>,
}

/// The runtime the async types default to: tokio when its feature is on, async-io
/// otherwise.
#[cfg(feature = "tokio")]
pub type DefaultRuntime = super::Tokio;
/// The runtime the async types default to: tokio when its feature is on, async-io
/// otherwise.
#[cfg(all(feature = "async-io", not(feature = "tokio")))]
pub type DefaultRuntime = super::AsyncIo;

/// The receiving half of an async typed connection: values of `T`, decoded by `C`, on
/// the runtime `Rt`.
///
/// The async twin of [`crate::Receiver`]; see [`Sender`] for where they come from. It is
/// also a [`Stream`](https://docs.rs/futures-core/0.3/futures_core/stream/trait.Stream.html) of `Result<T>` that ends when the peer closes
/// the connection between messages.
///
/// # Cancel safety
///
/// Every receive is cancel safe: a future dropped before its message was whole gives back
/// what it had read (the header and the payload bytes, also those already written into
/// the caller's slice by [`recv_bytes_into`](Receiver::recv_bytes_into)), so the next
/// receive gets the whole message. Nothing is lost and the stream stays aligned.
pub struct Receiver<
    T,
    #[cfg(feature = "postcard")] C = Postcard,
    #[cfg(not(feature = "postcard"))] C,
    Rt: Runtime = DefaultRuntime,
> {
    fd: Arc<OwnedFd>,
    kind: Kind,
    reader: Reader,
    codec: C,
    /// The shared-array limit of the blocking receiver it came from, kept for its return.
    max_array: u64,
    reg: Arc<Rt::Registration>,
    /// The receive the `Stream` implementation is in the middle of.
    stream: Progress,
    _marker: PhantomData<fn() -> T>,
}

/// An async duplex connection: sends `S`, receives `R`, both through the codec `C`, on
/// the runtime `Rt`.
///
/// The async twin of [`crate::Connection`], with the same methods as futures. Sending and
/// receiving at the same time from two tasks takes [`into_split`](Connection::into_split)
/// (or [`split`](Connection::split), borrowed); one task can also `select` over both
/// halves.
///
/// # Examples
///
/// ```
/// # #[cfg(feature = "tokio")]
/// # fn main() -> procwire::Result<()> {
/// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
/// let (mut a, mut b) = procwire::tokio::duplex::<String, usize>()?;
/// let peer = tokio::spawn(async move {
///     let s: String = b.recv().await?;
///     b.send(&s.len()).await
/// });
/// a.send(&"four".to_string()).await?;
/// assert_eq!(a.recv().await?, 4);
/// peer.await.unwrap()?;
/// # Ok(()) })
/// # }
/// # #[cfg(not(feature = "tokio"))]
/// # fn main() {}
/// ```
pub struct Connection<
    S,
    R,
    #[cfg(feature = "postcard")] C = Postcard,
    #[cfg(not(feature = "postcard"))] C,
    Rt: Runtime = DefaultRuntime,
> {
    tx: Sender<S, C, Rt>,
    rx: Receiver<R, C, Rt>,
}

impl<T, C, Rt: Runtime> Sender<T, C, Rt> {
    fn new(
        fd: Arc<OwnedFd>,
        writer: Writer,
        encoder: Encoder<C>,
        reg: Arc<Rt::Registration>,
    ) -> Self {
        Sender {
            fd,
            writer,
            codec: encoder.codec,
            buf: encoder.buf,
            reg,
            _marker: PhantomData,
        }
    }

    /// Makes a blocking sender async: its descriptor is put in non-blocking mode and
    /// registered with `Rt`'s reactor. The rest of a frame a timed send left unsent stays
    /// first in line.
    ///
    /// A sender split from a duplex connection shares its socket with the receiving half:
    /// convert the two together with [`Connection::from_blocking_halves`] (a socket is
    /// non-blocking for both halves or for neither).
    ///
    /// # Errors
    ///
    /// - [`Error::Io`] of kind `InvalidInput` when the receiving half of its socket is
    ///   still alive; the sender is dropped.
    /// - [`Error::Io`] when the descriptor cannot be made non-blocking or registered (for
    ///   tokio: outside a runtime).
    pub fn from_blocking(sender: crate::Sender<T, C>) -> Result<Self> {
        let (fd, writer, encoder) = sender.into_parts()?;
        check_alone(&fd, 2)?;
        let reg = register::<Rt>(&fd)?;
        Ok(Sender::new(fd, writer, encoder, reg))
    }

    /// Makes it a blocking [`crate::Sender`] again: deregistered, back in blocking mode.
    ///
    /// # Errors
    ///
    /// - [`Error::Io`] of kind `InvalidInput` when the receiving half of its socket is
    ///   still alive (convert the whole [`Connection`]); the sender is dropped.
    /// - [`Error::Io`] when the descriptor cannot be put back in blocking mode.
    pub fn into_blocking(self) -> Result<crate::Sender<T, C>> {
        check_alone(&self.fd, 3)?;
        let (fd, writer, encoder) = self.into_blocking_parts();
        transport::set_blocking(fd.as_fd(), true)?;
        Ok(crate::Sender::from_parts(fd, writer, encoder))
    }

    /// Deregisters it and takes it apart, leaving the descriptor's mode alone.
    fn into_blocking_parts(self) -> (Arc<OwnedFd>, Writer, Encoder<C>) {
        let Sender {
            fd,
            writer,
            codec,
            buf,
            reg,
            ..
        } = self;
        drop(reg);
        (fd, writer, Encoder::new(codec, buf))
    }

    /// Sends `value` as one message, encoded into a buffer the sender keeps.
    ///
    /// # Errors
    ///
    /// - [`Error::Encode`] when the codec refuses the value; nothing was sent.
    /// - [`Error::Io`] of kind `BrokenPipe` or `ConnectionReset` when the peer is gone
    ///   (see [`Error::is_disconnected`]), or any other I/O error.
    ///
    /// # Cancel safety
    ///
    /// See [`Sender`]: a dropped send leaves the stream aligned.
    pub async fn send(&mut self, value: &T) -> Result<()>
    where
        C: Encode<T>,
    {
        self.encode(value)?;
        let Sender {
            writer, buf, reg, ..
        } = self;
        Outgoing::<Rt>::new(writer, reg, buf, &[]).await
    }

    /// Sends `value` with the descriptors `fds` attached (Unix-domain sockets only); see
    /// [`crate::Sender::send_fds`].
    ///
    /// # Errors
    ///
    /// - [`Error::Descriptors`] when there are more than
    ///   [`MAX_FDS_PER_MESSAGE`](crate::frame::MAX_FDS_PER_MESSAGE) or the connection
    ///   cannot carry descriptors; nothing was sent.
    /// - As [`send`](Sender::send).
    pub async fn send_fds(&mut self, value: &T, fds: &[BorrowedFd<'_>]) -> Result<()>
    where
        C: Encode<T>,
    {
        self.writer.check_fds(fds)?;
        self.encode(value)?;
        let Sender {
            writer, buf, reg, ..
        } = self;
        Outgoing::<Rt>::new(writer, reg, buf, fds).await
    }

    /// Sends `data`, a slice of any [`Pod`](https://docs.rs/bytemuck/1/bytemuck/trait.Pod.html) type, as one raw message; see
    /// [`crate::Sender::send_bytes`]. A large payload goes from `data` to the kernel
    /// uncopied.
    ///
    /// # Errors
    ///
    /// As [`send`](Sender::send), without [`Error::Encode`].
    ///
    /// # Cancel safety
    ///
    /// A send dropped part-way copies the unsent rest of `data` and sends it before the
    /// next message.
    pub async fn send_bytes<P: Pod>(&mut self, data: &[P]) -> Result<()> {
        let Sender { writer, reg, .. } = self;
        Outgoing::<Rt>::new(writer, reg, bytemuck::cast_slice(data), &[]).await
    }

    /// [`send_bytes`](Sender::send_bytes) with the descriptors `fds` attached.
    ///
    /// # Errors
    ///
    /// As [`send_fds`](Sender::send_fds), without [`Error::Encode`].
    pub async fn send_bytes_fds<P: Pod>(
        &mut self,
        data: &[P],
        fds: &[BorrowedFd<'_>],
    ) -> Result<()> {
        self.writer.check_fds(fds)?;
        let Sender { writer, reg, .. } = self;
        Outgoing::<Rt>::new(writer, reg, bytemuck::cast_slice(data), fds).await
    }

    /// Finishes sending the rest of a frame an earlier, dropped send left behind; returns
    /// at once when there is none.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the write fails.
    pub async fn flush(&mut self) -> Result<()> {
        std::future::poll_fn(|cx| self.poll_flush_unsent(cx)).await
    }

    /// Whether a dropped send left part of a frame to send first.
    pub fn has_unsent(&self) -> bool {
        self.writer.has_unsent()
    }

    fn encode(&mut self, value: &T) -> Result<()>
    where
        C: Encode<T>,
    {
        self.buf.clear();
        self.codec
            .encode(value, &mut self.buf)
            .map_err(|e| Error::Encode(Box::new(e)))
    }

    fn poll_flush_unsent(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let Sender { writer, reg, .. } = self;
        Rt::poll_io(reg, true, &Cell::new(false), cx, || {
            Ok(writer.try_flush()?.then_some(()))
        })
    }
}

/// One frame on its way out: the writer's resumable write, and the cancel rule.
struct Outgoing<'a, Rt: Runtime> {
    writer: &'a mut Writer,
    reg: &'a Rt::Registration,
    header: EncodedHeader,
    payload: &'a [u8],
    fds: &'a [BorrowedFd<'a>],
    flushed: bool,
    sent: usize,
    finished: bool,
}

impl<'a, Rt: Runtime> Outgoing<'a, Rt> {
    fn new(
        writer: &'a mut Writer,
        reg: &'a Rt::Registration,
        payload: &'a [u8],
        fds: &'a [BorrowedFd<'a>],
    ) -> Self {
        Outgoing {
            writer,
            reg,
            header: Header::for_payload(payload.len() as u64).encode(),
            payload,
            fds,
            flushed: false,
            sent: 0,
            finished: false,
        }
    }
}

impl<Rt: Runtime> Future for Outgoing<'_, Rt> {
    type Output = Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        let Outgoing {
            writer,
            reg,
            header,
            payload,
            fds,
            flushed,
            sent,
            finished,
        } = this;
        if !*flushed && writer.needs_flush() {
            let flush = Rt::poll_io(reg, true, &Cell::new(false), cx, || {
                Ok(writer.try_flush()?.then_some(()))
            });
            if let Err(e) = std::task::ready!(flush) {
                *finished = true;
                return Poll::Ready(Err(e));
            }
            *flushed = true;
        }
        let head = header.as_ref();
        let out = std::task::ready!(Rt::poll_io(reg, true, &Cell::new(false), cx, || {
            Ok(writer
                .try_write_fds(head, payload, fds, sent)?
                .then_some(()))
        }));
        *finished = true;
        Poll::Ready(out)
    }
}

impl<Rt: Runtime> Drop for Outgoing<'_, Rt> {
    fn drop(&mut self) {
        if !self.finished {
            self.writer
                .keep_unsent(self.header.as_ref(), self.payload, self.sent);
        }
    }
}

impl<T, C: Encode<T> + Unpin, Rt: Runtime> futures_sink::Sink<T> for Sender<T, C, Rt> {
    type Error = Error;

    /// Ready when the previous message has gone out whole.
    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.get_mut().poll_flush_unsent(cx)
    }

    /// Encodes `item` and queues its frame; `poll_flush`
    /// writes it.
    fn start_send(self: Pin<&mut Self>, item: T) -> Result<()> {
        let this = self.get_mut();
        this.encode(&item)?;
        let header = Header::for_payload(this.buf.len() as u64).encode();
        this.writer.queue(header.as_ref(), &this.buf);
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.get_mut().poll_flush_unsent(cx)
    }

    /// Flushes; the descriptor closes when the sender is dropped.
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.get_mut().poll_flush_unsent(cx)
    }
}

impl<T, C, Rt: Runtime> Receiver<T, C, Rt> {
    fn new(
        fd: Arc<OwnedFd>,
        kind: Kind,
        mut reader: Reader,
        codec: C,
        max_array: u64,
        reg: Arc<Rt::Registration>,
    ) -> Self {
        reader.set_nonblocking(true);
        Receiver {
            fd,
            kind,
            reader,
            codec,
            max_array,
            reg,
            stream: Progress::default(),
            _marker: PhantomData,
        }
    }

    /// Makes a blocking receiver async: its descriptor is put in non-blocking mode and
    /// registered with `Rt`'s reactor. Whatever it had buffered is received first.
    ///
    /// A receiver split from a duplex connection shares its socket with the sending half:
    /// convert the two together with [`Connection::from_blocking_halves`].
    ///
    /// # Errors
    ///
    /// - [`Error::Io`] of kind `InvalidInput` when the sending half of its socket is still
    ///   alive; the receiver is dropped.
    /// - [`Error::Io`] when the descriptor cannot be made non-blocking or registered (for
    ///   tokio: outside a runtime).
    pub fn from_blocking(receiver: crate::Receiver<T, C>) -> Result<Self> {
        let (fd, kind, reader, codec, max_array) = receiver.into_parts();
        check_alone(&fd, 2)?;
        let reg = register::<Rt>(&fd)?;
        Ok(Receiver::new(fd, kind, reader, codec, max_array, reg))
    }

    /// Makes it a blocking [`crate::Receiver`] again, keeping what it has buffered.
    ///
    /// # Errors
    ///
    /// - [`Error::Io`] of kind `InvalidInput` when the sending half of its socket is still
    ///   alive (convert the whole [`Connection`]); the receiver is dropped.
    /// - [`Error::Io`] when the descriptor cannot be put back in blocking mode.
    pub fn into_blocking(self) -> Result<crate::Receiver<T, C>> {
        check_alone(&self.fd, 3)?;
        let (fd, kind, reader, codec, max_array) = self.into_blocking_parts();
        transport::set_blocking(fd.as_fd(), true)?;
        Ok(crate::Receiver::from_parts(
            fd, kind, reader, codec, max_array,
        ))
    }

    /// Deregisters it and takes it apart, leaving the descriptor's mode alone; an
    /// unfinished receive of the `Stream` gives its bytes back first.
    fn into_blocking_parts(self) -> (Arc<OwnedFd>, Kind, Reader, C, u64) {
        let Receiver {
            fd,
            kind,
            mut reader,
            codec,
            max_array,
            reg,
            mut stream,
            ..
        } = self;
        reader.abandon(&mut stream, &[]);
        reader.set_nonblocking(false);
        drop(reg);
        (fd, kind, reader, codec, max_array)
    }

    /// Receives and decodes the next message; see [`crate::Receiver::recv`].
    ///
    /// # Errors
    ///
    /// - [`Error::Disconnected`] when the peer closed the stream between messages.
    /// - [`Error::Truncated`] when it closed the stream inside a message.
    /// - [`Error::Decode`] when the codec refuses the payload; the message is consumed and
    ///   the next one is readable.
    /// - [`Error::MessageTooLarge`], [`Error::Protocol`] and [`Error::Io`] as described
    ///   on [`Error`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: see [`Receiver`].
    pub async fn recv(&mut self) -> Result<T>
    where
        C: Decode<T>,
    {
        let (incoming, codec) = self.incoming(&mut []);
        incoming
            .run(|reader, _, p| reader.recv_with_from(p, |bytes| codec.decode(bytes)))
            .await?
            .map_err(|e| Error::Decode(Box::new(e)))
    }

    /// [`recv`](Receiver::recv) of a message sent with descriptors: the value and the
    /// descriptors that came with it; see [`crate::Receiver::recv_fds`].
    ///
    /// # Errors
    ///
    /// - [`Error::Descriptors`] when the kernel had to drop some of the message's
    ///   descriptors; the message is consumed.
    /// - As [`recv`](Receiver::recv).
    pub async fn recv_fds(&mut self) -> Result<(T, Vec<OwnedFd>)>
    where
        C: Decode<T>,
    {
        let (incoming, codec) = self.incoming(&mut []);
        let (value, fds) = incoming
            .run(|reader, _, p| {
                reader.claiming_fds(|r| r.recv_with_from(p, |bytes| codec.decode(bytes)))
            })
            .await?;
        Ok((value.map_err(|e| Error::Decode(Box::new(e)))?, fds))
    }

    /// Receives the next message as a new `Vec`; see [`crate::Receiver::recv_bytes`].
    ///
    /// # Errors
    ///
    /// As [`recv`](Receiver::recv), without [`Error::Decode`].
    pub async fn recv_bytes(&mut self) -> Result<Vec<u8>> {
        let (incoming, _) = self.incoming(&mut []);
        incoming.run(|reader, _, p| reader.recv_vec_from(p)).await
    }

    /// [`recv_bytes`](Receiver::recv_bytes) with the descriptors that came with the
    /// message.
    ///
    /// # Errors
    ///
    /// As [`recv_fds`](Receiver::recv_fds), without [`Error::Decode`].
    pub async fn recv_bytes_fds(&mut self) -> Result<(Vec<u8>, Vec<OwnedFd>)> {
        let (incoming, _) = self.incoming(&mut []);
        incoming
            .run(|reader, _, p| reader.claiming_fds(|r| r.recv_vec_from(p)))
            .await
    }

    /// Receives the next message into `dst`, a slice of any [`Pod`](https://docs.rs/bytemuck/1/bytemuck/trait.Pod.html) type, and returns
    /// its length in bytes; see [`crate::Receiver::recv_bytes_into`]. A large payload goes
    /// from the kernel straight into `dst`.
    ///
    /// # Errors
    ///
    /// - [`Error::BufferTooShort`] with the whole message when it does not fit in `dst`;
    ///   the message is consumed.
    /// - As [`recv_bytes`](Receiver::recv_bytes).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the bytes already in `dst` are copied back into the receiver when the
    /// future is dropped, and the next receive gets the whole message.
    pub async fn recv_bytes_into<P: Pod>(&mut self, dst: &mut [P]) -> Result<usize> {
        let (incoming, _) = self.incoming(bytemuck::cast_slice_mut(dst));
        incoming
            .run(|reader, dst, p| reader.recv_into_from(dst, p))
            .await
    }

    /// Waits until a message (or the end of the stream, or an error) is ready to be
    /// received, reading what arrives into the receiver's buffer; the async
    /// [`poll`](crate::Receiver::poll). The message itself is left for a receive.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the reactor fails.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: what it read stays buffered.
    pub async fn ready(&mut self) -> Result<()> {
        let Receiver { reader, reg, .. } = self;
        std::future::poll_fn(|cx| {
            poll_recv::<Rt, _>(reg, reader, cx, |r| Ok(r.poll_now().then_some(())))
        })
        .await
    }

    /// The largest payload it accepts; see [`crate::Receiver::max_message_size`].
    pub fn max_message_size(&self) -> u64 {
        self.reader.max_message_size()
    }

    /// Sets the largest payload it accepts; see
    /// [`crate::Receiver::set_max_message_size`].
    pub fn set_max_message_size(&mut self, max: u64) {
        self.reader.set_max_message_size(max);
    }

    /// Starts receiving the descriptors that come with messages, as
    /// [`crate::Receiver::enable_fds`] does: needed before `recv_fds`, `recv_bytes_fds`
    /// on a Unix-domain socket. A blocking receiver's setting carries over through
    /// `from_blocking`, and back.
    ///
    /// # Errors
    ///
    /// [`Error::Descriptors`] when bytes of a later message are already buffered.
    pub fn enable_fds(&mut self) -> Result<()> {
        self.reader.enable_fds()
    }

    /// The receive future's parts, after the stream's unfinished receive (if any) gave
    /// its bytes back.
    fn incoming<'a>(&'a mut self, dst: &'a mut [u8]) -> (Incoming<'a, Rt>, &'a mut C) {
        let Receiver {
            reader,
            codec,
            reg,
            stream,
            ..
        } = self;
        reader.abandon(stream, &[]);
        let incoming = Incoming {
            reader,
            reg: &**reg,
            dst,
            progress: Progress::default(),
            finished: false,
        };
        (incoming, codec)
    }
}

/// One receive in progress: the reader's resumable receive, and the cancel rule.
struct Incoming<'a, Rt: Runtime> {
    reader: &'a mut Reader,
    reg: &'a Rt::Registration,
    dst: &'a mut [u8],
    progress: Progress,
    finished: bool,
}

impl<Rt: Runtime> Incoming<'_, Rt> {
    /// Runs `op` until it completes, waiting for readability whenever it would block.
    async fn run<R>(
        mut self,
        mut op: impl FnMut(&mut Reader, &mut [u8], &mut Progress) -> Result<R>,
    ) -> Result<R> {
        let out = std::future::poll_fn(|cx| {
            let Incoming {
                reader,
                reg,
                dst,
                progress,
                ..
            } = &mut self;
            poll_recv::<Rt, _>(reg, reader, cx, |r| unless_blocked(op(r, dst, progress)))
        })
        .await;
        self.finished = true;
        out
    }
}

impl<Rt: Runtime> Drop for Incoming<'_, Rt> {
    fn drop(&mut self) {
        if !self.finished {
            self.reader.abandon(&mut self.progress, self.dst);
        }
    }
}

impl<T, C: Decode<T> + Unpin, Rt: Runtime> futures_core::Stream for Receiver<T, C, Rt> {
    type Item = Result<T>;

    /// The next message, decoded; `None` once the peer has closed the connection between
    /// messages ([`Error::Disconnected`]), and every error otherwise as an item.
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<T>>> {
        let this = self.get_mut();
        let Receiver {
            reader,
            codec,
            reg,
            stream,
            ..
        } = this;
        let out = std::task::ready!(poll_recv::<Rt, _>(reg, reader, cx, |r| {
            unless_blocked(r.recv_with_from(stream, |bytes| codec.decode(bytes)))
        }));
        *stream = Progress::default();
        Poll::Ready(match out {
            Ok(Ok(value)) => Some(Ok(value)),
            Ok(Err(e)) => Some(Err(Error::Decode(Box::new(e)))),
            Err(Error::Disconnected) => None,
            Err(e) => Some(Err(e)),
        })
    }
}

impl<S, R, C: Clone, Rt: Runtime> Connection<S, R, C, Rt> {
    /// A connection over a stream a transport handed up: registered, non-blocking.
    pub(crate) fn from_stream(stream: Stream, codec: C, max_message_size: u64) -> Result<Self> {
        let blocking = crate::Connection::<S, R, C>::from_stream(stream, codec);
        blocking.set_max_message_size(max_message_size);
        Connection::from_blocking(blocking)
    }
}

impl<S, R, C, Rt: Runtime> Connection<S, R, C, Rt> {
    /// Makes a blocking connection async: its descriptor (or both, for a FIFO pair) is put
    /// in non-blocking mode and registered with `Rt`'s reactor. Buffered input and unsent
    /// output carry over.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when a descriptor cannot be made non-blocking or registered (for
    /// tokio: outside a runtime).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[cfg(feature = "tokio")]
    /// # fn main() -> procwire::Result<()> {
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
    /// let (a, b) = procwire::duplex::<u32, u32>()?;
    /// let peer = std::thread::spawn(move || b.send(&(b.recv()? + 1)));
    /// let mut a = procwire::tokio::Connection::from_blocking(a)?;
    /// a.send(&41).await?;
    /// assert_eq!(a.recv().await?, 42);
    /// peer.join().unwrap()?;
    /// let a: procwire::Connection<u32, u32> = a.into_blocking()?; // and back
    /// # drop(a);
    /// # Ok(()) })
    /// # }
    /// # #[cfg(not(feature = "tokio"))]
    /// # fn main() {}
    /// ```
    pub fn from_blocking(conn: crate::Connection<S, R, C>) -> Result<Self> {
        let (tx, rx) = conn.split();
        Connection::from_blocking_halves(tx, rx)
    }

    /// Makes two blocking halves async at once, as one connection: the halves of a split
    /// duplex connection (which share a socket, registered once), or any sender and
    /// receiver (a FIFO pair's, two pipes'), each registered on its own.
    ///
    /// # Errors
    ///
    /// As [`from_blocking`](Connection::from_blocking).
    pub fn from_blocking_halves(
        tx: crate::Sender<S, C>,
        rx: crate::Receiver<R, C>,
    ) -> Result<Self> {
        let (wfd, writer, encoder) = tx.into_parts()?;
        let (rfd, kind, reader, codec, max_array) = rx.into_parts();
        let rreg = register::<Rt>(&rfd)?;
        let wreg = if Arc::ptr_eq(&wfd, &rfd) {
            Arc::clone(&rreg)
        } else {
            register::<Rt>(&wfd)?
        };
        Ok(Connection {
            tx: Sender::new(wfd, writer, encoder, wreg),
            rx: Receiver::new(rfd, kind, reader, codec, max_array, rreg),
        })
    }

    /// Makes it a blocking [`crate::Connection`] again; buffered input and unsent output
    /// carry over.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when a descriptor cannot be put back in blocking mode.
    pub fn into_blocking(self) -> Result<crate::Connection<S, R, C>> {
        let Connection { tx, rx } = self;
        let (wfd, writer, encoder) = tx.into_blocking_parts();
        let (rfd, kind, reader, codec, max_array) = rx.into_blocking_parts();
        transport::set_blocking(rfd.as_fd(), true)?;
        if !Arc::ptr_eq(&wfd, &rfd) {
            transport::set_blocking(wfd.as_fd(), true)?;
        }
        Ok(crate::Connection::from_halves(
            crate::Sender::from_parts(wfd, writer, encoder),
            crate::Receiver::from_parts(rfd, kind, reader, codec, max_array),
        ))
    }

    /// The halves, borrowed, for sending and receiving at once from one task (for
    /// example in a `select!`).
    pub fn split(&mut self) -> (&mut Sender<S, C, Rt>, &mut Receiver<R, C, Rt>) {
        (&mut self.tx, &mut self.rx)
    }

    /// The halves, owned, for two tasks; they share the descriptor, which closes when
    /// both are dropped.
    pub fn into_split(self) -> (Sender<S, C, Rt>, Receiver<R, C, Rt>) {
        (self.tx, self.rx)
    }

    /// The sending half.
    pub fn sender(&mut self) -> &mut Sender<S, C, Rt> {
        &mut self.tx
    }

    /// The receiving half.
    pub fn receiver(&mut self) -> &mut Receiver<R, C, Rt> {
        &mut self.rx
    }

    /// [`Sender::send`].
    ///
    /// # Errors
    ///
    /// As [`Sender::send`].
    pub async fn send(&mut self, value: &S) -> Result<()>
    where
        C: Encode<S>,
    {
        self.tx.send(value).await
    }

    /// [`Sender::send_fds`].
    ///
    /// # Errors
    ///
    /// As [`Sender::send_fds`].
    pub async fn send_fds(&mut self, value: &S, fds: &[BorrowedFd<'_>]) -> Result<()>
    where
        C: Encode<S>,
    {
        self.tx.send_fds(value, fds).await
    }

    /// [`Sender::send_bytes`].
    ///
    /// # Errors
    ///
    /// As [`Sender::send_bytes`].
    pub async fn send_bytes<P: Pod>(&mut self, data: &[P]) -> Result<()> {
        self.tx.send_bytes(data).await
    }

    /// [`Sender::send_bytes_fds`].
    ///
    /// # Errors
    ///
    /// As [`Sender::send_bytes_fds`].
    pub async fn send_bytes_fds<P: Pod>(
        &mut self,
        data: &[P],
        fds: &[BorrowedFd<'_>],
    ) -> Result<()> {
        self.tx.send_bytes_fds(data, fds).await
    }

    /// [`Sender::flush`].
    ///
    /// # Errors
    ///
    /// As [`Sender::flush`].
    pub async fn flush(&mut self) -> Result<()> {
        self.tx.flush().await
    }

    /// [`Receiver::recv`].
    ///
    /// # Errors
    ///
    /// As [`Receiver::recv`].
    pub async fn recv(&mut self) -> Result<R>
    where
        C: Decode<R>,
    {
        self.rx.recv().await
    }

    /// [`Receiver::recv_fds`].
    ///
    /// # Errors
    ///
    /// As [`Receiver::recv_fds`].
    pub async fn recv_fds(&mut self) -> Result<(R, Vec<OwnedFd>)>
    where
        C: Decode<R>,
    {
        self.rx.recv_fds().await
    }

    /// [`Receiver::recv_bytes`].
    ///
    /// # Errors
    ///
    /// As [`Receiver::recv_bytes`].
    pub async fn recv_bytes(&mut self) -> Result<Vec<u8>> {
        self.rx.recv_bytes().await
    }

    /// [`Receiver::recv_bytes_fds`].
    ///
    /// # Errors
    ///
    /// As [`Receiver::recv_bytes_fds`].
    pub async fn recv_bytes_fds(&mut self) -> Result<(Vec<u8>, Vec<OwnedFd>)> {
        self.rx.recv_bytes_fds().await
    }

    /// [`Receiver::recv_bytes_into`].
    ///
    /// # Errors
    ///
    /// As [`Receiver::recv_bytes_into`].
    pub async fn recv_bytes_into<P: Pod>(&mut self, dst: &mut [P]) -> Result<usize> {
        self.rx.recv_bytes_into(dst).await
    }

    /// [`Receiver::ready`].
    ///
    /// # Errors
    ///
    /// As [`Receiver::ready`].
    pub async fn ready(&mut self) -> Result<()> {
        self.rx.ready().await
    }

    /// [`Receiver::max_message_size`].
    pub fn max_message_size(&self) -> u64 {
        self.rx.max_message_size()
    }

    /// [`Receiver::set_max_message_size`].
    pub fn set_max_message_size(&mut self, max: u64) {
        self.rx.set_max_message_size(max);
    }

    /// [`Receiver::enable_fds`].
    ///
    /// # Errors
    ///
    /// As [`Receiver::enable_fds`].
    pub fn enable_fds(&mut self) -> Result<()> {
        self.rx.enable_fds()
    }
}

macro_rules! fd_impls {
    ($ty:ident < $($p:ident),+ >, $field:ident) => {
        impl<$($p,)+ Rt: Runtime> AsFd for $ty<$($p,)+ Rt> {
            /// The descriptor it reads or writes (a duplex connection's socket; for a FIFO
            /// pair, the end it reads).
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.$field.as_fd()
            }
        }

        impl<$($p,)+ Rt: Runtime> AsRawFd for $ty<$($p,)+ Rt> {
            fn as_raw_fd(&self) -> RawFd {
                self.as_fd().as_raw_fd()
            }
        }

        impl<$($p,)+ Rt: Runtime> fmt::Debug for $ty<$($p,)+ Rt> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($ty))
                    .field("fd", &self.as_raw_fd())
                    .finish_non_exhaustive()
            }
        }
    };
}

fd_impls!(Sender<T, C>, fd);
fd_impls!(Receiver<T, C>, fd);

impl<S, R, C, Rt: Runtime> AsFd for Connection<S, R, C, Rt> {
    /// The descriptor it reads (the socket, for every connection but a FIFO pair).
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.rx.as_fd()
    }
}

impl<S, R, C, Rt: Runtime> AsRawFd for Connection<S, R, C, Rt> {
    fn as_raw_fd(&self) -> RawFd {
        self.rx.as_raw_fd()
    }
}

impl<S, R, C, Rt: Runtime> fmt::Debug for Connection<S, R, C, Rt> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("fd", &self.as_raw_fd())
            .finish_non_exhaustive()
    }
}
