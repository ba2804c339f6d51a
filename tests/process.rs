//! Real child processes: the test binary re-runs itself as the child (the ipc-channel
//! pattern). A parent test starts `current_exe() --exact <child test>` with
//! [`CHILD_ENV`] set; each `child_*` test returns at once unless that variable is set, so
//! in a normal run they are no-ops.

mod util;

use std::io::ErrorKind;
use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::time::Instant;

use procwire::Error;
use serde::{Deserialize, Serialize};
use util::child::{assert_exited_ok, child, default_sigpipe, is_child, send_until_error, wait_for};
use util::{bounded, SOON};

#[derive(Debug, Serialize, Deserialize)]
enum Request {
    Add(i64, i64),
    Upper(String),
    Reverse(Vec<u8>),
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum Response {
    Sum(i64),
    Text(String),
    Bytes(Vec<u8>),
}

#[test]
fn child_answers_requests() {
    if !is_child() {
        return;
    }
    let conn = procwire::from_parent::<Response, Request>().unwrap();
    for req in conn.iter() {
        let resp = match req.unwrap() {
            Request::Add(a, b) => Response::Sum(a + b),
            Request::Upper(s) => Response::Text(s.to_uppercase()),
            Request::Reverse(mut v) => {
                v.reverse();
                Response::Bytes(v)
            }
        };
        conn.send(&resp).unwrap();
    }
}

#[test]
fn typed_requests_get_typed_responses_from_a_child() {
    bounded(|| {
        let (child, conn) =
            procwire::spawn::<Request, Response>(child("child_answers_requests")).unwrap();
        for i in 0..100 {
            conn.send(&Request::Add(i, -2 * i)).unwrap();
            assert_eq!(conn.recv_timeout(SOON).unwrap(), Response::Sum(-i));
        }
        conn.send(&Request::Upper("héllo".into())).unwrap();
        assert_eq!(
            conn.recv_timeout(SOON).unwrap(),
            Response::Text("HÉLLO".into())
        );
        let big: Vec<u8> = (0..1_000_000u32).map(|i| i as u8).collect();
        conn.send(&Request::Reverse(big.clone())).unwrap();
        let Response::Bytes(back) = conn.recv_timeout(SOON).unwrap() else {
            panic!("expected bytes");
        };
        assert!(back.iter().rev().eq(big.iter()));
        conn.close().unwrap(); // the child's iterator ends and it exits
        assert_exited_ok(wait_for(child, SOON));
    });
}

#[test]
fn child_exits_without_answering() {
    if !is_child() {
        return;
    }
    let _conn = procwire::from_parent::<(), ()>().unwrap();
    std::process::exit(3);
}

#[test]
fn recv_from_a_child_that_exits_without_answering_is_disconnected() {
    bounded(|| {
        let (child, conn) =
            procwire::spawn::<(), ()>(child("child_exits_without_answering")).unwrap();
        let start = Instant::now();
        let err = conn.recv_timeout(SOON).unwrap_err();
        assert!(matches!(err, Error::Disconnected), "{err:?}");
        assert!(start.elapsed() < SOON);
        assert_eq!(wait_for(child, SOON).code(), Some(3));
        assert!(conn.send(&()).unwrap_err().is_disconnected());
    });
}

/// What a child sees of its own descriptors.
#[derive(Debug, Serialize, Deserialize)]
struct FdReport {
    open: Vec<i32>,
    conn_fd: i32,
    conn_cloexec: bool,
}

#[test]
fn child_reports_its_descriptors() {
    if !is_child() {
        return;
    }
    // List before anything else opens a descriptor.
    let conn = procwire::from_parent::<FdReport, ()>().unwrap();
    let open = util::open_fds();
    let report = FdReport {
        open,
        conn_fd: std::os::fd::AsRawFd::as_raw_fd(&conn),
        conn_cloexec: util::is_cloexec(&conn),
    };
    conn.send(&report).unwrap();
    assert!(matches!(conn.recv(), Err(Error::Disconnected)));
}

#[test]
fn nothing_but_stdio_and_the_connection_leaks_into_the_child() {
    bounded(|| {
        use std::os::fd::AsRawFd;
        // Descriptors this test process inherited without close-on-exec (from whoever ran
        // it) legitimately reach every child; the test opens nothing of the kind.
        let inherited = util::inheritable_fds();
        let file = std::fs::File::open(std::env::current_exe().unwrap()).unwrap();
        let (tx, rx) = procwire::pipe::<u8>().unwrap();
        let (a, b) = procwire::duplex::<u8, u8>().unwrap();
        let ours = [
            file.as_raw_fd(),
            tx.as_raw_fd(),
            rx.as_raw_fd(),
            a.as_raw_fd(),
            b.as_raw_fd(),
        ];
        let (child, conn) =
            procwire::spawn::<(), FdReport>(child("child_reports_its_descriptors")).unwrap();
        let report = conn.recv_timeout(SOON).unwrap();
        drop(conn);
        assert_exited_ok(wait_for(child, SOON));

        assert!(
            report.conn_cloexec,
            "from_parent leaves the connection close-on-exec"
        );
        assert!(!ours.contains(&report.conn_fd));
        let unexpected: Vec<i32> = report
            .open
            .iter()
            .copied()
            .filter(|fd| ![0, 1, 2, report.conn_fd].contains(fd) && !inherited.contains(fd))
            .collect();
        assert!(
            unexpected.is_empty(),
            "unexpected descriptors {unexpected:?} in the child (it has {:?}, connection {}, \
             the parent made {ours:?}, inherited {inherited:?})",
            report.open,
            report.conn_fd
        );
        assert!(report.open.contains(&report.conn_fd));
        drop((file, tx, rx, a, b));
    });
}

#[test]
fn child_claims_the_connection_twice() {
    if !is_child() {
        return;
    }
    let conn = procwire::from_parent::<(bool, String), ()>().unwrap();
    let second = procwire::from_parent::<(), ()>();
    let report = match second {
        Ok(_) => (false, "the second claim succeeded".to_string()),
        Err(Error::Io(e)) => (e.kind() == ErrorKind::AlreadyExists, e.to_string()),
        Err(e) => (false, format!("{e:?}")),
    };
    conn.send(&report).unwrap();
}

#[test]
fn from_parent_twice_fails_the_second_time() {
    bounded(|| {
        let (child, conn) =
            procwire::spawn::<(), (bool, String)>(child("child_claims_the_connection_twice"))
                .unwrap();
        let (already, why) = conn.recv_timeout(SOON).unwrap();
        assert!(already, "{why}");
        assert!(why.contains("already claimed"), "{why}");
        assert_exited_ok(wait_for(child, SOON));
    });
}

#[test]
fn from_parent_without_a_parent_connection_fails_clearly() {
    assert!(
        std::env::var_os(procwire::Child::PARENT_FD_ENV).is_none(),
        "the test runner itself was started by procwire::spawn"
    );
    let err = procwire::from_parent::<(), ()>().unwrap_err();
    let Error::Io(io) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(io.kind(), ErrorKind::NotFound);
    let text = io.to_string();
    assert!(text.contains(procwire::Child::PARENT_FD_ENV), "{text}");
    assert!(text.contains("not started by procwire::spawn"), "{text}");
}

#[test]
fn child_with_a_stray_parent_variable() {
    if !is_child() {
        return;
    }
    // Started by a plain `Command` with a made-up PROCWIRE_FD: nothing to claim.
    let err = procwire::from_parent::<(), ()>().unwrap_err();
    let Error::Io(io) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(io.kind(), ErrorKind::NotFound, "{io}");
    assert!(
        io.to_string().contains(procwire::Child::PARENT_FD_ENV),
        "{io}"
    );
}

#[test]
fn from_parent_refuses_a_variable_that_names_no_inherited_socket() {
    bounded(|| {
        // fd 1 is open but not a socket; fd 999 is not open; the last value is garbage.
        for value in ["1:12345", "999:12345", "three"] {
            let mut cmd = child("child_with_a_stray_parent_variable");
            cmd.env(procwire::Child::PARENT_FD_ENV, value);
            assert_exited_ok(wait_for(cmd.spawn().unwrap(), SOON));
        }
    });
}

#[test]
fn spawning_a_missing_program_is_an_io_error() {
    let err =
        procwire::spawn::<(), ()>(Command::new("/nonexistent/procwire-test-program")).unwrap_err();
    assert!(
        matches!(&err, Error::Io(e) if e.kind() == ErrorKind::NotFound),
        "{err:?}"
    );
}

#[test]
fn child_writes_to_a_closed_pipe_with_default_sigpipe() {
    if !is_child() {
        return;
    }
    default_sigpipe();
    let (tx, rx) = procwire::pipe::<u32>().unwrap();
    drop(rx);
    send_until_error(|| tx.send(&1));
    send_until_error(|| tx.send_bytes(&[0u8; 200_000]));
}

#[test]
fn child_writes_to_a_pipe_made_before_sigpipe_was_reset() {
    if !is_child() {
        return;
    }
    let (tx, rx) = procwire::pipe::<u32>().unwrap();
    default_sigpipe();
    drop(rx);
    send_until_error(|| tx.send(&1));
}

#[test]
fn child_writes_to_a_closed_socket_with_default_sigpipe() {
    if !is_child() {
        return;
    }
    default_sigpipe();
    let (a, b) = procwire::duplex::<u32, u32>().unwrap();
    drop(b);
    send_until_error(|| a.send(&1));
    send_until_error(|| a.send_bytes(&[0u8; 200_000]));
}

#[test]
fn writing_to_a_closed_peer_never_kills_a_process_with_default_sigpipe() {
    bounded(|| {
        for name in [
            "child_writes_to_a_closed_pipe_with_default_sigpipe",
            "child_writes_to_a_pipe_made_before_sigpipe_was_reset",
            "child_writes_to_a_closed_socket_with_default_sigpipe",
        ] {
            let status = wait_for(child(name).spawn().unwrap(), SOON);
            assert_eq!(
                status.signal(),
                None,
                "{name}: killed by a signal: {status:?}"
            );
            assert!(status.success(), "{name}: {status:?}");
        }
    });
}
