//! Unit tests of the machine alone, no I/O: every role and digest, byte for byte against
//! the CPython vectors of the wire protocol reference (§8) that `auth/tests.rs` holds.

use super::*;
use crate::auth::tests::{
    auth_reason, hex, nonce_from, payload, KEY, LEGACY_CHALLENGE_00, LEGACY_CHALLENGE_80,
    SHA256_CHALLENGE_00, SHA256_CHALLENGE_80, SHA256_REPLY_00, SHA256_REPLY_80, WRONG_KEY_REPLY_00,
};

/// Not in §8: HMAC-SHA384 values computed with CPython 3.11's `hmac` module, key
/// `secret-key`. A `{sha384}` challenge with nonce 00..27, its reply, and the reply of
/// the key `wrong-key`.
const SHA384_CHALLENGE_00: &str = "234348414c4c454e4745237b7368613338347d\
    000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f2021222324252627";
const SHA384_REPLY_00: &str = "7b7368613338347d\
    a5b0994b79db0c421859eb0ac1f07b72610635482f33be8133d929f0d939fbc4\
    e3994baa88ca66598422f77dc714e832";
const SHA384_WRONG_KEY_REPLY_00: &str = "7b7368613338347d\
    a137fe09035f1d1e199271a4b2782f4e898e185992ac1fdba5fa315b8628928d\
    9dba08d1d89782e0b433a9c34796b26f";
/// HMAC-SHA384 (CPython's `hmac`) of our `{sha256}` challenges with nonces 00..27 and
/// 80..a7: a peer may answer a `{sha256}` challenge with sha384, as CPython allows.
const SHA384_REPLY_TO_SHA256_00: &str = "7b7368613338347d\
    f3325538adb08b4f460e5c308046af10c608e825aee489eb94e939d615db0c80\
    d7aafa5c850c1b164c36e29f05d62963";
const SHA384_REPLY_TO_SHA256_80: &str = "7b7368613338347d\
    389a24e787b35c3778d31d4b45a731410b034810b1f73f385416af8fc8a71e11\
    7dabfed269897f7744457ddc4cdd0dca";

fn key() -> AuthKey {
    AuthKey::from(KEY)
}

/// Everything the machine has to send now.
fn sent(hs: &mut Handshake) -> Vec<Vec<u8>> {
    std::iter::from_fn(|| hs.poll_transmit()).collect()
}

/// The reason of a failed `handle_message`, after checking that the machine is finished,
/// not authenticated, and sends `then` (nothing, or `#FAILURE#`).
fn refused(hs: &mut Handshake, msg: &[u8], then: &[&[u8]]) -> String {
    let why = auth_reason(hs.handle_message(msg));
    assert_eq!(sent(hs), then, "sent after {msg:?}");
    assert_eq!(hs.expecting(), None);
    assert!(!hs.is_authenticated());
    why
}

/// A machine at the start of its answer step, and one waiting for the reply to the
/// challenge 00..27.
fn answering() -> Handshake {
    Handshake::answer_challenge(&key())
}

fn delivering() -> Handshake {
    let mut hs = Handshake::deliver_challenge_with_nonce(&key(), nonce_from(0));
    assert_eq!(sent(&mut hs), [payload(SHA256_CHALLENGE_00)]);
    hs
}

/// Pumps messages between two machines until neither has more to say; the first error.
fn pump(a: &mut Handshake, b: &mut Handshake) -> Result<()> {
    loop {
        let mut moved = false;
        while let Some(m) = a.poll_transmit() {
            assert!(m.len() as u64 <= MAX_HANDSHAKE_MESSAGE_SIZE);
            b.handle_message(&m)?;
            moved = true;
        }
        while let Some(m) = b.poll_transmit() {
            assert!(m.len() as u64 <= MAX_HANDSHAKE_MESSAGE_SIZE);
            a.handle_message(&m)?;
            moved = true;
        }
        if !moved {
            return Ok(());
        }
    }
}

