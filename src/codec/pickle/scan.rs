//! A pass over a pickle's opcodes that bounds what decoding it would build.
//!
//! A decoded value is dropped, compared and deserialized recursively, once per nesting
//! level, so a deeply nested pickle would overflow the stack: 100,000 `TUPLE1` opcodes, a
//! 100 KB message, would abort the process. And the reader (`read.rs`) expands memo
//! references into copies, so a small pickle can name an exponentially large value
//! (`x = [x, x]`, thirty times). This pass runs first, in linear time and without
//! recursion, and refuses both. It models the pickle machine's
//! stack with, for each value, its nesting depth and expanded size; a shared value (one
//! that was memoized or duplicated) may not change once it has been nested in another,
//! so the sizes computed for its containers stay true. CPython's pickler never does that
//! except for self-containing values, which a tree of values cannot hold anyway. Pure
//! code: no I/O.

use std::collections::HashMap;

/// What a decoded value may be.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// Maximum nesting depth; a container of scalars has depth 1.
    pub(super) depth: u32,
    /// Maximum expanded size: data bytes plus 8 per value.
    pub(super) size: u64,
}

/// Why a pickle was refused.
pub(super) type Refusal = String;

/// A value on the modelled stack.
#[derive(Debug, Clone, Copy)]
struct Node {
    depth: u32,
    size: u64,
}

#[derive(Debug, Clone, Copy)]
enum Slot {
    /// A mark.
    Mark,
    /// A value only the stack refers to.
    Val(Node),
    /// A value the memo or another slot may also refer to: an index into `shared`.
    Shared(usize),
}

#[derive(Debug)]
struct SharedNode {
    node: Node,
    /// Whether it has been put into a container; then it may not change.
    nested: bool,
}

/// What popping some items contributes to the value they go into.
#[derive(Debug, Default)]
struct Items {
    depth: u32,
    size: u64,
    count: usize,
}

const SCALAR: u64 = 8;

struct Machine<'a> {
    input: &'a [u8],
    pos: usize,
    limits: Limits,
    stack: Vec<Slot>,
    shared: Vec<SharedNode>,
    memo: HashMap<u64, usize>,
}

/// Checks `input` against `limits`.
pub(super) fn scan(input: &[u8], limits: Limits) -> Result<(), Refusal> {
    let mut m = Machine {
        input,
        pos: 0,
        limits,
        stack: Vec::new(),
        shared: Vec::new(),
        memo: HashMap::new(),
    };
    while m.step()? {}
    Ok(())
}

