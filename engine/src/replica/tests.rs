//! Unit tests of the replica manager: produce, fetch, ISR and offset paths on one broker.

use super::*;
use crate::broker::config::KafkaVersion;
use crate::coordinator::OffsetsLog;
use crate::log::tests::{batch, with_cx, with_cx_at, MemDisk, TP};
use crate::node::Effect;
use crate::record::RecordBatch;
use crate::time::{ms, Duration, Instant};

/// The controller's state of `partition` on replicas 0 and 1.
fn state(
    partition: TopicPartition,
    leader: u32,
    leader_epoch: u32,
    isr: Vec<NodeId>,
    partition_epoch: u32,
) -> PartitionState {
    PartitionState {
        partition,
        leader: Some(NodeId(leader)),
        leader_epoch,
        isr,
        partition_epoch,
        replicas: vec![NodeId(0), NodeId(1)],
    }
}

fn leader_of_tp(isr: Vec<NodeId>) -> (ReplicaManager, MemDisk) {
    leader_of_tp_with(isr, BrokerConfig::default())
}

fn leader_of_tp_with(isr: Vec<NodeId>, config: BrokerConfig) -> (ReplicaManager, MemDisk) {
    let mut rm = ReplicaManager::new(config);
    let mut disk = MemDisk::default();
    let state = state(TP, 0, 1, isr, 1);
    with_cx(&mut disk, |cx| rm.apply_partition_states(cx, vec![state]));
    assert_eq!(rm.leadership_changes, vec![(TP, Some(1))]);
    (rm, disk)
}

fn follower_fetch(partitions: &[TopicPartition], offset: u64, max_wait: Duration) -> FetchRequest {
    FetchRequest {
        correlation_id: 7,
        replica_id: Some(NodeId(1)),
        replica_epoch: 0,
        max_wait,
        min_bytes: 1,
        max_bytes: u32::MAX,
        isolation_level: IsolationLevel::ReadUncommitted,
        session_id: INVALID_SESSION_ID,
        session_epoch: FINAL_EPOCH,
        forgotten: Vec::new(),
        partitions: partitions
            .iter()
            .map(|&partition| FetchPartition {
                partition,
                fetch_offset: offset,
                current_leader_epoch: Some(1),
                last_fetched_epoch: None,
                log_start_offset: 0,
                partition_max_bytes: 1 << 20,
            })
            .collect(),
    }
}

fn produce_one(rm: &mut ReplicaManager, disk: &mut MemDisk, value: u64) {
    let req = ProduceRequest {
        correlation_id: value,
        acks: Acks::Leader,
        timeout: ms(1000),
        transactional_id: None,
        batches: vec![(TP, batch(&[value]))],
    };
    with_cx(disk, |cx| rm.handle_produce(cx, NodeId(5), req));
}

/// Produces `values` as the first batch (sequence 0) of producer 4's transaction at epoch 0
/// (transactional id "t"), acks=all.
fn produce_transactional(rm: &mut ReplicaManager, disk: &mut MemDisk, values: &[u64]) {
    let mut t = batch(values);
    t.producer_id = 4;
    t.producer_epoch = 0;
    t.base_sequence = 0;
    t.is_transactional = true;
    let req = ProduceRequest {
        correlation_id: 2,
        acks: Acks::All,
        timeout: ms(1000),
        transactional_id: Some("t".into()),
        batches: vec![(TP, t)],
    };
    with_cx(disk, |cx| rm.handle_produce(cx, NodeId(5), req));
}

/// The fetch responses among `effects`, as (to, records returned).
fn fetch_responses(effects: &[Effect]) -> Vec<(NodeId, usize)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Send {
                to,
                msg: Message::FetchResponse(r),
            } => Some((
                *to,
                r.partitions
                    .iter()
                    .flat_map(|p| p.batches.iter())
                    .map(|b| b.records.len())
                    .sum(),
            )),
            _ => None,
        })
        .collect()
}

