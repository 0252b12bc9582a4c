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
    /// Cost model: the page cache's dirty thresholds (see [`DirtyThresholds`]); `None` =
    /// writes never block and nothing is written back for throttling (the kernel's free
    /// default, which fault campaigns use).
    pub dirty: Option<DirtyThresholds>,
}

/// Linux's two dirty-page thresholds of one machine (`mm/page-writeback.c`).
///
/// - Below `background_bytes` nothing writes dirty data back (except pages older than
///   `dirty_expire_centisecs`, which do not matter for throttling).
/// - Above it the flusher thread writes back at the disk's sequential bandwidth until dirty
///   data is under `background_bytes` again (`wb_over_bg_thresh`).
/// - Writers run free while dirty data is under the *freerun* point, halfway between the two
///   thresholds (`dirty_freerun_ceiling`). Above it `balance_dirty_pages` pauses each writer
///   so that it dirties pages at `write bandwidth × pos_ratio`, where `pos_ratio` falls as a
///   cubic from 2 at freerun through 1 at the setpoint (halfway between freerun and the
///   limit) to 0 at `limit_bytes` (`pos_ratio_polynom`); a pause lasts at most 200 ms
///   (`MAX_PAUSE`), and a writer over the limit waits until writeback has brought dirty data
///   back under it.
///
/// So a burst rides the page cache at full speed until the freerun point, and a sustained
/// write rate settles at the disk's bandwidth.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DirtyThresholds {
    /// `vm.dirty_background_ratio` of dirtyable memory.
    pub background_bytes: u64,
    /// `vm.dirty_ratio` of dirtyable memory.
    pub limit_bytes: u64,
}

impl DirtyThresholds {
    /// Where writers start being throttled (`dirty_freerun_ceiling`).
    pub fn freerun_bytes(&self) -> u64 {
        (self.background_bytes + self.limit_bytes) / 2
    }
}

/// Longest single `balance_dirty_pages` pause (Linux `MAX_PAUSE`, HZ/5).
const MAX_DIRTY_PAUSE: Duration = Duration::from_millis(200);

