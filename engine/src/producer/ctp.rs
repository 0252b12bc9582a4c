//! The producer of a consume-transform-produce application: a Java `KafkaProducer` hosted in
//! the consumer's process (handler `produce_to`), whose application is the consumer's poll
//! loop rather than a `[producers]` workload.
//!
//! The consumer hands it one output record per processed input ([`Producer::ctp_send`]) and
//! ends each poll batch with [`Producer::ctp_end`]:
//!
//! - transactional (`commit = "transaction"`, apache/kafka `KafkaProducer`
//!   `beginTransaction` / `send` / `sendOffsetsToTransaction(offsets, groupMetadata)` /
//!   `commitTransaction`): the first send begins a transaction; the end adds the group's
//!   `__consumer_offsets` partition with AddOffsetsToTxn (`TransactionManager
//!   .AddOffsetsToTxnHandler`), finds the group coordinator and sends it TxnOffsetCommit with
//!   the consumer's member id and generation (`TxnOffsetCommitHandler`, KIP-447), then
//!   commits with EndTxn once every batch is complete. An abortable error (a failed send,
//!   TxnOffsetCommit answered UNKNOWN_MEMBER_ID / ILLEGAL_GENERATION / FENCED_INSTANCE_ID,
//!   which Java raises as `CommitFailedException`) makes the application abort instead; a
//!   fatal one (ProducerFenced) makes it close the producer and build a new one
//!   (`transaction.rs`). The application learns the outcome with [`Producer::ctp_outcome`].
//! - not transactional (produce-then-commit): the end is `flush()`; the outcome is
//!   `Committed` when every output send of the batch was acknowledged, else `Aborted` (the
//!   application then re-reads from its committed offsets rather than commit past a lost
//!   output).
//!
//! Output records carry their input's value id, so the sink checkers can link each output
//! to the input it came from. The hosted producer records no history of its own (the
//! consumer hosts it through [`crate::node::Cx::hosted`]).

use super::transaction::{AppTxn, TxnRequest};
use super::{Producer, ProducerConfig, ProducerSpec};
use crate::node::Cx;
use crate::protocol::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, CoordinatorType, ErrorCode,
    FindCoordinatorRequest, Message, TxnOffsetCommitRequest, TxnOffsetCommitResponse,
};
use crate::record::{Key, TopicPartition, ValueId};

/// Correlation ids of a hosted producer start here (its host's own ids are below 2^62), so
/// the host can tell their answers apart.
pub const HOSTED_CORRELATION_BASE: u64 = 1 << 62;

/// Output sends waiting for the producer (a bound: a poll batch is at most
/// `max.poll.records`).
pub const MAX_QUEUED_OUTPUTS: usize = 100_000;

/// `sendOffsetsToTransaction(offsets, groupMetadata)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnOffsets {
    pub group: String,
    pub member_id: String,
    pub generation: i32,
    pub offsets: Vec<(TopicPartition, u64, Option<u32>)>,
    /// AddOffsetsToTxn succeeded.
    pub added: bool,
}

/// How a batch's transaction (or flush) ended, as the application sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxnOutcome {
    /// `commitTransaction()` returned (or, without transactions, `flush()` with every send
    /// acknowledged).
    Committed,
    /// Aborted (an abortable error, or an output send that failed).
    Aborted,
    /// The producer was fenced (or failed fatally) and rebuilt: the transaction is aborted by
    /// the coordinator, or committed if its EndTxn(commit) got there first.
    Fenced,
}

/// The hosted producer's application state.
#[derive(Debug, Default)]
pub(super) struct External {
    /// Outputs handed over and not yet appended (value, key, size).
    pub queue: std::collections::VecDeque<(ValueId, Option<Key>, u32)>,
    /// The batch's end was asked for: commit (true) or abort.
    pub end: Option<(bool, Option<TxnOffsets>)>,
    /// Without transactions: an output send of the batch failed or ended unknown.
    pub failed: bool,
    pub outcome: Option<TxnOutcome>,
}

