//! A [`PyValue`] as a serde `Deserializer` (how the pickle codec decodes typed values),
//! and [`PyValue`]'s `Deserialize`.

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};
use serde::forward_to_deserialize_any;

use super::error::PickleError;
use super::value::{PyInt, PyValue};

type Result<T> = std::result::Result<T, PickleError>;

/// The newtype name under which `PyValue::deserialize` asks for a whole value: a
/// [`PyValue`] deserializer hands itself over (through [`STASH`]) instead of being taken
/// apart and rebuilt; every other deserializer sees a plain newtype struct.
const WHOLE: &str = "\0procwire::PyValue";

/// The map key that says "the value is in the stash".
const STASH_KEY: &str = "\0procwire::stash";

thread_local! {
    /// The value a `PyValue` deserializer hands to `PyValue::deserialize`: set just before
    /// the visitor runs, taken by it, cleared after it.
    static STASH: Cell<Option<PyValue>> = const { Cell::new(None) };
}

fn invalid(v: &PyValue, exp: &dyn de::Expected) -> PickleError {
    let unexp = match v {
        PyValue::None => de::Unexpected::Unit,
        PyValue::Bool(b) => de::Unexpected::Bool(*b),
        PyValue::Float(x) => de::Unexpected::Float(*x),
        PyValue::Str(s) => de::Unexpected::Str(s),
        PyValue::Bytes(b) | PyValue::ByteArray(b) => de::Unexpected::Bytes(b),
        PyValue::Int(i) => match i.as_i64() {
            Some(n) => de::Unexpected::Signed(n),
            None => de::Unexpected::Other("a Python int"),
        },
        other => de::Unexpected::Other(other.type_name()),
    };
    de::Error::invalid_type(unexp, exp)
}

fn visit_int<'de, V: Visitor<'de>>(i: PyInt, visitor: V) -> Result<V::Value> {
    if let Some(n) = i.as_i64() {
        return visitor.visit_i64(n);
    }
    if let Ok(n) = u64::try_from(&i) {
        return visitor.visit_u64(n);
    }
    if let Ok(n) = i128::try_from(&i) {
        return visitor.visit_i128(n);
    }
    if let Ok(n) = u128::try_from(&i) {
        return visitor.visit_u128(n);
    }
    Err(PickleError::new(format!(
        "the Python int {i:?} does not fit any Rust integer; receive it as a PyValue"
    )))
}

