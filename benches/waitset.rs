//! `WaitSet` benchmarks: a ping-pong through a set holding 1, 100 or 10,000 idle
//! registered connections plus the active one. The target is that the 10,000 case costs
//! at most 1.2× the 1 case: a wait's work must grow with the *ready* sources only.
//!
//! ```text
//! taskset -c 0 cargo bench -p procwire-benches --bench waitset     # the headline numbers, one core
//! cargo bench -p procwire-benches --bench waitset                  # cross-core, reported apart
//! ```
//!
//! - `waitset_echo/{1,100,10000}`: a server thread waits in the set, receives the `u64`
//!   with `try_recv` and sends it back; the measuring thread sends and blocks in `recv`.
//!   Baseline `blocking_echo/1`: the same round trip with the server blocked in `recv` on
//!   the one connection, no set.
//! - `waitset_loop/{1,100,10000}`: one thread does it all (send, `wait`, `try_recv`,
//!   send back, `recv`), so only system calls are timed, no thread wake-ups. Baseline
//!   `direct_loop/1`: the same without the `wait`.
//! - `wait_fn/{1,100,10000}`: the same loop through the one-shot [`procwire::wait`],
//!   which polls every source on each call, for contrast.
//!
//! Measured on a shared 2-vCPU VM (Linux 6.18), medians of 7 runs pinned to one core,
//! µs per round trip:
//!
//! ```text
//!                    1 idle   100 idle   10,000 idle   10,000 / 1
//! waitset_echo        11.39      11.25         11.41         1.00   (blocking_echo 9.46)
//! waitset_loop         5.55       5.29          5.83         1.05   (direct_loop   3.20)
//! wait_fn              5.19      24.1       3,266          629      (3 runs)
//! ```
//!
//! After the `WaitSet` moved from `polling` to epoll directly (#17: 3 system calls per
//! served message instead of 7), `waitset_echo` measured 3.41, 3.47 and 3.36 µs for 1, 100
//! and 10,000 idle connections (pinned, one run each; the other rows were not re-run).
//!
//! Unpinned (cross-core), `waitset_echo` is ~55 µs whatever the count (thread wake-ups
//! across cores dominate); `waitset_loop` stays at 5.2–6.3 µs.
//!
//! Ten thousand idle connections need ten thousand descriptors for our ends and as many
//! for the peers'. The peers' ends live in a helper child process (this benchmark binary
//! started again with `PROCWIRE_BENCH_IDLE_PEER` set) so that neither process needs more
//! than about 10,100 descriptors; both raise their `RLIMIT_NOFILE` soft limit to the hard
//! limit first.

use std::hint::black_box;
use std::process::Command;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion};
use procwire::{Address, Client, Connection, Family, Listener, WaitSet};

/// Set in the helper child's environment: `address;count`.
const IDLE_PEER_ENV: &str = "PROCWIRE_BENCH_IDLE_PEER";

const SIZES: [usize; 3] = [1, 100, 10_000];
const ACTIVE: usize = usize::MAX;

type Conn = Connection<u64, u64>;

/// Raises the soft limit on open descriptors to the hard limit.
fn raise_nofile_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    limit.current = limit.maximum;
    if let Err(e) = setrlimit(Resource::Nofile, limit) {
        eprintln!("cannot raise RLIMIT_NOFILE: {e}");
    }
}

/// The helper child: connects `count` idle clients, says so, and holds them until the
/// parent goes away.
fn idle_peer(spec: &str) {
    raise_nofile_limit();
    let (addr, count) = spec.rsplit_once(';').expect("address;count");
    let count: usize = count.parse().expect("count");
    let parent = procwire::from_parent::<(), ()>().expect("started by the benchmark");
    let held: Vec<Conn> = (0..count)
        .map(|_| Client::connect(addr).expect("connect an idle client"))
        .collect();
    parent.send(&()).expect("report to the parent");
    let _ = parent.recv(); // returns when the parent is gone
    drop(held);
}

/// `count` idle server-side connections, whose clients live in a helper child.
fn idle_connections(count: usize) -> (Vec<Arc<Conn>>, procwire::Child, Connection<(), ()>) {
    let addr = Address::arbitrary(Family::Unix).expect("address");
    let listener = Listener::bind(&addr).expect("bind the idle listener");
    let mut cmd = Command::new(std::env::current_exe().expect("current_exe"));
    cmd.env(IDLE_PEER_ENV, format!("{};{count}", listener.local_addr()));
    let (mut child, control) = procwire::spawn::<(), ()>(cmd).expect("start the idle peer");
    let mut conns = Vec::with_capacity(count);
    while conns.len() < count {
        let ready = procwire::wait(&[&listener, &child], Some(Duration::from_secs(60)));
        match ready.expect("wait").as_slice() {
            [0] => conns.push(Arc::new(listener.accept().expect("accept an idle client"))),
            [] => panic!("the idle peer stalled after {} connections", conns.len()),
            _ => panic!("the idle peer exited early: {:?}", child.try_wait()),
        }
    }
    control
        .recv_timeout(Duration::from_secs(60))
        .expect("the idle peer is ready");
    (conns, child, control)
}

