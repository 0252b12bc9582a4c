//! Client side of the group protocol: find the coordinator, join (with the KIP-394 member id
//! handshake), sync, heartbeat, leave; the leader computes the assignment.
//!
//! Rebalances run inside `poll()`, as in the Java client (and, in effect, in sarama, whose new
//! session starts only after every ConsumeClaim returned, and librdkafka, whose rebalance
//! callbacks are served from poll): a member that must rejoin does so when its poll loop is
//! back in poll. Before an eager rejoin it revokes everything, committing first when
//! auto-commit is on (Java `onJoinPrepare`, sarama session end, librdkafka unassign). With
//! cooperative-sticky (KIP-429, Java 2.4+) it keeps its partitions across the join, revokes only
//! what the new assignment takes away, and rejoins once more if it revoked anything.
//! A fenced member (UnknownMemberId / IllegalGeneration) loses its partitions without
//! committing (`onPartitionsLost`).
//!
//! A static member (`group.instance.id`, KIP-345) sends its instance id with every group
//! request, sends no LeaveGroup when its poll interval expires (it only forgets its member id
//! and rejoins, which a Stable group answers with its old assignment), and stops for good
//! when the coordinator answers FENCED_INSTANCE_ID: another process holds its instance id.

use super::{Consumer, Need, PartState, Req};
use crate::history::{HistoryEvent, ResetCause};
use crate::node::{Cx, NodeId};
use crate::protocol::{
    ErrorCode, FindCoordinatorRequest, FindCoordinatorResponse, HeartbeatRequest,
    HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, Message,
    Subscription, SyncGroupRequest, SyncGroupResponse,
};
use crate::record::TopicPartition;
use crate::time::{Duration, Instant};
use std::collections::BTreeSet;
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberState {
    Unjoined,
    Joining,
    Syncing,
    Stable,
}

#[derive(Debug)]
pub struct Membership {
    pub coordinator: Option<NodeId>,
    pub find_not_before: Instant,
    pub member_id: String,
    pub generation: i32,
    pub protocol: String,
    pub state: MemberState,
    /// The member must rejoin at its next poll.
    pub rejoin: bool,
    join_not_before: Instant,
    /// The pre-join commit (onJoinPrepare) was issued for this rejoin.
    prepared: bool,
    pub owned: Vec<TopicPartition>,
    pub heartbeat_inflight: bool,
    heartbeat_epoch: u64,
    pub last_heartbeat_ok: Instant,
    /// KIP-429 incremental rebalancing: owned partitions stay owned across the join.
    pub cooperative: bool,
    pub rebalances: u64,
    /// FENCED_INSTANCE_ID: another incarnation holds this member's `group.instance.id`. Java
    /// throws `FencedInstanceIdException` from poll (fatal), librdkafka raises a fatal error
    /// (`rdkafka_cgrp.c`: "Fatal consumer error"); the member does nothing more.
    pub fenced: bool,
    /// The subscribed topics' partition counts this member's assignment was made with, kept
    /// by the members that watch for new partitions ([`super::partition_watch`]).
    pub partition_snapshot: Option<std::collections::BTreeMap<crate::record::TopicId, u32>>,
    /// A standalone consumer (`assign`, `ConsumePartition`, a Reader with `Partition`): never
    /// joins, owns its partitions from the start, commits (if at all) with generation -1.
    pub standalone: bool,
}

impl Membership {
    pub fn new(config: &super::ConsumerConfig) -> Membership {
        Membership {
            coordinator: None,
            find_not_before: Instant::ZERO,
            member_id: String::new(),
            generation: -1,
            protocol: String::new(),
            state: MemberState::Unjoined,
            rejoin: true,
            join_not_before: Instant::ZERO,
            prepared: false,
            owned: Vec::new(),
            heartbeat_inflight: false,
            heartbeat_epoch: 0,
            last_heartbeat_ok: Instant::ZERO,
            // Java picks the rebalance protocol every configured assignor supports: one eager
            // assignor (range, as in the 3.x default list) makes the whole protocol eager.
            cooperative: config.strategies.iter().all(|s| s == "cooperative-sticky"),
            rebalances: 0,
            fenced: false,
            partition_snapshot: None,
            standalone: false,
        }
    }

