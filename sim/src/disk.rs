//! The disk model: per node, files of entries behind a page cache.
//!
//! Writes land in the page cache, which reads see at once. An fsync makes everything written
//! to the file before it durable after a modelled latency. The operating system's background
//! writeback also makes a write durable once it is older than `writeback` (Linux's
//! `dirty_expire_centisecs`, 30 s by default); this is evaluated lazily at power loss, so it
//! costs nothing per write. A *process crash* keeps the page cache: nothing is lost. A *power
//! loss* drops every byte that is not durable and may tear the first lost write (the engine's
//! recovery sees a torn entry, as Kafka sees a CRC mismatch, and must cut it).

use kafsim_engine::time::duration_nanos;
use kafsim_engine::{Disk, DiskEntry, Duration, FileId, Instant};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq)]
pub struct DiskConfig {
    /// Time an fsync takes on an idle disk.
    pub fsync_latency: Duration,
    /// Sequential write bandwidth that fsync pays for the dirty bytes it flushes; 0 = unlimited.
    pub bandwidth_bytes_per_sec: u64,
    /// Age after which the OS has written a dirty page back on its own; `None` = never.
    pub writeback: Option<Duration>,
}

impl Default for DiskConfig {
    fn default() -> Self {
        DiskConfig {
            fsync_latency: Duration::from_millis(2),
            bandwidth_bytes_per_sec: 500 << 20,
            writeback: Some(Duration::from_secs(30)),
        }
    }
}

#[derive(Clone, Debug, Default)]
struct File {
    /// What the page cache holds (what reads see).
    entries: Vec<DiskEntry>,
    /// When each entry was written (for lazy writeback).
    written_at: Vec<Instant>,
    /// The durable image is `entries[..durable_prefix]` followed by `durable_tail`.
    durable_prefix: usize,
    /// Durable entries the page cache no longer has (cut by a truncation not yet durable).
    durable_tail: Vec<DiskEntry>,
    /// When the last truncation that cut durable entries happened.
    truncated_at: Option<Instant>,
    /// Counts truncations; an fsync in flight across a truncation is applied conservatively.
    truncations: u64,
    dirty_bytes: u64,
}

/// An fsync issued and not yet complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FsyncTicket {
    pub file: FileId,
    pub len: usize,
    pub truncations: u64,
}

/// One node's disk.
#[derive(Debug)]
pub struct NodeDisk {
    files: BTreeMap<FileId, File>,
    /// Current time, set by the world before each handler call.
    pub(crate) now: Instant,
    /// The disk is busy with fsyncs until then (fsyncs queue behind each other).
    busy_until: Instant,
    /// Multiplier of fsync time (slow-disk fault); 1.0 = normal.
    pub(crate) slowdown: f64,
    config: DiskConfig,
    pub(crate) fsyncs: u64,
}

impl NodeDisk {
    pub fn new(config: DiskConfig) -> NodeDisk {
        NodeDisk {
            files: BTreeMap::new(),
            now: Instant::ZERO,
            busy_until: Instant::ZERO,
            slowdown: 1.0,
            config,
            fsyncs: 0,
        }
    }

    /// Start an fsync of `file` now; returns when it completes and what it will cover.
    pub(crate) fn begin_fsync(&mut self, file: FileId) -> (Instant, FsyncTicket) {
        self.fsyncs += 1;
        let f = self.files.entry(file).or_default();
        let ticket = FsyncTicket {
            file,
            len: f.entries.len(),
            truncations: f.truncations,
        };
        // Unlimited bandwidth (0) makes the transfer free.
        let transfer = f
            .dirty_bytes
            .saturating_mul(1_000_000_000)
            .checked_div(self.config.bandwidth_bytes_per_sec)
            .unwrap_or(0);
        f.dirty_bytes = 0;
        let nanos = (duration_nanos(self.config.fsync_latency) + transfer) as f64 * self.slowdown;
        let start = self.busy_until.max(self.now);
        self.busy_until = start + Duration::from_nanos(nanos as u64);
        (self.busy_until, ticket)
    }

    /// An fsync completed: what it covered is durable.
    pub(crate) fn complete_fsync(&mut self, ticket: FsyncTicket) {
        let Some(f) = self.files.get_mut(&ticket.file) else {
            return;
        };
        let covered = ticket.len.min(f.entries.len());
        if f.truncations == ticket.truncations {
            f.durable_tail.clear();
            f.truncated_at = None;
            f.durable_prefix = f.durable_prefix.max(covered);
        } else {
            // Truncated while the fsync ran: only what survives in both images is certain.
            f.durable_prefix = f
                .durable_prefix
                .max(covered.min(f.durable_prefix.max(covered)));
        }
        debug_assert!(f.durable_prefix <= f.entries.len());
    }

    /// Apply the background writeback that has happened by `now`.
    fn apply_writeback(f: &mut File, now: Instant, writeback: Option<Duration>) {
        let Some(expiry) = writeback else { return };
        let horizon = now.as_nanos().saturating_sub(duration_nanos(expiry));
        // written_at is non-decreasing, so the written-back entries form a prefix.
        let aged = f.written_at.partition_point(|t| t.as_nanos() <= horizon);
        if aged > f.durable_prefix {
            f.durable_prefix = aged;
            f.durable_tail.clear();
        }
        if f.truncated_at.is_some_and(|t| t.as_nanos() <= horizon) {
            f.durable_tail.clear();
            f.truncated_at = None;
        }
    }

