//! [`PyValue`], the dynamic Python value, and [`PyInt`], a Python `int` of any size.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;

use num_bigint::BigInt;

/// A Python `int` of any size: what CPython's `int` holds, exactly.
///
/// Values that fit an `i64` are kept inline (no allocation); larger ones in a
/// [`num_bigint::BigInt`]. Convert with `From` (every Rust integer and `BigInt`) and
/// `TryFrom` (to every Rust integer, failing when out of range).
///
/// # Examples
///
/// ```
/// use procwire::codec::PyInt;
///
/// let big = PyInt::from(u64::MAX) ;
/// assert_eq!(format!("{big:?}"), "18446744073709551615");
/// assert!(i64::try_from(&big).is_err());
/// assert_eq!(u128::try_from(&big)?, u128::from(u64::MAX));
/// assert_eq!(PyInt::from(-5i8), PyInt::from(-5i64));
/// # Ok::<(), procwire::codec::PyMismatch>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PyInt(Repr);

/// A small int inline; a big one only when it does not fit `i64` (so equal values have
/// equal representations).
#[derive(Clone, PartialEq, Eq, Hash)]
enum Repr {
    Small(i64),
    Big(BigInt),
}

impl PyInt {
    /// The value as an `i64`, when it fits.
    pub fn as_i64(&self) -> Option<i64> {
        match self.0 {
            Repr::Small(n) => Some(n),
            Repr::Big(_) => None,
        }
    }

    /// The value as a [`BigInt`].
    pub fn to_bigint(&self) -> BigInt {
        match &self.0 {
            Repr::Small(n) => BigInt::from(*n),
            Repr::Big(b) => b.clone(),
        }
    }

    /// The little-endian two's-complement bytes of the value, as pickle's `LONG1` holds
    /// them: the fewest that represent it (none for zero).
    pub(crate) fn to_le_bytes(&self) -> Vec<u8> {
        match &self.0 {
            Repr::Small(0) => Vec::new(),
            Repr::Small(n) => {
                let bytes = n.to_le_bytes();
                let mut len = 8;
                // Drop sign-extension bytes while the next byte keeps the sign.
                while len > 1 {
                    let (last, next) = (bytes[len - 1], bytes[len - 2]);
                    let redundant =
                        (last == 0 && next & 0x80 == 0) || (last == 0xff && next & 0x80 != 0);
                    if !redundant {
                        break;
                    }
                    len -= 1;
                }
                bytes[..len].to_vec()
            }
            Repr::Big(b) => b.to_signed_bytes_le(),
        }
    }

    /// The int whose little-endian two's-complement bytes are `bytes`.
    pub(crate) fn from_le_bytes(bytes: &[u8]) -> PyInt {
        if bytes.len() <= 8 {
            let fill = if bytes.last().is_some_and(|b| b & 0x80 != 0) {
                0xff
            } else {
                0
            };
            let mut full = [fill; 8];
            full[..bytes.len()].copy_from_slice(bytes);
            return PyInt(Repr::Small(i64::from_le_bytes(full)));
        }
        PyInt::from(BigInt::from_signed_bytes_le(bytes))
    }

    /// Parses a decimal int as pickle's text opcodes hold it (an optional sign, digits,
    /// an optional `L`).
    pub(crate) fn parse_decimal(text: &[u8]) -> Option<PyInt> {
        let text = text.strip_suffix(b"L").unwrap_or(text);
        let s = std::str::from_utf8(text).ok()?.trim();
        if let Ok(n) = s.parse::<i64>() {
            return Some(PyInt(Repr::Small(n)));
        }
        let (negative, digits) = match s.as_bytes() {
            [b'-', rest @ ..] => (true, rest),
            [b'+', rest @ ..] => (false, rest),
            rest => (false, rest),
        };
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let magnitude = BigInt::parse_bytes(digits, 10)?;
        Some(PyInt::from(if negative { -magnitude } else { magnitude }))
    }
}

impl From<BigInt> for PyInt {
    fn from(b: BigInt) -> PyInt {
        match i64::try_from(&b) {
            Ok(n) => PyInt(Repr::Small(n)),
            Err(_) => PyInt(Repr::Big(b)),
        }
    }
}