    /// A join or sync request failed: rejoin after `not_before`.
    pub fn rejoin_after_failure(&mut self, not_before: Instant) {
        if matches!(self.state, MemberState::Joining | MemberState::Syncing) {
            self.state = MemberState::Unjoined;
        }
        self.rejoin = true;
        self.join_not_before = not_before;
    }

    pub fn is_stable(&self) -> bool {
        self.standalone || (self.state == MemberState::Stable && self.generation >= 0)
    }

    fn needs_join(&self) -> bool {
        if self.standalone {
            return false;
        }
        self.state == MemberState::Unjoined || (self.state == MemberState::Stable && self.rejoin)
    }

    /// Forget the membership (fenced, or left): the next join starts from scratch.
    fn reset(&mut self) {
        self.member_id.clear();
        self.generation = -1;
        self.state = MemberState::Unjoined;
        self.rejoin = true;
        self.prepared = false;
    }
}

impl Consumer {
    pub(super) fn drive_coordinator(&mut self, cx: &mut Cx) {
        if self.group.coordinator.is_some() || self.group.find_not_before > cx.now() {
            return;
        }
        if self.spec.standalone.as_ref().is_some_and(|s| !s.commits) {
            return; // no group.id: nothing to commit or fetch, no coordinator to find
        }
        if self
            .inflight
            .values()
            .any(|f| matches!(f.req, Req::FindCoordinator))
        {
            return;
        }
        let to = self.pick_broker(cx.now());
        let msg = Message::FindCoordinatorRequest(FindCoordinatorRequest {
            correlation_id: self.take_corr(),
            key: self.spec.group.clone(),
            key_type: crate::protocol::CoordinatorType::Group,
        });
        let timeout = self.config.request_timeout;
        self.send(cx, to, timeout, Req::FindCoordinator, msg);
    }

    pub(super) fn on_find_coordinator(&mut self, cx: &mut Cx, resp: FindCoordinatorResponse) {
        match (resp.error, resp.coordinator) {
            (ErrorCode::None, Some(node)) => self.group.coordinator = Some(node),
            _ => self.group.find_not_before = cx.now() + self.config.retry_backoff,
        }
    }

    /// The coordinator answered with a coordinator error: find it again.
    fn coordinator_error(&mut self, from: NodeId, error: ErrorCode) -> bool {
        let moved = matches!(
            error,
            ErrorCode::NotCoordinator
                | ErrorCode::CoordinatorNotAvailable
                | ErrorCode::CoordinatorLoadInProgress
        );
        if moved {
            self.coordinator_dead(from);
        }
        moved
    }

    pub(super) fn drive_membership(&mut self, cx: &mut Cx) {
        let Some(coordinator) = self.group.coordinator else {
            return;
        };
        if !self.group.needs_join() || self.group.join_not_before > cx.now() {
            return;
        }
        // The rebalance runs in poll(), once the application is back in it (Java, librdkafka;
        // sarama's next session starts after every ConsumeClaim returned). kafka-go's Reader
        // rebalances in its own goroutines (`Reader.run`: the generation ends and the readers
        // are unsubscribed whatever the application's loop is doing); it still finishes the
        // commit ReadMessage is waiting for first (`commitLoopImmediate` drains on ctx.Done).
        let waits_for_app = self.config.client != super::profile::ClientKind::KafkaGo;
        if waits_for_app && !(self.poll_thread_idle() && self.claims_done()) {
            return;
        }
        if !self
            .spec
            .topics
            .iter()
            .all(|t| self.meta.counts.contains_key(t))
        {
            self.meta.wanted = true;
            return; // the leader needs partition counts; learn them first
        }
        if !self.group.prepared {
            self.group.prepared = true;
            self.prepare_join(cx);
        }
        if self.sync_commit.is_some() {
            return; // the pre-join commit must finish first
        }
        self.send_join(cx, coordinator);
    }

