//! Large messages through a pool of memfds, between two procwire ends of a Unix-domain
//! socket that both opted in (the public `enable_large_memfd` on the sender and
//! `accept_large_memfd` on the receiver).
//!
//! # Why
//!
//! A 16 MiB message through a socket is copied into the kernel in pieces the size of the
//! socket buffer, with a wake-up of the reader for each piece. Through a memfd it is one
//! copy into a mapping by the sender, one 36-byte frame, and one copy out of the mapping by
//! the receiver.
//!
//! # On the wire
//!
//! A payload of at least the sender's threshold becomes a *memfd frame*: the 4-byte length
//! `-2` (`ff ff ff fe`) and a 32-byte body of little-endian fields: the tag `PWLM`
//! (4 bytes), the slot id (`u32`), the payload length (`u64`), the message's sequence
//! number (`u64`) and flags (`u64`; bit 0: this frame carries the slot's memfd, attached
//! with `SCM_RIGHTS`). Every other message is an ordinary frame, byte for byte what it was.
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
//! # What the receiver checks
//!
//! Everything in a memfd frame comes from the peer: the tag, that a descriptor comes
//! exactly when the flags say so, that it is a memfd sealed against shrinking and growing
//! (so the mapping can never fault), that all slots together map at most the configured
//! maximum, that the slot id was sent before, that the length fits the slot and the
//! receiver's maximum message size, and that the state word says "full" for this sequence
//! number. A failed check is [`Error::Descriptors`] with the frame consumed: the stream
//! stays aligned and the receiver usable. The peer may still scribble on a slot while it is
//! copied out; that makes its own message garbage, and is sound here (`slot.rs`).
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
const FRAME_LEN: usize = MARK.len() + BODY_LEN;
/// Flag: the frame carries the slot's memfd.
const NEW_MEMFD: u64 = 1;
/// Slots are made in steps of this many payload bytes, so nearby sizes share one.
const SLOT_STEP: usize = 1 << 20;

/// A memfd frame's body; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Marker {
    slot: u32,
    len: u64,
    seq: u64,
    flags: u64,
}

impl Marker {
    fn encode(&self) -> [u8; FRAME_LEN] {
        let mut out = [0u8; FRAME_LEN];
        out[..4].copy_from_slice(&MARK);
        out[4..8].copy_from_slice(&TAG);
        out[8..12].copy_from_slice(&self.slot.to_le_bytes());
        out[12..20].copy_from_slice(&self.len.to_le_bytes());
        out[20..28].copy_from_slice(&self.seq.to_le_bytes());
        out[28..36].copy_from_slice(&self.flags.to_le_bytes());
        out
    }

    /// Parses a whole memfd frame; `None` when the tag is wrong.
    fn decode(frame: &[u8; FRAME_LEN]) -> Option<Marker> {
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

    /// [`send_in_slot`](Writer::send_in_slot) with the pool taken out of the writer. A
    /// codec that fails, or writes other than `len` bytes, leaves the slot free and the
    /// stream as it was.
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
        let mut put = SlotPut {
            slot: &pool.slots[i].slot,
            pos: 0,
        };
        let mut sink = Sink::new(&mut put, len);
        encode(&mut sink)?;
        sink.check_complete()?;
        self.send_marker(pool, i, len)?;
        Ok(true)
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

/// A [`Sink`] into a slot's payload area, from its start.
struct SlotPut<'a> {
    slot: &'a Slot,
    pos: usize,
}

impl Put for SlotPut<'_> {
    fn put(&mut self, bytes: &[u8]) -> bool {
        // The sink keeps the message within the `len` the slot was picked for.
        self.slot.copy_in_at(self.pos, bytes);
        self.pos += bytes.len();
        true
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

/// A received memfd frame, checked: the slot its payload is in, until copied out.
struct Arrived<'a> {
    slot: &'a Slot,
    len: usize,
    seq: u64,
}

impl Arrived<'_> {
    /// Copies the payload into `dst` (exactly `len` bytes) and gives the slot back.
    fn copy_to(self, dst: &mut [u8]) {
        self.slot.copy_out(dst);
        self.slot.state().store(free(self.seq), Ordering::Release);
    }
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
        }));
        Ok(())
    }

    /// Receives one message into `dst`, through a memfd or not; see `recv_into`.
    #[inline]
    pub(crate) fn recv_into_maybe_memfd(&mut self, dst: &mut [u8]) -> Result<usize> {
        let Some(m) = self.next_memfd()? else {
            return self.recv_into(dst);
        };
        let arrived = self.arrived(m);
        let len = arrived.len;
        if len > dst.len() {
            let mut whole = vec![0; len];
            arrived.copy_to(&mut whole);
            return Err(Error::BufferTooShort(whole));
        }
        arrived.copy_to(&mut dst[..len]);
        Ok(len)
    }

    /// Receives one message as a new `Vec`, through a memfd or not; see `recv_vec`.
    #[inline]
    pub(crate) fn recv_vec_maybe_memfd(&mut self) -> Result<Vec<u8>> {
        let Some(m) = self.next_memfd()? else {
            return self.recv_vec();
        };
        let arrived = self.arrived(m);
        let mut out = vec![0; arrived.len];
        arrived.copy_to(&mut out);
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
        let arrived = self.arrived(m);
        let len = arrived.len;
        arrived.copy_to(dst.grow_to(len));
        Ok(())
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
        let arrived = self.arrived(m);
        let len = arrived.len;
        arrived.copy_to(buf.grow_to(len));
        let out = f(&buf[..len]);
        if let Some(large) = &mut self.large {
            large.buf = buf;
        }
        Ok(out)
    }

    /// If the next message is a memfd frame, receives and checks it (see the module docs);
    /// `None` when the next message is an ordinary frame, or cannot be read (the ordinary
    /// receive then reports why).
    fn next_memfd(&mut self) -> Result<Option<Marker>> {
        if self.large.is_none() || !self.memfd_frame_next()? {
            return Ok(None);
        }
        let max = self.max_message_size();
        let (marker, fds) = self.claiming_fds(read_frame)?;
        let large = self.large.as_deref_mut().expect("enabled above");
        let Some(m) = marker else {
            return Err(refuse("a frame of length -2 without the PWLM tag".into()));
        };
        large.accept(m, fds, max)?;
        Ok(Some(m))
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

    /// The slot of the memfd frame `m` that [`next_memfd`](Reader::next_memfd) checked.
    fn arrived(&self, m: Marker) -> Arrived<'_> {
        let large = self.large.as_deref().expect("enabled");
        let slot = large.slots[m.slot as usize].as_ref().expect("checked");
        Arrived {
            slot,
            len: m.len as usize, // <= the slot's capacity
            seq: m.seq,
        }
    }
}

/// Reads a whole memfd frame (its length already buffered) and finishes its message.
fn read_frame(r: &mut Reader) -> Result<Option<Marker>> {
    while r.dec.buffered_len() < FRAME_LEN {
        let have = r.dec.buffered_len() as u64;
        if r.fill_header(FRAME_LEN)? == 0 {
            return Err(r.dec.eof(have, FRAME_LEN as u64));
        }
    }
    let mut frame = [0u8; FRAME_LEN];
    frame.copy_from_slice(r.dec.take(FRAME_LEN));
    r.finish_message();
    Ok(Marker::decode(&frame))
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
