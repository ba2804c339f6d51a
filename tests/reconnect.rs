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

/// Calls of the outbox tests: a number and a payload.
type Bulk = RpcConnection<(u64, Vec<u8>), u64>;

/// This process's resident set size in bytes (`VmRSS`).
fn rss() -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

const OUTBOX_BYTES: usize = 1 << 20;
const SENDS: u64 = 100_000;

/// Sends [`SENDS`] messages of 1 KiB to `ADDR_ENV`, where nothing listens yet, through a
/// requester whose outbox holds at most [`OUTBOX_BYTES`]; then listens there, serves, and
/// reports `[accepted sends, refused sends, rss before, rss after the sends, delivered,
/// whether exactly the accepted ones were delivered]`.
#[test]
fn child_fills_a_bounded_outbox_while_the_server_is_down() {
    if !is_child() {
        return;
    }
    let control = procwire::from_parent::<Vec<u64>, ()>().unwrap();
    let addr = PathBuf::from(std::env::var_os(ADDR_ENV).unwrap());
    let client = Client::builder().connect_timeout(Duration::from_millis(20));
    let requester = ReconnectBuilder::new(client, addr.as_path())
        .unwrap()
        .backoff(Duration::from_millis(5), Duration::from_millis(50))
        .outbox(ReconnectBuilder::DEFAULT_OUTBOX_MESSAGES, OUTBOX_BYTES)
        .start::<(u64, Vec<u8>), u64>()
        .unwrap();
    let before = rss();
    let (mut accepted, mut refused) = (Vec::new(), 0u64);
    for n in 0..SENDS {
        match requester.send((n, vec![n as u8; 1024])) {
            Ok(_) => accepted.push(n),
            Err(procwire::Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {
                refused += 1;
            }
            Err(e) => panic!("send {n}: {e:?}"),
        }
    }
    let after = rss();
    eprintln!(
        "child: {} sends accepted, {refused} refused, RSS {before} -> {after} bytes",
        accepted.len()
    );
    assert!(!requester.is_connected());
    let listener = Listener::bind(addr.as_path()).unwrap();
    let conn: Bulk = listener.accept().unwrap();
    let server = thread::spawn(move || {
        let mut seen = Vec::new();
        serve(&conn, |call| {
            seen.push(call.body.0);
            Ok::<_, String>(0)
        })
        .map(|()| seen)
    });
    requester.flush(Duration::from_secs(30)).unwrap();
    requester.send((SENDS, Vec::new())).unwrap(); // room again
    requester.flush(SOON).unwrap();
    drop(requester);
    let mut seen = server.join().unwrap().unwrap();
    assert_eq!(seen.pop(), Some(SENDS));
    seen.dedup(); // a resend after a reconnect, if any
    let report = vec![
        accepted.len() as u64,
        refused,
        before,
        after,
        seen.len() as u64,
        u64::from(seen == accepted),
    ];
    control.send(&report).unwrap();
}

#[test]
fn a_bounded_outbox_holds_its_bound_while_the_server_is_down_and_delivers_all_it_accepted() {
    bounded(|| {
        let dir = temp_dir("outbox");
        let mut cmd = child("child_fills_a_bounded_outbox_while_the_server_is_down");
        cmd.env(ADDR_ENV, dir.join("down.sock"));
        let (child, control) = procwire::spawn::<(), Vec<u64>>(cmd).unwrap();
        let r = control.recv_timeout(Duration::from_secs(50)).unwrap();
        util::child::assert_exited_ok(util::child::wait_for(child, SOON));
        let (accepted, refused, before, after) = (r[0], r[1], r[2], r[3]);
        let growth = after.saturating_sub(before);
        eprintln!(
            "{accepted} of {SENDS} sends of 1 KiB accepted, {refused} refused; \
             RSS grew by {:.2} MiB (bound {:.2} MiB); {} delivered",
            growth as f64 / f64::from(1 << 20),
            OUTBOX_BYTES as f64 / f64::from(1 << 20),
            r[4]
        );
        assert_eq!(accepted + refused, SENDS);
        // ~1 KiB each: the byte bound decides, not the message bound.
        assert!((900..=1024).contains(&accepted), "{accepted}");
        // Per entry, ~100 bytes of bookkeeping beside its envelope; allocator slack.
        let slack = 3 << 20;
        assert!(
            growth <= (OUTBOX_BYTES + slack) as u64,
            "RSS grew by {growth} bytes"
        );
        assert_eq!(
            (r[4], r[5]),
            (accepted, 1),
            "delivered exactly the accepted sends"
        );
        fs::remove_dir_all(&dir).unwrap();
    });
}

#[test]
fn a_full_outbox_refuses_messages_and_requests_at_once_and_keeps_what_it_queued() {
    bounded(|| {
        let dir = temp_dir("full");
        let addr = dir.join("later.sock");
        let client = Client::builder().connect_timeout(Duration::from_millis(20));
        let requester = ReconnectBuilder::new(client, addr.as_path())
            .unwrap()
            .backoff(Duration::from_millis(5), Duration::from_millis(50))
            .outbox(3, 4096)
            .start::<(u64, Vec<u8>), u64>()
            .unwrap();
        for n in 0..2 {
            requester.send((n, vec![1; 100])).unwrap();
        }
        let pending = requester.start((2, Vec::new()), SOON).unwrap();
        let full = |e: procwire::Error| match e {
            procwire::Error::Io(io) => (io.kind(), io.to_string()),
            other => panic!("{other:?}"),
        };
        let start = Instant::now();
        let (kind, text) = full(requester.send((3, Vec::new())).unwrap_err());
        assert_eq!(kind, std::io::ErrorKind::WouldBlock);
        assert!(
            text.starts_with("the outbox is full: 3 messages and requests of ")
                && text.ends_with("(limits: 3 messages, 4096 bytes)"),
            "{text}"
        );
        let (kind, _) = full(requester.request((4, Vec::new()), SOON).unwrap_err());
        assert_eq!(kind, std::io::ErrorKind::WouldBlock);
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "a full outbox blocked"
        );
        // Room for messages again, but not in bytes for this one.
        drop(pending);
        let (kind, text) = full(requester.send((5, vec![1; 4000])).unwrap_err());
        assert_eq!(kind, std::io::ErrorKind::WouldBlock, "{text}");
        assert!(text.contains("more do not fit"), "{text}");
        let (kind, text) = full(requester.send((6, vec![1; 5000])).unwrap_err());
        assert_eq!(kind, std::io::ErrorKind::InvalidInput, "{text}");
        assert!(
            text.contains("exceeds the outbox's 4096-byte limit"),
            "{text}"
        );
        requester.send((7, vec![1; 100])).unwrap();

        let listener = Listener::bind(addr.as_path()).unwrap();
        let conn: Bulk = listener.accept().unwrap();
        let server = thread::spawn(move || {
            let mut seen = Vec::new();
            serve(&conn, |call| {
                seen.push(call.body.0);
                Ok::<_, String>(0)
            })
            .map(|()| seen)
        });
        requester.flush(SOON).unwrap();
        for n in 8..20 {
            requester.send((n, Vec::new())).unwrap();
            requester.flush(SOON).unwrap();
        }
        drop(requester);
        let mut seen = server.join().unwrap().unwrap();
        seen.dedup();
        let expected: Vec<u64> = [0, 1, 7].into_iter().chain(8..20).collect();
        assert_eq!(seen, expected);
        fs::remove_dir_all(&dir).unwrap();
    });
}
