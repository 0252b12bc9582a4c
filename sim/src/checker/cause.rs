//! The cause a violation's line names, from the brokers' facts in the history: where and
//! when the records involved were written (each leader append: broker, leader epoch, time)
//! and whether the log that held one was replaced by a leader that did not have it.
//!
//! The checkers decide *that* something is wrong from what clients saw; this pass says
//! *why* in one clause, for the violations the collector kept (at most `max_per_kind` per
//! kind), so that a user can act on the line without reading the record's story:
//!
//! - `nonmonotonic-send`: the two records, their send times, and either the retry that put
//!   the earlier batch behind the later one (its batch appended later; what a producer with
//!   more than one request in flight and no idempotence does: Java's `RecordAccumulator`
//!   re-enqueues a retried batch at the front of its partition's deque while later batches
//!   are already on the wire, see `Sender.reenqueueBatch`), or the new leader that handed
//!   the earlier record's offset out again (an acknowledged write lost, not reordered);
//! - `inconsistent-offsets`: the two appends at the offset and the leader change between;
//! - `lost-write` (and `unseen`, `sink-loss` of a record no member ever read): the leader
//!   that took over without the acknowledged record;
//! - `duplicate`: the two leader appends of the value, and the producer's retries and
//!   idempotence in the user's words.
//!
//! - `sink-duplicate`, `poll-skip`, `nonmonotonic-poll`: the consumer side's causes, in
//!   [`consumer`].
//!
//! A violation whose facts are not in the history (hand-built histories, a value placed by
//! reads only) keeps its line as it was.

use super::index::HistoryIndex;
use super::{value_name, CheckConfig};
use crate::history::History;
use crate::violation::{Violation, ViolationKind};
use kafsim_engine::history::HistoryEvent;
use kafsim_engine::{Instant, NodeId, TopicPartition, ValueId};
use std::collections::{BTreeMap, BTreeSet};

mod consumer;
pub use consumer::NodeStop;

/// How one producer keeps its batches of a partition in order, for the causes above.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ordering {
    /// In the user's words: `max.in.flight.requests.per.connection = 5, retries =
    /// 2147483647, not idempotent (enable.idempotence = false)`.
    pub words: String,
    /// Whether a retried batch can land behind later ones: retries, more than one batch of
    /// a partition in flight, and no idempotence.
    pub may_reorder: bool,
    /// Whether the leader recognizes a retried batch (the idempotent producer).
    pub idempotent: bool,
}

/// A leader's append of a producer batch: `base..next` of its partition.
struct Append {
    at: Instant,
    broker: NodeId,
    epoch: u32,
    base: u64,
    next: u64,
}

/// A broker becoming leader, with the log end it led from.
struct Leader {
    at: Instant,
    broker: NodeId,
    epoch: u32,
    log_end: u64,
}

/// The leader appends and leader changes of the partitions some violation is about, in
/// history order.
#[derive(Default)]
struct Logs {
    appends: BTreeMap<TopicPartition, Vec<Append>>,
    leaders: BTreeMap<TopicPartition, Vec<Leader>>,
    /// How often the application handed each duplicated value over.
    sends: BTreeMap<ValueId, u32>,
    /// The values of `unseen` and `sink-loss` violations some member polled.
    polled: BTreeSet<ValueId>,
}

