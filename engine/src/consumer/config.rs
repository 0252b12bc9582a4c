//! `ConsumerConfig`: a consumer client's settings, built from its client profile and then
//! overridden by Java property names from the scenario ([`Configurable`]).

use super::profile::{self, AutoCommitStyle, ClientKind};
use crate::config::{millis, ConfigValue, Configurable};
use crate::protocol::IsolationLevel;
use crate::time::Duration;

/// `auto.offset.reset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OffsetReset {
    Earliest,
    Latest,
    /// Fail: the consumer stays without a position for the partition (Java throws
    /// NoOffsetForPartitionException; the modelled application cannot make progress on it).
    None,
}

#[derive(Clone, Debug)]
pub struct ConsumerConfig {
    pub client: ClientKind,
    pub client_version: (u32, u32),
    /// The full version for the assignors (sarama changed behaviour at patch releases).
    pub assignor_version: Option<crate::assignor::Version>,
    pub enable_auto_commit: bool,
    pub auto_commit_interval: Duration,
    pub auto_offset_reset: OffsetReset,
    pub max_poll_records: u32,
    pub session_timeout: Duration,
    pub heartbeat_interval: Duration,
    pub max_poll_interval: Duration,
    /// JoinGroup's rebalance timeout (Java: max.poll.interval.ms; sarama Rebalance.Timeout).
    pub rebalance_timeout: Duration,
    pub fetch_min_bytes: u32,
    pub fetch_max_wait: Duration,
    pub fetch_max_bytes: u32,
    pub max_partition_fetch_bytes: u32,
    /// Assignor names in preference order (`range`, `roundrobin`, `sticky`, `cooperative-sticky`).
    pub strategies: Vec<String>,
    pub isolation_level: IsolationLevel,
    pub group_instance_id: Option<String>,
    /// `request.timeout.ms` (30000): a request without an answer by then is failed (a fetch
    /// gets `fetch.max.wait.ms` more). librdkafka's is `socket.timeout.ms` (60000: "FetchRequests
    /// will use fetch.wait.max.ms + socket.timeout.ms", rdkafka_conf.c); its
    /// `request.timeout.ms` is a producer property a consumer ignores.
    pub request_timeout: Duration,
    /// `retry.backoff.ms` (100).
    pub retry_backoff: Duration,
    /// librdkafka `enable.auto.offset.store` (true): store a message's offset when it is
    /// handed to the application ([`super::consume_loop`]).
    pub enable_auto_offset_store: bool,
    /// How often the member refreshes its metadata, and so how late it notices a topic's new
    /// partitions (`partition_watch.rs`): Java `metadata.max.age.ms` (300 s), sarama
    /// `Metadata.RefreshFrequency` (10 min), librdkafka `topic.metadata.refresh.interval.ms`
    /// (300 s), kafka-go `PartitionWatchInterval` (5 s, used only with
    /// `WatchPartitionChanges`).
    pub metadata_max_age: Duration,
    /// kafka-go `ReaderConfig.WatchPartitionChanges` (false).
    pub watch_partition_changes: bool,
    /// `socket.connection.setup.timeout.ms` and `.max.ms` (`connection_setup.rs`): Java 10 s
    /// growing to 30 s, librdkafka 30 s, sarama `Net.DialTimeout` 30 s, kafka-go's Reader
    /// `Dialer.Timeout` 10 s.
    pub connection_setup: (Duration, Duration),
}

const KEYS: &[&str] = &[
    "enable.auto.commit",
    "auto.commit.interval.ms",
    "auto.offset.reset",
    "max.poll.records",
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "max.poll.interval.ms",
    "fetch.min.bytes",
    "fetch.max.wait.ms",
    "fetch.max.bytes",
    "max.partition.fetch.bytes",
    "partition.assignment.strategy",
    "isolation.level",
    "group.instance.id",
    "request.timeout.ms",
    "socket.timeout.ms",
    "retry.backoff.ms",
    "enable.auto.offset.store",
    "metadata.max.age.ms",
    "group.protocol",
    "kafka-go.WatchPartitionChanges",
    "socket.connection.setup.timeout.ms",
    "socket.connection.setup.timeout.max.ms",
];

