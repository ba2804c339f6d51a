//! `examples/python_server.rs` against `examples/python_client.py`, with every Python 3
//! found (see `pyinterop`), in parallel: the client's checks must all pass. Interpreters
//! before 3.12 authenticate with HMAC-MD5, so without the `legacy-md5` feature only 3.12
//! and later run.
#![cfg(all(feature = "pickle", feature = "postcard"))]

mod pyinterop;

#[path = "../examples/python_server.rs"]
mod example;

use std::path::Path;
use std::process::Stdio;
use std::thread;

use procwire::{Address, Listener};
use pyinterop::{pythons, wait_bounded, CHILD_LIMIT};

#[test]
fn the_python_client_gets_every_answer_right_from_the_rust_server() {
    let pythons: Vec<_> = pythons()
        .into_iter()
        .filter(|py| cfg!(feature = "legacy-md5") || !py.legacy_auth())
        .collect();
    assert!(
        !pythons.is_empty(),
        "no Python 3.12 or later, and no legacy-md5 feature"
    );
    let client = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/python_client.py");
    thread::scope(|s| {
        for py in &pythons {
            let client = &client;
            s.spawn(move || {
                let listener = Listener::builder()
                    .authkey(example::KEY)
                    .bind("127.0.0.1:0")
                    .unwrap();
                let Address::Tcp(addr) = listener.local_addr().clone() else {
                    panic!("not a tcp listener")
                };
                let child = py
                    .command()
                    .arg(client)
                    .arg(addr.to_string())
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap();
                let server = s.spawn(move || example::serve(&listener, 1));
                let outcome = wait_bounded(child, CHILD_LIMIT);
                assert_eq!(outcome.code(), Some(0), "{py}: {outcome}");
                assert_eq!(outcome.stdout.trim(), "ok", "{py}");
                server
                    .join()
                    .unwrap()
                    .unwrap_or_else(|e| panic!("{py}: server: {e}"));
                println!("ran against {py}");
            });
        }
    });
}
