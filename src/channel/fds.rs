//! Messages that carry file descriptors, and connections passed to another process.
//!
//! How the descriptors travel and how the receiver matches them to their message is
//! described in `src/message/fds.rs`.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use bytemuck::Pod;
use rustix::fs::OFlags;
use rustix::io::Errno;
use rustix::net::SocketType;

use super::{Connection, Receiver, Sender};
use crate::codec::api::{Decode, Encode};
use crate::error::{Error, Result};
use crate::message::{Reader, Wait};
#[cfg(any(target_os = "linux", target_os = "android"))]
use crate::shm::SharedArray;
use crate::transport::Kind;
#[cfg(feature = "postcard")]
use crate::Postcard;

/// The payload of a message that passes a connection (its one descriptor rides along).
const CONNECTION_TAG: &[u8] = b"procwire-connection/1";

impl<T, C> Sender<T, C> {
    /// Sends `value` as one message with the descriptors `fds` attached, for the peer's
    /// [`recv_fds`](Receiver::recv_fds).
    ///
    /// The kernel duplicates the descriptors into the receiving process when it receives
    /// the message; this process keeps its own and may close them once this returns.
    /// Only connections over Unix-domain sockets can carry descriptors: a socket pair
    /// ([`duplex`](crate::duplex), [`spawn`](crate::spawn)), a Unix path or an abstract
    /// socket; with an empty `fds` this is [`send`](Sender::send), on any connection. A
    /// receiver that takes the message with a plain [`recv`](Receiver::recv) reads the
    /// value and the descriptors are closed on its side.
    ///
    /// # Errors
    ///
    /// - [`Error::Descriptors`] when `fds` is not empty and the connection cannot carry
    ///   descriptors (a pipe, a FIFO, TCP), or `fds` holds more than
    ///   [`MAX_FDS_PER_MESSAGE`](crate::frame::MAX_FDS_PER_MESSAGE); nothing was sent.
    /// - Otherwise as [`send`](Sender::send).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use std::os::fd::AsFd;
    /// use std::os::unix::net::UnixStream;
    ///
    /// let (a, b) = procwire::duplex::<String, String>()?;
    /// b.enable_fds()?;
    /// let (mut here, there) = UnixStream::pair()?;
    /// a.send_fds(&"write here".to_string(), &[there.as_fd()])?;
    /// drop(there);
    ///
    /// let (text, mut fds) = b.recv_fds()?;
    /// assert_eq!(text, "write here");
    /// let mut received = UnixStream::from(fds.remove(0));
    /// received.write_all(b"through a passed descriptor")?;
    /// drop(received);
    /// let mut got = String::new();
    /// here.read_to_string(&mut got)?;
    /// assert_eq!(got, "through a passed descriptor");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_fds(&self, value: &T, fds: &[BorrowedFd<'_>]) -> Result<()>
    where
        C: Encode<T>,
    {
        self.encoded(value, |writer, payload| {
            writer.send_frame_with_fds(payload, fds)
        })
    }

