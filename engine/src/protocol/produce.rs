//! Produce: a client (or the group coordinator) appends batches to partition leaders.

use super::ErrorCode;
use crate::record::{RecordBatch, TopicPartition};
use crate::time::Duration;

/// `acks`: how many replicas must have a batch before the leader answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Acks {
    /// `acks=0`: the producer does not wait; the broker sends no response.
    None,
    /// `acks=1`: the leader's own append.
    Leader,
    /// `acks=all` (`-1`): every replica of the current ISR, and at least `min.insync.replicas`.
    All,
}

#[derive(Clone, Debug)]
pub struct ProduceRequest {
    pub correlation_id: u64,
    pub acks: Acks,
    /// How long the leader may hold the request in purgatory waiting for the ISR.
    pub timeout: Duration,
    pub transactional_id: Option<String>,
    pub batches: Vec<(TopicPartition, RecordBatch)>,
}

impl ProduceRequest {
    pub fn wire_size(&self) -> u32 {
        16 + self
            .batches
            .iter()
            .map(|(_, b)| 8 + b.wire_size())
            .sum::<u32>()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionProduceResponse {
    pub partition: TopicPartition,
    pub error: ErrorCode,
    /// Offset of the first record of the batch when `error` is `None`.
    pub base_offset: u64,
    pub log_start_offset: u64,
}

#[derive(Clone, Debug)]
pub struct ProduceResponse {
    pub correlation_id: u64,
    pub partitions: Vec<PartitionProduceResponse>,
}

impl ProduceResponse {
    pub fn wire_size(&self) -> u32 {
        8 + 28 * self.partitions.len() as u32
    }
}
