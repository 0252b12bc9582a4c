//! Producer and consumer properties judged when the engine configurations are built
//! (`runner::prepare`): kafsim's own producer keys (`on_error`, `partition`,
//! `kafka-go.constructor`), the clients' own names (sarama, kafka-go, librdkafka aliases) and
//! the hints for names a user may mean. Every error has the file, the property's line, its
//! key path and a hint.

use kafsim_engine::producer::{KafkaGoConstructor, OnError};
use kafsim_engine::protocol::Acks;
use kafsim_sim::runner::{prepare, Prepared};
use kafsim_sim::scenario::{self, ScenarioError};

/// A small scenario; `producer` and `group` are the bodies of the two config tables.
fn text(client: &str, producer: &str, group: &str) -> String {
    format!(
        r#"name = "props"
duration = "1s"

[cluster]
brokers = 3

[[topics]]
name = "orders"
partitions = 3
replication_factor = 3

[[producers]]
client = "{client}"
topic = "orders"
rate = 10
keys = 12
[producers.config]
{producer}

[[consumer_groups]]
group = "g"
client = "{client}"
topics = ["orders"]
[consumer_groups.config]
{group}
"#
    )
}

fn prepared(t: &str) -> Prepared {
    let s = scenario::parse("test.toml", t).unwrap_or_else(|e| panic!("{e}"));
    prepare(s).unwrap_or_else(|e| panic!("{e}"))
}

/// Asserts the error's file, line (of `needle`), key, message words and hint words.
fn error(t: &str, needle: &str, key: &str, words: &str, hint: &str) -> ScenarioError {
    let s = scenario::parse("test.toml", t).unwrap_or_else(|e| panic!("{e}"));
    let e = match prepare(s) {
        Ok(_) => panic!("expected an error for {needle}"),
        Err(e) => e,
    };
    let line = t.lines().position(|l| l.contains(needle)).unwrap() + 1;
    assert_eq!(e.file, "test.toml");
    assert_eq!(e.line, line, "line of: {e}");
    assert_eq!(e.key, key, "key of: {e}");
    assert!(e.message.contains(words), "'{words}' not in: {e}");
    let h = e.hint.clone().unwrap_or_default();
    assert!(h.contains(hint), "hint '{hint}' not in: {e}");
    e
}

const P: &str = "producers[0].config";
const G: &str = "consumer_groups[0].config";

#[test]
fn on_error_takes_three_words() {
    let p = prepared(&text("java", "on_error = \"ignore\"", ""));
    assert_eq!(p.producer_configs()[0].on_error, OnError::Ignore);
    let t = text("java", "on_error = \"drop\"", "");
    error(
        &t,
        "on_error",
        &format!("{P}.on_error"),
        "fail, ignore, retry",
        "Errors()",
    );
}

#[test]
fn partition_expression_is_checked_when_read() {
    let ok = "partitioner = \"manual\"\npartition = \"key % 3\"";
    prepared(&text("sarama", ok, ""));
    let t = text(
        "java",
        "partitioner = \"manual\"\npartition = \"key * 3\"",
        "",
    );
    error(
        &t,
        "partition =",
        &format!("{P}.partition"),
        "key % N",
        "key % 6",
    );
    let t = text(
        "java",
        "partitioner = \"manual\"\npartition = \"key % 0\"",
        "",
    );
    error(
        &t,
        "partition =",
        &format!("{P}.partition"),
        "divides by zero",
        "mod 6",
    );
    // manual without an expression, and an expression kafka-go would ignore.
    let t = text("sarama", "partitioner = \"manual\"", "");
    error(
        &t,
        "partitioner",
        &format!("{P}.partitioner"),
        "manual",
        "key % N",
    );
    let t = text("kafka-go", "partition = \"key % 3\"", "");
    error(
        &t,
        "partition =",
        &format!("{P}.partition"),
        "ignores",
        "manual",
    );
    // A key expression for a producer of null keys.
    let t = text(
        "java",
        "partitioner = \"manual\"\npartition = \"key % 3\"",
        "",
    )
    .replace("keys = 12", "keys = 0");
    error(
        &t,
        "partition =",
        &format!("{P}.partition"),
        "null keys",
        "keys =",
    );
}

#[test]
fn kafka_go_constructor_chooses_the_acks_default() {
    let bare = prepared(&text("kafka-go", "", ""));
    assert_eq!(bare.producer_configs()[0].acks, Acks::None);
    let t = text("kafka-go", "\"kafka-go.constructor\" = \"NewWriter\"", "");
    let new = prepared(&t);
    let c = &new.producer_configs()[0];
    assert_eq!(c.kafka_go_constructor, KafkaGoConstructor::NewWriter);
    assert_eq!(c.acks, Acks::All);
    // An explicit RequiredAcks wins, whichever line comes first.
    let t = text(
        "kafka-go",
        "RequiredAcks = \"RequireOne\"\n\"kafka-go.constructor\" = \"NewWriter\"",
        "",
    );
    assert_eq!(prepared(&t).producer_configs()[0].acks, Acks::Leader);
    let t = text("kafka-go", "\"kafka-go.constructor\" = \"New\"", "");
    error(
        &t,
        "constructor",
        &format!("{P}.kafka-go.constructor"),
        "NewWriter",
        "RequireAll",
    );
    let t = text("java", "\"kafka-go.constructor\" = \"NewWriter\"", "");
    error(
        &t,
        "constructor",
        &format!("{P}.kafka-go.constructor"),
        "java",
        "kafka.Writer",
    );
}

