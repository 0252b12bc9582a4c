//! librdkafka's transactional producer: where it differs from Java's `TransactionManager`.
//!
//! Read from confluentinc/librdkafka (2.x; the model starts at 1.7.0, where KIP-360 made
//! idempotence errors of a transaction abortable): `src/rdkafka_txnmgr.c`,
//! `src/rdkafka_idempotence.c`, `src/rdkafka_request.c`, `src/rdkafka_broker.c`. The
//! application API (`rd_kafka_init_transactions`, `begin_transaction`, `produce`,
//! `commit_transaction`, `abort_transaction`) runs the same protocol as Java's, and like Java
//! (not sarama) it fails what an abort finds queued (`rd_kafka_abort_transaction` purges with
//! `RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_ABORT_TXN`, then flushes what is in flight) and
//! flushes before a commit (`rd_kafka_commit_transaction` → `rd_kafka_flush`). Differences:
//!
//! - Backoffs are librdkafka's timers, not `retry.backoff.ms`: FindCoordinator is re-sent by
//!   the coordinator query timer after 500 ms (`rd_kafka_txn_coord_timer_start(rk, 500)`),
//!   InitProducerId by the PID timer after 500 ms (`rd_kafka_idemp_pid_timer_restart`),
//!   AddPartitionsToTxn after 500 ms, 20 ms for CONCURRENT_TRANSACTIONS
//!   (`rd_kafka_txn_handle_AddPartitionsToTxn`: `retry_backoff_ms`). EndTxn is a request
//!   buffer retried with `rd_kafka_buf_retry` (`rkbuf_max_retries` =
//!   `RD_KAFKA_REQUEST_MAX_RETRIES`, INT_MAX) on the logical coordinator broker: after
//!   `retry.backoff.ms` · 2^(retries-1), ±20 %, at most `retry.backoff.max.ms`
//!   (`rd_kafka_broker_buf_retry`).
//! - A lost connection or timed-out request (with `socket.max.fails` = 1 the connection is
//!   closed) makes the coordinator monitor query the coordinator again
//!   (`rd_kafka_txn_coord_monitor_cb`), so every transactional request is re-sent to a
//!   coordinator looked up anew.
//! - Error classes: InitProducerId retries every error but INVALID_PRODUCER_EPOCH,
//!   PRODUCER_FENCED and INVALID_TRANSACTION_TIMEOUT, which are fatal
//!   (`rd_kafka_idemp_check_error`; CONCURRENT_TRANSACTIONS is retried).
//!   AddPartitionsToTxn retries NOT_COORDINATOR / COORDINATOR_NOT_AVAILABLE (with a new
//!   coordinator), CONCURRENT_TRANSACTIONS, COORDINATOR_LOAD_IN_PROGRESS and
//!   UNKNOWN_TOPIC_OR_PART; INVALID_PRODUCER_EPOCH, PRODUCER_FENCED and INVALID_TXN_STATE are
//!   fatal; UNKNOWN_PRODUCER_ID / INVALID_PRODUCER_ID_MAPPING abortable with an epoch bump;
//!   every other error abortable. EndTxn retries the coordinator errors,
//!   COORDINATOR_LOAD_IN_PROGRESS and CONCURRENT_TRANSACTIONS; UNKNOWN_PRODUCER_ID /
//!   INVALID_PRODUCER_ID_MAPPING end an abort with an epoch bump and make a commit abortable
//!   with one; the fencing errors and INVALID_TXN_STATE are fatal; "all unhandled errors are
//!   permanent": abortable (`rd_kafka_txn_handle_EndTxn`).
//! - A produce answered INVALID_PRODUCER_EPOCH is fatal ("transactional producer fenced by
//!   newer producer instance", `rd_kafka_handle_Produce_error`), where Java (KIP-588) makes it
//!   abortable. Any other failed delivery makes the transaction abortable (`txn_dr_fails`:
//!   the commit is refused with `txn_requires_abort`); with an epoch bump when messages timed
//!   out (`rd_kafka_toppar_producer_serve` → `rd_kafka_idemp_drain_epoch_bump`) or the
//!   sequence broke, without one for other permanent errors.
//! - EndTxn is sent when `txn_req_cnt` > 0: an AddPartitionsToTxn was sent and not
//!   definitely refused (a timed-out one counts, since it may have landed). An
//!   AddPartitionsToTxn answer that arrives once the transaction is aborting or failed is
//!   ignored as outdated and uncounted.
//! - EndTxn is v1 at most (`rd_kafka_EndTxnRequest`: `ApiVersion_supported(.., 0, 1)`) and
//!   InitProducerId v4 at most: KIP-890 part 2's epoch bump at every transaction end never
//!   applies, whatever the cluster's `transaction.version` (as for sarama). Part 1
//!   (verification) is the broker's and holds since librdkafka adds every partition before
//!   producing to it (`rd_kafka_txn_toppar_may_send_msg`).

