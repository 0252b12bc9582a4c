//! The service keys: Kafka versions, consumer groups and their client-specific marks and
//! stores, the database and poison-record keys, bench backlogs, message profiles and
//! partition watches, valid and invalid.

use super::*;

#[test]
fn cluster_version_selects_a_modelled_kafka_release() {
    use kafsim_engine::broker::version::KafkaVersion;
    let s = parse(DESIGN_EXAMPLE).unwrap();
    assert_eq!(s.cluster.version, KafkaVersion::NEWEST, "default: newest");
    let text = edited("brokers = 3", "brokers = 3\nversion = \"3.6\"");
    let s = parse(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.cluster.version, KafkaVersion::V3_6);
    let text = edited("brokers = 3", "brokers = 3\nversion = \"3.7.1\"");
    assert_eq!(parse(&text).unwrap().cluster.version, KafkaVersion::V3_7);
}

#[test]
fn unmodelled_cluster_version_is_an_error_listing_the_valid_ones() {
    let text = edited("brokers = 3", "brokers = 3\nversion = \"2.8\"");
    let e = assert_error(
        &text,
        "version = \"2.8\"",
        "cluster.version",
        "not modelled",
    );
    let hint = e.hint.expect("a hint");
    assert!(hint.contains("3.3") && hint.contains("4.0"), "{hint}");
}

/// The design example's group with `client` and handler lines replaced.
fn group_as(client: &str, config: &str, handler: &str) -> String {
    edited(
        "client = \"sarama\"\ntopics = [\"orders\"]",
        &format!("client = \"{client}\"\ntopics = [\"orders\"]"),
    )
    .replacen(
        "\"auto.offset.reset\" = \"earliest\"\n",
        &format!("\"auto.offset.reset\" = \"earliest\"\n{config}"),
        1,
    )
    .replacen(
        "mark = \"after-process\"    # or \"before-process\"",
        handler,
        1,
    )
}

#[test]
fn mark_never_parses_and_a_mark_the_loop_cannot_honour_is_refused() {
    let never = edited(
        "mark = \"after-process\"    # or \"before-process\"",
        "mark = \"never\"",
    );
    let s = parse(&never).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.consumer_groups[0].handler.mark, MarkPoint::Never);
    let typo = edited(
        "mark = \"after-process\"    # or \"before-process\"",
        "mark = \"nevr\"",
    );
    let e = assert_error(
        &typo,
        "nevr",
        "consumer_groups[0].handler.mark",
        "unknown value",
    );
    assert_eq!(e.hint.as_deref(), Some("did you mean \"never\"?"));

    // kafka-go ReadMessage (commit = "auto") commits before returning.
    let kgo = group_as("kafka-go", "", "mark = \"after-process\"");
    let e = assert_error(
        &kgo,
        "mark = \"after-process\"",
        "consumer_groups[0].handler.mark",
        "ReadMessage",
    );
    assert!(e.hint.unwrap().contains("commit = \"sync\""));
    let fetch = kgo.replacen("commit = \"auto\"", "commit = \"sync\"", 1);
    parse(&fetch).unwrap_or_else(|e| panic!("{e}"));

    // librdkafka stores offsets at hand-over unless enable.auto.offset.store = false.
    let rdk = group_as("librdkafka", "", "mark = \"never\"");
    let e = assert_error(
        &rdk,
        "mark = \"never\"",
        "consumer_groups[0].handler.mark",
        "enable.auto.offset.store",
    );
    assert!(e.hint.unwrap().contains("= false"));
    let stored = group_as(
        "librdkafka",
        "\"enable.auto.offset.store\" = false\n",
        "mark = \"never\"",
    );
    parse(&stored).unwrap_or_else(|e| panic!("{e}"));

    // Java's auto-commit commits positions: "never" would change nothing.
    let java = group_as("java", "", "mark = \"never\"");
    let e = assert_error(
        &java,
        "mark = \"never\"",
        "consumer_groups[0].handler.mark",
        "positions",
    );
    assert!(e.hint.unwrap().contains("enable.auto.commit"));
}

