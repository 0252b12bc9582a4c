//! The client libraries' own vocabulary: a sarama or kafka-go user types the field they set
//! in Go (`config.Producer.RequiredAcks = sarama.WaitForAll`, `kafka.Writer{BatchTimeout:
//! 10 * time.Millisecond}`), so a scenario accepts those names, with values in that client's
//! words, and maps each onto the Java property the engine models. An alias is accepted only
//! for its own client: `Producer.RequiredAcks` on a Java producer is an error that names the
//! Java property instead.
//!
//! Sources: sarama `config.go` (1.43) field paths and `sarama.RequiredAcks` / `OffsetOldest`
//! constants; kafka-go `writer.go` (`Writer` fields, `RequireNone/One/All`), `reader.go`
//! (`ReaderConfig` fields, `FirstOffset` / `LastOffset`), `balancer.go`, `groupbalancer.go`.
//! Go durations are written as Go prints them: "10ms", "1s", "1.5s", "2m".

use crate::client::ClientKind;
use crate::config::ConfigValue;

/// One client field name and how its value becomes a Java property value.
#[derive(Clone, Copy)]
pub struct Alias {
    pub client: ClientKind,
    /// The client's name for the setting, as a user writes it.
    pub name: &'static str,
    /// The Java (or kafsim) property it sets.
    pub property: &'static str,
    pub convert: fn(&ConfigValue) -> Result<ConfigValue, String>,
}

impl Alias {
    /// The value for [`Alias::property`].
    pub fn translate(&self, value: &ConfigValue) -> Result<ConfigValue, String> {
        (self.convert)(value)
    }
}

/// The alias `name` among `table`, for any client.
pub fn find<'t>(table: &'t [Alias], name: &str) -> Option<&'t Alias> {
    table.iter().find(|a| a.name == name)
}

use ClientKind::{KafkaGo, Librdkafka, Sarama};

/// A table of [`Alias`]es written one line per field, in sections by client (a client may
/// have more than one section: the order is the table's, which `find` and the hints keep).
macro_rules! aliases {
    ($($client:ident: [$(($name:literal, $property:literal, $convert:expr),)+])+) => {
        &[$($(Alias { client: $client, name: $name, property: $property, convert: $convert },)+)+]
    };
}

/// Producer field names of sarama's `Config` and kafka-go's `Writer`.
pub const PRODUCER: &[Alias] = aliases! {
    Sarama: [
        ("Producer.RequiredAcks", "acks", sarama_acks),
        ("Producer.Idempotent", "enable.idempotence", same),
        ("Net.MaxOpenRequests", "max.in.flight.requests.per.connection", same),
        ("Producer.Retry.Max", "retries", same),
        ("Producer.Retry.Backoff", "retry.backoff.ms", go_duration),
        ("Producer.Flush.Frequency", "linger.ms", go_duration),
        ("Producer.Flush.Bytes", "sarama.Flush.Bytes", same),
        ("Producer.Flush.Messages", "sarama.Flush.Messages", same),
        ("Producer.Flush.MaxMessages", "sarama.Flush.MaxMessages", same),
        ("Producer.MaxMessageBytes", "max.request.size", same),
        ("Producer.Transaction.ID", "transactional.id", same),
        ("Producer.Transaction.Timeout", "transaction.timeout.ms", go_duration),
        ("Producer.Transaction.Retry.Max", "sarama.Transaction.Retry.Max", same),
        ("Producer.Transaction.Retry.Backoff", "sarama.Transaction.Retry.Backoff", go_duration),
        ("Producer.Partitioner", "partitioner", sarama_partitioner),
        ("Producer.Return.Errors", "on_error", sarama_return_errors),
        ("Metadata.RefreshFrequency", "metadata.max.age.ms", go_duration),
        ("Net.DialTimeout", "socket.connection.setup.timeout.ms", go_duration),
    ]
    KafkaGo: [
        ("Transport.DialTimeout", "socket.connection.setup.timeout.ms", go_duration),
        ("RequiredAcks", "acks", kafka_go_acks),
        ("BatchTimeout", "kafka-go.BatchTimeout", go_duration),
        ("BatchSize", "kafka-go.BatchSize", same),
        ("BatchBytes", "kafka-go.BatchBytes", same),
        ("MaxAttempts", "retries", kafka_go_max_attempts),
        ("WriteBackoffMin", "retry.backoff.ms", go_duration),
        ("WriteBackoffMax", "retry.backoff.max.ms", go_duration),
        ("WriteTimeout", "request.timeout.ms", go_duration),
        ("Async", "sync", not),
        ("Balancer", "partitioner", kafka_go_balancer),
        ("Transport.MetadataTTL", "metadata.max.age.ms", go_duration),
    ]
    // librdkafka's own names (CONFIGURATION.md) for the knob the engine models under the
    // Java name: true aliases in librdkafka for the first four; the refresh interval and
    // message.max.bytes are the settings `ProducerConfig` documents as their stand-ins.
    Librdkafka: [
        ("queue.buffering.max.ms", "linger.ms", same),
        ("message.timeout.ms", "delivery.timeout.ms", same),
        ("request.required.acks", "acks", same),
        ("message.send.max.retries", "retries", same),
        ("topic.metadata.refresh.interval.ms", "metadata.max.age.ms", same),
        ("message.max.bytes", "max.request.size", same),
    ]
};