    /// Sends the bytes of `data` as one message with the descriptors `fds` attached; see
    /// [`send_bytes`](Sender::send_bytes) and [`send_fds`](Sender::send_fds).
    ///
    /// # Errors
    ///
    /// As [`send_fds`](Sender::send_fds), without [`Error::Encode`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::os::fd::AsFd;
    ///
    /// let (a, b) = procwire::duplex::<(), ()>()?;
    /// b.enable_fds()?;
    /// let file = std::fs::File::open("Cargo.toml")?;
    /// a.send_bytes_fds(b"Cargo.toml", &[file.as_fd()])?;
    /// let (name, fds) = b.recv_bytes_fds()?;
    /// assert_eq!((name.as_slice(), fds.len()), (&b"Cargo.toml"[..], 1));
    ///
    /// // A pipe cannot carry descriptors: nothing is sent.
    /// let (tx, _rx) = procwire::pipe::<()>()?;
    /// let err = tx.send_bytes_fds(b"x", &[file.as_fd()]).unwrap_err();
    /// assert!(matches!(err, procwire::Error::Descriptors(_)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_bytes_fds<P: Pod>(&self, data: &[P], fds: &[BorrowedFd<'_>]) -> Result<()> {
        self.io.send_bytes_fds(bytemuck::cast_slice(data), fds)
    }

    /// Passes the connection `conn` to the peer, which takes it with
    /// [`recv_connection`](Receiver::recv_connection).
    ///
    /// The peer gets its own descriptor for the same socket: what it sends on it goes to
    /// `conn`'s peer, and `conn`'s peer's messages go to whichever process reads first.
    /// Usually this process drops `conn` once it is passed. `conn` must be a connection
    /// over one socket (not a pair of FIFOs) that holds nothing of its stream: no bytes
    /// read ahead and not yet received, and no half-sent message.
    ///
    /// # Errors
    ///
    /// - [`Error::Descriptors`] when `conn` is a FIFO connection, holds buffered input or
    ///   unsent output, or this connection cannot carry descriptors; nothing was sent.
    /// - Otherwise as [`send`](Sender::send).
    ///
    /// # Examples
    ///
    /// ```
    /// let (to_worker, worker) = procwire::duplex::<(), ()>()?;
    /// worker.enable_fds()?;
    /// let (client, for_worker) = procwire::duplex::<String, usize>()?;
    /// to_worker.send_connection(&for_worker)?;
    /// drop(for_worker);
    ///
    /// let served = worker.recv_connection::<usize, String>()?;
    /// client.send(&"hello".to_string())?;
    /// served.send(&served.recv()?.len())?;
    /// assert_eq!(client.recv()?, 5);
    /// # Ok::<(), procwire::Error>(())
    /// ```
    pub fn send_connection<S2, R2, C2>(&self, conn: &Connection<S2, R2, C2>) -> Result<()> {
        check_passable(conn)?;
        self.send_bytes_fds(CONNECTION_TAG, &[conn.as_fd()])
    }
}

/// Refuses a connection whose stream would not survive being passed.
fn check_passable<S, R, C>(conn: &Connection<S, R, C>) -> Result<()> {
    if !Arc::ptr_eq(conn.tx.io.fd(), conn.rx.io.fd()) {
        return Err(Error::Descriptors(
            "only a connection over one socket can be passed, not a FIFO pair".into(),
        ));
    }
    if !conn.rx.io.is_idle() {
        return Err(Error::Descriptors(
            "the connection has received bytes or descriptors not yet taken; passing it \
             would lose them"
                .into(),
        ));
    }
    if conn.tx.io.has_unsent() {
        return Err(Error::Descriptors(
            "the connection has the rest of a message still to send".into(),
        ));
    }
    Ok(())
}

