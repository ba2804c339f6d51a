//! `examples/async_server.rs` run to completion, as `main` runs it, with every Python 3
//! found (see `pyinterop`) as its Python client, and with an interpreter that does not
//! exist: what it serves and what it prints. Interpreters before 3.12 authenticate with
//! HMAC-MD5: without the `legacy-md5` feature the example skips them and says why.
#![cfg(all(feature = "tokio", feature = "postcard"))]

mod pyinterop;

#[path = "../examples/async_server.rs"]
mod example;

use example::{Report, JOBS_PER_CLIENT, RUST_CLIENTS};
use pyinterop::pythons;

/// Asserts that `line` is one of the lines the example printed.
fn printed(report: &Report, line: &str) {
    assert!(
        report.lines.iter().any(|l| l == line),
        "{line:?} not printed; it printed:\n{}",
        report.lines.join("\n")
    );
}

/// The Rust clients' part, the same with or without Python.
fn rust_clients_served(report: &Report) {
    assert_eq!(report.typed_jobs, RUST_CLIENTS * JOBS_PER_CLIENT);
    for n in 0..RUST_CLIENTS {
        printed(
            report,
            &format!("server: rust-client-{n} (typed) answered {JOBS_PER_CLIENT} jobs"),
        );
    }
    assert!(
        !report.lines.iter().any(|l| l.contains("refused")),
        "{:#?}",
        report.lines
    );
    assert!(report.lines[0].starts_with("server: listening on /"));
    assert!(report.lines[0].ends_with("/server.sock with a key"));
}

#[test]
fn the_async_server_serves_typed_rust_clients_and_every_python_client() {
    for py in pythons() {
        let python = py.path.to_str().unwrap();
        let report = example::run(python).unwrap_or_else(|e| panic!("{py}: {e:?}"));
        rust_clients_served(&report);
        let (a, b, c) = py.version;
        if py.legacy_auth() && !cfg!(feature = "legacy-md5") {
            assert!(!report.python_ran);
            assert_eq!(report.connections, RUST_CLIENTS);
            printed(
                &report,
                &format!(
                    "skipping the Python client: {python} is {a}.{b}.{c}, which \
                     authenticates with HMAC-MD5; run with --features tokio,legacy-md5"
                ),
            );
            println!("{py}: skipped by the example, as it should be");
            continue;
        }
        assert!(report.python_ran, "{py}: {:#?}", report.lines);
        assert_eq!(report.connections, RUST_CLIENTS + 1);
        assert_eq!(report.bytes_messages, 3);
        let name = format!("python-{a}.{b}.{c}");
        for line in [
            format!("started the Python client ({python}, {a}.{b}.{c})"),
            format!("server: {name} (bytes) answered 3 messages"),
            format!("server: the bytes client was {name}"),
            format!("python says: {name}: sum [1, 2, 3.5] = 6.5"),
            format!("python says: {name}: sum [10, -4] = 6"),
            format!("python says: {name}: sum [] = 0"),
            format!("python says: {name}: done"),
        ] {
            printed(&report, &line);
        }
        assert!(
            !report.lines.iter().any(|l| l.starts_with("python stderr")),
            "{py}: {:#?}",
            report.lines
        );
        assert_eq!(
            report.lines.last().unwrap(),
            "served 5 connections on one thread: 4 typed Rust clients (12 jobs), \
             1 Python client (3 messages)"
        );
        println!("the async server served its Rust clients and {py}");
    }
}

#[test]
fn without_python_the_async_server_says_why_and_serves_the_rust_clients() {
    let report = example::run("/nonexistent/python3").unwrap();
    rust_clients_served(&report);
    assert!(!report.python_ran);
    assert_eq!(report.connections, RUST_CLIENTS);
    assert!(
        report.lines.iter().any(|l| l.starts_with(
            "skipping the Python client: /nonexistent/python3 cannot be run: No such file"
        )),
        "{:#?}",
        report.lines
    );
    assert_eq!(
        report.lines.last().unwrap(),
        "served 4 connections on one thread: 4 typed Rust clients (12 jobs), no Python client"
    );
}
