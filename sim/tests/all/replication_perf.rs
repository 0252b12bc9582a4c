//! Simulator speed of a replicated cluster under load (issue 3 measurement): a 3-broker
//! cluster, 6 partitions of RF 3, 24 probe producers with acks=all. Run with
//! `cargo test --release -p kafsim-sim --test replication_perf -- --ignored --nocapture`.

use crate::support::*;
use kafsim_engine::protocol::Acks;
use kafsim_engine::{Instant, TopicId, TopicPartition};

#[test]
#[ignore = "measurement; run in release"]
fn events_per_second_of_a_loaded_cluster() {
    let mut harness = Harness::new(1).partitions(6);
    if std::env::var_os("KAFSIM_PERF_INVARIANTS").is_some() {
        harness = harness.invariants(kafsim_sim::invariants::InvariantScope {
            correlated_power_loss: false,
        });
    }
    let (mut w, c) = harness.build();
    for i in 0..24 {
        let tp = TopicPartition::new(TopicId(0), i % 6);
        let probe = add_probe(&mut w, &c, i, tp, Acks::All, Instant::MAX);
        let _ = probe;
    }
    let sim_secs = 60;
    let start = std::time::Instant::now();
    w.run_until(Instant::from_millis(sim_secs * 1000));
    let wall = start.elapsed().as_secs_f64();
    let stats = w.stats();
    let acks: usize = (0..6)
        .map(|p| acked(&w, TopicPartition::new(TopicId(0), p)).len())
        .sum();
    println!(
        "events {} in {sim_secs} simulated s = {:.0} events/sim-s; wall {wall:.2}s = {:.0} events/wall-s; {acks} acks = {:.0} acked records/wall-s; {} messages",
        stats.events,
        stats.events as f64 / sim_secs as f64,
        stats.events as f64 / wall,
        acks as f64 / wall,
        stats.messages_delivered,
    );
    assert!(acks > 0);
}
