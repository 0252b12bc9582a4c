//! The sender: sends the produce requests `drain.rs` composes, within
//! `max.in.flight.requests.per.connection`, and handles what comes back.
//!
//! As Java's `Sender`: a request carries at most one batch per partition and at most
//! `max.request.size` bytes (which batches go together is per client, see `drain.rs`); a response error that is retriable puts the batch back into the
//! accumulator after `retry.backoff.ms` while `retries` and `delivery.timeout.ms` allow;
//! errors that say the leader moved refresh metadata. A request that times out
//! (`request.timeout.ms`) closes the connection, failing every request in flight on it (Java's
//! `NetworkClient` disconnects the node), and all of those batches are then *maybe written*:
//! the broker may have appended them and only the response was lost. That is how retries
//! create duplicates without idempotence. With `acks=0` no response comes: a batch counts as
//! acknowledged once it is on the wire, with an unknown offset.
//!
//! The Metadata requests are in `metadata.rs`; InitProducerId, OutOfOrderSequence and the
//! epoch bumps in `idempotence.rs` (Java's `TransactionManager` for an idempotent producer).

use super::metadata::{refreshes_on, sarama_retriable};
use super::{ClientKind, Outcome, Producer, OFFSET_UNKNOWN};
use crate::compression::Compression;
use crate::node::{Cx, NodeId};
use crate::protocol::{
    Acks, ErrorCode, Message, PartitionProduceResponse, ProduceRequest, ProduceResponse,
};
use crate::record::{RecordBatch, TopicPartition};
use crate::time::{Duration, Instant};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::accumulator::ProducerBatch;

/// A produce request awaiting its response.
#[derive(Debug)]
struct InFlightRequest {
    broker: NodeId,
    deadline: Instant,
    batches: Vec<ProducerBatch>,
}

/// An outstanding InitProducerId request.
#[derive(Clone, Copy, Debug)]
pub(super) struct InitInFlight {
    pub(super) correlation_id: u64,
    pub(super) broker: NodeId,
    pub(super) deadline: Instant,
}

/// Request bookkeeping of the sender.
#[derive(Debug, Default)]
pub(super) struct Sender {
    next_correlation_id: u64,
    in_flight: BTreeMap<u64, InFlightRequest>,
    /// Batches in flight per partition (for the one-batch-per-partition rule).
    partition_in_flight: BTreeMap<TopicPartition, u32>,
    pub(super) init_in_flight: Option<InitInFlight>,
    pub(super) init_next_attempt: Instant,
    /// Java's per-node drain start (`drain.rs`).
    pub(super) drain_index: super::drain::DrainIndex,
}

impl Sender {
    /// Number requests from `base` on (a hosted producer shares its node with a consumer).
    pub(super) fn set_correlation_base(&mut self, base: u64) {
        self.next_correlation_id = base;
    }

    pub(super) fn correlation_id(&mut self) -> u64 {
        self.next_correlation_id += 1;
        self.next_correlation_id
    }

    pub(super) fn in_flight_is_empty(&self) -> bool {
        self.in_flight.is_empty()
    }

    /// Take every produce request in flight (the producer is being closed): per request its
    /// broker and batches.
    pub(super) fn take_all_in_flight(&mut self) -> Vec<(NodeId, Vec<ProducerBatch>)> {
        let taken = std::mem::take(&mut self.in_flight);
        self.partition_in_flight.clear();
        taken.into_values().map(|r| (r.broker, r.batches)).collect()
    }

    /// Remove and return the produce requests in flight to `broker`, oldest first.
    fn take_requests_to(&mut self, broker: NodeId) -> Vec<InFlightRequest> {
        let ids: Vec<u64> = self
            .in_flight
            .iter()
            .filter(|(_, r)| r.broker == broker)
            .map(|(id, _)| *id)
            .collect();
        ids.iter()
            .map(|id| self.in_flight.remove(id).expect("request just listed"))
            .collect()
    }

    pub(super) fn requests_to(&self, broker: NodeId) -> usize {
        self.in_flight
            .values()
            .filter(|r| r.broker == broker)
            .count()
    }

    /// The earliest request deadline (produce or InitProducerId).
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        let produce = self.in_flight.values().map(|r| r.deadline).min();
        let init = self.init_in_flight.map(|i| i.deadline);
        produce.into_iter().chain(init).min()
    }

    pub(super) fn init_next_attempt(&self) -> Option<Instant> {
        self.init_in_flight
            .is_none()
            .then_some(self.init_next_attempt)
    }

    pub(super) fn partition_busy(&self, tp: TopicPartition) -> bool {
        self.partition_in_flight.get(&tp).is_some_and(|n| *n > 0)
    }

    fn track(&mut self, tp: TopicPartition, delta: i32) {
        let n = self.partition_in_flight.entry(tp).or_default();
        *n = n
            .checked_add_signed(delta)
            .expect("partition in-flight count underflow");
    }
}

