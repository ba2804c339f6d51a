//! The pickle codec: values exchanged with Python's `Connection.send()` / `recv()`.
//!
//! `read.rs` turns a pickle into a [`PyValue`] (after `scan.rs` has bounded it), `de.rs`
//! deserializes typed values from that; `ser.rs` serializes typed values (and
//! `PyValue`s) straight into pickle opcodes through `write.rs`.

mod builtins;
mod de;
mod error;
mod read;
mod repr;
mod scan;
mod ser;
mod text;
mod value;
mod write;

use serde::de::DeserializeOwned;
use serde::Serialize;

pub use self::error::PickleError;
pub use self::value::{PyInt, PyMismatch, PyValue};
use super::api::{Decode, Encode};

/// The nesting depth [`Pickle`] accepts by default, as serde_json's.
pub const DEFAULT_PICKLE_DEPTH: u32 = 128;

/// The expanded size [`Pickle`] accepts by default: 256 MiB.
pub const DEFAULT_PICKLE_SIZE: u64 = 256 << 20;

/// How many times its own length a pickle may expand to by default, beyond a first MiB
/// that any pickle may fill; see [`Pickle::max_expansion`].
pub const DEFAULT_PICKLE_EXPANSION: u64 = 64;

/// The expanded size every pickle may reach, however short.
const EXPANSION_FLOOR: u64 = 1 << 20;

/// The pickle protocol [`Pickle`] writes; it reads every protocol, 0 to 5.
///
/// | protocol | read by | notes |
/// | --- | --- | --- |
/// | `V2` | Python 2.3 and later, every Python 3 | `bytes` as `_codecs.encode(text, 'latin1')` (a Python 2 `str`), ints beyond 32 bits that fit 64 as text (a Python 2 `int`) |
/// | `V3` (default) | Python 3.0 and later | `bytes` opcodes |
/// | `V4` | Python 3.4 and later | framing, short strings, set opcodes; payloads over 4 GiB; what Python 3.8 to 3.13 send |
/// | `V5` | Python 3.8 and later | a `bytearray` opcode; what Python 3.14 sends |
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum PickleProtocol {
    /// Protocol 2: for Python 2.7 peers.
    V2,
    /// Protocol 3, the default: every Python 3 reads it.
    #[default]
    V3,
    /// Protocol 4, with framing.
    V4,
    /// Protocol 5.
    V5,
}

impl PickleProtocol {
    /// The protocol's number, as Python's `pickle.dumps(obj, protocol=n)` takes it.
    pub fn number(self) -> u8 {
        match self {
            PickleProtocol::V2 => 2,
            PickleProtocol::V3 => 3,
            PickleProtocol::V4 => 4,
            PickleProtocol::V5 => 5,
        }
    }
}

