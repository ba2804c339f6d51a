//! TLS over TCP (feature `tls`): configs, authentication choices, bad input, and the
//! message APIs over it. The contract suite (`tests/transports.rs`) runs over TLS too.
#![cfg(feature = "tls")]

mod util;

use std::thread;
use std::time::{Duration, Instant};

use procwire::{Client, Connection, Error, Listener};
use util::bounded;
use util::tls::{client, pki, server};

const WAIT: Duration = Duration::from_secs(30);

type Conn = Connection<u64, u64>;

/// A listener with `server` (and `key`), and a client of it with `client` for `name`.
fn connect(
    server: std::sync::Arc<procwire::tls::rustls::ServerConfig>,
    client: std::sync::Arc<procwire::tls::rustls::ClientConfig>,
    name: &str,
    keys: (Option<&str>, Option<&str>),
) -> (procwire::Result<Conn>, procwire::Result<Conn>) {
    let mut lb = Listener::builder()
        .tls(server)
        .handshake_timeout(Duration::from_secs(5));
    if let Some(k) = keys.0 {
        lb = lb.authkey(k);
    }
    let listener = lb.bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().clone();
    let accepting = thread::spawn(move || listener.accept_timeout::<u64, u64>(WAIT));
    let mut cb = Client::builder().tls(client, name);
    if let Some(k) = keys.1 {
        cb = cb.authkey(k);
    }
    let c = cb.connect(&addr);
    (c, accepting.join().unwrap())
}

#[test]
fn typed_round_trip_over_tls_with_and_without_a_key() {
    bounded(|| {
        for keys in [(None, None), (Some("k"), Some("k"))] {
            let (c, s) = connect(server(), client(), "localhost", keys);
            let (c, s) = (c.unwrap(), s.unwrap());
            for i in 0..100u64 {
                c.send(&i).unwrap();
                let n = s.recv_timeout(WAIT).unwrap();
                s.send(&(n * 2)).unwrap();
                assert_eq!(c.recv_timeout(WAIT).unwrap(), i * 2);
            }
        }
    });
}

/// A TLS listener with a 1 s handshake deadline that reports every client it turns away,
/// serving on a thread: it answers each accepted connection's one `u64` with its double.
struct Server {
    addr: procwire::Address,
    rejected: std::sync::mpsc::Receiver<String>,
    served: std::sync::mpsc::Receiver<u64>,
}

fn serve(config: std::sync::Arc<procwire::tls::rustls::ServerConfig>, key: Option<&str>) -> Server {
    let (rej_tx, rejected) = std::sync::mpsc::channel();
    let rej_tx = std::sync::Mutex::new(rej_tx);
    let mut lb = Listener::builder()
        .tls(config)
        .handshake_timeout(Duration::from_secs(1))
        .on_rejected(move |_, e| {
            let _ = rej_tx.lock().unwrap().send(e.to_string());
        });
    if let Some(k) = key {
        lb = lb.authkey(k);
    }
    let listener = lb.bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().clone();
    let (served_tx, served) = std::sync::mpsc::channel();
    thread::spawn(move || {
        // Bounded: ends when the test drops `served` or after a minute.
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(60) {
            let Ok(conn) = listener.accept_timeout::<u64, u64>(Duration::from_millis(50)) else {
                continue;
            };
            let Ok(n) = conn.recv_timeout(WAIT) else {
                continue;
            };
            let _ = conn.send(&(n * 2));
            if served_tx.send(n).is_err() {
                return;
            }
        }
    });
    Server {
        addr,
        rejected,
        served,
    }
}

impl Server {
    /// The reason the next client was turned away, within `within`.
    fn rejection(&self, within: Duration) -> String {
        self.rejected
            .recv_timeout(within)
            .expect("the listener turned the client away in time")
    }

