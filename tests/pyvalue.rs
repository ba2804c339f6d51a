//! `PyValue` and the pickle reader and writer, without Python: round trips through every
//! protocol written (a proptest), the exact bytes of a few values against what CPython
//! writes, refusals, and serde conversions.
#![cfg(feature = "pickle")]

use std::collections::BTreeMap;

use num_bigint::BigInt;
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

use procwire::codec::{Decode, Encode, Pickle, PickleProtocol, PyInt, PyValue};

const PROTOCOLS: [PickleProtocol; 4] = [
    PickleProtocol::V2,
    PickleProtocol::V3,
    PickleProtocol::V4,
    PickleProtocol::V5,
];

fn encode<T: Serialize + ?Sized>(protocol: PickleProtocol, value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    Pickle::new()
        .protocol(protocol)
        .encode(value, &mut out)
        .unwrap();
    out
}

fn decode(bytes: &[u8]) -> Result<PyValue, procwire::codec::PickleError> {
    Pickle::new().decode(bytes)
}

/// Equality with floats compared bit for bit (so NaN is itself and -0.0 is not 0.0).
fn same(a: &PyValue, b: &PyValue) -> bool {
    use PyValue::*;
    let all = |x: &[PyValue], y: &[PyValue]| {
        x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
    };
    match (a, b) {
        (Float(x), Float(y)) => x.to_bits() == y.to_bits(),
        (List(x), List(y))
        | (Tuple(x), Tuple(y))
        | (Set(x), Set(y))
        | (FrozenSet(x), FrozenSet(y)) => all(x, y),
        (Dict(x), Dict(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((k1, v1), (k2, v2))| same(k1, k2) && same(v1, v2))
        }
        _ => a == b,
    }
}

fn int() -> impl Strategy<Value = PyValue> {
    prop_oneof![
        any::<i64>().prop_map(PyValue::from),
        (-300i64..300).prop_map(PyValue::from),
        proptest::collection::vec(any::<u8>(), 0..40)
            .prop_map(|b| PyValue::from(BigInt::from_signed_bytes_le(&b))),
    ]
}

fn scalar() -> impl Strategy<Value = PyValue> {
    prop_oneof![
        Just(PyValue::None),
        any::<bool>().prop_map(PyValue::Bool),
        int(),
        any::<f64>().prop_map(PyValue::Float),
        ".{0,12}".prop_map(PyValue::Str),
        proptest::collection::vec(any::<u8>(), 0..20).prop_map(PyValue::Bytes),
    ]
}

/// Values Python can hash: scalars, and tuples and frozensets of them.
fn hashable() -> impl Strategy<Value = PyValue> {
    scalar().prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..3).prop_map(PyValue::Tuple),
            proptest::collection::vec(inner, 0..3).prop_map(PyValue::FrozenSet),
        ]
    })
}

fn value() -> impl Strategy<Value = PyValue> {
    let leaf = prop_oneof![
        scalar(),
        proptest::collection::vec(any::<u8>(), 0..20).prop_map(PyValue::ByteArray),
    ];
    leaf.prop_recursive(4, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(PyValue::List),
            proptest::collection::vec(inner.clone(), 0..6).prop_map(PyValue::Tuple),
            proptest::collection::vec((hashable(), inner), 0..5).prop_map(PyValue::Dict),
            proptest::collection::vec(hashable(), 0..5).prop_map(PyValue::Set),
            proptest::collection::vec(hashable(), 0..5).prop_map(PyValue::FrozenSet),
        ]
    })
}

proptest! {
    #[test]
    fn every_value_survives_every_protocol_written(v in value()) {
        for protocol in PROTOCOLS {
            let bytes = encode(protocol, &v);
            prop_assert_eq!(bytes[1], protocol.number());
            let back = decode(&bytes).map_err(|e| TestCaseError::fail(format!("{protocol:?}: {e}")))?;
            prop_assert!(same(&back, &v), "{:?}: {:?} came back as {:?}", protocol, v, back);
            // Debug never panics, and a value's repr is stable.
            prop_assert_eq!(format!("{back:?}"), format!("{v:?}"));
        }
    }

    #[test]
    fn arbitrary_bytes_decode_or_fail_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = decode(&bytes);
        let mut lenient = Pickle::new().replace_unknown_classes();
        let _ = Decode::<PyValue>::decode(&mut lenient, &bytes);
    }
}

