//! [`WaitSet`]: a keyed registry of sources on one readiness queue (epoll on Linux, see
//! `poller.rs`), kept across calls, so that a wait costs in proportion to the sources that
//! are ready.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::poller::SetPoller;
use super::Waitable;
use crate::error::{Error, Result};
use crate::message::remaining;

/// A keyed set of sources to wait on again and again, such as a server's listener and
/// its clients; the [`Waitable`] counterpart of a `HashMap<K, S>`.
///
/// The set owns its sources: [`insert`](WaitSet::insert) registers one under a key,
/// [`get`](WaitSet::get) lends it out (every procwire method needed to serve it takes
/// `&self`), and [`remove`](WaitSet::remove) deregisters it and hands it back.
/// [`wait`](WaitSet::wait) fills a vector with the keys of the ready sources. To hold
/// sources of several kinds, implement [`Waitable`] for an enum of them.
///
/// Sources stay registered with the kernel between calls, so a wait costs the same with
/// ten thousand idle connections as with one: its work grows with the number of *ready*
/// sources. Readiness is level-triggered: a source that is still ready is reported again
/// by the next wait, including a connection whose buffer still holds a whole message
/// after you received one (found without a system call).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// let mut set = procwire::WaitSet::new()?;
/// let mut peers = Vec::new();
/// for id in 0..3u32 {
///     let (ours, theirs) = procwire::duplex::<u32, u32>()?;
///     set.insert(id, ours)?;
///     peers.push(theirs);
/// }
/// peers[2].send(&20)?;
///
/// let mut ready = Vec::new();
/// set.wait(&mut ready, Some(Duration::from_secs(5)))?;
/// assert_eq!(ready, [2]);
/// let conn = set.get(&2).unwrap();
/// let n = conn.try_recv()?;
/// conn.send(&(n + 1))?;
/// assert_eq!(peers[2].recv()?, 21);
///
/// drop(peers.remove(0)); // a client goes away: its connection reports the end
/// set.wait(&mut ready, Some(Duration::from_secs(5)))?;
/// assert_eq!(ready, [0]);
/// assert!(set.get(&0).unwrap().try_recv().unwrap_err().is_disconnected());
/// set.remove(&0);
/// assert_eq!(set.len(), 2);
/// # Ok::<(), procwire::Error>(())
/// ```
pub struct WaitSet<K, S> {
    /// Declared first so that it is dropped first: once it is closed, no registration
    /// remains for the descriptors below to outlive.
    poller: SetPoller,
    slots: Vec<Option<Slot<K, S>>>,
    free: Vec<usize>,
    index: HashMap<K, usize>,
    fired: Vec<usize>,
    /// Slots that may hold a whole buffered message: reported by the last wait, inserted
    /// or rechecked since. The next wait looks at their buffers first.
    carried: Vec<usize>,
    spare: Vec<usize>,
    /// Descriptors whose deregistration failed: kept open until the poller is gone.
    orphans: Vec<Arc<OwnedFd>>,
}

struct Slot<K, S> {
    key: K,
    source: S,
    /// The registered descriptor, held open for as long as it is registered.
    fd: Arc<OwnedFd>,
    has_buffer: bool,
    /// Already among this wait's ready keys.
    reported: bool,
}

impl<K, S> WaitSet<K, S> {
    /// An empty set, with its own poller (on Linux an epoll instance; elsewhere a
    /// `polling` poller, with the descriptors it uses for timeouts and wake-ups).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the poller cannot be created (for example, out of descriptors).
    pub fn new() -> Result<Self> {
        Ok(WaitSet {
            poller: SetPoller::new()?,
            slots: Vec::new(),
            free: Vec::new(),
            index: HashMap::new(),
            fired: Vec::new(),
            carried: Vec::new(),
            spare: Vec::new(),
            orphans: Vec::new(),
        })
    }

    /// The number of sources in the set.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether the set holds no source.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The keys and sources in the set, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &S)> + '_ {
        self.slots.iter().flatten().map(|s| (&s.key, &s.source))
    }

    /// Deregisters the source in `slot` and hands it back.
    fn take_slot(&mut self, slot: usize) -> Option<S> {
        let entry = self.slots.get_mut(slot)?.take()?;
        self.free.push(slot);
        if self.poller.delete(entry.fd.as_fd()).is_err() {
            self.orphans.push(entry.fd);
        }
        Some(entry.source)
    }
}

