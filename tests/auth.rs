//! The authentication handshake: both roles over `duplex()`, CPython's bytes on the wire,
//! hostile and silent peers, and real CPython interpreters on the other end.
//!
//! The interop tests run against every interpreter `pyinterop::pythons` finds and fail
//! when there is none. Run with `--nocapture` to see which ran. CPython 3.11 and earlier
//! use the legacy HMAC-MD5 protocol: with default features they must be refused with a
//! clear error, with `--features legacy-md5` (or `--all-features`) they must succeed.

#![allow(unsafe_code)] // the allocation-tracking global allocator implements `GlobalAlloc`

mod pyinterop;
mod util;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use procwire::auth::{answer_challenge, client_handshake, deliver_challenge, server_handshake};
use procwire::{AuthKey, Connection, Error};
use sha2::Sha256;

use pyinterop::{pythons, spawn_script, wait_bounded, Outcome, Python, CHILD_LIMIT};
use util::assert_times_out;

/// A handshake timeout for peers that answer at once.
const SOON: Duration = Duration::from_secs(10);
/// A handshake timeout for a Python peer, whose interpreter has to start first.
const PYTHON_TIMEOUT: Duration = Duration::from_secs(20);
const KEY: &str = "secret-key";
const WELCOME_FRAME: &[u8] = b"\x00\x00\x00\x09#WELCOME#";
const FAILURE_FRAME: &[u8] = b"\x00\x00\x00\x09#FAILURE#";

// ---------------------------------------------------------------------------------------
// Allocation tracking: the largest single allocation made on each thread.

struct PeakPerThread;

thread_local! {
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = PEAK.try_with(|p| p.set(p.get().max(size)));
}

// SAFETY: every method forwards to the system allocator with the caller's arguments
// unchanged, so `System`'s guarantees are ours; `note` only touches a const-initialised
// thread-local `Cell` (no allocation, no re-entry) and ignores a destroyed one.
unsafe impl GlobalAlloc for PeakPerThread {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: the caller upholds `alloc`'s contract, which is `System.alloc`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` through this allocator, with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: `ptr` came from `System` through this allocator, with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: PeakPerThread = PeakPerThread;

// ---------------------------------------------------------------------------------------
// Helpers.

/// Runs `f` on a thread and fails the test if it has not finished within 60 s.
fn bounded<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("test body panicked or did not finish within 60 s")
}

/// A procwire connection and the raw socket of its peer.
fn with_raw_peer() -> (Connection<(), ()>, UnixStream) {
    let (ours, theirs) = procwire::duplex::<(), ()>().unwrap();
    let raw = UnixStream::from(theirs.as_fd().try_clone_to_owned().unwrap());
    raw.set_read_timeout(Some(SOON)).unwrap();
    (ours, raw)
}

fn frame(payload: &[u8]) -> Vec<u8> {
    [&(payload.len() as u32).to_be_bytes()[..], payload].concat()
}

fn read_frame(raw: &mut UnixStream) -> Vec<u8> {
    let mut header = [0; 4];
    raw.read_exact(&mut header).unwrap();
    let mut payload = vec![0; u32::from_be_bytes(header) as usize];
    raw.read_exact(&mut payload).unwrap();
    payload
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap();
    mac.update(msg);
    mac.finalize().into_bytes().to_vec()
}

/// Reads the challenge procwire sent and checks its CPython 3.12 shape; returns the body.
fn read_sha256_challenge(raw: &mut UnixStream) -> Vec<u8> {
    let challenge = read_frame(raw);
    assert_eq!(challenge.len(), 59);
    let body = challenge.strip_prefix(b"#CHALLENGE#").unwrap();
    assert!(body.starts_with(b"{sha256}"));
    body.to_vec()
}

/// A `{sha256}` reply to a challenge body.
fn sha256_reply(key: &[u8], body: &[u8]) -> Vec<u8> {
    [b"{sha256}".as_slice(), &hmac_sha256(key, body)].concat()
}

fn reason<T: std::fmt::Debug>(r: procwire::Result<T>) -> String {
    match r {
        Err(Error::AuthenticationFailed(why)) => why,
        other => panic!("expected AuthenticationFailed, got {other:?}"),
    }
}

