//! The async Listener and Client against real CPython `multiprocessing.connection`, every
//! interpreter found (see `pyinterop`): the async twin of `tests/interop_listener.rs`.
//!
//! On tokio (a current-thread runtime per case): an async Listener serving a Python
//! `Client`, and an async Client connecting to a Python `Listener`, over TCP, a Unix path
//! and an abstract socket, with no key, the right key and a wrong key. A wrong key is
//! `Error::AuthenticationFailed` on the Rust side (through `on_rejected` for the
//! listener, which then serves the next good client); a keyed client facing CPython's
//! keyless listener, which never speaks first (gh-123736), is `Error::Timeout` within its
//! handshake timeout; a keyless CPython client facing the keyed listener is refused.
//! Typed values go both ways with the `Pickle` codec
//! (`tests/python/pickle_peer.py`). On async-io (`async_io::block_on`), both roles over a
//! Unix path and TCP with every key mode.
//!
//! The bytes exchange is `tests/python/mp_peer.py`'s echo: sizes around CPython's 16 KiB
//! buffer and 1 MiB, the 1 MiB echo read by receives polled once and dropped, over and
//! over (each gives back what it read; each test asserts that some were dropped
//! mid-frame), then an `array('i')` into an `i32` slice. Every wait is bounded: each
//! future by a timer, each Python peer by `wait_bounded`, which kills it (and so unblocks
//! the Rust side) when it overstays.
#![cfg(feature = "tokio")]

mod pyinterop;

use std::future::Future;
use std::pin::pin;
use std::sync::{mpsc, Mutex};
use std::task::Poll;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use futures_util::future::{select, Either};

use procwire::aio::{self, Runtime};
use procwire::{Address, Error, Postcard};
use pyinterop::matrix::{
    abstract_name, check_outcome, for_python, from_python, pattern, python_key, should_succeed,
    Dir, Family, Key, FAMILIES, KEY, KEYS,
};
use pyinterop::{pythons, spawn_script, wait_bounded, Outcome, Python, CHILD_LIMIT};

const WAIT: Duration = Duration::from_secs(20);
/// At most how many 1 MiB echoes an exchange runs to see a receive dropped part-way.
const BIG_ROUNDS: usize = 100;
/// How often the accept loop looks at the listener's rejections.
const TICK: Duration = Duration::from_millis(50);

/// A runtime these tests drive, with what they need of it besides procwire's types.
trait Driver: Runtime {
    const NAME: &'static str;
    fn block_on<F: Future>(fut: F) -> F::Output;
    fn timer(duration: Duration) -> impl Future<Output = ()>;
}

impl Driver for aio::Tokio {
    const NAME: &'static str = "tokio";

    fn block_on<F: Future>(fut: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(fut)
    }

    fn timer(duration: Duration) -> impl Future<Output = ()> {
        tokio::time::sleep(duration)
    }
}

#[cfg(feature = "async-io")]
impl Driver for aio::AsyncIo {
    const NAME: &'static str = "async-io";

    fn block_on<F: Future>(fut: F) -> F::Output {
        async_io::block_on(fut)
    }

    async fn timer(duration: Duration) {
        async_io::Timer::after(duration).await;
    }
}

/// `fut`, or `Error::Timeout` when `limit` passes first (and `fut` is dropped).
async fn within<D: Driver, T>(
    limit: Duration,
    fut: impl Future<Output = procwire::Result<T>>,
) -> procwire::Result<T> {
    match select(pin!(fut), pin!(D::timer(limit))).await {
        Either::Left((out, _)) => out,
        Either::Right(((), _)) => Err(Error::Timeout),
    }
}

type Bytes<D> = aio::Connection<(), (), Postcard, D>;

/// Gives way once to the runtime (and so to its reactor).
async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await;
}

