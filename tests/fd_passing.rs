//! File descriptors and whole connections passed over Unix-socket connections, to this
//! process and to real child processes (the test binary re-runs itself as the child, as in
//! `tests/process.rs`).
//!
//! Every test takes [`serial`] first: several count this process's open descriptors, which
//! tests running at the same time on other threads would disturb.

mod util;

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Duration;

use procwire::frame::MAX_FDS_PER_MESSAGE;
use procwire::{Client, Connection, Error, Listener};
use util::child::{assert_exited_ok, child, is_child, wait_for};
use util::{assert_err, bounded, is_cloexec, open_fds, SOON};

/// Serialises the tests of this binary (see the module docs).
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(PoisonError::into_inner)
}

fn unique_path(stem: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("pw-fds-{}-{stem}-{n}", std::process::id()))
}

/// A file with `text` in it, removed from the directory at once (the descriptor keeps it).
fn scratch_file(text: &str) -> File {
    let path = unique_path("file");
    let file = File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .expect("create scratch file");
    std::fs::remove_file(&path).expect("unlink scratch file");
    file.write_all_at(text.as_bytes(), 0).expect("write");
    file
}

fn inode(fd: impl AsFd) -> u64 {
    rustix::fs::fstat(fd).expect("fstat").st_ino
}

#[test]
fn child_uses_a_passed_pipe_end_and_file() {
    if !is_child() {
        return;
    }
    let conn = procwire::from_parent::<String, String>().unwrap();
    conn.enable_fds().unwrap();
    let (what, fds) = conn.recv_fds().unwrap();
    assert_eq!(what, "copy the file into the pipe, upper-cased");
    assert!(
        fds.iter().all(is_cloexec),
        "received descriptors are close-on-exec"
    );
    let [pipe, file] = <[OwnedFd; 2]>::try_from(fds).unwrap();
    let (mut pipe, file) = (File::from(pipe), File::from(file));
    let mut text = vec![0; 64];
    let n = file.read_at(&mut text, 0).unwrap();
    pipe.write_all(&text[..n].to_ascii_uppercase()).unwrap();
    file.write_all_at(b"child was here", n as u64).unwrap();
    conn.send(&"done".to_string()).unwrap();
}

#[test]
fn a_pipe_end_and_a_file_passed_to_a_child_work_there() {
    let _serial = serial();
    bounded(|| {
        let cmd = child("child_uses_a_passed_pipe_end_and_file");
        let (child, conn) = procwire::spawn::<String, String>(cmd).unwrap();
        let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
        let file = scratch_file("hello from the parent; ");
        let what = "copy the file into the pipe, upper-cased".to_string();
        conn.send_fds(&what, &[write.as_fd(), file.as_fd()])
            .unwrap();
        drop(write);
        assert_eq!(conn.recv_timeout(SOON).unwrap(), "done");
        assert_exited_ok(wait_for(child, SOON));
        let mut piped = String::new();
        File::from(read).read_to_string(&mut piped).unwrap();
        assert_eq!(piped, "HELLO FROM THE PARENT; ");
        let mut whole = vec![0; 64];
        let n = file.read_at(&mut whole, 0).unwrap();
        assert_eq!(&whole[..n], b"hello from the parent; child was here");
    });
}

#[test]
fn child_serves_a_passed_connection() {
    if !is_child() {
        return;
    }
    let conn = procwire::from_parent::<(), ()>().unwrap();
    conn.enable_fds().unwrap();
    let served = conn.recv_connection::<String, String>().unwrap();
    for text in served.iter() {
        served.send(&text.unwrap().to_uppercase()).unwrap();
    }
}

#[test]
fn a_connection_passed_to_a_child_works_there() {
    let _serial = serial();
    bounded(|| {
        let cmd = child("child_serves_a_passed_connection");
        let (child, conn) = procwire::spawn::<(), ()>(cmd).unwrap();
        let (client, for_child) = procwire::duplex::<String, String>().unwrap();
        conn.send_connection(&for_child).unwrap();
        drop(for_child);
        for word in ["one", "two", "three"] {
            client.send(&word.to_string()).unwrap();
            assert_eq!(client.recv_timeout(SOON).unwrap(), word.to_uppercase());
        }
        drop(client); // the child's iterator ends, and it exits
        assert_exited_ok(wait_for(child, SOON));
    });
}

