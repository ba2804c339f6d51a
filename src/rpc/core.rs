//! The state a [`Requester`](super::Requester) shares with its reader thread.
//!
//! - `state` (one mutex, one condvar): the entries of unanswered requests and, when
//!   reconnecting, unacknowledged messages, keyed by sequence number; the queue of entries
//!   not yet written on the current connection; whether the connection is up.
//! - `link`: the sending half of the current connection. Whoever holds it writes every
//!   queued entry in queue order, so frames never interleave and a resend after a
//!   reconnect goes out before anything newer.
//! - The reader thread owns the receiving half: it fills answers, receives files, and
//!   (when reconnecting) connects again with backoff.
//!
//! Lock order: `codec`, then `link`, then `state`; `state` is never held while writing or
//! reading the connection, so a slow peer cannot keep the reader from delivering answers.

use std::collections::VecDeque;
use std::fs::File;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::outbox::{Entry, Limit, Outbox, Outgoing};
use super::{Envelope, MsgId, RpcConnection};
use crate::channel::{Receiver, Sender};
use crate::codec::api::Codec;
use crate::error::{Error, Result};

/// How often the reader thread looks whether its requester is gone.
const POLL: Duration = Duration::from_millis(50);

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What an entry waits for.
#[derive(Debug, Clone)]
pub(super) enum Kind {
    /// A one-way message: an `Ack` (only kept when reconnecting).
    Message,
    /// A request: a `Response`.
    Request,
    /// A request whose answer is a file, received into `dest`.
    File { dest: PathBuf, limit: u64 },
}

/// A request's outcome.
pub(super) enum Answer<Resp> {
    Value(Resp),
    File(u64),
}

struct State<Resp> {
    next_seq: u64,
    entries: Outbox<Resp>,
    /// Entries to write on the current connection, in order.
    unsent: VecDeque<u64>,
    connected: bool,
    /// Without reconnecting: the connection is gone for good.
    gone: bool,
    closing: bool,
    connections: u64,
}

/// The two halves of an rpc connection.
pub(super) type Halves<Req, Resp, C> = (
    Sender<Envelope<Req, Resp>, C>,
    Receiver<Envelope<Req, Resp>, C>,
);

/// How to make a new connection, for a reconnecting requester.
pub(crate) struct Connector<Req, Resp, C> {
    pub(crate) connect: Box<dyn FnMut() -> Result<RpcConnection<Req, Resp, C>> + Send>,
    pub(crate) first_backoff: Duration,
    pub(crate) max_backoff: Duration,
    /// How much the requester keeps, connected or not.
    pub(crate) outbox: Limit,
}

pub(super) struct Shared<Req, Resp, C> {
    pub(super) session: u64,
    /// Whether entries survive a lost connection (reconnecting).
    keep: bool,
    codec: Mutex<(C, Vec<u8>)>,
    state: Mutex<State<Resp>>,
    cv: Condvar,
    link: Mutex<Option<Sender<Envelope<Req, Resp>, C>>>,
}

impl<Req, Resp, C> Shared<Req, Resp, C> {
    /// `keep`: entries survive a lost connection, within `limit`.
    pub(super) fn new(codec: C, keep: bool, limit: Limit) -> Result<Self> {
        let mut rnd = [0u8; 8];
        getrandom::fill(&mut rnd).map_err(|e| Error::Io(std::io::Error::other(e.to_string())))?;
        Ok(Shared {
            session: u64::from_ne_bytes(rnd),
            keep,
            codec: Mutex::new((codec, Vec::new())),
            state: Mutex::new(State {
                next_seq: 1,
                entries: Outbox::new(limit),
                unsent: VecDeque::new(),
                connected: false,
                gone: false,
                closing: false,
                connections: 0,
            }),
            cv: Condvar::new(),
            link: Mutex::new(None),
        })
    }