impl From<PyInt> for BigInt {
    fn from(i: PyInt) -> BigInt {
        match i.0 {
            Repr::Small(n) => BigInt::from(n),
            Repr::Big(b) => b,
        }
    }
}

macro_rules! int_conversions {
    ($($t:ty),*) => {$(
        impl From<$t> for PyInt {
            fn from(n: $t) -> PyInt {
                match i64::try_from(n) {
                    Ok(n) => PyInt(Repr::Small(n)),
                    Err(_) => PyInt(Repr::Big(BigInt::from(n))),
                }
            }
        }

        impl From<$t> for PyValue {
            fn from(n: $t) -> PyValue {
                PyValue::Int(PyInt::from(n))
            }
        }

        impl TryFrom<&PyInt> for $t {
            type Error = PyMismatch;
            fn try_from(i: &PyInt) -> Result<$t, PyMismatch> {
                let fits = match &i.0 {
                    Repr::Small(n) => <$t>::try_from(*n).ok(),
                    Repr::Big(b) => <$t>::try_from(b).ok(),
                };
                fits.ok_or_else(|| PyMismatch::new(PyValue::Int(i.clone()), stringify!($t)))
            }
        }

        impl TryFrom<PyInt> for $t {
            type Error = PyMismatch;
            fn try_from(i: PyInt) -> Result<$t, PyMismatch> {
                <$t>::try_from(&i)
            }
        }

        impl TryFrom<PyValue> for $t {
            type Error = PyMismatch;
            fn try_from(v: PyValue) -> Result<$t, PyMismatch> {
                match &v {
                    PyValue::Int(i) => <$t>::try_from(i).map_err(|_| PyMismatch::new(v, stringify!($t))),
                    _ => Err(PyMismatch::new(v, stringify!($t))),
                }
            }
        }
    )*};
}

int_conversions!(i8, i16, i32, i64, i128, isize, u8, u16, u32, u64, u128, usize);

/// Decimal digits past which `Debug` writes an int in hexadecimal: CPython's default
/// `sys.get_int_max_str_digits()`, beyond which its own `repr` refuses (decimal
/// conversion costs time quadratic in the length).
const MAX_DECIMAL_DIGITS: u64 = 4300;

impl fmt::Debug for PyInt {
    /// The int as Python's `repr` writes it; past 4300 digits, where CPython's `repr`
    /// refuses, as a hexadecimal literal (`0x…`, `-0x…`), which Python reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::Small(n) => write!(f, "{n}"),
            // log10(2) < 0.30103: a bound on the digits from the bits.
            Repr::Big(b) if b.bits() * 30103 / 100_000 < MAX_DECIMAL_DIGITS => write!(f, "{b}"),
            Repr::Big(b) => {
                let sign = if b.sign() == num_bigint::Sign::Minus {
                    "-"
                } else {
                    ""
                };
                write!(f, "{sign}0x{}", b.magnitude().to_str_radix(16))
            }
        }
    }
}

