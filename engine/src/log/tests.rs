//! Tests of the partition log (`mod.rs`), and the helpers other engine tests take from here
//! (`batch`, `TP`; `MemDisk` and `with_cx` re-exported from `testkit`).

use super::*;
use crate::node::{Disk, Effect, NodeId};
use crate::record::{Record, TopicId, ValueId};
use rand::SeedableRng;

/// The engine's test disk and throwaway `Cx`, re-exported for the log's and replica's
/// tests.
pub use crate::testkit::{with_cx, with_cx_at, MemDisk};

pub fn batch(values: &[u64]) -> RecordBatch {
    let recs: Vec<Record> = values
        .iter()
        .map(|&v| Record {
            value: ValueId(v),
            key: None,
            size: 10,
            create_time: Instant::ZERO,
            payload: None,
        })
        .collect();
    RecordBatch::new(recs.into())
}

pub const TP: TopicPartition = TopicPartition::new(TopicId(0), 0);

#[test]
fn append_assigns_offsets_and_epochs() {
    let mut disk = MemDisk::default();
    let mut log = Log::new(TP);
    with_cx(&mut disk, |cx| {
        log.append_as_leader(cx, batch(&[1, 2]), 0, FlushPolicy::default());
        log.append_as_leader(cx, batch(&[3]), 2, FlushPolicy::default());
    });
    assert_eq!(log.log_end_offset(), 3);
    assert_eq!(log.epoch_cache().entries(), &[(0, 0), (2, 2)]);
    assert_eq!(log.record_at(2).unwrap().value, ValueId(3));
    assert_eq!(disk.read(FileId::Log(TP)).len(), 2);
}

#[test]
fn truncate_mid_batch_keeps_prefix_on_disk_too() {
    let mut disk = MemDisk::default();
    let mut log = Log::new(TP);
    with_cx(&mut disk, |cx| {
        log.append_as_leader(cx, batch(&[1, 2, 3]), 0, FlushPolicy::default());
        log.append_as_leader(cx, batch(&[4]), 1, FlushPolicy::default());
        assert!(log.truncate_to(cx, 2));
    });
    assert_eq!(log.log_end_offset(), 2);
    assert_eq!(log.epoch_cache().entries(), &[(0, 0)]);
    let on_disk: u64 = disk
        .read(FileId::Log(TP))
        .iter()
        .map(|e| match &e.data {
            DiskData::Batch(b) => b.record_count(),
            _ => 0,
        })
        .sum();
    assert_eq!(on_disk, 2);
}

#[test]
fn follower_append_slices_overlap_and_read_respects_max_offset() {
    let mut disk = MemDisk::default();
    let mut leader = Log::new(TP);
    let mut follower = Log::new(TP);
    with_cx(&mut disk, |cx| {
        leader.append_as_leader(cx, batch(&[1, 2, 3]), 0, FlushPolicy::default());
        leader.append_as_leader(cx, batch(&[4, 5]), 0, FlushPolicy::default());
    });
    let mut fdisk = MemDisk::default();
    with_cx(&mut fdisk, |cx| {
        follower.append_as_follower(
            cx,
            &leader.read(0, 1, u64::MAX)[..1],
            FlushPolicy::default(),
        );
        follower.truncate_to(cx, 1);
        follower.append_as_follower(
            cx,
            &leader.read(1, 1 << 20, u64::MAX),
            FlushPolicy::default(),
        );
    });
    assert_eq!(follower.log_end_offset(), 5);
    for o in 0..5 {
        assert_eq!(follower.record_at(o), leader.record_at(o));
    }
    assert_eq!(leader.read(0, 1 << 20, 3).len(), 1);
    assert_eq!(leader.read(0, 1 << 20, 4).len(), 1);
}

#[test]
fn flush_policy_requires_sync_before_ack() {
    let mut disk = MemDisk::default();
    let mut log = Log::new(TP);
    let policy = FlushPolicy {
        interval_messages: Some(1),
        interval: None,
    };
    let (_, effects) = with_cx(&mut disk, |cx| {
        log.append_as_leader(cx, batch(&[1]), 0, policy);
    });
    assert!(effects.iter().any(|e| matches!(
        e,
        Effect::Fsync {
            file: FileId::Log(_),
            ..
        }
    )));
    assert!(!log.is_synced_through(1));
    assert!(log.on_fsync_done(1));
    assert!(log.is_synced_through(1));
    let mut unflushed = Log::new(TP);
    with_cx(&mut disk, |cx| {
        unflushed.append_as_leader(cx, batch(&[1]), 0, FlushPolicy::default());
    });
    assert!(unflushed.is_synced_through(1), "default policy never waits");
}

#[test]
fn flush_interval_ms_flushes_only_stale_unflushed_data() {
    let mut disk = MemDisk::default();
    let mut log = Log::new(TP);
    let policy = FlushPolicy {
        interval_messages: None,
        interval: Some(Duration::from_millis(100)),
    };
    let (_, effects) = with_cx(&mut disk, |cx| {
        log.maybe_flush_by_time(cx, policy);
        log.append_as_leader(cx, batch(&[1]), 0, policy);
        log.maybe_flush_by_time(cx, policy);
    });
    let fsyncs = |effects: &[Effect]| {
        effects
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    Effect::Fsync {
                        file: FileId::Log(_),
                        ..
                    }
                )
            })
            .count()
    };
    assert_eq!(
        fsyncs(&effects),
        0,
        "nothing is older than the interval at time zero"
    );
    log.last_flush = Instant::ZERO;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let mut out = Vec::new();
    let mut ids = 0;
    let later = Instant::from_millis(150);
    let mut cx = Cx::new(later, NodeId(0), &mut rng, &mut disk, &mut out, &mut ids);
    log.maybe_flush_by_time(&mut cx, policy);
    log.maybe_flush_by_time(&mut cx, policy);
    assert_eq!(fsyncs(&out), 1, "one flush, then nothing unflushed");
}
