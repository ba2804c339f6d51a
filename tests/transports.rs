//! The contract suite: ONE set of behaviours, each run over every transport procwire
//! offers (socketpair, anonymous pipe, TCP over IPv4 and IPv6, Unix path, Linux abstract
//! socket, named pipes), as one `#[test]` per behaviour and transport, so a failure names
//! both: `order::fifo`, `descriptors::tcp4`. Transports come from `tests/util/transport.rs`
//! with their capabilities; a behaviour that needs one a transport lacks checks the
//! documented refusal there instead.

mod util;

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::sync::OnceLock;
use std::thread;
use std::time::Duration;

use procwire::{Error, WaitSet};
use util::transport::{msg, through_listener_over, Link, Transport, WAIT};
use util::{bounded, raw};

/// Generates `mod <behaviour> { #[test] fn <transport>() }` for each listed transport.
macro_rules! contract {
    ($($behaviour:ident: [$($t:ident),* $(,)?];)*) => {$(
        mod $behaviour {
            $(
                #[test]
                fn $t() {
                    super::run(stringify!($behaviour), stringify!($t), super::$behaviour);
                }
            )*
        }
    )*};
}

contract! {
    order: [socketpair, pipe, tcp4, tcp6, unix_path, abstract_socket, fifo, tls];
    empty_and_64_mib: [socketpair, pipe, tcp4, tcp6, unix_path, abstract_socket, fifo, tls];
    recv_bytes_into: [socketpair, pipe, tcp4, tcp6, unix_path, abstract_socket, fifo, tls];
    end_of_stream: [socketpair, pipe, tcp4, tcp6, unix_path, abstract_socket, fifo, tls];
    waits: [socketpair, pipe, tcp4, tcp6, unix_path, abstract_socket, fifo, tls];
    both_ways_at_once: [socketpair, pipe, tcp4, tcp6, unix_path, abstract_socket, fifo, tls];
    timed_sends: [socketpair, pipe, tcp4, tcp6, unix_path, abstract_socket, fifo, tls];
    descriptors: [socketpair, pipe, tcp4, tcp6, unix_path, abstract_socket, fifo, tls];
    files: [socketpair, pipe, tcp4, tcp6, unix_path, abstract_socket, fifo, tls];
    wait_and_wait_set: [socketpair, pipe, tcp4, tcp6, unix_path, abstract_socket, fifo, tls];
    hostile_headers: [socketpair, pipe, tcp4, tcp6, unix_path, abstract_socket, fifo, tls];
    // A handshake needs both directions: every duplex transport.
    authentication: [socketpair, tcp4, tcp6, unix_path, abstract_socket, fifo, tls];
}

/// Runs `behaviour` over the transport named `name`, bounded in time; says so out loud
/// when this host cannot run the transport.
fn run(behaviour: &str, name: &str, body: fn(Transport)) {
    let t = match name {
        "socketpair" => Transport::Socketpair,
        "pipe" => Transport::Pipe,
        "tcp4" => Transport::Tcp4,
        "tcp6" => Transport::Tcp6,
        "unix_path" => Transport::UnixPath,
        "abstract_socket" => Transport::Abstract,
        "fifo" => Transport::Fifo,
        "tls" => Transport::Tls,
        other => panic!("no transport {other}"),
    };
    if !t.available() {
        println!("{behaviour} over {t:?}: NOT RUN, this host cannot make it");
        return;
    }
    bounded(move || body(t));
    println!("{behaviour} over {t:?}: ran");
}

fn big() -> &'static [u8] {
    static BIG: OnceLock<Vec<u8>> = OnceLock::new();
    BIG.get_or_init(|| {
        let mut v = vec![0u8; 64 << 20];
        for (i, chunk) in v.chunks_mut(8).enumerate() {
            chunk.copy_from_slice(&(i as u64).to_le_bytes());
        }
        v
    })
}

/// Messages arrive in order, as the typed values sent.
fn order(t: Transport) {
    for l in Link::each(t) {
        let sender = thread::spawn(move || {
            for i in 0..1000 {
                l.tx.send(&msg(i)).unwrap();
            }
            (l.tx, l.tx_side)
        });
        for i in 0..1000 {
            assert_eq!(l.rx.recv_timeout(WAIT).unwrap(), msg(i), "{t:?}");
        }
        drop(sender.join().unwrap());
    }
}