    /// A good client still gets served: the listener was not stalled or stopped.
    fn still_serves(&self, key: Option<&str>) {
        let mut cb = Client::builder().tls(client(), "localhost");
        if let Some(k) = key {
            cb = cb.authkey(k);
        }
        let conn: Conn = cb.connect(&self.addr).unwrap();
        conn.send(&21).unwrap();
        assert_eq!(conn.recv_timeout(WAIT).unwrap(), 42);
        assert_eq!(self.served.recv_timeout(WAIT).unwrap(), 21);
    }
}

fn auth_failure(r: procwire::Result<Conn>) -> String {
    match r {
        Err(Error::AuthenticationFailed(why)) => why,
        other => panic!(
            "expected an authentication failure, got {:?}",
            other.map(|_| ())
        ),
    }
}

#[test]
fn a_plain_tcp_client_without_a_key_is_told_apart_and_the_listener_serves_on() {
    bounded(|| {
        let server = serve(server(), None);
        let plain: Conn = Client::connect(&server.addr).unwrap();
        plain.send(&1).unwrap();
        let why = server.rejection(Duration::from_secs(5));
        assert!(why.contains("does not speak tls"), "{why}");
        assert!(why.contains("0x00"), "{why}");
        // The client sees the connection end instead of an answer.
        assert!(plain.recv_timeout(WAIT).is_err());
        server.still_serves(None);
    });
}

#[test]
fn a_plain_tcp_client_with_a_key_fails_within_the_handshake_deadline() {
    bounded(|| {
        let server = serve(server(), Some("k"));
        let start = Instant::now();
        let err = Client::builder()
            .authkey("k")
            .connect::<u64, u64, _>(&server.addr)
            .unwrap_err();
        // The listener waits for a TLS hello, the client for a challenge: the listener's
        // deadline ends it, and the client sees the connection closed.
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
        assert!(err.is_disconnected(), "{err}");
        let why = server.rejection(Duration::from_secs(5));
        assert!(
            why.contains("did not finish the handshake within 1s"),
            "{why}"
        );
        server.still_serves(Some("k"));
    });
}

#[test]
fn a_tls_client_against_a_plain_listener_says_the_server_does_not_speak_tls() {
    bounded(|| {
        let listener = Listener::builder()
            .authkey("k")
            .bind("127.0.0.1:0")
            .unwrap();
        let addr = listener.local_addr().clone();
        thread::spawn(move || listener.accept_timeout::<u64, u64>(Duration::from_secs(5)));
        let r = Client::builder()
            .tls(client(), "localhost")
            .authkey("k")
            .connect::<u64, u64, _>(&addr);
        let why = auth_failure(r);
        assert!(why.contains("server does not speak tls"), "{why}");
    });
}

#[test]
fn a_certificate_from_an_unknown_authority_is_refused_on_both_sides() {
    bounded(|| {
        let server = serve(server(), None);
        let wrong = procwire::tls::client_config(&pki().other_ca).unwrap();
        let r = Client::builder()
            .tls(wrong, "localhost")
            .connect::<u64, u64, _>(&server.addr);
        let why = auth_failure(r);
        assert!(why.contains("invalid peer certificate"), "{why}");
        assert!(why.contains("UnknownIssuer"), "{why}");
        let why = server.rejection(Duration::from_secs(5));
        assert!(why.contains("tls"), "{why}");
        server.still_serves(None);
    });
}

#[test]
fn an_expired_certificate_is_refused() {
    bounded(|| {
        let p = pki();
        let expired = procwire::tls::server_config(&p.expired_cert, &p.expired_key).unwrap();
        let server = serve(expired, None);
        let r = Client::builder()
            .tls(client(), "localhost")
            .connect::<u64, u64, _>(&server.addr);
        let why = auth_failure(r);
        assert!(why.contains("certificate expired"), "{why}");
        server.rejection(Duration::from_secs(5));
    });
}

