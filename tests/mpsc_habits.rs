//! What `std::sync::mpsc` users try first: cloned senders on many threads, `for x in &rx`,
//! and raw receives that count elements.

mod util;

use std::thread;
use std::time::Duration;

use procwire::{Client, Connection, Error, Listener, Receiver, Sender};
use util::{assert_err, bounded};

const THREADS: u32 = 8;
const PER_THREAD: u32 = 40;

/// The message thread `t` sends as its `i`th: large enough (up to ~200 KiB) that a frame
/// takes several writes, so interleaved writes would garble it.
fn message(t: u32, i: u32) -> Vec<u8> {
    let len = 8 + ((t as usize * 7919 + i as usize * 104_729) % (200 << 10));
    let mut m = vec![t as u8; len];
    m[..4].copy_from_slice(&t.to_le_bytes());
    m[4..8].copy_from_slice(&i.to_le_bytes());
    m
}

/// Sends from `THREADS` clones of `tx` at once, then checks on `rx` that every message
/// arrived whole and each thread's in order.
fn many_senders(tx: Sender<()>, rx: &Receiver<()>) {
    let senders: Vec<_> = (0..THREADS)
        .map(|t| {
            let tx = tx.clone();
            thread::spawn(move || {
                for i in 0..PER_THREAD {
                    tx.send_bytes(&message(t, i)).unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    let mut next = [0u32; THREADS as usize];
    for _ in 0..THREADS * PER_THREAD {
        let m = rx.recv_bytes_timeout(Duration::from_secs(20)).unwrap();
        let t = u32::from_le_bytes(m[..4].try_into().unwrap());
        let i = u32::from_le_bytes(m[4..8].try_into().unwrap());
        assert!(t < THREADS, "a garbled frame: thread {t}");
        assert_eq!(i, next[t as usize], "thread {t}'s messages in order");
        assert!(m == message(t, i), "thread {t}, message {i} arrived whole");
        next[t as usize] += 1;
    }
    for s in senders {
        s.join().unwrap();
    }
}

#[test]
fn cloned_senders_on_many_threads_send_whole_frames_that_never_interleave() {
    bounded(|| {
        let (tx, rx) = procwire::pipe::<()>().unwrap();
        many_senders(tx, &rx);
        assert_err!(rx.recv_bytes(), Error::Disconnected);
    });
}

#[test]
fn the_sending_half_of_a_duplex_connection_clones_too() {
    bounded(|| {
        let (a, b) = procwire::duplex::<(), ()>().unwrap();
        many_senders(a.sender().clone(), b.receiver());

        let listener = Listener::bind("127.0.0.1:0").unwrap();
        let client: Connection<(), ()> = Client::connect(listener.local_addr()).unwrap();
        let server: Connection<(), ()> = listener.accept().unwrap();
        many_senders(client.sender().clone(), server.receiver());
    });
}

#[test]
fn the_peer_sees_the_end_only_when_the_last_clone_is_gone() {
    bounded(|| {
        let (tx, rx) = procwire::pipe::<u8>().unwrap();
        let (one, two) = (tx.clone(), tx.clone());
        drop(tx);
        one.close().unwrap(); // not the last: Ok, and the pipe stays open
        two.send(&2).unwrap();
        assert_eq!(rx.recv().unwrap(), 2);
        assert_err!(rx.recv_timeout(Duration::from_millis(50)), Error::Timeout);
        drop(two);
        assert_err!(
            rx.recv_timeout(Duration::from_secs(10)),
            Error::Disconnected
        );
    });
}

#[test]
fn senders_are_clone_send_and_sync() {
    fn check<T: Clone + Send + Sync + 'static>() {}
    check::<Sender<String>>();
    check::<Sender<Vec<u8>>>();
}

#[test]
fn a_receiver_and_a_connection_iterate_by_reference() {
    bounded(|| {
        let (tx, rx) = procwire::pipe::<u32>().unwrap();
        for i in 0..5 {
            tx.send(&i).unwrap();
        }
        drop(tx);
        let mut got = Vec::new();
        for v in &rx {
            got.push(v.unwrap());
        }
        assert_eq!(got, [0, 1, 2, 3, 4]);

        let (a, b) = procwire::duplex::<u32, u32>().unwrap();
        a.send(&9).unwrap();
        drop(a);
        let all: Vec<u32> = (&b).into_iter().collect::<Result<_, _>>().unwrap();
        assert_eq!(all, [9]);
    });
}

#[test]
fn recv_slice_into_returns_the_elements_and_recv_bytes_into_keeps_the_byte_count() {
    bounded(|| {
        let (tx, rx) = procwire::pipe::<()>().unwrap();
        tx.send_bytes(&[10u32, 20, 30]).unwrap();
        tx.send_bytes(&[10u32, 20, 30]).unwrap();
        let mut out = [0u32; 8];
        assert_eq!(
            rx.recv_bytes_into(&mut out).unwrap(),
            12,
            "CPython's byte count"
        );
        let got = rx.recv_slice_into(&mut out).unwrap();
        assert_eq!(got, [10, 20, 30]);
        got[0] = 11; // the caller's own slice
        assert_eq!(out[..4], [11, 20, 30, 0]);

        tx.send_bytes(&[1u8, 2, 3, 4, 5]).unwrap(); // not a whole number of u32s
        tx.send_bytes(&[5u32]).unwrap();
        let err = assert_err!(rx.recv_slice_into(&mut out), Error::Decode(_));
        assert!(err.to_string().contains("5 bytes"), "{err}");
        assert_eq!(
            rx.recv_slice_into(&mut out).unwrap(),
            [5],
            "the next is readable"
        );

        let (a, b) = procwire::duplex::<(), ()>().unwrap();
        a.send_bytes(&[2.5f64]).unwrap();
        let mut f = [0f64; 2];
        assert_eq!(
            b.recv_slice_into_timeout(&mut f, Duration::from_secs(5))
                .unwrap(),
            [2.5]
        );
        assert_err!(b.try_recv_slice_into(&mut f), Error::Empty);
    });
}

#[test]
fn buffer_too_short_turns_into_elements_whatever_the_alignment() {
    bounded(|| {
        let (tx, rx) = procwire::pipe::<()>().unwrap();
        let values: Vec<u64> = (0..1000).map(|i| i * 0x0101_0101_0101).collect();
        let mut small = [0u64; 10];
        for _ in 0..3 {
            tx.send_bytes(&values).unwrap();
            let err = assert_err!(rx.recv_slice_into(&mut small), Error::BufferTooShort(_));
            assert_eq!(err.into_buffer::<u64>().unwrap(), values);
        }
        assert_eq!(small, [0; 10], "untouched");

        // A length that is not a whole number of elements, or another error: unchanged.
        tx.send_bytes(&[0u8; 12]).unwrap();
        let err = assert_err!(
            rx.recv_slice_into(&mut small[..1]),
            Error::BufferTooShort(_)
        );
        let mut few = [0u8; 4];
        let back = err.into_buffer::<u64>().unwrap_err();
        assert!(matches!(&back, Error::BufferTooShort(b) if b.len() == 12));
        assert_eq!(back.into_buffer::<u32>().unwrap(), [0, 0, 0]);
        assert!(matches!(
            Error::Timeout.into_buffer::<u8>(),
            Err(Error::Timeout)
        ));
        tx.send_bytes(b"fits").unwrap();
        assert_eq!(rx.recv_slice_into(&mut few).unwrap(), b"fits");
    });
}
