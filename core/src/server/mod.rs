//! The async shell: tasks that own sockets, timers and the disk, and feed the
//! state machines. Written against tokio's API through `madsim-tokio`, so the same
//! source runs on real tokio and inside the simulator.

pub mod client;
pub mod frame;
pub mod inbox;
pub mod link;
pub mod nats;
pub mod node;
pub mod route;
pub mod scope;
pub mod tls;
