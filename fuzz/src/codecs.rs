//! Targets over each codec's decode, on arbitrary bytes.
//!
//! Each decodes the input as a type that exercises most of the codec's format, and, when
//! that succeeds, checks that the value re-encodes to bytes that decode to a value with
//! the same encoding (values are compared through their encoding, because a float may be
//! NaN).

use std::collections::BTreeMap;
use std::fmt::Debug;

use procwire::codec::{Decode, Encode};
use procwire::codec::{Json, Pickle, PickleProtocol, PyValue, Rkyv};
use procwire::{Codec, Postcard};
use serde::{Deserialize, Serialize};

/// A value with one of each serde shape postcard encodes, nested.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Sample {
    Unit,
    Int(i64),
    Wide(u128, i128),
    Float(f64, f32),
    Text(String),
    Char(char),
    Bytes(#[serde(with = "serde_bytes_compat")] Vec<u8>),
    Numbers(Vec<u32>),
    Map(BTreeMap<String, i16>),
    Tuple(u8, bool, Option<u16>),
    Record {
        id: u64,
        name: Option<String>,
        children: Vec<Sample>,
    },
}

/// A value for the JSON codec: only what JSON carries exactly (no 128-bit integers, no
/// `f32` whose widening could reach infinity).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum JsonSample {
    Int(i64),
    Float(f64),
    Text(String),
    Flags(Vec<bool>),
    Map(BTreeMap<String, Option<u32>>),
    Tree {
        name: String,
        children: Vec<JsonSample>,
    },
}

/// An rkyv archive with strings, vectors, options, enums and nesting.
#[derive(Debug, Clone, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct Archived {
    pub id: u64,
    pub name: String,
    pub samples: Vec<f32>,
    pub tags: Vec<String>,
    pub flag: Option<bool>,
    pub kind: Kind,
    pub grid: Vec<Vec<u16>>,
}

/// The enum inside [`Archived`].
#[derive(Debug, Clone, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub enum Kind {
    Plain,
    Code(i32),
    Point { x: u8, y: Option<u64> },
}

/// `Vec<u8>` as serde bytes, so postcard's byte-string path is covered too.
mod serde_bytes_compat {
    use serde::{Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
        }
        d.deserialize_bytes(V)
    }
}

/// Decodes with `codec`; on success re-encodes, decodes again with `again` and compares
/// encodings. `again` may have looser limits: a value that passed a tight limit can
/// encode a little larger (CPython's one-byte Latin-1 text becomes UTF-8), and the check
/// is about fidelity, not limits.
fn round_trip_with<T: Debug, C: Codec<T>>(codec: &mut C, again: &mut C, data: &[u8]) -> Option<T> {
    let value = codec.decode(data).ok()?;
    let mut first = Vec::new();
    again
        .encode(&value, &mut first)
        .expect("a decoded value encodes");
    // The length a blocking send announces before writing in place is the encoding's.
    if let Some(len) = again.encoded_len(&value).expect("a decoded value measures") {
        assert_eq!(
            len,
            first.len(),
            "encoded_len of {value:?} is not its encoding's"
        );
    }
    let decoded = again
        .decode(&first)
        .unwrap_or_else(|e| panic!("re-encoding of {value:?} does not decode: {e}"));
    let mut second = Vec::new();
    again.encode(&decoded, &mut second).expect("encodes again");
    assert_eq!(first, second, "{value:?} changed in a round trip");
    Some(value)
}

/// [`round_trip_with`] the same codec settings.
fn round_trip<T: Debug, C: Codec<T> + Clone>(codec: &mut C, data: &[u8]) -> Option<T> {
    let mut again = codec.clone();
    round_trip_with(codec, &mut again, data)
}

/// Postcard's decode of arbitrary bytes into [`Sample`] and `Vec<Sample>`.
pub fn codec_postcard(data: &[u8]) {
    round_trip::<Sample, _>(&mut Postcard, data);
    round_trip::<Vec<Sample>, _>(&mut Postcard, data);
}

/// JSON's decode of arbitrary bytes into [`JsonSample`] and `serde_json::Value`.
pub fn codec_json(data: &[u8]) {
    round_trip::<JsonSample, _>(&mut Json, data);
    round_trip::<serde_json::Value, _>(&mut Json, data);
}

