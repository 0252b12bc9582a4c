//! Broker-side idempotence (Kafka's `ProducerStateManager`): per producer id, its epoch and
//! the last five batches' sequence ranges and offsets. A batch whose sequences match a
//! cached one is a retry and answered with the original offset; a gap is
//! OutOfOrderSequenceNumber; an older epoch is fenced. Rebuilt from the log on load and after
//! truncation, as Kafka rebuilds from snapshots plus the log.
//!
//! Minimal version written by the broker helper so the append path has its hook; the
//! producer helper owns this file and may replace its internals behind the same three calls.

use crate::protocol::ErrorCode;
use crate::record::RecordBatch;
use std::collections::{BTreeMap, VecDeque};

/// Batches remembered per producer (Kafka's `NUM_BATCHES_TO_RETAIN`).
pub const BATCHES_TO_RETAIN: usize = 5;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct BatchMeta {
    first_seq: i32,
    last_seq: i32,
    base_offset: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<BatchMeta>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProducerStateManager {
    producers: BTreeMap<i64, ProducerEntry>,
}

impl ProducerStateManager {
    /// Before append: `Ok(Some(base))` for a duplicate of the batch stored at `base`.
    pub fn check(&mut self, batch: &RecordBatch) -> Result<Option<u64>, ErrorCode> {
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
        if batch.producer_epoch > entry.epoch {
            return if batch.base_sequence == 0 {
                Ok(None)
            } else {
                Err(ErrorCode::OutOfOrderSequenceNumber)
            };
        }
        if let Some(dup) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == batch.base_sequence && b.last_seq == batch.last_sequence())
        {
            return Ok(Some(dup.base_offset));
        }
        let expected = entry.batches.back().map_or(0, |b| {
            if b.last_seq == i32::MAX {
                0
            } else {
                b.last_seq + 1
            }
        });
        if batch.base_sequence != expected {
            return Err(ErrorCode::OutOfOrderSequenceNumber);
        }
        Ok(None)
    }

    /// After append (offsets assigned).
    pub fn on_append(&mut self, batch: &RecordBatch) {
        if batch.producer_id < 0 {
            return;
        }
        let entry = self.producers.entry(batch.producer_id).or_default();
        if batch.producer_epoch > entry.epoch {
            entry.epoch = batch.producer_epoch;
            entry.batches.clear();
        }
        entry.batches.push_back(BatchMeta {
            first_seq: batch.base_sequence,
            last_seq: batch.last_sequence(),
            base_offset: batch.base_offset,
        });
        while entry.batches.len() > BATCHES_TO_RETAIN {
            entry.batches.pop_front();
        }
    }

    /// Rebuild from the log (load, truncation, becoming follower).
    pub fn rebuild(&mut self, batches: &[RecordBatch]) {
        self.producers.clear();
        for b in batches {
            self.on_append(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::tests::batch;

    fn idem(seq: i32, n: usize, epoch: i16) -> RecordBatch {
        let mut b = batch(&vec![1; n]);
        b.producer_id = 7;
        b.producer_epoch = epoch;
        b.base_sequence = seq;
        b
    }

    #[test]
    fn duplicates_gaps_and_fencing() {
        let mut ps = ProducerStateManager::default();
        assert_eq!(ps.check(&idem(3, 1, 0)), Err(ErrorCode::UnknownProducerId));
        let mut b = idem(0, 2, 0);
        assert_eq!(ps.check(&b), Ok(None));
        b.base_offset = 10;
        ps.on_append(&b);
        assert_eq!(ps.check(&idem(0, 2, 0)), Ok(Some(10)));
        assert_eq!(
            ps.check(&idem(3, 1, 0)),
            Err(ErrorCode::OutOfOrderSequenceNumber)
        );
        assert_eq!(ps.check(&idem(2, 1, 0)), Ok(None));
        ps.on_append(&idem(2, 1, 1));
        assert_eq!(
            ps.check(&idem(3, 1, 0)),
            Err(ErrorCode::InvalidProducerEpoch)
        );
    }
}
