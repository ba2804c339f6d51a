//! Shared-memory arrays: sealed memfds sent by descriptor, mapped read-only on receipt,
//! and refused when a hostile peer sends anything that could change under the receiver.
//!
//! Every test takes [`serial`] first: several count this process's open descriptors.

#![cfg(any(target_os = "linux", target_os = "android"))]

mod util;

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Mutex, MutexGuard, PoisonError};

use bytemuck::Pod;
use procwire::{Connection, Error, SharedArray, SharedArrayMut};
use rustix::fs::{MemfdFlags, SealFlags};
use util::child::{assert_exited_ok, child, is_child, wait_for};
use util::{assert_err, bounded, open_fds, SOON};

fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// `len` random values of `T`, built from random bytes.
    fn values<T: Pod>(&mut self, len: usize) -> Vec<T> {
        let mut out = vec![T::zeroed(); len];
        for b in bytemuck::cast_slice_mut::<T, u8>(&mut out) {
            *b = self.next() as u8;
        }
        out
    }
}

const LENGTHS: [usize; 7] = [0, 1, 2, 511, 513, 4097, 100_003];

fn round_trip<T: Pod + PartialEq + std::fmt::Debug>(rng: &mut Rng) {
    let (a, b) = procwire::duplex::<(), ()>().unwrap();
    b.enable_fds().unwrap();
    for len in LENGTHS {
        let data: Vec<T> = rng.values(len);
        let sent = SharedArray::from_slice(&data).unwrap();
        a.send_array(&sent).unwrap();
        let got = b.recv_array::<T>().unwrap();
        assert_eq!(got.len(), len);
        assert!(
            *got == *data,
            "{len} elements of {}",
            std::any::type_name::<T>()
        );
    }
}

#[test]
fn received_arrays_equal_the_sent_ones_for_every_length_and_type() {
    let _serial = serial();
    bounded(|| {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        round_trip::<u8>(&mut rng);
        round_trip::<u64>(&mut rng);
        round_trip::<[u32; 3]>(&mut rng);
        // f64 from random bits may be NaN, which is not equal to itself: compare bits.
        let (a, b) = procwire::duplex::<(), ()>().unwrap();
        b.enable_fds().unwrap();
        let data: Vec<f64> = (0..70_001).map(|i| i as f64 * 0.25 - 3.0).collect();
        a.send_array(&SharedArray::from_slice(&data).unwrap())
            .unwrap();
        assert_eq!(*b.recv_array::<f64>().unwrap(), *data);
    });
}

#[test]
fn an_array_filled_in_place_and_sealed_arrives_and_the_sender_may_drop_it() {
    let _serial = serial();
    bounded(|| {
        let (a, b) = procwire::duplex::<(), ()>().unwrap();
        b.enable_fds().unwrap();
        let mut array = SharedArrayMut::<u32>::new(1 << 20).unwrap();
        for (i, v) in array.iter_mut().enumerate() {
            *v = i as u32 ^ 0x5555;
        }
        let array = array.seal().unwrap();
        a.send_array(&array).unwrap();
        a.send_array(&array).unwrap(); // the same array twice
        drop(array);
        for _ in 0..2 {
            let got = b.recv_array::<u32>().unwrap();
            assert!(got.iter().enumerate().all(|(i, &v)| v == i as u32 ^ 0x5555));
        }
    });
}

#[test]
fn a_received_array_cannot_be_written_through_its_descriptor() {
    let _serial = serial();
    bounded(|| {
        let (a, b) = procwire::duplex::<(), ()>().unwrap();
        b.enable_fds().unwrap();
        a.send_array(&SharedArray::from_slice(&[1u8, 2, 3]).unwrap())
            .unwrap();
        let got = b.recv_array::<u8>().unwrap();
        let mut raw = File::from(got.as_fd().try_clone_to_owned().unwrap());
        let err = raw.write_all(b"x").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EPERM), "{err}");
        assert!(rustix::fs::ftruncate(&raw, 1).is_err());
        assert_eq!(*got, [1, 2, 3]);
    });
}

/// A memfd holding `bytes`, with sealing allowed and then the seals `seals` added.
fn memfd(bytes: &[u8], seals: SealFlags) -> OwnedFd {
    let fd = rustix::fs::memfd_create("hostile", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)
        .unwrap();
    File::from(fd.try_clone().unwrap())
        .write_all(bytes)
        .unwrap();
    rustix::fs::fcntl_add_seals(&fd, seals).unwrap();
    fd
}

/// The announcement `send_array` writes: tag, element count, element size.
fn announcement(count: u64, size: u64) -> Vec<u8> {
    let mut out = b"procwire-array/1".to_vec();
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&size.to_le_bytes());
    out
}

const ALL: SealFlags = SealFlags::WRITE
    .union(SealFlags::SHRINK)
    .union(SealFlags::GROW)
    .union(SealFlags::SEAL);

