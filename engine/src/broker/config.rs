//! Broker properties by their Kafka names ([`Configurable`]), with Kafka's defaults.
//! `replication.protocol` is kafsim's own switch between the leader-epoch truncation protocol
//! (KIP-101/KIP-279, Kafka 0.11+/2.0+) and the legacy truncate-to-high-watermark protocol.

use crate::config::{millis, ConfigValue, Configurable};
use crate::log::FlushPolicy;
use crate::time::{ms, Duration};

pub use super::version::KafkaVersion;

/// How a follower finds the prefix it shares with a new leader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplicationProtocol {
    /// KIP-101 + KIP-279: OffsetsForLeaderEpoch, repeated until a common epoch is found.
    LeaderEpoch,
    /// Pre-0.11 Kafka: a restarted or demoted follower truncates to its checkpointed HW.
    HighWatermark,
}

/// A deliberate bug, so that each internal invariant can be shown to fire. Test-only.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakRule {
    /// The leader sets the HW to its own LEO, ignoring followers.
    SkipHwRule,
    /// The leader lets its HW move back, to the lowest LEO of all its followers (in the ISR
    /// or not: with restarted brokers fenced until they rejoin, an ISR member's LEO is never
    /// below the HW, so only counting the others can show the regression).
    AllowHwRegression,
    /// The controller elects a new leader without bumping the leader epoch, and brokers
    /// follow a leader change within an epoch.
    ReuseLeaderEpoch,
    /// The controller elects a replica outside the ISR even with clean election.
    ElectOutOfIsr,
    /// A follower appends fetched batches without truncating first (leader-epoch mode).
    SkipTruncation,
}

#[derive(Clone, Debug, PartialEq)]
pub struct BrokerConfig {
    /// The Kafka release whose version-specific rules apply (`[cluster] version` of a
    /// scenario; newest modelled by default). Not a broker property: a cluster has one.
    pub version: KafkaVersion,
    /// `min.insync.replicas` (default 1).
    pub min_insync_replicas: u32,
    /// `unclean.leader.election.enable` (default false since Kafka 0.11).
    pub unclean_leader_election: bool,
    /// `replica.lag.time.max.ms` (default 30000 since Kafka 2.5, KIP-537; 10000 before).
    pub replica_lag_time_max: Duration,
    /// `replication.protocol` (kafsim): `"leader-epoch"` (default) or `"high-watermark"`.
    pub replication_protocol: ReplicationProtocol,
    /// `log.flush.interval.messages` (default never).
    pub flush_interval_messages: Option<u64>,
    /// `log.flush.interval.ms` (default never).
    pub flush_interval: Option<Duration>,
    /// `replica.fetch.wait.max.ms` (default 500).
    pub replica_fetch_wait_max: Duration,
    /// `replica.fetch.min.bytes` (default 1).
    pub replica_fetch_min_bytes: u32,
    /// `replica.fetch.max.bytes` (default 1 MiB).
    pub replica_fetch_max_bytes: u32,
    /// `replica.fetch.backoff.ms` (default 1000).
    pub replica_fetch_backoff: Duration,
    /// `replica.socket.timeout.ms` (default 30000): a follower's fetch request timeout.
    pub replica_socket_timeout: Duration,
    /// `replica.high.watermark.checkpoint.interval.ms` (default 5000).
    pub hw_checkpoint_interval: Duration,
    /// `broker.session.timeout.ms` (default 9000).
    pub broker_session_timeout: Duration,
    /// `broker.heartbeat.interval.ms` (default 2000).
    pub broker_heartbeat_interval: Duration,
    /// `offsets.topic.num.partitions` (default 50).
    pub offsets_topic_partitions: u32,
    /// `offsets.topic.replication.factor` (default 3).
    pub offsets_topic_replication_factor: u32,
    /// `default.replication.factor` (default 1).
    pub default_replication_factor: u32,
    /// `num.partitions` (default 1).
    pub num_partitions: u32,
    /// `group.initial.rebalance.delay.ms` (default 3000).
    pub group_initial_rebalance_delay: Duration,
    /// `num.replica.fetchers` (default 1): fetcher threads per source broker; a partition
    /// goes to `Utils.abs(31 · topic.hashCode() + partition) % n`
    /// (`AbstractFetcherManager.getFetcherId`).
    pub num_replica_fetchers: u32,
    /// `max.incremental.fetch.session.cache.slots` (default 1000): most incremental fetch
    /// sessions (KIP-227) a broker holds; 0 makes every follower fetch full.
    pub max_incremental_fetch_session_cache_slots: u32,
    /// Java `String.hashCode()` of each topic's name, for the fetcher assignment above. Not a
    /// broker property: the host that names the topics fills it in; a topic missing here
    /// hashes as its id.
    pub topic_name_hashes: std::collections::BTreeMap<crate::record::TopicId, i32>,
    /// `transaction.state.log.num.partitions` (default 50).
    pub transaction_state_partitions: u32,
    /// `transaction.state.log.replication.factor` (default 3, capped by the broker count).
    pub transaction_state_replication_factor: u32,
    /// `transaction.max.timeout.ms` (default 900000).
    pub transaction_max_timeout: Duration,
    /// `transaction.version` (KIP-890 part 2 from 2: the epoch is bumped at every EndTxn).
    /// Default 2, the 4.0 default.
    pub transaction_version: u32,
    /// `transaction.partition.verification.enable` (KIP-890 part 1, Kafka 3.6+, default true):
    /// a leader asks the coordinator before a producer's first transactional batch on a
    /// partition (`broker/verification.rs`).
    pub transaction_partition_verification: bool,
    #[doc(hidden)]
    pub test_break: Option<BreakRule>,
}

