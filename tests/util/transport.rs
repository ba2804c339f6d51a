//! The transports procwire offers, with what each can do, and connected links over each:
//! the table the contract suite (`tests/transports.rs`) and other suites run over.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::thread;
use std::time::Duration;

use procwire::{Client, Connection, Listener, Receiver, Sender};
use serde::{Deserialize, Serialize};

/// How long a contract test waits for something that should come at once.
pub(crate) const WAIT: Duration = Duration::from_secs(30);

/// A transport procwire offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    Socketpair,
    Pipe,
    Tcp4,
    Tcp6,
    UnixPath,
    Abstract,
    Fifo,
    /// TCP over IPv4 with TLS (feature `tls`).
    Tls,
}

impl Transport {
    /// Both directions on one connection (a pipe has one).
    pub(crate) fn duplex(self) -> bool {
        self != Transport::Pipe
    }

    /// Connections come from a `Listener` and a `Client`.
    pub(crate) fn listener(self) -> bool {
        !matches!(self, Transport::Socketpair | Transport::Pipe)
    }

    /// Messages can carry file descriptors (Unix-domain sockets only).
    pub(crate) fn descriptors(self) -> bool {
        matches!(
            self,
            Transport::Socketpair | Transport::UnixPath | Transport::Abstract
        )
    }

    /// Whether bytes written to its descriptor directly reach the receiver as stream
    /// bytes: not over TLS, where they are forged records (tests/tls.rs tests that).
    pub(crate) fn raw_writes(self) -> bool {
        self != Transport::Tls
    }

    /// Says out loud that the part of `behaviour` that writes raw bytes does not run over
    /// this transport, and why; whether it runs.
    pub(crate) fn runs_raw(self, behaviour: &str) -> bool {
        if !self.raw_writes() {
            println!(
                "{behaviour} over {self:?}: the part that writes raw bytes is NOT RUN: bytes \
                 written around TLS are forged records (tests/tls.rs checks they fail)"
            );
        }
        self.raw_writes()
    }

    /// Whether this host can run it: `::1` may be missing (said out loud when it is), and
    /// TLS needs the `tls` feature.
    pub(crate) fn available(self) -> bool {
        if self == Transport::Tls && !cfg!(feature = "tls") {
            println!("NOTE: built without the `tls` feature; the Tls transport is not run");
            return false;
        }
        static V6: OnceLock<bool> = OnceLock::new();
        self != Transport::Tcp6
            || *V6.get_or_init(|| {
                let ok = std::net::TcpListener::bind("[::1]:0").is_ok();
                if !ok {
                    eprintln!("NOTE: this host has no ::1; the Tcp6 transport is not run");
                }
                ok
            })
    }

    /// A fresh address to listen on.
    pub(crate) fn listener_addr(self) -> String {
        let n = unique();
        let dir = scratch_dir();
        match self {
            Transport::Tcp4 | Transport::Tls => "127.0.0.1:0".into(),
            Transport::Tcp6 => "[::1]:0".into(),
            Transport::UnixPath => dir.join(format!("s{n}.sock")).display().to_string(),
            Transport::Abstract => format!("@pw-contract-{}-{n}", std::process::id()),
            Transport::Fifo => format!("fifo://{}", dir.join(format!("f{n}")).display()),
            Transport::Socketpair | Transport::Pipe => {
                panic!("{self:?} has no listener")
            }
        }
    }
}

fn scratch_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("pw-contract-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    })
    .clone()
}

fn unique() -> usize {
    static N: AtomicUsize = AtomicUsize::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// A typed value with a little of everything serde has.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum Shape {
    Point,
    Circle { r: f64 },
    Poly(Vec<(i32, i32)>),
}

/// The message the contract suite sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Msg {
    pub(crate) id: u64,
    pub(crate) name: String,
    pub(crate) shape: Shape,
    pub(crate) data: Vec<u8>,
}

/// Message number `id`, different in size and shape from its neighbours.
pub(crate) fn msg(id: u64) -> Msg {
    Msg {
        id,
        name: format!("message {id}"),
        shape: match id % 3 {
            0 => Shape::Point,
            1 => Shape::Circle { r: id as f64 / 3.0 },
            _ => Shape::Poly(vec![(id as i32, -1), (0, i32::MAX)]),
        },
        data: (0..(id % 50) as u8).collect(),
    }
}

