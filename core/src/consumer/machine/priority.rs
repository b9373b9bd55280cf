//! The consumer's side of priority groups (see [`crate::consumer::PriorityPolicy`]): the
//! checks a pull request passes on arrival, where it queues, which waiting request gets
//! the next message, and the pin's life. Kept apart from the delivery loop so that the
//! loop only asks [`Consumer::select_waiting`].

use super::super::priority::{PriorityPolicy, PullGroup};
use super::super::pull;
use super::{Advisory, Consumer, Effect, Waiting};

impl Consumer {
    /// Checks of a JSON pull request's group fields on arrival (nats-server's
    /// `processNextMsgRequest`): `400` for fields the policy does not take or an unknown
    /// group; for a pinned consumer, a request carrying the current pin refreshes it and one
    /// carrying another id is refused with `423 Nats-Pin-Id mismatch`. Returns whether the
    /// request may queue.
    pub(super) fn admit_group(&mut self, now_ns: i64, reply: &str, g: &PullGroup) -> bool {
        let policy = self.cfg.priority_policy;
        if let Err(e) = g.check(policy, &self.cfg.priority_groups) {
            self.status(reply, 400, &format!("Bad Request - {e}"));
            return false;
        }
        if policy != PriorityPolicy::None && self.pin.is_set() {
            if g.id == self.pin.id {
                self.pin.refresh(now_ns, self.cfg.priority_timeout);
            } else if !g.id.is_empty() {
                self.status(reply, 423, "Nats-Pin-Id mismatch");
                return false;
            }
        }
        true
    }

    /// Queue a new request: at the back, or for `prioritized` behind every request of the
    /// same or a more urgent priority (nats-server's `addPrioritized`).
    pub(super) fn enqueue(&mut self, w: Waiting) {
        self.requeue(w);
    }

    /// Put a request that still wants messages back in the queue (round robin; for
    /// `prioritized` at the end of its priority, nats-server's `popAndRequeue`).
    pub(super) fn requeue(&mut self, w: Waiting) {
        if self.cfg.priority_policy != PriorityPolicy::Prioritized {
            self.waiting.push_back(w);
            return;
        }
        let p = priority_of(&w);
        let at = self.waiting.iter().position(|o| priority_of(o) > p).unwrap_or(self.waiting.len());
        self.waiting.insert(at, w);
    }

    /// Bring the request that gets the next message (of `size` bytes) to the front of the
    /// queue, as nats-server's `nextWaiting`: requests are passed over (moved to the back)
    /// while they may not be served (no pin under a held pin, overflow marks not reached),
    /// ended with `423 Nats-Wrong-Pin-Id` when they carry a stale pin, or with `409 Message
    /// Size Exceeds MaxBytes` when the message does not fit their budget. The first request
    /// without an id to be served while no pin is held is handed a new pin. Returns false
    /// when no request may take the message.
    pub(super) fn select_waiting(&mut self, now_ns: i64, size: u64) -> bool {
        let policy = self.cfg.priority_policy;
        let mut passed = 0;
        while let Some(w) = self.waiting.front() {
            let id = w.group.as_ref().map_or("", |g| g.id.as_str());
            let (no_id, holds_pin) = (id.is_empty(), id == self.pin.id);
            let mut assigned = false;
            if policy == PriorityPolicy::PinnedClient {
                if !self.pin.is_set() && no_id {
                    self.assign_pin(now_ns);
                    assigned = true;
                } else if self.pin.is_set() && no_id {
                    passed += 1;
                    if passed >= self.waiting.len() {
                        return false;
                    }
                    self.waiting.rotate_left(1);
                    continue;
                } else if !holds_pin {
                    let w = self.waiting.pop_front().expect("front exists");
                    let headers = pull::status_pending(423, "Nats-Wrong-Pin-Id", w.n, w.b);
                    self.out.push(Effect::Status { to: w.reply, reply: None, headers });
                    continue;
                }
            }
            if policy == PriorityPolicy::Overflow
                && let Some(g) = &self.waiting[0].group
                && !g.overflow_allows(self.num_pending, self.pending.len() as u64)
            {
                passed += 1;
                if passed >= self.waiting.len() {
                    return false;
                }
                self.waiting.rotate_left(1);
                continue;
            }
            let w = &self.waiting[0];
            if w.max_bytes && size > w.b {
                let w = self.waiting.pop_front().expect("front exists");
                let headers = pull::status_pending(409, "Message Size Exceeds MaxBytes", w.n, w.b);
                self.out.push(Effect::Status { to: w.reply, reply: None, headers });
                if assigned {
                    self.pin.clear();
                }
                continue;
            }
            return true;
        }
        false
    }

    /// Hand the request at the front of the queue a new pin.
    fn assign_pin(&mut self, now_ns: i64) {
        let id = self.pin.assign(&self.stream, &self.name, now_ns, self.cfg.priority_timeout);
        let group = self.cfg.priority_groups.first().cloned().unwrap_or_default();
        if let Some(g) = self.waiting.front_mut().and_then(|w| w.group.as_mut()) {
            g.id = id.clone();
        }
        self.out.push(Effect::Advisory(Advisory::Pinned { group, pinned_id: id }));
    }

    /// Drop the pin (with an `UNPINNED` advisory giving `reason`).
    pub(super) fn unpin_with(&mut self, reason: &str) {
        if !self.pin.is_set() {
            return;
        }
        self.pin.clear();
        let group = self.cfg.priority_groups.first().cloned().unwrap_or_default();
        self.out.push(Effect::Advisory(Advisory::Unpinned { group, reason: reason.to_string() }));
    }

    /// The UNPIN API for `group` (nats-server's `jsConsumerUnpinRequest`): drops the pin so
    /// that the next request without an id is pinned; `false` if the consumer has no such
    /// group (error 10160). Delivery resumes at once.
    pub fn unpin<R: super::StreamReader + ?Sized>(&mut self, now_ns: i64, group: &str, reader: &mut R) -> bool {
        if !self.cfg.priority_groups.iter().any(|g| g == group) {
            return false;
        }
        self.unpin_with("admin");
        self.check();
        self.poll(now_ns, reader);
        true
    }

    /// The current pin id (empty when none).
    pub fn pin_id(&self) -> &str {
        &self.pin.id
    }

    pub(super) fn priority_invariants(&self) {
        if self.cfg.priority_policy != PriorityPolicy::PinnedClient {
            assert!(!self.pin.is_set(), "a pin on a consumer that is not pinned_client");
        }
        assert_eq!(self.pin.is_set(), self.pin.expires_ns.is_some(), "a pin without its lapse time or the reverse");
        if self.cfg.priority_policy == PriorityPolicy::Prioritized {
            let ps: Vec<i64> = self.waiting.iter().map(priority_of).collect();
            assert!(ps.is_sorted(), "prioritized requests out of order: {ps:?}");
        }
    }
}

/// A request's priority (a request without group fields comes last, as nats-server).
fn priority_of(w: &Waiting) -> i64 {
    w.group.as_ref().map_or(i64::MAX, |g| g.priority)
}
