//! Unit tests of the coordinator: the group state machine and the commit path, driven by hand.

use super::testkit::FakeLog;
use super::*;
use crate::node::{NodeTimer, Timer};
use crate::protocol::{
    FindCoordinatorRequest, HeartbeatRequest, JoinGroupRequest, JoinGroupResponse,
    OffsetCommitRequest, OffsetFetchRequest, Subscription, SyncGroupRequest,
};
use crate::record::TopicId;
use crate::testkit::Host;
use crate::time::{Duration, Instant};

pub(super) const OFFSETS: TopicId = TopicId(0);
pub(super) const DATA: TopicId = TopicId(1);

pub(super) struct Rig {
    pub(super) coord: GroupCoordinator,
    pub(super) host: Host,
    pub(super) log: FakeLog,
    pub(super) timers: Vec<(Instant, Timer)>,
    pub(super) corr: u64,
    /// The session timeout members ask for in their JoinGroup.
    pub(super) session_ms: u32,
}

impl Rig {
    pub(super) fn new() -> Rig {
        let config = CoordinatorConfig {
            offsets_partitions: 50,
            offsets_topic: OFFSETS,
            initial_rebalance_delay: Duration::from_millis(3000),
        };
        let mut rig = Rig {
            coord: GroupCoordinator::new(config),
            host: Host::new(NodeId(0)),
            log: FakeLog::default(),
            timers: Vec::new(),
            corr: 0,
            session_ms: 10_000,
        };
        let tp = rig.coord.partition_for("g");
        rig.log.epochs.insert(tp, 1);
        rig.log.leaders.insert(tp, NodeId(0));
        rig.lead(Some(1));
        rig
    }

    pub(super) fn lead(&mut self, epoch: Option<u32>) -> Vec<(NodeId, Message)> {
        let tp = self.coord.partition_for("g");
        // The broker tells its coordinator the epoch its replica leads at (a coordinator never
        // holds a load from a newer epoch than the replica's: `loaded_epoch_if_leading`).
        if let Some(epoch) = epoch {
            self.log.epochs.insert(tp, epoch);
        }
        let (coord, log) = (&mut self.coord, &mut self.log);
        self.host.call(|cx| coord.on_leadership(cx, tp, epoch, log));
        self.collect_timers();
        self.host.sent()
    }

    fn collect_timers(&mut self) {
        self.timers.extend(self.host.timers());
        self.timers.sort();
    }

    pub(super) fn send(&mut self, from: u32, msg: Message) -> Vec<(NodeId, Message)> {
        let (coord, log) = (&mut self.coord, &mut self.log);
        self.host
            .call(|cx| coord.handle(cx, NodeId(from), msg, log));
        self.collect_timers();
        self.host.sent()
    }

    /// Fire every timer due up to `to`.
    pub(super) fn advance(&mut self, to: Instant) -> Vec<(NodeId, Message)> {
        let mut sent = Vec::new();
        while let Some(&(at, timer)) = self.timers.first() {
            if at > to {
                break;
            }
            self.timers.remove(0);
            self.host.now = at;
            let (coord, log) = (&mut self.coord, &mut self.log);
            self.host
                .call(|cx| coord.on_timer(cx, GroupTimer::decode(timer), log));
            self.collect_timers();
            sent.extend(self.host.sent());
        }
        self.host.now = to;
        sent
    }

    pub(super) fn complete_appends(&mut self) -> Vec<(NodeId, Message)> {
        let mut sent = Vec::new();
        for token in self.log.commit_all() {
            let (coord, log) = (&mut self.coord, &mut self.log);
            self.host
                .call(|cx| coord.on_append_done(cx, token, ErrorCode::None, log));
            sent.extend(self.host.sent());
        }
        sent
    }

    pub(super) fn join(&mut self, from: u32, member_id: &str) -> Vec<(NodeId, Message)> {
        self.corr += 1;
        let sub = Subscription {
            topics: vec![DATA],
            owned_partitions: Vec::new(),
            generation: -1,
        };
        let req = JoinGroupRequest {
            correlation_id: self.corr,
            group: "g".into(),
            member_id: member_id.into(),
            group_instance_id: None,
            supports_skip_assignment: false,
            session_timeout_ms: self.session_ms,
            rebalance_timeout_ms: 30_000,
            protocols: vec![("range".into(), sub)],
        };
        self.send(from, Message::JoinGroupRequest(req))
    }

