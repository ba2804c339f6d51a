//! Unix-domain stream sockets: file-system paths (`/path`, `unix:///path`) and Linux
//! abstract names (`@name`), with `socket2`.
//!
//! A path socket is bound without a window in which others could connect before its mode
//! is set: it is bound inside a fresh 0700 staging directory next to the path, given its
//! mode, and renamed into place, refusing to replace a file that appeared meanwhile. A
//! stale socket file (nobody listens) is replaced; a live one or a path that is not a
//! socket is never touched. The listener removes its file on close only if the path still
//! names the same file (device and inode), and with it the private directory that
//! `Address::arbitrary` made.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use socket2::{Domain, SockAddr, Socket, Type};

use super::tcp::backlog;
use super::{
    back_off, close, connect_failed, retry_intr, Absent, BindOptions, EndpointFile, Kind, Stream,
};
use crate::address::Address;
use crate::error::{Error, Result};

/// A listening Unix-domain socket, and the file it made, if bound to a path.
#[derive(Debug)]
pub(crate) struct UnixListener {
    socket: Socket,
    file: Option<EndpointFile>,
}

impl UnixListener {
    /// Binds `path` with permissions `opts.mode`; see the module docs.
    pub(crate) fn bind_path(path: &Path, opts: BindOptions) -> Result<UnixListener> {
        let (socket, file) = bind_unix_path(path, opts.mode, backlog(opts.backlog))?;
        Ok(UnixListener {
            socket,
            file: Some(file),
        })
    }

    /// Binds the Linux abstract name `name`.
    pub(crate) fn bind_abstract(name: &[u8], opts: BindOptions) -> Result<UnixListener> {
        let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
        socket.bind(&abstract_sockaddr(name)?)?;
        socket.listen(backlog(opts.backlog))?;
        socket.set_nonblocking(true)?;
        Ok(UnixListener { socket, file: None })
    }

    /// Accepts one waiting client without blocking (`WouldBlock` when none waits); its
    /// address when it bound one (unnamed clients give `None`).
    pub(crate) fn try_accept(&self) -> io::Result<(Stream, Option<Address>)> {
        let (socket, peer) = retry_intr(|| self.socket.accept())?;
        super::accepted_blocking(&socket)?;
        let stream = Stream::Socket {
            fd: socket.into(),
            kind: Kind::Unix,
        };
        Ok((stream, peer_address(&peer)))
    }

    /// Removes the socket file if it is still ours, then closes the socket.
    pub(crate) fn close(self) -> Result<()> {
        let UnixListener { socket, file } = self;
        let removed = file.map_or(Ok(()), EndpointFile::remove);
        let closed = close(OwnedFd::from(socket));
        removed?;
        closed
    }
}

impl AsFd for UnixListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

fn peer_address(peer: &SockAddr) -> Option<Address> {
    if let Some(path) = peer.as_pathname() {
        return Some(Address::Unix(path.to_owned()));
    }
    peer.as_abstract_namespace()
        .map(|name| Address::Abstract(name.to_vec()))
}

/// Connects to a Unix path or abstract address, retrying until `deadline` while its
/// backlog is full, and while it does not exist yet or refuses when `absent` says to wait.
pub(crate) fn connect(addr: &Address, deadline: Instant, absent: Absent) -> Result<Stream> {
    let sa = sockaddr(addr)?;
    let mut pause = Duration::from_millis(1);
    loop {
        let err = match try_connect(&sa)? {
            Ok(socket) => {
                return Ok(Stream::Socket {
                    fd: socket.into(),
                    kind: Kind::Unix,
                })
            }
            Err(e) => e,
        };
        if !absent.retries(err.kind()) {
            return Err(connect_failed(addr, Some(err), false));
        }
        if !back_off(&mut pause, Duration::from_millis(50), deadline) {
            return Err(connect_failed(addr, Some(err), true));
        }
    }
}

/// The socket address of a Unix path or abstract address.
pub(crate) fn sockaddr(addr: &Address) -> Result<SockAddr> {
    match addr {
        Address::Unix(path) => Ok(SockAddr::unix(path)?),
        Address::Abstract(name) => abstract_sockaddr(name),
        other => Err(Error::Io(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{other} is not a Unix socket address"),
        ))),
    }
}

