//! The pickle reader: a pickle of protocol 0 to 5 into a [`PyValue`].
//!
//! A stack machine over the opcodes, as CPython's unpickler, with no recursion (so no
//! nesting overflows it) and no code run: the only callables it knows are the builtin
//! constructors CPython's pickler names for the types [`PyValue`] holds (`set`,
//! `frozenset`, `bytearray`, `bytes` and `_codecs.encode`, in protocols 0 to 3). Shared
//! values (memo entries, `DUP`) are kept once, changed in place while they are built, and
//! copied where they are nested; the scanner that runs first (`scan.rs`) bounds what those
//! copies add up to. Pure code: no I/O.

use std::collections::HashMap;

use super::builtins::{apply, hashable, Builtin};
use super::error::PickleError;
use super::text;
use super::value::{PyInt, PyValue};

type Result<T> = std::result::Result<T, PickleError>;

/// The highest protocol read; CPython 3.8 to 3.14 write at most 5.
const HIGHEST_PROTOCOL: u8 = 5;

/// Decimal digits an int in a text opcode may have: CPython's default
/// `sys.get_int_max_str_digits()` (decimal parsing costs time quadratic in the length).
const MAX_DIGITS: usize = 4300;

/// What the stack and the memo hold besides values.
#[derive(Debug, Clone)]
enum Item {
    Value(PyValue),
    Builtin(Builtin),
    /// An object of a class with no counterpart, or such a class (lenient mode only):
    /// `None` once it is nested or returned.
    Opaque,
}

/// What an opcode adds items to.
#[derive(Debug, Clone, Copy)]
enum Adds {
    List,
    Dict,
    Set,
}

#[derive(Debug)]
enum Slot {
    Mark,
    Item(Item),
    /// An item the memo or another slot refers to: an index into `Machine::shared`.
    Shared(usize),
}

struct Machine<'a> {
    input: &'a [u8],
    pos: usize,
    lenient: bool,
    stack: Vec<Slot>,
    shared: Vec<Item>,
    memo: HashMap<u64, usize>,
}

/// Reads the pickle at the start of `input`. With `lenient`, objects of other classes
/// become `None` instead of an error.
pub(super) fn read(input: &[u8], lenient: bool) -> Result<PyValue> {
    let mut m = Machine {
        input,
        pos: 0,
        lenient,
        stack: Vec::new(),
        shared: Vec::new(),
        memo: HashMap::new(),
    };
    loop {
        if let Some(value) = m.step()? {
            return Ok(value);
        }
    }
}

fn err<T>(message: impl Into<String>) -> Result<T> {
    Err(PickleError::new(message))
}

/// The value of an item nested into another value or returned.
fn nest(item: &Item, lenient: bool) -> Result<PyValue> {
    match item {
        Item::Value(v) => Ok(v.clone()),
        Item::Opaque => Ok(PyValue::None),
        Item::Builtin(_) if lenient => Ok(PyValue::None),
        Item::Builtin(b) => err(format!(
            "the pickle holds the callable {} itself, not a value",
            b.name()
        )),
    }
}

/// The value a slot holds: moved out of the stack, or copied from a shared item.
#[inline]
fn value_of(slot: Slot, shared: &[Item], lenient: bool) -> Result<PyValue> {
    match slot {
        Slot::Item(Item::Value(v)) => Ok(v),
        Slot::Item(item) => nest(&item, lenient),
        Slot::Shared(i) => nest(&shared[i], lenient),
        Slot::Mark => err("the pickle uses a mark as a value"),
    }
}

