//! Shared-memory arrays: a [`Pod`](https://docs.rs/bytemuck/1/bytemuck/trait.Pod.html)
//! array in a sealed memfd, passed by descriptor and read
//! in place by the receiver (Linux and Android only: memfds are Linux's).
//!
//! # On the wire
//!
//! [`send_array`](crate::Sender::send_array) sends one message of 32 bytes with the memfd
//! attached: the tag `procwire-array/1`, then the element count and the element size, each
//! a little-endian `u64`. The receiver checks the tag, that exactly one descriptor came,
//! that the element size is that of the type it asked for, and, in
//! [`SharedArray::from_fd`], the seals and that the memfd's size is the announced count
//! times the element size; only then does it map the memfd.

use std::fmt;
use std::marker::PhantomData;
use std::mem::size_of;
use std::ops::{Deref, DerefMut};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use bytemuck::Pod;

use crate::error::{Error, Result};
use crate::message::{MessageReceiver, MessageSender, Reader, Wait};

mod memfd;

const TAG: &[u8; 16] = b"procwire-array/1";
const ANNOUNCEMENT_LEN: usize = 32;

fn refuse(why: String) -> Error {
    Error::Descriptors(format!("shared array refused: {why}"))
}

/// The bytes of `len` elements of `T`, refusing zero-sized types and overflow.
fn byte_len<T>(len: usize) -> Result<usize> {
    let size = size_of::<T>();
    if size == 0 {
        return Err(refuse("zero-sized element types cannot be shared".into()));
    }
    len.checked_mul(size)
        .filter(|&b| b <= isize::MAX as usize)
        .ok_or_else(|| refuse(format!("{len} elements of {size} bytes overflow")))
}

/// `bytes` viewed as `T`s; `bytes` must have passed [`check_layout`].
fn cast<T: Pod>(bytes: &[u8]) -> &[T] {
    if bytes.is_empty() {
        return &[]; // an empty mapping has no aligned address to cast
    }
    bytemuck::cast_slice(bytes)
}

/// Checks once, at construction, that a mapping's bytes can be viewed as `T`s: a whole
/// number of them, suitably aligned (a mapping is page-aligned, so only an alignment
/// larger than a page can fail).
fn check_layout<T: Pod>(bytes: &[u8]) -> Result<()> {
    if bytes.is_empty() {
        return Ok(());
    }
    bytemuck::try_cast_slice::<u8, T>(bytes)
        .map(drop)
        .map_err(|e| {
            refuse(format!(
                "{} bytes cannot hold elements of {} bytes: {e}",
                bytes.len(),
                size_of::<T>()
            ))
        })
}

/// A shared-memory array being filled: a fresh memfd mapped read-write in this process
/// only. [`seal`](SharedArrayMut::seal) makes it a [`SharedArray`] that can be sent.
///
/// Linux and Android only.
///
/// # Examples
///
/// ```
/// let mut squares = procwire::SharedArrayMut::<u64>::new(1000)?;
/// for (i, v) in squares.iter_mut().enumerate() {
///     *v = (i * i) as u64;
/// }
/// let squares = squares.seal()?;
/// assert_eq!(squares[999], 998_001);
/// # Ok::<(), procwire::Error>(())
/// ```
pub struct SharedArrayMut<T: Pod> {
    mem: memfd::Writable,
    _marker: PhantomData<T>,
}

impl<T: Pod> SharedArrayMut<T> {
    /// A zero-filled array of `len` elements in a new memfd (close-on-exec, sealing
    /// allowed), mapped read-write. Memory is allocated as pages are first written.
    ///
    /// # Errors
    ///
    /// - [`Error::Descriptors`] when `T` is zero-sized or `len` elements overflow.
    /// - [`Error::Io`] when the memfd cannot be created, sized or mapped.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut a = procwire::SharedArrayMut::<f64>::new(3)?;
    /// a.copy_from_slice(&[1.0, 2.0, 3.0]);
    /// assert_eq!(a.len(), 3);
    /// # Ok::<(), procwire::Error>(())
    /// ```
    pub fn new(len: usize) -> Result<Self> {
        let mem = memfd::Writable::create(byte_len::<T>(len)?)?;
        check_layout::<T>(mem.bytes())?;
        Ok(SharedArrayMut {
            mem,
            _marker: PhantomData,
        })
    }

