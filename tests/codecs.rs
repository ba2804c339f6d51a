//! The codec contract: one suite, run against every codec the build enables.
//!
//! Each codec must round-trip nested structs, enums, strings, byte vectors and empty
//! values through a real connection (small messages decoded in place, large ones not);
//! must turn arbitrary bytes into a value or [`Error::Decode`], never a panic or another
//! error; and must leave the connection delivering the next message after a decode error.
//! `contract!` instantiates the suite once per codec.

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use serde::{Deserialize, Serialize};

use procwire::codec::{Decode, Encode};
use procwire::{Codec, Connection, Error};

/// A value with one of everything a codec must carry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "rkyv",
    derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)
)]
struct Record {
    id: u64,
    name: String,
    #[serde(with = "serde_bytes")]
    blob: Vec<u8>,
    samples: Vec<f64>,
    tags: BTreeMap<String, i32>,
    shape: Shape,
    inner: Vec<Inner>,
    maybe: Option<Inner>,
    pair: (i16, bool),
    nothing: Empty,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "rkyv",
    derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)
)]
struct Inner {
    label: String,
    values: Vec<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "rkyv",
    derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)
)]
enum Shape {
    #[default]
    Unit,
    Newtype(i64),
    Tuple(u8, String),
    Struct {
        w: u32,
        h: u32,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "rkyv",
    derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)
)]
struct Empty;

fn finite() -> impl Strategy<Value = f64> {
    prop::num::f64::NORMAL | prop::num::f64::SUBNORMAL | prop::num::f64::ZERO
}

fn shape() -> impl Strategy<Value = Shape> {
    prop_oneof![
        Just(Shape::Unit),
        any::<i64>().prop_map(Shape::Newtype),
        (any::<u8>(), ".{0,8}").prop_map(|(a, b)| Shape::Tuple(a, b)),
        (any::<u32>(), any::<u32>()).prop_map(|(w, h)| Shape::Struct { w, h }),
    ]
}

fn inner() -> impl Strategy<Value = Inner> {
    (".{0,12}", prop::collection::vec(any::<i64>(), 0..6))
        .prop_map(|(label, values)| Inner { label, values })
}

prop_compose! {
    fn record()(
        id in any::<u64>(),
        name in ".{0,24}",
        blob in prop::collection::vec(any::<u8>(), 0..64),
        samples in prop::collection::vec(finite(), 0..16),
        tags in prop::collection::btree_map(".{0,6}", any::<i32>(), 0..4),
        shape in shape(),
        inner in prop::collection::vec(inner(), 0..4),
        maybe in prop::option::of(inner()),
        pair in any::<(i16, bool)>(),
    ) -> Record {
        Record { id, name, blob, samples, tags, shape, inner, maybe, pair, nothing: Empty }
    }
}

/// Every empty or minimal value a codec might mishandle.
fn empties() -> Vec<Record> {
    let mut out = vec![Record::default()];
    for shape in [
        Shape::Newtype(0),
        Shape::Tuple(0, String::new()),
        Shape::Struct { w: 0, h: 0 },
    ] {
        out.push(Record {
            shape,
            ..Record::default()
        });
    }
    out.push(Record {
        inner: vec![Inner::default(); 3],
        maybe: Some(Inner::default()),
        tags: BTreeMap::from([(String::new(), 0)]),
        ..Record::default()
    });
    out
}

/// A record larger than the receive buffer, so it is not decoded in place.
fn large() -> Record {
    Record {
        id: 1 << 40,
        name: "large".repeat(1000),
        blob: (0..200_000u32).map(|i| (i % 251) as u8).collect(),
        samples: (0..20_000).map(|i| f64::from(i) * 0.25).collect(),
        ..Record::default()
    }
}

type Pair<C> = (Connection<Record, Record, C>, Connection<Record, Record, C>);

/// Receives within a bounded time, so a broken codec fails instead of hanging.
fn recv_bounded<C: Codec<Record>>(
    conn: &Connection<Record, Record, C>,
) -> procwire::Result<Record> {
    conn.recv_timeout(Duration::from_secs(10))
}

fn round_trip<C: Codec<Record>>((a, b): &Pair<C>, value: &Record) {
    a.send(value).unwrap();
    assert_eq!(&recv_bounded(b).unwrap(), value);
}

