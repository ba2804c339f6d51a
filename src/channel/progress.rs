//! Large transfers that report their progress: [`Sender::send_bytes_with_progress`],
//! [`Sender::send_file_with_progress`], [`Receiver::recv_bytes_into_with_progress`] and
//! [`Receiver::recv_file_with_progress`].
//!
//! Each calls `progress(done, total)` with the payload bytes moved so far and the
//! message's payload length: at most once per kernel write or read, with counts that only
//! grow, and last with `(total, total)` when the whole message went through (also for an
//! empty one). A message that fails part-way ends its reports where it stopped. The
//! callback runs on the calling thread, while the half's lock is held: it should be quick
//! (update a progress bar, store a number) and must not use the same half.
//!
//! The plain methods (`send_bytes`, `recv_bytes_into`, `send_file`, `recv_file`) are
//! unchanged and do no extra work.

use std::fs::File;
use std::path::Path;

use bytemuck::Pod;

use super::{Receiver, Sender};
#[cfg(doc)]
use crate::error::Error;
use crate::error::Result;

impl<T, C> Sender<T, C> {
    /// [`send_bytes`](Sender::send_bytes), calling `progress(sent, total)` as the kernel
    /// takes the payload's bytes.
    ///
    /// `progress` runs at most once per kernel write or read, with counts that only grow,
    /// and last with `(total, total)` once the whole message went through (also for an
    /// empty one). It runs on this thread while the half's lock is held: keep it quick, and
    /// do not use this half in it.
    ///
    /// The payload goes out in writes of at most 1 MiB (a blocking write returns only when
    /// the kernel has taken all it was given, so one large write would report once).
    ///
    /// # Errors
    ///
    /// As [`send_bytes`](Sender::send_bytes).
    ///
    /// # Examples
    ///
    /// ```
    /// let (tx, rx) = procwire::pipe::<()>()?;
    /// let data = vec![7u8; 3 << 20];
    /// let sender = std::thread::spawn(move || {
    ///     let mut seen = Vec::new();
    ///     tx.send_bytes_with_progress(&data, |sent, total| seen.push((sent, total)))?;
    ///     Ok::<_, procwire::Error>(seen)
    /// });
    /// assert_eq!(rx.recv_bytes()?.len(), 3 << 20);
    /// let seen = sender.join().unwrap()?;
    /// assert_eq!(seen.last(), Some(&(3 << 20, 3 << 20)));
    /// assert!(seen.windows(2).all(|w| w[0].0 < w[1].0));
    /// # Ok::<(), procwire::Error>(())
    /// ```
    pub fn send_bytes_with_progress<P: Pod>(
        &self,
        data: &[P],
        mut progress: impl FnMut(u64, u64),
    ) -> Result<()> {
        self.io
            .send_bytes_reporting(bytemuck::cast_slice(data), &mut progress)
    }

    /// [`send_file`](Sender::send_file), calling `progress(sent, total)` as the kernel
    /// takes the file's bytes. `sendfile(2)` is then asked for at most 1 MiB a call.
    ///
    /// `progress` runs at most once per kernel write or read, with counts that only grow,
    /// and last with `(total, total)` once the whole message went through (also for an
    /// empty one). It runs on this thread while the half's lock is held: keep it quick, and
    /// do not use this half in it.
    ///
    /// # Errors
    ///
    /// As [`send_file`](Sender::send_file).
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("procwire-doc-sfp-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let src = dir.join("data.bin");
    /// std::fs::write(&src, b"file contents")?;
    /// let (tx, rx) = procwire::pipe::<()>()?;
    /// let mut last = (0, 0);
    /// tx.send_file_with_progress(&std::fs::File::open(&src)?, |sent, total| last = (sent, total))?;
    /// assert_eq!(last, (13, 13));
    /// assert_eq!(rx.recv_bytes()?, b"file contents");
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_file_with_progress(
        &self,
        file: &File,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<u64> {
        self.io.send_file(file, Some(&mut progress))
    }
}

impl<T, C> Receiver<T, C> {
    /// [`recv_bytes_into`](Receiver::recv_bytes_into), calling `progress(received,
    /// total)` as the payload arrives. A message longer than `out` comes back in
    /// [`Error::BufferTooShort`] as with `recv_bytes_into`, without progress reports.
    ///
    /// `progress` runs at most once per kernel write or read, with counts that only grow,
    /// and last with `(total, total)` once the whole message went through (also for an
    /// empty one). It runs on this thread while the half's lock is held: keep it quick, and
    /// do not use this half in it.
    ///
    /// # Errors
    ///
    /// As [`recv_bytes_into`](Receiver::recv_bytes_into).
    ///
    /// # Examples
    ///
    /// ```
    /// let (tx, rx) = procwire::pipe::<()>()?;
    /// tx.send_bytes(&[1u32, 2, 3])?;
    /// let mut out = [0u32; 4];
    /// let mut reports = Vec::new();
    /// let n = rx.recv_bytes_into_with_progress(&mut out, |got, total| reports.push((got, total)))?;
    /// assert_eq!((n, out), (12, [1, 2, 3, 0]));
    /// assert_eq!(reports, [(12, 12)]);
    /// # Ok::<(), procwire::Error>(())
    /// ```
    pub fn recv_bytes_into_with_progress<P: Pod>(
        &self,
        out: &mut [P],
        mut progress: impl FnMut(u64, u64),
    ) -> Result<usize> {
        self.io
            .recv_into_reporting(bytemuck::cast_slice_mut(out), &mut progress)
    }

    /// [`recv_file`](Receiver::recv_file), calling `progress(received, total)` as the
    /// payload arrives.
    ///
    /// `progress` runs at most once per kernel write or read, with counts that only grow,
    /// and last with `(total, total)` once the whole message went through (also for an
    /// empty one). It runs on this thread while the half's lock is held: keep it quick, and
    /// do not use this half in it.
    ///
    /// # Errors
    ///
    /// As [`recv_file`](Receiver::recv_file).
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("procwire-doc-rfp-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let (tx, rx) = procwire::pipe::<()>()?;
    /// tx.send_bytes(b"saved")?;
    /// let dest = dir.join("saved.txt");
    /// let mut last = (0, 0);
    /// assert_eq!(rx.recv_file_with_progress(&dest, 1 << 30, |got, total| last = (got, total))?, 5);
    /// assert_eq!(last, (5, 5));
    /// assert_eq!(std::fs::read(&dest)?, b"saved");
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv_file_with_progress(
        &self,
        dest: impl AsRef<Path>,
        limit: u64,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<u64> {
        self.io.recv_file(dest.as_ref(), limit, Some(&mut progress))
    }
}
