//! The wire format, with no I/O: the message header of CPython's
//! `multiprocessing.connection` ([`Header`]), a decoder of whole messages from a byte
//! stream ([`FrameDecoder`]), and the limits every connection applies.
//!
//! A frame is a 4-byte big-endian signed length followed by the payload. A payload
//! longer than `i32::MAX` bytes is announced by the length `-1` followed by an 8-byte
//! big-endian unsigned length. Writers use the escape only above `i32::MAX` (readers
//! older than CPython 3.8 would misread it otherwise); readers accept it for any length.
//! Any other negative length is a protocol error (CPython silently reads it as an
//! empty message; it never writes one). `docs/wire-format.md` has the whole format,
//! handshake included.
//!
//! Connections use this module themselves; it is public for programs that move frames
//! over a transport of their own, and for tests and fuzzers that want the pure parts.

use crate::error::{Error, Result};

mod decoder;

pub(crate) use self::decoder::EAGER_ALLOC;
pub use self::decoder::{FrameDecoder, DEFAULT_MAX_MESSAGE_SIZE};

/// The most file descriptors one message may carry: Linux's `SCM_MAX_FD`, the most one
/// `sendmsg` can pass.
///
/// A send with more is refused with [`Error::Descriptors`] before anything is sent.
pub const MAX_FDS_PER_MESSAGE: usize = 253;

/// The most received descriptors a Unix-socket connection holds for messages it has not
/// finished reading: two messages' worth, 506.
///
/// Descriptors arrive with the first byte of their message but are handed out only when
/// the whole message has been read, so a peer could otherwise send one frame header and
/// then endless one-byte pieces, each with 253 descriptors, until this process has no
/// descriptors left. A peer that sends as procwire and CPython do never has more than two
/// messages' descriptors in flight at once: the one being read and, at most, the next.
/// Past this, the receiver closes every descriptor it holds and stops receiving: the
/// receive reports [`Error::Descriptors`], every later one [`Error::Protocol`], and
/// further descriptors are closed as they arrive.
///
/// Before authentication a [`Listener`](crate::Listener) accepts no descriptors at all.
pub const MAX_PENDING_FDS: usize = 2 * MAX_FDS_PER_MESSAGE;

/// The largest header: the `-1` escape plus an 8-byte length.
pub const MAX_HEADER_LEN: usize = 12;

const SHORT_HEADER_LEN: usize = 4;
const ESCAPE: [u8; 4] = [0xff; 4];
/// The length field of a memfd frame, `-2`: a large message whose payload is in a memfd
/// shared between two procwire ends that both opted in (`message/large.rs`). Neither
/// CPython nor a procwire receiver that did not opt in gives it a meaning.
pub(crate) const MEMFD_MARK: [u8; 4] = (-2i32).to_be_bytes();

/// A decoded or to-be-encoded frame header.
///
/// # Examples
///
/// ```
/// use procwire::frame::Header;
///
/// let header = Header::for_payload(5);
/// assert_eq!(header.encode().as_ref(), &[0, 0, 0, 5]);
///
/// let parsed = Header::decode(b"\x00\x00\x00\x05hello")?.expect("a whole header");
/// assert_eq!((parsed.payload_len(), parsed.header_len()), (5, 4));
/// # Ok::<(), procwire::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    payload_len: u64,
    header_len: u8,
}

impl Header {
    /// The header a writer puts before a payload of `len` bytes: 4 bytes up to
    /// `i32::MAX`, the 12-byte escape above.
    pub fn for_payload(len: u64) -> Header {
        let header_len = if len > i32::MAX as u64 {
            MAX_HEADER_LEN
        } else {
            SHORT_HEADER_LEN
        };
        Header {
            payload_len: len,
            header_len: header_len as u8,
        }
    }

    /// Parses a header from the start of `bytes`.
    ///
    /// Returns `Ok(None)` when `bytes` holds only part of a header.
    ///
    /// # Errors
    ///
    /// - [`Error::Protocol`] for a negative length other than the `-1` escape.
    pub fn decode(bytes: &[u8]) -> Result<Option<Header>> {
        let Some(short) = bytes.first_chunk::<SHORT_HEADER_LEN>() else {
            return Ok(None);
        };
        if *short == ESCAPE {
            let Some(long) = bytes
                .get(SHORT_HEADER_LEN..)
                .and_then(|b| b.first_chunk::<8>())
            else {
                return Ok(None);
            };
            return Ok(Some(Header {
                payload_len: u64::from_be_bytes(*long),
                header_len: MAX_HEADER_LEN as u8,
            }));
        }
        let len = i32::from_be_bytes(*short);
        if *short == MEMFD_MARK {
            return Err(Error::Protocol(
                "invalid message length -2 (a message in a memfd: the sender enabled large \
                 messages through memfds, and this receiver did not call \
                 `accept_large_memfd`, or receives in a way that does not take them)"
                    .into(),
            ));
        }
        if len < 0 {
            return Err(Error::Protocol(format!("invalid message length {len}")));
        }
        Ok(Some(Header {
            payload_len: len as u64,
            header_len: SHORT_HEADER_LEN as u8,
        }))
    }

