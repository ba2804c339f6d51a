//! The listener's engine: every pending handshake at once, on one `polling` poller.
//!
//! The poller watches the listening descriptor, the stream of every client whose
//! handshake is in progress ([`Pending`]) and, on Linux, a timer set to the earliest
//! handshake deadline or the end of an accept back-off. One [`turn`](Engine::turn) waits
//! for the poller (or not at all), then accepts what is waiting, advances the handshakes
//! whose streams are ready, and ends those past their deadline. Authenticated streams
//! queue in `ready` until [`Listener::accept`](crate::Listener::accept) takes them.
//!
//! The poller's own descriptor is readable whenever one of these needs attention, which is
//! how a `Listener` in a [`WaitSet`](crate::WaitSet) wakes its owner: that wait and the
//! engine's never block each other.
//!
//! Bounds: at most `max_pending` handshakes (a new client pushes out the one that has
//! waited longest), at most [`READY_CAP`] authenticated streams not yet taken (the rest
//! wait in the kernel's backlog), and at most [`ACCEPT_BATCH`] `accept(2)` calls per turn.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use polling::{Event, Events, Poller};

use super::pending::{Pending, Progress};
use crate::address::Address;
use crate::auth::{Handshake, PeerCredentials};
use crate::error::{Context, Error, Result};
use crate::trace;
use crate::transport::{self, Accepted, Bound, Stream};
use crate::AuthKey;

/// Poller key of the listening descriptor.
const LISTENING: usize = 0;
/// Poller key of the timer.
const TIMER: usize = 1;
/// Authenticated streams kept for `accept` before the engine stops taking new clients.
pub(super) const READY_CAP: usize = 64;
/// The most `accept(2)` calls in one turn, so that a flood of clients cannot keep a turn
/// from advancing the handshakes already in progress.
const ACCEPT_BATCH: usize = 64;
/// The first pause after `accept(2)` ran out of descriptors or memory; it doubles on every
/// failure in a row, up to [`BACKOFF_MAX`].
pub(super) const BACKOFF_FIRST: Duration = Duration::from_millis(10);
/// The longest pause between attempts while descriptors stay exhausted.
pub(super) const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// What [`Engine::step`] found.
pub(super) enum Step {
    /// An authenticated stream and its peer's address.
    Ready(Stream, Option<Address>),
    /// Nothing yet: wait on the poller this long (`None`: until it reports something).
    Wait(Option<Duration>),
    /// The caller's deadline has passed.
    TimedOut,
}

/// A new client's TLS handshake, when the listener serves TLS.
#[cfg(feature = "tls")]
pub(super) type TlsHandshake = Option<crate::transport::tls::Handshaking>;
/// A new client's TLS handshake: never, without the `tls` feature.
#[cfg(not(feature = "tls"))]
pub(super) type TlsHandshake = Option<std::convert::Infallible>;

/// What is called with every client the listener turns away.
pub(crate) type OnRejected = Arc<dyn Fn(Option<&Address>, &Error) + Send + Sync>;

/// What the engine needs of the listener's options.
pub(super) struct Rules {
    pub(super) key: Option<AuthKey>,
    pub(super) handshake_timeout: Duration,
    pub(super) max_pending: usize,
    pub(super) uids: Vec<u32>,
    pub(super) gids: Vec<u32>,
    pub(super) on_rejected: Option<OnRejected>,
    #[cfg(feature = "tls")]
    pub(super) tls: Option<Arc<rustls::ServerConfig>>,
}

impl Rules {
    fn checks_credentials(&self) -> bool {
        !self.uids.is_empty() || !self.gids.is_empty()
    }
}

/// A pending handshake and its place in the deadline queue.
struct Slot {
    pending: Pending,
    generation: u64,
}

