//! procwire on [tokio](https://tokio.rs) (feature `tokio`): async connections, senders,
//! receivers, a listener and a client, on the current-thread or the multi-thread
//! scheduler.
//!
//! These are the types of [`aio`] with the runtime set to
//! [`Tokio`](crate::aio::Tokio); see there for how they work, and for cancel safety.
//!
//! ```
//! # fn main() -> procwire::Result<()> {
//! # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
//! let (mut a, mut b) = procwire::tokio::duplex::<u64, u64>()?;
//! tokio::spawn(async move {
//!     while let Ok(v) = b.recv().await {
//!         b.send(&(v * 2)).await?;
//!     }
//!     Ok::<(), procwire::Error>(())
//! });
//! a.send(&21).await?;
//! assert_eq!(a.recv().await?, 42);
//! # Ok(()) })
//! # }
//! ```

crate::aio::runtime_module!(crate::aio::Tokio);
