//! The handshake as a state machine that knows no I/O and no clock: received payloads go
//! in, payloads to send and a verdict come out. The blocking driver (`auth/blocking.rs`)
//! pumps it over a connection; any other driver (non-blocking, async) can do the same.

use std::collections::VecDeque;
use std::fmt;
use std::io;

use super::message::{
    challenge_message, check_verdict, failed, reply_to, verify_reply, CHALLENGE, FAILURE,
    NONCE_LEN, WELCOME,
};
use super::AuthKey;
use crate::error::{Error, Result};

/// The largest handshake message either side sends or accepts, in bytes, as in CPython.
///
/// A driver lowers its connection's maximum message size to this for the handshake, so
/// that an unauthenticated peer cannot make it allocate more, and restores it afterwards.
/// [`Handshake::handle_message`] refuses a longer payload too.
///
/// # Examples
///
/// ```
/// assert_eq!(procwire::auth::MAX_HANDSHAKE_MESSAGE_SIZE, 256);
/// ```
pub const MAX_HANDSHAKE_MESSAGE_SIZE: u64 = 256;

/// The handshake message a [`Handshake`] is waiting for; see [`Handshake::expecting`].
///
/// # Examples
///
/// ```
/// use procwire::AuthKey;
/// use procwire::auth::{Expecting, Handshake};
///
/// let client = Handshake::client(&AuthKey::from("secret-key"))?;
/// assert_eq!(client.expecting(), Some(Expecting::Challenge));
/// assert_eq!(Expecting::Challenge.to_string(), "challenge");
/// # Ok::<(), procwire::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Expecting {
    /// The peer's `#CHALLENGE#…`, to be answered.
    Challenge,
    /// The peer's reply to the challenge this side delivered.
    Reply,
    /// The peer's verdict (`#WELCOME#` or `#FAILURE#`) on this side's reply.
    Verdict,
}

impl Expecting {
    /// The name used in error messages: `"challenge"`, `"reply"` or `"verdict"`.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(procwire::auth::Expecting::Verdict.name(), "verdict");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Expecting::Challenge => "challenge",
            Expecting::Reply => "reply",
            Expecting::Verdict => "verdict",
        }
    }
}

