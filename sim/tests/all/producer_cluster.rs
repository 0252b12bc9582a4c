//! The producer client against the real broker/controller cluster (issue 4): min.insync.replicas
//! with a sync acks=all producer, and acks=0 (kafka-go defaults) vs Java defaults on a leader
//! crash. Each both ways; assertions read the leader's log and the history directly.

use crate::harness::{send_failures, Harness};
use kafsim_engine::broker::config::{BrokerConfig, KafkaVersion};
use kafsim_engine::broker::Broker;
use kafsim_engine::config::{ConfigValue, Configurable};
use kafsim_engine::history::HistoryEvent;
use kafsim_engine::producer::{Producer, ProducerConfig, ProducerStats};
use kafsim_engine::protocol::ErrorCode;
use kafsim_engine::{Duration, Instant, NodeId, TopicId, TopicPartition, ValueId};
use kafsim_sim::cluster::Cluster;
use kafsim_sim::world::World;
use std::collections::BTreeSet;

const TOPIC: TopicId = TopicId(0);
const TP: TopicPartition = TopicPartition::new(TOPIC, 0);

/// An engine producer of `config` on topic 0, without keys.
fn add_producer(
    w: &mut World,
    c: &Cluster,
    config: ProducerConfig,
    rate: f64,
    stop: u64,
) -> NodeId {
    crate::harness::add_producer(w, c, config, rate, 0, stop)
}

fn producer_config(client: &str, overrides: &[(&str, ConfigValue)]) -> ProducerConfig {
    let mut c = ProducerConfig::for_client(client, None).unwrap();
    for (k, v) in overrides {
        c.set(k, v).unwrap();
    }
    c.validate().unwrap();
    c
}

/// Values acknowledged by the producer (any offset, so acks=0 counts too).
fn acked_values(w: &World) -> Vec<ValueId> {
    w.history()
        .entries()
        .filter_map(|e| match &e.event {
            HistoryEvent::SendOk { value, .. } => Some(*value),
            _ => None,
        })
        .collect()
}

/// Values the current leader of TP holds below its high watermark.
fn committed_values(w: &World, c: &Cluster) -> BTreeSet<ValueId> {
    committed_list(w, c).into_iter().collect()
}

/// The same in log order, duplicates included.
fn committed_list(w: &World, c: &Cluster) -> Vec<ValueId> {
    let leader = c.leader_of(w, TP).expect("a leader");
    let p = w.node::<Broker>(leader).unwrap().partition(TP).unwrap();
    p.log
        .batches()
        .iter()
        .flat_map(|b| {
            let base = b.base_offset;
            b.records
                .iter()
                .enumerate()
                .filter(move |(i, _)| base + (*i as u64) < p.high_watermark)
                .map(|(_, r)| r.value)
        })
        .collect()
}

fn lost(w: &World, c: &Cluster) -> usize {
    let committed = committed_values(w, c);
    acked_values(w)
        .iter()
        .filter(|v| !committed.contains(v))
        .count()
}

/// Sync acks=all producer; both followers die for 10 s, then come back.
fn follower_outage(min_insync: u32, version: KafkaVersion) -> (World, Cluster, NodeId) {
    let broker = BrokerConfig {
        version,
        min_insync_replicas: min_insync,
        replica_lag_time_max: Duration::from_millis(2_000),
        ..BrokerConfig::default()
    };
    let (mut w, c) = Harness::new(11).broker_config(broker).build();
    w.run_until(Instant::from_millis(2_000));
    let sync = [("sync", ConfigValue::Bool(true))];
    let p = add_producer(&mut w, &c, producer_config("java", &sync), 50.0, 20_000);
    w.run_until(Instant::from_millis(4_000));
    let followers = c.followers_of(&w, TP);
    assert_eq!(followers.len(), 2);
    for f in &followers {
        w.crash(*f);
    }
    w.run_until(Instant::from_millis(14_000));
    for f in &followers {
        w.restart(*f);
    }
    w.run_until(Instant::from_millis(40_000));
    (w, c, p)
}

