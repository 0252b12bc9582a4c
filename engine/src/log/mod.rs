//! The partition log (Kafka's `UnifiedLog`): an ordered list of record batches with a log
//! start offset, a log end offset (LEO), a leader-epoch cache, truncation, the flush policy,
//! and its on-disk form (one [`FileId::Log`] file of batch entries plus a
//! [`FileId::LeaderEpochCheckpoint`]). The high watermark is the replica's business
//! ([`crate::replica::partition`]), checkpointed by [`checkpoint`].
//!
//! Invariant: entry `i` of the log file is `batches[i]` (the page cache view), so truncation
//! is a file truncation at a batch index. Payload bytes are not stored; `wire_size` models them.

pub mod checkpoint;
pub mod epoch_cache;
pub mod producer_state;
pub mod recovery;
pub mod transaction_state;

use crate::node::{Cx, DiskData, DiskEntry, FileId};
use crate::record::{RecordBatch, TopicPartition};
use crate::time::{Duration, Instant};
use epoch_cache::LeaderEpochCache;

/// `log.flush.interval.messages` / `log.flush.interval.ms`; `None` = never (Kafka's default:
/// durability comes from replication, the OS flushes the page cache when it likes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlushPolicy {
    pub interval_messages: Option<u64>,
    pub interval: Option<Duration>,
}

/// Most fsyncs one log keeps outstanding; more means the disk is far behind (assert).
const MAX_PENDING_FSYNCS: usize = 4096;

#[derive(Clone, Debug)]
pub struct Log {
    tp: TopicPartition,
    batches: Vec<RecordBatch>,
    log_start_offset: u64,
    log_end_offset: u64,
    epochs: LeaderEpochCache,
    unflushed_messages: u64,
    last_flush: Instant,
    /// Offset below which an fsync has completed (Kafka's recovery point).
    durable_end: u64,
    /// Offset below which the flush policy demanded an fsync. Kafka flushes synchronously in
    /// the append path, so nothing below it may be acknowledged or fetched-past before it is
    /// durable: see [`Log::is_synced_through`].
    sync_required_end: u64,
    next_fsync_token: u64,
    pending_fsyncs: Vec<(u64, u64)>,
}

impl Log {
    pub fn new(tp: TopicPartition) -> Log {
        Log {
            tp,
            batches: Vec::new(),
            log_start_offset: 0,
            log_end_offset: 0,
            epochs: LeaderEpochCache::default(),
            unflushed_messages: 0,
            last_flush: Instant::ZERO,
            durable_end: 0,
            sync_required_end: 0,
            next_fsync_token: 0,
            pending_fsyncs: Vec::new(),
        }
    }

    pub fn topic_partition(&self) -> TopicPartition {
        self.tp
    }
    pub fn log_start_offset(&self) -> u64 {
        self.log_start_offset
    }
    pub fn log_end_offset(&self) -> u64 {
        self.log_end_offset
    }
    pub fn batches(&self) -> &[RecordBatch] {
        &self.batches
    }
    pub fn epoch_cache(&self) -> &LeaderEpochCache {
        &self.epochs
    }
    pub fn latest_epoch(&self) -> Option<u32> {
        self.epochs.latest_epoch()
    }

    /// OffsetsForLeaderEpoch as answered from this log.
    pub fn end_offset_for_epoch(&self, epoch: u32) -> (u32, u64) {
        let (found, end) = self.epochs.end_offset_for(epoch, self.log_end_offset);
        // Every epoch starts at or below the log end (truncation and appends keep it so), so
        // no answer sends a follower past what this log holds.
        assert!(
            end <= self.log_end_offset,
            "log {}: epoch {found} ends at {end}, past the log end {}",
            self.tp,
            self.log_end_offset
        );
        (found, end)
    }

    /// The record at `offset`, if this log holds it.
    pub fn record_at(&self, offset: u64) -> Option<&crate::record::Record> {
        let i = self.batch_index_containing(offset)?;
        let b = &self.batches[i];
        assert!(
            b.base_offset <= offset && offset < b.next_offset(),
            "log {}: batch {i} ({}..{}) found for offset {offset}",
            self.tp,
            b.base_offset,
            b.next_offset()
        );
        let record = b.records.get((offset - b.base_offset) as usize);
        assert!(
            record.is_some(),
            "log {}: batch {i} holds no offset {offset}",
            self.tp
        );
        record
    }

    /// The batch holding `offset` (index into `batches`).
    fn batch_index_containing(&self, offset: u64) -> Option<usize> {
        let i = self.batches.partition_point(|b| b.next_offset() <= offset);
        let found = (i < self.batches.len() && self.batches[i].base_offset <= offset).then_some(i);
        assert!(
            found.is_some() || offset >= self.log_end_offset || offset < self.first_offset(),
            "log {}: offset {offset} inside the log but in no batch",
            self.tp
        );
        found
    }

