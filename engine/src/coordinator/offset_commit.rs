//! Committed offsets at the group coordinator: OffsetCommit, TxnOffsetCommit and
//! OffsetFetch (`GroupCoordinator.handleCommitOffsets`, `handleTxnCommitOffsets`,
//! `handleFetchOffsets`) and the transaction markers that settle transactional offsets
//! (`scheduleHandleTxnCompletion`). Apart from group membership (`group.rs`) because Kafka
//! keeps them apart too: a commit checks the member and generation and nothing else of the
//! group, and its own path is the one consumers' delivery guarantees rest on.

use super::group::{coordinator_error, GroupState};
use super::group_metadata_manager::internal_record;
use super::offsets::{PendingCommit, PendingTxnOffset};
use super::{GroupCoordinator, OffsetsLog, PendingAppend};
use crate::history::HistoryEvent;
use crate::node::{Cx, NodeId};
use crate::protocol::{
    ErrorCode, Message, OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest,
    OffsetFetchResponse, TxnOffsetCommitRequest, TxnOffsetCommitResponse,
};
use crate::record::{InternalPayload, Record, TopicPartition};
use std::sync::Arc;

impl GroupCoordinator {
    pub(super) fn commit(
        &mut self,
        cx: &mut Cx,
        from: NodeId,
        req: OffsetCommitRequest,
        tp: TopicPartition,
        log: &mut dyn OffsetsLog,
    ) {
        // Routed by `handle` to the group's own partition: a commit appended elsewhere would
        // be loaded by another coordinator, or by none.
        assert_eq!(
            tp,
            self.partition_for(&req.group),
            "{}: group {}: a commit for another partition of __consumer_offsets",
            cx.me(),
            req.group
        );
        let error = self.commit_allowed(&req);
        if error != ErrorCode::None {
            return reply_commit(cx, from, &req, error);
        }
        let group: Arc<str> = Arc::from(req.group.as_str());
        let records = offset_commit_records(cx, &group, &req.offsets);
        if records.is_empty() {
            return reply_commit(cx, from, &req, ErrorCode::None);
        }
        let token = self.take_token();
        assert!(
            !self.pending.contains_key(&token),
            "{}: append token {token} reused",
            cx.me()
        );
        match log.append(cx, tp, records, token) {
            Ok(()) => {
                let pending = PendingCommit {
                    client: from,
                    correlation_id: req.correlation_id,
                    group,
                    generation: req.generation,
                    offsets: req.offsets,
                };
                self.pending
                    .insert(token, (tp, PendingAppend::Commit(pending)));
            }
            Err(e) => reply_commit(cx, from, &req, coordinator_error(e)),
        }
    }

    /// Kafka's `doCommitOffsets` checks: a simple (generation -1) commit is allowed only while
    /// the group has no members; a member's commit needs its current generation and is refused
    /// while the group waits for the leader's assignment.
    fn commit_allowed(&self, req: &OffsetCommitRequest) -> ErrorCode {
        let Some(group) = self.groups.get(req.group.as_str()) else {
            return if req.generation < 0 {
                ErrorCode::None
            } else {
                ErrorCode::IllegalGeneration
            };
        };
        // `validateOffsetCommit`: a commit naming an instance id is a member's, checked as one.
        let instance = req.group_instance_id.as_deref();
        if req.generation < 0 && instance.is_none() && group.state == GroupState::Empty {
            return ErrorCode::None;
        }
        if group.state == GroupState::CompletingRebalance {
            let e = group.check_member(&req.member_id, instance, req.generation);
            return if e == ErrorCode::None {
                ErrorCode::RebalanceInProgress
            } else {
                e
            };
        }
        group.check_member(&req.member_id, instance, req.generation)
    }

