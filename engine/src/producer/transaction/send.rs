//! The producer's transactional request loop: which transactional request goes next and to
//! whom, and what a lost connection or timeout does to it (Java
//! `Sender.maybeSendAndPollTransactionalRequest`, `TransactionManager.nextRequest` and
//! `TxnRequestHandler.onComplete`'s disconnect path; sarama's `publishTxnPartitions` in the
//! bridge before a produce request).

use super::{AppTxn, InFlight, TxnRequest};
use crate::client::ClientKind;
use crate::node::{Cx, NodeId};
use crate::producer::{Outcome, Producer};
use crate::protocol::{
    AddPartitionsToTxnRequest, CoordinatorType, EndTxnRequest, ErrorCode, FindCoordinatorRequest,
    InitProducerIdRequest, Message,
};
use crate::time::{Duration, Instant};

impl Producer {
    /// Whether any batch of the transaction is still queued, in flight, or being handed over
    /// (Java `accumulator.hasIncomplete()`).
    pub(super) fn txn_has_incomplete(&self) -> bool {
        self.accumulator.queued_records() > 0
            || !self.sender.in_flight_is_empty()
            || self.blocked.is_some()
    }

    /// Whether a transactional request is due now (so the producer polls again at once).
    pub(in crate::producer) fn txn_request_due(&self, now: Instant) -> bool {
        let Some(t) = self.txn.as_ref() else {
            return false;
        };
        if t.fatal.is_some() {
            return true;
        }
        self.txn_local_end_due() || self.txn_decide(now).is_some()
    }

    /// The transactional request `poll` sends now, if any (before choosing its broker).
    pub(super) fn txn_decide(&self, now: Instant) -> Option<TxnRequest> {
        let t = self.txn.as_ref()?;
        if now < t.next_attempt || t.in_flight.is_some() {
            return None;
        }
        let needs_init = self.idempotence.as_ref().is_some_and(|i| i.needs_init());
        match t.next_request(self.txn_has_incomplete()) {
            Some(TxnRequest::FindCoordinator) => Some(TxnRequest::FindCoordinator),
            // KIP-360: the bump (or first id) goes once nothing is in flight.
            _ if needs_init && t.fatal.is_none() => (self.sender.in_flight_is_empty()
                && t.coordinator.is_some())
            .then_some(TxnRequest::InitProducerId),
            other => other,
        }
    }

    /// The broker the transactional request in flight went to.
    pub(in crate::producer) fn txn_in_flight_broker(&self) -> Option<NodeId> {
        self.txn.as_ref()?.in_flight.as_ref().map(|i| i.broker)
    }

    /// When the next transactional request may go, if one waits for a backoff.
    pub(in crate::producer) fn txn_next_attempt(&self) -> Option<Instant> {
        let t = self.txn.as_ref()?;
        (t.in_flight.is_none()).then_some(t.next_attempt)
    }

    /// An ending transaction that never added a partition completes without an EndTxn.
    pub(super) fn txn_local_end_due(&self) -> bool {
        self.txn.as_ref().is_some_and(|t| {
            matches!(t.app, AppTxn::Ending { .. })
                && !t.needs_end_txn()
                && t.new_partitions.is_empty()
                && t.offsets.is_none()
                && t.in_flight.is_none()
                && !self.txn_has_incomplete()
        })
    }

    /// The transactional half of `poll`: act on a fatal error, abort undrained batches of
    /// an aborting transaction, complete a transaction that needs no EndTxn, and send the
    /// next transactional request.
    pub(in crate::producer) fn send_transactional_request(&mut self, cx: &mut Cx) {
        let Some(t) = self.txn.as_ref() else { return };
        if let Some(error) = t.fatal {
            self.rebuild_after_fatal(cx, error);
            return;
        }
        let aborting =
            t.abortable.is_some() || matches!(t.app, AppTxn::Ending { commit: false, .. });
        if t.sarama() {
            self.sarama_refuse_produce_sets(cx);
        } else if aborting {
            for batch in self.accumulator.take_undrained() {
                self.complete_batch(cx, batch, Outcome::Fail(ErrorCode::TransactionAborted));
            }
        }
        if self.txn_local_end_due() {
            self.finish_transaction(cx, None);
        }
        let now = cx.now();
        let Some(request) = self.txn_decide(now) else {
            return;
        };
        let t = self.txn.as_ref().expect("transactional");
        // A coordinator is the node a FindCoordinator answer named, with its address: every
        // client connects to it whether or not its own metadata lists the broker as live
        // (Java `TransactionManager.lookupCoordinator` hands the answer's `Node` to
        // `NetworkClient`; librdkafka `rd_kafka_txn_coord_set` adds the broker from the
        // answer; sarama `Client.RefreshTransactionCoordinator` opens the answer's broker).
        // Only the reconnect backoff holds it: a coordinator whose process is dead refuses
        // the connection, and the lookup starts again.
        let connectable = |c: &NodeId| self.connections.can_connect(*c, now);
        let broker = match request {
            TxnRequest::FindCoordinator | TxnRequest::FindGroupCoordinator => self.pick_broker(now),
            TxnRequest::TxnOffsetCommit => t.group_coordinator.filter(connectable),
            _ => t.coordinator.filter(connectable),
        };
        let Some(broker) = broker else {
            // Nothing to connect to now: look again after the backoff.
            let backoff = self.config.transaction_retry_backoff();
            let t = self.txn.as_mut().expect("transactional");
            t.next_attempt = now + backoff;
            match request {
                TxnRequest::FindCoordinator | TxnRequest::FindGroupCoordinator => {}
                TxnRequest::TxnOffsetCommit => t.group_coordinator = None,
                _ => t.coordinator = None,
            }
            return;
        };
        self.send_txn_request(cx, broker, request);
    }

