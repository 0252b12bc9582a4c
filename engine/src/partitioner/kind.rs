//! The partitioner names a scenario may give (`partitioner = "sarama-hash"`), one per
//! partitioner each modelled client ships, and what each does with a key: which hash, and
//! where empty and null keys go. The names are `<client>-<the client's own name>`.

/// Declares [`PartitionerKind`] from one list of `Variant => "scenario-name"`, so the enum,
/// [`PartitionerKind::ALL`] and [`PartitionerKind::name`] cannot disagree.
macro_rules! partitioner_kinds {
    ($($(#[$doc:meta])* $kind:ident => $name:literal,)+) => {
        /// One variant per partitioner a client ships (see [`PartitionerKind::name`] for the
        /// names).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum PartitionerKind {
            $($(#[$doc])* $kind,)+
        }

        impl PartitionerKind {
            /// Every kind, in the order `kafsim partition` lists them.
            pub const ALL: [PartitionerKind; [$($name,)+].len()] = [$(PartitionerKind::$kind,)+];

            /// The scenario name of this kind.
            pub fn name(self) -> &'static str {
                match self {
                    $(PartitionerKind::$kind => $name,)+
                }
            }
        }
    };
}

partitioner_kinds! {
    /// Java `BuiltInPartitioner` (Kafka 3.3+, KIP-794): murmur2 for keys, sticky for null keys.
    JavaMurmur2 => "java-murmur2",
    /// sarama `NewHashPartitioner` (sarama's default): FNV-1a, abs of the int32 remainder.
    SaramaHash => "sarama-hash",
    /// sarama `NewReferenceHashPartitioner`: FNV-1a with the sign bit cleared.
    SaramaReferenceHash => "sarama-reference-hash",
    /// sarama `NewConsistentCRCHashPartitioner`: CRC-32, unsigned remainder.
    SaramaCrc32 => "sarama-crc32",
    /// sarama ships no murmur2 hash: this is `NewCustomPartitioner(WithAbsFirst(),
    /// WithCustomHashFunction(<Java murmur2>))`, the way a sarama service matches Java
    /// (`WithAbsFirst` is Java's `toPositive`); null keys random, as every sarama hash
    /// partitioner.
    SaramaMurmur2 => "sarama-murmur2",
    /// sarama `NewRandomPartitioner`.
    SaramaRandom => "sarama-random",
    /// sarama `NewRoundRobinPartitioner` (one counter per topic).
    SaramaRoundRobin => "sarama-round-robin",
    /// The record names its partition (sarama `NewManualPartitioner`, or any client's explicit
    /// partition).
    Manual => "manual",
    /// kafka-go `RoundRobin` (the `Writer` default; one counter per writer).
    KafkaGoRoundRobin => "kafka-go-round-robin",
    /// kafka-go `Hash` (>= v0.3.1: sarama's formula); null keys round-robin.
    KafkaGoHash => "kafka-go-hash",
    /// kafka-go `ReferenceHash`; null keys round-robin.
    KafkaGoReferenceHash => "kafka-go-reference-hash",
    /// kafka-go `CRC32Balancer{}`: librdkafka `consistent_random` compatible.
    KafkaGoCrc32 => "kafka-go-crc32",
    /// kafka-go `Murmur2Balancer{}`: librdkafka `murmur2_random` compatible.
    KafkaGoMurmur2 => "kafka-go-murmur2",
    /// kafka-go `LeastBytes`: the partition this writer has written the fewest bytes to.
    KafkaGoLeastBytes => "kafka-go-least-bytes",
    /// librdkafka `consistent_random` (its default): CRC-32, empty and null keys sticky.
    LibrdkafkaConsistentRandom => "librdkafka-consistent-random",
    /// librdkafka `consistent`: CRC-32; empty and null keys both hash to partition 0.
    LibrdkafkaConsistent => "librdkafka-consistent",
    /// librdkafka `murmur2`: Java compatible; a null key hashes like the empty key.
    LibrdkafkaMurmur2 => "librdkafka-murmur2",
    /// librdkafka `murmur2_random`: Java compatible; null keys sticky.
    LibrdkafkaMurmur2Random => "librdkafka-murmur2-random",
    /// librdkafka `fnv1a`: sarama compatible; a null key hashes like the empty key.
    LibrdkafkaFnv1a => "librdkafka-fnv1a",
    /// librdkafka `fnv1a_random`: sarama compatible; null keys sticky.
    LibrdkafkaFnv1aRandom => "librdkafka-fnv1a-random",
    /// librdkafka `random`: keyed records random per record, null keys sticky.
    LibrdkafkaRandom => "librdkafka-random",
}

/// The hash a keyed record is placed with, and the formula that turns it into a partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyHash {
    /// `toPositive(murmur2(key)) % n`.
    Murmur2,
    /// FNV-1a, `abs(int32(h) % n)` (sarama default; librdkafka fnv1a gives the same).
    Fnv1aSarama,
    /// FNV-1a, `(int32(h) & 0x7fffffff) % n`.
    Fnv1aReference,
    /// CRC-32 IEEE, `h % n` unsigned.
    Crc32,
}

/// Where a record goes when the partitioner does not hash its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Spread {
    /// Uniformly random per record.
    Random,
    /// Java KIP-794: stick to a partition for `batch.size` bytes.
    JavaSticky,
    /// librdkafka: stick to a partition for `sticky.partitioning.linger.ms`.
    LibrdkafkaSticky,
    /// Round robin with one counter per topic (sarama).
    RoundRobinPerTopic,
    /// Round robin with one counter per writer (kafka-go).
    RoundRobinPerWriter,
    /// Fewest bytes written by this writer (kafka-go `LeastBytes`).
    LeastBytes,
    /// The record's explicit partition.
    Explicit,
}

