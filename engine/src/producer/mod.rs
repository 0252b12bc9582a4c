//! The producer client: an application sending records (`workload.rs`) through a Kafka
//! producer (accumulator, sender, metadata, idempotence), as one [`Node`].
//!
//! Usage contract (quinn-style):
//! - Build with [`Producer::new`] from a [`ProducerSpec`] (what the application sends) and a
//!   validated [`ProducerConfig`] (how its client library behaves; start from
//!   [`ProducerConfig::for_client`], override with Java property names, then `validate`).
//! - The host drives it through [`Node`]; the producer records `SendInvoke` when the
//!   application hands a value over, then exactly one of `SendOk` (partition, offset),
//!   `SendFail` (definitely not written) or `SendInfo` (outcome unknown) per send. Under
//!   `on_error = "retry"` a value whose send failed or ended unknown is handed over again:
//!   a second `SendInvoke` of the same value, with an outcome of its own.
//! - Read-only getters ([`Producer::stats`], [`Producer::buffer_used`]) serve invariants and
//!   reports.
//!
//! Everything is bounded: `buffer.memory` (a full buffer blocks the application's send for up
//! to `max.block.ms`, then fails it), `max.in.flight.requests.per.connection`, `retries` and
//! `delivery.timeout.ms`, and a per-producer cap on outstanding records.
//!
//! Internally one wake-up timer is armed at the earliest instant anything can happen (a batch
//! lingering out, a retry backoff ending, a request timing out, the next send falling due);
//! every handler ends in [`Producer::poll`], which does all that is due and re-arms it.

pub mod accumulator;
pub mod config;
pub mod ctp;
pub mod drain;
pub mod idempotence;
pub mod metadata;
pub mod profile;
pub mod queues;
mod sender;
pub mod status;
pub mod timer;
pub mod transaction;
pub mod workload;

pub use config::{ClientKind, KafkaGoConstructor, OnError, ProducerConfig};
pub use workload::ProducerSpec;

use crate::compression::Compression;
use crate::history::HistoryEvent;
use crate::node::{Cx, DiskData, DiskEntry, FileId, Node, NodeId, NodeTimer, Timer, TimerId};
use crate::partitioner::{PartitionRequest, Partitioner, PartitionerConfig};
use crate::protocol::{ErrorCode, Message};
use crate::reconnect::ConnectionStates;
use crate::record::{Key, Record, TopicPartition, ValueId};
use crate::time::Instant;
use accumulator::{AccumulatorLimits, ProducerBatch, RecordAccumulator};
use idempotence::IdempotenceState;
use metadata::ClientMetadata;
use sender::Sender;
use std::sync::Arc;
use timer::ProducerTimer;
use transaction::{TransactionManager, TxnStats};
use workload::{Workload, MAX_SENDS_PER_WAKE};

/// The offset reported in `SendOk` when `acks=0`: the client learns none (Java reports -1).
pub const OFFSET_UNKNOWN: u64 = u64::MAX;

/// Most times an `on_error = "retry"` application hands one value over again before it gives
/// the value up (a bound; real loops often have none, which only makes a run longer).
pub const MAX_APP_RESENDS: u32 = 50;
const INCARNATION_FILE: FileId = FileId::Named("producer-incarnation");

/// Counters for reports and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProducerStats {
    pub invoked: u64,
    pub acked: u64,
    pub failed: u64,
    pub unknown: u64,
    pub produce_requests: u64,
    pub retries: u64,
    pub epoch_bumps: u64,
    /// Error codes of partition responses, counted per attempt (retried ones included).
    pub errors: std::collections::BTreeMap<ErrorCode, u64>,
}

/// How a batch ended, for every record in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Ok { base_offset: u64 },
    Fail(ErrorCode),
    Unknown(&'static str),
}

/// A send the application is blocked in (full buffer or no metadata yet).
#[derive(Clone, Copy, Debug)]
struct BlockedSend {
    value: ValueId,
    key: Option<Key>,
    /// The record's value size (the workload's `message_size`, or a hosted output's input's).
    size: u32,
    since: Instant,
}

