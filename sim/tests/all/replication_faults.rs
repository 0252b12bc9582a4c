//! acks=all with min.insync.replicas=2 and clean election never loses an acknowledged record
//! under random crashes, partitions and pauses (issue 3 priority a), with every broker
//! invariant checked after every event.

use crate::support::*;
use kafsim_engine::broker::config::BrokerConfig;
use kafsim_engine::protocol::Acks;
use kafsim_engine::{Duration, Instant, NodeId, TopicId, TopicPartition};
use kafsim_sim::invariants::{self, InvariantScope};
use kafsim_sim::world::World;
use rand::{Rng, SeedableRng};

const TP: TopicPartition = TopicPartition::new(TopicId(0), 0);

/// One random fault among crash / pause / partition of a broker, lifted after a while.
fn random_faults(w: &mut World, brokers: &[NodeId], seed: u64, until: Instant) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0xfau64);
    while w.now() < until {
        w.run_for(Duration::from_millis(rng.gen_range(500..3000)));
        let b = brokers[rng.gen_range(0..brokers.len())];
        let others: Vec<NodeId> = brokers.iter().copied().filter(|x| *x != b).collect();
        let hold = Duration::from_millis(rng.gen_range(200..12_000));
        let fault = match rng.gen_range(0..3) {
            0 => HeldFault::Crash,
            1 => HeldFault::Pause,
            _ => HeldFault::Partition,
        };
        hold_fault(w, fault, b, &others, hold);
    }
}

#[test]
fn acks_all_min_insync_2_never_loses_under_crashes_partitions_pauses() {
    let mut total_acked = 0;
    for seed in 0..40u64 {
        let config = BrokerConfig {
            min_insync_replicas: 2,
            replica_lag_time_max: Duration::from_millis(10_000),
            ..BrokerConfig::default()
        };
        let (mut w, c) = Harness::new(seed)
            .broker_config(config)
            .invariants(InvariantScope {
                correlated_power_loss: false,
            })
            .build();
        add_probe(&mut w, &c, 0, TP, Acks::All, Instant::from_millis(40_000));
        random_faults(&mut w, &c.brokers, seed, Instant::from_millis(40_000));
        w.net().heal();
        for b in &c.brokers {
            w.resume(*b);
            w.restart(*b);
        }
        settle(&mut w, &c, TP, Duration::from_secs(40));
        let acked = acked(&w, TP);
        total_acked += acked.len();
        let lost = lost_acked(&w, &c, TP);
        assert_eq!(lost, Some(vec![]), "seed {seed}: acked records lost");
        let div = invariants::check_divergence(&w, &c);
        assert!(div.is_empty(), "seed {seed}: {div:?}");
        assert!(
            w.violations().is_empty(),
            "seed {seed}: {:?}",
            w.violations()
        );
    }
    assert!(
        total_acked > 20 * 200,
        "too few acks overall: {total_acked}"
    );
}

/// One faulty run, returning its trace hash and history length.
fn run_once(seed: u64) -> (u64, usize) {
    let (mut w, c) = Harness::new(seed)
        .partitions(2)
        .min_insync_replicas(2)
        .build();
    add_probe(&mut w, &c, 0, TP, Acks::All, Instant::from_millis(20_000));
    random_faults(&mut w, &c.brokers, seed, Instant::from_millis(20_000));
    w.run_until(Instant::from_millis(30_000));
    (w.trace_hash(), w.history().len())
}

#[test]
fn same_seed_same_trace() {
    assert_eq!(run_once(5), run_once(5));
    assert_ne!(run_once(5).0, run_once(6).0);
}

#[test]
fn acks_all_survives_controller_failovers_too() {
    for seed in 100..130u64 {
        let config = BrokerConfig {
            min_insync_replicas: 2,
            replica_lag_time_max: Duration::from_millis(10_000),
            ..BrokerConfig::default()
        };
        let (mut w, c) = Harness::new(seed)
            .controllers(2)
            .broker_config(config)
            .invariants(InvariantScope {
                correlated_power_loss: false,
            })
            .build();
        add_probe(&mut w, &c, 0, TP, Acks::All, Instant::from_millis(40_000));
        let mut nodes = c.brokers.clone();
        nodes.extend(c.controllers.iter().copied());
        random_faults(&mut w, &nodes, seed, Instant::from_millis(40_000));
        w.net().heal();
        for n in &nodes {
            w.resume(*n);
            w.restart(*n);
        }
        settle(&mut w, &c, TP, Duration::from_secs(40));
        assert_eq!(
            lost_acked(&w, &c, TP),
            Some(vec![]),
            "seed {seed}: acked records lost"
        );
        assert!(
            invariants::check_divergence(&w, &c).is_empty(),
            "seed {seed}"
        );
        assert!(
            w.violations().is_empty(),
            "seed {seed}: {:?}",
            w.violations()
        );
        // A restarted controller waits a session timeout for a sync before taking over.
        w.run_for(Duration::from_secs(12));
        assert!(
            c.active_controller(&w).is_some(),
            "seed {seed}: no active controller"
        );
    }
}
