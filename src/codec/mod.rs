//! Codecs: how typed values become message payloads.
//!
//! A [`Codec<T>`] turns a `T` into the bytes of one message and back. Typed
//! [`Sender`](crate::Sender), [`Receiver`](crate::Receiver) and
//! [`Connection`](crate::Connection) are generic over the codec, with [`Postcard`] as the
//! default.
//!
//! | codec | feature | use it when |
//! | --- | --- | --- |
//! | [`Postcard`] | `postcard` (default) | both ends are Rust: compact, fast, serde-based |
//!
//! # Writing a codec
//!
//! Implement [`Codec<T>`] for the types you support. `encode` appends to `out` (which the
//! connection reuses between messages, so an encoder that only appends allocates nothing in
//! steady state); `decode` receives exactly one message's payload and must not panic on
//! arbitrary bytes: hostile input is an `Err`, which the connection reports as
//! [`Error::Decode`](crate::Error::Decode) while staying aligned at the next message.
//!
//! ```
//! use procwire::Codec;
//!
//! /// Sends `String`s as raw UTF-8.
//! #[derive(Clone, Default)]
//! struct Utf8;
//!
//! impl Codec<String> for Utf8 {
//!     type Error = std::str::Utf8Error;
//!     fn encode(&mut self, value: &String, out: &mut Vec<u8>) -> Result<(), Self::Error> {
//!         out.extend_from_slice(value.as_bytes());
//!         Ok(())
//!     }
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

#[cfg(feature = "postcard")]
mod postcard;

#[cfg(feature = "postcard")]
pub use self::postcard::Postcard;

/// Encodes values of `T` into message payloads and decodes them back.
///
/// One codec value may serve many `T`s (implement `Codec<T>` for each). Codecs take
/// `&mut self` so they can keep scratch state; a connection that is
/// [`split`](crate::Connection::split) clones its codec, so codecs used that way are `Clone`.
pub trait Codec<T> {
    /// The error encode and decode report; it becomes the
    /// [`source`](std::error::Error::source) of [`Error::Encode`](crate::Error::Encode) or
    /// [`Error::Decode`](crate::Error::Decode).
    type Error: std::error::Error + Send + Sync + 'static;

    /// Appends the encoding of `value` to `out`.
    ///
    /// # Errors
    ///
    /// When `value` cannot be represented by this codec. What was appended to `out` is
    /// discarded by the caller.
    fn encode(&mut self, value: &T, out: &mut Vec<u8>) -> Result<(), Self::Error>;

    /// Decodes one message payload.
    ///
    /// # Errors
    ///
    /// When `bytes` is not a valid encoding of a `T`. Must not panic on any input.
    fn decode(&mut self, bytes: &[u8]) -> Result<T, Self::Error>;
}
