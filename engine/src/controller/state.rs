//! The controller's durable state (topics, partition states, producer-id block) and the
//! interface it is kept behind. Today [`LocalMetadataLog`] writes it to the controller's own
//! disk and the active controller pushes it to the standby with `ControllerSync`; a Raft
//! quorum can later implement [`MetadataLog`] without touching election or ISR logic.

use crate::node::{Cx, Disk, DiskData, DiskEntry, FileId, NodeId};
use crate::protocol::PartitionState;
use crate::record::{TopicId, TopicPartition};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Everything a controller must not forget.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ControllerState {
    /// Epoch of the controller that last changed the state (ZooKeeper's controller epoch).
    pub controller_epoch: u32,
    /// Bumped by every change; brokers acknowledge metadata by it.
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
}

/// Where the controller state is made durable and shared. Implementations must make `commit`
/// durable before the controller acts on the new state towards brokers.
pub trait MetadataLog {
    /// The last committed state, if any (read on start).
    fn load(&self, disk: &dyn Disk) -> Option<ControllerState>;
    /// Persist `state` (the whole state: it is small).
    fn commit(&mut self, cx: &mut Cx, state: &ControllerState);
}

const FILE: FileId = FileId::Named("controller-state");

/// The controller's own disk, fsynced on every commit (as ZooKeeper and the KRaft log are).
#[derive(Debug, Default)]
pub struct LocalMetadataLog;

impl MetadataLog for LocalMetadataLog {
    fn load(&self, disk: &dyn Disk) -> Option<ControllerState> {
        let mut out = None;
        for e in disk.read(FILE) {
            if let (DiskData::Blob(b), false) = (&e.data, e.torn) {
                if let Some(s) = b.downcast_ref::<ControllerState>() {
                    out = Some(s.clone());
                }
            }
        }
        out
    }

    fn commit(&mut self, cx: &mut Cx, state: &ControllerState) {
        let bytes = 64 + 48 * state.partitions.len() as u32;
        let blob: Arc<dyn std::any::Any + Send + Sync> = Arc::new(state.clone());
        cx.disk()
            .overwrite(FILE, vec![DiskEntry::new(DiskData::Blob(blob), bytes)]);
        cx.disk_fsync(FILE, 0);
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
