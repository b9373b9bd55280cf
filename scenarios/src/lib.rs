//! weir-scenarios: named scenarios (topology + configuration + workload + faults),
//! each drawing its run configuration from the seed, in a registry the `weir-sim`
//! CLI lists and sweeps and the bug tests read.
//!
//! To add a scenario, add one [`Scenario`] entry to [`SCENARIOS`] (and its draw
//! function next to it): its world, and the known bugs a sweep of it must catch.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use weir_faults::FaultMix;
use weir_sim::SimConfig;
use weir_sim::bugs::Bug;

/// A named scenario.
#[derive(Clone, Copy, Debug)]
pub struct Scenario {
    /// CLI name.
    pub name: &'static str,
    /// One-line description.
    pub description: &'static str,
    /// The world it runs (`run.world`; see `weir_sim::worlds`).
    pub world: &'static str,
    /// Known bugs that a sweep of seeds `0..200` of this scenario must catch (the
    /// `bug_*` simulation tests and `weir-sim bugs` read this).
    pub catches: &'static [Bug],
    /// Draws the configuration from the scenario's RNG stream (`run.world` is set
    /// from `world` afterwards).
    pub draw: fn(&mut ChaCha8Rng) -> SimConfig,
}

impl Scenario {
    /// The configuration this scenario uses for `seed` (before CLI overrides).
    pub fn config(&self, seed: u64) -> SimConfig {
        // A stream of its own, so config draws never shift the run's other randomness.
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xC0F1_6000);
        let mut cfg = (self.draw)(&mut rng);
        cfg.run.world = self.world.to_string();
        cfg
    }
}

/// Every scenario, in listing order.
pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "raft-basic",
        description: "3 nodes, ~1,000 proposals/s, no faults: everything acknowledged is everywhere",
        world: "raft",
        catches: &[],
        draw: raft_basic,
    },
    Scenario {
        name: "raft-partitions",
        description: "symmetric, one-way and flapping partitions (minority and majority sides)",
        world: "raft",
        catches: &[Bug::CommitBeforeQuorum],
        draw: raft_partitions,
    },
    Scenario {
        name: "raft-crashes",
        description: "crash/restart with loss of unsynced writes and torn tails, plus pauses",
        world: "raft",
        catches: &[Bug::VotesNotPersisted],
        draw: raft_crashes,
    },
    Scenario {
        name: "raft-slow-follower",
        description: "one follower with a slow disk and link that also crashes and must catch up",
        world: "raft",
        catches: &[Bug::UnboundedCatchup],
        draw: raft_slow_follower,
    },
    Scenario {
        name: "raft-swarm",
        description: "swarm testing: every seed draws its own fault mix and intensities",
        world: "raft",
        catches: &[],
        draw: raft_swarm,
    },
    Scenario {
        name: "pubsub-partitions",
        description: "3 clustered NATS servers, pub/sub + queue groups across routes under partitions, crashes, slow links",
        world: "pubsub",
        catches: &[Bug::RouteDropsInterest, Bug::QueueDoubleDelivery, Bug::UnchargedBuffer],
        draw: pubsub_partitions,
    },
    Scenario {
        name: "store-crashes",
        description: "one node's file store under power cuts, torn writes, corruption at rest and full disks",
        world: "store",
        catches: &[Bug::LazyFsync, Bug::UnboundedBufferPool, Bug::BufferLeak],
        draw: store_crashes,
    },
    Scenario {
        name: "js-single",
        description: "one JetStream server: streams of each retention, PubAck publishers with Msg-Id retries, pull and push consumers acking out of order; pauses, slow disk, client disconnects",
        world: "js",
        catches: &[Bug::AckFloorSkips, Bug::EvictBeforeDurable],
        draw: js_single,
    },
    Scenario {
        name: "js-single-crashes",
        description: "js-single under power cuts (restart over the same disk), torn writes, corruption at rest, full disks, slow disks and pauses",
        world: "js",
        catches: &[Bug::AckBeforeStore, Bug::AckFloorSkips, Bug::DedupForgets],
        draw: js_single_crashes,
    },
];

