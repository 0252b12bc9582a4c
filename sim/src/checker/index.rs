//! The lookups every checker shares, built in one pass over the history: who invoked each
//! value (and in which order), its first acknowledgement, its transaction and that
//! transaction's outcome, and per partition the offsets known to hold a value.
//!
//! Jepsen's must-have-committed inference (`jepsen.tests.kafka/must-have-committed?`): a
//! transaction whose outcome the producer never learned (open at the end, or ended with an
//! unknown outcome) but one of whose values a `read_committed` consumer read must have
//! committed, so all its acknowledged values are owed like those of a committed one. (A
//! read_uncommitted read proves nothing: it sees open transactions too.)
//!
//! Hash maps here serve lookups only; anything a checker iterates to produce output is a
//! sorted `Vec` or a `BTreeMap`, so output never depends on hash order.

use super::dense::{OffsetSet, RecentMap, ValueShape, ValueTable};
use crate::history::History;
use kafsim_engine::history::HistoryEvent;
use kafsim_engine::protocol::ErrorCode;
use kafsim_engine::{Instant, Key, TopicId, TopicPartition, ValueId};

/// The application handing a value to its producer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Invocation {
    /// Position among all `SendInvoke`s of the run: the invoke order the checkers compare.
    pub seq: u64,
    pub at: Instant,
    pub producer: u32,
    pub key: Option<Key>,
    pub topic: TopicId,
}

/// The first acknowledgement of a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ack {
    pub at: Instant,
    pub producer: u32,
    pub partition: TopicPartition,
    pub offset: u64,
}

/// The fate of one transaction, as its producer recorded it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxnOutcome {
    /// Neither committed nor aborted by the end of the history.
    Open,
    Committed(Instant),
    Aborted(Instant),
    /// The producer tried to end it and could not learn how it ended (`TxnUnknown`).
    Unknown(Instant),
}

/// A transaction: `(producer, txn)`.
pub type TxnId = (u32, u64);

/// Offsets of one partition known (from any ack or read) to hold a value.
#[derive(Clone, Debug, Default)]
struct KnownOffsets {
    /// Every offset with evidence.
    all: OffsetSet,
    /// Offsets holding at least one value that is not transactional or whose transaction
    /// committed: what a `read_committed` consumer must not skip. Values of transactions the
    /// history leaves open do not count: the coordinator aborts a transaction whose producer
    /// died (`transaction.timeout.ms`) without the producer recording it. `None` when the
    /// history has no transactional value: then every offset in `all` counts.
    committed: Option<OffsetSet>,
    /// By producer id, its values first acknowledged here at a known offset: what
    /// [`HistoryIndex::first_acks`] tells a checker sizing a per-(producer, partition) list.
    first_acks: Vec<usize>,
}

/// Producers with an id below this have their first acknowledgements counted per partition
/// ([`HistoryIndex::first_acks`]; a count is only a size hint).
const COUNTED_PRODUCERS: u32 = 1 << 10;

impl KnownOffsets {
    fn count_first_ack(&mut self, producer: u32) {
        if producer < COUNTED_PRODUCERS {
            let p = producer as usize;
            if p >= self.first_acks.len() {
                self.first_acks.resize(p + 1, 0);
            }
            self.first_acks[p] += 1;
        }
    }
}

#[derive(Debug, Default)]
pub struct HistoryIndex {
    invocations: ValueTable<Invocation>,
    acks: ValueTable<Ack>,
    txn_of: FastMap<ValueId, TxnId>,
    txn_outcome: FastMap<TxnId, TxnOutcome>,
    /// Open or unknown transactions a read_committed read proves committed.
    proven_committed: FastSet<TxnId>,
    /// Values whose send definitely failed and that were never acknowledged: when.
    failed: ValueTable<Instant>,
    /// Acknowledged values (see [`HistoryIndex::acknowledged`]), ascending.
    acknowledged: Vec<ValueId>,
    known: RecentMap<TopicPartition, KnownOffsets>,
    /// The blocks of value ids the producers invoked (see [`HistoryIndex::value_table`]).
    shape: ValueShape,
}