impl<'de> de::Deserializer<'de> for PyValue {
    type Error = PickleError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self {
            PyValue::None => visitor.visit_unit(),
            PyValue::Bool(b) => visitor.visit_bool(b),
            PyValue::Int(i) => visit_int(i, visitor),
            PyValue::Float(x) => visitor.visit_f64(x),
            PyValue::Str(s) => visitor.visit_string(s),
            PyValue::Bytes(b) | PyValue::ByteArray(b) => visitor.visit_byte_buf(b),
            PyValue::List(v) | PyValue::Tuple(v) | PyValue::Set(v) | PyValue::FrozenSet(v) => {
                let mut seq = de::value::SeqDeserializer::new(v.into_iter());
                let out = visitor.visit_seq(&mut seq)?;
                seq.end()?;
                Ok(out)
            }
            PyValue::Dict(items) => {
                let mut map = de::value::MapDeserializer::new(items.into_iter());
                let out = visitor.visit_map(&mut map)?;
                map.end()?;
                Ok(out)
            }
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self {
            PyValue::None => visitor.visit_none(),
            v => visitor.visit_some(v),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        if name != WHOLE {
            return visitor.visit_newtype_struct(self);
        }
        STASH.with(|s| s.set(Some(self)));
        let out = visitor.visit_map(Stashed { key: true });
        STASH.with(|s| s.take());
        out
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        match self {
            PyValue::Str(s) => visitor.visit_enum(s.into_deserializer()),
            PyValue::Dict(mut items) if items.len() == 1 => {
                let (variant, value) = items.pop().expect("one item");
                visitor.visit_enum(Variant { variant, value })
            }
            other => Err(invalid(&other, &"an enum: a str, or a dict of one item")),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_unit()
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
        byte_buf unit unit_struct seq tuple tuple_struct map struct identifier
    }
}

impl<'de> IntoDeserializer<'de, PickleError> for PyValue {
    type Deserializer = PyValue;

    fn into_deserializer(self) -> PyValue {
        self
    }
}

/// The one-entry map `{STASH_KEY: ()}` by which a whole value is handed over.
struct Stashed {
    key: bool,
}

impl<'de> de::MapAccess<'de> for Stashed {
    type Error = PickleError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>> {
        if !std::mem::take(&mut self.key) {
            return Ok(None);
        }
        seed.deserialize(STASH_KEY.into_deserializer()).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value> {
        seed.deserialize(().into_deserializer())
    }
}

/// An enum variant with data: `{variant: value}`.
struct Variant {
    variant: PyValue,
    value: PyValue,
}

impl<'de> de::EnumAccess<'de> for Variant {
    type Error = PickleError;
    type Variant = PyValue;

    fn variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<(S::Value, PyValue)> {
        Ok((seed.deserialize(self.variant)?, self.value))
    }
}

impl<'de> de::VariantAccess<'de> for PyValue {
    type Error = PickleError;

    fn unit_variant(self) -> Result<()> {
        match self {
            PyValue::None => Ok(()),
            other => Err(invalid(&other, &"None, for a unit variant")),
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value> {
        de::Deserializer::deserialize_any(self, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        de::Deserializer::deserialize_any(self, visitor)
    }
}

/// From the pickle codec (or a `PyValue`), every value as it was. From other
/// self-describing formats: unit and none as `None`, booleans, integers as `Int`,
/// floats, strings as `Str`, bytes as `Bytes`, sequences as `List`, maps as `Dict`.
/// Formats that are not self-describing (postcard, rkyv) cannot produce one.
impl<'de> de::Deserialize<'de> for PyValue {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> std::result::Result<PyValue, D::Error> {
        d.deserialize_newtype_struct(WHOLE, ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = PyValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Python value")
    }

    fn visit_newtype_struct<D: de::Deserializer<'de>>(
        self,
        d: D,
    ) -> std::result::Result<PyValue, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_bool<E>(self, v: bool) -> std::result::Result<PyValue, E> {
        Ok(PyValue::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> std::result::Result<PyValue, E> {
        Ok(v.into())
    }

    fn visit_u64<E>(self, v: u64) -> std::result::Result<PyValue, E> {
        Ok(v.into())
    }

    fn visit_i128<E>(self, v: i128) -> std::result::Result<PyValue, E> {
        Ok(v.into())
    }

    fn visit_u128<E>(self, v: u128) -> std::result::Result<PyValue, E> {
        Ok(v.into())
    }

    fn visit_f64<E>(self, v: f64) -> std::result::Result<PyValue, E> {
        Ok(PyValue::Float(v))
    }

    fn visit_str<E>(self, v: &str) -> std::result::Result<PyValue, E> {
        Ok(v.into())
    }

    fn visit_string<E>(self, v: String) -> std::result::Result<PyValue, E> {
        Ok(PyValue::Str(v))
    }

    fn visit_bytes<E>(self, v: &[u8]) -> std::result::Result<PyValue, E> {
        Ok(PyValue::Bytes(v.to_vec()))
    }

    fn visit_byte_buf<E>(self, v: Vec<u8>) -> std::result::Result<PyValue, E> {
        Ok(PyValue::Bytes(v))
    }

    fn visit_none<E>(self) -> std::result::Result<PyValue, E> {
        Ok(PyValue::None)
    }

    fn visit_unit<E>(self) -> std::result::Result<PyValue, E> {
        Ok(PyValue::None)
    }

    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<PyValue, D::Error> {
        de::Deserialize::deserialize(d)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> std::result::Result<PyValue, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(PyValue::List(items))
    }

    fn visit_map<A: de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<PyValue, A::Error> {
        let mut items = Vec::with_capacity(map.size_hint().unwrap_or(0).min(4096));
        while let Some(key) = map.next_key::<PyValue>()? {
            if items.is_empty() && key.as_str() == Some(STASH_KEY) {
                map.next_value::<de::IgnoredAny>()?;
                if let Some(v) = STASH.with(Cell::take) {
                    return Ok(v);
                }
                return Err(de::Error::custom(
                    "a map claims to hold a stashed PyValue, and none is",
                ));
            }
            let value = map.next_value()?;
            items.push((key, value));
        }
        Ok(PyValue::Dict(items))
    }
}
