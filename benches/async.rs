//! Async procwire against blocking procwire and against the usual tokio stack, every row
//! against a peer in its own process (this binary, started again as an echo child over an
//! inherited socket pair).
//!
//! ```text
//! taskset -c 0 cargo bench -p procwire-benches --bench async --features async   # headline: every process on one core
//! cargo bench -p procwire-benches --bench async --features async                # unpinned (cross-core)
//! ```
//!
//! Rows, all in one run, interleaved round by round (`PROCWIRE_BENCH_ROUNDS`, default 7),
//! medians reported:
//!
//! - `u64 round trip`: a typed `u64` to the echo child and back, on the parent's side
//!   through (a) blocking procwire, (b) async procwire on a current-thread tokio runtime,
//!   (c) tokio-util's `LengthDelimitedCodec` + postcard over a tokio `UnixStream` — the
//!   same 4-byte big-endian frames, so one echo child serves all three.
//! - the same round trip through the async-io driver, on `async_io::block_on` and inside
//!   the tokio runtime (where async-io's own reactor thread does the waiting): what a
//!   single runtime-agnostic driver would cost tokio users.
//! - `16 MiB bytes`: `send_bytes` of 16 MiB to the echo child, which receives it with
//!   `recv_bytes_into` and sends it back; the parent receives it with `recv_bytes_into`,
//!   blocking against async.
//!
//! Targets (issue #14): async round trip at most 1.25× blocking and faster than the
//! tokio-util stack; async bulk at least 0.9× blocking throughput.

use std::os::fd::AsFd;
use std::process::Command;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use procwire::aio::{AsyncIo, Tokio};
use procwire::Connection;

const ROLE_ENV: &str = "PROCWIRE_BENCH_ASYNC_ROLE";
const ROUNDS_ENV: &str = "PROCWIRE_BENCH_ROUNDS";
/// Runs one row once and nothing else, for `strace -c -f`: `blocking`, `async`,
/// `tokio-util`, `async-io`, `bulk-blocking`, `bulk-async`.
const ONLY_ENV: &str = "PROCWIRE_BENCH_ONLY";
const BULK: usize = 16 << 20;
const PINGS: u64 = 20_000;
const BULKS: usize = 40;

