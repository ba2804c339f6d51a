#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(not(unix))]
compile_error!(
    "procwire supports Linux and other Unix systems only; Windows named pipes are not implemented"
);

// The layers, lowest first; a module imports only those above it in this list (see
// README.md, "Architecture").
mod address;
#[cfg(any(feature = "tokio", feature = "async-io"))]
pub mod aio;
#[cfg(feature = "async-io")]
pub mod async_io;
pub mod auth;
mod channel;
mod client;
pub mod codec;
mod error;
pub mod frame;
mod listener;
mod message;
mod process;
pub mod rpc;
#[cfg(any(target_os = "linux", target_os = "android"))]
mod shm;
#[cfg(feature = "tls")]
pub mod tls;
#[cfg(feature = "tokio")]
pub mod tokio;
mod trace;
mod transport;
mod wait;

#[cfg(feature = "postcard")]
pub use crate::channel::{duplex, pipe};
#[cfg(feature = "postcard")]
pub use crate::codec::postcard::Postcard;
#[cfg(feature = "postcard")]
pub use crate::process::{from_parent, spawn};
#[cfg(any(target_os = "linux", target_os = "android"))]
pub use crate::shm::{SharedArray, SharedArrayMut};
pub use crate::{
    address::{Address, Family},
    auth::key::AuthKey,
    channel::{duplex_with, pipe_with, Connection, Iter, Receiver, Sender},
    client::{Client, ClientBuilder},
    codec::api::Codec,
    error::{Error, Result},
    listener::{Listener, ListenerBuilder},
    process::{from_parent_with, spawn_with, Child},
    wait::{wait, InsertError, WaitSet, WaitSource, Waitable},
};
