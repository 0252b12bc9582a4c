//! Flush policy and power loss (issue 3 priority d): Kafka acknowledges from the page cache,
//! so with the default policy (never fsync) a power loss of every replica at once loses
//! acknowledged records; `log.flush.interval.messages=1` makes each append durable before it
//! is acknowledged or reported to the leader, and the records survive.

use crate::support::*;
use kafsim_engine::broker::config::BrokerConfig;
use kafsim_engine::broker::Broker;
use kafsim_engine::history::HistoryEvent;
use kafsim_engine::protocol::Acks;
use kafsim_engine::{Duration, Instant, TopicId, TopicPartition};
use kafsim_sim::cluster::Cluster;
use kafsim_sim::invariants::{self, InvariantScope};
use kafsim_sim::world::World;

const TP: TopicPartition = TopicPartition::new(TopicId(0), 0);

fn power_loss_of_all_replicas(flush_every_message: bool) -> (World, Cluster) {
    let config = BrokerConfig {
        min_insync_replicas: 2,
        flush_interval_messages: flush_every_message.then_some(1),
        ..BrokerConfig::default()
    };
    let (mut w, c) = Harness::new(11)
        .broker_config(config)
        .invariants(InvariantScope {
            correlated_power_loss: true,
        })
        .build();
    add_probe(&mut w, &c, 0, TP, Acks::All, Instant::from_millis(4000));
    w.run_until(Instant::from_millis(4100));
    assert!(acked(&w, TP).len() > 50);
    for b in &c.brokers {
        w.power_loss(*b, true);
    }
    for b in &c.brokers {
        w.restart(*b);
    }
    settle(&mut w, &c, TP, Duration::from_secs(30));
    (w, c)
}

#[test]
fn without_fsync_a_correlated_power_loss_loses_acked_records() {
    let (w, c) = power_loss_of_all_replicas(false);
    let lost = lost_acked(&w, &c, TP).expect("a leader after restart");
    assert!(!lost.is_empty(), "page-cache-only records should be gone");
    assert!(invariants::check_divergence(&w, &c).is_empty());
}

#[test]
fn flush_every_message_survives_a_correlated_power_loss() {
    let (w, c) = power_loss_of_all_replicas(true);
    assert_eq!(lost_acked(&w, &c, TP), Some(vec![]));
    assert!(invariants::check_divergence(&w, &c).is_empty());
    assert!(w.violations().is_empty(), "{:?}", w.violations());
}

#[test]
fn a_torn_tail_is_cut_on_recovery_and_the_broker_serves_on() {
    let config = BrokerConfig {
        flush_interval: Some(Duration::from_millis(100)),
        ..BrokerConfig::default()
    };
    let (mut w, c) = Harness::new(12)
        .brokers(1)
        .replication_factor(1)
        .broker_config(config)
        .build();
    add_probe(&mut w, &c, 0, TP, Acks::All, Instant::MAX);
    // A restarted broker is refused registration until its old session (9 s) has expired,
    // and serves only then: power losses come every ~11 s so that each one hits a broker
    // that is writing.
    for i in 0..20u64 {
        w.run_until(Instant::from_millis(2000 + 11_000 * i + 7 * i * i));
        w.power_loss(c.brokers[0], true);
        w.restart(c.brokers[0]);
    }
    let cuts = w
        .history()
        .entries()
        .filter(|e| {
            matches!(
                e.event,
                HistoryEvent::Truncated {
                    reason: "recovery",
                    ..
                }
            )
        })
        .count();
    assert!(cuts > 0, "no power loss tore a log write");
    let acked_before = acked(&w, TP).len();
    w.run_for(Duration::from_secs(10));
    assert!(
        acked(&w, TP).len() > acked_before,
        "the recovered broker serves again"
    );
    let p = w
        .node::<Broker>(c.brokers[0])
        .unwrap()
        .partition(TP)
        .unwrap();
    for o in 0..p.log.log_end_offset() {
        assert!(p.log.record_at(o).is_some(), "hole at {o} after recovery");
    }
}

#[test]
fn with_flush_every_message_a_follower_fetches_again_once_its_appends_are_durable() {
    // A follower that must fsync before reporting a LEO used to send its next fetch without
    // the partition still being fsynced (its other partitions on the same leader had nothing
    // pending); that fetch waited out replica.fetch.wait.max.ms (500 ms) at the leader, and
    // every acks=all request with it. The probe sends one record per 10 ms, one at a time.
    let config = BrokerConfig {
        flush_interval_messages: Some(1),
        ..BrokerConfig::default()
    };
    // Six partitions on three brokers: each leader leads two, one of them idle.
    let (mut w, c) = Harness::new(11).partitions(6).broker_config(config).build();
    add_probe(&mut w, &c, 0, TP, Acks::All, Instant::from_millis(6_000));
    w.run_until(Instant::from_millis(6_000));
    let n = acked(&w, TP).len();
    assert!(
        n > 300,
        "{n} acks=all records in 6 s, one at a time every 10 ms"
    );
}