/// A codec for Python's pickle format: a Rust peer's `send` arrives in Python's
/// `Connection.recv()`, and Python's `Connection.send(obj)` decodes in `recv`.
///
/// It reads protocols 0 to 5 (Python 3.8 to 3.13 send 4 by default, 3.14 sends 5,
/// Python 2.7 sends 2) and writes the [`PickleProtocol`] set with
/// [`protocol`](Pickle::protocol): 3 by default, which every Python 3 reads; 2 for a
/// Python 2.7 peer.
///
/// It encodes any `T: Serialize` and decodes any `T: DeserializeOwned`. A [`PyValue`]
/// receives anything Python sends, exactly (ints of any size, tuples, sets,
/// frozensets, bytearrays), and goes back as the same Python objects. Typed values map
/// as follows:
///
/// | Python | Rust (serde) on decode | Rust (serde) encodes as Python |
/// | --- | --- | --- |
/// | `None` | `()`, `Option::None`, unit structs | `()`, `None`, unit structs: `None` |
/// | `bool` | `bool` | `bool` |
/// | `int` | `i8`…`i128`, `u8`…`u128` (checked: out of range is an error), `f64` | every integer type |
/// | `float` | `f32`, `f64` | `f32`, `f64` |
/// | `str` | `String`, `char` | `String`, `&str`, `char` |
/// | `bytes`, `bytearray` | `serde_bytes::ByteBuf` (or `Vec<u8>` with `#[serde(with = "serde_bytes")]`); plain `Vec<u8>` wants a list of ints | `bytes` |
/// | `list`, `tuple`, `set`, `frozenset` | `Vec<T>`, tuples, tuple structs, `HashSet`, `BTreeSet`, any sequence | sequences and sets: `list`; tuples and tuple structs: `tuple` |
/// | `dict` | maps; structs (from `str` keys) | maps (any hashable key, tuples included) and structs: `dict` |
/// | anything else (`array.array`, `complex`, dataclasses, NumPy arrays…) | an [`Error::Decode`](crate::Error::Decode) naming the class ([`PickleError::python_class`]) | — |
///
/// serde's data model has no set, frozenset or bytearray, so a typed `HashSet` is sent
/// as a list and bytes always as `bytes`; use a [`PyValue`] (alone or as a field of a
/// typed message) where the Python type matters. Enums follow serde's external
/// tagging: a unit variant is its name as a `str`, others a one-entry dict
/// `{name: value}`. A sequence inside a dict key or a set element is written as a
/// `tuple`, the sequence Python can hash (so a decoded `{(1, 2): …}` encodes back the
/// same, through `Vec` or `serde_value`); a dict key or set element Python could not hash
/// (a dict, a set, a struct) is refused on encode, since Python could not load it.
///
/// # Security
///
/// Decoding cannot run code, unlike Python's `pickle.loads`: there is no class to call,
/// only the builtin constructors of the types above. Before decoding, the codec walks the
/// pickle's opcodes once and refuses one that nests deeper than [`DEFAULT_PICKLE_DEPTH`]
/// levels (a deeply nested value would overflow the stack where it is dropped or
/// deserialized) or whose shared references expand to more than [`DEFAULT_PICKLE_SIZE`]
/// bytes, or to more than [`DEFAULT_PICKLE_EXPANSION`] times the pickle's own length past
/// its first MiB (a small pickle can name an exponentially large value, and building even
/// a few hundred MiB of it from a few hundred bytes costs seconds); see
/// [`max_depth`](Pickle::max_depth), [`max_size`](Pickle::max_size) and
/// [`max_expansion`](Pickle::max_expansion). Ints written as decimal text (protocols 0
/// and 1) may have at most 4300 digits, CPython's own default limit. Python's own `recv()`
/// does run code from the peer: authenticate connections to Python peers you do not
/// control.
///
/// # Examples
///
/// ```
/// use std::collections::BTreeMap;
/// use procwire::codec::Pickle;
///
/// type Msg = (u32, String, Option<f64>, BTreeMap<String, Vec<i64>>);
/// let (tx, rx) = procwire::pipe_with::<Msg, Pickle>(Pickle::new())?;
/// let msg: Msg = (1, "one".into(), None, BTreeMap::from([("xs".into(), vec![-1, 2])]));
/// tx.send(&msg)?; // Python's recv() gives (1, 'one', None, {'xs': [-1, 2]})
/// assert_eq!(rx.recv()?, msg);
///
/// // What Python's conn.send([1, 'hello', None]) writes (protocol 4); a list decodes
/// // as a tuple:
/// let (tx, rx) = procwire::pipe_with::<(i64, String, Option<i64>), Pickle>(Pickle::new())?;
/// tx.send_bytes(b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00]\x94(K\x01\x8c\x05hello\x94Ne.")?;
/// assert_eq!(rx.recv()?, (1, "hello".to_string(), None));
/// # Ok::<(), procwire::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pickle {
    depth: u32,
    size: u64,
    expansion: u64,
    lenient: bool,
    protocol: PickleProtocol,
}