impl ConsumerConfig {
    /// The defaults of `client` (java, sarama, kafka-go, librdkafka) at `version` (the newest
    /// modelled one when `None`).
    pub fn for_client(client: &str, version: Option<&str>) -> Result<ConsumerConfig, String> {
        let client = ClientKind::from_name(client)?;
        let parsed = version
            .map(crate::config::parse_client_version)
            .transpose()?;
        let assignor_version = parsed;
        let version = parsed.map_or(client.newest_version(), |v| v.major_minor());
        let d = profile::defaults(client, version);
        Ok(ConsumerConfig {
            client,
            client_version: version,
            assignor_version,
            enable_auto_commit: d.enable_auto_commit,
            auto_commit_interval: d.auto_commit_interval,
            auto_offset_reset: if d.earliest {
                OffsetReset::Earliest
            } else {
                OffsetReset::Latest
            },
            max_poll_records: d.max_poll_records,
            session_timeout: d.session_timeout,
            heartbeat_interval: d.heartbeat_interval,
            max_poll_interval: d.max_poll_interval,
            rebalance_timeout: d.rebalance_timeout,
            fetch_min_bytes: 1,
            fetch_max_wait: d.fetch_max_wait,
            fetch_max_bytes: 52_428_800,
            max_partition_fetch_bytes: 1_048_576,
            strategies: d.strategies,
            isolation_level: if d.read_committed {
                IsolationLevel::ReadCommitted
            } else {
                IsolationLevel::ReadUncommitted
            },
            group_instance_id: None,
            request_timeout: if client == ClientKind::Librdkafka {
                Duration::from_secs(60)
            } else {
                Duration::from_secs(30)
            },
            retry_backoff: Duration::from_millis(100),
            enable_auto_offset_store: true,
            metadata_max_age: d.metadata_max_age,
            watch_partition_changes: false,
            connection_setup: crate::connection_setup::defaults(client, version),
        })
    }

    /// The connection setup timeout of this client with these settings.
    pub fn setup_timeout(&self) -> crate::connection_setup::SetupTimeout {
        let (initial, max) = self.connection_setup;
        crate::connection_setup::policy(self.client, initial, max)
    }

    /// Whether auto-commit commits each record before the application gets it: kafka-go's
    /// `ReadMessage` with `CommitInterval` 0 (`reader.go`: `FetchMessage`, then
    /// `CommitMessages`, returning the commit's error instead of the message), so a commit
    /// that fails drops the record.
    pub fn commits_before_handing_over(&self) -> bool {
        self.enable_auto_commit
            && super::profile::auto_commit_style(self.client, self.auto_commit_interval)
                == super::profile::AutoCommitStyle::PerRecordSync
    }

    /// The reset policy in the client's own words, noting when it is the client's default
    /// (`auto.offset.reset = latest (librdkafka's default)`, `StartOffset = FirstOffset`):
    /// what a replay names when a reset skipped records, so the user knows what to change.
    pub fn offset_reset_policy(&self) -> String {
        let (key, value) = match (self.client, self.auto_offset_reset) {
            (ClientKind::Sarama, OffsetReset::Earliest) => {
                ("Consumer.Offsets.Initial", "OffsetOldest")
            }
            (ClientKind::Sarama, _) => ("Consumer.Offsets.Initial", "OffsetNewest"),
            (ClientKind::KafkaGo, OffsetReset::Earliest) => ("StartOffset", "FirstOffset"),
            (ClientKind::KafkaGo, _) => ("StartOffset", "LastOffset"),
            (_, OffsetReset::Earliest) => ("auto.offset.reset", "earliest"),
            (_, OffsetReset::Latest) => ("auto.offset.reset", "latest"),
            (_, OffsetReset::None) => ("auto.offset.reset", "none"),
        };
        let default_earliest = profile::defaults(self.client, self.client_version).earliest;
        let is_default = match self.auto_offset_reset {
            OffsetReset::Earliest => default_earliest,
            OffsetReset::Latest => !default_earliest,
            OffsetReset::None => false,
        };
        if is_default {
            let client = match self.client {
                ClientKind::Java => "Java",
                other => other.name(),
            };
            format!("{key} = {value} ({client}'s default)")
        } else {
            format!("{key} = {value}")
        }
    }

