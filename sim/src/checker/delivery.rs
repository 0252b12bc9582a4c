//! Delivery: is every value where its evidence says, exactly once, and did every consumer
//! group get every acknowledged value?
//!
//! - `inconsistent-offsets`: one (partition, offset) evidenced with two different values.
//! - `duplicate`: one value evidenced at two different positions of one topic. A value also
//!   appears in other topics when the application copies it there: a consume-transform-produce
//!   group's output carries its input's value id (`produce_to`), as does a dead-letter record.
//!   A downstream group reading that topic sees a copy, not a second write, so positions are
//!   compared only within a topic (the output topic's own duplicates are still duplicates).
//! - `lost-write`: an acknowledged value a group never read although the group read a higher
//!   offset of its partition (Jepsen's definition, per group: a consumer reading in order that
//!   got past the value must have seen it).
//! - `unseen`: an acknowledged value a group consuming its topic never read by the end of the
//!   run. Reported only when the value is not already a `lost-write` for that group; the
//!   runner decides whether to count it (only meaningful after a complete drain).
//!
//! Evidence of "value v is at (partition, offset)" is every `SendOk` and every `Poll`. A value
//! whose send ended in `SendInfo` or `SendFail` without any `SendOk` is never owed, nor is a
//! value of an aborted or unfinished transaction (see [`HistoryIndex::acknowledged`]). A group
//! whose position was reset (`PositionReset`) past a value's offset skipped it knowingly: that
//! is reported as `unseen`, not `lost-write`.

use super::dense::{RecentMap, ValueTable};
use super::index::HistoryIndex;
use super::index::{FastMap as HashMap, FastSet as HashSet};
use super::OFFSET_UNKNOWN;
use super::{value_name, CheckConfig, Collector, GroupCheck};
use crate::history::History;
use crate::violation::{Violation, ViolationKind};
use kafsim_engine::history::HistoryEvent;
use kafsim_engine::{Instant, TopicId, TopicPartition, ValueId};

/// Who evidenced a position, for details.
#[derive(Clone, Copy, Debug)]
enum Source {
    Ack { producer: u32 },
    Read { group: u32, member: u32 },
}

impl Source {
    fn describe(self, config: &CheckConfig) -> String {
        match self {
            Source::Ack { producer } => format!("acked to {}", config.names.producer(producer)),
            Source::Read { group, member } => {
                format!("read by {}", config.member_name(group, member))
            }
        }
    }
}

/// A read that raised a group's highest read offset of a partition.
#[derive(Clone, Copy, Debug)]
struct ReadMark {
    at: Instant,
    offset: u64,
    member: u32,
    value: ValueId,
}

/// What the history says of one value: where it was first evidenced, and which groups read it.
#[derive(Clone, Copy, Debug)]
struct Seen {
    /// The first position evidenced for the value.
    first: (TopicPartition, u64, Source),
    /// One bit per group (the first 64) that polled it.
    read: u64,
}

/// One piece of evidence: `value` at `(partition, offset)`, as `source` recorded at `at`.
#[derive(Clone, Copy, Debug)]
struct Evidence {
    at: Instant,
    partition: TopicPartition,
    offset: u64,
    value: ValueId,
    source: Source,
}

impl Evidence {
    fn new(
        at: Instant,
        partition: TopicPartition,
        offset: u64,
        value: ValueId,
        source: Source,
    ) -> Evidence {
        Evidence {
            at,
            partition,
            offset,
            value,
            source,
        }
    }
}