/// Runs the server side on a thread and the client side here.
fn handshake_pair(
    server_key: AuthKey,
    client_key: AuthKey,
) -> (procwire::Result<()>, procwire::Result<()>) {
    let (server, client) = procwire::duplex::<(), ()>().unwrap();
    let accept = thread::spawn(move || server_handshake(&server, &server_key, SOON));
    let connected = client_handshake(&client, &client_key, SOON);
    drop(client); // a server still waiting must see the end of stream, not hang
    (accept.join().unwrap(), connected)
}

// ---------------------------------------------------------------------------------------
// Both roles over duplex().

#[test]
fn same_key_authenticates_both_sides_and_data_flows() {
    bounded(|| {
        let (server, client) = procwire::duplex::<String, String>().unwrap();
        let key = AuthKey::from(KEY);
        let server_key = key.clone();
        let accept =
            thread::spawn(move || server_handshake(&server, &server_key, SOON).map(|()| server));
        client_handshake(&client, &key, SOON).unwrap();
        let server = accept.join().unwrap().unwrap();
        client.send(&"after auth".to_string()).unwrap();
        assert_eq!(server.recv().unwrap(), "after auth");
        server.send_bytes(b"raw").unwrap();
        assert_eq!(client.recv_bytes().unwrap(), b"raw");
        assert_eq!(
            server.max_message_size(),
            procwire::frame::DEFAULT_MAX_MESSAGE_SIZE
        );
        assert_eq!(
            client.max_message_size(),
            procwire::frame::DEFAULT_MAX_MESSAGE_SIZE
        );
    });
}

#[test]
fn step_functions_run_in_either_order() {
    bounded(|| {
        let (a, b) = procwire::duplex::<(), ()>().unwrap();
        let key = AuthKey::from(b"\x00binary\xffkey");
        let deadline = Instant::now() + SOON;
        let peer_key = key.clone();
        let peer = thread::spawn(move || {
            answer_challenge(&b, &peer_key, deadline)?;
            answer_challenge(&b, &peer_key, deadline)?;
            deliver_challenge(&b, &peer_key, deadline)
        });
        deliver_challenge(&a, &key, deadline).unwrap();
        deliver_challenge(&a, &key, deadline).unwrap();
        answer_challenge(&a, &key, deadline).unwrap();
        peer.join().unwrap().unwrap();
    });
}

#[test]
fn wrong_key_fails_on_both_sides() {
    bounded(|| {
        let (server, client) = handshake_pair(AuthKey::from(KEY), AuthKey::from("wrong-key"));
        let server_why = reason(server);
        let client_why = reason(client);
        assert_eq!(
            server_why,
            "the peer's digest was wrong (the two sides use different keys)"
        );
        assert_eq!(
            client_why,
            "the peer rejected our digest (the two sides use different keys)"
        );
    });
}

#[test]
fn a_different_key_fails_in_the_second_half_too() {
    // The client's challenge (second half) also catches a mismatch, for a server that
    // skipped checking the first half; here the first half is run by hand.
    bounded(|| {
        let (a, b) = procwire::duplex::<(), ()>().unwrap();
        let deadline = Instant::now() + SOON;
        let peer = thread::spawn(move || answer_challenge(&b, &AuthKey::from("one"), deadline));
        let err = deliver_challenge(&a, &AuthKey::from("two"), deadline).unwrap_err();
        assert!(matches!(err, Error::AuthenticationFailed(_)));
        assert!(matches!(
            peer.join().unwrap(),
            Err(Error::AuthenticationFailed(_))
        ));
    });
}

#[test]
fn empty_key_is_a_real_key() {
    bounded(|| {
        let (server, client) = handshake_pair(AuthKey::from(""), AuthKey::from(Vec::new()));
        server.unwrap();
        client.unwrap();
        let (server, client) = handshake_pair(AuthKey::from(""), AuthKey::from("x"));
        reason(server);
        reason(client);
    });
}

