//! Transports: where a connection's descriptor comes from.
//!
//! Every transport provides a connected, close-on-exec, blocking stream descriptor and says
//! how it is written without `SIGPIPE` ([`FdKind`](crate::connection::FdKind)). Above that,
//! framing, buffering, polling and codecs are the same for all of them.
//!
//! | transport | file | directions | made by |
//! | --- | --- | --- | --- |
//! | `socketpair(AF_UNIX, SOCK_STREAM)` | `socketpair.rs` | both | [`duplex`](crate::duplex), [`spawn`](crate::spawn) |
//! | anonymous pipe | `pipe.rs` | one | [`pipe`](crate::pipe) |
//!
//! Windows named pipes are not provided: the crate builds for Unix only.

mod pipe;
mod socketpair;

pub use self::pipe::pipe_with;
#[cfg(feature = "postcard")]
pub use self::pipe::pipe;
pub(crate) use self::socketpair::socketpair;
pub use self::socketpair::duplex_with;
#[cfg(feature = "postcard")]
pub use self::socketpair::duplex;

use std::os::fd::{IntoRawFd, OwnedFd};

use crate::error::Result;

/// Closes `fd`, reporting the error `close(2)` gives (which dropping an `OwnedFd` ignores).
#[allow(unsafe_code)]
pub(crate) fn close(fd: OwnedFd) -> Result<()> {
    let raw = fd.into_raw_fd();
    // SAFETY: `raw` came from `into_raw_fd`, so we own it and nothing else will use or
    // close it; it is closed exactly once, here.
    let rc = unsafe { libc::close(raw) };
    if rc == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    // On Linux the descriptor is released even when close is interrupted.
    if err.kind() == std::io::ErrorKind::Interrupted {
        return Ok(());
    }
    Err(err.into())
}
