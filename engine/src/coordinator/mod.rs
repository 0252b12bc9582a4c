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

mod group;
mod load;
mod offsets;
#[cfg(test)]
pub(crate) mod testkit;
#[cfg(test)]
mod tests;
pub mod transaction;
pub mod txn_metadata;
#[cfg(test)]
mod txn_offsets_tests;

pub use group::{GroupState, GROUP_MAX_MEMBERS};

use crate::broker::timer::GroupTimer;
use crate::history::HistoryEvent;
use crate::node::{Cx, NodeId};
use crate::protocol::{
    CoordinatorType, ErrorCode, FindCoordinatorResponse, HeartbeatResponse, LeaveGroupResponse,
    Message, OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse,
    TxnOffsetCommitRequest, TxnOffsetCommitResponse,
};
use crate::record::{
    InternalPayload, MemberTimeouts, Record, RecordBatch, TopicId, TopicPartition, ValueId,
};
use group::{coordinator_error, Group, PersistGroup};
use offsets::{OffsetCache, PendingCommit, PendingTxnOffset};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Most groups one coordinator keeps (a bound on memory; Kafka has none).
pub const MAX_GROUPS: usize = 10_000;

/// Most appends one coordinator keeps in flight (a bound: each waits at most
/// `offsets.commit.timeout.ms` in the replica's purgatory).
const MAX_PENDING_APPENDS: usize = 100_000;

/// Modelled size of one `__consumer_offsets` record (key: group + partition, value: offset,
/// epoch, metadata, timestamps).
const OFFSETS_RECORD_BYTES: u32 = 64;

/// What the coordinator needs from its hosting broker's replica manager.
pub trait OffsetsLog {
    /// `Some(leader_epoch)` if this broker currently leads `partition`.
    fn leader_epoch(&self, partition: TopicPartition) -> Option<u32>;
    /// The current leader of `partition` in this broker's metadata (any partition, not only
    /// those it leads): any broker answers FindCoordinator with the leader of the group's
    /// `__consumer_offsets` partition, as Kafka does from its metadata cache.
    fn leader_of(&self, partition: TopicPartition) -> Option<NodeId>;
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
    /// Append `records` as a transactional batch of `producer_id` at `producer_epoch` (a
    /// TxnOffsetCommit: `GroupMetadataManager.storeOffsets` writes it under the producer's id
    /// with `AppendOrigin.COORDINATOR`, so the partition's producer state sees the
    /// transaction and its marker), completed as [`OffsetsLog::append`]. A producer epoch older
    /// than the partition knows is refused. Defaults to a plain append for hosts without
    /// producer state (tests).
    fn append_transactional(
        &mut self,
        cx: &mut Cx,
        partition: TopicPartition,
        records: Vec<Record>,
        producer: (i64, i16),
        token: u64,
    ) -> Result<(), ErrorCode> {
        let _ = producer;
        self.append(cx, partition, records, token)
    }
    /// The batches of `partition` below its high watermark, for loading after election.
    fn committed_batches(&self, partition: TopicPartition) -> Vec<RecordBatch>;
    /// The batches a new coordinator loads: every batch up to the log end offset, as Kafka's
    /// `GroupMetadataManager` loads to the LEO. A freshly elected leader's high watermark can
    /// lag records the previous leader already acknowledged (followers learn the HW one fetch
    /// later), so loading only below the HW would forget acknowledged commits. Defaults to
    /// [`OffsetsLog::committed_batches`] for hosts that cannot tell.
    fn loadable_batches(&self, partition: TopicPartition) -> Vec<RecordBatch> {
        self.committed_batches(partition)
    }
}

/// Configuration of the coordinator (broker properties, Kafka names in the docs).
#[derive(Clone, Debug)]
pub struct CoordinatorConfig {
    /// `offsets.topic.num.partitions` (default 50).
    pub offsets_partitions: u32,
    /// The internal topic's id in this cluster.
    pub offsets_topic: TopicId,
    /// `group.initial.rebalance.delay.ms` (default 3000).
    pub initial_rebalance_delay: crate::time::Duration,
}

