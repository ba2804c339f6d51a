//! Run: cargo bench -p procwire-benches --bench pickle --features pickle
//!
//! procwire's pickle reader and writer against CPython's own `pickle.loads` / `dumps`,
//! on the same bytes, in one run: a list of 1,000,000 ints (`list(range(10**6))`) and a
//! 10 MB `bytes` object, each as Python 3's `send()` pickles them (protocol 4).
//!
//! Rust decodes each pickle into a `PyValue` through the `Pickle` codec (the opcode
//! scan, the reader, and the `Deserialize` a `recv()` runs) and re-encodes it with
//! protocol 4; and, for comparison, into the typed `Vec<i64>` / `ByteBuf`. A `python3`
//! subprocess (`PROCWIRE_BENCH_PYTHON` picks another) times `pickle.loads` and
//! `pickle.dumps(obj, 4)` of the same bytes. Each side runs every operation 15 times
//! (after a warm-up) and reports the median; the ratio is CPython's median over
//! procwire's (above 1: procwire is faster).

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_bytes::ByteBuf;

use procwire::codec::{Decode, Encode, Pickle, PickleProtocol, PyValue};

const RUNS: usize = 15;

/// Makes the datasets and times CPython on them; prints one line per dataset:
/// `name loads_seconds dumps_seconds`, after writing each pickle to a file.
const PYTHON: &str = r#"
import pickle, sys, time
runs, out = int(sys.argv[1]), sys.argv[2]
data = {"ints": list(range(10**6)), "bytes": bytes(range(256)) * (10 * 1024 * 1024 // 256)}
for name, obj in data.items():
    p = pickle.dumps(obj, 4)
    with open("%s.%s" % (out, name), "wb") as f:
        f.write(p)
    loads, dumps = [], []
    for _ in range(runs + 1):
        t = time.perf_counter(); o = pickle.loads(p); loads.append(time.perf_counter() - t)
        t = time.perf_counter(); pickle.dumps(o, 4); dumps.append(time.perf_counter() - t)
    loads, dumps = sorted(loads[1:]), sorted(dumps[1:])
    print(name, loads[len(loads) // 2], dumps[len(dumps) // 2], sys.version.split()[0])
    sys.stdout.flush()
"#;

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

/// The median of `RUNS` timed calls of `f`, after one untimed.
fn time<R>(mut f: impl FnMut() -> R) -> Duration {
    drop(f());
    median(
        (0..RUNS)
            .map(|_| {
                let start = Instant::now();
                let r = f();
                let t = start.elapsed();
                drop(r);
                t
            })
            .collect(),
    )
}

struct Cpython {
    name: String,
    loads: Duration,
    dumps: Duration,
    version: String,
}

fn cpython(prefix: &str) -> Vec<Cpython> {
    let python = std::env::var("PROCWIRE_BENCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let mut child = Command::new(&python)
        .args(["-", &RUNS.to_string(), prefix])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(PYTHON.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{python} failed");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let secs = |s: &str| Duration::from_secs_f64(s.parse().unwrap());
            Cpython {
                name: f[0].into(),
                loads: secs(f[1]),
                dumps: secs(f[2]),
                version: f[3].into(),
            }
        })
        .collect()
}

fn ms(d: Duration) -> String {
    format!("{:8.2} ms", d.as_secs_f64() * 1e3)
}

fn row(what: &str, ours: Duration, theirs: Duration) {
    let ratio = theirs.as_secs_f64() / ours.as_secs_f64();
    println!("{what:<34} {} {} {ratio:7.2}x", ms(ours), ms(theirs));
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is ignored.
    let prefix = std::env::temp_dir().join(format!("procwire-pickle-bench-{}", std::process::id()));
    let prefix = prefix.to_string_lossy().into_owned();
    let results = cpython(&prefix);
    let mut codec = Pickle::new();
    let mut writer = Pickle::new().protocol(PickleProtocol::V4);
    println!(
        "median of {RUNS} runs; CPython {}; ratio = CPython / procwire",
        results.first().map_or("?", |r| r.version.as_str())
    );
    println!(
        "{:<34} {:>11} {:>11} {:>8}",
        "", "procwire", "CPython", "ratio"
    );
    for r in &results {
        let path = format!("{prefix}.{}", r.name);
        let bytes = std::fs::read(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        let value: PyValue = codec.decode(&bytes).unwrap();
        let mut out = Vec::with_capacity(bytes.len());
        let decode = time(|| Decode::<PyValue>::decode(&mut codec, &bytes).unwrap());
        let encode = time(|| {
            out.clear();
            writer.encode(&value, &mut out).unwrap();
        });
        println!("{} ({} bytes pickled):", r.name, bytes.len());
        row("  decode into PyValue / loads", decode, r.loads);
        row("  encode PyValue / dumps", encode, r.dumps);
        row("  both", decode + encode, r.loads + r.dumps);
        if r.name == "ints" {
            let typed: Vec<i64> = codec.decode(&bytes).unwrap();
            let d = time(|| Decode::<Vec<i64>>::decode(&mut codec, &bytes).unwrap());
            let e = time(|| {
                out.clear();
                writer.encode(&typed, &mut out).unwrap();
            });
            row("  typed Vec<i64>: decode / loads", d, r.loads);
            row("  typed Vec<i64>: encode / dumps", e, r.dumps);
        } else {
            let typed: ByteBuf = codec.decode(&bytes).unwrap();
            let d = time(|| Decode::<ByteBuf>::decode(&mut codec, &bytes).unwrap());
            let e = time(|| {
                out.clear();
                writer.encode(&typed, &mut out).unwrap();
            });
            row("  typed ByteBuf: decode / loads", d, r.loads);
            row("  typed ByteBuf: encode / dumps", e, r.dumps);
        }
    }
}
