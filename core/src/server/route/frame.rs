//! The route wire format: one [`RouteFrame`] type for every kind of traffic between
//! servers (handshake, pub/sub interest and messages, keepalives, Raft).
//!
//! A connection carries length-prefixed bincode frames (see `server::frame`):
//! `len: u32 LE`, then a bincode-2 `RouteFrame`. Connections are one-way: the dialling
//! server sends, the accepting server only answers the handshake. Every pair of servers
//! therefore has two connections, one per direction.
//!
//! 1. The dialler sends [`RouteFrame::Hello`]: server id, cluster name, advertised route
//!    address, Raft node id (0 when the server has none).
//! 2. The acceptor answers with its own `Hello`, with `accepted` false when it refuses
//!    the connection (another live connection from the same server, a different
//!    cluster name, or a connection to itself) and `known` listing the route addresses
//!    of the peers it knows, which the dialler also dials (gossip, so seed-only configs
//!    form a full mesh).
//! 3. A dialler with a broker that advertises its client address then sends one
//!    [`RouteFrame::ClientUrl`] (cluster discovery, see `server::nats::discovery`); the
//!    variant is the enum's last, so frames from servers without it decode unchanged.
//! 4. The dialler then sends its whole current pub/sub interest as [`RouteFrame::Sub`]
//!    frames (if it has a broker), then in any mix: interest changes (`Sub`/`Unsub`),
//!    messages ([`RouteFrame::Msg`]), Raft messages ([`RouteFrame::Raft`]) and
//!    [`RouteFrame::Ping`] keepalives, each answered by the acceptor with a
//!    [`RouteFrame::Pong`] on the same connection (the only frame it sends after the
//!    handshake); the dialler ends a connection whose pings go unanswered.
//!
//! A `Msg` is delivered by the receiver only to its own clients: to every matching
//! plain subscription, and to one local member of each queue group named in `queues`.
//! It is never forwarded to another route (full mesh, one hop). A `Raft` frame must come
//! from the node id the connection's `Hello` named.

use crate::raft::{Envelope, NodeId};
use crate::server::frame;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// The handshake both sides send. It carries what each user of a route needs to know
/// about its peer: the NATS server id, cluster name and route address (for pub/sub
/// interest and gossip) and the Raft node id (for Raft traffic).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The sender's server id (fresh for every start of a server).
    pub server_id: String,
    /// The sender's cluster name.
    pub cluster: String,
    /// Host of the sender's route listener, or `None` when it listens on all addresses
    /// (the receiver then uses the connection's source address).
    pub route_host: Option<String>,
    /// Port of the sender's route listener.
    pub route_port: u16,
    /// The sender's Raft node id; 0 when it has none (a pub/sub-only server).
    pub node: NodeId,
    /// In the acceptor's answer: whether the connection is accepted.
    pub accepted: bool,
    /// In the acceptor's answer: route addresses (`host:port`) of the peers it knows.
    pub known: Vec<String>,
}

/// What travels on a route connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RouteFrame {
    /// Handshake (first frame each way).
    Hello(Hello),
    /// The sender now has interest in `subject` (for `queue`, if given) in `account`
    /// (as nats-server's `RS+ <account> <subject> [<queue>]`).
    Sub {
        /// NATS account name (`$G` by default).
        account: String,
        /// Subject pattern.
        subject: String,
        /// Queue group.
        queue: Option<String>,
    },
    /// The sender no longer has interest in `subject`/`queue` in `account` (`RS-`).
    Unsub {
        /// NATS account name.
        account: String,
        /// Subject pattern.
        subject: String,
        /// Queue group.
        queue: Option<String>,
    },
    /// A message for the receiver's local subscribers in `account` (`RMSG <account> ...`).
    Msg {
        /// NATS account name.
        account: String,
        /// Subject.
        subject: String,
        /// Reply subject.
        reply: Option<String>,
        /// Raw header block.
        #[serde(with = "serde_bytes")]
        headers: Option<Vec<u8>>,
        /// Body.
        #[serde(with = "serde_bytes")]
        payload: Vec<u8>,
        /// Queue groups for which the receiver delivers to one local member.
        queues: Vec<String>,
    },
    /// Keepalive, sent by the dialler every ping interval.
    Ping,
    /// A Raft message (its envelope names the group, sender and receiver).
    Raft(Envelope),
    /// The acceptor's answer to a `Ping`, the only frame it sends after the handshake.
    Pong,
    /// The dialler's advertised client address, sent once after the handshake unless
    /// it does not advertise (see [`crate::server::nats::discovery`]). Last variant,
    /// so that every older frame decodes as before.
    ClientUrl {
        /// Host clients dial; `None`: the host the route comes from.
        host: Option<String>,
        /// Client port.
        port: u16,
    },
}

/// Borrowed twin of [`RouteFrame`] (same variants in the same order, same encoding),
/// so that sending does not copy a message or a Raft append into owned values first.
#[derive(Serialize)]
pub(super) enum RouteFrameRef<'a> {
    Hello(&'a Hello),
    Sub {
        account: &'a str,
        subject: &'a str,
        queue: Option<&'a str>,
    },
    Unsub {
        account: &'a str,
        subject: &'a str,
        queue: Option<&'a str>,
    },
    Msg {
        account: &'a str,
        subject: &'a str,
        reply: Option<&'a str>,
        headers: Option<&'a serde_bytes::Bytes>,
        payload: &'a serde_bytes::Bytes,
        queues: &'a [&'a str],
    },
    Ping,
    Raft(&'a Envelope),
    Pong,
    ClientUrl {
        host: Option<&'a str>,
        port: u16,
    },
}

