//! `socketpair(AF_UNIX, SOCK_STREAM)`: the duplex pair, like CPython's `Pipe(duplex=True)`.

use std::os::fd::OwnedFd;

use rustix::net::{AddressFamily, SocketFlags, SocketType};

use crate::channel::Connection;
use crate::error::Result;
#[cfg(feature = "postcard")]
use crate::Postcard;

/// Two connected, close-on-exec stream sockets.
pub(crate) fn socketpair() -> Result<(OwnedFd, OwnedFd)> {
    Ok(rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )?)
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
    let (x, y) = socketpair()?;
    Ok((
        Connection::from_socket(x, codec.clone()),
        Connection::from_socket(y, codec),
    ))
}
