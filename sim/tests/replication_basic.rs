//! Replication basics: produce/fetch replication with acks 0/1/all, HW advance, and leader
//! election on broker death (issue 3 priority a).

mod support;

use kafsim_engine::broker::config::BrokerConfig;
use kafsim_engine::broker::Broker;
use kafsim_engine::protocol::Acks;
use kafsim_engine::{Instant, TopicId, TopicPartition};
use kafsim_sim::world::{World, WorldConfig};
use support::*;

const TP: TopicPartition = TopicPartition::new(TopicId(0), 0);

#[test]
fn acks_all_replicates_to_every_replica_and_advances_hw() {
    let mut w = World::new(1, WorldConfig::default());
    let c = cluster(&mut w, 3, 1, 3, BrokerConfig::default());
    add_probe(&mut w, &c, 0, TP, Acks::All, Instant::from_millis(3000));
    w.run_until(Instant::from_millis(5000));
    let acked = acked(&w, TP);
    assert!(acked.len() > 100, "only {} acks", acked.len());
    for b in &c.brokers {
        let p = w.node::<Broker>(*b).unwrap().partition(TP).unwrap();
        assert_eq!(p.log.log_end_offset(), acked.len() as u64, "{b} LEO");
        assert_eq!(p.high_watermark, acked.len() as u64, "{b} HW");
    }
    assert_eq!(lost_acked(&w, &c, TP), Some(vec![]));
}
