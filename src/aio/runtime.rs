//! The two runtimes the async types run on, behind one sealed trait.
//!
//! Everything a driver needs of a runtime is three things: register a descriptor with its
//! reactor, run a non-blocking operation until it stops saying "would block" (waiting for
//! readiness in between), and a timer for connect and handshake deadlines. The operations
//! themselves (reading frames, writing frames, handshakes) are the crate's, written once.

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::error::Result;

mod sealed {
    pub trait Sealed {}
}

/// An async runtime whose reactor drives procwire's async types: [`Tokio`] (feature
/// `tokio`) or [`AsyncIo`] (feature `async-io`, for smol and other runtimes built on
/// async-io).
///
/// The trait is sealed; its items are the crate's business. Use it as the last type
/// parameter of [`aio`](crate::aio)'s types, or through the aliases of
/// [`procwire::tokio`](crate::tokio) and [`procwire::async_io`](crate::async_io).
pub trait Runtime: sealed::Sealed + Sized + Send + Sync + 'static {
    /// One descriptor registered with the reactor.
    #[doc(hidden)]
    type Registration: Send + Sync + 'static;

    /// The runtime's timer.
    #[doc(hidden)]
    type Sleep: Future<Output = ()> + Send + 'static;

    /// Registers `fd`, which is in non-blocking mode, with the reactor.
    #[doc(hidden)]
    fn register(fd: Arc<OwnedFd>) -> io::Result<Self::Registration>;

    /// Runs `op` until it returns `Some` or fails, waiting for the descriptor to turn
    /// readable (or writable, with `write`) whenever it returns `None` ("would block").
    /// `drained` is set (by `op`, or before) when the last operation left the descriptor
    /// empty: the next attempt then waits for readiness first, and saves a system call
    /// that would only say "would block".
    #[doc(hidden)]
    fn poll_io<T>(
        reg: &Self::Registration,
        write: bool,
        drained: &Cell<bool>,
        cx: &mut Context<'_>,
        op: impl FnMut() -> Result<Option<T>>,
    ) -> Poll<Result<T>>;

    /// A timer that fires after `duration`.
    #[doc(hidden)]
    fn sleep(duration: Duration) -> Self::Sleep;
}

/// A descriptor shared with the reader and writer that use it, as a reactor holds it.
#[derive(Debug)]
#[doc(hidden)]
pub struct SharedFd(Arc<OwnedFd>);

impl AsRawFd for SharedFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

impl AsFd for SharedFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// The [tokio](https://tokio.rs) runtime (feature `tokio`): the current-thread and the
/// multi-thread scheduler alike. The I/O driver must be enabled (`enable_io` or
/// `enable_all` on the runtime builder; `#[tokio::main]` does), and the time driver for
/// connect and handshake deadlines.
#[cfg(feature = "tokio")]
#[derive(Debug, Clone, Copy)]
pub enum Tokio {}

#[cfg(feature = "tokio")]
impl sealed::Sealed for Tokio {}

#[cfg(feature = "tokio")]
impl Runtime for Tokio {
    type Registration = ::tokio::io::unix::AsyncFd<SharedFd>;
    type Sleep = ::tokio::time::Sleep;

    fn register(fd: Arc<OwnedFd>) -> io::Result<Self::Registration> {
        if ::tokio::runtime::Handle::try_current().is_err() {
            return Err(io::Error::other(
                "procwire's tokio types must be made inside a tokio runtime (with its I/O \
                 driver enabled)",
            ));
        }
        // SAFETY: `SharedFd` keeps its `Arc<OwnedFd>` for as long as it lives, and the
        // `AsyncFd` owns the `SharedFd`: the descriptor stays open and is the same one for
        // every `as_raw_fd` call until the `AsyncFd` is dropped.
        #[allow(unsafe_code)]
        let registered = unsafe { ::tokio::io::unix::AsyncFd::register(SharedFd(fd)) };
        registered.map_err(io::Error::from)
    }

