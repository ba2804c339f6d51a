//! The blocking driver: runs a [`Handshake`] over a message connection, waiting for each
//! message until a deadline.
//!
//! The driver needs five operations of the connection, the methods of
//! [`sealed::MessageIo`], which the message layer's [`Duplex`] provides; the typed
//! [`Connection`](crate::Connection) provides them by lending its two message-layer
//! halves (in `channel/mod.rs`), so this module never sees a typed value.

use std::time::{Duration, Instant};

use super::handshake::{Handshake, MAX_HANDSHAKE_MESSAGE_SIZE};
#[cfg(test)]
use super::message::NONCE_LEN;
use super::AuthKey;
use crate::error::{Error, Result};
use crate::message::{Duplex, Wait};

/// A message connection the blocking handshake functions can run over:
/// [`Connection`](crate::Connection), whatever its message types and codec.
///
/// The trait is sealed: it cannot be implemented outside procwire, and its methods cannot
/// be called. To run the handshake over another kind of transport, drive a [`Handshake`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use procwire::AuthKey;
/// use procwire::auth::{HandshakeIo, client_handshake, server_handshake};
///
/// fn accept(conn: &impl HandshakeIo, key: &AuthKey) -> procwire::Result<()> {
///     server_handshake(conn, key, Duration::from_secs(5))
/// }
///
/// let (server, client) = procwire::duplex::<(), ()>()?;
/// let key = AuthKey::from("secret-key");
/// let server_key = key.clone();
/// let accepted = std::thread::spawn(move || accept(&server, &server_key));
/// client_handshake(&client, &key, Duration::from_secs(5))?;
/// accepted.join().unwrap()?;
/// # Ok::<(), procwire::Error>(())
/// ```
pub trait HandshakeIo: sealed::MessageIo {}

impl<T: sealed::MessageIo + ?Sized> HandshakeIo for T {}

pub(crate) mod sealed {
    use std::time::Duration;

    use crate::error::Result;

    /// What the blocking driver needs of a message connection. Public in a private
    /// module, so that [`HandshakeIo`](super::HandshakeIo) can name it and nobody outside
    /// the crate can implement or call it.
    pub trait MessageIo {
        /// Sends `payload` as one message.
        fn send_message(&self, payload: &[u8]) -> Result<()>;
        /// Waits up to `timeout` (`None`: forever) until a message or the end of the
        /// stream can be received; `false` when the time ran out first.
        fn wait_message(&self, timeout: Option<Duration>) -> Result<bool>;
        /// Receives one message's payload, refusing one longer than the limit.
        fn recv_message(&self) -> Result<Vec<u8>>;
        /// The largest payload [`recv_message`](MessageIo::recv_message) accepts.
        fn message_limit(&self) -> u64;
        /// Sets the largest payload [`recv_message`](MessageIo::recv_message) accepts.
        fn set_message_limit(&self, max: u64);
    }
}

use sealed::MessageIo;

/// The message layer's duplex connection, as the driver uses it.
impl<X, Y> MessageIo for Duplex<'_, X, Y> {
    fn send_message(&self, payload: &[u8]) -> Result<()> {
        self.tx.send_bytes(payload, None)
    }

    fn wait_message(&self, timeout: Option<Duration>) -> Result<bool> {
        self.rx.poll(timeout)
    }

    fn recv_message(&self) -> Result<Vec<u8>> {
        self.rx.recv_vec(Wait::Block)
    }

    fn message_limit(&self) -> u64 {
        self.rx.max_message_size()
    }

    fn set_message_limit(&self, max: u64) {
        self.rx.set_max_message_size(max);
    }
}

/// Runs the server side of the handshake: [`deliver_challenge`], then
/// [`answer_challenge`], both within `timeout`.
///
/// This is what CPython's `Listener.accept()` does with an authkey. The peer runs
/// [`client_handshake`], or CPython's `Client(address, authkey=...)`.
///
/// # Blocking
///
/// Blocks until the six handshake messages have been exchanged, the peer fails the
/// handshake or goes away, or `timeout` has passed.
///
/// # Errors
///
/// - [`Error::AuthenticationFailed`] when the keys differ (on both sides), or the peer
///   sent a malformed or oversized handshake message, or speaks a protocol this build does
///   not (the legacy MD5 protocol without the `legacy-md5` feature, an unknown digest).
/// - [`Error::Timeout`] when the handshake did not finish within `timeout`.
/// - [`Error::Disconnected`] or [`Error::Truncated`] when the peer closed the connection.
/// - [`Error::Io`] when sending fails or no random bytes can be had from the OS.
///
/// After an error the connection should be closed.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use procwire::AuthKey;
/// use procwire::auth::{client_handshake, server_handshake};
///
/// let (server, client) = procwire::duplex::<(), ()>()?;
/// let key = AuthKey::from("secret-key");
/// let server_key = key.clone();
/// let accept = std::thread::spawn(move || {
///     server_handshake(&server, &server_key, Duration::from_secs(5)).map(|()| server)
/// });
/// client_handshake(&client, &key, Duration::from_secs(5))?;
/// let server = accept.join().unwrap()?;
///
/// client.send_bytes(b"hello")?;
/// assert_eq!(server.recv_bytes()?, b"hello");
/// # Ok::<(), procwire::Error>(())
/// ```
pub fn server_handshake<T: HandshakeIo + ?Sized>(
    conn: &T,
    key: &AuthKey,
    timeout: Duration,
) -> Result<()> {
    let deadline = Instant::now().checked_add(timeout);
    drive(conn, Handshake::server(key)?, deadline)
}

