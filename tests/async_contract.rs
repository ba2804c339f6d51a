//! The contract suite over the async types: each behaviour runs over every transport and
//! on both runtimes (a current-thread tokio runtime and `async_io::block_on`), as one
//! `#[test]` per behaviour, runtime and transport: `order::tokio::fifo`.
//!
//! Links come from the blocking table (`tests/util/transport.rs`) and are converted with
//! `from_blocking`: the async types over every transport, and async ends talking to
//! blocking ends. The cancel-safety behaviours drop futures in the middle of a 16 MiB
//! frame, at a point the blocking peer proves was reached.
#![cfg(all(feature = "tokio", feature = "async-io"))]

mod util;

use std::future::Future;
use std::io::Write;
use std::os::fd::AsFd;
use std::pin::Pin;
use std::sync::mpsc;
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use procwire::aio::{self, AsyncIo, Runtime, Tokio};
use procwire::{Error, Postcard};
use util::transport::{msg, Link, Msg, Transport, WAIT};
use util::{bounded, raw};

type Tx<Rt> = aio::Sender<Msg, Postcard, Rt>;
type Rx<Rt> = aio::Receiver<Msg, Postcard, Rt>;

/// What the suite needs of a runtime beyond procwire's trait: running a test body, and a
/// timer.
trait TestRuntime: Runtime {
    const NAME: &'static str;
    fn block_on<T>(f: impl Future<Output = T>) -> T;
    fn pause(d: Duration) -> Pin<Box<dyn Future<Output = ()>>>;
}

impl TestRuntime for Tokio {
    const NAME: &'static str = "tokio";

    fn block_on<T>(f: impl Future<Output = T>) -> T {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            tokio::time::timeout(WAIT, f)
                .await
                .expect("test body timed out")
        })
    }

    fn pause(d: Duration) -> Pin<Box<dyn Future<Output = ()>>> {
        Box::pin(tokio::time::sleep(d))
    }
}

impl TestRuntime for AsyncIo {
    const NAME: &'static str = "async-io";

    fn block_on<T>(f: impl Future<Output = T>) -> T {
        async_io::block_on(async {
            let f = std::pin::pin!(f);
            match futures_util::future::select(f, async_io::Timer::after(WAIT)).await {
                futures_util::future::Either::Left((out, _)) => out,
                futures_util::future::Either::Right(_) => panic!("test body timed out"),
            }
        })
    }

    fn pause(d: Duration) -> Pin<Box<dyn Future<Output = ()>>> {
        Box::pin(async move {
            async_io::Timer::after(d).await;
        })
    }
}

/// Generates `mod <behaviour> { mod tokio { #[test] fn <transport>() } mod async_io {..} }`.
macro_rules! contract {
    ($($behaviour:ident: [$($t:ident),* $(,)?];)*) => {$(
        mod $behaviour {
            mod tokio {
                $(
                    #[test]
                    fn $t() {
                        crate::run::<procwire::aio::Tokio>(
                            stringify!($behaviour), stringify!($t), crate::$behaviour::<procwire::aio::Tokio>);
                    }
                )*
            }
            mod async_io {
                $(
                    #[test]
                    fn $t() {
                        crate::run::<procwire::aio::AsyncIo>(
                            stringify!($behaviour), stringify!($t), crate::$behaviour::<procwire::aio::AsyncIo>);
                    }
                )*
            }
        }
    )*};
}

contract! {
    order: [socketpair, pipe, tcp4, tcp6, unix_path, abstract_socket, fifo, tls];
    empty_and_64_mib: [socketpair, pipe, tcp4, tcp6, unix_path, abstract_socket, fifo, tls];
    recv_bytes_into: [socketpair, pipe, tcp4, tcp6, unix_path, abstract_socket, fifo, tls];
    end_of_stream: [socketpair, pipe, tcp4, tcp6, unix_path, abstract_socket, fifo, tls];
    both_ways_at_once: [socketpair, tcp4, tcp6, unix_path, abstract_socket, fifo, tls];
    descriptors: [socketpair, pipe, tcp4, tcp6, unix_path, abstract_socket, fifo, tls];
    hostile_headers: [socketpair, pipe, tcp4, tcp6, unix_path, abstract_socket, fifo, tls];
    stream_and_sink: [socketpair, pipe, tcp4, tcp6, unix_path, abstract_socket, fifo, tls];
    cancel_recv_into: [socketpair, pipe, tcp4, tcp6, unix_path, abstract_socket, fifo, tls];
    cancel_recv_typed: [socketpair, pipe, tcp4, tcp6, unix_path, abstract_socket, fifo, tls];
    cancel_recv_bytes: [socketpair, pipe, tcp4, tcp6, unix_path, abstract_socket, fifo, tls];
    cancel_send: [socketpair, pipe, tcp4, tcp6, unix_path, abstract_socket, fifo, tls];
    blocking_round_trip: [socketpair, pipe, tcp4, tcp6, unix_path, abstract_socket, fifo, tls];
    ready_and_cancelled_waits: [socketpair, pipe, tcp4, tcp6, unix_path, abstract_socket, fifo, tls];
    // The async client connects over sockets; a FIFO listener is reached by converting a
    // blocking client (the other behaviours do that).
    authentication: [tcp4, tcp6, unix_path, abstract_socket, tls];
}

