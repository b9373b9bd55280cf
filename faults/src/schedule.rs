//! Fault schedules: a timed list of faults drawn from a seed and a [`FaultMix`].
//!
//! Every fault that breaks something is paired with the event that heals it, so the
//! harness's liveness phase starts from a schedule whose faults have all ended.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A cluster node number as used by schedules (1-based).
pub type Node = u16;

/// One kind of fault (or its healing).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FaultKind {
    /// Cut the network between `side` and the other nodes, both directions.
    Partition {
        /// One side of the cut; everything else is the other side.
        side: Vec<Node>,
    },
    /// Drop traffic from `from` to `to` only.
    PartitionOneWay {
        /// Sender whose frames are dropped.
        from: Node,
        /// Receiver.
        to: Node,
    },
    /// Remove every partition.
    Heal,
    /// Kill a node; it loses unsynced writes.
    Crash {
        /// Node to kill.
        node: Node,
    },
    /// Restart a killed node.
    Restart {
        /// Node to restart.
        node: Node,
    },
    /// Freeze a node (its tasks stop running; its memory and disk stay).
    Pause {
        /// Node to freeze.
        node: Node,
    },
    /// Unfreeze a node.
    Resume {
        /// Node to unfreeze.
        node: Node,
    },
    /// Make every disk operation on `node` take `latency_ms` longer (0 restores).
    SlowDisk {
        /// Node whose disk slows down.
        node: Node,
        /// Extra latency per operation.
        latency_ms: u64,
    },
    /// Shape every link into and out of `node` (0/0 restores).
    SlowLink {
        /// Node whose links slow down.
        node: Node,
        /// Extra one-way latency.
        latency_ms: u64,
        /// Bandwidth cap in bytes per second (0 = unlimited).
        bytes_per_sec: u64,
    },
    /// Damage durable data on `node`'s disk (applied while it is down, between a crash
    /// and its restart): flip a bit, or cut a file, at a point drawn by the harness.
    Corrupt {
        /// Node whose disk is damaged.
        node: Node,
    },
    /// Fill `node`'s disk so that writes fail with ENOSPC (`full: false` frees it).
    DiskFull {
        /// Node whose disk fills.
        node: Node,
        /// Whether the disk is now full.
        full: bool,
    },
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FaultKind::Partition { side } => write!(f, "partition {side:?} | rest"),
            FaultKind::PartitionOneWay { from, to } => write!(f, "partition one-way n{from} -> n{to}"),
            FaultKind::Heal => write!(f, "heal partitions"),
            FaultKind::Crash { node } => write!(f, "crash n{node}"),
            FaultKind::Restart { node } => write!(f, "restart n{node}"),
            FaultKind::Pause { node } => write!(f, "pause n{node}"),
            FaultKind::Resume { node } => write!(f, "resume n{node}"),
            FaultKind::SlowDisk { node, latency_ms } => write!(f, "slow disk n{node} +{latency_ms}ms"),
            FaultKind::SlowLink { node, latency_ms, bytes_per_sec } => {
                write!(f, "slow link n{node} +{latency_ms}ms cap {bytes_per_sec} B/s")
            }
            FaultKind::Corrupt { node } => write!(f, "corrupt disk n{node}"),
            FaultKind::DiskFull { node, full: true } => write!(f, "disk full n{node}"),
            FaultKind::DiskFull { node, full: false } => write!(f, "disk freed n{node}"),
        }
    }
}

impl FaultKind {
    /// The class this fault (or its healing) belongs to.
    pub fn class(&self) -> FaultClass {
        match self {
            FaultKind::Partition { .. } | FaultKind::PartitionOneWay { .. } | FaultKind::Heal => FaultClass::Partition,
            FaultKind::Crash { .. } | FaultKind::Restart { .. } => FaultClass::Crash,
            FaultKind::Pause { .. } | FaultKind::Resume { .. } => FaultClass::Pause,
            FaultKind::SlowDisk { .. } => FaultClass::SlowDisk,
            FaultKind::SlowLink { .. } => FaultClass::SlowLink,
            FaultKind::Corrupt { .. } => FaultClass::Corrupt,
            FaultKind::DiskFull { .. } => FaultClass::DiskFull,
        }
    }
}

/// A class of faults: what a world declares it can apply, and what the weights of a
/// [`FaultMix`] choose between.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultClass {
    /// Network cuts: symmetric, one-way and flapping partitions, and their healing.
    Partition,
    /// Kill a node (losing unsynced writes) and restart it.
    Crash,
    /// Freeze a node and unfreeze it.
    Pause,
    /// Extra latency on a node's disk.
    SlowDisk,
    /// Extra latency and a bandwidth cap on a node's links.
    SlowLink,
    /// Crash a node, damage its durable data while it is down, restart it.
    Corrupt,
    /// A node's disk refuses writes (ENOSPC), then frees up.
    DiskFull,
}