impl fmt::Display for Expecting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// CPython's authentication handshake as a state machine without I/O: payloads of
/// received messages go in through [`handle_message`](Handshake::handle_message),
/// payloads to send come out of [`poll_transmit`](Handshake::poll_transmit), and
/// [`is_authenticated`](Handshake::is_authenticated) or an error is the verdict.
///
/// The machine knows no sockets, no framing and no clock, as rustls' connections do not:
/// a driver receives whole messages (at most [`MAX_HANDSHAKE_MESSAGE_SIZE`] bytes), hands
/// their payloads to the machine, sends what it returns, and keeps its own deadline.
/// [`server_handshake`](crate::auth::server_handshake) and the other blocking functions are
/// such a driver; the protocol, its compatibility with CPython and its security are
/// described on [`AuthKey`].
///
/// The roles, each with a constructor that draws the random challenge from the operating
/// system and one that takes it (for tests and deterministic transcripts):
///
/// | constructor | runs | as |
/// | --- | --- | --- |
/// | [`server`](Handshake::server) | deliver a challenge, then answer one | CPython's `Listener.accept()` |
/// | [`client`](Handshake::client) | answer a challenge, then deliver one | CPython's `Client()` |
/// | [`deliver_challenge`](Handshake::deliver_challenge) | deliver a challenge | [`deliver_challenge`](crate::auth::deliver_challenge) |
/// | [`answer_challenge`](Handshake::answer_challenge) | answer a challenge | [`answer_challenge`](crate::auth::answer_challenge) |
///
/// # Driving it
///
/// 1. Send every payload [`poll_transmit`](Handshake::poll_transmit) returns, in order.
/// 2. Stop with success when [`is_authenticated`](Handshake::is_authenticated).
/// 3. Otherwise receive one message. Give its payload to
///    [`handle_message`](Handshake::handle_message); if it could not be received, give the
///    error to [`handle_receive_error`](Handshake::handle_receive_error), which says what
///    to report. Go to 1.
/// 4. On an error, still send what `poll_transmit` returns (the `#FAILURE#` verdict a
///    server owes a peer whose reply was wrong), ignoring send errors, then report the
///    error. The machine is then finished: feeding it more is an error.
///
/// # Examples
///
/// Two machines against each other in memory:
///
/// ```
/// use procwire::AuthKey;
/// use procwire::auth::Handshake;
///
/// /// Delivers each side's messages to the other until neither has more to say.
/// fn pump(a: &mut Handshake, b: &mut Handshake) -> procwire::Result<()> {
///     loop {
///         let mut moved = false;
///         while let Some(payload) = a.poll_transmit() {
///             b.handle_message(&payload)?;
///             moved = true;
///         }
///         while let Some(payload) = b.poll_transmit() {
///             a.handle_message(&payload)?;
///             moved = true;
///         }
///         if !moved {
///             return Ok(());
///         }
///     }
/// }
///
/// let key = AuthKey::from("secret-key");
/// let mut server = Handshake::server(&key)?;
/// let mut client = Handshake::client(&key)?;
/// pump(&mut server, &mut client)?;
/// assert!(server.is_authenticated() && client.is_authenticated());
///
/// // With another key the server refuses the reply and owes the client `#FAILURE#`.
/// let mut server = Handshake::server(&key)?;
/// let mut client = Handshake::client(&AuthKey::from("wrong-key"))?;
/// assert!(pump(&mut server, &mut client).is_err());
/// assert_eq!(server.poll_transmit().as_deref(), Some(&b"#FAILURE#"[..]));
/// assert!(client.handle_message(b"#FAILURE#").is_err());
/// assert!(!server.is_authenticated() && !client.is_authenticated());
/// # Ok::<(), procwire::Error>(())
/// ```
pub struct Handshake {
    key: AuthKey,
    state: State,
    /// The step after the current one, if any.
    next: Option<Step>,
    /// Payloads to send, oldest first.
    outgoing: VecDeque<Vec<u8>>,
}

/// One half of a handshake.
#[derive(Clone, Copy)]
enum Step {
    /// Deliver a challenge with these random bytes and check the reply.
    Deliver([u8; NONCE_LEN]),
    /// Answer the peer's challenge and read its verdict.
    Answer,
}

enum State {
    /// Delivered `challenge` (the whole message); waiting for the reply.
    Reply {
        challenge: Vec<u8>,
    },
    Challenge,
    Verdict,
    Authenticated,
    Failed,
}

impl Handshake {
    /// The server side: deliver a challenge, check the reply and send the verdict; then
    /// answer the client's challenge and read its verdict. The challenge's 40 random bytes
    /// come from the operating system.
    ///
    /// # Errors
    ///
    /// - [`Error::Io`] when no random bytes can be had from the operating system.
    ///
    /// # Examples
    ///
    /// ```
    /// use procwire::AuthKey;
    /// use procwire::auth::{Expecting, Handshake};
    ///
    /// let mut server = Handshake::server(&AuthKey::from("secret-key"))?;
    /// let challenge = server.poll_transmit().unwrap();
    /// assert!(challenge.starts_with(b"#CHALLENGE#{sha256}"));
    /// assert_eq!(challenge.len(), 59);
    /// assert_eq!(server.expecting(), Some(Expecting::Reply));
    /// # Ok::<(), procwire::Error>(())
    /// ```
    pub fn server(key: &AuthKey) -> Result<Handshake> {
        Ok(Handshake::server_with_nonce(key, nonce()?))
    }

