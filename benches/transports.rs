//! Every transport, each next to the raw syscall loop on the same kind of descriptors.
//!
//! ```text
//! taskset -c 0 cargo bench -p procwire-benches --bench transports          # headline: both threads on one core
//! cargo bench -p procwire-benches --bench transports                       # unpinned (cross-core), report apart
//! ```
//!
//! - `pingpong_u64`: a typed `u64` round trip to an echo thread, against one 8-byte `write`
//!   and one `read` each way on the same kind of descriptors.
//! - `bulk_16mib`: `send_bytes` of 16 MiB → `recv_bytes_into` a preallocated buffer plus a
//!   one-byte acknowledgement, against `write_all` / `read_exact` and a one-byte ack.
//!
//! The anonymous pipe is one-way, so its "link" is two pipes, one each way.

use std::fs::File;
use std::hint::black_box;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use procwire::{Client, Listener, Receiver, Sender};

const BULK: usize = 16 << 20;

/// One end of a link: what it sends and what it receives.
struct End {
    tx: Sender<u64>,
    rx: Receiver<u64>,
}

impl End {
    /// The same descriptors as plain files, for the raw loop.
    fn raw(&self) -> (File, File) {
        let dup = |fd: std::os::fd::BorrowedFd<'_>| File::from(fd.try_clone_to_owned().unwrap());
        (dup(self.tx.as_fd()), dup(self.rx.as_fd()))
    }
}

fn unique() -> usize {
    static N: AtomicUsize = AtomicUsize::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn via_listener(addr: String) -> (End, End) {
    let listener = Listener::bind(addr.as_str()).unwrap();
    let local = listener.local_addr().clone();
    let server = thread::spawn(move || listener.accept::<u64, u64>().unwrap());
    let client = Client::connect::<u64, u64, _>(&local).unwrap();
    let (a_tx, a_rx) = client.split();
    let (b_tx, b_rx) = server.join().unwrap().split();
    (End { tx: a_tx, rx: a_rx }, End { tx: b_tx, rx: b_rx })
}

/// A fresh connected pair over `transport`, or `None` when the host lacks it.
fn link(transport: &str) -> Option<(End, End)> {
    let n = unique();
    let dir = std::env::temp_dir();
    let pid = std::process::id();
    Some(match transport {
        "socketpair" => {
            let (a, b) = procwire::duplex::<u64, u64>().unwrap();
            let ((a_tx, a_rx), (b_tx, b_rx)) = (a.split(), b.split());
            (End { tx: a_tx, rx: a_rx }, End { tx: b_tx, rx: b_rx })
        }
        "pipe" => {
            let (ab_tx, ab_rx) = procwire::pipe::<u64>().unwrap();
            let (ba_tx, ba_rx) = procwire::pipe::<u64>().unwrap();
            (
                End {
                    tx: ab_tx,
                    rx: ba_rx,
                },
                End {
                    tx: ba_tx,
                    rx: ab_rx,
                },
            )
        }
        "tcp4" => via_listener("127.0.0.1:0".into()),
        "tcp6" => {
            std::net::TcpListener::bind("[::1]:0").ok()?;
            via_listener("[::1]:0".into())
        }
        "unix" => via_listener(
            dir.join(format!("pw-bench-{pid}-{n}.sock"))
                .display()
                .to_string(),
        ),
        "abstract" => via_listener(format!("@pw-bench-{pid}-{n}")),
        "fifo" => via_listener(format!(
            "fifo://{}",
            dir.join(format!("pw-bench-{pid}-{n}")).display()
        )),
        _ => unreachable!(),
    })
}

const TRANSPORTS: [&str; 7] = [
    "socketpair",
    "pipe",
    "tcp4",
    "tcp6",
    "unix",
    "abstract",
    "fifo",
];

fn pingpong(c: &mut Criterion) {
    let mut g = c.benchmark_group("pingpong_u64");
    g.sample_size(20)
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500));
    for t in TRANSPORTS {
        let Some((a, b)) = link(t) else {
            eprintln!("{t}: not available on this host");
            continue;
        };
        let echo = thread::spawn(move || {
            while let Ok(v) = b.rx.recv() {
                if b.tx.send(&v).is_err() {
                    break;
                }
            }
        });
        g.bench_function(BenchmarkId::new("procwire", t), |bench| {
            let mut i = 0u64;
            bench.iter(|| {
                i += 1;
                a.tx.send(&i).unwrap();
                black_box(a.rx.recv().unwrap())
            })
        });
        drop(a);
        echo.join().unwrap();

        let (a, b) = link(t).unwrap();
        let ((mut a_tx, mut a_rx), (mut b_tx, mut b_rx)) = (a.raw(), b.raw());
        let echo = thread::spawn(move || {
            let mut buf = [0u8; 8];
            while b_rx.read_exact(&mut buf).is_ok() && b_tx.write_all(&buf).is_ok() {}
        });
        g.bench_function(BenchmarkId::new("raw", t), |bench| {
            let mut buf = [0u8; 8];
            let mut i = 0u64;
            bench.iter(|| {
                i += 1;
                assert_eq!(a_tx.write(&i.to_le_bytes()).unwrap(), 8);
                a_rx.read_exact(&mut buf).unwrap();
                black_box(buf)
            })
        });
        drop((a, b, a_tx, a_rx));
        echo.join().unwrap();
    }
    g.finish();
}

fn bulk(c: &mut Criterion) {
    let mut g = c.benchmark_group("bulk_16mib");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_millis(500));
    g.throughput(Throughput::Bytes(BULK as u64));
    let data: Vec<f64> = (0..BULK / 8).map(|i| i as f64).collect();
    for t in TRANSPORTS {
        let Some((a, b)) = link(t) else { continue };
        let sink = thread::spawn(move || {
            let mut buf = vec![0f64; BULK / 8];
            while b.rx.recv_bytes_into(&mut buf).is_ok() && b.tx.send_bytes(&[1u8]).is_ok() {}
        });
        g.bench_function(BenchmarkId::new("procwire", t), |bench| {
            let mut ack = [0u8; 1];
            bench.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    a.tx.send_bytes(&data).unwrap();
                    a.rx.recv_bytes_into(&mut ack).unwrap();
                }
                start.elapsed()
            })
        });
        drop(a);
        sink.join().unwrap();

        let (a, b) = link(t).unwrap();
        let ((mut a_tx, mut a_rx), (mut b_tx, mut b_rx)) = (a.raw(), b.raw());
        let sink = thread::spawn(move || {
            let mut buf = vec![0u8; BULK];
            while b_rx.read_exact(&mut buf).is_ok() && b_tx.write_all(&[1]).is_ok() {}
        });
        let bytes: &[u8] = bytemuck::cast_slice(&data);
        g.bench_function(BenchmarkId::new("raw", t), |bench| {
            let mut ack = [0u8; 1];
            bench.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    a_tx.write_all(bytes).unwrap();
                    a_rx.read_exact(&mut ack).unwrap();
                }
                start.elapsed()
            })
        });
        drop((a, b, a_tx, a_rx));
        sink.join().unwrap();
    }
    g.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    pingpong(&mut c);
    bulk(&mut c);
    c.final_summary();
}
