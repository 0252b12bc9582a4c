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
//!
//! Transactions ride on the same state (as in Kafka): a transactional batch opens its
//! producer's transaction, a control marker closes it and may carry a newer epoch
//! ([`super::transaction_state`] keeps the open transactions, the LSO and the aborted index).
//! A plain idempotent batch of a producer with an open transaction is `InvalidTxnState`, and a
//! marker of an older epoch than the producer's is fenced (`ProducerAppendInfo.append`,
//! `appendEndTxnMarker`).

use super::transaction_state::TransactionState;
use crate::protocol::ErrorCode;
use crate::record::{ControlMarker, RecordBatch, NO_PRODUCER_ID};
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
    /// Open and unreplicated transactions, the aborted index.
    txns: TransactionState,
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
        if !batch.is_transactional && self.txns.ongoing_first_offset(batch.producer_id).is_some() {
            // `ProducerAppendInfo.checkProducerEpoch`'s sibling: "Expected transactional write".
            return Err(ErrorCode::InvalidTxnState);
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
            assert!(
                dup.first_offset <= dup.last_offset,
                "producer {}: cached batch {}..={} inverted",
                batch.producer_id,
                dup.first_offset,
                dup.last_offset
            );
            return Ok(Some(dup.first_offset));
        }
        let expected = next_sequence(entry.batches.back().expect("non-empty").last_sequence);
        if first == expected {
            Ok(None)
        } else {
            Err(ErrorCode::OutOfOrderSequenceNumber)
        }
    }

    /// Validate a commit / abort marker of `producer_id` at `epoch` before the leader appends
    /// it: a marker of an older epoch than the partition knows is fenced
    /// (`ProducerAppendInfo.appendEndTxnMarker` -> `checkProducerEpoch`).
    pub fn check_marker(&self, producer_id: i64, epoch: i16) -> Result<(), ErrorCode> {
        match self.producers.get(&producer_id) {
            Some(e) if epoch < e.epoch => Err(ErrorCode::InvalidProducerEpoch),
            _ => Ok(()),
        }
    }

    /// Remember a batch the log now holds (its `base_offset` is assigned). Called by leaders
    /// after append and by followers for every batch they replicate.
    pub fn on_append(&mut self, batch: &RecordBatch) {
        if batch.producer_id == NO_PRODUCER_ID {
            return;
        }
        if let Some(marker) = batch.control {
            self.on_marker(batch, marker);
            return;
        }
        if batch.is_transactional {
            self.txns.on_data(batch.producer_id, batch.base_offset);
        }
        let entry = self.entry_at_epoch_of(batch);
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
        assert!(
            entry.batches.len() <= MAX_CACHED_BATCHES && entry.epoch >= batch.producer_epoch,
            "producer {}: {} cached batches at epoch {} after a batch of epoch {}",
            batch.producer_id,
            entry.batches.len(),
            entry.epoch,
            batch.producer_epoch
        );
    }

    /// The batch's producer's entry, at the batch's epoch if that is newer: a new epoch
    /// restarts the sequences (`ProducerStateEntry.maybeUpdateProducerEpoch`).
    fn entry_at_epoch_of(&mut self, batch: &RecordBatch) -> &mut ProducerEntry {
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
        entry
    }

    /// A marker ends the producer's transaction; a newer epoch on it (KIP-890 part 2 bumps the
    /// epoch at every transaction end, a fencing abort does too) becomes the producer's epoch,
    /// and a new epoch restarts sequences (`ProducerStateEntry.maybeUpdateProducerEpoch`).
    fn on_marker(&mut self, batch: &RecordBatch, marker: ControlMarker) {
        self.entry_at_epoch_of(batch);
        self.txns.on_marker(
            batch.producer_id,
            batch.base_offset,
            marker == ControlMarker::Abort,
        );
        assert!(
            self.txns.ongoing_first_offset(batch.producer_id).is_none(),
            "producer {}: a marker at {} left its transaction open",
            batch.producer_id,
            batch.base_offset
        );
    }

    /// Transactions of this partition: the LSO and the aborted index.
    pub fn transactions(&self) -> &TransactionState {
        &self.txns
    }

    /// The high watermark moved (see [`TransactionState::on_high_watermark`]).
    pub fn on_high_watermark(&mut self, hw: u64) {
        self.txns.on_high_watermark(hw);
    }

    /// The state a log with exactly these batches (in offset order) implies: how Kafka loads
    /// producer state on startup and after truncation.
    pub fn rebuild<'a>(batches: impl Iterator<Item = &'a RecordBatch>) -> ProducerStateManager {
        let mut state = ProducerStateManager::new();
        let mut end = 0;
        for batch in batches {
            assert!(
                batch.base_offset >= end,
                "producer state rebuilt from batches out of offset order at {}",
                batch.base_offset
            );
            end = batch.next_offset();
            state.on_append(batch);
        }
        state
    }

    /// Producers known to the partition.
    pub fn producer_count(&self) -> usize {
        self.producers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(pid: i64, epoch: i16, seq: i32, records: u64) -> RecordBatch {
        let values: Vec<u64> = (0..records).collect();
        let mut b = crate::log::tests::batch(&values);
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
        let mut s = ProducerStateManager::rebuild(log[..2].iter());
        assert_eq!(s.check(&batch(1, 0, 1, 1)), Ok(None), "seq 1 is new again");
        s = ProducerStateManager::rebuild(log[..0].iter());
        assert_eq!(s.producer_count(), 0);
        assert_eq!(
            s.check(&batch(1, 0, 1, 1)),
            Err(ErrorCode::UnknownProducerId)
        );
    }

    fn txn(pid: i64, epoch: i16, seq: i32, records: u64) -> RecordBatch {
        let mut b = batch(pid, epoch, seq, records);
        b.is_transactional = true;
        b
    }

    /// Append a marker like a leader after `check_marker`.
    fn mark(
        state: &mut ProducerStateManager,
        next: &mut u64,
        pid: i64,
        epoch: i16,
        m: ControlMarker,
    ) {
        assert_eq!(state.check_marker(pid, epoch), Ok(()));
        let mut b = RecordBatch::control_marker(pid, epoch, m);
        b.base_offset = *next;
        *next += 1;
        state.on_append(&b);
    }

    #[test]
    fn transactions_open_close_and_hold_the_lso() {
        let mut s = ProducerStateManager::new();
        let mut next = 0;
        append(&mut s, &mut next, batch(7, 0, 0, 2)); // plain idempotent 0..=1
        append(&mut s, &mut next, txn(1, 0, 0, 2)); // 2..=3
        append(&mut s, &mut next, txn(1, 0, 2, 1)); // 4
        assert_eq!(s.transactions().last_stable_offset(5), 2);
        assert_eq!(
            s.check(&batch(1, 0, 3, 1)),
            Err(ErrorCode::InvalidTxnState),
            "a plain write inside an open transaction"
        );
        mark(&mut s, &mut next, 1, 0, ControlMarker::Abort); // 5
        assert_eq!(
            s.transactions().last_stable_offset(5),
            2,
            "marker not replicated"
        );
        s.on_high_watermark(6);
        assert_eq!(s.transactions().last_stable_offset(6), 6);
        assert_eq!(s.transactions().collect_aborted(0, 6), vec![(1, 2)]);
        assert_eq!(
            s.check(&txn(1, 0, 3, 1)),
            Ok(None),
            "same epoch: sequences go on after the marker (KIP-890 part 2 off)"
        );
    }

    #[test]
    fn markers_fence_older_epochs_and_adopt_newer_ones() {
        let mut s = ProducerStateManager::new();
        let mut next = 0;
        append(&mut s, &mut next, txn(1, 3, 0, 1));
        assert_eq!(
            s.check_marker(1, 2),
            Err(ErrorCode::InvalidProducerEpoch),
            "a delayed marker of a fenced epoch"
        );
        mark(&mut s, &mut next, 1, 4, ControlMarker::Commit);
        assert_eq!(
            s.check(&txn(1, 3, 1, 1)),
            Err(ErrorCode::InvalidProducerEpoch),
            "the marker's epoch fences the old one"
        );
        assert_eq!(s.check(&txn(1, 4, 0, 1)), Ok(None), "new epoch starts at 0");
    }

    #[test]
    fn rebuild_restores_open_transactions_and_the_aborted_index() {
        let mut s = ProducerStateManager::new();
        let mut next = 0;
        let mut log = Vec::new();
        for (pid, seq) in [(1, 0), (2, 0)] {
            let mut b = txn(pid, 0, seq, 1);
            b.base_offset = append(&mut s, &mut next, b.clone());
            log.push(b);
        }
        let mut m = RecordBatch::control_marker(1, 0, ControlMarker::Abort);
        m.base_offset = next;
        s.on_append(&m);
        log.push(m);
        assert_eq!(ProducerStateManager::rebuild(log.iter()), s);
        let before_marker = ProducerStateManager::rebuild(log[..2].iter());
        assert_eq!(before_marker.transactions().last_stable_offset(3), 0);
        assert_eq!(before_marker.transactions().collect_aborted(0, 3), vec![]);
    }
}
