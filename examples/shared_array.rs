//! Run: cargo run --release --example shared_array
//!
//! The parent starts this same program as a worker child and sends it one 256 MiB array
//! of `f64` twice: first through shared memory (the array is built in a sealed memfd, and
//! only its descriptor travels), then as raw bytes with `send_bytes`, which the child
//! receives into its own buffer with `recv_bytes_into`. Each time the child sums every
//! value and sends the sum back; the parent checks it and prints both throughputs.
//! Linux only (memfds).

use std::process::Command;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

const LEN: usize = 256 << 20 >> 3; // 256 MiB of f64

/// What the parent sends; an array follows each of the first two.
#[derive(Debug, Serialize, Deserialize)]
enum Request {
    /// A `SharedArray<f64>` follows.
    Shared,
    /// `len` values follow as raw bytes.
    Bytes {
        len: usize,
    },
    Shutdown,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::args().nth(1).as_deref() == Some("--worker") {
        return worker();
    }
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.arg("--worker");
    let (mut child, conn) = procwire::spawn::<Request, f64>(cmd)?;

    let t = Instant::now();
    let mut array = procwire::SharedArrayMut::<f64>::new(LEN)?;
    for (i, v) in array.iter_mut().enumerate() {
        *v = value(i);
    }
    let array = array.seal()?;
    let built = t.elapsed();
    let expected: f64 = array.iter().sum();

    let t = Instant::now();
    conn.send(&Request::Shared)?;
    conn.send_array(&array)?;
    let sum = conn.recv()?;
    let shared = t.elapsed();
    assert_eq!(sum, expected, "checksum through shared memory");

    let t = Instant::now();
    conn.send(&Request::Bytes { len: LEN })?;
    conn.send_bytes(&array)?;
    let sum = conn.recv()?;
    let copied = t.elapsed();
    assert_eq!(sum, expected, "checksum through send_bytes");

    conn.send(&Request::Shutdown)?;
    let status = child.wait()?;
    assert!(status.success(), "worker failed: {status}");

    let mib = (LEN * 8) as f64 / f64::from(1 << 20);
    let rate = |d: Duration| mib / d.as_secs_f64();
    println!("{LEN} f64 values ({mib:.0} MiB), checksum {expected:e} verified both ways");
    println!("built and sealed in shared memory in {:.1} ms", ms(built));
    println!(
        "shared memory: {:8.1} ms  {:9.0} MiB/s (descriptor passed, child maps and sums)",
        ms(shared),
        rate(shared)
    );
    println!(
        "send_bytes:    {:8.1} ms  {:9.0} MiB/s (bytes copied, child receives and sums)",
        ms(copied),
        rate(copied)
    );
    Ok(())
}

fn value(i: usize) -> f64 {
    (i % 1000) as f64 * 0.5
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn worker() -> Result<(), Box<dyn std::error::Error>> {
    let conn = procwire::from_parent::<f64, Request>()?;
    conn.enable_fds().unwrap();
    conn.set_max_message_size((LEN * 8) as u64);
    // The receive buffer is allocated and written once up front, so that the send_bytes
    // timing does not include first-touch page faults.
    let mut buf = vec![1f64; LEN];
    loop {
        match conn.recv()? {
            Request::Shared => {
                let array = conn.recv_array::<f64>()?;
                conn.send(&array.iter().sum())?;
            }
            Request::Bytes { len } => {
                buf.resize(len, 1.0);
                let n = conn.recv_bytes_into(&mut buf)?;
                conn.send(&buf[..n / 8].iter().sum())?;
            }
            Request::Shutdown => return Ok(()),
        }
    }
}