/// The error of every produce answer among `effects`, in order.
fn produce_errors(effects: &[Effect]) -> Vec<ErrorCode> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Send {
                msg: Message::ProduceResponse(r),
                ..
            } => Some(r.partitions.iter().map(|p| p.error).collect::<Vec<_>>()),
            _ => None,
        })
        .flatten()
        .collect()
}

fn produce_all(rm: &mut ReplicaManager, disk: &mut MemDisk, value: u64) -> Vec<Effect> {
    let req = ProduceRequest {
        correlation_id: value,
        acks: Acks::All,
        timeout: ms(30_000),
        transactional_id: None,
        batches: vec![(TP, batch(&[value]))],
    };
    with_cx(disk, |cx| rm.handle_produce(cx, NodeId(5), req)).1
}

/// `DelayedProduce.tryComplete` fails a waiting acks=all append only when the broker no
/// longer leads (`Partition.checkEnoughReplicasReachOffset` without a leader log), not
/// when the leader epoch moves on while it still leads.
#[test]
fn a_waiting_append_survives_a_new_epoch_of_the_same_leader() {
    let (mut rm, mut disk) = leader_of_tp(vec![NodeId(0), NodeId(1)]);
    assert!(produce_errors(&produce_all(&mut rm, &mut disk, 1)).is_empty());
    // Re-elected in epoch 3 (the metadata skipped epoch 2): still the leader, same log.
    let (_, relead) = with_cx(&mut disk, |cx| {
        rm.apply_partition_states(cx, vec![state(TP, 0, 3, vec![NodeId(0), NodeId(1)], 3)])
    });
    assert!(
        produce_errors(&relead).is_empty(),
        "a new epoch of the same leader must not answer the append: {relead:?}"
    );
    let mut fetch = follower_fetch(&[TP], 1, ms(0));
    fetch.partitions[0].current_leader_epoch = Some(3);
    let (_, caught_up) = with_cx(&mut disk, |cx| rm.handle_fetch(cx, NodeId(1), fetch));
    assert_eq!(produce_errors(&caught_up), vec![ErrorCode::None]);
}

#[test]
fn a_waiting_append_fails_when_the_broker_becomes_a_follower() {
    let (mut rm, mut disk) = leader_of_tp(vec![NodeId(0), NodeId(1)]);
    assert!(produce_errors(&produce_all(&mut rm, &mut disk, 1)).is_empty());
    let (_, demoted) = with_cx(&mut disk, |cx| {
        rm.apply_partition_states(cx, vec![state(TP, 1, 2, vec![NodeId(0), NodeId(1)], 2)])
    });
    assert_eq!(
        produce_errors(&demoted),
        vec![ErrorCode::NotLeaderOrFollower]
    );
}

#[test]
fn a_consumer_fetch_waits_for_the_hw_not_for_the_append() {
    let (mut rm, mut disk) = leader_of_tp(vec![NodeId(0), NodeId(1)]);
    let consumer = NodeId(9);
    let mut fetch = follower_fetch(&[TP], 0, ms(500));
    fetch.replica_id = None;
    let (_, parked) = with_cx(&mut disk, |cx| rm.handle_fetch(cx, consumer, fetch));
    assert!(
        fetch_responses(&parked).is_empty(),
        "nothing to read: parked"
    );
    // The leader appends; the follower has not fetched it, so the HW stays at 0.
    let (_, appended) = with_cx(&mut disk, |cx| {
        let req = ProduceRequest {
            correlation_id: 1,
            acks: Acks::All,
            timeout: ms(1000),
            transactional_id: None,
            batches: vec![(TP, batch(&[1]))],
        };
        rm.handle_produce(cx, NodeId(5), req)
    });
    assert_eq!(rm.partitions[&TP].high_watermark, 0);
    assert!(
        fetch_responses(&appended).is_empty(),
        "an append below nothing the consumer may read must not answer its fetch"
    );
    // The follower fetches from offset 1: the HW moves and the consumer gets the record.
    let (_, moved) = with_cx(&mut disk, |cx| {
        rm.handle_fetch(cx, NodeId(1), follower_fetch(&[TP], 1, ms(500)))
    });
    assert_eq!(rm.partitions[&TP].high_watermark, 1);
    assert!(
        fetch_responses(&moved).contains(&(consumer, 1)),
        "the HW passing the record answers the parked consumer fetch: {moved:?}"
    );
}

