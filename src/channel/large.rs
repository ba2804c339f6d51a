//! Large messages through memfds: the opt-ins of the typed halves. How the messages
//! travel is described in `src/message/large.rs`.

use super::{Receiver, Sender};
#[cfg(doc)]
use crate::error::Error;
use crate::error::Result;

impl<T, C> Sender<T, C> {
    /// Sends every later message of at least `threshold` bytes (typed or
    /// [`send_bytes`](Sender::send_bytes)) through a pool of memfds instead of the socket;
    /// the peer must have called [`accept_large_memfd`](Receiver::accept_large_memfd).
    /// Linux and Android, Unix-domain sockets only.
    ///
    /// The payload is copied once into a slot (a memfd mapped in both processes and kept
    /// mapped); a typed value whose codec writes in place (Rkyv, Postcard: see
    /// [`Encode::encoded_len`](crate::codec::Encode::encoded_len)) is serialised straight
    /// into the slot, after a first large message. Only a 44-byte frame goes through the
    /// socket: its head before the payload is written, its end record after. A blocking
    /// receive copies the payload out once, as it is written (so the two copies overlap
    /// when the processes run on two cores), and marks the slot free in the shared memory,
    /// so nothing comes back on the connection. The sender keeps at most 4 slots, each as large as the largest message
    /// it held (rounded up to a MiB) and mapped in both processes until the connection is
    /// dropped: that memory is the price of not paying page faults per message. When none
    /// is free, a message goes through the socket as usual, in order. A slot's memfd is
    /// passed once, with its first message. `send_timeout`, `send_bytes_timeout`, the `_fds`
    /// sends, files and the async types always use the socket.
    ///
    /// **When it pays.** A message still costs two copies (into the slot, out of it), each
    /// of the whole payload; through the socket it is two copies too, but in pieces of the
    /// socket buffer that stay in the processor's cache between them. When both processes
    /// run on **different cores** (the usual case on a multi-core machine), the receiver
    /// copies each 256 KiB step out while the sender writes the next, and a 16 MiB
    /// `send_bytes` → `recv_bytes_into` is 2.3–4.1 times as fast as through the socket,
    /// whose per-piece wake-ups are gone; when they share **one core**, nothing overlaps
    /// and it is 0.8–1.0 times as fast (`docs/performance.md`, rows `memfd-*-bulk`).
    /// Measure your own placement before turning it on.
    ///
    /// **Both ends must be procwire and both must opt in.** A receiver that did not call
    /// `accept_large_memfd` fails on the first such message with [`Error::Protocol`]
    /// naming it, and receives nothing more; it never reads the frame as data. Never enable
    /// this towards CPython, which cannot read these frames. Until this is called, the
    /// connection sends exactly the bytes CPython sends.
    ///
    /// # Errors
    ///
    /// - [`Error::Descriptors`] when the connection is not a Unix-domain socket (a pipe, a
    ///   FIFO, TCP); nothing changes.
    ///
    /// Later sends may fail with [`Error::Io`] when a memfd cannot be created or mapped.
    ///
    /// # Examples
    ///
    /// ```
    /// let (a, b) = procwire::duplex::<Vec<f64>, Vec<f64>>()?;
    /// a.enable_large_memfd(1 << 20)?;
    /// b.accept_large_memfd(64 << 20)?;
    ///
    /// let big: Vec<f64> = (0..300_000).map(f64::from).collect(); // 2.4 MB: a memfd
    /// a.send(&big)?;
    /// assert_eq!(b.recv()?, big);
    ///
    /// let samples = vec![1.5f64; 1 << 18]; // 2 MiB of bytes: through a memfd
    /// a.send_bytes(&samples)?;
    /// let mut out = vec![0f64; 1 << 18];
    /// assert_eq!(b.recv_bytes_into(&mut out)?, 2 << 20);
    /// assert_eq!(out, samples);
    ///
    /// a.send(&vec![1.0, 2.0])?; // small: through the socket
    /// assert_eq!(b.recv()?, [1.0, 2.0]);
    ///
    /// let (tx, _rx) = procwire::pipe::<()>()?;
    /// assert!(matches!(tx.enable_large_memfd(1 << 20), Err(procwire::Error::Descriptors(_))));
    /// # Ok::<(), procwire::Error>(())
    /// ```
    pub fn enable_large_memfd(&self, threshold: usize) -> Result<()> {
        self.io.enable_large_memfd(threshold)
    }
}

impl<T, C> Receiver<T, C> {
    /// Accepts the large messages that a peer which called
    /// [`enable_large_memfd`](Sender::enable_large_memfd) sends through memfds, mapping at
    /// most `max_mapped` bytes of them at once (all slots together; a slot is its largest
    /// message rounded up to a MiB, plus a page). Also enables descriptors
    /// ([`enable_fds`](Receiver::enable_fds)), so call it where that may be called: right
    /// after the connection is made. Calling it again changes only the limit.
    ///
    /// [`recv`](Receiver::recv), [`recv_bytes`](Receiver::recv_bytes),
    /// [`recv_bytes_into`](Receiver::recv_bytes_into) (and their `try_` and `_timeout`
    /// forms) and rkyv's `recv_archived` take these messages, each with one copy out of the
    /// shared memory; the other receives (`_fds`, files, writers, the async types) fail on
    /// one with [`Error::Protocol`]. Every field of such a message is checked: a descriptor
    /// that is not a memfd sealed against shrinking and growing, a memfd past the limit, a
    /// slot never sent, or a length past its slot is [`Error::Descriptors`], with the
    /// message consumed and the receiver still usable; a length above
    /// [`max_message_size`](Receiver::max_message_size) is [`Error::MessageTooLarge`].
    ///
    /// # Errors
    ///
    /// - [`Error::Descriptors`] when the connection is not a Unix-domain socket, or bytes of
    ///   a later message were already read (see [`enable_fds`](Receiver::enable_fds)).
    ///
    /// # Examples
    ///
    /// ```
    /// let (a, b) = procwire::duplex::<(), ()>()?;
    /// b.accept_large_memfd(32 << 20)?;
    /// a.enable_large_memfd(64 << 10)?;
    /// a.send_bytes(&vec![7u8; 1 << 20])?;
    /// assert_eq!(b.recv_bytes()?, vec![7u8; 1 << 20]);
    ///
    /// // A receiver that did not opt in refuses such a message instead of misreading it.
    /// let (c, d) = procwire::duplex::<(), ()>()?;
    /// c.enable_large_memfd(64 << 10)?;
    /// c.send_bytes(&vec![7u8; 1 << 20])?;
    /// let err = d.recv_bytes().unwrap_err();
    /// assert!(matches!(err, procwire::Error::Protocol(_)));
    /// assert!(err.to_string().contains("accept_large_memfd"));
    /// # Ok::<(), procwire::Error>(())
    /// ```
    pub fn accept_large_memfd(&self, max_mapped: u64) -> Result<()> {
        self.io.accept_large_memfd(max_mapped)
    }
}