/// Sends 40 messages that carry descriptors from another thread and receives each with a
/// receive that does not ask for them, on a receiver that takes descriptors (procwire
/// closes them) or not (the kernel does); returns both ends.
fn send_and_receive_without_claiming(
    enabled: bool,
) -> (Connection<u32, u32>, Connection<u32, u32>) {
    let (a, b) = procwire::duplex::<u32, u32>().unwrap();
    if enabled {
        b.enable_fds().unwrap();
    }
    let sender = thread::spawn(move || {
        let file = scratch_file("x");
        let fds = [file.as_fd(), file.as_fd(), file.as_fd()];
        for i in 0..8 {
            a.send_fds(&i, &fds).unwrap();
            a.send_bytes_fds(&[i; 100_000], &fds[..1]).unwrap();
            a.send_bytes_fds(&[i; 3], &fds).unwrap();
            a.send_fds(&i, &fds[..2]).unwrap();
            a.send_fds(&i, &fds).unwrap();
        }
        a
    });
    let mut out = vec![0u32; 100_000];
    for i in 0..8 {
        assert_eq!(b.recv().unwrap(), i);
        assert_eq!(b.recv_bytes().unwrap().len(), 400_000);
        assert_eq!(b.recv_bytes_into(&mut out).unwrap(), 12);
        assert!(b.poll(Some(SOON)).unwrap());
        assert_eq!(b.try_recv().unwrap(), i);
        assert_eq!(b.recv_timeout(SOON).unwrap(), i);
    }
    (sender.join().unwrap(), b)
}

#[test]
fn a_receiver_that_did_not_enable_descriptors_refuses_fd_receives_and_the_kernel_closes_them() {
    let _serial = serial();
    bounded(|| {
        let before = open_fds();
        let (a, b) = procwire::duplex::<u32, u32>().unwrap();
        let (mut ours, theirs) = UnixStream::pair().unwrap();
        a.send_fds(&7, &[theirs.as_fd()]).unwrap();
        drop(theirs); // the only copy left is the one in flight
        let err = assert_err!(b.recv_fds(), Error::Descriptors(_));
        assert!(err.to_string().contains("enable_fds"), "{err}");
        // Nothing was read: the message is still there for a plain receive.
        assert_eq!(b.recv().unwrap(), 7);
        // The kernel closed the descriptor it carried: the peer of `ours` is gone.
        let mut buf = [0u8; 1];
        assert_eq!(ours.read(&mut buf).unwrap(), 0, "the passed end was closed");
        // Enabling now (nothing buffered) works, and descriptors come from then on.
        b.enable_fds().unwrap();
        let (mut ours2, theirs2) = UnixStream::pair().unwrap();
        a.send_fds(&8, &[theirs2.as_fd()]).unwrap();
        drop(theirs2);
        let (eight, fds) = b.recv_fds().unwrap();
        assert_eq!((eight, fds.len()), (8, 1));
        File::from(fds.into_iter().next().unwrap())
            .write_all(b"!")
            .unwrap();
        ours2.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"!");
        drop((a, b, ours, ours2));
        assert_eq!(open_fds(), before);
    });
}

#[test]
fn enabling_descriptors_after_a_read_ahead_is_refused_and_the_receiver_stays_usable() {
    let _serial = serial();
    bounded(|| {
        let (a, b) = procwire::duplex::<u32, u32>().unwrap();
        a.send(&1).unwrap();
        a.send(&2).unwrap();
        // Both frames arrive in one read; the second stays buffered.
        assert!(b.poll(Some(SOON)).unwrap());
        thread::sleep(Duration::from_millis(20));
        assert_eq!(b.recv().unwrap(), 1);
        let err = assert_err!(b.enable_fds(), Error::Descriptors(_));
        assert!(err.to_string().contains("already read"), "{err}");
        assert_eq!(b.recv().unwrap(), 2);
        b.enable_fds().unwrap(); // nothing buffered now
        b.enable_fds().unwrap(); // and again: nothing to do
        let file = scratch_file("y");
        a.send_fds(&3, &[file.as_fd()]).unwrap();
        assert_eq!(b.recv_fds().unwrap().1.len(), 1);
    });
}

#[test]
fn on_a_pipe_enabling_descriptors_does_nothing_and_fd_receives_return_none() {
    let (tx, rx) = procwire::pipe::<u8>().unwrap();
    rx.enable_fds().unwrap();
    tx.send(&5).unwrap();
    let (five, fds) = rx.recv_fds().unwrap();
    assert_eq!((five, fds.len()), (5, 0));
    // Without enabling too: no descriptor can come over a pipe, so nothing is refused.
    let (tx, rx) = procwire::pipe::<u8>().unwrap();
    tx.send(&6).unwrap();
    assert_eq!(rx.recv_fds().unwrap().0, 6);
}

