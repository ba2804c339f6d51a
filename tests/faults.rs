//! Fault injection with real processes: peers killed with SIGKILL in the middle of a
//! message or while being written to. The test binary re-runs itself as the child (see
//! `util/child.rs`); every `child_*` test is a no-op in a normal run.

mod util;

use std::io::Write;
use std::time::{Duration, Instant};

use procwire::{Client, Connection, Error, Listener};
use util::child::{assert_exited_ok, child, default_sigpipe, is_child, send_until_error, wait_for};
use util::{bounded, raw, SOON};

/// 64 MiB, the message the killed children are in the middle of.
const BIG: usize = 64 << 20;

/// How soon after the kill the parent's receive must have returned.
const PROMPT: Duration = Duration::from_secs(1);

#[test]
fn child_writes_part_of_a_64_mib_frame_then_hangs() {
    if !is_child() {
        return;
    }
    let conn = procwire::from_parent::<(), ()>().unwrap();
    let mut w = raw(&conn);
    w.write_all(&procwire::frame::Header::for_payload(BIG as u64).encode())
        .unwrap();
    w.write_all(&vec![7u8; 1 << 20]).unwrap();
    std::thread::sleep(SOON * 6); // killed long before this ends
}

#[test]
fn child_says_ready_then_sends_64_mib() {
    if !is_child() {
        return;
    }
    let conn = procwire::from_parent::<(), ()>().unwrap();
    conn.send_bytes(b"ready").unwrap();
    conn.send_bytes(&vec![7u8; BIG]).unwrap(); // blocks: the parent is not reading
    std::thread::sleep(SOON * 6);
}

/// When the receive starts: blocked before the kill, or after it (on what arrived).
#[derive(Clone, Copy, PartialEq)]
enum Receive {
    BlockedAtTheKill,
    AfterTheKill,
}

/// Kills `child`, then asserts that `receive` fails with `Truncated` (after `min_received`
/// or more bytes of a 64 MiB frame) within [`PROMPT`] of the kill.
fn kill_and_expect_truncated(
    mut child: procwire::Child,
    when: Receive,
    receive: impl FnOnce() -> procwire::Result<usize> + Send + 'static,
    min_received: u64,
) {
    let run = move || {
        let result = receive();
        (result, Instant::now())
    };
    let (killed, (result, returned)) = if when == Receive::BlockedAtTheKill {
        let receiver = std::thread::spawn(run);
        std::thread::sleep(Duration::from_millis(300)); // the receive is blocked by now
        let killed = Instant::now();
        child.kill().unwrap();
        (killed, receiver.join().unwrap())
    } else {
        let killed = Instant::now();
        child.kill().unwrap();
        (killed, run())
    };
    let waited = returned.saturating_duration_since(killed);
    match result {
        Err(Error::Truncated { received, expected }) => {
            assert_eq!(expected, BIG as u64 + 4);
            assert!(
                received >= min_received && received < expected,
                "{received}"
            );
        }
        other => panic!("expected Truncated, got {other:?}"),
    }
    assert!(
        waited < PROMPT,
        "the receive returned {waited:?} after the kill"
    );
    child.wait().unwrap();
}

#[test]
fn a_child_killed_inside_a_64_mib_frame_makes_the_blocked_receive_truncated_within_a_second() {
    bounded(|| {
        let (child, conn) =
            procwire::spawn::<(), ()>(child("child_writes_part_of_a_64_mib_frame_then_hangs"))
                .unwrap();
        kill_and_expect_truncated(
            child,
            Receive::BlockedAtTheKill,
            move || conn.recv_bytes_into(&mut vec![0u8; BIG]),
            (1 << 20) + 4,
        );
    });
}

#[test]
fn a_child_killed_while_sending_64_mib_makes_the_receive_truncated_within_a_second() {
    bounded(|| {
        let (child, conn) =
            procwire::spawn::<(), ()>(child("child_says_ready_then_sends_64_mib")).unwrap();
        assert_eq!(conn.recv_bytes().unwrap(), b"ready");
        std::thread::sleep(Duration::from_millis(200)); // the child is blocked mid-send
        kill_and_expect_truncated(
            child,
            Receive::AfterTheKill,
            move || conn.recv_bytes().map(|m| m.len()),
            4,
        );
    });
}

#[test]
fn child_reads_until_killed() {
    if !is_child() {
        return;
    }
    if let Ok(addr) = std::env::var("PROCWIRE_TEST_FIFO") {
        let conn = Client::connect::<(), Vec<u8>, _>(addr.as_str()).unwrap();
        read_forever(&conn);
    } else {
        read_forever(&procwire::from_parent::<(), Vec<u8>>().unwrap());
    }
}

fn read_forever(conn: &Connection<(), Vec<u8>>) {
    while conn.recv_bytes().is_ok() {}
    std::thread::sleep(SOON * 6); // killed long before this ends
}

/// In a process where `SIGPIPE` kills: starts a reader child, writes to it, kills it, and
/// keeps writing until the error; then returns, so the process exits normally.
fn write_to_a_reader_then_kill_it(mut reader: std::process::Child, conn: Connection<Vec<u8>, ()>) {
    conn.send(&vec![1; 10]).unwrap();
    conn.send_bytes(&[2u8; 100_000]).unwrap();
    reader.kill().unwrap();
    reader.wait().unwrap();
    send_until_error(|| conn.send(&vec![3; 10]));
    send_until_error(|| conn.send_bytes(&[4u8; 1 << 20]));
}

#[test]
fn child_writes_over_a_socketpair_to_a_reader_it_kills() {
    if !is_child() {
        return;
    }
    default_sigpipe();
    let (reader, conn) = procwire::spawn(child("child_reads_until_killed")).unwrap();
    write_to_a_reader_then_kill_it(reader.into(), conn);
}

#[test]
fn child_writes_over_a_fifo_to_a_reader_it_kills() {
    if !is_child() {
        return;
    }
    default_sigpipe();
    let dir = std::env::temp_dir().join(format!("pw-faults-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let listener = Listener::bind(format!("fifo://{}", dir.join("rendezvous").display())).unwrap();
    let mut cmd = child("child_reads_until_killed");
    cmd.env("PROCWIRE_TEST_FIFO", listener.local_addr().to_string());
    let reader = cmd.spawn().unwrap();
    let conn = listener.accept::<Vec<u8>, ()>().unwrap();
    write_to_a_reader_then_kill_it(reader, conn);
    drop(listener);
    std::fs::remove_dir(&dir).unwrap();
}

#[test]
fn a_writer_whose_reader_is_killed_gets_an_error_and_lives_with_default_sigpipe() {
    bounded(|| {
        for name in [
            "child_writes_over_a_socketpair_to_a_reader_it_kills",
            "child_writes_over_a_fifo_to_a_reader_it_kills",
        ] {
            let status = wait_for(child(name).spawn().unwrap(), SOON * 3);
            assert_exited_ok(status);
        }
    });
}
