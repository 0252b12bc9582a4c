//! Consume-transform-produce (handler `produce_to`, issue 14): in whole runs the output topic
//! is the group's sink, read at the end of the run (committed records only). With
//! `commit = "transaction"` a member crash mid-batch aborts the batch with its offsets and the
//! output has every input exactly once; produce-then-commit writes the crashed batch's outputs
//! twice (`sink-duplicate`). The new keys are errors at their line when they are wrong.

use kafsim_engine::history::HistoryEvent;
use kafsim_sim::runner::{prepare, run_seed, Prepared, RunOptions, RunOutput};
use kafsim_sim::scenario::{self, ScenarioError};
use kafsim_sim::violation::ViolationKind;
use std::collections::BTreeMap;

/// A producer writing `orders`, and a Java group turning each into an `invoices` record;
/// `handler` is the group's handler table body, `faults` the fault section.
fn text(client: &str, handler: &str, faults: &str) -> String {
    format!(
        r#"name = "ctp"
duration = "12s"
seeds = 1

[cluster]
brokers = 3
[cluster.config]
"min.insync.replicas" = 2
"transaction.state.log.num.partitions" = 5
"offsets.topic.num.partitions" = 5

[[topics]]
name = "orders"
partitions = 2
replication_factor = 3

[[topics]]
name = "invoices"
partitions = 2
replication_factor = 3

[[producers]]
client = "java"
topic = "orders"
rate = 200
keys = 10

[[consumer_groups]]
group = "billing"
members = 2
client = "{client}"
topics = ["orders"]
[consumer_groups.config]
"enable.auto.commit" = false
"auto.offset.reset" = "earliest"
[consumer_groups.handler]
{handler}

{faults}
[expect]
allow = ["sink-duplicate"]
"#
    )
}

/// Busy members (about 100 records/s each at 8 ms a record): a crash lands mid-batch.
/// In a transaction:
const TXN: &str = "process_time = \"8ms\"\nproduce_to = \"invoices\"\ncommit = \"transaction\"";
/// Busy members (about 100 records/s each at 8 ms a record): a crash lands mid-batch.
/// produce-then-commit:
const PLAIN: &str = "process_time = \"8ms\"\nproduce_to = \"invoices\"\ncommit = \"sync\"";
/// A member crashes once the group is stable and busy (its first generation forms after
/// about 6 s: `group.initial.rebalance.delay.ms` twice, one per member), its batch half
/// processed most likely, and comes back a second later.
const CRASH: &str = "[[faults.schedule]]\nat = \"9s\"\naction = \"crash\"\ntarget = \"consumer:billing/0\"\nduration = \"1s\"\n";

fn run(text: &str, seed: u64) -> RunOutput {
    let s = scenario::parse("test.toml", text).unwrap_or_else(|e| panic!("{e}"));
    let p: Prepared = prepare(s).unwrap_or_else(|e| panic!("{e}"));
    let opts = RunOptions {
        keep_history: true,
        ..RunOptions::default()
    };
    run_seed(&p, seed, &opts)
}

/// Acknowledged input values, and how many committed output records each has.
fn outputs(out: &RunOutput) -> (Vec<u64>, BTreeMap<u64, usize>) {
    let history = out.history.as_ref().expect("kept");
    let mut acked = Vec::new();
    let mut outputs: BTreeMap<u64, usize> = BTreeMap::new();
    for e in history.entries() {
        match &e.event {
            HistoryEvent::SendOk { value, .. } => acked.push(value.0),
            HistoryEvent::OutputRecord { value, .. } => *outputs.entry(value.0).or_default() += 1,
            _ => {}
        }
    }
    (acked, outputs)
}

fn kinds(out: &RunOutput) -> Vec<ViolationKind> {
    let mut k: Vec<ViolationKind> = out.result.violations.iter().map(|v| v.kind).collect();
    k.dedup();
    k
}

#[test]
fn in_a_transaction_every_input_is_output_exactly_once_without_and_with_a_member_crash() {
    // The seeds and crash under which produce-then-commit duplicates (the test below).
    for (faults, seed) in [("", 1), (CRASH, 1), (CRASH, 2), (CRASH, 3)] {
        let out = run(&text("java", TXN, faults), seed);
        let (acked, outputs) = outputs(&out);
        assert!(acked.len() >= 1000, "{} acked", acked.len());
        for v in &acked {
            assert_eq!(outputs.get(v), Some(&1), "value {v} (faults: {faults:?})");
        }
        assert_eq!(outputs.len(), acked.len(), "no output without an input");
        assert!(out.drained, "the drain caught up");
        assert_eq!(kinds(&out), vec![], "{:?}", out.result.violations);
    }
}