impl<'a> Machine<'a> {
    /// Runs one opcode; the result after `STOP`.
    fn step(&mut self) -> Result<Option<PyValue>> {
        let op = self.take(1)?[0];
        match op {
            b'.' => return self.stop().map(Some),
            b'(' => self.stack.push(Slot::Mark),
            b'0' => drop(self.pop()?),
            b'1' => drop(self.pop_to_mark()?),
            b'2' => self.dup()?,
            0x80 => self.proto()?,
            0x95 => drop(self.take(8)?), // FRAME: its bytes follow inline
            b'N' => self.value(PyValue::None),
            0x88 => self.value(PyValue::Bool(true)),
            0x89 => self.value(PyValue::Bool(false)),
            b'K' => {
                let [n] = self.array()?;
                self.value(PyValue::from(n));
            }
            b'M' => {
                let n = u16::from_le_bytes(self.array()?);
                self.value(PyValue::from(n));
            }
            b'J' => {
                let n = i32::from_le_bytes(self.array()?);
                self.value(PyValue::from(n));
            }
            0x8a => self.long(1)?,
            0x8b => self.long(4)?,
            b'G' => {
                let bits = u64::from_be_bytes(self.array()?);
                self.value(PyValue::Float(f64::from_bits(bits)));
            }
            b'I' | b'L' | b'F' | b'S' | b'V' => self.text_op(op)?,
            b'X' | 0x8c | 0x8d => self.str_op(op)?,
            b'B' | b'C' | 0x8e | 0x96 | b'T' | b'U' => self.bytes_op(op)?,
            b']' => self.value(PyValue::List(Vec::new())),
            b'}' => self.value(PyValue::Dict(Vec::new())),
            b')' => self.value(PyValue::Tuple(Vec::new())),
            0x8f => self.value(PyValue::Set(Vec::new())),
            b'l' => self.collect(PyValue::List)?,
            b't' => self.collect(PyValue::Tuple)?,
            0x91 => self.frozenset()?,
            b'd' => self.dict()?,
            0x85..=0x87 => self.small_tuple(usize::from(op - 0x84))?,
            b'a' => self.add(Some(1), Adds::List)?,
            b'e' => self.add(None, Adds::List)?,
            b's' => self.add(Some(2), Adds::Dict)?,
            b'u' => self.add(None, Adds::Dict)?,
            0x90 => self.add(None, Adds::Set)?,
            b'R' => self.reduce()?,
            b'c' => self.global()?,
            0x93 => self.stack_global()?,
            b'i' | b'o' | 0x81 | 0x92 | b'b' => self.object(op)?,
            b'p' | b'q' | b'r' | 0x94 => self.memoize(op)?,
            b'g' | b'h' | b'j' => self.get(op)?,
            0x82..=0x84 => return err("the pickle uses the copyreg extension registry, which names classes with no Rust counterpart"),
            b'P' | b'Q' => return err("the pickle refers to persistent objects, which only a Python unpickler can resolve"),
            0x97 | 0x98 => return err("the pickle refers to out-of-band buffers (protocol 5 buffer_callback), which a message does not carry"),
            _ => return err(format!("invalid pickle opcode 0x{op:02x}")),
        }
        Ok(None)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let input: &'a [u8] = self.input;
        match self.pos.checked_add(n).filter(|&e| e <= input.len()) {
            Some(end) => {
                let bytes = &input[self.pos..end];
                self.pos = end;
                Ok(bytes)
            }
            None => err("the pickle ends inside an opcode"),
        }
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    /// A little-endian length of `n` bytes (1, 4 or 8); `signed` 4-byte lengths (the
    /// string opcodes of protocol 1) may not be negative.
    fn len(&mut self, n: usize, signed: bool) -> Result<usize> {
        let bytes = self.take(n)?;
        if signed && bytes[n - 1] & 0x80 != 0 {
            return err("the pickle has a negative length");
        }
        let len = bytes
            .iter()
            .rev()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        usize::try_from(len)
            .or_else(|_| err("the pickle has a length beyond this machine's memory"))
    }

    fn data(&mut self, n: usize, signed: bool) -> Result<&'a [u8]> {
        let len = self.len(n, signed)?;
        self.take(len)
    }

