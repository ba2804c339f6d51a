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
//! | TCP, Unix path, Linux abstract socket | `listener.rs`, `client.rs` (via `socket2`) | both | [`Listener`](crate::Listener), [`Client`](crate::Client) |
//! | named pipes (`fifo:///path`) | `fifo.rs` | both, as two FIFOs | [`Listener`](crate::Listener), [`Client`](crate::Client) |
//!
//! Windows named pipes are not provided: the crate builds for Unix only, and no Windows
//! target can be built or tested where it is developed. A Windows backend belongs in a
//! `transport/windows_pipe.rs` of its own: CPython's `AF_PIPE` uses message-mode pipes with
//! no length header (see `docs/wire-format.md`), so it would bypass `frame.rs`.

pub(crate) mod fifo;
mod pipe;
mod socketpair;

#[cfg(feature = "postcard")]
pub use self::pipe::pipe;
pub use self::pipe::pipe_with;
#[cfg(feature = "postcard")]
pub use self::socketpair::duplex;
pub use self::socketpair::duplex_with;
pub(crate) use self::socketpair::socketpair;

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
