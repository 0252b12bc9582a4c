//! Controller <-> broker: registration, heartbeats, LeaderAndIsr, AlterPartition, topic
//! creation and controller-state replication to standbys.

use super::{ErrorCode, PartitionState};
use crate::node::NodeId;
use crate::record::TopicId;

#[derive(Clone, Debug)]
pub struct BrokerRegistrationRequest {
    pub correlation_id: u64,
    pub broker: NodeId,
    /// Grows with every restart of the broker's process (KIP-380 broker epoch analogue,
    /// chosen by the broker from its disk so that it is larger after every restart).
    pub incarnation: u64,
    /// The highest controller epoch the broker has followed since it started (0: none).
    pub controller_epoch: u32,
}

#[derive(Clone, Debug)]
pub struct BrokerRegistrationResponse {
    pub correlation_id: u64,
    pub error: ErrorCode,
    /// The broker epoch the controller assigned to this incarnation.
    pub broker_epoch: u64,
    pub controller_epoch: u32,
}

#[derive(Clone, Debug)]
pub struct BrokerHeartbeatRequest {
    pub correlation_id: u64,
    pub broker: NodeId,
    pub broker_epoch: u64,
    /// The highest controller epoch the broker has followed (a standby takes over above it:
    /// `controller::failover`).
    pub controller_epoch: u32,
}

#[derive(Clone, Debug)]
pub struct BrokerHeartbeatResponse {
    pub correlation_id: u64,
    pub error: ErrorCode,
    /// The broker is fenced and must register again.
    pub fenced: bool,
    pub controller_epoch: u32,
}

#[derive(Clone, Debug)]
pub struct LeaderAndIsrRequest {
    pub correlation_id: u64,
    pub controller: NodeId,
    pub controller_epoch: u32,
    /// Epoch of the receiving broker that this request is meant for.
    pub broker_epoch: u64,
    /// Live brokers (also serves as UpdateMetadata).
    pub live_brokers: Vec<NodeId>,
    /// Partition counts of every topic.
    pub topics: Vec<(TopicId, u32)>,
    /// When true the request lists every partition of the cluster (full metadata refresh).
    pub full: bool,
    pub partitions: Vec<PartitionState>,
}

impl LeaderAndIsrRequest {
    pub fn wire_size(&self) -> u32 {
        32 + 4 * self.live_brokers.len() as u32 + 40 * self.partitions.len() as u32
    }
}

#[derive(Clone, Debug)]
pub struct LeaderAndIsrResponse {
    pub correlation_id: u64,
    pub error: ErrorCode,
    pub partitions: Vec<(crate::record::TopicPartition, ErrorCode)>,
}

/// A partition leader asks the controller to change the ISR (KIP-497).
#[derive(Clone, Debug)]
pub struct AlterPartitionRequest {
    pub correlation_id: u64,
    pub broker: NodeId,
    pub broker_epoch: u64,
    pub partition: crate::record::TopicPartition,
    pub leader_epoch: u32,
    pub new_isr: Vec<NodeId>,
    /// The partition epoch the proposal is based on; stale proposals are rejected.
    pub partition_epoch: u32,
}

#[derive(Clone, Debug)]
pub struct AlterPartitionResponse {
    pub correlation_id: u64,
    pub error: ErrorCode,
    pub partition: crate::record::TopicPartition,
    pub leader_epoch: u32,
    pub isr: Vec<NodeId>,
    pub partition_epoch: u32,
}

#[derive(Clone, Debug)]
pub struct NewTopic {
    pub topic: TopicId,
    pub partitions: u32,
    pub replication_factor: u32,
}

#[derive(Clone, Debug)]
pub struct CreateTopicsRequest {
    pub correlation_id: u64,
    pub topics: Vec<NewTopic>,
}

#[derive(Clone, Debug)]
pub struct CreateTopicsResponse {
    pub correlation_id: u64,
    pub error: ErrorCode,
}

/// CreatePartitions (Admin `createPartitions` with `NewPartitions.increaseTo(count)`): grow
/// `topic` to `count` partitions in total. The total, not the increment, so a retried request
/// is harmless: the second one is refused with InvalidPartitions.
#[derive(Clone, Debug)]
pub struct CreatePartitionsRequest {
    pub correlation_id: u64,
    pub topic: TopicId,
    pub count: u32,
}

#[derive(Clone, Debug)]
pub struct CreatePartitionsResponse {
    pub correlation_id: u64,
    pub error: ErrorCode,
}

/// The active controller's replicated state, pushed to standbys.
#[derive(Clone, Debug)]
pub struct ControllerSync {
    pub controller_epoch: u32,
    /// Monotonic version of the controller state.
    pub version: u64,
    pub topics: Vec<(TopicId, u32)>,
    pub partitions: Vec<PartitionState>,
    pub next_producer_id: i64,
    /// The process incarnation each broker last registered with, so a new active controller
    /// recognises a broker restart (and moves the dead process's leaderships) as KRaft does
    /// with broker registrations in its metadata log.
    pub broker_incarnations: Vec<(NodeId, u64)>,
}

#[derive(Clone, Debug)]
pub struct ControllerSyncAck {
    pub controller_epoch: u32,
    pub version: u64,
}