impl FaultClass {
    /// Every class, in a stable order.
    pub const ALL: [FaultClass; 7] = [
        FaultClass::Partition,
        FaultClass::Crash,
        FaultClass::Pause,
        FaultClass::SlowDisk,
        FaultClass::SlowLink,
        FaultClass::Corrupt,
        FaultClass::DiskFull,
    ];

    /// A short name for messages and listings.
    pub fn name(self) -> &'static str {
        match self {
            FaultClass::Partition => "partition",
            FaultClass::Crash => "crash",
            FaultClass::Pause => "pause",
            FaultClass::SlowDisk => "slow-disk",
            FaultClass::SlowLink => "slow-link",
            FaultClass::Corrupt => "corrupt",
            FaultClass::DiskFull => "disk-full",
        }
    }
}

impl fmt::Display for FaultClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A fault at a point in virtual time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultEvent {
    /// Milliseconds after the run starts.
    pub at_ms: u64,
    /// The fault.
    pub kind: FaultKind,
}

/// Relative weights and intensities of fault kinds for one run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FaultMix {
    /// Mean milliseconds between the starts of faults (0 disables faults).
    pub mean_interval_ms: u64,
    /// Mean fault duration in milliseconds.
    pub mean_duration_ms: u64,
    /// Weight of symmetric partitions (random minority or majority side).
    pub partition: u32,
    /// Weight of one-way partitions.
    pub partition_one_way: u32,
    /// Weight of flapping partitions (several short cut/heal cycles).
    pub partition_flap: u32,
    /// Weight of crash + restart.
    pub crash: u32,
    /// Weight of pause + resume.
    pub pause: u32,
    /// Weight of slow disk episodes.
    pub slow_disk: u32,
    /// Weight of slow link episodes.
    pub slow_link: u32,
    /// Extra disk latency during a slow-disk episode.
    pub slow_disk_ms: u64,
    /// Extra link latency during a slow-link episode.
    pub slow_link_ms: u64,
    /// Bandwidth cap during a slow-link episode (bytes per second, 0 = none).
    pub slow_link_bytes_per_sec: u64,
    /// Most nodes that may be down (crashed or paused) at once.
    pub max_down: u16,
    /// Weight of crash + disk corruption while down + restart.
    #[serde(default)]
    pub corrupt: u32,
    /// Weight of disk-full episodes.
    #[serde(default)]
    pub disk_full: u32,
}

impl FaultMix {
    /// A swarm-sampled mix: each weight and intensity drawn from the seed's RNG.
    pub fn swarm(rng: &mut ChaCha8Rng, nodes: u16) -> FaultMix {
        let w = |rng: &mut ChaCha8Rng| if rng.gen_bool(0.6) { rng.gen_range(1..=10) } else { 0 };
        let mut mix = FaultMix {
            mean_interval_ms: rng.gen_range(300..3000),
            mean_duration_ms: rng.gen_range(200..4000),
            partition: w(rng),
            partition_one_way: w(rng),
            partition_flap: w(rng),
            crash: w(rng),
            pause: w(rng),
            slow_disk: w(rng),
            slow_link: w(rng),
            slow_disk_ms: rng.gen_range(1..200),
            slow_link_ms: rng.gen_range(1..200),
            slow_link_bytes_per_sec: if rng.gen_bool(0.5) { rng.gen_range(20_000..2_000_000) } else { 0 },
            max_down: rng.gen_range(1..=nodes.max(1)),
            // Corruption and full disks need a world that can tell damage from loss.
            corrupt: 0,
            disk_full: 0,
        };
        if mix.total_weight() == 0 {
            mix.crash = 1;
        }
        mix
    }

    /// The fault classes this mix can draw, each with the weight field that enables
    /// it (`(class, field)`, a class once per non-zero field); empty when faults are off.
    pub fn drawable(&self) -> Vec<(FaultClass, &'static str)> {
        if self.mean_interval_ms == 0 {
            return Vec::new();
        }
        let weights = [
            (FaultClass::Partition, "partition", self.partition),
            (FaultClass::Partition, "partition_one_way", self.partition_one_way),
            (FaultClass::Partition, "partition_flap", self.partition_flap),
            (FaultClass::Crash, "crash", self.crash),
            (FaultClass::Pause, "pause", self.pause),
            (FaultClass::SlowDisk, "slow_disk", self.slow_disk),
            (FaultClass::SlowLink, "slow_link", self.slow_link),
            (FaultClass::Corrupt, "corrupt", self.corrupt),
            (FaultClass::DiskFull, "disk_full", self.disk_full),
        ];
        weights.into_iter().filter(|w| w.2 > 0).map(|(c, f, _)| (c, f)).collect()
    }

