//! How each client turns accumulated batches into produce requests: which batches go
//! together, and when.
//!
//! The clients differ, and the difference shows in request counts, in how much a lingering
//! batch waits, and in how many partitions one slow response holds up:
//!
//! - **Java** (`RecordAccumulator.ready` / `drain` / `drainBatchesForOneNode`, driven by
//!   `Sender.sendProducerData`): readiness is decided per *node*. A leader is ready when any of
//!   its partitions has a sendable head batch (full, a second batch queued behind it,
//!   `linger.ms` expired, or the buffer pool has threads waiting: `exhausted`), unless that
//!   partition is muted (`max.in.flight.requests.per.connection = 1`) or its retry is backing
//!   off. The drain of a ready node then takes the head batch of *every* partition it leads,
//!   lingering or not, up to `max.request.size`, starting at the node's `drainIndex` (kept per
//!   node so that the partitions a full request leaves behind go first next time); a partition
//!   whose idempotent retry must wait (`shouldStopDrainBatchesForPartition`) ends the drain.
//!   One request per ready node per `sendProducerData`; the sender loops while it can send.
//! - **sarama** (`async_producer.go`: `brokerProducer.run`, `produce_set.go`): every broker has
//!   one `produceSet` holding at most one batch per partition; the whole set is flushed as one
//!   request when `readyToFlush` says so, counted over the whole set: with `Flush.Frequency`,
//!   `Flush.Bytes` and `Flush.Messages` all zero (the default) as soon as it is non-empty,
//!   else once it holds `Flush.Messages` records or `Flush.Bytes` bytes; when the
//!   `Flush.Frequency` timer, started by the first message into an empty set, fires; or when
//!   the next message would overflow it (`wouldOverflow`: a partition's batch is full, or the
//!   set holds `Flush.MaxMessages`). The request takes every partition's head batch, in
//!   partition order (sarama walks Go maps; the order inside a request changes nothing).
//! - **kafka-go** (`writer.go`: one `partitionWriter` per partition, its own batch queue and
//!   a goroutine writing one batch at a time; `ProduceRequest` in `produce.go` names a single
//!   partition): one partition's batch per request, each partition ready on its own.
//! - **librdkafka** (`rdkafka_broker.c` `rd_kafka_toppar_producer_serve` →
//!   `rd_kafka_ProduceRequest(rkb, rktp, …)` in `rdkafka_request.c`): also one partition's
//!   message set per request; `linger.ms`, `batch.num.messages` and `batch.size` apply per
//!   partition. Multi-partition requests are an open request upstream (confluentinc/librdkafka
//!   issue 1700; PRs 2216, 4780 and 4868 were not merged).

use super::{ClientKind, Producer};
use crate::node::NodeId;
use crate::record::TopicPartition;
use crate::time::Instant;

use super::accumulator::ProducerBatch;

/// How a client composes produce requests (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Composition {
    /// Java: a ready node drains the head batch of every partition it leads, from a rotating
    /// start (`drainIndex`).
    NodeDrain,
    /// sarama: a broker's whole produce set goes as one request.
    BrokerSet,
    /// kafka-go and librdkafka: one partition's batch per request.
    OnePartition,
}

impl Composition {
    pub fn of(client: ClientKind) -> Composition {
        match client {
            ClientKind::Java => Composition::NodeDrain,
            ClientKind::Sarama => Composition::BrokerSet,
            ClientKind::KafkaGo | ClientKind::Librdkafka => Composition::OnePartition,
        }
    }
}

/// Where a node's next drain starts (Java's `nodesDrainIndex`), per broker.
#[derive(Debug, Default)]
pub(super) struct DrainIndex {
    by_node: std::collections::BTreeMap<NodeId, usize>,
}

impl Producer {
    /// Drain ready batches into produce requests, per leader with a free in-flight slot, as
    /// the client composes them.
    pub(super) fn drain(&mut self, cx: &mut crate::node::Cx) {
        if self.idempotence.as_ref().is_some_and(|i| !i.ready()) {
            return;
        }
        let now = cx.now();
        // The usable leaders of queued partitions, in node order (a handful: a sorted vector).
        let mut brokers: Vec<NodeId> = Vec::new();
        let mut stale = false;
        for tp in self.accumulator.partitions() {
            match self.metadata.leader(tp) {
                Some(leader) if self.broker_usable(leader, now) => {
                    if let Err(at) = brokers.binary_search(&leader) {
                        brokers.insert(at, leader);
                    }
                }
                // Java `NetworkClient.ready`: the batches wait for the connection. A broker
                // that refuses connections (down, see metadata.rs) fails every reconnect
                // attempt, and each failure requests a metadata update.
                // (kafka-go's failed dials refresh nothing: `Transport` refreshes periodically.)
                Some(leader) if !self.metadata.is_up(leader, now) => {
                    stale |= self.config.client != ClientKind::KafkaGo;
                }
                Some(_) => {}
                None => stale = true,
            }
        }
        if stale {
            // After the walk: nothing the walk reads depends on staleness.
            self.metadata.mark_stale();
        }
        for broker in brokers {
            while self.sender.requests_to(broker) < self.config.max_in_flight as usize {
                let batches = match Composition::of(self.config.client) {
                    Composition::NodeDrain => {
                        if !self.node_ready(broker, now) {
                            break;
                        }
                        self.drain_node(broker, now)
                    }
                    Composition::BrokerSet => {
                        if !self.produce_set_ready(broker, now) {
                            break;
                        }
                        self.drain_node(broker, now)
                    }
                    Composition::OnePartition => self.drain_one_partition(broker, now),
                };
                if batches.is_empty() {
                    break;
                }
                self.send_produce(cx, broker, batches);
            }
        }
    }

