//! The sender: drains ready batches into produce requests, one per leader broker, within
//! `max.in.flight.requests.per.connection`, and handles what comes back.
//!
//! As Java's `Sender`: a request carries at most one batch per partition and at most
//! `max.request.size` bytes; a response error that is retriable puts the batch back into the
//! accumulator after `retry.backoff.ms` while `retries` and `delivery.timeout.ms` allow;
//! errors that say the leader moved refresh metadata. A request that times out
//! (`request.timeout.ms`) closes the connection, failing every request in flight on it (Java's
//! `NetworkClient` disconnects the node), and all of those batches are then *maybe written*:
//! the broker may have appended them and only the response was lost. That is how retries
//! create duplicates without idempotence. With `acks=0` no response comes: a batch counts as
//! acknowledged once it is on the wire, with an unknown offset.
//!
//! Metadata and InitProducerId requests are sent from here too, one at a time each.

use super::{Outcome, Producer, OFFSET_UNKNOWN};
use crate::node::{Cx, NodeId};
use crate::protocol::{
    Acks, ErrorCode, InitProducerIdRequest, InitProducerIdResponse, Message, MetadataRequest,
    MetadataResponse, PartitionProduceResponse, ProduceRequest, ProduceResponse,
};
use crate::record::{RecordBatch, TopicPartition};
use crate::time::Instant;
use std::collections::BTreeMap;

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
struct InitInFlight {
    correlation_id: u64,
    broker: NodeId,
    deadline: Instant,
}

/// Request bookkeeping of the sender.
#[derive(Debug, Default)]
pub(super) struct Sender {
    next_correlation_id: u64,
    in_flight: BTreeMap<u64, InFlightRequest>,
    /// Batches in flight per partition (for the one-batch-per-partition rule).
    partition_in_flight: BTreeMap<TopicPartition, u32>,
    init_in_flight: Option<InitInFlight>,
    init_next_attempt: Instant,
}

impl Sender {
    fn correlation_id(&mut self) -> u64 {
        self.next_correlation_id += 1;
        self.next_correlation_id
    }

