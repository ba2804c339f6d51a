//! The one error type of the crate.

use std::fmt;
use std::io;

/// Everything that can go wrong on a procwire connection.
///
/// The variants are the outcomes a caller can act on. Which ones leave the connection
/// usable is part of each variant's documentation:
///
/// | variant | connection afterwards |
/// | --- | --- |
/// | [`Disconnected`](Error::Disconnected) | at end of stream; further receives return it again |
/// | [`Truncated`](Error::Truncated) | at end of stream |
/// | [`MessageTooLarge`](Error::MessageTooLarge) | receiving disabled, sending still works (a shared array over its limit: usable, the message was consumed) |
/// | [`Protocol`](Error::Protocol) | receiving disabled, sending still works |
/// | [`BufferTooShort`](Error::BufferTooShort) | usable, the message was consumed |
/// | [`Decode`](Error::Decode) | usable, the message was consumed |
/// | [`Encode`](Error::Encode) | usable, nothing was sent |
/// | [`Timeout`](Error::Timeout), [`Empty`](Error::Empty) | usable, nothing was lost |
/// | [`PartlySent`](Error::PartlySent) | usable; the rest of that message goes out before any other |
/// | [`AuthenticationFailed`](Error::AuthenticationFailed) | should be closed |
/// | [`InvalidAddress`](Error::InvalidAddress) | (no connection was made) |
/// | [`Descriptors`](Error::Descriptors) | usable: nothing was sent, or the message was consumed and its descriptors closed |
/// | [`Remote`](Error::Remote) | usable: only that request failed |
/// | [`Io`](Error::Io) | depends on the error; see [`Error::is_disconnected`] |
///
/// # Reading an error
///
/// `{e}` alone says what failed, on what, and why: "cannot connect to 127.0.0.1:1:
/// Connection refused (os error 111)", "cannot spawn ./missing: No such file or directory
/// (os error 2)", "cannot decode a message: …" with the codec's own text. Following the
/// Rust convention, an error prints its cause in `Display` *or* returns it from
/// [`source`](std::error::Error::source), never both; procwire always prints it, so
/// `source()` returns only what the printed cause does not show (the cause's own
/// `source()`), and a chain printer such as `anyhow`'s shows each text once.
///
/// Errors made while connecting, binding, accepting or spawning carry that context inside
/// their [`Error::Io`] (an [`io::Error`] whose [`kind`](io::Error::kind) is the
/// operating system's); errors of a send or receive on an open connection carry none, so
/// that the hot path never allocates, and `Display` names them by kind instead ("the peer
/// is gone: Broken pipe (os error 32)").
///
/// # Examples
///
/// ```
/// let (tx, rx) = procwire::pipe::<u32>()?;
/// drop(tx);
/// let err = rx.recv().unwrap_err();
/// assert!(matches!(err, procwire::Error::Disconnected));
/// assert!(err.is_disconnected());
/// # Ok::<(), procwire::Error>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The peer closed the stream at a message boundary (CPython's `EOFError`).
    Disconnected,
    /// The peer closed the stream inside a message: after `received` of the
    /// `expected` bytes of its frame (header included).
    Truncated {
        /// Bytes of the frame that arrived.
        received: u64,
        /// Bytes the frame needed: the header's size while the header was incomplete,
        /// otherwise header plus payload.
        expected: u64,
    },
    /// A frame header announced a payload larger than the connection's limit.
    ///
    /// Nothing of that size was allocated and the payload was left unread; as in CPython,
    /// the connection can no longer receive (further receives return
    /// [`Error::Protocol`]), but it can still send. The limit is the receiver's
    /// [`set_max_message_size`](crate::Receiver::set_max_message_size) (or
    /// `max_message_size` on [`ListenerBuilder`](crate::ListenerBuilder) and
    /// [`ClientBuilder`](crate::ClientBuilder); 256 MiB unless set), or the `limit` of a
    /// file receive; the text names the setting.
    ///
    /// **What the sender sees.** Nothing at first: the limit is the receiver's, and no
    /// message goes back. The frame's bytes stay unread in the kernel, so a sender of a
    /// message larger than the socket buffer blocks in its send until the receiver closes
    /// the connection, and then gets an [`Error::Io`] of kind `BrokenPipe` or
    /// `ConnectionReset` ([`is_disconnected`](Error::is_disconnected)). Set the same limit
    /// on both sides, or raise the receiver's (`u64::MAX` turns it off: memory then grows
    /// only as bytes arrive), to send large messages.
    ///
    /// A shared array ([`recv_array`](crate::Receiver::recv_array)) larger than its own
    /// limit, [`set_max_array_size`](crate::Receiver::set_max_array_size) (none unless
    /// set), is refused with this error too; that message is consumed and the connection
    /// stays usable.
    MessageTooLarge {
        /// The length the peer announced.
        len: u64,
        /// The connection's maximum message size.
        limit: u64,
    },
    /// The slice given to `recv_bytes_into` was too small; this holds the whole message,
    /// which counts as received. The next message is still readable.
    BufferTooShort(Vec<u8>),
    /// The codec could not encode a value; nothing was sent. `Display` includes the
    /// codec's error text.
    ///
    /// One exception: a value written in place into a memfd slot (see
    /// [`enable_large_memfd`](crate::Sender::enable_large_memfd)) whose codec failed
    /// part-way. Its frame had started, so it ends as "abandoned": the receiver's receive
    /// of it fails with [`Error::Descriptors`], and both ends carry on with the next
    /// message.
    Encode(Box<dyn std::error::Error + Send + Sync>),
    /// The codec could not decode a message; the message was consumed and the next one is
    /// still readable. `Display` includes the codec's error text.
    Decode(Box<dyn std::error::Error + Send + Sync>),
    /// The peer broke the framing protocol (for example a negative length other than the
    /// `-1` escape), or receiving was disabled by an earlier such error.
    Protocol(String),
    /// No message arrived before the deadline. Nothing was lost: bytes that did arrive stay
    /// buffered for the next receive.
    ///
    /// From a send with a deadline (`send_timeout`): the peer made no room in time and
    /// nothing of this message was sent; sending it again later is safe.
    Timeout,
    /// A send with a deadline (`send_timeout`) had written `sent` of the `len` bytes of its
    /// frame when the deadline passed.
    ///
    /// The message is not lost and must not be sent again: the sender keeps its unsent
    /// rest and writes it before anything else, with the next send of any kind or with
    /// `flush_timeout`. Until then the peer cannot read past this message; if the sender is
    /// closed first, the peer's receive ends with [`Error::Truncated`].
    PartlySent {
        /// Bytes of the frame (header included) handed to the kernel. Over TLS, the bytes
        /// whose encrypted records left, counted as a lower bound (records add a few
        /// bytes each).
        sent: u64,
        /// Bytes of the whole frame.
        len: u64,
    },
    /// A non-blocking receive found no whole message ready.
    Empty,
    /// An address could not be parsed or used: the message names the input and the reason.
    InvalidAddress(String),
    /// The authentication handshake failed: wrong key, a malformed or oversized handshake
    /// message, or a peer that does not speak the protocol. The reason never contains key
    /// or digest bytes.
    AuthenticationFailed(String),
    /// File descriptors could not be passed or used: the connection cannot carry them (a
    /// pipe, a FIFO or TCP: only Unix-domain sockets can), a message would carry more than
    /// [`MAX_FDS_PER_MESSAGE`](crate::frame::MAX_FDS_PER_MESSAGE), some that were sent could not be
    /// received (`MSG_CTRUNC`), or a received descriptor is not what the receive expects
    /// (a shared array that is not a sealed memfd of the announced size, a connection that
    /// is not a stream socket). The text says which.
    ///
    /// The connection stays usable: a send sent nothing; a receive consumed its message
    /// and closed every descriptor that came with it.
    Descriptors(String),
    /// The peer's handler for a request returned this error (see
    /// [`Requester::request`](crate::rpc::Requester::request)); the connection carries on.
    Remote(String),
    /// An operating-system error. Sending to a peer that is gone gives the kinds
    /// `BrokenPipe` or `ConnectionReset`, never a `SIGPIPE` (see
    /// [`is_disconnected`](Error::is_disconnected)).
    ///
    /// When it happened while connecting, binding, accepting or spawning, its text names
    /// the operation and the address or program ("cannot bind 127.0.0.1:80: Permission
    /// denied (os error 13)"); its kind is still the operating system's.
    Io(io::Error),
}

