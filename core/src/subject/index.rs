//! The subscription index: a trie over subject tokens with `*` and `>` children.
//!
//! Each trie node holds the subscriptions whose pattern ends there, split into
//! plain subscriptions and queue subscriptions grouped by queue name. Lookups
//! walk the literal child, the `*` child and the `>` child at every level, so a
//! lookup visits at most the nodes on the paths that can match, independent of
//! the number of subscriptions elsewhere in the trie. Everything is kept in
//! `BTreeMap`s and results come out in subscription order ([`SubId`] order), so
//! the output never depends on hashing or on how the trie happens to be shaped.

use super::{FULL_WILDCARD, PARTIAL_WILDCARD, SubjectError, TOKEN_SEP, is_matchable, validate_pattern, validate_queue};
use rand::Rng;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
#[cfg(not(test))]
use xxhash_rust::xxh3::xxh3_64;

/// Identifies one subscription in a [`SubIndex`]; ids grow in insertion order and are never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SubId(u64);

impl SubId {
    /// The raw id.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for SubId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sub#{}", self.0)
    }
}

/// The subscriptions matching one subject.
///
/// `plain` holds every plain subscriber, each of which gets a copy; `queues` maps
/// each queue group to its members, of which one gets the message (see
/// [`Match::pick_queue_members`]). Both are in subscription (insertion) order,
/// and groups are ordered by name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Match<T> {
    /// Plain subscribers in subscription order.
    pub plain: Vec<T>,
    /// Queue subscribers by queue group name, each group in subscription order.
    pub queues: BTreeMap<Arc<str>, Vec<T>>,
}

impl<T> Default for Match<T> {
    fn default() -> Self {
        Match { plain: Vec::new(), queues: BTreeMap::new() }
    }
}

impl<T> Match<T> {
    /// Whether nothing matched.
    pub fn is_empty(&self) -> bool {
        self.plain.is_empty() && self.queues.is_empty()
    }

    /// The number of matching subscriptions (plain plus every queue member).
    pub fn len(&self) -> usize {
        self.plain.len() + self.queues.values().map(Vec::len).sum::<usize>()
    }

    /// Pick one member per queue group, uniformly at random from `rng`, in group-name order.
    pub fn pick_queue_members(&self, rng: &mut impl Rng) -> Vec<&T> {
        self.queues.values().filter(|m| !m.is_empty()).map(|m| &m[rng.gen_range(0..m.len())]).collect()
    }

    /// Map every subscriber value, keeping the grouping and order.
    pub fn map<U>(self, mut f: impl FnMut(T) -> U) -> Match<U> {
        Match {
            plain: self.plain.into_iter().map(&mut f).collect(),
            queues: self.queues.into_iter().map(|(q, m)| (q, m.into_iter().map(&mut f).collect())).collect(),
        }
    }
}

impl<T: Clone> Match<&T> {
    /// Clone the referenced values.
    pub fn cloned(self) -> Match<T> {
        self.map(Clone::clone)
    }
}

/// Subscriptions by id at one trie node, sized for the common case of one.
///
/// Most nodes hold one subscription (a client's inbox, a per-entity subject), and an
/// empty-or-single `BTreeMap` allocates a whole 11-slot leaf (~190 bytes) for it; this
/// holds one inline, up to [`FEW_MAX`] in an exactly-sized `Vec` (ids only grow, so
/// inserts append), and more in a `BTreeMap`, so that removing one of very many stays
/// logarithmic (issue 9, fault 6).
enum IdMap<T> {
    Empty,
    One(SubId, T),
    Few(Vec<(SubId, T)>),
    Many(BTreeMap<SubId, T>),
}

/// Most subscriptions an [`IdMap`] keeps in a `Vec`.
const FEW_MAX: usize = 16;

impl<T> IdMap<T> {
    fn is_empty(&self) -> bool {
        matches!(self, IdMap::Empty)
    }

    fn len(&self) -> usize {
        match self {
            IdMap::Empty => 0,
            IdMap::One(..) => 1,
            IdMap::Few(v) => v.len(),
            IdMap::Many(m) => m.len(),
        }
    }