#[test]
fn server_transcript_matches_cpython_3_12() {
    let mut hs = Handshake::server_with_nonce(&key(), nonce_from(0));
    assert_eq!(sent(&mut hs), [payload(SHA256_CHALLENGE_00)]);
    assert_eq!(hs.expecting(), Some(Expecting::Reply));
    hs.handle_message(&payload(SHA256_REPLY_00)).unwrap();
    assert_eq!(sent(&mut hs), [WELCOME]);
    assert_eq!(hs.expecting(), Some(Expecting::Challenge));
    hs.handle_message(&payload(SHA256_CHALLENGE_80)).unwrap();
    assert_eq!(sent(&mut hs), [payload(SHA256_REPLY_80)]);
    assert_eq!(hs.expecting(), Some(Expecting::Verdict));
    assert!(!hs.is_authenticated());
    hs.handle_message(WELCOME).unwrap();
    assert!(hs.is_authenticated());
    assert_eq!(hs.expecting(), None);
    assert_eq!(hs.poll_transmit(), None);
}

#[test]
fn client_transcript_matches_cpython_3_12() {
    let mut hs = Handshake::client_with_nonce(&key(), nonce_from(0x80));
    assert_eq!(hs.poll_transmit(), None);
    assert_eq!(hs.expecting(), Some(Expecting::Challenge));
    hs.handle_message(&payload(SHA256_CHALLENGE_00)).unwrap();
    assert_eq!(sent(&mut hs), [payload(SHA256_REPLY_00)]);
    assert_eq!(hs.expecting(), Some(Expecting::Verdict));
    hs.handle_message(WELCOME).unwrap();
    assert_eq!(sent(&mut hs), [payload(SHA256_CHALLENGE_80)]);
    assert_eq!(hs.expecting(), Some(Expecting::Reply));
    hs.handle_message(&payload(SHA256_REPLY_80)).unwrap();
    assert_eq!(hs.expecting(), None);
    // Authenticated only once the last #WELCOME# has been taken to be sent.
    assert!(!hs.is_authenticated());
    assert_eq!(hs.poll_transmit().as_deref(), Some(WELCOME));
    assert!(hs.is_authenticated());
}

#[test]
fn single_steps_match_cpython_3_12() {
    let mut hs = delivering();
    hs.handle_message(&payload(SHA256_REPLY_00)).unwrap();
    assert_eq!(sent(&mut hs), [WELCOME]);
    assert!(hs.is_authenticated());

    let mut hs = answering();
    assert_eq!(hs.poll_transmit(), None);
    hs.handle_message(&payload(SHA256_CHALLENGE_80)).unwrap();
    assert_eq!(sent(&mut hs), [payload(SHA256_REPLY_80)]);
    hs.handle_message(WELCOME).unwrap();
    assert!(hs.is_authenticated());
    assert_eq!(hs.poll_transmit(), None);
}

#[test]
fn server_refuses_cpython_wrong_key_reply_with_failure() {
    let mut hs = Handshake::server_with_nonce(&key(), nonce_from(0));
    sent(&mut hs);
    let why = refused(&mut hs, &payload(WRONG_KEY_REPLY_00), &[FAILURE]);
    assert_eq!(
        why,
        "the peer's digest was wrong (the two sides use different keys)"
    );
}

#[test]
fn client_with_wrong_key_sends_cpython_bytes_and_fails_on_failure() {
    let mut hs = Handshake::client_with_nonce(&AuthKey::from("wrong-key"), nonce_from(0x80));
    hs.handle_message(&payload(SHA256_CHALLENGE_00)).unwrap();
    assert_eq!(sent(&mut hs), [payload(WRONG_KEY_REPLY_00)]);
    let why = refused(&mut hs, FAILURE, &[]);
    assert_eq!(
        why,
        "the peer rejected our digest (the two sides use different keys)"
    );
}

#[test]
fn server_fails_when_the_client_rejects_its_answer() {
    let mut hs = Handshake::server_with_nonce(&key(), nonce_from(0));
    sent(&mut hs);
    hs.handle_message(&payload(SHA256_REPLY_00)).unwrap();
    hs.handle_message(&payload(SHA256_CHALLENGE_80)).unwrap();
    assert_eq!(sent(&mut hs), [WELCOME.to_vec(), payload(SHA256_REPLY_80)]);
    let why = refused(&mut hs, FAILURE, &[]);
    assert!(why.contains("rejected our digest"), "{why}");
}