impl HistoryIndex {
    /// `read_committed` says which groups read with `isolation.level=read_committed`.
    pub fn build(history: &History, read_committed: impl Fn(u32) -> bool) -> HistoryIndex {
        // A first look: the value ids the producers invoked, so that every per-value table
        // is allocated once at its size (growing tables of hundreds of thousands of values
        // copies them over and over), and whether any value is transactional: without
        // transactional values every evidenced offset counts for read_committed too, and no
        // per-value evidence list is needed to tell them apart.
        let mut shape = ValueShape::default();
        let mut transactional = false;
        for slice in history.slices() {
            for entry in slice {
                match entry.event {
                    HistoryEvent::SendInvoke { value, .. } => shape.note(value),
                    HistoryEvent::TxnValue { .. } => transactional = true,
                    _ => {}
                }
            }
        }
        let mut index = HistoryIndex {
            invocations: ValueTable::with_shape(&shape),
            acks: ValueTable::with_shape(&shape),
            shape,
            ..HistoryIndex::default()
        };
        let mut committed_reads: Vec<ValueId> = Vec::new();
        // Values one of whose sends may have reached a log: never "definitely failed".
        let mut maybe_written: FastSet<ValueId> = FastSet::default();
        let mut evidence: Vec<(TopicPartition, u64, ValueId)> = Vec::new();
        let note = |known: &mut RecentMap<TopicPartition, KnownOffsets>,
                    evidence: &mut Vec<(TopicPartition, u64, ValueId)>,
                    partition: TopicPartition,
                    offset: u64,
                    value: ValueId| {
            if transactional {
                evidence.push((partition, offset, value));
            }
            // acks=0 acknowledgements carry no position.
            if offset != super::OFFSET_UNKNOWN {
                (known
                    .get_or_insert_with(partition, KnownOffsets::default)
                    .all)
                    .insert(offset);
            }
        };
        let mut seq = 0u64;
        for entry in history.entries() {
            match &entry.event {
                HistoryEvent::SendInvoke {
                    producer,
                    value,
                    key,
                    topic,
                    ..
                } => {
                    let invocation = Invocation {
                        seq,
                        at: entry.at,
                        producer: *producer,
                        key: *key,
                        topic: *topic,
                    };
                    seq += 1;
                    // An application resending a failed value (`on_error = "retry"`) invokes
                    // it again: its first invocation is the one its order is judged by.
                    let first = index.invocations.insert_if_absent(*value, invocation);
                    assert_eq!(
                        first.producer, *producer,
                        "value {value:?} invoked by two producers"
                    );
                }
                HistoryEvent::SendOk {
                    producer,
                    value,
                    partition,
                    offset,
                } => {
                    let acked = index.acks.len();
                    index.acks.insert_if_absent(
                        *value,
                        Ack {
                            at: entry.at,
                            producer: *producer,
                            partition: *partition,
                            offset: *offset,
                        },
                    );
                    note(&mut index.known, &mut evidence, *partition, *offset, *value);
                    if index.acks.len() != acked && *offset != super::OFFSET_UNKNOWN {
                        // The value's first acknowledgement, at a known offset (the lookup
                        // finds the partition `note` just used without hashing).
                        let known = index.known.get_mut(partition).expect("noted above");
                        known.count_first_ack(*producer);
                    }
                }
                HistoryEvent::Poll {
                    group,
                    partition,
                    offset,
                    value,
                    ..
                } => {
                    note(&mut index.known, &mut evidence, *partition, *offset, *value);
                    if read_committed(*group) {
                        committed_reads.push(*value);
                    }
                }
                HistoryEvent::SendFail { value, error, .. } => {
                    if definitely_not_appended(*error) {
                        index.failed.insert_if_absent(*value, entry.at);
                    } else {
                        maybe_written.insert(*value);
                    }
                }
                HistoryEvent::SendInfo { value, .. } => {
                    // A resend (`on_error = "retry"`) that ended unknown may have written it.
                    maybe_written.insert(*value);
                }
                HistoryEvent::TxnBegin { producer, txn } => {
                    index
                        .txn_outcome
                        .entry((*producer, *txn))
                        .or_insert(TxnOutcome::Open);
                }
                HistoryEvent::TxnValue {
                    producer,
                    txn,
                    value,
                } => {
                    index.txn_of.insert(*value, (*producer, *txn));
                    index
                        .txn_outcome
                        .entry((*producer, *txn))
                        .or_insert(TxnOutcome::Open);
                }
                HistoryEvent::TxnCommit { producer, txn } => {
                    index.end_txn((*producer, *txn), TxnOutcome::Committed(entry.at));
                }
                HistoryEvent::TxnAbort { producer, txn } => {
                    index.end_txn((*producer, *txn), TxnOutcome::Aborted(entry.at));
                }
                HistoryEvent::TxnUnknown { producer, txn, .. } => {
                    index.end_txn((*producer, *txn), TxnOutcome::Unknown(entry.at));
                }
                _ => {}
            }
        }
        let acks = &index.acks;
        index
            .failed
            .retain(|value, _| !acks.contains(value) && !maybe_written.contains(&value));
        for value in committed_reads {
            if let Some(txn) = index.txn_of(value) {
                if matches!(
                    index.txn_outcome(txn),
                    TxnOutcome::Open | TxnOutcome::Unknown(_)
                ) {
                    index.proven_committed.insert(txn);
                }
            }
        }
        index.build_committed(transactional, evidence);
        index.build_acknowledged();
        index
    }

