//! [`Client`]: connects to a [`Listener`](crate::Listener)'s [`Address`], running the client
//! side of the authentication handshake when it has a key.

use std::time::{Duration, Instant};

use socket2::TcpKeepalive;

use crate::address::Address;
use crate::auth::{client_handshake, DEFAULT_HANDSHAKE_TIMEOUT};
use crate::channel::Connection;
use crate::error::{Error, Result};
use crate::frame::DEFAULT_MAX_MESSAGE_SIZE;
use crate::trace;
#[cfg(feature = "tls")]
use crate::transport::Kind;
use crate::transport::{self, Absent, Stream, TcpOptions};
use crate::AuthKey;
#[cfg(feature = "postcard")]
use crate::Postcard;
#[cfg(feature = "tls")]
use std::os::fd::AsFd;

/// Connects to listeners; see [`Client::builder`] for the options.
///
/// # Examples
///
/// ```
/// use procwire::{Client, Connection, Listener};
///
/// let listener = Listener::bind("127.0.0.1:0")?;
/// let conn: Connection<u8, u8> = Client::connect(listener.local_addr())?;
/// let peer: Connection<u8, u8> = listener.accept()?;
/// conn.send(&1)?;
/// assert_eq!(peer.recv()?, 1);
/// # Ok::<(), procwire::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Client;

impl Client {
    /// Options: authkey, timeouts, `TCP_NODELAY`, TCP keepalive, maximum message size.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// Connects to `addr` with the default options and no authentication; see
    /// [`ClientBuilder::connect`].
    ///
    /// # Errors
    ///
    /// As [`ClientBuilder::connect_with`].
    #[cfg(feature = "postcard")]
    pub fn connect<S, R, A>(addr: A) -> Result<Connection<S, R>>
    where
        A: TryInto<Address>,
        Error: From<A::Error>,
    {
        Client::builder().connect(addr)
    }
}

/// Options for connecting; made by [`Client::builder`].
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `connect` is called"]
pub struct ClientBuilder {
    pub(crate) authkey: Option<AuthKey>,
    pub(crate) connect_timeout: Duration,
    pub(crate) wait_for_listener: Option<Duration>,
    pub(crate) handshake_timeout: Duration,
    pub(crate) nodelay: bool,
    pub(crate) keepalive: Option<TcpKeepalive>,
    pub(crate) max_message_size: u64,
    /// The TLS config and the name of the server whose certificate it expects.
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<(std::sync::Arc<rustls::ClientConfig>, String)>,
}