#[test]
fn client_refuses_a_wrong_reply_to_its_challenge_with_failure() {
    let mut hs = Handshake::client_with_nonce(&key(), nonce_from(0x80));
    hs.handle_message(&payload(SHA256_CHALLENGE_00)).unwrap();
    hs.handle_message(WELCOME).unwrap();
    assert_eq!(
        sent(&mut hs),
        [payload(SHA256_REPLY_00), payload(SHA256_CHALLENGE_80)]
    );
    // The reply to another challenge (a replay) is as wrong as a wrong key's.
    let why = refused(&mut hs, &payload(SHA256_REPLY_00), &[FAILURE]);
    assert!(why.contains("digest was wrong"), "{why}");
}

#[test]
fn sha384_challenges_are_answered_and_sha384_replies_accepted() {
    let mut hs = answering();
    hs.handle_message(&hex(SHA384_CHALLENGE_00)).unwrap();
    assert_eq!(sent(&mut hs), [hex(SHA384_REPLY_00)]);
    let mut hs = Handshake::answer_challenge(&AuthKey::from("wrong-key"));
    hs.handle_message(&hex(SHA384_CHALLENGE_00)).unwrap();
    assert_eq!(sent(&mut hs), [hex(SHA384_WRONG_KEY_REPLY_00)]);

    // Both roles accept a sha384 reply to their {sha256} challenge, as CPython does.
    let mut server = Handshake::server_with_nonce(&key(), nonce_from(0));
    sent(&mut server);
    server
        .handle_message(&hex(SHA384_REPLY_TO_SHA256_00))
        .unwrap();
    assert_eq!(sent(&mut server), [WELCOME]);
    let mut client = Handshake::client_with_nonce(&key(), nonce_from(0x80));
    client.handle_message(&hex(SHA384_CHALLENGE_00)).unwrap();
    client.handle_message(WELCOME).unwrap();
    sent(&mut client);
    client
        .handle_message(&hex(SHA384_REPLY_TO_SHA256_80))
        .unwrap();
    assert_eq!(sent(&mut client), [WELCOME]);
    assert!(client.is_authenticated());

    let mut hs = delivering();
    let why = refused(&mut hs, &hex(SHA384_WRONG_KEY_REPLY_00), &[FAILURE]);
    assert!(why.contains("digest was wrong"), "{why}");
}

#[test]
fn sha3_digests_are_refused_with_their_name() {
    let challenge = [CHALLENGE, b"{sha3_256}", &[7; 40]].concat();
    let why = refused(&mut answering(), &challenge, &[]);
    assert_eq!(
        why,
        "the peer uses the sha3_256 digest, which procwire does not implement \
         (it accepts sha256 and sha384)"
    );
    let reply = [&b"{sha3_384}"[..], &[7; 48]].concat();
    let why = refused(&mut delivering(), &reply, &[FAILURE]);
    assert!(why.contains("sha3_384 digest, which procwire"), "{why}");
}

#[test]
fn unknown_digest_challenge_gets_no_reply() {
    let challenge = [CHALLENGE, b"{sha512}", &[7; 40]].concat();
    let why = refused(&mut answering(), &challenge, &[]);
    assert_eq!(why, "the peer uses an unsupported digest {sha512}");
    let reply = [&b"{sha512}"[..], &[7; 64]].concat();
    let why = refused(&mut delivering(), &reply, &[FAILURE]);
    assert_eq!(why, "the peer uses an unsupported digest {sha512}");
}

#[test]
fn malformed_challenges_get_no_reply() {
    let cases: [(&[u8], &str); 5] = [
        (b"", "got a 0-byte message without the #CHALLENGE# prefix"),
        (b"#WELCOME#", "without the #CHALLENGE# prefix"),
        (
            b"#CHALLENGE#0123456789",
            "challenge of 10 bytes is too short",
        ),
        (
            b"#CHALLENGE#{sha256aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "no closing brace",
        ),
        (
            b"#CHALLENGE#sha256}aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "without a {digest} prefix",
        ),
    ];
    for (msg, want) in cases {
        let why = refused(&mut answering(), msg, &[]);
        assert!(why.contains(want), "{msg:?}: {why}");
    }
}

