//! Scenario files (DESIGN §5): the design's example parses into every field, each kind of bad
//! input is reported at the right line with the right key path, and every file of the library
//! in `scenarios/` parses.

use kafsim_engine::config::ConfigValue;
use kafsim_sim::scenario::{
    self, ClientKind, CommitMode, Drain, FaultAction, FaultKind, MarkPoint, OnFailure, ProcessTime,
    Rate, Routing, ScenarioError, SinkKind, Target,
};
use kafsim_sim::violation::ViolationKind;
use std::path::Path;
use std::time::Duration;

/// DESIGN §5's example, verbatim.
const DESIGN_EXAMPLE: &str = r#"name = "acks1-leader-crash"
description = "acks=1 acknowledges before followers have the record; a leader crash loses it."
duration = "60s"          # safety phase
drain = "30s"             # after heal
seeds = 200               # default number of seeds for `kafsim run`

[cluster]
brokers = 3
[cluster.config]          # broker properties, Kafka names
"min.insync.replicas" = 1
"unclean.leader.election.enable" = false
"replica.lag.time.max.ms" = 10000
"replication.protocol" = "leader-epoch"     # or "high-watermark" (legacy, pre-KIP-101)

[[topics]]
name = "orders"
partitions = 6
replication_factor = 3

[[producers]]
count = 2
client = "sarama"
client_version = "1.43"   # optional; the profile's newest modelled version by default
topic = "orders"
rate = 2000               # records/s per producer, or "max"
keys = 100                # distinct keys; 0 = null keys
message_size = 100
[producers.config]
acks = "1"
"enable.idempotence" = false
"linger.ms" = 5
partitioner = "sarama-hash"

[[consumer_groups]]
group = "billing"
members = 3
client = "sarama"
topics = ["orders"]
[consumer_groups.config]
"enable.auto.commit" = true
"auto.commit.interval.ms" = 1000
"auto.offset.reset" = "earliest"
[consumer_groups.handler]
process_time = "2ms"       # fixed, or "1ms..20ms" drawn uniformly per record
mark = "after-process"    # or "before-process"
commit = "auto"           # or "sync", "async"
workers = 1
routing = "key"           # or "round-robin"
sink = "plain"            # or "dedupe", "offsets-in-sink"

[faults]
random = true
kinds = ["crash", "power-loss", "partition", "pause", "consumer-crash"]
mean_interval = "5s"
[[faults.schedule]]
at = "10s"
action = "crash"          # crash, restart, power-loss, partition, heal, pause, resume, slow-link, ...
target = "leader:orders/0"  # broker:N, leader:T/P, follower:T/P, controller, brokers:all, consumer:G/I, producer:I

[expect]
violations = ["lost-write"]   # must be found within `seeds`; [] = must find none
allow = ["duplicate"]         # kinds that are not failures here
"#;

fn parse(text: &str) -> Result<scenario::Scenario, ScenarioError> {
    scenario::parse("test.toml", text)
}

fn parse_err(text: &str) -> ScenarioError {
    match parse(text) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e,
    }
}

/// 1-based line of the first line of `text` containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle} not in text"))
        + 1
}

/// The design example with `from` replaced by `to` (which must occur).
fn edited(from: &str, to: &str) -> String {
    assert!(DESIGN_EXAMPLE.contains(from), "{from} not in the example");
    DESIGN_EXAMPLE.replacen(from, to, 1)
}

/// Asserts the error's key, line (of `needle` in `text`) and that the message mentions `words`.
fn assert_error(text: &str, needle: &str, key: &str, words: &str) -> ScenarioError {
    let e = parse_err(text);
    assert_eq!(e.key, key, "key of: {e}");
    assert_eq!(e.line, line_of(text, needle), "line of: {e}");
    assert!(e.column >= 1, "column of: {e}");
    assert_eq!(e.file, "test.toml");
    let shown = e.to_string();
    assert!(shown.contains(words), "'{words}' not in: {shown}");
    e
}

