//! The group coordinator, hosted by brokers (DESIGN §2 "Consumer client + group coordinator").
//!
//! The coordinator of a group is the leader of partition `hash(group) %
//! offsets.topic.num.partitions` of `__consumer_offsets`. Its committed offsets and group
//! metadata are records of that partition ([`crate::record::InternalPayload`]), appended with
//! acks=all through the hosting broker's own log, so commits suffer the same faults as data and
//! a new coordinator reloads them from the log after a failover.
//!
//! The broker owns one [`GroupCoordinator`] and talks to it only through this module's API;
//! the coordinator reaches the broker's partitions only through [`OffsetsLog`].

use crate::node::{Cx, NodeId, Timer};
use crate::protocol::{ErrorCode, Message};
use crate::record::{Record, RecordBatch, TopicPartition};

/// Timer kinds at or above this value belong to the coordinator; the broker forwards them.
pub const COORDINATOR_TIMER_BASE: u16 = 0x4000;

/// What the coordinator needs from its hosting broker's replica manager.
pub trait OffsetsLog {
    /// `Some(leader_epoch)` if this broker currently leads `partition`.
    fn leader_epoch(&self, partition: TopicPartition) -> Option<u32>;
    /// Append `records` to `partition` as its leader, with acks=all semantics (the append is
    /// complete when the ISR has it and min.insync.replicas holds). The outcome arrives later
    /// through [`GroupCoordinator::on_append_done`] with `token`. An immediate error (not
    /// leader, not enough replicas) is returned at once and no completion follows.
    fn append(
        &mut self,
        cx: &mut Cx,
        partition: TopicPartition,
        records: Vec<Record>,
        token: u64,
    ) -> Result<(), ErrorCode>;
    /// The batches of `partition` below its high watermark, for loading after election.
    fn committed_batches(&self, partition: TopicPartition) -> Vec<RecordBatch>;
}

/// Configuration of the coordinator (broker properties, Kafka names in the docs).
#[derive(Clone, Debug)]
pub struct CoordinatorConfig {
    /// `offsets.topic.num.partitions` (default 50).
    pub offsets_partitions: u32,
    /// The internal topic's id in this cluster.
    pub offsets_topic: crate::record::TopicId,
    /// `group.initial.rebalance.delay.ms` (default 3000).
    pub initial_rebalance_delay: crate::time::Duration,
}

/// The broker-side group coordinator.
#[derive(Debug)]
pub struct GroupCoordinator {
    config: CoordinatorConfig,
}

impl GroupCoordinator {
    pub fn new(config: CoordinatorConfig) -> GroupCoordinator {
        GroupCoordinator { config }
    }

    /// The `__consumer_offsets` partition that coordinates `group` (Kafka:
    /// `Utils.abs(groupId.hashCode()) % groupMetadataTopicPartitionCount`).
    pub fn partition_for(&self, group: &str) -> TopicPartition {
        TopicPartition::new(
            self.config.offsets_topic,
            java_string_hash_abs(group) % self.config.offsets_partitions,
        )
    }

    /// Whether the broker should hand `msg` to [`GroupCoordinator::handle`].
    pub fn accepts(msg: &Message) -> bool {
        matches!(
            msg,
            Message::FindCoordinatorRequest(_)
                | Message::JoinGroupRequest(_)
                | Message::SyncGroupRequest(_)
                | Message::HeartbeatRequest(_)
                | Message::LeaveGroupRequest(_)
                | Message::OffsetCommitRequest(_)
                | Message::OffsetFetchRequest(_)
        )
    }

    /// Handle a group request from a client.
    pub fn handle(
        &mut self,
        _cx: &mut Cx,
        _from: NodeId,
        _msg: Message,
        _log: &mut dyn OffsetsLog,
    ) {
    }

    /// A coordinator timer (kind >= [`COORDINATOR_TIMER_BASE`]) is due.
    pub fn on_timer(&mut self, _cx: &mut Cx, _timer: Timer, _log: &mut dyn OffsetsLog) {}

    /// The broker became leader (`Some(epoch)`) or stopped leading (`None`) an offsets partition.
    pub fn on_leadership(
        &mut self,
        _cx: &mut Cx,
        _partition: TopicPartition,
        _leader_epoch: Option<u32>,
        _log: &mut dyn OffsetsLog,
    ) {
    }

    /// Completion of an [`OffsetsLog::append`].
    pub fn on_append_done(
        &mut self,
        _cx: &mut Cx,
        _token: u64,
        _result: ErrorCode,
        _log: &mut dyn OffsetsLog,
    ) {
    }
}

/// Java's `String.hashCode()` made non-negative as Kafka's `Utils.abs` does
/// (`Integer.MIN_VALUE` maps to 0).
pub fn java_string_hash_abs(s: &str) -> u32 {
    let mut h: i32 = 0;
    for unit in s.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(unit as i32);
    }
    if h == i32::MIN {
        0
    } else {
        h.unsigned_abs()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_hash_matches_known_values() {
        // "a".hashCode() = 97; "hello".hashCode() = 99162322
        assert_eq!(java_string_hash_abs("a"), 97);
        assert_eq!(java_string_hash_abs("hello"), 99162322);
        assert_eq!(java_string_hash_abs(""), 0);
    }
}
