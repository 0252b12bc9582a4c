//! The life of one record, for `kafsim replay`: every fact of the run that concerns one
//! value, in the order things happened, as lines a human reads — its send, the leader's
//! append of its batch at its offset, each follower's copy, the high watermark passing it,
//! its acknowledgement, each poll that returned it (member and generation), its mark, the
//! commit that covered its offset, its sink write; and what happened around it: leader
//! changes, the truncation that removed it (which broker, why), faults that hit the nodes
//! holding it (the crash of the member that had polled it), the rebalance that moved its
//! partition and the position the new owner resumed from. For an acknowledged value that no
//! one read, it ends with the reads around its offset, which is where a lost write is
//! explained.
//!
//! Only facts are printed. Most come from history events the nodes recorded; two are derived,
//! and say so: the *mark* (the handler marks at delivery with `mark = "before-process"`, after
//! the sink write with `"after-process"`: recording a mark per record would double a
//! consumer's history for a fact the handler's configuration already fixes), and the
//! *generation* of a poll (the member's last `Assigned` before it). Appends, commits and
//! resumes are recorded per batch, per commit and per partition take-over; the story derives
//! which of them covered this record's offset.

use crate::history::{History, HistoryEntry};
use crate::names::Names;
use crate::nemesis::{describe, AppliedFault, Op};
use kafsim_engine::app::Mark;
use kafsim_engine::history::{HistoryEvent, ResetCause};
use kafsim_engine::protocol::ErrorCode;
use kafsim_engine::{Instant, NodeId, TopicPartition, ValueId};
use std::collections::{BTreeMap, BTreeSet};

/// At most this many lines per record: one screen. The rest is counted, not printed.
pub const MAX_LINES: usize = 60;

/// What a story needs besides the history.
pub struct LifeContext<'a> {
    pub history: &'a History,
    pub names: &'a Names,
    /// Every fault applied in the run, in time order.
    pub faults: &'a [AppliedFault],
    /// Where each group's handler marks offsets, by group index.
    pub marks: &'a [Mark],
    /// Each group's handler `workers` (1: the poll loop processes), by group index.
    pub workers: &'a [u32],
    /// Groups whose client commits each record before the application gets it (kafka-go's
    /// `ReadMessage`), so that a failed commit drops the record, by group index.
    pub read_message: &'a [bool],
    /// Each group's reset policy in its client's words (`auto.offset.reset = latest,
    /// librdkafka's default`), by group index: why a reset skipped a record.
    pub offset_resets: &'a [String],
}

impl<'a> LifeContext<'a> {
    /// A context without faults or mark rules (hand-built histories).
    pub fn bare(history: &'a History, names: &'a Names) -> LifeContext<'a> {
        LifeContext {
            history,
            names,
            faults: &[],
            marks: &[],
            workers: &[],
            read_message: &[],
            offset_resets: &[],
        }
    }
}

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
    /// Every value sent in that transaction, in send order.
    txn_values: Vec<ValueId>,
    /// When the value entered the history (its first mention, normally its invoke).
    born: Option<Instant>,
    read: bool,
    /// Groups that polled it, and when first.
    first_poll: BTreeMap<u32, Instant>,
    /// The member of each group that polled it first.
    first_poller: BTreeMap<u32, u32>,
}

/// The commit that moved a group's offset past the value.
#[derive(Clone, Debug)]
struct Cover {
    at: Instant,
    /// The committing member's name.
    by: String,
    offset: u64,
}

/// The state the second pass keeps while it walks the history.
#[derive(Default)]
struct Walk {
    high_watermarks: BTreeMap<NodeId, u64>,
    /// Brokers whose log holds the home offset now (appended, not truncated since).
    holders: BTreeSet<NodeId>,
    /// Brokers that once held it and truncated it away.
    removed: BTreeSet<NodeId>,
    /// The generation of each member, from its last assignment.
    generations: BTreeMap<(u32, u32), i32>,
    /// Groups whose committed offset has passed the home offset.
    covered: BTreeSet<u32>,
    /// The commit that first covered it, per group: when, by whom, which offset.
    cover: BTreeMap<u32, Cover>,
    /// Failed commits of the offset just past it by the member that polled it, per group of
    /// `LifeContext::read_message`: how many, and the last error and when.
    dropping_commits: BTreeMap<u32, (u32, ErrorCode, Instant)>,
    /// Groups whose sink (or dead-letter topic) got the value.
    sunk: BTreeSet<u32>,
    before: Option<NearbyRead>,
    after: Option<NearbyRead>,
}

