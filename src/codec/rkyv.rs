//! The rkyv codec: values read in place from a validated archive.

use std::fmt;
use std::ops::Deref;
use std::sync::MutexGuard;

use ::rkyv::api::high::{HighDeserializer, HighSerializer, HighValidator};
use ::rkyv::bytecheck::CheckBytes;
use ::rkyv::rancor;
use ::rkyv::ser::allocator::ArenaHandle;
use ::rkyv::ser::Positional;
use ::rkyv::util::AlignedVec;
use ::rkyv::{Archive, Deserialize, Serialize};
use yoke::Yoke;

use super::api::{Decode, Encode, Sink};
use crate::error::{Error, Result};
use crate::message::Put;
use crate::message::{Grow, In, MessageReceiver, Wait};

/// The alignment of the receive buffer, and of every archive the codec reads in place.
const ALIGN: usize = AlignedVec::<16>::ALIGNMENT;

/// A codec for [rkyv](https://docs.rs/rkyv) 0.8 archives, whose receive can hand out the
/// archived value in place: [`Receiver::recv_archived`](crate::Receiver::recv_archived) reads the payload from the kernel
/// straight into an aligned buffer that the receiver keeps, validates it, and returns an
/// [`ArchiveGuard`] that dereferences to `&Archived<T>`: no deserialisation, no copy.
///
/// [`recv`](crate::Receiver::recv) deserialises to `T` as usual. Everything received is
/// validated with `bytecheck` before it is used, so a hostile or confused peer gets an
/// [`Error::Decode`], never undefined behaviour; this crate offers no unchecked access.
///
/// Both ends must be Rust, with the same types and the same rkyv format features (the
/// defaults: little-endian, 32-bit relative pointers, aligned). The codec's bounds are
/// rkyv's "high" API bounds, which `#[derive(Archive, Serialize, Deserialize)]` satisfies;
/// generic code can name them through [`rkyv::api::high`](::rkyv::api::high) with the
/// error type [`rkyv::rancor::Error`](::rkyv::rancor::Error) and the writer
/// [`RkyvWriter`].
///
/// # Large messages are written in place
///
/// Once a message of at least 64 KiB has been sent, the sender measures each next value
/// before a blocking [`send`](crate::Sender::send) (a serialisation that writes nothing,
/// see [`Encode::encoded_len`]) and then serialises it where the message goes: behind its
/// frame header to the socket, a large slice of plain data (the samples of a `Vec<f64>`)
/// in one vectored write straight from the value, or into a memfd slot when
/// [`enable_large_memfd`](crate::Sender::enable_large_memfd) is on. There is no copy into
/// the encode buffer: a 16 MiB `Vec<f64>` costs what `send_bytes` of its samples costs.
/// Timed and non-blocking sends, and smaller messages, are encoded into the buffer first.
///
/// The receive buffer grows to the largest message received and keeps that capacity, so
/// a steady stream of messages allocates nothing.
///
/// # Examples
///
/// ```
/// use procwire::codec::Rkyv;
///
/// #[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Debug, PartialEq)]
/// struct Frame {
///     id: u64,
///     samples: Vec<f64>,
/// }
///
/// let (tx, rx) = procwire::pipe_with::<Frame, Rkyv>(Rkyv::new())?;
/// tx.send(&Frame { id: 7, samples: vec![0.5; 1000] })?;
/// tx.send(&Frame { id: 8, samples: vec![] })?;
///
/// let frame = rx.recv_archived()?; // &ArchivedFrame, read in place
/// assert_eq!(frame.id, 7);
/// assert_eq!(frame.samples.len(), 1000);
/// assert_eq!(frame.samples[999], 0.5);
/// drop(frame); // the guard holds the receiver's lock
///
/// assert_eq!(rx.recv()?, Frame { id: 8, samples: vec![] });
/// # Ok::<(), procwire::Error>(())
/// ```
#[derive(Default)]
pub struct Rkyv {
    /// The receive buffer; it holds the last message at `..len`.
    buf: AlignedVec,
    len: usize,
}

impl Rkyv {
    /// A codec with an empty receive buffer.
    pub fn new() -> Rkyv {
        Rkyv::default()
    }

    /// Sizes the buffer for a message of `len` bytes and returns where it goes. Grows
    /// only: zeroes are written once per byte of capacity, not once per message.
    fn prepare(&mut self, len: usize) -> &mut [u8] {
        if self.buf.len() < len {
            self.buf.resize(len, 0);
        }
        self.len = len;
        &mut self.buf[..len]
    }

