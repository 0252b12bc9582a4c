//! Why a transactional producer fell behind its `rate`, from its history.
//!
//! A transactional application makes no send while `commitTransaction()` or
//! `abortTransaction()` runs (Java `KafkaProducer.commitTransaction` blocks until the
//! transaction completes; sarama's `CommitTxn` and librdkafka's `rd_kafka_commit_transaction`
//! likewise), nor while `initTransactions()` or the epoch bump after an abort waits for its
//! coordinator. Under faults those waits are what holds it back, not the client's buffers: a
//! commit waits for the acknowledgement of every record of the transaction (a partition whose
//! leader it cannot reach holds it until `delivery.timeout.ms`), then for the coordinator's
//! answer to EndTxn. Each transaction's wait is split that way: from the application's last
//! send to the last outcome of its records (the records' part, named by the partition of
//! that last outcome), and from there to the transaction's end (the coordinator's part); the
//! time between the end of a transaction and the next one's first send beyond the rate's
//! interval, and from the start to the first transaction, is waiting for the coordinator
//! too (`initTransactions()`, the epoch bump).

use crate::history::History;
use crate::names::Names;
use crate::scenario::format_span;
use kafsim_engine::history::HistoryEvent;
use kafsim_engine::{Duration, Instant, TopicPartition, ValueId};
use std::collections::BTreeMap;

/// Where a transactional producer's application waited, over the load phase (the totals count
/// only what fell within it; the longest waits are whole).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TxnWaits {
    pub transactions: u64,
    /// Waiting for the records of ending transactions to be acknowledged (or to fail).
    pub records: Duration,
    /// The longest such wait: when it began, how long, and the partition it ended on.
    pub longest_records: Option<(Instant, Duration, Option<TopicPartition>)>,
    /// Waiting for the coordinator: EndTxn's answer, `initTransactions()`, epoch bumps.
    pub coordinator: Duration,
    /// The longest such wait: when it began, how long.
    pub longest_coordinator: Option<(Instant, Duration)>,
}

/// One transaction of the producer, as the history tells it.
#[derive(Default)]
struct Txn {
    begin: Option<Instant>,
    last_send: Option<Instant>,
    end: Option<Instant>,
    values: Vec<ValueId>,
}

/// The waits of producer `producer`'s application over the load phase (`load_end`), whose
/// rate asks for a send every `interval`.
pub fn transaction_waits(
    history: &History,
    producer: u32,
    load_end: Instant,
    interval: Duration,
) -> TxnWaits {
    let mut txns: BTreeMap<u64, Txn> = BTreeMap::new();
    let mut outcomes: BTreeMap<ValueId, (Instant, Option<TopicPartition>)> = BTreeMap::new();
    for e in history.entries() {
        match &e.event {
            HistoryEvent::TxnBegin { producer: p, txn } if *p == producer => {
                txns.entry(*txn).or_default().begin = Some(e.at);
            }
            HistoryEvent::TxnValue {
                producer: p,
                txn,
                value,
            } if *p == producer => {
                let t = txns.entry(*txn).or_default();
                t.last_send = Some(e.at);
                t.values.push(*value);
            }
            HistoryEvent::TxnCommit { producer: p, txn }
            | HistoryEvent::TxnAbort { producer: p, txn }
            | HistoryEvent::TxnUnknown {
                producer: p, txn, ..
            } if *p == producer => {
                txns.entry(*txn).or_default().end.get_or_insert(e.at);
            }
            HistoryEvent::SendOk {
                producer: p,
                value,
                partition,
                ..
            } if *p == producer => {
                outcomes.entry(*value).or_insert((e.at, Some(*partition)));
            }
            HistoryEvent::SendFail {
                producer: p, value, ..
            }
            | HistoryEvent::SendInfo {
                producer: p, value, ..
            } if *p == producer => {
                outcomes.entry(*value).or_insert((e.at, None));
            }
            _ => {}
        }
    }
    let mut waits = TxnWaits::default();
    let mut previous_end = Some(Instant::ZERO);
    // Transactions in the order they began.
    let mut ordered: Vec<&Txn> = txns.values().filter(|t| t.begin.is_some()).collect();
    ordered.sort_by_key(|t| t.begin);
    for t in ordered {
        let begin = t.begin.expect("filtered");
        if begin >= load_end {
            break;
        }
        if let Some(end) = previous_end {
            // From the previous end to this first send: the rate's interval is its own pace.
            let idle = begin.saturating_since(end).saturating_sub(interval);
            waits.add_coordinator(end, end + idle, load_end);
        }
        let (Some(last_send), Some(end)) = (t.last_send, t.end) else {
            previous_end = None;
            continue;
        };
        waits.transactions += 1;
        let last = (t.values.iter())
            .filter_map(|v| outcomes.get(v))
            .filter(|(at, _)| *at <= end)
            .max_by_key(|(at, _)| *at);
        let records_done = last.map_or(last_send, |(at, _)| (*at).max(last_send));
        waits.add_records(last_send, records_done, load_end, last.and_then(|l| l.1));
        waits.add_coordinator(records_done, end, load_end);
        previous_end = Some(end);
    }
    waits
}

