//! Static membership (KIP-345, `group.instance.id`) at the group coordinator, as Kafka's
//! classic coordinator keeps it (`GroupCoordinator.doStaticNewMemberJoinGroup`,
//! `updateStaticMemberAndRebalance`, `validateCurrentMember`; `GroupMetadata.staticMembers`,
//! `replaceStaticMember`; the same rules in 3.7+'s `GroupMetadataManager`
//! `classicGroupJoinToClassicGroup` / `ClassicGroup`).
//!
//! - A static member joins without the KIP-394 handshake: a JoinGroup with an instance id and
//!   no member id gets a member id at once.
//! - When its instance id is already mapped (a restarted process), the new member id replaces
//!   the old one and inherits its assignment. In a Stable group whose protocol choice stays
//!   the same, that is all: the group persists the new mapping and answers the JoinGroup with
//!   the current generation, so the member gets its old partitions back from SyncGroup and
//!   nobody rebalances. In CompletingRebalance the group rebalances (the leader may be
//!   assigning to the old member id); in PreparingRebalance the member simply joins.
//! - A request that names an instance id with a member id the instance no longer holds is
//!   fenced (`FENCED_INSTANCE_ID`); an instance id the group does not know is
//!   `UNKNOWN_MEMBER_ID`.
//! - A static member that does not rejoin a rebalance in time stays a member (only dynamic
//!   stragglers are removed, `onCompleteJoin`): only its session expiry removes it.

use super::join_group::send_join_error_to;
use super::{coordinator_error, send_sync, Group, GroupState, PersistGroup, PersistedMember};
use super::{Member, GROUP_MAX_MEMBERS};
use crate::node::{Cx, NodeId};
use crate::protocol::{ErrorCode, JoinGroupRequest, Message, Subscription};
use crate::record::MemberTimeouts;
use crate::time::Duration;
use std::sync::Arc;

/// What a static member's replacement in a Stable group changed, to answer its JoinGroup once
/// the GroupMetadata append completes, or to undo it if the append fails (Kafka reverts the
/// replacement in `storeGroup`'s callback).
#[derive(Debug)]
pub(super) struct StaticRejoin {
    instance_id: String,
    old_member_id: String,
    old_protocols: Vec<(String, Subscription)>,
    old_timeouts: MemberTimeouts,
    /// The leader before the replacement: what a client before JoinGroup v9 is told, so that
    /// a returning static leader does not assign again (the coordinator would ignore it).
    leader_before: Option<String>,
    supports_skip_assignment: bool,
}

impl Member {
    /// The member as its GroupMetadata record keeps it.
    pub(super) fn persisted(&self, member_id: &str) -> PersistedMember {
        PersistedMember {
            member_id: member_id.to_string(),
            instance_id: self.instance_id.clone(),
            assignment: self.assignment.clone(),
            timeouts: MemberTimeouts {
                session: self.session_timeout,
                rebalance: self.rebalance_timeout,
            },
        }
    }
}

impl Group {
    /// `validateCurrentMember`: with an instance id, the instance must be mapped to this
    /// member id (another id is an older incarnation: fenced); without one, the member id
    /// must be a member.
    pub(super) fn validate_current_member(
        &self,
        member_id: &str,
        instance: Option<&str>,
    ) -> ErrorCode {
        match instance {
            Some(instance) => match self.static_members.get(instance) {
                Some(current) if current != member_id => ErrorCode::FencedInstanceId,
                Some(current) => {
                    assert!(
                        self.members.contains_key(current),
                        "group {}: instance {instance} mapped to {current}, not a member",
                        self.name
                    );
                    ErrorCode::None
                }
                None => ErrorCode::UnknownMemberId,
            },
            None if self.members.contains_key(member_id) => ErrorCode::None,
            None => ErrorCode::UnknownMemberId,
        }
    }

