//! librdkafka's transactional producer in whole runs (issue 14): `transactional.id` turning
//! idempotence on by itself (`rd_kafka_conf_finalize`), commits and aborts read right by a
//! librdkafka group that reads committed data by default, an abort that fails what it finds
//! queued (`rd_kafka_abort_transaction` purges, as Java's `abortUndrainedBatches`, unlike
//! sarama), EndTxn v1 that KIP-890 part 2 never bumps, and the settings librdkafka refuses.

use crate::txn_support::{
    aborted_values_read_and_reported, assert_only_commits, assert_reads_exactly_the_commits,
    failed_by_abort, line_of, prepare_err, run, TxnScenario,
};

/// One transactional librdkafka producer and one librdkafka group ([`TxnScenario`]);
/// `config` is added to the producer's config table, `group` to the group's and `cluster`
/// to the cluster's.
fn scenario_text(abort: f64, config: &str, group: &str, cluster: &str) -> String {
    TxnScenario {
        producer: "client = \"librdkafka\"",
        producer_config: &format!("\"transactional.id\" = \"orders-app\"\n{config}"),
        abort,
        group_client: "librdkafka",
        group_config: group,
        cluster_config: cluster,
    }
    .text()
}

/// The librdkafka consumer's default `isolation.level` is read_committed (CONFIGURATION.md):
/// with no setting, the group reads every committed value and no aborted one.
#[test]
fn librdkafka_commits_and_aborts_and_its_default_group_reads_only_the_commits() {
    let out = run(&scenario_text(0.3, "", "", ""));
    assert_reads_exactly_the_commits(&out);
}

/// The same run with the group set to read_uncommitted reads aborted values, and the
/// checker reports them: the default above is what keeps them out.
#[test]
fn librdkafka_group_set_to_read_uncommitted_reads_aborted_values() {
    let text = scenario_text(0.3, "", "\"isolation.level\" = \"read_uncommitted\"", "");
    let (read_aborted, aborted_reads) = aborted_values_read_and_reported(&run(&text));
    assert!(
        read_aborted > 0 && aborted_reads > 0,
        "{read_aborted} / {aborted_reads}"
    );
}

/// `rd_kafka_abort_transaction` purges the queued messages of an aborted transaction
/// (`RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_ABORT_TXN`), as Java does and sarama does
/// not; with no aborts nothing is purged.
#[test]
fn librdkafka_abort_purges_what_it_finds_queued() {
    // A long linger keeps the aborted transaction's records queued when it aborts.
    let linger = "\"linger.ms\" = 50";
    assert!(failed_by_abort(&run(&scenario_text(0.3, linger, "", ""))) > 0);
    assert_eq!(
        failed_by_abort(&run(&scenario_text(0.0, linger, "", ""))),
        0
    );
}

/// librdkafka's EndTxn is v1: on a `transaction.version = 2` cluster its epoch is not
/// bumped at every transaction end, and its transactions still commit.
#[test]
fn transaction_version_2_does_not_bump_librdkafkas_epoch() {
    let out = run(&scenario_text(0.0, "", "", "\"transaction.version\" = 2"));
    assert_only_commits(&out);
}

#[test]
fn librdkafka_refuses_idempotence_off_and_a_message_timeout_above_the_transaction_timeout() {
    let text = scenario_text(0.0, "\"enable.idempotence\" = false", "", "");
    let e = prepare_err(&text);
    assert!(
        e.to_string().contains("requires `enable.idempotence=true`"),
        "{e}"
    );
    let text = scenario_text(
        0.0,
        "\"transaction.timeout.ms\" = 10000\n\"message.timeout.ms\" = 20000",
        "",
        "",
    );
    let e = prepare_err(&text);
    assert!(e.to_string().contains("<= `transaction.timeout.ms`"), "{e}");
    assert!(
        e.hint.as_deref().unwrap_or("").contains("leave it unset"),
        "{e}"
    );
    let text = scenario_text(0.0, "\"transaction.timeout.ms\" = 500", "", "");
    let e = prepare_err(&text);
    assert_eq!(e.line, line_of(&text, "transaction.timeout.ms"), "{e}");
    assert!(e.to_string().contains("1000"), "{e}");
}

#[test]
fn librdkafka_before_1_7_is_not_modelled_as_transactional() {
    let text = scenario_text(0.0, "", "", "").replace(
        "client = \"librdkafka\"\ntopic",
        "client = \"librdkafka\"\nclient_version = \"1.6.0\"\ntopic",
    );
    let e = prepare_err(&text);
    assert_eq!(e.line, line_of(&text, "transactional.id"), "{e}");
    assert!(e.to_string().contains("1.6.0"), "{e}");
    assert!(e.hint.as_deref().unwrap_or("").contains("1.7.0"), "{e}");
}

/// librdkafka's consume-transform-produce (`rd_kafka_send_offsets_to_transaction` beside a
/// librdkafka consumer) is not modelled: `commit = "transaction"` says so at its line.
#[test]
fn librdkafka_consume_transform_produce_is_refused_with_a_reason() {
    let text = scenario_text(0.0, "", "", "").replace(
        "[expect]",
        "[consumer_groups.handler]\nproduce_to = \"out\"\ncommit = \"transaction\"\n\n\
         [[topics]]\nname = \"out\"\npartitions = 1\nreplication_factor = 3\n\n[expect]",
    );
    let e = prepare_err(&text);
    assert_eq!(e.line, line_of(&text, "commit = \"transaction\""), "{e}");
    assert!(e.to_string().contains("librdkafka"), "{e}");
    assert!(e.to_string().contains("send_offsets_to_transaction"), "{e}");
}