impl<K: Eq + Hash + Clone, S: Waitable> WaitSet<K, S> {
    /// Adds `source` under `key`; a source already under `key` is deregistered and
    /// returned, as `HashMap::insert` does.
    ///
    /// A listener is registered through a duplicate of its descriptor (closed again when
    /// it leaves the set); a connection or child through the descriptor it owns. One
    /// descriptor can be in a set once: inserting the same `Arc`'d connection under two
    /// keys fails.
    ///
    /// # Errors
    ///
    /// [`InsertError`], which hands `source` back, with:
    /// - [`Error::Io`] of kind `Unsupported` for a [`Child`](crate::Child) without a pidfd;
    /// - [`Error::Io`] when the descriptor cannot be registered (already in the set, or the
    ///   kernel's limit on watched descriptors reached) or duplicated.
    ///
    /// # Examples
    ///
    /// ```
    /// let (a, _peer) = procwire::duplex::<u8, u8>()?;
    /// let mut set = procwire::WaitSet::new()?;
    /// assert!(set.insert("a", a)?.is_none());
    /// assert!(set.contains_key("a"));
    /// # Ok::<(), procwire::Error>(())
    /// ```
    pub fn insert(&mut self, key: K, source: S) -> Result<Option<S>, InsertError<S>> {
        let (fd, has_buffer, buffered) = match Self::describe(&source) {
            Ok(found) => found,
            Err(error) => return Err(InsertError { error, source }),
        };
        // Everything that could panic (the key's `Clone`, growing `slots`) happens before
        // the registration, so no unwinding can drop `fd` while it is registered.
        let slot_key = key.clone();
        let slot = self.free.pop().unwrap_or(self.slots.len());
        if slot == self.slots.len() {
            self.slots.push(None);
        }
        // A registered descriptor must be deleted from the poller before it is closed
        // (`polling` requires it; with epoll, a closed duplicate could leave events for a
        // file nobody holds). The descriptor registered here is `fd`, which the slot owns
        // (through an `Arc`) from the statement after next, with no code in between that
        // can fail or panic, so it stays open while the slot exists. A slot lets go of its
        // `Arc` only in `take_slot`, after `delete` succeeded, or else by moving it to
        // `orphans`; `Drop for WaitSet` deletes every slot's descriptor before the slots
        // are dropped; and `orphans` is dropped after `poller` (field order), when no
        // registration remains. Nothing else drops a slot: sources are lent out only as
        // `&S`, and the `Arc` is never handed out at all.
        if let Err(e) = self.poller.add(fd.as_fd(), slot) {
            self.free.push(slot);
            return Err(InsertError {
                error: e.into(),
                source,
            });
        }
        self.slots[slot] = Some(Slot {
            key: slot_key,
            source,
            fd,
            has_buffer,
            reported: false,
        });
        if buffered {
            self.carried.push(slot);
        }
        Ok(self
            .index
            .insert(key, slot)
            .and_then(|old| self.take_slot(old)))
    }

    /// The descriptor to register for `source`, whether it has a read buffer, and whether
    /// that buffer holds a whole message already.
    fn describe(source: &S) -> Result<(Arc<OwnedFd>, bool, bool)> {
        let ws = source.wait_source();
        Ok((
            ws.keep_alive()?,
            ws.has_buffer(),
            ws.buffered() == Some(true),
        ))
    }