    /// Seals the array against writing, shrinking and growing, and maps it read-only: from
    /// now on no process can change it, and it can be sent.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when sealing or mapping fails; the array is dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut a = procwire::SharedArrayMut::<u8>::new(2)?;
    /// a[1] = 7;
    /// assert_eq!(*a.seal()?, [0, 7]);
    /// # Ok::<(), procwire::Error>(())
    /// ```
    pub fn seal(self) -> Result<SharedArray<T>> {
        Ok(SharedArray {
            mem: self.mem.seal()?,
            _marker: PhantomData,
        })
    }
}

impl<T: Pod> Deref for SharedArrayMut<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        cast(self.mem.bytes())
    }
}

impl<T: Pod> DerefMut for SharedArrayMut<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        let bytes = self.mem.bytes_mut();
        if bytes.is_empty() {
            return &mut [];
        }
        bytemuck::cast_slice_mut(bytes) // the layout was checked in `new`
    }
}

impl<T: Pod> fmt::Debug for SharedArrayMut<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedArrayMut")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

/// A read-only shared-memory array: a memfd sealed against writing, shrinking and growing,
/// mapped in this process. It dereferences to `&[T]` with no copy, and no process can
/// change or shrink the memory while it is borrowed.
///
/// Made by [`SharedArrayMut::seal`], [`from_slice`](SharedArray::from_slice), or received
/// with [`recv_array`](crate::Receiver::recv_array); sent with
/// [`send_array`](crate::Sender::send_array), which passes the memfd, not the data. Linux
/// and Android only.
///
/// # Examples
///
/// ```
/// let (a, b) = procwire::duplex::<(), ()>()?;
/// b.enable_fds()?;
/// let sent = procwire::SharedArray::from_slice(&[1.5f64, 2.5, 3.5])?;
/// a.send_array(&sent)?;
/// let got = b.recv_array::<f64>()?;
/// assert_eq!(*got, [1.5, 2.5, 3.5]);
/// # Ok::<(), procwire::Error>(())
/// ```
pub struct SharedArray<T: Pod> {
    mem: memfd::Sealed,
    _marker: PhantomData<T>,
}

impl<T: Pod> SharedArray<T> {
    /// A sealed array holding a copy of `data`.
    ///
    /// # Errors
    ///
    /// As [`SharedArrayMut::new`] and [`SharedArrayMut::seal`].
    ///
    /// # Examples
    ///
    /// ```
    /// let a = procwire::SharedArray::from_slice(&[[1u32, 2, 3], [4, 5, 6]])?;
    /// assert_eq!(a[1], [4, 5, 6]);
    /// # Ok::<(), procwire::Error>(())
    /// ```
    pub fn from_slice(data: &[T]) -> Result<Self> {
        let mut array = SharedArrayMut::new(data.len())?;
        array.copy_from_slice(data);
        array.seal()
    }

