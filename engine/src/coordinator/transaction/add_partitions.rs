//! AddPartitionsToTxn and AddOffsetsToTxn (`TransactionCoordinator.
//! handleAddPartitionsToTransaction`): both add partitions to the producer's ongoing
//! transaction (AddOffsetsToTxn the group's `__consumer_offsets` partition), so they share
//! one path, [`TransactionCoordinator::add`]; a verify-only AddPartitionsToTxn (KIP-890 part
//! 1) only answers whether the partitions are in the transaction already.

use super::{reply_error, ReplyKind, Then, TransactionCoordinator};
use crate::coordinator::txn_metadata::{TxnAction, TxnState};
use crate::coordinator::{coordinator_partition, OffsetsLog};
use crate::node::{Cx, NodeId};
use crate::protocol::{AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, ErrorCode};
use crate::record::TopicPartition;
use std::sync::Arc;

/// A request that adds partitions to a transaction (AddPartitionsToTxn, AddOffsetsToTxn).
#[derive(Clone, Copy, Debug)]
struct AddAsk<'a> {
    kind: ReplyKind,
    client: NodeId,
    correlation_id: u64,
    transactional_id: &'a str,
    producer_id: i64,
    producer_epoch: i16,
}

impl TransactionCoordinator {
    pub(super) fn add_partitions(
        &mut self,
        cx: &mut Cx,
        from: NodeId,
        r: AddPartitionsToTxnRequest,
        log: &mut dyn OffsetsLog,
    ) {
        if r.verify_only {
            let error = match (
                self.owns(&r.transactional_id, log),
                self.ids.get(r.transactional_id.as_str()),
            ) {
                (None, _) => ErrorCode::NotCoordinator,
                (Some(_), None) => ErrorCode::InvalidProducerIdMapping,
                (Some(_), Some(entry)) => {
                    Self::verify_entry(entry, r.producer_id, r.producer_epoch, &r.partitions)
                }
            };
            return reply_error(cx, from, ReplyKind::AddPartitions, r.correlation_id, error);
        }
        let asked = AddAsk {
            kind: ReplyKind::AddPartitions,
            client: from,
            correlation_id: r.correlation_id,
            transactional_id: &r.transactional_id,
            producer_id: r.producer_id,
            producer_epoch: r.producer_epoch,
        };
        self.add(cx, asked, &r.partitions, log);
    }

    /// AddOffsetsToTxn: the group's `__consumer_offsets` partition joins the transaction as
    /// any partition does (`TransactionCoordinator.handleAddPartitionsToTransaction` with
    /// `offsetTopicPartition`), so its marker makes the group's pending transactional
    /// offsets visible (commit) or discards them (abort).
    pub(super) fn add_offsets(
        &mut self,
        cx: &mut Cx,
        from: NodeId,
        r: AddOffsetsToTxnRequest,
        log: &mut dyn OffsetsLog,
    ) {
        let partition = coordinator_partition(
            self.config.offsets_topic,
            self.config.offsets_partitions,
            &r.group,
        );
        let asked = AddAsk {
            kind: ReplyKind::AddOffsets,
            client: from,
            correlation_id: r.correlation_id,
            transactional_id: &r.transactional_id,
            producer_id: r.producer_id,
            producer_epoch: r.producer_epoch,
        };
        self.add(cx, asked, &[partition], log);
    }

    /// Add `partitions` to the ongoing transaction of the asking producer, persisting the new
    /// state unless every partition is in it already.
    fn add(
        &mut self,
        cx: &mut Cx,
        asked: AddAsk<'_>,
        partitions: &[TopicPartition],
        log: &mut dyn OffsetsLog,
    ) {
        let answer = |cx: &mut Cx, error| {
            reply_error(cx, asked.client, asked.kind, asked.correlation_id, error)
        };
        let Some(tp) = self.owns(asked.transactional_id, log) else {
            return answer(cx, ErrorCode::NotCoordinator);
        };
        let Some(entry) = self.ids.get(asked.transactional_id) else {
            return answer(cx, ErrorCode::InvalidProducerIdMapping);
        };
        if entry.pending {
            return answer(cx, ErrorCode::ConcurrentTransactions);
        }
        let mut next = entry.meta.clone();
        let now = cx.now();
        match next.add_partitions(now, asked.producer_id, asked.producer_epoch, partitions) {
            TxnAction::Reply(ErrorCode::None) => {}
            TxnAction::Reply(e) => return answer(cx, e),
            TxnAction::WriteMarkers { .. } => unreachable!("adding partitions writes no markers"),
        }
        // Only the current producer adds (`TransactionMetadata.prepareAddPartitions` keeps the
        // id and epoch), and an ongoing transaction never loses a partition until it ends.
        assert!(
            next.producer_id == asked.producer_id
                && next.epoch == asked.producer_epoch
                && (entry.meta.state != TxnState::Ongoing
                    || entry.meta.partitions.is_subset(&next.partitions)),
            "{}: {}: adding partitions changed the producer or dropped a partition",
            cx.me(),
            asked.transactional_id
        );
        if next == entry.meta {
            // Every partition is in the transaction already: nothing to write.
            return answer(cx, ErrorCode::None);
        }
        assert!(
            partitions.iter().all(|tp| next.partitions.contains(tp))
                && next.state == TxnState::Ongoing,
            "{}: {}: added partitions missing from the transaction",
            cx.me(),
            asked.transactional_id
        );
        let id: Arc<str> = Arc::from(asked.transactional_id);
        let then = Then::Reply {
            kind: asked.kind,
            client: asked.client,
            correlation_id: asked.correlation_id,
        };
        self.persist(cx, id, tp, next, then, log);
    }
}
