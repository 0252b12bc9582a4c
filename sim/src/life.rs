//! The life of one record, for `kafsim replay`: every fact of the history that concerns one
//! value, in time order, as lines a human reads — its invoke, its acknowledgement or failure,
//! the broker events that decided its fate on its partition (high watermark crossing its
//! offset, leader changes, truncations that removed it), every poll, sink write and dead
//! letter of it. For an acknowledged value no one read, it ends with the reads around its
//! offset, which is where a lost write is explained.

use crate::history::{History, HistoryEntry};
use kafsim_engine::history::HistoryEvent;
use kafsim_engine::{Instant, NodeId, TopicPartition, ValueId};
use std::collections::BTreeMap;

/// Where the value lives: its first acknowledged position, else the first position it was
/// read at (a send with an unknown outcome that did land).
#[derive(Clone, Copy, Debug)]
struct Home {
    partition: TopicPartition,
    offset: u64,
    acknowledged: bool,
}

/// A poll of a neighbouring offset, for the explanation of a lost value.
#[derive(Clone, Copy, Debug)]
struct NearbyRead {
    at: Instant,
    group: u32,
    member: u32,
    offset: u64,
    value: ValueId,
}

/// What the first pass learns about the value.
#[derive(Default)]
struct Facts {
    home: Option<Home>,
    txn: Option<(u32, u64)>,
    /// When the value entered the history (its first mention, normally its invoke).
    born: Option<Instant>,
    read: bool,
}

/// The life of `value` as lines, oldest first; `name_of` names nodes (e.g. "broker-2").
pub fn record_life(
    history: &History,
    value: ValueId,
    name_of: &dyn Fn(NodeId) -> String,
) -> Vec<String> {
    let facts = facts(history, value);
    let Some(born) = facts.born else {
        return vec![format!("v{} does not appear in the history", value.0)];
    };
    let mut lines = Vec::new();
    let mut high_watermarks: BTreeMap<NodeId, u64> = BTreeMap::new();
    let mut before: Option<NearbyRead> = None;
    let mut after: Option<NearbyRead> = None;
    for entry in history.entries() {
        let text = match facts.home {
            Some(home) if entry.at >= born => {
                note_nearby(entry, home, &mut before, &mut after);
                partition_event(entry, home, &mut high_watermarks, name_of)
            }
            _ => None,
        };
        let text = text.or_else(|| value_event(&entry.event, value, facts.txn));
        if let Some(text) = text {
            lines.push(format!("{} {}: {text}", entry.at, name_of(entry.node)));
        }
    }
    if let Some(home) = facts.home.filter(|h| h.acknowledged && !facts.read) {
        lines.extend(lost_explanation(home, before, after));
    }
    lines
}

fn facts(history: &History, value: ValueId) -> Facts {
    let mut facts = Facts::default();
    for entry in history.entries() {
        let mentions = match &entry.event {
            HistoryEvent::SendInvoke { value: v, .. } => *v == value,
            HistoryEvent::SendOk {
                value: v,
                partition,
                offset,
                ..
            } if *v == value => {
                if !facts.home.is_some_and(|h| h.acknowledged) {
                    facts.home = Some(Home {
                        partition: *partition,
                        offset: *offset,
                        acknowledged: true,
                    });
                }
                true
            }
            HistoryEvent::Poll {
                value: v,
                partition,
                offset,
                ..
            } if *v == value => {
                facts.read = true;
                facts.home.get_or_insert(Home {
                    partition: *partition,
                    offset: *offset,
                    acknowledged: false,
                });
                true
            }
            HistoryEvent::TxnValue {
                producer,
                txn,
                value: v,
            } if *v == value => {
                facts.txn = Some((*producer, *txn));
                true
            }
            other => event_value(other) == Some(value),
        };
        if mentions && facts.born.is_none() {
            facts.born = Some(entry.at);
        }
    }
    facts
}

/// The value an event is about, for the events not matched explicitly.
fn event_value(event: &HistoryEvent) -> Option<ValueId> {
    match event {
        HistoryEvent::SendFail { value, .. }
        | HistoryEvent::SendInfo { value, .. }
        | HistoryEvent::SinkWrite { value, .. }
        | HistoryEvent::SinkRefused { value, .. }
        | HistoryEvent::DeadLetter { value, .. } => Some(*value),
        _ => None,
    }
}

