//! The message layer end to end: framing on the wire, end of stream, limits, hostile
//! headers, waiting, typed values and descriptor hygiene, over `duplex` and `pipe`.

mod util;

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use procwire::frame::{Header, DEFAULT_MAX_MESSAGE_SIZE};
use procwire::Error;
use proptest::prelude::*;
use util::{assert_err, bounded, frame, is_cloexec, pipe_with_raw_bytes, raw, trickle, SOON};

#[test]
fn duplex_delivers_many_messages_in_order_both_ways() {
    bounded(|| {
        let (a, b) = procwire::duplex::<u32, String>().unwrap();
        let n = 5000;
        // One sending thread per direction, so neither blocks on a full socket buffer
        // while its peer is not reading.
        let ((a_tx, a_rx), (b_tx, b_rx)) = (a.split(), b.split());
        let b_sender =
            thread::spawn(move || (0..n).for_each(|i| b_tx.send(&format!("m{i}")).unwrap()));
        let a_sender = thread::spawn(move || (0..n).for_each(|i| a_tx.send(&i).unwrap()));
        for i in 0..n {
            assert_eq!(b_rx.recv().unwrap(), i);
        }
        for i in 0..n {
            assert_eq!(a_rx.recv().unwrap(), format!("m{i}"));
        }
        a_sender.join().unwrap();
        b_sender.join().unwrap();
    });
}

#[test]
fn pipe_delivers_many_messages_in_order() {
    bounded(|| {
        let (tx, rx) = procwire::pipe::<Vec<u8>>().unwrap();
        let msg = |i: u32| vec![i as u8; (i % 300) as usize];
        let writer = thread::spawn(move || (0..5000).for_each(|i| tx.send(&msg(i)).unwrap()));
        for i in 0..5000 {
            assert_eq!(rx.recv().unwrap(), msg(i));
        }
        writer.join().unwrap();
        assert_err!(rx.recv(), Error::Disconnected);
    });
}

#[test]
fn empty_and_one_byte_messages_round_trip() {
    bounded(|| {
        let (a, b) = procwire::duplex::<(), ()>().unwrap();
        a.send_bytes(b"").unwrap();
        a.send_bytes(b"x").unwrap();
        a.send_bytes::<u8>(&[]).unwrap();
        a.send(&()).unwrap(); // postcard encodes `()` as nothing: a typed empty message
        assert_eq!(b.recv_bytes().unwrap(), b"");
        let mut one = [0u8; 1];
        assert_eq!(b.recv_bytes_into(&mut one).unwrap(), 1);
        assert_eq!(&one, b"x");
        assert_eq!(b.recv_bytes_into(&mut [0u8; 0]).unwrap(), 0);
        b.recv().unwrap();
    });
}

#[test]
fn eof_at_a_message_boundary_is_disconnected_every_time() {
    bounded(|| {
        let (tx, rx) = procwire::pipe::<u8>().unwrap();
        tx.send(&1).unwrap();
        drop(tx);
        assert_eq!(rx.recv().unwrap(), 1);
        for _ in 0..3 {
            assert!(assert_err!(rx.recv(), Error::Disconnected).is_disconnected());
        }
        assert_eq!(rx.iter().count(), 0);
    });
}

#[test]
fn eof_inside_a_header_is_truncated() {
    bounded(|| {
        let rx = pipe_with_raw_bytes(b"\x00\x00");
        let err = assert_err!(
            rx.recv_bytes(),
            Error::Truncated {
                received: 2,
                expected: 4
            }
        );
        assert!(err.is_disconnected());
        let rx = pipe_with_raw_bytes(b"\xff\xff\xff\xff\x00");
        assert_err!(
            rx.recv_bytes(),
            Error::Truncated {
                received: 5,
                expected: 12
            }
        );
    });
}

