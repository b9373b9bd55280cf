//! rustls behind [`ServerTls`] (client listener) and [`RouteTls`] (route stack).

use super::{BoxStream, ERR_TLS_REQUIRED, NotTls, TlsConfig, TlsError};
use crate::proto::{ServerOp, encode_server};
use bytes::BytesMut;
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout, timeout_at};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// A client connection after the handshake.
pub type ClientStream = tokio_rustls::server::TlsStream<TcpStream>;

/// The first byte of a TLS record carrying a handshake message (a ClientHello).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Most bytes read and discarded from a refused plaintext client before closing (so the
/// close is a FIN after our `-ERR`, not a reset that could destroy it in flight).
const DRAIN_LIMIT: usize = 64 * 1024;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read { what, path: path.display().to_string(), source })
}

fn parse_err(what: &'static str, path: &Path, msg: impl Into<String>) -> TlsError {
    TlsError::Parse { what, path: path.display().to_string(), msg: msg.into() }
}

/// Every certificate in the PEM file at `path`; at least one.
fn certs(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(what, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| parse_err(what, path, format!("not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(parse_err(what, path, "no certificate (-----BEGIN CERTIFICATE-----) in the file"));
    }
    Ok(certs)
}

fn key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read("key_file", path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => {
            parse_err("key_file", path, "no private key (PKCS#8, PKCS#1 or SEC1 PEM) in the file")
        }
        e => parse_err("key_file", path, format!("not a PEM private key file: {e}")),
    })
}

fn roots(path: &Path) -> Result<Arc<RootCertStore>, TlsError> {
    let mut store = RootCertStore::empty();
    for c in certs("ca_file", path)? {
        store.add(c).map_err(|e| parse_err("ca_file", path, format!("not a usable CA certificate: {e}")))?;
    }
    Ok(Arc::new(store))
}

fn setup(e: impl std::fmt::Display) -> TlsError {
    TlsError::Setup(e.to_string())
}

/// The server side of a handshake, verifying client certificates against `ca` if given.
fn server_config(cfg: &TlsConfig, verify_with: Option<&Path>) -> Result<ServerConfig, TlsError> {
    let (chain, key) = (certs("cert_file", &cfg.cert_file)?, key(&cfg.key_file)?);
    let p = provider();
    let builder =
        ServerConfig::builder_with_provider(p.clone()).with_safe_default_protocol_versions().map_err(setup)?;
    let builder = match verify_with {
        Some(ca) => builder.with_client_cert_verifier(
            WebPkiClientVerifier::builder_with_provider(roots(ca)?, p).build().map_err(setup)?,
        ),
        None => builder.with_no_client_auth(),
    };
    builder.with_single_cert(chain, key).map_err(|e| TlsError::Setup(format!("cert_file and key_file: {e}")))
}

/// Client-side TLS of a NATS listener: the loaded certificate, key and CA.
pub struct ServerTls {
    acceptor: TlsAcceptor,
    cfg: TlsConfig,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls").field("cfg", &self.cfg).finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Read and check the files of `cfg`.
    pub fn load(cfg: &TlsConfig) -> Result<ServerTls, TlsError> {
        cfg.check()?;
        let verify_with = cfg.ca_file.as_deref().filter(|_| cfg.verify);
        if let (Some(ca), None) = (&cfg.ca_file, verify_with) {
            // Not used without `verify`, but a broken file is still a configuration error.
            roots(ca)?;
        }
        let sc = server_config(cfg, verify_with)?;
        Ok(ServerTls { acceptor: TlsAcceptor::from(Arc::new(sc)), cfg: cfg.clone() })
    }