/// A Python value, as `pickle` carries it: the builtin types Python's
/// `Connection.send()` sends and `recv()` gives back.
///
/// | Python | `PyValue` |
/// | --- | --- |
/// | `None` | `None` |
/// | `bool` | `Bool` |
/// | `int` (any size) | `Int` ([`PyInt`]) |
/// | `float` | `Float` |
/// | `str` | `Str` |
/// | `bytes` (and Python 2 `str`) | `Bytes` |
/// | `bytearray` | `ByteArray` |
/// | `list` | `List` |
/// | `tuple` | `Tuple` |
/// | `dict` | `Dict`, in insertion order |
/// | `set` | `Set` |
/// | `frozenset` | `FrozenSet` |
///
/// Through the [`Pickle`](crate::codec::Pickle) codec every variant goes back to Python
/// as the type it came from, so `type(x)` and `x` survive a round trip. Containers keep
/// their order and are not deduplicated: a `Set` or `Dict` built in Rust with an element
/// or key twice reaches Python with it once (Python keeps a dict's last value). Dict keys
/// and set elements must be hashable in Python (no `List`, `Dict`, `Set` or `ByteArray`,
/// nor a `Tuple` holding one): the codec refuses to encode a value that Python could not
/// load, and to decode one that CPython would refuse.
///
/// **Shared references are expanded.** A pickle in which one object appears twice (the
/// same list in two places) decodes into two equal copies; a Rust value has no identity
/// to preserve, and Python gets two equal objects back. The codec's expansion limits
/// ([`Pickle::max_size`](crate::codec::Pickle::max_size),
/// [`Pickle::max_expansion`](crate::codec::Pickle::max_expansion)) count every copy, so
/// a small pickle cannot expand into a large value. A value that contains itself cannot
/// be expanded and is refused.
///
/// `PartialEq` is structural: same variants, same elements in the same order, floats
/// compared as `f64` (so `NaN != NaN`, `0.0 == -0.0`). It is not Python's `==`, which
/// ignores the order of sets and dicts and holds `1 == 1.0 == True`. `Debug` writes
/// Python's `repr` of the value.
///
/// With serde, `PyValue` is `Serialize` and `Deserialize`, so it can be a field of a
/// typed message; [`PyValue::from_serialize`] and [`PyValue::deserialize_into`] convert
/// between typed and dynamic values.
///
/// # Examples
///
/// ```
/// use procwire::codec::{Pickle, PyValue};
///
/// let value = PyValue::Dict(vec![
///     (PyValue::Tuple(vec![1.into(), 2.into()]), PyValue::Set(vec!["a".into()])),
///     ("big".into(), PyValue::from(1u128 << 100)),
/// ]);
/// assert_eq!(format!("{value:?}"), "{(1, 2): {'a'}, 'big': 1267650600228229401496703205376}");
///
/// let (tx, rx) = procwire::pipe_with::<PyValue, Pickle>(Pickle::new())?;
/// tx.send(&value)?; // Python's recv() gives exactly that dict
/// assert_eq!(rx.recv()?, value);
/// # Ok::<(), procwire::Error>(())
/// ```
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub enum PyValue {
    /// `None`.
    None,
    /// `True` or `False`.
    Bool(bool),
    /// An `int` of any size.
    Int(PyInt),
    /// A `float`.
    Float(f64),
    /// A `str`.
    Str(String),
    /// A `bytes` (a Python 2 `str` too).
    Bytes(Vec<u8>),
    /// A `bytearray`.
    ByteArray(Vec<u8>),
    /// A `list`.
    List(Vec<PyValue>),
    /// A `tuple`.
    Tuple(Vec<PyValue>),
    /// A `dict`: its items in insertion order.
    Dict(Vec<(PyValue, PyValue)>),
    /// A `set`, in the order of its elements in the pickle (Python's iteration order).
    Set(Vec<PyValue>),
    /// A `frozenset`.
    FrozenSet(Vec<PyValue>),
}