#[test]
fn eof_inside_a_payload_is_truncated_for_every_receive() {
    bounded(|| {
        let bytes = b"\x00\x00\x00\x05he";
        let rx = pipe_with_raw_bytes(bytes);
        assert_err!(
            rx.recv_bytes(),
            Error::Truncated {
                received: 6,
                expected: 9
            }
        );
        let rx = pipe_with_raw_bytes(bytes);
        let result = rx.recv_bytes_into(&mut [0u8; 16]);
        assert_err!(
            result,
            Error::Truncated {
                received: 6,
                expected: 9
            }
        );
        let (tx, rx) = procwire::pipe::<String>().unwrap();
        raw(&tx).write_all(bytes).unwrap();
        drop(tx);
        assert_err!(
            rx.recv(),
            Error::Truncated {
                received: 6,
                expected: 9
            }
        );

        // A large payload that stops short, read straight into the caller's slice.
        let (tx, rx) = procwire::pipe::<()>().unwrap();
        let mut w = raw(&tx);
        drop(tx);
        let writer = thread::spawn(move || {
            w.write_all(&Header::for_payload(1 << 20).encode()).unwrap();
            w.write_all(&vec![7u8; 300_000]).unwrap();
        });
        let result = rx.recv_bytes_into(&mut vec![0u8; 1 << 20]);
        assert_err!(
            result,
            Error::Truncated {
                received: 300_004,
                expected: 1_048_580
            }
        );
        writer.join().unwrap();
    });
}

#[test]
fn a_truncated_stream_stays_truncated_and_its_partial_bytes_never_become_messages() {
    bounded(|| {
        // The cut payload is all zeros: read as headers, it would be empty messages.
        let mut bytes = frame(b"first");
        bytes.extend_from_slice(&frame(&[0; 8])[..10]);
        let truncated = |e: &Error| {
            matches!(
                e,
                Error::Truncated {
                    received: 10,
                    expected: 12
                }
            )
        };
        for first in 0..3 {
            let (tx, rx) = procwire::pipe::<Vec<u8>>().unwrap();
            raw(&tx).write_all(&bytes).unwrap();
            drop(tx);
            assert_eq!(rx.recv_bytes().unwrap(), b"first");
            let e = match first {
                0 => rx.recv().map(drop).unwrap_err(),
                1 => rx.recv_bytes().map(drop).unwrap_err(),
                _ => rx.recv_bytes_into(&mut [0u8; 64]).map(drop).unwrap_err(),
            };
            assert!(truncated(&e), "first receive: {e:?}");
            for _ in 0..3 {
                assert!(rx.poll(Some(Duration::ZERO)).unwrap());
                let e = rx.recv_bytes().unwrap_err();
                assert!(truncated(&e), "later receive: {e:?}");
                let e = rx.try_recv().unwrap_err();
                assert!(truncated(&e), "later try_recv: {e:?}");
            }
        }
    });
}

#[test]
fn hello_is_written_as_the_cpython_frame() {
    bounded(|| {
        let (tx, rx) = procwire::pipe::<()>().unwrap();
        tx.send_bytes(b"hello").unwrap();
        tx.send_bytes(b"").unwrap();
        let mut wire = [0u8; 13];
        raw(&rx).read_exact(&mut wire).unwrap();
        assert_eq!(&wire, b"\x00\x00\x00\x05hello\x00\x00\x00\x00");

        let (a, b) = procwire::duplex::<u32, ()>().unwrap();
        a.send(&300).unwrap(); // postcard varint: ac 02
        let mut wire = [0u8; 6];
        raw(&b).read_exact(&mut wire).unwrap();
        assert_eq!(wire, [0, 0, 0, 2, 0xac, 0x02]);
    });
}

#[test]
fn escape_header_with_a_small_length_is_accepted() {
    bounded(|| {
        let rx = pipe_with_raw_bytes(b"\xff\xff\xff\xff\0\0\0\0\0\0\0\x05hello\x00\x00\x00\x01!");
        assert_eq!(rx.recv_bytes().unwrap(), b"hello");
        assert_eq!(rx.recv_bytes().unwrap(), b"!");
        assert_err!(rx.recv_bytes(), Error::Disconnected);
    });
}

