//! Request/response, one-way messages with acknowledgement, and files, over one
//! connection: the messaging layer.
//!
//! # Protocol
//!
//! Every message on an rpc connection is one [`Envelope`], encoded by the connection's codec
//! (so any codec works, and a Python peer could speak it with pickle). Both ends use the
//! same type, `Envelope<Req, Resp>`: one side sends requests (`Req`), the other answers
//! (`Resp`). Each request or message carries a [`MsgId`]: a random session number, fixed
//! for the life of the requester (across reconnects), and a sequence number.
//!
//! | envelope | from | meaning | answered by |
//! | --- | --- | --- | --- |
//! | `Message { id, body }` | requester | one-way command | `Ack { id }` once the handler ran |
//! | `Request { id, body }` | requester | a call that wants a value | `Response { id, result }`, or `File { id }` |
//! | `Push { id, body }` | requester | a call with a file: the **next message** is the file's bytes | as `Request` |
//! | `Response { id, result }` | server | the handler's value, or its error as a [`RemoteError`] | — |
//! | `File { id }` | server | the handler's answer is a file: the **next message** is its bytes | — |
//! | `Ack { id }` | server | the message `id` was handled | — |
//!
//! A file is one ordinary message ([`Sender::send_file`](crate::Sender::send_file)), sent
//! right after the envelope that announces it and never interleaved with anything else.
//!
//! # Roles
//!
//! - [`Requester`] sends: a cloneable handle that many threads share. A reader thread
//!   matches each `Response` to its request by id, whatever the order responses come back
//!   in; each request has its own deadline and fails alone with [`Error::Timeout`]; a
//!   response that comes after its request gave up is dropped. When the connection is
//!   lost, every unanswered request fails with [`Error::Disconnected`] — unless the
//!   requester reconnects ([`ReconnectBuilder`]), in which case it
//!   keeps them and sends them again.
//! - [`serve`] answers: it calls a handler per message or request and sends back what it
//!   returns; a handler's error goes back as a [`RemoteError`] (the caller sees
//!   [`Error::Remote`]) and the connection carries on. [`serve_concurrent`] runs handlers on
//!   several threads, so responses leave in the order handlers finish.
//! - [`dispatch!`](crate::rpc::dispatch) gives each variant of a request enum its own handler
//!   method and its own response type.
//!
//! A requester ignores requests and messages its peer sends it (and skips a file pushed
//! with them): requests go one way per connection. For both directions, open two
//! connections.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use procwire::rpc::{Envelope, Requester, serve};
//!
//! let (client, server) = procwire::duplex::<Envelope<u32, u64>, Envelope<u32, u64>>()?;
//! let server = std::thread::spawn(move || {
//!     serve(&server, |call| match call.body {
//!         0 => Err("zero is not allowed"),
//!         n => Ok(u64::from(n) * 2),
//!     })
//! });
//! let requester = Requester::new(client)?;
//! assert_eq!(requester.request(21, Duration::from_secs(5))?, 42);
//! let err = requester.request(0, Duration::from_secs(5)).unwrap_err();
//! assert_eq!(err.to_string(), "the peer's handler failed: zero is not allowed");
//! drop(requester); // the server's loop ends when the connection closes
//! server.join().unwrap()?;
//! # Ok::<(), procwire::Error>(())
//! ```

use std::fmt;
use std::fs::File;

use serde::{Deserialize, Serialize};

use crate::channel::Connection;
#[allow(unused_imports)] // for intra-doc links
use crate::error::Error;
#[cfg(feature = "postcard")]
use crate::Postcard;

mod core;
mod dispatch;
mod outbox;
mod reconnect;
mod requester;
mod serve;

pub(crate) use self::core::Connector;
pub use self::reconnect::{ReconnectBuilder, DEFAULT_FIRST_BACKOFF, DEFAULT_MAX_BACKOFF};
pub use self::requester::{Pending, Requester};
pub use self::serve::{serve, serve_concurrent, Attachment, Call};
#[doc(inline)]
pub use crate::dispatch;