/// Receives the next message of `len` bytes into a slice with receives polled once and
/// dropped, again and again, until one returns it whole. Each dropped receive must hand
/// back what it had read, also what it had already written into the slice. Returns the
/// message and how many receives were dropped in the middle of it: those that found bytes
/// waiting in the socket (`FIONREAD`) and still did not finish. A 1 MiB message does not
/// arrive at once.
async fn recv_in_slices<D: Driver>(
    conn: &mut Bytes<D>,
    len: usize,
) -> procwire::Result<(Vec<u8>, u32)> {
    let start = Instant::now();
    let mut dst = vec![0u8; len];
    let mut mid_frame = 0;
    loop {
        let waiting = rustix::io::ioctl_fionread(&*conn).map_err(std::io::Error::from)?;
        let polled = {
            let mut recv = pin!(conn.recv_bytes_into(&mut dst[..]));
            futures_util::poll!(recv.as_mut())
        };
        match polled {
            Poll::Ready(out) => {
                dst.truncate(out?);
                return Ok((dst, mid_frame));
            }
            Poll::Pending if waiting > 0 => mid_frame += 1,
            Poll::Pending => {}
        }
        if start.elapsed() > WAIT {
            return Err(Error::Timeout);
        }
        yield_now().await;
    }
}

/// `mp_peer.py`'s exchange: `b""`, `b"hello"`, 16384, 16385 and 1 MiB bytes echoed back
/// (the last collected by dropped receives, and repeated until one of them was dropped
/// part-way, at most `BIG_ROUNDS` times), then Python's `array('i', [42, 1729, -7])`
/// received into a 5-element `i32` buffer. Returns how many receives were dropped
/// part-way through the 1 MiB echo.
async fn exchange<D: Driver>(conn: &mut Bytes<D>) -> procwire::Result<u32> {
    for payload in [vec![], b"hello".to_vec(), pattern(16384), pattern(16385)] {
        within::<D, _>(WAIT, conn.send_bytes(&payload[..])).await?;
        let back = within::<D, _>(WAIT, conn.recv_bytes()).await?;
        assert_eq!(back.len(), payload.len());
        assert!(back == payload, "echo of {} bytes differs", payload.len());
    }
    // Until a receive was dropped in the middle of one: over a Unix socket most rounds
    // have one, over TCP (a large window) some take dozens.
    let big = pattern(1 << 20);
    let mut mid_frame = 0;
    for _ in 0..BIG_ROUNDS {
        within::<D, _>(WAIT, conn.send_bytes(&big[..])).await?;
        let (back, dropped) = recv_in_slices(conn, big.len()).await?;
        assert_eq!(back.len(), big.len());
        assert!(back == big, "echo of 1 MiB differs");
        mid_frame += dropped;
        if mid_frame > 0 {
            break;
        }
    }
    within::<D, _>(WAIT, conn.send_bytes(&b"END"[..])).await?;
    let mut ints = [0i32; 5];
    let n = within::<D, _>(WAIT, conn.recv_bytes_into(&mut ints[..])).await?;
    assert_eq!(n, 12);
    assert_eq!(ints, [42, 1729, -7, 0, 0]);
    Ok(mid_frame)
}

/// Checks what both sides saw against what the key mode predicts; returns the exchange's
/// count of receives dropped part-way.
fn check(what: &str, py: &Python, key: Key, rust: procwire::Result<u32>, python: &Outcome) -> u32 {
    check_outcome(what, py, key, rust, python).unwrap_or(0)
}

/// Waits for a Python peer on a thread, so that the runtime keeps running; the thread
/// kills the peer when it overstays. `control` lives as long as the peer.
fn watch(child: std::process::Child, control: procwire::Connection<(), ()>) -> JoinHandle<Outcome> {
    thread::spawn(move || {
        let outcome = wait_bounded(child, CHILD_LIMIT);
        drop(control);
        outcome
    })
}

/// Binds the async listener (inside the runtime); what it refuses goes to `rejected`.
fn listener_for<D: Driver>(
    family: Family,
    dir: &Dir,
    key: Key,
    rejected: mpsc::Sender<Error>,
) -> aio::Listener<D> {
    let addr = match family {
        Family::Tcp => "127.0.0.1:0".to_string(),
        Family::Unix => dir.0.join("rust.sock").display().to_string(),
        Family::Abstract => format!("@{}", abstract_name(&format!("aio-{}-rl", D::NAME))),
    };
    let rejected = Mutex::new(rejected);
    let mut builder = procwire::Listener::builder()
        .handshake_timeout(Duration::from_secs(5))
        .on_rejected(move |_, e| {
            let e = match e {
                Error::AuthenticationFailed(why) => Error::AuthenticationFailed(why.clone()),
                other => Error::Protocol(format!("{other:?}")),
            };
            let _ = rejected.lock().unwrap().send(e);
        });
    if key != Key::None {
        builder = builder.authkey(KEY);
    }
    let listener = builder
        .bind(addr.as_str())
        .unwrap_or_else(|e| panic!("{} Listener on {addr}: {e:?}", D::NAME));
    aio::Listener::from_blocking(listener).unwrap()
}

