//! Async connections, listeners and clients: the blocking API's vocabulary as futures, on
//! tokio ([`procwire::tokio`](crate::tokio), feature `tokio`) or async-io
//! ([`procwire::async_io`](crate::async_io), feature `async-io`, for smol).
//!
//! The types here are generic over the [`Runtime`]; the two runtime modules name them
//! without it (`procwire::tokio::Connection<S, R>` is `aio::Connection<S, R, Postcard,
//! Tokio>`) and add the setup functions: `duplex`, `pipe`, `spawn`, `Listener`, `Client`.
//!
//! ```
//! # #[cfg(feature = "tokio")]
//! # fn main() -> procwire::Result<()> {
//! # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
//! let (mut tx, mut rx) = procwire::tokio::pipe::<Vec<f64>>()?;
//! tx.send(&vec![1.0, 2.0]).await?;
//! assert_eq!(rx.recv().await?, [1.0, 2.0]);
//!
//! // Raw messages into a slice, as in the blocking API.
//! let (mut a, mut b) = procwire::tokio::duplex::<(), ()>()?;
//! a.send_bytes(&[1u32, 2, 3][..]).await?;
//! let mut out = [0u32; 3];
//! assert_eq!(b.recv_bytes_into(&mut out[..]).await?, 12);
//! assert_eq!(out, [1, 2, 3]);
//! # Ok(()) })
//! # }
//! # #[cfg(not(feature = "tokio"))]
//! # fn main() {}
//! ```
//!
//! # One core, two drivers
//!
//! Nothing about frames or handshakes is written for async. A receive is the message
//! layer's own receive, resumable: it reads until the socket would block and records how
//! far it got (header read, payload bytes so far); the runtime waits for readiness and the
//! same receive resumes. Large payloads still go from the kernel straight into the
//! caller's slice. A send is the writer's resumable write. The [`Listener`] is the
//! blocking listener's engine: its poller's descriptor is registered with the runtime,
//! and every handshake keeps running on the sans-I/O machine, concurrently.
//!
//! A runtime contributes only "register this descriptor" and "wait until it is ready".
//! There are two drivers and not one runtime-agnostic one because the agnostic choice
//! (async-io's `Async`, which works under tokio too) runs its own reactor thread when
//! used under tokio: every wake-up then crosses threads, which is what a current-thread
//! tokio program picked tokio to avoid. Measured (`benches/async.rs`, typed `u64` round
//! trip to a peer process, one core): 4.96 µs on the tokio driver, 9.87 µs on the
//! async-io driver inside the same tokio runtime (2.0×), 6.06 µs on async-io's own
//! `block_on`, 3.84 µs blocking. Each driver is about 40 lines
//! (`src/aio/runtime.rs`); everything else is shared.
//!
//! # Cancel safety
//!
//! Every receive is cancel safe: dropping its future (a `select!` that took another
//! branch, a timeout) loses nothing. The bytes it had read, including those already
//! written into the caller's slice by `recv_bytes_into`, go back into the receiver, and
//! the next receive returns the whole message.
//!
//! A send dropped before anything of its message went out sends nothing. One dropped
//! part-way keeps the rest of its frame (a copy, taken only then) and sends it before the
//! next message, as [`Error::PartlySent`](crate::Error::PartlySent) does for timed
//! blocking sends: the peer never sees half a message followed by another one.
//! [`Sender::flush`] finishes it without sending anything new.
//!
//! `accept` is cancel safe: a client leaves the listener only when the future returns
//! it. A connect dropped part-way abandons that connection.
//!
//! # What is blocking-only
//!
//! File transfer (`send_file`/`recv_file`) and shared arrays are blocking; convert a
//! connection with `into_blocking` (and back with `from_blocking`), which keeps whatever
//! it had buffered. The async client does not connect to FIFO addresses.

mod channel;
mod runtime;
mod setup;

