//! The service's sink (its database), kept on the consumer's disk as `FileId::Named("sink")`
//! and fsynced, so a consumer process crash keeps it. Sink-loss, sink-duplicate and key-order
//! are judged on its writes (`SinkWrite` history events).
//!
//! Each member has its own sink file (nodes share no disk). A de-duplicating sink therefore
//! de-duplicates what *this* member wrote, and an offsets-in-sink member resumes from the larger
//! of its sink's offset and the group's committed offset (the committed offset stands for the
//! progress other members stored in theirs). A sink shared by the whole group would need a
//! database node; that is future work.

use super::{Delivered, SinkKind};
use crate::node::{Cx, DiskData, DiskEntry, FileId};
use crate::record::{TopicPartition, ValueId};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

pub const SINK_FILE: FileId = FileId::Named("sink");
/// Modelled bytes of one sink row.
const ROW_BYTES: u32 = 64;
/// Fsync token of the sink file.
pub const SINK_FSYNC_TOKEN: u64 = 0x51_4b;

/// One row of the sink file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SinkRow {
    pub value: ValueId,
    pub partition: TopicPartition,
    pub offset: u64,
}

#[derive(Debug)]
pub struct Sink {
    kind: SinkKind,
    /// Values written (dedupe sink only).
    written: BTreeSet<ValueId>,
    /// Next offset per partition stored with the results (offsets-in-sink only).
    offsets: BTreeMap<TopicPartition, u64>,
    fsync_pending: bool,
    rows: u64,
}

impl Sink {
    pub fn new(kind: SinkKind) -> Sink {
        Sink {
            kind,
            written: BTreeSet::new(),
            offsets: BTreeMap::new(),
            fsync_pending: false,
            rows: 0,
        }
    }

    /// Rebuild the dedupe set and stored offsets from what the disk kept (a torn last row is cut).
    pub fn recover(&mut self, cx: &mut Cx) {
        let entries = cx.disk().read(SINK_FILE).to_vec();
        let valid = entries.iter().take_while(|e| !e.torn).count();
        if valid < entries.len() {
            cx.disk().truncate(SINK_FILE, valid);
        }
        for entry in &entries[..valid] {
            let DiskData::Blob(blob) = &entry.data else {
                panic!("{}: sink file holds a non-row entry", cx.me());
            };
            let row = blob
                .downcast_ref::<SinkRow>()
                .unwrap_or_else(|| panic!("{}: sink file holds a foreign blob", cx.me()));
            self.note(row);
        }
    }

    fn note(&mut self, row: &SinkRow) {
        self.rows += 1;
        match self.kind {
            SinkKind::Plain => {}
            SinkKind::Dedupe => {
                self.written.insert(row.value);
            }
            SinkKind::OffsetsInSink => {
                let next = self.offsets.entry(row.partition).or_insert(0);
                *next = (*next).max(row.offset + 1);
                self.written.insert(row.value);
            }
        }
    }

    /// Whether a write of `rec` would be dropped (already stored).
    pub fn has(&self, rec: &Delivered) -> bool {
        match self.kind {
            SinkKind::Plain => false,
            SinkKind::Dedupe | SinkKind::OffsetsInSink => self.written.contains(&rec.value),
        }
    }

    /// Store the result of `rec`; returns false when the sink already had it.
    pub fn write(&mut self, cx: &mut Cx, rec: &Delivered) -> bool {
        if self.has(rec) {
            return false;
        }
        let row = SinkRow {
            value: rec.value,
            partition: rec.partition,
            offset: rec.offset,
        };
        self.note(&row);
        let entry = DiskEntry::new(DiskData::Blob(Arc::new(row)), ROW_BYTES);
        cx.disk().append(SINK_FILE, entry);
        if !self.fsync_pending {
            self.fsync_pending = true;
            cx.disk_fsync(SINK_FILE, SINK_FSYNC_TOKEN);
        }
        true
    }

    /// The fsync issued by [`Sink::write`] completed.
    pub fn on_fsync(&mut self) {
        self.fsync_pending = false;
    }

    /// The offset to resume `partition` from, if this sink stores offsets and has one.
    pub fn stored_offset(&self, partition: TopicPartition) -> Option<u64> {
        match self.kind {
            SinkKind::OffsetsInSink => self.offsets.get(&partition).copied(),
            _ => None,
        }
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }
}
