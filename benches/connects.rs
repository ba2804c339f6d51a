//! Authenticated connects per second: connect over TCP, the HMAC handshake, one message
//! and its echo, against a procwire [`Listener`] and against CPython's
//! `multiprocessing.connection.Listener` with the same key, in the same run; alone, and
//! with 1,000 silent clients connected to the server.
//!
//! ```text
//! taskset -c 0 cargo bench -p procwire-benches --bench connects --features legacy-md5   # headline: one core
//! PROCWIRE_BENCH_CORES=split cargo bench -p procwire-benches --bench connects --features legacy-md5
//! ```
//!
//! `legacy-md5` is needed for a CPython of 3.11 or earlier (the legacy handshake);
//! `PROCWIRE_BENCH_PYTHON` names another interpreter (default `python3`). Without a usable
//! Python the CPython rows are skipped. `PROCWIRE_BENCH_ROUNDS` sets the rounds (5).
//!
//! Every party is its own process: the server (this binary started again with
//! `PROCWIRE_BENCH_CONNECTS` set, or `benches/python/echo_listener.py`), the silent clients
//! (this binary again) and the measuring client (this binary again). The client is the
//! same procwire [`Client`] for both servers, so only the server differs. Each server
//! serves one client at a time, as CPython's documented accept loop does: accept (which,
//! with a key, returns an authenticated client), receive one message, send it back, close.
//! Both listen with a backlog of 128.
//!
//! The client connects for 0.25 s unmeasured, then counts the connects that complete in a
//! 1 s window; every connect and handshake is bounded by the end of the window, so a
//! server that never answers scores 0 instead of hanging. One round measures every case
//! once (procwire first in even rounds, CPython first in odd ones); the table gives
//! medians over the rounds, and ratios as the median of the ratios within each round.
//! `PROCWIRE_BENCH_WINDOW_MS` sets the window (1,000 ms).
//!
//! The silent clients open non-blocking connections, read and discard what the server
//! sends (procwire's listener sends its challenge at once), and never write. One the
//! server drops (pushed out by `max_pending_handshakes`, 256 by default, or past the 5 s
//! handshake timeout) is opened again at once, so that 1,000 stay present throughout, as
//! in issue 19's original finding. Both cases are shown: the default cap, under which the
//! re-opened clients push each other out in a loop, and a cap of 1,024, which holds them
//! all. CPython's `accept` blocks for ever in the handshake of the first silent client it
//! takes (it has no handshake timeout), which is the point of the comparison.
//!
//! `PROCWIRE_BENCH_CORES=split` pins the server to CPU 1 and both client processes to
//! CPU 0; otherwise every process inherits the affinity of the benchmark (`taskset`).
//! Every process raises its `RLIMIT_NOFILE` soft limit to the hard limit.
//!
//! Measured on a shared 2-vCPU VM (Linux 6.18, CPython 3.11.7), all processes on CPU 0,
//! medians of 5 rounds of 1 s; CPU is µs per connect served:
//!
//! ```text
//!                                    connects/s   p50 µs   p99 µs   server CPU   client CPU
//! procwire, alone                         3,413      259      832        135.7        132.3
//! procwire, 1,000 silent, max_pending 256   855      262    9,448        426.1        165.8
//! procwire, 1,000 silent, max_pending 1024 3,413     266      684        139.6        134.7
//! CPython Listener, alone                 2,666      328    1,333        193.7        152.1
//! CPython Listener, 1,000 silent              0        -        -            -            -
//!
//! procwire / CPython alone: 1.28 (per-round ratios), 1.43 in server CPU per connect
//! procwire alone / with 1,000 silent: 4.14 (max_pending 256), 1.05 (max_pending 1024)
//! ```
//!
//! With the default cap the re-opened silent clients push each other out: 7,500 evictions
//! in the window, about 440 of the 1,000 connected at any moment, and their process takes
//! 38% of the core. With 1,024 nothing is dropped in a 1 s window; in a 6 s window the
//! 5 s handshake timeout dropped 633 of them (re-opened) in one round, at 1.06×.
//! Across cores (`split`) the rate swings between 400/s and 1,700/s from round to round on
//! that host for every server, so those figures say little; the server's CPU per connect
//! grows 2.5-3.6× across cores (wake-ups on another vCPU).
//!
//! Nearly all of the server's time is the kernel's: perf puts 88% of the procwire
//! server's samples in the kernel (TCP set-up and tear-down on loopback, scheduling); its
//! user space is ~11%. A connect costs the server ~23 system calls, five of them for each
//! `polling` wait (setting its timerfd, `epoll_wait`, reading its notifier, and two
//! `epoll_ctl` re-arms), and the handshake reads each frame's header and body apart.