/// Look a scenario up by name.
pub fn find(name: &str) -> Result<&'static Scenario, String> {
    SCENARIOS.iter().find(|s| s.name == name).ok_or_else(|| {
        let names: Vec<&str> = SCENARIOS.iter().map(|s| s.name).collect();
        format!("unknown scenario '{name}' (known: {})", names.join(", "))
    })
}

/// The scenarios expected to catch `bug`.
pub fn catching(bug: Bug) -> impl Iterator<Item = &'static Scenario> {
    SCENARIOS.iter().filter(move |s| s.catches.contains(&bug))
}

// Draw functions. The order of draws is part of each scenario's definition: changing
// it changes every seed's configuration.

fn base(rng: &mut ChaCha8Rng) -> SimConfig {
    let mut c = SimConfig::default();
    c.net.latency_us_max = rng.gen_range(500..3_000);
    c.disk.sync_us = rng.gen_range(100..2_000);
    c
}

fn raft_basic(rng: &mut ChaCha8Rng) -> SimConfig {
    let mut c = base(rng);
    c.run.duration_ms = 10_000;
    c
}

fn raft_partitions(rng: &mut ChaCha8Rng) -> SimConfig {
    let nodes = if rng.gen_bool(0.5) { 3 } else { 5 };
    let faults = FaultMix {
        mean_interval_ms: rng.gen_range(800..2_500),
        mean_duration_ms: rng.gen_range(500..3_000),
        partition: 4,
        partition_one_way: 2,
        partition_flap: 2,
        max_down: 0,
        ..FaultMix::default()
    };
    let mut c = base(rng);
    c.run.nodes = nodes;
    c.run.duration_ms = 15_000;
    c.faults = faults;
    c
}

fn raft_crashes(rng: &mut ChaCha8Rng) -> SimConfig {
    let nodes = if rng.gen_bool(0.5) { 3 } else { 5 };
    let snapshot_every = rng.gen_range(300..3_000);
    let faults = FaultMix {
        mean_interval_ms: rng.gen_range(400..1_500),
        mean_duration_ms: rng.gen_range(300..2_000),
        crash: 6,
        pause: 2,
        max_down: rng.gen_range(1..=nodes),
        ..FaultMix::default()
    };
    let mut c = base(rng);
    c.run.nodes = nodes;
    c.run.duration_ms = 15_000;
    c.raft.snapshot_every = snapshot_every;
    c.faults = faults;
    c
}

fn raft_slow_follower(rng: &mut ChaCha8Rng) -> SimConfig {
    let faults = FaultMix {
        mean_interval_ms: rng.gen_range(1_000..2_500),
        mean_duration_ms: rng.gen_range(1_500..4_000),
        crash: 3,
        slow_disk: 3,
        slow_link: 3,
        slow_disk_ms: rng.gen_range(5..60),
        slow_link_ms: rng.gen_range(5..80),
        slow_link_bytes_per_sec: rng.gen_range(50_000..400_000),
        max_down: 1,
        ..FaultMix::default()
    };
    let mut c = base(rng);
    c.run.duration_ms = 15_000;
    c.workload.payload_bytes = 256;
    c.raft.catchup_window_bytes = 64 * 1024;
    c.raft.catchup_limit = 256 * 1024;
    // Catch-up by entries, not snapshots, so the window is what bounds it.
    c.raft.snapshot_every = 50_000;
    c.faults = faults;
    c
}

