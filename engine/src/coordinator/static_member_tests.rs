//! Unit tests of static membership (KIP-345) at the group coordinator: a restarted static
//! member gets its old assignment back without a rebalance, its old member id is fenced, a
//! silent static member is removed only by its session, and the dynamic cases that differ.

use super::tests::{join_resp, stable_group, Rig, DATA};
use super::*;
use crate::protocol::{
    JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, OffsetCommitRequest, Subscription,
    SyncGroupRequest,
};
use crate::time::Instant;

const TP0: TopicPartition = TopicPartition::new(DATA, 0);
const TP1: TopicPartition = TopicPartition::new(DATA, 1);

fn subscription() -> Subscription {
    Subscription {
        topics: vec![DATA],
        owned_partitions: Vec::new(),
        generation: -1,
    }
}

impl Rig {
    fn next_corr(&mut self) -> u64 {
        self.corr += 1;
        self.corr
    }

    /// A JoinGroup of the member on node `from` with `instance` as its group.instance.id.
    fn join_static(
        &mut self,
        from: u32,
        member_id: &str,
        instance: &str,
        v9: bool,
    ) -> Vec<(NodeId, Message)> {
        let req = JoinGroupRequest {
            correlation_id: self.next_corr(),
            group: "g".into(),
            member_id: member_id.into(),
            group_instance_id: Some(instance.into()),
            supports_skip_assignment: v9,
            session_timeout_ms: self.session_ms,
            rebalance_timeout_ms: 30_000,
            protocols: vec![("range".into(), subscription())],
        };
        self.send(from, Message::JoinGroupRequest(req))
    }

    fn sync_as(
        &mut self,
        from: u32,
        member_id: &str,
        instance: Option<&str>,
        generation: i32,
        assignments: Vec<(String, crate::protocol::Assignment)>,
    ) -> Vec<(NodeId, Message)> {
        let req = SyncGroupRequest {
            correlation_id: self.next_corr(),
            group: "g".into(),
            member_id: member_id.into(),
            group_instance_id: instance.map(str::to_string),
            generation,
            assignments,
        };
        self.send(from, Message::SyncGroupRequest(req))
    }

    fn commit_as(
        &mut self,
        from: u32,
        member_id: &str,
        instance: &str,
        generation: i32,
    ) -> ErrorCode {
        let req = OffsetCommitRequest {
            correlation_id: self.next_corr(),
            group: "g".into(),
            member_id: member_id.into(),
            group_instance_id: Some(instance.into()),
            generation,
            offsets: vec![(TP0, 7, Some(1))],
        };
        let sent = self.send(from, Message::OffsetCommitRequest(req));
        let sent = if sent.is_empty() {
            self.complete_appends()
        } else {
            sent
        };
        match &sent[..] {
            [(_, Message::OffsetCommitResponse(r))] => r.results[0].1,
            other => panic!("expected a commit response, got {other:?}"),
        }
    }

    fn leave_as(&mut self, from: u32, member_id: &str, instance: &str) -> ErrorCode {
        let req = LeaveGroupRequest {
            correlation_id: self.next_corr(),
            group: "g".into(),
            member_id: member_id.into(),
            group_instance_id: Some(instance.into()),
        };
        match &self.send(from, Message::LeaveGroupRequest(req))[..] {
            [(_, Message::LeaveGroupResponse(r))] => r.error,
            other => panic!("expected a leave response, got {other:?}"),
        }
    }

    fn state(&self) -> (GroupState, i32, usize) {
        self.coord.group_state("g").expect("group g")
    }
}

fn sync_resp(sent: &[(NodeId, Message)], to: u32) -> (ErrorCode, Vec<TopicPartition>) {
    sent.iter()
        .find_map(|(n, m)| match m {
            Message::SyncGroupResponse(r) if *n == NodeId(to) => {
                Some((r.error, r.assignment.to_vec()))
            }
            _ => None,
        })
        .unwrap_or_else(|| panic!("no sync response to n{to} in {sent:?}"))
}