#[test]
fn ints_beyond_64_bits_decode_from_cpython_and_encode_as_cpython_does() {
    // pickle.dumps(2**64, 4) and pickle.dumps(-(2**100), 2)
    let p =
        b"\x80\x04\x95\x0c\x00\x00\x00\x00\x00\x00\x00\x8a\t\x00\x00\x00\x00\x00\x00\x00\x00\x01.";
    assert_eq!(decode(p).unwrap(), PyValue::from(1u128 << 64));
    let minus = PyValue::from(-(1i128 << 100));
    let cpython = b"\x80\x02\x8a\r\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xf0.";
    assert_eq!(encode(PickleProtocol::V2, &minus), cpython);
    assert_eq!(encode(PickleProtocol::V2, &(-(1i128 << 100))), cpython);
    let mut typed = Pickle::new();
    let mut out = Vec::new();
    typed.encode(&u64::MAX, &mut out).unwrap();
    assert_eq!(Decode::<u64>::decode(&mut typed, &out).unwrap(), u64::MAX);
    assert_eq!(Decode::<u128>::decode(&mut typed, p).unwrap(), 1 << 64);
}

#[test]
fn tuples_sets_and_bytearrays_keep_their_types_as_cpython_writes_them() {
    // CPython 3.12's pickle.dumps(x, 3) for each, and the same opcodes without its memo
    // (BINPUT), which is what procwire writes.
    let cases: [(PyValue, &[u8], &[u8]); 4] = [
        (
            (1,).into(),
            b"\x80\x03K\x01\x85q\x00.",
            b"\x80\x03K\x01\x85.",
        ),
        (
            PyValue::Set(vec![1.into(), 2.into()]),
            b"\x80\x03cbuiltins\nset\nq\x00]q\x01(K\x01K\x02e\x85q\x02Rq\x03.",
            b"\x80\x03cbuiltins\nset\n](K\x01K\x02e\x85R.",
        ),
        (
            PyValue::FrozenSet(vec![1.into()]),
            b"\x80\x03cbuiltins\nfrozenset\nq\x00]q\x01K\x01a\x85q\x02Rq\x03.",
            b"\x80\x03cbuiltins\nfrozenset\n](K\x01e\x85R.",
        ),
        (
            PyValue::ByteArray(b"ab".to_vec()),
            b"\x80\x03cbuiltins\nbytearray\nq\x00C\x02abq\x01\x85q\x02Rq\x03.",
            b"\x80\x03cbuiltins\nbytearray\nC\x02ab\x85R.",
        ),
    ];
    for (value, cpython, ours) in cases {
        assert_eq!(decode(cpython).unwrap(), value);
        assert_eq!(encode(PickleProtocol::V3, &value), ours, "{value:?}");
    }
}

#[test]
fn protocol_4_frames_its_opcodes_and_leaves_large_payloads_unframed() {
    let big = PyValue::Bytes(vec![7; 100_000]);
    let value = PyValue::List(vec![1.into(), big.clone(), "x".into()]);
    let p = encode(PickleProtocol::V4, &value);
    // PROTO 4, FRAME of the opcodes before the payload, BINBYTES outside any frame.
    assert_eq!(&p[..3], b"\x80\x04\x95");
    let first = u64::from_le_bytes(p[3..11].try_into().unwrap()) as usize;
    assert_eq!(&p[11..11 + first], b"](K\x01");
    assert_eq!(p[11 + first], b'B');
    assert_eq!(decode(&p).unwrap(), value);
    // A small value is one frame.
    let small = encode(PickleProtocol::V4, &PyValue::None);
    assert_eq!(small, b"\x80\x04\x95\x02\x00\x00\x00\x00\x00\x00\x00N.");
}

