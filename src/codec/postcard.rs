//! The default codec: serde through postcard.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::api::{Decode, Encode, Sink};

/// The default codec: any `serde` type, encoded with [postcard](https://docs.rs/postcard).
///
/// It encodes any `T: Serialize` and decodes any `T: DeserializeOwned`, so a type that only
/// travels one way needs only the one derive.
///
/// Compact (varint integers, no field names) and fast; both ends must agree on the Rust
/// types, as with any non-self-describing format. A payload with bytes left over after the
/// value is rejected, so a peer using a different type is caught more often.
///
/// After a message of at least 64 KiB, a blocking send measures the next value (a
/// serialisation that only counts) and then writes it in place, 8 KiB at a time, without
/// building the whole message in the encode buffer (see
/// [`Encode::encoded_len`](crate::codec::Encode::encoded_len)).
///
/// # Examples
///
/// ```
/// use procwire::codec::{Decode, Encode};
/// use procwire::Postcard;
///
/// let mut codec = Postcard;
/// let mut buf = Vec::new();
/// codec.encode(&(7u8, "hi".to_string()), &mut buf)?;
/// assert_eq!(buf, [7, 2, b'h', b'i']);
/// let back: (u8, String) = codec.decode(&buf)?;
/// assert_eq!(back, (7, "hi".to_string()));
/// assert!(Decode::<(u8, String)>::decode(&mut codec, &[7, 9]).is_err());
/// # Ok::<(), postcard::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Postcard;

/// A postcard output flavor that appends to a borrowed `Vec`, so the connection's encode
/// buffer is reused instead of reallocated.
struct AppendVec<'a>(&'a mut Vec<u8>);

// `#[inline]` lets postcard's serializers copy their fixed-size fields (8 bytes for an
// `f64`) with a plain move instead of a `memcpy` call per element: the 16 MiB message of
// benches/codecs.rs went from 9.5 ms to 4.7 ms.
impl postcard::ser_flavors::Flavor for AppendVec<'_> {
    type Output = ();

    #[inline]
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(data);
        Ok(())
    }

    #[inline]
    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.push(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// A postcard output flavor that only counts: the length of a message before it is
/// written in place.
struct Count(usize);

impl postcard::ser_flavors::Flavor for Count {
    type Output = usize;

    #[inline]
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0 += data.len();
        Ok(())
    }

    #[inline]
    fn try_push(&mut self, _: u8) -> postcard::Result<()> {
        self.0 += 1;
        Ok(())
    }

    fn finalize(self) -> postcard::Result<usize> {
        Ok(self.0)
    }
}

/// How many bytes [`ToSink`] gathers on the stack before handing them to its sink.
const GATHER: usize = 8 << 10;

/// A postcard output flavor that writes to a [`Sink`], gathering postcard's small writes
/// (a field, an element) on the stack so that each costs a copy, not a call into the sink.
struct ToSink<'s, 'a> {
    sink: &'s mut Sink<'a>,
    buf: [u8; GATHER],
    len: usize,
}

impl ToSink<'_, '_> {
    fn flush(&mut self) {
        self.sink.write(&self.buf[..self.len]);
        self.len = 0;
    }
}

impl postcard::ser_flavors::Flavor for ToSink<'_, '_> {
    type Output = ();

    #[inline]
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        if data.len() > GATHER - self.len {
            self.flush();
            if data.len() > GATHER {
                self.sink.write(data);
                return Ok(());
            }
        }
        self.buf[self.len..self.len + data.len()].copy_from_slice(data);
        self.len += data.len();
        Ok(())
    }

    #[inline]
    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        if self.len == GATHER {
            self.flush();
        }
        self.buf[self.len] = data;
        self.len += 1;
        Ok(())
    }

    fn finalize(mut self) -> postcard::Result<()> {
        self.flush();
        Ok(())
    }
}

impl<T: Serialize + ?Sized> Encode<T> for Postcard {
    type Error = postcard::Error;

    fn encode(&mut self, value: &T, out: &mut Vec<u8>) -> Result<(), Self::Error> {
        postcard::serialize_with_flavor(value, AppendVec(out))
    }

    /// Measures `value`: a serialisation that only counts.
    fn encoded_len(&mut self, value: &T) -> Result<Option<usize>, Self::Error> {
        postcard::serialize_with_flavor(value, Count(0)).map(Some)
    }

    /// Serialises `value` into `sink`, 8 KiB at a time.
    fn encode_to(&mut self, value: &T, sink: &mut Sink<'_>) -> Result<(), Self::Error> {
        let flavor = ToSink {
            sink,
            buf: [0; GATHER],
            len: 0,
        };
        postcard::serialize_with_flavor(value, flavor)
    }
}

impl<T: DeserializeOwned> Decode<T> for Postcard {
    type Error = postcard::Error;

    fn decode(&mut self, bytes: &[u8]) -> Result<T, Self::Error> {
        let (value, rest) = postcard::take_from_bytes(bytes)?;
        if rest.is_empty() {
            Ok(value)
        } else {
            Err(postcard::Error::DeserializeBadEncoding)
        }
    }
}
