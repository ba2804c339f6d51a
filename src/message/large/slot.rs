//! One slot of the large-message pool: a memfd sealed against shrinking and growing (not
//! against writing), mapped read-write and shared in both processes, and kept mapped.
//!
//! Layout: bytes `0..8` are the state word (an `AtomicU64`, see `large.rs`), bytes `8..16`
//! the progress word (an `AtomicU64`: payload bytes written so far), bytes `16..20` the
//! wake word (an `AtomicU32`, a futex: nonzero while the receiver sleeps on it); the
//! payload starts at [`PAYLOAD_OFFSET`] (one page, so it is page-aligned). Unlike a
//! [`SharedArray`](crate::SharedArray), whose `F_SEAL_WRITE` lets this process borrow its
//! bytes as `&[u8]`, a slot is written again and again by its sender, and the other
//! process may write any of it at any moment. So no Rust reference to the mapped bytes is
//! ever made: the state word is only touched through `AtomicU64`, and the payload only by
//! [`Slot::copy_in_at`] and [`Slot::copy_out_at`], through `copy_bytes`: one `rep movsb` on
//! x86-64, relaxed atomic byte accesses elsewhere. A concurrent write by the other process
//! can make the copied values torn or stale (the peer's own corruption of its own
//! message), never undefined behaviour here.

#![allow(unsafe_code)] // mmap, munmap and atomics over mapped memory have no safe form

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64};
#[cfg(not(target_arch = "x86_64"))]
use std::sync::atomic::{AtomicU8, Ordering};

use rustix::fs::{FileType, SealFlags};
use rustix::mm::{MapFlags, ProtFlags};

use crate::error::{Error, Result};

/// Where the payload starts in a slot: one page after the state word.
pub(crate) const PAYLOAD_OFFSET: usize = 4096;

/// The seals a slot must carry: its size is final, so no page of the mapping can ever
/// fault with `SIGBUS`; writing stays allowed.
const REQUIRED: SealFlags = SealFlags::SHRINK.union(SealFlags::GROW);

fn refuse(why: String) -> Error {
    Error::Descriptors(format!("large-message memfd refused: {why}"))
}

/// A slot's memfd mapped read-write and shared, unmapped on drop.
#[derive(Debug)]
pub(crate) struct Slot {
    ptr: NonNull<u8>,
    /// The mapping's length: [`PAYLOAD_OFFSET`] plus the payload capacity.
    len: usize,
}

// SAFETY: `Slot` owns its mapping as a `Box<[u8]>` owns its memory, and every access to
// the mapped bytes is atomic (see the module docs), so sharing or moving it between
// threads cannot race in a way Rust's memory model forbids.
unsafe impl Send for Slot {}
// SAFETY: as above: `&Slot` only reaches the bytes through atomic operations.
unsafe impl Sync for Slot {}

impl Slot {
    /// A new slot for payloads of up to `capacity` bytes: a memfd (close-on-exec) sized,
    /// sealed against shrinking, growing and further seals, and mapped; with its
    /// descriptor, to be sent once.
    pub(crate) fn create(capacity: usize) -> Result<(Slot, OwnedFd)> {
        let len = capacity
            .checked_add(PAYLOAD_OFFSET)
            .filter(|&l| l <= isize::MAX as usize)
            .ok_or_else(|| refuse(format!("a slot of {capacity} bytes overflows")))?;
        let fd = memfd(len)?;
        let slot = Slot::map(fd.as_fd(), len)?;
        Ok((slot, fd))
    }

