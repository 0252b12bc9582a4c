//! Connection setup timeouts of the producers (`connection_setup.rs`): a broker whose
//! handshake never completes is given up on after the client's own timeout, and what was
//! queued for it counts as never sent.

use super::super::timer::ProducerTimer;
use super::super::{Producer, ProducerConfig, ProducerSpec};
use crate::node::{Effect, Node, NodeId};
use crate::record::TopicId;
use crate::testkit::{closed_connections as closed, Host};
use crate::time::Instant;

const BROKER: NodeId = NodeId(0);

fn producer(client: &str, set: &[(&str, &str)]) -> Producer {
    let mut config = ProducerConfig::for_client(client, None).unwrap();
    for (key, value) in set {
        let mut value = crate::config::ConfigValue::Str(value.to_string());
        let mut key = *key;
        // The client's own name, as the scenario parser maps it (`alias.rs`).
        if let Some(alias) = crate::alias::find(crate::alias::PRODUCER, key) {
            value = alias.translate(&value).unwrap();
            key = alias.property;
        }
        crate::config::Configurable::set(&mut config, key, &value).unwrap();
    }
    config.validate().unwrap();
    let spec = ProducerSpec::for_test(TopicId(0), vec![BROKER], Instant::from_millis(100_000));
    Producer::new(spec, config)
}

/// Start `p` with its only broker unreachable; the effects of a wake at `before` and at
/// `after` milliseconds.
fn wakes(p: &mut Producer, before: u64, after: u64) -> (Vec<Effect>, Vec<Effect>) {
    let mut host = Host::with_seed(NodeId(5), 9);
    host.unreachable.0.insert(BROKER);
    host.at(0, |cx| p.on_start(cx));
    let early = host.at(before, |cx| p.on_timer(cx, ProducerTimer::Wake(0).into()));
    let late = host.at(after, |cx| p.on_timer(cx, ProducerTimer::Wake(0).into()));
    (early, late)
}

#[test]
fn each_producer_gives_up_after_its_own_setup_timeout() {
    // (client, not yet at, over at) in ms: Java 10 s +-20 %, sarama Net.DialTimeout 30 s,
    // librdkafka 30 s, a kafka-go Writer literal's 3 s net.Dialer (inside the 5 s
    // Transport.DialTimeout), well before their request timeouts.
    for (client, before, after) in [
        ("java", 7_900, 12_000),
        ("sarama", 29_900, 30_000),
        ("librdkafka", 29_900, 30_000),
        ("kafka-go", 2_900, 3_000),
    ] {
        let mut p = producer(client, &[]);
        let (early, late) = wakes(&mut p, before, after);
        assert!(closed(&early).is_empty(), "{client}: {early:?}");
        assert_eq!(closed(&late), vec![BROKER], "{client}");
    }
}

#[test]
fn the_keys_and_aliases_set_the_timeout() {
    let mut p = producer("sarama", &[("Net.DialTimeout", "5s")]);
    let (early, late) = wakes(&mut p, 4_900, 5_000);
    assert!(closed(&early).is_empty() && closed(&late) == vec![BROKER]);
    // A NewWriter dials with its Dialer (10 s), still inside Transport.DialTimeout.
    let mut p = producer(
        "kafka-go",
        &[
            ("kafka-go.constructor", "NewWriter"),
            ("Transport.DialTimeout", "8s"),
        ],
    );
    let (early, late) = wakes(&mut p, 7_900, 8_000);
    assert!(closed(&early).is_empty() && closed(&late) == vec![BROKER]);
    let mut p = producer(
        "java",
        &[
            ("socket.connection.setup.timeout.ms", "1000"),
            ("socket.connection.setup.timeout.max.ms", "1000"),
        ],
    );
    let (early, late) = wakes(&mut p, 999, 1_000);
    assert!(closed(&early).is_empty() && closed(&late) == vec![BROKER]);
}

#[test]
fn a_reachable_broker_that_does_not_answer_waits_for_the_request_timeout() {
    let mut p = producer("java", &[]);
    let mut host = Host::with_seed(NodeId(5), 9);
    host.at(0, |cx| p.on_start(cx));
    let quiet = host.at(29_000, |cx| p.on_timer(cx, ProducerTimer::Wake(0).into()));
    assert!(closed(&quiet).is_empty(), "{quiet:?}");
    let late = host.at(30_000, |cx| p.on_timer(cx, ProducerTimer::Wake(0).into()));
    assert_eq!(closed(&late), vec![BROKER]);
}
