//! Protocol-level tests of `weir serve`'s NATS port over a raw TcpStream (real tokio, loopback).

#![cfg(not(madsim))]

mod common;

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A raw client that accumulates everything the server sends.
struct Raw {
    stream: TcpStream,
    seen: String,
}

impl Raw {
    async fn connect(addr: std::net::SocketAddr) -> Raw {
        let mut r = Raw { stream: TcpStream::connect(addr).await.unwrap(), seen: String::new() };
        let info = r.expect("\r\n").await;
        assert!(info.starts_with("INFO {") && info.ends_with("} \r\n"), "{info}");
        r
    }

    async fn send(&mut self, s: &str) {
        self.stream.write_all(s.as_bytes()).await.unwrap();
        self.stream.flush().await.unwrap();
    }

    /// Read until `needle` has been seen (panics after 5 s); returns and forgets everything up to it.
    async fn expect(&mut self, needle: &str) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(i) = self.seen.find(needle) {
                let head = self.seen[..i + needle.len()].to_owned();
                self.seen.drain(..i + needle.len());
                return head;
            }
            let mut buf = [0u8; 4096];
            let n = tokio::time::timeout_at(deadline, self.stream.read(&mut buf))
                .await
                .unwrap_or_else(|_| panic!("timed out waiting for {needle:?}; have {:?}", self.seen))
                .unwrap();
            assert!(n > 0, "closed while waiting for {needle:?}; have {:?}", self.seen);
            self.seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    }

    /// Read until the server closes the connection; returns the rest of what it sent.
    async fn until_closed(&mut self) -> String {
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), self.stream.read_to_end(&mut rest))
            .await
            .expect("server did not close")
            .ok();
        format!("{}{}", std::mem::take(&mut self.seen), String::from_utf8_lossy(&rest))
    }
}

#[tokio::test]
async fn verbose_connect_gets_ok_and_ping_gets_pong() {
    let s = common::start(common::config()).await;
    let mut c = Raw::connect(s.addr).await;
    c.send("CONNECT {\"verbose\":true,\"pedantic\":false}\r\nSUB foo 1\r\nPUB foo 5\r\nhello\r\nPING\r\n").await;
    let got = c.expect("PONG\r\n").await;
    assert_eq!(got, "+OK\r\n+OK\r\nMSG foo 1 5\r\nhello\r\n+OK\r\nPONG\r\n");
    s.stop().await;
}

#[tokio::test]
async fn connect_defaults_to_verbose_like_nats_server() {
    let s = common::start(common::config()).await;
    let mut c = Raw::connect(s.addr).await;
    c.send("CONNECT {}\r\nPING\r\n").await;
    assert_eq!(c.expect("PONG\r\n").await, "+OK\r\nPONG\r\n");
    s.stop().await;
}

#[tokio::test]
async fn unknown_op_is_an_error_and_closes() {
    let s = common::start(common::config()).await;
    let mut c = Raw::connect(s.addr).await;
    c.send("FOO bar\r\n").await;
    assert_eq!(c.until_closed().await, "-ERR 'Unknown Protocol Operation'\r\n");
    s.stop().await;
}

#[tokio::test]
async fn max_payload_violation_closes() {
    let mut cfg = common::config();
    cfg.max_payload = 16;
    let s = common::start(cfg).await;
    let mut c = Raw::connect(s.addr).await;
    assert!(c.seen.is_empty());
    c.send("CONNECT {\"verbose\":false}\r\nPUB foo 17\r\n").await;
    assert_eq!(c.until_closed().await, "-ERR 'Maximum Payload Violation'\r\n");
    s.stop().await;
}

#[tokio::test]
async fn info_reports_max_payload_and_headers() {
    let mut cfg = common::config();
    cfg.max_payload = 4096;
    let s = common::start(cfg).await;
    let mut stream = TcpStream::connect(s.addr).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = stream.read(&mut buf).await.unwrap();
    let line = String::from_utf8_lossy(&buf[..n]).to_string();
    let json: serde_json::Value = serde_json::from_str(line.trim_start_matches("INFO ").trim_end()).unwrap();
    assert_eq!(json["max_payload"], 4096);
    assert_eq!(json["headers"], true);
    assert_eq!(json["proto"], 1);
    assert_eq!(json["port"], s.addr.port());
    assert_eq!(json["server_id"].as_str().unwrap().len(), 56);
    s.stop().await;
}

