//! `{e}` alone says what failed, on what, and why: one test per failure kind a new user
//! meets first, each asserting that the cause is in the text.

use std::error::Error as _;
use std::process::Command;
use std::time::Duration;

use procwire::{Client, Connection, Error, Listener};

/// Prints the error as a user who logs `{e}` would, and returns the text.
fn shown(e: &Error) -> String {
    let text = e.to_string();
    eprintln!("{text}");
    text
}

#[test]
fn spawn_of_a_missing_program_names_the_program_and_the_cause() {
    let err = procwire::spawn::<(), ()>(Command::new("./no-such-program-here")).unwrap_err();
    let text = shown(&err);
    assert!(
        text.starts_with("cannot spawn ./no-such-program-here: No such file or directory"),
        "{text}"
    );
    assert!(matches!(&err, Error::Io(e) if e.kind() == std::io::ErrorKind::NotFound));
}

#[test]
fn a_refused_connect_names_the_address_and_the_cause() {
    // A port nobody listens on: bind one, learn its number, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = Client::connect::<(), (), _>(format!("127.0.0.1:{port}").as_str()).unwrap_err();
    let text = shown(&err);
    assert!(
        text.starts_with(&format!(
            "cannot connect to 127.0.0.1:{port}: Connection refused"
        )),
        "{text}"
    );
    assert!(matches!(&err, Error::Io(e) if e.kind() == std::io::ErrorKind::ConnectionRefused));
}

#[test]
fn a_connect_that_runs_out_of_time_says_so_and_names_the_last_failure() {
    let dir = tempdir();
    let path = dir.join("nobody.sock");
    let err = Client::builder()
        .wait_for_listener(Duration::from_millis(50))
        .connect::<(), (), _>(path.to_str().unwrap())
        .unwrap_err();
    let text = shown(&err);
    assert!(
        text.starts_with(&format!(
            "cannot connect to {} in time: No such file or directory",
            path.display()
        )),
        "{text}"
    );
    assert!(matches!(&err, Error::Io(e) if e.kind() == std::io::ErrorKind::TimedOut));
}

#[test]
fn a_bind_to_an_address_in_use_names_the_address_and_the_cause() {
    let first = Listener::bind("127.0.0.1:0").unwrap();
    let addr = first.local_addr().to_string();
    let err = Listener::bind(addr.as_str()).unwrap_err();
    let text = shown(&err);
    assert!(
        text.starts_with(&format!("cannot bind {addr}: Address already in use")),
        "{text}"
    );
}

#[test]
fn a_send_to_a_vanished_reader_says_the_peer_is_gone() {
    let (tx, rx) = procwire::pipe::<u32>().unwrap();
    drop(rx);
    let err = tx.send(&1).unwrap_err();
    let text = shown(&err);
    assert!(err.is_disconnected());
    assert!(text.starts_with("the peer is gone: Broken pipe"), "{text}");
}

#[test]
fn a_receive_from_a_peer_that_reset_the_connection_says_the_peer_is_gone() {
    let listener = Listener::bind("127.0.0.1:0").unwrap();
    let client: Connection<Vec<u8>, u32> = Client::connect(listener.local_addr()).unwrap();
    let server: Connection<u32, Vec<u8>> = listener.accept().unwrap();
    client.send(&vec![7u8; 1000]).unwrap();
    // The server has unread bytes when it closes: the kernel answers with a reset.
    assert!(server.poll(Some(Duration::from_secs(10))).unwrap());
    drop(server);
    let err = client.recv_timeout(Duration::from_secs(10)).unwrap_err();
    let text = shown(&err);
    assert!(err.is_disconnected(), "{text}");
    assert!(
        text.starts_with("the peer is gone: Connection reset by peer")
            || text == "peer closed the connection",
        "{text}"
    );
}

#[test]
fn a_decode_error_prints_the_codec_error_once() {
    let (tx, rx) = procwire::pipe::<String>().unwrap();
    tx.send_bytes(&[5u8, 0xff, 0xfe, 0xfd, 0xfc, 0xfb]).unwrap();
    let err = rx.recv().unwrap_err();
    let text = shown(&err);
    assert!(matches!(err, Error::Decode(_)));
    let Error::Decode(inner) = &err else {
        unreachable!()
    };
    assert_eq!(text, format!("cannot decode a message: {inner}"));
    assert!(inner.to_string().len() > 3, "{inner}");
    // Printed, so not returned again as the source.
    assert!(err
        .source()
        .is_none_or(|s| s.to_string() != inner.to_string()));
}

#[test]
fn an_encode_error_prints_the_codec_error() {
    #[derive(Debug)]
    struct Unencodable;
    impl serde::Serialize for Unencodable {
        fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            Err(serde::ser::Error::custom(
                "this value refuses to be encoded",
            ))
        }
    }
    let (tx, _rx) = procwire::pipe::<Unencodable>().unwrap();
    let err = tx.send(&Unencodable).unwrap_err();
    let text = shown(&err);
    assert!(text.starts_with("cannot encode a value: "), "{text}");
}

#[test]
fn an_io_error_with_context_does_not_repeat_its_cause_as_the_source() {
    let err = procwire::spawn::<(), ()>(Command::new("./no-such-program-here")).unwrap_err();
    assert!(err.source().is_none(), "{:?}", err.source());
}

/// A fresh private directory under the temporary directory.
fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "procwire-error-text-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).unwrap();
    dir
}
