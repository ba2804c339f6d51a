//! Sends and receives that report their progress to a caller's callback, `(bytes so far,
//! total)` of one message's payload.
//!
//! These are separate paths beside the plain ones, which stay exactly as they were: a
//! receive without a callback runs [`Reader::read_payload`] with a no-op hook that the
//! compiler removes, and a send without one never comes here.
//!
//! The callback runs at most once per kernel write or read, never twice with the same
//! count, and always last with `(total, total)` when the message went through. A
//! blocking write of a large slice returns only when the kernel has taken all of it, so a
//! reporting send writes the payload in pieces of [`STEP`] bytes: one system call more
//! per mebibyte, which is nothing beside copying that mebibyte.

use std::io::IoSlice;

use super::reader::Progress;
use super::{MessageReceiver, MessageSender, Reader, Wait, Writer};
use crate::error::Result;
use crate::frame::Header;

/// The most a reporting send (bytes, or a file through `sendfile`) hands the kernel in
/// one call.
pub(super) const STEP: usize = 1 << 20;

/// A caller's callback for one message of `total` payload bytes.
pub(crate) struct Report<'a> {
    f: &'a mut dyn FnMut(u64, u64),
    total: u64,
    last: Option<u64>,
}

impl<'a> Report<'a> {
    pub(crate) fn new(f: &'a mut dyn FnMut(u64, u64), total: u64) -> Self {
        Report {
            f,
            total,
            last: None,
        }
    }

    /// Reports `done` bytes, unless that count was the last one reported.
    pub(crate) fn at(&mut self, done: u64) {
        if self.last != Some(done) {
            self.last = Some(done);
            (self.f)(done, self.total);
        }
    }

    /// Reports the end: `(total, total)`, once.
    pub(crate) fn end(&mut self) {
        self.at(self.total);
    }
}

impl Writer {
    /// [`send_frame`](Writer::send_frame), reporting the payload bytes the kernel has
    /// taken after each piece of at most [`STEP`] bytes.
    fn send_frame_reporting(&mut self, payload: &[u8], report: &mut Report<'_>) -> Result<()> {
        self.finish_unsent()?;
        let header = Header::for_payload(payload.len() as u64).encode();
        let mut pieces = payload.chunks(STEP);
        let first = pieces.next().unwrap_or_default();
        self.write_all(&mut [IoSlice::new(&header), IoSlice::new(first)])?;
        let mut done = first.len();
        report.at(done as u64);
        for piece in pieces {
            self.write_all(&mut [IoSlice::new(piece)])?;
            done += piece.len();
            report.at(done as u64);
        }
        report.end();
        Ok(())
    }
}

impl Reader {
    /// [`recv_into`](Reader::recv_into), reporting the payload bytes received after each
    /// read. A message longer than `dst` comes back whole in
    /// [`Error::BufferTooShort`](crate::Error::BufferTooShort), without reports.
    fn recv_into_reporting(
        &mut self,
        dst: &mut [u8],
        f: &mut dyn FnMut(u64, u64),
    ) -> Result<usize> {
        let mut report = Report::new(f, 0);
        let len = self.recv_into_hooked(dst, &mut Progress::default(), |done, total| {
            report.total = total as u64;
            report.at(done as u64);
        })?;
        report.total = len as u64;
        report.end();
        Ok(len)
    }
}

impl<X> MessageSender<X> {
    /// Sends `payload` as one message, reporting to `f`; see the module docs.
    pub(crate) fn send_bytes_reporting(
        &self,
        payload: &[u8],
        f: &mut dyn FnMut(u64, u64),
    ) -> Result<()> {
        let mut report = Report::new(f, payload.len() as u64);
        self.lock()
            .writer
            .send_frame_reporting(payload, &mut report)
    }
}

impl<X> MessageReceiver<X> {
    /// Receives the next message into `dst`, reporting to `f`; its length.
    pub(crate) fn recv_into_reporting(
        &self,
        dst: &mut [u8],
        f: &mut dyn FnMut(u64, u64),
    ) -> Result<usize> {
        self.receive(Wait::Block, |r, _| r.recv_into_reporting(dst, f))
    }
}