/// A line for an event about the value itself (or its transaction).
fn value_event(event: &HistoryEvent, value: ValueId, txn: Option<(u32, u64)>) -> Option<String> {
    let text = match event {
        HistoryEvent::SendInvoke {
            producer,
            value: v,
            key,
            topic,
        } if *v == value => {
            let key = key.map_or("none".to_string(), |k| k.0.to_string());
            format!(
                "invoked by producer {producer}, key {key}, topic t{}",
                topic.0
            )
        }
        HistoryEvent::SendOk {
            producer,
            value: v,
            partition,
            offset,
        } if *v == value => format!("acknowledged to producer {producer} at {partition}@{offset}"),
        HistoryEvent::SendFail {
            producer,
            value: v,
            error,
        } if *v == value => format!("send of producer {producer} failed: {error:?}"),
        HistoryEvent::SendInfo {
            producer,
            value: v,
            reason,
        } if *v == value => format!("send of producer {producer} has an unknown outcome: {reason}"),
        HistoryEvent::TxnValue {
            producer,
            txn: t,
            value: v,
        } if *v == value => format!("sent in transaction {t} of producer {producer}"),
        HistoryEvent::TxnCommit { producer, txn: t } if txn == Some((*producer, *t)) => {
            format!("transaction {t} of producer {producer} committed")
        }
        HistoryEvent::TxnAbort { producer, txn: t } if txn == Some((*producer, *t)) => {
            format!("transaction {t} of producer {producer} aborted")
        }
        HistoryEvent::Poll {
            group,
            member,
            partition,
            offset,
            value: v,
            ..
        } if *v == value => {
            format!("polled by group {group} member {member} at {partition}@{offset}")
        }
        HistoryEvent::SinkWrite {
            group,
            member,
            partition,
            offset,
            value: v,
            ..
        } if *v == value => format!(
            "written to the sink of group {group} by member {member} (read at {partition}@{offset})"
        ),
        HistoryEvent::SinkRefused {
            group,
            member,
            partition,
            offset,
            value: v,
        } if *v == value => format!(
            "refused by the database of group {group} to member {member} (already stored; read at {partition}@{offset})"
        ),
        HistoryEvent::DeadLetter {
            group,
            member,
            value: v,
        } if *v == value => {
            format!("sent to the dead-letter topic by group {group} member {member}")
        }
        _ => return None,
    };
    Some(text)
}

/// A line for a broker or consumer event on the value's partition that affects its offset.
fn partition_event(
    entry: &HistoryEntry,
    home: Home,
    high_watermarks: &mut BTreeMap<NodeId, u64>,
    name_of: &dyn Fn(NodeId) -> String,
) -> Option<String> {
    let Home {
        partition: home_partition,
        offset: home_offset,
        ..
    } = home;
    match &entry.event {
        HistoryEvent::HighWatermark {
            broker,
            partition,
            leader_epoch,
            high_watermark,
        } if *partition == home_partition => {
            let previous = high_watermarks.insert(*broker, *high_watermark).unwrap_or(0);
            let (was, is) = (previous > home_offset, *high_watermark > home_offset);
            let verb = match (was, is) {
                (false, true) => "passed",
                (true, false) => "fell back to or below",
                _ => return None,
            };
            Some(format!(
                "high watermark on {} (epoch {leader_epoch}) {verb} offset {home_offset}: now {high_watermark}",
                name_of(*broker)
            ))
        }
        HistoryEvent::BecameLeader {
            broker,
            partition,
            leader_epoch,
            log_end_offset,
        } if *partition == home_partition => {
            let holds = if *log_end_offset > home_offset {
                "has a record at"
            } else {
                "has nothing at"
            };
            Some(format!(
                "{} became leader of {partition} in epoch {leader_epoch} with log end {log_end_offset} ({holds} offset {home_offset})",
                name_of(*broker)
            ))
        }
        HistoryEvent::Truncated {
            broker,
            partition,
            offset,
            reason,
        } if *partition == home_partition && *offset <= home_offset => {
            high_watermarks.entry(*broker).and_modify(|hw| *hw = (*hw).min(*offset));
            Some(format!(
                "removed from {} by truncation to {offset} ({reason})",
                name_of(*broker)
            ))
        }
        HistoryEvent::PositionReset {
            group,
            member,
            partition,
            offset,
        } if *partition == home_partition && *offset > home_offset => Some(format!(
            "group {group} member {member} reset its position of {partition} to {offset}, past this record"
        )),
        _ => None,
    }
}

/// Remembers the first read of the offset below the value and the first read of the lowest
/// offset above it.
fn note_nearby(
    entry: &HistoryEntry,
    home: Home,
    before: &mut Option<NearbyRead>,
    after: &mut Option<NearbyRead>,
) {
    let HistoryEvent::Poll {
        group,
        member,
        partition,
        offset,
        value,
        ..
    } = entry.event
    else {
        return;
    };
    if partition != home.partition {
        return;
    }
    let read = NearbyRead {
        at: entry.at,
        group,
        member,
        offset,
        value,
    };
    if offset + 1 == home.offset && before.is_none() {
        *before = Some(read);
    }
    if offset > home.offset && after.is_none_or(|a| offset < a.offset) {
        *after = Some(read);
    }
}