/// A Stable group of two static members, `pod-0` on node 10 and `pod-1` on node 11, each
/// owning one partition. Returns the member ids (pod-0, pod-1) and the leader's node.
fn static_group(rig: &mut Rig) -> (String, String, u32) {
    // No KIP-394 handshake for a static member: it is a member at once, parked until the
    // initial rebalance delay ends.
    for (node, instance) in [(10, "pod-0"), (11, "pod-1")] {
        let sent = rig.join_static(node, "", instance, false);
        assert!(sent.is_empty(), "{instance} joins at once: {sent:?}");
    }
    let sent = rig.advance(Instant::from_millis(10_000));
    let (r0, r1) = (join_resp(&sent, 10), join_resp(&sent, 11));
    assert_eq!((r0.error, r0.generation), (ErrorCode::None, 1));
    assert!(r0.member_id.starts_with("pod-0-") && r1.member_id.starts_with("pod-1-"));
    let leader = if r0.leader == r0.member_id { 10 } else { 11 };
    let (lr, fr) = if leader == 10 { (&r0, &r1) } else { (&r1, &r0) };
    let (li, fi) = if leader == 10 {
        ("pod-0", "pod-1")
    } else {
        ("pod-1", "pod-0")
    };
    assert!(rig
        .sync_as(21 - leader, &fr.member_id, Some(fi), 1, Vec::new())
        .is_empty());
    let assignments = vec![
        (r0.member_id.clone(), Arc::new(vec![TP0])),
        (r1.member_id.clone(), Arc::new(vec![TP1])),
    ];
    assert!(rig
        .sync_as(leader, &lr.member_id, Some(li), 1, assignments)
        .is_empty());
    let sent = rig.complete_appends();
    assert_eq!(sync_resp(&sent, 10), (ErrorCode::None, vec![TP0]));
    assert_eq!(sync_resp(&sent, 11), (ErrorCode::None, vec![TP1]));
    assert_eq!(rig.state(), (GroupState::Stable, 1, 2));
    (r0.member_id, r1.member_id, leader)
}

/// The JoinGroup answer of a static member's rejoin, once its GroupMetadata append is done.
fn persisted_rejoin(rig: &mut Rig, node: u32, instance: &str, v9: bool) -> JoinGroupResponse {
    let sent = rig.join_static(node, "", instance, v9);
    assert!(sent.is_empty(), "the answer waits for the append: {sent:?}");
    assert_eq!(rig.state(), (GroupState::Stable, 1, 2), "no rebalance");
    join_resp(&rig.complete_appends(), node)
}

#[test]
fn a_restarted_static_member_gets_its_old_assignment_without_a_rebalance() {
    let mut rig = Rig::new();
    let (p0, p1, leader) = static_group(&mut rig);
    let (node, old, instance) = if leader == 10 {
        (11, &p1, "pod-1")
    } else {
        (10, &p0, "pod-0")
    };
    let resp = persisted_rejoin(&mut rig, node, instance, false);
    assert_eq!((resp.error, resp.generation), (ErrorCode::None, 1));
    assert!(resp.member_id != *old && resp.member_id.starts_with(instance));
    assert!(resp.members.is_empty() && resp.leader != resp.member_id);
    let sent = rig.sync_as(node, &resp.member_id, Some(instance), 1, Vec::new());
    let owned = if instance == "pod-0" { TP0 } else { TP1 };
    assert_eq!(sync_resp(&sent, node), (ErrorCode::None, vec![owned]));
    assert_eq!(
        rig.state(),
        (GroupState::Stable, 1, 2),
        "generation unchanged"
    );
    // The other member keeps heartbeating in the same generation.
    let (other_node, other, other_instance) = if node == 10 {
        (11, &p1, "pod-1")
    } else {
        (10, &p0, "pod-0")
    };
    let e = rig.heartbeat_as(other_node, other, Some(other_instance), 1);
    assert_eq!(e, ErrorCode::None);
    // The record keeps the new member id under its instance id, so a failover keeps it.
    let batches = rig.log.committed.values().flatten();
    let last = batches
        .flat_map(|b| b.records.iter())
        .last()
        .expect("a record");
    let Some(crate::record::InternalPayload::GroupMetadata {
        members,
        instance_ids,
        ..
    }) = last.payload.as_deref()
    else {
        panic!("{last:?}")
    };
    let i = members.iter().position(|m| **m == *resp.member_id).unwrap();
    assert_eq!(instance_ids[i].as_deref(), Some(instance));
}

