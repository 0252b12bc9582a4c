//! Groups, worker pools and failure handling (issue 5 parts 1, 6, 7): key order under worker
//! routing, members without partitions, independent groups, dead letters, slow consumers.

use crate::consumer_support::*;
use kafsim_engine::app::{HandlerSpec, OnFailure, Routing};
use kafsim_engine::consumer::ConsumerConfig;
use kafsim_engine::history::HistoryEvent;
use kafsim_engine::{Duration, Instant, ValueId};
use kafsim_sim::world::World;
use std::collections::BTreeSet;

const MS: fn(u64) -> Duration = Duration::from_millis;

fn java() -> ConsumerConfig {
    config(
        "java",
        &[
            ("auto.offset.reset", text("earliest")),
            ("session.timeout.ms", int(10_000)),
        ],
    )
}

fn pool_run(routing: Routing) -> World {
    let (mut w, c) = consumer_harness(21, 2).build();
    add_producer(&mut w, &c, 0, 8, MS(10), Instant::from_millis(4000));
    let h = HandlerSpec {
        process_time: (MS(1), MS(30)),
        workers: 4,
        routing,
        ..HandlerSpec::default()
    };
    add_consumer(&mut w, &c, 0, 0, java(), h);
    w.run_until(Instant::from_millis(20_000));
    assert_eq!(sink_lost(&w, 0), vec![]);
    w
}

#[test]
fn round_robin_workers_break_key_order() {
    let w = pool_run(Routing::RoundRobin);
    assert!(
        key_order_violations(&w, 0) > 0,
        "round-robin workers reorder a key's records"
    );
}

#[test]
fn key_routed_workers_keep_key_order() {
    let w = pool_run(Routing::Key);
    assert_eq!(key_order_violations(&w, 0), 0);
}

#[test]
fn members_beyond_the_partition_count_are_assigned_nothing() {
    let (mut w, c) = consumer_harness(22, 3).build();
    add_producer(&mut w, &c, 0, 6, MS(10), Instant::from_millis(4000));
    for m in 0..5 {
        add_consumer(&mut w, &c, 0, m, java(), HandlerSpec::default());
    }
    w.run_until(Instant::from_millis(15_000));
    let a = assigned(&w, 0);
    let last_gen = a.iter().map(|(_, g, _)| *g).max().expect("assignments");
    let last: Vec<_> = a.iter().filter(|(_, g, _)| *g == last_gen).collect();
    assert_eq!(
        last.len(),
        5,
        "every member applied the last generation: {a:?}"
    );
    let empty = last.iter().filter(|(_, _, p)| p.is_empty()).count();
    assert_eq!(empty, 2, "two members idle: {last:?}");
    let owned: usize = last.iter().map(|(_, _, p)| p.len()).sum();
    assert_eq!(owned, 3);
    assert_eq!(sink_lost(&w, 0), vec![]);
}

#[test]
fn two_groups_on_one_topic_each_receive_every_record() {
    let (mut w, c) = consumer_harness(23, 3).build();
    add_producer(&mut w, &c, 0, 6, MS(10), Instant::from_millis(4000));
    for g in 0..2 {
        for m in 0..2 {
            add_consumer(&mut w, &c, g, m, java(), HandlerSpec::default());
        }
    }
    w.run_until(Instant::from_millis(15_000));
    assert!(acked(&w).len() > 300);
    assert_eq!(sink_lost(&w, 0), vec![]);
    assert_eq!(sink_lost(&w, 1), vec![]);
    // Within a group, each record went to one member only.
    assert_eq!(sink_duplicates(&w, 0), vec![]);
    assert_eq!(sink_duplicates(&w, 1), vec![]);
}

fn failing_run(on_failure: OnFailure) -> World {
    let (mut w, c) = consumer_harness(24, 2).topic("dlq", 1, 3).build();
    add_producer(&mut w, &c, 0, 6, MS(10), Instant::from_millis(4000));
    let h = HandlerSpec {
        process_time: (MS(1), MS(1)),
        failure_rate: 0.1,
        on_failure,
        ..HandlerSpec::default()
    };
    add_consumer(&mut w, &c, 0, 0, java(), h);
    w.run_until(Instant::from_millis(15_000));
    assert!(acked(&w).len() > 300);
    w
}

