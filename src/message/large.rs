//! Large messages through a pool of memfds, between two procwire ends of a Unix-domain
//! socket that both opted in (the public `enable_large_memfd` on the sender and
//! `accept_large_memfd` on the receiver).
//!
//! # Why
//!
//! A 16 MiB message through a socket is copied into the kernel in pieces the size of the
//! socket buffer, with a wake-up of the reader for each piece. Through a memfd it is one
//! copy into a mapping by the sender, one 44-byte frame, and one copy out of the mapping by
//! the receiver; and the two copies overlap, the receiver copying out each step of the
//! payload as soon as the sender has written it.
//!
//! # On the wire
//!
//! A payload of at least the sender's threshold becomes a *memfd frame* of 44 bytes:
//!
//! - its **head**, sent before the payload is written: the 4-byte length `-2`
//!   (`ff ff ff fe`) and a 32-byte body of little-endian fields: the tag `PWLM` (4 bytes),
//!   the slot id (`u32`), the payload length (`u64`), the message's sequence number
//!   (`u64`) and flags (`u64`; bit 0: this frame carries the slot's memfd, attached with
//!   `SCM_RIGHTS`);
//! - its **end record**, sent once the payload is whole: the tag `PWLE` and a
//!   little-endian `u32` status, 0 for a whole payload, 1 for one the sender abandoned
//!   (its codec failed part-way: for the receiver that message does not exist).
//!
//! Every other message is an ordinary frame, byte for byte what it was.
//!
//! The length `-2` is what makes a mismatch safe: CPython's framing and procwire's
//! decoder have no meaning for it, and a procwire receiver that did not opt in stops with
//! [`Error::Protocol`] ("invalid message length -2 …", naming the missing opt-in) instead
//! of reading the body as a message. A connection on which the sender never opted in sends
//! no such frame, so it stays byte-identical to CPython's. The contract is therefore an
//! explicit opt-in on both ends, no handshake: a one-way connection has no way back for
//! one, and the sender learns nothing it could act on from the peer.
//!
//! # The pool, without a message back
//!
//! The sender keeps up to [`MAX_SLOTS`] slots, each a memfd sealed against shrinking and
//! growing and mapped once in each process, for good (`slot.rs`). A slot's first word is
//! its state: `seq << 1 | 1` while message `seq` is in it (written by the sender before
//! the frame goes out), `seq << 1` once the receiver has copied it out (written back by
//! the receiver through its read-write mapping, with release ordering). So the sender
//! sees, with one atomic load, which slots it may fill again, and nothing travels the other
//! way. A slot's memfd travels once, with the first frame that uses it (and again only if
//! the slot is replaced by a larger one); later frames name the slot by id, so a warm pool
//! costs no descriptor, no `mmap` and no page faults per message. When no free slot is
//! large enough and the pool is full, the message goes through the socket as usual: the
//! stream's order is kept either way.
//!
//! # Copying out while the sender writes
//!
//! A slot's second word is the sender's progress: how many payload bytes it has written,
//! updated every [`PUBLISH_STEP`] bytes (`u64::MAX`: abandoned). A blocking receive reads
//! the head and copies out whatever the progress word says is written, until the end
//! record arrives; then it copies the rest. When it has caught up, it spins for up to
//! [`SPIN`] if it has a core of its own, and then sleeps on the slot's third word, a futex
//! shared by both processes, which the sender's next update wakes (one atomic swap per
//! step on the sender's side, and a `futex` wake only when the receiver sleeps). A sleep
//! that lasts [`SLEEP`] without progress is followed by a look at the socket: a sender
//! that is gone is [`Error::Truncated`], not a hang. On two cores the copies overlap; on
//! one core, each step is copied out while it is still in the processor's cache.
//!
//! A receive with a deadline or none at all (`try_`, timed, `poll`) waits for the whole
//! 44-byte frame, end record included, as for any frame: the payload is then whole, and
//! it is copied out at once.
//!
//! # What the receiver checks
//!
//! Everything in a memfd frame comes from the peer: the tag, that a descriptor comes
//! exactly when the flags say so, that it is a memfd sealed against shrinking and growing
//! (so the mapping can never fault), that all slots together map at most the configured
//! maximum, that the slot id was sent before, that the length fits the slot and the
//! receiver's maximum message size, that the state word says "full" for this sequence
//! number, and the end record. A failed check is [`Error::Descriptors`] with the whole
//! frame consumed: the stream stays aligned and the receiver usable. The peer may still
//! scribble on a slot, or on its progress word, while it is copied out; that makes its own
//! message garbage, and is sound here (`slot.rs`). A peer that never finishes a payload
//! stalls a blocking receive as a frame cut short in a socket does, never a `try_` or timed
//! one.
//!
//! # Where it applies
//!
//! Blocking sends without a deadline (`send_bytes`, `send`), and the receives that return
//! a payload: `recv_bytes`, `recv_bytes_into`, the typed `recv` and rkyv's
//! `recv_archived`, each in its blocking, `try_` and timed form. Other sends
//! (`_timeout`, `_fds`, files, the async types) always use the socket. Other receives
//! (`_fds`, files, writers, the async types) meet a memfd frame as [`Error::Protocol`].

