//! The coordinator's `__transaction_state` partitions (Kafka's `TransactionStateManager`):
//! every transition of an id is appended there with acks=all before the coordinator acts on
//! it (`appendTransactionToLog`), and a broker that becomes a partition's leader rebuilds its
//! ids from the log (`loadTransactionsForTxnTopicPartition`) and forgets them when it stops
//! leading (`removeTransactionsForTxnTopicPartition`). Kept apart from the request handlers
//! because this is where the coordinator's state is written, and so where it is asserted.

use super::{reply, reply_error, Entry, ReplyKind, Then, TransactionCoordinator};
use super::{MAX_TRANSACTIONAL_IDS, TXN_TOKEN_BIT};
use crate::broker::timer::TxnTimer;
use crate::coordinator::txn_metadata::{TxnMetadata, TxnState};
use crate::coordinator::{CoordinatorPartitions, OffsetsLog};
use crate::node::Cx;
use crate::protocol::ErrorCode;
use crate::record::{InternalPayload, Record, TopicId, TopicPartition, ValueId};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Modelled size of one `__transaction_state` record.
const TXN_RECORD_BYTES: u32 = 96;

/// A transition of an id on its way to the log, and what to do once it is there.
#[derive(Debug)]
pub(super) struct PendingAppend {
    pub(super) id: Arc<str>,
    pub(super) partition: TopicPartition,
    pub(super) next: TxnMetadata,
    pub(super) then: Then,
}

impl TransactionCoordinator {
    /// Append `next` as the new state of `id`; act on it once the ISR has it.
    pub(super) fn persist(
        &mut self,
        cx: &mut Cx,
        id: Arc<str>,
        partition: TopicPartition,
        next: TxnMetadata,
        then: Then,
        log: &mut dyn OffsetsLog,
    ) {
        let payload = InternalPayload::TransactionMetadata {
            transactional_id: id.clone(),
            metadata: next.clone(),
        };
        // One transition at a time per id (Kafka's `pendingState`), and only a legal one.
        assert!(
            self.ids.get(&id).is_none_or(|e| {
                !e.pending
                    && next.producer_id == e.meta.producer_id
                    && next.epoch >= e.meta.epoch
                    && next.state.valid_previous().contains(&e.meta.state)
            }),
            "{}: {id}: persisting {:?} over {:?}",
            cx.me(),
            next.state,
            self.ids.get(&id).map(|e| e.meta.state)
        );
        let record = Record {
            value: ValueId(0),
            key: None,
            size: TXN_RECORD_BYTES,
            create_time: cx.now(),
            payload: Some(Arc::new(payload)),
        };
        let token = self.take_token();
        match log.append(cx, partition, vec![record], token) {
            Ok(()) => {
                if let Some(e) = self.ids.get_mut(&id) {
                    e.pending = true;
                }
                let p = PendingAppend {
                    id,
                    partition,
                    next,
                    then,
                };
                assert!(
                    self.pending.insert(token, p).is_none(),
                    "{}: append token {token:#x} reused",
                    cx.me()
                );
            }
            Err(e) => self.after_failed_append(cx, &id, then, e),
        }
    }

    /// Completion of an [`OffsetsLog::append`] of this coordinator.
    pub fn on_append_done(
        &mut self,
        cx: &mut Cx,
        token: u64,
        result: ErrorCode,
        log: &mut dyn OffsetsLog,
    ) {
        assert!(
            token & TXN_TOKEN_BIT != 0,
            "{}: append token {token:#x} is not the transaction coordinator's",
            cx.me()
        );
        let Some(p) = self.pending.remove(&token) else {
            return; // unloaded meanwhile, and the client answered
        };
        let Some(entry) = self.ids.get_mut(&p.id) else {
            return;
        };
        entry.pending = false;
        if result != ErrorCode::None {
            return self.after_failed_append(cx, &p.id, p.then, result);
        }
        assert!(
            p.next.epoch >= entry.meta.epoch,
            "{}: {}: producer epoch would go back from {} to {}",
            cx.me(),
            p.id,
            entry.meta.epoch,
            p.next.epoch
        );
        entry.meta = p.next;
        entry.new = false;
        let meta = entry.meta.clone();
        if let Then::Reply {
            kind,
            client,
            correlation_id,
        } = p.then
        {
            // Kafka answers EndTxn once the prepare state is in the log; the markers follow
            // asynchronously.
            let (error, producer_id, producer_epoch) = match kind {
                ReplyKind::Init | ReplyKind::End => (ErrorCode::None, meta.producer_id, meta.epoch),
                ReplyKind::Fence => (ErrorCode::ConcurrentTransactions, -1, -1),
                ReplyKind::AddPartitions | ReplyKind::AddOffsets => (ErrorCode::None, -1, -1),
            };
            reply(
                cx,
                client,
                kind,
                correlation_id,
                error,
                producer_id,
                producer_epoch,
            );
        }
        if matches!(meta.state, TxnState::PrepareCommit | TxnState::PrepareAbort) {
            let coordinator_epoch = self.owned.get(&p.partition.partition).copied();
            if let Some(coordinator_epoch) = coordinator_epoch {
                self.start_markers(cx, p.id, &meta, coordinator_epoch, log);
            }
        }
    }

