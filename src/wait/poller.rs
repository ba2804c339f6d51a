//! The readiness queue under a [`WaitSet`](super::WaitSet): epoll itself on Linux and
//! Android, the `polling` crate elsewhere.
//!
//! # Why not `polling` on Linux
//!
//! `polling::Poller::wait` is built for a poller that other threads may wake and that
//! honours timeouts below a millisecond: around every `epoll_wait` it arms a `timerfd`
//! (`timerfd_settime`), re-arms its timer and wake-up descriptors (two `epoll_ctl`
//! calls) and reads its `eventfd`. A server loop that waits, receives and replies thus
//! made seven system calls per message where three do the work. A `WaitSet` needs
//! neither feature: it is used through `&mut self`, so no other thread can be inside a
//! wait to be woken, and millisecond timeouts (rounded up, so a wait never ends early)
//! serve its callers. Here a wait is one `epoll_pwait`, and sources are registered
//! level-triggered once, so nothing is re-armed after an event.
//!
//! Both versions take the same calls: `add` a descriptor under a key, `delete` it, `wait`
//! for the keys of ready descriptors.

use std::io;
use std::os::fd::BorrowedFd;
use std::time::Duration;

/// How many readiness events one system call may bring; more wait for the next call.
pub(super) const EVENTS: usize = 1024;

#[cfg(any(target_os = "linux", target_os = "android"))]
pub(super) use self::epoll::SetPoller;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(super) use self::portable::SetPoller;

#[cfg(any(target_os = "linux", target_os = "android"))]
mod epoll {
    use std::mem::MaybeUninit;
    use std::os::fd::{AsFd, OwnedFd};

    use rustix::event::epoll::{self, CreateFlags, Event, EventData, EventFlags};
    use rustix::event::Timespec;
    use rustix::io::Errno;

    use super::*;

    /// An epoll instance whose sources are registered level-triggered for reading.
    #[derive(Debug)]
    pub(in crate::wait) struct SetPoller {
        epoll: OwnedFd,
    }

    impl SetPoller {
        pub(in crate::wait) fn new() -> io::Result<SetPoller> {
            Ok(SetPoller {
                epoll: epoll::create(CreateFlags::CLOEXEC)?,
            })
        }

        /// Watches `fd` for reading (and hang-ups and errors, which epoll always
        /// reports) under `key`, level-triggered.
        ///
        /// The caller keeps `fd` open until [`delete`](SetPoller::delete) succeeded: an
        /// epoll registration follows the open file, not the number, so a descriptor
        /// closed while registered could leave events for a file nobody holds.
        pub(in crate::wait) fn add(&self, fd: BorrowedFd<'_>, key: usize) -> io::Result<()> {
            epoll::add(
                &self.epoll,
                fd,
                EventData::new_u64(key as u64),
                EventFlags::IN,
            )?;
            Ok(())
        }

        pub(in crate::wait) fn delete(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
            epoll::delete(&self.epoll, fd)?;
            Ok(())
        }

        /// One `epoll_pwait`: puts the keys of ready descriptors in `keys` (cleared
        /// first), waiting at most `timeout` (rounded up to whole milliseconds), forever
        /// with `None`. A signal ends the wait early with no keys.
        pub(in crate::wait) fn wait(
            &mut self,
            keys: &mut Vec<usize>,
            timeout: Option<Duration>,
        ) -> io::Result<()> {
            keys.clear();
            let mut events = [const { MaybeUninit::<Event>::uninit() }; EVENTS];
            let timeout = timeout.map(|t| Timespec {
                // Longer than i32::MAX milliseconds (24 days) waits that long, then
                // the caller waits again.
                tv_sec: t.as_secs().min(i32::MAX as u64 / 1000 - 1) as _,
                tv_nsec: t.subsec_nanos().into(),
            });
            match epoll::wait(self.epoll.as_fd(), &mut events, timeout.as_ref()) {
                Ok((ready, _)) => {
                    keys.extend(ready.iter().map(|e| e.data.u64() as usize));
                    Ok(())
                }
                Err(Errno::INTR) => Ok(()),
                Err(e) => Err(e.into()),
            }
        }

        /// Nothing to do: registrations are level-triggered and stay armed.
        #[inline]
        pub(in crate::wait) fn rearm(&self, _fd: BorrowedFd<'_>, _key: usize) -> io::Result<()> {
            Ok(())
        }
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
mod portable {
    use std::num::NonZeroUsize;
    use std::os::fd::AsRawFd;
    use std::sync::Mutex;

    use polling::{Event, Events, PollMode, Poller};

    use super::*;

    /// A `polling` poller, level-triggered where the platform allows and re-armed after
    /// each event where it does not.
    #[derive(Debug)]
    pub(in crate::wait) struct SetPoller {
        poller: Poller,
        level: bool,
        /// Behind a mutex only so that the set is `Sync` (`Events` is not); reached
        /// through `get_mut`, which takes no lock.
        events: Mutex<Events>,
    }

    impl SetPoller {
        pub(in crate::wait) fn new() -> io::Result<SetPoller> {
            let poller = Poller::new()?;
            Ok(SetPoller {
                level: poller.supports_level(),
                poller,
                events: Mutex::new(Events::with_capacity(
                    NonZeroUsize::new(EVENTS).unwrap_or(NonZeroUsize::MIN),
                )),
            })
        }

        /// Watches `fd` for reading under `key`; the caller keeps it open until
        /// [`delete`](SetPoller::delete) succeeded, as `polling` requires.
        pub(in crate::wait) fn add(&self, fd: BorrowedFd<'_>, key: usize) -> io::Result<()> {
            let mode = if self.level {
                PollMode::Level
            } else {
                PollMode::Oneshot
            };
            // SAFETY: the caller deletes `fd` before closing it (see `WaitSet::insert`).
            #[allow(unsafe_code)]
            unsafe {
                self.poller
                    .add_with_mode(fd.as_raw_fd(), Event::readable(key), mode)
            }
        }

        pub(in crate::wait) fn delete(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
            self.poller.delete(fd)
        }

        pub(in crate::wait) fn wait(
            &mut self,
            keys: &mut Vec<usize>,
            timeout: Option<Duration>,
        ) -> io::Result<()> {
            keys.clear();
            let events = self
                .events
                .get_mut()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            events.clear();
            self.poller.wait(events, timeout)?;
            keys.extend(events.iter().map(|e| e.key));
            Ok(())
        }

        /// Re-arms `fd` after an event where registrations are one-shot.
        pub(in crate::wait) fn rearm(&self, fd: BorrowedFd<'_>, key: usize) -> io::Result<()> {
            if self.level {
                return Ok(());
            }
            self.poller.modify(fd, Event::readable(key))
        }
    }
}
