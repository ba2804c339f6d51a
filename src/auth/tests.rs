//! Unit tests of the handshake: the pure message functions against the CPython vectors
//! of the wire protocol reference (§8), and whole transcripts of the blocking driver byte
//! for byte over a socket pair. The vectors are shared with the machine's own tests in
//! `handshake/tests.rs`.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::blocking::{answer, deliver};
use super::message::*;
use super::*;
use crate::error::{Error, Result};
use crate::message::{Duplex, MessageReceiver, MessageSender};
use crate::transport::Kind;

pub(super) const KEY: &[u8] = b"secret-key";
pub(super) const WELCOME_FRAME: &str = "000000092357454c434f4d4523";
pub(super) const FAILURE_FRAME: &str = "00000009234641494c55524523";
/// §8.2, CPython 3.12/3.13: the server's challenge (nonce 00..27) and the client's reply.
pub(super) const SHA256_CHALLENGE_00: &str = "0000003b234348414c4c454e4745237b7368613235367d\
    000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f2021222324252627";
pub(super) const SHA256_REPLY_00: &str = "000000287b7368613235367d\
    39c4ff3268da80f68b36eb46879c33a2dedb3ac28faebb6a0279ac6a912624d9";
/// §8.2: the client's challenge (nonce 80..a7) and the server's reply.
pub(super) const SHA256_CHALLENGE_80: &str = "0000003b234348414c4c454e4745237b7368613235367d\
    808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7";
pub(super) const SHA256_REPLY_80: &str = "000000287b7368613235367d\
    af8e72bbe7d9885f0878c5e8d3b436f6b34c8e9190ea22877b951c4cc1dbb653";
/// §8.4: the reply of a client with the key `wrong-key` to `SHA256_CHALLENGE_00`.
pub(super) const WRONG_KEY_REPLY_00: &str = "000000287b7368613235367d\
    b7c13e1c3a59ca776557c62cb1fef377dce9e3091bf77746a450c51c2b90c999";
/// §8.2, CPython 3.11: legacy challenges and raw HMAC-MD5 replies.
pub(super) const LEGACY_CHALLENGE_00: &str =
    "0000001f234348414c4c454e474523000102030405060708090a0b0c0d0e0f10111213";
pub(super) const LEGACY_CHALLENGE_80: &str =
    "0000001f234348414c4c454e474523808182838485868788898a8b8c8d8e8f90919293";

pub(super) fn hex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex string");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

pub(super) fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The payload of a frame given in hex (its 4-byte header dropped).
pub(super) fn payload(frame: &str) -> Vec<u8> {
    hex(frame)[4..].to_vec()
}

pub(super) fn nonce_from(start: u8) -> [u8; NONCE_LEN] {
    std::array::from_fn(|i| start + i as u8)
}

fn deadline() -> Option<Instant> {
    Some(Instant::now() + Duration::from_secs(10))
}

pub(super) fn auth_reason(r: Result<()>) -> String {
    match r {
        Err(Error::AuthenticationFailed(why)) => why,
        other => panic!("expected AuthenticationFailed, got {other:?}"),
    }
}