/// Before 3.7 the HW of a leader alone in its ISR moves on: the record in flight when the ISR
/// shrank is answered NotEnoughReplicasAfterAppend, the next ones NotEnoughReplicas, and
/// the sync producer retries them until the followers are back.
#[test]
fn sync_acks_all_waits_out_not_enough_replicas_and_loses_nothing() {
    let (w, c, p) = follower_outage(2, KafkaVersion::V3_6);
    let stats = w.node::<Producer>(p).unwrap().stats().clone();
    let rejected = stats.errors.get(&ErrorCode::NotEnoughReplicas).copied();
    assert!(rejected.unwrap_or(0) > 0, "no NotEnoughReplicas: {stats:?}");
    assert_eq!(stats.failed, 0, "{stats:?}");
    assert_eq!(
        stats.acked, stats.invoked,
        "everything acknowledged after recovery"
    );
    assert!(stats.invoked > 300, "{stats:?}");
    assert_eq!(lost(&w, &c), 0);
    // No acknowledgement while the leader was alone in the ISR (well into the outage).
    let during = w
        .history()
        .entries()
        .filter(|e| matches!(e.event, HistoryEvent::SendOk { .. }))
        .filter(|e| (7_000..13_000).contains(&e.at.as_millis()))
        .count();
    assert_eq!(during, 0, "acks=all acknowledged with one in-sync replica");

    // With min.insync.replicas=1 the lone leader keeps acknowledging.
    let (w, _, p) = follower_outage(1, KafkaVersion::NEWEST);
    let stats = w.node::<Producer>(p).unwrap().stats().clone();
    assert_eq!(stats.errors.get(&ErrorCode::NotEnoughReplicas), None);
    let during = w
        .history()
        .entries()
        .filter(|e| matches!(e.event, HistoryEvent::SendOk { .. }))
        .filter(|e| (7_000..13_000).contains(&e.at.as_millis()))
        .count();
    assert!(during > 100, "only {during} acks while followers were down");
}

/// Since 3.7 (KAFKA-15583) the HW does not move while the ISR is under min.insync.replicas:
/// the record in flight when the followers died simply waits in the leader's purgatory
/// (below the producer's 30 s request timeout) and is acknowledged once they are back in
/// the ISR; the sync producer sends nothing else meanwhile, so it sees no error at all.
#[test]
fn since_3_7_the_record_in_flight_waits_for_the_isr_instead_of_failing() {
    let (w, c, p) = follower_outage(2, KafkaVersion::V3_7);
    let stats = w.node::<Producer>(p).unwrap().stats().clone();
    assert!(stats.errors.is_empty(), "{stats:?}");
    assert_eq!(stats.failed, 0, "{stats:?}");
    assert_eq!(stats.acked, stats.invoked, "{stats:?}");
    assert!(stats.invoked > 300, "{stats:?}");
    assert_eq!(lost(&w, &c), 0);
    let during = w
        .history()
        .entries()
        .filter(|e| matches!(e.event, HistoryEvent::SendOk { .. }))
        .filter(|e| (7_000..13_000).contains(&e.at.as_millis()))
        .count();
    assert_eq!(during, 0, "acks=all acknowledged with one in-sync replica");
}

/// A producer of `client`'s defaults writes while the partition leader crashes.
fn leader_crash(client: &str) -> (World, Cluster) {
    let (mut w, c) = Harness::new(5).build();
    w.run_until(Instant::from_millis(2_000));
    add_producer(
        &mut w,
        &c,
        producer_config(client, &[("sync", ConfigValue::Bool(false))]),
        2_000.0,
        12_000,
    );
    w.run_until(Instant::from_millis(5_000));
    let leader = c.leader_of(&w, TP).expect("a leader");
    // The followers lag a moment behind the leader; a crash loses what they lack.
    w.crash(leader);
    w.run_until(Instant::from_millis(15_000));
    w.restart(leader);
    w.run_until(Instant::from_millis(30_000));
    (w, c)
}

#[test]
fn kafka_go_defaults_lose_records_on_leader_crash_java_defaults_do_not() {
    let (w, c) = leader_crash("kafka-go");
    let lost_go = lost(&w, &c);
    assert!(lost_go > 0, "acks=0 lost nothing across a leader crash");
    let (w, c) = leader_crash("java");
    let n = acked_values(&w).len();
    let p = NodeId(c.brokers.last().unwrap().0 + 1);
    assert!(
        n > 10_000,
        "{n} {:?}",
        w.node::<Producer>(p).unwrap().stats()
    );
    assert_eq!(
        lost(&w, &c),
        0,
        "Java defaults (acks=all, idempotence) lost records"
    );
}

