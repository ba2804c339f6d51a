//! Authentication: CPython's HMAC challenge/response handshake, for a connection you
//! bring yourself.
//!
//! [`Listener`](crate::Listener) and [`Client`](crate::Client) run the handshake when
//! they have a key; nothing here is needed for that. This module is for the other
//! arrangements: a [`Connection`](crate::Connection) made from a descriptor you already
//! have ([`server_handshake`], [`client_handshake`] and the two step functions, which
//! block until a deadline), and transports procwire does not drive at all (an async
//! socket, a test harness): [`Handshake`] is the protocol as a state machine with no I/O
//! and no clock, which any driver pumps. The protocol, its compatibility with CPython and
//! its security properties are described on [`AuthKey`].
//!
//! Layout, from the bottom up:
//!
//! - `message.rs`: pure functions that build and check handshake messages
//!   (`challenge_message`, `reply_to`, `verify_reply`, `check_verdict`) for every digest;
//! - `handshake.rs`: [`Handshake`], the state machine that sequences them for each role;
//! - `blocking.rs`: the blocking driver ([`server_handshake`] and the other step
//!   functions), which pumps a [`Handshake`] over the message layer;
//! - `key.rs`: [`AuthKey`], re-exported at the crate root;
//! - `peer.rs`: [`PeerCredentials`], the kernel's word on who the peer of a Unix-domain
//!   socket is, which a [`Listener`](crate::Listener) can check before any handshake.
//!
//! The unit tests in `auth/tests.rs` drive the pure functions and the blocking driver with
//! CPython's test vectors; those in `auth/handshake/tests.rs` drive the machine alone.

use std::time::Duration;

mod blocking;
mod handshake;
pub(crate) mod key;
mod message;
mod peer;

pub(crate) use self::blocking::sealed;
use self::key::AuthKey;

pub use self::blocking::{
    answer_challenge, client_handshake, deliver_challenge, server_handshake, HandshakeIo,
};
pub use self::handshake::{Expecting, Handshake, MAX_HANDSHAKE_MESSAGE_SIZE};
pub use self::peer::PeerCredentials;

/// The time a handshake may take by default, on either side: 5 seconds
/// ([`ListenerBuilder::DEFAULT_HANDSHAKE_TIMEOUT`](crate::ListenerBuilder::DEFAULT_HANDSHAKE_TIMEOUT),
/// [`ClientBuilder::DEFAULT_HANDSHAKE_TIMEOUT`](crate::ClientBuilder::DEFAULT_HANDSHAKE_TIMEOUT)).
pub(crate) const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests;
