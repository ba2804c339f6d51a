//! procwire against the system-call floor, every row against a peer in its own process
//! (this binary, started again in the role the row needs), all rows interleaved round by
//! round in one run (`PROCWIRE_BENCH_ROUNDS`, default 5), medians reported.
//!
//! ```text
//! taskset -c 0 cargo bench -p procwire-benches --bench floor --features rkyv   # headline: every process on one core
//! PROCWIRE_BENCH_CROSS=1 cargo bench -p procwire-benches --bench floor --features rkyv   # this process on core 0, peers on core 1
//! PROCWIRE_BENCH_ONLY=typed-pair strace -c -f target/release/deps/floor-…      # one row once, for syscall counts
//! ```
//!
//! Rows (issue #17):
//!
//! - **small messages**, on a socket pair (`pair`), a Unix path (`unix`) and loopback TCP
//!   (`tcp`): `raw` is the floor, one `send` and one `recv` of the 12-byte frame on each
//!   side (both ends raw, on the same sockets procwire made); `typed` is a `u64` through
//!   `send`/`recv` on both ends; `bytes` is 8 bytes through `send_bytes` and
//!   `recv_bytes_into` on both ends. Ratios: `typed / raw`, `bytes / raw`.
//! - **`WaitSet` echo**: the client (this process) sends a typed `u64` and receives it back;
//!   the server child either blocks in `recv` on the one connection (`blocking-echo`, the
//!   baseline) or serves it from a `WaitSet` that also holds 100 idle connections
//!   (`waitset-echo`): `wait`, `try_recv`, `send`.
//! - **cross-core** (meaningful unpinned): `rawbusy-pair` is the floor busy-polling (a
//!   non-blocking `recv` retried until the frame is there, on both ends), `typed-spin-pair`
//!   the typed round trip with `set_spin(50 µs)` on both ends. Pinned to one core, a
//!   busy-polling peer only delays the other, so `rawbusy-pair` is left out there, and
//!   `typed-spin-pair` shows what a spin that adapted itself away costs.
//! - **peers**: `ipc-channel-typed` (an `IpcSender<u64>` each way, ipc-channel 0.23) and
//!   `ipc-channel-bytes` (`IpcBytesSender`, 8 bytes), against `raw-pair`;
//!   `interprocess-bytes` (interprocess 2's local-socket `Stream`, which frames nothing:
//!   the 12-byte frame with `write_all` / `read_exact` each way), against `raw-unix`;
//!   `cpython-bytes`,
//!   procwire's `send_bytes`/`recv_bytes_into` against a CPython child echoing with
//!   `multiprocessing.connection` over a Unix path (`PROCWIRE_BENCH_PYTHON` names the
//!   interpreter, default `python3`; empty leaves the row out), against `raw-unix`.
//! - **typed bulk**: 16 MiB of `f64` one way, acknowledged with one byte: `raw-bulk` writes
//!   the frame with `write_all` and the child reads it with `read_exact` into a kept
//!   buffer; `postcard-bulk` sends a `Vec<f64>` with the default codec and the child
//!   receives a new `Vec<f64>`; `rkyv-bulk` sends it with the `Rkyv` codec and the child
//!   reads it in place with `recv_archived`. Ratios: throughput against `raw-bulk`.
//! - **large messages through memfds** (`enable_large_memfd` on the sender,
//!   `accept_large_memfd` on the child): `memfd-bytes-bulk` is 16 MiB through `send_bytes`
//!   and `recv_bytes_into` (into a kept buffer), `memfd-postcard-bulk` and `memfd-rkyv-bulk`
//!   the typed rows above through memfds. Ratios: throughput against `raw-bulk`.

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::process::Command;
use std::time::{Duration, Instant};

mod support;

use interprocess::local_socket::prelude::*;
use interprocess::local_socket::{GenericFilePath, ListenerOptions, Stream as LocalStream};
use ipc_channel::ipc::{
    self, IpcBytesReceiver, IpcBytesSender, IpcOneShotServer, IpcReceiver, IpcSender,
};
use procwire::codec::Rkyv;
use procwire::{Client, Connection, Listener, WaitSet};
use serde::{Deserialize, Serialize};

const ROLE_ENV: &str = "PROCWIRE_BENCH_FLOOR_ROLE";
const ADDR_ENV: &str = "PROCWIRE_BENCH_FLOOR_ADDR";
/// The ipc-channel one-shot server's name, for the ipc-channel peers.
const IPC_ENV: &str = "PROCWIRE_BENCH_FLOOR_IPC";
/// The interpreter of the `cpython-bytes` row (default `python3`; empty: leave it out).
const PYTHON_ENV: &str = "PROCWIRE_BENCH_PYTHON";