    /// TxnOffsetCommit (`GroupCoordinator.handleTxnCommitOffsets` → `doTxnCommitOffsets`):
    /// the KIP-447 member check, then the offsets are appended as a transactional batch of
    /// the producer and held pending (`prepareTxnOffsetCommit`) until the transaction's
    /// marker reaches this partition ([`Self::on_txn_marker`]).
    pub(super) fn txn_commit(
        &mut self,
        cx: &mut Cx,
        from: NodeId,
        req: TxnOffsetCommitRequest,
        tp: TopicPartition,
        log: &mut dyn OffsetsLog,
    ) {
        assert_eq!(
            tp,
            self.partition_for(&req.group),
            "{}: group {}: a transactional commit for another partition of __consumer_offsets",
            cx.me(),
            req.group
        );
        let error = self.txn_commit_allowed(&req);
        if error != ErrorCode::None || req.offsets.is_empty() {
            return reply_txn_commit(cx, from, req.correlation_id, &req.offsets, error);
        }
        let group: Arc<str> = Arc::from(req.group.as_str());
        let records = offset_commit_records(cx, &group, &req.offsets);
        // A TxnOffsetCommit comes from a producer that InitProducerId gave an id.
        assert!(
            req.producer_id >= 0 && req.producer_epoch >= 0,
            "{}: a transactional commit of producer {} epoch {}",
            cx.me(),
            req.producer_id,
            req.producer_epoch
        );
        for (partition, offset, leader_epoch) in &req.offsets {
            let pending = PendingTxnOffset {
                committed: (*offset, *leader_epoch),
                appended: false,
                client: from,
                generation: req.generation,
            };
            self.offsets
                .put_txn_pending(&group, req.producer_id, *partition, pending);
        }
        let token = self.take_token();
        let producer = (req.producer_id, req.producer_epoch);
        assert!(
            self.offsets.txn_pending_for(&group, req.offsets[0].0),
            "{}: group {group}: a transactional commit not held pending",
            cx.me()
        );
        match log.append_transactional(cx, tp, records, producer, token) {
            Ok(()) => {
                let commit = PendingCommit {
                    client: from,
                    correlation_id: req.correlation_id,
                    group,
                    generation: req.generation,
                    offsets: req.offsets,
                };
                let pending = PendingAppend::TxnCommit {
                    commit,
                    producer_id: req.producer_id,
                };
                self.pending.insert(token, (tp, pending));
            }
            Err(e) => {
                for (partition, _, _) in &req.offsets {
                    self.offsets
                        .fail_txn_pending(&group, req.producer_id, *partition);
                }
                let error = match e {
                    ErrorCode::InvalidProducerEpoch | ErrorCode::ProducerFenced => {
                        ErrorCode::ProducerFenced
                    }
                    other => coordinator_error(other),
                };
                reply_txn_commit(cx, from, req.correlation_id, &req.offsets, error);
            }
        }
    }

    /// `GroupCoordinator.validateOffsetCommit` with `isTransactional = true` (KIP-447): a
    /// commit naming a member or a generation must come from a current member at the current
    /// generation (a zombie's is refused, which fences its producer's transaction); one naming
    /// neither is accepted. Unlike an OffsetCommit it is not refused while the group waits for
    /// its assignment.
    fn txn_commit_allowed(&self, req: &TxnOffsetCommitRequest) -> ErrorCode {
        let names_member = req.generation >= 0 || !req.member_id.is_empty();
        let Some(group) = self.groups.get(req.group.as_str()) else {
            return if !names_member {
                ErrorCode::None
            } else if !req.member_id.is_empty() {
                ErrorCode::UnknownMemberId
            } else {
                ErrorCode::IllegalGeneration
            };
        };
        if group.state == GroupState::Dead {
            return ErrorCode::CoordinatorNotAvailable;
        }
        if !names_member {
            return ErrorCode::None;
        }
        if !req.member_id.is_empty() && !group.members.contains_key(&req.member_id) {
            return ErrorCode::UnknownMemberId;
        }
        if req.generation != group.generation {
            return ErrorCode::IllegalGeneration;
        }
        ErrorCode::None
    }

    /// A transaction marker of `producer_id` is in the ISR of `partition`, an offsets
    /// partition this broker leads (`GroupCoordinator.scheduleHandleTxnCompletion`, called
    /// by `KafkaApis.handleWriteTxnMarkersRequest` once the marker append completed): the
    /// producer's pending offsets of every group of the partition become committed (commit)
    /// or are dropped (abort).
    pub fn on_txn_marker(
        &mut self,
        cx: &mut Cx,
        producer_id: i64,
        partition: TopicPartition,
        marker: crate::record::ControlMarker,
    ) {
        if partition.topic != self.config.offsets_topic
            || !self.owned.contains_key(&partition.partition)
        {
            return;
        }
        // Markers are written only for transactions, whose producers InitProducerId gave an id.
        assert!(
            producer_id >= 0,
            "{}: a transaction marker of producer {producer_id} in {partition}",
            cx.me()
        );
        let commit = marker == crate::record::ControlMarker::Commit;
        for group in self.offsets.groups_pending_from(producer_id) {
            if self.partition_for(&group) != partition {
                continue;
            }
            let before = self.offsets.get(&group, partition);
            for (tp, p) in self.offsets.complete_txn(&group, producer_id, commit) {
                cx.record(HistoryEvent::OffsetsStored {
                    group: group.clone(),
                    member: p.client,
                    generation: p.generation,
                    partition: tp,
                    offset: p.committed.0,
                });
            }
            // The marker settled the producer's offsets of this group, either way.
            assert!(
                !self
                    .offsets
                    .groups_pending_from(producer_id)
                    .contains(&group),
                "{}: group {group}: producer {producer_id}'s offsets pending after its marker",
                cx.me()
            );
            assert!(
                commit || self.offsets.get(&group, partition) == before,
                "{}: group {group}: an abort marker changed committed offsets",
                cx.me()
            );
        }
    }

