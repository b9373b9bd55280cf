//! The monitoring port: a minimal HTTP/1.1 responder (one request per connection)
//! serving `/healthz`, `/varz`, `/connz`, `/subsz` (also `/subscriptionsz`), `/routez`
//! (their queries and 400 answers as nats-server's, see
//! `weir_core::server::nats::connz`), `/accountz` (`?acc=NAME` for one) and `/jsz` (JSON,
//! nats-server's shapes; `/jsz` takes
//! `?accounts=true`, `?streams=true`, `?consumers=true`), `/gatewayz` and `/leafz` (empty:
//! weir has neither) and `/metrics` (Prometheus text,
//! with the `weir_jetstream_*` figures when JetStream is on).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use weir_core::server::nats::Monitor;
use weir_core::server::nats::connz::{ConnzOptions, Query, SubszOptions};
use weir_core::server::nats::jsz::JszOptions;

/// Largest request head we read; monitoring requests are tiny.
const MAX_REQUEST: usize = 8 * 1024;

/// Serve monitoring requests on `listener` until `shutdown` completes.
pub async fn serve(listener: TcpListener, monitor: Monitor, shutdown: impl Future<Output = ()>) {
    if let Ok(a) = listener.local_addr() {
        let _ = HTTP_ADDR.set(a);
    }
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            r = listener.accept() => if let Ok((stream, _)) = r {
                let m = monitor.clone();
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(Duration::from_secs(5), handle(stream, m)).await;
                });
            },
        }
    }
}

/// The status line, content type and body for `path`.
pub fn respond(path: &str, monitor: &Monitor) -> (&'static str, &'static str, String) {
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    match path {
        "/healthz" => ("200 OK", "application/json", "{\"status\":\"ok\"}".to_owned()),
        "/varz" => {
            let mut varz = serde_json::to_value(monitor.varz()).unwrap_or_default();
            if let Some(o) = varz.as_object_mut() {
                process_varz(o, monitor, now_ns());
            }
            ("200 OK", "application/json", serde_json::to_string_pretty(&varz).unwrap_or_default())
        }
        "/accountz" => {
            let acc = query.split('&').find_map(|kv| kv.strip_prefix("acc=")).filter(|a| !a.is_empty());
            let z = monitor.accountz(acc, now_ns());
            ("200 OK", "application/json", serde_json::to_string_pretty(&z).unwrap_or_default())
        }
        "/connz" => match ConnzOptions::from_query(&Query::parse(query)) {
            Ok(o) => json(&monitor.connz(&o, now_ns())),
            Err(e) => ("400 Bad Request", "text/plain", e),
        },
        "/subsz" | "/subscriptionsz" => match SubszOptions::from_query(&Query::parse(query)) {
            Ok(o) => json(&monitor.subsz(&o, now_ns())),
            Err(e) => ("400 Bad Request", "text/plain", e),
        },
        "/routez" => match Query::parse(query).subs() {
            Ok((subs, detail)) => json(&monitor.routez(subs, detail, now_ns())),
            Err(e) => ("400 Bad Request", "text/plain", e),
        },
        // Weir has no gateways and no leaf nodes: nats-server's answers for a server
        // without them, so exporters and dashboards that scrape these still work.
        "/gatewayz" | "/leafz" => {
            let mut z = serde_json::Map::new();
            z.insert("server_id".into(), monitor.varz().server_id.into());
            z.insert("now".into(), weir_core::jetstream::format_rfc3339_nano(now_ns()).into());
            if path == "/leafz" {
                z.insert("leafnodes".into(), 0.into());
                z.insert("leafs".into(), serde_json::Value::Array(Vec::new()));
            } else {
                z.insert("outbound_gateways".into(), serde_json::Value::Object(Default::default()));
                z.insert("inbound_gateways".into(), serde_json::Value::Object(Default::default()));
            }
            json(&z)
        }
        "/jsz" => {
            let jsz = monitor.jsz(JszOptions::from_query(query));
            ("200 OK", "application/json", serde_json::to_string_pretty(&jsz).unwrap_or_default())
        }
        "/metrics" => {
            let varz = monitor.varz();
            let mut text = varz.to_prometheus();
            #[cfg(not(madsim))]
            {
                let a = crate::alloc::stats();
                for (name, help, v) in [
                    ("allocated", "Bytes in use by the program, per the allocator.", a.allocated),
                    ("resident", "Resident set size of the process.", a.resident),
                    ("retained", "Bytes freed and kept by the allocator.", a.retained),
                ] {
                    text.push_str(&format!(
                        "# HELP weir_allocator_{name}_bytes {help}\n# TYPE weir_allocator_{name}_bytes gauge\nweir_allocator_{name}_bytes {v}\n"
                    ));
                }
            }
            if varz.jetstream.is_some() {
                monitor.jsz(JszOptions::default()).write_prometheus(&mut text);
            }
            ("200 OK", "text/plain; version=0.0.4", text)
        }
        _ => ("404 Not Found", "text/plain", "not found\n".to_owned()),
    }
}