impl super::transaction::TransactionManager {
    /// The offsets request due next, if the transaction commits offsets.
    pub(super) fn offsets_request(&self) -> Option<TxnRequest> {
        let o = self.offsets.as_ref()?;
        let committing = matches!(
            self.app(),
            AppTxn::Open { .. } | AppTxn::Ending { commit: true, .. }
        );
        if !committing {
            return None;
        }
        Some(if !o.added {
            TxnRequest::AddOffsets
        } else if self.group_coordinator.is_none() {
            TxnRequest::FindGroupCoordinator
        } else {
            TxnRequest::TxnOffsetCommit
        })
    }
}

/// The message of an offsets request of `t`.
pub(super) fn offsets_message(
    t: &super::transaction::TransactionManager,
    correlation_id: u64,
    request: &TxnRequest,
    producer_id: i64,
    producer_epoch: i16,
) -> Message {
    let o = t.offsets.as_ref().expect("an offsets request has offsets");
    match request {
        TxnRequest::AddOffsets => Message::AddOffsetsToTxnRequest(AddOffsetsToTxnRequest {
            correlation_id,
            transactional_id: t.transactional_id().to_string(),
            producer_id,
            producer_epoch,
            group: o.group.clone(),
        }),
        TxnRequest::FindGroupCoordinator => {
            Message::FindCoordinatorRequest(FindCoordinatorRequest {
                correlation_id,
                key: o.group.clone(),
                key_type: CoordinatorType::Group,
            })
        }
        TxnRequest::TxnOffsetCommit => Message::TxnOffsetCommitRequest(TxnOffsetCommitRequest {
            correlation_id,
            transactional_id: t.transactional_id().to_string(),
            group: o.group.clone(),
            producer_id,
            producer_epoch,
            member_id: o.member_id.clone(),
            generation: o.generation,
            offsets: o.offsets.clone(),
        }),
        other => unreachable!("not an offsets request: {other:?}"),
    }
}

impl Producer {
    /// A producer hosted by a consumer's application (see the module docs): it makes no sends
    /// of its own and records no history.
    pub fn hosted(mut spec: ProducerSpec, config: ProducerConfig) -> Producer {
        spec.rate = None;
        spec.stop_at = crate::time::Instant::ZERO;
        spec.transactions = None;
        let mut p = Producer::new(spec, config);
        p.external = Some(External::default());
        p.sender.set_correlation_base(HOSTED_CORRELATION_BASE);
        if let Some(t) = p.txn.as_mut() {
            t.external = true;
        }
        p
    }

    /// Whether the application may start a batch: its producer is initialized
    /// (`initTransactions()` returned) and between transactions, with no outcome untaken.
    pub fn ctp_ready(&self) -> bool {
        let Some(ext) = self.external.as_ref() else {
            return false;
        };
        if ext.end.is_some() || ext.outcome.is_some() || !ext.queue.is_empty() {
            return false;
        }
        match self.txn.as_ref() {
            Some(t) => t.app() == AppTxn::Ready && t.outcome.is_none() && t.accepts_sends(),
            None => self.outstanding_records == 0,
        }
    }

    /// `producer.send(output)`: one output record for a processed input.
    pub fn ctp_send(&mut self, cx: &mut Cx, value: ValueId, key: Option<Key>, size: u32) {
        let ext = self.external.as_mut().expect("a hosted producer");
        assert!(
            ext.queue.len() < MAX_QUEUED_OUTPUTS,
            "hosted producer: {MAX_QUEUED_OUTPUTS} outputs queued"
        );
        ext.queue.push_back((value, key, size));
        self.poll(cx);
    }

    /// The end of a poll batch: commit (with the consumer's offsets, when transactional) or
    /// abort its transaction; without transactions, flush.
    pub fn ctp_end(&mut self, cx: &mut Cx, commit: bool, offsets: Option<TxnOffsets>) {
        let ext = self.external.as_mut().expect("a hosted producer");
        assert!(ext.end.is_none(), "hosted producer: the batch ended twice");
        ext.end = Some((commit, offsets));
        self.poll(cx);
    }

    /// Take the outcome of the batch that ended, once it is known.
    pub fn ctp_outcome(&mut self) -> Option<TxnOutcome> {
        self.external.as_mut()?.outcome.take()
    }

    /// A hosted output send completed: without transactions a failure fails the batch.
    pub(super) fn ctp_record_done(&mut self, ok: bool) {
        if let Some(ext) = self.external.as_mut() {
            if !ok {
                ext.failed = true;
            }
        }
    }

