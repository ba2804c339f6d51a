//! The matrix the Listener/Client interop tests run, blocking and async alike: key cases,
//! address families, a private directory for socket files, and the address spellings
//! Python takes and gives.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use procwire::Address;

use super::{Outcome, Python};

/// The key both sides use when the case is [`Key::Right`].
pub(crate) const KEY: &str = "secret-key";

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Key {
    None,
    Right,
    Wrong,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Family {
    Tcp,
    Unix,
    Abstract,
}

pub(crate) const KEYS: [Key; 3] = [Key::None, Key::Right, Key::Wrong];
pub(crate) const FAMILIES: [Family; 3] = [Family::Tcp, Family::Unix, Family::Abstract];

/// A fresh abstract socket name (without the leading `@`) for one bind: `tag`, the process
/// id and a count that never repeats in this process.
///
/// A name is never bound twice. Closing a listener frees its abstract name only when the
/// last copy of its descriptor closes, and a child that another test thread is starting
/// holds copies of every descriptor between its `fork` and its `exec`: binding the same
/// name again at once then fails with `AddrInUse`, which failed a CI run.
pub(crate) fn abstract_name(tag: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("procwire-{tag}-{}-{n}", std::process::id())
}

/// A private directory for the socket files of one test, removed at its end.
pub(crate) struct Dir(pub(crate) PathBuf);

impl Dir {
    pub(crate) fn new(tag: &str) -> Dir {
        let dir = std::env::temp_dir().join(format!("pw-interop-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(crate) fn python_key(key: Key) -> &'static str {
    match key {
        Key::None => "-",
        Key::Right => KEY,
        Key::Wrong => "wrong-key",
    }
}

/// Whether the handshake can succeed: the legacy MD5 protocol of CPython ≤ 3.11 needs the
/// `legacy-md5` feature.
pub(crate) fn should_succeed(py: &Python, key: Key) -> bool {
    match key {
        Key::None => true,
        Key::Right => !py.legacy_auth() || cfg!(feature = "legacy-md5"),
        Key::Wrong => false,
    }
}

/// Checks what both sides of one exchange saw against what the key mode predicts: when it
/// should succeed, the Rust side's value (and Python exited 0); otherwise `None`, after
/// checking that both sides failed the handshake as they should.
pub(crate) fn check_outcome<T: std::fmt::Debug>(
    what: &str,
    py: &Python,
    key: Key,
    rust: procwire::Result<T>,
    python: &Outcome,
) -> Option<T> {
    if should_succeed(py, key) {
        let value =
            rust.unwrap_or_else(|e| panic!("{what}: rust side failed: {e:?}; python: {python}"));
        assert_eq!(python.code(), Some(0), "{what}: python: {python}");
        return Some(value);
    }
    match rust {
        Err(procwire::Error::AuthenticationFailed(why)) => {
            if key == Key::Right {
                assert!(why.contains("legacy"), "{what}: {why}");
            }
        }
        other => panic!("{what}: expected AuthenticationFailed, got {other:?}; python: {python}"),
    }
    // Python reports the failure too: AuthenticationError (3), or the closed
    // connection (4) when we refused its legacy protocol.
    let code = python.code();
    assert!(
        code == Some(3) || (code == Some(4) && py.legacy_auth()),
        "{what}: python: {python}"
    );
    None
}

pub(crate) fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

pub(crate) fn for_python(addr: &Address) -> String {
    match addr {
        Address::Tcp(sa) => format!("tcp:{}:{}", sa.ip(), sa.port()),
        Address::Unix(path) => format!("unix:{}", path.display()),
        Address::Abstract(name) => format!("abstract:{}", String::from_utf8_lossy(name)),
        other => panic!("no python form for {other}"),
    }
}

pub(crate) fn from_python(text: &str) -> Address {
    let (kind, rest) = text.split_once(':').unwrap();
    match kind {
        "tcp" => rest.parse().unwrap(),
        "unix" => Address::Unix(rest.into()),
        "abstract" => Address::Abstract(rest.as_bytes().to_vec()),
        _ => panic!("unexpected address {text:?}"),
    }
}
