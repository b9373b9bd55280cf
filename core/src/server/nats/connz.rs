//! `/connz`, `/subsz` and `/routez` in nats-server's JSON shapes: the per-connection
//! figures the server keeps for them ([`ConnStat`]), the query options with
//! nats-server's parsing and 400 texts ([`ConnzOptions::from_query`] and friends), and
//! the answers, sorted and paged as nats-server's `Connz`/`Subsz`/`Routez`.
//!
//! Differences from nats-server, all for want of the underlying state: no `rtt`, no
//! closed-connection ring (`state=closed` lists nothing, `state=any` the open ones), no
//! TLS details; the subscription index has no match cache, so
//! `num_cache` and `cache_hit_rate` are 0 and `max_fanout`/`avg_fanout` are taken over
//! every local match rather than over cached results. Times are the wall clock the
//! caller passes, minus the monotonic time since each event.

use serde::Serialize;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// nats-server's `DefaultConnListSize` (and `DefaultSubListSize`): the default `limit`.
pub const DEFAULT_LIST_SIZE: usize = 1024;

/// What the server knows about one client connection for `/connz`, updated as it runs:
/// relaxed atomics for the counters, a small lock for what CONNECT said.
#[derive(Debug, Default)]
pub struct ConnStat {
    /// Messages received from the client.
    pub in_msgs: AtomicU64,
    /// Payload and header bytes received from the client.
    pub in_bytes: AtomicU64,
    /// Messages queued to the client.
    pub out_msgs: AtomicU64,
    /// Payload and header bytes queued to the client.
    pub out_bytes: AtomicU64,
    /// When it connected, in ns since the server started (monotonic).
    pub start_ns: AtomicU64,
    /// When it last sent something, in ns since the server started (monotonic).
    pub last_ns: AtomicU64,
    meta: Mutex<ConnMeta>,
}

/// The descriptive part of a [`ConnStat`].
#[derive(Clone, Debug, Default)]
pub struct ConnMeta {
    /// Peer IP.
    pub ip: String,
    /// Peer port.
    pub port: u16,
    /// CONNECT `name`.
    pub name: String,
    /// CONNECT `lang`.
    pub lang: String,
    /// CONNECT `version`.
    pub version: String,
    /// The user it authenticated as (see `auth::Identity::user`).
    pub user: String,
}