/// The monitoring listener's address, for `/varz` `http_host` / `http_port`.
static HTTP_ADDR: OnceLock<SocketAddr> = OnceLock::new();

/// The `/varz` fields that only the process knows, in nats-server's names and units, so
/// that tools decoding nats-server's `Varz` (nats-top, exporters) read weir's: `start`,
/// `now` (RFC 3339), `uptime` (`1d2h3m4s`), `mem` (resident set size, bytes), `cores`,
/// `cpu` (percent of one core since the previous `/varz`, or since start), `http_host`,
/// `http_port`; and weir's `allocator` figures (issue 9, fault 7).
fn process_varz(o: &mut serde_json::Map<String, serde_json::Value>, monitor: &Monitor, now_ns: i64) {
    use serde_json::json;
    let up = monitor.uptime_ns();
    let start_ns = now_ns.saturating_sub(i64::try_from(up).unwrap_or(i64::MAX));
    o.insert("start".into(), json!(weir_core::jetstream::format_rfc3339_nano(start_ns)));
    o.insert("now".into(), json!(weir_core::jetstream::format_rfc3339_nano(now_ns)));
    o.insert("uptime".into(), json!(weir_core::server::nats::connz::uptime(up / 1_000_000_000)));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    o.insert("cores".into(), json!(cores));
    o.insert("cpu".into(), json!(cpu_percent(up)));
    if let Some(a) = HTTP_ADDR.get() {
        o.insert("http_host".into(), json!(a.ip().to_string()));
        o.insert("http_port".into(), json!(a.port()));
    }
    #[cfg(not(madsim))]
    {
        let a = crate::alloc::stats();
        o.insert("mem".into(), json!(a.resident));
        o.insert("allocator".into(), serde_json::to_value(a).unwrap_or_default());
    }
}

/// The process's CPU time, in clock ticks (user + system, from `/proc/self/stat`).
fn cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name, which may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are the 14th and 15th fields of the line, the 12th and 13th here.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// Percent of one core the process used since the previous call (the first call: since
/// the server started `uptime_ns` ago), one decimal, as nats-server's `cpu`.
fn cpu_percent(uptime_ns: u64) -> f64 {
    static LAST: std::sync::Mutex<Option<(u64, u64)>> = std::sync::Mutex::new(None);
    let Some(ticks) = cpu_ticks() else { return 0.0 };
    // SAFETY: sysconf only reads a system constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    let (t0, at0) = last.unwrap_or((0, 0));
    *last = Some((ticks, uptime_ns));
    let secs = uptime_ns.saturating_sub(at0) as f64 / 1e9;
    if secs <= 0.0 {
        return 0.0;
    }
    let pct = ticks.saturating_sub(t0) as f64 / hz / secs * 100.0;
    (pct * 10.0).round() / 10.0
}

