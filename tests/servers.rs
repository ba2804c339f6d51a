//! Servers that no client can stall or exhaust: a keyed listener under silent and
//! trickling clients (in an accept loop and in a `WaitSet`), descriptor floods before and
//! after authentication, the pending-handshake cap, `EMFILE`, peer credentials, and forged
//! FIFO announcements. Every attacker is a real socket; the heavy ones run in a child
//! process, so that what the server holds can be counted apart.

mod util;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use procwire::frame::{MAX_FDS_PER_MESSAGE, MAX_PENDING_FDS};
use procwire::{Address, Client, Connection, Error, Listener, WaitSet, WaitSource, Waitable};
use util::child::{child, is_child};
use util::{bounded, open_fds, Rejections, SOON};

const KEY: &str = "servers key";
const ATTACK_ENV: &str = "PROCWIRE_ATTACK_ADDR";

/// One test at a time: the timing tests must not share the two cores with each other.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn tcp(listener: &Listener) -> std::net::SocketAddr {
    match listener.local_addr() {
        Address::Tcp(sa) => *sa,
        other => panic!("not TCP: {other}"),
    }
}

/// The attacker process: 200 silent TCP clients and 50 that trickle a well-formed but
/// endless handshake reply, one byte every 100 ms each, reconnecting whatever the server
/// drops, until its stdin closes (bounded: 60 s).
#[test]
fn child_silent_and_trickling_attackers() {
    if !is_child() {
        return;
    }
    let addr: std::net::SocketAddr = std::env::var(ATTACK_ENV).unwrap().parse().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        thread::spawn(move || {
            let _ = std::io::stdin().read(&mut [0]); // the parent closes it, or dies
            stop.store(true, Ordering::SeqCst);
        });
    }
    let _silent: Vec<TcpStream> = (0..200)
        .filter_map(|_| TcpStream::connect(addr).ok())
        .collect();
    let mut reply = vec![0, 0, 0, 200]; // a header promising 200 bytes, then a trickle
    reply.extend(std::iter::repeat_n(b'x', 200));
    let mut tricklers: Vec<(TcpStream, usize)> = (0..50)
        .filter_map(|_| TcpStream::connect(addr).ok().map(|s| (s, 0)))
        .collect();
    println!("attacking");
    std::io::stdout().flush().unwrap();
    let end = Instant::now() + Duration::from_secs(60);
    while !stop.load(Ordering::SeqCst) && Instant::now() < end {
        for (s, sent) in &mut tricklers {
            if s.write_all(&reply[*sent % reply.len()..][..1]).is_err() {
                if let Ok(fresh) = TcpStream::connect(addr) {
                    *s = fresh; // dropped at its deadline: come back
                    *sent = 0;
                }
                continue;
            }
            *sent += 1;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// Starts the attackers against `addr` and waits until they are connected.
fn attackers(addr: std::net::SocketAddr) -> std::process::Child {
    let mut cmd = child("child_silent_and_trickling_attackers");
    cmd.env(ATTACK_ENV, addr.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let mut attackers = cmd.spawn().unwrap();
    let mut lines = BufReader::new(attackers.stdout.take().unwrap()).lines();
    let started = lines.find(|l| l.as_deref().is_ok_and(|l| l.contains("attacking")));
    assert!(started.is_some(), "the attackers did not start");
    attackers
}

/// Connects good clients one after another; the time each took to be authenticated.
fn good_connects(addr: &Address, n: usize) -> (Vec<Duration>, Vec<Connection<u64, u64>>) {
    let mut times = Vec::new();
    let mut conns = Vec::new();
    for _ in 0..n {
        let start = Instant::now();
        let conn: Connection<u64, u64> = Client::builder().authkey(KEY).connect(addr).unwrap();
        times.push(start.elapsed());
        conns.push(conn);
        thread::sleep(Duration::from_millis(20));
    }
    (times, conns)
}

fn assert_prompt(what: &str, times: &[Duration], limit: Duration) {
    let mut sorted = times.to_vec();
    sorted.sort();
    eprintln!("{what}: {sorted:?}");
    // On a loaded two-core machine one of ten may lose the CPU at the wrong moment.
    let late = sorted.iter().filter(|&&t| t >= limit).count();
    assert!(
        late <= 1,
        "{what}: {late} of {} took {limit:?} or more: {sorted:?}",
        sorted.len()
    );
}

#[test]
fn a_good_client_is_authenticated_at_once_among_200_silent_and_50_trickling_clients_accept_loop() {
    let _s = serial();
    bounded(|| {
        let listener = Arc::new(
            Listener::builder()
                .authkey(KEY)
                .bind("127.0.0.1:0")
                .unwrap(),
        );
        let addr = listener.local_addr().clone();
        let server = {
            let listener = listener.clone();
            thread::spawn(move || {
                // The loop the README shows: accept, then serve each client on a thread.
                for conn in listener.incoming::<u64, u64>() {
                    let Ok(conn) = conn else { continue };
                    thread::spawn(move || {
                        while let Ok(n) = conn.recv() {
                            if conn.send(&(n + 1)).is_err() {
                                break;
                            }
                        }
                    });
                }
            })
        };
        let mut attackers = attackers(tcp(&listener));
        let start = Instant::now();
        while listener.pending_handshakes() < 250 && start.elapsed() < SOON {
            thread::sleep(Duration::from_millis(10));
        }
        assert!(
            listener.pending_handshakes() >= 250,
            "{}",
            listener.pending_handshakes()
        );
        let (times, conns) = good_connects(&addr, 10);
        for (i, conn) in conns.iter().enumerate() {
            conn.send(&(i as u64)).unwrap();
            assert_eq!(conn.recv_timeout(SOON).unwrap(), i as u64 + 1);
        }
        drop(attackers.stdin.take());
        let _ = attackers.kill();
        let _ = attackers.wait();
        assert_prompt(
            "accept loop: good connects",
            &times,
            Duration::from_millis(50),
        );
        drop(server); // detached: the accept loop ends with the test process
    });
}

enum Served {
    Listener(Listener),
    Client(Connection<u64, u64>),
}

impl Waitable for Served {
    fn wait_source(&self) -> WaitSource<'_> {
        match self {
            Served::Listener(l) => l.wait_source(),
            Served::Client(c) => c.wait_source(),
        }
    }
}

/// The README's one-thread server, with a key, until `stop` is set.
fn waitset_server(listener: Listener, stop: Arc<AtomicBool>) {
    let mut set = WaitSet::new().unwrap();
    set.insert(0u64, Served::Listener(listener)).unwrap();
    let (mut ready, mut next) = (Vec::new(), 1);
    while !stop.load(Ordering::SeqCst) {
        set.wait(&mut ready, Some(Duration::from_millis(50)))
            .unwrap();
        for &key in &ready {
            let mut accepted = Vec::new();
            match set.get(&key) {
                Some(Served::Listener(l)) => {
                    while let Ok(Some(conn)) = l.try_accept() {
                        accepted.push(conn);
                    }
                }
                Some(Served::Client(c)) => match c.try_recv() {
                    Ok(n) => {
                        if c.send_timeout(&(n + 1), Duration::from_millis(100))
                            .is_err()
                        {
                            drop(set.remove(&key));
                        }
                    }
                    Err(Error::Empty) => {}
                    Err(_) => drop(set.remove(&key)),
                },
                None => {}
            }
            for conn in accepted {
                set.insert(next, Served::Client(conn)).unwrap();
                next += 1;
            }
        }
    }
}

#[test]
fn a_good_client_is_authenticated_at_once_among_200_silent_and_50_trickling_clients_waitset() {
    let _s = serial();
    bounded(|| {
        let listener = Listener::builder()
            .authkey(KEY)
            .bind("127.0.0.1:0")
            .unwrap();
        let addr = listener.local_addr().clone();
        let sa = tcp(&listener);
        let stop = Arc::new(AtomicBool::new(false));
        let server = {
            let stop = stop.clone();
            thread::spawn(move || waitset_server(listener, stop))
        };
        // Clients connected before the attack, which keep talking through it.
        let (_, old) = good_connects(&addr, 4);
        let mut attackers = attackers(sa);
        thread::sleep(Duration::from_millis(300)); // let the attack settle in
        let (times, new) = good_connects(&addr, 10);
        let mut trips = Vec::new();
        for round in 0..50u64 {
            for conn in old.iter().chain(&new) {
                let start = Instant::now();
                conn.send(&round).unwrap();
                assert_eq!(conn.recv_timeout(SOON).unwrap(), round + 1);
                trips.push(start.elapsed());
            }
        }
        drop(attackers.stdin.take());
        let _ = attackers.kill();
        let _ = attackers.wait();
        stop.store(true, Ordering::SeqCst);
        server.join().unwrap();
        assert_prompt("WaitSet: good connects", &times, Duration::from_millis(50));
        trips.sort();
        let p99 = trips[trips.len() * 99 / 100];
        eprintln!(
            "WaitSet round trips during the attack: median {:?}, p99 {p99:?}, max {:?}",
            trips[trips.len() / 2],
            trips[trips.len() - 1]
        );
        assert!(p99 < Duration::from_millis(10), "p99 round trip {p99:?}");
    });
}

#[test]
fn when_pending_handshakes_are_full_the_oldest_is_dropped_and_a_good_client_gets_in() {
    let _s = serial();
    bounded(|| {
        let (builder, rejected) =
            Rejections::on(Listener::builder().authkey(KEY).max_pending_handshakes(4));
        let listener = Arc::new(builder.bind("127.0.0.1:0").unwrap());
        let addr = listener.local_addr().clone();
        let server = {
            let listener = listener.clone();
            thread::spawn(move || {
                let conn = listener.accept::<u64, u64>().unwrap();
                conn.send(&(conn.recv().unwrap() + 1)).unwrap();
            })
        };
        let silent: Vec<TcpStream> = (0..10)
            .map(|_| TcpStream::connect(tcp(&listener)).unwrap())
            .collect();
        let start = Instant::now();
        while rejected.drain_count() < 6 && start.elapsed() < SOON {
            thread::sleep(Duration::from_millis(5));
        }
        let conn: Connection<u64, u64> = Client::builder().authkey(KEY).connect(&addr).unwrap();
        conn.send(&41).unwrap();
        assert_eq!(conn.recv().unwrap(), 42);
        server.join().unwrap();
        assert!(listener.pending_handshakes() <= 4);
        let evicted = rejected.seen();
        assert!(evicted.len() >= 6, "{evicted:?}");
        assert!(
            evicted.iter().all(|e| e.contains("max_pending_handshakes")),
            "{evicted:?}"
        );
        // The evicted ones were closed: they read end-of-file after the challenge.
        let mut closed = 0;
        for mut s in silent {
            s.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            let mut buf = Vec::new();
            if s.read_to_end(&mut buf).is_ok() {
                closed += 1;
            }
        }
        assert!(closed >= 6, "{closed} of 10 silent clients were closed");
    });
}

/// Sends one byte with `copies` copies of `fd` attached, on a raw Unix socket.
fn send_with_fds(sock: BorrowedFd<'_>, byte: u8, fd: BorrowedFd<'_>, copies: usize) -> bool {
    use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
    let fds = vec![fd; copies];
    let mut space =
        vec![std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS_PER_MESSAGE))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    assert!(control.push(SendAncillaryMessage::ScmRights(&fds)));
    // Non-blocking, with a bounded number of retries: a reader that stopped reading makes
    // the attacker give up instead of hanging.
    for _ in 0..50 {
        match rustix::net::sendmsg(
            sock,
            &[std::io::IoSlice::new(&[byte])],
            &mut control,
            SendFlags::NOSIGNAL | SendFlags::DONTWAIT,
        ) {
            Ok(_) => return true,
            Err(rustix::io::Errno::AGAIN) => thread::sleep(Duration::from_millis(10)),
            Err(_) => return false,
        }
    }
    false
}

/// Sends a frame header announcing `header` bytes, then one-byte pieces of the frame, each
/// with 253 descriptors, until 10,000 descriptors went out or the peer stopped reading;
/// returns how many were sent.
fn flood(sock: BorrowedFd<'_>, header: u32, after_each: &dyn Fn()) -> usize {
    let file = std::fs::File::open("/dev/null").unwrap();
    rustix::net::send(
        sock,
        &header.to_be_bytes(),
        rustix::net::SendFlags::NOSIGNAL,
    )
    .unwrap();
    let mut sent = 0;
    while sent < 10_000 {
        let copies = MAX_FDS_PER_MESSAGE.min(10_000 - sent);
        if !send_with_fds(sock, b'x', file.as_fd(), copies) {
            break;
        }
        sent += copies;
        after_each();
    }
    sent
}

#[test]
fn no_descriptor_is_accepted_before_authentication() {
    let _s = serial();
    bounded(|| {
        let dir = tempdir("flood-before");
        let path = dir.join("s.sock");
        let (builder, _rejected) = Rejections::on(Listener::builder().authkey(KEY));
        let listener = Arc::new(builder.bind(path.to_str().unwrap()).unwrap());
        let baseline = open_fds().len();
        let peak = Arc::new(Mutex::new(0usize));
        let attacker = UnixStream::connect(&path).unwrap();
        attacker.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let driver = {
            let (listener, stop, peak) = (listener.clone(), stop.clone(), peak.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let _ = listener.accept_timeout::<(), ()>(Duration::from_millis(5));
                    let mut p = peak.lock().unwrap();
                    *p = (*p).max(open_fds().len());
                }
            })
        };
        // 200 bytes: a handshake reply the listener reads to the end, one piece at a time.
        let sent = flood(attacker.as_fd(), 200, &|| {
            thread::sleep(Duration::from_micros(200))
        });
        thread::sleep(Duration::from_millis(100));
        stop.store(true, Ordering::SeqCst);
        driver.join().unwrap();
        let peak = *peak.lock().unwrap();
        eprintln!("sent {sent} descriptors before authentication; server peak {peak}, baseline {baseline}");
        assert!(sent >= 1_000, "the flood stopped early: {sent}");
        // The attacker's socket, its /dev/null and the pending handshake: nothing else.
        assert!(peak <= baseline + 3, "peak {peak}, baseline {baseline}");
        // A good client is still served.
        assert_serves_a_good_client(&listener, path.to_str().unwrap(), 7);
    });
}

