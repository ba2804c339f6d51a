//! Targets over the frame reader: arbitrary byte streams in arbitrary chunks, and arbitrary
//! frames received into `Pod` buffers.

use std::time::Duration;

use bytemuck::Pod;
use procwire::codec::Decode;
use procwire::{Error, Postcard};

use crate::peer::{parse_items, End, Peer};
use crate::{Knobs, Rng};

/// What one receive gave.
#[derive(Debug)]
enum Seen {
    /// A message's bytes (`recv_bytes`, `recv_bytes_into`, or `BufferTooShort`'s).
    Bytes(Vec<u8>),
    /// A typed receive of `Vec<u8>` through postcard: the value or a decode error.
    Typed(Option<Vec<u8>>),
    /// A memfd frame refused ([`Error::Descriptors`]); the stream goes on.
    Refused,
    /// The error that ended the stream.
    End(Error),
}

/// The frame reader fed an arbitrary byte stream in arbitrary chunks.
///
/// Input: 4 knob bytes (maximum message size from 0 to 64 KiB, socketpair or pipe and, for
/// a socketpair, whether the receiver takes memfd frames (`accept_large_memfd`), the
/// largest chunk, a seed for chunk lengths and receive kinds), then the stream. Each chunk
/// is written raw and followed by a non-blocking receive or `poll(0)`; after the last
/// chunk the stream is closed and blocking receives of every kind read to its end.
///
/// Checks: the sequence of messages and the final error equal what the reference parser
/// finds in the bytes written; no receive before the end reports an end; a receive after
/// the end fails again; `poll` answering ready means the next receive does not say
/// `Empty`; a buffer a message does not fit stays untouched.
pub fn frame_reader(data: &[u8]) {
    let mut knobs = Knobs::new(data);
    let max = knobs.pick(&[0u64, 1, 5, 64, 300, 4096, 65536]);
    let transport = knobs.byte();
    let socket = transport & 1 == 0;
    let memfd = socket && transport & 2 != 0;
    let max_chunk = knobs.pick(&[1usize, 2, 3, 7, 64, 4096]);
    let mut rng = Rng::new(u64::from(knobs.u16()));
    let stream = knobs.rest();

    let mut peer = Peer::new(socket, max);
    if memfd {
        peer.rx
            .accept_large_memfd(1 << 20)
            .expect("a fresh socketpair receiver takes memfd frames");
    }
    let mut seen = Vec::new();
    let mut at = 0;
    while at < stream.len() && !ended(&seen) {
        let n = (1 + rng.below(max_chunk)).min(stream.len() - at);
        peer.write(&stream[at..at + n]);
        at += n;
        receive_now(&peer, &mut rng, &mut seen);
    }
    if let Some(Seen::End(e)) = seen.last() {
        assert!(
            !matches!(e, Error::Disconnected | Error::Truncated { .. }),
            "end of stream reported while the stream was open: {e:?}"
        );
    }
    peer.close();
    let (messages, end) = parse_items(&peer.written, max, memfd);
    for _ in 0..messages.len() + 2 {
        if ended(&seen) {
            break;
        }
        receive_blocking(&peer, &mut rng, &mut seen);
    }
    compare(&seen, &messages, &end);
    assert_fails_again(&peer, &end);
}

fn ended(seen: &[Seen]) -> bool {
    matches!(seen.last(), Some(Seen::End(_)))
}

/// One receive that must not block: `try_recv_bytes`, `try_recv`, or `poll(0)` followed,
/// when it says ready, by `try_recv_bytes` (which then must not be `Empty`).
fn receive_now(peer: &Peer, rng: &mut Rng, seen: &mut Vec<Seen>) {
    let rx = &peer.rx;
    let outcome = match rng.below(3) {
        0 => rx.try_recv_bytes().map(Seen::Bytes),
        1 => typed(rx.try_recv()),
        _ => match rx.poll(Some(Duration::ZERO)) {
            Ok(true) => match rx.try_recv_bytes() {
                Err(Error::Empty) => panic!("poll said ready, then try_recv_bytes was empty"),
                other => other.map(Seen::Bytes),
            },
            Ok(false) => Err(Error::Empty),
            Err(e) => panic!("poll failed: {e}"),
        },
    };
    record(outcome, seen);
}