mod support;

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Lines, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};
use support::pin_current_thread;

use procwire::{Client, ClientBuilder, Connection, Listener};
use rustix::event::{poll, PollFd, PollFlags};
use socket2::{Domain, Socket, Type};

/// Set in the environment of this binary's helper processes: `role;arguments`.
const ROLE_ENV: &str = "PROCWIRE_BENCH_CONNECTS";
/// `split`: server on CPU 1, clients on CPU 0.
const CORES_ENV: &str = "PROCWIRE_BENCH_CORES";
const PYTHON_ENV: &str = "PROCWIRE_BENCH_PYTHON";
const ROUNDS_ENV: &str = "PROCWIRE_BENCH_ROUNDS";

const KEY: &str = "procwire-bench-connects";
const MESSAGE: &[u8] = b"the first message";
const SILENT: usize = 1_000;
const BACKLOG: u32 = 128;
const WARM_UP: Duration = Duration::from_millis(250);
/// The measured window, in ms (1,000 unless set).
const WINDOW_ENV: &str = "PROCWIRE_BENCH_WINDOW_MS";
/// How long the silent clients may take to connect before the measurement starts anyway.
const SILENT_SETTLE: Duration = Duration::from_secs(2);

fn main() {
    raise_nofile_limit();
    if let Ok(spec) = std::env::var(ROLE_ENV) {
        let (role, args) = spec.split_once(';').expect("role;arguments");
        match role {
            "server" => server(args.parse().expect("max pending handshakes")),
            "silent" => silent(args),
            "client" => client(args),
            _ => panic!("unknown role {role}"),
        }
        return;
    }
    let rounds = std::env::var(ROUNDS_ENV).map_or(5, |r| r.parse().expect("rounds"));
    let python = Python::find();
    if let Err(why) = &python {
        eprintln!("CPython rows skipped: {why}");
    }
    let cases = Case::all(python.as_ref().ok());
    let mut results: Vec<Vec<Measured>> = vec![Vec::new(); cases.len()];
    for round in 0..rounds {
        let mut order: Vec<usize> = (0..cases.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for i in order {
            let m = measure(&cases[i]);
            eprintln!("round {round}: {}: {}", cases[i].label(), m.line());
            results[i].push(m);
        }
    }
    report(&cases, &results, python.ok().as_ref());
}

// ---------------------------------------------------------------------------------------
// The cases and the measurement.

#[derive(Clone, Debug)]
enum Server {
    Procwire { max_pending: usize },
    CPython(Python),
}

#[derive(Clone, Debug)]
struct Case {
    server: Server,
    silent: usize,
}

impl Case {
    fn all(python: Option<&Python>) -> Vec<Case> {
        let mut servers = vec![
            Server::Procwire { max_pending: 256 },
            Server::Procwire { max_pending: 1024 },
        ];
        servers.extend(python.cloned().map(Server::CPython));
        let mut cases = Vec::new();
        for server in servers {
            for silent in [0, SILENT] {
                if silent == 0 && matches!(server, Server::Procwire { max_pending: 1024 }) {
                    continue; // the cap changes nothing without silent clients
                }
                cases.push(Case {
                    server: server.clone(),
                    silent,
                });
            }
        }
        cases
    }

    fn label(&self) -> String {
        let server = match &self.server {
            Server::Procwire { max_pending } => format!("procwire (max_pending {max_pending})"),
            Server::CPython(py) => format!("CPython {}", py.version),
        };
        format!("{server}, {} silent", self.silent)
    }

    fn start_server(&self) -> Peer {
        let split = split_cores();
        match &self.server {
            Server::Procwire { max_pending } => Peer::again("server", &max_pending.to_string()),
            Server::CPython(py) => {
                let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/echo_listener.py");
                let mut cmd = Command::new(&py.program);
                cmd.args([script, "127.0.0.1", KEY, &BACKLOG.to_string()]);
                if split {
                    cmd.arg("1");
                }
                Peer::start(cmd)
            }
        }
    }
}

/// One case's figures in one round.
#[derive(Clone, Debug, Default)]
struct Measured {
    per_sec: f64,
    p50_us: u64,
    p99_us: u64,
    failed: u64,
    /// What the server counted during the window (procwire: served, evicted, timed_out,
    /// other; CPython: served, failed).
    server: HashMap<String, u64>,
    /// Silent clients connected when the window opened, and how many the server dropped
    /// during it.
    established: u64,
    dropped: u64,
    /// CPU time per connect served, in µs: the server's, and the measuring client's.
    server_cpu_us: f64,
    client_cpu_us: f64,
    /// The silent clients' process's CPU time over the client's run, in CPUs.
    silent_cpu_share: f64,
}

impl Measured {
    fn line(&self) -> String {
        let mut server: Vec<_> = self.server.iter().collect();
        server.sort();
        format!(
            "{:.0}/s, p50 {} µs, p99 {} µs, {} failed; server {server:?}; silent: {} \
             connected, {} dropped in the window",
            self.per_sec, self.p50_us, self.p99_us, self.failed, self.established, self.dropped
        )
    }
}

fn measure(case: &Case) -> Measured {
    let mut server = case.start_server();
    let addr = server.expect("ADDR ");
    let mut holder = (case.silent > 0).then(|| {
        let mut h = Peer::again("silent", &format!("{addr};{}", case.silent));
        h.expect("READY");
        h
    });
    let before = server.stats();
    let server_cpu = cpu_ns(&server);
    let held = holder.as_mut().map(Peer::stats).unwrap_or_default();
    let holder_cpu = holder.as_ref().map_or(0, cpu_ns);
    let mut client = Peer::again("client", &addr);
    let result = parse_stats(&client.expect("RESULT "));
    let server_cpu = cpu_ns(&server) - server_cpu;
    let client_cpu = cpu_ns(&client);
    let holder_cpu = holder.as_ref().map_or(0, cpu_ns) - holder_cpu;
    client.finish();
    let after = server.stats();
    let held_after = holder.map(Peer::finish).unwrap_or_default();
    server.finish();
    let get = |m: &HashMap<String, u64>, k: &str| m.get(k).copied().unwrap_or(0);
    let served = get(&after, "served") - get(&before, "served");
    Measured {
        per_sec: get(&result, "ok") as f64 / (get(&result, "elapsed_us") as f64 / 1e6),
        p50_us: get(&result, "p50_us"),
        p99_us: get(&result, "p99_us"),
        failed: get(&result, "failed"),
        server: after
            .iter()
            .map(|(k, v)| (k.clone(), v - get(&before, k)))
            .collect(),
        established: get(&held, "established"),
        dropped: get(&held_after, "dropped") - get(&held, "dropped"),
        server_cpu_us: server_cpu as f64 / 1e3 / served as f64,
        client_cpu_us: client_cpu as f64 / 1e3 / get(&result, "total") as f64,
        silent_cpu_share: holder_cpu as f64 / (window() + WARM_UP).as_nanos() as f64,
    }
}

/// CPU time a helper has used so far, all its threads, in ns (Linux's schedstat).
fn cpu_ns(peer: &Peer) -> u64 {
    let tasks = format!("/proc/{}/task", peer.child.id());
    let Ok(dir) = std::fs::read_dir(&tasks) else {
        return 0;
    };
    dir.filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// One decimal, or "-" for a figure with nothing to divide by.
fn cell(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.1}")
    } else {
        "-".to_owned()
    }
}