    /// Takes a memfd that someone else filled and sealed, after checking it: it must carry
    /// the seals `F_SEAL_WRITE`, `F_SEAL_SHRINK` and `F_SEAL_GROW`, and its size must be a
    /// whole number of `T`s. It is then mapped read-only.
    ///
    /// # Errors
    ///
    /// - [`Error::Descriptors`] when `fd` is not a memfd, lacks one of the seals, or its
    ///   size does not fit `T`; `fd` is closed.
    /// - [`Error::Io`] when mapping fails.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::os::fd::AsFd;
    ///
    /// let a = procwire::SharedArray::from_slice(&[7u16, 8])?;
    /// let again = procwire::SharedArray::<u16>::from_fd(a.as_fd().try_clone_to_owned()?)?;
    /// assert_eq!(*again, [7, 8]);
    ///
    /// let file = std::fs::File::open("Cargo.toml")?;
    /// assert!(procwire::SharedArray::<u8>::from_fd(file.into()).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_fd(fd: OwnedFd) -> Result<Self> {
        Self::open(fd, u64::MAX)
    }

    fn open(fd: OwnedFd, max: u64) -> Result<Self> {
        byte_len::<T>(0)?;
        let mem = memfd::Sealed::open(fd, max)?;
        check_layout::<T>(mem.bytes())?;
        Ok(SharedArray {
            mem,
            _marker: PhantomData,
        })
    }

    /// The array as a slice (also what it dereferences to).
    pub fn as_slice(&self) -> &[T] {
        cast(self.mem.bytes())
    }

    /// The 32-byte message that announces this array; see the module docs.
    fn announcement(&self) -> [u8; ANNOUNCEMENT_LEN] {
        let mut out = [0; ANNOUNCEMENT_LEN];
        out[..16].copy_from_slice(TAG);
        out[16..24].copy_from_slice(&(self.len() as u64).to_le_bytes());
        out[24..].copy_from_slice(&(size_of::<T>() as u64).to_le_bytes());
        out
    }
}

/// The element count and size an announcement gives; `None` when it is not one.
fn parse_announcement(bytes: &[u8]) -> Option<(u64, u64)> {
    let bytes: &[u8; ANNOUNCEMENT_LEN] = bytes.try_into().ok()?;
    let (tag, rest) = bytes.split_at(16);
    let (count, size) = rest.split_at(8);
    (tag == TAG).then(|| {
        let word = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap_or_default());
        (word(count), word(size))
    })
}

impl<T: Pod> Deref for SharedArray<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        self.as_slice()
    }
}

impl<T: Pod> AsFd for SharedArray<T> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.mem.as_fd()
    }
}

impl<T: Pod> fmt::Debug for SharedArray<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedArray")
            .field("len", &self.len())
            .field("fd", &self.as_fd())
            .finish_non_exhaustive()
    }
}

/// The capability itself, written once at the message layer; the typed
/// [`Sender::send_array`](crate::Sender::send_array) and
/// [`Receiver::recv_array`](crate::Receiver::recv_array) call these.
impl<X> MessageSender<X> {
    /// Sends `array`'s announcement with its memfd attached.
    pub(crate) fn send_array<A: Pod>(&self, array: &SharedArray<A>) -> Result<()> {
        self.send_bytes_fds(&array.announcement(), &[array.as_fd()])
    }
}

impl<X> MessageReceiver<X> {
    /// Receives an array announcement and its memfd, checks both, and maps the memfd.
    pub(crate) fn recv_array<A: Pod>(&self, wait: Wait) -> Result<SharedArray<A>> {
        let max = self.max_array_size();
        self.receive(wait, |r, _| recv_array(r, max))
    }
}

/// Receives an array of at most `max` bytes.
fn recv_array<A: Pod>(r: &mut Reader, max: u64) -> Result<SharedArray<A>> {
    let (announced, fds) = r.claiming_fds(|r| r.recv_with(parse_announcement))?;
    let Some((count, size)) = announced else {
        return Err(refuse("the message is not a shared array".into()));
    };
    let Ok([fd]) = <[OwnedFd; 1]>::try_from(fds) else {
        return Err(refuse("expected exactly one descriptor with it".into()));
    };
    if size != size_of::<A>() as u64 {
        return Err(refuse(format!(
            "element size {size} announced, {} expected",
            size_of::<A>()
        )));
    }
    let array = SharedArray::<A>::open(fd, max)?;
    if array.len() as u64 != count {
        return Err(refuse(format!(
            "{count} elements announced, the memfd holds {}",
            array.len()
        )));
    }
    Ok(array)
}