    /// Encodes the envelope `make` builds for the next id, queues it and writes what is
    /// queued; returns the entry's sequence number.
    pub(super) fn submit(
        &self,
        kind: Kind,
        attachment: Option<File>,
        make: impl FnOnce(MsgId) -> Envelope<Req, Resp>,
    ) -> Result<u64>
    where
        C: Codec<Envelope<Req, Resp>>,
    {
        let mut codec = lock(&self.codec);
        let seq = {
            let st = lock(&self.state);
            if st.gone || st.closing {
                return Err(Error::Disconnected);
            }
            st.entries.check_room()?;
            st.next_seq
        };
        let (c, buf) = &mut *codec;
        buf.clear();
        let id = MsgId {
            session: self.session,
            seq,
        };
        c.encode(&make(id), buf)
            .map_err(|e| Error::Encode(Box::new(e)))?;
        let entry = Entry {
            kind,
            payload: Some(Arc::new(buf.clone())),
            attachment: attachment.map(Arc::new),
            answer: None,
        };
        let mut st = lock(&self.state);
        st.entries.insert(seq, entry)?;
        st.next_seq += 1;
        st.unsent.push_back(seq);
        drop(st);
        drop(codec);
        self.flush().inspect_err(|_| self.abandon(seq))?;
        Ok(seq)
    }

    /// Writes every queued entry on the current connection, if there is one.
    ///
    /// Errors: the write error, when not reconnecting (the connection is then lost).
    pub(super) fn flush(&self) -> Result<()> {
        let mut link = lock(&self.link);
        while let Some(tx) = link.as_ref() {
            let Some((payload, attachment)) = self.next_unsent() else {
                return Ok(());
            };
            let sent = tx
                .send_bytes(&payload[..])
                .and_then(|()| match &attachment {
                    Some(file) => tx.send_file(file).map(drop),
                    None => Ok(()),
                });
            if let Err(e) = sent {
                // Wake the reader thread, which then handles the loss.
                if let Some(tx) = link.take() {
                    let _ = rustix::net::shutdown(&tx, rustix::net::Shutdown::Both);
                }
                return if self.keep { Ok(()) } else { Err(e) };
            }
        }
        Ok(())
    }

    /// Takes the next queued entry's payload (a copy of the handle when kept for resending).
    fn next_unsent(&self) -> Option<Outgoing> {
        let mut st = lock(&self.state);
        while let Some(seq) = st.unsent.pop_front() {
            let Some(entry) = st.entries.get(seq) else {
                continue; // answered or abandoned meanwhile
            };
            let message = matches!(entry.kind, Kind::Message);
            let item = if self.keep {
                entry.payload.clone().zip(Some(entry.attachment.clone()))
            } else {
                st.entries.take_payload(seq)
            };
            if !self.keep && message {
                st.entries.remove(seq);
            }
            if item.is_some() {
                return item;
            }
        }
        None
    }

