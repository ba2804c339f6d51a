//! Named pipes (FIFOs): the `fifo:///path` family, with Listener/Client semantics.
//!
//! The rendezvous:
//!
//! 1. The listener makes a FIFO at the address (mode 0600) and keeps it open for reading,
//!    and once for writing itself, so that its reads never see end-of-file between clients.
//! 2. A client makes its own pair of FIFOs, `c2s` and `s2c` (mode 0600), in a fresh
//!    private directory, opens `s2c` for reading, and announces the pair to the listener
//!    with one write of at most `PIPE_BUF` bytes, which the kernel keeps whole, so the
//!    announcements of concurrent clients never interleave.
//! 3. The listener opens `c2s` for reading and `s2c` for writing; the client then opens
//!    `c2s` for writing. Every open is non-blocking: one that finds no peer fails at once
//!    instead of hanging, and the client retries only until its deadline.
//! 4. The client removes its pair as soon as both ends are open (the names are no longer
//!    needed), or when it gives up. The listener never removes a pair: an announcement can
//!    be forged, so it verifies the pair before opening it (`verify_pair`) and leaves
//!    alone what it did not make.
//!
//! The listener's rendezvous end and the two ends of an accepted pair are non-blocking:
//! the listener reads announcements only when its FIFO is readable, and authenticates a
//! client before its ends are made blocking.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rustix::fs::{FileType, Mode, OFlags, CWD};
use rustix::io::Errno;

use super::{back_off, Absent, EndpointFile};
use crate::error::{Error, Result};

/// The most an announcement may take: `PIPE_BUF` on Linux, the size the kernel writes whole.
const PIPE_BUF: usize = 4096;
const MAGIC: &[u8] = b"procwire-fifo1\0";

/// A read end and a write end: one connection over two FIFOs.
pub(crate) struct FifoPair {
    pub(crate) read: OwnedFd,
    pub(crate) write: OwnedFd,
}

/// The listening side: the rendezvous FIFO, open for reading.
#[derive(Debug)]
pub(crate) struct FifoListener {
    read: OwnedFd,
    _keep_open: OwnedFd,
    pending: Mutex<Vec<u8>>,
    /// The rendezvous FIFO, removed on close or drop if it is still ours.
    file: EndpointFile,
    /// Whether only the owner may write the rendezvous FIFO (its mode gives no write
    /// permission to the group or to others).
    owner_only: bool,
}

fn open(path: &Path, flags: OFlags) -> rustix::io::Result<OwnedFd> {
    rustix::fs::open(
        path,
        flags | OFlags::CLOEXEC | OFlags::NONBLOCK,
        Mode::empty(),
    )
}