#[test]
fn plain_receives_close_the_descriptors_their_messages_carried() {
    let _serial = serial();
    bounded(|| {
        for enabled in [true, false] {
            let before = open_fds();
            let (a, b) = send_and_receive_without_claiming(enabled);
            assert_eq!(
                open_fds().len(),
                before.len() + 2,
                "enabled {enabled}: only the two ends are open"
            );
            drop((a, b));
            assert_eq!(open_fds(), before);
        }
    });
}

#[test]
fn descriptors_of_messages_never_received_are_closed_with_the_connection() {
    let _serial = serial();
    bounded(|| {
        let before = open_fds();
        let (a, b) = procwire::duplex::<u32, u32>().unwrap();
        let file = scratch_file("x");
        for i in 0..10 {
            a.send_fds(&i, &[file.as_fd(), file.as_fd()]).unwrap();
        }
        assert_eq!(b.recv().unwrap(), 0);
        assert!(b.poll(Some(SOON)).unwrap()); // reads ahead: descriptors of later messages
        drop((a, b, file));
        assert_eq!(open_fds(), before);
    });
}

#[test]
fn received_descriptors_are_close_on_exec_and_refer_to_what_was_sent() {
    let _serial = serial();
    bounded(|| {
        let (a, b) = procwire::duplex::<(), ()>().unwrap();
        b.enable_fds().unwrap();
        let file = scratch_file("x");
        let (read, _write) = rustix::pipe::pipe().unwrap(); // deliberately not close-on-exec
        assert!(!is_cloexec(&read));
        a.send_bytes_fds(b"two", &[file.as_fd(), read.as_fd()])
            .unwrap();
        let (bytes, fds) = b.recv_bytes_fds().unwrap();
        assert_eq!(bytes, b"two");
        assert_eq!(fds.len(), 2);
        assert!(fds.iter().all(is_cloexec));
        assert_eq!(inode(&fds[0]), inode(&file));
        assert_eq!(inode(&fds[1]), inode(&read));
    });
}

/// A pipe whose read end's inode names message `i` (the write end is dropped).
fn marker() -> OwnedFd {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .unwrap()
        .0
}

#[test]
fn an_empty_message_hands_its_descriptors_to_every_kind_of_receive() {
    let _serial = serial();
    bounded(|| {
        let (a, b) = procwire::duplex::<Vec<u8>, Vec<u8>>().unwrap();
        b.enable_fds().unwrap();
        let m = marker();
        for _ in 0..2 {
            a.send_bytes_fds(b"", &[m.as_fd()]).unwrap();
        }
        let (bytes, fds) = b.recv_bytes_fds().unwrap();
        assert_eq!((bytes.len(), fds.len()), (0, 1), "recv_bytes_fds");
        assert_eq!(inode(&fds[0]), inode(&m));
        let err = b.recv_fds().unwrap_err(); // an empty payload is no postcard Vec
        assert!(matches!(err, Error::Decode(_)), "{err:?}");
    });
}

#[test]
fn each_message_gets_exactly_its_own_descriptors_when_many_are_read_at_once() {
    let _serial = serial();
    bounded(|| {
        let (a, b) = procwire::duplex::<Vec<u8>, Vec<u8>>().unwrap();
        b.enable_fds().unwrap();
        let markers: Vec<OwnedFd> = (0..60).map(|_| marker()).collect();
        let sizes = [0usize, 1, 7, 5000, 70_000, 1 << 20];
        // Message i carries i % 4 copies of markers[i]; sizes vary from empty to larger
        // than the read buffer, so reads end anywhere in the stream.
        let copies: Vec<OwnedFd> = markers.iter().map(|m| m.try_clone().unwrap()).collect();
        let sender = thread::spawn(move || {
            for (i, m) in copies.iter().enumerate() {
                let fds = vec![m.as_fd(); i % 4];
                a.send_fds(&vec![i as u8; sizes[i % sizes.len()]], &fds)
                    .unwrap();
            }
            a
        });
        thread::sleep(Duration::from_millis(20));
        for (i, m) in markers.iter().enumerate() {
            if i % 5 == 0 {
                assert!(b.poll(Some(SOON)).unwrap()); // read ahead through the buffer
            }
            let (value, fds) = b.recv_fds().unwrap();
            assert_eq!(value, vec![i as u8; sizes[i % sizes.len()]]);
            assert_eq!(fds.len(), i % 4, "message {i}");
            assert!(fds.iter().all(|fd| inode(fd) == inode(m)), "message {i}");
        }
        drop(sender.join().unwrap());
    });
}