/// Runs the client side of the handshake: [`answer_challenge`], then
/// [`deliver_challenge`], both within `timeout`.
///
/// This is what CPython's `Client(address, authkey=...)` does. The peer runs
/// [`server_handshake`], or CPython's `Listener.accept()`.
///
/// # Blocking
///
/// As [`server_handshake`].
///
/// # Errors
///
/// As [`server_handshake`].
///
/// # Examples
///
/// A wrong key fails on both sides:
///
/// ```
/// use std::time::Duration;
/// use procwire::{AuthKey, Error};
/// use procwire::auth::{client_handshake, server_handshake};
///
/// let (server, client) = procwire::duplex::<(), ()>()?;
/// let accept = std::thread::spawn(move || {
///     server_handshake(&server, &AuthKey::from("right"), Duration::from_secs(5))
/// });
/// let err = client_handshake(&client, &AuthKey::from("wrong"), Duration::from_secs(5));
/// assert!(matches!(err, Err(Error::AuthenticationFailed(_))));
/// assert!(matches!(accept.join().unwrap(), Err(Error::AuthenticationFailed(_))));
/// # Ok::<(), procwire::Error>(())
/// ```
pub fn client_handshake<T: HandshakeIo + ?Sized>(
    conn: &T,
    key: &AuthKey,
    timeout: Duration,
) -> Result<()> {
    let deadline = Instant::now().checked_add(timeout);
    drive(conn, Handshake::client(key)?, deadline)
}

/// Sends the peer a random challenge, checks its reply, and tells it the verdict.
///
/// The challenge is `#CHALLENGE#{sha256}` followed by 40 bytes from the operating system's
/// random source. The reply must be the HMAC of everything after `#CHALLENGE#` under `key`:
/// `{sha256}` or `{sha384}` followed by the MAC, or (with the `legacy-md5` feature) the
/// raw 16-byte HMAC-MD5 of CPython 3.11 and earlier. The peer then receives `#WELCOME#`,
/// or `#FAILURE#` when the reply is wrong or malformed. The peer runs
/// [`answer_challenge`].
///
/// # Blocking
///
/// Blocks until the reply has arrived, the peer has gone away, or `deadline` has passed.
///
/// # Errors
///
/// - [`Error::AuthenticationFailed`] when the reply is wrong (the keys differ), malformed,
///   longer than 256 bytes, or uses a digest this build does not accept; `#FAILURE#` has
///   been sent.
/// - [`Error::Timeout`] when no reply arrived before `deadline`.
/// - [`Error::Disconnected`] or [`Error::Truncated`] when the peer closed the connection.
/// - [`Error::Io`] when sending fails or no random bytes can be had from the OS.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
/// use procwire::AuthKey;
/// use procwire::auth::{answer_challenge, deliver_challenge};
///
/// let (a, b) = procwire::duplex::<(), ()>()?;
/// let key = AuthKey::from(b"secret-key");
/// let deadline = Instant::now() + Duration::from_secs(5);
/// let peer_key = key.clone();
/// let peer = std::thread::spawn(move || answer_challenge(&b, &peer_key, deadline));
/// deliver_challenge(&a, &key, deadline)?;
/// peer.join().unwrap()?;
/// # Ok::<(), procwire::Error>(())
/// ```
pub fn deliver_challenge<T: HandshakeIo + ?Sized>(
    conn: &T,
    key: &AuthKey,
    deadline: Instant,
) -> Result<()> {
    drive(conn, Handshake::deliver_challenge(key)?, Some(deadline))
}

