//! Clustered core pub/sub: in-process `weir` NATS servers joined by routes on
//! loopback (real tokio), exercised with async-nats. Conditions such as "interest has
//! propagated" are polled with a deadline, never slept for.

#![cfg(not(madsim))]

use bytes::Bytes;
use futures::StreamExt;
use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use weir_core::server::nats::{self, ClusterConfig, Monitor, NatsConfig, NatsServer, RouteTarget, Varz};

const WAIT: Duration = Duration::from_secs(10);

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

struct Node {
    url: String,
    monitor: Monitor,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Node {
    async fn start(seed: u64, route_listen: SocketAddr, routes: &[SocketAddr]) -> Node {
        let cfg = NatsConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            seed,
            cluster: Some(ClusterConfig {
                listen: route_listen,
                routes: routes.iter().map(|a| RouteTarget::new(a.to_string())).collect(),
                ping_interval: Duration::from_millis(500),
                ..ClusterConfig::default()
            }),
            ..NatsConfig::default()
        };
        let server = NatsServer::bind(cfg, nats::cluster_ledger(1 << 30, 1 << 28)).await.expect("bind");
        let url = format!("nats://{}", server.local_addr());
        let monitor = server.monitor();
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(server.run(async move {
            let _ = rx.await;
        }));
        Node { url, monitor, stop: Some(tx), task }
    }

    async fn client(&self) -> async_nats::Client {
        async_nats::connect(&self.url).await.expect("connect")
    }

    fn varz(&self) -> Varz {
        self.monitor.varz()
    }

    fn remote_subs(&self) -> usize {
        self.varz().cluster.map_or(0, |c| c.remote_subs)
    }

    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(15), &mut self.task).await;
    }
}

/// Poll `cond` every 10 ms until it holds; panic with `what` after [`WAIT`].
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `n` servers, each configured with routes to all others, fully connected.
async fn mesh(n: usize) -> Vec<Node> {
    let addrs: Vec<SocketAddr> = (0..n).map(|_| free_port()).collect();
    let mut nodes = Vec::new();
    for i in 0..n {
        let routes: Vec<SocketAddr> = addrs.iter().copied().filter(|a| *a != addrs[i]).collect();
        nodes.push(Node::start(i as u64 + 1, addrs[i], &routes).await);
    }
    for (i, node) in nodes.iter().enumerate() {
        until(&format!("node {i} to have {} routes", n - 1), || node.varz().routes == n - 1).await;
    }
    nodes
}

async fn stop_all(nodes: Vec<Node>) {
    for n in nodes {
        n.stop().await;
    }
}

async fn next(sub: &mut async_nats::Subscriber) -> async_nats::Message {
    tokio::time::timeout(WAIT, sub.next()).await.expect("timed out").expect("subscription ended")
}

#[tokio::test]
async fn publish_on_a_reaches_subscriber_on_c() {
    let nodes = mesh(3).await;
    let (a, c) = (nodes[0].client().await, nodes[2].client().await);
    let mut sub = c.subscribe("orders.new").await.unwrap();
    c.flush().await.unwrap();
    until("A to learn C's interest", || nodes[0].remote_subs() >= 1).await;
    for i in 0..10u32 {
        a.publish("orders.new", Bytes::from(i.to_string())).await.unwrap();
    }
    a.flush().await.unwrap();
    for i in 0..10u32 {
        let m = next(&mut sub).await;
        assert_eq!(m.subject.as_str(), "orders.new");
        assert_eq!(m.payload, Bytes::from(i.to_string()), "per-publisher order is kept across the route");
    }
    let v = nodes[0].varz().cluster.unwrap();
    assert_eq!(v.route_out_msgs, 10);
    assert_eq!(nodes[2].varz().cluster.unwrap().route_in_msgs, 10);
    stop_all(nodes).await;
}

