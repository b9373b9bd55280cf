//! The memory ledger: named accounts with limits, current and peak values.
//!
//! Every structure whose size follows load charges an account here, and every
//! account has a limit. Code that would grow an account past its limit must push
//! back instead (wait, refuse, drop, disconnect); [`Account::try_charge`] is the
//! only way normal code grows an account. [`Account::force_charge`] exists for the
//! known-bug switches, so that a disabled bound shows up as a peak over the limit.
//! The simulator samples the ledger and its memory checker fails runs whose peaks
//! exceed limits or whose accounts do not return to baseline.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Account names used across the core: the keys of [`REGISTRY`].
pub mod names {
    /// Bytes queued to the clients of one NATS account (a standalone account per NATS
    /// account, charged besides `client.outbound`; see `server::nats::broker`).
    pub const ACCOUNT_OUTBOUND: &str = "account.outbound";
    /// Estimated bytes of one NATS account's subscriptions (subject, queue and index entry).
    pub const ACCOUNT_SUBS: &str = "account.subs";
    /// Proposals not yet committed (leader side).
    pub const RAFT_PENDING: &str = "raft.pending";
    /// Bytes in flight to followers being replicated or caught up.
    pub const RAFT_CATCHUP: &str = "raft.catchup";
    /// Raft messages read from peers and not yet stepped by the node's Raft loop; see
    /// `server::inbox`.
    pub const RAFT_INBOX: &str = "raft.inbox";
    /// Entries held in the in-memory Raft logs of every group (since each group's last
    /// snapshot). Bounded by refusing proposals and follower appends at the limit and
    /// released by compaction; see `raft/log.rs`.
    pub const RAFT_LOG: &str = "raft.log";
    /// Bytes queued on route connections to peers.
    pub const ROUTE_OUTBOUND: &str = "route.outbound";
    /// Bytes queued to clients.
    pub const CLIENT_OUTBOUND: &str = "client.outbound";
    /// Client connections' read buffers.
    pub const CLIENT_BUFFERS: &str = "client.buffers";
    /// Client subscriptions: the subject index, the subscription table and sid maps.
    pub const CLIENT_SUBS: &str = "client.subs";
    /// The file store's block read/write buffers (the buffer pool).
    pub const STORE_BUFFERS: &str = "store.buffers";
    /// Cached block data of the file store.
    pub const STORE_CACHE: &str = "store.cache";
    /// The file store's in-memory index.
    pub const STORE_INDEX: &str = "store.index";
    /// Messages loaded by consumers for delivery and not yet handed to a client.
    pub const CONSUMER_INFLIGHT: &str = "consumer.inflight";
    /// A stream's `Nats-Msg-Id` duplicate window and per-message TTL deadlines.
    pub const STREAM_DEDUP: &str = "stream.dedup";
    /// Publishes appended to file streams whose PubAcks wait for the group commit.
    pub const STREAM_PENDING: &str = "stream.pending";
}

/// What the registry says about one ledger account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccountSpec {
    /// The account's name (one of [`names`]).
    pub name: &'static str,
    /// Limit in bytes when the configuration does not set one.
    pub default_limit: u64,
    /// What the account holds.
    pub holds: &'static str,
    /// What keeps it within its limit (the push-back at the limit).
    pub bounded_by: &'static str,
}

const MIB: u64 = 1024 * 1024;

