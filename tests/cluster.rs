//! The production build of the node (real tokio, real files, real TCP on loopback):
//! a 3-node cluster elects a leader, commits proposals, survives losing a node, and
//! recovers its log from disk after a restart.

#![cfg(not(madsim))]

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;
use weir_core::disk::RealDisk;
use weir_core::raft;
use weir_core::server::client::{ClientConn, Outcome};
use weir_core::server::node::{self, NodeConfig, NodeEnv, NodeStatus};
use weir_core::server::route::RouteConfig;
use weir_core::testing::{LogApp, payload};
use weir_traces::NullSink;

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

struct Cluster {
    routes: Vec<SocketAddr>,
    clients: Vec<SocketAddr>,
    dir: PathBuf,
    apps: Vec<Arc<Mutex<LogApp>>>,
}

impl Cluster {
    fn new(n: usize) -> Cluster {
        let dir = std::env::temp_dir().join(format!("weir-cluster-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Cluster {
            routes: (0..n).map(|_| free_port()).collect(),
            clients: (0..n).map(|_| free_port()).collect(),
            dir,
            apps: (0..n).map(|_| Arc::default()).collect(),
        }
    }

    fn start(&self, i: usize) -> JoinHandle<()> {
        let id = i as u64 + 1;
        let n = self.routes.len() as u64;
        let peers = (1..=n).filter(|&j| j != id).map(|j| (j, self.routes[j as usize - 1])).collect();
        let cfg = NodeConfig {
            id,
            peers,
            route_listen: self.routes[i],
            client_listen: self.clients[i],
            data_dir: "raft".into(),
            raft: raft::Config::new(id, (1..=n).collect()),
            route: RouteConfig::default(),
            snapshot_every: 50,
            tick: Duration::from_millis(10),
            proposal_queue: 256,
            propose_batch: Duration::ZERO,
        };
        let env = NodeEnv {
            disk: Arc::new(RealDisk::new(self.dir.join(format!("n{id}"))).unwrap()),
            sink: Arc::new(NullSink),
            ledger: node::default_ledger(),
            link_wrap: None,
            seed: id,
            status: Arc::new(Mutex::new(NodeStatus::default())),
            app: self.apps[i].clone(),
        };
        tokio::spawn(async move {
            let _ = node::run(cfg, env).await;
        })
    }

    /// Propose `value` until some live node commits it; returns the index.
    async fn commit(&self, value: u64, live: &[usize]) -> u64 {
        for attempt in 0..400 {
            let target = self.clients[live[attempt % live.len()]];
            if let Ok(Ok(mut c)) = tokio::time::timeout(Duration::from_secs(1), ClientConn::connect(target)).await
                && let Ok(Ok(Outcome::Committed { index })) =
                    tokio::time::timeout(Duration::from_secs(2), c.propose(value, payload(value, 16))).await
            {
                return index;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("value {value} never committed");
    }

    async fn wait_applied(&self, i: usize, index: u64) -> LogApp {
        for _ in 0..800 {
            let app = self.apps[i].lock().unwrap().clone();
            if app.applied >= index {
                return app;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("node {} never applied index {index}", i + 1);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_node_cluster_commits_survives_a_loss_and_recovers_from_disk() {
    let c = Cluster::new(3);
    let mut nodes: Vec<JoinHandle<()>> = (0..3).map(|i| c.start(i)).collect();
    let mut last = 0;
    for v in 1..=120u64 {
        last = c.commit(v, &[0, 1, 2]).await;
    }
    let app = c.wait_applied(2, last).await;
    assert_eq!(app.values.iter().map(|x| x.1).collect::<Vec<_>>(), (1..=120).collect::<Vec<_>>());

    // Lose node 2: the other two still form a quorum.
    nodes[1].abort();
    for v in 121..=140u64 {
        last = c.commit(v, &[0, 2]).await;
    }
    // Node 2 restarts from its files and catches up (by snapshot: the log was compacted).
    nodes[1] = c.start(1);
    let app2 = c.wait_applied(1, last).await;
    let app0 = c.wait_applied(0, last).await;
    assert_eq!(app2.values[..140], app0.values[..140]);
    assert_eq!(app2.values.iter().filter(|x| x.1 == 130).count(), 1);
    for n in nodes {
        n.abort();
    }
}
