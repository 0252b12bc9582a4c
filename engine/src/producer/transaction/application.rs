//! The application side of a transactional producer (`KafkaProducer.beginTransaction`,
//! `commitTransaction`, `abortTransaction`, and the `[producers.transactions]` loop): when a
//! transaction begins and ends, what its records belong to, and the rebuild of the producer
//! after a fatal error.

use super::{AppTxn, TxnStats, MAX_PRODUCER_REBUILDS};
use crate::history::HistoryEvent;
use crate::node::{Cx, NodeId};
use crate::producer::{Outcome, Producer};
use crate::protocol::ErrorCode;
use std::collections::BTreeSet;

impl Producer {
    /// The transaction ended as the application asked (`completeTransaction`). `ids`: the
    /// EndTxn answer's producer id and epoch (None when no EndTxn was needed).
    pub(in crate::producer) fn finish_transaction(&mut self, cx: &mut Cx, ids: Option<(i64, i16)>) {
        let producer = self.producer_index();
        let t = self.txn.as_mut().expect("transactional");
        let AppTxn::Ending { txn, commit } = t.app else {
            return; // a late answer to a transaction already given up
        };
        let event = if commit {
            self.stats_txn.committed += 1;
            HistoryEvent::TxnCommit { producer, txn }
        } else {
            self.stats_txn.aborted += 1;
            HistoryEvent::TxnAbort { producer, txn }
        };
        cx.record(event);
        if t.external {
            t.outcome = Some(if commit {
                crate::producer::ctp::TxnOutcome::Committed
            } else {
                crate::producer::ctp::TxnOutcome::Aborted
            });
        }
        t.offsets = None;
        let bump = t.bump_after_abort && !commit;
        t.added.clear();
        t.new_partitions.clear();
        t.started = false;
        t.commit_sent = false;
        t.abortable = None;
        t.bump_after_abort = false;
        t.req_cnt = 0;
        t.end_txn_retries = 0;
        t.app = if bump {
            AppTxn::Initializing
        } else {
            AppTxn::Ready
        };
        self.accumulator.set_flushing(false);
        let idem = self
            .idempotence
            .as_mut()
            .expect("transactions are idempotent");
        if bump {
            idem.request_bump();
        } else if let Some((pid, epoch)) = ids {
            // KIP-890 part 2: the coordinator bumped the epoch at this EndTxn.
            if pid == idem.producer_id() && epoch > idem.producer_epoch() {
                idem.on_init(pid, epoch);
                self.accumulator.clear_sequences();
            }
        }
    }

    /// The application's side before each send: begin a transaction if none is open, end
    /// one that is complete, failed or outlived the run. False if no send may be made now.
    pub(in crate::producer) fn txn_before_send(&mut self, cx: &mut Cx) -> bool {
        let producer = self.producer_index();
        let Some(t) = self.txn.as_mut() else {
            return true;
        };
        if !t.accepts_sends() {
            return false;
        }
        if t.app == AppTxn::Ready {
            let txn = (t.incarnation << 32) | t.next_n;
            t.next_n += 1;
            t.app = AppTxn::Open { txn, records: 0 };
            cx.record(HistoryEvent::TxnBegin { producer, txn });
        }
        true
    }

    /// A send of value `value` was made: it belongs to the open transaction.
    pub(in crate::producer) fn txn_sent(&mut self, cx: &mut Cx, value: crate::record::ValueId) {
        let producer = self.producer_index();
        let Some(t) = self.txn.as_mut() else { return };
        let AppTxn::Open { txn, records } = t.app else {
            unreachable!("a transactional send outside a transaction")
        };
        t.app = AppTxn::Open {
            txn,
            records: records + 1,
        };
        cx.record(HistoryEvent::TxnValue {
            producer,
            txn,
            value,
        });
    }