use std::io::IoSlice;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rustix::net::SendFlags;

use super::sink::{Put, Sink};
use super::{Grow, Reader, Writer};
use crate::error::{Error, Result};
use crate::frame::MEMFD_MARK as MARK;
use crate::transport::Kind;

mod slot;

use self::slot::Slot;

/// The most slots a sender keeps, and the most slot ids a receiver accepts.
pub(crate) const MAX_SLOTS: usize = 4;
const TAG: [u8; 4] = *b"PWLM";
const BODY_LEN: usize = 32;
/// A memfd frame's length field and body: what goes out before the payload is written.
const HEAD_LEN: usize = MARK.len() + BODY_LEN;
/// The tag of a memfd frame's end record.
const END_TAG: [u8; 4] = *b"PWLE";
/// The end record: [`END_TAG`] and a little-endian `u32` status.
const END_LEN: usize = 8;
/// A whole memfd frame.
const FRAME_LEN: usize = HEAD_LEN + END_LEN;
/// End-record status: the payload is whole.
const COMPLETE: u32 = 0;
/// End-record status: the sender's codec failed part-way; the message does not exist.
const ABANDONED: u32 = 1;
/// The progress word of a message its sender abandoned.
const PROGRESS_ABANDONED: u64 = u64::MAX;
/// Flag: the frame carries the slot's memfd.
const NEW_MEMFD: u64 = 1;
/// Slots are made in steps of this many payload bytes, so nearby sizes share one.
const SLOT_STEP: usize = 1 << 20;
/// Payload bytes a sender writes between two updates of the progress word: small enough
/// that the receiver's copy of one step can run while the next is written (and, on one
/// core, that a step is still in the cache when the receiver copies it).
const PUBLISH_STEP: usize = 256 << 10;
/// How long a receiver with a core of its own spins on the progress word before it sleeps.
const SPIN: Duration = Duration::from_micros(20);
/// The longest a receiver sleeps on the wake word before it checks that the sender is
/// still there (that the stream has not ended).
const SLEEP: Duration = Duration::from_millis(10);

/// A memfd frame's end record with `status`.
fn end_record(status: u32) -> [u8; END_LEN] {
    let mut out = [0u8; END_LEN];
    out[..4].copy_from_slice(&END_TAG);
    out[4..].copy_from_slice(&status.to_le_bytes());
    out
}

/// A memfd frame's body; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Marker {
    slot: u32,
    len: u64,
    seq: u64,
    flags: u64,
}

