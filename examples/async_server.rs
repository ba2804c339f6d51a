//! Run: cargo run --example async_server --features tokio [-- PYTHON]
//! (with `--features tokio,legacy-md5` when the Python is 3.11 or older)
//!
//! One current-thread tokio runtime serves, on one keyed `Listener` (a Unix socket in a
//! temporary directory), typed Rust clients and a Python
//! `multiprocessing.connection.Client`, each connection in its own `tokio::spawn`ed task.
//!
//! - The Rust clients are tasks on the same runtime, each with an async `Client`: they send
//!   `Job`s and get `Reply`s (postcard).
//! - The Python client is `PYTHON` (default `python3`) running `PYTHON_CLIENT` below: it
//!   sends text with `send_bytes` (`b"sum 1 2 3.5"`) and reads the answer with
//!   `recv_bytes` (`b"6.5"`). When the interpreter is missing, or authenticates with
//!   HMAC-MD5 (3.11 and older) and `legacy-md5` is off, that part is skipped with the
//!   reason printed.
//!
//! The first message of every connection, raw bytes, says what the client speaks:
//! `typed NAME` or `bytes NAME`. The server then reads that connection as typed values or
//! as bytes: one listener, one connection type, two conversations.
//! `tests/example_async_server.rs` runs this and checks what it prints.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use procwire::tokio::{Client, Connection, Listener};
use procwire::Error;

/// The key every client must know.
pub(crate) const KEY: &str = "async server key";
/// How many typed Rust clients connect.
pub(crate) const RUST_CLIENTS: u32 = 4;
/// How many jobs each of them sends.
pub(crate) const JOBS_PER_CLIENT: u32 = 3;
/// How long anything may take before the example gives up.
const LIMIT: Duration = Duration::from_secs(30);

/// The Python client: `python3 -c PYTHON_CLIENT SOCKET_PATH KEY`.
const PYTHON_CLIENT: &str = r#"
import sys
from multiprocessing.connection import Client

path, key = sys.argv[1], sys.argv[2].encode()
name = "python-%d.%d.%d" % sys.version_info[:3]
with Client(path, family="AF_UNIX", authkey=key) as conn:
    conn.send_bytes(b"bytes " + name.encode())
    for values in ([1, 2, 3.5], [10, -4], []):
        conn.send_bytes(("sum " + " ".join(map(repr, values))).encode())
        answer = conn.recv_bytes().decode()
        if float(answer) != float(sum(values)):
            raise SystemExit("wrong sum of %r: %s" % (values, answer))
        print("%s: sum %r = %s" % (name, values, answer), flush=True)
print("%s: done" % name, flush=True)
"#;

/// A job for the server: add `values` up.
#[derive(Debug, Serialize, Deserialize)]
struct Job {
    id: u32,
    values: Vec<f64>,
}

/// The server's answer to a `Job`.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Reply {
    id: u32,
    sum: f64,
}

/// The server's side of every connection: it sends `Reply`s and receives `Job`s (or, for
/// a bytes client, raw messages on the same connection).
type ServerConn = Connection<Reply, Job>;

/// What the example printed, line by line, and what it counted.
#[derive(Debug, Default)]
pub(crate) struct Report {
    /// Every line printed, in order.
    pub(crate) lines: Vec<String>,
    /// Typed jobs the server answered.
    pub(crate) typed_jobs: u32,
    /// Raw messages from bytes clients the server answered.
    pub(crate) bytes_messages: u32,
    /// Connections served, each in its own task.
    pub(crate) connections: u32,
    /// Whether the Python client ran and succeeded.
    pub(crate) python_ran: bool,
}

/// Prints lines and keeps them for the [`Report`].
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    fn say(&self, line: impl Into<String>) {
        let line = line.into();
        println!("{line}");
        self.0.lock().unwrap().push(line);
    }

    fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

/// What one connection's task did.
enum Served {
    Typed { jobs: u32 },
    Bytes { name: String, messages: u32 },
}

