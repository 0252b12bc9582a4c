//! `replication-offset-checkpoint`: the high watermark of every partition a broker hosts,
//! written every `replica.high.watermark.checkpoint.interval.ms` (default 5000) and fsynced
//! (Kafka's `CheckpointFile` syncs before its rename). After a restart a replica starts from
//! this possibly stale HW: the legacy truncation protocol truncates to it, which is how
//! KIP-101's data loss happened.

use crate::node::{Cx, Disk, DiskData, DiskEntry, FileId};
use crate::record::TopicPartition;
use std::collections::BTreeMap;

/// Overwrite the checkpoint with `hws` and fsync it.
pub fn write_high_watermarks(cx: &mut Cx, hws: Vec<(TopicPartition, u64)>) {
    // One entry per partition: a reader takes the last, so a repeated one would be ambiguous.
    assert!(
        hws.windows(2).all(|w| w[0].0 < w[1].0),
        "{}: high-watermark checkpoint not in partition order",
        cx.me()
    );
    let bytes = 16 + 16 * hws.len() as u32;
    let file = FileId::HighWatermarkCheckpoint;
    cx.disk()
        .overwrite(file, vec![DiskEntry::new(DiskData::Offsets(hws), bytes)]);
    cx.disk_fsync(file, 0);
}

/// The checkpointed high watermarks (empty when the file is missing or torn).
pub fn read_high_watermarks(disk: &dyn Disk) -> BTreeMap<TopicPartition, u64> {
    let mut out = BTreeMap::new();
    for e in disk.read(FileId::HighWatermarkCheckpoint) {
        if let (DiskData::Offsets(hws), false) = (&e.data, e.torn) {
            out = hws.iter().copied().collect();
            assert_eq!(out.len(), hws.len(), "a checkpoint names a partition twice");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::tests::{with_cx, MemDisk, TP};
    use super::*;

    #[test]
    fn checkpoint_round_trip_and_torn_file_reads_empty() {
        let mut disk = MemDisk::default();
        with_cx(&mut disk, |cx| write_high_watermarks(cx, vec![(TP, 7)]));
        assert_eq!(read_high_watermarks(&disk).get(&TP), Some(&7));
        disk.files
            .get_mut(&FileId::HighWatermarkCheckpoint)
            .unwrap()[0]
            .torn = true;
        assert!(read_high_watermarks(&disk).is_empty());
    }
}