    /// Every partition `broker` leads per the client's metadata, in partition order (Java's
    /// `Cluster.partitionsForNode`, built from the metadata response's order), without
    /// collecting them (readiness asks on every poll).
    fn partitions_led_by_iter(&self, broker: NodeId) -> impl Iterator<Item = TopicPartition> + '_ {
        let topic = self.workload.spec().topic;
        let count = self.metadata.partition_count().unwrap_or(0);
        (0..count)
            .map(move |p| TopicPartition::new(topic, p))
            .filter(move |tp| self.metadata.leader(*tp) == Some(broker))
    }

    /// Java `RecordAccumulator.partitionReady` / `batchReady` for one node: some partition it
    /// leads has a sendable head batch and is neither muted nor backing off. `exhausted`
    /// (threads blocked on `buffer.memory`) makes every lingering batch sendable in Java;
    /// sarama has no such rule (its input channel simply blocks).
    fn node_ready(&self, broker: NodeId, now: Instant) -> bool {
        let exhausted = self.config.client == ClientKind::Java && self.blocked_on_memory();
        self.partitions_led_by_iter(broker).any(|tp| {
            if self.muted(tp) || self.awaits_metadata(tp) {
                return false;
            }
            let Some(head) = self.accumulator.head(tp) else {
                return false;
            };
            if head.retry_at > now {
                return false; // backingOff: not sendable whatever else holds
            }
            exhausted || self.accumulator.ready_at(tp).is_some_and(|at| at <= now)
        })
    }

    /// sarama `brokerProducer.run`: whether the broker's produce set is flushed now
    /// (`readyToFlush`, the `Flush.Frequency` timer, or an overflowing next message). The set
    /// is the head batch of every partition the broker leads that is not muted, waiting for
    /// its metadata refresh, or backing off; a retry enters it when its backoff ends.
    fn produce_set_ready(&self, broker: NodeId, now: Instant) -> bool {
        let flush = self.config.sarama_flush;
        let frequency = self.config.linger;
        let (mut records, mut bytes) = (0u64, 0u64);
        let mut first_entry: Option<Instant> = None;
        let mut overflow = false;
        for tp in self.partitions_led_by_iter(broker) {
            if self.muted(tp) || self.awaits_metadata(tp) {
                continue;
            }
            let Some(head) = self.accumulator.head(tp) else {
                continue;
            };
            if head.retry_at > now {
                continue;
            }
            records += head.records.len() as u64;
            bytes += head.bytes as u64;
            let entered = if head.attempts > 0 {
                head.retry_at
            } else {
                head.created
            };
            first_entry = Some(first_entry.map_or(entered, |t| t.min(entered)));
            overflow |= self.accumulator.backed_up(tp);
        }
        let Some(first_entry) = first_entry else {
            return false;
        };
        let as_fast_as_possible = frequency.is_zero() && flush.bytes == 0 && flush.messages == 0;
        as_fast_as_possible
            || overflow
            || (flush.messages > 0 && records >= flush.messages as u64)
            || (flush.bytes > 0 && bytes >= flush.bytes as u64)
            || (flush.max_messages > 0 && records >= flush.max_messages as u64)
            || (!frequency.is_zero() && first_entry + frequency <= now)
    }

    /// Whether the application is blocked because `buffer.memory` is full (Java's
    /// `BufferPool.queued() > 0`).
    fn blocked_on_memory(&self) -> bool {
        self.blocked.is_some() && self.metadata.partition_count().is_some()
    }

    /// Java `isMuted`: with `max.in.flight.requests.per.connection = 1` (kafka-go always) a
    /// partition with a batch in flight sends nothing more.
    fn muted(&self, tp: TopicPartition) -> bool {
        self.config.one_batch_per_partition_in_flight && self.sender.partition_busy(tp)
    }

    /// sarama: a retry is not drained until the client's metadata version exceeds the one it
    /// failed under (`partitionProducer.updateLeader` refreshes before resending).
    fn awaits_metadata(&self, tp: TopicPartition) -> bool {
        self.accumulator
            .head(tp)
            .and_then(|b| b.awaits_metadata)
            .is_some_and(|v| self.metadata.version() <= v)
    }

    /// One request for a ready node: the head batch of every partition it leads that is not
    /// muted or backing off, lingering or not, within `max.request.size` (a single batch
    /// larger than that still goes alone, as in Java). Java starts at the node's drain index
    /// and stops at a partition whose idempotent retry must wait; sarama takes every
    /// partition in order and skips such a partition.
    fn drain_node(&mut self, broker: NodeId, now: Instant) -> Vec<ProducerBatch> {
        let mut parts = std::mem::take(&mut self.led_scratch);
        parts.clear();
        parts.extend(self.partitions_led_by_iter(broker));
        let batches = self.drain_node_of(broker, &parts, now);
        self.led_scratch = parts;
        batches
    }

    /// [`Self::drain_node`] over `parts`, the partitions `broker` leads in partition order.
    fn drain_node_of(
        &mut self,
        broker: NodeId,
        parts: &[TopicPartition],
        now: Instant,
    ) -> Vec<ProducerBatch> {
        if parts.is_empty() {
            return Vec::new();
        }
        let java = Composition::of(self.config.client) == Composition::NodeDrain;
        let start = if java {
            self.sender
                .drain_index
                .by_node
                .get(&broker)
                .copied()
                .unwrap_or(0)
                % parts.len()
        } else {
            0
        };
        let mut batches: Vec<ProducerBatch> = Vec::with_capacity(parts.len());
        let mut bytes = 0u32;
        let mut records = 0usize;
        for step in 0..parts.len() {
            let index = (start + step) % parts.len();
            let tp = parts[index];
            if java {
                // `updateDrainIndex` before anything is checked: a drain that stops here
                // resumes here.
                self.sender.drain_index.by_node.insert(broker, index);
            }
            if self.muted(tp) || self.awaits_metadata(tp) {
                continue;
            }
            let Some(head) = self.accumulator.head(tp) else {
                continue;
            };
            if head.retry_at > now {
                continue; // shouldBackoff
            }
            if !batches.is_empty() && bytes + head.bytes > self.config.max_request_size {
                break;
            }
            let max_messages = self.config.sarama_flush.max_messages as usize;
            if !java
                && max_messages > 0
                && !batches.is_empty()
                && records + head.records.len() > max_messages
            {
                break; // sarama: a set holds at most Flush.MaxMessages
            }
            if !self.may_drain_idempotent(tp) {
                if java {
                    break; // shouldStopDrainBatchesForPartition
                }
                continue;
            }
            let batch = self.take_head(tp, now);
            bytes += batch.bytes;
            records += batch.records.len();
            batches.push(batch);
        }
        batches
    }

    /// One request holding the first ready batch of one partition `broker` leads (kafka-go,
    /// librdkafka).
    fn drain_one_partition(&mut self, broker: NodeId, now: Instant) -> Vec<ProducerBatch> {
        let first = self.partitions_led_by_iter(broker).find(|&tp| {
            !self.muted(tp)
                && !self.awaits_metadata(tp)
                && self.accumulator.ready_at(tp).is_some_and(|at| at <= now)
                && self.may_drain_idempotent(tp)
        });
        match first {
            Some(tp) => vec![self.take_head(tp, now)],
            None => Vec::new(),
        }
    }

    /// Take the head batch of `tp` (checked drainable) and stamp its sequence if idempotent.
    fn take_head(&mut self, tp: TopicPartition, now: Instant) -> ProducerBatch {
        let mut batch = self
            .accumulator
            .drain_head(tp, now)
            .expect("the head batch was just checked");
        if let Some(idem) = self.idempotence.as_mut() {
            if batch.sequence.is_none() {
                batch.sequence = Some(idem.assign(tp, batch.records.len() as u32));
            }
        }
        batch
    }

    /// A retried idempotent batch goes only when it is its partition's earliest outstanding
    /// one; one stamped under an older epoch is re-stamped when drained.
    fn may_drain_idempotent(&self, tp: TopicPartition) -> bool {
        if self.txn.as_ref().is_some_and(|t| !t.send_allowed(tp)) {
            return false; // Java `isSendToPartitionAllowed`: not added to the transaction yet
        }
        let Some(idem) = self.idempotence.as_ref() else {
            return true;
        };
        let Some(seq) = self.accumulator.head(tp).and_then(|b| b.sequence) else {
            return true;
        };
        idem.may_drain(tp, &seq)
    }
}

#[cfg(test)]
#[path = "drain_tests.rs"]
mod tests;