/// Starts `mp_peer.py connect` with `key` and tells it where to connect.
fn python_client(py: &Python, addr: &Address, key: Key) -> JoinHandle<Outcome> {
    let (child, control) = spawn_script(py, "mp_peer.py", &["connect", "tcp", python_key(key)]);
    control.send_bytes(for_python(addr).as_bytes()).unwrap();
    watch(child, control)
}

/// Accepts the next client and runs the exchange with it, or returns the rejection the
/// listener reported instead. The accept is cancelled and restarted every `TICK`.
async fn serve_one<D: Driver>(
    listener: &mut aio::Listener<D>,
    rejected: &mpsc::Receiver<Error>,
) -> procwire::Result<u32> {
    let start = Instant::now();
    loop {
        match within::<D, _>(TICK, listener.accept::<(), ()>()).await {
            Ok(mut conn) => return exchange(&mut conn).await,
            Err(Error::Timeout) => {}
            Err(e) => return Err(e),
        }
        if let Ok(e) = rejected.try_recv() {
            return Err(e);
        }
        if start.elapsed() > CHILD_LIMIT {
            return Err(Error::Timeout);
        }
    }
}

fn rust_listener_python_client<D: Driver>(py: &Python, family: Family, key: Key, dir: &Dir) -> u32 {
    let what = format!("{} Listener, {py} Client, {family:?}, key {key:?}", D::NAME);
    let (rejected_tx, rejected) = mpsc::channel();
    D::block_on(async {
        let mut listener = listener_for::<D>(family, dir, key, rejected_tx);
        let addr = listener.local_addr().clone();
        let peer = python_client(py, &addr, key);
        let rust = serve_one(&mut listener, &rejected).await;
        let mut mid_frame = check(&what, py, key, rust, &peer.join().unwrap());
        // A refused client changes nothing for the next one.
        if key == Key::Wrong && should_succeed(py, Key::Right) {
            let peer = python_client(py, &addr, Key::Right);
            let rust = serve_one(&mut listener, &rejected).await;
            let what = format!("{what}, then the right key");
            mid_frame += check(&what, py, Key::Right, rust, &peer.join().unwrap());
        }
        assert_eq!(listener.pending_handshakes(), 0, "{what}");
        mid_frame
    })
}

/// Starts `mp_peer.py listen` and returns the address it listens on.
fn python_listener<D: Driver>(
    py: &Python,
    family: Family,
    key: Key,
    dir: &Dir,
) -> (Address, JoinHandle<Outcome>) {
    let spec = match family {
        Family::Tcp => "tcp".to_string(),
        Family::Unix => format!("unix:{}", dir.0.join("py.sock").display()),
        Family::Abstract => format!("abstract:{}", abstract_name(&format!("aio-{}-pl", D::NAME))),
    };
    let (child, control) = spawn_script(py, "mp_peer.py", &["listen", &spec, python_key(key)]);
    assert!(control.poll(Some(WAIT)).unwrap(), "{py}: no address");
    let addr = from_python(&String::from_utf8(control.recv_bytes().unwrap()).unwrap());
    (addr, watch(child, control))
}

fn python_listener_rust_client<D: Driver>(py: &Python, family: Family, key: Key, dir: &Dir) -> u32 {
    let what = format!("{py} Listener, {} Client, {family:?}, key {key:?}", D::NAME);
    let (addr, peer) = python_listener::<D>(py, family, key, dir);
    let rust = D::block_on(async {
        let mut builder = aio::Client::<D>::builder()
            .connect_timeout(WAIT)
            .handshake_timeout(Duration::from_secs(5));
        if key != Key::None {
            builder = builder.authkey(KEY);
        }
        let mut conn = builder.connect::<(), (), _>(&addr).await?;
        exchange(&mut conn).await
    });
    check(&what, py, key, rust, &peer.join().unwrap())
}

