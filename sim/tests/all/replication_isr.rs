//! ISR shrink and expand, min.insync.replicas, and unclean leader election
//! (issue 3 priority b).

use crate::harness::send_failures;
use crate::support::*;
use kafsim_engine::broker::config::BrokerConfig;
use kafsim_engine::history::HistoryEvent;
use kafsim_engine::protocol::{Acks, ErrorCode};
use kafsim_engine::{Duration, Instant, NodeId, TopicId, TopicPartition};
use kafsim_sim::cluster::Cluster;
use kafsim_sim::invariants::{self, InvariantScope};
use kafsim_sim::world::World;

const TP: TopicPartition = TopicPartition::new(TopicId(0), 0);

fn fast_config() -> BrokerConfig {
    BrokerConfig {
        replica_lag_time_max: Duration::from_millis(3000),
        // A fetch lost in a partition is retried after this (Kafka: request timeout).
        replica_socket_timeout: Duration::from_millis(4000),
        ..BrokerConfig::default()
    }
}

fn isr(w: &World, c: &Cluster) -> Vec<NodeId> {
    isr_of(w, c, TP)
}

#[test]
fn lagging_follower_leaves_the_isr_and_rejoins_after_catching_up() {
    let config = fast_config();
    let (mut w, c) = Harness::new(3)
        .broker_config(config)
        .invariants(InvariantScope {
            correlated_power_loss: false,
        })
        .build();
    add_probe(&mut w, &c, 0, TP, Acks::All, Instant::from_millis(20_000));
    w.run_until(Instant::from_millis(2000));
    let leader = c.leader_of(&w, TP).unwrap();
    let lagging = c.followers_of(&w, TP)[0];
    assert_eq!(isr(&w, &c).len(), 3);
    w.net().partition(&[leader], &[lagging]);
    w.run_until(Instant::from_millis(8000));
    assert!(
        !isr(&w, &c).contains(&lagging),
        "ISR still {:?}",
        isr(&w, &c)
    );
    let acked_while_out = acked(&w, TP).len();
    w.run_until(Instant::from_millis(10_000));
    assert!(
        acked(&w, TP).len() > acked_while_out,
        "acks=all continues with a 2-replica ISR"
    );
    w.net().heal();
    w.run_until(Instant::from_millis(16_000));
    assert_eq!(isr(&w, &c).len(), 3, "the follower rejoined");
    let shrinks = w
        .history()
        .entries()
        .filter(|e| matches!(&e.event, HistoryEvent::IsrChanged { isr, .. } if isr.len() == 2))
        .count();
    assert!(shrinks >= 1);
    assert!(w.violations().is_empty(), "{:?}", w.violations());
}

/// acks-all-safe seed 1: a one-way partition kept the leader's fetch responses from the
/// follower. TCP does not lose them: they wait on the wire and the leader's kernel
/// retransmits them with exponential backoff, so after the heal the follower gets its answer
/// at the next retransmission (here ~8.7 s, the one at 6.2 s after the fetch was answered) and
/// rejoins, with Kafka's default `replica.socket.timeout.ms` of 30 s. (The old network dropped
/// what crossed a partition: the follower waited out the socket timeout, and the library had to
/// shorten it to 3 s to drain.)
#[test]
fn follower_whose_fetch_answer_a_partition_held_rejoins_after_the_heal() {
    let config = BrokerConfig {
        replica_lag_time_max: Duration::from_millis(3000),
        ..BrokerConfig::default()
    };
    assert_eq!(config.replica_socket_timeout, Duration::from_secs(30));
    let (mut w, c) = Harness::new(5).broker_config(config).build();
    add_probe(&mut w, &c, 0, TP, Acks::All, Instant::from_millis(20_000));
    w.run_until(Instant::from_millis(2000));
    let leader = c.leader_of(&w, TP).unwrap();
    let lagging = c.followers_of(&w, TP)[0];
    assert_eq!(isr(&w, &c).len(), 3);
    w.net().block(leader, lagging);
    w.run_until(Instant::from_millis(8000));
    assert!(!isr(&w, &c).contains(&lagging), "ISR {:?}", isr(&w, &c));
    assert!(
        w.stats().messages_delayed > 0,
        "the answer waits on the wire"
    );
    w.net().heal();
    w.run_until(Instant::from_millis(10_000));
    assert_eq!(
        isr(&w, &c).len(),
        3,
        "the retransmitted answer reached the follower, which fetched again and rejoined"
    );
    assert!(w.violations().is_empty(), "{:?}", w.violations());
}