impl ConnStat {
    /// Count one message of `bytes` from the client.
    pub fn count_in(&self, bytes: u64) {
        self.in_msgs.fetch_add(1, Ordering::Relaxed);
        self.in_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Count one message of `bytes` queued to the client.
    pub fn count_out(&self, bytes: u64) {
        self.out_msgs.fetch_add(1, Ordering::Relaxed);
        self.out_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Change the descriptive part.
    pub fn update_meta(&self, f: impl FnOnce(&mut ConnMeta)) {
        f(&mut self.meta.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// A copy of the descriptive part.
    pub fn meta(&self) -> ConnMeta {
        self.meta.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// One subscription as `/connz` (`subs=detail`), `/subsz` and `/routez` show it
/// (nats-server's `SubDetail`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SubDetail {
    /// Its NATS account (`/subsz` only).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub account: String,
    /// Subject pattern.
    pub subject: String,
    /// Queue group.
    #[serde(rename = "qgroup", skip_serializing_if = "String::is_empty")]
    pub queue: String,
    /// The client's sid.
    pub sid: String,
    /// Messages delivered on it.
    pub msgs: u64,
    /// Auto-unsubscribe limit (0: none).
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    /// The client's id.
    pub cid: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One client as the broker sees it, gathered under its lock for `/connz`.
#[derive(Debug)]
pub struct ClientView {
    /// Client id.
    pub cid: u64,
    /// Its live figures.
    pub stat: std::sync::Arc<ConnStat>,
    /// Bytes queued to it and not yet written.
    pub pending: u64,
    /// Its NATS account's name.
    pub account: String,
    /// Number of subscriptions.
    pub num_subs: usize,
    /// Its subscriptions, when asked for.
    pub subs: Vec<SubDetail>,
}

/// `/connz` sort keys (nats-server's `SortOpt`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SortOpt {
    /// `cid` (the default) or `start`: ascending connection id.
    #[default]
    Cid,
    /// `subs`: most subscriptions first.
    Subs,
    /// `pending`: most bytes pending first.
    Pending,
    /// `msgs_to`: most messages sent to it first.
    MsgsTo,
    /// `msgs_from`: most messages received from it first.
    MsgsFrom,
    /// `bytes_to`: most bytes sent to it first.
    BytesTo,
    /// `bytes_from`: most bytes received from it first.
    BytesFrom,
    /// `last`: most recent activity first.
    Last,
    /// `idle`: longest idle first.
    Idle,
    /// `uptime`: shortest uptime first (as nats-server, ascending).
    Uptime,
    /// `rtt`: weir measures no RTT, so this keeps connection id order.
    Rtt,
}

impl SortOpt {
    /// Parse `sort=`; nats-server's error for unknown keys, and for `stop`/`reason`
    /// (closed connections only, which weir does not keep).
    pub fn parse(s: &str) -> Result<SortOpt, String> {
        Ok(match s {
            "" | "cid" | "start" => SortOpt::Cid,
            "subs" => SortOpt::Subs,
            "pending" => SortOpt::Pending,
            "msgs_to" => SortOpt::MsgsTo,
            "msgs_from" => SortOpt::MsgsFrom,
            "bytes_to" => SortOpt::BytesTo,
            "bytes_from" => SortOpt::BytesFrom,
            "last" => SortOpt::Last,
            "idle" => SortOpt::Idle,
            "uptime" => SortOpt::Uptime,
            "rtt" => SortOpt::Rtt,
            "stop" => return Err("sort by stop only valid on closed connections".into()),
            "reason" => return Err("sort by reason only valid on closed connections".into()),
            other => return Err(format!("invalid sorting option: {other}")),
        })
    }
}

/// Which connections `/connz` lists (`state=`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ConnState {
    /// `open` (the default).
    #[default]
    Open,
    /// `closed`: weir keeps no closed connections, so none.
    Closed,
    /// `any` or `all`: the open ones.
    All,
}

/// `/connz` query options (nats-server's `ConnzOptions`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnzOptions {
    /// Sort key.
    pub sort: SortOpt,
    /// `auth=`: show each connection's account.
    pub auth: bool,
    /// `subs=1`: subscription subjects.
    pub subs: bool,
    /// `subs=detail`: subscription details.
    pub subs_detail: bool,
    /// First entry to return.
    pub offset: usize,
    /// Most entries to return.
    pub limit: usize,
    /// Only this connection (0: all).
    pub cid: u64,
    /// Which connections.
    pub state: ConnState,
    /// Only this account's connections (`acc=`).
    pub account: String,
}

impl Default for ConnzOptions {
    fn default() -> Self {
        ConnzOptions {
            sort: SortOpt::Cid,
            auth: false,
            subs: false,
            subs_detail: false,
            offset: 0,
            limit: DEFAULT_LIST_SIZE,
            cid: 0,
            state: ConnState::Open,
            account: String::new(),
        }
    }
}

/// A parsed URL query: `name=value` pairs, percent-decoded, the first of each name wins
/// (Go's `url.Values.Get`).
#[derive(Clone, Debug, Default)]
pub struct Query(Vec<(String, String)>);

impl Query {
    /// Parse `a=1&b=x%3E` (no leading `?`).
    pub fn parse(q: &str) -> Query {
        Query(
            q.split('&')
                .filter(|kv| !kv.is_empty())
                .map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    (percent_decode(k), percent_decode(v))
                })
                .collect(),
        )
    }

    /// The value of `name`, or "".
    pub fn get(&self, name: &str) -> &str {
        self.0.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v)
    }

    /// A boolean as Go's `strconv.ParseBool` reads it ("" is false), with nats-server's
    /// 400 text.
    pub fn bool(&self, name: &str) -> Result<bool, String> {
        match self.get(name) {
            "" => Ok(false),
            "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
            "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
            v => {
                Err(format!("Error decoding boolean for '{name}': strconv.ParseBool: parsing \"{v}\": invalid syntax"))
            }
        }
    }

    /// A signed integer ("" is 0), with nats-server's 400 text.
    pub fn int(&self, name: &str) -> Result<i64, String> {
        match self.get(name) {
            "" => Ok(0),
            v => v
                .parse::<i64>()
                .map_err(|_| format!("Error decoding int for '{name}': strconv.Atoi: parsing \"{v}\": invalid syntax")),
        }
    }

