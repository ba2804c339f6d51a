//! Descriptor-count tests. They live in their own test binary, and take a lock, because the
//! count is process-wide: any other test running beside them would move it.

use std::sync::Mutex;
use std::thread;

use procwire::{Client, Error, Listener};

const KEY: &str = "secret-key";

static SERIAL: Mutex<()> = Mutex::new(());

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Connects `cycles` clients with a wrong key to a listener on `addr` and checks that
/// every handshake failed on both sides and the descriptor count is back where it was.
fn failed_handshakes_leave_the_fd_count_unchanged(addr: &str, cycles: usize) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let failed = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = failed.clone();
    let listener = Listener::builder()
        .authkey(KEY)
        .on_rejected(move |_, e| {
            assert!(matches!(e, Error::AuthenticationFailed(_)), "{e:?}");
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        })
        .bind(addr)
        .unwrap();
    let addr = listener.local_addr().clone();
    let before = open_fds();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let server = {
        let stop = stop.clone();
        thread::spawn(move || {
            // `accept` returns only good clients: drive the listener until told to stop.
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let r = listener.accept_timeout::<(), ()>(std::time::Duration::from_millis(20));
                assert!(matches!(r, Err(Error::Timeout)), "{r:?}");
            }
            listener
        })
    };
    for _ in 0..cycles {
        let r = Client::builder().authkey("bad").connect::<(), (), _>(&addr);
        assert!(matches!(r, Err(Error::AuthenticationFailed(_))), "{r:?}");
    }
    // The listener may still be closing the last socket: wait (bounded) for its report.
    let start = std::time::Instant::now();
    while failed.load(std::sync::atomic::Ordering::SeqCst) < cycles
        && start.elapsed() < std::time::Duration::from_secs(10)
    {
        thread::sleep(std::time::Duration::from_millis(5));
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let listener = server.join().unwrap();
    assert_eq!(failed.load(std::sync::atomic::Ordering::SeqCst), cycles);
    assert_eq!(open_fds(), before);
    drop(listener);
}

#[test]
fn ten_thousand_failed_handshakes_over_tcp_and_unix_leave_the_fd_count_where_it_started() {
    let start = std::time::Instant::now();
    failed_handshakes_leave_the_fd_count_unchanged("127.0.0.1:0", 5000);
    let dir = std::env::temp_dir().join(format!("pw-fd-leaks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    failed_handshakes_leave_the_fd_count_unchanged(&dir.join("s").display().to_string(), 5000);
    std::fs::remove_dir(&dir).unwrap();
    eprintln!("10,000 failed handshakes in {:?}", start.elapsed());
}
