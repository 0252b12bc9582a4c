//! One consumer group's membership state machine, as Kafka's classic group coordinator keeps it
//! (`GroupMetadata` + `GroupCoordinator.handleJoinGroup/SyncGroup/Heartbeat/LeaveGroup`).
//!
//! States: `Empty` (no members, maybe committed offsets) -> `PreparingRebalance` (collecting
//! JoinGroups until every known member rejoined or the rebalance timeout fired) ->
//! `CompletingRebalance` (generation bumped, waiting for the leader's SyncGroup) -> `Stable`
//! (assignment persisted and handed out). `Dead` is a group whose coordinator partition was
//! unloaded; it answers nothing but `NotCoordinator`.
//!
//! First joins use the KIP-394 handshake (Kafka 2.2+): a JoinGroup with an empty member id is
//! answered `MemberIdRequired` with a fresh id, kept as a *pending* member until it rejoins
//! with it (or its session expires). An Empty group delays its first rebalance by
//! `group.initial.rebalance.delay.ms` (KIP-134, Kafka 0.11+), extended by the same amount each
//! time a new member arrives, up to the rebalance timeout.
//!
//! Timers are lazy: a session timer fires at the deadline it was set for and re-arms itself if a
//! heartbeat moved the deadline since, so a heartbeat costs no timer operation.
//!
//! Static members (KIP-345, `group.instance.id`) are members like the others, plus a mapping
//! from their instance id to their current member id (`GroupMetadata.staticMembers`): a
//! request naming an instance id is checked against that mapping (`FENCED_INSTANCE_ID` for an
//! old member id), a static member that misses a rebalance stays a member until its session
//! expires, and one that rejoins without its member id replaces its old incarnation
//! ([`static_member`]).
//!
//! JoinGroup and the rebalance it drives live in [`join_group`], static members in
//! [`static_member`]; SyncGroup, Heartbeat, LeaveGroup and the session timer here, with the
//! group's state and its invariants.

use super::load::LoadedGroup;
use crate::broker::timer::GroupTimer;
use crate::node::{Cx, NodeId};
use crate::protocol::{
    Assignment, ErrorCode, HeartbeatRequest, HeartbeatResponse, LeaveGroupRequest,
    LeaveGroupResponse, Message, Subscription, SyncGroupRequest, SyncGroupResponse,
};
use crate::record::MemberTimeouts;
use crate::time::{Duration, Instant};
use std::collections::BTreeMap;
use std::sync::Arc;

mod join_group;
mod static_member;

use join_group::send_join_error_to;
use static_member::StaticRejoin;

/// Most members one group admits (Kafka's `group.max.size` default is unbounded; a bound keeps
/// a runaway client from growing the coordinator without limit).
pub const GROUP_MAX_MEMBERS: usize = 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

/// A member of the group as the coordinator knows it.
#[derive(Clone, Debug)]
pub struct Member {
    pub client: NodeId,
    /// `group.instance.id` of a static member (KIP-345), `None` for a dynamic one.
    pub instance_id: Option<String>,
    /// Unique per member incarnation within this coordinator; keys its session timer.
    pub seq: u32,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocols: Vec<(String, Subscription)>,
    pub session_deadline: Instant,
    /// Correlation id of a JoinGroup waiting for the join phase to complete.
    pub awaiting_join: Option<u64>,
    /// Correlation id of a SyncGroup waiting for the leader's assignment.
    pub awaiting_sync: Option<u64>,
    pub assignment: Assignment,
}

/// A member id handed out with MemberIdRequired that has not rejoined yet.
#[derive(Clone, Debug)]
struct PendingMember {
    seq: u32,
    deadline: Instant,
}

/// What the group wants its coordinator to persist: the outcome of a completed rebalance,
/// or a static member's new member id (`GroupCoordinator.storeGroup` in both cases).
#[derive(Clone, Debug)]
pub struct PersistGroup {
    pub generation: i32,
    pub protocol: String,
    /// Every member with the assignment the leader gave it and its timeouts: the leader
    /// first (Kafka's `GroupMetadataValue` stores the `leader`; a group loaded on another
    /// coordinator is led by the first member), then in the order they joined.
    pub members: Vec<PersistedMember>,
    /// The new member id of the static member whose rejoin this persists.
    pub static_rejoin: Option<String>,
}