/// Every ledger account of Weir: the one list that ledgers, `/varz`, the simulator and
/// `docs/ARCHITECTURE.md` all read. A [`Ledger`] refuses accounts that are not here.
pub const REGISTRY: &[AccountSpec] = &[
    AccountSpec {
        name: names::ACCOUNT_OUTBOUND,
        default_limit: 512 * MIB,
        holds: "bytes queued to the clients of one NATS account (one such account per NATS account)",
        bounded_by: "a client whose push would pass its NATS account's limit is a slow consumer and is disconnected",
    },
    AccountSpec {
        name: names::ACCOUNT_SUBS,
        default_limit: 64 * MIB,
        holds: "subscriptions of one NATS account (subject, queue, index entry; one per NATS account)",
        bounded_by: "a SUB over the NATS account's limit gets -ERR 'maximum subscriptions exceeded'",
    },
    AccountSpec {
        name: names::CLIENT_BUFFERS,
        default_limit: 512 * MIB,
        holds: "client connections' read buffers (64 KiB each, more while a large message arrives)",
        bounded_by: "growth past a connection's 64 KiB base stops reading; at the limit the largest holder is closed (-ERR 'maximum client buffers exceeded'); the base is always granted (overshoot at most 64 KiB x max_connections); buffers shrink back after a burst",
    },
    AccountSpec {
        name: names::CLIENT_OUTBOUND,
        default_limit: 1024 * MIB,
        holds: "bytes queued to client connections",
        bounded_by: "per-client max_pending (a client over it is a slow consumer), publishers waiting (bounded) past a queue's stall mark; at this limit the largest other queues are cut",
    },
    AccountSpec {
        name: names::CLIENT_SUBS,
        default_limit: 1024 * MIB,
        holds: "client subscriptions: subject index, subscription table, sid maps (an estimate per subscription)",
        bounded_by: "per-connection max_subscriptions; at either limit a SUB gets -ERR 'maximum subscriptions exceeded'",
    },
    AccountSpec {
        name: names::CONSUMER_INFLIGHT,
        default_limit: 64 * MIB,
        holds: "messages loaded by consumers for delivery, until they are in a client's outbound buffer",
        bounded_by: "a per-consumer window and this node-wide limit; delivery waits at either",
    },
    AccountSpec {
        name: names::RAFT_CATCHUP,
        default_limit: 2 * MIB,
        holds: "entry bytes sent to followers and not yet acknowledged",
        bounded_by: "a per-follower window; the leader sends no more until acknowledgements release it",
    },
    AccountSpec {
        name: names::RAFT_INBOX,
        default_limit: 8 * MIB,
        holds: "Raft messages read from peers and not yet stepped by the node's Raft loop",
        bounded_by: "the route reader waits for room (its peer's route queue then backs up and evicts older Raft frames); an oversized message goes alone into an empty inbox",
    },
    AccountSpec {
        name: names::RAFT_LOG,
        default_limit: 64 * MIB,
        holds: "entries in the in-memory Raft logs of every group, since each group's last snapshot",
        bounded_by: "proposals and follower appends are refused at the limit; compaction releases it",
    },
    AccountSpec {
        name: names::RAFT_PENDING,
        default_limit: 4 * MIB,
        holds: "proposals appended by the leader and not yet committed",
        bounded_by: "new proposals are refused with back-pressure",
    },
    AccountSpec {
        name: names::ROUTE_OUTBOUND,
        default_limit: 256 * MIB,
        holds: "frames queued to route peers (their heap cost and the queues' slots)",
        bounded_by: "a per-route cap, publishers waiting at half of it, then the slow-route policy (drop and count, or close and resync)",
    },
    AccountSpec {
        name: names::STORE_BUFFERS,
        default_limit: 8 * MIB,
        holds: "the file store's block read/write buffers",
        bounded_by: "the buffer pool's hard cap; over it a read waits or fails with NoMemory",
    },
    AccountSpec {
        name: names::STORE_CACHE,
        default_limit: 8 * MIB,
        holds: "cached message blocks of the file store",
        bounded_by: "a byte cap with eviction, and idle expiry",
    },
    AccountSpec {
        name: names::STORE_INDEX,
        default_limit: 64 * MIB,
        holds: "the file store's in-memory index (a slot per stored sequence, per-subject state)",
        bounded_by: "appends past the limit are refused with NoMemory",
    },
    AccountSpec {
        name: names::STREAM_DEDUP,
        default_limit: 64 * MIB,
        holds: "message ids inside each stream's duplicate window, and per-message TTL deadlines",
        bounded_by: "ids expire with the window; at the limit a publish with a new id is refused (429, 10167)",
    },
    AccountSpec {
        name: names::STREAM_PENDING,
        default_limit: 16 * MIB,
        holds: "publishes appended to file streams whose PubAcks (and consumer visibility) wait for the group commit",
        bounded_by: "at the limit the JetStream engine runs the group commit before appending more",
    },
];

