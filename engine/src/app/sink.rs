//! The service's sink as a member sees it: a client of the database its group shares
//! (DESIGN §8 "Service"; the database node is the host's, `sim/src/database.rs`).
//!
//! A processed record's result becomes one statement ([`Statement::Insert`]) sent to the
//! group's database; the processor that processed the record waits for the answer before it
//! considers the record done and marks its offset, as a service awaits its INSERT. An
//! offsets-in-sink member asks the database where to resume ([`Statement::ReadOffsets`])
//! when a partition is assigned, before it asks the group coordinator.
//!
//! When the database does not answer ([`STATEMENT_TIMEOUT`]) or the connection to it is reset
//! (a crashed database), the member retries the same statement with exponential backoff
//! ([`RETRY_BACKOFF`] doubling up to [`RETRY_BACKOFF_MAX`]), without limit: the processor
//! holds its record, so the partition makes no progress until the database is back, as a
//! service that retries its transaction does (and, with the poll loop blocked, the member
//! may exceed `max.poll.interval.ms` and lose its partitions meanwhile). A statement that
//! timed out may still have committed: its retry is then refused by a unique constraint or
//! the offset guard (and counted), or, for a `plain` sink, stored a second time.
//!
//! A group that declares no sink has no database: its members note what they processed on
//! their own disk ([`LocalSink`]), at once.

use super::SinkKind;
use crate::node::{Cx, DiskData, DiskEntry, FileId, NodeId};
use crate::protocol::{Row, Statement};
use crate::record::TopicPartition;
use crate::time::{Duration, Instant};
use std::collections::BTreeMap;
use std::sync::Arc;

/// How long a member waits for the database's answer before it gives the statement up,
/// closes the connection and retries (a client-side deadline such as Go's
/// `context.WithTimeout` around `ExecContext` or pgjdbc's `socketTimeout`).
pub const STATEMENT_TIMEOUT: Duration = Duration::from_secs(10);
/// First backoff before a failed statement is retried.
pub const RETRY_BACKOFF: Duration = Duration::from_millis(100);
/// Largest backoff between retries of one statement.
pub const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// A statement that waits for its answer or for its next try.
#[derive(Clone, Debug)]
pub struct Pending {
    pub statement: Statement,
    pub attempts: u32,
    /// An attempt is on the wire.
    pub inflight: bool,
    pub not_before: Instant,
}

impl Pending {
    fn new(statement: Statement) -> Pending {
        Pending {
            statement,
            attempts: 0,
            inflight: false,
            not_before: Instant::ZERO,
        }
    }

    /// The attempt failed: back off (doubling per attempt) before the next.
    pub fn failed(&mut self, now: Instant) {
        self.inflight = false;
        let shift = self.attempts.saturating_sub(1).min(16);
        let backoff = (RETRY_BACKOFF * (1u32 << shift)).min(RETRY_BACKOFF_MAX);
        self.not_before = now + backoff;
    }
}

/// The member's side of the group's database.
#[derive(Debug)]
pub struct SinkClient {
    kind: SinkKind,
    database: Option<NodeId>,
    /// Result inserts waiting, by the processor that holds the record.
    pub inserts: BTreeMap<usize, Pending>,
    /// The read of stored offsets waiting, if any.
    pub read: Option<Pending>,
    /// Statements the database refused as already stored (this incarnation).
    pub refused: u64,
}

impl SinkClient {
    pub fn new(kind: SinkKind, database: Option<NodeId>) -> SinkClient {
        SinkClient {
            kind,
            database,
            inserts: BTreeMap::new(),
            read: None,
            refused: 0,
        }
    }

    pub fn kind(&self) -> SinkKind {
        self.kind
    }

    /// The group's database node (None: a member built without one writes nowhere).
    pub fn database(&self) -> Option<NodeId> {
        self.database
    }

    /// Whether assigned partitions start from the offsets stored in the database.
    pub fn stores_offsets(&self) -> bool {
        self.kind == SinkKind::OffsetsInSink && self.database.is_some()
    }

    /// Queue the insert of `row` for `processor`; false when there is no database.
    pub fn insert(&mut self, processor: usize, row: Row) -> bool {
        if self.database.is_none() {
            return false;
        }
        let old = self
            .inserts
            .insert(processor, Pending::new(Statement::Insert(row)));
        assert!(
            old.is_none(),
            "processor {processor} started a second sink insert"
        );
        true
    }

