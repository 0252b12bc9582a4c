//! The partitioners against the real clients: every row of shared/oracles/partitioners.json
//! (values recorded from kafka-python, sarama and librdkafka) must come out of
//! `keyed_partition` and of a stateful `Partitioner`, and the kinds the oracle README says
//! share a hash must agree on every row. Plus the behaviour of records whose key is not hashed.

use kafsim_engine::partitioner::{
    keyed_partition, PartitionRequest, Partitioner, PartitionerConfig, PartitionerKind,
};
use kafsim_engine::{Duration, Instant, TopicId};
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::path::PathBuf;
use PartitionerKind::*;

/// One row of partitioners.json.
#[derive(serde::Deserialize)]
struct Row {
    algorithm: String,
    key_hex: String,
    partitions: u32,
    partition: u32,
}

/// shared/ sits beside the repository (`<repo>/../shared`); `KAFSIM_SHARED` overrides.
fn oracle_rows() -> Vec<Row> {
    let mut tried = Vec::new();
    let beside = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared");
    let mut candidates = vec![beside];
    if let Some(shared) = std::env::var_os("KAFSIM_SHARED") {
        candidates.push(PathBuf::from(shared));
    }
    for dir in candidates {
        let path = dir.join("oracles/partitioners.json");
        match std::fs::read_to_string(&path) {
            Ok(text) => return serde_json::from_str(&text).expect("partitioners.json parses"),
            Err(err) => tried.push(format!("{} ({err})", path.display())),
        }
    }
    panic!(
        "partitioners.json not found; tried: {}; set KAFSIM_SHARED to the shared/ folder",
        tried.join("; ")
    );
}

fn decode_hex(hex: &str) -> Vec<u8> {
    hex.as_bytes()
        .chunks(2)
        .map(|pair| {
            let pair = std::str::from_utf8(pair).expect("oracle hex is ASCII");
            assert_eq!(pair.len(), 2, "odd hex length in oracle: {hex}");
            u8::from_str_radix(pair, 16).expect("oracle hex")
        })
        .collect()
}

fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

fn keyed(key: &[u8], partitions: u32) -> PartitionRequest<'_> {
    PartitionRequest {
        key: Some(key),
        explicit: None,
        record_bytes: 100,
        partitions,
        now: Instant::ZERO,
    }
}

fn null_key(partitions: u32, record_bytes: u32, now: Instant) -> PartitionRequest<'static> {
    PartitionRequest {
        key: None,
        explicit: None,
        record_bytes,
        partitions,
        now,
    }
}

#[test]
fn every_oracle_row_matches() {
    let rows = oracle_rows();
    assert_eq!(rows.len(), 4224, "the oracle README promises 4224 rows");
    let mut per_algorithm: BTreeMap<&str, usize> = BTreeMap::new();
    let mut mismatches = Vec::new();
    for row in &rows {
        let kind = PartitionerKind::from_name(&row.algorithm).expect("oracle algorithm is a kind");
        let key = decode_hex(&row.key_hex);
        let stateless = keyed_partition(kind, &key, row.partitions);
        let mut partitioner = Partitioner::new(kind, PartitionerConfig::default());
        let stateful = partitioner.partition(TopicId(0), &keyed(&key, row.partitions), &mut rng(1));
        if stateless != Some(row.partition) || stateful != row.partition {
            mismatches.push(format!(
                "{} key={:?} n={}: oracle {}, keyed_partition {stateless:?}, partition {stateful}",
                row.algorithm, row.key_hex, row.partitions, row.partition
            ));
        }
        *per_algorithm.entry(row.algorithm.as_str()).or_default() += 1;
    }
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    assert_eq!(per_algorithm.len(), 6, "six algorithms: {per_algorithm:?}");
    assert!(
        per_algorithm.values().all(|count| *count == 704),
        "{per_algorithm:?}"
    );
}

