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
use crate::trace;
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
    /// Whether the descriptor is in non-blocking mode (an async driver's): reads then
    /// never block, so a pipe needs no `poll` before its read.
    pub(super) nonblocking: bool,
    /// The spin of blocking receives, when one is set (`spin.rs`).
    pub(super) spin: Option<super::spin::Spin>,
    /// Large-message hook: the memfd slots of a receiver that accepts them (`large.rs`).
    pub(super) large: Option<Box<super::large::Inbound>>,
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
            nonblocking: false,
            spin: None,
            large: None,
        }
    }

    /// Whether the last read emptied the descriptor (see `Inbox::drained`).
    #[cfg_attr(not(any(feature = "tokio", feature = "async-io")), allow(dead_code))]
    pub(crate) fn drained(&self) -> bool {
        self.anc.drained
    }

    /// Records whether the descriptor is in non-blocking mode; see the field.
    #[cfg_attr(not(any(feature = "tokio", feature = "async-io")), allow(dead_code))]
    pub(crate) fn set_nonblocking(&mut self, nonblocking: bool) {
        self.nonblocking = nonblocking;
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

    /// One blocking read towards a header of `want` bytes. After a large message, a read
    /// into an empty buffer takes no more than a header, so that the next large payload
    /// can go from the kernel straight to its destination.
    pub(super) fn fill_header(&mut self, want: usize) -> Result<usize> {
        let limit = if self.dec.large_streak() && self.dec.buffered_len() == 0 {
            MAX_HEADER_LEN
        } else {
            usize::MAX
        };
        self.fill_at_most(want, limit)
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
            if let Some(header) = self.dec.next_header().inspect_err(trace::receive_failed)? {
                return Ok(header);
            }
            let have = self.dec.buffered_len();
            if self.fill_header(MAX_HEADER_LEN)? == 0 {
                let expected = if have < 4 { 4 } else { MAX_HEADER_LEN as u64 };
                return Err(self.dec.eof(have as u64, expected));
            }
        }
    }

    /// Reads the payload bytes of the frame `header` into `dst` from `*done` on, until `dst`
    /// is full: from the buffer first and then from the descriptor, straight into `dst`
    /// for large remainders. `*done` counts the payload bytes already in `dst` (all of
    /// the payload before it, too) and advances as bytes arrive, so a read that a
    /// non-blocking descriptor interrupts (`WouldBlock`) resumes where it stopped. It only
    /// reads while the buffer is empty, so an interrupted read leaves nothing buffered.
    pub(crate) fn read_payload(
        &mut self,
        header: Header,
        dst: &mut [u8],
        done: &mut usize,
    ) -> Result<()> {
        self.read_payload_with(header, dst, done, |_| {})
    }

    /// [`read_payload`](Reader::read_payload), calling `progress` with `*done` after each
    /// piece that arrived: once per read from the descriptor.
    #[inline]
    pub(super) fn read_payload_with(
        &mut self,
        header: Header,
        dst: &mut [u8],
        done: &mut usize,
        mut progress: impl FnMut(usize),
    ) -> Result<()> {
        while *done < dst.len() {
            if self.dec.buffered_len() > 0 {
                *done += self.dec.copy_out(&mut dst[*done..]);
                progress(*done);
                continue;
            }
            let rest = dst.len() - *done;
            let direct = rest >= self.dec.capacity() / 2;
            let n = if direct {
                self.anc.read_blocking(self.fd.as_fd(), &mut dst[*done..])?
            } else {
                self.fill(rest)?
            };
            if n == 0 {
                let received = (header.header_len() + *done) as u64;
                return Err(self.dec.eof(received, header.frame_len()));
            }
            if direct {
                *done += n;
                progress(*done);
            }
        }
        self.finish_message();
        Ok(())
    }

    /// Reads the payload of `header` into `buf`, growing `buf` as the bytes arrive: at
    /// once up to its current size or [`EAGER_ALLOC`], then doubling. The first step always
    /// runs, so an empty payload also sizes `buf` and finishes its message (handing out its
    /// descriptors). `*done` is the progress, as in [`read_payload`](Reader::read_payload).
    pub(crate) fn read_growing(
        &mut self,
        header: Header,
        buf: &mut impl Grow,
        done: &mut usize,
    ) -> Result<()> {
        let len = header.payload_len() as usize; // <= max
        let first = len.min(buf.size().max(EAGER_ALLOC));
        loop {
            let end = if *done < first {
                first
            } else {
                len.min(done.saturating_mul(2))
            };
            let dst = buf.grow_to(end);
            self.read_payload(header, dst, done)?;
            if end == len {
                return Ok(());
            }
        }
    }

    /// Puts back the start of a frame whose receive was abandoned part-way (an async
    /// receive dropped before it finished): its header and the first `part.len()` payload
    /// bytes go back in front of whatever is buffered, so the next receive reads the
    /// whole message. Its descriptors were never handed out, so they stay with it.
    #[cfg_attr(not(any(feature = "tokio", feature = "async-io")), allow(dead_code))]
    pub(crate) fn unread(&mut self, header: Header, part: &[u8]) {
        self.dec.unread(&[header.encode().as_ref(), part]);
    }

    /// Ends the receive of a whole message (or, for one read in steps, of a part): hands
    /// out or closes the descriptors that came with the bytes consumed so far, and gives
    /// back a buffer that `poll` grew for it.
    pub(super) fn finish_message(&mut self) {
        self.anc.message_done(self.consumed());
        self.dec.release_grown();
    }

    /// The header of the message `p` is receiving: read now (blocking as needed) unless
    /// an earlier, interrupted step of the same receive read it.
    fn header(&mut self, p: &mut Progress) -> Result<Header> {
        if let Some(header) = p.header {
            return Ok(header);
        }
        let header = self.next_header()?;
        p.header = Some(header);
        Ok(header)
    }

    /// Receives one message into `dst`; see `Receiver::recv_bytes_into`.
    pub(crate) fn recv_into(&mut self, dst: &mut [u8]) -> Result<usize> {
        self.recv_into_from(dst, &mut Progress::default())
    }

    /// [`recv_into`](Reader::recv_into), resuming the receive `p` describes.
    pub(crate) fn recv_into_from(&mut self, dst: &mut [u8], p: &mut Progress) -> Result<usize> {
        self.recv_into_hooked(dst, p, |_, _| {})
    }

    /// [`recv_into_from`](Reader::recv_into_from), calling `progress(done, total)` with
    /// the payload bytes in `dst` after each piece of them arrived (never for a message
    /// longer than `dst`, which comes back whole in [`Error::BufferTooShort`]).
    #[inline]
    pub(super) fn recv_into_hooked(
        &mut self,
        dst: &mut [u8],
        p: &mut Progress,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<usize> {
        let header = self.header(p)?;
        let len = header.payload_len() as usize; // <= max, which fits in memory
        if len > dst.len() {
            p.at = Part::Vec;
            self.read_growing(header, &mut p.vec, &mut p.done)?;
            return Err(Error::BufferTooShort(std::mem::take(&mut p.vec)));
        }
        p.at = Part::Dst;
        self.read_payload_with(header, &mut dst[..len], &mut p.done, |n| progress(n, len))?;
        Ok(len)
    }

    /// Receives one message into the first bytes of `dst`, a caller's growable buffer,
    /// grown as the payload arrives. A large payload is read from the kernel straight
    /// into it.
    #[cfg_attr(not(feature = "rkyv"), allow(dead_code))]
    pub(crate) fn recv_growing(&mut self, dst: &mut impl Grow) -> Result<()> {
        let header = self.next_header()?;
        self.read_growing(header, dst, &mut 0)
    }

    /// Receives one message as a new `Vec`, allocated as [`read_growing`] says.
    ///
    /// [`read_growing`]: Reader::read_growing
    pub(crate) fn recv_vec(&mut self) -> Result<Vec<u8>> {
        self.recv_vec_from(&mut Progress::default())
    }

    /// [`recv_vec`](Reader::recv_vec), resuming the receive `p` describes.
    pub(crate) fn recv_vec_from(&mut self, p: &mut Progress) -> Result<Vec<u8>> {
        let header = self.header(p)?;
        p.at = Part::Vec;
        self.read_growing(header, &mut p.vec, &mut p.done)?;
        Ok(std::mem::take(&mut p.vec))
    }

    /// Receives one message and hands its payload to `f`: in place in the read buffer when
    /// the frame fits there, otherwise in the spill buffer. Neither allocates in steady state.
    pub(crate) fn recv_with<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> Result<R> {
        self.recv_with_from(&mut Progress::default(), f)
    }

    /// [`recv_with`](Reader::recv_with), resuming the receive `p` describes. `f` is called
    /// only when the payload is whole.
    pub(crate) fn recv_with_from<R>(
        &mut self,
        p: &mut Progress,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R> {
        let header = self.header(p)?;
        let len = header.payload_len() as usize;
        if len > self.dec.capacity() || p.at == Part::Spill {
            return self.recv_spilled(header, p, f);
        }
        p.at = Part::Buffer;
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
    fn recv_spilled<R>(
        &mut self,
        header: Header,
        p: &mut Progress,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R> {
        let len = header.payload_len() as usize; // <= max, which fits in memory
        p.at = Part::Spill;
        let mut spill = std::mem::take(&mut self.spill);
        let out = self
            .read_growing(header, &mut spill, &mut p.done)
            .map(|()| f(&spill[..len]));
        self.spill = spill;
        out
    }

    /// Abandons the unfinished receive `p` (an async receive dropped part-way): the
    /// message's header and the payload bytes it had received go back in front of the
    /// buffer, so the next receive reads the whole message. `dst` is the caller's slice of
    /// a [`recv_into_from`](Reader::recv_into_from), when that was the receive.
    #[cfg_attr(not(any(feature = "tokio", feature = "async-io")), allow(dead_code))]
    pub(crate) fn abandon(&mut self, p: &mut Progress, dst: &[u8]) {
        let Some(header) = p.header.take() else {
            return;
        };
        let done = std::mem::take(&mut p.done);
        match p.at {
            Part::Buffer => self.unread(header, &[]),
            Part::Dst => self.unread(header, &dst[..done]),
            Part::Vec => {
                let vec = std::mem::take(&mut p.vec);
                self.unread(header, &vec[..done]);
            }
            Part::Spill => {
                let spill = std::mem::take(&mut self.spill);
                self.unread(header, &spill[..done]);
                self.spill = spill;
            }
        }
    }
}

/// Where an unfinished receive keeps the payload bytes it has read.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    /// In the read buffer, not yet taken (or nothing read yet).
    #[default]
    Buffer,
    /// In the caller's slice.
    Dst,
    /// In the progress's own `Vec`.
    Vec,
    /// In the reader's spill buffer.
    Spill,
}

/// How far one receive has come. A blocking receive starts from a fresh one and finishes;
/// on a non-blocking descriptor (the async drivers) a receive stops with `WouldBlock`
/// wherever the bytes ran out, and the next call with the same progress resumes there.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    /// The message's header, once read.
    header: Option<Header>,
    /// Payload bytes read so far.
    done: usize,
    /// Where they are.
    at: Part,
    /// The payload, for receives that return it as a `Vec`.
    vec: Vec<u8>,
}