impl Marker {
    fn encode(&self) -> [u8; HEAD_LEN] {
        let mut out = [0u8; HEAD_LEN];
        out[..4].copy_from_slice(&MARK);
        out[4..8].copy_from_slice(&TAG);
        out[8..12].copy_from_slice(&self.slot.to_le_bytes());
        out[12..20].copy_from_slice(&self.len.to_le_bytes());
        out[20..28].copy_from_slice(&self.seq.to_le_bytes());
        out[28..36].copy_from_slice(&self.flags.to_le_bytes());
        out
    }

    /// Parses a memfd frame's head; `None` when the tag is wrong.
    fn decode(frame: &[u8; HEAD_LEN]) -> Option<Marker> {
        let u64_at = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&frame[at..at + 8]);
            u64::from_le_bytes(b)
        };
        let mut slot = [0u8; 4];
        slot.copy_from_slice(&frame[8..12]);
        (frame[4..8] == TAG).then(|| Marker {
            slot: u32::from_le_bytes(slot),
            len: u64_at(12),
            seq: u64_at(20),
            flags: u64_at(28),
        })
    }
}

/// A slot's state word: `seq << 1 | 1` while message `seq` is in it, `seq << 1` after.
fn full(seq: u64) -> u64 {
    (seq << 1) | 1
}

fn free(seq: u64) -> u64 {
    seq << 1
}

/// The sender's pool.
#[derive(Debug)]
pub(crate) struct Outbound {
    threshold: usize,
    slots: Vec<OutSlot>,
    /// The sequence number of the last message sent through a slot.
    seq: u64,
}

#[derive(Debug)]
struct OutSlot {
    slot: Slot,
    /// The memfd, until the frame that passes it has gone out.
    fd: Option<OwnedFd>,
    /// The sequence number of the last message put in it (0: none yet).
    last: u64,
}

impl OutSlot {
    fn is_free(&self) -> bool {
        self.slot.state().load(Ordering::Acquire) == free(self.last)
    }
}

impl Outbound {
    /// A pool for payloads of at least `threshold` bytes (at least 1).
    pub(crate) fn new(threshold: usize) -> Outbound {
        Outbound {
            threshold: threshold.max(1),
            slots: Vec::new(),
            seq: 0,
        }
    }

    /// The slot a payload of `len` bytes goes into: a free one large enough, a new one
    /// while the pool has room, or a free one too small replaced by a larger one; `None`
    /// when every slot is in use.
    fn pick(&mut self, len: usize) -> Result<Option<usize>> {
        let fits = |s: &OutSlot| s.slot.capacity() >= len && s.is_free();
        if let Some(i) = self.slots.iter().position(fits) {
            return Ok(Some(i));
        }
        let capacity = len.div_ceil(SLOT_STEP).saturating_mul(SLOT_STEP);
        let at = if self.slots.len() < MAX_SLOTS {
            self.slots.len()
        } else if let Some(i) = self.slots.iter().position(OutSlot::is_free) {
            i
        } else {
            return Ok(None);
        };
        let (slot, fd) = Slot::create(capacity)?;
        let fresh = OutSlot {
            slot,
            fd: Some(fd),
            last: 0,
        };
        match self.slots.get_mut(at) {
            Some(old) => *old = fresh,
            None => self.slots.push(fresh),
        }
        Ok(Some(at))
    }
}

impl Writer {
    /// Starts sending payloads of at least `threshold` bytes through memfds; see the
    /// module docs.
    ///
    /// Errors: [`Error::Descriptors`] when the connection is not a Unix-domain socket.
    pub(crate) fn enable_large_memfd(&mut self, threshold: usize) -> Result<()> {
        if self.kind != Kind::Unix {
            return Err(Error::Descriptors(
                "large messages through memfds need a Unix-domain socket".into(),
            ));
        }
        self.large = Some(Box::new(Outbound::new(threshold)));
        Ok(())
    }

