//! Sealed memfds and their mappings: the one module of procwire that maps memory.
//!
//! Two owners, each holding a memfd and one mapping of it:
//!
//! - [`Writable`]: a memfd this process created, mapped read-write and shared. Its
//!   descriptor is never handed out while the mapping exists, so the `&mut [u8]` it lends
//!   is the only way to its bytes.
//! - [`Sealed`]: a memfd that carries `F_SEAL_WRITE`, `F_SEAL_SHRINK` and `F_SEAL_GROW`,
//!   checked here before mapping, mapped read-only. Seals can never be removed, so the
//!   `&[u8]` it lends cannot change or shrink under the borrower, whoever else holds the
//!   memfd.
//!
//! The read-only mapping is `MAP_PRIVATE`: Linux before 6.7 refuses every `MAP_SHARED`
//! mapping of a write-sealed memfd, even a read-only one. A private mapping that is never
//! written shares the memfd's pages (no copy is made) and shows exactly its contents.

#![allow(unsafe_code)] // mmap, munmap and slices over mapped memory have no safe form

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;

use rustix::fs::{FileType, MemfdFlags, SealFlags};
use rustix::mm::{Advice, MapFlags, ProtFlags};

use crate::error::{Error, Result};

/// The seals that make a memfd's contents and size final.
const REQUIRED: SealFlags = SealFlags::WRITE
    .union(SealFlags::SHRINK)
    .union(SealFlags::GROW);

fn refuse(why: String) -> Error {
    Error::Descriptors(format!("shared array refused: {why}"))
}

/// One mapping of `len` bytes at `ptr`, unmapped on drop; no mapping when `len` is 0.
#[derive(Debug)]
struct Map {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: `Map` owns its mapping the way a `Box<[u8]>` owns its allocation: the memory is
// not tied to a thread, and shared access (`&Map`) only ever reads it.
unsafe impl Send for Map {}
// SAFETY: as above; `&Map` gives out `&[u8]` only, and writing needs `&mut`.
unsafe impl Sync for Map {}

impl Map {
    fn new(fd: BorrowedFd<'_>, len: usize, prot: ProtFlags, flags: MapFlags) -> Result<Map> {
        if len == 0 {
            // mmap refuses empty mappings; an empty slice needs no memory.
            return Ok(Map {
                ptr: NonNull::dangling(),
                len,
            });
        }
        // SAFETY: no address hint and no `MAP_FIXED`, so the kernel picks a range that
        // overlaps no existing mapping: no memory that Rust code refers to is affected.
        let ptr = unsafe { rustix::mm::mmap(std::ptr::null_mut(), len, prot, flags, fd, 0) }?;
        let Some(ptr) = NonNull::new(ptr.cast::<u8>()) else {
            return Err(Error::Io(std::io::Error::other("mmap returned address 0")));
        };
        Ok(Map { ptr, len })
    }

    /// Keeps the mapping out of children forked while it exists: a child holds its
    /// parent's mappings from `fork` until `exec`, and a writable shared mapping there
    /// makes `F_SEAL_WRITE` fail with `EBUSY` (Linux's `MADV_DONTFORK`).
    fn dont_fork(&self) -> Result<()> {
        if self.len == 0 {
            return Ok(());
        }
        // SAFETY: `ptr..ptr + len` is exactly a mapping this value made and owns;
        // `MADV_DONTFORK` changes only whether a child inherits it, not its contents or
        // validity in this process.
        unsafe { rustix::mm::madvise(self.ptr.as_ptr().cast(), self.len, Advice::LinuxDontFork) }?;
        Ok(())
    }

    fn bytes(&self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: `ptr..ptr + len` is a mapping this value made and owns; it is unmapped
        // only in `drop`, which cannot run while `&self` is borrowed. Both owners below
        // guarantee that the file stays at least `len` bytes long, so no page of the range
        // can fault with SIGBUS (`Writable`: no one else has the memfd; `Sealed`:
        // `F_SEAL_SHRINK`, checked before mapping), and that nothing writes the bytes while
        // this shared borrow lives (`Writable`: writing needs `&mut self`; `Sealed`:
        // `F_SEAL_WRITE`, which the kernel adds only when no writable shared mapping
        // exists, and after which it refuses writes, new writable shared mappings and hole
        // punching; the mapping itself is read-only).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for Map {
    fn drop(&mut self) {
        if self.len > 0 {
            // SAFETY: `ptr`/`len` are exactly a mapping made by `mmap` and owned by this
            // value; every borrow of it ended before `drop`, so nothing refers to it.
            let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len) };
        }
    }
}

/// A new memfd of `len` bytes, mapped read-write and shared; see the module docs.
#[derive(Debug)]
pub(crate) struct Writable {
    map: Map,
    fd: OwnedFd,
}

