//! procwire on [async-io](https://docs.rs/async-io) (feature `async-io`): async
//! connections, senders, receivers, a listener and a client for smol, async-std and any
//! executor, driven by async-io's reactor.
//!
//! These are the types of [`aio`] with the runtime set to
//! [`AsyncIo`](crate::aio::AsyncIo); see there for how they work, and for cancel safety.
//!
//! ```
//! # fn main() -> procwire::Result<()> {
//! async_io::block_on(async {
//!     let (mut a, mut b) = procwire::async_io::duplex::<String, String>()?;
//!     a.send(&"ping".to_string()).await?;
//!     let ping = b.recv().await?;
//!     b.send(&ping.replace('i', "o")).await?;
//!     assert_eq!(a.recv().await?, "pong");
//!     Ok(())
//! })
//! # }
//! ```

crate::aio::runtime_module!(crate::aio::AsyncIo);