fn report(cases: &[Case], results: &[Vec<Measured>], python: Option<&Python>) {
    let med = |i: usize, f: &dyn Fn(&Measured) -> f64| median(results[i].iter().map(f).collect());
    let find = |pred: &dyn Fn(&Case) -> bool| cases.iter().position(pred);
    let rate = |i: Option<usize>| i.map_or(f64::NAN, |i| med(i, &|m| m.per_sec));
    let rounds = results.first().map_or(0, Vec::len);
    println!(
        "\nconnects/s, median of {rounds} rounds, {} ({} s window each)",
        if split_cores() {
            "server on CPU 1, clients on CPU 0"
        } else {
            "inherited affinity"
        },
        window().as_secs_f64()
    );
    println!(
        "{:<40} {:>10} {:>7} {:>7} {:>6} {:>8}  {:>10} {:>10}",
        "case", "connects/s", "p50 µs", "p99 µs", "failed", "dropped", "server µs", "client µs"
    );
    for (i, case) in cases.iter().enumerate() {
        println!(
            "{:<40} {:>10.0} {:>7.0} {:>7.0} {:>6.0} {:>8.0}  {:>10} {:>10}",
            case.label(),
            rate(Some(i)),
            med(i, &|m| m.p50_us as f64),
            med(i, &|m| m.p99_us as f64),
            med(i, &|m| m.failed as f64),
            med(i, &|m| m.dropped as f64),
            cell(med(i, &|m| m.server_cpu_us)),
            cell(med(i, &|m| m.client_cpu_us)),
        );
    }
    println!("(server µs, client µs: CPU time per connect served, in each process)");
    let pw = |cap: usize, silent: usize| {
        find(&|c| {
            matches!(c.server, Server::Procwire { max_pending } if max_pending == cap)
                && c.silent == silent
        })
    };
    // Ratios within each round (the host is shared: rounds differ more than cases do).
    let ratio = |a: Option<usize>, b: Option<usize>| match (a, b) {
        (Some(a), Some(b)) => median(
            results[a]
                .iter()
                .zip(&results[b])
                .map(|(x, y)| x.per_sec / y.per_sec)
                .collect(),
        ),
        _ => f64::NAN,
    };
    let cpu = |i: Option<usize>| i.map_or(f64::NAN, |i| med(i, &|m| m.server_cpu_us));
    let alone = pw(256, 0);
    println!(
        "\nprocwire alone / with {SILENT} silent (median of per-round ratios): {:.2} \
         (max_pending 256), {:.2} (max_pending 1024)",
        ratio(alone, pw(256, SILENT)),
        ratio(alone, pw(1024, SILENT))
    );
    if let Some(py) = python {
        let cpy =
            |silent: usize| find(&|c| matches!(c.server, Server::CPython(_)) && c.silent == silent);
        println!(
            "procwire / CPython {} alone: {:.2} in connects/s, {:.2} in server CPU per connect; \
             with {SILENT} silent: CPython {:.0}/s",
            py.version,
            ratio(alone, cpy(0)),
            cpu(cpy(0)) / cpu(alone),
            rate(cpy(SILENT))
        );
    }
    println!("\nsilent clients, medians per window:");
    for (i, case) in cases.iter().enumerate().filter(|(_, c)| c.silent > 0) {
        let server = |k: &str| med(i, &|m| m.server.get(k).copied().unwrap_or(0) as f64);
        println!(
            "  {}: {:.0} connected when the window opened, {:.0} dropped by the server and \
             opened again (server: {:.0} evicted, {:.0} timed out, {:.0} other failures); \
             their process used {:.0}% of a CPU",
            case.label(),
            med(i, &|m| m.established as f64),
            med(i, &|m| m.dropped as f64),
            server("evicted"),
            server("timed_out"),
            server("other") + server("failed"),
            100.0 * med(i, &|m| m.silent_cpu_share),
        );
    }
}