/// One blocking receive of a kind the generator picks, after the stream was closed.
fn receive_blocking(peer: &Peer, rng: &mut Rng, seen: &mut Vec<Seen>) {
    let rx = &peer.rx;
    let outcome = match rng.below(4) {
        0 => rx.recv_bytes().map(Seen::Bytes),
        1 => typed(rx.recv()),
        2 => match rx.recv_bytes_timeout(Duration::from_secs(10)) {
            Err(Error::Timeout) => panic!("a receive waited after the stream ended"),
            other => other.map(Seen::Bytes),
        },
        _ => {
            let size = [0, 1, 3, 64, 300, 5000][rng.below(6)];
            into(rx, &mut vec![0xa5u8; size])
        }
    };
    if let Err(Error::Empty) = outcome {
        panic!("a blocking receive returned Empty");
    }
    record(outcome, seen);
}

/// `recv_bytes_into` a buffer filled with a marker: the message must land at its start,
/// and a message that does not fit must leave the buffer as it was.
fn into(rx: &procwire::Receiver<Vec<u8>>, buf: &mut [u8]) -> Result<Seen, Error> {
    let before = buf.to_vec();
    match rx.recv_bytes_into(buf) {
        Ok(n) => {
            assert_eq!(buf[n..], before[n..], "bytes past the message changed");
            Ok(Seen::Bytes(buf[..n].to_vec()))
        }
        Err(Error::BufferTooShort(whole)) => {
            assert!(
                whole.len() > buf.len(),
                "BufferTooShort for a message that fits"
            );
            assert_eq!(buf, &before[..], "a too-short buffer was written to");
            Ok(Seen::Bytes(whole))
        }
        Err(e) => Err(e),
    }
}

fn typed(outcome: Result<Vec<u8>, Error>) -> Result<Seen, Error> {
    match outcome {
        Ok(v) => Ok(Seen::Typed(Some(v))),
        Err(Error::Decode(_)) => Ok(Seen::Typed(None)),
        Err(e) => Err(e),
    }
}

fn record(outcome: Result<Seen, Error>, seen: &mut Vec<Seen>) {
    match outcome {
        Ok(s) => seen.push(s),
        Err(Error::Empty) => {}
        Err(Error::Descriptors(_)) => seen.push(Seen::Refused),
        Err(e) => seen.push(Seen::End(e)),
    }
}

/// Asserts that `seen` is exactly `messages` (`None`: a refused memfd frame), then `end`.
fn compare(seen: &[Seen], messages: &[Option<&[u8]>], end: &End) {
    let (last, got) = seen
        .split_last()
        .expect("the stream ended without an error");
    assert_eq!(got.len(), messages.len(), "message count: got {got:?}");
    for (s, m) in got.iter().zip(messages) {
        let m = match (s, m) {
            (Seen::Refused, None) => continue,
            (_, None) => panic!("a memfd frame gave {s:?}"),
            (Seen::Refused, Some(m)) => panic!("message {m:?} was refused as a memfd frame"),
            (_, Some(m)) => m,
        };
        match s {
            Seen::Refused => unreachable!("matched above"),
            Seen::Bytes(b) => assert_eq!(b, m, "message bytes"),
            Seen::Typed(v) => {
                let want = Decode::<Vec<u8>>::decode(&mut Postcard, m).ok();
                assert_eq!(v, &want, "typed value of {m:?}");
            }
            Seen::End(e) => panic!("error {e:?} before the end"),
        }
    }
    match last {
        Seen::End(e) => assert!(end.matches(e), "ended with {e:?}, expected {end:?}"),
        other => panic!("stream did not end: last {other:?}, expected {end:?}"),
    }
}

/// After the end, receiving fails again: the same end of stream or truncation, or an
/// error for a reader that refused a header.
fn assert_fails_again(peer: &Peer, end: &End) {
    let again = peer.rx.recv_bytes();
    match (end, again) {
        (End::Disconnected | End::Truncated { .. }, Err(e)) if end.matches(&e) => {}
        (End::Disconnected | End::Truncated { .. }, other) => {
            panic!("after {end:?}: {other:?}")
        }
        (_, Ok(m)) => panic!("a message after the stream failed: {m:?}"),
        (_, Err(_)) => {}
    }
}