impl Producer {
    /// Give up on requests past `request.timeout.ms` by closing their connection, as every
    /// modelled client does: Java `NetworkClient.handleTimedOutRequests` closes the node's
    /// channel and fails everything in flight to it; sarama's `Broker.responseReceiver` marks
    /// the connection dead on `Net.ReadTimeout` and `brokerProducer.handleError` closes it and
    /// retries every pending batch; kafka-go's `conn.run` closes the connection on any round
    /// trip error (the `WriteTimeout` deadline); librdkafka's `rd_kafka_broker_timeout_scan`
    /// disconnects once `socket.max.fails` (default 1) requests timed out. A request given up
    /// without closing would still be delivered (TCP retransmits across a partition) and its
    /// stale response would arrive on a live connection; closing loses both.
    pub(super) fn expire_requests(&mut self, cx: &mut Cx) {
        for broker in self.connections.setup.timed_out_in(cx) {
            cx.close_connection(broker);
            self.on_not_connected(cx, broker, "connection setup timeout");
        }
        let now = cx.now();
        let mut timed_out: BTreeSet<NodeId> = self
            .sender
            .in_flight
            .values()
            .filter(|r| r.deadline <= now)
            .map(|r| r.broker)
            .collect();
        timed_out.extend(
            self.metadata
                .in_flight
                .filter(|m| m.deadline <= now)
                .map(|m| m.broker),
        );
        timed_out.extend(
            self.sender
                .init_in_flight
                .filter(|i| i.deadline <= now)
                .map(|i| i.broker),
        );
        if let Some(t) = self.txn.as_ref() {
            if t.deadline().is_some_and(|d| d <= now) {
                timed_out.extend(self.txn_in_flight_broker());
            }
        }
        for broker in timed_out {
            cx.close_connection(broker);
            self.on_connection_lost(cx, broker, "request timeout");
        }
    }

    /// A broker connection ended (reset by the peer, or closed by us after a timeout): every
    /// request in flight on it fails with an unknown outcome, metadata is refreshed (Java
    /// `DefaultMetadataUpdater.handleServerDisconnect`), and the broker is not connected
    /// again before the client's reconnect backoff (`connection.rs`).
    pub(super) fn on_connection_lost(&mut self, cx: &mut Cx, broker: NodeId, reason: &'static str) {
        for request in self.sender.take_requests_to(broker) {
            for mut batch in request.batches {
                self.sender.track(batch.partition, -1);
                batch.maybe_written = true;
                self.retry_or_complete(cx, batch, ErrorCode::NetworkException, reason);
            }
        }
        self.forget_connection(cx, broker, reason == "connection reset");
    }

    /// What every end of a connection to `broker` does besides its produce requests: the
    /// Metadata, InitProducerId and transaction requests on it are gone, metadata is refreshed
    /// (kafka-go's `Transport` does not refresh on a connection error), a reset marks the
    /// broker suspect, and the reconnect backoff grows.
    fn forget_connection(&mut self, cx: &mut Cx, broker: NodeId, reset: bool) {
        if self.metadata.in_flight.is_some_and(|m| m.broker == broker) {
            self.metadata.in_flight = None;
        }
        if self
            .sender
            .init_in_flight
            .is_some_and(|i| i.broker == broker)
        {
            self.sender.init_in_flight = None;
        }
        let now = cx.now();
        self.txn_connection_lost(cx, broker);
        let refresh = self.config.client != ClientKind::KafkaGo;
        self.metadata.connection_failed(broker, reset, refresh, now);
        self.connections.disconnected(broker, now, cx.rng());
    }

    /// A connection attempt to `broker` was refused (its process is down; its host answered
    /// with a reset): nothing sent on that connection reached it, so no batch on it was
    /// written. Java's `NetworkClient` sends nothing before a connection is established, and
    /// librdkafka keeps messages queued while a broker is down: their batches go back to the
    /// queue as if never sent, without an attempt (`Sender.sendProducerData` drains only ready
    /// nodes; `rd_kafka_broker_state_change` to DOWN). sarama's failed `Broker.Open` fails the
    /// produce set, and kafka-go's failed dial fails the write: both count a retry
    /// (`brokerProducer.handleError`, `Writer.produce`), of a batch known not written.
    /// Otherwise the same as a lost connection: metadata is refreshed and the reconnect
    /// backoff grows.
    pub(super) fn on_connection_refused(&mut self, cx: &mut Cx, broker: NodeId) {
        self.on_not_connected(cx, broker, "connection refused");
    }

