//! A serde `Serializer` that writes a pickle, and [`PyValue`]'s `Serialize`.
//!
//! serde's data model maps onto Python's builtins (see [`Pickle`](super::Pickle)); what it
//! lacks (set, frozenset, bytearray, ints beyond 128 bits) a `PyValue` marks with a
//! newtype struct of a reserved name, which this serializer recognises and every other
//! serializer sees through.

use serde::ser::{self, Serialize};

use super::error::PickleError;
use super::value::{PyInt, PyValue};
use super::write::{Batched, Writer, BATCH};

type Result<T> = std::result::Result<T, PickleError>;

/// The reserved newtype names, starting with a NUL so no Rust type has them.
pub(super) const SET: &str = "\0procwire::set";
/// A `PyValue::List`: a list even where a plain sequence would become a tuple (a dict key).
pub(super) const LIST: &str = "\0procwire::list";
pub(super) const FROZENSET: &str = "\0procwire::frozenset";
pub(super) const BYTEARRAY: &str = "\0procwire::bytearray";
pub(super) const BIGINT: &str = "\0procwire::int";

/// A [`Writer`] as a serde serializer.
pub(super) struct Serializer<'a, 'b> {
    w: &'a mut Writer<'b>,
    /// The reserved newtype just entered, for the value inside it.
    marked: Option<&'static str>,
    /// Inside a dict key or a set element: only hashable values.
    in_key: u32,
}

impl<'a, 'b> Serializer<'a, 'b> {
    pub(super) fn new(w: &'a mut Writer<'b>) -> Self {
        Serializer {
            w,
            marked: None,
            in_key: 0,
        }
    }

    fn mark(&mut self) -> Option<&'static str> {
        self.marked.take()
    }

    fn unhashable(&self, what: &str) -> Result<()> {
        if self.in_key > 0 {
            return Err(PickleError::new(format!(
                "a {what} cannot be a dict key or a set element: Python cannot hash it"
            )));
        }
        Ok(())
    }

    fn key<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.in_key += 1;
        let r = value.serialize(&mut *self);
        self.in_key -= 1;
        r
    }

    fn batched(&mut self, kind: Kind) -> Result<Batch<'_, 'a, 'b>> {
        match kind {
            Kind::List => self.unhashable("list")?,
            Kind::Dict => self.unhashable("dict")?,
            Kind::Set => self.unhashable("set")?,
            Kind::FrozenSet | Kind::Tuple => {}
        }
        match (kind.batched(), kind) {
            (Some(b), _) => self.w.open(b),
            (None, Kind::Tuple) => self.w.open_tuple(usize::MAX),
            (None, _) => self.w.open_frozenset(),
        }
        Ok(Batch {
            s: self,
            kind,
            count: 0,
        })
    }
}

/// The containers [`Batch`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    List,
    Dict,
    Set,
    FrozenSet,
    /// A sequence inside a dict key or a set element, where Python needs a hashable one:
    /// written as a tuple, all items under one mark.
    Tuple,
}

impl Kind {
    /// How the writer batches its items; a frozenset takes them all under one mark.
    fn batched(self) -> Option<Batched> {
        match self {
            Kind::List => Some(Batched::List),
            Kind::Dict => Some(Batched::Dict),
            Kind::Set => Some(Batched::Set),
            Kind::FrozenSet | Kind::Tuple => None,
        }
    }
}

/// A list, dict, set or frozenset being written; all but a frozenset in batches of
/// [`BATCH`] items.
pub(super) struct Batch<'s, 'a, 'b> {
    s: &'s mut Serializer<'a, 'b>,
    kind: Kind,
    count: usize,
}

impl<'s, 'a, 'b> Batch<'s, 'a, 'b> {
    fn item<T: Serialize + ?Sized>(&mut self, value: &T, as_key: bool) -> Result<()> {
        if self.count == 0 && self.kind.batched().is_some() {
            self.s.w.mark();
        }
        if as_key {
            self.s.key(value)?;
        } else {
            value.serialize(&mut *self.s)?;
        }
        self.count += 1;
        Ok(())
    }

    /// After a whole item (a value, or a dict's key and value).
    fn end_item(&mut self) {
        if let Some(b) = self.kind.batched() {
            if self.count >= BATCH {
                self.s.w.add_batch(b);
                self.count = 0;
            }
        }
    }

    fn finish(self) -> &'s mut Serializer<'a, 'b> {
        match self.kind.batched() {
            Some(b) => {
                if self.count > 0 {
                    self.s.w.add_batch(b);
                }
                self.s.w.close(b);
            }
            None if self.kind == Kind::Tuple => self.s.w.close_tuple(usize::MAX),
            None => self.s.w.close_frozenset(),
        }
        self.s
    }
}

/// A tuple being written: all items under one mark, or none for up to three.
pub(super) struct Group<'s, 'a, 'b> {
    s: &'s mut Serializer<'a, 'b>,
    len: usize,
    count: usize,
    /// For a tuple variant: close the outer `{name: …}` dict too.
    variant: bool,
}