type Case = fn(&Python, Family, Key, &Dir) -> u32;

/// Runs `case` for every Python, family and key mode; asserts that some receive was
/// dropped in the middle of a message (and the next one still got it whole).
fn every_case(tag: &str, families: &[Family], case: Case) {
    let dir = Dir::new(tag);
    let mut mid_frame = 0;
    for py in pythons() {
        for &family in families {
            for key in KEYS {
                mid_frame += case(&py, family, key, &dir);
            }
        }
        println!("{tag}: {py}: {families:?} x no key, key, wrong key");
    }
    assert!(mid_frame > 0, "{tag}: no receive was dropped part-way");
    println!("{tag}: {mid_frame} receives dropped part-way through a 1 MiB message");
}

#[test]
fn tokio_listener_serves_python_clients() {
    every_case(
        "tokio-Listener-python-Client",
        &FAMILIES,
        rust_listener_python_client::<aio::Tokio>,
    );
}

#[test]
fn tokio_client_connects_to_python_listeners() {
    every_case(
        "python-Listener-tokio-Client",
        &FAMILIES,
        python_listener_rust_client::<aio::Tokio>,
    );
}

/// CPython's keyless Listener returns the connection at once and waits for the client to
/// speak, while a keyed client waits for its challenge (gh-123736): the async client gives
/// up at its handshake timeout, and Python then sees the connection close.
#[test]
fn tokio_client_with_key_times_out_against_keyless_python_listener() {
    let dir = Dir::new("tokio-nokey");
    for py in pythons() {
        let (addr, peer) = python_listener::<aio::Tokio>(&py, Family::Unix, Key::None, &dir);
        let start = Instant::now();
        let rust = aio::Tokio::block_on(async {
            aio::Client::<aio::Tokio>::builder()
                .authkey(KEY)
                .handshake_timeout(Duration::from_millis(300))
                .connect::<(), (), _>(&addr)
                .await
                .map(drop)
        });
        let elapsed = start.elapsed();
        assert!(matches!(rust, Err(Error::Timeout)), "{py}: {rust:?}");
        assert!(elapsed < Duration::from_secs(5), "{py}: took {elapsed:?}");
        let python = peer.join().unwrap();
        assert_eq!(python.code(), Some(4), "{py}: python: {python}");
        assert!(python.stdout.contains("EOFError"), "{py}: python: {python}");
        println!("{py} keyless Listener <-> keyed tokio Client: Timeout in {elapsed:?}");
    }
}

/// The other side of gh-123736: a keyless CPython client facing the keyed async listener
/// takes the challenge for an application message (`mp_peer.py` echoes it back). The
/// listener refuses it (`AuthenticationFailed` to `on_rejected`), Python sees the
/// connection close, and the listener serves the next client, which has the key.
#[test]
fn tokio_listener_with_key_refuses_keyless_python_client_and_serves_the_next() {
    let dir = Dir::new("tokio-keyless-client");
    for py in pythons() {
        let (rejected_tx, rejected) = mpsc::channel();
        aio::Tokio::block_on(async {
            let mut listener =
                listener_for::<aio::Tokio>(Family::Unix, &dir, Key::Right, rejected_tx);
            let addr = listener.local_addr().clone();
            let peer = python_client(&py, &addr, Key::None);
            let rust = serve_one(&mut listener, &rejected).await;
            let python = peer.join().unwrap();
            assert!(
                matches!(rust, Err(Error::AuthenticationFailed(_))),
                "{py}: {rust:?}; python: {python}"
            );
            assert_eq!(python.code(), Some(4), "{py}: python: {python}");
            if should_succeed(&py, Key::Right) {
                let peer = python_client(&py, &addr, Key::Right);
                let rust = serve_one(&mut listener, &rejected).await;
                check(
                    &format!("{py}, then the right key"),
                    &py,
                    Key::Right,
                    rust,
                    &peer.join().unwrap(),
                );
            }
        });
        println!("{py} keyless Client <-> keyed tokio Listener: refused, then served the next");
    }
}