impl<T, C> Receiver<T, C> {
    /// Starts receiving the file descriptors that come with messages: needed, once, before
    /// [`recv_fds`](Receiver::recv_fds), [`recv_bytes_fds`](Receiver::recv_bytes_fds),
    /// [`recv_connection`](Receiver::recv_connection) or
    /// [`recv_array`](Receiver::recv_array) on a Unix-domain socket.
    ///
    /// Until then the receiver reads with plain `recv(2)`, which is cheaper than
    /// `recvmsg(2)` with a control buffer (about 5% of a small-message round trip), and the
    /// kernel closes any descriptors a peer sends before they enter this process, so a
    /// receiver that never asked for descriptors cannot be flooded with them. Enabled, every
    /// read brings them; receives that do not return descriptors close those of their
    /// message, as before.
    ///
    /// Call it before the first receive, or at any point where nothing of a later message
    /// has been read yet (a receive can read ahead of the message it returns). Right after
    /// [`Listener::accept`](crate::Listener::accept), [`Client::connect`](crate::Client::connect),
    /// [`spawn`](crate::spawn) or [`from_parent`](crate::from_parent) is always such a
    /// point, with or without a key: the handshake never reads past its own messages. On pipes,
    /// FIFOs and TCP, which cannot carry descriptors, it does nothing, and the `_fds`
    /// receives return none.
    ///
    /// # Errors
    ///
    /// [`Error::Descriptors`] when bytes of a later message are already buffered: read
    /// without a control buffer, they may have carried descriptors that the kernel closed.
    /// Nothing is lost from the stream itself, and the receiver stays usable.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::os::fd::AsFd;
    ///
    /// let (a, b) = procwire::duplex::<u32, u32>()?;
    /// b.enable_fds()?;
    /// let file = std::fs::File::open("Cargo.toml")?;
    /// a.send_fds(&1, &[file.as_fd()])?;
    /// assert_eq!(b.recv_fds()?.1.len(), 1);
    ///
    /// // Without it, asking for descriptors fails, and the kernel closes any that come.
    /// let (c, d) = procwire::duplex::<u32, u32>()?;
    /// c.send_fds(&2, &[file.as_fd()])?;
    /// assert!(matches!(d.recv_fds(), Err(procwire::Error::Descriptors(_))));
    /// assert_eq!(d.recv()?, 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn enable_fds(&self) -> Result<()> {
        self.io.enable_fds()
    }

    /// Receives and decodes the next message with the descriptors that came with it,
    /// blocking until it has arrived.
    ///
    /// The descriptors are new in this process, close-on-exec, and in the order they were
    /// sent; a message sent without any gives an empty `Vec`. Descriptors are only
    /// returned by the `*_with_fds` receives (and [`recv_connection`](Receiver::recv_connection),
    /// [`recv_array`](Receiver::recv_array)): every other receive closes those of its
    /// message, so none is ever left open unclaimed.
    ///
    /// # Errors
    ///
    /// - [`Error::Descriptors`] when this receiver, on a Unix-domain socket, has not been
    ///   [`enable_fds`](Receiver::enable_fds)d; nothing is read.
    /// - [`Error::Descriptors`] when the kernel could not deliver all of the message's
    ///   descriptors (`MSG_CTRUNC`, e.g. this process is out of descriptors): the message
    ///   is consumed and those that arrived are closed.
    /// - Otherwise as [`recv`](Receiver::recv); the message's descriptors are closed.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::os::fd::AsFd;
    ///
    /// let (a, b) = procwire::duplex::<u32, u32>()?;
    /// b.enable_fds()?;
    /// let file = std::fs::File::open("Cargo.toml")?;
    /// a.send_fds(&1, &[file.as_fd(), file.as_fd()])?;
    /// a.send(&2)?;
    /// let (one, fds) = b.recv_fds()?;
    /// assert_eq!((one, fds.len()), (1, 2));
    /// let (two, fds) = b.recv_fds()?;
    /// assert_eq!((two, fds.len()), (2, 0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv_fds(&self) -> Result<(T, Vec<OwnedFd>)>
    where
        C: Decode<T>,
    {
        self.recv_fds_waiting(Wait::Block)
    }

    /// Receives the next value with its descriptors after waiting as `wait` says.
    fn recv_fds_waiting(&self, wait: Wait) -> Result<(T, Vec<OwnedFd>)>
    where
        C: Decode<T>,
    {
        self.io.receive(wait, |reader: &mut Reader, codec| {
            let (decoded, fds) = reader.claiming_fds(|r| r.recv_with(|b| codec.decode(b)))?;
            Ok((decoded.map_err(|e| Error::Decode(Box::new(e)))?, fds))
        })
    }

    /// Receives the next value with its descriptors if a whole message is ready, without
    /// blocking; see [`recv_fds`](Receiver::recv_fds).
    ///
    /// # Errors
    ///
    /// - [`Error::Empty`] when no whole message is ready; nothing is lost.
    /// - Otherwise as [`recv_fds`](Receiver::recv_fds).
    ///
    /// # Examples
    ///
    /// ```
    /// let (a, b) = procwire::duplex::<u8, u8>()?;
    /// b.enable_fds()?;
    /// assert!(matches!(b.try_recv_fds(), Err(procwire::Error::Empty)));
    /// a.send(&3)?;
    /// assert_eq!(b.try_recv_fds()?.0, 3);
    /// # Ok::<(), procwire::Error>(())
    /// ```
    pub fn try_recv_fds(&self) -> Result<(T, Vec<OwnedFd>)>
    where
        C: Decode<T>,
    {
        self.recv_fds_waiting(Wait::Now)
    }

    /// Receives the next value with its descriptors, waiting at most `timeout` for it to
    /// arrive whole; see [`recv_fds`](Receiver::recv_fds).
    ///
    /// # Errors
    ///
    /// - [`Error::Timeout`] when no whole message arrived in time; nothing is lost.
    /// - Otherwise as [`recv_fds`](Receiver::recv_fds).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let (a, b) = procwire::duplex::<u8, u8>()?;
    /// b.enable_fds()?;
    /// let err = b.recv_fds_timeout(Duration::from_millis(5)).unwrap_err();
    /// assert!(matches!(err, procwire::Error::Timeout));
    /// a.send(&4)?;
    /// assert_eq!(b.recv_fds_timeout(Duration::from_secs(5))?.0, 4);
    /// # Ok::<(), procwire::Error>(())
    /// ```
    pub fn recv_fds_timeout(&self, timeout: Duration) -> Result<(T, Vec<OwnedFd>)>
    where
        C: Decode<T>,
    {
        self.recv_fds_waiting(Wait::Within(timeout))
    }

    /// Receives the next message's bytes with the descriptors that came with it; see
    /// [`recv_fds`](Receiver::recv_fds) and [`recv_bytes`](Receiver::recv_bytes).
    ///
    /// # Errors
    ///
    /// As [`recv_fds`](Receiver::recv_fds), without [`Error::Decode`].
    ///
    /// # Examples
    ///
    /// ```
    /// let (a, b) = procwire::duplex::<(), ()>()?;
    /// b.enable_fds()?;
    /// a.send_bytes(b"no descriptors")?;
    /// let (bytes, fds) = b.recv_bytes_fds()?;
    /// assert_eq!((bytes.as_slice(), fds.len()), (&b"no descriptors"[..], 0));
    /// # Ok::<(), procwire::Error>(())
    /// ```
    pub fn recv_bytes_fds(&self) -> Result<(Vec<u8>, Vec<OwnedFd>)> {
        self.io.recv_vec_fds(Wait::Block)
    }

    /// Receives the next message's bytes with their descriptors if a whole message is
    /// ready, without blocking; see [`recv_bytes_fds`](Receiver::recv_bytes_fds).
    ///
    /// # Errors
    ///
    /// - [`Error::Empty`] when no whole message is ready; nothing is lost.
    /// - Otherwise as [`recv_bytes_fds`](Receiver::recv_bytes_fds).
    ///
    /// # Examples
    ///
    /// ```
    /// let (a, b) = procwire::duplex::<(), ()>()?;
    /// b.enable_fds()?;
    /// assert!(matches!(b.try_recv_bytes_fds(), Err(procwire::Error::Empty)));
    /// a.send_bytes(b"now")?;
    /// assert_eq!(b.try_recv_bytes_fds()?.0, b"now");
    /// # Ok::<(), procwire::Error>(())
    /// ```
    pub fn try_recv_bytes_fds(&self) -> Result<(Vec<u8>, Vec<OwnedFd>)> {
        self.io.recv_vec_fds(Wait::Now)
    }

    /// Receives the next message's bytes with their descriptors, waiting at most `timeout`
    /// for it to arrive whole; see [`recv_bytes_fds`](Receiver::recv_bytes_fds).
    ///
    /// # Errors
    ///
    /// - [`Error::Timeout`] when no whole message arrived in time; nothing is lost.
    /// - Otherwise as [`recv_bytes_fds`](Receiver::recv_bytes_fds).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let (a, b) = procwire::duplex::<(), ()>()?;
    /// b.enable_fds()?;
    /// assert!(b.recv_bytes_fds_timeout(Duration::from_millis(5)).is_err());
    /// a.send_bytes(b"soon")?;
    /// assert_eq!(b.recv_bytes_fds_timeout(Duration::from_secs(5))?.0, b"soon");
    /// # Ok::<(), procwire::Error>(())
    /// ```
    pub fn recv_bytes_fds_timeout(&self, timeout: Duration) -> Result<(Vec<u8>, Vec<OwnedFd>)> {
        self.io.recv_vec_fds(Wait::Within(timeout))
    }

    /// Receives a connection passed with [`send_connection`](Sender::send_connection), with
    /// the default codec; it sends `S2` and receives `R2`.
    ///
    /// # Errors
    ///
    /// - [`Error::Descriptors`] when the message is not a passed connection (it is
    ///   consumed and its descriptors closed) or its descriptor is not a blocking stream
    ///   socket.
    /// - Otherwise as [`recv_bytes`](Receiver::recv_bytes).
    ///
    /// # Examples
    ///
    /// See [`send_connection`](Sender::send_connection).
    #[cfg(feature = "postcard")]
    pub fn recv_connection<S2, R2>(&self) -> Result<Connection<S2, R2>> {
        self.recv_connection_with(Postcard)
    }

    /// Receives a connection passed with [`send_connection`](Sender::send_connection), with
    /// codec `codec`; see [`recv_connection`](Receiver::recv_connection).
    ///
    /// # Errors
    ///
    /// As [`recv_connection`](Receiver::recv_connection).
    ///
    /// # Examples
    ///
    /// ```
    /// let (a, b) = procwire::duplex::<(), ()>()?;
    /// b.enable_fds()?;
    /// let (x, y) = procwire::duplex::<u8, u8>()?;
    /// a.send_connection(&y)?;
    /// let y2 = b.recv_connection_with::<u8, u8, _>(procwire::Postcard)?;
    /// x.send(&7)?;
    /// assert_eq!(y2.recv()?, 7);
    /// # Ok::<(), procwire::Error>(())
    /// ```
    pub fn recv_connection_with<S2, R2, C2: Clone>(
        &self,
        codec: C2,
    ) -> Result<Connection<S2, R2, C2>> {
        let (tagged, fds) = self
            .io
            .recv_parsed_fds(Wait::Block, |bytes| bytes == CONNECTION_TAG)?;
        let fd = match <[OwnedFd; 1]>::try_from(fds) {
            Ok([fd]) if tagged => fd,
            Ok(_) | Err(_) => {
                return Err(Error::Descriptors(
                    "expected a passed connection (one socket), got another message".into(),
                ))
            }
        };
        Connection::from_fd_with(fd, codec)
    }
}