    #[inline]
    fn poll_io<T>(
        reg: &Self::Registration,
        write: bool,
        drained: &Cell<bool>,
        cx: &mut Context<'_>,
        mut op: impl FnMut() -> Result<Option<T>>,
    ) -> Poll<Result<T>> {
        // tokio caches readiness: while it is set, `poll_*_ready` returns at once without a
        // system call, and only an operation that would block clears it — or one that
        // drained the descriptor (a short read), as tokio's own streams do: the event for
        // bytes that come later is a new one, so clearing this one loses nothing.
        loop {
            let ready = if write {
                reg.poll_write_ready(cx)
            } else {
                reg.poll_read_ready(cx)
            };
            let mut guard = std::task::ready!(ready)?;
            match op()? {
                Some(value) => {
                    if drained.get() {
                        guard.clear_ready();
                    }
                    return Poll::Ready(Ok(value));
                }
                None => guard.clear_ready(),
            }
        }
    }

    fn sleep(duration: Duration) -> Self::Sleep {
        ::tokio::time::sleep(duration)
    }
}

/// The [async-io](https://docs.rs/async-io) reactor (feature `async-io`): what
/// [smol](https://docs.rs/smol) and `async-std` run on, driven by `async_io::block_on` or
/// by its own thread.
#[cfg(feature = "async-io")]
#[derive(Debug, Clone, Copy)]
pub enum AsyncIo {}

#[cfg(feature = "async-io")]
impl sealed::Sealed for AsyncIo {}

/// async-io's timer as a future of `()`.
#[cfg(feature = "async-io")]
#[derive(Debug)]
#[doc(hidden)]
pub struct AsyncIoSleep(async_io::Timer);

#[cfg(feature = "async-io")]
impl Future for AsyncIoSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.0).poll(cx).map(|_| ())
    }
}

#[cfg(feature = "async-io")]
impl Runtime for AsyncIo {
    type Registration = async_io::Async<SharedFd>;
    type Sleep = AsyncIoSleep;

    fn register(fd: Arc<OwnedFd>) -> io::Result<Self::Registration> {
        async_io::Async::new_nonblocking(SharedFd(fd))
    }

    #[inline]
    fn poll_io<T>(
        reg: &Self::Registration,
        write: bool,
        drained: &Cell<bool>,
        cx: &mut Context<'_>,
        mut op: impl FnMut() -> Result<Option<T>>,
    ) -> Poll<Result<T>> {
        // async-io registers interest only when asked, so the operation goes first and the
        // reactor is asked only when it would block — or, when the last operation drained
        // the descriptor, at once.
        let mut wait_first = drained.get();
        loop {
            if !wait_first {
                if let Some(value) = op()? {
                    return Poll::Ready(Ok(value));
                }
            }
            wait_first = false;
            let ready = if write {
                reg.poll_writable(cx)
            } else {
                reg.poll_readable(cx)
            };
            std::task::ready!(ready)?;
        }
    }

    fn sleep(duration: Duration) -> Self::Sleep {
        AsyncIoSleep(async_io::Timer::after(duration))
    }
}

/// `fut`, or [`Error::Timeout`](crate::Error::Timeout) when `sleep` fires first.
pub(crate) struct Deadline<F, S> {
    pub(crate) fut: F,
    pub(crate) sleep: Pin<Box<S>>,
}

impl<T, F: Future<Output = Result<T>> + Unpin, S: Future<Output = ()>> Future for Deadline<F, S> {
    type Output = Result<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        if let Poll::Ready(out) = Pin::new(&mut self.fut).poll(cx) {
            return Poll::Ready(out);
        }
        match self.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(crate::Error::Timeout)),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Runs `fut` for at most `timeout`.
pub(crate) async fn within<Rt: Runtime, T>(
    timeout: Duration,
    fut: impl Future<Output = Result<T>>,
) -> Result<T> {
    let fut = std::pin::pin!(fut);
    Deadline {
        fut,
        sleep: Box::pin(Rt::sleep(timeout)),
    }
    .await
}
