//! Accounts, permissions, NKEY users and `no_auth_user`: async-nats and raw TCP against
//! an in-process weir configured as tests/configs/accounts.conf says (real tokio,
//! loopback).
//!
//! With `NATS_ACCOUNTS_SERVER_URL` set (a server started with `-c tests/configs/accounts.conf`,
//! as scripts/compat-nats-server does with nats-server), the tests run against it instead.

#![cfg(not(madsim))]

mod common;

use async_nats::client::RequestErrorKind;
use async_nats::{ConnectErrorKind, ConnectOptions, Event, ServerError};
use futures::StreamExt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use weir_core::server::nats::Auth;
use weir_core::server::nats::auth::{Credential, GLOBAL_ACCOUNT, Permissions, ResponsePerm, SubjectPerm, User, Users};

const NKEY_SEED: &str = "SUACUKRKFIVCUKRKFIVCUKRKFIVCUKRKFIVCUKRKFIVCUKRKFIVCUKTGMM";
const NKEY_PUBLIC: &str = "UAMX62ZD4FWIKMWGVPEDR6WNL2TYTPQMO2ZJEAZUAON7VCZ5G2GWCXLM";

/// The users of tests/configs/accounts.conf.
fn accounts_auth() -> Auth {
    let list = |s: &[&str]| Some(s.iter().map(|x| x.to_string()).collect::<Vec<_>>());
    let mut limited = User::password("limited", "l", GLOBAL_ACCOUNT);
    limited.permissions = Some(Arc::new(Permissions {
        publish: Some(SubjectPerm { allow: list(&["allowed.>", "_INBOX.>"]), deny: vec!["allowed.secret".into()] }),
        subscribe: Some(SubjectPerm { allow: list(&["allowed.>", "_INBOX.>"]), deny: vec!["allowed.hidden".into()] }),
        allow_responses: None,
    }));
    let mut responder = User::password("responder", "r", GLOBAL_ACCOUNT);
    responder.permissions = Some(Arc::new(
        Permissions {
            publish: Some(SubjectPerm { allow: list(&["none.>"]), deny: vec![] }),
            subscribe: Some(SubjectPerm { allow: list(&["svc.>"]), deny: vec![] }),
            allow_responses: Some(ResponsePerm::default()),
        }
        .normalized(),
    ));
    Auth::Users(Arc::new(Users {
        users: vec![
            User::password("a", "a", "A"),
            User::password("b", "b", "B"),
            limited,
            responder,
            User::password("g", "g", GLOBAL_ACCOUNT),
            User { cred: Credential::Nkey(NKEY_PUBLIC.into()), account: GLOBAL_ACCOUNT.into(), permissions: None },
        ],
        no_auth_user: Some("a".into()),
    }))
}

struct Target {
    url: String,
    addr: SocketAddr,
    local: Option<common::TestServer>,
}

impl Target {
    async fn new() -> Target {
        match std::env::var("NATS_ACCOUNTS_SERVER_URL").ok().filter(|u| !u.is_empty()) {
            Some(url) => {
                let addr = url.trim_start_matches("nats://").to_socket_addrs().unwrap().next().unwrap();
                Target { url, addr, local: None }
            }
            None => {
                let mut cfg = common::config();
                cfg.auth = accounts_auth();
                cfg.accounts = vec!["A".into(), "B".into()];
                let s = common::start(cfg).await;
                Target { url: s.url(), addr: s.addr, local: Some(s) }
            }
        }
    }

    async fn connect(&self, opts: ConnectOptions) -> async_nats::Client {
        opts.connect(&self.url).await.expect("connect")
    }

    async fn user(&self, user: &str, pass: &str) -> async_nats::Client {
        self.connect(ConnectOptions::with_user_and_password(user.into(), pass.into())).await
    }

    async fn stop(self) {
        if let Some(s) = self.local {
            s.stop().await;
        }
    }
}

/// The next message on `sub` (within 5 s).
async fn got(sub: &mut async_nats::Subscriber) -> Option<async_nats::Message> {
    tokio::time::timeout(Duration::from_secs(5), sub.next()).await.ok().flatten()
}

/// Whether `sub` stays quiet for a short while. The publisher flushed (a round trip)
/// before, so a message that was routed would normally be here; a wrongly routed one
/// arriving later still fails a later assertion of the same test.
async fn none(sub: &mut async_nats::Subscriber) -> bool {
    tokio::time::timeout(Duration::from_millis(300), sub.next()).await.ok().flatten().is_none()
}

