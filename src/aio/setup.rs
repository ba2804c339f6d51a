//! Setting up async connections: pairs, child processes, listeners and clients.
//!
//! Nothing here reimplements a transport or the handshake: pairs and children are made
//! by the blocking constructors and converted, the listener is the blocking listener's
//! engine (its poller's descriptor registered with the runtime, so handshakes run
//! concurrently as they do for a blocking server), and the client connects through the
//! transport's non-blocking connect and drives the sans-I/O [`Handshake`].

use std::cell::Cell;
use std::io;
use std::marker::PhantomData;
use std::os::fd::{AsFd, OwnedFd};
use std::process::Command;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use rustix::event::PollFlags;
use socket2::Socket;

use super::channel::{Connection, DefaultRuntime, Receiver, Sender};
use super::runtime::{within, Runtime};
use crate::address::Address;
use crate::auth::{Handshake, MAX_HANDSHAKE_MESSAGE_SIZE};
use crate::error::{Error, Result};
use crate::message::wait_fd;
use crate::process::Child;
use crate::trace;
use crate::transport::{self, tcp, unix, Kind, Stream, TcpOptions};
use crate::AuthKey;
#[cfg(feature = "postcard")]
use crate::Postcard;

/// A pair of connected async connections over a socket pair, sending `A` one way and `B`
/// the other; the async [`duplex_with`](crate::duplex_with).
///
/// # Errors
///
/// [`Error::Io`] when the socket pair cannot be made or registered (for tokio: outside a
/// runtime).
#[allow(clippy::type_complexity)]
pub fn duplex_with<A, B, C: Clone, Rt: Runtime>(
    codec: C,
) -> Result<(Connection<A, B, C, Rt>, Connection<B, A, C, Rt>)> {
    let (a, b) = crate::duplex_with(codec)?;
    Ok((Connection::from_blocking(a)?, Connection::from_blocking(b)?))
}

/// A one-way async pair over a socket pair; the async [`pipe_with`](crate::pipe_with).
///
/// # Errors
///
/// As [`duplex_with`].
#[allow(clippy::type_complexity)]
pub fn pipe_with<T, C: Clone, Rt: Runtime>(
    codec: C,
) -> Result<(Sender<T, C, Rt>, Receiver<T, C, Rt>)> {
    let (tx, rx) = crate::pipe_with(codec)?;
    Ok((Sender::from_blocking(tx)?, Receiver::from_blocking(rx)?))
}

/// Starts `cmd` as a child process with an async duplex connection to it; the async
/// [`spawn_with`](crate::spawn_with). The child calls [`from_parent`](crate::from_parent)
/// as usual (blocking or, converted, async).
///
/// # Errors
///
/// [`Error::Io`] when the socket pair cannot be made or registered, or the program cannot
/// be started.
pub fn spawn_with<S, R, C: Clone, Rt: Runtime>(
    cmd: Command,
    codec: C,
) -> Result<(Child, Connection<S, R, C, Rt>)> {
    let (child, conn) = crate::spawn_with(cmd, codec)?;
    Ok((child, Connection::from_blocking(conn)?))
}

/// An async listener: the blocking [`Listener`](crate::Listener)'s engine, driven by the
/// runtime.
///
/// Handshakes run concurrently on the sans-I/O machine, exactly as for a blocking
/// server: a client that connects and says nothing occupies one of the
/// [`max_pending_handshakes`](crate::ListenerBuilder::max_pending_handshakes) slots until
/// its deadline and never delays another client. Every option of
/// [`ListenerBuilder`](crate::ListenerBuilder) applies: build and bind a blocking listener,
/// then [`from_blocking`](Listener::from_blocking).
///
/// # Examples
///
/// ```
/// # #[cfg(feature = "tokio")]
/// # fn main() -> procwire::Result<()> {
/// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
/// use procwire::tokio::{Client, Listener};
///
/// let blocking = procwire::Listener::builder().authkey("secret").bind("127.0.0.1:0")?;
/// let mut listener = Listener::from_blocking(blocking)?;
/// let addr = listener.local_addr().clone();
/// let client = tokio::spawn(async move {
///     let mut conn = Client::builder().authkey("secret").connect::<String, String, _>(&addr).await?;
///     conn.send(&"hello".to_string()).await?;
///     conn.recv().await
/// });
/// let mut conn = listener.accept::<String, String>().await?;
/// let hello = conn.recv().await?;
/// conn.send(&format!("{hello}, world")).await?;
/// assert_eq!(client.await.unwrap()?, "hello, world");
/// # Ok(()) })
/// # }
/// # #[cfg(not(feature = "tokio"))]
/// # fn main() {}
/// ```
pub struct Listener<Rt: Runtime = DefaultRuntime> {
    inner: crate::Listener,
    reg: Rt::Registration,
}