    /// `appendTransactionToLog`'s error mapping: a partition this broker no longer leads is
    /// NOT_COORDINATOR, anything else COORDINATOR_NOT_AVAILABLE (the client retries; the
    /// cached state is unchanged, as the write may or may not be in the log).
    fn after_failed_append(&mut self, cx: &mut Cx, id: &Arc<str>, then: Then, error: ErrorCode) {
        assert_ne!(
            error,
            ErrorCode::None,
            "{}: {id}: a failed append without an error",
            cx.me()
        );
        let error = match error {
            ErrorCode::NotLeaderOrFollower | ErrorCode::UnknownTopicOrPartition => {
                ErrorCode::NotCoordinator
            }
            _ => ErrorCode::CoordinatorNotAvailable,
        };
        match then {
            Then::Reply {
                kind,
                client,
                correlation_id,
            } => {
                let init = matches!(kind, ReplyKind::Init | ReplyKind::Fence);
                if init && self.ids.get(id).is_some_and(|e| e.new) {
                    // A new id whose first state never reached the log: forget it.
                    self.forget(id);
                }
                reply_error(cx, client, kind, correlation_id, error);
            }
            Then::Nothing => {
                // A completion or timeout abort: retried by the next abort check / marker
                // retry while this broker still owns the id.
                self.schedule_retry(cx, id);
            }
        }
    }

    fn forget(&mut self, id: &str) {
        if let Some(e) = self.ids.remove(id) {
            self.by_index.remove(&e.index);
        }
        self.jobs.remove(id);
        assert!(
            self.pending.values().all(|p| &*p.id != id),
            "{id}: forgotten with an append in flight"
        );
    }

    fn in_partition(&self, id: &str, partition: TopicPartition) -> bool {
        self.partition_for(id) == Some(partition)
    }
}

impl CoordinatorPartitions for TransactionCoordinator {
    fn topic(&self) -> Option<TopicId> {
        self.config.topic
    }

    fn check_state(&self) {
        self.check();
    }

    fn owned(&self) -> &BTreeMap<u32, u32> {
        &self.owned
    }

    /// Forget the ids of `partition`; answer what waits on their appends.
    fn unload(&mut self, cx: &mut Cx, partition: TopicPartition) {
        self.owned.remove(&partition.partition);
        let tokens: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.partition == partition)
            .map(|(t, _)| *t)
            .collect();
        for token in tokens {
            if let Some(p) = self.pending.remove(&token) {
                self.after_failed_append(cx, &p.id, p.then, ErrorCode::NotLeaderOrFollower);
            }
        }
        let ids: Vec<Arc<str>> = self
            .ids
            .keys()
            .filter(|id| self.in_partition(id, partition))
            .cloned()
            .collect();
        for id in ids {
            self.forget(&id);
        }
        let requests: Vec<u64> = self
            .marker_requests
            .iter()
            .filter(|(_, (_, r))| !self.ids.contains_key(&r.id))
            .map(|(c, _)| *c)
            .collect();
        for c in requests {
            self.marker_requests.remove(&c);
        }
        assert!(
            !self.owned.contains_key(&partition.partition)
                && self.ids.keys().all(|id| !self.in_partition(id, partition))
                && self.pending.values().all(|p| p.partition != partition),
            "{}: {partition} unloaded with ids or appends left",
            cx.me()
        );
    }

    /// Rebuild the ids of `tp` from its log (the last state of each wins) and resend
    /// the markers of prepared transactions.
    fn load(&mut self, cx: &mut Cx, tp: TopicPartition, epoch: u32, log: &mut dyn OffsetsLog) {
        let mut last: BTreeMap<Arc<str>, TxnMetadata> = BTreeMap::new();
        for batch in log.loadable_batches(tp) {
            for record in batch.records.iter() {
                if let Some(InternalPayload::TransactionMetadata {
                    transactional_id,
                    metadata,
                }) = record.payload.as_deref()
                {
                    // Every id of a partition is written there, and every state written was
                    // a legal one.
                    assert!(
                        self.in_partition(transactional_id, tp),
                        "{}: {transactional_id} loaded from {tp}",
                        cx.me()
                    );
                    metadata.check();
                    last.insert(transactional_id.clone(), metadata.clone());
                }
            }
        }
        self.owned.insert(tp.partition, epoch);
        if !self.abort_check_scheduled {
            self.abort_check_scheduled = true;
            cx.set_timer_after(self.config.abort_check_interval, TxnTimer::AbortCheck);
        }
        for (id, meta) in last {
            if self.ids.len() >= MAX_TRANSACTIONAL_IDS {
                break;
            }
            let index = self.next_index;
            self.next_index += 1;
            self.by_index.insert(index, id.clone());
            let prepared = matches!(meta.state, TxnState::PrepareCommit | TxnState::PrepareAbort);
            self.ids.insert(
                id.clone(),
                Entry {
                    meta: meta.clone(),
                    index,
                    pending: false,
                    new: false,
                },
            );
            if prepared {
                self.start_markers(cx, id, &meta, epoch, log);
            }
        }
    }
}
