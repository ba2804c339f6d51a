//! [`PeerCredentials`]: who is at the other end of a Unix-domain socket, as the kernel
//! saw it. The other kind of authentication: no key, nothing on the wire.

use std::fmt;
use std::os::fd::BorrowedFd;

use crate::error::{Error, Result};
use crate::transport::{self, Kind};

/// The process, user and group of the peer of a Unix-domain socket connection, recorded
/// by the kernel when the peer connected (or made the socket pair), so the peer cannot lie
/// about them. Read with [`Connection::peer_credentials`](crate::Connection::peer_credentials);
/// a [`Listener`](crate::Listener) can admit only given users or groups before any
/// handshake ([`ListenerBuilder::allow_uids`](crate::ListenerBuilder::allow_uids)).
///
/// These are the credentials at connect time: a peer that passed its socket on, or
/// changed its user since, still shows the old ones.
///
/// # Examples
///
/// ```
/// # #[cfg(target_os = "linux")] {
/// let (a, _b) = procwire::duplex::<(), ()>()?;
/// let peer = a.peer_credentials()?;
/// assert_eq!(peer.pid(), std::process::id());
/// # }
/// # Ok::<(), procwire::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PeerCredentials {
    pid: u32,
    uid: u32,
    gid: u32,
}

impl PeerCredentials {
    /// Reads the credentials of the peer of `fd`, a socket of `kind`.
    pub(crate) fn of(fd: BorrowedFd<'_>, kind: Kind) -> Result<PeerCredentials> {
        if kind != Kind::Unix {
            return Err(Error::Io(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "peer credentials exist only for Unix-domain sockets, not for TCP, pipes \
                 or FIFOs",
            )));
        }
        let (pid, uid, gid) = transport::unix::peer_credentials(fd)?;
        Ok(PeerCredentials { pid, uid, gid })
    }

    /// The peer's process id (`0` when the peer is in another PID namespace).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The peer's effective user id.
    pub fn uid(&self) -> u32 {
        self.uid
    }

    /// The peer's effective group id.
    pub fn gid(&self) -> u32 {
        self.gid
    }
}

impl fmt::Debug for PeerCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerCredentials")
            .field("pid", &self.pid)
            .field("uid", &self.uid)
            .field("gid", &self.gid)
            .finish()
    }
}

impl fmt::Display for PeerCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pid {} (uid {}, gid {})", self.pid, self.uid, self.gid)
    }
}