/// Receives the peer's challenge, sends the HMAC of it under `key`, and reads the verdict.
///
/// A `{sha256}` or `{sha384}` challenge is answered with that digest; a legacy 20-byte
/// challenge (CPython 3.11 and earlier) with a raw HMAC-MD5 when the `legacy-md5` feature
/// is on. The peer runs [`deliver_challenge`].
///
/// # Blocking
///
/// Blocks until the challenge and then the verdict have arrived, the peer has gone away,
/// or `deadline` has passed.
///
/// # Errors
///
/// - [`Error::AuthenticationFailed`] when the peer rejected the reply (`#FAILURE#`: the
///   keys differ), or sent a malformed or oversized challenge or verdict, or a challenge
///   this build cannot answer (an unknown digest; the legacy protocol without the
///   `legacy-md5` feature). Nothing is sent in reply to a challenge that cannot be
///   answered.
/// - [`Error::Timeout`] when the challenge or the verdict did not arrive before
///   `deadline`.
/// - [`Error::Disconnected`] or [`Error::Truncated`] when the peer closed the connection.
/// - [`Error::Io`] when sending fails.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
/// use procwire::{AuthKey, Error};
/// use procwire::auth::{answer_challenge, deliver_challenge};
///
/// let (a, b) = procwire::duplex::<(), ()>()?;
/// let deadline = Instant::now() + Duration::from_secs(5);
/// let peer = std::thread::spawn(move || deliver_challenge(&b, &AuthKey::from("one"), deadline));
/// let err = answer_challenge(&a, &AuthKey::from("two"), deadline).unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "authentication failed: the peer rejected our digest (the two sides use different keys)"
/// );
/// assert!(matches!(peer.join().unwrap(), Err(Error::AuthenticationFailed(_))));
/// # Ok::<(), procwire::Error>(())
/// ```
pub fn answer_challenge<T: HandshakeIo + ?Sized>(
    conn: &T,
    key: &AuthKey,
    deadline: Instant,
) -> Result<()> {
    drive(conn, Handshake::answer_challenge(key), Some(deadline))
}

/// [`deliver_challenge`] with the random bytes given; `None` waits forever.
/// [`deliver_challenge`] with the random bytes given; `None` waits forever. (For the
/// transcript tests.)
#[cfg(test)]
pub(super) fn deliver<T: MessageIo + ?Sized>(
    io: &T,
    key: &AuthKey,
    deadline: Option<Instant>,
    nonce: &[u8; NONCE_LEN],
) -> Result<()> {
    drive(
        io,
        Handshake::deliver_challenge_with_nonce(key, *nonce),
        deadline,
    )
}

/// [`answer_challenge`]; `None` waits forever. (For the transcript tests.)
#[cfg(test)]
pub(super) fn answer<T: MessageIo + ?Sized>(
    io: &T,
    key: &AuthKey,
    deadline: Option<Instant>,
) -> Result<()> {
    drive(io, Handshake::answer_challenge(key), deadline)
}

/// Runs `handshake` over `io` until it succeeds or fails, waiting for each message until
/// `deadline` (`None`: forever), with the connection's limit lowered meanwhile.
fn drive<T: MessageIo + ?Sized>(
    io: &T,
    mut handshake: Handshake,
    deadline: Option<Instant>,
) -> Result<()> {
    let _limit = HandshakeLimit::new(io);
    loop {
        while let Some(payload) = handshake.poll_transmit() {
            io.send_message(&payload)?;
        }
        if handshake.is_authenticated() {
            return Ok(());
        }
        let handled = recv_handshake(io, deadline)
            .map_err(|e| handshake.handle_receive_error(e))
            .and_then(|payload| handshake.handle_message(&payload));
        if let Err(e) = handled {
            // What is left to send (the #FAILURE# verdict) is a courtesy to the peer; the
            // error to report is ours.
            while let Some(payload) = handshake.poll_transmit() {
                let _ = io.send_message(&payload);
            }
            return Err(e);
        }
    }
}

/// Lowers a connection's maximum message size to [`MAX_HANDSHAKE_MESSAGE_SIZE`] while it
/// lives.
struct HandshakeLimit<'a, T: MessageIo + ?Sized> {
    io: &'a T,
    saved: u64,
}

impl<'a, T: MessageIo + ?Sized> HandshakeLimit<'a, T> {
    fn new(io: &'a T) -> Self {
        let saved = io.message_limit();
        io.set_message_limit(MAX_HANDSHAKE_MESSAGE_SIZE);
        HandshakeLimit { io, saved }
    }
}

impl<T: MessageIo + ?Sized> Drop for HandshakeLimit<'_, T> {
    fn drop(&mut self) {
        self.io.set_message_limit(self.saved);
    }
}

/// Receives one handshake message, waiting until `deadline` at most.
fn recv_handshake<T: MessageIo + ?Sized>(io: &T, deadline: Option<Instant>) -> Result<Vec<u8>> {
    loop {
        let now = Instant::now();
        if io.wait_message(deadline.map(|d| d.saturating_duration_since(now)))? {
            break;
        }
        // A wait may end a little early (timer granularity): only the deadline counts.
        if deadline.is_none_or(|d| Instant::now() >= d) {
            return Err(Error::Timeout);
        }
    }
    io.recv_message()
}
