//! KIP-101 scenario 1 with RF=2: a follower restarts and, under the legacy protocol,
//! truncates to its stale checkpointed high watermark; the leader then dies and the follower
//! is elected, losing committed records. With leader epochs the follower keeps its log until
//! the leader tells it where their logs diverge, so nothing is lost (issue 3 priority c).

mod support;

use kafsim_engine::broker::config::{BrokerConfig, ReplicationProtocol};
use kafsim_engine::broker::Broker;
use kafsim_engine::history::HistoryEvent;
use kafsim_engine::protocol::Acks;
use kafsim_engine::{Instant, TopicId, TopicPartition};
use kafsim_sim::cluster::Cluster;
use kafsim_sim::invariants::{self, InvariantScope};
use kafsim_sim::world::{World, WorldConfig};
use support::*;

const TP: TopicPartition = TopicPartition::new(TopicId(0), 0);

/// Run the scenario; returns the world after the old leader came back as follower.
fn scenario(protocol: ReplicationProtocol) -> (World, Cluster) {
    let mut w = World::new(7, WorldConfig::default());
    let config = BrokerConfig {
        replication_protocol: protocol,
        ..BrokerConfig::default()
    };
    let c = cluster(&mut w, 2, 1, 2, config.clone());
    invariants::register(
        &mut w,
        &c,
        &config,
        InvariantScope {
            correlated_power_loss: false,
        },
    );
    add_probe(&mut w, &c, 0, TP, Acks::All, Instant::from_millis(6000));
    w.run_until(Instant::from_millis(6200));
    let a = c.leader_of(&w, TP).unwrap();
    let b = c.followers_of(&w, TP)[0];
    // B restarts (its HW checkpoint is from t=5s) and cannot reach A before A dies.
    w.crash(b);
    w.net().partition(&[a], &[b]);
    w.restart(b);
    w.run_until(Instant::from_millis(6500));
    w.crash(a);
    w.run_until(Instant::from_millis(20_000));
    assert_eq!(
        c.leader_of(&w, TP),
        Some(b),
        "B was in the ISR and is elected"
    );
    w.net().heal();
    w.restart(a);
    w.run_until(Instant::from_millis(30_000));
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
    let truncated_to_hw = w.history().entries().iter().any(|e| {
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
    let mut w = World::new(8, WorldConfig::default());
    let config = BrokerConfig {
        replication_protocol: protocol,
        ..BrokerConfig::default()
    };
    let c = cluster(&mut w, 2, 1, 2, config.clone());
    invariants::register(
        &mut w,
        &c,
        &config,
        InvariantScope {
            correlated_power_loss: true,
        },
    );
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