    /// A connection to `broker` never got established: refused, or given up after the
    /// client's connection setup timeout (`connection_setup.rs`; Java
    /// `NetworkClient.handleTimedOutConnections` closes it, and nothing was sent on it; the
    /// host's kernel reported the handshake incomplete, so nothing sent on it reached the
    /// broker, and closing it loses it all). What [`Producer::on_connection_refused`] says
    /// holds for both.
    fn on_not_connected(&mut self, cx: &mut Cx, broker: NodeId, reason: &'static str) {
        let counts_a_retry = matches!(self.config.client, ClientKind::Sarama | ClientKind::KafkaGo);
        for request in self.sender.take_requests_to(broker) {
            for mut batch in request.batches {
                self.sender.track(batch.partition, -1);
                if counts_a_retry {
                    self.retry_or_complete(cx, batch, ErrorCode::NetworkException, reason);
                } else {
                    assert!(batch.attempts > 0, "a batch in flight was sent");
                    if batch.attempts > 1 {
                        self.stats.retries -= 1;
                    }
                    batch.attempts -= 1;
                    self.accumulator.reenqueue(batch);
                }
            }
        }
        self.forget_connection(cx, broker, true);
    }

    /// Whether a request may go to `broker` now: it is not known down and not backing off.
    pub(super) fn broker_usable(&self, broker: NodeId, now: Instant) -> bool {
        self.metadata.is_up(broker, now) && self.connections.can_connect(broker, now)
    }

    /// A broker to send a Metadata or InitProducerId request to, if any may be connected.
    pub(super) fn pick_broker(&mut self, now: Instant) -> Option<NodeId> {
        let connections = &self.connections;
        self.metadata
            .pick_broker(now, |b| connections.can_connect(b, now))
    }

    /// Fail queued batches older than `delivery.timeout.ms`.
    pub(super) fn expire_queued_batches(&mut self, cx: &mut Cx) {
        let Some(timeout) = self.config.delivery_timeout else {
            return;
        };
        let now = cx.now();
        if now.as_nanos() < crate::time::duration_nanos(timeout) {
            return;
        }
        let cutoff = Instant::from_nanos(now.as_nanos() - crate::time::duration_nanos(timeout));
        for batch in self.accumulator.expire(cutoff) {
            let outcome = if batch.maybe_written {
                Outcome::Unknown("delivery timeout")
            } else {
                Outcome::Fail(ErrorCode::RequestTimedOut)
            };
            self.complete_batch(cx, batch, outcome);
        }
    }

    pub(super) fn send_produce(
        &mut self,
        cx: &mut Cx,
        broker: NodeId,
        mut batches: Vec<ProducerBatch>,
    ) {
        let correlation_id = self.sender.correlation_id();
        let transactional = self.txn.is_some();
        let wire: Vec<(TopicPartition, RecordBatch)> = batches
            .iter_mut()
            .map(|b| {
                (
                    b.partition,
                    to_record_batch(b, self.compression, transactional),
                )
            })
            .collect();
        for batch in &mut batches {
            batch.attempts += 1;
            if batch.attempts > 1 {
                self.stats.retries += 1;
            }
        }
        self.stats.produce_requests += 1;
        let request = ProduceRequest {
            correlation_id,
            acks: self.config.acks,
            timeout: self.config.ack_timeout,
            transactional_id: self.txn.as_ref().map(|t| t.transactional_id().to_string()),
            batches: wire,
        };
        cx.send(broker, Message::ProduceRequest(request));
        self.connections.setup.connecting(broker, cx.now());
        if self.config.acks == Acks::None {
            // acks=0: the broker sends no response; the record counts as sent.
            for batch in batches {
                let outcome = Outcome::Ok {
                    base_offset: OFFSET_UNKNOWN,
                };
                self.complete_batch(cx, batch, outcome);
            }
            return;
        }
        for batch in &batches {
            self.sender.track(batch.partition, 1);
        }
        let deadline = self.produce_deadline(cx.now(), &batches);
        let request = InFlightRequest {
            broker,
            deadline,
            batches,
        };
        self.sender.in_flight.insert(correlation_id, request);
    }