    /// sarama's bridge calls `publishTxnPartitions` before every produce request. In an
    /// error state it returns the last error unsent, and after `Producer.Transaction.Retry.Max`
    /// failed AddPartitionsToTxn it returns that error: either way the produce set fails as
    /// if its connection broke (`brokerProducer.handleError` → `retryBatch`), so each of its
    /// messages uses up a retry (`Producer.Retry.Max`, `Producer.Retry.Backoff`) and fails
    /// once they are spent (`returnError`: abortable, see `on_send_failed`).
    pub(super) fn sarama_refuse_produce_sets(&mut self, cx: &mut Cx) {
        let t = self.txn.as_mut().expect("transactional");
        let now = cx.now();
        let (error, pending) = match (t.abortable, t.add_gave_up.take()) {
            (Some(error), _) => (error, None),
            (None, Some(error)) => (error, Some(t.new_partitions.clone())),
            (None, None) => return,
        };
        let refused = self
            .accumulator
            .take_due(now, |tp| pending.as_ref().is_none_or(|p| p.contains(&tp)));
        for mut batch in refused {
            batch.attempts += 1;
            self.retry_or_complete(cx, batch, error, "retries exhausted");
        }
    }

    pub(super) fn send_txn_request(&mut self, cx: &mut Cx, broker: NodeId, request: TxnRequest) {
        let correlation_id = self.sender.correlation_id();
        let (producer_id, producer_epoch) = self
            .idempotence
            .as_ref()
            .map_or((-1, -1), |i| (i.producer_id(), i.producer_epoch()));
        let t = self.txn.as_mut().expect("transactional");
        let id = t.transactional_id.clone();
        let msg = match &request {
            TxnRequest::FindCoordinator => {
                Message::FindCoordinatorRequest(FindCoordinatorRequest {
                    correlation_id,
                    key: id,
                    key_type: CoordinatorType::Transaction,
                })
            }
            TxnRequest::InitProducerId => Message::InitProducerIdRequest(InitProducerIdRequest {
                correlation_id,
                transactional_id: Some(id),
                producer_id,
                producer_epoch,
                transaction_timeout: Some(t.timeout),
                transaction_version_2: t.client == ClientKind::Java
                    && crate::producer::config::version_at_least(
                        &self.config.client_version,
                        (4, 0),
                    ),
            }),
            TxnRequest::AddPartitions(partitions) => {
                if t.librdkafka() {
                    t.req_cnt += 1;
                }
                Message::AddPartitionsToTxnRequest(AddPartitionsToTxnRequest {
                    correlation_id,
                    transactional_id: id,
                    producer_id,
                    producer_epoch,
                    partitions: partitions.clone(),
                    verify_only: false,
                })
            }
            TxnRequest::AddOffsets
            | TxnRequest::FindGroupCoordinator
            | TxnRequest::TxnOffsetCommit => crate::producer::ctp::offsets_message(
                t,
                correlation_id,
                &request,
                producer_id,
                producer_epoch,
            ),
            TxnRequest::EndTxn { commit } => {
                if *commit {
                    t.commit_sent = true;
                }
                Message::EndTxnRequest(EndTxnRequest {
                    correlation_id,
                    transactional_id: id,
                    producer_id,
                    producer_epoch,
                    commit: *commit,
                })
            }
        };
        t.in_flight = Some(InFlight {
            correlation_id,
            broker,
            deadline: cx.now() + self.config.request_timeout,
            request,
        });
        cx.send(broker, msg);
        self.connections.setup.connecting(broker, cx.now());
    }

    /// Take the in-flight request `correlation_id` from `from`, if it is the one out.
    pub(in crate::producer) fn take_txn_in_flight(
        &mut self,
        from: NodeId,
        correlation_id: u64,
    ) -> Option<TxnRequest> {
        let t = self.txn.as_mut()?;
        let matches = t
            .in_flight
            .as_ref()
            .is_some_and(|i| i.correlation_id == correlation_id && i.broker == from);
        matches.then(|| t.in_flight.take().expect("checked").request)
    }

    /// Retry the request later; with `refind`, after looking the coordinator up again.
    pub(in crate::producer) fn txn_retry(&mut self, now: Instant, refind: bool, backoff: Duration) {
        let t = self.txn.as_mut().expect("transactional");
        if refind {
            t.coordinator = None;
        }
        t.next_attempt = now + backoff;
    }

    /// A transactional request's connection was lost or it timed out: send it again after
    /// `retry.backoff.ms` to a coordinator looked up anew.
    pub(in crate::producer) fn txn_connection_lost(&mut self, cx: &mut Cx, broker: NodeId) {
        let now = cx.now();
        let lost = self.txn.as_ref().is_some_and(|t| t.in_flight_to(broker));
        if !lost {
            return;
        }
        let t = self.txn.as_mut().expect("transactional");
        let request = t.in_flight.take().expect("checked").request;
        if t.librdkafka() {
            self.librdkafka_connection_lost(cx, now, request);
            return;
        }
        let backoff = self.config.transaction_retry_backoff();
        match request {
            TxnRequest::FindCoordinator | TxnRequest::FindGroupCoordinator => {
                self.txn_retry(now, false, backoff)
            }
            // `TxnOffsetCommitHandler`: a disconnect looks the group coordinator up again.
            TxnRequest::TxnOffsetCommit => {
                t.group_coordinator = None;
                self.txn_retry(now, false, backoff)
            }
            TxnRequest::AddPartitions(_) => {
                // sarama: a network error is a failed attempt of `publishTxnPartitions`.
                self.sarama_add_failed(ErrorCode::NetworkException);
                self.txn_retry(now, true, backoff)
            }
            _ => self.txn_retry(now, true, backoff),
        }
    }
}