    fn total_weight(&self) -> u32 {
        self.partition
            + self.partition_one_way
            + self.partition_flap
            + self.crash
            + self.pause
            + self.slow_disk
            + self.slow_link
            + self.corrupt
            + self.disk_full
    }
}

/// A time-ordered list of faults.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultSchedule {
    /// Events sorted by `at_ms` (stable for equal times).
    pub events: Vec<FaultEvent>,
}

impl FaultSchedule {
    /// Draw a schedule for `nodes` nodes over `[0, until_ms)` from `mix`.
    /// Every fault ends (healed, restarted, resumed, restored) before `until_ms`.
    pub fn generate(rng: &mut ChaCha8Rng, nodes: u16, until_ms: u64, mix: &FaultMix) -> FaultSchedule {
        let mut events = Vec::new();
        let total = mix.total_weight();
        if mix.mean_interval_ms == 0 || total == 0 || nodes == 0 {
            return FaultSchedule { events };
        }
        // Per-node time until which it is busy with a crash/pause, and the same for
        // the network; faults of one kind never overlap on the same target.
        let mut node_busy_until = vec![0u64; nodes as usize + 1];
        let mut net_busy_until = 0u64;
        let mut t = 0u64;
        loop {
            t += rng.gen_range(mix.mean_interval_ms / 2..=mix.mean_interval_ms * 3 / 2 + 1);
            let dur = rng.gen_range(mix.mean_duration_ms / 2..=mix.mean_duration_ms * 3 / 2 + 1).max(1);
            if t + dur >= until_ms {
                break;
            }
            let end = t + dur;
            let mut pick = rng.gen_range(0..total);
            let mut choose = |w: u32| {
                if pick < w {
                    true
                } else {
                    pick -= w;
                    false
                }
            };
            let node = rng.gen_range(1..=nodes);
            if choose(mix.partition) {
                if net_busy_until > t || nodes < 2 {
                    continue;
                }
                let side_len = rng.gen_range(1..nodes);
                let mut all: Vec<Node> = (1..=nodes).collect();
                let mut side = Vec::new();
                for _ in 0..side_len {
                    side.push(all.remove(rng.gen_range(0..all.len())));
                }
                side.sort_unstable();
                events.push(FaultEvent { at_ms: t, kind: FaultKind::Partition { side } });
                events.push(FaultEvent { at_ms: end, kind: FaultKind::Heal });
                net_busy_until = end;
            } else if choose(mix.partition_one_way) {
                if net_busy_until > t || nodes < 2 {
                    continue;
                }
                let mut to = rng.gen_range(1..=nodes);
                if to == node {
                    to = to % nodes + 1;
                }
                events.push(FaultEvent { at_ms: t, kind: FaultKind::PartitionOneWay { from: node, to } });
                events.push(FaultEvent { at_ms: end, kind: FaultKind::Heal });
                net_busy_until = end;
            } else if choose(mix.partition_flap) {
                if net_busy_until > t || nodes < 2 {
                    continue;
                }
                let flaps = rng.gen_range(2..6u64);
                let step = (dur / (flaps * 2)).max(1);
                for i in 0..flaps {
                    let at = t + i * 2 * step;
                    events.push(FaultEvent { at_ms: at, kind: FaultKind::Partition { side: vec![node] } });
                    events.push(FaultEvent { at_ms: at + step, kind: FaultKind::Heal });
                }
                net_busy_until = end;
            } else if choose(mix.corrupt) {
                let down_now = node_busy_until.iter().filter(|&&b| b > t).count() as u16;
                if node_busy_until[node as usize] > t || down_now >= mix.max_down {
                    continue;
                }
                // Damage at rest: crash, corrupt the durable image, restart.
                events.push(FaultEvent { at_ms: t, kind: FaultKind::Crash { node } });
                events.push(FaultEvent { at_ms: t, kind: FaultKind::Corrupt { node } });
                events.push(FaultEvent { at_ms: end, kind: FaultKind::Restart { node } });
                node_busy_until[node as usize] = end;
            } else if choose(mix.disk_full) {
                events.push(FaultEvent { at_ms: t, kind: FaultKind::DiskFull { node, full: true } });
                events.push(FaultEvent { at_ms: end, kind: FaultKind::DiskFull { node, full: false } });
            } else if choose(mix.crash) || choose(mix.pause) {
                let down_now = node_busy_until.iter().filter(|&&b| b > t).count() as u16;
                if node_busy_until[node as usize] > t || down_now >= mix.max_down {
                    continue;
                }
                // `choose` consumed the weights in order: crash first, then pause.
                let is_crash = pick_was_crash(mix, &mut *rng);
                let (a, b) = if is_crash {
                    (FaultKind::Crash { node }, FaultKind::Restart { node })
                } else {
                    (FaultKind::Pause { node }, FaultKind::Resume { node })
                };
                events.push(FaultEvent { at_ms: t, kind: a });
                events.push(FaultEvent { at_ms: end, kind: b });
                node_busy_until[node as usize] = end;
            } else if choose(mix.slow_disk) {
                events.push(FaultEvent { at_ms: t, kind: FaultKind::SlowDisk { node, latency_ms: mix.slow_disk_ms } });
                events.push(FaultEvent { at_ms: end, kind: FaultKind::SlowDisk { node, latency_ms: 0 } });
            } else {
                let kind = FaultKind::SlowLink {
                    node,
                    latency_ms: mix.slow_link_ms,
                    bytes_per_sec: mix.slow_link_bytes_per_sec,
                };
                events.push(FaultEvent { at_ms: t, kind });
                events.push(FaultEvent {
                    at_ms: end,
                    kind: FaultKind::SlowLink { node, latency_ms: 0, bytes_per_sec: 0 },
                });
            }
        }
        events.sort_by_key(|e| e.at_ms);
        FaultSchedule { events }
    }
}

