//! `set_spin`: blocking receives that spin before they block still deliver every message
//! whole and in order, report a vanished peer, and fall back to blocking when the peer is
//! slow, on sockets and pipes alike.

mod util;

use std::thread;
use std::time::{Duration, Instant};

use util::bounded;

const SPIN: Duration = Duration::from_micros(200);

#[test]
fn a_spinning_receiver_gets_every_message_in_order_from_a_fast_peer() {
    bounded(|| {
        let (a, b) = procwire::duplex::<u64, u64>().unwrap();
        a.set_spin(Some(SPIN));
        b.set_spin(Some(SPIN));
        let echo = thread::spawn(move || {
            for v in b.iter() {
                b.send(&(v.unwrap() * 2)).unwrap();
            }
        });
        for i in 0..5_000u64 {
            a.send(&i).unwrap();
            assert_eq!(a.recv().unwrap(), i * 2);
        }
        drop(a);
        echo.join().unwrap();
    });
}

#[test]
fn a_spinning_receiver_falls_back_to_blocking_for_a_slow_peer_and_sees_it_leave() {
    bounded(|| {
        let (tx, rx) = procwire::pipe::<u32>().unwrap();
        rx.set_spin(Some(SPIN));
        let sender = thread::spawn(move || {
            for i in 0..5 {
                thread::sleep(Duration::from_millis(20)); // far beyond the spin
                tx.send(&i).unwrap();
            }
        });
        let start = Instant::now();
        for i in 0..5 {
            assert_eq!(rx.recv().unwrap(), i);
        }
        assert!(start.elapsed() >= Duration::from_millis(100));
        sender.join().unwrap();
        assert!(rx.recv().unwrap_err().is_disconnected());
    });
}

#[test]
fn a_large_message_arriving_during_a_spin_is_received_whole() {
    bounded(|| {
        let (a, b) = procwire::duplex::<(), ()>().unwrap();
        b.set_spin(Some(Duration::from_millis(5)));
        let data: Vec<u64> = (0..1 << 20).collect();
        let expect = data.clone();
        let sender = thread::spawn(move || {
            for _ in 0..3 {
                a.send_bytes(&data).unwrap();
            }
            a
        });
        let mut out = vec![0u64; 1 << 20];
        for _ in 0..3 {
            assert_eq!(b.recv_bytes_into(&mut out).unwrap(), 8 << 20);
            assert_eq!(out, expect);
        }
        drop(sender.join().unwrap());
        assert!(b.recv_bytes().unwrap_err().is_disconnected());
    });
}

#[test]
fn the_spin_setting_reads_back_and_zero_means_none() {
    let (_a, b) = procwire::duplex::<u8, u8>().unwrap();
    assert_eq!(b.spin(), None);
    b.set_spin(Some(SPIN));
    assert_eq!(b.spin(), Some(SPIN));
    b.set_spin(Some(Duration::ZERO));
    assert_eq!(b.spin(), None);
}
