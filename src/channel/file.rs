//! Files as messages: [`Sender::send_file`], [`Receiver::recv_file`] and
//! [`Receiver::recv_to_writer`].
//!
//! A file travels as one ordinary message (a CPython `recv_bytes` on the other side reads
//! it), so it may sit between typed messages on the same connection. The receiving side
//! names how large a file it accepts, per call: files are often larger than what a
//! connection accepts as a message, and nothing of a file's size is ever allocated.
//!
//! Files have only the blocking receive: `try_` and `_timeout` receives wait until a whole
//! message is buffered, and a file is never buffered whole. To receive one without
//! blocking a server, [`poll`](Receiver::poll) for its first bytes and receive it on a
//! thread of its own.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use super::{Receiver, Sender};
#[cfg(doc)]
use crate::error::Error;
use crate::error::Result;
use crate::message::Wait;

impl<T, C> Sender<T, C> {
    /// Sends the whole of `file` (from offset 0, as long as it is now) as one message;
    /// returns its length.
    ///
    /// On Linux the bytes go from the page cache to the connection with `sendfile(2)`, with
    /// no copy through user space; elsewhere, or where the kernel refuses, they are read
    /// and written in 256 KiB pieces. Blocks until the kernel has taken the whole file.
    ///
    /// # Errors
    ///
    /// - [`Error::Io`] when the file cannot be read, or as [`send`](Sender::send) when the
    ///   peer is gone.
    /// - [`Error::Io`] of kind `UnexpectedEof` when the file shrank while being sent. The
    ///   message cannot be finished: the sender is broken for good (every later send fails
    ///   with kind `BrokenPipe`), and a socket is shut down for writing, so the peer's
    ///   receive ends with [`Error::Truncated`] instead of misreading the stream.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("procwire-doc-sf-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let src = dir.join("data.bin");
    /// std::fs::write(&src, b"file contents")?;
    /// let (tx, rx) = procwire::pipe::<()>()?;
    /// assert_eq!(tx.send_file(&std::fs::File::open(&src)?)?, 13);
    /// assert_eq!(rx.recv_bytes()?, b"file contents");
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_file(&self, file: &File) -> Result<u64> {
        self.io.send_file(file, None)
    }
}

impl<T, C> Receiver<T, C> {
    /// Receives the next message into the file `dest`; returns its length.
    ///
    /// The payload is written to a new temporary file beside `dest` (mode 0o600,
    /// close-on-exec), in pieces of at most 64 KiB: memory use does not depend on the
    /// message's size. When the whole message has arrived, the file is synced to disk and
    /// renamed to `dest`, replacing any file there. On any failure the temporary file is
    /// removed and `dest` is left as it was: there is never a partial file at `dest`.
    ///
    /// `limit` is the largest message accepted, in place of the receiver's
    /// [`max_message_size`](Receiver::max_message_size).
    ///
    /// # Errors
    ///
    /// Each error leaves the stream aligned: either the message was consumed and the next
    /// receive reads the next message, or receiving is over and every later receive fails
    /// too. No receive ever reads a file's bytes as a message.
    ///
    /// - [`Error::Io`] when the temporary file cannot be created (its directory is missing
    ///   or not writable, `dest` names no file), written (disk full, file size limit),
    ///   synced or renamed to `dest` (a directory there, say); the text names the path.
    ///   **The message is consumed** — read and dropped as it arrives when there is no file
    ///   to write it to — so the connection stays usable.
    /// - [`Error::MessageTooLarge`] when the message is longer than `limit` (also when the
    ///   file could not be created either); as with any oversized message, its payload is
    ///   left unread and receiving is disabled afterwards ([`Error::Protocol`]).
    /// - [`Error::Truncated`] when the stream ends inside the message;
    ///   [`Error::Disconnected`] when it ends before it: every later receive fails the same
    ///   way.
    /// - [`Error::Io`] when reading the connection fails (a reset, for which
    ///   [`is_disconnected`](Error::is_disconnected) is true); inside the message the rest
    ///   of it cannot be found, so every later receive fails with [`Error::Truncated`].
    /// - Otherwise as [`recv_bytes`](Receiver::recv_bytes).
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("procwire-doc-rf-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let (tx, rx) = procwire::pipe::<()>()?;
    /// tx.send_bytes(b"saved")?;
    /// let dest = dir.join("saved.txt");
    /// assert_eq!(rx.recv_file(&dest, 1 << 30)?, 5);
    /// assert_eq!(std::fs::read(&dest)?, b"saved");
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv_file(&self, dest: impl AsRef<Path>, limit: u64) -> Result<u64> {
        self.io.recv_file(dest.as_ref(), limit, None)
    }

    /// Receives the next message and writes its payload to `out` in pieces of at most
    /// 64 KiB; returns its length. `limit` replaces the maximum message size for this call.
    ///
    /// # Errors
    ///
    /// - [`Error::MessageTooLarge`] when the message is longer than `limit`.
    /// - [`Error::Io`] when `out` fails; the rest of the message is still consumed (and
    ///   dropped), so the connection stays usable.
    /// - Otherwise as [`recv_bytes`](Receiver::recv_bytes).
    ///
    /// # Examples
    ///
    /// ```
    /// let (tx, rx) = procwire::pipe::<()>()?;
    /// tx.send_bytes(b"streamed")?;
    /// let mut out = Vec::new();
    /// assert_eq!(rx.recv_to_writer(&mut out, 100)?, 8);
    /// assert_eq!(out, b"streamed");
    /// # Ok::<(), procwire::Error>(())
    /// ```
    pub fn recv_to_writer(&self, out: &mut impl Write, limit: u64) -> Result<u64> {
        self.io.recv_to(limit, out, Wait::Block, None)
    }
}
