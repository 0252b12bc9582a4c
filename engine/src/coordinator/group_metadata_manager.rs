//! The group coordinator's `__consumer_offsets` partitions (Kafka's `GroupMetadataManager`):
//! a group's new generation is appended with acks=all (`storeGroup`), completions of every
//! append of the coordinator land here, and a broker that becomes a partition's leader
//! reloads its groups and offsets from the log (`loadGroupsAndOffsets`) and drops them when
//! it stops leading (`removeGroupsForPartition`). Kept apart from the request handlers
//! because this is where the coordinator's state is written from the log, and asserted.

use super::group::{coordinator_error, PersistGroup};
use super::offset_commit::{reply_pending_commit, reply_txn_commit};
use super::offsets::PendingTxnOffset;
use super::CoordinatorPartitions;
use super::{java_string_hash_abs, load, transaction, OFFSETS_RECORD_BYTES};
use super::{GroupCoordinator, OffsetsLog, PendingAppend};
use crate::history::HistoryEvent;
use crate::node::Cx;
use crate::protocol::ErrorCode;
use crate::record::{InternalPayload, MemberTimeouts, Record, TopicId, TopicPartition, ValueId};
use std::collections::BTreeMap;
use std::sync::Arc;

impl GroupCoordinator {
    /// Append the group's new generation to its offsets partition (acks=all).
    pub(super) fn persist_group(
        &mut self,
        cx: &mut Cx,
        name: Arc<str>,
        persist: PersistGroup,
        log: &mut dyn OffsetsLog,
    ) {
        let tp = self.partition_for(&name);
        // Only a leader's SyncGroup completes a rebalance, so a generation has a member.
        assert!(
            !persist.members.is_empty()
                && self
                    .groups
                    .get(&name)
                    .is_some_and(|g| g.generation == persist.generation),
            "{}: group {name} persists generation {} with {} members",
            cx.me(),
            persist.generation,
            persist.members.len()
        );
        let members: Vec<Arc<str>> = persist
            .members
            .iter()
            .map(|m| Arc::from(m.member_id.as_str()))
            .collect();
        let assignments: Vec<crate::protocol::Assignment> = persist
            .members
            .iter()
            .map(|m| m.assignment.clone())
            .collect();
        let timeouts: Vec<MemberTimeouts> = persist.members.iter().map(|m| m.timeouts).collect();
        let instance_ids: Vec<Option<Arc<str>>> = persist
            .members
            .iter()
            .map(|m| m.instance_id.as_deref().map(Arc::from))
            .collect();
        let payload = InternalPayload::GroupMetadata {
            group: name.clone(),
            generation: persist.generation,
            protocol: Arc::from(persist.protocol.as_str()),
            members: members.into(),
            assignments: assignments.into(),
            timeouts: timeouts.into(),
            instance_ids: instance_ids.into(),
        };
        let token = self.take_token();
        let records = vec![internal_record(cx, payload)];
        match log.append(cx, tp, records, token) {
            Ok(()) => {
                let pending = PendingAppend::Group {
                    group: name,
                    generation: persist.generation,
                    static_rejoin: persist.static_rejoin,
                };
                assert!(
                    self.pending.insert(token, (tp, pending)).is_none(),
                    "{}: append token {token} reused",
                    cx.me()
                );
            }
            Err(e) => {
                if let Some(g) = self.groups.get_mut(&name) {
                    g.on_persisted(cx, persist.generation, persist.static_rejoin, e);
                }
            }
        }
    }

    /// Completion of an [`OffsetsLog::append`].
    pub fn on_append_done(
        &mut self,
        cx: &mut Cx,
        token: u64,
        result: ErrorCode,
        _log: &mut dyn OffsetsLog,
    ) {
        assert!(
            token & transaction::TXN_TOKEN_BIT == 0 && token <= self.next_token,
            "{}: append token {token:#x} was not handed out by the group coordinator",
            cx.me()
        );
        let Some((tp, pending)) = self.pending.remove(&token) else {
            return; // the partition was unloaded meanwhile and the request answered
        };
        let group = match &pending {
            PendingAppend::Commit(c) | PendingAppend::TxnCommit { commit: c, .. } => &c.group,
            PendingAppend::Group { group, .. } => group,
        };
        assert_eq!(
            self.partition_for(group),
            tp,
            "{}: group {group}'s append completed on another partition",
            cx.me()
        );
        match pending {
            PendingAppend::Commit(c) => {
                if result == ErrorCode::None {
                    for (tp, offset, epoch) in &c.offsets {
                        self.offsets.put(&c.group, *tp, (*offset, *epoch));
                        cx.record(HistoryEvent::OffsetsStored {
                            group: c.group.clone(),
                            member: c.client,
                            generation: c.generation,
                            partition: *tp,
                            offset: *offset,
                        });
                    }
                }
                reply_pending_commit(cx, &c, coordinator_error(result));
            }
            PendingAppend::TxnCommit {
                commit: c,
                producer_id,
            } => {
                for (tp, offset, epoch) in &c.offsets {
                    if result == ErrorCode::None {
                        // `onTxnOffsetCommitAppend`: in the log, visible at a commit marker.
                        let pending = PendingTxnOffset {
                            committed: (*offset, *epoch),
                            appended: true,
                            client: c.client,
                            generation: c.generation,
                        };
                        self.offsets
                            .put_txn_pending(&c.group, producer_id, *tp, pending);
                    } else {
                        self.offsets.fail_txn_pending(&c.group, producer_id, *tp);
                    }
                }
                let error = coordinator_error(result);
                reply_txn_commit(cx, c.client, c.correlation_id, &c.offsets, error);
            }
            PendingAppend::Group {
                group,
                generation,
                static_rejoin,
            } => {
                if let Some(g) = self.groups.get_mut(&group) {
                    g.on_persisted(cx, generation, static_rejoin, result);
                }
            }
        }
        self.check();
    }
}