    /// The payload length this header announces.
    pub fn payload_len(&self) -> u64 {
        self.payload_len
    }

    /// The number of bytes the header itself occupies on the wire (4 or 12).
    pub fn header_len(&self) -> usize {
        usize::from(self.header_len)
    }

    /// Header plus payload, in bytes.
    pub fn frame_len(&self) -> u64 {
        self.payload_len.saturating_add(self.header_len as u64)
    }

    /// The header's bytes as they go on the wire.
    pub fn encode(&self) -> EncodedHeader {
        let mut bytes = [0u8; MAX_HEADER_LEN];
        if self.header_len() == MAX_HEADER_LEN {
            bytes[..4].copy_from_slice(&ESCAPE);
            bytes[4..].copy_from_slice(&self.payload_len.to_be_bytes());
        } else {
            let len = u32::try_from(self.payload_len).expect("short header holds a 31-bit length");
            bytes[..4].copy_from_slice(&len.to_be_bytes());
        }
        EncodedHeader {
            bytes,
            len: self.header_len,
        }
    }
}

/// The wire bytes of a [`Header`], on the stack; dereferences to `[u8]`.
#[derive(Debug, Clone, Copy)]
pub struct EncodedHeader {
    bytes: [u8; MAX_HEADER_LEN],
    len: u8,
}

impl AsRef<[u8]> for EncodedHeader {
    fn as_ref(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl std::ops::Deref for EncodedHeader {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut out = Header::for_payload(payload.len() as u64).encode().to_vec();
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn hello_matches_cpython_vector() {
        assert_eq!(frame(b"hello"), b"\x00\x00\x00\x05hello");
    }

    #[test]
    fn empty_message_is_four_zero_bytes() {
        assert_eq!(frame(b""), [0, 0, 0, 0]);
    }

    #[test]
    fn payload_over_i32_max_uses_the_escape() {
        let h = Header::for_payload(0x8000_0000);
        assert_eq!(
            &*h.encode(),
            &[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0x80, 0, 0, 0]
        );
        assert_eq!(h.header_len(), 12);
    }

    #[test]
    fn payload_of_exactly_i32_max_uses_the_short_header() {
        assert_eq!(
            &*Header::for_payload(0x7fff_ffff).encode(),
            &[0x7f, 0xff, 0xff, 0xff]
        );
    }

    #[test]
    fn escape_is_accepted_for_small_lengths() {
        let h = Header::decode(b"\xff\xff\xff\xff\0\0\0\0\0\0\0\x05hello")
            .unwrap()
            .unwrap();
        assert_eq!((h.payload_len(), h.header_len()), (5, 12));
    }

    #[test]
    fn partial_headers_need_more_bytes() {
        for n in 0..4 {
            assert_eq!(Header::decode(&[0u8; 4][..n]).unwrap(), None);
        }
        for n in 4..12 {
            assert_eq!(Header::decode(&[0xffu8; 12][..n]).unwrap(), None);
        }
    }

    #[test]
    fn negative_lengths_other_than_the_escape_are_protocol_errors() {
        for bytes in [[0xff, 0xff, 0xff, 0xfe], [0x80, 0, 0, 0]] {
            let err = Header::decode(&bytes).unwrap_err();
            assert!(matches!(err, Error::Protocol(_)), "{err:?}");
        }
        let text = Header::decode(&[0xff, 0xff, 0xff, 0xfe])
            .unwrap_err()
            .to_string();
        assert!(
            text.starts_with("protocol error: invalid message length -2 (a message in a memfd"),
            "{text}"
        );
        assert_eq!(
            Header::decode(&[0x80, 0, 0, 0]).unwrap_err().to_string(),
            "protocol error: invalid message length -2147483648"
        );
    }

    #[test]
    fn frame_len_saturates_on_hostile_lengths() {
        let h = Header::decode(&[0xff; 12]).unwrap().unwrap();
        assert_eq!(h.payload_len(), u64::MAX);
        assert_eq!(h.frame_len(), u64::MAX);
    }

    #[test]
    fn round_trip_over_boundary_lengths() {
        for len in [0, 1, 16384, 16385, 0x7fff_ffff, 0x8000_0000, u64::MAX] {
            let h = Header::for_payload(len);
            assert_eq!(Header::decode(&h.encode()).unwrap(), Some(h));
        }
    }
}