/// One step of a scripted peer: write a frame, or read one and check it byte for byte.
enum Step {
    Send(&'static str),
    Expect(&'static str),
}

/// The message layer's two halves over one socket: the connection the driver runs over.
struct Pair {
    tx: MessageSender,
    rx: MessageReceiver,
}

impl Pair {
    fn duplex(&self) -> Duplex<'_, (), ()> {
        Duplex {
            tx: &self.tx,
            rx: &self.rx,
        }
    }
}

/// A message connection and a raw socket playing a scripted CPython peer.
fn scripted(steps: Vec<Step>) -> (Pair, JoinHandle<()>) {
    let (ours, theirs) = crate::transport::socketpair().unwrap();
    let mut raw = UnixStream::from(theirs);
    raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let peer = thread::spawn(move || {
        for (i, step) in steps.into_iter().enumerate() {
            match step {
                Step::Send(frame) => raw.write_all(&hex(frame)).unwrap(),
                Step::Expect(frame) => {
                    let mut got = vec![0; frame.len() / 2];
                    raw.read_exact(&mut got).unwrap();
                    assert_eq!(
                        to_hex(&got),
                        frame.replace(char::is_whitespace, ""),
                        "step {i}"
                    );
                }
            }
        }
    });
    let fd = std::sync::Arc::new(ours);
    let pair = Pair {
        tx: MessageSender::new(fd.clone(), Kind::Unix, ()),
        rx: MessageReceiver::new(fd, Kind::Unix, ()),
    };
    (pair, peer)
}

#[test]
fn challenge_message_matches_cpython_3_12() {
    assert_eq!(
        challenge_message(&nonce_from(0)),
        payload(SHA256_CHALLENGE_00)
    );
    assert_eq!(
        challenge_message(&nonce_from(0x80)),
        payload(SHA256_CHALLENGE_80)
    );
}

#[test]
fn reply_matches_cpython_3_12() {
    assert_eq!(
        reply_to(KEY, &payload(SHA256_CHALLENGE_00)).unwrap(),
        payload(SHA256_REPLY_00)
    );
    assert_eq!(
        reply_to(KEY, &payload(SHA256_CHALLENGE_80)).unwrap(),
        payload(SHA256_REPLY_80)
    );
    let wrong = reply_to(b"wrong-key", &payload(SHA256_CHALLENGE_00)).unwrap();
    assert_eq!(wrong, payload(WRONG_KEY_REPLY_00));
}

#[test]
fn reply_with_empty_key_matches_cpython() {
    let reply = reply_to(b"", &payload(SHA256_CHALLENGE_00)).unwrap();
    let mac = hex("d18b190a737f779d3125c4a2dfddcebf933e2f2713bc92fbe386ca25df9fd7af");
    assert_eq!(reply, [b"{sha256}".as_slice(), &mac].concat());
}

#[test]
fn verify_accepts_cpython_replies_and_rejects_wrong_key() {
    let body = &payload(SHA256_CHALLENGE_00)[CHALLENGE.len()..];
    verify_reply(KEY, body, &payload(SHA256_REPLY_00)).unwrap();
    let why = auth_reason(verify_reply(KEY, body, &payload(WRONG_KEY_REPLY_00)));
    assert_eq!(
        why,
        "the peer's digest was wrong (the two sides use different keys)"
    );
    let body80 = &payload(SHA256_CHALLENGE_80)[CHALLENGE.len()..];
    verify_reply(KEY, body80, &payload(SHA256_REPLY_80)).unwrap();
    auth_reason(verify_reply(KEY, body80, &payload(SHA256_REPLY_00)));
}

#[test]
fn sha384_challenge_is_answered_with_sha384() {
    let mut challenge = b"#CHALLENGE#{sha384}".to_vec();
    challenge.extend_from_slice(&nonce_from(7));
    let reply = reply_to(KEY, &challenge).unwrap();
    assert!(reply.starts_with(b"{sha384}"));
    assert_eq!(reply.len(), 8 + 48);
    verify_reply(KEY, &challenge[CHALLENGE.len()..], &reply).unwrap();
    auth_reason(verify_reply(
        b"other",
        &challenge[CHALLENGE.len()..],
        &reply,
    ));
}

#[test]
fn malformed_digest_prefixes_are_refused() {
    let cases: [(&[u8], &str); 6] = [
        (
            b"{sha512}aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "unsupported digest {sha512}",
        ),
        (
            b"{}aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "unsupported digest {}",
        ),
        (
            b"{sha3_256}aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "sha3_256 digest, which procwire",
        ),
        (
            b"{sha256aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "no closing brace",
        ),
        (
            b"{abcdefghi}aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "no closing brace",
        ),
        (
            b"sha256}aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "without a {digest} prefix",
        ),
    ];
    for (msg, want) in cases {
        let why = auth_reason(split_digest(msg).map(drop));
        assert!(why.contains(want), "{msg:?}: {why}");
        let challenge = [CHALLENGE, msg].concat();
        let why = auth_reason(reply_to(KEY, &challenge).map(drop));
        assert!(why.contains(want), "{msg:?}: {why}");
        auth_reason(verify_reply(KEY, b"body", msg));
    }
}

#[test]
fn malformed_challenges_are_refused() {
    let why = auth_reason(reply_to(KEY, b"{sha256}0123456789012345678901234567890").map(drop));
    assert!(why.contains("without the #CHALLENGE# prefix"), "{why}");
    let why = auth_reason(reply_to(KEY, b"#CHALLENGE#0123456789").map(drop));
    assert_eq!(why, "the peer's challenge of 10 bytes is too short");
    auth_reason(reply_to(KEY, b"").map(drop));
}

#[test]
fn reply_of_wrong_length_is_refused() {
    let body = &payload(SHA256_CHALLENGE_00)[CHALLENGE.len()..];
    let mut short = payload(SHA256_REPLY_00);
    short.pop();
    let why = auth_reason(verify_reply(KEY, body, &short));
    assert_eq!(why, "the peer's sha256 digest has 31 bytes, expected 32");
    auth_reason(verify_reply(KEY, body, b""));
    auth_reason(verify_reply(KEY, body, b"{sha256}"));
}

#[test]
fn only_exact_welcome_is_accepted() {
    check_verdict(b"#WELCOME#").unwrap();
    let why = auth_reason(check_verdict(b"#FAILURE#"));
    assert!(why.contains("rejected our digest"), "{why}");
    for bad in [&b"#welcome#"[..], b"", b"#WELCOME##"] {
        let why = auth_reason(check_verdict(bad));
        assert!(why.starts_with("expected #WELCOME# or #FAILURE#"), "{why}");
    }
}

#[test]
fn server_transcript_matches_cpython_3_12() {
    use Step::*;
    let (conn, peer) = scripted(vec![
        Expect(SHA256_CHALLENGE_00),
        Send(SHA256_REPLY_00),
        Expect(WELCOME_FRAME),
        Send(SHA256_CHALLENGE_80),
        Expect(SHA256_REPLY_80),
        Send(WELCOME_FRAME),
    ]);
    let key = AuthKey::from(KEY);
    deliver(&conn.duplex(), &key, deadline(), &nonce_from(0)).unwrap();
    answer(&conn.duplex(), &key, deadline()).unwrap();
    peer.join().unwrap();
    assert_eq!(
        conn.rx.max_message_size(),
        crate::frame::DEFAULT_MAX_MESSAGE_SIZE
    );
}

#[test]
fn client_transcript_matches_cpython_3_12() {
    use Step::*;
    let (conn, peer) = scripted(vec![
        Send(SHA256_CHALLENGE_00),
        Expect(SHA256_REPLY_00),
        Send(WELCOME_FRAME),
        Expect(SHA256_CHALLENGE_80),
        Send(SHA256_REPLY_80),
        Expect(WELCOME_FRAME),
    ]);
    let key = AuthKey::from(KEY);
    answer(&conn.duplex(), &key, deadline()).unwrap();
    deliver(&conn.duplex(), &key, deadline(), &nonce_from(0x80)).unwrap();
    peer.join().unwrap();
}

#[test]
fn server_sends_failure_for_cpython_wrong_key_reply() {
    use Step::*;
    let (conn, peer) = scripted(vec![
        Expect(SHA256_CHALLENGE_00),
        Send(WRONG_KEY_REPLY_00),
        Expect(FAILURE_FRAME),
    ]);
    let why = auth_reason(deliver(
        &conn.duplex(),
        &AuthKey::from(KEY),
        deadline(),
        &nonce_from(0),
    ));
    assert!(why.contains("digest was wrong"), "{why}");
    peer.join().unwrap();
}

#[test]
fn client_with_wrong_key_sends_cpython_bytes_and_reads_failure() {
    use Step::*;
    let (conn, peer) = scripted(vec![
        Send(SHA256_CHALLENGE_00),
        Expect(WRONG_KEY_REPLY_00),
        Send(FAILURE_FRAME),
    ]);
    let why = auth_reason(answer(
        &conn.duplex(),
        &AuthKey::from("wrong-key"),
        deadline(),
    ));
    assert!(why.contains("rejected our digest"), "{why}");
    peer.join().unwrap();
}

#[test]
fn oversized_reply_gets_failure_verdict() {
    use Step::*;
    // A header claiming 1 GiB, then nothing: refused from the header alone.
    let (conn, peer) = scripted(vec![
        Expect(SHA256_CHALLENGE_00),
        Send("40000000"),
        Expect(FAILURE_FRAME),
    ]);
    conn.rx.set_max_message_size(u64::MAX);
    let why = auth_reason(deliver(
        &conn.duplex(),
        &AuthKey::from(KEY),
        deadline(),
        &nonce_from(0),
    ));
    assert_eq!(
        why,
        "handshake reply of 1073741824 bytes exceeds the 256-byte limit"
    );
    assert_eq!(conn.rx.max_message_size(), u64::MAX);
    peer.join().unwrap();
}

#[cfg(not(feature = "legacy-md5"))]
mod without_legacy {
    use super::*;

