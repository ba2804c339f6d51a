//! The message layer: framed reads and writes over one file descriptor.
//!
//! [`Reader`] keeps one read buffer per receiver: a small message costs one `read`, a
//! payload larger than half the buffer is read straight into its destination. [`Writer`]
//! sends header and payload with one vectored write. Both are private; the typed
//! [`Sender`](crate::Sender), [`Receiver`](crate::Receiver) and
//! [`Connection`](crate::Connection) expose them.

use std::io::{self, IoSlice};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::frame::{Header, MAX_HEADER_LEN};
use crate::sigpipe;

mod fds;
mod file;
mod nonblocking;

pub use self::fds::MAX_FDS_PER_MESSAGE;
pub(crate) use self::nonblocking::remaining;

/// The default maximum message size: 256 MiB.
///
/// A frame header announcing a longer payload is refused with
/// [`Error::MessageTooLarge`] before anything of that size is allocated. Change it per
/// connection with `set_max_message_size`.
pub const DEFAULT_MAX_MESSAGE_SIZE: u64 = 256 << 20;

/// The largest payload [`Writer::send_frame`] copies behind its header to send in one piece.
const SMALL_FRAME: usize = 2048;

/// Size of the read buffer each receiver keeps.
const READ_BUF: usize = 64 << 10;

/// The largest allocation a frame header alone can cause. A payload up to this size gets
/// its whole destination at once (zeroed pages from the allocator, which cost nothing
/// until written); beyond it, the destination grows, doubling, as the bytes arrive. A
/// header that lies about a huge length therefore costs at most this much address space,
/// whatever the maximum message size, and never aborts the process on allocation.
const EAGER_ALLOC: usize = 64 << 20;

/// How a descriptor is written without risking `SIGPIPE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FdKind {
    /// A socket: `sendmsg(MSG_NOSIGNAL)`.
    Socket,
    /// A pipe or FIFO: `writev`, with `SIGPIPE` blocked around it unless ignored.
    Pipe,
}

/// A destination for a payload that grows as the payload arrives (see [`EAGER_ALLOC`]).
pub(crate) trait Grow {
    /// How many bytes it holds now.
    fn size(&self) -> usize;
    /// Grows it, keeping its bytes, to hold at least `len`; returns the first `len` bytes.
    fn grow_to(&mut self, len: usize) -> &mut [u8];
}

impl Grow for Vec<u8> {
    fn size(&self) -> usize {
        self.len()
    }

    fn grow_to(&mut self, len: usize) -> &mut [u8] {
        if self.len() < len {
            self.resize(len, 0);
        }
        &mut self[..len]
    }
}

/// The write side of a connection.
#[derive(Debug)]
pub(crate) struct Writer {
    fd: Arc<OwnedFd>,
    kind: FdKind,
    unsent: nonblocking::Unsent,
    /// Set when a frame was left unfinished for good (a file that shrank while being
    /// sent): every later send fails instead of writing onto a misaligned stream.
    broken: bool,
}

impl Writer {
    pub(crate) fn new(fd: Arc<OwnedFd>, kind: FdKind) -> Writer {
        Writer {
            fd,
            kind,
            unsent: nonblocking::Unsent::default(),
            broken: false,
        }
    }

    /// Writes one whole frame: header and payload leave in one write unless the kernel
    /// takes only part, and then the rest follows. The rest of a frame an earlier deadline
    /// interrupted goes out first.
    ///
    /// A payload of up to [`SMALL_FRAME`] bytes is copied behind its header on the stack and
    /// leaves with one plain `send`/`write`, which the kernel handles measurably faster than
    /// a two-part vectored write; larger ones go out with `sendmsg`/`writev`, uncopied.
    pub(crate) fn send_frame(&mut self, payload: &[u8]) -> Result<()> {
        self.finish_unsent()?;
        let header = Header::for_payload(payload.len() as u64).encode();
        if payload.len() <= SMALL_FRAME {
            let mut frame = [0u8; MAX_HEADER_LEN + SMALL_FRAME];
            let len = header.len() + payload.len();
            frame[..header.len()].copy_from_slice(&header);
            frame[header.len()..len].copy_from_slice(payload);
            return self.write_all(&mut [IoSlice::new(&frame[..len])]);
        }
        self.write_all(&mut [IoSlice::new(&header), IoSlice::new(payload)])
    }