/// The follower-fetch fast path (`Partition.updateFollowerFetchState` tries the delayed
/// operations only when the HW moved): a fetch that moves nothing leaves a waiting acks=all
/// produce waiting, the one that moves the HW answers it, as the full recomputation does.
#[test]
fn a_follower_fetch_completes_waiting_produces_only_when_it_moves_the_hw() {
    let (mut rm, mut disk) = leader_of_tp(vec![NodeId(0), NodeId(1)]);
    assert!(produce_errors(&produce_all(&mut rm, &mut disk, 1)).is_empty());
    for _ in 0..2 {
        let (_, idle) = with_cx(&mut disk, |cx| {
            rm.handle_fetch(cx, NodeId(1), follower_fetch(&[TP], 0, ms(0)))
        });
        assert_eq!(rm.partitions[&TP].high_watermark, 0);
        assert!(produce_errors(&idle).is_empty(), "{idle:?}");
    }
    let (_, moved) = with_cx(&mut disk, |cx| {
        rm.handle_fetch(cx, NodeId(1), follower_fetch(&[TP], 1, ms(0)))
    });
    assert_eq!(rm.partitions[&TP].high_watermark, 1);
    assert_eq!(produce_errors(&moved), vec![ErrorCode::None]);
}

/// The leadership version, which lets the simulator's invariants skip unchanged brokers,
/// moves with every leadership and every HW move, and not with a fetch that moves nothing.
#[test]
fn the_leadership_version_moves_with_the_hw_and_the_leadership() {
    let (mut rm, mut disk) = leader_of_tp(vec![NodeId(0), NodeId(1)]);
    let led = rm.leadership_version();
    assert!(led > 0, "becoming leader moves it");
    assert!(produce_errors(&produce_all(&mut rm, &mut disk, 1)).is_empty());
    with_cx(&mut disk, |cx| {
        rm.handle_fetch(cx, NodeId(1), follower_fetch(&[TP], 0, ms(0)))
    });
    assert_eq!(rm.leadership_version(), led, "nothing moved");
    with_cx(&mut disk, |cx| {
        rm.handle_fetch(cx, NodeId(1), follower_fetch(&[TP], 1, ms(0)))
    });
    let moved = rm.leadership_version();
    assert!(moved > led, "the HW moved");
    with_cx(&mut disk, |cx| {
        rm.apply_partition_states(cx, vec![state(TP, 1, 2, vec![NodeId(0), NodeId(1)], 2)])
    });
    assert!(rm.leadership_version() > moved, "no longer leads");
}

/// The debug proof of that fast path fires when the skipped work would have completed a
/// produce: here the HW is moved behind the purgatory's back, so a fetch that moves no HW
/// finds a waiting append it would settle.
#[cfg(debug_assertions)]
#[test]
#[should_panic(expected = "skipped a produce it completes")]
fn the_follower_fetch_fast_path_proves_it_skips_nothing() {
    let (mut rm, mut disk) = leader_of_tp(vec![NodeId(0), NodeId(1)]);
    assert!(produce_errors(&produce_all(&mut rm, &mut disk, 1)).is_empty());
    rm.partitions
        .get_mut(&TP)
        .expect("hosted")
        .set_high_watermark(1);
    with_cx(&mut disk, |cx| {
        rm.handle_fetch(cx, NodeId(1), follower_fetch(&[TP], 1, ms(0)))
    });
}

