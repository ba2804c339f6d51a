//! A TLS server and client on loopback, with a certificate made on the spot.
//!
//! Run with: `cargo run --example tls --features tls`
//!
//! The server's certificate is issued by a private certificate authority (made with rcgen
//! here; in real use, PEM files from your own CA or from `openssl`/`step`/`mkcert`). The
//! client trusts that CA and checks the certificate is for `localhost`; the HMAC key then
//! proves to the server that the client is one of its own, inside the encrypted channel.
//! A second client pins the server's certificate instead of trusting a CA, as two machines
//! of one owner would do with a self-signed certificate.

use std::path::Path;
use std::thread;

use procwire::{Client, Connection, Listener};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
enum Request {
    Add(Vec<f64>),
    Bye,
}

/// Writes a CA certificate and a server certificate for `localhost` (with its key) as
/// PEM files into `dir`.
fn make_certificates(dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "example ca");
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate()?)?;
    let key = KeyPair::generate()?;
    let cert = CertificateParams::new(vec!["localhost".to_string()])?.signed_by(&key, &ca)?;
    std::fs::write(dir.join("ca.pem"), ca.pem())?;
    std::fs::write(dir.join("server.pem"), cert.pem())?;
    std::fs::write(dir.join("server.key"), key.serialize_pem())?;
    Ok(())
}

fn serve(listener: Listener, clients: usize) -> procwire::Result<()> {
    for _ in 0..clients {
        let conn: Connection<f64, Request> = listener.accept()?;
        println!("server: a client from {:?}", listener.last_accepted());
        while let Request::Add(numbers) = conn.recv()? {
            conn.send(&numbers.iter().sum())?;
        }
    }
    Ok(())
}

pub(crate) fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("procwire-tls-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    make_certificates(&dir)?;

    let server_config =
        procwire::tls::server_config(dir.join("server.pem"), dir.join("server.key"))?;
    let listener = Listener::builder()
        .tls(server_config)
        .authkey("example key")
        .bind("127.0.0.1:0")?;
    let addr = listener.local_addr().clone();
    println!("server: listening on {addr} with tls");
    let server = thread::spawn(move || serve(listener, 2));

    // A client that trusts the CA and expects a certificate for `localhost`.
    let trusting = procwire::tls::client_config(dir.join("ca.pem"))?;
    let conn: Connection<Request, f64> = Client::builder()
        .tls(trusting, "localhost")
        .authkey("example key")
        .connect(&addr)?;
    conn.send(&Request::Add(vec![1.5, 2.5, 3.0]))?;
    let sum = conn.recv()?;
    println!("client (CA): 1.5 + 2.5 + 3.0 = {sum}");
    assert_eq!(sum, 7.0);
    conn.send(&Request::Bye)?;

    // A client that pins the server's certificate itself.
    let pinned = procwire::tls::pinned_client_config(dir.join("server.pem"))?;
    let conn: Connection<Request, f64> = Client::builder()
        .tls(pinned, "localhost")
        .authkey("example key")
        .connect(&addr)?;
    let big: Vec<f64> = (1..=1000).map(f64::from).collect();
    conn.send(&Request::Add(big))?;
    let sum = conn.recv()?;
    println!("client (pinned): 1 + 2 + ... + 1000 = {sum}");
    assert_eq!(sum, 500_500.0);
    conn.send(&Request::Bye)?;

    server.join().expect("server thread")?;
    std::fs::remove_dir_all(&dir)?;
    println!("done");
    Ok(())
}
