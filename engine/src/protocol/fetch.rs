//! Fetch (followers and consumers), ListOffsets and OffsetsForLeaderEpoch.

use super::ErrorCode;
use crate::node::NodeId;
use crate::record::{RecordBatch, TopicPartition};
use crate::time::Duration;

/// `isolation.level` of a consumer fetch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum IsolationLevel {
    #[default]
    ReadUncommitted,
    ReadCommitted,
}

/// `FetchMetadata.INVALID_SESSION_ID`: no fetch session (a sessionless or a first full fetch).
pub const INVALID_SESSION_ID: u64 = 0;
/// `FetchMetadata.INITIAL_EPOCH`: a full fetch that asks for a new session (closing the one
/// it names, if any).
pub const INITIAL_EPOCH: i32 = 0;
/// `FetchMetadata.FINAL_EPOCH`: a full fetch that wants no session (consumers here, and
/// clients before KIP-227).
pub const FINAL_EPOCH: i32 = -1;

/// `FetchMetadata.nextEpoch`: the session epoch after `prev` (wrapping to 1, never to the
/// initial or final epoch).
pub fn next_fetch_epoch(prev: i32) -> i32 {
    if prev < 0 {
        FINAL_EPOCH
    } else if prev == i32::MAX {
        1
    } else {
        prev + 1
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FetchPartition {
    pub partition: TopicPartition,
    pub fetch_offset: u64,
    /// The leader epoch the fetcher believes current (KIP-320 fencing); `None` = unchecked.
    pub current_leader_epoch: Option<u32>,
    /// Epoch of the last fetched batch, for divergence detection (KIP-595 style).
    pub last_fetched_epoch: Option<u32>,
    /// Follower's log start offset (followers only).
    pub log_start_offset: u64,
    pub partition_max_bytes: u32,
}

#[derive(Clone, Debug)]
pub struct FetchRequest {
    pub correlation_id: u64,
    /// `Some(broker)` for a follower's replica fetch, `None` for a consumer.
    pub replica_id: Option<NodeId>,
    /// Broker epoch of a fetching follower, so a leader can ignore a zombie incarnation.
    pub replica_epoch: u64,
    pub max_wait: Duration,
    pub min_bytes: u32,
    pub max_bytes: u32,
    pub isolation_level: IsolationLevel,
    /// KIP-227's fetch session this request continues or closes (`INVALID_SESSION_ID`: none).
    /// kafsim's ids are 64-bit (Kafka's are random 31-bit integers) so that they can carry
    /// the leader's incarnation and never repeat across its restarts.
    pub session_id: u64,
    /// The session epoch: `INITIAL_EPOCH` or `FINAL_EPOCH` for a full fetch, else the
    /// epoch the session expects (a full fetch names every partition; an incremental one only
    /// those added or whose fetch state changed since the last request).
    pub session_epoch: i32,
    pub partitions: Vec<FetchPartition>,
    /// Partitions an incremental fetch removes from its session (`forgottenTopicsData`).
    pub forgotten: Vec<TopicPartition>,
}

impl FetchRequest {
    pub fn wire_size(&self) -> u32 {
        24 + 28 * self.partitions.len() as u32 + 8 * self.forgotten.len() as u32
    }

    /// A full fetch (`FetchMetadata.isFull`): it names every partition it fetches.
    pub fn is_full(&self) -> bool {
        self.session_epoch == INITIAL_EPOCH || self.session_epoch == FINAL_EPOCH
    }
}

/// Set when the fetcher's log diverges from the leader's (epoch, end offset of that epoch).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochEndOffset {
    pub epoch: u32,
    pub end_offset: u64,
}

#[derive(Clone, Debug)]
pub struct FetchPartitionResponse {
    pub partition: TopicPartition,
    pub error: ErrorCode,
    pub high_watermark: u64,
    pub last_stable_offset: u64,
    pub log_start_offset: u64,
    /// The leader epoch of the responding leader.
    pub leader_epoch: u32,
    pub diverging_epoch: Option<EpochEndOffset>,
    /// Aborted transactions overlapping the returned range (producer id, first offset).
    pub aborted_transactions: Vec<(i64, u64)>,
    pub batches: Vec<RecordBatch>,
}

#[derive(Clone, Debug)]
pub struct FetchResponse {
    pub correlation_id: u64,
    /// A session error (`FETCH_SESSION_ID_NOT_FOUND`, `INVALID_FETCH_SESSION_EPOCH`), with no
    /// partitions; `None` otherwise.
    pub error: ErrorCode,
    /// The session the fetcher is to continue (`INVALID_SESSION_ID`: none).
    pub session_id: u64,
    /// Every partition of a sessionless or full fetch; of an incremental one, only those with
    /// something new (`CachedPartition.maybeUpdateResponseData`).
    pub partitions: Vec<FetchPartitionResponse>,
}

impl FetchResponse {
    pub fn wire_size(&self) -> u32 {
        8 + self
            .partitions
            .iter()
            .map(|p| 40 + p.batches.iter().map(|b| b.wire_size()).sum::<u32>())
            .sum::<u32>()
    }
}

/// ListOffsets: `timestamp` -2 = earliest, -1 = latest (Kafka's sentinel values).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OffsetSpec {
    Earliest,
    Latest,
}

#[derive(Clone, Debug)]
pub struct ListOffsetsRequest {
    pub correlation_id: u64,
    pub isolation_level: IsolationLevel,
    pub partitions: Vec<(TopicPartition, OffsetSpec)>,
}

#[derive(Clone, Debug)]
pub struct ListOffsetsResponse {
    pub correlation_id: u64,
    pub partitions: Vec<(TopicPartition, ErrorCode, u64)>,
}

#[derive(Clone, Debug)]
pub struct OffsetsForLeaderEpochRequest {
    pub correlation_id: u64,
    /// `Some(broker)` when a follower asks (then the leader answers from its own log).
    pub replica_id: Option<NodeId>,
    /// (partition, the requester's current leader epoch, the epoch asked about).
    pub partitions: Vec<(TopicPartition, u32, u32)>,
}

#[derive(Clone, Debug)]
pub struct OffsetsForLeaderEpochResponse {
    pub correlation_id: u64,
    /// (partition, error, the largest epoch <= the asked one, and the end offset of it).
    pub partitions: Vec<(TopicPartition, ErrorCode, EpochEndOffset)>,
}
