//! The write side of a connection: whole frames, header and payload in one write.

use std::io::{self, IoSlice};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use super::nonblocking::Unsent;
use crate::error::Result;
use crate::frame::{Header, MAX_HEADER_LEN};
use crate::transport::{self, Kind};

/// The largest payload [`Writer::send_frame`] copies behind its header to send in one piece.
pub(super) const SMALL_FRAME: usize = 2048;

/// The write side of a connection.
#[derive(Debug)]
pub(crate) struct Writer {
    pub(super) fd: Arc<OwnedFd>,
    pub(super) kind: Kind,
    pub(super) unsent: Unsent,
    /// Set when a frame was left unfinished for good (a file that shrank while being
    /// sent): every later send fails instead of writing onto a misaligned stream.
    pub(super) broken: bool,
    /// Where a small frame is put together: allocated once with the writer, so a small
    /// send neither zeroes nor allocates a buffer.
    pub(super) small: Box<[u8; MAX_HEADER_LEN + SMALL_FRAME]>,
    /// The TLS session every write goes through, on a TLS connection.
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<Arc<crate::transport::tls::Session>>,
    /// Large-message hook: the memfd pool of a sender that enabled it (`large.rs`).
    pub(super) large: Option<Box<super::large::Outbound>>,
}

impl Writer {
    pub(crate) fn new(fd: Arc<OwnedFd>, kind: Kind) -> Writer {
        Writer {
            fd,
            kind,
            unsent: Unsent::default(),
            broken: false,
            small: Box::new([0; MAX_HEADER_LEN + SMALL_FRAME]),
            #[cfg(feature = "tls")]
            tls: None,
            large: None,
        }
    }

    /// Writes one whole frame: header and payload leave in one write unless the kernel
    /// takes only part, and then the rest follows. The rest of a frame an earlier deadline
    /// interrupted goes out first.
    ///
    /// A payload of up to [`SMALL_FRAME`] bytes is copied behind its header into the
    /// writer's own buffer and leaves with one plain `send`/`write`, which the kernel
    /// handles measurably faster than a two-part vectored write; larger ones go out with
    /// `sendmsg`/`writev`, uncopied.
    pub(crate) fn send_frame(&mut self, payload: &[u8]) -> Result<()> {
        self.finish_unsent()?;
        let header = Header::for_payload(payload.len() as u64).encode();
        if payload.len() <= SMALL_FRAME {
            let len = self.assemble_small(&header, payload);
            return self.write_all(&mut [IoSlice::new(&self.small[..len])]);
        }
        self.write_all(&mut [IoSlice::new(&header), IoSlice::new(payload)])
    }

    /// Sends `payload` as one frame, before `deadline` when there is one; see
    /// [`send_frame`](Writer::send_frame) and [`send_frame_until`](Writer::send_frame_until).
    #[inline]
    pub(crate) fn send(
        &mut self,
        payload: &[u8],
        deadline: Option<std::time::Instant>,
    ) -> Result<()> {
        match deadline {
            Some(d) => self.send_frame_until(payload, d),
            None => self.send_frame(payload),
        }
    }

    /// Copies `header` and then `payload` (together at most
    /// `MAX_HEADER_LEN + SMALL_FRAME` bytes) into the small-frame buffer; their length.
    pub(super) fn assemble_small(&mut self, header: &[u8], payload: &[u8]) -> usize {
        let len = header.len() + payload.len();
        self.small[..header.len()].copy_from_slice(header);
        self.small[header.len()..len].copy_from_slice(payload);
        len
    }

    /// Whether a send must first finish (or refuse because of) an earlier frame.
    #[cfg_attr(not(any(feature = "tokio", feature = "async-io")), allow(dead_code))]
    pub(crate) fn needs_flush(&self) -> bool {
        self.broken || !self.unsent.is_empty() || self.holds_ciphertext()
    }

    /// Whether a TLS session holds ciphertext of bytes already taken that is not written
    /// yet (a non-blocking write left it).
    #[inline]
    pub(super) fn holds_ciphertext(&self) -> bool {
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            return tls.has_output();
        }
        false
    }

    /// How many bytes of ciphertext [`holds_ciphertext`](Writer::holds_ciphertext) holds.
    pub(super) fn ciphertext_len(&self) -> usize {
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            return tls.output_len();
        }
        0
    }

    /// Writes what [`holds_ciphertext`](Writer::holds_ciphertext) holds: until `deadline`
    /// (`None`: as long as needed); `Ok(false)` when some is left then.
    pub(super) fn flush_ciphertext(&self, deadline: Option<std::time::Instant>) -> Result<bool> {
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            let fd = self.fd.as_fd();
            return Ok(match deadline {
                Some(d) => tls.flush_until(fd, self.kind, d)?,
                None => tls.flush(fd, self.kind, false)?,
            });
        }
        let _ = deadline;
        Ok(true)
    }

    /// Writes what [`holds_ciphertext`](Writer::holds_ciphertext) holds without blocking;
    /// `Ok(false)` when some is left.
    #[cfg_attr(not(any(feature = "tokio", feature = "async-io")), allow(dead_code))]
    pub(super) fn try_flush_ciphertext(&self) -> Result<bool> {
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            return Ok(tls.flush(self.fd.as_fd(), self.kind, true)?);
        }
        Ok(true)
    }

    /// Writes all of `iov`, blocking as long as needed.
    pub(super) fn write_all(&self, iov: &mut [IoSlice<'_>]) -> Result<()> {
        let mut rest = iov;
        while !rest.is_empty() {
            match self.write_vectored(rest, false) {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero).into()),
                Ok(n) => IoSlice::advance_slices(&mut rest, n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// One write without `SIGPIPE`; see [`transport::write_vectored`].
    #[inline]
    pub(super) fn write_vectored(
        &self,
        iov: &[IoSlice<'_>],
        nonblocking: bool,
    ) -> io::Result<usize> {
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            return tls.write(self.fd.as_fd(), self.kind, iov, nonblocking);
        }
        transport::write_vectored(self.fd.as_fd(), self.kind, iov, nonblocking)
    }
}