#[test]
fn descriptors_for_an_unfinished_frame_are_capped_after_authentication() {
    let _s = serial();
    bounded(|| {
        let dir = tempdir("flood-after");
        let path = dir.join("s.sock");
        let listener = Arc::new(
            Listener::builder()
                .authkey(KEY)
                .bind(path.to_str().unwrap())
                .unwrap(),
        );
        let accepting = {
            let listener = listener.clone();
            thread::spawn(move || listener.accept::<(), ()>().unwrap())
        };
        let client: Connection<(), ()> = Client::builder()
            .authkey(KEY)
            .connect(path.to_str().unwrap())
            .unwrap();
        let server = accepting.join().unwrap();
        server.enable_fds().unwrap();
        let baseline = open_fds().len();
        let peak = Arc::new(Mutex::new(0usize));
        let receiving = {
            let peak = peak.clone();
            thread::spawn(move || {
                let got = server.recv_bytes_fds();
                let after = server.recv_bytes_fds();
                let mut p = peak.lock().unwrap();
                *p = (*p).max(open_fds().len());
                drop(p);
                (got, after)
            })
        };
        let peak_probe = peak.clone();
        let sent = flood(client.as_fd(), 100_000, &move || {
            let mut p = peak_probe.lock().unwrap();
            *p = (*p).max(open_fds().len());
        });
        let (got, after) = receiving.join().unwrap();
        let peak = *peak.lock().unwrap();
        eprintln!(
            "sent {sent} descriptors after authentication; server peak {peak}, baseline {baseline}"
        );
        assert!(
            matches!(got, Err(Error::Descriptors(ref why)) if why.contains("more than 506")),
            "{got:?}"
        );
        assert!(matches!(after, Err(Error::Descriptors(_))), "{after:?}");
        // The flood's /dev/null and at most the cap.
        assert!(
            peak <= baseline + 1 + MAX_PENDING_FDS,
            "peak {peak}, baseline {baseline}"
        );
        // Everything the flood left was closed.
        assert!(
            open_fds().len() <= baseline,
            "{} > {baseline}",
            open_fds().len()
        );
        // The listener serves on.
        assert_serves_a_good_client(&listener, path.to_str().unwrap(), 9);
    });
}