    /// Sends `payload` as one message: through a memfd when large messages are enabled,
    /// it is large enough, there is no deadline and a slot is free; as a frame otherwise.
    #[inline]
    pub(crate) fn send_maybe_memfd(
        &mut self,
        payload: &[u8],
        deadline: Option<std::time::Instant>,
    ) -> Result<()> {
        let copy_in = &mut |sink: &mut Sink<'_>| {
            sink.write(payload);
            Ok(())
        };
        if deadline.is_none() && self.send_in_slot(payload.len(), copy_in)? {
            return Ok(());
        }
        self.send(payload, deadline)
    }

    /// Has `encode` write a message of `len` bytes into a free slot and sends its memfd
    /// frame; `false` when large messages are not enabled, `len` is under their threshold
    /// or no slot is free (nothing was sent, nothing encoded).
    #[inline]
    pub(super) fn send_in_slot(
        &mut self,
        len: usize,
        encode: &mut dyn FnMut(&mut Sink<'_>) -> Result<()>,
    ) -> Result<bool> {
        let Some(mut pool) = self.large.take_if(|pool| len >= pool.threshold) else {
            return Ok(false);
        };
        let sent = self.fill_slot(&mut pool, len, encode);
        self.large = Some(pool);
        sent
    }

    /// [`send_in_slot`](Writer::send_in_slot) with the pool taken out of the writer.
    ///
    /// The frame's head goes out first, so that the receiver copies the payload out while
    /// `encode` writes it (see the module docs), and its end record last. A codec that
    /// fails, or writes other than `len` bytes, ends the frame with "abandoned": the
    /// send returns the codec's error, the receiver's receive of it
    /// [`Error::Descriptors`], and both stay usable. A failure to send the end record
    /// (or a panic in the codec) leaves the writer broken, as the stream would be
    /// misaligned.
    fn fill_slot(
        &mut self,
        pool: &mut Outbound,
        len: usize,
        encode: &mut dyn FnMut(&mut Sink<'_>) -> Result<()>,
    ) -> Result<bool> {
        self.finish_unsent()?;
        let Some(i) = pool.pick(len)? else {
            return Ok(false);
        };
        pool.slots[i].slot.progress().store(0, Ordering::Relaxed);
        self.send_marker(pool, i, len)?;
        self.broken = true; // until the end record is out
        let mut put = SlotPut {
            slot: &pool.slots[i].slot,
            pos: 0,
            done: false,
        };
        let mut sink = Sink::new(&mut put, len);
        let coded = encode(&mut sink).and_then(|()| sink.check_complete());
        let status = match coded {
            Ok(()) => {
                put.finish();
                COMPLETE
            }
            Err(_) => ABANDONED,
        };
        drop(put); // publishes "abandoned" unless finished
        self.write_all(&mut [IoSlice::new(&end_record(status))])?;
        self.broken = false;
        coded.map(|()| true)
    }

    /// Marks slot `i`, which holds a payload of `len` bytes, full and sends its frame. A
    /// frame that could not go out at all leaves the slot free again.
    fn send_marker(&mut self, pool: &mut Outbound, i: usize, len: usize) -> Result<()> {
        pool.seq += 1;
        let seq = pool.seq;
        let out = &mut pool.slots[i];
        out.last = seq;
        out.slot.state().store(full(seq), Ordering::Release);
        let marker = Marker {
            slot: i as u32,
            len: len as u64,
            seq,
            flags: if out.fd.is_some() { NEW_MEMFD } else { 0 },
        };
        let frame = marker.encode();
        let sent = match &out.fd {
            Some(fd) => {
                self.send_first(&[IoSlice::new(&frame)], &[fd.as_fd()], SendFlags::NOSIGNAL)
            }
            None => Ok(0),
        };
        let sent = match sent {
            Ok(n) => n,
            Err(e) => {
                // Nothing went out: the slot is free again, and its memfd still to be sent.
                out.slot.state().store(free(seq), Ordering::Release);
                return Err(e);
            }
        };
        if sent > 0 {
            out.fd = None; // the receiver has it
        }
        if sent == frame.len() {
            return Ok(());
        }
        if let Err(e) = self.write_all(&mut [IoSlice::new(&frame[sent..])]) {
            if sent == 0 {
                out.slot.state().store(free(seq), Ordering::Release);
            }
            return Err(e);
        }
        Ok(())
    }
}

/// A [`Sink`] into a slot's payload area, from its start, that publishes its progress
/// every [`PUBLISH_STEP`] bytes; dropped unfinished (the codec failed or panicked), it
/// publishes "abandoned".
struct SlotPut<'a> {
    slot: &'a Slot,
    pos: usize,
    done: bool,
}