impl TxnWaits {
    fn add_records(
        &mut self,
        from: Instant,
        to: Instant,
        load_end: Instant,
        on: Option<TopicPartition>,
    ) {
        self.records += to.min(load_end).saturating_since(from);
        let d = to.saturating_since(from);
        if self.longest_records.is_none_or(|(_, l, _)| d > l) && !d.is_zero() {
            self.longest_records = Some((from, d, on));
        }
    }

    fn add_coordinator(&mut self, from: Instant, to: Instant, load_end: Instant) {
        self.coordinator += to.min(load_end).saturating_since(from);
        let d = to.saturating_since(from);
        if self.longest_coordinator.is_none_or(|(_, l)| d > l) && !d.is_zero() {
            self.longest_coordinator = Some((from, d));
        }
    }

    /// The warning's reason: `its transactions held the application back: ...`.
    pub fn pace(&self, seed: u64, load: Duration, names: &Names) -> String {
        let mut out = format!(
            "its transactions held the application back, not its client's buffers: a \
             transactional application sends nothing while a commit or abort waits for its \
             records' acknowledgements and the coordinator's answer, nor while \
             initTransactions() or an epoch bump waits for the coordinator; in seed {seed}, \
             of the {} load it spent {} waiting for its records ({} transactions ended",
            format_span(load),
            format_span(self.records),
            self.transactions
        );
        if let Some((at, d, on)) = self.longest_records {
            let from = on.map_or_else(String::new, |tp| format!(" on {}", names.tp(tp)));
            out.push_str(&format!(
                "; the longest {} from {at}, for an acknowledgement{from}",
                format_span(d)
            ));
        }
        out.push_str(&format!(
            ") and {} for its coordinator",
            format_span(self.coordinator)
        ));
        if let Some((at, d)) = self.longest_coordinator {
            out.push_str(&format!(" (the longest {} from {at})", format_span(d)));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::test_support::{tp, Story};

    /// Two transactions at 10 records/s: the first commits at once, the second's record on
    /// partition 1 is acknowledged 3 s late and EndTxn takes 2 s more; the producer then
    /// waits 1 s beyond its interval before its third transaction.
    #[test]
    fn waits_split_between_records_and_coordinator() {
        let mut s = Story::new();
        s.event(
            100,
            HistoryEvent::TxnBegin {
                producer: 0,
                txn: 1,
            },
        );
        s.txn_value(100, 0, 1, 1)
            .invoke(100, 0, 1, None)
            .ok(110, 0, 1, 0, 0);
        s.txn_commit(120, 0, 1);
        s.event(
            220,
            HistoryEvent::TxnBegin {
                producer: 0,
                txn: 2,
            },
        );
        s.txn_value(220, 0, 2, 2)
            .invoke(220, 0, 2, None)
            .ok(3220, 0, 2, 1, 0);
        s.txn_commit(5220, 0, 2);
        s.event(
            6320,
            HistoryEvent::TxnBegin {
                producer: 0,
                txn: 3,
            },
        );
        let waits = transaction_waits(
            s.history(),
            0,
            Instant::from_millis(10_000),
            Duration::from_millis(100),
        );
        assert_eq!(waits.transactions, 2);
        assert_eq!(waits.records, Duration::from_millis(10 + 3000));
        assert_eq!(
            waits.longest_records,
            Some((
                Instant::from_millis(220),
                Duration::from_millis(3000),
                Some(tp(1))
            ))
        );
        // EndTxn: 10 ms and 2 s; before the first transaction nothing beyond the interval;
        // before the third 1 s.
        assert_eq!(waits.coordinator, Duration::from_millis(10 + 2000 + 1000));
        assert_eq!(
            waits.longest_coordinator,
            Some((Instant::from_millis(3220), Duration::from_millis(2000)))
        );
        let mut names = Names::new();
        names.set_topic(tp(1).topic, "orders");
        let pace = waits.pace(3, Duration::from_secs(10), &names);
        assert!(
            pace.ends_with(
                "in seed 3, of the 10s load it spent 3.01s waiting for its records (2 \
                 transactions ended; the longest 3s from 220.000ms, for an acknowledgement on \
                 orders/1) and 3.01s for its coordinator (the longest 2s from 3220.000ms)"
            ),
            "{pace}"
        );
    }
}
