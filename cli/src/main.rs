//! `procwire`: talk to a `multiprocessing.connection` peer (Python or procwire) from the
//! shell, and see what is on the wire.
//!
//! ```text
//! procwire listen 127.0.0.1:6000 --authkey secret recv=all
//! procwire connect 127.0.0.1:6000 --authkey secret send=hello send-py='{"n": [1, 2.5]}' recv
//! ```
//!
//! After the connection is made (and authenticated, with `--authkey`), the steps run in
//! order; without any, `recv=all`. Each received message is printed on a line of its own,
//! in the `--format` asked for.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use procwire::codec::{Decode, Encode, Pickle, PyValue};
use procwire::{Client, Connection, Error, Listener};

/// Talk to a `multiprocessing.connection` Listener or Client (CPython or procwire).
#[derive(Debug, Parser)]
#[command(name = "procwire", version, about, after_help = STEPS_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

const STEPS_HELP: &str = "\
Steps, run in order once connected (default: recv=all):
  send=TEXT       send TEXT's UTF-8 bytes as one message (Python: conn.recv_bytes())
  send-hex=HEX    send these bytes as one message
  send-py=JSON    send the JSON value as a pickled Python object (Python: conn.recv())
  send-json=JSON  send JSON text as one message (procwire's Json codec)
  recv            receive one message and print it
  recv=N          receive N messages
  recv=all        receive until the peer closes the connection

Addresses: host:port, tcp://host:port, /path/to.sock, unix:///path, @abstract, fifo:///path";

#[derive(Debug, Subcommand)]
enum Command {
    /// Listen on ADDR, accept one client, then run the steps.
    #[command(after_help = STEPS_HELP)]
    Listen {
        /// Where to listen (`127.0.0.1:0` picks a free port; the address is printed).
        addr: String,
        #[command(flatten)]
        common: Common,
    },
    /// Connect to the listener at ADDR, then run the steps.
    #[command(after_help = STEPS_HELP)]
    Connect {
        /// The listener's address.
        addr: String,
        /// Wait up to this many seconds for a listener that is not there yet.
        #[arg(long, value_name = "SECS")]
        wait_for_listener: Option<f64>,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Debug, clap::Args)]
struct Common {
    /// The key of CPython's mutual HMAC handshake (`authkey=`); none means no handshake.
    #[arg(long, value_name = "KEY")]
    authkey: Option<String>,
    /// How received messages are printed.
    #[arg(long, value_enum, default_value_t = Format::Auto)]
    format: Format,
    /// Give up a receive after this many seconds.
    #[arg(long, value_name = "SECS")]
    timeout: Option<f64>,
    /// What to do once connected; see below.
    #[arg(value_name = "STEP")]
    steps: Vec<String>,
}

/// How a received payload is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// A Python value if the payload is a pickle, else UTF-8 text if it is valid, else hex.
    Auto,
    /// Lowercase hexadecimal.
    Hex,
    /// UTF-8 text (invalid bytes replaced).
    Utf8,
    /// The payload parsed as JSON, printed compactly.
    Json,
    /// The payload unpickled, printed as Python's `repr` would.
    Python,
}

/// One step of the script.
#[derive(Debug, PartialEq)]
enum Step {
    Send(Vec<u8>),
    Recv(Option<u64>),
}

fn parse_step(step: &str) -> Result<Step, String> {
    let (verb, arg) = step.split_once('=').unwrap_or((step, ""));
    match verb {
        "send" => Ok(Step::Send(arg.as_bytes().to_vec())),
        "send-hex" => from_hex(arg).map(Step::Send),
        "send-py" => {
            let value: serde_json::Value =
                serde_json::from_str(arg).map_err(|e| format!("{step}: not JSON: {e}"))?;
            let mut out = Vec::new();
            Pickle::new()
                .encode(&value, &mut out)
                .map_err(|e| format!("{step}: {e}"))?;
            Ok(Step::Send(out))
        }
        "send-json" => {
            let value: serde_json::Value =
                serde_json::from_str(arg).map_err(|e| format!("{step}: not JSON: {e}"))?;
            Ok(Step::Send(value.to_string().into_bytes()))
        }
        "recv" if arg.is_empty() => Ok(Step::Recv(Some(1))),
        "recv" if arg == "all" => Ok(Step::Recv(None)),
        "recv" => arg
            .parse()
            .map(|n| Step::Recv(Some(n)))
            .map_err(|_| format!("{step}: expected recv, recv=N or recv=all")),
        _ => Err(format!("unknown step {step:?}; see --help")),
    }
}

