//! The pickle writer: opcodes for each Python type in a chosen protocol, with protocol
//! 4's framing. The serializer (`ser.rs`) drives it. Pure code: no I/O.

use super::error::PickleError;
use super::value::PyInt;
use super::PickleProtocol;

type Result<T> = std::result::Result<T, PickleError>;

/// The size at which a frame is closed, and from which a `str` or `bytes` payload goes
/// out unframed (CPython's `_FRAME_SIZE_TARGET`).
const FRAME_TARGET: usize = 64 * 1024;

/// How many items one `APPENDS`, `SETITEMS` or `ADDITEMS` takes (CPython's `_BATCHSIZE`).
pub(super) const BATCH: usize = 1000;

/// A pickle being written at the end of a `Vec`.
pub(super) struct Writer<'a> {
    out: &'a mut Vec<u8>,
    protocol: u8,
    /// Where the open frame's `FRAME` opcode is (protocol 4 on).
    frame: Option<usize>,
}

/// The containers that take items in batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Batched {
    List,
    Dict,
    /// A set in protocol 4 on; before, a set is `set(list)`.
    Set,
}

impl<'a> Writer<'a> {
    /// Starts a pickle: `PROTO`, and the first frame.
    pub(super) fn start(out: &'a mut Vec<u8>, protocol: PickleProtocol) -> Writer<'a> {
        let protocol = protocol.number();
        out.extend_from_slice(&[0x80, protocol]);
        let mut w = Writer {
            out,
            protocol,
            frame: None,
        };
        w.open_frame();
        w
    }

    /// Ends the pickle: `STOP`, and closes the last frame.
    pub(super) fn finish(mut self) {
        self.out.push(b'.');
        self.close_frame();
    }

    fn open_frame(&mut self) {
        if self.protocol >= 4 {
            self.frame = Some(self.out.len());
            self.out.extend_from_slice(&[0x95; 9]);
        }
    }

    /// Writes the open frame's length, or removes it when empty.
    fn close_frame(&mut self) {
        if let Some(at) = self.frame.take() {
            let len = self.out.len() - at - 9;
            if len == 0 {
                self.out.truncate(at);
            } else {
                self.out[at + 1..at + 9].copy_from_slice(&(len as u64).to_le_bytes());
            }
        }
    }

    /// Called before each opcode: closes a frame that has reached its target size.
    fn boundary(&mut self) {
        if let Some(at) = self.frame {
            if self.out.len() - at - 9 >= FRAME_TARGET {
                self.close_frame();
                self.open_frame();
            }
        }
    }

    fn op(&mut self, bytes: &[u8]) {
        self.boundary();
        self.out.extend_from_slice(bytes);
    }

    /// An opcode with a length-prefixed payload; a large payload goes out unframed.
    fn op_with_data(&mut self, header: &[u8], data: &[u8]) {
        self.boundary();
        if self.frame.is_some() && data.len() >= FRAME_TARGET {
            self.close_frame();
            self.out.extend_from_slice(header);
            self.out.extend_from_slice(data);
            self.open_frame();
        } else {
            self.out.reserve(header.len() + data.len());
            self.out.extend_from_slice(header);
            self.out.extend_from_slice(data);
        }
    }

    pub(super) fn none(&mut self) {
        self.op(b"N");
    }

    pub(super) fn bool(&mut self, b: bool) {
        self.op(if b { b"\x88" } else { b"\x89" });
    }

    pub(super) fn i64(&mut self, n: i64) {
        if let Ok(small) = u8::try_from(n) {
            self.op(&[b'K', small]);
        } else if let Ok(small) = u16::try_from(n) {
            let [a, b] = small.to_le_bytes();
            self.op(&[b'M', a, b]);
        } else if let Ok(n) = i32::try_from(n) {
            let [a, b, c, d] = n.to_le_bytes();
            self.op(&[b'J', a, b, c, d]);
        } else if self.protocol == 2 {
            // `INT` text: Python 2 reads it as an `int` (LONG1 would be a `long`).
            self.op(format!("I{n}\n").as_bytes());
        } else {
            self.int(&PyInt::from(n));
        }
    }

    pub(super) fn int(&mut self, i: &PyInt) {
        match i.as_i64() {
            Some(n) if self.protocol == 2 || i32::try_from(n).is_ok() => self.i64(n),
            _ => {
                let bytes = i.to_le_bytes();
                match u8::try_from(bytes.len()) {
                    Ok(n) => self.op_with_data(&[0x8a, n], &bytes),
                    Err(_) => {
                        let mut header = [0x8b, 0, 0, 0, 0];
                        header[1..].copy_from_slice(&(bytes.len() as u32).to_le_bytes());
                        self.op_with_data(&header, &bytes);
                    }
                }
            }
        }
    }

    pub(super) fn f64(&mut self, x: f64) {
        let mut op = [b'G'; 9];
        op[1..].copy_from_slice(&x.to_be_bytes());
        self.op(&op);
    }

    /// `str`: `SHORT_BINUNICODE` (protocol 4 on), `BINUNICODE`, `BINUNICODE8` (4 on).
    pub(super) fn str(&mut self, s: &str) -> Result<()> {
        let len = s.len();
        if self.protocol >= 4 && len < 256 {
            self.op_with_data(&[0x8c, len as u8], s.as_bytes());
        } else if let Ok(n) = u32::try_from(len) {
            let mut header = [b'X', 0, 0, 0, 0];
            header[1..].copy_from_slice(&n.to_le_bytes());
            self.op_with_data(&header, s.as_bytes());
        } else {
            self.long_data(0x8d, s.as_bytes(), "str")?;
        }
        Ok(())
    }

    /// A payload beyond 4 GiB: protocol 4 on only.
    fn long_data(&mut self, op: u8, data: &[u8], what: &str) -> Result<()> {
        if self.protocol < 4 {
            return Err(PickleError::new(format!(
                "a {what} of {} bytes needs pickle protocol 4 or later (this codec writes {})",
                data.len(),
                self.protocol
            )));
        }
        let mut header = [op; 9];
        header[1..].copy_from_slice(&(data.len() as u64).to_le_bytes());
        self.op_with_data(&header, data);
        Ok(())
    }

    /// `bytes`: `SHORT_BINBYTES`, `BINBYTES`, `BINBYTES8` (protocol 3 on); protocol 2 has
    /// no bytes opcode and calls `_codecs.encode(text, 'latin1')`, or `bytes()` for
    /// empty ones, as CPython does, which Python 2 reads as a `str`.
    pub(super) fn bytes(&mut self, b: &[u8]) -> Result<()> {
        if self.protocol == 2 {
            if b.is_empty() {
                self.global("bytes");
                self.op(b")R");
            } else {
                self.op(b"c_codecs\nencode\n");
                self.str(&latin1(b))?;
                self.str("latin1")?;
                self.op(b"\x86R");
            }
            return Ok(());
        }
        if let Ok(n) = u8::try_from(b.len()) {
            self.op_with_data(&[b'C', n], b);
        } else if let Ok(n) = u32::try_from(b.len()) {
            let mut header = [b'B', 0, 0, 0, 0];
            header[1..].copy_from_slice(&n.to_le_bytes());
            self.op_with_data(&header, b);
        } else {
            self.long_data(0x8e, b, "bytes")?;
        }
        Ok(())
    }

    /// `bytearray`: `BYTEARRAY8` (protocol 5), `bytearray(bytes)` (3 and 4),
    /// `bytearray(text, 'latin-1')` (2, which Python 2 reads too).
    pub(super) fn bytearray(&mut self, b: &[u8]) -> Result<()> {
        match self.protocol {
            5.. => {
                let mut header = [0x96; 9];
                header[1..].copy_from_slice(&(b.len() as u64).to_le_bytes());
                self.op_with_data(&header, b);
            }
            3 | 4 => {
                self.global("bytearray");
                self.bytes(b)?;
                self.op(b"\x85R");
            }
            _ => {
                self.global("bytearray");
                self.str(&latin1(b))?;
                self.str("latin-1")?;
                self.op(b"\x86R");
            }
        }
        Ok(())
    }

    /// `GLOBAL` for a builtin: `__builtin__` in protocol 2, as Python 2 names it.
    fn global(&mut self, name: &str) {
        let module = if self.protocol == 2 {
            "__builtin__"
        } else {
            "builtins"
        };
        self.op(format!("c{module}\n{name}\n").as_bytes());
    }

    /// Starts a list, dict or set, empty.
    pub(super) fn open(&mut self, kind: Batched) {
        match kind {
            Batched::List => self.op(b"]"),
            Batched::Dict => self.op(b"}"),
            Batched::Set if self.protocol >= 4 => self.op(b"\x8f"),
            Batched::Set => {
                self.global("set");
                self.op(b"]");
            }
        }
    }

    /// Starts a batch of items (call before the first item of each batch).
    pub(super) fn mark(&mut self) {
        self.op(b"(");
    }

    /// Ends a batch of items that began with [`mark`](Writer::mark).
    pub(super) fn add_batch(&mut self, kind: Batched) {
        match kind {
            Batched::List => self.op(b"e"),
            Batched::Dict => self.op(b"u"),
            Batched::Set if self.protocol >= 4 => self.op(b"\x90"),
            Batched::Set => self.op(b"e"),
        }
    }

    /// Ends a container started with [`open`](Writer::open).
    pub(super) fn close(&mut self, kind: Batched) {
        if kind == Batched::Set && self.protocol < 4 {
            self.op(b"\x85R");
        }
    }

    /// `SETITEM`: the key and value on top go into the dict below.
    pub(super) fn setitem(&mut self) {
        self.op(b"s");
    }

    /// Starts a tuple of `len` items.
    pub(super) fn open_tuple(&mut self, len: usize) {
        if len > 3 {
            self.op(b"(");
        }
    }

    /// Ends a tuple of `len` items.
    pub(super) fn close_tuple(&mut self, len: usize) {
        match len {
            0 => self.op(b")"),
            1 => self.op(b"\x85"),
            2 => self.op(b"\x86"),
            3 => self.op(b"\x87"),
            _ => self.op(b"t"),
        }
    }

    /// Starts a frozenset: `MARK` (protocol 4 on), or `frozenset(list)` before.
    pub(super) fn open_frozenset(&mut self) {
        if self.protocol >= 4 {
            self.op(b"(");
        } else {
            self.global("frozenset");
            self.op(b"](");
        }
    }

    pub(super) fn close_frozenset(&mut self) {
        if self.protocol >= 4 {
            self.op(b"\x91");
        } else {
            self.op(b"e\x85R");
        }
    }
}

/// Bytes as the text whose Latin-1 encoding they are.
fn latin1(b: &[u8]) -> String {
    b.iter().map(|&b| char::from(b)).collect()
}
