//! Bad scenario files: each kind of error is reported at its line, with its key path, what
//! was expected and a hint; a garbage file never panics the parser.

use super::*;

#[test]
fn syntax_error_points_at_its_line() {
    let text = edited("partitions = 6", "partitions = = 6");
    let e = parse_err(&text);
    assert_eq!(e.line, line_of(&text, "partitions = = 6"), "{e}");
    assert_eq!(e.key, "topics[0].partitions", "{e}");
}

#[test]
fn unknown_key_at_top_level() {
    let text = edited("drain = \"30s\"", "drian = \"30s\"");
    let e = assert_error(&text, "drian", "drian", "unknown key `drian`");
    assert_eq!(e.hint.as_deref(), Some("did you mean `drain`?"));
}

#[test]
fn unknown_key_in_cluster() {
    let text = edited("brokers = 3", "brokers = 3\nbroker_count = 3");
    assert_error(&text, "broker_count", "cluster.broker_count", "unknown key");
}

#[test]
fn unknown_key_in_producers() {
    let text = edited(
        "message_size = 100",
        "message_size = 100\nmesage_size = 100",
    );
    let e = assert_error(
        &text,
        "mesage_size",
        "producers[0].mesage_size",
        "unknown key",
    );
    assert_eq!(e.hint.as_deref(), Some("did you mean `message_size`?"));
}

#[test]
fn unknown_key_in_handler() {
    let text = edited("workers = 1", "workrs = 1");
    let e = assert_error(
        &text,
        "workrs",
        "consumer_groups[0].handler.workrs",
        "unknown key",
    );
    assert_eq!(e.hint.as_deref(), Some("did you mean `workers`?"));
}

#[test]
fn wrong_type() {
    let text = edited("brokers = 3", "brokers = \"three\"");
    assert_error(
        &text,
        "brokers = \"three\"",
        "cluster.brokers",
        "expected an integer",
    );
}

#[test]
fn bad_duration() {
    let text = edited("drain = \"30s\"", "drain = \"30 seconds\"");
    let e = assert_error(&text, "drain =", "drain", "unknown unit");
    assert!(e.hint.is_some());
    let text = edited("at = \"10s\"", "at = 10000");
    let e = assert_error(&text, "at = 10000", "faults.schedule[0].at", "needs a unit");
    assert_eq!(
        e.hint.as_deref(),
        Some("write \"10000ms\" or \"10000s\" (a string with a unit)")
    );
}

#[test]
fn replication_factor_above_brokers() {
    let text = edited("replication_factor = 3", "replication_factor = 4");
    let e = assert_error(
        &text,
        "replication_factor = 4",
        "topics[0].replication_factor",
        "larger than the 3 broker",
    );
    assert!(e.hint.is_some());
}

#[test]
fn zero_partitions_and_brokers() {
    let text = edited("partitions = 6", "partitions = 0");
    assert_error(
        &text,
        "partitions = 0",
        "topics[0].partitions",
        "at least 1",
    );
    let text = edited("brokers = 3", "brokers = 0");
    assert_error(&text, "brokers = 0", "cluster.brokers", "at least 1");
    let text = edited("members = 3", "members = 0");
    assert_error(
        &text,
        "members = 0",
        "consumer_groups[0].members",
        "at least 1",
    );
    let text = edited("workers = 1", "workers = 0");
    assert_error(
        &text,
        "workers = 0",
        "consumer_groups[0].handler.workers",
        "at least 1",
    );
}

#[test]
fn target_naming_a_missing_topic() {
    let text = edited(
        "target = \"leader:orders/0\"",
        "target = \"leader:ordres/0\"",
    );
    let e = assert_error(
        &text,
        "leader:ordres/0",
        "faults.schedule[0].target",
        "no topic \"ordres\"",
    );
    assert_eq!(e.hint.as_deref(), Some("did you mean \"orders\"?"));
    let text = edited(
        "target = \"leader:orders/0\"",
        "target = \"leader:orders/6\"",
    );
    assert_error(
        &text,
        "leader:orders/6",
        "faults.schedule[0].target",
        "no partition 6",
    );
    let text = edited("target = \"leader:orders/0\"", "target = \"broker:3\"");
    assert_error(
        &text,
        "broker:3",
        "faults.schedule[0].target",
        "broker 3 does not exist",
    );
    let text = edited(
        "target = \"leader:orders/0\"",
        "target = \"consumer:billing/3\"",
    );
    assert_error(
        &text,
        "consumer:billing/3",
        "faults.schedule[0].target",
        "no member 3",
    );
    let text = edited("target = \"leader:orders/0\"", "target = \"producer:2\"");
    assert_error(
        &text,
        "producer:2",
        "faults.schedule[0].target",
        "producer 2 does not exist",
    );
}