/// Consumer field names of sarama's `Config` and kafka-go's `ReaderConfig`.
pub const CONSUMER: &[Alias] = aliases! {
    Sarama: [
        ("Consumer.Offsets.AutoCommit.Enable", "enable.auto.commit", same),
        ("Consumer.Offsets.AutoCommit.Interval", "auto.commit.interval.ms", go_duration),
        ("Consumer.Offsets.Initial", "auto.offset.reset", sarama_initial),
        ("Consumer.Group.Session.Timeout", "session.timeout.ms", go_duration),
        ("Consumer.Group.Heartbeat.Interval", "heartbeat.interval.ms", go_duration),
        ("Consumer.Group.Rebalance.Timeout", "max.poll.interval.ms", go_duration),
        ("Consumer.Group.Rebalance.Strategy", "partition.assignment.strategy", sarama_strategy),
        (
            "Consumer.Group.Rebalance.GroupStrategies",
            "partition.assignment.strategy",
            sarama_strategy
        ),
        ("Consumer.Group.InstanceId", "group.instance.id", same),
        ("Metadata.RefreshFrequency", "metadata.max.age.ms", go_duration),
        ("Consumer.Fetch.Min", "fetch.min.bytes", same),
        ("Consumer.Fetch.Default", "max.partition.fetch.bytes", same),
        ("Consumer.MaxWaitTime", "fetch.max.wait.ms", go_duration),
        ("Consumer.IsolationLevel", "isolation.level", sarama_isolation),
    ]
    KafkaGo: [
        ("CommitInterval", "auto.commit.interval.ms", go_duration),
        ("StartOffset", "auto.offset.reset", kafka_go_start_offset),
        ("SessionTimeout", "session.timeout.ms", go_duration),
        ("HeartbeatInterval", "heartbeat.interval.ms", go_duration),
        ("RebalanceTimeout", "max.poll.interval.ms", go_duration),
        ("WatchPartitionChanges", "kafka-go.WatchPartitionChanges", same),
        ("PartitionWatchInterval", "metadata.max.age.ms", go_duration),
    ]
    Librdkafka: [
        ("topic.metadata.refresh.interval.ms", "metadata.max.age.ms", same),
    ]
    KafkaGo: [
        ("MinBytes", "fetch.min.bytes", same),
    ]
    Sarama: [
        ("Net.DialTimeout", "socket.connection.setup.timeout.ms", go_duration),
    ]
    KafkaGo: [
        ("Dialer.Timeout", "socket.connection.setup.timeout.ms", go_duration),
        ("MaxBytes", "fetch.max.bytes", same),
        ("MaxWait", "fetch.max.wait.ms", go_duration),
        ("GroupBalancers", "partition.assignment.strategy", kafka_go_group_balancers),
        ("IsolationLevel", "isolation.level", kafka_go_isolation),
    ]
};

