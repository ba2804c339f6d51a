//! [`Requester`]: the sending side of the rpc protocol, and [`Pending`] requests.

use std::fmt;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::core::{Answer, Connector, Halves, Kind, Shared};
use super::outbox::Limit;
use super::{Envelope, MsgId, RpcConnection};
#[allow(unused_imports)] // for intra-doc links
use crate::channel::{Receiver, Sender};
use crate::codec::api::Codec;
use crate::error::{Error, Result};
#[cfg(feature = "postcard")]
use crate::Postcard;

/// Sends requests and messages over an rpc connection and matches the responses; a
/// cloneable handle that many threads share.
///
/// Made by [`Requester::new`] from a connection, or by
/// [`ReconnectBuilder::start`](crate::rpc::ReconnectBuilder::start) for one that reconnects.
/// A reader thread, started here, receives the responses; it ends when the last clone of
/// the requester is dropped (which closes the connection) or the connection is lost.
/// Requests go one way per connection: requests and messages the peer sends to a requester
/// are ignored (a file pushed with them is read and dropped); open a second connection
/// for the other direction.
///
/// # Blocking
///
/// Every call writes its envelope before returning or waiting, and a write blocks while the
/// peer does not read (as [`Sender::send`] does); the timeout of a request covers the wait
/// for its answer. While one thread writes, others queue behind it, and the writing thread
/// writes what they queued too, in order.
///
/// # Examples
///
/// Many requests in flight at once, from one thread:
///
/// ```
/// use std::time::Duration;
/// use procwire::rpc::{Envelope, Requester, serve};
///
/// let (client, server) = procwire::duplex::<Envelope<u32, u32>, Envelope<u32, u32>>()?;
/// std::thread::spawn(move || serve(&server, |call| Ok::<_, String>(call.body + 1)));
/// let requester = Requester::new(client)?;
/// let pending: Vec<_> = (0..10)
///     .map(|i| requester.start(i, Duration::from_secs(5)))
///     .collect::<Result<_, _>>()?;
/// for (i, p) in pending.into_iter().enumerate() {
///     assert_eq!(p.wait()?, i as u32 + 1);
/// }
/// # Ok::<(), procwire::Error>(())
/// ```
pub struct Requester<
    Req,
    Resp,
    #[cfg(feature = "postcard")] C = Postcard,
    #[cfg(not(feature = "postcard"))] C,
> {
    handle: Arc<Handle<Req, Resp, C>>,
}

/// Closes the shared state when the last requester clone is gone.
struct Handle<Req, Resp, C> {
    shared: Arc<Shared<Req, Resp, C>>,
}

impl<Req, Resp, C> Drop for Handle<Req, Resp, C> {
    fn drop(&mut self) {
        self.shared.close();
    }
}

impl<Req, Resp, C> Clone for Requester<Req, Resp, C> {
    fn clone(&self) -> Self {
        Requester {
            handle: Arc::clone(&self.handle),
        }
    }
}

impl<Req, Resp, C> fmt::Debug for Requester<Req, Resp, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Requester")
            .field(
                "session",
                &format_args!("{:016x}", self.handle.shared.session),
            )
            .finish_non_exhaustive()
    }
}

