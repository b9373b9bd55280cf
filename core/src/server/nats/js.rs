//! JetStream inside the NATS server: the options ([`JetStreamOptions`]) and the async
//! shell around the synchronous engine.

use crate::disk::Disk;
use std::sync::Arc;

/// Default `max_memory_store` when none is configured: 1 GiB. (nats-server takes 75% of
/// the machine's memory; the binary computes that and passes it, the core stays
/// independent of the machine.)
pub const DEFAULT_MAX_MEMORY_STORE: i64 = 1 << 30;
/// Default `max_file_store`: 1 TB, as nats-server's `JetStreamMaxStoreDefault`.
pub const DEFAULT_MAX_FILE_STORE: i64 = 1 << 40;
/// Default bound of the JetStream API request queue (nats-server's
/// `JSDefaultRequestQueueLimit`, 10,000).
pub const DEFAULT_MAX_API_PENDING: usize = 10_000;

/// How a server runs JetStream.
#[derive(Clone)]
pub struct JetStreamOptions {
    /// Where streams and consumers persist: the binary passes a `RealDisk` rooted at
    /// `<store_dir>/jetstream`, the simulation its `SimDisk`.
    pub disk: Arc<dyn Disk>,
    /// The store directory as shown in logs and `/jsz` (`config.store_dir`).
    pub store_dir: String,
    /// Most bytes memory streams may hold together (`max_memory_store`).
    pub max_memory_store: i64,
    /// Most bytes file streams may hold together (`max_file_store`).
    pub max_file_store: i64,
    /// Most JetStream API requests queued at once; one over it is answered with an error.
    pub max_api_pending: usize,
    /// Wall-clock time (ns since the Unix epoch) when the server starts: message
    /// timestamps are this plus the runtime's monotonic time since. The binary reads the
    /// system clock once; the simulation passes a value of its own, so runs replay.
    pub epoch_ns: i64,
    /// Strict API request checking (nats-server's `strict`, default true).
    pub strict: bool,
}

impl JetStreamOptions {
    /// Options over `disk` with the defaults above.
    pub fn new(disk: Arc<dyn Disk>, store_dir: impl Into<String>, epoch_ns: i64) -> JetStreamOptions {
        JetStreamOptions {
            disk,
            store_dir: store_dir.into(),
            max_memory_store: DEFAULT_MAX_MEMORY_STORE,
            max_file_store: DEFAULT_MAX_FILE_STORE,
            max_api_pending: DEFAULT_MAX_API_PENDING,
            epoch_ns,
            strict: true,
        }
    }
}

impl std::fmt::Debug for JetStreamOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JetStreamOptions")
            .field("store_dir", &self.store_dir)
            .field("max_memory_store", &self.max_memory_store)
            .field("max_file_store", &self.max_file_store)
            .field("max_api_pending", &self.max_api_pending)
            .field("epoch_ns", &self.epoch_ns)
            .field("strict", &self.strict)
            .finish_non_exhaustive()
    }
}
