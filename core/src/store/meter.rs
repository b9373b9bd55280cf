//! The file store's in-memory index on the ledger (`store.index`).
//!
//! The index is the one part of a file store whose memory follows the number of
//! stored sequences rather than their bytes (a slot per sequence, a record per live
//! subject, a descriptor per block), so it is charged to its own account. The charge
//! follows a model of the index, kept in O(1) per change: the slot count, block count,
//! live subject count and the bytes of their names. Appends check for headroom before
//! they write and are refused with [`StoreError::NoMemory`](super::StoreError::NoMemory)
//! when the account cannot take them; opening a store charges whatever its files hold,
//! even past the limit (the data is there and must be served; the ledger then shows it).

use crate::mem::Account;
use std::sync::Arc;

/// Bytes charged per sequence slot.
pub(super) const SLOT_COST: u64 = 12;
/// Bytes charged per block descriptor.
pub(super) const BLOCK_COST: u64 = 128;
/// Bytes charged per live subject, besides its name.
pub(super) const SUBJECT_COST: u64 = 96;

/// Charges the index model to `store.index`.
#[derive(Debug)]
pub(super) struct IndexMeter {
    account: Arc<Account>,
    charged: u64,
}

impl IndexMeter {
    /// A meter charging `account`, holding nothing yet.
    pub(super) fn new(account: Arc<Account>) -> Self {
        IndexMeter { account, charged: 0 }
    }

    /// Whether `more` bytes fit under the account's limit now.
    pub(super) fn has_room(&self, more: u64) -> bool {
        self.account.current().saturating_add(more) <= self.account.limit()
    }

    /// Make the charge equal `model` (past the limit if it must: the index exists).
    pub(super) fn settle(&mut self, model: u64) {
        if model > self.charged {
            self.account.force_charge(model - self.charged);
        } else {
            self.account.release(self.charged - model);
        }
        self.charged = model;
    }

    /// Bytes charged.
    pub(super) fn charged(&self) -> u64 {
        self.charged
    }
}

impl Drop for IndexMeter {
    fn drop(&mut self) {
        self.account.release(self.charged);
    }
}