impl<Req, Resp, C> Requester<Req, Resp, C>
where
    Req: 'static,
    Resp: Send + 'static,
    C: Codec<Envelope<Req, Resp>> + Clone + Send + 'static,
{
    /// Starts a requester on `conn` (whose peer runs [`serve`](crate::rpc::serve) or similar).
    /// When the connection is lost, waiting requests fail with [`Error::Disconnected`], and
    /// so does every later call.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the reader thread or the random session number cannot be had.
    pub fn new(conn: RpcConnection<Req, Resp, C>) -> Result<Self> {
        let (tx, rx) = conn.split();
        let codec = tx.codec();
        Self::spawn(Some((tx, rx)), None, codec)
    }

    /// Starts the reader thread on `first` and, with a connector, on every later connection.
    pub(crate) fn spawn(
        first: Option<Halves<Req, Resp, C>>,
        connector: Option<Connector<Req, Resp, C>>,
        codec: C,
    ) -> Result<Self> {
        let (keep, limit) = match &connector {
            Some(connector) => (true, connector.outbox),
            None => (false, Limit::NONE),
        };
        let shared = Arc::new(Shared::new(codec, keep, limit)?);
        let reader = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("procwire-rpc-reader".into())
            .spawn(move || reader.run(first, connector))?;
        Ok(Requester {
            handle: Arc::new(Handle { shared }),
        })
    }

    /// Sends `msg` as a one-way message; returns its id.
    ///
    /// Without reconnecting, `Ok` means the message was written (not that it was handled).
    /// A reconnecting requester keeps it until the peer acknowledges it, sending it again
    /// on each new connection until then; [`flush`](Requester::flush) waits for that.
    ///
    /// # Errors
    ///
    /// - [`Error::Encode`] when the codec refuses the message; nothing was sent.
    /// - [`Error::Disconnected`] when the connection is gone (never, when reconnecting), or
    ///   the write error that found it gone.
    /// - When reconnecting, [`Error::Io`] of kind
    ///   [`WouldBlock`](std::io::ErrorKind::WouldBlock) when the outbox is full
    ///   ([`ReconnectBuilder::outbox`](crate::rpc::ReconnectBuilder::outbox)), of kind
    ///   [`InvalidInput`](std::io::ErrorKind::InvalidInput) when this envelope alone is
    ///   larger than its byte bound; nothing was queued, and what was queued before stays.
    pub fn send(&self, msg: Req) -> Result<MsgId> {
        let shared = &self.handle.shared;
        let seq = shared.submit(Kind::Message, None, |id| Envelope::Message {
            id,
            body: msg,
        })?;
        Ok(MsgId {
            session: shared.session,
            seq,
        })
    }

    /// Sends request `req` and waits at most `timeout` for its response.
    ///
    /// # Errors
    ///
    /// - [`Error::Remote`] with the text of the handler's error.
    /// - [`Error::Timeout`] when no response came in time; a response that comes later is
    ///   dropped, and other requests are not affected.
    /// - [`Error::Disconnected`] when the connection was lost first (a reconnecting
    ///   requester instead sends the request again, within the same timeout).
    /// - [`Error::Protocol`] when the peer answered with a file.
    /// - Otherwise as [`send`](Requester::send).
    pub fn request(&self, req: Req, timeout: Duration) -> Result<Resp> {
        self.start(req, timeout)?.wait()
    }

    /// Sends request `req` and returns at once; its response is awaited with
    /// [`Pending::wait`], at most until `timeout` from now.
    ///
    /// # Errors
    ///
    /// As [`send`](Requester::send).
    pub fn start(&self, req: Req, timeout: Duration) -> Result<Pending<Resp>> {
        self.start_kind(Kind::Request, None, timeout, |id| Envelope::Request {
            id,
            body: req,
        })
    }

    /// Sends request `req` with the whole of `file`, as the message right after it; the
    /// handler receives it through [`Call::file`](crate::rpc::Call::file). Waits at most
    /// `timeout` for the response.
    ///
    /// # Errors
    ///
    /// As [`request`](Requester::request), and [`Error::Io`] when the file cannot be read.
    pub fn push_file(&self, req: Req, file: File, timeout: Duration) -> Result<Resp> {
        let push = |id| Envelope::Push { id, body: req };
        self.start_kind(Kind::Request, Some(file), timeout, push)?
            .wait()
    }

    /// Sends request `req`, whose handler answers with a file
    /// ([`Reply::File`](crate::rpc::Reply::File)), and receives that file into `dest`; returns
    /// its length.
    ///
    /// The file is received as by [`Receiver::recv_file`]: a temporary file renamed to
    /// `dest` only when complete, at most `limit` bytes, bounded memory.
    ///
    /// # Errors
    ///
    /// - As [`request`](Requester::request); [`Error::Protocol`] when the peer answered
    ///   with a value instead.
    /// - As [`Receiver::recv_file`] for the file. A file that does not arrive whole ends
    ///   the connection.
    pub fn get_file(
        &self,
        req: Req,
        dest: impl AsRef<Path>,
        limit: u64,
        timeout: Duration,
    ) -> Result<u64> {
        let dest = dest.as_ref().to_path_buf();
        let kind = Kind::File { dest, limit };
        let request = |id| Envelope::Request { id, body: req };
        match self
            .start_kind(kind, None, timeout, request)?
            .wait_answer()?
        {
            Answer::File(len) => Ok(len),
            Answer::Value(_) => Err(Error::Protocol(
                "the peer answered with a value where a file was asked for".into(),
            )),
        }
    }

    fn start_kind(
        &self,
        kind: Kind,
        attachment: Option<File>,
        timeout: Duration,
        make: impl FnOnce(MsgId) -> Envelope<Req, Resp>,
    ) -> Result<Pending<Resp>> {
        let deadline = Instant::now().checked_add(timeout);
        let shared = &self.handle.shared;
        let seq = shared.submit(kind, attachment, make)?;
        Ok(Pending {
            shared: Arc::clone(shared) as Arc<dyn Slots<Resp>>,
            seq,
            deadline,
        })
    }

    /// Waits at most `timeout` until every message sent so far is acknowledged by the peer
    /// (reconnecting) or written (otherwise).
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when some are still waiting; [`Error::Disconnected`] when the
    /// connection is gone for good first.
    pub fn flush(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        if self.handle.shared.wait_acked(deadline) {
            Ok(())
        } else if Instant::now() >= deadline {
            Err(Error::Timeout)
        } else {
            Err(Error::Disconnected)
        }
    }
}

