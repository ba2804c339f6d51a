//! `wait()` and `WaitSet`: what is ready when, over every kind of source, and a server
//! that one client cannot hold up.

mod util;

use std::io::Write;
use std::os::fd::AsFd;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use procwire::codec::Encode;
use procwire::frame::Header;
use procwire::{
    Child, Client, Connection, Error, Listener, Postcard, WaitSet, WaitSource, Waitable,
};
use serde::Serialize;
use util::{bounded, raw, SOON};

const SHORT: Duration = Duration::from_millis(50);

/// The bytes procwire puts on the wire for `value`: header and postcard payload.
fn frame_of<T: Serialize + serde::de::DeserializeOwned>(value: &T) -> Vec<u8> {
    let mut payload = Vec::new();
    Postcard.encode(value, &mut payload).unwrap();
    let mut frame = Header::for_payload(payload.len() as u64).encode().to_vec();
    frame.extend_from_slice(&payload);
    frame
}

/// Whether the kernel has bytes for `fd` right now.
fn kernel_readable(fd: impl AsFd) -> bool {
    let mut fds = [rustix::event::PollFd::new(
        &fd,
        rustix::event::PollFlags::IN,
    )];
    let zero = rustix::event::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    rustix::event::poll(&mut fds, Some(&zero)).unwrap() > 0
}

type Conns = Vec<Connection<u32, u32>>;

/// `n` connected pairs: our ends and the peers'.
fn pairs(n: usize) -> (Conns, Conns) {
    (0..n)
        .map(|_| procwire::duplex::<u32, u32>().unwrap())
        .unzip()
}

// ---- wait() ----------------------------------------------------------------------------

#[test]
fn wait_returns_the_ready_indices_in_input_order() {
    bounded(|| {
        let (ours, theirs) = pairs(3);
        theirs[2].send(&2).unwrap();
        theirs[0].send(&0).unwrap();
        let sources: Vec<&dyn Waitable> = ours.iter().map(|c| c as &dyn Waitable).collect();
        let start = Instant::now();
        let mut ready = procwire::wait(&sources, Some(SOON)).unwrap();
        while ready.len() < 2 && start.elapsed() < SOON {
            ready = procwire::wait(&sources, Some(SOON)).unwrap();
        }
        assert_eq!(ready, [0, 2]);
    });
}

#[test]
fn wait_times_out_with_an_empty_list() {
    bounded(|| {
        let (ours, _theirs) = pairs(2);
        let start = Instant::now();
        assert!(procwire::wait(&[&ours[0], &ours[1]], Some(SHORT))
            .unwrap()
            .is_empty());
        let took = start.elapsed();
        assert!(took >= SHORT && took < SOON, "{took:?}");
        assert!(procwire::wait(&[&ours[0]], Some(Duration::ZERO))
            .unwrap()
            .is_empty());
        assert!(procwire::wait(&[], Some(Duration::ZERO))
            .unwrap()
            .is_empty());
    });
}

#[test]
fn a_whole_message_already_buffered_is_ready_without_new_bytes() {
    bounded(|| {
        let (a, b) = procwire::duplex::<u32, u32>().unwrap();
        b.send(&1).unwrap();
        b.send(&2).unwrap();
        thread::sleep(SHORT); // both frames arrive, and one read takes both
        assert_eq!(a.recv().unwrap(), 1);
        assert!(
            !kernel_readable(&a),
            "the second frame is in our buffer, not the kernel"
        );
        assert_eq!(procwire::wait(&[&a], Some(Duration::ZERO)).unwrap(), [0]);
        assert_eq!(a.try_recv().unwrap(), 2);
        assert!(procwire::wait(&[&a], Some(Duration::ZERO))
            .unwrap()
            .is_empty());
    });
}

#[test]
fn a_partly_arrived_message_is_not_ready_until_it_is_whole() {
    bounded(|| {
        let (a, b) = procwire::duplex::<String, String>().unwrap();
        let frame = frame_of(&"assembled".to_string());
        let mut w = raw(&b);
        w.write_all(&frame[..7]).unwrap();
        assert!(procwire::wait(&[&a], Some(SHORT)).unwrap().is_empty());
        w.write_all(&frame[7..]).unwrap();
        assert_eq!(procwire::wait(&[&a], Some(SOON)).unwrap(), [0]);
        assert_eq!(a.try_recv().unwrap(), "assembled");
    });
}