/// A value an `on_error = "retry"` application will hand over again.
#[derive(Clone, Copy, Debug)]
struct Resend {
    value: ValueId,
    key: Option<Key>,
    due: Instant,
}

/// A producer client and the application that drives it.
pub struct Producer {
    config: ProducerConfig,
    workload: Workload,
    accumulator: RecordAccumulator,
    metadata: ClientMetadata,
    connections: ConnectionStates,
    idempotence: Option<IdempotenceState>,
    sender: Sender,
    partitioner: Partitioner,
    blocked: Option<BlockedSend>,
    /// Sync mode: the value the application waits for.
    waiting_for: Option<ValueId>,
    outstanding_records: u32,
    /// `on_error = "retry"`: values waiting to be handed over again, in due order, and how
    /// often each was resent so far (both bounded by the outstanding records).
    resends: std::collections::VecDeque<Resend>,
    resent: std::collections::BTreeMap<ValueId, u32>,
    /// librdkafka's fatal error: once set, every send fails (see `sender.rs`).
    fatal: Option<ErrorCode>,
    wake: Option<(Instant, TimerId, u64)>,
    wake_generation: u64,
    stats: ProducerStats,
    /// How this producer's batches are compressed (codec, level, the workload's ratio).
    compression: Compression,
    /// `transactional.id`: the Java producer's transactions and the application's loop.
    txn: Option<TransactionManager>,
    stats_txn: TxnStats,
    /// Hosted by a consumer's application (`ctp.rs`): its outputs and batch ends.
    external: Option<ctp::External>,
    /// Reused by each drain for the partitions a node leads (no allocation per poll).
    led_scratch: Vec<TopicPartition>,
}

impl Producer {
    /// The host's signal that makes a held producer send one probe record.
    pub fn probe_timer() -> Timer {
        ProducerTimer::Probe.into()
    }

    /// The host's signal that releases a held producer's load until `stop_at`.
    pub fn release_timer(stop_at: Instant) -> Timer {
        ProducerTimer::Release(stop_at).into()
    }

    /// Whether the application is still held by a bench's readiness phase.
    pub fn held(&self) -> bool {
        self.workload.held()
    }

    /// A producer for `spec` with `config` (which must have passed `validate`).
    pub fn new(spec: ProducerSpec, mut config: ProducerConfig) -> Producer {
        if let Err(e) = config.validate() {
            panic!("producer {}: invalid config: {e}", spec.index);
        }
        let limits = AccumulatorLimits {
            batch_size: config.batch_size,
            batch_records: config.batch_records,
            linger: config.linger,
            buffer_memory: config.buffer_memory,
        };
        let compression = Compression::new(
            config.compression,
            config.compression_level(),
            spec.message_profile,
        );
        let txn = config.transactional_id.as_ref().map(|id| {
            TransactionManager::new(
                id.clone(),
                config.transaction_timeout,
                spec.transactions.unwrap_or_default(),
            )
            .for_client(config.client, config.sarama_txn_retry.max)
        });
        Producer {
            txn,
            stats_txn: TxnStats::default(),
            external: None,
            led_scratch: Vec::new(),
            compression,
            metadata: ClientMetadata::new(spec.topic, spec.bootstrap.clone()),
            connections: ConnectionStates::new(
                config.client,
                config.reconnect_backoff,
                config.reconnect_backoff_max,
            )
            .with_setup(config.setup_timeout()),
            idempotence: config.enable_idempotence.then(IdempotenceState::new),
            partitioner: Partitioner::new(
                config.partitioner,
                PartitionerConfig {
                    batch_size: config.batch_size,
                    sticky_linger: config.sticky_linger,
                },
            ),
            accumulator: RecordAccumulator::new(limits),
            sender: Sender::default(),
            workload: Workload::new(spec),
            config,
            blocked: None,
            waiting_for: None,
            outstanding_records: 0,
            resends: std::collections::VecDeque::new(),
            resent: std::collections::BTreeMap::new(),
            fatal: None,
            wake: None,
            wake_generation: 0,
            stats: ProducerStats::default(),
        }
    }