/// Kinds that share a hash with an oracle algorithm (README cross-checks, and the aliases in
/// other clients). `true`: they also hash the empty key.
const ALIASES: [(&str, PartitionerKind, bool); 13] = [
    ("sarama-hash", LibrdkafkaFnv1a, true),
    ("sarama-hash", KafkaGoHash, true),
    ("sarama-hash", LibrdkafkaFnv1aRandom, true),
    ("sarama-reference-hash", KafkaGoReferenceHash, true),
    ("java-murmur2", LibrdkafkaMurmur2, true),
    ("java-murmur2", SaramaMurmur2, true),
    ("java-murmur2", KafkaGoMurmur2, true),
    ("java-murmur2", LibrdkafkaMurmur2Random, true),
    ("librdkafka-murmur2", JavaMurmur2, true),
    ("librdkafka-fnv1a", SaramaHash, true),
    ("librdkafka-consistent", SaramaCrc32, true),
    ("librdkafka-consistent", KafkaGoCrc32, false),
    ("librdkafka-consistent", LibrdkafkaConsistentRandom, false),
];

#[test]
fn aliases_agree_with_the_oracle_on_every_row() {
    let rows = oracle_rows();
    for (algorithm, alias, hashes_empty) in ALIASES {
        let mut checked = 0;
        for row in rows.iter().filter(|row| row.algorithm == algorithm) {
            let key = decode_hex(&row.key_hex);
            let expected = (hashes_empty || !key.is_empty()).then_some(row.partition);
            let got = keyed_partition(alias, &key, row.partitions);
            assert_eq!(
                got, expected,
                "{alias} vs {algorithm} key={:?} n={}",
                row.key_hex, row.partitions
            );
            checked += 1;
        }
        assert_eq!(checked, 704, "{algorithm} rows");
    }
}

#[test]
fn readme_cross_facts_hold_between_oracle_algorithms() {
    let rows = oracle_rows();
    let table: BTreeMap<(&str, &str, u32), u32> = rows
        .iter()
        .map(|row| {
            (
                (row.algorithm.as_str(), row.key_hex.as_str(), row.partitions),
                row.partition,
            )
        })
        .collect();
    for ((algorithm, key, n), partition) in &table {
        let twin = match *algorithm {
            "sarama-hash" => "librdkafka-fnv1a",
            "librdkafka-murmur2" => "java-murmur2",
            _ => continue,
        };
        assert_eq!(
            table.get(&(twin, key, *n)),
            Some(partition),
            "{algorithm} = {twin} on {key:?} n={n}"
        );
    }
}

#[test]
fn names_round_trip_and_unknown_names_list_the_valid_ones() {
    for kind in PartitionerKind::ALL {
        assert_eq!(PartitionerKind::from_name(kind.name()), Ok(kind));
    }
    let err = PartitionerKind::from_name("java-murmur3").unwrap_err();
    assert!(
        err.contains("java-murmur3") && err.contains("librdkafka-consistent-random"),
        "{err}"
    );
}

#[test]
fn non_hashing_kinds_have_no_keyed_partition() {
    for kind in [
        SaramaRandom,
        SaramaRoundRobin,
        Manual,
        KafkaGoRoundRobin,
        KafkaGoLeastBytes,
        LibrdkafkaRandom,
    ] {
        assert_eq!(keyed_partition(kind, b"kafka", 6), None, "{kind}");
        assert!(!kind.hashes_keys());
    }
    assert!(keyed_partition(JavaMurmur2, b"", 6).is_some());
}

#[test]
fn java_null_keys_stick_until_batch_size_bytes() {
    let config = PartitionerConfig {
        batch_size: 1000,
        ..PartitionerConfig::default()
    };
    let mut partitioner = Partitioner::new(JavaMurmur2, config);
    let mut rng = rng(7);
    let mut runs: Vec<(u32, u32)> = Vec::new(); // (partition, records in a row)
    for _ in 0..400 {
        let p = partitioner.partition(TopicId(0), &null_key(100, 100, Instant::ZERO), &mut rng);
        match runs.last_mut() {
            Some((last, count)) if *last == p && *count < 10 => *count += 1,
            _ => runs.push((p, 1)),
        }
    }
    // 1000 bytes of 100-byte records: exactly 10 records per sticky partition.
    assert_eq!(runs.len(), 40, "{runs:?}");
    assert!(runs.iter().all(|(_, count)| *count == 10), "{runs:?}");
    let distinct: std::collections::BTreeSet<u32> = runs.iter().map(|(p, _)| *p).collect();
    assert!(
        distinct.len() > 20,
        "switches pick random partitions: {distinct:?}"
    );
}