    fn write_all(&self, iov: &mut [IoSlice<'_>]) -> Result<()> {
        let mut rest = iov;
        while !rest.is_empty() {
            match self.write_vectored(rest) {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero).into()),
                Ok(n) => IoSlice::advance_slices(&mut rest, n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    fn write_vectored(&self, iov: &[IoSlice<'_>]) -> io::Result<usize> {
        let fd = self.fd.as_fd();
        let result = match (self.kind, iov) {
            (FdKind::Socket, [one]) => rustix::net::send(fd, one, rustix::net::SendFlags::NOSIGNAL),
            (FdKind::Socket, _) => rustix::net::sendmsg(
                fd,
                iov,
                &mut rustix::net::SendAncillaryBuffer::default(),
                rustix::net::SendFlags::NOSIGNAL,
            ),
            // The disposition is looked up at every write, not once: a host may reset
            // `SIGPIPE` to its default after the pipe was made.
            (FdKind::Pipe, _) if !sigpipe::is_ignored() => {
                return sigpipe::with_sigpipe_blocked(|| {
                    rustix::io::writev(fd, iov).map_err(io::Error::from)
                })
            }
            (FdKind::Pipe, [one]) => rustix::io::write(fd, one),
            (FdKind::Pipe, _) => rustix::io::writev(fd, iov),
        };
        result.map_err(io::Error::from)
    }
}

/// The read side of a connection: a buffer and a size limit.
pub(crate) struct Reader {
    fd: Arc<OwnedFd>,
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    max: u64,
    poisoned: bool,
    /// Set when the stream ended inside a frame: `(received, expected)` bytes of it. Every
    /// later receive reports the same truncation; the partial frame is discarded, so no
    /// receive ever reads its bytes as a message.
    truncated: Option<(u64, u64)>,
    /// An error a non-blocking read met, for the next receive to report.
    failed: Option<io::Error>,
    /// Set once `recv(2)` said the descriptor is not a socket (a pipe or FIFO).
    not_socket: bool,
    /// Whether the last message was large: the next header is then read on its own, so
    /// that a large payload goes from the kernel straight to its destination instead of
    /// filling the buffer first and being copied out.
    large_streak: bool,
    /// Where a typed receive puts a payload larger than `buf`; as large as the largest
    /// such payload so far (at most the maximum message size), kept for the next one.
    spill: Vec<u8>,
    /// Byte count and descriptors received with messages (`fds.rs`).
    anc: fds::Inbox,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("fd", &self.fd.as_raw_fd())
            .field("buffered", &(self.end - self.pos))
            .field("max_message_size", &self.max)
            .finish_non_exhaustive()
    }
}

impl Reader {
    pub(crate) fn new(fd: Arc<OwnedFd>) -> Reader {
        Reader {
            fd,
            buf: vec![0; READ_BUF],
            pos: 0,
            end: 0,
            max: DEFAULT_MAX_MESSAGE_SIZE,
            poisoned: false,
            truncated: None,
            failed: None,
            not_socket: false,
            large_streak: false,
            spill: Vec::new(),
            anc: fds::Inbox::default(),
        }
    }

    pub(crate) fn max_message_size(&self) -> u64 {
        self.max
    }

    pub(crate) fn set_max_message_size(&mut self, max: u64) {
        self.max = max;
    }

    fn buffered(&self) -> &[u8] {
        &self.buf[self.pos..self.end]
    }

    /// Reads once into the buffer, after making room for `want` bytes past `pos` when the
    /// buffer allows. Returns the number of bytes read; 0 means end of stream.
    fn fill(&mut self, want: usize) -> Result<usize> {
        self.fill_at_most(want, usize::MAX)
    }

    /// As [`fill`](Reader::fill), reading at most `limit` bytes.
    fn fill_at_most(&mut self, want: usize, limit: usize) -> Result<usize> {
        self.make_room(want);
        debug_assert!(self.end < self.buf.len());
        let stop = self.buf.len().min(self.end.saturating_add(limit));
        let dst = &mut self.buf[self.end..stop];
        self.anc
            .read_blocking(self.fd.as_fd(), dst)
            .inspect(|&n| self.end += n)
    }

    fn check_readable(&mut self) -> Result<()> {
        if let Some(e) = self.failed.take() {
            return Err(e.into());
        }
        if let Some((received, expected)) = self.truncated {
            return Err(Error::Truncated { received, expected });
        }
        if self.poisoned {
            return Err(Error::Protocol(
                "receiving is disabled after an oversized or malformed message".into(),
            ));
        }
        Ok(())
    }

    /// Reads and consumes the next frame header, blocking as needed.
    fn next_header(&mut self) -> Result<Header> {
        self.check_readable()?;
        self.anc.discard_before(self.consumed());
        let header = loop {
            match Header::decode(self.buffered()) {
                Ok(Some(h)) => break h,
                Ok(None) => {}
                Err(e) => {
                    self.poisoned = true;
                    return Err(e);
                }
            }
            let have = self.end - self.pos;
            let limit = if self.large_streak && have == 0 {
                MAX_HEADER_LEN
            } else {
                usize::MAX
            };
            if self.fill_at_most(MAX_HEADER_LEN, limit)? == 0 {
                return Err(self.eof(have as u64, if have < 4 { 4 } else { 12 }));
            }
        };
        if header.payload_len() > self.max {
            self.poisoned = true;
            return Err(Error::MessageTooLarge {
                len: header.payload_len(),
                limit: self.max,
            });
        }
        self.pos += header.header_len();
        self.large_streak = header.payload_len() >= (READ_BUF / 2) as u64;
        Ok(header)
    }

    /// Reads exactly `dst.len()` payload bytes of the frame `header`, of which `before`
    /// were read already, from the buffer first and then from the descriptor, straight
    /// into `dst` for large remainders.
    fn read_payload(&mut self, header: Header, before: usize, dst: &mut [u8]) -> Result<()> {
        let mut done = 0;
        while done < dst.len() {
            if self.pos < self.end {
                let n = (self.end - self.pos).min(dst.len() - done);
                dst[done..done + n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
                self.pos += n;
                done += n;
                continue;
            }
            let rest = dst.len() - done;
            let n = if rest >= self.buf.len() / 2 {
                self.anc.read_blocking(self.fd.as_fd(), &mut dst[done..])?
            } else {
                self.fill(rest)?
            };
            if n == 0 {
                let received = (header.header_len() + before + done) as u64;
                return Err(self.eof(received, header.frame_len()));
            }
            if rest >= self.buf.len() / 2 {
                done += n;
            }
        }
        self.finish_message();
        Ok(())
    }

    /// Reads the payload of `header` into the first `len` bytes of `buf`, growing `buf` as
    /// the bytes arrive: at once up to its current size or [`EAGER_ALLOC`], then doubling.
    /// The first step always runs, so an empty payload also sizes `buf` and finishes its
    /// message (handing out its descriptors).
    fn read_growing(&mut self, header: Header, buf: &mut impl Grow) -> Result<()> {
        let len = header.payload_len() as usize; // <= max
        let mut end = len.min(buf.size().max(EAGER_ALLOC));
        let mut done = 0;
        loop {
            let dst = buf.grow_to(end);
            self.read_payload(header, done, &mut dst[done..end])?;
            if end == len {
                return Ok(());
            }
            done = end;
            end = len.min(done.saturating_mul(2));
        }
    }

    /// Receives the payload of `header` as a new `Vec`, allocated as [`read_growing`]
    /// says.
    ///
    /// [`read_growing`]: Reader::read_growing
    fn payload_vec(&mut self, header: Header) -> Result<Vec<u8>> {
        let len = header.payload_len() as usize; // <= max
        let mut whole = vec![0; len.min(EAGER_ALLOC)];
        self.read_growing(header, &mut whole)?;
        Ok(whole)
    }

    /// Ends the receive of a whole message (or, for one read in steps, of a part): hands
    /// out or closes the descriptors that came with the bytes consumed so far, and gives
    /// back a buffer that `poll` grew for it.
    fn finish_message(&mut self) {
        self.anc.message_done(self.consumed());
        if self.buf.len() > READ_BUF && self.pos == self.end {
            self.buf = vec![0; READ_BUF];
            self.pos = 0;
            self.end = 0;
        }
    }

    /// Receives one message into `dst`; see `Receiver::recv_bytes_into`.
    pub(crate) fn recv_into(&mut self, dst: &mut [u8]) -> Result<usize> {
        let header = self.next_header()?;
        let len = header.payload_len() as usize; // <= max, which fits in memory
        if len > dst.len() {
            return Err(Error::BufferTooShort(self.payload_vec(header)?));
        }
        self.read_payload(header, 0, &mut dst[..len])?;
        Ok(len)
    }

    /// Receives one message into the first bytes of `dst`, a caller's growable buffer,
    /// grown as the payload arrives. A large payload is read from the kernel straight
    /// into it.
    #[cfg_attr(not(feature = "rkyv"), allow(dead_code))]
    pub(crate) fn recv_growing(&mut self, dst: &mut impl Grow) -> Result<()> {
        let header = self.next_header()?;
        self.read_growing(header, dst)
    }

    /// Receives one message as a new `Vec`.
    pub(crate) fn recv_vec(&mut self) -> Result<Vec<u8>> {
        let header = self.next_header()?;
        self.payload_vec(header)
    }

    /// Receives one message and hands its payload to `f`: in place in the read buffer when
    /// the frame fits there, otherwise in the spill buffer. Neither allocates in steady state.
    pub(crate) fn recv_with<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> Result<R> {
        let header = self.next_header()?;
        let len = header.payload_len() as usize;
        if len > self.buf.len() {
            return self.recv_spilled(header, f);
        }
        while self.end - self.pos < len {
            let have = self.end - self.pos;
            if self.fill(len)? == 0 {
                let received = (header.header_len() + have) as u64;
                return Err(self.eof(received, header.frame_len()));
            }
        }
        let start = self.pos;
        self.pos += len;
        let out = f(&self.buf[start..start + len]);
        self.finish_message();
        Ok(out)
    }

    /// Reads a payload too large for the read buffer into the spill buffer and hands it
    /// to `f`. The spill buffer keeps its size, so the next large message costs no
    /// allocation and no page faults: a fresh 16 MiB buffer per message made a typed
    /// receive of that size 2.3 times slower. It only grows, so zeroes are written once.
    fn recv_spilled<R>(&mut self, header: Header, f: impl FnOnce(&[u8]) -> R) -> Result<R> {
        let len = header.payload_len() as usize; // <= max, which fits in memory
        let mut spill = std::mem::take(&mut self.spill);
        let out = self
            .read_growing(header, &mut spill)
            .map(|()| f(&spill[..len]));
        self.spill = spill;
        out
    }

    /// Whether the buffer holds what the next receive needs without blocking: a whole
    /// frame, or a header that the next receive will refuse.
    fn frame_buffered(&self) -> bool {
        match Header::decode(self.buffered()) {
            Ok(Some(h)) => {
                h.payload_len() > self.max || h.frame_len() <= self.buffered().len() as u64
            }
            Ok(None) => false,
            Err(_) => true,
        }
    }

    /// Grows the buffer so that a frame of `frame_len` bytes fits from `pos`: at once up
    /// to [`EAGER_ALLOC`], beyond it by doubling each time the buffer is full.
    fn reserve_frame(&mut self, frame_len: usize) {
        let have = self.end - self.pos;
        let full = have == self.buf.len();
        if frame_len <= self.buf.len() || (self.buf.len() >= EAGER_ALLOC && !full) {
            return;
        }
        let size = frame_len.min(self.buf.len().saturating_mul(2).max(EAGER_ALLOC));
        let mut bigger = vec![0; size];
        bigger[..have].copy_from_slice(self.buffered());
        self.buf = bigger;
        self.pos = 0;
        self.end = have;
    }
}

impl Reader {
    /// The error for an end of stream after `received` of a frame's `expected` bytes. A
    /// truncation is remembered and the partial frame dropped (see `truncated`).
    fn eof(&mut self, received: u64, expected: u64) -> Error {
        if received == 0 {
            return Error::Disconnected;
        }
        self.truncated = Some((received, expected));
        self.pos = self.end;
        Error::Truncated { received, expected }
    }
}
