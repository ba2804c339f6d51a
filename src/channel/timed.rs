//! Sends with a deadline, and the byte-level receives that do not block or wait at most
//! a timeout.

use std::time::Duration;

use bytemuck::Pod;

use super::{deadline, Receiver, Sender};
use crate::codec::api::Encode;
#[cfg(doc)]
use crate::error::Error;
use crate::error::Result;
use crate::message::Wait;

impl<T, C> Sender<T, C> {
    /// Sends `value` as one message, waiting at most `timeout` for the peer to make room;
    /// `Duration::ZERO` never waits.
    ///
    /// This is how a server stays responsive when a client stops reading: a blocking
    /// [`send`](Sender::send) would wait for that client for as long as it does not read.
    /// The frame of a message is never left half-written: if the deadline passes after
    /// part of it went out, the sender keeps the rest and writes it before anything else,
    /// so the stream stays aligned.
    ///
    /// The timeout covers waiting for the peer, not waiting for another thread that is
    /// sending on the same sender.
    ///
    /// # Errors
    ///
    /// - [`Error::Timeout`] when nothing of this message was sent: the peer took none of
    ///   it in time, or the rest of an earlier message ([`Error::PartlySent`]) could not be
    ///   finished first. Sending it again later is safe.
    /// - [`Error::PartlySent`] when part of the message was sent: its rest goes out first
    ///   with the next send of any kind or [`flush_timeout`](Sender::flush_timeout). Do not
    ///   send it again.
    /// - Otherwise as [`send`](Sender::send).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use procwire::Error;
    ///
    /// let (a, b) = procwire::duplex::<u64, u64>()?;
    /// // Nobody reads `b` for now: sooner or later its buffer is full.
    /// let mut sent = 0;
    /// let err = loop {
    ///     match a.send_timeout(&sent, Duration::from_millis(1)) {
    ///         Ok(()) => sent += 1,
    ///         Err(e) => break e,
    ///     }
    /// };
    /// assert!(matches!(err, Error::Timeout)); // a small message goes whole or not at all
    /// for i in 0..sent {
    ///     assert_eq!(b.recv()?, i);
    /// }
    /// a.send_timeout(&sent, Duration::ZERO)?; // there is room again
    /// assert_eq!(b.recv()?, sent);
    /// # Ok::<(), procwire::Error>(())
    /// ```
    pub fn send_timeout(&self, value: &T, timeout: Duration) -> Result<()>
    where
        C: Encode<T>,
    {
        self.encode_and_send(value, deadline(timeout))
    }

    /// Sends the bytes of `data` as one message, waiting at most `timeout` for the peer
    /// to make room; see [`send_timeout`](Sender::send_timeout) and
    /// [`send_bytes`](Sender::send_bytes).
    ///
    /// When only part of the message goes out, its rest is copied into the sender (an
    /// allocation of up to the message's size) so that `data` can be released.
    ///
    /// # Errors
    ///
    /// As [`send_timeout`](Sender::send_timeout), without [`Error::Encode`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let (tx, rx) = procwire::pipe::<()>()?;
    /// tx.send_bytes_timeout(&[1u16, 2, 3], Duration::from_secs(1))?;
    /// assert_eq!(rx.recv_bytes()?.len(), 6);
    /// # Ok::<(), procwire::Error>(())
    /// ```
    pub fn send_bytes_timeout<P: Pod>(&self, data: &[P], timeout: Duration) -> Result<()> {
        self.io
            .send_bytes(bytemuck::cast_slice(data), deadline(timeout))
    }

    /// Writes the rest of a message that a [`send_timeout`](Sender::send_timeout) left
    /// part-way ([`Error::PartlySent`]), waiting at most `timeout` for the peer to make
    /// room. Returns `Ok` at once when nothing is left over.
    ///
    /// # Errors
    ///
    /// - [`Error::PartlySent`] when some of the rest is still unsent; it stays kept.
    /// - [`Error::Io`] as for [`send`](Sender::send).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let (tx, _rx) = procwire::pipe::<u8>()?;
    /// tx.flush_timeout(Duration::ZERO)?; // nothing is left over
    /// # Ok::<(), procwire::Error>(())
    /// ```
    pub fn flush_timeout(&self, timeout: Duration) -> Result<()> {
        self.io.flush(deadline(timeout))
    }
}