/// The life of `value` as lines, oldest first.
pub fn record_life(cx: &LifeContext, value: ValueId) -> Vec<String> {
    let facts = facts(cx.history, value);
    let Some(born) = facts.born else {
        return vec![format!("v{} does not appear in the history", value.0)];
    };
    let mut lines: Vec<(Instant, String)> = Vec::new();
    let mut walk = Walk::default();
    // When each node started to hold or handle the value: faults before that are not its.
    let mut since: BTreeMap<NodeId, Instant> = BTreeMap::new();
    for entry in cx.history.entries() {
        if let HistoryEvent::Assigned {
            group,
            member,
            generation,
            ..
        } = &entry.event
        {
            walk.generations.insert((*group, *member), *generation);
        }
        let who = cx.names.node(entry.node);
        let text = match facts.home {
            Some(home) if entry.at >= born => {
                note_nearby(entry, home, &mut walk);
                partition_event(cx, entry, home, &facts, &mut walk)
            }
            _ => None,
        };
        let text = text.or_else(|| value_event(cx, entry, value, &facts, &mut walk));
        for text in text.into_iter().chain(derived_mark(cx, entry, value)) {
            // Texts name their actor first; the line's prefix already does when they agree.
            let text = text
                .strip_prefix(&who)
                .and_then(|t| t.strip_prefix(' '))
                .unwrap_or(&text);
            lines.push((entry.at, format!("{} {who}: {text}", entry.at)));
        }
        note_involvement(entry, value, facts.home, &mut since);
    }
    merge_faults(cx, &since, in_flight(cx.history, value), &mut lines);
    let mut out: Vec<String> = lines.into_iter().map(|(_, l)| l).collect();
    if let Some(home) = facts.home.filter(|h| h.acknowledged && !facts.read) {
        out.extend(lost_explanation(cx.names, home, walk.before, walk.after));
    }
    if let Some(home) = facts.home {
        out.extend(sink_explanation(cx, home, &facts, &walk));
    }
    if out.len() > MAX_LINES {
        let more = out.len() - MAX_LINES;
        out.truncate(MAX_LINES);
        out.push(format!(
            "... {more} more lines of this record's story not shown"
        ));
    }
    out
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
                // acks=0: acknowledged without an offset; where it landed, if anywhere, only a
                // read can tell.
                let known = *offset != kafsim_engine::producer::OFFSET_UNKNOWN;
                if known && !facts.home.is_some_and(|h| h.acknowledged) {
                    facts.home = Some(Home {
                        partition: *partition,
                        offset: *offset,
                        acknowledged: true,
                    });
                }
                true
            }
            HistoryEvent::Poll {
                group,
                member,
                value: v,
                partition,
                offset,
                ..
            } if *v == value => {
                facts.read = true;
                facts.first_poll.entry(*group).or_insert(entry.at);
                facts.first_poller.entry(*group).or_insert(*member);
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
    if let Some((producer, txn)) = facts.txn {
        facts.txn_values = history
            .entries()
            .iter()
            .filter_map(|e| match e.event {
                HistoryEvent::TxnValue {
                    producer: p,
                    txn: t,
                    value: v,
                } if (p, t) == (producer, txn) => Some(v),
                _ => None,
            })
            .collect();
    }
    facts
}