/// Serves one connection until its client closes it.
async fn serve(mut conn: ServerConn, log: Log) -> procwire::Result<Served> {
    let hello = String::from_utf8_lossy(&conn.recv_bytes().await?).into_owned();
    match hello.split_once(' ') {
        Some(("typed", name)) => {
            let mut jobs = 0;
            loop {
                match conn.recv().await {
                    Ok(Job { id, values }) => {
                        let sum = values.iter().sum();
                        conn.send(&Reply { id, sum }).await?;
                        jobs += 1;
                    }
                    Err(Error::Disconnected) => break,
                    Err(e) => return Err(e),
                }
            }
            log.say(format!("server: {name} (typed) answered {jobs} jobs"));
            Ok(Served::Typed { jobs })
        }
        Some(("bytes", name)) => {
            let mut messages = 0;
            loop {
                let request = match conn.recv_bytes().await {
                    Ok(request) => String::from_utf8_lossy(&request).into_owned(),
                    Err(Error::Disconnected) => break,
                    Err(e) => return Err(e),
                };
                let answer = match request.split_whitespace().collect::<Vec<_>>()[..] {
                    // From 0.0: `Sum` of no floats is -0.0, which prints as "-0".
                    ["sum", ref values @ ..] => values
                        .iter()
                        .try_fold(0.0, |sum, v| v.parse::<f64>().map(|v| sum + v))
                        .map_or_else(|e| format!("error: {e}"), |sum| sum.to_string()),
                    _ => format!("error: unknown request {request:?}"),
                };
                conn.send_bytes(answer.as_bytes()).await?;
                messages += 1;
            }
            log.say(format!(
                "server: {name} (bytes) answered {messages} messages"
            ));
            Ok(Served::Bytes {
                name: name.to_string(),
                messages,
            })
        }
        _ => Err(Error::Protocol(format!("unknown greeting {hello:?}"))),
    }
}

/// One typed Rust client: connects with the key, sends its jobs, checks every reply.
async fn rust_client(addr: procwire::Address, n: u32) -> procwire::Result<u32> {
    let mut conn = Client::builder()
        .authkey(KEY)
        .connect::<Job, Reply, _>(&addr)
        .await?;
    conn.send_bytes(format!("typed rust-client-{n}").as_bytes())
        .await?;
    for j in 0..JOBS_PER_CLIENT {
        let id = n * 100 + j;
        let values: Vec<f64> = (0..=n + j).map(f64::from).collect();
        let want = values.iter().sum();
        conn.send(&Job { id, values }).await?;
        let reply = conn.recv().await?;
        if reply != (Reply { id, sum: want }) {
            return Err(Error::Protocol(format!("job {id}: got {reply:?}")));
        }
    }
    Ok(JOBS_PER_CLIENT)
}

/// The Python interpreter's version, or why it cannot run the client.
fn python_version(python: &str) -> Result<(u32, u32, u32), String> {
    let out = Command::new(python)
        .args(["-c", "import sys; print('%d %d %d' % sys.version_info[:3])"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("{python} cannot be run: {e}"))?;
    let nums: Vec<u32> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|n| n.parse().ok())
        .collect();
    match nums[..] {
        [3, b, c] if out.status.success() => Ok((3, b, c)),
        _ => Err(format!("{python} is not a Python 3")),
    }
}

/// Starts the Python client when it can authenticate, else says why not.
fn start_python(python: &str, path: &Path, log: &Log) -> Option<std::process::Child> {
    let version = match python_version(python) {
        Ok(v) => v,
        Err(why) => {
            log.say(format!("skipping the Python client: {why}"));
            return None;
        }
    };
    if version < (3, 12, 0) && !cfg!(feature = "legacy-md5") {
        log.say(format!(
            "skipping the Python client: {python} is {}.{}.{}, which authenticates with \
             HMAC-MD5; run with --features tokio,legacy-md5",
            version.0, version.1, version.2
        ));
        return None;
    }
    let child = Command::new(python)
        .args(["-c", PYTHON_CLIENT])
        .arg(path)
        .arg(KEY)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    match child {
        Ok(child) => {
            let (a, b, c) = version;
            log.say(format!("started the Python client ({python}, {a}.{b}.{c})"));
            Some(child)
        }
        Err(e) => {
            log.say(format!(
                "skipping the Python client: {python} cannot be run: {e}"
            ));
            None
        }
    }
}