    fn line(&mut self) -> Result<&'a [u8]> {
        let rest = &self.input[self.pos..];
        match rest.iter().position(|&b| b == b'\n') {
            Some(n) => {
                self.pos += n + 1;
                Ok(&rest[..n])
            }
            None => err("the pickle ends inside a text argument"),
        }
    }

    fn value(&mut self, v: PyValue) {
        self.stack.push(Slot::Item(Item::Value(v)));
    }

    fn proto(&mut self) -> Result<()> {
        let [p] = self.array()?;
        if p > HIGHEST_PROTOCOL {
            return err(format!(
                "unsupported pickle protocol {p} (at most {HIGHEST_PROTOCOL})"
            ));
        }
        Ok(())
    }

    /// `LONG1` (a 1-byte length) or `LONG4` (a signed 4-byte one).
    fn long(&mut self, n: usize) -> Result<()> {
        let bytes = self.data(n, n == 4)?;
        self.value(PyValue::Int(PyInt::from_le_bytes(bytes)));
        Ok(())
    }

    /// The protocol-0 opcodes whose argument is a line of text.
    fn text_op(&mut self, op: u8) -> Result<()> {
        let line = self.line()?;
        let v = match op {
            b'I' if line == b"00" => PyValue::Bool(false),
            b'I' if line == b"01" => PyValue::Bool(true),
            b'I' | b'L' => PyValue::Int(decimal(line)?),
            b'F' => {
                let text = std::str::from_utf8(line).ok().map(str::trim);
                match text.and_then(|t| t.parse().ok()) {
                    Some(x) => PyValue::Float(x),
                    None => return err("the pickle has an invalid float"),
                }
            }
            b'S' => PyValue::Bytes(
                text::unquote(line)
                    .ok_or_else(|| PickleError::new("the pickle has an invalid quoted string"))?,
            ),
            _ => PyValue::Str(text::raw_unicode_escape(line).ok_or_else(|| {
                PickleError::new("the pickle has an invalid unicode text (a lone surrogate?)")
            })?),
        };
        self.value(v);
        Ok(())
    }

    fn str_op(&mut self, op: u8) -> Result<()> {
        let n = match op {
            0x8c => 1,
            b'X' => 4,
            _ => 8,
        };
        let bytes = self.data(n, false)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => {
                self.value(PyValue::Str(s.to_owned()));
                Ok(())
            }
            Err(_) => err("the pickle holds a str that is not valid UTF-8 (a lone surrogate?), which a Rust String cannot hold"),
        }
    }

    /// `bytes` (protocol 3 on), Python 2 `str` (protocols 1 and 2), `bytearray` (5).
    fn bytes_op(&mut self, op: u8) -> Result<()> {
        let (n, signed) = match op {
            b'C' | b'U' => (1, false),
            b'B' => (4, false),
            b'T' => (4, true),
            _ => (8, false),
        };
        let bytes = self.data(n, signed)?.to_vec();
        self.value(if op == 0x96 {
            PyValue::ByteArray(bytes)
        } else {
            PyValue::Bytes(bytes)
        });
        Ok(())
    }

    fn pop(&mut self) -> Result<Slot> {
        self.stack
            .pop()
            .ok_or_else(|| PickleError::new("the pickle's stack underflows"))
    }

    fn value_of(&mut self, slot: Slot) -> Result<PyValue> {
        value_of(slot, &self.shared, self.lenient)
    }

    fn pop_value(&mut self) -> Result<PyValue> {
        let slot = self.pop()?;
        self.value_of(slot)
    }

    /// Pops the items above the topmost mark, and the mark.
    fn pop_to_mark(&mut self) -> Result<Vec<PyValue>> {
        let Some(mark) = self.stack.iter().rposition(|s| matches!(s, Slot::Mark)) else {
            return err("the pickle has no mark to pop to");
        };
        let items = self.pop_from(mark + 1)?;
        self.stack.pop();
        Ok(items)
    }

    fn pop_n(&mut self, n: usize) -> Result<Vec<PyValue>> {
        match self.stack.len().checked_sub(n) {
            Some(start) => self.pop_from(start),
            None => err("the pickle's stack underflows"),
        }
    }

    /// Pops the slots from `start` on, as values.
    fn pop_from(&mut self, start: usize) -> Result<Vec<PyValue>> {
        let Machine {
            stack,
            shared,
            lenient,
            ..
        } = self;
        let mut out = Vec::with_capacity(stack.len() - start);
        for slot in stack.drain(start..) {
            out.push(value_of(slot, shared, *lenient)?);
        }
        Ok(out)
    }

    fn collect(&mut self, make: fn(Vec<PyValue>) -> PyValue) -> Result<()> {
        let items = self.pop_to_mark()?;
        self.value(make(items));
        Ok(())
    }

    fn small_tuple(&mut self, n: usize) -> Result<()> {
        let items = self.pop_n(n)?;
        self.value(PyValue::Tuple(items));
        Ok(())
    }

    fn frozenset(&mut self) -> Result<()> {
        let items = self.pop_to_mark()?;
        hashable(&items, "a frozenset element")?;
        self.value(PyValue::FrozenSet(items));
        Ok(())
    }

    fn dict(&mut self) -> Result<()> {
        let items = self.pop_to_mark()?;
        let pairs = pairs(items)?;
        self.value(PyValue::Dict(pairs));
        Ok(())
    }

    /// `APPEND(S)`, `SETITEM(S)`, `ADDITEMS`: pops `count` values (or down to the mark)
    /// and adds them to the list, dict or set below: any items to a list, key-value pairs
    /// to a dict, hashable items to a set.
    fn add(&mut self, count: Option<usize>, to: Adds) -> Result<()> {
        let items = match count {
            Some(n) => self.pop_n(n)?,
            None => self.pop_to_mark()?,
        };
        let item = match self.stack.last_mut() {
            Some(Slot::Item(item)) => item,
            Some(Slot::Shared(i)) => &mut self.shared[*i],
            _ => return err("the pickle adds items to a mark or an empty stack"),
        };
        match (item, to) {
            (Item::Value(PyValue::List(v)), Adds::List) => v.extend(items),
            (Item::Value(PyValue::Dict(v)), Adds::Dict) => v.extend(pairs(items)?),
            (Item::Value(PyValue::Set(v)), Adds::Set) => {
                hashable(&items, "a set element")?;
                v.extend(items);
            }
            (Item::Opaque, _) if self.lenient => {}
            (Item::Value(v), _) => {
                let op = match to {
                    Adds::List => "APPEND",
                    Adds::Dict => "SETITEM",
                    Adds::Set => "ADDITEMS",
                };
                return err(format!("the pickle applies {op} to a {}", v.type_name()));
            }
            _ => return err("the pickle adds items to an object with no Rust counterpart"),
        }
        Ok(())
    }

    fn stop(&mut self) -> Result<PyValue> {
        match self.pop()? {
            Slot::Shared(i) => {
                let item = std::mem::replace(&mut self.shared[i], Item::Opaque);
                self.value_of(Slot::Item(item))
            }
            slot => self.value_of(slot),
        }
    }

    fn share_top(&mut self) -> Result<usize> {
        match self.stack.pop() {
            Some(Slot::Shared(i)) => {
                self.stack.push(Slot::Shared(i));
                Ok(i)
            }
            Some(Slot::Item(item)) => {
                self.shared.push(item);
                let i = self.shared.len() - 1;
                self.stack.push(Slot::Shared(i));
                Ok(i)
            }
            Some(Slot::Mark) => err("the pickle memoizes a mark"),
            None => err("the pickle's stack underflows"),
        }
    }

    fn dup(&mut self) -> Result<()> {
        let i = self.share_top()?;
        self.stack.push(Slot::Shared(i));
        Ok(())
    }

    fn memoize(&mut self, op: u8) -> Result<()> {
        let id = match op {
            b'p' => memo_id(self.line()?)?,
            b'q' => u64::from(self.take(1)?[0]),
            b'r' => u64::from(u32::from_le_bytes(self.array()?)),
            _ => self.memo.len() as u64,
        };
        let i = self.share_top()?;
        self.memo.insert(id, i);
        Ok(())
    }

    fn get(&mut self, op: u8) -> Result<()> {
        let id = match op {
            b'g' => memo_id(self.line()?)?,
            b'h' => u64::from(self.take(1)?[0]),
            _ => u64::from(u32::from_le_bytes(self.array()?)),
        };
        match self.memo.get(&id) {
            Some(&i) => {
                self.stack.push(Slot::Shared(i));
                Ok(())
            }
            None => err(format!("the pickle refers to a missing memo entry {id}")),
        }
    }

    /// `GLOBAL module\nname\n`.
    fn global(&mut self) -> Result<()> {
        let module = self.line()?;
        let name = self.line()?;
        self.push_global(module, name)
    }

    /// `STACK_GLOBAL`: module and name are the two strings on top of the stack.
    fn stack_global(&mut self) -> Result<()> {
        let name = self.pop_value()?;
        let module = self.pop_value()?;
        match (module, name) {
            (PyValue::Str(module), PyValue::Str(name)) => {
                self.push_global(module.as_bytes(), name.as_bytes())
            }
            _ => err("the pickle names a global with values that are not str"),
        }
    }

    fn push_global(&mut self, module: &[u8], name: &[u8]) -> Result<()> {
        let builtin = match (module, name) {
            (b"builtins" | b"__builtin__", b"set") => Builtin::Set,
            (b"builtins" | b"__builtin__", b"frozenset") => Builtin::FrozenSet,
            (b"builtins" | b"__builtin__", b"bytearray") => Builtin::ByteArray,
            (b"builtins" | b"__builtin__", b"bytes") => Builtin::Bytes,
            (b"_codecs", b"encode") => Builtin::Encode,
            _ if self.lenient => {
                self.stack.push(Slot::Item(Item::Opaque));
                return Ok(());
            }
            _ => return Err(PickleError::unknown_class(global_name(module, name))),
        };
        self.stack.push(Slot::Item(Item::Builtin(builtin)));
        Ok(())
    }

    /// The item a slot holds, for a callable.
    fn item(&self, slot: &Slot) -> Option<Item> {
        match slot {
            Slot::Item(item) => Some(item.clone()),
            Slot::Shared(i) => Some(self.shared[*i].clone()),
            Slot::Mark => None,
        }
    }

    /// `REDUCE`: applies one of the builtins to its argument tuple.
    fn reduce(&mut self) -> Result<()> {
        let args = self.pop_value()?;
        let callable = self.pop()?;
        let builtin = match self.item(&callable) {
            Some(Item::Builtin(b)) => b,
            Some(Item::Opaque) if self.lenient => {
                self.stack.push(Slot::Item(Item::Opaque));
                return Ok(());
            }
            _ => return err("the pickle calls something that is not a class or function"),
        };
        let PyValue::Tuple(args) = args else {
            return err("the pickle calls a function with arguments that are not a tuple");
        };
        let value = apply(builtin, args)?;
        self.value(value);
        Ok(())
    }

    /// `INST`, `OBJ`, `NEWOBJ`, `NEWOBJ_EX`, `BUILD`: objects of classes, which only the
    /// lenient mode takes (as `None`).
    fn object(&mut self, op: u8) -> Result<()> {
        let class = match op {
            b'i' => {
                let module = self.line()?;
                let name = self.line()?;
                Some(global_name(module, name))
            }
            _ => None,
        };
        if !self.lenient {
            return Err(match class {
                Some(class) => PickleError::unknown_class(class),
                None => PickleError::new("the pickle builds an object of a class (NEWOBJ, OBJ or BUILD), which has no Rust counterpart"),
            });
        }
        match op {
            b'i' | b'o' => drop(self.pop_to_mark()?),
            0x81 => drop(self.pop_n(2)?),
            0x92 => drop(self.pop_n(3)?),
            _ => {
                // BUILD: the state goes, the object stays.
                self.pop()?;
                return Ok(());
            }
        }
        self.stack.push(Slot::Item(Item::Opaque));
        Ok(())
    }
}