#[test]
fn design_example_parses_with_every_field() {
    let s = parse(DESIGN_EXAMPLE).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.name, "acks1-leader-crash");
    assert!(s.description.starts_with("acks=1 acknowledges"));
    assert_eq!(s.duration, Duration::from_secs(60));
    assert_eq!(s.drain, Drain::Bound(Duration::from_secs(30)));
    assert_eq!(s.seeds, 200);
    assert_eq!((s.warmup, s.hardware.clone()), (None, None));

    assert_eq!(s.cluster.brokers, 3);
    let cluster: Vec<(&str, &ConfigValue)> = s
        .cluster
        .config
        .iter()
        .map(|p| (p.key.as_str(), &p.value))
        .collect();
    assert_eq!(
        cluster,
        [
            ("min.insync.replicas", &ConfigValue::Int(1)),
            ("unclean.leader.election.enable", &ConfigValue::Bool(false)),
            ("replica.lag.time.max.ms", &ConfigValue::Int(10000)),
            (
                "replication.protocol",
                &ConfigValue::Str("leader-epoch".into())
            ),
        ]
    );
    assert_eq!(
        s.cluster.config[0].line,
        line_of(DESIGN_EXAMPLE, "\"min.insync.replicas\"")
    );
    assert_eq!(s.cluster.config[0].column, 1);

    assert_eq!(s.topics.len(), 1);
    let t = &s.topics[0];
    assert_eq!(
        (t.name.as_str(), t.partitions, t.replication_factor),
        ("orders", 6, 3)
    );
    assert!(t.config.is_empty());

    assert_eq!(s.producers.len(), 1);
    let p = &s.producers[0];
    assert_eq!(p.count, 2);
    assert_eq!(p.client, ClientKind::Sarama);
    assert_eq!(p.client_version.as_deref(), Some("1.43"));
    assert_eq!(p.topic, "orders");
    assert_eq!(p.rate, Rate::PerSecond(2000.0));
    assert_eq!((p.keys, p.message_size), (100, 100));
    let keys: Vec<&str> = p.config.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        ["acks", "enable.idempotence", "linger.ms", "partitioner"]
    );
    assert_eq!(p.config[0].value, ConfigValue::Str("1".into()));
    assert_eq!(p.config[2].value, ConfigValue::Int(5));
    assert_eq!(s.total_producers(), 2);

    let g = &s.consumer_groups[0];
    assert_eq!(
        (g.group.as_str(), g.members, g.client),
        ("billing", 3, ClientKind::Sarama)
    );
    assert_eq!(g.client_version, None);
    assert_eq!(g.topics, ["orders"]);
    assert_eq!(g.config.len(), 3);
    assert_eq!(g.config[1].value, ConfigValue::Int(1000));
    let h = &g.handler;
    assert_eq!(h.process_time, ProcessTime::Fixed(Duration::from_millis(2)));
    assert_eq!(
        (h.mark, h.commit, h.workers),
        (MarkPoint::AfterProcess, CommitMode::Auto, 1)
    );
    assert_eq!((h.routing, h.sink), (Routing::Key, Some(SinkKind::Plain)));
    assert_eq!(
        (h.batch, h.batch_timeout, h.failure_rate),
        (None, None, 0.0)
    );
    assert_eq!(
        (h.on_failure, h.dlq_topic.clone()),
        (OnFailure::Retry, None)
    );

    let f = &s.faults;
    assert!(f.random);
    use FaultKind::*;
    assert_eq!(f.kinds, [Crash, PowerLoss, Partition, Pause, ConsumerCrash]);
    assert_eq!(f.mean_interval, Duration::from_secs(5));
    assert_eq!(f.schedule.len(), 1);
    let leader = Target::Leader {
        topic: "orders".into(),
        partition: 0,
    };
    assert_eq!(f.schedule[0].at, Duration::from_secs(10));
    assert_eq!(f.schedule[0].action, FaultAction::Crash(leader));
    assert_eq!(f.schedule[0].undo_after, None);
    assert_eq!(
        f.schedule[0].line,
        line_of(DESIGN_EXAMPLE, "action = \"crash\"")
    );

    assert_eq!(s.expect.violations, [ViolationKind::LostWrite]);
    assert_eq!(s.expect.allow, [ViolationKind::Duplicate]);
}

#[test]
fn minimal_file_gets_the_defaults() {
    let s = parse("name = \"m\"\n[cluster]\nbrokers = 1\n").unwrap();
    assert_eq!(s.description, "");
    assert_eq!(
        (s.duration, s.drain, s.seeds),
        (Duration::from_secs(60), Drain::Auto, 100)
    );
    assert!(s.topics.is_empty() && s.producers.is_empty() && s.consumer_groups.is_empty());
    assert!(!s.faults.random && s.faults.kinds.is_empty() && s.faults.schedule.is_empty());
    assert_eq!(s.faults.mean_interval, Duration::from_secs(5));
    assert!(s.expect.violations.is_empty() && s.expect.allow.is_empty());
    assert_eq!(s.expect.catch_up_within, None);
}

