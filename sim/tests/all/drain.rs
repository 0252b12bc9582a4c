//! The drain (DESIGN §8 "Drain"): an automatic drain waits for a slow group however long it
//! takes, a capacity objective turns late catching up into `lag`, and a run where something
//! is genuinely stuck is a `stall` whose detail names what is stuck.
//!
//! Every scenario here keeps Kafka's default client timeouts: the drain must fit them, not
//! the other way round.

use kafsim_engine::history::HistoryEvent;
use kafsim_sim::runner::{prepare, run_seed, Prepared, RunOptions, RunOutput};
use kafsim_sim::scenario;
use kafsim_sim::violation::ViolationKind;

/// One producer bursting 1000 records/s for 2 s into one partition; one member processing
/// 10 ms a record (100/s) has a backlog of about 20 s when the load stops.
fn slow_group(drain: &str, expect: &str) -> String {
    format!(
        r#"name = "slow-group"
duration = "2s"
{drain}
seeds = 1

[cluster]
brokers = 3

[[topics]]
name = "clicks"
partitions = 1
replication_factor = 3

[[producers]]
client = "java"
topic = "clicks"
rate = 1000

[[consumer_groups]]
group = "analytics"
members = 1
client = "java"
topics = ["clicks"]
[consumer_groups.config]
"auto.offset.reset" = "earliest"
[consumer_groups.handler]
process_time = "10ms"

[expect]
{expect}
"#
    )
}

fn run(text: &str) -> RunOutput {
    let s = scenario::parse("test.toml", text).unwrap_or_else(|e| panic!("{e}"));
    let p: Prepared = prepare(s).unwrap_or_else(|e| panic!("{e}"));
    run_seed(&p, 1, &RunOptions::default())
}

/// Seed 1 of `text` with its history kept.
fn run_kept(text: &str) -> RunOutput {
    let s = scenario::parse("test.toml", text).unwrap_or_else(|e| panic!("{e}"));
    let p: Prepared = prepare(s).unwrap_or_else(|e| panic!("{e}"));
    let opts = RunOptions {
        keep_history: true,
        ..RunOptions::default()
    };
    run_seed(&p, 1, &opts)
}

fn kinds(out: &RunOutput) -> Vec<ViolationKind> {
    out.result.violations.iter().map(|v| v.kind).collect()
}

fn catch_up(out: &RunOutput) -> f64 {
    out.result.stats.groups["analytics"]
        .catch_up_seconds
        .expect("the group caught up")
}

#[test]
fn a_slow_group_catches_up_in_an_automatic_drain_without_a_stall() {
    let out = run(&slow_group("", ""));
    assert!(out.drained, "{:?}", out.result.violations);
    assert!(kinds(&out).is_empty(), "{:?}", out.result.violations);
    let g = &out.result.stats.groups["analytics"];
    // Far longer than the old 20-30 s drains advised: it is a capacity finding, not a stall.
    assert!(catch_up(&out) > 10.0, "{g:?}");
    assert!(g.peak_lag > 1000, "lag builds during the burst: {g:?}");
    // The producer starts at a random instant of its first second: at least 1 s of the burst.
    assert!(out.result.stats.records_acked > 1000);
    assert_eq!(g.records_consumed, out.result.stats.records_consumed);
}

#[test]
fn the_same_group_stalls_against_a_short_drain_bound_and_the_stall_names_it() {
    let out = run(&slow_group("drain = \"2s\"", ""));
    assert!(!out.drained);
    let stall = out
        .result
        .violations
        .iter()
        .find(|v| v.kind == ViolationKind::Stall)
        .expect("a stall");
    let d = &stall.detail;
    assert!(d.contains("drain bound of 2s"), "{d}");
    assert!(d.contains("analytics: clicks/0 read to"), "{d}");
    assert!(
        d.contains("analytics/0: stable"),
        "the member by its role name: {d}"
    );
    assert!(d.contains("looks like capacity"), "{d}");
    assert!(
        !d.contains(" n1") && !d.contains("(n"),
        "no raw node ids: {d}"
    );
    // What was never read is a consequence of the stall, not a verdict of its own.
    assert!(!kinds(&out).contains(&ViolationKind::Unseen));
}

