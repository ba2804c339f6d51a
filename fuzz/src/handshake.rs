//! A target over the handshake state machine alone: no sockets, no threads, no clock.

use procwire::auth::{Expecting, Handshake, MAX_HANDSHAKE_MESSAGE_SIZE};
use procwire::{AuthKey, Error};
use sha2::{Digest, Sha256};

use crate::Knobs;

/// The roles a machine can play; the input picks one by index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Server,
    Client,
    Deliver,
    Answer,
}

const ROLES: [Role; 4] = [Role::Server, Role::Client, Role::Deliver, Role::Answer];

/// The pairs that talk to each other in the differential mode; the input picks one.
const PAIRS: [(Role, Role); 3] = [
    (Role::Server, Role::Client),
    (Role::Deliver, Role::Answer),
    (Role::Answer, Role::Deliver),
];

/// The handshake machine against arbitrary peer messages, and two machines against each
/// other.
///
/// Input: a knob byte whose parity picks the mode.
///
/// - Even, against bytes: a role (knob byte: server, client, deliver, answer), a key (a
///   length byte, then its bytes), the 40-byte nonce, then peer events until the input
///   ends. An event is a knob byte: 0 a receive error for an oversized frame (its length
///   a `u16` above 256), 1 a malformed frame, 2 the end of the stream (or a truncation or
///   a timeout, by the next byte), anything else a message (a `u16` length, then that many
///   bytes, fewer at the end of the input).
/// - Odd, machine against machine: a pair of roles (knob byte: server–client,
///   deliver–answer, answer–deliver), the first key, a knob byte (even: the second key is
///   the same; odd: the second key follows), the two nonces; then, for each message in
///   flight, what happens to it (knob byte: 1 dropped, 2 one bit flipped, 3 replaced by
///   bytes of the input, 4 replaced by a receive error, anything else delivered), until
///   neither side has more to say.
///
/// Checks, on every machine:
/// - it never panics; every message it sends is at most 256 bytes; a challenge it sends is
///   a 59-byte `#CHALLENGE#{sha256}` one, and the server's and deliverer's first message
///   is one;
/// - it never accepts a reply to its challenge that the peer could not have computed: any
///   bytes against the first mode, the other machine with another HMAC key in the second
///   (whatever is tampered with), so a role that delivers a challenge never authenticates
///   there;
/// - after an error it is finished: it sends nothing but the `#FAILURE#` a wrong reply is
///   owed (exactly then, once), accepts nothing more, and never becomes authenticated; a
///   receive error names the message it waited for;
/// - error texts and `Debug` are printable ASCII (no raw key or peer bytes).
///
/// And the differential check: with nothing tampered with, two machines with the same
/// HMAC key (any bytes) both authenticate, and with different keys both fail.
pub fn handshake(data: &[u8]) {
    let mut knobs = Knobs::new(data);
    if knobs.byte() & 1 == 0 {
        against_bytes(&mut knobs);
    } else {
        against_machine(&mut knobs);
    }
}

fn against_bytes(knobs: &mut Knobs<'_>) {
    let role = knobs.pick(&ROLES);
    let key = AuthKey::new(key(knobs));
    let mut ours = Checked::new(role, &key, nonce(knobs), false);
    ours.drain();
    ours.outbox.clear(); // nobody reads them
    while !knobs.is_empty() {
        match knobs.byte() % 8 {
            0 => {
                let len = 257 + u64::from(knobs.u16());
                ours.feed_error(too_large(len));
            }
            1 => ours.feed_error(Error::Protocol("negative length -2".into())),
            2 => ours.feed_error(closed(knobs.byte())),
            _ => {
                let len = usize::from(knobs.u16());
                ours.feed(knobs.take(len));
            }
        }
        ours.outbox.clear();
    }
    if role != Role::Answer {
        assert!(
            !ours.hs.is_authenticated(),
            "authenticated against bytes that cannot know the key"
        );
    }
}