#[test]
fn drain_is_auto_or_a_bound() {
    let auto = parse(&edited("drain = \"30s\"", "drain = \"auto\"")).unwrap();
    assert_eq!(auto.drain, Drain::Auto);
    let bound = parse(&edited("drain = \"30s\"", "drain = \"1.5s\"")).unwrap();
    assert_eq!(bound.drain, Drain::Bound(Duration::from_millis(1500)));
    let e = assert_error(
        &edited("drain = \"30s\"", "drain = \"soon\""),
        "drain = \"soon\"",
        "drain",
        "not a duration",
    );
    assert!(e.to_string().contains("auto"), "the hint names auto: {e}");
    assert_error(
        &edited("drain = \"30s\"", "drain = 30"),
        "drain = 30",
        "drain",
        "needs a unit",
    );
    assert_error(
        &edited("drain = \"30s\"", "drain = \"0s\""),
        "drain = \"0s\"",
        "drain",
        "longer than 0s",
    );
}

#[test]
fn catch_up_within_is_a_duration_and_lag_needs_it() {
    let text = edited(
        "allow = [\"duplicate\"]",
        "allow = [\"duplicate\"]\ncatch_up_within = \"10s\"",
    );
    let s = parse(&text).unwrap();
    assert_eq!(s.expect.catch_up_within, Some(Duration::from_secs(10)));
    let lag = text.replace("violations = [\"lost-write\"]", "violations = [\"lag\"]");
    assert_eq!(parse(&lag).unwrap().expect.violations, [ViolationKind::Lag]);
    assert_error(
        &edited(
            "allow = [\"duplicate\"]",
            "allow = [\"duplicate\"]\ncatch_up_within = \"fast\"",
        ),
        "catch_up_within",
        "expect.catch_up_within",
        "not a duration",
    );
    assert_error(
        &edited("violations = [\"lost-write\"]", "violations = [\"lag\"]"),
        "violations = [\"lag\"]",
        "expect.violations[0]",
        "capacity objective",
    );
}

#[test]
fn optional_keys_parse() {
    let text = edited("seeds = 200", "seeds = 200\nwarmup = \"5s\"\nhardware = \"kreps2014\"")
        .replace("rate = 2000 ", "rate = \"max\"")
        .replace("process_time = \"2ms\"", "process_time = \"1ms..20ms\"\nbatch = 10\nbatch_timeout = \"50ms\"\nfailure_rate = 0.5\non_failure = \"dlq\"\ndlq_topic = \"orders\"")
        .replace("kinds = [\"crash\", \"power-loss\", \"partition\", \"pause\", \"consumer-crash\"]\n", "")
        + r#"[[faults.schedule]]
at = "20s"
action = "power-loss"
target = "brokers:0,2"
tear = true
duration = "2s"
[[faults.schedule]]
at = "21s"
action = "partition"
groups = [["broker:0", "controller"], ["consumer:billing/2", "producer:1"]]
one_way = true
[[faults.schedule]]
at = "22s"
action = "slow-disk"
target = "follower:orders/5"
factor = 10
[[faults.schedule]]
at = "23s"
action = "consumer-slowdown"
target = "consumer:billing/0"
factor = 2.5
[[faults.schedule]]
at = "24s"
action = "heal"
[[faults.schedule]]
at = "25s"
action = "partition"
target = "broker:1"
"#;
    let s = parse(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.warmup, Some(Duration::from_secs(5)));
    assert_eq!(s.hardware.as_deref(), Some("kreps2014"));
    assert_eq!(s.producers[0].rate, Rate::Max);
    let h = &s.consumer_groups[0].handler;
    let uniform = ProcessTime::Uniform {
        min: Duration::from_millis(1),
        max: Duration::from_millis(20),
    };
    assert_eq!(h.process_time, uniform);
    assert_eq!(
        (h.batch, h.batch_timeout),
        (Some(10), Some(Duration::from_millis(50)))
    );
    assert_eq!(
        (h.failure_rate, h.on_failure, h.dlq_topic.as_deref()),
        (0.5, OnFailure::Dlq, Some("orders"))
    );
    assert_eq!(s.faults.kinds, scenario::DEFAULT_RANDOM_KINDS);
    let actions: Vec<&FaultAction> = s.faults.schedule.iter().map(|f| &f.action).collect();
    assert_eq!(
        *actions[1],
        FaultAction::PowerLoss {
            target: Target::Brokers(vec![0, 2]),
            tear: true
        }
    );
    assert_eq!(
        s.faults.schedule[1].undo_after,
        Some(Duration::from_secs(2))
    );
    let groups = vec![
        vec![Target::Broker(0), Target::Controller],
        vec![
            Target::Consumer {
                group: "billing".into(),
                member: 2,
            },
            Target::Producer(1),
        ],
    ];
    assert_eq!(
        *actions[2],
        FaultAction::Partition {
            groups,
            one_way: true
        }
    );
    let follower = Target::Follower {
        topic: "orders".into(),
        partition: 5,
    };
    assert_eq!(
        *actions[3],
        FaultAction::SlowDisk {
            target: follower,
            factor: 10.0
        }
    );
    assert_eq!(actions[4].kind(), FaultKind::ConsumerSlowdown);
    assert_eq!(*actions[5], FaultAction::Heal);
    assert_eq!(
        *actions[6],
        FaultAction::Partition {
            groups: vec![vec![Target::Broker(1)]],
            one_way: false
        }
    );
}

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