impl<Rt: Runtime> Listener<Rt> {
    /// Binds `addr` with the default options (no key); see
    /// [`Listener::bind`](crate::Listener::bind).
    ///
    /// # Errors
    ///
    /// As [`Listener::bind`](crate::Listener::bind), and as
    /// [`from_blocking`](Listener::from_blocking).
    pub fn bind<A>(addr: A) -> Result<Self>
    where
        A: TryInto<Address>,
        Error: From<A::Error>,
    {
        Listener::from_blocking(crate::Listener::bind(addr)?)
    }

    /// Drives a bound blocking listener from the runtime.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when its poller cannot be registered (for tokio: outside a runtime).
    pub fn from_blocking(listener: crate::Listener) -> Result<Self> {
        let fd = listener.poller_fd().try_clone_to_owned()?;
        let reg = Rt::register(Arc::new(fd))?;
        Ok(Listener {
            inner: listener,
            reg,
        })
    }

    /// The blocking listener again.
    pub fn into_blocking(self) -> crate::Listener {
        self.inner
    }

    /// The address it listens on; see [`Listener::local_addr`](crate::Listener::local_addr).
    pub fn local_addr(&self) -> &Address {
        self.inner.local_addr()
    }

    /// The address of the client accepted last, when the OS gives one.
    pub fn last_accepted(&self) -> Option<Address> {
        self.inner.last_accepted()
    }

    /// How many clients are in the middle of their handshake now.
    pub fn pending_handshakes(&self) -> usize {
        self.inner.pending_handshakes()
    }

    /// Accepts the next client (authenticated, with a key), with the default codec; see
    /// [`accept_with`](Listener::accept_with).
    ///
    /// # Errors
    ///
    /// As [`accept_with`](Listener::accept_with).
    #[cfg(feature = "postcard")]
    pub async fn accept<S, R>(&mut self) -> Result<Connection<S, R, Postcard, Rt>> {
        self.accept_with(Postcard).await
    }

    /// Accepts the next client and, with a key, the next one to finish its handshake;
    /// the async [`Listener::accept_with`](crate::Listener::accept_with). Clients that
    /// fail go to [`on_rejected`](crate::ListenerBuilder::on_rejected).
    ///
    /// # Errors
    ///
    /// - [`Error::Io`] when `accept(2)` ran out of descriptors or memory
    ///   ([`Error::is_resource_exhausted`]): reported once, then the listener pauses and
    ///   resumes by itself; keep accepting.
    /// - [`Error::Io`] when the poller, the reactor or registering the connection fails.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a client is taken from the listener only when the future returns it.
    pub async fn accept_with<S, R, C: Clone>(
        &mut self,
        codec: C,
    ) -> Result<Connection<S, R, C, Rt>> {
        let (stream, max) = std::future::poll_fn(|cx| self.poll_accept(cx)).await?;
        Connection::from_stream(stream, codec, max)
    }

    fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<Result<(Stream, u64)>> {
        let inner = &self.inner;
        let mut rounds = 0;
        let mut op = || loop {
            if let Some(next) = inner.try_accept_stream()? {
                return Ok(Some(Some(next)));
            }
            // The poller reports at most a batch of events per turn: while it is still
            // readable, turn again, yielding to other tasks now and then.
            if !wait_fd(inner.poller_fd(), PollFlags::IN, Some(Duration::ZERO))? {
                return Ok(None);
            }
            rounds += 1;
            if rounds == 16 {
                return Ok(Some(None));
            }
        };
        // First without waiting for readiness: the engine may hold clients already (taken
        // in by a blocking call before `from_blocking`) while its poller is quiet.
        let step = match op() {
            Ok(None) => std::task::ready!(Rt::poll_io(&self.reg, false, &Cell::new(false), cx, op)),
            other => other.map(|s| s.flatten()),
        };
        match step {
            Ok(Some(next)) => Poll::Ready(Ok(next)),
            Ok(None) => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl<Rt: Runtime> std::fmt::Debug for Listener<Rt> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("address", self.local_addr())
            .finish_non_exhaustive()
    }
}

/// Connects to listeners; the async [`Client`](crate::Client).
pub struct Client<Rt: Runtime = DefaultRuntime>(PhantomData<Rt>);

impl<Rt: Runtime> Client<Rt> {
    /// Options for connecting.
    pub fn builder() -> ClientBuilder<Rt> {
        ClientBuilder {
            options: crate::Client::builder(),
            _rt: PhantomData,
        }
    }