    /// Waits for the answer of entry `seq` until `deadline`; the entry is gone afterwards.
    pub(super) fn wait(&self, seq: u64, deadline: Option<Instant>) -> Result<Answer<Resp>> {
        let mut st = lock(&self.state);
        loop {
            match st.entries.get_mut(seq).map(|e| e.answer.take()) {
                None => return Err(Error::Disconnected),
                Some(Some(answer)) => {
                    st.entries.remove(seq);
                    return answer;
                }
                Some(None) => {}
            }
            let now = Instant::now();
            st = match deadline {
                Some(d) if now >= d => {
                    st.entries.remove(seq);
                    return Err(Error::Timeout);
                }
                Some(d) => {
                    self.cv
                        .wait_timeout(st, d - now)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
                None => self.cv.wait(st).unwrap_or_else(PoisonError::into_inner),
            };
        }
    }

    /// Whether entry `seq` has its answer (or is gone).
    pub(super) fn is_answered(&self, seq: u64) -> bool {
        lock(&self.state)
            .entries
            .get(seq)
            .is_none_or(|e| e.answer.is_some())
    }

    /// Forgets entry `seq`: its answer, if one comes, is dropped.
    pub(super) fn abandon(&self, seq: u64) {
        lock(&self.state).entries.remove(seq);
    }

    /// Waits until no message is waiting for its acknowledgement (or, without reconnecting,
    /// to be written); `false` when `deadline` passed first.
    pub(super) fn wait_acked(&self, deadline: Instant) -> bool {
        let mut st = lock(&self.state);
        loop {
            let busy = st.entries.has_messages();
            let now = Instant::now();
            if !busy || st.gone || st.closing {
                return !busy;
            }
            if now >= deadline {
                return false;
            }
            st = self
                .cv
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    pub(super) fn is_connected(&self) -> bool {
        lock(&self.state).connected
    }

    pub(super) fn connections(&self) -> u64 {
        lock(&self.state).connections
    }

    /// Waits until connected; `false` when `deadline` passed first or it never will be.
    pub(super) fn wait_connected(&self, deadline: Instant) -> bool {
        let mut st = lock(&self.state);
        loop {
            let now = Instant::now();
            if st.connected || st.gone || st.closing || now >= deadline {
                return st.connected;
            }
            st = self
                .cv
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// The requester is gone: stop the reader thread and fail whatever still waits.
    pub(super) fn close(&self) {
        self.fail_all(|st| st.closing = true);
        if let Ok(mut link) = self.link.try_lock() {
            if let Some(tx) = link.take() {
                let _ = rustix::net::shutdown(&tx, rustix::net::Shutdown::Both);
            }
        }
    }

    /// Applies `mark` to the state, then fails every waiting request with `Disconnected`.
    fn fail_all(&self, mark: impl FnOnce(&mut State<Resp>)) {
        let mut st = lock(&self.state);
        mark(&mut st);
        st.connected = false;
        st.unsent.clear();
        st.entries.drop_messages();
        for e in st.entries.entries_mut() {
            e.answer.get_or_insert(Err(Error::Disconnected));
        }
        drop(st);
        self.cv.notify_all();
    }
}

impl<Req, Resp, C> Shared<Req, Resp, C>
where
    Resp: Send,
    C: Codec<Envelope<Req, Resp>> + Clone + Send,
{
    /// The reader thread: serves `first`, then (when reconnecting) one connection after
    /// another, until the requester is gone.
    pub(super) fn run(
        &self,
        mut next: Option<Halves<Req, Resp, C>>,
        mut connector: Option<Connector<Req, Resp, C>>,
    ) {
        loop {
            let halves = match (next.take(), connector.as_mut()) {
                (Some(halves), _) => halves,
                (None, Some(connector)) => match self.reconnect(connector) {
                    Some(conn) => conn.split(),
                    None => return,
                },
                (None, None) => return,
            };
            let rx = self.install(halves);
            self.serve_connection(&rx);
            if !self.keep {
                self.fail_all(|st| st.gone = true);
                return;
            }
            self.lost();
        }
    }

    /// Makes `conn` the current connection and queues every entry not yet answered for it,
    /// in order; returns its receiving half.
    fn install(&self, (tx, rx): Halves<Req, Resp, C>) -> Receiver<Envelope<Req, Resp>, C> {
        let mut link = lock(&self.link);
        *link = Some(tx);
        let mut st = lock(&self.state);
        st.connected = true;
        st.connections += 1;
        st.unsent = st.entries.seqs().collect();
        drop(st);
        drop(link);
        self.cv.notify_all();
        rx
    }

    /// Writes what [`install`](Shared::install) queued on a thread of its own while this
    /// one reads, until the connection is lost or the requester is gone. Written here, a
    /// long backlog would deadlock with a peer that answers as it reads: the peer would
    /// wait for this thread to read its answers, this thread for the peer to read.
    fn serve_connection(&self, rx: &Receiver<Envelope<Req, Resp>, C>) {
        std::thread::scope(|s| {
            // A write error shows as a lost connection to the reader.
            let backlog = std::thread::Builder::new()
                .name("procwire-rpc-resend".into())
                .spawn_scoped(s, || drop(self.flush()));
            if backlog.is_err() {
                let _ = self.flush(); // no thread: write it here, as best we can
            }
            self.read_until_lost(rx);
            // Wake a backlog write that still waits for a peer that does not read.
            let _ = rustix::net::shutdown(rx, rustix::net::Shutdown::Both);
        });
    }

    /// The connection is lost: every entry goes out again on the next one.
    fn lost(&self) {
        *lock(&self.link) = None;
        let mut st = lock(&self.state);
        st.connected = false;
        st.unsent.clear();
        drop(st);
        self.cv.notify_all();
    }

    /// Connects with exponential backoff (with up to 25% jitter) until it works or the
    /// requester is gone (`None`).
    fn reconnect(
        &self,
        connector: &mut Connector<Req, Resp, C>,
    ) -> Option<RpcConnection<Req, Resp, C>> {
        let mut pause = connector.first_backoff;
        let mut noise = self.session | 1;
        loop {
            if lock(&self.state).closing {
                return None;
            }
            if let Ok(conn) = (connector.connect)() {
                return Some(conn);
            }
            noise ^= noise << 13;
            noise ^= noise >> 7;
            noise ^= noise << 17;
            let jitter = pause.mul_f64((noise % 1024) as f64 / 4096.0);
            let st = lock(&self.state);
            if st.closing {
                return None;
            }
            drop(self.cv.wait_timeout(st, pause + jitter));
            pause = (pause * 2).min(connector.max_backoff);
        }
    }

    /// Receives and delivers envelopes until the connection fails or the requester is gone.
    fn read_until_lost(&self, rx: &Receiver<Envelope<Req, Resp>, C>) {
        loop {
            match rx.recv_timeout(POLL) {
                Ok(envelope) => {
                    if self.deliver(rx, envelope).is_err() {
                        return;
                    }
                }
                Err(Error::Timeout) => {
                    if lock(&self.state).closing {
                        return;
                    }
                }
                Err(Error::Decode(_)) => {} // consumed; the stream is still aligned
                Err(_) => return,
            }
        }
    }

    /// Delivers one envelope to the entry it answers.
    ///
    /// Errors: a receive error while reading a file that follows it.
    fn deliver(
        &self,
        rx: &Receiver<Envelope<Req, Resp>, C>,
        envelope: Envelope<Req, Resp>,
    ) -> Result<()> {
        match envelope {
            Envelope::Response { id, result } => {
                let answer = result
                    .map(Answer::Value)
                    .map_err(|e| Error::Remote(e.message));
                self.answer(id, answer);
            }
            Envelope::File { id } => return self.receive_file(rx, id),
            Envelope::Ack { id } if id.session == self.session => {
                let mut st = lock(&self.state);
                if matches!(st.entries.get(id.seq), Some(e) if matches!(e.kind, Kind::Message)) {
                    st.entries.remove(id.seq);
                }
                drop(st);
                self.cv.notify_all();
            }
            Envelope::Push { .. } => {
                rx.recv_to_writer(&mut std::io::sink(), rx.max_message_size())?;
            }
            Envelope::Ack { .. } | Envelope::Message { .. } | Envelope::Request { .. } => {}
        }
        Ok(())
    }

    /// Receives the file that answers request `id` into its destination (or drops it
    /// when nobody waits for it any more).
    fn receive_file(&self, rx: &Receiver<Envelope<Req, Resp>, C>, id: MsgId) -> Result<()> {
        let kind = match id.session == self.session {
            true => lock(&self.state)
                .entries
                .get(id.seq)
                .map(|e| e.kind.clone()),
            false => None,
        };
        let Some(Kind::File { dest, limit }) = kind else {
            // Nobody waits for it, or a value was asked for (`Pending::wait` says so).
            let len = rx.recv_to_writer(&mut std::io::sink(), rx.max_message_size())?;
            self.answer(id, Ok(Answer::File(len)));
            return Ok(());
        };
        match rx.recv_file(&dest, limit) {
            Ok(len) => self.answer(id, Ok(Answer::File(len))),
            Err(e) => {
                let fatal = e.is_disconnected()
                    || matches!(e, Error::MessageTooLarge { .. } | Error::Protocol(_));
                self.answer(id, Err(e));
                if fatal {
                    return Err(Error::Disconnected);
                }
            }
        }
        Ok(())
    }

    /// Records the answer of request `id`, if it still waits for one.
    fn answer(&self, id: MsgId, answer: Result<Answer<Resp>>) {
        if id.session != self.session {
            return;
        }
        let mut st = lock(&self.state);
        if let Some(e) = st.entries.get_mut(id.seq) {
            if !matches!(e.kind, Kind::Message) && e.answer.is_none() {
                e.answer = Some(answer);
            }
        }
        drop(st);
        self.cv.notify_all();
    }
}