/// The wall clock now, ns since the epoch: the binary's clock seam for monitoring's `now`.
fn now_ns() -> i64 {
    #[allow(clippy::disallowed_methods, reason = "the binary's wall-clock seam: monitoring's `now`")]
    let now = std::time::SystemTime::now();
    now.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

fn json(v: &impl serde::Serialize) -> (&'static str, &'static str, String) {
    ("200 OK", "application/json", serde_json::to_string_pretty(v).unwrap_or_default())
}

async fn handle(mut stream: TcpStream, monitor: Monitor) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < MAX_REQUEST {
        let mut chunk = [0u8; 1024];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf);
    let mut parts = head.lines().next().unwrap_or("").split_whitespace();
    let (status, ctype, body) = match (parts.next(), parts.next()) {
        (Some("GET"), Some(path)) => respond(path, &monitor),
        _ => ("400 Bad Request", "text/plain", "bad request\n".to_owned()),
    };
    let resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(resp.as_bytes()).await?;
    stream.flush().await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_core::server::nats::{self, ClusterConfig, NatsConfig, NatsServer, RouteTarget};

    fn get(m: &Monitor, path: &str) -> serde_json::Value {
        let (status, _, body) = respond(path, m);
        assert_eq!(status, "200 OK", "{path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    async fn until(what: &str, mut cond: impl FnMut() -> bool) {
        for _ in 0..1500 {
            if cond() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("timed out waiting for {what}");
    }

    #[tokio::test]
    async fn connz_subsz_and_routez_in_nats_servers_shapes() {
        let route_a = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let route_b = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let cluster = |listen, peer: std::net::SocketAddr| ClusterConfig {
            listen,
            routes: vec![RouteTarget::new(peer.to_string())],
            name: "mon".into(),
            ..ClusterConfig::default()
        };
        let cfg = |seed, c| NatsConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            seed,
            server_name: format!("s{seed}"),
            cluster: Some(c),
            ..NatsConfig::default()
        };
        let (ca, cb) = (cfg(1, cluster(route_a, route_b)), cfg(2, cluster(route_b, route_a)));
        let a = NatsServer::bind(ca.clone(), nats::ledger_for(&ca)).await.unwrap();
        let b = NatsServer::bind(cb.clone(), nats::ledger_for(&cb)).await.unwrap();
        let (ma, mb) = (a.monitor(), b.monitor());
        let (url_a, url_b) = (format!("nats://{}", a.local_addr()), format!("nats://{}", b.local_addr()));
        tokio::spawn(a.run(std::future::pending()));
        tokio::spawn(b.run(std::future::pending()));
        until("the route", || ma.varz().routes == 1 && mb.varz().routes == 1).await;

        // Three clients on A: a busy subscriber, a publisher, an idle one with a name.
        let sub = async_nats::connect(&url_a).await.unwrap();
        let mut s1 = sub.subscribe("mon.a").await.unwrap();
        let _s2 = sub.queue_subscribe("mon.>", "q".into()).await.unwrap();
        let _s3 = sub.subscribe("other").await.unwrap();
        sub.flush().await.unwrap();
        let publ = async_nats::connect(&url_a).await.unwrap();
        let idle = async_nats::ConnectOptions::new().name("idler").connect(&url_a).await.unwrap();
        idle.flush().await.unwrap();
        let remote = async_nats::connect(&url_b).await.unwrap();
        let mut rs = remote.subscribe("mon.a").await.unwrap();
        remote.flush().await.unwrap();
        until("B's interest on A", || ma.varz().cluster.as_ref().is_some_and(|c| c.remote_subs == 1)).await;
        for _ in 0..3 {
            publ.publish("mon.a", "hello".into()).await.unwrap();
        }
        publ.flush().await.unwrap();
        for _ in 0..3 {
            futures::StreamExt::next(&mut s1).await.unwrap();
            futures::StreamExt::next(&mut rs).await.unwrap();
        }

        let z = get(&ma, "/connz");
        assert_eq!(
            (z["total"].as_u64(), z["num_connections"].as_u64(), z["limit"].as_u64()),
            (Some(3), Some(3), Some(1024))
        );
        let c0 = &z["connections"][0];
        for f in
            ["cid", "ip", "port", "start", "last_activity", "uptime", "idle", "pending_bytes", "in_msgs", "out_msgs"]
        {
            assert!(c0.get(f).is_some(), "connz connection has {f}: {c0}");
        }
        assert_eq!(c0["kind"], "Client");
        assert_eq!(c0["subscriptions"], 3);
        assert_eq!(c0["out_msgs"], 6, "three to the plain and three to the queue subscription");
        assert_eq!(c0["lang"], "rust");
        assert!(c0.get("subscriptions_list").is_none());
        let by = |q: &str| -> Vec<u64> {
            get(&ma, &format!("/connz?{q}"))["connections"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["cid"].as_u64().unwrap())
                .collect()
        };
        let cids = by("");
        let (s_id, p_id, i_id) = (cids[0], cids[1], cids[2]);
        assert_eq!(by("sort=msgs_from"), vec![p_id, s_id, i_id]);
        assert_eq!(by("sort=msgs_to")[0], s_id);
        assert_eq!(by("sort=subs")[0], s_id);
        assert_eq!(by("sort=uptime"), vec![i_id, p_id, s_id]);
        assert_eq!(by("sort=cid&offset=1&limit=1"), vec![p_id]);
        let one = get(&ma, &format!("/connz?cid={i_id}"));
        assert_eq!((one["total"].as_u64(), one["connections"][0]["name"].as_str()), (Some(1), Some("idler")));
        let subs = get(&ma, &format!("/connz?cid={s_id}&subs=1"));
        let mut list: Vec<String> =
            serde_json::from_value(subs["connections"][0]["subscriptions_list"].clone()).unwrap();
        list.sort();
        assert_eq!(list, vec!["mon.>", "mon.a", "other"]);
        let det = get(&ma, &format!("/connz?cid={s_id}&subs=detail"));
        let det = det["connections"][0]["subscriptions_list_detail"].as_array().unwrap().clone();
        assert!(det.iter().any(|d| d["subject"] == "mon.>" && d["qgroup"] == "q" && d["msgs"] == 3), "{det:?}");
        for (q, err) in [
            ("sort=bogus", "invalid sorting option: bogus"),
            ("limit=abc", "Error decoding int for 'limit'"),
            ("state=maybe", "Error decoding state for maybe"),
            ("subs=perhaps", "Error decoding boolean for 'subs'"),
        ] {
            let (status, _, body) = respond(&format!("/connz?{q}"), &ma);
            assert_eq!(status, "400 Bad Request", "{q}");
            assert!(body.starts_with(err), "{q}: {body}");
        }

        let sz = get(&ma, "/subsz");
        assert_eq!(sz["num_subscriptions"], 3);
        assert_eq!(sz["num_inserts"], 3);
        assert_eq!(sz["num_matches"], 3, "one lookup per publish");
        assert_eq!(sz["max_fanout"], 2);
        assert_eq!(sz["avg_fanout"], 2.0);
        for f in ["num_cache", "num_removes", "cache_hit_rate", "total", "offset", "limit"] {
            assert!(sz.get(f).is_some(), "subsz has {f}");
        }
        assert!(sz.get("subscriptions_list").is_none());
        let sz = get(&ma, "/subsz?subs=1&test=mon.a");
        assert_eq!(sz["total"], 2, "mon.a and mon.> match mon.a: {sz}");
        assert_eq!(sz["subscriptions_list"][0]["account"], "$G");
        assert_eq!(get(&ma, "/subsz?subs=1&limit=1&offset=2")["subscriptions_list"].as_array().unwrap().len(), 1);
        let (status, _, body) = respond("/subsz?test=mon.*", &ma);
        assert_eq!(
            (status, body.as_str()),
            ("400 Bad Request", "invalid test subject, must be valid publish subject: mon.*")
        );

        let rz = get(&ma, "/routez");
        assert_eq!(rz["num_routes"], 1);
        assert_eq!(rz["server_name"], "s1");
        let r = &rz["routes"][0];
        assert_eq!(r["remote_id"], get(&mb, "/varz")["server_id"]);
        assert_eq!((r["port"].as_u64(), r["is_configured"].as_bool()), (Some(route_b.port() as u64), Some(true)));
        assert_eq!((r["out_msgs"].as_u64(), r["out_bytes"].as_u64()), (Some(3), Some(15)));
        assert_eq!(r["subscriptions"], 1);
        for f in ["rid", "ip", "start", "last_activity", "uptime", "idle", "pending_size", "in_msgs", "in_bytes"] {
            assert!(r.get(f).is_some(), "routez route has {f}");
        }
        // Weir's per-route drop counters, the same as /varz's.
        let vd = &get(&ma, "/varz")["cluster"]["route_drops"][0];
        assert_eq!(r["drops"]["msgs"]["queue_full"], 0, "{r}");
        assert_eq!((&r["drops"]["msgs"], &r["drops"]["raft"]), (&vd["msgs"], &vd["raft"]), "{r} {vd}");
        assert_eq!(r["drops"]["publisher_stalls"], vd["publisher_stalls"]);
        assert_eq!(get(&ma, "/routez?subs=1")["routes"][0]["subscriptions_list"], serde_json::json!(["mon.a"]));
        assert_eq!(get(&mb, "/routez")["routes"][0]["in_msgs"], 3);
        assert_eq!(respond("/routez?subs=x", &ma).0, "400 Bad Request");

        // /varz lists the cluster's client URLs as INFO does.
        until("both client URLs in /varz", || {
            get(&ma, "/varz")["connect_urls"].as_array().is_some_and(|u| u.len() == 2)
        })
        .await;
        let urls = get(&ma, "/varz")["connect_urls"].clone();
        assert!(urls.as_array().unwrap().iter().any(|u| url_b.ends_with(u.as_str().unwrap())), "{urls} {url_b}");
    }

    /// `/varz` in nats-server's names, types and units, so that tools decoding its `Varz`
    /// (nats-top, exporters) read weir's: `mem` is the resident set size (a number; the
    /// ledger accounts are `ledger`), times are RFC 3339, durations ns.
    #[tokio::test]
    async fn varz_has_nats_servers_process_fields_and_types() {
        let cfg = NatsConfig { listen: "127.0.0.1:0".parse().unwrap(), ..NatsConfig::default() };
        let s = NatsServer::bind(cfg.clone(), nats::ledger_for(&cfg)).await.unwrap();
        let m = s.monitor();
        let v = get(&m, "/varz");
        assert!(v["mem"].as_u64().is_some_and(|b| b > 1 << 20), "mem is the RSS in bytes: {}", v["mem"]);
        assert!(v["ledger"].as_array().unwrap().iter().any(|a| a["name"] == "client.outbound"), "{}", v["ledger"]);
        for f in ["start", "now"] {
            let t = v[f].as_str().unwrap_or_else(|| panic!("{f}: {v}"));
            assert!(t.len() >= 20 && t.as_bytes()[10] == b'T' && t.ends_with('Z'), "{f}: {t}");
        }
        assert!(v["start"].as_str() <= v["now"].as_str());
        assert!(v["uptime"].as_str().is_some_and(|u| u.ends_with('s')), "{}", v["uptime"]);
        assert!(v["cores"].as_u64().is_some_and(|c| c >= 1));
        assert!(v["cpu"].as_f64().is_some_and(|c| c >= 0.0), "{}", v["cpu"]);
        assert_eq!(v["ping_interval"], 120_000_000_000u64, "2 minutes in ns, as Go writes a Duration");
        assert_eq!(v["write_deadline"], 10_000_000_000u64);
        assert_eq!((v["ping_max"].as_u64(), v["max_control_line"].as_u64()), (Some(2), Some(4096)));
        assert_eq!((v["auth_timeout"].as_f64(), v["tls_timeout"].as_f64()), (Some(2.0), Some(2.0)));
        assert_eq!(v["server_name"], v["server_id"], "an unnamed server is named by its id, as in INFO");
        assert!(v.get("connect_urls").is_none() && v.get("tls_required").is_none());
        let leafz = get(&m, "/leafz");
        assert_eq!(
            (&leafz["leafnodes"], &leafz["leafs"], &leafz["server_id"]),
            (&0.into(), &serde_json::json!([]), &v["server_id"])
        );
        let gw = get(&m, "/gatewayz");
        assert_eq!(
            (&gw["outbound_gateways"], &gw["inbound_gateways"]),
            (&serde_json::json!({}), &serde_json::json!({}))
        );
    }
}
