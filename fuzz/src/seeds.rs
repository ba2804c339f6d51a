//! The seed corpus: valid messages, streams and handshakes for every target, built from
//! the same types the harnesses decode. `examples/write_seeds.rs` writes them to
//! `seeds/<target>/`; `tests/corpus.rs` checks that the committed files are these.

use std::collections::BTreeMap;

use procwire::codec::Encode;
use procwire::codec::{Json, Pickle, PyValue, Rkyv};
use procwire::frame::Header;
use procwire::Postcard;

use crate::codecs::{Archived, JsonSample, Kind, Sample, PICKLE_PROTOCOLS};

/// One seed: its target, its file name, its bytes.
pub type Seed = (&'static str, String, Vec<u8>);

/// Every seed made in Rust. (The pickle seeds made by CPython itself come from
/// `seeds/make_pickles.py` and are committed as they are.)
pub fn all() -> Vec<Seed> {
    let mut out = Vec::new();
    streams(&mut out);
    handshakes(&mut out);
    machines(&mut out);
    codecs(&mut out);
    out
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Header::for_payload(payload.len() as u64).encode().to_vec();
    out.extend_from_slice(payload);
    out
}

fn long_frame(payload: &[u8]) -> Vec<u8> {
    let mut out = (-1i32).to_be_bytes().to_vec();
    out.extend_from_slice(&(payload.len() as u64).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

fn postcard<T>(value: &T) -> Vec<u8>
where
    Postcard: Encode<T>,
{
    let mut out = Vec::new();
    Postcard.encode(value, &mut out).expect("postcard encodes");
    out
}

fn streams(out: &mut Vec<Seed>) {
    let mut messages = Vec::new();
    for m in [&b""[..], b"hello", &postcard(&vec![1u8, 2, 3]), &[7; 300]] {
        messages.extend(frame(m));
    }
    messages.extend(long_frame(b"escape"));
    for (name, knobs) in [
        ("socket", [5, 0, 4, 1]),
        ("pipe-bytewise", [5, 1, 0, 2]),
        ("small-limit", [2, 0, 3, 3]),
    ] {
        let mut seed = knobs.to_vec();
        seed.extend_from_slice(&messages);
        out.push(("frame_reader", name.to_string(), seed.clone()));
        out.push(("frame_decoder", name.to_string(), seed));
    }
    let mut cut = vec![5, 0, 5, 4];
    cut.extend_from_slice(&frame(b"whole"));
    cut.extend_from_slice(&frame(&[1; 100])[..50]);
    out.push(("frame_reader", "truncated-payload".into(), cut.clone()));
    // A receiver that takes memfd frames (transport knob 2: a socketpair, opted in): each
    // whole frame of length -2 is refused (no descriptor can come) and the stream goes on;
    // the last is cut short.
    let memfd_frame = |tag: &[u8; 4], slot: u32, flags: u64| {
        let mut f = (-2i32).to_be_bytes().to_vec();
        f.extend_from_slice(tag);
        f.extend_from_slice(&slot.to_le_bytes());
        f.extend_from_slice(&1000u64.to_le_bytes());
        f.extend_from_slice(&1u64.to_le_bytes());
        f.extend_from_slice(&flags.to_le_bytes());
        f.extend_from_slice(b"PWLE\0\0\0\0"); // the end record: "complete"
        f
    };
    let mut memfd = vec![5, 2, 4, 1, 0]; // the seed for chunk lengths is a u16
    memfd.extend_from_slice(&frame(b"a"));
    memfd.extend_from_slice(&memfd_frame(b"PWLM", 0, 1));
    memfd.extend_from_slice(&memfd_frame(b"XXXX", 0, 0));
    memfd.extend_from_slice(&frame(b"b"));
    memfd.extend_from_slice(&memfd_frame(b"PWLM", 9, 0));
    memfd.extend_from_slice(&memfd_frame(b"PWLM", 1, 0)[..20]);
    out.push(("frame_reader", "memfd-frames".into(), memfd));
    // The two targets read the same knobs: every stream seed serves both.
    out.push(("frame_decoder", "truncated-payload".into(), cut));

    // recv_bytes_into: length, long form, element type, capacity, try-receive, payload.
    let mut seed = vec![0];
    for (len, long, kind, cap) in [
        (8u16, 0u8, 3u8, 1u16),
        (10, 0, 5, 2),
        (12, 4, 6, 0),
        (0, 0, 0, 0),
    ] {
        seed.extend_from_slice(&len.to_le_bytes());
        seed.extend_from_slice(&[long, kind]);
        seed.extend_from_slice(&cap.to_le_bytes());
        seed.push(1);
        seed.extend((0..len).map(|i| i as u8));
    }
    out.push(("recv_bytes_into", "mixed".into(), seed));
}

fn handshakes(out: &mut Vec<Seed>) {
    // What a client sends a listener: its answer, then (after #WELCOME#) its challenge,
    // then #WELCOME# for the listener's answer.
    let mut answer = b"{sha256}".to_vec();
    answer.extend_from_slice(&[0x42; 32]);
    let mut challenge = b"#CHALLENGE#{sha256}".to_vec();
    challenge.extend_from_slice(&[0x17; 40]);
    let mut to_listener = vec![1];
    for m in [&answer[..], &challenge, b"#WELCOME#"] {
        to_listener.extend(frame(m));
    }
    out.push(("auth_listener", "sha256-client".into(), to_listener));
    let mut legacy = vec![1];
    legacy.extend(frame(&[0x42; 16]));
    out.push(("auth_listener", "legacy-md5-client".into(), legacy));

    let mut to_client = vec![1];
    let mut answer384 = b"{sha384}".to_vec();
    answer384.extend_from_slice(&[0x42; 48]);
    for m in [&challenge[..], b"#WELCOME#", &answer384] {
        to_client.extend(frame(m));
    }
    out.push(("auth_client", "sha256-listener".into(), to_client));
    let mut legacy_challenge = b"#CHALLENGE#".to_vec();
    legacy_challenge.extend_from_slice(&[0x17; 20]);
    let mut legacy = vec![0];
    legacy.extend(frame(&legacy_challenge));
    legacy.extend(frame(b"#FAILURE#"));
    out.push(("auth_client", "legacy-listener".into(), legacy));
}

/// A key as the `handshake` target reads it: a length byte, then the bytes.
fn key(bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![bytes.len() as u8];
    out.extend_from_slice(bytes);
    out
}

/// 40 nonce bytes counting up from `start`, as in CPython's test vectors.
fn nonce(start: u8) -> Vec<u8> {
    (0..40).map(|i| start.wrapping_add(i)).collect()
}

/// A peer message event of the `handshake` target's first mode.
fn event(payload: &[u8]) -> Vec<u8> {
    let mut out = vec![3];
    out.extend_from_slice(&(payload.len() as u16).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

fn machines(out: &mut Vec<Seed>) {
    let challenge = |name: &[u8], fill: u8| [b"#CHALLENGE#", name, &[fill; 40][..]].concat();
    let sha256_reply = [&b"{sha256}"[..], &[0x42; 32]].concat();
    let sha384_reply = [&b"{sha384}"[..], &[0x42; 48]].concat();
    let against_bytes = |role: u8, events: &[Vec<u8>]| {
        let mut seed = vec![0, role];
        seed.extend(key(b"secret-key"));
        seed.extend(nonce(0));
        events.iter().for_each(|e| seed.extend_from_slice(e));
        seed
    };
    let welcome = event(b"#WELCOME#");
    let seeds = [
        (
            "server-wrong-reply",
            against_bytes(
                0,
                &[
                    event(&sha256_reply),
                    event(&challenge(b"{sha256}", 0x17)),
                    welcome.clone(),
                ],
            ),
        ),
        (
            "client-cpython-listener",
            against_bytes(
                1,
                &[
                    event(&challenge(b"{sha256}", 0)),
                    welcome.clone(),
                    event(&sha384_reply),
                    vec![0, 1, 0],
                ],
            ),
        ),
        (
            "answer-sha384-then-more",
            against_bytes(
                3,
                &[
                    event(&challenge(b"{sha384}", 7)),
                    welcome.clone(),
                    welcome.clone(),
                    vec![2, 0],
                ],
            ),
        ),
        (
            "answer-legacy",
            against_bytes(
                3,
                &[
                    event(&[&b"#CHALLENGE#"[..], &[0x17; 20]].concat()),
                    event(b"#FAILURE#"),
                ],
            ),
        ),
        (
            "deliver-oversized",
            against_bytes(2, &[vec![0, 0, 1], event(&sha256_reply)]),
        ),
        (
            "client-malformed-frame",
            against_bytes(1, &[vec![1], event(&challenge(b"{sha3_256}", 1))]),
        ),
    ];
    for (name, seed) in seeds {
        out.push(("handshake", name.into(), seed));
    }

    // Machine against machine: mode, pair, first key, same (0) or a second key (1), the
    // two nonces, then what happens to each message (nothing: all delivered).
    let pair = |pair: u8, a: &[u8], b: Option<&[u8]>, actions: &[u8]| {
        let mut seed = vec![1, pair];
        seed.extend(key(a));
        match b {
            None => seed.push(0),
            Some(b) => {
                seed.push(1);
                seed.extend(key(b));
            }
        }
        seed.extend(nonce(0));
        seed.extend(nonce(0x80));
        seed.extend_from_slice(actions);
        seed
    };
    let long = [0xa5; 100];
    let seeds = [
        ("pair-same-key", pair(0, b"secret-key", None, &[])),
        (
            "pair-other-key",
            pair(0, b"secret-key", Some(b"wrong-key"), &[]),
        ),
        ("pair-zero-padded-keys", pair(2, b"a", Some(b"a\0"), &[])),
        ("pair-long-keys", pair(1, &long, Some(&long[1..]), &[])),
        // The reply gets one bit flipped, then the verdict is replaced by #WELCOME#.
        (
            "pair-tampered",
            pair(
                1,
                b"secret-key",
                None,
                &[
                    0, 2, 7, 0, 3, 9, b'#', b'W', b'E', b'L', b'C', b'O', b'M', b'E', b'#',
                ],
            ),
        ),
    ];
    for (name, seed) in seeds {
        out.push(("handshake", name.into(), seed));
    }
}

fn samples() -> Vec<Sample> {
    let map: BTreeMap<String, i16> = [("a".to_string(), -1), ("b".to_string(), 300)].into();
    vec![
        Sample::Unit,
        Sample::Int(-5),
        Sample::Wide(u128::MAX, i128::MIN),
        Sample::Float(1.5, f32::NAN),
        Sample::Text("héllo".into()),
        Sample::Char('λ'),
        Sample::Bytes(vec![0, 255]),
        Sample::Numbers(vec![1, 70000]),
        Sample::Map(map),
        Sample::Tuple(9, true, Some(2)),
        Sample::Record {
            id: 7,
            name: Some("root".into()),
            children: vec![
                Sample::Int(1),
                Sample::Record {
                    id: 8,
                    name: None,
                    children: vec![],
                },
            ],
        },
    ]
}

fn codecs(out: &mut Vec<Seed>) {
    for (i, s) in samples().iter().enumerate() {
        out.push(("codec_postcard", format!("sample-{i}"), postcard(s)));
    }
    out.push(("codec_postcard", "all-samples".into(), postcard(&samples())));

    let tree = JsonSample::Tree {
        name: "t".into(),
        children: vec![
            JsonSample::Int(-3),
            JsonSample::Float(0.1),
            JsonSample::Text("\u{1F600}\n".into()),
            JsonSample::Flags(vec![true, false]),
            JsonSample::Map([("k".to_string(), None), ("v".to_string(), Some(4))].into()),
        ],
    };
    let mut json = Vec::new();
    Json.encode(&tree, &mut json).expect("json encodes");
    out.push(("codec_json", "tree".into(), json));
    out.push((
        "codec_json",
        "value".into(),
        br#"{"a":[1,2.5,"x",null,true],"b":{}}"#.to_vec(),
    ));

    let mut pickle = Vec::new();
    let tuple = (42i64, "text".to_string(), vec![1.0f64, -0.0], Some(true));
    Pickle::new()
        .encode(&tuple, &mut pickle)
        .expect("pickle encodes");
    out.push(("codec_pickle", "rust-tuple".into(), pickle));

    let value = PyValue::Dict(vec![
        (
            (1, "k").into(),
            PyValue::Set(vec![PyValue::FrozenSet(vec![2.into()])]),
        ),
        ("big".into(), PyValue::from(-(1i128 << 100))),
        ("blob".into(), PyValue::ByteArray(b"\x00\xff".to_vec())),
        (
            "list".into(),
            PyValue::List(vec![PyValue::None, 1.5.into(), PyValue::Bytes(vec![])]),
        ),
    ]);
    for protocol in PICKLE_PROTOCOLS {
        let mut pickle = Vec::new();
        Pickle::new()
            .protocol(protocol)
            .encode(&value, &mut pickle)
            .expect("pickle encodes");
        out.push((
            "pickle_value",
            format!("rust-p{}", protocol.number()),
            pickle,
        ));
    }

    let record = Archived {
        id: 3,
        name: "name".into(),
        samples: vec![0.5, f32::INFINITY],
        tags: vec!["a".into(), "a longer tag than inline".into()],
        flag: Some(false),
        kind: Kind::Point {
            x: 1,
            y: Some(u64::MAX),
        },
        grid: vec![vec![1, 2], vec![], vec![3]],
    };
    for (name, value) in [
        ("record", record.clone()),
        (
            "plain",
            Archived {
                kind: Kind::Code(-9),
                ..record
            },
        ),
    ] {
        let mut bytes = Vec::new();
        Rkyv::new()
            .encode(&value, &mut bytes)
            .expect("rkyv encodes");
        out.push(("codec_rkyv", name.into(), bytes));
    }
}
