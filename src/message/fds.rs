//! File descriptors that travel with messages (`SCM_RIGHTS` on Unix-domain sockets).
//!
//! # On the wire
//!
//! A message that carries descriptors is an ordinary frame, sent with one `sendmsg` whose
//! `SCM_RIGHTS` control message holds the descriptors; if the kernel takes only part of
//! the frame, the rest follows in plain sends. The descriptors are therefore attached to
//! the first byte of the frame, its header. Nothing else marks the frame: a peer that does
//! not look for descriptors (CPython, or a plain `recv`) reads the same bytes.
//!
//! # Which message they belong to
//!
//! Linux never lets one `recvmsg` on a stream socket read past the end of a stretch of
//! data that carried descriptors, although it may read data from before it in the same
//! call. So when a read returns descriptors, the stretch they were attached to ends the
//! bytes that read returned: the descriptors belong to the frame that contains the
//! **last byte of that read**. The reader counts every byte it reads from the stream; an
//! [`Inbox`] keeps the received descriptors in a queue, each with the stream offset of
//! that last byte. When a message has been read whole, the entries that fall inside its
//! frame are its descriptors: a receive that asked for them gets them, any other receive
//! closes them at once. Entries that fall before the frame being read (left by a receive
//! that failed part-way) are closed when the next receive starts, so nothing lingers.
//!
//! # Only where asked for
//!
//! A receiver takes descriptors only once it has been asked to
//! ([`Inbox::enable`], the public `enable_fds`). Until then it reads with plain
//! `recv`, which costs less than `recvmsg` with a control buffer in the kernel and here,
//! and the kernel closes any descriptors that come before they enter this process's table,
//! so a peer cannot fill it. Enabled, a Unix-domain socket is read with `recvmsg` and a
//! control buffer (allocated then, for [`MAX_FDS_PER_MESSAGE`] descriptors); pipes, FIFOs
//! and TCP carry none and always keep plain `read`/`recv`. Descriptors arrive close-on-exec
//! (`MSG_CMSG_CLOEXEC`).

use std::collections::VecDeque;
use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Instant;

use rustix::io::Errno;
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};

use super::{Reader, Writer};
use crate::error::{Error, Result};
use crate::frame::{Header, MAX_FDS_PER_MESSAGE, MAX_PENDING_FDS};
use crate::trace;
use crate::transport::Kind;

/// Bytes of control buffer for [`MAX_FDS_PER_MESSAGE`] descriptors.
const CONTROL_LEN: usize = rustix::cmsg_space!(ScmRights(MAX_FDS_PER_MESSAGE));

/// Descriptors that one read brought, and where in the stream that read ended.
#[derive(Debug)]
struct Arrived {
    /// Stream offset of the last byte the read returned.
    last: u64,
    fds: Vec<OwnedFd>,
    /// The kernel cut the control message short (`MSG_CTRUNC`): some were lost.
    truncated: bool,
}

/// The descriptors a receive asked for, gathered while it reads its message.
#[derive(Debug, Default)]
struct Claim {
    fds: Vec<OwnedFd>,
    truncated: bool,
}

/// The reader's side of descriptor passing: how it reads, how many bytes it has read, and
/// the descriptors received but not yet handed out.
#[derive(Debug)]
pub(crate) struct Inbox {
    kind: Kind,
    /// Whether descriptors are received (see the module docs): only on a Unix-domain
    /// socket, once asked for.
    enabled: bool,
    /// The control buffer, allocated when descriptors are enabled.
    control: Vec<MaybeUninit<u8>>,
    /// Bytes read from the stream so far.
    received: u64,
    arrived: VecDeque<Arrived>,
    /// Descriptors in `arrived`.
    held: usize,
    /// Set when the peer sent more than [`MAX_PENDING_FDS`] for unfinished messages: from
    /// then on every descriptor is closed on arrival and receiving is over.
    flooded: bool,
    /// `Some` while a receive that returns descriptors is running.
    claim: Option<Claim>,
    /// Whether the last read returned fewer bytes than it asked for (and more than none,
    /// without descriptors): the descriptor had nothing more at that moment, so an async
    /// driver may wait for readiness before reading again instead of trying a read that
    /// would block.
    pub(crate) drained: bool,
    /// Whether the last `recvmsg` brought control data (descriptors), at which the kernel
    /// ends a read however much more is waiting: such a read is short without draining.
    with_control: bool,
    /// For the read end of a FIFO pair: until this instant, and before any byte arrived,
    /// end of file means the peer has not opened its write end yet (see
    /// [`await_writer`](Inbox::await_writer)).
    writer_due: Option<Instant>,
    /// The TLS session every read goes through, on a TLS connection.
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<std::sync::Arc<crate::transport::tls::Session>>,
}

