//! One line of a record's life per history event: the value's own events (send, append,
//! acknowledgement, poll, sink write) and the events of its partition around it (leader
//! changes, truncations, rebalances, resumes, commits). Apart from the story's assembly
//! because each kind of event has its own wording and offset arithmetic, one match arm each.

use super::{value_list, Cover, Facts, FailedCovers, Home, LifeContext, Walk};
use crate::history::{History, HistoryEntry};
use crate::names::Names;
use kafsim_engine::consumer::consume_loop::MarkAt;
use kafsim_engine::history::{HistoryEvent, ResetCause};
use kafsim_engine::protocol::ErrorCode;
use kafsim_engine::{Instant, NodeId, TopicPartition, ValueId};

/// A line for an event about the value itself (or its transaction).
pub(super) fn value_event(
    cx: &LifeContext,
    entry: &HistoryEntry,
    value: ValueId,
    facts: &Facts,
    walk: &mut Walk,
) -> Option<String> {
    let n = cx.names;
    let txn = facts.txn;
    let with_values = || format!("with values {}", value_list(&facts.txn_values));
    let text = match &entry.event {
        HistoryEvent::SendInvoke {
            producer,
            value: v,
            key,
            topic,
            ..
        } if *v == value => {
            let key = key.map_or("none".to_string(), |k| k.0.to_string());
            format!(
                "{} sends v{} (key {key}) to topic {}",
                n.producer(*producer),
                value.0,
                n.topic(*topic)
            )
        }
        HistoryEvent::SendOk {
            producer,
            value: v,
            partition,
            offset,
        } if *v == value => format!(
            "{} got its acknowledgement: {}",
            n.producer(*producer),
            n.at(*partition, *offset)
        ),
        HistoryEvent::SendFail {
            producer,
            value: v,
            error,
        } if *v == value => format!("send of {} failed: {error:?}", n.producer(*producer)),
        HistoryEvent::SendInfo {
            producer,
            value: v,
            reason,
        } if *v == value => format!(
            "send of {} has an unknown outcome: {reason}",
            n.producer(*producer)
        ),
        HistoryEvent::TxnValue {
            producer,
            txn: t,
            value: v,
        } if *v == value => format!("sent in transaction {t} of {}", n.producer(*producer)),
        HistoryEvent::TxnBegin { producer, txn: t } if txn == Some((*producer, *t)) => {
            format!("{} began transaction {t}", n.producer(*producer))
        }
        HistoryEvent::TxnCommit { producer, txn: t } if txn == Some((*producer, *t)) => format!(
            "committed transaction {t} of {} {}",
            n.producer(*producer),
            with_values()
        ),
        HistoryEvent::TxnAbort { producer, txn: t } if txn == Some((*producer, *t)) => format!(
            "aborted transaction {t} of {} {}",
            n.producer(*producer),
            with_values()
        ),
        HistoryEvent::TxnUnknown {
            producer,
            txn: t,
            reason,
        } if txn == Some((*producer, *t)) => format!(
            "transaction {t} of {} {} ended with an unknown outcome: {reason}",
            n.producer(*producer),
            with_values()
        ),
        HistoryEvent::Poll {
            group,
            member,
            partition,
            offset,
            value: v,
            ..
        } if *v == value => {
            let generation = walk
                .generations
                .get(&(*group, *member))
                .map_or("no assignment".to_string(), |g| format!("generation {g}"));
            format!(
                "{} polled it ({generation}) at {}",
                n.member(*group, *member),
                n.at(*partition, *offset)
            )
        }
        HistoryEvent::SinkWrite {
            group,
            member,
            partition,
            offset,
            value: v,
            ..
        } if *v == value => {
            walk.sunk.insert(*group);
            format!(
                "{} wrote it to the sink of {} (read at {})",
                n.member(*group, *member),
                n.group(*group),
                n.at(*partition, *offset)
            )
        }
        HistoryEvent::SinkRefused {
            group,
            member,
            partition,
            offset,
            value: v,
        } if *v == value => format!(
            "the database of {} refused it to {} (already stored; read at {})",
            n.group(*group),
            n.member(*group, *member),
            n.at(*partition, *offset)
        ),
        HistoryEvent::OutputRecord {
            group,
            partition,
            offset,
            value: v,
        } if *v == value => {
            // A consume-transform-produce group's sink is its output topic.
            walk.sunk.insert(*group);
            format!(
                "the final read found an output of it that {} committed, at {}",
                n.group(*group),
                n.at(*partition, *offset)
            )
        }
        HistoryEvent::DeadLetter {
            group,
            member,
            value: v,
        } if *v == value => {
            walk.sunk.insert(*group);
            format!(
                "{} sent it to the dead-letter topic",
                n.member(*group, *member)
            )
        }
        _ => return None,
    };
    Some(text)
}

