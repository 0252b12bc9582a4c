//! InitProducerId at the transaction coordinator (`TransactionCoordinator.handleInitProducerId`).
//!
//! A transactional id seen for the first time needs a producer id, which only the active
//! controller hands out (Kafka's `ProducerIdManager` asks it for blocks; kafsim asks for one
//! id per new transactional id): the request waits here as an [`IdRequest`] until the
//! controller answers. A known id is bumped in place, fencing the previous producer instance
//! and aborting its open transaction.

use super::{reply_error, Entry, ReplyKind, Then, TransactionCoordinator};
use super::{MAX_IN_FLIGHT, MAX_TRANSACTIONAL_IDS};
use crate::coordinator::txn_metadata::{TxnAction, TxnMetadata};
use crate::coordinator::OffsetsLog;
use crate::node::{Cx, NodeId};
use crate::protocol::{ErrorCode, InitProducerIdRequest, InitProducerIdResponse, Message};
use crate::time::Duration;
use std::sync::Arc;

/// An InitProducerId the coordinator forwarded to the controller for a fresh producer id.
#[derive(Debug)]
pub(super) struct IdRequest {
    pub(super) id: Arc<str>,
    pub(super) client: NodeId,
    pub(super) correlation_id: u64,
    pub(super) timeout: Duration,
    /// The client ends its transactions with EndTxn v5+ (KIP-890 part 2 applies).
    transaction_version_2: bool,
}

impl TransactionCoordinator {
    pub(super) fn init_producer_id(
        &mut self,
        cx: &mut Cx,
        from: NodeId,
        r: InitProducerIdRequest,
        controller: Option<NodeId>,
        log: &mut dyn OffsetsLog,
    ) {
        // `accepts` routes only an InitProducerId naming a transactional id here.
        assert!(
            r.transactional_id.is_some(),
            "{}: an idempotent producer's InitProducerId at the transaction coordinator",
            cx.me()
        );
        let id: Arc<str> = Arc::from(r.transactional_id.as_deref().unwrap_or_default());
        let reply =
            |cx: &mut Cx, error| reply_error(cx, from, ReplyKind::Init, r.correlation_id, error);
        let Some(tp) = self.owns(&id, log) else {
            return reply(cx, ErrorCode::NotCoordinator);
        };
        // `transaction.timeout.ms` of the producer, at most `transaction.max.timeout.ms`
        // (`validateTransactionTimeoutMs`).
        let timeout = r.transaction_timeout.unwrap_or(self.config.max_timeout);
        if timeout > self.config.max_timeout || timeout == Duration::ZERO {
            return reply(cx, ErrorCode::InvalidTransactionTimeout);
        }
        let Some(entry) = self.ids.get(&id) else {
            if self.ids.len() >= MAX_TRANSACTIONAL_IDS || self.id_requests.len() >= MAX_IN_FLIGHT {
                return reply(cx, ErrorCode::CoordinatorNotAvailable);
            }
            let Some(controller) = controller else {
                return reply(cx, ErrorCode::CoordinatorNotAvailable);
            };
            let correlation_id = self.take_correlation();
            self.id_requests.insert(
                correlation_id,
                IdRequest {
                    id,
                    client: from,
                    correlation_id: r.correlation_id,
                    timeout,
                    transaction_version_2: r.transaction_version_2,
                },
            );
            let ask = InitProducerIdRequest {
                correlation_id,
                transactional_id: None,
                producer_id: -1,
                producer_epoch: -1,
                transaction_timeout: None,
                transaction_version_2: false,
            };
            return cx.send(controller, Message::InitProducerIdRequest(ask));
        };
        if entry.pending {
            return reply(cx, ErrorCode::ConcurrentTransactions);
        }
        let mut next = entry.meta.clone();
        next.timeout = timeout;
        let epoch = next.epoch;
        let then = match next.init_producer_id() {
            TxnAction::Reply(ErrorCode::None) => Then::Reply {
                kind: ReplyKind::Init,
                client: from,
                correlation_id: r.correlation_id,
            },
            TxnAction::Reply(e) => return reply(cx, e),
            TxnAction::WriteMarkers { .. } => Then::Reply {
                kind: ReplyKind::Fence,
                client: from,
                correlation_id: r.correlation_id,
            },
        };
        // InitProducerId always bumps: the previous instance of the producer is fenced.
        assert!(
            next.epoch > epoch,
            "{}: {id}: InitProducerId kept epoch {epoch}",
            cx.me()
        );
        self.persist(cx, id, tp, next, then, log);
    }

    /// The controller's answer with a fresh producer id for a new transactional id.
    pub fn on_init_producer_id_response(
        &mut self,
        cx: &mut Cx,
        r: InitProducerIdResponse,
        log: &mut dyn OffsetsLog,
    ) {
        self.check();
        let Some(ask) = self.id_requests.remove(&r.correlation_id) else {
            return;
        };
        let reply = |cx: &mut Cx, error| {
            reply_error(cx, ask.client, ReplyKind::Init, ask.correlation_id, error)
        };
        if r.error != ErrorCode::None {
            return reply(cx, ErrorCode::CoordinatorNotAvailable);
        }
        // The controller hands out ids from its block only on success.
        assert!(
            r.producer_id >= 0,
            "{}: controller answered producer id {}",
            cx.me(),
            r.producer_id
        );
        let Some(tp) = self.owns(&ask.id, log) else {
            return reply(cx, ErrorCode::NotCoordinator);
        };
        if self.ids.contains_key(&ask.id) {
            // Another InitProducerId of the same id got there first: the client retries.
            return reply(cx, ErrorCode::ConcurrentTransactions);
        }
        // KIP-890 part 2 needs the cluster's `transaction.version` 2 and a client that ends
        // its transactions with EndTxn v5+ (one client per transactional.id).
        let bump_on_end = self.config.bump_on_end && ask.transaction_version_2;
        let next = TxnMetadata::new(r.producer_id, ask.timeout, bump_on_end);
        let index = self.next_index;
        assert!(
            !self.by_index.contains_key(&index),
            "{}: transactional id index {index} taken",
            cx.me()
        );
        self.next_index += 1;
        self.by_index.insert(index, ask.id.clone());
        self.ids.insert(
            ask.id.clone(),
            Entry {
                meta: next.clone(),
                index,
                pending: false,
                new: true,
            },
        );
        let then = Then::Reply {
            kind: ReplyKind::Init,
            client: ask.client,
            correlation_id: ask.correlation_id,
        };
        self.persist(cx, ask.id, tp, next, then, log);
    }
}
