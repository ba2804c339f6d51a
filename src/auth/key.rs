//! [`AuthKey`]: the shared secret, redacted in `Debug` and wiped on drop.

use std::fmt;

#[cfg(doc)]
use super::{answer_challenge, client_handshake, deliver_challenge, server_handshake, Handshake};

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
/// arrangement. Any duplex [`Connection`](crate::Connection) works, whatever its codec: the handshake
/// uses [`send_bytes`](crate::Connection::send_bytes) and
/// [`recv_bytes`](crate::Connection::recv_bytes) only.
/// All of them drive a [`Handshake`], the protocol as a state machine without I/O, which
/// other drivers (non-blocking, async, another transport) can pump themselves.
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
/// [`Error::AuthenticationFailed`](crate::Error::AuthenticationFailed) that names the
/// feature. As in CPython 3.12, accepting the legacy reply lets an active attacker
/// downgrade the MAC to HMAC-MD5, so enable the feature only to talk to old interpreters.
///
/// # Security
///
/// - Challenges come from the operating system's random source (`getrandom`).
/// - Digests are compared in constant time.
/// - Every handshake read is limited to 256 bytes, as in CPython: the connection's maximum
///   message size is lowered for the handshake and restored afterwards, so an
///   unauthenticated peer cannot make this side allocate more.
/// - The whole handshake runs under a deadline, which CPython lacks: a silent peer gives
///   [`Error::Timeout`](crate::Error::Timeout), a peer that closes gives
///   [`Error::Disconnected`](crate::Error::Disconnected).
/// - As with any HMAC key, keys of up to 64 bytes that differ only in trailing zero bytes
///   (`b"a"` and `b"a\0"`) are the same key, in procwire as in CPython.
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