fn against_machine(knobs: &mut Knobs<'_>) {
    let (role_a, role_b) = knobs.pick(&PAIRS);
    let key_a = key(knobs);
    let key_b = if knobs.byte() & 1 == 0 {
        key_a.clone()
    } else {
        key(knobs)
    };
    let same = same_hmac_key(&key_a, &key_b);
    let (nonce_a, nonce_b) = (nonce(knobs), nonce(knobs));
    let mut a = Checked::new(role_a, &AuthKey::new(key_a), nonce_a, same);
    let mut b = Checked::new(role_b, &AuthKey::new(key_b), nonce_b, same);
    let mut tampered = false;
    // Six messages make a handshake; each round moves everything pending both ways.
    for _ in 0..8 {
        let moved = relay(&mut a, &mut b, knobs, &mut tampered)
            | relay(&mut b, &mut a, knobs, &mut tampered);
        if !moved {
            break;
        }
    }
    for m in [&a, &b] {
        if !same && m.role != Role::Answer {
            assert!(
                !m.hs.is_authenticated(),
                "{:?} authenticated a peer with another key",
                m.role
            );
        }
        if tampered {
            continue;
        }
        if same {
            assert!(
                m.hs.is_authenticated(),
                "{:?} with the same key: {:?}",
                m.role,
                m.hs
            );
        } else {
            assert!(
                m.failed,
                "{:?} with another key did not fail: {:?}",
                m.role, m.hs
            );
        }
    }
}

/// Moves what `from` has to send to `to`, doing to each message what the input says;
/// whether anything moved.
fn relay(from: &mut Checked, to: &mut Checked, knobs: &mut Knobs<'_>, tampered: &mut bool) -> bool {
    from.drain();
    let out = std::mem::take(&mut from.outbox);
    for msg in &out {
        match knobs.byte() % 8 {
            1 => *tampered = true,
            2 => {
                let mut msg = msg.clone();
                if !msg.is_empty() {
                    let at = usize::from(knobs.u16()) % (msg.len() * 8);
                    msg[at / 8] ^= 1 << (at % 8);
                    *tampered = true;
                }
                to.feed(&msg);
            }
            3 => {
                let len = usize::from(knobs.byte());
                let other = knobs.take(len);
                *tampered |= other != &msg[..];
                to.feed(other);
            }
            4 => {
                *tampered = true;
                to.feed_error(match knobs.byte() % 3 {
                    0 => too_large(257),
                    1 => Error::Protocol("negative length -2".into()),
                    _ => closed(knobs.byte()),
                });
            }
            _ => to.feed(msg),
        }
    }
    !out.is_empty()
}

/// A machine and what the checks need to remember about it.
struct Checked {
    hs: Handshake,
    role: Role,
    /// Whether the peer may know the key, so that a reply can be right.
    peer_has_key: bool,
    sent_any: bool,
    failed: bool,
    /// Messages taken from the machine and checked, not yet delivered.
    outbox: Vec<Vec<u8>>,
}

impl Checked {
    fn new(role: Role, key: &AuthKey, nonce: [u8; 40], peer_has_key: bool) -> Checked {
        let hs = match role {
            Role::Server => Handshake::server_with_nonce(key, nonce),
            Role::Client => Handshake::client_with_nonce(key, nonce),
            Role::Deliver => Handshake::deliver_challenge_with_nonce(key, nonce),
            Role::Answer => Handshake::answer_challenge(key),
        };
        Checked {
            hs,
            role,
            peer_has_key,
            sent_any: false,
            failed: false,
            outbox: Vec::new(),
        }
    }

    /// Takes everything the machine has to send now into the outbox, checked; returns
    /// how many messages that was.
    fn drain(&mut self) -> usize {
        let out: Vec<Vec<u8>> = std::iter::from_fn(|| self.hs.poll_transmit()).collect();
        for m in &out {
            assert!(
                m.len() as u64 <= MAX_HANDSHAKE_MESSAGE_SIZE,
                "sent a handshake message of {} bytes",
                m.len()
            );
            let first_is_challenge =
                !self.sent_any && matches!(self.role, Role::Server | Role::Deliver);
            if first_is_challenge || m.starts_with(b"#CHALLENGE#") {
                assert!(
                    m.len() == 59 && m.starts_with(b"#CHALLENGE#{sha256}"),
                    "{:?} sent the challenge {m:?}",
                    self.role
                );
            }
            self.sent_any = true;
        }
        assert_printable(&format!("{:?}", self.hs));
        let n = out.len();
        self.outbox.extend(out);
        n
    }

