//! [`Listener`]: accepts connections on any bound [`Address`] (the transports do the
//! binding and accepting), runs the server side of the authentication handshake of every
//! client at once when it has a key (`engine.rs`, `pending.rs`), and hands out typed
//! connections.

mod engine;
mod pending;

use std::fmt;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use self::engine::{Engine, OnRejected, Rules, Step};
use crate::address::Address;
use crate::auth::DEFAULT_HANDSHAKE_TIMEOUT;
use crate::channel::Connection;
use crate::error::{Error, Result};
use crate::frame::DEFAULT_MAX_MESSAGE_SIZE;
use crate::transport::{BindOptions, Bound, Stream};

use crate::wait::{Probe, WaitSource, Waitable};
use crate::AuthKey;
#[cfg(feature = "postcard")]
use crate::Postcard;
use polling::{Events, Poller};

/// Events one wait of a blocking `accept` takes from the poller at most.
const EVENTS: std::num::NonZeroUsize = match std::num::NonZeroUsize::new(64) {
    Some(n) => n,
    None => std::num::NonZeroUsize::MIN,
};

/// Options for a [`Listener`]; made by [`Listener::builder`].
#[derive(Clone)]
#[must_use = "a builder does nothing until `bind` is called"]
pub struct ListenerBuilder {
    authkey: Option<AuthKey>,
    backlog: u32,
    handshake_timeout: Duration,
    max_pending_handshakes: usize,
    max_message_size: u64,
    unix_mode: u32,
    uids: Vec<u32>,
    gids: Vec<u32>,
    on_rejected: Option<OnRejected>,
    #[cfg(feature = "tls")]
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl Default for ListenerBuilder {
    fn default() -> Self {
        ListenerBuilder {
            authkey: None,
            backlog: ListenerBuilder::DEFAULT_BACKLOG,
            handshake_timeout: ListenerBuilder::DEFAULT_HANDSHAKE_TIMEOUT,
            max_pending_handshakes: ListenerBuilder::DEFAULT_MAX_PENDING_HANDSHAKES,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            unix_mode: 0o600,
            uids: Vec::new(),
            gids: Vec::new(),
            on_rejected: None,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

impl fmt::Debug for ListenerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("ListenerBuilder");
        d.field("authkey", &self.authkey)
            .field("backlog", &self.backlog)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("max_pending_handshakes", &self.max_pending_handshakes)
            .field("max_message_size", &self.max_message_size)
            .field("unix_mode", &format_args!("{:#o}", self.unix_mode))
            .field("allow_uids", &self.uids)
            .field("allow_gids", &self.gids)
            .field("on_rejected", &self.on_rejected.is_some());
        #[cfg(feature = "tls")]
        d.field("tls", &self.tls.is_some());
        d.finish()
    }
}

impl ListenerBuilder {
    /// The default `listen(2)` backlog: 128 pending connections (CPython uses 1, which
    /// refuses bursts of clients; the value does not show on the wire).
    pub const DEFAULT_BACKLOG: u32 = 128;

    /// The default time a client's handshake may take: 5 seconds.
    pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = DEFAULT_HANDSHAKE_TIMEOUT;

    /// The default number of handshakes in progress at once: 256. Each holds one
    /// descriptor (two for a FIFO client) and about 300 bytes.
    pub const DEFAULT_MAX_PENDING_HANDSHAKES: usize = 256;

    /// How many clients may be in the middle of their handshake at once
    /// ([`DEFAULT_MAX_PENDING_HANDSHAKES`](ListenerBuilder::DEFAULT_MAX_PENDING_HANDSHAKES)
    /// unless set; at least 1).
    ///
    /// When it is full and another client connects, the handshake that has waited longest
    /// is ended (its socket closed, and [`on_rejected`](ListenerBuilder::on_rejected)
    /// told), so that clients who cannot finish never lock out those who can: a client
    /// that completes its handshake promptly gets in however many silent ones are
    /// connected, as long as fewer than this many connect while it is in progress. Only
    /// listeners with a key have handshakes.
    pub fn max_pending_handshakes(mut self, max: usize) -> Self {
        self.max_pending_handshakes = max.max(1);
        self
    }

    /// Admit only clients running as one of these user ids (as the kernel saw them
    /// connect, see [`PeerCredentials`](crate::auth::PeerCredentials)); may be combined
    /// with [`allow_gids`](ListenerBuilder::allow_gids): a client in either list is
    /// admitted. Others are closed as soon as they are accepted, before any handshake, and
    /// reported to [`on_rejected`](ListenerBuilder::on_rejected). Only for Unix-domain
    /// sockets (paths and abstract names) on Linux and Android; `bind` refuses it
    /// elsewhere.
    pub fn allow_uids(mut self, uids: impl IntoIterator<Item = u32>) -> Self {
        self.uids.extend(uids);
        self
    }

    /// Admit only clients whose effective group id is one of these; see
    /// [`allow_uids`](ListenerBuilder::allow_uids).
    pub fn allow_gids(mut self, gids: impl IntoIterator<Item = u32>) -> Self {
        self.gids.extend(gids);
        self
    }

    /// Calls `f` with every client the listener turns away, and why: a failed or
    /// timed-out handshake, a handshake pushed out by
    /// [`max_pending_handshakes`](ListenerBuilder::max_pending_handshakes), a user or
    /// group not allowed, a connection that failed before it was accepted. The address is
    /// the client's when the system gives one. `accept` itself only returns authenticated
    /// clients, so this is where a server logs the others.
    ///
    /// `f` runs on the thread that is accepting, inside `accept` or `try_accept`: keep it
    /// short.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use procwire::{Client, Connection, Error, Listener};
    ///
    /// let turned_away = Arc::new(Mutex::new(Vec::new()));
    /// let log = Arc::clone(&turned_away);
    /// let listener = Listener::builder()
    ///     .authkey("secret")
    ///     .on_rejected(move |_peer, e| log.lock().unwrap().push(e.to_string()))
    ///     .bind("127.0.0.1:0")?;
    /// let addr = listener.local_addr().clone();
    /// let clients = std::thread::spawn(move || {
    ///     let wrong = Client::builder().authkey("guess").connect::<(), (), _>(&addr);
    ///     assert!(matches!(wrong, Err(Error::AuthenticationFailed(_))));
    ///     let good: Connection<(), ()> = Client::builder().authkey("secret").connect(&addr)?;
    ///     good.recv()
    /// });
    /// let conn: Connection<(), ()> = listener.accept()?; // the good client
    /// conn.send(&())?;
    /// clients.join().unwrap()?;
    /// assert_eq!(turned_away.lock().unwrap().len(), 1);
    /// # Ok::<(), procwire::Error>(())
    /// ```
    pub fn on_rejected(
        mut self,
        f: impl Fn(Option<&Address>, &Error) + Send + Sync + 'static,
    ) -> Self {
        self.on_rejected = Some(Arc::new(f));
        self
    }

    /// Require every client to prove it knows `key` (and prove to it that we do), with
    /// CPython's mutual HMAC handshake. An empty key is a real key.
    pub fn authkey(mut self, key: impl Into<AuthKey>) -> Self {
        self.authkey = Some(key.into());
        self
    }

    /// Serves TLS with `config`: every client's TLS handshake runs first (concurrently with
    /// the others', within [`handshake_timeout`](ListenerBuilder::handshake_timeout)), then
    /// the HMAC handshake inside it when a key is set, and every message is encrypted.
    /// TCP addresses only. See [`procwire::tls`](crate::tls) for the configs and what each
    /// proves.
    ///
    /// The listener uses a copy of `config` that sends no TLS 1.3 session tickets
    /// (`send_tls13_tickets = 0`): a client that only sends never reads them, and a socket
    /// closed with bytes unread is reset by the kernel, which can destroy the client's
    /// last messages before the server has read them. Clients therefore do a full
    /// handshake on every connection.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let config = procwire::tls::server_config("cert.pem", "key.pem")?;
    /// let listener = procwire::Listener::builder()
    ///     .tls(config)
    ///     .authkey("secret")
    ///     .bind("0.0.0.0:7000")?;
    /// # Ok::<(), procwire::Error>(())
    /// ```
    #[cfg(feature = "tls")]
    pub fn tls(mut self, config: Arc<rustls::ServerConfig>) -> Self {
        let mut config = Arc::unwrap_or_clone(config);
        config.send_tls13_tickets = 0;
        self.tls = Some(Arc::new(config));
        self
    }

    /// The `listen(2)` backlog ([`DEFAULT_BACKLOG`](ListenerBuilder::DEFAULT_BACKLOG) unless set).
    pub fn backlog(mut self, backlog: u32) -> Self {
        self.backlog = backlog;
        self
    }

    /// How long a client's handshake may take before the listener gives up on it
    /// ([`DEFAULT_HANDSHAKE_TIMEOUT`](ListenerBuilder::DEFAULT_HANDSHAKE_TIMEOUT)
    /// unless set). Handshakes run concurrently, so this bounds what one client costs,
    /// not how long others wait.
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
    ///   `AddrInUse` for a TCP port in use); the text names the address and the cause
    ///   ("cannot bind 127.0.0.1:80: Permission denied (os error 13)").
    /// - [`Error::Io`] of kind `Unsupported` for abstract addresses off Linux, and for
    ///   [`allow_uids`](ListenerBuilder::allow_uids) or
    ///   [`allow_gids`](ListenerBuilder::allow_gids) on TCP or FIFO addresses.
    /// - [`Error::Io`] when the poller or timer behind `accept` cannot be made.
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
        if (!self.uids.is_empty() || !self.gids.is_empty())
            && !matches!(addr, Address::Unix(_) | Address::Abstract(_))
        {
            return Err(Error::Io(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                format!(
                    "cannot bind {addr} with allowed users or groups: peer credentials \
                     exist only for Unix-domain sockets"
                ),
            )));
        }
        #[cfg(feature = "tls")]
        if self.tls.is_some() && !matches!(addr, Address::Tcp(_) | Address::TcpHost { .. }) {
            return Err(Error::Io(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                format!("cannot bind {addr} with tls: tls is for tcp addresses only"),
            )));
        }
        let bound =
            Bound::bind(&addr, opts).map_err(|e| e.context(|| format!("cannot bind {addr}")))?;
        let rules = Rules {
            key: self.authkey.clone(),
            handshake_timeout: self.handshake_timeout,
            max_pending: self.max_pending_handshakes,
            uids: self.uids.clone(),
            gids: self.gids.clone(),
            on_rejected: self.on_rejected.clone(),
            #[cfg(feature = "tls")]
            tls: self.tls.clone(),
        };
        let poller = Arc::new(Poller::new()?);
        Ok(Listener {
            engine: Box::new(Mutex::new(Engine::new(&bound, Arc::clone(&poller), rules)?)),
            poller,
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
/// # Serving many clients, some of them hostile
///
/// With a key, every client's handshake runs at the same time as every other's, on
/// non-blocking sockets inside the listener: [`accept`](Listener::accept) returns the next
/// client that has *finished* its handshake, so a silent or slow client never delays
/// another. What bounds a hostile client:
///
/// | what | bound |
/// | --- | --- |
/// | one handshake's time | [`handshake_timeout`](ListenerBuilder::handshake_timeout), 5 s by default |
/// | handshakes in progress | [`max_pending_handshakes`](ListenerBuilder::max_pending_handshakes), 256 by default; a new client pushes out the one that waited longest |
/// | memory per handshake | one 268-byte frame buffer: larger handshake messages end the handshake |
/// | descriptors before authentication | none: the handshake reads without a control buffer, so the kernel closes every `SCM_RIGHTS` descriptor a client attaches |
/// | authenticated clients not yet taken by `accept` | 64; the rest wait in the kernel's backlog |
/// | `accept(2)` out of descriptors (`EMFILE`, `ENFILE`) | `accept` reports it once ([`Error::is_resource_exhausted`]) and then pauses accepting, 10 ms doubling to 1 s, instead of spinning; serving resumes by itself |
///
/// Clients turned away do not come out of `accept`; they go to
/// [`on_rejected`](ListenerBuilder::on_rejected).
///
/// The listener is also a [`Waitable`]: in a [`WaitSet`](crate::WaitSet) it is ready when
/// [`try_accept`](Listener::try_accept) has something to do, so one thread can serve
/// authenticated clients and accept new ones without ever blocking on a handshake.
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
    /// `engine` and `poller` are declared (and so dropped) before `bound`: the poller
    /// watches `bound`'s descriptor.
    engine: Box<Mutex<Engine>>,
    /// The engine's poller, shared so that its descriptor can be the wait source.
    poller: Arc<Poller>,
    bound: Bound,
    local: Address,
    last_accepted: Mutex<Option<Address>>,
    config: ListenerBuilder,
}

impl Listener {
    /// Options: authkey, backlog, handshake timeout and concurrency, allowed users and
    /// groups, maximum message size, socket mode, and who hears of rejected clients.
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

    /// Accepts the next client and, when the listener has a key, the next one to finish
    /// its handshake; the connection sends `S` and receives `R` through `codec`.
    ///
    /// Clients whose handshake fails, times out or is pushed out, and clients of a user or
    /// group not allowed, are closed and reported to
    /// [`on_rejected`](ListenerBuilder::on_rejected); `accept` waits on for the next good
    /// one (see [Serving many clients](Listener#serving-many-clients-some-of-them-hostile)).
    /// TCP connections get `TCP_NODELAY`. Every accepted descriptor is close-on-exec.
    ///
    /// # Blocking
    ///
    /// Until a client is ready, however long that takes. Several threads may call it at
    /// once: each client goes to one of them.
    ///
    /// # Errors
    ///
    /// - [`Error::Io`] when `accept(2)` ran out of descriptors or memory
    ///   ([`Error::is_resource_exhausted`] says so): reported once, then the listener
    ///   pauses accepting (10 ms, doubling to 1 s while it lasts) and the next call waits
    ///   out the pause, serving the handshakes in progress meanwhile. Keep calling
    ///   `accept`: serving resumes by itself once descriptors are free.
    /// - [`Error::Io`] when `accept(2)` or the poller fails otherwise (the listener pauses
    ///   in the same way).
    pub fn accept_with<S, R, C: Clone>(&self, codec: C) -> Result<Connection<S, R, C>> {
        let next = self.next(None)?;
        let Some((stream, peer)) = next else {
            unreachable!("a wait without deadline ends with a client or an error");
        };
        Ok(self.connection(stream, peer, codec))
    }

    /// The next authenticated stream, waiting until `deadline`: on the poller, without
    /// holding the engine, so that other threads (`try_accept`, a wait set's probe,
    /// `pending_handshakes`) are never held up by a waiting `accept`.
    fn next(&self, deadline: Option<Instant>) -> Result<Option<(Stream, Option<Address>)>> {
        let mut events = Events::with_capacity(EVENTS);
        loop {
            let timeout = match self.engine().step(&self.bound, deadline)? {
                Step::Ready(stream, peer) => return Ok(Some((stream, peer))),
                Step::TimedOut => return Ok(None),
                Step::Wait(timeout) => timeout,
            };
            events.clear();
            match self.poller.wait(&mut events, timeout) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
            self.engine().process(&events, &self.bound);
        }
    }

    /// [`accept`](Listener::accept), waiting at most `timeout` for a client.
    ///
    /// # Errors
    ///
    /// - [`Error::Timeout`] when no client was ready in time; handshakes in progress go on.
    /// - As [`accept_with`](Listener::accept_with).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use procwire::{Error, Listener};
    ///
    /// let listener = Listener::builder().authkey("secret").bind("127.0.0.1:0")?;
    /// let nobody = listener.accept_timeout::<(), ()>(Duration::from_millis(10));
    /// assert!(matches!(nobody, Err(Error::Timeout)));
    /// # Ok::<(), procwire::Error>(())
    /// ```
    #[cfg(feature = "postcard")]
    pub fn accept_timeout<S, R>(&self, timeout: Duration) -> Result<Connection<S, R>> {
        self.accept_timeout_with(timeout, Postcard)
    }

    /// [`accept_with`](Listener::accept_with), waiting at most `timeout` for a client.
    ///
    /// # Errors
    ///
    /// As [`accept_timeout`](Listener::accept_timeout).
    pub fn accept_timeout_with<S, R, C: Clone>(
        &self,
        timeout: Duration,
        codec: C,
    ) -> Result<Connection<S, R, C>> {
        let deadline = Instant::now().checked_add(timeout);
        let next = self.next(deadline)?;
        let (stream, peer) = next.ok_or(Error::Timeout)?;
        Ok(self.connection(stream, peer, codec))
    }

    /// [`try_accept_with`](Listener::try_accept_with) with the default codec.
    ///
    /// # Errors
    ///
    /// As [`try_accept_with`](Listener::try_accept_with).
    #[cfg(feature = "postcard")]
    pub fn try_accept<S, R>(&self) -> Result<Option<Connection<S, R>>> {
        self.try_accept_with(Postcard)
    }

    /// Does all the accepting and handshaking that can be done without waiting, and
    /// returns the next client ready (authenticated, with a key), or `None`.
    ///
    /// This is the call for a listener in a [`WaitSet`](crate::WaitSet): when the set
    /// reports the listener, call it until it returns `None`.
    ///
    /// # Errors
    ///
    /// As [`accept_with`](Listener::accept_with).
    ///
    /// # Examples
    ///
    /// ```
    /// use procwire::{Client, Connection, Listener};
    ///
    /// let listener = Listener::builder().authkey("secret").bind("127.0.0.1:0")?;
    /// assert!(listener.try_accept::<(), ()>()?.is_none()); // nobody yet
    ///
    /// let addr = listener.local_addr().clone();
    /// let client = std::thread::spawn(move || {
    ///     Client::builder().authkey("secret").connect::<(), (), _>(&addr)
    /// });
    /// let conn: Connection<(), ()> = loop {
    ///     procwire::wait(&[&listener], None)?;
    ///     if let Some(conn) = listener.try_accept()? {
    ///         break conn;
    ///     }
    /// };
    /// client.join().unwrap()?;
    /// # drop(conn);
    /// # Ok::<(), procwire::Error>(())
    /// ```
    pub fn try_accept_with<S, R, C: Clone>(&self, codec: C) -> Result<Option<Connection<S, R, C>>> {
        let next = self.engine().try_next(&self.bound)?;
        Ok(next.map(|(stream, peer)| self.connection(stream, peer, codec)))
    }

    /// [`try_accept`](Listener::try_accept)'s stream, before it becomes a connection (for
    /// the async drivers), with the maximum message size it gets.
    #[cfg_attr(not(any(feature = "tokio", feature = "async-io")), allow(dead_code))]
    pub(crate) fn try_accept_stream(&self) -> Result<Option<(Stream, u64)>> {
        let Some((stream, peer)) = self.engine().try_next(&self.bound)? else {
            return Ok(None);
        };
        *self
            .last_accepted
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = peer;
        Ok(Some((stream, self.config.max_message_size)))
    }

    /// The poller's descriptor: readable when the listener has something to do.
    #[cfg_attr(not(any(feature = "tokio", feature = "async-io")), allow(dead_code))]
    pub(crate) fn poller_fd(&self) -> BorrowedFd<'_> {
        self.poller.as_fd()
    }

    /// How many clients are in the middle of their handshake now.
    pub fn pending_handshakes(&self) -> usize {
        self.engine().pending()
    }

    fn engine(&self) -> MutexGuard<'_, Engine> {
        self.engine.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn connection<S, R, C: Clone>(
        &self,
        stream: Stream,
        peer: Option<Address>,
        codec: C,
    ) -> Connection<S, R, C> {
        *self
            .last_accepted
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = peer;
        let conn = Connection::from_stream(stream, codec);
        conn.set_max_message_size(self.config.max_message_size);
        conn
    }

    /// An endless iterator of [`accept`](Listener::accept) results.
    ///
    /// An `Err` item is the listener's own trouble (descriptors exhausted), after which it
    /// pauses and carries on, so a server logs it and keeps iterating; clients that fail
    /// their handshake never appear (see [`on_rejected`](ListenerBuilder::on_rejected)).
    /// What one client does with its connection is that client's business: serve it so
    /// that its errors end only its own connection.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use procwire::{Connection, Listener};
    ///
    /// let listener = Listener::builder().authkey("secret").bind("127.0.0.1:5000")?;
    /// for conn in listener.incoming::<String, String>() {
    ///     let conn: Connection<String, String> = match conn {
    ///         Ok(conn) => conn,
    ///         Err(e) => {
    ///             eprintln!("{e}"); // out of descriptors: the listener pauses by itself
    ///             continue;
    ///         }
    ///     };
    ///     std::thread::spawn(move || {
    ///         // One client's bad message or early exit ends only this thread.
    ///         for request in conn.iter() {
    ///             let Ok(request) = request else { break };
    ///             if conn.send(&request.to_uppercase()).is_err() {
    ///                 break;
    ///             }
    ///         }
    ///     });
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
        let Listener {
            engine,
            poller,
            bound,
            ..
        } = self;
        drop((engine, poller)); // the poller watches `bound`'s descriptor
        bound.close()
    }
}

