//! The producer when its partition's leader moves or stops answering: metadata refresh after
//! NOT_LEADER_OR_FOLLOWER, the request timeout closing the connection, and each client's
//! reconnect backoff.

use super::*;

/// A world with two scripted brokers (leadership moves from the first to the second at
/// `switch_ms`) and one sync producer bootstrapped on the first; runs to `end_ms`.
fn run_leader_move(config: ProducerConfig, switch_ms: u64, end_ms: u64) -> (World, NodeId, NodeId) {
    let mut w = World::new(7, WorldConfig::default());
    let leadership = Leadership {
        before: NodeId(0),
        after: NodeId(1),
        switch_at: Instant::from_millis(switch_ms),
    };
    let script = Script {
        leadership: Some(leadership),
        ..Script::default()
    };
    let (s0, s1) = (script.clone(), script);
    let a = w.add_node("broker-0", move || {
        Box::new(ScriptedBroker::new(1, s0.clone())) as Box<dyn Node>
    });
    let b = w.add_node("broker-1", move || {
        Box::new(ScriptedBroker::new(1, s1.clone())) as Box<dyn Node>
    });
    assert_eq!((a, b), (leadership.before, leadership.after));
    let spec = spec(a, Some(20.0), end_ms, 0);
    w.add_node("producer-0", move || {
        Box::new(Producer::new(spec.clone(), config.clone())) as Box<dyn Node>
    });
    w.run_until(Instant::from_millis(end_ms));
    (w, a, b)
}

/// Issue 12: after NotLeaderOrFollower, how long each client takes to write to the new leader,
/// and how many produce requests the deposed leader got after the move.
fn leader_move(client: &str, overrides: &[(&str, ConfigValue)]) -> (u64, usize) {
    // Idempotence off: the scripted new leader has no replicated producer state.
    let mut all = vec![("sync", boolean(true))];
    if client != "kafka-go" {
        all.push(("enable.idempotence", boolean(false)));
    }
    all.extend(overrides.iter().cloned());
    let c = config(client, None, &all);
    let (w, a, b) = run_leader_move(c, 2_000, 12_000);
    let old = w.node::<ScriptedBroker>(a).unwrap();
    let new = w.node::<ScriptedBroker>(b).unwrap();
    let failed = w
        .history()
        .entries()
        .filter(|e| {
            !matches!(
                e.event,
                HistoryEvent::SendOk { .. } | HistoryEvent::SendInvoke { .. }
            )
        })
        .count();
    assert_eq!(failed, 0, "{client}: a send did not succeed");
    let moved_at = *new
        .produce_times
        .first()
        .expect("never wrote to the new leader");
    let to_old = old
        .produce_times
        .iter()
        .filter(|t| **t >= Instant::from_millis(2_000))
        .count();
    (moved_at.as_millis() - 2_000, to_old)
}

#[test]
fn producers_follow_a_moved_leader_after_not_leader_or_follower() {
    // Java, sarama and librdkafka refresh metadata on NotLeaderOrFollower and retry at the
    // new leader within a retry backoff or two; one request hits the deposed leader.
    for client in ["java", "sarama", "librdkafka"] {
        let (after_ms, to_old) = leader_move(client, &[]);
        assert!(after_ms < 500, "{client}: moved after {after_ms} ms");
        assert_eq!(
            to_old, 1,
            "{client}: {to_old} requests to the deposed leader"
        );
    }
    // kafka-go refreshes only periodically (uniform below MetadataTTL, 6 s): it keeps retrying
    // at the deposed leader until then, and still moves within the TTL plus a backoff.
    let (after_ms, to_old) = leader_move("kafka-go", &[("acks", ConfigValue::Str("1".into()))]);
    assert!(after_ms < 7_000, "kafka-go: moved after {after_ms} ms");
    assert!(
        to_old >= 2,
        "kafka-go retried at the old leader {to_old} times"
    );
    // Without the periodic refresh (a long metadata.max.age.ms) a Java producer still moves
    // at once: the error is the trigger.
    let (after_ms, _) = leader_move("java", &[("metadata.max.age.ms", int(3_600_000))]);
    assert!(
        after_ms < 500,
        "java without periodic refresh: {after_ms} ms"
    );
}

#[test]
fn request_timeout_closes_the_connection() {
    // Request 3's response is lost: the producer times out and closes (the broker sees a
    // reset); with every response delivered it never closes.
    for lose in [true, false] {
        let script = Script {
            lose_response: if lose { [3].into() } else { BTreeSet::new() },
            ..Script::default()
        };
        for client in ["java", "sarama", "kafka-go", "librdkafka"] {
            // librdkafka's client waits socket.timeout.ms; its request.timeout.ms is the
            // broker's ack timeout.
            let timeout_key = if client == "librdkafka" {
                "socket.timeout.ms"
            } else {
                "request.timeout.ms"
            };
            let c = config(
                client,
                None,
                &[
                    ("sync", boolean(true)),
                    ("acks", ConfigValue::Str("1".into())),
                    ("enable.idempotence", boolean(false)),
                    (timeout_key, int(500)),
                    ("linger.ms", int(0)),
                ],
            );
            let (w, b, _) = run(
                script.clone(),
                1,
                |b| spec(b, Some(20.0), 2_000, 0),
                c,
                4_000,
            );
            let broker = w.node::<ScriptedBroker>(b).unwrap();
            check_completions(&w, broker);
            let expected = usize::from(lose);
            assert_eq!(
                broker.resets.len(),
                expected,
                "{client} lose={lose}: {:?}",
                broker.resets
            );
            if lose {
                // The retry goes out on a new connection after the close.
                let closed = broker.resets[0];
                assert!(broker.produce_times.iter().any(|t| *t > closed), "{client}");
            }
        }
    }
}

#[test]
fn reconnect_backoff_delays_the_next_request_after_a_close() {
    // retry.backoff.ms 1 so that only the reconnect backoff separates close and retry.
    let script = Script {
        lose_response: [3].into(),
        ..Script::default()
    };
    let gap = |reconnect_ms: i64| {
        let c = java(
            false,
            &[
                ("sync", boolean(true)),
                ("retry.backoff.ms", int(1)),
                ("reconnect.backoff.ms", int(reconnect_ms)),
                ("reconnect.backoff.max.ms", int(1_000)),
            ],
        );
        let (w, b, _) = run(
            script.clone(),
            1,
            |b| spec(b, Some(20.0), 2_000, 0),
            c,
            4_000,
        );
        let broker = w.node::<ScriptedBroker>(b).unwrap();
        let closed = broker.resets[0];
        let next = broker.produce_times.iter().find(|t| **t > closed).unwrap();
        next.saturating_since(closed).as_millis()
    };
    let (with, without) = (gap(200), gap(0));
    assert!(
        with >= 150,
        "reconnect.backoff.ms 200: next request {with} ms after the close"
    );
    assert!(
        without < 20,
        "no reconnect backoff: next request {without} ms after the close"
    );
}