fn same(v: &ConfigValue) -> Result<ConfigValue, String> {
    Ok(v.clone())
}

fn not(v: &ConfigValue) -> Result<ConfigValue, String> {
    Ok(ConfigValue::Bool(!v.as_bool()?))
}

/// One of the client's constant names (or the number it stands for) to a Java value.
fn word(v: &ConfigValue, table: &[(&str, &str)]) -> Result<ConfigValue, String> {
    let names: Vec<&str> = table.iter().map(|(name, _)| *name).collect();
    let text = match v {
        ConfigValue::Str(s) => s.clone(),
        ConfigValue::Int(i) => i.to_string(),
        other => other.to_string(),
    };
    let text = text.rsplit('.').next().unwrap_or(&text).to_string();
    table
        .iter()
        .find(|(name, number)| *name == text || *number == text)
        .map(|(_, java)| ConfigValue::Str(java.to_string()))
        .ok_or_else(|| format!("expected one of {}, got {v}", names.join(", ")))
}

/// A client's three `RequiredAcks` constants, for 0, 1 and -1, as Java's `acks` (-1 is
/// `all`).
fn acks_words(v: &ConfigValue, names: [&str; 3]) -> Result<ConfigValue, String> {
    let w = word(v, &[(names[0], "0"), (names[1], "1"), (names[2], "-1")])?;
    Ok(if w == ConfigValue::Str("-1".into()) {
        ConfigValue::Str("all".into())
    } else {
        w
    })
}

/// sarama `RequiredAcks`: `NoResponse` (0), `WaitForLocal` (1), `WaitForAll` (-1).
fn sarama_acks(v: &ConfigValue) -> Result<ConfigValue, String> {
    acks_words(v, ["NoResponse", "WaitForLocal", "WaitForAll"])
}

/// kafka-go `RequiredAcks`: `RequireNone` (0), `RequireOne` (1), `RequireAll` (-1).
fn kafka_go_acks(v: &ConfigValue) -> Result<ConfigValue, String> {
    acks_words(v, ["RequireNone", "RequireOne", "RequireAll"])
}

/// kafka-go `MaxAttempts` counts the first attempt; Java's `retries` does not.
fn kafka_go_max_attempts(v: &ConfigValue) -> Result<ConfigValue, String> {
    Ok(ConfigValue::Int(v.as_int_in(1, 1_000_000)? - 1))
}

/// sarama `Producer.Return.Errors = false`: failed sends are only logged, the application is
/// never told (what `on_error = "ignore"` models); `true` (the default) hands every error to
/// the `Errors()` channel the application must read.
fn sarama_return_errors(v: &ConfigValue) -> Result<ConfigValue, String> {
    let ret = v.as_bool()?;
    Ok(ConfigValue::Str(if ret { "fail" } else { "ignore" }.into()))
}

fn sarama_partitioner(v: &ConfigValue) -> Result<ConfigValue, String> {
    word(
        v,
        &[
            ("NewHashPartitioner", "sarama-hash"),
            ("NewReferenceHashPartitioner", "sarama-reference-hash"),
            ("NewConsistentCRCHashPartitioner", "sarama-crc32"),
            ("NewRandomPartitioner", "sarama-random"),
            ("NewRoundRobinPartitioner", "sarama-round-robin"),
            ("NewManualPartitioner", "manual"),
        ],
    )
}