#[test]
fn negative_length_other_than_the_escape_is_a_protocol_error_and_sending_still_works() {
    bounded(|| {
        let (a, b) = procwire::duplex::<(), ()>().unwrap();
        raw(&a).write_all(b"\xff\xff\xff\xfehello").unwrap();
        assert!(
            b.poll(Some(SOON)).unwrap(),
            "a pending protocol error is ready"
        );
        let err = assert_err!(b.recv_bytes(), Error::Protocol(_));
        let text = err.to_string();
        assert!(
            text.starts_with("protocol error: invalid message length -2 (")
                && text.contains("accept_large_memfd"),
            "{text}"
        );
        assert!(!err.is_disconnected());
        assert_err!(b.recv_bytes(), Error::Protocol(_));
        b.send_bytes(b"still sending").unwrap();
        assert_eq!(a.recv_bytes().unwrap(), b"still sending");
    });
}

#[test]
fn buffer_too_short_hands_back_the_whole_message_and_the_next_is_readable() {
    bounded(|| {
        let (a, b) = procwire::duplex::<(), ()>().unwrap();
        let big: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        let big2 = big.clone();
        let sender = thread::spawn(move || {
            a.send_bytes(b"0123456789").unwrap();
            a.send_bytes(&big2).unwrap();
            a.send_bytes(b"next").unwrap();
            a
        });
        let mut out = [0xaau8; 4];
        let err = assert_err!(b.recv_bytes_into(&mut out), Error::BufferTooShort(_));
        assert!(matches!(err, Error::BufferTooShort(whole) if whole == b"0123456789"));
        assert_eq!(out, [0xaa; 4], "the slice is left untouched");
        let err = assert_err!(
            b.recv_bytes_into(&mut [0u8; 1000]),
            Error::BufferTooShort(_)
        );
        assert!(matches!(err, Error::BufferTooShort(whole) if whole == big));
        assert_eq!(b.recv_bytes_into(&mut out).unwrap(), 4);
        assert_eq!(&out, b"next");
        drop(sender.join().unwrap());
    });
}

#[test]
fn decode_error_consumes_the_message_and_the_next_is_readable() {
    bounded(|| {
        let (tx, rx) = procwire::pipe::<(u8, String)>().unwrap();
        tx.send_bytes(&[7u8, 200]).unwrap(); // string length 200, no bytes
        tx.send_bytes(&[1u8, 1, b'a', 0xff]).unwrap(); // a byte left over
        tx.send(&(1, "ok".to_string())).unwrap();
        for _ in 0..2 {
            let err = assert_err!(rx.recv(), Error::Decode(_));
            let Error::Decode(cause) = &err else {
                unreachable!()
            };
            assert_eq!(err.to_string(), format!("cannot decode a message: {cause}"));
        }
        assert_eq!(rx.recv().unwrap(), (1, "ok".to_string()));
    });
}

#[test]
fn message_of_exactly_the_maximum_size_is_accepted() {
    bounded(|| {
        let (tx, rx) = procwire::pipe::<()>().unwrap();
        rx.set_max_message_size(100);
        assert_eq!(rx.max_message_size(), 100);
        tx.send_bytes(&[1u8; 100]).unwrap();
        assert_eq!(rx.recv_bytes().unwrap(), [1u8; 100]);
        tx.send_bytes(&[2u8; 100]).unwrap();
        assert!(rx.poll(Some(SOON)).unwrap());
        assert_eq!(rx.recv_bytes_into(&mut [0u8; 100]).unwrap(), 100);
    });
}

