//! Hot paths allocate nothing in steady state: a counting global allocator proves that
//! `send_bytes`, `recv_bytes_into`, and typed `send` / `recv` of a fixed-size value make
//! no heap allocation per message once warmed up.
//!
//! This file is its own test binary so the allocator sees nothing but these tests; counts
//! are kept per thread, so the test harness's own threads do not disturb them.

mod util;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Write;
use std::thread;

use serde::{Deserialize, Serialize};
use util::bounded;

/// The system allocator, counting the allocations each thread makes.
struct Counting;

thread_local! {
    // `const` initialisation with a type that needs no destructor: reading it never
    // allocates or registers anything, so the allocator may use it.
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn count_one(size: usize) {
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
    let _ = LARGEST.try_with(|n| n.set(n.get().max(size)));
}

#[allow(unsafe_code)] // a global allocator can only be written with unsafe
                      // SAFETY: every method forwards to `System` with the caller's arguments unchanged, so
                      // `System` upholds the `GlobalAlloc` contract; counting touches only a thread-local `Cell`.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one(layout.size());
        // SAFETY: forwarded unchanged; the caller upholds `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_one(layout.size());
        // SAFETY: forwarded unchanged; the caller upholds `alloc_zeroed`'s contract.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one(new_size);
        // SAFETY: forwarded unchanged; the caller upholds `realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged; the caller upholds `dealloc`'s contract.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The heap allocations (including reallocations) this thread makes while running `f`.
fn allocations_in(f: impl FnOnce()) -> u64 {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

/// The largest single allocation (or reallocation) this thread makes while running `f`.
fn largest_allocation_in<R>(f: impl FnOnce() -> R) -> (R, usize) {
    LARGEST.with(|n| n.set(0));
    let out = f();
    (out, LARGEST.with(Cell::get))
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Sample {
    id: u64,
    x: f64,
    y: f64,
    flags: u32,
}

const WARM_UP: usize = 10;
const MEASURED: usize = 1000;

#[test]
fn allocator_counts_this_threads_allocations() {
    let n = allocations_in(|| drop(std::hint::black_box(vec![0u8; 64])));
    assert_eq!(n, 1);
}

#[test]
fn small_messages_allocate_nothing_in_steady_state() {
    bounded(|| {
        let (a, b) = procwire::duplex::<Sample, ()>().unwrap();
        let samples = [0.5f64; 64];
        let mut out = [0f64; 64];
        let mut round = |i: usize| {
            let s = Sample {
                id: i as u64,
                x: i as f64,
                y: -(i as f64),
                flags: i as u32 * 7,
            };
            a.send(&s).unwrap();
            assert_eq!(b.recv().unwrap(), s);
            a.send_bytes(&samples).unwrap();
            assert_eq!(b.recv_bytes_into(&mut out).unwrap(), 512);
        };
        for i in 0..WARM_UP {
            round(i);
        }
        let n = allocations_in(|| (0..MEASURED).for_each(&mut round));
        assert_eq!(n, 0, "{n} allocations over {MEASURED} rounds");
    });
}

#[test]
fn a_wait_set_serving_loop_allocates_nothing_in_steady_state() {
    bounded(|| {
        let mut set = procwire::WaitSet::new().unwrap();
        let mut clients = Vec::new();
        for key in 0..8u32 {
            let (ours, theirs) = procwire::duplex::<u64, u64>().unwrap();
            set.insert(key, ours).unwrap();
            clients.push(theirs);
        }
        let mut ready = Vec::with_capacity(8);
        let mut round = |i: usize| {
            let client = &clients[i % clients.len()];
            client.send(&(i as u64)).unwrap();
            assert_eq!(
                set.wait(&mut ready, Some(std::time::Duration::from_secs(10)))
                    .unwrap(),
                1
            );
            let conn = set.get(&ready[0]).unwrap();
            let v = conn.try_recv().unwrap();
            conn.send(&(v + 1)).unwrap();
            assert_eq!(client.recv().unwrap(), i as u64 + 1);
        };
        for i in 0..WARM_UP {
            round(i);
        }
        let n = allocations_in(|| (0..MEASURED).for_each(&mut round));
        assert_eq!(n, 0, "{n} allocations over {MEASURED} rounds");
    });
}

#[test]
fn typed_values_allocate_nothing_after_the_first_over_a_pipe() {
    bounded(|| {
        let (tx, rx) = procwire::pipe::<Sample>().unwrap();
        let s = Sample {
            id: u64::MAX,
            x: f64::MIN,
            y: f64::MAX,
            flags: u32::MAX,
        };
        for _ in 0..WARM_UP {
            tx.send(&s).unwrap();
            assert_eq!(rx.recv().unwrap(), s);
        }
        // Several messages in flight at once: the receiver serves them from its buffer.
        let n = allocations_in(|| {
            for _ in 0..MEASURED / 10 {
                for _ in 0..10 {
                    tx.send(&s).unwrap();
                }
                for _ in 0..10 {
                    assert_eq!(rx.recv().unwrap(), s);
                }
            }
        });
        assert_eq!(n, 0, "{n} allocations");
    });
}

#[test]
fn large_payloads_allocate_nothing_on_either_side() {
    bounded(|| {
        // 1 MiB messages: the sender writes them with writev, the receiver reads them
        // straight into its slice. Each thread counts its own allocations.
        const LEN: usize = (1 << 20) / 8;
        let (a, b) = procwire::duplex::<(), ()>().unwrap();
        let sender = thread::spawn(move || {
            let data = vec![1.25f64; LEN];
            for _ in 0..WARM_UP {
                a.send_bytes(&data).unwrap();
            }
            let n = allocations_in(|| {
                for _ in 0..100 {
                    a.send_bytes(&data).unwrap();
                }
            });
            (n, a)
        });
        let mut out = vec![0f64; LEN];
        for _ in 0..WARM_UP {
            assert_eq!(b.recv_bytes_into(&mut out).unwrap(), LEN * 8);
        }
        let received = allocations_in(|| {
            for _ in 0..100 {
                assert_eq!(b.recv_bytes_into(&mut out).unwrap(), LEN * 8);
            }
        });
        let (sent, _a) = sender.join().unwrap();
        assert!(out.iter().all(|&v| v == 1.25));
        assert_eq!(sent, 0, "{sent} allocations sending");
        assert_eq!(received, 0, "{received} allocations receiving");
    });
}

/// The header of a frame announcing 2^62 payload bytes (CPython's long form).
fn huge_header() -> Vec<u8> {
    procwire::frame::Header::for_payload(1 << 62)
        .encode()
        .to_vec()
}

/// Receives with the method `receive` picks (0 to 3), returning the largest single
/// allocation the receive made.
fn receive_measured(rx: &procwire::Receiver<Vec<u8>>, receive: u8) -> (procwire::Error, usize) {
    let (result, largest) = largest_allocation_in(|| match receive {
        0 => rx.recv_bytes().map(drop),
        1 => rx.recv_bytes_into(&mut [0u64; 4]).map(drop),
        2 => rx.recv().map(drop),
        _ => rx.poll(None).and_then(|_| rx.try_recv_bytes()).map(drop),
    });
    (result.unwrap_err(), largest)
}

#[test]
fn a_header_announcing_2_pow_62_bytes_is_too_large_before_anything_is_allocated_for_it() {
    bounded(|| {
        for receive in 0..4 {
            let (tx, rx) = procwire::pipe::<Vec<u8>>().unwrap();
            util::raw(&tx).write_all(&huge_header()).unwrap();
            let (e, largest) = receive_measured(&rx, receive);
            assert!(
                matches!(e, procwire::Error::MessageTooLarge { len, limit }
                    if len == 1 << 62 && limit == procwire::frame::DEFAULT_MAX_MESSAGE_SIZE),
                "receive {receive}: {e:?}"
            );
            assert!(
                largest < 1 << 20,
                "receive {receive} allocated {largest} bytes"
            );
        }
    });
}

/// Writes a 2^62-byte header and ten bytes of payload to `tx`'s descriptor, and closes it.
fn lie_and_hang_up<T, C>(tx: procwire::Sender<T, C>) {
    let mut raw = util::raw(&tx);
    drop(tx);
    raw.write_all(&huge_header()).unwrap();
    raw.write_all(b"only ten!!").unwrap();
}

fn is_truncated_lie(e: &procwire::Error) -> bool {
    matches!(e, procwire::Error::Truncated { received: 22, expected } if *expected == (1 << 62) + 12)
}

#[test]
fn without_a_limit_a_lying_header_costs_at_most_64_mib_and_ends_truncated() {
    bounded(|| {
        for receive in 0..4 {
            let (tx, rx) = procwire::pipe::<Vec<u8>>().unwrap();
            rx.set_max_message_size(u64::MAX);
            lie_and_hang_up(tx);
            let (e, largest) = receive_measured(&rx, receive);
            assert!(is_truncated_lie(&e), "receive {receive}: {e:?}");
            assert!(
                largest <= 64 << 20,
                "receive {receive} allocated {largest} bytes"
            );
        }
    });
}

#[test]
fn a_message_larger_than_the_eager_allocation_still_arrives_whole() {
    bounded(|| {
        let (tx, rx) = procwire::pipe::<Vec<u8>>().unwrap();
        rx.set_max_message_size(u64::MAX);
        let data: Vec<u8> = (0..(80usize << 20)).map(|i| (i % 251) as u8).collect();
        let sent = data.clone();
        let writer = thread::spawn(move || {
            tx.send_bytes(&sent).unwrap();
            tx.send_bytes(&sent).unwrap();
            tx.send(&sent).unwrap();
        });
        assert_eq!(rx.recv_bytes().unwrap(), data);
        assert!(rx.poll(Some(std::time::Duration::from_secs(30))).unwrap());
        assert_eq!(rx.try_recv_bytes().unwrap(), data);
        assert_eq!(rx.recv().unwrap(), data);
        writer.join().unwrap();
    });
}

#[cfg(feature = "rkyv")]
#[test]
fn without_a_limit_a_lying_header_costs_rkyv_at_most_64_mib() {
    bounded(|| {
        let (tx, rx) = procwire::pipe_with::<Vec<u32>, _>(procwire::codec::Rkyv::new()).unwrap();
        rx.set_max_message_size(u64::MAX);
        lie_and_hang_up(tx);
        let (result, largest) = largest_allocation_in(|| rx.recv_archived().map(drop));
        let e = result.unwrap_err();
        assert!(is_truncated_lie(&e), "{e:?}");
        assert!(largest <= 64 << 20, "allocated {largest} bytes at once");
    });
}

/// The finding of issue 17 item 3: Rkyv's sender copied every value into its encode
/// buffer, which grew to the size of the largest message. Written in place, a 16 MiB
/// `Vec<f64>` leaves from the caller's vector: the sending thread allocates no buffer of
/// its size (rkyv's arena and the 64 KiB gathering of small writes are all it needs).
#[cfg(feature = "rkyv")]
#[test]
fn a_large_rkyv_send_is_not_copied_into_an_encode_buffer() {
    bounded(|| {
        let (tx, rx) = procwire::pipe_with::<Vec<f64>, _>(procwire::codec::Rkyv::new()).unwrap();
        let reader = thread::spawn(move || {
            for n in [20_000, 2 << 20, 2 << 20] {
                assert_eq!(rx.recv_archived().unwrap().len(), n);
            }
        });
        // A first message of 160 KB makes the codec measure the next ones.
        tx.send(&vec![1.5; 20_000]).unwrap();
        let data: Vec<f64> = (0..2 << 20).map(f64::from).collect();
        for _ in 0..2 {
            let ((), largest) = largest_allocation_in(|| tx.send(&data).unwrap());
            assert!(
                largest < 1 << 20,
                "a 16 MiB send allocated {largest} bytes at once"
            );
        }
        reader.join().unwrap();
    });
}