    /// Power loss: the page cache is gone; every file reverts to its durable image. With
    /// `tear`, the first lost entry of a file may survive partially (marked torn).
    pub(crate) fn power_loss(&mut self, tear: bool, rng: &mut ChaCha8Rng) {
        let now = self.now;
        let writeback = self.config.writeback;
        for f in self.files.values_mut() {
            Self::apply_writeback(f, now, writeback);
            let first_lost = f.entries.get(f.durable_prefix).cloned();
            f.entries.truncate(f.durable_prefix);
            f.written_at.truncate(f.durable_prefix);
            let tail = std::mem::take(&mut f.durable_tail);
            for e in tail {
                f.entries.push(e);
                f.written_at.push(Instant::ZERO);
            }
            if let (true, Some(mut lost)) =
                (tear && f.entries.len() == f.durable_prefix, first_lost)
            {
                if rng.gen_bool(0.5) {
                    lost.torn = true;
                    f.entries.push(lost);
                    f.written_at.push(now);
                }
            }
            f.durable_prefix = f.entries.iter().take_while(|e| !e.torn).count();
            f.truncated_at = None;
            f.dirty_bytes = 0;
        }
        self.busy_until = now;
    }

    /// Durable image of a file (for tests and inspection).
    pub fn durable_len(&self, file: FileId) -> usize {
        self.files
            .get(&file)
            .map_or(0, |f| f.durable_prefix + f.durable_tail.len())
    }

    pub fn file_count(&self) -> usize {
        self.files.len()
    }
}

impl Disk for NodeDisk {
    fn append(&mut self, file: FileId, entry: DiskEntry) {
        let f = self.files.entry(file).or_default();
        f.dirty_bytes += entry.bytes as u64;
        f.entries.push(entry);
        f.written_at.push(self.now);
    }

    fn overwrite(&mut self, file: FileId, entries: Vec<DiskEntry>) {
        self.truncate(file, 0);
        for e in entries {
            self.append(file, e);
        }
    }

    fn truncate(&mut self, file: FileId, len: usize) {
        let now = self.now;
        let writeback = self.config.writeback;
        let f = self.files.entry(file).or_default();
        if len >= f.entries.len() {
            return;
        }
        Self::apply_writeback(f, now, writeback);
        if len < f.durable_prefix {
            let mut cut: Vec<DiskEntry> = f.entries[len..f.durable_prefix].to_vec();
            cut.append(&mut f.durable_tail);
            f.durable_tail = cut;
            f.durable_prefix = len;
            f.truncated_at = Some(now);
        }
        f.entries.truncate(len);
        f.written_at.truncate(len);
        f.truncations += 1;
    }

    fn read(&self, file: FileId) -> &[DiskEntry] {
        self.files.get(&file).map_or(&[], |f| &f.entries)
    }

    fn files(&self) -> Vec<FileId> {
        self.files
            .iter()
            .filter(|(_, f)| !f.entries.is_empty())
            .map(|(id, _)| *id)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seed::rng_for;
    use kafsim_engine::DiskData;

    fn entry(n: u64) -> DiskEntry {
        DiskEntry::new(
            DiskData::Offsets(vec![(
                kafsim_engine::TopicPartition::new(kafsim_engine::TopicId(0), 0),
                n,
            )]),
            100,
        )
    }

    fn value(e: &DiskEntry) -> u64 {
        match &e.data {
            DiskData::Offsets(v) => v[0].1,
            _ => unreachable!(),
        }
    }

    const F: FileId = FileId::Named("f");

    #[test]
    fn power_loss_drops_exactly_the_unflushed_suffix() {
        let mut d = NodeDisk::new(DiskConfig {
            writeback: None,
            ..DiskConfig::default()
        });
        for i in 0..3 {
            d.append(F, entry(i));
        }
        let (_, t) = d.begin_fsync(F);
        d.complete_fsync(t);
        d.append(F, entry(3));
        d.append(F, entry(4));
        d.power_loss(false, &mut rng_for(1, 2));
        let kept: Vec<u64> = d.read(F).iter().map(value).collect();
        assert_eq!(kept, vec![0, 1, 2]);
    }

    #[test]
    fn truncation_not_yet_durable_reappears_after_power_loss() {
        let mut d = NodeDisk::new(DiskConfig {
            writeback: None,
            ..DiskConfig::default()
        });
        for i in 0..3 {
            d.append(F, entry(i));
        }
        let (_, t) = d.begin_fsync(F);
        d.complete_fsync(t);
        d.truncate(F, 1);
        d.power_loss(false, &mut rng_for(1, 2));
        assert_eq!(d.read(F).len(), 3);
    }

    #[test]
    fn writeback_makes_old_writes_durable() {
        let mut d = NodeDisk::new(DiskConfig {
            writeback: Some(Duration::from_secs(30)),
            ..DiskConfig::default()
        });
        d.append(F, entry(0));
        d.now = Instant::from_millis(40_000);
        d.append(F, entry(1));
        d.power_loss(false, &mut rng_for(1, 2));
        assert_eq!(d.read(F).len(), 1);
    }

    #[test]
    fn tear_marks_the_first_lost_entry() {
        let mut torn_seen = false;
        for seed in 0..20 {
            let mut d = NodeDisk::new(DiskConfig {
                writeback: None,
                ..DiskConfig::default()
            });
            d.append(F, entry(0));
            d.append(F, entry(1));
            d.power_loss(true, &mut rng_for(seed, 2));
            let e = d.read(F);
            assert!(e.len() <= 1);
            if let Some(first) = e.first() {
                assert!(first.torn);
                torn_seen = true;
            }
        }
        assert!(torn_seen);
    }
}
