//! A restarted broker under KRaft's rules (issue 12): its registration is refused while its
//! previous incarnation's session is valid (`ClusterControlManager.registerBroker`,
//! DuplicateBrokerRegistration); the old session's expiry fences it out of every ISR; it
//! registers fenced, is unfenced once it has the metadata, and its replicas rejoin the ISR
//! through follower catch-up and AlterPartition. Before this model kafsim kept a broker that
//! re-registered within its session in every ISR and lost acknowledged records when a
//! follower lost power and the leader crashed just after.

use crate::support::*;
use kafsim_engine::broker::config::BrokerConfig;
use kafsim_engine::broker::Broker;
use kafsim_engine::history::HistoryEvent;
use kafsim_engine::protocol::Acks;
use kafsim_engine::{Duration, Instant, NodeId, TopicId, TopicPartition};
use kafsim_sim::cluster::Cluster;
use kafsim_sim::invariants::{self, InvariantScope};
use kafsim_sim::world::World;

const TP: TopicPartition = TopicPartition::new(TopicId(0), 0);

fn config() -> BrokerConfig {
    BrokerConfig {
        min_insync_replicas: 2,
        ..BrokerConfig::default()
    }
}

fn setup(seed: u64) -> (World, Cluster) {
    Harness::new(seed)
        .broker_config(config())
        .invariants(InvariantScope {
            correlated_power_loss: false,
        })
        .build()
}

fn isr(w: &World, c: &Cluster) -> Vec<NodeId> {
    isr_of(w, c, TP)
}

/// acks=all, RF 3, min.insync.replicas=2: a follower loses power for 1 s (back within its
/// session) and the leader crashes half a second after the power loss.
fn follower_power_loss_then_leader_crash(seed: u64) -> (World, Cluster) {
    let (mut w, c) = setup(seed);
    add_probe(&mut w, &c, 0, TP, Acks::All, Instant::from_millis(30_000));
    w.run_until(Instant::from_millis(5000));
    let leader = c.leader_of(&w, TP).expect("a leader");
    let follower = c.followers_of(&w, TP)[0];
    w.power_loss(follower, false);
    w.run_until(Instant::from_millis(5500));
    w.crash(leader);
    w.run_until(Instant::from_millis(6000));
    w.restart(follower);
    w.run_until(Instant::from_millis(8500));
    w.restart(leader);
    w.run_until(Instant::from_millis(35_000));
    settle(&mut w, &c, TP, Duration::from_secs(20));
    (w, c)
}

#[test]
fn a_follower_back_within_its_session_does_not_cost_acknowledged_records() {
    for seed in 1..=10 {
        let (w, c) = follower_power_loss_then_leader_crash(seed);
        assert!(acked(&w, TP).len() > 100, "seed {seed}: too few acks");
        assert_eq!(lost_acked(&w, &c, TP), Some(vec![]), "seed {seed}");
        assert!(
            w.violations().is_empty(),
            "seed {seed}: {:?}",
            w.violations()
        );
        assert!(
            invariants::check_divergence(&w, &c).is_empty(),
            "seed {seed}"
        );
    }
}

#[test]
fn a_restarted_broker_waits_out_its_old_session_then_rejoins_through_catch_up() {
    let (mut w, c) = setup(3);
    add_probe(&mut w, &c, 0, TP, Acks::All, Instant::MAX);
    w.run_until(Instant::from_millis(5000));
    let follower = c.followers_of(&w, TP)[0];
    let registered = |w: &World| w.node::<Broker>(follower).unwrap().is_registered();
    w.power_loss(follower, false);
    w.restart(follower);
    w.run_until(Instant::from_millis(12_000));
    assert!(!registered(&w), "refused while the old session is valid");
    assert!(
        isr(&w, &c).contains(&follower),
        "the controller still believes the old incarnation alive"
    );
    // The old session (9 s from its last heartbeat) ends by 14.25 s: fenced out of the
    // ISR; it registers at its next attempt and rejoins once it has caught up.
    w.run_until(Instant::from_millis(20_000));
    let fenced_out = w.history().entries().any(|e| {
        matches!(&e.event, HistoryEvent::IsrChanged { isr, .. } if !isr.contains(&follower))
            && (12_000..14_300).contains(&e.at.as_millis())
    });
    assert!(fenced_out, "fenced out of the ISR on session expiry");
    assert!(registered(&w));
    assert!(
        isr(&w, &c).contains(&follower),
        "rejoined after catching up"
    );
    assert!(w.violations().is_empty(), "{:?}", w.violations());
    assert_eq!(lost_acked(&w, &c, TP), Some(vec![]));
}
