//! Consume-transform-produce (handler `produce_to`): the member's application writes one
//! output record per processed input to the output topic through a Java `KafkaProducer` in
//! its own process ([`crate::producer::ctp`]), and ends every poll batch before it polls
//! again.
//!
//! With `commit = "transaction"` this is the loop of apache/kafka's
//! `examples/.../ExactlyOnceMessageProcessor` and of a Streams EOS-v2 task (KIP-447): per
//! poll batch `beginTransaction()`, a send per record, `sendOffsetsToTransaction(positions,
//! consumer.groupMetadata())`, `commitTransaction()`. The producer's `transactional.id` is
//! `<group>-<member>`, stable per member slot, so a restarted member fences its previous
//! incarnation's producer (InitProducerId bumps the epoch and aborts what it left open); the
//! group metadata in TxnOffsetCommit fences a member that lost its generation (a zombie
//! after a rebalance), whose transaction then aborts. On an abort (or a fenced, rebuilt
//! producer) the application seeks every partition back to the group's committed offset,
//! asked with OffsetFetch (`require_stable`: the answer waits until no transaction of the
//! group's is pending, `resetToLastCommittedPositions` in the example).
//!
//! Without it (produce-then-commit): the outputs are sent, `flush()`ed, and the offsets
//! committed as the handler's `commit` says; a crash between the output and the commit
//! writes the outputs again (the at-least-once twin). A batch whose outputs did not all get
//! acknowledged is re-read from the committed offsets instead of committed past.
//!
//! The poll loop, rebalances and `max.poll.interval.ms` treat a batch being ended as the
//! application busy outside `poll()`.

use super::{Consumer, Need};
use crate::history::HistoryEvent;
use crate::node::{Cx, NodeId, Timer};
use crate::producer::ctp::{TxnOffsets, TxnOutcome};
use crate::producer::Producer;
use crate::protocol::Message;
use crate::record::{Key, ValueId};

/// The hosted producer and where the application is with its batch.
pub struct Ctp {
    producer: Box<Producer>,
    transactional: bool,
    /// The batch's end was handed to the producer; its outcome is awaited.
    ending: bool,
}

impl Ctp {
    pub fn new(producer: Producer, transactional: bool) -> Ctp {
        Ctp {
            producer: Box::new(producer),
            transactional,
            ending: false,
        }
    }

    /// The hosted producer (inspection).
    pub fn producer(&self) -> &Producer {
        &self.producer
    }
}

impl std::fmt::Debug for Ctp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctp")
            .field("transactional", &self.transactional)
            .field("ending", &self.ending)
            .finish()
    }
}

impl Consumer {
    /// The hosted producer of a `produce_to` handler (inspection).
    pub fn ctp_producer(&self) -> Option<&Producer> {
        self.ctp.as_ref().map(|c| c.producer())
    }

    /// Whether the application may poll: no batch being ended, and (transactional) its
    /// producer initialized and between transactions.
    pub(super) fn ctp_idle(&self) -> bool {
        self.ctp
            .as_ref()
            .is_none_or(|c| !c.ending && c.producer.ctp_ready())
    }

    /// Whether the application has outputs to come: a poll batch in processing or being
    /// ended (the drain waits for it: its outputs are the group's sink).
    pub fn ctp_busy(&self) -> bool {
        self.ctp.as_ref().is_some_and(|c| {
            c.ending || !self.procs.all[0].is_idle() || self.poll.inline_batch_open
        })
    }

    /// Run `f` on the hosted producer; a connection it closed is closed for the consumer too
    /// (one connection per pair of nodes).
    fn with_producer<R>(
        &mut self,
        cx: &mut Cx,
        f: impl FnOnce(&mut Producer, &mut Cx) -> R,
    ) -> Option<R> {
        let ctp = self.ctp.as_mut()?;
        let producer = &mut ctp.producer;
        let (result, closed) = cx.hosted(super::timer::HOSTED_TIMER_BASE, |cx| f(producer, cx));
        for peer in closed {
            self.connection_closed_by_producer(cx, peer);
        }
        Some(result)
    }

    fn connection_closed_by_producer(&mut self, cx: &mut Cx, peer: NodeId) {
        self.connected.remove(&peer);
        self.failed_at.insert(peer, cx.now());
        self.fail_all_to(cx, peer);
        self.coordinator_dead(peer);
        self.meta.invalidate_leader(peer);
    }

    /// The consumer closed its connection to `peer`: the producer's requests on it are gone.
    pub(super) fn ctp_connection_closed(&mut self, cx: &mut Cx, peer: NodeId) {
        self.with_producer(cx, |p, cx| p.connection_closed(cx, peer));
    }