/// The CPython peer: echoes every message with `multiprocessing.connection`.
const PYTHON_ECHO: &str = "\
import os
from multiprocessing.connection import Client
c = Client(os.environ['PROCWIRE_BENCH_FLOOR_ADDR'], family='AF_UNIX')
while True:
    try:
        b = c.recv_bytes()
    except EOFError:
        break
    c.send_bytes(b)
";

/// What an ipc-channel peer sends first: the channels of the row, both ways.
#[derive(Serialize, Deserialize)]
enum Hello {
    Typed(IpcSender<u64>, IpcReceiver<u64>),
    Bytes(IpcBytesSender, IpcBytesReceiver),
}

/// The interpreter for the CPython row, if one runs.
fn python() -> Option<String> {
    let py = std::env::var(PYTHON_ENV).unwrap_or_else(|_| "python3".into());
    let ok = !py.is_empty()
        && Command::new(&py)
            .args(["-c", "import multiprocessing.connection"])
            .status()
            .is_ok_and(|s| s.success());
    ok.then_some(py)
}
const ROUNDS_ENV: &str = "PROCWIRE_BENCH_ROUNDS";
const ONLY_ENV: &str = "PROCWIRE_BENCH_ONLY";
/// With `PROCWIRE_BENCH_ONLY`: run the row once unmeasured first (page faults, slots).
const WARM_ENV: &str = "PROCWIRE_BENCH_WARM";
const PINGS: u64 = 20_000;
const BULK: usize = 16 << 20;
const BULKS: usize = 20;
const IDLE: usize = 100;

type Conn = Connection<u64, u64>;

/// How the child's connection is made.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Via {
    Pair,
    Unix,
    Tcp,
}

impl Via {
    fn name(self) -> &'static str {
        match self {
            Via::Pair => "pair",
            Via::Unix => "unix",
            Via::Tcp => "tcp",
        }
    }
}

/// What a row measures.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Row {
    Raw(Via),
    /// The floor with `recvmsg` and a control buffer for descriptors instead of `recv`.
    RawMsg,
    /// The floor on TCP with a 64 KiB receive buffer, as procwire's reader asks for.
    RawBigTcp,
    /// The floor busy-polling: non-blocking `recv` retried until the frame is there.
    RawBusy,
    /// `Typed(Pair)` with `set_spin(50 µs)` on both ends.
    TypedSpin,
    /// ipc-channel: an `IpcSender<u64>` each way between the two processes.
    IpcTyped,
    /// ipc-channel: an `IpcBytesSender` each way, 8 bytes.
    IpcBytes,
    /// interprocess: a local-socket `Stream` each end, the 12-byte frame written with
    /// `write_all` and read with `read_exact` (interprocess is a byte stream; it frames
    /// nothing).
    Interprocess,
    /// procwire `send_bytes` / `recv_bytes_into` against a CPython child echoing with
    /// `multiprocessing.connection.Connection.recv_bytes` / `send_bytes`.
    Python,
    Typed(Via),
    Bytes(Via),
    BlockingEcho,
    WaitSetEcho,
    RawBulk,
    PostcardBulk,
    RkyvBulk,
    /// `send_bytes` → `recv_bytes_into` of 16 MiB through memfds (`enable_large_memfd`).
    MemfdBytesBulk,
    /// `postcard-bulk` through memfds.
    MemfdPostcardBulk,
    /// `rkyv-bulk` through memfds.
    MemfdRkyvBulk,
}

impl Row {
    fn all() -> Vec<Row> {
        let mut rows = Vec::new();
        for via in [Via::Pair, Via::Unix, Via::Tcp] {
            rows.extend([Row::Raw(via), Row::Typed(via), Row::Bytes(via)]);
            if via == Via::Tcp {
                rows.push(Row::RawBigTcp);
            }
            if via == Via::Pair {
                rows.extend([
                    Row::RawMsg,
                    Row::TypedSpin,
                    Row::IpcTyped,
                    Row::IpcBytes,
                    Row::Interprocess,
                ]);
                if python().is_some() {
                    rows.push(Row::Python);
                }
                // Two busy-polling processes on one core only take turns at wasting it.
                if cross_core() {
                    rows.push(Row::RawBusy);
                }
            }
        }
        rows.extend([
            Row::BlockingEcho,
            Row::WaitSetEcho,
            Row::RawBulk,
            Row::PostcardBulk,
            Row::RkyvBulk,
            Row::MemfdBytesBulk,
            Row::MemfdPostcardBulk,
            Row::MemfdRkyvBulk,
        ]);
        rows
    }

