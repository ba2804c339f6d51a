//! The seed corpus: valid messages, streams and handshakes for every target, built from
//! the same types the harnesses decode. `examples/write_seeds.rs` writes them to
//! `seeds/<target>/`; `tests/corpus.rs` checks that the committed files are these.

use std::collections::BTreeMap;

use procwire::{Codec, Postcard};
use procwire::codec::{Json, Pickle, Rkyv};
use procwire::frame::Header;

use crate::codecs::{Archived, JsonSample, Kind, Sample};

/// One seed: its target, its file name, its bytes.
pub type Seed = (&'static str, String, Vec<u8>);

/// Every seed made in Rust. (The pickle seeds made by CPython itself come from
/// `seeds/make_pickles.py` and are committed as they are.)
pub fn all() -> Vec<Seed> {
    let mut out = Vec::new();
    streams(&mut out);
    handshakes(&mut out);
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
    Postcard: Codec<T>,
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
