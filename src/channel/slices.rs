//! Raw receives that count elements, not bytes: [`Receiver::recv_slice_into`] and its
//! waits, and [`Error::into_buffer`] for the message a too-short slice hands back.

use std::mem::size_of;
use std::time::Duration;

use bytemuck::Pod;

use super::Receiver;
use crate::error::{Error, Result};

/// The first `bytes / size_of::<P>()` elements of `out`, which a receive just filled with
/// `bytes` bytes; [`Error::Decode`] when that is not a whole number of elements.
fn filled<P: Pod>(out: &mut [P], bytes: usize) -> Result<&mut [P]> {
    let size = size_of::<P>();
    if size == 0 {
        return Ok(&mut out[..0]);
    }
    if !bytes.is_multiple_of(size) {
        return Err(Error::Decode(
            format!("a message of {bytes} bytes is not a whole number of {size}-byte elements")
                .into(),
        ));
    }
    Ok(&mut out[..bytes / size])
}

impl<T, C> Receiver<T, C> {
    /// Receives the next message straight into `out`, as
    /// [`recv_bytes_into`](Receiver::recv_bytes_into) does, and returns the elements it
    /// filled: `&mut out[..n]` for a message of `n` elements. Blocks until it has arrived.
    ///
    /// # Errors
    ///
    /// - [`Error::BufferTooShort`] when the message is longer than `out`: it holds the whole
    ///   message (turn it into elements with [`Error::into_buffer`]); `out` is untouched.
    /// - [`Error::Decode`] when the message is not a whole number of `P`s; it was consumed
    ///   (its bytes are in `out`) and the next message is readable.
    /// - Otherwise as [`recv_bytes`](Receiver::recv_bytes): [`Error::Disconnected`],
    ///   [`Error::Truncated`], [`Error::MessageTooLarge`], [`Error::Protocol`],
    ///   [`Error::Io`].
    ///
    /// # Examples
    ///
    /// ```
    /// let (tx, rx) = procwire::pipe::<()>()?;
    /// tx.send_bytes(&[1.5f64, -2.0])?;
    /// let mut out = [0f64; 8];
    /// let got = rx.recv_slice_into(&mut out)?;
    /// assert_eq!(got, [1.5, -2.0]);
    /// # Ok::<(), procwire::Error>(())
    /// ```
    pub fn recv_slice_into<'a, P: Pod>(&self, out: &'a mut [P]) -> Result<&'a mut [P]> {
        let bytes = self.recv_bytes_into(out)?;
        filled(out, bytes)
    }

    /// Receives the next message into `out` if a whole one is ready, without blocking; see
    /// [`recv_slice_into`](Receiver::recv_slice_into).
    ///
    /// # Errors
    ///
    /// - [`Error::Empty`] when no whole message is ready; nothing is lost.
    /// - Otherwise as [`recv_slice_into`](Receiver::recv_slice_into).
    ///
    /// # Examples
    ///
    /// ```
    /// let (tx, rx) = procwire::pipe::<()>()?;
    /// let mut out = [0u32; 4];
    /// assert!(matches!(rx.try_recv_slice_into(&mut out), Err(procwire::Error::Empty)));
    /// tx.send_bytes(&[7u32, 8, 9])?;
    /// assert_eq!(rx.try_recv_slice_into(&mut out)?, [7, 8, 9]);
    /// # Ok::<(), procwire::Error>(())
    /// ```
    pub fn try_recv_slice_into<'a, P: Pod>(&self, out: &'a mut [P]) -> Result<&'a mut [P]> {
        let bytes = self.try_recv_bytes_into(out)?;
        filled(out, bytes)
    }

    /// Receives the next message into `out`, waiting at most `timeout` for it to arrive
    /// whole; see [`recv_slice_into`](Receiver::recv_slice_into).
    ///
    /// # Errors
    ///
    /// - [`Error::Timeout`] when no whole message arrived in time; nothing is lost.
    /// - Otherwise as [`recv_slice_into`](Receiver::recv_slice_into).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let (tx, rx) = procwire::pipe::<()>()?;
    /// tx.send_bytes(&[1i16, 2])?;
    /// let mut out = [0i16; 2];
    /// assert_eq!(rx.recv_slice_into_timeout(&mut out, Duration::from_secs(5))?, [1, 2]);
    /// # Ok::<(), procwire::Error>(())
    /// ```
    pub fn recv_slice_into_timeout<'a, P: Pod>(
        &self,
        out: &'a mut [P],
        timeout: Duration,
    ) -> Result<&'a mut [P]> {
        let bytes = self.recv_bytes_into_timeout(out, timeout)?;
        filled(out, bytes)
    }
}

impl Error {
    /// The message of an [`Error::BufferTooShort`] as elements of `P`, copied into a
    /// properly aligned `Vec<P>` (the message's bytes, in the sender's byte order, need
    /// not be aligned for `P`). Any other error, or a message that is not a whole number
    /// of `P`s, is handed back unchanged as `Err`.
    ///
    /// # Errors
    ///
    /// `self`, when it is not a [`BufferTooShort`](Error::BufferTooShort) whose length is
    /// a multiple of `size_of::<P>()`.
    ///
    /// # Examples
    ///
    /// ```
    /// let (tx, rx) = procwire::pipe::<()>()?;
    /// tx.send_bytes(&[1u64, 2, 3])?;
    /// let mut small = [0u64; 2];
    /// let whole: Vec<u64> = match rx.recv_slice_into(&mut small) {
    ///     Ok(got) => got.to_vec(),
    ///     Err(e) => e.into_buffer()?,
    /// };
    /// assert_eq!(whole, [1, 2, 3]);
    /// # Ok::<(), procwire::Error>(())
    /// ```
    pub fn into_buffer<P: Pod>(self) -> Result<Vec<P>, Error> {
        let size = size_of::<P>();
        let bytes = match self {
            Error::BufferTooShort(bytes) if size != 0 && bytes.len().is_multiple_of(size) => bytes,
            other => return Err(other),
        };
        let mut out = vec![P::zeroed(); bytes.len() / size];
        bytemuck::cast_slice_mut::<P, u8>(&mut out).copy_from_slice(&bytes);
        Ok(out)
    }
}
