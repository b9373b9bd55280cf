//! One route connection carries pub/sub and Raft traffic together: two route stacks on
//! loopback (real tokio), each with a broker stand-in and a Raft inbox.

#![cfg(not(madsim))]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use weir_core::mem::Account;
use weir_core::raft::{Envelope, GroupId, Message};
use weir_core::server::inbox::{InboxRx, inbox};
use weir_core::server::route::{
    Handlers, Hello, PubSubRoutes, RouteConfig, RouteConnId, RouteFrame, RouteOut, RouteSetup, RouteTarget, Routes,
    encode_interest, encode_msg,
};
use weir_core::server::scope::Scope;

/// Records pub/sub frames and, on connect, announces one interest.
#[derive(Default)]
struct Recorder {
    frames: Mutex<Vec<(String, RouteFrame)>>,
    outs: Mutex<Vec<Arc<RouteOut>>>,
}

impl PubSubRoutes for Recorder {
    fn out_open(&self, _server_id: &str, _conn: RouteConnId, out: &Arc<RouteOut>) {
        out.push_control(encode_interest(true, "$G", "orders.>", None));
        self.outs.lock().unwrap().push(out.clone());
    }
    fn out_close(&self, _server_id: &str, _conn: RouteConnId) {}
    fn in_open(&self, _server_id: &str, _conn: RouteConnId, _addr: &str) {}
    fn in_close(&self, _server_id: &str, _conn: RouteConnId) {}
    fn frame(&self, server_id: &str, _conn: RouteConnId, frame: RouteFrame) -> Result<(), String> {
        self.frames.lock().unwrap().push((server_id.to_owned(), frame));
        Ok(())
    }
}

struct Server {
    routes: Arc<Routes>,
    pubsub: Arc<Recorder>,
    inbox: InboxRx,
    account: Arc<Account>,
    _scope: Scope,
}

async fn server(node: u64, listener: TcpListener, peers: &[(u64, SocketAddr)]) -> Server {
    let setup = RouteSetup {
        server_id: format!("S{node}"),
        cluster: "test".into(),
        node,
        routes: peers.iter().map(|&(node, a)| RouteTarget { addr: a.to_string(), node }).collect(),
        cfg: RouteConfig { ping_interval: Duration::from_millis(200), ..RouteConfig::default() },
    };
    let account = Arc::new(Account::new("route.outbound", 1 << 20));
    let routes = Arc::new(Routes::new(setup, listener.local_addr().unwrap(), account.clone()));
    let pubsub = Arc::new(Recorder::default());
    let (tx, inbox) = inbox(4, Arc::new(Account::new("raft.inbox", 1 << 20)));
    let scope = Scope::new();
    routes.start(&scope.handle(), listener, Handlers { pubsub: Some(pubsub.clone()), raft: Some(tx) });
    Server { routes, pubsub, inbox, account, _scope: scope }
}

