//! The answering side of the rpc protocol: [`serve`] and [`serve_concurrent`].

use std::fmt;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, PoisonError};

use super::core::lock;
use super::{Envelope, MsgId, RemoteError, Reply, RpcConnection};
use crate::codec::api::Codec;
use crate::error::{Error, Result};

/// One incoming message or request, as a handler sees it.
#[derive(Debug)]
#[non_exhaustive]
pub struct Call<'a, Req> {
    /// Its id: the same when a reconnecting requester delivers it again, so a handler can
    /// recognise a duplicate.
    pub id: MsgId,
    /// The message or request.
    pub body: Req,
    /// The file pushed with it ([`Requester::push_file`](crate::rpc::Requester::push_file)),
    /// to be received by the handler; one that the handler leaves is read and dropped.
    pub file: Option<Attachment<'a>>,
}

/// Where an attached file goes.
enum Target<'b> {
    Path(&'b Path),
    Writer(&'b mut dyn Write),
}

/// A file pushed with a request, not yet received; see [`Call::file`].
pub struct Attachment<'a> {
    recv: &'a mut dyn FnMut(Target<'_>, u64) -> Result<u64>,
}

impl Attachment<'_> {
    /// Receives the file into `dest`, at most `limit` bytes; see
    /// [`Receiver::recv_file`](crate::Receiver::recv_file).
    ///
    /// # Errors
    ///
    /// As [`Receiver::recv_file`](crate::Receiver::recv_file).
    pub fn save(self, dest: impl AsRef<Path>, limit: u64) -> Result<u64> {
        (self.recv)(Target::Path(dest.as_ref()), limit)
    }

    /// Writes the file's bytes to `out`, at most `limit` bytes; see
    /// [`Receiver::recv_to_writer`](crate::Receiver::recv_to_writer).
    ///
    /// # Errors
    ///
    /// As [`Receiver::recv_to_writer`](crate::Receiver::recv_to_writer).
    pub fn write_to(self, out: &mut impl Write, limit: u64) -> Result<u64> {
        (self.recv)(Target::Writer(out), limit)
    }
}

impl fmt::Debug for Attachment<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attachment").finish_non_exhaustive()
    }
}

