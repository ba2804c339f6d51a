//! [`Address`]: where a [`Listener`](crate::Listener) listens and a
//! [`Client`](crate::Client) connects. The family is inferred from the form, as in CPython.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::error::{Error, Result};

/// The longest filesystem path a Unix socket address holds (`sun_path` less its NUL).
pub(crate) const MAX_UNIX_PATH: usize = 107;

/// An address family: what kind of [`Address`] to make with [`Address::arbitrary`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Family {
    /// TCP over IPv4 or IPv6.
    Tcp,
    /// A Unix domain socket bound to a filesystem path.
    Unix,
}

/// A connection address.
///
/// | written as | family |
/// | --- | --- |
/// | `127.0.0.1:5000`, `[::1]:0`, `tcp://host:port`, `localhost:5000` | [`Tcp`](Address::Tcp) / [`TcpHost`](Address::TcpHost) |
/// | `/run/app.sock`, `./app.sock`, `app.sock`, `unix:///run/app.sock` | [`Unix`](Address::Unix) |
/// | `@name`, `unix:@name` | [`Abstract`](Address::Abstract) (Linux) |
/// | `fifo:///tmp/app` | [`Fifo`](Address::Fifo) (named pipes; not yet served) |
///
/// A bare string with a `:` and no `/` is TCP and must end in a valid port; any other
/// string without a scheme is a filesystem path, as in CPython, except one without a `/`
/// that holds whitespace or control characters (`"not an address"`): that is a typo more
/// likely than a file name, and is refused with a message listing the accepted forms
/// (write `./my file` for such a file). Parsing checks the port, an empty address, and
/// the length limits of Unix socket paths and abstract names, so a bad address is an
/// error here rather than at bind time.
///
/// # Examples
///
/// ```
/// use procwire::Address;
///
/// let tcp: Address = "127.0.0.1:0".parse()?;
/// assert!(matches!(tcp, Address::Tcp(_)));
/// let unix: Address = "unix:///tmp/app.sock".parse()?;
/// assert_eq!(unix, Address::Unix("/tmp/app.sock".into()));
/// assert_eq!(unix.to_string(), "/tmp/app.sock");
/// assert!("127.0.0.1:99999".parse::<Address>().is_err());
/// let typo = "not an address".parse::<Address>().unwrap_err();
/// assert!(typo.to_string().contains("neither host:port nor a path"), "{typo}");
/// # Ok::<(), procwire::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Address {
    /// A TCP address with a literal IP.
    Tcp(SocketAddr),
    /// A TCP address with a host name, resolved when binding or connecting
    /// (`localhost` is taken as `127.0.0.1` at parse time).
    TcpHost {
        /// The host name.
        host: String,
        /// The port.
        port: u16,
    },
    /// A Unix domain socket at a filesystem path.
    Unix(PathBuf),
    /// A Linux abstract-namespace Unix socket (the name without its leading NUL).
    ///
    /// Abstract sockets have no permissions: any process in the same network namespace can
    /// connect (CVE-2022-42919). procwire never chooses one implicitly; use an authkey.
    Abstract(Vec<u8>),
    /// A named pipe (FIFO) rendezvous at a filesystem path.
    Fifo(PathBuf),
}

impl Address {
    /// The longest file-system path a Unix socket address holds: 107 bytes (`sun_path`
    /// less its NUL); abstract names have the same limit.
    pub const MAX_UNIX_PATH: usize = MAX_UNIX_PATH;

    /// A fresh address of `family` for a listener: TCP `127.0.0.1:0` (the OS picks the
    /// port), or a Unix socket inside a new private (mode 0700) directory under the
    /// temporary directory. A [`Listener`](crate::Listener) bound to such a Unix address
    /// removes the directory again when it is closed.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the private directory cannot be created.
    ///
    /// # Examples
    ///
    /// ```
    /// use procwire::{Address, Family};
    ///
    /// assert_eq!(Address::arbitrary(Family::Tcp)?.to_string(), "127.0.0.1:0");
    /// let Address::Unix(path) = Address::arbitrary(Family::Unix)? else { unreachable!() };
    /// assert!(path.parent().unwrap().is_dir());
    /// # std::fs::remove_dir(path.parent().unwrap())?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn arbitrary(family: Family) -> Result<Address> {
        match family {
            Family::Tcp => Ok(Address::Tcp(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                0,
            ))),
            Family::Unix => {
                let dir = private_dir(&std::env::temp_dir(), PRIVATE_DIR_PREFIX)?;
                arbitrary_dirs().insert(dir.clone());
                Ok(Address::Unix(dir.join("listener.sock")))
            }
        }
    }

    /// The family of this address, or `None` for a [`Fifo`](Address::Fifo) or
    /// [`Abstract`](Address::Abstract) address.
    pub fn family(&self) -> Option<Family> {
        match self {
            Address::Tcp(_) | Address::TcpHost { .. } => Some(Family::Tcp),
            Address::Unix(_) => Some(Family::Unix),
            Address::Abstract(_) | Address::Fifo(_) => None,
        }
    }
}