fn dead_letters(w: &World) -> BTreeSet<ValueId> {
    w.history()
        .entries()
        .filter_map(|e| match &e.event {
            HistoryEvent::DeadLetter { value, .. } => Some(*value),
            _ => None,
        })
        .collect()
}

#[test]
fn failed_records_end_in_the_dead_letter_topic_never_lost() {
    let w = failing_run(OnFailure::Dlq);
    let dlq = dead_letters(&w);
    assert!(dlq.len() > 10, "only {} dead letters", dlq.len());
    let lost: Vec<ValueId> = sink_lost(&w, 0)
        .into_iter()
        .filter(|v| !dlq.contains(v))
        .collect();
    assert_eq!(lost, vec![], "neither in the sink nor dead-lettered");
    // Every dead letter is in the dlq topic's log (acks=all).
    let c_dlq = kafsim_engine::TopicPartition::new(kafsim_engine::TopicId(1), 0);
    let in_log: BTreeSet<ValueId> = w
        .node_ids()
        .filter_map(|n| w.node::<kafsim_engine::broker::Broker>(n))
        .filter_map(|b| b.partition(c_dlq))
        .filter(|p| p.is_leader())
        .flat_map(|p| {
            (0..p.high_watermark)
                .filter_map(|o| p.log.record_at(o).map(|r| r.value))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(
        dlq.is_subset(&in_log),
        "a dead letter is missing from the dlq topic"
    );
}

#[test]
fn skipped_failures_are_lost_to_the_sink() {
    let w = failing_run(OnFailure::Skip);
    assert!(dead_letters(&w).is_empty());
    assert!(
        sink_lost(&w, 0).len() > 10,
        "skipped records never reach the sink"
    );
}

#[test]
fn retried_failures_all_reach_the_sink() {
    let w = failing_run(OnFailure::Retry);
    assert_eq!(sink_lost(&w, 0), vec![]);
}

/// A handler slower than max.poll.interval.ms: the member leaves the group mid-batch, another
/// member takes its partitions and the records are delivered again.
fn slow_run(max_poll_interval_ms: i64) -> World {
    slow_run_of("java", max_poll_interval_ms)
}

fn slow_run_of(client: &str, max_poll_interval_ms: i64) -> World {
    let (mut w, c) = consumer_harness(25, 2).build();
    add_producer(&mut w, &c, 0, 6, MS(10), Instant::from_millis(3000));
    let cfg = config(
        client,
        &[
            ("auto.offset.reset", text("earliest")),
            ("session.timeout.ms", int(10_000)),
            ("max.poll.interval.ms", int(max_poll_interval_ms)),
            ("max.poll.records", int(100)),
        ],
    );
    let slow = HandlerSpec {
        process_time: (MS(50), MS(50)),
        ..HandlerSpec::default()
    };
    add_consumer(&mut w, &c, 0, 0, cfg.clone(), slow.clone());
    add_consumer(&mut w, &c, 0, 1, cfg, slow);
    w.run_until(Instant::from_millis(60_000));
    w
}

#[test]
fn exceeding_max_poll_interval_rebalances_redelivers_and_livelocks() {
    // 100 records x 50 ms = 5 s per poll batch > 2 s: each member leaves mid-batch, its
    // commits fail, and the next owner starts the same batch again.
    let w = slow_run(2000);
    let generations: BTreeSet<i32> = assigned(&w, 0).iter().map(|(_, g, _)| *g).collect();
    assert!(
        generations.len() > 2,
        "repeated rebalances: {generations:?}"
    );
    assert!(
        !sink_duplicates(&w, 0).is_empty(),
        "re-delivered records are processed twice"
    );
    let polls = count_events(&w, |e| matches!(e, HistoryEvent::Poll { .. }));
    let writes = sink_writes(&w, 0).len();
    assert!(
        polls > 300,
        "the same batches are polled again and again ({polls} polls)"
    );
    assert!(
        writes >= polls / 2,
        "members keep processing after leaving: {writes} writes"
    );
    assert!(
        !sink_lost(&w, 0).is_empty(),
        "the group never gets past its first batches (a stall after the drain)"
    );
}

#[test]
fn polling_within_max_poll_interval_keeps_one_generation() {
    let w = slow_run(30_000);
    assert_eq!(sink_lost(&w, 0), vec![]);
    let generations: BTreeSet<i32> = assigned(&w, 0).iter().map(|(_, g, _)| *g).collect();
    assert_eq!(generations.len(), 1, "{:?}", assigned(&w, 0));
    assert_eq!(sink_duplicates(&w, 0), vec![]);
}

/// Two members consume 6 partitions; a third joins at 10 s. Returns the world and the third
/// member's index.
fn join_run(strategy: &str) -> World {
    let (mut w, c) = consumer_harness(26, 6).build();
    add_producer(&mut w, &c, 0, 12, MS(10), Instant::from_millis(20_000));
    let cfg = config(
        "java",
        &[
            ("auto.offset.reset", text("earliest")),
            ("session.timeout.ms", int(10_000)),
            ("partition.assignment.strategy", text(strategy)),
        ],
    );
    add_consumer(&mut w, &c, 0, 0, cfg.clone(), HandlerSpec::default());
    add_consumer(&mut w, &c, 0, 1, cfg.clone(), HandlerSpec::default());
    w.run_until(Instant::from_millis(10_000));
    add_consumer(&mut w, &c, 0, 2, cfg, HandlerSpec::default());
    w.run_until(Instant::from_millis(30_000));
    assert_eq!(sink_lost(&w, 0), vec![]);
    w
}

fn assignments_of(w: &World, member: u32) -> Vec<(i32, BTreeSet<kafsim_engine::TopicPartition>)> {
    assigned(w, 0)
        .into_iter()
        .filter(|(m, _, _)| *m == member)
        .map(|(_, g, p)| (g, p.into_iter().collect()))
        .collect()
}

#[test]
fn cooperative_sticky_rebalances_in_two_phases_without_revoking_kept_partitions() {
    let w = join_run("cooperative-sticky");
    let newcomer = assignments_of(&w, 2);
    assert!(newcomer.len() >= 2, "{newcomer:?}");
    assert!(
        newcomer[0].1.is_empty(),
        "first phase only revokes: {newcomer:?}"
    );
    assert_eq!(newcomer.last().unwrap().1.len(), 2, "{newcomer:?}");
    for member in 0..2 {
        let a = assignments_of(&w, member);
        for pair in a.windows(2) {
            let (before, after) = (&pair[0].1, &pair[1].1);
            assert!(
                after.is_subset(before) || before.is_subset(after),
                "member {member} lost and gained partitions in one generation: {a:?}"
            );
        }
    }
}

#[test]
fn eager_range_moves_partitions_in_one_generation() {
    let w = join_run("range");
    let newcomer = assignments_of(&w, 2);
    assert_eq!(newcomer.len(), 1, "{newcomer:?}");
    assert_eq!(
        newcomer[0].1.len(),
        2,
        "the newcomer gets its share at once"
    );
}

#[test]
fn sarama_has_no_poll_deadline_so_a_slow_handler_keeps_its_generation() {
    // The same slow handler as above, with Rebalance.Timeout 2 s: without a membership change
    // nothing asks the members to rejoin, so they are never dropped.
    let w = slow_run_of("sarama", 2000);
    assert_eq!(sink_lost(&w, 0), vec![]);
    let generations: BTreeSet<i32> = assigned(&w, 0).iter().map(|(_, g, _)| *g).collect();
    assert_eq!(generations.len(), 1, "{:?}", assigned(&w, 0));
}

/// One member of `client` over 3 partitions, 20 ms per record, fed 100 records/s for 6 s:
/// one loop processes 50 records/s, three side by side 150 records/s. Returns the world at
/// 8 s with the member's node.
fn slow_handler_run(client: &str) -> (World, kafsim_engine::NodeId) {
    let (mut w, c) = consumer_harness(31, 3).build();
    add_producer(&mut w, &c, 0, 12, MS(10), Instant::from_millis(6000));
    let cfg = config(
        client,
        &[
            ("auto.offset.reset", text("earliest")),
            ("session.timeout.ms", int(10_000)),
        ],
    );
    let h = HandlerSpec {
        process_time: (MS(20), MS(20)),
        ..HandlerSpec::default()
    };
    let member = add_consumer(&mut w, &c, 0, 0, cfg, h);
    w.run_until(Instant::from_millis(8000));
    (w, member)
}

#[test]
fn sarama_processes_each_claimed_partition_in_its_own_loop() {
    // sarama runs ConsumeClaim in a goroutine per claimed partition: three partitions are
    // processed side by side and keep up with the producer.
    let (w, _) = slow_handler_run("sarama");
    assert_eq!(
        sink_lost(&w, 0),
        vec![],
        "sarama's three claims should keep up"
    );
    // Processing overlaps: some record of one partition is written while a record of another
    // partition, taken up earlier, is still in process (at 20 ms each, one loop would write
    // its records at least 20 ms apart).
    let writes: Vec<kafsim_engine::Instant> = w
        .history()
        .entries()
        .filter(|e| matches!(e.event, HistoryEvent::SinkWrite { .. }))
        .map(|e| e.at)
        .collect();
    let close = writes
        .windows(2)
        .filter(|p| p[1].saturating_since(p[0]) < MS(20))
        .count();
    assert!(
        close > 100,
        "only {close} writes closer than one processing time"
    );
}

#[test]
fn java_processes_its_polls_in_one_loop_and_falls_behind() {
    // The same handler in a Java poll loop processes one record at a time: 50 records/s
    // against 100 produced, still behind 2 s after the producer stopped.
    let (w, _) = slow_handler_run("java");
    assert!(
        sink_lost(&w, 0).len() > 50,
        "one Java loop cannot keep up: {} records not yet processed",
        sink_lost(&w, 0).len()
    );
}

/// One member of `client` over 3 partitions whose handler retries a poison record in place
/// forever; how many partitions are consumed to their end, and how many stop (at this rate
/// the producer's values 211 and 330 are poison: partitions 1 and 0, none in partition 2).
fn poison_run(client: &str) -> (usize, usize) {
    let (mut w, c) = consumer_harness(32, 3).build();
    add_producer(&mut w, &c, 0, 12, MS(10), Instant::from_millis(4000));
    let cfg = config(
        client,
        &[
            ("auto.offset.reset", text("earliest")),
            ("max.poll.interval.ms", int(600_000)),
        ],
    );
    let h = HandlerSpec {
        process_time: (MS(1), MS(2)),
        poison_rate: 0.006,
        on_failure: OnFailure::Retry,
        max_attempts: None,
        ..HandlerSpec::default()
    };
    add_consumer(&mut w, &c, 0, 0, cfg, h);
    w.run_until(Instant::from_millis(15_000));
    let acked = acked(&w);
    let written: BTreeSet<ValueId> = sink_writes(&w, 0).iter().map(|(v, _, _)| *v).collect();
    let (mut flowing, mut stuck) = (0, 0);
    for p in 0..3u32 {
        let all_written = acked
            .iter()
            .filter(|(_, (tp, _))| tp.partition == p)
            .all(|(v, _)| written.contains(v));
        if all_written {
            flowing += 1;
        } else {
            stuck += 1;
        }
    }
    (flowing, stuck)
}

#[test]
fn a_stuck_sarama_claim_does_not_hold_up_the_others() {
    // A poison record retried in place stops its own claim only: the other partitions'
    // claims go on (sarama's partition consumers feed each claim's channel separately).
    let (flowing, stuck) = poison_run("sarama");
    assert_eq!(
        (flowing, stuck),
        (1, 2),
        "the partition without a poison record must be consumed to its end"
    );
}

#[test]
fn a_stuck_java_poll_loop_holds_up_every_partition_it_owns() {
    // The same handler in one Java poll loop never returns to poll(): every partition stops.
    let (flowing, stuck) = poison_run("java");
    assert_eq!((flowing, stuck), (0, 3));
}