impl SlotPut<'_> {
    /// Stores `progress` in the progress word and wakes the receiver if it sleeps.
    ///
    /// The receiver announces its sleep in the wake word and then reads the progress word
    /// again; here the order is the other way round, both sequentially consistent, so
    /// either the receiver sees the progress or this sees its announcement and wakes it.
    fn publish(&self, progress: u64) {
        self.slot.progress().store(progress, Ordering::SeqCst);
        let word = self.slot.wake_word();
        if word.swap(0, Ordering::SeqCst) != 0 {
            slot::wake_all(word);
        }
    }

    /// Publishes the whole payload.
    fn finish(&mut self) {
        self.done = true;
        self.publish(self.pos as u64);
    }
}

impl Put for SlotPut<'_> {
    fn put(&mut self, mut bytes: &[u8]) -> bool {
        // The sink keeps the message within the `len` the slot was picked for.
        while !bytes.is_empty() {
            let step_end = (self.pos / PUBLISH_STEP + 1) * PUBLISH_STEP;
            let n = bytes.len().min(step_end - self.pos);
            self.slot.copy_in_at(self.pos, &bytes[..n]);
            self.pos += n;
            bytes = &bytes[n..];
            if self.pos == step_end {
                self.publish(self.pos as u64);
            }
        }
        true
    }
}

impl Drop for SlotPut<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.publish(PROGRESS_ABANDONED);
        }
    }
}

/// The receiver's slots, as the peer sent them.
#[derive(Debug)]
pub(crate) struct Inbound {
    /// The most bytes all slots together may map.
    max_mapped: u64,
    slots: [Option<Slot>; MAX_SLOTS],
    /// Where a typed receive copies a payload out (kept, so it faults its pages once).
    buf: Vec<u8>,
    /// Whether this process may run on more than one core: only then does waiting for
    /// the sender's progress spin before it sleeps.
    multicore: bool,
}

impl Inbound {
    fn mapped(&self) -> u64 {
        self.slots.iter().flatten().map(|s| s.mapped() as u64).sum()
    }

    /// Checks a memfd frame and the descriptors that came with it, mapping a slot that
    /// comes with its memfd.
    fn accept(&mut self, m: Marker, fds: Vec<OwnedFd>, max_message: u64) -> Result<()> {
        let i = m.slot as usize;
        if i >= MAX_SLOTS {
            return Err(refuse(format!(
                "slot {i} does not exist (at most {MAX_SLOTS} slots)"
            )));
        }
        let new = m.flags & NEW_MEMFD != 0;
        match (new, <[OwnedFd; 1]>::try_from(fds)) {
            (true, Ok([fd])) => {
                let others =
                    self.mapped() - self.slots[i].as_ref().map_or(0, |s| s.mapped() as u64);
                self.slots[i] = None; // a replaced slot is unmapped first
                self.slots[i] = Some(Slot::open(fd, self.max_mapped.saturating_sub(others))?);
            }
            (false, Ok(_)) => {
                return Err(refuse(format!(
                    "slot {i} came with an unannounced descriptor"
                )))
            }
            (true, Err(fds)) => {
                return Err(refuse(format!(
                    "slot {i} announces its memfd, but {} descriptors came",
                    fds.len()
                )))
            }
            (false, Err(fds)) if !fds.is_empty() => {
                return Err(refuse(format!(
                    "{} descriptors came with slot {i}",
                    fds.len()
                )))
            }
            (false, Err(_)) => {}
        }
        let Some(slot) = &self.slots[i] else {
            return Err(refuse(format!("slot {i} was never sent")));
        };
        check_len(m.len, slot.capacity(), max_message, i)?;
        let state = slot.state().load(Ordering::Acquire);
        if state != full(m.seq) {
            return Err(refuse(format!(
                "slot {i} is not marked full for message {} (state word {state:#x})",
                m.seq
            )));
        }
        Ok(())
    }
}

