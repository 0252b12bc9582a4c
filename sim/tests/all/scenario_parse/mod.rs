//! Scenario files (DESIGN §5): the design's example parses into every field, each kind of bad
//! input is reported at the right line with the right key path, and every file of the library
//! in `scenarios/` parses. The valid files are here, the errors in [`errors`], the service
//! keys (groups, database, bench) in [`services`], standalone consumers in [`standalone`].

mod connection_setup;
mod errors;
mod services;
mod standalone;

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