    /// [`server`](Handshake::server) with the challenge's random bytes given.
    ///
    /// Use it only for reproducible transcripts: a predictable challenge lets whoever
    /// knows it prepare an answer.
    ///
    /// # Examples
    ///
    /// The challenge of CPython's test vectors (wire protocol reference §8.2):
    ///
    /// ```
    /// use procwire::AuthKey;
    /// use procwire::auth::Handshake;
    ///
    /// let nonce: [u8; 40] = std::array::from_fn(|i| i as u8);
    /// let mut server = Handshake::server_with_nonce(&AuthKey::from("secret-key"), nonce);
    /// let challenge = server.poll_transmit().unwrap();
    /// assert_eq!(challenge, [&b"#CHALLENGE#{sha256}"[..], &nonce].concat());
    /// ```
    pub fn server_with_nonce(key: &AuthKey, nonce: [u8; NONCE_LEN]) -> Handshake {
        Handshake::new(key, Step::Deliver(nonce), Some(Step::Answer))
    }

    /// The client side: answer the server's challenge and read its verdict; then deliver
    /// a challenge, check the reply and send the verdict. The challenge's 40 random bytes
    /// come from the operating system.
    ///
    /// # Errors
    ///
    /// - [`Error::Io`] when no random bytes can be had from the operating system.
    ///
    /// # Examples
    ///
    /// ```
    /// use procwire::AuthKey;
    /// use procwire::auth::{Expecting, Handshake};
    ///
    /// let mut client = Handshake::client(&AuthKey::from("secret-key"))?;
    /// assert_eq!(client.poll_transmit(), None); // the server speaks first
    /// assert_eq!(client.expecting(), Some(Expecting::Challenge));
    /// # Ok::<(), procwire::Error>(())
    /// ```
    pub fn client(key: &AuthKey) -> Result<Handshake> {
        Ok(Handshake::client_with_nonce(key, nonce()?))
    }

    /// [`client`](Handshake::client) with the challenge's random bytes given; see
    /// [`server_with_nonce`](Handshake::server_with_nonce).
    ///
    /// # Examples
    ///
    /// ```
    /// use procwire::AuthKey;
    /// use procwire::auth::Handshake;
    ///
    /// let client = Handshake::client_with_nonce(&AuthKey::from("secret-key"), [0x80; 40]);
    /// assert!(!client.is_authenticated());
    /// ```
    pub fn client_with_nonce(key: &AuthKey, nonce: [u8; NONCE_LEN]) -> Handshake {
        Handshake::new(key, Step::Answer, Some(Step::Deliver(nonce)))
    }

    /// One step: deliver a challenge, check the reply and send the verdict, as
    /// [`deliver_challenge`](crate::auth::deliver_challenge). The challenge's 40 random bytes
    /// come from the operating system.
    ///
    /// # Errors
    ///
    /// - [`Error::Io`] when no random bytes can be had from the operating system.
    ///
    /// # Examples
    ///
    /// ```
    /// use procwire::AuthKey;
    /// use procwire::auth::Handshake;
    ///
    /// let key = AuthKey::from("secret-key");
    /// let mut ours = Handshake::deliver_challenge(&key)?;
    /// let mut theirs = Handshake::answer_challenge(&key);
    /// theirs.handle_message(&ours.poll_transmit().unwrap())?;
    /// ours.handle_message(&theirs.poll_transmit().unwrap())?;
    /// theirs.handle_message(&ours.poll_transmit().unwrap())?;
    /// assert!(ours.is_authenticated() && theirs.is_authenticated());
    /// # Ok::<(), procwire::Error>(())
    /// ```
    pub fn deliver_challenge(key: &AuthKey) -> Result<Handshake> {
        Ok(Handshake::deliver_challenge_with_nonce(key, nonce()?))
    }