impl Error {
    /// Whether this error means the peer is gone: [`Disconnected`](Error::Disconnected),
    /// [`Truncated`](Error::Truncated), or an I/O error of kind `BrokenPipe`,
    /// `ConnectionReset` or `ConnectionAborted`.
    ///
    /// # Examples
    ///
    /// ```
    /// let (tx, rx) = procwire::pipe::<u32>()?;
    /// drop(rx);
    /// assert!(tx.send(&7).unwrap_err().is_disconnected());
    /// # Ok::<(), procwire::Error>(())
    /// ```
    pub fn is_disconnected(&self) -> bool {
        match self {
            Error::Disconnected | Error::Truncated { .. } => true,
            Error::Io(e) => is_gone(e),
            _ => false,
        }
    }

    /// Puts `what` ("cannot bind /run/app.sock") before an [`Error::Io`] that says nothing
    /// of what failed yet; any other error, or one that has its context already, is
    /// returned unchanged. For setup paths only: it allocates.
    pub(crate) fn context(self, what: impl FnOnce() -> String) -> Error {
        match self {
            Error::Io(e) if !has_context(&e) => Error::Io(Context::wrap(what(), e)),
            other => other,
        }
    }

    /// Whether this error means the process or the system ran out of descriptors or
    /// memory (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`): an error that passes once some
    /// are freed. [`Listener::accept`](crate::Listener::accept) reports it once and then
    /// pauses accepting by itself, so a server should log it and carry on.
    ///
    /// Looks at the operating system's error anywhere in the error's
    /// [`source`](std::error::Error::source) chain.
    ///
    /// # Examples
    ///
    /// ```
    /// use procwire::Error;
    ///
    /// let e = Error::Io(std::io::Error::from_raw_os_error(24)); // EMFILE on Linux
    /// assert!(e.is_resource_exhausted());
    /// assert!(!Error::Timeout.is_resource_exhausted());
    /// ```
    pub fn is_resource_exhausted(&self) -> bool {
        let Error::Io(e) = self else {
            return false;
        };
        let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(err) = next {
            if let Some(ctx) = err.downcast_ref::<Context>() {
                next = Some(&ctx.err);
                continue;
            }
            if let Some(io) = err.downcast_ref::<io::Error>() {
                if is_exhaustion(io) {
                    return true;
                }
                // An `io::Error` made with `io::Error::new` hides its payload from
                // `source()`; look inside.
                if let Some(inner) = io.get_ref() {
                    next = Some(inner);
                    continue;
                }
            }
            next = err.source();
        }
        false
    }
}

