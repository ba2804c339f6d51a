//! Large messages through memfds (`enable_large_memfd` / `accept_large_memfd`): between
//! two real processes, the exact frames on the wire (read by a raw peer), the pool's reuse
//! and its fallback to the socket, and every hostile frame a raw peer can send to a
//! receiver that opted in, each of which must fail with a clear error and leave the
//! receiver reading the next message.

mod util;

use std::io::Write;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use procwire::{Connection, Error};
use rustix::fs::{MemfdFlags, SealFlags};
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};
use util::assert_err;
use util::child::{assert_exited_ok, child, is_child, wait_for};

const MIB: usize = 1 << 20;
/// Where a slot's payload starts: one page after its state word.
const PAYLOAD_OFFSET: u64 = 4096;
/// A memfd frame's head: the length `-2` and the 32-byte body.
const HEAD_LEN: usize = 36;
/// The whole frame: the head and the 8-byte end record.
const FRAME_LEN: usize = HEAD_LEN + 8;
const NEW_MEMFD: u64 = 1;
/// The end record of a whole payload.
const COMPLETE: [u8; 8] = *b"PWLE\0\0\0\0";

/// A message of `len` bytes that differs from the one of any other `seed`.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 12) as u8)
        .collect()
}

/// A procwire connection on one end of a socket pair, and the raw other end.
fn raw_pair() -> (Connection<Vec<u8>, Vec<u8>>, UnixStream) {
    let (ours, theirs) = UnixStream::pair().unwrap();
    ours.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let conn = Connection::from_fd(theirs.into()).unwrap();
    (conn, ours)
}

/// A memfd frame's head, as the sender writes it before the payload (see
/// `src/message/large.rs`).
fn head(tag: &[u8; 4], slot: u32, len: u64, seq: u64, flags: u64) -> [u8; HEAD_LEN] {
    let mut f = [0u8; HEAD_LEN];
    f[..4].copy_from_slice(&(-2i32).to_be_bytes());
    f[4..8].copy_from_slice(tag);
    f[8..12].copy_from_slice(&slot.to_le_bytes());
    f[12..20].copy_from_slice(&len.to_le_bytes());
    f[20..28].copy_from_slice(&seq.to_le_bytes());
    f[28..36].copy_from_slice(&flags.to_le_bytes());
    f
}

/// One whole memfd frame of a payload already in its slot: the head and "complete".
fn frame(tag: &[u8; 4], slot: u32, len: u64, seq: u64, flags: u64) -> [u8; FRAME_LEN] {
    let mut f = [0u8; FRAME_LEN];
    f[..HEAD_LEN].copy_from_slice(&head(tag, slot, len, seq, flags));
    f[HEAD_LEN..].copy_from_slice(&COMPLETE);
    f
}

/// Writes `bytes` with `fds` attached to the first of them.
fn send_raw(sock: &UnixStream, bytes: &[u8], fds: &[BorrowedFd<'_>]) {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(4))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() {
        assert!(control.push(SendAncillaryMessage::ScmRights(fds)));
    }
    let n = rustix::net::sendmsg(
        sock,
        &[std::io::IoSlice::new(bytes)],
        &mut control,
        SendFlags::NOSIGNAL,
    )
    .unwrap();
    assert_eq!(n, bytes.len());
}

/// Reads exactly `len` bytes, with the descriptors that came with them.
fn recv_raw(sock: &UnixStream, len: usize) -> (Vec<u8>, Vec<OwnedFd>) {
    let mut out = vec![0u8; len];
    let mut fds = Vec::new();
    let mut at = 0;
    while at < len {
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(8))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let got = rustix::net::recvmsg(
            sock,
            &mut [std::io::IoSliceMut::new(&mut out[at..])],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        )
        .unwrap();
        assert!(got.bytes > 0, "the peer closed after {at} of {len} bytes");
        at += got.bytes;
        for msg in control.drain() {
            if let RecvAncillaryMessage::ScmRights(r) = msg {
                fds.extend(r);
            }
        }
    }
    (out, fds)
}

/// A slot as a sender makes it: a memfd of a page plus `capacity` bytes, sealed against
/// shrinking and growing, holding `payload` and the state word "message `seq` is in it".
fn slot_memfd(capacity: usize, payload: &[u8], seq: u64) -> OwnedFd {
    let fd = memfd(PAYLOAD_OFFSET + capacity as u64);
    rustix::fs::fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW).unwrap();
    write_slot(&fd, payload, seq);
    fd
}