#[cfg(feature = "postcard")]
impl<S, R> Connection<S, R> {
    /// A connection with the default codec over `fd`, a connected stream socket (Unix or
    /// TCP) in blocking mode, for example a descriptor received with
    /// [`recv_fds`](Receiver::recv_fds) or inherited some other way.
    ///
    /// The connection owns `fd` from now on; its descriptor flags are left as they are
    /// (received descriptors are already close-on-exec).
    ///
    /// # Errors
    ///
    /// [`Error::Descriptors`] when `fd` is not a socket, not a stream socket, or in
    /// non-blocking mode; it is closed.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::os::unix::net::UnixStream;
    ///
    /// let (a, b) = UnixStream::pair()?;
    /// let a = procwire::Connection::<u8, u8>::from_fd(a.into())?;
    /// let b = procwire::Connection::<u8, u8>::from_fd(b.into())?;
    /// a.send(&1)?;
    /// assert_eq!(b.recv()?, 1);
    ///
    /// let file = std::fs::File::open("Cargo.toml")?;
    /// assert!(procwire::Connection::<u8, u8>::from_fd(file.into()).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_fd(fd: OwnedFd) -> Result<Self> {
        Self::from_fd_with(fd, Postcard)
    }
}

impl<S, R, C: Clone> Connection<S, R, C> {
    /// A connection with codec `codec` over `fd`, a connected stream socket; see
    /// [`from_fd`](Connection::from_fd).
    ///
    /// # Errors
    ///
    /// As [`from_fd`](Connection::from_fd).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::os::unix::net::UnixStream;
    ///
    /// let (a, _b) = UnixStream::pair()?;
    /// let a = procwire::Connection::<u8, u8, _>::from_fd_with(a.into(), procwire::Postcard)?;
    /// # drop(a);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_fd_with(fd: OwnedFd, codec: C) -> Result<Self> {
        check_stream_socket(fd.as_fd())?;
        let kind = Kind::probe(fd.as_fd());
        Ok(Connection::from_socket(fd, kind, codec))
    }
}