/// Crash and pause share one branch; split it by their relative weights.
fn pick_was_crash(mix: &FaultMix, rng: &mut ChaCha8Rng) -> bool {
    let both = mix.crash + mix.pause;
    both > 0 && rng.gen_range(0..both) < mix.crash
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn mix() -> FaultMix {
        FaultMix {
            mean_interval_ms: 500,
            mean_duration_ms: 800,
            partition: 1,
            partition_one_way: 1,
            partition_flap: 1,
            crash: 1,
            pause: 1,
            slow_disk: 1,
            slow_link: 1,
            slow_disk_ms: 10,
            slow_link_ms: 10,
            slow_link_bytes_per_sec: 0,
            max_down: 1,
            corrupt: 1,
            disk_full: 1,
        }
    }

    #[test]
    fn schedules_are_deterministic_sorted_and_healed() {
        for seed in 0..200u64 {
            let a = FaultSchedule::generate(&mut ChaCha8Rng::seed_from_u64(seed), 5, 20_000, &mix());
            let b = FaultSchedule::generate(&mut ChaCha8Rng::seed_from_u64(seed), 5, 20_000, &mix());
            assert_eq!(a, b, "seed {seed}");
            assert!(a.events.windows(2).all(|w| w[0].at_ms <= w[1].at_ms), "seed {seed}");
            assert!(a.events.iter().all(|e| e.at_ms < 20_000), "seed {seed}");
            let crashes = a.events.iter().filter(|e| matches!(e.kind, FaultKind::Crash { .. })).count();
            let restarts = a.events.iter().filter(|e| matches!(e.kind, FaultKind::Restart { .. })).count();
            assert_eq!(crashes, restarts, "seed {seed}");
            // With max_down = 1, never two nodes down at once.
            let mut down = 0i32;
            for e in &a.events {
                match e.kind {
                    FaultKind::Crash { .. } | FaultKind::Pause { .. } => down += 1,
                    FaultKind::Restart { .. } | FaultKind::Resume { .. } => down -= 1,
                    _ => {}
                }
                assert!(down <= 1, "seed {seed}: {down} down");
            }
        }
    }

    #[test]
    fn schedules_draw_only_classes_the_mix_enables() {
        for seed in 0..100u64 {
            let mut m = mix();
            m.pause = 0;
            m.corrupt = 0;
            let classes: Vec<FaultClass> = m.drawable().iter().map(|d| d.0).collect();
            assert!(!classes.contains(&FaultClass::Pause) && !classes.contains(&FaultClass::Corrupt));
            let s = FaultSchedule::generate(&mut ChaCha8Rng::seed_from_u64(seed), 5, 20_000, &m);
            assert!(s.events.iter().all(|e| classes.contains(&e.kind.class())), "seed {seed}");
        }
        assert!(FaultMix::default().drawable().is_empty());
    }

    #[test]
    fn zero_interval_means_no_faults() {
        let m = FaultMix::default();
        assert!(FaultSchedule::generate(&mut ChaCha8Rng::seed_from_u64(1), 3, 10_000, &m).events.is_empty());
    }
}
