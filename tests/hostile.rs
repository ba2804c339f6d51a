//! Hostile peers over real sockets: raw TCP peers that trickle, send garbage or never
//! finish a handshake, and a listener under a barrage of bad handshakes.
//!
//! Framing attacks (huge, negative and truncated lengths) are in `messages.rs` and
//! `alloc.rs`; single malformed handshake messages in `auth.rs`; the fuzz targets in
//! `fuzz/` drive every decoder with arbitrary bytes.

mod util;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use procwire::auth::server_handshake;
use procwire::{Address, AuthKey, Client, Error, Listener};
use util::{assert_times_out, bounded, drive_for, frame, Rejections, SOON};

const KEY: &str = "the right key";

fn tcp(listener: &Listener) -> SocketAddr {
    match listener.local_addr() {
        Address::Tcp(sa) => *sa,
        other => panic!("not TCP: {other}"),
    }
}

/// Writes `bytes` to `peer` one byte every 100 ms on a new thread, stopping quietly once
/// the other side has closed.
fn slowloris(mut peer: TcpStream, bytes: Vec<u8>) -> thread::JoinHandle<usize> {
    thread::spawn(move || {
        let mut sent = 0;
        for b in bytes {
            if peer.write_all(&[b]).is_err() {
                break;
            }
            sent += 1;
            thread::sleep(Duration::from_millis(100));
        }
        sent
    })
}

#[test]
fn a_client_trickling_one_byte_every_100_ms_is_cut_off_at_the_listeners_deadline() {
    bounded(|| {
        let deadline = Duration::from_millis(800);
        let (builder, rejected) =
            Rejections::on(Listener::builder().authkey(KEY).handshake_timeout(deadline));
        let listener = builder.bind("127.0.0.1:0").unwrap();
        let peer = TcpStream::connect(tcp(&listener)).unwrap();
        // A well-formed but slow answer: 44 bytes would take 4.4 s.
        let mut reply = b"{sha256}".to_vec();
        reply.extend_from_slice(&[0x42; 32]);
        let start = Instant::now();
        let trickle = slowloris(peer, frame(&reply));
        let accepted = drive_for(&listener, deadline + Duration::from_millis(400));
        assert!(accepted.is_empty());
        let why = rejected
            .next(SOON)
            .expect("the trickling client was not cut off");
        let cut_at = start.elapsed();
        assert!(why.contains("did not finish the handshake within"), "{why}");
        assert!(
            cut_at >= deadline && cut_at < deadline * 2,
            "cut off after {cut_at:?}"
        );
        let sent = trickle.join().unwrap();
        assert!(sent < 20, "the listener kept reading: {sent} bytes");
    });
}

#[test]
fn a_listener_trickling_one_byte_every_100_ms_is_cut_off_at_the_clients_deadline() {
    bounded(|| {
        let deadline = Duration::from_millis(800);
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        let accepting = thread::spawn(move || {
            let (peer, _) = server.accept().unwrap();
            let mut challenge = b"#CHALLENGE#{sha256}".to_vec();
            challenge.extend_from_slice(&[7; 40]);
            slowloris(peer, frame(&challenge)).join().unwrap()
        });
        let client = Client::builder().authkey(KEY).handshake_timeout(deadline);
        assert_times_out(
            || {
                client
                    .connect::<(), (), _>(addr.to_string().as_str())
                    .map(drop)
            },
            deadline,
        );
        let sent = accepting.join().unwrap();
        assert!(sent < 20, "the client kept reading: {sent} bytes");
    });
}

#[test]
fn garbage_instead_of_a_handshake_fails_authentication_on_either_side() {
    bounded(|| {
        let garbage: Vec<u8> = (0..=255u8).cycle().skip(3).take(200).collect();
        // At the listener: a frame of garbage where the answer should be.
        let (builder, rejected) = Rejections::on(Listener::builder().authkey(KEY));
        let listener = builder.bind("127.0.0.1:0").unwrap();
        let mut peer = TcpStream::connect(tcp(&listener)).unwrap();
        peer.write_all(&frame(&garbage)).unwrap();
        assert!(drive_for(&listener, Duration::from_millis(300)).is_empty());
        let err = rejected.next(SOON).expect("the garbage was not refused");
        assert!(err.starts_with("AuthenticationFailed"), "{err}");
        // At a client: a frame of garbage where the challenge should be.
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        let garbage_server = thread::spawn(move || {
            let (mut peer, _) = server.accept().unwrap();
            peer.write_all(&frame(&garbage)).unwrap();
            let mut rest = Vec::new();
            let _ = peer.read_to_end(&mut rest); // until the client closes
        });
        let err = Client::builder()
            .authkey(KEY)
            .connect::<(), (), _>(addr.to_string().as_str())
            .unwrap_err();
        assert!(matches!(err, Error::AuthenticationFailed(_)), "{err:?}");
        garbage_server.join().unwrap();
    });
}

