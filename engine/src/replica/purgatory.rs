//! Delayed operations (Kafka's `DelayedProduce` / `DelayedFetch` in a purgatory). A produce
//! with acks=all waits until the high watermark covers its batch (and, under a flush policy,
//! until the batch is fsynced) or its timeout fires (RequestTimedOut); a fetch waits up to its
//! max wait for data. Both are completed by the events that can satisfy them: HW movement,
//! appends, fsync completion, loss of leadership.

use crate::node::{NodeId, TimerId};
use crate::partition_map::PartitionMap;
use crate::protocol::{ErrorCode, FetchRequest, PartitionProduceResponse};
use crate::record::TopicPartition;
use std::collections::BTreeMap;

/// Most delayed operations a broker holds; beyond that something is wrong (assert).
pub const MAX_DELAYED: usize = 100_000;

/// Who waits for a produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProduceOrigin {
    Client {
        node: NodeId,
        correlation_id: u64,
    },
    /// An append of the group coordinator, completed through `on_append_done(token)`.
    Coordinator {
        token: u64,
    },
}

/// One partition of a delayed produce that is not complete yet.
#[derive(Clone, Copy, Debug)]
pub struct PendingAppend {
    pub partition: TopicPartition,
    pub base_offset: u64,
    /// The HW must reach this (the batch's next offset); 0 when only an fsync is awaited.
    pub required_offset: u64,
    /// The batch's end, which a flush policy may require to be synced first.
    pub end_offset: u64,
    pub leader_epoch: u32,
}

#[derive(Debug)]
pub struct DelayedProduce {
    pub origin: ProduceOrigin,
    pub pending: Vec<PendingAppend>,
    pub done: Vec<PartitionProduceResponse>,
    /// Set once the produce is parked (a produce answered at once needs no timer).
    pub timer: Option<TimerId>,
}

#[derive(Debug)]
pub struct DelayedFetch {
    pub from: NodeId,
    /// The request with every partition it fetches (an incremental fetch's whole session).
    pub request: FetchRequest,
    /// How its answer is shaped (sessionless, full, or incremental: only what changed).
    pub context: super::fetch_session::FetchContext,
    pub timer: TimerId,
}

/// What a delayed operation waits on: the partitions it is indexed under. An operation
/// names them for as long as it is in the purgatory (it may name more, never fewer), so
/// that removing it touches only its own partitions' lists.
pub trait Watches {
    fn watched(&self, f: impl FnMut(TopicPartition));
}

impl Watches for DelayedFetch {
    fn watched(&self, f: impl FnMut(TopicPartition)) {
        self.request
            .partitions
            .iter()
            .map(|p| p.partition)
            .for_each(f);
    }
}

impl Watches for DelayedProduce {
    /// The partitions still pending and those settled (`settle_where` moves a settled append
    /// to `done`, and nothing else takes one out of `pending` while the produce is parked).
    fn watched(&self, f: impl FnMut(TopicPartition)) {
        let pending = self.pending.iter().map(|p| p.partition);
        pending
            .chain(self.done.iter().map(|d| d.partition))
            .for_each(f);
    }
}

/// Delayed operations by id, indexed by the partitions they wait on (Kafka's
/// `DelayedOperationPurgatory` keeps a watcher list per key in the same way).
#[derive(Debug)]
pub struct Purgatory<T> {
    ops: BTreeMap<u64, T>,
    /// Per partition, the ids of the operations watching it, ascending. A list stays when it
    /// empties: the next operation on that partition reuses its room (a follower's parked
    /// fetch watches every partition of its session, and such fetches come and go all the
    /// time), and a broker hosts a bounded number of partitions.
    by_partition: PartitionMap<Vec<u64>>,
}

impl<T> Default for Purgatory<T> {
    fn default() -> Self {
        Purgatory {
            ops: BTreeMap::new(),
            by_partition: PartitionMap::new(),
        }
    }
}

