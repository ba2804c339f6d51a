//! An established TLS session, shared by the reader and the writer of one connection.
//!
//! rustls is a state machine without I/O (bytes in with `read_tls`, bytes out with
//! `write_tls`); this is the pump between it and the socket. Three locks, each held only
//! for work in memory, never across a system call that waits:
//!
//! - `conn`, the rustls connection: taken to decrypt what was read and to encrypt what is
//!   sent. A receive that blocks on the socket does not hold it, so a sending thread is
//!   never held up by a receiving one (two processes that send large messages to each other
//!   from one thread each and receive on another would otherwise deadlock).
//! - `input`, ciphertext read from the socket and not yet given to rustls: the reader's.
//! - `output`, ciphertext made and not yet written: the writer's. It is written before
//!   anything else is encrypted, so records leave in the order they were made.
//!
//! The message layer sees plain bytes: [`Session::read`] is its read of the socket, and
//! [`Session::write`] its write, with the same meaning of the counts (bytes of the stream
//! consumed or taken). Plaintext that rustls decrypted beyond what one read asked for stays
//! in rustls for the next read; [`Session::holds_input`] tells the waiting code (which
//! looks at the socket) that such bytes are there.

use std::io::{self, IoSlice, Read, Write};
use std::os::fd::BorrowedFd;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rustix::event::PollFlags;
use rustix::net::RecvFlags;

use crate::transport::{self, Kind};

/// How much ciphertext one read of the socket asks for at first: one whole TLS record
/// (16 KiB of payload and its header and tag), so an idle connection holds little.
const INPUT_MIN: usize = 17 * 1024;

/// How much it asks for at most: the buffer doubles up to this while reads fill it, so
/// bulk transfers cost few system calls.
const INPUT_MAX: usize = 256 * 1024;

/// How much plaintext one write encrypts before it writes: as much again is kept as
/// ciphertext at most.
const ENCRYPT_STEP: usize = 256 * 1024;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Ciphertext read from the socket and not yet handed to rustls.
#[derive(Debug)]
pub(crate) struct Input {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// The socket reached its end of file.
    eof: bool,
    /// Whether this read call found the socket empty (a short read).
    drained: bool,
    /// Whether the last read filled all the room it had: the buffer grows for the next.
    filled: bool,
    /// Whether rustls may hold decrypted bytes not yet read: after a read that filled its
    /// destination (rustls copies all it has when they fit), and before the first read
    /// (the handshake may have decrypted some).
    maybe_plaintext: bool,
    /// Whether the last read left nothing anywhere: the socket read short, no ciphertext is
    /// held, and rustls holds no plaintext.
    settled: bool,
}

impl Input {
    pub(crate) fn new() -> Input {
        Input {
            buf: Vec::new(),
            start: 0,
            end: 0,
            eof: false,
            drained: false,
            filled: false,
            maybe_plaintext: true,
            settled: false,
        }
    }

    fn held(&self) -> usize {
        self.end - self.start
    }

    /// Reads once from `fd` behind what is held; 0 at end of file.
    pub(crate) fn fill(&mut self, fd: BorrowedFd<'_>, flags: RecvFlags) -> io::Result<usize> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.buf.len() < INPUT_MIN {
            self.buf.resize(INPUT_MIN, 0);
        } else if self.end == self.buf.len() || (self.filled && self.buf.len() < INPUT_MAX) {
            let len = (self.buf.len() * 2)
                .min(INPUT_MAX)
                .max(self.end + INPUT_MIN);
            self.buf.resize(len, 0);
        }
        let spare = &mut self.buf[self.end..];
        let asked = spare.len();
        let n = loop {
            match rustix::net::recv(fd, &mut *spare, flags) {
                Ok((n, _)) => break n,
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        };
        self.end += n;
        self.eof |= n == 0;
        self.drained = n < asked;
        self.filled = n == asked;
        Ok(n)
    }