/// The pending handshakes, the streams ready for `accept`, and the poller.
pub(super) struct Engine {
    poller: Arc<Poller>,
    events: Events,
    fired: Vec<usize>,
    slots: Vec<Option<Slot>>,
    free: Vec<usize>,
    /// `(deadline, slot, generation)` in order of arrival, which is the order of the
    /// deadlines (every handshake gets the same timeout); entries of slots that finished
    /// early are skipped when they reach the front.
    order: VecDeque<(Instant, usize, u64)>,
    generation: u64,
    ready: VecDeque<(Stream, Option<Address>)>,
    /// Whether the listening descriptor's one-shot registration is armed.
    armed: bool,
    backoff: Backoff,
    /// An exhaustion error not yet reported to an `accept` caller.
    exhausted: Option<io::Error>,
    timer: Timer,
    rules: Rules,
}

impl Engine {
    /// An engine for `bound`, on `poller` (which the listener shares, as its wait source).
    pub(super) fn new(bound: &Bound, poller: Arc<Poller>, rules: Rules) -> Result<Engine> {
        // SAFETY: `polling` needs every registered descriptor deleted before it is
        // closed. The listening descriptor belongs to the `Bound` that the `Listener`
        // holds next to this engine and the poller; the listener drops (and `close`
        // closes) both of them before the `Bound`, so the registration never outlives the
        // descriptor.
        #[allow(unsafe_code)]
        unsafe {
            poller.add(bound.as_fd().as_raw_fd(), Event::readable(LISTENING))?;
        }
        let timer = Timer::new(&poller)?;
        Ok(Engine {
            poller,
            events: Events::new(),
            fired: Vec::new(),
            slots: Vec::new(),
            free: Vec::new(),
            order: VecDeque::new(),
            generation: 0,
            ready: VecDeque::new(),
            armed: true,
            backoff: Backoff::default(),
            exhausted: None,
            timer,
            rules,
        })
    }

    /// Handshakes in progress.
    pub(super) fn pending(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// Whether an authenticated stream waits to be taken.
    pub(super) fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    /// One step of a blocking accept: the next authenticated stream if one is ready,
    /// `None` if `deadline` has passed, or else how long the caller may wait on the
    /// poller (without holding the engine) before [`process`](Engine::process)ing what it
    /// reports.
    ///
    /// # Errors
    ///
    /// Errors of the listening endpoint itself: descriptors or memory exhausted (reported
    /// once per back-off; the engine waits before it tries again), or a failing poller.
    pub(super) fn step(&mut self, bound: &Bound, deadline: Option<Instant>) -> Result<Step> {
        if let Some(e) = self.exhausted.take() {
            return Err(exhausted(e, self.backoff.pause));
        }
        if let Some((stream, peer)) = self.take_ready(bound) {
            if self.has_ready() {
                // Another thread may be waiting on the poller: this one is for it.
                let _ = self.poller.notify();
            }
            return Ok(Step::Ready(stream, peer));
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| d <= now) {
            return Ok(Step::TimedOut);
        }
        let wake = earliest(deadline, self.next_wake());
        Ok(Step::Wait(wake.map(|w| w.saturating_duration_since(now))))
    }

    /// Takes an authenticated stream if one is ready, after one turn that does not wait.
    pub(super) fn try_next(&mut self, bound: &Bound) -> Result<Option<(Stream, Option<Address>)>> {
        if let Some(e) = self.exhausted.take() {
            return Err(exhausted(e, self.backoff.pause));
        }
        if let Some(ready) = self.take_ready(bound) {
            return Ok(Some(ready));
        }
        self.turn(bound, Some(Duration::ZERO))?;
        if let Some(e) = self.exhausted.take() {
            return Err(exhausted(e, self.backoff.pause));
        }
        Ok(self.take_ready(bound))
    }

    /// Does what can be done without waiting, for a wait source's probe.
    pub(super) fn poll_now(&mut self, bound: &Bound) -> bool {
        let _ = self.turn(bound, Some(Duration::ZERO));
        self.has_ready() || self.exhausted.is_some()
    }

    fn take_ready(&mut self, bound: &Bound) -> Option<(Stream, Option<Address>)> {
        let ready = self.ready.pop_front()?;
        if !self.armed && self.backoff.until.is_none() && self.ready.len() < READY_CAP {
            self.arm(bound);
        }
        Some(ready)
    }

    /// Waits up to `timeout` for the poller, then does everything that became possible.
    fn turn(&mut self, bound: &Bound, timeout: Option<Duration>) -> Result<()> {
        let mut events = std::mem::take(&mut self.events);
        events.clear();
        let waited = match self.poller.wait(&mut events, timeout) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
            Err(e) => Err(e.into()),
        };
        self.process(&events, bound);
        self.events = events;
        waited
    }