fn set_with(idle: &[Arc<Conn>], n: usize, active: Arc<Conn>) -> WaitSet<usize, Arc<Conn>> {
    let mut set = WaitSet::new().expect("wait set");
    for (i, c) in idle[..n].iter().enumerate() {
        set.insert(i, Arc::clone(c))
            .expect("insert an idle connection");
    }
    set.insert(ACTIVE, active)
        .expect("insert the active connection");
    set
}

/// Serves echoes from the active connection until its peer goes away.
fn echo_server(mut set: WaitSet<usize, Arc<Conn>>) {
    let mut ready = Vec::new();
    loop {
        set.wait(&mut ready, None).expect("wait");
        assert_eq!(ready, [ACTIVE], "only the active connection is ever ready");
        let conn = set.get(&ACTIVE).expect("active");
        match conn.try_recv() {
            Ok(v) => conn.send(&v).expect("echo"),
            Err(e) if e.is_disconnected() => return,
            Err(e) => panic!("{e}"),
        }
    }
}

fn bench_echo(c: &mut Criterion, idle: &[Arc<Conn>]) {
    let mut group = c.benchmark_group("pingpong");
    for n in SIZES {
        let (client, server) = procwire::duplex::<u64, u64>().expect("duplex");
        let set = set_with(idle, n, Arc::new(server));
        let handle = thread::spawn(move || echo_server(set));
        group.bench_with_input(BenchmarkId::new("waitset_echo", n), &n, |b, _| {
            round_trips(b, &client);
        });
        drop(client);
        handle.join().expect("echo server");
    }
    let (client, server) = procwire::duplex::<u64, u64>().expect("duplex");
    let handle = thread::spawn(move || {
        while let Ok(v) = server.recv() {
            server.send(&v).expect("echo");
        }
    });
    group.bench_function(BenchmarkId::new("blocking_echo", 1), |b| {
        round_trips(b, &client);
    });
    drop(client);
    handle.join().expect("echo thread");
    group.finish();
}

/// Sends a counter and checks it comes back, once per iteration.
fn round_trips(b: &mut criterion::Bencher<'_>, client: &Conn) {
    let mut i = 0u64;
    b.iter(|| {
        i += 1;
        client.send(&i).expect("send");
        assert_eq!(black_box(client.recv().expect("recv")), i);
    });
}

fn bench_loop(c: &mut Criterion, idle: &[Arc<Conn>]) {
    let mut group = c.benchmark_group("pingpong");
    for n in SIZES {
        let (client, server) = procwire::duplex::<u64, u64>().expect("duplex");
        let server = Arc::new(server);
        let mut set = set_with(idle, n, Arc::clone(&server));
        let mut ready = Vec::new();
        group.bench_with_input(BenchmarkId::new("waitset_loop", n), &n, |b, _| {
            let mut i = 0u64;
            b.iter(|| {
                i += 1;
                client.send(&i).expect("send");
                set.wait(&mut ready, None).expect("wait");
                debug_assert_eq!(ready, [ACTIVE]);
                let v = server.try_recv().expect("ready");
                server.send(&v).expect("echo");
                assert_eq!(black_box(client.recv().expect("recv")), i);
            });
        });
        let sources: Vec<&dyn procwire::Waitable> = idle[..n]
            .iter()
            .map(|c| c as &dyn procwire::Waitable)
            .chain([&server as &dyn procwire::Waitable])
            .collect();
        group.bench_with_input(BenchmarkId::new("wait_fn", n), &n, |b, _| {
            let mut i = 0u64;
            b.iter(|| {
                i += 1;
                client.send(&i).expect("send");
                let ready = procwire::wait(&sources, None).expect("wait");
                debug_assert_eq!(ready, [n]);
                let v = server.try_recv().expect("ready");
                server.send(&v).expect("echo");
                assert_eq!(black_box(client.recv().expect("recv")), i);
            });
        });
    }
    let (client, server) = procwire::duplex::<u64, u64>().expect("duplex");
    group.bench_function(BenchmarkId::new("direct_loop", 1), |b| {
        let mut i = 0u64;
        b.iter(|| {
            i += 1;
            client.send(&i).expect("send");
            let v = server.recv().expect("recv");
            server.send(&v).expect("echo");
            assert_eq!(black_box(client.recv().expect("recv")), i);
        });
    });
    group.finish();
}

fn main() {
    if let Ok(spec) = std::env::var(IDLE_PEER_ENV) {
        idle_peer(&spec);
        return;
    }
    raise_nofile_limit();
    let (idle, mut child, control) = idle_connections(SIZES[SIZES.len() - 1]);
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    bench_echo(&mut c, &idle);
    bench_loop(&mut c, &idle);
    drop(control); // the helper child exits
    drop(idle);
    child.wait().expect("reap the idle peer");
    c.final_summary();
}