#[test]
fn message_over_the_maximum_is_too_large_then_receiving_is_disabled_but_sending_works() {
    bounded(|| {
        let (a, b) = procwire::duplex::<(), ()>().unwrap();
        b.set_max_message_size(100);
        a.send_bytes(&[1u8; 101]).unwrap();
        a.send_bytes(b"after").unwrap();
        assert!(b.poll(Some(SOON)).unwrap());
        let err = assert_err!(
            b.recv_bytes(),
            Error::MessageTooLarge {
                len: 101,
                limit: 100
            }
        );
        assert_eq!(
            err.to_string(),
            "message of 101 bytes exceeds the receiver's 100-byte limit (raise it with \
             set_max_message_size or the builder's max_message_size; a shared array's with \
             set_max_array_size)"
        );
        assert!(b.poll(Some(Duration::ZERO)).unwrap());
        assert_err!(b.recv_bytes(), Error::Protocol(_));
        assert_err!(b.recv_bytes_into(&mut [0u8; 8]), Error::Protocol(_));
        b.send_bytes(b"reply").unwrap();
        assert_eq!(a.recv_bytes().unwrap(), b"reply");
    });
}

#[test]
fn header_claiming_two_to_the_62_bytes_is_too_large_without_allocating_it() {
    bounded(|| {
        let (a, b) = procwire::duplex::<Vec<u8>, ()>().unwrap();
        let mut w = raw(&a);
        w.write_all(b"\xff\xff\xff\xff").unwrap();
        w.write_all(&(1u64 << 62).to_be_bytes()).unwrap();
        // Neither poll (which makes room for whole frames) nor recv may try to allocate it.
        assert!(b.poll(Some(SOON)).unwrap());
        assert_err!(
            b.recv(),
            Error::MessageTooLarge { len, limit } if len == 1 << 62 && limit == DEFAULT_MAX_MESSAGE_SIZE
        );
        // A short header over a lowered limit, through the byte receives.
        for into in [false, true] {
            let (tx, rx) = procwire::pipe::<()>().unwrap();
            raw(&tx).write_all(b"\x40\x00\x00\x00").unwrap(); // 2^30
            rx.set_max_message_size(1 << 20);
            let result = match into {
                true => rx.recv_bytes_into(&mut [0u8; 4]),
                false => rx.recv_bytes().map(|v| v.len()),
            };
            assert_err!(
                result,
                Error::MessageTooLarge {
                    len: 0x4000_0000,
                    limit: 0x10_0000
                }
            );
        }
    });
}

#[test]
fn sending_to_a_closed_socket_peer_is_a_disconnected_error() {
    bounded(|| {
        let (a, b) = procwire::duplex::<u32, u32>().unwrap();
        drop(b);
        assert!(assert_err!(a.send(&1), Error::Io(_)).is_disconnected());
        assert!(a.send_bytes(&[0u8; 100_000]).unwrap_err().is_disconnected());
        assert_err!(a.recv(), Error::Disconnected);
    });
}

#[test]
fn sending_to_a_closed_pipe_reader_is_a_disconnected_error() {
    bounded(|| {
        let (tx, rx) = procwire::pipe::<u32>().unwrap();
        rx.close().unwrap();
        let err = assert_err!(tx.send(&1), Error::Io(ref e) if e.kind() == std::io::ErrorKind::BrokenPipe);
        assert!(err.is_disconnected());
        assert!(tx
            .send_bytes(&[0u8; 100_000])
            .unwrap_err()
            .is_disconnected());
    });
}

#[test]
fn peer_dropped_while_a_large_send_is_blocked_gives_an_error() {
    bounded(|| {
        let (tx, rx) = procwire::pipe::<()>().unwrap();
        let closer = thread::spawn(move || {
            thread::sleep(Duration::from_millis(50));
            drop(rx);
        });
        assert!(tx
            .send_bytes(&vec![0u8; 8 << 20])
            .unwrap_err()
            .is_disconnected());
        closer.join().unwrap();
    });
}

