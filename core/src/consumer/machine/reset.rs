//! `$JS.API.CONSUMER.RESET` (nats-server 2.14, `resetStartingSeqLocked`): move a consumer's
//! starting point and forget what it had delivered.

use super::super::config::DeliverPolicy;
use super::{Consumer, SeqPair, StreamReader};

impl Consumer {
    /// Reset to stream sequence `seq` (0: just past the ack floor), as nats-server's
    /// consumer reset: every pending ack and queued redelivery is forgotten, the next
    /// delivery is the first message at or after the new start with consumer sequence 1,
    /// and the ack floor sits just below the start. A non-zero `seq` is allowed under
    /// deliver policy `all`, under `by_start_sequence` from `opt_start_seq` on and under
    /// `by_start_time` from the first message of `opt_start_time` on; otherwise the error
    /// is the reason nats-server gives ("below start seq", "below start time", "not
    /// allowed"), which the API wraps as 10204 `invalid reset: ...`. Returns the sequence
    /// the consumer now starts at. Waiting pull requests stay and are served at once.
    pub fn reset<R: StreamReader + ?Sized>(&mut self, now_ns: i64, seq: u64, reader: &mut R) -> Result<u64, String> {
        let seq = if seq == 0 {
            self.ack_floor.stream_seq + 1
        } else {
            match self.cfg.deliver_policy {
                DeliverPolicy::All => seq,
                DeliverPolicy::ByStartSequence if seq < self.cfg.opt_start_seq => {
                    return Err("below start seq".into());
                }
                DeliverPolicy::ByStartSequence => seq,
                DeliverPolicy::ByStartTime => {
                    if seq < reader.seq_for_time(self.cfg.opt_start_time.unwrap_or(0)) {
                        return Err("below start time".into());
                    }
                    seq
                }
                _ => return Err("not allowed".into()),
            }
        }
        .max(1);
        self.pending.clear();
        self.deadlines.clear();
        self.redeliver.clear();
        self.lps = None;
        self.replay_last = None;
        self.replay_wait = None;
        self.next_seq = seq;
        self.next_cseq = 1;
        self.ack_floor = SeqPair { consumer_seq: 0, stream_seq: seq - 1 };
        self.delivered_active = None;
        self.acked_active = None;
        self.num_pending = reader.num_pending(&self.filters.clone(), seq);
        self.state_version += 1;
        self.check();
        self.poll(now_ns, reader);
        Ok(seq)
    }
}