    pub fn stats(&self) -> &ProducerStats {
        &self.stats
    }

    pub fn config(&self) -> &ProducerConfig {
        &self.config
    }

    pub fn buffer_used(&self) -> u64 {
        self.accumulator.buffer_used()
    }

    /// Records handed over by the application and not yet completed.
    pub fn outstanding_records(&self) -> u32 {
        self.outstanding_records
    }

    /// Whether the application stopped and every record has completed.
    pub fn is_idle(&self, now: Instant) -> bool {
        // An application that never ends its transaction leaves it open for good.
        let txn_idle = self.txn.as_ref().is_none_or(|t| match t.app() {
            transaction::AppTxn::Open { .. } => t.never_ends(),
            transaction::AppTxn::Ending { .. } => false,
            _ => true,
        });
        self.workload.stopped(now) && self.outstanding_records == 0 && txn_idle
    }

    /// The transaction manager of a producer with a `transactional.id` (inspection).
    pub fn transaction_manager(&self) -> Option<&TransactionManager> {
        self.txn.as_ref()
    }

    fn producer_index(&self) -> u32 {
        self.workload.spec().index
    }

    /// Do everything due at `now`, then arm the wake-up timer for the next thing.
    fn poll(&mut self, cx: &mut Cx) {
        self.expire_requests(cx);
        self.send_metadata_request(cx);
        if self.txn.is_some() {
            self.send_transactional_request(cx);
        } else {
            self.send_init_producer_id(cx);
        }
        self.run_application(cx);
        self.expire_queued_batches(cx);
        self.drain(cx);
        self.arm_wake(cx);
    }

    fn arm_wake(&mut self, cx: &mut Cx) {
        let now = cx.now();
        let next = self.next_wake(now);
        let Some(at) = next else { return };
        if let Some((armed_at, id, _)) = self.wake {
            if armed_at <= at && armed_at >= now {
                return;
            }
            cx.cancel_timer(id);
        }
        self.wake_generation += 1;
        let id = cx.set_timer(at, ProducerTimer::Wake(self.wake_generation));
        self.wake = Some((at, id, self.wake_generation));
    }

    /// The earliest future instant at which `poll` has something to do.
    fn next_wake(&self, now: Instant) -> Option<Instant> {
        let mut candidates: Vec<Instant> = Vec::new();
        candidates.extend(self.sender.next_deadline());
        candidates.extend(self.connections.setup.next_check());
        candidates.extend(self.metadata.in_flight.map(|m| m.deadline));
        if self.metadata.in_flight.is_none() {
            candidates.push(self.metadata.next_attempt);
            candidates.extend(self.metadata.next_refresh());
            for broker in self.metadata.brokers() {
                candidates.extend(self.connections.blocked_until(*broker, now));
            }
        }
        candidates.extend(self.sender.init_next_attempt());
        candidates.extend(self.txn.as_ref().and_then(|t| t.deadline()));
        candidates.extend(self.txn_next_attempt());
        if let Some(blocked) = self.blocked {
            candidates.push(blocked.since + self.config.max_block);
        } else if self.waiting_for.is_none() {
            candidates.extend(self.workload.next_wake(now));
        }
        candidates.extend(self.resends.front().map(|r| r.due));
        for tp in self.accumulator.partitions() {
            candidates.extend(self.accumulator.ready_at(tp));
            if let Some(leader) = self.metadata.leader(tp) {
                candidates.extend(self.connections.blocked_until(leader, now));
            }
            if let (Some(timeout), Some(head)) =
                (self.config.delivery_timeout, self.accumulator.head(tp))
            {
                candidates.push(head.created + timeout);
            }
        }
        if self.application_can_progress(now) || self.txn_request_due(now) {
            // A completion during this poll unblocked the application: continue at once, in a
            // new event, so other nodes' events at this instant interleave.
            return Some(now);
        }
        candidates.into_iter().filter(|at| *at > now).min()
    }