    fn name(self) -> String {
        match self {
            Row::Raw(v) => format!("raw-{}", v.name()),
            Row::RawMsg => "rawmsg-pair".into(),
            Row::RawBigTcp => "rawbig-tcp".into(),
            Row::RawBusy => "rawbusy-pair".into(),
            Row::TypedSpin => "typed-spin-pair".into(),
            Row::IpcTyped => "ipc-channel-typed".into(),
            Row::IpcBytes => "ipc-channel-bytes".into(),
            Row::Interprocess => "interprocess-bytes".into(),
            Row::Python => "cpython-bytes".into(),
            Row::Typed(v) => format!("typed-{}", v.name()),
            Row::Bytes(v) => format!("bytes-{}", v.name()),
            Row::BlockingEcho => "blocking-echo".into(),
            Row::WaitSetEcho => "waitset-echo".into(),
            Row::RawBulk => "raw-bulk".into(),
            Row::PostcardBulk => "postcard-bulk".into(),
            Row::RkyvBulk => "rkyv-bulk".into(),
            Row::MemfdBytesBulk => "memfd-bytes-bulk".into(),
            Row::MemfdPostcardBulk => "memfd-postcard-bulk".into(),
            Row::MemfdRkyvBulk => "memfd-rkyv-bulk".into(),
        }
    }

    fn via(self) -> Via {
        match self {
            Row::Raw(v) | Row::Typed(v) | Row::Bytes(v) => v,
            Row::Python => Via::Unix,
            Row::RawBigTcp => Via::Tcp,
            _ => Via::Pair,
        }
    }

    fn is_bulk(self) -> bool {
        matches!(
            self,
            Row::RawBulk
                | Row::PostcardBulk
                | Row::RkyvBulk
                | Row::MemfdBytesBulk
                | Row::MemfdPostcardBulk
                | Row::MemfdRkyvBulk
        )
    }

    /// µs per round trip, or ms per bulk message.
    fn unit(self) -> &'static str {
        if self.is_bulk() {
            "ms"
        } else {
            "µs"
        }
    }
}

/// With this set, the benchmark runs on core 0 and every peer on core 1: the cross-core
/// round trips (`rawbusy-pair`, `typed-spin-pair`), which the scheduler would otherwise
/// often keep on one core.
const CROSS_ENV: &str = "PROCWIRE_BENCH_CROSS";

