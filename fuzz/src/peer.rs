//! A procwire receiver with a raw peer that writes crafted bytes, and the reference parser
//! its output is compared with.

use std::fs::File;
use std::io::{ErrorKind, Write};
use std::os::fd::AsFd;

use procwire::{Error, Receiver};

/// A receiver of `Vec<u8>` values (postcard) and the raw write end of its transport.
pub(crate) struct Peer {
    pub(crate) rx: Receiver<Vec<u8>>,
    /// Kept so that the socket's send half stays open; unused.
    _tx: Option<procwire::Sender<()>>,
    writer: Option<File>,
    socket: bool,
    /// Bytes the peer managed to write.
    pub(crate) written: Vec<u8>,
    /// Set when the transport was full: nothing more is written after that.
    stalled: bool,
}

impl Peer {
    /// A socketpair (`socket`) or pipe whose receiver accepts at most `max` bytes a message.
    pub(crate) fn new(socket: bool, max: u64) -> Peer {
        let (rx, tx, writer) = if socket {
            let (ours, theirs) = procwire::duplex::<(), Vec<u8>>().expect("socketpair");
            let writer = dup(&theirs);
            drop(theirs);
            let (tx, rx) = ours.split();
            (rx, Some(tx), writer)
        } else {
            let (tx, rx) = procwire::pipe::<Vec<u8>>().expect("pipe");
            let writer = dup(&tx);
            drop(tx);
            (rx, None, writer)
        };
        rustix::fs::fcntl_setfl(&writer, rustix::fs::OFlags::NONBLOCK).expect("O_NONBLOCK");
        rx.set_max_message_size(max);
        Peer {
            rx,
            _tx: tx,
            writer: Some(writer),
            socket,
            written: Vec::new(),
            stalled: false,
        }
    }

    /// Writes `bytes` without blocking; once the transport is full nothing more is written,
    /// and [`written`](Peer::written) says what was.
    pub(crate) fn write(&mut self, bytes: &[u8]) {
        let Some(w) = self.writer.as_mut() else {
            return;
        };
        if self.stalled {
            return;
        }
        let n = write_what_fits(w, bytes);
        self.written.extend_from_slice(&bytes[..n]);
        self.stalled = n < bytes.len();
    }

    /// Ends the stream: the receiver sees end of file after the bytes written.
    pub(crate) fn close(&mut self) {
        if let Some(w) = self.writer.take() {
            if self.socket {
                rustix::net::shutdown(&w, rustix::net::Shutdown::Write).expect("shutdown");
            }
        }
    }
}

/// Writes as much of `bytes` to the non-blocking `w` as fits; returns how much that was.
pub(crate) fn write_what_fits(w: &mut File, bytes: &[u8]) -> usize {
    let mut done = 0;
    while done < bytes.len() {
        match w.write(&bytes[done..]) {
            Ok(n) => done += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) => panic!("raw write failed: {e}"),
        }
    }
    done
}

fn dup(fd: impl AsFd) -> File {
    File::from(fd.as_fd().try_clone_to_owned().expect("dup"))
}

/// How a byte stream ends, as the reference parser sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum End {
    Disconnected,
    Truncated { received: u64, expected: u64 },
    TooLarge { len: u64, limit: u64 },
    Malformed,
}

impl End {
    /// Whether `e` is the error this end must give.
    pub(crate) fn matches(&self, e: &Error) -> bool {
        match (self, e) {
            (End::Disconnected, Error::Disconnected) | (End::Malformed, Error::Protocol(_)) => true,
            (
                End::Truncated { received, expected },
                Error::Truncated {
                    received: r,
                    expected: x,
                },
            ) => received == r && expected == x,
            (End::TooLarge { len, limit }, Error::MessageTooLarge { len: l, limit: m }) => {
                len == l && limit == m
            }
            _ => false,
        }
    }
}

/// The messages in `stream` and how it ends, for a receiver whose limit is `max`: a
/// reference parser written from the wire-format description (docs/wire-format.md),
/// sharing no code with the library's.
pub(crate) fn parse(stream: &[u8], max: u64) -> (Vec<&[u8]>, End) {
    let (items, end) = parse_items(stream, max, false);
    let messages = items
        .into_iter()
        .map(|m| m.expect("no memfd frames without the opt-in"))
        .collect();
    (messages, end)
}

/// As [`parse`], for a receiver that took `accept_large_memfd` when `memfd`: a frame of
/// length −2 is then 44 bytes long (its head and its end record), and since no descriptor ever comes with this peer's
/// bytes, every whole one is refused (`None`) and the stream goes on.
pub(crate) fn parse_items(mut stream: &[u8], max: u64, memfd: bool) -> (Vec<Option<&[u8]>>, End) {
    const MEMFD_FRAME: usize = 44;
    let mut messages = Vec::new();
    loop {
        if stream.is_empty() {
            return (messages, End::Disconnected);
        }
        if stream.len() < 4 {
            return (messages, truncated(stream.len(), 4));
        }
        let short = i32::from_be_bytes(stream[..4].try_into().expect("4 bytes"));
        let (header_len, len) = match short {
            -1 if stream.len() < 12 => return (messages, truncated(stream.len(), 12)),
            -1 => (
                12,
                u64::from_be_bytes(stream[4..12].try_into().expect("8 bytes")),
            ),
            -2 if memfd && stream.len() < MEMFD_FRAME => {
                return (messages, truncated(stream.len(), MEMFD_FRAME as u64))
            }
            -2 if memfd => {
                messages.push(None);
                stream = &stream[MEMFD_FRAME..];
                continue;
            }
            n if n < 0 => return (messages, End::Malformed),
            n => (4, n as u64),
        };
        if len > max {
            return (messages, End::TooLarge { len, limit: max });
        }
        if len > (stream.len() - header_len) as u64 {
            return (messages, truncated(stream.len(), header_len as u64 + len));
        }
        let (payload, rest) = stream[header_len..].split_at(len as usize);
        messages.push(Some(payload));
        stream = rest;
    }
}

fn truncated(received: usize, expected: u64) -> End {
    End::Truncated {
        received: received as u64,
        expected,
    }
}