    /// [`deliver_challenge`](Handshake::deliver_challenge) with the challenge's random
    /// bytes given; see [`server_with_nonce`](Handshake::server_with_nonce).
    ///
    /// # Examples
    ///
    /// ```
    /// use procwire::AuthKey;
    /// use procwire::auth::Handshake;
    ///
    /// let mut ours = Handshake::deliver_challenge_with_nonce(&AuthKey::from("k"), [7; 40]);
    /// assert_eq!(ours.poll_transmit().unwrap().len(), 59);
    /// ```
    pub fn deliver_challenge_with_nonce(key: &AuthKey, nonce: [u8; NONCE_LEN]) -> Handshake {
        Handshake::new(key, Step::Deliver(nonce), None)
    }

    /// One step: answer the peer's challenge and read its verdict, as
    /// [`answer_challenge`](crate::auth::answer_challenge). Needs no randomness.
    ///
    /// Succeeding proves this side to the peer, not the peer to this side: anyone can send
    /// a challenge and `#WELCOME#`.
    ///
    /// # Examples
    ///
    /// ```
    /// use procwire::AuthKey;
    /// use procwire::auth::{Expecting, Handshake};
    ///
    /// let mut ours = Handshake::answer_challenge(&AuthKey::from("secret-key"));
    /// ours.handle_message(&[&b"#CHALLENGE#{sha256}"[..], &[0; 40]].concat())?;
    /// assert!(ours.poll_transmit().unwrap().starts_with(b"{sha256}"));
    /// assert_eq!(ours.expecting(), Some(Expecting::Verdict));
    /// # Ok::<(), procwire::Error>(())
    /// ```
    pub fn answer_challenge(key: &AuthKey) -> Handshake {
        Handshake::new(key, Step::Answer, None)
    }

    fn new(key: &AuthKey, first: Step, next: Option<Step>) -> Handshake {
        let mut handshake = Handshake {
            key: key.clone(),
            state: State::Challenge,
            next,
            outgoing: VecDeque::new(),
        };
        handshake.start(first);
        handshake
    }

