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

use super::accumulator::{BatchSequence, ProducerBatch};
use super::sender::InitInFlight;
use super::{ClientKind, Outcome, Producer};
use crate::node::Cx;
use crate::protocol::{ErrorCode, InitProducerIdRequest, InitProducerIdResponse, Message};

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

/// The producer side of idempotence: InitProducerId, OutOfOrderSequence per client, epoch
/// bumps and fatal errors.
impl Producer {
    /// First InitProducerId, or a KIP-360 bump once nothing is in flight.
    pub(super) fn send_init_producer_id(&mut self, cx: &mut Cx) {
        let now = cx.now();
        let Some(idem) = self.idempotence.as_ref() else {
            return;
        };
        let can_send = idem.needs_init()
            && self.sender.init_in_flight.is_none()
            && self.sender.in_flight_is_empty()
            && now >= self.sender.init_next_attempt;
        if !can_send {
            return;
        }
        let (producer_id, producer_epoch) = idem.init_request_ids();
        let Some(broker) = self.pick_broker(now) else {
            return;
        };
        let correlation_id = self.sender.correlation_id();
        self.sender.init_in_flight = Some(InitInFlight {
            correlation_id,
            broker,
            deadline: now + self.config.request_timeout,
        });
        let request = InitProducerIdRequest {
            correlation_id,
            transactional_id: None,
            producer_id,
            producer_epoch,
            transaction_timeout: None,
            transaction_version_2: false,
        };
        cx.send(broker, Message::InitProducerIdRequest(request));
        self.connections.setup.connecting(broker, now);
    }

    pub(super) fn on_init_producer_id_response(&mut self, cx: &mut Cx, r: InitProducerIdResponse) {
        let expected = self.sender.init_in_flight;
        if expected.is_none_or(|i| i.correlation_id != r.correlation_id) {
            return;
        }
        self.sender.init_in_flight = None;
        let Some(idem) = self.idempotence.as_mut() else {
            return;
        };
        if r.error != ErrorCode::None {
            self.sender.init_next_attempt = cx.now() + self.config.retry_backoff;
            return;
        }
        if idem.producer_id() >= 0 {
            self.stats.epoch_bumps += 1;
        }
        idem.on_init(r.producer_id, r.producer_epoch);
        self.accumulator.clear_sequences();
    }

    /// OutOfOrderSequence, as each client handles it (the broker saw a sequence gap):
    ///
    /// - Java 2.5+ (KIP-360, `TransactionManager.canRetry` for an idempotent producer):
    ///   always retried; when the batch is the partition's next expected one
    ///   (`isNextSequence`: its base sequence is the last *acknowledged* sequence + 1, a real
    ///   gap) the epoch is bumped first, which restarts the sequences and lets the retry
    ///   through. A batch behind an unacknowledged earlier one, or below an acknowledged later
    ///   one (sent to a new leader while this one waited on the old leader's connection; the
    ///   broker forgot its sequence, and may well have written it), is retried as it is: a
    ///   bump would re-sequence a batch the log may already hold.
    /// - Java before 2.5 (`canRetry` / `handleFailedBatch`): retried unless it is the next
    ///   expected one (`isNextSequence`); then the batch fails with
    ///   OutOfOrderSequenceException and the producer id is reset (`resetProducerId`: a new
    ///   InitProducerId, new id, sequences from 0).
    /// - librdkafka (`rd_kafka_handle_idempotent_Produce_error`): behind an earlier request
    ///   (`base seq > next ack seq`) the batch is retried without counting a retry and the epoch
    ///   is bumped once the partition drains (`rd_kafka_idemp_drain_epoch_bump`); on the
    ///   head-of-line request it is a fatal error (`rd_kafka_idemp_set_fatal_error`): queued
    ///   messages are purged and every later `produce()` fails.
    /// - sarama (`handleSuccess`): not retriable; the messages fail and `returnError` bumps the
    ///   epoch locally (`bumpIdempotentProducerEpoch`: epoch + 1, sequences 0, no request).
    pub(super) fn on_out_of_order(&mut self, cx: &mut Cx, batch: ProducerBatch) {
        let error = ErrorCode::OutOfOrderSequenceNumber;
        let (stale, behind_earlier, next_sequence) =
            match (self.idempotence.as_ref(), batch.sequence.as_ref()) {
                (Some(idem), Some(seq)) => (
                    !idem.is_current(seq),
                    idem.out_of_order_is_retriable(batch.partition, seq),
                    idem.is_next_sequence(batch.partition, seq),
                ),
                _ => (false, false, false),
            };
        if stale {
            // Stamped before a bump: the retry gets a fresh sequence.
            self.retry_or_complete(cx, batch, error, "retries exhausted");
            return;
        }
        match self.config.client {
            ClientKind::Java if next_sequence && self.txn.is_some() => {
                // `canRetry` retries a real gap only for the idempotent producer; in a
                // transaction it is an abortable error (the bump follows the abort).
                self.fail_batch(cx, batch, error);
            }
            ClientKind::Java if self.java_at_least((2, 5)) => {
                if next_sequence {
                    self.bump_epoch();
                }
                self.retry_or_complete(cx, batch, error, "retries exhausted");
            }
            ClientKind::Java if !next_sequence => {
                self.retry_or_complete(cx, batch, error, "retries exhausted");
            }
            ClientKind::Java => {
                if let Some(idem) = self.idempotence.as_mut() {
                    idem.reset_producer_id();
                }
                self.fail_batch(cx, batch, error);
            }
            ClientKind::Librdkafka if behind_earlier => {
                self.bump_epoch();
                let mut batch = batch;
                batch.attempts = batch.attempts.saturating_sub(1); // incr_retry = 0
                self.retry_or_complete(cx, batch, error, "retries exhausted");
            }
            ClientKind::Librdkafka => {
                self.fail_batch(cx, batch, error);
                self.fatal_error(cx, error);
            }
            ClientKind::Sarama | ClientKind::KafkaGo => self.fail_batch(cx, batch, error),
        }
    }

    /// Whether the modelled Java client is at least `major.minor`.
    pub(super) fn java_at_least(&self, at_least: (u32, u32)) -> bool {
        super::config::version_at_least(&self.config.client_version, at_least)
    }

    /// librdkafka `rd_kafka_set_fatal_error`: the producer stops producing. Queued batches are
    /// purged (`RD_KAFKA_PURGE_F_QUEUE`), in-flight ones still get their delivery report, and
    /// every later send fails at once.
    pub(super) fn fatal_error(&mut self, cx: &mut Cx, error: ErrorCode) {
        if self.fatal.is_some() {
            return;
        }
        self.fatal = Some(error);
        for batch in self.accumulator.purge() {
            let outcome = if batch.maybe_written {
                Outcome::Unknown("purged after a fatal error")
            } else {
                Outcome::Fail(error)
            };
            self.complete_batch(cx, batch, outcome);
        }
    }

    pub(super) fn bump_epoch(&mut self) {
        if let Some(idem) = self.idempotence.as_mut() {
            idem.request_bump();
        }
    }

    /// sarama's local epoch bump. Retried messages keep the stamp they were first sent with
    /// (sarama assigns a sequence only when `msg.retries == 0`); new ones get the new epoch.
    pub(super) fn bump_epoch_locally(&mut self) {
        if let Some(idem) = self.idempotence.as_mut() {
            idem.bump_locally();
            self.stats.epoch_bumps += 1;
        }
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