    pub(super) fn ctp_start(&mut self, cx: &mut Cx) {
        self.with_producer(cx, crate::node::Node::on_start);
    }

    /// A message for the hosted producer: an answer to one of its requests (correlation ids
    /// at or above [`crate::producer::ctp::HOSTED_CORRELATION_BASE`]), or a reset of a
    /// connection both use.
    pub(super) fn ctp_takes(&self, msg: &Message) -> bool {
        if self.ctp.is_none() {
            return false;
        }
        match msg.exchange() {
            crate::protocol::Exchange::Response { correlation_id } => {
                correlation_id >= crate::producer::ctp::HOSTED_CORRELATION_BASE
            }
            _ => false,
        }
    }

    pub(super) fn ctp_message(&mut self, cx: &mut Cx, from: NodeId, msg: Message) {
        self.with_producer(cx, |p, cx| crate::node::Node::on_message(p, cx, from, msg));
    }

    /// A timer of the hosted producer (in the producer's own encoding).
    pub(super) fn ctp_timer(&mut self, cx: &mut Cx, inner: Timer) {
        self.with_producer(cx, |p, cx| crate::node::Node::on_timer(p, cx, inner));
    }

    /// A processed record's output.
    pub(super) fn ctp_output(&mut self, cx: &mut Cx, value: ValueId, key: Option<Key>, size: u32) {
        self.with_producer(cx, |p, cx| p.ctp_send(cx, value, key, size));
    }

    /// The poll batch is processed: end it (commit its transaction with the offsets, or
    /// flush the outputs before the commit).
    pub(super) fn ctp_end_batch(&mut self, cx: &mut Cx) {
        let transactional = self.ctp.as_ref().is_some_and(|c| c.transactional);
        let group_metadata = self
            .spec
            .produce_to
            .as_ref()
            .is_none_or(|p| p.send_offsets == super::SendOffsets::GroupMetadata);
        // `new ConsumerGroupMetadata(groupId)`: no member id, generation -1 (Java
        // `JoinGroupRequest.UNKNOWN_MEMBER_ID`, `UNKNOWN_GENERATION_ID`).
        let (member_id, generation) = if group_metadata {
            (self.group.member_id.clone(), self.group.generation)
        } else {
            (String::new(), -1)
        };
        let offsets = transactional.then(|| TxnOffsets {
            group: self.spec.group.clone(),
            member_id,
            generation,
            offsets: self.marked_offsets(),
            added: false,
        });
        if let Some(c) = self.ctp.as_mut() {
            c.ending = true;
        }
        self.with_producer(cx, |p, cx| p.ctp_end(cx, true, offsets));
        self.drive_ctp(cx);
    }

    /// Act on the outcome of the batch being ended, once the producer has it.
    pub(super) fn drive_ctp(&mut self, cx: &mut Cx) {
        let Some(c) = self.ctp.as_mut() else { return };
        if !c.ending {
            return;
        }
        let Some(outcome) = c.producer.ctp_outcome() else {
            return;
        };
        c.ending = false;
        let transactional = c.transactional;
        match (outcome, transactional) {
            (TxnOutcome::Committed, true) => {
                // `commitTransaction()` returned: the offsets sent with it are committed.
                let generation = self.group.generation;
                for (tp, offset, _) in self.marked_offsets() {
                    cx.record(HistoryEvent::Commit {
                        group: self.spec.group_index,
                        member: self.spec.member_index,
                        generation,
                        partition: tp,
                        offset,
                        error: crate::protocol::ErrorCode::None,
                    });
                    if let Some(p) = self.parts.get_mut(&tp) {
                        p.committed = Some(p.committed.map_or(offset, |c| c.max(offset)));
                    }
                }
            }
            (TxnOutcome::Committed, false) => self.commit_marks_after_outputs(cx),
            (TxnOutcome::Aborted | TxnOutcome::Fenced, _) => self.rewind_to_committed(),
        }
    }

    /// `abortTransaction()` (or a failed flush): seek every partition back to the group's
    /// committed offset, asked anew (`consumer.committed(partitions)` then `seek`).
    fn rewind_to_committed(&mut self) {
        for p in self.parts.values_mut() {
            p.position = None;
            p.marked = None;
            p.busy = false;
            p.buffered.clear();
            p.need = Need::Committed;
            p.rewind = true;
        }
    }

    /// produce-then-commit: the outputs are acknowledged; commit as the handler says.
    fn commit_marks_after_outputs(&mut self, cx: &mut Cx) {
        self.commit_by_mode(cx);
    }
}
