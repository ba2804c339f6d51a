//! The pairs: [`pipe`] and [`duplex`], like CPython's `Pipe(duplex=False)` and
//! `Pipe(duplex=True)`.

use std::sync::Arc;

use super::{Connection, Receiver, Sender};
use crate::error::Result;
use crate::transport::{self, Kind};
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
    let (read, write) = transport::pipe()?;
    Ok((
        Sender::from_fd(Arc::new(write), Kind::Pipe, codec.clone()),
        Receiver::from_fd(Arc::new(read), Kind::Pipe, codec),
    ))
}

/// A connected pair of duplex connections with the default codec, like CPython's
/// `Pipe(duplex=True)`: what one end sends as `A` the other receives as `A`.
///
/// Both ends are a `socketpair(AF_UNIX, SOCK_STREAM)`, close-on-exec.
///
/// # Errors
///
/// [`Error::Io`](crate::Error::Io) when the operating system refuses the socket pair
/// (for example, out of descriptors).
///
/// # Examples
///
/// ```
/// let (parent, child) = procwire::duplex::<String, u32>()?;
/// parent.send(&"ping".to_string())?;
/// assert_eq!(child.recv()?, "ping");
/// child.send(&7)?;
/// assert_eq!(parent.recv()?, 7);
/// # Ok::<(), procwire::Error>(())
/// ```
#[cfg(feature = "postcard")]
pub fn duplex<A, B>() -> Result<(Connection<A, B>, Connection<B, A>)> {
    duplex_with(Postcard)
}

/// A connected pair of duplex connections with codec `codec`; see [`duplex`].
///
/// # Errors
///
/// [`Error::Io`](crate::Error::Io) when the operating system refuses the socket pair.
///
/// # Examples
///
/// ```
/// let (a, b) = procwire::duplex_with::<u8, u8, _>(procwire::Postcard)?;
/// a.send(&1)?;
/// assert_eq!(b.recv()?, 1);
/// # Ok::<(), procwire::Error>(())
/// ```
#[allow(clippy::type_complexity)] // a pair of mirrored connections reads best spelled out
pub fn duplex_with<A, B, C: Clone>(codec: C) -> Result<(Connection<A, B, C>, Connection<B, A, C>)> {
    let (x, y) = transport::socketpair()?;
    Ok((
        Connection::from_socket(x, Kind::Unix, codec.clone()),
        Connection::from_socket(y, Kind::Unix, codec),
    ))
}