#[test]
fn a_certificate_for_another_name_is_refused() {
    bounded(|| {
        let server = serve(server(), None);
        let r = Client::builder()
            .tls(client(), "db.example.org")
            .connect::<u64, u64, _>(&server.addr);
        let why = auth_failure(r);
        assert!(
            why.contains("not valid for name \"db.example.org\""),
            "{why}"
        );
        // By IP address, the certificate's other name, it is accepted.
        let conn: Conn = Client::builder()
            .tls(client(), "127.0.0.1")
            .connect(&server.addr)
            .unwrap();
        conn.send(&5).unwrap();
        assert_eq!(conn.recv_timeout(WAIT).unwrap(), 10);
    });
}

#[test]
fn a_server_name_that_is_not_a_name_is_an_invalid_address() {
    let server = serve(server(), None);
    let err = Client::builder()
        .tls(client(), "not a name!")
        .connect::<u64, u64, _>(&server.addr)
        .unwrap_err();
    assert!(matches!(err, Error::InvalidAddress(_)), "{err}");
    assert!(err.to_string().contains("tls server name"), "{err}");
}

/// Raw bytes to the listener from a plain TCP socket, then `then`.
fn raw_client(addr: &procwire::Address, bytes: &[u8]) -> std::net::TcpStream {
    use std::io::Write;
    let procwire::Address::Tcp(sa) = addr else {
        panic!("tcp")
    };
    let mut s = std::net::TcpStream::connect(sa).unwrap();
    s.write_all(bytes).unwrap();
    s
}

#[test]
fn a_truncated_record_and_a_client_that_stops_mid_handshake_are_dropped_at_the_deadline() {
    bounded(|| {
        let server = serve(server(), Some("k"));
        // A handshake record header announcing 512 bytes, and only 100 of them.
        let mut record = vec![0x16, 0x03, 0x01, 0x02, 0x00];
        record.extend([0x01; 100]);
        let start = Instant::now();
        let stalled = raw_client(&server.addr, &record);
        // While it stalls, another client is served at once.
        server.still_serves(Some("k"));
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "{:?}",
            start.elapsed()
        );
        let why = server.rejection(Duration::from_secs(5));
        assert!(why.contains("within 1s"), "{why}");
        assert!(
            start.elapsed() < Duration::from_secs(4),
            "{:?}",
            start.elapsed()
        );
        drop(stalled);
        // The same record, and then the client leaves.
        drop(raw_client(&server.addr, &record));
        let why = server.rejection(Duration::from_secs(5));
        assert!(
            why.contains("closed the connection during the handshake"),
            "{why}"
        );
        // A real TLS client that stops after its hello (it never reads the answer).
        let config = client();
        let mut tls =
            procwire::tls::rustls::ClientConnection::new(config, "localhost".try_into().unwrap())
                .unwrap();
        let mut hello = Vec::new();
        tls.write_tls(&mut hello).unwrap();
        let start = Instant::now();
        let _mid = raw_client(&server.addr, &hello);
        let why = server.rejection(Duration::from_secs(5));
        assert!(why.contains("within 1s"), "{why}");
        assert!(
            start.elapsed() >= Duration::from_millis(900),
            "{:?}",
            start.elapsed()
        );
        server.still_serves(Some("k"));
    });
}

#[test]
fn bytes_altered_after_the_handshake_fail_the_receive_with_a_tls_error() {
    bounded(|| {
        use std::io::Write;
        let (c, s) = connect(server(), client(), "localhost", (None, None));
        let (c, s) = (c.unwrap(), s.unwrap());
        c.send(&1).unwrap();
        assert_eq!(s.recv_timeout(WAIT).unwrap(), 1);
        // An application-data record that was not made with the session's keys.
        let mut forged = vec![0x17, 0x03, 0x03, 0x00, 0x20];
        forged.extend([0xa5; 32]);
        util::raw(&c).write_all(&forged).unwrap();
        let err = s.recv_timeout(WAIT).unwrap_err();
        match &err {
            Error::Io(e) => {
                assert_eq!(e.kind(), std::io::ErrorKind::InvalidData, "{err}");
                assert!(e.to_string().starts_with("tls: "), "{err}");
            }
            other => panic!("{other:?}"),
        }
    });
}

