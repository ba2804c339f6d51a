//! Listener and Client against real CPython `multiprocessing.connection`, every interpreter
//! found (see `pyinterop`): Rust Listener ↔ Python Client and Python Listener ↔ Rust Client,
//! over TCP, a Unix path and an abstract socket, with no key, the right key and a wrong key.

mod pyinterop;

use std::thread;
use std::time::Duration;

use procwire::{Client, Connection, Error, Listener};
use pyinterop::matrix::{
    abstract_name, check_outcome, for_python, from_python, pattern, python_key, Dir, Family, Key,
    FAMILIES, KEY, KEYS,
};
use pyinterop::{pythons, spawn_script, wait_bounded, Outcome, Python, CHILD_LIMIT};

type Bytes = Connection<(), ()>;

const WAIT: Duration = Duration::from_secs(20);

fn recv_within(conn: &Bytes) -> procwire::Result<Vec<u8>> {
    if !conn.poll(Some(WAIT))? {
        return Err(Error::Timeout);
    }
    conn.recv_bytes()
}

/// The exchange of the issue: `b""`, `b"hello"`, 16384, 16385 and 1 MiB bytes echoed back,
/// then Python's `array('i', [42, 1729, -7])` received into a 5-element `i32` buffer.
fn exchange(conn: &Bytes) -> procwire::Result<()> {
    for payload in [
        vec![],
        b"hello".to_vec(),
        pattern(16384),
        pattern(16385),
        pattern(1 << 20),
    ] {
        conn.send_bytes(&payload)?;
        let back = recv_within(conn)?;
        assert_eq!(back.len(), payload.len());
        assert!(back == payload, "echo of {} bytes differs", payload.len());
    }
    conn.send_bytes(b"END")?;
    let mut ints = [0i32; 5];
    assert!(conn.poll(Some(WAIT))?, "no array from python");
    assert_eq!(conn.recv_bytes_into(&mut ints)?, 12);
    assert_eq!(ints, [42, 1729, -7, 0, 0]);
    Ok(())
}

/// Checks what both sides saw against what the key mode predicts.
fn check(py: &Python, family: Family, key: Key, rust: procwire::Result<()>, python: &Outcome) {
    check_outcome(
        &format!("{py}, {family:?}, key {key:?}"),
        py,
        key,
        rust,
        python,
    );
}

fn listener_for(
    family: Family,
    dir: &Dir,
    key: Key,
    on_rejected: impl Fn(&Error) + Send + Sync + 'static,
) -> Listener {
    let addr = match family {
        Family::Tcp => "127.0.0.1:0".to_string(),
        Family::Unix => dir.0.join("rust.sock").display().to_string(),
        Family::Abstract => format!("@{}", abstract_name("interop")),
    };
    let mut builder = Listener::builder()
        .handshake_timeout(Duration::from_secs(5))
        .on_rejected(move |_, e| on_rejected(e));
    if !matches!(key, Key::None) {
        builder = builder.authkey(KEY);
    }
    builder.bind(addr.as_str()).unwrap()
}

fn rust_listener_python_client(py: &Python, family: Family, key: Key, dir: &Dir) {
    // `accept` returns only authenticated clients; a refused one is reported here.
    let (rejected_tx, rejected) = std::sync::mpsc::channel();
    let rejected_tx = std::sync::Mutex::new(rejected_tx);
    let listener = listener_for(family, dir, key, move |e: &Error| {
        let e = match e {
            Error::AuthenticationFailed(why) => Error::AuthenticationFailed(why.clone()),
            other => Error::Protocol(format!("{other:?}")),
        };
        let _ = rejected_tx.lock().unwrap().send(e);
    });
    let addr = listener.local_addr().clone();
    let (child, control) = spawn_script(py, "mp_peer.py", &["connect", "tcp", python_key(key)]);
    control.send_bytes(for_python(&addr).as_bytes()).unwrap();
    let server = thread::spawn(move || {
        let start = std::time::Instant::now();
        loop {
            match listener.accept_timeout::<(), ()>(Duration::from_millis(50)) {
                Ok(conn) => return exchange(&conn),
                Err(Error::Timeout) => {}
                Err(e) => return Err(e),
            }
            if let Ok(e) = rejected.try_recv() {
                return Err(e);
            }
            if start.elapsed() > CHILD_LIMIT {
                return Err(Error::Timeout);
            }
        }
    });
    let python = wait_bounded(child, CHILD_LIMIT);
    check(py, family, key, server.join().unwrap(), &python);
}

fn python_listener_rust_client(py: &Python, family: Family, key: Key, dir: &Dir) {
    let spec = match family {
        Family::Tcp => "tcp".to_string(),
        Family::Unix => format!("unix:{}", dir.0.join("py.sock").display()),
        Family::Abstract => format!("abstract:{}", abstract_name("py")),
    };
    let (child, control) = spawn_script(py, "mp_peer.py", &["listen", &spec, python_key(key)]);
    let addr = from_python(&String::from_utf8(recv_within(&control).unwrap()).unwrap());
    let mut builder = Client::builder()
        .connect_timeout(WAIT)
        .handshake_timeout(Duration::from_secs(5));
    if !matches!(key, Key::None) {
        builder = builder.authkey(KEY);
    }
    let rust = builder
        .connect::<(), (), _>(&addr)
        .and_then(|conn| exchange(&conn));
    let python = wait_bounded(child, CHILD_LIMIT);
    check(py, family, key, rust, &python);
}

#[test]
fn rust_listener_serves_python_clients() {
    let dir = Dir::new("rl");
    for py in pythons() {
        for family in FAMILIES {
            for key in KEYS {
                rust_listener_python_client(&py, family, key, &dir);
            }
        }
        println!("rust Listener <-> {py} Client: tcp, unix, abstract x no key, key, wrong key");
    }
}

#[test]
fn rust_client_connects_to_python_listeners() {
    let dir = Dir::new("pl");
    for py in pythons() {
        for family in FAMILIES {
            for key in KEYS {
                python_listener_rust_client(&py, family, key, &dir);
            }
        }
        println!("{py} Listener <-> rust Client: tcp, unix, abstract x no key, key, wrong key");
    }
}
