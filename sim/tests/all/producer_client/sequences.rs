//! Sequence numbers and the application's view of failures: out-of-order sequences per
//! client, retries below an acknowledged sequence, `on_error` resends (never deduplicated by
//! idempotence) and manual partition expressions.

use super::*;

/// A sync idempotent producer whose 3rd produce request is refused with OutOfOrderSequence
/// (the head batch: a real gap). Returns the broker and the history counts.
fn out_of_order(
    client: &str,
    version: Option<&str>,
    extra: &[(&str, ConfigValue)],
) -> (World, NodeId) {
    let script = Script {
        reject: [(3, ErrorCode::OutOfOrderSequenceNumber)].into(),
        ..Script::default()
    };
    let mut overrides = vec![
        ("sync", boolean(true)),
        ("enable.idempotence", boolean(true)),
        ("acks", ConfigValue::Str("all".into())),
    ];
    overrides.extend(extra.iter().cloned());
    let c = config(client, version, &overrides);
    let (w, b, _) = run(script, 1, |b| spec(b, Some(20.0), 1_000, 0), c, 3_000);
    (w, b)
}

#[test]
fn out_of_order_sequence_per_client() {
    // Java 2.5+ (KIP-360): bump the epoch and retry; nothing fails.
    let (w, b) = out_of_order("java", Some("3.7"), &[]);
    let broker = w.node::<ScriptedBroker>(b).unwrap();
    let counts = check_completions(&w, broker);
    assert_eq!(counts.get("fail"), None, "java 3.7: {counts:?}");
    assert_eq!(broker.inits.len(), 2, "java 3.7 bumps: {:?}", broker.inits);
    assert_eq!(
        broker.inits[1],
        (1000, 0),
        "bump with the current id and epoch"
    );
    assert_eq!(broker.values(0).len(), counts["ok"] as usize);

    // Java 2.4: the batch fails and the producer id is reset (InitProducerId with -1).
    let (w, b) = out_of_order("java", Some("2.4"), &[]);
    let broker = w.node::<ScriptedBroker>(b).unwrap();
    let counts = check_completions(&w, broker);
    assert_eq!(counts.get("fail"), Some(&1), "java 2.4: {counts:?}");
    assert_eq!(
        broker.inits,
        vec![(-1, -1), (-1, -1)],
        "java 2.4 resets the id"
    );
    assert!(counts["ok"] > 10, "java 2.4 goes on: {counts:?}");

    // librdkafka: OutOfOrderSequence on the head request is fatal: that send and every later
    // one fail, nothing more is written.
    let five = [("max.in.flight.requests.per.connection", int(5))];
    let (w, b) = out_of_order("librdkafka", None, &five);
    let broker = w.node::<ScriptedBroker>(b).unwrap();
    let counts = check_completions(&w, broker);
    assert_eq!(counts.get("ok"), Some(&2), "librdkafka: {counts:?}");
    assert!(
        counts["fail"] > 10,
        "librdkafka fails every send after the fatal error: {counts:?}"
    );
    assert_eq!(broker.produce_requests, 3);

    // sarama: the message fails, the epoch is bumped locally (no InitProducerId) and the
    // next batch starts the new epoch at sequence 0.
    let (w, b) = out_of_order(
        "sarama",
        None,
        &[("max.in.flight.requests.per.connection", int(1))],
    );
    let broker = w.node::<ScriptedBroker>(b).unwrap();
    let counts = check_completions(&w, broker);
    assert_eq!(counts.get("fail"), Some(&1), "sarama: {counts:?}");
    assert_eq!(
        broker.inits.len(),
        1,
        "sarama bumps locally: {:?}",
        broker.inits
    );
    let epochs = broker.producer_epochs(0);
    assert_eq!(epochs[..2], [0, 0]);
    assert!(
        epochs[2..].iter().all(|e| *e == 1),
        "sarama epochs {epochs:?}"
    );
}

/// An idempotent Java producer with 5 requests in flight, request 3 appended but its answer
/// lost: the later batches are acknowledged meanwhile, so when request 3 times out the
/// broker's 5-batch window has moved past it and its retry meets OutOfOrderSequence. Java's
/// `TransactionManager.canRetry` bumps only for the next sequence after the last
/// acknowledged one (`isNextSequence`); this batch is below it, so it is retried with its own
/// sequence until `delivery.timeout.ms` and ends unknown. Bumping would give it a fresh
/// sequence and write it a second time.
fn out_of_window_retry(lose: &[u64]) -> (World, NodeId) {
    let script = Script {
        lose_response: lose.iter().copied().collect(),
        ..Script::default()
    };
    let c = java(
        true,
        &[
            ("acks", ConfigValue::Str("all".into())),
            ("max.in.flight.requests.per.connection", int(5)),
            ("delivery.timeout.ms", int(2_000)),
        ],
    );
    let (w, b, _) = run(script, 1, |b| spec(b, Some(200.0), 1_000, 0), c, 5_000);
    (w, b)
}

#[test]
fn retry_below_an_acknowledged_sequence_is_not_resequenced() {
    let (w, b) = out_of_window_retry(&[3]);
    let broker = w.node::<ScriptedBroker>(b).unwrap();
    let counts = check_completions(&w, broker);
    let values = broker.values(0);
    assert_eq!(duplicates(&values), 0, "written twice: {counts:?}");
    assert_eq!(inversions(&values), 0);
    assert_eq!(broker.inits.len(), 1, "no epoch bump: {:?}", broker.inits);
    assert!(
        counts.get("info").is_some_and(|n| *n >= 1),
        "the lost batch ends unknown: {counts:?}"
    );
    assert!(counts["ok"] > 100, "{counts:?}");
    assert!(broker.produce_requests > 100);

    // Without a lost answer nothing is retried or bumped.
    let (w, b) = out_of_window_retry(&[]);
    let broker = w.node::<ScriptedBroker>(b).unwrap();
    let counts = check_completions(&w, broker);
    assert_eq!(counts.get("info"), None, "{counts:?}");
    assert_eq!(broker.inits.len(), 1);
}

