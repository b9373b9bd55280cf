//! The monitoring port: a minimal HTTP/1.1 responder (one request per connection)
//! serving `/healthz`, `/varz`, `/accountz` (`?acc=NAME` for one) and `/jsz` (JSON,
//! nats-server's shapes; `/jsz` takes
//! `?accounts=true`, `?streams=true`, `?consumers=true`) and `/metrics` (Prometheus text,
//! with the `weir_jetstream_*` figures when JetStream is on).

use std::future::Future;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use weir_core::server::nats::Monitor;
use weir_core::server::nats::jsz::JszOptions;

/// Largest request head we read; monitoring requests are tiny.
const MAX_REQUEST: usize = 8 * 1024;

/// Serve monitoring requests on `listener` until `shutdown` completes.
pub async fn serve(listener: TcpListener, monitor: Monitor, shutdown: impl Future<Output = ()>) {
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
            #[allow(unused_mut)]
            let mut varz = serde_json::to_value(monitor.varz()).unwrap_or_default();
            // The allocator's allocated / resident / retained bytes (issue 9, fault 7).
            #[cfg(not(madsim))]
            if let Some(o) = varz.as_object_mut() {
                o.insert("allocator".into(), serde_json::to_value(crate::alloc::stats()).unwrap_or_default());
            }
            ("200 OK", "application/json", serde_json::to_string_pretty(&varz).unwrap_or_default())
        }
        "/accountz" => {
            let acc = query.split('&').find_map(|kv| kv.strip_prefix("acc=")).filter(|a| !a.is_empty());
            #[allow(clippy::disallowed_methods, reason = "the binary's wall-clock seam: /accountz's `now`")]
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
            let z = monitor.accountz(acc, now);
            ("200 OK", "application/json", serde_json::to_string_pretty(&z).unwrap_or_default())
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
