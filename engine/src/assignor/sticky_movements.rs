//! Bookkeeping of partition moves during one sticky rebalance (kafka-python's
//! `PartitionMovements`, Java's `PartitionMovements` in `AbstractStickyAssignor`).
//!
//! When the balancing loop wants to move a partition from `old` to `new` although some other
//! partition of the same topic already moved from `new` to `old` in this rebalance, it moves
//! that one back instead. This keeps the moves of one topic between two members from going in
//! both directions, which would cost stickiness for nothing.

use std::collections::{BTreeMap, BTreeSet};

/// A topic-partition as the sticky executor indexes it: (topic index, partition).
pub(crate) type Tp = (u32, u32);
/// A member index (position in the id-sorted member list).
pub(crate) type Member = usize;

/// A move from `.0` (source) to `.1` (destination).
type Pair = (Member, Member);

#[derive(Default)]
pub(crate) struct Movements {
    by_partition: BTreeMap<Tp, Pair>,
    by_topic: BTreeMap<u32, BTreeMap<Pair, BTreeSet<Tp>>>,
}

impl Movements {
    /// Records that `partition` moves from `old` to `new`, collapsing it with an earlier move
    /// of the same partition (A->B then B->C is A->C; A->B then B->A is no move at all).
    pub(crate) fn record(&mut self, partition: Tp, old: Member, new: Member) {
        assert_ne!(
            old, new,
            "sticky: partition {partition:?} moved onto its owner {old}"
        );
        let Some(existing) = self.remove(partition) else {
            self.add(partition, (old, new));
            return;
        };
        assert_eq!(
            existing.1, old,
            "sticky: partition {partition:?} owner out of sync"
        );
        if existing.0 != new {
            self.add(partition, (existing.0, new));
        }
    }

    /// The partition to move instead of `partition` (which `old` owns) to `new`: one of the
    /// same topic that already moved the opposite way, if any (the smallest; kafka-python
    /// takes an arbitrary element of a set), else `partition` itself.
    pub(crate) fn partition_to_move(&self, partition: Tp, old: Member, new: Member) -> Tp {
        let Some(topic_moves) = self.by_topic.get(&partition.0) else {
            return partition;
        };
        let mut origin = old;
        if let Some(&(source, destination)) = self.by_partition.get(&partition) {
            assert_eq!(
                old, destination,
                "sticky: partition {partition:?} owner out of sync"
            );
            origin = source;
        }
        match topic_moves.get(&(new, origin)).and_then(|set| set.first()) {
            Some(&reverse) => reverse,
            None => partition,
        }
    }

    fn remove(&mut self, partition: Tp) -> Option<Pair> {
        let pair = self.by_partition.remove(&partition)?;
        let topic_moves = self
            .by_topic
            .get_mut(&partition.0)
            .expect("sticky: movement index");
        let set = topic_moves.get_mut(&pair).expect("sticky: movement pair");
        set.remove(&partition);
        if set.is_empty() {
            topic_moves.remove(&pair);
        }
        if topic_moves.is_empty() {
            self.by_topic.remove(&partition.0);
        }
        Some(pair)
    }

    fn add(&mut self, partition: Tp, pair: Pair) {
        self.by_partition.insert(partition, pair);
        let topic_moves = self.by_topic.entry(partition.0).or_default();
        topic_moves.entry(pair).or_default().insert(partition);
    }
}

#[cfg(test)]
mod tests {
    use super::Movements;

    #[test]
    fn a_move_back_cancels_and_a_reverse_move_is_reused() {
        let mut moves = Movements::default();
        assert_eq!(moves.partition_to_move((0, 1), 0, 1), (0, 1));
        moves.record((0, 1), 0, 1);
        // Moving another partition of topic 0 from 1 to 0 reuses the one that went 0 -> 1.
        assert_eq!(moves.partition_to_move((0, 5), 1, 0), (0, 1));
        // Another topic is unaffected.
        assert_eq!(moves.partition_to_move((1, 5), 1, 0), (1, 5));
        moves.record((0, 1), 1, 0);
        assert_eq!(moves.partition_to_move((0, 5), 1, 0), (0, 5));
    }
}
