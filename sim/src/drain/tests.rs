//! Tests of the drain tracker (`drain.rs`).

use super::*;

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