#[test]
fn the_hmac_handshake_runs_inside_tls_and_a_wrong_key_fails_on_both_sides() {
    bounded(|| {
        let server = serve(server(), Some("right"));
        let r = Client::builder()
            .tls(client(), "localhost")
            .authkey("wrong")
            .connect::<u64, u64, _>(&server.addr);
        let why = auth_failure(r);
        assert!(
            !why.contains("tls"),
            "the tls handshake itself succeeded: {why}"
        );
        let why = server.rejection(Duration::from_secs(5));
        assert!(why.contains("authentication failed"), "{why}");
        server.still_serves(Some("right"));
    });
}

#[test]
fn mutual_tls_refuses_a_client_without_a_certificate_and_serves_one_with() {
    bounded(|| {
        let p = pki();
        let config =
            procwire::tls::server_config_mutual(&p.server_cert, &p.server_key, &p.ca).unwrap();
        let server = serve(config, None);
        let anonymous: Conn = match Client::builder()
            .tls(client(), "localhost")
            .connect::<u64, u64, _>(&server.addr)
        {
            // TLS 1.3: the client finishes first and learns of the refusal on its first read.
            Ok(conn) => conn,
            Err(e) => panic!("{e}"),
        };
        let _ = anonymous.send(&1);
        assert!(anonymous.recv_timeout(WAIT).is_err());
        let why = server.rejection(Duration::from_secs(5));
        assert!(why.contains("certificate"), "{why}");
        let with =
            procwire::tls::client_config_mutual(&p.ca, &p.client_cert, &p.client_key).unwrap();
        let conn: Conn = Client::builder()
            .tls(with, "localhost")
            .connect(&server.addr)
            .unwrap();
        conn.send(&4).unwrap();
        assert_eq!(conn.recv_timeout(WAIT).unwrap(), 8);
    });
}

#[test]
fn a_pinned_self_signed_certificate_is_accepted_and_any_other_refused() {
    bounded(|| {
        let p = pki();
        let own = procwire::tls::server_config(&p.self_signed_cert, &p.self_signed_key).unwrap();
        let server = serve(own, Some("k"));
        let pinned = procwire::tls::pinned_client_config(&p.self_signed_cert).unwrap();
        let conn: Conn = Client::builder()
            .tls(pinned, "peer")
            .authkey("k")
            .connect(&server.addr)
            .unwrap_or_else(|e| panic!("{e}"));
        conn.send(&8).unwrap();
        assert_eq!(conn.recv_timeout(WAIT).unwrap(), 16);
        // Pinned to the CA-issued certificate instead: refused.
        let wrong = procwire::tls::pinned_client_config(&p.server_cert).unwrap();
        let r = Client::builder()
            .tls(wrong, "localhost")
            .authkey("k")
            .connect::<u64, u64, _>(&server.addr);
        let why = auth_failure(r);
        assert!(why.contains("not the pinned certificate"), "{why}");
    });
}

#[test]
fn config_helpers_name_the_file_that_is_wrong() {
    let p = pki();
    let missing = p.dir.join("missing.pem");
    let err = procwire::tls::client_config(&missing).unwrap_err();
    assert!(err.to_string().contains("missing.pem"), "{err}");
    // A key file where certificates are expected.
    let err = procwire::tls::client_config(&p.server_key).unwrap_err();
    assert!(err.to_string().contains("no CERTIFICATE"), "{err}");
    let err = procwire::tls::server_config(&p.server_cert, &p.server_cert).unwrap_err();
    assert!(err.to_string().contains("server.pem"), "{err}");
    // A key that is not the certificate's.
    let err = procwire::tls::server_config(&p.server_cert, &p.client_key).unwrap_err();
    assert!(err.to_string().contains("certificate and key"), "{err}");
}

