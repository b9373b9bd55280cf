//! The internal client port: propose values to the Raft log over framed bincode.
//! (The NATS client protocol replaces this as the public face; the simulator's
//! Raft workload and `weir propose` use this one.)

use super::frame;
use super::link::{LinkStream, LinkWrap};
use crate::raft::{Index, NodeId};
use serde::{Deserialize, Serialize};
use std::io;
use std::net::SocketAddr;
use tokio::net::TcpStream;

/// A client request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientRequest {
    /// Append `data` to the replicated log.
    Propose {
        /// Caller's request id, echoed back.
        id: u64,
        /// Payload.
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
}

/// The result of a proposal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Committed at `index`.
    Committed {
        /// Log index.
        index: Index,
    },
    /// Definitely not appended: this node is not the leader.
    NotLeader {
        /// Last known leader.
        leader: Option<NodeId>,
    },
    /// Definitely not appended: too many uncommitted proposals.
    Backpressure,
    /// Definitely not appended: payload too large.
    TooLarge,
    /// Definitely not committed (another entry took its place).
    Failed {
        /// Why.
        reason: String,
    },
    /// May or may not commit.
    Unknown {
        /// Why.
        reason: String,
    },
}

/// A response to a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientResponse {
    /// The request id.
    pub id: u64,
    /// What happened.
    pub outcome: Outcome,
}

/// A client connection to one node.
pub struct ClientConn {
    stream: LinkStream,
    buf: Vec<u8>,
}

impl ClientConn {
    /// Connect to a node's client port.
    pub async fn connect(addr: SocketAddr) -> io::Result<ClientConn> {
        ClientConn::connect_with(addr, None).await
    }

    /// Connect to a node's client port with the socket passed through `wrap` (the
    /// simulator's network model, as the node's side of the connection is; see
    /// [`super::link`]).
    pub async fn connect_with(addr: SocketAddr, wrap: Option<&LinkWrap>) -> io::Result<ClientConn> {
        let stream = TcpStream::connect(addr).await?;
        let _ = stream.set_nodelay(true);
        let stream = match wrap {
            Some(w) => w(stream),
            None => Box::new(stream),
        };
        Ok(ClientConn { stream, buf: Vec::new() })
    }

    /// Send a proposal (the first half of [`ClientConn::propose`]).
    pub async fn send(&mut self, id: u64, data: Vec<u8>) -> io::Result<()> {
        frame::write(&mut self.stream, &ClientRequest::Propose { id, data }).await
    }

    /// Wait for the response to `id`.
    pub async fn recv(&mut self, id: u64) -> io::Result<Outcome> {
        loop {
            match frame::read::<ClientResponse, _>(&mut self.stream, &mut self.buf).await? {
                Some(r) if r.id == id => return Ok(r.outcome),
                Some(_) => continue,
                None => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "node closed the connection")),
            }
        }
    }

    /// Propose `data` and wait for the outcome.
    pub async fn propose(&mut self, id: u64, data: Vec<u8>) -> io::Result<Outcome> {
        self.send(id, data).await?;
        self.recv(id).await
    }
}