#[test]
fn min_insync_rejects_acks_all_when_the_isr_is_too_small() {
    let config = BrokerConfig {
        min_insync_replicas: 2,
        ..fast_config()
    };
    let (mut w, c) = Harness::new(4).broker_config(config).build();
    w.run_until(Instant::from_millis(2000));
    for f in c.followers_of(&w, TP) {
        w.crash(f);
    }
    w.run_until(Instant::from_millis(14_000));
    assert_eq!(isr(&w, &c).len(), 1);
    add_probe(&mut w, &c, 0, TP, Acks::All, Instant::MAX);
    w.run_until(Instant::from_millis(16_000));
    let rejected = send_failures(&w, ErrorCode::NotEnoughReplicas);
    assert!(rejected > 10, "only {rejected} NotEnoughReplicas");
    assert!(acked(&w, TP).is_empty());
}

/// acks=all, min.insync=1: the ISR shrinks to the leader, which acknowledges alone, then dies.
fn isr_of_one_then_leader_dies(unclean: bool) -> (World, Cluster, NodeId) {
    let config = BrokerConfig {
        unclean_leader_election: unclean,
        ..fast_config()
    };
    let (mut w, c) = Harness::new(5)
        .broker_config(config)
        .invariants(InvariantScope {
            correlated_power_loss: false,
        })
        .build();
    w.run_until(Instant::from_millis(2000));
    let leader = c.leader_of(&w, TP).unwrap();
    let followers = c.followers_of(&w, TP);
    w.net().partition(&[leader], &followers);
    // The probe starts with the partition: its first record is what the cut-off followers
    // lack (a follower at the leader's LEO stays in sync however long it is silent,
    // KAFKA-7152), so the ISR shrinks to the leader, which then acknowledges alone.
    add_probe(&mut w, &c, 0, TP, Acks::All, Instant::from_millis(9000));
    w.run_until(Instant::from_millis(8000));
    assert_eq!(isr(&w, &c), vec![leader]);
    w.run_until(Instant::from_millis(9500));
    assert!(
        !acked(&w, TP).is_empty(),
        "the lone leader acknowledged nothing"
    );
    w.crash(leader);
    w.net().heal();
    w.run_until(Instant::from_millis(20_000));
    (w, c, leader)
}

#[test]
fn unclean_election_loses_records_acked_by_a_lone_leader() {
    let (mut w, c, old) = isr_of_one_then_leader_dies(true);
    let new = c.leader_of(&w, TP).expect("an unclean leader");
    assert_ne!(new, old);
    let lost = lost_acked(&w, &c, TP).unwrap();
    assert_eq!(
        lost.len(),
        acked(&w, TP).len(),
        "the new leader never had them"
    );
    w.restart(old);
    w.run_until(Instant::from_millis(30_000));
    assert!(
        !lost_acked(&w, &c, TP).unwrap().is_empty(),
        "still lost after the old leader returns"
    );
    assert!(invariants::check_divergence(&w, &c).is_empty());
}

#[test]
fn clean_election_keeps_the_partition_offline_until_the_leader_returns() {
    let (mut w, c, old) = isr_of_one_then_leader_dies(false);
    assert_eq!(c.leader_of(&w, TP), None, "offline: no ISR member is alive");
    w.restart(old);
    w.run_until(Instant::from_millis(30_000));
    assert_eq!(c.leader_of(&w, TP), Some(old));
    assert_eq!(lost_acked(&w, &c, TP), Some(vec![]));
    assert!(w.violations().is_empty(), "{:?}", w.violations());
}

#[test]
fn a_fenced_follower_stops_holding_back_the_hw() {
    // Default replica.lag.time.max.ms (30 s): a follower caught up just before it died would
    // still count for the HW for 30 s. Once the controller fences its broker (session timeout,
    // 9 s) and drops it from the ISR, it may not rejoin (KIP-841), and acks=all resumes.
    let config = BrokerConfig::default();
    let (mut w, c) = Harness::new(5).broker_config(config.clone()).build();
    add_probe(&mut w, &c, 0, TP, Acks::All, Instant::from_millis(40_000));
    w.run_until(Instant::from_millis(3000));
    let follower = c.followers_of(&w, TP)[0];
    w.crash(follower);
    w.run_until(Instant::from_millis(14_000));
    assert!(!isr(&w, &c).contains(&follower), "fenced and dropped");
    let before = acked(&w, TP).len();
    w.run_until(Instant::from_millis(16_000));
    assert!(
        acked(&w, TP).len() > before,
        "acks=all continues after the dead follower was fenced, long before 30 s"
    );
}
