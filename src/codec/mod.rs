//! Codecs: how typed values become message payloads.
//!
//! A codec turns a `T` into the bytes of one message ([`Encode<T>`]) and back
//! ([`Decode<T>`]); [`Codec<T>`] is the two together. A [`Sender<T, C>`](crate::Sender)
//! asks only `C: Encode<T>`, a [`Receiver<T, C>`](crate::Receiver) only `C: Decode<T>`,
//! and a [`Connection<S, R, C>`](crate::Connection) asks each of its methods for the
//! direction it uses, so with a serde codec a type that is only sent needs only
//! `Serialize`, one that is only received only `Deserialize`, and generic code says
//! `S: Serialize, R: DeserializeOwned`. `Codec` and the default codec,
//! [`Postcard`](crate::Postcard), live at the crate root; this module holds the two
//! halves and the other codecs, each behind its cargo feature. Typed
//! [`Sender`](crate::Sender), [`Receiver`](crate::Receiver) and
//! [`Connection`](crate::Connection) are generic over the codec, with `Postcard` as the
//! default (feature `postcard`).
//!
//! | codec | feature | wire format | use it when |
//! | --- | --- | --- | --- |
//! | `Postcard` | `postcard` (default) | [postcard](https://docs.rs/postcard) | both ends are Rust and share the types: compact, fast, any serde type |
//! | `Rkyv` | `rkyv` | [rkyv](https://docs.rs/rkyv) 0.8 archive | both ends are Rust and messages are large or read selectively: `recv_archived` hands out the validated archive in place, with no deserialisation and no copy |
//! | `Pickle` | `pickle` | Python pickle (writes protocol 3, reads 0–5) | the peer is Python's `multiprocessing.connection` using `send()` / `recv()` |
//! | `Json` | `json` | JSON text | debugging, or a peer in another language |
//! | none: `send_bytes` / `recv_bytes_into` | — | raw bytes | arrays of numbers (any `bytemuck::Pod` slice); a Python peer's `send_bytes` / `recv_bytes` |
//!
//! Postcard and rkyv are not self-describing: both ends must use the same Rust types (and
//! for rkyv, the same format features). Pickle and JSON carry their structure, so a peer can
//! read a message without the Rust type; they are larger and slower, and meant for values,
//! not bulk arrays. Every codec validates what it receives: hostile bytes are an
//! [`Error::Decode`](crate::Error::Decode), never a panic, and the connection stays
//! usable. The codecs a build offers are the features it enables; a build with none still
//! has the raw message API and [`Codec`] for your own.
//!
//! # Writing a codec
//!
//! Implement [`Encode<T>`] and [`Decode<T>`] for the types you support (usually with a
//! blanket impl over a trait, as `Postcard` does for serde's `Serialize` and
//! `DeserializeOwned`); [`Codec<T>`] then holds by itself. A codec for one direction
//! implements only that trait. `encode` appends to `out` (which the
//! connection reuses between messages, so an encoder that only appends allocates nothing in
//! steady state); `decode` receives exactly one message's payload and must not panic on
//! arbitrary bytes: hostile input is an `Err`, which the connection reports as
//! [`Error::Decode`](crate::Error::Decode) while staying aligned at the next message. Bound
//! what a small message can make `decode` allocate or recurse into, as the pickle codec
//! does. `decode` gets the payload where it lies, in the receiver's read buffer, at no
//! particular alignment; a codec that needs alignment copies into scratch space it keeps
//! in `self`. A connection clones its codec when it makes a sender and a receiver from
//! it, so keep per-connection scratch out of `Clone`.
//!
//! ```
//! use procwire::codec::{Decode, Encode};
//!
//! /// Sends `String`s as raw UTF-8.
//! #[derive(Clone, Default)]
//! struct Utf8;
//!
//! impl Encode<String> for Utf8 {
//!     type Error = std::convert::Infallible;
//!     fn encode(&mut self, value: &String, out: &mut Vec<u8>) -> Result<(), Self::Error> {
//!         out.extend_from_slice(value.as_bytes());
//!         Ok(())
//!     }
//! }
//!
//! impl Decode<String> for Utf8 {
//!     type Error = std::str::Utf8Error;
//!     fn decode(&mut self, bytes: &[u8]) -> Result<String, Self::Error> {
//!         std::str::from_utf8(bytes).map(str::to_owned)
//!     }
//! }
//!
//! let (tx, rx) = procwire::pipe_with::<String, Utf8>(Utf8)?;
//! tx.send(&"héllo".to_string())?;
//! assert_eq!(rx.recv()?, "héllo");
//! # Ok::<(), procwire::Error>(())
//! ```
//!
//! # One direction at a time
//!
//! ```
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize)] // only sent: no Deserialize
//! struct Job<'a> { name: &'a str, size: u32 }
//!
//! #[derive(Deserialize)] // only received: no Serialize
//! struct Job2 { name: String, size: u32 }
//!
//! let (tx, rx) = procwire::pipe::<Job<'static>>()?;
//! tx.send(&Job { name: "a", size: 1 })?;
//! let bytes = rx.recv_bytes()?;
//!
//! let (tx, rx) = procwire::pipe::<Job2>()?;
//! tx.send_bytes(&bytes)?;
//! let job = rx.recv()?;
//! assert_eq!((job.name.as_str(), job.size), ("a", 1));
//!
//! // Generic code states what it needs of each direction, and nothing of the codec.
//! fn ask<S: Serialize, R: serde::de::DeserializeOwned>(
//!     conn: &procwire::Connection<S, R>,
//!     question: &S,
//! ) -> procwire::Result<R> {
//!     conn.send(question)?;
//!     conn.recv()
//! }
//! let (a, b) = procwire::duplex::<u32, String>()?;
//! b.send(&"forty-two".to_string())?;
//! assert_eq!(ask(&a, &42)?, "forty-two");
//! assert_eq!(b.recv()?, 42);
//! # Ok::<(), procwire::Error>(())
//! ```

pub(crate) mod api;

pub use self::api::{Decode, Encode, Sink};
#[cfg(feature = "json")]
mod json;
#[cfg(feature = "pickle")]
mod pickle;
#[cfg(feature = "postcard")]
pub(crate) mod postcard;
#[cfg(feature = "rkyv")]
mod rkyv;

#[cfg(feature = "json")]
pub use self::json::Json;
#[cfg(feature = "pickle")]
pub use self::pickle::{
    Pickle, PickleError, PickleProtocol, PyInt, PyMismatch, PyValue, DEFAULT_PICKLE_DEPTH,
    DEFAULT_PICKLE_EXPANSION, DEFAULT_PICKLE_SIZE,
};
#[cfg(feature = "rkyv")]
pub use self::rkyv::{ArchiveGuard, Rkyv, RkyvWriter};
#[cfg(doc)]
use crate::Codec;