impl<Req, Resp, C> Requester<Req, Resp, C> {
    /// Whether a connection is up now.
    pub fn is_connected(&self) -> bool {
        self.handle.shared.is_connected()
    }

    /// Waits at most `timeout` for a connection; returns whether one is up.
    pub fn wait_connected(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        self.handle.shared.wait_connected(deadline)
    }

    /// How many connections this requester has had (reconnects plus one).
    pub fn connections(&self) -> u64 {
        self.handle.shared.connections()
    }

    /// The random session number in every [`MsgId`] this requester makes.
    pub fn session(&self) -> u64 {
        self.handle.shared.session
    }
}

/// What a [`Pending`] request needs of the requester, whatever its codec.
trait Slots<Resp>: Send + Sync {
    fn wait(&self, seq: u64, deadline: Option<Instant>) -> Result<Answer<Resp>>;
    fn is_answered(&self, seq: u64) -> bool;
    fn abandon(&self, seq: u64);
}

impl<Req, Resp: Send, C: Codec<Envelope<Req, Resp>> + Send> Slots<Resp> for Shared<Req, Resp, C> {
    fn wait(&self, seq: u64, deadline: Option<Instant>) -> Result<Answer<Resp>> {
        Shared::wait(self, seq, deadline)
    }
    fn is_answered(&self, seq: u64) -> bool {
        Shared::is_answered(self, seq)
    }
    fn abandon(&self, seq: u64) {
        Shared::abandon(self, seq);
    }
}

/// A request in flight; made by [`Requester::start`].
///
/// Dropping it abandons the request: its response, if one comes, is dropped. It does not
/// keep the connection open: once every [`Requester`] clone is gone, waiting fails with
/// [`Error::Disconnected`].
#[must_use = "a request's answer is dropped unless waited for"]
pub struct Pending<Resp> {
    shared: Arc<dyn Slots<Resp>>,
    seq: u64,
    deadline: Option<Instant>,
}

impl<Resp> Pending<Resp> {
    /// Waits for the response until the request's deadline.
    ///
    /// # Errors
    ///
    /// As [`Requester::request`].
    pub fn wait(self) -> Result<Resp> {
        match self.wait_answer()? {
            Answer::Value(v) => Ok(v),
            Answer::File(_) => Err(Error::Protocol(
                "the peer answered with a file where a value was asked for".into(),
            )),
        }
    }

    fn wait_answer(self) -> Result<Answer<Resp>> {
        self.shared.wait(self.seq, self.deadline)
    }

    /// Whether [`wait`](Pending::wait) would return at once (with the response or an error
    /// other than a timeout).
    pub fn is_ready(&self) -> bool {
        self.shared.is_answered(self.seq)
    }
}

impl<Resp> Drop for Pending<Resp> {
    fn drop(&mut self) {
        self.shared.abandon(self.seq);
    }
}

impl<Resp> fmt::Debug for Pending<Resp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pending")
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}