/// `Partition.updateFollowerFetchState` tries to advance the HW only when the follower's LEO
/// moved. A follower outside the ISR that is caught up holds the HW
/// (`shouldWaitForReplicaToJoinIsr`); once it has not been caught up for
/// `replica.lag.time.max.ms` it no longer does, but the HW is released only at the next LEO
/// move, append or ISR change, not by a fetch that moves nothing.
#[test]
fn a_follower_fetch_that_moves_no_leo_does_not_recompute_the_hw() {
    let three = PartitionState {
        replicas: vec![NodeId(0), NodeId(1), NodeId(2)],
        ..state(TP, 0, 1, vec![NodeId(0), NodeId(1)], 1)
    };
    let mut rm = ReplicaManager::new(BrokerConfig::default());
    let mut disk = MemDisk::default();
    with_cx(&mut disk, |cx| rm.apply_partition_states(cx, vec![three]));
    // No controller is known yet: replica 2's proposal to rejoin goes nowhere, so it stays
    // outside the ISR however caught up it is.
    assert_eq!(rm.controller, None);
    let hw = |rm: &ReplicaManager| rm.partitions[&TP].high_watermark;
    let fetch_at = |rm: &mut ReplicaManager, disk: &mut MemDisk, at: u64, from: u32, offset| {
        let mut req = follower_fetch(&[TP], offset, ms(0));
        req.replica_id = Some(NodeId(from));
        with_cx_at(disk, Instant::ZERO + ms(at), |cx| {
            rm.handle_fetch(cx, NodeId(from), req)
        });
    };
    produce_one(&mut rm, &mut disk, 1);
    fetch_at(&mut rm, &mut disk, 0, 2, 1);
    fetch_at(&mut rm, &mut disk, 0, 1, 1);
    assert_eq!(hw(&rm), 1);
    produce_one(&mut rm, &mut disk, 2);
    fetch_at(&mut rm, &mut disk, 0, 1, 2);
    assert_eq!(
        hw(&rm),
        1,
        "replica 2 is caught up (at 0 ms) and holds the HW"
    );
    // 40 s later replica 2 no longer counts; a fetch at the same offset moves nothing.
    fetch_at(&mut rm, &mut disk, 40_000, 1, 2);
    assert_eq!(hw(&rm), 1, "no LEO moved: the HW is not recomputed");
    // The next append recomputes it (`appendRecordsToLeader`), without replica 2.
    with_cx_at(&mut disk, Instant::ZERO + ms(40_000), |cx| {
        rm.handle_produce(
            cx,
            NodeId(5),
            ProduceRequest {
                correlation_id: 3,
                acks: Acks::Leader,
                timeout: ms(1000),
                transactional_id: None,
                batches: vec![(TP, batch(&[3]))],
            },
        )
    });
    assert_eq!(hw(&rm), 2, "the append releases what replica 1 has");
    fetch_at(&mut rm, &mut disk, 40_000, 1, 3);
    assert_eq!(hw(&rm), 3, "replica 1's LEO moved");
}

#[test]
fn a_fenced_follower_back_from_a_crash_does_not_hold_the_hw_with_its_old_progress() {
    let (mut rm, mut disk) = leader_of_tp(vec![NodeId(0), NodeId(1)]);
    let hw = |rm: &ReplicaManager| rm.partitions[&TP].high_watermark;
    produce_one(&mut rm, &mut disk, 1);
    with_cx(&mut disk, |cx| {
        rm.handle_fetch(cx, NodeId(1), follower_fetch(&[TP], 1, ms(0)))
    });
    assert_eq!(hw(&rm), 1, "follower 1 caught up");
    // Broker 1 dies; the controller fences it and drops it from the ISR.
    let shrunk = state(TP, 0, 1, vec![NodeId(0)], 2);
    with_cx(&mut disk, |cx| {
        rm.set_live_brokers(cx.now(), vec![NodeId(0)]);
        rm.apply_partition_states(cx, vec![shrunk]);
    });
    produce_one(&mut rm, &mut disk, 2);
    assert_eq!(hw(&rm), 2, "a fenced follower does not count");
    // It restarts and registers; before it has caught up, the HW moves without it.
    with_cx(&mut disk, |cx| {
        rm.set_live_brokers(cx.now(), vec![NodeId(0), NodeId(1)])
    });
    produce_one(&mut rm, &mut disk, 3);
    assert_eq!(
        hw(&rm),
        3,
        "its progress from before the crash is forgotten"
    );
    with_cx(&mut disk, |cx| {
        rm.handle_fetch(cx, NodeId(1), follower_fetch(&[TP], 1, ms(0)))
    });
    produce_one(&mut rm, &mut disk, 4);
    assert_eq!(
        hw(&rm),
        4,
        "fetching from its old end is not being caught up"
    );
}