    /// The last message read into the buffer.
    fn message(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// The receive buffer grows as a message arrives: a header alone never sizes it beyond
/// what the reader allows at once.
impl Grow for Rkyv {
    fn size(&self) -> usize {
        self.buf.len()
    }

    fn grow_to(&mut self, len: usize) -> &mut [u8] {
        self.prepare(len)
    }
}

/// A clone starts with an empty buffer: the buffer is scratch space, not state.
impl Clone for Rkyv {
    fn clone(&self) -> Rkyv {
        Rkyv::new()
    }
}

impl fmt::Debug for Rkyv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rkyv")
            .field("buffer_capacity", &self.buf.capacity())
            .finish()
    }
}

fn is_aligned(bytes: &[u8]) -> bool {
    (bytes.as_ptr() as usize).is_multiple_of(ALIGN)
}

/// The writer [`Rkyv`] serialises into: the connection's encode buffer, the socket or a
/// memfd slot (see [`Encode::encode_to`]), or nothing at all while it measures a message.
///
/// It is public so that generic code can state the codec's bound: a `T` the codec sends
/// is `for<'a, 'w> rkyv::Serialize<HighSerializer<RkyvWriter<'w>, ArenaHandle<'a>,
/// rkyv::rancor::Error>>`, which every `#[derive(rkyv::Serialize)]` type is. Positions
/// count from the start of the message, so that the archive is aligned where the receiver
/// reads it.
pub struct RkyvWriter<'w> {
    to: To<'w>,
    pos: usize,
}

enum To<'w> {
    /// Measuring: only the position moves.
    Count,
    Vec(&'w mut Vec<u8>),
    Sink(&'w mut dyn Put),
}

impl fmt::Debug for RkyvWriter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RkyvWriter")
            .field("pos", &self.pos)
            .finish()
    }
}

impl<'w> RkyvWriter<'w> {
    fn new(to: To<'w>) -> RkyvWriter<'w> {
        RkyvWriter { to, pos: 0 }
    }
}

impl Positional for RkyvWriter<'_> {
    fn pos(&self) -> usize {
        self.pos
    }
}

impl<E> ::rkyv::ser::Writer<E> for RkyvWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> Result<(), E> {
        match &mut self.to {
            To::Count => {}
            To::Vec(out) => out.extend_from_slice(bytes),
            // A sink that failed drops what follows; the send reports why.
            To::Sink(sink) => {
                sink.put(bytes);
            }
        }
        self.pos += bytes.len();
        Ok(())
    }
}

impl<T> Encode<T> for Rkyv
where
    T: Archive
        + for<'a, 'w> Serialize<HighSerializer<RkyvWriter<'w>, ArenaHandle<'a>, rancor::Error>>,
{
    type Error = rancor::Error;

    /// Serialises `value`; positions inside the archive count from the start of this
    /// message, so that it is aligned when the receiver reads it into an aligned buffer.
    fn encode(&mut self, value: &T, out: &mut Vec<u8>) -> Result<(), Self::Error> {
        ::rkyv::api::high::to_bytes_in(value, RkyvWriter::new(To::Vec(out)))?;
        Ok(())
    }

    /// Measures `value`: a serialisation that writes nothing.
    fn encoded_len(&mut self, value: &T) -> Result<Option<usize>, Self::Error> {
        Ok(Some(
            ::rkyv::api::high::to_bytes_in(value, RkyvWriter::new(To::Count))?.pos,
        ))
    }

    /// Serialises `value` into `sink`: a large slice of plain data (the samples of a
    /// `Vec<f64>`) goes to the socket or the slot straight from the value.
    fn encode_to(&mut self, value: &T, sink: &mut Sink<'_>) -> Result<(), Self::Error> {
        ::rkyv::api::high::to_bytes_in(value, RkyvWriter::new(To::Sink(sink)))?;
        Ok(())
    }
}

impl<T> Decode<T> for Rkyv
where
    T: Archive,
    T::Archived: for<'a> CheckBytes<HighValidator<'a, rancor::Error>>
        + Deserialize<T, HighDeserializer<rancor::Error>>,
{
    type Error = rancor::Error;

    /// Validates and deserialises; a payload that is not suitably aligned where it lies
    /// is first copied into the codec's aligned buffer.
    fn decode(&mut self, bytes: &[u8]) -> Result<T, Self::Error> {
        if is_aligned(bytes) {
            return ::rkyv::from_bytes::<T, rancor::Error>(bytes);
        }
        self.prepare(bytes.len()).copy_from_slice(bytes);
        ::rkyv::from_bytes::<T, rancor::Error>(self.message())
    }
}