/// Lines for an acknowledged value no one read: who read around its offset.
fn lost_explanation(
    home: Home,
    before: Option<NearbyRead>,
    after: Option<NearbyRead>,
) -> Vec<String> {
    let describe = |r: NearbyRead| {
        format!(
            "{}@{} read by group {} member {} at {} (v{})",
            home.partition, r.offset, r.group, r.member, r.at, r.value.0
        )
    };
    let mut lines = vec![format!(
        "never read; reads around {}@{}:",
        home.partition, home.offset
    )];
    lines.push(match before {
        Some(r) => format!("  before: {}", describe(r)),
        None if home.offset == 0 => "  before: none (offset 0)".to_string(),
        None => format!("  before: no one read offset {}", home.offset - 1),
    });
    lines.push(match after {
        Some(r) => format!("  next higher offset read: {}", describe(r)),
        None => "  next higher offset read: none".to_string(),
    });
    lines
}

#[cfg(test)]
mod tests {
    use super::record_life;
    use crate::checker::test_support::*;
    use kafsim_engine::history::HistoryEvent;
    use kafsim_engine::NodeId;

    fn name(node: NodeId) -> String {
        format!("broker-{}", node.0)
    }

    fn broker_event(s: &mut Story, at: u64, event: HistoryEvent) {
        s.event(at, event);
    }

    /// v2 acknowledged at t0/0@1 by broker 1, which then lost leadership to broker 2 (whose
    /// log ends at 1) and truncated; the group read 0 and then 2.
    fn lost_story() -> Story {
        let mut s = Story::new();
        s.send(1, 0, 1, 0, 0).invoke(2, 0, 2, Some(5));
        let hw = |high_watermark| HistoryEvent::HighWatermark {
            broker: NodeId(1),
            partition: tp(0),
            leader_epoch: 1,
            high_watermark,
        };
        broker_event(&mut s, 2, hw(1));
        broker_event(&mut s, 3, hw(2));
        s.ok(3, 0, 2, 0, 1);
        broker_event(&mut s, 3, hw(3)); // already past: no line
        broker_event(
            &mut s,
            4,
            HistoryEvent::BecameLeader {
                broker: NodeId(2),
                partition: tp(0),
                leader_epoch: 2,
                log_end_offset: 1,
            },
        );
        broker_event(
            &mut s,
            5,
            HistoryEvent::Truncated {
                broker: NodeId(1),
                partition: tp(0),
                offset: 1,
                reason: "diverging epoch",
            },
        );
        broker_event(
            &mut s,
            5,
            HistoryEvent::Truncated {
                broker: NodeId(1),
                partition: tp(1),
                offset: 0,
                reason: "other partition",
            },
        );
        s.send(6, 0, 3, 0, 1).send(6, 0, 4, 0, 2);
        s.poll(7, 0, 1, 0, 0, 1)
            .poll(8, 0, 1, 0, 2, 4)
            .poll(9, 0, 0, 0, 3, 4);
        s
    }

    #[test]
    fn a_lost_value_shows_its_truncation_and_the_reads_around_it() {
        let lines = record_life(lost_story().history(), v(2), &name);
        let expected = [
            "2.000ms broker-0: invoked by producer 0, key 5, topic t0",
            "3.000ms broker-0: high watermark on broker-1 (epoch 1) passed offset 1: now 2",
            "3.000ms broker-0: acknowledged to producer 0 at t0/0@1",
            "4.000ms broker-0: broker-2 became leader of t0/0 in epoch 2 with log end 1 \
             (has nothing at offset 1)",
            "5.000ms broker-0: removed from broker-1 by truncation to 1 (diverging epoch)",
            "never read; reads around t0/0@1:",
            "  before: t0/0@0 read by group 0 member 1 at 7.000ms (v1)",
            "  next higher offset read: t0/0@2 read by group 0 member 1 at 8.000ms (v4)",
        ];
        // The story records every event from node 0; broker names come from the events.
        assert_eq!(lines, expected, "{lines:#?}");
    }

    #[test]
    fn a_read_value_has_no_loss_explanation_and_an_unknown_one_says_so() {
        let mut s = lost_story();
        s.poll(10, 1, 0, 0, 1, 2)
            .sink(11, 1, 0, 1, 2)
            .dead_letter(12, 1, 2);
        let lines = record_life(s.history(), v(2), &name);
        assert!(
            !lines.iter().any(|l| l.contains("never read")),
            "{lines:#?}"
        );
        assert!(lines[lines.len() - 3].ends_with("polled by group 1 member 0 at t0/0@1"));
        assert!(lines[lines.len() - 2].contains("written to the sink of group 1"));
        assert!(lines[lines.len() - 1].contains("dead-letter topic by group 1"));
        assert_eq!(
            record_life(s.history(), v(99), &name),
            vec!["v99 does not appear in the history".to_string()]
        );
    }
}
