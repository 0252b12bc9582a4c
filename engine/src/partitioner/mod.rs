//! Producer partitioners of every modelled client: which partition a record goes to.
//!
//! Keyed placement must be bit-exact with the real clients, because a scenario that mixes
//! clients (a Go service and a Java service writing one topic) only keeps per-key order when
//! they agree; `engine/tests/all/partitioner_oracle.rs` checks every hash against values recorded
//! from the real libraries (shared/oracles/partitioners.json). Records whose key is not hashed
//! (null keys, and empty keys for some kinds) are spread randomly, stickily or round-robin as
//! each client does; all randomness comes from the producer's `ChaCha8Rng`.
//!
//! Modelled: Java (Kafka 3.3+ `BuiltInPartitioner`, uniform sticky, KIP-794), sarama
//! (1.22 .. 1.43), kafka-go (>= v0.3.1, when `Hash` became sarama compatible), librdkafka 2.x.
//! Left out: partition availability (clients that skip partitions without a leader pick among
//! all partitions here) and Java's adaptive weighting by queue size (see [`sticky`]).

mod crc32;
mod expr;
mod fnv1a;
mod kind;
mod murmur2;
mod sticky;

pub use crc32::crc32;
pub use expr::{PartitionExpr, MAX_PARTITION_EXPR};
pub use fnv1a::fnv1a;
pub use kind::PartitionerKind;
pub use murmur2::murmur2;

use crate::record::TopicId;
use crate::time::{Duration, Instant};
use kind::{KeyHash, Spread};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use sticky::{random_partition, JavaSticky, LibrdkafkaSticky};

/// The producer settings partitioners read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionerConfig {
    /// Java `batch.size` in bytes: the sticky partition switches after this many bytes.
    pub batch_size: u32,
    /// librdkafka `sticky.partitioning.linger.ms`: how long a sticky partition is kept;
    /// zero means a random partition per record.
    pub sticky_linger: Duration,
}

impl Default for PartitionerConfig {
    /// The clients' defaults: Java `batch.size` = 16384, librdkafka
    /// `sticky.partitioning.linger.ms` = 10.
    fn default() -> PartitionerConfig {
        PartitionerConfig {
            batch_size: 16_384,
            sticky_linger: Duration::from_millis(10),
        }
    }
}

/// One record to place.
#[derive(Clone, Copy, Debug)]
pub struct PartitionRequest<'a> {
    /// The key bytes; `None` is a null key, `Some(&[])` the empty key (not the same thing).
    pub key: Option<&'a [u8]>,
    /// The partition the application named. Required by [`PartitionerKind::Manual`]; also
    /// honoured by the Java and librdkafka kinds, ignored by the other sarama kinds and by
    /// kafka-go (see [`PartitionerKind::honours_explicit`]).
    pub explicit: Option<u32>,
    /// The record's size in bytes (Java sticky switch, kafka-go least-bytes).
    pub record_bytes: u32,
    /// The topic's partition count, at least 1.
    pub partitions: u32,
    /// Current simulated time (librdkafka sticky linger).
    pub now: Instant,
}

/// Spreading state for one topic (or, for kafka-go, one writer).
#[derive(Clone, Debug, Default)]
struct SpreadState {
    java_sticky: Option<JavaSticky>,
    librdkafka_sticky: Option<LibrdkafkaSticky>,
    /// sarama: the next partition, reset to 0 when it reaches the count. kafka-go: a
    /// wrapping counter taken modulo the count.
    round_robin: u32,
    /// kafka-go `LeastBytes`: bytes written per partition; reset when the count changes.
    bytes_written: Vec<u64>,
}

/// One producer's partitioner: the kind, its settings and its per-topic state.
///
/// kafka-go keeps one balancer per `Writer`, so its round-robin counter and least-bytes
/// counters are shared by all topics of the writer; the other clients keep state per topic.
#[derive(Clone, Debug)]
pub struct Partitioner {
    kind: PartitionerKind,
    config: PartitionerConfig,
    topics: BTreeMap<TopicId, SpreadState>,
    writer: SpreadState,
}

impl Partitioner {
    pub fn new(kind: PartitionerKind, config: PartitionerConfig) -> Partitioner {
        Partitioner {
            kind,
            config,
            topics: BTreeMap::new(),
            writer: SpreadState::default(),
        }
    }

    pub fn kind(&self) -> PartitionerKind {
        self.kind
    }

    /// Partition for one record; `rng` is the producer's stream. Never returns >= partitions.
    pub fn partition(
        &mut self,
        topic: TopicId,
        req: &PartitionRequest,
        rng: &mut ChaCha8Rng,
    ) -> u32 {
        assert!(
            req.partitions >= 1,
            "partitioner {}: topic {} has no partitions",
            self.kind,
            topic.0
        );
        let explicit = req.explicit.filter(|_| self.kind.honours_explicit());
        let partition = match (explicit, self.hashed(req)) {
            (Some(_), _) => self.explicit(topic, req),
            (None, Some(partition)) => partition,
            (None, None) => self.spread(topic, req, rng),
        };
        assert!(
            partition < req.partitions,
            "partitioner {} chose partition {partition} of topic {} with {} partitions",
            self.kind,
            topic.0,
            req.partitions
        );
        partition
    }

