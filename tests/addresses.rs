//! Addresses: a typo fails at once with a message that shows the accepted forms, and a
//! listener that is not there fails at once (as CPython's `Client` does) unless the client
//! asks to wait for it.

mod util;

use std::io::ErrorKind;
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use procwire::{Address, Client, Connection, Error, Listener};
use util::{assert_err, bounded};

/// A fresh private directory, removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let dir =
            std::env::temp_dir().join(format!("procwire-addresses-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        Dir(dir)
    }

    fn at(&self, file: &str) -> String {
        self.0.join(file).to_str().unwrap().to_string()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn io_kind(e: &Error) -> Option<ErrorKind> {
    match e {
        Error::Io(io) => Some(io.kind()),
        _ => None,
    }
}

#[test]
fn connect_to_a_missing_unix_socket_fails_at_once_naming_the_path() {
    bounded(|| {
        let dir = Dir::new("missing");
        let path = dir.at("nobody.sock");
        let start = Instant::now();
        let err = assert_err!(Client::connect::<(), (), _>(path.as_str()), Error::Io(_));
        assert!(
            start.elapsed() < Duration::from_millis(500),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(io_kind(&err), Some(ErrorKind::NotFound), "{err}");
        let text = err.to_string();
        assert!(
            text.starts_with(&format!("cannot connect to {path}: No such file")),
            "{text}"
        );
    });
}

#[test]
fn connect_to_a_socket_file_nobody_listens_on_fails_at_once() {
    bounded(|| {
        let dir = Dir::new("stale");
        let path = dir.at("stale.sock");
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap()); // the file stays
        let start = Instant::now();
        let err = assert_err!(Client::connect::<(), (), _>(path.as_str()), Error::Io(_));
        assert!(start.elapsed() < Duration::from_millis(500));
        assert_eq!(io_kind(&err), Some(ErrorKind::ConnectionRefused), "{err}");
        assert!(err.to_string().contains(&path), "{err}");
    });
}

#[test]
fn connect_to_a_missing_fifo_fails_at_once_naming_the_path() {
    bounded(|| {
        let dir = Dir::new("fifo");
        let addr = format!("fifo://{}", dir.at("nobody"));
        let start = Instant::now();
        let err = assert_err!(Client::connect::<(), (), _>(addr.as_str()), Error::Io(_));
        assert!(start.elapsed() < Duration::from_millis(500));
        assert_eq!(io_kind(&err), Some(ErrorKind::NotFound), "{err}");
        assert!(err.to_string().contains(&dir.at("nobody")), "{err}");
    });
}

/// A keyed listener on `addr` that starts after `delay`, accepts one client, sends it 7
/// and waits for its answer.
///
/// With a key, because an unkeyed FIFO listener hands a client over before the client has
/// opened its write end, and a receive at once may then see end of stream; the handshake
/// waits for the client's first bytes.
fn late_listener(addr: String, delay: Duration) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        thread::sleep(delay);
        let listener = Listener::builder()
            .authkey("k")
            .bind(addr.as_str())
            .unwrap();
        let conn: Connection<u8, u8> = listener.accept().unwrap();
        conn.send(&7).unwrap();
        assert_eq!(conn.recv().unwrap_or_else(|e| panic!("{addr}: {e}")), 8);
    })
}

#[test]
fn wait_for_listener_connects_to_listeners_that_start_later() {
    bounded(|| {
        let dir = Dir::new("later");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        for addr in [
            dir.at("later.sock"),
            format!("fifo://{}", dir.at("later.fifo")),
            format!("127.0.0.1:{port}"),
        ] {
            let server = late_listener(addr.clone(), Duration::from_millis(100));
            let conn: Connection<u8, u8> = Client::builder()
                .authkey("k")
                .wait_for_listener(Duration::from_secs(10))
                .connect(addr.as_str())
                .unwrap_or_else(|e| panic!("{addr}: {e}"));
            assert_eq!(conn.recv().unwrap(), 7, "{addr}");
            conn.send(&8).unwrap();
            server.join().unwrap();
        }
    });
}

#[test]
fn wait_for_listener_gives_up_at_its_deadline_naming_the_last_failure() {
    bounded(|| {
        let dir = Dir::new("deadline");
        let path = dir.at("never.sock");
        let start = Instant::now();
        let err = Client::builder()
            .wait_for_listener(Duration::from_millis(200))
            .connect::<(), (), _>(path.as_str())
            .unwrap_err();
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(200) && took < Duration::from_secs(3),
            "{took:?}"
        );
        assert_eq!(io_kind(&err), Some(ErrorKind::TimedOut), "{err}");
        assert!(
            err.to_string()
                .starts_with(&format!("cannot connect to {path} in time: No such file")),
            "{err}"
        );
    });
}

#[test]
fn strings_that_are_neither_host_port_nor_path_are_refused_listing_the_forms() {
    for typo in ["not an address", "localhost 5000", "app\tsock", "name\n"] {
        let err = assert_err!(typo.parse::<Address>(), Error::InvalidAddress(_));
        let text = err.to_string();
        assert!(text.contains(&format!("{typo:?}")), "{text}");
        assert!(text.contains("neither host:port nor a path"), "{text}");
        for form in [
            "host:port",
            "/run/app.sock",
            "unix:///",
            "@name",
            "fifo:///",
        ] {
            assert!(text.contains(form), "{form} missing from {text}");
        }
        let start = Instant::now();
        assert_err!(Client::connect::<(), (), _>(typo), Error::InvalidAddress(_));
        assert!(start.elapsed() < Duration::from_millis(100));
    }
}

#[test]
fn the_forms_cpython_accepts_still_parse() {
    let forms = [
        ("localhost:6000", "127.0.0.1:6000"),
        ("127.0.0.1:0", "127.0.0.1:0"),
        ("[::1]:8080", "[::1]:8080"),
        ("tcp://example.com:80", "example.com:80"),
        ("/tmp/sock", "/tmp/sock"),
        ("./app.sock", "./app.sock"),
        ("app.sock", "app.sock"),
        ("./my app.sock", "./my app.sock"),
        ("/tmp/with space/s", "/tmp/with space/s"),
        ("unix:///run/app.sock", "/run/app.sock"),
        ("@name", "@name"),
        ("fifo:///tmp/app", "fifo:///tmp/app"),
    ];
    for (input, shown) in forms {
        let addr: Address = input.parse().unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(addr.to_string(), shown, "{input}");
    }
}