/// "v1, v2, v3" (at most 8, then how many more).
fn value_list(values: &[ValueId]) -> String {
    const SHOWN: usize = 8;
    let mut text: Vec<String> = values
        .iter()
        .take(SHOWN)
        .map(|v| format!("v{}", v.0))
        .collect();
    if values.len() > SHOWN {
        text.push(format!("and {} more", values.len() - SHOWN));
    }
    text.join(", ")
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
fn value_event(
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
fn derived_mark(cx: &LifeContext, entry: &HistoryEntry, value: ValueId) -> Option<String> {
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
    let mark = cx.marks.get(group as usize)?;
    let when = match (mark, before) {
        (Mark::BeforeProcess, true) => "at delivery, before processing (mark = before-process)",
        (Mark::AfterProcess, false) => "after its sink write (mark = after-process)",
        _ => return None,
    };
    Some(format!(
        "{} marks offset {offset} {when}: its next commit will say {}",
        cx.names.member(group, member),
        offset + 1
    ))
}

/// A line for a broker or consumer event on the value's partition that concerns its offset.
fn partition_event(
    cx: &LifeContext,
    entry: &HistoryEntry,
    home: Home,
    facts: &Facts,
    walk: &mut Walk,
) -> Option<String> {
    let n = cx.names;
    let (tp, o) = (home.partition, home.offset);
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
            Some(format!(
                "{} owns {} in generation {generation} after a rebalance",
                n.member(*group, *member),
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
            && !walk.sunk.contains(group) =>
        {
            let verdict = if *offset > o {
                "past this record: it will not be read again"
            } else {
                "at or before this record: it will be read again"
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
    history.entries().iter().any(|e| {
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
fn span(base: u64, next: u64) -> String {
    if next == base + 1 {
        format!("at {base}")
    } else {
        format!("{base}..{}", next - 1)
    }
}

/// Notes when a node began to hold or handle the value: its producer at the send, a broker
/// at its append of the offset, a member at its poll of the value.
fn note_involvement(
    entry: &HistoryEntry,
    value: ValueId,
    home: Option<Home>,
    since: &mut BTreeMap<NodeId, Instant>,
) {
    let involved = match &entry.event {
        HistoryEvent::SendInvoke { value: v, .. } | HistoryEvent::Poll { value: v, .. } => {
            *v == value
        }
        HistoryEvent::Appended {
            partition,
            base_offset,
            next_offset,
            ..
        } => home.is_some_and(|h| {
            h.partition == *partition && (*base_offset..*next_offset).contains(&h.offset)
        }),
        _ => false,
    };
    let node = match &entry.event {
        HistoryEvent::Appended { broker, .. } => *broker,
        _ => entry.node,
    };
    if involved {
        since.entry(node).or_insert(entry.at);
    }
}

/// Adds, in time order, the faults that hit a node while it held or handled the value (a
/// fault at the same instant as an event comes after it: the nemesis fires between events).
/// When the value's first send was in flight: from its invoke to its outcome. Any fault in
/// that window may have hit it on the wire or on the broker it was sent to, which the history
/// does not name (an acks=0 record lost in a leader's crash leaves no other trace).
fn in_flight(history: &History, value: ValueId) -> Option<(Instant, Instant)> {
    let mut invoked = None;
    for e in history.entries() {
        match &e.event {
            HistoryEvent::SendInvoke { value: v, .. } if *v == value => {
                invoked.get_or_insert(e.at);
            }
            HistoryEvent::SendOk { value: v, .. }
            | HistoryEvent::SendFail { value: v, .. }
            | HistoryEvent::SendInfo { value: v, .. }
                if *v == value =>
            {
                return invoked.map(|i| (i, e.at));
            }
            _ => {}
        }
    }
    None
}

fn merge_faults(
    cx: &LifeContext,
    since: &BTreeMap<NodeId, Instant>,
    in_flight: Option<(Instant, Instant)>,
    lines: &mut Vec<(Instant, String)>,
) {
    for f in cx.faults {
        let during_send = in_flight.is_some_and(|(from, to)| from <= f.at && f.at <= to);
        let hits = during_send
            || f.nodes()
                .iter()
                .any(|n| since.get(n).is_some_and(|t| *t <= f.at));
        if !hits {
            continue;
        }
        let what = describe(&f.op, &|id| cx.names.node(id));
        let undo = f
            .undo_after
            .map(|d| format!(" (undone after {d:?})"))
            .unwrap_or_default();
        let i = lines.partition_point(|(at, _)| *at <= f.at);
        lines.insert(i, (f.at, format!("{} fault: {what}{undo}", f.at)));
    }
}

/// Remembers the first read of the offset below the value and the first read of the lowest
/// offset above it.
fn note_nearby(entry: &HistoryEntry, home: Home, walk: &mut Walk) {
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
    if offset + 1 == home.offset && walk.before.is_none() {
        walk.before = Some(read);
    }
    if offset > home.offset && walk.after.is_none_or(|a| offset < a.offset) {
        walk.after = Some(read);
    }
}

/// Lines for an acknowledged value no one read: who read around its offset.
fn lost_explanation(
    names: &Names,
    home: Home,
    before: Option<NearbyRead>,
    after: Option<NearbyRead>,
) -> Vec<String> {
    let describe = |r: NearbyRead| {
        format!(
            "{} read by {} at {} (v{})",
            names.at(home.partition, r.offset),
            names.member(r.group, r.member),
            r.at,
            r.value.0
        )
    };
    let mut lines = vec![format!(
        "never read; reads around {}:",
        names.at(home.partition, home.offset)
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

/// For a group that polled the value but never sank it: the one-line reason, when the story
/// shows it: kafka-go's ReadMessage dropped it on a failed commit, or its offset was committed
/// and the partition changed hands (see [`explain_covered`]).
fn sink_explanation(cx: &LifeContext, home: Home, facts: &Facts, walk: &Walk) -> Vec<String> {
    let n = cx.names;
    facts
        .first_poll
        .keys()
        .filter(|g| !walk.sunk.contains(g) && walk.dropping_commits.contains_key(g))
        .map(|g| {
            let (tries, error, at) = walk.dropping_commits[g];
            format!(
                "=> {} polled {at_} but never wrote it to its sink: the commit kafka-go's \
                 ReadMessage makes before handing a record over failed ({tries} attempts, the \
                 last {error:?} at {at}), so ReadMessage returned the error instead of the \
                 record and the reader went on past it",
                n.group(*g),
                at_ = n.at(home.partition, home.offset),
            )
        })
        .chain(explain_covered(cx, home, facts, walk))
        .collect()
}

/// For the groups that committed past the value without sinking it (and did not drop it
/// on a failed ReadMessage commit): the commit, its cause, and the crash that followed.
fn explain_covered<'c>(
    cx: &'c LifeContext,
    home: Home,
    facts: &'c Facts,
    walk: &'c Walk,
) -> impl Iterator<Item = String> + 'c {
    let n = cx.names;
    let at = n.at(home.partition, home.offset);
    facts
        .first_poll
        .keys()
        .filter(|g| {
            !walk.sunk.contains(g)
                && walk.covered.contains(g)
                && !walk.dropping_commits.contains_key(g)
        })
        .map(move |g| {
            let poller = facts.first_poller.get(g).map(|m| n.member(*g, *m));
            let mut why = String::new();
            if let (Some(c), Some(p)) = (walk.cover.get(g), &poller) {
                why = format!(
                    ": {} committed offset {} at {} before {p} had processed it",
                    c.by, c.offset, c.at
                );
                why.push_str(&mark_cause(cx, *g));
                if let Some(t) = stopped_after(cx, p, facts.first_poll[g]) {
                    why.push_str(&format!(", and {p} {t} before processing it"));
                }
            }
            format!(
                "=> {} polled {at} and committed past it, but never wrote it to its sink{why}; \
                 whoever owned the partition next resumed after it",
                n.group(*g),
            )
        })
}

/// Why a group's commit can cover a record it has not processed, from its handler.
fn mark_cause(cx: &LifeContext, group: u32) -> String {
    let workers = cx.workers.get(group as usize).copied().unwrap_or(1);
    match cx.marks.get(group as usize) {
        Some(Mark::BeforeProcess) => {
            " (mark = before-process: a record is marked when it is handed over)".to_string()
        }
        Some(Mark::AfterProcess) if workers >= 2 => format!(
            " (workers = {workers}: each worker marks the records it finished, and a \
             partition's mark is the highest of them, so it passes records still queued for a \
             slower worker)"
        ),
        _ => String::new(),
    }
}

/// The first crash, power loss or pause of the member named `member` after `since`, as
/// "crashed at T".
fn stopped_after(cx: &LifeContext, member: &str, since: Instant) -> Option<String> {
    cx.faults.iter().find_map(|f| {
        let what = match &f.op {
            Op::Crash(nodes) | Op::PowerLoss { nodes, .. } => (nodes, "crashed"),
            _ => return None,
        };
        (f.at > since && what.0.iter().any(|node| cx.names.node(*node) == member))
            .then(|| format!("{} at {}", what.1, f.at))
    })
}

#[cfg(test)]
mod tests {
    use super::{record_life, LifeContext};
    use crate::checker::test_support::*;
    use crate::history::History;
    use crate::names::Names;
    use crate::nemesis::{AppliedFault, Op};
    use crate::scenario::FaultKind;
    use kafsim_engine::app::Mark;
    use kafsim_engine::history::{HistoryEvent, ResetCause};
    use kafsim_engine::protocol::ErrorCode;
    use kafsim_engine::{Instant, NodeId, TopicId, TopicPartition};

    fn names() -> Names {
        let mut n = Names::new();
        n.set_node(NodeId(0), "producer-0");
        n.set_node(NodeId(1), "broker-0");
        n.set_node(NodeId(2), "broker-1");
        n.set_node(NodeId(3), "billing/0");
        n.set_topic(TopicId(0), "orders");
        n.set_group(0, "billing");
        n
    }

    fn appended(broker: u32, base: u64, next: u64, leader: bool) -> HistoryEvent {
        HistoryEvent::Appended {
            broker: NodeId(broker),
            partition: tp(0),
            leader_epoch: 1,
            base_offset: base,
            next_offset: next,
            leader,
        }
    }

    /// v2 acknowledged at orders/0@1 by broker-0, which then lost leadership to broker-1
    /// (whose log ends at 1) and truncated; the group read 0 and then 2.
    fn lost_story() -> Story {
        let mut s = Story::new();
        s.send(1, 0, 1, 0, 0).invoke(2, 0, 2, Some(5));
        s.event(2, appended(1, 1, 3, true));
        let hw = |high_watermark| HistoryEvent::HighWatermark {
            broker: NodeId(1),
            partition: tp(0),
            leader_epoch: 1,
            high_watermark,
        };
        s.event(2, hw(1));
        s.event(3, hw(2));
        s.ok(3, 0, 2, 0, 1);
        s.event(3, hw(3)); // already past: no line
        s.event(
            4,
            HistoryEvent::BecameLeader {
                broker: NodeId(2),
                partition: tp(0),
                leader_epoch: 2,
                log_end_offset: 1,
            },
        );
        s.event(
            5,
            HistoryEvent::Truncated {
                broker: NodeId(1),
                partition: tp(0),
                offset: 1,
                reason: "diverging epoch",
            },
        );
        s.event(
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

    /// A reset past an unread record names its cause and the group's policy in the client's
    /// words; a seek by the application says so instead.
    #[test]
    fn a_reset_past_a_record_names_its_cause_and_the_reset_policy() {
        let reset = |at, offset, cause| {
            (
                at,
                HistoryEvent::PositionReset {
                    group: 0,
                    member: 0,
                    partition: tp(0),
                    offset,
                    cause,
                },
            )
        };
        let mut s = Story::new();
        s.send(1, 0, 1, 0, 0);
        for (at, e) in [
            reset(2, 1, ResetCause::NoCommittedOffset),
            reset(3, 1, ResetCause::OutOfRange),
            reset(4, 1, ResetCause::Seek),
            reset(5, 0, ResetCause::NoCommittedOffset),
        ] {
            s.event(at, e);
        }
        let names = names();
        let policy = ["auto.offset.reset = latest (librdkafka's default)".to_string()];
        let cx = LifeContext {
            offset_resets: &policy,
            ..LifeContext::bare(s.history(), &names)
        };
        let lines = record_life(&cx, v(1));
        let resets: Vec<&str> = (lines.iter())
            .filter(|l| l.contains("reset its position"))
            .map(|l| l.split_once(": ").map_or(l.as_str(), |(_, rest)| rest))
            .collect();
        assert_eq!(
            resets,
            [
                "billing/0 reset its position of orders/0 to 1, past this record: the group had no \
                 committed offset for it, and auto.offset.reset = latest (librdkafka's default)",
                "billing/0 reset its position of orders/0 to 1, past this record: its position was out of \
                 range (OffsetOutOfRange), and auto.offset.reset = latest (librdkafka's default)",
                "billing/0 reset its position of orders/0 to 1, past this record: the application sought \
                 there",
            ],
            "{lines:#?}"
        );
    }

    #[test]
    fn a_lost_value_shows_its_append_truncation_and_the_reads_around_it() {
        let (story, names) = (lost_story(), names());
        let lines = record_life(&LifeContext::bare(story.history(), &names), v(2));
        let expected = [
            "2.000ms producer-0: sends v2 (key 5) to topic orders",
            "2.000ms producer-0: broker-0 appended the batch 1..2 as leader in epoch 1: offset 1",
            "3.000ms producer-0: high watermark on broker-0 (epoch 1) passed offset 1: now 2",
            "3.000ms producer-0: got its acknowledgement: orders/0@1",
            "4.000ms producer-0: broker-1 became leader of orders/0 in epoch 2 with log end 1 \
             (has nothing at offset 1)",
            "5.000ms producer-0: broker-0 truncated its log of orders/0 to 1 (diverging epoch): \
             offset 1 is gone from it",
            "never read; reads around orders/0@1:",
            "  before: orders/0@0 read by billing/1 at 7.000ms (v1)",
            "  next higher offset read: orders/0@2 read by billing/1 at 8.000ms (v4)",
        ];
        // The story records every event from node 0 (producer-0); the text names the actor.
        assert_eq!(lines, expected, "{lines:#?}");
    }

    /// An acks=0 send has no offset: the story never prints the sentinel, and the crash of a
    /// broker while the send was in flight is in it (the history cannot name the broker the
    /// record went to); a fault after the acknowledgement on an uninvolved node is not.
    #[test]
    fn an_acks0_loss_shows_the_fault_that_hit_it_in_flight_and_no_sentinel_offset() {
        let mut s = Story::new();
        s.invoke(10, 0, 9, None)
            .ok(15, 0, 9, 0, kafsim_engine::producer::OFFSET_UNKNOWN);
        let history = s.history().clone();
        let names = names();
        let crash = |ms, node| AppliedFault {
            at: Instant::from_millis(ms),
            kind: Some(FaultKind::Crash),
            op: Op::Crash(vec![NodeId(node)]),
            undo_after: None,
        };
        let faults = [crash(12, 1), crash(30, 2)];
        let cx = LifeContext {
            history: &history,
            names: &names,
            faults: &faults,
            marks: &[],
            workers: &[],
            read_message: &[],
            offset_resets: &[],
        };
        let lines = record_life(&cx, v(9));
        assert_eq!(
            lines,
            [
                "10.000ms producer-0: sends v9 (key none) to topic orders",
                "12.000ms fault: crash broker-0",
                "15.000ms producer-0: got its acknowledgement: orders/0 (no offset: acks=0)",
            ],
            "{lines:#?}"
        );
    }

    /// A value sent in a transaction: its story says how the transaction ended and which
    /// values it held (replay's "committed transaction T of producer P with values ...").
    #[test]
    fn a_transactional_value_tells_how_its_transaction_ended_and_what_it_held() {
        let names = names();
        for (commit, word) in [(true, "committed"), (false, "aborted")] {
            let mut s = Story::new();
            s.txn_value(1, 0, 7, 1).send(1, 0, 1, 0, 0);
            s.txn_value(2, 0, 7, 2).send(2, 0, 2, 0, 1);
            s.txn_value(2, 0, 8, 3).send(2, 0, 3, 0, 2);
            if commit {
                s.txn_commit(3, 0, 7);
            } else {
                s.txn_abort(3, 0, 7);
            }
            let history = s.history().clone();
            let lines = record_life(&LifeContext::bare(&history, &names), v(2));
            let want = format!(
                "3.000ms producer-0: {word} transaction 7 of producer-0 with values v1, v2"
            );
            assert!(lines.contains(&want), "{lines:#?}");
        }
    }

    /// A commit the coordinator stored is in the story even when its answer never reached the
    /// member (lost in its crash); with the member's own successful `Commit`, the story says
    /// nothing of a lost answer and does not repeat the commit.
    #[test]
    fn a_commit_stored_by_the_coordinator_covers_the_record_and_says_whether_it_was_answered() {
        let story_of = |answered: bool| {
            let mut s = Story::new();
            s.send(1, 0, 7, 0, 5);
            s.poll(10, 0, 0, 0, 5, 7);
            s.event(
                12,
                HistoryEvent::OffsetsStored {
                    group: "billing".into(),
                    member: NodeId(3),
                    generation: 3,
                    partition: tp(0),
                    offset: 6,
                },
            );
            if answered {
                s.event(
                    13,
                    HistoryEvent::Commit {
                        group: 0,
                        member: 0,
                        generation: 3,
                        partition: tp(0),
                        offset: 6,
                        error: ErrorCode::None,
                    },
                );
            }
            let names = names();
            record_life(&LifeContext::bare(s.history(), &names), v(7))
        };
        let covering = |lines: &[String]| {
            lines
                .iter()
                .filter(|l| l.contains("which covers offset 5"))
                .cloned()
                .collect::<Vec<_>>()
        };
        let lost = covering(&story_of(false));
        assert_eq!(
            lost,
            [
                "12.000ms producer-0: as coordinator of billing, stored billing/0's commit of \
              orders/0 offset 6 (generation 3), which covers offset 5: billing will not read it \
              again; its answer never reached billing/0"
            ],
        );
        let heard = covering(&story_of(true));
        assert_eq!(heard.len(), 1, "{heard:#?}");
        assert!(!heard[0].contains("never reached"), "{heard:#?}");
    }

    /// A zombie's sink-duplicate (consume-transform-produce): billing/0 polls v7 in
    /// generation 3, billing/1 takes the partition in generation 4 and commits past it; then
    /// billing/0 commits in generation 3 (its offsets carried no generation, so they were
    /// accepted), and the final read finds two outputs of v7. The story names the zombie's
    /// commit and both outputs, and does not call the value unwritten.
    #[test]
    fn a_zombies_duplicate_names_its_stale_commit_and_both_outputs() {
        let mut s = Story::new();
        s.send(1, 0, 7, 0, 5);
        let assigned = |member, generation| HistoryEvent::Assigned {
            group: 0,
            member,
            generation,
            partitions: vec![tp(0)],
        };
        let commit = |member, generation, offset| HistoryEvent::Commit {
            group: 0,
            member,
            generation,
            partition: tp(0),
            offset,
            error: ErrorCode::None,
        };
        let output = |offset| HistoryEvent::OutputRecord {
            group: 0,
            partition: TopicPartition::new(TopicId(1), 0),
            offset,
            value: v(7),
        };
        s.event(2, assigned(0, 3));
        s.poll(10, 0, 0, 0, 5, 7);
        s.event(20, assigned(1, 4));
        s.event(22, commit(1, 4, 9));
        s.event(30, commit(0, 3, 6));
        s.event(40, output(0));
        s.event(40, output(1));
        let history = s.history();
        let mut names = names();
        names.set_topic(TopicId(1), "invoices");
        let cx = LifeContext {
            history,
            names: &names,
            faults: &[],
            marks: &[Mark::AfterProcess],
            workers: &[],
            read_message: &[],
            offset_resets: &[],
        };
        let lines = record_life(&cx, v(7));
        let texts: Vec<&str> = lines
            .iter()
            .map(|l| l.split_once(": ").map_or(l.as_str(), |(_, t)| t))
            .collect();
        let zombie = "committed orders/0 offset 6 in generation 3, though the group is in \
                      generation 4: a zombie's commit, accepted";
        assert!(texts.iter().any(|t| t.ends_with(zombie)), "{lines:#?}");
        for at in ["invoices/0@0", "invoices/0@1"] {
            let found =
                format!("the final read found an output of it that billing committed, at {at}");
            assert!(texts.iter().any(|t| t.ends_with(&found)), "{lines:#?}");
        }
        assert!(
            !texts
                .iter()
                .any(|t| t.contains("never wrote it to its sink")),
            "{lines:#?}"
        );
        // A commit in the group's current generation is no zombie's.
        assert_eq!(
            texts.iter().filter(|t| t.contains("zombie")).count(),
            1,
            "{lines:#?}"
        );
    }

    /// The consumer side of a sink-loss: billing/0 polls v7 at orders/0@5, marks it before
    /// processing, its auto-commit covers offset 5, it crashes before the sink write, and
    /// billing/1 takes the partition over and resumes at 6.
    fn sink_loss_lines(marks: &[Mark], workers: &[u32]) -> Vec<String> {
        let mut s = Story::new();
        s.send(1, 0, 7, 0, 5);
        s.event(
            2,
            HistoryEvent::Assigned {
                group: 0,
                member: 0,
                generation: 3,
                partitions: vec![tp(0)],
            },
        );
        s.poll(10, 0, 0, 0, 5, 7);
        let commit = |member, generation, offset, error| HistoryEvent::Commit {
            group: 0,
            member,
            generation,
            partition: tp(0),
            offset,
            error,
        };
        s.event(11, commit(0, 3, 6, ErrorCode::RebalanceInProgress)); // failed: no line
        s.event(12, commit(0, 3, 6, ErrorCode::None));
        s.event(13, commit(0, 3, 7, ErrorCode::None)); // already covered: no line
        s.event(
            20,
            HistoryEvent::Assigned {
                group: 0,
                member: 1,
                generation: 4,
                partitions: vec![tp(0)],
            },
        );
        s.event(
            21,
            HistoryEvent::Resumed {
                group: 0,
                member: 1,
                generation: 4,
                partition: tp(0),
                offset: 6,
            },
        );
        // The consumer's events come from billing/0's node.
        let history: History = s
            .history()
            .entries()
            .iter()
            .cloned()
            .map(|mut e| {
                if matches!(
                    e.event,
                    HistoryEvent::Poll { .. } | HistoryEvent::Commit { .. }
                ) {
                    e.node = NodeId(3);
                }
                e
            })
            .collect();
        let names = names();
        let faults = [AppliedFault {
            at: Instant::from_millis(15),
            kind: Some(FaultKind::ConsumerCrash),
            op: Op::Crash(vec![NodeId(3)]),
            undo_after: None,
        }];
        let cx = LifeContext {
            history: &history,
            names: &names,
            faults: &faults,
            marks,
            workers,
            read_message: &[false],
            offset_resets: &[],
        };
        record_life(&cx, v(7))
    }

    #[test]
    fn a_sink_loss_tells_mark_commit_crash_rebalance_and_resume_in_time_order() {
        let lines = sink_loss_lines(&[Mark::BeforeProcess], &[1]);
        let texts: Vec<&str> = lines
            .iter()
            .map(|l| match l.starts_with("=>") {
                true => l.as_str(),
                false => l.split_once(": ").map_or(l.as_str(), |(_, t)| t),
            })
            .collect();
        let expected = [
            "sends v7 (key none) to topic orders",
            "got its acknowledgement: orders/0@5",
            "polled it (generation 3) at orders/0@5",
            "marks offset 5 at delivery, before processing (mark = before-process): its next \
             commit will say 6",
            "committed orders/0 offset 6 (generation 3), which covers offset 5: billing will not \
             read it again",
            "crash billing/0",
            "billing/1 owns orders/0 in generation 4 after a rebalance",
            "billing/1 resumed orders/0 in generation 4 at the committed offset 6, past this \
             record: it will not be read again",
            "=> billing polled orders/0@5 and committed past it, but never wrote it to its \
             sink: billing/0 committed offset 6 at 12.000ms before billing/0 had processed it \
             (mark = before-process: a record is marked when it is handed over), and billing/0 \
             crashed at 15.000ms before processing it; whoever owned the partition next resumed \
             after it",
        ];
        assert_eq!(texts, expected, "{lines:#?}");
        assert!(lines[5].starts_with("15.000ms fault: crash"), "{lines:#?}");
    }

    /// A worker pool that marks after processing: the cause is the pool's out-of-order marks.
    #[test]
    fn a_worker_pool_sink_loss_names_the_out_of_order_mark() {
        let lines = sink_loss_lines(&[Mark::AfterProcess], &[4]);
        let last = lines.last().expect("an explanation");
        assert!(
            last.contains(
                "billing/0 committed offset 6 at 12.000ms before billing/0 had processed it \
                 (workers = 4: each worker marks the records it finished, and a partition's \
                 mark is the highest of them, so it passes records still queued for a slower \
                 worker), and billing/0 crashed at 15.000ms before processing it"
            ),
            "{lines:#?}"
        );
        // The poll loop itself marking after processing gives no such cause.
        let lines = sink_loss_lines(&[Mark::AfterProcess], &[1]);
        let last = lines.last().expect("an explanation");
        assert!(!last.contains("workers"), "{lines:#?}");
        assert!(last.contains("before billing/0 had processed it, and billing/0 crashed"));
    }

    #[test]
    fn a_sunk_value_has_no_loss_explanation_and_an_unknown_one_says_so() {
        let mut s = lost_story();
        s.poll(10, 1, 0, 0, 1, 2)
            .sink(11, 1, 0, 1, 2)
            .dead_letter(12, 1, 2);
        let names = names();
        let cx = LifeContext::bare(s.history(), &names);
        let lines = record_life(&cx, v(2));
        assert!(
            !lines
                .iter()
                .any(|l| l.contains("never read") || l.contains("=>")),
            "{lines:#?}"
        );
        assert!(
            lines[lines.len() - 3].ends_with("group-1/0 polled it (no assignment) at orders/0@1")
        );
        assert!(lines[lines.len() - 2].contains("group-1/0 wrote it to the sink of group-1"));
        assert!(lines[lines.len() - 1].contains("group-1/0 sent it to the dead-letter topic"));
        assert_eq!(
            record_life(&cx, v(99)),
            vec!["v99 does not appear in the history".to_string()]
        );
    }
}
