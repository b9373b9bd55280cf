//! `/accountz`: the NATS accounts of a server, in nats-server's JSON shape.
//!
//! Without `?acc=NAME`: `{"server_id", "now", "accounts": [names]}`. With it:
//! `{"server_id", "now", "account_detail": {...}}` carrying nats-server's `AccountInfo`
//! fields weir has (`account_name`, `update_time`, `is_system`, `expired`, `complete`,
//! `jetstream_enabled`, `leafnode_connections`, `client_connections`, `subscriptions`),
//! plus weir's own `weir_memory`: the account's two memory accounts (see
//! [`super::broker::AccountLimits`]). An unknown account gives
//! `{"error": "Account <name> does not exist"}` as nats-server's text says it. Weir has no
//! system account (`$SYS`), so `system_account` is absent.

use super::broker::AccountStat;
use serde::Serialize;

/// The `/accountz` answer.
#[derive(Clone, Debug, Serialize)]
pub struct Accountz {
    /// The server's id.
    pub server_id: String,
    /// When this was taken (RFC 3339).
    pub now: String,
    /// Every account's name (without `?acc`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub accounts: Vec<String>,
    /// One account's detail (with `?acc=NAME`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_detail: Option<AccountDetail>,
    /// Why the detail is missing (an unknown account).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One account, as nats-server's `AccountInfo` (the fields weir has).
#[derive(Clone, Debug, Serialize)]
pub struct AccountDetail {
    /// Name.
    pub account_name: String,
    /// When this was taken (weir does not track updates).
    pub update_time: String,
    /// Whether it is the system account (never, in weir).
    pub is_system: bool,
    /// Whether its JWT expired (weir does not check expiry).
    pub expired: bool,
    /// Always true (nats-server: the account is fully loaded).
    pub complete: bool,
    /// Whether JetStream serves it (only `$G` in weir).
    pub jetstream_enabled: bool,
    /// Leafnode connections (weir has none).
    pub leafnode_connections: usize,
    /// Connected clients.
    pub client_connections: usize,
    /// Subscriptions.
    pub subscriptions: usize,
    /// Weir's own: the account's memory.
    pub weir_memory: AccountMemory,
}

/// An account's memory figures, bytes.
#[derive(Clone, Debug, Serialize)]
pub struct AccountMemory {
    /// Bytes queued to its clients (`account.outbound`).
    pub outbound: MemFigure,
    /// Its subscriptions' estimated bytes (`account.subs`).
    pub subscriptions: MemFigure,
}

/// Current bytes and limit.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct MemFigure {
    /// Bytes charged now.
    pub current: u64,
    /// The limit.
    pub limit: u64,
}

impl Accountz {
    /// Build the answer from the broker's account snapshot; `acc` is the `?acc=` value,
    /// `now` an RFC 3339 time and `js_global` whether JetStream serves `$G`.
    pub fn new(server_id: String, now: String, stats: &[AccountStat], acc: Option<&str>, js_global: bool) -> Accountz {
        let mut z = Accountz { server_id, now, accounts: Vec::new(), account_detail: None, error: None };
        match acc {
            None => z.accounts = stats.iter().map(|s| s.name.clone()).collect(),
            Some(name) => match stats.iter().find(|s| s.name == name) {
                None => z.error = Some(format!("Account {name} does not exist")),
                Some(s) => {
                    z.account_detail = Some(AccountDetail {
                        account_name: s.name.clone(),
                        update_time: z.now.clone(),
                        is_system: false,
                        expired: false,
                        complete: true,
                        jetstream_enabled: js_global && s.name == super::auth::GLOBAL_ACCOUNT,
                        leafnode_connections: 0,
                        client_connections: s.clients,
                        subscriptions: s.subscriptions,
                        weir_memory: AccountMemory {
                            outbound: MemFigure { current: s.outbound.0, limit: s.outbound.1 },
                            subscriptions: MemFigure { current: s.subs_bytes.0, limit: s.subs_bytes.1 },
                        },
                    })
                }
            },
        }
        z
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_accounts_and_details_one() {
        let stats = vec![
            AccountStat { name: "$G".into(), clients: 1, subscriptions: 2, outbound: (0, 10), subs_bytes: (5, 9) },
            AccountStat { name: "A".into(), clients: 3, subscriptions: 4, outbound: (1, 10), subs_bytes: (0, 9) },
        ];
        let list = serde_json::to_value(Accountz::new("N".into(), "t".into(), &stats, None, true)).unwrap();
        assert_eq!(list, serde_json::json!({"server_id": "N", "now": "t", "accounts": ["$G", "A"]}));
        let a = serde_json::to_value(Accountz::new("N".into(), "t".into(), &stats, Some("A"), true)).unwrap();
        let d = &a["account_detail"];
        assert_eq!((d["account_name"].as_str(), d["client_connections"].as_u64()), (Some("A"), Some(3)));
        assert_eq!((d["subscriptions"].as_u64(), d["jetstream_enabled"].as_bool()), (Some(4), Some(false)));
        assert_eq!(d["weir_memory"]["outbound"]["current"], 1);
        let g = serde_json::to_value(Accountz::new("N".into(), "t".into(), &stats, Some("$G"), true)).unwrap();
        assert_eq!(g["account_detail"]["jetstream_enabled"], true);
        let none = serde_json::to_value(Accountz::new("N".into(), "t".into(), &stats, Some("X"), true)).unwrap();
        assert_eq!(none["error"], "Account X does not exist");
    }
}
