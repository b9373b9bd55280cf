//! The simulation build's stand-ins: the same API, uninhabited, so that code using TLS
//! compiles unchanged and a configuration asking for TLS fails to load.

use super::{BoxStream, TlsConfig, TlsError};
use crate::proto::ServerOp;
use std::io;
use std::time::Duration;
use tokio::net::TcpStream;

/// A client connection after the handshake; never built in the simulation.
pub type ClientStream = TcpStream;

/// Client-side TLS of a NATS listener; cannot exist in the simulation build.
#[derive(Debug)]
pub enum ServerTls {}

impl ServerTls {
    /// Always [`TlsError::Unavailable`].
    pub fn load(_cfg: &TlsConfig) -> Result<ServerTls, TlsError> {
        Err(TlsError::Unavailable)
    }

    /// Unreachable (no value exists).
    pub async fn accept_client(&self, _stream: TcpStream, _info: &ServerOp) -> io::Result<(ClientStream, bool)> {
        match *self {}
    }
}

/// Route TLS; cannot exist in the simulation build.
#[derive(Debug)]
pub enum RouteTls {}

impl RouteTls {
    /// Always [`TlsError::Unavailable`].
    pub fn load(_cfg: &TlsConfig) -> Result<RouteTls, TlsError> {
        Err(TlsError::Unavailable)
    }

    /// Unreachable (no value exists).
    pub fn timeout(&self) -> Duration {
        match *self {}
    }

    /// Unreachable (no value exists).
    pub async fn accept(&self, _stream: TcpStream) -> io::Result<BoxStream> {
        match *self {}
    }

    /// Unreachable (no value exists).
    pub async fn connect(&self, _stream: TcpStream, _addr: &str) -> io::Result<BoxStream> {
        match *self {}
    }
}