/// One member as a GroupMetadata record keeps it.
#[derive(Clone, Debug)]
pub struct PersistedMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub assignment: Assignment,
    pub timeouts: MemberTimeouts,
}

#[derive(Debug)]
pub struct Group {
    pub name: Arc<str>,
    /// Index of the group within its coordinator (timer keys).
    pub index: u32,
    pub state: GroupState,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub members: BTreeMap<String, Member>,
    pending: BTreeMap<String, PendingMember>,
    /// `group.instance.id` -> the member id that instance holds now (`staticMembers`).
    static_members: BTreeMap<String, String>,
    /// Static members that replaced their old member id in a Stable group, by new member id,
    /// whose JoinGroup waits for the GroupMetadata append.
    static_rejoins: BTreeMap<String, StaticRejoin>,
    /// Deadline of the current join phase and its sequence (stale timers carry an old one).
    join_deadline: Instant,
    rebalance_seq: u32,
    /// Remaining budget of the initial-delay phase (`None` outside it).
    initial_delay_left: Option<Duration>,
    initial_delay: Duration,
    new_member_joined: bool,
    next_member_seq: u32,
}

impl Group {
    pub fn new(name: Arc<str>, index: u32, initial_delay: Duration) -> Group {
        Group {
            name,
            index,
            state: GroupState::Empty,
            generation: 0,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            pending: BTreeMap::new(),
            static_members: BTreeMap::new(),
            static_rejoins: BTreeMap::new(),
            join_deadline: Instant::ZERO,
            rebalance_seq: 0,
            initial_delay_left: None,
            initial_delay,
            new_member_joined: false,
            next_member_seq: 0,
        }
    }

    /// Restore a group from its last GroupMetadata record after a coordinator failover: Kafka
    /// restores members as Stable so they keep heartbeating without a rebalance, each with
    /// the assignment the record holds (`GroupMetadataManager.readGroupMessageValue`): a
    /// member whose SyncGroup reaches the new coordinator gets its partitions, not nothing.
    /// Each member keeps the session and rebalance timeouts its JoinGroup asked for (the
    /// record carries them) and its session starts over at the load
    /// (`GroupCoordinator.onGroupLoaded` → `completeAndScheduleNextHeartbeatExpiration`): a
    /// member that died during the failover is removed one full session after the load.
    pub fn restore(&mut self, cx: &mut Cx, meta: &LoadedGroup) {
        // Restored into a group created by the load: nothing of an older life to merge.
        assert!(
            self.state == GroupState::Empty && self.members.is_empty() && self.generation == 0,
            "group {}: restored over a live group",
            self.name
        );
        assert!(
            meta.generation > 0,
            "group {}: a persisted generation {}",
            self.name,
            meta.generation
        );
        assert_eq!(
            meta.members.len(),
            meta.assignments.len(),
            "one assignment per member"
        );
        assert_eq!(
            meta.members.len(),
            meta.timeouts.len(),
            "one timeout pair per member"
        );
        assert_eq!(
            meta.members.len(),
            meta.instance_ids.len(),
            "one instance id (or none) per member"
        );
        self.generation = meta.generation;
        self.protocol = Some(meta.protocol.to_string());
        self.members.clear();
        for (((id, assignment), timeouts), instance) in meta
            .members
            .iter()
            .zip(meta.assignments.iter())
            .zip(meta.timeouts.iter())
            .zip(meta.instance_ids.iter())
        {
            let seq = self.take_seq();
            let instance_id = instance.as_deref().map(str::to_string);
            if let Some(instance) = &instance_id {
                self.static_members.insert(instance.clone(), id.to_string());
            }
            let member = Member {
                client: NodeId(u32::MAX),
                instance_id,
                seq,
                session_timeout: timeouts.session,
                rebalance_timeout: timeouts.rebalance,
                protocols: Vec::new(),
                session_deadline: cx.now() + timeouts.session,
                awaiting_join: None,
                awaiting_sync: None,
                assignment: assignment.clone(),
            };
            self.members.insert(id.to_string(), member);
            self.arm_session_timer(cx, id, cx.now() + timeouts.session, seq);
        }
        self.leader = meta.members.first().map(|m| m.to_string());
        self.state = if self.members.is_empty() {
            GroupState::Empty
        } else {
            GroupState::Stable
        };
        assert_eq!(
            self.members.len(),
            meta.members.len(),
            "group {}: a member id persisted twice",
            self.name
        );
        self.check();
    }

