//! Flush policy and power loss (issue 3 priority d): Kafka acknowledges from the page cache,
//! so with the default policy (never fsync) a power loss of every replica at once loses
//! acknowledged records; `log.flush.interval.messages=1` makes each append durable before it
//! is acknowledged or reported to the leader, and the records survive.

mod support;

use kafsim_engine::broker::config::BrokerConfig;
use kafsim_engine::protocol::Acks;
use kafsim_engine::{Duration, Instant, TopicId, TopicPartition};
use kafsim_sim::cluster::Cluster;
use kafsim_sim::invariants::{self, InvariantScope};
use kafsim_sim::world::{World, WorldConfig};
use support::*;

const TP: TopicPartition = TopicPartition::new(TopicId(0), 0);

fn power_loss_of_all_replicas(flush_every_message: bool) -> (World, Cluster) {
    let mut w = World::new(11, WorldConfig::default());
    let config = BrokerConfig {
        min_insync_replicas: 2,
        flush_interval_messages: flush_every_message.then_some(1),
        ..BrokerConfig::default()
    };
    let c = cluster(&mut w, 3, 1, 3, config.clone());
    invariants::register(
        &mut w,
        &c,
        &config,
        InvariantScope {
            correlated_power_loss: true,
        },
    );
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