fn transport(name: &str) -> Transport {
    match name {
        "socketpair" => Transport::Socketpair,
        "pipe" => Transport::Pipe,
        "tcp4" => Transport::Tcp4,
        "tcp6" => Transport::Tcp6,
        "unix_path" => Transport::UnixPath,
        "abstract_socket" => Transport::Abstract,
        "fifo" => Transport::Fifo,
        "tls" => Transport::Tls,
        other => panic!("no transport {other}"),
    }
}

/// Runs `body` over the transport named `name` on `Rt`, bounded in time.
fn run<Rt: TestRuntime>(behaviour: &str, name: &str, body: fn(Transport)) {
    let t = transport(name);
    if !t.available() {
        println!(
            "{behaviour} on {} over {t:?}: NOT RUN, this host cannot make it",
            Rt::NAME
        );
        return;
    }
    bounded(move || body(t));
    println!("{behaviour} on {} over {t:?}: ran", Rt::NAME);
}

/// A link whose both ends are async.
struct Async<Rt: Runtime> {
    tx: Tx<Rt>,
    rx: Rx<Rt>,
    tx_side: Option<Rx<Rt>>,
    rx_side: Option<Tx<Rt>>,
}

/// The two halves of one end as one async connection, split again.
fn end<Rt: Runtime>(tx: procwire::Sender<Msg>, rx: procwire::Receiver<Msg>) -> (Tx<Rt>, Rx<Rt>) {
    aio::Connection::<Msg, Msg, Postcard, Rt>::from_blocking_halves(tx, rx)
        .unwrap()
        .into_split()
}

fn both_async<Rt: Runtime>(l: Link) -> Async<Rt> {
    match (l.tx_side, l.rx_side) {
        (Some(tx_side), Some(rx_side)) => {
            let (tx, tx_side) = end::<Rt>(l.tx, tx_side);
            let (rx_side, rx) = end::<Rt>(rx_side, l.rx);
            Async {
                tx,
                rx,
                tx_side: Some(tx_side),
                rx_side: Some(rx_side),
            }
        }
        _ => Async {
            tx: aio::Sender::from_blocking(l.tx).unwrap(),
            rx: aio::Receiver::from_blocking(l.rx).unwrap(),
            tx_side: None,
            rx_side: None,
        },
    }
}

/// A link whose receiving end is async; the sending end stays blocking, for a thread.
struct AsyncRx<Rt: Runtime> {
    tx: procwire::Sender<Msg>,
    tx_side: Option<procwire::Receiver<Msg>>,
    rx: Rx<Rt>,
    rx_side: Option<Tx<Rt>>,
}

fn async_rx<Rt: Runtime>(l: Link) -> AsyncRx<Rt> {
    let (rx, rx_side) = match l.rx_side {
        Some(rx_side) => {
            let (rx_side, rx) = end::<Rt>(rx_side, l.rx);
            (rx, Some(rx_side))
        }
        None => (aio::Receiver::from_blocking(l.rx).unwrap(), None),
    };
    AsyncRx {
        tx: l.tx,
        tx_side: l.tx_side,
        rx,
        rx_side,
    }
}

fn big() -> &'static [u8] {
    static BIG: OnceLock<Vec<u8>> = OnceLock::new();
    BIG.get_or_init(|| {
        let mut v = vec![0u8; 64 << 20];
        for (i, chunk) in v.chunks_mut(8).enumerate() {
            chunk.copy_from_slice(&(i as u64).to_le_bytes());
        }
        v
    })
}