/// Sends `bytes` raw and checks that receiving them gives a value or `Error::Decode`, and
/// that the next message then arrives intact.
fn garbage_then_valid<C: Codec<Record>>(pair: &Pair<C>, bytes: &[u8]) -> bool {
    let (a, b) = pair;
    a.send_bytes(bytes).unwrap();
    let decoded = match recv_bounded(b) {
        Ok(_) => true,
        Err(Error::Decode(_)) => false,
        Err(other) => panic!("{} garbage bytes gave {other:?}", bytes.len()),
    };
    let next = Record {
        name: "after".into(),
        ..Record::default()
    };
    round_trip(pair, &next);
    decoded
}

macro_rules! contract {
    ($($name:ident: $codec:expr;)+) => {$(
        mod $name {
            use super::*;

            fn pair() -> Pair<impl Codec<Record> + Clone> {
                procwire::duplex_with::<Record, Record, _>($codec).unwrap()
            }

            proptest! {
                #![proptest_config(ProptestConfig::with_cases(96))]

                #[test]
                fn records_round_trip(value in record()) {
                    round_trip(&pair(), &value);
                }

                #[test]
                fn arbitrary_bytes_decode_or_fail_without_panicking(
                    bytes in prop::collection::vec(any::<u8>(), 0..256)
                ) {
                    let mut codec = $codec;
                    let _ = Decode::<Record>::decode(&mut codec, &bytes);
                }

                #[test]
                fn arbitrary_messages_leave_the_connection_usable(
                    bytes in prop::collection::vec(any::<u8>(), 0..128)
                ) {
                    garbage_then_valid(&pair(), &bytes);
                }
            }

            #[test]
            fn empty_values_round_trip() {
                let pair = pair();
                for value in empties() {
                    round_trip(&pair, &value);
                }
            }

            #[test]
            fn a_message_larger_than_the_read_buffer_round_trips() {
                let pair = pair();
                let value = large();
                let (a, b) = &pair;
                std::thread::scope(|s| {
                    s.spawn(|| a.send(&value).unwrap());
                    assert!(recv_bounded(b).unwrap() == value);
                });
                round_trip(&pair, &Record::default());
            }

            #[test]
            fn invalid_messages_are_decode_errors_and_the_next_one_arrives() {
                let pair = pair();
                for bytes in [&b""[..], b"\xff\xfe\xfd", b"\x00"] {
                    assert!(!garbage_then_valid(&pair, bytes), "{bytes:?} decoded");
                }
            }

            #[test]
            fn every_prefix_of_a_valid_message_is_refused() {
                let pair = pair();
                let mut codec = $codec;
                let mut bytes = Vec::new();
                let value = Record {
                    id: 7,
                    name: "prefix".into(),
                    shape: Shape::Tuple(1, "x".into()),
                    maybe: Some(Inner::default()),
                    ..Record::default()
                };
                codec.encode(&value, &mut bytes).unwrap();
                for end in 0..bytes.len() {
                    let decoded = garbage_then_valid(&pair, &bytes[..end]);
                    assert!(!decoded, "a {end}-byte prefix of {} decoded", bytes.len());
                }
            }
        }
    )+};
}

#[cfg(feature = "postcard")]
contract! { postcard_codec: procwire::Postcard; }

#[cfg(feature = "rkyv")]
contract! { rkyv_codec: procwire::codec::Rkyv::new(); }

#[cfg(feature = "pickle")]
contract! { pickle_codec: procwire::codec::Pickle::new(); }

#[cfg(feature = "json")]
contract! { json_codec: procwire::codec::Json; }

/// `recv_archived`: the rkyv codec's in-place receive.
#[cfg(feature = "rkyv")]
mod rkyv_archived {
    use super::*;
    use procwire::codec::Rkyv;

    fn pair() -> Pair<Rkyv> {
        procwire::duplex_with::<Record, Record, _>(Rkyv::new()).unwrap()
    }

    #[test]
    fn recv_archived_reads_small_and_large_messages_in_place() {
        let (a, b) = pair();
        let big = large();
        std::thread::scope(|s| {
            s.spawn(|| {
                a.send(&Record::default()).unwrap();
                a.send(&big).unwrap();
                a.send(&Record::default()).unwrap();
            });
            for expected in [&Record::default(), &big, &Record::default()] {
                let archived = b.recv_archived().unwrap();
                assert_eq!(archived.id, expected.id);
                assert_eq!(archived.name.as_str(), expected.name);
                assert_eq!(archived.blob.as_slice(), expected.blob.as_slice());
                assert_eq!(archived.samples.len(), expected.samples.len());
                assert_eq!(archived.as_bytes().as_ptr() as usize % 16, 0, "aligned");
                assert!(archived.deserialize().unwrap() == *expected);
            }
        });
    }