/// A sync acks=all producer whose responses from the leader are blocked for 1.5 s: the
/// broker appends, the client times out (request.timeout.ms = 1 s) and retries.
fn lost_responses(idempotence: bool) -> (World, Cluster, NodeId) {
    let (mut w, c) = Harness::new(3).build();
    w.run_until(Instant::from_millis(2_000));
    let overrides = [
        ("sync", ConfigValue::Bool(true)),
        ("enable.idempotence", ConfigValue::Bool(idempotence)),
        ("request.timeout.ms", ConfigValue::Int(1_000)),
        ("linger.ms", ConfigValue::Int(0)),
    ];
    let p = add_producer(
        &mut w,
        &c,
        producer_config("java", &overrides),
        100.0,
        8_000,
    );
    w.run_until(Instant::from_millis(3_000));
    let leader = c.leader_of(&w, TP).expect("a leader");
    w.net().block(leader, p);
    w.run_until(Instant::from_millis(4_500));
    w.net().unblock(leader, p);
    w.run_until(Instant::from_millis(12_000));
    (w, c, p)
}

#[test]
fn timed_out_retry_duplicates_without_idempotence_only() {
    for idempotence in [false, true] {
        let (w, c, p) = lost_responses(idempotence);
        let stats = w.node::<Producer>(p).unwrap().stats().clone();
        assert!(stats.retries > 0, "no retry: {stats:?}");
        assert_eq!(stats.acked, stats.invoked, "{stats:?}");
        assert_eq!(lost(&w, &c), 0);
        let log = committed_list(&w, &c);
        let unique: BTreeSet<_> = log.iter().collect();
        let duplicates = log.len() - unique.len();
        if idempotence {
            assert_eq!(duplicates, 0, "idempotent producer duplicated");
        } else {
            assert!(duplicates > 0, "expected a duplicate from the retry");
        }
    }
}

/// Every client profile through broker crashes, a partition and a pause, then a heal: no
/// panic, and every send completes exactly once (ok, fail or info) by the end.
#[test]
fn every_profile_survives_faults_and_completes_every_send() {
    for (seed, client) in [
        (21, "java"),
        (22, "sarama"),
        (23, "kafka-go"),
        (24, "librdkafka"),
    ] {
        let (mut w, c) = Harness::new(seed).partitions(3).build();
        w.run_until(Instant::from_millis(2_000));
        let async_mode = [("sync", ConfigValue::Bool(false))];
        let p = add_producer(
            &mut w,
            &c,
            producer_config(client, &async_mode),
            500.0,
            14_000,
        );
        w.run_until(Instant::from_millis(4_000));
        let [b0, b1, b2] = [c.brokers[0], c.brokers[1], c.brokers[2]];
        w.crash(b0);
        w.run_until(Instant::from_millis(6_000));
        w.net().partition(&[b1], &[b2, p]);
        w.run_until(Instant::from_millis(8_000));
        w.restart(b0);
        w.pause(b2);
        w.run_until(Instant::from_millis(10_000));
        w.resume(b2);
        w.net().heal();
        w.run_until(Instant::from_millis(200_000));
        let producer = w.node::<Producer>(p).unwrap();
        let stats = producer.stats();
        assert!(producer.is_idle(w.now()), "{client}: {stats:?}");
        assert_eq!(
            stats.acked + stats.failed + stats.unknown,
            stats.invoked,
            "{client}: {stats:?}"
        );
        assert!(stats.acked > 0, "{client}: {stats:?}");
        let mut completed = BTreeSet::new();
        for e in w.history().entries() {
            let value = match &e.event {
                HistoryEvent::SendOk { value, .. }
                | HistoryEvent::SendFail { value, .. }
                | HistoryEvent::SendInfo { value, .. } => *value,
                _ => continue,
            };
            assert!(
                completed.insert(value),
                "{client}: {value:?} completed twice"
            );
        }
    }
}

