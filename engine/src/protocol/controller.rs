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

/// A standby's acknowledgement that the state of `version` (from the active controller of
/// `controller_epoch`) is durable on its disk: KRaft's voter Fetch offset, which a voter
/// advances only after flushing its log (`KafkaRaftClient.appendAsFollower`).
#[derive(Clone, Debug)]
pub struct ControllerSyncAck {
    pub controller_epoch: u32,
    pub version: u64,
}

/// A candidate controller asks for a vote (KRaft's Vote RPC, KIP-595): the epoch it wants
/// and the last entry of its metadata log, which voters compare with theirs.
#[derive(Clone, Debug)]
pub struct VoteRequest {
    /// The bumped epoch the candidate runs for.
    pub candidate_epoch: u32,
    /// The controller epoch of the last state in the candidate's log (`LastOffsetEpoch`).
    pub last_epoch: u32,
    /// The version of that state (`LastOffset`).
    pub last_version: u64,
}

/// A voter's answer to a [`VoteRequest`], sent once the vote is durable.
#[derive(Clone, Debug)]
pub struct VoteResponse {
    pub candidate_epoch: u32,
    pub granted: bool,
}
