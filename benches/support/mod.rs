//! Helpers shared by the bench binaries (a directory, so that cargo does not take it for
//! a bench of its own).

use std::io;

/// Pins the calling thread to `cpu`.
// `sched_setaffinity` has no safe wrapper among the dependencies (rustix's needs its
// `thread` feature, which the crate does not enable).
#[allow(unsafe_code)]
pub(crate) fn pin_current_thread(cpu: usize) {
    assert!(cpu < libc::CPU_SETSIZE as usize, "cpu {cpu} out of range");
    // SAFETY: `cpu_set_t` is a plain bit array; all-zero bytes are a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu < CPU_SETSIZE`, checked above, so the bit lies inside `set`.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: pid 0 is the calling thread; `set` is an initialised `cpu_set_t` of the size
    // passed, and the kernel only reads it.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) };
    assert_eq!(
        rc,
        0,
        "sched_setaffinity(cpu {cpu}): {}",
        io::Error::last_os_error()
    );
}