    fn requests_to(&self, broker: NodeId) -> usize {
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

    fn partition_busy(&self, tp: TopicPartition) -> bool {
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
    /// Time out requests past `request.timeout.ms`: the connection is closed.
    pub(super) fn expire_requests(&mut self, cx: &mut Cx) {
        let now = cx.now();
        let expired: Vec<NodeId> = self
            .sender
            .in_flight
            .values()
            .filter(|r| r.deadline <= now)
            .map(|r| r.broker)
            .collect();
        for broker in expired {
            self.on_connection_lost(cx, broker, "request timeout");
        }
        if self.metadata.in_flight.is_some_and(|m| m.deadline <= now) {
            self.metadata.in_flight = None;
            self.metadata.next_attempt = now;
        }
        if self
            .sender
            .init_in_flight
            .is_some_and(|i| i.deadline <= now)
        {
            self.sender.init_in_flight = None;
            self.sender.init_next_attempt = now;
        }
    }

    /// A broker connection failed (reset by the peer or closed after a timeout): every request
    /// in flight on it fails with an unknown outcome.
    pub(super) fn on_connection_lost(&mut self, cx: &mut Cx, broker: NodeId, reason: &'static str) {
        let ids: Vec<u64> = self
            .sender
            .in_flight
            .iter()
            .filter(|(_, r)| r.broker == broker)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            let request = self
                .sender
                .in_flight
                .remove(&id)
                .expect("request just listed");
            for mut batch in request.batches {
                self.sender.track(batch.partition, -1);
                batch.maybe_written = true;
                self.retry_or_complete(cx, batch, ErrorCode::NetworkException, reason);
            }
        }
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
        let reset = reason == "connection reset";
        self.metadata.connection_failed(broker, reset, cx.now());
    }

    pub(super) fn send_metadata_request(&mut self, cx: &mut Cx) {
        let now = cx.now();
        if !self.metadata.should_request(now) {
            return;
        }
        let correlation_id = self.sender.correlation_id();
        let broker = self.metadata.pick_broker(now);
        self.metadata.in_flight = Some(super::metadata::MetadataInFlight {
            correlation_id,
            broker,
            deadline: now + self.config.request_timeout,
        });
        let topics = vec![self.workload.spec().topic];
        cx.send(
            broker,
            Message::MetadataRequest(MetadataRequest {
                correlation_id,
                topics,
            }),
        );
    }

    pub(super) fn on_metadata_response(&mut self, cx: &mut Cx, from: NodeId, r: MetadataResponse) {
        let expected = self.metadata.in_flight;
        if expected.is_none_or(|m| m.correlation_id != r.correlation_id || m.broker != from) {
            return;
        }
        self.metadata.in_flight = None;
        let complete = self.metadata.update(&r);
        if !complete || self.metadata.partition_count().is_none() {
            self.metadata.mark_stale();
        }
        // Java's metadata backoff: no new request sooner than retry.backoff.ms.
        self.metadata.next_attempt = cx.now() + self.config.retry_backoff;
    }

    /// First InitProducerId, or a KIP-360 bump once nothing is in flight.
    pub(super) fn send_init_producer_id(&mut self, cx: &mut Cx) {
        let now = cx.now();
        let Some(idem) = self.idempotence.as_ref() else {
            return;
        };
        let can_send = idem.needs_init()
            && self.sender.init_in_flight.is_none()
            && self.sender.in_flight.is_empty()
            && now >= self.sender.init_next_attempt;
        if !can_send {
            return;
        }
        let (producer_id, producer_epoch) = idem.init_request_ids();
        let correlation_id = self.sender.correlation_id();
        let broker = self.metadata.pick_broker(now);
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
        };
        cx.send(broker, Message::InitProducerIdRequest(request));
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

    /// Drain ready batches into one produce request per leader with a free in-flight slot.
    pub(super) fn drain(&mut self, cx: &mut Cx) {
        if self.idempotence.as_ref().is_some_and(|i| !i.ready()) {
            return;
        }
        let now = cx.now();
        let mut by_broker: BTreeMap<NodeId, Vec<TopicPartition>> = BTreeMap::new();
        for tp in self.accumulator.partitions() {
            if let Some(leader) = self.metadata.usable_leader(tp, now) {
                by_broker.entry(leader).or_default().push(tp);
            } else {
                self.metadata.mark_stale();
            }
        }
        for (broker, partitions) in by_broker {
            while self.sender.requests_to(broker) < self.config.max_in_flight as usize {
                let batches = self.drain_for(cx.now(), &partitions);
                if batches.is_empty() {
                    break;
                }
                self.send_produce(cx, broker, batches);
            }
        }
    }

    /// One request's worth of ready batches: one per partition, within `max.request.size`.
    fn drain_for(&mut self, now: Instant, partitions: &[TopicPartition]) -> Vec<ProducerBatch> {
        let mut batches: Vec<ProducerBatch> = Vec::new();
        let mut bytes = 0u32;
        for &tp in partitions {
            if self.config.one_batch_per_partition_in_flight && self.sender.partition_busy(tp) {
                continue;
            }
            let Some(head) = self.accumulator.head(tp) else {
                continue;
            };
            if !batches.is_empty() && bytes + head.bytes > self.config.max_request_size {
                break;
            }
            if !self.may_drain_idempotent(tp) {
                continue;
            }
            let Some(mut batch) = self.accumulator.drain(tp, now) else {
                continue;
            };
            if let Some(idem) = self.idempotence.as_mut() {
                if batch.sequence.is_none() {
                    batch.sequence = Some(idem.assign(tp, batch.records.len() as u32));
                }
            }
            bytes += batch.bytes;
            batches.push(batch);
        }
        batches
    }

    /// A retried idempotent batch goes only when it is its partition's earliest outstanding
    /// one; one stamped under an older epoch is re-stamped when drained.
    fn may_drain_idempotent(&mut self, tp: TopicPartition) -> bool {
        let Some(idem) = self.idempotence.as_ref() else {
            return true;
        };
        let Some(seq) = self.accumulator.head(tp).and_then(|b| b.sequence) else {
            return true;
        };
        idem.may_drain(tp, &seq)
    }

    fn send_produce(&mut self, cx: &mut Cx, broker: NodeId, mut batches: Vec<ProducerBatch>) {
        let correlation_id = self.sender.correlation_id();
        let wire: Vec<(TopicPartition, RecordBatch)> = batches
            .iter_mut()
            .map(|b| (b.partition, to_record_batch(b)))
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
            transactional_id: None,
            batches: wire,
        };
        cx.send(broker, Message::ProduceRequest(request));
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
        let deadline = cx.now() + self.config.request_timeout;
        let request = InFlightRequest {
            broker,
            deadline,
            batches,
        };
        self.sender.in_flight.insert(correlation_id, request);
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
        match answer.error {
            // A duplicate of a batch the broker already has: success at the original offset.
            ErrorCode::None | ErrorCode::DuplicateSequenceNumber => {
                let outcome = Outcome::Ok {
                    base_offset: answer.base_offset,
                };
                self.complete_batch(cx, batch, outcome);
            }
            ErrorCode::OutOfOrderSequenceNumber => self.on_out_of_order(cx, batch),
            ErrorCode::UnknownProducerId | ErrorCode::InvalidProducerEpoch => {
                // KIP-360: the broker lost (or fenced) our producer state; bump and retry.
                self.bump_epoch();
                self.retry_or_complete(cx, batch, answer.error, "retries exhausted");
            }
            error if error.is_retriable() => {
                if error == ErrorCode::NotEnoughReplicasAfterAppend {
                    batch.maybe_written = true;
                }
                if error.needs_metadata_refresh() {
                    self.metadata.mark_stale();
                }
                self.retry_or_complete(cx, batch, error, "retries exhausted");
            }
            error => {
                let outcome = if batch.maybe_written {
                    Outcome::Unknown("non-retriable error after an unknown attempt")
                } else {
                    Outcome::Fail(error)
                };
                self.complete_batch(cx, batch, outcome);
            }
        }
    }

