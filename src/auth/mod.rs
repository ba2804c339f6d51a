//! Authentication: CPython's HMAC challenge/response handshake over a message connection.
//!
//! The user-facing description (protocol, compatibility, security) is on [`AuthKey`],
//! since this module is private. Layout: the public key type and step functions first,
//! then the I/O glue (`deliver`, `answer`, the 256-byte limit guard), then pure functions
//! that build and check handshake messages without I/O (`challenge_message`, `reply_to`,
//! `verify_reply`, `check_verdict`), which the unit tests in `auth/tests.rs` drive with
//! CPython's test vectors and injected random bytes.

use std::fmt;
use std::io;
use std::time::{Duration, Instant};

use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use sha2::{Sha256, Sha384};

use crate::channel::Connection;
use crate::error::{Error, Result};

/// The prefix of a challenge message.
const CHALLENGE: &[u8] = b"#CHALLENGE#";
/// The verdict for a correct reply.
const WELCOME: &[u8] = b"#WELCOME#";
/// The verdict for a wrong reply.
const FAILURE: &[u8] = b"#FAILURE#";
/// Random bytes in a challenge this side delivers (CPython 3.12+).
const NONCE_LEN: usize = 40;
/// The digest this side offers.
const OFFERED: Digest = Digest::Sha256;
/// Length of a legacy challenge body (CPython 3.11 and earlier).
const LEGACY_CHALLENGE_LEN: usize = 20;
/// Length of a legacy reply: a raw HMAC-MD5.
const LEGACY_REPLY_LEN: usize = 16;
/// The longest digest name between the braces of `{name}`.
const MAX_DIGEST_NAME: usize = 8;
/// The largest message read during the handshake, in bytes (as in CPython).
const HANDSHAKE_LIMIT: u64 = 256;

/// A shared secret for the authentication handshake.
///
/// Any bytes make a key, the empty string included. The key is never shown: `Debug`
/// prints only its length, and the bytes are overwritten (best effort) when the key is
/// dropped.
///
/// # The handshake
///
/// Both ends hold the same key. Each side sends the other a random challenge and
/// checks that the answer is the HMAC of that challenge under the key, so the handshake is
/// mutual and the key never crosses the wire. It takes six messages, in the order of
/// CPython's `Listener.accept()` and `Client()`:
///
/// | # | direction | step | content |
/// | --- | --- | --- | --- |
/// | 1 | server → client | server [`deliver_challenge`] | `#CHALLENGE#{sha256}` + 40 random bytes |
/// | 2 | client → server | client [`answer_challenge`] | `{sha256}` + HMAC-SHA256(key, `{sha256}` + random) |
/// | 3 | server → client | server [`deliver_challenge`] | `#WELCOME#` or `#FAILURE#` |
/// | 4–6 | the other way | client [`deliver_challenge`], server [`answer_challenge`] | as 1–3 |
///
/// [`server_handshake`] and [`client_handshake`] run the two steps of each side in that
/// order under one timeout; the step functions are there for callers that need another
/// arrangement. Any duplex [`Connection`] works, whatever its codec: the handshake uses
/// [`send_bytes`](Connection::send_bytes) and [`recv_bytes`](Connection::recv_bytes) only.
///
/// # Compatibility with CPython
///
/// The bytes are those of `multiprocessing.connection.deliver_challenge` and
/// `answer_challenge` in CPython 3.12 and later: procwire offers `{sha256}`, answers a
/// challenge with the digest it names (`sha256` or `sha384`), and accepts `{sha256}` and
/// `{sha384}` replies. The `sha3_256` and `sha3_384` digests, which CPython also accepts,
/// are refused with a clear error; no CPython version offers them unprompted.
///
/// CPython 3.11 and earlier speak the legacy protocol: a 20-byte challenge answered with a
/// raw 16-byte HMAC-MD5. procwire speaks it, in both directions, only when built with the
/// `legacy-md5` cargo feature; without it, a legacy peer is refused with an
/// [`Error::AuthenticationFailed`] that names the feature. As in CPython 3.12, accepting
/// the legacy reply lets an active attacker downgrade the MAC to HMAC-MD5, so enable the
/// feature only to talk to old interpreters.
///
/// # Security
///
/// - Challenges come from the operating system's random source (`getrandom`).
/// - Digests are compared in constant time.
/// - Every handshake read is limited to 256 bytes, as in CPython: the connection's maximum
///   message size is lowered for the handshake and restored afterwards, so an
///   unauthenticated peer cannot make this side allocate more.
/// - The whole handshake runs under a deadline, which CPython lacks: a silent peer gives
///   [`Error::Timeout`], a peer that closes gives [`Error::Disconnected`].
/// - An empty key is a real key, as in CPython 3.13. (CPython 3.11 and 3.12 listeners skip
///   the handshake for `b''`, so a client with the empty key times out against them.)
/// - Error messages never contain key or digest bytes, and `Debug` of a key is
///   redacted.
/// - The handshake authenticates the peer and nothing more: what follows is neither
///   encrypted nor integrity-protected. Over TCP, anyone on the path can read and inject
///   messages; prefer Unix sockets, or a TLS tunnel.
///
/// # Examples
///
/// ```
/// use procwire::AuthKey;
///
/// let key = AuthKey::from("secret-key");
/// assert_eq!(key.as_bytes(), b"secret-key");
/// assert_eq!(format!("{key:?}"), "AuthKey(<redacted, 10 bytes>)");
/// assert!(AuthKey::from(Vec::new()).is_empty());
/// ```
#[derive(Clone)]
pub struct AuthKey(Vec<u8>);