    fn insert(&mut self, id: SubId, value: T) {
        match std::mem::replace(self, IdMap::Empty) {
            IdMap::Empty => *self = IdMap::One(id, value),
            IdMap::One(a, va) => {
                let mut v = vec![(a, va), (id, value)];
                v.sort_by_key(|(id, _)| *id);
                *self = IdMap::Few(v);
            }
            IdMap::Few(mut v) if v.len() < FEW_MAX => {
                v.reserve_exact(1);
                let at = v.partition_point(|(k, _)| *k < id);
                v.insert(at, (id, value));
                *self = IdMap::Few(v);
            }
            IdMap::Few(v) => {
                let mut m: BTreeMap<SubId, T> = v.into_iter().collect();
                m.insert(id, value);
                *self = IdMap::Many(m);
            }
            IdMap::Many(mut m) => {
                m.insert(id, value);
                *self = IdMap::Many(m);
            }
        }
    }

    fn remove(&mut self, id: &SubId) -> Option<T> {
        match std::mem::replace(self, IdMap::Empty) {
            IdMap::Empty => None,
            IdMap::One(a, va) if a == *id => Some(va),
            IdMap::One(a, va) => {
                *self = IdMap::One(a, va);
                None
            }
            IdMap::Few(mut v) => {
                let value = match v.binary_search_by_key(id, |(k, _)| *k) {
                    Ok(at) => Some(v.remove(at).1),
                    Err(_) => None,
                };
                *self = match v.len() {
                    0 => IdMap::Empty,
                    1 => {
                        let (a, va) = v.pop().expect("one left");
                        IdMap::One(a, va)
                    }
                    _ => {
                        v.shrink_to_fit();
                        IdMap::Few(v)
                    }
                };
                value
            }
            IdMap::Many(mut m) => {
                let value = m.remove(id);
                *self = if m.is_empty() { IdMap::Empty } else { IdMap::Many(m) };
                value
            }
        }
    }

    fn get(&self, id: &SubId) -> Option<&T> {
        match self {
            IdMap::Empty => None,
            IdMap::One(a, va) => (a == id).then_some(va),
            IdMap::Few(v) => v.binary_search_by_key(id, |(k, _)| *k).ok().map(|at| &v[at].1),
            IdMap::Many(m) => m.get(id),
        }
    }

    /// Append the entries to `out`, in id order (no allocation besides `out`'s: this is
    /// on the publish path).
    fn extend_into<'a>(&'a self, out: &mut Vec<(SubId, &'a T)>) {
        match self {
            IdMap::Empty => {}
            IdMap::One(a, va) => out.push((*a, va)),
            IdMap::Few(v) => out.extend(v.iter().map(|(k, v)| (*k, v))),
            IdMap::Many(m) => out.extend(m.iter().map(|(k, v)| (*k, v))),
        }
    }
}

/// The subscriptions ending at one trie node.
struct Subs<T> {
    plain: IdMap<T>,
    queues: BTreeMap<Arc<str>, IdMap<T>>,
}

impl<T> Subs<T> {
    fn is_empty(&self) -> bool {
        self.plain.is_empty() && self.queues.is_empty()
    }
}

/// Literal children keyed by a fixed-seed hash of the token, so that the search
/// compares inline integers instead of chasing a pointer per string comparison.
/// A child whose hash slot is taken by a different token lives in `collisions`.
/// Iteration order (used only for counting) is deterministic: hash order.
struct Children<T> {
    by_hash: BTreeMap<u64, (Box<str>, Node<T>)>,
    collisions: BTreeMap<Box<str>, Node<T>>,
}

#[cfg(not(test))]
#[inline]
fn token_hash(token: &str) -> u64 {
    xxh3_64(token.as_bytes())
}

/// Unit tests use a deliberately weak hash so that the collision path is exercised.
#[cfg(test)]
fn token_hash(token: &str) -> u64 {
    token.len() as u64 % 3
}

impl<T> Children<T> {
    fn new() -> Self {
        Children { by_hash: BTreeMap::new(), collisions: BTreeMap::new() }
    }

    fn is_empty(&self) -> bool {
        self.by_hash.is_empty() && self.collisions.is_empty()
    }

    #[inline]
    fn get(&self, token: &str) -> Option<&Node<T>> {
        match self.by_hash.get(&token_hash(token)) {
            Some((t, node)) if **t == *token => Some(node),
            _ if self.collisions.is_empty() => None,
            _ => self.collisions.get(token),
        }
    }