#[test]
fn catch_up_within_reports_lag_only_when_the_group_is_later() {
    let t = catch_up(&run(&slow_group("", "")));
    let objective = |secs: f64| format!("catch_up_within = \"{}ms\"", (secs * 1000.0) as u64);
    let late = run(&slow_group("", &objective(t / 2.0)));
    assert_eq!(
        kinds(&late),
        [ViolationKind::Lag],
        "{:?}",
        late.result.violations
    );
    let detail = &late.result.violations[0].detail;
    assert!(detail.contains("group analytics caught up"), "{detail}");
    assert!(detail.contains("peak lag"), "{detail}");
    let in_time = run(&slow_group("", &objective(t * 2.0)));
    assert!(
        kinds(&in_time).is_empty(),
        "{:?}",
        in_time.result.violations
    );
}

#[test]
fn a_handler_that_never_finishes_is_a_stall_after_the_liveness_window() {
    // Each record takes an hour to process: the member polls once and is never back.
    let text = slow_group("", "").replace("process_time = \"10ms\"", "process_time = \"1h\"");
    let s = scenario::parse("test.toml", &text).unwrap();
    let p = prepare(s).unwrap();
    let window = p.liveness().window;
    let out = run_seed(&p, 1, &RunOptions::default());
    assert!(!out.drained);
    let stall = out
        .result
        .violations
        .iter()
        .find(|v| v.kind == ViolationKind::Stall)
        .expect("a stall");
    let d = &stall.detail;
    assert!(d.starts_with("nothing progressed for"), "{d}");
    assert!(
        d.contains("analytics: clicks/0 read to 500 of"),
        "one poll of max.poll.records: {d}"
    );
    assert!(d.contains("last progress: analytics read clicks/0"), "{d}");
    assert!(!d.contains("looks like capacity"), "{d}");
    assert!(d.contains("application busy"), "{d}");
    // It waited the whole window after the heal, not a fixed drain.
    let heal = 2.0;
    assert!(
        out.result.stats.sim_seconds >= heal + window.as_secs_f64(),
        "{} s, window {window:?}",
        out.result.stats.sim_seconds
    );
    assert!(out.result.stats.sim_seconds < heal + window.as_secs_f64() + 5.0);
    assert_eq!(out.result.stats.groups["analytics"].catch_up_seconds, None);
}

/// acks=1 records acknowledged while a follower of the ISR is cut off (from 5 s: the group has
/// joined and read by then) sit above the high watermark at the heal (the ISR has not shrunk yet: `replica.lag.time.max.ms` is 30 s). The
/// group has read to the high watermark and is quiet, but the run is not over: once the
/// follower fetches again the high watermark passes them and the group reads them, as it would
/// on a real cluster. Ending the drain there reported them `unseen` (a false loss).
#[test]
fn the_drain_waits_for_records_above_the_high_watermark_after_the_heal() {
    let text = r#"name = "above-hw-at-heal"
duration = "8s"
seeds = 1

[cluster]
brokers = 3

[[topics]]
name = "clicks"
partitions = 1
replication_factor = 3

[[producers]]
client = "java"
topic = "clicks"
rate = 200
[producers.config]
"acks" = "1"

[[consumer_groups]]
group = "analytics"
members = 1
client = "java"
topics = ["clicks"]
[consumer_groups.config]
"auto.offset.reset" = "earliest"

[[faults.schedule]]
at = "5s"
action = "partition"
target = "follower:clicks/0"
duration = "60s"

[expect]
"#;
    let out = run(text);
    let first = out.result.violations.first();
    assert!(out.drained, "{first:?}");
    assert!(
        kinds(&out).is_empty(),
        "{} violations, the first {first:?}",
        out.result.violations.len()
    );
    let read = out.result.stats.groups["analytics"].records_consumed;
    let acked = out.result.stats.records_acked;
    // The producer starts at a random instant of its first second: 7 to 8 s of 200/s.
    assert!(acked >= 1400, "{acked} acknowledged");
    assert!(
        read >= acked,
        "the group read {read} of {acked} acknowledged records"
    );
}

/// A service as users write it: a Java producer and a sarama group with sarama's defaults
/// (auto-commit every second of the offsets marked after processing, 10 s sessions) writing
/// to a plain sink, under broker crashes, pauses, partitions and consumer crashes.
const SARAMA_SERVICE: &str = r#"name = "sarama-group-at-least-once"
description = "Java idempotent producer, sarama consumer group with its defaults (auto commit 1s, mark after process, range), broker crashes and pauses and consumer crashes; at-least-once."
duration = "30s"
seeds = 30