/// One bad handshake of kind `i % 5`: a wrong key, garbage, a frame claiming 1 GiB, a
/// negative length, or a connection closed at once.
fn bad_client(addr: SocketAddr, i: usize) {
    match i % 5 {
        0 => {
            let r = Client::builder()
                .authkey("a wrong key")
                .connect::<(), (), _>(addr.to_string().as_str());
            assert!(r.is_err(), "a wrong key was accepted");
        }
        1..=3 => {
            let Ok(mut peer) = TcpStream::connect(addr) else {
                return; // the backlog may refuse under load; that is not the listener's fault
            };
            let bytes: &[u8] = match i % 5 {
                1 => b"\x00\x00\x00\x10GET / HTTP/1.1\r\n",
                2 => b"\x40\x00\x00\x00",
                _ => b"\xff\xff\xff\xf0",
            };
            let _ = peer.write_all(bytes);
            let _ = peer.shutdown(std::net::Shutdown::Write);
            let mut rest = Vec::new();
            let _ = peer.read_to_end(&mut rest); // until the listener gives up on us
        }
        _ => drop(TcpStream::connect(addr)),
    }
}

/// A good client's round trip; returns how long it took.
fn good_round_trip(addr: SocketAddr, n: usize) -> Duration {
    let start = Instant::now();
    let conn = Client::builder()
        .authkey(KEY)
        .connect::<usize, usize, _>(addr.to_string().as_str())
        .expect("a good client was refused");
    conn.send(&n).unwrap();
    assert_eq!(conn.recv().unwrap(), n + 1);
    start.elapsed()
}

#[test]
fn a_listener_keeps_serving_good_clients_while_1000_bad_handshakes_hit_it() {
    bounded(|| {
        let refused = Arc::new(AtomicUsize::new(0));
        let listener = {
            let refused = refused.clone();
            Listener::builder()
                .authkey(KEY)
                .handshake_timeout(Duration::from_secs(2))
                .on_rejected(move |_, _| {
                    refused.fetch_add(1, Ordering::SeqCst);
                })
                .bind("127.0.0.1:0")
                .unwrap()
        };
        let addr = tcp(&listener);
        let done = Arc::new(AtomicBool::new(false));
        let server = {
            let done = done.clone();
            thread::spawn(move || {
                while !done.load(Ordering::SeqCst) {
                    // Only authenticated clients come out of `accept`.
                    let conn = listener.accept::<usize, usize>().unwrap();
                    if let Ok(n) = conn.recv_timeout(SOON) {
                        conn.send(&(n + 1)).unwrap();
                    }
                }
            })
        };
        let attackers: Vec<_> = (0..4)
            .map(|t| thread::spawn(move || (0..250).for_each(|i| bad_client(addr, t * 250 + i))))
            .collect();
        let mut slowest = Duration::ZERO;
        for n in 0..50 {
            slowest = slowest.max(good_round_trip(addr, n));
            thread::sleep(Duration::from_millis(10));
        }
        attackers.into_iter().for_each(|a| a.join().unwrap());
        done.store(true, Ordering::SeqCst);
        good_round_trip(addr, 0); // wakes the accept loop so it sees `done`
        server.join().unwrap();
        let refused = refused.load(Ordering::SeqCst);
        eprintln!("50 good clients served, slowest {slowest:?}; {refused} handshakes refused");
        assert!(
            slowest < Duration::from_secs(5),
            "slowest good client: {slowest:?}"
        );
        assert!(
            refused >= 800,
            "only {refused} bad handshakes reached the listener"
        );
    });
}

#[test]
fn silent_clients_do_not_delay_a_listener_that_authenticates_on_worker_threads() {
    bounded(|| {
        // The pattern for servers that must not let one slow client hold up others:
        // accept without a key, and run the handshake on a thread per connection.
        let listener = Listener::bind("127.0.0.1:0").unwrap();
        let addr = tcp(&listener);
        let key = AuthKey::from(KEY);
        let server = thread::spawn(move || {
            let mut served = 0;
            while served < 20 {
                let conn = listener.accept::<usize, usize>().unwrap();
                let key = key.clone();
                let worker = thread::spawn(move || {
                    server_handshake(&conn, &key, Duration::from_secs(3))?;
                    let n = conn.recv_timeout(SOON)?;
                    conn.send(&(n + 1))
                });
                served += 1;
                drop(worker); // detached: a silent client's worker ends at its deadline
            }
        });
        let silent: Vec<TcpStream> = (0..10).map(|_| TcpStream::connect(addr).unwrap()).collect();
        let mut slowest = Duration::ZERO;
        for n in 0..10 {
            slowest = slowest.max(good_round_trip(addr, n));
        }
        server.join().unwrap();
        drop(silent);
        assert!(
            slowest < Duration::from_secs(2),
            "a good client waited {slowest:?} behind silent ones"
        );
    });
}