/// An empty message and one of 64 MiB arrive whole, and the next one after them.
fn empty_and_64_mib(t: Transport) {
    for l in Link::each(t) {
        let sender = thread::spawn(move || {
            l.tx.send_bytes::<u8>(&[]).unwrap();
            l.tx.send_bytes(big()).unwrap();
            l.tx.send_bytes(b"after").unwrap();
            (l.tx, l.tx_side)
        });
        assert!(l.rx.poll(Some(WAIT)).unwrap());
        assert_eq!(l.rx.recv_bytes().unwrap(), b"", "{t:?}");
        let mut out = vec![0u8; 64 << 20];
        assert_eq!(l.rx.recv_bytes_into(&mut out).unwrap(), 64 << 20, "{t:?}");
        assert!(out == big(), "{t:?}: 64 MiB payload differs");
        assert_eq!(l.rx.recv_bytes().unwrap(), b"after", "{t:?}");
        drop(sender.join().unwrap());
    }
}

/// `recv_bytes_into` fills a slice that fits exactly, and a too-short one gets the whole
/// message back in `BufferTooShort` while the slice stays untouched.
fn recv_bytes_into(t: Transport) {
    for l in Link::each(t) {
        l.tx.send_bytes(&[1.5f64, 2.5, 3.5]).unwrap();
        l.tx.send_bytes(&[7u32; 5]).unwrap();
        l.tx.send(&msg(9)).unwrap();
        let mut exact = [0f64; 3];
        assert_eq!(l.rx.recv_bytes_into(&mut exact).unwrap(), 24, "{t:?}");
        assert_eq!(exact, [1.5, 2.5, 3.5]);
        let mut small = [0u32; 4];
        match l.rx.recv_bytes_into(&mut small) {
            Err(Error::BufferTooShort(whole)) => assert_eq!(whole.len(), 20, "{t:?}"),
            other => panic!("{t:?}: {other:?}"),
        }
        assert_eq!(small, [0; 4], "{t:?}: a too-short buffer is left untouched");
        assert_eq!(l.rx.recv().unwrap(), msg(9), "{t:?}");
    }
}

/// The end of the stream is `Disconnected` between messages and `Truncated`, with the
/// exact counts, inside one.
fn end_of_stream(t: Transport) {
    for l in Link::each(t) {
        l.tx.send(&msg(1)).unwrap();
        let rx = l.hang_up();
        assert_eq!(rx.recv_timeout(WAIT).unwrap(), msg(1), "{t:?}");
        let err = rx.recv_timeout(WAIT).unwrap_err();
        assert!(matches!(err, Error::Disconnected), "{t:?}: {err:?}");
    }
    if !t.runs_raw("end_of_stream") {
        return;
    }
    for l in Link::each(t) {
        raw(&l.tx).write_all(b"\x00\x00\x00\x09hello").unwrap();
        let rx = l.hang_up();
        match rx.recv_bytes() {
            Err(Error::Truncated {
                received: 9,
                expected: 13,
            }) => {}
            other => panic!("{t:?}: {other:?}"),
        }
    }
}