impl CoordinatorPartitions for GroupCoordinator {
    fn topic(&self) -> Option<TopicId> {
        Some(self.config.offsets_topic)
    }

    fn check_state(&self) {
        self.check();
    }

    fn owned(&self) -> &BTreeMap<u32, u32> {
        &self.owned
    }

    /// Forget the groups of `partition`, answering everything that waits on them.
    fn unload(&mut self, cx: &mut Cx, partition: TopicPartition) {
        self.owned.remove(&partition.partition);
        let offsets_partitions = self.config.offsets_partitions;
        let in_partition =
            |name: &str| java_string_hash_abs(name) % offsets_partitions == partition.partition;
        let names: Vec<Arc<str>> = self
            .groups
            .keys()
            .filter(|n| in_partition(n))
            .cloned()
            .collect();
        for name in names {
            if let Some(mut g) = self.groups.remove(&name) {
                g.unload(cx);
                self.group_by_index.remove(&g.index);
            }
        }
        self.offsets.retain_groups(|g| !in_partition(g));
        let tokens: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, (tp, _))| *tp == partition)
            .map(|(t, _)| *t)
            .collect();
        for token in tokens {
            match self.pending.remove(&token) {
                Some((_, PendingAppend::Commit(c))) => {
                    reply_pending_commit(cx, &c, ErrorCode::NotCoordinator);
                }
                Some((_, PendingAppend::TxnCommit { commit, .. })) => {
                    let error = ErrorCode::NotCoordinator;
                    reply_txn_commit(
                        cx,
                        commit.client,
                        commit.correlation_id,
                        &commit.offsets,
                        error,
                    );
                }
                // A generation's append answers nobody directly: the group's SyncGroups
                // were answered by `Group::unload` above. The token was listed just now.
                Some((_, PendingAppend::Group { .. })) => {}
                None => unreachable!("{}: append token {token} listed and gone", cx.me()),
            }
        }
        assert!(
            !self.owned.contains_key(&partition.partition)
                && self.pending.values().all(|(tp, _)| *tp != partition)
                && self.groups.keys().all(|g| !in_partition(g)),
            "{}: {partition} unloaded with groups or appends left",
            cx.me()
        );
    }

    /// Rebuild committed offsets and groups from the log of `tp`, a partition of
    /// `__consumer_offsets`.
    fn load(&mut self, cx: &mut Cx, tp: TopicPartition, epoch: u32, log: &mut dyn OffsetsLog) {
        let loaded = load::replay(&log.loadable_batches(tp));
        for (group, partition, offset, leader_epoch) in loaded.offsets {
            self.offsets.put(&group, partition, (offset, leader_epoch));
        }
        for (producer_id, group, partition, offset, leader_epoch) in loaded.pending {
            // Loaded from the log: appended. Who wrote it is not in the record; the history
            // names this coordinator's broker as the committer of a loaded offset.
            let pending = PendingTxnOffset {
                committed: (offset, leader_epoch),
                appended: true,
                client: cx.me(),
                generation: -1,
            };
            self.offsets
                .put_txn_pending(&group, producer_id, partition, pending);
        }
        for (name, meta) in loaded.groups {
            assert_eq!(
                self.partition_for(&name),
                tp,
                "{}: group {name} loaded from another group's partition",
                cx.me()
            );
            if let Some(g) = self.group_mut(&name) {
                g.restore(cx, &meta);
            }
        }
        self.owned.insert(tp.partition, epoch);
    }
}

/// A record of `__consumer_offsets` (internal records carry value id 0: never a user value).
pub(super) fn internal_record(cx: &Cx, payload: InternalPayload) -> Record {
    assert!(
        !matches!(payload, InternalPayload::TransactionMetadata { .. }),
        "{}: transaction state in __consumer_offsets",
        cx.me()
    );
    Record {
        value: ValueId(0),
        key: None,
        size: OFFSETS_RECORD_BYTES,
        create_time: cx.now(),
        payload: Some(Arc::new(payload)),
    }
}