    fn get_mut(&mut self, token: &str) -> Option<&mut Node<T>> {
        match self.by_hash.get_mut(&token_hash(token)) {
            Some((t, node)) if **t == *token => Some(node),
            _ => self.collisions.get_mut(token),
        }
    }

    /// The child for `token`, created if missing (`created` is then incremented).
    fn get_or_insert(&mut self, token: &str, created: &mut usize) -> &mut Node<T> {
        let h = token_hash(token);
        let slot_matches = self.by_hash.get(&h).map(|(t, _)| **t == *token);
        match slot_matches {
            Some(true) => &mut self.by_hash.get_mut(&h).expect("slot checked above").1,
            None if !self.collisions.contains_key(token) => {
                *created += 1;
                &mut self.by_hash.entry(h).or_insert_with(|| (token.into(), Node::new())).1
            }
            _ => {
                if !self.collisions.contains_key(token) {
                    *created += 1;
                }
                self.collisions.entry(token.into()).or_insert_with(Node::new)
            }
        }
    }

    fn remove(&mut self, token: &str) {
        let h = token_hash(token);
        if self.by_hash.get(&h).is_some_and(|(t, _)| **t == *token) {
            self.by_hash.remove(&h);
        } else {
            self.collisions.remove(token);
        }
    }

    fn values(&self) -> impl Iterator<Item = &Node<T>> {
        self.by_hash.values().map(|(_, n)| n).chain(self.collisions.values())
    }
}

/// One trie level: the subscriptions whose pattern ends here plus the children.
struct Node<T> {
    literal: Children<T>,
    partial: Option<Box<Node<T>>>,
    full: Option<Box<Node<T>>>,
    subs: Subs<T>,
}

impl<T> Node<T> {
    fn new() -> Self {
        Node {
            literal: Children::new(),
            partial: None,
            full: None,
            subs: Subs { plain: IdMap::Empty, queues: BTreeMap::new() },
        }
    }

    fn is_empty(&self) -> bool {
        self.literal.is_empty() && self.partial.is_none() && self.full.is_none() && self.subs.is_empty()
    }

    fn child(&self, token: &str) -> Option<&Node<T>> {
        match token {
            PARTIAL_WILDCARD => self.partial.as_deref(),
            FULL_WILDCARD => self.full.as_deref(),
            _ => self.literal.get(token),
        }
    }

    fn child_mut(&mut self, token: &str) -> Option<&mut Node<T>> {
        match token {
            PARTIAL_WILDCARD => self.partial.as_deref_mut(),
            FULL_WILDCARD => self.full.as_deref_mut(),
            _ => self.literal.get_mut(token),
        }
    }

    /// The child for `token`, created if missing; `created` counts new nodes.
    fn child_or_insert(&mut self, token: &str, created: &mut usize) -> &mut Node<T> {
        let slot = match token {
            PARTIAL_WILDCARD => &mut self.partial,
            FULL_WILDCARD => &mut self.full,
            _ => return self.literal.get_or_insert(token, created),
        };
        if slot.is_none() {
            *created += 1;
        }
        slot.get_or_insert_with(|| Box::new(Node::new()))
    }

    fn drop_child(&mut self, token: &str) {
        match token {
            PARTIAL_WILDCARD => self.partial = None,
            FULL_WILDCARD => self.full = None,
            _ => self.literal.remove(token),
        }
    }

    /// Subscriptions held at this node and below.
    fn count_subs(&self) -> usize {
        let here = self.subs.plain.len() + self.subs.queues.values().map(IdMap::len).sum::<usize>();
        here + self.literal.values().map(Node::count_subs).sum::<usize>()
            + self.partial.as_ref().map_or(0, |c| c.count_subs())
            + self.full.as_ref().map_or(0, |c| c.count_subs())
    }

    /// Whether any node below this one is empty (holds nothing and leads nowhere).
    fn has_empty_descendant(&self) -> bool {
        let bad = |c: &Node<T>| c.is_empty() || c.has_empty_descendant();
        self.literal.values().any(bad)
            || self.partial.as_deref().is_some_and(bad)
            || self.full.as_deref().is_some_and(bad)
    }

