//! Progress callbacks on large transfers: `send_bytes_with_progress`,
//! `recv_bytes_into_with_progress`, `send_file_with_progress` and
//! `recv_file_with_progress`. Counts only grow, come once per kernel call at most, end with
//! `(total, total)` when the message went through, and stop where a failed one stopped;
//! the plain methods on the same connection still work around them.

mod util;

use std::fs::{self, File};
use std::io::{Read, Write};
use std::thread;

use procwire::Error;
use util::{bounded, frame, raw, TempDir};

const BIG: usize = 16 << 20;

/// Checks the rules every report sequence of a completed message follows, and returns how
/// many reports there were.
fn completed(reports: &[(u64, u64)], total: u64) -> usize {
    assert!(!reports.is_empty(), "no report at all");
    assert!(
        reports.iter().all(|&(_, t)| t == total),
        "a report with another total than {total}: {reports:?}"
    );
    assert!(
        reports.windows(2).all(|w| w[0].0 < w[1].0),
        "counts that do not grow: {reports:?}"
    );
    assert_eq!(reports.last(), Some(&(total, total)));
    reports.len()
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

#[test]
fn a_large_send_reports_once_per_mebibyte_or_so_and_ends_with_the_total() {
    bounded(|| {
        let (a, b) = procwire::duplex::<(), ()>().unwrap();
        let data = pattern(BIG);
        let expect = data.clone();
        let receiver = thread::spawn(move || (b.recv_bytes().unwrap(), b));
        let mut reports = Vec::new();
        a.send_bytes_with_progress(&data, |sent, total| reports.push((sent, total)))
            .unwrap();
        let (got, b) = receiver.join().unwrap();
        assert_eq!(got, expect);
        let n = completed(&reports, BIG as u64);
        // The payload goes out in writes of at most 1 MiB: at least 16 reports.
        assert!(n >= 16, "{n} reports for 16 MiB: {reports:?}");
        assert!(n <= BIG / 4096, "{n} reports: more than one per page");
        // The same connection carries the next message as usual.
        a.send_bytes(b"next").unwrap();
        assert_eq!(b.recv_bytes().unwrap(), b"next");
    });
}

#[test]
fn a_large_receive_reports_as_the_payload_arrives_into_the_callers_buffer() {
    bounded(|| {
        let (a, b) = procwire::duplex::<(), ()>().unwrap();
        let data: Vec<u64> = (0..BIG as u64 / 8).collect();
        let sender = {
            let data = data.clone();
            thread::spawn(move || {
                a.send_bytes(&data).unwrap();
                a.send_bytes(b"after").unwrap();
            })
        };
        let mut out = vec![0u64; data.len() + 1];
        let mut reports = Vec::new();
        let n = b
            .recv_bytes_into_with_progress(&mut out, |got, total| reports.push((got, total)))
            .unwrap();
        sender.join().unwrap();
        assert_eq!(n, BIG);
        assert_eq!(&out[..data.len()], &data[..]);
        // 16 MiB cannot arrive in one read of a socket: several reports.
        let count = completed(&reports, BIG as u64);
        assert!(count > 1, "{reports:?}");
        assert_eq!(b.recv_bytes().unwrap(), b"after");
    });
}

#[test]
fn an_empty_message_reports_zero_of_zero_once_on_each_side() {
    let (tx, rx) = procwire::pipe::<()>().unwrap();
    let mut sent = Vec::new();
    tx.send_bytes_with_progress::<u8>(&[], |s, t| sent.push((s, t)))
        .unwrap();
    let mut got = Vec::new();
    let mut out = [0u8; 4];
    let n = rx
        .recv_bytes_into_with_progress(&mut out, |g, t| got.push((g, t)))
        .unwrap();
    assert_eq!(n, 0);
    assert_eq!(sent, [(0, 0)]);
    assert_eq!(got, [(0, 0)]);
}

#[test]
fn a_message_longer_than_the_buffer_comes_back_whole_without_reports() {
    let (tx, rx) = procwire::pipe::<()>().unwrap();
    tx.send_bytes(&[9u8; 100]).unwrap();
    tx.send_bytes(b"next").unwrap();
    let mut out = [0u8; 10];
    let mut reports = Vec::new();
    let err = rx
        .recv_bytes_into_with_progress(&mut out, |g, t| reports.push((g, t)))
        .unwrap_err();
    match err {
        Error::BufferTooShort(whole) => assert_eq!(whole, [9u8; 100]),
        other => panic!("expected BufferTooShort, got {other:?}"),
    }
    assert!(reports.is_empty(), "{reports:?}");
    assert_eq!(rx.recv_bytes().unwrap(), b"next");
}

#[test]
fn a_send_whose_reader_goes_away_stops_reporting_where_it_stopped() {
    bounded(|| {
        let (tx, rx) = procwire::pipe::<()>().unwrap();
        let reader = thread::spawn(move || {
            let mut r = raw(&rx);
            drop(rx);
            let mut first = vec![0u8; 3 << 20];
            r.read_exact(&mut first).unwrap();
            // `r` and the receiver are gone: the pipe has no reader.
        });
        let data = vec![1u8; BIG];
        let mut reports = Vec::new();
        let err = tx
            .send_bytes_with_progress(&data, |s, t| reports.push((s, t)))
            .unwrap_err();
        reader.join().unwrap();
        assert!(err.is_disconnected(), "{err:?}");
        let &(last, total) = reports.last().expect("some bytes went out first");
        assert_eq!(total, BIG as u64);
        assert!(last < total, "{reports:?}");
        assert!(
            last >= 2 << 20,
            "the reader took 3 MiB, reports end at {last}"
        );
        assert!(reports.windows(2).all(|w| w[0].0 < w[1].0));
    });
}

#[test]
fn a_receive_cut_short_by_the_sender_stops_reporting_where_it_stopped() {
    bounded(|| {
        let (tx, rx) = procwire::pipe::<()>().unwrap();
        let whole = frame(&pattern(8 << 20));
        let writer = thread::spawn(move || {
            let mut w = raw(&tx);
            drop(tx);
            w.write_all(&whole[..3 << 20]).unwrap();
        });
        let mut out = vec![0u8; 8 << 20];
        let mut reports = Vec::new();
        let err = rx
            .recv_bytes_into_with_progress(&mut out, |g, t| reports.push((g, t)))
            .unwrap_err();
        writer.join().unwrap();
        assert!(
            matches!(err, Error::Truncated { .. }) || err.is_disconnected(),
            "{err:?}"
        );
        let &(last, total) = reports.last().expect("some bytes arrived first");
        assert_eq!(total, 8 << 20);
        assert!(last < total && last > 0, "{reports:?}");
        assert!(reports.windows(2).all(|w| w[0].0 < w[1].0));
    });
}

#[test]
fn a_file_reports_its_progress_on_both_ends_and_arrives_intact() {
    bounded(|| {
        let dir = TempDir::new("file");
        let src = dir.0.join("src.bin");
        let dest = dir.0.join("dest.bin");
        let content = pattern(5 << 20);
        File::create(&src).unwrap().write_all(&content).unwrap();
        let (a, b) = procwire::duplex::<(), ()>().unwrap();
        let receiver = {
            let dest = dest.clone();
            thread::spawn(move || {
                let mut reports = Vec::new();
                let n = b
                    .recv_file_with_progress(&dest, 1 << 30, |g, t| reports.push((g, t)))
                    .unwrap();
                (n, reports)
            })
        };
        let mut sent = Vec::new();
        let len = a
            .send_file_with_progress(&File::open(&src).unwrap(), |s, t| sent.push((s, t)))
            .unwrap();
        let (n, got) = receiver.join().unwrap();
        assert_eq!((len, n), (5 << 20, 5 << 20));
        assert_eq!(fs::read(&dest).unwrap(), content);
        // sendfile moves at most 1 MiB a call when reporting: at least 5 reports.
        assert!(completed(&sent, 5 << 20) >= 5, "{sent:?}");
        assert!(completed(&got, 5 << 20) > 1, "{got:?}");
    });
}

#[test]
fn the_connection_offers_every_progress_method_of_its_halves() {
    bounded(|| {
        let (a, b) = procwire::duplex::<u32, u32>().unwrap();
        let echo = thread::spawn(move || {
            let mut buf = vec![0u8; 2 << 20];
            let n = b
                .recv_bytes_into_with_progress(&mut buf, |_, _| {})
                .unwrap();
            b.send_bytes_with_progress(&buf[..n], |_, _| {}).unwrap();
            b.recv().unwrap()
        });
        let data = pattern(2 << 20);
        let mut sent = 0;
        a.send_bytes_with_progress(&data, |s, _| sent = s).unwrap();
        let mut back = vec![0u8; 2 << 20];
        let mut got = 0;
        let n = a
            .recv_bytes_into_with_progress(&mut back, |g, _| got = g)
            .unwrap();
        a.send(&7).unwrap();
        assert_eq!(echo.join().unwrap(), 7);
        assert_eq!((n, sent, got), (2 << 20, 2 << 20, 2 << 20));
        assert_eq!(back, data);
    });
}
