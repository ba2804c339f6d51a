//! Anonymous pipes: the one-way pair, like CPython's `Pipe(duplex=False)`.

use std::sync::Arc;

use rustix::pipe::PipeFlags;

use crate::channel::{Receiver, Sender};
use crate::connection::FdKind;
use crate::error::Result;
#[cfg(feature = "postcard")]
use crate::Postcard;

/// A one-way channel over an anonymous pipe with the default codec, like CPython's
/// `Pipe(duplex=False)` (which returns the reader first; this returns the sender first,
/// like `std::sync::mpsc::channel`).
///
/// Both descriptors are close-on-exec. Sending after the receiver is gone is an
/// [`Error::Io`](crate::Error::Io) of kind `BrokenPipe`, never a `SIGPIPE`, even in a
/// process that has not set `SIGPIPE` to be ignored.
///
/// # Errors
///
/// [`Error::Io`](crate::Error::Io) when the operating system refuses the pipe.
///
/// # Examples
///
/// ```
/// let (tx, rx) = procwire::pipe::<String>()?;
/// tx.send(&"hello".to_string())?;
/// assert_eq!(rx.recv()?, "hello");
/// # Ok::<(), procwire::Error>(())
/// ```
#[cfg(feature = "postcard")]
pub fn pipe<T>() -> Result<(Sender<T>, Receiver<T>)> {
    pipe_with(Postcard)
}

/// A one-way channel over an anonymous pipe with codec `codec`; see [`pipe`].
///
/// # Errors
///
/// [`Error::Io`](crate::Error::Io) when the operating system refuses the pipe.
///
/// # Examples
///
/// ```
/// let (tx, rx) = procwire::pipe_with::<u8, _>(procwire::Postcard)?;
/// tx.send(&3)?;
/// assert_eq!(rx.recv()?, 3);
/// # Ok::<(), procwire::Error>(())
/// ```
pub fn pipe_with<T, C: Clone>(codec: C) -> Result<(Sender<T, C>, Receiver<T, C>)> {
    let (read, write) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC)?;
    Ok((
        Sender::from_fd(Arc::new(write), FdKind::Pipe, codec.clone()),
        Receiver::from_fd(Arc::new(read), codec),
    ))
}