[cluster]
brokers = 3
[cluster.config]
"min.insync.replicas" = 2

[[topics]]
name = "jobs"
partitions = 6
replication_factor = 3

[[producers]]
client = "java"
topic = "jobs"
rate = 300
keys = 0

[[consumer_groups]]
group = "workers"
members = 3
client = "sarama"
topics = ["jobs"]
[consumer_groups.config]
"auto.offset.reset" = "earliest"
[consumer_groups.handler]
process_time = "1ms..10ms"
sink = "plain"

[faults]
random = true
kinds = ["crash", "pause", "consumer-crash", "partition"]
mean_interval = "3s"

[expect]
violations = []
allow = ["sink-duplicate"]
"#;

/// Seed 6 crashes `workers/0` 6 ms before the heal, holding 64 records of `jobs/1` it had
/// polled and not processed. They were "read", but no one processed them: the group is not
/// caught up until it reassigns `jobs/1` (after the dead member's 10 s session) and the new
/// owner reads them again from the committed offset. The drain once ended 1.25 s after the
/// heal, while no running member owned `jobs/1`, and reported the 64 as `sink-loss`.
#[test]
fn records_a_crashed_member_polled_are_read_again_before_the_group_counts_as_caught_up() {
    let s = scenario::parse("test.toml", SARAMA_SERVICE).unwrap_or_else(|e| panic!("{e}"));
    let p: Prepared = prepare(s).unwrap_or_else(|e| panic!("{e}"));
    let out = run_seed(&p, 6, &RunOptions::default());
    assert!(out.drained, "{:?}", out.result.violations);
    assert!(
        kinds(&out)
            .iter()
            .all(|k| *k == ViolationKind::SinkDuplicate),
        "{:?}",
        out.result.violations
    );
    let g = &out.result.stats.groups["workers"];
    let c = g.catch_up_seconds.expect("caught up");
    assert!(c > 5.0, "caught up {c} s after the heal: {g:?}");
}

/// A Java group (`auto.offset.reset` latest, Java's default) that commits nothing: its only
/// member crashes at 5 s and comes back at the heal, and the group cannot hand it the
/// partition until the dead incarnation's 45 s session times out. The new owner then resets
/// to the log end: it catches up then, without polling a record after the heal.
const LATE_ASSIGNMENT: &str = r#"name = "late-assignment"
duration = "10s"
seeds = 1

[cluster]
brokers = 3

[[topics]]
name = "clicks"
partitions = 1
replication_factor = 3

[[producers]]
client = "java"
topic = "clicks"
rate = 100

[[consumer_groups]]
group = "analytics"
members = 1
client = "java"
topics = ["clicks"]
[consumer_groups.config]
"enable.auto.commit" = false

[[faults.schedule]]
at = "5s"
action = "consumer-crash"
target = "consumer:analytics/0"
duration = "20s"
"#;

#[test]
fn a_group_that_catches_up_by_a_reset_long_after_the_heal_is_not_reported_as_caught_up_at_once() {
    let out = run_kept(LATE_ASSIGNMENT);
    assert!(out.drained, "{:?}", out.result.violations);
    let history = out.history.as_ref().expect("kept");
    let resets: Vec<f64> = (history.entries())
        .filter(|e| matches!(e.event, HistoryEvent::PositionReset { .. }))
        .map(|e| e.at.as_secs_f64())
        .collect();
    let last_reset = *resets.last().expect("the new owner reset its position");
    // The heal is at the end of the 10 s safety phase; the reset waits for the session.
    assert!(last_reset > 10.0 + 30.0, "resets at {resets:?}");
    let c = catch_up(&out);
    assert!(
        c >= last_reset - 10.0,
        "caught up {c} s after the heal, but the group reset its position {} s after it",
        last_reset - 10.0
    );
}

/// A service whose handler calls a slow downstream API (3 s a record; librdkafka defaults).
/// The drain used to end one quiet second after the last poll, with the last record still in
/// the handler, and reported it as a sink-loss no real service shows.
const SLOW_HANDLER: &str = r#"name = "slow-handler"
duration = "3s"
seeds = 1

[cluster]
brokers = 3

[[topics]]
name = "payments"
partitions = 1
replication_factor = 3

