//! The causes of the consumer side's violations, from the group's facts in the history:
//!
//! - `sink-duplicate`: who read the record again, when, and why its position went back to
//!   it: the member resumed the partition at the group's committed offset after a rebalance
//!   (and why no commit covering the record had been stored: the commits that would have
//!   covered it failed, or the member that wrote it first stopped before committing), its
//!   position was reset or sought there, or the log holds the value twice;
//! - `poll-skip`: which offset was skipped, what it holds (the value, its producer and
//!   transaction), and the leader change or truncation that took it from the log the
//!   member read;
//! - `nonmonotonic-poll`: where the member's position went back to and why (a resume at the
//!   committed offset within one generation, a reset, a leader whose log ended below what it
//!   had read).
//!
//! A violation whose facts the history does not have keeps its line as it was.

use super::super::index::{HistoryIndex, TxnOutcome};
use super::super::{value_name, CheckConfig};
use crate::history::History;
use crate::violation::{Violation, ViolationKind};
use kafsim_engine::history::{HistoryEvent, ResetCause};
use kafsim_engine::{Instant, NodeId, TopicPartition, ValueId};
use std::collections::{BTreeMap, BTreeSet};

/// A node the nemesis stopped, for the causes above: when and how (`crashed`, `lost power`,
/// `was paused`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeStop {
    pub at: Instant,
    pub node: NodeId,
    pub what: &'static str,
}

/// Kinds whose line this pass completes.
pub(super) fn explained(kind: ViolationKind) -> bool {
    matches!(
        kind,
        ViolationKind::SinkDuplicate | ViolationKind::PollSkip | ViolationKind::NonmonotonicPoll
    )
}

/// A member's read or write of one record.
#[derive(Clone, Copy, Debug)]
struct Touch {
    at: Instant,
    group: u32,
    /// `None` for a committed output record (found by the final read).
    member: Option<u32>,
    partition: TopicPartition,
    offset: u64,
}

/// A member of a group reading a partition: (group, member, partition).
type MemberPartition = (u32, u32, TopicPartition);
/// Per member and partition, a list of facts in history order.
type PerMember<T> = BTreeMap<MemberPartition, Vec<T>>;
/// A group, by the name its coordinator knows, and a partition.
type GroupPartition = (String, TopicPartition);
/// Per partition, a list of facts in history order.
type PerPartition<T> = BTreeMap<TopicPartition, Vec<T>>;

/// The group facts of the partitions some violation is about, in history order.
#[derive(Default)]
struct Facts {
    /// Polls of those partitions and of the duplicated values, by (group, member,
    /// partition).
    polls: PerMember<(Instant, u64, ValueId)>,
    /// Sink writes and output records of the duplicated values.
    writes: BTreeMap<ValueId, Vec<Touch>>,
    /// Resumes at the committed offset: (at, generation, offset), by (group, member, tp).
    resumed: PerMember<(Instant, i32, u64)>,
    /// Assignments: (at, generation), by (group, member).
    assigned: BTreeMap<(u32, u32), Vec<(Instant, i32)>>,
    /// Position resets: (at, offset, cause), by (group, member, tp).
    resets: PerMember<(Instant, u64, ResetCause)>,
    /// Failed commits: (at, offset, error), by (group, member, tp).
    failed_commits: PerMember<(Instant, u64, String)>,
    /// Commits the coordinator stored: (at, member node, offset), by (group name, tp).
    stored: BTreeMap<GroupPartition, Vec<(Instant, NodeId, u64)>>,
    /// Leader changes: (at, broker, epoch, log end), by partition.
    leaders: PerPartition<(Instant, NodeId, u32, u64)>,
    /// Truncations: (at, broker, offset), by partition.
    truncations: PerPartition<(Instant, NodeId, u64)>,
    /// Values acknowledged at an offset of those partitions.
    acked_at: BTreeMap<(TopicPartition, u64), ValueId>,
}

