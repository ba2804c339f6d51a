//! The answering side of the rpc protocol: [`serve`] and [`serve_concurrent`].

use std::fmt;
use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::sync::{mpsc, Mutex};

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
/// # Errors
///
/// As [`serve`].
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
    let (jobs, queue) = mpsc::sync_channel::<(MsgId, Req, bool)>(workers.max(1) * 2);
    let (queue, write, failed) = (Mutex::new(queue), Mutex::new(()), Mutex::new(None));
    let (queue, write, failed, handler) = (&queue, &write, &failed, &handler);
    let read = std::thread::scope(move |s| {
        for _ in 0..workers.max(1) {
            s.spawn(move || {
                loop {
                    // Not in a `while let`: the lock must be released before handling.
                    let job = lock(queue).recv();
                    let Ok((id, body, reply)) = job else { return };
                    let result = handler(Call {
                        id,
                        body,
                        file: None,
                    });
                    let _write = lock(write);
                    if let Err(e) = answer(conn, id, reply, result) {
                        lock(failed).get_or_insert(e);
                        return;
                    }
                }
            });
        }
        read_calls(conn, &jobs, write, handler)
    });
    read?;
    let failed = lock(failed).take();
    match failed {
        Some(e) if !e.is_disconnected() => Err(e),
        _ => Ok(()),
    }
}

/// The receiving thread of [`serve_concurrent`]: queues calls for the workers, handles
/// pushes itself.
fn read_calls<Req, Resp, C, R, E>(
    conn: &RpcConnection<Req, Resp, C>,
    jobs: &mpsc::SyncSender<(MsgId, Req, bool)>,
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