    /// Whether OffsetFetch asks for stable offsets (KIP-447 `require_stable`): the Java
    /// consumer always does (`ConsumerCoordinator.fetchCommittedOffsets` builds its
    /// `OffsetFetchRequest` with `requireStable = true`), librdkafka under
    /// `isolation.level=read_committed` (`rd_kafka_OffsetFetchRequest`'s
    /// `require_stable_offsets`); sarama and kafka-go never set it.
    pub fn requires_stable_offsets(&self) -> bool {
        match self.client {
            ClientKind::Java => true,
            ClientKind::Librdkafka => self.isolation_level == IsolationLevel::ReadCommitted,
            ClientKind::Sarama | ClientKind::KafkaGo => false,
        }
    }

    /// Whether the member sends JoinGroup v9+ (KIP-814, Java 3.2+), so a static leader that
    /// rejoins a Stable group is told it leads and to skip the assignment. librdkafka and
    /// sarama send older versions: the coordinator tells such a rejoining member the old
    /// leader id, so it does not assign either.
    pub fn join_group_v9(&self) -> bool {
        self.client == ClientKind::Java && self.client_version >= (3, 2)
    }

    pub fn auto_commit_style(&self) -> AutoCommitStyle {
        profile::auto_commit_style(self.client, self.auto_commit_interval)
    }

    /// Check relationships between settings, as the clients do at construction.
    pub fn validate(&self) -> Result<(), String> {
        if self.heartbeat_interval >= self.session_timeout {
            return Err("heartbeat.interval.ms must be lower than session.timeout.ms".into());
        }
        if self.strategies.is_empty() {
            return Err("partition.assignment.strategy must name at least one assignor".into());
        }
        let client = super::poll::assignor_client(self.client);
        for name in &self.strategies {
            let strategy = crate::assignor::Strategy::from_name(name)
                .ok_or_else(|| format!("unknown assignor \"{name}\""))?;
            if !crate::assignor::supports(client, self.assignor_version, strategy) {
                return Err(format!(
                    "client {} has no {name} assignor at this version",
                    self.client.name()
                ));
            }
        }
        Ok(())
    }
}

fn bytes(v: &ConfigValue) -> Result<u32, String> {
    Ok(v.as_int_in(0, i32::MAX as i64)? as u32)
}

/// Accepts short names and Java class names (`org.apache...RangeAssignor`), comma separated.
fn strategies(v: &ConfigValue) -> Result<Vec<String>, String> {
    let text = v.as_str()?;
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let short = part.rsplit('.').next().unwrap_or(part);
        let name = match short {
            "range" | "RangeAssignor" => "range",
            "roundrobin" | "RoundRobinAssignor" => "roundrobin",
            "sticky" | "StickyAssignor" => "sticky",
            "cooperative-sticky" | "CooperativeStickyAssignor" => "cooperative-sticky",
            other => {
                return Err(format!(
                    "unknown assignor \"{other}\": expected range, roundrobin, sticky or cooperative-sticky"
                ))
            }
        };
        out.push(name.to_string());
    }
    if out.is_empty() {
        return Err("expected at least one assignor".into());
    }
    Ok(out)
}

