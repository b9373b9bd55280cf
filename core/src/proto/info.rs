//! The JSON bodies of `CONNECT` ([`ConnectInfo`]) and `INFO` ([`ServerInfo`]).

use serde::{Deserialize, Serialize};

/// The options a client sends in `CONNECT {json}`.
///
/// Parsing follows nats-server: `verbose`, `pedantic` and `echo` default to
/// **true** when absent, other fields default to false/empty, `null` counts as
/// absent, and unknown fields are ignored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConnectInfo {
    /// Reply `+OK` to every accepted op.
    pub verbose: bool,
    /// Extra checks, such as rejecting non-literal publish subjects.
    pub pedantic: bool,
    /// The client requires TLS.
    pub tls_required: bool,
    /// Auth token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_token: Option<String>,
    /// User name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Password.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pass: Option<String>,
    /// Client name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Client library language.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
    /// Client library version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Protocol level: 0 original, 1 accepts async INFO.
    pub protocol: i64,
    /// Deliver the connection's own publishes back to it.
    pub echo: bool,
    /// Signed nonce (nkey/JWT auth).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sig: Option<String>,
    /// User JWT.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt: Option<String>,
    /// Public nkey.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nkey: Option<String>,
    /// The client understands `HPUB`/`HMSG`.
    pub headers: bool,
    /// The client wants 503 no-responders status messages (requires `headers`).
    pub no_responders: bool,
}

impl Default for ConnectInfo {
    fn default() -> Self {
        ConnectInfo {
            verbose: true,
            pedantic: true,
            tls_required: false,
            auth_token: None,
            user: None,
            pass: None,
            name: None,
            lang: None,
            version: None,
            protocol: 0,
            echo: true,
            sig: None,
            jwt: None,
            nkey: None,
            headers: false,
            no_responders: false,
        }
    }
}

/// The wire form with every field optional, so that absent and `null` fall back to the defaults.
#[derive(Deserialize)]
struct RawConnect {
    verbose: Option<bool>,
    pedantic: Option<bool>,
    tls_required: Option<bool>,
    auth_token: Option<String>,
    user: Option<String>,
    pass: Option<String>,
    name: Option<String>,
    lang: Option<String>,
    version: Option<String>,
    protocol: Option<i64>,
    echo: Option<bool>,
    sig: Option<String>,
    jwt: Option<String>,
    nkey: Option<String>,
    headers: Option<bool>,
    no_responders: Option<bool>,
}

impl ConnectInfo {
    /// Parse a CONNECT JSON body.
    pub fn from_json(json: &[u8]) -> Result<Self, serde_json::Error> {
        let raw: RawConnect = serde_json::from_slice(json)?;
        let d = ConnectInfo::default();
        Ok(ConnectInfo {
            verbose: raw.verbose.unwrap_or(d.verbose),
            pedantic: raw.pedantic.unwrap_or(d.pedantic),
            tls_required: raw.tls_required.unwrap_or(d.tls_required),
            auth_token: raw.auth_token,
            user: raw.user,
            pass: raw.pass,
            name: raw.name,
            lang: raw.lang,
            version: raw.version,
            protocol: raw.protocol.unwrap_or(d.protocol),
            echo: raw.echo.unwrap_or(d.echo),
            sig: raw.sig,
            jwt: raw.jwt,
            nkey: raw.nkey,
            headers: raw.headers.unwrap_or(d.headers),
            no_responders: raw.no_responders.unwrap_or(d.no_responders),
        })
    }

    /// Serialise to JSON (never fails for this type).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// The server's `INFO {json}` body (the fields a client uses; unknown fields are ignored on parse).
///
/// Field names, order and which fields are omitted when empty follow nats-server's `Info`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerInfo {
    /// Unique server id.
    pub server_id: String,
    /// Server name.
    pub server_name: String,
    /// Server version.
    pub version: String,
    /// Protocol level (1: async INFO supported).
    pub proto: i64,
    /// Git commit of the build.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub git_commit: String,
    /// Runtime version (nats-server reports its Go version here).
    pub go: String,
    /// Listen host.
    pub host: String,
    /// Listen port.
    pub port: u16,
    /// The server supports headers.
    pub headers: bool,
    /// Auth is required.
    #[serde(skip_serializing_if = "is_false")]
    pub auth_required: bool,
    /// TLS is required.
    #[serde(skip_serializing_if = "is_false")]
    pub tls_required: bool,
    /// Client certificates are verified.
    #[serde(skip_serializing_if = "is_false")]
    pub tls_verify: bool,
    /// TLS is available.
    #[serde(skip_serializing_if = "is_false")]
    pub tls_available: bool,
    /// Largest payload the server accepts on this connection.
    pub max_payload: i64,
    /// JetStream is enabled.
    #[serde(skip_serializing_if = "is_false")]
    pub jetstream: bool,
    /// The server's IP.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub ip: String,
    /// The connection's client id.
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub client_id: u64,
    /// The client's IP as the server sees it.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub client_ip: String,
    /// Auth nonce.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub nonce: String,
    /// Cluster name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cluster: String,
    /// JetStream domain.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub domain: String,
    /// URLs of the cluster's other servers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub connect_urls: Vec<String>,
    /// Lame-duck mode.
    #[serde(skip_serializing_if = "is_false")]
    pub ldm: bool,
    /// This INFO answers a CONNECT.
    #[serde(skip_serializing_if = "is_false")]
    pub connect_info: bool,
    /// The account the connection is bound to.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub remote_account: String,
    /// JetStream API level.
    #[serde(skip_serializing_if = "is_zero")]
    pub api_lvl: i64,
    /// Weir's own version (not a nats-server field; `version` carries the NATS level).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub weir_version: String,
}

fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

impl ServerInfo {
    /// Parse an INFO JSON body.
    pub fn from_json(json: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(json)
    }

    /// Serialise to JSON (never fails for this type).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}