impl Default for BrokerConfig {
    fn default() -> BrokerConfig {
        BrokerConfig {
            version: KafkaVersion::NEWEST,
            min_insync_replicas: 1,
            unclean_leader_election: false,
            replica_lag_time_max: ms(30_000),
            replication_protocol: ReplicationProtocol::LeaderEpoch,
            flush_interval_messages: None,
            flush_interval: None,
            replica_fetch_wait_max: ms(500),
            replica_fetch_min_bytes: 1,
            replica_fetch_max_bytes: 1 << 20,
            replica_fetch_backoff: ms(1000),
            replica_socket_timeout: ms(30_000),
            hw_checkpoint_interval: ms(5000),
            broker_session_timeout: ms(9000),
            broker_heartbeat_interval: ms(2000),
            offsets_topic_partitions: 50,
            offsets_topic_replication_factor: 3,
            default_replication_factor: 1,
            num_partitions: 1,
            group_initial_rebalance_delay: ms(3000),
            num_replica_fetchers: 1,
            max_incremental_fetch_session_cache_slots:
                crate::replica::fetch_session::DEFAULT_CACHE_SLOTS,
            topic_name_hashes: Default::default(),
            transaction_state_partitions: 50,
            transaction_state_replication_factor: 3,
            transaction_max_timeout: ms(900_000),
            transaction_version: 2,
            transaction_partition_verification: true,
            test_break: None,
        }
    }
}

impl BrokerConfig {
    /// Kafka's defaults at `version`: partition verification from 3.6 (KIP-890 part 1); a
    /// new 4.0 cluster finalizes `transaction.version` 2 (KIP-890 part 2), earlier ones run
    /// the original protocol (0).
    pub fn for_version(version: KafkaVersion) -> BrokerConfig {
        BrokerConfig {
            version,
            transaction_partition_verification: version >= KafkaVersion::V3_6,
            transaction_version: if version >= KafkaVersion::V4_0 { 2 } else { 0 },
            ..BrokerConfig::default()
        }
    }

