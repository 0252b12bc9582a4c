//! Committed offsets as the coordinator serves them, and commits waiting for their
//! `__consumer_offsets` append.
//!
//! Kafka updates its offset cache only once the commit's append is acknowledged by the ISR
//! (acks=all), so an OffsetFetch never returns an offset that a failover could take back.

use crate::node::NodeId;
use crate::record::TopicPartition;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Committed offset of one partition: (next offset to consume, leader epoch of the last
/// consumed record).
pub type Committed = (u64, Option<u32>);

/// Most transactional offsets one coordinator holds pending (a bound: each waits for its
/// transaction's marker, at most `transaction.timeout.ms` away).
pub const MAX_TXN_PENDING: usize = 1_000_000;

/// Offsets of every loaded group, by group name.
#[derive(Debug, Default)]
pub struct OffsetCache {
    groups: BTreeMap<Arc<str>, BTreeMap<TopicPartition, Committed>>,
    /// Transactional offsets not yet committed or aborted, per group and producer id
    /// (`GroupMetadata.pendingTransactionalOffsetCommits`).
    txn_pending: BTreeMap<Arc<str>, BTreeMap<i64, BTreeMap<TopicPartition, PendingTxnOffset>>>,
}

/// A transactional offset waiting for its transaction's marker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PendingTxnOffset {
    pub committed: Committed,
    /// Its record is in the log (`appendedBatchOffset` is defined): only such offsets become
    /// visible at a commit marker.
    pub appended: bool,
    /// Who committed it, for the history (the producer's node and the member's generation).
    pub client: NodeId,
    pub generation: i32,
}

impl OffsetCache {
    pub fn get(&self, group: &str, partition: TopicPartition) -> Option<Committed> {
        self.groups.get(group)?.get(&partition).copied()
    }

    pub fn put(&mut self, group: &Arc<str>, partition: TopicPartition, committed: Committed) {
        self.groups
            .entry(group.clone())
            .or_default()
            .insert(partition, committed);
        assert_eq!(
            self.get(group, partition),
            Some(committed),
            "group {group}: {partition} not committed as stored"
        );
    }

    /// Forget every group for which `owns` is false (the coordinator lost its partition).
    pub fn retain_groups(&mut self, mut owns: impl FnMut(&str) -> bool) {
        self.groups.retain(|g, _| owns(g));
        self.txn_pending.retain(|g, _| owns(g));
        assert!(
            self.groups
                .keys()
                .chain(self.txn_pending.keys())
                .all(|g| owns(g)),
            "offset cache: an unowned group survived"
        );
    }

    /// `prepareTxnOffsetCommit` (before the append) and `onTxnOffsetCommitAppend` (after it,
    /// with `appended`): the pending offset of `producer_id` for `partition`.
    pub fn put_txn_pending(
        &mut self,
        group: &Arc<str>,
        producer_id: i64,
        partition: TopicPartition,
        pending: PendingTxnOffset,
    ) {
        assert!(
            producer_id >= 0,
            "group {group}: a transactional offset of producer {producer_id}"
        );
        let held: usize = self
            .txn_pending
            .values()
            .flat_map(|by| by.values())
            .map(|o| o.len())
            .sum();
        assert!(
            held < MAX_TXN_PENDING,
            "offset cache: {held} transactional offsets pending"
        );
        self.txn_pending
            .entry(group.clone())
            .or_default()
            .entry(producer_id)
            .or_default()
            .insert(partition, pending);
        assert!(
            self.txn_pending_for(group, partition),
            "group {group}: producer {producer_id}'s offset of {partition} not held pending"
        );
    }

    /// `failPendingTxnOffsetCommit`: the append failed; forget the offset unless an earlier
    /// append of the same producer's transaction holds it.
    pub fn fail_txn_pending(&mut self, group: &str, producer_id: i64, partition: TopicPartition) {
        assert!(
            producer_id >= 0,
            "group {group}: a failed transactional offset of producer {producer_id}"
        );
        let Some(by_producer) = self.txn_pending.get_mut(group) else {
            return;
        };
        if let Some(offsets) = by_producer.get_mut(&producer_id) {
            if offsets.get(&partition).is_some_and(|p| !p.appended) {
                offsets.remove(&partition);
            }
            if offsets.is_empty() {
                by_producer.remove(&producer_id);
            }
        }
        if by_producer.is_empty() {
            self.txn_pending.remove(group);
        }
        assert!(
            self.no_empty_pending(group),
            "group {group}: an empty pending map kept after a failed offset of {producer_id}"
        );
        // An offset whose append succeeded stays: it may still become visible at a commit.
        assert!(
            self.txn_pending
                .get(group)
                .and_then(|by| by.get(&producer_id))
                .and_then(|o| o.get(&partition))
                .is_none_or(|p| p.appended),
            "group {group}: a failed transactional offset of {producer_id} kept"
        );
    }