/// Every receive kind in its three waits: `try_` never waits and loses nothing,
/// `_timeout` waits at most its timeout, and both take a message once it is whole.
fn waits(t: Transport) {
    for l in Link::each(t) {
        let rx = &l.rx;
        rx.enable_fds().unwrap();
        assert!(!rx.poll(Some(Duration::ZERO)).unwrap(), "{t:?}");
        assert!(!rx.poll(Some(Duration::from_millis(20))).unwrap(), "{t:?}");
        let short = Duration::from_millis(20);
        let mut out = [0u8; 64];
        assert!(matches!(rx.try_recv(), Err(Error::Empty)), "{t:?}");
        assert!(matches!(rx.try_recv_bytes(), Err(Error::Empty)));
        assert!(matches!(
            rx.try_recv_bytes_into(&mut out),
            Err(Error::Empty)
        ));
        assert!(matches!(rx.try_recv_fds(), Err(Error::Empty)));
        assert!(matches!(rx.try_recv_bytes_fds(), Err(Error::Empty)));
        assert!(matches!(rx.recv_timeout(short), Err(Error::Timeout)));
        assert!(matches!(rx.recv_bytes_timeout(short), Err(Error::Timeout)));
        assert!(matches!(
            rx.recv_bytes_into_timeout(&mut out, short),
            Err(Error::Timeout)
        ));
        assert!(matches!(rx.recv_fds_timeout(short), Err(Error::Timeout)));
        assert!(matches!(
            rx.recv_bytes_fds_timeout(short),
            Err(Error::Timeout)
        ));
        // Half a message is not a message: it stays buffered for the next receive.
        if t.runs_raw("waits") {
            let whole = util::frame(b"0123456789");
            let mut w = raw(&l.tx);
            w.write_all(&whole[..7]).unwrap();
            assert!(
                matches!(rx.recv_bytes_timeout(short), Err(Error::Timeout)),
                "{t:?}"
            );
            w.write_all(&whole[7..]).unwrap();
            assert_eq!(rx.recv_bytes_timeout(WAIT).unwrap(), b"0123456789", "{t:?}");
        }
        for i in 0..5 {
            l.tx.send(&msg(i)).unwrap();
        }
        assert!(rx.poll(Some(WAIT)).unwrap(), "{t:?}");
        assert_eq!(rx.try_recv().unwrap(), msg(0), "{t:?}");
        assert_eq!(rx.recv_fds_timeout(WAIT).unwrap().0, msg(1), "{t:?}");
        assert_eq!(rx.recv_bytes_fds_timeout(WAIT).unwrap().1.len(), 0, "{t:?}");
        assert!(rx.recv_bytes_timeout(WAIT).is_ok(), "{t:?}");
        assert!(
            rx.recv_bytes_into_timeout(&mut out, WAIT).unwrap() > 0,
            "{t:?}"
        );
    }
}

/// 10,000 small messages each way at once, typed one way and raw the other.
fn both_ways_at_once(t: Transport) {
    let Link {
        tx,
        rx,
        tx_side,
        rx_side,
    } = Link::new(t, false);
    let forward = thread::spawn(move || {
        for i in 0..10_000u64 {
            tx.send(&msg(i)).unwrap_or_else(|e| panic!("{t:?}: {e}"));
        }
        tx
    });
    let backward = tx_side.zip(rx_side).map(|(a_rx, b_tx)| {
        let sending = thread::spawn(move || {
            for i in 0..10_000u64 {
                b_tx.send_bytes(&i.to_le_bytes()).unwrap();
            }
            b_tx
        });
        (sending, a_rx)
    });
    for i in 0..10_000u64 {
        let got = rx
            .recv_timeout(WAIT)
            .unwrap_or_else(|e| panic!("{t:?}: {e}"));
        assert_eq!(got, msg(i), "{t:?}");
    }
    if let Some((sending, a_rx)) = backward {
        for i in 0..10_000u64 {
            let mut b = [0u8; 8];
            assert_eq!(a_rx.recv_bytes_into_timeout(&mut b, WAIT).unwrap(), 8);
            assert_eq!(u64::from_le_bytes(b), i, "{t:?}");
        }
        drop(sending.join().unwrap());
    }
    drop(forward.join().unwrap());
}