/// A keyed client of `listener` at `addr` is accepted and receives `value`.
fn assert_serves_a_good_client(listener: &Arc<Listener>, addr: &str, value: u8) {
    let server = {
        let listener = listener.clone();
        thread::spawn(move || listener.accept::<u8, u8>().unwrap().send(&value).unwrap())
    };
    let conn: Connection<u8, u8> = Client::builder().authkey(KEY).connect(addr).unwrap();
    assert_eq!(conn.recv_timeout(SOON).unwrap(), value);
    server.join().unwrap();
}

fn tempdir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("procwire-servers-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const EMFILE_ENV: &str = "PROCWIRE_EMFILE_ADDR";

/// The server of the `EMFILE` test: at most 64 descriptors; it holds every client it
/// accepts (so it runs out), echoes one message per client, prints each accept error's
/// first occurrence, and lets go of every client when its stdin says `free`.
#[test]
fn child_server_with_64_descriptors() {
    if !is_child() {
        return;
    }
    let hard = rustix::process::getrlimit(rustix::process::Resource::Nofile).maximum;
    rustix::process::setrlimit(
        rustix::process::Resource::Nofile,
        rustix::process::Rlimit {
            current: Some(64),
            maximum: hard,
        },
    )
    .unwrap();
    let listener = Listener::bind(std::env::var(EMFILE_ENV).unwrap().as_str()).unwrap();
    let free = Arc::new(AtomicBool::new(false));
    {
        let free = free.clone();
        thread::spawn(move || {
            for line in std::io::stdin().lines() {
                if line.is_ok_and(|l| l == "free") {
                    free.store(true, Ordering::SeqCst);
                }
            }
        });
    }
    println!("listening");
    let mut held: Vec<Connection<u8, u8>> = Vec::new();
    let mut said = false;
    let end = Instant::now() + Duration::from_secs(50);
    while Instant::now() < end {
        if free.swap(false, Ordering::SeqCst) {
            held.clear();
            println!("freed");
        }
        match listener.accept_timeout::<u8, u8>(Duration::from_millis(20)) {
            Ok(conn) => held.push(conn),
            Err(Error::Timeout) => {}
            Err(e) if e.is_resource_exhausted() => {
                if !said {
                    println!("exhausted: {e:?}");
                    said = true;
                }
            }
            Err(e) => panic!("{e:?}"),
        }
        held.retain(|c| match c.try_recv() {
            Ok(n) => c.send(&(n + 1)).is_ok(),
            Err(Error::Empty) => true,
            Err(_) => false,
        });
    }
}

/// The CPU time (user + system) of process `pid` so far.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf only reads a configuration value.
    #[allow(unsafe_code)]
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Duration::from_millis(ticks * 1000 / hz)
}