#[test]
fn producer_and_group_naming_a_missing_topic() {
    let text = edited("topic = \"orders\"", "topic = \"order\"");
    assert_error(
        &text,
        "topic = \"order\"",
        "producers[0].topic",
        "no topic \"order\"",
    );
    let text = edited(
        "topics = [\"orders\"]",
        "topics = [\"orders\", \"refunds\"]",
    );
    assert_error(
        &text,
        "refunds",
        "consumer_groups[0].topics[1]",
        "no topic \"refunds\"",
    );
}

#[test]
fn dlq_without_dlq_topic() {
    let text = edited("sink = \"plain\"", "sink = \"plain\"\non_failure = \"dlq\"");
    assert_error(
        &text,
        "on_failure",
        "consumer_groups[0].handler.dlq_topic",
        "needs a dead-letter topic",
    );
}

#[test]
fn impossible_combinations() {
    let dup_topic = edited(
        "[[producers]]",
        "[[topics]]\nname = \"orders\"\n\n[[producers]]",
    );
    let e = parse_err(&dup_topic);
    assert_eq!(
        (e.key.as_str(), e.line),
        ("topics[1].name", line_of(&dup_topic, "[[producers]]") - 2),
        "{e}"
    );
    let at_late = edited("at = \"10s\"", "at = \"60s\"");
    assert_error(
        &at_late,
        "at = \"60s\"",
        "faults.schedule[0].at",
        "not within",
    );
    let both = edited(
        "allow = [\"duplicate\"]",
        "allow = [\"duplicate\", \"lost-write\"]",
    );
    assert_error(
        &both,
        "allow =",
        "expect.allow[1]",
        "both expected and allowed",
    );
    let unknown_kind = edited(
        "violations = [\"lost-write\"]",
        "violations = [\"lost-writes\"]",
    );
    let e = assert_error(
        &unknown_kind,
        "lost-writes",
        "expect.violations[0]",
        "unknown violation kind",
    );
    assert_eq!(e.hint.as_deref(), Some("did you mean \"lost-write\"?"));
    let zero_rate = edited("rate = 2000 ", "rate = 0 ");
    assert_error(&zero_rate, "rate = 0", "producers[0].rate", "above 0");
    let range = edited("process_time = \"2ms\"", "process_time = \"20ms..1ms\"");
    assert_error(
        &range,
        "20ms..1ms",
        "consumer_groups[0].handler.process_time",
        "minimum above",
    );
    let no_target = edited("target = \"leader:orders/0\"", "");
    assert_error(
        &no_target,
        "action = \"crash\"",
        "faults.schedule[0].target",
        "needs a `target`",
    );
    let foreign = edited(
        "target = \"leader:orders/0\"",
        "target = \"leader:orders/0\"\nlatency = \"5ms\"",
    );
    assert_error(
        &foreign,
        "latency",
        "faults.schedule[0].latency",
        "does not apply",
    );
    let bad_client = edited("client = \"sarama\"", "client = \"samara\"");
    let e = assert_error(
        &bad_client,
        "samara",
        "producers[0].client",
        "unknown value",
    );
    assert_eq!(e.hint.as_deref(), Some("did you mean \"sarama\"?"));
}

#[test]
fn missing_required_key() {
    let text = edited("name = \"orders\"\n", "");
    let e = parse_err(&text);
    assert_eq!(e.key, "topics[0].name", "{e}");
    assert!(e.message.contains("missing"), "{e}");
    assert!(e.line > 0, "{e}");
}

