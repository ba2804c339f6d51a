//! Messages written in place (`Encode::encoded_len` / `encode_to`): a codec that can tell
//! a message's length first writes it behind its header to the socket, or into a memfd
//! slot, without the copy into the encode buffer. The bytes on the wire are those of the
//! buffered encoding, on every transport; a codec that announces one length and writes
//! another, or fails half-way, fails the send with a clear error and never leaves a frame
//! the receiver would misread; a peer that hangs up mid-message is an I/O error.

mod util;

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use procwire::codec::{Decode, Encode, Sink};
use procwire::{Connection, Error};
use util::bounded;

/// A codec of raw bytes that writes in place, and can be made to lie.
#[derive(Clone, Default)]
struct Raw {
    /// Added to the true length in `encoded_len`.
    announce_extra: isize,
    /// Fail in `encode_to` after writing this many bytes.
    fail_after: Option<usize>,
    /// Panic in `encode_to` after writing this many bytes.
    panic_after: Option<usize>,
    /// How many times `encode_to` ran.
    streamed: usize,
}

#[derive(Debug)]
struct Refused;

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("refused half-way")
    }
}

impl std::error::Error for Refused {}

impl Encode<Vec<u8>> for Raw {
    type Error = Refused;

    fn encode(&mut self, value: &Vec<u8>, out: &mut Vec<u8>) -> Result<(), Refused> {
        out.extend_from_slice(value);
        Ok(())
    }

    fn encoded_len(&mut self, value: &Vec<u8>) -> Result<Option<usize>, Refused> {
        Ok(Some(value.len().saturating_add_signed(self.announce_extra)))
    }

    fn encode_to(&mut self, value: &Vec<u8>, sink: &mut Sink<'_>) -> Result<(), Refused> {
        self.streamed += 1;
        // Small pieces and a large one, as a serialiser writes them.
        let (head, tail) = value.split_at(value.len().min(1000));
        for piece in head.chunks(7).chain(tail.chunks(300 << 10)) {
            if let Some(n) = self.fail_after {
                if sink.written() + piece.len() > n {
                    return Err(Refused);
                }
            }
            if let Some(n) = self.panic_after {
                assert!(
                    sink.written() + piece.len() <= n,
                    "the codec panics half-way"
                );
            }
            sink.write(piece);
        }
        Ok(())
    }
}

impl Decode<Vec<u8>> for Raw {
    type Error = Refused;

    fn decode(&mut self, bytes: &[u8]) -> Result<Vec<u8>, Refused> {
        Ok(bytes.to_vec())
    }
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(13).wrapping_add(seed) ^ (i >> 10) as u8)
        .collect()
}

/// A procwire sender with codec `codec` on one end of a socket pair, and the raw other end.
fn raw_pair(codec: Raw) -> (Connection<Vec<u8>, Vec<u8>, Raw>, UnixStream) {
    let (ours, theirs) = UnixStream::pair().unwrap();
    ours.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    (
        Connection::from_fd_with(theirs.into(), codec).unwrap(),
        ours,
    )
}

/// Reads one CPython frame from `sock`.
fn read_frame(sock: &mut UnixStream) -> Vec<u8> {
    let mut header = [0u8; 4];
    sock.read_exact(&mut header).unwrap();
    let mut len = i32::from_be_bytes(header) as i64 as u64;
    if len == u64::MAX {
        let mut long = [0u8; 8];
        sock.read_exact(&mut long).unwrap();
        len = u64::from_be_bytes(long);
    }
    let mut payload = vec![0u8; len as usize];
    sock.read_exact(&mut payload).unwrap();
    payload
}

/// Sends a 70 KB message that `peer` reads, so that the sender measures the next one.
fn warm(conn: &Connection<Vec<u8>, Vec<u8>, Raw>, peer: &mut UnixStream) {
    conn.send(&pattern(70_000, 9)).unwrap();
    assert_eq!(read_frame(peer), pattern(70_000, 9));
}

/// As [`warm`], with a procwire receiver.
fn warm_pair(tx: &Connection<Vec<u8>, Vec<u8>, Raw>, rx: &Connection<Vec<u8>, Vec<u8>, Raw>) {
    tx.send(&pattern(70_000, 9)).unwrap();
    assert_eq!(rx.recv().unwrap(), pattern(70_000, 9));
}

/// Sends `values` from `a` on a thread and checks that `b` receives them, in order.
fn send_all_through<T, C>(a: Connection<T, T, C>, b: Connection<T, T, C>, values: &[T])
where
    T: Clone + PartialEq + std::fmt::Debug + Send + 'static,
    C: Encode<T> + Decode<T> + Send + 'static,
{
    let sent = values.to_vec();
    let t = std::thread::spawn(move || {
        for v in &sent {
            a.send(v).unwrap();
        }
    });
    for v in values {
        assert_eq!(&b.recv().unwrap(), v);
    }
    t.join().unwrap();
}