    /// An unsigned integer ("" is 0), with nats-server's 400 text.
    pub fn uint(&self, name: &str) -> Result<u64, String> {
        match self.get(name) {
            "" => Ok(0),
            v => v.parse::<u64>().map_err(|_| {
                format!("Error decoding uint64 for '{name}': strconv.ParseUint: parsing \"{v}\": invalid syntax")
            }),
        }
    }

    /// `subs=`: `detail`, or a boolean (nats-server's `decodeSubs`): (subs, detail).
    pub fn subs(&self) -> Result<(bool, bool), String> {
        if self.get("subs").eq_ignore_ascii_case("detail") {
            Ok((false, true))
        } else {
            Ok((self.bool("subs")?, false))
        }
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
        match b[i] {
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Offset and limit as nats-server reads them: a negative offset is 0, a limit of 0
/// or less is the default.
fn paging(offset: i64, limit: i64) -> (usize, usize) {
    let offset = usize::try_from(offset.max(0)).unwrap_or(usize::MAX);
    let limit = if limit <= 0 { DEFAULT_LIST_SIZE } else { usize::try_from(limit).unwrap_or(usize::MAX) };
    (offset, limit)
}

impl ConnzOptions {
    /// Parse a `/connz` query; `Err` is the body of nats-server's 400 answer.
    pub fn from_query(q: &Query) -> Result<ConnzOptions, String> {
        let sort = SortOpt::parse(q.get("sort"))?;
        let auth = q.bool("auth")?;
        let (subs, subs_detail) = q.subs()?;
        let (offset, limit) = paging(q.int("offset")?, q.int("limit")?);
        let cid = q.uint("cid")?;
        let state = match q.get("state").to_ascii_lowercase().as_str() {
            "" | "open" => ConnState::Open,
            "closed" => ConnState::Closed,
            "any" | "all" => ConnState::All,
            other => return Err(format!("Error decoding state for {other}")),
        };
        Ok(ConnzOptions {
            sort,
            auth,
            subs,
            subs_detail,
            offset,
            limit: if cid > 0 { 1 } else { limit },
            cid,
            state,
            account: q.get("acc").to_owned(),
        })
    }
}

/// One connection in `/connz` (nats-server's `ConnInfo`, the fields weir has).
#[derive(Clone, Debug, Serialize)]
pub struct ConnInfo {
    /// Client id.
    pub cid: u64,
    /// Always `Client`.
    pub kind: &'static str,
    /// Always `nats`.
    #[serde(rename = "type")]
    pub conn_type: &'static str,
    /// Peer IP.
    pub ip: String,
    /// Peer port.
    pub port: u16,
    /// Connect time, RFC 3339.
    pub start: String,
    /// Last time the client sent something, RFC 3339.
    pub last_activity: String,
    /// Time connected, as nats-server writes it (`1h2m3s`).
    pub uptime: String,
    /// Time since the last activity.
    pub idle: String,
    /// Bytes queued to it and not yet written.
    pub pending_bytes: u64,
    /// Messages received from it.
    pub in_msgs: u64,
    /// Messages sent to it.
    pub out_msgs: u64,
    /// Bytes received from it.
    pub in_bytes: u64,
    /// Bytes sent to it.
    pub out_bytes: u64,
    /// Number of subscriptions.
    pub subscriptions: usize,
    /// CONNECT `name`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// CONNECT `lang`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub lang: String,
    /// CONNECT `version`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub version: String,
    /// The user it authenticated as, with `auth=true` (as nats-server).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub authorized_user: String,
    /// Its account, with `auth=true` and not `$G` (as nats-server).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub account: String,
    /// Subscription subjects (`subs=1`).
    #[serde(rename = "subscriptions_list", skip_serializing_if = "Vec::is_empty")]
    pub subs: Vec<String>,
    /// Subscription details (`subs=detail`).
    #[serde(rename = "subscriptions_list_detail", skip_serializing_if = "Vec::is_empty")]
    pub subs_detail: Vec<SubDetail>,
    #[serde(skip)]
    start_ns: u64,
    #[serde(skip)]
    last_ns: u64,
}

/// The `/connz` answer (nats-server's `Connz`).
#[derive(Clone, Debug, Serialize)]
pub struct Connz {
    /// Server id.
    pub server_id: String,
    /// When the answer was made, RFC 3339.
    pub now: String,
    /// Connections in this page.
    pub num_connections: usize,
    /// Connections matching the filters, before paging.
    pub total: usize,
    /// The page's offset.
    pub offset: usize,
    /// The page's limit.
    pub limit: usize,
    /// The page.
    pub connections: Vec<ConnInfo>,
}

/// Times for an answer: the wall clock now (ns since the epoch) and the monotonic time
/// since the server started (ns), to turn [`ConnStat`] times into wall-clock ones.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    /// Wall clock now, ns since the Unix epoch.
    pub now_ns: i64,
    /// Monotonic ns since the server started.
    pub elapsed_ns: u64,
}

impl Clock {
    /// The wall-clock time of monotonic instant `at_ns`, RFC 3339.
    pub fn wall(&self, at_ns: u64) -> String {
        let ago = i64::try_from(self.elapsed_ns.saturating_sub(at_ns)).unwrap_or(i64::MAX);
        crate::jetstream::format_rfc3339_nano(self.now_ns.saturating_sub(ago))
    }

    /// The span from monotonic instant `at_ns` to now, as nats-server's `myUptime`.
    pub fn since(&self, at_ns: u64) -> String {
        uptime(self.elapsed_ns.saturating_sub(at_ns) / 1_000_000_000)
    }
}

/// A duration in whole seconds as nats-server writes uptimes: `5s`, `3m5s`, `2h3m5s`,
/// `1d2h3m5s`, `1y1d2h3m5s`.
pub fn uptime(secs: u64) -> String {
    let (m, h, d) = (secs / 60, secs / 3600, secs / 86_400);
    let y = d / 365;
    if y > 0 {
        format!("{y}y{}d{}h{}m{}s", d % 365, h % 24, m % 60, secs % 60)
    } else if d > 0 {
        format!("{d}d{}h{}m{}s", h % 24, m % 60, secs % 60)
    } else if h > 0 {
        format!("{h}h{}m{}s", m % 60, secs % 60)
    } else if m > 0 {
        format!("{m}m{}s", secs % 60)
    } else {
        format!("{secs}s")
    }
}

/// The `[offset, offset + limit)` page of `n` entries, clamped as nats-server's.
fn page(n: usize, offset: usize, limit: usize) -> std::ops::Range<usize> {
    let lo = offset.min(n);
    lo..lo + limit.min(n - lo)
}

impl Connz {
    /// Build the answer from the broker's clients (already filtered by `cid` and `acc`).
    pub fn build(server_id: String, clock: Clock, views: Vec<ClientView>, opts: &ConnzOptions) -> Connz {
        let views = if opts.state == ConnState::Closed { Vec::new() } else { views };
        let mut conns: Vec<ConnInfo> = views
            .into_iter()
            .map(|v| {
                let meta = v.stat.meta();
                let (start_ns, last_ns) =
                    (v.stat.start_ns.load(Ordering::Relaxed), v.stat.last_ns.load(Ordering::Relaxed));
                let last_ns = last_ns.max(start_ns);
                let subs = if opts.subs && !opts.subs_detail {
                    v.subs.iter().map(|s| s.subject.clone()).collect()
                } else {
                    Vec::new()
                };
                let subs_detail = if opts.subs_detail { v.subs } else { Vec::new() };
                ConnInfo {
                    cid: v.cid,
                    kind: "Client",
                    conn_type: "nats",
                    ip: meta.ip,
                    port: meta.port,
                    start: clock.wall(start_ns),
                    last_activity: clock.wall(last_ns),
                    uptime: clock.since(start_ns),
                    idle: clock.since(last_ns),
                    pending_bytes: v.pending,
                    in_msgs: v.stat.in_msgs.load(Ordering::Relaxed),
                    out_msgs: v.stat.out_msgs.load(Ordering::Relaxed),
                    in_bytes: v.stat.in_bytes.load(Ordering::Relaxed),
                    out_bytes: v.stat.out_bytes.load(Ordering::Relaxed),
                    subscriptions: v.num_subs,
                    name: meta.name,
                    lang: meta.lang,
                    version: meta.version,
                    authorized_user: if opts.auth { meta.user } else { String::new() },
                    account: if opts.auth && v.account != super::auth::GLOBAL_ACCOUNT {
                        v.account
                    } else {
                        String::new()
                    },
                    subs,
                    subs_detail,
                    start_ns,
                    last_ns,
                }
            })
            .collect();
        // Ties keep connection id order, so a page is the same on every call.
        conns.sort_by_key(|c| c.cid);
        match opts.sort {
            SortOpt::Cid | SortOpt::Rtt => {}
            SortOpt::Subs => conns.sort_by_key(|c| std::cmp::Reverse(c.subscriptions)),
            SortOpt::Pending => conns.sort_by_key(|c| std::cmp::Reverse(c.pending_bytes)),
            SortOpt::MsgsTo => conns.sort_by_key(|c| std::cmp::Reverse(c.out_msgs)),
            SortOpt::MsgsFrom => conns.sort_by_key(|c| std::cmp::Reverse(c.in_msgs)),
            SortOpt::BytesTo => conns.sort_by_key(|c| std::cmp::Reverse(c.out_bytes)),
            SortOpt::BytesFrom => conns.sort_by_key(|c| std::cmp::Reverse(c.in_bytes)),
            SortOpt::Last => conns.sort_by_key(|c| std::cmp::Reverse(c.last_ns)),
            SortOpt::Idle => conns.sort_by_key(|c| c.last_ns),
            SortOpt::Uptime => conns.sort_by_key(|c| std::cmp::Reverse(c.start_ns)),
        }
        let total = conns.len();
        let range = page(total, opts.offset, opts.limit);
        let connections: Vec<ConnInfo> = conns.drain(range).collect();
        Connz {
            server_id,
            now: crate::jetstream::format_rfc3339_nano(clock.now_ns),
            num_connections: connections.len(),
            total,
            offset: opts.offset,
            limit: opts.limit,
            connections,
        }
    }
}

/// `/subsz` query options (nats-server's `SubszOptions`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubszOptions {
    /// `subs=1`: list the subscriptions.
    pub subs: bool,
    /// First entry to list.
    pub offset: usize,
    /// Most entries to list.
    pub limit: usize,
    /// Only this account (`acc=`).
    pub account: String,
    /// Only subscriptions a message on this literal subject would match (`test=`).
    pub test: String,
}

impl SubszOptions {
    /// Parse a `/subsz` (or `/subscriptionsz`) query; `Err` is nats-server's 400 body.
    pub fn from_query(q: &Query) -> Result<SubszOptions, String> {
        let subs = q.bool("subs")?;
        let (offset, limit) = paging(q.int("offset")?, q.int("limit")?);
        let test = q.get("test").to_owned();
        if !test.is_empty() && !crate::subject::is_valid_literal(&test) {
            return Err(format!("invalid test subject, must be valid publish subject: {test}"));
        }
        Ok(SubszOptions { subs, offset, limit, account: q.get("acc").to_owned(), test })
    }
}

/// Counters of the local subscription indexes, as nats-server's `SublistStats`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SublistStats {
    /// Subscriptions held.
    pub num_subscriptions: u64,
    /// Cached match results (weir's index has no cache: 0).
    pub num_cache: u64,
    /// Subscriptions ever inserted.
    pub num_inserts: u64,
    /// Subscriptions ever removed.
    pub num_removes: u64,
    /// Subject lookups made for publishes.
    pub num_matches: u64,
    /// Share of lookups answered from the cache (0: no cache).
    pub cache_hit_rate: f64,
    /// Most subscriptions one lookup matched.
    pub max_fanout: u64,
    /// Average subscriptions per lookup.
    pub avg_fanout: f64,
}

