//! Load: 64 clients × 10,000 messages each into one `WaitSet` server thread, over TCP and
//! over Unix sockets. Every message must arrive, in order per connection; clients that
//! vanish part-way (cleanly, or in the middle of a frame) must be removed; and the
//! process's open-descriptor count must come back to where it started.
//!
//! The descriptor count is process-wide, so these tests live in their own binary and take
//! a lock: nothing else may open or close descriptors while one runs.

mod util;

use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use procwire::{
    Address, Client, Connection, Error, Family, Listener, WaitSet, WaitSource, Waitable,
};
use serde::{Deserialize, Serialize};
use util::{bounded, open_fds, raw, SOON};

const CLIENTS: u32 = 64;
const MESSAGES: u32 = 10_000;

static SERIAL: Mutex<()> = Mutex::new(());

#[derive(Debug, Serialize, Deserialize)]
enum Up {
    Hello { client: u32 },
    Data { seq: u32, check: u64 },
    Done,
}

/// How a client ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// Sends all its messages and `Done`, and checks the server's count.
    Finishes,
    /// Disconnects after `n` messages.
    Vanishes(u32),
    /// Writes half a frame after `n` messages, then disconnects.
    VanishesMidFrame(u32),
}

fn ending(client: u32) -> Ending {
    let n = (client * 1_237) % MESSAGES;
    match client % 16 {
        5 => Ending::Vanishes(n),
        11 => Ending::VanishesMidFrame(n),
        _ => Ending::Finishes,
    }
}

fn check(client: u32, seq: u32) -> u64 {
    (u64::from(client) << 32 | u64::from(seq)).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

fn run_client(addr: &Address, client: u32) {
    let conn: Connection<Up, u32> = Client::connect(addr).unwrap();
    conn.send(&Up::Hello { client }).unwrap();
    let count = match ending(client) {
        Ending::Finishes => MESSAGES,
        Ending::Vanishes(n) | Ending::VanishesMidFrame(n) => n,
    };
    for seq in 0..count {
        conn.send(&Up::Data {
            seq,
            check: check(client, seq),
        })
        .unwrap();
    }
    match ending(client) {
        Ending::Finishes => {
            conn.send(&Up::Done).unwrap();
            assert_eq!(conn.recv_timeout(SOON).unwrap(), MESSAGES);
        }
        Ending::Vanishes(_) => {}
        Ending::VanishesMidFrame(_) => raw(&conn).write_all(&[0, 0, 0, 9, 1, 2]).unwrap(),
    }
}

enum Peer {
    Listener(Listener),
    Client(Connection<u32, Up>),
}

impl Waitable for Peer {
    fn wait_source(&self) -> WaitSource<'_> {
        match self {
            Peer::Listener(l) => l.wait_source(),
            Peer::Client(c) => c.wait_source(),
        }
    }
}

/// What the server saw of one client.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Seen {
    received: u32,
    done: bool,
    truncated: bool,
}

/// Serves until `CLIENTS` clients have come and gone; returns what each one sent.
fn serve(listener: Listener) -> HashMap<u32, Seen> {
    const LISTENER: u64 = u64::MAX;
    let mut set: WaitSet<u64, Peer> = WaitSet::new().unwrap();
    set.insert(LISTENER, Peer::Listener(listener)).unwrap();
    let mut who: HashMap<u64, u32> = HashMap::new();
    let mut seen: HashMap<u32, Seen> = HashMap::new();
    let (mut ready, mut next_key, mut gone) = (Vec::new(), 0u64, 0);
    let deadline = Instant::now() + Duration::from_secs(50);
    while gone < CLIENTS {
        assert!(
            Instant::now() < deadline,
            "{gone} of {CLIENTS} clients finished"
        );
        set.wait(&mut ready, Some(SOON)).unwrap();
        for &key in &ready {
            let conn = match set.get(&key) {
                Some(Peer::Listener(l)) => {
                    let conn = l.accept().unwrap();
                    set.insert(next_key, Peer::Client(conn)).unwrap();
                    next_key += 1;
                    continue;
                }
                Some(Peer::Client(c)) => c,
                None => unreachable!("ready keys are in the set"),
            };
            if drain(conn, key, &mut who, &mut seen) {
                set.remove(&key);
                gone += 1;
            }
        }
    }
    assert_eq!(set.len(), 1, "only the listener is left");
    seen
}

/// Receives everything `conn` has buffered; `true` once the client is gone.
fn drain(
    conn: &Connection<u32, Up>,
    key: u64,
    who: &mut HashMap<u64, u32>,
    seen: &mut HashMap<u32, Seen>,
) -> bool {
    loop {
        let msg = match conn.try_recv() {
            Ok(msg) => msg,
            Err(Error::Empty) => return false,
            Err(e) if e.is_disconnected() => {
                if matches!(e, Error::Truncated { .. }) {
                    seen.get_mut(&who[&key]).unwrap().truncated = true;
                }
                return true;
            }
            Err(e) => panic!("{e}"),
        };
        match msg {
            Up::Hello { client } => {
                who.insert(key, client);
                seen.insert(client, Seen::default());
            }
            Up::Data { seq, check: c } => {
                let client = who[&key];
                let s = seen.get_mut(&client).unwrap();
                assert_eq!(seq, s.received, "client {client}: out of order");
                assert_eq!(c, check(client, seq), "client {client}: corrupted");
                s.received += 1;
            }
            Up::Done => {
                let s = seen.get_mut(&who[&key]).unwrap();
                s.done = true;
                conn.send(&s.received).unwrap();
            }
        }
    }
}