/// An append of the coordinator in flight.
#[derive(Debug)]
enum PendingAppend {
    Commit(PendingCommit),
    /// A TxnOffsetCommit's append, by the producer id of its transaction.
    TxnCommit {
        commit: PendingCommit,
        producer_id: i64,
    },
    Group {
        group: Arc<str>,
        generation: i32,
    },
}

/// The broker-side group coordinator.
///
/// Inputs: [`GroupCoordinator::handle`] (client requests the broker forwards when
/// [`GroupCoordinator::accepts`] says so), [`GroupCoordinator::on_timer`],
/// [`GroupCoordinator::on_leadership`] (for `__consumer_offsets` partitions) and
/// [`GroupCoordinator::on_append_done`]. Outputs leave through `cx` (responses, timers) and
/// through [`OffsetsLog::append`].
#[derive(Debug)]
pub struct GroupCoordinator {
    config: CoordinatorConfig,
    groups: BTreeMap<Arc<str>, Group>,
    /// Group name by timer index.
    group_by_index: BTreeMap<u32, Arc<str>>,
    next_group_index: u32,
    /// Offsets partitions this coordinator has loaded, with the leader epoch loaded at.
    owned: BTreeMap<u32, u32>,
    offsets: OffsetCache,
    pending: BTreeMap<u64, (TopicPartition, PendingAppend)>,
    next_token: u64,
}

impl GroupCoordinator {
    pub fn new(config: CoordinatorConfig) -> GroupCoordinator {
        assert!(
            config.offsets_partitions > 0,
            "offsets.topic.num.partitions must be positive"
        );
        GroupCoordinator {
            config,
            groups: BTreeMap::new(),
            group_by_index: BTreeMap::new(),
            next_group_index: 0,
            owned: BTreeMap::new(),
            offsets: OffsetCache::default(),
            pending: BTreeMap::new(),
            next_token: 0,
        }
    }

    /// The `__consumer_offsets` partition that coordinates `group` (Kafka:
    /// `Utils.abs(groupId.hashCode()) % groupMetadataTopicPartitionCount`).
    pub fn partition_for(&self, group: &str) -> TopicPartition {
        let tp = coordinator_partition(
            self.config.offsets_topic,
            self.config.offsets_partitions,
            group,
        );
        assert!(
            tp.topic == self.config.offsets_topic && tp.partition < self.config.offsets_partitions,
            "group {group}: coordinated by {tp}, outside __consumer_offsets"
        );
        tp
    }