#[test]
fn shared_references_are_expanded_within_the_expansion_limit() {
    // x = [1, 'two']; pickle.dumps([x, x], 4)
    let p = b"\x80\x04\x95\x14\x00\x00\x00\x00\x00\x00\x00]\x94(]\x94(K\x01\x8c\x03two\x94eh\x01e.";
    let x = PyValue::List(vec![1.into(), "two".into()]);
    assert_eq!(decode(p).unwrap(), PyValue::List(vec![x.clone(), x]));
    // x = (); 64 times x = (x, x): refused before anything is built.
    let mut bomb = vec![0x80, 3, b')', b'q', 0];
    for _ in 0..64 {
        bomb.extend_from_slice(&[b'h', 0, b'h', 0, 0x86, b'q', 0]);
    }
    bomb.push(b'.');
    let err = decode(&bomb).unwrap_err();
    assert!(err.to_string().contains("byte limit"), "{err}");
}

#[test]
fn unhashable_keys_are_refused_on_encode_and_on_decode() {
    let bad = PyValue::Dict(vec![(PyValue::List(vec![]), 1.into())]);
    let mut out = Vec::new();
    let err = Pickle::new().encode(&bad, &mut out).unwrap_err();
    assert!(err.to_string().contains("hash"), "{err}");
    let nested = PyValue::Set(vec![PyValue::Tuple(vec![PyValue::ByteArray(vec![])])]);
    assert!(Pickle::new().encode(&nested, &mut Vec::new()).is_err());
    // A typed sequence key is no list: it is written as a tuple (see below), which Python
    // can hash; a struct key is refused.
    #[derive(Serialize, PartialEq, Eq, PartialOrd, Ord)]
    struct Point {
        x: u8,
    }
    let typed: BTreeMap<Point, u8> = BTreeMap::from([(Point { x: 1 }, 2)]);
    assert!(Pickle::new().encode(&typed, &mut Vec::new()).is_err());
    // {[]: 1} as a hostile pickle: EMPTY_DICT EMPTY_LIST K1 SETITEM.
    let err = decode(b"\x80\x03}]K\x01s.").unwrap_err();
    assert!(err.to_string().contains("unhashable type list"), "{err}");
}

#[test]
fn classes_outside_the_builtins_are_named_or_replaced_by_none() {
    // pickle.dumps([complex(1, 2)], 4)
    let p = b"\x80\x04\x95!\x00\x00\x00\x00\x00\x00\x00]\x94\x8c\x08builtins\x94\x8c\x07complex\x94\x93\x94G?\xf0\x00\x00\x00\x00\x00\x00G@\x00\x00\x00\x00\x00\x00\x00\x86\x94R\x94a.";
    let err = decode(p).unwrap_err();
    assert_eq!(err.python_class(), Some("builtins.complex"));
    assert!(err.to_string().contains("builtins.complex"), "{err}");
    let mut lenient = Pickle::new().replace_unknown_classes();
    let v: PyValue = lenient.decode(p).unwrap();
    assert_eq!(v, PyValue::List(vec![PyValue::None]));
}

