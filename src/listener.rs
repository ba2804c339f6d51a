//! [`Listener`]: accepts connections on any bound [`Address`] (the transports do the
//! binding and accepting), running the server side of the authentication handshake when
//! it has a key, and hands out typed connections.

use std::fmt;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::Mutex;
use std::time::Duration;

use crate::address::Address;
use crate::auth::{server_handshake, DEFAULT_HANDSHAKE_TIMEOUT};
use crate::channel::Connection;
use crate::error::{Error, Result};
use crate::frame::DEFAULT_MAX_MESSAGE_SIZE;
use crate::transport::{BindOptions, Bound};
use crate::wait::{WaitSource, Waitable};
use crate::AuthKey;
#[cfg(feature = "postcard")]
use crate::Postcard;

/// Options for a [`Listener`]; made by [`Listener::builder`].
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `bind` is called"]
pub struct ListenerBuilder {
    authkey: Option<AuthKey>,
    backlog: u32,
    handshake_timeout: Duration,
    max_message_size: u64,
    unix_mode: u32,
}

impl Default for ListenerBuilder {
    fn default() -> Self {
        ListenerBuilder {
            authkey: None,
            backlog: ListenerBuilder::DEFAULT_BACKLOG,
            handshake_timeout: ListenerBuilder::DEFAULT_HANDSHAKE_TIMEOUT,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            unix_mode: 0o600,
        }
    }
}

impl ListenerBuilder {
    /// The default `listen(2)` backlog: 128 pending connections (CPython uses 1, which
    /// refuses bursts of clients; the value does not show on the wire).
    pub const DEFAULT_BACKLOG: u32 = 128;

    /// The default time a client's handshake may take: 5 seconds.
    pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = DEFAULT_HANDSHAKE_TIMEOUT;

    /// Require every client to prove it knows `key` (and prove to it that we do), with
    /// CPython's mutual HMAC handshake. An empty key is a real key.
    pub fn authkey(mut self, key: impl Into<AuthKey>) -> Self {
        self.authkey = Some(key.into());
        self
    }

    /// The `listen(2)` backlog ([`DEFAULT_BACKLOG`](ListenerBuilder::DEFAULT_BACKLOG) unless set).
    pub fn backlog(mut self, backlog: u32) -> Self {
        self.backlog = backlog;
        self
    }

    /// How long a client's handshake may take before `accept` gives up on it
    /// ([`DEFAULT_HANDSHAKE_TIMEOUT`](ListenerBuilder::DEFAULT_HANDSHAKE_TIMEOUT)
    /// unless set).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// The maximum message size of accepted connections
    /// ([`DEFAULT_MAX_MESSAGE_SIZE`] unless set).
    pub fn max_message_size(mut self, max: u64) -> Self {
        self.max_message_size = max;
        self
    }

    /// Permission bits of a Unix socket file (0o600, owner only, unless set). Connecting
    /// needs write permission, so 0o660 lets the group in.
    pub fn unix_mode(mut self, mode: u32) -> Self {
        self.unix_mode = mode & 0o777;
        self
    }

    /// Binds and starts listening on `addr`.
    ///
    /// For a Unix path: a socket file nobody listens on (left by a crashed process) is
    /// replaced; a live one gives an error of kind `AddrInUse`; a path that exists and is
    /// not a socket is never touched (kind `AlreadyExists`). The file is created with
    /// [`unix_mode`](ListenerBuilder::unix_mode) permissions without a window in which
    /// others could connect, and is removed again when the listener is closed, if it is
    /// still the file this listener made.
    ///
    /// # Errors
    ///
    /// - [`Error::InvalidAddress`] when `addr` does not parse.
    /// - [`Error::Io`] with the cases above, or any `bind`/`listen` failure (kind
    ///   `AddrInUse` for a TCP port in use).
    /// - [`Error::Io`] of kind `Unsupported` for abstract addresses off Linux.
    ///
    /// # Examples
    ///
    /// ```
    /// use procwire::{Address, Listener};
    ///
    /// let listener = Listener::builder().authkey("secret").bind("127.0.0.1:0")?;
    /// let Address::Tcp(addr) = listener.local_addr() else { unreachable!() };
    /// assert_ne!(addr.port(), 0);
    /// # Ok::<(), procwire::Error>(())
    /// ```
    pub fn bind<A>(self, addr: A) -> Result<Listener>
    where
        A: TryInto<Address>,
        Error: From<A::Error>,
    {
        let addr = addr.try_into()?;
        let opts = BindOptions {
            backlog: self.backlog,
            mode: self.unix_mode,
        };
        let bound = Bound::bind(&addr, opts)?;
        Ok(Listener {
            local: bound.local_addr(&addr)?,
            bound,
            last_accepted: Mutex::new(None),
            config: self,
        })
    }
}

