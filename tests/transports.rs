//! The contract suite: ONE set of behaviours, run over every transport procwire offers —
//! socketpair, anonymous pipe (its one direction), TCP over IPv4 and IPv6, Unix path,
//! Linux abstract socket and named pipes (FIFO). Every test prints the transports it ran.

use std::io::Write;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::thread;
use std::time::Duration;

use procwire::{Client, Connection, Error, Listener, Receiver, Sender};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Shape {
    Point,
    Circle { r: f64 },
    Poly(Vec<(i32, i32)>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Msg {
    id: u64,
    name: String,
    shape: Shape,
    data: Vec<u8>,
}

const KEY: &str = "contract-key";
const WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq)]
enum Transport {
    Socketpair,
    Pipe,
    Tcp4,
    Tcp6,
    UnixPath,
    Abstract,
    Fifo,
}

const ALL: [Transport; 7] = [
    Transport::Socketpair,
    Transport::Pipe,
    Transport::Tcp4,
    Transport::Tcp6,
    Transport::UnixPath,
    Transport::Abstract,
    Transport::Fifo,
];

impl Transport {
    fn has_listener(self) -> bool {
        !matches!(self, Transport::Socketpair | Transport::Pipe)
    }
    fn duplex(self) -> bool {
        self != Transport::Pipe
    }
}

/// The transports this host can run: all of them, less IPv6 where `::1` is missing (said
/// out loud).
fn transports() -> Vec<Transport> {
    static V6: OnceLock<bool> = OnceLock::new();
    let v6 = *V6.get_or_init(|| {
        let ok = std::net::TcpListener::bind("[::1]:0").is_ok();
        if !ok {
            eprintln!("NOTE: this host has no ::1; the Tcp6 transport is not run");
        }
        ok
    });
    ALL.into_iter()
        .filter(|&t| t != Transport::Tcp6 || v6)
        .collect()
}

fn scratch_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("pw-contract-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    })
    .clone()
}