#[test]
fn malformed_replies_get_failure() {
    let cases: [(&[u8], &str); 5] = [
        (b"", "a 0-byte handshake message without a {digest} prefix"),
        (b"{sha256}", "sha256 digest has 0 bytes, expected 32"),
        (&[b'{'; 41], "no closing brace"),
        (b"#WELCOME#", "without a {digest} prefix"),
        (&[0; 256], "without a {digest} prefix"),
    ];
    for (msg, want) in cases {
        let why = refused(&mut delivering(), msg, &[FAILURE]);
        assert!(why.contains(want), "{msg:?}: {why}");
    }
    let mut short = payload(SHA256_REPLY_00);
    short.pop();
    let why = refused(&mut delivering(), &short, &[FAILURE]);
    assert_eq!(why, "the peer's sha256 digest has 31 bytes, expected 32");
}

#[test]
fn only_exact_welcome_is_a_good_verdict() {
    for bad in [&b"#welcome#"[..], b"", b"#WELCOME##", b"#CHALLENGE#"] {
        let mut hs = answering();
        hs.handle_message(&payload(SHA256_CHALLENGE_00)).unwrap();
        sent(&mut hs);
        let why = refused(&mut hs, bad, &[]);
        assert_eq!(
            why,
            format!(
                "expected #WELCOME# or #FAILURE#, got a {}-byte message",
                bad.len()
            )
        );
    }
}

#[test]
fn payloads_over_256_bytes_are_refused_in_every_state() {
    let big = [b'#'; 257];
    let why = refused(&mut answering(), &big, &[]);
    assert_eq!(
        why,
        "handshake challenge of 257 bytes exceeds the 256-byte limit"
    );
    let why = refused(&mut delivering(), &big, &[FAILURE]);
    assert_eq!(
        why,
        "handshake reply of 257 bytes exceeds the 256-byte limit"
    );
    let mut hs = answering();
    hs.handle_message(&payload(SHA256_CHALLENGE_00)).unwrap();
    sent(&mut hs);
    let why = refused(&mut hs, &vec![0; 1 << 20], &[]);
    assert_eq!(
        why,
        "handshake verdict of 1048576 bytes exceeds the 256-byte limit"
    );
}

#[test]
fn receive_errors_name_the_expected_message() {
    let mut hs = delivering();
    let err = hs.handle_receive_error(Error::MessageTooLarge {
        len: 1 << 30,
        limit: 256,
    });
    assert_eq!(
        auth_reason(Err(err)),
        "handshake reply of 1073741824 bytes exceeds the 256-byte limit"
    );
    assert_eq!(sent(&mut hs), [FAILURE]);
    assert_eq!(hs.expecting(), None);

    let mut hs = answering();
    let err = hs.handle_receive_error(Error::Protocol("negative length -2".into()));
    assert_eq!(
        auth_reason(Err(err)),
        "malformed handshake challenge: negative length -2"
    );
    assert_eq!(sent(&mut hs), Vec::<Vec<u8>>::new());
    assert_eq!(hs.expecting(), None);
}

#[test]
fn other_receive_errors_pass_through_without_a_verdict() {
    for make in [
        || Error::Disconnected,
        || Error::Timeout,
        || Error::Truncated {
            received: 6,
            expected: 63,
        },
    ] {
        for mut hs in [delivering(), answering()] {
            let err = hs.handle_receive_error(make());
            assert!(
                matches!(
                    err,
                    Error::Disconnected | Error::Timeout | Error::Truncated { .. }
                ),
                "{err:?}"
            );
            assert_eq!(hs.poll_transmit(), None);
            assert_eq!(hs.expecting(), None);
            assert!(hs.handle_message(&payload(SHA256_REPLY_00)).is_err());
            assert!(!hs.is_authenticated());
        }
    }
}

#[test]
fn feeding_a_finished_machine_is_an_error() {
    let mut hs = delivering();
    hs.handle_message(&payload(SHA256_REPLY_00)).unwrap();
    sent(&mut hs);
    assert!(hs.is_authenticated());
    let why = auth_reason(hs.handle_message(WELCOME));
    assert_eq!(
        why,
        "the handshake is already complete: unexpected 9-byte message"
    );
    assert!(hs.is_authenticated(), "an authenticated machine stays so");
    assert_eq!(hs.poll_transmit(), None);
    let err = hs.handle_receive_error(Error::Protocol("late".into()));
    assert!(matches!(err, Error::Protocol(_)), "{err:?}");
    assert!(hs.is_authenticated());
}