/// Accepts connections on an [`Address`]; typed connections come out of
/// [`accept`](Listener::accept).
///
/// # Blocking
///
/// [`accept`](Listener::accept) blocks until a client connects and, when the listener has
/// a key, until its handshake finished or the handshake timeout passed.
///
/// # Examples
///
/// ```
/// use procwire::{Client, Connection, Listener};
///
/// let listener = Listener::builder().authkey("secret").bind("127.0.0.1:0")?;
/// let addr = listener.local_addr().clone();
/// let client = std::thread::spawn(move || -> procwire::Result<u32> {
///     let conn: Connection<String, u32> = Client::builder().authkey("secret").connect(&addr)?;
///     conn.send(&"hello".to_string())?;
///     conn.recv()
/// });
/// let conn: Connection<u32, String> = listener.accept()?;
/// let text = conn.recv()?;
/// conn.send(&(text.len() as u32))?;
/// assert_eq!(client.join().unwrap()?, 5);
/// # Ok::<(), procwire::Error>(())
/// ```
pub struct Listener {
    bound: Bound,
    local: Address,
    last_accepted: Mutex<Option<Address>>,
    config: ListenerBuilder,
}

impl Listener {
    /// Options: authkey, backlog, handshake timeout, maximum message size, socket mode.
    pub fn builder() -> ListenerBuilder {
        ListenerBuilder::default()
    }

    /// Binds `addr` with the default options and no authentication; see
    /// [`ListenerBuilder::bind`].
    ///
    /// # Errors
    ///
    /// As [`ListenerBuilder::bind`].
    pub fn bind<A>(addr: A) -> Result<Listener>
    where
        A: TryInto<Address>,
        Error: From<A::Error>,
    {
        Listener::builder().bind(addr)
    }

    /// The address this listener serves; for TCP with the real port after binding `:0`.
    pub fn local_addr(&self) -> &Address {
        &self.local
    }

    /// The peer address of the last accepted connection, when the OS gives one (a TCP
    /// peer, or a Unix client that bound a path; unnamed Unix clients give `None`).
    pub fn last_accepted(&self) -> Option<Address> {
        self.last_accepted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Accepts the next client, with the default codec; see
    /// [`accept_with`](Listener::accept_with).
    ///
    /// # Errors
    ///
    /// As [`accept_with`](Listener::accept_with).
    #[cfg(feature = "postcard")]
    pub fn accept<S, R>(&self) -> Result<Connection<S, R>> {
        self.accept_with(Postcard)
    }

    /// Accepts the next client and, when the listener has a key, authenticates it; the
    /// connection sends `S` and receives `R` through `codec`.
    ///
    /// TCP connections get `TCP_NODELAY`. Every accepted descriptor is close-on-exec.
    ///
    /// # Errors
    ///
    /// - [`Error::AuthenticationFailed`] or [`Error::Timeout`] when that client's handshake
    ///   failed or took too long; its socket is closed, and the listener keeps serving:
    ///   call `accept` again for the next client.
    /// - [`Error::Io`] when `accept(2)` fails.
    pub fn accept_with<S, R, C: Clone>(&self, codec: C) -> Result<Connection<S, R, C>> {
        let (stream, peer) = self.bound.accept()?;
        *self
            .last_accepted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = peer;
        let conn = Connection::from_stream(stream, codec);
        conn.set_max_message_size(self.config.max_message_size);
        if let Some(key) = &self.config.authkey {
            server_handshake(&conn, key, self.config.handshake_timeout)?;
        }
        Ok(conn)
    }

    /// An endless iterator of [`accept`](Listener::accept) results.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use procwire::{Connection, Listener};
    ///
    /// let listener = Listener::bind("127.0.0.1:5000")?;
    /// for conn in listener.incoming::<String, String>() {
    ///     let conn: Connection<String, String> = conn?;
    ///     conn.send(&"hi".to_string())?;
    /// }
    /// # Ok::<(), procwire::Error>(())
    /// ```
    #[cfg(feature = "postcard")]
    pub fn incoming<S, R>(&self) -> impl Iterator<Item = Result<Connection<S, R>>> + '_ {
        std::iter::repeat_with(move || self.accept())
    }

    /// Stops listening: closes the socket and removes the Unix socket file this listener
    /// made (if it is still the same file). Dropping does the same, ignoring errors.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when removing the socket file or closing the socket fails.
    pub fn close(self) -> Result<()> {
        self.bound.close()
    }
}

impl fmt::Debug for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listener")
            .field("local_addr", &self.local)
            .field("authenticated", &self.config.authkey.is_some())
            .finish_non_exhaustive()
    }
}

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.bound.as_fd()
    }
}

/// Ready when a client is waiting, so `accept(2)` will not block.
impl Waitable for Listener {
    fn wait_source(&self) -> WaitSource<'_> {
        WaitSource::borrowed(self.as_fd())
    }
}

impl AsRawFd for Listener {
    fn as_raw_fd(&self) -> RawFd {
        self.as_fd().as_raw_fd()
    }
}
