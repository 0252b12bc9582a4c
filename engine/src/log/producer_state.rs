//! Broker-side producer state of one partition: the idempotence de-duplication window.
//!
//! For every producer id that wrote to the partition, Kafka's `ProducerStateManager` keeps
//! the epoch and the metadata of the last [`MAX_CACHED_BATCHES`] batches (first/last sequence,
//! first/last offset). A leader checks every incoming idempotent batch against it *before* the
//! append ([`ProducerStateManager::check`]):
//! - a batch whose sequence range equals a cached one is a retry of a batch the log already
//!   has: it is not appended again and the producer is told the original offset (Kafka's
//!   DuplicateSequenceNumber handling, which answers success);
//! - a batch of an older epoch is fenced (`InvalidProducerEpoch`);
//! - a batch of a newer epoch must start at sequence 0 (KIP-360 bump);
//! - otherwise its first sequence must be the last cached sequence + 1, else
//!   `OutOfOrderSequenceNumber`;
//! - a producer the partition does not know must start at sequence 0, else
//!   `UnknownProducerId` (its state was lost, e.g. truncated away), which makes the client bump.
//!
//! Every replica updates the state after it appends a batch ([`ProducerStateManager::on_append`]),
//! so a new leader can de-duplicate too. Like Kafka, the state is rebuilt from the log's batches
//! when a log is loaded and after truncation ([`ProducerStateManager::rebuild`]); it is never
//! persisted on its own in this model.

use crate::protocol::ErrorCode;
use crate::record::{RecordBatch, NO_PRODUCER_ID};
use std::collections::{BTreeMap, VecDeque};

/// Batches remembered per producer (Kafka's `NUM_BATCHES_TO_RETAIN`), which is why an
/// idempotent producer may have at most 5 requests in flight.
pub const MAX_CACHED_BATCHES: usize = 5;

/// What the partition remembers of one appended batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct CachedBatch {
    first_sequence: i32,
    last_sequence: i32,
    first_offset: u64,
    last_offset: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct ProducerEntry {
    epoch: i16,
    /// Oldest first; at most [`MAX_CACHED_BATCHES`].
    batches: VecDeque<CachedBatch>,
}

/// Producer id -> epoch and recent batches, for one partition.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProducerStateManager {
    producers: BTreeMap<i64, ProducerEntry>,
}

/// Whether a batch takes part in idempotence checks (control markers and plain batches do not).
fn is_idempotent(batch: &RecordBatch) -> bool {
    batch.producer_id != NO_PRODUCER_ID && batch.control.is_none()
}

/// `last + 1` with Kafka's wrap at `i32::MAX`.
fn next_sequence(last: i32) -> i32 {
    if last == i32::MAX {
        0
    } else {
        last + 1
    }
}

impl ProducerStateManager {
    pub fn new() -> ProducerStateManager {
        ProducerStateManager::default()
    }

    /// Validate `batch` before the leader appends it. `Ok(None)`: append it. `Ok(Some(offset))`:
    /// a duplicate of the batch already at `offset`; do not append, answer success with that
    /// base offset. `Err`: reject the batch with that error.
    pub fn check(&mut self, batch: &RecordBatch) -> Result<Option<u64>, ErrorCode> {
        if !is_idempotent(batch) {
            return Ok(None);
        }
        let Some(entry) = self.producers.get(&batch.producer_id) else {
            return if batch.base_sequence == 0 {
                Ok(None)
            } else {
                Err(ErrorCode::UnknownProducerId)
            };
        };
        if batch.producer_epoch < entry.epoch {
            return Err(ErrorCode::InvalidProducerEpoch);
        }
        if batch.producer_epoch > entry.epoch || entry.batches.is_empty() {
            // A bumped (or fresh) epoch restarts sequences at 0.
            return if batch.base_sequence == 0 {
                Ok(None)
            } else {
                Err(ErrorCode::OutOfOrderSequenceNumber)
            };
        }
        let (first, last) = (batch.base_sequence, batch.last_sequence());
        if let Some(dup) = entry
            .batches
            .iter()
            .find(|c| c.first_sequence == first && c.last_sequence == last)
        {
            return Ok(Some(dup.first_offset));
        }
        let expected = next_sequence(entry.batches.back().expect("non-empty").last_sequence);
        if first == expected {
            Ok(None)
        } else {
            Err(ErrorCode::OutOfOrderSequenceNumber)
        }
    }