/// A hostile peer sends `payload` with `fds` in place of an array of `f64`; the receiver
/// must refuse it with an error that contains `why`, leak nothing, and stay usable.
fn assert_refused(
    a: &Connection<(), ()>,
    b: &Connection<(), ()>,
    payload: &[u8],
    fds: Vec<OwnedFd>,
    why: &str,
) {
    let before = open_fds();
    let borrowed: Vec<_> = fds.iter().map(|fd| fd.as_fd()).collect();
    a.send_bytes_fds(payload, &borrowed).unwrap();
    drop(borrowed);
    drop(fds);
    let err = assert_err!(b.recv_array::<f64>(), Error::Descriptors(_));
    assert!(err.to_string().contains(why), "expected {why:?} in {err}");
    assert!(
        open_fds().len() <= before.len(),
        "{why}: the descriptors are closed"
    );
    let fine = SharedArray::from_slice(&[1.0f64, 2.0]).unwrap();
    a.send_array(&fine).unwrap();
    assert_eq!(
        *b.recv_array::<f64>().unwrap(),
        [1.0, 2.0],
        "{why}: still usable"
    );
}

#[test]
fn memfds_from_a_hostile_peer_that_could_change_or_shrink_are_refused() {
    let _serial = serial();
    bounded(|| {
        let (a, b) = procwire::duplex::<(), ()>().unwrap();
        b.enable_fds().unwrap();
        let before = open_fds();
        let sixteen = [7u8; 16];
        let ann = announcement(2, 8);
        let cases = [
            (
                SealFlags::empty(),
                "not sealed against writing, shrinking and growing",
            ),
            (
                SealFlags::WRITE | SealFlags::SEAL,
                "not sealed against shrinking and growing",
            ),
            (
                SealFlags::SHRINK | SealFlags::GROW,
                "not sealed against writing",
            ),
            (
                SealFlags::WRITE | SealFlags::SHRINK,
                "not sealed against growing",
            ),
        ];
        for (seals, why) in cases {
            assert_refused(&a, &b, &ann, vec![memfd(&sixteen, seals)], why);
        }
        let no_sealing = rustix::fs::memfd_create("plain", MemfdFlags::CLOEXEC).unwrap();
        rustix::fs::ftruncate(&no_sealing, 16).unwrap();
        assert_refused(&a, &b, &ann, vec![no_sealing], "not sealed against writing");
        assert_eq!(open_fds(), before);
    });
}

#[test]
fn arrays_whose_memfd_does_not_match_the_announcement_are_refused() {
    let _serial = serial();
    bounded(|| {
        let (a, b) = procwire::duplex::<(), ()>().unwrap();
        b.enable_fds().unwrap();
        let before = open_fds();
        let sealed = |len: usize| vec![memfd(&vec![1u8; len], ALL)];
        assert_refused(
            &a,
            &b,
            &announcement(3, 8),
            sealed(16),
            "3 elements announced",
        );
        assert_refused(
            &a,
            &b,
            &announcement(2, 8),
            sealed(12),
            "12 bytes cannot hold",
        );
        assert_refused(&a, &b, &announcement(4, 4), sealed(16), "element size 4");
        assert_refused(
            &a,
            &b,
            &announcement(2, 8),
            vec![],
            "exactly one descriptor",
        );
        assert_refused(
            &a,
            &b,
            &announcement(2, 8),
            sealed(16).into_iter().chain(sealed(16)).collect(),
            "exactly one",
        );
        assert_refused(
            &a,
            &b,
            b"procwire-array/2",
            sealed(16),
            "not a shared array",
        );
        assert_eq!(open_fds(), before);
    });
}

#[test]
fn an_array_larger_than_the_maximum_message_size_arrives_under_the_default_limits() {
    let _serial = serial();
    bounded(|| {
        let (a, b) = procwire::duplex::<(), ()>().unwrap();
        b.enable_fds().unwrap();
        // 320 MiB, above the 256 MiB message limit; the memfd is sparse, so this costs no
        // memory beyond the pages touched.
        let len = (320usize << 20) / 8;
        assert!(len as u64 * 8 > b.max_message_size());
        let mut array = SharedArrayMut::<u64>::new(len).unwrap();
        array[len - 1] = 42;
        a.send_array(&array.seal().unwrap()).unwrap();
        let got = b.recv_array::<u64>().unwrap();
        assert_eq!((got.len(), got[len - 1]), (len, 42));
        // Nor does a tiny message limit stop one: the announcement is 32 bytes.
        b.set_max_message_size(32);
        a.send_array(&SharedArray::from_slice(&[1u64; 1000]).unwrap())
            .unwrap();
        assert_eq!(b.recv_array::<u64>().unwrap().len(), 1000);
    });
}

