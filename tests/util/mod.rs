//! Helpers shared by the integration tests: bounded test bodies, raw descriptor access and
//! close-on-exec checks.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code, unused_macros, unused_imports)]

pub(crate) mod child;
#[cfg(feature = "tls")]
pub(crate) mod tls;
pub(crate) mod transport;

use std::fs::File;
use std::os::fd::AsFd;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::Duration;

/// How long any one test body may run before it counts as hung.
pub(crate) const LIMIT: Duration = Duration::from_secs(60);

/// A generous wait for something that should happen at once (a message already sent).
pub(crate) const SOON: Duration = Duration::from_secs(10);

/// Runs `f` on its own thread and fails the test if it has not finished within [`LIMIT`],
/// so a hang fails instead of stalling the run. A panic in `f` is re-raised here.
pub(crate) fn bounded<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let handle = thread::spawn(move || {
        let _done = done_tx; // dropped when `f` returns or unwinds
        f()
    });
    if let Err(RecvTimeoutError::Timeout) = done_rx.recv_timeout(LIMIT) {
        panic!("test body did not finish within {LIMIT:?}");
    }
    match handle.join() {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// A `File` on a duplicate of `fd`, to write or read the raw bytes of a connection.
pub(crate) fn raw(fd: impl AsFd) -> File {
    File::from(fd.as_fd().try_clone_to_owned().expect("dup"))
}

/// Whether `fd` has `FD_CLOEXEC` set.
pub(crate) fn is_cloexec(fd: impl AsFd) -> bool {
    rustix::io::fcntl_getfd(fd)
        .expect("fcntl(F_GETFD)")
        .contains(rustix::io::FdFlags::CLOEXEC)
}

/// The descriptor flags of an arbitrary descriptor number; `None` when it is not open.
#[allow(unsafe_code)] // fcntl on a bare number; no descriptor is created, used or closed
pub(crate) fn fd_flags(fd: i32) -> Option<i32> {
    // SAFETY: F_GETFD only reads the flags of descriptor `fd`; for a number that is not
    // open it fails with EBADF and has no effect.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    (flags != -1).then_some(flags)
}

/// The descriptors open in this process, read from `/proc/self/fd` (Linux) or `/dev/fd`;
/// the one the directory listing itself used is left out.
pub(crate) fn open_fds() -> Vec<i32> {
    let dir = if cfg!(target_os = "linux") {
        "/proc/self/fd"
    } else {
        "/dev/fd"
    };
    let listed: Vec<i32> = std::fs::read_dir(dir)
        .expect("list open descriptors")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .parse()
                .expect("fd number")
        })
        .collect();
    // The directory's own descriptor is closed now, so it no longer answers F_GETFD.
    listed
        .into_iter()
        .filter(|&fd| fd_flags(fd).is_some())
        .collect()
}

/// The open descriptors that would survive an `exec` (no `FD_CLOEXEC`).
pub(crate) fn inheritable_fds() -> Vec<i32> {
    open_fds()
        .into_iter()
        .filter(|&fd| fd_flags(fd).is_some_and(|f| f & libc::FD_CLOEXEC == 0))
        .collect()
}

/// Asserts that `$result` is an `Err` matching `$pattern` and evaluates to the error.
macro_rules! assert_err {
    ($result:expr, $pattern:pat $(if $guard:expr)? $(,)?) => {
        match $result {
            Err(e) => {
                assert!(matches!(e, $pattern $(if $guard)?), "unexpected error {e:?}");
                e
            }
            Ok(v) => panic!("expected an error, got Ok({v:?})"),
        }
    };
}
pub(crate) use assert_err;

/// Asserts that `run` fails with `Timeout` no earlier than `timeout` and not much later.
pub(crate) fn assert_times_out(run: impl FnOnce() -> procwire::Result<()>, timeout: Duration) {
    let start = std::time::Instant::now();
    let result = run();
    let took = start.elapsed();
    assert!(
        matches!(result, Err(procwire::Error::Timeout)),
        "{result:?}"
    );
    assert!(took >= timeout, "gave up early, after {took:?}");
    assert!(
        took < timeout + Duration::from_secs(3),
        "overshot: {took:?}"
    );
}