#[test]
fn protocol_0_and_python_2_opcodes_decode() {
    // Python 2.7: pickle.dumps([1, 'a', u'b\xe9', 2**70, True, 1.5, 2**40], 0)
    let p = b"(lp0\nI1\naS'a'\np1\naVb\xe9\np2\naL1180591620717411303424L\naI01\naF1.5\naI1099511627776\na.";
    let want = PyValue::List(vec![
        1.into(),
        PyValue::Bytes(b"a".to_vec()),
        "b\u{e9}".into(),
        PyValue::from(1u128 << 70),
        true.into(),
        1.5.into(),
        PyValue::from(1i64 << 40),
    ]);
    assert_eq!(decode(p).unwrap(), want);
    // A decimal int longer than CPython's 4300-digit limit is refused.
    let mut long = b"L".to_vec();
    long.extend(std::iter::repeat_n(b'9', 5000));
    long.extend_from_slice(b"L\n.");
    assert!(decode(&long).unwrap_err().to_string().contains("4300"));
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Message {
    id: u32,
    payload: PyValue,
}

#[test]
fn a_pyvalue_inside_a_typed_message_keeps_its_python_types() {
    let payload = PyValue::Dict(vec![((1, 2).into(), PyValue::Set(vec!["s".into()]))]);
    let msg = Message {
        id: 7,
        payload: payload.clone(),
    };
    for protocol in PROTOCOLS {
        let bytes = encode(protocol, &msg);
        let back: Message = Pickle::new().decode(&bytes).unwrap();
        assert_eq!(back, msg);
        assert_eq!(
            decode(&bytes).unwrap().get(&"payload".into()),
            Some(&payload)
        );
    }
}

#[test]
fn typed_and_dynamic_values_convert_into_each_other() {
    let v = PyValue::from_serialize(&(1u8, vec!["a"], Some(2.5))).unwrap();
    assert_eq!(format!("{v:?}"), "(1, ['a'], 2.5)");
    let back: (u8, Vec<String>, Option<f64>) = v.deserialize_into().unwrap();
    assert_eq!(back, (1, vec!["a".to_string()], Some(2.5)));
}

#[cfg(feature = "json")]
#[test]
fn other_formats_see_a_pyvalue_through_serdes_data_model() {
    let json = serde_json::to_string(&PyValue::Set(vec![1.into(), (2, "x").into()])).unwrap();
    assert_eq!(json, r#"[1,[2,"x"]]"#);
    let from_json: PyValue = serde_json::from_str(r#"{"a": [1, null, 2.5]}"#).unwrap();
    assert_eq!(
        from_json,
        PyValue::Dict(vec![(
            "a".into(),
            vec![PyValue::from(1), PyValue::None, 2.5.into()].into()
        )])
    );
}

#[test]
fn conversions_from_and_to_rust_types() {
    assert_eq!(
        PyValue::from((1, "a")),
        PyValue::Tuple(vec![1.into(), "a".into()])
    );
    assert_eq!(PyValue::from(Some(3u8)), PyValue::from(3));
    assert_eq!(PyValue::from(None::<u8>), PyValue::None);
    assert_eq!(PyValue::from(&b"ab"[..]), PyValue::Bytes(b"ab".to_vec()));
    assert_eq!(i64::try_from(PyValue::from(-5)).unwrap(), -5);
    assert!(u8::try_from(PyValue::from(256)).is_err());
    assert!(i64::try_from(PyValue::from(1u128 << 64)).is_err());
    assert_eq!(
        BigInt::try_from(PyValue::from(1u128 << 64)).unwrap(),
        BigInt::from(1u128 << 64)
    );
    assert_eq!(PyInt::from(BigInt::from(5)), PyInt::from(5u8));
    assert_eq!(
        Vec::<u8>::try_from(PyValue::ByteArray(vec![1])).unwrap(),
        [1]
    );
    let err = String::try_from(PyValue::Bytes(vec![])).unwrap_err();
    assert_eq!(err.to_string(), "expected String, found a Python bytes");
}

/// A fuzz finding: a dict with a tuple key decodes (into a `Vec` key, or `serde_value`'s
/// sequence) and used to fail to encode again ("a list cannot be a dict key"). A sequence
/// inside a key or a set element is now written as a tuple, as Python needs.
#[test]
fn a_sequence_as_a_dict_key_encodes_as_a_tuple_and_comes_back_the_same() {
    let mut typed: BTreeMap<Vec<i64>, (i64, i64)> = BTreeMap::new();
    typed.insert(vec![1, 2], (3, 4));
    typed.insert(vec![], (5, 6));
    for protocol in [
        PickleProtocol::V2,
        PickleProtocol::V3,
        PickleProtocol::V4,
        PickleProtocol::V5,
    ] {
        let bytes = encode(protocol, &typed);
        let PyValue::Dict(items) = decode(&bytes).unwrap() else {
            panic!("{protocol:?}: not a dict")
        };
        let keys: Vec<&PyValue> = items.iter().map(|(k, _)| k).collect();
        assert!(
            keys.iter().all(|k| matches!(k, PyValue::Tuple(_))),
            "{protocol:?}: {keys:?}"
        );
        let back: BTreeMap<Vec<i64>, (i64, i64)> = Pickle::new().decode(&bytes).unwrap();
        assert_eq!(back, typed, "{protocol:?}");
    }
    // Dicts and sets stay refused as keys: Python cannot hash them.
    let mut bad: BTreeMap<BTreeMap<i64, i64>, i64> = BTreeMap::new();
    bad.insert(BTreeMap::new(), 1);
    let err = Pickle::new().encode(&bad, &mut Vec::new()).unwrap_err();
    assert!(err.to_string().contains("cannot hash"), "{err}");
}
