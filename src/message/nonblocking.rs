//! Non-blocking and deadline-bounded I/O on a connection's descriptor.
//!
//! The descriptors stay in blocking mode (a `Sender` and a `Receiver` may share one, and a
//! child may share it too); each call asks for non-blocking behaviour itself:
//!
//! - reads use `recv(MSG_DONTWAIT)` on sockets, and a zero-timeout `poll(2)` before `read`
//!   on pipes, so a readiness report that turns out to be spurious never blocks;
//! - frame writes with a deadline use `sendmsg(MSG_DONTWAIT | MSG_NOSIGNAL)` on sockets,
//!   and on pipes `poll(POLLOUT)` followed by a write of at most `PIPE_BUF` bytes, which the
//!   kernel then takes without blocking;
//! - waiting is `poll(2)` on the one descriptor: no descriptor is created for it.
//!
//! A frame that a deadline interrupts part-way is never abandoned: its unsent rest is kept
//! in the [`Writer`] and goes out before any later frame, so the stream stays aligned.

use std::io::{self, IoSlice};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use rustix::event::PollFlags;
use rustix::net::RecvFlags;

pub(crate) use crate::transport::{remaining, wait_fd};

use super::{Reader, Writer};
use crate::error::{Error, Result};
use crate::frame::{Header, MAX_HEADER_LEN};
use crate::transport::Kind;

/// The most a pipe write may carry and still never block once `poll` reported the pipe
/// writable (POSIX guarantees at least 512; Linux has 4096).
const PIPE_CHUNK: usize = libc::PIPE_BUF;

impl Reader {
    /// Whether the next receive returns without blocking, judged from the buffer alone: a
    /// whole frame is buffered, or an error is pending.
    pub(crate) fn ready_buffered(&self) -> bool {
        self.failed.is_some() || self.dec.ready()
    }

    /// Whether bytes of the stream are held in this process outside the buffer, where the
    /// descriptor's readiness does not show them: on a TLS connection, ciphertext not yet
    /// decrypted or plaintext not yet read into the buffer.
    #[inline]
    pub(crate) fn holds_unread(&self) -> bool {
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.anc.tls {
            return tls.holds_input();
        }
        false
    }

    /// Whether the next receive returns without blocking, judged without waiting: from the
    /// buffer, and when [`holds_unread`](Reader::holds_unread) from a read of those bytes
    /// too (which may also read the descriptor, never blocking).
    pub(crate) fn ready_held(&mut self) -> bool {
        if self.ready_buffered() {
            return true;
        }
        self.holds_unread() && self.poll_now()
    }

    /// Reads whatever has arrived, without blocking, until the next frame is whole or
    /// nothing more is there. Returns whether the next receive will not block: a whole
    /// frame, the end of the stream, or an error (kept for that receive to report).
    pub(crate) fn poll_now(&mut self) -> bool {
        loop {
            if self.ready_buffered() {
                return true;
            }
            match self.read_nonblocking() {
                Ok(Some(0)) => return true, // end of stream: the receive reports it
                // Too many descriptors: the receive reports it.
                Ok(Some(_)) if self.anc.check().is_err() => return true,
                Ok(Some(_)) => {}
                Ok(None) => return false,
                Err(e) => {
                    self.failed = Some(e);
                    return true;
                }
            }
        }
    }