const MIB16: usize = 16 << 20;

/// Typed and raw messages arrive whole and in order.
fn order<Rt: TestRuntime>(t: Transport) {
    for l in Link::each(t) {
        Rt::block_on(async move {
            let Async { mut tx, mut rx, .. } = both_async::<Rt>(l);
            let send = async {
                for i in 0..200 {
                    tx.send(&msg(i)).await.unwrap();
                    if i % 10 == 0 {
                        tx.send_bytes(&[i as u32; 7][..]).await.unwrap();
                    }
                }
                tx
            };
            let recv = async {
                for i in 0..200 {
                    assert_eq!(rx.recv().await.unwrap(), msg(i), "{t:?}");
                    if i % 10 == 0 {
                        let raw = rx.recv_bytes().await.unwrap();
                        assert_eq!(
                            raw,
                            bytemuck::cast_slice::<u32, u8>(&[i as u32; 7]),
                            "{t:?}"
                        );
                    }
                }
            };
            futures_util::join!(send, recv);
        });
    }
}

/// An empty message and a 64 MiB one, the large one straight into a slice.
fn empty_and_64_mib<Rt: TestRuntime>(t: Transport) {
    for l in Link::each(t) {
        Rt::block_on(async move {
            let Async { mut tx, mut rx, .. } = both_async::<Rt>(l);
            let send = async {
                tx.send_bytes::<u8>(&[]).await.unwrap();
                tx.send_bytes(big()).await.unwrap();
                tx.send_bytes(b"after").await.unwrap();
            };
            let recv = async {
                assert_eq!(rx.recv_bytes().await.unwrap(), b"", "{t:?}");
                let mut out = vec![0u8; 64 << 20];
                assert_eq!(rx.recv_bytes_into(&mut out[..]).await.unwrap(), 64 << 20);
                assert!(out == big(), "{t:?}: 64 MiB payload differs");
                assert_eq!(rx.recv_bytes().await.unwrap(), b"after", "{t:?}");
            };
            futures_util::join!(send, recv);
        });
    }
}

/// `recv_bytes_into` fills an exact slice; a short one gets the message back whole.
fn recv_bytes_into<Rt: TestRuntime>(t: Transport) {
    for l in Link::each(t) {
        Rt::block_on(async move {
            let Async { mut tx, mut rx, .. } = both_async::<Rt>(l);
            let data: Vec<u64> = (0..1000).collect();
            tx.send_bytes(&data[..]).await.unwrap();
            tx.send_bytes(&data[..]).await.unwrap();
            tx.send_bytes(b"next").await.unwrap();
            let mut out = vec![0u64; 1000];
            assert_eq!(rx.recv_bytes_into(&mut out[..]).await.unwrap(), 8000);
            assert_eq!(out, data, "{t:?}");
            let mut short = [7u64; 999];
            match rx.recv_bytes_into(&mut short[..]).await {
                Err(Error::BufferTooShort(whole)) => {
                    assert_eq!(whole, bytemuck::cast_slice::<u64, u8>(&data), "{t:?}")
                }
                other => panic!("{t:?}: {other:?}"),
            }
            assert!(
                short.iter().all(|&v| v == 7),
                "{t:?}: the short slice was written"
            );
            assert_eq!(rx.recv_bytes().await.unwrap(), b"next", "{t:?}");
        });
    }
}

/// A peer that closes between messages is `Disconnected`, and the stream ends.
fn end_of_stream<Rt: TestRuntime>(t: Transport) {
    for l in Link::each(t) {
        Rt::block_on(async move {
            let AsyncRx {
                tx,
                tx_side,
                mut rx,
                ..
            } = async_rx::<Rt>(l);
            tx.send(&msg(1)).unwrap();
            drop((tx, tx_side));
            assert_eq!(rx.recv().await.unwrap(), msg(1), "{t:?}");
            assert!(matches!(rx.recv().await, Err(Error::Disconnected)), "{t:?}");
            assert!(rx.next().await.is_none(), "{t:?}: the stream goes on");
        });
    }
}

