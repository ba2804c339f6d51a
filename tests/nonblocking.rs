//! Non-blocking receives that assemble messages arriving in pieces, and sends with a
//! deadline that never leave the stream misaligned.

mod util;

use std::io::Write;
use std::thread;
use std::time::{Duration, Instant};

use procwire::codec::Encode;
use procwire::frame::Header;
use procwire::{Connection, Error, Postcard, WaitSet};
use serde::de::DeserializeOwned;
use serde::Serialize;
use util::{bounded, raw, SOON};

const SHORT: Duration = Duration::from_millis(50);

/// The bytes procwire puts on the wire for `value`: header and postcard payload.
fn frame_of<T: Serialize + DeserializeOwned>(value: &T) -> Vec<u8> {
    let mut payload = Vec::new();
    Postcard.encode(value, &mut payload).unwrap();
    let mut frame = Header::for_payload(payload.len() as u64).encode().to_vec();
    frame.extend_from_slice(&payload);
    frame
}

// ---- non-blocking receive: trickled messages -------------------------------------------

/// Writes `frame` `step` bytes at a time, checking after each write (but the last) that
/// `try` finds nothing yet; returns what `try` gives after the last write.
fn trickle<R>(
    frame: &[u8],
    step: usize,
    w: &mut impl Write,
    mut try_: impl FnMut() -> Option<R>,
) -> R {
    let chunks: Vec<&[u8]> = frame.chunks(step).collect();
    let (last, rest) = chunks.split_last().unwrap();
    for chunk in rest {
        w.write_all(chunk).unwrap();
        assert!(try_().is_none(), "ready before the message was whole");
    }
    w.write_all(last).unwrap();
    let deadline = Instant::now() + SOON;
    loop {
        if let Some(r) = try_() {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "the whole message never became ready"
        );
        thread::sleep(Duration::from_millis(1));
    }
}

fn empty_to_none<T>(r: procwire::Result<T>) -> Option<T> {
    match r {
        Err(Error::Empty | Error::Timeout) => None,
        other => Some(other.unwrap()),
    }
}

#[test]
fn a_message_trickled_one_byte_at_a_time_is_assembled_by_try_recv() {
    bounded(|| {
        let (a, b) = procwire::duplex::<(u32, String), (u32, String)>().unwrap();
        let value = (77, "one byte at a time".repeat(5));
        let mut w = raw(&b);
        for round in 0..3u32 {
            let v = (value.0 + round, value.1.clone());
            let got = trickle(&frame_of(&v), 1, &mut w, || empty_to_none(a.try_recv()));
            assert_eq!(got, v);
        }
        assert!(matches!(a.try_recv(), Err(Error::Empty)));
    });
}

#[test]
fn a_message_trickled_one_byte_at_a_time_is_assembled_by_every_receive_kind() {
    bounded(|| {
        let (a, b) = procwire::duplex::<Vec<u8>, Vec<u8>>().unwrap();
        let mut w = raw(&b);
        let v: Vec<u8> = (0..40).collect();
        let frame = frame_of(&v);
        let t = Duration::from_millis(1);
        assert_eq!(
            trickle(&frame, 1, &mut w, || empty_to_none(a.recv_timeout(t))),
            v
        );
        let bytes = trickle(&frame, 1, &mut w, || empty_to_none(a.try_recv_bytes()));
        assert_eq!(bytes, frame[4..]);
        let mut out = [0u8; 64];
        let n = trickle(&frame, 1, &mut w, || {
            empty_to_none(a.try_recv_bytes_into(&mut out))
        });
        assert_eq!(out[..n], frame[4..]);
        let bytes = trickle(&frame, 1, &mut w, || empty_to_none(a.recv_bytes_timeout(t)));
        assert_eq!(bytes, frame[4..]);
        let mut set = WaitSet::new().unwrap();
        set.insert((), a).unwrap();
        let mut ready = Vec::new();
        trickle(&frame, 1, &mut w, || {
            set.wait(&mut ready, Some(Duration::ZERO)).unwrap();
            (!ready.is_empty()).then_some(())
        });
        assert_eq!(set.get(&()).unwrap().try_recv().unwrap(), v);
    });
}

