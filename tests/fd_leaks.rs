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

#[test]
fn a_thousand_failed_handshakes_leave_the_fd_count_where_it_started() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let listener = Listener::builder()
        .authkey(KEY)
        .bind("127.0.0.1:0")
        .unwrap();
    let addr = listener.local_addr().clone();
    let before = open_fds();
    let server = thread::spawn(move || {
        for _ in 0..1000 {
            assert!(listener.accept::<(), ()>().is_err());
        }
        listener
    });
    for _ in 0..1000 {
        let r = Client::builder().authkey("bad").connect::<(), (), _>(&addr);
        assert!(matches!(r, Err(Error::AuthenticationFailed(_))), "{r:?}");
    }
    let listener = server.join().unwrap();
    assert_eq!(open_fds(), before);
    drop(listener);
}
