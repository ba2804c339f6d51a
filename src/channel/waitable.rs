//! Receivers and connections as sources for [`wait`](crate::wait()) and
//! [`WaitSet`](crate::WaitSet).

use super::{Connection, Receiver};
use crate::message::Reader;
use crate::wait::{Probe, WaitSource, Waitable};

impl<T, C> Probe for Receiver<T, C> {
    fn buffered(&self) -> Option<bool> {
        self.io.try_reader(Reader::ready_held)
    }

    fn read_now(&self) -> bool {
        self.io.try_reader(Reader::poll_now).unwrap_or(true)
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
        WaitSource::receiver(self.io.fd(), self)
    }
}

/// Ready when the next receive will not block, as for a [`Receiver`].
impl<S, R, C> Waitable for Connection<S, R, C> {
    fn wait_source(&self) -> WaitSource<'_> {
        self.rx.wait_source()
    }
}
