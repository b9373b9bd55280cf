//! TLS for client and route connections, with rustls (ring provider, TLS 1.2 and 1.3).
//!
//! **Clients**, as nats-server: the server sends INFO in plaintext (`tls_required: true`,
//! and `tls_verify` when client certificates are checked), then expects the client's TLS
//! handshake on the same socket; the protocol continues inside TLS. With
//! `handshake_first` the TLS handshake comes first and INFO is sent inside it (async-nats
//! `tls_first()`, nats.go `TLSHandshakeFirst()`). With a fallback delay
//! (`handshake_first: 300ms` or `auto`, 50 ms) the server waits that long for the client's
//! first byte: a client that speaks first gets the handshake-first flow, one that waits
//! for INFO gets it in plaintext after the delay, then the usual flow (nats-server's
//! `TLSHandshakeFirstFallback`). The handshake, including the wait for its first byte,
//! must finish within `timeout` (nats-server's `tls { timeout }`, 2 s) after that.
//!
//! A client that answers with plaintext (its first byte is not a TLS handshake record,
//! 0x16), or says nothing within the timeout, gets `-ERR 'Secure Connection - TLS
//! Required'` in plaintext and is closed. That is the error nats-server defines for this
//! case; nats-server 2.15.1 tries to send it on a handshake timeout (through the
//! unfinished TLS connection, so it never arrives) and closes at once on plaintext, so
//! its clients see a bare close where weir's see the error.
//!
//! With `verify: true` the server asks for a client certificate and refuses the handshake
//! without one that chains to `ca_file` (nats-server's `RequireAndVerifyClientCert`).
//!
//! **Routes** (weir's own route protocol, not nats-server's): when `cluster { tls { } }` is
//! set, a route connection is TLS from its first byte, both ways verified against
//! `ca_file`, as nats-server forces verification on routes: the dialler checks the peer's
//! certificate for the host it dialled (a DNS name or an IP address in the certificate's
//! subject alternative names) and presents its own certificate, which the accepting side
//! checks. Both servers of a route must have route TLS on, or their handshakes fail.
//!
//! **The simulation build** (`--cfg madsim`) has no TLS: rustls is not compiled in, a
//! configuration asking for TLS fails to load with [`TlsError::Unavailable`], and the
//! route stack's streams are plain TCP there. The simulator tests the protocol, routes and
//! Raft; TLS is tested on loopback with real clients (`tests/nats_tls.rs`).

use std::io;
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};

/// nats-server's `TLS_TIMEOUT`: how long a TLS handshake may take.
pub const DEFAULT_TLS_TIMEOUT: Duration = Duration::from_secs(2);

/// The `-ERR` text for a client that does not start TLS on a server that requires it (nats-server's).
pub const ERR_TLS_REQUIRED: &str = "Secure Connection - TLS Required";

/// TLS settings of a listener, as nats-server's `tls { }` block (and `--tls*` flags).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsConfig {
    /// The server's certificate chain, PEM (`cert_file`, `--tlscert`).
    pub cert_file: PathBuf,
    /// The certificate's private key, PEM: PKCS#8, PKCS#1 or SEC1 (`key_file`, `--tlskey`).
    pub key_file: PathBuf,
    /// CA certificates, PEM, that client certificates (and, on routes, peers' server
    /// certificates) must chain to (`ca_file`, `--tlscacert`).
    pub ca_file: Option<PathBuf>,
    /// Require and verify client certificates (`verify`, `--tlsverify`); needs `ca_file`.
    pub verify: bool,
    /// How long a handshake may take, the wait for its first byte included (`timeout`).
    pub timeout: Duration,
    /// Clients: TLS handshake before INFO (`handshake_first`). Routes ignore it (they are
    /// always TLS from the first byte).
    pub handshake_first: bool,
    /// With `handshake_first`: how long to wait for the client to start the handshake
    /// before falling back to INFO in plaintext first (`handshake_first: 300ms`, or
    /// `auto` for nats-server's [`DEFAULT_FIRST_FALLBACK`]); `None` waits for the
    /// handshake only (`handshake_first: true`). Lets clients of both kinds connect.
    pub first_fallback: Option<Duration>,
}

/// nats-server's `DEFAULT_TLS_HANDSHAKE_FIRST_FALLBACK_DELAY` (`handshake_first: auto`).
pub const DEFAULT_FIRST_FALLBACK: Duration = Duration::from_millis(50);

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            cert_file: PathBuf::new(),
            key_file: PathBuf::new(),
            ca_file: None,
            verify: false,
            timeout: DEFAULT_TLS_TIMEOUT,
            handshake_first: false,
            first_fallback: None,
        }
    }
}

/// Why TLS could not be set up from a [`TlsConfig`]. Messages name the file and the key.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A setting is missing or contradicts another (nats-server's wording where it has one).
    #[error("{0}")]
    Config(String),
    /// A file could not be read.
    #[error("cannot read {what} '{path}': {source}")]
    Read {
        /// Which setting named the file (`cert_file`, ...).
        what: &'static str,
        /// The path as configured.
        path: String,
        /// The I/O error.
        source: io::Error,
    },
    /// A file was read but holds nothing usable.
    #[error("{what} '{path}': {msg}")]
    Parse {
        /// Which setting named the file.
        what: &'static str,
        /// The path as configured.
        path: String,
        /// What is wrong with it.
        msg: String,
    },
    /// rustls refused the certificates or key (a key that does not match the certificate, say).
    #[error("TLS setup: {0}")]
    Setup(String),
    /// The simulation build has no TLS.
    #[error("TLS is not available in the simulation build (--cfg madsim)")]
    Unavailable,
}

impl TlsConfig {
    /// Check what needs no files: a certificate and a key are named, and `verify` has a CA.
    pub fn check(&self) -> Result<(), TlsError> {
        if self.cert_file.as_os_str().is_empty() {
            return Err(TlsError::Config("missing 'cert_file' in TLS configuration".into()));
        }
        if self.key_file.as_os_str().is_empty() {
            return Err(TlsError::Config("missing 'key_file' in TLS configuration".into()));
        }
        if self.verify && self.ca_file.is_none() {
            return Err(TlsError::Config(
                "TLS 'verify' needs 'ca_file' (weir does not use the system's CA certificates)".into(),
            ));
        }
        if self.timeout.is_zero() {
            return Err(TlsError::Config("TLS 'timeout' must be above zero".into()));
        }
        Ok(())
    }
}

/// A client that did not start a TLS handshake (it sent plaintext, or nothing in time) and
/// was refused with [`ERR_TLS_REQUIRED`]; the inner error of the `io::Error` returned.
#[derive(Debug, thiserror::Error)]
#[error("client did not start TLS ({0})")]
pub struct NotTls(pub &'static str);

/// Whether a failed client upgrade looks like a probe, a plaintext client or a timeout
/// rather than a failing TLS client (nats-server logs the former at debug level only).
pub fn is_probe(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::TimedOut | io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset)
        || e.get_ref().is_some_and(|inner| inner.is::<NotTls>())
}

/// A byte stream a connection task can own: plain TCP or TLS over it.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// A stream of either kind, for code that serves both (the route stack).
pub type BoxStream = Box<dyn Stream>;

#[cfg(not(madsim))]
mod imp;
#[cfg(madsim)]
mod sim;

#[cfg(not(madsim))]
pub use imp::{ClientStream, RouteTls, ServerTls};
#[cfg(madsim)]
pub use sim::{ClientStream, RouteTls, ServerTls};
