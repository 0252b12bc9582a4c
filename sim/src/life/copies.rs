//! A value found more than once in its own topic (a `duplicate`, and the `sink-duplicate` a
//! service makes of it): the leader append that made each copy, and why there can be more
//! than one. A copy of a value the application sent once is its client's retry of a batch
//! whose produce request went unanswered (a timeout, a closed connection): the first request
//! may still have been appended. Only an idempotent producer lets the leader recognize the
//! retry (Kafka's `ProducerStateManager` checks the batch's producer id, epoch and sequence
//! against the last five batches of that producer), which is why the sum-up names the
//! producer's idempotence in the user's words.

use super::{LifeContext, Walk};
use crate::history::HistoryEntry;
use kafsim_engine::history::HistoryEvent;
use kafsim_engine::{Instant, NodeId, TopicId, TopicPartition, ValueId};
use std::collections::{BTreeMap, BTreeSet};

/// What the first pass learns: the value's producer and topic, how often the application
/// handed it over, and every position where it was acknowledged or read in that topic
/// (positions in other topics are a consume-transform-produce output or a dead letter that
/// carries its id, not copies).
#[derive(Default)]
pub(super) struct Copies {
    producer: Option<u32>,
    topic: Option<TopicId>,
    sends: u32,
    positions: BTreeSet<(TopicPartition, u64)>,
}

impl Copies {
    pub(super) fn note_send(&mut self, producer: u32, topic: TopicId) {
        self.producer.get_or_insert(producer);
        self.topic.get_or_insert(topic);
        self.sends += 1;
    }

    pub(super) fn note_position(&mut self, partition: TopicPartition, offset: u64) {
        if self.topic == Some(partition.topic) {
            self.positions.insert((partition, offset));
        }
    }

    fn several(&self) -> bool {
        self.positions.len() >= 2
    }
}

/// The leader append that made one copy.
#[derive(Clone, Copy)]
struct Append {
    at: Instant,
    broker: NodeId,
    leader_epoch: u32,
}

/// For each position: the last leader append there so far, and whether the copy was seen
/// (acknowledged or read) after it, which fixes the append as the one that made it.
#[derive(Default)]
pub(super) struct Appends {
    last: BTreeMap<(TopicPartition, u64), Append>,
    fixed: BTreeMap<(TopicPartition, u64), Append>,
}

/// A line for a leader append at a position where a copy of the value is found, other than
/// the value's home (whose append the partition's own lines tell); and, silently, the
/// bookkeeping that pairs each copy with its append.
pub(super) fn copy_event(
    cx: &LifeContext,
    entry: &HistoryEntry,
    value: ValueId,
    facts: &super::Facts,
    walk: &mut Walk,
) -> Option<String> {
    let copies = &facts.copies;
    if !copies.several() {
        return None;
    }
    match &entry.event {
        HistoryEvent::Appended {
            broker,
            partition,
            leader_epoch,
            base_offset,
            next_offset,
            leader: true,
        } => {
            let append = Append {
                at: entry.at,
                broker: *broker,
                leader_epoch: *leader_epoch,
            };
            let mut line = None;
            for (tp, o) in copies
                .positions
                .range((*partition, *base_offset)..(*partition, *next_offset))
            {
                walk.copy_appends.last.insert((*tp, *o), append);
                let home = facts.home.map(|h| (h.partition, h.offset));
                if home != Some((*tp, *o)) && line.is_none() {
                    line = Some(format!(
                        "{} appended the batch {} as leader in epoch {leader_epoch}: offset {o}, \
                         where another copy of this value is found",
                        cx.names.node(*broker),
                        super::events::span(*base_offset, *next_offset)
                    ));
                }
            }
            line
        }
        other => {
            // An acknowledgement or a read of a copy fixes the append that made it.
            let (v, partition, offset) = other.value_position()?;
            if v == value {
                let key = (partition, offset);
                if let Some(a) = walk.copy_appends.last.get(&key) {
                    walk.copy_appends.fixed.entry(key).or_insert(*a);
                }
            }
            None
        }
    }
}

/// The sum-up of a value found more than once in its topic: each copy with the append that
/// made it, and why a retry could become a copy.
pub(super) fn copies_explanation(
    cx: &LifeContext,
    value: ValueId,
    copies: &Copies,
    appends: &Appends,
) -> Option<String> {
    if !copies.several() {
        return None;
    }
    let n = cx.names;
    let places: Vec<String> = copies
        .positions
        .iter()
        .map(|&(tp, o)| match appends.fixed.get(&(tp, o)) {
            Some(a) => format!(
                "{} (appended by {} in epoch {} at {})",
                n.at(tp, o),
                n.node(a.broker),
                a.leader_epoch,
                a.at
            ),
            None => n.at(tp, o),
        })
        .collect();
    let topic = copies.topic.map(|t| n.topic(t)).unwrap_or_default();
    let producer = copies.producer.map(|p| n.producer(p)).unwrap_or_default();
    let why = if copies.sends <= 1 {
        format!(
            "{producer}'s application sent it once: each copy after the first is its client's \
             retry of the batch, sent because the request before it went unanswered (a timeout \
             or a closed connection) although the leader had appended it"
        )
    } else {
        format!(
            "{producer}'s application sent it {} times (it sends a value again after a send \
             that ended without an acknowledgement), and its client may also have retried a \
             batch whose request went unanswered",
            copies.sends
        )
    };
    let idempotence = copies
        .producer
        .and_then(|p| cx.idempotence.get(p as usize))
        .map(|words| {
            if words == "idempotent" {
                format!(
                    "; {producer} is idempotent, yet the leader took a copy for a new batch: \
                     sequence numbers start again with a new producer id or epoch (a restart, \
                     InitProducerId, an epoch bump), and a leader remembers only a producer's \
                     last five batches"
                )
            } else {
                format!(
                    "; {producer} is {words}, so the leader cannot tell a retried batch from a \
                     new one"
                )
            }
        })
        .unwrap_or_default();
    Some(format!(
        "=> v{} is in {topic} {} times: {}. {why}{idempotence}",
        value.0,
        copies.positions.len(),
        places.join(", ")
    ))
}
