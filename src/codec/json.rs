//! The JSON codec, for debugging and for peers in other languages.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::api::{Decode, Encode};

/// A codec for JSON text, through [serde_json](https://docs.rs/serde_json): one JSON
/// document per message, UTF-8, compact.
///
/// Readable on the wire (`strace`, a Python peer's `json.loads(conn.recv_bytes())`) and
/// spoken by every language; larger and slower than [`Postcard`](crate::Postcard) or
/// [`Rkyv`](crate::codec::Rkyv). Floats round-trip exactly; NaN and infinities have no JSON form
/// and become `null`, which decodes as an error into `f64`. Map keys must be strings
/// (or integers, written as strings). Decoding refuses nesting deeper than 128 levels
/// and trailing bytes after the document.
///
/// # Examples
///
/// ```
/// use procwire::codec::Json;
///
/// let (tx, rx) = procwire::pipe_with::<(u8, Vec<String>), Json>(Json)?;
/// tx.send(&(1, vec!["a".into()]))?;
/// tx.send_bytes(br#"[2, ["b", "c"]]"#)?; // any JSON writer's output
/// assert_eq!(rx.recv_bytes()?, br#"[1,["a"]]"#);
/// assert_eq!(rx.recv()?, (2, vec!["b".to_string(), "c".to_string()]));
/// # Ok::<(), procwire::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Json;

impl<T: Serialize + ?Sized> Encode<T> for Json {
    type Error = serde_json::Error;

    fn encode(&mut self, value: &T, out: &mut Vec<u8>) -> Result<(), Self::Error> {
        serde_json::to_writer(out, value)
    }
}

impl<T: DeserializeOwned> Decode<T> for Json {
    type Error = serde_json::Error;

    fn decode(&mut self, bytes: &[u8]) -> Result<T, Self::Error> {
        serde_json::from_slice(bytes)
    }
}
