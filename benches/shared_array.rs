//! A 16 MiB and a 256 MiB `f64` array to a peer thread, four ways, in one run:
//!
//! ```text
//! taskset -c 0 cargo bench --bench shared_array      # headline: both threads on one core
//! ```
//!
//! - `raw`: `write_all` / `read_exact` on a std `UnixStream::pair` into a preallocated
//!   buffer, and a one-byte acknowledgement: the kernel copies the data twice.
//! - `send_bytes`: procwire's `send_bytes` → `recv_bytes_into` the same kind of buffer,
//!   and a one-byte acknowledgement, over [`procwire::duplex`].
//! - `shm`: the array already sits in a [`procwire::SharedArray`]; `send_array` passes its
//!   memfd, the peer's `recv_array` checks the seals and maps it read-only.
//! - `shm_copy_in`: as `shm`, but each iteration first copies the source `Vec` into a fresh
//!   memfd and seals it (`SharedArray::from_slice`): the cost when the data was not
//!   produced in shared memory to begin with.
//!
//! In every variant the peer then reads one `f64` from every 4 KiB page of what it
//! received, adds them up and sends the acknowledgement; the shared-memory peer then drops
//! its mapping. Reading every page makes the mapping paths pay for their page faults, as
//! the copy paths pay for writing every page. The throughput is the array's size per
//! round trip.

use std::hint::black_box;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::thread;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, SamplingMode, Throughput};
use procwire::SharedArray;

/// `f64`s per 4 KiB page.
const PAGE: usize = 4096 / 8;

/// One value from every page of `data`, summed: touches every page once.
fn touch_pages(data: &[f64]) -> f64 {
    data.iter().step_by(PAGE).sum()
}

fn raw(group: &mut BenchmarkGroup<'_, WallTime>, label: &str, data: &[f64]) {
    let (mut client, mut server) = UnixStream::pair().expect("socketpair");
    let len = data.len();
    let peer = thread::spawn(move || {
        let mut buf = vec![0f64; len];
        while server
            .read_exact(bytemuck::cast_slice_mut(&mut buf))
            .is_ok()
        {
            black_box(touch_pages(&buf));
            server.write_all(&[1u8]).expect("peer ack");
        }
        buf
    });
    group.bench_function(BenchmarkId::new("raw", label), |b| {
        b.iter_custom(|iters| {
            let mut ack = [0u8; 1];
            let start = Instant::now();
            for _ in 0..iters {
                client.write_all(bytemuck::cast_slice(data)).expect("write");
                client.read_exact(&mut ack).expect("ack");
            }
            start.elapsed()
        })
    });
    drop(client);
    assert!(peer.join().expect("peer") == data, "payload corrupted");
}

fn send_bytes(group: &mut BenchmarkGroup<'_, WallTime>, label: &str, data: &[f64]) {
    let (client, server) = procwire::duplex::<(), ()>().expect("duplex");
    let len = data.len();
    let peer = thread::spawn(move || {
        let mut buf = vec![0f64; len];
        loop {
            match server.recv_bytes_into(&mut buf) {
                Ok(n) => assert_eq!(n, len * 8),
                Err(procwire::Error::Disconnected) => return buf,
                Err(e) => panic!("peer recv: {e}"),
            }
            black_box(touch_pages(&buf));
            server.send_bytes(&[1u8]).expect("peer ack");
        }
    });
    group.bench_function(BenchmarkId::new("send_bytes", label), |b| {
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
    assert!(peer.join().expect("peer") == data, "payload corrupted");
}

/// The shared-memory round trips; `copy_in` makes a fresh array from `data` each time.
fn shm(group: &mut BenchmarkGroup<'_, WallTime>, label: &str, data: &[f64], copy_in: bool) {
    let (client, server) = procwire::duplex::<(), ()>().expect("duplex");
    let expected = touch_pages(data);
    let peer = thread::spawn(move || loop {
        match server.recv_array::<f64>() {
            Ok(array) => assert_eq!(touch_pages(&array), expected),
            Err(procwire::Error::Disconnected) => return,
            Err(e) => panic!("peer recv_array: {e}"),
        }
        server.send_bytes(&[1u8]).expect("peer ack");
    });
    let prepared = SharedArray::from_slice(data).expect("shared array");
    assert!(*prepared == *data);
    let name = if copy_in { "shm_copy_in" } else { "shm" };
    group.bench_function(BenchmarkId::new(name, label), |b| {
        b.iter_custom(|iters| {
            let mut ack = [0u8; 1];
            let start = Instant::now();
            for _ in 0..iters {
                if copy_in {
                    let fresh = SharedArray::from_slice(data).expect("shared array");
                    client.send_array(&fresh).expect("send_array");
                } else {
                    client.send_array(&prepared).expect("send_array");
                }
                client.recv_bytes_into(&mut ack).expect("ack");
            }
            start.elapsed()
        })
    });
    drop(client);
    peer.join().expect("peer");
}

fn array_f64(c: &mut Criterion) {
    let mut group = c.benchmark_group("array_f64");
    group.sampling_mode(SamplingMode::Flat).sample_size(10);
    for (bytes, label) in [(16usize << 20, "16MiB"), (256 << 20, "256MiB")] {
        let data: Vec<f64> = (0..bytes / 8).map(|i| i as f64).collect();
        group.throughput(Throughput::Bytes(bytes as u64));
        raw(&mut group, label, &data);
        send_bytes(&mut group, label, &data);
        shm(&mut group, label, &data, false);
        shm(&mut group, label, &data, true);
    }
    group.finish();
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    array_f64(&mut c);
    c.final_summary();
}