pub use self::channel::{Connection, DefaultRuntime, Receiver, Sender};
#[cfg(feature = "async-io")]
pub use self::runtime::AsyncIo;
#[cfg(feature = "async-io")]
#[doc(hidden)]
pub use self::runtime::AsyncIoSleep;
pub use self::runtime::Runtime;
#[doc(hidden)]
pub use self::runtime::SharedFd;
#[cfg(feature = "tokio")]
pub use self::runtime::Tokio;
pub use self::setup::{duplex_with, pipe_with, spawn_with, Client, ClientBuilder, Listener};

/// The runtime modules: the generic types with the runtime filled in, and the setup
/// functions with the default codec.
macro_rules! runtime_module {
    ($rt:ty) => {
        use std::process::Command;

        use crate::aio;
        use crate::error::Result;
        use crate::process::Child;
        #[cfg(feature = "postcard")]
        use crate::Postcard;

        /// The runtime of this module.
        pub type Rt = $rt;

        /// An async duplex connection on this runtime; see [`aio::Connection`].
        #[cfg(feature = "postcard")]
        pub type Connection<S, R, C = Postcard> = aio::Connection<S, R, C, $rt>;
        /// An async duplex connection on this runtime; see [`aio::Connection`].
        #[cfg(not(feature = "postcard"))]
        pub type Connection<S, R, C> = aio::Connection<S, R, C, $rt>;

        /// The sending half of an async connection on this runtime; see [`aio::Sender`].
        #[cfg(feature = "postcard")]
        pub type Sender<T, C = Postcard> = aio::Sender<T, C, $rt>;
        /// The sending half of an async connection on this runtime; see [`aio::Sender`].
        #[cfg(not(feature = "postcard"))]
        pub type Sender<T, C> = aio::Sender<T, C, $rt>;

        /// The receiving half of an async connection on this runtime; see
        /// [`aio::Receiver`].
        #[cfg(feature = "postcard")]
        pub type Receiver<T, C = Postcard> = aio::Receiver<T, C, $rt>;
        /// The receiving half of an async connection on this runtime; see
        /// [`aio::Receiver`].
        #[cfg(not(feature = "postcard"))]
        pub type Receiver<T, C> = aio::Receiver<T, C, $rt>;

        /// An async listener on this runtime; see [`aio::Listener`].
        pub type Listener = aio::Listener<$rt>;

        /// Connects to listeners from this runtime; see [`aio::Client`].
        pub type Client = aio::Client<$rt>;

        /// Options for connecting from this runtime; see [`aio::ClientBuilder`].
        pub type ClientBuilder = aio::ClientBuilder<$rt>;

        /// A pair of connected async connections over a socket pair, with the default
        /// codec; see [`aio::duplex_with`].
        ///
        /// # Errors
        ///
        /// As [`aio::duplex_with`].
        #[cfg(feature = "postcard")]
        #[allow(clippy::type_complexity)]
        pub fn duplex<A, B>() -> Result<(Connection<A, B>, Connection<B, A>)> {
            aio::duplex_with(Postcard)
        }

        /// A one-way async pair over a socket pair, with the default codec; see
        /// [`aio::pipe_with`].
        ///
        /// # Errors
        ///
        /// As [`aio::pipe_with`].
        #[cfg(feature = "postcard")]
        pub fn pipe<T>() -> Result<(Sender<T>, Receiver<T>)> {
            aio::pipe_with(Postcard)
        }

        /// Starts `cmd` as a child process with an async connection to it, with the
        /// default codec; see [`aio::spawn_with`].
        ///
        /// # Errors
        ///
        /// As [`aio::spawn_with`].
        #[cfg(feature = "postcard")]
        pub fn spawn<S, R>(cmd: Command) -> Result<(Child, Connection<S, R>)> {
            aio::spawn_with(cmd, Postcard)
        }

        #[allow(dead_code)]
        fn _runtime_is_sealed() -> impl aio::Runtime {
            None::<$rt>.expect("never called")
        }
    };
}

pub(crate) use runtime_module;