    /// Connects to `addr` without a key, with the default codec and options.
    ///
    /// # Errors
    ///
    /// As [`ClientBuilder::connect_with`].
    #[cfg(feature = "postcard")]
    pub async fn connect<S, R, A>(addr: A) -> Result<Connection<S, R, Postcard, Rt>>
    where
        A: TryInto<Address>,
        Error: From<A::Error>,
    {
        Client::<Rt>::builder().connect(addr).await
    }
}

impl<Rt: Runtime> std::fmt::Debug for Client<Rt> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Client")
    }
}

/// Options for connecting; the async [`ClientBuilder`](crate::ClientBuilder), with the
/// same options and defaults.
#[must_use = "a builder does nothing until `connect` is called"]
pub struct ClientBuilder<Rt: Runtime = DefaultRuntime> {
    options: crate::ClientBuilder,
    _rt: PhantomData<Rt>,
}

impl<Rt: Runtime> Clone for ClientBuilder<Rt> {
    fn clone(&self) -> Self {
        ClientBuilder {
            options: self.options.clone(),
            _rt: PhantomData,
        }
    }
}

impl<Rt: Runtime> std::fmt::Debug for ClientBuilder<Rt> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.options.fmt(f)
    }
}

impl<Rt: Runtime> From<crate::ClientBuilder> for ClientBuilder<Rt> {
    /// The async builder with a blocking builder's options.
    fn from(options: crate::ClientBuilder) -> Self {
        ClientBuilder {
            options,
            _rt: PhantomData,
        }
    }
}

impl<Rt: Runtime> ClientBuilder<Rt> {
    /// See [`ClientBuilder::authkey`](crate::ClientBuilder::authkey).
    pub fn authkey(mut self, key: impl Into<AuthKey>) -> Self {
        self.options = self.options.authkey(key);
        self
    }

