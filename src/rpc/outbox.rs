//! The entries a requester keeps — unanswered requests and, when reconnecting,
//! unacknowledged messages — with the bytes their encoded envelopes hold, and the bound on
//! both that a reconnecting requester sets ([`ReconnectBuilder::outbox`]).
//!
//! [`ReconnectBuilder::outbox`]: crate::rpc::ReconnectBuilder::outbox

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::sync::Arc;

use super::core::{Answer, Kind};
use crate::error::{Error, Result};

/// An entry's encoded envelope and the file that follows it, if any.
pub(super) type Outgoing = (Arc<Vec<u8>>, Option<Arc<File>>);

/// One request or message the requester keeps.
pub(super) struct Entry<Resp> {
    pub(super) kind: Kind,
    /// The encoded envelope; taken once written unless kept for resending (only through
    /// [`Outbox::take_payload`], which keeps the byte count).
    pub(super) payload: Option<Arc<Vec<u8>>>,
    /// A file that follows the envelope (`Push`).
    pub(super) attachment: Option<Arc<File>>,
    pub(super) answer: Option<Result<Answer<Resp>>>,
}

impl<Resp> Entry<Resp> {
    fn bytes(&self) -> usize {
        self.payload.as_ref().map_or(0, |p| p.len())
    }
}

/// How much a requester may keep: entries, and bytes of their encoded envelopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limit {
    pub(crate) messages: usize,
    pub(crate) bytes: usize,
}

impl Limit {
    /// No bound: a requester that does not reconnect keeps an envelope only until it is
    /// written, and its writes block while the peer does not read.
    pub(crate) const NONE: Limit = Limit {
        messages: usize::MAX,
        bytes: usize::MAX,
    };
}

/// The kept entries by sequence number, and the bytes they hold.
pub(super) struct Outbox<Resp> {
    entries: BTreeMap<u64, Entry<Resp>>,
    /// The sum of the entries' payload lengths.
    bytes: usize,
    limit: Limit,
}

impl<Resp> Outbox<Resp> {
    pub(super) fn new(limit: Limit) -> Self {
        Outbox {
            entries: BTreeMap::new(),
            bytes: 0,
            limit,
        }
    }

    /// Fails when no entry would fit, whatever its size: checked before encoding one.
    ///
    /// Errors: [`Error::Io`] of kind `WouldBlock`.
    pub(super) fn check_room(&self) -> Result<()> {
        if self.entries.len() >= self.limit.messages || self.bytes >= self.limit.bytes {
            return Err(self.full(None));
        }
        Ok(())
    }

    /// Adds `entry` if it fits in the bound.
    ///
    /// Errors: [`Error::Io`] of kind `WouldBlock` when the outbox is full, of kind
    /// `InvalidInput` when the entry alone is larger than the bound.
    pub(super) fn insert(&mut self, seq: u64, entry: Entry<Resp>) -> Result<()> {
        let len = entry.bytes();
        if len > self.limit.bytes {
            return Err(Error::Io(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "an envelope of {len} bytes exceeds the outbox's {}-byte limit",
                    self.limit.bytes
                ),
            )));
        }
        self.check_room()?;
        if self.bytes + len > self.limit.bytes {
            return Err(self.full(Some(len)));
        }
        self.bytes += len;
        self.entries.insert(seq, entry);
        Ok(())
    }

    /// The error for a full outbox; `len`, the size of the envelope that did not fit.
    fn full(&self, len: Option<usize>) -> Error {
        let Limit { messages, bytes } = self.limit;
        let this = len.map_or(String::new(), |len| format!(", {len} more do not fit"));
        Error::Io(io::Error::new(
            io::ErrorKind::WouldBlock,
            format!(
                "the outbox is full: {} messages and requests of {} bytes wait for the peer{this} \
                 (limits: {messages} messages, {bytes} bytes)",
                self.entries.len(),
                self.bytes
            ),
        ))
    }

    pub(super) fn remove(&mut self, seq: u64) -> Option<Entry<Resp>> {
        let entry = self.entries.remove(&seq)?;
        self.bytes -= entry.bytes();
        Some(entry)
    }

    pub(super) fn get(&self, seq: u64) -> Option<&Entry<Resp>> {
        self.entries.get(&seq)
    }

    /// The entry `seq`, to fill or take its answer (its payload only through
    /// [`take_payload`](Outbox::take_payload)).
    pub(super) fn get_mut(&mut self, seq: u64) -> Option<&mut Entry<Resp>> {
        self.entries.get_mut(&seq)
    }

    /// Takes the payload and attachment of entry `seq`, once written and not kept.
    pub(super) fn take_payload(&mut self, seq: u64) -> Option<Outgoing> {
        let entry = self.entries.get_mut(&seq)?;
        let payload = entry.payload.take()?;
        self.bytes -= payload.len();
        Some((payload, entry.attachment.take()))
    }

    /// Drops every message, keeping the requests.
    pub(super) fn drop_messages(&mut self) {
        let bytes = &mut self.bytes;
        self.entries.retain(|_, e| {
            let keep = !matches!(e.kind, Kind::Message);
            if !keep {
                *bytes -= e.bytes();
            }
            keep
        });
    }

    pub(super) fn has_messages(&self) -> bool {
        self.entries
            .values()
            .any(|e| matches!(e.kind, Kind::Message))
    }

    pub(super) fn seqs(&self) -> impl Iterator<Item = u64> + '_ {
        self.entries.keys().copied()
    }

    pub(super) fn entries_mut(&mut self) -> impl Iterator<Item = &mut Entry<Resp>> {
        self.entries.values_mut()
    }
}
