//! The admin commands' side of the JetStream API: one NATS connection, JSON requests on
//! `$JS.API.*` subjects, and the response envelope's `error` turned into an
//! [`AdminError`] that carries nats-server's description and codes.

use bytes::Bytes;
use serde_json::Value;
use std::time::Duration;

/// The default server, as the nats CLI's.
pub const DEFAULT_URL: &str = "nats://127.0.0.1:4222";

/// Why an admin command failed. `Api` is an error the server answered with (its
/// `description`, `code` and `err_code`, as nats-server sends them in the response
/// envelope); `Other` is everything else (connection, timeout, bad flags, bad JSON).
#[derive(Debug)]
pub enum AdminError {
    /// The server's `error` object.
    Api {
        /// HTTP-like status (`code`).
        code: u64,
        /// JetStream error code (`err_code`), 0 when absent.
        err_code: u64,
        /// Human-readable text (`description`).
        description: String,
    },
    /// Anything that is not a server-reported API error.
    Other(String),
}

impl std::fmt::Display for AdminError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AdminError::Api { code, err_code, description } => {
                write!(f, "{description} (code {code}, err_code {err_code})")
            }
            AdminError::Other(s) => f.write_str(s),
        }
    }
}

impl From<String> for AdminError {
    fn from(s: String) -> Self {
        AdminError::Other(s)
    }
}

/// The server URL to use: `--server` if given, else `NATS_URL`, else [`DEFAULT_URL`].
pub fn server_url(flag: Option<&str>) -> String {
    flag.map(str::to_owned)
        .or_else(|| std::env::var("NATS_URL").ok().filter(|u| !u.is_empty()))
        .unwrap_or_else(|| DEFAULT_URL.to_owned())
}

/// A connection to one server's JetStream API.
pub struct Api {
    client: async_nats::Client,
    url: String,
    timeout: Duration,
}

impl Api {
    /// Connect to `url` (a comma-separated list is accepted, as the nats CLI's `--server`).
    pub async fn connect(url: &str, timeout: Duration) -> Result<Api, AdminError> {
        let addrs: Vec<&str> = url.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
        let client = async_nats::ConnectOptions::new()
            .request_timeout(Some(timeout))
            .connection_timeout(timeout)
            .connect(addrs.as_slice())
            .await
            .map_err(|e| AdminError::Other(format!("cannot connect to {url}: {e}")))?;
        Ok(Api { client, url: url.to_owned(), timeout })
    }

    /// Send `body` to `subject` and return the raw response body. A reply with an
    /// `error` object becomes [`AdminError::Api`].
    pub async fn request_raw(&self, subject: &str, body: &Value) -> Result<(Bytes, Value), AdminError> {
        let payload = if body.is_null() { Bytes::new() } else { Bytes::from(body.to_string()) };
        let msg = self.client.request(subject.to_owned(), payload).await.map_err(|e| {
            use async_nats::client::RequestErrorKind as K;
            AdminError::Other(match e.kind() {
                K::NoResponders => {
                    format!("no JetStream API answered {subject} at {} (is JetStream enabled?)", self.url)
                }
                K::TimedOut => format!("{subject}: no answer within {:?}", self.timeout),
                _ => format!("{subject}: {e}"),
            })
        })?;
        let v: Value = serde_json::from_slice(&msg.payload).map_err(|e| {
            AdminError::Other(format!(
                "{subject}: the answer is not JSON ({e}): {}",
                String::from_utf8_lossy(&msg.payload)
            ))
        })?;
        if let Some(err) = v.get("error").filter(|e| !e.is_null()) {
            return Err(AdminError::Api {
                code: err.get("code").and_then(Value::as_u64).unwrap_or(0),
                err_code: err.get("err_code").and_then(Value::as_u64).unwrap_or(0),
                description: err.get("description").and_then(Value::as_str).unwrap_or("unknown error").to_owned(),
            });
        }
        Ok((msg.payload, v))
    }

    /// Every item of a paged list API (`STREAM.LIST`, `CONSUMER.LIST`, ...): the arrays
    /// under `key` of each page, asking with `{"offset": N}` until `total` is reached.
    /// Also returns each page's raw body (for `--json`).
    pub async fn list_all(&self, subject: &str, key: &str) -> Result<(Vec<Value>, Vec<Bytes>), AdminError> {
        let (mut items, mut pages) = (Vec::new(), Vec::new());
        loop {
            let (raw, v) = self.request_raw(subject, &serde_json::json!({ "offset": items.len() })).await?;
            pages.push(raw);
            let page = v.get(key).and_then(Value::as_array).cloned().unwrap_or_default();
            let total = v.get("total").and_then(Value::as_u64).unwrap_or(0) as usize;
            let empty = page.is_empty();
            items.extend(page);
            if empty || items.len() >= total {
                return Ok((items, pages));
            }
        }
    }
}