    /// What every transition leaves true (Kafka's `GroupMetadata` invariants): member ids
    /// unique across members and pending members, within [`GROUP_MAX_MEMBERS`]; timer
    /// sequences unique; an Empty group without members; a Stable or CompletingRebalance
    /// group with a protocol and a leader among its members; a JoinGroup parked only while
    /// the group prepares a rebalance, a SyncGroup only while it completes one; a Dead group
    /// waiting on nothing.
    fn check(&self) {
        assert!(
            self.members.keys().all(|id| !self.pending.contains_key(id)),
            "group {}: a member id both joined and pending",
            self.name
        );
        self.check_static_members();
        assert!(
            self.members.len() + self.pending.len() <= GROUP_MAX_MEMBERS,
            "group {}: {} members and {} pending",
            self.name,
            self.members.len(),
            self.pending.len()
        );
        let mut seqs: Vec<u32> = self.members.values().map(|m| m.seq).collect();
        seqs.extend(self.pending.values().map(|p| p.seq));
        seqs.sort_unstable();
        assert!(
            seqs.windows(2).all(|w| w[0] != w[1]),
            "group {}: two members share a timer sequence",
            self.name
        );
        assert!(
            self.generation >= 0,
            "group {}: generation {}",
            self.name,
            self.generation
        );
        assert!(
            self.state != GroupState::Empty || self.members.is_empty(),
            "group {}: Empty with {} members",
            self.name,
            self.members.len()
        );
        if matches!(
            self.state,
            GroupState::Stable | GroupState::CompletingRebalance
        ) {
            assert!(
                self.protocol.is_some()
                    && self
                        .leader
                        .as_ref()
                        .is_some_and(|l| self.members.contains_key(l)),
                "group {}: {:?} without a protocol or a leader among its members",
                self.name,
                self.state
            );
        }
        // A static member's rejoin of a Stable group waits for its GroupMetadata append.
        assert!(
            self.state == GroupState::PreparingRebalance
                || self.members.iter().all(|(id, m)| {
                    m.awaiting_join.is_none()
                        || (self.state == GroupState::Stable
                            && self.static_rejoins.contains_key(id))
                }),
            "group {}: a JoinGroup parked in {:?}",
            self.name,
            self.state
        );
        assert!(
            self.state == GroupState::CompletingRebalance
                || self.members.values().all(|m| m.awaiting_sync.is_none()),
            "group {}: a SyncGroup parked in {:?}",
            self.name,
            self.state
        );
    }

    /// The members as a GroupMetadata record keeps them: the leader first, then in join
    /// order (see [`PersistGroup::members`]).
    pub(super) fn persisted_members(&self) -> Vec<PersistedMember> {
        let mut order: Vec<(&String, &Member)> = self.members.iter().collect();
        order.sort_by_key(|(id, m)| (self.leader.as_deref() != Some(id.as_str()), m.seq));
        order.into_iter().map(|(id, m)| m.persisted(id)).collect()
    }

    /// The member added first (smallest sequence) among those `eligible`: kafsim's
    /// deterministic choice where Kafka takes whichever member its hash map yields first.
    pub(super) fn earliest_member(&self, eligible: impl Fn(&Member) -> bool) -> Option<String> {
        self.members
            .iter()
            .filter(|(_, m)| eligible(m))
            .min_by_key(|(_, m)| m.seq)
            .map(|(id, _)| id.clone())
    }

    fn take_seq(&mut self) -> u32 {
        self.next_member_seq = self.next_member_seq.wrapping_add(1);
        // Sequences key session timers; a wrap could wake another member's timer.
        assert_ne!(
            self.next_member_seq, 0,
            "group {}: member sequences wrapped",
            self.name
        );
        self.next_member_seq
    }

