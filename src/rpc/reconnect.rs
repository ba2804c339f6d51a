//! [`ReconnectBuilder`]: a [`Requester`] that survives its connection.
//!
//! The requester keeps every message until the peer acknowledges it and every request until
//! it is answered (or its caller stops waiting). Its reader thread notices a lost connection
//! (end of stream, reset, a failed write), connects again through the [`ClientBuilder`] —
//! authenticating again when it has a key — with exponential backoff, and writes what it
//! kept, in its original order, before anything newer.
//!
//! What is resent and what may arrive twice, and the bound on what it keeps, are
//! documented on [`ReconnectBuilder`].

use std::time::Duration;

use crate::address::Address;
use crate::client::ClientBuilder;
use crate::codec::api::Codec;
use crate::error::{Error, Result};
use crate::rpc::outbox::Limit;
use crate::rpc::{Envelope, Requester};
#[cfg(feature = "postcard")]
use crate::Postcard;

/// The default first pause between reconnection attempts: 50 ms.
pub const DEFAULT_FIRST_BACKOFF: Duration = Duration::from_millis(50);

/// The default longest pause between reconnection attempts: 5 seconds.
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Options for a reconnecting [`Requester`].
///
/// The requester keeps every message until the peer acknowledges it and every request
/// until it is answered (or its caller stops waiting). Its reader thread notices a lost
/// connection (end of stream, reset, a failed write), connects again through the
/// [`ClientBuilder`] — authenticating again when it has a key — with exponential backoff,
/// and writes what it kept, in its original order, before anything newer.
///
/// # Delivery: at least once
///
/// A message or request written before the connection dropped may or may not have reached
/// the server's handler: the connection can fail after the handler ran but before the
/// acknowledgement or response came back. It is sent again on the next connection, so the
/// server may see it **twice** (or more, over several drops). Exactly these are resent:
///
/// - messages not yet acknowledged (`Ack`, sent by [`serve`](crate::rpc::serve) once the
///   handler returned);
/// - requests not yet answered whose caller still waits ([`request`](Requester::request)
///   within its timeout, or a live [`Pending`](crate::rpc::Pending)).
///
/// Every delivery of one message carries the same [`MsgId`](crate::rpc::MsgId): the requester's
/// random session number and a sequence number. A server that must not act twice keeps the
/// ids it has handled (per session, the highest sequence number and the few above it
/// suffice, as ids grow) and skips a repeated message — for a repeated request it should
/// answer again (the first answer may be what was lost), from a cache of recent results or
/// by handling it again when that is harmless. A restarted client process draws a new
/// session number, so its ids never collide with those of its previous life.
///
/// # The outbox: bounded
///
/// What the requester keeps — messages until acknowledged, requests until answered or
/// given up — waits in memory, also while it is disconnected. That outbox holds at most
/// [`DEFAULT_OUTBOX_MESSAGES`](ReconnectBuilder::DEFAULT_OUTBOX_MESSAGES) messages and
/// requests, whose encoded envelopes hold at most
/// [`DEFAULT_OUTBOX_BYTES`](ReconnectBuilder::DEFAULT_OUTBOX_BYTES) bytes;
/// [`outbox`](ReconnectBuilder::outbox) changes both. A call that does not fit fails at
/// once with [`Error::Io`] of kind [`WouldBlock`](std::io::ErrorKind::WouldBlock) and
/// queues nothing: it never blocks, and never drops what is already queued. Room comes
/// back as the peer acknowledges and answers; [`Requester::flush`] waits for that.
/// Attached files ([`push_file`](Requester::push_file)) count as one entry each, not by
/// their size: they stay on disk.
///
/// Dropping the last requester clone abandons what is still unacknowledged;
/// [`Requester::flush`] waits for it first.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use procwire::{Client, Listener};
/// use procwire::rpc::{ReconnectBuilder, RpcConnection, serve};
///
/// let listener = Listener::bind("127.0.0.1:0")?;
/// let requester = ReconnectBuilder::new(Client::builder(), listener.local_addr())?
///     .backoff(Duration::from_millis(10), Duration::from_millis(200))
///     .start::<u32, u32>()?;
/// let id = requester.send(7)?; // queued until connected, kept until acknowledged
/// let conn: RpcConnection<u32, u32> = listener.accept()?;
/// let server = std::thread::spawn(move || serve(&conn, |call| Ok::<_, String>(call.body * 2)));
/// assert_eq!(requester.request(21, Duration::from_secs(5))?, 42);
/// requester.flush(Duration::from_secs(5))?;
/// assert_eq!(id.seq, 1);
/// drop(requester);
/// server.join().unwrap()?;
/// # Ok::<(), procwire::Error>(())
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `start` is called"]
pub struct ReconnectBuilder {
    client: ClientBuilder,
    addr: Address,
    first_backoff: Duration,
    max_backoff: Duration,
    outbox: Limit,
}