    /// Whether an offset commit of `partition` for `group` is in flight or a transactional
    /// one pending (`GroupMetadata.hasPendingOffsetCommitsForTopicPartition`).
    fn has_pending_commit(&self, group: &str, partition: TopicPartition) -> bool {
        self.offsets.txn_pending_for(group, partition)
            || self.pending.values().any(|(_, p)| match p {
                PendingAppend::Commit(c) => {
                    c.group.as_ref() == group && c.offsets.iter().any(|o| o.0 == partition)
                }
                _ => false,
            })
    }

    pub(super) fn fetch_offsets(&mut self, cx: &mut Cx, from: NodeId, req: OffsetFetchRequest) {
        // KIP-447: with `require_stable`, a partition whose commit is not settled yet is
        // answered UNSTABLE_OFFSET_COMMIT (per partition in Kafka; the Java consumer retries
        // the whole fetch after `retry.backoff.ms` on any, so one error stands for them).
        if req.require_stable
            && req
                .partitions
                .iter()
                .any(|tp| self.has_pending_commit(&req.group, *tp))
        {
            let resp = OffsetFetchResponse {
                correlation_id: req.correlation_id,
                error: ErrorCode::UnstableOffsetCommit,
                offsets: Vec::new(),
            };
            return cx.send(from, Message::OffsetFetchResponse(resp));
        }
        let offsets: Vec<(TopicPartition, Option<u64>)> = req
            .partitions
            .iter()
            .map(|tp| (*tp, self.offsets.get(&req.group, *tp).map(|(o, _)| o)))
            .collect();
        assert!(
            offsets.iter().map(|(tp, _)| tp).eq(req.partitions.iter()),
            "{}: an OffsetFetch answered for other partitions than it asked",
            cx.me()
        );
        let resp = OffsetFetchResponse {
            correlation_id: req.correlation_id,
            error: ErrorCode::None,
            offsets,
        };
        cx.send(from, Message::OffsetFetchResponse(resp));
    }
}

pub(super) fn reply_commit(cx: &mut Cx, to: NodeId, req: &OffsetCommitRequest, error: ErrorCode) {
    let resp = OffsetCommitResponse {
        correlation_id: req.correlation_id,
        results: req.offsets.iter().map(|(tp, _, _)| (*tp, error)).collect(),
    };
    cx.send(to, Message::OffsetCommitResponse(resp));
}

pub(super) fn reply_txn_commit(
    cx: &mut Cx,
    to: NodeId,
    correlation_id: u64,
    offsets: &[(TopicPartition, u64, Option<u32>)],
    error: ErrorCode,
) {
    let resp = TxnOffsetCommitResponse {
        correlation_id,
        results: offsets.iter().map(|(tp, _, _)| (*tp, error)).collect(),
    };
    cx.send(to, Message::TxnOffsetCommitResponse(resp));
}

pub(super) fn reply_pending_commit(cx: &mut Cx, c: &PendingCommit, error: ErrorCode) {
    let resp = OffsetCommitResponse {
        correlation_id: c.correlation_id,
        results: c.offsets.iter().map(|(tp, _, _)| (*tp, error)).collect(),
    };
    cx.send(c.client, Message::OffsetCommitResponse(resp));
}

/// The `__consumer_offsets` records of one commit (plain or transactional): one per partition.
fn offset_commit_records(
    cx: &mut Cx,
    group: &Arc<str>,
    offsets: &[(TopicPartition, u64, Option<u32>)],
) -> Vec<Record> {
    let records: Vec<Record> = offsets
        .iter()
        .map(|(partition, offset, leader_epoch)| {
            let payload = InternalPayload::OffsetCommit {
                group: group.clone(),
                partition: *partition,
                offset: *offset,
                leader_epoch: *leader_epoch,
            };
            internal_record(cx, payload)
        })
        .collect();
    assert_eq!(
        records.len(),
        offsets.len(),
        "one record per committed partition"
    );
    records
}