fn is_fifo(path: &Path) -> Result<Option<bool>> {
    match rustix::fs::lstat(path) {
        Ok(st) => Ok(Some(FileType::from_raw_mode(st.st_mode) == FileType::Fifo)),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn make_fifo(path: &Path, mode: u32) -> Result<()> {
    rustix::fs::mkfifoat(CWD, path, Mode::from_raw_mode(mode & 0o600))?;
    // The umask can only have removed bits; set exactly what was asked.
    rustix::fs::chmod(path, Mode::from_raw_mode(mode))?;
    Ok(())
}

impl FifoListener {
    /// Makes the rendezvous FIFO at `path`: a stale one (nobody reading) is replaced, a live
    /// one is `AddrInUse`, anything that is not a FIFO is left alone (`AlreadyExists`).
    pub(crate) fn bind(path: &Path, mode: u32) -> Result<FifoListener> {
        match is_fifo(path)? {
            None => {}
            Some(false) => {
                return Err(Error::Io(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!(
                        "{} exists and is not a FIFO; not replacing it",
                        path.display()
                    ),
                )))
            }
            Some(true) => match open(path, OFlags::WRONLY) {
                Ok(_) => {
                    return Err(Error::Io(io::Error::new(
                        io::ErrorKind::AddrInUse,
                        format!("a listener is already serving {}", path.display()),
                    )))
                }
                Err(Errno::NXIO) => rustix::fs::unlink(path)?,
                Err(e) => return Err(e.into()),
            },
        }
        make_fifo(path, mode)?;
        let read = open(path, OFlags::RDONLY)?;
        let keep_open = open(path, OFlags::WRONLY)?;
        Ok(FifoListener {
            owner_only: mode & 0o022 == 0,
            read,
            _keep_open: keep_open,
            pending: Mutex::new(Vec::new()),
            file: EndpointFile::of(path)?,
        })
    }

    /// Stops listening and removes the rendezvous FIFO if it is still ours.
    pub(crate) fn close(self) -> Result<()> {
        Ok(self.file.remove()?)
    }

    /// Takes the next announced client without blocking.
    ///
    /// An announcement is only a line of text, which anybody allowed to write the
    /// rendezvous FIFO can forge, so the pair it names is verified before it is opened
    /// (see [`verify_pair`]) and the listener never removes anything it did not make: a
    /// pair that does not verify, or whose client is gone, is left where it is (a client
    /// removes its own pair once both ends are open or when it gives up).
    ///
    /// # Errors
    ///
    /// Only a failing read of the rendezvous FIFO; a bad announcement or a vanished client
    /// is [`Accepted::Failed`](super::Accepted::Failed).
    pub(crate) fn try_accept(&self) -> io::Result<super::Accepted> {
        let Some(announcement) = self.next_announcement()? else {
            return Ok(super::Accepted::Nothing);
        };
        match self.open_pair(&announcement) {
            Ok(pair) => Ok(super::Accepted::Client(
                super::Stream::Pipes {
                    read: pair.read,
                    write: pair.write,
                },
                None,
            )),
            Err(e) => Ok(super::Accepted::Failed(e)),
        }
    }

    /// Opens the pair an announcement names, both ends non-blocking, after checking it.
    fn open_pair(&self, announcement: &[u8]) -> Result<FifoPair> {
        let (c2s, s2c) = parse_announcement(announcement)?;
        let owner = verify_pair(&c2s, &s2c, self.owner_only)?;
        let read = open_verified(&c2s, OFlags::RDONLY, owner)?;
        let write = open_verified(&s2c, OFlags::WRONLY, owner).map_err(|e| match e {
            Error::Io(e) if e.raw_os_error() == Some(libc::ENXIO) => gone(&s2c),
            e => e,
        })?;
        Ok(FifoPair { read, write })
    }

    /// The next whole announcement line, if one has arrived.
    fn next_announcement(&self) -> io::Result<Option<Vec<u8>>> {
        let mut pending = self
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        loop {
            if let Some(end) = pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                return Ok(Some(line));
            }
            if pending.len() > PIPE_BUF {
                pending.clear(); // garbage without a newline: drop it and resynchronise
            }
            let mut chunk = [0u8; PIPE_BUF];
            match rustix::io::read(&self.read, &mut chunk) {
                Ok(n) => pending.extend_from_slice(&chunk[..n]),
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => return Ok(None),
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Checks the pair an announcement names before anything is opened, and returns its
/// owner: the directory must be a real directory (not a symbolic link) that only its owner
/// can enter (mode `0700` or stricter, as every client makes it), and `c2s` and `s2c`
/// FIFOs of that same owner, not links. When the rendezvous FIFO admits only its owner
/// (`owner_only`, the default mode), the pair must be ours as well.
///
/// What this cannot know is who wrote the announcement: a FIFO carries no credentials. A
/// local user allowed to write the rendezvous FIFO (a mode that opens it to a group or to
/// everyone) can name another user's pair, but can only make this listener open FIFOs it
/// already has the permissions to open, and nothing is ever removed.
fn verify_pair(c2s: &Path, s2c: &Path, owner_only: bool) -> Result<u32> {
    let dir = c2s
        .parent()
        .ok_or_else(|| bad_announcement("a path has no directory"))?;
    let st = rustix::fs::lstat(dir).map_err(|e| refused(dir, &e.to_string()))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
        return Err(refused(dir, "not a directory"));
    }
    if st.st_mode & 0o077 != 0 {
        return Err(refused(dir, "the directory is open to other users"));
    }
    let owner = st.st_uid;
    if owner_only && owner != rustix::process::geteuid().as_raw() {
        return Err(refused(
            dir,
            "the directory belongs to another user, and this FIFO admits only its owner",
        ));
    }
    for p in [c2s, s2c] {
        let st = rustix::fs::lstat(p).map_err(|e| match e {
            Errno::NOENT => gone(p),
            e => refused(p, &e.to_string()),
        })?;
        if FileType::from_raw_mode(st.st_mode) != FileType::Fifo {
            return Err(refused(p, "not a FIFO"));
        }
        if st.st_uid != owner {
            return Err(refused(p, "owned by another user than its directory"));
        }
    }
    Ok(owner)
}

/// Opens a FIFO of a verified pair without following links, and checks that what was
/// opened is still a FIFO of `owner` (the names could have been replaced in between).
fn open_verified(path: &Path, flags: OFlags, owner: u32) -> Result<OwnedFd> {
    let fd = open(path, flags | OFlags::NOFOLLOW)?;
    let st = rustix::fs::fstat(&fd)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::Fifo || st.st_uid != owner {
        return Err(refused(path, "replaced while it was being opened"));
    }
    Ok(fd)
}

fn refused(path: &Path, why: &str) -> Error {
    bad_announcement(&format!("{}: {why}; not opened", path.display()))
}

impl AsFd for FifoListener {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.read.as_fd()
    }
}

fn gone(path: &Path) -> Error {
    Error::Io(io::Error::new(
        io::ErrorKind::ConnectionAborted,
        format!(
            "the client of FIFO {} went away before it was served",
            path.display()
        ),
    ))
}

fn bad_announcement(why: &str) -> Error {
    Error::Protocol(format!("invalid FIFO announcement: {why}"))
}

/// `MAGIC` + c2s + NUL + s2c + newline.
fn announcement(c2s: &Path, s2c: &Path) -> Result<Vec<u8>> {
    let mut line = MAGIC.to_vec();
    for (i, p) in [c2s, s2c].into_iter().enumerate() {
        let bytes = p.as_os_str().as_bytes();
        if bytes.contains(&b'\n') || bytes.contains(&0) {
            return Err(Error::InvalidAddress(format!(
                "{:?}: FIFO paths may not contain newlines",
                p.display()
            )));
        }
        if i == 1 {
            line.push(0);
        }
        line.extend_from_slice(bytes);
    }
    line.push(b'\n');
    if line.len() > PIPE_BUF {
        return Err(Error::InvalidAddress(format!(
            "{:?}: FIFO paths too long to announce atomically",
            c2s.display()
        )));
    }
    Ok(line)
}

fn parse_announcement(line: &[u8]) -> Result<(PathBuf, PathBuf)> {
    let body = line
        .strip_prefix(MAGIC)
        .and_then(|b| b.strip_suffix(b"\n"))
        .ok_or_else(|| bad_announcement("unknown format"))?;
    let mut parts = body.split(|&b| b == 0);
    let (Some(c2s), Some(s2c), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad_announcement("expected two paths"));
    };
    let path = |b: &[u8]| PathBuf::from(OsStr::from_bytes(b));
    let (c2s, s2c) = (path(c2s), path(s2c));
    if !c2s.is_absolute() || c2s.parent() != s2c.parent() || c2s == s2c {
        return Err(bad_announcement(
            "paths must be two absolute names in one directory",
        ));
    }
    Ok((c2s, s2c))
}

/// Removes a client's pair and the private directory holding it.
fn remove_pair(c2s: &Path) {
    if let Some(dir) = c2s.parent() {
        for name in ["c2s", "s2c"] {
            let _ = std::fs::remove_file(dir.join(name));
        }
        let _ = std::fs::remove_dir(dir);
    }
}

/// Connects to the listener whose rendezvous FIFO is `path` before `deadline`; while it
/// does not exist yet or nobody reads it, retries only when `absent` says to wait.
pub(crate) fn connect(path: &Path, deadline: Instant, absent: Absent) -> Result<FifoPair> {
    let dir = crate::address::private_dir(&std::env::temp_dir(), "procwire-fifo-")?;
    let (c2s, s2c) = (dir.join("c2s"), dir.join("s2c"));
    let result = (|| {
        make_fifo(&c2s, 0o600)?;
        make_fifo(&s2c, 0o600)?;
        let read = open(&s2c, OFlags::RDONLY)?;
        let line = announcement(&c2s, &s2c)?;
        let rendezvous = retry(path, deadline, absent, || open(path, OFlags::WRONLY))?;
        // From here on the listener is there: wait for it to take its part.
        retry(path, deadline, Absent::Wait, || {
            match rustix::io::write(&rendezvous, &line) {
                Ok(n) if n == line.len() => Ok(()),
                Ok(_) => Err(Errno::IO), // cannot happen for writes of at most PIPE_BUF
                Err(e) => Err(e),
            }
        })?;
        let write = retry(path, deadline, Absent::Wait, || open(&c2s, OFlags::WRONLY))?;
        super::set_blocking(read.as_fd(), true)?;
        super::set_blocking(write.as_fd(), true)?;
        Ok(FifoPair { read, write })
    })();
    remove_pair(&c2s);
    result
}

/// The error for a rendezvous FIFO that does not exist (`NOENT`) or that nobody reads
/// (`NXIO`, reported as a refused connection).
fn no_listener(path: &Path, err: Errno) -> Error {
    let (kind, what) = if err == Errno::NXIO {
        (io::ErrorKind::ConnectionRefused, ": no listener reads it")
    } else {
        (io::ErrorKind::NotFound, "")
    };
    Error::Io(crate::error::Context::io(
        kind,
        format!("cannot connect to fifo://{}{what}", path.display()),
        err.into(),
        String::new(),
    ))
}

/// Runs `attempt` until it succeeds, retrying on "pipe full" until `deadline`, and on "no
/// reader yet" and "no such file yet" too when `absent` says to wait.
fn retry<T>(
    path: &Path,
    deadline: Instant,
    absent: Absent,
    mut attempt: impl FnMut() -> rustix::io::Result<T>,
) -> Result<T> {
    let mut pause = Duration::from_millis(1);
    loop {
        let err = match attempt() {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        let absent_listener = matches!(err, Errno::NXIO | Errno::NOENT);
        if absent_listener && absent == Absent::Fail {
            return Err(no_listener(path, err));
        }
        if !absent_listener && !matches!(err, Errno::AGAIN | Errno::INTR) {
            return Err(err.into());
        }
        if !back_off(&mut pause, Duration::from_millis(20), deadline) {
            return Err(Error::Io(crate::error::Context::io(
                io::ErrorKind::TimedOut,
                format!("cannot connect to fifo://{} in time", path.display()),
                err.into(),
                String::new(),
            )));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements_round_trip_and_garbage_is_refused() {
        let line = announcement(Path::new("/tmp/d/c2s"), Path::new("/tmp/d/s2c")).unwrap();
        assert!(line.len() <= PIPE_BUF);
        let (c2s, s2c) = parse_announcement(&line).unwrap();
        assert_eq!(
            (c2s.as_path(), s2c.as_path()),
            (Path::new("/tmp/d/c2s"), Path::new("/tmp/d/s2c"))
        );
        for bad in [
            &b"hello\n"[..],
            b"procwire-fifo1\0/a/c2s\n",
            b"procwire-fifo1\0rel/c2s\0rel/s2c\n",
            b"procwire-fifo1\0/a/c2s\0/b/s2c\n",
            b"procwire-fifo1\0/a/x\0/a/x\n",
            b"procwire-fifo1\0/a/c\0/a/s\0/a/t\n",
        ] {
            assert!(
                matches!(parse_announcement(bad), Err(Error::Protocol(_))),
                "{bad:?}"
            );
        }
    }
}