    #[test]
    fn recv_archived_refuses_invalid_archives_and_the_next_one_arrives() {
        let (a, b) = pair();
        for garbage in [&b""[..], b"\xff\xff\xff\xff", &[0xAA; 300]] {
            a.send_bytes(garbage).unwrap();
            assert!(matches!(b.recv_archived(), Err(Error::Decode(_))));
            a.send(&Record {
                id: 3,
                ..Record::default()
            })
            .unwrap();
            assert_eq!(b.recv_archived().unwrap().id, 3);
        }
    }

    #[test]
    fn sending_while_holding_an_archive_does_not_wait_for_it() {
        let (a, b) = pair();
        a.send(&Record {
            id: 1,
            ..Record::default()
        })
        .unwrap();
        let archived = b.recv_archived().unwrap();
        b.send(&Record {
            id: 2,
            ..Record::default()
        })
        .unwrap();
        assert_eq!(archived.id, 1);
        drop(archived);
        assert_eq!(recv_bounded(&a).unwrap().id, 2);
    }

    #[test]
    fn a_receive_on_another_thread_waits_for_the_archive_to_be_dropped() {
        let (a, b) = pair();
        a.send(&Record {
            id: 1,
            ..Record::default()
        })
        .unwrap();
        a.send(&Record {
            id: 2,
            ..Record::default()
        })
        .unwrap();
        let archived = b.recv_archived().unwrap();
        std::thread::scope(|s| {
            let other = s.spawn(|| b.recv().unwrap().id);
            std::thread::sleep(Duration::from_millis(50));
            assert!(
                !other.is_finished(),
                "the guard should hold the receive lock"
            );
            assert_eq!(archived.id, 1);
            drop(archived);
            assert_eq!(other.join().unwrap(), 2);
        });
    }
}

/// The pickle codec's defences: inputs that would crash or exhaust a naive decoder.
#[cfg(feature = "pickle")]
mod pickle_hostile {
    use super::*;
    use procwire::codec::Pickle;

    fn decode_error(bytes: &[u8]) -> String {
        let (a, b) = procwire::duplex_with::<Vec<i64>, Vec<i64>, _>(Pickle::new()).unwrap();
        a.send_bytes(bytes).unwrap();
        let err = match b.recv_timeout(Duration::from_secs(10)) {
            Err(Error::Decode(e)) => e.to_string(),
            other => panic!("expected a decode error, got {other:?}"),
        };
        a.send_bytes(b"\x80\x03]q\x00(K\x01K\x02e.").unwrap(); // [1, 2]
        assert_eq!(b.recv_timeout(Duration::from_secs(10)).unwrap(), [1, 2]);
        err
    }

    #[test]
    fn deeply_nested_pickles_are_refused_without_overflowing_the_stack() {
        let mut p = vec![0x80, 3, b'N'];
        p.extend(std::iter::repeat_n(0x85, 200_000)); // TUPLE1
        p.push(b'.');
        assert!(decode_error(&p).contains("128-level"));
    }

    #[test]
    fn exponentially_expanding_pickles_are_refused() {
        let mut p = vec![0x80, 3, b']', b'q', 0];
        for _ in 0..64 {
            p.extend_from_slice(&[b'h', 0, b'h', 0, 0x86, b'q', 0]); // x = (x, x)
        }
        p.push(b'.');
        assert!(decode_error(&p).contains("byte limit"));
    }

    #[test]
    fn unknown_python_classes_are_named_in_the_error() {
        // pickle.dumps(array('i', [2]), protocol=3)
        let p = b"\x80\x03carray\n_array_reconstructor\nq\x00(carray\narray\nq\x01X\x01\x00\x00\x00iq\x02K\x08C\x04\x02\x00\x00\x00q\x03tq\x04Rq\x05.";
        let err = decode_error(p);
        assert!(err.contains("array._array_reconstructor"), "{err}");
    }

    #[test]
    fn every_u64_round_trips_and_ints_beyond_a_type_are_refused_on_decode() {
        let (tx, big) = procwire::pipe_with::<u128, _>(Pickle::new()).unwrap();
        let (small_tx, small) = procwire::pipe_with::<u64, _>(Pickle::new()).unwrap();
        for n in [u128::from(u64::MAX), 1 << 64, 7] {
            tx.send(&n).unwrap();
            small_tx.send_bytes(&big.recv_bytes().unwrap()).unwrap();
        }
        assert_eq!(small.recv().unwrap(), u64::MAX);
        let err = match small.recv() {
            Err(Error::Decode(e)) => e.to_string(),
            other => panic!("expected a decode error, got {other:?}"),
        };
        assert!(err.contains("18446744073709551616"), "{err}");
        assert_eq!(small.recv().unwrap(), 7);
    }
}