impl Inbox {
    /// The inbox of a reader of a descriptor of `kind`, not taking descriptors until
    /// [`enable`](Inbox::enable)d.
    pub(crate) fn new(kind: Kind) -> Inbox {
        Inbox {
            kind,
            enabled: false,
            control: Vec::new(),
            received: 0,
            arrived: VecDeque::new(),
            held: 0,
            flooded: false,
            claim: None,
            drained: false,
            with_control: false,
            writer_due: None,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// Starts taking the descriptors that come with messages, on a Unix-domain socket (on
    /// any other kind none can come, and this does nothing). `buffered` is how many bytes
    /// the reader holds unconsumed: read without a control buffer, they may have carried
    /// descriptors the kernel closed, so enabling then is refused.
    pub(crate) fn enable(&mut self, buffered: usize) -> Result<()> {
        if self.enabled || self.kind != Kind::Unix {
            return Ok(());
        }
        if buffered > 0 {
            return Err(Error::Descriptors(format!(
                "cannot start receiving descriptors: {buffered} bytes of later messages \
                 were already read without them (call `enable_fds` before the first \
                 receive that could read ahead, such as right after the connection is made)"
            )));
        }
        self.control = vec![MaybeUninit::uninit(); CONTROL_LEN];
        self.enabled = true;
        Ok(())
    }

    /// Whether descriptors are received; always `true` where none can come (not a
    /// Unix-domain socket), as nothing is lost there.
    pub(crate) fn enabled(&self) -> bool {
        self.enabled || self.kind != Kind::Unix
    }

    /// Makes end of file before the first byte mean "no writer yet" until `due`.
    ///
    /// A FIFO pair is handed over as soon as both sides have opened the ends they read, and
    /// a read of a FIFO that no writer has opened yet returns end of file at once, as one
    /// whose writer left does. The peer opens its write end microseconds later, so until
    /// `due` such an end of file counts as nothing to read yet: a blocking read waits for
    /// the first byte with `poll(2)` (which reports a hang-up only once a writer has come
    /// and gone), a non-blocking one says it would block.
    pub(crate) fn await_writer(&mut self, due: Instant) {
        self.writer_due = Some(due);
    }

    /// Whether an end of file now may only mean that no writer has come yet.
    fn writer_pending(&mut self) -> Option<Instant> {
        match self.writer_due {
            Some(due) if self.received == 0 && Instant::now() < due => Some(due),
            _ => {
                self.writer_due = None;
                None
            }
        }
    }

    /// Bytes read from the stream so far.
    pub(crate) fn received(&self) -> u64 {
        self.received
    }

    /// One read of at most `buf.len()` bytes, counted; `flags` (e.g. `DONTWAIT`) need a
    /// socket. Descriptors that come with it are queued.
    pub(crate) fn read_once(
        &mut self,
        fd: BorrowedFd<'_>,
        buf: &mut [u8],
        flags: RecvFlags,
    ) -> io::Result<usize> {
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            let n = tls.read(fd, buf, flags)?;
            self.received += n as u64;
            self.drained = n < buf.len() && tls.settled();
            return Ok(n);
        }
        Ok(self.read_plain(fd, buf, flags)?)
    }

    /// [`read_once`](Inbox::read_once) of the socket or pipe itself.
    fn read_plain(
        &mut self,
        fd: BorrowedFd<'_>,
        buf: &mut [u8],
        flags: RecvFlags,
    ) -> rustix::io::Result<usize> {
        let asked = buf.len();
        let n = match self.kind {
            Kind::Unix if self.enabled => self.recvmsg(fd, buf, flags)?,
            Kind::Pipe => rustix::io::read(fd, buf)?,
            _ => rustix::net::recv(fd, buf, flags)?.0,
        };
        if n == 0 && asked > 0 && self.writer_pending().is_some() {
            // A hang-up is reported only once a writer has come and gone: then this is the
            // end. Otherwise no writer has come yet: nothing to read, not the end.
            let hung_up = super::nonblocking::wait_fd(
                fd,
                rustix::event::PollFlags::IN,
                Some(std::time::Duration::ZERO),
            )
            .map_err(|e| Errno::from_io_error(&e).unwrap_or(Errno::IO))?;
            if !hung_up {
                return Err(Errno::AGAIN);
            }
            self.writer_due = None;
        }
        self.received += n as u64;
        self.drained = n > 0 && n < asked && !self.with_control;
        Ok(n)
    }

    /// One blocking read, retried when a signal interrupts it.
    pub(crate) fn read_blocking(&mut self, fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<usize> {
        loop {
            match self.read_once(fd, buf, RecvFlags::empty()) {
                Ok(n) => {
                    self.check()?;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && self.writer_due.is_some() => {
                    // A FIFO whose writer has not come yet (see `await_writer`): wait for
                    // its first byte or its hang-up, or the time allowed for it to come.
                    let wait = self
                        .writer_pending()
                        .map(|due| due.saturating_duration_since(Instant::now()));
                    if let Some(wait) = wait {
                        super::nonblocking::wait_fd(fd, rustix::event::PollFlags::IN, Some(wait))?;
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn recvmsg(
        &mut self,
        fd: BorrowedFd<'_>,
        buf: &mut [u8],
        flags: RecvFlags,
    ) -> rustix::io::Result<usize> {
        // Room for no more descriptors than the cap allows: the kernel closes what does
        // not fit (and says `MSG_CTRUNC`), so they never enter this process's table.
        let room = (MAX_PENDING_FDS - self.held).min(MAX_FDS_PER_MESSAGE);
        let room = if self.flooded { 0 } else { room };
        let space = rustix::cmsg_space!(ScmRights(room)).min(self.control.len());
        let mut control = RecvAncillaryBuffer::new(&mut self.control[..space]);
        let flags = flags | RecvFlags::CMSG_CLOEXEC;
        let msg = rustix::net::recvmsg(fd, &mut [IoSliceMut::new(buf)], &mut control, flags)?;
        let truncated = msg.flags.contains(ReturnFlags::CTRUNC);
        let mut fds = Vec::new(); // allocates only when descriptors came
        for message in control.drain() {
            if let RecvAncillaryMessage::ScmRights(rights) = message {
                fds.extend(rights);
            }
        }
        // The kernel ends a read at descriptors: bytes may be waiting behind them.
        self.with_control = truncated || !fds.is_empty();
        if self.flooded {
            return Ok(msg.bytes); // nothing was taken in
        }
        if truncated && room < MAX_FDS_PER_MESSAGE {
            // More than two messages' worth for unfinished messages: no peer that frames
            // as procwire and CPython do sends that. Stop receiving, and close them all.
            self.flooded = true;
            trace::limit(
                "max_pending_fds",
                (self.held + fds.len()) as u64 + 1,
                MAX_PENDING_FDS as u64,
            );
            self.arrived.clear();
            self.held = 0;
            return Ok(msg.bytes);
        }
        // Descriptors without data cannot come on a stream socket; if they did, they
        // would be dropped (closed) here.
        if msg.bytes > 0 && (truncated || !fds.is_empty()) {
            self.held += fds.len();
            self.arrived.push_back(Arrived {
                last: self.received + msg.bytes as u64 - 1,
                fds,
                truncated,
            });
        }
        Ok(msg.bytes)
    }

    /// Fails once the peer has sent more descriptors than [`MAX_PENDING_FDS`] for
    /// messages not yet read; for good, as the stream can no longer be trusted.
    pub(crate) fn check(&self) -> Result<()> {
        if !self.flooded {
            return Ok(());
        }
        Err(Error::Descriptors(format!(
            "the peer sent more than {MAX_PENDING_FDS} descriptors for messages not yet \
             complete (at most two messages' worth may be in flight); they were closed, \
             and this connection no longer receives"
        )))
    }

    /// Closes the descriptors of messages before stream offset `start`: left behind by a
    /// receive that failed part-way.
    pub(crate) fn discard_before(&mut self, start: u64) {
        while self.arrived.front().is_some_and(|a| a.last < start) {
            if let Some(a) = self.arrived.pop_front() {
                self.held -= a.fds.len();
            }
        }
    }

    /// A message ending before stream offset `end` has been read whole: its descriptors go
    /// to the receive that claims them, or are closed.
    pub(crate) fn message_done(&mut self, end: u64) {
        while self.arrived.front().is_some_and(|a| a.last < end) {
            let Some(arrived) = self.arrived.pop_front() else {
                break;
            };
            self.held -= arrived.fds.len();
            if let Some(claim) = &mut self.claim {
                claim.fds.extend(arrived.fds);
                claim.truncated |= arrived.truncated;
            }
        }
    }

    /// Whether descriptors are waiting for a message not yet received.
    pub(crate) fn holds_fds(&self) -> bool {
        !self.arrived.is_empty()
    }
}

impl Reader {
    /// Stream offset of the next unconsumed byte.
    pub(super) fn consumed(&self) -> u64 {
        self.anc.received() - self.dec.buffered_len() as u64
    }

    /// Runs `recv` (one receive of one message) and returns its result together with the
    /// descriptors that came with that message.
    ///
    /// Errors: those of `recv`, after which the message's descriptors are closed; and
    /// [`Error::Descriptors`] when the kernel had to drop some of them (`MSG_CTRUNC`):
    /// the message is consumed and the ones that did arrive are closed.
    pub(crate) fn claiming_fds<R>(
        &mut self,
        recv: impl FnOnce(&mut Reader) -> Result<R>,
    ) -> Result<(R, Vec<OwnedFd>)> {
        if !self.anc.enabled() {
            return Err(Error::Descriptors(
                "this receiver does not take descriptors: call `enable_fds()` on it (or \
                 on its connection) before its first receive; until then the kernel \
                 closes any that are sent"
                    .into(),
            ));
        }
        self.anc.claim = Some(Claim::default());
        let out = recv(self);
        let claim = self.anc.claim.take().unwrap_or_default();
        let value = out?;
        if claim.truncated {
            let max = MAX_FDS_PER_MESSAGE as u64;
            trace::limit("max_fds_per_message", max + 1, max);
            return Err(Error::Descriptors(format!(
                "the kernel cut a message's descriptors short (MSG_CTRUNC): the {} that \
                 arrived were closed (at most {MAX_FDS_PER_MESSAGE} per message; is this \
                 process out of descriptors?)",
                claim.fds.len()
            )));
        }
        Ok((value, claim.fds))
    }

    /// Starts receiving descriptors; see [`Inbox::enable`].
    pub(crate) fn enable_fds(&mut self) -> Result<()> {
        self.anc.enable(self.dec.buffered_len())
    }

    /// Whether nothing of the stream is held here: no buffered bytes, no descriptors.
    pub(crate) fn is_idle(&self) -> bool {
        self.dec.buffered_len() == 0 && !self.anc.holds_fds()
    }
}

/// Why a descriptor of `kind` cannot carry descriptors, if it cannot.
fn cannot_carry(kind: Kind) -> Option<&'static str> {
    match kind {
        Kind::Unix => None,
        Kind::Pipe => Some("a pipe or FIFO connection cannot carry file descriptors"),
        Kind::Tcp => {
            Some("a TCP connection cannot carry file descriptors; only Unix-domain sockets can")
        }
        Kind::Socket => Some("only Unix-domain sockets can carry file descriptors"),
    }
}

impl Writer {
    /// Checks that `fds` can go with one message on this connection.
    ///
    /// Errors: [`Error::Descriptors`] when there are more than [`MAX_FDS_PER_MESSAGE`] or
    /// the connection cannot carry descriptors.
    pub(crate) fn check_fds(&self, fds: &[BorrowedFd<'_>]) -> Result<()> {
        if fds.len() > MAX_FDS_PER_MESSAGE {
            trace::limit(
                "max_fds_per_message",
                fds.len() as u64,
                MAX_FDS_PER_MESSAGE as u64,
            );
            return Err(Error::Descriptors(format!(
                "{} descriptors exceed the {MAX_FDS_PER_MESSAGE} one message can carry",
                fds.len()
            )));
        }
        match cannot_carry(self.kind) {
            Some(why) if !fds.is_empty() => Err(Error::Descriptors(why.into())),
            _ => Ok(()),
        }
    }

    /// [`try_write`](Writer::try_write) of a frame with `fds` attached to its first byte
    /// (checked with [`check_fds`](Writer::check_fds) first): the first write carries them,
    /// the rest of the frame follows as plain bytes.
    #[cfg_attr(not(any(feature = "tokio", feature = "async-io")), allow(dead_code))]
    pub(crate) fn try_write_fds(
        &mut self,
        header: &[u8],
        payload: &[u8],
        fds: &[BorrowedFd<'_>],
        sent: &mut usize,
    ) -> Result<bool> {
        if *sent == 0 && !fds.is_empty() {
            let iov = [IoSlice::new(header), IoSlice::new(payload)];
            match self.send_first(&iov, fds, SendFlags::NOSIGNAL | SendFlags::DONTWAIT) {
                Ok(n) => *sent = n,
                Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    return Ok(false)
                }
                Err(e) => return Err(e),
            }
        }
        self.try_write(header, payload, sent)
    }

    /// Sends one frame with `fds` attached to its first byte; see the module docs.
    ///
    /// Without descriptors this is `send_frame`, on any transport.
    ///
    /// Errors: [`Error::Descriptors`] when there are more than [`MAX_FDS_PER_MESSAGE`] or
    /// the connection cannot carry descriptors (nothing is sent); otherwise as
    /// `send_frame`.
    pub(crate) fn send_frame_with_fds(
        &mut self,
        payload: &[u8],
        fds: &[BorrowedFd<'_>],
    ) -> Result<()> {
        self.check_fds(fds)?;
        if fds.is_empty() {
            return self.send_frame(payload);
        }
        self.finish_unsent()?;
        let header = Header::for_payload(payload.len() as u64).encode();
        let iov = [IoSlice::new(&header), IoSlice::new(payload)];
        let sent = self.send_first(&iov, fds, SendFlags::NOSIGNAL)?;
        let mut rest = iov;
        let mut rest = &mut rest[..];
        IoSlice::advance_slices(&mut rest, sent);
        self.write_all(rest)
    }

    /// One `sendmsg` of `iov` with `fds`, retried if a signal interrupts it before
    /// anything is sent; returns the bytes the kernel took (at least one).
    pub(super) fn send_first(
        &self,
        iov: &[IoSlice<'_>],
        fds: &[BorrowedFd<'_>],
        flags: SendFlags,
    ) -> Result<usize> {
        let mut space = [MaybeUninit::uninit(); CONTROL_LEN];
        let mut control = SendAncillaryBuffer::new(&mut space);
        if !control.push(SendAncillaryMessage::ScmRights(fds)) {
            return Err(Error::Descriptors(
                "the control message does not fit".into(),
            ));
        }
        loop {
            match rustix::net::sendmsg(self.fd.as_fd(), iov, &mut control, flags) {
                Ok(0) => return Err(std::io::Error::from(std::io::ErrorKind::WriteZero).into()),
                Ok(n) => return Ok(n),
                Err(Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Whether a frame that a deadline interrupted still has bytes to send.
    pub(crate) fn has_unsent(&self) -> bool {
        !self.unsent.is_empty() || self.holds_ciphertext()
    }
}