/// What one pass over the history learns.
#[derive(Default)]
struct Pass {
    /// Per value, its first position and its readers: one table, one lookup per evidence.
    seen: ValueTable<Seen>,
    /// The first position of a value in a topic other than that of its first position
    /// (copies: consume-transform-produce outputs, dead letters), by (topic, value).
    copies: HashMap<(TopicId, ValueId), (TopicPartition, u64, Source)>,
    /// Further distinct positions of a value (duplicates: rare, so kept apart).
    more_positions: HashMap<ValueId, Vec<(TopicPartition, u64)>>,
    /// The first value evidenced at each position: per partition, by offset (each allocated
    /// once for the partition's known offsets, [`HistoryIndex::offset_bound`]).
    occupant: RecentMap<TopicPartition, Vec<Option<(ValueId, Source)>>>,
    /// ... for offsets far beyond the dense range (crafted histories only).
    occupant_sparse: HashMap<(TopicPartition, u64), (ValueId, Source)>,
    /// (position, value) pairs already reported as inconsistent.
    inconsistent: HashSet<(TopicPartition, u64, ValueId)>,
    /// (group, value) for groups beyond the first 64.
    read_more: HashSet<(u32, ValueId)>,
    /// Per (group, partition): reads that raised the highest read offset, in time order.
    marks: RecentMap<(u32, TopicPartition), Vec<ReadMark>>,
    /// Per (group, partition): the highest offset a position reset jumped to.
    resets: HashMap<(u32, TopicPartition), u64>,
}

pub fn check(history: &History, index: &HistoryIndex, config: &CheckConfig, out: &mut Collector) {
    let mut pass = Pass {
        seen: index.value_table(),
        ..Pass::default()
    };
    for entry in history.entries() {
        match entry.event {
            HistoryEvent::SendOk {
                producer,
                value,
                partition,
                offset,
                ..
            } => {
                // acks=0 acknowledges without an offset: no evidence of a position.
                if offset == OFFSET_UNKNOWN {
                    continue;
                }
                let source = Source::Ack { producer };
                let evidence = Evidence::new(entry.at, partition, offset, value, source);
                pass.evidence(evidence, None, index, config, out);
            }
            HistoryEvent::Poll {
                group,
                member,
                partition,
                offset,
                value,
                ..
            } => {
                let source = Source::Read { group, member };
                let evidence = Evidence::new(entry.at, partition, offset, value, source);
                pass.evidence(evidence, Some(group), index, config, out);
                pass.read(entry.at, group, member, partition, offset, value, index);
            }
            HistoryEvent::PositionReset {
                group,
                partition,
                offset,
                ..
            } => {
                let reset = pass.resets.entry((group, partition)).or_insert(offset);
                *reset = (*reset).max(offset);
            }
            _ => {}
        }
    }
    for value in index.acknowledged_values() {
        for group in &config.groups {
            pass.check_owed(*value, group, index, config, out);
        }
    }
}

impl Pass {
    /// Notes one piece of evidence (of a read by `reader`, if it is one), reporting what it
    /// contradicts.
    fn evidence(
        &mut self,
        evidence: Evidence,
        reader: Option<u32>,
        index: &HistoryIndex,
        config: &CheckConfig,
        out: &mut Collector,
    ) {
        let Evidence {
            at,
            partition,
            offset,
            value,
            source,
        } = evidence;
        let (first_value, first_source) = self.occupant(partition, offset, (value, source), index);
        if first_value != value && self.inconsistent.insert((partition, offset, value)) {
            out.push(
                Violation::new(
                    ViolationKind::InconsistentOffsets,
                    at,
                    format!(
                        "{} holds {} ({}) and {} ({})",
                        config.names.at(partition, offset),
                        value_name(first_value),
                        first_source.describe(config),
                        value_name(value),
                        source.describe(config),
                    ),
                )
                .at_partition(partition)
                .at_offset(offset)
                .of_value(value)
                .with_other(first_value),
            );
        }
        let seen = self.seen.get_or_insert_with(value, || Seen {
            first: (partition, offset, source),
            read: 0,
        });
        if let Some(group) = reader.filter(|g| *g < 64) {
            seen.read |= 1 << group;
        }
        let mut first = seen.first;
        if first.0.topic != partition.topic {
            first = *self
                .copies
                .entry((partition.topic, value))
                .or_insert((partition, offset, source));
        }
        let (first_partition, first_offset, first_source) = first;
        if (first_partition, first_offset) == (partition, offset) {
            return;
        }
        let more = self.more_positions.entry(value).or_default();
        if more.contains(&(partition, offset)) {
            return;
        }
        more.push((partition, offset));
        out.push(
            Violation::new(
                ViolationKind::Duplicate,
                at,
                format!(
                    "{} at {} ({}) and at {} ({})",
                    value_name(value),
                    config.names.at(first_partition, first_offset),
                    first_source.describe(config),
                    config.names.at(partition, offset),
                    source.describe(config),
                ),
            )
            .at_partition(partition)
            .at_offset(offset)
            .of_value(value),
        );
    }

