//! Targets over both sides of the authentication handshake, against arbitrary peer bytes.

use std::fs::File;
use std::io::Read;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use procwire::auth::{client_handshake, server_handshake};
use procwire::{AuthKey, Connection, Error};

use crate::peer::{parse, write_what_fits};
use crate::Knobs;

/// Longer than any handshake can take once the peer has closed its side: reaching it
/// means the handshake waited for bytes that could never come.
const DEADLINE: Duration = Duration::from_secs(10);

const KEYS: &[&[u8]] = &[b"", b"secret", &[0xff; 300]];

/// The listener side ([`server_handshake`]) against arbitrary peer bytes.
///
/// Input: a knob byte (which key), then everything the peer sends, written before the
/// handshake starts, after which the peer closes its sending side.
///
/// Checks: the handshake fails (the peer cannot answer a random challenge), with one of
/// the documented errors and well before its deadline; the listener's first message is a
/// `{sha256}` challenge and nothing it sends exceeds 256 bytes.
pub fn auth_listener(data: &[u8]) {
    let (result, sent) = handshake(data, |conn, key| server_handshake(conn, key, DEADLINE));
    assert_failed(result);
    let (messages, _) = parse(&sent, u64::MAX);
    let first = messages.first().expect("the listener sent no challenge");
    assert!(
        first.starts_with(b"#CHALLENGE#{sha256}") && first.len() == 59,
        "first message {first:?}"
    );
    assert_small(&messages);
}

/// The client side ([`client_handshake`]) against arbitrary peer bytes.
///
/// Input and checks as for [`auth_listener`], except that the client speaks first only
/// to answer: whatever it sends is at most 256 bytes a message, and it never succeeds.
pub fn auth_client(data: &[u8]) {
    let (result, sent) = handshake(data, |conn, key| client_handshake(conn, key, DEADLINE));
    assert_failed(result);
    let (messages, _) = parse(&sent, u64::MAX);
    assert_small(&messages);
}

type Conn = Connection<Vec<u8>, Vec<u8>>;

/// Runs `side` on one end of a socketpair whose other end has written the input and shut
/// down its sending side; returns the outcome and what `side` sent.
fn handshake(
    data: &[u8],
    side: impl FnOnce(&Conn, &AuthKey) -> Result<(), Error>,
) -> (Result<(), Error>, Vec<u8>) {
    let mut knobs = Knobs::new(data);
    let key = AuthKey::new(knobs.pick(KEYS));
    let (ours, theirs) = procwire::duplex::<Vec<u8>, Vec<u8>>().expect("socketpair");
    let mut peer = File::from(theirs.as_fd().try_clone_to_owned().expect("dup"));
    drop(theirs);
    rustix::fs::fcntl_setfl(&peer, rustix::fs::OFlags::NONBLOCK).expect("O_NONBLOCK");
    write_what_fits(&mut peer, knobs.rest());
    rustix::net::shutdown(&peer, rustix::net::Shutdown::Write).expect("shutdown");

    let started = Instant::now();
    let result = side(&ours, &key);
    assert!(
        started.elapsed() < DEADLINE / 2,
        "the handshake waited {:?} for a peer that had closed",
        started.elapsed()
    );
    drop(ours);
    let mut sent = Vec::new();
    peer.read_to_end(&mut sent)
        .expect("reading what the handshake sent");
    (result, sent)
}

fn assert_failed(result: Result<(), Error>) {
    match result {
        Ok(()) => panic!("a peer without the key authenticated"),
        Err(Error::AuthenticationFailed(_) | Error::Disconnected | Error::Truncated { .. }) => {}
        Err(e) => panic!("undocumented handshake error: {e:?}"),
    }
}

fn assert_small(messages: &[&[u8]]) {
    for m in messages {
        assert!(m.len() <= 256, "a handshake message of {} bytes", m.len());
    }
}
