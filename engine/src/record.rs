//! Records, batches and the names that address them.
//!
//! Payload bytes are never stored: a record carries a unique value id (so every record can be
//! traced through the history), its key, its modelled size and timestamps. Sizes drive the
//! cost model and every byte-based limit (`batch.size`, `fetch.max.bytes`, ...).

use crate::compression::Compression;
use crate::time::Instant;
use std::sync::Arc;

/// A topic, by its index in the cluster's topic table. Names live in the scenario; the engine
/// only needs a stable identity (Kafka itself moved to topic ids in KIP-516).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicId(pub u32);

/// One partition of one topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    pub topic: TopicId,
    pub partition: u32,
}

impl TopicPartition {
    pub const fn new(topic: TopicId, partition: u32) -> TopicPartition {
        TopicPartition { topic, partition }
    }
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "t{}/{}", self.topic.0, self.partition)
    }
}

/// The unique identity of a produced value. The simulator hands out ids so that no two sends,
/// across all producers and retries of a run, share one: a value seen twice is a duplicate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ValueId(pub u64);

/// A record key. Workloads draw keys from `0..keys`; the bytes a partitioner hashes are the
/// key's decimal text (`"17"`), which is what a service keying by an id would send.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key(pub u32);

impl Key {
    /// Length of [`Key::bytes`] (the number of decimal digits), without writing them: a
    /// record's size is read on every produce, append, replication, fetch and cost
    /// computation, and a cached size per batch would grow every batch every replica keeps.
    pub fn byte_len(self) -> u32 {
        self.0.checked_ilog10().map_or(1, |l| l + 1)
    }

    /// The key's wire bytes: its decimal representation, without allocation.
    pub fn bytes(self) -> KeyBytes {
        let mut buf = [0u8; 10];
        let mut n = self.0;
        let mut i = buf.len();
        loop {
            i -= 1;
            buf[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        KeyBytes {
            buf,
            start: i as u8,
        }
    }
}

/// Stack copy of a key's bytes (see [`Key::bytes`]).
#[derive(Clone, Copy, Debug)]
pub struct KeyBytes {
    buf: [u8; 10],
    start: u8,
}

impl std::ops::Deref for KeyBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.buf[self.start as usize..]
    }
}

/// A record as the log holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub value: ValueId,
    pub key: Option<Key>,
    /// Modelled value size in bytes (the payload itself is not stored).
    pub size: u32,
    /// When the application handed the record to its producer.
    pub create_time: Instant,
    /// Content of records of internal topics (`__consumer_offsets`), which the engine must be
    /// able to read back after a failover. `None` for user data, whose bytes are not modelled.
    pub payload: Option<Arc<InternalPayload>>,
}

/// What a record of an internal topic says. Stored in the log like any record, so it
/// replicates, truncates and is lost exactly as data is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InternalPayload {
    /// `__consumer_offsets`: the committed offset of one partition for one group.
    OffsetCommit {
        group: Arc<str>,
        partition: TopicPartition,
        offset: u64,
        leader_epoch: Option<u32>,
    },
    /// `__consumer_offsets`: group metadata after a completed rebalance (generation, members
    /// and, in the same order, each member's assignment and timeouts: Kafka's
    /// `GroupMetadataValue` keeps `MemberMetadata.assignment`, `session_timeout` and
    /// `rebalance_timeout`, so a coordinator that loads the group after a failover can answer
    /// a SyncGroup of the stable group with the member's partitions, and gives a member that
    /// died meanwhile the session its client asked for before it is removed).
    GroupMetadata {
        group: Arc<str>,
        generation: i32,
        protocol: Arc<str>,
        members: Arc<[Arc<str>]>,
        assignments: Arc<[Arc<Vec<TopicPartition>>]>,
        /// Each member's (session timeout, rebalance timeout), in `members` order.
        timeouts: Arc<[MemberTimeouts]>,
        /// Each member's `group.instance.id` (KIP-345; `None` for a dynamic member), in
        /// `members` order: `GroupMetadataValue` v3 keeps it, so a coordinator that loads the
        /// group after a failover still maps each static member to its member id.
        instance_ids: Arc<[Option<Arc<str>>]>,
    },
    /// `__transaction_state`: the coordinator's state of one transactional.id after a
    /// transition (Kafka's `TransactionLog` value: producer id, epochs, state, partitions,
    /// timeout, start time). The last record of an id is its state after a failover.
    TransactionMetadata {
        transactional_id: Arc<str>,
        metadata: crate::coordinator::txn_metadata::TxnMetadata,
    },
}

/// A group member's timeouts as its JoinGroup asked for them (`session.timeout.ms`, and the
/// rebalance timeout: Java's `max.poll.interval.ms`, sarama's `Consumer.Group.Rebalance.Timeout`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemberTimeouts {
    pub session: crate::time::Duration,
    pub rebalance: crate::time::Duration,
}

/// Per-record overhead in a v2 record batch (varint lengths, attributes, deltas, headers
/// count): about 8 bytes plus the key bytes for small records.
pub const RECORD_OVERHEAD_BYTES: u32 = 8;
/// Size of a v2 record batch header (magic 2), as Kafka's `DefaultRecordBatch`.
pub const BATCH_HEADER_BYTES: u32 = 61;

impl Record {
    /// Bytes this record occupies inside a batch.
    pub fn wire_size(&self) -> u32 {
        let key_len = self.key.map_or(0, Key::byte_len);
        self.size + key_len + RECORD_OVERHEAD_BYTES
    }
}