/// Issue 12's family: a producer over 6 partitions while one broker stays dead for 25 s and,
/// after the 10 s reconnect grace, a second broker crashes too, so every partition moves to
/// the last one. Returns the sends that failed with NotLeaderOrFollower and the
/// acknowledgements while only one broker was up.
fn long_outage(client: &str) -> (usize, usize, ProducerStats) {
    let (mut w, c) = Harness::new(15).partitions(6).build();
    w.run_until(Instant::from_millis(2_000));
    // acks=1 everywhere: with acks=all the lone leader would wait for its ISR to shrink.
    let overrides = [
        ("sync", ConfigValue::Bool(false)),
        ("acks", ConfigValue::Str("1".into())),
        ("enable.idempotence", ConfigValue::Bool(false)),
    ];
    let p = add_producer(
        &mut w,
        &c,
        producer_config(client, &overrides),
        1_000.0,
        40_000,
    );
    w.run_until(Instant::from_millis(4_000));
    let [b0, b1, b2] = [c.brokers[0], c.brokers[1], c.brokers[2]];
    w.crash(b2);
    w.run_until(Instant::from_millis(16_000));
    w.crash(b1);
    w.run_until(Instant::from_millis(22_000));
    w.restart(b1);
    w.run_until(Instant::from_millis(29_000));
    w.restart(b2);
    w.run_until(Instant::from_millis(60_000));
    let _ = b0;
    let not_leader = send_failures(&w, ErrorCode::NotLeaderOrFollower);
    let late_acks = w
        .history()
        .entries()
        .filter(|e| matches!(e.event, HistoryEvent::SendOk { .. }))
        .filter(|e| (17_000..22_000).contains(&e.at.as_millis()))
        .count();
    let stats = w.node::<Producer>(p).unwrap().stats().clone();
    (not_leader, late_acks, stats)
}

#[test]
fn producers_keep_refreshing_metadata_while_a_broker_stays_dead() {
    for client in ["sarama", "java", "librdkafka"] {
        let (not_leader, late_acks, stats) = long_outage(client);
        assert!(
            not_leader < 100,
            "{client}: {not_leader} NotLeaderOrFollower failures: {stats:?}"
        );
        assert!(
            late_acks > 2_000,
            "{client}: {late_acks} acks while two brokers were down: {stats:?}"
        );
    }
}

/// The leader's process crashes for 3 s, too short for the controller to fence it
/// (`broker.session.timeout.ms` 9 s), so the partition keeps its leader and every connection
/// attempt meanwhile is refused. Returns the send failures and unknown outcomes during the
/// outage (after the crash's own reset), and the first acknowledgement after the restart.
fn short_leader_crash(client: &str) -> (usize, usize, Option<u64>) {
    let (mut w, c) = Harness::new(7).build();
    w.run_until(Instant::from_millis(2_000));
    let overrides = [
        ("sync", ConfigValue::Bool(false)),
        ("acks", ConfigValue::Str("1".into())),
        ("enable.idempotence", ConfigValue::Bool(false)),
        ("retries", ConfigValue::Int(0)),
    ];
    add_producer(
        &mut w,
        &c,
        producer_config(client, &overrides),
        200.0,
        20_000,
    );
    w.run_until(Instant::from_millis(4_000));
    let leader = c.leader_of(&w, TP).expect("a leader");
    w.crash(leader);
    w.run_until(Instant::from_millis(7_000));
    w.restart(leader);
    w.run_until(Instant::from_millis(30_000));
    let entries = w.history().entries();
    // From just after the crash: what was in flight when it crashed is rightly of unknown
    // outcome (the reset), and arrives at once.
    let during = |at: u64| (4_010..7_000).contains(&at);
    let failed = entries
        .clone()
        .filter(|e| matches!(e.event, HistoryEvent::SendFail { .. }) && during(e.at.as_millis()))
        .count();
    let unknown = entries
        .clone()
        .filter(|e| matches!(e.event, HistoryEvent::SendInfo { .. }) && during(e.at.as_millis()))
        .count();
    let first_ack = entries
        .clone()
        .filter(|e| matches!(e.event, HistoryEvent::SendOk { .. }))
        .map(|e| e.at.as_millis())
        .find(|at| *at >= 7_000);
    (failed, unknown, first_ack)
}

/// A refused connection attempt reached nobody. Java (and librdkafka) never sent the
/// requests of a connection that was not established, so with `retries = 0` nothing fails
/// while the batches wait for the broker (they are not unknown outcomes either, as they would
/// be if a refusal were taken for a reset). sarama's failed `Broker.Open` fails the produce
/// set, a retry it counts: with `Retry.Max` 0 the sends fail, definitely not written
/// (`SendFail`, never an unknown outcome).
#[test]
fn a_refused_connection_costs_java_no_retry_and_sarama_one() {
    let (failed, unknown, first_ack) = short_leader_crash("java");
    assert_eq!(
        (failed, unknown),
        (0, 0),
        "java: nothing failed during the outage"
    );
    assert!(first_ack.is_some(), "java: acknowledged after the restart");
    let (failed, unknown, _) = short_leader_crash("sarama");
    assert!(failed > 0, "sarama: the refused produce sets fail");
    assert_eq!(unknown, 0, "sarama: a refused send was not written");
}