    /// Notes a read's marks (its group's bit is set with its evidence).
    #[allow(clippy::too_many_arguments)]
    fn read(
        &mut self,
        at: Instant,
        group: u32,
        member: u32,
        partition: TopicPartition,
        offset: u64,
        value: ValueId,
        index: &HistoryIndex,
    ) {
        if group >= 64 {
            self.read_more.insert((group, value));
        }
        // Marks raise the offset: at most one per known offset of the partition.
        let marks = self.marks.get_or_insert_with((group, partition), || {
            Vec::with_capacity(index.offset_bound(partition))
        });
        if marks.last().is_none_or(|m| m.offset < offset) {
            marks.push(ReadMark {
                at,
                offset,
                member,
                value,
            });
        }
    }

    /// The first value evidenced at `(partition, offset)`, `first` if none was.
    fn occupant(
        &mut self,
        partition: TopicPartition,
        offset: u64,
        first: (ValueId, Source),
        index: &HistoryIndex,
    ) -> (ValueId, Source) {
        let slots = self.occupant.get_or_insert_with(partition, || {
            Vec::with_capacity(index.offset_bound(partition))
        });
        let dense = offset < (1 << 32)
            && (offset as usize) <= slots.len().saturating_mul(2).max(slots.len() + 65_536);
        if dense
            && (self.occupant_sparse.is_empty()
                || !self.occupant_sparse.contains_key(&(partition, offset)))
        {
            let i = offset as usize;
            if i >= slots.len() {
                slots.resize(i + 1, None);
            }
            *slots[i].get_or_insert(first)
        } else {
            *self
                .occupant_sparse
                .entry((partition, offset))
                .or_insert(first)
        }
    }

    fn has_read(&self, group: u32, value: ValueId) -> bool {
        if group < 64 {
            self.seen
                .get(value)
                .is_some_and(|seen| seen.read & (1 << group) != 0)
        } else {
            self.read_more.contains(&(group, value))
        }
    }

    /// The highest offset of `partition` evidenced for `value`, at least `acked`.
    fn last_known_offset(&self, value: ValueId, partition: TopicPartition, acked: u64) -> u64 {
        let first = self
            .seen
            .get(value)
            .map(|seen| (seen.first.0, seen.first.1));
        let more = self
            .more_positions
            .get(&value)
            .into_iter()
            .flatten()
            .copied();
        first
            .into_iter()
            .chain(more)
            .filter(|(p, _)| *p == partition)
            .map(|(_, o)| o)
            .fold(acked, u64::max)
    }