/// The registry as a Markdown table (account, default limit, holds, bounded by): what
/// `docs/ARCHITECTURE.md` carries between its `ledger-table` markers (a test keeps the
/// two equal).
pub fn registry_table() -> String {
    let mut out = String::from("| account | default limit | holds | bounded by |\n|---|---|---|---|\n");
    for a in REGISTRY {
        out.push_str(&format!("| `{}` | {} MiB | {} | {} |\n", a.name, a.default_limit / MIB, a.holds, a.bounded_by));
    }
    out
}

/// The registry entry for `name`. Panics for a name that is not registered: a wiring bug.
pub fn spec(name: &str) -> &'static AccountSpec {
    REGISTRY.iter().find(|a| a.name == name).unwrap_or_else(|| panic!("ledger account {name} is not in mem::REGISTRY"))
}

/// One named account.
#[derive(Debug)]
pub struct Account {
    name: &'static str,
    limit: AtomicU64,
    current: AtomicU64,
    peak: AtomicU64,
}

impl Account {
    /// A new empty account with `limit` bytes.
    pub fn new(name: &'static str, limit: u64) -> Self {
        Account { name, limit: AtomicU64::new(limit), current: AtomicU64::new(0), peak: AtomicU64::new(0) }
    }

    /// The account's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The configured limit in bytes.
    pub fn limit(&self) -> u64 {
        self.limit.load(Ordering::Relaxed)
    }

    /// Change the limit (bytes already charged stay; only new charges see it).
    pub fn set_limit(&self, limit: u64) {
        self.limit.store(limit, Ordering::Relaxed);
    }

    /// Bytes currently charged.
    pub fn current(&self) -> u64 {
        self.current.load(Ordering::Relaxed)
    }

    /// Highest value seen since creation or the last [`Account::reset`].
    pub fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }

    /// Bytes that can still be charged before the limit.
    pub fn available(&self) -> u64 {
        self.limit().saturating_sub(self.current())
    }

    /// Charge `bytes` if that keeps the account within its limit; `false` means push back.
    pub fn try_charge(&self, bytes: u64) -> bool {
        if bytes > 0 && crate::fault_point!("ledger.refuse") {
            // The same refusal a full account gives: every caller already handles it.
            return false;
        }
        let limit = self.limit();
        let mut cur = self.current.load(Ordering::Relaxed);
        loop {
            let next = cur.saturating_add(bytes);
            if next > limit {
                return false;
            }
            match self.current.compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => {
                    self.peak.fetch_max(next, Ordering::Relaxed);
                    return true;
                }
                Err(actual) => cur = actual,
            }
        }
    }

    /// Charge `bytes` even past the limit. Only known-bug paths and documented, bounded
    /// overshoots call this (a connection's base read buffer, see
    /// `server::nats::readbuf`: at most 64 KiB per connection).
    pub fn force_charge(&self, bytes: u64) {
        let next = self.current.fetch_add(bytes, Ordering::Relaxed) + bytes;
        self.peak.fetch_max(next, Ordering::Relaxed);
    }

    /// Return `bytes` previously charged.
    pub fn release(&self, bytes: u64) {
        let prev = self.current.fetch_sub(bytes, Ordering::Relaxed);
        debug_assert!(prev >= bytes, "ledger account {} released more than charged", self.name);
        if prev < bytes {
            // Never wrap: clamp and keep going in release builds.
            self.current.store(0, Ordering::Relaxed);
        }
    }

    /// Zero current and peak (a node restart frees its memory).
    pub fn reset(&self) {
        self.current.store(0, Ordering::Relaxed);
        self.peak.store(0, Ordering::Relaxed);
    }
}

/// A consistent reading of one account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountSample {
    /// Account name.
    pub name: &'static str,
    /// Bytes currently charged.
    pub current: u64,
    /// Peak bytes.
    pub peak: u64,
    /// Limit.
    pub limit: u64,
}