    /// Queue a read of the offsets stored for `partitions` (merged with one not yet sent).
    pub fn read_offsets(&mut self, partitions: Vec<TopicPartition>) {
        match &mut self.read {
            Some(p) if !p.inflight => {
                if let Statement::ReadOffsets(tps) = &mut p.statement {
                    tps.extend(partitions);
                    tps.sort();
                    tps.dedup();
                }
            }
            Some(_) => {} // the in-flight read's answer drives the rest
            None => self.read = Some(Pending::new(Statement::ReadOffsets(partitions))),
        }
    }

    /// Statements waiting (sent or backing off).
    pub fn pending(&self) -> usize {
        self.inserts.len() + usize::from(self.read.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{TopicId, ValueId};

    fn row() -> Row {
        Row {
            group: 0,
            member: 0,
            partition: TopicPartition::new(TopicId(0), 0),
            offset: 1,
            value: ValueId(1),
            key: None,
        }
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let mut p = Pending::new(Statement::Insert(row()));
        let mut waits = Vec::new();
        for _ in 0..10 {
            p.attempts += 1;
            p.failed(Instant::ZERO);
            waits.push(p.not_before.saturating_since(Instant::ZERO));
        }
        assert_eq!(waits[0], RETRY_BACKOFF);
        assert_eq!(waits[1], RETRY_BACKOFF * 2);
        assert_eq!(*waits.last().unwrap(), RETRY_BACKOFF_MAX);
    }

    #[test]
    fn without_a_database_nothing_is_written() {
        let mut s = SinkClient::new(SinkKind::Dedupe, None);
        assert!(!s.insert(0, row()));
        assert_eq!(s.pending(), 0);
        let mut s = SinkClient::new(SinkKind::OffsetsInSink, Some(NodeId(9)));
        assert!(s.stores_offsets());
        assert!(s.insert(0, row()));
        s.read_offsets(vec![row().partition]);
        assert_eq!(s.pending(), 2);
    }
}

/// The service's output when its group declares no sink: every processed record is noted
/// on the member's own disk (`FileId::Named("sink")`, fsynced) and recorded as a `SinkWrite`
/// by the member, at no latency. What a scenario without a database (a benchmark, a broker
/// scenario) judges sink-loss, sink-duplicate and key-order on.
#[derive(Debug, Default)]
pub struct LocalSink {
    fsync_pending: bool,
    rows: u64,
    marker: RowMarker,
}

/// What each row's disk entry holds: nothing anyone reads back (recovery counts the rows
/// that survived; what each row stored is its `SinkWrite` in the history), one allocation
/// shared by every row. A row of its own per entry was 56 bytes per processed record that
/// stayed until the end of the run.
#[derive(Clone)]
struct RowMarker(Arc<dyn std::any::Any + Send + Sync>);

impl Default for RowMarker {
    fn default() -> RowMarker {
        RowMarker(Arc::new(()))
    }
}

impl std::fmt::Debug for RowMarker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RowMarker")
    }
}

/// The local sink's file.
pub const SINK_FILE: FileId = FileId::Named("sink");
/// Modelled bytes of one local row.
const ROW_BYTES: u32 = 64;
/// Fsync token of the local sink file.
pub const SINK_FSYNC_TOKEN: u64 = 0x51_4b;

impl LocalSink {
    /// Count what the disk kept (a torn last row is cut).
    pub fn recover(&mut self, cx: &mut Cx) {
        let entries = cx.disk().read(SINK_FILE);
        let valid = entries.iter().take_while(|e| !e.torn).count();
        let total = entries.len();
        if valid < total {
            cx.disk().truncate(SINK_FILE, valid);
        }
        self.rows = valid as u64;
    }

    /// Note the result of processing `_row` (the caller records it: its `SinkWrite`).
    pub fn write(&mut self, cx: &mut Cx, _row: Row) {
        self.rows += 1;
        let entry = DiskEntry::new(DiskData::Blob(self.marker.0.clone()), ROW_BYTES);
        cx.disk().append(SINK_FILE, entry);
        if !self.fsync_pending {
            self.fsync_pending = true;
            cx.disk_fsync(SINK_FILE, SINK_FSYNC_TOKEN);
        }
    }

    /// The fsync issued by [`LocalSink::write`] completed.
    pub fn on_fsync(&mut self) {
        self.fsync_pending = false;
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }
}
