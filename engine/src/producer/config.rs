//! `ProducerConfig`: every knob of the producer client, settable by Java property names.
//!
//! A config starts from a client profile ([`ProducerConfig::for_client`], see `profile.rs`)
//! and is then overridden key by key through [`Configurable::set`], exactly as a scenario's
//! `[producers.config]` table does. [`ProducerConfig::validate`] runs last and rejects the
//! combinations the real client rejects (Kafka's `ConfigException`), with the reason.
//!
//! Keys (Java names unless noted): `acks`, `enable.idempotence`, `linger.ms`, `batch.size`,
//! `buffer.memory`, `max.block.ms`, `max.in.flight.requests.per.connection`, `retries`,
//! `retry.backoff.ms`, `retry.backoff.max.ms`, `reconnect.backoff.ms`, `reconnect.backoff.max.ms`,
//! `metadata.max.age.ms`, `request.timeout.ms`, `delivery.timeout.ms`, `max.request.size`,
//! `partitioner`, `sticky.partitioning.linger.ms`, and two kafsim-specific ones:
//! - `sync` (bool): the application waits for each send to complete before it makes the next
//!   one (sarama `SyncProducer`, kafka-go `Writer` without `Async`, Java `send().get()`).
//!   `false` = fire-and-callback (Java `send(cb)`, sarama `AsyncProducer`, kafka-go `Async`).
//! - `on_error` (`"fail"`, `"ignore"`, `"retry"`): what the application does when a send
//!   fails or ends unknown (see [`OnError`]).
//! - `partition` (with `partitioner = "manual"`): the application's own partition choice, a
//!   [`PartitionExpr`] such as `"key % 6"`.
//! - `kafka-go.BatchSize` (records), `kafka-go.BatchBytes` (bytes), `kafka-go.BatchTimeout`
//!   (ms or a duration string): the kafka-go `Writer` fields, accepted for that profile only.
//!
//! sarama and kafka-go users may write their own client's field names (`Producer.RequiredAcks
//! = "WaitForAll"`, `RequiredAcks = "RequireAll"`, `BatchTimeout = "10ms"`); `alias.rs` maps
//! them onto the Java property for the matching client only.

use crate::config::{ConfigValue, Configurable};
use crate::partitioner::{PartitionExpr, PartitionerKind};
use crate::protocol::Acks;
use crate::time::Duration;

pub use crate::client::ClientKind;

/// Upper bound on `retries` we model (Java's default is `Integer.MAX_VALUE`).
pub const RETRIES_MAX: u32 = i32::MAX as u32;

/// The producer client's configuration. Field docs name the property that sets each.
#[derive(Clone, Debug, PartialEq)]
pub struct ProducerConfig {
    pub client: ClientKind,
    /// The modelled client version (`client_version` in a scenario), e.g. "3.9", "1.43".
    pub client_version: String,
    /// `acks`.
    pub acks: Acks,
    /// `enable.idempotence`.
    pub enable_idempotence: bool,
    /// `linger.ms` (kafka-go: `BatchTimeout`).
    pub linger: Duration,
    /// `batch.size` in bytes (kafka-go: `BatchBytes`). A single record larger than this still
    /// gets a batch of its own, as in Java.
    pub batch_size: u32,
    /// Records per batch limit: kafka-go `BatchSize`, librdkafka `batch.num.messages`.
    pub batch_records: Option<u32>,
    /// `buffer.memory` in bytes: records waiting in the accumulator or in flight.
    pub buffer_memory: u64,
    /// `max.block.ms`: how long a send may block on a full buffer or missing metadata.
    pub max_block: Duration,
    /// `max.in.flight.requests.per.connection`.
    pub max_in_flight: u32,
    /// At most one batch of a partition in flight (Java with max.in.flight=1, kafka-go's
    /// per-partition writer loop); keeps order without idempotence.
    pub one_batch_per_partition_in_flight: bool,
    /// `retries`: attempts after the first one.
    pub retries: u32,
    /// `retry.backoff.ms`.
    pub retry_backoff: Duration,
    /// `retry.backoff.max.ms`: retries back off exponentially up to this (equal to
    /// `retry_backoff` for a client that backs off by a constant; see `sender.rs`).
    pub retry_backoff_max: Duration,
    /// `reconnect.backoff.ms`: wait before reconnecting to a broker after a disconnect (zero
    /// for clients with no such wait); see `connection.rs`.
    pub reconnect_backoff: Duration,
    /// `reconnect.backoff.max.ms`.
    pub reconnect_backoff_max: Duration,
    /// `metadata.max.age.ms`: periodic metadata refresh (librdkafka
    /// `topic.metadata.refresh.interval.ms`, sarama `Metadata.RefreshFrequency`, kafka-go
    /// `Transport.MetadataTTL`, which kafka-go randomises below this bound).
    pub metadata_max_age: Duration,
    /// `request.timeout.ms`: how long the client waits for a response.
    pub request_timeout: Duration,
    /// The `timeout` put into produce requests (how long the leader may wait for the ISR):
    /// Java sends `request.timeout.ms`, sarama `Producer.Timeout`.
    pub ack_timeout: Duration,
    /// `delivery.timeout.ms`; `None` when the client has no such bound (sarama, kafka-go).
    pub delivery_timeout: Option<Duration>,
    /// `max.request.size` (librdkafka `message.max.bytes`): bytes per produce request.
    pub max_request_size: u32,
    /// `partitioner`: a name of `crate::partitioner` (e.g. "java-murmur2").
    pub partitioner: PartitionerKind,
    /// `sticky.partitioning.linger.ms` (null-key sticky partitioners).
    pub sticky_linger: Duration,
    /// `sync` (kafsim): see the module docs.
    pub sync: bool,
    /// Bound on records the application has outstanding (handed over, not yet completed).
    pub max_outstanding_records: u32,
    /// Whether `enable.idempotence` was set explicitly; Java (3.0.1+, KAFKA-13598) turns the
    /// default-on idempotence off silently when a conflicting option was set instead.
    pub idempotence_explicit: bool,
    /// `on_error` (kafsim): the application's reaction to a failed or unknown send.
    pub on_error: OnError,
    /// `partition` (kafsim): the application's partition choice for `partitioner = "manual"`.
    pub partition: Option<PartitionExpr>,
    /// Whether `acks` was set explicitly (a kafka-go `NewWriter` turns an unset one into all).
    pub acks_explicit: bool,
    /// Whether `metadata.max.age.ms` was set explicitly (`NewWriter` changes the default).
    pub metadata_age_explicit: bool,
    /// kafka-go only: how the application built its `Writer` (`kafka-go.constructor`).
    pub kafka_go_constructor: KafkaGoConstructor,
}