#[test]
fn poll_waits_for_a_message_with_none_zero_and_a_short_timeout() {
    bounded(|| {
        let (a, b) = procwire::duplex::<u8, u8>().unwrap();
        assert!(!b.poll(Some(Duration::ZERO)).unwrap());
        let start = Instant::now();
        assert!(!b.poll(Some(Duration::from_millis(30))).unwrap());
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_millis(25) && waited < SOON,
            "{waited:?}"
        );
        let sender = thread::spawn(move || {
            thread::sleep(Duration::from_millis(20));
            a.send(&5).unwrap();
            a
        });
        assert!(b.poll(None).unwrap());
        assert!(
            b.poll(Some(Duration::ZERO)).unwrap(),
            "still ready until received"
        );
        assert_eq!(b.recv().unwrap(), 5);
        assert!(!b.poll(Some(Duration::ZERO)).unwrap());
        drop(sender.join().unwrap());
        assert!(b.poll(None).unwrap(), "end of stream is ready");
        assert!(b.poll(Some(Duration::ZERO)).unwrap());
        assert_err!(b.recv(), Error::Disconnected);
    });
}

#[test]
fn poll_counts_a_message_already_buffered() {
    bounded(|| {
        let (tx, rx) = procwire::pipe::<u8>().unwrap();
        tx.send(&1).unwrap();
        tx.send(&2).unwrap();
        assert_eq!(rx.recv().unwrap(), 1); // one read takes both frames into the buffer
        assert!(rx.poll(Some(Duration::ZERO)).unwrap());
        assert_eq!(rx.try_recv().unwrap(), 2);
        assert!(!rx.poll(Some(Duration::ZERO)).unwrap());
    });
}

#[test]
fn poll_makes_room_for_a_large_message_which_then_arrives_whole() {
    bounded(|| {
        let (a, b) = procwire::duplex::<Vec<u8>, ()>().unwrap();
        let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        let big2 = big.clone();
        let sender = thread::spawn(move || {
            a.send(&big2).unwrap();
            a.send(&vec![1, 2, 3]).unwrap();
            a
        });
        assert!(b.poll(Some(SOON)).unwrap());
        assert_eq!(b.recv().unwrap(), big);
        assert_eq!(b.recv_timeout(SOON).unwrap(), [1, 2, 3]);
        drop(sender.join().unwrap());
    });
}

#[test]
fn try_recv_is_empty_then_returns_the_value() {
    bounded(|| {
        let (a, b) = procwire::duplex::<String, ()>().unwrap();
        assert_err!(b.try_recv(), Error::Empty);
        a.send(&"x".to_string()).unwrap();
        assert_eq!(b.try_recv().unwrap(), "x"); // the bytes are in the socket already
        assert_err!(b.try_recv(), Error::Empty);
    });
}

#[test]
fn recv_timeout_times_out_then_returns_the_value() {
    bounded(|| {
        let (tx, rx) = procwire::pipe::<u64>().unwrap();
        let start = Instant::now();
        assert_err!(rx.recv_timeout(Duration::from_millis(20)), Error::Timeout);
        assert!(start.elapsed() >= Duration::from_millis(15));
        tx.send(&u64::MAX).unwrap();
        assert_eq!(rx.recv_timeout(SOON).unwrap(), u64::MAX);
        drop(tx);
        assert_err!(rx.recv_timeout(SOON), Error::Disconnected);
    });
}

#[test]
fn try_recv_from_threads_sharing_a_receiver_never_blocks() {
    bounded(|| {
        let (tx, rx) = procwire::pipe::<u32>().unwrap();
        let (rx, barrier) = (Arc::new(rx), Arc::new(Barrier::new(3)));
        let racers: Vec<_> = (0..2)
            .map(|_| {
                let (rx, barrier) = (Arc::clone(&rx), Arc::clone(&barrier));
                thread::spawn(move || {
                    let mut got = 0;
                    for _ in 0..2000 {
                        barrier.wait();
                        match rx.try_recv() {
                            Ok(_) => got += 1,
                            Err(e) => assert!(matches!(e, Error::Empty), "{e:?}"),
                        }
                        barrier.wait();
                    }
                    got
                })
            })
            .collect();
        for i in 0..2000 {
            tx.send(&i).unwrap();
            barrier.wait(); // both racers try to take the one message
            barrier.wait();
        }
        // Exactly one racer took each message; the other saw `Empty` instead of blocking.
        let got: u32 = racers.into_iter().map(|r| r.join().unwrap()).sum();
        assert_eq!(got, 2000);
    });
}

