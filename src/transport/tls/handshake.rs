//! A TLS handshake in progress, driven without blocking: every read and write that can be
//! done now, then what it waits for. The listener's engine, the blocking client (with
//! `poll(2)` and a deadline) and the async client (with the runtime's readiness) pump the
//! same machine, so a client that sends nothing stalls no server.

use std::io;
use std::os::fd::BorrowedFd;
use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ServerConfig};

use super::session::{Input, Output, Session};
use crate::error::{Error, Result};
use crate::transport::Kind;

/// The first byte of a TLS handshake record (and 0x15 of an alert): what a peer that
/// speaks TLS sends first.
const HANDSHAKE_RECORD: u8 = 0x16;
const ALERT_RECORD: u8 = 0x15;

/// What [`Handshaking::advance`] waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// The socket: readable, or writable.
    Wait {
        /// Waiting to write.
        write: bool,
    },
    /// The handshake is done: [`Handshaking::into_session`].
    Done,
}

/// A TLS handshake in progress; see the module docs.
pub(crate) struct Handshaking {
    conn: rustls::Connection,
    input: Input,
    output: Output,
    /// Whether any byte came from the peer yet.
    heard: bool,
    /// The failure to report once the alert that tells the peer has been offered.
    failed: Option<Error>,
    server: bool,
}

impl std::fmt::Debug for Handshaking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handshaking")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl Handshaking {
    /// The server side, with `config`.
    pub(crate) fn server(config: &Arc<ServerConfig>) -> Result<Handshaking> {
        let conn = rustls::ServerConnection::new(Arc::clone(config)).map_err(failed)?;
        Ok(Handshaking::new(conn.into(), true))
    }

    /// The client side, with `config`, expecting a certificate for `name`.
    ///
    /// Errors: [`Error::InvalidAddress`] when `name` is neither a DNS name nor an IP
    /// address.
    pub(crate) fn client(config: &Arc<ClientConfig>, name: &str) -> Result<Handshaking> {
        let server_name = ServerName::try_from(name.to_owned()).map_err(|_| {
            Error::InvalidAddress(format!(
                "{name:?} as a tls server name: neither a dns name nor an ip address"
            ))
        })?;
        let conn =
            rustls::ClientConnection::new(Arc::clone(config), server_name).map_err(failed)?;
        Ok(Handshaking::new(conn.into(), false))
    }

    fn new(conn: rustls::Connection, server: bool) -> Handshaking {
        Handshaking {
            conn,
            input: Input::new(),
            output: Output::default(),
            heard: false,
            failed: None,
            server,
        }
    }

    /// Does every read and write that can be done now on `fd`, a non-blocking or blocking
    /// TCP socket (reads and writes never wait).
    ///
    /// Errors: [`Error::AuthenticationFailed`] when the handshake fails (a certificate
    /// that does not verify, a peer that does not speak TLS or closed the connection), with
    /// the reason; [`Error::Io`] when the socket fails.
    pub(crate) fn advance(&mut self, fd: BorrowedFd<'_>) -> Result<Step> {
        loop {
            self.output.take_from(&mut self.conn)?;
            match self.output.write_to(fd, Kind::Tcp, true) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && self.failed.is_none() => {
                    return Ok(Step::Wait { write: true });
                }
                // A failed handshake offers its alert once and goes.
                Err(e) => return Err(self.failed.take().unwrap_or(e.into())),
            }
            if let Some(e) = self.failed.take() {
                return Err(e);
            }
            if !self.conn.is_handshaking() {
                return Ok(Step::Done);
            }
            match self.input.fill(fd, rustix::net::RecvFlags::DONTWAIT) {
                Ok(0) => return Err(self.closed()),
                Ok(_) => self.take_input(),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Ok(Step::Wait { write: false })
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Hands what was read to rustls until the handshake is done (what follows it stays
    /// for the session) or fails.
    fn take_input(&mut self) {
        if !self.heard {
            self.heard = true;
            if let Some(first) = self.input.first_byte() {
                if first != HANDSHAKE_RECORD && first != ALERT_RECORD {
                    self.failed = Some(self.not_tls(first));
                    return;
                }
            }
        }
        if let Err(e) = self.input.feed(&mut self.conn) {
            self.failed = Some(failed_io(e));
        }
    }

    fn not_tls(&self, first: u8) -> Error {
        let who = if self.server { "client" } else { "server" };
        Error::AuthenticationFailed(format!(
            "tls handshake failed: the {who} does not speak tls (its first byte is \
             {first:#04x}, not a tls record; a plain tcp {who}?)"
        ))
    }

    fn closed(&self) -> Error {
        let who = if self.server { "client" } else { "server" };
        Error::AuthenticationFailed(format!(
            "tls handshake failed: the {who} closed the connection during the handshake"
        ))
    }

    /// The session, once [`advance`](Handshaking::advance) said [`Step::Done`].
    pub(crate) fn into_session(self) -> Session {
        Session::new(self.conn, self.input, self.output)
    }
}

/// A rustls failure during the handshake, as the error procwire reports.
fn failed(e: rustls::Error) -> Error {
    Error::AuthenticationFailed(format!("tls handshake failed: {e}"))
}

/// An error `Input::feed` gave during the handshake: a rustls failure it wrapped, or the
/// socket's.
fn failed_io(e: io::Error) -> Error {
    match e.kind() {
        io::ErrorKind::InvalidData => {
            let text = e.to_string();
            let why = text.strip_prefix("tls: ").unwrap_or(&text);
            Error::AuthenticationFailed(format!("tls handshake failed: {why}"))
        }
        _ => Error::Io(e),
    }
}

/// Runs a client's TLS handshake on the TCP socket `fd` with `config`, expecting a
/// certificate for `name`, blocking until it is done or `timeout` has passed.
///
/// Errors: [`Error::Timeout`] when the server did not finish in time; as
/// [`Handshaking::client`] and [`Handshaking::advance`].
pub(crate) fn client_blocking(
    fd: BorrowedFd<'_>,
    config: &Arc<ClientConfig>,
    name: &str,
    timeout: std::time::Duration,
) -> Result<Session> {
    let deadline = std::time::Instant::now().checked_add(timeout);
    let mut hs = Handshaking::client(config, name)?;
    loop {
        let write = match hs.advance(fd)? {
            Step::Done => return Ok(hs.into_session()),
            Step::Wait { write } => write,
        };
        let events = if write {
            rustix::event::PollFlags::OUT
        } else {
            rustix::event::PollFlags::IN
        };
        let left = deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()));
        if left.is_some_and(|l| l.is_zero()) || !crate::transport::wait_fd(fd, events, left)? {
            return Err(Error::Timeout);
        }
    }
}