    /// The next payload to send as one message, oldest first; `None` when there is
    /// nothing to send now. Every payload is at most [`MAX_HANDSHAKE_MESSAGE_SIZE`] bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// use procwire::AuthKey;
    /// use procwire::auth::Handshake;
    ///
    /// let mut server = Handshake::server(&AuthKey::from("secret-key"))?;
    /// assert!(server.poll_transmit().is_some()); // the challenge
    /// assert_eq!(server.poll_transmit(), None);
    /// # Ok::<(), procwire::Error>(())
    /// ```
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.outgoing.pop_front()
    }

    /// Takes the payload of the message the peer sent: the one
    /// [`expecting`](Handshake::expecting) names.
    ///
    /// On success the machine has moved on: it may have payloads to send (a reply, a
    /// verdict, its own challenge), and it may be authenticated. On an error it is
    /// finished, and has queued `#FAILURE#` if the payload was a wrong reply to its
    /// challenge; a challenge that cannot be answered gets no reply.
    ///
    /// # Errors
    ///
    /// [`Error::AuthenticationFailed`], with the reason, when:
    /// - the reply to this side's challenge is wrong (the keys differ), malformed, or uses
    ///   a digest this build does not accept;
    /// - the challenge is malformed, or names a digest this build cannot answer with;
    /// - the verdict is `#FAILURE#` (the keys differ) or anything but `#WELCOME#`;
    /// - the payload is longer than [`MAX_HANDSHAKE_MESSAGE_SIZE`];
    /// - the machine is finished: authenticated (the machine then stays authenticated) or
    ///   failed.
    ///
    /// # Examples
    ///
    /// ```
    /// use procwire::{AuthKey, Error};
    /// use procwire::auth::Handshake;
    ///
    /// let mut server = Handshake::server(&AuthKey::from("secret-key"))?;
    /// server.poll_transmit();
    /// let err = server.handle_message(b"{sha256}not the right digest").unwrap_err();
    /// assert!(matches!(err, Error::AuthenticationFailed(_)));
    /// assert_eq!(server.poll_transmit().as_deref(), Some(&b"#FAILURE#"[..]));
    /// assert!(server.handle_message(b"#WELCOME#").is_err()); // finished
    /// # Ok::<(), procwire::Error>(())
    /// ```
    pub fn handle_message(&mut self, payload: &[u8]) -> Result<()> {
        let Some(expecting) = self.expecting() else {
            return Err(self.finished(payload));
        };
        let len = payload.len() as u64;
        let result = if len > MAX_HANDSHAKE_MESSAGE_SIZE {
            Err(failed(format!(
                "handshake {expecting} of {len} bytes exceeds the \
                 {MAX_HANDSHAKE_MESSAGE_SIZE}-byte limit"
            )))
        } else {
            self.step(payload)
        };
        result.map_err(|e| self.fail(e))
    }

    /// Takes the error that kept the driver from receiving the message the machine waits
    /// for, and returns the error to report. The machine is then finished; when it was
    /// waiting for the reply to its challenge and the error is an
    /// [`Error::AuthenticationFailed`], it has queued `#FAILURE#` for the peer.
    ///
    /// An oversized or malformed frame becomes an [`Error::AuthenticationFailed`] that
    /// names the message: [`Error::MessageTooLarge`] gives "handshake reply of 1073741824
    /// bytes exceeds the 256-byte limit", [`Error::Protocol`] gives "malformed handshake
    /// challenge: …". Any other error ([`Error::Timeout`], [`Error::Disconnected`],
    /// [`Error::Truncated`], [`Error::Io`], …) is returned as it is. A machine that is
    /// already finished is left as it is.
    ///
    /// # Examples
    ///
    /// ```
    /// use procwire::{AuthKey, Error};
    /// use procwire::auth::Handshake;
    ///
    /// let mut server = Handshake::server(&AuthKey::from("secret-key"))?;
    /// server.poll_transmit();
    /// let err = server.handle_receive_error(Error::MessageTooLarge { len: 1 << 30, limit: 256 });
    /// assert_eq!(
    ///     err.to_string(),
    ///     "authentication failed: handshake reply of 1073741824 bytes exceeds the 256-byte limit"
    /// );
    /// assert_eq!(server.poll_transmit().as_deref(), Some(&b"#FAILURE#"[..]));
    ///
    /// let mut client = Handshake::client(&AuthKey::from("secret-key"))?;
    /// let err = client.handle_receive_error(Error::Disconnected);
    /// assert!(err.is_disconnected());
    /// assert_eq!(client.poll_transmit(), None);
    /// # Ok::<(), procwire::Error>(())
    /// ```
    pub fn handle_receive_error(&mut self, error: Error) -> Error {
        let Some(expecting) = self.expecting() else {
            return error;
        };
        let error = match error {
            Error::MessageTooLarge { len, limit } => failed(format!(
                "handshake {expecting} of {len} bytes exceeds the {limit}-byte limit"
            )),
            Error::Protocol(why) => failed(format!("malformed handshake {expecting}: {why}")),
            other => other,
        };
        self.fail(error)
    }

    /// The message the machine waits for; `None` once it is finished (authenticated or
    /// failed).
    ///
    /// # Examples
    ///
    /// ```
    /// use procwire::AuthKey;
    /// use procwire::auth::{Expecting, Handshake};
    ///
    /// let mut server = Handshake::server(&AuthKey::from("secret-key"))?;
    /// assert_eq!(server.expecting(), Some(Expecting::Reply));
    /// let _ = server.handle_message(b"garbage");
    /// assert_eq!(server.expecting(), None);
    /// # Ok::<(), procwire::Error>(())
    /// ```
    pub fn expecting(&self) -> Option<Expecting> {
        match self.state {
            State::Reply { .. } => Some(Expecting::Reply),
            State::Challenge => Some(Expecting::Challenge),
            State::Verdict => Some(Expecting::Verdict),
            State::Authenticated | State::Failed => None,
        }
    }

    /// Whether the handshake has succeeded and everything it had to send has been taken
    /// with [`poll_transmit`](Handshake::poll_transmit). Only then is the connection
    /// authenticated: the last `#WELCOME#` is part of the handshake.
    ///
    /// # Examples
    ///
    /// See the [type's](Handshake) example.
    ///
    /// ```
    /// let server = procwire::auth::Handshake::server(&procwire::AuthKey::from("k"))?;
    /// assert!(!server.is_authenticated());
    /// # Ok::<(), procwire::Error>(())
    /// ```
    pub fn is_authenticated(&self) -> bool {
        matches!(self.state, State::Authenticated) && self.outgoing.is_empty()
    }

    /// Begins `step`.
    fn start(&mut self, step: Step) {
        self.state = match step {
            Step::Deliver(nonce) => {
                let challenge = challenge_message(&nonce);
                self.outgoing.push_back(challenge.clone());
                State::Reply { challenge }
            }
            Step::Answer => State::Challenge,
        };
    }

    /// Ends the current step: begins the next one, or authenticates.
    fn finish_step(&mut self) {
        match self.next.take() {
            Some(step) => self.start(step),
            None => self.state = State::Authenticated,
        }
    }

    /// Handles a payload of an acceptable size in the current state.
    fn step(&mut self, payload: &[u8]) -> Result<()> {
        let key = self.key.as_bytes();
        match &self.state {
            State::Reply { challenge } => {
                verify_reply(key, &challenge[CHALLENGE.len()..], payload)?;
                self.outgoing.push_back(WELCOME.to_vec());
                self.finish_step();
            }
            State::Challenge => {
                let reply = reply_to(key, payload)?;
                self.outgoing.push_back(reply);
                self.state = State::Verdict;
            }
            State::Verdict => {
                check_verdict(payload)?;
                self.finish_step();
            }
            State::Authenticated | State::Failed => return Err(self.finished(payload)),
        }
        Ok(())
    }

    /// Finishes the machine with `error`, queueing the verdict a wrong reply is owed.
    fn fail(&mut self, error: Error) -> Error {
        let was = std::mem::replace(&mut self.state, State::Failed);
        if matches!(was, State::Reply { .. }) && matches!(error, Error::AuthenticationFailed(_)) {
            self.outgoing.push_back(FAILURE.to_vec());
        }
        error
    }

    /// The error for a `payload` fed to a finished machine.
    fn finished(&self, payload: &[u8]) -> Error {
        match self.state {
            State::Authenticated => failed(format!(
                "the handshake is already complete: unexpected {}-byte message",
                payload.len()
            )),
            _ => failed("the handshake has already failed"),
        }
    }

    /// The state's name, for `Debug`.
    fn state_name(&self) -> &'static str {
        match self.state {
            State::Reply { .. } => "waiting for the reply",
            State::Challenge => "waiting for the challenge",
            State::Verdict => "waiting for the verdict",
            State::Authenticated => "authenticated",
            State::Failed => "failed",
        }
    }
}

/// Shows the state and how many payloads wait to be sent; never the key, nor the bytes
/// of a challenge or digest.
impl fmt::Debug for Handshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handshake")
            .field("state", &self.state_name())
            .field("queued", &self.outgoing.len())
            .finish_non_exhaustive()
    }
}

/// Fresh random bytes for a challenge, from the operating system.
pub(super) fn nonce() -> Result<[u8; NONCE_LEN]> {
    let mut nonce = [0; NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(|e| match e.raw_os_error() {
        Some(code) => Error::Io(io::Error::from_raw_os_error(code)),
        None => Error::Io(io::Error::other(format!(
            "cannot read random bytes from the operating system: {e}"
        ))),
    })?;
    Ok(nonce)
}

#[cfg(test)]
mod tests;
