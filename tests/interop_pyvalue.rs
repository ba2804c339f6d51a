//! `PyValue` against real CPython, every interpreter found (Python 2.7 and 3.x, see
//! `pyinterop`), over a socketpair (as `duplex()` makes) and over a Rust `Listener` with
//! a Python `Client`; the interpreters run in parallel.
//!
//! `tests/python/pyvalue_peer.py` sends each of its objects (every type `PyValue`
//! holds) with `send()` and with every pickle protocol it has; Rust receives each as a
//! `PyValue` and sends it back with every protocol the peer reads; Python checks each
//! echo with `==` and with identical types all the way down. Then Rust sends values it
//! built itself (and one typed value), which Python checks the same way.
#![cfg(all(feature = "pickle", feature = "postcard"))]

mod pyinterop;

use std::collections::BTreeMap;
use std::thread;
use std::time::Duration;

use num_bigint::BigInt;
use serde_bytes::ByteBuf;

use procwire::codec::{Decode, Encode, Pickle, PickleProtocol, PyValue};
use procwire::{Address, Connection, Listener};
use pyinterop::{
    pythons_with_2, spawn_script, spawn_script_with, wait_bounded, Python, CHILD_LIMIT,
};

const WAIT: Duration = Duration::from_secs(20);

/// The protocols a peer reads: 2 for Python 2, 2 to 4 for 3.6 and 3.7, 2 to 5 after.
fn protocols(py: &Python) -> Vec<PickleProtocol> {
    use PickleProtocol::*;
    match py.version {
        (2, ..) => vec![V2],
        (3, 0..=7, _) => vec![V2, V3, V4],
        _ => vec![V2, V3, V4, V5],
    }
}

/// `FROM_RUST` in `pyvalue_peer.py`, built in Rust.
fn from_rust() -> Vec<PyValue> {
    let typed = PyValue::from_serialize(&(
        1u8,
        "s",
        vec![1.5f64],
        Some(()),
        BTreeMap::from([("k", (1, 2))]),
        u64::MAX,
        ByteBuf::from(b"b".to_vec()),
    ))
    .unwrap();
    vec![
        PyValue::None,
        true.into(),
        PyValue::from(-(1i128 << 100)),
        PyValue::from((BigInt::from(1) << 200u32) + 1),
        PyValue::from(1i64 << 40),
        PyValue::from(-7),
        PyValue::from(u64::MAX),
        PyValue::Float(-0.0),
        PyValue::Float(f64::INFINITY),
        PyValue::Float(f64::NAN),
        2.5.into(),
        "h\u{e9} \u{2603}".into(),
        "".into(),
        PyValue::Bytes(b"\x00\xff".to_vec()),
        PyValue::Bytes(vec![]),
        PyValue::ByteArray(b"ba".to_vec()),
        PyValue::ByteArray(vec![]),
        PyValue::Tuple(vec![]),
        (1,).into(),
        (1, "two", PyValue::None).into(),
        PyValue::List(vec![
            1.into(),
            PyValue::List(vec![2.5.into(), vec!["deep"].into()]),
        ]),
        PyValue::Dict(vec![
            ((1, 2).into(), PyValue::FrozenSet(vec![3.into()])),
            (
                "set".into(),
                PyValue::Set(vec![(1, "a").into(), (2, "b").into()]),
            ),
            (PyValue::None, PyValue::List(vec![])),
        ]),
        PyValue::FrozenSet(vec![(1, 2).into(), "x".into()]),
        PyValue::Set(vec![]),
        typed,
    ]
}

/// The Rust half of the exchange; returns how many objects came from Python.
fn exchange(py: &Python, conn: &Connection<PyValue, PyValue, Pickle>) -> usize {
    let protocols = protocols(py);
    let list: Vec<String> = protocols.iter().map(|p| p.number().to_string()).collect();
    conn.send_bytes(list.join(",").as_bytes()).unwrap();
    let mut codecs: Vec<Pickle> = protocols
        .iter()
        .map(|&p| Pickle::new().protocol(p))
        .collect();
    let send_all = |codecs: &mut [Pickle], value: &PyValue| {
        for codec in codecs {
            let mut out = Vec::new();
            codec
                .encode(value, &mut out)
                .unwrap_or_else(|e| panic!("{py}: {value:?}: {e}"));
            conn.send_bytes(&out).unwrap();
        }
    };
    let mut received = 0;
    loop {
        assert!(conn.poll(Some(WAIT)).unwrap(), "{py}: python went quiet");
        let bytes = conn.recv_bytes().unwrap();
        match &bytes[..] {
            b"done" => return received,
            b"rust" => {
                for codec in &mut codecs {
                    for value in from_rust() {
                        let mut out = Vec::new();
                        codec.encode(&value, &mut out).unwrap();
                        conn.send_bytes(&out).unwrap();
                    }
                }
            }
            _ => {
                received += 1;
                let value: PyValue = Decode::decode(&mut Pickle::new(), &bytes)
                    .unwrap_or_else(|e| panic!("{py}: message {received}: {e}"));
                send_all(&mut codecs, &value);
            }
        }
    }
}

/// Waits for the peer, checks it succeeded and that it sent at least 40 objects, each
/// with `send()` and every protocol it has (`received` messages).
fn check_python(py: &Python, child: std::process::Child, what: &str, received: usize) {
    let outcome = wait_bounded(child, CHILD_LIMIT);
    assert_eq!(outcome.code(), Some(0), "{py} ({what}): python: {outcome}");
    let first = outcome.stdout.lines().next().unwrap_or("");
    let objects: usize = first
        .rsplit(' ')
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{py}: no object count in {first:?}"));
    let highest = if py.version < (3, 0, 0) {
        2
    } else if py.version < (3, 8, 0) {
        4
    } else {
        5
    };
    assert!(objects >= 40, "{py}: only {objects} objects");
    assert_eq!(received, objects * (highest + 2), "{py}: messages received");
    println!("ran against {py} ({what}): {objects} objects, {received} messages");
}

fn for_every_python(run: impl Fn(&Python) + Sync) {
    let pythons = pythons_with_2();
    thread::scope(|s| {
        let handles: Vec<_> = pythons.iter().map(|py| (py, s.spawn(|| run(py)))).collect();
        for (py, handle) in handles {
            if handle.join().is_err() {
                panic!("{py} failed (its panic is printed above)");
            }
        }
    });
}

#[test]
fn python_objects_of_every_type_survive_a_round_trip_through_pyvalue_over_a_socketpair() {
    for_every_python(|py| {
        let (child, conn) =
            spawn_script_with::<PyValue, PyValue, _>(py, "pyvalue_peer.py", &["fd"], Pickle::new());
        let received = exchange(py, &conn);
        drop(conn);
        check_python(py, child, "socketpair", received);
    });
}

#[test]
fn python_objects_of_every_type_survive_a_round_trip_through_pyvalue_over_listener_and_client() {
    for_every_python(|py| {
        let listener = Listener::bind("127.0.0.1:0").unwrap();
        let Address::Tcp(addr) = listener.local_addr().clone() else {
            panic!("not a tcp listener")
        };
        let (child, control) = spawn_script(py, "pyvalue_peer.py", &["connect"]);
        control.send_bytes(addr.to_string().as_bytes()).unwrap();
        let conn = listener
            .accept_with::<PyValue, PyValue, _>(Pickle::new())
            .unwrap();
        let received = exchange(py, &conn);
        drop((conn, control));
        check_python(py, child, "python Client, rust Listener", received);
    });
}