#[test]
fn the_timeout_bounds_the_whole_wait_while_bytes_trickle_in() {
    bounded(|| {
        let (a, b) = procwire::duplex::<Vec<u8>, Vec<u8>>().unwrap();
        let frame = frame_of(&vec![7u8; 100]);
        let trickler = thread::spawn(move || {
            let mut w = raw(&b);
            for byte in &frame[..frame.len() - 1] {
                w.write_all(std::slice::from_ref(byte)).unwrap();
                thread::sleep(Duration::from_millis(5));
            }
            b
        });
        let start = Instant::now();
        let limit = Duration::from_millis(150);
        assert!(procwire::wait(&[&a], Some(limit)).unwrap().is_empty());
        let took = start.elapsed();
        assert!(
            took >= limit && took < limit + Duration::from_secs(2),
            "{took:?}"
        );
        drop(trickler.join().unwrap());
    });
}

#[test]
fn end_of_stream_and_a_closed_pipe_are_ready() {
    bounded(|| {
        let (a, b) = procwire::duplex::<u32, u32>().unwrap();
        let (tx, rx) = procwire::pipe::<u32>().unwrap();
        drop(b);
        drop(tx);
        assert_eq!(procwire::wait(&[&a, &rx], Some(SOON)).unwrap(), [0, 1]);
        assert!(matches!(a.try_recv(), Err(Error::Disconnected)));
        assert!(matches!(rx.try_recv(), Err(Error::Disconnected)));
    });
}

#[test]
fn a_listener_is_ready_when_a_client_is_waiting() {
    bounded(|| {
        let listener = Listener::bind("127.0.0.1:0").unwrap();
        assert!(procwire::wait(&[&listener], Some(Duration::ZERO))
            .unwrap()
            .is_empty());
        let client: Connection<u8, u8> = Client::connect(listener.local_addr()).unwrap();
        assert_eq!(procwire::wait(&[&listener], Some(SOON)).unwrap(), [0]);
        let server: Connection<u8, u8> = listener.accept().unwrap();
        client.send(&9).unwrap();
        assert_eq!(server.recv_timeout(SOON).unwrap(), 9);
    });
}

#[test]
fn a_child_is_ready_once_it_has_exited() {
    bounded(|| {
        let (mut sleeper, _c1) = procwire::spawn::<(), ()>(sleep_cmd("30")).unwrap();
        let (mut quitter, _c2) = procwire::spawn::<(), ()>(sh("exit 3")).unwrap();
        assert!(sleeper.pidfd().is_some(), "this kernel has pidfds");
        assert_eq!(
            procwire::wait(&[&sleeper, &quitter], Some(SOON)).unwrap(),
            [1]
        );
        assert_eq!(quitter.wait().unwrap().code(), Some(3));
        // Reaped, it stays ready.
        assert_eq!(procwire::wait(&[&quitter], Some(SOON)).unwrap(), [0]);
        assert!(procwire::wait(&[&sleeper], Some(SHORT)).unwrap().is_empty());
        sleeper.kill().unwrap();
        assert_eq!(procwire::wait(&[&sleeper], Some(SOON)).unwrap(), [0]);
        sleeper.wait().unwrap();
    });
}

fn sh(script: &str) -> Command {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", script]);
    cmd
}

fn sleep_cmd(secs: &str) -> Command {
    let mut cmd = Command::new("sleep");
    cmd.arg(secs);
    cmd
}

#[test]
fn a_child_converts_to_the_std_child_and_back_to_its_parts() {
    let (child, _conn) = procwire::spawn::<(), ()>(sh("exit 0")).unwrap();
    let id = child.id();
    assert!(util::is_cloexec(child.pidfd().unwrap()));
    let mut std_child: std::process::Child = child.into();
    assert_eq!(std_child.id(), id);
    assert!(std_child.wait().unwrap().success());
}

// ---- WaitSet ----------------------------------------------------------------------------

fn wait_keys<K: Clone + Ord + Eq + std::hash::Hash, S: Waitable>(
    set: &mut WaitSet<K, S>,
    timeout: Duration,
) -> Vec<K> {
    let mut ready = Vec::new();
    set.wait(&mut ready, Some(timeout)).unwrap();
    ready.sort();
    ready
}

