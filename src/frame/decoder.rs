//! The frame decoder: one read buffer and the framing state of one stream. No I/O.
//!
//! Every read path of a connection (blocking, `try_`, timed, with descriptors, into a file)
//! goes through one [`FrameDecoder`]: the I/O driver reads into
//! [`read_buf`](FrameDecoder::read_buf) and reports how much with
//! [`advance`](FrameDecoder::advance); the decoder says where the next frame starts and
//! whether it is whole, refuses oversized and malformed headers, and remembers an end of
//! stream inside a frame. Large payloads bypass the buffer: the crate's blocking receiver
//! asks the decoder for the next header, copies what the buffer already holds, and reads
//! the rest straight into the caller's slice.

use super::{Header, MAX_HEADER_LEN};
use crate::error::{Error, Result};

/// The default maximum message size: 256 MiB.
///
/// A frame header announcing a longer payload is refused with
/// [`Error::MessageTooLarge`] before anything of that size is allocated. Change it per
/// connection with `set_max_message_size`.
pub const DEFAULT_MAX_MESSAGE_SIZE: u64 = 256 << 20;

/// Size of the read buffer each receiver keeps.
pub(crate) const READ_BUF: usize = 64 << 10;

/// The largest allocation a frame header alone can cause. A payload up to this size gets
/// its whole destination at once (zeroed pages from the allocator, which cost nothing
/// until written); beyond it, the destination grows, doubling, as the bytes arrive. A
/// header that lies about a huge length therefore costs at most this much address space,
/// whatever the maximum message size, and never aborts the process on allocation.
pub(crate) const EAGER_ALLOC: usize = 64 << 20;

/// Why a stream can no longer be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stopped {
    /// An oversized or malformed header: receiving is disabled, as in CPython.
    Poisoned,
    /// The stream ended inside a frame after `received` of its `expected` bytes. Every
    /// later receive reports the same truncation; the partial frame is discarded, so no
    /// receive ever reads its bytes as a message.
    Truncated { received: u64, expected: u64 },
}

/// A sans-I/O decoder of CPython's message frames over one read buffer.
///
/// Feed it the bytes of a stream as they arrive, in pieces of any size, and take whole
/// messages out. It never allocates more than the configured maximum message size (and
/// never more than 64 MiB because of a header alone: beyond that the buffer grows as bytes
/// arrive), never panics on hostile input, and stays aligned at message boundaries: an
/// oversized or malformed header stops it for good, as it stops CPython's reader.
///
/// procwire's connections use one per receiver; use it directly to read procwire's (or
/// CPython's) frames from a transport of your own: an async socket, a ring buffer, a file.
///
/// # Examples
///
/// ```
/// use procwire::frame::{FrameDecoder, Header};
///
/// let mut wire = Header::for_payload(5).encode().to_vec();
/// wire.extend_from_slice(b"hello");
/// wire.extend_from_slice(&Header::for_payload(0).encode());
///
/// let mut decoder = FrameDecoder::new();
/// // Bytes arrive in pieces: the first message is whole after the sixth byte.
/// decoder.extend_from_slice(&wire[..6]);
/// assert_eq!(decoder.next_message()?, None);
/// decoder.extend_from_slice(&wire[6..]);
/// assert_eq!(decoder.next_message()?, Some(&b"hello"[..]));
/// assert_eq!(decoder.next_message()?, Some(&b""[..]));
/// assert_eq!(decoder.next_message()?, None);
/// assert!(matches!(decoder.end_of_stream(), procwire::Error::Disconnected));
/// # Ok::<(), procwire::Error>(())
/// ```
pub struct FrameDecoder {
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    max: u64,
    stopped: Option<Stopped>,
    /// Whether the last message was large: the next header is then read on its own, so
    /// that a large payload goes from the kernel straight to its destination instead of
    /// filling the buffer first and being copied out.
    large_streak: bool,
    /// The whole length of a memfd frame (length `-2`, see `message/large.rs`) on a
    /// receiver that takes them: such a frame is ready once this many bytes are buffered.
    memfd_frame: Option<usize>,
}

impl std::fmt::Debug for FrameDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameDecoder")
            .field("buffered", &self.buffered_len())
            .field("max_message_size", &self.max)
            .finish_non_exhaustive()
    }
}

impl Default for FrameDecoder {
    fn default() -> Self {
        FrameDecoder::new()
    }
}

impl FrameDecoder {
    /// A decoder with a 64 KiB buffer and the
    /// [`DEFAULT_MAX_MESSAGE_SIZE`](crate::frame::DEFAULT_MAX_MESSAGE_SIZE).
    pub fn new() -> FrameDecoder {
        FrameDecoder {
            buf: vec![0; READ_BUF],
            pos: 0,
            end: 0,
            max: DEFAULT_MAX_MESSAGE_SIZE,
            stopped: None,
            large_streak: false,
            memfd_frame: None,
        }
    }

    /// Makes a frame of length `-2` ready once `len` bytes of it are buffered, instead of
    /// at once as an invalid header (a receiver that takes memfd frames).
    pub(crate) fn take_memfd_frames(&mut self, len: usize) {
        self.memfd_frame = Some(len);
    }

