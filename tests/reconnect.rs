//! A reconnecting requester: queued messages and unanswered requests survive a server that
//! is killed and restarted. The server runs as a child process (this test binary, re-run)
//! and logs every call it handles to a file, so what it saw survives its death.

mod util;

use std::collections::BTreeSet;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::thread;
use std::time::{Duration, Instant};

use procwire::rpc::{serve, ReconnectBuilder, RpcConnection};
use procwire::{Client, Listener};
use util::child::{child, is_child};
use util::{bounded, SOON};

const ADDR_ENV: &str = "PROCWIRE_TEST_ADDR";
const LOG_ENV: &str = "PROCWIRE_TEST_LOG";
const KEY: &str = "reconnect test key";

/// Calls: `(true, n)` is a message, `(false, n)` a request answered with `2 * n`.
type Conn = RpcConnection<(bool, u64), u64>;

#[test]
fn child_logging_server() {
    if !is_child() {
        return;
    }
    let addr = std::env::var(ADDR_ENV).unwrap();
    let listener = Listener::builder()
        .authkey(KEY)
        .bind(addr.as_str())
        .unwrap();
    let mut log = OpenOptions::new()
        .append(true)
        .create(true)
        .open(std::env::var_os(LOG_ENV).unwrap())
        .unwrap();
    loop {
        let Ok(conn) = listener.accept::<_, _>() else {
            continue;
        };
        let conn: Conn = conn;
        let _ = serve(&conn, |call| {
            let (message, n) = call.body;
            // One write per line: a line is whole in the file even if we are killed.
            let line = format!("{} {} {}\n", call.id, u8::from(message), n);
            log.write_all(line.as_bytes()).unwrap();
            thread::sleep(Duration::from_millis(1)); // slow enough to be killed mid-stream
            Ok::<_, String>(n * 2)
        });
    }
}

/// A server child process, killed when dropped (also when the test fails).
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_server(addr: &Path, log: &Path) -> Server {
    let child = child("child_logging_server")
        .env(ADDR_ENV, addr)
        .env(LOG_ENV, log)
        .spawn()
        .unwrap();
    Server(child)
}

/// The calls in the server's log: `(is_message, n)` for each line, duplicates included.
fn logged(log: &Path) -> Vec<(bool, u64)> {
    let text = fs::read_to_string(log).unwrap_or_default();
    let whole = text.rfind('\n').map_or(0, |i| i + 1); // a line being written is left out
    text[..whole]
        .lines()
        .map(|l| {
            let mut parts = l.split(' ').skip(1);
            let message = parts.next().unwrap() == "1";
            (message, parts.next().unwrap().parse().unwrap())
        })
        .collect()
}

fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "condition not met within {limit:?}"
        );
        thread::sleep(Duration::from_millis(5));
    }
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("procwire-rc-{tag}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir(&dir).unwrap();
    dir
}

#[test]
fn a_server_killed_and_restarted_mid_stream_gets_every_queued_message_and_unanswered_request() {
    const MESSAGES: u64 = 300;
    const REQUESTS: u64 = 100;
    bounded(|| {
        let dir = temp_dir("kill");
        let (addr, log) = (dir.join("server.sock"), dir.join("calls.log"));
        let server = start_server(&addr, &log);
        let client = Client::builder()
            .authkey(KEY)
            .connect_timeout(Duration::from_millis(200));
        let requester = ReconnectBuilder::new(client, addr.as_path())
            .unwrap()
            .backoff(Duration::from_millis(5), Duration::from_millis(100))
            .start::<(bool, u64), u64>()
            .unwrap();
        assert!(requester.wait_connected(SOON));
        let mut pending = Vec::new();
        for i in 0..MESSAGES {
            requester.send((true, i)).unwrap();
            if i % 3 == 0 {
                let n = i / 3;
                pending.push((
                    n,
                    requester
                        .start((false, n), Duration::from_secs(30))
                        .unwrap(),
                ));
            }
        }
        // Kill the server while it works through the stream, and start it again.
        wait_until(SOON, || logged(&log).len() >= 20);
        drop(server); // SIGKILL
        let handled_before = logged(&log).len();
        assert!(
            handled_before < (MESSAGES + REQUESTS) as usize,
            "killed too late"
        );
        let server = start_server(&addr, &log);

        for (n, p) in pending {
            assert_eq!(p.wait().unwrap(), n * 2, "request {n}");
        }
        requester.flush(Duration::from_secs(30)).unwrap();
        assert!(requester.connections() >= 2, "{}", requester.connections());
        let calls = logged(&log);
        let unique: BTreeSet<_> = calls.iter().copied().collect();
        let expected: BTreeSet<_> = (0..MESSAGES)
            .map(|i| (true, i))
            .chain((0..REQUESTS).map(|n| (false, n)))
            .collect();
        assert_eq!(unique, expected);
        eprintln!(
            "handled {handled_before} calls before the kill; {} in all, {} delivered twice",
            calls.len(),
            calls.len() - unique.len()
        );
        drop(requester);
        drop(server);
        fs::remove_dir_all(&dir).unwrap();
    });
}

#[test]
fn messages_sent_before_the_server_exists_are_delivered_once_it_listens() {
    bounded(|| {
        let dir = temp_dir("late");
        let addr = dir.join("late.sock");
        let client = Client::builder().connect_timeout(Duration::from_millis(20));
        let requester = ReconnectBuilder::new(client, addr.as_path())
            .unwrap()
            .backoff(Duration::from_millis(5), Duration::from_millis(50))
            .start::<(bool, u64), u64>()
            .unwrap();
        for i in 0..10 {
            requester.send((true, i)).unwrap();
        }
        let answer = {
            let requester = requester.clone();
            thread::spawn(move || requester.request((false, 21), SOON))
        };
        thread::sleep(Duration::from_millis(100));
        assert!(!requester.is_connected());
        let listener = Listener::bind(addr.as_path()).unwrap();
        let conn: Conn = listener.accept().unwrap();
        let server = thread::spawn(move || {
            let mut seen = Vec::new();
            serve(&conn, |call| {
                seen.push(call.body);
                Ok::<_, String>(call.body.1 * 2)
            })
            .map(|()| seen)
        });
        assert_eq!(answer.join().unwrap().unwrap(), 42);
        requester.flush(SOON).unwrap();
        drop(requester);
        let seen = server.join().unwrap().unwrap();
        let expected: Vec<_> = (0..10).map(|i| (true, i)).chain([(false, 21)]).collect();
        assert_eq!(seen, expected);
        fs::remove_dir_all(&dir).unwrap();
    });
}
