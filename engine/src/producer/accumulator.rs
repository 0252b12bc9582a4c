//! The record accumulator: per-partition queues of batches waiting to be sent.
//!
//! As in Java's `RecordAccumulator`, a send appends its record to the last open batch of its
//! partition, or opens a new one when the record does not fit `batch.size` (bytes) or the
//! records-per-batch limit (kafka-go `BatchSize`, librdkafka `batch.num.messages`). A batch
//! is *ready* to drain when it is full, when a later batch exists behind it, when it has
//! waited `linger.ms`, or when it is a retry whose backoff has passed. Buffer memory
//! (`buffer.memory`) is held from append until the batch completes, so a slow cluster makes
//! the application's sends block (see `mod.rs`).
//!
//! The accumulator only holds batches that are *not* in flight; the sender owns in-flight
//! batches and gives failed ones back with [`RecordAccumulator::reenqueue`].

use super::queues::PartitionQueues;
use crate::record::{Record, TopicPartition, BATCH_HEADER_BYTES};
use crate::time::{Duration, Instant};

/// Idempotence stamp of a batch: assigned when it is first drained, kept across retries
/// (until an epoch bump re-sequences it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchSequence {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
}

/// A batch of records for one partition, as the producer tracks it.
#[derive(Clone, Debug)]
pub struct ProducerBatch {
    /// Unique within the producer, for logs and assertions.
    pub id: u64,
    pub partition: TopicPartition,
    pub records: Vec<Record>,
    /// Modelled bytes on the wire (header + records).
    pub bytes: u32,
    pub created: Instant,
    /// How many times the batch was put on the wire.
    pub attempts: u32,
    /// A retry is not drained before this instant (`retry.backoff.ms`).
    pub retry_at: Instant,
    /// Some attempt may have been appended by the broker (timed out, connection lost, or an
    /// error after append): its failure is an unknown outcome, not a definite failure.
    pub maybe_written: bool,
    /// Closed batches take no more records (drained once, or full).
    pub closed: bool,
    pub sequence: Option<BatchSequence>,
    /// sarama: a retry is not drained until the client's metadata version exceeds this (the
    /// refresh `partitionProducer.updateLeader` makes before resending).
    pub awaits_metadata: Option<u64>,
}

impl ProducerBatch {
    /// Bytes of buffer memory the batch's records hold.
    pub fn record_bytes(&self) -> u64 {
        (self.bytes - BATCH_HEADER_BYTES) as u64
    }
}

/// Most records a new batch's vector is sized for up front (it grows beyond if it must).
const MAX_RECORDS_HINT: usize = 1024;

/// Limits the accumulator enforces (from [`super::config::ProducerConfig`]).
#[derive(Clone, Copy, Debug)]
pub struct AccumulatorLimits {
    pub batch_size: u32,
    pub batch_records: Option<u32>,
    pub linger: Duration,
    pub buffer_memory: u64,
}

/// Per-partition queues of batches not in flight, and the buffer memory in use.
#[derive(Debug)]
pub struct RecordAccumulator {
    limits: AccumulatorLimits,
    queues: PartitionQueues,
    /// Record bytes of every incomplete batch, queued or in flight.
    buffer_used: u64,
    next_batch_id: u64,
    /// Java `RecordAccumulator.beginFlush`: every batch is ready at once, lingering or not (a
    /// transactional producer flushes before EndTxn(commit)).
    flushing: bool,
    /// Records in the last batch drained: a new batch's vector starts with room for as many
    /// (within what `batch.size` lets in) instead of growing record by record.
    records_hint: usize,
}

impl RecordAccumulator {
    pub fn new(limits: AccumulatorLimits) -> RecordAccumulator {
        assert!(limits.batch_size > 0, "batch.size must be positive");
        RecordAccumulator {
            limits,
            queues: PartitionQueues::default(),
            buffer_used: 0,
            next_batch_id: 0,
            flushing: false,
            records_hint: 1,
        }
    }

    /// Whether a record of `wire_bytes` fits into `buffer.memory` now.
    pub fn has_room(&self, wire_bytes: u32) -> bool {
        self.buffer_used + wire_bytes as u64 <= self.limits.buffer_memory
    }

    pub fn buffer_used(&self) -> u64 {
        self.buffer_used
    }

