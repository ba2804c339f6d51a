//! One client's handshake, driven without blocking: the [`Handshake`] machine over a
//! non-blocking stream, with a buffer of its own for exactly one handshake message.
//!
//! Nothing here waits: [`Pending::advance`] does every read and write that can be done
//! now and says what it waits for. Reads stop at the end of each handshake frame, so a
//! byte the client sends after the handshake (its first message, pipelined) stays in the
//! kernel for the connection's own reader. Sockets are read with plain `recv`, without a
//! control buffer: descriptors a client attaches before it is authenticated are closed by
//! the kernel as they arrive, and never reach this process's descriptor table.

use std::io::{self, IoSlice};
use std::os::fd::{AsFd, BorrowedFd};
#[cfg(feature = "tls")]
use std::sync::Arc;
use std::time::Instant;

use rustix::io::Errno;
use rustix::net::RecvFlags;

use super::engine::TlsHandshake;
use crate::address::Address;
use crate::auth::{Handshake, MAX_HANDSHAKE_MESSAGE_SIZE};
use crate::error::{Error, Result};
use crate::frame::{Header, MAX_HEADER_LEN};
use crate::transport::{self, Kind, Stream};

/// The buffer for one handshake frame: the longest header and the longest payload.
const FRAME: usize = MAX_HEADER_LEN + MAX_HANDSHAKE_MESSAGE_SIZE as usize;

/// Where a handshake stands after [`Pending::advance`].
#[derive(Debug)]
pub(super) enum Progress {
    /// Waiting for the stream: readable, or writable (never both: a handshake either has
    /// something to send or waits for the peer).
    Waiting {
        /// Waiting to write the rest of a message.
        write: bool,
    },
    /// The client is authenticated; the stream is handed over as it is.
    Authenticated,
    /// The handshake failed (the `#FAILURE#` owed to a client with a wrong key was
    /// offered to the kernel first); the stream should be closed.
    Failed(Error),
}

/// One client's handshake in progress.
pub(super) struct Pending {
    pub(super) stream: Stream,
    pub(super) peer: Option<Address>,
    pub(super) deadline: Instant,
    /// The HMAC handshake, when the listener has a key.
    machine: Option<Handshake>,
    /// The TLS handshake while it runs, when the listener serves TLS.
    #[cfg(feature = "tls")]
    tls: TlsHandshake,
    /// The TLS session once its handshake is done: the HMAC handshake runs inside it.
    #[cfg(feature = "tls")]
    session: Option<Arc<crate::transport::tls::Session>>,
    buf: [u8; FRAME],
    /// Bytes of the current frame in `buf`.
    have: usize,
    /// The current frame's header, once whole.
    header: Option<Header>,
    /// Framed messages to send, and how much of them was sent.
    out: Vec<u8>,
    sent: usize,
    /// An error waiting to be reported once `out` (the `#FAILURE#`) has been offered.
    failed: Option<Error>,
    /// Whether reading can tell "nothing yet" from the end of the stream. Always for a
    /// socket; for a FIFO only once the poller has reported it readable, because a FIFO
    /// whose writer has not opened it yet reads as end-of-file, not as `EAGAIN` (and
    /// polls as not ready, so the first readable report means the client is there).
    may_read: bool,
}

impl Pending {
    pub(super) fn new(
        stream: Stream,
        peer: Option<Address>,
        machine: Option<Handshake>,
        tls: TlsHandshake,
        deadline: Instant,
    ) -> Pending {
        #[cfg(not(feature = "tls"))]
        let None = tls;
        Pending {
            peer,
            deadline,
            machine,
            #[cfg(feature = "tls")]
            tls,
            #[cfg(feature = "tls")]
            session: None,
            buf: [0; FRAME],
            have: 0,
            header: None,
            may_read: matches!(stream, Stream::Socket { .. }),
            stream,
            out: Vec::new(),
            sent: 0,
            failed: None,
        }
    }

    /// The poller reported the read end readable.
    pub(super) fn readable(&mut self) {
        self.may_read = true;
    }