/// Sends with a deadline to a peer that does not read: they stop with `Timeout` (nothing
/// of that message sent) or `PartlySent` (its rest kept and sent first), and the reader
/// then gets every message whole and in order.
fn timed_sends(t: Transport) {
    for l in Link::each(t) {
        let piece = |i: usize| vec![i as u8; 100_000];
        let mut sent = 0;
        let partly = loop {
            assert!(sent < 10_000, "{t:?}: the peer's buffer never filled");
            match l
                .tx
                .send_bytes_timeout(&piece(sent), Duration::from_millis(1))
            {
                Ok(()) => sent += 1,
                Err(Error::Timeout) => break false,
                Err(Error::PartlySent { sent: s, len }) => {
                    assert!(s > 0 && s < len, "{t:?}: {s} of {len}");
                    sent += 1;
                    break true;
                }
                Err(e) => panic!("{t:?}: {e:?}"),
            }
        };
        let rx = l.rx;
        let reader = thread::spawn(move || {
            for i in 0..=sent {
                let got = rx.recv_bytes_timeout(WAIT).unwrap();
                let want = if i == sent {
                    b"after".to_vec()
                } else {
                    piece(i)
                };
                assert!(got == want, "message {i} of {sent} arrived changed");
            }
            rx
        });
        l.tx.flush_timeout(WAIT).unwrap();
        l.tx.send_bytes_timeout(b"after", WAIT).unwrap();
        drop(reader.join().unwrap());
        println!("{t:?}: {sent} messages before the deadline, the last partly: {partly}");
    }
}

/// Descriptors travel with messages over Unix-domain sockets, and every other transport
/// refuses them before sending anything, staying usable.
fn descriptors(t: Transport) {
    for l in Link::each(t) {
        l.rx.enable_fds().unwrap();
        let (read, write) = std::os::unix::net::UnixStream::pair().unwrap();
        let sent = l.tx.send_fds(&msg(1), &[write.as_fd()]);
        if !t.descriptors() {
            assert!(
                matches!(sent, Err(Error::Descriptors(_))),
                "{t:?}: {sent:?}"
            );
            let sent = l.tx.send_bytes_fds(b"x", &[write.as_fd()]);
            assert!(
                matches!(sent, Err(Error::Descriptors(_))),
                "{t:?}: {sent:?}"
            );
            l.tx.send(&msg(2)).unwrap();
            assert_eq!(l.rx.recv_timeout(WAIT).unwrap(), msg(2), "{t:?}");
            continue;
        }
        sent.unwrap();
        drop(write);
        l.tx.send_bytes_fds(b"two", &[read.as_fd(), read.as_fd()])
            .unwrap();
        let (value, mut fds) = l.rx.recv_fds_timeout(WAIT).unwrap();
        assert_eq!((value, fds.len()), (msg(1), 1), "{t:?}");
        let (bytes, more) = l.rx.recv_bytes_fds().unwrap();
        assert_eq!((bytes.as_slice(), more.len()), (&b"two"[..], 2), "{t:?}");
        File::from(fds.remove(0)).write_all(b"through").unwrap();
        let mut got = [0u8; 7];
        File::from(more.into_iter().next().unwrap())
            .read_exact(&mut got)
            .unwrap();
        assert_eq!(&got, b"through", "{t:?}");
    }
}

