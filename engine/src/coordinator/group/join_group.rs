//! JoinGroup at the group coordinator (`GroupCoordinator.handleJoinGroup` and the
//! `PreparingRebalance` -> `CompletingRebalance` half of the group's state machine): the
//! KIP-394 member-id handshake, the KIP-134 initial rebalance delay, the join deadline and
//! the protocol choice (a static member's join without a member id: `static_member.rs`). Apart from `group.rs` because a rebalance is the longest path of the
//! group's state machine and reads best on its own against Kafka's `handleJoinGroup`.

use super::{Group, GroupState, Member, PendingMember, PersistGroup, GROUP_MAX_MEMBERS};
use crate::broker::timer::GroupTimer;
use crate::node::{Cx, NodeId};
use crate::protocol::{ErrorCode, JoinGroupRequest, JoinGroupResponse, Message, Subscription};
use crate::time::Duration;
use std::collections::BTreeMap;
use std::sync::Arc;

impl Group {
    /// Returns what to persist when a static member's rejoin of a Stable group replaced its
    /// old member id without a rebalance (its JoinGroup is answered once that is persisted).
    pub fn join(
        &mut self,
        cx: &mut Cx,
        from: NodeId,
        req: JoinGroupRequest,
    ) -> Option<PersistGroup> {
        self.check();
        if self.state == GroupState::Dead {
            send_join_error(cx, from, &req, ErrorCode::CoordinatorNotAvailable);
            return None;
        }
        if req.protocols.is_empty() || !self.supports_protocols(&req) {
            send_join_error(cx, from, &req, ErrorCode::InconsistentGroupProtocol);
            return None;
        }
        if req.member_id.is_empty() {
            if let Some(instance) = req.group_instance_id.clone() {
                return self.join_static_unknown(cx, from, req, instance);
            }
            self.join_unknown_member(cx, from, &req);
            return None;
        }
        if self.pending.remove(&req.member_id).is_some() {
            // A member's session timer is its own: the pending id's timer finds nobody.
            let seq = self.take_seq();
            self.add_member_and_rebalance(cx, from, req, seq);
            return None;
        }
        let instance = req.group_instance_id.as_deref();
        let error = self.validate_current_member(&req.member_id, instance);
        if error != ErrorCode::None {
            send_join_error(cx, from, &req, error);
            return None;
        }
        self.join_known_member(cx, from, req);
        None
    }

    /// Whether the request names at least one protocol every current member supports.
    fn supports_protocols(&self, req: &JoinGroupRequest) -> bool {
        if self.members.is_empty() || self.state == GroupState::Empty {
            return true;
        }
        req.protocols.iter().any(|(name, _)| {
            self.members
                .iter()
                .filter(|(id, _)| **id != req.member_id)
                .all(|(_, m)| m.protocols.is_empty() || m.protocols.iter().any(|(n, _)| n == name))
        })
    }

    /// KIP-394: hand out a member id and ask the client to rejoin with it.
    fn join_unknown_member(&mut self, cx: &mut Cx, from: NodeId, req: &JoinGroupRequest) {
        if self.members.len() + self.pending.len() >= GROUP_MAX_MEMBERS {
            return send_join_error(cx, from, req, ErrorCode::InvalidRequest);
        }
        let (seq, member_id) = self.new_member_id(cx, from, None);
        let deadline = cx.now() + Duration::from_millis(req.session_timeout_ms as u64);
        assert!(
            !self.members.contains_key(&member_id) && !self.pending.contains_key(&member_id),
            "group {}: member id {member_id} handed out twice",
            self.name
        );
        self.pending
            .insert(member_id.clone(), PendingMember { seq, deadline });
        self.arm_session_timer(cx, &member_id, deadline, seq);
        let resp = JoinGroupResponse {
            correlation_id: req.correlation_id,
            error: ErrorCode::MemberIdRequired,
            generation: -1,
            protocol: String::new(),
            leader: String::new(),
            member_id,
            members: Vec::new(),
            skip_assignment: false,
        };
        cx.send(from, Message::JoinGroupResponse(resp));
    }

    /// A fresh member id and its timer sequence. Kafka draws `clientId-UUID`, or
    /// `groupInstanceId-UUID` for a static member (`GroupMetadata.generateMemberId`): never a
    /// member id in use. kafsim numbers ids per group, and a group loaded on a coordinator
    /// (after a failover or a restart) numbers from its loaded members again, so an id this
    /// broker handed out in an earlier term can still be a member's: skip to an unused one.
    pub(super) fn new_member_id(
        &mut self,
        cx: &Cx,
        from: NodeId,
        instance: Option<&str>,
    ) -> (u32, String) {
        let prefix = instance.unwrap_or("consumer");
        loop {
            let seq = self.take_seq();
            let id = format!("{prefix}-n{}-{}-{}", from.0, cx.me().0, seq);
            if !self.members.contains_key(&id) && !self.pending.contains_key(&id) {
                return (seq, id);
            }
        }
    }