impl Default for ClientBuilder {
    fn default() -> Self {
        ClientBuilder {
            authkey: None,
            connect_timeout: ClientBuilder::DEFAULT_CONNECT_TIMEOUT,
            wait_for_listener: None,
            handshake_timeout: ClientBuilder::DEFAULT_HANDSHAKE_TIMEOUT,
            nodelay: true,
            keepalive: None,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

impl ClientBuilder {
    /// The default time [`connect`](ClientBuilder::connect) may take: 5 seconds.
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

    /// The default time the handshake may take: 5 seconds.
    pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = DEFAULT_HANDSHAKE_TIMEOUT;

    /// Authenticate with `key` (CPython's mutual HMAC handshake). An empty key is a real
    /// key.
    pub fn authkey(mut self, key: impl Into<AuthKey>) -> Self {
        self.authkey = Some(key.into());
        self
    }

    /// How long connecting may take ([`DEFAULT_CONNECT_TIMEOUT`](ClientBuilder::DEFAULT_CONNECT_TIMEOUT)
    /// unless set): a TCP handshake that gets no answer, a Unix listener whose backlog is
    /// full. A listener that is not there fails at once whatever this says, unless
    /// [`wait_for_listener`](ClientBuilder::wait_for_listener) is set, whose timeout then
    /// bounds the whole connect instead.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Waits up to `timeout` for a listener that is not there yet, so that a client may
    /// start before its listener: a Unix socket file or FIFO that does not exist, or a
    /// refused connection (TCP or Unix), is tried again, with pauses from 1 ms growing to
    /// 50 ms, until `timeout` has passed. Set, it replaces the
    /// [`connect_timeout`](ClientBuilder::connect_timeout) as the bound of the whole
    /// connect.
    ///
    /// Without it, as with CPython's `Client`, such a connect fails at once with an
    /// [`Error::Io`] that names the address (kind `NotFound` or `ConnectionRefused`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use procwire::{Client, Connection, Listener};
    ///
    /// let dir = std::env::temp_dir().join(format!("procwire-doc-wait-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let path = dir.join("later.sock");
    /// let at = path.to_str().unwrap().to_string();
    /// let err = Client::connect::<(), (), _>(at.as_str()).unwrap_err();
    /// assert!(err.to_string().contains("later.sock"), "{err}");
    ///
    /// let server = std::thread::spawn(move || -> procwire::Result<()> {
    ///     std::thread::sleep(Duration::from_millis(50));
    ///     let listener = Listener::bind(at.as_str())?;
    ///     let _conn: Connection<(), ()> = listener.accept()?;
    ///     Ok(())
    /// });
    /// let _conn: Connection<(), ()> = Client::builder()
    ///     .wait_for_listener(Duration::from_secs(10))
    ///     .connect(path.to_str().unwrap())?;
    /// server.join().unwrap()?;
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn wait_for_listener(mut self, timeout: Duration) -> Self {
        self.wait_for_listener = Some(timeout);
        self
    }

    /// How long the handshake may take ([`DEFAULT_HANDSHAKE_TIMEOUT`](ClientBuilder::DEFAULT_HANDSHAKE_TIMEOUT)
    /// unless set).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Whether TCP connections set `TCP_NODELAY` (on unless set: messages are whole
    /// frames, so Nagle's algorithm only adds latency).
    pub fn nodelay(mut self, nodelay: bool) -> Self {
        self.nodelay = nodelay;
        self
    }

    /// Turns on TCP keepalive: the first probe after `idle` without traffic.
    pub fn keepalive(mut self, idle: Duration) -> Self {
        self.keepalive = Some(
            self.keepalive
                .clone()
                .unwrap_or_else(TcpKeepalive::new)
                .with_time(idle),
        );
        self
    }

    /// With [`keepalive`](ClientBuilder::keepalive): the time between probes.
    pub fn keepalive_interval(mut self, interval: Duration) -> Self {
        self.keepalive = Some(
            self.keepalive
                .clone()
                .unwrap_or_else(TcpKeepalive::new)
                .with_interval(interval),
        );
        self
    }

    /// With [`keepalive`](ClientBuilder::keepalive): how many unanswered probes close the
    /// connection.
    pub fn keepalive_retries(mut self, retries: u32) -> Self {
        self.keepalive = Some(
            self.keepalive
                .clone()
                .unwrap_or_else(TcpKeepalive::new)
                .with_retries(retries),
        );
        self
    }

    /// The connection's maximum message size ([`DEFAULT_MAX_MESSAGE_SIZE`] unless set).
    pub fn max_message_size(mut self, max: u64) -> Self {
        self.max_message_size = max;
        self
    }

    /// Speaks TLS with `config`, expecting the server's certificate to be valid for
    /// `server_name` (a DNS name or an IP address; see
    /// [`pinned_client_config`](crate::tls::pinned_client_config) for a pinned
    /// certificate, where it does not matter). The TLS handshake runs right after the TCP
    /// connection is made, within [`handshake_timeout`](ClientBuilder::handshake_timeout)
    /// together with the HMAC handshake, which then runs inside it when a key is set. TCP
    /// addresses only. See [`procwire::tls`](crate::tls).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use procwire::{Client, Connection};
    ///
    /// let config = procwire::tls::client_config("ca.pem")?;
    /// let conn: Connection<String, String> = Client::builder()
    ///     .tls(config, "db.example.org")
    ///     .connect("db.example.org:7000")?;
    /// # Ok::<(), procwire::Error>(())
    /// ```
    #[cfg(feature = "tls")]
    pub fn tls(
        mut self,
        config: std::sync::Arc<rustls::ClientConfig>,
        server_name: impl Into<String>,
    ) -> Self {
        self.tls = Some((config, server_name.into()));
        self
    }

    /// Connects to `addr` with the default codec; see
    /// [`connect_with`](ClientBuilder::connect_with).
    ///
    /// # Errors
    ///
    /// As [`connect_with`](ClientBuilder::connect_with).
    #[cfg(feature = "postcard")]
    pub fn connect<S, R, A>(&self, addr: A) -> Result<Connection<S, R>>
    where
        A: TryInto<Address>,
        Error: From<A::Error>,
    {
        self.connect_with(addr, Postcard)
    }

    /// Connects to `addr` and, with a key, authenticates; the connection sends `S` and
    /// receives `R` through `codec`.
    ///
    /// # Errors
    ///
    /// - [`Error::InvalidAddress`] when `addr` does not parse.
    /// - [`Error::Io`] naming the address and the cause: kind `NotFound` when a Unix
    ///   socket file or FIFO does not exist, `ConnectionRefused` when nobody listens
    ///   (both at once, unless [`wait_for_listener`](ClientBuilder::wait_for_listener) is
    ///   set), `TimedOut` when the connection could not be made in time (naming the last
    ///   failure), or any other error of `connect(2)`.
    /// - [`Error::AuthenticationFailed`] when the keys differ or the listener does not
    ///   speak the protocol; [`Error::Timeout`] when the handshake does not finish in time
    ///   — for example against a listener that has no key and waits for us to speak
    ///   (CPython's listener then deadlocks, gh-123736).
    pub fn connect_with<S, R, C: Clone, A>(&self, addr: A, codec: C) -> Result<Connection<S, R, C>>
    where
        A: TryInto<Address>,
        Error: From<A::Error>,
    {
        let addr = addr.try_into()?;
        let (absent, wait) = match self.wait_for_listener {
            Some(wait) => (Absent::Wait, wait),
            None => (Absent::Fail, self.connect_timeout),
        };
        let now = Instant::now();
        let deadline = now
            .checked_add(wait)
            .unwrap_or(now + Duration::from_secs(86_400 * 365));
        let tcp = TcpOptions {
            nodelay: self.nodelay,
            keepalive: self.keepalive.clone(),
        };
        let connected = transport::connect(&addr, &tcp, deadline, absent)
            .and_then(|stream| self.secure(&addr, stream))
            .and_then(|stream| self.finish(&addr, Connection::from_stream(stream, codec)));
        trace::connect(&addr, now, connected.as_ref().err());
        connected
    }

    /// Applies the connection options and, with a key, authenticates.
    /// Runs the TLS handshake on `stream` when the builder has a TLS config.
    fn secure(&self, addr: &Address, stream: Stream) -> Result<Stream> {
        #[cfg(feature = "tls")]
        if let Some((config, name)) = &self.tls {
            let Stream::Socket {
                fd,
                kind: Kind::Tcp,
            } = stream
            else {
                return Err(tls_needs_tcp(addr));
            };
            let session = crate::transport::tls::client_blocking(
                fd.as_fd(),
                config,
                name,
                self.handshake_timeout,
            )
            .map_err(|e| tls_failed(addr, e))
            .inspect_err(|e| trace::client_handshake_failed(addr, e))?;
            return Ok(Stream::Tls {
                fd,
                session: std::sync::Arc::new(session),
            });
        }
        let _ = addr;
        Ok(stream)
    }

    fn finish<S, R, C>(
        &self,
        addr: &Address,
        conn: Connection<S, R, C>,
    ) -> Result<Connection<S, R, C>> {
        conn.set_max_message_size(self.max_message_size);
        if let Some(key) = &self.authkey {
            client_handshake(&conn, key, self.handshake_timeout)
                .inspect_err(|e| trace::client_handshake_failed(addr, e))?;
        }
        Ok(conn)
    }
}

/// The error for a TLS client config used with an address that is not TCP.
#[cfg(feature = "tls")]
pub(crate) fn tls_needs_tcp(addr: &Address) -> Error {
    Error::Io(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        format!("cannot connect to {addr} with tls: tls is for tcp addresses only"),
    ))
}

/// A failed TLS handshake with the server at `addr`, naming it.
#[cfg(feature = "tls")]
pub(crate) fn tls_failed(addr: &Address, e: Error) -> Error {
    match e {
        Error::AuthenticationFailed(why) => {
            Error::AuthenticationFailed(format!("with {addr}: {why}"))
        }
        other => other,
    }
}