/// The mark of the value, derived from where its group's handler marks (see the module docs).
pub(super) fn derived_mark(
    cx: &LifeContext,
    entry: &HistoryEntry,
    value: ValueId,
) -> Option<String> {
    let (group, member, offset, before) = match &entry.event {
        HistoryEvent::Poll {
            group,
            member,
            offset,
            value: v,
            ..
        } if *v == value => (*group, *member, *offset, true),
        HistoryEvent::SinkWrite {
            group,
            member,
            offset,
            value: v,
            ..
        } if *v == value => (*group, *member, *offset, false),
        _ => return None,
    };
    let rule = cx.marks.get(group as usize)?;
    let member = cx.names.member(group, member);
    let next = offset + 1;
    let why = rule.why;
    match (rule.at, before) {
        // kafka-go's ReadMessage: its commit is the mark, and has lines of its own.
        (MarkAt::Delivery, true) if cx.read_message.get(group as usize) == Some(&true) => None,
        (MarkAt::Delivery, true) => Some(format!(
            "{member} marks offset {offset} as poll hands it over, before processing ({why}): \
             its next commit will say {next}"
        )),
        (MarkAt::ProcessStart, true) => Some(format!(
            "{member} marks offset {offset} once its loop takes it up, before processing it \
             ({why}): a commit after that will say {next}"
        )),
        (MarkAt::ProcessEnd, false) => Some(format!(
            "{member} marks offset {offset} after its sink write ({why}): its next commit \
             will say {next}"
        )),
        _ => None,
    }
}

/// The group a consumer-side event is about (none for a broker's own events).
fn event_group(cx: &LifeContext, event: &HistoryEvent) -> Option<u32> {
    match event {
        HistoryEvent::PositionReset { group, .. }
        | HistoryEvent::Commit { group, .. }
        | HistoryEvent::Assigned { group, .. }
        | HistoryEvent::Resumed { group, .. } => Some(*group),
        HistoryEvent::OffsetsStored { group, .. } => cx.names.group_index(group),
        _ => None,
    }
}