#[test]
fn a_message_trickled_one_byte_at_a_time_is_assembled_whole() {
    bounded(|| {
        let value = "trickled through a socket, one byte at a time".to_string();
        let mut payload = Vec::new();
        procwire::codec::Encode::<String>::encode(&mut procwire::Postcard, &value, &mut payload)
            .unwrap();
        let (a, b) = procwire::duplex::<String, ()>().unwrap();
        let writer = trickle(raw(&a), frame(&payload));
        // Short timeouts expire many times; the bytes that did arrive stay buffered.
        let mut timeouts = 0;
        let got = loop {
            match b.recv_timeout(Duration::from_millis(2)) {
                Ok(v) => break v,
                Err(Error::Timeout) if timeouts < 100_000 => timeouts += 1,
                Err(e) => panic!("{e:?}"),
            }
        };
        assert_eq!((got, timeouts > 0), (value, true));
        writer.join().unwrap();

        // The same through poll, over a pipe, with a header in the 12-byte form.
        let (tx, rx) = procwire::pipe::<()>().unwrap();
        let mut bytes = b"\xff\xff\xff\xff\0\0\0\0\0\0\0\x20".to_vec();
        bytes.extend_from_slice(&[9u8; 32]);
        let writer = trickle(raw(&tx), bytes);
        let mut polls = 0;
        while !rx.poll(Some(Duration::from_millis(3))).unwrap() {
            polls += 1;
            assert!(polls < 100_000);
        }
        assert_eq!(rx.recv_bytes().unwrap(), [9u8; 32]);
        writer.join().unwrap();
    });
}

#[test]
fn sixteen_mib_f64_array_round_trips_into_a_slice() {
    bounded(|| {
        let n = (16 << 20) / 8;
        let data: Vec<f64> = (0..n).map(|i| i as f64 * 0.5 - 7.25).collect();
        let ((a, b), (tx, rx)) = (
            procwire::duplex::<(), ()>().unwrap(),
            procwire::pipe::<()>().unwrap(),
        );
        let data2 = data.clone();
        let sender = thread::spawn(move || {
            a.send_bytes(&data2).unwrap();
            tx.send_bytes(&data2).unwrap();
            a
        });
        let mut out = vec![0f64; n];
        assert_eq!(b.recv_bytes_into(&mut out).unwrap(), 16 << 20);
        assert!(out == data);
        out.fill(0.0);
        assert_eq!(rx.recv_bytes_into(&mut out).unwrap(), 16 << 20);
        assert!(out == data);
        drop(sender.join().unwrap());
    });
}

#[test]
fn recv_bytes_into_an_offset_slice_writes_only_there() {
    bounded(|| {
        let (tx, rx) = procwire::pipe::<()>().unwrap();
        tx.send_bytes(b"abcde").unwrap();
        tx.send_bytes(&[1u32, 2]).unwrap();
        let mut buf = [b'.'; 10];
        assert_eq!(rx.recv_bytes_into(&mut buf[3..]).unwrap(), 5);
        assert_eq!(&buf, b"...abcde..");
        let mut words = [0u32; 4];
        assert_eq!(rx.recv_bytes_into(&mut words[1..]).unwrap(), 8);
        assert_eq!(words, [0, 1, 2, 0]);
    });
}