fn main() {
    let cross = std::env::var_os(CROSS_ENV).is_some();
    if let Ok(role) = std::env::var(ROLE_ENV) {
        if cross {
            support::pin_current_thread(1);
        }
        return child(&role);
    }
    if cross {
        support::pin_current_thread(0);
    }
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list`: nothing for criterion's harness protocol
    }
    let rows = Row::all();
    if let Ok(only) = std::env::var(ONLY_ENV) {
        let row = *rows
            .iter()
            .find(|r| r.name() == only)
            .unwrap_or_else(|| panic!("no row {only}"));
        let mut peer = Peer::start(row);
        if std::env::var_os(WARM_ENV).is_some() {
            let took = peer.run(row);
            println!("{only}: warm-up in {took:?}");
        }
        let took = peer.run(row);
        let n = if row.is_bulk() { BULKS as u64 } else { PINGS };
        println!("{only}: {n} messages in {took:?}");
        peer.finish();
        return;
    }
    let rounds: usize = std::env::var(ROUNDS_ENV).map_or(5, |r| r.parse().expect("rounds"));
    let mut peers: Vec<Peer> = rows.iter().map(|&r| Peer::start(r)).collect();
    // One unmeasured round first: page faults, connection buffers and the peers' first
    // messages are not part of a round trip.
    for (i, &row) in rows.iter().enumerate() {
        peers[i].run(row);
    }
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); rows.len()];
    let mut ratios: Vec<(String, Vec<f64>)> = Vec::new();
    for round in 0..rounds {
        let mut this: Vec<f64> = Vec::new();
        for (i, &row) in rows.iter().enumerate() {
            let took = peers[i].run(row).as_secs_f64();
            let per = if row.is_bulk() {
                took * 1e3 / BULKS as f64
            } else {
                took * 1e6 / PINGS as f64
            };
            times[i].push(per);
            this.push(per);
        }
        let at = |r: Row| this[rows.iter().position(|&x| x == r).expect("row")];
        let mut round_ratios = Vec::new();
        for via in [Via::Pair, Via::Unix, Via::Tcp] {
            round_ratios.push((
                format!("typed / raw, {}", via.name()),
                at(Row::Typed(via)) / at(Row::Raw(via)),
            ));
            round_ratios.push((
                format!("bytes / raw, {}", via.name()),
                at(Row::Bytes(via)) / at(Row::Raw(via)),
            ));
        }
        if cross_core() {
            round_ratios.push((
                "typed with spin / busy-polling raw, pair".into(),
                at(Row::TypedSpin) / at(Row::RawBusy),
            ));
            round_ratios.push((
                "typed / busy-polling raw, pair".into(),
                at(Row::Typed(Via::Pair)) / at(Row::RawBusy),
            ));
        }
        round_ratios.push((
            "typed with spin / typed, pair".into(),
            at(Row::TypedSpin) / at(Row::Typed(Via::Pair)),
        ));
        round_ratios.push((
            "raw with a 64 KiB buffer / raw, tcp".into(),
            at(Row::RawBigTcp) / at(Row::Raw(Via::Tcp)),
        ));
        round_ratios.push((
            "ipc-channel typed / raw, pair".into(),
            at(Row::IpcTyped) / at(Row::Raw(Via::Pair)),
        ));
        round_ratios.push((
            "ipc-channel bytes / raw, pair".into(),
            at(Row::IpcBytes) / at(Row::Raw(Via::Pair)),
        ));
        round_ratios.push((
            "interprocess bytes / raw, unix".into(),
            at(Row::Interprocess) / at(Row::Raw(Via::Unix)),
        ));
        if rows.contains(&Row::Python) {
            round_ratios.push((
                "procwire to CPython bytes / raw, unix".into(),
                at(Row::Python) / at(Row::Raw(Via::Unix)),
            ));
        }
        round_ratios.push((
            "recvmsg raw / recv raw, pair".into(),
            at(Row::RawMsg) / at(Row::Raw(Via::Pair)),
        ));
        round_ratios.push((
            "waitset echo / blocking echo".into(),
            at(Row::WaitSetEcho) / at(Row::BlockingEcho),
        ));
        round_ratios.push((
            "postcard bulk throughput / raw".into(),
            at(Row::RawBulk) / at(Row::PostcardBulk),
        ));
        round_ratios.push((
            "rkyv bulk throughput / raw".into(),
            at(Row::RawBulk) / at(Row::RkyvBulk),
        ));
        for (name, row) in [
            ("memfd bytes bulk throughput / raw", Row::MemfdBytesBulk),
            (
                "memfd postcard bulk throughput / raw",
                Row::MemfdPostcardBulk,
            ),
            ("memfd rkyv bulk throughput / raw", Row::MemfdRkyvBulk),
        ] {
            round_ratios.push((name.into(), at(Row::RawBulk) / at(row)));
        }
        eprintln!(
            "round {round}: {}",
            round_ratios
                .iter()
                .map(|(n, v)| format!("{n} {v:.3}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        if ratios.is_empty() {
            ratios = round_ratios
                .iter()
                .map(|(n, _)| (n.clone(), Vec::new()))
                .collect();
        }
        for (slot, (_, v)) in ratios.iter_mut().zip(round_ratios) {
            slot.1.push(v);
        }
    }
    println!("medians of {rounds} interleaved rounds, every peer in its own process:");
    for (row, v) in rows.iter().zip(times.iter_mut()) {
        println!("  {:<40} {:>9.3} {}", row.name(), median(v), row.unit());
    }
    for (name, v) in ratios.iter_mut() {
        println!("  {name:<40} {:>9.3}", median(v));
    }
    for peer in peers {
        peer.finish();
    }
}

/// Whether the peers may run on another core than this process (not under `taskset -c 0`).
fn cross_core() -> bool {
    std::env::var_os(CROSS_ENV).is_some()
        || std::thread::available_parallelism().is_ok_and(|n| n.get() > 1)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The other end of one row: a child process and the connection to it.
struct Peer {
    child: procwire::Child,
    /// The connection the child was spawned with; for `pair` rows also the measured one.
    spawned: Conn,
    /// For `unix` and `tcp` rows, the connection accepted from the child.
    accepted: Option<Conn>,
    /// Kept for the unix socket's file.
    _dir: Option<TempDir>,
    postcard: Option<Connection<Vec<f64>, u8>>,
    rkyv: Option<Connection<Vec<f64>, u8, Rkyv>>,
    ipc: Option<Hello>,
    interprocess: Option<LocalStream>,
}

struct TempDir(std::path::PathBuf);

/// A new directory for `row`'s Unix socket, and the socket's path in it.
fn socket_dir(row: Row) -> (TempDir, std::path::PathBuf) {
    let path = std::env::temp_dir().join(format!(
        "procwire-floor-{}-{}",
        std::process::id(),
        row.name()
    ));
    std::fs::create_dir_all(&path).unwrap();
    let addr = path.join("s.sock");
    (TempDir(path), addr)
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Peer {
    fn start(row: Row) -> Peer {
        let mut cmd = if row == Row::Python {
            let mut cmd = Command::new(python().expect("a Python"));
            cmd.args(["-c", PYTHON_ECHO]);
            cmd
        } else {
            Command::new(std::env::current_exe().unwrap())
        };
        cmd.env(ROLE_ENV, row.name());
        let (mut dir, mut listener) = (None, None);
        let mut ipc_server = None;
        if matches!(row, Row::IpcTyped | Row::IpcBytes) {
            let (server, name) = IpcOneShotServer::<Hello>::new().unwrap();
            cmd.env(IPC_ENV, name);
            ipc_server = Some(server);
        }
        match row.via() {
            Via::Pair => {}
            Via::Unix => {
                let (tmp, addr) = socket_dir(row);
                let l = Listener::bind(addr.to_str().unwrap()).unwrap();
                cmd.env(ADDR_ENV, addr.to_str().unwrap());
                listener = Some(l);
                dir = Some(tmp);
            }
            Via::Tcp => {
                let l = Listener::bind("127.0.0.1:0").unwrap();
                cmd.env(ADDR_ENV, l.local_addr().to_string());
                listener = Some(l);
            }
        }
        let mut interprocess = None;
        if row == Row::Interprocess {
            let (tmp, addr) = socket_dir(row);
            let name = addr.clone().to_fs_name::<GenericFilePath>().unwrap();
            let l = ListenerOptions::new().name(name).create_sync().unwrap();
            cmd.env(ADDR_ENV, &addr);
            interprocess = Some(l);
            dir = Some(tmp);
        }
        let (mut postcard, mut rkyv) = (None, None);
        let (child, spawned) = match row {
            Row::PostcardBulk | Row::MemfdBytesBulk | Row::MemfdPostcardBulk => {
                let (child, conn) = procwire::spawn::<Vec<f64>, u8>(cmd).unwrap();
                if row != Row::PostcardBulk {
                    conn.enable_large_memfd(MEMFD_THRESHOLD).unwrap();
                }
                postcard = Some(conn);
                (child, procwire::duplex::<u64, u64>().unwrap().0)
            }
            Row::RkyvBulk | Row::MemfdRkyvBulk => {
                let (child, conn) =
                    procwire::spawn_with::<Vec<f64>, u8, _>(cmd, Rkyv::new()).unwrap();
                if row == Row::MemfdRkyvBulk {
                    conn.enable_large_memfd(MEMFD_THRESHOLD).unwrap();
                }
                rkyv = Some(conn);
                (child, procwire::duplex::<u64, u64>().unwrap().0)
            }
            _ => procwire::spawn::<u64, u64>(cmd).unwrap(),
        };
        let accepted = listener.map(|l| l.accept::<u64, u64>().unwrap());
        let ipc = ipc_server.map(|server| server.accept().unwrap().1);
        let interprocess = interprocess.map(|l| l.accept().unwrap());
        Peer {
            child,
            spawned,
            accepted,
            _dir: dir,
            postcard,
            rkyv,
            ipc,
            interprocess,
        }
    }

    fn conn(&self) -> &Conn {
        self.accepted.as_ref().unwrap_or(&self.spawned)
    }

    fn run(&mut self, row: Row) -> Duration {
        match row {
            Row::Raw(_) | Row::RawMsg | Row::RawBigTcp | Row::RawBusy | Row::RawBulk => {
                raw(self.conn(), row)
            }
            Row::Typed(_) | Row::TypedSpin | Row::BlockingEcho | Row::WaitSetEcho => {
                let conn = self.conn();
                if row == Row::TypedSpin {
                    conn.set_spin(Some(SPIN));
                }
                let start = Instant::now();
                for i in 0..PINGS {
                    conn.send(&i).unwrap();
                    assert_eq!(conn.recv().unwrap(), i);
                }
                start.elapsed()
            }
            Row::Bytes(_) | Row::Python => {
                let conn = self.conn();
                let mut back = [0u8; 8];
                let start = Instant::now();
                for i in 0..PINGS {
                    conn.send_bytes(&i.to_ne_bytes()).unwrap();
                    assert_eq!(conn.recv_bytes_into(&mut back).unwrap(), 8);
                    assert_eq!(u64::from_ne_bytes(back), i);
                }
                start.elapsed()
            }
            Row::IpcTyped => {
                let Some(Hello::Typed(tx, rx)) = &self.ipc else {
                    unreachable!()
                };
                let start = Instant::now();
                for i in 0..PINGS {
                    tx.send(i).unwrap();
                    assert_eq!(rx.recv().unwrap(), i);
                }
                start.elapsed()
            }
            Row::IpcBytes => {
                let Some(Hello::Bytes(tx, rx)) = &self.ipc else {
                    unreachable!()
                };
                let start = Instant::now();
                for i in 0..PINGS {
                    tx.send(&i.to_ne_bytes()).unwrap();
                    assert_eq!(rx.recv().unwrap().len(), 8);
                }
                start.elapsed()
            }
            Row::Interprocess => {
                let mut stream = self.interprocess.as_ref().unwrap();
                let mut frame = [0u8; 12];
                frame[..4].copy_from_slice(&8u32.to_be_bytes());
                let mut back = [0u8; 12];
                let start = Instant::now();
                for i in 0..PINGS {
                    frame[4..].copy_from_slice(&i.to_ne_bytes());
                    stream.write_all(&frame).unwrap();
                    stream.read_exact(&mut back).unwrap();
                    assert_eq!(back, frame);
                }
                start.elapsed()
            }
            Row::PostcardBulk | Row::MemfdPostcardBulk => bulk(self.postcard.as_ref().unwrap()),
            Row::RkyvBulk | Row::MemfdRkyvBulk => bulk(self.rkyv.as_ref().unwrap()),
            Row::MemfdBytesBulk => bulk_bytes(self.postcard.as_ref().unwrap()),
        }
    }

    fn finish(self) {
        let Peer {
            mut child,
            spawned,
            accepted,
            postcard,
            rkyv,
            ipc,
            interprocess,
            ..
        } = self;
        drop((spawned, accepted, postcard, rkyv, ipc, interprocess));
        let status = child.wait().unwrap();
        assert!(status.success(), "a peer failed: {status}");
    }
}

/// Sends 16 MiB of `f64` as a typed `Vec` [`BULKS`] times, each acknowledged with one byte.
fn bulk<C: procwire::codec::Encode<Vec<f64>>>(conn: &Connection<Vec<f64>, u8, C>) -> Duration {
    bulk_with(conn, |c, data| c.send(data))
}

/// Sends 16 MiB of `f64` with `send_bytes` [`BULKS`] times, each acknowledged with one byte.
fn bulk_bytes(conn: &Connection<Vec<f64>, u8>) -> Duration {
    bulk_with(conn, |c, data| c.send_bytes(data))
}

/// Sends 16 MiB of `f64` with `send` [`BULKS`] times, each acknowledged with one byte.
fn bulk_with<C>(
    conn: &Connection<Vec<f64>, u8, C>,
    send: impl Fn(&Connection<Vec<f64>, u8, C>, &Vec<f64>) -> procwire::Result<()>,
) -> Duration {
    let data: Vec<f64> = (0..BULK / 8).map(|i| i as f64).collect();
    let mut ack = [0u8; 1];
    let start = Instant::now();
    for _ in 0..BULKS {
        send(conn, &data).unwrap();
        assert_eq!(conn.recv_bytes_into(&mut ack).unwrap(), 1);
    }
    start.elapsed()
}

/// The threshold of the memfd rows' senders; their receivers map at most [`MEMFD_MAX`].
const MEMFD_THRESHOLD: usize = 1 << 20;
const MEMFD_MAX: u64 = 256 << 20;

/// The floor: each side one `send` and one `recv` per message (a 12-byte frame, as
/// procwire's for an 8-byte payload), or for bulk one frame written and read whole.
fn raw(conn: &Conn, row: Row) -> Duration {
    let fd = conn.as_fd();
    if row == Row::RawBulk {
        let mut file = std::fs::File::from(fd.try_clone_to_owned().unwrap());
        let data: Vec<f64> = (0..BULK / 8).map(|i| i as f64).collect();
        let header = (BULK as u32).to_be_bytes();
        let mut ack = [0u8; 5];
        let start = Instant::now();
        for _ in 0..BULKS {
            file.write_all(&header).unwrap();
            file.write_all(bytemuck::cast_slice(&data)).unwrap();
            file.read_exact(&mut ack).unwrap();
        }
        return start.elapsed();
    }
    let mut frame = [0u8; 12];
    frame[..4].copy_from_slice(&8u32.to_be_bytes());
    let mut back = [0u8; 12];
    let mut control = [std::mem::MaybeUninit::<u8>::uninit(); CONTROL];
    let mut big = vec![0u8; 64 << 10];
    let start = Instant::now();
    for i in 0..PINGS {
        frame[4..].copy_from_slice(&i.to_ne_bytes());
        assert_eq!(
            rustix::net::send(fd, &frame, rustix::net::SendFlags::NOSIGNAL).unwrap(),
            12
        );
        let n = raw_recv(row, fd, &mut back, &mut control, &mut big);
        assert_eq!(n, 12);
    }
    start.elapsed()
}

/// One receive of a raw row: `recvmsg` with a control buffer, busy-polling, or `recv`.
fn raw_recv(
    row: Row,
    fd: std::os::fd::BorrowedFd<'_>,
    buf: &mut [u8],
    control: &mut [std::mem::MaybeUninit<u8>],
    big: &mut [u8],
) -> usize {
    match row {
        Row::RawMsg => recvmsg(fd, buf, control),
        Row::RawBusy => recv_busy(fd, buf),
        Row::RawBigTcp => {
            let (n, _) = rustix::net::recv(fd, &mut *big, rustix::net::RecvFlags::empty()).unwrap();
            let m = n.min(buf.len());
            buf[..m].copy_from_slice(&big[..m]);
            n
        }
        _ => {
            rustix::net::recv(fd, buf, rustix::net::RecvFlags::empty())
                .unwrap()
                .0
        }
    }
}

/// How long the `typed-spin` row's receives spin at most.
const SPIN: Duration = Duration::from_micros(50);

/// Non-blocking `recv` until something arrives; after 2 ms of nothing (between rounds,
/// while other rows run), a blocking one, so an idle peer does not keep its core busy.
fn recv_busy(fd: std::os::fd::BorrowedFd<'_>, buf: &mut [u8]) -> usize {
    let start = Instant::now();
    loop {
        match rustix::net::recv(fd, &mut *buf, rustix::net::RecvFlags::DONTWAIT) {
            Ok((n, _)) => return n,
            Err(rustix::io::Errno::AGAIN) if start.elapsed() < Duration::from_millis(2) => {
                std::hint::spin_loop()
            }
            Err(rustix::io::Errno::AGAIN) => {
                return rustix::net::recv(fd, buf, rustix::net::RecvFlags::empty())
                    .expect("recv")
                    .0
            }
            Err(e) => panic!("busy recv: {e}"),
        }
    }
}

/// Room for 253 descriptors, as procwire's reader has.
const CONTROL: usize = rustix::cmsg_space!(ScmRights(253));

/// One `recvmsg` with a control buffer, as a reader that may get descriptors makes.
fn recvmsg(
    fd: std::os::fd::BorrowedFd<'_>,
    buf: &mut [u8],
    space: &mut [std::mem::MaybeUninit<u8>],
) -> usize {
    let mut control = rustix::net::RecvAncillaryBuffer::new(space);
    let msg = rustix::net::recvmsg(
        fd,
        &mut [std::io::IoSliceMut::new(buf)],
        &mut control,
        rustix::net::RecvFlags::CMSG_CLOEXEC,
    )
    .unwrap();
    assert_eq!(control.drain().count(), 0);
    msg.bytes
}

fn child(role: &str) {
    let row = *Row::all()
        .iter()
        .find(|r| r.name() == role)
        .expect("a known role");
    match row {
        Row::PostcardBulk | Row::MemfdPostcardBulk => {
            let conn = procwire::from_parent::<u8, Vec<f64>>().unwrap();
            if row == Row::MemfdPostcardBulk {
                conn.accept_large_memfd(MEMFD_MAX).unwrap();
            }
            while let Ok(v) = conn.recv() {
                assert_eq!(v.len(), BULK / 8);
                conn.send(&1).unwrap();
            }
            return;
        }
        Row::IpcTyped => {
            let hello = IpcSender::<Hello>::connect(std::env::var(IPC_ENV).unwrap()).unwrap();
            let (to_child, from_parent) = ipc::channel::<u64>().unwrap();
            let (to_parent, from_child) = ipc::channel::<u64>().unwrap();
            hello.send(Hello::Typed(to_child, from_child)).unwrap();
            while let Ok(v) = from_parent.recv() {
                to_parent.send(v).unwrap();
            }
            return;
        }
        Row::IpcBytes => {
            let hello = IpcSender::<Hello>::connect(std::env::var(IPC_ENV).unwrap()).unwrap();
            let (to_child, from_parent) = ipc::bytes_channel().unwrap();
            let (to_parent, from_child) = ipc::bytes_channel().unwrap();
            hello.send(Hello::Bytes(to_child, from_child)).unwrap();
            while let Ok(v) = from_parent.recv() {
                to_parent.send(&v).unwrap();
            }
            return;
        }
        Row::Interprocess => {
            let addr = std::env::var(ADDR_ENV).unwrap();
            let name = addr.to_fs_name::<GenericFilePath>().unwrap();
            let mut stream = LocalStream::connect(name).unwrap();
            let mut frame = [0u8; 12];
            while stream.read_exact(&mut frame).is_ok() {
                stream.write_all(&frame).unwrap();
            }
            return;
        }
        Row::MemfdBytesBulk => {
            let conn = procwire::from_parent::<u8, Vec<f64>>().unwrap();
            conn.accept_large_memfd(MEMFD_MAX).unwrap();
            let mut buf = vec![0f64; BULK / 8];
            while let Ok(n) = conn.recv_bytes_into(&mut buf) {
                assert_eq!(n, BULK);
                assert_eq!(buf[BULK / 8 - 1], (BULK / 8 - 1) as f64);
                conn.send(&1).unwrap();
            }
            return;
        }
        Row::RkyvBulk | Row::MemfdRkyvBulk => {
            let conn = procwire::from_parent_with::<u8, Vec<f64>, _>(Rkyv::new()).unwrap();
            if row == Row::MemfdRkyvBulk {
                conn.accept_large_memfd(MEMFD_MAX).unwrap();
            }
            loop {
                let Ok(v) = conn.recv_archived() else { return };
                assert_eq!(v.len(), BULK / 8);
                assert_eq!(v[BULK / 8 - 1].to_native(), (BULK / 8 - 1) as f64);
                drop(v);
                conn.send_bytes(&[1u8]).unwrap();
            }
        }
        _ => {}
    }
    let spawned = procwire::from_parent::<u64, u64>().unwrap();
    let conn = match std::env::var(ADDR_ENV) {
        Ok(addr) => Client::connect::<u64, u64, _>(addr.as_str()).unwrap(),
        Err(_) => spawned,
    };
    match row {
        Row::Raw(_) | Row::RawMsg | Row::RawBigTcp | Row::RawBusy => {
            let fd = conn.as_fd();
            let mut buf = [0u8; 12];
            let mut control = [std::mem::MaybeUninit::<u8>::uninit(); CONTROL];
            let mut big = vec![0u8; 64 << 10];
            loop {
                let n = raw_recv(row, fd, &mut buf, &mut control, &mut big);
                match n {
                    12 => {}
                    0 => return,
                    other => panic!("raw echo: {other}"),
                }
                rustix::net::send(fd, &buf, rustix::net::SendFlags::NOSIGNAL).unwrap();
            }
        }
        Row::RawBulk => {
            let mut file = std::fs::File::from(conn.as_fd().try_clone_to_owned().unwrap());
            let mut buf = vec![0u8; BULK + 4];
            let mut ack = [0u8; 5];
            ack[..4].copy_from_slice(&1u32.to_be_bytes());
            ack[4] = 1;
            while file.read_exact(&mut buf).is_ok() {
                file.write_all(&ack).unwrap();
            }
        }
        Row::Typed(_) | Row::TypedSpin | Row::BlockingEcho => {
            if row == Row::TypedSpin {
                conn.set_spin(Some(SPIN));
            }
            while let Ok(v) = conn.recv() {
                conn.send(&v).unwrap();
            }
        }
        Row::Bytes(_) => {
            let mut buf = [0u8; 8];
            while let Ok(n) = conn.recv_bytes_into(&mut buf) {
                conn.send_bytes(&buf[..n]).unwrap();
            }
        }
        Row::WaitSetEcho => {
            let mut set = WaitSet::new().unwrap();
            let mut peers = Vec::new();
            for i in 0..IDLE {
                let (ours, theirs) = procwire::duplex::<u64, u64>().unwrap();
                set.insert(i, ours).unwrap();
                peers.push(theirs);
            }
            set.insert(usize::MAX, conn).unwrap();
            let mut ready = Vec::new();
            loop {
                set.wait(&mut ready, None).unwrap();
                for key in &ready {
                    let c = set.get(key).unwrap();
                    match c.try_recv() {
                        Ok(v) => c.send(&v).unwrap(),
                        Err(e) if e.is_disconnected() => return,
                        Err(e) => panic!("waitset echo: {e}"),
                    }
                }
            }
        }
        Row::PostcardBulk
        | Row::RkyvBulk
        | Row::MemfdBytesBulk
        | Row::MemfdPostcardBulk
        | Row::MemfdRkyvBulk
        | Row::IpcTyped
        | Row::IpcBytes
        | Row::Interprocess
        | Row::Python => {
            unreachable!()
        }
    }
}