    /// Reports `value` as `lost-write` or `unseen` for `group` if the group owed it was missed.
    fn check_owed(
        &self,
        value: ValueId,
        group: &GroupCheck,
        index: &HistoryIndex,
        config: &CheckConfig,
        out: &mut Collector,
    ) {
        let consumes = index.ack(value).is_some_and(|a| group.owes(a.partition));
        if !consumes || self.has_read(group.group, value) {
            return;
        }
        let ack = index.ack(value).expect("acknowledged value has an ack");
        // Jepsen takes a value's last known index: a consumer past all of them missed it.
        let offset = self.last_known_offset(value, ack.partition, ack.offset);
        let skipped_by_reset = !self.resets.is_empty()
            && self
                .resets
                .get(&(group.group, ack.partition))
                .is_some_and(|reset| *reset > offset);
        let past = self
            .marks
            .get(&(group.group, ack.partition))
            // Marks raise the highest offset read, so their offsets increase: binary search.
            .and_then(|marks| marks.get(marks.partition_point(|m| m.offset <= offset)));
        let what = format!(
            "acknowledged {} at {} ({}) never read by {}",
            value_name(value),
            config.names.at(ack.partition, offset),
            config.names.producer(ack.producer),
            config.group_name(group.group)
        );
        let violation = match past {
            Some(mark) if !skipped_by_reset => Violation::new(
                ViolationKind::LostWrite,
                mark.at.max(ack.at),
                format!(
                    "{what}, though {} read {} ({}) at {}",
                    config.member_name(group.group, mark.member),
                    config.names.at(ack.partition, mark.offset),
                    value_name(mark.value),
                    mark.at
                ),
            ),
            _ => Violation::new(
                ViolationKind::Unseen,
                config.end,
                format!("{what} by the end"),
            ),
        };
        out.push(
            violation
                .at_partition(ack.partition)
                .at_offset(offset)
                .of_value(value),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::check;
    use crate::checker::test_support::*;
    use crate::violation::ViolationKind::*;
    use kafsim_engine::history::HistoryEvent;
    use kafsim_engine::{TopicId, TopicPartition};

    #[test]
    fn acks0_acknowledgements_carry_no_position_but_are_owed() {
        // Two acks=0 sends share the "unknown" offset: that is no inconsistency, and a read
        // of one at a real offset is no duplicate. The unread one is still owed.
        let mut s = Story::new();
        use crate::checker::OFFSET_UNKNOWN;
        s.send(1, 0, 1, 0, OFFSET_UNKNOWN)
            .send(2, 0, 2, 0, OFFSET_UNKNOWN);
        s.poll(3, 0, 0, 0, 0, 1);
        let found = run(check, &s, &config(vec![group(0, false, false)]));
        assert_eq!(kinds(&found), vec![Unseen], "{found:?}");
        assert_eq!(found[0].value, Some(v(2)));
        // Both read: nothing at all.
        s.poll(4, 0, 0, 0, 1, 2);
        assert!(run(check, &s, &config(vec![group(0, false, false)])).is_empty());
    }

    #[test]
    fn one_offset_with_two_values_is_inconsistent() {
        let mut s = Story::new();
        s.send(1, 0, 1, 0, 0).invoke(2, 0, 2, None).info(3, 0, 2);
        s.poll(4, 0, 0, 0, 0, 2);
        let found = run(check, &s, &config(vec![]));
        assert_eq!(kinds(&found), vec![InconsistentOffsets]);
        assert_eq!(found[0].value, Some(v(2)));
        assert_eq!(found[0].offset, Some(0));
        assert!(found[0].detail.contains("v1") && found[0].detail.contains("v2"));
    }

    #[test]
    fn reads_agreeing_with_acks_are_clean() {
        let mut s = Story::new();
        s.send(1, 0, 1, 0, 0)
            .send(2, 0, 2, 0, 1)
            .send(2, 1, 3, 1, 0);
        s.poll(3, 0, 0, 0, 0, 1)
            .poll(3, 0, 0, 0, 1, 2)
            .poll(4, 0, 1, 1, 0, 3);
        s.poll(5, 1, 0, 0, 0, 1)
            .poll(5, 1, 0, 0, 1, 2)
            .poll(6, 1, 0, 1, 0, 3);
        let found = run(
            check,
            &s,
            &config(vec![group(0, false, false), group(1, true, false)]),
        );
        assert_eq!(found, vec![]);
    }

    #[test]
    fn one_value_at_two_offsets_is_a_duplicate() {
        let mut s = Story::new();
        s.send(1, 0, 1, 0, 0);
        s.poll(2, 0, 0, 0, 0, 1).poll(3, 0, 0, 0, 1, 1);
        let found = run(check, &s, &config(vec![group(0, false, false)]));
        assert_eq!(kinds(&found), vec![Duplicate]);
        assert_eq!((found[0].offset, found[0].value), (Some(1), Some(v(1))));
        assert_eq!(found[0].at.as_millis(), 3);
    }

    #[test]
    fn a_copy_of_a_value_in_another_topic_is_not_a_duplicate() {
        // A consume-transform-produce output carries its input's value id: a group reading
        // the output topic finds the value in a second topic, which is a copy, not a
        // second write. Twice in the output topic is still a duplicate.
        let out = |s: &mut Story, at: u64, off: u64| {
            s.event(
                at,
                HistoryEvent::Poll {
                    group: 1,
                    member: 0,
                    partition: TopicPartition::new(OUT, 0),
                    offset: off,
                    value: v(1),
                    key: None,
                },
            );
        };
        let mut s = Story::new();
        s.send(1, 0, 1, 0, 0).poll(2, 0, 0, 0, 0, 1);
        out(&mut s, 3, 0);
        let groups = || {
            let mut downstream = group(1, false, false);
            downstream.topics = vec![OUT];
            vec![group(0, false, false), downstream]
        };
        assert_eq!(run(check, &s, &config(groups())), vec![]);
        out(&mut s, 4, 1);
        let found = run(check, &s, &config(groups()));
        assert_eq!(kinds(&found), vec![Duplicate]);
        assert_eq!(found[0].partition, Some(TopicPartition::new(OUT, 0)));
        assert_eq!((found[0].offset, found[0].at.as_millis()), (Some(1), 4));
    }

    #[test]
    fn value_read_past_is_lost_write_not_unseen() {
        let mut s = Story::new();
        s.send(1, 0, 1, 0, 0)
            .send(2, 0, 2, 0, 1)
            .send(3, 0, 3, 0, 2);
        s.poll(4, 0, 0, 0, 0, 1).poll(5, 0, 0, 0, 2, 3);
        let found = run(check, &s, &config(vec![group(0, false, false)]));
        assert_eq!(kinds(&found), vec![LostWrite]);
        assert_eq!((found[0].offset, found[0].value), (Some(1), Some(v(2))));
        assert_eq!(
            found[0].at.as_millis(),
            5,
            "evident at the read of offset 2"
        );
        assert!(found[0].detail.contains("g0"), "{}", found[0].detail);
    }

    #[test]
    fn value_never_read_nor_passed_is_unseen_at_the_end() {
        let mut s = Story::new();
        s.send(1, 0, 1, 0, 0).send(2, 0, 2, 0, 1);
        s.poll(4, 0, 0, 0, 0, 1);
        let cfg = config(vec![group(0, false, false)]);
        let found = run(check, &s, &cfg);
        assert_eq!(kinds(&found), vec![Unseen]);
        assert_eq!((found[0].value, found[0].at), (Some(v(2)), cfg.end));
    }

    #[test]
    fn unknown_and_failed_sends_are_never_owed() {
        let mut s = Story::new();
        s.send(1, 0, 1, 0, 0);
        s.invoke(2, 0, 2, None).info(3, 0, 2);
        s.invoke(3, 0, 4, None).fail(3, 0, 4);
        s.send(4, 0, 3, 0, 2);
        s.poll(5, 0, 0, 0, 0, 1).poll(6, 0, 0, 0, 2, 3);
        let found = run(check, &s, &config(vec![group(0, false, false)]));
        assert_eq!(found, vec![]);
    }

    #[test]
    fn acknowledged_then_info_is_still_owed() {
        let mut s = Story::new();
        s.send(1, 0, 1, 0, 0)
            .send(2, 0, 2, 0, 1)
            .info(3, 0, 2)
            .send(4, 0, 3, 0, 2);
        s.poll(5, 0, 0, 0, 0, 1).poll(6, 0, 0, 0, 2, 3);
        let found = run(check, &s, &config(vec![group(0, false, false)]));
        assert_eq!(kinds(&found), vec![LostWrite]);
        assert_eq!(found[0].value, Some(v(2)));
    }

    #[test]
    fn aborted_and_open_transactions_are_not_owed_but_committed_are() {
        let mut s = Story::new();
        s.txn_value(1, 0, 7, 1)
            .send(1, 0, 1, 0, 0)
            .txn_abort(2, 0, 7);
        s.txn_value(3, 0, 8, 2).send(3, 0, 2, 0, 2);
        s.txn_value(4, 1, 9, 3)
            .send(4, 1, 3, 1, 0)
            .txn_commit(5, 1, 9);
        let found = run(check, &s, &config(vec![group(0, true, false)]));
        assert_eq!(kinds(&found), vec![Unseen]);
        assert_eq!(found[0].value, Some(v(3)));
    }

    #[test]
    fn groups_of_other_topics_are_not_owed() {
        let mut s = Story::new();
        s.send(1, 0, 1, 0, 0);
        let mut other = group(0, false, false);
        other.topics = vec![TopicId(1)];
        assert_eq!(run(check, &s, &config(vec![other])), vec![]);
        assert_eq!(
            kinds(&run(check, &s, &config(vec![group(0, false, false)]))),
            vec![Unseen]
        );
    }

    #[test]
    fn a_reset_past_the_value_makes_it_unseen_not_lost() {
        let mut s = Story::new();
        s.send(1, 0, 1, 0, 0)
            .send(2, 0, 2, 0, 1)
            .send(3, 0, 3, 0, 2);
        s.reset(4, 0, 0, 0, 2).poll(5, 0, 0, 0, 2, 3);
        let found = run(check, &s, &config(vec![group(0, false, false)]));
        assert_eq!(kinds(&found), vec![Unseen, Unseen]);
    }

    /// Producer 0's transaction 7 writes v1 at p0@0, v2 at p0@1 and v3 at p1@0; its commit's
    /// outcome is unknown. v4 (plain) lands at p0@2.
    fn unknown_transaction() -> Story {
        transaction_ending(|s| {
            s.txn_unknown(2, 0, 7);
        })
    }

    fn transaction_ending(end: impl FnOnce(&mut Story)) -> Story {
        let mut s = Story::new();
        s.txn_value(1, 0, 7, 1).send(1, 0, 1, 0, 0);
        s.txn_value(1, 0, 7, 2).send(1, 0, 2, 0, 1);
        s.txn_value(1, 0, 7, 3).send(1, 0, 3, 1, 0);
        end(&mut s);
        s.send(3, 1, 4, 0, 2);
        s
    }

    #[test]
    fn a_read_committed_read_proves_the_transaction_committed() {
        // Jepsen's must-have-committed?: reading v1 proves transaction 7 committed, so v2
        // (below the read of p0@2) is lost and v3 (never read) unseen.
        let mut s = unknown_transaction();
        s.poll(4, 0, 0, 0, 0, 1).poll(5, 0, 0, 0, 2, 4);
        let found = run(check, &s, &config(vec![group(0, true, false)]));
        assert_eq!(kinds(&found), vec![LostWrite, Unseen]);
        assert_eq!((found[0].value, found[1].value), (Some(v(2)), Some(v(3))));
    }

    #[test]
    fn a_read_uncommitted_read_proves_nothing() {
        let mut s = unknown_transaction();
        s.poll(4, 0, 0, 0, 0, 1).poll(5, 0, 0, 0, 2, 4);
        assert_eq!(
            run(check, &s, &config(vec![group(0, false, false)])),
            vec![],
            "an unknown transaction's values are not owed without proof"
        );
    }

    #[test]
    fn read_committed_seeing_part_of_a_committed_transaction_is_lost_write() {
        let mut s = transaction_ending(|s| {
            s.txn_commit(2, 0, 7);
        });
        s.poll(4, 0, 0, 0, 0, 1)
            .poll(5, 0, 0, 0, 2, 4)
            .poll(5, 0, 0, 1, 0, 3);
        let found = run(check, &s, &config(vec![group(0, true, false)]));
        assert_eq!(kinds(&found), vec![LostWrite]);
        assert_eq!(found[0].value, Some(v(2)));
    }
}