#[test]
fn an_array_above_max_array_size_is_message_too_large_and_the_receiver_carries_on() {
    let _serial = serial();
    bounded(|| {
        let (a, b) = procwire::duplex::<(), ()>().unwrap();
        b.enable_fds().unwrap();
        assert_eq!(b.max_array_size(), u64::MAX);
        b.set_max_array_size(1 << 20);
        let before = open_fds();
        let big = SharedArrayMut::<u8>::new((1 << 20) + 1)
            .unwrap()
            .seal()
            .unwrap();
        a.send_array(&big).unwrap();
        drop(big);
        let err = assert_err!(
            b.recv_array::<u8>(),
            Error::MessageTooLarge {
                len: 1048577,
                limit: 1048576
            }
        );
        assert!(err.to_string().contains("set_max_array_size"), "{err}");
        assert!(open_fds().len() <= before.len(), "the memfd is closed");
        let fine = SharedArray::from_slice(&[7u8; 1 << 20]).unwrap();
        a.send_array(&fine).unwrap();
        assert_eq!(b.recv_array::<u8>().unwrap().len(), 1 << 20);
    });
}

#[test]
fn descriptors_that_are_not_memfds_are_refused_as_arrays() {
    let _serial = serial();
    bounded(|| {
        let (a, b) = procwire::duplex::<(), ()>().unwrap();
        b.enable_fds().unwrap();
        let before = open_fds();
        let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
        assert_refused(
            &a,
            &b,
            &announcement(2, 8),
            vec![read, write],
            "exactly one",
        );
        let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
        assert_refused(&a, &b, &announcement(2, 8), vec![read], "not a memfd");
        drop(write);
        let file = File::open("Cargo.toml").unwrap();
        assert_refused(
            &a,
            &b,
            &announcement(2, 8),
            vec![file.into()],
            "not a memfd",
        );
        assert_eq!(open_fds(), before);
    });
}

#[test]
fn zero_sized_elements_are_refused() {
    let err = assert_err!(SharedArrayMut::<()>::new(3), Error::Descriptors(_));
    assert!(err.to_string().contains("zero-sized"), "{err}");
}

#[test]
fn arrays_cannot_be_sent_over_a_pipe() {
    let _serial = serial();
    let (tx, rx) = procwire::pipe::<()>().unwrap();
    let array = SharedArray::from_slice(&[1u8]).unwrap();
    assert_err!(tx.send_array(&array), Error::Descriptors(_));
    tx.send_bytes(b"ok").unwrap();
    assert_eq!(rx.recv_bytes().unwrap(), b"ok");
}

#[test]
fn child_sums_a_shared_array() {
    if !is_child() {
        return;
    }
    let conn = procwire::from_parent::<f64, ()>().unwrap();
    conn.enable_fds().unwrap();
    let array = conn.recv_array::<f64>().unwrap();
    conn.send(&array.iter().sum()).unwrap();
}

#[test]
fn an_array_sent_to_a_child_process_is_read_there() {
    let _serial = serial();
    bounded(|| {
        let (child, conn) = procwire::spawn::<(), f64>(child("child_sums_a_shared_array")).unwrap();
        let data: Vec<f64> = (0..1_000_000).map(f64::from).collect();
        conn.send_array(&SharedArray::from_slice(&data).unwrap())
            .unwrap();
        assert_eq!(conn.recv_timeout(SOON).unwrap(), 499_999_500_000.0);
        assert_exited_ok(wait_for(child, SOON));
    });
}

/// A thread that forks while another seals an array: a child holds every mapping of its
/// parent between `fork` and `exec`, and `F_SEAL_WRITE` is refused (`EBUSY`) while any
/// writable shared mapping of the memfd exists, so sealing failed now and then in
/// programs that start processes (seen as a flaky `arrays_cannot_be_sent_over_a_pipe`).
#[test]
fn sealing_an_array_while_another_thread_forks_succeeds() {
    // Serial: the forks open descriptors, which the descriptor-counting tests would see.
    let _serial = serial();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let forker = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut spawned = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && spawned < 20_000 {
                // `spawn` passes a descriptor with `pre_exec`, so it forks (a plain
                // `Command` may use `posix_spawn`, which copies no mappings).
                let cmd = std::process::Command::new("true");
                let (mut child, _conn) = procwire::spawn::<(), ()>(cmd).unwrap();
                child.wait().unwrap();
                spawned += 1;
            }
            spawned
        })
    };
    let started = std::time::Instant::now();
    let mut sealed = 0;
    let mut failures = Vec::new();
    let data = vec![7u64; 1 << 17];
    while sealed < 5_000 && started.elapsed() < std::time::Duration::from_secs(3) {
        match SharedArray::from_slice(&data) {
            Ok(a) => assert_eq!(a[data.len() - 1], 7),
            Err(e) => failures.push(e.to_string()),
        }
        sealed += 1;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let spawned = forker.join().unwrap();
    assert!(spawned > 0, "the forking thread never ran");
    assert!(
        failures.is_empty(),
        "{} of {sealed} seals failed beside {spawned} forks: {:?}",
        failures.len(),
        failures.first()
    );
}
