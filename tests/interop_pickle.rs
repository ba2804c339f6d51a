//! The pickle codec against real CPython `Connection.send()` / `recv()`, every interpreter
//! found (see `pyinterop`), over a socketpair (as `duplex()` makes), a Rust `Listener`
//! with a Python `Client`, and a Python `Listener` with a Rust `Client`.
//!
//! Rust sends one value holding every type the codec maps; `tests/python/pickle_peer.py`
//! checks that `recv()` gives exactly the expected Python objects (types included), then
//! sends the same objects with its default protocol and with every protocol it has, an
//! `array.array` that must be refused cleanly, and the objects once more.
#![cfg(all(feature = "pickle", feature = "postcard"))]

mod pyinterop;

use std::thread;
use std::time::Duration;

use procwire::codec::Pickle;
use procwire::{Address, Client, Connection, Error, Listener};
use pyinterop::everything::{everything, Everything};
use pyinterop::{pythons, spawn_script, spawn_script_with, wait_bounded, Python, CHILD_LIMIT};

const WAIT: Duration = Duration::from_secs(20);

type Conn = Connection<Everything, Everything, Pickle>;

fn recv_within(conn: &Conn) -> procwire::Result<Everything> {
    conn.recv_timeout(WAIT)
}

/// Pickle protocols the interpreter writes: 0 to `HIGHEST_PROTOCOL`.
fn protocols(py: &Python) -> std::ops::RangeInclusive<u32> {
    0..=if py.version >= (3, 8, 0) { 5 } else { 4 }
}

/// The Rust half of the exchange `pickle_peer.py` describes.
fn exchange(py: &Python, conn: &Conn) {
    let want = everything();
    conn.send(&want).unwrap();
    let got = recv_within(conn).unwrap_or_else(|e| panic!("{py}: default protocol: {e:?}"));
    assert_eq!(got, want, "{py}: default protocol");
    for protocol in protocols(py) {
        match recv_within(conn) {
            Ok(got) => assert_eq!(got, want, "{py}: protocol {protocol}"),
            Err(e) => panic!("{py}: protocol {protocol}: {e}"),
        }
    }
    match recv_within(conn) {
        Err(Error::Decode(e)) => assert!(
            e.to_string().contains("array._array_reconstructor"),
            "{py}: array.array gave {e}"
        ),
        other => panic!("{py}: array.array gave {other:?}"),
    }
    assert_eq!(
        recv_within(conn).unwrap(),
        want,
        "{py}: after a refused message"
    );
}

fn check_python(py: &Python, child: std::process::Child, what: &str) {
    let outcome = wait_bounded(child, CHILD_LIMIT);
    assert_eq!(outcome.code(), Some(0), "{py} ({what}): python: {outcome}");
    println!("ran against {py} ({what})");
}

#[test]
fn python_and_rust_exchange_every_mapped_type_over_a_socketpair() {
    for py in pythons() {
        let (child, conn) = spawn_script_with::<Everything, Everything, _>(
            &py,
            "pickle_peer.py",
            &["fd"],
            Pickle::new(),
        );
        exchange(&py, &conn);
        drop(conn);
        check_python(&py, child, "socketpair");
    }
}

#[test]
fn python_client_and_rust_listener_exchange_every_mapped_type() {
    for py in pythons() {
        let listener = Listener::bind("127.0.0.1:0").unwrap();
        let Address::Tcp(addr) = listener.local_addr().clone() else {
            panic!("not a tcp listener")
        };
        let (child, control) = spawn_script(&py, "pickle_peer.py", &["connect"]);
        control.send_bytes(addr.to_string().as_bytes()).unwrap();
        let server =
            thread::spawn(move || listener.accept_with::<Everything, Everything, _>(Pickle::new()));
        let conn = server.join().unwrap().unwrap();
        exchange(&py, &conn);
        drop((conn, control));
        check_python(&py, child, "python Client, rust Listener");
    }
}

#[test]
fn python_listener_and_rust_client_exchange_every_mapped_type() {
    for py in pythons() {
        let (child, control) = spawn_script(&py, "pickle_peer.py", &["listen"]);
        assert!(control.poll(Some(WAIT)).unwrap(), "{py}: no address");
        let addr = String::from_utf8(control.recv_bytes().unwrap()).unwrap();
        let conn: Conn = Client::builder()
            .connect_timeout(WAIT)
            .connect_with(addr.as_str(), Pickle::new())
            .unwrap();
        exchange(&py, &conn);
        drop((conn, control));
        check_python(&py, child, "python Listener, rust Client");
    }
}
