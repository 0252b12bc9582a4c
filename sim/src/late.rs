//! Late requests: what a client wrote on a connection it has since closed, delivered by the
//! kernel's retransmissions after a partition healed ([`crate::connection`], orphaned
//! sockets), long after the client gave up on it and retried on a new connection.
//!
//! This is how Kafka's transaction protocol breaks without KIP-890 (KAFKA-17754, Jepsen's
//! Bufstream 0.1.0 analysis): the coordinator knows a transaction only by the producer's id
//! and epoch, so a late EndTxn of a finished transaction ends whatever transaction of that
//! producer is open when it arrives, and a late produce joins it. The world notes every late
//! transactional request ([`LateRequest`]); the runner appends them to the violations they
//! can explain ([`explain`]): the values of a transaction that a late request reached while
//! it was open, and stalls (a hanging transaction).

use crate::history::History;
use crate::names::Names;
use crate::violation::{Violation, ViolationKind};
use kafsim_engine::history::HistoryEvent;
use kafsim_engine::protocol::Message;
use kafsim_engine::{Instant, NodeId, TopicPartition};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Most late requests a run keeps (a bound; the first ones tell the story).
pub const MAX_LATE_REQUESTS: usize = 10_000;
/// Late requests named per violation.
const MAX_NAMED: usize = 3;

/// A transactional request of a closed connection, delivered after its client gave it up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LateRequest {
    /// When it reached the server.
    pub at: Instant,
    pub from: NodeId,
    pub to: NodeId,
    /// When it reached the partition that held it (about when the client wrote it).
    pub written_at: Instant,
    /// When the client closed its connection (its request timed out).
    pub closed_at: Option<Instant>,
    pub request: LateKind,
}

/// What the late request asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LateKind {
    EndTxn {
        commit: bool,
        producer_id: i64,
        epoch: i16,
    },
    AddPartitions {
        partitions: Vec<TopicPartition>,
        producer_id: i64,
        epoch: i16,
    },
    /// A produce request carrying transactional batches.
    Produce {
        partitions: Vec<TopicPartition>,
        producer_id: i64,
        epoch: i16,
    },
}

impl LateKind {
    /// The transactional request `msg` is, if it is one.
    pub fn of(msg: &Message) -> Option<LateKind> {
        Some(match msg {
            Message::EndTxnRequest(r) => LateKind::EndTxn {
                commit: r.commit,
                producer_id: r.producer_id,
                epoch: r.producer_epoch,
            },
            Message::AddPartitionsToTxnRequest(r) if !r.verify_only => LateKind::AddPartitions {
                partitions: r.partitions.clone(),
                producer_id: r.producer_id,
                epoch: r.producer_epoch,
            },
            Message::ProduceRequest(r) => {
                let (_, first) = r.batches.iter().find(|(_, b)| b.is_transactional)?;
                LateKind::Produce {
                    partitions: r.batches.iter().map(|(tp, _)| *tp).collect(),
                    producer_id: first.producer_id,
                    epoch: first.producer_epoch,
                }
            }
            _ => return None,
        })
    }

    fn describe(&self, names: &Names) -> String {
        let tps = |ps: &[TopicPartition]| {
            ps.iter()
                .map(|tp| names.tp(*tp))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            LateKind::EndTxn {
                commit,
                producer_id,
                epoch,
            } => format!(
                "EndTxn({}) of producer id {producer_id} epoch {epoch}",
                if *commit { "commit" } else { "abort" }
            ),
            LateKind::AddPartitions {
                partitions,
                producer_id,
                epoch,
            } => format!(
                "AddPartitionsToTxn({}) of producer id {producer_id} epoch {epoch}",
                tps(partitions)
            ),
            LateKind::Produce {
                partitions,
                producer_id,
                epoch,
            } => format!(
                "transactional Produce({}) of producer id {producer_id} epoch {epoch}",
                tps(partitions)
            ),
        }
    }
}

/// One transaction of a producer as the history tells it.
#[derive(Clone, Copy, Debug)]
struct Txn {
    txn: u64,
    begin: Instant,
    end: Option<Instant>,
}

