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
//! - `sarama.Flush.Bytes`, `sarama.Flush.Messages`, `sarama.Flush.MaxMessages`: sarama's
//!   `Producer.Flush` triggers, counted over a broker's whole produce set (`drain.rs`);
//!   `Producer.Flush.Frequency` is `linger.ms`. sarama only.
//!
//! sarama and kafka-go users may write their own client's field names (`Producer.RequiredAcks
//! = "WaitForAll"`, `RequiredAcks = "RequireAll"`, `BatchTimeout = "10ms"`); `alias.rs` maps
//! them onto the Java property for the matching client only.
//!
//! Compression (`compression.rs`): `compression.type` = `none` | `gzip` | `snappy` | `lz4` |
//! `zstd` for every client; each client's own spelling too: librdkafka's alias
//! `compression.codec`, kafka-go's `kafka-go.Compression` (the `Writer.Compression` field:
//! `gzip`, `snappy`, `lz4`, `zstd`, or `none` for its zero value). The level is
//! `compression.level` for librdkafka (-1 = the codec's default, up to 12) and sarama
//! (`Producer.CompressionLevel`, -1000 = `CompressionLevelDefault`), and
//! `compression.gzip.level` / `compression.lz4.level` / `compression.zstd.level` for Java 3.8+
//! (KIP-390); kafka-go's Writer has no level field.

use crate::compression::CompressionType;
use crate::config::{ConfigValue, Configurable};
use crate::partitioner::{PartitionExpr, PartitionerKind};
use crate::protocol::Acks;
use crate::time::Duration;

pub use crate::client::ClientKind;

mod compression;
use compression::codec_value;
mod validate;

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
    /// `request.timeout.ms`: how long the client waits for a response. librdkafka's is
    /// `socket.timeout.ms` (60 s), and a produce request waits at most until its first
    /// message's `message.timeout.ms` runs out (`rd_kafka_ProduceRequest`, rdkafka_request.c).
    pub request_timeout: Duration,
    /// The `timeout` put into produce requests (how long the leader may wait for the ISR):
    /// Java sends `request.timeout.ms`, sarama `Producer.Timeout`, librdkafka its topic-level
    /// `request.timeout.ms` ("only enforced by the broker", rdkafka_conf.c; written by
    /// `rd_kafka_msgset_writer_write_Produce_header`).
    pub ack_timeout: Duration,
    /// librdkafka: whether `socket.timeout.ms` was set explicitly (a transactional producer
    /// derives an unset one from `transaction.timeout.ms`).
    pub socket_timeout_explicit: bool,
    /// `delivery.timeout.ms`; `None` when the client has no such bound (sarama, kafka-go).
    pub delivery_timeout: Option<Duration>,
    /// Whether `delivery.timeout.ms` (librdkafka `message.timeout.ms`) was set explicitly
    /// (librdkafka's transactional producer derives an unset one).
    pub delivery_timeout_explicit: bool,
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
    /// `compression.type` (librdkafka also `compression.codec`, kafka-go
    /// `kafka-go.Compression`).
    pub compression: CompressionType,
    /// `compression.level` (librdkafka, sarama `Producer.CompressionLevel`) or Java 3.8+'s
    /// `compression.<codec>.level` (KIP-390), per codec; unset = the codec's default.
    pub compression_levels: Vec<(CompressionType, i32)>,
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
    /// Whether `max.in.flight.requests.per.connection` / `retries` were set explicitly
    /// (librdkafka adjusts unset ones when idempotence is on).
    pub max_in_flight_explicit: bool,
    pub retries_explicit: bool,
    /// kafka-go only: how the application built its `Writer` (`kafka-go.constructor`).
    pub kafka_go_constructor: KafkaGoConstructor,
    /// sarama only: the produce set's flush triggers (`sarama.Flush.*`).
    pub sarama_flush: SaramaFlush,
    /// `transactional.id`: the producer runs transactions (`transaction.rs`). A scenario's
    /// `[[producers]]` table gives instance N of `count` the id `<id>-N`.
    pub transactional_id: Option<String>,
    /// `transaction.timeout.ms` (default 60000): sent in InitProducerId; the coordinator
    /// aborts a transaction left open longer. sarama: `Producer.Transaction.Timeout` (1 min);
    /// librdkafka: the same key and default (1000 at least), which also sets its message and
    /// socket timeouts.
    pub transaction_timeout: Duration,
    /// sarama only: `Producer.Transaction.Retry` (`sarama.Transaction.Retry.*`).
    pub sarama_txn_retry: SaramaTxnRetry,
    /// `socket.connection.setup.timeout.ms` and `.max.ms` (`connection_setup.rs`): Java 10 s
    /// growing to 30 s, librdkafka 30 s, sarama `Net.DialTimeout` 30 s, kafka-go
    /// `Transport.DialTimeout` 5 s (see [`ProducerConfig::setup_timeout`]).
    pub connection_setup: (Duration, Duration),
}