#[test]
fn a_server_out_of_descriptors_pauses_instead_of_spinning_and_serves_again_once_freed() {
    let _s = serial();
    bounded(|| {
        let dir = tempdir("emfile");
        let path = dir.join("s.sock");
        let mut server = child("child_server_with_64_descriptors")
            .env(EMFILE_ENV, path.to_str().unwrap())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut control = server.stdin.take().unwrap();
        let (lines_tx, lines) = std::sync::mpsc::channel();
        let out = BufReader::new(server.stdout.take().unwrap());
        thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                let _ = lines_tx.send(line);
            }
        });
        let said = |want: &str| loop {
            match lines.recv_timeout(SOON) {
                Ok(line) if line.contains(want) => return line,
                Ok(_) => {}
                Err(_) => panic!("the server never said {want:?}"),
            }
        };
        said("listening");
        // 200 clients: the first ~60 fill the server's table, the next wait in the backlog
        // (128), the rest are refused (`EAGAIN`: a Unix socket's backlog is full). They
        // connect without blocking, so that a full backlog does not stall this test.
        let addr = socket2::SockAddr::unix(&path).unwrap();
        let clients: Vec<socket2::Socket> = (0..200)
            .filter_map(|_| {
                let s = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None)
                    .unwrap();
                s.set_nonblocking(true).unwrap();
                s.connect(&addr).ok().map(|()| s)
            })
            .collect();
        let exhausted = said("exhausted");
        assert!(
            exhausted.contains("EMFILE") || exhausted.contains("Too many open files"),
            "{exhausted}"
        );
        let before = cpu_time(server.id());
        thread::sleep(Duration::from_secs(2));
        let spent = cpu_time(server.id()) - before;
        eprintln!(
            "{} clients connected; server CPU over 2 s of EMFILE: {spent:?}",
            clients.len()
        );
        assert!(
            server.try_wait().unwrap().is_none(),
            "the server died: {:?}",
            server.try_wait()
        );
        assert!(
            spent < Duration::from_millis(200),
            "the server spun: {spent:?} of CPU"
        );
        // Free the descriptors: the clients in the backlog are served without a restart.
        writeln!(control, "free").unwrap();
        said("freed");
        drop(clients);
        let start = Instant::now();
        let conn: Connection<u8, u8> = loop {
            match Client::connect(path.to_str().unwrap()) {
                Ok(c) => {
                    let c: Connection<u8, u8> = c;
                    c.send(&1).unwrap();
                    match c.recv_timeout(Duration::from_secs(3)) {
                        Ok(2) => break c,
                        other => eprintln!("not served yet: {other:?}"),
                    }
                }
                Err(e) => eprintln!("not served yet: {e:?}"),
            }
            assert!(start.elapsed() < SOON, "the server did not recover");
        };
        eprintln!(
            "served again {:?} after the descriptors were freed",
            start.elapsed()
        );
        drop(conn);
        drop(control);
        let _ = server.kill();
        let _ = server.wait();
    });
}