    fn feed(&mut self, msg: &[u8]) {
        let before = self.hs.expecting();
        let result = self.hs.handle_message(msg);
        if let Err(e) = &result {
            assert!(matches!(e, Error::AuthenticationFailed(_)), "{e:?}");
        }
        self.after(before, result.err());
    }

    fn feed_error(&mut self, error: Error) {
        let before = self.hs.expecting();
        let passes = !matches!(error, Error::MessageTooLarge { .. } | Error::Protocol(_));
        let e = self.hs.handle_receive_error(error);
        match (&e, before) {
            (_, None) => {}
            (Error::AuthenticationFailed(why), Some(what)) if !passes => {
                let named = format!("handshake {what} of ");
                let malformed = format!("malformed handshake {what}: ");
                assert!(
                    why.starts_with(&named) || why.starts_with(&malformed),
                    "{why}"
                );
            }
            (e, Some(_)) => assert!(
                passes
                    && matches!(
                        e,
                        Error::Disconnected | Error::Truncated { .. } | Error::Timeout
                    ),
                "{e:?}"
            ),
        }
        self.after(before, Some(e));
    }

    /// Checks the machine after a message or receive error given while it expected
    /// `before`, with `error` the outcome.
    fn after(&mut self, before: Option<Expecting>, error: Option<Error>) {
        let n = self.drain();
        let out = &self.outbox[self.outbox.len() - n..];
        let Some(e) = error else {
            assert!(
                !self.failed,
                "{:?} accepted a message after an error",
                self.role
            );
            assert!(before.is_some(), "a finished machine accepted a message");
            if before == Some(Expecting::Reply) {
                assert!(
                    self.peer_has_key,
                    "{:?} accepted a reply nobody could compute",
                    self.role
                );
                assert_eq!(out.first().map(Vec::as_slice), Some(&b"#WELCOME#"[..]));
            }
            return;
        };
        assert_printable(&e.to_string());
        if before.is_none() {
            assert!(out.is_empty(), "a finished machine sent {out:?}");
            return;
        }
        self.failed = true;
        assert_eq!(self.hs.expecting(), None);
        assert!(!self.hs.is_authenticated());
        let owed = before == Some(Expecting::Reply) && matches!(e, Error::AuthenticationFailed(_));
        let want: &[&[u8]] = if owed { &[b"#FAILURE#"] } else { &[] };
        assert_eq!(out, want, "sent after {e}");
    }
}

/// A key: a length byte, then that many bytes (fewer at the end of the input).
fn key(knobs: &mut Knobs<'_>) -> Vec<u8> {
    let len = usize::from(knobs.byte());
    knobs.take(len).to_vec()
}

/// 40 nonce bytes, zeros past the end of the input.
fn nonce(knobs: &mut Knobs<'_>) -> [u8; 40] {
    let mut nonce = [0; 40];
    let got = knobs.take(40);
    nonce[..got.len()].copy_from_slice(got);
    nonce
}

fn too_large(len: u64) -> Error {
    Error::MessageTooLarge {
        len,
        limit: MAX_HANDSHAKE_MESSAGE_SIZE,
    }
}

fn closed(which: u8) -> Error {
    match which % 3 {
        0 => Error::Disconnected,
        1 => Error::Truncated {
            received: 6,
            expected: 63,
        },
        _ => Error::Timeout,
    }
}

/// Whether HMAC-SHA256 takes `a` and `b` for the same key: a key longer than the 64-byte
/// block is replaced by its SHA-256, and a shorter one is padded with zeros, so keys that
/// differ only in trailing zero bytes are one key.
fn same_hmac_key(a: &[u8], b: &[u8]) -> bool {
    fn block(key: &[u8]) -> Vec<u8> {
        let mut k = if key.len() > 64 {
            Sha256::digest(key).to_vec()
        } else {
            key.to_vec()
        };
        while k.last() == Some(&0) {
            k.pop();
        }
        k
    }
    block(a) == block(b)
}

fn assert_printable(text: &str) {
    assert!(
        text.bytes()
            .all(|b| (0x20..0x7f).contains(&b) || b == b'\n'),
        "not printable ASCII: {text:?}"
    );
}