#[test]
fn java_sticky_state_is_per_topic() {
    let config = PartitionerConfig {
        batch_size: 250,
        ..PartitionerConfig::default()
    };
    let mut partitioner = Partitioner::new(JavaMurmur2, config);
    let mut rng = rng(3);
    let req = null_key(1000, 100, Instant::ZERO);
    let a0 = partitioner.partition(TopicId(0), &req, &mut rng);
    let b0 = partitioner.partition(TopicId(1), &req, &mut rng);
    // Two records to topic 1 do not use up topic 0's 250 bytes.
    let b1 = partitioner.partition(TopicId(1), &req, &mut rng);
    let a1 = partitioner.partition(TopicId(0), &req, &mut rng);
    assert_eq!(a0, a1);
    assert_eq!(b0, b1);
}

#[test]
fn librdkafka_sticky_holds_for_linger_then_redraws() {
    let config = PartitionerConfig {
        sticky_linger: Duration::from_millis(10),
        ..PartitionerConfig::default()
    };
    let mut partitioner = Partitioner::new(LibrdkafkaConsistentRandom, config);
    let mut rng = rng(11);
    let mut windows = Vec::new();
    for window in 0..50u64 {
        let start = window * 11;
        let mut seen = Vec::new();
        // Within 10 ms (inclusive) of the draw the partition holds, keyed-empty or null alike.
        for ms in [start, start + 5, start + 10] {
            let at = Instant::from_millis(ms);
            seen.push(partitioner.partition(TopicId(0), &null_key(100, 10, at), &mut rng));
            let empty = PartitionRequest {
                key: Some(b""),
                ..null_key(100, 10, at)
            };
            seen.push(partitioner.partition(TopicId(0), &empty, &mut rng));
        }
        assert!(
            seen.iter().all(|p| *p == seen[0]),
            "window {window}: {seen:?}"
        );
        windows.push(seen[0]);
    }
    let distinct: std::collections::BTreeSet<u32> = windows.iter().copied().collect();
    assert!(
        distinct.len() > 25,
        "11 ms later a new partition is drawn: {windows:?}"
    );
}

#[test]
fn librdkafka_zero_linger_is_random_per_record() {
    let config = PartitionerConfig {
        sticky_linger: Duration::ZERO,
        ..PartitionerConfig::default()
    };
    let mut partitioner = Partitioner::new(LibrdkafkaMurmur2Random, config);
    let mut rng = rng(5);
    let picks: Vec<u32> = (0..200)
        .map(|_| partitioner.partition(TopicId(0), &null_key(8, 10, Instant::ZERO), &mut rng))
        .collect();
    let distinct: std::collections::BTreeSet<u32> = picks.iter().copied().collect();
    assert_eq!(distinct.len(), 8, "{picks:?}");
}

#[test]
fn librdkafka_non_random_kinds_hash_null_like_empty() {
    let mut rng = rng(9);
    for kind in [LibrdkafkaConsistent, LibrdkafkaMurmur2, LibrdkafkaFnv1a] {
        let mut partitioner = Partitioner::new(kind, PartitionerConfig::default());
        for n in [1, 7, 31, 100] {
            for ms in 0..20 {
                let p = partitioner.partition(
                    TopicId(0),
                    &null_key(n, 10, Instant::from_millis(ms * 50)),
                    &mut rng,
                );
                assert_eq!(Some(p), keyed_partition(kind, b"", n), "{kind} n={n}");
            }
        }
    }
    // consistent maps both to partition 0: CRC-32("") = 0.
    assert_eq!(keyed_partition(LibrdkafkaConsistent, b"", 31), Some(0));
}