use super::{AppTxn, TransactionManager, TxnRequest, ADD_PARTITIONS_RETRY_BACKOFF};
use crate::node::Cx;
use crate::producer::Producer;
use crate::protocol::{EndTxnResponse, ErrorCode};
use crate::record::TopicPartition;
use crate::time::{Duration, Instant};

/// `rd_kafka_txn_coord_timer_start(rk, 500)`: the coordinator is queried again after this.
pub(super) const COORD_QUERY_BACKOFF: Duration = Duration::from_millis(500);

/// `rd_kafka_idemp_pid_timer_restart`: a failed InitProducerId is sent again after this.
const PID_RETRY_BACKOFF: Duration = Duration::from_millis(500);

/// `rd_kafka_txn_handle_AddPartitionsToTxn`: `retry_backoff_ms = 500`.
const ADD_PARTITIONS_BACKOFF: Duration = Duration::from_millis(500);

impl TransactionManager {
    /// A message of the transaction failed delivery (`rd_kafka_handle_Produce_error`,
    /// `rd_kafka_dr_msgq0`). The caller has dropped failures outside a transaction, after a
    /// fatal error and the client's own purge (TRANSACTION_ABORTED).
    pub(super) fn librdkafka_send_failed(&mut self, error: ErrorCode) {
        match error {
            // INVALID_PRODUCER_EPOCH is normalised to `__FENCED`: fatal.
            ErrorCode::InvalidProducerEpoch | ErrorCode::ProducerFenced => {
                self.fatal.get_or_insert(ErrorCode::ProducerFenced);
            }
            e => {
                // Retriable errors are retried (retries = INT32_MAX) until
                // `message.timeout.ms`: a timeout, which bumps, as do sequence errors.
                let bump = e.is_retriable()
                    || matches!(
                        e,
                        ErrorCode::OutOfOrderSequenceNumber
                            | ErrorCode::UnknownProducerId
                            | ErrorCode::RequestTimedOut
                            | ErrorCode::NetworkException
                    );
                self.set_abortable(e, bump);
            }
        }
    }
}

impl Producer {
    /// The wait before EndTxn is sent again (`rd_kafka_broker_buf_retry`), counting the retry.
    fn librdkafka_end_txn_backoff(&mut self, cx: &mut Cx) -> Duration {
        let (base, max) = (self.config.retry_backoff, self.config.retry_backoff_max);
        let t = self.txn.as_mut().expect("transactional");
        t.end_txn_retries = t.end_txn_retries.saturating_add(1);
        let shift = t.end_txn_retries - 1;
        if max <= base {
            return base;
        }
        crate::reconnect::java_backoff(shift, base, max, cx.rng())
    }

    /// A transactional request's connection was lost or it timed out.
    pub(super) fn librdkafka_connection_lost(
        &mut self,
        cx: &mut Cx,
        now: Instant,
        request: TxnRequest,
    ) {
        match request {
            // `txn_wait_coord` is cleared and the query timer fires again.
            TxnRequest::FindCoordinator => self.txn_retry(now, false, COORD_QUERY_BACKOFF),
            // `rd_kafka_idemp_request_pid_failed(__TRANSPORT)`: REQ_PID after 500 ms.
            TxnRequest::InitProducerId => self.txn_retry(now, true, PID_RETRY_BACKOFF),
            // "we can't be sure if the request was received by the broker or not": the
            // request stays counted in `txn_req_cnt`, the partitions go back to pending.
            TxnRequest::AddPartitions(_) => self.txn_retry(now, true, ADD_PARTITIONS_BACKOFF),
            // RETRY | REFRESH: the buffer is retried, the coordinator queried after 50 ms.
            TxnRequest::EndTxn { .. } => {
                let backoff = self.librdkafka_end_txn_backoff(cx);
                self.txn_retry(now, true, backoff)
            }
            // librdkafka's consume-transform-produce is not modelled (no AddOffsets here).
            other => unreachable!("librdkafka sent {other:?}"),
        }
    }