    fn arm_session_timer(&self, cx: &mut Cx, member: &str, at: Instant, seq: u32) {
        assert!(
            at >= cx.now(),
            "group {}: session timer of {member} set in the past",
            self.name
        );
        let timer = GroupTimer::Session {
            group: self.index,
            seq,
        };
        cx.set_timer(at, timer);
    }

    // ------------------------------------------------------------------ SyncGroup

    /// Returns what to persist when the leader's assignment completes the rebalance.
    pub fn sync(
        &mut self,
        cx: &mut Cx,
        from: NodeId,
        req: SyncGroupRequest,
    ) -> Option<PersistGroup> {
        self.check();
        let instance = req.group_instance_id.as_deref();
        let error = self.check_member(&req.member_id, instance, req.generation);
        if error != ErrorCode::None {
            send_sync(cx, from, req.correlation_id, error, Arc::new(Vec::new()));
            return None;
        }
        match self.state {
            GroupState::PreparingRebalance => {
                let e = ErrorCode::RebalanceInProgress;
                send_sync(cx, from, req.correlation_id, e, Arc::new(Vec::new()));
                None
            }
            GroupState::Stable => {
                let assignment = self.members[&req.member_id].assignment.clone();
                send_sync(cx, from, req.correlation_id, ErrorCode::None, assignment);
                None
            }
            GroupState::CompletingRebalance => self.sync_completing(from, req),
            GroupState::Empty | GroupState::Dead => {
                let e = ErrorCode::UnknownMemberId;
                send_sync(cx, from, req.correlation_id, e, Arc::new(Vec::new()));
                None
            }
        }
    }

    fn sync_completing(&mut self, from: NodeId, req: SyncGroupRequest) -> Option<PersistGroup> {
        assert_eq!(
            self.state,
            GroupState::CompletingRebalance,
            "group {}: a SyncGroup parked outside CompletingRebalance",
            self.name
        );
        let member = self
            .members
            .get_mut(&req.member_id)
            .expect("checked member");
        member.client = from;
        member.awaiting_sync = Some(req.correlation_id);
        if self.leader.as_deref() != Some(req.member_id.as_str()) {
            return None;
        }
        for (id, assignment) in req.assignments {
            if let Some(m) = self.members.get_mut(&id) {
                m.assignment = assignment;
            }
        }
        assert!(
            self.members.values().all(|m| m.awaiting_join.is_none()),
            "group {}: the leader assigns while a member is still joining",
            self.name
        );
        Some(PersistGroup {
            generation: self.generation,
            protocol: self.protocol.clone().unwrap_or_default(),
            members: self.persisted_members(),
            static_rejoin: None,
        })
    }

    /// The GroupMetadata append of `generation` completed with `result` (for the rejoin of
    /// static member `static_rejoin`, or for a rebalance).
    pub fn on_persisted(
        &mut self,
        cx: &mut Cx,
        generation: i32,
        static_rejoin: Option<String>,
        result: ErrorCode,
    ) {
        if let Some(member_id) = static_rejoin {
            return self.on_static_rejoin_persisted(cx, &member_id, result);
        }
        assert!(
            generation <= self.generation,
            "group {}: generation {generation} persisted before it was formed ({})",
            self.name,
            self.generation
        );
        if self.state != GroupState::CompletingRebalance || generation != self.generation {
            return;
        }
        if result != ErrorCode::None {
            // Kafka maps a failed group append to a coordinator error and rebalances.
            self.fail_pending_syncs(cx, coordinator_error(result));
            self.prepare_rebalance(cx);
            return self.check();
        }
        self.state = GroupState::Stable;
        for m in self.members.values_mut() {
            if let Some(corr) = m.awaiting_sync.take() {
                // Kafka `propagateAssignment`: each answered member's session starts anew.
                m.session_deadline = cx.now() + m.session_timeout;
                send_sync(cx, m.client, corr, ErrorCode::None, m.assignment.clone());
            }
        }
        self.check();
    }

    fn fail_pending_syncs(&mut self, cx: &mut Cx, error: ErrorCode) {
        assert_ne!(
            error,
            ErrorCode::None,
            "group {}: failing SyncGroups without an error",
            self.name
        );
        for m in self.members.values_mut() {
            if let Some(corr) = m.awaiting_sync.take() {
                m.session_deadline = cx.now() + m.session_timeout;
                send_sync(cx, m.client, corr, error, Arc::new(Vec::new()));
            }
        }
    }