/// Writes `bytes` to `w` one byte at a time, about a millisecond apart, on a new thread.
pub(crate) fn trickle(mut w: File, bytes: Vec<u8>) -> thread::JoinHandle<()> {
    use std::io::Write;
    thread::spawn(move || {
        for b in bytes {
            w.write_all(&[b]).expect("write one byte");
            thread::sleep(Duration::from_millis(1));
        }
    })
}

/// A pipe whose sender wrote `bytes` raw and closed; returns the receiver.
pub(crate) fn pipe_with_raw_bytes(bytes: &[u8]) -> procwire::Receiver<()> {
    use std::io::Write;
    let (tx, rx) = procwire::pipe::<()>().expect("pipe");
    raw(&tx).write_all(bytes).expect("write raw bytes");
    rx
}

/// The wire bytes of one message: its header, then `payload`.
pub(crate) fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = procwire::frame::Header::for_payload(payload.len() as u64)
        .encode()
        .to_vec();
    out.extend_from_slice(payload);
    out
}

/// What a listener turned away, as `on_rejected` saw it: `{:?}` of each error, in order.
pub(crate) struct Rejections(mpsc::Receiver<String>, std::cell::RefCell<Vec<String>>);

impl Rejections {
    /// A builder that reports every rejected client to the returned [`Rejections`].
    pub(crate) fn on(
        builder: procwire::ListenerBuilder,
    ) -> (procwire::ListenerBuilder, Rejections) {
        let (tx, rx) = mpsc::channel();
        let tx = std::sync::Mutex::new(tx);
        let builder = builder.on_rejected(move |_, e| {
            let _ = tx.lock().unwrap().send(format!("{e:?}"));
        });
        (builder, Rejections(rx, Default::default()))
    }

    /// The next rejection not yet returned by `next`, waiting at most `limit`.
    pub(crate) fn next(&self, limit: Duration) -> Option<String> {
        let mut seen = self.1.borrow_mut();
        let taken = seen.len();
        seen.extend(self.0.try_iter());
        if let Some(e) = seen.get(taken) {
            return Some(e.clone());
        }
        let e = self.0.recv_timeout(limit).ok()?;
        seen.push(e.clone());
        Some(e)
    }

    /// Every rejection reported so far.
    pub(crate) fn seen(&self) -> Vec<String> {
        let mut seen = self.1.borrow_mut();
        seen.extend(self.0.try_iter());
        seen.clone()
    }

    /// How many rejections were reported so far.
    pub(crate) fn drain_count(&self) -> usize {
        self.seen().len()
    }
}

/// Drives `listener` from this thread (waiting on it as a wait source and calling
/// `try_accept`) for `span`; returns the connections it accepted.
pub(crate) fn drive_for(
    listener: &procwire::Listener,
    span: Duration,
) -> Vec<procwire::Connection<(), ()>> {
    let end = std::time::Instant::now() + span;
    let mut accepted = Vec::new();
    loop {
        let left = end.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return accepted;
        }
        procwire::wait(&[listener], Some(left.min(Duration::from_millis(50)))).unwrap();
        while let Some(conn) = listener.try_accept().unwrap() {
            accepted.push(conn);
        }
    }
}

/// A fresh private directory for one test, removed by the guard.
pub(crate) struct TempDir(pub(crate) std::path::PathBuf);

impl TempDir {
    pub(crate) fn new(tag: &str) -> TempDir {
        let mut rnd = [0u8; 8];
        getrandom::fill(&mut rnd).unwrap();
        let dir = std::env::temp_dir().join(format!(
            "procwire-test-{tag}-{}-{:016x}",
            std::process::id(),
            u64::from_ne_bytes(rnd)
        ));
        std::fs::create_dir(&dir).unwrap();
        TempDir(dir)
    }

    pub(crate) fn path(&self, name: &str) -> std::path::PathBuf {
        self.0.join(name)
    }

    pub(crate) fn entries(&self) -> Vec<String> {
        std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
