//! Messages written in place as a codec makes them ([`Encode::encode_to`]): behind their
//! header to the socket, or into a memfd slot, without first being put together in the
//! encode buffer.
//!
//! [`Encode::encode_to`]: crate::codec::Encode::encode_to

use std::io::IoSlice;

use super::sink::{Put, Sink};
use super::Writer;
use crate::error::{Error, Result};
use crate::frame::Header;

/// Messages shorter than this are put together in the encode buffer and sent as usual:
/// streaming them would only add system calls.
pub(crate) const STREAM_MIN: usize = 64 << 10;

/// The most bytes a stream gathers before writing them; a codec's write at least
/// [`DIRECT`] long goes out from where it lies, with what was gathered before it.
const CHUNK: usize = 64 << 10;

/// See [`CHUNK`].
const DIRECT: usize = 16 << 10;

impl Writer {
    /// Sends a message of `len` bytes that `encode` writes into a [`Sink`] (blocking, no
    /// deadline): into a memfd slot when large messages are enabled and one is free,
    /// straight to the socket behind its header when it is at least [`STREAM_MIN`] long,
    /// and through `scratch` (the encode buffer) otherwise.
    ///
    /// Errors: those of `encode` (which maps the codec's to [`Error::Encode`]);
    /// [`Error::Encode`] when the codec wrote other than `len` bytes; the I/O errors of
    /// a send. A message that failed after part of it left through the socket leaves the
    /// writer broken (every later send fails), as the stream would be misaligned.
    pub(crate) fn send_in_place(
        &mut self,
        len: usize,
        scratch: &mut Vec<u8>,
        encode: &mut dyn FnMut(&mut Sink<'_>) -> Result<()>,
    ) -> Result<()> {
        if self.send_in_slot(len, encode)? {
            return Ok(());
        }
        if len < STREAM_MIN {
            scratch.clear();
            let mut put = VecPut(scratch);
            let mut sink = Sink::new(&mut put, len);
            encode(&mut sink)?;
            sink.check_complete()?;
            return self.send_frame(scratch);
        }
        self.stream(len, scratch, encode)
    }

    /// Writes the header of a `len`-byte message and then the bytes `encode` makes, as it
    /// makes them, gathering small writes in `scratch`.
    fn stream(
        &mut self,
        len: usize,
        scratch: &mut Vec<u8>,
        encode: &mut dyn FnMut(&mut Sink<'_>) -> Result<()>,
    ) -> Result<()> {
        self.finish_unsent()?;
        scratch.clear();
        scratch.extend_from_slice(&Header::for_payload(len as u64).encode());
        let mut put = StreamPut {
            writer: self,
            buf: scratch,
            started: false,
            error: None,
        };
        let mut sink = Sink::new(&mut put, len);
        let coded = encode(&mut sink);
        let complete = sink.check_complete();
        let result = match (coded, complete) {
            (Err(e), _) => Err(e),
            (Ok(()), Err(e)) => Err(e),
            (Ok(()), Ok(())) => put.flush(),
        };
        // An I/O error is what failed first: the codec only saw its writes dropped.
        let result = match put.error.take() {
            Some(e) => Err(e),
            None => result,
        };
        // Broken from the first write on (so that a codec that panics leaves it so too),
        // and again usable once the whole frame is out.
        put.writer.broken = result.is_err() && put.started;
        result
    }
}

/// A [`Sink`] into a `Vec`.
struct VecPut<'a>(&'a mut Vec<u8>);

impl Put for VecPut<'_> {
    fn put(&mut self, bytes: &[u8]) -> bool {
        self.0.extend_from_slice(bytes);
        true
    }
}

/// A [`Sink`] to the socket: small writes gathered in `buf` (which starts with the
/// frame's header), large ones written from where they lie.
struct StreamPut<'a> {
    writer: &'a mut Writer,
    buf: &'a mut Vec<u8>,
    /// Whether a write was tried: from then on a failure leaves a frame cut short, and the
    /// writer is marked broken until the frame is whole.
    started: bool,
    /// The first write's error; every later write is dropped.
    error: Option<Error>,
}

impl StreamPut<'_> {
    /// Notes that part of the frame is about to leave; see `started`.
    fn start(&mut self) {
        self.started = true;
        self.writer.broken = true;
    }

    /// Writes what is gathered.
    fn flush(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.start();
        let result = self.writer.write_all(&mut [IoSlice::new(self.buf)]);
        self.buf.clear();
        result
    }
}

impl Put for StreamPut<'_> {
    fn put(&mut self, bytes: &[u8]) -> bool {
        if self.error.is_some() {
            return false;
        }
        let result = if bytes.len() >= DIRECT {
            self.start();
            let result = self
                .writer
                .write_all(&mut [IoSlice::new(self.buf), IoSlice::new(bytes)]);
            self.buf.clear();
            result
        } else {
            self.buf.extend_from_slice(bytes);
            if self.buf.len() >= CHUNK {
                self.flush()
            } else {
                Ok(())
            }
        };
        match result {
            Ok(()) => true,
            Err(e) => {
                self.error = Some(e);
                false
            }
        }
    }
}
