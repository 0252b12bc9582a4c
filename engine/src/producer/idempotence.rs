//! Client side of the idempotent producer (KIP-98, with KIP-360's epoch bump).
//!
//! The producer obtains a producer id and epoch with InitProducerId, stamps every batch with a
//! per-partition sequence number when it is first drained, and keeps that sequence across
//! retries, so the broker can drop a retried batch it already has (returning the original
//! offset) and reject a batch that would leave a gap (OutOfOrderSequenceNumber). Ordering with
//! up to 5 requests in flight comes from two rules kept here: a retried batch is drained only
//! when it is the partition's earliest outstanding sequence, and OutOfOrderSequence on a batch
//! behind an earlier outstanding one is only a consequence of that earlier failure (retry).
//!
//! When the sequence state cannot be trusted any more (OutOfOrderSequence on the earliest
//! outstanding batch, UnknownProducerId), Java 2.5+ bumps the epoch (KIP-360): it waits for
//! in-flight requests to finish, sends InitProducerId with its current id and epoch, and
//! restarts every partition's sequences at 0 under the new epoch.

use crate::record::{TopicPartition, NO_PRODUCER_ID};
use std::collections::{BTreeMap, BTreeSet};

use super::accumulator::BatchSequence;

#[derive(Clone, Debug)]
struct PartitionSequences {
    next_sequence: i32,
    /// Base sequences of batches stamped and not yet completed (in flight or re-enqueued).
    outstanding: BTreeSet<i32>,
    /// The highest last sequence the broker acknowledged in this epoch, -1 before any (Java
    /// `TxnPartitionEntry.lastAckedSequence`, raised by `maybeUpdateLastAckedSequence`). It
    /// may be above an outstanding batch: after a leader change the batches sent to the new
    /// leader can be acknowledged while earlier ones still wait on the old leader's connection.
    last_acked_sequence: i32,
}

impl Default for PartitionSequences {
    fn default() -> Self {
        PartitionSequences {
            next_sequence: 0,
            outstanding: BTreeSet::new(),
            last_acked_sequence: -1,
        }
    }
}

/// Producer id, epoch and sequence numbers of an idempotent producer.
#[derive(Clone, Debug)]
pub struct IdempotenceState {
    producer_id: i64,
    producer_epoch: i16,
    partitions: BTreeMap<TopicPartition, PartitionSequences>,
    /// An epoch bump (or the first InitProducerId) is needed before draining more batches.
    needs_init: bool,
}

impl Default for IdempotenceState {
    fn default() -> Self {
        IdempotenceState::new()
    }
}

impl IdempotenceState {
    pub fn new() -> IdempotenceState {
        IdempotenceState {
            producer_id: NO_PRODUCER_ID,
            producer_epoch: -1,
            partitions: BTreeMap::new(),
            needs_init: true,
        }
    }

    /// Whether batches may be drained: the producer has a valid id and no bump is pending.
    pub fn ready(&self) -> bool {
        !self.needs_init
    }

    /// Whether an InitProducerId request must be sent.
    pub fn needs_init(&self) -> bool {
        self.needs_init
    }

    /// The id and epoch to put into an InitProducerId request: -1/-1 the first time, the
    /// current ones for a KIP-360 bump.
    pub fn init_request_ids(&self) -> (i64, i16) {
        (self.producer_id, self.producer_epoch)
    }

    pub fn producer_id(&self) -> i64 {
        self.producer_id
    }

    pub fn producer_epoch(&self) -> i16 {
        self.producer_epoch
    }

    /// Ask for an epoch bump: no batch is drained until [`Self::on_init`].
    pub fn request_bump(&mut self) {
        self.needs_init = true;
    }

    /// Java before 2.5 (`TransactionManager.resetProducerId`): forget the producer id; the
    /// next InitProducerId asks for a new one (-1/-1).
    pub fn reset_producer_id(&mut self) {
        self.producer_id = NO_PRODUCER_ID;
        self.producer_epoch = -1;
        self.partitions.clear();
        self.needs_init = true;
    }

    /// sarama `transactionManager.bumpEpoch`: epoch + 1 and every sequence back to 0, locally,
    /// without asking the broker (which takes a higher epoch starting at sequence 0).
    pub fn bump_locally(&mut self) {
        if self.producer_id < 0 || self.needs_init {
            return;
        }
        self.producer_epoch = self.producer_epoch.wrapping_add(1);
        self.partitions.clear();
    }

    /// InitProducerId succeeded: new id/epoch, every sequence restarts at 0.
    pub fn on_init(&mut self, producer_id: i64, producer_epoch: i16) {
        assert!(
            producer_id >= 0,
            "InitProducerId returned producer id {producer_id}"
        );
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
        self.partitions.clear();
        self.needs_init = false;
    }

    /// Stamp a batch of `records` for `partition` when it is first drained.
    pub fn assign(&mut self, partition: TopicPartition, records: u32) -> BatchSequence {
        assert!(
            !self.needs_init,
            "producer stamps {partition} without a producer id"
        );
        let p = self.partitions.entry(partition).or_default();
        let base = p.next_sequence;
        p.next_sequence = (base as i64 + records as i64).rem_euclid(i32::MAX as i64 + 1) as i32;
        p.outstanding.insert(base);
        BatchSequence {
            producer_id: self.producer_id,
            producer_epoch: self.producer_epoch,
            base_sequence: base,
        }
    }