impl<T: Watches> Purgatory<T> {
    /// Park `op` under `id`, watching the partitions it names.
    pub fn insert(&mut self, id: u64, op: T) {
        assert!(
            self.ops.len() < MAX_DELAYED,
            "purgatory full: {} operations",
            self.ops.len()
        );
        assert!(
            !self.ops.contains_key(&id),
            "purgatory: operation {id} inserted twice"
        );
        let mut named = 0;
        op.watched(|tp| {
            named += 1;
            let ids = self.by_partition.get_or_insert_with(tp, Vec::new);
            // Ids grow (`ReplicaManager::next_id`), so this is a push but for a partition
            // named twice.
            let at = ids.partition_point(|&x| x < id);
            if ids.get(at) != Some(&id) {
                ids.insert(at, id);
            }
        });
        // Parked operations wait on something: a fetch answers at once when it names no
        // partition, a produce when none of its appends waits; one that watched nothing would
        // be woken by its timer only.
        assert!(named > 0, "purgatory: operation {id} watches no partition");
        self.ops.insert(id, op);
    }

    pub fn remove(&mut self, id: u64) -> Option<T> {
        let op = self.ops.remove(&id)?;
        let mut found = false;
        op.watched(|tp| {
            if let Some(ids) = self.by_partition.get_mut(&tp) {
                if let Ok(at) = ids.binary_search(&id) {
                    ids.remove(at);
                    found = true;
                }
            }
        });
        // It was indexed under at least one partition it still names.
        assert!(
            found,
            "purgatory: operation {id} found under none of its partitions"
        );
        // Every test: the operation named every partition it was indexed under.
        if cfg!(debug_assertions) {
            assert!(
                self.by_partition.values().all(|ids| !ids.contains(&id)),
                "purgatory: removed operation {id} still indexed"
            );
        }
        Some(op)
    }
}

impl<T> Purgatory<T> {
    /// Ids of operations watching `tp`, in order.
    pub fn watching(&self, tp: TopicPartition) -> Vec<u64> {
        let ids = self.by_partition.get(&tp).map_or(Vec::new(), Vec::clone);
        // The index names only operations the purgatory holds (removal cleans it).
        assert!(
            ids.iter().all(|id| self.ops.contains_key(id)),
            "purgatory: {tp} indexes a removed operation"
        );
        ids
    }

    pub fn get(&self, id: u64) -> Option<&T> {
        self.ops.get(&id)
    }

    pub fn get_mut(&mut self, id: u64) -> Option<&mut T> {
        self.ops.get_mut(&id)
    }