/// Checks a memfd frame's length against its slot and the receiver's limit.
fn check_len(len: u64, capacity: usize, max_message: u64, i: usize) -> Result<()> {
    if len > max_message {
        return Err(Error::MessageTooLarge {
            len,
            limit: max_message,
        });
    }
    if len > capacity as u64 {
        return Err(refuse(format!(
            "message of {len} bytes in slot {i} of {capacity} bytes"
        )));
    }
    Ok(())
}

fn refuse(why: String) -> Error {
    Error::Descriptors(format!("large message refused: {why}"))
}

impl Reader {
    /// Starts receiving memfd frames (and descriptors), mapping at most `max_mapped`
    /// bytes of slots; see the module docs.
    ///
    /// Errors: [`Error::Descriptors`] when the connection is not a Unix-domain socket or
    /// descriptors cannot be enabled any more (see `enable_fds`).
    pub(crate) fn accept_large_memfd(&mut self, max_mapped: u64) -> Result<()> {
        if self.kind != Kind::Unix {
            return Err(Error::Descriptors(
                "large messages through memfds need a Unix-domain socket".into(),
            ));
        }
        if let Some(large) = &mut self.large {
            large.max_mapped = max_mapped;
            return Ok(());
        }
        self.enable_fds()?;
        self.dec.take_memfd_frames(FRAME_LEN);
        self.large = Some(Box::new(Inbound {
            max_mapped,
            slots: Default::default(),
            buf: Vec::new(),
            multicore: std::thread::available_parallelism().is_ok_and(|n| n.get() > 1),
        }));
        Ok(())
    }

    /// Receives one message into `dst`, through a memfd or not; see `recv_into`.
    #[inline]
    pub(crate) fn recv_into_maybe_memfd(&mut self, dst: &mut [u8]) -> Result<usize> {
        let Some(m) = self.next_memfd()? else {
            return self.recv_into(dst);
        };
        let len = m.len as usize; // <= the slot's capacity
        if len > dst.len() {
            let mut whole = vec![0; len];
            self.take_memfd(m, &mut whole)?;
            return Err(Error::BufferTooShort(whole));
        }
        self.take_memfd(m, &mut dst[..len])?;
        Ok(len)
    }

    /// Receives one message as a new `Vec`, through a memfd or not; see `recv_vec`.
    #[inline]
    pub(crate) fn recv_vec_maybe_memfd(&mut self) -> Result<Vec<u8>> {
        let Some(m) = self.next_memfd()? else {
            return self.recv_vec();
        };
        let mut out = vec![0; m.len as usize];
        self.take_memfd(m, &mut out)?;
        Ok(out)
    }

    /// Receives one message into a caller's growable buffer, through a memfd or not; see
    /// `recv_growing`.
    #[cfg_attr(not(feature = "rkyv"), allow(dead_code))]
    #[inline]
    pub(crate) fn recv_growing_maybe_memfd(&mut self, dst: &mut impl Grow) -> Result<()> {
        let Some(m) = self.next_memfd()? else {
            return self.recv_growing(dst);
        };
        self.take_memfd(m, dst.grow_to(m.len as usize))
    }

