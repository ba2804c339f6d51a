//! The `tracing` feature: a capturing subscriber collects every event procwire emits, and
//! each test finds its own events by their fields (addresses and numbers that only it uses,
//! as the tests run in parallel on one global subscriber).
#![cfg(feature = "tracing")]

mod util;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::mpsc;
use std::sync::{Mutex, Once};
use std::time::Duration;

use procwire::{Client, Connection, Error, Listener};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};
use util::{bounded, SOON};

/// One event as the subscriber saw it: level, target, and every field (the message too)
/// as text.
#[derive(Debug, Clone)]
struct Captured {
    level: Level,
    target: String,
    fields: BTreeMap<String, String>,
}

impl Captured {
    fn field(&self, name: &str) -> &str {
        self.fields.get(name).map_or("", String::as_str)
    }
}

static EVENTS: Mutex<Vec<Captured>> = Mutex::new(Vec::new());

/// A subscriber that keeps every event in [`EVENTS`] and has no spans.
struct Capture;

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields(BTreeMap::new());
        event.record(&mut fields);
        let meta = event.metadata();
        EVENTS.lock().unwrap().push(Captured {
            level: *meta.level(),
            target: meta.target().to_string(),
            fields: fields.0,
        });
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

struct Fields(BTreeMap<String, String>);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().to_string(), format!("{value:?}"));
    }
}

fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| tracing::subscriber::set_global_default(Capture).unwrap());
}

/// The events captured so far that `keep` selects.
fn events(keep: impl Fn(&Captured) -> bool) -> Vec<Captured> {
    EVENTS
        .lock()
        .unwrap()
        .iter()
        .filter(|e| keep(e))
        .cloned()
        .collect()
}

/// A loopback address where nobody listens (a listener's port, closed again).
fn closed_port() -> String {
    let listener = Listener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().to_string();
    listener.close().unwrap();
    addr
}

#[test]
fn refused_connect_is_a_warning_with_the_address_and_the_cause() {
    install();
    bounded(|| {
        let addr = closed_port();
        let err = Client::connect::<(), (), _>(addr.as_str()).unwrap_err();
        assert!(matches!(err, Error::Io(_)), "{err:?}");
        let found = events(|e| e.field("address") == addr);
        assert_eq!(found.len(), 1, "{found:?}");
        let e = &found[0];
        assert_eq!(e.level, Level::WARN);
        assert_eq!(e.target, "procwire::client");
        assert_eq!(e.field("message"), "connect failed");
        assert_eq!(e.field("outcome"), "failed");
        assert!(e.field("reason").contains("refused"), "{e:?}");
        assert!(e.fields.contains_key("elapsed"), "{e:?}");
    });
}

#[test]
fn accepted_client_is_traced_with_its_peer_address_on_both_sides() {
    install();
    bounded(|| {
        let listener = Listener::bind("127.0.0.1:0").unwrap();
        let at = listener.local_addr().to_string();
        let _client: Connection<(), ()> = Client::connect(at.as_str()).unwrap();
        let _peer: Connection<(), ()> = listener.accept().unwrap();
        let peer = listener.last_accepted().unwrap().to_string();
        let accepted = events(|e| e.field("message") == "client accepted");
        let accepted: Vec<_> = accepted
            .iter()
            .filter(|e| e.field("peer") == peer)
            .collect();
        assert_eq!(accepted.len(), 1, "{accepted:?}");
        assert_eq!(accepted[0].level, Level::DEBUG);
        assert_eq!(accepted[0].target, "procwire::listener");
        let connected = events(|e| e.field("address") == at);
        assert_eq!(connected.len(), 1, "{connected:?}");
        assert_eq!(connected[0].field("outcome"), "connected");
    });
}

