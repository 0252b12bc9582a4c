//! Connection setup timeouts against the simulator's network (`connection_setup.rs`): a
//! producer cut off from a broker by a partition gives up on its connection after its
//! client's own setup timeout and not before; a paused broker (whose kernel completes the
//! handshake) and a reachable broker are not given up on before the request timeout; a
//! broker without power is unreachable, one whose process crashed refuses at once.

use crate::harness::{add_producer, Harness};
use kafsim_engine::producer::ProducerConfig;
use kafsim_engine::{Instant, NodeId};
use kafsim_sim::cluster::Cluster;
use kafsim_sim::world::World;

/// A cluster of 3 brokers and one producer of `client` (newest version) whose first
/// bootstrap broker is broker 0: the producer's first request goes to it.
fn world(client: &str, seed: u64) -> (World, Cluster, NodeId) {
    let (mut w, c) = Harness::new(seed).brokers(3).topic("t", 3, 3).build();
    let mut config = ProducerConfig::for_client(client, None).unwrap();
    config.validate().unwrap();
    let p = add_producer(&mut w, &c, config, 100.0, 0, 120_000);
    (w, c, p)
}

/// When (ms) the producer's connection to `broker` first ended, looking every 100 ms up to
/// `until_ms` (its epoch moved: the producer closed it, or the kernel refused it).
fn first_close(w: &mut World, p: NodeId, broker: NodeId, until_ms: u64) -> Option<u64> {
    let start = w.network().epoch(p, broker);
    let mut t = w.now().saturating_since(Instant::ZERO).as_millis() as u64;
    while t < until_ms {
        t += 100;
        w.run_until(Instant::from_millis(t));
        if w.network().epoch(p, broker) != start {
            return Some(t);
        }
    }
    None
}

#[test]
fn a_partitioned_broker_is_given_up_after_each_clients_setup_timeout() {
    // (client, not before, at the latest) in ms: Java 10 s ±20 %, sarama Net.DialTimeout
    // 30 s, librdkafka 30 s, a kafka-go Writer literal's 3 s dialer; every request timeout is
    // longer (Java 30 s, sarama 30 s, librdkafka 60 s, kafka-go 10 s).
    for (client, not_before, latest) in [
        ("java", 8_000, 12_100),
        ("sarama", 30_000, 30_200),
        ("librdkafka", 30_000, 30_200),
        ("kafka-go", 3_000, 3_200),
    ] {
        let (mut w, c, p) = world(client, 11);
        let b0 = c.brokers[0];
        w.net().partition(&[p], &[b0]);
        let closed = first_close(&mut w, p, b0, 70_000)
            .unwrap_or_else(|| panic!("{client}: never gave up on broker 0"));
        assert!(
            (not_before..=latest).contains(&closed),
            "{client}: gave up at {closed} ms, expected [{not_before}, {latest}]"
        );
    }
}

#[test]
fn java_waits_longer_after_each_failed_attempt() {
    let (mut w, c, p) = world("java", 12);
    let b0 = c.brokers[0];
    w.net().partition(&[p], &[b0]);
    // The first attempt ends within 8-12 s; later ones grow (20 s ±20 %, then 30 s at most)
    // whenever the producer tries broker 0 again (it leads some partitions).
    let mut attempts = Vec::new();
    let mut last = 0;
    while attempts.len() < 3 {
        let Some(t) = first_close(&mut w, p, b0, last + 80_000) else {
            break;
        };
        attempts.push(t);
        last = t;
    }
    assert_eq!(attempts.len(), 3, "{attempts:?}");
    assert!((8_000..=12_100).contains(&attempts[0]), "{attempts:?}");
    // Each later attempt lasted at least 16 s (it began after the previous one ended).
    for pair in attempts.windows(2) {
        assert!(pair[1] - pair[0] > 16_000, "{attempts:?}");
    }
}

#[test]
fn a_paused_broker_is_not_unreachable() {
    // The paused process's kernel completes the handshake: no setup timeout; the request
    // waits its request.timeout.ms (Java 30 s) before the producer closes the connection.
    let (mut w, c, p) = world("java", 13);
    let b0 = c.brokers[0];
    w.pause(b0);
    let closed = first_close(&mut w, p, b0, 60_000).expect("closed after the request timeout");
    assert!((30_000..=30_200).contains(&closed), "closed at {closed} ms");
}

#[test]
fn a_dark_host_is_unreachable_and_a_dead_process_refuses() {
    let (mut w, c, p) = world("sarama", 14);
    let b0 = c.brokers[0];
    w.power_loss(b0, false);
    let closed = first_close(&mut w, p, b0, 60_000).expect("gave up on the dark host");
    assert!(
        (30_000..=30_200).contains(&closed),
        "power loss: {closed} ms"
    );
    let (mut w, c, p) = world("sarama", 14);
    let b0 = c.brokers[0];
    w.crash(b0);
    let refused = first_close(&mut w, p, b0, 60_000).expect("refused");
    assert!(refused <= 200, "crash: {refused} ms");
}

#[test]
fn a_consumer_gives_up_on_a_partitioned_broker_after_its_clients_setup_timeout() {
    use crate::consumer_support::{add_consumer, config, consumer_harness};
    // (client, not before, at the latest) in ms, checked every 100 ms (the consumer's tick):
    // Java 10 s ±20 %, sarama Net.DialTimeout 30 s, kafka-go's Reader Dialer.Timeout 10 s,
    // librdkafka 30 s; their request timeouts are 30 s.
    for (client, not_before, latest) in [
        ("java", 8_000, 12_200),
        ("sarama", 30_000, 30_200),
        ("kafka-go", 10_000, 10_200),
        ("librdkafka", 30_000, 30_200),
    ] {
        let (mut w, c) = consumer_harness(21, 3).build();
        let handler = kafsim_engine::app::HandlerSpec::default();
        let m = add_consumer(&mut w, &c, 0, 0, config(client, &[]), handler);
        let b0 = c.brokers[0];
        w.net().partition(&[m], &[b0]);
        let closed = first_close(&mut w, m, b0, 70_000)
            .unwrap_or_else(|| panic!("{client}: never gave up on broker 0"));
        assert!(
            (not_before..=latest).contains(&closed),
            "{client}: gave up at {closed} ms, expected [{not_before}, {latest}]"
        );
    }
}