/// One connection attempt: the connected socket, or the error of `connect(2)`.
///
/// A Unix connect completes at once or fails at once: with `EAGAIN` when the listener's
/// backlog is full (which `connect_timeout` would misreport as a hang-up of the
/// unconnected socket), so the socket is made non-blocking for the attempt and the caller
/// retries that like a refusal.
pub(crate) fn try_connect(sa: &SockAddr) -> Result<io::Result<Socket>> {
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    socket.set_nonblocking(true)?;
    match socket.connect(sa) {
        Ok(()) => {
            socket.set_nonblocking(false)?;
            Ok(Ok(socket))
        }
        Err(e) => Ok(Err(e)),
    }
}

/// The socket address of a Linux abstract name.
fn abstract_sockaddr(name: &[u8]) -> Result<SockAddr> {
    if !cfg!(any(target_os = "linux", target_os = "android")) {
        return Err(Error::Io(io::Error::new(
            io::ErrorKind::Unsupported,
            "abstract socket addresses exist on Linux only",
        )));
    }
    use std::os::unix::ffi::OsStrExt;
    let mut raw = Vec::with_capacity(name.len() + 1);
    raw.push(0);
    raw.extend_from_slice(name);
    Ok(SockAddr::unix(std::ffi::OsStr::from_bytes(&raw))?)
}

/// Refuses a live or non-socket path; removes a stale socket file.
fn clear_stale(path: &Path) -> Result<()> {
    let md = match std::fs::symlink_metadata(path) {
        Ok(md) => md,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    if !md.file_type().is_socket() {
        return Err(Error::Io(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "{} exists and is not a socket; not replacing it",
                path.display()
            ),
        )));
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(Error::Io(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("a listener is already serving {}", path.display()),
        ))),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            std::fs::remove_file(path)?;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// Binds a Unix socket at `path` with permissions `mode`; see the module docs.
fn bind_unix_path(path: &Path, mode: u32, backlog: i32) -> Result<(Socket, EndpointFile)> {
    clear_stale(path)?;
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let staging = crate::address::private_dir(parent, ".procwire-")?;
    let staged = staging.join("s");
    let result = (|| -> Result<()> {
        if staged.as_os_str().len() > crate::address::MAX_UNIX_PATH {
            // No room for the staging path: bind in place and set the mode right after.
            socket.bind(&SockAddr::unix(path)?)?;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
            return Ok(());
        }
        socket.bind(&SockAddr::unix(&staged)?)?;
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(mode))?;
        rename_no_replace(&staged, path)
    })();
    let _ = std::fs::remove_file(&staged);
    let _ = std::fs::remove_dir(&staging);
    result?;
    socket.listen(backlog)?;
    socket.set_nonblocking(true)?;
    Ok((socket, EndpointFile::of(path)?))
}

fn rename_no_replace(from: &Path, to: &Path) -> Result<()> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    match renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::EXIST) => Err(Error::Io(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("{} appeared while binding; not replacing it", to.display()),
        ))),
        // A filesystem without RENAME_NOREPLACE: `clear_stale` checked the path already.
        Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => Ok(std::fs::rename(from, to)?),
        Err(e) => Err(e.into()),
    }
}

/// The process, user and group of the peer of a connected Unix-domain socket, as the
/// kernel recorded them when it connected (`SO_PEERCRED`).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn peer_credentials(fd: BorrowedFd<'_>) -> io::Result<(u32, u32, u32)> {
    let cred = rustix::net::sockopt::socket_peercred(fd)?;
    Ok((
        cred.pid.as_raw_nonzero().get() as u32,
        cred.uid.as_raw(),
        cred.gid.as_raw(),
    ))
}

/// The user and group of the peer of a connected Unix-domain socket (`getpeereid`); the
/// process is not known.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn peer_credentials(_fd: BorrowedFd<'_>) -> io::Result<(u32, u32, u32)> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "peer credentials are read with SO_PEERCRED, which only Linux and Android have",
    ))
}
