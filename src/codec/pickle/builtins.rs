//! The builtin callables CPython's picklers name for the types without opcodes of their
//! own (sets and bytes before protocol 4, bytearrays before 5), and what applying each
//! to its arguments gives. Pure code.

use super::error::PickleError;
use super::value::PyValue;

type Result<T> = std::result::Result<T, PickleError>;

fn err<T>(message: impl Into<String>) -> Result<T> {
    Err(PickleError::new(message))
}

/// The builtin callables a pickle may apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Builtin {
    Set,
    FrozenSet,
    ByteArray,
    Bytes,
    Encode,
}

impl Builtin {
    pub(super) fn name(self) -> &'static str {
        match self {
            Builtin::Set => "builtins.set",
            Builtin::FrozenSet => "builtins.frozenset",
            Builtin::ByteArray => "builtins.bytearray",
            Builtin::Bytes => "builtins.bytes",
            Builtin::Encode => "_codecs.encode",
        }
    }
}

/// What CPython's picklers call for the types without opcodes of their own in protocols
/// 0 to 3 (and 4, for `bytearray`): `set(list)`, `frozenset(list)`, `bytearray(bytes)`,
/// `bytearray(text, 'latin-1')` (Python 2), `bytes()`, `_codecs.encode(text, 'latin1')`.
pub(super) fn apply(builtin: Builtin, args: Vec<PyValue>) -> Result<PyValue> {
    let mut args = args.into_iter();
    let (first, second, rest) = (args.next(), args.next(), args.next());
    if rest.is_some() {
        return err(format!(
            "the pickle calls {} with more than two arguments",
            builtin.name()
        ));
    }
    let bad = || {
        err(format!(
            "the pickle calls {} with arguments CPython never writes",
            builtin.name()
        ))
    };
    let encoding_name = match &second {
        Some(PyValue::Str(s)) => Some(s.as_bytes().to_vec()),
        Some(PyValue::Bytes(b)) => Some(b.clone()),
        _ => None,
    };
    match (builtin, first, second) {
        (Builtin::Set | Builtin::FrozenSet, None, None) => Ok(set_of(builtin, Vec::new())),
        (Builtin::Set | Builtin::FrozenSet, Some(items), None) => {
            let items = match items {
                PyValue::List(v) | PyValue::Tuple(v) | PyValue::Set(v) | PyValue::FrozenSet(v) => v,
                _ => return bad(),
            };
            hashable(&items, "a set element")?;
            Ok(set_of(builtin, items))
        }
        (Builtin::ByteArray, None, None) => Ok(PyValue::ByteArray(Vec::new())),
        (Builtin::Bytes, None, None) => Ok(PyValue::Bytes(Vec::new())),
        (Builtin::ByteArray, Some(PyValue::Bytes(b) | PyValue::ByteArray(b)), None) => {
            Ok(PyValue::ByteArray(b))
        }
        (Builtin::Bytes, Some(PyValue::Bytes(b) | PyValue::ByteArray(b)), None) => {
            Ok(PyValue::Bytes(b))
        }
        // The encoding's name is a Python 2 `str` (`Bytes`) when Python 2 wrote it.
        (b, Some(PyValue::Str(text)), Some(PyValue::Str(_) | PyValue::Bytes(_)))
            if b != Builtin::Set && b != Builtin::FrozenSet =>
        {
            let bytes = encode(&text, encoding_name.as_deref().unwrap_or_default())?;
            Ok(if b == Builtin::ByteArray {
                PyValue::ByteArray(bytes)
            } else {
                PyValue::Bytes(bytes)
            })
        }
        _ => bad(),
    }
}

fn set_of(builtin: Builtin, items: Vec<PyValue>) -> PyValue {
    if builtin == Builtin::Set {
        PyValue::Set(items)
    } else {
        PyValue::FrozenSet(items)
    }
}

/// `str.encode(encoding)` for the encodings CPython's picklers use.
fn encode(text: &str, encoding: &[u8]) -> Result<Vec<u8>> {
    let name = String::from_utf8_lossy(encoding)
        .to_ascii_lowercase()
        .replace(['-', '_'], "");
    match name.as_str() {
        "latin1" | "iso88591" | "l1" => text
            .chars()
            .map(|c| u8::try_from(u32::from(c)).ok())
            .collect::<Option<Vec<u8>>>()
            .ok_or_else(|| PickleError::new("the pickle encodes text beyond U+00FF as latin-1")),
        "utf8" => Ok(text.as_bytes().to_vec()),
        "ascii" if text.is_ascii() => Ok(text.as_bytes().to_vec()),
        _ => err(format!(
            "the pickle encodes text as {name:?}, an encoding CPython's pickler never uses"
        )),
    }
}

/// Refuses items Python could not hash, as dict keys or set elements (`what`).
pub(super) fn hashable(items: &[PyValue], what: &str) -> Result<()> {
    match items.iter().find(|v| !v.is_hashable()) {
        Some(v) => err(format!(
            "the pickle has {what} of the unhashable type {}",
            v.type_name()
        )),
        None => Ok(()),
    }
}