fn config(version: KafkaVersion, min_insync_replicas: u32) -> BrokerConfig {
    BrokerConfig {
        version,
        min_insync_replicas,
        ..BrokerConfig::default()
    }
}

#[test]
fn since_3_7_the_hw_stays_while_the_isr_is_under_min_insync() {
    // RF 2, min.insync.replicas 2, the follower already out of the ISR; acks=1 appends.
    let hw = |version| {
        let (mut rm, mut disk) = leader_of_tp_with(vec![NodeId(0)], config(version, 2));
        produce_one(&mut rm, &mut disk, 1);
        rm.partitions[&TP].high_watermark
    };
    assert_eq!(hw(KafkaVersion::V3_7), 0, "KAFKA-15583: under min ISR");
    assert_eq!(
        hw(KafkaVersion::V3_6),
        1,
        "before 3.7 the lone leader moves it"
    );
}

#[test]
fn since_3_7_min_insync_is_capped_by_the_replication_factor() {
    // RF 2 with both in the ISR and min.insync.replicas 3.
    let outcome = |version| {
        let (mut rm, mut disk) = leader_of_tp_with(vec![NodeId(0), NodeId(1)], config(version, 3));
        let req = ProduceRequest {
            correlation_id: 1,
            acks: Acks::All,
            timeout: ms(1000),
            transactional_id: None,
            batches: vec![(TP, batch(&[1]))],
        };
        with_cx(&mut disk, |cx| rm.handle_produce(cx, NodeId(5), req));
        with_cx(&mut disk, |cx| {
            rm.handle_fetch(cx, NodeId(1), follower_fetch(&[TP], 1, ms(0)))
        });
        rm.partitions[&TP].high_watermark
    };
    assert_eq!(
        outcome(KafkaVersion::V3_7),
        1,
        "effective min ISR is 2: appended"
    );
    assert_eq!(
        outcome(KafkaVersion::V3_6),
        0,
        "NotEnoughReplicas: nothing appended"
    );
}

#[test]
fn a_waiting_fetch_gets_every_partition_of_a_produce_request() {
    let tp2 = TopicPartition::new(TP.topic, 1);
    let (mut rm, mut disk) = leader_of_tp(vec![NodeId(0), NodeId(1)]);
    let led = state(tp2, 0, 1, vec![NodeId(0), NodeId(1)], 1);
    with_cx(&mut disk, |cx| rm.apply_partition_states(cx, vec![led]));
    let fetch = follower_fetch(&[TP, tp2], 0, ms(500));
    let (_, parked) = with_cx(&mut disk, |cx| rm.handle_fetch(cx, NodeId(1), fetch));
    assert!(
        !parked
            .iter()
            .any(|e| matches!(e, crate::node::Effect::Send { .. })),
        "no data yet: the fetch waits"
    );
    let produce = ProduceRequest {
        correlation_id: 1,
        acks: Acks::All,
        timeout: ms(1000),
        transactional_id: None,
        batches: vec![(TP, batch(&[1])), (tp2, batch(&[2]))],
    };
    let (_, effects) = with_cx(&mut disk, |cx| rm.handle_produce(cx, NodeId(5), produce));
    let answers: Vec<Vec<usize>> = effects
        .iter()
        .filter_map(|e| match e {
            crate::node::Effect::Send {
                msg: Message::FetchResponse(r),
                ..
            } => Some(r.partitions.iter().map(|p| p.batches.len()).collect()),
            _ => None,
        })
        .collect();
    assert_eq!(
        answers,
        vec![vec![1, 1]],
        "one answer, after the whole request was appended, with both partitions' data"
    );
}

