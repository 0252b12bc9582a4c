//! A group consumes everything a producer acknowledged (issue 5 baseline).

use crate::consumer_support::*;
use kafsim_engine::app::HandlerSpec;
use kafsim_engine::{Duration, Instant};
use kafsim_sim::cluster::Cluster;
use kafsim_sim::world::World;

/// Three brokers and a producer of 10 keys sending every 10 ms for 6 s.
fn producing_cluster(seed: u64) -> (World, Cluster) {
    let (mut w, c) = consumer_harness(seed, 3).build();
    add_producer(
        &mut w,
        &c,
        0,
        10,
        Duration::from_millis(10),
        Instant::from_millis(6000),
    );
    (w, c)
}

#[test]
fn one_member_sinks_every_acknowledged_record() {
    let (mut w, c) = producing_cluster(1);
    let cfg = config("sarama", &[("auto.offset.reset", text("earliest"))]);
    add_consumer(&mut w, &c, 0, 0, cfg, HandlerSpec::default());
    w.run_until(Instant::from_millis(15_000));
    let acked = acked(&w);
    assert!(acked.len() > 300, "only {} acks", acked.len());
    assert_eq!(sink_lost(&w, 0), vec![]);
    assert_eq!(sink_duplicates(&w, 0), vec![]);
    let a = assigned(&w, 0);
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(a[0].2.len(), 3);
}

fn crashy_run(seed: u64) -> (u64, u64, usize) {
    let (mut w, c) = producing_cluster(seed);
    let cfg = config("java", &[("auto.offset.reset", text("earliest"))]);
    let h = HandlerSpec {
        process_time: (Duration::from_millis(1), Duration::from_millis(9)),
        workers: 3,
        ..HandlerSpec::default()
    };
    let a = add_consumer(&mut w, &c, 0, 0, cfg.clone(), h.clone());
    add_consumer(&mut w, &c, 0, 1, cfg, h);
    w.run_until(Instant::from_millis(4000));
    w.crash(a);
    w.run_until(Instant::from_millis(5000));
    w.restart(a);
    w.run_until(Instant::from_millis(20_000));
    (w.trace_hash(), w.stats().events, w.history().len())
}

#[test]
fn the_same_seed_replays_the_same_run() {
    let first = crashy_run(7);
    assert_eq!(first, crashy_run(7));
    assert_ne!(
        first.0,
        crashy_run(8).0,
        "another seed draws other processing times"
    );
}