// ---------------------------------------------------------------------------------------
// Helper processes, and the line protocol they speak on stdin/stdout: a server prints
// "ADDR host:port" once, the silent clients "READY ..."; each "stats" line sent is
// answered with a "STATS k=v ..." line, and the end of stdin prints a last one and exits.

struct Peer {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Peer {
    fn start(mut cmd: Command) -> Peer {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        Peer {
            stdin: child.stdin.take(),
            lines: BufReader::new(child.stdout.take().expect("stdout")).lines(),
            child,
        }
    }

    /// This binary again, in `role`.
    fn again(role: &str, args: &str) -> Peer {
        let mut cmd = Command::new(std::env::current_exe().expect("current_exe"));
        cmd.env(ROLE_ENV, format!("{role};{args}"));
        Peer::start(cmd)
    }

    /// The rest of the first line that starts with `prefix`.
    fn expect(&mut self, prefix: &str) -> String {
        for line in self.lines.by_ref() {
            let line = line.expect("read a helper's output");
            if let Some(rest) = line.strip_prefix(prefix) {
                return rest.to_owned();
            }
        }
        panic!(
            "a helper ended without printing {prefix:?}: {:?}",
            self.child.wait()
        );
    }

    fn stats(&mut self) -> HashMap<String, u64> {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(b"stats\n").expect("ask a helper");
        parse_stats(&self.expect("STATS "))
    }

    fn finish(mut self) -> HashMap<String, u64> {
        drop(self.stdin.take());
        let last = self
            .lines
            .by_ref()
            .map_while(Result::ok)
            .filter_map(|l| l.strip_prefix("STATS ").map(parse_stats))
            .last();
        self.child.wait().expect("reap a helper");
        last.unwrap_or_default()
    }
}

fn parse_stats(line: &str) -> HashMap<String, u64> {
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.parse().expect("a number")))
        .collect()
}

