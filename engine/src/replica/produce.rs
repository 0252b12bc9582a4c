//! The produce path of a leader (Kafka's `ReplicaManager.appendRecords` and `DelayedProduce`):
//! validate and append a client's batches, and answer once the acks the client asked for are
//! met, or its timeout runs out.

use super::partition::Partition;
use super::purgatory::{self, DelayedProduce, PendingAppend, ProduceOrigin};
use super::ReplicaManager;
use crate::broker::config::BrokerConfig;
use crate::broker::timer::ReplicaTimer;
use crate::history::HistoryEvent;
use crate::node::{Cx, NodeId};
use crate::partition_map::PartitionMap;
use crate::protocol::*;
use crate::record::{RecordBatch, TopicPartition};
use crate::time::Duration;

impl ReplicaManager {
    /// ProduceRequest from a client.
    pub fn handle_produce(&mut self, cx: &mut Cx, from: NodeId, req: ProduceRequest) {
        self.handle_produce_refusing(cx, from, req, &[]);
    }

    /// Whether `batch` for `tp` needs KIP-890 verification before this leader appends it: a
    /// transactional batch of a producer with no transaction open on the partition
    /// (`UnifiedLog.maybeStartTransactionVerification`).
    pub fn needs_verification(&self, tp: TopicPartition, batch: &RecordBatch) -> bool {
        let leads = self.partitions.get(&tp).is_some_and(|p| p.is_leader());
        leads
            && batch.is_transactional
            && batch.control.is_none()
            && batch.producer_id >= 0
            && self.producer_states.get(&tp).is_none_or(|ps| {
                ps.transactions()
                    .ongoing_first_offset(batch.producer_id)
                    .is_none()
            })
    }

    /// A ProduceRequest whose `refused` partitions are answered with their error, unappended
    /// (a failed transaction verification); the others are appended as usual.
    pub fn handle_produce_refusing(
        &mut self,
        cx: &mut Cx,
        from: NodeId,
        req: ProduceRequest,
        refused: &[(TopicPartition, ErrorCode)],
    ) {
        let origin = ProduceOrigin::Client {
            node: from,
            correlation_id: req.correlation_id,
        };
        let mut done: Vec<PartitionProduceResponse> = refused
            .iter()
            .map(|(tp, error)| PartitionProduceResponse {
                partition: *tp,
                error: *error,
                base_offset: 0,
                log_start_offset: 0,
            })
            .collect();
        let mut pending = Vec::new();
        let mut appended = Vec::new();
        // One batch per partition, as Kafka's ProduceRequest keys its data by partition.
        assert!(
            req.batches
                .iter()
                .enumerate()
                .all(|(i, (tp, _))| req.batches[..i].iter().all(|(o, _)| o != tp)),
            "{}: a produce from {from} names a partition twice",
            cx.me()
        );
        let mut to_answer = refused.len();
        for (tp, batch) in req.batches {
            if refused.iter().any(|(r, _)| *r == tp) {
                continue;
            }
            to_answer += 1;
            match self.append_to_leader(cx, tp, batch, req.acks, true) {
                Ok(p) => {
                    appended.push(tp);
                    pending.extend(p);
                }
                Err(resp) => done.push(resp),
            }
        }
        // Waiting fetches are completed once the whole request is appended (Kafka 0.8
        // unblocked them after `appendToLocalLog`; today's broker runs them from its action
        // queue after the request), so a follower's answer carries every partition of it.
        for tp in appended {
            self.wake_fetches(cx, tp);
        }
        if req.acks == Acks::None {
            return;
        }
        // Every partition of the request is answered once: now, or when its append settles.
        assert_eq!(
            pending.len() + done.len(),
            to_answer,
            "{}: a produce from {from} lost a partition",
            cx.me()
        );
        self.delay_produce(cx, origin, pending, done, req.timeout);
    }

    /// Answer a produce now if every partition is settled, else park it until the HW (or
    /// fsync) lets it complete or its timeout fires.
    pub(super) fn delay_produce(
        &mut self,
        cx: &mut Cx,
        origin: ProduceOrigin,
        pending: Vec<PendingAppend>,
        done: Vec<PartitionProduceResponse>,
        timeout: Duration,
    ) {
        let mut op = DelayedProduce {
            origin,
            pending,
            done,
            timer: None,
        };
        settle_appends(&self.partitions, &self.config, &mut op);
        if op.pending.is_empty() {
            self.respond_produce(cx, op);
            return;
        }
        let id = self.next_id();
        op.timer = Some(cx.set_timer_after(timeout, ReplicaTimer::ProduceTimeout(id)));
        assert!(
            self.produces.get(id).is_none(),
            "{}: delayed produce id {id} reused",
            cx.me()
        );
        self.produces.insert(id, op);
    }