#[test]
fn errors_and_debug_never_show_the_key() {
    bounded(|| {
        let secret = "hunter2-very-secret";
        let key = AuthKey::from(secret);
        assert_eq!(format!("{key:?}"), "AuthKey(<redacted, 19 bytes>)");
        assert_eq!(
            format!("{:?}", AuthKey::from(&b""[..])),
            "AuthKey(<redacted, 0 bytes>)"
        );
        assert_eq!(
            AuthKey::from(secret.to_string()).as_bytes(),
            secret.as_bytes()
        );
        let (server, client) = handshake_pair(key, AuthKey::from("other"));
        for err in [server.unwrap_err(), client.unwrap_err()] {
            for text in [err.to_string(), format!("{err:?}"), format!("{err:#?}")] {
                assert!(
                    text.starts_with("authentication failed")
                        || text.contains("AuthenticationFailed")
                );
                assert!(!text.contains(secret), "{text}");
                assert!(!text.contains("hunter2"), "{text}");
            }
        }
    });
}

// ---------------------------------------------------------------------------------------
// CPython's bytes (wire protocol reference §8), through the public API.

/// §8.2, CPython 3.12.1/3.13.0: the server's challenge with nonce 00..27, and the reply.
const CHALLENGE_00: &str = "234348414c4c454e4745237b7368613235367d\
    000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f2021222324252627";
const REPLY_00: &str = "7b7368613235367d\
    39c4ff3268da80f68b36eb46879c33a2dedb3ac28faebb6a0279ac6a912624d9";
/// §8.2: the client's challenge with nonce 80..a7, and the reply.
const CHALLENGE_80: &str = "234348414c4c454e4745237b7368613235367d\
    808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7";
const REPLY_80: &str = "7b7368613235367d\
    af8e72bbe7d9885f0878c5e8d3b436f6b34c8e9190ea22877b951c4cc1dbb653";

#[test]
fn client_side_matches_cpython_3_12_server_bytes() {
    bounded(|| {
        let (conn, mut raw) = with_raw_peer();
        let client = thread::spawn(move || client_handshake(&conn, &AuthKey::from(KEY), SOON));
        raw.write_all(&frame(&hex(CHALLENGE_00))).unwrap();
        assert_eq!(read_frame(&mut raw), hex(REPLY_00));
        raw.write_all(WELCOME_FRAME).unwrap();
        let body = read_sha256_challenge(&mut raw);
        raw.write_all(&frame(&sha256_reply(KEY.as_bytes(), &body)))
            .unwrap();
        assert_eq!(read_frame(&mut raw), b"#WELCOME#");
        client.join().unwrap().unwrap();
    });
}

#[test]
fn server_side_matches_cpython_3_12_client_bytes() {
    bounded(|| {
        let (conn, mut raw) = with_raw_peer();
        let server = thread::spawn(move || server_handshake(&conn, &AuthKey::from(KEY), SOON));
        let body = read_sha256_challenge(&mut raw);
        raw.write_all(&frame(&sha256_reply(KEY.as_bytes(), &body)))
            .unwrap();
        assert_eq!(read_frame(&mut raw), b"#WELCOME#");
        raw.write_all(&frame(&hex(CHALLENGE_80))).unwrap();
        assert_eq!(read_frame(&mut raw), hex(REPLY_80));
        raw.write_all(WELCOME_FRAME).unwrap();
        server.join().unwrap().unwrap();
    });
}

#[test]
fn server_refuses_wrong_reply_with_failure_verdict() {
    bounded(|| {
        let (conn, mut raw) = with_raw_peer();
        let server = thread::spawn(move || server_handshake(&conn, &AuthKey::from(KEY), SOON));
        let body = read_sha256_challenge(&mut raw);
        raw.write_all(&frame(&sha256_reply(b"wrong-key", &body)))
            .unwrap();
        let mut verdict = [0; FAILURE_FRAME.len()];
        raw.read_exact(&mut verdict).unwrap();
        assert_eq!(verdict, FAILURE_FRAME);
        reason(server.join().unwrap());
    });
}