impl Default for Pickle {
    fn default() -> Pickle {
        Pickle {
            depth: DEFAULT_PICKLE_DEPTH,
            size: DEFAULT_PICKLE_SIZE,
            expansion: DEFAULT_PICKLE_EXPANSION,
            lenient: false,
            protocol: PickleProtocol::default(),
        }
    }
}

impl Pickle {
    /// A codec with the default limits, writing protocol 3, refusing unknown classes.
    pub fn new() -> Pickle {
        Pickle::default()
    }

    /// Sets the protocol the codec writes (default [`PickleProtocol::V3`]);
    /// [`PickleProtocol::V2`] for a Python 2.7 peer. Reading takes every protocol.
    ///
    /// # Examples
    ///
    /// ```
    /// use procwire::codec::{Encode, Pickle, PickleProtocol};
    ///
    /// let mut py27 = Pickle::new().protocol(PickleProtocol::V2);
    /// let mut out = Vec::new();
    /// py27.encode(&(1, "x"), &mut out)?;
    /// assert_eq!(out, b"\x80\x02K\x01X\x01\x00\x00\x00x\x86.");
    /// # Ok::<(), procwire::codec::PickleError>(())
    /// ```
    pub fn protocol(self, protocol: PickleProtocol) -> Pickle {
        Pickle { protocol, ..self }
    }

    /// Sets the deepest nesting a received value may have (default
    /// [`DEFAULT_PICKLE_DEPTH`]); a list of numbers has depth 1. Each level costs the
    /// decoder some stack: keep it in the hundreds on threads with the default 2 MiB stack.
    pub fn max_depth(self, depth: u32) -> Pickle {
        Pickle { depth, ..self }
    }

    /// Sets the largest expanded size a received value may have (default
    /// [`DEFAULT_PICKLE_SIZE`]): its string and byte data plus 8 bytes per value, counted
    /// once per reference to a shared value.
    pub fn max_size(self, bytes: u64) -> Pickle {
        Pickle {
            size: bytes,
            ..self
        }
    }

    /// Sets how many times its own length a received pickle may expand to (default
    /// [`DEFAULT_PICKLE_EXPANSION`]), counted as for [`max_size`](Pickle::max_size); any
    /// pickle may expand to 1 MiB. CPython's pickles of plain data expand a few times at
    /// most; one that refers to the same large object many times expands more, and
    /// `u64::MAX` turns this limit off.
    ///
    /// # Examples
    ///
    /// ```
    /// use procwire::codec::{Decode, Pickle};
    ///
    /// // What Python's pickle.dumps(['x' * 100_000] * 100, protocol=2) writes:
    /// // 100 KB that expands to 10 MB.
    /// let mut p = b"\x80\x02]q\x00(X\xa0\x86\x01\x00".to_vec();
    /// p.extend(std::iter::repeat(b'x').take(100_000));
    /// p.extend_from_slice(b"q\x01");
    /// p.extend(b"h\x01".repeat(99));
    /// p.extend_from_slice(b"e.");
    /// assert!(Decode::<Vec<String>>::decode(&mut Pickle::new(), &p).is_err());
    /// let mut lenient = Pickle::new().max_expansion(200);
    /// assert_eq!(Decode::<Vec<String>>::decode(&mut lenient, &p)?.len(), 100);
    /// # Ok::<(), procwire::codec::PickleError>(())
    /// ```
    pub fn max_expansion(self, factor: u64) -> Pickle {
        Pickle {
            expansion: factor,
            ..self
        }
    }