impl PyValue {
    /// The name of the value's Python type: `"NoneType"`, `"bool"`, `"int"`, `"float"`,
    /// `"str"`, `"bytes"`, `"bytearray"`, `"list"`, `"tuple"`, `"dict"`, `"set"` or
    /// `"frozenset"`.
    ///
    /// # Examples
    ///
    /// ```
    /// use procwire::codec::PyValue;
    /// assert_eq!(PyValue::Tuple(vec![]).type_name(), "tuple");
    /// ```
    pub fn type_name(&self) -> &'static str {
        match self {
            PyValue::None => "NoneType",
            PyValue::Bool(_) => "bool",
            PyValue::Int(_) => "int",
            PyValue::Float(_) => "float",
            PyValue::Str(_) => "str",
            PyValue::Bytes(_) => "bytes",
            PyValue::ByteArray(_) => "bytearray",
            PyValue::List(_) => "list",
            PyValue::Tuple(_) => "tuple",
            PyValue::Dict(_) => "dict",
            PyValue::Set(_) => "set",
            PyValue::FrozenSet(_) => "frozenset",
        }
    }

    /// Whether Python can hash the value, so that it can be a dict key or a set element.
    pub fn is_hashable(&self) -> bool {
        match self {
            PyValue::List(_) | PyValue::Dict(_) | PyValue::Set(_) | PyValue::ByteArray(_) => false,
            PyValue::Tuple(items) => items.iter().all(PyValue::is_hashable),
            _ => true,
        }
    }

    /// The text of a `Str`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            PyValue::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The bytes of a `Bytes` or `ByteArray`.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            PyValue::Bytes(b) | PyValue::ByteArray(b) => Some(b),
            _ => None,
        }
    }

    /// The elements of a `List`, `Tuple`, `Set` or `FrozenSet`.
    pub fn as_slice(&self) -> Option<&[PyValue]> {
        match self {
            PyValue::List(v) | PyValue::Tuple(v) | PyValue::Set(v) | PyValue::FrozenSet(v) => {
                Some(v)
            }
            _ => None,
        }
    }

    /// The value of `key` in a `Dict` (the first item whose key equals it).
    ///
    /// # Examples
    ///
    /// ```
    /// use procwire::codec::PyValue;
    /// let d = PyValue::Dict(vec![("k".into(), 1.into())]);
    /// assert_eq!(d.get(&"k".into()), Some(&PyValue::from(1)));
    /// ```
    pub fn get(&self, key: &PyValue) -> Option<&PyValue> {
        match self {
            PyValue::Dict(items) => items.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

/// A [`PyValue`] that is not of the type a conversion asked for; it hands the value back.
///
/// # Examples
///
/// ```
/// use procwire::codec::PyValue;
/// let err = String::try_from(PyValue::from(3)).unwrap_err();
/// assert_eq!(err.to_string(), "expected String, found a Python int");
/// assert_eq!(err.into_value(), PyValue::from(3));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct PyMismatch {
    value: PyValue,
    wanted: &'static str,
}

impl PyMismatch {
    fn new(value: PyValue, wanted: &'static str) -> PyMismatch {
        PyMismatch { value, wanted }
    }

    /// The value that did not convert.
    pub fn into_value(self) -> PyValue {
        self.value
    }
}

impl fmt::Display for PyMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            PyValue::Int(_) if self.wanted.starts_with(['i', 'u']) => {
                write!(
                    f,
                    "expected {}, found a Python int out of its range",
                    self.wanted
                )
            }
            v => write!(
                f,
                "expected {}, found a Python {}",
                self.wanted,
                v.type_name()
            ),
        }
    }
}

impl std::error::Error for PyMismatch {}

impl From<bool> for PyValue {
    fn from(b: bool) -> PyValue {
        PyValue::Bool(b)
    }
}

impl From<f64> for PyValue {
    fn from(x: f64) -> PyValue {
        PyValue::Float(x)
    }
}

impl From<f32> for PyValue {
    fn from(x: f32) -> PyValue {
        PyValue::Float(f64::from(x))
    }
}

impl From<&str> for PyValue {
    fn from(s: &str) -> PyValue {
        PyValue::Str(s.to_owned())
    }
}

impl From<String> for PyValue {
    fn from(s: String) -> PyValue {
        PyValue::Str(s)
    }
}

/// A `bytes`; a `Vec<u8>` is a `list` of ints, as in serde.
impl From<&[u8]> for PyValue {
    fn from(b: &[u8]) -> PyValue {
        PyValue::Bytes(b.to_vec())
    }
}

impl From<PyInt> for PyValue {
    fn from(i: PyInt) -> PyValue {
        PyValue::Int(i)
    }
}

impl From<BigInt> for PyValue {
    fn from(b: BigInt) -> PyValue {
        PyValue::Int(PyInt::from(b))
    }
}

/// `()` is `None`, as serde maps it.
impl From<()> for PyValue {
    fn from((): ()) -> PyValue {
        PyValue::None
    }
}

impl<T: Into<PyValue>> From<Option<T>> for PyValue {
    fn from(v: Option<T>) -> PyValue {
        v.map_or(PyValue::None, Into::into)
    }
}

impl<T: Into<PyValue>> From<Vec<T>> for PyValue {
    fn from(v: Vec<T>) -> PyValue {
        PyValue::List(v.into_iter().map(Into::into).collect())
    }
}

impl<K: Into<PyValue>, V: Into<PyValue>> From<BTreeMap<K, V>> for PyValue {
    fn from(m: BTreeMap<K, V>) -> PyValue {
        PyValue::Dict(m.into_iter().map(|(k, v)| (k.into(), v.into())).collect())
    }
}