    /// See [`ClientBuilder::connect_timeout`](crate::ClientBuilder::connect_timeout).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.options = self.options.connect_timeout(timeout);
        self
    }

    /// See [`ClientBuilder::wait_for_listener`](crate::ClientBuilder::wait_for_listener):
    /// a missing or refusing listener is retried until `timeout`, which then bounds the
    /// whole connect.
    pub fn wait_for_listener(mut self, timeout: Duration) -> Self {
        self.options = self.options.wait_for_listener(timeout);
        self
    }

    /// See [`ClientBuilder::handshake_timeout`](crate::ClientBuilder::handshake_timeout).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.options = self.options.handshake_timeout(timeout);
        self
    }

    /// See [`ClientBuilder::nodelay`](crate::ClientBuilder::nodelay).
    pub fn nodelay(mut self, nodelay: bool) -> Self {
        self.options = self.options.nodelay(nodelay);
        self
    }

    /// See [`ClientBuilder::max_message_size`](crate::ClientBuilder::max_message_size).
    pub fn max_message_size(mut self, max: u64) -> Self {
        self.options = self.options.max_message_size(max);
        self
    }

    /// See [`ClientBuilder::tls`](crate::ClientBuilder::tls): the TLS handshake runs on
    /// the runtime's readiness, within the handshake timeout.
    #[cfg(feature = "tls")]
    pub fn tls(
        mut self,
        config: Arc<rustls::ClientConfig>,
        server_name: impl Into<String>,
    ) -> Self {
        self.options = self.options.tls(config, server_name);
        self
    }

    /// Connects with the default codec; see [`connect_with`](ClientBuilder::connect_with).
    ///
    /// # Errors
    ///
    /// As [`connect_with`](ClientBuilder::connect_with).
    #[cfg(feature = "postcard")]
    pub async fn connect<S, R, A>(&self, addr: A) -> Result<Connection<S, R, Postcard, Rt>>
    where
        A: TryInto<Address>,
        Error: From<A::Error>,
    {
        self.connect_with(addr, Postcard).await
    }

    /// Connects to `addr` and, with a key, authenticates; the async
    /// [`ClientBuilder::connect_with`](crate::ClientBuilder::connect_with).
    ///
    /// The connect is non-blocking: TCP waits for the socket to turn writable, a Unix
    /// socket whose listener's backlog is full is retried until the connect timeout. A
    /// missing socket file or a refusal fails at once, unless
    /// [`wait_for_listener`](ClientBuilder::wait_for_listener) asks to retry. Host names are resolved with the
    /// system resolver, which blocks; give addresses as IP literals in latency-sensitive
    /// code. FIFO addresses are not supported by the async client.
    ///
    /// # Errors
    ///
    /// - [`Error::InvalidAddress`] when `addr` does not parse.
    /// - [`Error::Io`] when the connection is refused, the path does not exist, the address
    ///   is a FIFO (kind `Unsupported`), or no connection was made within the connect
    ///   timeout (kind `TimedOut`).
    /// - [`Error::AuthenticationFailed`] when the keys differ or the listener does not
    ///   speak the protocol; [`Error::Timeout`] when the handshake does not finish in
    ///   time; [`Error::Disconnected`] when the listener closes the connection during it.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future abandons the connection; nothing else is affected.
    pub async fn connect_with<S, R, C: Clone, A>(
        &self,
        addr: A,
        codec: C,
    ) -> Result<Connection<S, R, C, Rt>>
    where
        A: TryInto<Address>,
        Error: From<A::Error>,
    {
        let addr = addr.try_into()?;
        let o = &self.options;
        let tcp = TcpOptions {
            nodelay: o.nodelay,
            keepalive: o.keepalive.clone(),
        };
        let (wait, limit) = match o.wait_for_listener {
            Some(wait) => (true, wait),
            None => (false, o.connect_timeout),
        };
        let started = Instant::now();
        let connecting = connect::<Rt>(&addr, &tcp, started + limit, wait);
        let connected = match within::<Rt, _>(limit, connecting).await {
            Err(Error::Timeout) => Err(transport::connect_failed(&addr, None, true)),
            other => other,
        };
        let connected = match connected {
            Ok(stream) => self.finish(&addr, stream, codec).await,
            Err(e) => Err(e),
        };
        trace::connect(&addr, started, connected.as_ref().err());
        connected
    }

    /// Makes the connection over `stream` and, with a key, authenticates.
    async fn finish<S, R, C: Clone>(
        &self,
        addr: &Address,
        stream: Stream,
        codec: C,
    ) -> Result<Connection<S, R, C, Rt>> {
        let o = &self.options;
        #[cfg(feature = "tls")]
        let stream = match &o.tls {
            Some((config, name)) => {
                let started =
                    within::<Rt, _>(o.handshake_timeout, tls_client::<Rt>(stream, config, name));
                started
                    .await
                    .map_err(|e| crate::client::tls_failed(addr, e))
                    .inspect_err(|e| trace::client_handshake_failed(addr, e))?
            }
            None => stream,
        };
        let mut conn = Connection::from_stream(stream, codec, o.max_message_size)?;
        if let Some(key) = &o.authkey {
            within::<Rt, _>(o.handshake_timeout, client_handshake(&mut conn, key))
                .await
                .inspect_err(|e| trace::client_handshake_failed(addr, e))?;
        }
        Ok(conn)
    }
}