#[tokio::test]
async fn pedantic_rejects_wildcard_publish_and_invalid_sub_but_stays_open() {
    let s = common::start(common::config()).await;
    let mut c = Raw::connect(s.addr).await;
    c.send("CONNECT {\"verbose\":false,\"pedantic\":true}\r\nPUB foo.* 2\r\nhi\r\nSUB foo..bar 1\r\nPING\r\n").await;
    let got = c.expect("PONG\r\n").await;
    assert_eq!(got, "-ERR 'Invalid Publish Subject'\r\n-ERR 'Invalid Subject'\r\nPONG\r\n");
    s.stop().await;
}

#[tokio::test]
async fn bad_protocol_and_no_responders_without_headers_close() {
    let s = common::start(common::config()).await;
    let mut c = Raw::connect(s.addr).await;
    c.send("CONNECT {\"protocol\":2}\r\n").await;
    assert_eq!(c.until_closed().await, "-ERR 'invalid client protocol'\r\n");
    let mut c = Raw::connect(s.addr).await;
    c.send("CONNECT {\"no_responders\":true,\"headers\":false}\r\n").await;
    assert_eq!(c.until_closed().await, "-ERR 'no responders requires headers support'\r\n");
    s.stop().await;
}

#[tokio::test]
async fn headers_are_stripped_for_subscribers_without_headers() {
    let s = common::start(common::config()).await;
    let mut plain = Raw::connect(s.addr).await;
    plain.send("CONNECT {\"verbose\":false,\"headers\":false}\r\nSUB h 9\r\nPING\r\n").await;
    plain.expect("PONG\r\n").await;
    let mut p = Raw::connect(s.addr).await;
    let hdr = "NATS/1.0\r\nA: b\r\n\r\n";
    let msg = format!("HPUB h {} {}\r\n{hdr}xy\r\nPING\r\n", hdr.len(), hdr.len() + 2);
    p.send(&format!("CONNECT {{\"verbose\":false,\"headers\":true}}\r\n{msg}")).await;
    p.expect("PONG\r\n").await;
    assert_eq!(plain.expect("xy\r\n").await, "MSG h 9 2\r\nxy\r\n");
    s.stop().await;
}

#[tokio::test]
async fn unanswered_pings_make_a_stale_connection() {
    let mut cfg = common::config();
    cfg.ping_interval = Duration::from_millis(100);
    cfg.ping_max = 2;
    let s = common::start(cfg).await;
    let mut c = Raw::connect(s.addr).await;
    c.send("CONNECT {\"verbose\":false}\r\n").await;
    assert_eq!(c.until_closed().await, "PING\r\nPING\r\n-ERR 'Stale Connection'\r\n");
    s.stop().await;
}

#[tokio::test]
async fn auto_unsubscribe_after_max() {
    let s = common::start(common::config()).await;
    let mut c = Raw::connect(s.addr).await;
    c.send("CONNECT {\"verbose\":false}\r\nSUB a 1\r\nUNSUB 1 2\r\n").await;
    c.send("PUB a 1\r\nx\r\nPUB a 1\r\ny\r\nPUB a 1\r\nz\r\nPING\r\n").await;
    assert_eq!(c.expect("PONG\r\n").await, "MSG a 1 1\r\nx\r\nMSG a 1 1\r\ny\r\nPONG\r\n");
    assert_eq!(s.monitor.varz().subscriptions, 0);
    s.stop().await;
}

#[tokio::test]
async fn shutdown_drains_and_closes_clients() {
    let s = common::start(common::config()).await;
    let mut c = Raw::connect(s.addr).await;
    c.send("CONNECT {\"verbose\":false}\r\nPING\r\n").await;
    c.expect("PONG\r\n").await;
    let addr = s.addr;
    s.stop().await;
    assert_eq!(c.until_closed().await, "");
    assert!(TcpStream::connect(addr).await.is_err(), "listener still bound after shutdown");
}
