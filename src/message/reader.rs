//! The read side of a connection: one [`FrameDecoder`] and the descriptor it reads.
//!
//! A small message costs one `read`; a payload larger than half the buffer is read
//! straight into its destination. Every receive (blocking, `try_`, timed, with
//! descriptors, into a file) goes through the decoder, which alone touches the buffer.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Arc;

use super::fds;
use super::Grow;
use crate::error::{Error, Result};
use crate::frame::{FrameDecoder, Header, EAGER_ALLOC, MAX_HEADER_LEN};
use crate::transport::Kind;

/// The read side of a connection: a buffer and a size limit.
pub(crate) struct Reader {
    pub(super) fd: Arc<OwnedFd>,
    pub(super) kind: Kind,
    /// The read buffer and the framing state.
    pub(super) dec: FrameDecoder,
    /// An error a non-blocking read met, for the next receive to report.
    pub(super) failed: Option<io::Error>,
    /// Where a typed receive puts a payload larger than the read buffer; as large as the
    /// largest such payload so far (at most the maximum message size), kept for the next.
    spill: Vec<u8>,
    /// Byte count and descriptors received with messages (`fds.rs`).
    pub(super) anc: fds::Inbox,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("fd", &self.fd.as_raw_fd())
            .field("kind", &self.kind)
            .field("decoder", &self.dec)
            .finish_non_exhaustive()
    }
}

impl Reader {
    pub(crate) fn new(fd: Arc<OwnedFd>, kind: Kind) -> Reader {
        Reader {
            fd,
            kind,
            dec: FrameDecoder::new(),
            failed: None,
            spill: Vec::new(),
            anc: fds::Inbox::new(kind),
        }
    }

    pub(crate) fn max_message_size(&self) -> u64 {
        self.dec.max_message_size()
    }

    pub(crate) fn set_max_message_size(&mut self, max: u64) {
        self.dec.set_max_message_size(max);
    }

    /// Reads once into the buffer, after making room for `want` bytes past `pos` when the
    /// buffer allows. Returns the number of bytes read; 0 means end of stream.
    fn fill(&mut self, want: usize) -> Result<usize> {
        self.fill_at_most(want, usize::MAX)
    }

    /// As [`fill`](Reader::fill), reading at most `limit` bytes.
    fn fill_at_most(&mut self, want: usize, limit: usize) -> Result<usize> {
        let Reader { fd, dec, anc, .. } = self;
        let n = anc.read_blocking(fd.as_fd(), dec.spare(want, limit))?;
        dec.filled(n);
        Ok(n)
    }

    /// Fails when the stream can no longer be read, or a non-blocking read met an error
    /// for this receive to report.
    fn check_readable(&mut self) -> Result<()> {
        if let Some(e) = self.failed.take() {
            return Err(e.into());
        }
        self.dec.check_readable()?;
        self.anc.check()
    }

    /// Reads and consumes the next frame header, blocking as needed.
    pub(super) fn next_header(&mut self) -> Result<Header> {
        self.check_readable()?;
        self.anc.discard_before(self.consumed());
        loop {
            if let Some(header) = self.dec.next_header()? {
                return Ok(header);
            }
            let have = self.dec.buffered_len();
            let limit = if self.dec.large_streak() && have == 0 {
                MAX_HEADER_LEN
            } else {
                usize::MAX
            };
            if self.fill_at_most(MAX_HEADER_LEN, limit)? == 0 {
                let expected = if have < 4 { 4 } else { MAX_HEADER_LEN as u64 };
                return Err(self.dec.eof(have as u64, expected));
            }
        }
    }

    /// Reads exactly `dst.len()` payload bytes of the frame `header`, of which `before`
    /// were read already, from the buffer first and then from the descriptor, straight
    /// into `dst` for large remainders.
    fn read_payload(&mut self, header: Header, before: usize, dst: &mut [u8]) -> Result<()> {
        let mut done = 0;
        while done < dst.len() {
            if self.dec.buffered_len() > 0 {
                done += self.dec.copy_out(&mut dst[done..]);
                continue;
            }
            let rest = dst.len() - done;
            let direct = rest >= self.dec.capacity() / 2;
            let n = if direct {
                self.anc.read_blocking(self.fd.as_fd(), &mut dst[done..])?
            } else {
                self.fill(rest)?
            };
            if n == 0 {
                let received = (header.header_len() + before + done) as u64;
                return Err(self.dec.eof(received, header.frame_len()));
            }
            if direct {
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
    pub(super) fn finish_message(&mut self) {
        self.anc.message_done(self.consumed());
        self.dec.release_grown();
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
        if len > self.dec.capacity() {
            return self.recv_spilled(header, f);
        }
        while self.dec.buffered_len() < len {
            let have = self.dec.buffered_len();
            if self.fill(len)? == 0 {
                let received = (header.header_len() + have) as u64;
                return Err(self.dec.eof(received, header.frame_len()));
            }
        }
        let out = f(self.dec.take(len));
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
}