    /// `doStaticNewMemberJoinGroup`: a static member without a member id joins at once, as a
    /// new member or in place of its instance's previous member id.
    pub(super) fn join_static_unknown(
        &mut self,
        cx: &mut Cx,
        from: NodeId,
        mut req: JoinGroupRequest,
        instance: String,
    ) -> Option<PersistGroup> {
        assert!(
            req.member_id.is_empty(),
            "group {}: a static join with member id {}",
            self.name,
            req.member_id
        );
        if self.members.len() + self.pending.len() >= GROUP_MAX_MEMBERS {
            let e = ErrorCode::InvalidRequest;
            send_join_error_to(cx, from, req.correlation_id, e);
            return None;
        }
        let (seq, member_id) = self.new_member_id(cx, from, Some(&instance));
        req.member_id = member_id;
        match self.static_members.get(&instance).cloned() {
            Some(old) => self.replace_and_rebalance(cx, from, req, instance, old),
            None => {
                self.add_member_and_rebalance(cx, from, req, seq);
                None
            }
        }
    }

    /// `updateStaticMemberAndRebalance`.
    fn replace_and_rebalance(
        &mut self,
        cx: &mut Cx,
        from: NodeId,
        req: JoinGroupRequest,
        instance: String,
        old_member_id: String,
    ) -> Option<PersistGroup> {
        let leader_before = self.leader.clone();
        let new_member_id = req.member_id.clone();
        self.replace_static_member(cx, &instance, &old_member_id, &new_member_id);
        let member = self.members.get_mut(&new_member_id).expect("replaced");
        let rejoin = StaticRejoin {
            instance_id: instance,
            old_member_id,
            old_protocols: std::mem::replace(&mut member.protocols, req.protocols),
            old_timeouts: MemberTimeouts {
                session: member.session_timeout,
                rebalance: member.rebalance_timeout,
            },
            leader_before,
            supports_skip_assignment: req.supports_skip_assignment,
        };
        member.client = from;
        member.session_timeout = Duration::from_millis(req.session_timeout_ms as u64);
        member.rebalance_timeout = Duration::from_millis(req.rebalance_timeout_ms as u64);
        member.session_deadline = cx.now() + member.session_timeout;
        member.awaiting_join = Some(req.correlation_id);
        match self.state {
            GroupState::Stable if self.protocol.as_deref() == Some(&self.select_protocol()) => {
                let persist = PersistGroup {
                    generation: self.generation,
                    protocol: self.protocol.clone().expect("a Stable group's protocol"),
                    members: self.persisted_members(),
                    static_rejoin: Some(new_member_id.clone()),
                };
                self.static_rejoins.insert(new_member_id, rejoin);
                self.check();
                return Some(persist);
            }
            // The member's new protocols change the group's choice: rebalance. In
            // CompletingRebalance the leader may be assigning to the old member id, so the
            // group rebalances too, "since the old member may already be sent to the leader".
            GroupState::Stable | GroupState::CompletingRebalance => self.prepare_rebalance(cx),
            GroupState::PreparingRebalance => self.try_complete_join(cx),
            GroupState::Empty | GroupState::Dead => unreachable!(
                "group {}: a static member mapped in a {:?} group",
                self.name, self.state
            ),
        }
        self.check();
        None
    }

    /// `GroupMetadata.replaceStaticMember`: the member moves to its new id with its
    /// assignment; a JoinGroup or SyncGroup the old id still has parked is fenced.
    fn replace_static_member(&mut self, cx: &mut Cx, instance: &str, old: &str, new: &str) {
        let mut member = self.members.remove(old).expect("the instance's member");
        assert_eq!(
            member.instance_id.as_deref(),
            Some(instance),
            "group {}: {old} replaced under another instance id",
            self.name
        );
        if let Some(corr) = member.awaiting_join.take() {
            send_join_error_to(cx, member.client, corr, ErrorCode::FencedInstanceId);
        }
        if let Some(corr) = member.awaiting_sync.take() {
            let e = ErrorCode::FencedInstanceId;
            send_sync(cx, member.client, corr, e, Arc::new(Vec::new()));
        }
        // A rejoin of `old` whose append is still pending was just fenced: its append's
        // completion answers nothing (Kafka's `ClassicGroup.replaceStaticMember` builds a new
        // member object, so the old append's `completeJoinFuture` finds no future).
        self.static_rejoins.remove(old);
        assert!(
            !self.members.contains_key(new) && !self.pending.contains_key(new),
            "group {}: {new} replaces {old} but is taken",
            self.name
        );
        self.members.insert(new.to_string(), member);
        if self.leader.as_deref() == Some(old) {
            self.leader = Some(new.to_string());
        }
        self.static_members
            .insert(instance.to_string(), new.to_string());
    }

