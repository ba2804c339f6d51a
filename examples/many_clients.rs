//! Run: cargo run --release --example many_clients
//!
//! One thread serves many clients through a `WaitSet`:
//!
//! - 8 worker processes started with `procwire::spawn`: their connections are served like
//!   any other, and their exits are seen through their pidfds, in the same set;
//! - 24 client threads that connect to a `Listener`, which is in the set too: the server
//!   accepts each newcomer when the listener is ready.
//!
//! Every client sends requests (numbers) and checks the running sums it gets back. Some
//! hang up part-way; one never reads its replies, and the server drops it when a reply
//! does not go out within `REPLY_TIMEOUT`, without the others waiting on it.

use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use procwire::{Client, Connection, Error, Listener, WaitSet, WaitSource, Waitable};
use serde::{Deserialize, Serialize};

const WORKERS: u32 = 8;
const THREADS: u32 = 24;
const REQUESTS: u32 = 2_000;
const REPLY_TIMEOUT: Duration = Duration::from_millis(100);

#[derive(Debug, Serialize, Deserialize)]
enum Request {
    Sum(Vec<u32>),
    Bye,
}

/// The running sums of the request's numbers.
type Reply = Vec<u64>;

fn running_sums(values: &[u32]) -> Reply {
    values
        .iter()
        .scan(0u64, |sum, &v| {
            *sum += u64::from(v);
            Some(*sum)
        })
        .collect()
}

/// What the server waits on.
enum Peer {
    Listener(Listener),
    Client(Connection<Reply, Request>),
    Worker(procwire::Child),
}

impl Waitable for Peer {
    fn wait_source(&self) -> WaitSource<'_> {
        match self {
            Peer::Listener(l) => l.wait_source(),
            Peer::Client(c) => c.wait_source(),
            Peer::Worker(w) => w.wait_source(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Listener,
    Client(u32),
    Worker(u32),
}

#[derive(Debug, Default)]
struct Stats {
    requests: u64,
    accepted: u32,
    said_bye: u32,
    hung_up: u32,
    too_slow: u32,
    workers_exited: u32,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::args().nth(1).as_deref() == Some("--worker") {
        let conn = procwire::from_parent::<Request, Reply>()?;
        return Ok(client(&conn, Behaviour::Polite)?);
    }
    let started = Instant::now();
    let listener = Listener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr().clone();
    let mut set = WaitSet::new()?;
    set.insert(Key::Listener, Peer::Listener(listener))?;
    for i in 0..WORKERS {
        let mut cmd = Command::new(std::env::current_exe()?);
        cmd.arg("--worker");
        let (child, conn) = procwire::spawn::<Reply, Request>(cmd)?;
        set.insert(Key::Worker(i), Peer::Worker(child))?;
        set.insert(Key::Client(i), Peer::Client(conn))?;
    }
    let threads: Vec<_> = (0..THREADS)
        .map(|i| {
            let addr = addr.clone();
            thread::spawn(move || -> procwire::Result<()> {
                let conn: Connection<Request, Reply> = Client::connect(&addr)?;
                let behaviour = match i {
                    7 => Behaviour::NeverReads,
                    i if i % 8 == 3 => Behaviour::HangsUp(i * 10),
                    _ => Behaviour::Polite,
                };
                client(&conn, behaviour)
            })
        })
        .collect();

    let stats = serve(&mut set)?;
    for t in threads {
        match t.join().expect("client thread") {
            Ok(()) => {}
            Err(e) if e.is_disconnected() => {} // the client the server dropped
            Err(e) => return Err(e.into()),
        }
    }
    println!("{stats:#?}");
    println!(
        "served {} clients ({} processes, {} threads) from one thread in {:.2?}",
        WORKERS + THREADS,
        WORKERS,
        THREADS,
        started.elapsed()
    );
    Ok(())
}

/// Serves until every worker process has exited and every client is gone.
fn serve(set: &mut WaitSet<Key, Peer>) -> procwire::Result<Stats> {
    let mut stats = Stats::default();
    let mut ready = Vec::new();
    let mut next = WORKERS;
    while set.len() > 1 || stats.accepted < THREADS {
        if set.wait(&mut ready, Some(Duration::from_secs(10)))? == 0 {
            return Err(Error::Timeout);
        }
        for &key in &ready {
            let gone = match set.get(&key) {
                Some(Peer::Listener(l)) => {
                    // Everyone whose connection (and handshake, with a key) is done; a
                    // listener error (descriptors exhausted) pauses it, not the server.
                    let mut accepted = Vec::new();
                    loop {
                        match l.try_accept() {
                            Ok(Some(conn)) => accepted.push(conn),
                            Ok(None) => break,
                            Err(e) => {
                                eprintln!("accept: {e}");
                                break;
                            }
                        }
                    }
                    for conn in accepted {
                        set.insert(Key::Client(next), Peer::Client(conn))?;
                        next += 1;
                        stats.accepted += 1;
                    }
                    false
                }
                Some(Peer::Client(c)) => serve_client(c, &mut stats)?,
                Some(Peer::Worker(_)) => {
                    if let Some(Peer::Worker(mut w)) = set.remove(&key) {
                        let status = w.wait()?;
                        assert!(status.success(), "worker {key:?}: {status}");
                        stats.workers_exited += 1;
                    }
                    false
                }
                None => false,
            };
            if gone {
                set.remove(&key); // dropping the connection closes it
            }
        }
    }
    Ok(stats)
}

/// Answers every whole request `conn` has buffered; `true` when the client is gone or
/// has been dropped for not reading.
fn serve_client(conn: &Connection<Reply, Request>, stats: &mut Stats) -> procwire::Result<bool> {
    loop {
        match conn.try_recv() {
            Ok(Request::Sum(values)) => {
                stats.requests += 1;
                match conn.send_timeout(&running_sums(&values), REPLY_TIMEOUT) {
                    Ok(()) => {}
                    Err(Error::Timeout | Error::PartlySent { .. }) => {
                        stats.too_slow += 1;
                        return Ok(true);
                    }
                    Err(e) if e.is_disconnected() => {
                        stats.hung_up += 1;
                        return Ok(true);
                    }
                    Err(e) => return Err(e),
                }
            }
            Ok(Request::Bye) => {
                stats.said_bye += 1;
                return Ok(true);
            }
            Err(Error::Empty) => return Ok(false),
            Err(e) if e.is_disconnected() => {
                stats.hung_up += 1;
                return Ok(true);
            }
            Err(e) => return Err(e),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Behaviour {
    /// Sends every request, checks every reply, says goodbye.
    Polite,
    /// Hangs up after this many requests.
    HangsUp(u32),
    /// Sends requests and never reads a reply.
    NeverReads,
}

/// A client: sends `REQUESTS` requests and checks the replies, as `behaviour` says.
fn client(conn: &Connection<Request, Reply>, behaviour: Behaviour) -> procwire::Result<()> {
    for i in 0..REQUESTS {
        if matches!(behaviour, Behaviour::HangsUp(n) if n == i) {
            return Ok(());
        }
        let values: Vec<u32> = (i..i + 16).collect();
        conn.send(&Request::Sum(values.clone()))?;
        if matches!(behaviour, Behaviour::NeverReads) {
            continue;
        }
        let sums = conn.recv_timeout(Duration::from_secs(10))?;
        assert_eq!(sums, running_sums(&values));
    }
    if matches!(behaviour, Behaviour::NeverReads) {
        // Keep asking until the server gives up on us.
        loop {
            conn.send(&Request::Sum(vec![1; 1024]))?;
        }
    }
    conn.send(&Request::Bye)?;
    Ok(())
}