    /// One read into the decoder's buffer that never blocks; `None` when nothing has
    /// arrived.
    pub(super) fn read_nonblocking(&mut self) -> io::Result<Option<usize>> {
        let Reader {
            fd,
            kind,
            dec,
            anc,
            nonblocking,
            ..
        } = self;
        let fd = fd.as_fd();
        loop {
            let dst = dec.read_buf();
            debug_assert!(!dst.is_empty(), "an unfinished frame fills the buffer");
            let got = if *kind == Kind::Pipe && !*nonblocking {
                if !wait_fd(fd, PollFlags::IN, Some(Duration::ZERO))? {
                    return Ok(None);
                }
                anc.read_once(fd, dst, RecvFlags::empty())
            } else if *kind == Kind::Pipe {
                anc.read_once(fd, dst, RecvFlags::empty()) // non-blocking mode: never blocks
            } else {
                anc.read_once(fd, dst, RecvFlags::DONTWAIT)
            };
            match got {
                Ok(n) => {
                    dec.advance(n);
                    return Ok(Some(n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Waits until a whole message, the end of the stream or an error is ready, reading
    /// whatever arrives into the buffer meanwhile; `false` when `timeout` passed first.
    /// `None` waits forever.
    pub(crate) fn poll(&mut self, timeout: Option<Duration>) -> Result<bool> {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        loop {
            if self.poll_now() {
                return Ok(true);
            }
            if !wait_fd(self.fd.as_fd(), PollFlags::IN, remaining(timeout, deadline))? {
                return Ok(false);
            }
        }
    }
}

/// The unsent rest of a frame that a deadline interrupted part-way.
#[derive(Debug, Default)]
pub(crate) struct Unsent {
    bytes: Vec<u8>,
    pos: usize,
    frame_len: u64,
}

impl Unsent {
    pub(super) fn is_empty(&self) -> bool {
        self.pos == self.bytes.len()
    }

    fn error(&self) -> Error {
        let left = (self.bytes.len() - self.pos) as u64;
        Error::PartlySent {
            sent: self.frame_len - left,
            len: self.frame_len,
        }
    }
}

/// Header and payload of one frame, and how much of it has gone out.
struct Frame<'a> {
    parts: [&'a [u8]; 2],
    sent: usize,
}

impl<'a> Frame<'a> {
    fn len(&self) -> usize {
        self.parts[0].len() + self.parts[1].len()
    }

    /// The unsent bytes as at most two slices, `max` bytes in all.
    fn rest(&self, max: usize) -> [IoSlice<'a>; 2] {
        let [head, body] = self.parts;
        let (head, body) = if self.sent < head.len() {
            (&head[self.sent..], body)
        } else {
            (&head[head.len()..], &body[self.sent - head.len()..])
        };
        let h = head.len().min(max);
        let b = body.len().min(max - h);
        [IoSlice::new(&head[..h]), IoSlice::new(&body[..b])]
    }
}

impl Writer {
    /// Finishes the rest of a frame a deadline interrupted, blocking as long as needed.
    pub(super) fn finish_unsent(&mut self) -> Result<()> {
        self.flush_until(None)
    }

    /// Writes the rest of an interrupted frame, giving up at `deadline` (`None`: never).
    ///
    /// Errors: [`Error::PartlySent`] when some of it is still unsent at the deadline.
    pub(crate) fn flush_until(&mut self, deadline: Option<Instant>) -> Result<()> {
        if self.broken {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the connection can no longer send: an earlier message was left unfinished",
            )
            .into());
        }
        if self.unsent.is_empty() {
            return self.flush_ciphertext_or_fail(deadline, self.unsent.frame_len);
        }
        let bytes = std::mem::take(&mut self.unsent.bytes);
        let mut frame = Frame {
            parts: [&bytes[self.unsent.pos..], &[]],
            sent: 0,
        };
        let result = self.write_frame(&mut frame, deadline);
        self.unsent.pos += frame.sent;
        self.unsent.bytes = bytes;
        result?;
        if self.unsent.is_empty() {
            self.unsent.bytes.clear();
            self.unsent.pos = 0;
            return self.flush_ciphertext_or_fail(deadline, self.unsent.frame_len);
        }
        Err(self.unsent.error())
    }

    /// Writes the ciphertext a TLS session holds until `deadline`; when some is left then,
    /// [`Error::PartlySent`] for the frame of `frame_len` bytes it belongs to, counting as
    /// sent the bytes whose ciphertext left (a lower bound: records add a few bytes each).
    fn flush_ciphertext_or_fail(&self, deadline: Option<Instant>, frame_len: u64) -> Result<()> {
        if !self.holds_ciphertext() || self.flush_ciphertext(deadline)? {
            return Ok(());
        }
        Err(Error::PartlySent {
            sent: frame_len.saturating_sub(self.ciphertext_len() as u64),
            len: frame_len,
        })
    }

    /// Sends one frame unless `deadline` passes first; see `Sender::send_timeout`.
    ///
    /// Errors: [`Error::Timeout`] when nothing of this frame went out (an earlier
    /// interrupted frame could not be finished, or the peer took nothing), and
    /// [`Error::PartlySent`] when part of it went out: the rest is kept and goes first.
    pub(crate) fn send_frame_until(&mut self, payload: &[u8], deadline: Instant) -> Result<()> {
        match self.flush_until(Some(deadline)) {
            Err(Error::PartlySent { .. }) => return Err(Error::Timeout),
            other => other?,
        }
        let header = Header::for_payload(payload.len() as u64).encode();
        let mut frame = Frame {
            parts: [&header, payload],
            sent: 0,
        };
        self.write_frame(&mut frame, Some(deadline))?;
        match frame.sent {
            0 => Err(Error::Timeout),
            n if n == frame.len() => {
                self.flush_ciphertext_or_fail(Some(deadline), frame.len() as u64)
            }
            _ => {
                self.keep_rest(&frame);
                Err(self.unsent.error())
            }
        }
    }

    /// Writes the unsent rest of an earlier frame without blocking: `Ok(true)` when nothing
    /// is left, `Ok(false)` when the kernel would block first. For descriptors in
    /// non-blocking mode (the async drivers).
    ///
    /// Errors: as [`flush_until`](Writer::flush_until), and the write's I/O errors.
    #[cfg_attr(not(any(feature = "tokio", feature = "async-io")), allow(dead_code))]
    pub(crate) fn try_flush(&mut self) -> Result<bool> {
        if self.broken {
            return self.flush_until(None).map(|()| false);
        }
        if self.unsent.is_empty() {
            return self.try_flush_ciphertext();
        }
        let bytes = std::mem::take(&mut self.unsent.bytes);
        let mut sent = 0;
        let result = self.try_write(&[], &bytes[self.unsent.pos..], &mut sent);
        self.unsent.pos += sent;
        self.unsent.bytes = bytes;
        if self.unsent.is_empty() {
            self.unsent.bytes.clear();
            self.unsent.pos = 0;
        }
        result
    }

    /// Writes more of the frame `header` + `payload`, from `*sent` on, without blocking;
    /// `Ok(true)` when all of it is out, `Ok(false)` when the kernel would block first.
    /// `*sent` advances with every byte written, so the next call resumes there. A small
    /// frame's first write copies it behind its header and leaves in one plain `send`, as
    /// [`send_frame`](Writer::send_frame) does.
    pub(crate) fn try_write(
        &mut self,
        header: &[u8],
        payload: &[u8],
        sent: &mut usize,
    ) -> Result<bool> {
        let mut frame = Frame {
            parts: [header, payload],
            sent: *sent,
        };
        let result = self.try_write_frame(&mut frame);
        *sent = frame.sent;
        result
    }

    #[cfg_attr(not(any(feature = "tokio", feature = "async-io")), allow(dead_code))]
    fn try_write_frame(&mut self, frame: &mut Frame<'_>) -> Result<bool> {
        if frame.sent == 0 && frame.len() <= super::writer::SMALL_FRAME + MAX_HEADER_LEN {
            let [head, body] = frame.parts;
            let len = self.assemble_small(head, body);
            match self.try_write_once(&[IoSlice::new(&self.small[..len])])? {
                Some(n) => frame.sent = n,
                None => return Ok(false),
            }
        }
        while frame.sent < frame.len() {
            match self.try_write_once(&frame.rest(usize::MAX))? {
                Some(n) => frame.sent += n,
                None => return Ok(false),
            }
        }
        // Over TLS the last bytes taken may still be ciphertext here.
        self.try_flush_ciphertext()
    }

    /// One write that never blocks: the count, or `None` when the kernel would block.
    #[cfg_attr(not(any(feature = "tokio", feature = "async-io")), allow(dead_code))]
    fn try_write_once(&self, iov: &[IoSlice<'_>]) -> Result<Option<usize>> {
        loop {
            match self.write_vectored(iov, true) {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero).into()),
                Ok(n) => return Ok(Some(n)),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Queues the whole frame `header` + `payload` behind whatever is unsent, for
    /// [`try_flush`](Writer::try_flush) to write (a `Sink`'s `start_send`).
    #[cfg_attr(not(any(feature = "tokio", feature = "async-io")), allow(dead_code))]
    pub(crate) fn queue(&mut self, header: &[u8], payload: &[u8]) {
        let unsent = &mut self.unsent;
        if unsent.is_empty() {
            unsent.bytes.clear();
            unsent.pos = 0;
            unsent.frame_len = 0;
        }
        unsent.bytes.extend_from_slice(header);
        unsent.bytes.extend_from_slice(payload);
        unsent.frame_len += (header.len() + payload.len()) as u64;
    }

    /// Keeps the unsent rest of the frame `header` + `payload`, of which `sent` bytes went
    /// out, to go before the next frame: an async send dropped part-way never leaves half
    /// a message on the stream. Nothing is kept when nothing or everything was sent.
    #[cfg_attr(not(any(feature = "tokio", feature = "async-io")), allow(dead_code))]
    pub(crate) fn keep_unsent(&mut self, header: &[u8], payload: &[u8], sent: usize) {
        let frame = Frame {
            parts: [header, payload],
            sent,
        };
        if sent > 0 && sent < frame.len() {
            self.keep_rest(&frame);
        }
    }

    fn keep_rest(&mut self, frame: &Frame<'_>) {
        let unsent = &mut self.unsent;
        unsent.bytes.clear();
        for part in frame.rest(usize::MAX) {
            unsent.bytes.extend_from_slice(&part);
        }
        unsent.pos = 0;
        unsent.frame_len = frame.len() as u64;
    }

    /// Writes `frame` from `frame.sent` on until it is all out or `deadline` passes,
    /// advancing `frame.sent`; `None` blocks until done.
    fn write_frame(&self, frame: &mut Frame<'_>, deadline: Option<Instant>) -> Result<()> {
        let limit = if self.kind == Kind::Pipe && deadline.is_some() {
            PIPE_CHUNK
        } else {
            usize::MAX
        };
        while frame.sent < frame.len() {
            if let Some(d) = deadline {
                let left = d.saturating_duration_since(Instant::now());
                if self.kind == Kind::Pipe && !wait_fd(self.fd.as_fd(), PollFlags::OUT, Some(left))?
                {
                    return Ok(());
                }
            }
            // A pipe is only written when `poll` said it has room, at most `PIPE_BUF`
            // bytes; a socket is written with `MSG_DONTWAIT` when there is a deadline.
            match self.write_vectored(&frame.rest(limit), deadline.is_some()) {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero).into()),
                Ok(n) => frame.sent += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // Also from a blocking write, if someone made the descriptor non-blocking.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
                    if left.is_some_and(|l| l.is_zero())
                        || !wait_fd(self.fd.as_fd(), PollFlags::OUT, left)?
                    {
                        return Ok(());
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}