#[test]
fn offsets_log_append_completes_when_the_isr_has_it() {
    let (mut rm, mut disk) = leader_of_tp(vec![NodeId(0)]);
    let records = batch(&[1, 2]).records.to_vec();
    with_cx(&mut disk, |cx| rm.append(cx, TP, records, 9))
        .0
        .unwrap();
    assert_eq!(rm.coordinator_done, vec![(9, ErrorCode::None)]);
    assert_eq!(OffsetsLog::leader_epoch(&rm, TP), Some(1));
    assert_eq!(rm.committed_batches(TP).len(), 1);
}

#[test]
fn offsets_log_append_waits_for_followers_and_fails_on_leadership_loss() {
    let (mut rm, mut disk) = leader_of_tp(vec![NodeId(0), NodeId(1)]);
    let records = batch(&[1]).records.to_vec();
    with_cx(&mut disk, |cx| rm.append(cx, TP, records, 4))
        .0
        .unwrap();
    assert!(
        rm.coordinator_done.is_empty(),
        "follower 1 has not fetched yet"
    );
    assert!(rm.committed_batches(TP).is_empty());
    let follower_led = state(TP, 1, 2, vec![NodeId(0), NodeId(1)], 2);
    with_cx(&mut disk, |cx| {
        rm.apply_partition_states(cx, vec![follower_led])
    });
    assert_eq!(
        rm.coordinator_done,
        vec![(4, ErrorCode::NotLeaderOrFollower)]
    );
    let records = batch(&[2]).records.to_vec();
    let err = with_cx(&mut disk, |cx| rm.append(cx, TP, records, 5)).0;
    assert_eq!(err, Err(ErrorCode::NotLeaderOrFollower));
}

#[test]
fn idempotent_retry_is_answered_with_the_original_offset() {
    let (mut rm, mut disk) = leader_of_tp(vec![NodeId(0)]);
    let mut b = batch(&[1]);
    b.producer_id = 3;
    b.producer_epoch = 0;
    b.base_sequence = 0;
    let produce = |b: RecordBatch| ProduceRequest {
        correlation_id: 1,
        acks: Acks::Leader,
        timeout: ms(1000),
        transactional_id: None,
        batches: vec![(TP, b)],
    };
    let responses = |effects: Vec<crate::node::Effect>| -> Vec<PartitionProduceResponse> {
        effects
            .into_iter()
            .filter_map(|e| match e {
                crate::node::Effect::Send {
                    msg: Message::ProduceResponse(r),
                    ..
                } => Some(r.partitions[0].clone()),
                _ => None,
            })
            .collect()
    };
    let (_, e1) = with_cx(&mut disk, |cx| {
        rm.handle_produce(cx, NodeId(5), produce(b.clone()))
    });
    let (_, e2) = with_cx(&mut disk, |cx| {
        rm.handle_produce(cx, NodeId(5), produce(b.clone()))
    });
    let (r1, r2) = (responses(e1), responses(e2));
    assert_eq!(r1[0].error, ErrorCode::None);
    assert_eq!(r2[0].error, ErrorCode::None);
    assert_eq!(r1[0].base_offset, r2[0].base_offset);
    assert_eq!(rm.partitions[&TP].log.log_end_offset(), 1, "stored once");
    b.base_sequence = 5;
    let (_, e3) = with_cx(&mut disk, |cx| rm.handle_produce(cx, NodeId(5), produce(b)));
    assert_eq!(responses(e3)[0].error, ErrorCode::OutOfOrderSequenceNumber);
}

