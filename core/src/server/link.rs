//! The route stream seam. Every route connection's socket passes once through an
//! optional [`LinkWrap`] before the route stack reads or writes it. In production there
//! is none: the stack runs on the plain `TcpStream`. The simulator wraps each stream in
//! its model of the network between two nodes (latency, bandwidth), since madsim's TCP
//! has neither.
//!
//! The Raft node shell's client port (`server::node`, the test log application's
//! protocol) and its client ([`super::client::ClientConn::connect_with`]) take the same
//! wrap, so the simulator carries client requests on its own network model too.
//!
//! The wrap only transforms a byte stream; it answers no question about the network.
//! The route stack learns that a link is cut, slow or dead the way it would on real
//! sockets: missed pings, writes that make no progress, errors and end of stream.

use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// A byte stream a route connection runs on.
pub trait LinkIo: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> LinkIo for T {}

/// A route connection's stream, as the route stack holds it.
pub type LinkStream = Box<dyn LinkIo>;

/// Turns each freshly connected or accepted route socket into the stream the route
/// stack uses (the simulator's network model; absent in production).
pub type LinkWrap = Arc<dyn Fn(TcpStream) -> LinkStream + Send + Sync>;