fn load_test(addr: &str) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let addr = addr.to_string();
    bounded(move || {
        let before = open_fds();
        let start = Instant::now();
        let listener = Listener::bind(addr.as_str()).unwrap();
        let addr = listener.local_addr().clone();
        let server = thread::spawn(move || serve(listener));
        let clients: Vec<_> = (0..CLIENTS)
            .map(|client| {
                let addr = addr.clone();
                thread::spawn(move || run_client(&addr, client))
            })
            .collect();
        for c in clients {
            c.join().unwrap();
        }
        let seen = server.join().unwrap();
        assert_eq!(seen.len(), CLIENTS as usize);
        for (client, s) in seen {
            let want = match ending(client) {
                Ending::Finishes => Seen {
                    received: MESSAGES,
                    done: true,
                    truncated: false,
                },
                Ending::Vanishes(n) => Seen {
                    received: n,
                    ..Seen::default()
                },
                Ending::VanishesMidFrame(n) => Seen {
                    received: n,
                    truncated: true,
                    ..Seen::default()
                },
            };
            assert_eq!(s, want, "client {client}");
        }
        assert_eq!(open_fds(), before, "descriptors leaked");
        println!(
            "{addr}: {} messages in {:.2?}",
            CLIENTS * MESSAGES,
            start.elapsed()
        );
    });
}

#[test]
fn sixty_four_tcp_clients_send_ten_thousand_messages_each_into_one_waitset() {
    load_test("127.0.0.1:0");
}

#[test]
fn sixty_four_unix_clients_send_ten_thousand_messages_each_into_one_waitset() {
    let addr = Address::arbitrary(Family::Unix).unwrap();
    load_test(&addr.to_string());
}

enum Thing {
    Listener(Listener),
    Conn(Connection<u8, u8>),
    Child(procwire::Child),
}

impl Waitable for Thing {
    fn wait_source(&self) -> WaitSource<'_> {
        match self {
            Thing::Listener(l) => l.wait_source(),
            Thing::Conn(c) => c.wait_source(),
            Thing::Child(p) => p.wait_source(),
        }
    }
}

fn wait_for_key(set: &mut WaitSet<u32, Thing>, key: u32) {
    let mut ready = Vec::new();
    let deadline = Instant::now() + SOON;
    while !ready.contains(&key) {
        assert!(Instant::now() < deadline, "{key} never became ready");
        set.wait(&mut ready, Some(SOON)).unwrap();
    }
}

#[test]
fn waitsets_close_what_they_opened_for_listeners_children_and_connections() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    bounded(|| {
        let before = open_fds();
        for _ in 0..20 {
            let listener = Listener::bind("127.0.0.1:0").unwrap();
            let (a, b) = procwire::duplex::<u8, u8>().unwrap();
            let (child, _conn) =
                procwire::spawn::<(), ()>(std::process::Command::new("true")).unwrap();
            assert!(procwire::wait(&[&listener, &a], Some(Duration::ZERO))
                .unwrap()
                .is_empty());
            let mut set = WaitSet::new().unwrap();
            set.insert(0, Thing::Listener(listener)).unwrap();
            set.insert(1, Thing::Conn(a)).unwrap();
            set.insert(2, Thing::Child(child)).unwrap();
            wait_for_key(&mut set, 2);
            let Some(Thing::Child(mut child)) = set.remove(&2) else {
                unreachable!()
            };
            assert!(child.wait().unwrap().success());
            drop(b);
            wait_for_key(&mut set, 1);
            drop(set); // still holding the listener and the connection
        }
        assert_eq!(open_fds(), before, "descriptors leaked");
    });
}

#[test]
fn descriptors_that_waitsets_and_children_open_are_close_on_exec() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    bounded(|| {
        let inheritable = util::inheritable_fds();
        let mut sleep = std::process::Command::new("sleep");
        sleep.arg("5");
        let (child, _conn) = procwire::spawn::<(), ()>(sleep).unwrap();
        let mut set = WaitSet::new().unwrap();
        set.insert(0, Thing::Listener(Listener::bind("127.0.0.1:0").unwrap()))
            .unwrap();
        set.insert(1, Thing::Child(child)).unwrap();
        assert_eq!(util::inheritable_fds(), inheritable);
        let Some(Thing::Child(mut child)) = set.remove(&1) else {
            unreachable!()
        };
        child.kill().unwrap();
        child.wait().unwrap();
    });
}
