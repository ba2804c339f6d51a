//! TCP over IPv4 and IPv6 (`host:port`, `tcp://host:port`, `[v6]:port`), with `socket2`.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};

use super::{back_off, connect_failed, retry_intr, Absent, BindOptions, Kind, Stream, TcpOptions};
use crate::address::Address;
use crate::error::{Error, Result};

/// A listening TCP socket.
#[derive(Debug)]
pub(crate) struct TcpListener(Socket);

impl TcpListener {
    /// Binds the first address `addr` resolves to, with `SO_REUSEADDR`, and listens.
    pub(crate) fn bind(addr: &Address, opts: BindOptions) -> Result<TcpListener> {
        let sa = resolve(addr)?.into_iter().next().ok_or_else(not_found)?;
        let socket = Socket::new(Domain::for_address(sa), Type::STREAM, None)?;
        socket.set_reuse_address(true)?;
        socket.bind(&sa.into())?;
        socket.listen(backlog(opts.backlog))?;
        socket.set_nonblocking(true)?;
        Ok(TcpListener(socket))
    }

    /// The bound address, with the real port.
    pub(crate) fn local_addr(&self) -> Result<Option<Address>> {
        Ok(self.0.local_addr()?.as_socket().map(Address::Tcp))
    }

    /// Accepts one waiting client without blocking (`WouldBlock` when none waits), with
    /// `TCP_NODELAY` set: messages are whole frames, so Nagle's
    /// algorithm only adds latency.
    pub(crate) fn try_accept(&self) -> io::Result<(Stream, Option<Address>)> {
        let (socket, peer) = retry_intr(|| self.0.accept())?;
        super::accepted_blocking(&socket)?;
        socket.set_tcp_nodelay(true)?;
        let stream = Stream::Socket {
            fd: socket.into(),
            kind: Kind::Tcp,
        };
        Ok((stream, peer.as_socket().map(Address::Tcp)))
    }
}

impl From<TcpListener> for OwnedFd {
    fn from(l: TcpListener) -> OwnedFd {
        l.0.into()
    }
}

impl AsFd for TcpListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// Connects to each address `addr` resolves to in turn until one accepts or `deadline`
/// passes. A refusal moves on to the next address; when all refuse, that is the error,
/// unless `absent` says to wait for the listener: then the round starts again after a
/// pause, until `deadline`.
pub(crate) fn connect(
    addr: &Address,
    opts: &TcpOptions,
    deadline: Instant,
    absent: Absent,
) -> Result<Stream> {
    let addrs = resolve(addr)?;
    let mut pause = Duration::from_millis(1);
    loop {
        let mut last = None;
        for &sa in &addrs {
            let socket = Socket::new(Domain::for_address(sa), Type::STREAM, None)?;
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                break;
            }
            match socket.connect_timeout(&sa.into(), remaining) {
                Ok(()) => return configured(socket, opts),
                Err(e) => last = Some(e),
            }
        }
        let out_of_time = !matches!(&last, Some(e) if e.kind() != io::ErrorKind::TimedOut);
        let again = matches!(&last, Some(e) if absent.retries(e.kind()) && !out_of_time);
        if !again || !back_off(&mut pause, Duration::from_millis(50), deadline) {
            let out_of_time = out_of_time || again;
            return Err(connect_failed(addr, last, out_of_time));
        }
    }
}

/// The connected `socket` with `opts` applied, as a stream.
pub(crate) fn configured(socket: Socket, opts: &TcpOptions) -> Result<Stream> {
    socket.set_tcp_nodelay(opts.nodelay)?;
    if let Some(ka) = &opts.keepalive {
        socket.set_keepalive(true)?;
        socket.set_tcp_keepalive(ka)?;
    }
    Ok(Stream::Socket {
        fd: socket.into(),
        kind: Kind::Tcp,
    })
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

fn not_found() -> Error {
    Error::Io(io::Error::new(
        io::ErrorKind::NotFound,
        "the host name resolves to no address",
    ))
}

/// Starts a non-blocking connect to `sa` (for the async drivers): the socket, and
/// whether it is connected already. If not, it is once it turns writable, and
/// [`finish_connect`] tells how that went.
#[cfg_attr(not(any(feature = "tokio", feature = "async-io")), allow(dead_code))]
pub(crate) fn start_connect(sa: SocketAddr) -> io::Result<(Socket, bool)> {
    let socket = Socket::new(Domain::for_address(sa), Type::STREAM, None)?;
    socket.set_nonblocking(true)?;
    match socket.connect(&sa.into()) {
        Ok(()) => Ok((socket, true)),
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok((socket, false)),
        Err(e) => Err(e),
    }
}

/// The outcome of a connect [`start_connect`] left in progress, once the socket is
/// writable.
#[cfg_attr(not(any(feature = "tokio", feature = "async-io")), allow(dead_code))]
pub(crate) fn finish_connect(socket: &Socket) -> io::Result<()> {
    match socket.take_error()? {
        Some(e) => Err(e),
        None => socket.peer_addr().map(drop),
    }
}

/// The backlog as `listen(2)` takes it.
pub(super) fn backlog(b: u32) -> i32 {
    i32::try_from(b).unwrap_or(i32::MAX)
}