/// Key-value pairs from a flat list; keys must be hashable.
fn pairs(items: Vec<PyValue>) -> Result<Vec<(PyValue, PyValue)>> {
    if !items.len().is_multiple_of(2) {
        return err("the pickle sets a dict key without a value");
    }
    let mut out = Vec::with_capacity(items.len() / 2);
    let mut items = items.into_iter();
    while let (Some(k), Some(v)) = (items.next(), items.next()) {
        if !k.is_hashable() {
            return err(format!(
                "the pickle has a dict key of the unhashable type {}",
                k.type_name()
            ));
        }
        out.push((k, v));
    }
    Ok(out)
}

fn decimal(line: &[u8]) -> Result<PyInt> {
    if line.len() > MAX_DIGITS + 2 {
        return err(format!(
            "the pickle has an int of more than {MAX_DIGITS} decimal digits"
        ));
    }
    PyInt::parse_decimal(line).ok_or_else(|| PickleError::new("the pickle has an invalid int"))
}

fn memo_id(line: &[u8]) -> Result<u64> {
    std::str::from_utf8(line)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| PickleError::new("the pickle has an invalid memo index"))
}

fn global_name(module: &[u8], name: &[u8]) -> String {
    let mut s = format!(
        "{}.{}",
        String::from_utf8_lossy(module),
        String::from_utf8_lossy(name)
    );
    if s.len() > 200 {
        let mut cut = 200;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}