/// The error a request handler returns: any error, boxed. It reaches the caller as
/// [`Error::Remote`] with the error's text.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The identity of a message or request: unique per requester, stable across reconnects.
///
/// `session` is random, drawn once per [`Requester`] (a restarted client process draws a
/// new one), and `seq` counts from 1. A server de-duplicates redelivered messages by
/// remembering the ids it has handled; see
/// [`ReconnectBuilder`](crate::rpc::ReconnectBuilder#delivery-at-least-once).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MsgId {
    /// The requester's random session number.
    pub session: u64,
    /// The sequence number within the session, from 1.
    pub seq: u64,
}

impl fmt::Display for MsgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}:{}", self.session, self.seq)
    }
}

/// A handler's error, as sent back to the requester (who sees [`Error::Remote`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteError {
    message: String,
}

impl RemoteError {
    /// An error with the `Display` text of `error`.
    pub fn new(error: impl fmt::Display) -> RemoteError {
        RemoteError {
            message: error.to_string(),
        }
    }

    /// The error's text.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for RemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RemoteError {}

/// One message of the rpc protocol.
///
/// Every message on an rpc connection is one `Envelope`, encoded by the connection's codec
/// (so any codec works). Both ends use the same type: one side sends requests (`Req`), the
/// other answers (`Resp`). Each request or message carries a [`MsgId`].
///
/// | envelope | from | meaning | answered by |
/// | --- | --- | --- | --- |
/// | `Message { id, body }` | requester | one-way command | `Ack { id }` once the handler ran |
/// | `Request { id, body }` | requester | a call that wants a value | `Response { id, result }`, or `File { id }` |
/// | `Push { id, body }` | requester | a call with a file: the **next message** is the file's bytes | as `Request` |
/// | `Response { id, result }` | server | the handler's value, or its error as a [`RemoteError`] | — |
/// | `File { id }` | server | the handler's answer is a file: the **next message** is its bytes | — |
/// | `Ack { id }` | server | the message `id` was handled | — |
///
/// A file is one ordinary message ([`Sender::send_file`](crate::Sender::send_file)), sent
/// right after the envelope that announces it and never interleaved with anything else.
///
#[derive(Debug, Serialize, Deserialize)]
pub enum Envelope<Req, Resp> {
    /// A one-way message; answered with `Ack` once handled.
    Message {
        /// Its id.
        id: MsgId,
        /// The message.
        body: Req,
    },
    /// A request; answered with `Response` or `File`.
    Request {
        /// Its id.
        id: MsgId,
        /// The request.
        body: Req,
    },
    /// A request whose next message is a file's bytes; answered as `Request`.
    Push {
        /// Its id.
        id: MsgId,
        /// The request.
        body: Req,
    },
    /// The answer to request `id`.
    Response {
        /// The request's id.
        id: MsgId,
        /// The handler's value or error.
        result: Result<Resp, RemoteError>,
    },
    /// The answer to request `id` is a file: its bytes are the next message.
    File {
        /// The request's id.
        id: MsgId,
    },
    /// Message `id` was handled.
    Ack {
        /// The message's id.
        id: MsgId,
    },
}

/// A handler's answer: a value, or a file whose bytes go back as the next message (the
/// requester fetches it with [`Requester::get_file`]).
///
/// Handlers may return a plain `Resp` wherever an `impl Into<Reply<Resp>>` is expected.
#[derive(Debug)]
pub enum Reply<Resp> {
    /// A value, sent in a `Response` envelope.
    Value(Resp),
    /// A file, sent whole with [`send_file`](crate::Sender::send_file).
    File(File),
}

impl<Resp> From<Resp> for Reply<Resp> {
    fn from(value: Resp) -> Self {
        Reply::Value(value)
    }
}

/// A connection that carries the rpc protocol: both ends send and receive
/// `Envelope<Req, Resp>`.
#[cfg(feature = "postcard")]
pub type RpcConnection<Req, Resp, C = Postcard> =
    Connection<Envelope<Req, Resp>, Envelope<Req, Resp>, C>;

/// A connection that carries the rpc protocol: both ends send and receive
/// `Envelope<Req, Resp>`.
#[cfg(not(feature = "postcard"))]
pub type RpcConnection<Req, Resp, C> = Connection<Envelope<Req, Resp>, Envelope<Req, Resp>, C>;
