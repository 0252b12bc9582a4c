//! KIP-890 part 1, `transaction.partition.verification.enable` (Kafka 3.6+, default true): a
//! partition leader asks the transaction coordinator before it appends a transactional batch
//! of a producer that has no transaction open on the partition yet (Kafka's
//! `ReplicaManager.appendRecordsWithTransactionVerification` through
//! `AddPartitionsToTxnManager`: an AddPartitionsToTxn with `verifyOnly`). A batch whose
//! partition the coordinator does not have in the producer's ongoing transaction is refused
//! (`INVALID_TXN_STATE`), so a delayed produce of a transaction that already ended cannot open
//! a new, hanging one on the partition; a fenced epoch is `INVALID_PRODUCER_EPOCH`, and the
//! coordinator's retriable errors come back as `NOT_ENOUGH_REPLICAS` (the translation Kafka
//! makes so that older clients retry). The held request keeps its connection muted, as Kafka
//! keeps the channel muted until the produce is answered.
//!
//! Not modelled: Kafka's `VerificationGuard`, which also refuses the append when a marker
//! for the producer was written between the coordinator's answer and the append (here the
//! answer and a marker from the same coordinator arrive in order on one link; only a
//! coordinator fail-over in that window could reorder them).

use super::Broker;
use crate::node::{Cx, NodeId, TimerId};
use crate::protocol::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, ErrorCode, Message, ProduceRequest,
};
use crate::record::TopicPartition;
use std::collections::BTreeMap;

/// Most produce requests held for verification at once (a bound; Kafka's is the request
/// queue).
pub const MAX_HELD: usize = 10_000;

/// A produce request waiting for the coordinator's answer.
#[derive(Debug)]
pub struct Held {
    pub client: NodeId,
    pub request: ProduceRequest,
    pub coordinator: NodeId,
    /// The partitions being verified (the rest of the request needs no verification).
    pub partitions: Vec<TopicPartition>,
    /// The timeout of a verification sent to another broker.
    pub timer: Option<TimerId>,
}

/// The produce requests a broker holds for verification, by the verification's correlation id.
#[derive(Debug, Default)]
pub struct Verifications {
    held: BTreeMap<u64, Held>,
}

impl Verifications {
    pub fn hold(&mut self, correlation_id: u64, held: Held) {
        assert!(self.held.len() < MAX_HELD, "too many produce requests held");
        let old = self.held.insert(correlation_id, held);
        assert!(old.is_none(), "verification correlation id reused");
    }

    pub fn is_full(&self) -> bool {
        self.held.len() >= MAX_HELD
    }

    pub fn take(&mut self, correlation_id: u64) -> Option<Held> {
        self.held.remove(&correlation_id)
    }

    /// The verifications sent to `coordinator` (its connection was reset).
    pub fn take_to(&mut self, coordinator: NodeId) -> Vec<Held> {
        let ids: Vec<u64> = self
            .held
            .iter()
            .filter(|(_, h)| h.coordinator == coordinator)
            .map(|(id, _)| *id)
            .collect();
        ids.into_iter()
            .filter_map(|id| self.held.remove(&id))
            .collect()
    }
}

impl Broker {
    /// A ProduceRequest: appended at once, or first verified with the transaction
    /// coordinator when it carries a producer's first transactional batch on a partition.
    pub(super) fn on_produce(&mut self, cx: &mut Cx, from: NodeId, req: ProduceRequest) {
        let unverified: Vec<TopicPartition> = match &req.transactional_id {
            Some(_) if self.config.transaction_partition_verification => req
                .batches
                .iter()
                .filter(|(tp, b)| self.rm.needs_verification(*tp, b))
                .map(|(tp, _)| *tp)
                .collect(),
            _ => Vec::new(),
        };
        let Some((_, first)) = req.batches.iter().find(|(tp, _)| unverified.contains(tp)) else {
            return self.rm.handle_produce(cx, from, req);
        };
        let (producer_id, producer_epoch) = (first.producer_id, first.producer_epoch);
        let id = req.transactional_id.clone().expect("transactional");
        let coordinator = self
            .txn_coordinator
            .partition_for(&id)
            .and_then(|tp| crate::coordinator::OffsetsLog::leader_of(&self.rm, tp));
        let me = cx.me();
        let error = match coordinator {
            None => ErrorCode::CoordinatorNotAvailable,
            Some(c) if c == me => {
                self.txn_coordinator
                    .verify(&id, producer_id, producer_epoch, &unverified, &self.rm)
            }
            Some(_) if self.verifications.is_full() => ErrorCode::CoordinatorNotAvailable,
            Some(c) => {
                let correlation_id = self.next_correlation();
                let verify = AddPartitionsToTxnRequest {
                    correlation_id,
                    transactional_id: id,
                    producer_id,
                    producer_epoch,
                    partitions: unverified.clone(),
                    verify_only: true,
                };
                cx.send(c, Message::AddPartitionsToTxnRequest(verify));
                // The inter-broker request.timeout.ms bounds the wait, as for markers.
                let timer = cx.set_timer_after(
                    self.config.replica_socket_timeout,
                    super::timer::BrokerTimer::VerifyTimeout(correlation_id),
                );
                let held = Held {
                    client: from,
                    request: req,
                    coordinator: c,
                    partitions: unverified,
                    timer: Some(timer),
                };
                self.verifications.hold(correlation_id, held);
                return;
            }
        };
        let held = Held {
            client: from,
            request: req,
            coordinator: me,
            partitions: unverified,
            timer: None,
        };
        self.finish_verification(cx, held, error);
    }