#[test]
fn tls_refuses_addresses_that_are_not_tcp() {
    let dir = std::env::temp_dir().join(format!("pw-tls-unix-{}.sock", std::process::id()));
    let err = Listener::builder()
        .tls(server())
        .bind(dir.as_path())
        .unwrap_err();
    assert!(err.to_string().contains("tcp addresses only"), "{err}");
}

/// A raw TLS peer (rustls over a std socket, no procwire) connected to a procwire TLS
/// listener without a key, and the procwire end it was accepted as: the bytes the peer
/// writes are the plain stream procwire reads, so framing can be broken inside TLS.
fn raw_tls_peer() -> (
    procwire::tls::rustls::StreamOwned<
        procwire::tls::rustls::ClientConnection,
        std::net::TcpStream,
    >,
    Connection<u64, u64>,
) {
    let listener = Listener::builder()
        .tls(server())
        .bind("127.0.0.1:0")
        .unwrap();
    let procwire::Address::Tcp(sa) = listener.local_addr().clone() else {
        panic!("tcp")
    };
    let accepting = thread::spawn(move || listener.accept_timeout::<u64, u64>(WAIT));
    let tcp = std::net::TcpStream::connect(sa).unwrap();
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    let mut conn =
        procwire::tls::rustls::ClientConnection::new(client(), "localhost".try_into().unwrap())
            .unwrap();
    let mut tcp = tcp;
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).unwrap();
    }
    let stream = procwire::tls::rustls::StreamOwned::new(conn, tcp);
    (stream, accepting.join().unwrap().unwrap())
}

#[test]
fn half_a_frame_inside_tls_is_not_a_message_for_receives_wait_and_a_wait_set() {
    bounded(|| {
        use std::io::Write;
        let (mut peer, conn) = raw_tls_peer();
        let whole = util::frame(b"0123456789");
        peer.write_all(&whole[..7]).unwrap();
        peer.flush().unwrap();
        let short = Duration::from_millis(50);
        assert!(matches!(
            conn.recv_bytes_timeout(short),
            Err(Error::Timeout)
        ));
        assert!(procwire::wait(&[&conn], Some(short)).unwrap().is_empty());
        assert!(!conn.poll(Some(short)).unwrap());
        peer.write_all(&whole[7..]).unwrap();
        // Two more whole frames in the same record: the second stays decrypted but unread
        // in the session after the first is received, and must still count as ready.
        let mut two = util::frame(b"second");
        two.extend(util::frame(b"third"));
        peer.write_all(&two).unwrap();
        peer.flush().unwrap();
        assert_eq!(procwire::wait(&[&conn], Some(WAIT)).unwrap(), [0]);
        assert_eq!(conn.recv_bytes_timeout(WAIT).unwrap(), b"0123456789");
        let mut set = procwire::WaitSet::new().unwrap();
        set.insert("c", conn).unwrap();
        let mut ready = Vec::new();
        for expected in [&b"second"[..], b"third"] {
            set.wait(&mut ready, Some(WAIT)).unwrap();
            assert_eq!(ready, ["c"]);
            assert_eq!(set.get(&"c").unwrap().recv_bytes().unwrap(), expected);
        }
        set.wait(&mut ready, Some(short)).unwrap();
        assert!(ready.is_empty(), "{ready:?}");
        // A large payload read straight into the caller's slice stops at its end: the
        // small frame decrypted with its last record stays in the session, where the
        // socket's readiness does not show it.
        let (mut peer, conn) = raw_tls_peer();
        let big: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        let mut both = util::frame(&big);
        both.extend(util::frame(b"small"));
        peer.write_all(&both).unwrap();
        peer.flush().unwrap();
        let mut dst = vec![0u8; big.len()];
        assert_eq!(
            conn.recv_bytes_into_timeout(&mut dst, WAIT).unwrap(),
            big.len()
        );
        assert!(dst == big);
        let mut set = procwire::WaitSet::new().unwrap();
        set.insert("c", conn).unwrap();
        set.wait(&mut ready, Some(Duration::from_secs(2))).unwrap();
        assert_eq!(ready, ["c"], "the small frame is ready");
        assert_eq!(set.get(&"c").unwrap().recv_bytes().unwrap(), b"small");
    });
}