/// The `/subsz` answer (nats-server's `Subsz`: the sublist figures inline).
#[derive(Clone, Debug, Serialize)]
pub struct Subsz {
    /// Server id.
    pub server_id: String,
    /// When the answer was made, RFC 3339.
    pub now: String,
    /// The index figures.
    #[serde(flatten)]
    pub stats: SublistStats,
    /// Subscriptions matching the filters (0 unless `subs=1`, as nats-server).
    pub total: usize,
    /// The page's offset.
    pub offset: usize,
    /// The page's limit.
    pub limit: usize,
    /// The page (`subs=1`).
    #[serde(rename = "subscriptions_list", skip_serializing_if = "Vec::is_empty")]
    pub subs: Vec<SubDetail>,
}

impl Subsz {
    /// Build the answer from the index figures and, with `subs=1`, every subscription of
    /// the selected accounts (already filtered by `test`).
    pub fn build(server_id: String, now_ns: i64, stats: SublistStats, subs: Vec<SubDetail>, o: &SubszOptions) -> Subsz {
        let (total, subs) = if o.subs {
            let total = subs.len();
            let range = page(total, o.offset, o.limit);
            (total, subs[range].to_vec())
        } else {
            (0, Vec::new())
        };
        Subsz {
            server_id,
            now: crate::jetstream::format_rfc3339_nano(now_ns),
            stats,
            total,
            offset: o.offset,
            limit: o.limit,
            subs,
        }
    }
}