fn raft_swarm(rng: &mut ChaCha8Rng) -> SimConfig {
    let nodes = [1u16, 3, 3, 5, 5][rng.gen_range(0..5)];
    let mut faults = FaultMix::swarm(rng, nodes);
    if nodes == 1 {
        faults.partition = 0;
        faults.partition_one_way = 0;
        faults.partition_flap = 0;
    }
    let clients = rng.gen_range(1..12);
    let rate_per_client = rng.gen_range(20..200);
    let payload_bytes = rng.gen_range(8..512);
    let duration_ms = rng.gen_range(5_000..20_000);
    let snapshot_every = rng.gen_range(100..5_000);
    let catchup_window_bytes = rng.gen_range(16..512) * 1024;
    let torn_write_prob = rng.gen_range(0.0..1.0);
    let mut c = base(rng);
    c.run.nodes = nodes;
    c.run.clients = clients;
    c.run.duration_ms = duration_ms;
    c.workload.rate_per_client = rate_per_client;
    c.workload.payload_bytes = payload_bytes;
    c.raft.snapshot_every = snapshot_every;
    c.raft.catchup_window_bytes = catchup_window_bytes;
    c.disk.torn_write_prob = torn_write_prob;
    c.faults = faults;
    c
}

fn store_crashes(rng: &mut ChaCha8Rng) -> SimConfig {
    let mut c = SimConfig::default();
    c.store.block_size = [4u64, 16, 64, 256][rng.gen_range(0..4)] * 1024;
    c.run.nodes = 1;
    c.run.clients = rng.gen_range(1..6);
    c.workload.rate_per_client = rng.gen_range(20..200);
    c.workload.payload_bytes = rng.gen_range(8..200);
    c.run.duration_ms = 15_000;
    c.run.liveness_ms = 5_000;
    c.disk.write_us = rng.gen_range(5..100);
    c.disk.sync_us = rng.gen_range(100..3_000);
    c.disk.torn_write_prob = rng.gen_range(0.0..1.0);
    // Below the block size for most draws: recovery must then read blocks in chunks.
    c.store.buffers_limit = rng.gen_range(16..64) * 1024;
    c.store.cache_limit = rng.gen_range(8..256) * 1024;
    c.store.index_limit = rng.gen_range(32..1024) * 1024;
    c.store.max_msgs = if rng.gen_bool(0.4) { rng.gen_range(50..3_000) } else { 0 };
    c.store.delete_pct = if rng.gen_bool(0.5) { rng.gen_range(1..15) } else { 0 };
    c.faults = FaultMix {
        mean_interval_ms: rng.gen_range(400..1_500),
        mean_duration_ms: rng.gen_range(200..1_500),
        crash: 6,
        corrupt: rng.gen_range(0..4),
        disk_full: rng.gen_range(0..3),
        pause: 1,
        slow_disk: 1,
        slow_disk_ms: rng.gen_range(1..50),
        max_down: 1,
        ..FaultMix::default()
    };
    c
}

/// The JetStream world's common draws: streams, limits, client behaviour.
fn js_base(rng: &mut ChaCha8Rng) -> SimConfig {
    let mut c = SimConfig::default();
    c.run.nodes = 1;
    c.run.clients = rng.gen_range(2..5);
    c.run.duration_ms = rng.gen_range(6_000..10_000);
    c.run.liveness_ms = 10_000;
    c.workload.rate_per_client = rng.gen_range(20..60);
    c.workload.payload_bytes = rng.gen_range(16..256);
    c.workload.request_timeout_ms = 500;
    c.disk.write_us = rng.gen_range(5..60);
    c.disk.sync_us = rng.gen_range(100..2_000);
    let all = ["limits", "interest", "workqueue"];
    let n = rng.gen_range(1..=3);
    let streams: Vec<&str> = (0..n).map(|_| all[rng.gen_range(0..3)]).collect();
    c.js.streams = streams.join(",");
    c.js.max_msgs = if rng.gen_bool(0.3) { rng.gen_range(20..300) } else { 0 };
    c.js.max_bytes = if rng.gen_bool(0.2) { rng.gen_range(8..64) * 1024 } else { 0 };
    c.js.max_per_subject = if rng.gen_bool(0.3) { rng.gen_range(5..50) } else { 0 };
    c.js.dedup_window_ms = rng.gen_range(1_000..4_000);
    c.js.ack_wait_ms = rng.gen_range(300..1_500);
    c.js.batch = rng.gen_range(1..16);
    c.js.msg_id_pct = rng.gen_range(20..80);
    c.js.resend_pct = rng.gen_range(5..25);
    c.js.nak_pct = rng.gen_range(0..10);
    c.js.term_pct = rng.gen_range(0..4);
    c.js.skip_pct = rng.gen_range(0..6);
    c.js.disconnect_pct = rng.gen_range(0..3);
    c.js.delete_pct = rng.gen_range(0..10);
    c.store.block_size = [4u64, 16, 64][rng.gen_range(0..3)] * 1024;
    c
}

