//! Metadata: where partitions live, as clients and brokers learn it.

use super::ErrorCode;
use crate::node::NodeId;
use crate::record::{TopicId, TopicPartition};

#[derive(Clone, Debug)]
pub struct MetadataRequest {
    pub correlation_id: u64,
    /// Topics of interest; empty = all.
    pub topics: Vec<TopicId>,
}

impl MetadataRequest {
    pub fn wire_size(&self) -> u32 {
        8 + 4 * self.topics.len() as u32
    }
}

/// The state of one partition as the controller decided it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionState {
    pub partition: TopicPartition,
    /// `None` while the partition is offline (no eligible leader).
    pub leader: Option<NodeId>,
    pub leader_epoch: u32,
    pub isr: Vec<NodeId>,
    /// Bumped by every change of leader or ISR (KIP-497 partition epoch / ZK version).
    pub partition_epoch: u32,
    pub replicas: Vec<NodeId>,
}

#[derive(Clone, Debug)]
pub struct PartitionMetadata {
    pub error: ErrorCode,
    pub state: PartitionState,
}

#[derive(Clone, Debug)]
pub struct MetadataResponse {
    pub correlation_id: u64,
    /// Live brokers.
    pub brokers: Vec<NodeId>,
    pub controller: Option<NodeId>,
    /// Partition counts of the requested topics (topics the broker does not know are absent).
    pub topics: Vec<(TopicId, u32)>,
    pub partitions: Vec<PartitionMetadata>,
}

impl MetadataResponse {
    pub fn wire_size(&self) -> u32 {
        16 + 8 * self.brokers.len() as u32 + 40 * self.partitions.len() as u32
    }
}
