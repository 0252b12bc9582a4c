//! Commit semantics as each client really does them (issue 5 part 5): where the offset is
//! marked or committed relative to processing decides whether a consumer crash loses records
//! (sink-loss) or only re-delivers them (sink duplicates, removed by a de-duplicating or
//! offsets-in-sink sink).

use crate::consumer_support::*;
use kafsim_engine::app::{CommitMode, HandlerSpec, Mark, SinkKind};
use kafsim_engine::consumer::ConsumerConfig;
use kafsim_engine::{Duration, Instant};
use kafsim_sim::world::World;

const MS: fn(u64) -> Duration = Duration::from_millis;

/// Producer at 100 records/s for 6 s; the consumer processes 50 records/s, so a backlog builds
/// and polls return large batches. The consumer crashes at 5 s and restarts at 6 s; the run
/// drains until 40 s.
fn crash_run(seed: u64, cfg: ConsumerConfig, handler: HandlerSpec) -> World {
    let (mut w, c) = consumer_harness(seed, 3).build();
    add_producer(&mut w, &c, 0, 12, MS(10), Instant::from_millis(6000));
    // A de-duplicating or offset-storing sink is the group's database.
    let consumer = if handler.sink == SinkKind::Plain {
        add_consumer(&mut w, &c, 0, 0, cfg, handler)
    } else {
        add_consumer_with_database(&mut w, &c, 0, 0, cfg, handler)
    };
    w.run_until(Instant::from_millis(5000));
    w.crash(consumer);
    w.run_until(Instant::from_millis(6000));
    w.restart(consumer);
    w.run_until(Instant::from_millis(40_000));
    assert!(acked(&w).len() > 500, "only {} acks", acked(&w).len());
    assert!(
        drained(&w, consumer),
        "the consumer did not catch up by the end"
    );
    w
}

fn handler(mark: Mark, sink: SinkKind) -> HandlerSpec {
    HandlerSpec {
        process_time: (MS(20), MS(20)),
        mark,
        sink,
        ..HandlerSpec::default()
    }
}

fn sarama() -> ConsumerConfig {
    config("sarama", &[("auto.offset.reset", text("earliest"))])
}

#[test]
fn sarama_mark_before_process_loses_the_message_in_hand_on_consumer_crash() {
    // sarama marks one message at a time as its ConsumeClaim loop takes it up; with commits
    // more often than a message takes, the message in hand at the crash is always committed
    // unprocessed. That is all that is lost: about one message per claimed partition (3
    // here), not the whole fetch.
    let cfg = config(
        "sarama",
        &[
            ("auto.offset.reset", text("earliest")),
            ("auto.commit.interval.ms", int(5)),
        ],
    );
    let w = crash_run(11, cfg, handler(Mark::BeforeProcess, SinkKind::Plain));
    let lost = sink_lost(&w, 0);
    assert!(
        !lost.is_empty(),
        "the marked message in hand should be lost"
    );
    assert!(
        lost.len() <= 3,
        "lost {} messages: more than one per claim",
        lost.len()
    );
}

#[test]
fn sarama_mark_after_process_loses_nothing_but_duplicates() {
    let w = crash_run(11, sarama(), handler(Mark::AfterProcess, SinkKind::Plain));
    assert_eq!(sink_lost(&w, 0), vec![]);
    assert!(
        !sink_duplicates(&w, 0).is_empty(),
        "processed-but-uncommitted records are processed again"
    );
}

#[test]
fn dedupe_sink_removes_the_duplicates_of_mark_after_process() {
    let w = crash_run(11, sarama(), handler(Mark::AfterProcess, SinkKind::Dedupe));
    assert_eq!(sink_lost(&w, 0), vec![]);
    assert_eq!(sink_duplicates(&w, 0), vec![]);
}

#[test]
fn offsets_in_sink_resumes_from_the_sink_without_duplicates() {
    let w = crash_run(
        11,
        sarama(),
        handler(Mark::AfterProcess, SinkKind::OffsetsInSink),
    );
    assert_eq!(sink_lost(&w, 0), vec![]);
    assert_eq!(sink_duplicates(&w, 0), vec![]);
    let seeks = count_events(&w, |e| {
        matches!(
            e,
            kafsim_engine::history::HistoryEvent::PositionReset { .. }
        )
    });
    assert!(
        seeks > 0,
        "the restarted consumer seeks to the sink's offsets"
    );
}