    /// Hands what is held to `conn` and decrypts it, until `conn` holds a record's worth
    /// of plaintext or nothing is left; at end of file tells `conn` so.
    pub(crate) fn feed(&mut self, conn: &mut rustls::Connection) -> io::Result<()> {
        while self.start < self.end {
            let n = conn.read_tls(&mut &self.buf[self.start..self.end])?;
            self.start += n;
            let state = conn.process_new_packets().map_err(tls_error)?;
            if state.plaintext_bytes_to_read() > 0 || n == 0 {
                return Ok(());
            }
        }
        if self.eof {
            conn.read_tls(&mut io::empty())?;
        }
        Ok(())
    }

    /// The first byte held, for telling a peer that does not speak TLS.
    pub(crate) fn first_byte(&self) -> Option<u8> {
        (self.start < self.end).then(|| self.buf[self.start])
    }
}

/// Ciphertext made by rustls and not yet written to the socket.
#[derive(Debug, Default)]
pub(crate) struct Output {
    buf: Vec<u8>,
    pos: usize,
}

impl Output {
    pub(crate) fn is_empty(&self) -> bool {
        self.pos == self.buf.len()
    }

    /// Takes everything rustls has to send.
    pub(crate) fn take_from(&mut self, conn: &mut rustls::Connection) -> io::Result<()> {
        if self.is_empty() {
            self.buf.clear();
            self.pos = 0;
        }
        while conn.wants_write() {
            conn.write_tls(&mut self.buf)?;
        }
        Ok(())
    }

    /// Writes what is held: all of it when `nonblocking` is false (waiting for room as
    /// long as needed), otherwise as much as the kernel takes now (`WouldBlock` when some
    /// is left).
    pub(crate) fn write_to(
        &mut self,
        fd: BorrowedFd<'_>,
        kind: Kind,
        nonblocking: bool,
    ) -> io::Result<()> {
        while !self.is_empty() {
            let iov = [IoSlice::new(&self.buf[self.pos..])];
            match transport::write_vectored(fd, kind, &iov, nonblocking) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.pos += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && !nonblocking => {
                    // Someone made the descriptor non-blocking: wait for room.
                    crate::transport::wait_fd(fd, PollFlags::OUT, None)?;
                }
                Err(e) => return Err(e),
            }
        }
        self.buf.clear();
        self.pos = 0;
        Ok(())
    }
}

/// The error for a TLS protocol failure after the handshake (a record that does not
/// decrypt, an alert from the peer).
pub(crate) fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("tls: {e}"))
}

/// An established TLS session; see the module docs.
pub(crate) struct Session {
    conn: Mutex<rustls::Connection>,
    input: Mutex<Input>,
    output: Mutex<Output>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").finish_non_exhaustive()
    }
}

impl Session {
    /// A session whose handshake is done, with what its handshake read and did not use.
    pub(crate) fn new(conn: rustls::Connection, input: Input, output: Output) -> Session {
        Session {
            conn: Mutex::new(conn),
            input: Mutex::new(input),
            output: Mutex::new(output),
        }
    }

    /// One read of the plain stream into `dst`: bytes already decrypted first, then those
    /// the socket has (blocking unless `flags` say `DONTWAIT`). 0 at the end of the stream,
    /// with or without the peer's `close_notify` (a peer that is killed sends none; the
    /// frame layer tells a cut inside a message from one at a boundary).
    pub(crate) fn read(
        &self,
        fd: BorrowedFd<'_>,
        dst: &mut [u8],
        flags: RecvFlags,
    ) -> io::Result<usize> {
        if dst.is_empty() {
            return Ok(0);
        }
        let mut input = lock(&self.input);
        input.drained = false;
        loop {
            if let Some(n) = self.plaintext(&mut input, dst)? {
                input.maybe_plaintext = n == dst.len();
                input.settled = input.drained && input.held() == 0 && !input.maybe_plaintext;
                return Ok(n);
            }
            input.fill(fd, flags)?;
        }
    }