    /// Maps a slot that the peer sent, after checking that `fd` is a memfd sealed against
    /// shrinking and growing, longer than [`PAYLOAD_OFFSET`] and at most `max` bytes long.
    /// `fd` is closed either way (the mapping stays).
    ///
    /// Errors: [`Error::Descriptors`] saying what is wrong, [`Error::Io`] when mapping fails.
    pub(crate) fn open(fd: OwnedFd, max: u64) -> Result<Slot> {
        let seals = seals_of(&fd)
            .ok_or_else(|| refuse("the descriptor is not a memfd (it has no seals)".into()))?;
        if !seals.contains(REQUIRED) {
            return Err(refuse(
                "the memfd is not sealed against shrinking and growing".into(),
            ));
        }
        let st = rustix::fs::fstat(&fd)?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Err(refuse("the descriptor is not a memfd".into()));
        }
        let size = u64::try_from(st.st_size).unwrap_or(0);
        if size <= PAYLOAD_OFFSET as u64 {
            return Err(refuse(format!(
                "a memfd of {size} bytes is no slot (at least {} bytes)",
                PAYLOAD_OFFSET + 1
            )));
        }
        if size > max {
            return Err(refuse(format!(
                "a memfd of {size} bytes exceeds the {max} bytes this receiver may still map \
                 (see `accept_large_memfd`)"
            )));
        }
        let len = usize::try_from(size)
            .ok()
            .filter(|&l| l <= isize::MAX as usize)
            .ok_or_else(|| refuse(format!("{size} bytes cannot be mapped")))?;
        Slot::map(fd.as_fd(), len)
    }

    fn map(fd: BorrowedFd<'_>, len: usize) -> Result<Slot> {
        let prot = ProtFlags::READ | ProtFlags::WRITE;
        // SAFETY: no address hint and no `MAP_FIXED`, so the kernel picks a range that
        // overlaps no existing mapping: no memory that Rust code refers to is affected.
        let ptr =
            unsafe { rustix::mm::mmap(std::ptr::null_mut(), len, prot, MapFlags::SHARED, fd, 0) }?;
        let Some(ptr) = NonNull::new(ptr.cast::<u8>()) else {
            return Err(Error::Io(std::io::Error::other("mmap returned address 0")));
        };
        Ok(Slot { ptr, len })
    }

    /// The most payload bytes the slot holds.
    pub(crate) fn capacity(&self) -> usize {
        self.len - PAYLOAD_OFFSET
    }

    /// The bytes of address space the mapping takes.
    pub(crate) fn mapped(&self) -> usize {
        self.len
    }

    /// The state word at the slot's start.
    pub(crate) fn state(&self) -> &AtomicU64 {
        // SAFETY: the mapping is page-aligned (so aligned for `u64`), at least
        // `PAYLOAD_OFFSET` bytes long, and valid for reads and writes until `drop`, which
        // cannot run while `&self` is borrowed; its size is sealed, so it cannot fault.
        // The word is only ever accessed atomically here (the other process may access it
        // however it likes: that is memory outside this program changing, which an atomic
        // is allowed to observe).
        unsafe { AtomicU64::from_ptr(self.ptr.as_ptr().cast::<u64>()) }
    }

    /// The progress word: how many payload bytes the sender has written (see `large.rs`).
    pub(crate) fn progress(&self) -> &AtomicU64 {
        // SAFETY: as in `state`, for the second aligned word of the first page.
        unsafe { AtomicU64::from_ptr(self.ptr.as_ptr().add(8).cast::<u64>()) }
    }

    /// The wake word, a futex shared by both processes (see `large.rs`).
    pub(crate) fn wake_word(&self) -> &AtomicU32 {
        // SAFETY: as in `state`, for the `u32` at offset 16 of the first page.
        unsafe { AtomicU32::from_ptr(self.ptr.as_ptr().add(16).cast::<u32>()) }
    }

    /// Copies `src` into the payload area at `offset`; it must fit
    /// ([`capacity`](Slot::capacity)).
    pub(crate) fn copy_in_at(&self, offset: usize, src: &[u8]) {
        assert!(
            offset
                .checked_add(src.len())
                .is_some_and(|end| end <= self.capacity()),
            "payload fits its slot"
        );
        // SAFETY: `src` is valid for `src.len()` reads; the payload area is valid for
        // writes up to `capacity`, and `offset + src.len() <= capacity` (see `state`); it
        // is not `src` (this process makes no reference into the mapping, so no slice can
        // overlap it).
        unsafe { copy_bytes(self.payload().as_ptr().add(offset), src.as_ptr(), src.len()) }
    }

    /// Copies the `dst.len()` payload bytes from `offset` on into `dst`; they must be
    /// inside the payload area.
    pub(crate) fn copy_out_at(&self, offset: usize, dst: &mut [u8]) {
        assert!(
            offset
                .checked_add(dst.len())
                .is_some_and(|end| end <= self.capacity()),
            "length checked against the slot"
        );
        // SAFETY: as in `copy_in_at`, with the roles of the two areas swapped.
        unsafe {
            copy_bytes(
                dst.as_mut_ptr(),
                self.payload().as_ptr().add(offset),
                dst.len(),
            )
        }
    }

    fn payload(&self) -> NonNull<u8> {
        // SAFETY: `PAYLOAD_OFFSET < len`, so the result stays inside the mapping.
        unsafe { self.ptr.add(PAYLOAD_OFFSET) }
    }
}