async fn until(what: &str, f: impl Fn() -> bool) {
    for _ in 0..500 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn one_connection_carries_interest_messages_and_raft() {
    let (la, lb) = (TcpListener::bind("127.0.0.1:0").await.unwrap(), TcpListener::bind("127.0.0.1:0").await.unwrap());
    let b_addr = lb.local_addr().unwrap();
    // Only A is configured with a route; B learns A from the handshake and dials back.
    let a = server(1, la, &[(2, b_addr)]).await;
    let mut b = server(2, lb, &[]).await;
    until("a route each way", || a.routes.connected_nodes() == [2] && b.routes.connected_nodes() == [1]).await;

    let out = a.pubsub.outs.lock().unwrap()[0].clone();
    let msg = encode_msg("$G", "orders.1", None, None, &bytes::Bytes::from_static(b"hi"), &[]).unwrap();
    out.push_msg(msg);
    let env = Envelope {
        group: GroupId::TEST_LOG,
        from: 1,
        to: 2,
        term: 3,
        msg: Message::AppendResp { success: true, index: 7 },
    };
    a.routes.send(&env);

    let got = tokio::time::timeout(Duration::from_secs(5), b.inbox.recv()).await.expect("raft frame arrives");
    assert_eq!(got, Some(env), "the Raft message reaches B's inbox unchanged");
    until("B to hear A's interest and message", || b.pubsub.frames.lock().unwrap().len() >= 2).await;
    let frames = b.pubsub.frames.lock().unwrap().clone();
    assert_eq!(
        frames[0],
        ("S1".into(), RouteFrame::Sub { account: "$G".into(), subject: "orders.>".into(), queue: None })
    );
    assert!(
        matches!(&frames[1].1, RouteFrame::Msg { subject, payload, .. } if subject == "orders.1" && payload == b"hi")
    );
    assert_eq!(
        a.routes.stats.connects.load(std::sync::atomic::Ordering::Relaxed),
        1,
        "A dialled B once: one connection"
    );
    until("queued bytes released", || a.account.current() == 0 && b.account.current() == 0).await;

    // A Raft message for a node with no route is dropped and counted, not queued.
    a.routes.send(&Envelope { to: 9, ..got.unwrap() });
    assert_eq!(a.routes.stats.raft_unrouted.load(std::sync::atomic::Ordering::Relaxed), 1);
}

#[tokio::test]
async fn a_raft_frame_from_the_wrong_node_ends_the_connection() {
    let (la, lb) = (TcpListener::bind("127.0.0.1:0").await.unwrap(), TcpListener::bind("127.0.0.1:0").await.unwrap());
    let b_addr = lb.local_addr().unwrap();
    let a = server(1, la, &[(2, b_addr)]).await;
    let mut b = server(2, lb, &[]).await;
    until("a route each way", || a.routes.connected_nodes() == [2] && b.routes.connected_nodes() == [1]).await;
    // A claims to relay node 5's message: B refuses it and drops the connection.
    a.routes.send(&Envelope {
        group: GroupId::TEST_LOG,
        from: 5,
        to: 2,
        term: 1,
        msg: Message::AppendResp { success: false, index: 0 },
    });
    // B ends the connection; A notices and dials again.
    until("A to redial", || a.routes.stats.connects.load(std::sync::atomic::Ordering::Relaxed) == 2).await;
    assert!(b.inbox.try_recv().is_none(), "the forged message was not delivered");
}

/// A peer that completes the route handshake, then reads everything and answers
/// nothing (a partition or a hung server, seen from the dialler).
async fn silent_peer(listener: TcpListener) {
    let (mut stream, _) = listener.accept().await.unwrap();
    let mut buf = Vec::new();
    let Ok(Some(RouteFrame::Hello(h))) = weir_core::server::frame::read::<RouteFrame, _>(&mut stream, &mut buf).await
    else {
        panic!("a route starts with Hello");
    };
    let answer = Hello { server_id: "SILENT".into(), node: 7, accepted: true, known: vec![], ..h };
    weir_core::server::frame::write(&mut stream, &RouteFrame::Hello(answer)).await.unwrap();
    let mut sink = [0u8; 4096];
    while tokio::io::AsyncReadExt::read(&mut stream, &mut sink).await.is_ok_and(|n| n > 0) {}
}

#[tokio::test]
async fn a_route_whose_pings_go_unanswered_ends_as_stale() {
    let (la, lp) = (TcpListener::bind("127.0.0.1:0").await.unwrap(), TcpListener::bind("127.0.0.1:0").await.unwrap());
    let p_addr = lp.local_addr().unwrap();
    let peer = tokio::spawn(silent_peer(lp));
    let a = server(1, la, &[(7, p_addr)]).await;
    until("the route to the silent peer", || a.routes.connected_nodes() == [7]).await;
    // Nothing tells A that the peer is gone but the missing pongs: after max_pings_out
    // unanswered pings it ends the connection.
    until("the route to end as stale", || a.routes.connected_nodes().is_empty()).await;
    assert_eq!(a.routes.stats.stale.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert_eq!(a.routes.stats.stalled.load(std::sync::atomic::Ordering::Relaxed), 0);
    peer.abort();
}

#[tokio::test]
async fn a_route_whose_pings_are_answered_stays_up() {
    let (la, lb) = (TcpListener::bind("127.0.0.1:0").await.unwrap(), TcpListener::bind("127.0.0.1:0").await.unwrap());
    let b_addr = lb.local_addr().unwrap();
    let a = server(1, la, &[(2, b_addr)]).await;
    let b = server(2, lb, &[]).await;
    until("a route each way", || a.routes.connected_nodes() == [2] && b.routes.connected_nodes() == [1]).await;
    // Wait until more pings have been sent than max_pings_out allows unanswered.
    let sent = || a.routes.stats.frames_sent.load(std::sync::atomic::Ordering::Relaxed);
    until("several pings", || sent() >= 6).await;
    assert_eq!(a.routes.stats.stale.load(std::sync::atomic::Ordering::Relaxed), 0, "answered pings keep the route");
    assert_eq!(a.routes.stats.connects.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert_eq!(a.routes.connected_nodes(), [2]);
}
