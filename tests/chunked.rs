//! Property: a stream of random messages, cut into random chunks and written raw through a
//! real transport, is received as exactly the messages sent, whatever mix of receive
//! methods reads it.

mod util;

use std::fs::File;
use std::io::Write;
use std::thread;
use std::time::Duration;

use procwire::{Connection, Error, Listener, Receiver};
use proptest::prelude::*;
use util::{bounded, raw, SOON};

/// The transports the stream crosses.
#[derive(Debug, Clone, Copy)]
enum Transport {
    Socketpair,
    Pipe,
    Tcp,
    Unix,
}

/// A receiver and the raw write end of its transport; the procwire sending end is gone.
fn open(transport: Transport) -> (Receiver<()>, File) {
    let accept = |listener: Listener| {
        let client = thread::spawn({
            let addr = listener.local_addr().clone();
            move || procwire::Client::connect::<(), (), _>(&addr).unwrap()
        });
        let server: Connection<(), ()> = listener.accept().unwrap();
        let client = client.join().unwrap();
        (server.split().1, raw(&client))
    };
    match transport {
        Transport::Socketpair => {
            let (a, b) = procwire::duplex::<(), ()>().unwrap();
            (a.split().1, raw(&b))
        }
        Transport::Pipe => {
            let (tx, rx) = procwire::pipe::<()>().unwrap();
            (rx, raw(&tx))
        }
        Transport::Tcp => accept(Listener::bind("127.0.0.1:0").unwrap()),
        Transport::Unix => {
            let dir = std::env::temp_dir().join(format!(
                "pw-chunked-{}-{:?}",
                std::process::id(),
                thread::current().id()
            ));
            std::fs::create_dir_all(&dir).unwrap();
            let listener = Listener::bind(dir.join("s").display().to_string()).unwrap();
            let out = accept(listener); // dropped: the socket file is removed
            std::fs::remove_dir(&dir).unwrap();
            out
        }
    }
}

/// The wire bytes of `messages`, each with a short or (when `long`) escaped header.
fn stream(messages: &[Vec<u8>], long: &[bool]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        if long[i % long.len()] {
            out.extend_from_slice(&(-1i32).to_be_bytes());
            out.extend_from_slice(&(m.len() as u64).to_be_bytes());
        } else {
            out.extend_from_slice(&(m.len() as i32).to_be_bytes());
        }
        out.extend_from_slice(m);
    }
    out
}

/// Receives one message with the method `kind` picks.
fn receive(rx: &Receiver<()>, kind: u8, expected_len: usize) -> Vec<u8> {
    match kind {
        0 => rx.recv_bytes().unwrap(),
        1 => {
            let mut buf = vec![0u8; expected_len + 3];
            let n = rx.recv_bytes_into(&mut buf).unwrap();
            buf.truncate(n);
            buf
        }
        2 => rx.recv_bytes_timeout(SOON).unwrap(),
        _ => {
            assert!(rx.poll(Some(SOON)).unwrap(), "poll timed out");
            rx.try_recv_bytes().unwrap()
        }
    }
}

fn message() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => prop::collection::vec(any::<u8>(), 0..50),
        3 => prop::collection::vec(any::<u8>(), 0..3000),
        1 => prop::collection::vec(any::<u8>(), 60_000..200_000),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn random_messages_cut_into_random_chunks_arrive_exactly(
        messages in prop::collection::vec(message(), 0..30),
        long in prop::collection::vec(any::<bool>(), 1..8),
        cuts in prop::collection::vec(1usize..5000, 1..40),
        kinds in prop::collection::vec(0u8..4, 1..30),
        transport in prop_oneof![
            Just(Transport::Socketpair),
            Just(Transport::Pipe),
            Just(Transport::Tcp),
            Just(Transport::Unix),
        ],
    ) {
        let bytes = stream(&messages, &long);
        let sent = messages.clone();
        let got = bounded(move || {
            let (rx, mut w) = open(transport);
            let writer = thread::spawn(move || {
                let mut at = 0;
                for (i, cut) in cuts.iter().cycle().enumerate() {
                    if at == bytes.len() {
                        break;
                    }
                    let end = bytes.len().min(at + cut);
                    w.write_all(&bytes[at..end]).unwrap();
                    at = end;
                    if i % 7 == 0 {
                        thread::sleep(Duration::from_millis(1));
                    }
                }
            });
            let got: Vec<Vec<u8>> = sent
                .iter()
                .enumerate()
                .map(|(i, m)| receive(&rx, kinds[i % kinds.len()], m.len()))
                .collect();
            writer.join().unwrap();
            let end = rx.recv_bytes().unwrap_err();
            assert!(matches!(end, Error::Disconnected), "after the last message: {end:?}");
            got
        });
        prop_assert_eq!(got, messages);
    }
}
