//! The trace hash: every event the kernel dispatches and every history fact a node records
//! folds into one [`TraceHasher`], so one seed gives one hash and a change of behaviour shows
//! as a changed hash (the golden pins of `tests/all/trace_pins.rs`). What goes in is chosen to be
//! canonical: numbers and identities, never a map's order or an address.

use super::World;
use crate::trace::TraceHasher;
use kafsim_engine::history::HistoryEvent;
use kafsim_engine::NodeId;

impl World {
    pub(super) fn hash_event(&mut self, kind: u64, node: NodeId, from: Option<NodeId>, extra: u64) {
        let h = &mut self.hasher;
        h.word(self.now.as_nanos());
        h.word(kind);
        h.word(node.0 as u64);
        h.word(from.map_or(u64::MAX, |f| f.0 as u64));
        h.word(extra);
    }
}

/// Canonical hash of a history event: the fields that identify it, not its Debug text.
pub(super) fn hash_history(h: &mut TraceHasher, event: &HistoryEvent) {
    use HistoryEvent::*;
    let tp = |h: &mut TraceHasher, p: &kafsim_engine::TopicPartition| {
        h.word(((p.topic.0 as u64) << 32) | p.partition as u64);
    };
    match event {
        SendInvoke {
            producer, value, ..
        } => {
            h.word(100 + *producer as u64);
            h.word(value.0);
        }
        SendOk {
            value,
            partition,
            offset,
            ..
        } => {
            h.word(101);
            h.word(value.0);
            tp(h, partition);
            h.word(*offset);
        }
        SendFail { value, .. } => {
            h.word(102);
            h.word(value.0);
        }
        SendInfo { value, .. } => {
            h.word(103);
            h.word(value.0);
        }
        Poll {
            group,
            member,
            partition,
            offset,
            value,
            ..
        } => {
            h.word(104 + ((*group as u64) << 16) + ((*member as u64) << 32));
            tp(h, partition);
            h.word(*offset);
            h.word(value.0);
        }
        SinkWrite {
            group,
            value,
            offset,
            ..
        } => {
            h.word(105 + ((*group as u64) << 16));
            h.word(value.0);
            h.word(*offset);
        }
        SinkRefused {
            group,
            value,
            offset,
            ..
        } => {
            h.word(117 + ((*group as u64) << 16));
            h.word(value.0);
            h.word(*offset);
        }
        Commit {
            group,
            member,
            partition,
            offset,
            ..
        } => {
            h.word(106 + ((*group as u64) << 16) + ((*member as u64) << 32));
            tp(h, partition);
            h.word(*offset);
        }
        HighWatermark {
            broker,
            partition,
            high_watermark,
            ..
        } => {
            h.word(107 + ((broker.0 as u64) << 16));
            tp(h, partition);
            h.word(*high_watermark);
        }
        Appended {
            broker,
            partition,
            base_offset,
            next_offset,
            leader,
            ..
        } => {
            h.word(108 + ((broker.0 as u64) << 16) + ((*leader as u64) << 8));
            tp(h, partition);
            h.word(*base_offset);
            h.word(*next_offset);
        }
        other => {
            // Rare events: their Debug text is canonical enough (no addresses, no maps).
            h.str(&format!("{other:?}"));
        }
    }
}
