//! The group's shared database (sim/src/database.rs) as members use it: a unique constraint
//! holds across members and across a crashed database; a plain table retried after a
//! statement timeout stores a record twice; the offsets-in-sink guard and stored offsets
//! keep a group exactly-once across member crashes and a zombie member.

use crate::consumer_support::*;
use kafsim_engine::app::{CommitMode, HandlerSpec, SinkKind};
use kafsim_engine::config::ConfigValue;
use kafsim_engine::history::HistoryEvent;
use kafsim_engine::{Duration, Instant, NodeId};
use kafsim_sim::database::Database;
use kafsim_sim::world::World;

const MS: fn(u64) -> Duration = Duration::from_millis;

/// 20 s of load into a 3-member group with `sink`, with `faults(world, members, database)`
/// applied at 5 s, then a drain to 60 s.
fn run(seed: u64, sink: SinkKind, faults: impl Fn(&mut World, &[NodeId], NodeId)) -> World {
    let (mut w, c) = consumer_harness(seed, 3).build();
    add_producer(&mut w, &c, 0, 16, MS(10), Instant::from_millis(20_000));
    let cfg = config(
        "java",
        &[
            ("auto.offset.reset", text("earliest")),
            ("enable.auto.commit", ConfigValue::Bool(false)),
            ("session.timeout.ms", int(6_000)),
            ("heartbeat.interval.ms", int(2_000)),
        ],
    );
    let h = HandlerSpec {
        process_time: (MS(1), MS(3)),
        commit: CommitMode::Sync,
        sink,
        ..HandlerSpec::default()
    };
    let members: Vec<NodeId> = (0..3)
        .map(|m| add_consumer_with_database(&mut w, &c, 0, m, cfg.clone(), h.clone()))
        .collect();
    let db = database(&mut w, 0, sink);
    w.run_until(Instant::from_millis(5_000));
    faults(&mut w, &members, db);
    w.run_until(Instant::from_millis(60_000));
    w
}

fn refused(w: &World) -> usize {
    count_events(w, |e| matches!(e, HistoryEvent::SinkRefused { .. }))
}

/// The member crashes at 5 s (restarting 2 s later), the database crashes at 8 s (restarting
/// 2 s later), the database pauses past the statement timeout at 12 s for 12 s.
fn crashes_and_a_long_database_pause(w: &mut World, members: &[NodeId], db: NodeId) {
    w.crash(members[1]);
    w.run_for(MS(2_000));
    w.restart(members[1]);
    w.run_for(MS(1_000));
    w.crash(db);
    w.run_for(MS(2_000));
    w.restart(db);
    w.run_for(MS(2_000));
    w.pause(db);
    w.run_for(MS(12_000));
    w.resume(db);
}

#[test]
fn a_unique_constraint_holds_across_members_and_a_crashed_database() {
    for seed in 1..=3 {
        let w = run(seed, SinkKind::Dedupe, crashes_and_a_long_database_pause);
        assert!(
            acked(&w).len() > 1000,
            "seed {seed}: {} acks",
            acked(&w).len()
        );
        assert_eq!(sink_lost(&w, 0), vec![], "seed {seed}: lost");
        assert_eq!(sink_duplicates(&w, 0), vec![], "seed {seed}: duplicates");
        // The retries after the pause met rows the paused database had committed.
        assert!(refused(&w) > 0, "seed {seed}: nothing refused");
        let db = w.node_ids().find(|n| w.name(*n) == "database:g0").unwrap();
        assert_eq!(
            w.node::<Database>(db).unwrap().rows() as usize,
            acked(&w).len(),
            "seed {seed}: one row per acknowledged record"
        );
    }
}

#[test]
fn a_plain_table_stores_a_retried_statement_twice() {
    // Statements the paused database committed after their members gave up on them are
    // stored again by the retry: what a plain INSERT retried after a timeout does.
    let w = run(1, SinkKind::Plain, crashes_and_a_long_database_pause);
    assert_eq!(sink_lost(&w, 0), vec![]);
    assert!(
        !sink_duplicates(&w, 0).is_empty(),
        "no duplicate in a plain table"
    );
    assert_eq!(refused(&w), 0);
}

#[test]
fn offsets_in_sink_stays_exactly_once_with_a_zombie_member() {
    for seed in 1..=3 {
        // Member 1 pauses past its session timeout and comes back still holding records of
        // its last poll; the others crash once each.
        let w = run(seed, SinkKind::OffsetsInSink, |w, members, db| {
            w.pause(members[1]);
            w.run_for(MS(9_000));
            w.resume(members[1]);
            w.crash(members[0]);
            w.crash(db);
            w.run_for(MS(2_000));
            w.restart(members[0]);
            w.restart(db);
            w.crash(members[2]);
            w.run_for(MS(1_000));
            w.restart(members[2]);
        });
        assert!(acked(&w).len() > 1000, "seed {seed}");
        assert_eq!(sink_lost(&w, 0), vec![], "seed {seed}: lost");
        assert_eq!(sink_duplicates(&w, 0), vec![], "seed {seed}: duplicates");
        // Resuming from the stored offsets is a seek.
        let seeks = count_events(&w, |e| matches!(e, HistoryEvent::PositionReset { .. }));
        assert!(seeks > 0, "seed {seed}: never resumed from the database");
    }
}
