//! weir-scenarios: named scenarios (topology + configuration + workload + faults),
//! each drawing its run configuration from the seed, in a registry the `weir-sim`
//! CLI lists and sweeps.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use weir_faults::FaultMix;
use weir_sim::{SimConfig, World};

/// A named scenario.
#[derive(Clone, Copy, Debug)]
pub struct Scenario {
    /// CLI name.
    pub name: &'static str,
    /// One-line description.
    pub description: &'static str,
    draw: fn(&mut ChaCha8Rng) -> SimConfig,
}

impl Scenario {
    /// The configuration this scenario uses for `seed` (before CLI overrides).
    pub fn config(&self, seed: u64) -> SimConfig {
        // A stream of its own, so config draws never shift the run's other randomness.
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xC0F1_6000);
        (self.draw)(&mut rng)
    }
}

/// Every scenario, in listing order.
pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "raft-basic",
        description: "3 nodes, ~1,000 proposals/s, no faults: everything acknowledged is everywhere",
        draw: raft_basic,
    },
    Scenario {
        name: "raft-partitions",
        description: "symmetric, one-way and flapping partitions (minority and majority sides)",
        draw: raft_partitions,
    },
    Scenario {
        name: "raft-crashes",
        description: "crash/restart with loss of unsynced writes and torn tails, plus pauses",
        draw: raft_crashes,
    },
    Scenario {
        name: "raft-slow-follower",
        description: "one follower with a slow disk and link that also crashes and must catch up",
        draw: raft_slow_follower,
    },
    Scenario {
        name: "raft-swarm",
        description: "swarm testing: every seed draws its own fault mix and intensities",
        draw: raft_swarm,
    },
    Scenario {
        name: "pubsub-partitions",
        description: "3 clustered NATS servers, pub/sub + queue groups across routes under partitions, crashes, slow links",
        draw: pubsub_partitions,
    },
    Scenario {
        name: "store-crashes",
        description: "one node's file store under power cuts, torn writes, corruption at rest and full disks",
        draw: store_crashes,
    },
];

/// Look a scenario up by name.
pub fn find(name: &str) -> Result<&'static Scenario, String> {
    SCENARIOS.iter().find(|s| s.name == name).ok_or_else(|| {
        let names: Vec<&str> = SCENARIOS.iter().map(|s| s.name).collect();
        format!("unknown scenario '{name}' (known: {})", names.join(", "))
    })
}

fn base(rng: &mut ChaCha8Rng) -> SimConfig {
    SimConfig {
        link_latency_us_max: rng.gen_range(500..3_000),
        disk_sync_us: rng.gen_range(100..2_000),
        ..SimConfig::default()
    }
}

fn raft_basic(rng: &mut ChaCha8Rng) -> SimConfig {
    SimConfig { duration_ms: 10_000, ..base(rng) }
}

fn raft_partitions(rng: &mut ChaCha8Rng) -> SimConfig {
    let nodes = if rng.gen_bool(0.5) { 3 } else { 5 };
    SimConfig {
        nodes,
        duration_ms: 15_000,
        faults: FaultMix {
            mean_interval_ms: rng.gen_range(800..2_500),
            mean_duration_ms: rng.gen_range(500..3_000),
            partition: 4,
            partition_one_way: 2,
            partition_flap: 2,
            max_down: 0,
            ..FaultMix::default()
        },
        ..base(rng)
    }
}

fn raft_crashes(rng: &mut ChaCha8Rng) -> SimConfig {
    let nodes = if rng.gen_bool(0.5) { 3 } else { 5 };
    SimConfig {
        nodes,
        duration_ms: 15_000,
        snapshot_every: rng.gen_range(300..3_000),
        faults: FaultMix {
            mean_interval_ms: rng.gen_range(400..1_500),
            mean_duration_ms: rng.gen_range(300..2_000),
            crash: 6,
            pause: 2,
            max_down: rng.gen_range(1..=nodes),
            ..FaultMix::default()
        },
        ..base(rng)
    }
}

fn raft_slow_follower(rng: &mut ChaCha8Rng) -> SimConfig {
    SimConfig {
        duration_ms: 15_000,
        payload_bytes: 256,
        catchup_window_bytes: 64 * 1024,
        raft_catchup_limit: 256 * 1024,
        // Catch-up by entries, not snapshots, so the window is what bounds it.
        snapshot_every: 50_000,
        faults: FaultMix {
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
        },
        ..base(rng)
    }
}

fn raft_swarm(rng: &mut ChaCha8Rng) -> SimConfig {
    let nodes = [1u16, 3, 3, 5, 5][rng.gen_range(0..5)];
    let mut faults = FaultMix::swarm(rng, nodes);
    if nodes == 1 {
        faults.partition = 0;
        faults.partition_one_way = 0;
        faults.partition_flap = 0;
    }
    SimConfig {
        nodes,
        clients: rng.gen_range(1..12),
        rate_per_client: rng.gen_range(20..200),
        payload_bytes: rng.gen_range(8..512),
        duration_ms: rng.gen_range(5_000..20_000),
        snapshot_every: rng.gen_range(100..5_000),
        catchup_window_bytes: rng.gen_range(16..512) * 1024,
        torn_write_prob: rng.gen_range(0.0..1.0),
        faults,
        ..base(rng)
    }
}

fn store_crashes(rng: &mut ChaCha8Rng) -> SimConfig {
    let block_size = [4u64, 16, 64, 256][rng.gen_range(0..4)] * 1024;
    SimConfig {
        world: World::Store,
        nodes: 1,
        clients: rng.gen_range(1..6),
        rate_per_client: rng.gen_range(20..200),
        payload_bytes: rng.gen_range(8..200),
        duration_ms: 15_000,
        liveness_ms: 5_000,
        disk_write_us: rng.gen_range(5..100),
        disk_sync_us: rng.gen_range(100..3_000),
        torn_write_prob: rng.gen_range(0.0..1.0),
        store_block_size: block_size,
        // Below the block size for most draws: recovery must then read blocks in chunks.
        store_buffers_limit: rng.gen_range(16..64) * 1024,
        store_cache_limit: rng.gen_range(8..256) * 1024,
        store_index_limit: rng.gen_range(32..1024) * 1024,
        store_max_msgs: if rng.gen_bool(0.4) { rng.gen_range(50..3_000) } else { 0 },
        store_delete_pct: if rng.gen_bool(0.5) { rng.gen_range(1..15) } else { 0 },
        faults: FaultMix {
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
        },
        ..SimConfig::default()
    }
}

fn pubsub_partitions(rng: &mut ChaCha8Rng) -> SimConfig {
    SimConfig {
        world: World::Pubsub,
        nodes: 3,
        clients: rng.gen_range(2..7),
        rate_per_client: rng.gen_range(20..120),
        payload_bytes: rng.gen_range(16..512),
        duration_ms: rng.gen_range(8_000..15_000),
        route_max_pending: rng.gen_range(128..2_048) * 1024,
        request_timeout_ms: 1_000,
        faults: FaultMix {
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
        },
        ..base(rng)
    }
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
}