    /// Does everything the poller's `events` (from a wait of this engine's poller) made
    /// possible, and what the clock did: deadlines, the end of a back-off.
    pub(super) fn process(&mut self, events: &Events, bound: &Bound) {
        self.fired.clear();
        self.fired.extend(events.iter().map(|e| e.key));
        let mut listening = false;
        for i in 0..self.fired.len() {
            match self.fired[i] {
                LISTENING => listening = true,
                TIMER => self.timer.fired(),
                key => {
                    let slot = (key - 2) / 2;
                    if key % 2 == 0 {
                        if let Some(Some(entry)) = self.slots.get_mut(slot) {
                            entry.pending.readable();
                        }
                    }
                    self.advance(slot)
                }
            }
        }
        let now = Instant::now();
        if listening {
            self.armed = false;
        }
        if self.backoff.until.is_some_and(|until| until <= now) {
            self.backoff.until = None;
            listening = true; // try again
        }
        if listening && self.backoff.until.is_none() {
            self.accept_waiting(bound, now);
        }
        self.expire(now);
        self.timer.set(&self.poller, self.next_wake());
    }

    /// Takes the clients waiting in the backlog, within the turn's and the queue's bounds,
    /// and re-arms the listening descriptor unless it must pause.
    fn accept_waiting(&mut self, bound: &Bound, now: Instant) {
        for _ in 0..ACCEPT_BATCH {
            if self.ready.len() >= READY_CAP {
                return; // re-armed when `accept` takes one
            }
            match bound.try_accept() {
                Ok(Accepted::Nothing) => break,
                Ok(Accepted::Failed(e)) => self.reject(None, "accept", &e),
                Ok(Accepted::Client(stream, peer)) => {
                    self.backoff.succeeded();
                    self.admit(stream, peer, now);
                }
                Err(e) => {
                    // Exhaustion, or an endpoint that no longer works: either way, do
                    // not spin on a descriptor that stays readable.
                    if let Some(pause) = self.backoff.failed(now) {
                        trace::accept_paused(&e, pause);
                    }
                    self.exhausted = Some(e);
                    return;
                }
            }
        }
        self.arm(bound);
    }

    fn arm(&mut self, bound: &Bound) {
        match self
            .poller
            .modify(bound.as_fd(), Event::readable(LISTENING))
        {
            Ok(()) => self.armed = true,
            Err(e) => {
                if let Some(pause) = self.backoff.failed(Instant::now()) {
                    trace::accept_paused(&e, pause);
                }
                self.exhausted = Some(e);
            }
        }
    }

    /// A new client: checked, then queued for `accept` (no key) or given a handshake.
    fn admit(&mut self, stream: Stream, peer: Option<Address>, now: Instant) {
        if self.rules.checks_credentials() {
            if let Err(e) = self.check_credentials(&stream) {
                self.reject(peer.as_ref(), "credentials", &e);
                return;
            }
        }
        let machine = match self.rules.key.as_ref().map(Handshake::server).transpose() {
            Ok(m) => m,
            Err(e) => {
                self.reject(peer.as_ref(), "handshake", &e);
                return;
            }
        };
        let tls = match self.tls_handshake() {
            Ok(tls) => tls,
            Err(e) => {
                self.reject(peer.as_ref(), "handshake", &e);
                return;
            }
        };
        if machine.is_none() && tls.is_none() {
            self.hand_over(stream, peer);
            return;
        }
        while self.pending() >= self.rules.max_pending.max(1) {
            self.evict_oldest();
        }
        let deadline = now
            .checked_add(self.rules.handshake_timeout)
            .unwrap_or(now + Duration::from_secs(86_400 * 365));
        let mut pending = Pending::new(stream, peer, machine, tls, deadline);
        match pending.advance() {
            Progress::Authenticated => {
                let (stream, peer) = pending.into_parts();
                self.hand_over(stream, peer);
            }
            Progress::Failed(e) => self.reject(pending.peer.as_ref(), "handshake", &e),
            Progress::Waiting { write } => self.park(pending, write),
        }
    }