    /// The descriptor to read.
    pub(super) fn read_fd(&self) -> BorrowedFd<'_> {
        read_fd(&self.stream)
    }

    /// The stream, authenticated, for the connection: with its TLS session, if any.
    pub(super) fn into_parts(self) -> (Stream, Option<Address>) {
        #[cfg(feature = "tls")]
        if let Some(session) = self.session {
            return match self.stream {
                Stream::Socket { fd, .. } => (Stream::Tls { fd, session }, self.peer),
                other => (other, self.peer), // never: tls is for tcp only
            };
        }
        (self.stream, self.peer)
    }

    /// The descriptor to write, when it is not the one to read (a FIFO pair).
    pub(super) fn write_fd(&self) -> Option<BorrowedFd<'_>> {
        match &self.stream {
            Stream::Pipes { write, .. } => Some(write.as_fd()),
            _ => None,
        }
    }

    fn kind(&self) -> Kind {
        match &self.stream {
            Stream::Socket { kind, .. } => *kind,
            #[cfg(feature = "tls")]
            Stream::Tls { .. } => Kind::Tcp,
            Stream::Pipes { .. } => Kind::Pipe,
        }
    }

    /// The client's address, for error messages.
    pub(super) fn who(&self) -> String {
        match &self.peer {
            Some(addr) => format!("client {addr}"),
            None => "a client".to_owned(),
        }
    }

    /// Does every read and write that can be done now.
    pub(super) fn advance(&mut self) -> Progress {
        #[cfg(feature = "tls")]
        if let Some(progress) = self.advance_tls() {
            return progress;
        }
        let Some(mut machine) = self.machine.take() else {
            return self.flushed(Progress::Authenticated);
        };
        let progress = self.advance_hmac(&mut machine);
        self.machine = Some(machine);
        progress
    }

    /// Advances the TLS handshake while it runs; `None` once it is done.
    #[cfg(feature = "tls")]
    fn advance_tls(&mut self) -> Option<Progress> {
        let hs = self.tls.as_mut()?;
        match hs.advance(read_fd(&self.stream)) {
            Ok(crate::transport::tls::Step::Wait { write }) => Some(Progress::Waiting { write }),
            Ok(crate::transport::tls::Step::Done) => {
                let hs = self.tls.take()?;
                self.session = Some(Arc::new(hs.into_session()));
                None
            }
            Err(e) => Some(Progress::Failed(e)),
        }
    }

    /// `done`, once the ciphertext a TLS session holds is written (at once without one).
    fn flushed(&mut self, done: Progress) -> Progress {
        #[cfg(feature = "tls")]
        if let Some(session) = &self.session {
            match session.flush(read_fd(&self.stream), Kind::Tcp, true) {
                Ok(true) => {}
                Ok(false) if matches!(done, Progress::Authenticated) => {
                    return Progress::Waiting { write: true };
                }
                Ok(false) => {}
                Err(e) if matches!(done, Progress::Authenticated) => {
                    return Progress::Failed(e.into());
                }
                Err(_) => {}
            }
        }
        done
    }

    /// Advances the HMAC handshake (inside TLS, when there is a session).
    fn advance_hmac(&mut self, machine: &mut Handshake) -> Progress {
        loop {
            while let Some(payload) = machine.poll_transmit() {
                let header = Header::for_payload(payload.len() as u64).encode();
                self.out.extend_from_slice(&header);
                self.out.extend_from_slice(&payload);
            }
            if self.sent < self.out.len() {
                match self.write() {
                    Ok(n) => {
                        self.sent += n;
                        continue;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock && self.failed.is_none() => {
                        return Progress::Waiting { write: true };
                    }
                    Err(e) => {
                        // A failed handshake offers its verdict once and goes; a peer
                        // that cannot take it is gone or unwilling.
                        return Progress::Failed(self.failed.take().unwrap_or(e.into()));
                    }
                }
            }
            self.out.clear();
            self.sent = 0;
            if let Some(e) = self.failed.take() {
                return self.flushed(Progress::Failed(e));
            }
            if machine.is_authenticated() {
                return self.flushed(Progress::Authenticated);
            }
            if !self.may_read {
                return Progress::Waiting { write: false };
            }
            let want = match self.header {
                Some(h) => h.frame_len() as usize, // <= FRAME, checked below
                None if self.have < 4 => 4,
                None => MAX_HEADER_LEN,
            };
            match self.read(want) {
                Ok(0) => {
                    let e = if self.have == 0 {
                        Error::Disconnected
                    } else {
                        Error::Truncated {
                            received: self.have as u64,
                            expected: want as u64,
                        }
                    };
                    self.failed = Some(machine.handle_receive_error(e));
                }
                Ok(n) => {
                    self.have += n;
                    if let Err(e) = self.take_frame(machine) {
                        self.failed = Some(e);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Progress::Waiting { write: false };
                }
                Err(e) => return Progress::Failed(e.into()),
            }
        }
    }

    /// Decodes the header once it is whole, and hands a whole frame's payload to the
    /// machine.
    fn take_frame(&mut self, machine: &mut Handshake) -> Result<()> {
        if self.header.is_none() {
            let header = match Header::decode(&self.buf[..self.have]) {
                Ok(Some(h)) => h,
                Ok(None) => return Ok(()),
                Err(e) => return Err(machine.handle_receive_error(e)),
            };
            if header.payload_len() > MAX_HANDSHAKE_MESSAGE_SIZE {
                return Err(machine.handle_receive_error(Error::MessageTooLarge {
                    len: header.payload_len(),
                    limit: MAX_HANDSHAKE_MESSAGE_SIZE,
                }));
            }
            self.header = Some(header);
        }
        let Some(header) = self.header else {
            return Ok(());
        };
        if self.have < header.frame_len() as usize {
            return Ok(());
        }
        let payload = header.header_len()..self.have;
        self.have = 0;
        self.header = None;
        machine.handle_message(&self.buf[payload])
    }

    /// One non-blocking read of at most what the current frame still needs.
    fn read(&mut self, want: usize) -> io::Result<usize> {
        let socket = self.kind().is_socket();
        let dst = &mut self.buf[self.have..want];
        let fd = read_fd(&self.stream);
        #[cfg(feature = "tls")]
        if let Some(session) = &self.session {
            // Plaintext past this frame stays in the session, for the connection.
            return session.read(fd, dst, RecvFlags::DONTWAIT);
        }
        loop {
            let n = if socket {
                // No control buffer: descriptors sent with these bytes are closed by the
                // kernel (`MSG_CTRUNC`), so an unauthenticated client cannot fill our
                // descriptor table.
                rustix::net::recv(fd, &mut *dst, RecvFlags::DONTWAIT).map(|(n, _)| n)
            } else {
                rustix::io::read(fd, &mut *dst) // the FIFO end is non-blocking
            };
            match n {
                Err(Errno::INTR) => {}
                other => return other.map_err(io::Error::from),
            }
        }
    }

    /// One non-blocking write of what is left of `out`.
    fn write(&mut self) -> io::Result<usize> {
        let kind = self.kind();
        let fd = self.write_fd().unwrap_or_else(|| self.read_fd());
        let iov = [IoSlice::new(&self.out[self.sent..])];
        #[cfg(feature = "tls")]
        if let Some(session) = &self.session {
            return session.write(fd, kind, &iov, true);
        }
        loop {
            match transport::write_vectored(fd, kind, &iov, true) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => return other,
            }
        }
    }
}

/// The descriptor of `stream` to read.
fn read_fd(stream: &Stream) -> BorrowedFd<'_> {
    match stream {
        Stream::Socket { fd, .. } => fd.as_fd(),
        #[cfg(feature = "tls")]
        Stream::Tls { fd, .. } => fd.as_fd(),
        Stream::Pipes { read, .. } => read.as_fd(),
    }
}
