//! Request/response over one connection: many requests in flight matched by id, per-request
//! deadlines, handler errors, connection loss, files both ways.

mod util;

use std::fs;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use procwire::rpc::{serve, Envelope, Reply, Requester, RpcConnection};
use procwire::Error;
use util::{assert_err, bounded, SOON};

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
