//! Producers do not start in step. Each producer's application makes its first send at an
//! instant of its first second drawn per seed (`ProducerSpec::start_phase`). With every
//! producer of every seed on one send lattice from instant zero, a scripted fault "at 8s"
//! met the same phase of every batch cycle in every seed: 20 seeds of a scripted acks=1
//! leader crash tried one interleaving 20 times.

use kafsim_engine::history::HistoryEvent;
use kafsim_engine::Instant;
use kafsim_sim::runner::{prepare, run_seed, RunOptions};
use kafsim_sim::scenario;

const SCENARIO: &str = r#"
name = "two-producers"
duration = "3s"

[cluster]
brokers = 3

[[topics]]
name = "clicks"
partitions = 3
replication_factor = 3

[[producers]]
count = 2
client = "sarama"
topic = "clicks"
rate = 800
keys = 10
"#;

/// The `scheduled` instant of each producer's first send in one seed.
fn first_sends(seed: u64) -> Vec<Instant> {
    first_sends_with(seed, false)
}

fn first_sends_with(seed: u64, producers_in_step: bool) -> Vec<Instant> {
    let s = scenario::parse("test.toml", SCENARIO).unwrap_or_else(|e| panic!("{e}"));
    let p = prepare(s).unwrap_or_else(|e| panic!("{e}"));
    let opts = RunOptions {
        keep_history: true,
        producers_in_step,
        ..RunOptions::default()
    };
    let out = run_seed(&p, seed, &opts);
    let mut first: Vec<Option<Instant>> = vec![None; 2];
    for e in out.history.as_ref().expect("kept").entries() {
        if let HistoryEvent::SendInvoke {
            producer,
            scheduled: Some(at),
            ..
        } = &e.event
        {
            first[*producer as usize].get_or_insert(*at);
        }
    }
    first.into_iter().map(|f| f.expect("a send")).collect()
}

#[test]
fn each_producer_of_each_seed_starts_at_its_own_instant_of_the_first_second() {
    let mut seen: Vec<Instant> = Vec::new();
    for seed in 1..=6 {
        let firsts = first_sends(seed);
        assert_ne!(
            firsts[0], firsts[1],
            "seed {seed}: the two producers in step"
        );
        for at in firsts {
            assert!(
                at < Instant::from_millis(1_000),
                "seed {seed}: first send at {at}"
            );
            assert!(!seen.contains(&at), "seed {seed}: first send at {at} again");
            seen.push(at);
        }
    }
    // The same seed, the same instants.
    assert_eq!(first_sends(3), first_sends(3));
}

/// A hand-timed test can ask for the old lattice: every producer's first send at instant zero.
#[test]
fn in_step_producers_all_send_first_at_instant_zero() {
    for seed in [1, 2] {
        assert_eq!(first_sends_with(seed, true), vec![Instant::ZERO; 2]);
    }
}