    /// onJoinPrepare: commit what auto-commit would, then revoke (eager) everything.
    fn prepare_join(&mut self, cx: &mut Cx) {
        let valid = self.group.is_stable();
        if valid && self.auto_commit_enabled() && !self.group.owned.is_empty() {
            let offsets = self.auto_commit_offsets(&self.group.owned.clone());
            self.start_sync_commit(offsets);
        }
        if !self.group.cooperative || !valid {
            let _ = cx;
            self.revoke_all();
        }
    }

    /// Drop every owned partition (its buffered records and position go with it).
    fn revoke_all(&mut self) {
        self.group.owned.clear();
        self.parts.clear();
        self.drop_claim_queues();
    }

    pub(super) fn send_join(&mut self, cx: &mut Cx, coordinator: NodeId) {
        let subscription = Subscription {
            topics: self.spec.topics.clone(),
            owned_partitions: self.group.owned.clone(),
            generation: self.group.generation,
        };
        let protocols = self
            .config
            .strategies
            .iter()
            .map(|s| (s.clone(), self.subscription_for(s, &subscription)))
            .collect();
        let msg = Message::JoinGroupRequest(JoinGroupRequest {
            correlation_id: self.take_corr(),
            group: self.spec.group.clone(),
            member_id: self.group.member_id.clone(),
            group_instance_id: self.config.group_instance_id.clone(),
            supports_skip_assignment: self.config.join_group_v9(),
            session_timeout_ms: self.config.session_timeout.as_millis() as u32,
            rebalance_timeout_ms: self.config.rebalance_timeout.as_millis() as u32,
            protocols,
        });
        self.group.state = MemberState::Joining;
        self.group.rejoin = false;
        self.group.prepared = false;
        // Java: the join may wait a whole rebalance timeout, plus a margin.
        let timeout = self.config.rebalance_timeout + Duration::from_secs(5);
        self.send(cx, coordinator, timeout, Req::Join, msg);
    }

    /// What the member's JoinGroup metadata holds for assignor `strategy`. sarama
    /// (`ConsumerGroupMemberMetadata`: topics and user data, the latter set only by its
    /// sticky strategy) and kafka-go (`groupMetadata`: topics and user data) send no owned
    /// partitions and no generation for range or roundrobin, so their metadata is the same at
    /// every rejoin and the coordinator answers an unchanged rejoin with the current
    /// generation instead of starting another rebalance. Java (ConsumerProtocolSubscription
    /// v1+) and librdkafka send what they own.
    fn subscription_for(&self, strategy: &str, full: &Subscription) -> Subscription {
        use super::profile::ClientKind;
        let bare = matches!(self.config.client, ClientKind::Sarama | ClientKind::KafkaGo)
            && !matches!(strategy, "sticky" | "cooperative-sticky");
        if bare {
            Subscription {
                topics: full.topics.clone(),
                owned_partitions: Vec::new(),
                generation: -1,
            }
        } else {
            full.clone()
        }
    }

