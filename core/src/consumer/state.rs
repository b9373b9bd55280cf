//! The persisted part of a consumer: what must survive a restart so that no acked
//! message is redelivered past the floor and no unacked one is forgotten. The shell
//! writes [`ConsumerState::encode`] whenever [`Consumer::state_version`](super::Consumer::state_version)
//! moves, and hands the decoded value to [`Consumer::restore`](super::Consumer::restore).

use serde::{Deserialize, Serialize};

/// A consumer sequence and the stream sequence it corresponds to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SeqPair {
    /// Consumer (delivery) sequence.
    pub consumer_seq: u64,
    /// Stream sequence.
    pub stream_seq: u64,
}

/// One message awaiting its ack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingEntry {
    /// Stream sequence.
    pub stream_seq: u64,
    /// Consumer sequence of its first delivery.
    pub consumer_seq: u64,
    /// Deliveries so far (1 after the first).
    pub deliveries: u64,
    /// When it was last delivered (ns since the epoch).
    pub delivered_ns: i64,
}

/// Everything a consumer needs to resume where it stopped.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerState {
    /// The last delivery: its consumer sequence and the highest stream sequence delivered.
    pub delivered: SeqPair,
    /// Everything at or below this has been acked (or needs no ack).
    pub ack_floor: SeqPair,
    /// Messages awaiting ack, in stream order.
    pub pending: Vec<PendingEntry>,
}

impl ConsumerState {
    /// Compact bincode encoding.
    pub fn encode(&self) -> Vec<u8> {
        bincode::serde::encode_to_vec(self, bincode::config::standard()).expect("consumer state encodes")
    }

    /// Decode [`ConsumerState::encode`]'s output; the error says why it is unreadable.
    pub fn decode(bytes: &[u8]) -> Result<ConsumerState, String> {
        let (st, used): (ConsumerState, usize) =
            bincode::serde::decode_from_slice(bytes, bincode::config::standard()).map_err(|e| e.to_string())?;
        if used != bytes.len() {
            return Err(format!("{} trailing bytes after consumer state", bytes.len() - used));
        }
        Ok(st)
    }
}