    #[test]
    fn legacy_challenge_names_the_feature() {
        let why = auth_reason(reply_to(KEY, &payload(LEGACY_CHALLENGE_00)).map(drop));
        assert_eq!(
            why,
            "the peer sent a 20-byte challenge: it uses the legacy HMAC-MD5 protocol of \
             CPython 3.11 and earlier, which needs procwire's `legacy-md5` cargo feature"
        );
        let why = auth_reason(
            reply_to(
                KEY,
                b"#CHALLENGE#{md5}0123456789012345678901234567890123456789",
            )
            .map(drop),
        );
        assert!(why.contains("`legacy-md5`"), "{why}");
    }

    #[test]
    fn legacy_reply_names_the_feature() {
        let body = &payload(SHA256_CHALLENGE_00)[CHALLENGE.len()..];
        let why = auth_reason(verify_reply(
            KEY,
            body,
            &hex("6ae2b853ecc155b89b53c8a04f6fac88"),
        ));
        assert!(
            why.starts_with("the peer answered with an unprefixed 16-byte digest"),
            "{why}"
        );
        assert!(why.contains("`legacy-md5` cargo feature"), "{why}");
        let _ = LEGACY_CHALLENGE_80;
    }
}

#[cfg(feature = "legacy-md5")]
mod with_legacy {
    use super::*;