/// Checks that `fd` is a blocking stream socket.
fn check_stream_socket(fd: BorrowedFd<'_>) -> Result<()> {
    let refuse = |why: &str| Err(Error::Descriptors(format!("descriptor {why}")));
    match rustix::net::sockopt::socket_type(fd) {
        Ok(SocketType::STREAM) => {}
        Ok(_) => return refuse("is a socket but not a stream socket"),
        Err(Errno::NOTSOCK) => return refuse("is not a socket"),
        Err(e) => return Err(e.into()),
    }
    if rustix::fs::fcntl_getfl(fd)?.contains(OFlags::NONBLOCK) {
        return refuse("is in non-blocking mode; procwire connections block");
    }
    Ok(())
}

#[cfg(any(target_os = "linux", target_os = "android"))]
impl<T, C> Sender<T, C> {
    /// Sends a shared-memory array: the peer's [`recv_array`](Receiver::recv_array) maps
    /// the same memory, so no element is copied, however long the array.
    ///
    /// One small message goes out with the array's memfd attached (see
    /// [`send_fds`](Sender::send_fds)); this process keeps its array and may
    /// send it again or drop it.
    ///
    /// # Errors
    ///
    /// As [`send_bytes_fds`](Sender::send_bytes_fds): [`Error::Descriptors`]
    /// when the connection cannot carry descriptors.
    ///
    /// # Examples
    ///
    /// ```
    /// let (tx, rx) = procwire::duplex::<(), ()>()?;
    /// rx.enable_fds()?;
    /// let mut a = procwire::SharedArrayMut::<f32>::new(4)?;
    /// a.fill(0.5);
    /// tx.send_array(&a.seal()?)?;
    /// assert_eq!(rx.recv_array::<f32>()?.iter().sum::<f32>(), 2.0);
    /// # Ok::<(), procwire::Error>(())
    /// ```
    pub fn send_array<A: Pod>(&self, array: &SharedArray<A>) -> Result<()> {
        self.io.send_array(array)
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
impl<T, C> Receiver<T, C> {
    /// Receives a shared-memory array sent with [`send_array`](Sender::send_array), mapped
    /// read-only in this process.
    ///
    /// The memfd is checked before it is mapped, so a peer cannot change or shrink the
    /// memory afterwards: it must carry the seals `F_SEAL_WRITE`, `F_SEAL_SHRINK` and
    /// `F_SEAL_GROW`, and its size must be exactly the announced count of `A`s. Mapping
    /// allocates nothing, so an array has its own limit,
    /// [`max_array_size`](Receiver::max_array_size) (none unless set), not the maximum
    /// message size.
    ///
    /// # Errors
    ///
    /// - [`Error::MessageTooLarge`] when the array is larger than
    ///   [`max_array_size`](Receiver::max_array_size); unlike a refused frame, the message
    ///   is consumed, its descriptor closed, and the receiver stays usable.
    /// - [`Error::Descriptors`] when the message is not an array of `A` or its memfd fails
    ///   a check; the message is consumed and its descriptors are closed.
    /// - Otherwise as [`recv_bytes_fds`](Receiver::recv_bytes_fds).
    ///
    /// # Examples
    ///
    /// ```
    /// let (tx, rx) = procwire::duplex::<(), ()>()?;
    /// rx.enable_fds()?;
    /// tx.send_array(&procwire::SharedArray::from_slice(&[1u32, 2])?)?;
    /// let err = rx.recv_array::<u64>().unwrap_err();
    /// assert!(err.to_string().contains("element size"), "{err}");
    /// # Ok::<(), procwire::Error>(())
    /// ```
    pub fn recv_array<A: Pod>(&self) -> Result<SharedArray<A>> {
        self.io.recv_array(Wait::Block)
    }

    /// Receives a shared-memory array if its message is ready, without blocking; see
    /// [`recv_array`](Receiver::recv_array).
    ///
    /// # Errors
    ///
    /// - [`Error::Empty`] when no whole message is ready; nothing is lost.
    /// - Otherwise as [`recv_array`](Receiver::recv_array).
    ///
    /// # Examples
    ///
    /// ```
    /// let (tx, rx) = procwire::duplex::<(), ()>()?;
    /// rx.enable_fds()?;
    /// assert!(matches!(rx.try_recv_array::<u8>(), Err(procwire::Error::Empty)));
    /// tx.send_array(&procwire::SharedArray::from_slice(&[9u8])?)?;
    /// assert_eq!(rx.try_recv_array::<u8>()?[0], 9);
    /// # Ok::<(), procwire::Error>(())
    /// ```
    pub fn try_recv_array<A: Pod>(&self) -> Result<SharedArray<A>> {
        self.io.recv_array(Wait::Now)
    }

    /// Receives a shared-memory array, waiting at most `timeout` for its message; see
    /// [`recv_array`](Receiver::recv_array).
    ///
    /// # Errors
    ///
    /// - [`Error::Timeout`] when no whole message arrived in time; nothing is lost.
    /// - Otherwise as [`recv_array`](Receiver::recv_array).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let (tx, rx) = procwire::duplex::<(), ()>()?;
    /// rx.enable_fds()?;
    /// let err = rx.recv_array_timeout::<u8>(Duration::from_millis(5)).unwrap_err();
    /// assert!(matches!(err, procwire::Error::Timeout));
    /// tx.send_array(&procwire::SharedArray::from_slice(&[3u16, 4])?)?;
    /// assert_eq!(rx.recv_array_timeout::<u16>(Duration::from_secs(5))?.len(), 2);
    /// # Ok::<(), procwire::Error>(())
    /// ```
    pub fn recv_array_timeout<A: Pod>(&self, timeout: Duration) -> Result<SharedArray<A>> {
        self.io.recv_array(Wait::Within(timeout))
    }

    /// The largest shared array, in bytes, that [`recv_array`](Receiver::recv_array)
    /// maps: `u64::MAX` (no limit) unless changed. Independent of
    /// [`max_message_size`](Receiver::max_message_size): an array is mapped, not copied,
    /// so the receiver allocates nothing for it whatever its size.
    pub fn max_array_size(&self) -> u64 {
        self.io.max_array_size()
    }

    /// Sets the largest shared array, in bytes, that [`recv_array`](Receiver::recv_array)
    /// maps; a larger one is refused with [`Error::MessageTooLarge`], its message consumed
    /// and its memfd closed, and the receiver carries on.
    ///
    /// # Examples
    ///
    /// ```
    /// let (tx, rx) = procwire::duplex::<(), ()>()?;
    /// rx.enable_fds()?;
    /// rx.set_max_array_size(16);
    /// tx.send_array(&procwire::SharedArray::from_slice(&[0u64; 3])?)?;
    /// let err = rx.recv_array::<u64>().unwrap_err();
    /// assert!(matches!(err, procwire::Error::MessageTooLarge { len: 24, limit: 16 }));
    /// tx.send_bytes(b"next")?;
    /// assert_eq!(rx.recv_bytes()?, b"next");
    /// # Ok::<(), procwire::Error>(())
    /// ```
    pub fn set_max_array_size(&self, max: u64) {
        self.io.set_max_array_size(max);
    }
}
