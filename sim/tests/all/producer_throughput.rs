//! Producer-side simulator speed (issue 4 measurement): one Java-profile producer at 100 000
//! records/s into a 3-broker cluster (6 partitions, RF 3, acks=all), for linger.ms 0 vs 5 and
//! batch.size 16 KiB vs 1 MiB. Prints records acknowledged per wall second. Run with
//! `cargo test --release -p kafsim-sim --test producer_throughput -- --ignored --nocapture`.

use crate::harness::{add_producer, Harness};
use kafsim_engine::config::{ConfigValue, Configurable};
use kafsim_engine::producer::{Producer, ProducerConfig};
use kafsim_engine::Instant;

fn measure(linger_ms: i64, batch_size: i64) {
    let (mut w, c) = Harness::new(1).partitions(6).build();
    let mut config = ProducerConfig::for_client("java", Some("3.7")).unwrap();
    config
        .set("linger.ms", &ConfigValue::Int(linger_ms))
        .unwrap();
    config
        .set("batch.size", &ConfigValue::Int(batch_size))
        .unwrap();
    config.validate().unwrap();
    let p = add_producer(&mut w, &c, config, 100_000.0, 1000, 4_000);
    w.run_until(Instant::from_millis(1_000)); // cluster start-up
    let start = std::time::Instant::now();
    w.run_until(Instant::from_millis(5_000));
    let wall = start.elapsed().as_secs_f64();
    let stats = w.node::<Producer>(p).unwrap().stats().clone();
    println!(
        "linger.ms={linger_ms:>2} batch.size={batch_size:>7}: {} acked in {wall:.2} wall s = {:.0} records/wall-s; {} produce requests; {} events",
        stats.acked,
        stats.acked as f64 / wall,
        stats.produce_requests,
        w.stats().events,
    );
    assert_eq!(stats.acked, stats.invoked);
}

#[test]
#[ignore = "measurement; run in release"]
fn producer_throughput_linger_and_batch_size() {
    for (linger, batch) in [(0, 16_384), (5, 16_384), (0, 1 << 20), (5, 1 << 20)] {
        measure(linger, batch);
    }
}