impl Configurable for ConsumerConfig {
    fn set(&mut self, key: &str, value: &ConfigValue) -> Result<(), String> {
        let day = 86_400_000;
        match key {
            "enable.auto.commit" => self.enable_auto_commit = value.as_bool()?,
            "auto.commit.interval.ms" => self.auto_commit_interval = millis(value, 0, day)?,
            "auto.offset.reset" => {
                self.auto_offset_reset =
                    match value.as_choice(&["earliest", "latest", "none", "smallest", "largest"])? {
                        "earliest" | "smallest" => OffsetReset::Earliest,
                        "latest" | "largest" => OffsetReset::Latest,
                        _ => OffsetReset::None,
                    }
            }
            "max.poll.records" => self.max_poll_records = value.as_int_in(1, 100_000)? as u32,
            "session.timeout.ms" => self.session_timeout = millis(value, 1, day)?,
            "heartbeat.interval.ms" => self.heartbeat_interval = millis(value, 1, day)?,
            // Java and librdkafka use it as the rebalance timeout too; for sarama and kafka-go
            // it stands for their Rebalance.Timeout / RebalanceTimeout (they have no poll
            // deadline of their own).
            "max.poll.interval.ms" => {
                self.max_poll_interval = millis(value, 1, day)?;
                self.rebalance_timeout = self.max_poll_interval;
            }
            "fetch.min.bytes" => self.fetch_min_bytes = bytes(value)?,
            "fetch.max.wait.ms" => self.fetch_max_wait = millis(value, 0, day)?,
            "fetch.max.bytes" => self.fetch_max_bytes = bytes(value)?.max(1),
            "max.partition.fetch.bytes" => self.max_partition_fetch_bytes = bytes(value)?.max(1),
            "partition.assignment.strategy" => self.strategies = strategies(value)?,
            "isolation.level" => {
                self.isolation_level =
                    match value.as_choice(&["read_uncommitted", "read_committed"])? {
                        "read_committed" => IsolationLevel::ReadCommitted,
                        _ => IsolationLevel::ReadUncommitted,
                    }
            }
            // Static membership (KIP-345). The runner gives member I of a group the instance
            // id `<value>-I`, as a StatefulSet names its pods.
            "group.instance.id" => {
                let id = value.as_str()?;
                static_membership_supported(self.client, self.client_version)?;
                validate_instance_id(id)?;
                self.group_instance_id = Some(id.to_string());
            }
            "request.timeout.ms" if self.client == ClientKind::Librdkafka => {
                return Err(
                    "request.timeout.ms is a librdkafka producer property (the ack timeout it \
                     sends the broker), which a librdkafka consumer ignores; its requests wait \
                     socket.timeout.ms\nhint: set socket.timeout.ms"
                        .into(),
                )
            }
            "request.timeout.ms" => self.request_timeout = millis(value, 1, day)?,
            // CONFIGURATION.md: 10 .. 300000.
            "socket.timeout.ms" if self.client == ClientKind::Librdkafka => {
                self.request_timeout = millis(value, 10, 300_000)?
            }
            "socket.timeout.ms" => {
                return Err(format!(
                    "socket.timeout.ms is librdkafka's request timeout; {} calls it \
                     request.timeout.ms\nhint: set request.timeout.ms",
                    self.client.name()
                ))
            }
            "socket.connection.setup.timeout.ms" | "socket.connection.setup.timeout.max.ms" => {
                crate::connection_setup::set(
                    self.client,
                    self.client_version,
                    key,
                    millis(value, 1, day)?,
                    &mut self.connection_setup,
                )?
            }
            "retry.backoff.ms" => self.retry_backoff = millis(value, 0, day)?,
            "enable.auto.offset.store" if self.client == ClientKind::Librdkafka => {
                self.enable_auto_offset_store = value.as_bool()?
            }
            "enable.auto.offset.store" => {
                return Err(format!(
                    "enable.auto.offset.store is a librdkafka property; {} has no offset store \
                     (use the handler's `mark` for when the application marks offsets)",
                    self.client.name()
                ))
            }
            "metadata.max.age.ms" => self.metadata_max_age = millis(value, 1, day)?,
            // KIP-848's protocol (`group.protocol=consumer`: ConsumerGroupHeartbeat, the
            // broker assigns) is GA in Java 4.0 and librdkafka 2.10, but neither defaults to
            // it; sarama and kafka-go have only the classic JoinGroup / SyncGroup protocol,
            // which is the one kafsim's groups speak.
            "group.protocol"
                if matches!(self.client, ClientKind::Java | ClientKind::Librdkafka) =>
            {
                if value.as_choice(&["classic", "consumer"])? == "consumer" {
                    return Err(
                        "group.protocol = \"consumer\" (KIP-848) is not modelled: kafsim's \
                         groups use the classic protocol (JoinGroup / SyncGroup)\nhint: \
                         \"classic\", the default of the Java client and librdkafka, is the \
                         protocol modelled"
                            .to_string(),
                    );
                }
            }
            "group.protocol" => {
                return Err(format!(
                    "group.protocol is a Java and librdkafka property; {} has only the \
                     classic group protocol",
                    self.client.name()
                ))
            }
            "kafka-go.WatchPartitionChanges" if self.client == ClientKind::KafkaGo => {
                self.watch_partition_changes = value.as_bool()?
            }
            "kafka-go.WatchPartitionChanges" => {
                return Err(format!(
                    "kafka-go.WatchPartitionChanges is a kafka-go Reader field; {} notices new \
                     partitions through its metadata refresh (metadata.max.age.ms)",
                    self.client.name()
                ))
            }
            other => return Err(format!("unknown consumer property \"{other}\"")),
        }
        Ok(())
    }

