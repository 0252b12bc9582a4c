//! Tests of the replica fetcher (`fetcher.rs`): KIP-279 truncation, fetcher ids, request
//! timeouts.

use super::*;
use crate::broker::config::BrokerConfig;
use crate::log::tests::{batch, with_cx, MemDisk, TP};
use crate::log::FlushPolicy;
use crate::node::Effect;
use crate::testkit::closed_connections;

/// A follower of broker 1 whose log holds one record per epoch in `epochs`.
fn follower(epochs: &[u32]) -> (ReplicaManager, MemDisk) {
    let mut rm = ReplicaManager::new(BrokerConfig::default());
    let mut disk = MemDisk::default();
    let mut log = crate::log::Log::new(TP);
    with_cx(&mut disk, |cx| {
        for (o, e) in epochs.iter().enumerate() {
            let mut b = batch(&[o as u64]);
            b.base_offset = o as u64;
            b.partition_leader_epoch = *e;
            log.append_as_follower(cx, &[b], FlushPolicy::default());
        }
    });
    rm.add_recovered(log, 0);
    (rm, disk)
}

/// Make `rm` follow broker 1 in `epoch`; returns the epoch asked in OffsetsForLeaderEpoch.
fn follow(rm: &mut ReplicaManager, disk: &mut MemDisk, epoch: u32) -> (u64, u32) {
    let state = PartitionState {
        partition: TP,
        leader: Some(NodeId(1)),
        leader_epoch: epoch,
        isr: vec![NodeId(0), NodeId(1)],
        partition_epoch: epoch,
        replicas: vec![NodeId(0), NodeId(1)],
    };
    let (_, effects) = with_cx(disk, |cx| rm.apply_partition_states(cx, vec![state]));
    asked(effects).expect("an OffsetsForLeaderEpoch request")
}

fn asked(effects: Vec<Effect>) -> Option<(u64, u32)> {
    effects.into_iter().find_map(|e| match e {
        Effect::Send {
            msg: Message::OffsetsForLeaderEpochRequest(r),
            ..
        } => Some((r.correlation_id, r.partitions[0].2)),
        _ => None,
    })
}

fn answer(
    rm: &mut ReplicaManager,
    disk: &mut MemDisk,
    corr: u64,
    epoch: u32,
    end: u64,
) -> Option<(u64, u32)> {
    let resp = OffsetsForLeaderEpochResponse {
        correlation_id: corr,
        partitions: vec![(
            TP,
            ErrorCode::None,
            EpochEndOffset {
                epoch,
                end_offset: end,
            },
        )],
    };
    let (_, effects) = with_cx(disk, |cx| rm.handle_epoch_response(cx, NodeId(1), resp));
    asked(effects)
}

#[test]
fn kip_279_truncation_repeats_until_the_epochs_agree() {
    // Follower: epochs 0,0,0,0,0 then 2,2,2 (offsets 5..8). Leader: epoch 0 to offset 5,
    // epoch 1 to 7, epoch 3 after. The follower never had epoch 1.
    let (mut rm, mut disk) = follower(&[0, 0, 0, 0, 0, 2, 2, 2]);
    let (corr, asked_epoch) = follow(&mut rm, &mut disk, 3);
    assert_eq!(asked_epoch, 2);
    // Largest leader epoch <= 2 is 1, ending at 7. The follower lacks epoch 1: it cuts to
    // the end of its epoch 0 (offset 5) and asks again instead of keeping 5..7.
    let (corr, asked_epoch) = answer(&mut rm, &mut disk, corr, 1, 7).expect("asks again");
    assert_eq!(rm.partitions[&TP].log.log_end_offset(), 5);
    assert_eq!(asked_epoch, 0);
    assert_eq!(answer(&mut rm, &mut disk, corr, 0, 5), None, "done");
    assert_eq!(rm.partitions[&TP].log.log_end_offset(), 5);
    assert!(matches!(
        rm.partitions[&TP].role,
        Role::Follower {
            phase: FollowerPhase::Fetching,
            ..
        }
    ));
}

#[test]
fn matching_epoch_truncates_to_the_leaders_end_of_it() {
    let (mut rm, mut disk) = follower(&[0, 0, 1, 1, 1]);
    let (corr, asked_epoch) = follow(&mut rm, &mut disk, 2);
    assert_eq!(asked_epoch, 1);
    assert_eq!(answer(&mut rm, &mut disk, corr, 1, 3), None);
    assert_eq!(rm.partitions[&TP].log.log_end_offset(), 3);
}