#[test]
fn peer_credentials_name_the_connecting_process() {
    let (a, _b) = procwire::duplex::<(), ()>().unwrap();
    let me = a.peer_credentials().unwrap();
    assert_eq!(me.pid(), std::process::id());
    assert_eq!(me.uid(), rustix::process::geteuid().as_raw());
    assert_eq!(me.gid(), rustix::process::getegid().as_raw());
    let listener = Listener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().clone();
    let client = thread::spawn(move || Client::connect::<(), (), _>(&addr).unwrap());
    let tcp_conn: Connection<(), ()> = listener.accept().unwrap();
    let err = tcp_conn.peer_credentials().unwrap_err();
    assert!(
        matches!(&err, Error::Io(e) if e.kind() == std::io::ErrorKind::Unsupported),
        "{err:?}"
    );
    drop(client.join().unwrap());
    // Allowed users on TCP: refused at bind.
    let err = Listener::builder()
        .allow_uids([0])
        .bind("127.0.0.1:0")
        .unwrap_err();
    assert!(
        matches!(&err, Error::Io(e) if e.kind() == std::io::ErrorKind::Unsupported),
        "{err:?}"
    );
}

#[test]
fn a_listener_admits_only_the_users_it_allows() {
    let _s = serial();
    bounded(|| {
        let me = rustix::process::geteuid().as_raw();
        let name = format!("@procwire-allow-{}", std::process::id());
        let (builder, rejected) =
            Rejections::on(Listener::builder().allow_uids([me.wrapping_add(1)]));
        let listener = builder.bind(name.as_str()).unwrap();
        // Our own uid is not allowed: closed before anything is said.
        let conn: Connection<u8, u8> = Client::connect(name.as_str()).unwrap();
        assert!(listener
            .accept_timeout::<u8, u8>(Duration::from_millis(300))
            .is_err());
        let why = rejected.next(SOON).expect("the client was not refused");
        assert!(why.contains("not among the users or groups"), "{why}");
        assert!(conn.recv_timeout(SOON).unwrap_err().is_disconnected());
        drop(listener);

        // Allowed by group.
        let gid = rustix::process::getegid().as_raw();
        let listener = Listener::builder()
            .allow_uids([me.wrapping_add(1)])
            .allow_gids([gid])
            .bind(name.as_str())
            .unwrap();
        let client = thread::spawn({
            let name = name.clone();
            move || {
                Client::connect::<u8, u8, _>(name.as_str())
                    .unwrap()
                    .recv_timeout(SOON)
            }
        });
        listener.accept::<u8, u8>().unwrap().send(&5).unwrap();
        assert_eq!(client.join().unwrap().unwrap(), 5);
    });
}