/// The same restart in a dynamic group: the new process has no member id, gets one with
/// MEMBER_ID_REQUIRED, and its join rebalances the group, which waits for the old member id
/// until its session expires (it never rejoins).
#[test]
fn a_restarted_dynamic_member_rebalances_and_waits_out_its_old_session() {
    let mut rig = Rig::new();
    let (a, _b, generation) = stable_group(&mut rig);
    let sent = rig.join(11, "");
    let fresh = join_resp(&sent, 11);
    assert_eq!(fresh.error, ErrorCode::MemberIdRequired);
    assert!(rig.join(11, &fresh.member_id).is_empty());
    assert_eq!(rig.state().0, GroupState::PreparingRebalance);
    assert_eq!(
        rig.heartbeat(10, &a, generation),
        ErrorCode::RebalanceInProgress
    );
    assert!(rig.join(10, &a).is_empty(), "a waits for the old member id");
    // The SyncGroups were answered at 10 s, so the old id's 10 s session ends at 20 s.
    let sent = rig.advance(Instant::from_millis(19_900));
    assert!(sent.is_empty(), "still waiting at 19.9 s: {sent:?}");
    let sent = rig.advance(Instant::from_millis(20_100));
    let resp = join_resp(&sent, 11);
    assert_eq!((resp.error, resp.generation), (ErrorCode::None, 2));
    assert_eq!(rig.state(), (GroupState::CompletingRebalance, 2, 2));
}

#[test]
fn the_old_member_id_of_a_replaced_static_member_is_fenced() {
    let mut rig = Rig::new();
    let (p0, _p1, _) = static_group(&mut rig);
    let new = persisted_rejoin(&mut rig, 10, "pod-0", false).member_id;
    assert_eq!(
        rig.heartbeat_as(10, &p0, Some("pod-0"), 1),
        ErrorCode::FencedInstanceId
    );
    let sent = rig.sync_as(10, &p0, Some("pod-0"), 1, Vec::new());
    assert_eq!(sync_resp(&sent, 10).0, ErrorCode::FencedInstanceId);
    assert_eq!(
        rig.commit_as(10, &p0, "pod-0", 1),
        ErrorCode::FencedInstanceId
    );
    assert_eq!(rig.leave_as(10, &p0, "pod-0"), ErrorCode::FencedInstanceId);
    let sent = rig.join_static(10, &p0, "pod-0", false);
    assert_eq!(join_resp(&sent, 10).error, ErrorCode::FencedInstanceId);
    // None of it touched the group; the new member id is the instance's.
    assert_eq!(rig.state(), (GroupState::Stable, 1, 2));
    assert_eq!(
        rig.heartbeat_as(10, &new, Some("pod-0"), 1),
        ErrorCode::None
    );
    assert_eq!(rig.commit_as(10, &new, "pod-0", 1), ErrorCode::None);
    // An instance id the group does not know is an unknown member, not a fenced one.
    assert_eq!(
        rig.heartbeat_as(12, &new, Some("pod-9"), 1),
        ErrorCode::UnknownMemberId
    );
}

/// KIP-814: a Java 3.2+ client (JoinGroup v9) that was the leader learns it leads and to
/// skip the assignment; an older client is told the old leader id, so it does not assign.
#[test]
fn a_returning_static_leader_is_told_to_skip_the_assignment() {
    for v9 in [true, false] {
        let mut rig = Rig::new();
        let (p0, p1, leader) = static_group(&mut rig);
        let (instance, old) = if leader == 10 {
            ("pod-0", &p0)
        } else {
            ("pod-1", &p1)
        };
        let resp = persisted_rejoin(&mut rig, leader, instance, v9);
        if v9 {
            assert_eq!(resp.leader, resp.member_id, "it leads");
            assert!(resp.skip_assignment && resp.members.len() == 2);
        } else {
            assert_eq!(&resp.leader, old, "the old leader id");
            assert!(!resp.skip_assignment && resp.members.is_empty());
        }
        let sent = rig.sync_as(leader, &resp.member_id, Some(instance), 1, Vec::new());
        assert_eq!(sync_resp(&sent, leader).0, ErrorCode::None);
        assert_eq!(sync_resp(&sent, leader).1.len(), 1, "its old partition");
    }
}