fn js_single(rng: &mut ChaCha8Rng) -> SimConfig {
    let mut c = js_base(rng);
    c.faults = FaultMix {
        mean_interval_ms: rng.gen_range(1_000..3_000),
        mean_duration_ms: rng.gen_range(200..1_000),
        pause: 1,
        slow_disk: 1,
        slow_disk_ms: rng.gen_range(1..20),
        max_down: 1,
        ..FaultMix::default()
    };
    c
}

fn js_single_crashes(rng: &mut ChaCha8Rng) -> SimConfig {
    let mut c = js_base(rng);
    c.disk.torn_write_prob = rng.gen_range(0.0..1.0);
    c.faults = FaultMix {
        mean_interval_ms: rng.gen_range(600..2_000),
        mean_duration_ms: rng.gen_range(200..1_200),
        crash: 6,
        corrupt: rng.gen_range(0..3),
        disk_full: rng.gen_range(0..3),
        pause: 1,
        slow_disk: 1,
        slow_disk_ms: rng.gen_range(1..20),
        max_down: 1,
        ..FaultMix::default()
    };
    c
}

fn pubsub_partitions(rng: &mut ChaCha8Rng) -> SimConfig {
    let clients = rng.gen_range(2..7);
    let rate_per_client = rng.gen_range(20..120);
    let payload_bytes = rng.gen_range(16..512);
    let duration_ms = rng.gen_range(8_000..15_000);
    let route_max_pending = rng.gen_range(128..2_048) * 1024;
    let faults = FaultMix {
        mean_interval_ms: rng.gen_range(600..2_000),
        mean_duration_ms: rng.gen_range(400..2_500),
        partition: 4,
        partition_one_way: 2,
        partition_flap: 2,
        crash: rng.gen_range(0..3),
        slow_link: rng.gen_range(0..2),
        slow_link_ms: rng.gen_range(1..50),
        slow_link_bytes_per_sec: rng.gen_range(10_000..200_000),
        max_down: 1,
        ..FaultMix::default()
    };
    let mut c = base(rng);
    c.run.nodes = 3;
    c.run.clients = clients;
    c.run.duration_ms = duration_ms;
    c.workload.rate_per_client = rate_per_client;
    c.workload.payload_bytes = payload_bytes;
    c.workload.request_timeout_ms = 1_000;
    c.route.max_pending = route_max_pending;
    c.faults = faults;
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scenario_draws_valid_deterministic_configs() {
        for s in SCENARIOS {
            for seed in 0..100 {
                let c = s.config(seed);
                assert_eq!(c, s.config(seed), "{} seed {seed}", s.name);
                c.validate().unwrap_or_else(|e| panic!("{} seed {seed}: {e}", s.name));
            }
        }
        assert!(find("nope").unwrap_err().contains("raft-basic"));
    }

    #[test]
    fn every_known_bug_has_a_catching_scenario() {
        for b in Bug::ALL {
            assert!(catching(b).next().is_some(), "no scenario is expected to catch {b}");
        }
    }

    /// The world's own rules and fault support are checked only where worlds exist.
    #[cfg(madsim)]
    #[test]
    fn every_scenario_draws_configs_its_world_accepts() {
        for s in SCENARIOS {
            for seed in 0..100 {
                weir_sim::harness::check_config(&s.config(seed))
                    .unwrap_or_else(|e| panic!("{} seed {seed}: {e}", s.name));
            }
        }
    }
}
