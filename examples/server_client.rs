//! Run: cargo run --example server_client
//!
//! The Listener/Client example of Python's `processing.connection` documentation, in Rust.
//! With no arguments it runs the server on a thread and the client beside it. To run them
//! as two programs (or to talk to the Python version of either side):
//!
//!     cargo run --example server_client -- server 127.0.0.1:6000
//!     cargo run --example server_client -- client 127.0.0.1:6000
//!
//! The server accepts one client authenticated with the key `secret password`, sends it a
//! typed value, the bytes `hello`, and the `i32` array `[42, 1729]`; the client receives the
//! array with `recv_bytes_into` into a 5-element buffer and gets 8 bytes and
//! `[42, 1729, 0, 0, 0]`.

use procwire::{Client, Connection, Listener};

const KEY: &str = "secret password";

/// The typed value: the Python example sends `[2.25, None, 'junk', float]`.
type Value = (f64, Option<i32>, String);

fn server(listener: Listener) -> procwire::Result<()> {
    let conn: Connection<Value, ()> = listener.accept()?;
    println!(
        "server: connection accepted from {:?}",
        listener.last_accepted()
    );
    conn.send(&(2.25, None, "junk".to_string()))?;
    conn.send_bytes(b"hello")?;
    conn.send_bytes(&[42i32, 1729])?;
    conn.close()?;
    listener.close()
}

fn client(addr: &str) -> procwire::Result<()> {
    let conn: Connection<(), Value> = Client::builder().authkey(KEY).connect(addr)?;
    let value = conn.recv()?;
    println!("client: {value:?}");
    let hello = conn.recv_bytes()?;
    println!("client: {:?}", String::from_utf8_lossy(&hello));
    let mut arr = [0i32; 5];
    let n = conn.recv_bytes_into(&mut arr)?;
    println!("client: {n} bytes -> {arr:?}");
    assert_eq!(value, (2.25, None, "junk".to_string()));
    assert_eq!(hello, b"hello");
    assert_eq!((n, arr), (8, [42, 1729, 0, 0, 0]));
    conn.close()
}

fn main() -> procwire::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["server", addr] => server(Listener::builder().authkey(KEY).bind(addr)?),
        ["client", addr] => client(addr),
        [] => {
            let listener = Listener::builder().authkey(KEY).bind("127.0.0.1:0")?;
            let addr = listener.local_addr().to_string();
            println!("server: listening on {addr}");
            let server = std::thread::spawn(move || server(listener));
            client(&addr)?;
            server.join().expect("server thread panicked")
        }
        _ => {
            eprintln!("usage: server_client [server ADDR | client ADDR]");
            std::process::exit(2);
        }
    }
}
