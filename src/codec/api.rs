//! The codec traits: [`Encode`] and [`Decode`], one direction each, and [`Codec`], both
//! (re-exported at the crate root; see the module docs of `codec` for how to write one).

/// Encodes values of `T` into message payloads: what a [`Sender<T, C>`](crate::Sender)
/// needs of its codec `C`.
///
/// One codec value may serve many `T`s (implement `Encode<T>` for each). Codecs take
/// `&mut self` so they can keep scratch state; a connection that is
/// [`split`](crate::Connection::split) clones its codec, so codecs used that way are `Clone`.
pub trait Encode<T: ?Sized> {
    /// The error `encode` reports; it becomes the
    /// [`source`](std::error::Error::source) of [`Error::Encode`](crate::Error::Encode).
    type Error: std::error::Error + Send + Sync + 'static;

    /// Appends the encoding of `value` to `out`.
    ///
    /// # Errors
    ///
    /// When `value` cannot be represented by this codec. What was appended to `out` is
    /// discarded by the caller.
    fn encode(&mut self, value: &T, out: &mut Vec<u8>) -> Result<(), Self::Error>;
}

/// Decodes message payloads into values of `T`: what a
/// [`Receiver<T, C>`](crate::Receiver) needs of its codec `C`.
pub trait Decode<T> {
    /// The error `decode` reports; it becomes the
    /// [`source`](std::error::Error::source) of [`Error::Decode`](crate::Error::Decode).
    type Error: std::error::Error + Send + Sync + 'static;

    /// Decodes one message payload.
    ///
    /// # Errors
    ///
    /// When `bytes` is not a valid encoding of a `T`. Must not panic on any input.
    fn decode(&mut self, bytes: &[u8]) -> Result<T, Self::Error>;
}

/// A codec for `T` in both directions: [`Encode<T>`] and [`Decode<T>`].
///
/// Implemented for every type that implements both; implement those two instead. Ask for
/// `Codec<T>` where one type travels both ways (the rpc layer's envelopes), and for
/// [`Encode`] or [`Decode`] alone where it travels one way.
pub trait Codec<T>: Encode<T> + Decode<T> {}

impl<T, C: Encode<T> + Decode<T> + ?Sized> Codec<T> for C {}