/// A file travels as one message between typed ones, with a limit the receiver names.
fn files(t: Transport) {
    let dir = std::env::temp_dir().join(format!("pw-files-{}-{t:?}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let source = dir.join("source");
    let content: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&source, &content).unwrap();
    for (n, l) in Link::each(t).into_iter().enumerate() {
        let path = source.clone();
        let sender = thread::spawn(move || {
            l.tx.send(&msg(1)).unwrap();
            assert_eq!(l.tx.send_file(&File::open(path).unwrap()).unwrap(), 300_000);
            l.tx.send(&msg(2)).unwrap();
            (l.tx, l.tx_side)
        });
        assert_eq!(l.rx.recv_timeout(WAIT).unwrap(), msg(1), "{t:?}");
        let dest = dir.join(format!("dest{n}"));
        assert_eq!(l.rx.recv_file(&dest, 1 << 20).unwrap(), 300_000, "{t:?}");
        assert!(
            std::fs::read(&dest).unwrap() == content,
            "{t:?}: file differs"
        );
        assert_eq!(l.rx.recv_timeout(WAIT).unwrap(), msg(2), "{t:?}");
        drop(sender.join().unwrap());
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `wait` and a `WaitSet` report a receiver ready only once a whole message is there.
fn wait_and_wait_set(t: Transport) {
    for l in Link::each(t) {
        assert!(procwire::wait(&[&l.rx], Some(Duration::ZERO))
            .unwrap()
            .is_empty());
        if t.runs_raw("wait_and_wait_set") {
            let whole = util::frame(b"ready?");
            let mut w = raw(&l.tx);
            w.write_all(&whole[..5]).unwrap();
            let later = Some(Duration::from_millis(20));
            assert!(procwire::wait(&[&l.rx], later).unwrap().is_empty(), "{t:?}");
            w.write_all(&whole[5..]).unwrap();
        } else {
            l.tx.send_bytes(b"ready?").unwrap();
        }
        assert_eq!(procwire::wait(&[&l.rx], Some(WAIT)).unwrap(), [0], "{t:?}");
        let mut set = WaitSet::new().unwrap();
        set.insert("rx", l.rx).unwrap();
        let mut ready = Vec::new();
        set.wait(&mut ready, Some(WAIT)).unwrap();
        assert_eq!(ready, ["rx"], "{t:?}: a buffered message is ready again");
        assert_eq!(set.get(&"rx").unwrap().recv_bytes().unwrap(), b"ready?");
        set.wait(&mut ready, Some(Duration::ZERO)).unwrap();
        assert!(ready.is_empty(), "{t:?}: {ready:?}");
        l.tx.send(&msg(4)).unwrap();
        set.wait(&mut ready, Some(WAIT)).unwrap();
        assert_eq!(ready, ["rx"], "{t:?}");
    }
}

/// A header over the limit and a negative length stop receiving for good (nothing of
/// the announced size is allocated), while the receiving end can still send.
fn hostile_headers(t: Transport) {
    if !t.runs_raw("hostile_headers") {
        return;
    }
    for (header, oversized) in [
        (&[0xff, 0xff, 0xff, 0xff, 0, 0, 1, 0, 0, 0, 0, 0][..], true),
        (&[0x80, 0, 0, 1][..], false),
    ] {
        for l in Link::each(t) {
            raw(&l.tx).write_all(header).unwrap();
            let err = l.rx.recv_bytes_timeout(WAIT).unwrap_err();
            match (&err, oversized) {
                (Error::MessageTooLarge { len, .. }, true) => assert_eq!(*len, 1 << 40),
                (Error::Protocol(_), false) => {}
                _ => panic!("{t:?}: {err:?}"),
            }
            assert!(
                matches!(l.rx.try_recv_bytes(), Err(Error::Protocol(_))),
                "{t:?}"
            );
            if let (Some(back), Some(side)) = (&l.rx_side, &l.tx_side) {
                back.send(&msg(7)).unwrap();
                assert_eq!(side.recv_timeout(WAIT).unwrap(), msg(7), "{t:?}");
            }
        }
    }
}

/// The handshake succeeds with the right key and fails on both sides with a wrong one.
fn authentication(t: Transport) {
    const KEY: &str = "contract-key";
    if !t.listener() {
        authenticate_pair(t);
        return;
    }
    let tls = t == Transport::Tls;
    let (a, b) = through_listener_over(t.listener_addr(), (Some(KEY), Some(KEY)), tls).unwrap();
    a.send(&msg(3)).unwrap();
    assert_eq!(b.recv_timeout(WAIT).unwrap(), msg(3), "{t:?}");
    let err =
        through_listener_over(t.listener_addr(), (Some(KEY), Some("wrong")), tls).unwrap_err();
    assert!(
        matches!(err, Error::AuthenticationFailed(_)),
        "{t:?}: {err:?}"
    );
}

/// The handshake functions over a pair that has no listener.
fn authenticate_pair(t: Transport) {
    use procwire::auth::{client_handshake, server_handshake};
    for (server_key, client_key, ok) in [("k", "k", true), ("k", "wrong", false)] {
        let (a, b) = procwire::duplex::<u8, u8>().unwrap();
        let server =
            thread::spawn(move || server_handshake(&a, &server_key.into(), WAIT).map(|()| a));
        let client = client_handshake(&b, &client_key.into(), WAIT);
        let server = server.join().unwrap();
        assert_eq!((client.is_ok(), server.is_ok()), (ok, ok), "{t:?}");
        if ok {
            b.send(&1).unwrap();
            assert_eq!(server.unwrap().recv_timeout(WAIT).unwrap(), 1);
        }
    }
}
