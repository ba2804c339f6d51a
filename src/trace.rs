//! The events of the `tracing` feature, one function each, so that a call site is one line
//! and never formats anything itself.
//!
//! Without the feature every function here has an empty body and is inlined away: no
//! formatting, no allocation, no branch. With it, they emit [`tracing`] events whose
//! targets name the part of procwire they come from (`procwire::client`,
//! `procwire::listener`, `procwire::rpc`, `procwire::limits`) and whose fields are
//! structured: `address`/`peer` (the [`Address`], shown as it prints), `reason` (the
//! error's `Display`), `elapsed` (a `Duration`), and the numbers of a limit.
//!
//! Only setup, rejections and errors are traced: a send or receive that succeeds never
//! reaches this module, so the hot paths stay as they are with the feature on.
//!
//! [`tracing`]: https://docs.rs/tracing/0.1/tracing/
#![cfg_attr(not(feature = "tracing"), allow(unused_variables))]

use std::time::Instant;

use crate::address::Address;
use crate::error::Error;

/// A client's connect (and handshake) to `address` that began at `started` ended with
/// `failed` (`None`: connected).
#[inline]
pub(crate) fn connect(address: &Address, started: Instant, failed: Option<&Error>) {
    #[cfg(feature = "tracing")]
    {
        let elapsed = started.elapsed();
        match failed {
            None => tracing::debug!(
                target: "procwire::client",
                %address, ?elapsed, outcome = "connected", "connected"
            ),
            Some(e) => tracing::warn!(
                target: "procwire::client",
                %address, ?elapsed, outcome = "failed", reason = %e, "connect failed"
            ),
        }
    }
}

/// The client's side of the handshake with `address` failed.
#[inline]
pub(crate) fn client_handshake_failed(address: &Address, e: &Error) {
    #[cfg(feature = "tracing")]
    tracing::warn!(
        target: "procwire::client",
        %address, side = "client", reason = %e, "handshake failed"
    );
}

/// The listener queued a client (authenticated, when it has a key) for `accept`.
#[inline]
pub(crate) fn accepted(peer: Option<&Address>) {
    #[cfg(feature = "tracing")]
    tracing::debug!(target: "procwire::listener", peer = %Peer(peer), "client accepted");
}

/// The listener turned a client away at `stage` (`"handshake"`, `"handshake timeout"`,
/// `"credentials"`, `"evicted"`, …) for the reason `e`.
#[inline]
pub(crate) fn rejected(peer: Option<&Address>, stage: &'static str, e: &Error) {
    #[cfg(feature = "tracing")]
    tracing::warn!(
        target: "procwire::listener",
        peer = %Peer(peer), stage, reason = %e, "client rejected"
    );
}

/// `accept(2)` failed for the listening endpoint itself; the listener pauses for `pause`.
#[inline]
pub(crate) fn accept_paused(e: &std::io::Error, pause: std::time::Duration) {
    #[cfg(feature = "tracing")]
    tracing::warn!(
        target: "procwire::listener",
        reason = %e, ?pause, exhausted = crate::error::is_exhaustion(e),
        "accept failed; pausing"
    );
}

/// A reconnecting requester's `attempt`-th connect to `address` ended with `failed`.
#[inline]
pub(crate) fn reconnect(address: &Address, attempt: u64, failed: Option<&Error>) {
    #[cfg(feature = "tracing")]
    match failed {
        None => tracing::info!(target: "procwire::rpc", %address, attempt, "reconnected"),
        Some(e) => tracing::info!(
            target: "procwire::rpc",
            %address, attempt, reason = %e, "reconnect attempt failed"
        ),
    }
}

/// A limit was hit: `limit` names the setting, `value` is what was asked for and `max`
/// what the setting allows.
#[inline]
pub(crate) fn limit(limit: &'static str, value: u64, max: u64) {
    #[cfg(feature = "tracing")]
    tracing::warn!(target: "procwire::limits", limit, value, max, "limit hit");
}

/// A receive failed with `e`: traced when it is a limit (`MessageTooLarge`).
#[inline]
pub(crate) fn receive_failed(e: &Error) {
    #[cfg(feature = "tracing")]
    if let Error::MessageTooLarge { len, limit: max } = e {
        limit("max_message_size", *len, *max);
    }
}

/// Shows an optional peer address; `unknown` when the transport has none.
#[cfg(feature = "tracing")]
struct Peer<'a>(Option<&'a Address>);

#[cfg(feature = "tracing")]
impl std::fmt::Display for Peer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(a) => a.fmt(f),
            None => f.write_str("unknown"),
        }
    }
}