#[test]
fn messages_written_in_place_are_the_frames_of_the_buffered_encoding() {
    bounded(|| {
        let (conn, mut peer) = raw_pair(Raw::default());
        // Below, at and above the streaming threshold; a size past 4 GiB's header is not
        // needed: the header is the frame module's.
        let sizes = [
            0,
            1,
            1000,
            (64 << 10) - 1,
            64 << 10,
            (64 << 10) + 1,
            3 << 20,
        ];
        let writer = std::thread::spawn(move || {
            for (i, &n) in sizes.iter().enumerate() {
                conn.send(&pattern(n, i as u8)).unwrap();
            }
            conn
        });
        for (i, &n) in sizes.iter().enumerate() {
            assert_eq!(read_frame(&mut peer), pattern(n, i as u8), "message {i}");
        }
        let conn = writer.join().unwrap();
        // The sender is still good.
        conn.send(&b"after".to_vec()).unwrap();
        assert_eq!(read_frame(&mut peer), b"after");
    });
}

#[test]
fn a_codec_that_announces_more_than_it_writes_fails_without_breaking_a_small_message() {
    bounded(|| {
        let codec = Raw {
            announce_extra: 5,
            ..Raw::default()
        };
        let (conn, mut peer) = raw_pair(codec);
        warm(&conn, &mut peer);
        let e = conn.send(&pattern(100, 1)).unwrap_err();
        assert!(matches!(e, Error::Encode(_)), "{e:?}");
        assert!(
            e.to_string()
                .contains("wrote 100 bytes where its encoded_len announced 105"),
            "{e}"
        );
        // Nothing went out; a timed send (buffered, no `encode_to`) still works.
        conn.send_timeout(&b"ok".to_vec(), Duration::from_secs(5))
            .unwrap();
        assert_eq!(read_frame(&mut peer), b"ok");
    });
}

/// Sends a 1 MiB message with `codec` (after a warm-up), which must fail with an
/// [`Error::Encode`] saying `why` after the frame's first bytes left: the sender must then
/// refuse every send, and the receiver see the frame cut short, never a wrong message.
fn assert_cut_short(codec: Raw, why: &str) {
    let (tx, rx) = warmed_pair(codec, false);
    // The receiver reads as the frame comes, so the sender does not block on a full
    // socket buffer.
    let reader = std::thread::spawn(move || rx.recv());
    let e = tx.send(&pattern(1 << 20, 2)).unwrap_err();
    assert!(matches!(e, Error::Encode(_)), "{e:?}");
    assert!(e.to_string().contains(why), "{e}");
    assert_broken_and_cut_short(tx, reader);
}

/// After a send that left its frame unfinished: `tx` refuses every send, and the receive
/// running in `reader` ends with the frame cut short once `tx` is dropped.
fn assert_broken_and_cut_short(
    tx: RawConn,
    reader: std::thread::JoinHandle<procwire::Result<Vec<u8>>>,
) {
    let again = tx.send_bytes(b"next").unwrap_err();
    assert!(
        matches!(&again, Error::Io(io) if io.kind() == std::io::ErrorKind::BrokenPipe),
        "{again:?}"
    );
    assert!(again.to_string().contains("left unfinished"), "{again}");
    drop(tx);
    let got = reader.join().unwrap().unwrap_err();
    assert!(matches!(got, Error::Truncated { .. }), "{got:?}");
}

#[test]
fn a_codec_that_writes_past_its_announced_length_fails_and_the_receiver_sees_no_wrong_frame() {
    bounded(|| {
        // The header and the first 300 KiB have left when the codec runs past.
        let codec = Raw {
            announce_extra: -3,
            ..Raw::default()
        };
        assert_cut_short(codec, "wrote past the");
    });
}

#[test]
fn a_codec_that_fails_half_way_through_a_large_message_leaves_the_sender_refusing() {
    bounded(|| {
        let codec = Raw {
            fail_after: Some(400 << 10),
            ..Raw::default()
        };
        assert_cut_short(codec, "refused half-way");
    });
}

/// A connected pair of `Raw` connections over a socket pair; with `memfd`, `tx` sends
/// large messages through memfds and `rx` takes them. Warmed up (see [`warm`]).
type RawConn = Connection<Vec<u8>, Vec<u8>, Raw>;
fn warmed_pair(codec: Raw, memfd: bool) -> (RawConn, RawConn) {
    let (ours, theirs) = UnixStream::pair().unwrap();
    let tx = RawConn::from_fd_with(ours.into(), codec).unwrap();
    let rx = RawConn::from_fd_with(theirs.into(), Raw::default()).unwrap();
    if memfd {
        tx.enable_large_memfd(64 << 10).unwrap();
        rx.accept_large_memfd(64 << 20).unwrap();
    }
    warm_pair(&tx, &rx);
    (tx, rx)
}