    /// Whether `seq` is of the current epoch (batches stamped before a bump are not).
    pub fn is_current(&self, seq: &BatchSequence) -> bool {
        seq.producer_id == self.producer_id && seq.producer_epoch == self.producer_epoch
    }

    /// A stamped batch completed (acknowledged, failed or expired).
    pub fn complete(&mut self, partition: TopicPartition, seq: &BatchSequence) {
        if !self.is_current(seq) {
            return;
        }
        if let Some(p) = self.partitions.get_mut(&partition) {
            p.outstanding.remove(&seq.base_sequence);
        }
    }

    /// The broker acknowledged a batch of `records` records (Java
    /// `TransactionManager.handleCompletedBatch`): the last acknowledged sequence only rises.
    pub fn acknowledge(&mut self, partition: TopicPartition, seq: &BatchSequence, records: u32) {
        if !self.is_current(seq) || records == 0 {
            return;
        }
        let last = (seq.base_sequence as i64 + records as i64 - 1).rem_euclid(i32::MAX as i64 + 1);
        let p = self.partitions.entry(partition).or_default();
        p.last_acked_sequence = p.last_acked_sequence.max(last as i32);
    }

    /// Java `TransactionManager.isNextSequence`: `seq` starts right after the last
    /// acknowledged sequence, so an OutOfOrderSequence on it is a real gap in the broker's
    /// log. When a later batch was acknowledged already, the rejected batch is an old one the
    /// broker no longer remembers (it fell out of the 5-batch window, possibly because it
    /// *was* written): Java retries it with its sequence and does not bump (`canRetry`).
    pub fn is_next_sequence(&self, partition: TopicPartition, seq: &BatchSequence) -> bool {
        let last = self
            .partitions
            .get(&partition)
            .map_or(-1, |p| p.last_acked_sequence);
        seq.base_sequence as i64 - last as i64 == 1
    }

    /// Whether a retried batch may be drained: it must be the earliest outstanding sequence of
    /// its partition, so that the broker sees sequences in order.
    pub fn may_drain(&self, partition: TopicPartition, seq: &BatchSequence) -> bool {
        if !self.is_current(seq) {
            return true;
        }
        let first = self
            .partitions
            .get(&partition)
            .and_then(|p| p.outstanding.first().copied());
        first.is_none_or(|first| first == seq.base_sequence)
    }

    /// OutOfOrderSequence on a batch behind an earlier outstanding batch is a consequence of
    /// that batch's failure: retry it. On the earliest one it is a real gap.
    pub fn out_of_order_is_retriable(
        &self,
        partition: TopicPartition,
        seq: &BatchSequence,
    ) -> bool {
        !self.may_drain(partition, seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::TopicId;

    const TP: TopicPartition = TopicPartition::new(TopicId(0), 0);

    #[test]
    fn sequences_advance_by_record_count_and_restart_after_bump() {
        let mut s = IdempotenceState::new();
        assert!(s.needs_init());
        s.on_init(7, 0);
        assert_eq!(s.assign(TP, 3).base_sequence, 0);
        let b = s.assign(TP, 2);
        assert_eq!(b.base_sequence, 3);
        s.request_bump();
        assert!(!s.ready());
        assert_eq!(s.init_request_ids(), (7, 0));
        s.on_init(7, 1);
        assert!(!s.is_current(&b));
        assert_eq!(s.assign(TP, 1).base_sequence, 0);
    }

    #[test]
    fn only_the_earliest_outstanding_batch_may_be_retried() {
        let mut s = IdempotenceState::new();
        s.on_init(1, 0);
        let a = s.assign(TP, 1);
        let b = s.assign(TP, 1);
        assert!(s.may_drain(TP, &a));
        assert!(!s.may_drain(TP, &b));
        assert!(s.out_of_order_is_retriable(TP, &b));
        assert!(!s.out_of_order_is_retriable(TP, &a));
        s.complete(TP, &a);
        assert!(s.may_drain(TP, &b));
    }

    #[test]
    fn next_sequence_follows_the_last_acknowledged_one() {
        let mut s = IdempotenceState::new();
        s.on_init(1, 0);
        let a = s.assign(TP, 2);
        let b = s.assign(TP, 3);
        assert!(
            s.is_next_sequence(TP, &a),
            "nothing acknowledged: 0 is next"
        );
        assert!(!s.is_next_sequence(TP, &b));
        s.acknowledge(TP, &b, 3);
        s.complete(TP, &b);
        assert!(s.may_drain(TP, &a), "a is the earliest outstanding batch");
        assert!(
            !s.is_next_sequence(TP, &a),
            "a is below the acknowledged b: not a gap"
        );
        s.acknowledge(TP, &a, 2);
        assert!(s.is_next_sequence(TP, &s.clone().assign(TP, 1)));
        s.on_init(1, 1);
        assert!(
            s.is_next_sequence(TP, &s.clone().assign(TP, 1)),
            "a bump resets"
        );
    }
}