/// The design example with one `[[consumers]]` entry of `client` appended: `keys` are its
/// lines, `config` its `[consumers.config]` and `handler` its `[consumers.handler]` lines.
fn with_consumer(client: &str, keys: &str, config: &str, handler: &str) -> String {
    format!(
        "{DESIGN_EXAMPLE}\n[[consumers]]\nclient = \"{client}\"\ntopic = \"orders\"\n{keys}\
         [consumers.config]\n{config}[consumers.handler]\nsink = \"plain\"\n{handler}"
    )
}

/// 1-based line of the last line of `text` that `pred` accepts.
fn last_line(text: &str, pred: impl Fn(&str) -> bool) -> usize {
    let lines: Vec<&str> = text.lines().collect();
    lines
        .iter()
        .rposition(|l| pred(l))
        .expect("a matching line")
        + 1
}

/// `[[consumers]]` (DESIGN §8): standalone consumers parse into one-member groups named
/// `consumer-I`, and every key refuses what its client cannot do, at its line.
#[test]
fn standalone_consumers_parse_with_each_clients_defaults() {
    let text = with_consumer("kafka-go", "partitions = [2]\nstart = \"newest\"\n", "", "");
    let s = parse(&text).unwrap_or_else(|e| panic!("{e}"));
    let g = s.consumer_groups.last().expect("the consumer");
    assert_eq!((g.group.as_str(), g.members), ("consumer-0", 1));
    let sa = g.standalone.as_ref().expect("standalone");
    assert_eq!(
        (sa.partitions.clone(), sa.start),
        (vec![2], scenario::Start::Newest)
    );
    assert_eq!(g.section(s.consumer_groups.len() - 1), "consumers[0]");
    // Defaults: every partition; committed with a group.id, else the client's own start.
    let java = with_consumer("java", "", "\"group.id\" = \"audit\"\n", "");
    let s = parse(&java).unwrap_or_else(|e| panic!("{e}"));
    let sa = s
        .consumer_groups
        .last()
        .unwrap()
        .standalone
        .clone()
        .unwrap();
    assert_eq!(sa.partitions, (0..6).collect::<Vec<u32>>());
    assert_eq!(sa.start, scenario::Start::Committed);
    assert_eq!(sa.group_id.as_deref(), Some("audit"));
    assert!(
        s.consumer_groups
            .last()
            .unwrap()
            .config
            .iter()
            .all(|p| p.key != "group.id"),
        "group.id is the standalone consumer's own, not an engine property"
    );
    let sarama = with_consumer("sarama", "", "", "");
    let s = parse(&sarama).unwrap_or_else(|e| panic!("{e}"));
    let sa = s
        .consumer_groups
        .last()
        .unwrap()
        .standalone
        .clone()
        .unwrap();
    assert_eq!(sa.start, scenario::Start::Newest);
}

