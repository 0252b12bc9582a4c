//! Test support for the transaction tests: run a scenario text keeping its history, and sort
//! the values of its transactions by fate.
#![allow(dead_code)]

use kafsim_engine::history::HistoryEvent;
use kafsim_sim::runner::{prepare, run_seed, Prepared, RunOptions, RunOutput};
use kafsim_sim::scenario;
use kafsim_sim::violation::ViolationKind;
use std::collections::BTreeSet;

/// Run seed 1 of a scenario text, keeping the history.
pub fn run(text: &str) -> RunOutput {
    let s = scenario::parse("test.toml", text).unwrap_or_else(|e| panic!("{e}"));
    let p: Prepared = prepare(s).unwrap_or_else(|e| panic!("{e}"));
    let opts = RunOptions {
        keep_history: true,
        ..RunOptions::default()
    };
    run_seed(&p, 1, &opts)
}

/// Values of committed transactions, of aborted ones, acknowledged values, values polled.
pub struct Fates {
    pub committed: BTreeSet<u64>,
    pub aborted: BTreeSet<u64>,
    pub acked: BTreeSet<u64>,
    pub polled: BTreeSet<u64>,
    pub commits: usize,
    pub aborts: usize,
}

pub fn fates(out: &RunOutput) -> Fates {
    let history = out.history.as_ref().expect("kept");
    let mut values: Vec<(u64, u64)> = Vec::new();
    let (mut commits, mut aborts) = (BTreeSet::new(), BTreeSet::new());
    let (mut polled, mut acked) = (BTreeSet::new(), BTreeSet::new());
    for e in history.entries() {
        match &e.event {
            HistoryEvent::TxnValue { txn, value, .. } => values.push((*txn, value.0)),
            HistoryEvent::TxnCommit { txn, .. } => {
                commits.insert(*txn);
            }
            HistoryEvent::TxnAbort { txn, .. } => {
                aborts.insert(*txn);
            }
            HistoryEvent::SendOk { value, .. } => {
                acked.insert(value.0);
            }
            HistoryEvent::Poll { value, .. } => {
                polled.insert(value.0);
            }
            _ => {}
        }
    }
    let of = |set: &BTreeSet<u64>| -> BTreeSet<u64> {
        values
            .iter()
            .filter(|(t, _)| set.contains(t))
            .map(|(_, v)| *v)
            .collect()
    };
    Fates {
        committed: of(&commits),
        aborted: of(&aborts),
        acked,
        polled,
        commits: commits.len(),
        aborts: aborts.len(),
    }
}

/// A run with commits and aborts (at least 50 and 10) whose read_committed group read every
/// committed value and no aborted one, without a violation: what each client's transactional
/// producer must give a read_committed consumer.
pub fn assert_reads_exactly_the_commits(out: &RunOutput) {
    let f = fates(out);
    assert!(
        f.commits >= 50 && f.aborts >= 10,
        "{} / {}",
        f.commits,
        f.aborts
    );
    assert!(
        f.committed.is_subset(&f.polled),
        "committed values unread: {:?}",
        f.committed
            .difference(&f.polled)
            .take(5)
            .collect::<Vec<_>>()
    );
    assert!(
        f.aborted.is_disjoint(&f.polled),
        "an aborted value was read"
    );
    assert!(
        out.result.violations.is_empty(),
        "{:?}",
        out.result.violations
    );
}

/// A run of commits only (at least 50, no abort) without a violation: transactions that must
/// all commit did.
pub fn assert_only_commits(out: &RunOutput) {
    let f = fates(out);
    assert!(
        f.commits >= 50 && f.aborts == 0,
        "{} / {}",
        f.commits,
        f.aborts
    );
    assert!(
        out.result.violations.is_empty(),
        "{:?}",
        out.result.violations
    );
}

/// Aborted values a group polled, and the `aborted-read` violations the checker reported:
/// a read_uncommitted group reads aborted values, and each report is one of those reads.
pub fn aborted_values_read_and_reported(out: &RunOutput) -> (usize, usize) {
    let f = fates(out);
    let read = f.aborted.intersection(&f.polled).count();
    let reported = out
        .result
        .violations
        .iter()
        .filter(|v| v.kind == ViolationKind::AbortedRead)
        .count();
    (read, reported)
}

/// A [`TxnScenario`] read by a Java group at `isolation`, on a cluster of default settings.
pub fn read_by_java(producer: &str, producer_config: &str, isolation: &str, abort: f64) -> String {
    TxnScenario {
        producer,
        producer_config,
        abort,
        group_client: "java",
        group_config: &format!("\"isolation.level\" = \"{isolation}\""),
        cluster_config: "",
    }
    .text()
}

/// The scenario every client's transaction tests run: one transactional producer (rate 200,
/// 5 records per transaction, `abort` of them aborted by the application) and a one-member
/// group reading `orders` from the earliest offset, 4 s on 3 brokers.
pub struct TxnScenario<'a> {
    /// The producer's client lines (`client = "sarama"`, and a `client_version`).
    pub producer: &'a str,
    /// Its `[producers.config]` lines, the transactional id included.
    pub producer_config: &'a str,
    pub abort: f64,
    /// The group's client name.
    pub group_client: &'a str,
    /// More `[consumer_groups.config]` lines (`"isolation.level" = ...`).
    pub group_config: &'a str,
    /// More `[cluster.config]` lines (KIP-890 switches).
    pub cluster_config: &'a str,
}

impl TxnScenario<'_> {
    pub fn text(&self) -> String {
        let TxnScenario {
            producer,
            producer_config,
            abort,
            group_client,
            group_config,
            cluster_config,
        } = self;
        format!(
            r#"name = "txn"
duration = "4s"
seeds = 1

[cluster]
brokers = 3
[cluster.config]
"min.insync.replicas" = 2
"transaction.state.log.num.partitions" = 5
{cluster_config}

[[topics]]
name = "orders"
partitions = 3
replication_factor = 3

[[producers]]
{producer}
topic = "orders"
rate = 200
keys = 20
[producers.config]
{producer_config}
[producers.transactions]
records = 5
abort = {abort}

[[consumer_groups]]
group = "audit"
members = 1
client = "{group_client}"
topics = ["orders"]
[consumer_groups.config]
"auto.offset.reset" = "earliest"
{group_config}

[expect]
allow = ["aborted-read"]
"#
        )
    }
}

/// The error a scenario text gets, at parse or at prepare.
pub fn prepare_err(text: &str) -> kafsim_sim::scenario::ScenarioError {
    let s = match scenario::parse("test.toml", text) {
        Ok(s) => s,
        Err(e) => return e,
    };
    match prepare(s) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e,
    }
}

/// The 1-based line of the first line of `text` containing `needle`.
pub fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle} not in text"))
        + 1
}

/// Records failed with TRANSACTION_ABORTED (the client's own abort or purge of queued
/// records).
pub fn failed_by_abort(out: &RunOutput) -> usize {
    out.history
        .as_ref()
        .expect("kept")
        .entries()
        .filter(|e| {
            matches!(
                e.event,
                HistoryEvent::SendFail {
                    error: kafsim_engine::protocol::ErrorCode::TransactionAborted,
                    ..
                }
            )
        })
        .count()
}