    /// The hashed partition when this kind hashes this record's key.
    fn hashed(&self, req: &PartitionRequest) -> Option<u32> {
        let behaviour = self.kind.behaviour();
        let hash = behaviour.hash?;
        let key = match req.key {
            Some(key) if !key.is_empty() || behaviour.hash_empty_key => key,
            None if behaviour.hash_null_key => &[],
            _ => return None,
        };
        Some(hash_partition(hash, key, req.partitions))
    }

    /// The partition of a record whose key is not hashed.
    fn spread(&mut self, topic: TopicId, req: &PartitionRequest, rng: &mut ChaCha8Rng) -> u32 {
        let behaviour = self.kind.behaviour();
        let spread = match req.key {
            Some(_) => behaviour.keyed_spread,
            None => behaviour.null_spread,
        };
        let n = req.partitions;
        match spread {
            Spread::Random => random_partition(n, rng),
            Spread::Explicit => self.explicit(topic, req),
            Spread::JavaSticky => {
                let state = &mut self.topics.entry(topic).or_default().java_sticky;
                JavaSticky::next(state, n, req.record_bytes, self.config.batch_size, rng)
            }
            Spread::LibrdkafkaSticky => {
                let state = &mut self.topics.entry(topic).or_default().librdkafka_sticky;
                LibrdkafkaSticky::next(state, n, self.config.sticky_linger, req.now, rng)
            }
            Spread::RoundRobinPerTopic => {
                round_robin_sarama(&mut self.topics.entry(topic).or_default().round_robin, n)
            }
            Spread::RoundRobinPerWriter => round_robin_kafka_go(&mut self.writer.round_robin, n),
            Spread::LeastBytes => least_bytes(&mut self.writer.bytes_written, n, req.record_bytes),
        }
    }

    /// The record's own partition. The producer evaluates the scenario's `partition`
    /// expression and fails a record naming a missing partition before it asks (see
    /// `producer/mod.rs`), so a violation here is a producer bug.
    fn explicit(&self, topic: TopicId, req: &PartitionRequest) -> u32 {
        let partition = req.explicit.unwrap_or_else(|| {
            panic!(
                "manual partitioner: record for topic {} names no partition (producer bug)",
                topic.0
            )
        });
        assert!(
            partition < req.partitions,
            "partitioner {}: record names partition {partition} of topic {} with {} partitions \
             (producer bug)",
            self.kind,
            topic.0,
            req.partitions
        );
        partition
    }
}

/// Deterministic keyed result (None for kinds that do not hash keys, e.g. random/round-robin,
/// and for an empty key the kind does not hash, e.g. librdkafka `consistent_random`).
pub fn keyed_partition(kind: PartitionerKind, key: &[u8], partitions: u32) -> Option<u32> {
    assert!(
        partitions >= 1,
        "keyed_partition: partition count must be at least 1"
    );
    let behaviour = kind.behaviour();
    let hash = behaviour.hash?;
    if key.is_empty() && !behaviour.hash_empty_key {
        return None;
    }
    Some(hash_partition(hash, key, partitions))
}

fn hash_partition(hash: KeyHash, key: &[u8], partitions: u32) -> u32 {
    match hash {
        KeyHash::Murmur2 => murmur2::partition(key, partitions),
        KeyHash::Fnv1aSarama => fnv1a::partition_sarama(key, partitions),
        KeyHash::Fnv1aReference => fnv1a::partition_reference(key, partitions),
        KeyHash::Crc32 => crc32::partition(key, partitions),
    }
}

/// sarama `roundRobinPartitioner`: `if p >= n { p = 0 }; return p++`.
fn round_robin_sarama(next: &mut u32, partitions: u32) -> u32 {
    if *next >= partitions {
        *next = 0;
    }
    let partition = *next;
    *next += 1;
    partition
}

/// kafka-go `RoundRobin`: `partitions[(atomic.AddUint32(&offset, 1) - 1) % len]`.
fn round_robin_kafka_go(offset: &mut u32, partitions: u32) -> u32 {
    let partition = *offset % partitions;
    *offset = offset.wrapping_add(1);
    partition
}

/// kafka-go `LeastBytes`: the partition with the fewest bytes written by this writer, ties to
/// the lowest index; counters restart when the partition count changes (as kafka-go's do when
/// `len(partitions) != len(counters)`). kafka-go counts key + value bytes; kafsim counts the
/// record's modelled size.
fn least_bytes(bytes_written: &mut Vec<u64>, partitions: u32, record_bytes: u32) -> u32 {
    if bytes_written.len() != partitions as usize {
        *bytes_written = vec![0; partitions as usize];
    }
    let (index, _) = bytes_written
        .iter()
        .enumerate()
        .min_by_key(|(index, bytes)| (**bytes, *index))
        .expect("at least one partition");
    bytes_written[index] += u64::from(record_bytes);
    index as u32
}