#[test]
fn standalone_consumer_keys_have_clear_errors() {
    let t = with_consumer("javaa", "", "", "");
    let e = assert_error(&t, "javaa", "consumers[0].client", "unknown value");
    assert!(e.hint.is_some(), "{e}");
    let t = with_consumer("java", "", "", "").replace(
        "topic = \"orders\"\n[consumers",
        "topic = \"order\"\n[consumers",
    );
    assert_error(&t, "\"order\"", "consumers[0].topic", "no topic \"order\"");
    let t = with_consumer("java", "partitions = [6]\n", "", "");
    let e = assert_error(
        &t,
        "partitions = [6]",
        "consumers[0].partitions[0]",
        "no partition 6",
    );
    assert!(e.hint.as_deref().unwrap().contains("0 to 5"), "{e}");
    let t = with_consumer("java", "partitions = [1, 1]\n", "", "");
    assert_error(
        &t,
        "partitions = [1, 1]",
        "consumers[0].partitions[1]",
        "listed twice",
    );
    let t = with_consumer("java", "partitions = []\n", "", "");
    assert_error(
        &t,
        "partitions = []",
        "consumers[0].partitions",
        "at least one",
    );
    let t = with_consumer("kafka-go", "partitions = [0, 1]\n", "", "");
    let e = assert_error(
        &t,
        "partitions = [0, 1]",
        "consumers[0].partitions",
        "reads one partition",
    );
    assert!(e
        .hint
        .as_deref()
        .unwrap()
        .contains("one [[consumers]] entry per partition"));
    let t = with_consumer("kafka-go", "", "", "");
    let line = last_line(&t, |l| l == "topic = \"orders\"");
    let e = parse_err(&t);
    assert_eq!(
        (e.key.as_str(), e.line),
        ("consumers[0].partitions", line),
        "{e}"
    );
    let t = with_consumer("java", "start = \"latest\"\n", "", "");
    let e = assert_error(
        &t,
        "start = \"latest\"",
        "consumers[0].start",
        "unknown value",
    );
    assert!(e.hint.is_some(), "{e}");
    let t = with_consumer("sarama", "start = \"committed\"\n", "", "");
    let e = assert_error(
        &t,
        "start = \"committed\"",
        "consumers[0].start",
        "no offset management",
    );
    assert!(
        e.hint.as_deref().unwrap().contains("offsets-in-sink"),
        "{e}"
    );
    let t = with_consumer(
        "kafka-go",
        "partitions = [0]\nstart = \"committed\"\n",
        "",
        "",
    );
    assert_error(
        &t,
        "start = \"committed\"",
        "consumers[0].start",
        "no GroupID",
    );
    let t = with_consumer("java", "start = \"committed\"\n", "", "");
    let e = assert_error(
        &t,
        "start = \"committed\"",
        "consumers[0].start",
        "needs a group.id",
    );
    assert!(e.hint.as_deref().unwrap().contains("group.id"), "{e}");
    let t = with_consumer("sarama", "", "\"group.id\" = \"audit\"\n", "");
    assert_error(
        &t,
        "\"group.id\" = \"audit\"",
        "consumers[0].config.group.id",
        "ConsumePartition",
    );
    let t = with_consumer(
        "kafka-go",
        "partitions = [0]\n",
        "\"group.id\" = \"audit\"\n",
        "",
    );
    assert_error(
        &t,
        "\"group.id\" = \"audit\"",
        "consumers[0].config.group.id",
        "Partition or GroupID",
    );
    let t = with_consumer("java", "", "\"group.id\" = \"billing\"\n", "");
    let e = assert_error(
        &t,
        "\"group.id\" = \"billing\"",
        "consumers[0].config.group.id",
        "[[consumer_groups]]",
    );
    assert!(e.hint.is_some(), "{e}");
    let t = with_consumer("java", "", "", "commit = \"sync\"\n");
    let e = assert_error(
        &t,
        "commit = \"sync\"",
        "consumers[0].handler.commit",
        "commits nothing",
    );
    assert!(
        e.hint.as_deref().unwrap().contains("offsets-in-sink"),
        "{e}"
    );
    let t = with_consumer("sarama", "", "", "mark = \"before-process\"\n");
    let line = last_line(&t, |l| l == "mark = \"before-process\"");
    let e = parse_err(&t);
    assert_eq!(
        (e.key.as_str(), e.line),
        ("consumers[0].handler.mark", line),
        "{e}"
    );
    let t = with_consumer("java", "", "\"enable.auto.commit\" = true\n", "");
    let line = last_line(&t, |l| l == "\"enable.auto.commit\" = true");
    let e = parse_err(&t);
    assert_eq!(
        (e.key.as_str(), e.line),
        ("consumers[0].config.enable.auto.commit", line),
        "{e}"
    );
    // With a group.id the client's consume loop rules apply, as in a group.
    let t = with_consumer(
        "librdkafka",
        "",
        "\"group.id\" = \"audit\"\n",
        "mark = \"never\"\n",
    );
    let e = parse_err(&t);
    assert_eq!(e.key, "consumers[0].handler.mark", "{e}");
    // An unknown key of the table, and a bad property found when the run is prepared.
    let t = with_consumer("java", "members = 2\n", "", "");
    let e = parse_err(&t);
    assert!(e.key.starts_with("consumers[0]"), "{e}");
    let t = with_consumer("java", "", "\"max.poll.records\" = \"many\"\n", "");
    let s = parse(&t).unwrap_or_else(|e| panic!("{e}"));
    let Err(e) = kafsim_sim::runner::prepare(s) else {
        panic!("a bad property must be refused");
    };
    assert_eq!(e.key, "consumers[0].config.max.poll.records", "{e}");
    assert_eq!(e.line, last_line(&t, |l| l.contains("max.poll.records")));
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
