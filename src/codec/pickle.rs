//! The pickle codec: values exchanged with Python's `Connection.send()` / `recv()`.

mod scan;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_pickle::{DeOptions, Error, ErrorCode, SerOptions};

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

/// Globals that serde-pickle turns into values.
const KNOWN_GLOBALS: [&str; 16] = [
    "builtins.set",
    "builtins.frozenset",
    "builtins.list",
    "builtins.bytearray",
    "builtins.int",
    "__builtin__.set",
    "__builtin__.frozenset",
    "__builtin__.list",
    "__builtin__.bytearray",
    "__builtin__.int",
    "copyreg._reconstructor",
    "copy_reg._reconstructor",
    "_codecs.encode",
    "builtins.object",
    "builtins.bytes",
    "__builtin__.bytes",
];

/// A codec for Python's pickle format, through
/// [serde-pickle](https://docs.rs/serde-pickle): a Rust peer's `send` arrives in
/// Python's `Connection.recv()`, and Python's `Connection.send(obj)` decodes in `recv`.
///
/// It writes pickle protocol 3, which every Python 3 reads, and reads protocols 0 to 5
/// (Python 3.8 to 3.13 send 4 by default, 3.14 sends 5).
///
/// | Python | Rust (serde) |
/// | --- | --- |
/// | `None` | `()`, `Option::None`, unit structs |
/// | `bool` | `bool` |
/// | `int` | `i8`…`i64`, `u8`…`u64` (checked on decode) |
/// | `float` | `f32`, `f64` |
/// | `str` | `String`, `char` |
/// | `bytes`, `bytearray` | `serde_bytes::ByteBuf`, or `Vec<u8>` with `#[serde(with = "serde_bytes")]` (plain `Vec<u8>` is a list of ints) |
/// | `list` | `Vec<T>`, sequences |
/// | `tuple` | tuples, tuple structs (a list decodes too) |
/// | `dict` | maps; structs, as dicts with `str` keys |
/// | `set`, `frozenset` | `HashSet`/`BTreeSet` on decode (they are sent as lists) |
/// | anything else (`array.array`, dataclasses, NumPy arrays…) | an [`Error::Decode`](crate::Error::Decode) naming the class |
///
/// Enums follow serde's external tagging: a unit variant is its name as a `str`, others
/// are a one-entry dict `{name: value}`.
///
/// # Security
///
/// Decoding cannot run code, unlike Python's `pickle.loads`: there is no class to call.
/// Before decoding, the codec walks the pickle's opcodes once and refuses one that nests
/// deeper than [`DEFAULT_PICKLE_DEPTH`] levels (a deeply nested pickle would otherwise
/// overflow the decoder's stack) or whose shared references expand to more than
/// [`DEFAULT_PICKLE_SIZE`] bytes, or to more than [`DEFAULT_PICKLE_EXPANSION`] times the
/// pickle's own length past its first MiB (a small pickle can name an exponentially large
/// value, and building even a few hundred MiB of it from a few hundred bytes costs
/// seconds); see [`max_depth`](Pickle::max_depth), [`max_size`](Pickle::max_size) and
/// [`max_expansion`](Pickle::max_expansion). Python's own
/// `recv()` does run code from the peer: authenticate connections to Python peers you do
/// not control.
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
    replace_globals: bool,
}

impl Default for Pickle {
    fn default() -> Pickle {
        Pickle {
            depth: DEFAULT_PICKLE_DEPTH,
            size: DEFAULT_PICKLE_SIZE,
            expansion: DEFAULT_PICKLE_EXPANSION,
            replace_globals: false,
        }
    }
}

impl Pickle {
    /// A codec with the default limits, refusing unknown classes.
    pub fn new() -> Pickle {
        Pickle::default()
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
    /// use procwire::codec::Decode;
    /// use procwire::codec::Pickle;
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
    /// # Ok::<(), serde_pickle::Error>(())
    /// ```
    pub fn max_expansion(self, factor: u64) -> Pickle {
        Pickle {
            expansion: factor,
            ..self
        }
    }

    /// Decodes objects of classes with no Rust counterpart (`array.array`, dataclasses…)
    /// as a unit value (`()`, or `Value::None` in a [`serde_pickle::Value`]) instead of
    /// refusing the message. An `Option<T>` does not take them as `None`.
    ///
    /// # Examples
    ///
    /// ```
    /// use procwire::codec::Decode;
    /// use procwire::codec::Pickle;
    ///
    /// // Python: pickle.dumps([1, array('i', [2])], protocol=3)
    /// let p = b"\x80\x03]q\x00(K\x01carray\n_array_reconstructor\nq\x01(carray\narray\nq\x02X\x01\x00\x00\x00iq\x03K\x08C\x04\x02\x00\x00\x00q\x04tq\x05Rq\x06e.";
    /// let err = Decode::<(i32, ())>::decode(&mut Pickle::new(), p).unwrap_err();
    /// assert!(err.to_string().contains("array._array_reconstructor"));
    /// let mut lenient = Pickle::new().replace_unknown_classes();
    /// assert_eq!(Decode::<(i32, ())>::decode(&mut lenient, p)?, (1, ()));
    /// # Ok::<(), serde_pickle::Error>(())
    /// ```
    pub fn replace_unknown_classes(self) -> Pickle {
        Pickle {
            replace_globals: true,
            ..self
        }
    }

    fn de_options(&self) -> DeOptions {
        let options = DeOptions::new();
        if self.replace_globals {
            options.replace_unresolved_globals()
        } else {
            options
        }
    }
}

impl<T: Serialize> Encode<T> for Pickle {
    type Error = Error;

    fn encode(&mut self, value: &T, out: &mut Vec<u8>) -> Result<(), Error> {
        serde_pickle::to_writer(out, value, SerOptions::new())
    }
}

impl<T: DeserializeOwned> Decode<T> for Pickle {
    type Error = Error;

    fn decode(&mut self, bytes: &[u8]) -> Result<T, Error> {
        let relative = (bytes.len() as u64)
            .saturating_mul(self.expansion)
            .max(EXPANSION_FLOOR);
        let limits = scan::Limits {
            depth: self.depth,
            size: self.size.min(relative),
        };
        let found = scan::scan(bytes, limits).map_err(structure)?;
        let patched;
        let bytes = if found.empty_bytes_calls.is_empty() {
            bytes
        } else {
            patched = scan::patch(bytes, &found.empty_bytes_calls);
            &patched
        };
        serde_pickle::from_slice(bytes, self.de_options()).map_err(|e| explain(e, &found.globals))
    }
}

fn structure(why: String) -> Error {
    Error::Syntax(ErrorCode::Structure(why))
}

/// Names the classes behind serde-pickle's "unresolved global reference".
fn explain(e: Error, globals: &[String]) -> Error {
    let unresolved = matches!(
        e,
        Error::Syntax(ErrorCode::UnresolvedGlobal) | Error::Eval(ErrorCode::UnresolvedGlobal, _)
    );
    if !unresolved {
        return e;
    }
    let unknown: Vec<&str> = globals
        .iter()
        .map(String::as_str)
        .filter(|g| !KNOWN_GLOBALS.contains(g))
        .collect();
    structure(format!(
        "the pickle holds an object of a Python class with no Rust counterpart ({}); only \
         None, bool, int, float, str, bytes, bytearray, list, tuple, dict, set and frozenset \
         decode",
        if unknown.is_empty() {
            "unresolved global reference".to_string()
        } else {
            unknown.join(", ")
        }
    ))
}