#[test]
fn descriptors_travel_over_unix_path_and_abstract_socket_connections() {
    let _serial = serial();
    bounded(|| {
        let path = unique_path("sock.sock").display().to_string();
        let abstract_name = format!("@pw-fds-{}", std::process::id());
        for addr in [path, abstract_name] {
            let listener = Listener::builder().bind(addr.as_str()).unwrap();
            let local = listener.local_addr().clone();
            let server = thread::spawn(move || listener.accept::<u8, u8>().unwrap());
            let client: Connection<u8, u8> = Client::builder().connect(&local).unwrap();
            let server = server.join().unwrap();
            server.enable_fds().unwrap();
            let file = scratch_file("x");
            client.send_fds(&5, &[file.as_fd()]).unwrap();
            let (five, fds) = server.recv_fds().unwrap();
            assert_eq!((five, fds.len()), (5, 1), "{addr}");
            assert_eq!(inode(&fds[0]), inode(&file));
        }
    });
}

/// Asserts that sending a descriptor on `tx` is refused and that `tx` then still works.
fn assert_refused_then_usable(what: &str, tx: &procwire::Sender<u8>, rx: &procwire::Receiver<u8>) {
    let file = scratch_file("x");
    let err = assert_err!(tx.send_fds(&1, &[file.as_fd()]), Error::Descriptors(_));
    assert!(
        err.to_string().contains("cannot carry file descriptors"),
        "{what}: {err}"
    );
    tx.send_fds(&2, &[]).unwrap(); // no descriptors: fine on any transport
    tx.send(&3).unwrap();
    assert_eq!(
        rx.recv_timeout(SOON).unwrap(),
        2,
        "{what}: nothing was sent"
    );
    assert_eq!(rx.recv_timeout(SOON).unwrap(), 3, "{what}");
}

#[test]
fn descriptors_on_pipe_fifo_and_tcp_connections_are_refused_and_the_connection_stays_usable() {
    let _serial = serial();
    bounded(|| {
        let (tx, rx) = procwire::pipe::<u8>().unwrap();
        assert_refused_then_usable("pipe", &tx, &rx);
        let fifo = format!("fifo://{}", unique_path("fifo").display());
        for addr in ["127.0.0.1:0".to_string(), fifo] {
            let listener = Listener::builder().bind(addr.as_str()).unwrap();
            let local = listener.local_addr().clone();
            let server = thread::spawn(move || listener.accept::<u8, u8>().unwrap());
            let client: Connection<u8, u8> = Client::builder().connect(&local).unwrap();
            let (ctx, _crx) = client.split();
            let (_stx, srx) = server.join().unwrap().split();
            assert_refused_then_usable(&addr, &ctx, &srx);
        }
    });
}

#[test]
fn more_descriptors_than_one_message_can_carry_are_refused_before_sending() {
    let _serial = serial();
    bounded(|| {
        let (a, b) = procwire::duplex::<u8, u8>().unwrap();
        b.enable_fds().unwrap();
        let file = scratch_file("x");
        let too_many = vec![file.as_fd(); MAX_FDS_PER_MESSAGE + 1];
        let err = assert_err!(a.send_fds(&1, &too_many), Error::Descriptors(_));
        assert!(err.to_string().contains("254 descriptors"), "{err}");
        a.send_fds(&2, &too_many[1..]).unwrap();
        let (two, fds) = b.recv_fds().unwrap();
        assert_eq!((two, fds.len()), (2, MAX_FDS_PER_MESSAGE));
    });
}

#[test]
fn recv_connection_refuses_an_ordinary_message_and_closes_its_descriptors() {
    let _serial = serial();
    bounded(|| {
        let (a, b) = procwire::duplex::<(), ()>().unwrap();
        b.enable_fds().unwrap();
        let before = open_fds();
        let file = scratch_file("x");
        a.send_bytes_fds(b"not a connection", &[file.as_fd()])
            .unwrap();
        let err = assert_err!(b.recv_connection::<u8, u8>(), Error::Descriptors(_));
        assert!(
            err.to_string().contains("expected a passed connection"),
            "{err}"
        );
        drop(file);
        assert_eq!(open_fds(), before);
        a.send_bytes(b"still usable").unwrap();
        assert_eq!(b.recv_bytes().unwrap(), b"still usable");
    });
}