fn kafka_go_balancer(v: &ConfigValue) -> Result<ConfigValue, String> {
    word(
        v,
        &[
            ("RoundRobin", "kafka-go-round-robin"),
            ("Hash", "kafka-go-hash"),
            ("ReferenceHash", "kafka-go-reference-hash"),
            ("CRC32Balancer", "kafka-go-crc32"),
            ("Murmur2Balancer", "kafka-go-murmur2"),
            ("LeastBytes", "kafka-go-least-bytes"),
        ],
    )
}

/// sarama `OffsetOldest` (-2) / `OffsetNewest` (-1).
fn sarama_initial(v: &ConfigValue) -> Result<ConfigValue, String> {
    word(
        v,
        &[("OffsetOldest", "earliest"), ("OffsetNewest", "latest")],
    )
    .or_else(|_| word(v, &[("-2", "earliest"), ("-1", "latest")]))
    .map_err(|_| format!("expected OffsetOldest or OffsetNewest, got {v}"))
}

/// kafka-go `FirstOffset` (-2) / `LastOffset` (-1).
fn kafka_go_start_offset(v: &ConfigValue) -> Result<ConfigValue, String> {
    word(v, &[("FirstOffset", "earliest"), ("LastOffset", "latest")])
        .or_else(|_| word(v, &[("-2", "earliest"), ("-1", "latest")]))
        .map_err(|_| format!("expected FirstOffset or LastOffset, got {v}"))
}

/// sarama `BalanceStrategyRange` / `...RoundRobin` / `...Sticky`, or the `New...` forms of
/// `GroupStrategies`, comma separated in preference order.
fn sarama_strategy(v: &ConfigValue) -> Result<ConfigValue, String> {
    names(v, |name| match name {
        "BalanceStrategyRange" | "NewBalanceStrategyRange" => Some("range"),
        "BalanceStrategyRoundRobin" | "NewBalanceStrategyRoundRobin" => Some("roundrobin"),
        "BalanceStrategySticky" | "NewBalanceStrategySticky" => Some("sticky"),
        _ => None,
    })
    .map_err(|bad| {
        format!(
            "unknown sarama strategy \"{bad}\": expected BalanceStrategyRange, \
             BalanceStrategyRoundRobin or BalanceStrategySticky"
        )
    })
}

/// kafka-go `RangeGroupBalancer{}` / `RoundRobinGroupBalancer{}`, comma separated.
fn kafka_go_group_balancers(v: &ConfigValue) -> Result<ConfigValue, String> {
    names(v, |name| match name.trim_end_matches("{}") {
        "RangeGroupBalancer" => Some("range"),
        "RoundRobinGroupBalancer" => Some("roundrobin"),
        _ => None,
    })
    .map_err(|bad| {
        format!(
            "unknown kafka-go group balancer \"{bad}\": expected RangeGroupBalancer or \
             RoundRobinGroupBalancer (RackAffinityGroupBalancer is not modelled)"
        )
    })
}

fn names(
    v: &ConfigValue,
    map: impl Fn(&str) -> Option<&'static str>,
) -> Result<ConfigValue, String> {
    let text = v.as_str()?;
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let short = part
            .rsplit('.')
            .next()
            .unwrap_or(part)
            .trim_end_matches("()");
        out.push(map(short).ok_or_else(|| part.to_string())?);
    }
    Ok(ConfigValue::Str(out.join(",")))
}

/// sarama `ReadUncommitted` (0) / `ReadCommitted` (1).
fn sarama_isolation(v: &ConfigValue) -> Result<ConfigValue, String> {
    word(
        v,
        &[
            ("ReadUncommitted", "read_uncommitted"),
            ("ReadCommitted", "read_committed"),
        ],
    )
}

/// kafka-go `ReadUncommitted` / `ReadCommitted`.
fn kafka_go_isolation(v: &ConfigValue) -> Result<ConfigValue, String> {
    sarama_isolation(v)
}

