//! KAFKA-17754 by hand (issue 14): a transactional Java producer's host loses its network
//! while its EndTxn(commit) is on the wire. After `request.timeout.ms` (30 s) the client
//! closes the connection and retries the EndTxn on a new one, which gets through after the
//! heal; the application goes on with its next transactions. The original, still in the
//! closed socket, is retransmitted by the kernel about 51 s after it got stuck and reaches
//! the coordinator while a later transaction is open. Without KIP-890 (no partition
//! verification, `transaction.version` 0) the coordinator knows a transaction only by
//! producer id and epoch, so it commits that later transaction's first records; the
//! application then aborts it (its EndTxn(abort) finds the transaction committed:
//! INVALID_TXN_STATE, fatal), and a read_committed consumer has read values of an aborted
//! transaction. With both KIP-890 parts on, the same schedule is harmless: the late EndTxn
//! carries the epoch of the transaction it was for, which every EndTxn since has bumped.
//!
//! The fault is scripted at a fixed time: the producer's EndTxn of the transaction ending at
//! 9.7 s is on the wire at 9702.5 ms in seed 1 (its timeline before the fault does not
//! depend on the fault). To hit that instant the producer keeps the old lattice
//! (`producers_in_step`: its first send at instant zero, not at a random instant of its
//! first second).

use kafsim_sim::runner::{prepare, run_seed, RunOptions, RunOutput};
use kafsim_sim::scenario;
use kafsim_sim::violation::ViolationKind;

fn scenario_text(verification: bool, version: u32) -> String {
    format!(
        r#"name = "kafka-17754"
duration = "70s"
seeds = 1

[cluster]
brokers = 3
[cluster.config]
"min.insync.replicas" = 2
"transaction.partition.verification.enable" = {verification}
"transaction.version" = {version}

[[topics]]
name = "orders"
partitions = 3
replication_factor = 3

[[producers]]
client = "java"
topic = "orders"
rate = 20
keys = 20
[producers.config]
"transactional.id" = "orders-app"
[producers.transactions]
records = 5
abort = 0.5

[[consumer_groups]]
group = "audit"
members = 2
client = "java"
topics = ["orders"]
[consumer_groups.config]
"enable.auto.commit" = false
"auto.offset.reset" = "earliest"
"isolation.level" = "read_committed"
[consumer_groups.handler]
commit = "sync"

[[faults.schedule]]
at = "9702.5ms"
action = "producer-partition"
target = "producer:0"
duration = "33s"
"#
    )
}

fn run(text: &str) -> RunOutput {
    let s = scenario::parse("test.toml", text).unwrap_or_else(|e| panic!("{e}"));
    let p = prepare(s).unwrap_or_else(|e| panic!("{e}"));
    let opts = RunOptions {
        producers_in_step: true,
        ..RunOptions::default()
    };
    run_seed(&p, 1, &opts)
}

#[test]
fn a_late_end_txn_commits_a_later_transaction_without_kip_890() {
    let out = run(&scenario_text(false, 0));
    let aborted: Vec<_> = out
        .result
        .violations
        .iter()
        .filter(|v| v.kind == ViolationKind::AbortedRead)
        .collect();
    assert!(!aborted.is_empty(), "{:#?}", out.result.violations);
    let d = &aborted[0].detail;
    // The violation tells the story: who read what, of which transaction, and the late
    // request that committed it.
    for words in [
        "(read_committed) read",
        "of transaction 242 of producer-0 aborted at 60706.068ms",
        "late request: EndTxn(commit) of producer id 1000 epoch 0 of producer-0",
        "written at 9.703s in its transaction 38",
        "closed at 39.702s (the request timed out; it retried on a new one)",
        "reached broker-2 at 60.703s while its transaction 242 was open",
        "producer id and epoch",
    ] {
        assert!(d.contains(words), "'{words}' not in: {d}");
    }
    assert!(
        out.result
            .violations
            .iter()
            .all(|v| v.kind == ViolationKind::AbortedRead),
        "{:#?}",
        out.result.violations
    );
}

#[test]
fn the_same_late_end_txn_is_fenced_with_kip_890() {
    let out = run(&scenario_text(true, 2));
    assert!(
        out.result.violations.is_empty(),
        "{:#?}",
        out.result.violations
    );
}