    /// Receives one message and hands its payload to `f`, through a memfd or not; see
    /// `recv_with`. A memfd payload is copied once into a buffer kept for the next.
    #[inline]
    pub(crate) fn recv_with_maybe_memfd<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> Result<R> {
        let Some(m) = self.next_memfd()? else {
            return self.recv_with(f);
        };
        let mut buf = self
            .large
            .as_mut()
            .map(|l| std::mem::take(&mut l.buf))
            .unwrap_or_default();
        let len = m.len as usize;
        let taken = self.take_memfd(m, buf.grow_to(len));
        let out = taken.map(|()| f(&buf[..len]));
        if let Some(large) = &mut self.large {
            large.buf = buf;
        }
        out
    }

    /// If the next message is a memfd frame, receives and checks it (see the module docs);
    /// `None` when the next message is an ordinary frame, or cannot be read (the ordinary
    /// receive then reports why).
    fn next_memfd(&mut self) -> Result<Option<Marker>> {
        if self.large.is_none() || !self.memfd_frame_next()? {
            return Ok(None);
        }
        let max = self.max_message_size();
        let checked = match self.claiming_fds(read_head) {
            Ok((Some(m), fds)) => {
                let large = self.large.as_deref_mut().expect("enabled above");
                large.accept(m, fds, max).map(|()| m)
            }
            Ok((None, _)) => Err(refuse("a frame of length -2 without the PWLM tag".into())),
            Err(e @ Error::Descriptors(_)) => Err(e),
            Err(e) => return Err(e),
        };
        match checked {
            Ok(m) => Ok(Some(m)),
            Err(e) => {
                self.read_end()?; // a refused frame is consumed whole
                Err(e)
            }
        }
    }

    /// Copies the payload of the checked memfd frame `m` into `dst` (exactly its length)
    /// as its sender writes it, reads the frame's end record, and gives the slot back.
    ///
    /// While the end record has not arrived, the copy follows the slot's progress word,
    /// waiting for it as [`await_progress`](Reader::await_progress) says; once it has
    /// (always, for a receive that waited for a whole frame), the rest is copied at once.
    fn take_memfd(&mut self, m: Marker, dst: &mut [u8]) -> Result<()> {
        let large = self.large.take().expect("enabled");
        let out = self.follow_slot(&large, m, dst);
        self.large = Some(large);
        out
    }

    fn follow_slot(&mut self, large: &Inbound, m: Marker, dst: &mut [u8]) -> Result<()> {
        let slot = large.slots[m.slot as usize].as_ref().expect("checked");
        let len = dst.len();
        let mut copied = 0;
        while copied < len && self.dec.buffered_len() < END_LEN {
            let progress = slot.progress().load(Ordering::Acquire);
            if progress == PROGRESS_ABANDONED {
                break;
            }
            // The peer writes this word; a value past the end only means "all of it".
            let written = usize::try_from(progress).map_or(len, |p| p.min(len));
            if written > copied {
                slot.copy_out_at(copied, &mut dst[copied..written]);
                copied = written;
                continue;
            }
            self.await_progress(slot, progress, large.multicore)?;
        }
        let end = self.read_end()?;
        let status = (end[..4] == END_TAG).then(|| {
            let mut status = [0u8; 4];
            status.copy_from_slice(&end[4..]);
            u32::from_le_bytes(status)
        });
        if status == Some(COMPLETE) {
            slot.copy_out_at(copied, &mut dst[copied..]);
        }
        slot.state().store(free(m.seq), Ordering::Release);
        match status {
            Some(COMPLETE) => Ok(()),
            Some(ABANDONED) => Err(refuse(format!(
                "message {} was abandoned by its sender part-way (its codec failed, and its \
                 send returned that error)",
                m.seq
            ))),
            _ => Err(refuse(format!(
                "the end record of message {} is not PWLE with a known status ({end:02x?})",
                m.seq
            ))),
        }
    }

