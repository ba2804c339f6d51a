//! Named-pipe (FIFO) transport: what can go wrong at the rendezvous. The tests take one lock,
//! because they count files in the shared temporary directory.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use procwire::{Client, Connection, Error, Listener};

type Conn = Connection<u32, u32>;

static SERIAL: Mutex<()> = Mutex::new(());
const CHILD_ENV: &str = "PROCWIRE_FIFO_TEST_CHILD";

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("pw-fifo-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }
    fn addr(&self, name: &str) -> String {
        format!("fifo://{}", self.0.join(name).display())
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Client FIFO pairs currently in the temporary directory.
fn client_pairs() -> usize {
    pair_dirs().len()
}

/// The directories of those pairs.
fn pair_dirs() -> std::collections::BTreeSet<std::path::PathBuf> {
    std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("procwire-fifo-")
        })
        .map(|e| e.path())
        .collect()
}

fn is_fifo(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_fifo())
}

#[test]
fn rendezvous_is_an_owner_only_fifo_removed_on_close_and_drop() {
    let _s = serial();
    let dir = Dir::new("mode");
    let path = dir.0.join("r");
    let listener = Listener::bind(dir.addr("r").as_str()).unwrap();
    assert!(is_fifo(&path));
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    listener.close().unwrap();
    assert!(!path.exists());
    drop(Listener::bind(dir.addr("r").as_str()).unwrap());
    assert!(!path.exists());
}

#[test]
fn client_files_are_gone_once_connected_and_messages_flow_both_ways() {
    let _s = serial();
    let dir = Dir::new("clean");
    let before = client_pairs();
    let listener = Listener::builder()
        .authkey("k")
        .bind(dir.addr("r").as_str())
        .unwrap();
    let addr = dir.addr("r");
    let client = thread::spawn(move || -> procwire::Result<u32> {
        let conn: Conn = Client::builder().authkey("k").connect(addr.as_str())?;
        conn.send(&41)?;
        conn.recv_timeout(Duration::from_secs(10))
    });
    let server: Conn = listener.accept().unwrap();
    let n = server.recv_timeout(Duration::from_secs(10)).unwrap();
    server.send(&(n + 1)).unwrap();
    assert_eq!(client.join().unwrap().unwrap(), 42);
    assert_eq!(client_pairs(), before);
}

/// A race found while testing #16: an unkeyed FIFO listener hands a client over as soon as
/// it has opened the client's write FIFO for reading, before the client has opened it for
/// writing, and a blocking read in that window used to see no writer and report end of
/// stream. The reader now takes end of file before the first byte for "no writer yet"
/// (for up to `FIFO_WRITER_WAIT`) and waits for the writer's first byte or hang-up.
#[test]
fn an_unkeyed_listener_that_receives_at_once_gets_the_clients_message_not_end_of_stream() {
    let _s = serial();
    let dir = Dir::new("unkeyed");
    let listener = Listener::bind(dir.addr("r").as_str()).unwrap();
    for round in 0..20 {
        let addr = dir.addr("r");
        let client = thread::spawn(move || -> procwire::Result<()> {
            let conn: Conn = Client::connect(addr.as_str())?;
            thread::sleep(Duration::from_millis(5)); // the server reads before this send
            conn.send(&round)?;
            assert_eq!(conn.recv_timeout(Duration::from_secs(10))?, round + 1);
            Ok(())
        });
        let server: Conn = listener.accept().unwrap();
        // A blocking receive: a read of a FIFO that no writer has opened yet is end of
        // stream, unless the client holds it open for writing from the start.
        let n = server
            .recv()
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        server.send(&(n + 1)).unwrap();
        client.join().unwrap().unwrap();
    }
}

#[test]
fn a_client_that_leaves_without_writing_is_disconnected_at_once_not_after_the_writer_wait() {
    let _s = serial();
    let dir = Dir::new("leaves");
    let listener = Listener::bind(dir.addr("r").as_str()).unwrap();
    let addr = dir.addr("r");
    let client = thread::spawn(move || {
        let conn: Conn = Client::connect(addr.as_str()).unwrap();
        drop(conn); // its write end was opened, and now closes
    });
    let server: Conn = listener.accept().unwrap();
    client.join().unwrap();
    let start = std::time::Instant::now();
    let err = server.recv().unwrap_err();
    assert!(err.is_disconnected(), "{err:?}");
    // The hang-up of a writer that came and went ends the wait for the first byte.
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn clients_connecting_at_the_same_instant_are_all_served() {
    let _s = serial();
    let dir = Dir::new("burst");
    let (rejected_tx, rejected) = std::sync::mpsc::channel();
    let rejected_tx = std::sync::Mutex::new(rejected_tx);
    let listener = Listener::builder()
        .on_rejected(move |_, e| {
            let _ = rejected_tx.lock().unwrap().send(format!("{e}"));
        })
        .bind(dir.addr("r").as_str())
        .unwrap();
    const N: u32 = 16;
    let start = std::sync::Arc::new(Barrier::new(N as usize));
    let clients: Vec<_> = (0..N)
        .map(|i| {
            let (addr, start) = (dir.addr("r"), start.clone());
            thread::spawn(move || {
                start.wait();
                let conn: Conn = Client::builder()
                    .connect_timeout(Duration::from_secs(20))
                    .connect(addr.as_str())
                    .unwrap();
                conn.send(&i).unwrap();
                assert_eq!(conn.recv_timeout(Duration::from_secs(20)).unwrap(), i * 10);
            })
        })
        .collect();
    let mut seen = Vec::new();
    for _ in 0..N {
        let conn: Conn = match listener.accept_timeout(Duration::from_secs(30)) {
            Ok(conn) => conn,
            Err(e) => panic!(
                "after {} clients: {e}; rejected: {:?}",
                seen.len(),
                rejected.try_iter().collect::<Vec<_>>()
            ),
        };
        let i = conn.recv_timeout(Duration::from_secs(20)).unwrap();
        conn.send(&(i * 10)).unwrap();
        seen.push(i);
    }
    for c in clients {
        c.join().unwrap();
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..N).collect::<Vec<_>>());
}