/// A read_committed consumer's fetch of `TP` from `offset`: (values, LSO, aborted list).
fn committed_fetch(
    rm: &mut ReplicaManager,
    disk: &mut MemDisk,
    offset: u64,
    isolation: IsolationLevel,
) -> (Vec<u64>, u64, Vec<(i64, u64)>) {
    let mut fetch = follower_fetch(&[TP], offset, Duration::ZERO);
    fetch.replica_id = None;
    fetch.isolation_level = isolation;
    let (_, effects) = with_cx(disk, |cx| rm.handle_fetch(cx, NodeId(9), fetch));
    let r = effects
        .into_iter()
        .find_map(|e| match e {
            Effect::Send {
                msg: Message::FetchResponse(r),
                ..
            } => Some(r.partitions[0].clone()),
            _ => None,
        })
        .expect("answered at once");
    let values = r
        .batches
        .iter()
        .flat_map(|b| b.records.iter().map(|r| r.value.0))
        .collect();
    (values, r.last_stable_offset, r.aborted_transactions)
}

#[test]
fn read_committed_fetches_stop_at_the_lso_and_carry_the_aborted_index() {
    let (mut rm, mut disk) = leader_of_tp(vec![NodeId(0)]);
    produce_one(&mut rm, &mut disk, 1); // plain, offset 0
    produce_transactional(&mut rm, &mut disk, &[2, 3]); // offsets 1..=2
    produce_one(&mut rm, &mut disk, 4); // plain, offset 3
    assert_eq!(rm.partitions[&TP].high_watermark, 4);
    let rc = IsolationLevel::ReadCommitted;
    assert_eq!(
        committed_fetch(&mut rm, &mut disk, 0, rc),
        (vec![1], 1, vec![])
    );
    assert_eq!(
        committed_fetch(&mut rm, &mut disk, 0, IsolationLevel::ReadUncommitted).0,
        vec![1, 2, 3, 4],
        "read_uncommitted reads to the HW"
    );
    let abort = crate::record::ControlMarker::Abort;
    assert_eq!(
        with_cx(&mut disk, |cx| rm
            .append_txn_marker(cx, TP, 4, -1, abort, 8))
        .0,
        Err(ErrorCode::InvalidProducerEpoch),
        "a marker of an older epoch is fenced"
    );
    with_cx(&mut disk, |cx| rm.append_txn_marker(cx, TP, 4, 0, abort, 9))
        .0
        .unwrap();
    assert_eq!(rm.coordinator_done, vec![(9, ErrorCode::None)]);
    assert_eq!(
        committed_fetch(&mut rm, &mut disk, 1, rc),
        (vec![2, 3, 4], 5, vec![(4, 1)]),
        "the aborted data is returned with its index entry; the client drops it"
    );
    assert_eq!(
        committed_fetch(&mut rm, &mut disk, 4, rc),
        (vec![], 5, vec![(4, 1)]),
        "the abort marker alone is fetched with its entry"
    );
    assert_eq!(
        committed_fetch(&mut rm, &mut disk, 5, rc),
        (vec![], 5, vec![])
    );
}

#[test]
fn list_offsets_latest_is_the_lso_for_read_committed() {
    let (mut rm, mut disk) = leader_of_tp(vec![NodeId(0)]);
    produce_transactional(&mut rm, &mut disk, &[2]);
    let latest = |rm: &mut ReplicaManager, disk: &mut MemDisk, isolation_level| {
        let req = ListOffsetsRequest {
            correlation_id: 1,
            isolation_level,
            partitions: vec![(TP, OffsetSpec::Latest)],
        };
        let (_, e) = with_cx(disk, |cx| rm.handle_list_offsets(cx, NodeId(9), req));
        e.into_iter()
            .find_map(|e| match e {
                Effect::Send {
                    msg: Message::ListOffsetsResponse(r),
                    ..
                } => Some(r.partitions[0].2),
                _ => None,
            })
            .unwrap()
    };
    assert_eq!(latest(&mut rm, &mut disk, IsolationLevel::ReadCommitted), 0);
    assert_eq!(
        latest(&mut rm, &mut disk, IsolationLevel::ReadUncommitted),
        1
    );
}
