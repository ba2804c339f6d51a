//! [`Listener`]: accepts connections on TCP, Unix-path and abstract sockets and named
//! pipes (see `transport/fifo.rs` for their rendezvous), running the
//! server side of the authentication handshake when it has a key.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use socket2::{Domain, SockAddr, Socket, Type};

use crate::address::Address;
use crate::auth::{server_handshake, AuthKey};
use crate::channel::Connection;
use crate::error::{Error, Result};
use crate::transport::fifo::FifoListener;
#[cfg(feature = "postcard")]
use crate::Postcard;
use crate::DEFAULT_MAX_MESSAGE_SIZE;

/// The default `listen(2)` backlog of a [`Listener`]: 128 pending connections (CPython uses
/// 1, which refuses bursts of clients; the value does not show on the wire).
pub const DEFAULT_BACKLOG: u32 = 128;

/// The default time a handshake may take, on either side: 5 seconds.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

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
            backlog: DEFAULT_BACKLOG,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            unix_mode: 0o600,
        }
    }
}

impl ListenerBuilder {
    /// Require every client to prove it knows `key` (and prove to it that we do), with
    /// CPython's mutual HMAC handshake. An empty key is a real key.
    pub fn authkey(mut self, key: impl Into<AuthKey>) -> Self {
        self.authkey = Some(key.into());
        self
    }

    /// The `listen(2)` backlog ([`DEFAULT_BACKLOG`] unless set).
    pub fn backlog(mut self, backlog: u32) -> Self {
        self.backlog = backlog;
        self
    }

    /// How long a client's handshake may take before `accept` gives up on it
    /// ([`DEFAULT_HANDSHAKE_TIMEOUT`] unless set).
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
        let (socket, local, unix_file) = match &addr {
            Address::Tcp(_) | Address::TcpHost { .. } => {
                let sa = crate::client::resolve(&addr)?
                    .into_iter()
                    .next()
                    .ok_or_else(|| not_found(&addr))?;
                let socket = Socket::new(Domain::for_address(sa), Type::STREAM, None)?;
                socket.set_reuse_address(true)?;
                socket.bind(&sa.into())?;
                socket.listen(backlog(self.backlog))?;
                let local = socket
                    .local_addr()?
                    .as_socket()
                    .map_or(addr.clone(), Address::Tcp);
                (Endpoint::Socket(socket), local, None)
            }
            Address::Unix(path) => {
                let (socket, file) = bind_unix_path(path, self.unix_mode, backlog(self.backlog))?;
                (Endpoint::Socket(socket), addr.clone(), Some(file))
            }
            Address::Abstract(name) => {
                let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
                socket.bind(&crate::client::abstract_sockaddr(name)?)?;
                socket.listen(backlog(self.backlog))?;
                (Endpoint::Socket(socket), addr.clone(), None)
            }
            Address::Fifo(path) => {
                let fifo = FifoListener::bind(path, self.unix_mode)?;
                let file = UnixFile::of(path)?;
                (Endpoint::Fifo(fifo), addr.clone(), Some(file))
            }
        };
        Ok(Listener {
            endpoint: Some(socket),
            local,
            unix_file,
            last_accepted: Mutex::new(None),
            config: self,
        })
    }
}

fn backlog(b: u32) -> i32 {
    i32::try_from(b).unwrap_or(i32::MAX)
}

fn not_found(addr: &Address) -> Error {
    Error::Io(io::Error::new(
        io::ErrorKind::NotFound,
        format!("{addr} resolves to no address"),
    ))
}

/// What a listener listens on.
#[derive(Debug)]
enum Endpoint {
    Socket(Socket),
    Fifo(FifoListener),
}

/// The socket file a listener made, identified so that it only removes its own.
#[derive(Debug)]
struct UnixFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl UnixFile {
    /// Identifies the file now at `path`.
    fn of(path: &Path) -> io::Result<UnixFile> {
        let md = std::fs::symlink_metadata(path)?;
        Ok(UnixFile {
            path: path.to_owned(),
            dev: md.dev(),
            ino: md.ino(),
        })
    }

    /// Removes the file if it is still ours, and the private directory
    /// [`Address::arbitrary`] made around it.
    fn remove(&self) -> io::Result<()> {
        match std::fs::symlink_metadata(&self.path) {
            Ok(md) if md.dev() == self.dev && md.ino() == self.ino => {
                std::fs::remove_file(&self.path)?;
            }
            Ok(_) => return Ok(()), // replaced by someone else: not ours to remove
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        }
        if let Some(dir) = self.path.parent() {
            let mut dirs = crate::address::arbitrary_dirs();
            if dirs.contains(dir) && std::fs::remove_dir(dir).is_ok() {
                dirs.remove(dir);
            }
        }
        Ok(())
    }
}