    // ------------------------------------------------------------------ Heartbeat / Leave

    pub fn heartbeat(&mut self, cx: &mut Cx, from: NodeId, req: HeartbeatRequest) {
        let instance = req.group_instance_id.as_deref();
        let mut error = self.check_member(&req.member_id, instance, req.generation);
        if error == ErrorCode::None {
            let member = self
                .members
                .get_mut(&req.member_id)
                .expect("checked member");
            member.client = from;
            member.session_deadline = cx.now() + member.session_timeout;
            if self.state == GroupState::PreparingRebalance {
                error = ErrorCode::RebalanceInProgress;
            }
        }
        assert!(
            error != ErrorCode::None
                || matches!(
                    self.state,
                    GroupState::Stable | GroupState::CompletingRebalance
                ),
            "group {}: a heartbeat accepted in {:?}",
            self.name,
            self.state
        );
        let resp = HeartbeatResponse {
            correlation_id: req.correlation_id,
            error,
        };
        cx.send(from, Message::HeartbeatResponse(resp));
    }

    /// `FencedInstanceId` / `UnknownMemberId` / `IllegalGeneration` checks shared by sync,
    /// heartbeat and commit.
    pub fn check_member(
        &self,
        member_id: &str,
        instance: Option<&str>,
        generation: i32,
    ) -> ErrorCode {
        if self.state == GroupState::Dead {
            return ErrorCode::CoordinatorNotAvailable;
        }
        let error = self.validate_current_member(member_id, instance);
        if error != ErrorCode::None {
            return error;
        }
        if generation != self.generation {
            return ErrorCode::IllegalGeneration;
        }
        ErrorCode::None
    }

    pub fn leave(&mut self, cx: &mut Cx, from: NodeId, req: LeaveGroupRequest) {
        let instance = req.group_instance_id.as_deref();
        let error = if self.pending.remove(&req.member_id).is_some() {
            ErrorCode::None
        } else {
            // `handleLeaveGroup`: a static member's LeaveGroup is checked like its other
            // requests (an old member id of the instance is fenced and stays out).
            let error = self.validate_current_member(&req.member_id, instance);
            if error == ErrorCode::None {
                self.remove_member(cx, &req.member_id);
            }
            error
        };
        assert!(
            error != ErrorCode::None
                || (!self.members.contains_key(&req.member_id)
                    && !self.pending.contains_key(&req.member_id)),
            "group {}: {} still a member after leaving",
            self.name,
            req.member_id
        );
        let resp = LeaveGroupResponse {
            correlation_id: req.correlation_id,
            error,
        };
        cx.send(from, Message::LeaveGroupResponse(resp));
        self.check();
    }

    fn remove_member(&mut self, cx: &mut Cx, member_id: &str) {
        let Some(member) = self.members.remove(member_id) else {
            return;
        };
        self.forget_static(member_id, &member);
        // Kafka `GroupMetadata.remove`: a departing leader's lead passes to another member
        // (`members.keys.headOption` of a hash map; here the earliest added).
        if self.leader.as_deref() == Some(member_id) {
            self.leader = self.earliest_member(|_| true);
        }
        let formed = matches!(
            self.state,
            GroupState::Stable | GroupState::CompletingRebalance
        );
        if let Some(corr) = member.awaiting_join {
            send_join_error_to(cx, member.client, corr, ErrorCode::UnknownMemberId);
        }
        if let Some(corr) = member.awaiting_sync {
            let e = ErrorCode::UnknownMemberId;
            send_sync(cx, member.client, corr, e, Arc::new(Vec::new()));
        }
        match self.state {
            GroupState::PreparingRebalance => self.try_complete_join(cx),
            GroupState::Stable | GroupState::CompletingRebalance => self.prepare_rebalance(cx),
            GroupState::Empty | GroupState::Dead => {}
        }
        // A departure always rebalances a formed group (`removeMemberAndUpdateGroup`).
        assert!(
            !formed
                || matches!(
                    self.state,
                    GroupState::PreparingRebalance | GroupState::Empty
                ),
            "group {}: {member_id} left and the group stayed {:?}",
            self.name,
            self.state
        );
    }