fn main() {
    if let Ok(role) = std::env::var(ROLE_ENV) {
        return child(&role);
    }
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list`: nothing for criterion's harness protocol
    }
    if let Ok(row) = std::env::var(ONLY_ENV) {
        return only(&row);
    }
    let rounds: usize = std::env::var(ROUNDS_ENV).map_or(7, |r| r.parse().expect("rounds"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    let (mut pinger, ping_child) = spawn("echo_u64");
    let (mut bulker, bulk_child) = spawn("echo_bytes");
    let mut rows: [(&str, Vec<f64>); 7] = [
        ("u64 round trip, blocking procwire (µs)", Vec::new()),
        ("u64 round trip, async procwire (µs)", Vec::new()),
        ("u64 round trip, tokio-util + postcard (µs)", Vec::new()),
        ("u64 round trip, async-io driver, block_on (µs)", Vec::new()),
        ("u64 round trip, async-io driver in tokio (µs)", Vec::new()),
        ("16 MiB echo, blocking procwire (ms)", Vec::new()),
        ("16 MiB echo, async procwire (ms)", Vec::new()),
    ];
    let mut ratios: [(&str, Vec<f64>); 3] = [
        ("async / blocking round trip", Vec::new()),
        ("async / tokio-util round trip", Vec::new()),
        ("async / blocking bulk throughput", Vec::new()),
    ];
    let data: Vec<f64> = (0..BULK / 8).map(|i| i as f64).collect();
    let mut back = vec![0f64; BULK / 8];
    for round in 0..rounds {
        let blocking = ping_blocking(&pinger);
        let (a, conn) = rt.block_on(ping_on::<Tokio>(pinger));
        pinger = conn;
        let tokio_util = rt.block_on(ping_tokio_util(&pinger));
        let (aio_own, conn) = async_io::block_on(ping_on::<AsyncIo>(pinger));
        let (aio_in_tokio, conn) = rt.block_on(ping_on::<AsyncIo>(conn));
        pinger = conn;
        let bulk_blocking = bulk_blocking(&bulker, &data, &mut back);
        let (bulk_async, conn) = rt.block_on(bulk_async(bulker, &data, &mut back));
        bulker = conn;
        let us = |d: Duration| d.as_secs_f64() * 1e6 / PINGS as f64;
        let ms = |d: Duration| d.as_secs_f64() * 1e3 / BULKS as f64;
        for (row, v) in rows.iter_mut().zip([
            us(blocking),
            us(a),
            us(tokio_util),
            us(aio_own),
            us(aio_in_tokio),
            ms(bulk_blocking),
            ms(bulk_async),
        ]) {
            row.1.push(v);
        }
        ratios[0].1.push(a.as_secs_f64() / blocking.as_secs_f64());
        ratios[1].1.push(a.as_secs_f64() / tokio_util.as_secs_f64());
        ratios[2]
            .1
            .push(bulk_blocking.as_secs_f64() / bulk_async.as_secs_f64());
        eprintln!(
            "round {round}: rt blocking {:.2} µs, async {:.2} µs, tokio-util {:.2} µs; \
             16 MiB blocking {:.2} ms, async {:.2} ms",
            us(blocking),
            us(a),
            us(tokio_util),
            ms(bulk_blocking),
            ms(bulk_async)
        );
    }
    println!("medians of {rounds} interleaved rounds, peer in its own process:");
    for (name, v) in rows.iter_mut().chain(ratios.iter_mut()) {
        println!("  {name:<45} {:>8.3}", median(v));
    }
    drop((pinger, bulker));
    for mut child in [ping_child, bulk_child] {
        child.wait().unwrap();
    }
}

/// One row, once, with a report of what it took per message (for syscall counts).
fn only(row: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let data: Vec<f64> = (0..BULK / 8).map(|i| i as f64).collect();
    let mut back = vec![0f64; BULK / 8];
    let role = if row.starts_with("bulk") {
        "echo_bytes"
    } else {
        "echo_u64"
    };
    let (conn, mut child) = spawn(role);
    let (took, n) = match row {
        "blocking" => (ping_blocking(&{ conn }), PINGS as usize),
        "async" => (rt.block_on(ping_on::<Tokio>(conn)).0, PINGS as usize),
        "tokio-util" => (rt.block_on(ping_tokio_util(&{ conn })), PINGS as usize),
        "async-io" => (
            async_io::block_on(ping_on::<AsyncIo>(conn)).0,
            PINGS as usize,
        ),
        "bulk-blocking" => (bulk_blocking(&{ conn }, &data, &mut back), BULKS),
        "bulk-async" => (rt.block_on(bulk_async(conn, &data, &mut back)).0, BULKS),
        other => panic!("no row {other}"),
    };
    println!("{row}: {n} messages in {took:?}");
    child.wait().unwrap();
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// This binary again, as an echo peer of `role` over an inherited socket.
fn spawn(role: &str) -> (Connection<u64, u64>, procwire::Child) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.env(ROLE_ENV, role);
    let (child, conn) = procwire::spawn::<u64, u64>(cmd).unwrap();
    (conn, child)
}

fn child(role: &str) {
    let conn = procwire::from_parent::<u64, u64>().unwrap();
    match role {
        "echo_u64" => {
            while let Ok(v) = conn.recv() {
                conn.send(&v).unwrap();
            }
        }
        "echo_bytes" => {
            let mut buf = vec![0f64; BULK / 8];
            while let Ok(n) = conn.recv_bytes_into(&mut buf[..]) {
                conn.send_bytes(&buf[..n / 8]).unwrap();
            }
        }
        other => panic!("no role {other}"),
    }
}

fn ping_blocking(conn: &Connection<u64, u64>) -> Duration {
    let start = Instant::now();
    for i in 0..PINGS {
        conn.send(&i).unwrap();
        assert_eq!(conn.recv().unwrap(), i);
    }
    start.elapsed()
}

/// The typed round trip on the async driver of `Rt`, on whatever executor polls it. For
/// the async-io driver: `async_io::block_on` drives the reactor on this thread; inside
/// tokio, async-io's own reactor thread does.
async fn ping_on<Rt: procwire::aio::Runtime>(
    conn: Connection<u64, u64>,
) -> (Duration, Connection<u64, u64>) {
    let mut conn =
        procwire::aio::Connection::<u64, u64, procwire::Postcard, Rt>::from_blocking(conn).unwrap();
    let start = Instant::now();
    for i in 0..PINGS {
        conn.send(&i).await.unwrap();
        assert_eq!(conn.recv().await.unwrap(), i);
    }
    let took = start.elapsed();
    (took, conn.into_blocking().unwrap())
}

/// The same frames through tokio-util's codec over a duplicate of the socket.
async fn ping_tokio_util(conn: &Connection<u64, u64>) -> Duration {
    let std = std::os::unix::net::UnixStream::from(conn.as_fd().try_clone_to_owned().unwrap());
    std.set_nonblocking(true).unwrap();
    let stream = tokio::net::UnixStream::from_std(std).unwrap();
    let mut framed =
        tokio_util::codec::Framed::new(stream, tokio_util::codec::LengthDelimitedCodec::new());
    let start = Instant::now();
    for i in 0..PINGS {
        let bytes = postcard::to_stdvec(&i).unwrap();
        framed
            .send(tokio_util::bytes::Bytes::from(bytes))
            .await
            .unwrap();
        let frame = framed.next().await.unwrap().unwrap();
        let v: u64 = postcard::from_bytes(&frame).unwrap();
        assert_eq!(v, i);
    }
    let took = start.elapsed();
    // Back to blocking for the blocking rows (the duplicate shares the file description).
    let std = framed.into_inner().into_std().unwrap();
    std.set_nonblocking(false).unwrap();
    took
}

fn bulk_blocking(conn: &Connection<u64, u64>, data: &[f64], back: &mut [f64]) -> Duration {
    let start = Instant::now();
    for _ in 0..BULKS {
        conn.send_bytes(data).unwrap();
        assert_eq!(conn.recv_bytes_into(back).unwrap(), BULK);
    }
    let took = start.elapsed();
    assert!(back == data);
    took
}

async fn bulk_async(
    conn: Connection<u64, u64>,
    data: &[f64],
    back: &mut [f64],
) -> (Duration, Connection<u64, u64>) {
    let mut conn = procwire::tokio::Connection::from_blocking(conn).unwrap();
    let start = Instant::now();
    for _ in 0..BULKS {
        // The echo child sends back while it is still receiving only after the whole
        // message is in, so send and receive need not overlap.
        conn.send_bytes(data).await.unwrap();
        assert_eq!(conn.recv_bytes_into(&mut back[..]).await.unwrap(), BULK);
    }
    let took = start.elapsed();
    assert!(back == data);
    (took, conn.into_blocking().unwrap())
}