#[test]
fn missing_file() {
    let e = scenario::load(Path::new("/nonexistent/kafsim/none.toml")).unwrap_err();
    assert_eq!((e.line, e.column), (0, 0));
    assert_eq!(e.file, "/nonexistent/kafsim/none.toml");
    assert!(
        e.to_string()
            .starts_with("/nonexistent/kafsim/none.toml: cannot read"),
        "{e}"
    );
}

#[test]
fn every_library_scenario_parses() {
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios"));
    let files = scenario::library_files(dir).expect("scenarios/ is readable");
    assert!(files.len() >= 2, "the library has scenarios");
    for file in files {
        let s = scenario::load(&file).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            !s.description.is_empty(),
            "{} has a description",
            file.display()
        );
        let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        assert_eq!(s.name, stem, "a library scenario's name is its file name");
    }
}

#[test]
fn missing_top_level_table() {
    let e = parse_err("name = \"x\"\n");
    assert_eq!(e.key, "cluster", "{e}");
    assert!(e.message.contains("missing required key `cluster`"), "{e}");
    assert_eq!(
        e.to_string(),
        "test.toml: cluster: missing required key `cluster`"
    );
}

#[test]
fn unquoted_dotted_property_gets_a_hint() {
    let text = edited("\"linger.ms\" = 5", "linger.ms = 5");
    let e = assert_error(
        &text,
        "linger.ms = 5",
        "producers[0].config.linger.ms",
        "string, number or boolean",
    );
    assert!(e.hint.unwrap().contains("quote"));
}

#[test]
fn inline_handler_and_multiline_arrays_are_located() {
    let inline =
        "name = \"x\"\n[cluster]\nbrokers = 1\n[[topics]]\nname = \"t\"\n[[consumer_groups]]\n\
                  group = \"g\"\ntopics = [\"t\"]\nhandler = { workers = 2, sink = \"dedup\" }\n";
    let e = assert_error(
        inline,
        "dedup",
        "consumer_groups[0].handler.sink",
        "unknown value \"dedup\"",
    );
    assert_eq!(e.hint.as_deref(), Some("did you mean \"dedupe\"?"));
    let typo = inline.replace("workers", "workrs");
    let e = assert_error(
        &typo,
        "workrs",
        "consumer_groups[0].handler.workrs",
        "unknown key",
    );
    assert_eq!(e.hint.as_deref(), Some("did you mean `workers`?"));

    let multiline = edited(
        "kinds = [\"crash\", \"power-loss\", \"partition\", \"pause\", \"consumer-crash\"]",
        "kinds = [\n  \"crash\",\n  \"powerloss\",\n]",
    );
    let e = assert_error(
        &multiline,
        "\"powerloss\"",
        "faults.kinds[1]",
        "unknown fault",
    );
    assert_eq!(e.hint.as_deref(), Some("did you mean \"power-loss\"?"));
}

#[test]
fn apply_config_reports_the_property_line() {
    use kafsim_engine::config::Configurable;
    #[derive(Default)]
    struct Linger(i64);
    impl Configurable for Linger {
        fn set(&mut self, key: &str, value: &ConfigValue) -> Result<(), String> {
            assert_eq!(key, "linger.ms");
            self.0 = value.as_int_in(0, 1000)?;
            Ok(())
        }
        fn known_keys(&self) -> &'static [&'static str] {
            &["linger.ms"]
        }
    }
    let text = "name = \"x\"\n[cluster]\nbrokers = 1\n[cluster.config]\n\"linger.ms\" = 5\n\"lingr.ms\" = 1\n";
    let s = parse(text).unwrap();
    let mut config = Linger::default();
    let e = s
        .apply_config(&s.cluster.config, "cluster.config", &mut config)
        .unwrap_err();
    assert_eq!(config.0, 5, "properties before the bad one were applied");
    assert_eq!(
        (e.line, e.key.as_str()),
        (6, "cluster.config.lingr.ms"),
        "{e}"
    );
    assert_eq!(e.hint.as_deref(), Some("did you mean \"linger.ms\"?"));
    let bad_value = text
        .replace("\"lingr.ms\" = 1", "\"linger.ms\" = 5000")
        .replacen("\"linger.ms\" = 5\n", "", 1);
    let s = parse(&bad_value).unwrap();
    let e = s
        .apply_config(&s.cluster.config, "cluster.config", &mut config)
        .unwrap_err();
    assert_eq!(
        (e.line, e.key.as_str()),
        (5, "cluster.config.linger.ms"),
        "{e}"
    );
    assert!(e.message.contains("from 0 to 1000"), "{e}");
}

