//! Parent/child: start a program with a typed connection already open to it.
//!
//! The parent makes a `socketpair`, and the child inherits its end as a descriptor: no
//! filesystem, no network. The descriptor's number and the socket's inode go to the child in
//! the environment variable [`Child::PARENT_FD_ENV`]; [`from_parent`] checks both before claiming
//! the descriptor, so a grandchild that inherited the variable cannot pick up an unrelated
//! descriptor by mistake. Every other descriptor procwire makes is close-on-exec, and the
//! child's end is made close-on-exec again as soon as the child claims it.

#![allow(unsafe_code)] // passing a descriptor across exec needs `pre_exec` and `from_raw_fd`

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::channel::Connection;
use crate::error::{Error, Result};
use crate::transport::{socketpair, Kind};
#[cfg(feature = "postcard")]
use crate::Postcard;

mod child;

pub use self::child::Child;

/// The environment variable through which [`spawn`] tells the child where its connection is.
pub(crate) const PARENT_FD_ENV: &str = "PROCWIRE_FD";

static CLAIMED: AtomicBool = AtomicBool::new(false);

/// Starts `cmd` as a child process with a duplex connection to it, using the default codec.
///
/// The parent sends `S` and receives `R`; the child calls
/// [`from_parent::<R, S>()`](from_parent) to get the other end. `cmd` is taken by value
/// because the descriptor it passes is valid for this one start only.
///
/// If the child exits without answering, the parent's receive returns
/// [`Error::Disconnected`] as soon as it has exited (or closed its end), instead of hanging.
///
/// # Errors
///
/// [`Error::Io`] when the socket pair cannot be made or the program cannot be started.
///
/// # Examples
///
/// ```no_run
/// use std::process::Command;
///
/// let mut cmd = Command::new(std::env::current_exe()?);
/// cmd.arg("--worker");
/// let (mut child, conn) = procwire::spawn::<String, usize>(cmd)?;
/// conn.send(&"hello".to_string())?;
/// let len = conn.recv()?;
/// assert_eq!(len, 5);
/// child.wait()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[cfg(feature = "postcard")]
pub fn spawn<S, R>(cmd: Command) -> Result<(Child, Connection<S, R>)> {
    spawn_with(cmd, Postcard)
}