#[test]
fn stale_rendezvous_is_replaced_live_one_refused_and_other_files_left_alone() {
    let _s = serial();
    let dir = Dir::new("stale");
    let path = dir.0.join("r");
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        &path,
        rustix::fs::Mode::from_raw_mode(0o600),
    )
    .unwrap();
    let live = Listener::bind(dir.addr("r").as_str()).unwrap(); // replaced the stale FIFO
    let Err(Error::Io(e)) = Listener::bind(dir.addr("r").as_str()) else {
        panic!()
    };
    assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse);
    drop(live);

    let file = dir.0.join("plain");
    std::fs::write(&file, b"keep me").unwrap();
    let Err(Error::Io(e)) = Listener::bind(dir.addr("plain").as_str()) else {
        panic!()
    };
    assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists);
    assert_eq!(std::fs::read(&file).unwrap(), b"keep me");
}

#[test]
fn client_of_a_listener_that_never_answers_times_out_and_cleans_up() {
    let _s = serial();
    let dir = Dir::new("silent");
    let before = client_pairs();
    let _listener = Listener::bind(dir.addr("r").as_str()).unwrap(); // never accepts
    let t = Instant::now();
    let Err(Error::Io(e)) = Client::builder()
        .connect_timeout(Duration::from_millis(300))
        .connect::<u32, u32, _>(dir.addr("r").as_str())
    else {
        panic!()
    };
    assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_eq!(client_pairs(), before);

    // Nobody listening at all: at once, as in CPython; bounded when waiting for one.
    let Err(Error::Io(e)) = Client::connect::<u32, u32, _>(dir.addr("nobody").as_str()) else {
        panic!()
    };
    assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
    let Err(Error::Io(e)) = Client::builder()
        .wait_for_listener(Duration::from_millis(100))
        .connect::<u32, u32, _>(dir.addr("nobody").as_str())
    else {
        panic!()
    };
    assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
    assert_eq!(client_pairs(), before);
}

/// The child of `client_killed_before_accept_is_reported_and_the_next_is_served`: connects
/// and waits to be served, until it is killed.
#[test]
fn child_connects_and_waits() {
    let Ok(addr) = std::env::var(CHILD_ENV) else {
        return;
    };
    let _ = Client::builder()
        .connect_timeout(Duration::from_secs(30))
        .connect::<u32, u32, _>(addr.as_str());
}

#[test]
fn client_killed_before_accept_is_reported_and_the_next_is_served() {
    let _s = serial();
    let dir = Dir::new("killed");
    let before = pair_dirs();
    let (rejected_tx, rejected) = std::sync::mpsc::channel();
    let listener = Listener::builder()
        .on_rejected(move |_, e| {
            let _ = rejected_tx.send(format!("{e:?}"));
        })
        .bind(dir.addr("r").as_str())
        .unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_connects_and_waits",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir.addr("r"))
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait (bounded) until its announcement is in the rendezvous, then kill it.
    let ready = procwire_wait_readable(&listener, Duration::from_secs(20));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(ready, "the child never announced itself");

    // `accept` skips the dead client and serves the next one.
    let addr = dir.addr("r");
    let next = thread::spawn(move || {
        let conn: Conn = Client::connect(addr.as_str()).unwrap();
        conn.send(&7).unwrap();
    });
    let conn: Conn = listener.accept().unwrap();
    assert_eq!(conn.recv_timeout(Duration::from_secs(10)).unwrap(), 7);
    next.join().unwrap();
    let why = rejected
        .recv_timeout(Duration::from_secs(1))
        .expect("the dead client was not reported");
    assert!(why.contains("went away"), "{why}");

    // The listener never removes a pair it did not make (an announcement can be forged):
    // the killed client's pair stays, for its owner to clean up.
    let left: Vec<_> = pair_dirs().difference(&before).cloned().collect();
    assert_eq!(left.len(), 1, "{left:?}");
    std::fs::remove_dir_all(&left[0]).unwrap();
    assert_eq!(pair_dirs(), before);
}

/// Polls the listener's descriptor until it is readable (an announcement is waiting).
fn procwire_wait_readable(listener: &Listener, limit: Duration) -> bool {
    use std::os::fd::AsFd;
    let fd = listener.as_fd();
    let mut fds = [rustix::event::PollFd::new(
        &fd,
        rustix::event::PollFlags::IN,
    )];
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        let timeout = rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: 50_000_000,
        };
        if rustix::event::poll(&mut fds, Some(&timeout)).unwrap_or(0) > 0 {
            // Give the child a moment to reach its open-for-writing retry loop.
            thread::sleep(Duration::from_millis(50));
            return true;
        }
    }
    false
}
