//! The harnesses behind procwire's cargo-fuzz targets, one public function per target.
//!
//! Each target file in `fuzz_targets/` is one line that calls the function of the same
//! name here. Keeping the bodies in a library lets `tests/corpus.rs` replay the committed
//! seeds and regression inputs through exactly the same code on stable Rust, without
//! libFuzzer, and lets `examples/write_seeds.rs` build the seeds from the same types.
//!
//! Every harness checks behaviour, not only the absence of a crash:
//!
//! - [`frame_decoder`] drives the pure [`FrameDecoder`](procwire::frame::FrameDecoder)
//!   with no I/O at all, and compares its messages and its end with the reference parser;
//! - [`frame_reader`] and [`recv_bytes_into`] compare what procwire receives with an
//!   independent reference parser of the same byte stream (messages, then the exact end:
//!   disconnected, truncated with its byte counts, too large, or a framing error);
//! - [`auth_listener`] and [`auth_client`] assert that a peer who cannot know the key
//!   never authenticates, and that the handshake ends with an error instead of waiting
//!   for its deadline once the peer has nothing more to say;
//! - [`handshake`] drives the sans-I/O handshake machine directly: against arbitrary
//!   messages it never accepts a reply it could not check, and it stays finished after an
//!   error; two machines against each other authenticate exactly when their keys agree;
//! - the codec targets assert that whatever decodes re-encodes to bytes that decode to
//!   the same value; [`pickle_value`] does so for the pickle reader and writer through
//!   `PyValue`, with every protocol written.
//!
//! A harness panics (which libFuzzer reports as a crash) when a check fails.

mod auth;
mod codecs;
mod decoder;
mod handshake;
mod peer;
pub mod seeds;
mod stream;

pub use crate::auth::{auth_client, auth_listener};
pub use crate::codecs::{codec_json, codec_pickle, codec_postcard, codec_rkyv, pickle_value};
pub use crate::decoder::frame_decoder;
pub use crate::handshake::handshake;
pub use crate::stream::{frame_reader, recv_bytes_into};

/// A harness: runs one input, panics when a check fails.
pub type Harness = fn(&[u8]);

/// Every target, by name, for the corpus replay and the seed writer.
pub const TARGETS: &[(&str, Harness)] = &[
    ("frame_reader", frame_reader),
    ("frame_decoder", frame_decoder),
    ("recv_bytes_into", recv_bytes_into),
    ("auth_listener", auth_listener),
    ("auth_client", auth_client),
    ("handshake", handshake),
    ("codec_postcard", codec_postcard),
    ("codec_rkyv", codec_rkyv),
    ("codec_pickle", codec_pickle),
    ("codec_json", codec_json),
    ("pickle_value", pickle_value),
];

/// Reads knobs (small parameters) off the front of a fuzz input; past its end every knob
/// is 0, so any input is valid.
#[derive(Debug)]
pub(crate) struct Knobs<'a> {
    bytes: &'a [u8],
}

impl<'a> Knobs<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Knobs<'a> {
        Knobs { bytes }
    }

    pub(crate) fn byte(&mut self) -> u8 {
        match self.bytes.split_first() {
            Some((&b, rest)) => {
                self.bytes = rest;
                b
            }
            None => 0,
        }
    }

    pub(crate) fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }

    /// One of `choices`, picked by the next byte.
    pub(crate) fn pick<T: Copy>(&mut self, choices: &[T]) -> T {
        choices[usize::from(self.byte()) % choices.len()]
    }

    /// Up to `n` bytes, fewer when the input ends first.
    pub(crate) fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.bytes.split_at(n.min(self.bytes.len()));
        self.bytes = rest;
        head
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Everything not read yet.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.bytes)
    }
}

/// A small deterministic generator (xorshift64*), so that one input always makes the same
/// choices.
#[derive(Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    pub(crate) fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n.max(1)
    }
}