    /// Decrypted bytes into `dst`, decrypting what is held when none are ready; `None`
    /// when more must be read from the socket.
    fn plaintext(&self, input: &mut Input, dst: &mut [u8]) -> io::Result<Option<usize>> {
        let mut conn = lock(&self.conn);
        loop {
            match conn.reader().read(dst) {
                Ok(n) => return Ok(Some(n)), // 0: `close_notify` came
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(Some(0)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            if input.held() == 0 && !input.eof {
                return Ok(None);
            }
            let eof = input.held() == 0;
            input.feed(&mut conn)?;
            if eof {
                // rustls now knows of the end: the next `read` says so.
                continue;
            }
        }
    }

    /// Whether the last read found the socket empty and nothing is left here: only then
    /// may an async driver wait for the socket's readiness before reading again.
    pub(crate) fn settled(&self) -> bool {
        lock(&self.input).settled
    }

    /// Whether bytes of the stream may be held here (ciphertext not yet decrypted, or
    /// plaintext not yet read), which the socket's readiness does not show.
    pub(crate) fn holds_input(&self) -> bool {
        let input = lock(&self.input);
        input.held() > 0 || input.maybe_plaintext
    }

    /// Encrypts and writes bytes of `iov` (ciphertext an earlier write left goes first);
    /// returns how many were taken. Blocking unless `nonblocking`: then `WouldBlock` when
    /// the earlier ciphertext cannot be written now, and ciphertext of the bytes taken may
    /// be left for [`flush`](Session::flush) or the next write.
    pub(crate) fn write(
        &self,
        fd: BorrowedFd<'_>,
        kind: Kind,
        iov: &[IoSlice<'_>],
        nonblocking: bool,
    ) -> io::Result<usize> {
        let mut out = lock(&self.output);
        out.write_to(fd, kind, nonblocking)?;
        let taken = self.encrypt(&mut out, iov)?;
        match out.write_to(fd, kind, nonblocking) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            other => other?,
        }
        Ok(taken)
    }

    /// Encrypts up to [`ENCRYPT_STEP`] bytes of `iov` into `out`; how many it took.
    fn encrypt(&self, out: &mut Output, iov: &[IoSlice<'_>]) -> io::Result<usize> {
        let mut conn = lock(&self.conn);
        let mut taken = 0;
        'slices: for slice in iov {
            let mut rest: &[u8] = slice;
            while !rest.is_empty() {
                let step = rest.len().min(ENCRYPT_STEP - taken);
                let n = conn.writer().write(&rest[..step])?;
                out.take_from(&mut conn)?;
                taken += n;
                rest = &rest[n..];
                if n == 0 || taken == ENCRYPT_STEP {
                    break 'slices;
                }
            }
        }
        Ok(taken)
    }

    /// Writes the ciphertext left by non-blocking writes (and what rustls has to send of
    /// its own, such as a key update's answer). Non-blocking: `Ok(false)` when some is
    /// left.
    pub(crate) fn flush(
        &self,
        fd: BorrowedFd<'_>,
        kind: Kind,
        nonblocking: bool,
    ) -> io::Result<bool> {
        let mut out = lock(&self.output);
        out.take_from(&mut lock(&self.conn))?;
        match out.write_to(fd, kind, nonblocking) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Whether ciphertext is waiting to be written.
    pub(crate) fn has_output(&self) -> bool {
        !lock(&self.output).is_empty()
    }

    /// How many bytes of ciphertext are waiting to be written.
    pub(crate) fn output_len(&self) -> usize {
        let out = lock(&self.output);
        out.buf.len() - out.pos
    }

    /// Flushes until `deadline`; `Ok(false)` when some is still left then.
    pub(crate) fn flush_until(
        &self,
        fd: BorrowedFd<'_>,
        kind: Kind,
        deadline: Instant,
    ) -> io::Result<bool> {
        loop {
            if self.flush(fd, kind, true)? {
                return Ok(true);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left == Duration::ZERO || !crate::transport::wait_fd(fd, PollFlags::OUT, Some(left))?
            {
                return Ok(false);
            }
        }
    }
}
