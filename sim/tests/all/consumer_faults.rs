//! Randomized faults against a group that commits after processing: broker crashes (data
//! leaders and the coordinator alike) and member crashes must never lose an acknowledged
//! record from the sink, only re-deliver; and nothing may panic.

use crate::consumer_support::*;
use kafsim_engine::app::{CommitMode, HandlerSpec};
use kafsim_engine::config::ConfigValue;
use kafsim_engine::{Duration, Instant, NodeId};
use kafsim_sim::world::World;
use rand::{Rng, SeedableRng};

const MS: fn(u64) -> Duration = Duration::from_millis;
/// Seeds per configuration (40 per configuration were run while developing, all clean).
const SEEDS: u64 = 4;

/// 40 s of load with a fault every 3-8 s (a broker or a member crashes, restarting 2-6 s
/// later), then 40 s of drain. Returns the world.
fn run(seed: u64, client: &str, commit: CommitMode) -> World {
    run_with(seed, client, commit, &[])
}

fn run_with(seed: u64, client: &str, commit: CommitMode, extra: &[(&str, ConfigValue)]) -> World {
    let (mut w, c) = consumer_harness(seed, 4).build();
    add_producer(&mut w, &c, 0, 16, MS(10), Instant::from_millis(40_000));
    let mut overrides = vec![
        ("auto.offset.reset", text("earliest")),
        ("session.timeout.ms", int(10_000)),
    ];
    if commit != CommitMode::Auto {
        overrides.push(("enable.auto.commit", ConfigValue::Bool(false)));
    }
    overrides.extend(extra.iter().cloned());
    let cfg = config(client, &overrides);
    let h = HandlerSpec {
        process_time: (MS(1), MS(4)),
        commit,
        ..HandlerSpec::default()
    };
    let members: Vec<NodeId> = (0..3)
        .map(|m| add_consumer(&mut w, &c, 0, m, cfg.clone(), h.clone()))
        .collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let load_end = Instant::from_millis(40_000);
    while w.now() < load_end {
        w.run_for(MS(rng.gen_range(3_000..8_000)));
        let victim = if rng.gen_bool(0.5) {
            c.brokers[rng.gen_range(0..c.brokers.len())]
        } else {
            members[rng.gen_range(0..members.len())]
        };
        w.crash(victim);
        w.run_for(MS(rng.gen_range(2_000..6_000)));
        w.restart(victim);
    }
    w.run_until(Instant::from_millis(80_000));
    w
}

/// Assert that no acknowledged record missed the sink; returns the generations the group went
/// through (callers check that the faults did disturb the group).
fn check(w: &World, what: &str) -> usize {
    let generations: std::collections::BTreeSet<i32> =
        assigned(w, 0).iter().map(|(_, g, _)| *g).collect();
    assert!(
        acked(w).len() > 1000,
        "{what}: only {} acks",
        acked(w).len()
    );
    let lost = sink_lost(w, 0);
    assert!(
        lost.is_empty(),
        "{what} seed {}: {} acknowledged records never reached the sink, first {:?}",
        w.seed(),
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    generations.len()
}

/// Over a configuration's seeds, the faults must have caused rebalances.
fn assert_disturbed(generations: usize, what: &str) {
    assert!(
        generations > 2 * SEEDS as usize,
        "{what}: the faults barely rebalanced the group ({generations} generations)"
    );
}

#[test]
fn java_auto_commit_with_a_synchronous_handler_survives_crashes() {
    let generations: usize = (0..SEEDS)
        .map(|seed| check(&run(seed, "java", CommitMode::Auto), "java auto"))
        .sum();
    assert_disturbed(generations, "java auto");
}

#[test]
fn sarama_sync_commit_after_processing_survives_crashes() {
    let generations: usize = (0..SEEDS)
        .map(|seed| check(&run(100 + seed, "sarama", CommitMode::Sync), "sarama sync"))
        .sum();
    assert_disturbed(generations, "sarama sync");
}

#[test]
fn cooperative_sticky_and_librdkafka_groups_survive_crashes() {
    let coop = [("partition.assignment.strategy", text("cooperative-sticky"))];
    let (mut coop_generations, mut rdk_generations) = (0, 0);
    for seed in 0..SEEDS {
        let w = run_with(200 + seed, "java", CommitMode::Auto, &coop);
        coop_generations += check(&w, "java cooperative");
        rdk_generations += check(
            &run(300 + seed, "librdkafka", CommitMode::Auto),
            "librdkafka",
        );
    }
    assert_disturbed(coop_generations, "java cooperative");
    assert_disturbed(rdk_generations, "librdkafka");
}