    /// Join with the KIP-394 handshake; returns the member id.
    pub(super) fn handshake(&mut self, from: u32) -> String {
        let sent = self.join(from, "");
        let resp = join_resp(&sent, from);
        assert_eq!(resp.error, ErrorCode::MemberIdRequired);
        assert!(!resp.member_id.is_empty());
        let sent = self.join(from, &resp.member_id);
        assert!(
            sent.is_empty(),
            "the join waits for the initial delay: {sent:?}"
        );
        resp.member_id
    }

    pub(super) fn heartbeat(&mut self, from: u32, member: &str, generation: i32) -> ErrorCode {
        self.heartbeat_as(from, member, None, generation)
    }

    /// A heartbeat of `member`, with `instance` as its group.instance.id if static.
    pub(super) fn heartbeat_as(
        &mut self,
        from: u32,
        member: &str,
        instance: Option<&str>,
        generation: i32,
    ) -> ErrorCode {
        self.corr += 1;
        let req = HeartbeatRequest {
            correlation_id: self.corr,
            group: "g".into(),
            member_id: member.into(),
            group_instance_id: instance.map(str::to_string),
            generation,
        };
        match &self.send(from, Message::HeartbeatRequest(req))[..] {
            [(_, Message::HeartbeatResponse(r))] => r.error,
            other => panic!("expected a heartbeat response, got {other:?}"),
        }
    }

    fn commit(
        &mut self,
        from: u32,
        member: &str,
        generation: i32,
        offset: u64,
    ) -> Vec<(NodeId, Message)> {
        self.corr += 1;
        let req = OffsetCommitRequest {
            correlation_id: self.corr,
            group: "g".into(),
            member_id: member.into(),
            group_instance_id: None,
            generation,
            offsets: vec![(TopicPartition::new(DATA, 0), offset, Some(1))],
        };
        self.send(from, Message::OffsetCommitRequest(req))
    }

    fn fetch_offset(&mut self, from: u32) -> Result<Option<u64>, ErrorCode> {
        self.corr += 1;
        let req = OffsetFetchRequest {
            correlation_id: self.corr,
            group: "g".into(),
            partitions: vec![TopicPartition::new(DATA, 0)],
            require_stable: false,
        };
        match &self.send(from, Message::OffsetFetchRequest(req))[..] {
            [(_, Message::OffsetFetchResponse(r))] if r.error == ErrorCode::None => {
                Ok(r.offsets[0].1)
            }
            [(_, Message::OffsetFetchResponse(r))] => Err(r.error),
            other => panic!("expected an offset fetch response, got {other:?}"),
        }
    }
}

