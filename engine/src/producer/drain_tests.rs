//! Request composition per client: which batches one produce request carries.
//!
//! A producer is set up by hand (metadata from a response, records appended straight to the
//! accumulator) and drained at chosen instants; the tests read the produce requests it sends.

use super::super::{Producer, ProducerConfig, ProducerSpec};
use crate::config::{ConfigValue, Configurable};
use crate::node::{Cx, Effect, NodeId};
use crate::protocol::{
    ErrorCode, Message, MetadataResponse, PartitionMetadata, PartitionState, ProduceRequest,
};
use crate::record::{Record, TopicId, TopicPartition, ValueId};
use crate::time::{Duration, Instant};

const TOPIC: TopicId = TopicId(0);
const B0: NodeId = NodeId(0);
const B1: NodeId = NodeId(1);

fn tp(p: u32) -> TopicPartition {
    TopicPartition::new(TOPIC, p)
}

/// A producer of `client` whose metadata says `leaders[p]` leads partition p.
fn producer(client: &str, leaders: &[NodeId], overrides: &[(&str, ConfigValue)]) -> Producer {
    let mut config = ProducerConfig::for_client(client, None).unwrap();
    config.set("acks", &ConfigValue::Int(1)).unwrap();
    if client != "kafka-go" {
        config
            .set("enable.idempotence", &ConfigValue::Bool(false))
            .unwrap();
    }
    for (key, value) in overrides {
        config.set(key, value).unwrap();
    }
    config.validate().unwrap();
    let spec = ProducerSpec::for_test(TOPIC, vec![B0], Instant::from_millis(1_000_000));
    let mut p = Producer::new(spec, config);
    let partitions = leaders
        .iter()
        .enumerate()
        .map(|(i, leader)| PartitionMetadata {
            error: ErrorCode::None,
            state: PartitionState {
                partition: tp(i as u32),
                leader: Some(*leader),
                leader_epoch: 1,
                isr: vec![*leader],
                partition_epoch: 1,
                replicas: vec![*leader],
            },
        })
        .collect();
    let response = MetadataResponse {
        correlation_id: 1,
        brokers: vec![B0, B1],
        controller: None,
        topics: vec![(TOPIC, leaders.len() as u32)],
        partitions,
    };
    assert!(p.metadata.update(&response));
    p
}

fn append(p: &mut Producer, partition: u32, value: u64, at_ms: u64) {
    let record = Record {
        value: ValueId(value),
        key: None,
        size: 100,
        create_time: Instant::from_millis(at_ms),
        payload: None,
    };
    p.accumulator
        .append(tp(partition), record, Instant::from_millis(at_ms));
}

/// Drain at `at_ms`; the produce requests sent, as (broker, partitions in request order).
fn drain(p: &mut Producer, at_ms: u64) -> Vec<(NodeId, Vec<u32>)> {
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let mut disk = crate::log::tests::MemDisk::default();
    let mut out = Vec::new();
    let mut ids = 0;
    let now = Instant::ZERO + Duration::from_millis(at_ms);
    let mut cx = Cx::new(now, NodeId(9), &mut rng, &mut disk, &mut out, &mut ids);
    p.drain(&mut cx);
    out.into_iter()
        .filter_map(|e| match e {
            Effect::Send {
                to,
                msg: Message::ProduceRequest(ProduceRequest { batches, .. }),
            } => Some((to, batches.iter().map(|(tp, _)| tp.partition).collect())),
            _ => None,
        })
        .collect()
}

/// Partitions 0–2 led by B0, 3 by B1; p0 gets a record at 0 ms, the others at 50 ms; all
/// linger 100 ms. At 100 ms only p0 has lingered out.
fn lingering(client: &str) -> Producer {
    let linger = if client == "kafka-go" {
        ("kafka-go.BatchTimeout", ConfigValue::Int(100))
    } else {
        ("linger.ms", ConfigValue::Int(100))
    };
    let mut p = producer(client, &[B0, B0, B0, B1], &[linger]);
    append(&mut p, 0, 1, 0);
    for partition in 1..4 {
        append(&mut p, partition, 10 + partition as u64, 50);
    }
    p
}

#[test]
fn java_a_ready_node_drains_every_partition_it_leads_into_one_request() {
    let mut p = lingering("java");
    assert_eq!(drain(&mut p, 99), vec![], "nothing has lingered out yet");
    // p0 makes B0 ready: p1 and p2 go with it although they lingered only 50 ms; B1's p3
    // is not ready yet.
    assert_eq!(drain(&mut p, 100), vec![(B0, vec![0, 1, 2])]);
    assert_eq!(drain(&mut p, 150), vec![(B1, vec![3])]);
}

#[test]
fn sarama_flushes_a_brokers_whole_produce_set() {
    let mut p = lingering("sarama");
    assert_eq!(drain(&mut p, 100), vec![(B0, vec![0, 1, 2])]);
    assert_eq!(drain(&mut p, 150), vec![(B1, vec![3])]);
}

#[test]
fn kafka_go_and_librdkafka_send_one_partition_per_request() {
    for client in ["kafka-go", "librdkafka"] {
        let mut p = lingering(client);
        // Only p0 has lingered out, and it goes alone.
        assert_eq!(drain(&mut p, 100), vec![(B0, vec![0])], "{client}");
        // At 150 ms the other three are due: one request each.
        assert_eq!(
            drain(&mut p, 150),
            vec![(B0, vec![1]), (B0, vec![2]), (B1, vec![3])],
            "{client}"
        );
    }
}