/// Each producer's transactions (by producer index), in begin order.
fn transactions(history: &History) -> BTreeMap<u32, Vec<Txn>> {
    let mut out: BTreeMap<u32, Vec<Txn>> = BTreeMap::new();
    for e in history.entries() {
        match &e.event {
            HistoryEvent::TxnBegin { producer, txn } => {
                out.entry(*producer).or_default().push(Txn {
                    txn: *txn,
                    begin: e.at,
                    end: None,
                })
            }
            HistoryEvent::TxnCommit { producer, txn }
            | HistoryEvent::TxnAbort { producer, txn }
            | HistoryEvent::TxnUnknown { producer, txn, .. } => {
                if let Some(t) = out
                    .get_mut(producer)
                    .and_then(|v| v.iter_mut().rev().find(|t| t.txn == *txn))
                {
                    t.end.get_or_insert(e.at);
                }
            }
            _ => {}
        }
    }
    out
}

/// The transaction of `txns` open at `at`.
fn open_at(txns: &[Txn], at: Instant) -> Option<Txn> {
    txns.iter()
        .rev()
        .find(|t| t.begin <= at && t.end.is_none_or(|e| e >= at))
        .copied()
}

/// One line naming a late request, its times and the transactions it straddled.
fn line(late: &LateRequest, txns: &[Txn], names: &Names) -> String {
    let client = names.node(late.from);
    let mut out = format!(
        "{} of {client}, written at {}",
        late.request.describe(names),
        secs(late.written_at)
    );
    if let Some(t) = open_at(txns, late.written_at) {
        let _ = write!(out, " in its transaction {}", t.txn);
    }
    match late.closed_at {
        Some(c) => {
            let _ = write!(
                out,
                " on a connection {client} closed at {} (the request timed out; it retried on a \
                 new one)",
                secs(c)
            );
        }
        None => out.push_str(" on a connection its client has closed"),
    }
    let _ = write!(
        out,
        ", reached {} at {}",
        names.node(late.to),
        secs(late.at)
    );
    match open_at(txns, late.at) {
        Some(t) => {
            let _ = write!(
                out,
                " while its transaction {} was open (begun at {}): without KIP-890 part 2 the \
                 coordinator knows a transaction only by producer id and epoch, so it took the \
                 request for one of transaction {}",
                t.txn,
                secs(t.begin),
                t.txn
            );
        }
        None => out.push_str(" between its transactions"),
    }
    out
}

fn secs(t: Instant) -> String {
    format!("{:.3}s", t.as_secs_f64())
}

/// Append to each violation the late requests that explain it: for a value of a transaction,
/// the late requests of its producer that arrived while that transaction was open; for a
/// stall, the last late transactional requests of the run.
pub fn explain(
    violations: &mut [Violation],
    late: &[LateRequest],
    history: &History,
    names: &Names,
) {
    if late.is_empty() || violations.is_empty() {
        return;
    }
    let txns = transactions(history);
    let mut txn_of: BTreeMap<u64, (u32, u64)> = BTreeMap::new();
    let wanted: std::collections::BTreeSet<u64> = violations
        .iter()
        .filter_map(|v| v.value)
        .map(|v| v.0)
        .collect();
    for e in history.entries() {
        if let HistoryEvent::TxnValue {
            producer,
            txn,
            value,
        } = &e.event
        {
            if wanted.contains(&value.0) {
                txn_of.insert(value.0, (*producer, *txn));
            }
        }
    }
    let producer_of =
        |node: NodeId| -> Option<u32> { names.node(node).strip_prefix("producer-")?.parse().ok() };
    let empty = Vec::new();
    for v in violations.iter_mut() {
        let named: Vec<String> = match v.kind {
            ViolationKind::AbortedRead | ViolationKind::LostWrite | ViolationKind::Unseen => {
                let Some(&(producer, txn)) = v.value.and_then(|x| txn_of.get(&x.0)) else {
                    continue;
                };
                let mine = txns.get(&producer).unwrap_or(&empty);
                let Some(t) = mine.iter().rev().find(|t| t.txn == txn) else {
                    continue;
                };
                late.iter()
                    .filter(|l| producer_of(l.from) == Some(producer))
                    .filter(|l| l.at >= t.begin && t.end.is_none_or(|e| l.at <= e))
                    .take(MAX_NAMED)
                    .map(|l| line(l, mine, names))
                    .collect()
            }
            ViolationKind::Stall => late
                .iter()
                .rev()
                .take(MAX_NAMED)
                .map(|l| {
                    let mine = producer_of(l.from)
                        .and_then(|p| txns.get(&p))
                        .unwrap_or(&empty);
                    line(l, mine, names)
                })
                .collect(),
            _ => continue,
        };
        for n in named {
            let _ = write!(v.detail, "; late request: {n}");
        }
    }
}