    fn count_nodes(&self) -> usize {
        self.literal.values().map(|c| 1 + c.count_nodes()).sum::<usize>()
            + self.partial.as_ref().map_or(0, |c| 1 + c.count_nodes())
            + self.full.as_ref().map_or(0, |c| 1 + c.count_nodes())
    }
}

/// Bookkeeping for one subscription: where it lives in the trie.
struct Entry {
    pattern: Box<str>,
    queue: Option<Arc<str>>,
}

/// Collects matches during a lookup.
struct Collector<'a, T> {
    plain: Vec<(SubId, &'a T)>,
    plain_sources: usize,
    queues: BTreeMap<&'a Arc<str>, Vec<(SubId, &'a T)>>,
}

impl<'a, T> Collector<'a, T> {
    fn add(&mut self, subs: &'a Subs<T>) {
        if !subs.plain.is_empty() {
            self.plain_sources += 1;
            subs.plain.extend_into(&mut self.plain);
        }
        for (q, members) in &subs.queues {
            members.extend_into(self.queues.entry(q).or_default());
        }
    }
}

/// A subscription index: patterns with optional queue groups mapped to values of type `T`.
///
/// `T` is whatever identifies a subscriber to the caller, for example
/// `(connection id, sid)`. Patterns are validated on insert.
pub struct SubIndex<T> {
    root: Node<T>,
    entries: BTreeMap<SubId, Entry>,
    next_id: u64,
    nodes: usize,
}

impl<T> Default for SubIndex<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> fmt::Debug for SubIndex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubIndex").field("subscriptions", &self.entries.len()).field("nodes", &self.nodes).finish()
    }
}

impl<T> SubIndex<T> {
    /// An empty index.
    pub fn new() -> Self {
        SubIndex { root: Node::new(), entries: BTreeMap::new(), next_id: 0, nodes: 0 }
    }

    /// Add a subscription to `pattern`, in `queue` if given, carrying `value`.
    pub fn insert(&mut self, pattern: &str, queue: Option<&str>, value: T) -> Result<SubId, SubjectError> {
        validate_pattern(pattern)?;
        if let Some(q) = queue {
            validate_queue(q)?;
        }
        let id = SubId(self.next_id);
        self.next_id += 1;
        let mut created = 0;
        let mut node = &mut self.root;
        for token in pattern.split(TOKEN_SEP) {
            node = node.child_or_insert(token, &mut created);
        }
        self.nodes += created;
        let queue = match queue {
            None => {
                node.subs.plain.insert(id, value);
                None
            }
            Some(q) => {
                let key = match node.subs.queues.get_key_value(q) {
                    Some((k, _)) => k.clone(),
                    None => Arc::<str>::from(q),
                };
                node.subs.queues.entry(key.clone()).or_insert(IdMap::Empty).insert(id, value);
                Some(key)
            }
        };
        self.entries.insert(id, Entry { pattern: pattern.into(), queue });
        self.invariants();
        Ok(id)
    }

    /// The id the next successful [`SubIndex::insert`] returns (a failed insert takes none),
    /// so that a caller can store it in the value it inserts.
    pub fn next_id(&self) -> SubId {
        SubId(self.next_id)
    }

    /// Make ids of later inserts greater than `id` (no-op if they already are), so that
    /// several indexes can draw their ids from one sequence and ids stay unique across
    /// them (the broker's per-account indexes key one subscription table).
    pub fn skip_past(&mut self, id: SubId) {
        self.next_id = self.next_id.max(id.0 + 1);
    }

    /// Remove a subscription, returning its value, or `None` if it is not in the index.
    pub fn remove(&mut self, id: SubId) -> Option<T> {
        let entry = self.entries.remove(&id)?;
        let tokens: Vec<&str> = entry.pattern.split(TOKEN_SEP).collect();
        let mut pruned = 0;
        let value = remove_at(&mut self.root, &tokens, id, entry.queue.as_deref(), &mut pruned);
        self.nodes -= pruned;
        debug_assert!(value.is_some(), "index entry without a trie subscription");
        self.invariants();
        value
    }

