//! The service's sink: every acknowledged value of a topic a sink group consumes must reach
//! its sink (`SinkWrite`) or its dead-letter topic (`DeadLetter`) — else `sink-loss`, at the
//! end of the run — and reach the sink once — else `sink-duplicate`, at the repeated write.
//!
//! The sink is the group's database node (`crate::database`), shared by its members; a
//! `SinkWrite` is a row it committed, recorded at the commit. A write it refused
//! (`SinkRefused`: a unique constraint or the offsets-in-sink guard) stored nothing and
//! counts neither way.
//!
//! A consume-transform-produce group's sink is its output topic (handler `produce_to`): its
//! writes are the committed output records the final read found (`OutputRecord`, each
//! carrying the value id of its input), so an input whose output was committed twice (or
//! never) is a `sink-duplicate` (a `sink-loss`), whatever the members believed.
//!
//! Only groups declared with `has_sink` owe a sink. What counts as acknowledged is
//! [`HistoryIndex::acknowledged`]: values of aborted or unfinished transactions and sends with
//! an unknown outcome are not owed (but may be sunk). At-least-once services allow
//! `sink-duplicate`; the scenario says so.

use super::dense::{RecentMap, ValueTable};
use super::index::FastSet as HashSet;
use super::index::HistoryIndex;
use super::key_order::{FirstSinkWrite, KeyOrder};
use super::{value_name, CheckConfig, Collector, GroupCheck};
use crate::history::History;
use crate::violation::{Violation, ViolationKind};
use kafsim_engine::history::HistoryEvent;
use kafsim_engine::{Instant, TopicPartition, ValueId};

/// The first sink write of one value by one group.
#[derive(Clone, Copy, Debug)]
struct FirstWrite {
    at: Instant,
    /// The member that wrote it (None: a committed output record, found by the final read).
    member: Option<u32>,
    /// A member wrote the value (`SinkWrite`), this first write or a later one: key order
    /// judges a group's first `SinkWrite` of each value.
    sunk: bool,
    /// The input record (a database row), or the output record (`OutputRecord`).
    partition: TopicPartition,
    offset: u64,
}

pub fn check(history: &History, index: &HistoryIndex, config: &CheckConfig, out: &mut Collector) {
    pass(history, index, config, out, None);
}

/// The sink and [`super::key_order`] in one pass over the sink writes, sharing the table of
/// each group's first writes (key order judges a group's first write of each value).
pub fn check_with_key_order(
    history: &History,
    index: &HistoryIndex,
    config: &CheckConfig,
    out: &mut Collector,
) {
    pass(history, index, config, out, Some(&mut KeyOrder::default()));
}

fn pass(
    history: &History,
    index: &HistoryIndex,
    config: &CheckConfig,
    out: &mut Collector,
    mut key_order: Option<&mut KeyOrder>,
) {
    // Per group, per value: its first write.
    let mut first: RecentMap<u32, ValueTable<FirstWrite>> = RecentMap::default();
    let mut dead_lettered: HashSet<(u32, ValueId)> = HashSet::default();
    for entry in history.entries() {
        match entry.event {
            HistoryEvent::SinkWrite { .. } => {
                let sunk = FirstSinkWrite::of(entry).expect("a sink write");
                let write = FirstWrite {
                    at: entry.at,
                    member: Some(sunk.member),
                    sunk: true,
                    partition: sunk.partition,
                    offset: sunk.offset,
                };
                let (group, value) = (sunk.group, sunk.value);
                let first_sunk = note_write(&mut first, index, group, value, write, config, out);
                if let (true, Some(order)) = (first_sunk, key_order.as_deref_mut()) {
                    order.first_write(sunk, index, config, out);
                }
            }
            HistoryEvent::OutputRecord {
                group,
                partition,
                offset,
                value,
            } => {
                let write = FirstWrite {
                    at: entry.at,
                    member: None,
                    sunk: false,
                    partition,
                    offset,
                };
                note_write(&mut first, index, group, value, write, config, out);
            }
            HistoryEvent::DeadLetter { group, value, .. } => {
                dead_lettered.insert((group, value));
            }
            _ => {}
        }
    }
    report_losses(index, config, &first, &dead_lettered, out);
}

/// Notes a write, reporting a repeated one; returns whether it is the group's first
/// `SinkWrite` of the value.
fn note_write(
    first: &mut RecentMap<u32, ValueTable<FirstWrite>>,
    index: &HistoryIndex,
    group: u32,
    value: ValueId,
    write: FirstWrite,
    config: &CheckConfig,
    out: &mut Collector,
) -> bool {
    let written = first.get_or_insert_with(group, || index.value_table());
    let mut new = false;
    let earlier = written.get_or_insert_with(value, || {
        new = true;
        write
    });
    if new {
        return write.sunk;
    }
    let first_sunk = write.sunk && !earlier.sunk;
    earlier.sunk |= write.sunk;
    let earlier = *earlier;
    out.push(duplicate(group, value, &earlier, &write, config));
    first_sunk
}