/// What the application does when its client reports a send as failed or of unknown outcome.
///
/// The client library's own retries (`retries`, sarama `Producer.Retry.Max`) come first; this
/// is what the application's code does with the error it is finally handed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnError {
    /// The application learns of the failure and gives the value up (it logs, alerts or fails
    /// the request): nothing is owed for it. Java `send().get()` throwing, a sarama
    /// `SyncProducer` returning an error, a read `Errors()` channel.
    Fail,
    /// The application took the value as sent when it handed it over and never looks at the
    /// outcome: a sarama `AsyncProducer` whose `Errors()` nobody reads (with
    /// `Producer.Return.Errors = false`), a kafka-go `Writer{Async: true}` without
    /// `Completion`, Java `send(record)` without a callback. A value never acknowledged is a
    /// loss the application does not know of, and the checkers report it.
    Ignore,
    /// The application hands the same value to the producer again, as a new send, after
    /// waiting `retry.backoff.ms` (a `for err != nil` loop around `SendMessage`). Idempotence
    /// cannot de-duplicate this resend: it carries a new sequence number, so a first attempt
    /// that did reach the log leaves a duplicate.
    Retry,
}

impl OnError {
    pub fn name(self) -> &'static str {
        match self {
            OnError::Fail => "fail",
            OnError::Ignore => "ignore",
            OnError::Retry => "retry",
        }
    }
}

/// The two ways to build a kafka-go `Writer` (segmentio/kafka-go `writer.go`): the struct
/// literal `&kafka.Writer{...}` (what kafka-go's README shows since 0.4) leaves
/// `RequiredAcks` at its zero value, `RequireNone`; the deprecated `kafka.NewWriter(config)`
/// turns a zero `RequiredAcks` into `RequireAll` and refreshes metadata every
/// `RebalanceInterval` (15 s) instead of the `Transport`'s 6 s `MetadataTTL`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KafkaGoConstructor {
    /// `&kafka.Writer{...}` (the default).
    Writer,
    /// `kafka.NewWriter(kafka.WriterConfig{...})`.
    NewWriter,
}

const KNOWN_KEYS: &[&str] = &[
    "acks",
    "enable.idempotence",
    "linger.ms",
    "batch.size",
    "buffer.memory",
    "max.block.ms",
    "max.in.flight.requests.per.connection",
    "retries",
    "retry.backoff.ms",
    "retry.backoff.max.ms",
    "reconnect.backoff.ms",
    "reconnect.backoff.max.ms",
    "metadata.max.age.ms",
    "request.timeout.ms",
    "delivery.timeout.ms",
    "max.request.size",
    "partitioner",
    "sticky.partitioning.linger.ms",
    "sync",
    "on_error",
    "partition",
    "kafka-go.constructor",
    "kafka-go.BatchSize",
    "kafka-go.BatchBytes",
    "kafka-go.BatchTimeout",
];