    /// Whether the application could hand over a record right now.
    fn application_can_progress(&self, now: Instant) -> bool {
        if let Some(blocked) = self.blocked {
            let size = blocked_size(blocked.size, blocked.key);
            return self.metadata.partition_count().is_some() && self.accumulator.has_room(size);
        }
        if self.resends.front().is_some_and(|r| r.due <= now) {
            return true;
        }
        let txn_accepts = self.txn.as_ref().is_none_or(|t| t.accepts_sends());
        self.waiting_for.is_none()
            && self.outstanding_records < self.config.max_outstanding_records
            && self.workload.due(now)
            && txn_accepts
    }

    /// The application: retry a blocked send, then make the sends that are due.
    fn run_application(&mut self, cx: &mut Cx) {
        let now = cx.now();
        if let Some(blocked) = self.blocked.take() {
            if !self.try_append(cx, blocked) {
                return;
            }
        }
        for _ in 0..MAX_SENDS_PER_WAKE {
            let Some(resend) = self.resends.front().copied().filter(|r| r.due <= now) else {
                break;
            };
            self.resends.pop_front();
            // The same value, handed over again as a new send: a new record to the client.
            cx.record(HistoryEvent::SendInvoke {
                producer: self.producer_index(),
                value: resend.value,
                key: resend.key,
                topic: self.workload.spec().topic,
                scheduled: None,
            });
            self.stats.invoked += 1;
            let send = BlockedSend {
                value: resend.value,
                key: resend.key,
                size: self.workload.spec().message_size,
                since: now,
            };
            if !self.try_append(cx, send) {
                return;
            }
        }
        if self.external.is_some() {
            return self.run_external(cx);
        }
        self.txn_maybe_end(cx);
        for _ in 0..MAX_SENDS_PER_WAKE {
            if self.waiting_for.is_some()
                || self.outstanding_records >= self.config.max_outstanding_records
                || !self.workload.due(now)
                || !self.txn_before_send(cx)
            {
                return;
            }
            let (value, key, scheduled) = self.workload.take(now, cx.rng());
            self.txn_sent(cx, value);
            self.stats.invoked += 1;
            self.outstanding_records += 1;
            let event = HistoryEvent::SendInvoke {
                producer: self.producer_index(),
                value,
                key,
                topic: self.workload.spec().topic,
                scheduled,
            };
            cx.record(event);
            let send = BlockedSend {
                value,
                key,
                size: self.workload.spec().message_size,
                since: now,
            };
            let appended = self.try_append(cx, send);
            self.txn_maybe_end(cx);
            if !appended {
                return;
            }
        }
    }