    /// The largest payload it accepts, in bytes.
    pub fn max_message_size(&self) -> u64 {
        self.max
    }

    /// Sets the largest payload it accepts; a longer one is refused with
    /// [`Error::MessageTooLarge`] before anything of its size is allocated.
    pub fn set_max_message_size(&mut self, max: u64) {
        self.max = max;
    }

    /// Bytes received and not yet taken as messages.
    pub fn buffered_len(&self) -> usize {
        self.end - self.pos
    }

    /// Where the next bytes of the stream go: free room at the end of the buffer, sized
    /// for the frame being received (the buffer grows for a frame larger than itself, at
    /// once up to 64 MiB and by doubling beyond, never past the maximum message size).
    /// Write into it, then call [`advance`](FrameDecoder::advance) with the count. It is
    /// empty only when whole messages fill the buffer: take them first.
    pub fn read_buf(&mut self) -> &mut [u8] {
        let want = self.frame_want();
        self.reserve_frame(want);
        self.make_room(want);
        &mut self.buf[self.end..]
    }

    /// Records that `n` bytes were written at the start of
    /// [`read_buf`](FrameDecoder::read_buf).
    ///
    /// # Panics
    ///
    /// When `n` exceeds the room `read_buf` offered: a bug in the caller.
    pub fn advance(&mut self, n: usize) {
        assert!(
            n <= self.buf.len() - self.end,
            "advance past the read buffer"
        );
        self.end += n;
    }

    /// Appends `bytes` to the buffer: [`read_buf`](FrameDecoder::read_buf) and
    /// [`advance`](FrameDecoder::advance) as many times as it takes. When whole messages
    /// not yet taken fill the buffer, it grows by what does not fit: the caller holds
    /// those bytes already.
    pub fn extend_from_slice(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.read_buf().is_empty() {
                self.buf.resize(self.buf.len() + bytes.len(), 0);
            }
            let room = &mut self.buf[self.end..];
            let n = room.len().min(bytes.len());
            room[..n].copy_from_slice(&bytes[..n]);
            self.end += n;
            bytes = &bytes[n..];
        }
    }

    /// Takes the next message if the buffer holds all of it.
    ///
    /// # Errors
    ///
    /// - [`Error::MessageTooLarge`] for a header above the maximum message size, and
    ///   [`Error::Protocol`] for a negative length other than the `-1` escape; the decoder
    ///   is stopped and every later call gives [`Error::Protocol`].
    /// - [`Error::Truncated`] again after [`end_of_stream`](FrameDecoder::end_of_stream)
    ///   reported one.
    pub fn next_message(&mut self) -> Result<Option<&[u8]>> {
        self.check_readable()?;
        let Some(header) = self.peek_header()? else {
            return Ok(None);
        };
        if header.frame_len() > self.buffered_len() as u64 {
            return Ok(None);
        }
        let start = self.pos + header.header_len();
        let end = start + header.payload_len() as usize; // <= max, within the buffer
        self.pos = end;
        Ok(Some(&self.buf[start..end]))
    }

    /// The error for the stream ending now: [`Error::Disconnected`] at a message boundary,
    /// [`Error::Truncated`] inside a frame (and from then on, for every call), or the
    /// error that stopped the decoder.
    pub fn end_of_stream(&mut self) -> Error {
        if let Err(e) = self.check_readable() {
            return e;
        }
        let have = self.buffered_len() as u64;
        let expected = match self.peek_header() {
            Ok(Some(h)) => h.frame_len(),
            Ok(None) if have < 4 => 4,
            Ok(None) => MAX_HEADER_LEN as u64,
            Err(e) => return e,
        };
        self.eof(have, expected)
    }
}

/// The crate's I/O drivers: reads into the buffer in steps, and payloads that bypass it.
impl FrameDecoder {
    /// The buffered bytes.
    pub(crate) fn buffered(&self) -> &[u8] {
        &self.buf[self.pos..self.end]
    }

    /// The buffer's size.
    pub(crate) fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Whether the last message was large (see `large_streak`).
    pub(crate) fn large_streak(&self) -> bool {
        self.large_streak
    }

    /// Free room after making room for `want` bytes past the buffered ones when the buffer
    /// allows, at most `limit` bytes of it.
    pub(crate) fn spare(&mut self, want: usize, limit: usize) -> &mut [u8] {
        self.make_room(want);
        debug_assert!(self.end < self.buf.len());
        let stop = self.buf.len().min(self.end.saturating_add(limit));
        &mut self.buf[self.end..stop]
    }

    /// Records `n` bytes read into [`spare`](FrameDecoder::spare).
    pub(crate) fn filled(&mut self, n: usize) {
        self.end += n;
    }

    /// Consumes `n` buffered bytes and returns them.
    pub(crate) fn take(&mut self, n: usize) -> &[u8] {
        let start = self.pos;
        self.pos += n;
        &self.buf[start..self.pos]
    }