    pub(super) fn on_join(&mut self, cx: &mut Cx, from: NodeId, resp: JoinGroupResponse) {
        let backoff = cx.now() + self.config.retry_backoff;
        match resp.error {
            ErrorCode::None => {}
            ErrorCode::MemberIdRequired => {
                self.group.member_id = resp.member_id;
                self.group.state = MemberState::Unjoined;
                self.group.rejoin = true;
                return self.send_join(cx, from);
            }
            ErrorCode::UnknownMemberId | ErrorCode::IllegalGeneration => {
                self.lose_partitions();
                self.group.reset();
                self.group.join_not_before = backoff;
                return;
            }
            ErrorCode::FencedInstanceId => return self.fenced_instance(cx),
            e => {
                self.coordinator_error(from, e);
                return self.group.rejoin_after_failure(backoff);
            }
        }
        self.group.member_id = resp.member_id.clone();
        self.group.generation = resp.generation;
        self.group.protocol = resp.protocol.clone();
        self.group.state = MemberState::Syncing;
        let leader = resp.leader == resp.member_id;
        // Java `onJoinComplete`: only the leader monitors metadata for partition changes
        // (`assignmentSnapshot` is cleared on the others); sarama starts its partition check
        // loop on the leader only.
        self.group.partition_snapshot = match self.watcher {
            super::partition_watch::Watcher::Leader if leader => Some(self.subscribed_counts()),
            _ => None,
        };
        // KIP-814: a static leader whose rejoin did not rebalance the Stable group leads
        // without assigning (Java `ConsumerCoordinator.onLeaderElected` with skipAssignment).
        let assignments = if leader && !resp.skip_assignment {
            self.assign(&resp)
        } else {
            Vec::new()
        };
        let msg = Message::SyncGroupRequest(SyncGroupRequest {
            correlation_id: self.take_corr(),
            group: self.spec.group.clone(),
            member_id: self.group.member_id.clone(),
            group_instance_id: self.config.group_instance_id.clone(),
            generation: self.group.generation,
            assignments,
        });
        let timeout = self.config.rebalance_timeout + Duration::from_secs(5);
        self.send(cx, from, timeout, Req::Sync, msg);
    }

    /// The leader's assignment of every member (protocol chosen by the coordinator).
    fn assign(&mut self, resp: &JoinGroupResponse) -> Vec<(String, crate::protocol::Assignment)> {
        let result = super::poll::run_assignor(
            &self.config,
            &resp.protocol,
            &self.spec.topic_names,
            &self.meta.counts,
            &resp.members,
            resp.generation,
        );
        let by_member = result.unwrap_or_else(|e| {
            panic!(
                "consumer {}/{}: assignor {} failed: {e}",
                self.spec.group, self.spec.member_index, resp.protocol
            )
        });
        resp.members
            .iter()
            .map(|(id, _)| {
                let tps = by_member.get(id).cloned().unwrap_or_default();
                (id.clone(), Arc::new(tps))
            })
            .collect()
    }

    pub(super) fn on_sync(&mut self, cx: &mut Cx, from: NodeId, resp: SyncGroupResponse) {
        let backoff = cx.now() + self.config.retry_backoff;
        match resp.error {
            ErrorCode::None => self.apply_assignment(cx, &resp.assignment),
            ErrorCode::UnknownMemberId | ErrorCode::IllegalGeneration => {
                self.lose_partitions();
                self.group.reset();
                self.group.join_not_before = backoff;
            }
            ErrorCode::FencedInstanceId => self.fenced_instance(cx),
            e => {
                self.coordinator_error(from, e);
                self.group.rejoin_after_failure(backoff);
            }
        }
    }

    fn apply_assignment(&mut self, cx: &mut Cx, assignment: &[TopicPartition]) {
        let new: BTreeSet<TopicPartition> = assignment.iter().copied().collect();
        let old: BTreeSet<TopicPartition> = self.group.owned.iter().copied().collect();
        let revoked: Vec<TopicPartition> = old.difference(&new).copied().collect();
        if !revoked.is_empty() {
            // Cooperative: give up what the new assignment took away and rejoin (KIP-429).
            // Java commits nothing here: `ConsumerCoordinator.onJoinComplete` only invokes
            // onPartitionsRevoked and requests the rejoin (its auto-commit ran before the
            // join, in onJoinPrepare), so records polled from a revoked partition during the
            // join are redelivered to its next owner. librdkafka commits the offsets of
            // removed partitions when auto-commit is on (`rdkafka_assignment.c`
            // `rd_kafka_assignment_serve_removals`).
            let commits_revoked = self.config.client != super::profile::ClientKind::Java;
            if commits_revoked && self.auto_commit_enabled() {
                let offsets = self.auto_commit_offsets(&revoked);
                self.start_sync_commit(offsets);
            }
            for tp in &revoked {
                self.parts.remove(tp);
            }
            self.group.rejoin = true;
        }
        let need = if self.sink.stores_offsets() {
            Need::Stored
        } else {
            Need::Committed
        };
        for tp in new.difference(&old) {
            self.parts.insert(
                *tp,
                PartState {
                    need,
                    ..PartState::default()
                },
            );
        }
        if self.watcher == super::partition_watch::Watcher::Every {
            self.group.partition_snapshot = Some(self.subscribed_counts());
        }
        self.group.owned = new.iter().copied().collect();
        self.group.state = MemberState::Stable;
        self.group.rebalances += 1;
        self.group.last_heartbeat_ok = cx.now();
        cx.record(HistoryEvent::Assigned {
            group: self.spec.group_index,
            member: self.spec.member_index,
            generation: self.group.generation,
            partitions: self.group.owned.clone(),
        });
        self.arm_heartbeat(cx);
    }

