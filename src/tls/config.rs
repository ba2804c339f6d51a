//! Configs for the common cases, from PEM files, and a verifier that pins one certificate.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};

use crate::error::{Error, Result};

/// The error for a config that cannot be built: `what` failed, and why.
fn invalid(what: String, why: impl std::fmt::Display) -> Error {
    Error::Io(std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        format!("{what}: {why}"),
    ))
}

/// Every certificate in the PEM file at `path`, in order; at least one.
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let what = || format!("cannot read certificates from {}", path.display());
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| invalid(what(), e))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| invalid(what(), e))?;
    if certs.is_empty() {
        return Err(invalid(what(), "the file holds no CERTIFICATE block"));
    }
    Ok(certs)
}

/// The private key in the PEM file at `path` (PKCS#8, PKCS#1 or SEC1).
fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| {
        invalid(
            format!("cannot read a private key from {}", path.display()),
            e,
        )
    })
}

/// A store of the certificates in the PEM file at `path`, as trust anchors.
fn roots(path: &Path) -> Result<RootCertStore> {
    let mut store = RootCertStore::empty();
    for cert in certificates(path)? {
        store.add(cert).map_err(|e| {
            invalid(
                format!("cannot trust a certificate of {}", path.display()),
                e,
            )
        })?;
    }
    Ok(store)
}

/// A server config with the certificate chain and key in the PEM files `cert_chain` (the
/// server's certificate first) and `key`, asking clients for no certificate.
///
/// For [`ListenerBuilder::tls`](crate::ListenerBuilder::tls). Build a
/// [`rustls::ServerConfig`](https://docs.rs/rustls/0.23/rustls/server/struct.ServerConfig.html) yourself for anything else (session resumption settings,
/// ALPN, a custom client verifier).
///
/// # Errors
///
/// [`Error::Io`] of kind `InvalidInput` when a file cannot be read or parsed, holds no
/// certificate, or the key does not suit the certificate; the text names the file.
///
/// # Examples
///
/// ```no_run
/// let config = procwire::tls::server_config("server.pem", "server.key")?;
/// let listener = procwire::Listener::builder().tls(config).bind("0.0.0.0:7000")?;
/// # Ok::<(), procwire::Error>(())
/// ```
pub fn server_config(
    cert_chain: impl AsRef<Path>,
    key: impl AsRef<Path>,
) -> Result<Arc<ServerConfig>> {
    serving(
        WebPkiClientVerifier::no_client_auth(),
        cert_chain.as_ref(),
        key.as_ref(),
    )
}

/// A server config with the chain and key in the PEM files `cert_chain` and `key`, whose
/// clients `verifier` checks.
fn serving(
    verifier: Arc<dyn ClientCertVerifier>,
    cert_chain: &Path,
    key: &Path,
) -> Result<Arc<ServerConfig>> {
    let chain = certificates(cert_chain)?;
    let key = private_key(key)?;
    let config = ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| invalid("cannot use the server's certificate and key".into(), e))?;
    Ok(Arc::new(config))
}

/// [`server_config`] for mutual TLS: clients must present a certificate that the
/// certificates in the PEM file `client_ca` (one or more) issued.
///
/// # Errors
///
/// As [`server_config`], and for the `client_ca` file.
pub fn server_config_mutual(
    cert_chain: impl AsRef<Path>,
    key: impl AsRef<Path>,
    client_ca: impl AsRef<Path>,
) -> Result<Arc<ServerConfig>> {
    let verifier = WebPkiClientVerifier::builder(Arc::new(roots(client_ca.as_ref())?))
        .build()
        .map_err(|e| invalid("cannot verify client certificates".into(), e))?;
    serving(verifier, cert_chain.as_ref(), key.as_ref())
}

/// A client config that trusts the certificate authorities in the PEM file `ca` (one or
/// more; a private CA, or a copy of the system's bundle) and presents no certificate.
///
/// For [`ClientBuilder::tls`](crate::ClientBuilder::tls), which also names the server
/// whose certificate it expects.
///
/// # Errors
///
/// [`Error::Io`] of kind `InvalidInput` when the file cannot be read or parsed or holds
/// no certificate; the text names the file.
///
/// # Examples
///
/// ```no_run
/// use procwire::{Client, Connection};
///
/// let config = procwire::tls::client_config("ca.pem")?;
/// let conn: Connection<String, String> = Client::builder()
///     .tls(config, "db.example.org")
///     .connect("db.example.org:7000")?;
/// # Ok::<(), procwire::Error>(())
/// ```
pub fn client_config(ca: impl AsRef<Path>) -> Result<Arc<ClientConfig>> {
    let config = ClientConfig::builder()
        .with_root_certificates(roots(ca.as_ref())?)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// [`client_config`] for mutual TLS: the client also presents the certificate chain and
/// key in the PEM files `cert_chain` and `key`.
///
/// # Errors
///
/// As [`client_config`], and for the two files (a key that does not suit the
/// certificate too).
pub fn client_config_mutual(
    ca: impl AsRef<Path>,
    cert_chain: impl AsRef<Path>,
    key: impl AsRef<Path>,
) -> Result<Arc<ClientConfig>> {
    let chain = certificates(cert_chain.as_ref())?;
    let key = private_key(key.as_ref())?;
    let config = ClientConfig::builder()
        .with_root_certificates(roots(ca.as_ref())?)
        .with_client_auth_cert(chain, key)
        .map_err(|e| invalid("cannot use the client's certificate and key".into(), e))?;
    Ok(Arc::new(config))
}

/// A client config that accepts exactly one server certificate, the first in the PEM file
/// `server_cert`, whatever its issuer, names and dates: for two machines of one owner,
/// with a self-signed certificate and no certificate authority.
///
/// The handshake still proves that the server holds that certificate's private key.
/// Nothing else about the certificate is checked (a self-signed certificate has no issuer
/// to ask), so the name given to [`ClientBuilder::tls`](crate::ClientBuilder::tls) does
/// not matter, and replacing the certificate means replacing the pin. Pair it with an
/// [`authkey`](crate::ClientBuilder::authkey) for the server to know the client too.
///
/// # Errors
///
/// [`Error::Io`] of kind `InvalidInput` when the file cannot be read or parsed or holds
/// no certificate.
///
/// # Examples
///
/// ```no_run
/// use procwire::{Client, Connection};
///
/// let config = procwire::tls::pinned_client_config("peer-cert.pem")?;
/// let conn: Connection<u64, u64> = Client::builder()
///     .tls(config, "peer")
///     .authkey("shared secret")
///     .connect("10.0.0.2:7000")?;
/// # Ok::<(), procwire::Error>(())
/// ```
pub fn pinned_client_config(server_cert: impl AsRef<Path>) -> Result<Arc<ClientConfig>> {
    let pinned = certificates(server_cert.as_ref())?.swap_remove(0);
    let provider = CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
    let verifier = Arc::new(Pinned { pinned, provider });
    let config = ClientConfig::builder()
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The verifier of [`pinned_client_config`].
#[derive(Debug)]
struct Pinned {
    pinned: CertificateDer<'static>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.pinned.as_ref() {
            return Ok(ServerCertVerified::assertion());
        }
        let why = std::io::Error::other("it is not the pinned certificate");
        Err(rustls::Error::InvalidCertificate(
            rustls::CertificateError::Other(rustls::OtherError(Arc::new(why))),
        ))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        let algs = &self.provider.signature_verification_algorithms;
        verify_tls12_signature(message, cert, dss, algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        let algs = &self.provider.signature_verification_algorithms;
        verify_tls13_signature(message, cert, dss, algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