#[test]
fn enable_auto_offset_store_is_librdkafkas_own() {
    let text = group_as(
        "sarama",
        "\"enable.auto.offset.store\" = false\n",
        "mark = \"after-process\"",
    );
    let s = parse(&text).unwrap_or_else(|e| panic!("{e}"));
    let e = match kafsim_sim::runner::prepare(s) {
        Ok(_) => panic!("sarama has no offset store"),
        Err(e) => e,
    };
    assert_eq!(
        e.key, "consumer_groups[0].config.enable.auto.offset.store",
        "{e}"
    );
    assert_eq!(e.line, line_of(&text, "enable.auto.offset.store"), "{e}");
    assert!(e.to_string().contains("librdkafka property"), "{e}");
    let bad = group_as("librdkafka", "\"enable.auto.offset.store\" = \"no\"\n", "");
    let s = parse(&bad).unwrap_or_else(|e| panic!("{e}"));
    let Err(e) = kafsim_sim::runner::prepare(s) else {
        panic!("\"no\" is not a boolean");
    };
    assert_eq!(e.line, line_of(&bad, "enable.auto.offset.store"), "{e}");
}

#[test]
fn tables_sharing_a_group_name_are_services_in_one_group() {
    let text = edited(
        "[faults]",
        "[[consumer_groups]]\ngroup = \"billing\"\nmembers = 2\ntopics = [\"orders\"]\n\n[faults]",
    )
    .replacen(
        "target = \"leader:orders/0\"",
        "target = \"consumer:billing/4\"",
        1,
    )
    .replacen("action = \"crash\" ", "action = \"consumer-crash\" ", 1);
    let s = parse(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.consumer_groups.len(), 2);
    // Members are numbered across the tables: 3 + 2 = 5, so member 5 does not exist.
    let past = text.replacen("consumer:billing/4", "consumer:billing/5", 1);
    let e = assert_error(
        &past,
        "consumer:billing/5",
        "faults.schedule[0].target",
        "no member 5",
    );
    assert!(e.hint.unwrap().contains("0 to 4"));
}

#[test]
fn database_and_poison_keys_parse_with_their_defaults() {
    let s = parse(DESIGN_EXAMPLE).unwrap();
    let h = &s.consumer_groups[0].handler;
    assert_eq!(h.database_latency, Duration::from_micros(500));
    assert_eq!((h.poison_rate, h.max_attempts), (0.0, Some(20)));
    let text = edited(
        "sink = \"plain\"",
        "sink = \"plain\"\ndatabase_latency = \"2ms\"\npoison_rate = 0.01\nmax_attempts = \"unlimited\"",
    );
    let s = parse(&text).unwrap();
    let h = &s.consumer_groups[0].handler;
    assert_eq!(h.database_latency, Duration::from_millis(2));
    assert_eq!((h.poison_rate, h.max_attempts), (0.01, None));
    let text = edited("sink = \"plain\"", "sink = \"plain\"\nmax_attempts = 3");
    assert_eq!(
        parse(&text).unwrap().consumer_groups[0]
            .handler
            .max_attempts,
        Some(3)
    );
    let text = edited(
        "target = \"leader:orders/0\"",
        "target = \"database:billing\"",
    );
    let s = parse(&text).unwrap();
    assert_eq!(
        s.faults.schedule[0].action,
        FaultAction::Crash(Target::Database {
            group: "billing".into()
        })
    );
}

