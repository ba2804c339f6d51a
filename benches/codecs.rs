//! Codec benchmark: one message `{ id: u64, samples: Vec<f64> }` of 2,000,000 samples
//! (16 MiB) from the measuring thread to a peer thread, which receives it and answers with
//! a one-byte acknowledgement. One group, so the ratios between its members are direct:
//!
//! - `raw`: `send_bytes(&samples)` and `recv_bytes_into` a preallocated `[f64]`, the
//!   baseline (no `id`, no encoding);
//! - `postcard`: typed `send` and `recv` with the default codec (serde, element by element);
//! - `rkyv_archived`: typed `send` with [`procwire::codec::Rkyv`] and `recv_archived`, which
//!   validates the archive in the receiver's buffer and reads `id` and a few samples in place;
//! - `rkyv_deserialize`: the same send, and `recv`, which deserialises to a new `Msg`;
//! - `ipc_channel`: servo's `ipc-channel`, an `IpcSender<Vec<f64>>` (bincode through serde)
//!   between the same two threads, acknowledged on an `IpcSender<u8>`. Its `send` takes the
//!   vector by value, so the copies it consumes are made before the clock starts.
//!
//! Both threads share one core, so the time is the whole CPU cost of a message:
//!
//! ```text
//! taskset -c 0 cargo bench -p procwire-benches --bench codecs --features rkyv
//! ```
//!
//! Medians of three runs on a shared 2-core VM (time per message; throughput relative to
//! `raw`; speed relative to `ipc_channel`):
//!
//! | bench | time | vs raw | vs ipc-channel |
//! | --- | --- | --- | --- |
//! | `raw` | 2.20 ms | 1 | 2.67× faster |
//! | `rkyv_archived` | 2.98 ms | 0.74× | 1.97× faster |
//! | `rkyv_deserialize` | 3.85 ms | 0.57× | 1.53× faster |
//! | `postcard` | 4.92 ms | 0.45× | 1.19× faster |
//! | `ipc_channel` | 5.87 ms | 0.37× | 1 |
//!
//! `rkyv_archived` receives as `raw` does (straight from the kernel into a kept buffer;
//! validation does not show in a profile). These figures are from before in-place encoding
//! (issue 17): the difference was on the sending side, where rkyv copied the samples into
//! the encode buffer once and `raw` writes from the caller's slice. Since then a blocking
//! send after a large message writes the samples from the caller's `Vec` too; the
//! two-process figures are `benches/floor.rs`'s (`docs/performance.md`). `postcard`
//! serialises and deserialises element by element.

use std::hint::black_box;
use std::thread;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput};
use ipc_channel::ipc;
use procwire::codec::Rkyv;
use procwire::Connection;
use serde::{Deserialize, Serialize};

const SAMPLES: usize = 2_000_000;

#[derive(
    Debug,
    Clone,
    PartialEq,
    Serialize,
    Deserialize,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
struct Msg {
    id: u64,
    samples: Vec<f64>,
}

fn message() -> Msg {
    Msg {
        id: 42,
        samples: (0..SAMPLES).map(|i| i as f64 * 0.5).collect(),
    }
}

/// Checks what the peer saw of a message: its id, length and a few samples.
fn check(id: u64, len: usize, first: f64, last: f64) {
    assert_eq!((id, len), (42, SAMPLES));
    assert_eq!((first, last), (0.0, (SAMPLES - 1) as f64 * 0.5));
}

/// Times `iters` sends of `send` on `client`, each answered by the peer's one-byte ack.
fn timed<S, C>(
    client: &Connection<S, u8, C>,
    iters: u64,
    send: impl Fn(&Connection<S, u8, C>),
) -> Duration
where
    C: procwire::codec::Encode<S> + procwire::codec::Decode<u8>,
{
    let start = Instant::now();
    for _ in 0..iters {
        send(client);
        assert_eq!(client.recv().expect("ack"), 1);
    }
    start.elapsed()
}