/// A Go duration as Go prints one ("10ms", "1s", "1.5s", "2m", "1h", "500µs") to whole
/// milliseconds, read by the one duration parser ([`crate::config::parse_duration`]); Go's
/// `µs` is its `us`. A bare number is refused: in Go it would be nanoseconds, which nobody
/// means.
pub fn go_duration(v: &ConfigValue) -> Result<ConfigValue, String> {
    let bad = || format!("expected a Go duration such as \"10ms\", \"1s\" or \"1.5s\", got {v}");
    let ConfigValue::Str(text) = v else {
        return Err(bad());
    };
    // Go writes microseconds with U+00B5 (and accepts U+03BC).
    let text = text.replace(['\u{b5}', '\u{3bc}'], "u");
    let d = crate::config::parse_duration(&text).map_err(|_| bad())?;
    let ms = (d.as_nanos() as f64 / 1e6).round();
    if ms > f64::from(i32::MAX) {
        return Err(bad());
    }
    Ok(ConfigValue::Int(ms as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> ConfigValue {
        ConfigValue::Str(text.into())
    }

    #[test]
    fn values_in_the_clients_words() {
        assert_eq!(sarama_acks(&s("WaitForAll")), Ok(s("all")));
        assert_eq!(sarama_acks(&s("sarama.WaitForLocal")), Ok(s("1")));
        assert_eq!(sarama_acks(&ConfigValue::Int(0)), Ok(s("0")));
        assert_eq!(kafka_go_acks(&s("RequireAll")), Ok(s("all")));
        assert!(kafka_go_acks(&s("WaitForAll"))
            .unwrap_err()
            .contains("RequireAll"));
        assert_eq!(sarama_initial(&s("OffsetOldest")), Ok(s("earliest")));
        assert_eq!(
            kafka_go_start_offset(&s("kafka.LastOffset")),
            Ok(s("latest"))
        );
        assert_eq!(
            kafka_go_max_attempts(&ConfigValue::Int(3)),
            Ok(ConfigValue::Int(2))
        );
        assert_eq!(not(&ConfigValue::Bool(true)), Ok(ConfigValue::Bool(false)));
        assert_eq!(
            sarama_return_errors(&ConfigValue::Bool(false)),
            Ok(s("ignore"))
        );
        assert_eq!(
            sarama_strategy(&s("sarama.BalanceStrategySticky, BalanceStrategyRange")),
            Ok(s("sticky,range"))
        );
        assert_eq!(
            kafka_go_group_balancers(&s("kafka.RangeGroupBalancer{}")),
            Ok(s("range"))
        );
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration(&s("10ms")), Ok(ConfigValue::Int(10)));
        assert_eq!(go_duration(&s("1.5s")), Ok(ConfigValue::Int(1_500)));
        assert_eq!(go_duration(&s("2m")), Ok(ConfigValue::Int(120_000)));
        assert_eq!(go_duration(&s("1500\u{b5}s")), Ok(ConfigValue::Int(2)));
        assert_eq!(go_duration(&s("1h")), Ok(ConfigValue::Int(3_600_000)));
        for bad in [
            s("10"),
            s("1d"),
            s("ms"),
            s("-1s"),
            s("600h"),
            ConfigValue::Int(10),
        ] {
            assert!(
                go_duration(&bad).unwrap_err().contains("Go duration"),
                "{bad}"
            );
        }
    }

    #[test]
    fn every_alias_names_a_real_property() {
        let producer = crate::producer::ProducerConfig::for_client("java", None).unwrap();
        let consumer = crate::consumer::config::ConsumerConfig::for_client("java", None).unwrap();
        use crate::config::Configurable;
        for a in PRODUCER {
            assert!(producer.known_keys().contains(&a.property), "{}", a.name);
        }
        for a in CONSUMER {
            assert!(consumer.known_keys().contains(&a.property), "{}", a.name);
        }
    }
}