/// Encode an interest change (`sub` true for `Sub`) in NATS account `account` as one frame.
pub fn encode_interest(sub: bool, account: &str, subject: &str, queue: Option<&str>) -> Vec<u8> {
    let f = if sub {
        RouteFrameRef::Sub { account, subject, queue }
    } else {
        RouteFrameRef::Unsub { account, subject, queue }
    };
    frame::encode(&f).expect("interest frames are small")
}

/// Encode a message frame of NATS account `account`; `None` if it exceeds the frame limit.
pub fn encode_msg(
    account: &str,
    subject: &str,
    reply: Option<&str>,
    headers: Option<&Bytes>,
    payload: &Bytes,
    queues: &[&str],
) -> Option<Vec<u8>> {
    let f = RouteFrameRef::Msg {
        account,
        subject,
        reply,
        // An empty header block is no header block (as for client delivery): the
        // receiver must deliver a plain MSG.
        headers: headers.filter(|h| !h.is_empty()).map(|h| serde_bytes::Bytes::new(h)),
        payload: serde_bytes::Bytes::new(payload),
        queues,
    };
    frame::encode(&f).ok()
}

/// Encode a Raft message frame; `None` if it exceeds the frame limit.
pub fn encode_raft(env: &Envelope) -> Option<Vec<u8>> {
    frame::encode(&RouteFrameRef::Raft(env)).ok()
}

/// Encode a [`RouteFrame::ClientUrl`] frame.
pub fn encode_client_url(host: Option<&str>, port: u16) -> Vec<u8> {
    frame::encode(&RouteFrameRef::ClientUrl { host, port }).expect("client URL frames are small")
}

/// Encode a handshake frame.
pub(super) fn encode_hello(h: &Hello) -> Vec<u8> {
    frame::encode(&RouteFrameRef::Hello(h)).expect("hello frames are small")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::{GroupId, Message};

    #[test]
    fn ref_encoding_matches_owned() {
        let b = encode_msg("A", "a.b", Some("r"), Some(&Bytes::from_static(b"h")), &Bytes::from_static(b"xy"), &["q"])
            .unwrap();
        let f: RouteFrame = frame::decode(&b[4..]).unwrap();
        assert_eq!(
            f,
            RouteFrame::Msg {
                account: "A".into(),
                subject: "a.b".into(),
                reply: Some("r".into()),
                headers: Some(b"h".to_vec()),
                payload: b"xy".to_vec(),
                queues: vec!["q".into()]
            }
        );
        let s: RouteFrame = frame::decode(&encode_interest(false, "$G", "x.>", Some("g"))[4..]).unwrap();
        assert_eq!(s, RouteFrame::Unsub { account: "$G".into(), subject: "x.>".into(), queue: Some("g".into()) });
        let h = Hello {
            server_id: "N".into(),
            cluster: "c".into(),
            route_host: None,
            route_port: 1,
            node: 3,
            accepted: true,
            known: vec![],
        };
        assert_eq!(frame::decode::<RouteFrame>(&encode_hello(&h)[4..]).unwrap(), RouteFrame::Hello(h));
        let p = frame::encode(&RouteFrameRef::Ping).unwrap();
        assert_eq!(frame::decode::<RouteFrame>(&p[4..]).unwrap(), RouteFrame::Ping);
        let p = frame::encode(&RouteFrameRef::Pong).unwrap();
        assert_eq!(frame::decode::<RouteFrame>(&p[4..]).unwrap(), RouteFrame::Pong);
        let u = encode_client_url(Some("h"), 4222);
        assert_eq!(
            frame::decode::<RouteFrame>(&u[4..]).unwrap(),
            RouteFrame::ClientUrl { host: Some("h".into()), port: 4222 }
        );
        // Older frames keep their encoding: `Pong` is still variant 6.
        assert_eq!(&p[4..], &[6]);
        let env = Envelope {
            group: GroupId(3),
            from: 1,
            to: 2,
            term: 4,
            msg: Message::AppendResp { success: true, index: 9 },
        };
        let r = encode_raft(&env).unwrap();
        assert_eq!(frame::decode::<RouteFrame>(&r[4..]).unwrap(), RouteFrame::Raft(env));
    }

    #[test]
    fn an_empty_header_block_crosses_a_route_as_none() {
        // Issue 9, fault 1: `HPUB foo 0 5` must reach subscribers on every server as MSG.
        let b = encode_msg("$G", "foo", None, Some(&Bytes::new()), &Bytes::from_static(b"hello"), &[]).unwrap();
        match frame::decode::<RouteFrame>(&b[4..]).unwrap() {
            RouteFrame::Msg { headers, payload, .. } => {
                assert_eq!(headers, None);
                assert_eq!(payload, b"hello".to_vec());
            }
            other => panic!("expected a Msg frame, got {other:?}"),
        }
    }
}