    pub fn ids(&self) -> Vec<u64> {
        self.ops.keys().copied().collect()
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// The outcome of one pending append given the partition's current state; `leader_epoch` is
/// the epoch this broker leads the partition in, `None` when it does not lead it.
///
/// Only the loss of leadership fails an append, not a new leader epoch: Kafka's
/// `DelayedProduce.tryComplete` asks `Partition.checkEnoughReplicasReachOffset`, which answers
/// NOT_LEADER_OR_FOLLOWER only when the broker has no leader log. A broker re-elected leader in
/// a later epoch without having been a follower in between (its metadata delta skipped the
/// intermediate state) never truncated, so its pending appends are still in its log and
/// complete when the high watermark reaches them. A broker that became a follower fails them
/// at that moment (`ReplicaManager::fail_delayed`), before it can truncate.
pub fn check_append(
    p: &PendingAppend,
    leader_epoch: Option<u32>,
    high_watermark: u64,
    synced: bool,
    isr_size: usize,
    min_insync: u32,
) -> Option<ErrorCode> {
    assert!(
        p.base_offset < p.end_offset,
        "{:?}: a pending append of nothing at {}",
        p.partition,
        p.base_offset
    );
    // acks=all waits for the HW to pass the batch's end; otherwise only an fsync is awaited.
    assert!(
        p.required_offset == 0 || p.required_offset == p.end_offset,
        "{:?}: an append waits for offset {}, not its end {}",
        p.partition,
        p.required_offset,
        p.end_offset
    );
    let Some(epoch) = leader_epoch else {
        return Some(ErrorCode::NotLeaderOrFollower);
    };
    assert!(
        epoch >= p.leader_epoch,
        "{:?}: leading in epoch {epoch}, below the append's epoch {}",
        p.partition,
        p.leader_epoch
    );
    if high_watermark < p.required_offset || !synced {
        return None;
    }
    if p.required_offset > 0 && (isr_size as u32) < min_insync {
        return Some(ErrorCode::NotEnoughReplicasAfterAppend);
    }
    Some(ErrorCode::None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::TopicId;

    #[test]
    fn append_completes_on_hw_and_fails_when_no_longer_leading() {
        let p = PendingAppend {
            partition: TopicPartition::new(TopicId(0), 0),
            base_offset: 4,
            required_offset: 5,
            end_offset: 5,
            leader_epoch: 2,
        };
        assert_eq!(check_append(&p, Some(2), 4, true, 3, 2), None);
        assert_eq!(
            check_append(&p, Some(2), 5, true, 3, 2),
            Some(ErrorCode::None)
        );
        assert_eq!(check_append(&p, Some(2), 5, false, 3, 2), None);
        assert_eq!(
            check_append(&p, Some(2), 5, true, 1, 2),
            Some(ErrorCode::NotEnoughReplicasAfterAppend)
        );
        assert_eq!(
            check_append(&p, None, 9, true, 3, 2),
            Some(ErrorCode::NotLeaderOrFollower)
        );
        // Re-elected in a later epoch without a follower phase: still waits, then completes.
        assert_eq!(check_append(&p, Some(4), 4, true, 3, 2), None);
        assert_eq!(
            check_append(&p, Some(4), 5, true, 3, 2),
            Some(ErrorCode::None)
        );
    }

    #[test]
    fn purgatory_indexes_by_partition() {
        let tp = |n| TopicPartition::new(TopicId(0), n);
        let mut pg: Purgatory<Op> = Purgatory::default();
        pg.insert(2, Op("b", vec![tp(1)]));
        // Out of id order, and a partition named twice.
        pg.insert(1, Op("a", vec![tp(0), tp(1), tp(0)]));
        pg.insert(3, Op("c", vec![tp(1), tp(2)]));
        assert_eq!(pg.watching(tp(1)), vec![1, 2, 3]);
        assert_eq!(pg.watching(tp(0)), vec![1]);
        assert_eq!(pg.remove(1).map(|o| o.0), Some("a"));
        assert!(pg.watching(tp(0)).is_empty());
        assert_eq!(pg.watching(tp(1)), vec![2, 3]);
        assert_eq!(pg.remove(1).map(|o| o.0), None);
        // An emptied list keeps its place for the next operation.
        pg.insert(4, Op("d", vec![tp(0)]));
        assert_eq!(pg.watching(tp(0)), vec![4]);
        assert_eq!(pg.len(), 3);
        assert_eq!(pg.ids(), vec![2, 3, 4]);
    }

    /// An operation that stops naming a partition it was indexed under would leave its id
    /// behind: debug builds catch it at removal.
    #[cfg(debug_assertions)]
    #[test]
    #[should_panic(expected = "removed operation 1 still indexed")]
    fn removing_an_operation_that_forgot_a_partition_fires() {
        let tp = |n| TopicPartition::new(TopicId(0), n);
        let mut pg: Purgatory<Op> = Purgatory::default();
        pg.insert(1, Op("a", vec![tp(0), tp(1)]));
        pg.get_mut(1).expect("parked").1.pop();
        pg.remove(1);
    }

    #[test]
    #[should_panic(expected = "operation 1 watches no partition")]
    fn parking_an_operation_that_watches_nothing_fires() {
        let mut pg: Purgatory<Op> = Purgatory::default();
        pg.insert(1, Op("a", Vec::new()));
    }

    /// A test operation: a name and the partitions it watches.
    struct Op(&'static str, Vec<TopicPartition>);

    impl Watches for Op {
        fn watched(&self, f: impl FnMut(TopicPartition)) {
            self.1.iter().copied().for_each(f);
        }
    }
}