    /// Waits until the progress word of `slot` is no longer `seen`: spinning for up to
    /// [`SPIN`] when this process has a core of its own, then sleeping on the wake word,
    /// which the sender's next update wakes. After a sleep of [`SLEEP`] with no progress
    /// it reads what the socket has without blocking: the end record (the caller then
    /// stops following), or the end of the stream ([`Error::Truncated`]: the sender is
    /// gone part-way).
    fn await_progress(&mut self, slot: &Slot, seen: u64, multicore: bool) -> Result<()> {
        let moved = || slot.progress().load(Ordering::Acquire) != seen;
        if multicore {
            let start = Instant::now();
            while start.elapsed() < SPIN {
                for _ in 0..64 {
                    if moved() {
                        return Ok(());
                    }
                    std::hint::spin_loop();
                }
            }
        }
        let word = slot.wake_word();
        word.store(1, Ordering::SeqCst);
        if slot.progress().load(Ordering::SeqCst) != seen {
            return Ok(());
        }
        slot::sleep_on(word, 1, SLEEP);
        if moved() {
            return Ok(());
        }
        match self.read_nonblocking() {
            Ok(Some(0)) => {
                let have = (HEAD_LEN + self.dec.buffered_len()) as u64;
                Err(self.dec.eof(have, FRAME_LEN as u64))
            }
            Ok(_) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Reads a memfd frame's end record (blocking) and finishes its message.
    fn read_end(&mut self) -> Result<[u8; END_LEN]> {
        while self.dec.buffered_len() < END_LEN {
            let have = (HEAD_LEN + self.dec.buffered_len()) as u64;
            if self.fill_header(END_LEN)? == 0 {
                return Err(self.dec.eof(have, FRAME_LEN as u64));
            }
        }
        let mut end = [0u8; END_LEN];
        end.copy_from_slice(self.dec.take(END_LEN));
        self.finish_message();
        Ok(end)
    }

    /// Whether the next frame's length is `-2`, reading (blocking) until 4 bytes are there.
    fn memfd_frame_next(&mut self) -> Result<bool> {
        let stopped = self.dec.check_readable().is_err() || self.anc.check().is_err();
        if self.failed.is_some() || stopped {
            return Ok(false);
        }
        self.anc.discard_before(self.consumed());
        while self.dec.buffered_len() < MARK.len() {
            if self.fill_header(MARK.len())? == 0 {
                return Ok(false);
            }
        }
        Ok(self.dec.buffered()[..MARK.len()] == MARK)
    }
}

/// Reads a memfd frame's head (its length already buffered) and hands out the
/// descriptors that came with the frame so far.
fn read_head(r: &mut Reader) -> Result<Option<Marker>> {
    while r.dec.buffered_len() < HEAD_LEN {
        let have = r.dec.buffered_len() as u64;
        if r.fill_header(HEAD_LEN)? == 0 {
            return Err(r.dec.eof(have, FRAME_LEN as u64));
        }
    }
    let mut head = [0u8; HEAD_LEN];
    head.copy_from_slice(r.dec.take(HEAD_LEN));
    // Descriptors belong to the last byte of the read that brought them: when the end
    // record came in the same write as the head, that is past the head.
    let frame_end = r.consumed() + END_LEN as u64;
    r.anc.message_done(frame_end);
    Ok(Marker::decode(&head))
}

/// The opt-ins, on the message layer's halves; the typed halves call these.
impl<X> super::MessageSender<X> {
    /// See [`Writer::enable_large_memfd`].
    pub(crate) fn enable_large_memfd(&self, threshold: usize) -> Result<()> {
        self.lock().writer.enable_large_memfd(threshold)
    }
}

impl<X> super::MessageReceiver<X> {
    /// See [`Reader::accept_large_memfd`].
    pub(crate) fn accept_large_memfd(&self, max_mapped: u64) -> Result<()> {
        self.lock().reader.accept_large_memfd(max_mapped)
    }
}