#[test]
fn split_halves_work_from_two_threads() {
    bounded(|| {
        let (a, b) = procwire::duplex::<u64, u64>().unwrap();
        let (tx, rx) = b.split();
        let consumer = thread::spawn(move || {
            rx.iter()
                .map(Result::unwrap)
                .take_while(|&v| v != u64::MAX)
                .count()
        });
        let producer = thread::spawn(move || (0..1000).for_each(|i| tx.send(&(i * 3)).unwrap()));
        for i in 0..1000 {
            assert_eq!(a.recv().unwrap(), i * 3);
        }
        a.send(&7).unwrap();
        a.send(&u64::MAX).unwrap();
        producer.join().unwrap();
        assert_eq!(consumer.join().unwrap(), 1);
        // Both halves are gone, so the descriptor is closed.
        assert_err!(a.recv_timeout(SOON), Error::Disconnected);
    });
}

#[test]
fn close_returns_ok_and_the_peer_sees_disconnected() {
    bounded(|| {
        let (a, b) = procwire::duplex::<u8, u8>().unwrap();
        a.close().unwrap();
        assert_err!(b.recv_timeout(SOON), Error::Disconnected);
        b.close().unwrap();

        let (tx, rx) = procwire::pipe::<u8>().unwrap();
        tx.send(&1).unwrap();
        tx.close().unwrap();
        assert_eq!(rx.recv().unwrap(), 1);
        assert_err!(rx.recv(), Error::Disconnected);
        rx.close().unwrap();

        let (a, b) = procwire::duplex::<u8, u8>().unwrap();
        assert!(!a.poll(Some(Duration::ZERO)).unwrap()); // registers with a poller
        let (tx, rx) = a.split();
        tx.close().unwrap();
        b.send(&4).unwrap();
        assert_eq!(rx.recv().unwrap(), 4, "the other half still works");
        rx.close().unwrap();
        assert_err!(b.recv_timeout(SOON), Error::Disconnected);
    });
}

#[test]
fn every_descriptor_made_is_close_on_exec() {
    bounded(|| {
        let before = util::inheritable_fds();
        let (a, b) = procwire::duplex::<u8, u8>().unwrap();
        let (tx, rx) = procwire::pipe::<u8>().unwrap();
        for fd in [a.as_fd(), b.as_fd(), tx.as_fd(), rx.as_fd()] {
            assert!(is_cloexec(fd));
        }
        // Waiting creates a poller (epoll and friends); those must not leak either.
        assert!(!a.poll(Some(Duration::from_millis(1))).unwrap());
        assert!(!rx.poll(Some(Duration::ZERO)).unwrap());
        let after = util::inheritable_fds();
        let leaked: Vec<_> = after.iter().filter(|fd| !before.contains(fd)).collect();
        assert!(
            leaked.is_empty(),
            "inheritable descriptors appeared: {leaked:?}"
        );
        drop((a, b, tx, rx));
    });
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_message_sequences_arrive_equal(
        msgs in prop::collection::vec(
            prop_oneof![
                8 => prop::collection::vec(any::<u8>(), 0..64),
                2 => prop::collection::vec(any::<u8>(), 0..4096),
                1 => prop::collection::vec(any::<u8>(), 60_000..140_000),
            ],
            0..40,
        ),
        over_pipe in any::<bool>(),
    ) {
        let sent = msgs.clone();
        let got = bounded(move || {
            let (tx, rx) = if over_pipe {
                procwire::pipe::<()>().unwrap()
            } else {
                let (a, b) = procwire::duplex::<(), ()>().unwrap();
                (a.split().0, b.split().1)
            };
            let writer = thread::spawn(move || sent.iter().for_each(|m| tx.send_bytes(m).unwrap()));
            let got: Vec<Vec<u8>> = std::iter::from_fn(|| match rx.recv_bytes() {
                Err(Error::Disconnected) => None,
                other => Some(other.unwrap()),
            })
            .collect();
            writer.join().unwrap();
            got
        });
        prop_assert_eq!(got, msgs);
    }
}
