//! Certificates for the TLS tests, made with rcgen in a scratch directory: a private CA,
//! a server certificate it issued for `localhost` and 127.0.0.1, a client certificate, an
//! expired server certificate, a self-signed one, and a second CA that issued nothing
//! here.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
};

/// The PEM files, by role.
#[derive(Debug)]
pub(crate) struct Pki {
    pub(crate) dir: PathBuf,
    pub(crate) ca: PathBuf,
    pub(crate) other_ca: PathBuf,
    pub(crate) server_cert: PathBuf,
    pub(crate) server_key: PathBuf,
    pub(crate) expired_cert: PathBuf,
    pub(crate) expired_key: PathBuf,
    pub(crate) client_cert: PathBuf,
    pub(crate) client_key: PathBuf,
    pub(crate) self_signed_cert: PathBuf,
    pub(crate) self_signed_key: PathBuf,
}

fn make_ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

/// The files, made once per test binary.
pub(crate) fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("pw-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |name: &str, text: String| {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let ca = make_ca("procwire test ca");
        let other = make_ca("some other ca");
        let names = vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            "::1".to_string(),
        ];
        let issue = |params: CertificateParams| {
            let key = KeyPair::generate().unwrap();
            let cert = params.signed_by(&key, &ca).unwrap();
            (cert.pem(), key.serialize_pem())
        };
        let (server_cert, server_key) = issue(CertificateParams::new(names.clone()).unwrap());
        let mut old = CertificateParams::new(names.clone()).unwrap();
        old.not_before = date_time_ymd(2001, 1, 1);
        old.not_after = date_time_ymd(2002, 1, 1);
        let (expired_cert, expired_key) = issue(old);
        let (client_cert, client_key) =
            issue(CertificateParams::new(vec!["client".to_string()]).unwrap());
        let own = rcgen::generate_simple_self_signed(names).unwrap();
        Pki {
            ca: write("ca.pem", ca.pem()),
            other_ca: write("other-ca.pem", other.pem()),
            server_cert: write("server.pem", server_cert),
            server_key: write("server.key", server_key),
            expired_cert: write("expired.pem", expired_cert),
            expired_key: write("expired.key", expired_key),
            client_cert: write("client.pem", client_cert),
            client_key: write("client.key", client_key),
            self_signed_cert: write("self.pem", own.cert.pem()),
            self_signed_key: write("self.key", own.signing_key.serialize_pem()),
            dir,
        }
    })
}

/// The server config of the usual test setup: the CA-issued certificate.
pub(crate) fn server() -> Arc<procwire::tls::rustls::ServerConfig> {
    let p = pki();
    procwire::tls::server_config(&p.server_cert, &p.server_key).unwrap()
}

/// The client config of the usual test setup: trusts the test CA.
pub(crate) fn client() -> Arc<procwire::tls::rustls::ClientConfig> {
    procwire::tls::client_config(&pki().ca).unwrap()
}