/// A line for a broker or consumer event on the value's partition that concerns its offset.
pub(super) fn partition_event(
    cx: &LifeContext,
    entry: &HistoryEntry,
    home: Home,
    facts: &Facts,
    walk: &mut Walk,
) -> Option<String> {
    let n = cx.names;
    // A group's commits, resets and resumes concern the position where it reads the value:
    // the home, or its own position in another topic (a consume-transform-produce output
    // read downstream).
    let (tp, o) = event_group(cx, &entry.event)
        .and_then(|g| facts.read_positions.get(&g))
        .filter(|(p, _)| p.topic != home.partition.topic)
        .copied()
        .unwrap_or((home.partition, home.offset));
    match &entry.event {
        HistoryEvent::Appended {
            broker,
            partition,
            leader_epoch,
            base_offset,
            next_offset,
            leader,
        } if *partition == tp && (*base_offset..*next_offset).contains(&o) => {
            let again = if walk.removed.contains(broker) {
                " again, after its truncation (the record there now may be another one)"
            } else {
                ""
            };
            if !walk.holders.insert(*broker) {
                return None;
            }
            let what = if *leader {
                format!(
                    "appended the batch {} as leader in epoch {leader_epoch}: offset {o}",
                    span(*base_offset, *next_offset)
                )
            } else {
                format!(
                    "copied {} from the leader as a follower (epoch {leader_epoch})",
                    span(*base_offset, *next_offset)
                )
            };
            Some(format!("{} {what}{again}", n.node(*broker)))
        }
        HistoryEvent::HighWatermark {
            broker,
            partition,
            leader_epoch,
            high_watermark,
        } if *partition == tp => {
            let previous = walk
                .high_watermarks
                .insert(*broker, *high_watermark)
                .unwrap_or(0);
            let verb = match (previous > o, *high_watermark > o) {
                (false, true) => "passed",
                (true, false) => "fell back to or below",
                _ => return None,
            };
            Some(format!(
                "high watermark on {} (epoch {leader_epoch}) {verb} offset {o}: now {high_watermark}",
                n.node(*broker)
            ))
        }
        HistoryEvent::BecameLeader {
            broker,
            partition,
            leader_epoch,
            log_end_offset,
        } if *partition == tp => {
            let holds = if *log_end_offset > o {
                "has a record at"
            } else {
                "has nothing at"
            };
            Some(format!(
                "{} became leader of {} in epoch {leader_epoch} with log end {log_end_offset} ({holds} offset {o})",
                n.node(*broker),
                n.tp(tp)
            ))
        }
        HistoryEvent::Truncated {
            broker,
            partition,
            offset,
            reason,
        } if *partition == tp && *offset <= o => {
            walk.high_watermarks
                .entry(*broker)
                .and_modify(|hw| *hw = (*hw).min(*offset));
            if walk.holders.remove(broker) {
                walk.removed.insert(*broker);
            }
            Some(format!(
                "{} truncated its log of {} to {offset} ({reason}): offset {o} is gone from it",
                n.node(*broker),
                n.tp(tp)
            ))
        }
        HistoryEvent::PositionReset {
            group,
            member,
            partition,
            offset,
            cause,
        } if *partition == tp && *offset > o => {
            let policy = cx.offset_resets.get(*group as usize);
            let why = match (cause, policy) {
                (ResetCause::NoCommittedOffset, Some(p)) => {
                    format!(": the group had no committed offset for it, and {p}")
                }
                (ResetCause::OutOfRange, Some(p)) => {
                    format!(": its position was out of range (OffsetOutOfRange), and {p}")
                }
                (ResetCause::NoCommittedOffset, None) => {
                    ": the group had no committed offset for it".to_string()
                }
                (ResetCause::OutOfRange, None) => {
                    ": its position was out of range (OffsetOutOfRange)".to_string()
                }
                (ResetCause::Start, _) => ": its configured start, nothing committed".to_string(),
                (ResetCause::Seek, _) => ": the application sought there".to_string(),
            };
            Some(format!(
                "{} reset its position of {} to {offset}, past this record{why}",
                n.member(*group, *member),
                n.tp(tp)
            ))
        }
        HistoryEvent::Commit {
            group,
            member,
            generation,
            partition,
            offset,
            error,
        } if *partition == tp
            && *offset > o
            && *error == ErrorCode::None
            && facts.first_poll.contains_key(group)
            && walk.covered.contains(group)
            && newest_generation(walk, *group).is_some_and(|g| g > *generation) =>
        {
            // A commit from a generation the group has left behind, accepted all the same:
            // a zombie's (a transactional commit whose offsets carried no generation).
            Some(format!(
                "{} committed {} offset {offset} in generation {generation}, though the group \
                 is in generation {}: a zombie's commit, accepted",
                n.member(*group, *member),
                n.tp(tp),
                newest_generation(walk, *group).unwrap_or(*generation)
            ))
        }
        HistoryEvent::Commit {
            group,
            member,
            generation,
            partition,
            offset,
            error,
        } if *partition == tp
            && *offset > o
            && *error == ErrorCode::None
            && facts.first_poll.contains_key(group)
            && walk.covered.insert(*group) =>
        {
            let cover = Cover {
                at: entry.at,
                by: n.member(*group, *member),
                offset: *offset,
            };
            walk.cover.insert(*group, cover);
            Some(format!(
                "{} committed {} offset {offset} (generation {generation}), which covers offset \
                 {o}: {} will not read it again",
                n.member(*group, *member),
                n.tp(tp),
                n.group(*group)
            ))
        }
        HistoryEvent::Commit {
            group,
            member,
            partition,
            offset,
            error,
            ..
        } if *partition == tp
            && *offset == o + 1
            && *error != ErrorCode::None
            && cx.read_message.get(*group as usize) == Some(&true)
            && facts.first_poller.get(group) == Some(member)
            && !walk.sunk.contains(group) =>
        {
            let tries = walk.dropping_commits.get(group).map_or(0, |d| d.0);
            walk.dropping_commits
                .insert(*group, (tries + 1, *error, entry.at));
            Some(format!(
                "its commit of {} offset {offset} failed ({error:?}): kafka-go's ReadMessage \
                 commits a record before handing it over, and returns the error instead of \
                 the record when the commit still fails after 3 attempts",
                n.tp(tp)
            ))
        }
        HistoryEvent::Commit {
            group,
            member,
            partition,
            offset,
            error,
            ..
        } if *partition == tp
            && *offset > o
            && *error != ErrorCode::None
            && facts
                .first_poll
                .get(group)
                .is_some_and(|first| entry.at >= *first)
            && !walk.covered.contains(group) =>
        {
            // A commit that would have covered the record (after the group read it: before,
            // the offset may have held another record) failed: if none succeeds before
            // the partition changes hands, its next owner reads the record again.
            let failed = walk
                .failed_covers
                .entry(*group)
                .or_insert_with(|| FailedCovers {
                    count: 0,
                    first: entry.at,
                    last: entry.at,
                    error: *error,
                    by: n.member(*group, *member),
                });
            failed.count += 1;
            failed.last = entry.at;
            failed.error = *error;
            (failed.count == 1).then(|| {
                format!(
                    "its commit of {} offset {offset}, which would cover offset {o}, failed \
                     ({error:?})",
                    n.tp(tp)
                )
            })
        }
        HistoryEvent::OffsetsStored {
            group,
            member,
            generation,
            partition,
            offset,
        } if *partition == tp && *offset > o => {
            let index = n.group_index(group)?;
            if !facts.first_poll.contains_key(&index) || !walk.covered.insert(index) {
                return None;
            }
            let cover = Cover {
                at: entry.at,
                by: n.node(*member),
                offset: *offset,
            };
            walk.cover.insert(index, cover);
            let answer = if commit_answered(
                cx.history,
                entry.at,
                index,
                *member,
                *generation,
                tp,
                *offset,
                n,
            ) {
                String::new()
            } else {
                format!("; its answer never reached {}", n.node(*member))
            };
            Some(format!(
                "as coordinator of {group}, stored {}'s commit of {} offset {offset} (generation \
                 {generation}), which covers offset {o}: {group} will not read it again{answer}",
                n.node(*member),
                n.tp(tp),
            ))
        }
        HistoryEvent::Assigned {
            group,
            member,
            generation,
            partitions,
        } if partitions.contains(&tp)
            && facts
                .first_poll
                .get(group)
                .is_some_and(|first| entry.at > *first)
            && !walk.sunk.contains(group) =>
        {
            // A static member that rejoined a Stable group owns its partitions again in the
            // same generation: no rebalance happened.
            let how = match n.member_instance(*group, *member) {
                Some(_) => "after it joined",
                None => "after a rebalance",
            };
            Some(format!(
                "{} owns {} in generation {generation} {how}",
                n.member_with_instance(*group, *member),
                n.tp(tp)
            ))
        }
        HistoryEvent::Resumed {
            group,
            member,
            generation,
            partition,
            offset,
        } if *partition == tp
            && facts
                .first_poll
                .get(group)
                .is_some_and(|first| entry.at > *first)
            && (*offset <= o || !walk.sunk.contains(group)) =>
        {
            // After the sink got the record, a resume matters only when it reads the record
            // again (the cause of a sink duplicate).
            let verdict = if *offset > o {
                "past this record: it will not be read again".to_string()
            } else {
                let mut v = "at or before this record: it will be read again".to_string();
                if let Some(f) = walk.failed_covers.get(group) {
                    let tries = match f.count {
                        1 => format!("{}'s one commit that would have covered it", f.by),
                        c => format!("{c} commits that would have covered it, from {}", f.by),
                    };
                    let when = if f.count == 1 {
                        format!("at {}", f.first)
                    } else {
                        format!(
                            "between {} and {}, the last with {:?}",
                            f.first, f.last, f.error
                        )
                    };
                    v.push_str(&format!(" ({tries}, failed {when})"));
                }
                v
            };
            Some(format!(
                "{} resumed {} in generation {generation} at the committed offset {offset}, \
                 {verdict}",
                n.member(*group, *member),
                n.tp(tp)
            ))
        }
        _ => None,
    }
}