/// A static member that stays down past `session.timeout.ms` is removed like any member,
/// and the group rebalances without it; its instance id is free again.
#[test]
fn a_static_member_down_past_its_session_is_removed() {
    let mut rig = Rig::new();
    let (p0, p1, _) = static_group(&mut rig);
    for t in (13_000..20_000).step_by(3000) {
        rig.advance(Instant::from_millis(t));
        assert_eq!(rig.heartbeat_as(10, &p0, Some("pod-0"), 1), ErrorCode::None);
    }
    rig.advance(Instant::from_millis(19_900));
    assert_eq!(rig.state().0, GroupState::Stable);
    rig.advance(Instant::from_millis(20_100));
    assert_eq!(rig.state(), (GroupState::PreparingRebalance, 1, 1));
    assert_eq!(
        rig.heartbeat_as(11, &p1, Some("pod-1"), 1),
        ErrorCode::UnknownMemberId
    );
    let sent = rig.join_static(10, &p0, "pod-0", false);
    assert_eq!(join_resp(&sent, 10).generation, 2);
    // Back later, pod-1 is a new member: its join rebalances the group.
    assert!(rig.join_static(11, "", "pod-1", false).is_empty());
    assert_eq!(rig.state().0, GroupState::PreparingRebalance);
}

/// Only dynamic members that miss a rebalance are dropped at the join deadline; a static
/// one stays a member (with partitions) until its session expires.
#[test]
fn a_static_member_that_misses_a_rebalance_stays_until_its_session_expires() {
    let mut rig = Rig::new();
    rig.session_ms = 60_000;
    let (p0, p1, _) = static_group(&mut rig);
    // A third, dynamic, member joins at 10 s: pod-0 rejoins, pod-1 is down.
    let fresh = join_resp(&rig.join(12, ""), 12).member_id;
    assert!(rig.join(12, &fresh).is_empty());
    assert!(rig.join_static(10, &p0, "pod-0", false).is_empty());
    // The join deadline (30 s rebalance timeout, at 40 s) completes generation 2 with pod-1
    // still in it.
    let sent = rig.advance(Instant::from_millis(40_100));
    let resp = join_resp(&sent, 10);
    assert_eq!(resp.generation, 2);
    assert_eq!(rig.state(), (GroupState::CompletingRebalance, 2, 3));
    let leader_members = [join_resp(&sent, 10), join_resp(&sent, 12)]
        .into_iter()
        .map(|r| r.members.len())
        .max();
    assert_eq!(leader_members, Some(3), "the leader assigns to pod-1 too");
    assert_ne!(resp.leader, p1, "the leader is a member that rejoined");
    // Its session (60 s, restarted when the join completed at 40 s) then removes it; the
    // two others heartbeat meanwhile.
    for t in (50_000..100_000).step_by(10_000) {
        rig.advance(Instant::from_millis(t));
        assert_eq!(rig.heartbeat_as(10, &p0, Some("pod-0"), 2), ErrorCode::None);
        assert_eq!(rig.heartbeat(12, &fresh, 2), ErrorCode::None);
    }
    rig.advance(Instant::from_millis(99_900));
    assert_eq!(rig.state().2, 3);
    rig.advance(Instant::from_millis(100_100));
    assert_eq!(rig.state(), (GroupState::PreparingRebalance, 2, 2));
}

