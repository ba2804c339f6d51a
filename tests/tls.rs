//! TLS over TCP (feature `tls`): configs, authentication choices, bad input, and the
//! message APIs over it. The contract suite (`tests/transports.rs`) runs over TLS too.
#![cfg(feature = "tls")]

mod util;

use std::thread;
use std::time::{Duration, Instant};

use procwire::{Client, Connection, Error, Listener};
use util::bounded;
use util::tls::{client, pki, server};

const WAIT: Duration = Duration::from_secs(30);

type Conn = Connection<u64, u64>;

/// A listener with `server` (and `key`), and a client of it with `client` for `name`.
fn connect(
    server: std::sync::Arc<procwire::tls::rustls::ServerConfig>,
    client: std::sync::Arc<procwire::tls::rustls::ClientConfig>,
    name: &str,
    keys: (Option<&str>, Option<&str>),
) -> (procwire::Result<Conn>, procwire::Result<Conn>) {
    let mut lb = Listener::builder()
        .tls(server)
        .handshake_timeout(Duration::from_secs(5));
    if let Some(k) = keys.0 {
        lb = lb.authkey(k);
    }
    let listener = lb.bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().clone();
    let accepting = thread::spawn(move || listener.accept_timeout::<u64, u64>(WAIT));
    let mut cb = Client::builder().tls(client, name);
    if let Some(k) = keys.1 {
        cb = cb.authkey(k);
    }
    let c = cb.connect(&addr);
    (c, accepting.join().unwrap())
}

#[test]
fn typed_round_trip_over_tls_with_and_without_a_key() {
    bounded(|| {
        for keys in [(None, None), (Some("k"), Some("k"))] {
            let (c, s) = connect(server(), client(), "localhost", keys);
            let (c, s) = (c.unwrap(), s.unwrap());
            for i in 0..100u64 {
                c.send(&i).unwrap();
                let n = s.recv_timeout(WAIT).unwrap();
                s.send(&(n * 2)).unwrap();
                assert_eq!(c.recv_timeout(WAIT).unwrap(), i * 2);
            }
        }
    });
}