/// One route in `/routez` (nats-server's `RouteInfo`, the fields weir has). Weir has
/// two connections per peer, one each way; a peer is one entry, with our sending
/// connection's id and queue and the traffic of both.
#[derive(Clone, Debug, Serialize)]
pub struct RouteInfo {
    /// Our sending connection's id.
    pub rid: u64,
    /// The peer's server id.
    pub remote_id: String,
    /// The peer's server name (weir's handshake does not carry it: empty).
    pub remote_name: String,
    /// We dialled our sending connection (always, in weir's model).
    pub did_solicit: bool,
    /// The peer's route address is one of the configured routes.
    pub is_configured: bool,
    /// The peer's route host.
    pub ip: String,
    /// The peer's route port.
    pub port: u16,
    /// When the route came up, RFC 3339.
    pub start: String,
    /// Last frame received from the peer, RFC 3339.
    pub last_activity: String,
    /// Time since the route came up.
    pub uptime: String,
    /// Time since the last frame from the peer.
    pub idle: String,
    /// Bytes queued to the peer.
    pub pending_size: u64,
    /// Messages received from the peer.
    pub in_msgs: u64,
    /// Messages queued to the peer.
    pub out_msgs: u64,
    /// Payload and header bytes received from the peer.
    pub in_bytes: u64,
    /// Payload and header bytes queued to the peer.
    pub out_bytes: u64,
    /// The peer's interest entries held.
    pub subscriptions: usize,
    /// Their subjects (`subs=1`).
    #[serde(rename = "subscriptions_list", skip_serializing_if = "Vec::is_empty")]
    pub subs: Vec<String>,
    /// Their details (`subs=detail`).
    #[serde(rename = "subscriptions_list_detail", skip_serializing_if = "Vec::is_empty")]
    pub subs_detail: Vec<SubDetail>,
    /// Weir's addition (nats-server has no such field): messages and Raft frames this
    /// route dropped, by reason, and the publisher stalls it caused, since this server
    /// started (the same counts as `/varz` `cluster.route_drops`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drops: Option<crate::server::route::RouteDropCounts>,
}