    #[test]
    fn legacy_reply_matches_cpython_3_11() {
        let reply = reply_to(KEY, &payload(LEGACY_CHALLENGE_00)).unwrap();
        assert_eq!(to_hex(&reply), "de936bfac84704c988ab8ec2a6d6d714");
        let reply = reply_to(KEY, &payload(LEGACY_CHALLENGE_80)).unwrap();
        assert_eq!(to_hex(&reply), "228d2ec1c13aa3ff795f93c3ad720c8a");
    }

    #[test]
    fn legacy_replies_verify() {
        let body00 = &payload(SHA256_CHALLENGE_00)[CHALLENGE.len()..];
        verify_reply(KEY, body00, &hex("6ae2b853ecc155b89b53c8a04f6fac88")).unwrap();
        let body80 = &payload(SHA256_CHALLENGE_80)[CHALLENGE.len()..];
        verify_reply(KEY, body80, &hex("6f86733f25bd97e627ba56164edd581c")).unwrap();
        let legacy00 = &payload(LEGACY_CHALLENGE_00)[CHALLENGE.len()..];
        verify_reply(KEY, legacy00, &hex("de936bfac84704c988ab8ec2a6d6d714")).unwrap();
        // §8.4: CPython 3.11's reply with the key `wrong-key`.
        let why = auth_reason(verify_reply(
            KEY,
            legacy00,
            &hex("9d07d2729d8e26f629a7d4f38e95a8af"),
        ));
        assert!(why.contains("digest was wrong"), "{why}");
        // A 20-byte unprefixed reply counts as MD5 of the wrong length, as in CPython.
        let why = auth_reason(verify_reply(KEY, body00, &[0; 20]));
        assert_eq!(why, "the peer's md5 digest has 20 bytes, expected 16");
    }

    #[test]
    fn prefixed_md5_challenge_is_answered_with_prefixed_md5() {
        let mut challenge = b"#CHALLENGE#{md5}".to_vec();
        challenge.extend_from_slice(&nonce_from(0));
        let reply = reply_to(KEY, &challenge).unwrap();
        assert_eq!(reply.len(), 21);
        assert!(reply.starts_with(b"{md5}"));
        verify_reply(KEY, &challenge[CHALLENGE.len()..], &reply).unwrap();
    }

    #[test]
    fn server_transcript_matches_cpython_3_13_server_with_3_11_client() {
        use Step::*;
        let (conn, peer) = scripted(vec![
            Expect(SHA256_CHALLENGE_00),
            Send("000000106ae2b853ecc155b89b53c8a04f6fac88"),
            Expect(WELCOME_FRAME),
            Send(LEGACY_CHALLENGE_80),
            Expect("00000010228d2ec1c13aa3ff795f93c3ad720c8a"),
            Send(WELCOME_FRAME),
        ]);
        let key = AuthKey::from(KEY);
        deliver(&conn.duplex(), &key, deadline(), &nonce_from(0)).unwrap();
        answer(&conn.duplex(), &key, deadline()).unwrap();
        peer.join().unwrap();
    }

    #[test]
    fn client_transcript_matches_cpython_3_13_client_with_3_11_server() {
        use Step::*;
        let (conn, peer) = scripted(vec![
            Send(LEGACY_CHALLENGE_00),
            Expect("00000010de936bfac84704c988ab8ec2a6d6d714"),
            Send(WELCOME_FRAME),
            Expect(SHA256_CHALLENGE_80),
            Send("000000106f86733f25bd97e627ba56164edd581c"),
            Expect(WELCOME_FRAME),
        ]);
        let key = AuthKey::from(KEY);
        answer(&conn.duplex(), &key, deadline()).unwrap();
        deliver(&conn.duplex(), &key, deadline(), &nonce_from(0x80)).unwrap();
        peer.join().unwrap();
    }
}
