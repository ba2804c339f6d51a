//! Request/response over one connection: many requests in flight matched by id, per-request
//! deadlines, handler errors, connection loss, files both ways.

mod util;

use std::fs;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use procwire::rpc::{serve, serve_concurrent, Envelope, MsgId, Reply, Requester, RpcConnection};
use procwire::{Client, Error, Listener};
use util::child::{child, is_child, wait_for};
use util::{assert_err, bounded, open_fds, LIMIT, SOON};

type Conn = RpcConnection<u64, u64>;

fn pair() -> (Conn, Conn) {
    procwire::duplex().unwrap()
}

#[test]
fn a_thousand_concurrent_requests_answered_in_reverse_order_are_all_matched() {
    const N: u64 = 1_000;
    bounded(|| {
        let (client, server) = pair();
        // The server collects every request before answering any, then answers the last
        // one first.
        let server = thread::spawn(move || {
            let mut calls = Vec::new();
            while calls.len() < N as usize {
                match server.recv().unwrap() {
                    Envelope::Request { id, body } => calls.push((id, body)),
                    other => panic!("unexpected {other:?}"),
                }
            }
            for (id, body) in calls.into_iter().rev() {
                let result = Ok(body * 3 + 1);
                server.send(&Envelope::Response { id, result }).unwrap();
            }
            server
        });
        let requester = Requester::new(client).unwrap();
        let threads: Vec<_> = (0..10)
            .map(|t| {
                let requester = requester.clone();
                thread::spawn(move || {
                    let pending: Vec<_> = (0..N / 10)
                        .map(|i| {
                            let body = t * 1_000_000 + i;
                            (body, requester.start(body, SOON).unwrap())
                        })
                        .collect();
                    for (body, p) in pending {
                        assert_eq!(p.wait().unwrap(), body * 3 + 1);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(server.join().unwrap());
    });
}

#[test]
fn a_request_whose_handler_never_answers_times_out_alone() {
    bounded(|| {
        let (client, server) = pair();
        // Answers every request except 13, and 13 only much later.
        let server = thread::spawn(move || {
            let mut late = None;
            while let Ok(envelope) = server.recv() {
                let Envelope::Request { id, body } = envelope else {
                    continue;
                };
                if body == 13 {
                    late = Some(id);
                    continue;
                }
                server
                    .send(&Envelope::Response {
                        id,
                        result: Ok(body),
                    })
                    .unwrap();
                if body == 99 {
                    let id = late.take().unwrap();
                    server
                        .send(&Envelope::Response { id, result: Ok(13) })
                        .unwrap();
                }
            }
        });
        let requester = Requester::new(client).unwrap();
        let start = Instant::now();
        let stuck = requester.start(13, Duration::from_millis(200)).unwrap();
        let others: Vec<_> = (20..40)
            .map(|i| (i, requester.start(i, SOON).unwrap()))
            .collect();
        for (i, p) in others {
            assert_eq!(p.wait().unwrap(), i);
        }
        assert_err!(stuck.wait(), Error::Timeout);
        let waited = start.elapsed();
        assert!(waited >= Duration::from_millis(200), "{waited:?}");
        assert!(waited < Duration::from_secs(5), "{waited:?}");
        // The late answer to 13 is dropped; the connection goes on.
        assert_eq!(requester.request(99, SOON).unwrap(), 99);
        assert_eq!(requester.request(100, SOON).unwrap(), 100);
        drop(requester);
        server.join().unwrap();
    });
}

#[test]
fn a_handler_error_reaches_the_caller_and_the_connection_survives() {
    bounded(|| {
        let (client, server) = pair();
        let server = thread::spawn(move || {
            serve(&server, |call| match call.body {
                0 => Err(format!("cannot divide {} by zero", 100)),
                n => Ok(100 / n),
            })
        });
        let requester = Requester::new(client).unwrap();
        let err = assert_err!(requester.request(0, SOON), Error::Remote(_));
        assert_eq!(
            err.to_string(),
            "the peer's handler failed: cannot divide 100 by zero"
        );
        assert_eq!(requester.request(7, SOON).unwrap(), 14);
        drop(requester);
        server.join().unwrap().unwrap();
    });
}

#[test]
fn messages_are_handled_in_order_and_acknowledged() {
    bounded(|| {
        let (client, server) = pair();
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let server = {
            let seen = Arc::clone(&seen);
            thread::spawn(move || {
                serve(&server, |call| {
                    seen.lock().unwrap().push((call.id.seq, call.body));
                    Ok::<_, String>(0)
                })
            })
        };
        let requester = Requester::new(client).unwrap();
        let ids: Vec<_> = (0..50).map(|i| requester.send(i).unwrap()).collect();
        assert_eq!(requester.request(1000, SOON).unwrap(), 0);
        assert!(ids.iter().all(|id| id.session == requester.session()));
        let seen = seen.lock().unwrap().clone();
        let expected: Vec<_> = (0..50).map(|i| (i + 1, i)).chain([(51, 1000)]).collect();
        assert_eq!(seen, expected);
        drop(requester);
        server.join().unwrap().unwrap();
    });
}

#[test]
fn losing_the_connection_fails_every_waiting_request_with_disconnected() {
    bounded(|| {
        let (client, server) = pair();
        let requester = Requester::new(client).unwrap();
        let pending: Vec<_> = (0..5).map(|i| requester.start(i, SOON).unwrap()).collect();
        let start = Instant::now();
        drop(server);
        for p in pending {
            assert_err!(p.wait(), Error::Disconnected);
        }
        assert!(start.elapsed() < Duration::from_secs(2));
        assert_err!(requester.request(9, SOON), Error::Disconnected);
        assert_err!(requester.send(9), Error::Disconnected);
        assert!(!requester.is_connected());
    });
}

#[test]
fn get_file_receives_the_file_a_handler_returns_and_push_file_hands_one_over() {
    bounded(|| {
        let dir = std::env::temp_dir().join(format!("procwire-rpc-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        fs::write(dir.join("served.bin"), &data).unwrap();
        let (client, server) =
            procwire::duplex::<Envelope<String, u64>, Envelope<String, u64>>().unwrap();
        let server = {
            let dir = dir.clone();
            thread::spawn(move || {
                serve(&server, |call| -> Result<Reply<u64>, String> {
                    if let Some(file) = call.file {
                        let len = file
                            .save(dir.join(&call.body), 1 << 30)
                            .map_err(|e| e.to_string())?;
                        return Ok(Reply::Value(len));
                    }
                    let file = fs::File::open(dir.join(&call.body)).map_err(|e| e.to_string())?;
                    Ok(Reply::File(file))
                })
            })
        };
        let requester = Requester::new(client).unwrap();
        let got = dir.join("got.bin");
        let len = requester
            .get_file("served.bin".into(), &got, 1 << 30, SOON)
            .unwrap();
        assert_eq!(len, data.len() as u64);
        assert_eq!(fs::read(&got).unwrap(), data);
        let err = requester.get_file("missing".into(), dir.join("none"), 1 << 30, SOON);
        assert_err!(err, Error::Remote(_));
        assert!(!dir.join("none").exists());
        let pushed = fs::File::open(&got).unwrap();
        let len = requester
            .push_file("pushed.bin".into(), pushed, SOON)
            .unwrap();
        assert_eq!(len, data.len() as u64);
        assert_eq!(fs::read(dir.join("pushed.bin")).unwrap(), data);
        // A file asked for as a value is a protocol error, and the stream stays aligned.
        assert_err!(
            requester.request("served.bin".into(), SOON),
            Error::Protocol(_)
        );
        assert_err!(requester.request("missing".into(), SOON), Error::Remote(_));
        drop(requester);
        server.join().unwrap().unwrap();
        fs::remove_dir_all(&dir).unwrap();
    });
}

const ADDR_ENV: &str = "PROCWIRE_TEST_ADDR";

/// Clients that each send [`BURST`] requests and exit without reading an answer.
const CLIENTS: u64 = 100;
const BURST: u64 = 64;

/// The threads of this process, from `/proc/self/task`.
fn threads() -> usize {
    fs::read_dir("/proc/self/task").unwrap().count()
}

/// The server: a `serve_concurrent` thread per connection, with two workers whose handler
/// takes 2 ms; then, once the parent says its clients are gone, its thread and descriptor
/// counts, polled until they are back to what they were before the first client (at most
/// one second): `[threads before, fds before, threads after, fds after, accepted, ms]`.
#[test]
fn child_serves_each_connection_with_serve_concurrent() {
    if !is_child() {
        return;
    }
    let control = procwire::from_parent::<(String, Vec<u64>), ()>().unwrap();
    let listener = Listener::bind(std::env::var(ADDR_ENV).unwrap().as_str()).unwrap();
    let (threads_before, fds_before) = (threads(), open_fds().len());
    let mut accepted = 0u64;
    thread::scope(|s| {
        s.spawn(|| {
            while accepted < CLIENTS {
                let Ok(conn) = listener.accept_timeout::<_, _>(SOON) else {
                    return;
                };
                let conn: Conn = conn;
                accepted += 1;
                thread::spawn(move || {
                    let _ = serve_concurrent(&conn, 2, |call| {
                        thread::sleep(Duration::from_millis(2));
                        Ok::<_, String>(call.body)
                    });
                });
            }
        });
        control
            .send(&(listener.local_addr().to_string(), Vec::new()))
            .unwrap();
        control.recv_timeout(LIMIT).unwrap(); // every client is gone
    });
    let start = Instant::now();
    while (threads(), open_fds().len()) != (threads_before, fds_before)
        && start.elapsed() < Duration::from_secs(1)
    {
        thread::sleep(Duration::from_millis(10));
    }
    let report = vec![
        threads_before as u64,
        fds_before as u64,
        threads() as u64,
        open_fds().len() as u64,
        accepted,
        start.elapsed().as_millis() as u64,
    ];
    control.send(&(String::new(), report)).unwrap();
}

#[test]
fn serve_concurrent_ends_and_closes_when_clients_send_a_burst_and_exit_without_reading() {
    bounded(|| {
        let dir = std::env::temp_dir().join(format!("procwire-rpc-burst-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir(&dir).unwrap();
        let unix = dir.join("server.sock").display().to_string();
        for addr in [unix.as_str(), "127.0.0.1:0"] {
            let mut cmd = child("child_serves_each_connection_with_serve_concurrent");
            cmd.env(ADDR_ENV, addr);
            let (server, control) = procwire::spawn::<(), (String, Vec<u64>)>(cmd).unwrap();
            let (server_addr, _) = control.recv_timeout(SOON).unwrap();
            for session in 0..CLIENTS {
                let conn: Conn = Client::connect(server_addr.as_str()).unwrap();
                for seq in 1..=BURST {
                    let id = MsgId { session, seq };
                    conn.send(&Envelope::Request { id, body: seq }).unwrap();
                }
                // Dropped unread: the server's answers find no reader.
            }
            control.send(&()).unwrap();
            let (_, r) = control.recv_timeout(Duration::from_secs(30)).unwrap();
            util::child::assert_exited_ok(wait_for(server, SOON));
            eprintln!(
                "{addr}: threads {} -> {}, descriptors {} -> {}, {} accepted, {} ms",
                r[0], r[2], r[1], r[3], r[4], r[5]
            );
            assert_eq!(r[4], CLIENTS, "{addr}: accepted");
            assert_eq!(
                (r[2], r[3]),
                (r[0], r[1]),
                "{addr}: threads and descriptors"
            );
        }
        fs::remove_dir_all(&dir).unwrap();
    });
}

#[test]
fn serve_concurrent_ends_when_answers_cannot_be_sent_though_the_peer_keeps_the_connection() {
    bounded(|| {
        let (client, server) = pair();
        // The peer reads no more but stays connected, and sends nothing after its request.
        rustix::net::shutdown(&client, rustix::net::Shutdown::Read).unwrap();
        let id = MsgId { session: 1, seq: 1 };
        client.send(&Envelope::Request { id, body: 7 }).unwrap();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        thread::spawn(move || {
            let served = serve_concurrent(&server, 2, |call| Ok::<_, String>(call.body));
            done_tx.send(served).unwrap();
        });
        let served = done_rx
            .recv_timeout(SOON)
            .expect("serve_concurrent did not end");
        served.unwrap(); // a peer that is gone is the normal end
        drop(client);
    });
}

#[test]
fn serve_concurrent_answers_every_queued_request_of_a_peer_that_stopped_sending() {
    const N: u64 = 50;
    bounded(|| {
        let (client, server) = pair();
        for seq in 1..=N {
            let id = MsgId { session: 1, seq };
            client.send(&Envelope::Request { id, body: seq }).unwrap();
        }
        rustix::net::shutdown(&client, rustix::net::Shutdown::Write).unwrap();
        let server = thread::spawn(move || {
            serve_concurrent(&server, 3, |call| {
                thread::sleep(Duration::from_millis(1));
                Ok::<_, String>(call.body * 2)
            })
        });
        let mut answered: Vec<u64> = (0..N)
            .map(|_| match client.recv_timeout(SOON).unwrap() {
                Envelope::Response { id, result } => {
                    assert_eq!(result.unwrap(), id.seq * 2);
                    id.seq
                }
                other => panic!("{other:?}"),
            })
            .collect();
        answered.sort_unstable();
        assert_eq!(answered, (1..=N).collect::<Vec<_>>());
        server.join().unwrap().unwrap();
    });
}