    /// What every entry point leaves true: each loaded group has its timer index and lives in
    /// a partition this coordinator loaded; every append in flight is for a loaded offsets
    /// partition, with a token already handed out; the bounds hold.
    fn check(&self) {
        assert!(
            self.groups.len() <= MAX_GROUPS,
            "group coordinator: {} groups",
            self.groups.len()
        );
        assert_timer_indexes(&self.group_by_index, &self.groups, |g| g.index, "group");
        assert!(
            self.groups.iter().all(|(name, g)| *name == g.name),
            "group coordinator: a group filed under another name"
        );
        assert!(
            self.groups
                .keys()
                .all(|name| self.owned.contains_key(&self.partition_for(name).partition)),
            "group coordinator: a group of a partition it did not load"
        );
        assert!(
            self.pending.len() <= MAX_PENDING_APPENDS,
            "group coordinator: {} appends in flight",
            self.pending.len()
        );
        assert!(
            self.pending.keys().all(|token| *token <= self.next_token),
            "group coordinator: an append in flight under a token never handed out"
        );
        assert!(
            self.pending.values().all(|(tp, _)| {
                tp.topic == self.config.offsets_topic && self.owned.contains_key(&tp.partition)
            }),
            "group coordinator: an append in flight for a partition it does not own"
        );
        assert!(
            self.owned
                .keys()
                .all(|p| *p < self.config.offsets_partitions),
            "group coordinator: owns a partition __consumer_offsets does not have"
        );
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
                | Message::TxnOffsetCommitRequest(_)
        )
    }

    /// State of a group this coordinator has loaded (for inspection and tests).
    pub fn group_state(&self, group: &str) -> Option<(GroupState, i32, usize)> {
        let g = self.groups.get(group)?;
        Some((g.state, g.generation, g.members.len()))
    }

    /// The committed offset this coordinator would serve (for inspection and tests).
    pub fn committed(&self, group: &str, partition: TopicPartition) -> Option<u64> {
        self.offsets.get(group, partition).map(|(o, _)| o)
    }

    /// Handle a group request from a client.
    pub fn handle(&mut self, cx: &mut Cx, from: NodeId, msg: Message, log: &mut dyn OffsetsLog) {
        self.check();
        assert!(
            Self::accepts(&msg),
            "{}: {} handed to the group coordinator",
            cx.me(),
            msg.kind()
        );
        if let Message::FindCoordinatorRequest(req) = &msg {
            let tp = self.partition_for(&req.key);
            let coordinator = match req.key_type {
                CoordinatorType::Group => log.leader_of(tp),
                CoordinatorType::Transaction => None,
            };
            let error = match coordinator {
                Some(_) => ErrorCode::None,
                None => ErrorCode::CoordinatorNotAvailable,
            };
            let resp = FindCoordinatorResponse {
                correlation_id: req.correlation_id,
                error,
                coordinator,
            };
            return cx.send(from, Message::FindCoordinatorResponse(resp));
        }
        let Some(group) = group_of(&msg) else {
            return;
        };
        let tp = self.partition_for(&group);
        let leads = loaded_epoch_if_leading(&self.owned, tp, log).is_some();
        if !leads {
            return reply_error(cx, from, msg, ErrorCode::NotCoordinator);
        }
        match msg {
            Message::JoinGroupRequest(req) => match self.group_mut(&req.group) {
                Some(g) => g.join(cx, from, req),
                None => reply_error(
                    cx,
                    from,
                    Message::JoinGroupRequest(req),
                    ErrorCode::CoordinatorNotAvailable,
                ),
            },
            Message::SyncGroupRequest(req) => {
                let name: Arc<str> = Arc::from(req.group.as_str());
                match self.groups.get_mut(&name) {
                    Some(g) => {
                        if let Some(persist) = g.sync(cx, from, req) {
                            self.persist_group(cx, name, persist, log);
                        }
                    }
                    None => reply_error(
                        cx,
                        from,
                        Message::SyncGroupRequest(req),
                        ErrorCode::UnknownMemberId,
                    ),
                }
            }
            Message::HeartbeatRequest(req) => match self.groups.get_mut(req.group.as_str()) {
                Some(g) => g.heartbeat(cx, from, req),
                None => reply_error(
                    cx,
                    from,
                    Message::HeartbeatRequest(req),
                    ErrorCode::UnknownMemberId,
                ),
            },
            Message::LeaveGroupRequest(req) => match self.groups.get_mut(req.group.as_str()) {
                Some(g) => g.leave(cx, from, req),
                None => reply_error(
                    cx,
                    from,
                    Message::LeaveGroupRequest(req),
                    ErrorCode::UnknownMemberId,
                ),
            },
            Message::OffsetCommitRequest(req) => self.commit(cx, from, req, tp, log),
            Message::OffsetFetchRequest(req) => self.fetch_offsets(cx, from, req),
            Message::TxnOffsetCommitRequest(req) => self.txn_commit(cx, from, req, tp, log),
            _ => unreachable!("group_of only names group requests"),
        }
    }

    /// The group named `name`, created Empty on first use (bounded by [`MAX_GROUPS`]).
    fn group_mut(&mut self, name: &str) -> Option<&mut Group> {
        if !self.groups.contains_key(name) {
            if self.groups.len() >= MAX_GROUPS {
                return None;
            }
            let name: Arc<str> = Arc::from(name);
            let index = self.next_group_index;
            self.next_group_index += 1;
            self.group_by_index.insert(index, name.clone());
            let group = Group::new(name.clone(), index, self.config.initial_rebalance_delay);
            assert!(
                self.group_by_index.get(&index) == Some(&name),
                "group {name}: timer index {index} taken"
            );
            self.groups.insert(name, group);
        }
        assert!(
            self.groups.len() <= MAX_GROUPS,
            "more than {MAX_GROUPS} groups"
        );
        self.groups.get_mut(name)
    }

    fn take_token(&mut self) -> u64 {
        self.next_token += 1;
        // The transaction coordinator's tokens carry TXN_TOKEN_BIT: the two never meet.
        assert!(
            self.next_token < transaction::TXN_TOKEN_BIT,
            "group coordinator tokens exhausted"
        );
        self.next_token
    }

    /// Append the group's new generation to its offsets partition (acks=all).
    fn persist_group(
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
            .map(|(m, _, _)| Arc::from(m.as_str()))
            .collect();
        let assignments: Vec<crate::protocol::Assignment> =
            persist.members.iter().map(|(_, a, _)| a.clone()).collect();
        let timeouts: Vec<MemberTimeouts> = persist.members.iter().map(|(_, _, t)| *t).collect();
        let payload = InternalPayload::GroupMetadata {
            group: name.clone(),
            generation: persist.generation,
            protocol: Arc::from(persist.protocol.as_str()),
            members: members.into(),
            assignments: assignments.into(),
            timeouts: timeouts.into(),
        };
        let token = self.take_token();
        let records = vec![internal_record(cx, payload)];
        match log.append(cx, tp, records, token) {
            Ok(()) => {
                let pending = PendingAppend::Group {
                    group: name,
                    generation: persist.generation,
                };
                assert!(
                    self.pending.insert(token, (tp, pending)).is_none(),
                    "{}: append token {token} reused",
                    cx.me()
                );
            }
            Err(e) => {
                if let Some(g) = self.groups.get_mut(&name) {
                    g.on_persisted(cx, persist.generation, e);
                }
            }
        }
    }

    fn commit(
        &mut self,
        cx: &mut Cx,
        from: NodeId,
        req: OffsetCommitRequest,
        tp: TopicPartition,
        log: &mut dyn OffsetsLog,
    ) {
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
        if req.generation < 0 && group.state == GroupState::Empty {
            return ErrorCode::None;
        }
        if group.state == GroupState::CompletingRebalance {
            let e = group.check_member(&req.member_id, req.generation);
            return if e == ErrorCode::None {
                ErrorCode::RebalanceInProgress
            } else {
                e
            };
        }
        group.check_member(&req.member_id, req.generation)
    }

    /// TxnOffsetCommit (`GroupCoordinator.handleTxnCommitOffsets` → `doTxnCommitOffsets`):
    /// the KIP-447 member check, then the offsets are appended as a transactional batch of
    /// the producer and held pending (`prepareTxnOffsetCommit`) until the transaction's
    /// marker reaches this partition ([`Self::on_txn_marker`]).
    fn txn_commit(
        &mut self,
        cx: &mut Cx,
        from: NodeId,
        req: TxnOffsetCommitRequest,
        tp: TopicPartition,
        log: &mut dyn OffsetsLog,
    ) {
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

    fn fetch_offsets(&mut self, cx: &mut Cx, from: NodeId, req: OffsetFetchRequest) {
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
        assert_eq!(
            offsets.len(),
            req.partitions.len(),
            "an OffsetFetch answered for other partitions"
        );
        let resp = OffsetFetchResponse {
            correlation_id: req.correlation_id,
            error: ErrorCode::None,
            offsets,
        };
        cx.send(from, Message::OffsetFetchResponse(resp));
    }

    /// A group coordinator timer is due.
    pub fn on_timer(&mut self, cx: &mut Cx, timer: GroupTimer, _log: &mut dyn OffsetsLog) {
        let (GroupTimer::JoinDeadline { group: index, seq }
        | GroupTimer::Session { group: index, seq }) = timer;
        assert!(
            index < self.next_group_index,
            "{}: a timer of group index {index}, never handed out",
            cx.me()
        );
        let Some(name) = self.group_by_index.get(&index) else {
            return;
        };
        let Some(group) = self.groups.get_mut(name) else {
            return;
        };
        assert_eq!(
            group.index,
            index,
            "{}: group {name}'s timer index changed",
            cx.me()
        );
        match timer {
            GroupTimer::JoinDeadline { .. } => group.on_join_deadline(cx, seq),
            GroupTimer::Session { .. } => group.on_session_timer(cx, seq),
        }
    }

    /// The broker became leader (`Some(epoch)`) or stopped leading (`None`) an offsets partition.
    pub fn on_leadership(
        &mut self,
        cx: &mut Cx,
        partition: TopicPartition,
        leader_epoch: Option<u32>,
        log: &mut dyn OffsetsLog,
    ) {
        if partition.topic != self.config.offsets_topic {
            return;
        }
        if leader_epoch.is_some() && self.owned.get(&partition.partition) == leader_epoch.as_ref() {
            return;
        }
        self.unload(cx, partition);
        if let Some(epoch) = leader_epoch {
            self.load(cx, partition, epoch, log);
        }
        assert_eq!(
            self.owned.get(&partition.partition),
            leader_epoch.as_ref(),
            "{}: {partition} owned at the wrong epoch after a leadership change",
            cx.me()
        );
        self.check();
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
                _ => {}
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

    /// Rebuild committed offsets and groups from the partition's log.
    fn load(&mut self, cx: &mut Cx, partition: TopicPartition, epoch: u32, log: &dyn OffsetsLog) {
        assert!(
            !self.owned.contains_key(&partition.partition),
            "{}: {partition} loaded over a load",
            cx.me()
        );
        let loaded = load::replay(&log.loadable_batches(partition));
        for (group, tp, offset, leader_epoch) in loaded.offsets {
            self.offsets.put(&group, tp, (offset, leader_epoch));
        }
        for (producer_id, group, tp, offset, leader_epoch) in loaded.pending {
            // Loaded from the log: appended. Who wrote it is not in the record; the history
            // names this coordinator's broker as the committer of a loaded offset.
            let pending = PendingTxnOffset {
                committed: (offset, leader_epoch),
                appended: true,
                client: cx.me(),
                generation: -1,
            };
            self.offsets
                .put_txn_pending(&group, producer_id, tp, pending);
        }
        for (name, meta) in loaded.groups {
            assert_eq!(
                self.partition_for(&name),
                partition,
                "{}: group {name} loaded from another group's partition",
                cx.me()
            );
            if let Some(g) = self.group_mut(&name) {
                g.restore(cx, &meta);
            }
        }
        self.owned.insert(partition.partition, epoch);
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
            PendingAppend::Group { group, generation } => {
                if let Some(g) = self.groups.get_mut(&group) {
                    g.on_persisted(cx, generation, result);
                }
            }
        }
        self.check();
    }
}