    /// `addMemberAndRebalance`: a pending dynamic member that rejoined with its id, or a new
    /// static member, under session timer sequence `seq`.
    pub(super) fn add_member_and_rebalance(
        &mut self,
        cx: &mut Cx,
        from: NodeId,
        req: JoinGroupRequest,
        seq: u32,
    ) {
        assert!(
            !self.members.contains_key(&req.member_id),
            "group {}: {} joins twice",
            self.name,
            req.member_id
        );
        let session = Duration::from_millis(req.session_timeout_ms as u64);
        if let Some(instance) = &req.group_instance_id {
            let old = self
                .static_members
                .insert(instance.clone(), req.member_id.clone());
            assert!(
                old.is_none(),
                "group {}: new static member {instance} was mapped to {old:?}",
                self.name
            );
        }
        let member = Member {
            client: from,
            instance_id: req.group_instance_id,
            seq,
            session_timeout: session,
            rebalance_timeout: Duration::from_millis(req.rebalance_timeout_ms as u64),
            protocols: req.protocols,
            session_deadline: cx.now() + session,
            awaiting_join: Some(req.correlation_id),
            awaiting_sync: None,
            assignment: Arc::new(Vec::new()),
        };
        self.arm_session_timer(cx, &req.member_id, member.session_deadline, seq);
        // The first member added leads the group until it leaves (Kafka
        // `GroupMetadata.add` / `ClassicGroup.add`: `if (leaderId.isEmpty) leaderId = member`):
        // with KIP-394 that is the first member to rejoin with its id, not the smallest id.
        if self.leader.is_none() {
            self.leader = Some(req.member_id.clone());
        }
        self.members.insert(req.member_id, member);
        self.new_member_joined = true;
        if self.state == GroupState::PreparingRebalance {
            self.try_complete_join(cx);
        } else {
            self.prepare_rebalance(cx);
        }
        assert!(
            matches!(
                self.state,
                GroupState::PreparingRebalance | GroupState::CompletingRebalance
            ),
            "group {}: a new member left the group {:?}",
            self.name,
            self.state
        );
    }

    fn join_known_member(&mut self, cx: &mut Cx, from: NodeId, req: JoinGroupRequest) {
        let is_leader = self.leader.as_deref() == Some(req.member_id.as_str());
        assert!(
            self.state != GroupState::Empty,
            "group {}: a known member {} in an Empty group",
            self.name,
            req.member_id
        );
        let member = self.members.get_mut(&req.member_id).expect("known member");
        let changed = member.protocols != req.protocols;
        member.client = from;
        member.protocols = req.protocols.clone();
        member.session_timeout = Duration::from_millis(req.session_timeout_ms as u64);
        member.rebalance_timeout = Duration::from_millis(req.rebalance_timeout_ms as u64);
        member.session_deadline = cx.now() + member.session_timeout;
        // Kafka `GroupCoordinator.doCurrentMemberJoinGroup`: while the group waits for the
        // leader's assignment, a member rejoining with the same metadata (it lost the first
        // JoinGroup response, or its SyncGroup) gets the current generation back, the leader
        // with the member list so it can assign again; only changed metadata rebalances. In
        // Stable, the leader's JoinGroup always rebalances (it may have seen metadata change).
        match self.state {
            GroupState::PreparingRebalance => {
                member.awaiting_join = Some(req.correlation_id);
                self.try_complete_join(cx);
            }
            GroupState::CompletingRebalance if !changed => {
                let resp = self.join_response(&req.member_id, req.correlation_id, is_leader);
                cx.send(from, Message::JoinGroupResponse(resp));
            }
            GroupState::Stable if !changed && !is_leader => {
                let resp = self.join_response(&req.member_id, req.correlation_id, false);
                cx.send(from, Message::JoinGroupResponse(resp));
            }
            _ => {
                member.awaiting_join = Some(req.correlation_id);
                self.prepare_rebalance(cx);
            }
        }
    }

