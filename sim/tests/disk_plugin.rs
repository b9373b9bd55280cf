//! The `SimDisks` madsim plugin (simulation build only): each node gets its own disk,
//! and killing a node crashes its disk.
#![cfg(madsim)]

use madsim::runtime::{Handle, Runtime};
use std::time::Duration;
use weir_core::disk::Disk;
use weir_sim::disk::{SimDiskConfig, SimDisks};

#[test]
fn disk_plugin_kill_crashes_the_node_disk() {
    let rt = Runtime::with_seed_and_config(1, madsim::Config::default());
    rt.add_simulator::<SimDisks>();
    rt.block_on(async {
        let disks = madsim::plugin::simulator::<SimDisks>();
        disks.set_seed(5);
        disks.set_default_config(SimDiskConfig { sync_latency: Duration::from_millis(3), ..SimDiskConfig::instant() });
        let h = Handle::current();
        let n1 = h.create_node().name("n1").build();
        let n2 = h.create_node().name("n2").build();
        for n in [&n1, &n2] {
            n.spawn(async {
                let d = madsim::plugin::simulator::<SimDisks>().disk_for(madsim::plugin::node());
                d.append("f", b"durable").unwrap();
                d.sync("f").unwrap();
                d.sync_dir("").unwrap();
                d.append("f", b"+lost").unwrap();
            })
            .await
            .unwrap();
        }
        let d1 = disks.disk_for(n1.id());
        assert_eq!(d1.latency(weir_core::disk::DiskOp::Sync, 0), Duration::from_millis(3));
        assert_eq!(d1.read("f").unwrap(), b"durable+lost");
        h.kill(n1.id());
        assert_eq!(d1.read("f").unwrap(), b"durable");
        // The other node's disk is untouched.
        assert_eq!(disks.disk_for(n2.id()).read("f").unwrap(), b"durable+lost");
    });
}