/// Answers "stats" lines with `stats()` until stdin ends, then prints it once more and
/// ends the process.
fn serve_stats(stats: impl Fn() -> String) -> ! {
    for _ in io::stdin().lines() {
        println!("STATS {}", stats());
    }
    println!("STATS {}", stats());
    std::process::exit(0)
}

// ---------------------------------------------------------------------------------------
// The roles.

/// The procwire server: one client at a time, one echo each.
fn server(max_pending: usize) {
    if split_cores() {
        pin_current_thread(1);
    }
    let counts: Arc<[AtomicU64; 4]> = Arc::default(); // served, evicted, timed out, other
    let rejected = Arc::clone(&counts);
    let listener = Listener::builder()
        .authkey(KEY)
        .backlog(BACKLOG)
        .max_pending_handshakes(max_pending)
        .on_rejected(move |_, e| {
            let why = e.to_string();
            let i = if why.contains("was dropped before it finished") {
                1
            } else if why.contains("did not finish the handshake") {
                2
            } else {
                3
            };
            rejected[i].fetch_add(1, Relaxed);
        })
        .bind("127.0.0.1:0")
        .expect("bind");
    println!("ADDR {}", listener.local_addr());
    let served = Arc::clone(&counts);
    thread::spawn(move || loop {
        match listener.accept::<(), ()>() {
            Ok(conn) => {
                let echoed = conn.recv_bytes().and_then(|m| conn.send_bytes(&m));
                if echoed.is_ok() {
                    served[0].fetch_add(1, Relaxed);
                }
            }
            Err(e) => eprintln!("accept: {e}"),
        }
    });
    serve_stats(|| {
        let [s, e, t, o] = counts.each_ref().map(|c| c.load(Relaxed));
        format!("served={s} evicted={e} timed_out={t} other={o}")
    })
}

/// Silent clients: connected, never writing, re-opened when the server drops them.
fn silent(args: &str) {
    if split_cores() {
        pin_current_thread(0);
    }
    let (addr, count) = args.rsplit_once(';').expect("address;count");
    let addr: SocketAddr = addr.parse().expect("a TCP address");
    let count: usize = count.parse().expect("count");
    let dropped = Arc::new(AtomicU64::new(0));
    let established = Arc::new(AtomicU64::new(0));
    let mut clients: Vec<Silent> = (0..count).map(|_| Silent::open(&addr)).collect();
    let started = Instant::now();
    let mut ready = false;
    let mut buf = [0u8; 512];
    loop {
        let mut fds: Vec<PollFd<'_>> = clients.iter().map(Silent::poll_fd).collect();
        // Short waits only until the clients are ready, so as to cost nothing after.
        let timeout = rustix::time::Timespec {
            tv_sec: i64::from(ready),
            tv_nsec: if ready { 0 } else { 20_000_000 },
        };
        poll(&mut fds, Some(&timeout)).expect("poll");
        let fired: Vec<(usize, PollFlags)> = fds
            .iter()
            .map(PollFd::revents)
            .enumerate()
            .filter(|(_, r)| !r.is_empty())
            .collect();
        drop(fds);
        for (i, revents) in fired {
            if clients[i].serve(revents, &mut buf).is_err() {
                dropped.fetch_add(1, Relaxed);
                clients[i] = Silent::open(&addr);
            }
        }
        let now = clients.iter().filter(|c| c.connected).count();
        established.store(now as u64, Relaxed);
        if !ready && (now == count || started.elapsed() > SILENT_SETTLE) {
            ready = true;
            println!("READY established={now}");
            let (d, e) = (Arc::clone(&dropped), Arc::clone(&established));
            thread::spawn(move || {
                serve_stats(|| {
                    format!(
                        "established={} dropped={}",
                        e.load(Relaxed),
                        d.load(Relaxed)
                    )
                })
            });
        }
    }
}

/// One silent client.
struct Silent {
    socket: Socket,
    connected: bool,
}

impl Silent {
    fn open(addr: &SocketAddr) -> Silent {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
        socket.set_nonblocking(true).expect("non-blocking");
        match socket.connect(&(*addr).into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => panic!("connect a silent client: {e}"),
        }
        Silent {
            socket,
            connected: false,
        }
    }