pub(crate) type Conn = Connection<Msg, Msg>;

/// Two connected duplex ends through a listener at `addr`, authenticated with `keys`
/// (the listener's, the client's).
pub(crate) fn through_listener(
    addr: String,
    keys: (Option<&str>, Option<&str>),
) -> procwire::Result<(Conn, Conn)> {
    through_listener_over(addr, keys, false)
}

/// [`through_listener`], over TLS when `tls` (the test certificates of `util::tls`).
pub(crate) fn through_listener_over(
    addr: String,
    keys: (Option<&str>, Option<&str>),
    tls: bool,
) -> procwire::Result<(Conn, Conn)> {
    // `accept` returns only authenticated clients; one it refuses comes back through
    // `on_rejected`, as the error the server side reports here.
    let (refused_tx, refused) = std::sync::mpsc::channel();
    let refused_tx = std::sync::Mutex::new(refused_tx);
    let mut lb = Listener::builder().on_rejected(move |_, e| {
        let e = match e {
            procwire::Error::AuthenticationFailed(why) => {
                procwire::Error::AuthenticationFailed(why.clone())
            }
            other => procwire::Error::Protocol(format!("{other:?}")),
        };
        let _ = refused_tx.lock().unwrap().send(e);
    });
    if let Some(k) = keys.0 {
        lb = lb.authkey(k);
    }
    #[cfg(feature = "tls")]
    if tls {
        lb = lb.tls(super::tls::server());
    }
    let listener = lb.bind(addr.as_str())?;
    let local = listener.local_addr().clone();
    let server = thread::spawn(move || {
        let start = std::time::Instant::now();
        loop {
            match listener.accept_timeout::<Msg, Msg>(std::time::Duration::from_millis(20)) {
                Err(procwire::Error::Timeout) if start.elapsed() < WAIT => {}
                other => return other,
            }
            if let Ok(e) = refused.try_recv() {
                return Err(e);
            }
        }
    });
    let mut cb = Client::builder().connect_timeout(WAIT);
    if let Some(k) = keys.1 {
        cb = cb.authkey(k);
    }
    #[cfg(feature = "tls")]
    if tls {
        cb = cb.tls(super::tls::client(), "localhost");
    }
    let _ = tls;
    let client = cb.connect(&local);
    let server = server.join().unwrap();
    Ok((client?, server?))
}

/// One direction of a transport: what `tx` sends `rx` receives. The other halves of both
/// ends are kept (`None` for a pipe); dropping `tx` and `tx_side` closes the sending end.
pub(crate) struct Link {
    pub(crate) tx: Sender<Msg>,
    pub(crate) rx: Receiver<Msg>,
    pub(crate) tx_side: Option<Receiver<Msg>>,
    pub(crate) rx_side: Option<Sender<Msg>>,
}

impl Link {
    fn from_ends(a: Conn, b: Conn) -> Link {
        let (a_tx, a_rx) = a.split();
        let (b_tx, b_rx) = b.split();
        Link {
            tx: a_tx,
            rx: b_rx,
            tx_side: Some(a_rx),
            rx_side: Some(b_tx),
        }
    }

    /// A fresh link over `t`; `reverse` makes the accepting (or second) end the sender.
    pub(crate) fn new(t: Transport, reverse: bool) -> Link {
        let (a, b) = match t {
            Transport::Pipe => {
                let (tx, rx) = procwire::pipe::<Msg>().unwrap();
                return Link {
                    tx,
                    rx,
                    tx_side: None,
                    rx_side: None,
                };
            }
            Transport::Socketpair => procwire::duplex::<Msg, Msg>().unwrap(),
            _ => {
                through_listener_over(t.listener_addr(), (None, None), t == Transport::Tls).unwrap()
            }
        };
        if reverse {
            Link::from_ends(b, a)
        } else {
            Link::from_ends(a, b)
        }
    }

    /// Every link of `t`: both directions of a duplex transport.
    pub(crate) fn each(t: Transport) -> Vec<Link> {
        if t.duplex() {
            vec![Link::new(t, false), Link::new(t, true)]
        } else {
            vec![Link::new(t, false)]
        }
    }

    /// Closes the sending end entirely; the receiver is left.
    pub(crate) fn hang_up(self) -> Receiver<Msg> {
        drop((self.tx, self.tx_side));
        self.rx
    }
}
