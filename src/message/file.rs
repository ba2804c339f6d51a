//! Whole files as single messages, at the frame level.
//!
//! Sending: the frame header goes out first, then the file's bytes with `sendfile(2)`, which
//! the kernel copies from the page cache to the socket or pipe without passing them through
//! user space (Linux). Where `sendfile` is unavailable or refuses the pair of descriptors,
//! the bytes are read in [`CHUNK`]-sized pieces and written. A file that turns out shorter
//! than the length announced in the header (it shrank while being sent) cannot be finished:
//! the writer is then broken for good (a socket is shut down for writing, so the peer's
//! receive ends with `Error::Truncated`), and every later send fails instead of putting
//! bytes on a misaligned stream.
//!
//! Receiving: the payload goes from the kernel to the read buffer to the destination in
//! pieces of at most the buffer's size, so memory stays bounded whatever the file's size.

use std::fs::{self, File, OpenOptions};
use std::io::{self, IoSlice, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::progress::{Report, STEP};
use super::{MessageReceiver, Reader, Wait, Writer};
use crate::error::{Error, Result};
use crate::frame::Header;
use crate::transport;

/// The piece size of the read-and-write fallback, and the most one `sendfile` call moves.
const CHUNK: usize = 256 << 10;

/// The most one `sendfile` call is asked to move (Linux moves at most `0x7ffff000`).
#[cfg(any(target_os = "linux", target_os = "android"))]
const SENDFILE_MAX: u64 = 1 << 30;

impl Writer {
    /// Sends the first `len` bytes of `file` as one frame.
    ///
    /// With `report`, the bytes the kernel has taken are reported after each call that
    /// moved some, and `sendfile` moves at most [`STEP`] bytes a call.
    pub(crate) fn send_file(
        &mut self,
        file: &File,
        len: u64,
        mut report: Option<&mut Report<'_>>,
    ) -> Result<()> {
        self.finish_unsent()?;
        let header = Header::for_payload(len).encode();
        self.write_all(&mut [IoSlice::new(&header)])?;
        self.copy_file(file, len, report.as_deref_mut())
            .inspect_err(|_| self.break_stream())?;
        if let Some(report) = report {
            report.end();
        }
        Ok(())
    }

    /// Marks the writer unusable after a frame was left unfinished, and shuts a socket down
    /// for writing so that the peer sees the stream end inside the message.
    fn break_stream(&mut self) {
        self.broken = true;
        if self.kind.is_socket() {
            let _ = rustix::net::shutdown(&*self.fd, rustix::net::Shutdown::Write);
        }
    }

    /// Copies `len` bytes of `file` from offset 0 to the descriptor.
    fn copy_file(&self, file: &File, len: u64, mut report: Option<&mut Report<'_>>) -> Result<()> {
        #[cfg(feature = "tls")]
        if self.tls.is_some() {
            // The bytes must pass through the session to be encrypted.
            return self.copy_by_reading(file, 0, len, report);
        }
        #[cfg(any(target_os = "linux", target_os = "android"))]
        let offset = match self.sendfile(file, len, report.as_deref_mut()) {
            Ok(()) => return Ok(()),
            Err(Stop::Refused) => 0,
            Err(Stop::Failed(e)) => return Err(e),
        };
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        let offset = 0;
        self.copy_by_reading(file, offset, len, report)
    }

    /// Copies with `sendfile`; [`Stop::Refused`] when the kernel refuses it for these
    /// descriptors (a file system without `splice` support, say).
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn sendfile(
        &self,
        file: &File,
        len: u64,
        mut report: Option<&mut Report<'_>>,
    ) -> Result<(), Stop> {
        let most = if report.is_some() {
            STEP as u64
        } else {
            SENDFILE_MAX
        };
        let mut offset = 0u64;
        while offset < len {
            let count = (len - offset).min(most) as usize;
            let sent = transport::without_sigpipe(|| {
                rustix::fs::sendfile(&*self.fd, file, Some(&mut offset), count)
                    .map_err(io::Error::from)
            });
            match sent {
                Ok(0) => return Err(Stop::Failed(shrunk(offset, len))),
                Ok(_) => {
                    if let Some(report) = report.as_deref_mut() {
                        report.at(offset);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_unsupported(&e) && offset == 0 => return Err(Stop::Refused),
                Err(e) => return Err(Stop::Failed(e.into())),
            }
        }
        Ok(())
    }

    /// Copies by reading pieces of [`CHUNK`] bytes at explicit offsets and writing them.
    fn copy_by_reading(
        &self,
        file: &File,
        mut offset: u64,
        len: u64,
        mut report: Option<&mut Report<'_>>,
    ) -> Result<()> {
        use std::os::unix::fs::FileExt;
        let mut buf = vec![0u8; CHUNK.min(len.saturating_sub(offset) as usize)];
        while offset < len {
            let want = (len - offset).min(buf.len() as u64) as usize;
            let n = match file.read_at(&mut buf[..want], offset) {
                Ok(0) => return Err(shrunk(offset, len)),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            self.write_all(&mut [IoSlice::new(&buf[..n])])?;
            offset += n as u64;
            if let Some(report) = report.as_deref_mut() {
                report.at(offset);
            }
        }
        Ok(())
    }
}

/// Why `sendfile` stopped early.
#[cfg(any(target_os = "linux", target_os = "android"))]
enum Stop {
    /// The kernel refuses `sendfile` for these descriptors before anything was copied:
    /// copy by reading instead.
    Refused,
    /// A real failure.
    Failed(Error),
}

/// Whether `sendfile` refused the pair of descriptors (rather than failing to write).
#[cfg(any(target_os = "linux", target_os = "android"))]
fn is_unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP | libc::ESPIPE)
    )
}

/// The error for a file that ended at `offset`, before the `len` bytes its header announced.
fn shrunk(offset: u64, len: u64) -> Error {
    Error::Io(io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!(
            "file ended after {offset} of the {len} bytes announced (it shrank while being sent); \
             the connection can no longer send"
        ),
    ))
}

