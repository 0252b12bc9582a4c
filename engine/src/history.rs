//! Facts nodes record for the checkers (DESIGN §4). The host stamps each with the simulated
//! time and the recording node. Values are unique ids, so every record can be traced from its
//! send to every read of it.
//!
//! Client indices: `producer` is the run-wide index of a producer client; `group` is the index
//! of a consumer group in the scenario and `member` the member's index within it. Names are
//! the scenario's business, not the engine's.

use crate::node::NodeId;
use crate::protocol::ErrorCode;
use crate::record::{Key, TopicId, TopicPartition, ValueId};
use crate::time::Instant;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HistoryEvent {
    // ---- producer side ----
    /// The application handed a value to its producer. The same producer hands a value over
    /// again only after its previous send ended in `SendFail` or `SendInfo` (the application
    /// resending it, `on_error = "retry"`).
    SendInvoke {
        producer: u32,
        value: ValueId,
        key: Option<Key>,
        topic: TopicId,
        /// When the application's rate schedule had this send due (`start + n × 1/rate`, as
        /// OpenMessaging Benchmark's `UniformRateLimiter.acquire` computes its intended send
        /// time): a send made later fell behind its schedule. `None` for a producer without a
        /// rate (`"max"`) and for a resend.
        scheduled: Option<Instant>,
    },
    /// The producer got an acknowledgement: the value is at `offset` of `partition`. With
    /// `acks=0` the client learns no offset: `offset` is `u64::MAX`
    /// (`producer::OFFSET_UNKNOWN`) and the value counts as acknowledged all the same.
    SendOk {
        producer: u32,
        value: ValueId,
        partition: TopicPartition,
        offset: u64,
    },
    /// Definitely not written (a non-retriable error, or rejected before it was sent).
    SendFail {
        producer: u32,
        value: ValueId,
        error: ErrorCode,
    },
    /// Outcome unknown (timed out, connection lost, retries exhausted after sending): the value
    /// may or may not be in the log. Never counted as lost.
    SendInfo {
        producer: u32,
        value: ValueId,
        reason: &'static str,
    },

    // ---- consumer side ----
    /// A member's assignment after a rebalance (generation), as the member applied it.
    Assigned {
        group: u32,
        member: u32,
        generation: i32,
        partitions: Vec<TopicPartition>,
    },
    /// A record returned by poll to the application. (`Poll`, `SinkWrite` and `OutputRecord`
    /// share their fields by design, a record as read and as stored; the checkers, the trace
    /// and a value's life story destructure each by name, which looks like repetition and is
    /// not.)
    Poll {
        group: u32,
        member: u32,
        partition: TopicPartition,
        offset: u64,
        value: ValueId,
        key: Option<Key>,
    },
    /// An offset commit and its outcome.
    Commit {
        group: u32,
        member: u32,
        generation: i32,
        partition: TopicPartition,
        offset: u64,
        error: ErrorCode,
    },
    /// The group coordinator stored a commit: its `__consumer_offsets` append was acknowledged
    /// and the offset is now the group's committed offset (Kafka's
    /// `GroupMetadataManager.storeOffsets` callback puts it in the offset cache, then answers).
    /// Recorded by the coordinator broker, so a commit whose answer never reached the member
    /// (lost in its crash or a partition) still appears. `member` is the committing client's
    /// node; `group` the group's `group.id`, as the broker knows it.
    OffsetsStored {
        group: std::sync::Arc<str>,
        member: NodeId,
        generation: i32,
        partition: TopicPartition,
        offset: u64,
    },
    /// The group's database committed the result of processing a value (recorded by the
    /// database at its commit: the sink checkers read these rows).
    SinkWrite {
        group: u32,
        member: u32,
        partition: TopicPartition,
        offset: u64,
        value: ValueId,
        key: Option<Key>,
    },
    /// A committed record of a consume-transform-produce group's output topic (handler
    /// `produce_to`), found by the simulator's final read of the topic's logs at the end of
    /// the run (committed data only: records of aborted or unfinished transactions left
    /// out). `value` is the id of the input the record was made from. The sink checkers
    /// read these as the group's sink.
    OutputRecord {
        group: u32,
        partition: TopicPartition,
        offset: u64,
        value: ValueId,
    },
    /// The group's database refused a member's write of a value it already holds (a unique
    /// constraint on the record id, or the offsets-in-sink offset guard): counted, not stored.
    SinkRefused {
        group: u32,
        member: u32,
        partition: TopicPartition,
        offset: u64,
        value: ValueId,
    },
    /// A record that failed processing was produced to the dead-letter topic (by value id).
    DeadLetter {
        group: u32,
        member: u32,
        value: ValueId,
    },
    /// A member took up a partition at the group's committed offset (OffsetFetch after an
    /// assignment): where the new owner resumed. Replay tells a record's story with it.
    Resumed {
        group: u32,
        member: u32,
        generation: i32,
        partition: TopicPartition,
        offset: u64,
    },
    /// The consumer position was reset (auto.offset.reset or a seek): subsequent reads of that
    /// partition may skip without it being a poll-skip.
    PositionReset {
        group: u32,
        member: u32,
        partition: TopicPartition,
        offset: u64,
        cause: ResetCause,
    },

    // ---- transactions ----
    TxnBegin {
        producer: u32,
        txn: u64,
    },
    TxnCommit {
        producer: u32,
        txn: u64,
    },
    TxnAbort {
        producer: u32,
        txn: u64,
    },
    /// The producer tried to end transaction `txn` and cannot know how it ended (its
    /// EndTxn timed out, its connection was lost, or the producer was fenced or died while
    /// committing): the coordinator may have committed or aborted it.
    TxnUnknown {
        producer: u32,
        txn: u64,
        reason: &'static str,
    },
    /// A value was sent within transaction `txn`.
    TxnValue {
        producer: u32,
        txn: u64,
        value: ValueId,
    },

    // ---- broker side ----
    /// A replica appended records `base_offset..next_offset` of `partition` to its log: the
    /// leader a producer's batch (`leader` true), or a follower what it fetched. One event
    /// per appended batch or fetch, not per record: replay derives a record's replication.
    Appended {
        broker: NodeId,
        partition: TopicPartition,
        leader_epoch: u32,
        base_offset: u64,
        next_offset: u64,
        leader: bool,
    },
    /// A leader advanced the high watermark of a partition.
    HighWatermark {
        broker: NodeId,
        partition: TopicPartition,
        leader_epoch: u32,
        high_watermark: u64,
    },
    /// A broker became leader of a partition in `leader_epoch`.
    BecameLeader {
        broker: NodeId,
        partition: TopicPartition,
        leader_epoch: u32,
        log_end_offset: u64,
    },
    /// A replica truncated its log to `offset` (records at and above it are gone from it).
    Truncated {
        broker: NodeId,
        partition: TopicPartition,
        offset: u64,
        reason: &'static str,
    },
    /// The controller changed the ISR of a partition.
    IsrChanged {
        partition: TopicPartition,
        leader_epoch: u32,
        isr: Vec<NodeId>,
    },
}