    /// Hand one record to the accumulator. False if the application is now blocked (no
    /// metadata yet, or `buffer.memory` full); a send blocked `max.block.ms` fails.
    fn try_append(&mut self, cx: &mut Cx, send: BlockedSend) -> bool {
        let now = cx.now();
        let record = Record {
            value: send.value,
            key: send.key,
            size: send.size,
            create_time: send.since,
            payload: None,
        };
        let size = record.wire_size();
        if let Some(error) = self.fatal {
            // librdkafka: "Producing not allowed since a previous fatal error was raised".
            self.complete_record(cx, send.value, send.key, None, Outcome::Fail(error));
            return true;
        }
        let partitions = self.metadata.partition_count();
        let (Some(partitions), true) = (partitions, self.accumulator.has_room(size)) else {
            if now >= send.since + self.config.max_block {
                // Java: TimeoutException from send() ("Failed to allocate memory within the
                // configured max blocking time" / "Topic not present in metadata").
                self.complete_record(
                    cx,
                    send.value,
                    send.key,
                    None,
                    Outcome::Fail(ErrorCode::RequestTimedOut),
                );
                return true;
            }
            self.blocked = Some(send);
            return false;
        };
        let topic = self.workload.spec().topic;
        let explicit = match self
            .config
            .partition
            .map(|e| e.choose(send.key, partitions))
        {
            None => None,
            Some(Some(p)) => Some(p),
            Some(None) => {
                // The application named a partition the topic does not have (or a key
                // expression met a null key): Java's send fails ("Invalid partition given
                // with record", KafkaProducer.waitOnMetadata), sarama answers
                // ErrInvalidPartition, librdkafka RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION. A
                // client-side rejection: no Kafka error code, so InvalidRequest stands in.
                let error = ErrorCode::InvalidRequest;
                self.complete_record(cx, send.value, send.key, None, Outcome::Fail(error));
                return true;
            }
        };
        let key_bytes = send.key.map(Key::bytes);
        let request = PartitionRequest {
            key: key_bytes.as_deref(),
            explicit,
            record_bytes: size,
            partitions,
            now,
        };
        let partition = self.partitioner.partition(topic, &request, cx.rng());
        assert!(
            partition < partitions,
            "producer {}: partitioner chose {partition} of {partitions}",
            self.producer_index()
        );
        let tp = TopicPartition::new(topic, partition);
        if let Some(t) = self.txn.as_mut() {
            t.maybe_add_partition(tp);
        }
        self.accumulator.append(tp, record, now);
        if self.config.sync {
            self.waiting_for = Some(send.value);
        }
        true
    }

    /// Complete every record of `batch` with `outcome` and free its resources.
    fn complete_batch(&mut self, cx: &mut Cx, batch: ProducerBatch, outcome: Outcome) {
        self.accumulator.release(&batch);
        if let (Some(idem), Some(seq)) = (self.idempotence.as_mut(), batch.sequence.as_ref()) {
            if matches!(outcome, Outcome::Ok { .. }) {
                idem.acknowledge(batch.partition, seq, batch.records.len() as u32);
            }
            idem.complete(batch.partition, seq);
        }
        for (i, record) in batch.records.iter().enumerate() {
            let outcome = match outcome {
                Outcome::Ok { base_offset } if base_offset != OFFSET_UNKNOWN => Outcome::Ok {
                    base_offset: base_offset + i as u64,
                },
                other => other,
            };
            self.complete_record(cx, record.value, record.key, Some(batch.partition), outcome);
        }
    }

    fn complete_record(
        &mut self,
        cx: &mut Cx,
        value: ValueId,
        key: Option<Key>,
        partition: Option<TopicPartition>,
        outcome: Outcome,
    ) {
        let producer = self.producer_index();
        let failed = !matches!(outcome, Outcome::Ok { .. });
        let event = match (outcome, partition) {
            (Outcome::Ok { base_offset }, Some(partition)) => {
                self.stats.acked += 1;
                HistoryEvent::SendOk {
                    producer,
                    value,
                    partition,
                    offset: base_offset,
                }
            }
            (Outcome::Ok { .. }, None) => unreachable!("an acknowledged record has a partition"),
            (Outcome::Fail(error), _) => {
                self.stats.failed += 1;
                HistoryEvent::SendFail {
                    producer,
                    value,
                    error,
                }
            }
            (Outcome::Unknown(reason), _) => {
                self.stats.unknown += 1;
                HistoryEvent::SendInfo {
                    producer,
                    value,
                    reason,
                }
            }
        };
        cx.record(event);
        self.ctp_record_done(!failed);
        if let (Outcome::Fail(error), true) = (outcome, self.txn.is_some()) {
            self.txn_record_failed(error);
        } else if failed && self.txn.is_some() {
            self.txn_record_failed(ErrorCode::RequestTimedOut);
        }
        if failed && self.resend_later(cx.now(), value, key) {
            // Still the application's: it stays outstanding (and a sync one keeps waiting).
            return;
        }
        self.resent.remove(&value);
        assert!(
            self.outstanding_records > 0,
            "producer {producer}: completed more records than it was handed"
        );
        self.outstanding_records -= 1;
        if self.waiting_for == Some(value) {
            self.waiting_for = None;
            self.workload.resume_after_wait(cx.now());
        }
    }

