//! Interop test harness: find CPython interpreters and run Python peers with a bounded wait.
//!
//! Use it from a test file with `mod pyinterop;`. [`pythons`] lists the interpreters to
//! test against: `python3` from `PATH` plus every `$(pyenv root)/versions/3.*/bin/python3`,
//! one per version, oldest first. The environment variable `PROCWIRE_PYTHONS` (paths
//! separated by `,` or `:`) replaces that list. Finding none is a test failure, never a
//! silent skip.
//!
//! [`spawn_script`] starts a script of `tests/python/` with a procwire connection to it
//! (the script finds the descriptor in `PROCWIRE_FD`), and [`wait_bounded`] waits for it,
//! killing it when it overstays: CPython's reads have no timeout, so a test that went wrong
//! must not hang on its child.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

pub(crate) mod everything;
pub(crate) mod matrix;

use std::collections::HashSet;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// The environment variable that replaces the interpreter search.
pub(crate) const PYTHONS_ENV: &str = "PROCWIRE_PYTHONS";

/// How long a Python peer may run before it is killed.
pub(crate) const CHILD_LIMIT: Duration = Duration::from_secs(30);

/// One CPython interpreter found for the interop tests.
#[derive(Debug, Clone)]
pub(crate) struct Python {
    /// The interpreter to run.
    pub(crate) path: PathBuf,
    /// Its `sys.version_info[:3]`.
    pub(crate) version: (u32, u32, u32),
}

impl Python {
    /// Whether this interpreter authenticates with the legacy HMAC-MD5 protocol
    /// (CPython 3.11 and earlier).
    pub(crate) fn legacy_auth(&self) -> bool {
        self.version < (3, 12, 0)
    }

    /// A command that runs this interpreter.
    pub(crate) fn command(&self) -> Command {
        Command::new(&self.path)
    }
}

impl fmt::Display for Python {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (a, b, c) = self.version;
        write!(f, "Python {a}.{b}.{c} ({})", self.path.display())
    }
}

/// The Python 3 interpreters to test against, oldest first, one per version.
///
/// # Panics
///
/// When none is found (an interop test that ran against nothing must fail), or when an
/// interpreter named in `PROCWIRE_PYTHONS` cannot be run.
pub(crate) fn pythons() -> Vec<Python> {
    let found: Vec<Python> = find(false)
        .into_iter()
        .filter(|py| py.version.0 == 3)
        .collect();
    assert!(!found.is_empty(), "no Python 3 interpreter found");
    found
}

/// [`pythons`], and every Python 2 found too (pyenv's `versions/2.*`, or those named in
/// `PROCWIRE_PYTHONS`).
///
/// # Panics
///
/// As [`pythons`].
pub(crate) fn pythons_with_2() -> Vec<Python> {
    find(true)
}

fn find(with_2: bool) -> Vec<Python> {
    let explicit = std::env::var(PYTHONS_ENV).is_ok_and(|list| !list.trim().is_empty());
    let (candidates, origin) = match std::env::var(PYTHONS_ENV) {
        Ok(list) if !list.trim().is_empty() => (
            list.split([',', ':'])
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
                .collect(),
            format!("${PYTHONS_ENV}"),
        ),
        _ => (default_candidates(with_2), "python3 and pyenv".to_string()),
    };
    let mut seen = HashSet::new();
    let mut found: Vec<Python> = candidates
        .into_iter()
        .filter_map(|path| match version_of(&path) {
            Ok(version) => Some(Python { path, version }),
            Err(why) if explicit => panic!("{PYTHONS_ENV} names {}: {why}", path.display()),
            Err(why) => {
                eprintln!("pyinterop: skipping {}: {why}", path.display());
                None
            }
        })
        .filter(|py| seen.insert(py.version))
        .collect();
    found.sort_by_key(|py| py.version);
    assert!(
        !found.is_empty(),
        "no Python interpreter found (searched {origin}); install python3, or set \
         {PYTHONS_ENV} to a comma-separated list of interpreters"
    );
    found
}

