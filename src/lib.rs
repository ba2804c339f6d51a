#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(not(unix))]
compile_error!(
    "procwire supports Linux and other Unix systems only; Windows named pipes are not implemented"
);

mod address;
mod auth;
mod channel;
mod client;
pub mod codec;
mod connection;
mod error;
mod frame;
mod listener;
mod process;
mod reconnect;
mod rpc;
#[cfg(any(target_os = "linux", target_os = "android"))]
mod shm;
mod sigpipe;
mod transport;
mod wait;

#[cfg(feature = "json")]
pub use crate::codec::Json;
#[cfg(feature = "postcard")]
pub use crate::codec::Postcard;
#[cfg(feature = "rkyv")]
pub use crate::codec::{ArchiveGuard, Rkyv};
#[cfg(feature = "pickle")]
pub use crate::codec::{
    Pickle, DEFAULT_PICKLE_DEPTH, DEFAULT_PICKLE_EXPANSION, DEFAULT_PICKLE_SIZE,
};
#[cfg(feature = "postcard")]
pub use crate::process::{from_parent, spawn};
#[cfg(any(target_os = "linux", target_os = "android"))]
pub use crate::shm::{SharedArray, SharedArrayMut};
#[cfg(feature = "postcard")]
pub use crate::transport::{duplex, pipe};
pub use crate::{
    address::{Address, Family, MAX_UNIX_PATH},
    auth::{
        answer_challenge, client_handshake, deliver_challenge, server_handshake, AuthKey,
        Expecting, Handshake, HandshakeIo, MAX_HANDSHAKE_MESSAGE_SIZE,
    },
    channel::{Connection, Iter, Receiver, Sender},
    client::{Client, ClientBuilder, DEFAULT_CONNECT_TIMEOUT},
    codec::Codec,
    connection::{DEFAULT_MAX_MESSAGE_SIZE, MAX_FDS_PER_MESSAGE},
    error::{BoxError, Error, Result},
    frame::{EncodedHeader, Header, MAX_HEADER_LEN},
    listener::{Listener, ListenerBuilder, DEFAULT_BACKLOG, DEFAULT_HANDSHAKE_TIMEOUT},
    process::{from_parent_with, spawn_with, Child, PARENT_FD_ENV},
    reconnect::{ReconnectBuilder, DEFAULT_FIRST_BACKOFF, DEFAULT_MAX_BACKOFF},
    rpc::{
        serve, serve_concurrent, Attachment, Call, Envelope, MsgId, Pending, RemoteError, Reply,
        Requester, RpcConnection,
    },
    transport::{duplex_with, pipe_with},
    wait::{wait, InsertError, WaitSet, WaitSource, Waitable},
};
