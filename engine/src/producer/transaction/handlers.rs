//! The transactional responses, one handler per request as Java's `TransactionManager` has
//! them (`FindCoordinatorHandler`, `InitProducerIdHandler`, `AddPartitionsToTxnHandler`,
//! `EndTxnHandler`), with sarama's error switches where `client` is sarama.

use super::{librdkafka, AppTxn, TxnRequest, ADD_PARTITIONS_RETRY_BACKOFF};
use crate::client::ClientKind;
use crate::node::{Cx, NodeId};
use crate::producer::Producer;
use crate::protocol::{
    AddPartitionsToTxnResponse, EndTxnResponse, ErrorCode, FindCoordinatorResponse,
    InitProducerIdResponse,
};
use crate::time::Instant;

impl Producer {
    pub(in crate::producer) fn on_find_coordinator_response(
        &mut self,
        cx: &mut Cx,
        from: NodeId,
        r: FindCoordinatorResponse,
    ) {
        let Some(request) = self.take_txn_in_flight(from, r.correlation_id) else {
            return;
        };
        let backoff = self.config.transaction_retry_backoff();
        match (r.error, r.coordinator) {
            (ErrorCode::None, Some(node)) => {
                let t = self.txn.as_mut().expect("transactional");
                if request == TxnRequest::FindGroupCoordinator {
                    t.group_coordinator = Some(node);
                } else {
                    t.coordinator = Some(node);
                }
            }
            // librdkafka: the coordinator query timer (`rd_kafka_txn_coord_set(NULL)` →
            // `rd_kafka_txn_coord_timer_start(rk, 500)`).
            _ if self.config.client == ClientKind::Librdkafka => {
                self.txn_retry(cx.now(), false, librdkafka::COORD_QUERY_BACKOFF)
            }
            _ => self.txn_retry(cx.now(), false, backoff),
        }
    }

    /// InitProducerId of a transactional producer (`InitProducerIdHandler.handleResponse`).
    pub(in crate::producer) fn on_txn_init_response(
        &mut self,
        cx: &mut Cx,
        from: NodeId,
        r: InitProducerIdResponse,
    ) {
        if self.take_txn_in_flight(from, r.correlation_id).is_none() {
            return;
        }
        let now = cx.now();
        let backoff = self.config.transaction_retry_backoff();
        let librdkafka = self.config.client == ClientKind::Librdkafka;
        match r.error {
            ErrorCode::None => {
                let idem = self
                    .idempotence
                    .as_mut()
                    .expect("transactions are idempotent");
                if idem.producer_id() >= 0 {
                    self.stats.epoch_bumps += 1;
                }
                idem.on_init(r.producer_id, r.producer_epoch);
                self.accumulator.clear_sequences();
                let t = self.txn.as_mut().expect("transactional");
                if t.app == AppTxn::Initializing {
                    t.app = AppTxn::Ready;
                }
            }
            e if librdkafka => self.librdkafka_init_failed(now, e),
            ErrorCode::NotCoordinator | ErrorCode::CoordinatorNotAvailable => {
                self.txn_retry(now, true, backoff)
            }
            // sarama `initProducerId`: only these three are retried; the rest, with
            // CONCURRENT_TRANSACTIONS, are fatal.
            ErrorCode::CoordinatorLoadInProgress if self.config.client == ClientKind::Sarama => {
                self.txn_retry(now, false, backoff)
            }
            e if self.config.client == ClientKind::Sarama => {
                self.txn.as_mut().expect("transactional").fatal = Some(e)
            }
            e if e.is_retriable() => self.txn_retry(now, false, backoff),
            e => self.txn.as_mut().expect("transactional").fatal = Some(e),
        }
    }

    /// sarama `publishTxnPartitions`: a failed attempt; after `Producer.Transaction.Retry.Max`
    /// retries the produce sets waiting for the partitions fail (see
    /// `sarama_refuse_produce_sets`), and the next produce set starts a new round.
    pub(super) fn sarama_add_failed(&mut self, error: ErrorCode) {
        let t = self.txn.as_mut().expect("transactional");
        if !t.sarama() {
            return;
        }
        t.add_failures += 1;
        if t.add_failures > t.retry_max {
            t.add_failures = 0;
            t.add_gave_up = Some(error);
        }
    }

