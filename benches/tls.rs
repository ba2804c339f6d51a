//! TLS against plain TCP, every row against an echo peer in its own process (this binary,
//! started again as a listener on loopback).
//!
//! ```text
//! taskset -c 0 cargo bench -p procwire-benches --bench tls --features tls   # headline: one core
//! cargo bench -p procwire-benches --bench tls --features tls                # unpinned
//! ```
//!
//! Rows, all in one run, interleaved round by round (`PROCWIRE_BENCH_ROUNDS`, default 7),
//! medians reported:
//!
//! - `u64 round trip`: a typed `u64` to the echo child and back, over plain TCP and over
//!   TLS (rustls, aws-lc-rs, TLS 1.3 with its default cipher suite).
//! - `16 MiB echo`: `send_bytes` of 16 MiB, received by the child with
//!   `recv_bytes_into` and sent back, received with `recv_bytes_into`.
//!
//! Goals (issue #18): the TLS round trip at most 1.3× plain TCP, TLS bulk at least 0.5×
//! plain TCP throughput, on one core.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use procwire::{Client, Connection, Listener};

const ROLE_ENV: &str = "PROCWIRE_BENCH_TLS_ROLE";
const DIR_ENV: &str = "PROCWIRE_BENCH_TLS_DIR";
const ROUNDS_ENV: &str = "PROCWIRE_BENCH_ROUNDS";
/// Runs one row once and nothing else, for `strace -c -f`: `ping-plain`, `ping-tls`.
const ONLY_ENV: &str = "PROCWIRE_BENCH_ONLY";
const BULK: usize = 16 << 20;
const PINGS: u64 = 20_000;
const BULKS: usize = 20;

fn main() {
    if let Ok(role) = std::env::var(ROLE_ENV) {
        return child(&role, Path::new(&std::env::var(DIR_ENV).unwrap()));
    }
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list`: nothing for criterion's harness protocol
    }
    let rounds: usize = std::env::var(ROUNDS_ENV).map_or(7, |r| r.parse().expect("rounds"));
    let dir = std::env::temp_dir().join(format!("procwire-bench-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    certificates(&dir);
    if let Ok(row) = std::env::var(ONLY_ENV) {
        let role = row.strip_prefix("ping-").expect("ping-plain or ping-tls");
        let (conn, _child) = connect(role, &dir);
        println!("{row}: {:.3} µs, {PINGS} round trips", ping(&conn));
        return;
    }
    let (plain, _p) = connect("plain", &dir);
    let (tls, _t) = connect("tls", &dir);
    let mut rows: [(&str, Vec<f64>); 4] = [
        ("u64 round trip, plain tcp (µs)", Vec::new()),
        ("u64 round trip, tls (µs)", Vec::new()),
        ("16 MiB echo, plain tcp (ms)", Vec::new()),
        ("16 MiB echo, tls (ms)", Vec::new()),
    ];
    let mut ratios: [(&str, Vec<f64>); 2] = [
        ("tls / plain round trip", Vec::new()),
        ("tls / plain bulk throughput", Vec::new()),
    ];
    let data: Vec<u8> = (0..BULK).map(|i| i as u8).collect();
    let mut back = vec![0u8; BULK];
    for round in 0..=rounds {
        let p = ping(&plain);
        let t = ping(&tls);
        let pb = bulk(&plain, &data, &mut back);
        let tb = bulk(&tls, &data, &mut back);
        if round == 0 {
            continue; // warm-up
        }
        for (row, v) in rows.iter_mut().zip([p, t, pb, tb]) {
            row.1.push(v);
        }
        ratios[0].1.push(t / p);
        ratios[1].1.push(pb / tb);
    }
    std::fs::remove_dir_all(&dir).unwrap();
    println!("tls bench: {rounds} rounds (+1 warm-up), medians; peers in their own processes");
    for (name, v) in rows.iter_mut().chain(ratios.iter_mut()) {
        println!("{name:<36} {:>10.3}", median(v));
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Mean round trip of a typed `u64`, in µs.
fn ping(conn: &Connection<u64, u64>) -> f64 {
    let start = Instant::now();
    for i in 0..PINGS {
        conn.send(&i).unwrap();
        assert_eq!(conn.recv().unwrap(), i);
    }
    start.elapsed().as_secs_f64() * 1e6 / PINGS as f64
}

/// Mean time of a 16 MiB echo, in ms.
fn bulk(conn: &Connection<u64, u64>, data: &[u8], back: &mut [u8]) -> f64 {
    let start = Instant::now();
    for _ in 0..BULKS {
        conn.send_bytes(data).unwrap();
        assert_eq!(conn.recv_bytes_into(&mut *back).unwrap(), BULK);
    }
    assert!(back == data);
    start.elapsed().as_secs_f64() * 1e3 / BULKS as f64
}

/// A CA, and a certificate it issued for `localhost`, as PEM files in `dir`.
fn certificates(dir: &Path) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
}

/// This binary again as an echo listener of `role`, and a connection to it.
fn connect(role: &str, dir: &Path) -> (Connection<u64, u64>, KillOnDrop) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(ROLE_ENV, role)
        .env(DIR_ENV, dir)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line.trim().to_string();
    let mut builder = Client::builder();
    if role == "tls" {
        let config = procwire::tls::client_config(dir.join("ca.pem")).unwrap();
        builder = builder.tls(config, "localhost");
    }
    (builder.connect(addr.as_str()).unwrap(), KillOnDrop(child))
}

/// The echo child: one client, every message sent back as it came.
fn child(role: &str, dir: &Path) {
    let mut builder = Listener::builder();
    if role == "tls" {
        let dir = PathBuf::from(dir);
        let config = procwire::tls::server_config(dir.join("cert.pem"), dir.join("key.pem"));
        builder = builder.tls(config.unwrap());
    }
    let listener = builder.bind("127.0.0.1:0").unwrap();
    println!("{}", listener.local_addr());
    let conn: Connection<u64, u64> = listener.accept().unwrap();
    let mut buf = vec![0u8; BULK];
    while let Ok(n) = conn.recv_bytes_into(&mut buf) {
        conn.send_bytes(&buf[..n]).unwrap();
    }
}

/// Ends the echo child with the benchmark.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