fn java(extra: &[(&str, kafsim_engine::config::ConfigValue)]) -> ConsumerConfig {
    let mut overrides = vec![
        ("auto.offset.reset", text("earliest")),
        ("auto.commit.interval.ms", int(1000)),
        ("session.timeout.ms", int(10_000)),
    ];
    overrides.extend(extra.iter().cloned());
    config("java", &overrides)
}

#[test]
fn java_auto_commit_with_a_synchronous_handler_loses_nothing() {
    let w = crash_run(12, java(&[]), handler(Mark::AfterProcess, SinkKind::Plain));
    assert_eq!(sink_lost(&w, 0), vec![]);
}

#[test]
fn java_auto_commit_with_a_worker_pool_loses_records_still_queued() {
    let pool = HandlerSpec {
        process_time: (MS(100), MS(100)),
        workers: 4,
        ..HandlerSpec::default()
    };
    let w = crash_run(12, java(&[("max.poll.records", int(50))]), pool);
    assert!(
        !sink_lost(&w, 0).is_empty(),
        "auto-commit committed positions of records the workers had not processed"
    );
}

#[test]
fn kafka_go_read_message_commits_before_processing_and_loses_on_crash() {
    // kafka-go's 30 s session would keep the crashed member in the group past the run.
    let cfg = config("kafka-go", &[("session.timeout.ms", int(10_000))]);
    let w = crash_run(13, cfg, handler(Mark::AfterProcess, SinkKind::Plain));
    let lost = sink_lost(&w, 0);
    assert!(
        (1..=2).contains(&lost.len()),
        "the message being processed (and at most one whose commit was in flight) is lost: {lost:?}"
    );
}

#[test]
fn manual_sync_commit_after_processing_loses_nothing() {
    let cfg = config(
        "sarama",
        &[
            ("auto.offset.reset", text("earliest")),
            (
                "enable.auto.commit",
                kafsim_engine::config::ConfigValue::Bool(false),
            ),
            ("max.poll.records", int(20)),
        ],
    );
    let h = HandlerSpec {
        commit: CommitMode::Sync,
        ..handler(Mark::AfterProcess, SinkKind::Plain)
    };
    let w = crash_run(14, cfg, h);
    assert_eq!(sink_lost(&w, 0), vec![]);
    let commits = count_events(&w, |e| {
        matches!(e, kafsim_engine::history::HistoryEvent::Commit { error, .. }
            if *error == kafsim_engine::protocol::ErrorCode::None)
    });
    assert!(commits > 10, "only {commits} successful commits");
}

#[test]
fn batch_handler_with_sync_commit_loses_nothing_and_commits_per_batch() {
    let cfg = config(
        "sarama",
        &[
            ("auto.offset.reset", text("earliest")),
            (
                "enable.auto.commit",
                kafsim_engine::config::ConfigValue::Bool(false),
            ),
        ],
    );
    let h = HandlerSpec {
        process_time: (MS(2), MS(2)),
        commit: CommitMode::Sync,
        batch: Some(25),
        batch_timeout: Some(MS(200)),
        ..HandlerSpec::default()
    };
    let w = crash_run(15, cfg, h);
    assert_eq!(sink_lost(&w, 0), vec![]);
    let commits = count_events(&w, |e| {
        matches!(e, kafsim_engine::history::HistoryEvent::Commit { error, .. }
            if *error == kafsim_engine::protocol::ErrorCode::None)
    });
    let writes = sink_writes(&w, 0).len();
    assert!(commits > 5, "only {commits} commits");
    assert!(
        commits < writes / 5,
        "{commits} commits for {writes} writes: not per batch"
    );
}

#[test]
fn batch_handler_marking_before_processing_loses_the_open_batch() {
    let h = HandlerSpec {
        process_time: (MS(20), MS(20)),
        mark: Mark::BeforeProcess,
        batch: Some(100),
        batch_timeout: Some(MS(500)),
        ..HandlerSpec::default()
    };
    let w = crash_run(15, sarama(), h);
    assert!(
        !sink_lost(&w, 0).is_empty(),
        "marked records of the unprocessed batch are lost"
    );
}