[[producers]]
client = "java"
topic = "payments"
rate = 2

[[consumer_groups]]
group = "ledger"
members = 1
client = "librdkafka"
topics = ["payments"]
[consumer_groups.config]
"auto.offset.reset" = "earliest"
[consumer_groups.handler]
process_time = "3s"
sink = "plain"
"#;

#[test]
fn the_drain_waits_for_the_record_a_slow_handler_still_holds() {
    let out = run_kept(SLOW_HANDLER);
    assert!(out.drained, "{:?}", out.result.violations);
    assert!(kinds(&out).is_empty(), "{:?}", out.result.violations);
    let history = out.history.as_ref().expect("kept");
    let last = |sink: bool| {
        (history.entries())
            .filter(|e| match e.event {
                HistoryEvent::SinkWrite { .. } => sink,
                HistoryEvent::Poll { .. } => !sink,
                _ => false,
            })
            .map(|e| e.at.as_secs_f64())
            .fold(0.0, f64::max)
    };
    let (polled, written) = (last(false), last(true));
    // What makes this test able to fail: the last record was written well after the quiet
    // second that once ended the drain.
    assert!(
        written > polled + 2.0,
        "last poll {polled} s, last sink write {written} s"
    );
    let acked = out.result.stats.records_acked;
    assert!(acked >= 5, "{acked} records acknowledged");
    assert_eq!(out.result.stats.groups["ledger"].records_consumed, acked);
}

/// kafka-go `Writer{Async, RequireOne}` and a one-member kafka-go `ReadMessage` group through
/// random broker power losses (seed 17 of a probe scenario): the member's ReadMessage commit
/// is answered ILLEGAL_GENERATION after the coordinator moved, which leaves it unjoined with
/// the commit still to retry.
const KAFKA_GO_FENCED_MID_COMMIT: &str = r#"
name = "kafka-go-fenced-mid-commit"
duration = "21s"
seeds = 1
[cluster]
brokers = 3
[[topics]]
name = "telemetry"
partitions = 3
replication_factor = 3
[[producers]]
client = "kafka-go"
topic = "telemetry"
rate = 400
keys = 0
[producers.config]
RequiredAcks = "RequireOne"
Async = true
BatchTimeout = "10ms"
[[consumer_groups]]
group = "dash"
members = 1
client = "kafka-go"
topics = ["telemetry"]
[consumer_groups.handler]
process_time = "50us..200us"
[faults]
random = true
kinds = ["crash", "power-loss"]
mean_interval = "3.7s"
[expect]
violations = ["lost-write"]
allow = ["unseen", "sink-loss", "inconsistent-offsets", "nonmonotonic-send", "duplicate", "sink-duplicate", "divergence", "nonmonotonic-poll", "poll-skip"]
"#;

/// kafka-go's `commitOffsetsWithRetry` makes 3 attempts with the generation the commit began
/// in, then ReadMessage returns the error and the Reader goes on with its next generation.
/// The model used to count only the tries that reached the wire: a member fenced mid-commit
/// retried it locally (RebalanceInProgress) every 100 ms for ever while its rejoin waited for
/// that commit, and the run ended in a `stall` (dash/0 "unjoined (rejoin pending)").
#[test]
fn a_kafka_go_member_fenced_in_the_middle_of_its_commit_rejoins_instead_of_stalling() {
    let s =
        scenario::parse("test.toml", KAFKA_GO_FENCED_MID_COMMIT).unwrap_or_else(|e| panic!("{e}"));
    let p: Prepared = prepare(s).unwrap_or_else(|e| panic!("{e}"));
    let opts = RunOptions {
        keep_history: true,
        ..RunOptions::default()
    };
    let out = run_seed(&p, 17, &opts);
    let history = out.history.as_ref().expect("kept");
    let fenced_mid_commit = history.entries().any(|e| {
        matches!(
            e.event,
            HistoryEvent::Commit {
                error: kafsim_engine::protocol::ErrorCode::IllegalGeneration,
                ..
            }
        )
    });
    assert!(fenced_mid_commit, "the seed no longer reaches the case");
    assert!(
        !kinds(&out).contains(&ViolationKind::Stall),
        "{:?}",
        out.result
            .violations
            .iter()
            .find(|v| v.kind == ViolationKind::Stall)
    );
    assert!(out.drained);
}