#[test]
fn from_fd_takes_stream_sockets_only() {
    let _serial = serial();
    let (x, y) = UnixStream::pair().unwrap();
    let x = Connection::<u8, u8>::from_fd(x.into()).unwrap();
    let y = Connection::<u8, u8>::from_fd(y.into()).unwrap();
    x.send(&9).unwrap();
    assert_eq!(y.recv().unwrap(), 9);

    let file = scratch_file("x");
    let err = assert_err!(
        Connection::<u8, u8>::from_fd(file.into()),
        Error::Descriptors(_)
    );
    assert!(err.to_string().contains("not a socket"), "{err}");
    let (d, _) = UnixDatagram::pair().unwrap();
    let err = assert_err!(
        Connection::<u8, u8>::from_fd(d.into()),
        Error::Descriptors(_)
    );
    assert!(err.to_string().contains("not a stream socket"), "{err}");
    let (s, _) = UnixStream::pair().unwrap();
    s.set_nonblocking(true).unwrap();
    let err = assert_err!(
        Connection::<u8, u8>::from_fd(s.into()),
        Error::Descriptors(_)
    );
    assert!(err.to_string().contains("non-blocking"), "{err}");
}

#[test]
fn a_connection_holding_unreceived_input_cannot_be_passed() {
    let _serial = serial();
    bounded(|| {
        let (a, b) = procwire::duplex::<(), ()>().unwrap();
        b.enable_fds().unwrap();
        let (x, y) = procwire::duplex::<u8, u8>().unwrap();
        x.send(&1).unwrap();
        assert!(y.poll(Some(SOON)).unwrap()); // now buffered in `y`
        let err = assert_err!(a.send_connection(&y), Error::Descriptors(_));
        assert!(err.to_string().contains("not yet taken"), "{err}");
        assert_eq!(y.recv().unwrap(), 1);
        a.send_connection(&y).unwrap();
        let y2 = b.recv_connection::<u8, u8>().unwrap();
        x.send(&2).unwrap();
        assert_eq!(y2.recv_timeout(SOON).unwrap(), 2);
    });
}

#[test]
fn child_runs_out_of_descriptors_while_receiving() {
    if !is_child() {
        return;
    }
    let conn = procwire::from_parent::<(), ()>().unwrap();
    conn.enable_fds().unwrap();
    // Room for only a few more descriptors: the kernel installs what fits, drops the rest
    // and flags the message MSG_CTRUNC.
    // The limit bounds descriptor numbers: find the one that leaves three numbers free.
    let open = open_fds();
    let free_below = |n: i32| n - open.iter().filter(|&&fd| fd < n).count() as i32;
    let lowest = (0..).find(|&n| free_below(n) == 3).unwrap();
    let limit = rustix::process::Rlimit {
        current: Some(lowest as u64),
        maximum: rustix::process::getrlimit(rustix::process::Resource::Nofile).maximum,
    };
    rustix::process::setrlimit(rustix::process::Resource::Nofile, limit).unwrap();
    let before = open_fds();
    let err = assert_err!(conn.recv_bytes_fds(), Error::Descriptors(_));
    assert!(err.to_string().contains("MSG_CTRUNC"), "{err}");
    assert_eq!(
        open_fds(),
        before,
        "the descriptors that did arrive are closed"
    );
    assert_eq!(conn.recv_bytes().unwrap(), b"next"); // the stream is still aligned
    conn.send_bytes(b"ok").unwrap();
}

#[test]
fn descriptors_the_receiver_has_no_room_for_are_an_error_and_none_is_left_open() {
    let _serial = serial();
    bounded(|| {
        let cmd = child("child_runs_out_of_descriptors_while_receiving");
        let (child, conn) = procwire::spawn::<(), ()>(cmd).unwrap();
        let file = scratch_file("x");
        conn.send_bytes_fds(b"twenty", &[file.as_fd(); 20]).unwrap();
        conn.send_bytes(b"next").unwrap();
        let mut ok = [0u8; 2];
        conn.poll(Some(SOON)).unwrap();
        assert_eq!(conn.recv_bytes_into(&mut ok).unwrap(), 2);
        assert_eq!(&ok, b"ok");
        assert_exited_ok(wait_for(child, SOON));
    });
}
