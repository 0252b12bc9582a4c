//! KIP-101 scenario 1 (with RF=3, since a restarted broker is fenced out of the ISR until its
//! old session ends): a follower becomes follower of a new leader and, under the legacy
//! protocol, truncates to its stale high watermark; that leader then dies and the follower
//! is elected, losing committed records. With leader epochs the follower keeps its log until
//! the leader tells it where their logs diverge, so nothing is lost (issue 3 priority c).

use crate::support::*;
use kafsim_engine::broker::config::{BrokerConfig, ReplicationProtocol};
use kafsim_engine::broker::Broker;
use kafsim_engine::history::HistoryEvent;
use kafsim_engine::protocol::Acks;
use kafsim_engine::{Duration, Instant, TopicId, TopicPartition};
use kafsim_sim::cluster::Cluster;
use kafsim_sim::invariants::{self, InvariantScope};
use kafsim_sim::world::World;

const TP: TopicPartition = TopicPartition::new(TopicId(0), 0);

/// Run the scenario; returns the world after the old leaders came back as followers.
///
/// RF=3, leader A, followers B and C, acks=all. A follower learns the HW one fetch late, so
/// when A crashes C's HW lags A's behind the last acknowledged record. A crashed broker is
/// fenced only when its session runs out (and a restarted one is refused until then), so
/// the follower that truncates must be one that never restarted: B is elected, C becomes
/// its follower (and, under the legacy protocol, cuts its log to its stale HW at once), C
/// cannot reach B, and B crashes too. C, still in the ISR, is elected next.
fn scenario(protocol: ReplicationProtocol) -> (World, Cluster) {
    let config = BrokerConfig {
        replication_protocol: protocol,
        ..BrokerConfig::default()
    };
    let (mut w, c) = Harness::new(7)
        .broker_config(config)
        .invariants(InvariantScope {
            correlated_power_loss: false,
        })
        .build();
    add_probe(&mut w, &c, 0, TP, Acks::All, Instant::from_millis(40_000));
    w.run_until(Instant::from_millis(6000));
    let a = c.leader_of(&w, TP).unwrap();
    let followers = c.followers_of(&w, TP);
    let (b, cc) = (followers[0], followers[1]);
    w.net().partition(&[b], &[cc]);
    w.crash(a);
    let mut waited = 0;
    while c.leader_of(&w, TP) != Some(b) {
        w.run_for(Duration::from_millis(1));
        waited += 1;
        assert!(waited < 20_000, "B was in the ISR and is elected");
    }
    w.crash(b);
    w.run_until(Instant::from_millis(40_000));
    assert_eq!(
        c.leader_of(&w, TP),
        Some(cc),
        "C was in the ISR and is elected"
    );
    w.net().heal();
    w.restart(a);
    w.restart(b);
    w.run_until(Instant::from_millis(60_000));
    (w, c)
}

#[test]
fn high_watermark_truncation_loses_committed_records() {
    let (w, c) = scenario(ReplicationProtocol::HighWatermark);
    let lost = lost_acked(&w, &c, TP).unwrap();
    assert!(
        !lost.is_empty(),
        "legacy truncation should lose acked records"
    );
    let truncated_to_hw = w.history().entries().any(|e| {
        matches!(
            e.event,
            HistoryEvent::Truncated {
                reason: "high-watermark",
                ..
            }
        )
    });
    assert!(truncated_to_hw);
}

#[test]
fn leader_epoch_truncation_keeps_committed_records() {
    let (w, c) = scenario(ReplicationProtocol::LeaderEpoch);
    assert_eq!(lost_acked(&w, &c, TP), Some(vec![]));
    assert!(invariants::check_divergence(&w, &c).is_empty());
    assert!(w.violations().is_empty(), "{:?}", w.violations());
    let a = c.followers_of(&w, TP)[0];
    let (pa, pb) = (
        w.node::<Broker>(a).unwrap().partition(TP).unwrap(),
        w.node::<Broker>(c.leader_of(&w, TP).unwrap())
            .unwrap()
            .partition(TP)
            .unwrap(),
    );
    assert_eq!(
        pa.log.log_end_offset(),
        pb.log.log_end_offset(),
        "A caught up with B"
    );
}

/// KIP-101 scenario 2: after a double failure the follower that lost its unflushed tail is
/// elected and writes new records; the old leader returns with its old records.
fn double_failure(protocol: ReplicationProtocol) -> (World, Cluster) {
    let config = BrokerConfig {
        replication_protocol: protocol,
        ..BrokerConfig::default()
    };
    let (mut w, c) = Harness::new(8)
        .brokers(2)
        .replication_factor(2)
        .broker_config(config)
        .invariants(InvariantScope {
            correlated_power_loss: true,
        })
        .build();
    add_probe(
        &mut w,
        &c,
        0,
        TP,
        Acks::Leader,
        Instant::from_millis(30_000),
    );
    w.run_until(Instant::from_millis(6200));
    let a = c.leader_of(&w, TP).unwrap();
    let b = c.followers_of(&w, TP)[0];
    w.crash(a);
    w.power_loss(b, true);
    w.restart(b);
    w.run_until(Instant::from_millis(30_000));
    assert_eq!(c.leader_of(&w, TP), Some(b));
    w.restart(a);
    w.run_until(Instant::from_millis(45_000));
    (w, c)
}

#[test]
fn high_watermark_protocol_lets_replicas_diverge_after_a_double_failure() {
    let (w, c) = double_failure(ReplicationProtocol::HighWatermark);
    assert!(!invariants::check_divergence(&w, &c).is_empty());
}

#[test]
fn leader_epochs_keep_replicas_identical_after_a_double_failure() {
    let (w, c) = double_failure(ReplicationProtocol::LeaderEpoch);
    assert!(invariants::check_divergence(&w, &c).is_empty());
    assert!(w.violations().is_empty(), "{:?}", w.violations());
}