impl Facts {
    fn of(
        history: &History,
        partitions: &BTreeSet<TopicPartition>,
        values: &BTreeSet<ValueId>,
    ) -> Facts {
        let mut f = Facts::default();
        let mine = |tp: &TopicPartition| partitions.contains(tp);
        for e in history.entries() {
            let at = e.at;
            match &e.event {
                HistoryEvent::Poll {
                    group,
                    member,
                    partition,
                    offset,
                    value,
                    ..
                } if mine(partition) || values.contains(value) => {
                    f.polls
                        .entry((*group, *member, *partition))
                        .or_default()
                        .push((at, *offset, *value));
                }
                HistoryEvent::SinkWrite {
                    group,
                    member,
                    partition,
                    offset,
                    value,
                    ..
                } if values.contains(value) => {
                    let touch = Touch {
                        at,
                        group: *group,
                        member: Some(*member),
                        partition: *partition,
                        offset: *offset,
                    };
                    f.writes.entry(*value).or_default().push(touch);
                }
                HistoryEvent::OutputRecord {
                    group,
                    partition,
                    offset,
                    value,
                } if values.contains(value) => {
                    let touch = Touch {
                        at,
                        group: *group,
                        member: None,
                        partition: *partition,
                        offset: *offset,
                    };
                    f.writes.entry(*value).or_default().push(touch);
                }
                HistoryEvent::Resumed {
                    group,
                    member,
                    generation,
                    partition,
                    offset,
                } if mine(partition) => {
                    f.resumed
                        .entry((*group, *member, *partition))
                        .or_default()
                        .push((at, *generation, *offset));
                }
                HistoryEvent::Assigned {
                    group,
                    member,
                    generation,
                    ..
                } => {
                    (f.assigned.entry((*group, *member)).or_default()).push((at, *generation));
                }
                HistoryEvent::PositionReset {
                    group,
                    member,
                    partition,
                    offset,
                    cause,
                } if mine(partition) => {
                    f.resets
                        .entry((*group, *member, *partition))
                        .or_default()
                        .push((at, *offset, *cause));
                }
                HistoryEvent::Commit {
                    group,
                    member,
                    partition,
                    offset,
                    error,
                    ..
                } if mine(partition) && *error != kafsim_engine::protocol::ErrorCode::None => {
                    f.failed_commits
                        .entry((*group, *member, *partition))
                        .or_default()
                        .push((at, *offset, format!("{error:?}")));
                }
                HistoryEvent::OffsetsStored {
                    group,
                    member,
                    partition,
                    offset,
                    ..
                } if mine(partition) => {
                    f.stored
                        .entry((group.to_string(), *partition))
                        .or_default()
                        .push((at, *member, *offset));
                }
                HistoryEvent::BecameLeader {
                    broker,
                    partition,
                    leader_epoch,
                    log_end_offset,
                } if mine(partition) => {
                    f.leaders.entry(*partition).or_default().push((
                        at,
                        *broker,
                        *leader_epoch,
                        *log_end_offset,
                    ));
                }
                HistoryEvent::Truncated {
                    broker,
                    partition,
                    offset,
                    ..
                } if mine(partition) => {
                    f.truncations
                        .entry(*partition)
                        .or_default()
                        .push((at, *broker, *offset));
                }
                HistoryEvent::SendOk {
                    partition,
                    offset,
                    value,
                    ..
                } if mine(partition) => {
                    f.acked_at.entry((*partition, *offset)).or_insert(*value);
                }
                _ => {}
            }
        }
        f
    }

    /// The value known at `offset` of `tp`: acknowledged there, else read there by anyone.
    fn value_at(&self, tp: TopicPartition, offset: u64) -> Option<ValueId> {
        if let Some(v) = self.acked_at.get(&(tp, offset)) {
            return Some(*v);
        }
        (self.polls.iter())
            .filter(|((_, _, p), _)| *p == tp)
            .flat_map(|(_, reads)| reads.iter())
            .find(|(_, o, _)| *o == offset)
            .map(|(_, _, v)| *v)
    }
}