impl<K: Into<PyValue>, V: Into<PyValue>, S> From<HashMap<K, V, S>> for PyValue {
    fn from(m: HashMap<K, V, S>) -> PyValue {
        PyValue::Dict(m.into_iter().map(|(k, v)| (k.into(), v.into())).collect())
    }
}

impl<T: Into<PyValue>> From<BTreeSet<T>> for PyValue {
    fn from(s: BTreeSet<T>) -> PyValue {
        PyValue::Set(s.into_iter().map(Into::into).collect())
    }
}

impl<T: Into<PyValue>, S> From<HashSet<T, S>> for PyValue {
    fn from(s: HashSet<T, S>) -> PyValue {
        PyValue::Set(s.into_iter().map(Into::into).collect())
    }
}

macro_rules! tuple_conversions {
    ($(($($name:ident),+)),*) => {$(
        impl<$($name: Into<PyValue>),+> From<($($name,)+)> for PyValue {
            #[allow(non_snake_case)] // the type names double as the element names
            fn from(($($name,)+): ($($name,)+)) -> PyValue {
                PyValue::Tuple(vec![$($name.into()),+])
            }
        }
    )*};
}

tuple_conversions!(
    (A),
    (A, B),
    (A, B, C),
    (A, B, C, D),
    (A, B, C, D, E),
    (A, B, C, D, E, F)
);

impl TryFrom<PyValue> for bool {
    type Error = PyMismatch;
    fn try_from(v: PyValue) -> Result<bool, PyMismatch> {
        match v {
            PyValue::Bool(b) => Ok(b),
            v => Err(PyMismatch::new(v, "bool")),
        }
    }
}

/// A `float`, or an `int` that an `f64` holds exactly.
impl TryFrom<PyValue> for f64 {
    type Error = PyMismatch;
    fn try_from(v: PyValue) -> Result<f64, PyMismatch> {
        match &v {
            PyValue::Float(x) => Ok(*x),
            PyValue::Int(i) => match i.as_i64() {
                // 2^53: every int up to it is exact in an f64.
                Some(n) if n.unsigned_abs() <= 1 << 53 => Ok(n as f64),
                _ => Err(PyMismatch::new(v, "f64")),
            },
            _ => Err(PyMismatch::new(v, "f64")),
        }
    }
}

impl TryFrom<PyValue> for String {
    type Error = PyMismatch;
    fn try_from(v: PyValue) -> Result<String, PyMismatch> {
        match v {
            PyValue::Str(s) => Ok(s),
            v => Err(PyMismatch::new(v, "String")),
        }
    }
}

/// The bytes of a `bytes` or `bytearray`.
impl TryFrom<PyValue> for Vec<u8> {
    type Error = PyMismatch;
    fn try_from(v: PyValue) -> Result<Vec<u8>, PyMismatch> {
        match v {
            PyValue::Bytes(b) | PyValue::ByteArray(b) => Ok(b),
            v => Err(PyMismatch::new(v, "Vec<u8>")),
        }
    }
}

/// The elements of a `list`, `tuple`, `set` or `frozenset`.
impl TryFrom<PyValue> for Vec<PyValue> {
    type Error = PyMismatch;
    fn try_from(v: PyValue) -> Result<Vec<PyValue>, PyMismatch> {
        match v {
            PyValue::List(v) | PyValue::Tuple(v) | PyValue::Set(v) | PyValue::FrozenSet(v) => Ok(v),
            v => Err(PyMismatch::new(v, "Vec<PyValue>")),
        }
    }
}

impl TryFrom<PyValue> for PyInt {
    type Error = PyMismatch;
    fn try_from(v: PyValue) -> Result<PyInt, PyMismatch> {
        match v {
            PyValue::Int(i) => Ok(i),
            v => Err(PyMismatch::new(v, "PyInt")),
        }
    }
}

impl TryFrom<PyValue> for BigInt {
    type Error = PyMismatch;
    fn try_from(v: PyValue) -> Result<BigInt, PyMismatch> {
        PyInt::try_from(v).map(BigInt::from)
    }
}