    /// The GroupMetadata append of a static member's rejoin completed: answer its JoinGroup
    /// with the current generation (its SyncGroup then gets the old assignment), or undo the
    /// replacement and answer the error.
    pub(super) fn on_static_rejoin_persisted(
        &mut self,
        cx: &mut Cx,
        member_id: &str,
        result: ErrorCode,
    ) {
        // A rebalance, a removal or an unload answered the JoinGroup meanwhile. (Kafka would
        // still undo the replacement of a failed append then; kafsim keeps the member of the
        // rebalance it joined.)
        let Some(rejoin) = self.static_rejoins.remove(member_id) else {
            return;
        };
        assert_eq!(
            self.state,
            GroupState::Stable,
            "group {}: a static rejoin pending outside Stable",
            self.name
        );
        let member = self
            .members
            .get_mut(member_id)
            .expect("a pending rejoin's member");
        let corr = member.awaiting_join.take().expect("a parked JoinGroup");
        let client = member.client;
        if result != ErrorCode::None {
            member.protocols = rejoin.old_protocols;
            member.session_timeout = rejoin.old_timeouts.session;
            member.rebalance_timeout = rejoin.old_timeouts.rebalance;
            let instance = rejoin.instance_id;
            self.replace_static_member(cx, &instance, member_id, &rejoin.old_member_id);
            send_join_error_to(cx, client, corr, coordinator_error(result));
            return self.check();
        }
        let leads = self.leader.as_deref() == Some(member_id);
        let resp = if rejoin.supports_skip_assignment {
            // JoinGroup v9+ (KIP-814): the leader learns it leads, and that it must not assign.
            let mut resp = self.join_response(member_id, corr, leads);
            resp.skip_assignment = leads;
            resp
        } else {
            let mut resp = self.join_response(member_id, corr, false);
            resp.leader = rejoin.leader_before.unwrap_or_default();
            resp
        };
        assert!(
            resp.leader != member_id || resp.skip_assignment,
            "group {}: a returning static leader told to assign in a Stable group",
            self.name
        );
        cx.send(client, Message::JoinGroupResponse(resp));
        self.check();
    }

    /// Drop what ties `member_id` (removed from the group) to its instance id.
    pub(super) fn forget_static(&mut self, member_id: &str, member: &Member) {
        self.static_rejoins.remove(member_id);
        if let Some(instance) = &member.instance_id {
            if self.static_members.get(instance).map(String::as_str) == Some(member_id) {
                self.static_members.remove(instance);
            }
        }
        assert!(
            self.static_members.values().all(|id| id != member_id),
            "group {}: removed {member_id} still holds an instance id",
            self.name
        );
    }

    /// Invariants of the instance-id mapping: one member id per instance id and the other way
    /// round, each mapped member a member carrying that instance id; a JoinGroup parked for a
    /// persisted rejoin only in a Stable group.
    pub(super) fn check_static_members(&self) {
        for (instance, id) in &self.static_members {
            assert!(
                self.members
                    .get(id)
                    .is_some_and(|m| m.instance_id.as_deref() == Some(instance.as_str())),
                "group {}: instance {instance} mapped to {id}, which is not its member",
                self.name
            );
        }
        let with_instance = self
            .members
            .values()
            .filter(|m| m.instance_id.is_some())
            .count();
        assert_eq!(
            with_instance,
            self.static_members.len(),
            "group {}: static members and instance ids differ",
            self.name
        );
        assert!(
            self.static_rejoins.is_empty() || self.state == GroupState::Stable,
            "group {}: static rejoins pending in {:?}",
            self.name,
            self.state
        );
        assert!(
            self.static_rejoins.keys().all(|id| self
                .members
                .get(id)
                .is_some_and(|m| m.awaiting_join.is_some())),
            "group {}: a pending static rejoin without its JoinGroup",
            self.name
        );
    }
}