    /// When a produce request sent at `now` is given up: after the request timeout, and for
    /// librdkafka no later than its first message's `message.timeout.ms` (100 ms if that has
    /// already passed: `rd_kafka_ProduceRequest` sets the request's absolute timeout from the
    /// first message, "capped by socket.timeout.ms").
    fn produce_deadline(&self, now: Instant, batches: &[ProducerBatch]) -> Instant {
        let socket = now + self.config.request_timeout;
        let message_timeout = self.config.delivery_timeout.filter(|d| !d.is_zero());
        match (self.config.client, message_timeout, batches.first()) {
            (ClientKind::Librdkafka, Some(timeout), Some(first)) => {
                let expires = first.created + timeout;
                if expires <= now {
                    now + Duration::from_millis(100)
                } else {
                    socket.min(expires)
                }
            }
            _ => socket,
        }
    }

    pub(super) fn on_produce_response(&mut self, cx: &mut Cx, from: NodeId, r: ProduceResponse) {
        let Some(request) = self.sender.in_flight.remove(&r.correlation_id) else {
            return; // the request timed out and its connection was closed meanwhile
        };
        assert_eq!(
            request.broker, from,
            "produce response from the wrong broker"
        );
        for batch in request.batches {
            self.sender.track(batch.partition, -1);
            let answer = r.partitions.iter().find(|p| p.partition == batch.partition);
            self.on_batch_response(cx, batch, answer);
        }
    }

    fn on_batch_response(
        &mut self,
        cx: &mut Cx,
        mut batch: ProducerBatch,
        answer: Option<&PartitionProduceResponse>,
    ) {
        let Some(answer) = answer else {
            batch.maybe_written = true;
            self.retry_or_complete(
                cx,
                batch,
                ErrorCode::NetworkException,
                "no partition response",
            );
            return;
        };
        if answer.error != ErrorCode::None {
            *self.stats.errors.entry(answer.error).or_insert(0) += 1;
        }
        if refreshes_on(self.config.client, answer.error) {
            self.metadata.mark_stale();
        }
        match answer.error {
            // A duplicate of a batch the broker already has: success at the original offset.
            ErrorCode::None | ErrorCode::DuplicateSequenceNumber => {
                let outcome = Outcome::Ok {
                    base_offset: answer.base_offset,
                };
                self.complete_batch(cx, batch, outcome);
            }
            ErrorCode::OutOfOrderSequenceNumber => self.on_out_of_order(cx, batch),
            ErrorCode::UnknownProducerId | ErrorCode::InvalidProducerEpoch
                if self.config.client == ClientKind::Sarama =>
            {
                // sarama retries neither (`handleSuccess` default branch): the messages fail
                // and `returnError` bumps the epoch locally.
                self.fail_batch(cx, batch, answer.error);
            }
            ErrorCode::UnknownProducerId | ErrorCode::InvalidProducerEpoch
                if self.txn.is_some() =>
            {
                // Java `TransactionManager.canRetry`: a transactional producer lets the batch
                // fail; the transaction aborts and the epoch is bumped after it.
                self.fail_batch(cx, batch, answer.error);
            }
            ErrorCode::UnknownProducerId | ErrorCode::InvalidProducerEpoch => {
                // KIP-360: the broker lost (or fenced) our producer state; bump and retry.
                self.bump_epoch();
                self.retry_or_complete(cx, batch, answer.error, "retries exhausted");
            }
            error if self.retriable(error) => {
                // These answers may come after the leader appended the batch:
                // NOT_ENOUGH_REPLICAS_AFTER_APPEND by name; REQUEST_TIMED_OUT because Kafka's
                // `DelayedProduce` (ReplicaManager.appendRecords puts it in purgatory only
                // after the local append) expires with it when the ISR did not acknowledge in
                // time; NOT_LEADER_OR_FOLLOWER because a leader that loses the partition
                // completes its delayed produces with it (`Partition.checkEnoughReplicasReach
                // Offset` once `leaderLogIfLocal` is gone), although the new leader may hold
                // the appended records. The client cannot tell these from a refusal before the
                // append, so the records may be committed: a batch that ends after any of them
                // is unknown, never definitely failed.
                if matches!(
                    error,
                    ErrorCode::NotEnoughReplicasAfterAppend
                        | ErrorCode::RequestTimedOut
                        | ErrorCode::NotLeaderOrFollower
                ) {
                    batch.maybe_written = true;
                }
                self.retry_or_complete(cx, batch, error, "retries exhausted");
            }
            error => self.fail_batch(cx, batch, error),
        }
    }