    /// The offset of the first record held (the log end when the log is empty).
    fn first_offset(&self) -> u64 {
        let first = self
            .batches
            .first()
            .map_or(self.log_end_offset, |b| b.base_offset);
        assert!(
            self.log_start_offset <= first,
            "log {}: a batch at {first} below the log start {}",
            self.tp,
            self.log_start_offset
        );
        first
    }

    /// What every mutation leaves true, checked where it is written: the last batch ends at
    /// the log end offset, and nothing is durable or owed an fsync past it. O(1): the batches
    /// in between were checked contiguous as they were appended.
    fn check(&self) {
        assert!(
            self.log_start_offset <= self.log_end_offset,
            "log {}: starts at {} past its end {}",
            self.tp,
            self.log_start_offset,
            self.log_end_offset
        );
        assert!(
            self.pending_fsyncs.len() <= MAX_PENDING_FSYNCS,
            "log {}: {} fsyncs outstanding",
            self.tp,
            self.pending_fsyncs.len()
        );
        assert!(
            self.epochs
                .entries()
                .last()
                .is_none_or(|&(_, start)| start <= self.log_end_offset),
            "log {}: the latest epoch starts past the log end {}",
            self.tp,
            self.log_end_offset
        );
        if let Some(first) = self.batches.first() {
            assert!(
                first.base_offset >= self.log_start_offset,
                "log {}: the first batch at {} is below the log start {}",
                self.tp,
                first.base_offset,
                self.log_start_offset
            );
        }
        if let Some(last) = self.batches.last() {
            assert_eq!(
                last.next_offset(),
                self.log_end_offset,
                "log {}: the last batch does not end at the log end",
                self.tp
            );
        }
        assert!(
            self.durable_end <= self.log_end_offset,
            "log {}: durable to {} past the log end {}",
            self.tp,
            self.durable_end,
            self.log_end_offset
        );
        assert!(
            self.sync_required_end <= self.log_end_offset,
            "log {}: an fsync owed to {} past the log end {}",
            self.tp,
            self.sync_required_end,
            self.log_end_offset
        );
    }

    /// Append a producer's batch as leader: assign offsets, stamp `leader_epoch`. Returns the
    /// batch as stored (base offset assigned).
    pub fn append_as_leader(
        &mut self,
        cx: &mut Cx,
        mut batch: RecordBatch,
        leader_epoch: u32,
        policy: FlushPolicy,
    ) -> RecordBatch {
        assert!(
            self.latest_epoch().is_none_or(|e| e <= leader_epoch),
            "{} log {}: a leader of epoch {leader_epoch} appends after epoch {:?}",
            cx.me(),
            self.tp,
            self.latest_epoch()
        );
        batch.base_offset = self.log_end_offset;
        batch.partition_leader_epoch = leader_epoch;
        self.push(cx, batch.clone(), policy);
        assert_eq!(
            self.latest_epoch(),
            Some(leader_epoch),
            "{} log {}: a leader's append is not of its epoch",
            cx.me(),
            self.tp
        );
        assert_eq!(
            batch.next_offset(),
            self.log_end_offset,
            "{} log {}: the appended batch does not end the log",
            cx.me(),
            self.tp
        );
        batch
    }

    /// Append batches fetched from the leader (offsets already assigned). Batches below the
    /// LEO are skipped or sliced; a gap is a leader bug and panics.
    pub fn append_as_follower(
        &mut self,
        cx: &mut Cx,
        batches: &[RecordBatch],
        policy: FlushPolicy,
    ) {
        let before = self.log_end_offset;
        for b in batches {
            if b.next_offset() <= self.log_end_offset {
                continue;
            }
            let b = if b.base_offset < self.log_end_offset {
                slice_batch(b, self.log_end_offset)
            } else {
                b.clone()
            };
            assert_eq!(
                b.base_offset,
                self.log_end_offset,
                "{} log {}: fetched batch leaves a gap",
                cx.me(),
                self.tp
            );
            self.push(cx, b, policy);
        }
        assert!(
            self.log_end_offset >= before
                && batches.last().is_none_or(
                    |b| b.next_offset() <= before || b.next_offset() == self.log_end_offset
                ),
            "{} log {}: a follower append from {before} did not end at the fetched end",
            cx.me(),
            self.tp
        );
    }