#[test]
fn sha384_challenge_and_reply_are_accepted() {
    bounded(|| {
        use sha2::Sha384;
        let (conn, mut raw) = with_raw_peer();
        let client = thread::spawn(move || client_handshake(&conn, &AuthKey::from(KEY), SOON));
        let body = [b"{sha384}".as_slice(), &[7; 40]].concat();
        raw.write_all(&frame(&[b"#CHALLENGE#".as_slice(), &body].concat()))
            .unwrap();
        let mut mac = <Hmac<Sha384> as Mac>::new_from_slice(KEY.as_bytes()).unwrap();
        mac.update(&body);
        let want = [b"{sha384}".as_slice(), &mac.finalize().into_bytes()].concat();
        assert_eq!(read_frame(&mut raw), want);
        raw.write_all(WELCOME_FRAME).unwrap();
        // Our challenge, answered with sha384 although we offered sha256, as CPython allows.
        let body = read_sha256_challenge(&mut raw);
        let mut mac = <Hmac<Sha384> as Mac>::new_from_slice(KEY.as_bytes()).unwrap();
        mac.update(&body);
        let reply = [b"{sha384}".as_slice(), &mac.finalize().into_bytes()].concat();
        raw.write_all(&frame(&reply)).unwrap();
        assert_eq!(read_frame(&mut raw), b"#WELCOME#");
        client.join().unwrap().unwrap();
    });
}

#[test]
fn unknown_digest_is_refused_without_a_reply() {
    bounded(|| {
        let (conn, mut raw) = with_raw_peer();
        let body = [b"{sha512}".as_slice(), &[7; 40]].concat();
        raw.write_all(&frame(&[b"#CHALLENGE#".as_slice(), &body].concat()))
            .unwrap();
        let why = reason(client_handshake(&conn, &AuthKey::from(KEY), SOON));
        assert_eq!(why, "the peer uses an unsupported digest {sha512}");
        drop(conn);
        let mut rest = Vec::new();
        raw.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty(), "a reply was sent: {rest:?}");
    });
}

#[test]
fn verdict_other_than_welcome_fails() {
    bounded(|| {
        let (conn, mut raw) = with_raw_peer();
        raw.write_all(&frame(&hex(CHALLENGE_00))).unwrap();
        raw.write_all(&frame(b"#welcome#")).unwrap();
        let why = reason(client_handshake(&conn, &AuthKey::from(KEY), SOON));
        assert_eq!(why, "expected #WELCOME# or #FAILURE#, got a 9-byte message");
    });
}

// ---------------------------------------------------------------------------------------
// Hostile, silent and vanishing peers.

#[test]
fn challenge_claiming_one_gib_fails_without_allocating_it() {
    for header in [&hex("40000000")[..], &hex("ffffffff0000000040000000")] {
        let (conn, mut raw) = with_raw_peer();
        conn.set_max_message_size(u64::MAX);
        raw.write_all(header).unwrap();
        PEAK.with(|p| p.set(0));
        let why = reason(client_handshake(&conn, &AuthKey::from(KEY), SOON));
        let peak = PEAK.with(Cell::get);
        assert_eq!(
            why,
            "handshake challenge of 1073741824 bytes exceeds the 256-byte limit"
        );
        assert!(
            peak < 1 << 20,
            "largest allocation during the handshake: {peak} bytes"
        );
        assert_eq!(conn.max_message_size(), u64::MAX, "limit not restored");
    }
}

#[test]
fn reply_claiming_one_gib_fails_without_allocating_it() {
    let (conn, mut raw) = with_raw_peer();
    raw.write_all(&hex("40000000")).unwrap(); // read as the reply to our challenge
    PEAK.with(|p| p.set(0));
    let why = reason(server_handshake(&conn, &AuthKey::from(KEY), SOON));
    let peak = PEAK.with(Cell::get);
    assert_eq!(
        why,
        "handshake reply of 1073741824 bytes exceeds the 256-byte limit"
    );
    assert!(
        peak < 1 << 20,
        "largest allocation during the handshake: {peak} bytes"
    );
    assert_eq!(
        conn.max_message_size(),
        procwire::frame::DEFAULT_MAX_MESSAGE_SIZE
    );
    read_sha256_challenge(&mut raw);
    assert_eq!(read_frame(&mut raw), b"#FAILURE#");
}

