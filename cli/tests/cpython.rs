//! The `procwire` command against real CPython `Listener`s and `Client`s, with a key:
//! `python3` and, when pyenv has them, CPython 3.12 and 3.13 (the `{sha256}` handshake;
//! 3.11 and older use HMAC-MD5). `PROCWIRE_PYTHONS=/a/python:/b/python` chooses the list.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_procwire");
const KEY: &str = "s3cret key";
const DEADLINE: Duration = Duration::from_secs(60);

/// The interpreters to test against.
fn pythons() -> Vec<String> {
    if let Ok(list) = std::env::var("PROCWIRE_PYTHONS") {
        return list.split(':').map(str::to_string).collect();
    }
    let mut found = vec!["python3".to_string()];
    if let Ok(out) = Command::new("pyenv").arg("root").output() {
        let root = String::from_utf8_lossy(&out.stdout).trim().to_string();
        for v in ["3.12", "3.13"] {
            let Ok(dir) = std::fs::read_dir(format!("{root}/versions")) else {
                continue;
            };
            let mut hits: Vec<_> = dir
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&format!("{v}.")))
                .collect();
            hits.sort();
            if let Some(last) = hits.last() {
                found.push(format!("{root}/versions/{last}/bin/python3"));
            }
        }
    }
    found
}