#[tokio::test]
async fn accounts_are_isolated_subject_spaces() {
    let t = Target::new().await;
    let a = t.user("a", "a").await;
    let b = t.user("b", "b").await;
    let g = t.user("g", "g").await;
    let subject = common::prefix("acc");
    let mut sa = a.subscribe(format!("{subject}.>")).await.unwrap();
    let mut sb = b.subscribe(format!("{subject}.>")).await.unwrap();
    let mut sg = g.subscribe(format!("{subject}.>")).await.unwrap();
    for c in [&a, &b, &g] {
        common::sync(c).await;
    }
    b.publish(format!("{subject}.1"), "from b".into()).await.unwrap();
    b.flush().await.unwrap();
    assert_eq!(&got(&mut sb).await.expect("B hears itself").payload[..], b"from b");
    assert!(none(&mut sa).await, "A must not see B's message");
    assert!(none(&mut sg).await, "$G must not see B's message");
    // A client without credentials is the no_auth_user `a`, so in A.
    let anon = t.connect(ConnectOptions::new()).await;
    anon.publish(format!("{subject}.2"), "anon".into()).await.unwrap();
    anon.flush().await.unwrap();
    assert_eq!(&got(&mut sa).await.expect("A hears the anonymous client").payload[..], b"anon");
    assert!(none(&mut sb).await);
    // Requests stay in their account too: B's responder is not A's.
    let mut svc = b.subscribe(format!("{subject}svc")).await.unwrap();
    common::sync(&b).await;
    let err = a.request(format!("{subject}svc"), "q".into()).await.expect_err("nobody in A answers");
    assert_eq!(err.kind(), async_nats::RequestErrorKind::NoResponders, "{err}");
    assert!(none(&mut svc).await);
    t.stop().await;
}

/// Connect with an event channel, so that `-ERR`s can be awaited.
async fn with_events(t: &Target, user: &str, pass: &str) -> (async_nats::Client, tokio::sync::mpsc::Receiver<Event>) {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let opts = ConnectOptions::with_user_and_password(user.into(), pass.into()).event_callback(move |e| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(e).await;
        }
    });
    (t.connect(opts).await, rx)
}

async fn next_error(rx: &mut tokio::sync::mpsc::Receiver<Event>) -> String {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.expect("no -ERR came").unwrap() {
            Event::ServerError(ServerError::Other(e)) => return e,
            Event::ServerError(e) => panic!("unexpected server error {e:?}"),
            _ => {}
        }
    }
}