    /// The hosted application's part of `poll`: hand the queued outputs over, then end the
    /// batch once every output is handed over.
    pub(super) fn run_external(&mut self, cx: &mut Cx) {
        let now = cx.now();
        for _ in 0..super::workload::MAX_SENDS_PER_WAKE {
            if self.blocked.is_some() {
                return;
            }
            let Some(&(value, key, size)) = self.external.as_ref().and_then(|e| e.queue.front())
            else {
                break;
            };
            if let Some(t) = self.txn.as_ref() {
                // The batch's transaction already failed (an abortable error, or the
                // producer was fenced and rebuilt: its outcome waits for the batch's end):
                // Java's `send` throws, the output is not sent, and the batch is aborted and
                // re-read. Only an output that was never in a transaction waits for the
                // producer to initialize (a fatal error between two transactions).
                let failed = t.outcome.is_some()
                    || (!t.accepts_sends() && !matches!(t.app(), AppTxn::Initializing));
                if failed {
                    self.external.as_mut().expect("hosted").queue.pop_front();
                    continue;
                }
                if !t.accepts_sends() {
                    return; // initializing: wait
                }
                if !self.txn_before_send(cx) {
                    return;
                }
                self.txn_sent(cx, value);
            }
            self.external.as_mut().expect("hosted").queue.pop_front();
            self.stats.invoked += 1;
            self.outstanding_records += 1;
            let send = super::BlockedSend {
                value,
                key,
                size,
                since: now,
            };
            if !self.try_append(cx, send) {
                return;
            }
        }
        self.ctp_maybe_end(cx);
    }

    fn ctp_maybe_end(&mut self, cx: &mut Cx) {
        let Some(ext) = self.external.as_mut() else {
            return;
        };
        if !ext.queue.is_empty() || self.blocked.is_some() {
            return;
        }
        let Some((commit, _)) = ext.end.as_ref() else {
            return;
        };
        let commit = *commit;
        let Some(t) = self.txn.as_mut() else {
            // produce-then-commit: `flush()` returns once every output completed.
            if self.outstanding_records == 0 {
                let ext = self.external.as_mut().expect("hosted");
                ext.end = None;
                let failed = std::mem::take(&mut ext.failed);
                ext.outcome = Some(if commit && !failed {
                    TxnOutcome::Committed
                } else {
                    TxnOutcome::Aborted
                });
            }
            return;
        };
        if let Some(outcome) = t.outcome.take() {
            let ext = self.external.as_mut().expect("hosted");
            ext.end = None;
            ext.outcome = Some(outcome);
            return;
        }
        if t.fatal.is_some() {
            return; // the next poll rebuilds the producer; its outcome is Fenced
        }
        match t.app() {
            AppTxn::Initializing => {
                // Nothing open (the producer was rebuilt, or is bumping its epoch after an
                // abort): nothing to commit or abort.
                let ext = self.external.as_mut().expect("hosted");
                ext.end = None;
                ext.outcome = Some(TxnOutcome::Aborted);
            }
            AppTxn::Ready => {
                let offsets = self
                    .external
                    .as_mut()
                    .and_then(|e| e.end.as_mut())
                    .and_then(|(_, o)| o.take());
                match offsets {
                    Some(o) if commit && !o.offsets.is_empty() => {
                        // `beginTransaction()` with no sends: the offsets alone are the
                        // transaction.
                        if !self.txn_before_send(cx) {
                            return;
                        }
                        let t = self.txn.as_mut().expect("transactional");
                        t.offsets = Some(o);
                        self.ctp_end_txn(cx, true);
                    }
                    _ => {
                        let ext = self.external.as_mut().expect("hosted");
                        ext.end = None;
                        ext.outcome = Some(if commit {
                            TxnOutcome::Committed
                        } else {
                            TxnOutcome::Aborted
                        });
                    }
                }
            }
            AppTxn::Open { .. } => {
                let offsets = self
                    .external
                    .as_mut()
                    .and_then(|e| e.end.as_mut())
                    .and_then(|(_, o)| o.take());
                let t = self.txn.as_mut().expect("transactional");
                if commit && t.abortable.is_none() {
                    t.offsets = offsets.filter(|o| !o.offsets.is_empty());
                }
                self.ctp_end_txn(cx, commit);
            }
            AppTxn::Ending { commit: true, .. } => {
                // `commitTransaction()` throws the abortable error; the application aborts.
                if t.abortable.is_some() {
                    self.ctp_end_txn(cx, false);
                }
            }
            AppTxn::Ending { .. } => {}
        }
    }