    fn poll_fd(&self) -> PollFd<'_> {
        let flags = if self.connected {
            PollFlags::IN
        } else {
            PollFlags::IN | PollFlags::OUT
        };
        PollFd::new(&self.socket, flags)
    }

    /// Reads and discards what arrived; `Err` when the server closed or reset it.
    fn serve(&mut self, revents: PollFlags, buf: &mut [u8]) -> io::Result<()> {
        if !self.connected && revents.contains(PollFlags::OUT) {
            if let Some(e) = self.socket.take_error()? {
                return Err(e);
            }
            self.connected = true;
        }
        loop {
            match (&self.socket).read(buf) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }
}

/// The measuring client: connects for the warm-up, then for the window, and prints what
/// it counted.
fn client(addr: &str) {
    if split_cores() {
        pin_current_thread(0);
    }
    let builder = Client::builder().authkey(KEY);
    let warm_up = connect_for(&builder, addr, WARM_UP).0.len();
    let (mut took, failed, elapsed, first_error) = connect_for(&builder, addr, window());
    if let Some(e) = first_error {
        eprintln!("client: {failed} connects failed, the first with: {e}");
    }
    took.sort();
    let pct = |p: usize| {
        took.get(took.len().saturating_sub(1) * p / 100)
            .map_or(0, |d| d.as_micros())
    };
    println!(
        "RESULT ok={} total={} failed={failed} elapsed_us={} p50_us={} p99_us={}",
        took.len(),
        took.len() + warm_up,
        elapsed.as_micros(),
        pct(50),
        pct(99)
    );
    for _ in io::stdin().lines() {} // stay for the parent to read our CPU time
}

/// Connects, authenticates, sends one message and receives its echo, again and again
/// for `window`, each attempt bounded by the end of the window; returns the time each
/// success took, the failures, the time spent and the first error.
fn connect_for(
    builder: &ClientBuilder,
    addr: &str,
    window: Duration,
) -> (Vec<Duration>, u64, Duration, Option<String>) {
    let start = Instant::now();
    let end = start + window;
    let (mut took, mut failed, mut first_error) = (Vec::new(), 0, None);
    loop {
        let now = Instant::now();
        if now >= end {
            return (took, failed, now - start, first_error);
        }
        let left = end - now;
        let once = || -> procwire::Result<()> {
            let b = builder
                .clone()
                .connect_timeout(left)
                .handshake_timeout(left);
            let conn: Connection<(), ()> = b.connect(addr)?;
            conn.send_bytes(MESSAGE)?;
            let echo = conn.recv_bytes()?;
            assert_eq!(echo, MESSAGE, "the server echoes");
            Ok(())
        };
        match once() {
            Ok(()) => took.push(now.elapsed()),
            Err(e) => {
                failed += 1;
                first_error.get_or_insert_with(|| chain(&e));
            }
        }
    }
}

/// `e` and its sources, as "a: b: c".
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text = format!("{text}: {c}");
        cause = c.source();
    }
    text
}

// ---------------------------------------------------------------------------------------
// The host.

/// The CPython that runs the comparison server.
#[derive(Clone, Debug)]
struct Python {
    program: String,
    version: String,
}

impl Python {
    fn find() -> Result<Python, String> {
        let program = std::env::var(PYTHON_ENV).unwrap_or_else(|_| "python3".into());
        let out = Command::new(&program)
            .args(["-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"])
            .output()
            .map_err(|e| format!("cannot run {program}: {e}"))?;
        let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let minor: u32 = version
            .split('.')
            .nth(1)
            .and_then(|m| m.parse().ok())
            .ok_or(format!("{program} gave no version"))?;
        if minor < 12 && !cfg!(feature = "legacy-md5") {
            return Err(format!(
                "{program} is CPython {version}, whose handshake is the legacy HMAC-MD5 one: \
                 build with --features legacy-md5, or set {PYTHON_ENV} to a CPython 3.12 or later"
            ));
        }
        Ok(Python { program, version })
    }
}

fn window() -> Duration {
    Duration::from_millis(std::env::var(WINDOW_ENV).map_or(1_000, |w| w.parse().expect("ms")))
}

fn split_cores() -> bool {
    std::env::var(CORES_ENV).is_ok_and(|v| v == "split")
}

/// Raises the soft limit on open descriptors to the hard limit.
fn raise_nofile_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    limit.current = limit.maximum;
    if let Err(e) = setrlimit(Resource::Nofile, limit) {
        eprintln!("cannot raise RLIMIT_NOFILE: {e}");
    }
}