    /// InitProducerId answered an error (`rd_kafka_idemp_request_pid_failed`).
    pub(super) fn librdkafka_init_failed(&mut self, now: Instant, error: ErrorCode) {
        match error {
            // `rd_kafka_idemp_check_error`: fatal.
            ErrorCode::InvalidProducerEpoch
            | ErrorCode::ProducerFenced
            | ErrorCode::InvalidTransactionTimeout => {
                let t = self.txn.as_mut().expect("transactional");
                t.fatal.get_or_insert(error);
            }
            ErrorCode::NotCoordinator | ErrorCode::CoordinatorNotAvailable => {
                self.txn_retry(now, true, PID_RETRY_BACKOFF)
            }
            _ => self.txn_retry(now, false, PID_RETRY_BACKOFF),
        }
    }

    /// `rd_kafka_txn_handle_AddPartitionsToTxn`.
    pub(super) fn librdkafka_add_partitions_response(
        &mut self,
        now: Instant,
        partitions: Vec<TopicPartition>,
        error: ErrorCode,
    ) {
        let t = self.txn.as_mut().expect("transactional");
        // Only IN_TRANSACTION and BEGIN_COMMIT take the answer; otherwise it is outdated,
        // and an error answer is uncounted (`txn_req_cnt--`).
        let current = matches!(
            t.app,
            AppTxn::Open { .. } | AppTxn::Ending { commit: true, .. }
        ) && t.abortable.is_none()
            && t.fatal.is_none();
        if error != ErrorCode::None || !current {
            t.req_cnt = t.req_cnt.saturating_sub(1);
        }
        if !current {
            return;
        }
        match error {
            ErrorCode::None => t.partitions_added(partitions),
            ErrorCode::NotCoordinator | ErrorCode::CoordinatorNotAvailable => {
                self.txn_retry(now, true, ADD_PARTITIONS_BACKOFF)
            }
            ErrorCode::ConcurrentTransactions => {
                self.txn_retry(now, false, ADD_PARTITIONS_RETRY_BACKOFF)
            }
            ErrorCode::CoordinatorLoadInProgress | ErrorCode::UnknownTopicOrPartition => {
                self.txn_retry(now, false, ADD_PARTITIONS_BACKOFF)
            }
            ErrorCode::InvalidProducerEpoch
            | ErrorCode::ProducerFenced
            | ErrorCode::InvalidTxnState => {
                t.new_partitions.clear();
                t.fatal.get_or_insert(error);
            }
            e => {
                // UNKNOWN_PRODUCER_ID / INVALID_PRODUCER_ID_MAPPING:
                // `rd_kafka_idemp_drain_epoch_bump` (abort, then bump); the rest abortable.
                let bump = matches!(
                    e,
                    ErrorCode::UnknownProducerId | ErrorCode::InvalidProducerIdMapping
                );
                t.new_partitions.clear();
                t.set_abortable(e, bump);
            }
        }
    }