    /// `on_error = "retry"`: queue `value` to be handed over again after `retry.backoff.ms`,
    /// unless it was resent [`MAX_APP_RESENDS`] times already. Whether it was queued.
    fn resend_later(&mut self, now: Instant, value: ValueId, key: Option<Key>) -> bool {
        if self.config.on_error != OnError::Retry {
            return false;
        }
        let count = self.resent.entry(value).or_insert(0);
        if *count >= MAX_APP_RESENDS {
            return false;
        }
        *count += 1;
        self.resends.push_back(Resend {
            value,
            key,
            due: now + self.config.retry_backoff,
        });
        true
    }

    /// Count this node's lives on its own disk, so a restarted producer draws fresh value ids.
    fn next_incarnation(cx: &mut Cx) -> u64 {
        let lives = cx.disk().read(INCARNATION_FILE).len() as u64;
        let entry = DiskEntry::new(DiskData::Blob(Arc::new(lives)), 8);
        cx.disk().append(INCARNATION_FILE, entry);
        lives
    }
}

impl Node for Producer {
    fn on_start(&mut self, cx: &mut Cx) {
        let incarnation = Producer::next_incarnation(cx);
        self.workload.start(cx.now(), incarnation);
        self.txn_start(incarnation);
        self.poll(cx);
    }

    fn on_message(&mut self, cx: &mut Cx, from: NodeId, msg: Message) {
        if matches!(msg.exchange(), crate::protocol::Exchange::Response { .. }) {
            self.connections.ready(from);
            self.metadata.connection_ready(from);
        }
        match msg {
            Message::MetadataResponse(r) => self.on_metadata_response(cx, from, r),
            Message::ProduceResponse(r) => self.on_produce_response(cx, from, r),
            Message::InitProducerIdResponse(r) if self.txn.is_some() => {
                self.on_txn_init_response(cx, from, r)
            }
            Message::InitProducerIdResponse(r) => self.on_init_producer_id_response(cx, r),
            Message::FindCoordinatorResponse(r) => self.on_find_coordinator_response(cx, from, r),
            Message::AddPartitionsToTxnResponse(r) => self.on_add_partitions_response(cx, from, r),
            Message::EndTxnResponse(r) => self.on_end_txn_response(cx, from, r),
            Message::AddOffsetsToTxnResponse(r) => self.on_add_offsets_response(cx, from, r),
            Message::TxnOffsetCommitResponse(r) => self.on_txn_offset_commit_response(cx, from, r),
            Message::ConnectionReset => self.on_connection_lost(cx, from, "connection reset"),
            Message::ConnectionRefused => self.on_connection_refused(cx, from),
            // A producer sends no other request, so no other answer can reach it: one would be
            // a bug in whoever sent it.
            other => panic!(
                "producer {}: {} is not an answer to anything a producer sends",
                cx.me(),
                other.kind()
            ),
        }
        self.poll(cx);
    }

    fn on_timer(&mut self, cx: &mut Cx, timer: Timer) {
        match ProducerTimer::decode(timer) {
            // Only the latest wake counts; an earlier one firing late is stale.
            ProducerTimer::Wake(generation) => {
                if self.wake.is_some_and(|w| w.2 == generation) {
                    self.wake = None;
                }
            }
            ProducerTimer::Probe => self.workload.probe(),
            ProducerTimer::Release(stop_at) => self.workload.release(cx.now(), stop_at),
        }
        self.poll(cx);
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// Wire size of a record the application is blocked on.
fn blocked_size(message_size: u32, key: Option<Key>) -> u32 {
    let record = Record {
        value: ValueId(0),
        key,
        size: message_size,
        create_time: Instant::ZERO,
        payload: None,
    };
    record.wire_size()
}