impl Writable {
    /// Creates a zero-filled memfd of `len` bytes (close-on-exec, sealing allowed) and
    /// maps it read-write.
    pub(crate) fn create(len: usize) -> Result<Writable> {
        let flags = MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING;
        let fd = rustix::fs::memfd_create("procwire-array", flags)?;
        rustix::fs::ftruncate(&fd, len as u64)?;
        let prot = ProtFlags::READ | ProtFlags::WRITE;
        let map = Map::new(fd.as_fd(), len, prot, MapFlags::SHARED)?;
        map.dont_fork()?;
        Ok(Writable { map, fd })
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        self.map.bytes()
    }

    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
        if self.map.len == 0 {
            return &mut [];
        }
        // SAFETY: the mapping is valid for `len` bytes until `drop` (see `Map::bytes`).
        // The memfd was created by this value, is close-on-exec, and is never lent out
        // while the mapping exists (`Writable` has no `AsFd`; `seal` unmaps before it
        // seals and hands the descriptor on), so no other process or mapping can touch
        // these bytes and nothing can truncate the file; within this process the only
        // way to them is through `self`, which `&mut self` borrows exclusively.
        unsafe { std::slice::from_raw_parts_mut(self.map.ptr.as_ptr(), self.map.len) }
    }

    /// Unmaps the writable mapping, seals the memfd against writing, shrinking, growing and
    /// further seals, and maps it read-only.
    pub(crate) fn seal(self) -> Result<Sealed> {
        let Writable { map, fd } = self;
        // `F_SEAL_WRITE` is refused (EBUSY) while a writable shared mapping exists.
        drop(map);
        add_seals(&fd)?;
        Sealed::open(fd, u64::MAX)
    }
}

/// Adds the seals, retrying for up to [`SEAL_PATIENCE`] while the kernel refuses with
/// `EBUSY`: a child that another thread forked between `mmap` and `madvise` in
/// [`Writable::create`] still holds the writable mapping until it calls `exec`.
fn add_seals(fd: &OwnedFd) -> Result<()> {
    let started = std::time::Instant::now();
    loop {
        match rustix::fs::fcntl_add_seals(fd, REQUIRED | SealFlags::SEAL) {
            Err(rustix::io::Errno::BUSY) if started.elapsed() < SEAL_PATIENCE => {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            other => return Ok(other?),
        }
    }
}

/// How long [`add_seals`] waits for a forked child to let go of the writable mapping.
const SEAL_PATIENCE: std::time::Duration = std::time::Duration::from_secs(1);

/// A memfd sealed against writing, shrinking and growing, mapped read-only.
#[derive(Debug)]
pub(crate) struct Sealed {
    map: Map,
    fd: OwnedFd,
}

impl Sealed {
    /// Checks that `fd` is a memfd carrying the seals the module docs require and at most
    /// `max` bytes long, then maps the whole of it read-only.
    ///
    /// Errors: [`Error::MessageTooLarge`] when it is longer than `max`,
    /// [`Error::Descriptors`] saying what else is wrong (`fd` is closed either way), or
    /// [`Error::Io`] when mapping fails.
    pub(crate) fn open(fd: OwnedFd, max: u64) -> Result<Sealed> {
        let seals = rustix::fs::fcntl_get_seals(&fd)
            .map_err(|_| refuse("the descriptor is not a memfd (it has no seals)".into()))?;
        let missing = REQUIRED.difference(seals);
        if !missing.is_empty() {
            return Err(refuse(format!(
                "the memfd is not sealed against {}",
                seal_names(missing)
            )));
        }
        let st = rustix::fs::fstat(&fd)?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Err(refuse("the descriptor is not a memfd".into()));
        }
        let size = u64::try_from(st.st_size).unwrap_or(u64::MAX);
        if size > max {
            return Err(Error::MessageTooLarge {
                len: size,
                limit: max,
            });
        }
        let len = usize::try_from(size)
            .ok()
            .filter(|&l| l <= isize::MAX as usize)
            .ok_or_else(|| refuse(format!("{size} bytes cannot be mapped")))?;
        // With the size sealed, the checked size is the size for good: map it all.
        let map = Map::new(fd.as_fd(), len, ProtFlags::READ, MapFlags::PRIVATE)?;
        Ok(Sealed { map, fd })
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        self.map.bytes()
    }
}

impl AsFd for Sealed {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// "writing, shrinking and growing", or the part of it that `seals` names.
fn seal_names(seals: SealFlags) -> String {
    let names: Vec<&str> = [
        (SealFlags::WRITE, "writing"),
        (SealFlags::SHRINK, "shrinking"),
        (SealFlags::GROW, "growing"),
    ]
    .into_iter()
    .filter(|(flag, _)| seals.contains(*flag))
    .map(|(_, name)| name)
    .collect();
    match names.as_slice() {
        [] => String::new(),
        [one] => (*one).to_string(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}