/// The partitions of each fetch request a follower of six empty partitions of "events"
/// (all led by broker 1) sends with `fetchers` replica fetchers, once every partition is
/// followed: the connection is reset (every fetcher backs off) and each fetcher's backoff
/// ends in turn.
fn fetch_requests(fetchers: u32) -> Vec<Vec<u32>> {
    let mut config = BrokerConfig {
        num_replica_fetchers: fetchers,
        ..BrokerConfig::default()
    };
    config
        .topic_name_hashes
        .insert(TP.topic, crate::coordinator::java_string_hash("events"));
    let mut rm = ReplicaManager::new(config);
    let mut disk = MemDisk::default();
    let states = (0..6)
        .map(|p| PartitionState {
            partition: TopicPartition::new(TP.topic, p),
            leader: Some(NodeId(1)),
            leader_epoch: 1,
            isr: vec![NodeId(0), NodeId(1)],
            partition_epoch: 1,
            replicas: vec![NodeId(0), NodeId(1)],
        })
        .collect();
    with_cx(&mut disk, |cx| rm.apply_partition_states(cx, states));
    with_cx(&mut disk, |cx| rm.on_connection_reset(cx, NodeId(1)));
    let mut requests = Vec::new();
    for f in 0..fetchers {
        let timer = ReplicaTimer::FetcherBackoff {
            leader: NodeId(1),
            fetcher: f,
        };
        let (_, effects) = with_cx(&mut disk, |cx| rm.on_fetcher_timer(cx, timer));
        requests.extend(effects.into_iter().filter_map(|e| match e {
            Effect::Send {
                to: NodeId(1),
                msg: Message::FetchRequest(r),
            } => Some(r.partitions.iter().map(|p| p.partition.partition).collect()),
            _ => None,
        }));
    }
    requests
}

#[test]
fn num_replica_fetchers_splits_a_leaders_partitions_by_fetcher_id() {
    assert_eq!(fetch_requests(1), vec![vec![0, 1, 2, 3, 4, 5]]);
    // "events".hashCode() = -1291329255; Utils.abs(31 * h + p) % 3 = 0, 2, 1, 0, 2, 1 for
    // p = 0..5: one fetch per fetcher thread, each with its own partitions.
    assert_eq!(fetch_requests(3), vec![vec![0, 3], vec![2, 5], vec![1, 4]]);
}

#[test]
fn java_string_hash_matches_java() {
    // Values of String.hashCode() as the JVM computes them.
    assert_eq!(crate::coordinator::java_string_hash("events"), -1291329255);
    assert_eq!(crate::coordinator::java_string_hash(""), 0);
    assert_eq!(crate::coordinator::java_string_hash("a"), 97);
}

#[test]
fn a_timed_out_request_closes_the_connection_and_its_late_answer_is_ignored() {
    let (mut rm, mut disk) = follower(&[0, 0, 1, 1, 1]);
    let (corr, _) = follow(&mut rm, &mut disk, 2);
    let timer = timeout_timer((NodeId(1), 0));
    let (_, effects) = with_cx(&mut disk, |cx| rm.on_fetcher_timer(cx, timer));
    assert_eq!(closed_connections(&effects), vec![NodeId(1)]);
    assert_eq!(asked(effects), None, "backs off before asking again");
    // The answer to the abandoned request changes nothing.
    assert_eq!(answer(&mut rm, &mut disk, corr, 1, 3), None);
    assert_eq!(rm.partitions[&TP].log.log_end_offset(), 5);
}

#[test]
fn an_answered_request_keeps_the_connection() {
    let (mut rm, mut disk) = follower(&[0, 0, 1, 1, 1]);
    let (corr, _) = follow(&mut rm, &mut disk, 2);
    let resp = OffsetsForLeaderEpochResponse {
        correlation_id: corr,
        partitions: vec![(
            TP,
            ErrorCode::None,
            EpochEndOffset {
                epoch: 1,
                end_offset: 3,
            },
        )],
    };
    let (_, effects) = with_cx(&mut disk, |cx| {
        rm.handle_epoch_response(cx, NodeId(1), resp)
    });
    assert!(closed_connections(&effects).is_empty());
    assert_eq!(rm.partitions[&TP].log.log_end_offset(), 3);
}