#[test]
fn message_just_over_256_bytes_is_refused() {
    bounded(|| {
        let (conn, mut raw) = with_raw_peer();
        raw.write_all(&frame(&[b'#'; 257])).unwrap();
        let why = reason(client_handshake(&conn, &AuthKey::from(KEY), SOON));
        assert_eq!(
            why,
            "handshake challenge of 257 bytes exceeds the 256-byte limit"
        );
    });
}

#[test]
fn silent_peer_times_out_at_the_deadline() {
    bounded(|| {
        let t = Duration::from_millis(300);
        let key = AuthKey::from(KEY);
        let (conn, _silent) = procwire::duplex::<(), ()>().unwrap();
        assert_times_out(|| server_handshake(&conn, &key, t), t);
        let (conn, _silent) = procwire::duplex::<(), ()>().unwrap();
        assert_times_out(|| client_handshake(&conn, &key, t), t);
        let (conn, _silent) = procwire::duplex::<(), ()>().unwrap();
        assert_times_out(|| answer_challenge(&conn, &key, Instant::now() + t), t);
        let (conn, _silent) = procwire::duplex::<(), ()>().unwrap();
        assert_times_out(|| deliver_challenge(&conn, &key, Instant::now() + t), t);
    });
}

#[test]
fn peer_that_stops_mid_handshake_times_out() {
    bounded(|| {
        // The peer sends its challenge, then never sends the verdict.
        let (conn, mut raw) = with_raw_peer();
        raw.write_all(&frame(&hex(CHALLENGE_00))).unwrap();
        let t = Duration::from_millis(300);
        assert_times_out(|| client_handshake(&conn, &AuthKey::from(KEY), t), t);
        assert_eq!(read_frame(&mut raw), hex(REPLY_00));
    });
}

#[test]
fn past_deadline_is_a_timeout() {
    bounded(|| {
        let (conn, _silent) = procwire::duplex::<(), ()>().unwrap();
        let past = Instant::now();
        thread::sleep(Duration::from_millis(2));
        let err = answer_challenge(&conn, &AuthKey::from(KEY), past).unwrap_err();
        assert!(matches!(err, Error::Timeout), "{err:?}");
    });
}

#[test]
fn peer_closing_mid_handshake_is_disconnected() {
    bounded(|| {
        // Closes before sending anything.
        let (conn, peer) = procwire::duplex::<(), ()>().unwrap();
        drop(peer);
        let err = client_handshake(&conn, &AuthKey::from(KEY), SOON).unwrap_err();
        assert!(err.is_disconnected(), "{err:?}");
        // Reads our challenge, then closes.
        let (conn, mut raw) = with_raw_peer();
        let server = thread::spawn(move || server_handshake(&conn, &AuthKey::from(KEY), SOON));
        read_sha256_challenge(&mut raw);
        drop(raw);
        let err = server.join().unwrap().unwrap_err();
        assert!(err.is_disconnected(), "{err:?}");
        // Closes in the middle of a frame.
        let (conn, mut raw) = with_raw_peer();
        raw.write_all(&hex("0000003b2343")).unwrap();
        drop(raw);
        let err = client_handshake(&conn, &AuthKey::from(KEY), SOON).unwrap_err();
        assert!(matches!(err, Error::Truncated { .. }), "{err:?}");
    });
}

// ---------------------------------------------------------------------------------------
// The legacy HMAC-MD5 protocol of CPython 3.11 and earlier (§8.2, §8.3).

/// §8.2, CPython 3.11.7: a legacy challenge (nonce 00..13) and its raw HMAC-MD5 reply.
const LEGACY_CHALLENGE_00: &str = "234348414c4c454e474523000102030405060708090a0b0c0d0e0f10111213";
#[cfg(feature = "legacy-md5")]
const LEGACY_REPLY_00: &str = "de936bfac84704c988ab8ec2a6d6d714";