#[test]
fn nothing_succeeds_after_a_failure() {
    let mut hs = Handshake::server_with_nonce(&key(), nonce_from(0));
    sent(&mut hs);
    refused(&mut hs, b"garbage", &[FAILURE]);
    // Not even the right reply, then the rest of a good transcript.
    for msg in [
        payload(SHA256_REPLY_00),
        payload(SHA256_CHALLENGE_80),
        WELCOME.to_vec(),
    ] {
        let why = auth_reason(hs.handle_message(&msg));
        assert_eq!(why, "the handshake has already failed");
        assert_eq!(hs.poll_transmit(), None);
        assert!(!hs.is_authenticated());
        assert_eq!(hs.expecting(), None);
    }
}

#[test]
fn machines_with_the_same_key_authenticate_each_other() {
    for key in [&b""[..], b"secret-key", b"\x00\xff", &[0xa5; 300]] {
        let key = AuthKey::from(key);
        let mut server = Handshake::server(&key).unwrap();
        let mut client = Handshake::client(&key).unwrap();
        pump(&mut server, &mut client).unwrap();
        assert!(server.is_authenticated() && client.is_authenticated());

        let mut ours = Handshake::deliver_challenge(&key).unwrap();
        let mut theirs = Handshake::answer_challenge(&key);
        pump(&mut ours, &mut theirs).unwrap();
        assert!(ours.is_authenticated() && theirs.is_authenticated());
    }
}

#[test]
fn machines_with_different_keys_both_fail() {
    let long = [0xa5; 300];
    let pairs: [(&[u8], &[u8]); 4] = [
        (b"", b"x"),
        (b"secret-key", b"wrong-key"),
        (b"a", b"\0a"),
        (&long, &long[1..]),
    ];
    for (a, b) in pairs {
        let (a, b) = (AuthKey::from(a), AuthKey::from(b));
        let mut server = Handshake::server(&a).unwrap();
        let mut client = Handshake::client(&b).unwrap();
        auth_reason(pump(&mut server, &mut client));
        // The server refused the reply and owes the client its verdict.
        assert_eq!(sent(&mut server), [FAILURE]);
        auth_reason(client.handle_message(FAILURE));
        assert!(!server.is_authenticated() && !client.is_authenticated());
        assert_eq!((server.expecting(), client.expecting()), (None, None));
    }
}

#[test]
fn keys_that_differ_in_trailing_zero_bytes_are_the_same_hmac_key() {
    // HMAC pads a key of up to one block (64 bytes for SHA-256) with zeros, so CPython
    // takes `b"a"` and `b"a\0"` for the same key too.
    let mut server = Handshake::server(&AuthKey::from("a")).unwrap();
    let mut client = Handshake::client(&AuthKey::from(b"a\0\0")).unwrap();
    pump(&mut server, &mut client).unwrap();
    assert!(server.is_authenticated() && client.is_authenticated());
}

#[test]
fn fresh_challenges_differ() {
    let mut a = Handshake::server(&key()).unwrap();
    let mut b = Handshake::deliver_challenge(&key()).unwrap();
    let (a, b) = (a.poll_transmit().unwrap(), b.poll_transmit().unwrap());
    for c in [&a, &b] {
        assert_eq!(c.len(), 59);
        assert!(c.starts_with(b"#CHALLENGE#{sha256}"));
    }
    assert_ne!(a, b);
}

