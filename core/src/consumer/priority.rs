//! Priority groups (nats-server 2.11/2.12): the consumer config's `priority_policy`,
//! `priority_groups` and `priority_timeout`, the pull request's group fields, the pin a
//! `pinned_client` consumer hands out, and the info's `priority_groups` state.
//!
//! The policies, as nats-server's `nextWaiting` applies them when it picks the pull request
//! that gets the next message:
//! - `overflow`: a request with `min_pending` / `min_ack_pending` is served only while the
//!   consumer has at least that many messages pending / awaiting ack; others are skipped.
//! - `pinned_client`: the first request without an `id` to be served gets a new pin id
//!   (header `Nats-Pin-Id` on every message); while a pin is held only requests carrying it
//!   are served, requests without an id wait, and a request with another id is ended with
//!   `423 Nats-Wrong-Pin-Id` (or refused on arrival with `423 Nats-Pin-Id mismatch`). A pin
//!   lapses after `priority_timeout` without a request carrying it (default 2 min), or by
//!   `$JS.API.CONSUMER.UNPIN`.
//! - `prioritized`: requests are queued by `priority` (0 first, up to 9), first come first
//!   served within a priority.
//!
//! The pin lives in memory only, as in nats-server (its consumer store has no pin): after
//! a restart the next request is pinned afresh, and a client still holding the old id gets
//! the 423 and re-pulls without it.

use super::error::ConsumerError;
use crate::jetstream::{NANOS_PER_SEC, serde_time_or_zero};
use serde::{Deserialize, Serialize};

/// Header carrying the pin id on every message of a `pinned_client` consumer.
pub const PIN_ID_HEADER: &str = "Nats-Pin-Id";
/// Pin lifetime when `priority_timeout` is not set (`JsDefaultPinnedTTL`, 2 min).
pub const DEFAULT_PINNED_TTL_NS: i64 = 120 * NANOS_PER_SEC;
/// Longest priority group name.
pub const MAX_GROUP_NAME_LEN: usize = 16;
/// Highest pull request `priority` (0 is served first).
pub const MAX_PRIORITY: i64 = 9;

/// How a consumer picks among waiting pull requests (`priority_policy`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PriorityPolicy {
    /// Round robin (omitted from the JSON, as nats-server's zero value).
    #[default]
    None,
    /// Requests with `min_pending` / `min_ack_pending` are served only past those marks.
    Overflow,
    /// One client holds a pin; the others stand by.
    PinnedClient,
    /// Lower `priority` first.
    Prioritized,
}

impl PriorityPolicy {
    /// Whether this is the default (`none`), for `skip_serializing_if`.
    pub fn is_none(&self) -> bool {
        *self == PriorityPolicy::None
    }
}

/// Whether `name` is a valid priority group name (`[A-Za-z0-9/_=-]{1,16}`, nats-server's
/// `validGroupName`).
pub fn valid_group_name(name: &str) -> bool {
    (1..=MAX_GROUP_NAME_LEN).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'=' | b'-'))
}

/// The priority checks of nats-server's `checkConsumerCfg`, in its order: a policy needs a
/// pull consumer (10178) and at least one group (10159) with valid names (10161, 10162);
/// without a policy, groups (10196) and `priority_timeout` (10197) are refused.
pub fn check_config(
    policy: PriorityPolicy,
    groups: &[String],
    pinned_ttl: i64,
    is_push: bool,
) -> Result<(), ConsumerError> {
    if policy != PriorityPolicy::None {
        if is_push {
            return Err(ConsumerError::PushWithPriorityGroup);
        }
        if groups.is_empty() {
            return Err(ConsumerError::PriorityPolicyWithoutGroup);
        }
        for g in groups {
            if g.is_empty() {
                return Err(ConsumerError::EmptyGroupName);
            }
            if !valid_group_name(g) {
                return Err(ConsumerError::InvalidGroupName);
            }
        }
    } else {
        if !groups.is_empty() {
            return Err(ConsumerError::PriorityGroupWithPolicyNone);
        }
        if pinned_ttl > 0 {
            return Err(ConsumerError::PinnedTtlWithoutPriorityPolicy);
        }
    }
    Ok(())
}

/// The priority-group fields of a JSON pull request (nats-server's `PriorityGroup`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PullGroup {
    /// The group the request pulls for.
    pub group: String,
    /// `overflow`: serve only while at least this many messages are pending (0: always).
    pub min_pending: i64,
    /// `overflow`: serve only while at least this many messages await ack (0: always).
    pub min_ack_pending: i64,
    /// `pinned_client`: the pin id the client holds (empty: none yet).
    pub id: String,
    /// `prioritized`: 0 (first) to 9.
    pub priority: i64,
}

