//! Codec bounds one direction at a time: a sent type needs only `Serialize`, a received
//! one only `Deserialize`, and generic code names no codec bound. This file compiling is
//! most of the test (before `Encode`/`Decode`, every line below that sends a
//! `Serialize`-only type or receives a `Deserialize`-only one was a type error).
#![cfg(feature = "postcard")]

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use procwire::codec::{Decode, Encode};
use procwire::{Connection, Postcard};

/// Only ever sent: borrows, so it could not derive `Deserialize` for any lifetime.
#[derive(Serialize)]
struct Borrowed<'a> {
    name: &'a str,
    tags: &'a [&'a str],
}

/// Only ever received.
#[derive(Debug, PartialEq, Deserialize)]
struct Owned {
    name: String,
    tags: Vec<String>,
}

/// Generic over both directions with serde bounds alone.
fn ask<S: Serialize, R: DeserializeOwned>(
    conn: &Connection<S, R>,
    question: &S,
) -> procwire::Result<R> {
    conn.send(question)?;
    conn.recv()
}

/// Generic over the codec, one direction each.
fn forward<T, C1: Decode<T>, C2: Encode<T>>(
    from: &procwire::Receiver<T, C1>,
    to: &procwire::Sender<T, C2>,
) -> procwire::Result<()> {
    to.send(&from.recv()?)
}

#[test]
fn a_serialize_only_type_is_sent_and_a_deserialize_only_type_received() {
    let (tx, rx) = procwire::pipe::<Borrowed<'static>>().unwrap();
    tx.send(&Borrowed {
        name: "job",
        tags: &["a", "b"],
    })
    .unwrap();
    let bytes = rx.recv_bytes().unwrap();
    let (tx, rx) = procwire::pipe::<Owned>().unwrap();
    tx.send_bytes(&bytes).unwrap();
    let want = Owned {
        name: "job".into(),
        tags: vec!["a".into(), "b".into()],
    };
    assert_eq!(rx.recv().unwrap(), want);
}

#[test]
fn a_connection_sends_one_type_and_receives_another_with_serde_bounds_only() {
    let (a, b) = procwire::duplex::<Borrowed<'static>, Owned>().unwrap();
    // `b` would send `Owned` (not `Serialize`) and receive `Borrowed` (not
    // `Deserialize`): it has no typed method at all, and echoes bytes.
    let server = std::thread::spawn(move || {
        let got = b.recv_bytes().unwrap();
        b.send_bytes(&got).unwrap();
    });
    let answer = ask(
        &a,
        &Borrowed {
            name: "x",
            tags: &[],
        },
    )
    .unwrap();
    assert_eq!(
        answer,
        Owned {
            name: "x".into(),
            tags: vec![]
        }
    );
    server.join().unwrap();
}

#[test]
fn generic_code_over_codecs_asks_one_direction_of_each() {
    let (tx1, rx1) = procwire::pipe::<u32>().unwrap();
    let (tx2, rx2) = procwire::pipe_with::<u32, Postcard>(Postcard).unwrap();
    tx1.send(&7).unwrap();
    forward(&rx1, &tx2).unwrap();
    assert_eq!(rx2.recv().unwrap(), 7);
}

#[cfg(all(feature = "pickle", feature = "json"))]
#[test]
fn every_serde_codec_encodes_serialize_only_and_decodes_deserialize_only_types() {
    use procwire::codec::{Json, Pickle};
    fn through<C: Clone + Encode<Borrowed<'static>> + Decode<Owned>>(codec: C) {
        let mut c = codec.clone();
        let mut bytes = Vec::new();
        c.encode(
            &Borrowed {
                name: "n",
                tags: &["t"],
            },
            &mut bytes,
        )
        .unwrap();
        let got: Owned = c.decode(&bytes).unwrap();
        assert_eq!(
            got,
            Owned {
                name: "n".into(),
                tags: vec!["t".into()]
            }
        );
    }
    through(Postcard);
    through(Json);
    through(Pickle::new());
}