    /// Enter PreparingRebalance: every member must rejoin within the rebalance timeout.
    pub(super) fn prepare_rebalance(&mut self, cx: &mut Cx) {
        // A static member's JoinGroup parked for its persisted rejoin now waits for this
        // rebalance, which answers it (the append's completion then finds nothing to do).
        self.static_rejoins.clear();
        if self.state == GroupState::CompletingRebalance {
            self.fail_pending_syncs(cx, ErrorCode::RebalanceInProgress);
        }
        let max_rebalance = self.max_rebalance_timeout();
        let delay = if self.state == GroupState::Empty {
            let first = self.initial_delay.min(max_rebalance);
            self.initial_delay_left = Some(max_rebalance.saturating_sub(first));
            self.new_member_joined = false;
            first
        } else {
            self.initial_delay_left = None;
            max_rebalance
        };
        // The join phase never outlasts the longest rebalance timeout of the members.
        assert!(
            delay <= max_rebalance,
            "group {}: a join phase of {delay:?} past the rebalance timeout {max_rebalance:?}",
            self.name
        );
        self.state = GroupState::PreparingRebalance;
        assert!(
            self.members.values().all(|m| m.awaiting_sync.is_none()),
            "group {}: a SyncGroup left unanswered by a rebalance",
            self.name
        );
        self.arm_join_deadline(cx, delay);
        self.try_complete_join(cx);
    }

    fn arm_join_deadline(&mut self, cx: &mut Cx, after: Duration) {
        self.rebalance_seq = self.rebalance_seq.wrapping_add(1);
        assert_eq!(
            self.state,
            GroupState::PreparingRebalance,
            "group {}: a join deadline outside a rebalance",
            self.name
        );
        self.join_deadline = cx.now() + after;
        let timer = GroupTimer::JoinDeadline {
            group: self.index,
            seq: self.rebalance_seq,
        };
        cx.set_timer(self.join_deadline, timer);
    }

    /// Complete the join phase early if every known member has rejoined (not during the
    /// initial delay, which always runs its course, as Kafka's InitialDelayedJoin).
    pub(super) fn try_complete_join(&mut self, cx: &mut Cx) {
        if self.state != GroupState::PreparingRebalance || self.initial_delay_left.is_some() {
            return;
        }
        let all_joined = self.members.values().all(|m| m.awaiting_join.is_some());
        if all_joined && self.pending.is_empty() {
            self.complete_join(cx);
            assert_ne!(
                self.state,
                GroupState::PreparingRebalance,
                "group {}: a completed join still preparing",
                self.name
            );
        }
    }