/// Pickle's typed decode (its opcode pre-scan, the reader, then serde) of arbitrary bytes
/// into a dynamic `serde_value::Value` (any Python value serde sees: dict keys of every
/// kind, sets and tuples as sequences) with the default limits, with small limits and
/// with unknown classes replaced, and into a typed tuple. (`pickle_value` drives the
/// reader and writer through `PyValue`.)
pub fn codec_pickle(data: &[u8]) {
    let unlimited = || Pickle::new().max_size(u64::MAX).max_expansion(u64::MAX);
    let check = |codec: Pickle| {
        round_trip_with::<serde_value::Value, _>(&mut { codec }, &mut unlimited(), data)
    };
    let decoded = check(Pickle::new());
    let limited = check(Pickle::new().max_depth(8).max_size(1 << 12));
    if limited.is_some() {
        assert!(
            decoded.is_some(),
            "accepted under small limits, refused under defaults"
        );
    }
    check(Pickle::new().replace_unknown_classes());
    round_trip_with::<(i64, String, Vec<f64>, Option<bool>), _>(
        &mut Pickle::new(),
        &mut unlimited(),
        data,
    );
}

/// The protocols the pickle writer writes.
pub const PICKLE_PROTOCOLS: [PickleProtocol; 4] = [
    PickleProtocol::V2,
    PickleProtocol::V3,
    PickleProtocol::V4,
    PickleProtocol::V5,
];

fn pickle(protocol: PickleProtocol, value: &PyValue) -> Vec<u8> {
    let mut out = Vec::new();
    Pickle::new()
        .protocol(protocol)
        .encode(value, &mut out)
        .unwrap_or_else(|e| panic!("a decoded {value:?} does not encode with {protocol:?}: {e}"));
    out
}

/// The pickle reader into a [`PyValue`], refusing unknown classes and replacing them:
/// a value that decodes strictly decodes the same leniently; every decoded value has a
/// `Debug` (Python's repr), and re-encodes with every protocol written (2 to 5) to bytes
/// that decode to a value with the same encoding (compared through encodings, because a
/// float may be NaN).
pub fn pickle_value(data: &[u8]) {
    let strict = Decode::<PyValue>::decode(&mut Pickle::new(), data).ok();
    let lenient =
        Decode::<PyValue>::decode(&mut Pickle::new().replace_unknown_classes(), data).ok();
    if let Some(v) = &strict {
        let lenient = lenient
            .as_ref()
            .expect("a strict decode that succeeds succeeds leniently");
        assert_eq!(
            pickle(PickleProtocol::V5, v),
            pickle(PickleProtocol::V5, lenient)
        );
    }
    let mut unlimited = Pickle::new()
        .max_size(u64::MAX)
        .max_expansion(u64::MAX)
        .max_depth(u32::MAX);
    for value in [strict, lenient].into_iter().flatten() {
        let _ = format!("{value:?}");
        for protocol in PICKLE_PROTOCOLS {
            let first = pickle(protocol, &value);
            let again: PyValue = Decode::decode(&mut unlimited, &first).unwrap_or_else(|e| {
                panic!("{protocol:?} re-encoding of {value:?} does not decode: {e}")
            });
            assert_eq!(
                first,
                pickle(protocol, &again),
                "{value:?} changed in a {protocol:?} round trip"
            );
        }
    }
}

/// rkyv's validating decode of arbitrary bytes into [`Archived`], both aligned and at an
/// odd address (which the codec must copy to an aligned buffer), and the same bytes
/// received as one message and read in place with `recv_archived`.
pub fn codec_rkyv(data: &[u8]) {
    let aligned = round_trip::<Archived, _>(&mut Rkyv::new(), data);
    let mut shifted = vec![0u8; data.len() + 1];
    shifted[1..].copy_from_slice(data);
    let odd = Decode::<Archived>::decode(&mut Rkyv::new(), &shifted[1..]).ok();
    assert_eq!(
        aligned.is_some(),
        odd.is_some(),
        "alignment changed the verdict"
    );

    if data.len() > 32 << 10 {
        return; // more than the pipe holds without a reading thread
    }
    let (tx, rx) = procwire::pipe_with::<Archived, Rkyv>(Rkyv::new()).expect("pipe");
    tx.send_bytes(data).expect("send");
    let in_place = rx.recv_archived().ok().map(|guard| {
        guard
            .deserialize()
            .expect("a validated archive deserialises")
    });
    assert_eq!(
        aligned.is_some(),
        in_place.is_some(),
        "recv_archived and decode disagree"
    );
}