/// Waits for `child` to exit within [`DEADLINE`] (killing it otherwise) and returns its
/// exit success, stdout and stderr.
fn finish(mut child: Child, stderr_seen: String) -> (bool, String, String) {
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let reader = thread::spawn(move || {
        let (mut o, mut e) = (String::new(), String::new());
        let _ = out.read_to_string(&mut o);
        let _ = err.read_to_string(&mut e);
        (o, e)
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        thread::sleep(Duration::from_millis(20));
    };
    let (o, e) = reader.join().unwrap();
    (status.success(), o, stderr_seen + &e)
}

fn spawn(cmd: &mut Command) -> Child {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

/// Reads lines of `child`'s stdout (or stderr) until one starts with `prefix`; returns
/// the rest of it and what was read.
fn line_starting(from: &mut impl BufRead, prefix: &str) -> (String, String) {
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        if from.read_line(&mut line).unwrap() == 0 {
            panic!("no line starting with {prefix:?} in {seen:?}");
        }
        seen.push_str(&line);
        if let Some(rest) = line.strip_prefix(prefix) {
            return (rest.trim().to_string(), seen);
        }
    }
}

/// A CPython `Listener` on 127.0.0.1 with [`KEY`], and the port it printed. It prints
/// nothing more until a client comes, so its stdout goes back whole.
fn python_listener(py: &impl AsRef<std::ffi::OsStr>) -> (Child, String) {
    let mut python = spawn(Command::new(py).args(["-c", PY_LISTENER, KEY]));
    let mut py_out = BufReader::new(python.stdout.take().unwrap());
    let (port, _) = line_starting(&mut py_out, "port ");
    python.stdout = Some(py_out.into_inner());
    (python, port)
}

const PY_LISTENER: &str = r#"
import sys
from multiprocessing.connection import Listener
key = sys.argv[1].encode()
with Listener(('127.0.0.1', 0), authkey=key) as l:
    print('port', l.address[1], flush=True)
    try:
        conn = l.accept()
    except Exception as e:
        print('refused', type(e).__name__, flush=True)
        sys.exit(0)
    with conn:
        print(repr(conn.recv_bytes()), flush=True)
        print(repr(conn.recv()), flush=True)
        conn.send_bytes(b'\xff\x00')
        conn.send({'k': (1, 2), 's': {3}, 'big': 2**70})
        conn.send_bytes('héllo'.encode())
"#;

#[test]
fn procwire_connect_talks_to_a_cpython_listener_with_a_key() {
    for py in pythons() {
        let (python, port) = python_listener(&py);
        let cli = spawn(Command::new(BIN).args([
            "connect",
            &format!("127.0.0.1:{port}"),
            "--authkey",
            KEY,
            "--timeout",
            "30",
            "send=hello",
            r#"send-py={"x": [1, 2.5, null], "y": "z"}"#,
            "recv=all",
        ]));
        let (ok, out, err) = finish(cli, String::new());
        assert!(ok, "{py}: procwire failed: {err}");
        assert_eq!(
            out.lines().collect::<Vec<_>>(),
            [
                "ff00",
                "{'k': (1, 2), 's': {3}, 'big': 1180591620717411303424}",
                "héllo"
            ],
            "{py}: what procwire printed"
        );
        let (py_ok, py_said, py_err) = finish(python, String::new());
        assert!(py_ok, "{py}: {py_err}");
        assert_eq!(
            py_said.lines().collect::<Vec<_>>(),
            ["b'hello'", "{'x': [1, 2.5, None], 'y': 'z'}"],
            "{py}: what Python received"
        );
        eprintln!("{py}: procwire connect ok");
    }
}

#[test]
fn procwire_connect_with_the_wrong_key_fails_and_says_so() {
    for py in pythons() {
        let (python, port) = python_listener(&py);
        let cli = spawn(Command::new(BIN).args([
            "connect",
            &format!("127.0.0.1:{port}"),
            "--authkey",
            "not the key",
            "recv",
        ]));
        let (ok, out, err) = finish(cli, String::new());
        assert!(!ok, "{py}: a wrong key must fail: {out}");
        assert!(err.contains("authentication failed"), "{py}: {err}");
        let (_, py_said, _) = finish(python, String::new());
        assert!(
            py_said.contains("refused AuthenticationError"),
            "{py}: {py_said}"
        );
    }
}

const PY_CLIENT: &str = r#"
import sys
from multiprocessing.connection import Client
with Client(('127.0.0.1', int(sys.argv[1])), authkey=sys.argv[2].encode()) as conn:
    print(repr(conn.recv_bytes()), flush=True)
    print(repr(conn.recv()), flush=True)
    conn.send_bytes(b'raw bytes')
    conn.send([1, 'two', None, (3.5,)])
    conn.send_bytes(b'\x00\x01\xfe')
"#;

#[test]
fn a_cpython_client_talks_to_procwire_listen_with_a_key() {
    for py in pythons() {
        let mut cli = spawn(Command::new(BIN).args([
            "listen",
            "127.0.0.1:0",
            "--authkey",
            KEY,
            "--timeout",
            "30",
            "send-hex=cafe",
            r#"send-py={"answer": 42}"#,
            "recv=3",
        ]));
        let mut cli_err = BufReader::new(cli.stderr.take().unwrap());
        let (addr, seen) = line_starting(&mut cli_err, "procwire: listening on ");
        let port = addr.rsplit_once(':').unwrap().1.to_string();
        let python = spawn(Command::new(&py).args(["-c", PY_CLIENT, &port, KEY]));
        let (py_ok, py_said, py_err) = finish(python, String::new());
        assert!(py_ok, "{py}: {py_err}");
        assert_eq!(
            py_said.lines().collect::<Vec<_>>(),
            ["b'\\xca\\xfe'", "{'answer': 42}"],
            "{py}: what Python received"
        );
        cli.stderr = Some(cli_err.into_inner());
        let (ok, out, err) = finish(cli, seen);
        assert!(ok, "{py}: procwire failed: {err}");
        assert!(err.contains("procwire: accepted 127.0.0.1:"), "{err}");
        assert_eq!(
            out.lines().collect::<Vec<_>>(),
            ["raw bytes", "[1, 'two', None, (3.5,)]", "0001fe"],
            "{py}: what procwire printed"
        );
        eprintln!("{py}: procwire listen ok");
    }
}

#[test]
fn errors_are_printed_with_their_cause() {
    let cli = spawn(Command::new(BIN).args(["connect", "not an address"]));
    let (ok, _, err) = finish(cli, String::new());
    assert!(!ok);
    assert!(err.contains("neither host:port nor a path"), "{err}");
    let cli = spawn(Command::new(BIN).args(["connect", "/nonexistent/procwire.sock"]));
    let (ok, _, err) = finish(cli, String::new());
    assert!(!ok);
    assert!(
        err.contains("cannot connect to /nonexistent/procwire.sock: No such file"),
        "{err}"
    );
}