#[test]
fn a_waitset_reports_the_ready_keys_and_not_the_idle_ones() {
    bounded(|| {
        let (ours, theirs) = pairs(50);
        let mut set = WaitSet::new().unwrap();
        for (i, c) in ours.into_iter().enumerate() {
            assert!(set.insert(i, c).unwrap().is_none());
        }
        assert_eq!(set.len(), 50);
        assert!(wait_keys(&mut set, SHORT).is_empty());
        for i in [3, 17, 42] {
            theirs[i].send(&(i as u32)).unwrap();
        }
        let mut got = Vec::new();
        let deadline = Instant::now() + SOON;
        while got.len() < 3 && Instant::now() < deadline {
            for k in wait_keys(&mut set, SOON) {
                assert_eq!(set.get(&k).unwrap().try_recv().unwrap(), k as u32);
                got.push(k);
            }
        }
        got.sort();
        assert_eq!(got, [3, 17, 42]);
        assert!(wait_keys(&mut set, Duration::ZERO).is_empty());
    });
}

#[test]
fn a_waitset_reports_a_buffered_message_again_without_new_bytes() {
    bounded(|| {
        let (a, b) = procwire::duplex::<u32, u32>().unwrap();
        for i in 0..3 {
            b.send(&i).unwrap();
        }
        thread::sleep(SHORT);
        let mut set = WaitSet::new().unwrap();
        set.insert("a", a).unwrap();
        for i in 0..3 {
            assert_eq!(wait_keys(&mut set, SOON), ["a"]);
            assert_eq!(set.get("a").unwrap().try_recv().unwrap(), i);
        }
        assert!(wait_keys(&mut set, Duration::ZERO).is_empty());
    });
}

#[test]
fn a_waitset_finds_a_message_buffered_before_insert_and_after_recheck() {
    bounded(|| {
        let (a, b) = procwire::duplex::<u32, u32>().unwrap();
        b.send(&1).unwrap();
        b.send(&2).unwrap();
        thread::sleep(SHORT);
        assert_eq!(a.recv().unwrap(), 1); // buffers 2 as well
        let mut set = WaitSet::new().unwrap();
        set.insert(0, a).unwrap();
        assert_eq!(wait_keys(&mut set, Duration::ZERO), [0]);
        assert!(
            wait_keys(&mut set, Duration::ZERO) == [0],
            "not consumed: still ready"
        );
        assert_eq!(set.get(&0).unwrap().try_recv().unwrap(), 2);
        assert!(wait_keys(&mut set, Duration::ZERO).is_empty());

        // A receive the set did not report buffers a second message: `recheck` finds it.
        b.send(&3).unwrap();
        b.send(&4).unwrap();
        thread::sleep(SHORT);
        assert_eq!(set.get(&0).unwrap().recv().unwrap(), 3);
        set.recheck(&0);
        assert_eq!(wait_keys(&mut set, Duration::ZERO), [0]);
        assert_eq!(set.get(&0).unwrap().try_recv().unwrap(), 4);
    });
}

#[test]
fn a_waitset_hands_back_replaced_and_removed_sources_and_stops_reporting_them() {
    bounded(|| {
        let (a1, b1) = procwire::duplex::<u32, u32>().unwrap();
        let (a2, b2) = procwire::duplex::<u32, u32>().unwrap();
        let mut set = WaitSet::new().unwrap();
        set.insert(7, a1).unwrap();
        let old = set
            .insert(7, a2)
            .unwrap()
            .expect("the first source comes back");
        assert_eq!(set.len(), 1);
        b1.send(&1).unwrap();
        assert!(
            wait_keys(&mut set, SHORT).is_empty(),
            "the replaced source is not watched"
        );
        assert_eq!(old.recv_timeout(SOON).unwrap(), 1);
        b2.send(&2).unwrap();
        assert_eq!(wait_keys(&mut set, SOON), [7]);
        let a2 = set.remove(&7).unwrap();
        assert!(set.is_empty() && set.remove(&7).is_none() && set.get(&7).is_none());
        assert_eq!(a2.try_recv().unwrap(), 2);
        drop(a2);
        assert!(b2.recv_timeout(SOON).unwrap_err().is_disconnected());
    });
}

