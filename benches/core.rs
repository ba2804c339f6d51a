//! Core benchmarks: each group measures procwire against a raw socketpair baseline in the
//! same run, so the procwire/raw ratio is direct.
//!
//! Headline numbers, both threads on one core (on a 2-core VM a blocking round trip costs
//! ~9 µs on one core and 50-120 µs across cores, and unpinned runs flip between the two):
//!
//! ```text
//! taskset -c 0 cargo bench -p procwire-benches --bench core
//! ```
//!
//! Cross-core: the measuring thread on CPU 0, the peer thread on CPU 1:
//!
//! ```text
//! PROCWIRE_BENCH_CORES=split cargo bench -p procwire-benches --bench core
//! ```
//!
//! One group only: append `-- pingpong_u64` or `-- bulk_f64`.
//!
//! - `pingpong_u64`: one typed `u64` round trip over [`procwire::duplex`] to an echo thread,
//!   against one 8-byte `write` and one `read` on a std `UnixStream::pair`.
//! - `bulk_f64`: `send_bytes` of a 1 MiB or 16 MiB `f64` array to a thread that receives it
//!   with `recv_bytes_into` into a preallocated buffer and acknowledges it with a one-byte
//!   message, against `write_all` / `read_exact` of the same bytes and a one-byte
//!   acknowledgement on a socketpair.

mod support;

use std::hint::black_box;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};
use support::pin_current_thread;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, Throughput};

/// The environment variable that selects cross-core pinning (`split`).
const CORES_ENV: &str = "PROCWIRE_BENCH_CORES";

/// Whether the measuring thread and its peer are pinned to different cores.
fn split_cores() -> bool {
    std::env::var(CORES_ENV).is_ok_and(|v| v == "split")
}

/// Pins the measuring thread to CPU 0 in `split` mode; otherwise leaves the inherited
/// affinity (for example from `taskset`) alone.
fn pin_client() {
    if split_cores() {
        pin_current_thread(0);
    }
}

/// Starts the long-lived peer thread, on CPU 1 in `split` mode.
fn spawn_peer<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> JoinHandle<T> {
    let split = split_cores();
    thread::spawn(move || {
        if split {
            pin_current_thread(1);
        }
        f()
    })
}

/// Criterion settings that keep the whole bench within a few minutes.
fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

fn pingpong_procwire(group: &mut BenchmarkGroup<'_, WallTime>) {
    let (client, server) = procwire::duplex::<u64, u64>().expect("duplex");
    let echo = spawn_peer(move || {
        for value in server.iter() {
            server.send(&value.expect("echo recv")).expect("echo send");
        }
    });
    group.bench_function("procwire", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for i in 0..iters {
                client.send(&i).expect("send");
                assert_eq!(black_box(client.recv().expect("recv")), i);
            }
            start.elapsed()
        })
    });
    drop(client);
    echo.join().expect("echo thread");
}

fn pingpong_raw(group: &mut BenchmarkGroup<'_, WallTime>) {
    let (mut client, mut server) = UnixStream::pair().expect("socketpair");
    let echo = spawn_peer(move || {
        let mut buf = [0u8; 8];
        while server.read_exact(&mut buf).is_ok() {
            server.write_all(&buf).expect("echo write");
        }
    });
    group.bench_function("raw", |b| {
        b.iter_custom(|iters| {
            let mut buf = [0u8; 8];
            let start = Instant::now();
            for i in 0..iters {
                client.write_all(&i.to_ne_bytes()).expect("write");
                client.read_exact(&mut buf).expect("read");
                assert_eq!(black_box(u64::from_ne_bytes(buf)), i);
            }
            start.elapsed()
        })
    });
    drop(client);
    echo.join().expect("echo thread");
}

fn pingpong_u64(c: &mut Criterion) {
    pin_client();
    let mut group = c.benchmark_group("pingpong_u64");
    pingpong_procwire(&mut group);
    pingpong_raw(&mut group);
    group.finish();
}

/// Sends `data` once per iteration and waits for the peer's acknowledgement; the peer
/// returns its receive buffer when the client hangs up, and it must equal `data`.
fn bulk_procwire(group: &mut BenchmarkGroup<'_, WallTime>, label: &str, data: &[f64]) {
    let (client, server) = procwire::duplex::<u8, u8>().expect("duplex");
    let len = data.len();
    let peer = spawn_peer(move || {
        let mut buf = vec![0f64; len];
        loop {
            match server.recv_bytes_into(&mut buf) {
                Ok(n) => assert_eq!(n, len * 8),
                Err(procwire::Error::Disconnected) => return buf,
                Err(e) => panic!("peer recv: {e}"),
            }
            server.send_bytes(&[1u8]).expect("peer ack");
        }
    });
    group.bench_function(BenchmarkId::new("procwire", label), |b| {
        b.iter_custom(|iters| {
            let mut ack = [0u8; 1];
            let start = Instant::now();
            for _ in 0..iters {
                client.send_bytes(data).expect("send_bytes");
                client.recv_bytes_into(&mut ack).expect("ack");
            }
            start.elapsed()
        })
    });
    drop(client);
    assert!(
        peer.join().expect("peer thread") == data,
        "payload corrupted"
    );
}

/// The same exchange as [`bulk_procwire`] with `write_all` / `read_exact` on a socketpair.
fn bulk_raw(group: &mut BenchmarkGroup<'_, WallTime>, label: &str, data: &[f64]) {
    let (mut client, mut server) = UnixStream::pair().expect("socketpair");
    let len = data.len();
    let peer = spawn_peer(move || {
        let mut buf = vec![0f64; len];
        while server
            .read_exact(bytemuck::cast_slice_mut(&mut buf))
            .is_ok()
        {
            server.write_all(&[1u8]).expect("peer ack");
        }
        buf
    });
    group.bench_function(BenchmarkId::new("raw", label), |b| {
        b.iter_custom(|iters| {
            let mut ack = [0u8; 1];
            let start = Instant::now();
            for _ in 0..iters {
                client
                    .write_all(bytemuck::cast_slice(data))
                    .expect("write_all");
                client.read_exact(&mut ack).expect("ack");
            }
            start.elapsed()
        })
    });
    drop(client);
    assert!(
        peer.join().expect("peer thread") == data,
        "payload corrupted"
    );
}

fn bulk_f64(c: &mut Criterion) {
    pin_client();
    let mut group = c.benchmark_group("bulk_f64");
    // Linear sampling needs sample_size² / 2 iterations at least: keep 16 MiB runs short.
    group.sample_size(20);
    for (bytes, label) in [(1usize << 20, "1MiB"), (16 << 20, "16MiB")] {
        let data: Vec<f64> = (0..bytes / 8).map(|i| i as f64).collect();
        group.throughput(Throughput::Bytes(bytes as u64));
        bulk_procwire(&mut group, label, &data);
        bulk_raw(&mut group, label, &data);
    }
    group.finish();
}

fn main() {
    let mut c = config().configure_from_args();
    pingpong_u64(&mut c);
    bulk_f64(&mut c);
    c.final_summary();
}