    /// A standalone consumer takes its partitions at every (re)start, as the application's
    /// `assign` / `ConsumePartition` / `Reader{Partition}` call does: positioned from the
    /// group's database when it stores offsets, else by its `start`.
    pub(super) fn start_standalone(&mut self, cx: &mut Cx) {
        let Some(standalone) = self.spec.standalone.clone() else {
            return;
        };
        self.group.standalone = true;
        self.group.state = MemberState::Stable;
        self.group.rejoin = false;
        let need = if self.sink.stores_offsets() {
            Need::Stored
        } else if standalone.start == super::Start::Committed {
            Need::Committed
        } else {
            Need::Reset(ResetCause::Start)
        };
        for tp in &standalone.partitions {
            let part = PartState {
                need,
                ..PartState::default()
            };
            self.parts.insert(*tp, part);
        }
        self.group.owned = standalone.partitions.clone();
        cx.record(HistoryEvent::Assigned {
            group: self.spec.group_index,
            member: self.spec.member_index,
            generation: self.group.generation,
            partitions: self.group.owned.clone(),
        });
    }

    /// The partition counts of the subscribed topics, as this member knows them now.
    fn subscribed_counts(&self) -> std::collections::BTreeMap<crate::record::TopicId, u32> {
        self.spec
            .topics
            .iter()
            .filter_map(|t| Some((*t, *self.meta.counts.get(t)?)))
            .collect()
    }

    /// The member was fenced: its partitions are gone without a commit.
    fn lose_partitions(&mut self) {
        self.group.owned.clear();
        self.parts.clear();
        self.drop_claim_queues();
    }

    fn arm_heartbeat(&mut self, cx: &mut Cx) {
        self.group.heartbeat_epoch += 1;
        let timer = super::timer::ConsumerTimer::Heartbeat(self.group.heartbeat_epoch);
        cx.set_timer_after(self.config.heartbeat_interval, timer);
    }

    pub(super) fn on_heartbeat_timer(&mut self, cx: &mut Cx, epoch: u64) {
        if epoch != self.group.heartbeat_epoch || self.group.state != MemberState::Stable {
            return;
        }
        self.arm_heartbeat(cx);
        let Some(coordinator) = self.group.coordinator else {
            return;
        };
        if self.group.heartbeat_inflight || self.group.generation < 0 {
            return;
        }
        self.group.heartbeat_inflight = true;
        let msg = Message::HeartbeatRequest(HeartbeatRequest {
            correlation_id: self.take_corr(),
            group: self.spec.group.clone(),
            member_id: self.group.member_id.clone(),
            group_instance_id: self.config.group_instance_id.clone(),
            generation: self.group.generation,
        });
        let timeout = self.config.request_timeout;
        self.send(cx, coordinator, timeout, Req::Heartbeat, msg);
    }