#[tokio::test]
async fn wildcards_across_nodes_and_one_copy_per_subscriber() {
    let nodes = mesh(3).await;
    let (a, b, c) = (nodes[0].client().await, nodes[1].client().await, nodes[2].client().await);
    let mut star = b.subscribe("w.*").await.unwrap();
    let mut full = b.subscribe("w.>").await.unwrap();
    let mut exact = c.subscribe("w.a").await.unwrap();
    let mut local = a.subscribe("w.>").await.unwrap();
    b.flush().await.unwrap();
    c.flush().await.unwrap();
    a.flush().await.unwrap();
    until("A to learn B's and C's interest", || nodes[0].remote_subs() >= 3).await;
    a.publish("w.a", "1".into()).await.unwrap();
    a.publish("w.a.b", "2".into()).await.unwrap();
    a.publish("w.end", "3".into()).await.unwrap();
    a.flush().await.unwrap();
    assert_eq!(next(&mut star).await.payload, "1");
    assert_eq!(next(&mut star).await.payload, "3");
    for want in ["1", "2", "3"] {
        assert_eq!(next(&mut full).await.payload, want);
        assert_eq!(next(&mut local).await.payload, want);
    }
    assert_eq!(next(&mut exact).await.payload, "1");
    // Two matching patterns on B still mean one message over the route per publish.
    assert_eq!(nodes[0].varz().cluster.unwrap().route_out_msgs, 4, "3 to B, 1 to C");
    // Nothing else arrives: a marker published last is the next thing each sees.
    a.publish("w.a", "end".into()).await.unwrap();
    a.flush().await.unwrap();
    assert_eq!(next(&mut star).await.payload, "end");
    assert_eq!(next(&mut exact).await.payload, "end");
    stop_all(nodes).await;
}

/// Collect messages from several subscriptions until `total` have arrived.
async fn collect(subs: &mut [(usize, async_nats::Subscriber)], total: usize) -> BTreeMap<String, Vec<usize>> {
    let mut got: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut n = 0;
    while n < total {
        let streams = subs.iter_mut().map(|(who, s)| s.map(move |m| (*who, m)));
        let mut merged = futures::stream::select_all(streams);
        let (who, m) = tokio::time::timeout_at(deadline, merged.next())
            .await
            .unwrap_or_else(|_| panic!("only {n} of {total} messages arrived"))
            .expect("subscriptions ended");
        got.entry(String::from_utf8(m.payload.to_vec()).unwrap()).or_default().push(who);
        n += 1;
    }
    got
}

#[tokio::test]
async fn queue_group_across_nodes_delivers_each_message_once() {
    let nodes = mesh(3).await;
    let (a, b, c) = (nodes[0].client().await, nodes[1].client().await, nodes[2].client().await);
    let mut subs = vec![
        (1, b.queue_subscribe("jobs", "workers".into()).await.unwrap()),
        (2, c.queue_subscribe("jobs", "workers".into()).await.unwrap()),
        (3, c.queue_subscribe("jobs", "workers".into()).await.unwrap()),
    ];
    b.flush().await.unwrap();
    c.flush().await.unwrap();
    until("A to learn both nodes' queue interest", || nodes[0].remote_subs() >= 2).await;
    let n = 200;
    for i in 0..n {
        a.publish("jobs", Bytes::from(i.to_string())).await.unwrap();
    }
    a.flush().await.unwrap();
    let got = collect(&mut subs, n).await;
    assert_eq!(got.len(), n, "every message delivered");
    assert!(got.values().all(|w| w.len() == 1), "a message reached two members: {got:?}");
    let mut per_member = BTreeMap::new();
    for w in got.values() {
        *per_member.entry(w[0]).or_insert(0) += 1;
    }
    assert!(
        per_member.contains_key(&1) && (per_member.contains_key(&2) || per_member.contains_key(&3)),
        "{per_member:?}"
    );
    // A published marker must be the next message: nothing was delivered twice.
    let mut marker = a.subscribe("jobs.done").await.unwrap();
    a.flush().await.unwrap();
    a.publish("jobs.done", "x".into()).await.unwrap();
    assert_eq!(next(&mut marker).await.payload, "x");

    // A local member on A is preferred over the remote ones.
    let mut local = a.queue_subscribe("jobs", "workers".into()).await.unwrap();
    a.flush().await.unwrap();
    for i in 0..20 {
        a.publish("jobs", Bytes::from(format!("l{i}"))).await.unwrap();
    }
    a.flush().await.unwrap();
    for i in 0..20 {
        assert_eq!(next(&mut local).await.payload, Bytes::from(format!("l{i}")));
    }
    stop_all(nodes).await;
}