/// Both ends send a lot at once: nobody deadlocks, nothing is mixed up.
fn both_ways_at_once<Rt: TestRuntime>(t: Transport) {
    let l = Link::new(t, false);
    Rt::block_on(async move {
        let Async {
            mut tx,
            mut rx,
            tx_side,
            rx_side,
        } = both_async::<Rt>(l);
        let (mut back_tx, mut back_rx) = (rx_side.unwrap(), tx_side.unwrap());
        let blob: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        let forward = async {
            for i in 0..40 {
                tx.send_bytes(&blob[..]).await.unwrap();
                tx.send(&msg(i)).await.unwrap();
            }
        };
        let backward = async {
            for i in 0..40 {
                back_tx.send(&msg(i + 1000)).await.unwrap();
                back_tx.send_bytes(&blob[..]).await.unwrap();
            }
        };
        let forward_in = async {
            for i in 0..40 {
                assert_eq!(rx.recv_bytes().await.unwrap(), blob, "{t:?}");
                assert_eq!(rx.recv().await.unwrap(), msg(i), "{t:?}");
            }
        };
        let backward_in = async {
            let mut out = vec![0u8; blob.len()];
            for i in 0..40 {
                assert_eq!(back_rx.recv().await.unwrap(), msg(i + 1000), "{t:?}");
                assert_eq!(
                    back_rx.recv_bytes_into(&mut out[..]).await.unwrap(),
                    blob.len()
                );
                assert!(out == blob, "{t:?}");
            }
        };
        futures_util::join!(forward, backward, forward_in, backward_in);
    });
}

/// Descriptors travel over Unix-domain sockets and are refused, with nothing sent,
/// elsewhere.
fn descriptors<Rt: TestRuntime>(t: Transport) {
    for l in Link::each(t) {
        Rt::block_on(async move {
            let Async { mut tx, mut rx, .. } = both_async::<Rt>(l);
            rx.enable_fds().unwrap();
            let (read, write) = std::os::unix::net::UnixStream::pair().unwrap();
            let sent = tx.send_fds(&msg(1), &[write.as_fd()]).await;
            if !t.descriptors() {
                assert!(
                    matches!(sent, Err(Error::Descriptors(_))),
                    "{t:?}: {sent:?}"
                );
                tx.send(&msg(2)).await.unwrap();
                assert_eq!(rx.recv().await.unwrap(), msg(2), "{t:?}");
                return;
            }
            sent.unwrap();
            drop(write);
            tx.send_bytes_fds(b"two", &[read.as_fd(), read.as_fd()])
                .await
                .unwrap();
            let (value, fds) = rx.recv_fds().await.unwrap();
            assert_eq!((value, fds.len()), (msg(1), 1), "{t:?}");
            let (bytes, more) = rx.recv_bytes_fds().await.unwrap();
            assert_eq!((bytes.as_slice(), more.len()), (&b"two"[..], 2), "{t:?}");
            std::fs::File::from(fds.into_iter().next().unwrap())
                .write_all(b"through")
                .unwrap();
            let mut got = [0u8; 7];
            std::io::Read::read_exact(
                &mut std::fs::File::from(more.into_iter().next().unwrap()),
                &mut got,
            )
            .unwrap();
            assert_eq!(&got, b"through", "{t:?}");
        });
    }
}

/// An oversized or negative header stops the async receiver as it stops a blocking one;
/// the other direction goes on.
fn hostile_headers<Rt: TestRuntime>(t: Transport) {
    if !t.runs_raw("hostile_headers") {
        return;
    }
    for (header, oversized) in [
        (&[0xff, 0xff, 0xff, 0xff, 0, 0, 1, 0, 0, 0, 0, 0][..], true),
        (&[0x80, 0, 0, 1][..], false),
    ] {
        for l in Link::each(t) {
            Rt::block_on(async move {
                let AsyncRx {
                    tx,
                    tx_side,
                    mut rx,
                    rx_side,
                } = async_rx::<Rt>(l);
                raw(&tx).write_all(header).unwrap();
                let err = rx.recv_bytes().await.unwrap_err();
                match (&err, oversized) {
                    (Error::MessageTooLarge { len, .. }, true) => assert_eq!(*len, 1 << 40),
                    (Error::Protocol(_), false) => {}
                    _ => panic!("{t:?}: {err:?}"),
                }
                assert!(
                    matches!(rx.recv_bytes().await, Err(Error::Protocol(_))),
                    "{t:?}"
                );
                if let (Some(mut back), Some(side)) = (rx_side, tx_side) {
                    back.send(&msg(7)).await.unwrap();
                    assert_eq!(side.recv_timeout(WAIT).unwrap(), msg(7), "{t:?}");
                }
            });
        }
    }
}