pub(super) fn join_resp(sent: &[(NodeId, Message)], to: u32) -> JoinGroupResponse {
    sent.iter()
        .find_map(|(n, m)| match m {
            Message::JoinGroupResponse(r) if *n == NodeId(to) => Some(r.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no join response to n{to} in {sent:?}"))
}

fn commit_errors(sent: &[(NodeId, Message)]) -> Vec<ErrorCode> {
    sent.iter()
        .flat_map(|(_, m)| match m {
            Message::OffsetCommitResponse(r) => r.results.iter().map(|(_, e)| *e).collect(),
            _ => Vec::new(),
        })
        .collect()
}

/// Two members join, the leader syncs; returns (member ids, generation).
pub(super) fn stable_group(rig: &mut Rig) -> (String, String, i32) {
    let a = rig.handshake(10);
    let b = rig.handshake(11);
    let sent = rig.advance(Instant::from_millis(10_000));
    let ra = join_resp(&sent, 10);
    let rb = join_resp(&sent, 11);
    assert_eq!(ra.generation, 1);
    assert_eq!(ra.protocol, "range");
    let (leader, follower) = if ra.leader == a { (10, 11) } else { (11, 10) };
    assert_eq!(ra.leader, rb.leader);
    assert_eq!(
        join_resp(&sent, leader).members.len(),
        2,
        "the leader gets every member"
    );
    assert!(join_resp(&sent, follower).members.is_empty());
    let tp0 = TopicPartition::new(DATA, 0);
    let sync = |member: &str, assignments: Vec<(String, crate::protocol::Assignment)>, corr| {
        Message::SyncGroupRequest(SyncGroupRequest {
            correlation_id: corr,
            group: "g".into(),
            member_id: member.into(),
            group_instance_id: None,
            generation: 1,
            assignments,
        })
    };
    let fid = if follower == 10 { &a } else { &b };
    let lid = if leader == 10 { &a } else { &b };
    assert!(rig.send(follower, sync(fid, Vec::new(), 100)).is_empty());
    let assignments = vec![
        (lid.clone(), Arc::new(vec![tp0])),
        (fid.clone(), Arc::new(Vec::new())),
    ];
    assert!(
        rig.send(leader, sync(lid, assignments, 101)).is_empty(),
        "sync waits for the append"
    );
    assert_eq!(
        rig.coord.group_state("g").unwrap().0,
        GroupState::CompletingRebalance
    );
    let sent = rig.complete_appends();
    assert_eq!(sent.len(), 2, "both syncs answered: {sent:?}");
    for (to, m) in &sent {
        let Message::SyncGroupResponse(r) = m else {
            panic!("{m:?}")
        };
        assert_eq!(r.error, ErrorCode::None);
        assert_eq!(r.assignment.len(), usize::from(*to == NodeId(leader)));
    }
    assert_eq!(rig.coord.group_state("g"), Some((GroupState::Stable, 1, 2)));
    (a, b, 1)
}

#[test]
fn join_sync_reaches_stable_after_the_initial_delay() {
    let mut rig = Rig::new();
    stable_group(&mut rig);
}

#[test]
fn rejoin_with_an_unknown_member_id_is_refused() {
    let mut rig = Rig::new();
    let sent = rig.join(10, "nobody");
    assert_eq!(join_resp(&sent, 10).error, ErrorCode::UnknownMemberId);
}

#[test]
fn a_silent_member_is_expired_and_the_group_rebalances() {
    let mut rig = Rig::new();
    let (a, b, generation) = stable_group(&mut rig);
    // The join completed at 6 s (initial delay extended once) and the SyncGroups were
    // answered at 10 s, which starts every member's session anew (Kafka
    // `propagateAssignment`); a heartbeats, b stays silent past its 10 s session.
    for t in [8_000, 11_000, 14_000, 17_000] {
        rig.advance(Instant::from_millis(t));
        assert_eq!(rig.heartbeat(10, &a, generation), ErrorCode::None);
    }
    rig.advance(Instant::from_millis(19_900));
    assert_eq!(rig.coord.group_state("g").unwrap().0, GroupState::Stable);
    rig.advance(Instant::from_millis(20_100));
    assert_eq!(
        rig.coord.group_state("g").unwrap().0,
        GroupState::PreparingRebalance
    );
    assert_eq!(
        rig.heartbeat(10, &a, generation),
        ErrorCode::RebalanceInProgress
    );
    assert_eq!(
        rig.heartbeat(11, &b, generation),
        ErrorCode::UnknownMemberId
    );
    let sent = rig.join(10, &a);
    let resp = join_resp(&sent, 10);
    assert_eq!((resp.error, resp.generation), (ErrorCode::None, 2));
    assert_eq!(resp.members.len(), 1);
}

#[test]
fn heartbeats_keep_a_stable_group_stable() {
    let mut rig = Rig::new();
    let (a, b, generation) = stable_group(&mut rig);
    for t in (13_000..60_000).step_by(3000) {
        rig.advance(Instant::from_millis(t));
        assert_eq!(rig.heartbeat(10, &a, generation), ErrorCode::None);
        assert_eq!(rig.heartbeat(11, &b, generation), ErrorCode::None);
    }
    assert_eq!(rig.coord.group_state("g"), Some((GroupState::Stable, 1, 2)));
    assert_eq!(
        rig.heartbeat(11, &b, generation + 1),
        ErrorCode::IllegalGeneration
    );
}

#[test]
fn commit_is_served_only_after_its_append_is_acknowledged() {
    let mut rig = Rig::new();
    let (a, _, generation) = stable_group(&mut rig);
    assert!(
        rig.commit(10, &a, generation, 42).is_empty(),
        "waits for acks=all"
    );
    assert_eq!(rig.fetch_offset(10), Ok(None));
    let sent = rig.complete_appends();
    assert_eq!(commit_errors(&sent), vec![ErrorCode::None]);
    assert_eq!(rig.fetch_offset(10), Ok(Some(42)));
}

#[test]
fn commit_from_a_stale_generation_is_refused() {
    let mut rig = Rig::new();
    let (a, _, generation) = stable_group(&mut rig);
    let sent = rig.commit(10, &a, generation - 1, 42);
    assert_eq!(commit_errors(&sent), vec![ErrorCode::IllegalGeneration]);
    let sent = rig.commit(10, "stranger", generation, 42);
    assert_eq!(commit_errors(&sent), vec![ErrorCode::UnknownMemberId]);
}

#[test]
fn failed_append_fails_the_commit() {
    let mut rig = Rig::new();
    let (a, _, generation) = stable_group(&mut rig);
    rig.log.fail_appends = Some(ErrorCode::NotEnoughReplicas);
    let sent = rig.commit(10, &a, generation, 42);
    assert_eq!(
        commit_errors(&sent),
        vec![ErrorCode::CoordinatorNotAvailable]
    );
    rig.log.fail_appends = None;
    assert_eq!(rig.fetch_offset(10), Ok(None));
}

#[test]
fn failover_reloads_committed_offsets_and_the_generation_from_the_log() {
    let mut rig = Rig::new();
    let (a, _, generation) = stable_group(&mut rig);
    rig.commit(10, &a, generation, 42);
    rig.complete_appends();
    // An unacknowledged commit is lost with the old leader's log tail.
    rig.commit(10, &a, generation, 99);
    let lost = rig.log.appended.len();
    assert_eq!(lost, 1);
    rig.log.appended.clear();
    let sent = rig.lead(None);
    assert_eq!(
        commit_errors(&sent),
        vec![ErrorCode::NotCoordinator],
        "pending commit answered"
    );
    assert_eq!(rig.fetch_offset(10), Err(ErrorCode::NotCoordinator));
    // A new coordinator incarnation (fresh value, same log) takes over.
    let config = rig.coord.config.clone();
    rig.coord = GroupCoordinator::new(config);
    rig.lead(Some(2));
    assert_eq!(rig.fetch_offset(10), Ok(Some(42)));
    assert_eq!(rig.coord.group_state("g"), Some((GroupState::Stable, 1, 2)));
    assert_eq!(
        rig.heartbeat(10, &a, generation),
        ErrorCode::None,
        "members survive failover"
    );
}

/// Issue 13 (dedupe-sink-exactly-once seed 162): a member paused before its SyncGroup sends
/// it, after a coordinator failover, to the coordinator that loaded the stable group from the
/// log. Kafka keeps each member's assignment in the GroupMetadata record, so that member gets
/// its partitions; a record without them answered an empty assignment, the partition was
/// owned by nobody and never read again.
#[test]
fn failover_keeps_each_members_assignment_for_a_late_sync() {
    let mut rig = Rig::new();
    let (a, b, generation) = stable_group(&mut rig);
    let config = rig.coord.config.clone();
    rig.coord = GroupCoordinator::new(config);
    rig.lead(Some(2));
    let tp0 = TopicPartition::new(DATA, 0);
    let mut assigned = Vec::new();
    for (from, member) in [(10, &a), (11, &b)] {
        let sent = rig.send(
            from,
            Message::SyncGroupRequest(SyncGroupRequest {
                correlation_id: 7,
                group: "g".into(),
                member_id: member.clone(),
                group_instance_id: None,
                generation,
                assignments: Vec::new(),
            }),
        );
        let [(_, Message::SyncGroupResponse(r))] = sent.as_slice() else {
            panic!("{sent:?}")
        };
        assert_eq!(r.error, ErrorCode::None);
        assigned.extend(r.assignment.iter().copied());
    }
    assert_eq!(
        assigned,
        vec![tp0],
        "the loaded group still owns the partition"
    );
}

/// A member that dies around a coordinator failover keeps the session its client asked for
/// (Java's 45 s since 3.0): the GroupMetadata record carries each member's session timeout
/// (`GroupMetadataValue.members[].session_timeout`) and the new coordinator expires the
/// member one full session after the load. kafsim used to restore every member with 10 s,
/// which made rebalances after a failover 35 s faster than Kafka's.
#[test]
fn failover_keeps_each_members_session_timeout() {
    let mut rig = Rig::new();
    rig.session_ms = 45_000;
    let (a, _b, generation) = stable_group(&mut rig);
    rig.complete_appends();
    let config = rig.coord.config.clone();
    rig.coord = GroupCoordinator::new(config);
    rig.timers.clear();
    rig.advance(Instant::from_millis(20_000));
    rig.lead(Some(2));
    // a heartbeats to the new coordinator; b died with the old one and stays silent.
    for t in (23_000..65_000).step_by(3000) {
        rig.advance(Instant::from_millis(t));
        assert_eq!(
            rig.heartbeat(10, &a, generation),
            ErrorCode::None,
            "at {t} ms"
        );
    }
    rig.advance(Instant::from_millis(64_900));
    assert_eq!(rig.coord.group_state("g").unwrap().0, GroupState::Stable);
    rig.advance(Instant::from_millis(65_100));
    assert_eq!(
        rig.coord.group_state("g").unwrap().0,
        GroupState::PreparingRebalance,
        "b is expired 45 s after the load at 20 s"
    );
}

#[test]
fn find_coordinator_names_the_offsets_partition_leader() {
    let mut rig = Rig::new();
    let req = |key: &str| {
        Message::FindCoordinatorRequest(FindCoordinatorRequest {
            correlation_id: 1,
            key: key.into(),
            key_type: crate::protocol::CoordinatorType::Group,
        })
    };
    let sent = rig.send(10, req("g"));
    let [(_, Message::FindCoordinatorResponse(r))] = &sent[..] else {
        panic!("{sent:?}")
    };
    assert_eq!((r.error, r.coordinator), (ErrorCode::None, Some(NodeId(0))));
    let sent = rig.send(10, req("some-other-group"));
    let [(_, Message::FindCoordinatorResponse(r))] = &sent[..] else {
        panic!("{sent:?}")
    };
    assert_eq!(r.error, ErrorCode::CoordinatorNotAvailable);
}

#[test]
fn requests_for_a_group_this_broker_does_not_coordinate_get_not_coordinator() {
    let mut rig = Rig::new();
    rig.lead(None);
    let sent = rig.join(10, "");
    assert_eq!(join_resp(&sent, 10).error, ErrorCode::NotCoordinator);
}

#[test]
fn leave_triggers_a_rebalance_that_completes_without_the_leaver() {
    let mut rig = Rig::new();
    let (a, b, generation) = stable_group(&mut rig);
    rig.corr += 1;
    let leave = crate::protocol::LeaveGroupRequest {
        correlation_id: rig.corr,
        group: "g".into(),
        member_id: b.clone(),
        group_instance_id: None,
    };
    rig.send(11, Message::LeaveGroupRequest(leave));
    assert_eq!(
        rig.heartbeat(10, &a, generation),
        ErrorCode::RebalanceInProgress
    );
    let sent = rig.join(10, &a);
    let resp = join_resp(&sent, 10);
    assert_eq!((resp.generation, resp.leader.as_str()), (2, a.as_str()));
}

/// Kafka `GroupMetadata.add`: the first member added leads, whatever its id. Node 12 rejoins
/// with its id first; node 10's id sorts first ("consumer-n10-..." < "consumer-n12-...") and
/// led under the old smallest-id rule, which made a dead member's id lead a generation and
/// hold every SyncGroup for a session.
#[test]
fn the_first_member_to_join_leads_and_a_leaver_hands_the_lead_on() {
    let mut rig = Rig::new();
    let c = rig.handshake(12);
    let a = rig.handshake(10);
    let b = rig.handshake(11);
    assert!(a < c, "the test needs the later member's id to sort first");
    let sent = rig.advance(Instant::from_millis(10_000));
    let resp = join_resp(&sent, 10);
    assert_eq!((resp.generation, resp.leader.as_str()), (1, c.as_str()));
    assert_eq!(
        join_resp(&sent, 12).members.len(),
        3,
        "the leader gets every member"
    );
    // The leader leaves: the lead passes to the earliest remaining member, node 10.
    rig.corr += 1;
    let leave = crate::protocol::LeaveGroupRequest {
        correlation_id: rig.corr,
        group: "g".into(),
        member_id: c.clone(),
        group_instance_id: None,
    };
    rig.send(12, Message::LeaveGroupRequest(leave));
    assert_eq!(
        rig.coord.group_state("g").unwrap().0,
        GroupState::PreparingRebalance
    );
    let mut sent = rig.join(11, &b);
    sent.extend(rig.join(10, &a));
    let ra = join_resp(&sent, 10);
    assert_eq!((ra.generation, ra.leader.as_str()), (2, a.as_str()));
    assert_eq!(join_resp(&sent, 11).leader, a);
}

/// Kafka `maybeElectNewJoinedLeader`: a leader that does not rejoin by the join deadline is
/// dropped and a member that rejoined leads the next generation.
#[test]
fn a_leader_that_does_not_rejoin_loses_the_lead_to_one_that_did() {
    let mut rig = Rig::new();
    let ((leader_node, leader), (node, member)) = completing_group(&mut rig);
    // The follower's metadata changes (it rejoins): a new rebalance; the leader is silent.
    rig.corr += 1;
    let sub = Subscription {
        topics: vec![DATA, OFFSETS],
        owned_partitions: Vec::new(),
        generation: 1,
    };
    let req = JoinGroupRequest {
        correlation_id: rig.corr,
        group: "g".into(),
        member_id: member.clone(),
        group_instance_id: None,
        supports_skip_assignment: false,
        session_timeout_ms: rig.session_ms,
        rebalance_timeout_ms: 30_000,
        protocols: vec![("range".into(), sub)],
    };
    assert!(rig
        .send(node, Message::JoinGroupRequest(req))
        .iter()
        .all(|(to, _)| *to != NodeId(node)));
    assert_eq!(
        rig.coord.group_state("g").unwrap().0,
        GroupState::PreparingRebalance
    );
    let sent = rig.advance(Instant::from_millis(45_000));
    let resp = join_resp(&sent, node);
    assert_eq!(resp.error, ErrorCode::None);
    assert_eq!(
        (resp.generation, resp.leader.as_str()),
        (2, member.as_str())
    );
    assert_ne!(leader_node, node);
    assert_eq!(
        rig.heartbeat(leader_node, &leader, 2),
        ErrorCode::UnknownMemberId
    );
}

/// Two members joined generation 1; neither has synced yet. Returns (leader, follower) as
/// (node, member id).
fn completing_group(rig: &mut Rig) -> ((u32, String), (u32, String)) {
    let a = rig.handshake(10);
    let b = rig.handshake(11);
    let sent = rig.advance(Instant::from_millis(10_000));
    let ra = join_resp(&sent, 10);
    assert_eq!(
        rig.coord.group_state("g").unwrap().0,
        GroupState::CompletingRebalance
    );
    if ra.leader == a {
        ((10, a), (11, b))
    } else {
        ((11, b), (10, a))
    }
}

#[test]
fn a_leader_rejoining_unchanged_while_completing_gets_the_generation_back() {
    let mut rig = Rig::new();
    let ((leader, lid), (follower, fid)) = completing_group(&mut rig);
    // The follower's SyncGroup waits for the leader's assignment.
    let sync = Message::SyncGroupRequest(SyncGroupRequest {
        correlation_id: 500,
        group: "g".into(),
        member_id: fid.clone(),
        group_instance_id: None,
        generation: 1,
        assignments: Vec::new(),
    });
    assert!(rig.send(follower, sync).is_empty());
    // The leader lost its JoinGroup response and joins again with the same metadata.
    let sent = rig.join(leader, &lid);
    let resp = join_resp(&sent, leader);
    assert_eq!(resp.error, ErrorCode::None);
    assert_eq!(resp.generation, 1, "same generation: no new rebalance");
    assert_eq!(
        resp.members.len(),
        2,
        "the leader gets the members to assign"
    );
    assert!(
        !sent.iter().any(|(n, _)| *n == NodeId(follower)),
        "the follower's pending sync is not failed: {sent:?}"
    );
    assert_eq!(
        rig.coord.group_state("g"),
        Some((GroupState::CompletingRebalance, 1, 2))
    );
}

#[test]
fn a_member_rejoining_with_changed_metadata_while_completing_rebalances() {
    let mut rig = Rig::new();
    let ((_, _), (follower, fid)) = completing_group(&mut rig);
    rig.corr += 1;
    let sub = Subscription {
        topics: vec![DATA, TopicId(2)],
        owned_partitions: Vec::new(),
        generation: -1,
    };
    let req = JoinGroupRequest {
        correlation_id: rig.corr,
        group: "g".into(),
        member_id: fid,
        group_instance_id: None,
        supports_skip_assignment: false,
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 30_000,
        protocols: vec![("range".into(), sub)],
    };
    let sent = rig.send(follower, Message::JoinGroupRequest(req));
    assert!(sent.is_empty(), "waits for the new join phase: {sent:?}");
    assert_eq!(
        rig.coord.group_state("g").unwrap().0,
        GroupState::PreparingRebalance
    );
}

/// A member id is never handed out while a member holds it (Kafka draws `clientId-UUID`). A
/// group loaded on a new coordinator numbers its loaded members afresh, so the next id it
/// would number for a client can be one a loaded member already has: here b's. (A static
/// group under consumer and broker crashes reached it, and the coordinator panicked.)
#[test]
fn a_loaded_group_never_hands_out_a_member_id_in_use() {
    let mut rig = Rig::new();
    // A handshake that never completes takes numbers too.
    join_resp(&rig.join(12, ""), 12);
    let (a, b, generation) = stable_group(&mut rig);
    let config = rig.coord.config.clone();
    rig.coord = GroupCoordinator::new(config);
    rig.lead(Some(2));
    // New clients on b's host ask for ids: the numbering reaches b's.
    for _ in 0..4 {
        let resp = join_resp(&rig.join(11, ""), 11).clone();
        assert_eq!(resp.error, ErrorCode::MemberIdRequired);
        assert!(
            resp.member_id != a && resp.member_id != b,
            "{} is already a member's",
            resp.member_id
        );
    }
    assert_eq!(
        rig.heartbeat(11, &b, generation),
        ErrorCode::None,
        "b is still b"
    );
}

/// A member waiting in its SyncGroup cannot heartbeat and is not expired (Kafka
/// `MemberMetadata.hasSatisfiedHeartbeat`: `isAwaitingJoin || isAwaitingSync`). The leader
/// that died after the join and never sends its assignment is: its session ends, the group
/// rebalances, the waiting member's SyncGroup gets REBALANCE_IN_PROGRESS and it joins again
/// under its own member id.
#[test]
fn a_member_waiting_in_sync_group_outlives_the_dead_leader() {
    let mut rig = Rig::new();
    let a = rig.handshake(10);
    let b = rig.handshake(11);
    let sent = rig.advance(Instant::from_millis(10_000));
    let ra = join_resp(&sent, 10);
    let (leader, lid) = if ra.leader == a { (10, &a) } else { (11, &b) };
    let (follower, fid) = if ra.leader == a { (11, &b) } else { (10, &a) };
    // The leader heartbeats once more (its session now ends at 18 s, after the follower's
    // would at 16 s) and dies before its SyncGroup.
    rig.host.now = Instant::from_millis(8_000);
    assert_eq!(rig.heartbeat(leader, lid, ra.generation), ErrorCode::None);
    let sync = Message::SyncGroupRequest(SyncGroupRequest {
        correlation_id: 100,
        group: "g".into(),
        member_id: fid.clone(),
        group_instance_id: None,
        generation: ra.generation,
        assignments: Vec::new(),
    });
    assert!(
        rig.send(follower, sync).is_empty(),
        "the follower waits for the leader"
    );
    // At 18 s the leader is expired; the follower, parked in its SyncGroup since 10 s
    // without a heartbeat, is not (its own session would have ended at 16 s).
    let sent = rig.advance(Instant::from_millis(19_000));
    let answer = sent.iter().find_map(|(to, m)| match m {
        Message::SyncGroupResponse(r) if *to == NodeId(follower) => Some(r.error),
        _ => None,
    });
    assert_eq!(answer, Some(ErrorCode::RebalanceInProgress), "{sent:?}");
    let (_, _, members) = rig.coord.group_state("g").unwrap();
    assert_eq!(members, 1, "only the dead leader left the group");
    let sent = rig.join(follower, fid);
    let rejoin = join_resp(&sent, follower);
    assert_eq!(
        rejoin.error,
        ErrorCode::None,
        "it joins again under its own id"
    );
    assert_eq!(rejoin.member_id, *fid);
}