impl ReconnectBuilder {
    /// The default bound on the messages and requests a requester keeps: 10,000.
    pub const DEFAULT_OUTBOX_MESSAGES: usize = 10_000;

    /// The default bound on the bytes of the encoded envelopes a requester keeps: 16 MiB.
    pub const DEFAULT_OUTBOX_BYTES: usize = 16 << 20;

    /// Connects (and reconnects) to `addr` with the options of `client`: key, timeouts,
    /// TCP keepalive, maximum message size. Keep its connect timeout short: the reader
    /// thread notices that its requester is gone only between attempts.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidAddress`] when `addr` does not parse.
    pub fn new<A>(client: ClientBuilder, addr: A) -> Result<Self>
    where
        A: TryInto<Address>,
        Error: From<A::Error>,
    {
        Ok(ReconnectBuilder {
            client,
            addr: addr.try_into()?,
            first_backoff: DEFAULT_FIRST_BACKOFF,
            max_backoff: DEFAULT_MAX_BACKOFF,
            outbox: Limit {
                messages: Self::DEFAULT_OUTBOX_MESSAGES,
                bytes: Self::DEFAULT_OUTBOX_BYTES,
            },
        })
    }

    /// Bounds what the requester keeps (its outbox, connected or not): at most `messages`
    /// messages and requests, whose encoded envelopes hold at most `bytes` bytes
    /// ([`DEFAULT_OUTBOX_MESSAGES`](ReconnectBuilder::DEFAULT_OUTBOX_MESSAGES),
    /// [`DEFAULT_OUTBOX_BYTES`](ReconnectBuilder::DEFAULT_OUTBOX_BYTES) unless set). A
    /// call past either bound fails with [`Error::Io`] of kind
    /// [`WouldBlock`](std::io::ErrorKind::WouldBlock); see
    /// [the outbox](ReconnectBuilder#the-outbox-bounded).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::ErrorKind;
    /// use procwire::{Client, Error};
    /// use procwire::rpc::ReconnectBuilder;
    ///
    /// # let dir = std::env::temp_dir().join(format!("procwire-doc-ob-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let nobody_listens = dir.join("down.sock");
    /// let requester = ReconnectBuilder::new(Client::builder(), nobody_listens.as_path())?
    ///     .outbox(2, 1 << 20)
    ///     .start::<u32, u32>()?;
    /// requester.send(1)?;
    /// requester.send(2)?; // both wait for a server
    /// let Err(Error::Io(full)) = requester.send(3) else { panic!("queued past the bound") };
    /// assert_eq!(full.kind(), ErrorKind::WouldBlock);
    /// # drop(requester);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn outbox(mut self, messages: usize, bytes: usize) -> Self {
        self.outbox = Limit { messages, bytes };
        self
    }

    /// The pause after the first failed attempt, doubled after each further failure up to
    /// `max`, plus up to a quarter of it at random so that many clients do not retry in
    /// step ([`DEFAULT_FIRST_BACKOFF`], [`DEFAULT_MAX_BACKOFF`] unless set).
    pub fn backoff(mut self, first: Duration, max: Duration) -> Self {
        self.first_backoff = first;
        self.max_backoff = max.max(first);
        self
    }

    /// Starts the requester with the default codec; see
    /// [`start_with`](ReconnectBuilder::start_with).
    ///
    /// # Errors
    ///
    /// As [`start_with`](ReconnectBuilder::start_with).
    #[cfg(feature = "postcard")]
    pub fn start<Req, Resp>(self) -> Result<Requester<Req, Resp>>
    where
        Req: 'static,
        Resp: Send + 'static,
        Postcard: Codec<Envelope<Req, Resp>>,
    {
        self.start_with(Postcard)
    }

    /// Starts the requester: it returns at once and connects in the background, the first
    /// attempt at once. Calls made before the connection is up are queued.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the reader thread cannot be started.
    pub fn start_with<Req, Resp, C>(self, codec: C) -> Result<Requester<Req, Resp, C>>
    where
        Req: 'static,
        Resp: Send + 'static,
        C: Codec<Envelope<Req, Resp>> + Clone + Send + 'static,
    {
        let ReconnectBuilder {
            client,
            addr,
            first_backoff,
            max_backoff,
            outbox,
        } = self;
        let conn_codec = codec.clone();
        let mut attempt = 0u64;
        let connect = move || {
            attempt += 1;
            let conn = client.connect_with(addr.clone(), conn_codec.clone());
            crate::trace::reconnect(&addr, attempt, conn.as_ref().err());
            conn
        };
        let connector = crate::rpc::Connector {
            connect: Box::new(connect),
            first_backoff,
            max_backoff,
            outbox,
        };
        Requester::spawn(None, Some(connector), codec)
    }
}
