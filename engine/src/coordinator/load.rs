//! Loading a `__consumer_offsets` partition after this broker became its leader: replay every
//! OffsetCommit and GroupMetadata record the log holds (last one wins), as Kafka's
//! `GroupMetadataManager.loadGroupsAndOffsets` does. Whatever the log lost in a failover is
//! lost to the group too: that is the point of keeping offsets in a replicated partition.

use crate::record::{InternalPayload, MemberTimeouts, RecordBatch, TopicPartition};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The last GroupMetadata record of one group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadedGroup {
    pub generation: i32,
    pub protocol: Arc<str>,
    pub members: Arc<[Arc<str>]>,
    /// Each member's assignment, in `members` order.
    pub assignments: Arc<[Arc<Vec<TopicPartition>>]>,
    /// Each member's session and rebalance timeouts, in `members` order.
    pub timeouts: Arc<[MemberTimeouts]>,
    /// Each member's `group.instance.id` (`None`: dynamic), in `members` order.
    pub instance_ids: Arc<[Option<Arc<str>>]>,
}

/// What one offsets partition held.
#[derive(Debug, Default)]
pub struct Loaded {
    pub offsets: Vec<(Arc<str>, TopicPartition, u64, Option<u32>)>,
    pub groups: BTreeMap<Arc<str>, LoadedGroup>,
    /// Transactional offsets whose transaction has no marker in the log yet: (producer id,
    /// group, partition, offset, leader epoch).
    pub pending: Vec<LoadedPending>,
}

/// A transactional offset without its marker: (producer id, group, partition, offset,
/// leader epoch).
pub type LoadedPending = (i64, Arc<str>, TopicPartition, u64, Option<u32>);

type OffsetKey = (Arc<str>, TopicPartition);

/// Replay `batches` (in log order). Transactional offset commits (written by TxnOffsetCommit
/// under the producer's id) stay pending per producer until that producer's marker: a commit
/// marker applies them, an abort drops them (`GroupMetadataManager.doLoadGroupsAndOffsets`:
/// `pendingOffsets` by producer id, moved into the loaded offsets at a commit marker).
pub fn replay(batches: &[RecordBatch]) -> Loaded {
    let mut offsets: BTreeMap<OffsetKey, (u64, Option<u32>)> = BTreeMap::new();
    let mut pending: BTreeMap<i64, BTreeMap<OffsetKey, (u64, Option<u32>)>> = BTreeMap::new();
    let mut groups = BTreeMap::new();
    for batch in batches {
        if let Some(marker) = batch.control {
            assert!(
                batch.producer_id >= 0,
                "a control batch at {} without a producer",
                batch.base_offset
            );
            if let Some(txn) = pending.remove(&batch.producer_id) {
                if marker == crate::record::ControlMarker::Commit {
                    offsets.extend(txn);
                }
            }
            continue;
        }
        for record in batch.records.iter() {
            match record.payload.as_deref() {
                Some(InternalPayload::OffsetCommit {
                    group,
                    partition,
                    offset,
                    leader_epoch,
                }) => {
                    let key = (group.clone(), *partition);
                    let value = (*offset, *leader_epoch);
                    if batch.is_transactional {
                        pending
                            .entry(batch.producer_id)
                            .or_default()
                            .insert(key, value);
                    } else {
                        offsets.insert(key, value);
                    }
                }
                Some(InternalPayload::GroupMetadata {
                    group,
                    generation,
                    protocol,
                    members,
                    assignments,
                    timeouts,
                    instance_ids,
                }) => {
                    // Written by one `persist_group`: one assignment, timeouts and instance
                    // id per member.
                    assert!(
                        members.len() == assignments.len()
                            && members.len() == timeouts.len()
                            && members.len() == instance_ids.len(),
                        "group {group}: generation {generation} record with {} members, {} \
                         assignments, {} timeouts",
                        members.len(),
                        assignments.len(),
                        timeouts.len()
                    );
                    let loaded = LoadedGroup {
                        generation: *generation,
                        protocol: protocol.clone(),
                        members: members.clone(),
                        assignments: assignments.clone(),
                        timeouts: timeouts.clone(),
                        instance_ids: instance_ids.clone(),
                    };
                    groups.insert(group.clone(), loaded);
                }
                Some(InternalPayload::TransactionMetadata { .. }) | None => {}
            }
        }
    }
    let offsets = offsets
        .into_iter()
        .map(|((g, tp), (o, e))| (g, tp, o, e))
        .collect();
    let pending = pending
        .into_iter()
        .flat_map(|(pid, txn)| {
            txn.into_iter()
                .map(move |((g, tp), (o, e))| (pid, g, tp, o, e))
        })
        .collect();
    Loaded {
        offsets,
        groups,
        pending,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Record, TopicId, ValueId};
    use crate::time::{Duration, Instant};

    fn rec(payload: InternalPayload) -> Record {
        Record {
            value: ValueId(0),
            key: None,
            size: 40,
            create_time: Instant::ZERO,
            payload: Some(Arc::new(payload)),
        }
    }

    #[test]
    fn replay_keeps_the_last_record_of_each_key() {
        let g: Arc<str> = Arc::from("g");
        let tp = TopicPartition::new(TopicId(3), 1);
        let commit = |offset| InternalPayload::OffsetCommit {
            group: g.clone(),
            partition: tp,
            offset,
            leader_epoch: None,
        };
        let meta = |generation| InternalPayload::GroupMetadata {
            group: g.clone(),
            generation,
            protocol: Arc::from("range"),
            members: Arc::from(vec![Arc::from("m1")]),
            assignments: Arc::from(vec![Arc::new(vec![tp])]),
            timeouts: Arc::from(vec![MemberTimeouts {
                session: Duration::from_secs(45),
                rebalance: Duration::from_secs(300),
            }]),
            instance_ids: Arc::from(vec![Some(Arc::from("pod-0"))]),
        };
        let b1 = RecordBatch::new(vec![rec(commit(10)), rec(meta(1))].into());
        let b2 = RecordBatch::new(vec![rec(commit(25)), rec(meta(2))].into());
        let loaded = replay(&[b1, b2]);
        assert_eq!(loaded.offsets, vec![(g.clone(), tp, 25, None)]);
        assert_eq!(loaded.groups[&g].generation, 2);
        assert_eq!(
            loaded.groups[&g].timeouts[0].session,
            Duration::from_secs(45)
        );
        assert_eq!(loaded.groups[&g].instance_ids[0].as_deref(), Some("pod-0"));
    }

    #[test]
    fn replay_of_an_empty_log_is_empty() {
        let loaded = replay(&[]);
        assert!(loaded.offsets.is_empty() && loaded.groups.is_empty());
    }
}