/// sarama's `Producer.Transaction.Retry` (`config.go`, defaults in `NewConfig`): how often
/// and how far apart the transaction manager (`transaction_manager.go`) repeats a
/// transactional request (InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn,
/// TxnOffsetCommit, EndTxn) before handing the error back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SaramaTxnRetry {
    /// `Producer.Transaction.Retry.Max` (50): attempts after the first.
    pub max: u32,
    /// `Producer.Transaction.Retry.Backoff` (100 ms).
    pub backoff: Duration,
}

impl Default for SaramaTxnRetry {
    fn default() -> Self {
        SaramaTxnRetry {
            max: 50,
            backoff: Duration::from_millis(100),
        }
    }
}

/// sarama's `Producer.Flush` triggers other than `Frequency` (which is `linger.ms`), counted
/// over a broker's whole produce set, every partition together (`produce_set.go`
/// `readyToFlush`, `wouldOverflow`). Zero = unset, as in sarama.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SaramaFlush {
    /// `Flush.Bytes`: flush once the set holds this many bytes.
    pub bytes: u32,
    /// `Flush.Messages`: flush once the set holds this many records.
    pub messages: u32,
    /// `Flush.MaxMessages`: a set never holds more records than this.
    pub max_messages: u32,
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
    "socket.timeout.ms",
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
    "compression.type",
    "compression.codec",
    "compression.level",
    "compression.gzip.level",
    "compression.lz4.level",
    "compression.zstd.level",
    "kafka-go.Compression",
    "sarama.Flush.Bytes",
    "sarama.Flush.Messages",
    "sarama.Flush.MaxMessages",
    "transactional.id",
    "transaction.timeout.ms",
    "sarama.Transaction.Retry.Max",
    "sarama.Transaction.Retry.Backoff",
    "socket.connection.setup.timeout.ms",
    "socket.connection.setup.timeout.max.ms",
];

impl ProducerConfig {
    /// The documented defaults of `client` at `version` (`None` = newest modelled version).
    pub fn for_client(client: &str, version: Option<&str>) -> Result<ProducerConfig, String> {
        super::profile::defaults(ClientKind::from_name(client)?, version)
    }

    /// How long a transactional request waits before it is sent again: Java's
    /// `retry.backoff.ms`, sarama's `Producer.Transaction.Retry.Backoff`, librdkafka's
    /// 500 ms timers (coordinator query, PID acquisition, AddPartitionsToTxn; see
    /// `transaction/librdkafka.rs`, which also has its EndTxn backoff).
    pub fn transaction_retry_backoff(&self) -> Duration {
        match self.client {
            ClientKind::Sarama => self.sarama_txn_retry.backoff,
            ClientKind::Librdkafka => Duration::from_millis(500),
            _ => self.retry_backoff,
        }
    }

    /// How this producer keeps the batches of one partition in order, in the user's words:
    /// its requests in flight, its retries and its idempotence (`max.in.flight.requests.
    /// per.connection = 5, retries = 2147483647, not idempotent (enable.idempotence =
    /// false)`), for the cause of a `nonmonotonic-send` or a `duplicate`.
    pub fn ordering_words(&self) -> String {
        let (in_flight, retries) = match self.client {
            ClientKind::Sarama => (
                format!("Net.MaxOpenRequests = {}", self.max_in_flight),
                format!("Producer.Retry.Max = {}", self.retries),
            ),
            // kafka-go's Writer writes one batch of a partition at a time; `MaxAttempts`
            // counts the first attempt.
            ClientKind::KafkaGo => (
                "one batch of a partition in flight (kafka-go's Writer)".to_string(),
                format!("MaxAttempts = {}", u64::from(self.retries) + 1),
            ),
            ClientKind::Java | ClientKind::Librdkafka => (
                format!(
                    "max.in.flight.requests.per.connection = {}",
                    self.max_in_flight
                ),
                format!("retries = {}", self.retries),
            ),
        };
        format!("{in_flight}, {retries}, {}", self.idempotence_words())
    }

