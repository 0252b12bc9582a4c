//! A no-panic sweep over mixed configurations (legacy and leader-epoch protocols, unclean
//! election, flush policies, two controllers) and every fault kind, power loss included.
//! Slow in debug: `cargo test --release -p kafsim-sim --test all replication_sweep -- --ignored`
//! runs it and names every seed that panicked, with its message.

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

#[test]
// Ignored while seed 195 panics: the controller's known limit (no quorum; module doc of
// `kafsim_engine::controller`). About 20 s in release.
#[ignore = "seed 195 still panics (controller known limit); 300 seeds"]
fn no_panic_under_mixed_configurations_and_faults() {
    let failed: Vec<(u64, String)> = (0..SEEDS)
        .filter_map(|seed| sweep_panic(seed).map(|m| (seed, m)))
        .collect();
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
