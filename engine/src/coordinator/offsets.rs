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

/// Offsets of every loaded group, by group name.
#[derive(Debug, Default)]
pub struct OffsetCache {
    groups: BTreeMap<Arc<str>, BTreeMap<TopicPartition, Committed>>,
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
    }

    /// Forget every group for which `owns` is false (the coordinator lost its partition).
    pub fn retain_groups(&mut self, mut owns: impl FnMut(&str) -> bool) {
        self.groups.retain(|g, _| owns(g));
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