    /// `commitTransaction()` / `abortTransaction()` of the open transaction.
    fn ctp_end_txn(&mut self, _cx: &mut Cx, commit: bool) {
        let t = self.txn.as_mut().expect("transactional");
        let txn = match t.app() {
            AppTxn::Open { txn, .. } | AppTxn::Ending { txn, .. } => txn,
            other => unreachable!("ending a transaction in state {other:?}"),
        };
        let commit = commit && t.abortable.is_none();
        t.set_ending(txn, commit);
        self.accumulator.set_flushing(commit);
    }

    /// `AddOffsetsToTxnHandler.handleResponse`.
    pub(super) fn on_add_offsets_response(
        &mut self,
        cx: &mut Cx,
        from: crate::node::NodeId,
        r: AddOffsetsToTxnResponse,
    ) {
        if self.take_txn_in_flight(from, r.correlation_id).is_none() {
            return;
        }
        let now = cx.now();
        let backoff = self.config.retry_backoff;
        let t = self.txn.as_mut().expect("transactional");
        match r.error {
            ErrorCode::None => {
                if let Some(o) = t.offsets.as_mut() {
                    o.added = true;
                }
                t.mark_started();
            }
            ErrorCode::NotCoordinator | ErrorCode::CoordinatorNotAvailable => {
                self.txn_retry(now, true, backoff)
            }
            e if e.is_retriable() => self.txn_retry(now, false, backoff),
            ErrorCode::InvalidProducerEpoch | ErrorCode::ProducerFenced => {
                t.set_fatal(ErrorCode::ProducerFenced)
            }
            ErrorCode::UnknownProducerId | ErrorCode::InvalidProducerIdMapping => {
                t.set_abortable(r.error, true)
            }
            e => t.set_fatal(e),
        }
    }

    /// `TxnOffsetCommitHandler.handleResponse`.
    pub(super) fn on_txn_offset_commit_response(
        &mut self,
        cx: &mut Cx,
        from: crate::node::NodeId,
        r: TxnOffsetCommitResponse,
    ) {
        if self.take_txn_in_flight(from, r.correlation_id).is_none() {
            return;
        }
        let now = cx.now();
        let backoff = self.config.retry_backoff;
        let error = r
            .results
            .iter()
            .map(|(_, e)| *e)
            .find(|e| *e != ErrorCode::None)
            .unwrap_or(ErrorCode::None);
        let t = self.txn.as_mut().expect("transactional");
        match error {
            ErrorCode::None => t.offsets = None,
            ErrorCode::NotCoordinator
            | ErrorCode::CoordinatorNotAvailable
            | ErrorCode::RequestTimedOut => {
                t.group_coordinator = None;
                self.txn_retry(now, false, backoff)
            }
            ErrorCode::CoordinatorLoadInProgress | ErrorCode::UnknownTopicOrPartition => {
                self.txn_retry(now, false, backoff)
            }
            // KIP-447: the member's generation is stale or it left the group
            // (`CommitFailedException`), or a static member was fenced: abortable.
            ErrorCode::UnknownMemberId
            | ErrorCode::IllegalGeneration
            | ErrorCode::FencedInstanceId
            | ErrorCode::RebalanceInProgress => t.set_abortable(error, false),
            ErrorCode::InvalidProducerEpoch | ErrorCode::ProducerFenced => {
                t.set_fatal(ErrorCode::ProducerFenced)
            }
            e => t.set_fatal(e),
        }
    }
}

impl Producer {
    /// The host closed its connection to `peer`: what this producer had in flight there is
    /// lost (answered as a disconnect, then retried).
    pub fn connection_closed(&mut self, cx: &mut Cx, peer: crate::node::NodeId) {
        self.on_connection_lost(cx, peer, "connection closed by the consumer");
        self.poll(cx);
    }
}