/// The `/routez` answer (nats-server's `Routez`).
#[derive(Clone, Debug, Serialize)]
pub struct Routez {
    /// Server id.
    pub server_id: String,
    /// Server name.
    pub server_name: String,
    /// When the answer was made, RFC 3339.
    pub now: String,
    /// Number of routes.
    pub num_routes: usize,
    /// The routes.
    pub routes: Vec<RouteInfo>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn q(s: &str) -> Query {
        Query::parse(s)
    }

    #[test]
    fn query_values_are_parsed_as_nats_server_does() {
        let o = ConnzOptions::from_query(&q("sort=bytes_to&subs=detail&offset=-3&limit=0&acc=A")).unwrap();
        assert_eq!((o.sort, o.subs, o.subs_detail, o.offset, o.limit), (SortOpt::BytesTo, false, true, 0, 1024));
        assert_eq!(o.account, "A");
        assert_eq!(ConnzOptions::from_query(&q("cid=7&limit=9")).unwrap().limit, 1, "a cid asks for one");
        assert_eq!(ConnzOptions::from_query(&q("sort=nope")).unwrap_err(), "invalid sorting option: nope");
        assert_eq!(
            ConnzOptions::from_query(&q("subs=maybe")).unwrap_err(),
            "Error decoding boolean for 'subs': strconv.ParseBool: parsing \"maybe\": invalid syntax"
        );
        assert_eq!(
            ConnzOptions::from_query(&q("limit=x")).unwrap_err(),
            "Error decoding int for 'limit': strconv.Atoi: parsing \"x\": invalid syntax"
        );
        assert_eq!(
            ConnzOptions::from_query(&q("cid=-1")).unwrap_err(),
            "Error decoding uint64 for 'cid': strconv.ParseUint: parsing \"-1\": invalid syntax"
        );
        assert_eq!(ConnzOptions::from_query(&q("state=gone")).unwrap_err(), "Error decoding state for gone");
        assert!(ConnzOptions::from_query(&q("sort=stop")).is_err());
        assert_eq!(ConnzOptions::from_query(&q("state=ANY")).unwrap().state, ConnState::All);
        let s = SubszOptions::from_query(&q("subs=1&test=foo.%3E")).unwrap_err();
        assert_eq!(s, "invalid test subject, must be valid publish subject: foo.>");
        assert_eq!(SubszOptions::from_query(&q("subs=true&test=a.b")).unwrap().test, "a.b");
    }