#[test]
fn bad_database_and_poison_keys_are_errors_at_their_line() {
    let key = "consumer_groups[0].handler";
    let with = |line: &str| edited("sink = \"plain\"", &format!("sink = \"plain\"\n{line}"));
    let e = assert_error(
        &with("database_latency = \"5s\""),
        "database_latency",
        &format!("{key}.database_latency"),
        "statement timeout",
    );
    assert!(e.hint.as_deref().unwrap().contains("at most 1s"), "{e}");
    assert_error(
        &with("database_latency = 5"),
        "database_latency",
        &format!("{key}.database_latency"),
        "needs a unit",
    );
    assert_error(
        &with("poison_rate = 1.5"),
        "poison_rate",
        &format!("{key}.poison_rate"),
        "from 0.0 to 1.0",
    );
    let e = assert_error(
        &with("max_attempts = 0"),
        "max_attempts",
        &format!("{key}.max_attempts"),
        "from 1 to",
    );
    assert!(e.hint.as_deref().unwrap().contains("unlimited"), "{e}");
    assert_error(
        &with("max_attempts = \"forever\""),
        "max_attempts",
        &format!("{key}.max_attempts"),
        "expected an integer or \"unlimited\"",
    );
    let e = assert_error(
        &with("on_failure = \"skip\"\nmax_attempts = 3"),
        "max_attempts",
        &format!("{key}.max_attempts"),
        "bounds the retries",
    );
    assert!(e.hint.is_some());
    let target = |t: &str| edited("target = \"leader:orders/0\"", &format!("target = \"{t}\""));
    let e = assert_error(
        &target("database:biling"),
        "database:biling",
        "faults.schedule[0].target",
        "no consumer group \"biling\"",
    );
    assert_eq!(e.hint.as_deref(), Some("did you mean \"billing\"?"));
    assert_error(
        &target("database:"),
        "database:",
        "faults.schedule[0].target",
        "names no group",
    );
    let text = edited("sink = \"plain\" ", "# no sink ").replace(
        "target = \"leader:orders/0\"",
        "target = \"database:billing\"",
    );
    let e = assert_error(
        &text,
        "database:billing",
        "faults.schedule[0].target",
        "has no database",
    );
    assert!(e.hint.as_deref().unwrap().contains("sink"), "{e}");
    let text = edited("action = \"crash\"", "action = \"power-loss\"");
    let text = text.replace(
        "target = \"leader:orders/0\"",
        "target = \"database:billing\"",
    );
    assert_error(
        &text,
        "database:billing",
        "faults.schedule[0].target",
        "a database takes crash",
    );
}

#[test]
fn bench_backlog_is_a_fill_time_or_a_size() {
    use scenario::{AfterBacklog, Backlog};
    let s = parse(&format!("{DESIGN_EXAMPLE}[bench]\nbacklog = \"3s\"\n")).unwrap();
    assert_eq!(
        s.bench.backlog,
        Some(Backlog {
            fill: Duration::from_secs(3),
            size_bytes: None,
            producers: AfterBacklog::Continue,
        })
    );
    // Two producers of 2000 records/s of 100 bytes write 400 kB/s: 2 MB take 5 s.
    let text =
        format!("{DESIGN_EXAMPLE}[bench]\nbacklog = \"2MB\"\nproducers_after_backlog = \"stop\"\n");
    let b = parse(&text).unwrap().bench.backlog.unwrap();
    assert_eq!(b.fill, Duration::from_secs(5));
    assert_eq!(b.size_bytes, Some(2_000_000));
    assert_eq!(b.producers, AfterBacklog::Stop);
    assert_eq!(parse(DESIGN_EXAMPLE).unwrap().bench.backlog, None);
}

#[test]
fn bench_backlog_errors_name_the_key_and_line() {
    let with = |body: &str| format!("{DESIGN_EXAMPLE}[bench]\n{body}\n");
    assert_error(
        &with("backlog = 3"),
        "backlog = 3",
        "bench.backlog",
        "expected a string",
    );
    assert_error(
        &with("backlog = \"3 parsecs\""),
        "backlog =",
        "bench.backlog",
        "unknown unit",
    );
    assert_error(
        &with("backlog = \"90s\""),
        "backlog =",
        "bench.backlog",
        "shorter than `duration`",
    );
    assert_error(
        &with("backlog = \"0GB\""),
        "backlog =",
        "bench.backlog",
        "above 0",
    );
    let max = with("backlog = \"1GB\"").replace("rate = 2000 ", "rate = \"max\"");
    assert_error(&max, "backlog =", "bench.backlog", "fixed `rate`");
    assert_error(
        &with("backlog = \"3s\"\nproducers_after_backlog = \"pause\""),
        "producers_after_backlog",
        "bench.producers_after_backlog",
        "pause",
    );
    assert_error(
        &with("producers_after_backlog = \"stop\""),
        "producers_after_backlog",
        "bench.producers_after_backlog",
        "only means something with a backlog",
    );
    let e = parse_err(&with("backlogg = \"3s\""));
    assert!(e.to_string().contains("backlogg"), "{e}");
    let no_groups = "name = \"x\"\nduration = \"10s\"\n[cluster]\nbrokers = 1\n[[topics]]\n\
                     name = \"t\"\n[[producers]]\ntopic = \"t\"\nrate = 10\n[bench]\n\
                     backlog = \"3s\"\n";
    assert_error(no_groups, "backlog =", "bench.backlog", "needs consumers");
}