/// A received, validated archive of a `T`, read in place in the receiver's buffer;
/// dereferences to [`Archived<T>`](::rkyv::Archived). Made by
/// [`Receiver::recv_archived`](crate::Receiver::recv_archived).
///
/// The guard holds the receiver's lock: until it is dropped, every other receive, `poll`
/// or setting on the same [`Receiver`](crate::Receiver) (or the receiving side of the same
/// [`Connection`](crate::Connection)) waits, and one made on the thread that holds the guard deadlocks or
/// panics (as re-locking a [`Mutex`](std::sync::Mutex) does). Drop the guard, or let it
/// go out of scope, before receiving again. Sending on a [`Connection`](crate::Connection) uses a separate
/// lock and is not affected. For the same reason the guard is not `Send`: it is released
/// on the thread that received.
///
/// # Examples
///
/// ```
/// let (tx, rx) = procwire::pipe_with::<Vec<u32>, procwire::codec::Rkyv>(procwire::codec::Rkyv::new())?;
/// tx.send(&vec![1, 2, 3])?;
/// let archived = rx.recv_archived()?;
/// assert_eq!(archived.iter().map(|n| n.to_native()).sum::<u32>(), 6);
/// assert_eq!(archived.deserialize()?, [1, 2, 3]);
/// # Ok::<(), procwire::Error>(())
/// ```
pub struct ArchiveGuard<'a, T>
where
    T: Archive,
    T::Archived: 'static,
{
    yoke: Yoke<&'static T::Archived, MutexGuard<'a, In<Rkyv>>>,
}

impl<'a, T> ArchiveGuard<'a, T>
where
    T: Archive,
    T::Archived: for<'v> CheckBytes<HighValidator<'v, rancor::Error>> + 'static,
{
    /// Validates the message in `inbound`'s codec buffer and keeps the lock with it.
    fn validate(inbound: MutexGuard<'a, In<Rkyv>>) -> Result<Self> {
        Yoke::try_attach_to_cart(inbound, |inbound: &In<Rkyv>| {
            ::rkyv::access::<T::Archived, rancor::Error>(inbound.state.message())
        })
        .map(|yoke| ArchiveGuard { yoke })
        .map_err(|e| Error::Decode(Box::new(e)))
    }
}

impl<T> ArchiveGuard<'_, T>
where
    T: Archive,
    T::Archived: 'static,
{
    /// Deserialises the archived value into a `T`.
    ///
    /// # Errors
    ///
    /// [`Error::Decode`] when deserialisation fails (the archive itself was already
    /// validated, so this happens only for types whose deserialisation can fail).
    pub fn deserialize(&self) -> Result<T>
    where
        T::Archived: Deserialize<T, HighDeserializer<rancor::Error>>,
    {
        ::rkyv::deserialize::<T, rancor::Error>(&**self).map_err(|e| Error::Decode(Box::new(e)))
    }

    /// The archive's bytes as received: the whole payload of the message.
    pub fn as_bytes(&self) -> &[u8] {
        self.yoke.backing_cart().state.message()
    }
}

impl<T> Deref for ArchiveGuard<'_, T>
where
    T: Archive,
    T::Archived: 'static,
{
    type Target = T::Archived;

    fn deref(&self) -> &T::Archived {
        self.yoke.get()
    }
}

impl<T> fmt::Debug for ArchiveGuard<'_, T>
where
    T: Archive,
    T::Archived: fmt::Debug + 'static,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// The in-place receive, at the message layer: the typed
/// [`Receiver::recv_archived`](crate::Receiver::recv_archived)(crate::Receiver::recv_archived) family calls it.
impl MessageReceiver<Rkyv> {
    /// Waits as `wait` says, reads the next payload into the codec's aligned buffer and
    /// validates it, keeping the receiver's lock in the guard.
    pub(crate) fn recv_archived<T>(&self, wait: Wait) -> Result<ArchiveGuard<'_, T>>
    where
        T: Archive,
        T::Archived: for<'v> CheckBytes<HighValidator<'v, rancor::Error>> + 'static,
    {
        let mut inbound = self.lock();
        inbound.ready(wait)?;
        let In { reader, state } = &mut *inbound;
        reader.recv_growing_maybe_memfd(state)?; // large-message hook
        ArchiveGuard::validate(inbound)
    }
}