/// Prefix of the private directories [`Address::arbitrary`] makes.
const PRIVATE_DIR_PREFIX: &str = "procwire-";

/// The private directories [`Address::arbitrary`] made in this process and nobody removed
/// yet: a listener removes the one its socket file is in when it closes.
pub(crate) fn arbitrary_dirs() -> MutexGuard<'static, BTreeSet<PathBuf>> {
    static DIRS: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());
    DIRS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Makes a new directory with mode 0700 and a random name starting with `prefix` in `base`.
pub(crate) fn private_dir(base: &Path, prefix: &str) -> Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    for _ in 0..16 {
        let mut rnd = [0u8; 6];
        getrandom::fill(&mut rnd).map_err(|e| Error::Io(std::io::Error::other(e.to_string())))?;
        let name: String = rnd.iter().map(|b| format!("{b:02x}")).collect();
        let dir = base.join(format!("{prefix}{name}"));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Io(std::io::Error::new(
        std::io::ErrorKind::AlreadyExists,
        "could not find a free name for a private temporary directory",
    )))
}

/// The forms an address may take, for error messages.
const ACCEPTED_FORMS: &str = "an address is host:port (127.0.0.1:5000, [::1]:0, \
    localhost:5000, tcp://host:port), a Unix socket path (/run/app.sock, ./app.sock, \
    unix:///run/app.sock), an abstract socket (@name) or named pipes (fifo:///tmp/app)";

fn invalid(input: &str, why: &str) -> Error {
    Error::InvalidAddress(format!("{input:?}: {why}"))
}

fn parse_tcp(input: &str, rest: &str) -> Result<Address> {
    if let Ok(addr) = rest.parse::<SocketAddr>() {
        return Ok(Address::Tcp(addr));
    }
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| invalid(input, "expected host:port"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| invalid(input, &format!("bad port {port:?}")))?;
    if host.is_empty() {
        return Err(invalid(input, "empty host"));
    }
    if host.starts_with('[') || host.contains(':') {
        return Err(invalid(input, "bad IPv6 address"));
    }
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(Address::Tcp(SocketAddr::new(
            Ipv4Addr::LOCALHOST.into(),
            port,
        )));
    }
    Ok(Address::TcpHost {
        host: host.to_owned(),
        port,
    })
}

fn parse_path(input: &str, path: &str) -> Result<PathBuf> {
    if path.is_empty() {
        return Err(invalid(input, "empty path"));
    }
    if path.len() > MAX_UNIX_PATH {
        return Err(invalid(
            input,
            &format!(
                "path of {} bytes is longer than the {MAX_UNIX_PATH} a Unix socket allows",
                path.len()
            ),
        ));
    }
    if path.contains('\0') {
        return Err(invalid(input, "path contains a NUL byte"));
    }
    Ok(PathBuf::from(path))
}

fn parse_abstract(input: &str, name: &str) -> Result<Address> {
    if name.len() > MAX_UNIX_PATH {
        return Err(invalid(
            input,
            &format!("abstract name longer than {MAX_UNIX_PATH} bytes"),
        ));
    }
    Ok(Address::Abstract(name.as_bytes().to_vec()))
}

impl FromStr for Address {
    type Err = Error;

    fn from_str(s: &str) -> Result<Address> {
        if s.is_empty() {
            return Err(invalid(s, "empty"));
        }
        if let Some(rest) = s.strip_prefix("tcp://") {
            return parse_tcp(s, rest);
        }
        if let Some(rest) = s.strip_prefix("fifo://") {
            return Ok(Address::Fifo(parse_path(s, rest)?));
        }
        if let Some(rest) = s.strip_prefix("unix:") {
            if let Some(name) = rest.strip_prefix('@').or_else(|| rest.strip_prefix("//@")) {
                return parse_abstract(s, name);
            }
            let path = rest.strip_prefix("//").unwrap_or(rest);
            return Ok(Address::Unix(parse_path(s, path)?));
        }
        if let Some(name) = s.strip_prefix('@') {
            return parse_abstract(s, name);
        }
        if s.contains(':') && !s.contains('/') {
            return parse_tcp(s, s);
        }
        if !s.contains('/') && s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid(
                s,
                &format!("neither host:port nor a path; {ACCEPTED_FORMS}"),
            ));
        }
        Ok(Address::Unix(parse_path(s, s)?))
    }
}

impl TryFrom<&str> for Address {
    type Error = Error;
    fn try_from(s: &str) -> Result<Address> {
        s.parse()
    }
}

impl TryFrom<String> for Address {
    type Error = Error;
    fn try_from(s: String) -> Result<Address> {
        s.parse()
    }
}

impl TryFrom<&Address> for Address {
    type Error = Error;
    fn try_from(a: &Address) -> Result<Address> {
        Ok(a.clone())
    }
}

impl From<SocketAddr> for Address {
    fn from(addr: SocketAddr) -> Address {
        Address::Tcp(addr)
    }
}

