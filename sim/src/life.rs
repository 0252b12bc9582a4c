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
//!
//! The lines themselves, one per history event, are written in [`events`]; this file gathers
//! the facts and explains losses.

mod copies;
mod events;
use copies::{copies_explanation, copy_event, Copies};
use events::{derived_mark, partition_event, value_event};

use crate::history::{History, HistoryEntry};
use crate::names::Names;
use crate::nemesis::{describe, AppliedFault, Op};
use kafsim_engine::consumer::consume_loop::{MarkAt, MarkRule};
use kafsim_engine::history::HistoryEvent;
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
    /// Where each group's consume loop marks offsets and why, by group index.
    pub marks: &'a [MarkRule],
    /// Each group's handler `workers` (1: the poll loop processes), by group index.
    pub workers: &'a [u32],
    /// Groups whose client commits each record before the application gets it (kafka-go's
    /// `ReadMessage`), so that a failed commit drops the record, by group index.
    pub read_message: &'a [bool],
    /// Each group's reset policy in its client's words (`auto.offset.reset = latest
    /// (librdkafka's default)`), by group index: why a reset skipped a record.
    pub offset_resets: &'a [String],
    /// Each producer's idempotence in the user's words (`ProducerConfig::idempotence_words`),
    /// by producer index: why a retried batch became a second copy.
    pub idempotence: &'a [String],
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
            idempotence: &[],
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
    /// Where it is in its own topic, its producer and its sends ([`copies`]).
    copies: Copies,
    /// Where each group first read it. A group reading it in another topic (the output of a
    /// consume-transform-produce, which carries its input's id) has its own position there.
    read_positions: BTreeMap<u32, (TopicPartition, u64)>,
}

/// The commit that moved a group's offset past the value.
#[derive(Clone, Debug)]
struct Cover {
    at: Instant,
    /// The committing member's name.
    by: String,
    offset: u64,
}

/// A group's failed commits that would have covered the value.
#[derive(Clone, Debug)]
struct FailedCovers {
    count: u32,
    first: Instant,
    last: Instant,
    error: ErrorCode,
    /// The member that made the first of them.
    by: String,
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
    /// Failed commits that would have covered the value, per group, until one covers it:
    /// why a later owner reads it again.
    failed_covers: BTreeMap<u32, FailedCovers>,
    /// Groups whose sink (or dead-letter topic) got the value.
    sunk: BTreeSet<u32>,
    before: Option<NearbyRead>,
    after: Option<NearbyRead>,
    /// The leader appends that made each copy of the value ([`copies`]).
    copy_appends: copies::Appends,
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
        // Every event goes through the copies' bookkeeping, the home's own append included.
        let copy_line = copy_event(cx, entry, value, &facts, &mut walk);
        let text = match facts.home {
            Some(home) if entry.at >= born => {
                note_nearby(entry, home, &mut walk);
                partition_event(cx, entry, home, &facts, &mut walk)
            }
            _ => None,
        };
        let text = text
            .or(copy_line)
            .or_else(|| value_event(cx, entry, value, &facts, &mut walk));
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
    // The events are cut at one screen; the explanations after them always stay.
    if out.len() > MAX_LINES {
        let more = out.len() - MAX_LINES;
        out.truncate(MAX_LINES);
        out.push(format!(
            "... {more} more lines of this record's story not shown"
        ));
    }
    if let Some(home) = facts.home.filter(|h| h.acknowledged && !facts.read) {
        out.extend(lost_explanation(cx.names, home, walk.before, walk.after));
    }
    if let Some(home) = facts.home {
        out.extend(sink_explanation(cx, home, &facts, &walk));
    }
    out.extend(copies_explanation(
        cx,
        value,
        &facts.copies,
        &walk.copy_appends,
    ));
    out
}

fn facts(history: &History, value: ValueId) -> Facts {
    let mut facts = Facts::default();
    for entry in history.entries() {
        let mentions = match &entry.event {
            HistoryEvent::SendInvoke {
                value: v,
                producer,
                topic,
                ..
            } if *v == value => {
                facts.copies.note_send(*producer, *topic);
                true
            }
            HistoryEvent::SendOk {
                value: v,
                partition,
                offset,
                ..
            } if *v == value => {
                // acks=0: acknowledged without an offset; where it landed, if anywhere, only a
                // read can tell.
                let known = *offset != kafsim_engine::producer::OFFSET_UNKNOWN;
                if known {
                    facts.copies.note_position(*partition, *offset);
                }
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
                facts.copies.note_position(*partition, *offset);
                facts.first_poll.entry(*group).or_insert(entry.at);
                facts.first_poller.entry(*group).or_insert(*member);
                facts
                    .read_positions
                    .entry(*group)
                    .or_insert((*partition, *offset));
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
        // A node is in the story once it shows up in it, every node while the send travels
        // (it may be lost on the wire or on the broker it went to).
        let involved = |n: NodeId| during_send || since.get(&n).is_some_and(|t| *t <= f.at);
        if !touches(&f.op, &involved, &|n| {
            let name = cx.names.node(n);
            name.starts_with("broker-") || name.starts_with("controller-")
        }) {
            continue;
        }
        let what = describe(&f.op, &|id| cx.names.node(id));
        let undo = f
            .undo_after
            .map(|d| format!(" (undone after {})", crate::scenario::format_span(d)))
            .unwrap_or_default();
        let i = lines.partition_point(|(at, _)| *at <= f.at);
        lines.insert(i, (f.at, format!("{} fault: {what}{undo}{}", f.at, f.note)));
    }
}

/// Whether fault `op` can have changed what the story's nodes (`involved`) did: it stopped or
/// slowed one of them, or its partition cut two of them apart. A partition that isolates some
/// other client leaves everyone in the story on one side: it is not part of this story (a
/// run with ten producers would otherwise list the other nine's outages).
/// For a partition, the cluster's own nodes (`cluster`) count as in the story: a partition
/// among them moves leaders and high watermarks for every record.
fn touches(op: &Op, involved: &dyn Fn(NodeId) -> bool, cluster: &dyn Fn(NodeId) -> bool) -> bool {
    let any = |nodes: &[NodeId]| nodes.iter().any(|n| involved(*n));
    let side = |nodes: &[NodeId]| nodes.iter().any(|n| involved(*n) || cluster(*n));
    match op {
        Op::Partition(groups) => groups.iter().filter(|g| side(g)).count() >= 2,
        Op::PartitionOneWay(a, b) | Op::Bridge { a, b, .. } => side(a) && side(b),
        Op::Lift(op) => touches(op, involved, cluster),
        other => any(&crate::nemesis::op_nodes(other)),
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
    let Some(rule) = cx.marks.get(group as usize) else {
        return String::new();
    };
    match rule.at {
        MarkAt::Delivery => format!(" ({}: a record is marked when it is handed over)", rule.why),
        MarkAt::ProcessStart => format!(
            " ({}: a record is marked when its loop takes it up, before processing it)",
            rule.why
        ),
        MarkAt::ProcessEnd if workers >= 2 => format!(
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
mod tests;