impl fmt::Debug for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listener")
            .field("local_addr", &self.local)
            .field("authenticated", &self.config.authkey.is_some())
            .field(
                "pending_handshakes",
                &self.engine.try_lock().map(|e| e.pending()).ok(),
            )
            .finish_non_exhaustive()
    }
}

/// The listening socket (or rendezvous FIFO). To wait for clients, use the listener as a
/// [`Waitable`] instead: this descriptor turns readable when a client connects, not when
/// one has finished its handshake.
impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.bound.as_fd()
    }
}

/// Ready when [`try_accept`](Listener::try_accept) has a client for you, or an error.
///
/// The wait source is the listener's poller, which turns readable when a client connects,
/// a handshake can move on, or a deadline passes; the set then lets the listener do that
/// work without blocking and reports it only if a client is ready. A handshake thus never
/// blocks the thread that waits.
impl Waitable for Listener {
    fn wait_source(&self) -> WaitSource<'_> {
        WaitSource::probed(self.poller.as_fd(), self)
    }
}

impl Probe for Listener {
    fn buffered(&self) -> Option<bool> {
        self.engine.try_lock().ok().map(|e| e.has_ready())
    }

    fn read_now(&self) -> bool {
        match self.engine.try_lock() {
            Ok(mut engine) => engine.poll_now(&self.bound),
            Err(_) => false, // another thread is accepting, and will take what came
        }
    }
}

impl AsRawFd for Listener {
    fn as_raw_fd(&self) -> RawFd {
        self.as_fd().as_raw_fd()
    }
}