/// Connects to `addr` without blocking the thread; with `wait`, a listener that is not
/// there yet (no socket file, a refusal) is retried until `deadline`.
async fn connect<Rt: Runtime>(
    addr: &Address,
    opts: &TcpOptions,
    deadline: Instant,
    wait: bool,
) -> Result<Stream> {
    let mut pause = Duration::from_millis(1);
    loop {
        let err = match addr {
            Address::Tcp(_) | Address::TcpHost { .. } => {
                let mut last = None;
                for sa in tcp::resolve(addr)? {
                    match tcp_connect::<Rt>(sa).await {
                        Ok(socket) => return tcp::configured(socket, opts),
                        Err(e) => last = Some(e),
                    }
                }
                last.unwrap_or_else(|| io::ErrorKind::NotFound.into())
            }
            Address::Unix(_) | Address::Abstract(_) => {
                match unix::try_connect(&unix::sockaddr(addr)?)? {
                    Ok(socket) => {
                        return Ok(Stream::Socket {
                            fd: socket.into(),
                            kind: Kind::Unix,
                        })
                    }
                    Err(e) => e,
                }
            }
            Address::Fifo(_) => {
                return Err(Error::Io(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!(
                        "the async client cannot connect to {addr}: FIFO connections are \
                         blocking only"
                    ),
                )))
            }
        };
        // A full backlog (Unix) may drain; an absent or refusing listener may come, when
        // the caller asked to wait for it.
        let retry = err.kind() == io::ErrorKind::WouldBlock
            || (wait
                && matches!(
                    err.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
                ));
        if !retry || Instant::now() >= deadline {
            return Err(transport::connect_failed(addr, Some(err), false));
        }
        Rt::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// One non-blocking TCP connect, waiting for the socket to turn writable.
async fn tcp_connect<Rt: Runtime>(sa: std::net::SocketAddr) -> io::Result<Socket> {
    let (socket, done) = tcp::start_connect(sa)?;
    if done {
        return Ok(socket);
    }
    let fd = Arc::new(OwnedFd::from(socket));
    {
        let reg = Rt::register(Arc::clone(&fd))?;
        let writable = std::future::poll_fn(|cx| {
            Rt::poll_io(&reg, true, &Cell::new(false), cx, || {
                Ok(wait_fd(fd.as_fd(), PollFlags::OUT, Some(Duration::ZERO))?.then_some(()))
            })
        });
        writable.await.map_err(io::Error::from)?;
    }
    let fd = Arc::try_unwrap(fd)
        .map_err(|_| io::Error::other("the connecting socket is still shared"))?;
    let socket = Socket::from(fd);
    tcp::finish_connect(&socket)?;
    Ok(socket)
}

/// The client's side of CPython's handshake, driven over the async connection.
/// Runs a client's TLS handshake on `stream`, a TCP socket, on `Rt`'s readiness.
#[cfg(feature = "tls")]
async fn tls_client<Rt: Runtime>(
    stream: Stream,
    config: &Arc<rustls::ClientConfig>,
    name: &str,
) -> Result<Stream> {
    use crate::transport::tls::{Handshaking, Step};
    let Stream::Socket {
        fd,
        kind: Kind::Tcp,
    } = stream
    else {
        return Err(Error::Io(io::Error::new(
            io::ErrorKind::Unsupported,
            "tls is for tcp addresses only",
        )));
    };
    let fd = Arc::new(fd);
    let mut hs = Handshaking::client(config, name)?;
    {
        let reg = register_nonblocking::<Rt>(&fd)?;
        let mut want = match hs.advance(fd.as_fd())? {
            Step::Done => None,
            Step::Wait { write } => Some(write),
        };
        while let Some(write) = want {
            let mut op = || match hs.advance(fd.as_fd())? {
                Step::Wait { write: w } if w == write => Ok(None),
                Step::Wait { write: w } => Ok(Some(Some(w))),
                Step::Done => Ok(Some(None)),
            };
            want =
                std::future::poll_fn(|cx| Rt::poll_io(&reg, write, &Cell::new(false), cx, &mut op))
                    .await?;
        }
    }
    let fd = Arc::try_unwrap(fd)
        .map_err(|_| io::Error::other("the socket of the tls handshake is still shared"))?;
    Ok(Stream::Tls {
        fd,
        session: Arc::new(hs.into_session()),
    })
}

/// Registers `fd` with `Rt`'s reactor after putting it in non-blocking mode.
#[cfg(feature = "tls")]
fn register_nonblocking<Rt: Runtime>(fd: &Arc<OwnedFd>) -> Result<Rt::Registration> {
    transport::set_blocking(fd.as_fd(), false)?;
    Ok(Rt::register(Arc::clone(fd))?)
}

async fn client_handshake<S, R, C, Rt: Runtime>(
    conn: &mut Connection<S, R, C, Rt>,
    key: &AuthKey,
) -> Result<()> {
    let saved = conn.max_message_size();
    conn.set_max_message_size(MAX_HANDSHAKE_MESSAGE_SIZE);
    let out = drive(conn, Handshake::client(key)?).await;
    conn.set_max_message_size(saved);
    out
}

async fn drive<S, R, C, Rt: Runtime>(
    conn: &mut Connection<S, R, C, Rt>,
    mut handshake: Handshake,
) -> Result<()> {
    loop {
        while let Some(payload) = handshake.poll_transmit() {
            conn.send_bytes(&payload).await?;
        }
        if handshake.is_authenticated() {
            return Ok(());
        }
        let handled = match conn.recv_bytes().await {
            Ok(payload) => handshake.handle_message(&payload),
            Err(e) => Err(handshake.handle_receive_error(e)),
        };
        if let Err(e) = handled {
            while let Some(payload) = handshake.poll_transmit() {
                let _ = conn.send_bytes(&payload).await;
            }
            return Err(e);
        }
    }
}
