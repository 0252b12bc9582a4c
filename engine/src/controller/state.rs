//! The controller's durable state (topics, partition states, producer-id block) and the
//! interface it is kept behind. Each controller is a voter of the metadata quorum
//! ([`super::quorum`]): [`MetadataLog`] is that voter's own copy of the metadata log (the whole
//! state as its last entry: it is small) and its vote, and [`LocalMetadataLog`] keeps both on
//! the controller's disk as KRaft's `KafkaMetadataLog` and `FileQuorumStateStore` do.

use crate::node::{Cx, Disk, DiskData, DiskEntry, FileId, NodeId};
use crate::protocol::PartitionState;
use crate::record::{TopicId, TopicPartition};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Everything a controller must not forget.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ControllerState {
    /// Epoch of the controller that last changed the state (ZooKeeper's controller epoch;
    /// KRaft's epoch of the last log entry).
    pub controller_epoch: u32,
    /// Bumped by every change (KRaft's log offset); brokers acknowledge metadata by it.
    pub version: u64,
    pub topics: Vec<(TopicId, u32)>,
    pub partitions: BTreeMap<TopicPartition, PartitionState>,
    /// Next producer id handed out by InitProducerId.
    pub next_producer_id: i64,
    /// The incarnation each broker last registered with.
    pub incarnations: BTreeMap<NodeId, u64>,
}

impl ControllerState {
    pub fn partition(&self, tp: TopicPartition) -> Option<&PartitionState> {
        self.partitions.get(&tp)
    }

    /// The position of this state in the metadata log, compared as KRaft compares logs in an
    /// election (`OffsetAndEpoch`: the epoch of the last entry, then its offset).
    pub fn position(&self) -> (u32, u64) {
        (self.controller_epoch, self.version)
    }
}

/// A voter's vote: the epoch and the controller it voted for in it (KRaft's `quorum-state`
/// file: `votedId` and `leaderEpoch`). It must survive a restart, or a voter could vote twice
/// in one epoch and two controllers win it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vote {
    pub epoch: u32,
    pub candidate: NodeId,
}

/// One voter's durable copy of the metadata log and its vote. Writes go to the page cache at
/// once and are durable when the fsync they start completes (`Node::on_disk` with the file and
/// the token named below): a voter acknowledges an entry or grants a vote only then.
pub trait MetadataLog {
    /// The last state written, if any (read on start).
    fn load(&self, disk: &dyn Disk) -> Option<ControllerState>;
    /// Write `state` as the log's last entry (the whole state: it is small) and fsync
    /// [`LOG_FILE`] with `state.version` as the token.
    fn append(&mut self, cx: &mut Cx, state: &ControllerState);
    /// The last vote written, if any.
    fn load_vote(&self, disk: &dyn Disk) -> Option<Vote>;
    /// Write `vote` and fsync [`VOTE_FILE`] with `vote.epoch` as the token.
    fn write_vote(&mut self, cx: &mut Cx, vote: Vote);
}

/// The file of the controller state.
pub const LOG_FILE: FileId = FileId::Named("controller-state");
/// The file of the vote.
pub const VOTE_FILE: FileId = FileId::Named("quorum-state");

/// The controller's own disk, fsynced on every write (as the KRaft log and quorum-state are).
#[derive(Debug, Default)]
pub struct LocalMetadataLog;

/// The last intact blob of type `T` in `file`.
fn last_blob<T: Clone + 'static>(disk: &dyn Disk, file: FileId) -> Option<T> {
    let mut out = None;
    for e in disk.read(file) {
        if let (DiskData::Blob(b), false) = (&e.data, e.torn) {
            if let Some(s) = b.downcast_ref::<T>() {
                out = Some(s.clone());
            }
        }
    }
    out
}

impl MetadataLog for LocalMetadataLog {
    fn load(&self, disk: &dyn Disk) -> Option<ControllerState> {
        last_blob(disk, LOG_FILE)
    }

    fn append(&mut self, cx: &mut Cx, state: &ControllerState) {
        let bytes = 64 + 48 * state.partitions.len() as u32;
        let blob: Arc<dyn std::any::Any + Send + Sync> = Arc::new(state.clone());
        cx.disk()
            .overwrite(LOG_FILE, vec![DiskEntry::new(DiskData::Blob(blob), bytes)]);
        cx.disk_fsync(LOG_FILE, state.version);
    }

    fn load_vote(&self, disk: &dyn Disk) -> Option<Vote> {
        last_blob(disk, VOTE_FILE)
    }

    fn write_vote(&mut self, cx: &mut Cx, vote: Vote) {
        let blob: Arc<dyn std::any::Any + Send + Sync> = Arc::new(vote);
        cx.disk()
            .overwrite(VOTE_FILE, vec![DiskEntry::new(DiskData::Blob(blob), 16)]);
        cx.disk_fsync(VOTE_FILE, u64::from(vote.epoch));
    }
}

/// Kafka's replica placement without racks (`AdminUtils.assignReplicasToBrokers`): the first
/// replica of partition `p` is broker `(start + p) % n`, the others follow at a shift that
/// grows every `n` partitions. `start` and the initial shift are Kafka's random draws; kafsim
/// derives them from the topic id so placement is reproducible and leaders spread.
pub fn assign_replicas(
    brokers: &[NodeId],
    topic: TopicId,
    partitions: u32,
    rf: u32,
) -> Vec<Vec<NodeId>> {
    let n = brokers.len() as u32;
    assert!(
        rf >= 1 && rf <= n,
        "topic {}: replication factor {rf} with {n} brokers",
        topic.0
    );
    let start = topic.0 % n;
    let mut shift = topic.0 % n;
    (0..partitions)
        .map(|p| {
            if p > 0 && p % n == 0 {
                shift += 1;
            }
            let first = (start + p) % n;
            let mut replicas = vec![brokers[first as usize]];
            for j in 0..rf - 1 {
                let s = 1 + (shift + j) % (n - 1).max(1);
                replicas.push(brokers[((first + s) % n) as usize]);
            }
            replicas
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_spreads_leaders_and_never_repeats_a_broker() {
        let brokers = [NodeId(1), NodeId(2), NodeId(3)];
        let a = assign_replicas(&brokers, TopicId(0), 6, 3);
        let leaders: Vec<_> = a.iter().map(|r| r[0]).collect();
        assert_eq!(
            leaders,
            vec![
                NodeId(1),
                NodeId(2),
                NodeId(3),
                NodeId(1),
                NodeId(2),
                NodeId(3)
            ]
        );
        for r in &a {
            let mut s = r.clone();
            s.sort();
            s.dedup();
            assert_eq!(s.len(), 3, "{r:?}");
        }
        assert_eq!(assign_replicas(&brokers, TopicId(1), 1, 2)[0][0], NodeId(2));
    }
}
