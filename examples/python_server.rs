//! Run: cargo run --example python_server --features pickle,legacy-md5 -- 127.0.0.1:6000
//! then, in another shell: python3 examples/python_client.py 127.0.0.1:6000
//!
//! A Rust server for Python's `multiprocessing.connection.Client`. Each request is a
//! Python tuple `(op, arg)` received as a `PyValue`; each reply goes back as a Python
//! object of the type the client expects:
//!
//! - `('echo', x)`: `x` itself, whatever its type (tuples stay tuples, sets sets);
//! - `('repr', x)`: `repr(x)` as Rust's `Debug` of the `PyValue` writes it;
//! - `('sum', ints)`: the sum of a list of ints of any size, as an int;
//! - `('job', {'name': str, 'sizes': [int]})`: a typed request, answered with a typed
//!   reply `{'name': str, 'total': int, 'largest': int or None}`;
//! - `('bye', None)`: `'bye'`, and the server closes the connection;
//! - anything else: `('error', message)`.
//!
//! The key is `secret password` (`legacy-md5` lets CPython 3.11 and older clients
//! authenticate). `tests/example_python.rs` runs `python_client.py` against this server
//! with every Python 3 it finds.

use num_bigint::BigInt;
use serde::{Deserialize, Serialize};

use procwire::codec::{Pickle, PyValue};
use procwire::{Connection, Listener};

/// The key both sides know.
pub(crate) const KEY: &str = "secret password";

#[derive(Deserialize)]
struct Job {
    name: String,
    sizes: Vec<u32>,
}

#[derive(Serialize)]
struct JobDone {
    name: String,
    total: u64,
    largest: Option<u32>,
}

/// The reply to one request; `None` ends the conversation.
fn answer(request: PyValue) -> Option<PyValue> {
    let PyValue::Tuple(mut parts) = request else {
        return Some(error("a request is a tuple (op, arg)"));
    };
    let (Some(arg), Some(PyValue::Str(op))) = (parts.pop(), parts.pop()) else {
        return Some(error("a request is a tuple (op, arg)"));
    };
    Some(match op.as_str() {
        "echo" => arg,
        "repr" => PyValue::Str(format!("{arg:?}")),
        "sum" => match sum(arg) {
            Some(total) => total.into(),
            None => error("sum takes a list of ints"),
        },
        "job" => match arg.deserialize_into::<Job>() {
            Ok(job) => PyValue::from_serialize(&JobDone {
                total: job.sizes.iter().map(|&s| u64::from(s)).sum(),
                largest: job.sizes.iter().copied().max(),
                name: job.name,
            })
            .unwrap_or_else(|e| error(&e.to_string())),
            Err(e) => error(&format!("bad job: {e}")),
        },
        "bye" => return None,
        other => error(&format!("unknown op {other:?}")),
    })
}

fn sum(arg: PyValue) -> Option<BigInt> {
    let items = Vec::<PyValue>::try_from(arg).ok()?;
    items
        .into_iter()
        .map(|v| BigInt::try_from(v).ok())
        .sum::<Option<BigInt>>()
}

fn error(message: &str) -> PyValue {
    ("error", message).into()
}

/// Serves one client until it says goodbye or goes away.
pub(crate) fn serve_one(conn: &Connection<PyValue, PyValue, Pickle>) -> procwire::Result<()> {
    loop {
        let request = match conn.recv() {
            Ok(request) => request,
            Err(e) if e.is_disconnected() => return Ok(()),
            // A request the codec refuses (a class with no Rust counterpart) is answered.
            Err(procwire::Error::Decode(e)) => {
                conn.send(&error(&e.to_string()))?;
                continue;
            }
            Err(e) => return Err(e),
        };
        match answer(request) {
            Some(reply) => conn.send(&reply)?,
            None => return conn.send(&"bye".into()),
        }
    }
}

/// Accepts `clients` clients, one after another, and serves each.
pub(crate) fn serve(listener: &Listener, clients: usize) -> procwire::Result<()> {
    for _ in 0..clients {
        let conn = listener.accept_with::<PyValue, PyValue, _>(Pickle::new())?;
        serve_one(&conn)?;
    }
    Ok(())
}

#[allow(dead_code)] // `tests/example_python.rs` includes this file and calls `serve`
fn main() -> procwire::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:6000".into());
    let listener = Listener::builder().authkey(KEY).bind(addr.as_str())?;
    println!("listening on {}", listener.local_addr());
    serve(&listener, usize::MAX)
}