/// Per value: the kinds of its history events in order ("invoke", "ok", "fail", "info").
fn story_of(w: &World, value: ValueId) -> Vec<&'static str> {
    w.history()
        .entries()
        .filter_map(|e| match &e.event {
            HistoryEvent::SendInvoke { value: v, .. } if *v == value => Some("invoke"),
            HistoryEvent::SendOk { value: v, .. } if *v == value => Some("ok"),
            HistoryEvent::SendFail { value: v, .. } if *v == value => Some("fail"),
            HistoryEvent::SendInfo { value: v, .. } if *v == value => Some("info"),
            _ => None,
        })
        .collect()
}

#[test]
fn on_error_retry_resends_a_failed_value_and_fail_gives_it_up() {
    // sarama: Retry.Max = 3, so four refusals fail the first value. An application reading
    // the error and resending hands the same value over again, and it is written once.
    let script = Script {
        reject: (1..=4).map(|n| (n, ErrorCode::NotEnoughReplicas)).collect(),
        ..Script::default()
    };
    let first = ValueId(0);
    let retry = [
        ("sync", boolean(true)),
        ("on_error", ConfigValue::Str("retry".into())),
    ];
    let c = config("sarama", None, &retry);
    let (w, b, p) = run(
        script.clone(),
        1,
        |b| spec(b, Some(10.0), 1_000, 0),
        c,
        3_000,
    );
    assert_eq!(story_of(&w, first), ["invoke", "fail", "invoke", "ok"]);
    let broker = w.node::<ScriptedBroker>(b).unwrap();
    assert_eq!(duplicates(&broker.values(0)), 0);
    assert_eq!(broker.values(0)[0], first);
    assert!(w.node::<Producer>(p).unwrap().is_idle(w.now()));
    // The same refusals with on_error = "fail": the value ends failed, never resent.
    let c = config("sarama", None, &[("sync", boolean(true))]);
    let (w, b, _) = run(script, 1, |b| spec(b, Some(10.0), 1_000, 0), c, 3_000);
    assert_eq!(story_of(&w, first), ["invoke", "fail"]);
    assert!(!w
        .node::<ScriptedBroker>(b)
        .unwrap()
        .values(0)
        .contains(&first));
}

#[test]
fn an_application_resend_is_not_deduplicated_by_idempotence() {
    // Every attempt of the first value is appended but its answer lost, until delivery.timeout
    // ends it unknown. The broker de-duplicates the client's own retries (same sequence), but
    // the application's resend is a new record with a new sequence: the log holds it twice.
    let script = Script {
        lose_response: (1..=3).collect(),
        ..Script::default()
    };
    let first = ValueId(0);
    let c = java(
        true,
        &[
            ("delivery.timeout.ms", int(1_500)),
            ("on_error", ConfigValue::Str("retry".into())),
            ("sync", boolean(true)),
        ],
    );
    let (w, b, _) = run(script, 1, |b| spec(b, Some(10.0), 100, 0), c, 10_000);
    let story = story_of(&w, first);
    assert_eq!(story.first(), Some(&"invoke"));
    assert_eq!(story.last(), Some(&"ok"), "{story:?}");
    assert!(story.contains(&"info"), "{story:?}");
    let log = w.node::<ScriptedBroker>(b).unwrap().values(0);
    assert_eq!(log.iter().filter(|v| **v == first).count(), 2, "{log:?}");
}

#[test]
fn manual_partition_expression_places_by_key_and_fails_missing_partitions() {
    let manual = |expr: &str| {
        config(
            "java",
            None,
            &[
                ("partitioner", ConfigValue::Str("manual".into())),
                ("partition", ConfigValue::Str(expr.into())),
            ],
        )
    };
    // key % 2 on 3 partitions: partition 2 stays empty, every record lands where its key says.
    let (w, b, _) = run(
        Script::default(),
        3,
        |b| spec(b, Some(100.0), 500, 10),
        manual("key % 2"),
        2_000,
    );
    let broker = w.node::<ScriptedBroker>(b).unwrap();
    assert!(!broker.values(0).is_empty() && !broker.values(1).is_empty());
    assert!(broker.values(2).is_empty());
    for e in w.history().entries() {
        if let HistoryEvent::SendOk {
            partition, value, ..
        } = &e.event
        {
            let key = w.history().entries().find_map(|i| match &i.event {
                HistoryEvent::SendInvoke { value: v, key, .. } if v == value => *key,
                _ => None,
            });
            assert_eq!(partition.partition, key.unwrap().0 % 2);
        }
    }
    // A partition the topic does not have: every send fails, nothing panics.
    let (w, b, _) = run(
        Script::default(),
        3,
        |b| spec(b, Some(100.0), 500, 10),
        manual("5"),
        2_000,
    );
    let counts = check_completions(&w, w.node::<ScriptedBroker>(b).unwrap());
    assert_eq!(counts.get("ok"), None, "{counts:?}");
    assert!(counts.get("fail").is_some_and(|f| *f > 10), "{counts:?}");
}