/// `sink-loss` for every acknowledged value a sink group consumes that reached neither its
/// sink nor its dead-letter topic, in value order.
fn report_losses(
    index: &HistoryIndex,
    config: &CheckConfig,
    first: &RecentMap<u32, ValueTable<FirstWrite>>,
    dead_lettered: &HashSet<(u32, ValueId)>,
    out: &mut Collector,
) {
    let sinks: Vec<(&GroupCheck, Option<&ValueTable<FirstWrite>>)> = (config.groups.iter())
        .filter(|g| g.has_sink)
        .map(|g| (g, first.get(&g.group)))
        .collect();
    for value in index.acknowledged_values() {
        for &(group, written) in &sinks {
            let consumes = index.ack(*value).is_some_and(|a| group.owes(a.partition));
            let key = (group.group, *value);
            if consumes
                && !written.is_some_and(|w| w.contains(*value))
                && (dead_lettered.is_empty() || !dead_lettered.contains(&key))
            {
                let ack = index.ack(*value).expect("acknowledged value has an ack");
                let sink = match group.output {
                    Some(topic) => format!(
                        "a committed record of {}'s output topic {}",
                        config.group_name(group.group),
                        config.names.topic(topic)
                    ),
                    None => format!(
                        "the sink or dead-letter topic of {}",
                        config.group_name(group.group)
                    ),
                };
                out.push(
                    Violation::new(
                        ViolationKind::SinkLoss,
                        config.end,
                        format!(
                            "acknowledged {} at {} ({}) never reached {sink}",
                            value_name(*value),
                            config.names.at(ack.partition, ack.offset),
                            config.names.producer(ack.producer),
                        ),
                    )
                    .at_partition(ack.partition)
                    .at_offset(ack.offset)
                    .of_value(*value),
                );
            }
        }
    }
}

fn duplicate(
    group: u32,
    value: ValueId,
    earlier: &FirstWrite,
    write: &FirstWrite,
    config: &CheckConfig,
) -> Violation {
    let detail = match (earlier.member, write.member) {
        (Some(first), Some(second)) => format!(
            "{} wrote {} to its sink twice: {} from {} at {}, {} from {}",
            config.group_name(group),
            value_name(value),
            config.member_name(group, first),
            config.names.at(earlier.partition, earlier.offset),
            earlier.at,
            config.member_name(group, second),
            config.names.at(write.partition, write.offset),
        ),
        _ => format!(
            "{} committed two output records of {}: {} and {}",
            config.group_name(group),
            value_name(value),
            config.names.at(earlier.partition, earlier.offset),
            config.names.at(write.partition, write.offset),
        ),
    };
    Violation::new(ViolationKind::SinkDuplicate, write.at, detail)
        .at_partition(write.partition)
        .at_offset(write.offset)
        .of_value(value)
}

#[cfg(test)]
mod tests {
    use super::{check, check_with_key_order};
    use crate::checker::key_order;
    use crate::checker::test_support::*;
    use crate::violation::ViolationKind::*;

    #[test]
    fn a_value_never_sunk_is_a_sink_loss_and_one_sunk_twice_a_duplicate() {
        let mut s = Story::new();
        s.send(1, 0, 1, 0, 0).send(1, 0, 2, 0, 1);
        s.sink(2, 0, 0, 0, 1).sink(3, 0, 0, 0, 1);
        let cfg = config(vec![group(0, false, true)]);
        let found = run(check, &s, &cfg);
        assert_eq!(kinds(&found), vec![SinkDuplicate, SinkLoss]);
        assert_eq!((found[0].value, found[0].at.as_millis()), (Some(v(1)), 3));
        assert_eq!((found[1].value, found[1].at), (Some(v(2)), cfg.end));
    }

    #[test]
    fn details_name_topics_groups_members_and_producers_by_the_naming_service() {
        let mut s = Story::new();
        s.send(1, 0, 1, 0, 0).send(1, 0, 2, 0, 1);
        s.sink(2, 0, 0, 0, 1).sink(3, 0, 0, 0, 1);
        let mut names = crate::names::Names::new();
        names.set_topic(T0, "orders");
        names.set_group(0, "billing");
        let cfg = config(vec![group(0, false, true)]).with_names(names);
        let found = run(check, &s, &cfg);
        assert_eq!(
            found[0].detail,
            "billing wrote v1 to its sink twice: billing/0 from orders/0@0 at 2.000ms, \
             billing/0 from orders/0@0"
        );
        assert_eq!(
            found[1].detail,
            "acknowledged v2 at orders/0@1 (producer-0) never reached the sink or dead-letter \
             topic of billing"
        );
    }