#[cfg(not(feature = "legacy-md5"))]
#[test]
fn legacy_challenge_without_feature_names_the_feature() {
    bounded(|| {
        let (conn, mut raw) = with_raw_peer();
        raw.write_all(&frame(&hex(LEGACY_CHALLENGE_00))).unwrap();
        let why = reason(client_handshake(&conn, &AuthKey::from(KEY), SOON));
        assert_eq!(
            why,
            "the peer sent a 20-byte challenge: it uses the legacy HMAC-MD5 protocol of \
             CPython 3.11 and earlier, which needs procwire's `legacy-md5` cargo feature"
        );
    });
}

#[cfg(not(feature = "legacy-md5"))]
#[test]
fn legacy_reply_without_feature_names_the_feature() {
    bounded(|| {
        let (conn, mut raw) = with_raw_peer();
        let server = thread::spawn(move || server_handshake(&conn, &AuthKey::from(KEY), SOON));
        read_sha256_challenge(&mut raw);
        raw.write_all(&frame(&[0; 16])).unwrap();
        assert_eq!(read_frame(&mut raw), b"#FAILURE#");
        let why = reason(server.join().unwrap());
        assert!(why.contains("legacy HMAC-MD5 protocol"), "{why}");
        assert!(why.contains("`legacy-md5` cargo feature"), "{why}");
    });
}

#[cfg(feature = "legacy-md5")]
fn hmac_md5(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<md5::Md5> as Mac>::new_from_slice(key).unwrap();
    mac.update(msg);
    mac.finalize().into_bytes().to_vec()
}

#[cfg(feature = "legacy-md5")]
#[test]
fn legacy_client_side_matches_cpython_3_11_server_bytes() {
    bounded(|| {
        let (conn, mut raw) = with_raw_peer();
        let client = thread::spawn(move || client_handshake(&conn, &AuthKey::from(KEY), SOON));
        raw.write_all(&frame(&hex(LEGACY_CHALLENGE_00))).unwrap();
        assert_eq!(read_frame(&mut raw), hex(LEGACY_REPLY_00));
        raw.write_all(WELCOME_FRAME).unwrap();
        // A 3.11 server answers our {sha256} challenge with raw MD5 over the whole body.
        let body = read_sha256_challenge(&mut raw);
        raw.write_all(&frame(&hmac_md5(KEY.as_bytes(), &body)))
            .unwrap();
        assert_eq!(read_frame(&mut raw), b"#WELCOME#");
        client.join().unwrap().unwrap();
    });
}

#[cfg(feature = "legacy-md5")]
#[test]
fn legacy_server_side_matches_cpython_3_11_client_bytes() {
    bounded(|| {
        let (conn, mut raw) = with_raw_peer();
        let server = thread::spawn(move || server_handshake(&conn, &AuthKey::from(KEY), SOON));
        let body = read_sha256_challenge(&mut raw);
        raw.write_all(&frame(&hmac_md5(KEY.as_bytes(), &body)))
            .unwrap();
        assert_eq!(read_frame(&mut raw), b"#WELCOME#");
        // §8.2 3.11.7 frames 4 and 5.
        let challenge_80 = "234348414c4c454e474523808182838485868788898a8b8c8d8e8f90919293";
        raw.write_all(&frame(&hex(challenge_80))).unwrap();
        assert_eq!(
            read_frame(&mut raw),
            hex("228d2ec1c13aa3ff795f93c3ad720c8a")
        );
        raw.write_all(WELCOME_FRAME).unwrap();
        server.join().unwrap().unwrap();
        // A wrong raw MD5 reply is refused like any other.
        let (conn, mut raw) = with_raw_peer();
        let server = thread::spawn(move || server_handshake(&conn, &AuthKey::from(KEY), SOON));
        let body = read_sha256_challenge(&mut raw);
        raw.write_all(&frame(&hmac_md5(b"wrong-key", &body)))
            .unwrap();
        assert_eq!(read_frame(&mut raw), b"#FAILURE#");
        reason(server.join().unwrap());
    });
}

// ---------------------------------------------------------------------------------------
// Real CPython on the other end.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Server,
    Client,
}

