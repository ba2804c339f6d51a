//! Anonymous pipes: the one-way pair, like CPython's `Pipe(duplex=False)`.

use std::os::fd::OwnedFd;

use rustix::pipe::PipeFlags;

use crate::error::Result;

/// A close-on-exec pipe: `(read end, write end)`, both [`Kind::Pipe`](super::Kind::Pipe).
pub(crate) fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    Ok(rustix::pipe::pipe_with(PipeFlags::CLOEXEC)?)
}