/// Waits for the Python client without blocking the runtime; kills it if it overstays.
/// Returns whether it succeeded.
async fn wait_python(mut child: std::process::Child, log: Log) -> bool {
    use std::io::Read;
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if start.elapsed() < LIMIT => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    // It has exited: what it wrote (a few lines) is in the pipes.
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut pipe) = child.stdout.take() {
        let _ = pipe.read_to_string(&mut out);
    }
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut err);
    }
    for line in out.lines() {
        log.say(format!("python says: {line}"));
    }
    for line in err.lines() {
        log.say(format!("python stderr: {line}"));
    }
    match status {
        Some(s) if s.success() => true,
        Some(s) => {
            log.say(format!("the Python client failed: {s}"));
            false
        }
        None => {
            log.say("the Python client overstayed and was killed");
            false
        }
    }
}

/// A temporary directory for the socket, removed at the end.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> std::io::Result<TempDir> {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("procwire-async-server-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the whole example on one current-thread runtime with `python` as the Python
/// client's interpreter.
pub(crate) fn run(python: &str) -> procwire::Result<Report> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run_async(python))
}

async fn run_async(python: &str) -> procwire::Result<Report> {
    let log = Log::default();
    let dir = TempDir::new()?;
    let path = dir.0.join("server.sock");
    let rejections = Log::default();
    let rejected = rejections.clone();
    let blocking = procwire::Listener::builder()
        .authkey(KEY)
        .on_rejected(move |_, e| rejected.say(format!("server: refused a client: {e}")))
        .bind(path.as_path())?;
    let mut listener = Listener::from_blocking(blocking)?;
    let addr = listener.local_addr().clone();
    log.say(format!("server: listening on {addr} with a key"));

    let python = start_python(python, &path, &log).map(|child| {
        let log = log.clone();
        tokio::spawn(wait_python(child, log))
    });
    let clients: Vec<_> = (0..RUST_CLIENTS)
        .map(|n| tokio::spawn(rust_client(addr.clone(), n)))
        .collect();

    let expected = RUST_CLIENTS + u32::from(python.is_some());
    let mut tasks = Vec::new();
    for _ in 0..expected {
        let conn = tokio::time::timeout(LIMIT, listener.accept::<Reply, Job>())
            .await
            .map_err(|_| Error::Timeout)??;
        tasks.push(tokio::spawn(serve(conn, log.clone())));
    }
    let mut report = Report {
        connections: expected,
        ..Report::default()
    };
    for task in tasks {
        match task.await.expect("a serving task panicked")? {
            Served::Typed { jobs, .. } => report.typed_jobs += jobs,
            Served::Bytes { messages, name } => {
                report.bytes_messages += messages;
                log.say(format!("server: the bytes client was {name}"));
            }
        }
    }
    for client in clients {
        client.await.expect("a client task panicked")?;
    }
    if let Some(python) = python {
        report.python_ran = python.await.expect("the Python task panicked");
        if !report.python_ran {
            return Err(Error::Protocol("the Python client failed".into()));
        }
    }
    for line in rejections.lines() {
        log.say(line);
    }
    let python = if report.python_ran {
        format!("1 Python client ({} messages)", report.bytes_messages)
    } else {
        "no Python client".to_string()
    };
    log.say(format!(
        "served {} connections on one thread: {RUST_CLIENTS} typed Rust clients ({} jobs), \
         {python}",
        report.connections, report.typed_jobs,
    ));
    report.lines = log.lines();
    Ok(report)
}

#[allow(dead_code)] // `tests/example_async_server.rs` includes this file and calls `run`
fn main() -> procwire::Result<()> {
    let python = std::env::args().nth(1).unwrap_or_else(|| "python3".into());
    run(&python)?;
    Ok(())
}