const OTHER_USER_ENV: &str = "PROCWIRE_OTHER_USER_ADDR";

/// Runs as another user (the parent starts it with a uid of 65534): connects and waits.
#[test]
fn child_connects_as_another_user() {
    if !is_child() {
        return;
    }
    let addr = std::env::var(OTHER_USER_ENV).unwrap();
    let r = Client::connect::<u8, u8, _>(addr.as_str()).and_then(|c| c.recv_timeout(SOON));
    // Refused: the connection is closed before any message.
    std::process::exit(if matches!(r, Err(ref e) if e.is_disconnected()) {
        0
    } else {
        1
    });
}

#[test]
fn a_client_of_another_uid_is_refused_before_the_handshake() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root, to run a client as another user");
        return;
    }
    let _s = serial();
    bounded(|| {
        use std::os::unix::process::CommandExt;
        let name = format!("@procwire-uid-{}", std::process::id());
        let (builder, rejected) = Rejections::on(Listener::builder().authkey(KEY).allow_uids([0]));
        let listener = builder.bind(name.as_str()).unwrap();
        let mut other = child("child_connects_as_another_user");
        other.env(OTHER_USER_ENV, &name).uid(65534).gid(65534);
        let other = other.spawn().unwrap();
        let _ = listener.accept_timeout::<u8, u8>(Duration::from_secs(1));
        let status = util::child::wait_for(other, SOON);
        assert!(
            status.success(),
            "the other user was not refused: {status:?}"
        );
        let why = rejected.next(SOON).expect("no rejection reported");
        assert!(why.contains("uid 65534"), "{why}");
        // And root, allowed, is served with the handshake.
        let client = thread::spawn({
            let name = name.clone();
            move || {
                Client::builder()
                    .authkey(KEY)
                    .connect::<u8, u8, _>(name.as_str())
                    .unwrap()
                    .recv_timeout(SOON)
            }
        });
        listener.accept::<u8, u8>().unwrap().send(&3).unwrap();
        assert_eq!(client.join().unwrap().unwrap(), 3);
    });
}