#[test]
fn librdkafka_random_is_random_for_keys_and_sticky_for_null_keys() {
    let mut partitioner = Partitioner::new(LibrdkafkaRandom, PartitionerConfig::default());
    let mut rng = rng(13);
    let keyed_picks: std::collections::BTreeSet<u32> = (0..200)
        .map(|_| partitioner.partition(TopicId(0), &keyed(b"same", 10), &mut rng))
        .collect();
    assert_eq!(
        keyed_picks.len(),
        10,
        "a key is not hashed by random: {keyed_picks:?}"
    );
    let null_picks: std::collections::BTreeSet<u32> = (0..200)
        .map(|_| partitioner.partition(TopicId(0), &null_key(10, 10, Instant::ZERO), &mut rng))
        .collect();
    assert_eq!(
        null_picks.len(),
        1,
        "null keys stick within the linger: {null_picks:?}"
    );
}

#[test]
fn random_kinds_spread_over_all_partitions() {
    for kind in [
        SaramaRandom,
        SaramaHash,
        SaramaCrc32,
        KafkaGoCrc32,
        KafkaGoMurmur2,
    ] {
        let mut partitioner = Partitioner::new(kind, PartitionerConfig::default());
        let mut rng = rng(17);
        let mut counts = [0u32; 6];
        for _ in 0..6000 {
            counts[partitioner.partition(TopicId(0), &null_key(6, 10, Instant::ZERO), &mut rng)
                as usize] += 1;
        }
        assert!(
            counts.iter().all(|c| (800..1200).contains(c)),
            "{kind}: {counts:?}"
        );
    }
}

#[test]
fn kafka_go_crc32_treats_the_empty_key_as_unset() {
    let mut partitioner = Partitioner::new(KafkaGoCrc32, PartitionerConfig::default());
    let mut rng = rng(19);
    let picks: std::collections::BTreeSet<u32> = (0..200)
        .map(|_| partitioner.partition(TopicId(0), &keyed(b"", 10), &mut rng))
        .collect();
    assert!(picks.len() > 5, "{picks:?}");
}

#[test]
fn round_robins_cycle() {
    // sarama: one counter per topic.
    let mut sarama = Partitioner::new(SaramaRoundRobin, PartitionerConfig::default());
    let mut rng = rng(0);
    let req = null_key(3, 10, Instant::ZERO);
    let t0: Vec<u32> = (0..4)
        .map(|_| sarama.partition(TopicId(0), &req, &mut rng))
        .collect();
    let t1: Vec<u32> = (0..2)
        .map(|_| sarama.partition(TopicId(1), &req, &mut rng))
        .collect();
    assert_eq!(t0, [0, 1, 2, 0]);
    assert_eq!(t1, [0, 1]);
    // kafka-go: one counter per writer, shared by topics; keys are ignored.
    let mut kafka_go = Partitioner::new(KafkaGoRoundRobin, PartitionerConfig::default());
    let picks: Vec<u32> = (0..6)
        .map(|i| kafka_go.partition(TopicId(i % 2), &keyed(b"k", 3), &mut rng))
        .collect();
    assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
    // kafka-go Hash: null keys round-robin, keys hash.
    let mut hash = Partitioner::new(KafkaGoHash, PartitionerConfig::default());
    let nulls: Vec<u32> = (0..4)
        .map(|_| hash.partition(TopicId(0), &req, &mut rng))
        .collect();
    assert_eq!(nulls, [0, 1, 2, 0]);
}

#[test]
fn least_bytes_picks_the_emptiest_partition() {
    let mut partitioner = Partitioner::new(KafkaGoLeastBytes, PartitionerConfig::default());
    let mut rng = rng(0);
    let mut place = |bytes: u32| {
        partitioner.partition(TopicId(0), &null_key(3, bytes, Instant::ZERO), &mut rng)
    };
    // Ties go to the lowest index: 0, 1, 2 each get a record.
    assert_eq!([place(100), place(50), place(70)], [0, 1, 2]);
    // Now 0:100, 1:50, 2:70 -> 1 (then 1:150) -> 2 (then 2:140) -> 0.
    assert_eq!([place(100), place(70), place(10)], [1, 2, 0]);
}