    /// Remember a batch the log now holds (its `base_offset` is assigned). Called by leaders
    /// after append and by followers for every batch they replicate.
    pub fn on_append(&mut self, batch: &RecordBatch) {
        if !is_idempotent(batch) {
            return;
        }
        let entry = self
            .producers
            .entry(batch.producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch: batch.producer_epoch,
                batches: VecDeque::new(),
            });
        if batch.producer_epoch > entry.epoch {
            entry.epoch = batch.producer_epoch;
            entry.batches.clear();
        }
        if let Some(prev) = entry.batches.back() {
            assert!(
                batch.base_offset > prev.last_offset,
                "producer state: batch of producer {} at offset {} appended below {}",
                batch.producer_id,
                batch.base_offset,
                prev.last_offset
            );
        }
        entry.batches.push_back(CachedBatch {
            first_sequence: batch.base_sequence,
            last_sequence: batch.last_sequence(),
            first_offset: batch.base_offset,
            last_offset: batch.last_offset(),
        });
        while entry.batches.len() > MAX_CACHED_BATCHES {
            entry.batches.pop_front();
        }
    }

    /// The state a log with exactly these batches (in offset order) implies: how Kafka loads
    /// producer state on startup and after truncation.
    pub fn rebuild<'a>(batches: impl Iterator<Item = &'a RecordBatch>) -> ProducerStateManager {
        let mut state = ProducerStateManager::new();
        for batch in batches {
            state.on_append(batch);
        }
        state
    }

    /// Forget batches at or above `offset` (the log was truncated there). A producer whose
    /// cached batches are all gone is forgotten: its next batch meets `UnknownProducerId`
    /// unless it starts a new epoch. [`Self::rebuild`] from the remaining log is exact; this is
    /// the cheap approximation when the log is long.
    pub fn truncate_to(&mut self, offset: u64) {
        for entry in self.producers.values_mut() {
            while entry
                .batches
                .back()
                .is_some_and(|b| b.last_offset >= offset)
            {
                entry.batches.pop_back();
            }
        }
        self.producers.retain(|_, e| !e.batches.is_empty());
    }

    /// Producers known to the partition.
    pub fn producer_count(&self) -> usize {
        self.producers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Record, ValueId};
    use crate::time::Instant;

    fn batch(pid: i64, epoch: i16, seq: i32, records: u64) -> RecordBatch {
        let recs: Vec<Record> = (0..records)
            .map(|v| Record {
                value: ValueId(v),
                key: None,
                size: 10,
                create_time: Instant::ZERO,
                payload: None,
            })
            .collect();
        let mut b = RecordBatch::new(recs.into());
        b.producer_id = pid;
        b.producer_epoch = epoch;
        b.base_sequence = seq;
        b
    }

    /// Check and append like a leader, assigning offsets from `next`.
    fn append(state: &mut ProducerStateManager, next: &mut u64, mut b: RecordBatch) -> u64 {
        assert_eq!(state.check(&b), Ok(None));
        b.base_offset = *next;
        *next = b.next_offset();
        state.on_append(&b);
        b.base_offset
    }

    #[test]
    fn retried_batch_is_a_duplicate_with_its_original_offset() {
        let mut s = ProducerStateManager::new();
        let mut next = 100;
        let first = append(&mut s, &mut next, batch(1, 0, 0, 3));
        append(&mut s, &mut next, batch(1, 0, 3, 2));
        assert_eq!(s.check(&batch(1, 0, 0, 3)), Ok(Some(first)));
        assert_eq!(s.check(&batch(1, 0, 3, 2)), Ok(Some(103)));
    }

    #[test]
    fn new_batches_must_follow_the_last_sequence() {
        let mut s = ProducerStateManager::new();
        let mut next = 0;
        append(&mut s, &mut next, batch(1, 0, 0, 3));
        assert_eq!(s.check(&batch(1, 0, 3, 1)), Ok(None), "3 follows 0..=2");
        assert_eq!(
            s.check(&batch(1, 0, 4, 1)),
            Err(ErrorCode::OutOfOrderSequenceNumber),
            "a gap"
        );
        assert_eq!(
            s.check(&batch(1, 0, 1, 2)),
            Err(ErrorCode::OutOfOrderSequenceNumber)
        );
    }

    #[test]
    fn only_the_last_five_batches_are_deduplicated() {
        let mut s = ProducerStateManager::new();
        let mut next = 0;
        for seq in 0..6 {
            append(&mut s, &mut next, batch(1, 0, seq, 1));
        }
        assert_eq!(s.check(&batch(1, 0, 1, 1)), Ok(Some(1)));
        assert_eq!(
            s.check(&batch(1, 0, 0, 1)),
            Err(ErrorCode::OutOfOrderSequenceNumber),
            "batch 0 fell out of the window"
        );
    }

    #[test]
    fn epochs_fence_old_and_restart_new() {
        let mut s = ProducerStateManager::new();
        let mut next = 0;
        append(&mut s, &mut next, batch(1, 1, 0, 2));
        assert_eq!(
            s.check(&batch(1, 0, 2, 1)),
            Err(ErrorCode::InvalidProducerEpoch)
        );
        assert_eq!(
            s.check(&batch(1, 2, 5, 1)),
            Err(ErrorCode::OutOfOrderSequenceNumber)
        );
        append(&mut s, &mut next, batch(1, 2, 0, 1));
        assert_eq!(
            s.check(&batch(1, 1, 2, 1)),
            Err(ErrorCode::InvalidProducerEpoch)
        );
    }

    #[test]
    fn unknown_producer_must_start_at_zero() {
        let mut s = ProducerStateManager::new();
        assert_eq!(s.check(&batch(9, 0, 0, 1)), Ok(None));
        assert_eq!(
            s.check(&batch(9, 0, 7, 1)),
            Err(ErrorCode::UnknownProducerId)
        );
        assert_eq!(
            s.check(&RecordBatch::new(Vec::new().into())),
            Ok(None),
            "plain batch"
        );
    }

    #[test]
    fn rebuild_equals_incremental_state_and_truncation_forgets() {
        let mut s = ProducerStateManager::new();
        let mut next = 0;
        let mut log = Vec::new();
        for (pid, seq) in [(1, 0), (2, 0), (1, 1), (2, 1)] {
            let mut b = batch(pid, 0, seq, 1);
            b.base_offset = append(&mut s, &mut next, b.clone());
            log.push(b);
        }
        assert_eq!(ProducerStateManager::rebuild(log.iter()), s);
        s.truncate_to(2);
        assert_eq!(s, ProducerStateManager::rebuild(log[..2].iter()));
        assert_eq!(s.check(&batch(1, 0, 1, 1)), Ok(None), "seq 1 is new again");
        s.truncate_to(0);
        assert_eq!(s.producer_count(), 0);
        assert_eq!(
            s.check(&batch(1, 0, 1, 1)),
            Err(ErrorCode::UnknownProducerId)
        );
    }
}