/// Copies `len` bytes from `src` to `dst`, where one of the two is a slot's payload area,
/// which the other process may write at the same moment.
///
/// On x86-64 this is one `rep movsb`, which runs at `memcpy`'s speed on the processors
/// that have ERMSB (a 16 MiB copy: 1.15 ms, against 1.3–2.2 ms for a loop of relaxed
/// 8-byte atomics, on the benchmark machine). It is inline assembly, so the compiler
/// makes no assumption about the bytes it moves: what it does is what the processor does,
/// a sequence of byte loads and stores, each of which sees some value the other process
/// wrote; in Rust's terms, relaxed atomic byte accesses, which may race. Elsewhere the
/// copy is a loop of relaxed atomic byte loads and stores, which is that by definition.
///
/// # Safety
///
/// `src` is valid for `len` reads and `dst` for `len` writes, the two do not overlap,
/// and neither range is reachable through a Rust reference while another party may
/// write it (a slot's payload is only ever accessed through this function).
#[cfg(target_arch = "x86_64")]
unsafe fn copy_bytes(dst: *mut u8, src: *const u8, len: usize) {
    // SAFETY: as the function's contract says; `rep movsb` with the direction flag clear
    // (the ABI guarantees it on entry to inline assembly) copies `rcx` bytes forward from
    // `rsi` to `rdi` and touches no other memory, no stack and no flag.
    unsafe {
        std::arch::asm!(
            "rep movsb",
            inout("rcx") len => _,
            inout("rdi") dst => _,
            inout("rsi") src => _,
            options(nostack, preserves_flags),
        );
    }
}

/// See the x86-64 version.
///
/// # Safety
///
/// As the x86-64 version.
#[cfg(not(target_arch = "x86_64"))]
unsafe fn copy_bytes(dst: *mut u8, src: *const u8, len: usize) {
    for i in 0..len {
        // SAFETY: `i < len`, inside both ranges; a `u8` is always aligned, and both
        // ranges are only accessed atomically (the contract).
        unsafe {
            let b = AtomicU8::from_ptr(src.add(i).cast_mut()).load(Ordering::Relaxed);
            AtomicU8::from_ptr(dst.add(i)).store(b, Ordering::Relaxed);
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly a mapping made by `mmap` and owned by this
        // value; every borrow of it (the atomics lent out) ended before `drop`.
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// Sleeps on `word` while it holds `expected`, for at most `timeout`: a shared futex (the
/// word is in a mapping of both processes). Returns early when woken, when the word does
/// not hold `expected`, or on a signal; the caller checks what it waits for again.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn sleep_on(word: &AtomicU32, expected: u32, timeout: std::time::Duration) {
    use rustix::thread::futex;
    let timeout = rustix::time::Timespec {
        tv_sec: timeout.as_secs() as _,
        tv_nsec: timeout.subsec_nanos() as _,
    };
    // Not `PRIVATE`: the other process wakes this one through its own mapping.
    let _ = futex::wait(word, futex::Flags::empty(), expected, Some(&timeout));
}

/// Wakes every thread sleeping on `word` (see [`sleep_on`]).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn wake_all(word: &AtomicU32) {
    use rustix::thread::futex;
    let _ = futex::wake(word, futex::Flags::empty(), i32::MAX as u32);
}

/// Without futexes (and without memfds, so without slots), a short sleep.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn sleep_on(_word: &AtomicU32, _expected: u32, timeout: std::time::Duration) {
    std::thread::sleep(timeout.min(std::time::Duration::from_micros(100)));
}

/// See the Linux version.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn wake_all(_word: &AtomicU32) {}

/// A new memfd of `len` bytes, sealed against shrinking, growing and further seals.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn memfd(len: usize) -> Result<OwnedFd> {
    use rustix::fs::MemfdFlags;
    let flags = MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING;
    let fd = rustix::fs::memfd_create("procwire-large", flags)?;
    rustix::fs::ftruncate(&fd, len as u64)?;
    rustix::fs::fcntl_add_seals(&fd, REQUIRED | SealFlags::SEAL)?;
    Ok(fd)
}

/// The seals of `fd`; `None` when it cannot have any (not a memfd).
#[cfg(any(target_os = "linux", target_os = "android"))]
fn seals_of(fd: &OwnedFd) -> Option<SealFlags> {
    rustix::fs::fcntl_get_seals(fd).ok()
}

/// Elsewhere there are no memfds, so no descriptor is a slot.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn seals_of(_fd: &OwnedFd) -> Option<SealFlags> {
    None
}

/// Memfds are Linux's: elsewhere no slot can be made.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn memfd(_len: usize) -> Result<OwnedFd> {
    Err(Error::Descriptors(
        "large messages through memfds need Linux or Android".into(),
    ))
}