#[test]
fn message_profile_names_a_profile_or_a_ratio() {
    use kafsim_sim::scenario::MessageProfile;
    let s = parse(&edited(
        "message_size = 100",
        "message_size = 100\nmessage_profile = \"json-logs\"",
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.producers[0].message_profile, MessageProfile::JsonLogs);
    let s = parse(&edited(
        "message_size = 100",
        "message_size = 100\nmessage_profile = 0.4",
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.producers[0].message_profile, MessageProfile::Ratio(0.4));
    let s = parse(DESIGN_EXAMPLE).unwrap();
    assert_eq!(s.producers[0].message_profile, MessageProfile::Random);
}

#[test]
fn bad_message_profile() {
    let text = edited(
        "message_size = 100",
        "message_size = 100\nmessage_profile = \"xml\"",
    );
    let e = assert_error(
        &text,
        "message_profile",
        "producers[0].message_profile",
        "unknown message profile \"xml\"",
    );
    assert!(e.hint.unwrap().contains("json-logs"));
    let text = edited(
        "message_size = 100",
        "message_size = 100\nmessage_profile = 0",
    );
    assert_error(
        &text,
        "message_profile",
        "producers[0].message_profile",
        "above 0 and at most 1",
    );
}

/// The consumer's partition-watch properties (add-partitions): a bad value or a kafka-go
/// Reader field on another client is an error at its line, naming the key.
#[test]
fn partition_watch_properties_have_clear_errors() {
    let prepare_err = |text: &str| {
        let s = parse(text).unwrap_or_else(|e| panic!("{e}"));
        match kafsim_sim::runner::prepare(s) {
            Ok(_) => panic!("expected an error for:\n{text}"),
            Err(e) => e,
        }
    };
    let bad_age = group_as("java", "\"metadata.max.age.ms\" = \"soon\"\n", "");
    let e = prepare_err(&bad_age);
    assert_eq!(
        e.key, "consumer_groups[0].config.metadata.max.age.ms",
        "{e}"
    );
    assert_eq!(e.line, line_of(&bad_age, "metadata.max.age.ms"), "{e}");

    let not_kafka_go = group_as("java", "\"kafka-go.WatchPartitionChanges\" = true\n", "");
    let e = prepare_err(&not_kafka_go);
    assert_eq!(
        e.key, "consumer_groups[0].config.kafka-go.WatchPartitionChanges",
        "{e}"
    );
    assert_eq!(
        e.line,
        line_of(&not_kafka_go, "WatchPartitionChanges"),
        "{e}"
    );
    assert!(e.to_string().contains("kafka-go Reader field"), "{e}");

    let not_bool = group_as(
        "kafka-go",
        "\"kafka-go.WatchPartitionChanges\" = \"yes\"\n",
        "",
    );
    let e = prepare_err(&not_bool);
    assert_eq!(e.line, line_of(&not_bool, "WatchPartitionChanges"), "{e}");

    let fine = group_as(
        "kafka-go",
        "\"kafka-go.WatchPartitionChanges\" = true\n",
        "",
    );
    kafsim_sim::runner::prepare(parse(&fine).unwrap_or_else(|e| panic!("{e}")))
        .unwrap_or_else(|e| panic!("{e}"));
}