    pub(super) fn on_heartbeat(&mut self, cx: &mut Cx, from: NodeId, resp: HeartbeatResponse) {
        self.group.heartbeat_inflight = false;
        match resp.error {
            ErrorCode::None => self.group.last_heartbeat_ok = cx.now(),
            ErrorCode::RebalanceInProgress => {
                self.group.last_heartbeat_ok = cx.now();
                self.group.rejoin = true;
            }
            ErrorCode::UnknownMemberId | ErrorCode::IllegalGeneration => {
                self.lose_partitions();
                self.group.reset();
            }
            ErrorCode::FencedInstanceId => self.fenced_instance(cx),
            e => {
                self.coordinator_error(from, e);
            }
        }
    }

    /// FENCED_INSTANCE_ID (join, sync, heartbeat or commit): another process holds this
    /// member's `group.instance.id`. Fatal for Java (`FencedInstanceIdException` from poll,
    /// `AbstractCoordinator`) and librdkafka (`rd_kafka_set_fatal_error`, `rdkafka_cgrp.c`):
    /// the member drops its partitions without a commit and does nothing more. sarama
    /// returns the error from `Consume` (`consumer_group.go`), and an application that calls
    /// it again is fenced again: the same outcome.
    pub(super) fn fenced_instance(&mut self, cx: &mut Cx) {
        assert!(
            self.config.group_instance_id.is_some(),
            "consumer {}/{}: FENCED_INSTANCE_ID without a group.instance.id",
            self.spec.group,
            self.spec.member_index
        );
        let _ = cx;
        self.lose_partitions();
        self.group.reset();
        self.group.rejoin = false;
        self.group.fenced = true;
        self.sync_commit = None;
    }

    /// Java's heartbeat thread: no successful heartbeat for a session timeout means the
    /// coordinator is unreachable; find it again.
    pub(super) fn check_session(&mut self, cx: &mut Cx) {
        if self.group.state != MemberState::Stable || self.group.standalone {
            return;
        }
        let silent = cx.now().saturating_since(self.group.last_heartbeat_ok);
        if silent > self.config.session_timeout && self.group.coordinator.is_some() {
            self.group.coordinator = None;
            self.group.last_heartbeat_ok = cx.now();
        }
    }

    /// `max.poll.interval.ms`: an application that has not called poll in time makes its
    /// member leave the group (Java's heartbeat thread sends LeaveGroup, KIP-62; librdkafka
    /// does the same); it rejoins at its next poll, and its partitions are lost meanwhile.
    /// A static member sends no LeaveGroup (Java `AbstractCoordinator.maybeLeaveGroup` only
    /// for a dynamic member; librdkafka "static group members should continue to respect
    /// max.poll.interval.ms but should not send a LeaveGroupRequest"): it forgets its member
    /// id all the same, and its rejoin without one replaces its old id in the group.
    /// sarama and kafka-go have no such setting: their heartbeats go on, and a slow handler
    /// only hurts when a rebalance starts, as the coordinator then drops a member that does
    /// not rejoin within its rebalance timeout.
    pub(super) fn check_poll_interval(&mut self, cx: &mut Cx) {
        use super::profile::ClientKind;
        if !matches!(
            self.config.client,
            ClientKind::Java | ClientKind::Librdkafka
        ) {
            return;
        }
        // Only a member of a group has a poll deadline (an assigned consumer's poll timer
        // has no group to leave).
        if self.group.standalone {
            return;
        }
        if self.group.state != MemberState::Stable || !self.poll_thread_blocked() {
            return;
        }
        if cx.now().saturating_since(self.poll.last_poll) <= self.config.max_poll_interval {
            return;
        }
        let dynamic = self.config.group_instance_id.is_none();
        if let Some(coordinator) = self.group.coordinator.filter(|_| dynamic) {
            let msg = Message::LeaveGroupRequest(LeaveGroupRequest {
                correlation_id: self.take_corr(),
                group: self.spec.group.clone(),
                member_id: self.group.member_id.clone(),
                group_instance_id: None,
            });
            let timeout = self.config.request_timeout;
            self.send(cx, coordinator, timeout, Req::Leave, msg);
        }
        self.lose_partitions();
        self.group.reset();
    }
}
