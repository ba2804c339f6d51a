//! The rkyv codec's in-place receives on the typed halves.

use std::time::Duration;

use ::rkyv::api::high::HighValidator;
use ::rkyv::bytecheck::CheckBytes;
use ::rkyv::rancor;
use ::rkyv::Archive;

use super::{Connection, Receiver};
use crate::codec::{ArchiveGuard, Rkyv};
#[cfg(doc)]
use crate::error::Error;
use crate::error::Result;
use crate::message::Wait;

impl<T> Receiver<T, Rkyv>
where
    T: Archive,
    T::Archived: for<'v> CheckBytes<HighValidator<'v, rancor::Error>> + 'static,
{
    /// Receives the next message and returns its validated archive in place, blocking
    /// until it has arrived.
    ///
    /// The payload is read into the receiver's aligned buffer (a large one straight from
    /// the kernel, a small one from the read buffer), validated, and handed out without
    /// deserialisation or another copy. The returned guard holds the receiver's lock; see
    /// [`ArchiveGuard`]. To wait without blocking forever, [`poll`](Receiver::poll) first.
    ///
    /// # Errors
    ///
    /// - [`Error::Decode`] when the payload is not a valid archive of a `T` (bytecheck
    ///   refused it); the message is consumed and the next one is readable.
    /// - Otherwise as [`recv`](Receiver::recv).
    ///
    /// # Examples
    ///
    /// ```
    /// use procwire::codec::Rkyv;
    ///
    /// let (a, b) = procwire::duplex_with::<(u32, String), (u32, String), Rkyv>(Rkyv::new())?;
    /// a.send(&(1, "one".to_string()))?;
    /// let msg = b.recv_archived()?;
    /// assert_eq!((msg.0.to_native(), msg.1.as_str()), (1, "one"));
    ///
    /// a.send_bytes(b"not an archive")?;
    /// drop(msg);
    /// assert!(matches!(b.recv_archived(), Err(procwire::Error::Decode(_))));
    /// # Ok::<(), procwire::Error>(())
    /// ```
    pub fn recv_archived(&self) -> Result<ArchiveGuard<'_, T>> {
        self.io.recv_archived(Wait::Block)
    }

    /// Receives the next message's validated archive in place if a whole message is
    /// ready, without blocking; see [`recv_archived`](Receiver::recv_archived).
    ///
    /// # Errors
    ///
    /// - [`Error::Empty`] when no whole message is ready; nothing is lost.
    /// - Otherwise as [`recv_archived`](Receiver::recv_archived).
    ///
    /// # Examples
    ///
    /// ```
    /// use procwire::codec::Rkyv;
    ///
    /// let (tx, rx) = procwire::pipe_with::<u64, Rkyv>(Rkyv::new())?;
    /// assert!(matches!(rx.try_recv_archived(), Err(procwire::Error::Empty)));
    /// tx.send(&5)?;
    /// assert_eq!(rx.try_recv_archived()?.to_native(), 5);
    /// # Ok::<(), procwire::Error>(())
    /// ```
    pub fn try_recv_archived(&self) -> Result<ArchiveGuard<'_, T>> {
        self.io.recv_archived(Wait::Now)
    }

    /// Receives the next message's validated archive in place, waiting at most `timeout`
    /// for it to arrive whole; see [`recv_archived`](Receiver::recv_archived).
    ///
    /// # Errors
    ///
    /// - [`Error::Timeout`] when no whole message arrived in time; nothing is lost.
    /// - Otherwise as [`recv_archived`](Receiver::recv_archived).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use procwire::codec::Rkyv;
    ///
    /// let (tx, rx) = procwire::pipe_with::<u64, Rkyv>(Rkyv::new())?;
    /// let err = rx.recv_archived_timeout(Duration::from_millis(5)).unwrap_err();
    /// assert!(matches!(err, procwire::Error::Timeout));
    /// tx.send(&6)?;
    /// assert_eq!(rx.recv_archived_timeout(Duration::from_secs(5))?.to_native(), 6);
    /// # Ok::<(), procwire::Error>(())
    /// ```
    pub fn recv_archived_timeout(&self, timeout: Duration) -> Result<ArchiveGuard<'_, T>> {
        self.io.recv_archived(Wait::Within(timeout))
    }
}

impl<S, R> Connection<S, R, Rkyv>
where
    R: Archive,
    R::Archived: for<'v> CheckBytes<HighValidator<'v, rancor::Error>> + 'static,
{
    /// Receives the next message's validated archive in place; see
    /// [`Receiver::recv_archived`].
    ///
    /// # Errors
    ///
    /// As [`Receiver::recv_archived`].
    pub fn recv_archived(&self) -> Result<ArchiveGuard<'_, R>> {
        self.rx.recv_archived()
    }

    /// Receives the next message's validated archive without blocking; see
    /// [`Receiver::try_recv_archived`].
    ///
    /// # Errors
    ///
    /// As [`Receiver::try_recv_archived`].
    pub fn try_recv_archived(&self) -> Result<ArchiveGuard<'_, R>> {
        self.rx.try_recv_archived()
    }

    /// Receives the next message's validated archive within `timeout`; see
    /// [`Receiver::recv_archived_timeout`].
    ///
    /// # Errors
    ///
    /// As [`Receiver::recv_archived_timeout`].
    pub fn recv_archived_timeout(&self, timeout: Duration) -> Result<ArchiveGuard<'_, R>> {
        self.rx.recv_archived_timeout(timeout)
    }
}