#[test]
fn a_stream_cut_inside_a_frame_inside_tls_is_truncated_with_or_without_close_notify() {
    bounded(|| {
        use std::io::Write;
        for notify in [true, false] {
            let (mut peer, conn) = raw_tls_peer();
            peer.write_all(b"\x00\x00\x00\x09hello").unwrap();
            if notify {
                peer.conn.send_close_notify();
            }
            peer.flush().unwrap();
            drop(peer);
            match conn.recv_bytes_timeout(WAIT) {
                Err(Error::Truncated {
                    received: 9,
                    expected: 13,
                }) => {}
                other => panic!("close_notify {notify}: {other:?}"),
            }
        }
        // At a boundary it is the end of the stream.
        let (mut peer, conn) = raw_tls_peer();
        peer.write_all(&util::frame(b"last")).unwrap();
        peer.conn.send_close_notify();
        peer.flush().unwrap();
        drop(peer);
        assert_eq!(conn.recv_bytes_timeout(WAIT).unwrap(), b"last");
        assert!(matches!(
            conn.recv_bytes_timeout(WAIT),
            Err(Error::Disconnected)
        ));
    });
}

#[test]
fn hostile_headers_inside_tls_stop_receiving_and_sending_still_works() {
    bounded(|| {
        use std::io::{Read, Write};
        for (header, oversized) in [
            (&[0xff, 0xff, 0xff, 0xff, 0, 0, 1, 0, 0, 0, 0, 0][..], true),
            (&[0x80, 0, 0, 1][..], false),
        ] {
            let (mut peer, conn) = raw_tls_peer();
            peer.write_all(header).unwrap();
            peer.flush().unwrap();
            let err = conn.recv_bytes_timeout(WAIT).unwrap_err();
            match (&err, oversized) {
                (Error::MessageTooLarge { len, .. }, true) => assert_eq!(*len, 1 << 40),
                (Error::Protocol(_), false) => {}
                _ => panic!("{err:?}"),
            }
            conn.send_bytes(b"still here").unwrap();
            let mut got = [0u8; 14];
            peer.read_exact(&mut got).unwrap();
            assert_eq!(&got[4..], b"still here");
        }
    });
}

