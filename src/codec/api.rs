//! The codec traits: [`Encode`] and [`Decode`], one direction each, and [`Codec`], both
//! (re-exported at the crate root; see the module docs of `codec` for how to write one).

pub use crate::message::Sink;

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

    /// The exact length of `value`'s encoding, for a codec that can tell it before writing
    /// it and judges the value large enough to be written in place; `None` (the default)
    /// otherwise.
    ///
    /// When it returns `Some(len)`, a blocking [`send`](crate::Sender::send) (not a timed or
    /// non-blocking one, which must be able to keep an unsent rest) calls
    /// [`encode_to`](Encode::encode_to) instead of [`encode`](Encode::encode), and the
    /// bytes go where the message goes as they are made: to the socket behind the frame
    /// header (a large slice in one vectored write, straight from the value), or into a
    /// memfd slot (see [`Sender::enable_large_memfd`](crate::Sender::enable_large_memfd)).
    /// That saves the copy of the whole message into the sender's encode buffer. Computing
    /// the length usually means a pass over the value without writing, so a sender asks
    /// only when its previous message was at least 64 KiB long: a stream of small
    /// messages never pays for it. [`Rkyv`](crate::codec::Rkyv) and
    /// [`Postcard`](crate::Postcard) implement it.
    ///
    /// # Examples
    ///
    /// A codec of raw bytes, whose length is known at once:
    ///
    /// ```
    /// use procwire::codec::{Decode, Encode, Sink};
    ///
    /// #[derive(Clone)]
    /// struct Bytes;
    ///
    /// impl Encode<Vec<u8>> for Bytes {
    ///     type Error = std::convert::Infallible;
    ///     fn encode(&mut self, value: &Vec<u8>, out: &mut Vec<u8>) -> Result<(), Self::Error> {
    ///         out.extend_from_slice(value);
    ///         Ok(())
    ///     }
    ///     fn encoded_len(&mut self, value: &Vec<u8>) -> Result<Option<usize>, Self::Error> {
    ///         Ok(Some(value.len()))
    ///     }
    ///     fn encode_to(&mut self, value: &Vec<u8>, sink: &mut Sink<'_>) -> Result<(), Self::Error> {
    ///         sink.write(value); // to the socket, from `value`: no copy into a buffer
    ///         Ok(())
    ///     }
    /// }
    ///
    /// impl Decode<Vec<u8>> for Bytes {
    ///     type Error = std::convert::Infallible;
    ///     fn decode(&mut self, bytes: &[u8]) -> Result<Vec<u8>, Self::Error> {
    ///         Ok(bytes.to_vec())
    ///     }
    /// }
    ///
    /// let (tx, rx) = procwire::pipe_with::<Vec<u8>, Bytes>(Bytes)?;
    /// let sender = std::thread::spawn(move || -> procwire::Result<()> {
    ///     tx.send(&vec![1; 1 << 20])?; // into the encode buffer: the first large message
    ///     tx.send(&vec![2; 1 << 20])?; // measured, then written in place
    ///     Ok(())
    /// });
    /// assert_eq!(rx.recv()?, vec![1; 1 << 20]);
    /// assert_eq!(rx.recv()?, vec![2; 1 << 20]);
    /// sender.join().unwrap()?;
    /// # Ok::<(), procwire::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// When `value` cannot be represented by this codec; the send fails with
    /// [`Error::Encode`](crate::Error::Encode) and nothing was sent.
    fn encoded_len(&mut self, value: &T) -> Result<Option<usize>, Self::Error> {
        let _ = value;
        Ok(None)
    }

    /// Writes the encoding of `value` to `sink`: exactly the `len` bytes that
    /// [`encoded_len`](Encode::encoded_len) announced, the same bytes
    /// [`encode`](Encode::encode) would append. Called only after `encoded_len` returned
    /// `Some`.
    ///
    /// The default encodes into a new buffer and writes that; a codec that overrides
    /// `encoded_len` overrides this too. A sink that failed (the connection broke) ignores
    /// further writes, so a codec may go on to its end or stop at
    /// [`Sink::failed`]; the send reports the failure either way.
    ///
    /// # Errors
    ///
    /// When `value` cannot be represented by this codec. The send fails with
    /// [`Error::Encode`](crate::Error::Encode); if part of the message had already left
    /// through the socket, the sender can no longer send (every later send fails with
    /// [`Error::Io`](crate::Error::Io) of kind `BrokenPipe`), as the stream would be
    /// misaligned.
    fn encode_to(&mut self, value: &T, sink: &mut Sink<'_>) -> Result<(), Self::Error> {
        let mut buf = Vec::new();
        self.encode(value, &mut buf)?;
        sink.write(&buf);
        Ok(())
    }
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