/// How one kind treats keys: the hash (if any), and where empty and null keys go.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Behaviour {
    /// The key hash; `None` when keys are not hashed and keyed records go by `keyed_spread`.
    pub hash: Option<KeyHash>,
    /// Whether the empty (non-null) key is hashed, or treated like a null key.
    pub hash_empty_key: bool,
    /// Whether a null key is hashed as the empty key (librdkafka's non-random partitioners).
    pub hash_null_key: bool,
    /// Where a keyed record goes when its key is not hashed (no hash, or an empty key the
    /// kind does not hash). Differs from `null_spread` only for librdkafka `random`.
    pub keyed_spread: Spread,
    /// Where a null key goes (when not hashed).
    pub null_spread: Spread,
}

use KeyHash::*;
use PartitionerKind::*;
use Spread::*;

const fn hashing(hash: KeyHash, hash_empty_key: bool, null_spread: Spread) -> Behaviour {
    Behaviour {
        hash: Some(hash),
        hash_empty_key,
        hash_null_key: false,
        keyed_spread: null_spread,
        null_spread,
    }
}

const fn spreading(keyed_spread: Spread, null_spread: Spread) -> Behaviour {
    Behaviour {
        hash: None,
        hash_empty_key: false,
        hash_null_key: false,
        keyed_spread,
        null_spread,
    }
}

const fn consistent(hash: KeyHash) -> Behaviour {
    Behaviour {
        hash: Some(hash),
        hash_empty_key: true,
        hash_null_key: true,
        keyed_spread: Random,
        null_spread: Random,
    }
}

impl PartitionerKind {
    /// The kind with this scenario name; the error lists every valid name.
    pub fn from_name(name: &str) -> Result<PartitionerKind, String> {
        PartitionerKind::ALL
            .into_iter()
            .find(|kind| kind.name() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = PartitionerKind::ALL.iter().map(|k| k.name()).collect();
                format!(
                    "unknown partitioner {name:?}; valid partitioners: {}",
                    names.join(", ")
                )
            })
    }

    /// Whether keyed records are placed by a hash of the key (false for random, round-robin,
    /// least-bytes and manual).
    pub fn hashes_keys(self) -> bool {
        self.behaviour().hash.is_some()
    }

    /// Whether a record's explicit partition overrides the partitioner. Java
    /// (`ProducerRecord.partition`) and librdkafka (`RD_KAFKA_PARTITION_UA` is the only value
    /// that runs the partitioner) honour it always; sarama only through its manual
    /// partitioner; kafka-go's `Writer` ignores `Message.Partition` ("read-only").
    pub fn honours_explicit(self) -> bool {
        matches!(
            self,
            Manual
                | JavaMurmur2
                | LibrdkafkaConsistentRandom
                | LibrdkafkaConsistent
                | LibrdkafkaMurmur2
                | LibrdkafkaMurmur2Random
                | LibrdkafkaFnv1a
                | LibrdkafkaFnv1aRandom
                | LibrdkafkaRandom
        )
    }

    /// What this kind does with keys. Sources: Kafka 3.3 `BuiltInPartitioner`; sarama
    /// `partitioner.go` (1.22 .. 1.43); kafka-go `balancer.go` (>= v0.3.1 for `Hash`);
    /// librdkafka 2.x `rdkafka_msg.c` `rd_kafka_msg_partitioner` and `rdkafka_topic.c`, where
    /// `consistent`, `murmur2` and `fnv1a` set `random_partitioner` so a null key reaches the
    /// hash function (length 0), while the `*_random` kinds and `random` send null keys (and,
    /// for `consistent_random`, empty keys) to the sticky partition.
    pub(crate) fn behaviour(self) -> Behaviour {
        match self {
            JavaMurmur2 => hashing(Murmur2, true, JavaSticky),
            SaramaHash => hashing(Fnv1aSarama, true, Random),
            SaramaReferenceHash => hashing(Fnv1aReference, true, Random),
            SaramaCrc32 => hashing(Crc32, true, Random),
            SaramaMurmur2 => hashing(Murmur2, true, Random),
            SaramaRandom => spreading(Random, Random),
            SaramaRoundRobin => spreading(RoundRobinPerTopic, RoundRobinPerTopic),
            Manual => spreading(Explicit, Explicit),
            KafkaGoRoundRobin => spreading(RoundRobinPerWriter, RoundRobinPerWriter),
            KafkaGoHash => hashing(Fnv1aSarama, true, RoundRobinPerWriter),
            KafkaGoReferenceHash => hashing(Fnv1aReference, true, RoundRobinPerWriter),
            // kafka-go: "the crc32 balancers in librdkafka don't differentiate between nil
            // and empty keys", so an empty key is random too.
            KafkaGoCrc32 => hashing(Crc32, false, Random),
            KafkaGoMurmur2 => hashing(Murmur2, true, Random),
            KafkaGoLeastBytes => spreading(LeastBytes, LeastBytes),
            LibrdkafkaConsistentRandom => hashing(Crc32, false, LibrdkafkaSticky),
            LibrdkafkaConsistent => consistent(Crc32),
            LibrdkafkaMurmur2 => consistent(Murmur2),
            LibrdkafkaMurmur2Random => hashing(Murmur2, true, LibrdkafkaSticky),
            LibrdkafkaFnv1a => consistent(Fnv1aSarama),
            LibrdkafkaFnv1aRandom => hashing(Fnv1aSarama, true, LibrdkafkaSticky),
            LibrdkafkaRandom => spreading(Random, LibrdkafkaSticky),
        }
    }
}

impl std::fmt::Display for PartitionerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