impl ProducerConfig {
    /// The documented defaults of `client` at `version` (`None` = newest modelled version).
    pub fn for_client(client: &str, version: Option<&str>) -> Result<ProducerConfig, String> {
        super::profile::defaults(ClientKind::from_name(client)?, version)
    }

    /// Resolve defaults that depend on other settings and reject invalid combinations, as the
    /// client does when it is constructed. Call after the last [`Configurable::set`].
    pub fn validate(&mut self) -> Result<(), String> {
        self.resolve_kafka_go_constructor();
        self.resolve_implicit_idempotence();
        self.check_manual_partition()?;
        if self.enable_idempotence {
            self.check_idempotence()?;
        }
        if self
            .delivery_timeout
            .is_some_and(|d| d < self.linger + self.request_timeout)
        {
            return Err(format!(
                "delivery.timeout.ms should be equal to or larger than linger.ms + \
                 request.timeout.ms ({} ms), as the Java producer requires",
                (self.linger + self.request_timeout).as_millis()
            ));
        }
        Ok(())
    }

    /// kafka-go `NewWriter`: "if config.RequiredAcks == 0 { w.RequiredAcks = RequireAll }",
    /// and `Transport.MetadataTTL = RebalanceInterval` (15 s by default).
    fn resolve_kafka_go_constructor(&mut self) {
        if self.kafka_go_constructor == KafkaGoConstructor::NewWriter {
            if !self.acks_explicit {
                self.acks = Acks::All;
            }
            if !self.metadata_age_explicit {
                self.metadata_max_age = Duration::from_secs(15);
            }
        }
    }

    /// `partitioner = "manual"` needs the application's choice, and only it uses one.
    fn check_manual_partition(&self) -> Result<(), String> {
        match (self.partitioner, &self.partition) {
            (PartitionerKind::Manual, None) => Err(
                "partitioner = \"manual\" needs the application's choice of partition, and \
                 none is given\nhint: add partition = \"key % N\" (the key modulo N) or \
                 partition = \"0\" next to it"
                    .into(),
            ),
            (kind, Some(_)) if !kind.honours_explicit() => Err(format!(
                "partition: the {kind} partitioner ignores the partition a record names \
                 (sarama honours it only through NewManualPartitioner, kafka-go never)\nhint: \
                 set partitioner = \"manual\""
            )),
            _ => Ok(()),
        }
    }

    /// Java 3.0.1+: idempotence is on by default only while no conflicting option is set; a
    /// user who asked for acks=1 without mentioning idempotence gets a non-idempotent producer.
    fn resolve_implicit_idempotence(&mut self) {
        if self.enable_idempotence && !self.idempotence_explicit {
            let conflicts = self.acks != Acks::All || self.max_in_flight > 5 || self.retries == 0;
            if conflicts {
                self.enable_idempotence = false;
            }
        }
    }

    fn check_idempotence(&self) -> Result<(), String> {
        if self.client == ClientKind::KafkaGo {
            return Err(
                "enable.idempotence: the kafka-go Writer has no idempotent producer".into(),
            );
        }
        if self.acks != Acks::All {
            return Err(
                "enable.idempotence=true requires acks=all: the broker can only \
                        de-duplicate what every in-sync replica has (Kafka ConfigException)"
                    .into(),
            );
        }
        if self.retries == 0 {
            return Err(
                "enable.idempotence=true requires retries > 0 (Kafka ConfigException)".into(),
            );
        }
        let max_in_flight = if self.client == ClientKind::Sarama {
            1
        } else {
            5
        };
        if self.max_in_flight > max_in_flight {
            return Err(format!(
                "enable.idempotence=true requires max.in.flight.requests.per.connection <= \
                 {max_in_flight} for {}: the broker caches only the last 5 batches per producer \
                 (Kafka ConfigException; sarama demands Net.MaxOpenRequests=1)",
                self.client.name()
            ));
        }
        Ok(())
    }

    fn set_kafka_go(&mut self, key: &str, value: &ConfigValue) -> Result<(), String> {
        if self.client != ClientKind::KafkaGo {
            return Err(format!(
                "{key} is a kafka-go Writer field; this producer is {}",
                self.client.name()
            ));
        }
        match key {
            "kafka-go.BatchSize" => {
                self.batch_records = Some(value.as_int_in(1, 1_000_000)? as u32);
            }
            "kafka-go.BatchBytes" => self.batch_size = value.as_int_in(1, 1 << 30)? as u32,
            _ => self.linger = duration_value(value)?,
        }
        Ok(())
    }
}