/// `recv_bytes_into` of arbitrary frames into `Pod` buffers of varied sizes and types.
///
/// Input, repeated: a payload length (up to 5000), whether to use the long header form,
/// the element type (u8, u16, u32, u64, f64, `[u8; 3]`, `[u32; 5]`), the buffer's length
/// in elements, whether to use `try_recv_bytes_into`, then the payload. A payload the input
/// cuts short is written as a truncated frame and the stream closed.
///
/// Checks: a message that fits lands at the start of the buffer with its exact length and
/// nothing after it changes; one that does not fit gives `BufferTooShort` with the whole
/// message and an untouched buffer; a try-receive of a frame written whole is never
/// `Empty`; a cut frame gives `Truncated` with the exact byte counts.
pub fn recv_bytes_into(data: &[u8]) {
    let mut knobs = Knobs::new(data);
    let mut peer = Peer::new(knobs.byte() & 1 == 0, 1 << 20);
    for _ in 0..64 {
        if knobs.is_empty() {
            break;
        }
        let len = usize::from(knobs.u16()) % 5001;
        let long = knobs.byte() & 3 == 0;
        let kind = knobs.byte();
        let cap = usize::from(knobs.u16()) % 1301;
        let nonblocking = knobs.byte() & 1 == 0;
        let payload = knobs.take(len);
        peer.write(&frame(len as u64, long, payload));
        if payload.len() < len {
            peer.close();
            let header_len = if long { 12 } else { 4 };
            let want = End::Truncated {
                received: (header_len + payload.len()) as u64,
                expected: (header_len + len) as u64,
            };
            let e = into_typed(&peer, kind, cap, false).expect_err("a cut frame was received");
            assert!(want.matches(&e), "cut frame gave {e:?}, expected {want:?}");
            return;
        }
        let got = into_typed(&peer, kind, cap, nonblocking).expect("a whole frame");
        assert_eq!(got, payload, "received bytes");
    }
}

/// The wire bytes of a frame announcing `len` bytes, with `payload` (maybe fewer) after.
fn frame(len: u64, long: bool, payload: &[u8]) -> Vec<u8> {
    let mut out = if long {
        let mut h = (-1i32).to_be_bytes().to_vec();
        h.extend_from_slice(&len.to_be_bytes());
        h
    } else {
        (len as i32).to_be_bytes().to_vec()
    };
    out.extend_from_slice(payload);
    out
}

fn into_typed(peer: &Peer, kind: u8, cap: usize, nonblocking: bool) -> Result<Vec<u8>, Error> {
    match kind % 7 {
        0 => into_pod::<u8>(peer, cap, nonblocking),
        1 => into_pod::<u16>(peer, cap, nonblocking),
        2 => into_pod::<u32>(peer, cap, nonblocking),
        3 => into_pod::<u64>(peer, cap, nonblocking),
        4 => into_pod::<f64>(peer, cap, nonblocking),
        5 => into_pod::<[u8; 3]>(peer, cap, nonblocking),
        _ => into_pod::<[u32; 5]>(peer, cap, nonblocking),
    }
}

/// Receives into `cap` elements of `P`, marked first; returns the message's bytes.
fn into_pod<P: Pod>(peer: &Peer, cap: usize, nonblocking: bool) -> Result<Vec<u8>, Error> {
    let mut buf = vec![P::zeroed(); cap];
    bytemuck::cast_slice_mut::<P, u8>(&mut buf).fill(0xa5);
    let before = bytemuck::cast_slice::<P, u8>(&buf).to_vec();
    let outcome = if nonblocking {
        peer.rx.try_recv_bytes_into(&mut buf)
    } else {
        peer.rx.recv_bytes_into(&mut buf)
    };
    let after = bytemuck::cast_slice::<P, u8>(&buf);
    match outcome {
        Ok(n) => {
            assert!(n <= after.len(), "length {n} past the buffer");
            assert_eq!(after[n..], before[n..], "bytes past the message changed");
            Ok(after[..n].to_vec())
        }
        Err(Error::BufferTooShort(whole)) => {
            assert!(
                whole.len() > after.len(),
                "BufferTooShort for a message that fits"
            );
            assert_eq!(after, &before[..], "a too-short buffer was written to");
            Ok(whole)
        }
        Err(Error::Empty) => panic!("a frame written whole was not ready"),
        Err(e) => Err(e),
    }
}