fn unique() -> usize {
    static N: AtomicUsize = AtomicUsize::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

type Conn = Connection<Msg, Msg>;

/// Two connected duplex ends through a listener at `addr`, authenticated with `keys`.
fn through_listener(
    addr: String,
    keys: (Option<&str>, Option<&str>),
) -> procwire::Result<(Conn, Conn)> {
    let mut lb = Listener::builder();
    if let Some(k) = keys.0 {
        lb = lb.authkey(k);
    }
    let listener = lb.bind(addr.as_str())?;
    let local = listener.local_addr().clone();
    let server = thread::spawn(move || listener.accept::<Msg, Msg>());
    let mut cb = Client::builder().connect_timeout(WAIT);
    if let Some(k) = keys.1 {
        cb = cb.authkey(k);
    }
    let client = cb.connect(&local);
    let server = server.join().unwrap();
    Ok((client?, server?))
}

fn listener_addr(t: Transport) -> String {
    let n = unique();
    let dir = scratch_dir();
    match t {
        Transport::Tcp4 => "127.0.0.1:0".into(),
        Transport::Tcp6 => "[::1]:0".into(),
        Transport::UnixPath => dir.join(format!("s{n}.sock")).display().to_string(),
        Transport::Abstract => format!("@pw-contract-{}-{n}", std::process::id()),
        Transport::Fifo => format!("fifo://{}", dir.join(format!("f{n}")).display()),
        Transport::Socketpair | Transport::Pipe => unreachable!(),
    }
}

/// One direction of a transport: what `tx` sends `rx` receives. `keep` holds the other
/// halves of both ends; dropping `tx` and `tx_side` closes the sending end entirely.
struct Link {
    tx: Sender<Msg>,
    rx: Receiver<Msg>,
    tx_side: Option<Receiver<Msg>>,
    rx_side: Option<Sender<Msg>>,
}

impl Link {
    fn from_ends(a: Conn, b: Conn) -> Link {
        let (a_tx, a_rx) = a.split();
        let (b_tx, b_rx) = b.split();
        Link {
            tx: a_tx,
            rx: b_rx,
            tx_side: Some(a_rx),
            rx_side: Some(b_tx),
        }
    }

    /// Closes the sending end entirely.
    fn hang_up(self) -> Receiver<Msg> {
        drop((self.tx, self.tx_side));
        self.rx
    }
}

/// A fresh link over `t`; `reverse` makes the accepting/second end the sender.
fn link(t: Transport, reverse: bool) -> Link {
    let (a, b) = match t {
        Transport::Pipe => {
            let (tx, rx) = procwire::pipe::<Msg>().unwrap();
            return Link {
                tx,
                rx,
                tx_side: None,
                rx_side: None,
            };
        }
        Transport::Socketpair => procwire::duplex::<Msg, Msg>().unwrap(),
        _ => through_listener(listener_addr(t), (None, None)).unwrap(),
    };
    if reverse {
        Link::from_ends(b, a)
    } else {
        Link::from_ends(a, b)
    }
}

/// Every link of every transport: both directions of duplex ones.
fn each_link(test: &str, mut body: impl FnMut(Transport, Link)) {
    let mut ran = Vec::new();
    for t in transports() {
        body(t, link(t, false));
        if t.duplex() {
            body(t, link(t, true));
        }
        ran.push(format!("{t:?}"));
    }
    println!("{test}: ran over {}", ran.join(", "));
}

fn msg(id: u64) -> Msg {
    Msg {
        id,
        name: format!("message {id}"),
        shape: match id % 3 {
            0 => Shape::Point,
            1 => Shape::Circle { r: id as f64 / 3.0 },
            _ => Shape::Poly(vec![(id as i32, -1), (0, i32::MAX)]),
        },
        data: (0..(id % 50) as u8).collect(),
    }
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

#[test]
fn messages_arrive_in_order_as_typed_values() {
    each_link("order", |t, l| {
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
    });
}

#[test]
fn empty_and_64_mib_messages_arrive_whole() {
    each_link("empty and 64 MiB", |t, l| {
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
    });
}

#[test]
fn recv_bytes_into_fits_exactly_or_reports_buffer_too_short() {
    each_link("recv_bytes_into", |t, l| {
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
    });
}

#[test]
fn end_of_stream_is_disconnected_between_messages_and_truncated_inside_one() {
    each_link("disconnected vs truncated", |t, l| {
        l.tx.send(&msg(1)).unwrap();
        let rx = l.hang_up();
        assert_eq!(rx.recv_timeout(WAIT).unwrap(), msg(1), "{t:?}");
        assert!(
            matches!(rx.recv_timeout(WAIT), Err(Error::Disconnected)),
            "{t:?}"
        );
    });
    each_link("truncated", |t, l| {
        let mut raw = std::fs::File::from(l.tx.as_fd().try_clone_to_owned().unwrap());
        raw.write_all(b"\x00\x00\x00\x09hello").unwrap();
        drop(raw);
        let rx = l.hang_up();
        match rx.recv_bytes() {
            Err(Error::Truncated {
                received: 9,
                expected: 13,
            }) => {}
            other => panic!("{t:?}: {other:?}"),
        }
    });
}

#[test]
fn poll_and_timeouts_wait_for_whole_messages() {
    each_link("poll and timeouts", |t, l| {
        assert!(!l.rx.poll(Some(Duration::ZERO)).unwrap(), "{t:?}");
        assert!(
            !l.rx.poll(Some(Duration::from_millis(20))).unwrap(),
            "{t:?}"
        );
        assert!(matches!(l.rx.try_recv(), Err(Error::Empty)), "{t:?}");
        let err = l.rx.recv_timeout(Duration::from_millis(20)).unwrap_err();
        assert!(matches!(err, Error::Timeout), "{t:?}");
        l.tx.send(&msg(5)).unwrap();
        assert!(l.rx.poll(Some(WAIT)).unwrap(), "{t:?}");
        assert_eq!(l.rx.try_recv().unwrap(), msg(5), "{t:?}");
    });
}

#[test]
fn ten_thousand_small_messages_each_way_at_once() {
    let mut ran = Vec::new();
    for t in transports() {
        let Link {
            tx,
            rx,
            tx_side,
            rx_side,
        } = link(t, false);
        let back = match (tx_side, rx_side) {
            (Some(a_rx), Some(b_tx)) => Some((b_tx, a_rx)),
            _ => None,
        };
        let forward = thread::spawn(move || {
            for i in 0..10_000u64 {
                tx.send(&msg(i)).unwrap_or_else(|e| panic!("{t:?}: {e}"));
            }
            tx
        });
        let backward = back.map(|(b_tx, a_rx)| {
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
                assert!(a_rx.poll(Some(WAIT)).unwrap());
                assert_eq!(a_rx.recv_bytes_into(&mut b).unwrap(), 8);
                assert_eq!(u64::from_le_bytes(b), i, "{t:?}");
            }
            drop(sending.join().unwrap());
        }
        drop(forward.join().unwrap());
        ran.push(format!("{t:?}"));
    }
    println!("10,000 each way: ran over {}", ran.join(", "));
}

#[test]
fn authentication_succeeds_with_the_right_key_and_fails_with_a_wrong_one() {
    let mut ran = Vec::new();
    for t in transports().into_iter().filter(|t| t.has_listener()) {
        let (a, b) = through_listener(listener_addr(t), (Some(KEY), Some(KEY))).unwrap();
        a.send(&msg(3)).unwrap();
        assert_eq!(b.recv_timeout(WAIT).unwrap(), msg(3), "{t:?}");
        let err = through_listener(listener_addr(t), (Some(KEY), Some("wrong"))).unwrap_err();
        assert!(
            matches!(err, Error::AuthenticationFailed(_)),
            "{t:?}: {err:?}"
        );
        ran.push(format!("{t:?}"));
    }
    println!("authentication: ran over {}", ran.join(", "));
}