    fn known_keys(&self) -> &'static [&'static str] {
        KEYS
    }

    fn aliases(&self) -> &'static [crate::alias::Alias] {
        crate::alias::CONSUMER
    }

    fn client(&self) -> Option<ClientKind> {
        Some(self.client)
    }
}

/// Which clients have static membership (KIP-345), and since which version: Java 2.3
/// (`ConsumerConfig.GROUP_INSTANCE_ID_CONFIG`), librdkafka 1.4.0 (its `group.instance.id`,
/// merged for 1.3.0 but hidden there as experimental, confluentinc/librdkafka #2638 and
/// #2711), sarama 1.34.0 (`Consumer.Group.InstanceId`, IBM/sarama #2230). kafka-go has none:
/// neither `ReaderConfig` nor `ConsumerGroupConfig` carries an instance id, so its members
/// are always dynamic.
fn static_membership_supported(client: ClientKind, version: (u32, u32)) -> Result<(), String> {
    let since = match client {
        ClientKind::Java => (2, 3),
        ClientKind::Librdkafka => (1, 4),
        ClientKind::Sarama => (1, 34),
        ClientKind::KafkaGo => {
            return Err(
                "kafka-go has no static membership: neither its ReaderConfig nor its \
                 ConsumerGroupConfig has an instance id (segmentio/kafka-go), so every kafka-go \
                 member is dynamic\nhint: remove \"group.instance.id\""
                    .into(),
            )
        }
    };
    if version < since {
        return Err(format!(
            "{} {}.{} has no group.instance.id: static membership came in {} {}.{}\nhint: \
             set client_version to {}.{} or later, or remove the key",
            client.name(),
            version.0,
            version.1,
            client.name(),
            since.0,
            since.1,
            since.0,
            since.1
        ));
    }
    Ok(())
}