fn raw(group: &mut BenchmarkGroup<'_, WallTime>, msg: &Msg) {
    let (client, server) = procwire::duplex::<(), u8>().expect("duplex");
    let peer = thread::spawn(move || {
        let mut buf = vec![0f64; SAMPLES];
        while let Ok(n) = server.recv_bytes_into(&mut buf) {
            check(42, n / 8, buf[0], buf[SAMPLES - 1]);
            server.send(&1).expect("ack");
        }
    });
    let client: Connection<(), u8> = client;
    group.bench_function("raw", |b| {
        b.iter_custom(|iters| {
            timed(&client, iters, |c| {
                c.send_bytes(&msg.samples).expect("send")
            })
        })
    });
    drop(client);
    peer.join().expect("peer");
}

fn postcard(group: &mut BenchmarkGroup<'_, WallTime>, msg: &Msg) {
    let (client, server) = procwire::duplex::<Msg, u8>().expect("duplex");
    let peer = thread::spawn(move || {
        for m in server.iter() {
            let m = m.expect("recv");
            check(m.id, m.samples.len(), m.samples[0], m.samples[SAMPLES - 1]);
            server.send(&1).expect("ack");
        }
    });
    group.bench_function("postcard", |b| {
        b.iter_custom(|iters| timed(&client, iters, |c| c.send(msg).expect("send")))
    });
    drop(client);
    peer.join().expect("peer");
}

/// `rkyv_archived` when `archived`, else `rkyv_deserialize`.
fn rkyv(group: &mut BenchmarkGroup<'_, WallTime>, msg: &Msg, archived: bool) {
    let (client, server) = procwire::duplex_with::<Msg, u8, _>(Rkyv::new()).expect("duplex");
    let peer = thread::spawn(move || loop {
        if archived {
            let Ok(m) = server.recv_archived() else { break };
            let s = &m.samples;
            check(
                m.id.to_native(),
                s.len(),
                s[0].to_native(),
                s[SAMPLES - 1].to_native(),
            );
        } else {
            let Ok(m) = server.recv() else { break };
            check(m.id, m.samples.len(), m.samples[0], m.samples[SAMPLES - 1]);
        }
        server.send(&1).expect("ack");
    });
    let name = if archived {
        "rkyv_archived"
    } else {
        "rkyv_deserialize"
    };
    group.bench_function(name, |b| {
        b.iter_custom(|iters| timed(&client, iters, |c| c.send(msg).expect("send")))
    });
    drop(client);
    peer.join().expect("peer");
}

fn ipc_channel(group: &mut BenchmarkGroup<'_, WallTime>, msg: &Msg) {
    let (tx, rx) = ipc::channel::<Vec<f64>>().expect("ipc channel");
    let (ack_tx, ack_rx) = ipc::channel::<u8>().expect("ipc channel");
    let peer = thread::spawn(move || {
        while let Ok(samples) = rx.recv() {
            check(42, samples.len(), samples[0], samples[SAMPLES - 1]);
            ack_tx.send(1).expect("ack");
        }
    });
    group.bench_function("ipc_channel", |b| {
        b.iter_custom(|iters| {
            let copies: Vec<Vec<f64>> = (0..iters).map(|_| msg.samples.clone()).collect();
            let start = Instant::now();
            for samples in copies {
                tx.send(samples).expect("send");
                assert_eq!(ack_rx.recv().expect("ack"), 1);
            }
            start.elapsed()
        })
    });
    drop(tx);
    peer.join().expect("peer");
}

fn message_16mib(c: &mut Criterion) {
    let msg = message();
    let mut group = c.benchmark_group("message_16MiB");
    group.sample_size(10);
    group.throughput(Throughput::Bytes((SAMPLES * 8) as u64));
    raw(&mut group, &msg);
    postcard(&mut group, &msg);
    rkyv(&mut group, &msg, true);
    rkyv(&mut group, &msg, false);
    ipc_channel(&mut group, &msg);
    group.finish();
    black_box(msg);
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .configure_from_args();
    message_16mib(&mut c);
    c.final_summary();
}
