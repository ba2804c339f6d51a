//! `socketpair(AF_UNIX, SOCK_STREAM)`: the duplex pair, like CPython's `Pipe(duplex=True)`.

use std::os::fd::OwnedFd;

use rustix::net::{AddressFamily, SocketFlags, SocketType};

use crate::error::Result;

/// Two connected, close-on-exec stream sockets, both [`Kind::Unix`](super::Kind::Unix).
pub(crate) fn socketpair() -> Result<(OwnedFd, OwnedFd)> {
    Ok(rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )?)
}
