//! Run: cargo run --release --example parent_child
//!
//! The parent starts this same program as a worker child with a typed connection already
//! open to it, sends it typed jobs and gets typed results back, then sends one array of
//! 1,000,000 `f64` values as raw bytes; the child receives it straight into its own buffer
//! with `recv_bytes_into`, transforms it and sends it back; the parent checks every value.

use std::process::Command;
use std::time::Instant;

use serde::{Deserialize, Serialize};

const SAMPLES: usize = 1_000_000;

/// What the parent sends.
#[derive(Debug, Serialize, Deserialize)]
enum Request {
    /// Sum `count` terms of the sequence `start, start + step, ...`.
    Job {
        id: u32,
        start: f64,
        step: f64,
        count: u32,
    },
    /// The next message is an array of `len` `f64` values, to be scaled by `factor`.
    Array { len: usize, factor: f64 },
    /// No more work.
    Shutdown,
}

/// What the child sends back (the scaled array itself follows `Scaled` as raw bytes).
#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum Response {
    Sum { id: u32, sum: f64, pid: u32 },
    Scaled { len: usize },
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::args().nth(1).as_deref() == Some("--worker") {
        return worker();
    }
    let started = Instant::now();
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.arg("--worker");
    let (mut child, conn) = procwire::spawn::<Request, Response>(cmd)?;

    // Typed jobs and typed results.
    let jobs: Vec<(u32, f64, f64, u32)> =
        (0..8).map(|i| (i, i as f64, 0.5, 1000 * (i + 1))).collect();
    for &(id, start, step, count) in &jobs {
        conn.send(&Request::Job {
            id,
            start,
            step,
            count,
        })?;
    }
    let mut child_pid = 0;
    for &(id, start, step, count) in &jobs {
        let Response::Sum { id: got, sum, pid } = conn.recv()? else {
            return Err("expected a sum".into());
        };
        let n = f64::from(count);
        let expected = n * start + step * n * (n - 1.0) / 2.0;
        assert_eq!(got, id);
        assert!((sum - expected).abs() <= 1e-9 * expected.abs().max(1.0));
        child_pid = pid;
    }

    // One large array through raw bytes, both ways.
    let samples: Vec<f64> = (0..SAMPLES).map(|i| i as f64 * 0.25).collect();
    let mut back = vec![0f64; SAMPLES];
    let t = Instant::now();
    conn.send(&Request::Array {
        len: SAMPLES,
        factor: 2.0,
    })?;
    conn.send_bytes(&samples)?;
    assert_eq!(conn.recv()?, Response::Scaled { len: SAMPLES });
    let n = conn.recv_bytes_into(&mut back)?;
    let round_trip = t.elapsed();
    assert_eq!(n, SAMPLES * 8);
    assert!(samples.iter().zip(&back).all(|(a, b)| *b == a * 2.0));

    conn.send(&Request::Shutdown)?;
    let status = child.wait()?;
    assert!(status.success(), "worker failed: {status}");

    let mib = (2 * SAMPLES * 8) as f64 / (1 << 20) as f64;
    println!("parent {} <-> worker {child_pid}", std::process::id());
    println!("{} typed jobs answered and checked", jobs.len());
    println!(
        "{SAMPLES} f64 values sent, scaled and returned in {:.2} ms ({:.0} MiB/s both ways)",
        round_trip.as_secs_f64() * 1e3,
        mib / round_trip.as_secs_f64()
    );
    println!(
        "total {:.1} ms, worker exited with {status}",
        started.elapsed().as_secs_f64() * 1e3
    );
    Ok(())
}

fn worker() -> Result<(), Box<dyn std::error::Error>> {
    let conn = procwire::from_parent::<Response, Request>()?;
    let mut buf: Vec<f64> = Vec::new();
    loop {
        match conn.recv()? {
            Request::Job {
                id,
                start,
                step,
                count,
            } => {
                let sum = (0..count).map(|k| start + step * f64::from(k)).sum();
                conn.send(&Response::Sum {
                    id,
                    sum,
                    pid: std::process::id(),
                })?;
            }
            Request::Array { len, factor } => {
                buf.resize(len, 0.0);
                let n = conn.recv_bytes_into(&mut buf)?;
                let values = &mut buf[..n / 8];
                values.iter_mut().for_each(|v| *v *= factor);
                conn.send(&Response::Scaled { len: values.len() })?;
                conn.send_bytes(values)?;
            }
            Request::Shutdown => return Ok(()),
        }
    }
}