    /// A TLS handshake for a new client, when the listener serves TLS.
    fn tls_handshake(&self) -> Result<TlsHandshake> {
        #[cfg(feature = "tls")]
        if let Some(config) = &self.rules.tls {
            return crate::transport::tls::Handshaking::server(config).map(Some);
        }
        Ok(None)
    }

    fn check_credentials(&self, stream: &Stream) -> Result<()> {
        let Stream::Socket { fd, kind } = stream else {
            unreachable!("bind refuses credential rules for FIFOs");
        };
        let peer = PeerCredentials::of(fd.as_fd(), *kind)?;
        let rules = &self.rules;
        if rules.uids.contains(&peer.uid()) || rules.gids.contains(&peer.gid()) {
            return Ok(());
        }
        Err(Error::AuthenticationFailed(format!(
            "peer {peer} is not among the users or groups this listener admits"
        )))
    }

    /// Registers a pending handshake with the poller, waiting to read or to write.
    fn park(&mut self, pending: Pending, write: bool) {
        let slot = self.free.pop().unwrap_or(self.slots.len());
        if slot == self.slots.len() {
            self.slots.push(None);
        }
        let (rk, wk) = keys(slot);
        let read_fd = pending.read_fd().as_raw_fd();
        let write_fd = pending.write_fd().map(|fd| fd.as_raw_fd());
        // SAFETY: the descriptors are owned by `pending`, which moves into `slots[slot]`
        // right below and leaves it only through `remove`, which deletes both
        // registrations before it hands the stream on or drops it; `Drop for Engine`
        // deletes the registrations of the slots still present.
        #[allow(unsafe_code)]
        let added = unsafe {
            match write_fd {
                None => self.poller.add(read_fd, interest(rk, write)),
                Some(w) => self
                    .poller
                    .add(read_fd, interest_read(rk, !write))
                    .and_then(|()| {
                        self.poller
                            .add(w, interest_write(wk, write))
                            .inspect_err(|_| {
                                let _ = self.poller.delete(pending.read_fd());
                            })
                    }),
            }
        };
        if let Err(e) = added {
            self.free.push(slot);
            self.reject(pending.peer.as_ref(), "poller", &e.into());
            return;
        }
        self.generation += 1;
        self.order
            .push_back((pending.deadline, slot, self.generation));
        self.slots[slot] = Some(Slot {
            pending,
            generation: self.generation,
        });
    }

    /// Advances the handshake in `slot`, after its stream became ready.
    fn advance(&mut self, slot: usize) {
        let Some(Some(entry)) = self.slots.get_mut(slot) else {
            return;
        };
        match entry.pending.advance() {
            Progress::Waiting { write } => {
                let (rk, wk) = keys(slot);
                let p = &entry.pending;
                let rearmed = match p.write_fd() {
                    None => self.poller.modify(p.read_fd(), interest(rk, write)),
                    Some(w) if write => self.poller.modify(w, interest_write(wk, true)),
                    Some(_) => self.poller.modify(p.read_fd(), interest_read(rk, true)),
                };
                if let Err(e) = rearmed {
                    if let Some(p) = self.remove(slot) {
                        self.reject(p.peer.as_ref(), "poller", &e.into());
                    }
                }
            }
            Progress::Authenticated => {
                if let Some(p) = self.remove(slot) {
                    let (stream, peer) = p.into_parts();
                    self.hand_over(stream, peer);
                }
            }
            Progress::Failed(e) => {
                if let Some(p) = self.remove(slot) {
                    self.reject(p.peer.as_ref(), "handshake", &e);
                }
            }
        }
    }

