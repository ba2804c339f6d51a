//! Receivers and connections as sources for [`wait`](crate::wait()) and
//! [`WaitSet`](crate::WaitSet).

use std::sync::TryLockError;

use super::{Connection, Receiver};
use crate::connection::Reader;
use crate::wait::{Probe, WaitSource, Waitable};

impl<T, C> Receiver<T, C> {
    /// Runs `f` on the reader unless another thread holds the receiver.
    fn try_reader<R>(&self, f: impl FnOnce(&mut Reader) -> R) -> Option<R> {
        match self.inp.try_lock() {
            Ok(mut inp) => Some(f(&mut inp.reader)),
            Err(TryLockError::Poisoned(p)) => Some(f(&mut p.into_inner().reader)),
            Err(TryLockError::WouldBlock) => None,
        }
    }
}

impl<T, C> Probe for Receiver<T, C> {
    fn buffered(&self) -> Option<bool> {
        self.try_reader(|r| r.ready_buffered())
    }

    fn read_now(&self) -> bool {
        self.try_reader(Reader::poll_now).unwrap_or(true)
    }
}

/// Ready when the next receive will not block: a whole message is buffered, the stream
/// ended, or an error is pending.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// let (tx, rx) = procwire::pipe::<u8>()?;
/// assert!(procwire::wait(&[&rx], Some(Duration::ZERO))?.is_empty());
/// tx.send(&1)?;
/// assert_eq!(procwire::wait(&[&rx], None)?, [0]);
/// # Ok::<(), procwire::Error>(())
/// ```
impl<T, C> Waitable for Receiver<T, C> {
    fn wait_source(&self) -> WaitSource<'_> {
        WaitSource::receiver(&self.fd, self)
    }
}

/// Ready when the next receive will not block, as for a [`Receiver`].
impl<S, R, C> Waitable for Connection<S, R, C> {
    fn wait_source(&self) -> WaitSource<'_> {
        self.rx.wait_source()
    }
}
