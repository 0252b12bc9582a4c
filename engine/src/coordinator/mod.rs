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
//!
//! One module per Kafka noun: this file holds [`GroupCoordinator`]'s state, its invariants
//! and request routing; [`group`] one group's membership state machine (`GroupMetadata`),
//! [`offset_commit`] the commit and fetch paths, [`group_metadata_manager`] the appends,
//! loads and unloads of `__consumer_offsets` (`GroupMetadataManager`), [`offsets`] the
//! offset cache, [`load`] the replay of a partition; [`transaction`] is the transaction
//! coordinator, with [`txn_metadata`] its per-id state machine.

mod group;
mod group_metadata_manager;
mod load;
mod offset_commit;
mod offsets;
#[cfg(test)]
mod static_member_tests;
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
use crate::node::{Cx, NodeId};
use crate::protocol::{
    CoordinatorType, ErrorCode, FindCoordinatorResponse, HeartbeatResponse, LeaveGroupResponse,
    Message, OffsetFetchResponse,
};
use crate::record::{Record, RecordBatch, TopicId, TopicPartition};
use group::Group;
use offset_commit::{reply_commit, reply_txn_commit};
use offsets::{OffsetCache, PendingCommit};
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

/// A coordinator's state manager, which holds the state written to the partitions of its
/// internal topic (`__consumer_offsets` for [`GroupCoordinator`], `__transaction_state` for
/// [`transaction::TransactionCoordinator`]) that this broker leads. Both follow one election
/// rule, as Kafka's `GroupCoordinator` and `TransactionCoordinator` do in their
/// `onElection` / `onResignation`: [`CoordinatorPartitions::on_leadership`].
pub(crate) trait CoordinatorPartitions {
    /// The internal topic whose partitions the manager loads (`None` while the cluster has
    /// none, as `__transaction_state` before a transactional producer).
    fn topic(&self) -> Option<TopicId>;
    /// The partitions loaded, by index, and the leader epoch each was loaded at.
    fn owned(&self) -> &BTreeMap<u32, u32>;
    /// Assert what every entry point of the coordinator leaves true.
    fn check_state(&self);
    /// Forget what `partition` held, answering everything that waits on it.
    fn unload(&mut self, cx: &mut Cx, partition: TopicPartition);
    /// Read the committed batches of `tp` and take it up at `epoch`. Called only by
    /// [`CoordinatorPartitions::on_leadership`], on a partition just unloaded.
    fn load(&mut self, cx: &mut Cx, tp: TopicPartition, epoch: u32, log: &mut dyn OffsetsLog);

    /// The broker became leader (`Some(epoch)`) or stopped leading (`None`) `partition`: if
    /// it is one of the manager's, unload it, then load it at the new epoch; a notice of the
    /// epoch already loaded, or of another topic's partition, changes nothing.
    fn on_leadership(
        &mut self,
        cx: &mut Cx,
        partition: TopicPartition,
        leader_epoch: Option<u32>,
        log: &mut dyn OffsetsLog,
    ) {
        if self.topic() != Some(partition.topic)
            || (leader_epoch.is_some()
                && self.owned().get(&partition.partition) == leader_epoch.as_ref())
        {
            return;
        }
        self.unload(cx, partition);
        assert!(
            !self.owned().contains_key(&partition.partition),
            "{}: {partition} still owned after its unload: a load would load over it",
            cx.me()
        );
        if let Some(epoch) = leader_epoch {
            self.load(cx, partition, epoch, log);
        }
        assert_eq!(
            self.owned().get(&partition.partition),
            leader_epoch.as_ref(),
            "{}: {partition} owned at the wrong epoch after a leadership change",
            cx.me()
        );
        self.check_state();
    }
}

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
        /// The new member id of a static member whose rejoin of a Stable group this append
        /// persists (its JoinGroup is answered when it completes); `None` for a rebalance.
        static_rejoin: Option<String>,
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
        // `accepts` admitted only group requests, and FindCoordinator was answered above.
        let Some(group) = group_of(&msg) else {
            unreachable!("{}: {} names no group", cx.me(), msg.kind());
        };
        let tp = self.partition_for(&group);
        let leads = loaded_epoch_if_leading(&self.owned, tp, log).is_some();
        if !leads {
            return reply_error(cx, from, msg, ErrorCode::NotCoordinator);
        }
        match msg {
            Message::JoinGroupRequest(req) => match self.group_mut(&req.group) {
                Some(g) => {
                    let name = g.name.clone();
                    if let Some(persist) = g.join(cx, from, req) {
                        self.persist_group(cx, name, persist, log);
                    }
                }
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
        Message::JoinGroupRequest(r) => {
            Message::JoinGroupResponse(JoinGroupResponse::error(r.correlation_id, error))
        }
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
