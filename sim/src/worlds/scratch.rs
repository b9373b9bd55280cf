//! Recovery of a copy of a store's durable files on a scratch disk, for the worlds'
//! fault injectors: they need to know what a recovery *would* find (where a torn tail
//! starts, which sequences it reports lost) without touching the node's own disk, so
//! that the node's recovery still meets the damage first-hand.

use crate::disk::{SimDisk, SimDiskConfig};
use std::sync::Arc;
use weir_core::disk::Disk;
use weir_core::store::{FileStore, FileStoreConfig, RecoveryReport, StoreLimits, StoreMemory};

/// Recover a copy of `dir`'s durable files (opened with `config`) on a scratch disk:
/// its recovery report, `None` if it would not open. `disk` itself is not touched.
pub(super) fn recover_copy(disk: &SimDisk, dir: &str, config: FileStoreConfig) -> Option<RecoveryReport> {
    let scratch = Arc::new(SimDisk::new(SimDiskConfig::instant()));
    let prefix = format!("{dir}/");
    for f in disk.durable_file_names().into_iter().filter(|f| f.starts_with(&prefix)) {
        if let Some(data) = disk.durable_contents(&f) {
            scratch.write_file(&f, &data).expect("scratch write");
            scratch.sync(&f).expect("scratch sync");
        }
    }
    let mem = StoreMemory::standalone(64 << 20, 64 << 20);
    let fs = FileStore::open(scratch, dir, StoreLimits::default(), config, mem).ok()?;
    Some(fs.recovery().clone())
}

/// How many bytes at the end of block `index` (durable length `len`) of the store in
/// `dir` are the tail of a torn write, which a recovery cuts off: 0 when the block ends
/// on a whole record. A corruption guard that spares "the newest block's last record"
/// must be measured from where this tail starts, not from the end of the file (seed 870
/// of `js-single-crashes`: the flip landed on the acknowledged record just before a
/// torn tail, and its loss passed as a torn write).
pub(super) fn torn_tail(disk: &SimDisk, dir: &str, config: FileStoreConfig, index: u64, len: u64) -> u64 {
    recover_copy(disk, dir, config)
        .and_then(|r| r.truncated)
        .filter(|t| t.block == index && t.offset <= len)
        .map_or(0, |t| len - t.offset)
}
