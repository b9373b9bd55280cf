//! Client authentication (`--auth TOKEN`, `--user`/`--pass`): async-nats and raw TCP
//! against an in-process weir (real tokio, loopback).
//!
//! With `NATS_TOKEN_SERVER_URL` (a server started with `--auth s3cret`) and
//! `NATS_USER_SERVER_URL` (`--user bob --pass pw`) set, the tests run against those
//! servers instead, for example real nats-servers (scripts/compat-nats-server).

#![cfg(not(madsim))]

mod common;

use async_nats::ConnectErrorKind;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use weir_core::server::nats::Auth;

const TOKEN: &str = "s3cret";
const USER: (&str, &str) = ("bob", "pw");

/// A server requiring `auth`: the external one named by `env`, or a fresh in-process weir.
struct Target {
    url: String,
    addr: SocketAddr,
    local: Option<common::TestServer>,
}

impl Target {
    async fn new(env: &str, auth: Auth) -> Target {
        match std::env::var(env).ok().filter(|u| !u.is_empty()) {
            Some(url) => {
                let hostport = url.trim_start_matches("nats://");
                let addr = hostport.to_socket_addrs().unwrap().next().unwrap();
                Target { url, addr, local: None }
            }
            None => {
                let mut cfg = common::config();
                cfg.auth = auth;
                let s = common::start(cfg).await;
                Target { url: s.url(), addr: s.addr, local: Some(s) }
            }
        }
    }

    async fn token() -> Target {
        Target::new("NATS_TOKEN_SERVER_URL", Auth::Token(TOKEN.into())).await
    }

    async fn user() -> Target {
        Target::new("NATS_USER_SERVER_URL", Auth::User { user: USER.0.into(), pass: USER.1.into() }).await
    }

    async fn stop(self) {
        if let Some(s) = self.local {
            s.stop().await;
        }
    }
}

/// Connect with `opts`, publish and receive one message.
async fn round_trip(url: &str, opts: async_nats::ConnectOptions) {
    use futures::StreamExt;
    let c = opts.connect(url).await.expect("connect");
    let subject = common::prefix("auth");
    let mut sub = c.subscribe(subject.clone()).await.unwrap();
    c.publish(subject, "hi".into()).await.unwrap();
    let m = tokio::time::timeout(Duration::from_secs(5), sub.next()).await.unwrap().unwrap();
    assert_eq!(&m.payload[..], b"hi");
}

async fn rejected(url: &str, opts: async_nats::ConnectOptions) {
    let err = opts.connect(url).await.expect_err("connected with wrong credentials");
    assert_eq!(err.kind(), ConnectErrorKind::AuthorizationViolation, "{err}");
}

#[tokio::test]
async fn token_auth_accepts_the_token_and_rejects_others() {
    let t = Target::token().await;
    round_trip(&t.url, async_nats::ConnectOptions::with_token(TOKEN.into())).await;
    rejected(&t.url, async_nats::ConnectOptions::with_token("wrong".into())).await;
    rejected(&t.url, async_nats::ConnectOptions::new()).await;
    rejected(&t.url, async_nats::ConnectOptions::with_user_and_password("x".into(), TOKEN.into())).await;
    t.stop().await;
}

#[tokio::test]
async fn user_auth_accepts_the_user_and_rejects_others() {
    let t = Target::user().await;
    round_trip(&t.url, async_nats::ConnectOptions::with_user_and_password(USER.0.into(), USER.1.into())).await;
    rejected(&t.url, async_nats::ConnectOptions::with_user_and_password(USER.0.into(), "no".into())).await;
    rejected(&t.url, async_nats::ConnectOptions::with_user_and_password("eve".into(), USER.1.into())).await;
    rejected(&t.url, async_nats::ConnectOptions::with_token(USER.1.into())).await;
    t.stop().await;
}

/// Send `input` on a fresh connection; returns the INFO line and everything sent until the server closes.
async fn raw(addr: SocketAddr, input: &str) -> (serde_json::Value, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut seen = Vec::new();
    while !seen.ends_with(b"\r\n") {
        let mut b = [0u8; 1];
        assert_eq!(s.read(&mut b).await.unwrap(), 1, "closed before INFO");
        seen.push(b[0]);
    }
    let line = String::from_utf8(seen).unwrap();
    let info = serde_json::from_str(line.trim_start_matches("INFO ").trim_end()).unwrap();
    s.write_all(input.as_bytes()).await.unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest)).await.expect("server did not close").ok();
    (info, String::from_utf8_lossy(&rest).into_owned())
}

#[tokio::test]
async fn raw_auth_failures_get_authorization_violation_and_close() {
    let t = Target::token().await;
    let violation = "-ERR 'Authorization Violation'\r\n";
    let (info, out) = raw(t.addr, "CONNECT {\"verbose\":false,\"auth_token\":\"wrong\"}\r\nPING\r\n").await;
    assert_eq!(info["auth_required"], true);
    assert_eq!(out, violation);
    // Any op but CONNECT first, even garbage, is an authorization violation.
    for first in ["PING\r\n", "SUB foo 1\r\n", "FOO\r\n"] {
        assert_eq!(raw(t.addr, first).await.1, violation, "{first:?}");
    }
    // Every CONNECT is checked; one that leaves the token out keeps the first one's (as
    // nats-server decodes it over the first), one with a wrong token fails.
    let good = format!("CONNECT {{\"verbose\":false,\"auth_token\":\"{TOKEN}\"}}\r\n");
    let again = "CONNECT {\"verbose\":false}\r\nPING\r\nCONNECT {\"auth_token\":\"x\"}\r\n";
    assert_eq!(raw(t.addr, &format!("{good}PING\r\n{again}")).await.1, format!("PONG\r\nPONG\r\n{violation}"));
    t.stop().await;
}

#[tokio::test]
async fn no_connect_in_time_is_an_authentication_timeout() {
    if std::env::var("NATS_TOKEN_SERVER_URL").is_ok() {
        return; // needs a short auth timeout
    }
    let mut cfg = common::config();
    cfg.auth = Auth::Token(TOKEN.into());
    cfg.auth_timeout = Duration::from_millis(100);
    let s = common::start(cfg).await;
    assert_eq!(raw(s.addr, "").await.1, "-ERR 'Authentication Timeout'\r\n");
    s.stop().await;
}

#[tokio::test]
async fn without_auth_info_says_nothing_about_it() {
    let local = match common::external_addr() {
        Some(_) => None,
        None => Some(common::start(common::config()).await),
    };
    let addr = common::external_addr().or(local.as_ref().map(|s| s.addr)).unwrap();
    let (info, _) = raw(addr, "CONNECT {\"verbose\":false}\r\n-ERR 'bye'\r\n").await;
    assert_eq!(info.get("auth_required"), None, "omitted, like nats-server: {info}");
    if let Some(s) = local {
        s.stop().await;
    }
}