/// Sends a 1 MiB message with a codec that panics part-way; the panic reaches the caller,
/// the sender then refuses every send, and the receiver sees the frame cut short when the
/// sender is dropped, never a wrong message.
fn assert_panic_breaks_the_sender(memfd: bool) {
    let codec = Raw {
        panic_after: Some(400 << 10),
        ..Raw::default()
    };
    let (tx, rx) = warmed_pair(codec, memfd);
    let reader = std::thread::spawn(move || rx.recv());
    let sent = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        tx.send(&pattern(1 << 20, 6))
    }));
    assert!(sent.is_err(), "the codec's panic reaches the caller");
    assert_broken_and_cut_short(tx, reader);
}

#[test]
fn a_codec_that_panics_half_way_leaves_the_sender_refusing() {
    bounded(|| assert_panic_breaks_the_sender(false));
}

#[test]
fn a_codec_that_panics_half_way_through_a_memfd_slot_leaves_the_sender_refusing() {
    bounded(|| assert_panic_breaks_the_sender(true));
}

/// Sends a 1 MiB message through a memfd slot with `codec`, which fails part-way with an
/// [`Error::Encode`] saying `why`: the receiver's receive of that message is
/// `Error::Descriptors` ("abandoned"), and both ends carry on with the next message.
fn assert_abandoned(codec: Raw, why: &str) {
    let (tx, rx) = warmed_pair(codec, true);
    let reader = std::thread::spawn(move || {
        let first = rx.recv();
        let second = rx.recv_bytes();
        (first, second)
    });
    let e = tx.send(&pattern(1 << 20, 7)).unwrap_err();
    assert!(matches!(e, Error::Encode(_)), "{e:?}");
    assert!(e.to_string().contains(why), "{e}");
    tx.send_bytes(b"next").unwrap();
    let (first, second) = reader.join().unwrap();
    let first = first.unwrap_err();
    assert!(
        matches!(&first, Error::Descriptors(t) if t.contains("abandoned by its sender")),
        "{first:?}"
    );
    assert_eq!(second.unwrap(), b"next");
}

#[test]
fn a_codec_that_fails_part_way_through_a_memfd_slot_abandons_only_that_message() {
    bounded(|| {
        let codec = Raw {
            fail_after: Some(400 << 10),
            ..Raw::default()
        };
        assert_abandoned(codec, "refused half-way");
    });
}

#[test]
fn a_codec_that_writes_past_its_length_in_a_memfd_slot_abandons_only_that_message() {
    bounded(|| {
        let codec = Raw {
            announce_extra: -3,
            ..Raw::default()
        };
        assert_abandoned(codec, "wrote past the");
    });
}

#[test]
fn a_codec_that_fails_before_anything_left_keeps_the_stream_aligned() {
    bounded(|| {
        let codec = Raw {
            fail_after: Some(10),
            ..Raw::default()
        };
        let (conn, mut peer) = raw_pair(codec);
        warm(&conn, &mut peer);
        let e = conn.send(&pattern(1 << 20, 4)).unwrap_err();
        assert!(matches!(e, Error::Encode(_)), "{e:?}");
        // Only gathered bytes were dropped: the stream is as before.
        conn.send_timeout(&b"fine".to_vec(), Duration::from_secs(5))
            .unwrap();
        assert_eq!(read_frame(&mut peer), b"fine");
    });
}

#[test]
fn a_peer_that_hangs_up_mid_message_is_an_io_error_not_an_encode_error() {
    bounded(|| {
        let (conn, mut peer) = raw_pair(Raw::default());
        warm(&conn, &mut peer);
        drop(peer);
        let e = conn.send(&pattern(4 << 20, 5)).unwrap_err();
        assert!(e.is_disconnected(), "{e:?}");
    });
}

#[cfg(feature = "rkyv")]
mod rkyv_codec {
    use super::*;
    use procwire::codec::Rkyv;

    #[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Debug, PartialEq, Clone)]
    struct Frame {
        id: u64,
        name: String,
        samples: Vec<f64>,
        parts: Vec<(u32, String)>,
    }

    fn frame(id: u64, samples: usize, parts: usize) -> Frame {
        Frame {
            id,
            name: format!("frame {id}"),
            samples: (0..samples).map(|i| i as f64 * 0.5 + id as f64).collect(),
            parts: (0..parts).map(|i| (i as u32, format!("p{i}"))).collect(),
        }
    }

