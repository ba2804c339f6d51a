//! The [`Codec`] trait (re-exported at the crate root; see the module docs of `codec` for
//! how to write one).

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