    /// Queues an accepted (and, with a key, authenticated) stream for `accept`, in
    /// blocking mode like every stream procwire hands out.
    fn hand_over(&mut self, stream: Stream, peer: Option<Address>) {
        if let Stream::Pipes { read, write } = &stream {
            let blocking = transport::set_blocking(read.as_fd(), true)
                .and_then(|()| transport::set_blocking(write.as_fd(), true));
            if let Err(e) = blocking {
                self.reject(peer.as_ref(), "setup", &e.into());
                return;
            }
        }
        trace::accepted(peer.as_ref());
        self.ready.push_back((stream, peer));
    }

    /// Takes the handshake out of `slot` and out of the poller.
    fn remove(&mut self, slot: usize) -> Option<Pending> {
        let entry = self.slots.get_mut(slot)?.take()?;
        let p = entry.pending;
        let _ = self.poller.delete(p.read_fd());
        if let Some(w) = p.write_fd() {
            let _ = self.poller.delete(w);
        }
        self.free.push(slot);
        Some(p)
    }

    /// Ends the handshakes whose deadline has passed.
    fn expire(&mut self, now: Instant) {
        while let Some(&(deadline, slot, generation)) = self.order.front() {
            if !self.is_current(slot, generation) {
                self.order.pop_front();
                continue;
            }
            if deadline > now {
                return;
            }
            self.order.pop_front();
            if let Some(p) = self.remove(slot) {
                let e = Error::AuthenticationFailed(format!(
                    "{} did not finish the handshake within {:?}",
                    p.who(),
                    self.rules.handshake_timeout
                ));
                self.reject(p.peer.as_ref(), "handshake timeout", &e);
            }
        }
    }

    /// Ends the handshake that has waited longest, to make room for a new client.
    fn evict_oldest(&mut self) {
        while let Some((_, slot, generation)) = self.order.pop_front() {
            if !self.is_current(slot, generation) {
                continue;
            }
            if let Some(p) = self.remove(slot) {
                let e = Error::AuthenticationFailed(format!(
                    "{} was dropped before it finished the handshake: {} newer clients \
                     were waiting (the listener's max_pending_handshakes)",
                    p.who(),
                    self.rules.max_pending
                ));
                let max = self.rules.max_pending as u64;
                trace::limit("max_pending_handshakes", max + 1, max);
                self.reject(p.peer.as_ref(), "evicted", &e);
            }
            return;
        }
    }

    fn is_current(&self, slot: usize, generation: u64) -> bool {
        matches!(self.slots.get(slot), Some(Some(s)) if s.generation == generation)
    }

    /// The earliest moment the engine must act without an event: a handshake deadline,
    /// or the end of a back-off.
    fn next_wake(&self) -> Option<Instant> {
        let deadline = self
            .order
            .iter()
            .find(|&&(_, slot, generation)| self.is_current(slot, generation))
            .map(|&(d, _, _)| d);
        earliest(deadline, self.backoff.until)
    }

    /// Reports a client turned away at `stage` (a name for the trace) to `on_rejected`.
    fn reject(&self, peer: Option<&Address>, stage: &'static str, e: &Error) {
        trace::rejected(peer, stage, e);
        if let Some(f) = &self.rules.on_rejected {
            f(peer, e);
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        for slot in 0..self.slots.len() {
            drop(self.remove(slot));
        }
        self.timer.deregister(&self.poller);
    }
}

/// The poller keys of a slot's read and write registrations.
fn keys(slot: usize) -> (usize, usize) {
    (2 + 2 * slot, 3 + 2 * slot)
}

fn interest(key: usize, write: bool) -> Event {
    if write {
        Event::writable(key)
    } else {
        Event::readable(key)
    }
}

fn interest_read(key: usize, on: bool) -> Event {
    if on {
        Event::readable(key)
    } else {
        Event::none(key)
    }
}

fn interest_write(key: usize, on: bool) -> Event {
    if on {
        Event::writable(key)
    } else {
        Event::none(key)
    }
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// The error `accept` reports when `accept(2)` failed for the endpoint itself: what
/// happened, the operating system's error, and how long the listener waits.
fn exhausted(e: io::Error, pause: Duration) -> Error {
    let what = if crate::error::is_exhaustion(&e) {
        "accept out of descriptors or memory"
    } else {
        "accept failed"
    };
    Error::Io(Context::io(
        e.kind(),
        what.to_string(),
        e,
        format!("; the listener pauses accepting for {pause:?} and then tries again"),
    ))
}

/// The pause after failing `accept(2)` calls: doubling from [`BACKOFF_FIRST`] to
/// [`BACKOFF_MAX`], reset by a successful accept.
#[derive(Debug)]
struct Backoff {
    until: Option<Instant>,
    pause: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            until: None,
            pause: BACKOFF_FIRST,
        }
    }
}