    /// The application ends its open transaction when it has its records, when an abortable
    /// error occurred (commit would throw it; the application aborts), or when the run stops.
    pub(in crate::producer) fn txn_maybe_end(&mut self, cx: &mut Cx) {
        let now = cx.now();
        let stopped = self.workload.stopped(now);
        let Some(t) = self.txn.as_mut() else { return };
        if t.fatal.is_some() || t.external {
            return;
        }
        let (txn, commit_wanted) = match t.app {
            AppTxn::Open { txn, records } => {
                // An application that never ends its transaction (`records = "unlimited"`)
                // ends it only to abort on an error its sends reported.
                let more = t.workload.records.is_none_or(|n| records < n);
                let stops = stopped && !t.workload.never_ends();
                if t.abortable.is_none() && more && !stops {
                    return;
                }
                (txn, true)
            }
            AppTxn::Ending { txn, commit: true } if t.abortable.is_some() => (txn, false),
            // No transaction open, or its end already asked for (an abort, or a commit with no
            // error to turn it into an abort): nothing to end.
            AppTxn::Initializing | AppTxn::Ready | AppTxn::Ending { .. } => return,
        };
        let commit = commit_wanted
            && t.abortable.is_none()
            && !(t.workload.abort > 0.0 && rand::Rng::gen_bool(cx.rng(), t.workload.abort));
        t.app = AppTxn::Ending { txn, commit };
        if t.sarama() {
            // sarama `finishTransaction` only waits (`inFlight.Wait()`): no flush, and an abort
            // still adds and writes what is queued.
            return;
        }
        if commit {
            self.accumulator.set_flushing(true);
        } else {
            // `beginAbort`: no partitions are added any more.
            t.new_partitions.clear();
            self.accumulator.set_flushing(false);
        }
    }

    /// A record of the transaction failed (`handleFailedBatch` → `maybeTransitionToErrorState`).
    pub(in crate::producer) fn txn_record_failed(&mut self, error: ErrorCode) {
        if let Some(t) = self.txn.as_mut() {
            t.on_send_failed(error);
        }
    }

    /// A fatal error: the application closes the producer (its connections, so nothing in
    /// flight is answered any more; everything incomplete ends failed or unknown) and builds
    /// a new one with the same `transactional.id`.
    pub(super) fn rebuild_after_fatal(&mut self, cx: &mut Cx, error: ErrorCode) {
        let producer = self.producer_index();
        let t = self.txn.as_mut().expect("transactional");
        let ended = match t.app {
            AppTxn::Open { txn, .. } | AppTxn::Ending { txn, .. } => Some((txn, t.commit_sent)),
            _ => None,
        };
        if let Some((txn, commit_sent)) = ended {
            if commit_sent {
                self.stats_txn.unknown += 1;
                cx.record(HistoryEvent::TxnUnknown {
                    producer,
                    txn,
                    reason: "producer fenced while committing",
                });
            } else {
                self.stats_txn.aborted += 1;
                cx.record(HistoryEvent::TxnAbort { producer, txn });
            }
        }
        let t = self.txn.as_mut().expect("transactional");
        let mut brokers: BTreeSet<NodeId> =
            t.in_flight.take().map(|i| i.broker).into_iter().collect();
        // Close first: the completions below see the transaction still open and change
        // nothing (it is given up already); the state is reset after them.
        for (broker, batches) in self.sender.take_all_in_flight() {
            brokers.insert(broker);
            for mut b in batches {
                b.maybe_written = true;
                let outcome = Outcome::Unknown("producer closed after a fatal error");
                self.complete_batch(cx, b, outcome);
            }
        }
        for batch in self.accumulator.purge() {
            let outcome = if batch.maybe_written {
                Outcome::Unknown("producer closed after a fatal error")
            } else {
                Outcome::Fail(error)
            };
            self.complete_batch(cx, batch, outcome);
        }
        for broker in brokers {
            cx.close_connection(broker);
        }
        let t = self.txn.as_mut().expect("transactional");
        if t.external && ended.is_some() {
            t.outcome = Some(crate::producer::ctp::TxnOutcome::Fenced);
        }
        t.offsets = None;
        t.group_coordinator = None;
        t.coordinator = None;
        t.added.clear();
        t.new_partitions.clear();
        t.started = false;
        t.abortable = None;
        t.bump_after_abort = false;
        t.req_cnt = 0;
        t.end_txn_retries = 0;
        t.fatal = None;
        t.commit_sent = false;
        t.app = AppTxn::Initializing;
        t.next_attempt = cx.now();
        if t.sarama() {
            t.next_attempt = cx.now() + self.config.transaction_retry_backoff();
            t.add_failures = 0;
            t.add_gave_up = None;
        }
        t.rebuilds += 1;
        let exhausted = t.rebuilds >= MAX_PRODUCER_REBUILDS;
        self.stats_txn.rebuilds += 1;
        self.accumulator.set_flushing(false);
        self.idempotence = Some(crate::producer::idempotence::IdempotenceState::new());
        if exhausted {
            self.fatal = Some(error);
        }
    }

    /// Counters of this producer's transactions (zero for a plain producer).
    pub fn txn_stats(&self) -> &TxnStats {
        &self.stats_txn
    }

    /// Number the transactions of this life of the producer.
    pub(in crate::producer) fn txn_start(&mut self, incarnation: u64) {
        if let Some(t) = self.txn.as_mut() {
            t.incarnation = incarnation;
            t.next_n = 0;
        }
    }
}
