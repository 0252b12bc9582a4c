//! The Java producer's transactions in whole runs (issue 14): a transactional producer commits
//! and aborts through the coordinator on the brokers, a `read_committed` group reads every
//! committed value and no aborted one, a `read_uncommitted` group reads aborted ones too
//! (`aborted-read`), and the transaction keys are errors at their line when they are wrong.

use crate::txn_support::{
    aborted_values_read_and_reported, assert_reads_exactly_the_commits, fates, line_of,
    prepare_err, read_by_java, run,
};
use kafsim_sim::scenario::{self, ScenarioError};

/// One transactional producer of `client` and one Java group reading with `isolation`
/// ([`TxnScenario`]); `extra` goes into the producer's config.
fn scenario_text(isolation: &str, abort: f64, extra: &str, client: &str) -> String {
    read_by_java(
        &format!("client = \"{client}\""),
        &format!("\"transactional.id\" = \"orders-app\"\n{extra}"),
        isolation,
        abort,
    )
}

#[test]
fn read_committed_reads_every_committed_value_and_no_aborted_one() {
    let out = run(&scenario_text("read_committed", 0.3, "", "java"));
    assert_reads_exactly_the_commits(&out);
}

#[test]
fn read_uncommitted_reads_aborted_values_and_the_checker_says_so() {
    let out = run(&scenario_text("read_uncommitted", 0.3, "", "java"));
    let f = fates(&out);
    assert!(f.committed.is_subset(&f.polled));
    let (read_aborted, aborted_reads) = aborted_values_read_and_reported(&out);
    assert!(
        read_aborted > 0,
        "aborted values were acknowledged and read"
    );
    assert!(
        aborted_reads > 0 && aborted_reads <= read_aborted,
        "{aborted_reads}"
    );
}

fn parse_err(text: &str) -> ScenarioError {
    match scenario::parse("test.toml", text) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e,
    }
}

#[test]
fn kafka_go_has_no_transactional_producer() {
    let text = scenario_text("read_committed", 0.0, "", "kafka-go");
    let e = prepare_err(&text);
    assert_eq!(e.key, "producers[0].config.transactional.id", "{e}");
    assert_eq!(e.line, line_of(&text, "transactional.id"), "{e}");
    assert!(e.to_string().contains("no transactional producer"), "{e}");
    assert!(e.hint.as_deref().unwrap_or("").contains("java"), "{e}");
}

#[test]
fn transactions_need_idempotence() {
    let text = scenario_text(
        "read_committed",
        0.0,
        "\"enable.idempotence\" = false",
        "java",
    );
    let e = prepare_err(&text);
    assert_eq!(e.key, "producers[0].config.enable.idempotence", "{e}");
    assert_eq!(e.line, line_of(&text, "enable.idempotence"), "{e}");
    assert!(e.to_string().contains("transactional.id"), "{e}");
    assert!(e.hint.is_some(), "{e}");
    let text = scenario_text("read_committed", 0.0, "acks = \"1\"", "java");
    let e = prepare_err(&text);
    assert!(e.to_string().contains("acks=all"), "{e}");
}

#[test]
fn transaction_table_values_are_checked() {
    let text = scenario_text("read_committed", 1.5, "", "java");
    let e = parse_err(&text);
    assert_eq!(e.key, "producers[0].transactions.abort", "{e}");
    assert_eq!(e.line, line_of(&text, "abort = 1.5"), "{e}");
    assert!(e.hint.as_deref().unwrap_or("").contains("fraction"), "{e}");
    let text =
        scenario_text("read_committed", 0.0, "", "java").replace("records = 5", "records = 0");
    let e = parse_err(&text);
    assert_eq!(e.key, "producers[0].transactions.records", "{e}");
    assert_eq!(e.line, line_of(&text, "records = 0"), "{e}");
    // `records` is an integer or "unlimited" (an application that never ends its transaction).
    for bad in ["records = \"forever\"", "records = 2.5"] {
        let text = scenario_text("read_committed", 0.0, "", "java").replace("records = 5", bad);
        let e = parse_err(&text);
        assert_eq!(e.key, "producers[0].transactions.records", "{e}");
        assert_eq!(e.line, line_of(&text, bad), "{e}");
        assert!(e.to_string().contains("\"unlimited\""), "{e}");
        assert!(e.hint.as_deref().unwrap_or("").contains("never"), "{e}");
    }
    let text = scenario_text("read_committed", 0.0, "", "java")
        .replace("records = 5", "records = \"unlimited\"");
    let s = kafsim_sim::scenario::parse("t.toml", &text).expect("unlimited parses");
    assert_eq!(s.producers[0].transactions.map(|t| t.records), Some(None));
    let text = scenario_text("read_committed", 0.0, "", "java")
        .replace("\"transactional.id\" = \"orders-app\"", "");
    let e = parse_err(&text);
    assert_eq!(e.key, "producers[0].transactions", "{e}");
    assert!(e.to_string().contains("no transactional.id"), "{e}");
    assert!(
        e.hint.as_deref().unwrap_or("").contains("transactional.id"),
        "{e}"
    );
}

#[test]
fn transaction_properties_are_checked_at_their_line() {
    let text = scenario_text(
        "read_committed",
        0.0,
        "\"transaction.timeout.ms\" = 0",
        "java",
    );
    let e = prepare_err(&text);
    assert_eq!(e.key, "producers[0].config.transaction.timeout.ms", "{e}");
    assert_eq!(e.line, line_of(&text, "transaction.timeout.ms"), "{e}");
    let text = scenario_text("read_committed", 0.0, "", "java").replace(
        "\"min.insync.replicas\" = 2",
        "\"min.insync.replicas\" = 2\n\"transaction.version\" = 3",
    );
    let e = prepare_err(&text);
    assert_eq!(e.key, "cluster.config.transaction.version", "{e}");
    assert_eq!(e.line, line_of(&text, "transaction.version"), "{e}");
    let text = scenario_text("read_committed", 0.0, "", "java").replace(
        "\"min.insync.replicas\" = 2",
        "\"min.insync.replicas\" = 2\n\"transaction.partition.verification.enable\" = \"yes\"",
    );
    let e = prepare_err(&text);
    assert_eq!(
        e.key, "cluster.config.transaction.partition.verification.enable",
        "{e}"
    );
    assert_eq!(e.line, line_of(&text, "verification.enable"), "{e}");
}