/// Refuses a live or non-socket path; removes a stale socket file.
fn clear_stale(path: &Path) -> Result<()> {
    let md = match std::fs::symlink_metadata(path) {
        Ok(md) => md,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    if !md.file_type().is_socket() {
        return Err(Error::Io(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "{} exists and is not a socket; not replacing it",
                path.display()
            ),
        )));
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(Error::Io(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("a listener is already serving {}", path.display()),
        ))),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            std::fs::remove_file(path)?;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// Binds a Unix socket at `path` with permissions `mode` and no window in which others
/// could connect: it is bound inside a fresh 0700 directory next to `path`, given its
/// mode, and renamed into place (refusing to replace a file that appeared meanwhile).
fn bind_unix_path(path: &Path, mode: u32, backlog: i32) -> Result<(Socket, UnixFile)> {
    clear_stale(path)?;
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let staging = crate::address::private_dir(parent, ".procwire-")?;
    let staged = staging.join("s");
    let result = (|| -> Result<()> {
        if staged.as_os_str().len() > crate::address::MAX_UNIX_PATH {
            // No room for the staging path: bind in place and set the mode right after.
            socket.bind(&SockAddr::unix(path)?)?;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
            return Ok(());
        }
        socket.bind(&SockAddr::unix(&staged)?)?;
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(mode))?;
        rename_no_replace(&staged, path)
    })();
    let _ = std::fs::remove_file(&staged);
    let _ = std::fs::remove_dir(&staging);
    result?;
    socket.listen(backlog)?;
    Ok((socket, UnixFile::of(path)?))
}

fn rename_no_replace(from: &Path, to: &Path) -> Result<()> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    match renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::EXIST) => Err(Error::Io(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("{} appeared while binding; not replacing it", to.display()),
        ))),
        // A filesystem without RENAME_NOREPLACE: `clear_stale` checked the path already.
        Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => Ok(std::fs::rename(from, to)?),
        Err(e) => Err(e.into()),
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
    endpoint: Option<Endpoint>,
    local: Address,
    unix_file: Option<UnixFile>,
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

    fn endpoint(&self) -> &Endpoint {
        self.endpoint
            .as_ref()
            .expect("only `close` takes the endpoint")
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
        let conn = match self.endpoint() {
            Endpoint::Socket(socket) => {
                let fd = self.accept_socket(socket)?;
                Connection::from_socket(fd, codec)
            }
            Endpoint::Fifo(fifo) => {
                let pair = fifo.accept()?;
                Connection::from_pipes(pair.read, pair.write, codec)
            }
        };
        conn.set_max_message_size(self.config.max_message_size);
        if let Some(key) = &self.config.authkey {
            server_handshake(&conn, key, self.config.handshake_timeout)?;
        }
        Ok(conn)
    }

    fn accept_socket(&self, listening: &Socket) -> Result<OwnedFd> {
        let (socket, peer) = loop {
            match listening.accept() {
                Ok(pair) => break pair,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        };
        if peer.is_ipv4() || peer.is_ipv6() {
            socket.set_tcp_nodelay(true)?;
        }
        *self
            .last_accepted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = peer_address(&peer);
        Ok(OwnedFd::from(socket))
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
    pub fn close(mut self) -> Result<()> {
        let removed = self.unix_file.take().map_or(Ok(()), |f| f.remove());
        let closed = match self.endpoint.take() {
            Some(Endpoint::Socket(s)) => crate::transport::close(OwnedFd::from(s)),
            Some(Endpoint::Fifo(f)) => {
                drop(f);
                Ok(())
            }
            None => Ok(()),
        };
        removed?;
        closed
    }
}

fn peer_address(peer: &SockAddr) -> Option<Address> {
    if let Some(sa) = peer.as_socket() {
        return Some(Address::Tcp(sa));
    }
    if let Some(path) = peer.as_pathname() {
        return Some(Address::Unix(path.to_owned()));
    }
    peer.as_abstract_namespace()
        .map(|name| Address::Abstract(name.to_vec()))
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some(f) = self.unix_file.take() {
            let _ = f.remove();
        }
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
        match self.endpoint() {
            Endpoint::Socket(s) => s.as_fd(),
            Endpoint::Fifo(f) => f.as_fd(),
        }
    }
}

impl AsRawFd for Listener {
    fn as_raw_fd(&self) -> RawFd {
        self.as_fd().as_raw_fd()
    }
}