#[test]
fn wrong_key_rejection_names_the_peer_and_the_reason_on_both_sides() {
    install();
    bounded(|| {
        let (rejected_tx, rejected_rx) = mpsc::channel();
        let listener = Listener::builder()
            .authkey("right key")
            .on_rejected(move |peer, _| {
                let _ = rejected_tx.send(peer.map(ToString::to_string));
            })
            .bind("127.0.0.1:0")
            .unwrap();
        let at = listener.local_addr().to_string();
        let server = std::thread::spawn(move || loop {
            // Serve until the one client has been turned away.
            match listener.accept_timeout::<(), ()>(Duration::from_millis(20)) {
                Err(Error::Timeout) => {}
                other => panic!("no client should get through: {other:?}"),
            }
            if let Ok(peer) = rejected_rx.try_recv() {
                return peer;
            }
        });
        let err = Client::builder()
            .authkey("wrong key")
            .connect::<(), (), _>(at.as_str())
            .unwrap_err();
        assert!(matches!(err, Error::AuthenticationFailed(_)), "{err:?}");
        let peer = server.join().unwrap().expect("a TCP peer has an address");
        assert!(peer.starts_with("127.0.0.1:") && peer != at, "{peer}");

        let rejected =
            events(|e| e.field("message") == "client rejected" && e.field("peer") == peer);
        assert_eq!(rejected.len(), 1, "{rejected:?}");
        let r = &rejected[0];
        assert_eq!(
            (r.level, r.target.as_str()),
            (Level::WARN, "procwire::listener")
        );
        assert_eq!(r.field("stage"), "handshake");
        assert!(r.field("reason").contains("different keys"), "{r:?}");

        let client = events(|e| e.field("address") == at);
        let handshake: Vec<_> = client
            .iter()
            .filter(|e| e.field("message") == "handshake failed")
            .collect();
        assert_eq!(handshake.len(), 1, "{client:?}");
        assert_eq!(handshake[0].field("side"), "client");
        assert!(!handshake[0].field("reason").is_empty());
        assert!(
            client
                .iter()
                .any(|e| e.field("message") == "connect failed"),
            "{client:?}"
        );
    });
}

#[test]
fn oversized_message_is_a_limit_event_with_its_length_and_the_setting() {
    install();
    bounded(|| {
        let (a, b) = procwire::duplex::<(), ()>().unwrap();
        b.set_max_message_size(4321);
        a.send_bytes(&[7u8; 4322]).unwrap();
        assert!(b.poll(Some(SOON)).unwrap());
        let err = b.recv_bytes().unwrap_err();
        assert!(
            matches!(
                err,
                Error::MessageTooLarge {
                    len: 4322,
                    limit: 4321
                }
            ),
            "{err:?}"
        );
        let hit = events(|e| e.field("max") == "4321");
        assert_eq!(hit.len(), 1, "{hit:?}");
        let h = &hit[0];
        assert_eq!(
            (h.level, h.target.as_str()),
            (Level::WARN, "procwire::limits")
        );
        assert_eq!(h.field("limit"), "max_message_size");
        assert_eq!(h.field("value"), "4322");
    });
}

#[test]
fn pending_handshake_cap_evicting_a_client_is_a_limit_event() {
    install();
    bounded(|| {
        let listener = Listener::builder()
            .authkey("key")
            .max_pending_handshakes(1)
            .bind("127.0.0.1:0")
            .unwrap();
        let at = listener.local_addr().to_string();
        // Two clients that never answer the challenge: the second pushes out the first.
        let first = std::net::TcpStream::connect(&at).unwrap();
        let _second = std::net::TcpStream::connect(&at).unwrap();
        let first_at = first.local_addr().unwrap().to_string();
        let evicted = || events(|e| e.field("stage") == "evicted" && e.field("peer") == first_at);
        let deadline = std::time::Instant::now() + SOON;
        while evicted().is_empty() && std::time::Instant::now() < deadline {
            let _ = listener.try_accept::<(), ()>();
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(evicted().len(), 1, "{:?}", events(|_| true));
        let limits = events(|e| e.field("limit") == "max_pending_handshakes");
        assert!(limits.iter().any(|e| e.field("max") == "1"), "{limits:?}");
    });
}

#[cfg(feature = "tokio")]
#[test]
fn refused_async_connect_is_a_warning_with_the_address() {
    install();
    bounded(|| {
        let addr = closed_port();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let err = rt
            .block_on(procwire::tokio::Client::builder().connect::<(), (), _>(addr.as_str()))
            .unwrap_err();
        assert!(matches!(err, Error::Io(_)), "{err:?}");
        let found = events(|e| e.field("address") == addr);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].field("message"), "connect failed");
        assert!(
            found[0].field("reason").contains("refused"),
            "{:?}",
            found[0]
        );
    });
}