    pub fn flush_policy(&self) -> FlushPolicy {
        FlushPolicy {
            interval_messages: self.flush_interval_messages,
            interval: self.flush_interval,
        }
    }

    /// `min.insync.replicas` as the leader of a partition with `replication_factor` replicas
    /// applies it: capped by the replication factor since 3.7 (KAFKA-15583,
    /// `Partition.effectiveMinIsr`), as configured before.
    pub fn effective_min_isr(&self, replication_factor: usize) -> usize {
        let configured = self.min_insync_replicas as usize;
        if self.version.hw_requires_min_isr() {
            configured.min(replication_factor.max(1))
        } else {
            configured
        }
    }

    pub(crate) fn breaks(&self, rule: BreakRule) -> bool {
        self.test_break == Some(rule)
    }
}

const KEYS: &[&str] = &[
    "min.insync.replicas",
    "unclean.leader.election.enable",
    "replica.lag.time.max.ms",
    "replication.protocol",
    "log.flush.interval.messages",
    "log.flush.interval.ms",
    "replica.fetch.wait.max.ms",
    "replica.fetch.min.bytes",
    "replica.fetch.max.bytes",
    "replica.fetch.backoff.ms",
    "replica.socket.timeout.ms",
    "replica.high.watermark.checkpoint.interval.ms",
    "broker.session.timeout.ms",
    "broker.heartbeat.interval.ms",
    "offsets.topic.num.partitions",
    "offsets.topic.replication.factor",
    "default.replication.factor",
    "num.partitions",
    "group.initial.rebalance.delay.ms",
    "num.replica.fetchers",
    "max.incremental.fetch.session.cache.slots",
    "transaction.state.log.num.partitions",
    "transaction.state.log.replication.factor",
    "transaction.max.timeout.ms",
    "transaction.version",
    "transaction.partition.verification.enable",
];

/// Kafka's "never" for flush intervals is Long.MAX_VALUE; accept it and anything huge.
fn never_or(v: i64) -> Option<u64> {
    (v < i64::MAX / 2).then_some(v as u64)
}