    /// Append a record (the caller checked [`Self::has_room`]). Returns true when a new batch
    /// was opened for it (sticky partitioners switch partition on that in Java 2.4–3.2).
    pub fn append(&mut self, partition: TopicPartition, record: Record, now: Instant) -> bool {
        let size = record.wire_size();
        assert!(
            self.has_room(size),
            "accumulator {partition}: append beyond buffer.memory"
        );
        self.buffer_used += size as u64;
        let limits = self.limits;
        let queue = self.queues.entry(partition);
        if let Some(last) = queue.back_mut().filter(|b| fits(b, size, &limits)) {
            last.bytes += size;
            last.records.push(record);
            return false;
        }
        self.next_batch_id += 1;
        // What fits after this record (the hint is only a capacity: no effect on batching).
        let fit = (limits.batch_size.saturating_sub(BATCH_HEADER_BYTES) / size.max(1)) as usize;
        let fit = limits
            .batch_records
            .map_or(fit, |max| fit.min(max as usize))
            .clamp(1, MAX_RECORDS_HINT);
        let mut records = Vec::with_capacity(self.records_hint.clamp(1, fit));
        records.push(record);
        queue.push_back(ProducerBatch {
            id: self.next_batch_id,
            partition,
            records,
            bytes: BATCH_HEADER_BYTES + size,
            created: now,
            attempts: 0,
            retry_at: now,
            maybe_written: false,
            closed: false,
            sequence: None,
            awaits_metadata: None,
        });
        true
    }

    /// The instant the head batch of `partition` becomes ready, if it has one.
    pub fn ready_at(&self, partition: TopicPartition) -> Option<Instant> {
        let queue = self.queues.get(partition)?;
        let head = queue.front()?;
        if head.attempts > 0 || queue.len() > 1 || self.flushing || is_full(head, &self.limits) {
            return Some(head.retry_at);
        }
        Some(head.retry_at.max(head.created + self.limits.linger))
    }

    /// Whether `partition`'s head batch is closed to more records: it is full, or a later
    /// batch waits behind it (sarama's `wouldOverflow`: the next record did not fit).
    pub fn backed_up(&self, partition: TopicPartition) -> bool {
        self.queues
            .get(partition)
            .and_then(|q| {
                q.front()
                    .map(|head| q.len() > 1 || is_full(head, &self.limits))
            })
            .unwrap_or(false)
    }