impl Group<'_, '_, '_> {
    fn item<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.count += 1;
        value.serialize(&mut *self.s)
    }

    fn end(self) -> Result<()> {
        if self.count != self.len {
            return Err(PickleError::new(format!(
                "a tuple said it had {} items and serialized {}",
                self.len, self.count
            )));
        }
        self.s.w.close_tuple(self.len);
        if self.variant {
            self.s.w.setitem();
        }
        Ok(())
    }
}

/// A struct, or the variant of an enum, being written as a dict.
pub(super) struct Fields<'s, 'a, 'b> {
    batch: Batch<'s, 'a, 'b>,
    /// For a variant: close the outer `{name: …}` dict too.
    variant: bool,
}

impl<'a, 'b> Serializer<'a, 'b> {
    /// `{name: ` … for an enum variant's payload.
    fn variant_open(&mut self, variant: &'static str) -> Result<()> {
        self.unhashable("enum variant with data")?;
        self.w.open(Batched::Dict);
        self.w.str(variant)
    }
}

impl<'s, 'a, 'b> ser::Serializer for &'s mut Serializer<'a, 'b> {
    type Ok = ();
    type Error = PickleError;
    type SerializeSeq = Batch<'s, 'a, 'b>;
    type SerializeTuple = Group<'s, 'a, 'b>;
    type SerializeTupleStruct = Group<'s, 'a, 'b>;
    type SerializeTupleVariant = Group<'s, 'a, 'b>;
    type SerializeMap = Batch<'s, 'a, 'b>;
    type SerializeStruct = Fields<'s, 'a, 'b>;
    type SerializeStructVariant = Fields<'s, 'a, 'b>;

    fn serialize_bool(self, v: bool) -> Result<()> {
        self.mark();
        self.w.bool(v);
        Ok(())
    }

    fn serialize_i8(self, v: i8) -> Result<()> {
        self.serialize_i64(i64::from(v))
    }

    fn serialize_i16(self, v: i16) -> Result<()> {
        self.serialize_i64(i64::from(v))
    }

    fn serialize_i32(self, v: i32) -> Result<()> {
        self.serialize_i64(i64::from(v))
    }

    fn serialize_i64(self, v: i64) -> Result<()> {
        self.mark();
        self.w.i64(v);
        Ok(())
    }

    fn serialize_i128(self, v: i128) -> Result<()> {
        self.mark();
        self.w.int(&PyInt::from(v));
        Ok(())
    }

    fn serialize_u8(self, v: u8) -> Result<()> {
        self.serialize_i64(i64::from(v))
    }

    fn serialize_u16(self, v: u16) -> Result<()> {
        self.serialize_i64(i64::from(v))
    }

    fn serialize_u32(self, v: u32) -> Result<()> {
        self.serialize_i64(i64::from(v))
    }

    fn serialize_u64(self, v: u64) -> Result<()> {
        self.mark();
        self.w.int(&PyInt::from(v));
        Ok(())
    }

    fn serialize_u128(self, v: u128) -> Result<()> {
        self.mark();
        self.w.int(&PyInt::from(v));
        Ok(())
    }

    fn serialize_f32(self, v: f32) -> Result<()> {
        self.serialize_f64(f64::from(v))
    }

    fn serialize_f64(self, v: f64) -> Result<()> {
        self.mark();
        self.w.f64(v);
        Ok(())
    }

    fn serialize_char(self, v: char) -> Result<()> {
        self.serialize_str(v.encode_utf8(&mut [0; 4]))
    }

    fn serialize_str(self, v: &str) -> Result<()> {
        self.mark();
        self.w.str(v)
    }

    fn serialize_bytes(self, v: &[u8]) -> Result<()> {
        match self.mark() {
            Some(BYTEARRAY) => {
                self.unhashable("bytearray")?;
                self.w.bytearray(v)
            }
            Some(BIGINT) => {
                self.w.int(&PyInt::from_le_bytes(v));
                Ok(())
            }
            _ => self.w.bytes(v),
        }
    }

