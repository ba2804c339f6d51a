//! A 16 MiB and a 256 MiB `f64` array to a peer thread, four ways, in one run:
//!
//! ```text
//! taskset -c 0 cargo bench -p procwire-benches --bench shared_array      # headline: both threads on one core
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
//!
//! Measured with `taskset -c 0` on the 2-core development VM (Linux 6.18), three runs,
//! median time per round trip and speed relative to `raw`:
//!
//! | variant | 16 MiB | vs raw | 256 MiB | vs raw |
//! | --- | --- | --- | --- | --- |
//! | `raw` | 2.65 ms | 1 | 48.0 ms | 1 |
//! | `send_bytes` | 2.63 ms | 1.03× | 47.1 ms | 1.01× |
//! | `shm` | 1.47 ms | 1.76× (1.71–2.06) | 33.3 ms | 1.35× (1.23–1.47) |
//! | `shm_copy_in` | 16.3 ms | 0.16× | 258 ms | 0.18× |
//!
//! The shared-memory round trip is almost all page mapping: a loop that only maps a sealed
//! 16 MiB memfd, reads one value per page and unmaps it takes 1.5–2 ms on this VM (about
//! 0.4 µs per 4 KiB page; `MAP_POPULATE` and `MAP_SHARED` change nothing), while one 16 MiB
//! `memcpy` takes 0.6 ms. Shared-memory transparent huge pages, which would map 2 MiB per
//! fault, are disabled here (`shmem_enabled` = `never`). `shm_copy_in` pays for a fresh
//! memfd's first-touch faults (allocating and zeroing every page), about 4 µs per page
//! here: fill arrays in place with `SharedArrayMut` instead.

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
        let mut received = false;
        while server
            .read_exact(bytemuck::cast_slice_mut(&mut buf))
            .is_ok()
        {
            received = true;
            black_box(touch_pages(&buf));
            server.write_all(&[1u8]).expect("peer ack");
        }
        received.then_some(buf)
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
    // `None` when a filter skipped this benchmark.
    if let Some(got) = peer.join().expect("peer") {
        assert!(got == data, "payload corrupted");
    }
}

fn send_bytes(group: &mut BenchmarkGroup<'_, WallTime>, label: &str, data: &[f64]) {
    let (client, server) = procwire::duplex::<(), ()>().expect("duplex");
    let len = data.len();
    let peer = thread::spawn(move || {
        let mut buf = vec![0f64; len];
        let mut received = false;
        loop {
            match server.recv_bytes_into(&mut buf) {
                Ok(n) => assert_eq!(n, len * 8),
                Err(procwire::Error::Disconnected) => return received.then_some(buf),
                Err(e) => panic!("peer recv: {e}"),
            }
            received = true;
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
    // `None` when a filter skipped this benchmark.
    if let Some(got) = peer.join().expect("peer") {
        assert!(got == data, "payload corrupted");
    }
}

/// The shared-memory round trips; `copy_in` makes a fresh array from `data` each time.
fn shm(group: &mut BenchmarkGroup<'_, WallTime>, label: &str, data: &[f64], copy_in: bool) {
    let (client, server) = procwire::duplex::<(), ()>().expect("duplex");
    server.enable_fds().unwrap();
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