fn from_hex(text: &str) -> Result<Vec<u8>, String> {
    let digits: Vec<char> = text.chars().filter(|c| !c.is_whitespace()).collect();
    if !digits.len().is_multiple_of(2) {
        return Err(format!("{text:?}: an odd number of hex digits"));
    }
    digits
        .chunks(2)
        .map(|pair| {
            let s: String = pair.iter().collect();
            u8::from_str_radix(&s, 16).map_err(|_| format!("{text:?}: not hex"))
        })
        .collect()
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `payload` shown as `format` says.
fn show(payload: &[u8], format: Format) -> Result<String, String> {
    match format {
        Format::Hex => Ok(to_hex(payload)),
        Format::Utf8 => Ok(String::from_utf8_lossy(payload).into_owned()),
        Format::Json => serde_json::from_slice::<serde_json::Value>(payload)
            .map(|v| v.to_string())
            .map_err(|e| format!("not JSON ({e}): {}", to_hex(payload))),
        Format::Python => {
            let value: Result<PyValue, _> = Pickle::new().decode(payload);
            value
                .map(|v| format!("{v:?}"))
                .map_err(|e| format!("not a pickle ({e}): {}", to_hex(payload)))
        }
        Format::Auto => {
            if payload.first() == Some(&0x80) {
                if let Ok(shown) = show(payload, Format::Python) {
                    return Ok(shown);
                }
            }
            match std::str::from_utf8(payload) {
                Ok(text) => Ok(text.to_string()),
                Err(_) => Ok(to_hex(payload)),
            }
        }
    }
}

fn seconds(secs: f64, what: &str) -> Result<Duration, String> {
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{what} {secs}: {e}"))
}

/// Receives one message, within `timeout` when there is one.
fn recv(conn: &Connection<(), ()>, timeout: Option<Duration>) -> procwire::Result<Vec<u8>> {
    match timeout {
        Some(t) => conn.recv_bytes_timeout(t),
        None => conn.recv_bytes(),
    }
}

/// Runs the steps over `conn`.
fn run_steps(conn: &Connection<(), ()>, common: &Common) -> Result<(), String> {
    let mut steps = common
        .steps
        .iter()
        .map(|s| parse_step(s))
        .collect::<Result<Vec<_>, _>>()?;
    if steps.is_empty() {
        steps.push(Step::Recv(None));
    }
    let timeout = common
        .timeout
        .map(|t| seconds(t, "--timeout"))
        .transpose()?;
    for step in steps {
        match step {
            Step::Send(payload) => conn.send_bytes(&payload).map_err(|e| e.to_string())?,
            Step::Recv(count) => {
                let mut got = 0;
                while count.is_none_or(|n| got < n) {
                    let payload = match recv(conn, timeout) {
                        Err(Error::Disconnected) if count.is_none() => break,
                        other => other.map_err(|e| e.to_string())?,
                    };
                    println!("{}", show(&payload, common.format)?);
                    got += 1;
                }
            }
        }
    }
    Ok(())
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Listen { addr, common } => {
            let mut builder = Listener::builder();
            if let Some(key) = &common.authkey {
                builder = builder.authkey(key.as_bytes());
            }
            let listener = builder.bind(addr.as_str()).map_err(|e| e.to_string())?;
            eprintln!("procwire: listening on {}", listener.local_addr());
            let conn: Connection<(), ()> = listener.accept().map_err(|e| e.to_string())?;
            match listener.last_accepted() {
                Some(peer) => eprintln!("procwire: accepted {peer}"),
                None => eprintln!("procwire: accepted a client"),
            }
            run_steps(&conn, &common)
        }
        Command::Connect {
            addr,
            wait_for_listener,
            common,
        } => {
            let mut builder = Client::builder();
            if let Some(key) = &common.authkey {
                builder = builder.authkey(key.as_bytes());
            }
            if let Some(secs) = wait_for_listener {
                builder = builder.wait_for_listener(seconds(secs, "--wait-for-listener")?);
            }
            let conn: Connection<(), ()> =
                builder.connect(addr.as_str()).map_err(|e| e.to_string())?;
            eprintln!("procwire: connected to {addr}");
            run_steps(&conn, &common)
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("procwire: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_parse_and_refuse_typos() {
        assert_eq!(parse_step("send=hi"), Ok(Step::Send(b"hi".to_vec())));
        assert_eq!(parse_step("send-hex=00ff"), Ok(Step::Send(vec![0, 0xff])));
        assert_eq!(
            parse_step("send-json={\"a\": 1}"),
            Ok(Step::Send(b"{\"a\":1}".to_vec()))
        );
        assert_eq!(parse_step("recv"), Ok(Step::Recv(Some(1))));
        assert_eq!(parse_step("recv=3"), Ok(Step::Recv(Some(3))));
        assert_eq!(parse_step("recv=all"), Ok(Step::Recv(None)));
        assert!(parse_step("recieve").unwrap_err().contains("unknown step"));
        assert!(parse_step("send-hex=abc").is_err());
        assert!(parse_step("send-py=[1,").is_err());
    }

    #[test]
    fn payloads_show_in_each_format() {
        let Step::Send(pickle) = parse_step("send-py={\"n\": [1, 2.5, null]}").unwrap() else {
            unreachable!()
        };
        assert_eq!(
            show(&pickle, Format::Python).unwrap(),
            "{'n': [1, 2.5, None]}"
        );
        assert_eq!(
            show(&pickle, Format::Auto).unwrap(),
            "{'n': [1, 2.5, None]}"
        );
        assert_eq!(show(b"hi", Format::Hex).unwrap(), "6869");
        assert_eq!(show(b"hi", Format::Auto).unwrap(), "hi");
        assert_eq!(show(&[0xff, 0], Format::Auto).unwrap(), "ff00");
        assert_eq!(show(b"[1, 2]", Format::Json).unwrap(), "[1,2]");
        assert!(show(b"hi", Format::Json).unwrap_err().contains("6869"));
        assert!(show(b"hi", Format::Python).is_err());
    }
}