/// The newest generation any member of `group` was assigned in so far.
fn newest_generation(walk: &Walk, group: u32) -> Option<i32> {
    walk.generations
        .range((group, 0)..=(group, u32::MAX))
        .map(|(_, g)| *g)
        .max()
}

/// Whether the member that made a commit the coordinator stored at `stored_at` got its
/// successful answer (its own `Commit` event). When it did not, the member may act as if its
/// commit failed, or never act again (it crashed): the story says so.
#[allow(clippy::too_many_arguments)]
fn commit_answered(
    history: &History,
    stored_at: Instant,
    group: u32,
    member: NodeId,
    generation: i32,
    tp: TopicPartition,
    offset: u64,
    n: &Names,
) -> bool {
    let member = n.node(member);
    history.entries().any(|e| {
        e.at >= stored_at
            && matches!(&e.event, HistoryEvent::Commit {
                group: g,
                member: m,
                generation: gen,
                partition,
                offset: off,
                error: ErrorCode::None,
            } if *g == group && *gen == generation && *partition == tp && *off == offset
                && n.member(*g, *m) == member)
    })
}

/// `60..64` (or `60` for one record).
pub(super) fn span(base: u64, next: u64) -> String {
    if next == base + 1 {
        format!("at {base}")
    } else {
        format!("{base}..{}", next - 1)
    }
}