impl HistoryEvent {
    /// Where a value was seen in a log: the position its producer's acknowledgement named
    /// (`SendOk`; `producer::OFFSET_UNKNOWN` under acks=0) or a member read it at (`Poll`).
    pub fn value_position(&self) -> Option<(ValueId, TopicPartition, u64)> {
        match self {
            HistoryEvent::SendOk {
                value,
                partition,
                offset,
                ..
            }
            | HistoryEvent::Poll {
                value,
                partition,
                offset,
                ..
            } => Some((*value, *partition, *offset)),
            _ => None,
        }
    }
}

/// Why a consumer's position was set other than by reading on (`PositionReset`): what a
/// replay tells the user, since "reset past this record" is only actionable with its cause.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetCause {
    /// The group had no committed offset for the partition: the client's reset policy
    /// (Java / librdkafka `auto.offset.reset`, sarama `Consumer.Offsets.Initial`, kafka-go
    /// `StartOffset`) chose the position.
    NoCommittedOffset,
    /// A fetch answered `OffsetOutOfRange` (the log was truncated below the position or its
    /// records deleted): the same policy chose a new one.
    OutOfRange,
    /// A standalone consumer's configured start (its `start`), with nothing committed or
    /// stored to resume from.
    Start,
    /// The application sought: back to its committed offset (an aborted
    /// consume-transform-produce batch), or to the offset its database stored with results.
    Seek,
}

impl ResetCause {
    /// The name in JSON traces.
    pub fn name(self) -> &'static str {
        match self {
            ResetCause::NoCommittedOffset => "no-committed-offset",
            ResetCause::OutOfRange => "out-of-range",
            ResetCause::Start => "start",
            ResetCause::Seek => "seek",
        }
    }
}