/// Whether `e` itself is the operating system running out of descriptors or memory
/// (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`); see [`Error::is_resource_exhausted`].
pub(crate) fn is_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// Whether `e`'s kind means the peer is gone: `BrokenPipe`, `ConnectionReset` or
/// `ConnectionAborted`.
fn is_gone(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
    )
}

/// Whether `e` already says what failed (its payload is a [`Context`]).
fn has_context(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<Context>())
}

/// The payload of an [`Error::Io`] made on a setup path: what failed and on what, the
/// operating system's error, and optionally what happens next. `Display` prints all of it;
/// `source()` is the operating system error's own source, which it does not print.
#[derive(Debug)]
pub(crate) struct Context {
    what: String,
    err: io::Error,
    then: String,
}

impl Context {
    /// An `io::Error` of `err`'s kind that reads "`what`: `err`".
    pub(crate) fn wrap(what: String, err: io::Error) -> io::Error {
        Context::io(err.kind(), what, err, String::new())
    }

    /// An `io::Error` of `kind` that reads "`what`: `err``then`" (`then` is empty or
    /// starts with its own separator: "; the listener pauses …").
    pub(crate) fn io(kind: io::ErrorKind, what: String, err: io::Error, then: String) -> io::Error {
        io::Error::new(kind, Context { what, err, then })
    }
}