/// Kafka's rule for a `group.instance.id` (`JoinGroupRequest.validateGroupInstanceId`, the
/// topic-name rule): 1 to 249 characters among ASCII letters, digits, `.`, `_` and `-`.
fn validate_instance_id(id: &str) -> Result<(), String> {
    let legal = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if id.is_empty() || id.len() > 249 || !id.chars().all(legal) {
        return Err(format!(
            "group.instance.id \"{id}\" is not a valid instance id: 1 to 249 characters \
             among ASCII letters, digits, '.', '_' and '-' (Kafka's rule)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// librdkafka's consumer waits `socket.timeout.ms` (60 s); `request.timeout.ms` is a
    /// producer property it ignores, so naming it is an error with a hint.
    #[test]
    fn librdkafka_consumers_wait_socket_timeout() {
        let mut c = ConsumerConfig::for_client("librdkafka", None).unwrap();
        assert_eq!(c.request_timeout, Duration::from_secs(60));
        c.set("socket.timeout.ms", &ConfigValue::Int(15_000))
            .unwrap();
        assert_eq!(c.request_timeout, Duration::from_secs(15));
        let e = c
            .set("request.timeout.ms", &ConfigValue::Int(5_000))
            .unwrap_err();
        assert!(e.contains("socket.timeout.ms"), "{e}");
        let mut j = ConsumerConfig::for_client("java", None).unwrap();
        assert_eq!(j.request_timeout, Duration::from_secs(30));
        let e = j
            .set("socket.timeout.ms", &ConfigValue::Int(5_000))
            .unwrap_err();
        assert!(e.contains("request.timeout.ms"), "{e}");
    }

    #[test]
    fn sarama_waits_500_ms_for_a_fetch_from_1_33() {
        let wait = |v: &str| {
            ConsumerConfig::for_client("sarama", Some(v))
                .unwrap()
                .fetch_max_wait
        };
        assert_eq!(wait("1.32.0"), Duration::from_millis(250));
        assert_eq!(wait("1.33.0"), Duration::from_millis(500));
        assert_eq!(wait("1.43"), Duration::from_millis(500));
    }

    #[test]
    fn profiles_differ_where_the_clients_differ() {
        let java = ConsumerConfig::for_client("java", None).unwrap();
        let sarama = ConsumerConfig::for_client("sarama", None).unwrap();
        let kgo = ConsumerConfig::for_client("kafka-go", None).unwrap();
        let rdk = ConsumerConfig::for_client("librdkafka", None).unwrap();
        assert_eq!(java.auto_commit_interval, Duration::from_millis(5000));
        assert_eq!(sarama.auto_commit_interval, Duration::from_secs(1));
        assert_eq!(kgo.auto_offset_reset, OffsetReset::Earliest);
        assert_eq!(
            kgo.offset_reset_policy(),
            "StartOffset = FirstOffset (kafka-go's default)"
        );
        assert_eq!(
            java.offset_reset_policy(),
            "auto.offset.reset = latest (Java's default)"
        );
        assert_eq!(java.auto_offset_reset, OffsetReset::Latest);
        assert_eq!(rdk.isolation_level, IsolationLevel::ReadCommitted);
        assert_eq!(java.isolation_level, IsolationLevel::ReadUncommitted);
        assert!(ConsumerConfig::for_client("kafka-python", None).is_err());
    }

    #[test]
    fn java_names_override_and_bad_values_are_refused() {
        let mut c = ConsumerConfig::for_client("java", Some("3.7")).unwrap();
        c.set("auto.offset.reset", &ConfigValue::Str("earliest".into()))
            .unwrap();
        c.set("max.poll.records", &ConfigValue::Int(10)).unwrap();
        let rr = ConfigValue::Str("org.apache.kafka.clients.consumer.RoundRobinAssignor".into());
        c.set("partition.assignment.strategy", &rr).unwrap();
        c.set("max.poll.interval.ms", &ConfigValue::Int(1000))
            .unwrap();
        assert_eq!(c.auto_offset_reset, OffsetReset::Earliest);
        assert_eq!(c.max_poll_records, 10);
        assert_eq!(c.strategies, vec!["roundrobin"]);
        assert_eq!(c.rebalance_timeout, Duration::from_millis(1000));
        assert!(c.set("max.poll.records", &ConfigValue::Int(0)).is_err());
        assert!(c
            .set("auto.offset.reset", &ConfigValue::Str("oldest".into()))
            .is_err());
        assert!(c.set("no.such.key", &ConfigValue::Int(1)).is_err());
        c.set("heartbeat.interval.ms", &ConfigValue::Int(60_000))
            .unwrap();
        assert!(c.validate().is_err());
    }

    #[test]
    fn group_instance_id_needs_a_client_and_version_that_have_it() {
        let set = |client: &str, version: Option<&str>, id: &str| {
            let mut c = ConsumerConfig::for_client(client, version).unwrap();
            c.set("group.instance.id", &ConfigValue::Str(id.into()))
                .map(|()| c.group_instance_id.clone())
        };
        for (client, version) in [
            ("java", Some("2.3")),
            ("java", None),
            ("librdkafka", Some("1.4.0")),
            ("sarama", Some("1.34.0")),
            ("sarama", None),
        ] {
            assert_eq!(
                set(client, version, "pod"),
                Ok(Some("pod".into())),
                "{client}"
            );
        }
        for (client, version) in [
            ("java", Some("2.2")),
            ("librdkafka", Some("1.3.0")),
            ("sarama", Some("1.33.0")),
        ] {
            let e = set(client, version, "pod").unwrap_err();
            assert!(e.contains("static membership came in"), "{client}: {e}");
        }
        let e = set("kafka-go", None, "pod").unwrap_err();
        assert!(e.contains("kafka-go has no static membership"), "{e}");
        for bad in ["", "pod 0", "pod/0"] {
            assert!(set("java", None, bad).is_err(), "{bad:?}");
        }
    }
}
