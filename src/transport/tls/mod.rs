//! TLS over a TCP stream (feature `tls`): the session every read and write of a TLS
//! connection goes through (`session.rs`), and the handshake that makes it, driven without
//! blocking (`handshake.rs`). The configs and the public docs are in `crate::tls`.

mod handshake;
mod session;

pub(crate) use self::handshake::{client_blocking, Handshaking, Step};
pub(crate) use self::session::Session;
