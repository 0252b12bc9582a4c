//! The application model: what the service behind a consumer does with the records it polls
//! (DESIGN §2 "Application model"). A handler processes each record for a modelled time, marks
//! its offset before or after processing, commits automatically / synchronously /
//! asynchronously, optionally in batches or on a worker pool, and writes its result to a sink
//! (the database the group's members share, reached over the network: [`sink`]). Records can
//! fail and be retried, skipped or sent to a dead-letter topic.
//!
//! The consumer node ([`crate::consumer::Consumer`]) drives these pieces; they hold the state.

pub mod failure;
pub mod handler;
pub mod sink;
pub mod workers;

use crate::record::{Key, TopicPartition, ValueId};
use crate::time::Duration;

/// When the application marks a record's offset as done (what sarama's MarkMessage, kafka-go's
/// CommitMessages and librdkafka's offset store act on).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mark {
    BeforeProcess,
    AfterProcess,
    /// The application forgot to mark (or to commit): nothing it processes is committed.
    Never,
}

/// How the application commits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommitMode {
    /// The client's own auto-commit (see [`crate::consumer::profile::AutoCommitStyle`]).
    Auto,
    /// A blocking commit of the marked offsets after each processed poll batch.
    Sync,
    /// A non-blocking commit of the marked offsets after each processed poll batch.
    Async,
    /// Consume-transform-produce in a transaction (handler `produce_to`): the batch's outputs
    /// and its offsets (`sendOffsetsToTransaction`) commit together (`commitTransaction`).
    Transaction,
}

/// How a worker pool routes records to its workers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Routing {
    /// One queue per `hash(key) % workers`: per-key order is kept.
    Key,
    /// Round-robin: per-key order is lost.
    RoundRobin,
    /// One processor per partition: sarama's `ConsumeClaim` goroutine per claimed partition.
    Partition,
}

/// The service's database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SinkKind {
    /// Every processed record is written (redelivery writes it again).
    Plain,
    /// A unique constraint on the value id: a second write is refused.
    Dedupe,
    /// Offsets are stored in the same transaction as the results (refused when the stored
    /// offset is past the record); the consumer resumes from them on assignment.
    OffsetsInSink,
}

/// What the handler does with a record whose processing failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnFailure {
    /// Process it again (up to `max_attempts`, then skip it).
    Retry,
    /// Drop it: it never reaches the sink.
    Skip,
    /// Produce it to the dead-letter topic (acks=all, retried) before moving on.
    Dlq,
}

/// The application of one consumer group, as the scenario's `[consumer_groups.handler]` says.
#[derive(Clone, Debug)]
pub struct HandlerSpec {
    /// Per-record processing time, drawn uniformly from `min..=max` (equal: fixed).
    pub process_time: (Duration, Duration),
    pub mark: Mark,
    pub commit: CommitMode,
    /// `<= 1`: the poll loop processes records itself; `>= 2`: a worker pool.
    pub workers: u32,
    pub routing: Routing,
    pub sink: SinkKind,
    /// Batch handler: process and commit `batch` records at a time.
    pub batch: Option<u32>,
    /// Process a partial batch after this long.
    pub batch_timeout: Option<Duration>,
    /// Probability that processing one record fails.
    pub failure_rate: f64,
    /// Fraction of records whose processing always fails (poison records: the same records
    /// on every member and every attempt, [`failure::is_poison`]).
    pub poison_rate: f64,
    pub on_failure: OnFailure,
    /// Attempts of one record under `on_failure = retry` before the handler skips it
    /// (None: retry in place without limit, as a bare retry loop does).
    pub max_attempts: Option<u32>,
    /// `produce_to`: every processed record is written to this topic (its output, carrying
    /// its value id) by a Java `KafkaProducer` in the member's process; with
    /// `commit = "transaction"` in a transaction with the batch's offsets.
    pub produce_to: Option<crate::record::TopicId>,
}

impl Default for HandlerSpec {
    fn default() -> HandlerSpec {
        HandlerSpec {
            process_time: (Duration::ZERO, Duration::ZERO),
            mark: Mark::AfterProcess,
            commit: CommitMode::Auto,
            workers: 1,
            routing: Routing::Key,
            sink: SinkKind::Plain,
            batch: None,
            batch_timeout: None,
            failure_rate: 0.0,
            poison_rate: 0.0,
            on_failure: OnFailure::Retry,
            max_attempts: Some(failure::MAX_ATTEMPTS),
            produce_to: None,
        }
    }
}

impl HandlerSpec {
    /// Check the combinations the model does not support.
    pub fn validate(&self) -> Result<(), String> {
        if self.process_time.0 > self.process_time.1 {
            return Err("process_time: the minimum exceeds the maximum".into());
        }
        if !(0.0..=1.0).contains(&self.failure_rate) {
            return Err(format!(
                "failure_rate must be in 0..=1, got {}",
                self.failure_rate
            ));
        }
        if !(0.0..=1.0).contains(&self.poison_rate) {
            return Err(format!(
                "poison_rate must be in 0..=1, got {}",
                self.poison_rate
            ));
        }
        if self.max_attempts == Some(0) {
            return Err("max_attempts must be at least 1".into());
        }
        if self.batch == Some(0) {
            return Err("batch must be at least 1".into());
        }
        if self.batch.is_some() && self.workers > 1 {
            return Err("a batch handler runs on the poll loop: use workers = 1 with batch".into());
        }
        if self.commit == CommitMode::Transaction && self.produce_to.is_none() {
            return Err(
                "commit = \"transaction\" needs produce_to (the transaction's output topic)".into(),
            );
        }
        if self.produce_to.is_some() && (self.workers > 1 || self.batch.is_some()) {
            return Err("produce_to runs on the poll loop: use workers = 1 without batch".into());
        }
        if self.workers > workers::MAX_WORKERS {
            return Err(format!("workers must be at most {}", workers::MAX_WORKERS));
        }
        Ok(())
    }

    /// Whether records are handed to a worker pool rather than processed by the poll loop.
    pub fn uses_pool(&self) -> bool {
        self.workers >= 2
    }
}

/// A record the consumer returned to the application.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivered {
    pub partition: TopicPartition,
    pub offset: u64,
    pub value: ValueId,
    pub key: Option<Key>,
    pub size: u32,
    pub leader_epoch: u32,
}