#[test]
fn fault_parameters_must_fit_the_action() {
    let schedule =
        |body: &str| format!("{DESIGN_EXAMPLE}[[faults.schedule]]\nat = \"20s\"\n{body}\n");
    let cases = [
        (
            "action = \"slow-link\"\ntarget = \"broker:0\"",
            "faults.schedule[1].latency",
            "needs `latency`",
        ),
        (
            "action = \"slow-disk\"\ntarget = \"broker:0\"\nfactor = 0.5",
            "faults.schedule[1].factor",
            "above 1",
        ),
        (
            "action = \"power-loss\"\ntarget = \"consumer:billing/0\"",
            "faults.schedule[1].target",
            "clients have no disk",
        ),
        (
            "action = \"consumer-crash\"\ntarget = \"broker:0\"",
            "faults.schedule[1].target",
            "consumer:GROUP/I",
        ),
        (
            "action = \"producer-partition\"\ntarget = \"broker:0\"",
            "faults.schedule[1].target",
            "a producer:I target",
        ),
        (
            "action = \"heal\"\ntarget = \"broker:0\"",
            "faults.schedule[1].target",
            "no target",
        ),
        (
            "action = \"restart\"\ntarget = \"broker:0\"\nduration = \"1s\"",
            "faults.schedule[1].duration",
            "does not apply",
        ),
        (
            "action = \"partition\"",
            "faults.schedule[1].groups",
            "needs `groups`",
        ),
        (
            "action = \"partition\"\ngroups = [[\"broker:0\"], [\"broker:0\"]]",
            "faults.schedule[1].groups[1][0]",
            "two groups",
        ),
        (
            "action = \"crash\"\ntarget = \"brokers:0,3\"",
            "faults.schedule[1].target",
            "broker 3",
        ),
        (
            "action = \"crash\"\ntarget = \"follower:orders/x\"",
            "faults.schedule[1].target",
            "partition index",
        ),
        (
            "action = \"explode\"",
            "faults.schedule[1].action",
            "unknown fault",
        ),
    ];
    for (body, key, words) in cases {
        let e = parse_err(&schedule(body));
        assert_eq!(e.key, key, "{body}: {e}");
        assert!(e.to_string().contains(words), "{body}: {e}");
        assert!(e.line > line_of(DESIGN_EXAMPLE, "[expect]"), "{body}: {e}");
    }
}