/// `producer_id` of a batch written without idempotence (Kafka's NO_PRODUCER_ID).
pub const NO_PRODUCER_ID: i64 = -1;
/// `base_sequence` of a batch written without idempotence (Kafka's NO_SEQUENCE).
pub const NO_SEQUENCE: i32 = -1;

/// A record batch: the unit of produce, replication, storage and fetch.
///
/// `records` is shared (`Arc`) so that moving a batch from a produce request into the log,
/// onto the disk and out to followers and consumers never copies the records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordBatch {
    /// Offset of the first record; assigned by the partition leader on append.
    pub base_offset: u64,
    /// Leader epoch of the leader that appended the batch (stamped on append).
    pub partition_leader_epoch: u32,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub is_transactional: bool,
    /// A transaction marker (commit / abort) rather than data.
    pub control: Option<ControlMarker>,
    /// The records; replace them only through [`RecordBatch::set_records`], which keeps
    /// their size in step.
    pub records: Arc<[Record]>,
    /// The codec the producer compressed the records with, and how much it shrank them.
    pub compression: Compression,
    /// [`RecordBatch::records_size`], computed once when the records are set: a batch's size
    /// is read on every produce, append, replication, fetch and cost computation, and summing
    /// its records (with each key's decimal length) each time was ~10 passes per record.
    records_bytes: u32,
}

fn sum_records_size(records: &[Record]) -> u32 {
    records.iter().map(Record::wire_size).sum::<u32>()
}

/// Transaction control markers written by the coordinator into data partitions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlMarker {
    Commit,
    Abort,
}

impl RecordBatch {
    /// A plain (non-idempotent, non-transactional) batch; offsets are assigned on append.
    pub fn new(records: Arc<[Record]>) -> RecordBatch {
        let records_bytes = sum_records_size(&records);
        RecordBatch {
            base_offset: 0,
            partition_leader_epoch: 0,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: -1,
            base_sequence: NO_SEQUENCE,
            is_transactional: false,
            control: None,
            records,
            compression: Compression::NONE,
            records_bytes,
        }
    }

    /// Replace the records (a slice of the batch), keeping their size in step.
    pub fn set_records(&mut self, records: Arc<[Record]>) {
        self.records_bytes = sum_records_size(&records);
        self.records = records;
    }

    /// A commit or abort marker of a producer's transaction, as the transaction coordinator
    /// has partition leaders append it (`WriteTxnMarkers`): a control batch of one record,
    /// transactional, without a sequence (Kafka's `MemoryRecords.withEndTransactionMarker`).
    pub fn control_marker(
        producer_id: i64,
        producer_epoch: i16,
        marker: ControlMarker,
    ) -> RecordBatch {
        RecordBatch {
            producer_id,
            producer_epoch,
            is_transactional: true,
            control: Some(marker),
            ..RecordBatch::new(Vec::new().into())
        }
    }

    /// Number of offsets the batch spans (a control batch spans one).
    pub fn record_count(&self) -> u64 {
        self.records.len().max(1) as u64
    }

    /// Offset of the last record of the batch.
    pub fn last_offset(&self) -> u64 {
        self.base_offset + self.record_count() - 1
    }

    /// The offset after this batch.
    pub fn next_offset(&self) -> u64 {
        self.base_offset + self.record_count()
    }

    /// Modelled size on the wire and on disk: the header, then the records, compressed as
    /// a whole when the batch is.
    pub fn wire_size(&self) -> u32 {
        BATCH_HEADER_BYTES + self.compression.compressed(self.records_size())
    }

    /// Bytes of the records before compression (what a codec reads or writes).
    pub fn records_size(&self) -> u32 {
        self.records_bytes
    }

    /// Whether the cached size is that of the records (the log asserts it on every append).
    pub fn size_is_current(&self) -> bool {
        self.records_bytes == sum_records_size(&self.records)
    }

    /// Sequence number of the last record (idempotent batches only).
    pub fn last_sequence(&self) -> i32 {
        if self.base_sequence == NO_SEQUENCE {
            return NO_SEQUENCE;
        }
        // Sequences wrap at i32::MAX, as in Kafka.
        let last = self.base_sequence as i64 + self.records.len() as i64 - 1;
        (last % (i32::MAX as i64 + 1)) as i32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every replica's log and disk keep one per batch: the cached size must not grow it.
    #[test]
    fn a_batch_stays_56_bytes() {
        assert_eq!(std::mem::size_of::<RecordBatch>(), 56);
        assert_eq!(std::mem::size_of::<crate::compression::Compression>(), 8);
    }

    #[test]
    fn key_bytes_are_decimal_text() {
        assert_eq!(&*Key(0).bytes(), b"0");
        assert_eq!(&*Key(17).bytes(), b"17");
        assert_eq!(&*Key(u32::MAX).bytes(), b"4294967295");
        for k in [
            0,
            1,
            9,
            10,
            99,
            100,
            999_999,
            1_000_000,
            u32::MAX - 1,
            u32::MAX,
        ] {
            assert_eq!(Key(k).byte_len() as usize, Key(k).bytes().len(), "key {k}");
        }
    }

    #[test]
    fn batch_offsets() {
        let rec = |v| Record {
            value: ValueId(v),
            key: None,
            size: 100,
            create_time: Instant::ZERO,
            payload: None,
        };
        let mut b = RecordBatch::new(vec![rec(1), rec(2), rec(3)].into());
        b.base_offset = 10;
        assert_eq!(b.last_offset(), 12);
        assert_eq!(b.next_offset(), 13);
        assert_eq!(b.wire_size(), 61 + 3 * 108);
    }
}
