//! sarama's transactional producer in whole runs (issue 14): `Producer.Transaction.ID` with
//! the idempotence sarama demands, commits and aborts read right by a `read_committed` group,
//! an application abort that still writes its queued records (sarama has no
//! `abortUndrainedBatches`), the keys sarama refuses at their line, and KIP-890 part 2's
//! end-of-transaction epoch bump that sarama's EndTxn v3 never gets.

use crate::txn_support::{
    aborted_values_read_and_reported, assert_only_commits, assert_reads_exactly_the_commits,
    failed_by_abort, fates, line_of, prepare_err, read_by_java, run,
};

/// The three settings sarama's `Config.Validate` demands of a transactional producer.
const SARAMA_TXN: &str = "\"Producer.Idempotent\" = true\n\"Producer.RequiredAcks\" = \
                          \"WaitForAll\"\n\"Net.MaxOpenRequests\" = 1";

/// One transactional sarama producer and one Java group reading with `isolation`
/// ([`read_by_java`]); `config` is the producer's config table.
fn scenario_text(isolation: &str, abort: f64, config: &str, version: &str) -> String {
    read_by_java(
        &format!("client = \"sarama\"\nclient_version = \"{version}\""),
        &format!("\"Producer.Transaction.ID\" = \"orders-app\"\n{config}"),
        isolation,
        abort,
    )
}

#[test]
fn sarama_commits_and_aborts_and_read_committed_sees_only_the_commits() {
    let out = run(&scenario_text("read_committed", 0.3, SARAMA_TXN, "1.43"));
    assert_reads_exactly_the_commits(&out);
}

/// sarama's `AbortTxn` waits for its queued messages (`inFlight.Wait()`) instead of failing
/// them (Java's `abortUndrainedBatches`): the application's aborted records are written and
/// acknowledged, then aborted by the markers, and a read_uncommitted group reads them.
#[test]
fn sarama_abort_still_writes_what_is_queued_and_read_uncommitted_reads_it() {
    let out = run(&scenario_text("read_uncommitted", 0.3, SARAMA_TXN, "1.43"));
    let f = fates(&out);
    assert!(f.aborts >= 10, "{}", f.aborts);
    let acked_aborted = f.aborted.intersection(&f.acked).count();
    assert!(
        acked_aborted >= 5 * f.aborts * 9 / 10,
        "aborted transactions' records are still written: {acked_aborted} of {}",
        5 * f.aborts
    );
    let (read_aborted, aborted_reads) = aborted_values_read_and_reported(&out);
    assert!(
        read_aborted > 0 && aborted_reads > 0 && aborted_reads <= read_aborted,
        "{read_aborted} / {aborted_reads}"
    );
}

/// The Java producer fails the records an application abort finds queued
/// (`abortUndrainedBatches`: TRANSACTION_ABORTED); sarama never does.
#[test]
fn java_fails_what_an_abort_finds_queued_and_sarama_does_not() {
    let java = scenario_text("read_uncommitted", 0.3, "", "4.0")
        .replace("client = \"sarama\"", "client = \"java\"")
        .replace("\"Producer.Transaction.ID\"", "\"transactional.id\"");
    assert!(failed_by_abort(&run(&java)) > 0);
    let sarama = run(&scenario_text("read_uncommitted", 0.3, SARAMA_TXN, "1.43"));
    assert_eq!(failed_by_abort(&sarama), 0);
}

#[test]
fn sarama_before_1_37_has_no_transactional_producer() {
    let text = scenario_text("read_committed", 0.0, SARAMA_TXN, "1.36");
    let e = prepare_err(&text);
    assert_eq!(e.line, line_of(&text, "Producer.Transaction.ID"), "{e}");
    assert!(e.to_string().contains("since 1.37"), "{e}");
    assert!(e.to_string().contains("1.36"), "{e}");
    assert!(e.hint.as_deref().unwrap_or("").contains("1.37"), "{e}");
}

#[test]
fn sarama_demands_idempotence_acks_all_and_one_open_request() {
    let text = scenario_text("read_committed", 0.0, "", "1.43");
    let e = prepare_err(&text);
    assert!(e.to_string().contains("requires Idempotent"), "{e}");
    assert!(
        e.hint
            .as_deref()
            .unwrap_or("")
            .contains("Net.MaxOpenRequests"),
        "{e}"
    );
    let text = scenario_text(
        "read_committed",
        0.0,
        "\"Producer.Idempotent\" = true\n\"Net.MaxOpenRequests\" = 1",
        "1.43",
    );
    let e = prepare_err(&text);
    assert!(e.to_string().contains("acks=all"), "{e}");
    let text = scenario_text(
        "read_committed",
        0.0,
        "\"Producer.Idempotent\" = true\n\"Producer.RequiredAcks\" = \"WaitForAll\"",
        "1.43",
    );
    let e = prepare_err(&text);
    assert!(e.to_string().contains("max.in.flight"), "{e}");
    assert!(e.to_string().contains("<= 1"), "{e}");
}

#[test]
fn sarama_transaction_retry_keys_are_checked_at_their_line() {
    let bad = format!("{SARAMA_TXN}\n\"Producer.Transaction.Retry.Backoff\" = \"soon\"");
    let text = scenario_text("read_committed", 0.0, &bad, "1.43");
    let e = prepare_err(&text);
    assert_eq!(e.line, line_of(&text, "Retry.Backoff"), "{e}");
    assert!(e.to_string().contains("Go duration"), "{e}");
    let bad = format!("{SARAMA_TXN}\n\"sarama.Transaction.Retry.Max\" = -1");
    let text = scenario_text("read_committed", 0.0, &bad, "1.43");
    let e = prepare_err(&text);
    assert_eq!(e.line, line_of(&text, "Retry.Max"), "{e}");
    let java = scenario_text(
        "read_committed",
        0.0,
        "\"sarama.Transaction.Retry.Max\" = 5",
        "4.0",
    )
    .replace("client = \"sarama\"", "client = \"java\"")
    .replace("\"Producer.Transaction.ID\"", "\"transactional.id\"");
    let e = prepare_err(&java);
    assert!(
        e.to_string()
            .contains("sarama's Producer.Transaction.Retry"),
        "{e}"
    );
    // A valid pair runs.
    let good = format!(
        "{SARAMA_TXN}\n\"Producer.Transaction.Retry.Max\" = 5\n\
         \"Producer.Transaction.Retry.Backoff\" = \"10ms\"\n\
         \"Producer.Transaction.Timeout\" = \"30s\""
    );
    let out = run(&scenario_text("read_committed", 0.0, &good, "1.43"));
    assert!(fates(&out).commits >= 50);
}

/// KIP-890 part 2 bumps the epoch at every EndTxn only for clients that send EndTxn v5+
/// (Java 4.0); sarama's v3 keeps its epoch, so its transactions still commit on a
/// `transaction.version = 2` cluster (they would all be fenced if the coordinator bumped an
/// epoch sarama never reads).
#[test]
fn transaction_version_2_does_not_bump_saramas_epoch() {
    let text = scenario_text("read_committed", 0.0, SARAMA_TXN, "1.43").replace(
        "\"min.insync.replicas\" = 2",
        "\"min.insync.replicas\" = 2\n\"transaction.version\" = 2",
    );
    assert_only_commits(&run(&text));
}