/// Answers the requests and messages that arrive on `conn`, one at a time, until the peer
/// closes the connection.
///
/// For each one it calls `handler` and sends back what it returns: a value (or a
/// [`Reply::File`]) as the response, an error as a [`RemoteError`] with the error's
/// `Display` text, which the requester sees as [`Error::Remote`]; the loop carries on.
/// A one-way message is acknowledged once its handler returned (its result goes nowhere).
/// A message that does not decode is skipped. Responses and acknowledgements leave in the
/// order the requests came; see [`serve_concurrent`] for handlers on several threads.
///
/// # Errors
///
/// A receive error other than [`Error::Disconnected`] and [`Error::Decode`] (for example
/// [`Error::Truncated`]: the peer vanished inside a message), or a send error.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use procwire::rpc::{Envelope, Requester, serve};
///
/// let (client, server) = procwire::duplex::<Envelope<String, usize>, Envelope<String, usize>>()?;
/// std::thread::spawn(move || serve(&server, |call| Ok::<_, String>(call.body.len())));
/// let requester = Requester::new(client)?;
/// assert_eq!(requester.request("four".into(), Duration::from_secs(5))?, 4);
/// # Ok::<(), procwire::Error>(())
/// ```
pub fn serve<Req, Resp, C, R, E>(
    conn: &RpcConnection<Req, Resp, C>,
    mut handler: impl FnMut(Call<'_, Req>) -> Result<R, E>,
) -> Result<()>
where
    C: Codec<Envelope<Req, Resp>>,
    R: Into<Reply<Resp>>,
    E: fmt::Display,
{
    while let Some(envelope) = next_call(conn)? {
        let (id, body, reply, push) = match envelope {
            Envelope::Message { id, body } => (id, body, false, false),
            Envelope::Request { id, body } => (id, body, true, false),
            Envelope::Push { id, body } => (id, body, true, true),
            _ => continue,
        };
        let result = call_handler(conn, id, body, push, &mut handler)?;
        answer(conn, id, reply, result)?;
    }
    Ok(())
}

/// The next envelope; `None` when the peer closed the connection. Undecodable ones are
/// skipped.
fn next_call<Req, Resp, C>(
    conn: &RpcConnection<Req, Resp, C>,
) -> Result<Option<Envelope<Req, Resp>>>
where
    C: Codec<Envelope<Req, Resp>>,
{
    loop {
        match conn.recv() {
            Ok(envelope) => return Ok(Some(envelope)),
            Err(Error::Disconnected) => return Ok(None),
            Err(Error::Decode(_)) => {}
            Err(e) => return Err(e),
        }
    }
}

/// Calls `handler`, handing it the file that follows a `Push`; a file it leaves is read
/// and dropped, so the stream stays aligned.
fn call_handler<Req, Resp, C, T>(
    conn: &RpcConnection<Req, Resp, C>,
    id: MsgId,
    body: Req,
    push: bool,
    handler: impl FnOnce(Call<'_, Req>) -> T,
) -> Result<T> {
    if !push {
        return Ok(handler(Call {
            id,
            body,
            file: None,
        }));
    }
    let mut taken = false;
    let mut recv = |target: Target<'_>, limit: u64| {
        taken = true;
        match target {
            Target::Path(dest) => conn.recv_file(dest, limit),
            Target::Writer(mut out) => conn.recv_to_writer(&mut out, limit),
        }
    };
    let file = Some(Attachment { recv: &mut recv });
    let out = handler(Call { id, body, file });
    if !taken {
        conn.recv_to_writer(&mut io::sink(), conn.max_message_size())?;
    }
    Ok(out)
}

/// Sends the answer to `id`: an acknowledgement for a message, otherwise the handler's
/// result.
fn answer<Req, Resp, C, R, E>(
    conn: &RpcConnection<Req, Resp, C>,
    id: MsgId,
    reply: bool,
    result: Result<R, E>,
) -> Result<()>
where
    C: Codec<Envelope<Req, Resp>>,
    R: Into<Reply<Resp>>,
    E: fmt::Display,
{
    if !reply {
        return conn.send(&Envelope::Ack { id });
    }
    let result = match result.map(Into::into) {
        Ok(Reply::File(file)) => return send_file_reply(conn, id, &file),
        Ok(Reply::Value(value)) => Ok(value),
        Err(e) => Err(RemoteError::new(e)),
    };
    match conn.send(&Envelope::Response { id, result }) {
        Err(Error::Encode(e)) => {
            let why = RemoteError::new(format!("the response could not be encoded: {e}"));
            conn.send(&Envelope::Response {
                id,
                result: Err(why),
            })
        }
        other => other,
    }
}

fn send_file_reply<Req, Resp, C>(
    conn: &RpcConnection<Req, Resp, C>,
    id: MsgId,
    file: &File,
) -> Result<()>
where
    C: Codec<Envelope<Req, Resp>>,
{
    if let Err(e) = file.metadata() {
        let why = RemoteError::new(format!("cannot read the file: {e}"));
        return conn.send(&Envelope::Response {
            id,
            result: Err(why),
        });
    }
    conn.send(&Envelope::File { id })?;
    conn.send_file(file).map(drop)
}

/// As [`serve`], with handlers running on `workers` threads (at least one): responses leave
/// in the order handlers finish, so a slow request does not hold up the others.
///
/// Requests with a pushed file are handled on the receiving thread, which must read the
/// file before the next request.
///
/// It returns once the receiving thread and every worker have stopped, and it never
/// outlives a peer that is gone: when the peer closes the connection, the workers answer
/// what was already queued, then stop. When sending an answer fails (for example the peer
/// exited without reading its answers), that worker shuts the connection down in both
/// directions (sockets; a FIFO pair ends when the peer closes its end), the other workers
/// take no new request, and the receiving thread stops at once, also when it was waiting
/// for room in the full queue of requests or for the next message.
///
/// # Errors
///
/// The first failure, whichever thread met it:
///
/// - a receive error other than [`Error::Disconnected`] and [`Error::Decode`] (for
///   example [`Error::Truncated`]: the peer vanished inside a message);
/// - a send error other than one that means the peer is gone
///   ([`is_disconnected`](Error::is_disconnected)), which ends the loop with `Ok`.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use procwire::rpc::{Envelope, Requester, serve_concurrent};
///
/// let (client, server) = procwire::duplex::<Envelope<u64, u64>, Envelope<u64, u64>>()?;
/// std::thread::spawn(move || {
///     serve_concurrent(&server, 4, |call| {
///         std::thread::sleep(Duration::from_millis(call.body));
///         Ok::<_, String>(call.body)
///     })
/// });
/// let requester = Requester::new(client)?;
/// let slow = requester.start(300, Duration::from_secs(5))?;
/// // The quick one is answered while the slow one is still being handled.
/// assert_eq!(requester.request(1, Duration::from_millis(200))?, 1);
/// assert_eq!(slow.wait()?, 300);
/// # Ok::<(), procwire::Error>(())
/// ```
pub fn serve_concurrent<Req, Resp, C, R, E>(
    conn: &RpcConnection<Req, Resp, C>,
    workers: usize,
    handler: impl Fn(Call<'_, Req>) -> Result<R, E> + Sync,
) -> Result<()>
where
    Req: Send,
    C: Codec<Envelope<Req, Resp>> + Send,
    R: Into<Reply<Resp>>,
    E: fmt::Display,
{
    let workers = workers.max(1);
    let (jobs, queue) = mpsc::sync_channel::<Job<Req>>(workers * 2);
    // Each worker holds the queue; when the last one stops, the queue is dropped and a
    // send of the receiving thread fails, even one already waiting for room.
    let queue = Arc::new(Mutex::new(queue));
    let state = Shared {
        write: Mutex::new(()),
        stopped: AtomicBool::new(false),
        first: Mutex::new(None),
    };
    let (shared, handler) = (&state, &handler);
    std::thread::scope(move |s| {
        for _ in 0..workers {
            let queue = Arc::clone(&queue);
            s.spawn(move || work(conn, &queue, shared, handler));
        }
        drop(queue);
        let read = read_calls(conn, jobs, &shared.write, handler);
        shared.end(read);
    });
    let first = state.first.into_inner();
    first
        .unwrap_or_else(PoisonError::into_inner)
        .unwrap_or(Ok(()))
}

/// A call for a worker: its id, its body, whether it wants an answer (a request).
type Job<Req> = (MsgId, Req, bool);

/// What the threads of [`serve_concurrent`] share.
struct Shared {
    /// Held while an answer is written, so that frames never interleave.
    write: Mutex<()>,
    /// Set when a worker's send failed: the other workers take no new job.
    stopped: AtomicBool,
    /// The outcome, decided by the first thread that ends with one; later failures are
    /// its consequences.
    first: Mutex<Option<Result<()>>>,
}

impl Shared {
    /// Records `outcome` unless an earlier one was recorded.
    fn end(&self, outcome: Result<()>) {
        lock(&self.first).get_or_insert(outcome);
    }

    /// A worker's send failed: stop the others, and shut the connection down so that the
    /// receiving thread, if it waits for a message, wakes with the end of the stream.
    fn send_failed<T: AsFd>(&self, conn: &T, e: Error) {
        self.end(if e.is_disconnected() { Ok(()) } else { Err(e) });
        self.stopped.store(true, Ordering::Release);
        // Fails harmlessly (ENOTSOCK) on a FIFO pair.
        let _ = rustix::net::shutdown(conn, rustix::net::Shutdown::Both);
    }
}

/// A worker of [`serve_concurrent`]: handles queued calls and answers them until the queue
/// is closed or a send fails.
fn work<Req, Resp, C, R, E>(
    conn: &RpcConnection<Req, Resp, C>,
    queue: &Mutex<mpsc::Receiver<Job<Req>>>,
    shared: &Shared,
    handler: &impl Fn(Call<'_, Req>) -> Result<R, E>,
) where
    C: Codec<Envelope<Req, Resp>>,
    R: Into<Reply<Resp>>,
    E: fmt::Display,
{
    loop {
        // Not in a `while let`: the lock must be released before handling.
        let job = lock(queue).recv();
        let Ok((id, body, reply)) = job else { return };
        if shared.stopped.load(Ordering::Acquire) {
            return;
        }
        let file = None;
        let result = handler(Call { id, body, file });
        let _write = lock(&shared.write);
        if let Err(e) = answer(conn, id, reply, result) {
            shared.send_failed(conn, e);
            return;
        }
    }
}

/// The receiving thread of [`serve_concurrent`]: queues calls for the workers, handles
/// pushes itself; ends when the peer closes the connection or every worker stopped.
fn read_calls<Req, Resp, C, R, E>(
    conn: &RpcConnection<Req, Resp, C>,
    jobs: mpsc::SyncSender<Job<Req>>,
    write: &Mutex<()>,
    handler: &impl Fn(Call<'_, Req>) -> Result<R, E>,
) -> Result<()>
where
    C: Codec<Envelope<Req, Resp>>,
    R: Into<Reply<Resp>>,
    E: fmt::Display,
{
    while let Some(envelope) = next_call(conn)? {
        let job = match envelope {
            Envelope::Message { id, body } => (id, body, false),
            Envelope::Request { id, body } => (id, body, true),
            Envelope::Push { id, body } => {
                let result = call_handler(conn, id, body, true, handler)?;
                let _write = lock(write);
                answer(conn, id, true, result)?;
                continue;
            }
            _ => continue,
        };
        if jobs.send(job).is_err() {
            break; // every worker stopped on a send error
        }
    }
    Ok(())
}