    fn serialize_none(self) -> Result<()> {
        self.mark();
        self.w.none();
        Ok(())
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<()> {
        self.mark();
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<()> {
        self.serialize_none()
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<()> {
        self.serialize_none()
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<()> {
        self.serialize_str(variant)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<()> {
        self.marked = match name {
            SET | FROZENSET | BYTEARRAY | BIGINT | LIST => Some(name),
            _ => None,
        };
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<()> {
        self.mark();
        self.variant_open(variant)?;
        value.serialize(&mut *self)?;
        self.w.setitem();
        Ok(())
    }

    fn serialize_seq(self, _len: Option<usize>) -> Result<Batch<'s, 'a, 'b>> {
        match self.mark() {
            Some(SET) => self.batched(Kind::Set),
            Some(FROZENSET) => self.batched(Kind::FrozenSet),
            Some(LIST) => self.batched(Kind::List),
            // A sequence as (part of) a dict key or set element: Python's hashable
            // sequence is the tuple (a decoded tuple key comes back here as a sequence).
            _ if self.in_key > 0 => self.batched(Kind::Tuple),
            _ => self.batched(Kind::List),
        }
    }

    fn serialize_tuple(self, len: usize) -> Result<Group<'s, 'a, 'b>> {
        self.mark();
        self.w.open_tuple(len);
        Ok(Group {
            s: self,
            len,
            count: 0,
            variant: false,
        })
    }

    fn serialize_tuple_struct(self, _name: &'static str, len: usize) -> Result<Group<'s, 'a, 'b>> {
        self.serialize_tuple(len)
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Group<'s, 'a, 'b>> {
        self.mark();
        self.variant_open(variant)?;
        self.w.open_tuple(len);
        Ok(Group {
            s: self,
            len,
            count: 0,
            variant: true,
        })
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<Batch<'s, 'a, 'b>> {
        self.mark();
        self.batched(Kind::Dict)
    }

    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Fields<'s, 'a, 'b>> {
        self.mark();
        let batch = self.batched(Kind::Dict)?;
        Ok(Fields {
            batch,
            variant: false,
        })
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Fields<'s, 'a, 'b>> {
        self.mark();
        self.variant_open(variant)?;
        let batch = self.batched(Kind::Dict)?;
        Ok(Fields {
            batch,
            variant: true,
        })
    }
}

impl ser::SerializeSeq for Batch<'_, '_, '_> {
    type Ok = ();
    type Error = PickleError;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.item(value, matches!(self.kind, Kind::Set | Kind::FrozenSet))?;
        self.end_item();
        Ok(())
    }

    fn end(self) -> Result<()> {
        self.finish();
        Ok(())
    }
}

impl ser::SerializeMap for Batch<'_, '_, '_> {
    type Ok = ();
    type Error = PickleError;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<()> {
        self.item(key, true)
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        value.serialize(&mut *self.s)?;
        self.end_item();
        Ok(())
    }

    fn end(self) -> Result<()> {
        self.finish();
        Ok(())
    }
}

macro_rules! group_impl {
    ($($trait:ident :: $method:ident),*) => {$(
        impl ser::$trait for Group<'_, '_, '_> {
            type Ok = ();
            type Error = PickleError;

            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
                self.item(value)
            }

            fn end(self) -> Result<()> {
                Group::end(self)
            }
        }
    )*};
}

group_impl!(
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

macro_rules! fields_impl {
    ($($trait:ident),*) => {$(
        impl ser::$trait for Fields<'_, '_, '_> {
            type Ok = ();
            type Error = PickleError;

            fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<()> {
                ser::SerializeMap::serialize_entry(&mut self.batch, key, value)
            }

            fn end(self) -> Result<()> {
                let s = self.batch.finish();
                if self.variant {
                    s.w.setitem();
                }
                Ok(())
            }
        }
    )*};
}

fields_impl!(SerializeStruct, SerializeStructVariant);

/// Bytes serialized as bytes (serde serializes a `&[u8]` as a sequence).
struct Raw<'a>(&'a [u8]);

impl Serialize for Raw<'_> {
    fn serialize<S: ser::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

/// Items serialized as a sequence.
struct Items<'a>(&'a [PyValue]);

impl Serialize for Items<'_> {
    fn serialize<S: ser::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_seq(self.0)
    }
}

/// Through the pickle codec, each variant is written as its Python type. Through other
/// serializers: `None` as a none, `Bool`, `Float`, `Str`, `Bytes` as themselves, `Int`
/// as an `i64`, or an `i128` beyond, or beyond that a newtype struct holding its
/// little-endian two's-complement bytes; `List`, `Set`, `FrozenSet` as sequences, each
/// inside a newtype struct (transparent to most formats), `Tuple` as a tuple, `Dict` as a map, `ByteArray`
/// as bytes inside a newtype struct.
impl Serialize for PyValue {
    fn serialize<S: ser::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use ser::{SerializeMap, SerializeTuple};
        match self {
            PyValue::None => s.serialize_none(),
            PyValue::Bool(b) => s.serialize_bool(*b),
            PyValue::Int(i) => match i.as_i64() {
                Some(n) => s.serialize_i64(n),
                None => match i128::try_from(i) {
                    Ok(n) => s.serialize_i128(n),
                    Err(_) => s.serialize_newtype_struct(BIGINT, &Raw(&i.to_le_bytes())),
                },
            },
            PyValue::Float(x) => s.serialize_f64(*x),
            PyValue::Str(text) => s.serialize_str(text),
            PyValue::Bytes(b) => s.serialize_bytes(b),
            PyValue::ByteArray(b) => s.serialize_newtype_struct(BYTEARRAY, &Raw(b)),
            PyValue::List(items) => s.serialize_newtype_struct(LIST, &Items(items)),
            PyValue::Tuple(items) => {
                let mut t = s.serialize_tuple(items.len())?;
                for item in items {
                    t.serialize_element(item)?;
                }
                t.end()
            }
            PyValue::Dict(items) => {
                let mut m = s.serialize_map(Some(items.len()))?;
                for (k, v) in items {
                    m.serialize_entry(k, v)?;
                }
                m.end()
            }
            PyValue::Set(items) => s.serialize_newtype_struct(SET, &Items(items)),
            PyValue::FrozenSet(items) => s.serialize_newtype_struct(FROZENSET, &Items(items)),
        }
    }
}