    /// Partitions with queued batches, in order.
    pub fn partitions(&self) -> impl Iterator<Item = TopicPartition> + '_ {
        self.queues
            .iter()
            .filter(|(_, q)| !q.is_empty())
            .map(|(tp, _)| tp)
    }

    /// The head batch of `partition`, for inspection before draining.
    pub fn head(&self, partition: TopicPartition) -> Option<&ProducerBatch> {
        self.queues.get(partition)?.front()
    }

    /// Take the head batch of `partition` if it is ready at `now`; it is closed from then on.
    pub fn drain(&mut self, partition: TopicPartition, now: Instant) -> Option<ProducerBatch> {
        if self.ready_at(partition)? > now {
            return None;
        }
        let queue = self.queues.get_mut(partition)?;
        let mut batch = queue.pop_front()?;
        batch.closed = true;
        self.records_hint = batch.records.len();
        Some(batch)
    }

    /// Take the head batch of `partition` whether or not it is ready, unless it is a retry
    /// still backing off: a Java or sarama node that is ready drains every partition's head,
    /// lingering or not (see `drain.rs`). It is closed from then on.
    pub fn drain_head(&mut self, partition: TopicPartition, now: Instant) -> Option<ProducerBatch> {
        let queue = self.queues.get_mut(partition)?;
        if queue.front()?.retry_at > now {
            return None;
        }
        let mut batch = queue.pop_front()?;
        batch.closed = true;
        self.records_hint = batch.records.len();
        Some(batch)
    }

    /// Give back a batch whose attempt failed and that will be retried. Idempotent batches go
    /// in sequence order (Java's `insertInSequenceOrder`), others to the front, which is why a
    /// non-idempotent producer with several requests in flight can reorder its records.
    pub fn reenqueue(&mut self, batch: ProducerBatch) {
        let queue = self.queues.entry(batch.partition);
        match batch.sequence {
            Some(seq) => {
                let at = queue
                    .iter()
                    .position(|b| {
                        b.sequence
                            .is_none_or(|s| s.base_sequence > seq.base_sequence)
                    })
                    .unwrap_or(queue.len());
                queue.insert(at, batch);
            }
            None => queue.push_front(batch),
        }
    }

    /// A batch completed (acknowledged, failed or expired): its buffer memory is free.
    pub fn release(&mut self, batch: &ProducerBatch) {
        let bytes = batch.record_bytes();
        assert!(
            self.buffer_used >= bytes,
            "accumulator {}: released more buffer than held",
            batch.partition
        );
        self.buffer_used -= bytes;
    }

    /// Remove queued batches created at or before `cutoff` (`delivery.timeout.ms`), oldest
    /// first. The caller completes and releases them.
    pub fn expire(&mut self, cutoff: Instant) -> Vec<ProducerBatch> {
        let mut expired = Vec::new();
        for queue in self.queues.values_mut() {
            while queue.front().is_some_and(|b| b.created <= cutoff) {
                expired.extend(queue.pop_front());
            }
        }
        expired
    }

    /// Take every queued batch (librdkafka's purge of the queues after a fatal error).
    pub fn purge(&mut self) -> Vec<ProducerBatch> {
        let mut purged = Vec::new();
        for queue in self.queues.values_mut() {
            purged.extend(queue.drain(..));
        }
        purged
    }

    /// Take the queued batches of the partitions `refused` names whose retry backoff has
    /// passed, in queue order: a sarama transactional producer in an error state refuses
    /// every produce set before it is sent (`transaction.rs`).
    pub fn take_due(
        &mut self,
        now: Instant,
        refused: impl Fn(TopicPartition) -> bool,
    ) -> Vec<ProducerBatch> {
        let mut taken = Vec::new();
        for (tp, queue) in self.queues.iter_mut() {
            if !refused(tp) {
                continue;
            }
            while queue.front().is_some_and(|b| b.retry_at <= now) {
                let mut batch = queue.pop_front().expect("checked");
                batch.closed = true;
                taken.push(batch);
            }
        }
        taken
    }

    /// Java `beginFlush` / `awaitFlushCompletion`: while set, lingering batches are ready.
    pub fn set_flushing(&mut self, flushing: bool) {
        self.flushing = flushing;
    }

    /// Java `RecordAccumulator.abortUndrainedBatches`: take every batch never drained (an
    /// aborting transaction fails them). Batches drained before and queued again for a retry
    /// stay: the broker may have appended them, so they are resent until their status is
    /// known (Sender.maybeSendAndPollTransactionalRequest).
    pub fn take_undrained(&mut self) -> Vec<ProducerBatch> {
        let mut taken = Vec::new();
        for queue in self.queues.values_mut() {
            let (undrained, kept): (Vec<_>, Vec<_>) = queue.drain(..).partition(|b| !b.closed);
            taken.extend(undrained);
            queue.extend(kept);
        }
        taken
    }

    /// Drop every idempotence stamp of queued batches (after an epoch bump they get new ones).
    pub fn clear_sequences(&mut self) {
        for batch in self.queues.values_mut().flatten() {
            batch.sequence = None;
        }
    }

    /// Records waiting in the accumulator (not in flight).
    pub fn queued_records(&self) -> usize {
        self.queues
            .values()
            .flatten()
            .map(|b| b.records.len())
            .sum()
    }
}

fn is_full(batch: &ProducerBatch, limits: &AccumulatorLimits) -> bool {
    batch.bytes >= limits.batch_size
        || limits
            .batch_records
            .is_some_and(|max| batch.records.len() as u32 >= max)
}