    /// Puts `parts` back in front of the buffered bytes, as if they had not been taken:
    /// the start of a frame whose receive was abandoned part-way. Rare (an async receive
    /// dropped mid-message), so it may move and grow the buffer.
    #[cfg_attr(not(any(feature = "tokio", feature = "async-io")), allow(dead_code))]
    pub(crate) fn unread(&mut self, parts: &[&[u8]]) {
        let rest = self.buffered().to_vec();
        self.pos = 0;
        self.end = 0;
        for part in parts {
            self.extend_from_slice(part);
        }
        self.extend_from_slice(&rest);
    }

    /// Copies buffered bytes into `dst`, as many as fit, and consumes them; the count.
    pub(crate) fn copy_out(&mut self, dst: &mut [u8]) -> usize {
        let n = self.buffered_len().min(dst.len());
        dst[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        n
    }

    /// Fails when the stream can no longer be read: truncated or stopped by a bad header.
    pub(crate) fn check_readable(&self) -> Result<()> {
        match self.stopped {
            None => Ok(()),
            Some(Stopped::Truncated { received, expected }) => {
                Err(Error::Truncated { received, expected })
            }
            Some(Stopped::Poisoned) => Err(Error::Protocol(
                "receiving is disabled after an oversized or malformed message".into(),
            )),
        }
    }

    /// Decodes the buffered header without consuming it; a header above the limit or a
    /// malformed one stops the decoder.
    fn peek_header(&mut self) -> Result<Option<Header>> {
        let header = match Header::decode(self.buffered()) {
            Ok(Some(h)) => h,
            Ok(None) => return Ok(None),
            Err(e) => {
                self.stopped = Some(Stopped::Poisoned);
                return Err(e);
            }
        };
        if header.payload_len() > self.max {
            self.stopped = Some(Stopped::Poisoned);
            return Err(Error::MessageTooLarge {
                len: header.payload_len(),
                limit: self.max,
            });
        }
        Ok(Some(header))
    }

    /// Decodes and consumes the next header when it is buffered whole, leaving its payload
    /// (or the part that arrived) buffered.
    ///
    /// Errors: as [`next_message`](FrameDecoder::next_message).
    pub(crate) fn next_header(&mut self) -> Result<Option<Header>> {
        self.check_readable()?;
        let Some(header) = self.peek_header()? else {
            return Ok(None);
        };
        self.pos += header.header_len();
        self.large_streak = header.payload_len() >= (READ_BUF / 2) as u64;
        Ok(Some(header))
    }

    /// Whether what the next receive needs is buffered: a whole frame, or an error to
    /// report (a header it will refuse, or a stopped stream).
    pub(crate) fn ready(&self) -> bool {
        if self.stopped.is_some() {
            return true;
        }
        if let Some(len) = self.memfd_frame {
            if self.buffered().starts_with(&crate::frame::MEMFD_MARK) {
                return self.buffered_len() >= len;
            }
        }
        match Header::decode(self.buffered()) {
            Ok(Some(h)) => {
                h.payload_len() > self.max || h.frame_len() <= self.buffered_len() as u64
            }
            Ok(None) => false,
            Err(_) => true,
        }
    }

    /// The error for an end of stream after `received` of a frame's `expected` bytes. A
    /// truncation is remembered and the partial frame dropped.
    pub(crate) fn eof(&mut self, received: u64, expected: u64) -> Error {
        if received == 0 {
            return Error::Disconnected;
        }
        self.stopped = Some(Stopped::Truncated { received, expected });
        self.pos = self.end;
        Error::Truncated { received, expected }
    }

    /// Ends a message: gives back a buffer that [`read_buf`](FrameDecoder::read_buf) grew
    /// for a large frame, once nothing is buffered.
    pub(crate) fn release_grown(&mut self) {
        if self.buf.len() > READ_BUF && self.pos == self.end {
            self.buf = vec![0; READ_BUF];
            self.pos = 0;
            self.end = 0;
        }
    }

    /// How many bytes from `pos` the next frame needs: all of it once its header is known.
    fn frame_want(&self) -> usize {
        match Header::decode(self.buffered()) {
            // <= max + 12 when the header is accepted; a larger one is refused before
            // anything is read for it, and `reserve_frame` caps the growth anyway.
            Ok(Some(h)) if h.payload_len() <= self.max => h.frame_len() as usize,
            _ => MAX_HEADER_LEN,
        }
    }

    /// Moves buffered bytes to the front when fewer than `want` bytes fit after `pos` or
    /// the buffer is full, so the next read has room.
    fn make_room(&mut self, want: usize) {
        if self.pos == self.end {
            self.pos = 0;
            self.end = 0;
        } else if self.pos > 0 && (self.buf.len() - self.pos < want || self.end == self.buf.len()) {
            self.buf.copy_within(self.pos..self.end, 0);
            self.end -= self.pos;
            self.pos = 0;
        }
    }

    /// Grows the buffer so that a frame of `frame_len` bytes fits from `pos`: at once up
    /// to [`EAGER_ALLOC`], beyond it by doubling each time the buffer is full.
    fn reserve_frame(&mut self, frame_len: usize) {
        let have = self.buffered_len();
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

#[cfg(test)]
mod tests;