impl<'a> Machine<'a> {
    /// Runs one opcode; false after `STOP`.
    fn step(&mut self) -> Result<bool, Refusal> {
        let op = self.take(1)?[0];
        match op {
            b'.' => return Ok(false),
            b'(' => self.stack.push(Slot::Mark),
            b'0' => {
                self.pop()?;
            }
            b'1' => {
                self.pop_items(None)?;
            }
            b'2' => self.dup()?,
            0x80 => {
                self.take(1)?; // PROTO
            }
            0x95 => {
                self.take(8)?; // FRAME
            }
            b'N' | 0x88 | 0x89 => self.scalar(0)?,
            b'K' | b'h' => self.scalar_or_get(op, 1)?,
            b'M' => self.scalar_arg(2)?,
            b'J' | b'j' => self.scalar_or_get(op, 4)?,
            b'G' => self.scalar_arg(8)?,
            b'I' | b'L' | b'F' | b'S' | b'V' | b'g' => self.line_op(op)?,
            b'T' | b'X' | b'B' | 0x8b => self.data(4)?,
            b'U' | b'C' | 0x8a | 0x8c => self.data(1)?,
            0x8d | 0x8e | 0x96 => self.data(8)?,
            b']' | b'}' | b')' | 0x8f => self.push(Node {
                depth: 1,
                size: SCALAR,
            })?,
            b'l' | b'd' | b't' | 0x91 => self.build(None)?,
            0x85..=0x87 => self.build(Some(usize::from(op - 0x84)))?,
            b'a' | b'b' => self.extend(Some(1))?,
            b's' => self.extend(Some(2))?,
            b'e' | b'u' | 0x90 => self.extend(None)?,
            b'R' => self.build(Some(2))?,
            0x81 => self.build(Some(2))?,
            0x92 => self.build(Some(3))?,
            b'o' => self.build(None)?,
            b'c' | b'i' => self.global_lines(op)?,
            0x93 => self.stack_global()?,
            b'p' | b'q' | b'r' | 0x94 => self.memoize(op)?,
            _ => return Err(format!("unsupported pickle opcode 0x{op:02x}")),
        }
        Ok(true)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Refusal> {
        let input: &'a [u8] = self.input;
        let end = self.pos.checked_add(n).filter(|&e| e <= input.len());
        let end = end.ok_or_else(|| "pickle ends inside an opcode".to_string())?;
        let bytes = &input[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn line(&mut self) -> Result<&'a [u8], Refusal> {
        let rest = &self.input[self.pos..];
        let n = rest.iter().position(|&b| b == b'\n');
        let n = n.ok_or_else(|| "pickle ends inside a text argument".to_string())?;
        self.pos += n + 1;
        Ok(&rest[..n])
    }

    fn uint(bytes: &[u8]) -> u64 {
        bytes
            .iter()
            .rev()
            .fold(0, |acc, &b| (acc << 8) | u64::from(b))
    }

    fn node(&self, slot: Slot) -> Result<Node, Refusal> {
        match slot {
            Slot::Val(n) => Ok(n),
            Slot::Shared(i) => Ok(self.shared[i].node),
            Slot::Mark => Err("pickle uses a mark as a value".to_string()),
        }
    }

    fn pop(&mut self) -> Result<Slot, Refusal> {
        self.stack
            .pop()
            .ok_or_else(|| "pickle stack underflow".to_string())
    }

    fn top(&self) -> Result<Slot, Refusal> {
        self.stack
            .last()
            .copied()
            .ok_or_else(|| "pickle stack underflow".to_string())
    }

    fn replace_top(&mut self, slot: Slot) -> Result<(), Refusal> {
        let top = self.stack.last_mut();
        *top.ok_or_else(|| "pickle stack underflow".to_string())? = slot;
        Ok(())
    }

    fn push(&mut self, node: Node) -> Result<(), Refusal> {
        self.check(node)?;
        self.stack.push(Slot::Val(node));
        Ok(())
    }

    fn check(&self, node: Node) -> Result<(), Refusal> {
        if node.depth > self.limits.depth {
            return Err(format!(
                "pickle nests deeper than the {}-level limit",
                self.limits.depth
            ));
        }
        if node.size > self.limits.size {
            return Err(format!(
                "pickle expands to more than the {}-byte limit",
                self.limits.size
            ));
        }
        Ok(())
    }

    fn scalar(&mut self, data: usize) -> Result<(), Refusal> {
        self.push(Node {
            depth: 0,
            size: SCALAR + data as u64,
        })
    }

    fn scalar_arg(&mut self, n: usize) -> Result<(), Refusal> {
        self.take(n)?;
        self.scalar(0)
    }

    /// `BININT1`/`BININT` push a number; `BINGET`/`LONG_BINGET` a memo entry.
    fn scalar_or_get(&mut self, op: u8, n: usize) -> Result<(), Refusal> {
        let arg = Self::uint(self.take(n)?);
        match op {
            b'h' | b'j' => self.get(arg),
            _ => self.scalar(0),
        }
    }

    /// The protocol-0 opcodes whose argument is a line of text.
    fn line_op(&mut self, op: u8) -> Result<(), Refusal> {
        let line = self.line()?;
        match op {
            b'g' => self.get(parse_id(line)?),
            _ => self.scalar(line.len()),
        }
    }

    /// Opcodes followed by a little-endian length of `n` bytes and that much data.
    fn data(&mut self, n: usize) -> Result<(), Refusal> {
        let len = Self::uint(self.take(n)?);
        let len = usize::try_from(len).map_err(|_| "pickle data length overflows".to_string())?;
        self.take(len)?;
        self.scalar(len)
    }

    /// Pops `count` values, or down to and including the topmost mark; marks shared
    /// values as nested.
    fn pop_items(&mut self, count: Option<usize>) -> Result<Items, Refusal> {
        let mut items = Items::default();
        let mut left = count;
        loop {
            if left == Some(0) {
                return Ok(items);
            }
            let slot = self.pop()?;
            if let Slot::Mark = slot {
                if count.is_none() {
                    return Ok(items);
                }
                return Err("pickle uses a mark as a value".to_string());
            }
            let node = self.node(slot)?;
            if let Slot::Shared(i) = slot {
                self.shared[i].nested = true;
            }
            items.depth = items.depth.max(node.depth);
            items.size = items.size.saturating_add(node.size);
            items.count += 1;
            left = left.map(|n| n - 1);
        }
    }

    /// Builds a new value from popped items.
    fn build(&mut self, count: Option<usize>) -> Result<(), Refusal> {
        let items = self.pop_items(count)?;
        self.push(Node {
            depth: items.depth + 1,
            size: items.size.saturating_add(SCALAR),
        })
    }

    /// Adds popped items to the value below them (`APPEND`, `SETITEMS`, `BUILD`…).
    fn extend(&mut self, count: Option<usize>) -> Result<(), Refusal> {
        let items = self.pop_items(count)?;
        let slot = self.top()?;
        let old = self.node(slot)?;
        let new = Node {
            depth: old.depth.max(items.depth + 1),
            size: old.size.saturating_add(items.size),
        };
        self.check(new)?;
        match slot {
            Slot::Shared(i) if self.shared[i].nested => {
                Err("pickle changes a value after nesting it (a self-containing value?)".into())
            }
            Slot::Shared(i) => {
                self.shared[i].node = new;
                Ok(())
            }
            _ => self.replace_top(Slot::Val(new)),
        }
    }

    /// Turns the top slot into a shared one and returns its index.
    fn share_top(&mut self) -> Result<usize, Refusal> {
        match self.top()? {
            Slot::Shared(i) => Ok(i),
            Slot::Mark => Err("pickle uses a mark as a value".to_string()),
            Slot::Val(node) => {
                self.shared.push(SharedNode {
                    node,
                    nested: false,
                });
                let i = self.shared.len() - 1;
                self.replace_top(Slot::Shared(i))?;
                Ok(i)
            }
        }
    }

    fn dup(&mut self) -> Result<(), Refusal> {
        let i = self.share_top()?;
        self.stack.push(Slot::Shared(i));
        Ok(())
    }

    fn memoize(&mut self, op: u8) -> Result<(), Refusal> {
        let id = match op {
            b'p' => parse_id(self.line()?)?,
            b'q' => Self::uint(self.take(1)?),
            b'r' => Self::uint(self.take(4)?),
            _ => self.memo.len() as u64, // MEMOIZE, numbered as CPython does
        };
        let i = self.share_top()?;
        self.memo.insert(id, i);
        Ok(())
    }

    fn get(&mut self, id: u64) -> Result<(), Refusal> {
        let i = *self
            .memo
            .get(&id)
            .ok_or_else(|| format!("pickle refers to a missing memo entry {id}"))?;
        self.stack.push(Slot::Shared(i));
        Ok(())
    }

    /// `GLOBAL module\nname\n`, or `INST module\nname\n` which also builds an object.
    fn global_lines(&mut self, op: u8) -> Result<(), Refusal> {
        self.line()?;
        self.line()?;
        if op == b'i' {
            self.build(None)
        } else {
            self.scalar(0)
        }
    }

    /// `STACK_GLOBAL`: module and name are the two strings on top of the stack.
    fn stack_global(&mut self) -> Result<(), Refusal> {
        self.pop_items(Some(2))?;
        self.scalar(0)
    }
}

fn parse_id(line: &[u8]) -> Result<u64, Refusal> {
    std::str::from_utf8(line)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| "pickle has an invalid memo index".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        depth: 128,
        size: 1 << 20,
    };

    fn pickle(body: &[u8]) -> Vec<u8> {
        let mut p = vec![0x80, 3];
        p.extend_from_slice(body);
        p.push(b'.');
        p
    }

    #[test]
    fn python_pickle_of_a_list_passes() {
        // [1, 'hello', None] as CPython 3.12 pickles it (protocol 4, framed).
        let p = b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00]\x94(K\x01\x8c\x05hello\x94Ne.";
        assert_eq!(scan(p, LIMITS), Ok(()));
    }

    #[test]
    fn deep_tuples_are_refused() {
        let mut body = vec![b'N'];
        body.extend(std::iter::repeat_n(0x85, 129));
        let err = scan(&pickle(&body), LIMITS).unwrap_err();
        assert!(err.contains("128-level"), "{err}");
        body.truncate(129);
        assert!(scan(&pickle(&body), LIMITS).is_ok());
    }

    #[test]
    fn exponential_memo_expansion_is_refused() {
        // x = (); then 40 times x = (x, x) through the memo.
        let mut body = vec![b')', b'q', 0];
        for _ in 0..40 {
            body.extend_from_slice(&[b'h', 0, b'h', 0, 0x86, b'q', 0]);
        }
        let err = scan(&pickle(&body), LIMITS).unwrap_err();
        assert!(err.contains("byte limit"), "{err}");
    }

    #[test]
    fn changing_a_nested_shared_value_is_refused() {
        // l = []; memo; t = (l,); then append to l through the memo.
        let body = [b']', b'q', 0, 0x85, b'h', 0, b'N', b'a'];
        assert!(scan(&pickle(&body), LIMITS).is_err());
        // A self-containing list.
        let body = [b']', b'q', 0, b'h', 0, b'a'];
        assert!(scan(&pickle(&body), LIMITS).is_err());
    }

    #[test]
    fn malformed_pickles_are_refused_without_panicking() {
        for p in [
            &b""[..],
            b"\x80",
            b"a.",
            b"(t",
            b"h\x05.",
            b"X\xff\xff\xff\xff",
            b"0.",
        ] {
            assert!(scan(p, LIMITS).is_err(), "{p:?}");
        }
    }
}