/// A static member rejoining while the leader assigns makes the group rebalance (the
/// assignment may name its old member id); the old id's parked SyncGroup is fenced.
#[test]
fn a_static_rejoin_while_completing_rebalances_and_fences_the_old_sync() {
    let mut rig = Rig::new();
    for (node, instance) in [(10, "pod-0"), (11, "pod-1")] {
        assert!(rig.join_static(node, "", instance, false).is_empty());
    }
    let sent = rig.advance(Instant::from_millis(10_000));
    let (r0, r1) = (join_resp(&sent, 10), join_resp(&sent, 11));
    let (follower, fr, fi) = if r0.leader == r0.member_id {
        (11, r1, "pod-1")
    } else {
        (10, r0, "pod-0")
    };
    assert!(rig
        .sync_as(follower, &fr.member_id, Some(fi), 1, Vec::new())
        .is_empty());
    let sent = rig.join_static(follower + 10, "", fi, false);
    assert_eq!(sync_resp(&sent, follower).0, ErrorCode::FencedInstanceId);
    assert_eq!(rig.state().0, GroupState::PreparingRebalance);
    assert_eq!(rig.state().2, 2, "replaced, not added");
}

/// The GroupMetadata record keeps instance ids: after a coordinator failover a restarted
/// static member still replaces its old id without a rebalance.
#[test]
fn failover_keeps_the_static_members() {
    let mut rig = Rig::new();
    let (p0, _, _) = static_group(&mut rig);
    let config = rig.coord.config.clone();
    rig.coord = GroupCoordinator::new(config);
    rig.lead(Some(2));
    assert_eq!(rig.state(), (GroupState::Stable, 1, 2));
    let resp = persisted_rejoin(&mut rig, 10, "pod-0", false);
    assert_eq!((resp.error, resp.generation), (ErrorCode::None, 1));
    assert_eq!(
        rig.heartbeat_as(10, &p0, Some("pod-0"), 1),
        ErrorCode::FencedInstanceId
    );
}

/// A failed append of the replacement undoes it (`storeGroup`'s callback): the rejoiner gets
/// the coordinator error and the old member id is the instance's again.
#[test]
fn a_failed_append_undoes_the_replacement() {
    let mut rig = Rig::new();
    let (p0, _, _) = static_group(&mut rig);
    rig.log.fail_appends = Some(ErrorCode::NotLeaderOrFollower);
    let sent = rig.join_static(10, "", "pod-0", false);
    assert_eq!(join_resp(&sent, 10).error, ErrorCode::NotCoordinator);
    rig.log.fail_appends = None;
    assert_eq!(rig.heartbeat_as(10, &p0, Some("pod-0"), 1), ErrorCode::None);
    assert_eq!(rig.state(), (GroupState::Stable, 1, 2));
}

/// A static member that joins again while the GroupMetadata append of its previous rejoin is
/// still pending (a restarted process whose first JoinGroup timed out, or that crashed and
/// restarted once more): the second replacement fences the first JoinGroup at once
/// (`ClassicGroup.replaceStaticMember` completes the replaced member's join future with
/// FENCED_INSTANCE_ID), the first append's completion answers nothing, and the second
/// rejoin gets the old assignment back in the same generation.
#[test]
fn a_second_static_rejoin_before_the_first_append_fences_the_first() {
    let mut rig = Rig::new();
    let (_, p1, _) = static_group(&mut rig);
    let first = rig.join_static(11, "", "pod-1", false);
    assert!(
        first.is_empty(),
        "the answer waits for the append: {first:?}"
    );
    let second = rig.join_static(11, "", "pod-1", false);
    let fenced = join_resp(&second, 11);
    assert_eq!(fenced.error, ErrorCode::FencedInstanceId);
    assert_eq!(rig.state(), (GroupState::Stable, 1, 2), "no rebalance");
    let answers: Vec<JoinGroupResponse> = rig
        .complete_appends()
        .into_iter()
        .filter_map(|(n, m)| match m {
            Message::JoinGroupResponse(r) if n == NodeId(11) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(
        answers.len(),
        1,
        "one answer, to the second join: {answers:?}"
    );
    let resp = &answers[0];
    assert_eq!((resp.error, resp.generation), (ErrorCode::None, 1));
    assert!(resp.member_id != p1 && resp.member_id != fenced.member_id);
    let sent = rig.sync_as(11, &resp.member_id, Some("pod-1"), 1, Vec::new());
    assert_eq!(sync_resp(&sent, 11), (ErrorCode::None, vec![TP1]));
    assert_eq!(rig.state(), (GroupState::Stable, 1, 2));
}