    /// OutOfOrderSequence behind an earlier failed batch: retry. On the earliest outstanding
    /// batch: a real gap; the batch fails and the producer bumps its epoch (Java 2.5+).
    fn on_out_of_order(&mut self, cx: &mut Cx, batch: ProducerBatch) {
        let retriable = match (self.idempotence.as_ref(), batch.sequence.as_ref()) {
            (Some(idem), Some(seq)) => {
                !idem.is_current(seq) || idem.out_of_order_is_retriable(batch.partition, seq)
            }
            _ => false,
        };
        if retriable {
            self.retry_or_complete(
                cx,
                batch,
                ErrorCode::OutOfOrderSequenceNumber,
                "retries exhausted",
            );
            return;
        }
        self.bump_epoch();
        let outcome = if batch.maybe_written {
            Outcome::Unknown("out of order sequence after an unknown attempt")
        } else {
            Outcome::Fail(ErrorCode::OutOfOrderSequenceNumber)
        };
        self.complete_batch(cx, batch, outcome);
    }

    fn bump_epoch(&mut self) {
        if let Some(idem) = self.idempotence.as_mut() {
            idem.request_bump();
        }
    }

    /// Put a failed batch back for another attempt if `retries` and `delivery.timeout.ms`
    /// allow; otherwise complete it (failed if no attempt may have landed, else unknown).
    fn retry_or_complete(
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
        if within_retries && within_delivery {
            batch.retry_at = now + self.config.retry_backoff;
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
fn to_record_batch(batch: &ProducerBatch) -> RecordBatch {
    let mut wire = RecordBatch::new(batch.records.clone().into());
    if let Some(seq) = batch.sequence {
        wire.producer_id = seq.producer_id;
        wire.producer_epoch = seq.producer_epoch;
        wire.base_sequence = seq.base_sequence;
    }
    wire
}