    #[test]
    fn uptimes_are_written_as_nats_server_writes_them() {
        assert_eq!(uptime(5), "5s");
        assert_eq!(uptime(185), "3m5s");
        assert_eq!(uptime(7385), "2h3m5s");
        assert_eq!(uptime(93_785), "1d2h3m5s");
        assert_eq!(uptime(365 * 86_400 + 1), "1y0d0h0m1s");
    }

    fn view(cid: u64, subs: usize, out_msgs: u64, start_ns: u64) -> ClientView {
        let stat = Arc::new(ConnStat::default());
        stat.out_msgs.store(out_msgs, Ordering::Relaxed);
        stat.start_ns.store(start_ns, Ordering::Relaxed);
        stat.last_ns.store(start_ns, Ordering::Relaxed);
        let subs = (0..subs)
            .map(|i| SubDetail { subject: format!("s.{i}"), sid: i.to_string(), cid, ..SubDetail::default() })
            .collect();
        ClientView { cid, stat, pending: 0, account: "$G".into(), num_subs: subs_len(cid), subs }
    }

    fn subs_len(cid: u64) -> usize {
        cid as usize % 3
    }

    #[test]
    fn connections_are_sorted_and_paged() {
        let clock = Clock { now_ns: 1_700_000_000_000_000_000, elapsed_ns: 10_000_000_000 };
        let views = || (1..=5).map(|c| view(c, subs_len(c), 10 - c, c * 1_000_000_000)).collect::<Vec<_>>();
        let ids = |z: &Connz| z.connections.iter().map(|c| c.cid).collect::<Vec<_>>();
        let o = |s: &str| ConnzOptions::from_query(&q(s)).unwrap();
        let z = Connz::build("S".into(), clock, views(), &o(""));
        assert_eq!((ids(&z), z.total, z.num_connections), (vec![1, 2, 3, 4, 5], 5, 5));
        assert_eq!(ids(&Connz::build("S".into(), clock, views(), &o("sort=subs"))), vec![2, 5, 1, 4, 3]);
        assert_eq!(ids(&Connz::build("S".into(), clock, views(), &o("sort=msgs_to"))), vec![1, 2, 3, 4, 5]);
        assert_eq!(ids(&Connz::build("S".into(), clock, views(), &o("sort=uptime"))), vec![5, 4, 3, 2, 1]);
        assert_eq!(ids(&Connz::build("S".into(), clock, views(), &o("sort=idle"))), vec![1, 2, 3, 4, 5]);
        let z = Connz::build("S".into(), clock, views(), &o("sort=cid&offset=3&limit=5"));
        assert_eq!((ids(&z), z.total, z.offset, z.limit), (vec![4, 5], 5, 3, 5));
        assert!(Connz::build("S".into(), clock, views(), &o("offset=9")).connections.is_empty());
        let z = Connz::build("S".into(), clock, views(), &o("subs=1&limit=1&offset=1"));
        assert_eq!(z.connections[0].subs, vec!["s.0", "s.1"]);
        assert!(z.connections[0].subs_detail.is_empty());
        assert_eq!(z.connections[0].uptime, "8s");
        let json = serde_json::to_value(&z).unwrap();
        assert_eq!(json["connections"][0]["subscriptions_list"][1], "s.1");
        assert_eq!(json["connections"][0]["type"], "nats");
        assert!(json["connections"][0].get("account").is_none());
        assert!(Connz::build("S".into(), clock, views(), &o("state=closed")).connections.is_empty());
    }
}
