//! Child processes for tests: the test binary re-runs itself as the child (the
//! ipc-channel pattern). A parent test starts `current_exe() --exact <child test>` with
//! [`CHILD_ENV`] set; each `child_*` test returns at once unless that variable is set, so
//! in a normal run they are no-ops.

use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Set in the environment of a child started by [`child`].
pub(crate) const CHILD_ENV: &str = "PROCWIRE_TEST_CHILD";

/// Whether this process is a child started by a parent test.
pub(crate) fn is_child() -> bool {
    std::env::var_os(CHILD_ENV).is_some()
}

/// A command that re-runs this test binary to run only the test `name`, as a child.
pub(crate) fn child(name: &str) -> Command {
    let mut cmd = Command::new(std::env::current_exe().expect("current_exe"));
    cmd.args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null()); // libtest's chatter; panics go to stderr
    cmd
}

/// Waits for `child` (a `procwire::Child` or a std one) to exit, killing it and failing
/// the test after `limit`.
pub(crate) fn wait_for(child: impl Into<Child>, limit: Duration) -> ExitStatus {
    let mut child = child.into();
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("child {} did not exit within {limit:?}", child.id());
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// Asserts that the child exited normally with status 0 (not killed by a signal).
pub(crate) fn assert_exited_ok(status: ExitStatus) {
    assert_eq!(
        status.signal(),
        None,
        "child killed by a signal: {status:?}"
    );
    assert!(status.success(), "child failed: {status:?}");
}

/// Restores the default `SIGPIPE` action (death), as a C or Python host might have it.
#[allow(unsafe_code)] // libc's `signal` has no safe wrapper
pub(crate) fn default_sigpipe() {
    // SAFETY: installs the default disposition for SIGPIPE, no handler function; this
    // child process runs only the one test, so nothing else depends on the old setting.
    let old = unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    assert_ne!(old, libc::SIG_ERR);
}

/// Sends to a peer that is gone, up to a few times; the error must say disconnected.
pub(crate) fn send_until_error(send: impl Fn() -> procwire::Result<()>) {
    for _ in 0..100 {
        if let Err(err) = send() {
            assert!(err.is_disconnected(), "{err:?}");
            return;
        }
    }
    panic!("sending to a closed peer kept succeeding");
}