    /// Assert the index's invariants; a no-op unless debug assertions are on (tests and
    /// the simulation build). Runs after every insert and remove. Always: an index with
    /// no subscriptions has no nodes. For small indexes (and in unit tests), also: the
    /// node counter equals a walk of the trie, the trie holds exactly the directory's
    /// subscriptions, each where its pattern and queue say, and no node besides the root
    /// is empty (removal prunes).
    pub fn invariants(&self) {
        if !cfg!(debug_assertions) {
            return;
        }
        if self.entries.is_empty() {
            assert_eq!(self.nodes, 0, "an empty index has no nodes");
            assert!(self.root.is_empty(), "an empty index has an empty root");
        }
        if !(cfg!(test) || self.entries.len() <= 1024) {
            return;
        }
        assert_eq!(self.root.count_nodes(), self.nodes, "node counter vs trie");
        assert_eq!(self.root.count_subs(), self.entries.len(), "trie subscriptions vs directory");
        assert!(!self.root.has_empty_descendant(), "an empty node was left in the trie");
        for id in self.entries.keys() {
            assert!(self.get(*id).is_some(), "{id} is in the directory but not where its pattern says");
        }
    }

    /// The value of a subscription.
    pub fn get(&self, id: SubId) -> Option<&T> {
        let entry = self.entries.get(&id)?;
        let node = self.node_for(&entry.pattern)?;
        match &entry.queue {
            None => node.subs.plain.get(&id),
            Some(q) => node.subs.queues.get(q)?.get(&id),
        }
    }

    /// The pattern and queue group of a subscription.
    pub fn subscription(&self, id: SubId) -> Option<(&str, Option<&str>)> {
        self.entries.get(&id).map(|e| (&*e.pattern, e.queue.as_deref()))
    }

    /// All subscriptions as `(id, pattern, queue, value)`, in id order.
    pub fn iter(&self) -> impl Iterator<Item = (SubId, &str, Option<&str>, &T)> + '_ {
        self.entries.iter().filter_map(move |(id, e)| Some((*id, &*e.pattern, e.queue.as_deref(), self.get(*id)?)))
    }

    fn node_for(&self, pattern: &str) -> Option<&Node<T>> {
        let mut node = &self.root;
        for token in pattern.split(TOKEN_SEP) {
            node = node.child(token)?;
        }
        Some(node)
    }

    /// The number of subscriptions.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no subscriptions (then the trie has no nodes besides the root).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The number of trie nodes, not counting the root; 0 when the index is empty.
    pub fn node_count(&self) -> usize {
        self.nodes
    }

    /// Recount the trie nodes by walking the trie (for consistency checks; O(nodes)).
    pub fn recount_nodes(&self) -> usize {
        self.root.count_nodes()
    }

    /// Whether any subscription matches `subject` (for route interest).
    pub fn interest(&self, subject: &str) -> bool {
        is_matchable(subject) && has_interest(&self.root, subject)
    }

    /// The subscriptions matching the literal `subject`, by reference.
    ///
    /// A subject that is empty or has an empty token matches nothing. Otherwise
    /// its tokens are compared literally (see [`super::matches`]).
    pub fn matching_refs(&self, subject: &str) -> Match<&T> {
        self.lookup(subject, |v| v)
    }

    /// The subscriptions matching the literal `subject`, with cloned values.
    pub fn matching(&self, subject: &str) -> Match<T>
    where
        T: Clone,
    {
        self.lookup(subject, T::clone)
    }

    fn lookup<'a, U>(&'a self, subject: &str, f: impl Fn(&'a T) -> U) -> Match<U> {
        if !is_matchable(subject) {
            return Match::default();
        }
        let mut acc = Collector { plain: Vec::new(), plain_sources: 0, queues: BTreeMap::new() };
        collect(&self.root, subject, &mut acc);
        if acc.plain_sources > 1 {
            // Stable sort: the input is a few sorted runs, which it merges in near-linear time.
            acc.plain.sort_by_key(|(id, _)| *id);
        }
        let plain = acc.plain.into_iter().map(|(_, v)| f(v)).collect();
        let queues = acc
            .queues
            .into_iter()
            .map(|(q, mut members)| {
                members.sort_by_key(|(id, _)| *id);
                (q.clone(), members.into_iter().map(|(_, v)| f(v)).collect())
            })
            .collect();
        Match { plain, queues }
    }
}

/// Split off the first token of a non-empty remainder.
#[inline]
fn split_token(rest: &str) -> (&str, Option<&str>) {
    match rest.find(TOKEN_SEP) {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    }
}