/// Starts `cmd` as a child process with a duplex connection using `codec`; see [`spawn`].
///
/// # Errors
///
/// [`Error::Io`] when the socket pair cannot be made or the program cannot be started; the
/// text names the program and the cause ("cannot spawn ./missing: No such file or
/// directory (os error 2)").
pub fn spawn_with<S, R, C: Clone>(
    mut cmd: Command,
    codec: C,
) -> Result<(Child, Connection<S, R, C>)> {
    let (ours, theirs) = socketpair()?;
    let raw = theirs.as_raw_fd();
    cmd.env(PARENT_FD_ENV, format!("{raw}:{}", inode(raw)?));
    // SAFETY: the closure runs in the forked child before exec and only calls `fcntl`,
    // which is async-signal-safe; it allocates nothing and touches no locks. `raw` stays
    // open in the parent (owned by `theirs`) until `spawn` has returned, and `cmd` is
    // consumed here, so the closure can never run for another start with a stale number.
    unsafe {
        cmd.pre_exec(move || {
            if libc::fcntl(raw, libc::F_SETFD, 0) == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|e| {
        let program = std::path::Path::new(cmd.get_program())
            .display()
            .to_string();
        Error::Io(crate::error::Context::wrap(
            format!("cannot spawn {program}"),
            e,
        ))
    })?;
    drop(theirs);
    Ok((
        Child::new(child),
        Connection::from_socket(ours, Kind::Unix, codec),
    ))
}

/// In a child started by [`spawn`], claims the connection to the parent (default codec).
///
/// The child sends `S` and receives `R`: the parent's `spawn::<R, S>` mirrors it. The
/// connection can be claimed once per process; the descriptor is made close-on-exec, so
/// it does not leak into the child's own children.
///
/// # Errors
///
/// [`Error::Io`] when this process was not started by [`spawn`] (the variable
/// [`Child::PARENT_FD_ENV`] is missing or does not name the inherited socket), or when the
/// connection was already claimed.
///
/// # Examples
///
/// ```no_run
/// let conn = procwire::from_parent::<usize, String>()?;
/// while let Ok(text) = conn.recv() {
///     conn.send(&text.len())?;
/// }
/// # Ok::<(), procwire::Error>(())
/// ```
#[cfg(feature = "postcard")]
pub fn from_parent<S, R>() -> Result<Connection<S, R>> {
    from_parent_with(Postcard)
}

/// In a child started by [`spawn_with`], claims the connection to the parent with `codec`;
/// see [`from_parent`].
///
/// # Errors
///
/// As [`from_parent`].
pub fn from_parent_with<S, R, C: Clone>(codec: C) -> Result<Connection<S, R, C>> {
    let value = std::env::var(PARENT_FD_ENV).map_err(|_| {
        not_found(format!(
            "{PARENT_FD_ENV} is not set: this process was not started by procwire::spawn"
        ))
    })?;
    let (fd, ino) = parse_env(&value)
        .ok_or_else(|| not_found(format!("{PARENT_FD_ENV} has an invalid value {value:?}")))?;
    if CLAIMED.swap(true, Ordering::AcqRel) {
        return Err(Error::Io(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "the connection to the parent was already claimed",
        )));
    }
    let owned = claim(fd, ino).inspect_err(|_| CLAIMED.store(false, Ordering::Release))?;
    // The parent's end of a `socketpair` (checked by `claim`).
    Ok(Connection::from_socket(owned, Kind::Unix, codec))
}

fn not_found(msg: String) -> Error {
    Error::Io(io::Error::new(io::ErrorKind::NotFound, msg))
}

fn parse_env(value: &str) -> Option<(RawFd, u64)> {
    let (fd, ino) = value.split_once(':')?;
    let fd: RawFd = fd.parse().ok()?;
    (fd >= 0).then_some(())?;
    Some((fd, ino.parse().ok()?))
}

fn fstat(fd: RawFd) -> io::Result<libc::stat> {
    let mut st = MaybeUninit::<libc::stat>::zeroed();
    // SAFETY: `fstat` only writes `st`, which is valid memory for a `stat`; a descriptor
    // that is not open gives `EBADF` and touches nothing.
    if unsafe { libc::fstat(fd, st.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fstat` succeeded and filled `st`.
    Ok(unsafe { st.assume_init() })
}

fn inode(fd: RawFd) -> Result<u64> {
    Ok(fstat(fd)?.st_ino)
}

/// Takes ownership of the inherited socket `fd` after checking it is the one our parent
/// made (a socket with inode `ino`).
fn claim(fd: RawFd, ino: u64) -> Result<OwnedFd> {
    let st = fstat(fd).map_err(|e| {
        not_found(format!(
            "{PARENT_FD_ENV} names descriptor {fd}, which is not open here ({e})"
        ))
    })?;
    if st.st_mode & libc::S_IFMT != libc::S_IFSOCK || st.st_ino != ino {
        return Err(not_found(format!(
            "{PARENT_FD_ENV} names descriptor {fd}, which is not the socket the parent passed"
        )));
    }
    // SAFETY: `fd` is open (fstat succeeded) and is the very socket our parent passed
    // (same inode), which nothing else in this process owns; `CLAIMED` ensures it is
    // wrapped in an `OwnedFd` only once.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    rustix::io::fcntl_setfd(&owned, rustix::io::FdFlags::CLOEXEC)?;
    Ok(owned)
}

#[cfg(test)]
mod tests {
    use super::parse_env;

    #[test]
    fn env_value_parses_fd_and_inode() {
        assert_eq!(parse_env("3:12345"), Some((3, 12345)));
        assert_eq!(parse_env("3"), None);
        assert_eq!(parse_env("-1:5"), None);
        assert_eq!(parse_env("x:5"), None);
        assert_eq!(parse_env("3:"), None);
    }
}