    /// Every append path ends here: offsets stay contiguous. (A follower may append batches
    /// of an epoch older than its cache's latest; see `LeaderEpochCache::assign`.)
    fn push(&mut self, cx: &mut Cx, batch: RecordBatch, policy: FlushPolicy) {
        assert_eq!(
            batch.base_offset,
            self.log_end_offset,
            "{} log {}: an append must start at the log end",
            cx.me(),
            self.tp
        );
        assert!(
            batch.record_count() > 0,
            "{} log {}: an empty batch at {}",
            cx.me(),
            self.tp,
            batch.base_offset
        );
        debug_assert!(
            batch.size_is_current(),
            "{} log {}: a batch at {} whose records changed without its size",
            cx.me(),
            self.tp,
            batch.base_offset
        );
        let bytes = batch.wire_size();
        if self
            .epochs
            .assign(batch.partition_leader_epoch, batch.base_offset)
        {
            self.write_epoch_checkpoint(cx);
        }
        self.log_end_offset = batch.next_offset();
        self.unflushed_messages += batch.record_count();
        self.batches.push(batch.clone());
        cx.disk().append(
            FileId::Log(self.tp),
            DiskEntry::new(DiskData::Batch(batch), bytes),
        );
        if let Some(n) = policy.interval_messages {
            if self.unflushed_messages >= n {
                self.flush(cx);
            }
        }
        self.check();
    }

    /// Start a leader epoch at the current LEO (Kafka does this when becoming leader, so the
    /// epoch is known even before its first record).
    pub fn assign_epoch_start(&mut self, cx: &mut Cx, epoch: u32) {
        assert!(
            self.latest_epoch().is_none_or(|e| e <= epoch),
            "{} log {}: epoch {epoch} starts after epoch {:?}",
            cx.me(),
            self.tp,
            self.latest_epoch()
        );
        if self.epochs.assign(epoch, self.log_end_offset) {
            self.write_epoch_checkpoint(cx);
        }
        assert_eq!(
            self.latest_epoch(),
            Some(epoch),
            "{} log {}: epoch {epoch} did not become the latest",
            cx.me(),
            self.tp
        );
        self.check();
    }

    /// Remove every record at and above `offset`. Returns whether anything was removed.
    pub fn truncate_to(&mut self, cx: &mut Cx, offset: u64) -> bool {
        if offset >= self.log_end_offset {
            return false;
        }
        let before = self.log_end_offset;
        let keep = self.batches.partition_point(|b| b.next_offset() <= offset);
        let mut tail = None;
        if keep < self.batches.len() && self.batches[keep].base_offset < offset {
            tail = Some(slice_batch_until(&self.batches[keep], offset));
        }
        self.batches.truncate(keep);
        cx.disk().truncate(FileId::Log(self.tp), keep);
        if let Some(b) = tail {
            let bytes = b.wire_size();
            self.batches.push(b.clone());
            cx.disk().append(
                FileId::Log(self.tp),
                DiskEntry::new(DiskData::Batch(b), bytes),
            );
        }
        self.log_end_offset = offset.max(self.log_start_offset);
        self.durable_end = self.durable_end.min(self.log_end_offset);
        self.sync_required_end = self.sync_required_end.min(self.log_end_offset);
        if self.epochs.truncate_from_end(self.log_end_offset) {
            self.write_epoch_checkpoint(cx);
        }
        assert!(
            self.epochs
                .entries()
                .last()
                .is_none_or(|&(_, start)| start <= self.log_end_offset),
            "{} log {}: an epoch starts past the truncated end",
            cx.me(),
            self.tp
        );
        assert!(
            self.log_end_offset <= before
                && self.log_end_offset == offset.max(self.log_start_offset),
            "{} log {}: truncated to {offset} from {before} but ends at {}",
            cx.me(),
            self.tp,
            self.log_end_offset
        );
        self.check();
        true
    }

    /// Batches holding offsets from `from`, stopping before `max_offset` (the HW for
    /// consumers), within `max_bytes` except that the first batch is always returned
    /// (KIP-74) so a large batch cannot block a fetcher.
    pub fn read(&self, from: u64, max_bytes: u32, max_offset: u64) -> Vec<RecordBatch> {
        let mut out = Vec::new();
        let mut bytes = 0u32;
        let start = self.batches.partition_point(|b| b.next_offset() <= from);
        for b in &self.batches[start..] {
            if b.next_offset() > max_offset {
                break;
            }
            let size = b.wire_size();
            if !out.is_empty() && bytes.saturating_add(size) > max_bytes {
                break;
            }
            bytes = bytes.saturating_add(size);
            assert!(
                out.last()
                    .is_none_or(|p: &RecordBatch| p.next_offset() == b.base_offset),
                "log {}: a read across a gap at {}",
                self.tp,
                b.base_offset
            );
            out.push(b.clone());
        }
        assert!(
            out.first().is_none_or(|b| b.next_offset() > from)
                && out.last().is_none_or(|b| b.next_offset() <= max_offset),
            "log {}: a read from {from} below {max_offset} returned batches outside it",
            self.tp
        );
        out
    }