fn fits(batch: &ProducerBatch, size: u32, limits: &AccumulatorLimits) -> bool {
    !batch.closed
        && batch.bytes + size <= limits.batch_size
        && limits
            .batch_records
            .is_none_or(|max| (batch.records.len() as u32) < max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{TopicId, ValueId};
    use crate::time::ms;

    const TP: TopicPartition = TopicPartition::new(TopicId(0), 0);

    fn record(v: u64, size: u32) -> Record {
        Record {
            value: ValueId(v),
            key: None,
            size,
            create_time: Instant::ZERO,
            payload: None,
        }
    }

    fn acc(batch_size: u32, batch_records: Option<u32>, linger_ms: u64) -> RecordAccumulator {
        RecordAccumulator::new(AccumulatorLimits {
            batch_size,
            batch_records,
            linger: ms(linger_ms),
            buffer_memory: 10_000,
        })
    }

    #[test]
    fn records_fill_a_batch_up_to_batch_size_bytes() {
        // 61-byte header + 108 bytes per 100-byte record: two fit in 300 bytes, not three.
        let mut a = acc(300, None, 0);
        assert!(a.append(TP, record(1, 100), Instant::ZERO));
        assert!(!a.append(TP, record(2, 100), Instant::ZERO));
        assert!(a.append(TP, record(3, 100), Instant::ZERO));
        let first = a.drain(TP, Instant::ZERO).unwrap();
        assert_eq!(first.records.len(), 2);
        assert_eq!(first.bytes, 61 + 2 * 108);
    }

    #[test]
    fn record_limit_closes_batch_kafka_go_batch_size() {
        let mut a = acc(1 << 20, Some(2), 1000);
        for v in 0..5 {
            a.append(TP, record(v, 10), Instant::ZERO);
        }
        // Full batches are ready at once even though linger is 1 s.
        assert_eq!(a.drain(TP, Instant::ZERO).unwrap().records.len(), 2);
        assert_eq!(a.drain(TP, Instant::ZERO).unwrap().records.len(), 2);
        assert!(a.drain(TP, Instant::ZERO).is_none(), "last batch lingers");
        assert!(a.drain(TP, Instant::from_millis(1000)).is_some());
    }

    #[test]
    fn linger_delays_a_partial_batch() {
        let mut a = acc(16_384, None, 5);
        a.append(TP, record(1, 100), Instant::from_millis(10));
        assert_eq!(a.ready_at(TP), Some(Instant::from_millis(15)));
        assert!(a.drain(TP, Instant::from_millis(14)).is_none());
        assert!(a.drain(TP, Instant::from_millis(15)).is_some());
    }

    #[test]
    fn buffer_memory_is_held_until_release() {
        let mut a = acc(16_384, None, 0);
        assert!(a.has_room(9_000));
        a.append(TP, record(1, 8_992), Instant::ZERO); // 9000 wire bytes
        assert!(!a.has_room(1_001));
        assert!(a.has_room(1_000));
        let b = a.drain(TP, Instant::ZERO).unwrap();
        assert!(!a.has_room(1_001), "in-flight batches still hold memory");
        a.release(&b);
        assert_eq!(a.buffer_used(), 0);
    }

    #[test]
    fn reenqueue_front_without_sequence_in_order_with_it() {
        let mut a = acc(100, None, 0);
        for v in 1..=3 {
            a.append(TP, record(v, 80), Instant::ZERO);
        }
        let stamp = |s| BatchSequence {
            producer_id: 1,
            producer_epoch: 0,
            base_sequence: s,
        };
        let mut b1 = a.drain(TP, Instant::ZERO).unwrap();
        let mut b2 = a.drain(TP, Instant::ZERO).unwrap();
        // Without idempotence: re-enqueued in failure order, each to the front -> 2, 1, 3.
        a.reenqueue(b1.clone());
        a.reenqueue(b2.clone());
        let order: Vec<u64> = std::iter::from_fn(|| a.drain(TP, Instant::ZERO))
            .map(|b| b.records[0].value.0)
            .collect();
        assert_eq!(order, vec![2, 1, 3]);
        // With sequences: back in sequence order whatever the failure order.
        b1.sequence = Some(stamp(0));
        b2.sequence = Some(stamp(1));
        a.reenqueue(b2);
        a.reenqueue(b1);
        let order: Vec<u64> = std::iter::from_fn(|| a.drain(TP, Instant::ZERO))
            .map(|b| b.records[0].value.0)
            .collect();
        assert_eq!(order, vec![1, 2]);
    }

    #[test]
    fn expire_takes_old_batches() {
        let mut a = acc(100, None, 0);
        a.append(TP, record(1, 80), Instant::from_millis(1));
        a.append(TP, record(2, 80), Instant::from_millis(5));
        let gone = a.expire(Instant::from_millis(2));
        assert_eq!(gone.len(), 1);
        assert_eq!(a.queued_records(), 1);
    }
}