impl PullGroup {
    /// The request checks of nats-server's `processNextMsgRequest` for a consumer with
    /// `policy` and `groups`; the error is the text after `400 Bad Request - `.
    pub fn check(&self, policy: PriorityPolicy, groups: &[String]) -> Result<(), &'static str> {
        if (self.min_pending != 0 || self.min_ack_pending != 0) && policy != PriorityPolicy::Overflow {
            return Err("Not a Overflow Priority consumer");
        }
        if !self.id.is_empty() && policy != PriorityPolicy::PinnedClient {
            return Err("Not a Pinned Client Priority consumer");
        }
        if !(0..=MAX_PRIORITY).contains(&self.priority) {
            return Err("Priority must be between 0 and 9");
        }
        if policy != PriorityPolicy::None {
            if self.group.is_empty() {
                return Err("Priority Group missing");
            }
            if !groups.contains(&self.group) {
                return Err("Invalid Priority Group");
            }
        }
        Ok(())
    }

    /// Whether an `overflow` request may be served with `num_pending` messages pending and
    /// `num_ack_pending` awaiting ack: when it sets no mark, or either mark is reached.
    pub fn overflow_allows(&self, num_pending: u64, num_ack_pending: u64) -> bool {
        let (mp, map) = (self.min_pending, self.min_ack_pending);
        (mp <= 0 && map <= 0) || (mp > 0 && mp as u64 <= num_pending) || (map > 0 && map as u64 <= num_ack_pending)
    }
}

/// One group's state in consumer info (`PriorityGroupState`); nats-server reports the first
/// group only.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriorityGroupState {
    /// Group name.
    pub group: String,
    /// The current pin id (`pinned_client` only; omitted when none).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pinned_client_id: String,
    /// When the pin was handed out (ns since the epoch; Go's zero time when none).
    #[serde(default, with = "serde_time_or_zero")]
    pub pinned_ts: i64,
}

/// The pin of a `pinned_client` consumer (one per consumer, as nats-server keeps one for
/// the first group). Not persisted (see the module docs).
#[derive(Clone, Debug, Default)]
pub(super) struct Pin {
    /// The pin id (empty: no pin).
    pub id: String,
    /// When it was handed out (ns).
    pub ts_ns: i64,
    /// When it lapses unless a request carrying it arrives first (ns).
    pub expires_ns: Option<i64>,
    /// Pins handed out so far (feeds the id, so that ids never repeat).
    pub issued: u64,
}

impl Pin {
    /// Whether a pin is held.
    pub fn is_set(&self) -> bool {
        !self.id.is_empty()
    }

    /// Hand out a new pin at `now_ns` for `ttl_ns`; returns its id.
    pub fn assign(&mut self, stream: &str, consumer: &str, now_ns: i64, ttl_ns: i64) -> String {
        self.issued += 1;
        self.id = pin_id(stream, consumer, now_ns, self.issued);
        self.ts_ns = now_ns;
        self.expires_ns = Some(now_ns.saturating_add(ttl_ns));
        self.id.clone()
    }

    /// A request carried the pin: it lives `ttl_ns` from now.
    pub fn refresh(&mut self, now_ns: i64, ttl_ns: i64) {
        if self.is_set() {
            self.expires_ns = Some(now_ns.saturating_add(ttl_ns));
        }
    }

    /// Drop the pin.
    pub fn clear(&mut self) {
        self.id.clear();
        self.ts_ns = 0;
        self.expires_ns = None;
    }
}

/// A pin id: 22 base-62 characters like nats-server's NUIDs, derived from the consumer,
/// the time and a counter so that runs are reproducible (no random source).
fn pin_id(stream: &str, consumer: &str, now_ns: i64, n: u64) -> String {
    const DIGITS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let seed = format!("{stream}\0{consumer}\0{now_ns}\0{n}");
    let mut h = xxhash_rust::xxh3::xxh3_128(seed.as_bytes());
    (0..22)
        .map(|_| {
            let c = DIGITS[(h % 62) as usize] as char;
            h /= 62;
            c
        })
        .collect()
}