    /// Records the end of a transaction; the first outcome recorded wins (a producer records
    /// one, and a second would be a client bug the transactions checker does not judge).
    fn end_txn(&mut self, txn: TxnId, outcome: TxnOutcome) {
        let slot = self.txn_outcome.entry(txn).or_insert(TxnOutcome::Open);
        if *slot == TxnOutcome::Open {
            *slot = outcome;
        }
    }

    /// The offsets a read_committed consumer must not skip (see [`KnownOffsets::committed`]).
    fn build_committed(
        &mut self,
        transactional: bool,
        evidence: Vec<(TopicPartition, u64, ValueId)>,
    ) {
        if transactional {
            for known in self.known.values_mut() {
                known.committed = Some(OffsetSet::default());
            }
            for (partition, offset, value) in evidence {
                if offset != super::OFFSET_UNKNOWN && self.committed_or_plain(value) {
                    let known = self.known.get_mut(&partition).expect("noted above");
                    known.committed.as_mut().expect("made above").insert(offset);
                }
            }
        }
        for known in self.known.values_mut() {
            known.all.finish();
            if let Some(committed) = &mut known.committed {
                committed.finish();
            }
        }
    }

    fn build_acknowledged(&mut self) {
        let mut acknowledged = self.acks.values_ascending();
        if !self.txn_of.is_empty() {
            acknowledged.retain(|value| self.committed_or_plain(*value));
        }
        self.acknowledged = acknowledged;
    }

    /// An empty per-value table allocated for every value the producers invoked: what a
    /// checker keeps per value.
    pub fn value_table<T>(&self) -> ValueTable<T> {
        ValueTable::with_shape(&self.shape)
    }

    pub fn invocation(&self, value: ValueId) -> Option<&Invocation> {
        self.invocations.get(value)
    }

    pub fn ack(&self, value: ValueId) -> Option<&Ack> {
        self.acks.get(value)
    }

    /// The topic a value was sent to (from its invoke, else its acknowledgement).
    pub fn topic(&self, value: ValueId) -> Option<TopicId> {
        self.invocation(value)
            .map(|i| i.topic)
            .or_else(|| self.ack(value).map(|a| a.partition.topic))
    }

    pub fn txn_of(&self, value: ValueId) -> Option<TxnId> {
        if self.txn_of.is_empty() {
            return None;
        }
        self.txn_of.get(&value).copied()
    }

    pub fn txn_outcome(&self, txn: TxnId) -> TxnOutcome {
        self.txn_outcome
            .get(&txn)
            .copied()
            .unwrap_or(TxnOutcome::Open)
    }

    /// When the transaction of `value` was aborted, if it was.
    pub fn aborted_at(&self, value: ValueId) -> Option<Instant> {
        match self.txn_of(value).map(|t| self.txn_outcome(t)) {
            Some(TxnOutcome::Aborted(at)) => Some(at),
            _ => None,
        }
    }

    /// Whether `value` is visible to `read_committed` consumers once written: it was not sent
    /// in a transaction, or its transaction committed (recorded, or proven by a read).
    pub fn committed_or_plain(&self, value: ValueId) -> bool {
        match self.txn_of(value) {
            None => true,
            Some(txn) => {
                matches!(self.txn_outcome(txn), TxnOutcome::Committed(_))
                    || self.proven_committed.contains(&txn)
            }
        }
    }

    /// Whether a read_committed read proved `txn` committed though its producer never
    /// learned the outcome (must-have-committed).
    pub fn proven_committed(&self, txn: TxnId) -> bool {
        self.proven_committed.contains(&txn)
    }

    /// Whether any value was sent in a transaction or definitely failed: without such values
    /// no read can be of a value that was never committed.
    pub fn has_uncommitted_values(&self) -> bool {
        !self.txn_of.is_empty() || !self.failed.is_empty()
    }

    /// When the send of `value` definitely failed, if it did and was never acknowledged.
    pub fn failed_at(&self, value: ValueId) -> Option<Instant> {
        self.failed.get(value).copied()
    }