/// Writes one FIFO announcement of procwire's rendezvous protocol by hand.
fn announce(rendezvous: &std::path::Path, c2s: &std::path::Path, s2c: &std::path::Path) {
    use std::os::unix::ffi::OsStrExt;
    let mut line = b"procwire-fifo1\0".to_vec();
    line.extend_from_slice(c2s.as_os_str().as_bytes());
    line.push(0);
    line.extend_from_slice(s2c.as_os_str().as_bytes());
    line.push(b'\n');
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(rendezvous)
        .unwrap();
    f.write_all(&line).unwrap();
}

fn mkfifo(path: &std::path::Path) {
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        path,
        rustix::fs::Mode::from_raw_mode(0o600),
    )
    .unwrap();
}

#[test]
fn forged_fifo_announcements_never_make_the_listener_open_or_remove_what_it_should_not() {
    let _s = serial();
    bounded(|| {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempdir("fifo-forged");
        let rendezvous = dir.join("r");
        let (builder, rejected) = Rejections::on(Listener::builder().unix_mode(0o622));
        let listener = builder
            .bind(format!("fifo://{}", rendezvous.display()).as_str())
            .unwrap();

        // 1. A directory others may write, with files that are not FIFOs: refused, untouched.
        let open_dir = dir.join("open");
        std::fs::create_dir(&open_dir).unwrap();
        std::fs::set_permissions(&open_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        std::fs::write(open_dir.join("c2s"), b"precious").unwrap();
        std::fs::write(open_dir.join("s2c"), b"precious").unwrap();
        announce(&rendezvous, &open_dir.join("c2s"), &open_dir.join("s2c"));
        // 2. A private directory whose names are regular files: refused, untouched.
        let files_dir = dir.join("files");
        std::fs::create_dir(&files_dir).unwrap();
        std::fs::set_permissions(&files_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::write(files_dir.join("c2s"), b"precious").unwrap();
        std::fs::write(files_dir.join("s2c"), b"precious").unwrap();
        announce(&rendezvous, &files_dir.join("c2s"), &files_dir.join("s2c"));
        // 3. A real pair whose client is gone: refused (nobody reads s2c), not removed.
        let gone_dir = dir.join("gone");
        std::fs::create_dir(&gone_dir).unwrap();
        std::fs::set_permissions(&gone_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        mkfifo(&gone_dir.join("c2s"));
        mkfifo(&gone_dir.join("s2c"));
        announce(&rendezvous, &gone_dir.join("c2s"), &gone_dir.join("s2c"));
        // 4. As root: another user's private pair (the attack of the finding).
        let victim = dir.join("victim");
        let as_root = rustix::process::geteuid().is_root();
        if as_root {
            std::fs::create_dir(&victim).unwrap();
            std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o700)).unwrap();
            mkfifo(&victim.join("c2s"));
            mkfifo(&victim.join("s2c"));
            std::fs::write(victim.join("notes"), b"precious").unwrap();
            for p in [
                victim.clone(),
                victim.join("c2s"),
                victim.join("s2c"),
                victim.join("notes"),
            ] {
                rustix::fs::chown(
                    &p,
                    Some(rustix::process::Uid::from_raw(65534)),
                    Some(rustix::process::Gid::from_raw(65534)),
                )
                .unwrap();
            }
            announce(&rendezvous, &victim.join("c2s"), &victim.join("s2c"));
        } else {
            eprintln!("part 4 skipped: needs root, to make another user's FIFO pair");
        }
        assert!(listener
            .accept_timeout::<u8, u8>(Duration::from_millis(500))
            .is_err());
        let refused = rejected.seen();
        eprintln!("{refused:#?}");
        let want = if as_root { 4 } else { 3 };
        assert_eq!(refused.len(), want, "{refused:?}");
        assert!(refused[0].contains("open to other users"), "{}", refused[0]);
        assert!(refused[1].contains("not a FIFO"), "{}", refused[1]);
        assert!(refused[2].contains("went away"), "{}", refused[2]);
        if as_root {
            // Its pair verifies (a private directory of FIFOs, one owner), so the listener
            // tries it; nobody reads its s2c, so it is refused, and nothing is removed.
            assert!(refused[3].contains("went away"), "{}", refused[3]);
        }
        for d in [&open_dir, &files_dir] {
            assert_eq!(std::fs::read(d.join("c2s")).unwrap(), b"precious");
            assert_eq!(std::fs::read(d.join("s2c")).unwrap(), b"precious");
        }
        for p in [gone_dir.join("c2s"), gone_dir.join("s2c")] {
            assert!(p.exists(), "{} was removed", p.display());
        }
        if as_root {
            for p in ["c2s", "s2c", "notes"] {
                assert!(victim.join(p).exists(), "the victim's {p} was removed");
            }
        }
        // A real client is still served.
        let addr = format!("fifo://{}", rendezvous.display());
        let client = thread::spawn(move || {
            Client::connect::<u8, u8, _>(addr.as_str()).map(|c| c.recv_timeout(SOON))
        });
        let served = listener.accept_timeout::<u8, u8>(SOON);
        assert!(
            served.is_ok(),
            "{served:?}; refused: {:#?}",
            rejected.seen()
        );
        let served = served.unwrap();
        served.send(&1).unwrap();
        assert_eq!(client.join().unwrap().unwrap().unwrap(), 1);
        drop(served);
        drop(listener);
        let _ = std::fs::remove_dir_all(&dir);
    });
}