    /// Validate and append one batch as leader. `Ok(Some)` = wait for it; `Err` = answered.
    pub(super) fn append_to_leader(
        &mut self,
        cx: &mut Cx,
        tp: TopicPartition,
        batch: RecordBatch,
        acks: Acks,
        from_client: bool,
    ) -> Result<Option<PendingAppend>, PartitionProduceResponse> {
        let fail = |error| PartitionProduceResponse {
            partition: tp,
            error,
            base_offset: 0,
            log_start_offset: 0,
        };
        let Some(p) = self.partitions.get_mut(&tp).filter(|p| p.is_leader()) else {
            return Err(fail(ErrorCode::NotLeaderOrFollower));
        };
        let min_isr = self.config.effective_min_isr(p.replication_factor());
        let isr_len = p.state.as_ref().map_or(0, |s| s.isr.len());
        if acks == Acks::All && isr_len < min_isr {
            return Err(fail(ErrorCode::NotEnoughReplicas));
        }
        // ---- idempotence hook: the producer state decides duplicates and sequence errors.
        let epoch = p.leader_epoch().expect("leader has a state");
        let ps = self.producer_states.entry(tp).or_default();
        // A coordinator's batch (`AppendOrigin.COORDINATOR`: markers, transactional offset
        // commits) skips the sequence checks; callers fence its epoch themselves.
        if from_client && batch.producer_id >= 0 {
            match ps.check(&batch) {
                Err(e) => return Err(fail(e)),
                Ok(Some(original_base)) => {
                    // A retried batch already in the log may not be committed yet (its first
                    // attempt is still waiting, or timed out). Kafka answers the duplicate
                    // through the same delayed produce as a fresh append, with the original
                    // batch's offsets (`UnifiedLog.append` returns them; `ReplicaManager`
                    // waits for the HW to pass its last offset): never before the ISR has it.
                    let end = original_base + batch.record_count();
                    let pending = PendingAppend {
                        partition: tp,
                        base_offset: original_base,
                        required_offset: if acks == Acks::All { end } else { 0 },
                        end_offset: end,
                        leader_epoch: epoch,
                    };
                    return Ok((acks != Acks::None).then_some(pending));
                }
                Ok(None) => {}
            }
        }
        let leo_before = p.log.log_end_offset();
        let stored = p
            .log
            .append_as_leader(cx, batch, epoch, self.config.flush_policy());
        assert!(
            stored.base_offset == leo_before && stored.partition_leader_epoch == epoch,
            "{} {tp}: stored at {} in epoch {} instead of at {leo_before} in {epoch}",
            cx.me(),
            stored.base_offset,
            stored.partition_leader_epoch
        );
        if stored.producer_id >= 0 {
            ps.on_append(&stored);
        }
        // The write side of deduplication: a retry of the client batch just taken is now
        // found at its offset (`ProducerStateManager` caches the last 5 batches per
        // producer), so it can never be appended twice.
        if from_client && stored.producer_id >= 0 {
            assert_eq!(
                ps.check(&stored),
                Ok(Some(stored.base_offset)),
                "{} {tp}: producer {} seq {} just appended, not found as a duplicate",
                cx.me(),
                stored.producer_id,
                stored.base_sequence
            );
        }
        cx.record(HistoryEvent::Appended {
            broker: cx.me(),
            partition: tp,
            leader_epoch: epoch,
            base_offset: stored.base_offset,
            next_offset: stored.next_offset(),
            leader: true,
        });
        let pending = PendingAppend {
            partition: tp,
            base_offset: stored.base_offset,
            required_offset: if acks == Acks::All {
                stored.next_offset()
            } else {
                0
            },
            end_offset: stored.next_offset(),
            leader_epoch: epoch,
        };
        self.on_isr_or_hw_change(cx, tp);
        assert!(
            self.partitions[&tp].high_watermark <= stored.next_offset(),
            "{} {tp}: the HW passed the batch just appended",
            cx.me()
        );
        Ok((acks != Acks::None).then_some(pending))
    }

    pub(crate) fn try_complete_produces(&mut self, cx: &mut Cx, tp: TopicPartition) {
        for id in self.produces.watching(tp) {
            self.try_complete_produce(cx, id, None);
        }
    }

    /// [`Self::try_complete_produces`] after a change of `tp` alone (its HW recomputed, its
    /// log synced): only the waiting appends *to `tp`* are tried, not every partition of
    /// every produce waiting on it (Kafka's `DelayedProduce.tryComplete` walks them all; the
    /// others cannot have changed, and debug builds assert that they would still wait, so
    /// the answers keep the order a full settle gives).
    pub(crate) fn try_complete_produces_on(&mut self, cx: &mut Cx, tp: TopicPartition) {
        for id in self.produces.watching(tp) {
            self.try_complete_produce(cx, id, Some(tp));
        }
    }

    /// Settle the appends of produce `id` (only those to `only`, if given) and answer it once
    /// none waits.
    pub(super) fn try_complete_produce(
        &mut self,
        cx: &mut Cx,
        id: u64,
        only: Option<TopicPartition>,
    ) {
        let Some(op) = self.produces.get_mut(id) else {
            return;
        };
        match only {
            None => settle_appends(&self.partitions, &self.config, op),
            Some(tp) => settle_partition(&self.partitions, &self.config, op, tp),
        }
        if op.pending.is_empty() {
            let op = self.produces.remove(id).expect("present");
            assert!(
                op.timer.is_some(),
                "a parked produce {id} without its timeout"
            );
            if let Some(timer) = op.timer {
                cx.cancel_timer(timer);
            }
            self.respond_produce(cx, op);
        }
    }

