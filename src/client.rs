//! [`Client`]: connects to a [`Listener`](crate::Listener)'s [`Address`], running the client
//! side of the authentication handshake when it has a key.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use socket2::{Domain, SockAddr, Socket, TcpKeepalive, Type};

use crate::address::Address;
use crate::auth::{client_handshake, AuthKey};
use crate::channel::Connection;
use crate::error::{Error, Result};
use crate::listener::DEFAULT_HANDSHAKE_TIMEOUT;
#[cfg(feature = "postcard")]
use crate::Postcard;
use crate::DEFAULT_MAX_MESSAGE_SIZE;

/// The default time [`Client::connect`] keeps trying: 5 seconds.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

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
    authkey: Option<AuthKey>,
    connect_timeout: Duration,
    handshake_timeout: Duration,
    nodelay: bool,
    keepalive: Option<TcpKeepalive>,
    max_message_size: u64,
}

impl Default for ClientBuilder {
    fn default() -> Self {
        ClientBuilder {
            authkey: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            nodelay: true,
            keepalive: None,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
        }
    }
}

impl ClientBuilder {
    /// Authenticate with `key` (CPython's mutual HMAC handshake). An empty key is a real
    /// key.
    pub fn authkey(mut self, key: impl Into<AuthKey>) -> Self {
        self.authkey = Some(key.into());
        self
    }

    /// How long to keep trying to connect ([`DEFAULT_CONNECT_TIMEOUT`] unless set). A Unix
    /// socket that does not exist yet or refuses is retried until then, so a client may
    /// start before its listener; a refused TCP connection fails at once.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long the handshake may take ([`DEFAULT_HANDSHAKE_TIMEOUT`] unless set).
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
    /// - [`Error::Io`] when the connection is refused (TCP) or
    ///   could not be made within the connect timeout (kind `TimedOut`, naming the last
    ///   failure).
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
        let deadline = Instant::now() + self.connect_timeout;
        let socket = match &addr {
            Address::Tcp(_) | Address::TcpHost { .. } => self.connect_tcp(&addr, deadline)?,
            Address::Unix(path) => connect_unix(&addr, &SockAddr::unix(path)?, deadline)?,
            Address::Abstract(name) => connect_unix(&addr, &abstract_sockaddr(name)?, deadline)?,
            Address::Fifo(path) => {
                let pair = crate::transport::fifo::connect(path, deadline)?;
                return self.finish(Connection::from_pipes(pair.read, pair.write, codec));
            }
        };
        self.finish(Connection::from_socket(OwnedFd::from(socket), codec))
    }

    /// Applies the connection options and, with a key, authenticates.
    fn finish<S, R, C>(&self, conn: Connection<S, R, C>) -> Result<Connection<S, R, C>> {
        conn.set_max_message_size(self.max_message_size);
        if let Some(key) = &self.authkey {
            client_handshake(&conn, key, self.handshake_timeout)?;
        }
        Ok(conn)
    }

    fn connect_tcp(&self, addr: &Address, deadline: Instant) -> Result<Socket> {
        let mut last = None;
        for sa in resolve(addr)? {
            let socket = Socket::new(Domain::for_address(sa), Type::STREAM, None)?;
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                break;
            }
            match socket.connect_timeout(&sa.into(), remaining) {
                Ok(()) => {
                    socket.set_tcp_nodelay(self.nodelay)?;
                    if let Some(ka) = &self.keepalive {
                        socket.set_keepalive(true)?;
                        socket.set_tcp_keepalive(ka)?;
                    }
                    return Ok(socket);
                }
                Err(e) => last = Some(e),
            }
        }
        let out_of_time = !matches!(&last, Some(e) if e.kind() != io::ErrorKind::TimedOut);
        Err(connect_failed(addr, last, out_of_time))
    }
}

fn connect_unix(addr: &Address, sa: &SockAddr, deadline: Instant) -> Result<Socket> {
    let mut pause = Duration::from_millis(1);
    loop {
        let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
        // A Unix connect completes at once or fails at once: with `EAGAIN` when the
        // listener's backlog is full (which `connect_timeout` would misreport as a hang-up
        // of the unconnected socket), so it is retried here like a refusal.
        socket.set_nonblocking(true)?;
        let err = match socket.connect(sa) {
            Ok(()) => {
                socket.set_nonblocking(false)?;
                return Ok(socket);
            }
            Err(e) => e,
        };
        let retry = matches!(
            err.kind(),
            io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused | io::ErrorKind::WouldBlock
        );
        if !retry {
            return Err(connect_failed(addr, Some(err), false));
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(connect_failed(addr, Some(err), true));
        }
        std::thread::sleep(pause.min(remaining));
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// The error for a connection that could not be made: `err`'s kind, or `TimedOut` when the
/// connect timeout ran out, with the address and the underlying failure in the message.
fn connect_failed(addr: &Address, err: Option<io::Error>, out_of_time: bool) -> Error {
    let kind = match &err {
        Some(e) if !out_of_time => e.kind(),
        _ => io::ErrorKind::TimedOut,
    };
    let msg = match err {
        Some(e) if out_of_time => format!("cannot connect to {addr} in time: {e}"),
        Some(e) => format!("cannot connect to {addr}: {e}"),
        None => format!("cannot connect to {addr} in time"),
    };
    Error::Io(io::Error::new(kind, msg))
}

/// The socket addresses of a TCP address.
pub(crate) fn resolve(addr: &Address) -> Result<Vec<SocketAddr>> {
    match addr {
        Address::Tcp(sa) => Ok(vec![*sa]),
        Address::TcpHost { host, port } => Ok((host.as_str(), *port).to_socket_addrs()?.collect()),
        other => Err(Error::Io(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{other} is not a TCP address"),
        ))),
    }
}

/// The socket address of a Linux abstract name.
pub(crate) fn abstract_sockaddr(name: &[u8]) -> Result<SockAddr> {
    if !cfg!(any(target_os = "linux", target_os = "android")) {
        return Err(Error::Io(io::Error::new(
            io::ErrorKind::Unsupported,
            "abstract socket addresses exist on Linux only",
        )));
    }
    use std::os::unix::ffi::OsStrExt;
    let mut raw = Vec::with_capacity(name.len() + 1);
    raw.push(0);
    raw.extend_from_slice(name);
    Ok(SockAddr::unix(std::ffi::OsStr::from_bytes(&raw))?)
}
