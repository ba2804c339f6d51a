//! Writing to a pipe whose reader is gone must be an `EPIPE` error, never a `SIGPIPE`
//! that kills the host process.
//!
//! Sockets use `MSG_NOSIGNAL`. Pipes have no such flag, so when the process has not set
//! `SIGPIPE` to be ignored (Rust's runtime does; a C or Python host may not), the write runs
//! with `SIGPIPE` blocked in the calling thread, and a `SIGPIPE` that the write raised is
//! consumed before the mask is restored. Nothing process-wide is changed.

#![allow(unsafe_code)] // libc's signal-mask calls have no safe wrapper in rustix.

use std::io;
use std::mem::MaybeUninit;

/// Whether `SIGPIPE` is currently ignored by the process.
pub(crate) fn is_ignored() -> bool {
    let mut old = MaybeUninit::<libc::sigaction>::zeroed();
    // SAFETY: a null `act` only queries the disposition; `old` is a valid, writable
    // `sigaction`.
    let rc = unsafe { libc::sigaction(libc::SIGPIPE, std::ptr::null(), old.as_mut_ptr()) };
    // SAFETY: on success `sigaction` filled `old`; on failure it is still all zeroes,
    // which is a valid `sigaction`.
    let old = unsafe { old.assume_init() };
    rc == 0 && old.sa_sigaction == libc::SIG_IGN
}

fn sigpipe_set() -> libc::sigset_t {
    let mut set = MaybeUninit::<libc::sigset_t>::zeroed();
    // SAFETY: `set` is valid, writable memory for a `sigset_t`; both calls only write it.
    unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        libc::sigaddset(set.as_mut_ptr(), libc::SIGPIPE);
        set.assume_init()
    }
}

fn pending_sigpipe() -> bool {
    let mut set = MaybeUninit::<libc::sigset_t>::zeroed();
    // SAFETY: `set` is valid, writable memory; `sigpending` only writes it, and
    // `sigismember` only reads the set it initialised.
    unsafe {
        libc::sigpending(set.as_mut_ptr()) == 0
            && libc::sigismember(set.as_ptr(), libc::SIGPIPE) == 1
    }
}

/// Runs `write` with `SIGPIPE` blocked in this thread; a `SIGPIPE` it raised is consumed.
pub(crate) fn with_sigpipe_blocked(write: impl FnOnce() -> io::Result<usize>) -> io::Result<usize> {
    let block = sigpipe_set();
    let mut old = MaybeUninit::<libc::sigset_t>::zeroed();
    // SAFETY: `block` is an initialised set and `old` valid memory for the previous mask.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &block, old.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    // SAFETY: `pthread_sigmask` succeeded, so it wrote the previous mask into `old`.
    let old = unsafe { old.assume_init() };
    let was_pending = pending_sigpipe();
    let result = write();
    if matches!(&result, Err(e) if e.raw_os_error() == Some(libc::EPIPE)) && !was_pending {
        let zero = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `block` is an initialised set, a null info pointer is allowed and `zero`
        // is a valid timeout; this only dequeues the SIGPIPE our write raised.
        unsafe { libc::sigtimedwait(&block, std::ptr::null_mut(), &zero) };
    }
    // SAFETY: `old` is the initialised mask saved above; restoring it is always valid.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
    result
}