    /// The coordinator's answer to a verification.
    pub(super) fn on_verification_response(
        &mut self,
        cx: &mut Cx,
        from: NodeId,
        r: AddPartitionsToTxnResponse,
    ) {
        let Some(held) = self.verifications.take(r.correlation_id) else {
            return; // timed out meanwhile
        };
        if held.coordinator != from {
            // Not the broker asked: keep waiting for its answer.
            self.verifications.hold(r.correlation_id, held);
            return;
        }
        if let Some(timer) = held.timer {
            cx.cancel_timer(timer);
        }
        self.finish_verification(cx, held, r.error);
    }

    /// A verification got no answer in time.
    pub(super) fn on_verification_timeout(&mut self, cx: &mut Cx, correlation_id: u64) {
        if let Some(held) = self.verifications.take(correlation_id) {
            self.finish_verification(cx, held, ErrorCode::RequestTimedOut);
        }
    }

    /// The connection to a coordinator was reset: its verifications failed.
    pub(super) fn on_verification_connection_reset(&mut self, cx: &mut Cx, peer: NodeId) {
        for held in self.verifications.take_to(peer) {
            if let Some(timer) = held.timer {
                cx.cancel_timer(timer);
            }
            self.finish_verification(cx, held, ErrorCode::NetworkException);
        }
    }

    /// Whether `correlation_id` is a verification this broker waits for.
    pub(super) fn awaits_verification(&self, correlation_id: u64) -> bool {
        self.verifications.held.contains_key(&correlation_id)
    }

    fn finish_verification(&mut self, cx: &mut Cx, held: Held, error: ErrorCode) {
        let refused: Vec<(TopicPartition, ErrorCode)> = match produce_error(error) {
            None => Vec::new(),
            Some(e) => held.partitions.iter().map(|tp| (*tp, e)).collect(),
        };
        self.rm
            .handle_produce_refusing(cx, held.client, held.request, &refused);
    }
}

/// The error the producer gets for a partition whose verification ended with `error` (None:
/// verified, append it). `ReplicaManager.postVerificationCallback` and
/// `AddPartitionsToTxnManager`'s response handler.
pub fn produce_error(error: ErrorCode) -> Option<ErrorCode> {
    use ErrorCode::*;
    match error {
        None => Option::None,
        ProducerFenced | InvalidProducerEpoch => Some(InvalidProducerEpoch),
        ConcurrentTransactions
        | NetworkException
        | RequestTimedOut
        | CoordinatorLoadInProgress
        | CoordinatorNotAvailable
        | NotCoordinator => Some(NotEnoughReplicas),
        other => Some(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coordinator_answers_become_what_kafka_tells_the_producer() {
        assert_eq!(produce_error(ErrorCode::None), None);
        assert_eq!(
            produce_error(ErrorCode::InvalidTxnState),
            Some(ErrorCode::InvalidTxnState)
        );
        assert_eq!(
            produce_error(ErrorCode::ProducerFenced),
            Some(ErrorCode::InvalidProducerEpoch)
        );
        for retriable in [
            ErrorCode::ConcurrentTransactions,
            ErrorCode::NotCoordinator,
            ErrorCode::CoordinatorNotAvailable,
            ErrorCode::NetworkException,
        ] {
            assert_eq!(
                produce_error(retriable),
                Some(ErrorCode::NotEnoughReplicas),
                "{retriable:?}"
            );
        }
    }
}