/// `python3` (from `PATH`) and every pyenv `versions/3.*/bin/python3`; with `with_2`,
/// every `versions/2.*/bin/python2` too.
fn default_candidates(with_2: bool) -> Vec<PathBuf> {
    let mut out = vec![PathBuf::from("python3")];
    if let Some(root) = pyenv_root() {
        let mut versions: Vec<PathBuf> = std::fs::read_dir(root.join("versions"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let bin = if name.starts_with("3.") {
                    "python3"
                } else if with_2 && name.starts_with("2.") {
                    "python2"
                } else {
                    return None;
                };
                Some(e.path().join("bin").join(bin))
            })
            .filter(|p| p.is_file())
            .collect();
        versions.sort();
        out.extend(versions);
    }
    out
}

/// `pyenv root`, else `$PYENV_ROOT`, else `~/.pyenv`, if it exists.
fn pyenv_root() -> Option<PathBuf> {
    let from_cmd = Command::new("pyenv")
        .arg("root")
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let from_env = std::env::var_os("PYENV_ROOT").map(PathBuf::from);
    let from_home = std::env::var_os("HOME").map(|h| Path::new(&h).join(".pyenv"));
    [from_cmd, from_env, from_home]
        .into_iter()
        .flatten()
        .find(|p| p.join("versions").is_dir())
}

/// Runs `python -c` to learn its version, within a bounded time.
fn version_of(python: &Path) -> Result<(u32, u32, u32), String> {
    let child = Command::new(python)
        .args(["-c", "import sys; print('%d %d %d' % sys.version_info[:3])"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run it: {e}"))?;
    let out = wait_bounded(child, Duration::from_secs(30));
    if !out.status.is_some_and(|s| s.success()) {
        return Err(format!("version query failed: {out}"));
    }
    let nums: Vec<u32> = out
        .stdout
        .split_whitespace()
        .filter_map(|n| n.parse().ok())
        .collect();
    match nums[..] {
        [a, b, c] if a == 2 || a == 3 => Ok((a, b, c)),
        _ => Err(format!("not a CPython 2 or 3: {:?}", out.stdout.trim())),
    }
}

/// The path of a script in `tests/python/`.
pub(crate) fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("python")
        .join(name)
}

/// Starts `python script args…` with a byte connection to it (`PROCWIRE_FD` in its
/// environment), its stdout and stderr captured and stdin closed.
pub(crate) fn spawn_script(
    python: &Python,
    script_name: &str,
    args: &[&str],
) -> (Child, procwire::Connection<(), ()>) {
    spawn_script_with(python, script_name, args, procwire::Postcard)
}

/// [`spawn_script`] with a typed connection through `codec`.
pub(crate) fn spawn_script_with<S, R, C: Clone>(
    python: &Python,
    script_name: &str,
    args: &[&str],
    codec: C,
) -> (Child, procwire::Connection<S, R, C>) {
    let mut cmd = python.command();
    cmd.arg(script(script_name))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    procwire::spawn_with::<S, R, C>(cmd, codec)
        .map(|(child, conn)| (child.into(), conn))
        .unwrap_or_else(|e| panic!("cannot start {python} {script_name}: {e}"))
}

/// What a child did, as far as [`wait_bounded`] saw.
#[derive(Debug)]
pub(crate) struct Outcome {
    /// Its exit status; `None` when it was killed for overstaying.
    pub(crate) status: Option<ExitStatus>,
    /// Everything it wrote to stdout (lossily decoded).
    pub(crate) stdout: String,
    /// Everything it wrote to stderr (lossily decoded).
    pub(crate) stderr: String,
}

impl Outcome {
    /// Its exit code, if it exited normally in time.
    pub(crate) fn code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            Some(s) => write!(f, "{s}")?,
            None => f.write_str("killed after overstaying its time limit")?,
        }
        write!(
            f,
            "; stdout: {:?}; stderr: {:?}",
            self.stdout.trim(),
            self.stderr.trim()
        )
    }
}

/// Waits for `child` at most `limit`, then kills it; collects what it wrote.
///
/// The output is read on threads as it comes, so a chatty child cannot block on a full
/// pipe; a child that outlives `limit` is killed (and reaped), and its status is `None`.
pub(crate) fn wait_bounded(mut child: Child, limit: Duration) -> Outcome {
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if start.elapsed() < limit => thread::sleep(Duration::from_millis(5)),
            Ok(None) | Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    Outcome {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

/// Reads a pipe to its end on a thread.
fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}