    /// `rd_kafka_txn_handle_EndTxn`. EndTxn v1's answer has no producer id or epoch.
    pub(super) fn librdkafka_end_txn_response(
        &mut self,
        cx: &mut Cx,
        commit: bool,
        r: EndTxnResponse,
    ) {
        let now = cx.now();
        let t = self.txn.as_ref().expect("transactional");
        if t.abortable.is_some() && matches!(t.app, AppTxn::Ending { .. }) {
            // ABORTABLE_ERROR while EndTxn was out: "the transaction will have failed locally
            // but the EndTxn(commit) may have succeeded". A failed EndTxn hands back the
            // transaction's error (the application aborts); a commit that succeeded is a
            // fatal error to the application, although the transaction did commit.
            if r.error == ErrorCode::None {
                self.finish_transaction(cx, None);
                if commit {
                    let t = self.txn.as_mut().expect("transactional");
                    t.fatal.get_or_insert(ErrorCode::InvalidTxnState);
                }
            }
            return;
        }
        let producer_id_lost = matches!(
            r.error,
            ErrorCode::UnknownProducerId | ErrorCode::InvalidProducerIdMapping
        );
        match r.error {
            ErrorCode::None => self.finish_transaction(cx, None),
            ErrorCode::NotCoordinator | ErrorCode::CoordinatorNotAvailable => {
                let backoff = self.librdkafka_end_txn_backoff(cx);
                self.txn_retry(now, true, backoff)
            }
            ErrorCode::CoordinatorLoadInProgress | ErrorCode::ConcurrentTransactions => {
                let backoff = self.librdkafka_end_txn_backoff(cx);
                self.txn_retry(now, false, backoff)
            }
            _ if producer_id_lost && !commit => {
                // The abort completes once the epoch is bumped (`idemp_state_change`).
                self.txn.as_mut().expect("transactional").bump_after_abort = true;
                self.finish_transaction(cx, None);
            }
            ErrorCode::InvalidProducerEpoch
            | ErrorCode::ProducerFenced
            | ErrorCode::InvalidTxnState => {
                let t = self.txn.as_mut().expect("transactional");
                t.fatal.get_or_insert(r.error);
            }
            // "All unhandled errors are permanent": abortable (with a bump for the lost
            // producer id). A commit turns into an abort; a failed abort goes back to
            // BEGIN_ABORT and the application calls `abort_transaction` again.
            e if commit => {
                let t = self.txn.as_mut().expect("transactional");
                t.set_abortable(e, producer_id_lost);
            }
            _ => {
                let backoff = self.librdkafka_end_txn_backoff(cx);
                self.txn_retry(now, false, backoff)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::TxnWorkload;
    use super::*;
    use crate::client::ClientKind;
    use crate::node::NodeId;
    use crate::record::TopicId;

    const A: TopicPartition = TopicPartition::new(TopicId(0), 0);

    fn manager(client: ClientKind) -> TransactionManager {
        TransactionManager::new(
            "t-0".into(),
            Duration::from_millis(60_000),
            TxnWorkload::default(),
        )
        .for_client(client, u32::MAX)
    }

    /// librdkafka: a produce fenced with INVALID_PRODUCER_EPOCH is fatal; Java (KIP-588)
    /// aborts the transaction and goes on.
    #[test]
    fn invalid_producer_epoch_on_produce_is_fatal_for_librdkafka_only() {
        let mut r = manager(ClientKind::Librdkafka);
        r.app = AppTxn::Open { txn: 0, records: 1 };
        r.on_send_failed(ErrorCode::InvalidProducerEpoch);
        assert_eq!(r.fatal, Some(ErrorCode::ProducerFenced));
        assert_eq!(r.abortable, None);
        let mut j = manager(ClientKind::Java);
        j.app = AppTxn::Open { txn: 0, records: 1 };
        j.on_send_failed(ErrorCode::InvalidProducerEpoch);
        assert_eq!(j.fatal, None);
        assert_eq!(j.abortable, Some(ErrorCode::InvalidProducerEpoch));
    }

    /// A timed-out message bumps the epoch after the abort even while committing (the
    /// timeout scan's `rd_kafka_idemp_drain_epoch_bump`); a permanent error does not bump.
    /// Java skips the bump while completing.
    #[test]
    fn librdkafka_bumps_for_timeouts_in_any_state_and_not_for_permanent_errors() {
        let ending = AppTxn::Ending {
            txn: 0,
            commit: true,
        };
        let mut r = manager(ClientKind::Librdkafka);
        r.app = ending;
        r.on_send_failed(ErrorCode::RequestTimedOut);
        assert_eq!(r.abortable, Some(ErrorCode::RequestTimedOut));
        assert!(r.bump_after_abort);
        let mut j = manager(ClientKind::Java);
        j.app = ending;
        j.on_send_failed(ErrorCode::RequestTimedOut);
        assert!(!j.bump_after_abort, "Java does not bump while completing");
        let mut p = manager(ClientKind::Librdkafka);
        p.app = AppTxn::Open { txn: 0, records: 1 };
        p.on_send_failed(ErrorCode::RecordListTooLarge);
        assert_eq!(p.abortable, Some(ErrorCode::RecordListTooLarge));
        assert!(
            !p.bump_after_abort,
            "a permanent error aborts without a bump"
        );
    }

    /// `txn_req_cnt`: a sent AddPartitionsToTxn makes the end need an EndTxn even before
    /// (or without) its answer; Java needs a successful add (`transactionStarted`).
    #[test]
    fn librdkafka_ends_with_end_txn_once_an_add_was_sent() {
        let mut r = manager(ClientKind::Librdkafka);
        r.coordinator = Some(NodeId(1));
        assert!(!r.needs_end_txn());
        r.req_cnt = 1;
        assert!(r.needs_end_txn(), "an unanswered add may have landed");
        let mut j = manager(ClientKind::Java);
        j.req_cnt = 1;
        assert!(!j.needs_end_txn(), "Java counts only a successful add");
        j.started = true;
        assert!(j.needs_end_txn());
    }

    #[test]
    fn librdkafka_requests_come_in_the_same_order_as_java() {
        let mut t = manager(ClientKind::Librdkafka);
        assert_eq!(t.next_request(false), Some(TxnRequest::FindCoordinator));
        t.coordinator = Some(NodeId(0));
        t.app = AppTxn::Open { txn: 0, records: 1 };
        t.maybe_add_partition(A);
        assert!(!t.send_allowed(A), "not registered yet");
        assert_eq!(
            t.next_request(false),
            Some(TxnRequest::AddPartitions(vec![A]))
        );
    }
}