/// Collect the subscriptions under `node` matching the remaining subject `rest` (non-empty).
fn collect<'a, T>(node: &'a Node<T>, rest: &str, acc: &mut Collector<'a, T>) {
    let (token, next) = split_token(rest);
    if let Some(full) = &node.full {
        acc.add(&full.subs);
    }
    if let Some(partial) = &node.partial {
        step(partial, next, acc);
    }
    if let Some(child) = node.literal.get(token) {
        step(child, next, acc);
    }
}

#[inline]
fn step<'a, T>(node: &'a Node<T>, next: Option<&str>, acc: &mut Collector<'a, T>) {
    match next {
        None => acc.add(&node.subs),
        Some(rest) => collect(node, rest, acc),
    }
}

fn has_interest<T>(node: &Node<T>, rest: &str) -> bool {
    let (token, next) = split_token(rest);
    let step = |child: &Node<T>| match next {
        None => !child.subs.is_empty(),
        Some(rest) => has_interest(child, rest),
    };
    node.full.as_ref().is_some_and(|f| !f.subs.is_empty())
        || node.literal.get(token).is_some_and(step)
        || node.partial.as_deref().is_some_and(step)
}

/// Remove subscription `id` at the end of `tokens` below `node`, pruning emptied nodes.
fn remove_at<T>(node: &mut Node<T>, tokens: &[&str], id: SubId, queue: Option<&str>, pruned: &mut usize) -> Option<T> {
    let Some((token, rest)) = tokens.split_first() else {
        return match queue {
            None => node.subs.plain.remove(&id),
            Some(q) => {
                let members = node.subs.queues.get_mut(q)?;
                let value = members.remove(&id);
                if members.is_empty() {
                    node.subs.queues.remove(q);
                }
                value
            }
        };
    };
    let child = node.child_mut(token)?;
    let value = remove_at(child, rest, id, queue, pruned);
    if child.is_empty() {
        node.drop_child(token);
        *pruned += 1;
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invariants_catch_a_miscounted_trie() {
        let mut idx = SubIndex::new();
        let a = idx.insert("a.b.>", None, 1).unwrap();
        idx.insert("a.*", Some("q"), 2).unwrap();
        idx.remove(a);
        idx.invariants();
        idx.nodes += 1;
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| idx.invariants()));
        assert!(caught.is_err(), "a wrong node counter must fail the invariants");
    }
    use crate::subject::matches;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// With a hash that collides constantly, the index still agrees with a brute-force filter.
    #[test]
    fn colliding_hashes_agree_with_brute_force() {
        let tokens = ["a", "b", "c", "ab", "cd", "abc", "xyz", "*", "q*"];
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut idx = SubIndex::new();
        let mut live: BTreeMap<SubId, String> = BTreeMap::new();
        let random_subject = |rng: &mut ChaCha8Rng, wild: bool| {
            let n = rng.gen_range(1..4);
            let mut t: Vec<&str> =
                (0..n).map(|_| tokens[rng.gen_range(0..tokens.len() - usize::from(!wild))]).collect();
            if wild && rng.gen_bool(0.2) {
                t.push(">");
            }
            t.join(".")
        };
        for step in 0..4000 {
            if rng.gen_bool(0.55) || live.is_empty() {
                let p = random_subject(&mut rng, true);
                let id = idx.insert(&p, None, step).unwrap();
                live.insert(id, p);
            } else {
                let k = rng.gen_range(0..live.len());
                let id = *live.keys().nth(k).unwrap();
                live.remove(&id);
                assert!(idx.remove(id).is_some());
            }
            let s = random_subject(&mut rng, false);
            let got: Vec<SubId> = {
                let m = idx.matching_refs(&s);
                let vals: Vec<i32> = m.plain.into_iter().copied().collect();
                live.keys().copied().filter(|id| vals.contains(idx.get(*id).unwrap())).collect()
            };
            let want: Vec<SubId> = live.iter().filter(|(_, p)| matches(p, &s)).map(|(id, _)| *id).collect();
            assert_eq!(got, want, "subject {s}");
            assert_eq!(idx.node_count(), idx.recount_nodes());
        }
        for id in live.keys() {
            idx.remove(*id);
        }
        assert_eq!(idx.node_count(), 0);
        assert!(idx.root.is_empty());
    }
}