#[test]
fn manual_returns_the_explicit_partition() {
    let mut partitioner = Partitioner::new(Manual, PartitionerConfig::default());
    let req = PartitionRequest {
        explicit: Some(4),
        ..keyed(b"k", 5)
    };
    assert_eq!(partitioner.partition(TopicId(0), &req, &mut rng(0)), 4);
}

#[test]
#[should_panic(expected = "names no partition")]
fn manual_without_a_partition_is_a_producer_bug() {
    let mut partitioner = Partitioner::new(Manual, PartitionerConfig::default());
    partitioner.partition(TopicId(0), &keyed(b"k", 5), &mut rng(0));
}

#[test]
#[should_panic(expected = "names partition 5")]
fn manual_out_of_range_is_a_producer_bug() {
    let mut partitioner = Partitioner::new(Manual, PartitionerConfig::default());
    let req = PartitionRequest {
        explicit: Some(5),
        ..keyed(b"k", 5)
    };
    partitioner.partition(TopicId(0), &req, &mut rng(0));
}

/// A mixed sequence of records, as a producer would place them.
fn run_sequence(kind: PartitionerKind, seed: u64) -> Vec<u32> {
    let mut partitioner = Partitioner::new(
        kind,
        PartitionerConfig {
            batch_size: 300,
            ..PartitionerConfig::default()
        },
    );
    let mut rng = rng(seed);
    (0..300u64)
        .map(|i| {
            let key = i.to_string();
            let now = Instant::from_millis(i * 3);
            let req = match i % 3 {
                0 => null_key(12, 64, now),
                1 => PartitionRequest {
                    key: Some(key.as_bytes()),
                    ..null_key(12, 64, now)
                },
                _ => PartitionRequest {
                    key: Some(b""),
                    ..null_key(12, 64, now)
                },
            };
            partitioner.partition(TopicId((i % 2) as u32), &req, &mut rng)
        })
        .collect()
}

#[test]
fn same_seed_same_partitions() {
    for kind in PartitionerKind::ALL.into_iter().filter(|k| *k != Manual) {
        assert_eq!(run_sequence(kind, 42), run_sequence(kind, 42), "{kind}");
    }
    // And the seed matters for kinds that draw randomness.
    assert_ne!(run_sequence(SaramaRandom, 1), run_sequence(SaramaRandom, 2));
}

proptest! {
    #[test]
    fn always_below_partitions(
        kind_index in 0..PartitionerKind::ALL.len(),
        key in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
        partitions in 1u32..200,
        record_bytes in 0u32..50_000,
        now_ms in 0u64..1_000_000,
        seed in any::<u64>(),
    ) {
        let kind = PartitionerKind::ALL[kind_index];
        let mut partitioner = Partitioner::new(kind, PartitionerConfig::default());
        let mut rng = rng(seed);
        let req = PartitionRequest {
            key: key.as_deref(),
            explicit: Some(partitions - 1),
            record_bytes,
            partitions,
            now: Instant::from_millis(now_ms),
        };
        for _ in 0..3 {
            prop_assert!(partitioner.partition(TopicId(0), &req, &mut rng) < partitions);
        }
        if let Some(key) = key.as_deref() {
            if let Some(p) = keyed_partition(kind, key, partitions) {
                prop_assert!(p < partitions);
            }
        }
    }
}

#[test]
fn explicit_partition_overrides_java_and_librdkafka_only() {
    let mut rng = rng(23);
    for kind in PartitionerKind::ALL.into_iter().filter(|k| *k != Manual) {
        let mut partitioner = Partitioner::new(kind, PartitionerConfig::default());
        // A key that does not hash to 0 under any kind with 1000 partitions, explicit 0.
        let req = PartitionRequest {
            explicit: Some(0),
            ..keyed(b"kafka", 1000)
        };
        let placed: Vec<u32> = (0..20)
            .map(|_| partitioner.partition(TopicId(0), &req, &mut rng))
            .collect();
        let all_explicit = placed.iter().all(|p| *p == 0);
        assert_eq!(all_explicit, kind.honours_explicit(), "{kind}: {placed:?}");
        let expected = kind.name().starts_with("java") || kind.name().starts_with("librdkafka");
        assert_eq!(kind.honours_explicit(), expected, "{kind}");
    }
}