    /// `completePendingTxnOffsetCommit`: the marker of `producer_id`'s transaction is in the
    /// group's partition. A commit makes its appended offsets the group's committed ones (an
    /// offset whose record never reached the log is dropped: Kafka cannot get there, as the
    /// client commits only after TxnOffsetCommit was answered); an abort discards them. The
    /// offsets made visible, in partition order.
    pub fn complete_txn(
        &mut self,
        group: &Arc<str>,
        producer_id: i64,
        commit: bool,
    ) -> Vec<(TopicPartition, PendingTxnOffset)> {
        assert!(
            producer_id >= 0,
            "group {group}: a transaction of producer {producer_id} completed"
        );
        let Some(by_producer) = self.txn_pending.get_mut(group) else {
            return Vec::new();
        };
        let Some(offsets) = by_producer.remove(&producer_id) else {
            return Vec::new();
        };
        if by_producer.is_empty() {
            self.txn_pending.remove(group);
        }
        assert!(
            self.no_empty_pending(group),
            "group {group}: an empty pending map kept after the marker of {producer_id}"
        );
        if !commit {
            return Vec::new();
        }
        let visible: Vec<(TopicPartition, PendingTxnOffset)> =
            offsets.into_iter().filter(|(_, p)| p.appended).collect();
        for (tp, p) in &visible {
            self.put(group, *tp, p.committed);
        }
        assert!(
            !self.txn_pending_for_producer(group, producer_id),
            "group {group}: producer {producer_id} pending after its marker"
        );
        visible
    }

    /// No group or producer is kept with nothing pending: `groups_pending_from` would name a
    /// group whose marker has nothing to settle.
    fn no_empty_pending(&self, group: &str) -> bool {
        self.txn_pending
            .get(group)
            .is_none_or(|by| !by.is_empty() && by.values().all(|o| !o.is_empty()))
    }

    fn txn_pending_for_producer(&self, group: &str, producer_id: i64) -> bool {
        self.txn_pending
            .get(group)
            .is_some_and(|by| by.contains_key(&producer_id))
    }

    /// Groups with a pending transactional offset of `producer_id`.
    pub fn groups_pending_from(&self, producer_id: i64) -> Vec<Arc<str>> {
        // `put_txn_pending` holds offsets only of producers with an id.
        assert!(
            producer_id >= 0,
            "offset cache: pending offsets of producer {producer_id} asked for"
        );
        self.txn_pending
            .iter()
            .filter(|(_, by)| by.contains_key(&producer_id))
            .map(|(g, _)| g.clone())
            .collect()
    }

    /// Whether a transactional offset of any producer is pending for `partition` of `group`
    /// (half of `hasPendingOffsetCommitsForTopicPartition`).
    pub fn txn_pending_for(&self, group: &str, partition: TopicPartition) -> bool {
        self.txn_pending
            .get(group)
            .is_some_and(|by| by.values().any(|o| o.contains_key(&partition)))
    }

    #[cfg(test)]
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }
}

/// An OffsetCommit whose append is in flight.
#[derive(Clone, Debug)]
pub struct PendingCommit {
    pub client: NodeId,
    pub correlation_id: u64,
    pub group: Arc<str>,
    /// The generation the member committed in (-1 for a commit from outside the group).
    pub generation: i32,
    pub offsets: Vec<(TopicPartition, u64, Option<u32>)>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::TopicId;

    #[test]
    fn cache_keeps_the_last_commit_and_forgets_unowned_groups() {
        let mut cache = OffsetCache::default();
        let g: Arc<str> = Arc::from("g");
        let h: Arc<str> = Arc::from("h");
        let tp = TopicPartition::new(TopicId(1), 0);
        cache.put(&g, tp, (5, None));
        cache.put(&g, tp, (9, Some(2)));
        cache.put(&h, tp, (1, None));
        assert_eq!(cache.get("g", tp), Some((9, Some(2))));
        cache.retain_groups(|name| name == "h");
        assert_eq!(cache.get("g", tp), None);
        assert_eq!(cache.get("h", tp), Some((1, None)));
        assert_eq!(cache.group_count(), 1);
    }
}