    #[test]
    fn a_write_the_database_refused_is_neither_a_duplicate_nor_a_write() {
        // The database's committed rows are what count: a refused second write of value 1
        // is no duplicate, and a refused write of value 2 (never committed) does not save
        // it from sink-loss.
        let mut s = Story::new();
        s.send(1, 0, 1, 0, 0).send(1, 0, 2, 0, 1);
        s.sink(2, 0, 0, 0, 1)
            .refused(3, 0, 0, 0, 1)
            .refused(4, 0, 0, 1, 2);
        let cfg = config(vec![group(0, false, true)]);
        let found = run(check, &s, &cfg);
        assert_eq!(kinds(&found), vec![SinkLoss]);
        assert_eq!(found[0].value, Some(v(2)));
        // Committed twice (a plain table): a duplicate.
        s.sink(5, 0, 0, 1, 2).sink(6, 0, 0, 1, 2);
        let found = run(check, &s, &cfg);
        assert_eq!(kinds(&found), vec![SinkDuplicate]);
        assert_eq!(found[0].value, Some(v(2)));
    }

    /// A consume-transform-produce group: its committed output records are its sink.
    fn ctp_group() -> crate::checker::GroupCheck {
        crate::checker::GroupCheck {
            output: Some(OUT),
            ..group(0, true, true)
        }
    }

    #[test]
    fn an_input_in_two_committed_outputs_is_a_duplicate_and_in_none_a_loss() {
        let mut s = Story::new();
        s.send(1, 0, 1, 0, 0)
            .send(1, 0, 2, 0, 1)
            .send(1, 0, 3, 1, 0);
        // v1 committed twice (a batch re-processed after its commit was lost), v2 never.
        s.output(9, 0, 0, 0, 1)
            .output(9, 0, 1, 0, 3)
            .output(9, 0, 0, 1, 1);
        let mut names = crate::names::Names::new();
        names.set_topic(T0, "orders");
        names.set_topic(OUT, "invoices");
        names.set_group(0, "billing");
        let cfg = config(vec![ctp_group()]).with_names(names);
        let found = run(check, &s, &cfg);
        assert_eq!(kinds(&found), vec![SinkDuplicate, SinkLoss]);
        assert_eq!(found[0].value, Some(v(1)));
        assert_eq!(
            found[0].detail,
            "billing committed two output records of v1: invoices/0@0 and invoices/0@1"
        );
        assert_eq!(found[1].value, Some(v(2)));
        assert_eq!(
            found[1].detail,
            "acknowledged v2 at orders/0@1 (producer-0) never reached a committed record of \
             billing's output topic invoices"
        );
    }

    #[test]
    fn every_input_in_exactly_one_committed_output_is_clean() {
        let mut s = Story::new();
        s.send(1, 0, 1, 0, 0).send(1, 0, 2, 0, 1);
        s.invoke(1, 0, 3, None).info(2, 0, 3); // unknown outcome: not owed (but may be output)
        s.output(9, 0, 1, 0, 2)
            .output(9, 0, 0, 0, 1)
            .output(9, 0, 0, 1, 3);
        assert_eq!(run(check, &s, &config(vec![ctp_group()])), vec![]);
    }

    #[test]
    fn key_order_in_the_sink_pass_judges_the_first_sink_write_after_an_output_record() {
        // v2 (invoked after v1, same key) is sunk before v1. v1 was first an output record:
        // its first *sink write* is still judged, by key order alone as by the fused pass.
        let mut s = Story::new();
        s.invoke(1, 0, 1, Some(7)).invoke(1, 0, 2, Some(7));
        s.ok(2, 0, 1, 0, 0).ok(2, 0, 2, 0, 1);
        s.output(3, 0, 0, 0, 1)
            .sink(4, 0, 0, 1, 2)
            .sink(5, 0, 0, 0, 1)
            .sink(6, 0, 0, 0, 1);
        let cfg = config(vec![group(0, false, true)]);
        let alone = [run(check, &s, &cfg), run(key_order::check, &s, &cfg)].concat();
        let mut alone: Vec<_> = alone
            .into_iter()
            .map(|x| (x.kind, x.at, x.detail))
            .collect();
        alone.sort();
        let fused = run(check_with_key_order, &s, &cfg);
        let mut fused: Vec<_> = fused
            .into_iter()
            .map(|x| (x.kind, x.at, x.detail))
            .collect();
        fused.sort();
        assert_eq!(fused, alone);
        let kinds: Vec<_> = fused.iter().map(|x| x.0).collect();
        assert_eq!(
            kinds,
            vec![KeyOrder, SinkDuplicate, SinkDuplicate],
            "{fused:?}"
        );
    }

    #[test]
    fn sunk_once_or_dead_lettered_or_not_owed_is_clean() {
        let mut s = Story::new();
        s.send(1, 0, 1, 0, 0).send(1, 0, 2, 0, 1);
        s.invoke(1, 0, 3, None).info(2, 0, 3); // unknown outcome: not owed
        s.txn_value(2, 1, 4, 4)
            .send(2, 1, 4, 0, 2)
            .txn_abort(3, 1, 4); // aborted: not owed
        s.sink(4, 0, 0, 0, 1)
            .dead_letter(5, 0, 2)
            .sink(5, 1, 0, 0, 1)
            .sink(6, 1, 0, 0, 2);
        let cfg = config(vec![
            group(0, true, true),
            group(1, false, true),
            group(2, false, false),
        ]);
        assert_eq!(run(check, &s, &cfg), vec![]);
    }
}