impl TryFrom<&Path> for Address {
    type Error = Error;
    fn try_from(path: &Path) -> Result<Address> {
        let bytes = path.as_os_str().as_bytes();
        if bytes.is_empty() || bytes.len() > MAX_UNIX_PATH || bytes.contains(&0) {
            let shown = path.display().to_string();
            return Err(invalid(&shown, "not a usable Unix socket path"));
        }
        Ok(Address::Unix(path.to_owned()))
    }
}

impl TryFrom<PathBuf> for Address {
    type Error = Error;
    fn try_from(path: PathBuf) -> Result<Address> {
        Address::try_from(path.as_path())
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Tcp(addr) => write!(f, "{addr}"),
            Address::TcpHost { host, port } => write!(f, "{host}:{port}"),
            Address::Unix(path) => {
                let shown = path.display().to_string();
                if shown.parse::<Address>().ok().as_ref() == Some(self) {
                    f.write_str(&shown)
                } else {
                    write!(f, "unix://{shown}")
                }
            }
            Address::Abstract(name) => write!(f, "@{}", String::from_utf8_lossy(name)),
            Address::Fifo(path) => write!(f, "fifo://{}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Address {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn tcp_forms_parse() {
        assert_eq!(
            parse("127.0.0.1:80"),
            Address::Tcp("127.0.0.1:80".parse().unwrap())
        );
        assert_eq!(parse("tcp://127.0.0.1:80"), parse("127.0.0.1:80"));
        assert_eq!(parse("[::1]:0"), Address::Tcp("[::1]:0".parse().unwrap()));
        assert_eq!(
            parse("tcp://[::1]:9"),
            Address::Tcp("[::1]:9".parse().unwrap())
        );
        assert_eq!(
            parse("localhost:5"),
            Address::Tcp("127.0.0.1:5".parse().unwrap())
        );
        assert_eq!(
            parse("tcp://example.test:443"),
            Address::TcpHost {
                host: "example.test".into(),
                port: 443
            }
        );
    }

    #[test]
    fn unix_forms_parse() {
        assert_eq!(parse("/tmp/a.sock"), Address::Unix("/tmp/a.sock".into()));
        assert_eq!(parse("./a.sock"), Address::Unix("./a.sock".into()));
        assert_eq!(parse("a.sock"), Address::Unix("a.sock".into()));
        assert_eq!(
            parse("unix:///tmp/a.sock"),
            Address::Unix("/tmp/a.sock".into())
        );
        assert_eq!(parse("unix:rel.sock"), Address::Unix("rel.sock".into()));
        assert_eq!(parse("@name"), Address::Abstract(b"name".to_vec()));
        assert_eq!(parse("unix:@name"), Address::Abstract(b"name".to_vec()));
        assert_eq!(parse("fifo:///tmp/f"), Address::Fifo("/tmp/f".into()));
    }

    #[test]
    fn invalid_addresses_are_refused_at_parse_time() {
        for bad in [
            "",
            "127.0.0.1:99999",
            "127.0.0.1:x",
            "host:",
            ":80",
            "tcp://nohost",
            "unix://",
            "fifo://",
            "[::1:80",
        ] {
            let err = bad.parse::<Address>().expect_err(bad);
            assert!(matches!(err, Error::InvalidAddress(_)), "{bad}: {err:?}");
            assert!(
                err.to_string().starts_with("invalid address"),
                "{bad}: {err}"
            );
        }
        let long = format!("/tmp/{}", "x".repeat(MAX_UNIX_PATH));
        let err = long.parse::<Address>().unwrap_err().to_string();
        assert!(err.contains("longer than the 107"), "{err}");
        assert!(format!("@{}", "x".repeat(108)).parse::<Address>().is_err());
        assert!(format!("@{}", "x".repeat(107)).parse::<Address>().is_ok());
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "127.0.0.1:80",
            "[::1]:0",
            "example.test:443",
            "/tmp/a.sock",
            "./a.sock",
            "a.sock",
            "@name",
            "fifo:///tmp/f",
        ] {
            let a = parse(s);
            assert_eq!(a.to_string(), s);
            assert_eq!(parse(&a.to_string()), a);
        }
        assert_eq!(parse("unix://a.sock").to_string(), "a.sock");
        // A path that would read back as TCP keeps its scheme.
        assert_eq!(
            Address::Unix("host:80".into()).to_string(),
            "unix://host:80"
        );
        assert_eq!(parse("unix://host:80"), Address::Unix("host:80".into()));
    }

    #[test]
    fn arbitrary_unix_address_lives_in_a_private_directory() {
        use std::os::unix::fs::PermissionsExt;
        let Address::Unix(path) = Address::arbitrary(Family::Unix).unwrap() else {
            panic!("not a unix address")
        };
        let dir = path.parent().unwrap();
        let mode = std::fs::metadata(dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        assert!(path.as_os_str().len() <= MAX_UNIX_PATH);
        std::fs::remove_dir(dir).unwrap();
    }

    #[test]
    fn arbitrary_tcp_address_is_loopback_port_zero() {
        assert_eq!(
            Address::arbitrary(Family::Tcp).unwrap(),
            Address::Tcp("127.0.0.1:0".parse().unwrap())
        );
    }
}