/// Appends its cause to each `sink-duplicate`, `poll-skip` and `nonmonotonic-poll` whose
/// facts the history has.
pub(super) fn explain(
    history: &History,
    index: &HistoryIndex,
    config: &CheckConfig,
    violations: &mut [Violation],
) {
    let partitions: BTreeSet<TopicPartition> = (violations.iter())
        .filter(|v| explained(v.kind) && v.value.is_some())
        .filter_map(|v| v.partition)
        .collect();
    if partitions.is_empty() {
        return;
    }
    let values: BTreeSet<ValueId> = (violations.iter())
        .filter(|v| v.kind == ViolationKind::SinkDuplicate)
        .filter_map(|v| v.value)
        .collect();
    let facts = Facts::of(history, &partitions, &values);
    // A duplicated value's copies, and the inputs of duplicated output records, may sit in
    // partitions no violation names.
    let copies: BTreeSet<TopicPartition> = (facts.writes.values().flatten())
        .map(|t| t.partition)
        .chain(facts.polls.keys().map(|(_, _, tp)| *tp))
        .filter(|tp| !partitions.contains(tp))
        .collect();
    let more = if copies.is_empty() {
        Facts::default()
    } else {
        Facts::of(history, &copies, &BTreeSet::new())
    };
    let cx = Cx {
        index,
        config,
        facts: &facts,
        more: &more,
    };
    for v in violations.iter_mut().filter(|v| explained(v.kind)) {
        let cause = match v.kind {
            ViolationKind::SinkDuplicate => cx.sink_duplicate(v),
            ViolationKind::PollSkip => cx.poll_skip(v),
            _ => cx.nonmonotonic_poll(v),
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
    facts: &'a Facts,
    /// The facts of the partitions only a duplicated value's other copy is in.
    more: &'a Facts,
}

impl Cx<'_> {
    fn member(&self, group: u32, member: u32) -> String {
        self.config.member_name(group, member)
    }

    fn polls(&self, group: u32, member: u32, tp: TopicPartition) -> &[(Instant, u64, ValueId)] {
        let key = (group, member, tp);
        (self
            .facts
            .polls
            .get(&key)
            .or_else(|| self.more.polls.get(&key)))
        .map_or(&[], Vec::as_slice)
    }

    /// Every member's polls of `value` at `tp@offset` in `group`, in time order.
    fn polls_of(
        &self,
        group: u32,
        tp: TopicPartition,
        offset: u64,
        value: ValueId,
    ) -> Vec<(Instant, u32)> {
        let mut found: Vec<(Instant, u32)> =
            (self.facts.polls.iter().chain(self.more.polls.iter()))
                .filter(|((g, _, p), _)| *g == group && *p == tp)
                .flat_map(|((_, m, _), reads)| {
                    reads
                        .iter()
                        .filter(|(_, o, v)| *o == offset && *v == value)
                        .map(move |(at, _, _)| (*at, *m))
                })
                .collect();
        found.sort();
        found
    }

    /// `sink-duplicate`: the read that wrote the value again, and why the member's position
    /// went back to it.
    fn sink_duplicate(&self, v: &Violation) -> Option<String> {
        let value = v.value?;
        let (tp, offset) = (v.partition?, v.offset?);
        let writes = self.facts.writes.get(&value)?;
        let second = writes
            .iter()
            .find(|w| w.at == v.at && w.partition == tp && w.offset == offset)?;
        let first = writes.iter().find(|w| w.group == second.group)?;
        if second.member.is_none() {
            return self.output_twice(second.group, value);
        }
        if (first.partition, first.offset) != (tp, offset) {
            return Some(format!(
                "the log holds {} twice, at {} and at {}, and each copy was read and written \
                 once (see duplicate)",
                value_name(value),
                self.config.names.at(first.partition, first.offset),
                self.config.names.at(tp, offset)
            ));
        }
        let group = second.group;
        // The two reads behind the two writes: the first write's read, and the latest read
        // before the second write by the member that made it.
        let polls = self.polls_of(group, tp, offset, value);
        let (m1, m2) = (first.member?, second.member?);
        let first_read = *polls
            .iter()
            .rev()
            .find(|(at, m)| *m == m1 && *at <= first.at)?;
        let again = polls
            .iter()
            .rev()
            .find(|(at, m)| *m == m2 && *at <= second.at && *at > first_read.0);
        let Some(&again) = again else {
            return Some(format!(
                "{} wrote it again at {} without reading it again (its one read of it at {}): \
                 the application handed one read record to its sink twice",
                self.member(group, m2),
                second.at,
                first_read.0
            ));
        };
        let read = format!(
            "{} read it again at {} (it was first read by {} at {})",
            self.member(group, m2),
            again.0,
            self.member(group, m1),
            first_read.0
        );
        let why = self.went_back(group, m1, m2, tp, offset, first_read.0, again.0);
        Some(match why {
            Some(why) => format!("{read}: {why}"),
            None => read,
        })
    }

    /// A consume-transform-produce group committed two output records of one input: the
    /// two reads of the input, and why the second member's position went back to it.
    fn output_twice(&self, group: u32, value: ValueId) -> Option<String> {
        let mut reads: Vec<(Instant, u32, TopicPartition, u64)> = (self.facts.polls.iter())
            .filter(|((g, _, _), _)| *g == group)
            .flat_map(|((_, m, tp), reads)| {
                (reads.iter())
                    .filter(|(_, _, x)| *x == value)
                    .map(move |(at, o, _)| (*at, *m, *tp, *o))
            })
            .collect();
        reads.sort();
        let first = *reads.first()?;
        let again = *reads.iter().find(|r| r.0 > first.0)?;
        if (first.2, first.3) != (again.2, again.3) {
            return Some(format!(
                "the input log holds {} twice, at {} and at {} (see duplicate)",
                value_name(value),
                self.config.names.at(first.2, first.3),
                self.config.names.at(again.2, again.3)
            ));
        }
        let read = format!(
            "{} read its input {} again at {} (it was first read by {} at {}), and the \
             transactions or flushes of both reads committed their outputs",
            self.member(group, again.1),
            self.config.names.at(again.2, again.3),
            again.0,
            self.member(group, first.1),
            first.0
        );
        let why = self.went_back(group, first.1, again.1, again.2, again.3, first.0, again.0);
        Some(match why {
            Some(why) => format!("{read}: {why}"),
            None => read,
        })
    }

    /// Why member `m2` read `tp@offset` again at `again`, after `m1` read it at `first`.
    #[allow(clippy::too_many_arguments)]
    fn went_back(
        &self,
        group: u32,
        m1: u32,
        m2: u32,
        tp: TopicPartition,
        offset: u64,
        first: Instant,
        again: Instant,
    ) -> Option<String> {
        let key = (group, m2, tp);
        let resumed = (self
            .facts
            .resumed
            .get(&key)
            .or_else(|| self.more.resumed.get(&key)))
        .and_then(|r| {
            r.iter()
                .rev()
                .find(|(at, _, o)| *at > first && *at <= again && *o <= offset)
        });
        let reset = (self
            .facts
            .resets
            .get(&key)
            .or_else(|| self.more.resets.get(&key)))
        .and_then(|r| {
            r.iter()
                .rev()
                .find(|(at, o, _)| *at > first && *at <= again && *o <= offset)
        });
        // The later of the two moved the position last.
        match (resumed, reset) {
            (Some(r), Some(s)) if s.0 > r.0 => Some(self.reset_words(s)),
            (Some((at, generation, committed)), _) => {
                let uncovered = self.uncovered(group, m1, tp, offset, first, *at);
                Some(format!(
                    "it resumed {} in generation {generation} at {at} from the group's committed \
                     offset {committed}, at or before this record, because {uncovered}",
                    self.config.names.tp(tp)
                ))
            }
            (None, Some(s)) => Some(self.reset_words(s)),
            (None, None) => self.zombie(group, m1, m2, first, again),
        }
    }

    /// The generation `member` was last assigned in by `at`.
    fn generation(&self, group: u32, member: u32, at: Instant) -> Option<i32> {
        let assigned = self.facts.assigned.get(&(group, member))?;
        assigned
            .iter()
            .rev()
            .find(|(t, _)| *t <= at)
            .map(|(_, g)| *g)
    }

    /// Two members read the record, the second in an older generation than the first: a
    /// member the group had moved on from still fetched the partition.
    fn zombie(
        &self,
        group: u32,
        m1: u32,
        m2: u32,
        first: Instant,
        again: Instant,
    ) -> Option<String> {
        let g1 = self.generation(group, m1, first)?;
        let g2 = self.generation(group, m2, again)?;
        (m1 != m2 && g2 < g1).then(|| {
            format!(
                "{} read it in generation {g2}, after {} had read it in generation {g1}: {} was \
                 a zombie, still fetching a partition the group had given to another member",
                self.member(group, m2),
                self.member(group, m1),
                self.member(group, m2)
            )
        })
    }

    /// `its position was reset to 0 at 12000.000ms (no committed offset: auto.offset.reset)`.
    fn reset_words(&self, (at, offset, cause): &(Instant, u64, ResetCause)) -> String {
        let why = match cause {
            ResetCause::NoCommittedOffset => {
                "the group had no committed offset, so the reset policy chose it"
            }
            ResetCause::OutOfRange => "its position was out of range, so the reset policy chose it",
            ResetCause::Start => "its configured start",
            ResetCause::Seek => "the application sought there",
        };
        format!("its position was reset to {offset} at {at}, at or before this record ({why})")
    }

    /// Why no commit covering `offset` was stored between the first read (`from`) and the
    /// resume (`until`).
    fn uncovered(
        &self,
        group: u32,
        m1: u32,
        tp: TopicPartition,
        offset: u64,
        from: Instant,
        until: Instant,
    ) -> String {
        let name = self.config.group_name(group);
        let stored = (self
            .facts
            .stored
            .get(&(name.clone(), tp))
            .or_else(|| self.more.stored.get(&(name, tp))))
        .map_or(&[][..], Vec::as_slice);
        let in_window = || {
            stored
                .iter()
                .filter(|(at, _, _)| *at >= from && *at <= until)
        };
        if let Some((at, node, _)) = in_window().rfind(|(_, _, o)| *o > offset) {
            // Covered once, then set back: a later commit below the record won.
            if let Some((back_at, back_node, back)) =
                in_window().rfind(|(t, _, o)| t > at && *o <= offset)
            {
                return format!(
                    "the committed offset went back from above it to {back}: {} committed {back} at \
                     {back_at}, after {}'s commit covering it at {at}",
                    self.config.names.node(*back_node),
                    self.config.names.node(*node)
                );
            }
        }
        let who = self.member(group, m1);
        let failed: Vec<&(Instant, u64, String)> =
            (self.facts.failed_commits.get(&(group, m1, tp)))
                .into_iter()
                .flatten()
                .filter(|(at, o, _)| *at >= from && *at <= until && *o > offset)
                .collect();
        if let Some((last_at, _, error)) = failed.last() {
            return match failed.len() {
                1 => format!("{who}'s one commit that would have covered it failed at {last_at} ({error})"),
                n => format!("{who}'s {n} commits that would have covered it failed, the last at {last_at} ({error})"),
            };
        }
        let node = self.config.names.node_by_name(&who);
        let stop = (self.config.stops.iter())
            .find(|s| Some(s.node) == node && s.at >= from && s.at <= until);
        match stop {
            Some(s) => format!(
                "{who} {} at {} before a commit covering it was stored",
                s.what, s.at
            ),
            None => format!("no commit covering it was stored after {who} read it at {from}"),
        }
    }

    /// `poll-skip`: the offset skipped, what it holds, and what took it from the log read.
    fn poll_skip(&self, v: &Violation) -> Option<String> {
        let (value, tp, offset) = (v.value?, v.partition?, v.offset?);
        let (group, member, before) = self.reader(v, value, tp, offset)?;
        let (prev_at, expect) = self.anchor(group, member, tp, before)?;
        let committed_only = self.config.read_committed(group);
        let skipped = self
            .index
            .first_known_in(tp, expect, offset, committed_only)?;
        let mut held = self.holds(tp, skipped);
        let transactional =
            (self.facts.value_at(tp, skipped)).is_some_and(|x| self.index.txn_of(x).is_some());
        if committed_only && transactional {
            held.push_str(&format!(
                ", and {} reads read_committed: its fetches leave out what the log marks \
                 aborted and stop at what it holds open",
                self.member(group, member)
            ));
        }
        let log = self.log_change(tp, skipped, prev_at, v.at);
        Some(match log {
            Some(log) => format!("offset {skipped} {held}; {log}"),
            None => format!(
                "offset {skipped} {held}, and no leader change or truncation of {} came between \
                 the two reads",
                self.config.names.tp(tp)
            ),
        })
    }

    /// `nonmonotonic-poll`: where the position went back to, and why.
    fn nonmonotonic_poll(&self, v: &Violation) -> Option<String> {
        let (value, tp, offset) = (v.value?, v.partition?, v.offset?);
        let (group, member, before) = self.reader(v, value, tp, offset)?;
        let (prev_at, expect) = self.anchor(group, member, tp, before)?;
        let key = (group, member, tp);
        let resumed = (self.facts.resumed.get(&key)).and_then(|r| {
            r.iter()
                .rev()
                .find(|(at, _, o)| *at > prev_at && *at <= v.at && *o <= offset)
        });
        if let Some((at, generation, committed)) = resumed {
            return Some(format!(
                "it resumed {} at {at} from the group's committed offset {committed} in \
                 generation {generation}, the generation it read {} in, without a rebalance in \
                 between (a restarted member rejoining in place)",
                self.config.names.tp(tp),
                expect.saturating_sub(1)
            ));
        }
        let leader = (self.facts.leaders.get(&tp).into_iter().flatten())
            .find(|(at, _, _, end)| *at > prev_at && *at <= v.at && *end < expect);
        leader.map(|(at, broker, epoch, end)| {
            format!(
                "{} became leader in epoch {epoch} at {at} with log end {end}, below the offset \
                 {} it had read: the log it read had records the new leader's does not",
                self.config.names.node(*broker),
                expect.saturating_sub(1)
            )
        })
    }

    /// The member whose poll is the violation, and how many of its polls of `tp` came before.
    fn reader(
        &self,
        v: &Violation,
        value: ValueId,
        tp: TopicPartition,
        offset: u64,
    ) -> Option<(u32, u32, usize)> {
        self.facts
            .polls
            .iter()
            .filter(|((_, _, p), _)| *p == tp)
            .find_map(|((g, m, _), reads)| {
                let i = reads
                    .iter()
                    .position(|(at, o, x)| *at == v.at && *o == offset && *x == value)?;
                Some((*g, *m, i))
            })
    }

    /// When the member's previous read of `tp` (before its `before`-th) was, and the offset
    /// its next read had to start at (after that read, or a later reset).
    fn anchor(
        &self,
        group: u32,
        member: u32,
        tp: TopicPartition,
        before: usize,
    ) -> Option<(Instant, u64)> {
        let (prev_at, prev, _) = *self.polls(group, member, tp).get(before.checked_sub(1)?)?;
        let reset = (self
            .facts
            .resets
            .get(&(group, member, tp))
            .into_iter()
            .flatten())
        .rfind(|(at, _, _)| *at >= prev_at);
        Some(match reset {
            Some((at, o, _)) => (*at, *o),
            None => (prev_at, prev + 1),
        })
    }

    /// `holds v12 (acknowledged to producer-0 at 3000.000ms, in transaction 4 of producer-0,
    /// which it committed at 3100.000ms)`.
    fn holds(&self, tp: TopicPartition, offset: u64) -> String {
        let Some(value) = self.facts.value_at(tp, offset) else {
            return "is known to hold a value".to_string();
        };
        let mut out = format!("holds {}", value_name(value));
        if let Some(ack) = self.index.ack(value) {
            out.push_str(&format!(
                " (acknowledged to {} at {}",
                self.config.names.producer(ack.producer),
                ack.at
            ));
            if let Some(txn) = self.index.txn_of(value) {
                let producer = self.config.names.producer(txn.0);
                let fate = match self.index.txn_outcome(txn) {
                    TxnOutcome::Committed(at) => format!("which it committed at {at}"),
                    TxnOutcome::Aborted(at) => format!("which it aborted at {at}"),
                    TxnOutcome::Unknown(at) => format!("whose outcome it could not learn at {at}"),
                    TxnOutcome::Open => "which it never ended".to_string(),
                };
                out.push_str(&format!(", in transaction {} of {producer}, {fate}", txn.1));
            }
            out.push(')');
        }
        out
    }

    /// The leader change or truncation between two reads (`from`, `to`] that took `offset`
    /// out of the log.
    fn log_change(
        &self,
        tp: TopicPartition,
        offset: u64,
        from: Instant,
        to: Instant,
    ) -> Option<String> {
        let leader = (self.facts.leaders.get(&tp).into_iter().flatten())
            .find(|(at, _, _, end)| *at > from && *at <= to && *end <= offset);
        if let Some((at, broker, epoch, end)) = leader {
            return Some(format!(
                "{} became leader in epoch {epoch} at {at} with log end {end}, without it: the \
                 offset was handed out again, and the log read no longer held it",
                self.config.names.node(*broker)
            ));
        }
        let cut = (self.facts.truncations.get(&tp).into_iter().flatten())
            .find(|(at, _, o)| *at > from && *at <= to && *o <= offset);
        cut.map(|(at, broker, o)| {
            format!(
                "{} truncated its log of {} to {o} at {at}: the log read no longer held it",
                self.config.names.node(*broker),
                self.config.names.tp(tp)
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::NodeStop;
    use crate::checker::check_history;
    use crate::checker::test_support::*;
    use crate::checker::CheckConfig;
    use crate::violation::Violation;
    use crate::violation::ViolationKind::{self, *};
    use kafsim_engine::history::HistoryEvent;
    use kafsim_engine::protocol::ErrorCode;
    use kafsim_engine::{Instant, NodeId};

    fn found(s: &Story, config: &CheckConfig, kind: ViolationKind) -> Vec<Violation> {
        (check_history(s.history(), config).into_iter())
            .filter(|v| v.kind == kind)
            .collect()
    }

    /// g0/0 read v1 at offset 5 and wrote it to the sink; then, in generation 2, it resumed
    /// from the committed offset 5 and wrote it again.
    fn written_twice(commit_failed: bool) -> Story {
        let mut s = Story::new();
        s.send(1, 0, 1, 0, 5);
        s.assign(2, 0, 0, &[0])
            .poll(10, 0, 0, 0, 5, 1)
            .sink(11, 0, 0, 5, 1);
        if commit_failed {
            s.event(
                12,
                HistoryEvent::Commit {
                    group: 0,
                    member: 0,
                    generation: 1,
                    partition: tp(0),
                    offset: 6,
                    error: ErrorCode::RebalanceInProgress,
                },
            );
        }
        s.assign_gen(20, 0, 0, 2, &[0]);
        s.event(
            21,
            HistoryEvent::Resumed {
                group: 0,
                member: 0,
                generation: 2,
                partition: tp(0),
                offset: 5,
            },
        );
        s.poll(22, 0, 0, 0, 5, 1).sink(23, 0, 0, 5, 1);
        s
    }

    /// The second write's cause: who read it again, when, from which committed offset, and
    /// why no commit covered it: the commit that would have failed, or the member crashed.
    #[test]
    fn a_sink_duplicate_names_the_resume_and_the_commit_that_never_covered_it() {
        let config = config(vec![group(0, false, true)]);
        let v = found(&written_twice(true), &config, SinkDuplicate);
        assert_eq!(v.len(), 1, "{v:#?}");
        assert_eq!(
            v[0].detail,
            "g0 wrote v1 to its sink twice: g0/0 from topic-0/0@5 at 11.000ms, g0/0 from \
             topic-0/0@5: g0/0 read it again at 22.000ms (it was first read by g0/0 at \
             10.000ms): it resumed topic-0/0 in generation 2 at 21.000ms from the group's \
             committed offset 5, at or before this record, because g0/0's one commit that \
             would have covered it failed at 12.000ms (RebalanceInProgress)"
        );
        let mut config = config.clone();
        config.names.set_node(NodeId(7), "g0/0");
        config.stops = vec![NodeStop {
            at: Instant::from_millis(15),
            node: NodeId(7),
            what: "crashed",
        }];
        let v = found(&written_twice(false), &config, SinkDuplicate);
        assert!(
            v[0].detail.ends_with(
                "because g0/0 crashed at 15.000ms before a commit covering it was stored"
            ),
            "{}",
            v[0].detail
        );
    }

    /// The other way: a sink written twice with no read in the history (hand-built) keeps
    /// its line; a second write from one read names the read and nothing it cannot know.
    #[test]
    fn no_cause_without_the_reads() {
        let mut s = Story::new();
        s.send(1, 0, 1, 0, 5)
            .sink(11, 0, 0, 5, 1)
            .sink(23, 0, 0, 5, 1);
        let config = config(vec![group(0, false, true)]);
        let v = found(&s, &config, SinkDuplicate);
        assert_eq!(
            v[0].detail,
            "g0 wrote v1 to its sink twice: g0/0 from topic-0/0@5 at 11.000ms, g0/0 from \
             topic-0/0@5"
        );
        let mut s = Story::new();
        s.send(1, 0, 1, 0, 5).assign(2, 0, 0, &[0]);
        s.poll(10, 0, 0, 0, 5, 1).sink(11, 0, 0, 5, 1);
        s.poll(22, 0, 0, 0, 5, 1).sink(23, 0, 0, 5, 1);
        let v = found(&s, &config, SinkDuplicate);
        assert!(
            v[0].detail.ends_with(
                "topic-0/0@5: g0/0 read it again at 22.000ms (it was first read by g0/0 at \
                 10.000ms)"
            ),
            "{}",
            v[0].detail
        );
    }

    /// A member of a generation the group had left behind read what the partition's new
    /// owner had read: the cause calls it a zombie. A second write with no second read says
    /// so.
    #[test]
    fn a_sink_duplicate_of_a_zombie_or_of_one_read() {
        let config = config(vec![group(0, false, true)]);
        let mut s = Story::new();
        s.send(1, 0, 1, 0, 5);
        s.assign(2, 0, 1, &[0]).assign_gen(3, 0, 0, 2, &[0]);
        s.poll(10, 0, 0, 0, 5, 1).sink(11, 0, 0, 5, 1);
        s.poll(20, 0, 1, 0, 5, 1);
        s.event(
            21,
            HistoryEvent::SinkWrite {
                group: 0,
                member: 1,
                partition: tp(0),
                offset: 5,
                value: v(1),
                key: None,
            },
        );
        let dup = found(&s, &config, SinkDuplicate);
        assert!(
            dup[0].detail.ends_with(
                "g0/1 read it again at 20.000ms (it was first read by g0/0 at 10.000ms): g0/1 \
                 read it in generation 1, after g0/0 had read it in generation 2: g0/1 was a \
                 zombie, still fetching a partition the group had given to another member"
            ),
            "{}",
            dup[0].detail
        );
        let mut s = Story::new();
        s.send(1, 0, 1, 0, 5).assign(2, 0, 0, &[0]);
        s.poll(10, 0, 0, 0, 5, 1)
            .sink(11, 0, 0, 5, 1)
            .sink(30, 0, 0, 5, 1);
        let dup = found(&s, &config, SinkDuplicate);
        assert!(
            dup[0].detail.ends_with(
                "g0/0 wrote it again at 30.000ms without reading it again (its one read of it \
                 at 10.000ms): the application handed one read record to its sink twice"
            ),
            "{}",
            dup[0].detail
        );
    }

    /// A skip over offset 1 after a leader without it took over names the offset, what it
    /// held and the leader change; without the leader change it says there was none.
    #[test]
    fn a_poll_skip_names_the_offset_and_the_leader_without_it() {
        let story = |leader_change: bool| {
            let mut s = Story::new();
            for i in 0..3 {
                s.send(1, 0, i + 1, 0, i);
            }
            s.assign(2, 0, 0, &[0]).poll(3, 0, 0, 0, 0, 1);
            if leader_change {
                s.event(
                    4,
                    HistoryEvent::BecameLeader {
                        broker: NodeId(2),
                        partition: tp(0),
                        leader_epoch: 1,
                        log_end_offset: 1,
                    },
                );
            }
            s.poll(5, 0, 0, 0, 2, 3);
            s
        };
        let config = config(vec![group(0, false, false)]);
        let v = found(&story(true), &config, PollSkip);
        assert_eq!(v.len(), 1, "{v:#?}");
        assert!(
            v[0].detail.ends_with(
                "read topic-0/0@0 (v1) at 3.000ms then topic-0/0@2 (v3): offset 1 holds v2 \
                 (acknowledged to producer-0 at 1.000ms); node-2 became leader in epoch 1 at \
                 4.000ms with log end 1, without it: the offset was handed out again, and the \
                 log read no longer held it"
            ),
            "{}",
            v[0].detail
        );
        let v = found(&story(false), &config, PollSkip);
        assert!(
            v[0].detail.ends_with(
                "offset 1 holds v2 (acknowledged to producer-0 at 1.000ms), and no leader \
                 change or truncation of topic-0/0 came between the two reads"
            ),
            "{}",
            v[0].detail
        );
    }

    /// A member that resumed from the committed offset within its generation (no rebalance
    /// in between) went backwards: the cause says where it resumed; a backwards read with no
    /// such fact keeps its line.
    #[test]
    fn a_nonmonotonic_poll_names_the_resume_within_the_generation() {
        let story = |resumed: bool| {
            let mut s = Story::new();
            for i in 0..3 {
                s.send(1, 0, i + 1, 0, i);
            }
            s.assign(2, 0, 0, &[0])
                .poll(3, 0, 0, 0, 1, 2)
                .poll(4, 0, 0, 0, 2, 3);
            if resumed {
                s.event(
                    5,
                    HistoryEvent::Resumed {
                        group: 0,
                        member: 0,
                        generation: 1,
                        partition: tp(0),
                        offset: 0,
                    },
                );
            }
            s.poll(6, 0, 0, 0, 0, 1);
            s
        };
        let config = config(vec![group(0, false, false)]);
        let v = found(&story(true), &config, NonmonotonicPoll);
        assert_eq!(v.len(), 1, "{v:#?}");
        assert!(
            v[0].detail.ends_with(
                ": it resumed topic-0/0 at 5.000ms from the group's committed offset 0 in \
                 generation 1, the generation it read 2 in, without a rebalance in between (a \
                 restarted member rejoining in place)"
            ),
            "{}",
            v[0].detail
        );
        let v = found(&story(false), &config, NonmonotonicPoll);
        assert!(
            v[0].detail.ends_with("then topic-0/0@0 (v1)"),
            "{}",
            v[0].detail
        );
    }
}