#[test]
fn produce_then_commit_writes_a_crashed_batch_twice_but_loses_nothing() {
    let mut duplicated = 0;
    for seed in 1..=3 {
        let out = run(&text("java", PLAIN, CRASH), seed);
        let (acked, outputs) = outputs(&out);
        for v in &acked {
            assert!(outputs.get(v).is_some_and(|n| *n >= 1), "value {v} lost");
        }
        let twice = outputs.values().filter(|n| **n > 1).count();
        let reported = out
            .result
            .violations
            .iter()
            .filter(|v| v.kind == ViolationKind::SinkDuplicate)
            .count();
        assert_eq!(
            twice, reported,
            "each duplicated input is one sink-duplicate"
        );
        assert!(!kinds(&out).contains(&ViolationKind::SinkLoss));
        duplicated += twice;
    }
    assert!(
        duplicated > 0,
        "a crash between outputs and commit duplicates"
    );
}

fn parse_err(text: &str) -> ScenarioError {
    match scenario::parse("test.toml", text) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e,
    }
}

fn assert_error(text: &str, needle: &str, key: &str, words: &str) {
    let e = parse_err(text);
    assert_eq!(e.key, key, "key of: {e}");
    let line = text
        .lines()
        .position(|l| l.contains(needle))
        .expect("needle")
        + 1;
    assert_eq!(e.line, line, "line of: {e}");
    assert!(e.to_string().contains(words), "'{words}' not in: {e}");
}

#[test]
fn produce_to_and_commit_transaction_errors_name_their_line() {
    let at = "consumer_groups[0].handler";
    assert_error(
        &text("java", "produce_to = \"nowhere\"", ""),
        "produce_to",
        &format!("{at}.produce_to"),
        "nowhere",
    );
    assert_error(
        &text("java", "commit = \"transaction\"", ""),
        "commit = \"transaction\"",
        &format!("{at}.commit"),
        "add produce_to",
    );
    assert_error(
        &text("kafka-go", TXN, ""),
        "commit = \"transaction\"",
        &format!("{at}.commit"),
        "kafka-go has no transactional producer",
    );
    assert_error(
        &text("sarama", TXN, ""),
        "commit = \"transaction\"",
        &format!("{at}.commit"),
        "not modelled yet",
    );
    assert_error(
        &text("librdkafka", PLAIN, ""),
        "produce_to",
        &format!("{at}.produce_to"),
        "modelled for the Java client",
    );
    assert_error(
        &text("java", "produce_to = \"orders\"", ""),
        "produce_to",
        &format!("{at}.produce_to"),
        "a topic this group consumes",
    );
    for (extra, words) in [
        ("sink = \"plain\"", "`sink`"),
        ("workers = 4", "`workers`"),
        ("batch = 10", "`batch`"),
    ] {
        assert_error(
            &text("java", &format!("{TXN}\n{extra}"), ""),
            "produce_to",
            &format!("{at}.produce_to"),
            words,
        );
    }
    assert_error(
        &text("java", "commit = \"exactly-once\"", ""),
        "exactly-once",
        &format!("{at}.commit"),
        "transaction",
    );
}

#[test]
fn a_standalone_consumer_cannot_produce_to() {
    let t = r#"name = "x"
duration = "1s"

[cluster]
brokers = 1

[[topics]]
name = "orders"
partitions = 1
replication_factor = 1

[[topics]]
name = "invoices"
partitions = 1
replication_factor = 1

[[consumers]]
client = "java"
topic = "orders"
partitions = [0]
[consumers.handler]
produce_to = "invoices"
"#;
    let e = parse_err(t);
    assert_eq!(e.key, "consumers[0].handler.produce_to", "{e}");
    assert!(e.to_string().contains("for consumer groups"), "{e}");
}

#[test]
fn send_offsets_errors_name_their_line() {
    let at = "consumer_groups[0].handler";
    assert_error(
        &text("java", &format!("{TXN}\nsend_offsets = \"member\""), ""),
        "send_offsets",
        &format!("{at}.send_offsets"),
        "group-metadata",
    );
    assert_error(
        &text("java", &format!("{PLAIN}\nsend_offsets = \"group-id\""), ""),
        "send_offsets",
        &format!("{at}.send_offsets"),
        "commit = \"transaction\"",
    );
    let e = parse_err(&text(
        "java",
        &format!("{PLAIN}\nsend_offsets = \"group-id\""),
        "",
    ));
    assert!(
        e.hint.as_deref().unwrap_or("").contains("transaction"),
        "{e}"
    );
}

/// The TxnOffsetCommit a member sends: with `send_offsets = "group-id"` it names no member
/// and generation -1, which the coordinator stores (`OffsetsStored` with generation -1).
#[test]
fn send_offsets_group_id_commits_without_a_generation() {
    let generations = |handler: &str| -> Vec<i32> {
        let out = run(&text("java", handler, ""), 1);
        out.history
            .as_ref()
            .expect("kept")
            .entries()
            .filter_map(|e| match &e.event {
                HistoryEvent::OffsetsStored { generation, .. } => Some(*generation),
                _ => None,
            })
            .collect()
    };
    let with_metadata = generations(TXN);
    assert!(!with_metadata.is_empty());
    assert!(with_metadata.iter().all(|g| *g >= 1), "{with_metadata:?}");
    let with_group_id = generations(&format!("{TXN}\nsend_offsets = \"group-id\""));
    assert!(!with_group_id.is_empty());
    assert!(with_group_id.iter().all(|g| *g == -1), "{with_group_id:?}");
}