impl<T, C> Receiver<T, C> {
    /// Receives the next message's bytes if a whole message is ready, without blocking.
    ///
    /// # Errors
    ///
    /// - [`Error::Empty`] when no whole message is ready; bytes of a partly arrived
    ///   message stay buffered.
    /// - Otherwise as [`recv_bytes`](Receiver::recv_bytes).
    ///
    /// # Examples
    ///
    /// ```
    /// let (tx, rx) = procwire::pipe::<()>()?;
    /// assert!(matches!(rx.try_recv_bytes(), Err(procwire::Error::Empty)));
    /// tx.send_bytes(b"hi")?;
    /// assert_eq!(rx.try_recv_bytes()?, b"hi");
    /// # Ok::<(), procwire::Error>(())
    /// ```
    pub fn try_recv_bytes(&self) -> Result<Vec<u8>> {
        self.io.recv_vec(Wait::Now)
    }

    /// Receives the next message into `out` if a whole message is ready, without
    /// blocking; see [`recv_bytes_into`](Receiver::recv_bytes_into).
    ///
    /// # Errors
    ///
    /// - [`Error::Empty`] when no whole message is ready; nothing is lost.
    /// - Otherwise as [`recv_bytes_into`](Receiver::recv_bytes_into).
    ///
    /// # Examples
    ///
    /// ```
    /// let (tx, rx) = procwire::pipe::<()>()?;
    /// let mut out = [0u32; 4];
    /// assert!(matches!(rx.try_recv_bytes_into(&mut out), Err(procwire::Error::Empty)));
    /// tx.send_bytes(&[7u32, 8])?;
    /// assert_eq!(rx.try_recv_bytes_into(&mut out)?, 8);
    /// assert_eq!(out[..2], [7, 8]);
    /// # Ok::<(), procwire::Error>(())
    /// ```
    pub fn try_recv_bytes_into<P: Pod>(&self, out: &mut [P]) -> Result<usize> {
        self.io.recv_into(bytemuck::cast_slice_mut(out), Wait::Now)
    }

    /// Receives the next message's bytes, waiting at most `timeout` for it to arrive
    /// whole.
    ///
    /// # Errors
    ///
    /// - [`Error::Timeout`] when no whole message arrived in time; nothing is lost.
    /// - Otherwise as [`recv_bytes`](Receiver::recv_bytes).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let (tx, rx) = procwire::pipe::<()>()?;
    /// let err = rx.recv_bytes_timeout(Duration::from_millis(5)).unwrap_err();
    /// assert!(matches!(err, procwire::Error::Timeout));
    /// tx.send_bytes(b"late")?;
    /// assert_eq!(rx.recv_bytes_timeout(Duration::from_secs(5))?, b"late");
    /// # Ok::<(), procwire::Error>(())
    /// ```
    pub fn recv_bytes_timeout(&self, timeout: Duration) -> Result<Vec<u8>> {
        self.io.recv_vec(Wait::Within(timeout))
    }

    /// Receives the next message into `out`, waiting at most `timeout` for it to arrive
    /// whole; see [`recv_bytes_into`](Receiver::recv_bytes_into).
    ///
    /// # Errors
    ///
    /// - [`Error::Timeout`](crate::Error::Timeout) when no whole message arrived in time;
    ///   nothing is lost.
    /// - Otherwise as [`recv_bytes_into`](Receiver::recv_bytes_into).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let (tx, rx) = procwire::pipe::<()>()?;
    /// let mut out = [0f32; 2];
    /// let err = rx.recv_bytes_into_timeout(&mut out, Duration::from_millis(5)).unwrap_err();
    /// assert!(matches!(err, procwire::Error::Timeout));
    /// tx.send_bytes(&[0.5f32, 2.0])?;
    /// assert_eq!(rx.recv_bytes_into_timeout(&mut out, Duration::from_secs(5))?, 8);
    /// assert_eq!(out, [0.5, 2.0]);
    /// # Ok::<(), procwire::Error>(())
    /// ```
    pub fn recv_bytes_into_timeout<P: Pod>(
        &self,
        out: &mut [P],
        timeout: Duration,
    ) -> Result<usize> {
        self.io
            .recv_into(bytemuck::cast_slice_mut(out), Wait::Within(timeout))
    }
}