impl AuthKey {
    /// Makes a key from any bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// let key = procwire::AuthKey::new(*b"\x00\xff");
    /// assert_eq!(key.len(), 2);
    /// ```
    pub fn new(key: impl Into<Vec<u8>>) -> AuthKey {
        AuthKey(key.into())
    }

    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The key's length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the key is empty (which is still a key: the handshake runs with it).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for AuthKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AuthKey(<redacted, {} bytes>)", self.0.len())
    }
}

impl Drop for AuthKey {
    fn drop(&mut self) {
        self.0.fill(0);
        std::hint::black_box(&mut self.0);
    }
}

impl From<&[u8]> for AuthKey {
    fn from(key: &[u8]) -> AuthKey {
        AuthKey(key.to_vec())
    }
}

impl<const N: usize> From<&[u8; N]> for AuthKey {
    fn from(key: &[u8; N]) -> AuthKey {
        AuthKey(key.to_vec())
    }
}

impl From<Vec<u8>> for AuthKey {
    fn from(key: Vec<u8>) -> AuthKey {
        AuthKey(key)
    }
}

impl From<&str> for AuthKey {
    fn from(key: &str) -> AuthKey {
        AuthKey(key.as_bytes().to_vec())
    }
}

impl From<String> for AuthKey {
    fn from(key: String) -> AuthKey {
        AuthKey(key.into_bytes())
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
/// use procwire::{client_handshake, server_handshake, AuthKey};
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
pub fn server_handshake<S, R, C>(
    conn: &Connection<S, R, C>,
    key: &AuthKey,
    timeout: Duration,
) -> Result<()> {
    let deadline = Instant::now().checked_add(timeout);
    deliver(conn, key, deadline, &nonce()?)?;
    answer(conn, key, deadline)
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
/// use procwire::{client_handshake, server_handshake, AuthKey, Error};
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
pub fn client_handshake<S, R, C>(
    conn: &Connection<S, R, C>,
    key: &AuthKey,
    timeout: Duration,
) -> Result<()> {
    let deadline = Instant::now().checked_add(timeout);
    answer(conn, key, deadline)?;
    deliver(conn, key, deadline, &nonce()?)
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
/// use procwire::{answer_challenge, deliver_challenge, AuthKey};
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
pub fn deliver_challenge<S, R, C>(
    conn: &Connection<S, R, C>,
    key: &AuthKey,
    deadline: Instant,
) -> Result<()> {
    deliver(conn, key, Some(deadline), &nonce()?)
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
/// use procwire::{answer_challenge, deliver_challenge, AuthKey, Error};
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
pub fn answer_challenge<S, R, C>(
    conn: &Connection<S, R, C>,
    key: &AuthKey,
    deadline: Instant,
) -> Result<()> {
    answer(conn, key, Some(deadline))
}

/// [`deliver_challenge`] with the random bytes given; `None` waits forever.
fn deliver<S, R, C>(
    conn: &Connection<S, R, C>,
    key: &AuthKey,
    deadline: Option<Instant>,
    nonce: &[u8; NONCE_LEN],
) -> Result<()> {
    let _limit = HandshakeLimit::new(conn);
    let challenge = challenge_message(nonce);
    conn.send_bytes(&challenge)?;
    let checked = recv_handshake(conn, deadline, "reply")
        .and_then(|reply| verify_reply(key.as_bytes(), &challenge[CHALLENGE.len()..], &reply));
    match checked {
        Ok(()) => conn.send_bytes(WELCOME),
        Err(e @ Error::AuthenticationFailed(_)) => {
            // The verdict is a courtesy to the peer; the error to report is ours.
            let _ = conn.send_bytes(FAILURE);
            Err(e)
        }
        Err(e) => Err(e),
    }
}

/// [`answer_challenge`]; `None` waits forever.
fn answer<S, R, C>(
    conn: &Connection<S, R, C>,
    key: &AuthKey,
    deadline: Option<Instant>,
) -> Result<()> {
    let _limit = HandshakeLimit::new(conn);
    let challenge = recv_handshake(conn, deadline, "challenge")?;
    let reply = reply_to(key.as_bytes(), &challenge)?;
    conn.send_bytes(&reply)?;
    let verdict = recv_handshake(conn, deadline, "verdict")?;
    check_verdict(&verdict)
}

/// Lowers a connection's maximum message size to [`HANDSHAKE_LIMIT`] while it lives.
struct HandshakeLimit<'a, S, R, C> {
    conn: &'a Connection<S, R, C>,
    saved: u64,
}

impl<'a, S, R, C> HandshakeLimit<'a, S, R, C> {
    fn new(conn: &'a Connection<S, R, C>) -> Self {
        let saved = conn.max_message_size();
        conn.set_max_message_size(HANDSHAKE_LIMIT);
        HandshakeLimit { conn, saved }
    }
}

impl<S, R, C> Drop for HandshakeLimit<'_, S, R, C> {
    fn drop(&mut self) {
        self.conn.set_max_message_size(self.saved);
    }
}

/// Receives one handshake message (the `what`), waiting until `deadline` at most.
fn recv_handshake<S, R, C>(
    conn: &Connection<S, R, C>,
    deadline: Option<Instant>,
    what: &str,
) -> Result<Vec<u8>> {
    loop {
        let now = Instant::now();
        if conn.poll(deadline.map(|d| d.saturating_duration_since(now)))? {
            break;
        }
        // A wait may end a little early (timer granularity): only the deadline counts.
        if deadline.map_or(true, |d| Instant::now() >= d) {
            return Err(Error::Timeout);
        }
    }
    conn.recv_bytes().map_err(|e| match e {
        Error::MessageTooLarge { len, limit } => failed(format!(
            "handshake {what} of {len} bytes exceeds the {limit}-byte limit"
        )),
        Error::Protocol(why) => failed(format!("malformed handshake {what}: {why}")),
        other => other,
    })
}

/// Fresh random bytes for a challenge, from the operating system.
fn nonce() -> Result<[u8; NONCE_LEN]> {
    let mut nonce = [0; NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(|e| match e.raw_os_error() {
        Some(code) => Error::Io(io::Error::from_raw_os_error(code)),
        None => Error::Io(io::Error::other(format!(
            "cannot read random bytes from the operating system: {e}"
        ))),
    })?;
    Ok(nonce)
}

/// The digests this build can compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Digest {
    Sha256,
    Sha384,
    #[cfg(feature = "legacy-md5")]
    Md5,
}

/// An HMAC of `msg` under `key`, ready to finalize or verify.
fn keyed<M: Mac + KeyInit>(key: &[u8], msg: &[u8]) -> M {
    // HMAC takes keys of any length (longer ones are hashed), so this cannot fail.
    let mut mac = <M as KeyInit>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(msg);
    mac
}

impl Digest {
    /// The name CPython uses between the braces.
    fn name(self) -> &'static str {
        match self {
            Digest::Sha256 => "sha256",
            Digest::Sha384 => "sha384",
            #[cfg(feature = "legacy-md5")]
            Digest::Md5 => "md5",
        }
    }

    /// Looks up the digest named between braces, saying why a name is refused.
    fn from_name(name: &[u8]) -> Result<Digest> {
        match name {
            b"sha256" => Ok(Digest::Sha256),
            b"sha384" => Ok(Digest::Sha384),
            #[cfg(feature = "legacy-md5")]
            b"md5" => Ok(Digest::Md5),
            #[cfg(not(feature = "legacy-md5"))]
            b"md5" => Err(legacy("names the md5 digest")),
            b"sha3_256" | b"sha3_384" => Err(failed(format!(
                "the peer uses the {} digest, which procwire does not implement \
                 (it accepts sha256 and sha384)",
                name.escape_ascii()
            ))),
            _ => Err(failed(format!(
                "the peer uses an unsupported digest {{{}}}",
                name.escape_ascii()
            ))),
        }
    }

    /// Bytes in this digest's MAC.
    fn output_len(self) -> usize {
        match self {
            Digest::Sha256 => 32,
            Digest::Sha384 => 48,
            #[cfg(feature = "legacy-md5")]
            Digest::Md5 => 16,
        }
    }

    /// HMAC-this(key, msg).
    fn mac(self, key: &[u8], msg: &[u8]) -> Vec<u8> {
        match self {
            Digest::Sha256 => keyed::<Hmac<Sha256>>(key, msg)
                .finalize()
                .into_bytes()
                .to_vec(),
            Digest::Sha384 => keyed::<Hmac<Sha384>>(key, msg)
                .finalize()
                .into_bytes()
                .to_vec(),
            #[cfg(feature = "legacy-md5")]
            Digest::Md5 => keyed::<Hmac<md5::Md5>>(key, msg)
                .finalize()
                .into_bytes()
                .to_vec(),
        }
    }

    /// Whether `tag` is HMAC-this(key, msg), compared in constant time.
    fn verify(self, key: &[u8], msg: &[u8], tag: &[u8]) -> bool {
        match self {
            Digest::Sha256 => keyed::<Hmac<Sha256>>(key, msg).verify_slice(tag).is_ok(),
            Digest::Sha384 => keyed::<Hmac<Sha384>>(key, msg).verify_slice(tag).is_ok(),
            #[cfg(feature = "legacy-md5")]
            Digest::Md5 => keyed::<Hmac<md5::Md5>>(key, msg).verify_slice(tag).is_ok(),
        }
    }
}

/// An [`Error::AuthenticationFailed`] with `why`.
fn failed(why: impl Into<String>) -> Error {
    Error::AuthenticationFailed(why.into())
}

/// The error for a peer that speaks the legacy protocol (it `what`) in a build without it.
#[cfg(not(feature = "legacy-md5"))]
fn legacy(what: &str) -> Error {
    failed(format!(
        "the peer {what}: it uses the legacy HMAC-MD5 protocol of CPython 3.11 and earlier, \
         which needs procwire's `legacy-md5` cargo feature"
    ))
}

/// The digest of a legacy (unprefixed) message, which the peer `what`.
#[cfg(feature = "legacy-md5")]
fn legacy_digest(_what: &str) -> Result<Digest> {
    Ok(Digest::Md5)
}

/// The digest of a legacy (unprefixed) message, which the peer `what`.
#[cfg(not(feature = "legacy-md5"))]
fn legacy_digest(what: &str) -> Result<Digest> {
    Err(legacy(what))
}

/// The challenge message this side delivers: `#CHALLENGE#{sha256}` + `nonce`.
fn challenge_message(nonce: &[u8; NONCE_LEN]) -> Vec<u8> {
    let name = OFFERED.name().as_bytes();
    let mut msg = Vec::with_capacity(CHALLENGE.len() + name.len() + 2 + NONCE_LEN);
    msg.extend_from_slice(CHALLENGE);
    msg.push(b'{');
    msg.extend_from_slice(name);
    msg.push(b'}');
    msg.extend_from_slice(nonce);
    msg
}

/// Splits `{name}payload` into the digest and the payload.
fn split_digest(msg: &[u8]) -> Result<(Digest, &[u8])> {
    let rest = msg.strip_prefix(b"{").ok_or_else(|| {
        failed(format!(
            "the peer sent a {}-byte handshake message without a {{digest}} prefix",
            msg.len()
        ))
    })?;
    let end = rest
        .iter()
        .take(MAX_DIGEST_NAME + 1)
        .position(|&b| b == b'}')
        .ok_or_else(|| failed("the peer sent a {digest} prefix with no closing brace"))?;
    Ok((Digest::from_name(&rest[..end])?, &rest[end + 1..]))
}

/// The reply to the challenge message `challenge`: `{name}` + HMAC-name(key, body), or
/// the raw HMAC-MD5 of a legacy 20-byte body.
fn reply_to(key: &[u8], challenge: &[u8]) -> Result<Vec<u8>> {
    let body = challenge.strip_prefix(CHALLENGE).ok_or_else(|| {
        failed(format!(
            "expected a challenge, got a {}-byte message without the #CHALLENGE# prefix",
            challenge.len()
        ))
    })?;
    if body.len() < LEGACY_CHALLENGE_LEN {
        return Err(failed(format!(
            "the peer's challenge of {} bytes is too short",
            body.len()
        )));
    }
    if body.len() == LEGACY_CHALLENGE_LEN {
        return Ok(legacy_digest("sent a 20-byte challenge")?.mac(key, body));
    }
    let (digest, _) = split_digest(body)?;
    let mut reply = format!("{{{}}}", digest.name()).into_bytes();
    reply.extend_from_slice(&digest.mac(key, body));
    Ok(reply)
}

/// Checks `reply` against the challenge `body` this side sent (everything after
/// `#CHALLENGE#`).
fn verify_reply(key: &[u8], body: &[u8], reply: &[u8]) -> Result<()> {
    let (digest, tag) = if reply.len() == LEGACY_REPLY_LEN || reply.len() == LEGACY_CHALLENGE_LEN {
        let what = format!("answered with an unprefixed {}-byte digest", reply.len());
        (legacy_digest(&what)?, reply)
    } else {
        split_digest(reply)?
    };
    if tag.len() != digest.output_len() {
        return Err(failed(format!(
            "the peer's {} digest has {} bytes, expected {}",
            digest.name(),
            tag.len(),
            digest.output_len()
        )));
    }
    if !digest.verify(key, body, tag) {
        return Err(failed(
            "the peer's digest was wrong (the two sides use different keys)",
        ));
    }
    Ok(())
}

/// Checks the verdict message the peer sent after our reply.
fn check_verdict(msg: &[u8]) -> Result<()> {
    match msg {
        WELCOME => Ok(()),
        FAILURE => Err(failed(
            "the peer rejected our digest (the two sides use different keys)",
        )),
        _ => Err(failed(format!(
            "expected #WELCOME# or #FAILURE#, got a {}-byte message",
            msg.len()
        ))),
    }
}

#[cfg(test)]
mod tests;
