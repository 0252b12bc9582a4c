//! Simulator speed on the standard workload (DESIGN §7): records simulated per wall second
//! with every check on (engine invariants after every event, the history checkers and the
//! replica divergence check at the end). `benches/workloads/standard.toml`: 3 brokers, a
//! 12-partition topic with replication factor 3, 4 producers, one consumer group of 4.
//!
//! `cargo bench --bench simulator`: the throughput line is records (elements) per second.
//! `standard-streaming` runs it as `kafsim bench` does without `--check` (the history
//! streamed away, no checkers). `benches/PERFORMANCE.md` has the figures and commands.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kafsim_sim::runner::{prepare, run_seed, RunOptions};
use kafsim_sim::scenario;
use std::path::Path;

/// The allocator of the `kafsim` binary, so the bench measures what users run.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn standard(c: &mut Criterion) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/workloads/standard.toml");
    let scenario = scenario::load(&path).expect("the standard workload parses");
    let prepared = prepare(scenario).expect("the standard workload is valid");
    let opts = RunOptions::default();
    // One run to learn how many records a run simulates (the same every time: one seed).
    let first = run_seed(&prepared, 1, &opts);
    assert!(
        first.result.violations.is_empty(),
        "the standard workload must run clean: {:?}",
        first.result.violations
    );
    let records = first.result.stats.records_produced;
    let mut group = c.benchmark_group("simulator");
    group.sample_size(10);
    group.throughput(Throughput::Elements(records));
    group.bench_function("standard-3b-rf3-12p-4prod-4cons", |b| {
        b.iter(|| run_seed(&prepared, 1, &opts).result.stats.records_produced)
    });
    // The same run as `kafsim bench` does it without `--check`: the history streamed away,
    // no checkers or invariants (what the simulation itself costs).
    let streaming = RunOptions {
        stream: true,
        ..RunOptions::default()
    };
    group.bench_function("standard-streaming", |b| {
        b.iter(|| {
            run_seed(&prepared, 1, &streaming)
                .result
                .stats
                .records_produced
        })
    });
    group.finish();
}

criterion_group!(benches, standard);
criterion_main!(benches);