#[test]
fn rpc_requests_in_flight_are_matched_over_tls() {
    use procwire::rpc::{serve, Envelope, Requester};
    type Rpc = Connection<Envelope<u64, u64>, Envelope<u64, u64>>;
    bounded(|| {
        let listener = Listener::builder()
            .tls(server())
            .authkey("k")
            .bind("127.0.0.1:0")
            .unwrap();
        let addr = listener.local_addr().clone();
        thread::spawn(move || {
            let conn: Rpc = listener.accept().unwrap();
            serve(&conn, |call| Ok::<_, String>(call.body * 3))
        });
        let conn: Rpc = Client::builder()
            .tls(client(), "localhost")
            .authkey("k")
            .connect(&addr)
            .unwrap();
        let requester = Requester::new(conn).unwrap();
        let threads: Vec<_> = (0..8u64)
            .map(|t| {
                let r = requester.clone();
                thread::spawn(move || {
                    for i in 0..50 {
                        let n = t * 1000 + i;
                        assert_eq!(r.request(n, WAIT).unwrap(), n * 3);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    });
}

#[cfg(feature = "tokio")]
#[test]
fn an_async_tls_listener_serves_while_a_silent_and_a_stalled_client_wait_for_their_deadline() {
    bounded(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (rej_tx, rejected) = std::sync::mpsc::channel();
            let rej_tx = std::sync::Mutex::new(rej_tx);
            let blocking = Listener::builder()
                .tls(server())
                .authkey("k")
                .handshake_timeout(Duration::from_secs(1))
                .on_rejected(move |_, e| {
                    let _ = rej_tx.lock().unwrap().send(e.to_string());
                })
                .bind("127.0.0.1:0")
                .unwrap();
            let mut listener = procwire::tokio::Listener::from_blocking(blocking).unwrap();
            let addr = listener.local_addr().clone();
            let _silent = raw_client(&addr, &[]);
            let _stalled = raw_client(&addr, &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]);
            let start = Instant::now();
            let client = async {
                let mut conn = procwire::tokio::Client::builder()
                    .tls(client(), "localhost")
                    .authkey("k")
                    .connect::<u64, u64, _>(&addr)
                    .await
                    .unwrap();
                conn.send(&9).await.unwrap();
                conn.recv().await.unwrap()
            };
            let server = async {
                let mut conn = listener.accept::<u64, u64>().await.unwrap();
                let n = conn.recv().await.unwrap();
                conn.send(&(n + 1)).await.unwrap();
            };
            let (answer, ()) = futures_util::join!(client, server);
            assert_eq!(answer, 10);
            assert!(
                start.elapsed() < Duration::from_millis(900),
                "{:?}",
                start.elapsed()
            );
            // `accept` keeps driving the engine until both are dropped at the deadline.
            let deadline = tokio::time::sleep(Duration::from_secs(5));
            tokio::pin!(deadline);
            let mut reasons = Vec::new();
            while reasons.len() < 2 {
                tokio::select! {
                    _ = &mut deadline => panic!("only {reasons:?} in time"),
                    r = listener.accept::<u64, u64>() => panic!("accepted {:?}", r.map(|_| ())),
                    _ = tokio::time::sleep(Duration::from_millis(20)) => {
                        reasons.extend(rejected.try_iter());
                    }
                }
            }
            assert!(
                reasons.iter().all(|r| r.contains("within 1s")),
                "{reasons:?}"
            );
        });
    });
}

/// An async receive into a slice, dropped after part of a 4 MiB frame came through TLS,
/// gives the bytes back: the next receive gets the whole message.
#[cfg(feature = "tokio")]
#[test]
fn an_async_receive_dropped_inside_a_tls_frame_loses_nothing() {
    bounded(|| {
        use std::io::Write;
        const LEN: usize = 4 << 20;
        let (mut peer, conn) = raw_tls_peer();
        let payload: Vec<u8> = (0..LEN).map(|i| (i % 251) as u8).collect();
        let frame = util::frame(&payload);
        let (half_done, half) = std::sync::mpsc::channel();
        let (go, go_rx) = std::sync::mpsc::channel::<()>();
        let writer = thread::spawn(move || {
            peer.write_all(&frame[..frame.len() / 2]).unwrap();
            peer.flush().unwrap();
            half_done.send(()).unwrap();
            go_rx.recv().unwrap();
            peer.write_all(&frame[frame.len() / 2..]).unwrap();
            peer.flush().unwrap();
            peer
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut conn = procwire::tokio::Connection::from_blocking(conn).unwrap();
            half.recv_timeout(WAIT).unwrap();
            let mut first = vec![0u8; LEN];
            {
                let recv = conn.recv_bytes_into(&mut first[..]);
                // Long enough for the half that was sent to be read, never the whole.
                let cut = tokio::time::timeout(Duration::from_millis(300), recv).await;
                assert!(cut.is_err(), "the receive finished with half a frame");
            }
            assert!(
                first.iter().any(|&b| b != 0),
                "nothing was read: the drop proves nothing"
            );
            go.send(()).unwrap();
            let mut second = vec![0u8; LEN];
            let n = tokio::time::timeout(WAIT, conn.recv_bytes_into(&mut second[..]))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(n, LEN);
            assert!(second == payload, "the message differs");
        });
        drop(writer.join().unwrap());
    });
}