impl Configurable for BrokerConfig {
    fn set(&mut self, key: &str, v: &ConfigValue) -> Result<(), String> {
        const DAY: i64 = 86_400_000;
        match key {
            "min.insync.replicas" => self.min_insync_replicas = v.as_int_in(1, 16)? as u32,
            "unclean.leader.election.enable" => self.unclean_leader_election = v.as_bool()?,
            "replica.lag.time.max.ms" => self.replica_lag_time_max = millis(v, 1, DAY)?,
            "replication.protocol" => {
                self.replication_protocol =
                    match v.as_choice(&["leader-epoch", "high-watermark"])? {
                        "leader-epoch" => ReplicationProtocol::LeaderEpoch,
                        _ => ReplicationProtocol::HighWatermark,
                    }
            }
            "log.flush.interval.messages" => {
                self.flush_interval_messages = never_or(v.as_int_in(1, i64::MAX)?)
            }
            "log.flush.interval.ms" => {
                self.flush_interval = never_or(v.as_int_in(1, i64::MAX)?).map(ms)
            }
            "replica.fetch.wait.max.ms" => self.replica_fetch_wait_max = millis(v, 0, 60_000)?,
            "replica.fetch.min.bytes" => {
                self.replica_fetch_min_bytes = v.as_int_in(1, 1 << 30)? as u32
            }
            "replica.fetch.max.bytes" => {
                self.replica_fetch_max_bytes = v.as_int_in(1, 1 << 30)? as u32
            }
            "replica.fetch.backoff.ms" => self.replica_fetch_backoff = millis(v, 0, 60_000)?,
            "replica.socket.timeout.ms" => self.replica_socket_timeout = millis(v, 1, DAY)?,
            "replica.high.watermark.checkpoint.interval.ms" => {
                self.hw_checkpoint_interval = millis(v, 1, DAY)?
            }
            "broker.session.timeout.ms" => self.broker_session_timeout = millis(v, 1, DAY)?,
            "broker.heartbeat.interval.ms" => self.broker_heartbeat_interval = millis(v, 1, DAY)?,
            "offsets.topic.num.partitions" => {
                self.offsets_topic_partitions = v.as_int_in(1, 1000)? as u32
            }
            "offsets.topic.replication.factor" => {
                self.offsets_topic_replication_factor = v.as_int_in(1, 16)? as u32
            }
            "default.replication.factor" => {
                self.default_replication_factor = v.as_int_in(1, 16)? as u32
            }
            "num.partitions" => self.num_partitions = v.as_int_in(1, 10_000)? as u32,
            "group.initial.rebalance.delay.ms" => {
                self.group_initial_rebalance_delay = millis(v, 0, DAY)?
            }
            "num.replica.fetchers" => self.num_replica_fetchers = v.as_int_in(1, 64)? as u32,
            "max.incremental.fetch.session.cache.slots" => {
                self.max_incremental_fetch_session_cache_slots = v.as_int_in(0, 1 << 20)? as u32
            }
            "transaction.state.log.num.partitions" => {
                self.transaction_state_partitions = v.as_int_in(1, 1000)? as u32
            }
            "transaction.state.log.replication.factor" => {
                self.transaction_state_replication_factor = v.as_int_in(1, 16)? as u32
            }
            "transaction.max.timeout.ms" => self.transaction_max_timeout = millis(v, 1, DAY)?,
            // The finalized `transaction.version` feature (KIP-890 part 2 from 2; Kafka 4.0
            // finalizes 2 on a new cluster, earlier clusters have 0/1: the old protocol).
            "transaction.version" => self.transaction_version = v.as_int_in(0, 2)? as u32,
            "transaction.partition.verification.enable" => {
                self.transaction_partition_verification = v.as_bool()?
            }
            _ => return Err(format!("unknown broker property \"{key}\"")),
        }
        Ok(())
    }

    fn known_keys(&self) -> &'static [&'static str] {
        KEYS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_names_set_fields_and_bad_values_fail() {
        let mut c = BrokerConfig::default();
        c.set("min.insync.replicas", &ConfigValue::Int(2)).unwrap();
        c.set(
            "replication.protocol",
            &ConfigValue::Str("high-watermark".into()),
        )
        .unwrap();
        c.set("log.flush.interval.messages", &ConfigValue::Int(i64::MAX))
            .unwrap();
        assert_eq!(c.min_insync_replicas, 2);
        assert_eq!(c.replication_protocol, ReplicationProtocol::HighWatermark);
        assert_eq!(c.flush_interval_messages, None);
        c.set("log.flush.interval.messages", &ConfigValue::Int(1))
            .unwrap();
        assert_eq!(c.flush_interval_messages, Some(1));
        assert!(c.set("min.insync.replicas", &ConfigValue::Int(0)).is_err());
        assert!(c
            .set("replication.protocol", &ConfigValue::Str("raft".into()))
            .is_err());
        assert!(c.set("no.such.key", &ConfigValue::Int(1)).is_err());
        assert_eq!(c.max_incremental_fetch_session_cache_slots, 1000);
        c.set(
            "max.incremental.fetch.session.cache.slots",
            &ConfigValue::Int(0),
        )
        .unwrap();
        assert_eq!(c.max_incremental_fetch_session_cache_slots, 0);
        c.set("num.replica.fetchers", &ConfigValue::Int(4)).unwrap();
        assert_eq!(c.num_replica_fetchers, 4);
        assert!(c.set("num.replica.fetchers", &ConfigValue::Int(0)).is_err());
        assert!(c
            .set("num.replica.fetchers", &ConfigValue::Int(65))
            .is_err());
        assert_eq!(c.known_keys().len(), KEYS.len());
    }
}