#[cfg(feature = "async-io")]
#[test]
fn async_io_listener_serves_python_clients() {
    every_case(
        "async-io-Listener-python-Client",
        &[Family::Unix, Family::Tcp],
        rust_listener_python_client::<aio::AsyncIo>,
    );
}

#[cfg(feature = "async-io")]
#[test]
fn async_io_client_connects_to_python_listeners() {
    every_case(
        "python-Listener-async-io-Client",
        &[Family::Unix, Family::Tcp],
        python_listener_rust_client::<aio::AsyncIo>,
    );
}

/// Typed values with the `Pickle` codec, as `tests/interop_pickle.rs` sends them, over the
/// async types: `tests/python/pickle_peer.py` checks what `recv()` gives, then sends the
/// same objects with every protocol it has and an `array.array` that must be refused.
#[cfg(feature = "pickle")]
mod pickled {

    use super::*;
    use procwire::codec::Pickle;

    use crate::pyinterop::everything::{everything, Everything};

    type Conn<D> = aio::Connection<Everything, Everything, Pickle, D>;

    /// The Rust half of the exchange `pickle_peer.py` describes.
    async fn exchange<D: Driver>(py: &Python, conn: &mut Conn<D>) {
        let want = everything();
        within::<D, _>(WAIT, conn.send(&want)).await.unwrap();
        let got = within::<D, _>(WAIT, conn.recv()).await;
        assert_eq!(got.unwrap(), want, "{py}: default protocol");
        let protocols = if py.version >= (3, 8, 0) { 5 } else { 4 };
        for protocol in 0..=protocols {
            match within::<D, _>(WAIT, conn.recv()).await {
                Ok(got) => assert_eq!(got, want, "{py}: protocol {protocol}"),
                Err(e) => panic!("{py}: protocol {protocol}: {e:?}"),
            }
        }
        match within::<D, _>(WAIT, conn.recv()).await {
            Err(Error::Decode(e)) => assert!(
                e.to_string().contains("array._array_reconstructor"),
                "{py}: array.array gave {e}"
            ),
            other => panic!("{py}: array.array gave {other:?}"),
        }
        let again = within::<D, _>(WAIT, conn.recv()).await;
        assert_eq!(again.unwrap(), want, "{py}: after a refused message");
    }

    fn check_python(py: &Python, peer: JoinHandle<Outcome>, what: &str) {
        let outcome = peer.join().unwrap();
        assert_eq!(outcome.code(), Some(0), "{py} ({what}): python: {outcome}");
        println!("ran against {py} ({what})");
    }

    #[test]
    fn python_client_and_tokio_listener_exchange_every_mapped_type() {
        for py in pythons() {
            aio::Tokio::block_on(async {
                let mut listener = aio::Listener::<aio::Tokio>::bind("127.0.0.1:0").unwrap();
                let Address::Tcp(addr) = listener.local_addr().clone() else {
                    panic!("not a tcp listener")
                };
                let (child, control) = spawn_script(&py, "pickle_peer.py", &["connect"]);
                control.send_bytes(addr.to_string().as_bytes()).unwrap();
                let peer = watch(child, control);
                let mut conn: Conn<aio::Tokio> =
                    within::<aio::Tokio, _>(WAIT, listener.accept_with(Pickle::new()))
                        .await
                        .unwrap();
                exchange(&py, &mut conn).await;
                drop(conn);
                check_python(&py, peer, "python Client, tokio Listener");
            });
        }
    }

    #[test]
    fn python_listener_and_tokio_client_exchange_every_mapped_type() {
        for py in pythons() {
            let (child, control) = spawn_script(&py, "pickle_peer.py", &["listen"]);
            assert!(control.poll(Some(WAIT)).unwrap(), "{py}: no address");
            let addr = String::from_utf8(control.recv_bytes().unwrap()).unwrap();
            let peer = watch(child, control);
            aio::Tokio::block_on(async {
                let mut conn: Conn<aio::Tokio> = aio::Client::<aio::Tokio>::builder()
                    .connect_timeout(WAIT)
                    .connect_with(addr.as_str(), Pickle::new())
                    .await
                    .unwrap();
                exchange(&py, &mut conn).await;
            });
            check_python(&py, peer, "python Listener, tokio Client");
        }
    }
}