    /// The join deadline timer fired.
    pub fn on_join_deadline(&mut self, cx: &mut Cx, seq: u32) {
        self.check();
        if self.state != GroupState::PreparingRebalance || seq != self.rebalance_seq {
            return;
        }
        assert!(
            cx.now() >= self.join_deadline,
            "group {}: the join deadline fired early",
            self.name
        );
        if let Some(left) = self.initial_delay_left {
            if self.new_member_joined && left > Duration::ZERO {
                let step = self.initial_delay.min(left);
                self.initial_delay_left = Some(left - step);
                self.new_member_joined = false;
                return self.arm_join_deadline(cx, step);
            }
            self.initial_delay_left = None;
        }
        // Dynamic members that did not rejoin in time are removed (Kafka: onCompleteJoin);
        // static ones stay members, with the partitions of the generation, until their
        // session expires (KIP-345).
        let stragglers: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| m.awaiting_join.is_none() && m.instance_id.is_none())
            .map(|(id, _)| id.clone())
            .collect();
        for id in stragglers {
            self.members.remove(&id);
        }
        self.pending.clear();
        // `maybeElectNewJoinedLeader`: the leader must be a member that rejoined. With none
        // (only static members that did not), wait another rebalance timeout: their sessions
        // expire meanwhile.
        if self.members.values().all(|m| m.awaiting_join.is_none()) && !self.members.is_empty() {
            let wait = self.max_rebalance_timeout();
            return self.arm_join_deadline(cx, wait);
        }
        self.complete_join(cx);
    }

    /// The longest rebalance timeout of the members: how long a join phase may last.
    fn max_rebalance_timeout(&self) -> Duration {
        self.members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or(Duration::ZERO)
    }

    fn complete_join(&mut self, cx: &mut Cx) {
        assert!(
            self.generation < i32::MAX,
            "group {}: generations exhausted",
            self.name
        );
        self.generation += 1;
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.protocol = None;
            self.leader = None;
            return;
        }
        self.protocol = Some(self.select_protocol());
        // Kafka `GroupMetadata.maybeElectNewJoinedLeader` (`ClassicGroup.maybeElectNewJoinedLeader`):
        // a leader that did not rejoin hands the lead to a member that did. Kafka takes the
        // first of a hash map's members; kafsim the earliest added, a deterministic stand-in.
        let leader_joined = self
            .leader
            .as_ref()
            .and_then(|l| self.members.get(l))
            .is_some_and(|m| m.awaiting_join.is_some());
        if !leader_joined {
            self.leader = self.earliest_member(|m| m.awaiting_join.is_some());
        }
        assert!(
            self.leader
                .as_ref()
                .and_then(|l| self.members.get(l))
                .is_some_and(|m| m.awaiting_join.is_some()),
            "group {}: generation {} completes its join without a joined leader",
            self.name,
            self.generation
        );
        self.state = GroupState::CompletingRebalance;
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let member = self.members.get_mut(&id).expect("member");
            member.session_deadline = cx.now() + member.session_timeout;
            member.assignment = Arc::new(Vec::new());
            let Some(corr) = member.awaiting_join.take() else {
                continue;
            };
            let client = member.client;
            let is_leader = self.leader.as_deref() == Some(id.as_str());
            let resp = self.join_response(&id, corr, is_leader);
            cx.send(client, Message::JoinGroupResponse(resp));
        }
        assert!(
            self.members.values().all(|m| m.awaiting_join.is_none()),
            "group {}: a JoinGroup left unanswered by generation {}",
            self.name,
            self.generation
        );
    }

    /// Kafka's `selectProtocol`: among protocols every member supports, each member votes for
    /// the first of its own list; most votes wins (ties: the earliest candidate in name order).
    pub(super) fn select_protocol(&self) -> String {
        // A member restored from a GroupMetadata record that has not rejoined since supports
        // the group's protocol only (Kafka's record keeps that one protocol's metadata).
        let current = self.protocol.as_deref();
        let supported = |m| supported_protocols(m, current);
        let mut candidates: Vec<&str> = Vec::new();
        if let Some(first) = self.members.values().map(supported).find(|p| !p.is_empty()) {
            for name in first {
                let everyone = self.members.values().all(|m| supported(m).contains(&name));
                if everyone {
                    candidates.push(name);
                }
            }
        }
        assert!(
            !candidates.is_empty(),
            "group {} has no protocol common to all members",
            self.name
        );
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some(n) = supported(m).into_iter().find(|n| candidates.contains(n)) {
                *votes.entry(n).or_default() += 1;
            }
        }
        let best = votes.values().copied().max().unwrap_or(0);
        let chosen = votes
            .into_iter()
            .find(|(_, v)| *v == best)
            .map(|(n, _)| n.to_string())
            .expect("a voted protocol");
        assert!(
            candidates.contains(&chosen.as_str()),
            "group {}: chose {chosen}, which not every member supports",
            self.name
        );
        chosen
    }

    pub(super) fn join_response(
        &self,
        member_id: &str,
        corr: u64,
        with_members: bool,
    ) -> JoinGroupResponse {
        assert!(
            self.generation > 0 && self.members.contains_key(member_id),
            "group {}: a join answer for {member_id} at generation {}",
            self.name,
            self.generation
        );
        let protocol = self.protocol.clone().unwrap_or_default();
        let members = if with_members {
            self.members
                .iter()
                .map(|(id, m)| {
                    let sub = m
                        .protocols
                        .iter()
                        .find(|(n, _)| *n == protocol)
                        .map(|(_, s)| s.clone())
                        .unwrap_or(Subscription {
                            topics: Vec::new(),
                            owned_partitions: Vec::new(),
                            generation: -1,
                        });
                    (id.clone(), sub)
                })
                .collect()
        } else {
            Vec::new()
        };
        JoinGroupResponse {
            correlation_id: corr,
            error: ErrorCode::None,
            generation: self.generation,
            protocol,
            leader: self.leader.clone().unwrap_or_default(),
            member_id: member_id.to_string(),
            members,
            skip_assignment: false,
        }
    }
}

/// The protocols `member` supports; `current` (the group's) for a member restored from the log
/// that has not rejoined.
fn supported_protocols<'a>(member: &'a Member, current: Option<&'a str>) -> Vec<&'a str> {
    if member.protocols.is_empty() {
        current.into_iter().collect()
    } else {
        member.protocols.iter().map(|(n, _)| n.as_str()).collect()
    }
}

fn send_join_error(cx: &mut Cx, to: NodeId, req: &JoinGroupRequest, error: ErrorCode) {
    send_join_error_to(cx, to, req.correlation_id, error);
}

pub(super) fn send_join_error_to(cx: &mut Cx, to: NodeId, corr: u64, error: ErrorCode) {
    assert_ne!(error, ErrorCode::None, "a JoinGroup error without an error");
    let resp = JoinGroupResponse::error(corr, error);
    cx.send(to, Message::JoinGroupResponse(resp));
}