    #[test]
    fn rkyv_messages_written_in_place_are_byte_for_byte_the_archives_of_to_bytes() {
        bounded(|| {
            let (ours, mut peer) = UnixStream::pair().unwrap();
            peer.set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let conn =
                Connection::<Frame, Frame, Rkyv>::from_fd_with(ours.into(), Rkyv::new()).unwrap();
            // A large one switches the codec to measuring; then large slices, many small
            // writes (thousands of strings) and a small message again.
            let frames = vec![
                frame(1, 20_000, 0),
                frame(2, 2 << 20, 3),
                frame(3, 10, 30_000),
                frame(4, 9_000, 0),
                frame(5, 3, 1),
                frame(6, 1 << 20, 1),
            ];
            let sent = frames.clone();
            let writer = std::thread::spawn(move || {
                for f in &sent {
                    conn.send(f).unwrap();
                }
            });
            for f in &frames {
                let expected = rkyv::to_bytes::<rkyv::rancor::Error>(f).unwrap();
                assert_eq!(read_frame(&mut peer), &expected[..], "frame {}", f.id);
            }
            writer.join().unwrap();
        });
    }

    #[test]
    fn rkyv_in_place_sends_arrive_over_every_transport_and_through_memfds() {
        bounded(|| {
            let frames = [
                frame(1, 100_000, 2),
                frame(2, 1 << 20, 5000),
                frame(3, 1, 1),
            ];
            // A socket pair, with and without memfds, then TCP, then a pipe.
            for memfd in [false, true] {
                let (a, b) = procwire::duplex_with::<Frame, Frame, Rkyv>(Rkyv::new()).unwrap();
                if memfd {
                    a.enable_large_memfd(64 << 10).unwrap();
                    b.accept_large_memfd(64 << 20).unwrap();
                }
                send_all_through(a, b, &frames);
            }
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            let (server, _) = listener.accept().unwrap();
            let a =
                Connection::<Frame, Frame, Rkyv>::from_fd_with(client.into(), Rkyv::new()).unwrap();
            let b =
                Connection::<Frame, Frame, Rkyv>::from_fd_with(server.into(), Rkyv::new()).unwrap();
            send_all_through(a, b, &frames);
            let (tx, rx) = procwire::pipe_with::<Frame, Rkyv>(Rkyv::new()).unwrap();
            let sent = frames.clone();
            let t = std::thread::spawn(move || {
                for f in &sent {
                    tx.send(f).unwrap();
                }
            });
            for f in &frames {
                let got = rx.recv_archived().unwrap();
                assert_eq!(got.id, f.id);
                assert_eq!(got.samples.len(), f.samples.len());
                assert_eq!(got.parts.len(), f.parts.len());
            }
            t.join().unwrap();
        });
    }
}

#[cfg(feature = "postcard")]
mod postcard_codec {
    use super::*;
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    struct Frame {
        id: u64,
        samples: Vec<f64>,
        names: Vec<String>,
        blob: Vec<u8>,
    }

    fn frame(id: u64, samples: usize, names: usize, blob: usize) -> Frame {
        Frame {
            id,
            samples: (0..samples).map(|i| i as f64 - id as f64).collect(),
            names: (0..names).map(|i| "n".repeat(i % 50)).collect(),
            blob: pattern(blob, id as u8),
        }
    }

    #[test]
    fn postcard_messages_written_in_place_are_byte_for_byte_those_of_to_allocvec() {
        bounded(|| {
            let (ours, mut peer) = UnixStream::pair().unwrap();
            peer.set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let conn = Connection::<Frame, Frame>::from_fd(ours.into()).unwrap();
            // The first large one makes the sender measure the next: small writes (elements,
            // strings, varints) across the 8 KiB gathering, a blob larger than it, a
            // message just under 64 KiB, and one far below.
            let frames = vec![
                frame(1, 10_000, 0, 0),
                frame(2, 1 << 20, 20_000, 100_000),
                frame(3, 0, 0, 3 << 20),
                frame(4, 8_000, 3, 65_000),
                frame(5, 1, 1, 1),
                frame(6, 300_000, 7, 8 << 10),
            ];
            let sent = frames.clone();
            let writer = std::thread::spawn(move || {
                for f in &sent {
                    conn.send(f).unwrap();
                }
            });
            for f in &frames {
                let expected = postcard::to_allocvec(f).unwrap();
                assert_eq!(read_frame(&mut peer), expected, "frame {}", f.id);
            }
            writer.join().unwrap();
        });
    }

    #[test]
    fn postcard_in_place_sends_arrive_typed_and_through_memfds() {
        bounded(|| {
            let frames = [
                frame(1, 100_000, 2, 10),
                frame(2, 1 << 20, 5000, 70_000),
                frame(3, 1, 1, 1),
            ];
            for memfd in [false, true] {
                let (a, b) = procwire::duplex::<Frame, Frame>().unwrap();
                if memfd {
                    a.enable_large_memfd(64 << 10).unwrap();
                    b.accept_large_memfd(64 << 20).unwrap();
                }
                send_all_through(a, b, &frames);
            }
        });
    }
}