#[test]
fn debug_shows_the_state_and_never_the_key() {
    let mut hs = Handshake::server_with_nonce(&AuthKey::from("hunter2"), nonce_from(0x41));
    let text = format!("{hs:?}");
    assert_eq!(
        text,
        "Handshake { state: \"waiting for the reply\", queued: 1, .. }"
    );
    let _ = hs.handle_message(b"{sha256}AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    let text = format!("{hs:?} {hs:#?}");
    assert!(text.contains("failed"), "{text}");
    assert!(
        !text.contains("hunter2") && !text.contains("AAAA"),
        "{text}"
    );
}

#[test]
fn expecting_names_the_messages() {
    let names = [Expecting::Challenge, Expecting::Reply, Expecting::Verdict].map(|e| e.to_string());
    assert_eq!(names, ["challenge", "reply", "verdict"]);
}

#[cfg(feature = "legacy-md5")]
mod with_legacy {
    use super::*;

    #[test]
    fn server_transcript_matches_cpython_3_13_server_with_3_11_client() {
        let mut hs = Handshake::server_with_nonce(&key(), nonce_from(0));
        assert_eq!(sent(&mut hs), [payload(SHA256_CHALLENGE_00)]);
        hs.handle_message(&hex("6ae2b853ecc155b89b53c8a04f6fac88"))
            .unwrap();
        assert_eq!(sent(&mut hs), [WELCOME]);
        hs.handle_message(&payload(LEGACY_CHALLENGE_80)).unwrap();
        assert_eq!(sent(&mut hs), [hex("228d2ec1c13aa3ff795f93c3ad720c8a")]);
        hs.handle_message(WELCOME).unwrap();
        assert!(hs.is_authenticated());
    }

    #[test]
    fn client_transcript_matches_cpython_3_13_client_with_3_11_server() {
        let mut hs = Handshake::client_with_nonce(&key(), nonce_from(0x80));
        hs.handle_message(&payload(LEGACY_CHALLENGE_00)).unwrap();
        assert_eq!(sent(&mut hs), [hex("de936bfac84704c988ab8ec2a6d6d714")]);
        hs.handle_message(WELCOME).unwrap();
        assert_eq!(sent(&mut hs), [payload(SHA256_CHALLENGE_80)]);
        hs.handle_message(&hex("6f86733f25bd97e627ba56164edd581c"))
            .unwrap();
        assert_eq!(sent(&mut hs), [WELCOME]);
        assert!(hs.is_authenticated());
    }

    #[test]
    fn wrong_legacy_replies_get_failure() {
        // §8.4: CPython 3.11's reply with the key `wrong-key` (to a legacy challenge, so
        // doubly wrong for ours).
        let why = refused(
            &mut delivering(),
            &hex("9d07d2729d8e26f629a7d4f38e95a8af"),
            &[FAILURE],
        );
        assert!(why.contains("digest was wrong"), "{why}");
        // A 20-byte unprefixed reply counts as MD5 of the wrong length, as in CPython.
        let why = refused(&mut delivering(), &[0; 20], &[FAILURE]);
        assert_eq!(why, "the peer's md5 digest has 20 bytes, expected 16");
    }

    #[test]
    fn prefixed_md5_challenge_is_answered_with_prefixed_md5() {
        let mut hs = answering();
        hs.handle_message(&[CHALLENGE, b"{md5}", &nonce_from(0)].concat())
            .unwrap();
        // HMAC-MD5 of `{md5}` + 00..27, computed with CPython's `hmac`.
        let want = [&b"{md5}"[..], &hex("3625321b6d343cadfbd6fa824ff88636")].concat();
        assert_eq!(sent(&mut hs), [want]);
    }
}

#[cfg(not(feature = "legacy-md5"))]
mod without_legacy {
    use super::*;

    #[test]
    fn legacy_challenge_names_the_feature_and_gets_no_reply() {
        let why = refused(&mut answering(), &payload(LEGACY_CHALLENGE_00), &[]);
        assert_eq!(
            why,
            "the peer sent a 20-byte challenge: it uses the legacy HMAC-MD5 protocol of \
             CPython 3.11 and earlier, which needs procwire's `legacy-md5` cargo feature"
        );
        let challenge = [CHALLENGE, b"{md5}", &nonce_from(0)].concat();
        let why = refused(&mut answering(), &challenge, &[]);
        assert!(why.contains("`legacy-md5` cargo feature"), "{why}");
        let _ = LEGACY_CHALLENGE_80;
    }

    #[test]
    fn legacy_reply_names_the_feature_and_gets_failure() {
        let reply = hex("6ae2b853ecc155b89b53c8a04f6fac88");
        let why = refused(&mut delivering(), &reply, &[FAILURE]);
        assert!(
            why.starts_with("the peer answered with an unprefixed 16-byte digest"),
            "{why}"
        );
        assert!(why.contains("`legacy-md5` cargo feature"), "{why}");
        let reply = [&b"{md5}"[..], &reply].concat();
        let why = refused(&mut delivering(), &reply, &[FAILURE]);
        assert!(why.starts_with("the peer names the md5 digest"), "{why}");
    }
}