#[tokio::test]
async fn permissions_refuse_with_nats_servers_errors_and_the_connection_stays() {
    let t = Target::new().await;
    let (c, mut events) = with_events(&t, "limited", "l").await;
    let watcher = t.user("g", "g").await;
    let mut all = watcher.subscribe("allowed.>").await.unwrap();
    common::sync(&watcher).await;
    c.publish("allowed.secret", "no".into()).await.unwrap();
    c.flush().await.unwrap();
    let e = next_error(&mut events).await;
    assert!(e.contains(r#"Permissions Violation for Publish to "allowed.secret""#), "{e}");
    c.publish("other", "no".into()).await.unwrap();
    let e = next_error(&mut events).await;
    assert!(e.contains(r#"Permissions Violation for Publish to "other""#), "{e}");
    // Still connected: an allowed publish goes through.
    c.publish("allowed.ok", "yes".into()).await.unwrap();
    c.flush().await.unwrap();
    assert_eq!(got(&mut all).await.expect("allowed publish").subject.as_str(), "allowed.ok");
    assert!(none(&mut all).await, "the refused publishes went nowhere");
    // A refused SUB, then a wildcard SUB whose denied subject is filtered at delivery.
    let _refused = c.subscribe("elsewhere").await.unwrap();
    let e = next_error(&mut events).await;
    assert!(e.contains(r#"Permissions Violation for Subscription to "elsewhere""#), "{e}");
    let mut mine = c.subscribe("allowed.*").await.unwrap();
    // The subscription is in place once its own probe comes back (a flush alone raced
    // with the SUB against nats-server, after the `-ERR`).
    let mut ready = false;
    for _ in 0..20 {
        c.publish("allowed.probe", "p".into()).await.unwrap();
        c.flush().await.unwrap();
        if let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(250), mine.next()).await {
            ready = true;
            break;
        }
    }
    assert!(ready, "the allowed.* subscription never saw its own probe");
    while tokio::time::timeout(Duration::from_millis(100), mine.next()).await.is_ok_and(|m| m.is_some()) {}
    watcher.publish("allowed.hidden", "h".into()).await.unwrap();
    watcher.publish("allowed.seen", "s".into()).await.unwrap();
    watcher.flush().await.unwrap();
    assert_eq!(got(&mut mine).await.expect("allowed.seen").subject.as_str(), "allowed.seen");
    assert!(none(&mut mine).await, "allowed.hidden is denied to this subscriber");
    t.stop().await;
}

#[tokio::test]
async fn allow_responses_lets_a_service_answer_requests_once() {
    let t = Target::new().await;
    let (svc, mut events) = with_events(&t, "responder", "r").await;
    let mut requests = svc.subscribe("svc.echo").await.unwrap();
    // The responder may not publish to an inbox, so it cannot run `common::sync`: the
    // requester retries until the SUB is in (a no-responders answer is itself a round trip).
    svc.flush().await.unwrap();
    let g = t.user("g", "g").await;
    let task = tokio::spawn(async move {
        let m = requests.next().await.unwrap();
        let reply = m.reply.clone().unwrap();
        svc.publish(reply.clone(), m.payload.clone()).await.unwrap();
        // A second response to the same request is refused.
        svc.publish(reply.clone(), "again".into()).await.unwrap();
        svc.flush().await.unwrap();
        (svc, reply)
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let answer = loop {
        match g.request("svc.echo", "ping".into()).await {
            Err(e) if e.kind() == RequestErrorKind::NoResponders && tokio::time::Instant::now() < deadline => continue,
            r => break r.expect("the responder may answer"),
        }
    };
    assert_eq!(&answer.payload[..], b"ping");
    let (svc, reply) = task.await.unwrap();
    let e = next_error(&mut events).await;
    assert!(e.contains(&format!("Permissions Violation for Publish to \"{reply}\"")), "{e}");
    svc.publish("svc.other", "x".into()).await.unwrap();
    let e = next_error(&mut events).await;
    assert!(e.contains(r#"Permissions Violation for Publish to "svc.other""#), "{e}");
    t.stop().await;
}

#[tokio::test]
async fn nkey_users_sign_the_nonce() {
    let t = Target::new().await;
    let c = t.connect(ConnectOptions::with_nkey(NKEY_SEED.into())).await;
    let subject = common::prefix("nkey");
    let mut s = c.subscribe(subject.clone()).await.unwrap();
    c.publish(subject, "signed".into()).await.unwrap();
    assert_eq!(&tokio::time::timeout(Duration::from_secs(5), s.next()).await.unwrap().unwrap().payload[..], b"signed");
    // Another key (valid, but not a configured user) is refused.
    let other = "SUAPXY7TJFUFE3IX3OEMSLE3JFZJ3FZZRSRSOGSG2ANDIFN77O2MIBHWUM";
    let err = ConnectOptions::with_nkey(other.into()).connect(&t.url).await.expect_err("unknown nkey");
    assert_eq!(err.kind(), ConnectErrorKind::AuthorizationViolation, "{err}");
    t.stop().await;
}

/// Raw protocol: the exact `-ERR` lines, INFO's nonce, and a forged signature.
#[tokio::test]
async fn raw_permission_errors_and_nonce() {
    let t = Target::new().await;
    let mut s = TcpStream::connect(t.addr).await.unwrap();
    let info = read_line(&mut s).await;
    let info: serde_json::Value = serde_json::from_str(info.trim_start_matches("INFO ").trim_end()).unwrap();
    // With a no_auth_user, nats-server does not announce auth_required.
    assert_ne!(info["auth_required"], true);
    assert!(info["nonce"].as_str().is_some_and(|n| !n.is_empty()), "INFO carries a nonce: {info}");
    let connect = "CONNECT {\"verbose\":false,\"pedantic\":false,\"user\":\"limited\",\"pass\":\"l\"}\r\n";
    s.write_all(connect.as_bytes()).await.unwrap();
    s.write_all(b"PUB nope 1\r\nx\r\nSUB nope 1\r\nSUB nope q 2\r\nPING\r\n").await.unwrap();
    assert_eq!(read_line(&mut s).await, "-ERR 'Permissions Violation for Publish to \"nope\"'\r\n");
    assert_eq!(read_line(&mut s).await, "-ERR 'Permissions Violation for Subscription to \"nope\"'\r\n");
    assert_eq!(
        read_line(&mut s).await,
        "-ERR 'Permissions Violation for Subscription to \"nope\" using queue \"q\"'\r\n"
    );
    assert_eq!(read_line(&mut s).await, "PONG\r\n");
    // A signature that is not over this connection's nonce is refused.
    let mut s = TcpStream::connect(t.addr).await.unwrap();
    read_line(&mut s).await;
    let forged = format!("CONNECT {{\"verbose\":false,\"nkey\":\"{NKEY_PUBLIC}\",\"sig\":\"AAAA\"}}\r\nPING\r\n");
    s.write_all(forged.as_bytes()).await.unwrap();
    assert_eq!(read_line(&mut s).await, "-ERR 'Authorization Violation'\r\n");
    t.stop().await;
}

async fn read_line(s: &mut TcpStream) -> String {
    let mut seen = Vec::new();
    while !seen.ends_with(b"\r\n") {
        let mut b = [0u8; 1];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut b)).await.expect("no line").unwrap();
        assert_eq!(n, 1, "closed after {:?}", String::from_utf8_lossy(&seen));
        seen.push(b[0]);
    }
    String::from_utf8(seen).unwrap()
}

/// `/accountz` lists the accounts and details one with its clients and memory (weir only:
/// it reads the in-process monitor).
#[tokio::test]
async fn accountz_lists_accounts_with_their_clients_and_memory() {
    let t = Target::new().await;
    let Some(server) = &t.local else { return };
    let a = t.user("a", "a").await;
    let mut sub = a.subscribe("x.>").await.unwrap();
    // A message through the subscription proves it is in place (a flush does not: the
    // client may write its SUB after the flush's PING).
    a.publish("x.1", "m".into()).await.unwrap();
    assert!(got(&mut sub).await.is_some());
    let list = serde_json::to_value(server.monitor.accountz(None, 0)).unwrap();
    assert_eq!(list["accounts"], serde_json::json!(["$G", "A", "B"]));
    let d = serde_json::to_value(server.monitor.accountz(Some("A"), 0)).unwrap()["account_detail"].clone();
    assert_eq!((d["client_connections"].as_u64(), d["subscriptions"].as_u64()), (Some(1), Some(1)));
    assert!(d["weir_memory"]["subscriptions"]["current"].as_u64().unwrap() > 0);
    assert!(d["weir_memory"]["outbound"]["limit"].as_u64().unwrap() > 0);
    // /connz?auth=1 names each connection's user and (outside $G) its account, as
    // nats-server's `authorized_user` and `account`.
    let g = t.user("g", "g").await;
    g.flush().await.unwrap();
    let q = weir_core::server::nats::connz::Query::parse("auth=1");
    let opts = weir_core::server::nats::connz::ConnzOptions::from_query(&q).unwrap();
    let z = serde_json::to_value(server.monitor.connz(&opts, 0)).unwrap();
    let mut seen: Vec<(String, String)> = z["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap_or_default().to_owned();
            (s("authorized_user"), s("account"))
        })
        .collect();
    seen.sort();
    assert_eq!(seen, vec![("a".to_owned(), "A".to_owned()), ("g".to_owned(), String::new())], "{z}");
    let plain = serde_json::to_value(server.monitor.connz(&Default::default(), 0)).unwrap();
    assert!(plain["connections"][0].get("authorized_user").is_none(), "only with auth=1: {plain}");
    drop((a, g));
    t.stop().await;
}

/// Two weirs joined by a route: interest and messages cross it inside their account
/// (weir only: in-process cluster).
#[tokio::test]
async fn accounts_stay_isolated_across_a_route() {
    use weir_core::server::nats::{ClusterConfig, NatsServer, RouteTarget};
    if std::env::var("NATS_ACCOUNTS_SERVER_URL").is_ok() {
        return;
    }
    let free = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let (r1, r2) = (free(), free());
    let mut nodes = Vec::new();
    for (seed, listen, routes) in [(1, r1, vec![]), (2, r2, vec![r1])] {
        let mut cfg = common::config();
        cfg.seed = seed;
        cfg.auth = accounts_auth();
        cfg.accounts = vec!["A".into(), "B".into()];
        cfg.cluster = Some(ClusterConfig {
            listen,
            routes: routes.iter().map(|a: &SocketAddr| RouteTarget::new(a.to_string())).collect(),
            ..ClusterConfig::default()
        });
        let server = NatsServer::bind(cfg.clone(), weir_core::server::nats::ledger_for(&cfg)).await.unwrap();
        let (url, monitor) = (format!("nats://{}", server.local_addr()), server.monitor());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async move {
            let _ = rx.await;
        }));
        nodes.push((url, monitor, tx, task));
    }
    let on = |i: usize, user: &str| {
        let url = nodes[i].0.clone();
        let opts = ConnectOptions::with_user_and_password(user.into(), user.into());
        async move { opts.connect(url).await.unwrap() }
    };
    let (a2, b2, a1) = (on(1, "a").await, on(1, "b").await, on(0, "a").await);
    let mut sa = a2.subscribe("x.>").await.unwrap();
    let mut sb = b2.subscribe("x.>").await.unwrap();
    // Node 1 holds both accounts' interest, each under its own account.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while nodes[0].1.varz().cluster.is_none_or(|c| c.remote_subs < 2) {
        assert!(tokio::time::Instant::now() < deadline, "node 1 never heard of node 2's interest");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a1.publish("x.1", "in A".into()).await.unwrap();
    a1.flush().await.unwrap();
    assert_eq!(&got(&mut sa).await.expect("A's subscriber across the route").payload[..], b"in A");
    assert!(none(&mut sb).await, "B's subscriber must not get A's message");
    for (_, _, tx, task) in nodes {
        let _ = tx.send(());
        let _ = tokio::time::timeout(Duration::from_secs(15), task).await;
    }
}