    /// The produce timeout fired: answer RequestTimedOut for what is still pending.
    pub fn on_produce_timeout(&mut self, cx: &mut Cx, id: u64) {
        let Some(mut op) = self.produces.remove(id) else {
            return;
        };
        assert!(
            !op.pending.is_empty(),
            "{}: produce {id} timed out with nothing pending (it should have been answered)",
            cx.me()
        );
        for pa in std::mem::take(&mut op.pending) {
            op.done.push(PartitionProduceResponse {
                partition: pa.partition,
                error: ErrorCode::RequestTimedOut,
                base_offset: 0,
                log_start_offset: 0,
            });
        }
        self.respond_produce(cx, op);
    }

    pub(super) fn respond_produce(&mut self, cx: &mut Cx, op: DelayedProduce) {
        assert!(
            op.pending.is_empty(),
            "{}: a produce answered with {} appends unsettled",
            cx.me(),
            op.pending.len()
        );
        match op.origin {
            ProduceOrigin::Client {
                node,
                correlation_id,
            } => cx.send(
                node,
                Message::ProduceResponse(ProduceResponse {
                    correlation_id,
                    partitions: op.done,
                }),
            ),
            ProduceOrigin::Coordinator { token } => {
                // A coordinator appends to one partition at a time.
                assert_eq!(
                    op.done.len(),
                    1,
                    "{}: coordinator append {token} answered for {} partitions",
                    cx.me(),
                    op.done.len()
                );
                let error = op.done.first().map_or(ErrorCode::None, |r| r.error);
                self.coordinator_done.push((token, error));
            }
        }
    }
}

/// Move the appends of `op` whose outcome is known into its answers.
pub(super) fn settle_appends(
    partitions: &PartitionMap<Partition>,
    config: &BrokerConfig,
    op: &mut DelayedProduce,
) {
    settle_where(partitions, config, op, |_| true);
}

/// [`settle_appends`] for the appends of `op` to `tp` only, the others left waiting: what a
/// change of `tp` alone can settle. Debug builds (every test) check that no other append
/// would settle now, which is what makes this equal to a full settle, answers' order
/// included.
pub(super) fn settle_partition(
    partitions: &PartitionMap<Partition>,
    config: &BrokerConfig,
    op: &mut DelayedProduce,
    tp: TopicPartition,
) {
    settle_where(partitions, config, op, |pa| pa.partition == tp);
    if cfg!(debug_assertions) {
        for pa in &op.pending {
            assert!(
                append_outcome(partitions, config, pa).is_none(),
                "{tp}: a produce waiting on {} would settle there too: a change of {tp} alone \
                 was assumed",
                pa.partition
            );
        }
    }
}

/// Settles, in place, the appends of `op` that `which` selects and whose outcome is known
/// (the appends still waiting keep their order): this runs for the waiting produces of a
/// partition each time its HW may have moved.
fn settle_where(
    partitions: &PartitionMap<Partition>,
    config: &BrokerConfig,
    op: &mut DelayedProduce,
    which: impl Fn(&PendingAppend) -> bool,
) {
    let before = op.pending.len() + op.done.len();
    let done = &mut op.done;
    op.pending.retain(|pa| {
        if !which(pa) {
            return true;
        }
        match append_outcome(partitions, config, pa) {
            None => true,
            Some(error) => {
                done.push(answer(pa, error));
                false
            }
        }
    });
    assert_eq!(
        op.pending.len() + op.done.len(),
        before,
        "settling a produce lost or duplicated a partition"
    );
}

/// The answer for a settled append.
fn answer(pa: &PendingAppend, error: ErrorCode) -> PartitionProduceResponse {
    PartitionProduceResponse {
        partition: pa.partition,
        error,
        base_offset: if error == ErrorCode::None {
            pa.base_offset
        } else {
            0
        },
        log_start_offset: 0,
    }
}

/// The outcome of one waiting append given the current state of its partition (`None`: it
/// still waits).
pub(super) fn append_outcome(
    partitions: &PartitionMap<Partition>,
    config: &BrokerConfig,
    pa: &PendingAppend,
) -> Option<ErrorCode> {
    let p = partitions.get(&pa.partition);
    assert!(
        p.is_none_or(|p| p.tp() == pa.partition),
        "{}: hosted under another partition's key",
        pa.partition
    );
    let epoch = p.filter(|p| p.is_leader()).and_then(|p| p.leader_epoch());
    let hw = p.map_or(0, |p| p.high_watermark);
    let synced = p.is_some_and(|p| p.log.is_synced_through(pa.end_offset));
    let isr = p.map_or(0, |p| p.maximal_isr_len());
    let min_isr = p.map_or(config.min_insync_replicas as usize, |p| {
        config.effective_min_isr(p.replication_factor())
    }) as u32;
    purgatory::check_append(pa, epoch, hw, synced, isr, min_isr)
}