    /// A session timer fired for the member (or pending member) with sequence `seq`.
    pub fn on_session_timer(&mut self, cx: &mut Cx, seq: u32) {
        self.check();
        if let Some((id, p)) = self.pending.iter().find(|(_, p)| p.seq == seq) {
            if p.deadline <= cx.now() {
                let id = id.clone();
                self.pending.remove(&id);
                self.try_complete_join(cx);
                assert!(
                    !self.pending.contains_key(&id),
                    "group {}: pending member {id} expired but stays",
                    self.name
                );
            }
            return;
        }
        let Some((id, m)) = self.members.iter().find(|(_, m)| m.seq == seq) else {
            return;
        };
        // A member parked in its own JoinGroup or SyncGroup call cannot heartbeat, and is
        // not expired while it waits (Kafka `MemberMetadata.hasSatisfiedHeartbeat`: members
        // `isAwaitingJoin || isAwaitingSync` "automatically satisfy expected heartbeats").
        // Without the SyncGroup half, a generation whose leader died before its SyncGroup
        // expired every member waiting for the assignment along with the dead leader, and
        // they all had to join again as new members.
        let parked = m.awaiting_join.is_some() || m.awaiting_sync.is_some();
        if m.session_deadline > cx.now() || parked {
            // A parked member's session starts anew when its call is answered; until then
            // look again a session later, not every millisecond.
            let floor = if parked {
                cx.now() + m.session_timeout
            } else {
                cx.now() + Duration::from_millis(1)
            };
            let at = m.session_deadline.max(floor);
            let id = id.clone();
            return self.arm_session_timer(cx, &id, at, seq);
        }
        let id = id.clone();
        self.remove_member(cx, &id);
        assert!(
            !self.members.contains_key(&id),
            "group {}: {id} expired but stays",
            self.name
        );
    }

    /// The coordinator lost this group's partition: answer every waiting request.
    pub fn unload(&mut self, cx: &mut Cx) {
        for m in self.members.values_mut() {
            if let Some(corr) = m.awaiting_join.take() {
                send_join_error_to(cx, m.client, corr, ErrorCode::NotCoordinator);
            }
            if let Some(corr) = m.awaiting_sync.take() {
                let e = ErrorCode::NotCoordinator;
                send_sync(cx, m.client, corr, e, Arc::new(Vec::new()));
            }
        }
        self.state = GroupState::Dead;
        self.static_rejoins.clear();
        assert!(
            self.members
                .values()
                .all(|m| m.awaiting_join.is_none() && m.awaiting_sync.is_none()),
            "group {}: unloaded with requests unanswered",
            self.name
        );
    }
}

/// Map a log append error to what Kafka answers group clients (`GroupMetadataManager`).
pub fn coordinator_error(append_error: ErrorCode) -> ErrorCode {
    let error = match append_error {
        ErrorCode::None => ErrorCode::None,
        ErrorCode::UnknownTopicOrPartition
        | ErrorCode::NotEnoughReplicas
        | ErrorCode::NotEnoughReplicasAfterAppend
        | ErrorCode::RequestTimedOut => ErrorCode::CoordinatorNotAvailable,
        ErrorCode::NotLeaderOrFollower | ErrorCode::FencedLeaderEpoch => ErrorCode::NotCoordinator,
        _ => ErrorCode::CoordinatorNotAvailable,
    };
    // A group client retries these by finding the coordinator again; nothing else may leak.
    assert!(
        matches!(
            error,
            ErrorCode::None | ErrorCode::CoordinatorNotAvailable | ErrorCode::NotCoordinator
        ),
        "append error {append_error:?} mapped to {error:?}"
    );
    error
}

fn send_sync(cx: &mut Cx, to: NodeId, corr: u64, error: ErrorCode, assignment: Assignment) {
    if to == NodeId(u32::MAX) {
        return; // a restored member that has not spoken to this coordinator yet
    }
    let resp = SyncGroupResponse {
        correlation_id: corr,
        error,
        assignment,
    };
    cx.send(to, Message::SyncGroupResponse(resp));
}
