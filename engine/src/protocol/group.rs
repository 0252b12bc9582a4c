//! Consumer-group protocol: FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
//! OffsetCommit, OffsetFetch.

use super::ErrorCode;
use crate::node::NodeId;
use crate::record::{TopicId, TopicPartition};
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CoordinatorType {
    Group,
    Transaction,
}

#[derive(Clone, Debug)]
pub struct FindCoordinatorRequest {
    pub correlation_id: u64,
    pub key: String,
    pub key_type: CoordinatorType,
}

#[derive(Clone, Debug)]
pub struct FindCoordinatorResponse {
    pub correlation_id: u64,
    pub error: ErrorCode,
    pub coordinator: Option<NodeId>,
}

/// What a member sends in JoinGroup for one assignor it supports (ConsumerProtocolSubscription).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscription {
    pub topics: Vec<TopicId>,
    /// Partitions the member owns now (cooperative protocol, KIP-429) or owned (sticky).
    pub owned_partitions: Vec<TopicPartition>,
    /// Generation in which `owned_partitions` were owned (sticky user data), -1 if none.
    pub generation: i32,
}

#[derive(Clone, Debug)]
pub struct JoinGroupRequest {
    pub correlation_id: u64,
    pub group: String,
    /// Empty on the first join (the coordinator answers MemberIdRequired with an id).
    pub member_id: String,
    /// `group.instance.id` (KIP-345): a static member's name, kept across restarts.
    pub group_instance_id: Option<String>,
    /// JoinGroup v9+ (KIP-814, Java 3.2+): the client understands `skip_assignment`, so a
    /// static leader rejoining a Stable group is told it leads without assigning again.
    pub supports_skip_assignment: bool,
    pub session_timeout_ms: u32,
    pub rebalance_timeout_ms: u32,
    /// (assignor name, subscription), in the member's order of preference.
    pub protocols: Vec<(String, Subscription)>,
}

impl JoinGroupRequest {
    pub fn wire_size(&self) -> u32 {
        32 + self.group.len() as u32
            + self.member_id.len() as u32
            + instance_id_bytes(&self.group_instance_id)
            + self
                .protocols
                .iter()
                .map(|(n, s)| {
                    n.len() as u32 + 8 * s.topics.len() as u32 + 8 * s.owned_partitions.len() as u32
                })
                .sum::<u32>()
    }
}

#[derive(Clone, Debug)]
pub struct JoinGroupResponse {
    pub correlation_id: u64,
    pub error: ErrorCode,
    pub generation: i32,
    /// The assignor the coordinator chose.
    pub protocol: String,
    pub leader: String,
    pub member_id: String,
    /// Only for the leader: every member's id and subscription.
    pub members: Vec<(String, Subscription)>,
    /// KIP-814 (JoinGroup v9+): the leader of a Stable group that a static member's rejoin
    /// did not rebalance must not assign (the coordinator would ignore it).
    pub skip_assignment: bool,
}

impl JoinGroupResponse {
    /// An error answer: no generation (-1), no member, no assignment data.
    pub fn error(correlation_id: u64, error: ErrorCode) -> JoinGroupResponse {
        JoinGroupResponse {
            correlation_id,
            error,
            generation: -1,
            protocol: String::new(),
            leader: String::new(),
            member_id: String::new(),
            members: Vec::new(),
            skip_assignment: false,
        }
    }

    pub fn wire_size(&self) -> u32 {
        32 + self
            .members
            .iter()
            .map(|(m, s)| m.len() as u32 + 8 * s.topics.len() as u32)
            .sum::<u32>()
    }
}

/// A member's assignment (ConsumerProtocolAssignment).
pub type Assignment = Arc<Vec<TopicPartition>>;

#[derive(Clone, Debug)]
pub struct SyncGroupRequest {
    pub correlation_id: u64,
    pub group: String,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub generation: i32,
    /// Only from the leader: the assignment of every member.
    pub assignments: Vec<(String, Assignment)>,
}

impl SyncGroupRequest {
    pub fn wire_size(&self) -> u32 {
        24 + instance_id_bytes(&self.group_instance_id)
            + self
                .assignments
                .iter()
                .map(|(m, a)| m.len() as u32 + 8 * a.len() as u32)
                .sum::<u32>()
    }
}

#[derive(Clone, Debug)]
pub struct SyncGroupResponse {
    pub correlation_id: u64,
    pub error: ErrorCode,
    pub assignment: Assignment,
}

impl SyncGroupResponse {
    pub fn wire_size(&self) -> u32 {
        16 + 8 * self.assignment.len() as u32
    }
}

#[derive(Clone, Debug)]
pub struct HeartbeatRequest {
    pub correlation_id: u64,
    pub group: String,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub generation: i32,
}

#[derive(Clone, Debug)]
pub struct HeartbeatResponse {
    pub correlation_id: u64,
    pub error: ErrorCode,
}

#[derive(Clone, Debug)]
pub struct LeaveGroupRequest {
    pub correlation_id: u64,
    pub group: String,
    pub member_id: String,
    pub group_instance_id: Option<String>,
}

#[derive(Clone, Debug)]
pub struct LeaveGroupResponse {
    pub correlation_id: u64,
    pub error: ErrorCode,
}

#[derive(Clone, Debug)]
pub struct OffsetCommitRequest {
    pub correlation_id: u64,
    pub group: String,
    pub member_id: String,
    /// A static member's `group.instance.id` (OffsetCommit v7+), checked against the member
    /// id the instance is mapped to.
    pub group_instance_id: Option<String>,
    /// -1 for a commit from outside the group (simple consumer / standalone).
    pub generation: i32,
    /// (partition, next offset to consume, leader epoch of the last consumed record).
    pub offsets: Vec<(TopicPartition, u64, Option<u32>)>,
}

#[derive(Clone, Debug)]
pub struct OffsetCommitResponse {
    pub correlation_id: u64,
    pub results: Vec<(TopicPartition, ErrorCode)>,
}

#[derive(Clone, Debug)]
pub struct OffsetFetchRequest {
    pub correlation_id: u64,
    pub group: String,
    pub partitions: Vec<TopicPartition>,
    /// KIP-447 `require_stable`: answer UNSTABLE_OFFSET_COMMIT for a partition with a
    /// transactional offset commit still pending, rather than the last stable offset (the
    /// Java consumer sets it under `isolation.level=read_committed`).
    pub require_stable: bool,
}

#[derive(Clone, Debug)]
pub struct OffsetFetchResponse {
    pub correlation_id: u64,
    pub error: ErrorCode,
    /// (partition, committed offset or `None` when nothing was committed).
    pub offsets: Vec<(TopicPartition, Option<u64>)>,
}

/// Wire bytes of an optional `group.instance.id` (a nullable string: nothing when absent).
pub fn instance_id_bytes(id: &Option<String>) -> u32 {
    id.as_ref().map_or(0, |s| s.len() as u32)
}