    /// Upgrade a client connection: `info` first in plaintext (unless `handshake_first`;
    /// with a fallback delay, unless the client starts within it), then the handshake,
    /// within the TLS timeout. Returns the TLS stream and whether `info` is still to be
    /// sent (inside TLS). A client that sends plaintext or nothing gets `-ERR 'Secure
    /// Connection - TLS Required'` and is closed; any failure is the error.
    pub async fn accept_client(&self, mut stream: TcpStream, info: &ServerOp) -> io::Result<(ClientStream, bool)> {
        let mut first = [0u8; 1];
        let info_inside = match (self.cfg.handshake_first, self.cfg.first_fallback) {
            (false, _) => false,
            (true, None) => true,
            (true, Some(wait)) => match timeout(wait, stream.peek(&mut first)).await {
                Ok(Ok(0)) => {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed before the TLS handshake"));
                }
                Ok(Ok(_)) => true,
                Ok(Err(e)) => return Err(e),
                Err(_) => false,
            },
        };
        let deadline = Instant::now() + self.cfg.timeout;
        if !info_inside {
            let mut buf = BytesMut::new();
            encode_server(info, &mut buf);
            timeout_at(deadline, stream.write_all(&buf)).await.map_err(|_| timed_out("INFO write"))??;
        }
        // The first byte, left in the socket for the handshake to read.
        match timeout_at(deadline, stream.peek(&mut first)).await {
            Ok(Ok(n)) if n > 0 && first[0] == TLS_HANDSHAKE_RECORD => {}
            Ok(Ok(0)) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed before the TLS handshake")),
            Ok(Err(e)) => return Err(e),
            silent_or_plain => {
                refuse_plaintext(stream).await;
                let what = if silent_or_plain.is_err() { "no TLS handshake within the timeout" } else { "plaintext" };
                return Err(io::Error::new(io::ErrorKind::InvalidData, NotTls(what)));
            }
        }
        let tls =
            timeout_at(deadline, self.acceptor.accept(stream)).await.map_err(|_| timed_out("TLS handshake"))??;
        Ok((tls, info_inside))
    }
}

fn timed_out(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, format!("{what} timed out"))
}

/// Send nats-server's error in plaintext, then close after reading what the client sent.
async fn refuse_plaintext(mut stream: TcpStream) {
    let err = format!("-ERR '{ERR_TLS_REQUIRED}'\r\n");
    let grace = Duration::from_secs(1);
    if timeout(grace, stream.write_all(err.as_bytes())).await.is_err() {
        return;
    }
    let _ = timeout(grace, stream.shutdown()).await;
    // Closing with unread bytes would send a reset, which may discard the -ERR at the
    // client before it reads it; read (bounded in bytes and time) until the client closes.
    let mut scratch = [0u8; 4096];
    let mut drained = 0;
    let until = Instant::now() + grace;
    while drained < DRAIN_LIMIT {
        match timeout_at(until, stream.read(&mut scratch)).await {
            Ok(Ok(n)) if n > 0 => drained += n,
            _ => break,
        }
    }
}

/// Route TLS: both sides of a route connection, each verifying the other against the CA.
pub struct RouteTls {
    acceptor: TlsAcceptor,
    connector: TlsConnector,
    timeout: Duration,
}

impl std::fmt::Debug for RouteTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteTls").field("timeout", &self.timeout).finish_non_exhaustive()
    }
}

impl RouteTls {
    /// Read and check the files of `cfg`; routes need `ca_file` (verification is always on).
    pub fn load(cfg: &TlsConfig) -> Result<RouteTls, TlsError> {
        let mut cfg = cfg.clone();
        cfg.verify = true;
        let Some(ca) = cfg.ca_file.clone() else {
            return Err(TlsError::Config(
                "'ca_file' is required: routes verify each other's certificates, as nats-server's do".into(),
            ));
        };
        cfg.check()?;
        let server = server_config(&cfg, Some(&ca))?;
        let roots = roots(&ca)?;
        let p = provider();
        let verifier = WebPkiServerVerifier::builder_with_provider(roots, p.clone()).build().map_err(setup)?;
        let client = ClientConfig::builder_with_provider(p)
            .with_safe_default_protocol_versions()
            .map_err(setup)?
            .with_webpki_verifier(verifier)
            .with_client_auth_cert(certs("cert_file", &cfg.cert_file)?, key(&cfg.key_file)?)
            .map_err(|e| TlsError::Setup(format!("cert_file and key_file: {e}")))?;
        Ok(RouteTls {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            connector: TlsConnector::from(Arc::new(client)),
            timeout: cfg.timeout,
        })
    }

    /// How long a route handshake may take.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The accepting side of a route handshake, within the timeout.
    pub async fn accept(&self, stream: TcpStream) -> io::Result<BoxStream> {
        let s = timeout(self.timeout, self.acceptor.accept(stream)).await.map_err(|_| timed_out("TLS handshake"))??;
        Ok(Box::new(s))
    }

    /// The dialling side, checking the peer's certificate for the host of `addr` (`host:port`).
    pub async fn connect(&self, stream: TcpStream, addr: &str) -> io::Result<BoxStream> {
        let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h).trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(host.to_owned())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("route host '{host}': {e}")))?;
        let s = timeout(self.timeout, self.connector.connect(name, stream))
            .await
            .map_err(|_| timed_out("TLS handshake"))??;
        Ok(Box::new(s))
    }
}
