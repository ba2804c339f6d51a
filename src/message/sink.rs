//! [`Sink`]: where a codec writes a message in place
//! ([`Encode::encode_to`](crate::codec::Encode::encode_to)). It lives in the message
//! layer, which fills it; `codec` re-exports it.

use crate::error::{Error, Result};

/// Where [`Encode::encode_to`](crate::codec::Encode::encode_to) writes a message in place: the socket behind the frame's
/// header, or a memfd slot. Made by the sender; a codec only writes to it.
///
/// The sink holds the length the codec announced: bytes past it are not written, and a
/// message that ends short of it or runs past it fails the send with
/// [`Error::Encode`](crate::Error::Encode), so a codec whose two passes disagree cannot
/// put a wrong frame on the wire.
pub struct Sink<'a> {
    put: &'a mut dyn Put,
    len: usize,
    written: usize,
    failed: bool,
    overrun: bool,
}

/// What a [`Sink`] writes into: `put` takes the next bytes of the message and says whether
/// they went (a failure is kept by the implementor, to be reported after the codec).
pub(crate) trait Put {
    fn put(&mut self, bytes: &[u8]) -> bool;
}

impl<'a> Sink<'a> {
    /// A sink for a message of `len` bytes.
    pub(crate) fn new(put: &'a mut dyn Put, len: usize) -> Sink<'a> {
        Sink {
            put,
            len,
            written: 0,
            failed: false,
            overrun: false,
        }
    }

    /// Writes the next `bytes` of the message.
    ///
    /// Bytes past the announced length, and every write after a failure, are dropped;
    /// the send then fails.
    pub fn write(&mut self, bytes: &[u8]) {
        if self.failed || bytes.is_empty() {
            return;
        }
        if bytes.len() > self.len - self.written {
            self.overrun = true;
            self.failed = true;
            return;
        }
        if self.put.put(bytes) {
            self.written += bytes.len();
        } else {
            self.failed = true;
        }
    }

    /// How many bytes have been written so far: the position in the message.
    pub fn written(&self) -> usize {
        self.written
    }

    /// Whether a write failed or ran past the announced length: what follows is dropped.
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// [`Error::Encode`] with the reason when the codec wrote other than the `len` bytes
    /// it announced (and nothing else failed).
    pub(crate) fn check_complete(&self) -> Result<()> {
        let why = if self.overrun {
            format!(
                "the codec wrote past the {} bytes its encoded_len announced",
                self.len
            )
        } else if !self.failed && self.written != self.len {
            format!(
                "the codec wrote {} bytes where its encoded_len announced {}",
                self.written, self.len
            )
        } else {
            return Ok(());
        };
        Err(Error::Encode(why.into()))
    }
}

/// A sink is itself a place to put bytes, for writers a codec wraps around it.
impl Put for Sink<'_> {
    fn put(&mut self, bytes: &[u8]) -> bool {
        self.write(bytes);
        !self.failed
    }
}

impl std::fmt::Debug for Sink<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink")
            .field("len", &self.len)
            .field("written", &self.written)
            .field("failed", &self.failed)
            .finish()
    }
}