    /// sarama's AddPartitionsToTxn answer (`publishTxnPartitions`' switch).
    pub(super) fn on_sarama_add_partitions_error(&mut self, now: Instant, error: ErrorCode) {
        let backoff = self.config.transaction_retry_backoff();
        let t = self.txn.as_mut().expect("transactional");
        match error {
            ErrorCode::NotCoordinator | ErrorCode::CoordinatorNotAvailable => {
                self.sarama_add_failed(error);
                self.txn_retry(now, true, backoff);
            }
            ErrorCode::UnknownTopicOrPartition | ErrorCode::CoordinatorLoadInProgress => {
                self.sarama_add_failed(error);
                self.txn_retry(now, false, backoff);
            }
            ErrorCode::ConcurrentTransactions => {
                let short = if t.added.is_empty() {
                    ADD_PARTITIONS_RETRY_BACKOFF.min(backoff)
                } else {
                    backoff
                };
                self.sarama_add_failed(error);
                self.txn_retry(now, false, short);
            }
            ErrorCode::UnknownProducerId | ErrorCode::InvalidProducerIdMapping => {
                // `abortableErrorIfPossible` (a 2.5+ coordinator bumps after the abort).
                t.new_partitions.clear();
                t.bump_after_abort = true;
                t.abortable.get_or_insert(error);
            }
            // OPERATION_NOT_ATTEMPTED / TOPIC_AUTHORIZATION_FAILED would be abortable; kafsim
            // sends neither. Everything else is fatal (`removeAllPartitionsOnFatalOrAbortedError`).
            e => {
                t.new_partitions.clear();
                t.fatal = Some(e);
            }
        }
    }

    /// `AddPartitionsToTxnHandler.handleResponse`.
    pub(in crate::producer) fn on_add_partitions_response(
        &mut self,
        cx: &mut Cx,
        from: NodeId,
        r: AddPartitionsToTxnResponse,
    ) {
        let Some(TxnRequest::AddPartitions(partitions)) =
            self.take_txn_in_flight(from, r.correlation_id)
        else {
            return;
        };
        let now = cx.now();
        let backoff = self.config.transaction_retry_backoff();
        let t = self.txn.as_mut().expect("transactional");
        if t.librdkafka() {
            self.librdkafka_add_partitions_response(now, partitions, r.error);
            return;
        }
        if r.error == ErrorCode::None {
            t.add_failures = 0;
        } else if t.sarama() {
            self.on_sarama_add_partitions_error(now, r.error);
            return;
        }
        match r.error {
            ErrorCode::None => t.partitions_added(partitions),
            ErrorCode::NotCoordinator | ErrorCode::CoordinatorNotAvailable => {
                self.txn_retry(now, true, backoff)
            }
            ErrorCode::ConcurrentTransactions if t.added.is_empty() => {
                let short = ADD_PARTITIONS_RETRY_BACKOFF.min(backoff);
                self.txn_retry(now, false, short)
            }
            e if e.is_retriable() => self.txn_retry(now, false, backoff),
            ErrorCode::InvalidProducerEpoch
            | ErrorCode::ProducerFenced
            | ErrorCode::InvalidTxnState => t.fatal = Some(r.error),
            e => {
                // UNKNOWN_PRODUCER_ID / INVALID_PRODUCER_ID_MAPPING (`abortableErrorIfPossible`)
                // and partition errors: abort, then bump.
                t.new_partitions.clear();
                t.bump_after_abort = true;
                t.abortable.get_or_insert(e);
            }
        }
    }

    /// `EndTxnHandler.handleResponse`.
    pub(in crate::producer) fn on_end_txn_response(
        &mut self,
        cx: &mut Cx,
        from: NodeId,
        r: EndTxnResponse,
    ) {
        let Some(request) = self.take_txn_in_flight(from, r.correlation_id) else {
            return;
        };
        let now = cx.now();
        if self.config.client == ClientKind::Librdkafka {
            let commit = matches!(request, TxnRequest::EndTxn { commit: true });
            self.librdkafka_end_txn_response(cx, commit, r);
            return;
        }
        let backoff = self.config.transaction_retry_backoff();
        let sarama = self.config.client == ClientKind::Sarama;
        match r.error {
            ErrorCode::None => self.finish_transaction(cx, Some((r.producer_id, r.producer_epoch))),
            ErrorCode::NotCoordinator | ErrorCode::CoordinatorNotAvailable => {
                self.txn_retry(now, true, backoff)
            }
            // sarama `endTxn`: these two retried; UNKNOWN_PRODUCER_ID and
            // INVALID_PRODUCER_ID_MAPPING abortable (`abortableErrorIfPossible`); the rest fatal.
            ErrorCode::CoordinatorLoadInProgress | ErrorCode::ConcurrentTransactions if sarama => {
                self.txn_retry(now, false, backoff)
            }
            e @ (ErrorCode::UnknownProducerId | ErrorCode::InvalidProducerIdMapping) if sarama => {
                self.txn
                    .as_mut()
                    .expect("transactional")
                    .set_abortable(e, true)
            }
            e if sarama => self.txn.as_mut().expect("transactional").fatal = Some(e),
            e if e.is_retriable() => self.txn_retry(now, false, backoff),
            // PRODUCER_FENCED, INVALID_PRODUCER_EPOCH, INVALID_TXN_STATE and the unhandled
            // rest are fatal. (UNKNOWN_PRODUCER_ID / INVALID_PRODUCER_ID_MAPPING are abortable
            // with a bump in Java; the rebuilt producer's InitProducerId bumps as well.)
            e => self.txn.as_mut().expect("transactional").fatal = Some(e),
        }
    }
}