#[test]
fn java_drain_index_resumes_where_a_full_request_stopped() {
    // Four partitions on B0, each batch one 108-byte record + 61-byte header = 169 bytes;
    // max.request.size 400 fits two batches per request.
    let mut p = producer(
        "java",
        &[B0, B0, B0, B0],
        &[
            ("max.request.size", ConfigValue::Int(400)),
            ("linger.ms", ConfigValue::Int(0)),
        ],
    );
    for partition in 0..4 {
        append(&mut p, partition, partition as u64, 0);
    }
    // The first request stops at p2 (it does not fit); the second starts there.
    assert_eq!(drain(&mut p, 0), vec![(B0, vec![0, 1]), (B0, vec![2, 3])]);
    // The second drain went round to p1 (its last look): the next one starts at p1.
    for partition in 0..4 {
        append(&mut p, partition, 10 + partition as u64, 1);
    }
    assert_eq!(drain(&mut p, 1), vec![(B0, vec![1, 2]), (B0, vec![3, 0])]);
}

#[test]
fn java_exhausted_buffer_makes_lingering_batches_sendable() {
    let mut p = producer("java", &[B0, B0], &[("linger.ms", ConfigValue::Int(1_000))]);
    append(&mut p, 0, 1, 0);
    append(&mut p, 1, 2, 0);
    assert_eq!(drain(&mut p, 10), vec![]);
    // The application is blocked on buffer.memory (BufferPool.queued() > 0): every
    // partition's batch is sendable at once.
    p.blocked = Some(super::super::BlockedSend {
        value: ValueId(3),
        key: None,
        size: 100,
        since: Instant::from_millis(10),
    });
    assert_eq!(drain(&mut p, 10), vec![(B0, vec![0, 1])]);
}

#[test]
fn java_a_retry_backing_off_stays_behind() {
    let mut p = producer("java", &[B0, B0], &[("linger.ms", ConfigValue::Int(0))]);
    append(&mut p, 0, 1, 0);
    append(&mut p, 1, 2, 0);
    // p0's head is a retry that may go again only at 100 ms.
    let mut head = p.accumulator.drain_head(tp(0), Instant::ZERO).unwrap();
    head.attempts = 1;
    head.retry_at = Instant::from_millis(100);
    p.accumulator.reenqueue(head);
    assert_eq!(drain(&mut p, 0), vec![(B0, vec![1])]);
    assert_eq!(drain(&mut p, 100), vec![(B0, vec![0])]);
}

/// sarama with `overrides`: partitions 0-2 on B0, 3 on B1.
fn sarama(overrides: &[(&str, ConfigValue)]) -> Producer {
    producer("sarama", &[B0, B0, B0, B1], overrides)
}

#[test]
fn sarama_flush_messages_counts_the_whole_produce_set() {
    let mut p = sarama(&[("sarama.Flush.Messages", ConfigValue::Int(3))]);
    append(&mut p, 0, 1, 0);
    append(&mut p, 1, 2, 0);
    append(&mut p, 3, 3, 0);
    // Two records in B0's set, one in B1's: neither set holds three, however long they wait.
    assert_eq!(drain(&mut p, 60_000), vec![]);
    // A third record for B0, on another partition: its set flushes, all three partitions.
    append(&mut p, 2, 4, 60_000);
    assert_eq!(drain(&mut p, 60_000), vec![(B0, vec![0, 1, 2])]);
}

#[test]
fn sarama_flush_bytes_counts_the_whole_produce_set() {
    // Three one-record batches are 3 x 169 = 507 bytes; two are 338.
    let mut p = sarama(&[("sarama.Flush.Bytes", ConfigValue::Int(500))]);
    append(&mut p, 0, 1, 0);
    append(&mut p, 1, 2, 0);
    assert_eq!(drain(&mut p, 10), vec![]);
    append(&mut p, 2, 3, 10);
    assert_eq!(drain(&mut p, 10), vec![(B0, vec![0, 1, 2])]);
}

#[test]
fn sarama_flush_frequency_starts_with_the_sets_first_record() {
    // Flush.Frequency is linger.ms: 100 ms after p0's record, p1's (20 ms old) goes too.
    let mut p = sarama(&[
        ("linger.ms", ConfigValue::Int(100)),
        ("sarama.Flush.Messages", ConfigValue::Int(1_000)),
    ]);
    append(&mut p, 0, 1, 0);
    append(&mut p, 1, 2, 80);
    assert_eq!(drain(&mut p, 99), vec![]);
    assert_eq!(drain(&mut p, 100), vec![(B0, vec![0, 1])]);
}

#[test]
fn sarama_flush_max_messages_caps_a_request() {
    let mut p = sarama(&[("sarama.Flush.MaxMessages", ConfigValue::Int(2))]);
    for partition in 0..3 {
        append(&mut p, partition, partition as u64, 0);
    }
    assert_eq!(drain(&mut p, 0), vec![(B0, vec![0, 1]), (B0, vec![2])]);
}

#[test]
fn sarama_flush_keys_are_sarama_only_and_bounded() {
    let mut java = ProducerConfig::for_client("java", None).unwrap();
    let e = java
        .set("sarama.Flush.Messages", &ConfigValue::Int(10))
        .unwrap_err();
    assert!(e.contains("sarama") && e.contains("java"), "{e}");
    let mut s = ProducerConfig::for_client("sarama", None).unwrap();
    assert!(s.set("sarama.Flush.Bytes", &ConfigValue::Int(-1)).is_err());
    assert!(s
        .set("sarama.Flush.MaxMessages", &ConfigValue::Str("many".into()))
        .is_err());
}