/// A record of `__consumer_offsets` (internal records carry value id 0: never a user value).
fn internal_record(cx: &Cx, payload: InternalPayload) -> Record {
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

fn group_of(msg: &Message) -> Option<String> {
    Some(match msg {
        Message::JoinGroupRequest(r) => r.group.clone(),
        Message::SyncGroupRequest(r) => r.group.clone(),
        Message::HeartbeatRequest(r) => r.group.clone(),
        Message::LeaveGroupRequest(r) => r.group.clone(),
        Message::OffsetCommitRequest(r) => r.group.clone(),
        Message::OffsetFetchRequest(r) => r.group.clone(),
        Message::TxnOffsetCommitRequest(r) => r.group.clone(),
        _ => return None,
    })
}

fn reply_commit(cx: &mut Cx, to: NodeId, req: &OffsetCommitRequest, error: ErrorCode) {
    let resp = OffsetCommitResponse {
        correlation_id: req.correlation_id,
        results: req.offsets.iter().map(|(tp, _, _)| (*tp, error)).collect(),
    };
    cx.send(to, Message::OffsetCommitResponse(resp));
}

fn reply_txn_commit(
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

fn reply_pending_commit(cx: &mut Cx, c: &PendingCommit, error: ErrorCode) {
    let resp = OffsetCommitResponse {
        correlation_id: c.correlation_id,
        results: c.offsets.iter().map(|(tp, _, _)| (*tp, error)).collect(),
    };
    cx.send(c.client, Message::OffsetCommitResponse(resp));
}

/// Answer a group request with `error` and nothing else.
fn reply_error(cx: &mut Cx, to: NodeId, msg: Message, error: ErrorCode) {
    use crate::protocol::{JoinGroupResponse, SyncGroupResponse};
    assert_ne!(
        error,
        ErrorCode::None,
        "{}: an error answer without an error",
        cx.me()
    );
    let resp = match msg {
        Message::JoinGroupRequest(r) => Message::JoinGroupResponse(JoinGroupResponse {
            correlation_id: r.correlation_id,
            error,
            generation: -1,
            protocol: String::new(),
            leader: String::new(),
            member_id: String::new(),
            members: Vec::new(),
        }),
        Message::SyncGroupRequest(r) => Message::SyncGroupResponse(SyncGroupResponse {
            correlation_id: r.correlation_id,
            error,
            assignment: Arc::new(Vec::new()),
        }),
        Message::HeartbeatRequest(r) => Message::HeartbeatResponse(HeartbeatResponse {
            correlation_id: r.correlation_id,
            error,
        }),
        Message::LeaveGroupRequest(r) => Message::LeaveGroupResponse(LeaveGroupResponse {
            correlation_id: r.correlation_id,
            error,
        }),
        Message::OffsetCommitRequest(r) => return reply_commit(cx, to, &r, error),
        Message::TxnOffsetCommitRequest(r) => {
            return reply_txn_commit(cx, to, r.correlation_id, &r.offsets, error)
        }
        Message::OffsetFetchRequest(r) => Message::OffsetFetchResponse(OffsetFetchResponse {
            correlation_id: r.correlation_id,
            error,
            offsets: Vec::new(),
        }),
        other => panic!("{}: not a group request: {}", cx.me(), other.kind()),
    };
    cx.send(to, resp);
}

/// Both coordinators key their timers by an index per group or transactional id: the index
/// map names exactly the entries, each by its own index (a stale timer finds nothing; a
/// wrong one would wake another group or id).
fn assert_timer_indexes<V>(
    by_index: &BTreeMap<u32, Arc<str>>,
    entries: &BTreeMap<Arc<str>, V>,
    index_of: impl Fn(&V) -> u32,
    what: &str,
) {
    assert_eq!(
        by_index.len(),
        entries.len(),
        "coordinator: {} timer indexes for {} {what}s",
        by_index.len(),
        entries.len()
    );
    assert!(
        by_index
            .iter()
            .all(|(i, key)| entries.get(key).is_some_and(|e| index_of(e) == *i)),
        "coordinator: a timer index names another {what}"
    );
}

/// The partition of a coordinator's internal `topic` (of `partitions`) that owns `key` (a
/// group or a transactional id): `Utils.abs(key.hashCode()) % partitions`, as both
/// `GroupMetadataManager.partitionFor` and `TransactionStateManager.partitionFor` compute it.
pub fn coordinator_partition(topic: TopicId, partitions: u32, key: &str) -> TopicPartition {
    assert!(partitions > 0, "a coordinator topic without partitions");
    TopicPartition::new(topic, java_string_hash_abs(key) % partitions)
}

/// The epoch a coordinator loaded `tp` at, if it loaded it and this broker leads it now: the
/// ownership check both coordinators make before serving a key of `tp`.
pub(crate) fn loaded_epoch_if_leading(
    owned: &BTreeMap<u32, u32>,
    tp: TopicPartition,
    log: &dyn OffsetsLog,
) -> Option<u32> {
    let leading = log.leader_epoch(tp)?;
    let loaded = owned.get(&tp.partition).copied()?;
    // A coordinator loads at the epoch it leads, and a later leadership reloads (or unloads
    // first): it never holds a load from a newer epoch than the one it leads.
    assert!(
        loaded <= leading,
        "{tp}: loaded at epoch {loaded}, leading epoch {leading}"
    );
    Some(loaded)
}

/// Java's `String.hashCode()` made non-negative as Kafka's `Utils.abs` does
/// (`Integer.MIN_VALUE` maps to 0).
pub fn java_string_hash_abs(s: &str) -> u32 {
    kafka_utils_abs(java_string_hash(s))
}

/// Java's `String.hashCode()`: 31·h + c over the UTF-16 code units, wrapping.
pub fn java_string_hash(s: &str) -> i32 {
    let mut h: i32 = 0;
    for unit in s.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(unit as i32);
    }
    h
}

/// Kafka's `Utils.abs`: `Math.abs`, except that `Integer.MIN_VALUE` maps to 0.
pub fn kafka_utils_abs(h: i32) -> u32 {
    let abs = if h == i32::MIN { 0 } else { h.unsigned_abs() };
    assert!(
        abs <= i32::MAX as u32,
        "Utils.abs({h}) = {abs} is not a Java int"
    );
    abs
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
