//! Each broker invariant fires on a deliberately broken engine (`test_break`) and stays
//! silent on the real code in the same scenario (issue 3 priority f).

use crate::support::*;
use kafsim_engine::broker::config::{BreakRule, BrokerConfig};
use kafsim_engine::protocol::Acks;
use kafsim_engine::{Duration, Instant, TopicId, TopicPartition};
use kafsim_sim::cluster::Cluster;
use kafsim_sim::invariants::{self, InvariantScope};
use kafsim_sim::violation::Violation;
use kafsim_sim::world::World;

const TP: TopicPartition = TopicPartition::new(TopicId(0), 0);

fn setup(seed: u64, rule: Option<BreakRule>, config: BrokerConfig) -> (World, Cluster) {
    let config = BrokerConfig {
        test_break: rule,
        ..config
    };
    Harness::new(seed)
        .broker_config(config)
        .invariants(InvariantScope {
            correlated_power_loss: false,
        })
        .build()
}

fn fired(w: &World, name: &str) -> bool {
    w.violations()
        .iter()
        .any(|v: &Violation| v.detail.starts_with(name))
}

/// A follower loses power and returns empty: once its old session has expired and it has
/// registered again, the leader sees it fetch from offset 0 (outside the ISR).
fn follower_returns_empty(rule: Option<BreakRule>) -> World {
    let (mut w, c) = setup(21, rule, BrokerConfig::default());
    add_probe(&mut w, &c, 0, TP, Acks::All, Instant::from_millis(8000));
    w.run_until(Instant::from_millis(3000));
    let f = c.followers_of(&w, TP)[0];
    w.power_loss(f, true);
    w.restart(f);
    w.run_until(Instant::from_millis(25_000));
    w
}

#[test]
fn hw_monotonic_fires_when_the_hw_may_regress() {
    assert!(fired(
        &follower_returns_empty(Some(BreakRule::AllowHwRegression)),
        "hw-monotonic"
    ));
    let w = follower_returns_empty(None);
    assert!(w.violations().is_empty(), "{:?}", w.violations());
}

/// The leader crashes; the controller elects a successor.
fn leader_crash(rule: Option<BreakRule>) -> World {
    let (mut w, c) = setup(22, rule, BrokerConfig::default());
    add_probe(&mut w, &c, 0, TP, Acks::All, Instant::from_millis(20_000));
    w.run_until(Instant::from_millis(3000));
    let leader = c.leader_of(&w, TP).unwrap();
    w.crash(leader);
    w.run_until(Instant::from_millis(15_000));
    w.restart(leader);
    w.run_until(Instant::from_millis(25_000));
    w
}

#[test]
fn one_leader_per_epoch_fires_when_epochs_are_reused() {
    assert!(fired(
        &leader_crash(Some(BreakRule::ReuseLeaderEpoch)),
        "one-leader-per-epoch"
    ));
    let w = leader_crash(None);
    assert!(w.violations().is_empty(), "{:?}", w.violations());
}

/// One follower falls out of the ISR, more records are committed, then the leader dies.
fn out_of_isr_follower_then_leader_dies(rule: Option<BreakRule>) -> World {
    let config = BrokerConfig {
        replica_lag_time_max: Duration::from_millis(3000),
        ..BrokerConfig::default()
    };
    let (mut w, c) = setup(23, rule, config);
    add_probe(&mut w, &c, 0, TP, Acks::All, Instant::from_millis(30_000));
    w.run_until(Instant::from_millis(2000));
    let leader = c.leader_of(&w, TP).unwrap();
    // The first follower in assignment order is the one an ISR-blind election picks.
    let lagging = c.followers_of(&w, TP)[0];
    w.net().partition(&[leader], &[lagging]);
    w.run_until(Instant::from_millis(9000));
    w.crash(leader);
    w.net().heal();
    w.run_until(Instant::from_millis(25_000));
    w
}

#[test]
fn leader_has_committed_fires_on_an_out_of_isr_election() {
    let w = out_of_isr_follower_then_leader_dies(Some(BreakRule::ElectOutOfIsr));
    assert!(fired(&w, "leader-has-committed"), "{:?}", w.violations());
    let w = out_of_isr_follower_then_leader_dies(None);
    assert!(w.violations().is_empty(), "{:?}", w.violations());
}

/// Followers cannot fetch; the leader is then replaced by one of them.
fn isolated_leader_then_crash(rule: Option<BreakRule>) -> World {
    let (mut w, c) = setup(24, rule, BrokerConfig::default());
    w.run_until(Instant::from_millis(2000));
    let leader = c.leader_of(&w, TP).unwrap();
    let followers = c.followers_of(&w, TP);
    w.net().partition(&[leader], &followers);
    add_probe(&mut w, &c, 0, TP, Acks::All, Instant::from_millis(20_000));
    w.run_until(Instant::from_millis(3000));
    w.crash(leader);
    w.net().heal();
    w.run_until(Instant::from_millis(20_000));
    w
}

#[test]
fn leader_has_committed_fires_when_the_hw_rule_is_skipped() {
    let w = isolated_leader_then_crash(Some(BreakRule::SkipHwRule));
    assert!(fired(&w, "leader-has-committed"), "{:?}", w.violations());
    let w = isolated_leader_then_crash(None);
    assert!(w.violations().is_empty(), "{:?}", w.violations());
}

/// acks=1 writes only the old leader has; it returns after the new leader wrote past them.
fn returning_leader_with_unreplicated_writes(rule: Option<BreakRule>) -> (World, Cluster) {
    let (mut w, c) = setup(25, rule, BrokerConfig::default());
    w.run_until(Instant::from_millis(2000));
    let leader = c.leader_of(&w, TP).unwrap();
    let followers = c.followers_of(&w, TP);
    w.net().partition(&[leader], &followers);
    add_probe(
        &mut w,
        &c,
        0,
        TP,
        Acks::Leader,
        Instant::from_millis(30_000),
    );
    w.run_until(Instant::from_millis(2500));
    w.crash(leader);
    w.net().heal();
    w.run_until(Instant::from_millis(20_000));
    w.restart(leader);
    w.run_until(Instant::from_millis(35_000));
    (w, c)
}

#[test]
fn divergence_is_found_when_followers_skip_truncation() {
    let (w, c) = returning_leader_with_unreplicated_writes(Some(BreakRule::SkipTruncation));
    assert!(!invariants::check_divergence(&w, &c).is_empty());
    let (w, c) = returning_leader_with_unreplicated_writes(None);
    assert!(invariants::check_divergence(&w, &c).is_empty());
    assert!(w.violations().is_empty(), "{:?}", w.violations());
}

#[test]
fn periodic_divergence_check_reports_once_and_agrees_with_the_full_check() {
    let (w, c) = returning_leader_with_unreplicated_writes(Some(BreakRule::SkipTruncation));
    let mut periodic = invariants::DivergenceCheck::default();
    let first = periodic.check(&w, &c);
    assert_eq!(first.len(), invariants::check_divergence(&w, &c).len());
    assert!(!first.is_empty());
    assert!(
        periodic.check(&w, &c).is_empty(),
        "each pair is reported once"
    );
}
