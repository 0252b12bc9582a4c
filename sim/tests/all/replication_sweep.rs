//! A no-panic sweep over mixed configurations (legacy and leader-epoch protocols, unclean
//! election, flush policies, two controllers: a metadata quorum of two, which a fault of
//! either controller halts) and every fault kind, power loss included. Slow in debug:
//! `cargo test --release -p kafsim-sim --test all replication_sweep -- --ignored` runs all
//! 300 seeds and names every seed that panicked, with its message; every tenth seed and the
//! seeds that once panicked run in the regular suite.

use crate::support::*;
use kafsim_engine::broker::config::{BrokerConfig, ReplicationProtocol};
use kafsim_engine::protocol::Acks;
use kafsim_engine::{Duration, Instant, NodeId, TopicId, TopicPartition};
use kafsim_sim::world::World;
use rand::{Rng, SeedableRng};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Seeds of the sweep.
const SEEDS: u64 = 300;

/// The cluster of `seed`: its configuration and its probes, not yet run.
fn sweep_world(seed: u64) -> (World, Vec<NodeId>) {
    let config = BrokerConfig {
        replication_protocol: if seed.is_multiple_of(2) {
            ReplicationProtocol::HighWatermark
        } else {
            ReplicationProtocol::LeaderEpoch
        },
        unclean_leader_election: seed.is_multiple_of(3),
        flush_interval_messages: seed.is_multiple_of(5).then_some(1),
        ..BrokerConfig::default()
    };
    let (mut w, c) = Harness::new(seed)
        .controllers(2)
        .partitions(3)
        .replication_factor(2)
        .offsets_partitions(3)
        .broker_config(config)
        .build();
    for p in 0..3 {
        add_probe(
            &mut w,
            &c,
            p,
            TopicPartition::new(TopicId(0), p),
            if p == 0 { Acks::Leader } else { Acks::All },
            Instant::from_millis(40_000),
        );
    }
    let mut nodes = c.brokers.clone();
    nodes.extend(c.controllers.iter().copied());
    (w, nodes)
}

/// 40 s of held faults drawn from `seed` (one node at a time), then heal and 30 s more.
fn sweep_faults(w: &mut World, seed: u64, nodes: &[NodeId]) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    while w.now() < Instant::from_millis(40_000) {
        w.run_for(Duration::from_millis(rng.gen_range(200..3000)));
        let b = nodes[rng.gen_range(0..nodes.len())];
        let others: Vec<NodeId> = nodes.iter().copied().filter(|x| *x != b).collect();
        let hold = Duration::from_millis(rng.gen_range(100..12_000));
        let fault = match rng.gen_range(0..4) {
            0 => HeldFault::Crash,
            1 => HeldFault::Pause,
            2 => HeldFault::PowerLoss,
            _ => HeldFault::Partition,
        };
        hold_fault(w, fault, b, &others, hold);
    }
    w.net().heal();
    for n in nodes {
        w.resume(*n);
        w.restart(*n);
    }
    w.run_for(Duration::from_secs(30));
}

/// The panic message of `seed`'s run, if the engine panicked.
fn sweep_panic(seed: u64) -> Option<String> {
    let (mut w, nodes) = sweep_world(seed);
    let err = catch_unwind(AssertUnwindSafe(|| sweep_faults(&mut w, seed, &nodes))).err()?;
    Some(
        err.downcast_ref::<String>()
            .cloned()
            .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "a panic without a message".to_string()),
    )
}

/// The seeds of `seeds` that panicked, with their messages.
fn panicked(seeds: impl Iterator<Item = u64>) -> Vec<(u64, String)> {
    seeds
        .filter_map(|seed| sweep_panic(seed).map(|m| (seed, m)))
        .collect()
}

#[test]
// The whole sweep takes about 26 s in release on one core (2026-12-07) and several times that
// in a debug build, so it is left to `--ignored`; every tenth seed runs in the regular suite.
#[ignore = "300 seeds: run in release with --ignored"]
fn no_panic_under_mixed_configurations_and_faults() {
    let failed = panicked(0..SEEDS);
    assert!(
        failed.is_empty(),
        "{} seeds panicked: {failed:#?}",
        failed.len()
    );
}

/// Every tenth seed of the sweep (30 runs).
#[test]
fn no_panic_under_mixed_configurations_and_faults_every_tenth_seed() {
    let failed = panicked((0..SEEDS).step_by(10));
    assert!(
        failed.is_empty(),
        "{} seeds panicked: {failed:#?}",
        failed.len()
    );
}

/// Seed 167 had a restarted controller take over with the controller epoch its cut-off peer
/// held (`replication_controller::a_controller_restarted_from_disk_takes_over_above_the_
/// epoch_brokers_follow` scripts the chain); a broker was then told two leaders for one
/// leader epoch.
#[test]
fn seed_167_no_two_controllers_share_an_epoch() {
    assert_eq!(sweep_panic(167), None);
}

/// Seed 195 had the active controller publish a leader epoch after its last sync reached the
/// standby, which then took over without it and gave that epoch to another leader: a broker
/// was told two leaders for one epoch (the controller's known limit before the metadata
/// quorum; `replication_controller::a_controller_cut_off_from_its_quorum_publishes_nothing`
/// scripts the chain).
#[test]
fn seed_195_a_controller_publishes_only_what_its_quorum_holds() {
    assert_eq!(sweep_panic(195), None);
}