impl fmt::Display for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}{}", self.what, self.err, self.then)
    }
}

impl std::error::Error for Context {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.err.source()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Disconnected => f.write_str("peer closed the connection"),
            Error::Truncated { received, expected } => write!(
                f,
                "peer closed the connection inside a message ({received} of {expected} bytes received)"
            ),
            Error::MessageTooLarge { len, limit } => write!(
                f,
                "message of {len} bytes exceeds the receiver's {limit}-byte limit (raise it \
                 with set_max_message_size or the builder's max_message_size; a shared \
                 array's with set_max_array_size)"
            ),
            Error::BufferTooShort(msg) => write!(
                f,
                "buffer too short for a message of {} bytes",
                msg.len()
            ),
            Error::Encode(e) => write!(f, "cannot encode a value: {e}"),
            Error::Decode(e) => write!(f, "cannot decode a message: {e}"),
            Error::Protocol(why) => write!(f, "protocol error: {why}"),
            Error::Timeout => f.write_str("timed out waiting for a message"),
            Error::PartlySent { sent, len } => write!(
                f,
                "send timed out after {sent} of {len} bytes of a message; the rest is kept and goes out first"
            ),
            Error::Empty => f.write_str("no message ready"),
            Error::AuthenticationFailed(why) => write!(f, "authentication failed: {why}"),
            Error::InvalidAddress(why) => write!(f, "invalid address {why}"),
            Error::Descriptors(why) => write!(f, "descriptor error: {why}"),
            Error::Remote(why) => write!(f, "the peer's handler failed: {why}"),
            Error::Io(e) if has_context(e) => write!(f, "{e}"),
            Error::Io(e) if is_gone(e) => write!(f, "the peer is gone: {e}"),
            Error::Io(e) => write!(f, "i/o error: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        // `Display` prints the cause itself, so only the cause's own source is returned.
        match self {
            Error::Encode(e) | Error::Decode(e) => e.source(),
            // An `io::Error`'s `source()` is its payload's `source()`: what it does not print.
            Error::Io(e) => e.source(),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

/// Lets APIs that take `impl TryInto<Address>` accept an [`Address`](crate::Address) itself,
/// whose conversion cannot fail.
impl From<std::convert::Infallible> for Error {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}

impl From<rustix::io::Errno> for Error {
    fn from(e: rustix::io::Errno) -> Self {
        Error::Io(e.into())
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> Self {
        use io::ErrorKind as K;
        let kind = match &e {
            Error::Io(inner) => inner.kind(),
            Error::Disconnected | Error::Truncated { .. } => K::UnexpectedEof,
            Error::MessageTooLarge { .. } | Error::Protocol(_) | Error::Decode(_) => K::InvalidData,
            Error::BufferTooShort(_) | Error::Encode(_) => K::InvalidInput,
            Error::Timeout | Error::PartlySent { .. } => K::TimedOut,
            Error::Empty => K::WouldBlock,
            Error::AuthenticationFailed(_) => K::PermissionDenied,
            Error::InvalidAddress(_) => K::InvalidInput,
            Error::Descriptors(_) => K::InvalidData,
            Error::Remote(_) => K::Other,
        };
        match e {
            Error::Io(inner) => inner,
            other => io::Error::new(kind, other),
        }
    }
}

/// Shorthand for `Result<T, procwire::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;