/// A node's set of accounts, shared by its components and read by the simulator.
#[derive(Clone, Debug, Default)]
pub struct Ledger {
    accounts: Arc<BTreeMap<&'static str, Arc<Account>>>,
}

impl Ledger {
    /// A ledger with the given `(name, limit)` accounts. Panics if a name is not in
    /// [`REGISTRY`].
    pub fn new(limits: &[(&'static str, u64)]) -> Self {
        for &(name, _) in limits {
            spec(name);
        }
        let accounts = limits.iter().map(|&(n, l)| (n, Arc::new(Account::new(n, l)))).collect();
        Ledger { accounts: Arc::new(accounts) }
    }

    /// A ledger with the named accounts at their registry default limits.
    pub fn with_defaults(names: &[&'static str]) -> Self {
        let limits: Vec<(&'static str, u64)> = names.iter().map(|&n| (n, spec(n).default_limit)).collect();
        Ledger::new(&limits)
    }

    /// The account called `name`. Panics if the ledger was built without it: that is a wiring bug.
    pub fn account(&self, name: &str) -> Arc<Account> {
        self.accounts.get(name).cloned().unwrap_or_else(|| panic!("ledger has no account {name}"))
    }

    /// The account called `name`, if the ledger has it.
    pub fn get(&self, name: &str) -> Option<Arc<Account>> {
        self.accounts.get(name).cloned()
    }

    /// Samples of every account in name order.
    pub fn sample(&self) -> Vec<AccountSample> {
        self.accounts
            .values()
            .map(|a| AccountSample { name: a.name, current: a.current(), peak: a.peak(), limit: a.limit() })
            .collect()
    }

    /// Zero every account (used when a node restarts: its memory is gone).
    pub fn reset(&self) {
        self.accounts.values().for_each(|a| a.reset());
    }
}

/// RAII charge on an account: released when dropped, so no path can leak it.
#[derive(Debug)]
pub struct Charge {
    account: Arc<Account>,
    bytes: u64,
}

impl Charge {
    /// Try to charge `bytes` to `account`; `None` means the account is full.
    pub fn try_new(account: &Arc<Account>, bytes: u64) -> Option<Charge> {
        account.try_charge(bytes).then(|| Charge { account: account.clone(), bytes })
    }

    /// Charge past the limit (known-bug paths only).
    pub fn force(account: &Arc<Account>, bytes: u64) -> Charge {
        account.force_charge(bytes);
        Charge { account: account.clone(), bytes }
    }

    /// Bytes held by this charge.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Hand the charge over to a holder that releases it itself (one that keeps its
    /// own count of what it charged); returns the bytes, which stay charged.
    pub fn keep(mut self) -> u64 {
        std::mem::take(&mut self.bytes)
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.account.release(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn try_charge_respects_limit_and_tracks_peak() {
        let a = Arc::new(Account::new("t", 100));
        assert!(a.try_charge(60));
        assert!(!a.try_charge(41));
        assert!(a.try_charge(40));
        a.release(50);
        assert_eq!(a.current(), 50);
        assert_eq!(a.peak(), 100);
    }

    #[test]
    fn registry_is_sorted_unique_and_guards_ledgers() {
        let names: Vec<&str> = REGISTRY.iter().map(|a| a.name).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(names, sorted, "REGISTRY is sorted by name without duplicates");
        let l = Ledger::with_defaults(&[names::RAFT_PENDING]);
        assert_eq!(l.account(names::RAFT_PENDING).limit(), spec(names::RAFT_PENDING).default_limit);
        assert!(std::panic::catch_unwind(|| Ledger::new(&[("no.such", 1)])).is_err());
    }

    #[test]
    fn charge_guard_releases_on_drop() {
        let a = Arc::new(Account::new("t", 10));
        {
            let _c = Charge::try_new(&a, 10).unwrap();
            assert!(Charge::try_new(&a, 1).is_none());
        }
        assert_eq!(a.current(), 0);
        let _f = Charge::force(&a, 25);
        assert_eq!(a.peak(), 25);
    }
}