impl Logs {
    fn of(
        history: &History,
        partitions: &BTreeSet<TopicPartition>,
        duplicated: &BTreeSet<ValueId>,
        unread: &BTreeSet<ValueId>,
    ) -> Logs {
        let mut logs = Logs::default();
        for e in history.entries() {
            match e.event {
                HistoryEvent::SendInvoke { value, .. } if duplicated.contains(&value) => {
                    *logs.sends.entry(value).or_default() += 1;
                }
                HistoryEvent::Poll { value, .. } if unread.contains(&value) => {
                    logs.polled.insert(value);
                }
                HistoryEvent::Appended {
                    broker,
                    partition,
                    leader_epoch,
                    base_offset,
                    next_offset,
                    leader: true,
                } if partitions.contains(&partition) => {
                    logs.appends.entry(partition).or_default().push(Append {
                        at: e.at,
                        broker,
                        epoch: leader_epoch,
                        base: base_offset,
                        next: next_offset,
                    })
                }
                HistoryEvent::BecameLeader {
                    broker,
                    partition,
                    leader_epoch,
                    log_end_offset,
                } if partitions.contains(&partition) => {
                    logs.leaders.entry(partition).or_default().push(Leader {
                        at: e.at,
                        broker,
                        epoch: leader_epoch,
                        log_end: log_end_offset,
                    })
                }
                _ => {}
            }
        }
        logs
    }

    /// The leader append that put a record at `offset` of `tp`, as of `by` (its
    /// acknowledgement or a read of it): the latest covering the offset by then.
    fn append_of(&self, tp: TopicPartition, offset: u64, by: Instant) -> Option<&Append> {
        let appends = self.appends.get(&tp)?;
        let end = appends.partition_point(|a| a.at <= by);
        appends[..end]
            .iter()
            .rev()
            .find(|a| a.base <= offset && offset < a.next)
    }

    /// The first leader of `tp` after `after` (and by `by`) whose log ended at or below
    /// `offset`: it did not have the record there, and handed the offset out again.
    fn leader_without(
        &self,
        tp: TopicPartition,
        offset: u64,
        after: Instant,
        by: Instant,
    ) -> Option<&Leader> {
        self.leaders
            .get(&tp)?
            .iter()
            .find(|l| l.at > after && l.at <= by && l.log_end <= offset)
    }
}

/// Kinds whose line this pass completes.
fn explained(kind: ViolationKind) -> bool {
    matches!(
        kind,
        ViolationKind::NonmonotonicSend
            | ViolationKind::InconsistentOffsets
            | ViolationKind::LostWrite
            | ViolationKind::Unseen
            | ViolationKind::SinkLoss
            | ViolationKind::Duplicate
    )
}

/// Appends its cause (`: CAUSE`) to each violation of an explained kind whose facts the
/// history has.
pub fn explain(
    history: &History,
    index: &HistoryIndex,
    config: &CheckConfig,
    violations: &mut [Violation],
) {
    consumer::explain(history, index, config, violations);
    let partitions: BTreeSet<TopicPartition> = violations
        .iter()
        .filter(|v| explained(v.kind) && v.value.is_some())
        .filter_map(|v| v.partition)
        .collect();
    if partitions.is_empty() {
        return;
    }
    let duplicated: BTreeSet<ValueId> = violations
        .iter()
        .filter(|v| v.kind == ViolationKind::Duplicate)
        .filter_map(|v| v.value)
        .collect();
    let unread: BTreeSet<ValueId> = violations
        .iter()
        .filter(|v| matches!(v.kind, ViolationKind::Unseen | ViolationKind::SinkLoss))
        .filter_map(|v| v.value)
        .collect();
    let logs = Logs::of(history, &partitions, &duplicated, &unread);
    let cx = Cx {
        index,
        config,
        logs: &logs,
    };
    for v in violations.iter_mut().filter(|v| explained(v.kind)) {
        let cause = match v.kind {
            ViolationKind::NonmonotonicSend => cx.nonmonotonic_send(v),
            ViolationKind::InconsistentOffsets => cx.inconsistent_offsets(v),
            ViolationKind::Duplicate => cx.duplicate(v),
            // A value some member read was in the log then: what kept it from the group
            // or the sink is the consumer's story, not the log's.
            ViolationKind::Unseen | ViolationKind::SinkLoss
                if v.value.is_some_and(|x| logs.polled.contains(&x)) =>
            {
                None
            }
            _ => cx.lost(v),
        };
        if let Some(cause) = cause {
            v.detail.push_str(": ");
            v.detail.push_str(&cause);
        }
    }
}