impl Reader {
    /// Receives one message of at most `limit` bytes (which may exceed the maximum message
    /// size) and writes its payload to `out` in pieces of at most the read buffer's size.
    ///
    /// When `out` fails, the rest of the payload is still read (and dropped), so the stream
    /// stays aligned at the next message; then `out`'s error is returned. When reading the
    /// connection fails inside the payload, the stream cannot be re-aligned: that error is
    /// returned, and every later receive fails with `Error::Truncated`.
    ///
    /// With `progress`, the payload bytes received are reported to it after each read.
    pub(crate) fn recv_to(
        &mut self,
        limit: u64,
        out: &mut dyn Write,
        progress: Option<&mut dyn FnMut(u64, u64)>,
    ) -> Result<u64> {
        let header = self.next_header_within(limit)?;
        let len = header.payload_len();
        let mut report = progress.map(|f| Report::new(f, len));
        let mut done = 0u64;
        let mut failed = None;
        while done < len {
            if self.dec.buffered_len() == 0 {
                let want = (len - done).min(self.dec.capacity() as u64) as usize;
                let Reader { fd, dec, anc, .. } = self;
                let read = anc.read_blocking(fd.as_fd(), dec.spare(want, want));
                let received = header.header_len() as u64 + done;
                match read {
                    Ok(0) => return Err(self.dec.eof(received, header.frame_len())),
                    Ok(n) => self.dec.filled(n),
                    Err(e) => {
                        // Stop the stream where it broke, so no receive reads the rest of
                        // this payload as a message.
                        let _ = self.dec.eof(received, header.frame_len());
                        return Err(e);
                    }
                }
            }
            let n = self.dec.buffered_len().min((len - done) as usize);
            let piece = self.dec.take(n);
            if failed.is_none() {
                failed = out.write_all(piece).err();
            }
            done += n as u64;
            if let Some(report) = report.as_mut() {
                report.at(done);
            }
        }
        self.finish_message();
        if let Some(report) = report.as_mut() {
            report.end();
        }
        failed.map_or(Ok(len), |e| Err(e.into()))
    }

    /// Reads the next header, refusing (as `MessageTooLarge`) a payload above `limit`
    /// instead of the receiver's own maximum.
    fn next_header_within(&mut self, limit: u64) -> Result<Header> {
        let max = self.dec.max_message_size();
        self.dec.set_max_message_size(limit);
        let header = self.next_header();
        self.dec.set_max_message_size(max);
        header
    }
}

impl<X> MessageReceiver<X> {
    /// Receives one message of at most `limit` bytes into a new file at `dest`, written
    /// beside it under a temporary name and renamed into place only when whole; its
    /// length.
    ///
    /// Every failure to make, write, sync or rename the file still consumes the message, so
    /// the stream stays aligned: when the file cannot be created, the message is read and
    /// dropped, and the creation error is returned (unless receiving the message fails
    /// itself, whose error then comes first, as it says more about the connection).
    ///
    /// With `progress`, the bytes received are reported to it (see `progress.rs`).
    pub(crate) fn recv_file(
        &self,
        dest: &Path,
        limit: u64,
        progress: Option<&mut dyn FnMut(u64, u64)>,
    ) -> Result<u64> {
        let mut tmp = match TempFile::beside(dest) {
            Ok(tmp) => tmp,
            Err(e) => {
                self.recv_to(limit, &mut io::sink(), Wait::Block, None)?;
                return Err(e);
            }
        };
        let len = self.recv_to(limit, &mut tmp.file, Wait::Block, progress)?;
        tmp.persist(dest)?;
        Ok(len)
    }
}

/// `e`, with what was being done to which path in its message; its kind is kept.
fn on_path(e: io::Error, what: &str, path: &Path) -> Error {
    Error::Io(io::Error::new(
        e.kind(),
        format!("cannot {what} {}: {e}", path.display()),
    ))
}

/// A temporary file beside its destination, removed when dropped unless persisted.
struct TempFile {
    file: File,
    path: PathBuf,
    persisted: bool,
}

impl TempFile {
    /// Creates `.<name>.<random>.part` in `dest`'s directory: a new file (never an existing
    /// one, so no symlink or other file is followed), mode 0o600, close-on-exec (as every
    /// file std opens).
    fn beside(dest: &Path) -> Result<TempFile> {
        let name = dest.file_name().ok_or_else(|| {
            Error::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{} names no file", dest.display()),
            ))
        })?;
        let mut rnd = [0u8; 8];
        getrandom::fill(&mut rnd).map_err(|e| Error::Io(std::io::Error::other(e.to_string())))?;
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".{:016x}.part", u64::from_ne_bytes(rnd)));
        let path = dest.with_file_name(tmp_name);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| on_path(e, "create the temporary file", &path))?;
        Ok(TempFile {
            file,
            path,
            persisted: false,
        })
    }

    /// Syncs the file and renames it to `dest`.
    fn persist(&mut self, dest: &Path) -> Result<()> {
        self.file
            .sync_all()
            .map_err(|e| on_path(e, "sync", &self.path))?;
        fs::rename(&self.path, dest).map_err(|e| {
            let what = format!("rename {} to", self.path.display());
            on_path(e, &what, dest)
        })?;
        self.persisted = true;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.persisted {
            let _ = fs::remove_file(&self.path);
        }
    }
}