#[test]
fn inserting_one_descriptor_twice_fails_and_hands_the_source_back() {
    bounded(|| {
        let (a, _b) = procwire::duplex::<u32, u32>().unwrap();
        let a = Arc::new(a);
        let mut set = WaitSet::new().unwrap();
        set.insert(1, Arc::clone(&a)).unwrap();
        let err = set.insert(2, Arc::clone(&a)).unwrap_err();
        assert!(matches!(err.error(), Error::Io(_)), "{err:?}");
        assert!(Arc::ptr_eq(&err.into_source(), &a));
        assert_eq!(set.len(), 1);
        let e: Error = set.insert(3, Arc::clone(&a)).unwrap_err().into();
        assert!(matches!(e, Error::Io(_)));
    });
}

enum Source {
    Listener(Listener),
    Client(Connection<u32, u32>),
    Worker(Child),
}

impl Waitable for Source {
    fn wait_source(&self) -> WaitSource<'_> {
        match self {
            Source::Listener(l) => l.wait_source(),
            Source::Client(c) => c.wait_source(),
            Source::Worker(w) => w.wait_source(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Key {
    Listener,
    Client(u32),
    Worker,
}

#[test]
fn one_waitset_serves_a_listener_its_clients_and_a_child() {
    bounded(|| {
        let listener = Listener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().clone();
        let (worker, _conn) = procwire::spawn::<(), ()>(sh("sleep 0.3")).unwrap();
        let mut set = WaitSet::new().unwrap();
        set.insert(Key::Listener, Source::Listener(listener))
            .unwrap();
        set.insert(Key::Worker, Source::Worker(worker)).unwrap();
        let clients = thread::spawn(move || {
            for i in 0..5u32 {
                let c: Connection<u32, u32> = Client::connect(&addr).unwrap();
                c.send(&i).unwrap();
                assert_eq!(c.recv_timeout(SOON).unwrap(), i * 10);
            }
        });
        let (mut answered, mut worker_done, mut next) = (0, false, 0);
        let deadline = Instant::now() + SOON;
        while (answered < 5 || !worker_done) && Instant::now() < deadline {
            for key in wait_keys(&mut set, SOON) {
                match (key, set.get(&key).unwrap()) {
                    (Key::Listener, Source::Listener(l)) => {
                        let conn = l.accept().unwrap();
                        set.insert(Key::Client(next), Source::Client(conn)).unwrap();
                        next += 1;
                    }
                    (Key::Client(_), Source::Client(c)) => match c.try_recv() {
                        Ok(v) => {
                            c.send(&(v * 10)).unwrap();
                            answered += 1;
                        }
                        Err(e) if e.is_disconnected() => drop(set.remove(&key)),
                        Err(e) => panic!("{e}"),
                    },
                    (Key::Worker, Source::Worker(_)) => {
                        let Some(Source::Worker(mut w)) = set.remove(&key) else {
                            unreachable!()
                        };
                        assert!(w.wait().unwrap().success());
                        worker_done = true;
                    }
                    _ => unreachable!(),
                }
            }
        }
        clients.join().unwrap();
        assert_eq!((answered, worker_done), (5, true));
    });
}

#[test]
fn a_waitset_wait_without_sources_times_out() {
    bounded(|| {
        let mut set: WaitSet<u8, Connection<u8, u8>> = WaitSet::new().unwrap();
        let start = Instant::now();
        assert!(wait_keys(&mut set, SHORT).is_empty());
        assert!(start.elapsed() >= SHORT);
        assert!(format!("{set:?}").starts_with("WaitSet"));
    });
}

// ---- a client that never reads ------------------------------------------------------------

/// One thread serves eight echo clients and one client that sends requests but never reads
/// a reply. Replies go out with `send_timeout`; a client whose reply times out is dropped.
/// The reading clients keep going until the stalled one has been dropped, and a little
/// after; the slowest round trip any of them saw must stay within one reply timeout (plus
/// slack for a loaded machine).
fn serve_beside_a_client_that_never_reads(listener: Listener) {
    const CLIENTS: u32 = 8;
    const REPLY_TIMEOUT: Duration = Duration::from_millis(100);
    let addr = listener.local_addr().clone();
    let stall_over = Arc::new(AtomicBool::new(false));

    let stalled_addr = addr.clone();
    let stalled = thread::spawn(move || {
        let c: Connection<Vec<u8>, Vec<u8>> = Client::connect(&stalled_addr).unwrap();
        let mut sent = 0u32;
        // Never reads; stops when the server drops it.
        while c.send_timeout(&vec![0u8; 16], SOON).is_ok() {
            sent += 1;
        }
        sent
    });
    let readers: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (addr, stall_over) = (addr.clone(), Arc::clone(&stall_over));
            thread::spawn(move || {
                let c: Connection<Vec<u8>, Vec<u8>> = Client::connect(&addr).unwrap();
                let (mut slowest, mut after) = (Duration::ZERO, 0);
                let give_up = Instant::now() + Duration::from_secs(30);
                while after < 50 && Instant::now() < give_up {
                    let t = Instant::now();
                    c.send(&vec![7u8; 16]).unwrap();
                    let reply = c.recv_timeout(SOON).unwrap();
                    assert_eq!(reply.len(), 4096);
                    slowest = slowest.max(t.elapsed());
                    if stall_over.load(Ordering::Relaxed) {
                        after += 1;
                    }
                }
                slowest
            })
        })
        .collect();

    let mut ready = Vec::new();
    let (mut done, mut dropped_slow, mut next) = (0, 0, 1u32);
    let reply = vec![1u8; 4096];
    let mut set: WaitSet<u32, Served> = WaitSet::new().unwrap();
    set.insert(0, Served::Listener(listener)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(50);
    while done < CLIENTS && Instant::now() < deadline {
        set.wait(&mut ready, Some(SOON)).unwrap();
        for &key in &ready {
            let conn = match set.get(&key).unwrap() {
                Served::Listener(l) => {
                    set.insert(next, Served::Client(l.accept().unwrap()))
                        .unwrap();
                    next += 1;
                    continue;
                }
                Served::Client(c) => c,
            };
            match conn.try_recv() {
                Ok(_) => match conn.send_timeout(&reply, REPLY_TIMEOUT) {
                    Ok(()) => continue,
                    Err(Error::Timeout | Error::PartlySent { .. }) => {
                        dropped_slow += 1;
                        stall_over.store(true, Ordering::Relaxed);
                    }
                    Err(e) if e.is_disconnected() => done += 1,
                    Err(e) => panic!("{e}"),
                },
                Err(Error::Empty) => continue,
                Err(e) if e.is_disconnected() => done += 1,
                Err(e) => panic!("{e}"),
            }
            set.remove(&key);
        }
    }
    let slowest = readers
        .into_iter()
        .map(|r| r.join().unwrap())
        .max()
        .unwrap();
    let stalled_sent = stalled.join().unwrap();
    assert_eq!(dropped_slow, 1, "exactly the stalled client was dropped");
    assert!(stalled_sent > 0);
    // One reply timeout at most, plus generous slack for a loaded CI machine.
    assert!(
        slowest < REPLY_TIMEOUT + Duration::from_secs(2),
        "a reading client waited {slowest:?}"
    );
}

#[test]
fn a_tcp_client_that_never_reads_does_not_delay_replies_to_the_others() {
    bounded(|| serve_beside_a_client_that_never_reads(Listener::bind("127.0.0.1:0").unwrap()));
}

#[test]
fn a_unix_client_that_never_reads_does_not_delay_replies_to_the_others() {
    bounded(|| {
        let addr = procwire::Address::arbitrary(procwire::Family::Unix).unwrap();
        serve_beside_a_client_that_never_reads(Listener::bind(&addr).unwrap());
    });
}

enum Served {
    Listener(Listener),
    Client(Connection<Vec<u8>, Vec<u8>>),
}

impl Waitable for Served {
    fn wait_source(&self) -> WaitSource<'_> {
        match self {
            Served::Listener(l) => l.wait_source(),
            Served::Client(c) => c.wait_source(),
        }
    }
}

#[test]
fn waitsets_and_their_errors_can_move_between_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<WaitSet<u64, Connection<u8, u8>>>();
    send_sync::<WaitSet<String, Listener>>();
    send_sync::<WaitSet<u8, Child>>();
    send_sync::<procwire::InsertError<Connection<u8, u8>>>();
    send_sync::<Child>();
}
