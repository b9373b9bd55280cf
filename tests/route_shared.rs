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
use weir_core::server::link::{LinkStream, LinkWrap};
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
    fn frames(&self, server_id: &str, _conn: RouteConnId, frames: &mut Vec<RouteFrame>) -> Result<(), String> {
        self.frames.lock().unwrap().extend(frames.drain(..).map(|f| (server_id.to_owned(), f)));
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
    server_with(node, listener, peers, RouteConfig::default(), None).await
}

async fn server_with(
    node: u64,
    listener: TcpListener,
    peers: &[(u64, SocketAddr)],
    cfg: RouteConfig,
    wrap: Option<LinkWrap>,
) -> Server {
    let setup = RouteSetup {
        server_id: format!("S{node}"),
        cluster: "test".into(),
        node,
        routes: peers.iter().map(|&(node, a)| RouteTarget { addr: a.to_string(), node }).collect(),
        cfg: RouteConfig { ping_interval: Duration::from_millis(200), ..cfg },
    };
    let account = Arc::new(Account::new("route.outbound", 1 << 20));
    let routes = Arc::new(Routes::new(setup, listener.local_addr().unwrap(), account.clone()));
    if let Some(w) = wrap {
        routes.set_link_wrap(w);
    }
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

/// A stream that lets its first write through (the handshake answer), then takes no
/// byte ever again (a peer whose socket stopped draining), and says when a write stuck.
struct StallWrites {
    inner: tokio::net::TcpStream,
    writes_left: usize,
    stuck: Arc<std::sync::atomic::AtomicBool>,
}

impl tokio::io::AsyncRead for StallWrites {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for StallWrites {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        if self.writes_left == 0 {
            self.stuck.store(true, std::sync::atomic::Ordering::Relaxed);
            return std::task::Poll::Pending;
        }
        let r = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, std::task::Poll::Ready(Ok(_))) {
            self.writes_left -= 1;
        }
        r
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Regression (pubsub-partitions seed 153 with every fault point on): the acceptor
/// wrote each pong from its read loop, so a pong write that made no progress (the
/// `route.write.stall` fault point, or a socket that stopped draining) held off every
/// message and interest change the peer sent behind it, for up to the stall timeout;
/// the dialler meanwhile saw its pings unanswered, ended the route, and what it had sent
/// was lost. The acceptor must keep reading while a pong is stuck.
#[tokio::test]
async fn a_stuck_pong_write_does_not_hold_off_the_peers_messages() {
    let lb = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let b_addr = lb.local_addr().unwrap();
    let stuck = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stuck.clone();
    let wrap: LinkWrap =
        Arc::new(move |s| -> LinkStream { Box::new(StallWrites { inner: s, writes_left: 1, stuck: flag.clone() }) });
    // A stall timeout far past the test: only reading on can get the message through.
    let cfg = RouteConfig { stall_timeout: Duration::from_secs(600), ..RouteConfig::default() };
    let b = server_with(2, lb, &[], cfg, Some(wrap)).await;
    // A hand-driven dialler, so that no missed pong of ours ends the connection. Its
    // route port has no listener: B's dial back fails and B stays an acceptor.
    let nobody = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let mut a = tokio::net::TcpStream::connect(b_addr).await.unwrap();
    let hello = Hello {
        server_id: "RAW".into(),
        cluster: "test".into(),
        route_host: Some("127.0.0.1".into()),
        route_port: nobody.port(),
        node: 1,
        accepted: false,
        known: vec![],
    };
    let write = weir_core::server::frame::write::<RouteFrame, _>;
    write(&mut a, &RouteFrame::Hello(hello)).await.unwrap();
    let mut buf = Vec::new();
    let answer = weir_core::server::frame::read::<RouteFrame, _>(&mut a, &mut buf).await.unwrap();
    assert!(matches!(answer, Some(RouteFrame::Hello(Hello { accepted: true, .. }))), "{answer:?}");
    write(&mut a, &RouteFrame::Ping).await.unwrap();
    until("B's pong write to get stuck", || stuck.load(std::sync::atomic::Ordering::Relaxed)).await;
    let msg = encode_msg("$G", "orders.1", None, None, &bytes::Bytes::from_static(b"behind"), &[]).unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut a, &msg).await.unwrap();
    until("B to take the message sent behind the stuck pong", || {
        b.pubsub
            .frames
            .lock()
            .unwrap()
            .iter()
            .any(|(_, f)| matches!(f, RouteFrame::Msg { payload, .. } if payload == b"behind"))
    })
    .await;
    assert!(stuck.load(std::sync::atomic::Ordering::Relaxed), "the pong is still stuck");
}