impl Default for DiskConfig {
    fn default() -> Self {
        DiskConfig {
            fsync_latency: Duration::from_millis(2),
            bandwidth_bytes_per_sec: 500 << 20,
            writeback: Some(Duration::from_secs(30)),
            dirty: None,
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
    /// Each file's position in `slots`; walks go in this map's order (`FileId` order).
    files: BTreeMap<FileId, usize>,
    /// The files, never removed (a file truncated to nothing stays, as before).
    slots: Vec<File>,
    /// The file last looked up and its slot: a node writes one file many times in a row
    /// (a sink's rows, a log's batches), and a B-tree search of `FileId`s (a string
    /// comparison for a named file) cost ~140 instructions per sink row.
    last: Option<(FileId, usize)>,
    /// Current time, set by the world before each handler call.
    pub(crate) now: Instant,
    /// The disk is busy with fsyncs until then (fsyncs queue behind each other).
    busy_until: Instant,
    /// Multiplier of fsync time (slow-disk fault); 1.0 = normal.
    pub(crate) slowdown: f64,
    config: DiskConfig,
    pub(crate) fsyncs: u64,
    /// Bytes appended since the node's disk was created (the world diffs it around a handler
    /// to charge write throttling).
    pub(crate) appended_bytes: u64,
    /// Dirty bytes in the page cache at `dirty_at` (cost model only).
    dirty_bytes: u64,
    dirty_at: Instant,
    /// The flusher is writing back (dirty data went over the background threshold and has
    /// not yet come back under it).
    flushing: bool,
    /// Total time writers of this node were paused by `balance_dirty_pages`.
    pub(crate) throttled: Duration,
}

impl NodeDisk {
    pub fn new(config: DiskConfig) -> NodeDisk {
        NodeDisk {
            files: BTreeMap::new(),
            slots: Vec::new(),
            last: None,
            now: Instant::ZERO,
            busy_until: Instant::ZERO,
            slowdown: 1.0,
            config,
            fsyncs: 0,
            appended_bytes: 0,
            dirty_bytes: 0,
            dirty_at: Instant::ZERO,
            flushing: false,
            throttled: Duration::ZERO,
        }
    }

    /// Dirty bytes at `now` after the writeback since the last write (cost model only).
    fn advance_writeback(&mut self, now: Instant, dirty: DirtyThresholds) {
        let bandwidth = self.config.bandwidth_bytes_per_sec;
        if self.flushing && now > self.dirty_at {
            let elapsed = duration_nanos(now.saturating_since(self.dirty_at)) as u128;
            let written = (elapsed * bandwidth as u128 / 1_000_000_000) as u64;
            let floor = dirty.background_bytes.min(self.dirty_bytes);
            self.dirty_bytes = self.dirty_bytes.saturating_sub(written).max(floor);
            if self.dirty_bytes <= dirty.background_bytes {
                self.flushing = false;
            }
        }
        self.dirty_at = self.dirty_at.max(now);
    }

    /// `bytes` were just written at `now`: how long `balance_dirty_pages` pauses the writer
    /// (zero without dirty thresholds). See [`DirtyThresholds`] for the rules.
    pub(crate) fn write_stall(&mut self, now: Instant, bytes: u64) -> Duration {
        let Some(dirty) = self.config.dirty else {
            return Duration::ZERO;
        };
        let bandwidth = self.config.bandwidth_bytes_per_sec;
        if bandwidth == 0 || bytes == 0 {
            return Duration::ZERO;
        }
        self.advance_writeback(now, dirty);
        self.dirty_bytes = self.dirty_bytes.saturating_add(bytes);
        if self.dirty_bytes > dirty.background_bytes {
            self.flushing = true;
        }
        let freerun = dirty.freerun_bytes();
        let limit = dirty.limit_bytes.max(freerun + 1);
        let pause = if self.dirty_bytes <= freerun {
            Duration::ZERO
        } else if self.dirty_bytes >= limit {
            // Over the hard limit: wait until writeback has brought dirty data under it.
            let over = (self.dirty_bytes - limit) as u128;
            Duration::from_nanos((over * 1_000_000_000 / bandwidth as u128) as u64)
        } else {
            let setpoint = (freerun + limit) as f64 / 2.0;
            let x = (setpoint - self.dirty_bytes as f64) / (limit as f64 - setpoint);
            let pos_ratio = (1.0 + x * x * x).max(1e-3);
            let nanos = bytes as f64 * 1e9 / (bandwidth as f64 * pos_ratio);
            Duration::from_nanos(nanos as u64).min(MAX_DIRTY_PAUSE)
        };
        self.throttled += pause;
        pause
    }

    /// Start an fsync of `file` now; returns when it completes and what it will cover.
    pub(crate) fn begin_fsync(&mut self, file: FileId) -> (Instant, FsyncTicket) {
        self.fsyncs += 1;
        let bandwidth = self.config.bandwidth_bytes_per_sec;
        let f = self.file_mut(file);
        let ticket = FsyncTicket {
            file,
            len: f.entries.len(),
            truncations: f.truncations,
        };
        // Unlimited bandwidth (0) makes the transfer free.
        let transfer = f
            .dirty_bytes
            .saturating_mul(1_000_000_000)
            .checked_div(bandwidth)
            .unwrap_or(0);
        f.dirty_bytes = 0;
        let nanos = (duration_nanos(self.config.fsync_latency) + transfer) as f64 * self.slowdown;
        let start = self.busy_until.max(self.now);
        self.busy_until = start + Duration::from_nanos(nanos as u64);
        (self.busy_until, ticket)
    }

    /// An fsync completed: what it covered is durable.
    pub(crate) fn complete_fsync(&mut self, ticket: FsyncTicket) {
        let Some(&i) = self.files.get(&ticket.file) else {
            return;
        };
        let f = &mut self.slots[i];
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
        for &i in self.files.values() {
            let f = &mut self.slots[i];
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
        // The page cache is gone, and with it every dirty byte.
        self.dirty_bytes = 0;
        self.dirty_at = now;
        self.flushing = false;
    }

    /// Total time writers of this node were paused by dirty-page throttling.
    pub fn throttled(&self) -> Duration {
        self.throttled
    }

    /// Durable image of a file (for tests and inspection).
    pub fn durable_len(&self, file: FileId) -> usize {
        self.file(file)
            .map_or(0, |f| f.durable_prefix + f.durable_tail.len())
    }

    pub fn file_count(&self) -> usize {
        self.files.len()
    }

    /// Whether `last` names `file`: a named file's name is one `&'static str` constant
    /// wherever it is used, so its address answers first, without comparing the text.
    #[inline]
    fn same_file(last: FileId, file: FileId) -> bool {
        match (last, file) {
            (FileId::Named(a), FileId::Named(b)) => std::ptr::eq(a, b) || a == b,
            _ => last == file,
        }
    }

    fn file(&self, file: FileId) -> Option<&File> {
        match self.last {
            Some((last, i)) if Self::same_file(last, file) => Some(&self.slots[i]),
            _ => self.files.get(&file).map(|&i| &self.slots[i]),
        }
    }

    /// The file, created empty if the node never wrote it.
    #[inline]
    fn file_mut(&mut self, file: FileId) -> &mut File {
        let i = match self.last {
            Some((last, i)) if Self::same_file(last, file) => i,
            _ => self.find_or_create(file),
        };
        debug_assert_eq!(self.files.get(&file), Some(&i), "slot of {file:?}");
        &mut self.slots[i]
    }

    fn find_or_create(&mut self, file: FileId) -> usize {
        let slots = &mut self.slots;
        let i = *self.files.entry(file).or_insert_with(|| {
            slots.push(File::default());
            slots.len() - 1
        });
        self.last = Some((file, i));
        i
    }
}

impl Disk for NodeDisk {
    fn append(&mut self, file: FileId, entry: DiskEntry) {
        self.appended_bytes += entry.bytes as u64;
        let now = self.now;
        let f = self.file_mut(file);
        f.dirty_bytes += entry.bytes as u64;
        f.entries.push(entry);
        f.written_at.push(now);
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
        let f = self.file_mut(file);
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
        self.file(file).map_or(&[], |f| &f.entries)
    }

    fn files(&self) -> Vec<FileId> {
        self.files
            .iter()
            .filter(|(_, &i)| !self.slots[i].entries.is_empty())
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

    /// A disk without writeback whose file `F` holds entries 0, 1 and 2, fsynced.
    fn three_fsynced_entries() -> NodeDisk {
        let mut d = NodeDisk::new(DiskConfig {
            writeback: None,
            ..DiskConfig::default()
        });
        for i in 0..3 {
            d.append(F, entry(i));
        }
        let (_, t) = d.begin_fsync(F);
        d.complete_fsync(t);
        d
    }

    #[test]
    fn power_loss_drops_exactly_the_unflushed_suffix() {
        let mut d = three_fsynced_entries();
        d.append(F, entry(3));
        d.append(F, entry(4));
        d.power_loss(false, &mut rng_for(1, 2));
        let kept: Vec<u64> = d.read(F).iter().map(value).collect();
        assert_eq!(kept, vec![0, 1, 2]);
    }

    #[test]
    fn truncation_not_yet_durable_reappears_after_power_loss() {
        let mut d = three_fsynced_entries();
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

    fn throttled_disk() -> NodeDisk {
        NodeDisk::new(DiskConfig {
            bandwidth_bytes_per_sec: 1_000_000,
            dirty: Some(DirtyThresholds {
                background_bytes: 1_000_000,
                limit_bytes: 2_000_000,
            }),
            ..DiskConfig::default()
        })
    }

    #[test]
    fn writes_run_free_under_the_freerun_point() {
        let mut d = throttled_disk();
        // 1.5 MB dirty: at the freerun point (halfway between 1 MB and 2 MB), free.
        assert_eq!(d.write_stall(Instant::ZERO, 1_500_000), Duration::ZERO);
        // Without thresholds nothing ever blocks.
        let mut unlimited = NodeDisk::new(DiskConfig::default());
        assert_eq!(
            unlimited.write_stall(Instant::ZERO, u32::MAX as u64),
            Duration::ZERO
        );
    }

    #[test]
    fn writers_over_the_freerun_point_are_paused_at_the_disk_rate() {
        let mut d = throttled_disk();
        d.write_stall(Instant::ZERO, 1_500_000);
        // 1.75 MB is the setpoint: pos_ratio 1, so 10 kB pause for 10 ms at 1 MB/s.
        assert_eq!(
            d.write_stall(Instant::ZERO, 250_000),
            Duration::from_millis(200),
            "a long pause is capped at MAX_PAUSE"
        );
        let pause = d.write_stall(Instant::ZERO, 10_000);
        assert!(
            pause > Duration::from_millis(9) && pause < Duration::from_millis(11),
            "{pause:?}"
        );
    }

    #[test]
    fn writers_over_the_limit_wait_for_writeback() {
        let mut d = throttled_disk();
        // 3 MB dirty at once: the writer waits until 1 MB has been written back.
        assert_eq!(
            d.write_stall(Instant::ZERO, 3_000_000),
            Duration::from_secs(1)
        );
        // Writeback stops at the background threshold: 1 MB stays dirty, so 0.5 MB more
        // lands at the freerun point and runs free.
        assert_eq!(
            d.write_stall(Instant::from_millis(10_000), 500_000),
            Duration::ZERO
        );
        assert!(d.throttled >= Duration::from_secs(1));
    }

    #[test]
    fn nothing_is_written_back_under_the_background_threshold() {
        let mut d = throttled_disk();
        d.write_stall(Instant::ZERO, 900_000);
        // Ten seconds later the 0.9 MB is still dirty (no flusher below 1 MB): 0.65 MB more
        // crosses the freerun point and is throttled.
        assert!(d.write_stall(Instant::from_millis(10_000), 650_000) > Duration::ZERO);
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