    /// Decodes objects of classes with no Rust counterpart (`array.array`, dataclasses…)
    /// as `None` (a unit value `()`, or [`PyValue::None`]) instead of refusing the
    /// message. An `Option<T>` takes them as `None` too.
    ///
    /// # Examples
    ///
    /// ```
    /// use procwire::codec::{Decode, Pickle, PyValue};
    ///
    /// // Python: pickle.dumps([1, array('i', [2])], protocol=3)
    /// let p = b"\x80\x03]q\x00(K\x01carray\n_array_reconstructor\nq\x01(carray\narray\nq\x02X\x01\x00\x00\x00iq\x03K\x08C\x04\x02\x00\x00\x00q\x04tq\x05Rq\x06e.";
    /// let err = Decode::<(i32, ())>::decode(&mut Pickle::new(), p).unwrap_err();
    /// assert!(err.to_string().contains("array._array_reconstructor"));
    /// let mut lenient = Pickle::new().replace_unknown_classes();
    /// assert_eq!(Decode::<(i32, ())>::decode(&mut lenient, p)?, (1, ()));
    /// let value: PyValue = lenient.decode(p)?;
    /// assert_eq!(format!("{value:?}"), "[1, None]");
    /// # Ok::<(), procwire::codec::PickleError>(())
    /// ```
    pub fn replace_unknown_classes(self) -> Pickle {
        Pickle {
            lenient: true,
            ..self
        }
    }

    /// Reads a pickle into a [`PyValue`] within the codec's limits.
    fn read(&self, bytes: &[u8]) -> Result<PyValue, PickleError> {
        let relative = (bytes.len() as u64)
            .saturating_mul(self.expansion)
            .max(EXPANSION_FLOOR);
        let limits = scan::Limits {
            depth: self.depth,
            size: self.size.min(relative),
        };
        scan::scan(bytes, limits).map_err(PickleError::new)?;
        read::read(bytes, self.lenient)
    }
}

impl<T: Serialize + ?Sized> Encode<T> for Pickle {
    type Error = PickleError;

    fn encode(&mut self, value: &T, out: &mut Vec<u8>) -> Result<(), PickleError> {
        let mut w = write::Writer::start(out, self.protocol);
        value.serialize(&mut ser::Serializer::new(&mut w))?;
        w.finish();
        Ok(())
    }
}

impl<T: DeserializeOwned> Decode<T> for Pickle {
    type Error = PickleError;

    fn decode(&mut self, bytes: &[u8]) -> Result<T, PickleError> {
        T::deserialize(self.read(bytes)?)
    }
}

impl PyValue {
    /// The dynamic value of a typed one, as the [`Pickle`] codec would send it.
    ///
    /// # Errors
    ///
    /// [`PickleError`] when the pickle codec cannot encode `value`: its `Serialize` fails,
    /// or a dict key or set element is not hashable in Python.
    ///
    /// # Examples
    ///
    /// ```
    /// use procwire::codec::PyValue;
    ///
    /// #[derive(serde::Serialize)]
    /// struct Job { id: u64, shape: (u32, u32) }
    /// let v = PyValue::from_serialize(&Job { id: u64::MAX, shape: (2, 3) })?;
    /// assert_eq!(format!("{v:?}"), "{'id': 18446744073709551615, 'shape': (2, 3)}");
    /// # Ok::<(), procwire::codec::PickleError>(())
    /// ```
    pub fn from_serialize<T: Serialize + ?Sized>(value: &T) -> Result<PyValue, PickleError> {
        let mut bytes = Vec::new();
        Pickle::new()
            .protocol(PickleProtocol::V5)
            .encode(value, &mut bytes)?;
        read::read(&bytes, false)
    }

    /// The typed value of a dynamic one, as the [`Pickle`] codec would decode it.
    ///
    /// # Errors
    ///
    /// [`PickleError`] when `T`'s `Deserialize` refuses the value (a missing field, an
    /// int out of range, a type that does not match).
    ///
    /// # Examples
    ///
    /// ```
    /// use procwire::codec::PyValue;
    ///
    /// let v = PyValue::Tuple(vec![1.into(), "a".into()]);
    /// let (n, s): (u8, String) = v.clone().deserialize_into()?;
    /// assert_eq!((n, s.as_str()), (1, "a"));
    /// assert!(v.deserialize_into::<(String, u8)>().is_err());
    /// # Ok::<(), procwire::codec::PickleError>(())
    /// ```
    pub fn deserialize_into<T: DeserializeOwned>(self) -> Result<T, PickleError> {
        T::deserialize(self)
    }
}