/// Milliseconds as an integer, or a duration string ("250ms", "1s").
fn duration_value(value: &ConfigValue) -> Result<Duration, String> {
    match value {
        ConfigValue::Str(s) => parse_duration(s),
        other => Ok(Duration::from_millis(
            other.as_int_in(0, i32::MAX as i64)? as u64
        )),
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad =
        || format!("expected milliseconds or a duration such as \"250ms\" or \"1s\", got \"{s}\"");
    let (number, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map_or((s, "ms"), |i| s.split_at(i));
    let n: u64 = number.parse().map_err(|_| bad())?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        _ => Err(bad()),
    }
}

fn acks_value(value: &ConfigValue) -> Result<Acks, String> {
    match value.as_choice(&["0", "1", "all", "-1"])? {
        "0" => Ok(Acks::None),
        "1" => Ok(Acks::Leader),
        _ => Ok(Acks::All),
    }
}

fn ms_value(value: &ConfigValue) -> Result<Duration, String> {
    Ok(Duration::from_millis(
        value.as_int_in(0, i32::MAX as i64)? as u64
    ))
}

impl Configurable for ProducerConfig {
    fn set(&mut self, key: &str, value: &ConfigValue) -> Result<(), String> {
        match key {
            "acks" => {
                self.acks = acks_value(value)?;
                self.acks_explicit = true;
            }
            "enable.idempotence" => {
                self.enable_idempotence = value.as_bool()?;
                self.idempotence_explicit = true;
            }
            "linger.ms" => self.linger = ms_value(value)?,
            "batch.size" => self.batch_size = value.as_int_in(1, 1 << 30)? as u32,
            "buffer.memory" => self.buffer_memory = value.as_int_in(1, 1 << 40)? as u64,
            "max.block.ms" => self.max_block = ms_value(value)?,
            "max.in.flight.requests.per.connection" => {
                self.max_in_flight = value.as_int_in(1, 1_000_000)? as u32;
                self.one_batch_per_partition_in_flight =
                    self.max_in_flight == 1 || self.client == ClientKind::KafkaGo;
            }
            "retries" => self.retries = value.as_int_in(0, RETRIES_MAX as i64)? as u32,
            "retry.backoff.ms" => {
                self.retry_backoff = ms_value(value)?;
                self.retry_backoff_max = self.retry_backoff_max.max(self.retry_backoff);
            }
            "retry.backoff.max.ms" => self.retry_backoff_max = ms_value(value)?,
            "reconnect.backoff.ms" => self.reconnect_backoff = ms_value(value)?,
            "reconnect.backoff.max.ms" => self.reconnect_backoff_max = ms_value(value)?,
            "metadata.max.age.ms" => {
                self.metadata_max_age = ms_value(value)?;
                self.metadata_age_explicit = true;
            }
            "request.timeout.ms" => {
                self.request_timeout = ms_value(value)?;
                self.ack_timeout = self.request_timeout;
            }
            "delivery.timeout.ms" => self.delivery_timeout = Some(ms_value(value)?),
            "max.request.size" => self.max_request_size = value.as_int_in(1, 1 << 30)? as u32,
            "partitioner" => self.partitioner = PartitionerKind::from_name(value.as_str()?)?,
            "sticky.partitioning.linger.ms" => self.sticky_linger = ms_value(value)?,
            "sync" => self.sync = value.as_bool()?,
            "on_error" => {
                self.on_error = match value.as_choice(&["fail", "ignore", "retry"])? {
                    "ignore" => OnError::Ignore,
                    "retry" => OnError::Retry,
                    _ => OnError::Fail,
                }
            }
            "partition" => self.partition = Some(PartitionExpr::parse(value.as_str()?)?),
            "kafka-go.constructor" => {
                if self.client != ClientKind::KafkaGo {
                    return Err(format!(
                        "{key} is how a kafka-go Writer is built; this producer is {}",
                        self.client.name()
                    ));
                }
                self.kafka_go_constructor = match value.as_choice(&["Writer", "NewWriter"])? {
                    "NewWriter" => KafkaGoConstructor::NewWriter,
                    _ => KafkaGoConstructor::Writer,
                };
            }
            "kafka-go.BatchSize" | "kafka-go.BatchBytes" | "kafka-go.BatchTimeout" => {
                self.set_kafka_go(key, value)?
            }
            other => return Err(format!("unknown producer property \"{other}\"")),
        }
        Ok(())
    }

    fn known_keys(&self) -> &'static [&'static str] {
        KNOWN_KEYS
    }

    fn aliases(&self) -> &'static [crate::alias::Alias] {
        crate::alias::PRODUCER
    }

    fn client(&self) -> Option<ClientKind> {
        Some(self.client)
    }
}