struct Cx<'a> {
    index: &'a HistoryIndex,
    config: &'a CheckConfig,
    logs: &'a Logs,
}

impl Cx<'_> {
    /// ` (sent at 8503.332ms)`.
    fn sent(&self, value: ValueId) -> String {
        self.index
            .invocation(value)
            .map_or_else(String::new, |i| format!(" (sent at {})", i.at))
    }

    /// `by broker-2 at 27602.495ms (leader epoch 3)`.
    fn written(&self, a: &Append) -> String {
        format!(
            "by {} at {} (leader epoch {})",
            self.config.names.node(a.broker),
            a.at,
            a.epoch
        )
    }

    /// `broker-1 became leader in epoch 1 at 15001.078ms with log end 781, without it`.
    fn took_over(&self, l: &Leader) -> String {
        format!(
            "{} became leader in epoch {} at {} with log end {}, without it",
            self.config.names.node(l.broker),
            l.epoch,
            l.at,
            l.log_end
        )
    }

    /// The acknowledged position of `value` and the leader append that made it.
    fn acked(&self, value: ValueId) -> Option<(TopicPartition, u64, &Append)> {
        let ack = self.index.ack(value)?;
        if ack.offset == super::OFFSET_UNKNOWN {
            return None;
        }
        let append = self.logs.append_of(ack.partition, ack.offset, ack.at)?;
        Some((ack.partition, ack.offset, append))
    }

    fn nonmonotonic_send(&self, v: &Violation) -> Option<String> {
        let (send, high) = (v.value?, v.other?);
        let (tp, offset) = (v.partition?, v.offset?);
        let producer = self.index.invocation(send)?.producer;
        let ordering = self.config.ordering(producer);
        let words = ordering.map_or_else(String::new, |o| {
            format!(" ({}: {})", self.config.names.producer(producer), o.words)
        });
        let (s, h) = (value_name(send), value_name(high));
        let sa = self.logs.append_of(tp, offset, v.at);
        let Some((high_tp, high_offset, ha)) = self.acked(high) else {
            return Some(format!(
                "{s}{} was sent after {h}{}{words}",
                self.sent(send),
                self.sent(high)
            ));
        };
        // One append cannot have written both (the later send below the earlier one):
        // one of the two acknowledgements came from another leader's log, and which one
        // the history does not say.
        let Some(sa) =
            sa.filter(|sa| high_tp == tp && high_offset > offset && !std::ptr::eq(*sa, ha))
        else {
            return Some(format!(
                "{s}{} was sent after {h}{}{words}",
                self.sent(send),
                self.sent(high)
            ));
        };
        if (sa.at, sa.base) < (ha.at, ha.base) {
            let how = match ordering {
                Some(o) if o.may_reorder => {
                    "the request carrying the earlier batch failed or timed out and was \
                     retried after the later one was written: with more than one request in \
                     flight and no idempotence, a retried batch lands behind the batches \
                     sent after it"
                }
                _ => {
                    "the earlier batch was written after the later one, although this \
                     producer keeps a partition's batches in order"
                }
            };
            return Some(format!(
                "{s}{} was appended first, {}, and {h}{} only {}: {how}{words}",
                self.sent(send),
                self.written(sa),
                self.sent(high),
                self.written(ha)
            ));
        }
        Some(match self.logs.leader_without(tp, offset, ha.at, sa.at) {
            Some(l) => format!(
                "{h}{} was appended {} and acknowledged, then {}, and handed the offsets \
                 from {} on out again: {s}{} was appended {} (the acknowledged {h} was lost \
                 from the partition's log, not reordered by the producer)",
                self.sent(high),
                self.written(ha),
                self.took_over(l),
                l.log_end,
                self.sent(send),
                self.written(sa)
            ),
            None => format!(
                "{h}{} was appended {}, {s}{} {}{words}",
                self.sent(high),
                self.written(ha),
                self.sent(send),
                self.written(sa)
            ),
        })
    }

    fn inconsistent_offsets(&self, v: &Violation) -> Option<String> {
        let (second, first) = (v.value?, v.other?);
        let (tp, offset) = (v.partition?, v.offset?);
        let sa = self.logs.append_of(tp, offset, v.at)?;
        // The first value's append: the latest at this offset before the second's.
        let fa = self.earlier_append(tp, offset, sa)?;
        let (f, s) = (value_name(first), value_name(second));
        Some(match self.logs.leader_without(tp, offset, fa.at, sa.at) {
            Some(l) => format!(
                "{f}{} was appended {}, then {}: {s}{} was appended at the same offset {} \
                 (the log that held {f} was replaced)",
                self.sent(first),
                self.written(fa),
                self.took_over(l),
                self.sent(second),
                self.written(sa)
            ),
            None => format!(
                "{f}{} was appended {}, {s}{} {}",
                self.sent(first),
                self.written(fa),
                self.sent(second),
                self.written(sa)
            ),
        })
    }

    /// The append at `offset` of `tp` before `than`.
    fn earlier_append(&self, tp: TopicPartition, offset: u64, than: &Append) -> Option<&Append> {
        let appends = self.logs.appends.get(&tp)?;
        let end = appends.iter().position(|a| std::ptr::eq(a, than))?;
        appends[..end]
            .iter()
            .rev()
            .find(|a| a.base <= offset && offset < a.next)
    }

    /// An acknowledged record the group never read: the leader that took over without it.
    fn lost(&self, v: &Violation) -> Option<String> {
        let value = v.value?;
        let (tp, offset, a) = self.acked(value)?;
        let l = self.logs.leader_without(tp, offset, a.at, Instant::MAX)?;
        Some(format!(
            "it was appended {} and acknowledged, then {}: the record was lost from the \
             partition's log",
            self.written(a),
            self.took_over(l)
        ))
    }

    /// A value at two offsets: the two leader appends, and the producer's retries.
    fn duplicate(&self, v: &Violation) -> Option<String> {
        let value = v.value?;
        let (tp, offset) = (v.partition?, v.offset?);
        let (first_tp, first_offset, fa) = self.acked(value)?;
        if first_tp != tp || first_offset == offset {
            return None;
        }
        let sa = self.logs.append_of(tp, offset, v.at)?;
        let producer = self.index.invocation(value)?.producer;
        let ordering = self.config.ordering(producer);
        let words = ordering.map_or_else(String::new, |o| {
            format!(" ({}: {})", self.config.names.producer(producer), o.words)
        });
        let why = match self.logs.sends.get(&value).copied().unwrap_or(1) {
            1 if ordering.is_some_and(|o| !o.idempotent) => {
                "sent once, so the second is its client's retry of a batch whose first \
                 request was appended but went unanswered, which only an idempotent producer \
                 lets the leader recognize"
                    .to_string()
            }
            1 => "sent once, so the second is its client's retry of a batch whose first \
                  request was appended but went unanswered"
                .to_string(),
            n => format!(
                "the application handed it over {n} times (a resend after an unknown outcome)"
            ),
        };
        let mut copies = [(fa, first_offset), (sa, offset)];
        copies.sort_by_key(|(a, offset)| (a.at, *offset));
        let [(a, a_offset), (b, b_offset)] = copies;
        Some(format!(
            "its batch was appended twice, at {} {} and at {} {}: {why}{words}",
            self.config.names.at(tp, a_offset),
            self.written(a),
            self.config.names.at(tp, b_offset),
            self.written(b)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::Ordering;
    use crate::checker::check_history;
    use crate::checker::test_support::*;
    use crate::violation::Violation;
    use crate::violation::ViolationKind::{self, *};
    use kafsim_engine::history::HistoryEvent;
    use kafsim_engine::NodeId;

    /// Broker `broker` (as leader in `epoch`) appended `base..next` of partition 0.
    fn append(s: &mut Story, at: u64, broker: u32, epoch: u32, base: u64, next: u64) {
        s.event(
            at,
            HistoryEvent::Appended {
                broker: NodeId(broker),
                partition: tp(0),
                leader_epoch: epoch,
                base_offset: base,
                next_offset: next,
                leader: true,
            },
        );
    }

    fn leader(s: &mut Story, at: u64, broker: u32, epoch: u32, log_end: u64) {
        s.event(
            at,
            HistoryEvent::BecameLeader {
                broker: NodeId(broker),
                partition: tp(0),
                leader_epoch: epoch,
                log_end_offset: log_end,
            },
        );
    }

    fn ordering(may_reorder: bool) -> Ordering {
        Ordering {
            words: if may_reorder {
                "max.in.flight.requests.per.connection = 5, retries = 3, not idempotent \
                 (enable.idempotence = false)"
            } else {
                "max.in.flight.requests.per.connection = 5, retries = 3, idempotent"
            }
            .to_string(),
            may_reorder,
            idempotent: !may_reorder,
        }
    }

    fn found(s: &Story, may_reorder: bool, kind: ViolationKind) -> Vec<Violation> {
        let mut config = config(vec![group(0, false, false)]);
        config.ordering = vec![(0, ordering(may_reorder))];
        check_history(s.history(), &config)
            .into_iter()
            .filter(|v| v.kind == kind)
            .collect()
    }

    /// v1's batch was retried behind v2's: the cause names both records, their send and
    /// append times, and the producer's settings that allow it.
    #[test]
    fn a_batch_retried_behind_a_later_one() {
        let mut s = Story::new();
        s.invoke(1, 0, 1, None).invoke(2, 0, 2, None);
        append(&mut s, 10, 1, 0, 5, 6);
        s.ok(11, 0, 2, 0, 5);
        append(&mut s, 20, 1, 0, 6, 7);
        s.ok(21, 0, 1, 0, 6);
        let v = found(&s, true, NonmonotonicSend);
        assert_eq!(v.len(), 1, "{v:#?}");
        assert_eq!(
            v[0].detail,
            "producer-0 invoked v2 after v1 but it landed at topic-0/0@5, below topic-0/0@6: \
             v2 (sent at 2.000ms) was appended first, by node-1 at 10.000ms (leader epoch 0), \
             and v1 (sent at 1.000ms) only by node-1 at 20.000ms (leader epoch 0): the \
             request carrying the earlier batch failed or timed out and was retried after the \
             later one was written: with more than one request in flight and no idempotence, \
             a retried batch lands behind the batches sent after it (producer-0: \
             max.in.flight.requests.per.connection = 5, retries = 3, not idempotent \
             (enable.idempotence = false))"
        );
        // An idempotent producer's reorder is not blamed on its settings.
        let v = found(&s, false, NonmonotonicSend);
        assert!(
            v[0].detail
                .contains("although this producer keeps a partition's batches in order"),
            "{}",
            v[0].detail
        );
    }

    /// v1 was acknowledged at offset 6, then a leader without it took over and handed offset
    /// 5 out again: the cause says the write was lost, not reordered; the same facts explain
    /// the lost write and the offset that holds two values.
    #[test]
    fn an_offset_handed_out_again_by_a_leader_without_the_record() {
        let mut s = Story::new();
        s.invoke(1, 0, 9, None);
        append(&mut s, 2, 1, 0, 5, 6);
        s.ok(3, 0, 9, 0, 5);
        s.invoke(4, 0, 1, None);
        append(&mut s, 10, 1, 0, 6, 7);
        s.ok(11, 0, 1, 0, 6);
        leader(&mut s, 15, 2, 1, 5);
        s.invoke(16, 0, 2, None).invoke(16, 0, 3, None);
        append(&mut s, 17, 2, 1, 5, 7);
        s.ok(18, 0, 2, 0, 5).ok(18, 0, 3, 0, 6);
        s.poll(20, 0, 0, 0, 5, 2).poll(20, 0, 0, 0, 6, 3);
        let sends = found(&s, true, NonmonotonicSend);
        let detail = &sends.iter().find(|x| x.value == Some(v(2))).unwrap().detail;
        assert!(
            detail.ends_with(
                "v1 (sent at 4.000ms) was appended by node-1 at 10.000ms (leader epoch 0) and \
                 acknowledged, then node-2 became leader in epoch 1 at 15.000ms with log end 5, \
                 without it, and handed the offsets from 5 on out again: v2 (sent at \
                 16.000ms) was appended by node-2 at 17.000ms (leader epoch 1) (the \
                 acknowledged v1 was lost from the partition's log, not reordered by the \
                 producer)"
            ),
            "{detail}"
        );
        let v = found(&s, true, InconsistentOffsets);
        assert_eq!(v.len(), 2, "{v:#?}");
        assert!(
            v[0].detail.ends_with(
                "v9 (sent at 1.000ms) was appended by node-1 at 2.000ms (leader epoch 0), then \
                 node-2 became leader in epoch 1 at 15.000ms with log end 5, without it: v2 \
                 (sent at 16.000ms) was appended at the same offset by node-2 at 17.000ms \
                 (leader epoch 1) (the log that held v9 was replaced)"
            ),
            "{}",
            v[0].detail
        );
        let lost = found(&s, true, LostWrite);
        assert_eq!(lost.len(), 1, "{lost:#?}");
        assert!(
            lost[0].detail.ends_with(
                ": it was appended by node-1 at 2.000ms (leader epoch 0) and acknowledged, \
                 then node-2 became leader in epoch 1 at 15.000ms with log end 5, without it: \
                 the record was lost from the partition's log"
            ),
            "{}",
            lost[0].detail
        );
    }

    /// The other way: without a leader change the log kept everything, and in-order sends
    /// are not explained as anything.
    #[test]
    fn no_cause_without_the_facts() {
        let mut s = Story::new();
        s.invoke(1, 0, 1, None).invoke(2, 0, 2, None);
        append(&mut s, 10, 1, 0, 5, 6);
        s.ok(11, 0, 1, 0, 5);
        append(&mut s, 20, 1, 0, 6, 7);
        s.ok(21, 0, 2, 0, 6);
        s.poll(30, 0, 0, 0, 6, 2);
        assert_eq!(found(&s, true, NonmonotonicSend), vec![]);
        let lost = found(&s, true, LostWrite);
        assert_eq!(lost.len(), 1);
        assert!(
            lost[0]
                .detail
                .ends_with("though g0/0 read topic-0/0@6 (v2) at 30.000ms"),
            "no cause when no leader took over without it: {}",
            lost[0].detail
        );
    }

    /// A value appended twice (a retry of an unanswered request): both appends, in time
    /// order, and why the leader kept both.
    #[test]
    fn a_duplicate_names_both_appends() {
        let mut s = Story::new();
        s.invoke(1, 0, 1, None);
        append(&mut s, 10, 1, 0, 5, 6);
        append(&mut s, 20, 1, 0, 7, 8);
        s.ok(21, 0, 1, 0, 7);
        s.poll(30, 0, 0, 0, 5, 1);
        let v = found(&s, true, Duplicate);
        assert_eq!(v.len(), 1, "{v:#?}");
        assert!(
            v[0].detail.ends_with(
                ": its batch was appended twice, at topic-0/0@5 by node-1 at 10.000ms (leader \
                 epoch 0) and at topic-0/0@7 by node-1 at 20.000ms (leader epoch 0): sent \
                 once, so the second is its client's retry of a batch whose first request was \
                 appended but went unanswered, which only an idempotent producer lets the \
                 leader recognize (producer-0: max.in.flight.requests.per.connection = 5, \
                 retries = 3, not idempotent (enable.idempotence = false))"
            ),
            "{}",
            v[0].detail
        );
    }
}
