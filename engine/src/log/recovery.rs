//! Log recovery on restart: rebuild a [`Log`] from exactly what the disk kept. After a
//! process crash that is the page cache; after a power loss only fsynced bytes, possibly with
//! a torn last write, which Kafka detects by the batch CRC and cuts (`LogSegment.recover`).
//! The leader-epoch cache comes from its checkpoint, cut to the recovered log end offset and
//! completed from the recovered batches, as `UnifiedLog` does.

use super::epoch_cache::LeaderEpochCache;
use super::Log;
use crate::node::{Disk, DiskData, FileId};
use crate::record::TopicPartition;

/// What recovery found, for the broker's history and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Entries cut from the end of the log file (torn or not contiguous).
    pub entries_cut: usize,
}

/// Rebuild the log of `tp` from `disk`, cutting a torn or invalid tail from the file.
pub fn load(tp: TopicPartition, disk: &mut dyn Disk) -> (Log, RecoveryReport) {
    let mut log = Log::new(tp);
    let file = FileId::Log(tp);
    let entries = disk.read(file);
    let mut valid = 0;
    for entry in entries {
        let DiskData::Batch(b) = &entry.data else {
            break;
        };
        if entry.torn || b.base_offset != log.log_end_offset {
            break;
        }
        log.log_end_offset = b.next_offset();
        log.batches.push(b.clone());
        valid += 1;
    }
    let entries_cut = entries.len() - valid;
    if entries_cut > 0 {
        disk.truncate(file, valid);
    }
    log.epochs = recover_epochs(disk, &log);
    log.durable_end = log.log_end_offset;
    assert!(
        log.batches
            .windows(2)
            .all(|w| w[0].next_offset() == w[1].base_offset),
        "log {tp}: recovered batches not contiguous"
    );
    assert_eq!(
        disk.read(file).len(),
        valid,
        "log {tp}: the file keeps a tail recovery cut"
    );
    log.check();
    (log, RecoveryReport { entries_cut })
}

fn recover_epochs(disk: &dyn Disk, log: &Log) -> LeaderEpochCache {
    let mut entries = Vec::new();
    for e in disk.read(FileId::LeaderEpochCheckpoint(log.tp)) {
        if let (DiskData::Epochs(es), false) = (&e.data, e.torn) {
            entries = es.clone();
        }
    }
    let mut cache = LeaderEpochCache::from_entries(entries);
    cache.truncate_from_end(log.log_end_offset.max(1));
    if log.log_end_offset == 0 {
        cache = LeaderEpochCache::default();
    }
    for b in &log.batches {
        cache.assign(b.partition_leader_epoch, b.base_offset);
    }
    assert!(
        cache
            .entries()
            .last()
            .is_none_or(|&(_, start)| start <= log.log_end_offset),
        "log {}: a recovered epoch starts past the log end {}",
        log.tp,
        log.log_end_offset
    );
    cache
}

#[cfg(test)]
mod tests {
    use super::super::tests::{batch, with_cx, MemDisk, TP};
    use super::super::FlushPolicy;
    use super::*;

    #[test]
    fn recovery_rebuilds_log_and_cuts_torn_tail() {
        let mut disk = MemDisk::default();
        let mut log = Log::new(TP);
        with_cx(&mut disk, |cx| {
            log.append_as_leader(cx, batch(&[1, 2]), 0, FlushPolicy::default());
            log.append_as_leader(cx, batch(&[3]), 1, FlushPolicy::default());
            log.append_as_leader(cx, batch(&[4]), 1, FlushPolicy::default());
        });
        let (same, report) = load(TP, &mut disk);
        assert_eq!(report.entries_cut, 0);
        assert_eq!(same.log_end_offset(), 4);
        assert_eq!(same.epoch_cache(), log.epoch_cache());

        disk.files.get_mut(&FileId::Log(TP)).unwrap()[2].torn = true;
        let (cut, report) = load(TP, &mut disk);
        assert_eq!(report.entries_cut, 1);
        assert_eq!(cut.log_end_offset(), 3);
        assert_eq!(disk.read(FileId::Log(TP)).len(), 2);
    }

    #[test]
    fn epochs_beyond_recovered_end_are_dropped() {
        let mut disk = MemDisk::default();
        let mut log = Log::new(TP);
        with_cx(&mut disk, |cx| {
            log.append_as_leader(cx, batch(&[1]), 0, FlushPolicy::default());
            log.append_as_leader(cx, batch(&[2]), 3, FlushPolicy::default());
        });
        disk.truncate(FileId::Log(TP), 1);
        let (rec, _) = load(TP, &mut disk);
        assert_eq!(rec.epoch_cache().entries(), &[(0, 0)]);
    }
}
