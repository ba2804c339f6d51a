//! The value `tests/python/pickle_peer.py` expects: every builtin type a typed Rust value
//! maps to, for the pickle interop tests (blocking and async).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

/// The Rust side of `EXPECTED` in `pickle_peer.py`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Everything {
    pub(crate) none: Option<i32>,
    pub(crate) unit: (),
    pub(crate) yes: bool,
    pub(crate) no: bool,
    pub(crate) ints: Vec<i64>,
    pub(crate) float: f64,
    pub(crate) floats: Vec<f64>,
    pub(crate) text: String,
    pub(crate) empty_text: String,
    pub(crate) blob: ByteBuf,
    pub(crate) empty_blob: ByteBuf,
    pub(crate) list: Vec<i32>,
    pub(crate) empty_list: Vec<i32>,
    pub(crate) tuple: (i32, String, bool, Option<f64>),
    pub(crate) dict: BTreeMap<String, i64>,
    pub(crate) int_keys: BTreeMap<i64, String>,
    pub(crate) nested: Vec<BTreeMap<String, Vec<Pair>>>,
}

/// `(1, None)` or `(2, b"2")` in Python.
pub(crate) type Pair = (i32, Option<ByteBuf>);

pub(crate) fn everything() -> Everything {
    Everything {
        none: None,
        unit: (),
        yes: true,
        no: false,
        ints: vec![
            0,
            1,
            -1,
            255,
            256,
            65535,
            65536,
            (1 << 31) - 1,
            1 << 31,
            -(1 << 31) - 1,
            i64::MAX,
            i64::MIN,
        ],
        float: 1.5,
        floats: vec![0.0, -2.5, 1e300, 5e-324],
        text: "h\u{e9}llo \u{2603} \u{1d11e}".into(),
        empty_text: String::new(),
        blob: ByteBuf::from(b"\x00\x01\xffbytes".to_vec()),
        empty_blob: ByteBuf::new(),
        list: vec![1, 2, 3],
        empty_list: vec![],
        tuple: (7, "seven".into(), true, None),
        dict: BTreeMap::from([("a".into(), 1), ("b".into(), -2)]),
        int_keys: BTreeMap::from([(1, "one".into()), (-1, "minus one".into())]),
        nested: vec![
            BTreeMap::from([(
                "xs".into(),
                vec![(1, None), (2, Some(ByteBuf::from(b"2".to_vec())))],
            )]),
            BTreeMap::new(),
        ],
    }
}