/// Runs the handshake with `tests/python/auth_peer.py` in the opposite role, then
/// exchanges one message each way; returns what Rust got and what Python did.
fn with_python(
    py: &Python,
    role: Role,
    rust_key: &str,
    py_key: &str,
) -> (procwire::Result<Vec<u8>>, Outcome) {
    let py_role = match role {
        Role::Server => "client",
        Role::Client => "server",
    };
    let (child, conn) = spawn_script(py, "auth_peer.py", &[py_role, py_key]);
    let key = AuthKey::from(rust_key);
    let result = match role {
        Role::Server => server_handshake(&conn, &key, PYTHON_TIMEOUT),
        Role::Client => client_handshake(&conn, &key, PYTHON_TIMEOUT),
    }
    .and_then(|()| {
        if !conn.poll(Some(PYTHON_TIMEOUT))? {
            return Err(Error::Timeout);
        }
        let got = conn.recv_bytes()?;
        conn.send_bytes(b"hello from rust")?;
        Ok(got)
    });
    drop(conn); // a Python peer still reading sees EOF instead of waiting forever
    (result, wait_bounded(child, CHILD_LIMIT))
}

/// What a run should give: success, or which errors on each side.
fn check_run(py: &Python, role: Role, rust_key: &str, py_key: &str) -> Result<String, String> {
    let (result, outcome) = with_python(py, role, rust_key, py_key);
    let legacy_refused = py.legacy_auth() && !cfg!(feature = "legacy-md5");
    let ok = match (&result, legacy_refused, rust_key == py_key) {
        (Ok(got), false, true) => {
            got == b"hello from python"
                && outcome.code() == Some(0)
                && outcome.stdout.contains("received b'hello from rust'")
        }
        (Err(Error::AuthenticationFailed(why)), true, _) => {
            why.contains("`legacy-md5` cargo feature")
                // A refused legacy reply gets #FAILURE#; a refused legacy challenge gets
                // nothing, and Python sees the end of stream.
                && match role {
                    Role::Server => outcome.code() == Some(3),
                    Role::Client => outcome.code() == Some(4),
                }
        }
        (Err(Error::AuthenticationFailed(why)), false, false) => {
            let (ours, theirs) = match role {
                Role::Server => ("digest was wrong", "digest sent was rejected"),
                Role::Client => ("rejected our digest", "digest received was wrong"),
            };
            why.contains(ours) && outcome.code() == Some(3) && outcome.stdout.contains(theirs)
        }
        _ => false,
    };
    let rust = match &result {
        Ok(got) => format!("ok, got {:?}", String::from_utf8_lossy(got)),
        Err(e) => format!("{e:?}"),
    };
    let line = format!(
        "rust {role:?} key {rust_key:?} vs python key {py_key:?}: rust {rust}; python {outcome}"
    );
    if ok {
        Ok(line)
    } else {
        Err(line)
    }
}

/// Runs `check_run` against every interpreter, printing each, and fails on any mismatch.
fn against_every_python(role: Role, keys: &[(&str, &str)]) {
    let pythons = pythons();
    eprintln!(
        "auth interop ({role:?}, legacy-md5 feature {}): {} interpreters: {}",
        if cfg!(feature = "legacy-md5") {
            "on"
        } else {
            "off"
        },
        pythons.len(),
        pythons
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut failures = Vec::new();
    for py in &pythons {
        for &(rust_key, py_key) in keys {
            match check_run(py, role, rust_key, py_key) {
                Ok(line) => eprintln!("  ok   {py}: {line}"),
                Err(line) => {
                    eprintln!("  FAIL {py}: {line}");
                    failures.push(format!("{py}: {line}"));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "interop failures:\n{}",
        failures.join("\n")
    );
}

#[test]
fn rust_server_authenticates_python_client() {
    against_every_python(Role::Server, &[(KEY, KEY), ("", "")]);
}

#[test]
fn python_server_authenticates_rust_client() {
    against_every_python(Role::Client, &[(KEY, KEY), ("", "")]);
}

#[test]
fn wrong_key_fails_on_both_sides_with_python_client() {
    against_every_python(Role::Server, &[(KEY, "wrong-key")]);
}

#[test]
fn wrong_key_fails_on_both_sides_with_python_server() {
    against_every_python(Role::Client, &[(KEY, "wrong-key")]);
}