#[test]
fn a_message_larger_than_the_buffer_trickled_in_pieces_is_assembled_whole() {
    bounded(|| {
        let (a, b) = procwire::duplex::<Vec<u32>, Vec<u32>>().unwrap();
        let v: Vec<u32> = (0..60_000).collect(); // ~ 180 KB encoded, beyond the 64 KiB buffer
        let frame = frame_of(&v);
        let writer = thread::spawn(move || {
            let mut w = raw(&b);
            for chunk in frame.chunks(997) {
                w.write_all(chunk).unwrap();
            }
            b
        });
        let deadline = Instant::now() + SOON;
        let got = loop {
            match a.try_recv() {
                Ok(got) => break got,
                Err(Error::Empty) => assert!(Instant::now() < deadline),
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!(got, v);
        let _b = writer.join().unwrap();
        assert!(matches!(a.try_recv(), Err(Error::Empty)));
    });
}

#[test]
fn a_message_trickled_into_a_pipe_is_assembled_by_try_recv() {
    bounded(|| {
        let (tx, rx) = procwire::pipe::<String>().unwrap();
        let v = "through a pipe".to_string();
        let mut w = raw(&tx);
        let got = trickle(&frame_of(&v), 1, &mut w, || empty_to_none(rx.try_recv()));
        assert_eq!(got, v);
    });
}

// ---- sends with a deadline --------------------------------------------------------------

/// Sends small numbered messages with a zero timeout until the peer's buffer is full.
fn fill(conn: &Connection<u64, u64>) -> u64 {
    let mut n = 0;
    loop {
        match conn.send_timeout(&n, Duration::ZERO) {
            Ok(()) => n += 1,
            Err(Error::Timeout) => return n,
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn send_timeout_to_a_peer_that_never_reads_times_out_and_loses_nothing() {
    bounded(|| {
        let (a, b) = procwire::duplex::<u64, u64>().unwrap();
        let n = fill(&a);
        assert!(n > 10, "{n}");
        let start = Instant::now();
        assert!(matches!(a.send_timeout(&n, SHORT), Err(Error::Timeout)));
        let took = start.elapsed();
        assert!(took >= SHORT && took < SOON, "{took:?}");
        for i in 0..n {
            assert_eq!(b.recv_timeout(SOON).unwrap(), i);
        }
        assert!(
            matches!(b.try_recv(), Err(Error::Empty)),
            "the timed-out message was not sent"
        );
        a.send_timeout(&n, SOON).unwrap();
        assert_eq!(b.recv_timeout(SOON).unwrap(), n);
    });
}

/// Starts a large `send_bytes_timeout` to a peer that does not read; it must stop
/// part-way. Returns the message.
fn partly_send(a: &Connection<(), ()>) -> Vec<u8> {
    let big: Vec<u8> = (0..8 << 20).map(|i: u32| (i % 251) as u8).collect();
    match a.send_bytes_timeout(&big, SHORT) {
        Err(Error::PartlySent { sent, len }) => {
            assert!(sent > 0 && sent < len, "{sent} of {len}");
            assert_eq!(len, big.len() as u64 + 4);
        }
        other => panic!("expected PartlySent, got {other:?}"),
    }
    big
}

#[test]
fn a_large_send_cut_short_by_its_deadline_is_finished_by_the_next_send() {
    bounded(|| {
        let (a, b) = procwire::duplex::<(), ()>().unwrap();
        let big = partly_send(&a);
        let reader = thread::spawn(move || (b.recv_bytes().unwrap(), b.recv_bytes().unwrap()));
        a.send_bytes(b"after").unwrap(); // blocking: the rest of `big` goes first
        let (first, second) = reader.join().unwrap();
        assert!(first == big, "the interrupted message arrived whole");
        assert_eq!(second, b"after");
    });
}

#[test]
fn flush_timeout_finishes_a_partly_sent_message() {
    bounded(|| {
        let (a, b) = procwire::duplex::<(), ()>().unwrap();
        let big = partly_send(&a);
        assert!(matches!(
            a.flush_timeout(Duration::ZERO),
            Err(Error::PartlySent { .. })
        ));
        let reader = thread::spawn(move || b.recv_bytes().unwrap());
        a.flush_timeout(SOON).unwrap();
        a.flush_timeout(Duration::ZERO).unwrap();
        assert!(reader.join().unwrap() == big);
    });
}

#[test]
fn a_timed_send_behind_an_unfinished_message_sends_nothing_of_its_own() {
    bounded(|| {
        let (a, b) = procwire::duplex::<(), ()>().unwrap();
        let big = partly_send(&a);
        assert!(matches!(
            a.send_bytes_timeout(b"skipped", SHORT),
            Err(Error::Timeout)
        ));
        let reader = thread::spawn(move || (b.recv_bytes().unwrap(), b.recv_bytes().unwrap()));
        a.send_bytes_timeout(b"next", SOON).unwrap();
        let (first, second) = reader.join().unwrap();
        assert!(first == big);
        assert_eq!(second, b"next", "the timed-out message was not sent");
    });
}

#[test]
fn send_timeout_over_a_pipe_stops_at_the_deadline_and_keeps_the_stream_aligned() {
    bounded(|| {
        let (tx, rx) = procwire::pipe::<()>().unwrap();
        let big: Vec<u8> = (0..1 << 20).map(|i: u32| i as u8).collect();
        assert!(matches!(
            tx.send_bytes_timeout(&big, SHORT),
            Err(Error::PartlySent { .. })
        ));
        assert!(matches!(
            tx.send_bytes_timeout(b"x", Duration::ZERO),
            Err(Error::Timeout)
        ));
        let reader = thread::spawn(move || (rx.recv_bytes().unwrap(), rx.recv_bytes().unwrap()));
        tx.send_bytes(b"after").unwrap();
        let (first, second) = reader.join().unwrap();
        assert!(first == big);
        assert_eq!(second, b"after");
    });
}

#[test]
fn send_timeout_to_a_closed_peer_is_a_disconnected_error() {
    bounded(|| {
        let (a, b) = procwire::duplex::<u64, u64>().unwrap();
        drop(b);
        let err = a.send_timeout(&1, SOON).unwrap_err();
        assert!(err.is_disconnected(), "{err:?}");
        let (tx, rx) = procwire::pipe::<u64>().unwrap();
        drop(rx);
        assert!(tx.send_timeout(&1, SOON).unwrap_err().is_disconnected());
    });
}

#[test]
fn partly_sent_displays_its_byte_counts() {
    let e = Error::PartlySent { sent: 5, len: 9 };
    assert_eq!(
        e.to_string(),
        "send timed out after 5 of 9 bytes of a message; the rest is kept and goes out first"
    );
    assert!(!e.is_disconnected());
    assert_eq!(std::io::Error::from(e).kind(), std::io::ErrorKind::TimedOut);
}