    /// Removes the source under `key`, deregistering it, and hands it back.
    ///
    /// # Examples
    ///
    /// ```
    /// let (a, _peer) = procwire::duplex::<u8, u8>()?;
    /// let mut set = procwire::WaitSet::new()?;
    /// set.insert(1, a)?;
    /// let a = set.remove(&1).expect("was inserted");
    /// assert!(set.is_empty());
    /// # drop(a);
    /// # Ok::<(), procwire::Error>(())
    /// ```
    pub fn remove<Q>(&mut self, key: &Q) -> Option<S>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let slot = self.index.remove(key)?;
        self.take_slot(slot)
    }

    /// The source under `key`.
    pub fn get<Q>(&self, key: &Q) -> Option<&S>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let slot = *self.index.get(key)?;
        self.slots.get(slot)?.as_ref().map(|s| &s.source)
    }

    /// Whether a source is registered under `key`.
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.index.contains_key(key)
    }

    /// Makes the next [`wait`](WaitSet::wait) look at the read buffer of the source under
    /// `key`.
    ///
    /// `wait` finds a whole message waiting in a buffer without a system call for the
    /// sources it reported last time and those inserted since. If you receive from a
    /// source it did *not* report (a blocking request/reply with one client, say), that
    /// receive may have buffered the next message too; call this so that the next wait
    /// reports it, rather than waiting for more bytes to arrive.
    pub fn recheck<Q>(&mut self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if let Some(&slot) = self.index.get(key) {
            self.carried.push(slot);
        }
    }

    /// Waits until at least one source is ready or `timeout` passes, and puts the keys of
    /// the ready sources in `ready` (cleared first; empty on timeout). Returns how many.
    ///
    /// "Ready" is as for [`wait`](crate::wait()): for a connection, that the next receive
    /// will not block. `None` waits forever; `Some(Duration::ZERO)` only looks. The order
    /// of the keys is unspecified; at most 1024 come from one system call, and sources
    /// left over are reported by the next wait. Passing the same `ready` vector every
    /// time makes a wait allocate nothing.
    ///
    /// # Blocking
    ///
    /// Until a source is ready or the timeout passes; bytes of partly arrived messages are
    /// read into their connections' buffers meanwhile.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when waiting fails.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let (a, peer) = procwire::duplex::<u8, u8>()?;
    /// let mut set = procwire::WaitSet::new()?;
    /// set.insert('a', a)?;
    /// let mut ready = Vec::new();
    /// assert_eq!(set.wait(&mut ready, Some(Duration::ZERO))?, 0);
    /// peer.send(&1)?;
    /// peer.send(&2)?;
    /// assert_eq!(set.wait(&mut ready, None)?, 1);
    /// assert_eq!(set.get(&'a').unwrap().try_recv()?, 1);
    /// // The second message is buffered already: ready again, without a system call.
    /// assert_eq!(set.wait(&mut ready, Some(Duration::ZERO))?, 1);
    /// assert_eq!(ready, ['a']);
    /// # Ok::<(), procwire::Error>(())
    /// ```
    pub fn wait(&mut self, ready: &mut Vec<K>, timeout: Option<Duration>) -> Result<usize> {
        ready.clear();
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let carried = std::mem::replace(&mut self.carried, std::mem::take(&mut self.spare));
        for &slot in &carried {
            self.report_buffered(slot, ready);
        }
        self.spare = carried;
        self.spare.clear();
        let result = self.wait_events(ready, timeout, deadline);
        for &slot in &self.carried {
            if let Some(Some(s)) = self.slots.get_mut(slot) {
                s.reported = false;
            }
        }
        result.map(|()| ready.len())
    }

    /// Polls until an event makes a source ready or the time is up (at once when `ready`
    /// already has keys). A wait that ends with no event before `deadline` (a signal)
    /// waits again for the rest.
    fn wait_events(
        &mut self,
        ready: &mut Vec<K>,
        timeout: Option<Duration>,
        deadline: Option<Instant>,
    ) -> Result<()> {
        loop {
            let t = if ready.is_empty() {
                remaining(timeout, deadline)
            } else {
                Some(Duration::ZERO)
            };
            self.poller.wait(&mut self.fired, t)?;
            for i in 0..self.fired.len() {
                self.on_event(self.fired[i], ready)?;
            }
            let timed_out = self.fired.is_empty()
                && t.is_some()
                && deadline.is_none_or(|d| Instant::now() >= d);
            if !ready.is_empty() || timed_out || t == Some(Duration::ZERO) {
                return Ok(());
            }
        }
    }

    /// Reports the source in `slot` if its buffer holds a whole message.
    fn report_buffered(&mut self, slot: usize, ready: &mut Vec<K>) {
        let Some(Some(s)) = self.slots.get_mut(slot) else {
            return;
        };
        if !s.reported && s.has_buffer && s.source.wait_source().buffered() == Some(true) {
            s.reported = true;
            ready.push(s.key.clone());
            self.carried.push(slot);
        }
    }

    /// Handles the kernel's report that the descriptor in `slot` is readable.
    fn on_event(&mut self, slot: usize, ready: &mut Vec<K>) -> Result<()> {
        let Some(Some(s)) = self.slots.get_mut(slot) else {
            return Ok(());
        };
        self.poller.rearm(s.fd.as_fd(), slot)?;
        if !s.reported && s.source.wait_source().read_now() {
            s.reported = true;
            ready.push(s.key.clone());
            self.carried.push(slot);
        }
        Ok(())
    }
}

impl<K, S> Drop for WaitSet<K, S> {
    fn drop(&mut self) {
        for slot in self.slots.iter().flatten() {
            let _ = self.poller.delete(slot.fd.as_fd());
        }
    }
}

impl<K: fmt::Debug, S> fmt::Debug for WaitSet<K, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitSet")
            .field("keys", &self.index.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// The error of [`WaitSet::insert`]: why the source could not be registered, and the
/// source itself, handed back.
///
/// It converts into [`Error`], so `?` works in functions returning
/// [`procwire::Result`](crate::Result).
pub struct InsertError<S> {
    error: Error,
    source: S,
}

impl<S> InsertError<S> {
    /// Why the source could not be registered.
    pub fn error(&self) -> &Error {
        &self.error
    }

    /// The source that was not inserted.
    pub fn into_source(self) -> S {
        self.source
    }

    /// The error and the source.
    pub fn into_parts(self) -> (Error, S) {
        (self.error, self.source)
    }
}

impl<S> fmt::Debug for InsertError<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InsertError")
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl<S> fmt::Display for InsertError<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot add the source to the wait set: {}", self.error)
    }
}

impl<S> std::error::Error for InsertError<S> {
    /// The cause's own source: `Display` prints the cause itself.
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.error)
    }
}

impl<S> From<InsertError<S>> for Error {
    fn from(e: InsertError<S>) -> Error {
        e.error
    }
}