impl Backoff {
    /// Starts a pause unless one runs; the length of the pause it started.
    fn failed(&mut self, now: Instant) -> Option<Duration> {
        if self.until.is_some() {
            return None;
        }
        let pause = self.pause;
        if let Some(until) = now.checked_add(pause) {
            self.until = Some(until);
        }
        self.pause = (pause * 2).min(BACKOFF_MAX);
        Some(pause)
    }

    fn succeeded(&mut self) {
        self.pause = BACKOFF_FIRST;
    }
}

/// A timer in the poller, so that the poller's descriptor turns readable at a handshake
/// deadline or at the end of a back-off even when no client does anything: a `WaitSet`
/// holding the listener then wakes, and its `try_accept` ends the expired handshakes. On
/// systems without `timerfd` (everywhere but Linux and Android) there is no timer: expired
/// handshakes end at the listener's next turn, and a blocking `accept` waits with the
/// deadline as its timeout either way.
struct Timer {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fd: std::os::fd::OwnedFd,
    /// When it is set to fire; `None` when it is not armed.
    at: Option<Instant>,
}

#[cfg(any(target_os = "linux", target_os = "android"))]
impl Timer {
    fn new(poller: &Poller) -> Result<Timer> {
        use rustix::time::{timerfd_create, TimerfdClockId, TimerfdFlags};
        let fd = timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::CLOEXEC | TimerfdFlags::NONBLOCK,
        )?;
        // SAFETY: the timer descriptor is owned by this `Timer`, a field of the engine;
        // `Drop for Engine` deletes its registration (`deregister`) before the fields,
        // and with them the descriptor, are dropped.
        #[allow(unsafe_code)]
        unsafe {
            poller.add(fd.as_raw_fd(), Event::none(TIMER))?;
        }
        Ok(Timer { fd, at: None })
    }

    /// Sets the timer to fire at `at` if it is not already set to fire by then.
    fn set(&mut self, poller: &Poller, at: Option<Instant>) {
        use rustix::time::{timerfd_settime, Itimerspec, TimerfdTimerFlags, Timespec};
        let Some(at) = at else {
            return; // a timer still set fires once for nothing, and is not set again
        };
        if self.at.is_some_and(|armed| armed <= at) {
            return;
        }
        let wait = at
            .saturating_duration_since(Instant::now())
            .max(Duration::from_micros(1)); // zero would disarm it
        let spec = Itimerspec {
            it_interval: Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: Timespec {
                tv_sec: wait.as_secs().try_into().unwrap_or(i64::MAX),
                tv_nsec: wait.subsec_nanos().into(),
            },
        };
        let set = timerfd_settime(&self.fd, TimerfdTimerFlags::empty(), &spec)
            .map_err(io::Error::from)
            .and_then(|_| poller.modify(&self.fd, Event::readable(TIMER)));
        // If the timer cannot be set, deadlines are still kept at the next turn.
        self.at = set.ok().map(|()| at);
    }

    fn deregister(&self, poller: &Poller) {
        let _ = poller.delete(&self.fd);
    }

    fn fired(&mut self) {
        let mut expirations = [0u8; 8];
        let _ = rustix::io::read(&self.fd, &mut expirations);
        self.at = None;
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
impl Timer {
    fn new(_poller: &Poller) -> Result<Timer> {
        Ok(Timer { at: None })
    }

    fn set(&mut self, _poller: &Poller, _at: Option<Instant>) {}

    fn deregister(&self, _poller: &Poller) {}

    fn fired(&mut self) {}
}