/// A `Sink` sends every item; the `Stream` yields them and ends at the peer's close.
fn stream_and_sink<Rt: TestRuntime>(t: Transport) {
    for l in Link::each(t) {
        Rt::block_on(async move {
            let Async {
                mut tx,
                mut rx,
                tx_side,
                ..
            } = both_async::<Rt>(l);
            let send = async move {
                let mut items = futures_util::stream::iter((0..300).map(|i| Ok(msg(i))));
                tx.send_all(&mut items).await.unwrap();
                SinkExt::<Msg>::close(&mut tx).await.unwrap();
                drop((tx, tx_side));
            };
            let recv = async {
                let mut n = 0;
                while let Some(item) = rx.next().await {
                    assert_eq!(item.unwrap(), msg(n), "{t:?}");
                    n += 1;
                }
                assert_eq!(n, 300, "{t:?}");
            };
            futures_util::join!(send, recv);
        });
    }
}

/// Writes the frame of `payload` from a blocking sender's thread: the header and the first
/// half, then — once told — the rest. Says when the first half is in the kernel's hands.
fn split_frame_writer(
    tx: procwire::Sender<Msg>,
    frame: Vec<u8>,
) -> (
    mpsc::Receiver<()>,
    mpsc::Sender<()>,
    thread::JoinHandle<procwire::Sender<Msg>>,
) {
    let (half_tx, half_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let writer = thread::spawn(move || {
        let mut w = raw(&tx);
        let half = frame.len() / 2;
        w.write_all(&frame[..half]).unwrap();
        half_tx.send(()).unwrap();
        go_rx.recv_timeout(WAIT).unwrap();
        w.write_all(&frame[half..]).unwrap();
        tx
    });
    (half_rx, go_tx, writer)
}

/// Polls `fut` until `half` says the writer got its first half out (so the receive is in
/// the middle of the frame), then drops it. Fails if it finished.
async fn drop_midway<Rt: TestRuntime, T: std::fmt::Debug>(
    fut: Pin<Box<dyn Future<Output = T> + '_>>,
    half: &mpsc::Receiver<()>,
) {
    let start = Instant::now();
    let wait_half = async {
        while half.try_recv().is_err() {
            assert!(
                start.elapsed() < WAIT,
                "the writer never got half the frame out"
            );
            Rt::pause(Duration::from_millis(2)).await;
        }
        // Let the receive read a little more of what is buffered.
        Rt::pause(Duration::from_millis(20)).await;
    };
    let wait_half = std::pin::pin!(wait_half);
    match futures_util::future::select(fut, wait_half).await {
        futures_util::future::Either::Left((out, _)) => {
            panic!("the receive finished with half a frame: {out:?}")
        }
        futures_util::future::Either::Right(((), fut)) => drop(fut),
    }
}

fn frame_of(payload: &[u8]) -> Vec<u8> {
    let mut frame = procwire::frame::Header::for_payload(payload.len() as u64)
        .encode()
        .as_ref()
        .to_vec();
    frame.extend_from_slice(payload);
    frame
}

/// `recv_bytes_into` dropped in the middle of a 16 MiB frame, after part of it went into
/// the caller's slice: the next receive gets the whole message.
fn cancel_recv_into<Rt: TestRuntime>(t: Transport) {
    if !t.runs_raw("cancel_recv_into") {
        return;
    }
    for l in Link::each(t) {
        Rt::block_on(async move {
            let AsyncRx { tx, mut rx, .. } = async_rx::<Rt>(l);
            let payload = &big()[..MIB16];
            let (half, go, writer) = split_frame_writer(tx, frame_of(payload));
            let mut first = vec![0u8; MIB16];
            drop_midway::<Rt, _>(Box::pin(rx.recv_bytes_into(&mut first[..])), &half).await;
            assert!(
                first.iter().any(|&b| b != 0),
                "{t:?}: nothing was read into the first slice, the drop proves nothing"
            );
            go.send(()).unwrap();
            let mut second = vec![0u8; MIB16];
            assert_eq!(rx.recv_bytes_into(&mut second[..]).await.unwrap(), MIB16);
            assert!(second == payload, "{t:?}: the message differs");
            let tx = writer.join().unwrap();
            tx.send(&msg(3)).unwrap();
            assert_eq!(rx.recv().await.unwrap(), msg(3), "{t:?}");
        });
    }
}

/// A typed receive of a 16 MiB value dropped mid-frame; the next receive decodes it.
fn cancel_recv_typed<Rt: TestRuntime>(t: Transport) {
    if !t.runs_raw("cancel_recv_typed") {
        return;
    }
    for l in Link::each(t) {
        Rt::block_on(async move {
            let AsyncRx { tx, mut rx, .. } = async_rx::<Rt>(l);
            let value = Msg {
                data: big()[..MIB16].to_vec(),
                ..msg(5)
            };
            let payload = postcard::to_stdvec(&value).unwrap();
            let (half, go, writer) = split_frame_writer(tx, frame_of(&payload));
            drop_midway::<Rt, _>(Box::pin(rx.recv()), &half).await;
            go.send(()).unwrap();
            assert!(
                rx.recv().await.unwrap() == value,
                "{t:?}: the value differs"
            );
            let tx = writer.join().unwrap();
            tx.send(&msg(3)).unwrap();
            assert_eq!(rx.recv().await.unwrap(), msg(3), "{t:?}");
        });
    }
}

/// `recv_bytes` (a new `Vec`) dropped mid-frame, and a `Stream` left mid-frame and then
/// followed by a plain receive: both lose nothing.
fn cancel_recv_bytes<Rt: TestRuntime>(t: Transport) {
    if !t.runs_raw("cancel_recv_bytes") {
        return;
    }
    for l in Link::each(t) {
        Rt::block_on(async move {
            let AsyncRx { tx, mut rx, .. } = async_rx::<Rt>(l);
            let payload = &big()[..MIB16];
            let (half, go, writer) = split_frame_writer(tx, frame_of(payload));
            drop_midway::<Rt, _>(Box::pin(rx.recv_bytes()), &half).await;
            go.send(()).unwrap();
            assert!(rx.recv_bytes().await.unwrap() == payload, "{t:?}");

            let tx = writer.join().unwrap();
            let value = Msg {
                data: big()[..MIB16].to_vec(),
                ..msg(8)
            };
            let payload = postcard::to_stdvec(&value).unwrap();
            let (half, go, writer) = split_frame_writer(tx, frame_of(&payload));
            drop_midway::<Rt, _>(Box::pin(rx.next()), &half).await;
            go.send(()).unwrap();
            let mut into = vec![0u8; payload.len()];
            assert_eq!(
                rx.recv_bytes_into(&mut into[..]).await.unwrap(),
                payload.len()
            );
            assert!(into == payload, "{t:?}: the stream's part was lost");
            drop(writer.join().unwrap());
        });
    }
}

/// A send of 16 MiB dropped after part of it went out: the rest goes first, then the next
/// message; the peer sees both whole.
fn cancel_send<Rt: TestRuntime>(t: Transport) {
    for l in Link::each(t) {
        let (mut rx_end, tx_end) = (Some(l.rx), l.tx);
        let tx_side = l.tx_side;
        let rx_side = l.rx_side;
        Rt::block_on(async move {
            let (mut tx, _tx_side) = match tx_side {
                Some(side) => {
                    let (tx, side) = end::<Rt>(tx_end, side);
                    (tx, Some(side))
                }
                None => (aio::Sender::from_blocking(tx_end).unwrap(), None),
            };
            let payload = &big()[..MIB16];
            {
                let fut = std::pin::pin!(tx.send_bytes(payload));
                let pause = std::pin::pin!(Rt::pause(Duration::from_millis(100)));
                match futures_util::future::select(fut, pause).await {
                    futures_util::future::Either::Left((out, _)) => {
                        panic!("{t:?}: 16 MiB went out with nobody reading: {out:?}")
                    }
                    futures_util::future::Either::Right(_) => {}
                }
            }
            assert!(tx.has_unsent(), "{t:?}: nothing was sent before the drop");
            let rx = rx_end.take().unwrap();
            let reader = thread::spawn(move || {
                let mut out = vec![0u8; MIB16];
                let n = rx.recv_bytes_into(&mut out[..]).unwrap();
                let next = rx.recv_timeout(WAIT).unwrap();
                (n, out, next, rx_side)
            });
            tx.send(&msg(9)).await.unwrap();
            let (n, out, next, _) = reader.join().unwrap();
            assert_eq!(n, MIB16, "{t:?}");
            assert!(
                out == payload,
                "{t:?}: the frame finished after the drop differs"
            );
            assert_eq!(next, msg(9), "{t:?}");
        });
    }
}

/// Async to blocking and back: a converted connection keeps what it had buffered.
fn blocking_round_trip<Rt: TestRuntime>(t: Transport) {
    for l in Link::each(t) {
        Rt::block_on(async move {
            let AsyncRx { tx, mut rx, .. } = async_rx::<Rt>(l);
            for i in 0..3 {
                tx.send(&msg(i)).unwrap();
            }
            assert_eq!(rx.recv().await.unwrap(), msg(0), "{t:?}");
            // The other two may be buffered in the async receiver now.
            rx.ready().await.unwrap();
            let blocking = rx.into_blocking().unwrap();
            assert_eq!(blocking.recv_timeout(WAIT).unwrap(), msg(1), "{t:?}");
            let mut rx = aio::Receiver::<Msg, Postcard, Rt>::from_blocking(blocking).unwrap();
            assert_eq!(rx.recv().await.unwrap(), msg(2), "{t:?}");
            drop(tx);
        });
    }
}

/// `ready` waits for a message without taking it, and a wait cut short by a timer loses
/// nothing.
fn ready_and_cancelled_waits<Rt: TestRuntime>(t: Transport) {
    for l in Link::each(t) {
        Rt::block_on(async move {
            let AsyncRx { tx, mut rx, .. } = async_rx::<Rt>(l);
            for _ in 0..3 {
                let wait = std::pin::pin!(rx.ready());
                let pause = std::pin::pin!(Rt::pause(Duration::from_millis(20)));
                match futures_util::future::select(wait, pause).await {
                    futures_util::future::Either::Left((out, _)) => {
                        panic!("{t:?}: ready with nothing sent: {out:?}")
                    }
                    futures_util::future::Either::Right(_) => {}
                }
            }
            tx.send(&msg(4)).unwrap();
            rx.ready().await.unwrap();
            rx.ready().await.unwrap(); // still there
            assert_eq!(rx.recv().await.unwrap(), msg(4), "{t:?}");
            drop(tx);
        });
    }
}

/// The async listener and client authenticate with the right key and refuse a wrong one,
/// and the listener serves the next client after a refusal.
fn authentication<Rt: TestRuntime>(t: Transport) {
    const KEY: &str = "async-contract-key";
    Rt::block_on(async move {
        let (refused_tx, refused) = mpsc::channel();
        let refused_tx = std::sync::Mutex::new(refused_tx);
        let builder = procwire::Listener::builder();
        #[cfg(feature = "tls")]
        let builder = match t {
            Transport::Tls => builder.tls(util::tls::server()),
            _ => builder,
        };
        let blocking = builder
            .authkey(KEY)
            .on_rejected(move |_, e| {
                let _ = refused_tx.lock().unwrap().send(format!("{e}"));
            })
            .bind(t.listener_addr().as_str())
            .unwrap();
        let mut listener = aio::Listener::<Rt>::from_blocking(blocking).unwrap();
        let addr = listener.local_addr().clone();
        let connect = |key: &'static str| {
            let addr = addr.clone();
            async move {
                let builder = aio::Client::<Rt>::builder();
                #[cfg(feature = "tls")]
                let builder = match t {
                    Transport::Tls => builder.tls(util::tls::client(), "localhost"),
                    _ => builder,
                };
                builder
                    .authkey(key)
                    .handshake_timeout(WAIT)
                    .connect::<Msg, Msg, _>(&addr)
                    .await
            }
        };
        // `accept` drives every handshake, so it runs all along: the wrong client is
        // refused inside it, and only the good one comes out.
        let clients = async {
            let wrong = connect("wrong").await;
            assert!(
                matches!(wrong, Err(Error::AuthenticationFailed(_))),
                "{t:?}: {wrong:?}"
            );
            connect(KEY).await.unwrap()
        };
        let (mut client, mut server) = futures_util::join!(clients, async {
            listener.accept::<Msg, Msg>().await.unwrap()
        });
        client.send(&msg(3)).await.unwrap();
        assert_eq!(server.recv().await.unwrap(), msg(3), "{t:?}");
        server.send(&msg(4)).await.unwrap();
        assert_eq!(client.recv().await.unwrap(), msg(4), "{t:?}");
        let why = refused.try_recv().expect("the wrong key was not reported");
        assert!(why.contains("authentication"), "{t:?}: {why}");
    });
}
