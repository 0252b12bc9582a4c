//! The group coordinator's transactional offsets (TxnOffsetCommit, KIP-447): pending until
//! the transaction's marker reaches the offsets partition, visible at a commit marker,
//! discarded at an abort, refused from a stale member, `UNSTABLE_OFFSET_COMMIT` for a stable
//! fetch meanwhile, and rebuilt from the log after a failover.

use super::tests::{stable_group, Rig, DATA};
use super::*;
use crate::protocol::{OffsetFetchRequest, TxnOffsetCommitRequest};
use crate::record::ControlMarker;

const TP: TopicPartition = TopicPartition::new(DATA, 0);
const PRODUCER: u32 = 30;

fn txn_commit(
    rig: &mut Rig,
    member: &str,
    generation: i32,
    pid: i64,
    offset: u64,
) -> Vec<ErrorCode> {
    let req = TxnOffsetCommitRequest {
        correlation_id: 900,
        transactional_id: "g-0".into(),
        group: "g".into(),
        producer_id: pid,
        producer_epoch: 0,
        member_id: member.into(),
        generation,
        offsets: vec![(TP, offset, Some(1))],
    };
    let mut sent = rig.send(PRODUCER, Message::TxnOffsetCommitRequest(req));
    sent.extend(rig.complete_appends());
    sent.iter()
        .flat_map(|(to, m)| match m {
            Message::TxnOffsetCommitResponse(r) => {
                assert_eq!(*to, NodeId(PRODUCER));
                r.results.iter().map(|(_, e)| *e).collect()
            }
            _ => Vec::new(),
        })
        .collect()
}

fn fetch(rig: &mut Rig, stable: bool) -> Result<Option<u64>, ErrorCode> {
    let req = OffsetFetchRequest {
        correlation_id: 901,
        group: "g".into(),
        partitions: vec![TP],
        require_stable: stable,
    };
    match &rig.send(12, Message::OffsetFetchRequest(req))[..] {
        [(_, Message::OffsetFetchResponse(r))] if r.error == ErrorCode::None => Ok(r.offsets[0].1),
        [(_, Message::OffsetFetchResponse(r))] => Err(r.error),
        other => panic!("expected an offset fetch response, got {other:?}"),
    }
}

fn marker(rig: &mut Rig, pid: i64, m: ControlMarker) {
    let tp = rig.coord.partition_for("g");
    let coord = &mut rig.coord;
    rig.host.call(|cx| coord.on_txn_marker(cx, pid, tp, m));
}

#[test]
fn transactional_offsets_become_the_committed_ones_only_at_the_commit_marker() {
    let mut rig = Rig::new();
    let (a, _, generation) = stable_group(&mut rig);
    assert_eq!(
        txn_commit(&mut rig, &a, generation, 7, 42),
        vec![ErrorCode::None]
    );
    assert_eq!(
        fetch(&mut rig, false),
        Ok(None),
        "not committed before the marker"
    );
    assert_eq!(
        fetch(&mut rig, true),
        Err(ErrorCode::UnstableOffsetCommit),
        "KIP-447: a stable fetch waits for the transaction"
    );
    marker(&mut rig, 8, ControlMarker::Commit);
    assert_eq!(
        fetch(&mut rig, true),
        Err(ErrorCode::UnstableOffsetCommit),
        "another producer's marker"
    );
    marker(&mut rig, 7, ControlMarker::Commit);
    assert_eq!(fetch(&mut rig, true), Ok(Some(42)));
    assert_eq!(rig.coord.committed("g", TP), Some(42));
}

#[test]
fn an_abort_marker_discards_the_transactional_offsets() {
    let mut rig = Rig::new();
    let (a, _, generation) = stable_group(&mut rig);
    assert_eq!(
        txn_commit(&mut rig, &a, generation, 7, 10),
        vec![ErrorCode::None]
    );
    marker(&mut rig, 7, ControlMarker::Commit);
    assert_eq!(
        txn_commit(&mut rig, &a, generation, 7, 20),
        vec![ErrorCode::None]
    );
    marker(&mut rig, 7, ControlMarker::Abort);
    assert_eq!(
        fetch(&mut rig, true),
        Ok(Some(10)),
        "the aborted 20 is gone"
    );
}

#[test]
fn a_stale_member_is_refused_kip_447() {
    let mut rig = Rig::new();
    let (a, _, generation) = stable_group(&mut rig);
    assert_eq!(
        txn_commit(&mut rig, &a, generation - 1, 7, 5),
        vec![ErrorCode::IllegalGeneration],
        "a zombie of an older generation"
    );
    assert_eq!(
        txn_commit(&mut rig, "gone", generation, 7, 5),
        vec![ErrorCode::UnknownMemberId]
    );
    assert!(
        rig.log.appended.is_empty(),
        "nothing appended for a refused commit"
    );
    assert_eq!(fetch(&mut rig, true), Ok(None), "and nothing pending");
    // A commit naming no member (a producer outside any group) is accepted.
    assert_eq!(txn_commit(&mut rig, "", -1, 9, 3), vec![ErrorCode::None]);
}

#[test]
fn a_new_coordinator_loads_committed_and_pending_transactional_offsets() {
    let mut rig = Rig::new();
    let (a, _, generation) = stable_group(&mut rig);
    assert_eq!(
        txn_commit(&mut rig, &a, generation, 7, 10),
        vec![ErrorCode::None]
    );
    assert_eq!(
        txn_commit(&mut rig, &a, generation, 8, 20),
        vec![ErrorCode::None]
    );
    // Producer 7's commit marker is in the log; producer 8's transaction is still open.
    let tp = rig.coord.partition_for("g");
    let batches = rig.log.committed.entry(tp).or_default();
    let mut m = RecordBatch::control_marker(7, 0, ControlMarker::Commit);
    m.base_offset = batches.last().map_or(0, |b| b.next_offset());
    batches.push(m);
    rig.lead(None);
    rig.lead(Some(2));
    assert_eq!(
        rig.coord.committed("g", TP),
        Some(10),
        "producer 7 committed"
    );
    assert_eq!(
        fetch(&mut rig, true),
        Err(ErrorCode::UnstableOffsetCommit),
        "producer 8's offset is pending"
    );
    marker(&mut rig, 8, ControlMarker::Commit);
    assert_eq!(fetch(&mut rig, true), Ok(Some(20)));
}