    /// A value every consumer of its topic must eventually see: it got a `SendOk` (a later
    /// `SendInfo` does not undo that) and, if sent in a transaction, the transaction
    /// committed or a read proved it must have. Values of aborted or still-open
    /// transactions are not owed to anyone, as in Jepsen where a transactional send only
    /// counts once its transaction commits.
    pub fn acknowledged(&self, value: ValueId) -> bool {
        self.acks.contains(value) && self.committed_or_plain(value)
    }

    /// Values the producers sent (invoked).
    pub fn sends(&self) -> usize {
        self.invocations.len()
    }

    /// Every acknowledged value, ascending.
    pub fn acknowledged_values(&self) -> &[ValueId] {
        &self.acknowledged
    }

    /// One past the highest offset of `partition` known to hold a value, within the range
    /// kept densely (rounded up to 64): what a checker's per-offset table of the partition
    /// grows to, so that it can be allocated once.
    pub fn offset_bound(&self, partition: TopicPartition) -> usize {
        self.known
            .get(&partition)
            .map_or(0, |known| known.all.dense_len())
    }

    /// How many values `producer` had first acknowledged in `partition` at a known offset
    /// (0 for a producer id beyond the counted ones): the length of a per-(producer,
    /// partition) list of acknowledged sends.
    pub fn first_acks(&self, producer: u32, partition: TopicPartition) -> usize {
        let known = self.known.get(&partition);
        let count = known.and_then(|k| k.first_acks.get(producer as usize));
        count.copied().unwrap_or(0)
    }

    /// The lowest offset in `lo..hi` of `partition` known to hold a value; with
    /// `committed_only`, offsets holding only values of aborted or open transactions do not
    /// count (see [`HistoryIndex::committed_or_plain`]).
    pub fn first_known_in(
        &self,
        partition: TopicPartition,
        lo: u64,
        hi: u64,
        committed_only: bool,
    ) -> Option<u64> {
        if lo >= hi {
            return None;
        }
        let known = self.known.get(&partition)?;
        match (&known.committed, committed_only) {
            (Some(committed), true) => committed.first_in(lo, hi),
            _ => known.all.first_in(lo, hi),
        }
    }
}

/// Whether a `SendFail` with `error` proves the value is in no log: the broker refuses
/// these before appending (or the client never sent the record), so a read of the value
/// is an aborted read (Jepsen's g1a for a known-failed write). Anything else, above all a
/// timeout or a lost connection, leaves the outcome open (Jepsen's `:info`).
///
/// - `RecordListTooLarge` (RECORD_TOO_LARGE / RECORD_LIST_TOO_LARGE): `LogValidator` and
///   `UnifiedLog.append`'s size checks run before the append.
/// - `NotEnoughReplicas`: `Partition.appendRecordsToLeader` checks `min.insync.replicas`
///   before appending (unlike NOT_ENOUGH_REPLICAS_AFTER_APPEND).
/// - `OutOfOrderSequenceNumber`, `UnknownProducerId`, `InvalidProducerEpoch`,
///   `ProducerFenced`, `InvalidTxnState`, `TransactionCoordinatorFenced`,
///   `InvalidProducerIdMapping`: `ProducerAppendInfo` (ProducerStateManager) validates the
///   batch's producer state before the append; Java's `TransactionManager` and the
///   KafkaProducer fail later sends at once after a fenced error.
/// - `InvalidRequest`: kafsim's stand-in for a client-side rejection (a partition the topic
///   lacks: `KafkaProducer.waitOnMetadata`, sarama `ErrInvalidPartition`), never sent.
///
/// The producers record `SendFail` only when no attempt of the batch may have landed
/// (`producer::sender`'s `maybe_written`); this list is the checker's own guard on top.
/// `RequestTimedOut` and `NetworkException` are never definite: a broker's REQUEST_TIMED_OUT
/// comes after the leader appended (`DelayedProduce`), and a client-side timeout cannot
/// tell.
pub fn definitely_not_appended(error: ErrorCode) -> bool {
    use ErrorCode::*;
    matches!(
        error,
        RecordListTooLarge
            | NotEnoughReplicas
            | OutOfOrderSequenceNumber
            | UnknownProducerId
            | InvalidProducerEpoch
            | ProducerFenced
            | InvalidTxnState
            | TransactionCoordinatorFenced
            | InvalidProducerIdMapping
            | InvalidRequest
    )
}

/// The checkers' lookup tables: rustc-hash's Fx hasher, fast on the small integer keys
/// of a history (SipHash's DoS resistance buys nothing here) and deterministic (no random
/// seed). Lookup only: no output ever depends on a table's iteration order.
pub type FastMap<K, V> = rustc_hash::FxHashMap<K, V>;
/// A set with the same hasher as [`FastMap`].
pub type FastSet<K> = rustc_hash::FxHashSet<K>;