    /// Whether every record below `offset` that the flush policy required to be synced is
    /// durable (always true under the default policy).
    pub fn is_synced_through(&self, offset: u64) -> bool {
        debug_assert!(self.durable_end <= self.log_end_offset);
        offset.min(self.sync_required_end) <= self.durable_end
    }

    /// fsync the log file up to the current LEO.
    pub fn flush(&mut self, cx: &mut Cx) {
        assert!(
            self.pending_fsyncs.len() < MAX_PENDING_FSYNCS,
            "{} log {}: {} fsyncs outstanding",
            cx.me(),
            self.tp,
            self.pending_fsyncs.len()
        );
        self.next_fsync_token += 1;
        assert!(
            self.pending_fsyncs
                .last()
                .is_none_or(|(_, end)| *end <= self.log_end_offset)
                || self.durable_end <= self.log_end_offset,
            "{} log {}: fsyncs out of order",
            cx.me(),
            self.tp
        );
        self.pending_fsyncs
            .push((self.next_fsync_token, self.log_end_offset));
        self.sync_required_end = self.sync_required_end.max(self.log_end_offset);
        assert_eq!(
            self.sync_required_end,
            self.log_end_offset,
            "{} log {}: a flush owes less than the whole log",
            cx.me(),
            self.tp
        );
        self.unflushed_messages = 0;
        self.last_flush = cx.now();
        cx.disk_fsync(FileId::Log(self.tp), self.next_fsync_token);
    }

    /// `log.flush.interval.ms`: flush if the last flush is older than the interval.
    pub fn maybe_flush_by_time(&mut self, cx: &mut Cx, policy: FlushPolicy) {
        if let Some(interval) = policy.interval {
            if self.unflushed_messages > 0 && cx.now().saturating_since(self.last_flush) >= interval
            {
                self.flush(cx);
                assert_eq!(
                    self.unflushed_messages,
                    0,
                    "{} log {}: a flush left messages unflushed",
                    cx.me(),
                    self.tp
                );
            }
        }
    }

    /// An fsync of the log file completed. Returns whether the durable end moved.
    pub fn on_fsync_done(&mut self, token: u64) -> bool {
        let Some(i) = self.pending_fsyncs.iter().position(|p| p.0 == token) else {
            return false;
        };
        let (_, end) = self.pending_fsyncs.remove(i);
        let end = end.min(self.log_end_offset);
        let moved = end > self.durable_end;
        let before = self.durable_end;
        self.durable_end = self.durable_end.max(end);
        // The recovery point only moves forward while the log is not truncated below it.
        assert!(
            self.durable_end >= before,
            "log {}: durable end went back from {before} to {}",
            self.tp,
            self.durable_end
        );
        self.check();
        moved
    }

    fn write_epoch_checkpoint(&mut self, cx: &mut Cx) {
        let entries = self.epochs.entries().to_vec();
        // What is written is what a restart reads back: strictly increasing in both fields.
        assert!(
            entries
                .windows(2)
                .all(|w| w[0].0 < w[1].0 && w[0].1 < w[1].1),
            "{} log {}: epoch checkpoint {entries:?} not increasing",
            cx.me(),
            self.tp
        );
        let bytes = 16 + 12 * entries.len() as u32;
        let file = FileId::LeaderEpochCheckpoint(self.tp);
        cx.disk()
            .overwrite(file, vec![DiskEntry::new(DiskData::Epochs(entries), bytes)]);
        cx.disk_fsync(file, 0);
    }
}

/// The part of `b` from `from` on (`from` inside the batch).
fn slice_batch(b: &RecordBatch, from: u64) -> RecordBatch {
    assert!(
        b.base_offset < from && from < b.next_offset(),
        "slice from {from} outside the batch {}..{}",
        b.base_offset,
        b.next_offset()
    );
    let skip = (from - b.base_offset) as usize;
    let mut out = b.clone();
    out.set_records(b.records[skip..].to_vec().into());
    out.base_offset = from;
    if out.base_sequence >= 0 {
        out.base_sequence += skip as i32;
    }
    assert_eq!(
        out.next_offset(),
        b.next_offset(),
        "a slice keeps the batch's end"
    );
    out
}

/// The part of `b` below `end` (`end` inside the batch).
fn slice_batch_until(b: &RecordBatch, end: u64) -> RecordBatch {
    assert!(
        b.base_offset < end && end < b.next_offset(),
        "slice until {end} outside the batch {}..{}",
        b.base_offset,
        b.next_offset()
    );
    let keep = (end - b.base_offset) as usize;
    let mut out = b.clone();
    out.set_records(b.records[..keep].to_vec().into());
    assert_eq!(out.next_offset(), end, "a slice ends where it was cut");
    out
}

#[cfg(test)]
pub(crate) mod tests;