#[test]
fn client_names_map_onto_java_properties() {
    let sarama = text(
        "sarama",
        "\"Producer.RequiredAcks\" = \"WaitForAll\"\n\"Producer.Idempotent\" = true\n\
         \"Net.MaxOpenRequests\" = 1\n\"Producer.Retry.Max\" = 7\n\
         \"Producer.Flush.Frequency\" = \"20ms\"\n\"Producer.Flush.Messages\" = 10",
        "\"Consumer.Offsets.Initial\" = \"OffsetOldest\"\n\
         \"Consumer.Offsets.AutoCommit.Interval\" = \"2s\"\n\
         \"Consumer.Group.Session.Timeout\" = \"15s\"",
    );
    let p = prepared(&sarama);
    let c = &p.producer_configs()[0];
    assert_eq!(
        (c.acks, c.enable_idempotence, c.max_in_flight, c.retries),
        (Acks::All, true, 1, 7)
    );
    assert_eq!(c.linger.as_millis(), 20);
    assert_eq!(c.sarama_flush.messages, 10);
    let g = &p.consumer_configs()[0];
    assert_eq!(
        g.auto_offset_reset,
        kafsim_engine::consumer::config::OffsetReset::Earliest
    );
    assert_eq!(g.auto_commit_interval.as_millis(), 2_000);
    assert_eq!(g.session_timeout.as_millis(), 15_000);
    let kafka_go = text(
        "kafka-go",
        "RequiredAcks = \"RequireAll\"\nBatchTimeout = \"10ms\"\nBatchSize = 50\nAsync = true",
        "StartOffset = \"FirstOffset\"\nCommitInterval = \"1s\"",
    );
    let p = prepared(&kafka_go);
    let c = &p.producer_configs()[0];
    assert_eq!(
        (c.acks, c.batch_records, c.sync),
        (Acks::All, Some(50), false)
    );
    assert_eq!(c.linger.as_millis(), 10);
    let g = &p.consumer_configs()[0];
    assert_eq!(g.auto_commit_interval.as_millis(), 1_000);
    let rdkafka = text("librdkafka", "\"queue.buffering.max.ms\" = 7", "");
    assert_eq!(
        prepared(&rdkafka).producer_configs()[0].linger.as_millis(),
        7
    );
}

#[test]
fn client_names_are_checked_for_the_client_and_in_its_words() {
    // Another client's name: the message says whose, the hint names this client's name and
    // the Kafka property.
    let t = text("sarama", "RequiredAcks = \"RequireAll\"", "");
    let e = error(
        &t,
        "RequiredAcks",
        &format!("{P}.RequiredAcks"),
        "kafka-go",
        "acks",
    );
    assert!(e.hint.unwrap().contains("Producer.RequiredAcks"));
    let t = text(
        "java",
        "",
        "\"Consumer.Offsets.Initial\" = \"OffsetOldest\"",
    );
    error(
        &t,
        "Offsets.Initial",
        &format!("{G}.Consumer.Offsets.Initial"),
        "sarama",
        "auto.offset.reset",
    );
    // The right client, a value in another client's words.
    let t = text("sarama", "\"Producer.RequiredAcks\" = \"RequireAll\"", "");
    error(
        &t,
        "RequiredAcks",
        &format!("{P}.Producer.RequiredAcks"),
        "WaitForAll",
        "acks",
    );
    // A number for a Go duration.
    let t = text("kafka-go", "BatchTimeout = 10", "");
    error(
        &t,
        "BatchTimeout",
        &format!("{P}.BatchTimeout"),
        "Go duration",
        "kafka-go",
    );
}

#[test]
fn unknown_names_get_a_hint_naming_the_kafka_property() {
    let t = text("sarama", "\"Producer.RequiredAck\" = \"WaitForAll\"", "");
    error(
        &t,
        "RequiredAck",
        &format!("{P}.Producer.RequiredAck"),
        "unknown property",
        "\"acks\"",
    );
    let t = text("kafka-go", "", "CommitIntervl = \"1s\"");
    error(
        &t,
        "CommitIntervl",
        &format!("{G}.CommitIntervl"),
        "unknown property",
        "auto.commit.interval.ms",
    );
    let t = text("java", "\"lingr.ms\" = 5", "");
    error(
        &t,
        "lingr",
        &format!("{P}.lingr.ms"),
        "unknown property",
        "linger.ms",
    );
}
