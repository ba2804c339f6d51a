//! TLS for TCP connections, over [rustls](https://docs.rs/rustls/0.23) (feature `tls`).
//!
//! A listener built with [`ListenerBuilder::tls`](crate::ListenerBuilder::tls) and a
//! client built with [`ClientBuilder::tls`](crate::ClientBuilder::tls) run a TLS
//! handshake right after the TCP connection is made, and every byte after it (the HMAC
//! handshake when a key is set, then every message) travels encrypted and authenticated.
//! Nothing else changes: the connection is the same [`Connection`](crate::Connection),
//! with the same typed and raw messages, `recv_bytes_into`, `poll`, timeouts,
//! [`wait`](crate::wait())/[`WaitSet`](crate::WaitSet), rpc, and the async types.
//!
//! # Who proves what
//!
//! | setup | the client knows the server by | the server knows the client by |
//! | --- | --- | --- |
//! | [`server_config`] + [`client_config`] | its certificate, issued for the name given to `tls` | nothing |
//! | the same + [`authkey`](crate::ListenerBuilder::authkey) on both | its certificate and the key | the key (CPython's HMAC handshake, inside TLS) |
//! | [`server_config_mutual`] + [`client_config_mutual`] | its certificate | its certificate |
//! | [`pinned_client_config`] + a key | exactly that (self-signed) certificate | the key |
//!
//! The configs are plain [`rustls::ServerConfig`](https://docs.rs/rustls/0.23/rustls/server/struct.ServerConfig.html) and [`rustls::ClientConfig`](https://docs.rs/rustls/0.23/rustls/client/struct.ClientConfig.html): build
//! your own for anything the helpers do not cover. The crypto provider is rustls's default
//! (aws-lc-rs).
//!
//! # What a server does with bad clients
//!
//! The TLS handshake is driven by the listener's readiness engine, like the HMAC one: a
//! client that sends nothing, stops half-way, sends plain TCP or presents a bad
//! certificate holds up no other client, and is dropped at the handshake deadline
//! ([`handshake_timeout`](crate::ListenerBuilder::handshake_timeout)) at the latest, with
//! the reason given to [`on_rejected`](crate::ListenerBuilder::on_rejected). Errors of the
//! handshake are [`Error::AuthenticationFailed`](crate::Error::AuthenticationFailed) with
//! rustls's reason ("tls handshake failed: invalid peer certificate: Expired").
//!
//! # What is different from plain TCP
//!
//! - Descriptors cannot travel (as over plain TCP), and `send_file` reads and encrypts
//!   the file instead of `sendfile(2)`.
//! - The end of the stream is the socket's, as over plain TCP: procwire sends no
//!   `close_notify` alert when a connection is dropped (a killed process could not either),
//!   and reads the end of the socket with or without one. At a message boundary it is
//!   [`Error::Disconnected`](crate::Error::Disconnected), inside a message
//!   [`Error::Truncated`](crate::Error::Truncated): the framing, which TLS protects,
//!   tells a cut message, so a peer in the middle cannot make a message shorter.
//! - A record that does not decrypt (bytes altered in flight) is an
//!   [`Error::Io`](crate::Error::Io) of kind `InvalidData` whose text starts with `tls:`;
//!   the connection can no longer be used.
//!
//! # Examples
//!
//! ```
//! use std::sync::Arc;
//! use procwire::{Client, Connection, Listener};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // A self-signed certificate (rcgen, here; any PEM file in real use).
//! let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])?;
//! let dir = std::env::temp_dir().join(format!("procwire-tls-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! std::fs::write(dir.join("cert.pem"), cert.cert.pem())?;
//! std::fs::write(dir.join("key.pem"), cert.signing_key.serialize_pem())?;
//!
//! let server = procwire::tls::server_config(dir.join("cert.pem"), dir.join("key.pem"))?;
//! let listener = Listener::builder().tls(server).authkey("secret").bind("127.0.0.1:0")?;
//! let addr = listener.local_addr().clone();
//!
//! let client = procwire::tls::client_config(dir.join("cert.pem"))?;
//! let peer = std::thread::spawn(move || -> procwire::Result<u64> {
//!     let conn: Connection<u64, u64> = Client::builder()
//!         .tls(client, "localhost")
//!         .authkey("secret")
//!         .connect(&addr)?;
//!     conn.send(&41)?;
//!     conn.recv()
//! });
//! let conn: Connection<u64, u64> = listener.accept()?;
//! let n = conn.recv()?;
//! conn.send(&(n + 1))?;
//! assert_eq!(peer.join().unwrap()?, 42);
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok(())
//! # }
//! ```

mod config;

pub use self::config::{
    client_config, client_config_mutual, pinned_client_config, server_config, server_config_mutual,
};

/// The rustls crate procwire uses, for building configs of your own with the same
/// version.
pub use rustls;