    /// Whether the client retries a produce error (sarama's own list; the others retry
    /// Kafka's retriable errors).
    fn retriable(&self, error: ErrorCode) -> bool {
        match self.config.client {
            ClientKind::Sarama => sarama_retriable(error),
            _ => error.is_retriable(),
        }
    }

    /// A batch fails for good with `error` (unknown outcome if an attempt may have landed).
    /// sarama's `returnError` bumps its epoch locally for a message that had a sequence.
    pub(super) fn fail_batch(&mut self, cx: &mut Cx, batch: ProducerBatch, error: ErrorCode) {
        let outcome = if batch.maybe_written {
            Outcome::Unknown("non-retriable error after an unknown attempt")
        } else {
            Outcome::Fail(error)
        };
        let sequenced = batch.sequence.is_some();
        self.complete_batch(cx, batch, outcome);
        // A transactional sarama producer does not (`returnError`: `!p.IsTransactional()`);
        // its epoch is bumped by InitProducerId after the abort.
        if sequenced && self.config.client == ClientKind::Sarama && self.txn.is_none() {
            self.bump_epoch_locally();
        }
    }

    /// The wait before retrying a batch that has been sent `attempts` times, per client:
    /// - Java 3.7+ (KIP-580, `RecordAccumulator.shouldBackoff`): `retry.backoff.ms` ·
    ///   2^(attempts-1), ±20 % jitter, at most `retry.backoff.max.ms`; constant before.
    /// - librdkafka 2.3+ (KIP-580, `rd_kafka_retry_msgq`): the same doubling with ±20 %.
    /// - kafka-go (`Writer.writeBatch` → `backoff(attempt, min, max)` in dialer.go):
    ///   attempt² · `WriteBackoffMin`, at most `WriteBackoffMax`, no jitter.
    /// - sarama: constant `Producer.Retry.Backoff` (no `BackoffFunc` by default).
    fn retry_backoff(&self, attempts: u32, rng: &mut rand_chacha::ChaCha8Rng) -> Duration {
        let (base, max) = (self.config.retry_backoff, self.config.retry_backoff_max);
        if max <= base || attempts == 0 {
            return base;
        }
        match self.config.client {
            ClientKind::Sarama => base,
            ClientKind::KafkaGo => (base * attempts.saturating_mul(attempts)).min(max),
            ClientKind::Java | ClientKind::Librdkafka => {
                crate::reconnect::java_backoff(attempts - 1, base, max, rng)
            }
        }
    }

    /// Put a failed batch back for another attempt if `retries` and `delivery.timeout.ms`
    /// allow; otherwise complete it (failed if no attempt may have landed, else unknown).
    /// A sarama retry also waits for a metadata refresh that completes after the failure
    /// (`partitionProducer.updateLeader` runs before the message is sent again).
    pub(super) fn retry_or_complete(
        &mut self,
        cx: &mut Cx,
        mut batch: ProducerBatch,
        error: ErrorCode,
        reason: &'static str,
    ) {
        let now = cx.now();
        let within_retries = batch.attempts <= self.config.retries;
        let within_delivery = self
            .config
            .delivery_timeout
            .is_none_or(|t| now < batch.created + t);
        if within_retries && within_delivery && self.fatal.is_none() {
            batch.retry_at = now + self.retry_backoff(batch.attempts, cx.rng());
            if self.config.client == ClientKind::Sarama {
                batch.awaits_metadata = Some(self.metadata.version());
                self.metadata.mark_stale();
            }
            self.accumulator.reenqueue(batch);
            return;
        }
        let outcome = if batch.maybe_written {
            Outcome::Unknown(if within_retries {
                "delivery timeout"
            } else {
                reason
            })
        } else {
            Outcome::Fail(error)
        };
        self.complete_batch(cx, batch, outcome);
    }
}

/// The wire form of a producer batch (offsets are assigned by the leader).
fn to_record_batch(
    batch: &ProducerBatch,
    compression: Compression,
    transactional: bool,
) -> RecordBatch {
    // One allocation: the records straight into the shared slice the broker keeps.
    let mut wire = RecordBatch::new(Arc::from(batch.records.as_slice()));
    wire.compression = compression;
    wire.is_transactional = transactional;
    if let Some(seq) = batch.sequence {
        wire.producer_id = seq.producer_id;
        wire.producer_epoch = seq.producer_epoch;
        wire.base_sequence = seq.base_sequence;
    }
    wire
}

#[cfg(test)]
#[path = "sender_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "setup_tests.rs"]
mod setup_tests;
