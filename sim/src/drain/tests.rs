//! Tests of the drain tracker (`drain.rs`) and its liveness window (`drain/liveness.rs`).

use super::*;
use crate::history::HistoryEntry;
use kafsim_engine::broker::config::BrokerConfig;
use kafsim_engine::consumer::config::ConsumerConfig;
use kafsim_engine::producer::config::ProducerConfig;
use kafsim_engine::{TopicId, ValueId};

#[test]
fn the_window_follows_the_longest_timeout() {
    let broker = BrokerConfig::default();
    let mut c = ConsumerConfig::for_client("java", None).unwrap();
    let p = ProducerConfig::for_client("java", None).unwrap();
    let l = Liveness::of(&broker, [&p], [&c]);
    assert_eq!(
        l.longest_value,
        c.max_poll_interval.max(c.rebalance_timeout)
    );
    assert_eq!(l.window, l.longest_value * 2);
    assert!(l.cap >= MIN_DRAIN_CAP && l.cap >= l.window * 10);
    // A shorter configuration gives a shorter window: it is the scenario's own.
    c.max_poll_interval = Duration::from_secs(10);
    c.rebalance_timeout = Duration::from_secs(10);
    c.session_timeout = Duration::from_secs(6);
    let short = Liveness::of(&broker, [&p], [&c]);
    assert!(short.window < l.window, "{short:?} vs {l:?}");
    assert!(short.window >= broker.replica_socket_timeout * 2);
}

/// Every other timeout short: the window is twice the longest connection setup timeout
/// of the scenario's clients, named by the client's own setting.
#[test]
fn the_window_counts_the_clients_connection_setup_timeouts() {
    use kafsim_engine::config::{ConfigValue, Configurable};
    let s = Duration::from_secs;
    let broker = BrokerConfig {
        replica_lag_time_max: s(3),
        replica_socket_timeout: s(3),
        broker_session_timeout: s(3),
        group_initial_rebalance_delay: s(0),
        ..BrokerConfig::default()
    };
    let short = |client: &str, version: Option<&str>| {
        let mut c = ConsumerConfig::for_client(client, version).unwrap();
        // librdkafka's consumer calls its request timeout socket.timeout.ms.
        let request = if client == "librdkafka" {
            "socket.timeout.ms"
        } else {
            "request.timeout.ms"
        };
        for (key, ms) in [
            ("session.timeout.ms", 6_000),
            ("heartbeat.interval.ms", 1_000),
            ("max.poll.interval.ms", 8_000),
            (request, 5_000),
        ] {
            c.set(key, &ConfigValue::Int(ms)).unwrap();
        }
        c
    };
    let mut p = ProducerConfig::for_client("java", None).unwrap();
    for (key, ms) in [
        ("request.timeout.ms", 4_000),
        ("delivery.timeout.ms", 9_000),
        ("max.block.ms", 5_000),
    ] {
        p.set(key, &ConfigValue::Int(ms)).unwrap();
    }
    // Java alone: its setup timeout grows to 30 s.
    let java = Liveness::of(&broker, [&p], [&short("java", None)]);
    assert_eq!(java.longest_value, s(30));
    assert_eq!(java.window, s(60));
    assert!(
        java.longest
            .contains("socket.connection.setup.timeout.max.ms"),
        "{java:?}"
    );
    // A Java producer with a 1 s setup timeout that cannot grow, and a kafka-go group
    // (10 s Dialer): the window follows the group's dialer.
    p.set(
        "socket.connection.setup.timeout.max.ms",
        &ConfigValue::Int(1_000),
    )
    .unwrap();
    let go = Liveness::of(&broker, [&p], [&short("kafka-go", None)]);
    assert_eq!((go.longest_value, go.window), (s(10), s(20)), "{go:?}");
    assert!(go.longest.contains("Dialer.Timeout"), "{go:?}");
    // A sarama group waits 30 s (Net.DialTimeout): the window grows to 60 s.
    let sarama = Liveness::of(&broker, [&p], [&short("sarama", None)]);
    assert_eq!((sarama.longest_value, sarama.window), (s(30), s(60)));
    assert!(sarama.longest.contains("Net.DialTimeout"), "{sarama:?}");
    // A librdkafka group before 1.9.0 has no timeout of its own: the kernel's 127 s.
    let old = Liveness::of(&broker, [&p], [&short("librdkafka", Some("1.8.2"))]);
    assert_eq!(old.longest_value, s(127), "{old:?}");
    assert!(old.longest.contains("tcp_syn_retries"), "{old:?}");
}

/// What a scan leaves in the maps the poll runs write, and the last progress.
fn poll_state(t: &DrainTracker) -> String {
    format!(
        "{:?} {:?} {:?} {:?} {:?}",
        t.polled, t.last_activity, t.polled_count, t.polled_after_heal, t.last_progress
    )
}

/// Taking in a run of polls at once leaves the tracker as taking in every entry on its
/// own does (a scan per entry makes every run a single poll): interleaved partitions and
/// groups, offsets out of order, a sink write between polls of one partition, before and
/// after the heal.
#[test]
fn a_run_of_polls_is_taken_in_as_its_entries_one_by_one() {
    let tp = |p| TopicPartition::new(TopicId(0), p);
    let poll = |group, p, offset| HistoryEvent::Poll {
        group,
        member: 0,
        partition: tp(p),
        offset,
        value: ValueId(offset),
        key: None,
    };
    let events = [
        poll(0, 0, 5),
        poll(0, 0, 6),
        poll(0, 0, 4),
        poll(0, 1, 9),
        HistoryEvent::SinkWrite {
            group: 0,
            member: 0,
            partition: tp(1),
            offset: 9,
            value: ValueId(9),
            key: None,
        },
        poll(0, 1, 10),
        poll(1, 1, 3),
        poll(0, 1, 11),
        poll(0, 1, 12),
    ];
    let mut history = History::new();
    let (mut whole, mut single) = (DrainTracker::default(), DrainTracker::default());
    for (i, event) in events.into_iter().enumerate() {
        if i == 6 {
            whole.scan(&history);
            whole.healed(Instant::from_millis(i as u64));
            single.healed(Instant::from_millis(i as u64));
        }
        history.push(HistoryEntry {
            at: Instant::from_millis(i as u64 * 10),
            node: NodeId(7),
            event,
        });
        single.scan(&history);
    }
    whole.scan(&history);
    assert_eq!(poll_state(&whole), poll_state(&single));
    assert_eq!(whole.read(0, tp(0)), 7);
    assert_eq!(whole.read(0, tp(1)), 13);
    assert_eq!(whole.polled_count[&0], 7);
    assert_eq!(whole.polled_after_heal[&0], 2);
}
