//! One async listener on a current-thread tokio runtime serving 1,000 concurrent keyed
//! clients while 100 silent clients hold connections open and say nothing; and the same
//! listener's handshake deadline and rejections working without a thread per client.
#![cfg(feature = "tokio")]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use procwire::{Error, Listener};

const KEY: &str = "async-server-key";
const GOOD: usize = 1000;
const SILENT: usize = 100;
const LIMIT: Duration = Duration::from_secs(60);

/// Raises the soft descriptor limit to what the test needs (both ends of every connection
/// live in this process); says so and returns `false` when the hard limit is too low.
fn enough_descriptors(need: u64) -> bool {
    let lim = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    let hard = lim.maximum.unwrap_or(u64::MAX);
    if hard < need {
        println!("NOT RUN: the hard descriptor limit {hard} is below the {need} this test needs");
        return false;
    }
    let soft = lim.current.unwrap_or(u64::MAX);
    if soft < need {
        let raised = rustix::process::Rlimit {
            current: Some(need),
            maximum: lim.maximum,
        };
        rustix::process::setrlimit(rustix::process::Resource::Nofile, raised).unwrap();
    }
    true
}

#[test]
fn a_thousand_clients_and_a_hundred_silent_ones_on_one_thread() {
    if !enough_descriptors(4 * (GOOD + SILENT) as u64 + 256) {
        return;
    }
    let dir = tempdir("thousand");
    let path = dir.join("server.sock");
    let blocking = Listener::builder()
        .authkey(KEY)
        // Room for every client at once: this test is about serving them all, not about
        // which are pushed out when the pending handshakes overflow.
        .max_pending_handshakes(2 * (GOOD + SILENT))
        .handshake_timeout(LIMIT)
        .bind(path.to_str().unwrap())
        .unwrap();
    let addr = blocking.local_addr().clone();

    let live = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let (live2, most2) = (Arc::clone(&live), Arc::clone(&most));
    let server = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let mut listener = procwire::tokio::Listener::from_blocking(blocking).unwrap();
            let mut served = Vec::new();
            let deadline = Instant::now() + LIMIT;
            while served.len() < GOOD {
                let left = deadline.saturating_duration_since(Instant::now());
                let mut conn = tokio::time::timeout(left, listener.accept::<u64, u64>())
                    .await
                    .expect("the listener stopped accepting")
                    .unwrap();
                let (live, most) = (Arc::clone(&live2), Arc::clone(&most2));
                served.push(tokio::spawn(async move {
                    let now = live.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    let mut answered = 0;
                    loop {
                        match conn.recv().await {
                            Ok(v) => {
                                conn.send(&(v * 2)).await?;
                                answered += 1;
                            }
                            Err(Error::Disconnected) => break,
                            Err(e) => return Err(e),
                        }
                    }
                    live.fetch_sub(1, Ordering::SeqCst);
                    Ok::<_, Error>(answered)
                }));
            }
            let mut answers = 0;
            for task in served {
                answers += tokio::time::timeout(LIMIT, task)
                    .await
                    .expect("a connection was never finished")
                    .unwrap()
                    .unwrap();
            }
            (answers, listener.pending_handshakes())
        })
    });

    // The silent ones come first and stay: connected, never a byte.
    let silent: Vec<_> = (0..SILENT)
        .map(|_| std::os::unix::net::UnixStream::connect(&path).unwrap())
        .collect();

    let clients = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let slowest = clients.block_on(async move {
        let barrier = Arc::new(tokio::sync::Barrier::new(GOOD));
        let mut tasks = Vec::new();
        for i in 0..GOOD as u64 {
            let (addr, barrier) = (addr.clone(), Arc::clone(&barrier));
            tasks.push(tokio::spawn(async move {
                let start = Instant::now();
                let mut conn = procwire::tokio::Client::builder()
                    .authkey(KEY)
                    .connect_timeout(LIMIT)
                    .connect::<u64, u64, _>(&addr)
                    .await
                    .unwrap();
                let connected = start.elapsed();
                // Every client is connected and authenticated before any of them speaks.
                barrier.wait().await;
                conn.send(&i).await.unwrap();
                assert_eq!(conn.recv().await.unwrap(), 2 * i);
                connected
            }));
        }
        let mut slowest = Duration::ZERO;
        for task in tasks {
            let took = tokio::time::timeout(LIMIT, task)
                .await
                .expect("a client hung")
                .unwrap();
            slowest = slowest.max(took);
        }
        slowest
    });
    drop(clients);
    let (answers, pending) = server.join().unwrap();
    println!(
        "{GOOD} clients served on one thread with {SILENT} silent ones connected; \
         most at once: {}; slowest connect + handshake: {slowest:?}; still pending: {pending}",
        most.load(Ordering::SeqCst)
    );
    assert_eq!(answers, GOOD);
    assert_eq!(
        most.load(Ordering::SeqCst),
        GOOD,
        "the connections were not all open at once"
    );
    assert_eq!(
        pending, SILENT,
        "the silent clients are still in their handshakes"
    );
    drop(silent);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A silent client's handshake ends at the deadline and is reported; the listener serves
/// a good client meanwhile without waiting for it.
#[test]
fn silent_client_times_out_while_others_are_served() {
    let dir = tempdir("silent");
    let path = dir.join("server.sock");
    let (rejected_tx, rejected) = std::sync::mpsc::channel();
    let rejected_tx = std::sync::Mutex::new(rejected_tx);
    let blocking = Listener::builder()
        .authkey(KEY)
        .handshake_timeout(Duration::from_millis(300))
        .on_rejected(move |_, e| {
            let _ = rejected_tx.lock().unwrap().send(format!("{e}"));
        })
        .bind(path.to_str().unwrap())
        .unwrap();
    let addr = blocking.local_addr().clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let mut listener = procwire::tokio::Listener::from_blocking(blocking).unwrap();
        let _silent = std::os::unix::net::UnixStream::connect(&path).unwrap();
        let start = Instant::now();
        let client = tokio::spawn(async move {
            procwire::tokio::Client::builder()
                .authkey(KEY)
                .connect::<u8, u8, _>(&addr)
                .await
        });
        let mut conn = tokio::time::timeout(LIMIT, listener.accept::<u8, u8>())
            .await
            .unwrap()
            .unwrap();
        let waited = start.elapsed();
        let mut client = client.await.unwrap().unwrap();
        client.send(&7).await.unwrap();
        assert_eq!(conn.recv().await.unwrap(), 7);
        assert!(
            waited < Duration::from_millis(300),
            "the good client waited {waited:?}, as long as the silent one's deadline"
        );
        // The accept loop goes on; the silent client's deadline passes meanwhile.
        let more =
            tokio::time::timeout(Duration::from_millis(600), listener.accept::<u8, u8>()).await;
        assert!(more.is_err(), "nobody else connected: {more:?}");
        assert_eq!(
            listener.pending_handshakes(),
            0,
            "the silent client is still pending"
        );
    });
    let why = rejected.recv_timeout(LIMIT).unwrap();
    assert!(
        why.contains("did not finish the handshake"),
        "rejection: {why}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

fn tempdir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("pw-async-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
