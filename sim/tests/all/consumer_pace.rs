//! How fast a consumer's application runs, and what slows it down.
//!
//! `consumer-slowdown`: the application processes each record `factor` times slower, and
//! nothing else changes. Every client keeps the member alive from its own thread or goroutine
//! (Java's `AbstractCoordinator.HeartbeatThread`, librdkafka's main thread, sarama's
//! `consumerGroupSession.heartbeatLoop`, kafka-go's `ConsumerGroup` heartbeat goroutine),
//! so a handler slowed well past the session timeout, but not past `max.poll.interval.ms`,
//! keeps its partitions: no rebalance, no re-delivery. A model that stretched every timer
//! of the slowed process (its heartbeats included) expired the member after one session and
//! reported the resulting re-reads as the application's duplicates.

use kafsim_engine::history::HistoryEvent;
use kafsim_engine::Instant;
use kafsim_sim::runner::{prepare, run_seed, RunOptions, RunOutput};
use kafsim_sim::scenario;

/// One member processing 10 ms per record, 40 records/s into one partition (sarama's claims
/// would process several partitions side by side); from 5 s to 45 s its handler is
/// 30 times slower (300 ms per record): 40 s, close to Java's 45 s session timeout and 13
/// heartbeat intervals, but far below `max.poll.interval.ms` (Java's poll returns at most
/// 500 records, 150 s of slowed processing; the other clients hand over a record at a time).
fn slowed(client: &str) -> String {
    format!(
        r#"name = "slowed-{client}"
duration = "50s"
seeds = 1

[cluster]
brokers = 3

[[topics]]
name = "jobs"
partitions = 1
replication_factor = 3

[[producers]]
client = "java"
topic = "jobs"
rate = 40

[[consumer_groups]]
group = "workers"
members = 1
client = "{client}"
topics = ["jobs"]
[consumer_groups.config]
"auto.offset.reset" = "earliest"
[consumer_groups.handler]
process_time = "10ms"
sink = "plain"

[[faults.schedule]]
at = "5s"
action = "consumer-slowdown"
target = "consumer:workers/0"
factor = 30
duration = "40s"
"#
    )
}

fn run(text: &str) -> RunOutput {
    let s = scenario::parse("test.toml", text).unwrap_or_else(|e| panic!("{e}"));
    let p = prepare(s).unwrap_or_else(|e| panic!("{e}"));
    let opts = RunOptions {
        keep_history: true,
        ..RunOptions::default()
    };
    run_seed(&p, 1, &opts)
}

/// Generations the member was assigned partitions in, and its sink writes between `from`
/// and `to` (ms).
fn generations_and_writes(out: &RunOutput, from: u64, to: u64) -> (Vec<i32>, usize) {
    let history = out.history.as_ref().expect("kept");
    let mut generations = Vec::new();
    let mut writes = 0;
    let window = Instant::from_millis(from)..Instant::from_millis(to);
    for e in history.entries() {
        match &e.event {
            HistoryEvent::Assigned { generation, .. } => generations.push(*generation),
            HistoryEvent::SinkWrite { .. } if window.contains(&e.at) => writes += 1,
            _ => {}
        }
    }
    (generations, writes)
}

#[test]
fn a_slow_handler_keeps_its_partitions_and_every_client_heartbeats_meanwhile() {
    for client in ["java", "sarama", "kafka-go", "librdkafka"] {
        let out = run(&slowed(client));
        let (generations, writes) = generations_and_writes(&out, 10_000, 40_000);
        let violations = &out.result.violations;
        assert_eq!(
            generations,
            vec![1],
            "{client}: the slowed member was assigned in generations {generations:?}: \
             it must keep its partitions ({} violations, the first {:?})",
            violations.len(),
            violations.first()
        );
        assert!(
            violations.is_empty(),
            "{client}: {} violations, the first {:?}",
            violations.len(),
            violations.first()
        );
        // 30 s at 300 ms per record is about 100 records; at full speed the member keeps up
        // with 40 records/s (1,200 in 30 s).
        assert!(
            (80..=110).contains(&writes),
            "{client}: {writes} sink writes from 10 s to 40 s: the handler is not 30x slower"
        );
        assert!(out.drained, "{client}: the group never caught up");
    }
}

#[test]
fn without_the_slowdown_the_same_member_keeps_up() {
    let text = slowed("java").replace("factor = 30", "factor = 1.5");
    let out = run(&text);
    let (generations, writes) = generations_and_writes(&out, 10_000, 40_000);
    assert_eq!(generations, vec![1]);
    assert!(
        (1_150..=1_250).contains(&writes),
        "{writes} sink writes from 10 s to 40 s at 40 records/s"
    );
}

/// kafka-go's `ReadMessage` with `CommitInterval` 0 (its default) commits each message
/// before returning it, and `commitLoopImmediate` sends that commit at once (`reader.go`):
/// the application's pace is its processing plus one OffsetCommit round trip. 200 records/s
/// into one partition, 1 ms of processing (plus the round trips of the commit and the sink
/// write): the member nearly keeps up (about 185 a second). A commit left for the
/// consumer's next 100 ms tick held it to about ten records per second.
#[test]
fn kafka_go_read_message_sends_each_commit_at_once_and_keeps_up() {
    let text = slowed("kafka-go")
        .replace("rate = 40", "rate = 200")
        .replace("process_time = \"10ms\"", "process_time = \"1ms\"")
        .replace("factor = 30", "factor = 1.5")
        .replace("duration = \"50s\"", "duration = \"20s\"");
    let out = run(&text);
    let (generations, writes) = generations_and_writes(&out, 10_000, 18_000);
    assert_eq!(generations, vec![1]);
    assert!(
        (1_200..=1_700).contains(&writes),
        "{writes} sink writes from 10 s to 18 s at 200 records/s"
    );
}