/// A partition a scripted add-partitions creates may be a fault target after it, not
/// before it, and no partition beyond the grown topic may be.
#[test]
fn a_partition_added_by_the_schedule_is_a_target_only_after_its_addition() {
    let schedule = |crash_at: &str, partition: u32| {
        format!(
            "{DESIGN_EXAMPLE}[[faults.schedule]]\nat = \"20s\"\naction = \"add-partitions\"\n\
             topic = \"orders\"\ncount = 3\n\n[[faults.schedule]]\nat = \"{crash_at}\"\n\
             action = \"crash\"\ntarget = \"leader:orders/{partition}\"\nduration = \"2s\"\n"
        )
    };
    let s = parse(&schedule("25s", 8)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.faults.schedule.len(), 3);
    let e = parse_err(&schedule("15s", 8));
    assert_eq!(e.key, "faults.schedule[2].target", "{e}");
    assert!(
        e.to_string()
            .contains("has no partition 8 at 15s: a later add-partitions creates it"),
        "{e}"
    );
    assert!(e.hint.is_some(), "{e}");
    let e = parse_err(&schedule("25s", 9));
    assert_eq!(e.key, "faults.schedule[2].target", "{e}");
    assert!(e.to_string().contains("has no partition 9"), "{e}");
    // A partition the topic was declared with is a target at any time.
    parse(&schedule("15s", 5)).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn add_partitions_parses_and_its_parameters_are_checked() {
    let schedule =
        |body: &str| format!("{DESIGN_EXAMPLE}[[faults.schedule]]\nat = \"20s\"\n{body}\n");
    let s = parse(&schedule(
        "action = \"add-partitions\"\ntopic = \"orders\"\ncount = 3",
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        s.faults.schedule[1].action,
        FaultAction::AddPartitions {
            topic: "orders".into(),
            count: 3
        }
    );
    let cases = [
        (
            "action = \"add-partitions\"\ncount = 3",
            "faults.schedule[1].topic",
            "needs `topic`",
        ),
        (
            "action = \"add-partitions\"\ntopic = \"orders\"",
            "faults.schedule[1].count",
            "needs `count`",
        ),
        (
            "action = \"add-partitions\"\ntopic = \"ordres\"\ncount = 3",
            "faults.schedule[1].topic",
            "no topic \"ordres\"",
        ),
        (
            "action = \"add-partitions\"\ntopic = \"orders\"\ncount = 0",
            "faults.schedule[1].count",
            "at least 1",
        ),
        (
            "action = \"add-partitions\"\ntopic = \"orders\"\ncount = 9995",
            "faults.schedule[1].count",
            "at most 9994",
        ),
        (
            "action = \"add-partitions\"\ntopic = \"orders\"\ncount = 1\ntarget = \"broker:0\"",
            "faults.schedule[1].target",
            "takes no target",
        ),
        (
            "action = \"add-partitions\"\ntopic = \"orders\"\ncount = 1\nduration = \"5s\"",
            "faults.schedule[1].duration",
            "does not apply",
        ),
        (
            "action = \"crash\"\ntarget = \"broker:0\"\ncount = 2",
            "faults.schedule[1].count",
            "does not apply",
        ),
        (
            "action = \"crash\"\ntarget = \"broker:0\"\ntopic = \"orders\"",
            "faults.schedule[1].topic",
            "does not apply",
        ),
    ];
    for (body, key, words) in cases {
        let e = parse_err(&schedule(body));
        assert_eq!(e.key, key, "{body}: {e}");
        assert!(e.to_string().contains(words), "{body}: {e}");
        assert!(e.hint.is_some(), "{body}: no hint in {e}");
        assert!(e.line > line_of(DESIGN_EXAMPLE, "[expect]"), "{body}: {e}");
    }
    let e = parse_err(&edited(
        "kinds = [\"crash\",",
        "kinds = [\"add-partitions\", \"crash\",",
    ));
    assert_eq!(e.key, "faults.kinds[0]", "{e}");
    assert!(e.to_string().contains("operator's action"), "{e}");
}

#[test]
fn garbage_line_is_not_blamed_on_the_key_above() {
    let text = edited("rate = 2000 ", "rate = 2000\nbogus line\n");
    let e = assert_error(&text, "bogus line", "producers[0]", "TOML syntax");
    assert_eq!(e.column, 7, "{e}");
}

#[test]
fn top_level_key_below_a_table_gets_a_hint() {
    let e = parse_err("name = \"x\"\n[cluster]\nbrokers = 1\nduration = \"10s\"\n");
    assert_eq!((e.line, e.key.as_str()), (4, "cluster.duration"), "{e}");
    let hint = e.hint.unwrap_or_default();
    assert!(hint.contains("top-level key"), "{hint}");
}

mod never_panics {
    use super::DESIGN_EXAMPLE;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        /// Any edit of a valid file (a span cut out, some text put in) parses or fails with a
        /// position inside the file: never a panic (DESIGN §5).
        #[test]
        fn edited_files_never_panic(cut in 0usize..2000, len in 0usize..40, insert in "[ -~\n]{0,12}") {
            let text = DESIGN_EXAMPLE;
            let start = cut.min(text.len());
            let end = (start + len).min(text.len());
            let edited = format!("{}{insert}{}", &text[..start], &text[end..]);
            if let Err(e) = kafsim_sim::scenario::parse("fuzz.toml", &edited) {
                prop_assert!(e.line <= edited.lines().count() + 1, "{e}");
                prop_assert!(!e.message.is_empty());
            }
        }
    }
}

/// `[faults] undo_after`: a range of durations for every random fault; anything else, or the
/// key without `random = true`, is an error naming the key and its line.
#[test]
fn faults_undo_after_is_a_range_for_random_faults() {
    let ok = edited(
        "mean_interval = \"5s\"",
        "mean_interval = \"5s\"\nundo_after = \"20s..90s\"",
    );
    let s = parse(&ok).expect("a range parses");
    assert_eq!(
        s.faults.undo_after,
        Some((Duration::from_secs(20), Duration::from_secs(90)))
    );
    assert_eq!(parse(DESIGN_EXAMPLE).unwrap().faults.undo_after, None);
    for (bad, words) in [
        ("undo_after = \"20s\"", "not a range"),
        ("undo_after = 20", "expected a string"),
        ("undo_after = \"90s..20s\"", "smaller bound first"),
        ("undo_after = \"0s..20s\"", "more than 0s"),
        ("undo_after = \"1s..2d\"", "undo_after"),
        ("undo_after = \"1s..forever\"", "forever"),
    ] {
        let text = edited(
            "mean_interval = \"5s\"",
            &format!("mean_interval = \"5s\"\n{bad}"),
        );
        let e = assert_error(&text, "undo_after", "faults.undo_after", words);
        assert!(e.hint.is_some(), "{e}");
    }
    let not_random = edited("random = true", "random = false\nundo_after = \"20s..90s\"");
    assert_error(&not_random, "undo_after", "faults.undo_after", "random");
}

#[test]
fn producer_partition_needs_a_producer() {
    let text = "name = \"m\"\n[cluster]\nbrokers = 1\n[faults]\nrandom = true\nkinds = [\"producer-partition\"]\n";
    assert_error(
        text,
        "kinds = ",
        "faults.kinds[0]",
        "\"producer-partition\" needs a producer, and none is declared",
    );
    let ok = edited(
        "kinds = [\"crash\", \"power-loss\", \"partition\", \"pause\", \"consumer-crash\"]",
        "kinds = [\"producer-partition\"]",
    );
    assert_eq!(
        parse(&ok).unwrap().faults.kinds,
        vec![scenario::FaultKind::ProducerPartition]
    );
}

/// Static membership (KIP-345): `group.instance.id` (sarama's `Consumer.Group.InstanceId`)
/// is accepted where the client has it, and member I of the group gets `<value>-I`; kafka-go
/// has no instance id, an old client version has none yet, and a standalone consumer never
/// joins: each an error at the key's line.
#[test]
fn group_instance_id_is_accepted_where_the_client_has_it() {
    use super::connection_setup::{group_as, prepare_err, prepares};
    for (client, key, more) in [
        ("java", "group.instance.id", ""),
        (
            "librdkafka",
            "group.instance.id",
            "\"enable.auto.offset.store\" = false\n",
        ),
        ("sarama", "Consumer.Group.InstanceId", ""),
    ] {
        let p = prepares(&group_as(
            client,
            &format!("\"{key}\" = \"billing\"\n{more}"),
        ));
        let config = p.group_config("billing").expect("the group");
        assert_eq!(
            config.group_instance_id.as_deref(),
            Some("billing"),
            "{client}"
        );
    }
    let text = group_as("kafka-go", "\"group.instance.id\" = \"billing\"\n");
    let e = prepare_err(&text);
    assert_eq!(e.key, "consumer_groups[0].config.group.instance.id", "{e}");
    assert_eq!(e.line, line_of(&text, "group.instance.id"), "{e}");
    assert!(
        e.to_string().contains("kafka-go has no static membership"),
        "{e}"
    );
    let text = group_as("java", "\"group.instance.id\" = \"billing\"\n").replacen(
        "client = \"java\"\n",
        "client = \"java\"\nclient_version = \"2.2\"\n",
        1,
    );
    let e = prepare_err(&text).to_string();
    assert!(e.contains("static membership came in java 2.3"), "{e}");
}