/// `block` (a header block, possibly empty) with `key: value` appended, as nats-server's
/// `genHeader`.
pub fn add_header(block: &[u8], key: &str, value: &str) -> Vec<u8> {
    let mut out =
        if block.ends_with(b"\r\n\r\n") { block[..block.len() - 2].to_vec() } else { b"NATS/1.0\r\n".to_vec() };
    out.extend_from_slice(format!("{key}: {value}\r\n\r\n").as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_names() {
        assert!(valid_group_name("A"));
        assert!(valid_group_name("a-b_c/d=e0123456"));
        assert!(!valid_group_name(""));
        assert!(!valid_group_name("a-b_c/d=e01234567"), "17 characters");
        assert!(!valid_group_name("a.b"));
        assert!(!valid_group_name("a b"));
    }

    #[test]
    fn config_checks_in_nats_server_order() {
        use PriorityPolicy as P;
        let g = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(check_config(P::Overflow, &g(&["A"]), 0, true), Err(ConsumerError::PushWithPriorityGroup));
        assert_eq!(check_config(P::PinnedClient, &[], 0, false), Err(ConsumerError::PriorityPolicyWithoutGroup));
        assert_eq!(check_config(P::Prioritized, &g(&[""]), 0, false), Err(ConsumerError::EmptyGroupName));
        assert_eq!(check_config(P::Prioritized, &g(&["a.b"]), 0, false), Err(ConsumerError::InvalidGroupName));
        assert_eq!(check_config(P::None, &g(&["A"]), 0, false), Err(ConsumerError::PriorityGroupWithPolicyNone));
        assert_eq!(check_config(P::None, &[], 5, false), Err(ConsumerError::PinnedTtlWithoutPriorityPolicy));
        assert_eq!(check_config(P::PinnedClient, &g(&["A", "B"]), 5, false), Ok(()));
        assert_eq!(check_config(P::None, &[], 0, true), Ok(()));
    }

    #[test]
    fn request_checks() {
        let groups = vec!["A".to_string()];
        let req = |group: &str, mp: i64, id: &str, prio: i64| PullGroup {
            group: group.into(),
            min_pending: mp,
            id: id.into(),
            priority: prio,
            ..Default::default()
        };
        use PriorityPolicy as P;
        assert_eq!(req("A", 1, "", 0).check(P::PinnedClient, &groups), Err("Not a Overflow Priority consumer"));
        assert_eq!(req("A", 0, "x", 0).check(P::Overflow, &groups), Err("Not a Pinned Client Priority consumer"));
        assert_eq!(req("A", 0, "", 10).check(P::Prioritized, &groups), Err("Priority must be between 0 and 9"));
        assert_eq!(req("", 0, "", 0).check(P::Prioritized, &groups), Err("Priority Group missing"));
        assert_eq!(req("B", 0, "", 0).check(P::Overflow, &groups), Err("Invalid Priority Group"));
        assert_eq!(req("", 0, "", 0).check(P::None, &[]), Ok(()), "a plain consumer ignores the group");
        assert_eq!(req("A", 3, "", 0).check(P::Overflow, &groups), Ok(()));
    }

    #[test]
    fn overflow_marks() {
        let g = PullGroup { min_pending: 10, min_ack_pending: 5, ..Default::default() };
        assert!(!g.overflow_allows(9, 4));
        assert!(g.overflow_allows(10, 0));
        assert!(g.overflow_allows(0, 5));
        assert!(PullGroup::default().overflow_allows(0, 0));
    }

    #[test]
    fn pins_are_distinct_and_lapse() {
        let mut p = Pin::default();
        assert!(!p.is_set());
        let a = p.assign("S", "C", 100, 50);
        assert_eq!((a.len(), p.ts_ns, p.expires_ns), (22, 100, Some(150)));
        p.refresh(120, 50);
        assert_eq!(p.expires_ns, Some(170));
        let b = p.assign("S", "C", 100, 50);
        assert_ne!(a, b, "the counter makes every id new");
        p.clear();
        assert!(!p.is_set() && p.expires_ns.is_none());
        p.refresh(200, 50);
        assert_eq!(p.expires_ns, None, "no pin, nothing to refresh");
    }

    #[test]
    fn header_appended() {
        assert_eq!(add_header(b"", "Nats-Pin-Id", "x"), b"NATS/1.0\r\nNats-Pin-Id: x\r\n\r\n");
        assert_eq!(add_header(b"NATS/1.0\r\nA: b\r\n\r\n", "K", "v"), b"NATS/1.0\r\nA: b\r\nK: v\r\n\r\n");
    }

    #[test]
    fn state_json() {
        let s = PriorityGroupState { group: "A".into(), ..Default::default() };
        assert_eq!(serde_json::to_string(&s).unwrap(), r#"{"group":"A","pinned_ts":"0001-01-01T00:00:00Z"}"#);
    }
}