#[tokio::test]
async fn request_reply_across_nodes() {
    let nodes = mesh(3).await;
    let (a, c) = (nodes[0].client().await, nodes[2].client().await);
    let mut svc = c.subscribe("svc.echo").await.unwrap();
    c.flush().await.unwrap();
    let responder = tokio::spawn(async move {
        while let Some(m) = svc.next().await {
            let reply = m.reply.clone().expect("request has a reply subject");
            let mut body = b"echo:".to_vec();
            body.extend_from_slice(&m.payload);
            c.publish(reply, body.into()).await.unwrap();
            c.flush().await.unwrap();
        }
    });
    until("A to learn C's service interest", || nodes[0].remote_subs() >= 1).await;
    for i in 0..5 {
        let r = tokio::time::timeout(WAIT, a.request("svc.echo", Bytes::from(format!("{i}"))))
            .await
            .expect("request timed out")
            .expect("request failed");
        assert_eq!(r.payload, Bytes::from(format!("echo:{i}")));
    }
    responder.abort();
    stop_all(nodes).await;
}

#[tokio::test]
async fn unsubscribe_propagates() {
    let nodes = mesh(2).await;
    let (a, b) = (nodes[0].client().await, nodes[1].client().await);
    let mut gone = b.subscribe("u.x").await.unwrap();
    let mut stays = b.subscribe("u.y").await.unwrap();
    b.flush().await.unwrap();
    until("A to learn B's interest", || nodes[0].remote_subs() == 2).await;
    a.publish("u.x", "1".into()).await.unwrap();
    a.flush().await.unwrap();
    assert_eq!(next(&mut gone).await.payload, "1");
    gone.unsubscribe().await.unwrap();
    b.flush().await.unwrap();
    until("A to forget B's u.x interest", || nodes[0].remote_subs() == 1).await;
    let before = nodes[0].varz().cluster.unwrap().route_out_msgs;
    a.publish("u.x", "2".into()).await.unwrap();
    a.publish("u.y", "3".into()).await.unwrap();
    a.flush().await.unwrap();
    assert_eq!(next(&mut stays).await.payload, "3");
    assert_eq!(nodes[0].varz().cluster.unwrap().route_out_msgs, before + 1, "u.x must not cross the route any more");
    // A client going away withdraws its interest too.
    drop(stays);
    drop(b);
    until("A to forget all of B's interest", || nodes[0].remote_subs() == 0).await;
    stop_all(nodes).await;
}

#[tokio::test]
async fn seed_routes_form_a_full_mesh_and_route_loss_drops_interest() {
    // Only A's address is configured anywhere; dial-back and gossip do the rest.
    let seed = free_port();
    let a = Node::start(1, seed, &[seed]).await;
    let b = Node::start(2, free_port(), &[seed]).await;
    let c = Node::start(3, free_port(), &[seed]).await;
    for (name, n) in [("A", &a), ("B", &b), ("C", &c)] {
        until(&format!("{name} to have 2 routes"), || n.varz().routes == 2).await;
    }
    let (bc, cc) = (b.client().await, c.client().await);
    let mut sub = cc.subscribe("g.x").await.unwrap();
    cc.flush().await.unwrap();
    until("B to learn C's interest", || b.remote_subs() == 1).await;
    bc.publish("g.x", "via-gossip".into()).await.unwrap();
    bc.flush().await.unwrap();
    assert_eq!(next(&mut sub).await.payload, "via-gossip");
    // C goes away: A and B drop its interest and its route.
    drop(sub);
    drop(cc);
    c.stop().await;
    until("A and B to drop C", || a.varz().routes == 1 && b.varz().routes == 1).await;
    until("C's interest to be gone", || a.remote_subs() == 0 && b.remote_subs() == 0).await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn interest_is_resynced_after_a_peer_restarts() {
    let addrs = [free_port(), free_port()];
    let a = Node::start(1, addrs[0], &[addrs[1]]).await;
    let b = Node::start(2, addrs[1], &[addrs[0]]).await;
    until("a route each way", || a.varz().routes == 1 && b.varz().routes == 1).await;
    let ac = a.client().await;
    let mut sub = ac.subscribe("r.x").await.unwrap();
    ac.flush().await.unwrap();
    until("B to learn A's interest", || b.remote_subs() == 1).await;
    b.stop().await;
    until("A to lose its route", || a.varz().routes == 0).await;
    // A new B on the same route address gets A's existing interest in the snapshot.
    let b = Node::start(3, addrs[1], &[addrs[0]]).await;
    until("B to relearn A's interest", || b.remote_subs() == 1).await;
    let bc = b.client().await;
    bc.publish("r.x", "after-restart".into()).await.unwrap();
    bc.flush().await.unwrap();
    assert_eq!(next(&mut sub).await.payload, "after-restart");
    a.stop().await;
    b.stop().await;
}