    /// Whether a batch retried after a failed or unanswered request can land behind later
    /// batches of its partition: it is retried, more than one batch of a partition may be in
    /// flight, and the leader cannot put it back in order (no idempotence: with it, Kafka
    /// keeps the order of up to 5 requests in flight, KIP-98 / KAFKA-5494).
    pub fn may_reorder(&self) -> bool {
        self.retries > 0 && !self.one_batch_per_partition_in_flight && !self.enable_idempotence
    }

    /// Whether the leader can recognize this producer's retried batch, in the user's words:
    /// "idempotent", or "not idempotent (why)". For a record's story (`kafsim replay`).
    pub fn idempotence_words(&self) -> String {
        if self.enable_idempotence {
            return "idempotent".to_string();
        }
        let why = match self.client {
            ClientKind::KafkaGo => "kafka-go's Writer has no idempotent mode",
            ClientKind::Sarama => "Producer.Idempotent = false",
            ClientKind::Java if !self.idempotence_explicit => {
                "enable.idempotence is off: Java 3.0+ turns its default off when acks or \
                 retries conflict with it, and before 3.0 it was off by default"
            }
            ClientKind::Java | ClientKind::Librdkafka => "enable.idempotence = false",
        };
        format!("not idempotent ({why})")
    }

    /// The connection setup timeout of this producer: its settings, except that a kafka-go
    /// Writer's TCP connect is bounded by its dialer too (`connection_setup::kafka_go_writer`).
    pub fn setup_timeout(&self) -> crate::connection_setup::SetupTimeout {
        use crate::connection_setup as setup;
        let (initial, max) = self.connection_setup;
        if self.client == ClientKind::KafkaGo {
            let new_writer = self.kafka_go_constructor == KafkaGoConstructor::NewWriter;
            return setup::SetupTimeout::fixed(setup::kafka_go_writer(initial, new_writer));
        }
        setup::policy(self.client, initial, max)
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

impl ProducerConfig {
    fn set_sarama_flush(&mut self, key: &str, value: &ConfigValue) -> Result<(), String> {
        if self.client != ClientKind::Sarama {
            return Err(format!(
                "{key} is sarama's Producer.Flush field; this producer is {}",
                self.client.name()
            ));
        }
        let n = value.as_int_in(0, 1 << 30)? as u32;
        match key {
            "sarama.Flush.Bytes" => self.sarama_flush.bytes = n,
            "sarama.Flush.Messages" => self.sarama_flush.messages = n,
            _ => self.sarama_flush.max_messages = n,
        }
        Ok(())
    }
}

impl ProducerConfig {
    fn set_sarama_txn_retry(&mut self, key: &str, value: &ConfigValue) -> Result<(), String> {
        if self.client != ClientKind::Sarama {
            return Err(format!(
                "{key} is sarama's Producer.Transaction.Retry field; this producer is {}",
                self.client.name()
            ));
        }
        if key == "sarama.Transaction.Retry.Max" {
            self.sarama_txn_retry.max = value.as_int_in(0, 1_000_000)? as u32;
        } else {
            self.sarama_txn_retry.backoff = duration_value(value)?;
        }
        Ok(())
    }
}

/// Whether a client version is at least `major.minor` (the version was checked when the
/// profile was built; an unparsable one counts as the newest).
pub(crate) fn version_at_least(version: &str, at_least: (u32, u32)) -> bool {
    crate::config::ClientVersion::parse(version).is_none_or(|v| v.major_minor() >= at_least)
}

/// Milliseconds as an integer (also written as a string of digits), or a duration with a
/// unit ("250ms", "1s"): kafka-go's `BatchTimeout` is a Go `time.Duration`.
fn duration_value(value: &ConfigValue) -> Result<Duration, String> {
    match value {
        ConfigValue::Str(s) if !s.trim().bytes().all(|b| b.is_ascii_digit()) => {
            crate::config::parse_duration(s).map_err(|e| {
                format!("{e}: expected milliseconds or a duration such as \"250ms\" or \"1s\"")
            })
        }
        other => crate::config::millis(other, 0, i32::MAX as i64),
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
    crate::config::millis(value, 0, i32::MAX as i64)
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
                self.max_in_flight_explicit = true;
                self.one_batch_per_partition_in_flight =
                    self.max_in_flight == 1 || self.client == ClientKind::KafkaGo;
            }
            "retries" => {
                self.retries = value.as_int_in(0, RETRIES_MAX as i64)? as u32;
                self.retries_explicit = true;
            }
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
            // librdkafka's request.timeout.ms is the broker's ack timeout only; its client
            // waits socket.timeout.ms.
            "request.timeout.ms" if self.client == ClientKind::Librdkafka => {
                self.ack_timeout = crate::config::millis(value, 1, 900_000)?
            }
            "request.timeout.ms" => {
                self.request_timeout = ms_value(value)?;
                self.ack_timeout = self.request_timeout;
            }
            "socket.timeout.ms" if self.client == ClientKind::Librdkafka => {
                // CONFIGURATION.md: 10 .. 300000.
                self.request_timeout = crate::config::millis(value, 10, 300_000)?;
                self.socket_timeout_explicit = true;
            }
            "socket.timeout.ms" => {
                return Err(format!(
                    "socket.timeout.ms is librdkafka's client-side request timeout; {} calls \
                     it request.timeout.ms\nhint: set request.timeout.ms",
                    self.client.name()
                ))
            }
            "socket.connection.setup.timeout.ms" | "socket.connection.setup.timeout.max.ms" => {
                let version = crate::config::ClientVersion::parse(&self.client_version)
                    .map_or((u32::MAX, 0), |v| v.major_minor());
                crate::connection_setup::set(
                    self.client,
                    version,
                    key,
                    crate::config::millis(value, 1, i32::MAX as i64)?,
                    &mut self.connection_setup,
                )?
            }
            "delivery.timeout.ms" => {
                self.delivery_timeout = Some(ms_value(value)?);
                self.delivery_timeout_explicit = true;
            }
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
            "sarama.Flush.Bytes" | "sarama.Flush.Messages" | "sarama.Flush.MaxMessages" => {
                self.set_sarama_flush(key, value)?
            }
            "compression.type" => self.compression = codec_value(value, false)?,
            "compression.codec" => {
                if self.client != ClientKind::Librdkafka {
                    return Err(format!(
                        "compression.codec is librdkafka's name; {} calls it compression.type",
                        self.client.name()
                    ));
                }
                self.compression = codec_value(value, false)?;
            }
            "kafka-go.Compression" => {
                if self.client != ClientKind::KafkaGo {
                    return Err(format!(
                        "{key} is a kafka-go Writer field; this producer is {}; use compression.type",
                        self.client.name()
                    ));
                }
                self.compression = codec_value(value, true)?;
            }
            "compression.level" => self.set_compression_level(value)?,
            "transactional.id" => {
                let id = value.as_str()?;
                if id.is_empty() {
                    return Err("transactional.id must not be empty".into());
                }
                self.transactional_id = Some(id.to_string());
            }
            "transaction.timeout.ms" => {
                // librdkafka CONFIGURATION.md: 1000 .. 2147483647.
                let min = if self.client == ClientKind::Librdkafka {
                    1_000
                } else {
                    1
                };
                self.transaction_timeout =
                    Duration::from_millis(value.as_int_in(min, i32::MAX as i64)? as u64)
            }
            "sarama.Transaction.Retry.Max" | "sarama.Transaction.Retry.Backoff" => {
                self.set_sarama_txn_retry(key, value)?
            }
            "compression.gzip.level" | "compression.lz4.level" | "compression.zstd.level" => {
                self.set_java_compression_level(key, value)?
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