fn memfd(len: u64) -> OwnedFd {
    let flags = MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING;
    let fd = rustix::fs::memfd_create("test-slot", flags).unwrap();
    rustix::fs::ftruncate(&fd, len).unwrap();
    fd
}

/// Writes `payload` into a slot and marks message `seq` as in it.
fn write_slot(fd: &OwnedFd, payload: &[u8], seq: u64) {
    let file = std::fs::File::from(fd.try_clone().unwrap());
    file.write_all_at(payload, PAYLOAD_OFFSET).unwrap();
    file.write_all_at(&(seq << 1 | 1).to_ne_bytes(), 0).unwrap();
}

fn state_word(fd: &OwnedFd) -> u64 {
    let file = std::fs::File::from(fd.try_clone().unwrap());
    let mut w = [0u8; 8];
    file.read_exact_at(&mut w, 0).unwrap();
    u64::from_ne_bytes(w)
}

/// Sets a slot's progress word: how many payload bytes its sender has written.
fn set_progress(fd: &OwnedFd, written: u64) {
    let file = std::fs::File::from(fd.try_clone().unwrap());
    file.write_all_at(&written.to_ne_bytes(), 8).unwrap();
}

/// Waits (up to 5 s) until the receiver sleeps on the slot's wake word, waiting for the
/// sender's progress; panics if it never does.
fn await_receiver_sleep(fd: &OwnedFd) {
    let file = std::fs::File::from(fd.try_clone().unwrap());
    let start = Instant::now();
    let mut w = [0u8; 4];
    while start.elapsed() < Duration::from_secs(5) {
        file.read_exact_at(&mut w, 16).unwrap();
        if u32::from_ne_bytes(w) != 0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    panic!("the receiver never waited for the sender's progress");
}

fn descriptors_error(err: &Error, needle: &str) {
    assert!(
        matches!(err, Error::Descriptors(_)) && err.to_string().contains(needle),
        "expected Error::Descriptors saying {needle:?}, got {err:?} ({err})"
    );
}

/// The receiver refused the last frame and reads the next ordinary message.
fn still_reads(conn: &Connection<Vec<u8>, Vec<u8>>, raw: &UnixStream) {
    let mut msg = (5u32).to_be_bytes().to_vec();
    msg.extend_from_slice(b"after");
    (&*raw).write_all(&msg).unwrap();
    assert_eq!(conn.recv_bytes().unwrap(), b"after");
}

// ---- between two processes ----------------------------------------------------------

/// The child: echoes every message back as it came (bytes as bytes), through memfds both
/// ways; stops on an empty message.
#[test]
fn child_echoes_through_memfds() {
    if !is_child() {
        return;
    }
    let conn = procwire::from_parent::<Vec<u8>, Vec<u8>>().unwrap();
    conn.accept_large_memfd(256 << 20).unwrap();
    conn.enable_large_memfd(MIB).unwrap();
    let mut buf = vec![0u8; 20 * MIB];
    loop {
        let n = conn.recv_bytes_into(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        conn.send_bytes(&buf[..n]).unwrap();
    }
    // Typed values, both ways.
    let v: Vec<u8> = conn.recv().unwrap();
    conn.send(&v).unwrap();
}

#[test]
fn bytes_and_typed_values_round_trip_between_processes() {
    if is_child() {
        return;
    }
    let (proc, conn) =
        procwire::spawn::<Vec<u8>, Vec<u8>>(child("child_echoes_through_memfds")).unwrap();
    conn.enable_large_memfd(MIB).unwrap();
    conn.accept_large_memfd(256 << 20).unwrap();
    // Below the threshold, at it, above it; a size that outgrows the first slots (a new,
    // larger memfd replaces one); then sizes that fit slots already sent.
    let sizes = [
        1000,
        MIB - 1,
        MIB,
        3 * MIB + 5,
        16 * MIB,
        2 * MIB,
        16 * MIB,
        MIB + 7,
        16 * MIB,
    ];
    let mut back = vec![0u8; 20 * MIB];
    for (i, &len) in sizes.iter().enumerate() {
        let msg = pattern(len, i as u8);
        conn.send_bytes(&msg).unwrap();
        let n = conn.recv_bytes_into(&mut back).unwrap();
        assert_eq!(n, len, "message {i}");
        assert!(
            back[..n] == msg[..],
            "message {i} of {len} bytes came back altered"
        );
    }
    conn.send_bytes(&[] as &[u8]).unwrap();
    let typed = pattern(5 * MIB, 99);
    conn.send(&typed).unwrap();
    assert_eq!(conn.recv().unwrap(), typed);
    assert_exited_ok(wait_for(proc, Duration::from_secs(60)));
}

// ---- the wire, read by a raw peer -----------------------------------------------------

#[test]
fn frames_on_the_wire_pass_each_memfd_once_and_reuse_freed_slots() {
    // Small enough that an ordinary frame fits the socket's buffer: nobody reads it yet.
    const T: usize = 64 << 10;
    let (conn, raw) = raw_pair();
    conn.enable_large_memfd(T).unwrap();

    // Below the threshold: the ordinary frame, byte for byte as CPython writes it.
    let small = pattern(T - 1, 1);
    conn.send_bytes(&small).unwrap();
    let (wire, fds) = recv_raw(&raw, 4 + small.len());
    assert_eq!(wire[..4], ((T - 1) as u32).to_be_bytes());
    assert!(wire[4..] == small[..]);
    assert!(fds.is_empty());

    // At the threshold: a memfd frame with the slot's memfd.
    let first = pattern(T, 2);
    conn.send_bytes(&first).unwrap();
    let (wire, mut fds) = recv_raw(&raw, FRAME_LEN);
    assert_eq!(wire, frame(b"PWLM", 0, T as u64, 1, NEW_MEMFD));
    assert_eq!(fds.len(), 1, "the first use of a slot passes its memfd");
    let slot0 = fds.pop().unwrap();
    let seals = rustix::fs::fcntl_get_seals(&slot0).unwrap();
    assert!(seals.contains(SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL));
    let mut got = vec![0u8; T];
    std::fs::File::from(slot0.try_clone().unwrap())
        .read_exact_at(&mut got, PAYLOAD_OFFSET)
        .unwrap();
    assert!(got == first);
    assert_eq!(state_word(&slot0), 1 << 1 | 1, "full with message 1");

    // Slot 0 not given back: the next message takes a new slot, with its memfd.
    conn.send_bytes(&pattern(T, 3)).unwrap();
    let (wire, fds) = recv_raw(&raw, FRAME_LEN);
    assert_eq!(wire, frame(b"PWLM", 1, T as u64, 2, NEW_MEMFD));
    assert_eq!(fds.len(), 1);

    // Slot 0 given back (the receiver writes "free after message 1" in it): reused, and
    // no descriptor travels.
    std::fs::File::from(slot0.try_clone().unwrap())
        .write_all_at(&(1u64 << 1).to_ne_bytes(), 0)
        .unwrap();
    let third = pattern(3 * T, 4);
    conn.send_bytes(&third).unwrap();
    let (wire, fds) = recv_raw(&raw, FRAME_LEN);
    assert_eq!(wire, frame(b"PWLM", 0, third.len() as u64, 3, 0));
    assert!(fds.is_empty(), "a reused slot passes no descriptor");
    assert_eq!(state_word(&slot0), 3 << 1 | 1);
}

#[test]
fn a_full_pool_falls_back_to_the_socket_in_order() {
    let (a, b) = procwire::duplex::<(), ()>().unwrap();
    a.enable_large_memfd(MIB).unwrap();
    b.accept_large_memfd(256 << 20).unwrap();
    // Nobody receives yet: 4 messages fill the 4 slots, the next 2 go through the socket
    // (a thread, since the socket's buffer cannot hold them).
    let msgs: Vec<Vec<u8>> = (0..6).map(|i| pattern(2 * MIB, i)).collect();
    let sent = msgs.clone();
    let sender = std::thread::spawn(move || {
        for m in &sent {
            a.send_bytes(m).unwrap();
        }
        a
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    for (i, m) in msgs.iter().enumerate() {
        assert!(Instant::now() < deadline, "took too long");
        assert!(
            b.recv_bytes().unwrap() == *m,
            "message {i} out of order or altered"
        );
    }
    let a = sender.join().unwrap();
    // The slots were given back: later messages go through them again (the wire test
    // shows the reuse; here, that nothing is lost or reordered after a fallback).
    let later: Vec<Vec<u8>> = (10..18).map(|i| pattern(2 * MIB, i)).collect();
    let sent = later.clone();
    let sender = std::thread::spawn(move || {
        for m in &sent {
            a.send_bytes(m).unwrap();
        }
    });
    for (i, m) in later.iter().enumerate() {
        let got = b.recv_bytes_timeout(Duration::from_secs(10)).unwrap();
        assert!(got == *m, "later message {i} out of order or altered");
    }
    sender.join().unwrap();
}

#[test]
fn a_receiver_that_did_not_opt_in_refuses_the_frame_and_names_the_opt_in() {
    let (a, b) = procwire::duplex::<(), ()>().unwrap();
    a.enable_large_memfd(MIB).unwrap();
    a.send_bytes(&pattern(2 * MIB, 0)).unwrap();
    let err = assert_err!(b.recv_bytes(), Error::Protocol(_));
    assert!(err.to_string().contains("accept_large_memfd"), "{err}");
}

#[test]
fn buffer_too_short_holds_the_whole_message_and_the_next_one_follows() {
    let (a, b) = procwire::duplex::<(), ()>().unwrap();
    a.enable_large_memfd(MIB).unwrap();
    b.accept_large_memfd(64 << 20).unwrap();
    let big = pattern(3 * MIB, 7);
    a.send_bytes(&big).unwrap();
    a.send_bytes(&pattern(3 * MIB, 8)).unwrap();
    let mut small = vec![0u8; MIB];
    let Err(Error::BufferTooShort(whole)) = b.recv_bytes_into(&mut small) else {
        panic!("expected BufferTooShort");
    };
    assert!(whole == big);
    assert!(b.recv_bytes().unwrap() == pattern(3 * MIB, 8));
}

#[test]
fn try_and_timed_receives_and_timed_sends() {
    let (a, b) = procwire::duplex::<(), ()>().unwrap();
    a.enable_large_memfd(MIB).unwrap();
    b.accept_large_memfd(64 << 20).unwrap();
    assert_err!(b.try_recv_bytes(), Error::Empty);
    a.send_bytes(&pattern(2 * MIB, 1)).unwrap();
    assert!(b.poll(Some(Duration::from_secs(5))).unwrap());
    assert!(b.try_recv_bytes().unwrap() == pattern(2 * MIB, 1));
    a.send_bytes(&pattern(2 * MIB, 2)).unwrap();
    let mut out = vec![0u8; 2 * MIB];
    assert_eq!(
        b.recv_bytes_into_timeout(&mut out, Duration::from_secs(5))
            .unwrap(),
        2 * MIB
    );
    assert!(out == pattern(2 * MIB, 2));
    // A send with a deadline goes through the socket; it arrives all the same.
    let t = std::thread::spawn({
        let m = pattern(2 * MIB, 3);
        move || {
            a.send_bytes_timeout(&m, Duration::from_secs(10)).unwrap();
            a
        }
    });
    assert!(b.recv_bytes_timeout(Duration::from_secs(10)).unwrap() == pattern(2 * MIB, 3));
    t.join().unwrap();
}

#[cfg(feature = "rkyv")]
#[test]
fn rkyv_archives_through_memfds() {
    let (a, b) =
        procwire::duplex_with::<Vec<f64>, Vec<f64>, _>(procwire::codec::Rkyv::new()).unwrap();
    a.enable_large_memfd(MIB).unwrap();
    b.accept_large_memfd(64 << 20).unwrap();
    for round in 0..3 {
        let v: Vec<f64> = (0..MIB / 2).map(|i| (i + round) as f64).collect();
        a.send(&v).unwrap();
        let got = b.recv_archived().unwrap();
        assert_eq!(got.len(), v.len());
        assert!(got.iter().zip(&v).all(|(x, y)| x.to_native() == *y));
    }
}

#[test]
fn only_unix_sockets_take_memfds() {
    let (tx, rx) = procwire::pipe::<()>().unwrap();
    let err = assert_err!(tx.enable_large_memfd(MIB), Error::Descriptors(_));
    assert!(err.to_string().contains("Unix-domain socket"), "{err}");
    assert_err!(rx.accept_large_memfd(MIB as u64), Error::Descriptors(_));
}

#[test]
fn opting_in_after_bytes_were_read_ahead_is_refused() {
    let (conn, raw) = raw_pair();
    let mut two = 1u32.to_be_bytes().to_vec();
    two.push(b'x');
    two.extend_from_slice(&two.clone());
    (&raw).write_all(&two).unwrap();
    assert_eq!(conn.recv_bytes().unwrap(), b"x"); // the second was read with it
    assert_err!(conn.accept_large_memfd(64 << 20), Error::Descriptors(_));
}

// ---- hostile frames to a receiver that opted in ---------------------------------------

/// A receiver that takes memfd frames (at most 64 MiB mapped), and the raw sender.
fn hostile() -> (Connection<Vec<u8>, Vec<u8>>, UnixStream) {
    let (conn, raw) = raw_pair();
    conn.accept_large_memfd(64 << 20).unwrap();
    (conn, raw)
}

#[test]
fn a_good_frame_from_a_raw_sender_is_read_and_its_slot_given_back() {
    let (conn, raw) = hostile();
    let payload = pattern(100_000, 5);
    let slot = slot_memfd(MIB, &payload, 1);
    send_raw(
        &raw,
        &frame(b"PWLM", 2, 100_000, 1, NEW_MEMFD),
        &[slot.as_fd()],
    );
    assert!(conn.recv_bytes().unwrap() == payload);
    assert_eq!(
        state_word(&slot),
        1 << 1,
        "the receiver marks the slot free"
    );
    // Reused without a descriptor.
    let payload = pattern(MIB, 6);
    write_slot(&slot, &payload, 2);
    send_raw(&raw, &frame(b"PWLM", 2, MIB as u64, 2, 0), &[]);
    assert!(conn.recv_bytes().unwrap() == payload);
    still_reads(&conn, &raw);
}

#[test]
fn hostile_frames_are_refused_and_the_stream_stays_aligned() {
    let (conn, raw) = hostile();
    let pay = pattern(1000, 1);

    // A wrong tag.
    send_raw(&raw, &frame(b"XXXX", 0, 1000, 1, 0), &[]);
    descriptors_error(&conn.recv_bytes().unwrap_err(), "PWLM");
    still_reads(&conn, &raw);

    // A slot id past the pool.
    send_raw(&raw, &frame(b"PWLM", 4, 1000, 1, 0), &[]);
    descriptors_error(&conn.recv_bytes().unwrap_err(), "slot 4 does not exist");
    still_reads(&conn, &raw);

    // A slot never sent.
    send_raw(&raw, &frame(b"PWLM", 1, 1000, 1, 0), &[]);
    descriptors_error(&conn.recv_bytes().unwrap_err(), "slot 1 was never sent");
    still_reads(&conn, &raw);

    // A memfd announced, none attached.
    send_raw(&raw, &frame(b"PWLM", 0, 1000, 1, NEW_MEMFD), &[]);
    descriptors_error(&conn.recv_bytes().unwrap_err(), "0 descriptors came");
    still_reads(&conn, &raw);

    // A descriptor that was not announced.
    let slot = slot_memfd(MIB, &pay, 1);
    send_raw(&raw, &frame(b"PWLM", 0, 1000, 1, 0), &[slot.as_fd()]);
    descriptors_error(&conn.recv_bytes().unwrap_err(), "unannounced descriptor");
    still_reads(&conn, &raw);

    // Two descriptors for one slot.
    let other = slot_memfd(MIB, &pay, 1);
    send_raw(
        &raw,
        &frame(b"PWLM", 0, 1000, 1, NEW_MEMFD),
        &[slot.as_fd(), other.as_fd()],
    );
    descriptors_error(&conn.recv_bytes().unwrap_err(), "2 descriptors came");
    still_reads(&conn, &raw);

    // Not a memfd: a pipe.
    let (pr, _pw) = rustix::pipe::pipe().unwrap();
    send_raw(&raw, &frame(b"PWLM", 0, 1000, 1, NEW_MEMFD), &[pr.as_fd()]);
    descriptors_error(&conn.recv_bytes().unwrap_err(), "not a memfd");
    still_reads(&conn, &raw);

    // A memfd that may still shrink (a mapping of it could fault).
    let unsealed = memfd(PAYLOAD_OFFSET + MIB as u64);
    write_slot(&unsealed, &pay, 1);
    send_raw(
        &raw,
        &frame(b"PWLM", 0, 1000, 1, NEW_MEMFD),
        &[unsealed.as_fd()],
    );
    descriptors_error(
        &conn.recv_bytes().unwrap_err(),
        "not sealed against shrinking",
    );
    still_reads(&conn, &raw);

    // A memfd past what the receiver maps.
    let huge = slot_memfd(128 * MIB, &pay, 1);
    send_raw(
        &raw,
        &frame(b"PWLM", 0, 1000, 1, NEW_MEMFD),
        &[huge.as_fd()],
    );
    descriptors_error(&conn.recv_bytes().unwrap_err(), "exceeds the");
    still_reads(&conn, &raw);

    // A memfd too small to be a slot.
    let tiny = memfd(100);
    rustix::fs::fcntl_add_seals(&tiny, SealFlags::SHRINK | SealFlags::GROW).unwrap();
    send_raw(&raw, &frame(b"PWLM", 0, 10, 1, NEW_MEMFD), &[tiny.as_fd()]);
    descriptors_error(&conn.recv_bytes().unwrap_err(), "is no slot");
    still_reads(&conn, &raw);

    // A length past its slot.
    send_raw(
        &raw,
        &frame(b"PWLM", 0, MIB as u64 + 1, 1, NEW_MEMFD),
        &[slot.as_fd()],
    );
    descriptors_error(&conn.recv_bytes().unwrap_err(), "in slot 0 of");
    still_reads(&conn, &raw);

    // A slot whose state word does not say this message is in it.
    send_raw(&raw, &frame(b"PWLM", 0, 1000, 7, 0), &[]);
    descriptors_error(
        &conn.recv_bytes().unwrap_err(),
        "not marked full for message 7",
    );
    still_reads(&conn, &raw);

    // Past the receiver's largest message.
    conn.set_max_message_size(999);
    send_raw(&raw, &frame(b"PWLM", 0, 1000, 1, 0), &[]);
    assert_err!(
        conn.recv_bytes(),
        Error::MessageTooLarge {
            len: 1000,
            limit: 999
        }
    );
    conn.set_max_message_size(procwire::frame::DEFAULT_MAX_MESSAGE_SIZE);
    still_reads(&conn, &raw);

    // After all that, slot 0 (mapped by the frame with the length past it) works.
    send_raw(&raw, &frame(b"PWLM", 0, 1000, 1, 0), &[]);
    assert!(conn.recv_bytes().unwrap() == pay);
}

#[test]
fn a_write_sealed_memfd_cannot_be_a_slot() {
    let (conn, raw) = hostile();
    let fd = slot_memfd(MIB, b"x", 1);
    rustix::fs::fcntl_add_seals(&fd, SealFlags::WRITE).unwrap();
    send_raw(&raw, &frame(b"PWLM", 0, 1, 1, NEW_MEMFD), &[fd.as_fd()]);
    let err = conn.recv_bytes().unwrap_err();
    assert!(
        matches!(err, Error::Io(_) | Error::Descriptors(_)),
        "{err:?}"
    );
    still_reads(&conn, &raw);
}

#[test]
fn a_frame_cut_short_neither_blocks_a_try_receive_nor_outlives_a_timeout() {
    let (conn, raw) = hostile();
    let slot = slot_memfd(MIB, b"abc", 1);
    let whole = frame(b"PWLM", 0, 3, 1, NEW_MEMFD);
    // The length and 10 more bytes, then nothing for now.
    send_raw(&raw, &whole[..14], &[slot.as_fd()]);
    // On a thread, so that a receive that blocks fails the test instead of hanging it.
    let (done, finished) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let start = Instant::now();
        assert_err!(conn.try_recv_bytes(), Error::Empty);
        assert!(!conn.poll(Some(Duration::from_millis(50))).unwrap());
        assert_err!(
            conn.recv_bytes_timeout(Duration::from_millis(100)),
            Error::Timeout
        );
        done.send(start.elapsed()).unwrap();
        conn
    });
    let took = finished
        .recv_timeout(Duration::from_secs(5))
        .expect("a receive blocked on a memfd frame cut short");
    assert!(took < Duration::from_secs(2), "{took:?}");
    let conn = waiter.join().unwrap();
    send_raw(&raw, &whole[14..], &[]);
    assert_eq!(
        conn.recv_bytes_timeout(Duration::from_secs(5)).unwrap(),
        b"abc"
    );
    // Cut for good: the end of the stream inside the frame is a truncation.
    send_raw(&raw, &whole[..20], &[]);
    drop(raw);
    assert_err!(conn.recv_bytes(), Error::Truncated { .. });
}

// ---- a payload received while it is written -----------------------------------------

#[test]
fn a_receiver_copies_a_payload_out_as_its_sender_writes_it() {
    let (conn, raw) = hostile();
    let len = 2 * MIB;
    let payload = pattern(len, 9);
    // The head goes out when the first half is written and published.
    let slot = slot_memfd(len, &payload[..MIB], 1);
    set_progress(&slot, MIB as u64);
    send_raw(
        &raw,
        &head(b"PWLM", 0, len as u64, 1, NEW_MEMFD),
        &[slot.as_fd()],
    );
    let receiver = std::thread::spawn(move || {
        let got = conn.recv_bytes();
        (conn, got)
    });
    // The receiver copies the first half and sleeps until there is more.
    await_receiver_sleep(&slot);
    // What it copied is its own: scribbling over the first half changes nothing.
    let file = std::fs::File::from(slot.try_clone().unwrap());
    file.write_all_at(&vec![0xEE; MIB], PAYLOAD_OFFSET).unwrap();
    file.write_all_at(&payload[MIB..], PAYLOAD_OFFSET + MIB as u64)
        .unwrap();
    set_progress(&slot, len as u64);
    send_raw(&raw, &COMPLETE, &[]);
    let (conn, got) = receiver.join().unwrap();
    assert!(got.unwrap() == payload, "the payload came out altered");
    assert_eq!(state_word(&slot), 1 << 1, "the slot is given back");
    still_reads(&conn, &raw);
}

#[test]
fn a_sender_gone_part_way_through_a_payload_is_a_truncation_not_a_hang() {
    let (conn, raw) = hostile();
    let slot = slot_memfd(MIB, &[], 1);
    send_raw(
        &raw,
        &head(b"PWLM", 0, MIB as u64, 1, NEW_MEMFD),
        &[slot.as_fd()],
    );
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || done.send(conn.recv_bytes()).unwrap());
    await_receiver_sleep(&slot);
    drop(raw);
    let got = finished
        .recv_timeout(Duration::from_secs(5))
        .expect("the receiver hung after its sender left");
    assert_err!(got, Error::Truncated { .. });
}

#[test]
fn a_payload_is_ready_for_a_try_receive_only_with_its_end_record() {
    let (conn, raw) = hostile();
    let payload = pattern(1000, 3);
    let slot = slot_memfd(MIB, &payload, 1);
    set_progress(&slot, 1000);
    send_raw(&raw, &head(b"PWLM", 0, 1000, 1, NEW_MEMFD), &[slot.as_fd()]);
    assert_err!(conn.try_recv_bytes(), Error::Empty);
    assert!(!conn.poll(Some(Duration::from_millis(50))).unwrap());
    assert_err!(
        conn.recv_bytes_timeout(Duration::from_millis(50)),
        Error::Timeout
    );
    send_raw(&raw, &COMPLETE, &[]);
    assert!(conn.poll(Some(Duration::from_secs(5))).unwrap());
    assert!(conn.try_recv_bytes().unwrap() == payload);
    still_reads(&conn, &raw);
}

#[test]
fn an_end_record_that_is_not_one_is_refused_and_the_stream_stays_aligned() {
    let (conn, raw) = hostile();
    let payload = pattern(1000, 4);
    let slot = slot_memfd(MIB, &payload, 1);
    let mut bad = frame(b"PWLM", 0, 1000, 1, NEW_MEMFD);
    bad[HEAD_LEN..].copy_from_slice(b"PWLE\x07\0\0\0");
    send_raw(&raw, &bad, &[slot.as_fd()]);
    descriptors_error(&conn.recv_bytes().unwrap_err(), "end record");
    still_reads(&conn, &raw);
    // An abandoned message is refused as such, and its slot given back.
    write_slot(&slot, &payload, 2);
    let mut abandoned = frame(b"PWLM", 0, 1000, 2, 0);
    abandoned[HEAD_LEN..].copy_from_slice(b"PWLE\x01\0\0\0");
    send_raw(&raw, &abandoned, &[]);
    descriptors_error(&conn.recv_bytes().unwrap_err(), "abandoned by its sender");
    assert_eq!(state_word(&slot), 2 << 1);
    still_reads(&conn, &raw);
}
