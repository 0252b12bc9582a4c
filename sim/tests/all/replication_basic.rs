//! Replication basics: produce/fetch replication with acks 0/1/all, HW advance, and leader
//! election on broker death (issue 3 priority a).

use crate::support::*;
use kafsim_engine::broker::Broker;
use kafsim_engine::protocol::Acks;
use kafsim_engine::{Instant, TopicId, TopicPartition};

const TP: TopicPartition = TopicPartition::new(TopicId(0), 0);

#[test]
fn acks_all_replicates_to_every_replica_and_advances_hw() {
    let (mut w, c) = Harness::new(1).build();
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

#[test]
fn acks1_leader_crash_before_followers_fetch_loses_the_record() {
    let (mut w, c) = Harness::new(2).build();
    w.run_until(Instant::from_millis(2000));
    let leader = c.leader_of(&w, TP).expect("a leader");
    let followers = c.followers_of(&w, TP);
    assert_eq!(followers.len(), 2);
    // Followers cannot reach the leader: an acks=1 write is acknowledged by the leader alone.
    w.net().partition(&[leader], &followers);
    add_probe(&mut w, &c, 0, TP, Acks::Leader, Instant::from_millis(2500));
    w.run_until(Instant::from_millis(3000));
    let acked_before = acked(&w, TP);
    assert!(!acked_before.is_empty(), "the leader acknowledged nothing");
    w.crash(leader);
    w.net().heal();
    w.run_until(Instant::from_millis(15_000));
    let new_leader = c
        .leader_of(&w, TP)
        .expect("a new leader after the session timeout");
    assert_ne!(new_leader, leader);
    w.restart(leader);
    w.run_until(Instant::from_millis(25_000));
    let lost = lost_acked(&w, &c, TP).expect("a leader");
    assert_eq!(
        lost.len(),
        acked_before.len(),
        "every acks=1 write was lost"
    );
    assert!(kafsim_sim::invariants::check_divergence(&w, &c).is_empty());
    // The old leader truncated its unreplicated records when it rejoined as follower.
    let old = w.node::<Broker>(leader).unwrap().partition(TP).unwrap();
    assert_eq!(old.log.log_end_offset(), 0);
}
