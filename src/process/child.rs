//! [`Child`]: a process started by [`spawn`](crate::spawn), which [`wait`](crate::wait())
//! and [`WaitSet`](crate::WaitSet) can watch for its exit.

#![deny(unsafe_code)] // the parent module allows it for `pre_exec`; nothing here needs it

use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::process::{self, ExitStatus, Output};
use std::sync::Arc;

use crate::wait::{WaitSource, Waitable};

/// A child process started by [`spawn`](crate::spawn) or
/// [`spawn_with`](crate::spawn_with).
///
/// It is a [`std::process::Child`] (reach it with [`as_std_mut`](Child::as_std_mut) or
/// convert with `into()`, for example for its stdout) plus a pidfd: a descriptor that
/// becomes readable when the process exits, so [`wait`](crate::wait()) and
/// [`WaitSet`](crate::WaitSet) can watch the process beside its connection, and a
/// server learns of a crashed worker without polling. The pidfd is opened right after
/// the start, before the process can have been reaped, so it always names this process.
/// It is close-on-exec. It exists on Linux 5.3 and later; elsewhere
/// [`pidfd`](Child::pidfd) is `None` and waiting on the child is an error.
///
/// As with [`std::process::Child`], dropping it neither kills nor reaps the process.
///
/// # Examples
///
/// ```
/// use std::process::Command;
/// use std::time::Duration;
///
/// let (mut child, conn) = procwire::spawn::<(), ()>(Command::new("true"))?;
/// // Ready once the process has exited (its socket end may report end-of-stream first).
/// let ready = procwire::wait(&[&child], Some(Duration::from_secs(10)))?;
/// assert_eq!(ready, [0], "the child exited");
/// assert!(child.wait()?.success());
/// assert!(conn.recv_bytes().unwrap_err().is_disconnected());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Child {
    inner: process::Child,
    pidfd: Option<Arc<OwnedFd>>,
}

impl Child {
    /// The environment variable through which [`spawn`](crate::spawn) tells the child where
    /// its connection is: `PROCWIRE_FD`.
    pub const PARENT_FD_ENV: &'static str = super::PARENT_FD_ENV;

    pub(crate) fn new(inner: process::Child) -> Child {
        let pidfd = open_pidfd(&inner).map(Arc::new);
        Child { inner, pidfd }
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.inner.id()
    }

    /// Kills the process (`SIGKILL`); see [`std::process::Child::kill`].
    ///
    /// # Errors
    ///
    /// As [`std::process::Child::kill`].
    pub fn kill(&mut self) -> io::Result<()> {
        self.inner.kill()
    }

    /// Waits for the process to exit and reaps it; see [`std::process::Child::wait`].
    ///
    /// # Errors
    ///
    /// As [`std::process::Child::wait`].
    pub fn wait(&mut self) -> io::Result<ExitStatus> {
        self.inner.wait()
    }

    /// Reaps the process if it has exited, without blocking; see
    /// [`std::process::Child::try_wait`].
    ///
    /// # Errors
    ///
    /// As [`std::process::Child::try_wait`].
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        self.inner.try_wait()
    }

    /// Waits for the process to exit and collects its output; see
    /// [`std::process::Child::wait_with_output`].
    ///
    /// # Errors
    ///
    /// As [`std::process::Child::wait_with_output`].
    pub fn wait_with_output(self) -> io::Result<Output> {
        self.inner.wait_with_output()
    }

    /// The pidfd that becomes readable when the process exits; `None` where the system
    /// has none (before Linux 5.3, or another Unix).
    pub fn pidfd(&self) -> Option<BorrowedFd<'_>> {
        self.pidfd.as_deref().map(AsFd::as_fd)
    }

    /// The standard library's handle, for its `stdin`, `stdout` and `stderr`.
    pub fn as_std(&self) -> &process::Child {
        &self.inner
    }

    /// The standard library's handle, mutably: `child.as_std_mut().stdout.take()`.
    pub fn as_std_mut(&mut self) -> &mut process::Child {
        &mut self.inner
    }
}

#[cfg(target_os = "linux")]
fn open_pidfd(child: &process::Child) -> Option<OwnedFd> {
    use rustix::process::{pidfd_open, Pid, PidfdFlags};
    pidfd_open(Pid::from_child(child), PidfdFlags::empty()).ok()
}

#[cfg(not(target_os = "linux"))]
fn open_pidfd(_child: &process::Child) -> Option<OwnedFd> {
    None
}

/// Ready when the process has exited (whether or not it was reaped since).
impl Waitable for Child {
    fn wait_source(&self) -> WaitSource<'_> {
        match &self.pidfd {
            Some(fd) => WaitSource::shared(fd),
            None => WaitSource::unsupported(
                "waiting for a child process needs a pidfd (Linux 5.3 or later)",
            ),
        }
    }
}

impl From<Child> for process::Child {
    fn from(child: Child) -> process::Child {
        child.inner
    }
}

impl AsRef<process::Child> for Child {
    fn as_ref(&self) -> &process::Child {
        &self.inner
    }
}

impl AsMut<process::Child> for Child {
    fn as_mut(&mut self) -> &mut process::Child {
        &mut self.inner
    }
}

impl fmt::Debug for Child {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Child")
            .field("id", &self.inner.id())
            .field("pidfd", &self.pidfd())
            .finish_non_exhaustive()
    }
}
