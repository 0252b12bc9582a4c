//! From a parsed [`Scenario`] to engine configurations, once per campaign ([`prepare`]):
//! where a property the engine does not know or a bad combination becomes a
//! [`ScenarioError`] with file, line and key before any seed runs. Apart from the run itself
//! because it is pure (no world, no seed) and is where scenario keys meet engine configs.

use super::Prepared;
use crate::drain::Liveness;
use crate::scenario::{HandlerSpec as ScHandler, ProcessTime, Rate, Scenario, ScenarioError};
use kafsim_engine::app::{CommitMode, HandlerSpec, SinkKind};
use kafsim_engine::broker::config::BrokerConfig;
use kafsim_engine::compression::{Compression, MessageProfile};
use kafsim_engine::consumer::config::ConsumerConfig;
use kafsim_engine::consumer::ProduceTo;
use kafsim_engine::consumer::{OffsetReset, Standalone, Start};
use kafsim_engine::producer::config::ProducerConfig;
use kafsim_engine::protocol::IsolationLevel;
use kafsim_engine::{Duration, TopicId, TopicPartition};
use std::collections::BTreeMap;

#[derive(Clone, Debug)]
pub(super) struct PreparedProducer {
    pub(super) index: u32,
    pub(super) topic: TopicId,
    pub(super) rate: Option<f64>,
    pub(super) keys: u32,
    pub(super) message_size: u32,
    pub(super) message_profile: MessageProfile,
    pub(super) config: ProducerConfig,
    pub(super) transactions: Option<kafsim_engine::producer::workload::TxnWorkload>,
}

#[derive(Clone, Debug)]
pub(super) struct PreparedGroup {
    pub(super) index: u32,
    pub(super) name: String,
    pub(super) members: u32,
    pub(super) topics: Vec<TopicId>,
    pub(super) topic_names: BTreeMap<TopicId, String>,
    pub(super) dlq: Option<TopicId>,
    pub(super) handler: HandlerSpec,
    pub(super) config: ConsumerConfig,
    pub(super) read_committed: bool,
    pub(super) database_latency: Duration,
    /// The group declared a `sink`: it gets a database node.
    pub(super) has_database: bool,
    /// A `[[consumers]]` entry: one standalone consumer (no group membership).
    pub(super) standalone: Option<Standalone>,
    /// The group id its requests carry: the name, or a standalone consumer's `group.id`.
    pub(super) kafka_group: String,
    /// Handler `produce_to`: the output topic and each member's producer (its
    /// `transactional.id`, `<group>-<member>`, set per member when transactional).
    pub(super) produce_to: Option<ProduceTo>,
}

fn whole(scenario: &Scenario, key: String, message: String) -> ScenarioError {
    ScenarioError {
        file: scenario.file.clone(),
        line: 0,
        column: 0,
        key,
        message,
        hint: None,
    }
}

/// Build and validate every engine configuration of `scenario`.
pub fn prepare(scenario: Scenario) -> Result<Prepared, ScenarioError> {
    let topic_id = |name: &str| -> TopicId {
        TopicId(
            scenario
                .topics
                .iter()
                .position(|t| t.name == name)
                .expect("validated topic") as u32,
        )
    };
    let mut broker = BrokerConfig::for_version(scenario.cluster.version);
    scenario.apply_config(&scenario.cluster.config, "cluster.config", &mut broker)?;
    for (i, t) in scenario.topics.iter().enumerate() {
        if let Some(p) = t.config.first() {
            let hint = Some("set it for the whole cluster in [cluster.config]".to_string());
            return Err(scenario.property_error(
                p,
                &format!("topics[{i}].config"),
                "topic-level properties are not modelled".into(),
                hint,
            ));
        }
    }
    let mut producers = Vec::new();
    let mut index = 0;
    for (i, spec) in scenario.producers.iter().enumerate() {
        let section = format!("producers[{i}]");
        let mut config =
            ProducerConfig::for_client(spec.client.name(), spec.client_version.as_deref())
                .map_err(|e| whole(&scenario, format!("{section}.client_version"), e))?;
        let config_section = format!("{section}.config");
        scenario.apply_config(&spec.config, &config_section, &mut config)?;
        config
            .validate()
            .map_err(|e| scenario.config_error(&spec.config, &config_section, e))?;
        if config.partition.is_some_and(|e| e.uses_key()) && spec.keys == 0 {
            let message = "partition reads the key, and this producer sends null keys \
                           (keys = 0)\nhint: give the producer keys (keys = 12), or name one \
                           partition for every record (partition = \"0\")"
                .to_string();
            return Err(scenario.config_error(&spec.config, &config_section, message));
        }
        for instance in 0..spec.count {
            // DESIGN §8: instance N of `count` uses `<transactional.id>-N`.
            let mut config = config.clone();
            if let Some(id) = config.transactional_id.as_mut() {
                *id = format!("{id}-{instance}");
            }
            producers.push(PreparedProducer {
                index,
                topic: topic_id(&spec.topic),
                rate: match spec.rate {
                    Rate::PerSecond(r) => Some(r),
                    Rate::Max => None,
                },
                keys: spec.keys,
                message_size: spec.message_size,
                message_profile: spec.message_profile,
                config,
                transactions: spec.transactions,
            });
            index += 1;
        }
    }
    let mut groups = Vec::new();
    for (i, g) in scenario.consumer_groups.iter().enumerate() {
        let section = g.section(i);
        let mut config = ConsumerConfig::for_client(g.client.name(), g.client_version.as_deref())
            .map_err(|e| whole(&scenario, format!("{section}.client_version"), e))?;
        let config_section = format!("{section}.config");
        scenario.apply_config(&g.config, &config_section, &mut config)?;
        config
            .validate()
            .map_err(|e| scenario.config_error(&g.config, &config_section, e))?;
        let topics: Vec<TopicId> = g.topics.iter().map(|t| topic_id(t)).collect();
        let topic_names = g.topics.iter().map(|t| (topic_id(t), t.clone())).collect();
        let standalone = g
            .standalone
            .as_ref()
            .map(|s| standalone_consumer(s, topics[0], &mut config));
        let kafka_group = g
            .standalone
            .as_ref()
            .and_then(|s| s.group_id.clone())
            .unwrap_or_else(|| g.group.clone());
        groups.push(PreparedGroup {
            index: i as u32,
            name: g.group.clone(),
            members: g.members,
            topics,
            topic_names,
            dlq: g.handler.dlq_topic.as_deref().map(topic_id),
            handler: engine_handler(&g.handler, g.handler.produce_to.as_deref().map(topic_id)),
            produce_to: match g.handler.produce_to.as_deref() {
                Some(topic) => Some(output_producer(
                    &scenario,
                    &section,
                    topic_id(topic),
                    g.handler.commit == CommitMode::Transaction,
                    g.handler.send_offsets,
                )?),
                None => None,
            },
            database_latency: g.handler.database_latency,
            has_database: g.handler.sink.is_some(),
            read_committed: config.isolation_level == IsolationLevel::ReadCommitted,
            config,
            standalone,
            kafka_group,
        });
    }
    Ok(Prepared {
        scenario,
        broker,
        producers,
        groups,
    })
}

/// A `[[consumers]]` entry's engine side. Its `start` is the offset reset its (re)starts use
/// (`committed` falls back to the file's `auto.offset.reset`); without a group.id nothing
/// auto-commits (Java turns `enable.auto.commit` off without a group.id; sarama's
/// ConsumePartition and a kafka-go Reader with Partition have no commit at all).
fn standalone_consumer(
    s: &crate::scenario::StandaloneSpec,
    topic: TopicId,
    config: &mut ConsumerConfig,
) -> Standalone {
    match s.start {
        Start::Oldest => config.auto_offset_reset = OffsetReset::Earliest,
        Start::Newest => config.auto_offset_reset = OffsetReset::Latest,
        Start::Committed => {}
    }
    if s.group_id.is_none() {
        config.enable_auto_commit = false;
    }
    Standalone {
        partitions: s
            .partitions
            .iter()
            .map(|p| TopicPartition::new(topic, *p))
            .collect(),
        start: s.start,
        commits: s.group_id.is_some(),
    }
}

/// The producer of a consume-transform-produce group's members: the Java producer's
/// defaults, transactional with `commit = "transaction"` (its id is set per member).
fn output_producer(
    scenario: &Scenario,
    section: &str,
    topic: TopicId,
    transactional: bool,
    send_offsets: kafsim_engine::consumer::SendOffsets,
) -> Result<ProduceTo, ScenarioError> {
    let mut producer = ProducerConfig::for_client("java", None)
        .map_err(|e| whole(scenario, format!("{section}.handler.produce_to"), e))?;
    if transactional {
        producer.transactional_id = Some(String::new());
    }
    producer
        .validate()
        .map_err(|e| whole(scenario, format!("{section}.handler.produce_to"), e))?;
    Ok(ProduceTo {
        topic,
        transactional,
        producer,
        send_offsets,
    })
}

fn engine_handler(h: &ScHandler, produce_to: Option<TopicId>) -> HandlerSpec {
    HandlerSpec {
        produce_to,
        process_time: match h.process_time {
            ProcessTime::Fixed(d) => (d, d),
            ProcessTime::Uniform { min, max } => (min, max),
        },
        mark: h.mark,
        commit: h.commit,
        workers: h.workers,
        routing: h.routing,
        sink: h.sink.unwrap_or(SinkKind::Plain),
        batch: h.batch,
        batch_timeout: h.batch_timeout,
        failure_rate: h.failure_rate,
        poison_rate: h.poison_rate,
        on_failure: h.on_failure,
        max_attempts: h.max_attempts,
    }
}

impl Prepared {
    /// `__transaction_state`, when a producer is transactional: Kafka creates it on the
    /// first FindCoordinator of type TRANSACTION (`transaction.state.log.num.partitions`
    /// partitions, `transaction.state.log.replication.factor` replicas at most the brokers).
    pub(super) fn transaction_topic(&self) -> Option<(String, u32, u32)> {
        let ctp = self
            .groups
            .iter()
            .any(|g| g.produce_to.as_ref().is_some_and(|o| o.transactional));
        (ctp || self
            .producers
            .iter()
            .any(|p| p.config.transactional_id.is_some()))
        .then(|| {
            (
                crate::cluster::TRANSACTION_TOPIC.to_string(),
                self.broker.transaction_state_partitions,
                self.broker
                    .transaction_state_replication_factor
                    .min(self.scenario.cluster.brokers),
            )
        })
    }

    /// Every producer's engine configuration, one per producer instance.
    pub fn producer_configs(&self) -> Vec<&ProducerConfig> {
        self.producers.iter().map(|p| &p.config).collect()
    }

    /// Every group's engine configuration, in scenario order.
    pub fn consumer_configs(&self) -> Vec<&ConsumerConfig> {
        self.groups.iter().map(|g| &g.config).collect()
    }

    /// The liveness window of an automatic drain, from this scenario's configurations.
    pub fn liveness(&self) -> Liveness {
        Liveness::of(
            &self.broker,
            self.producers.iter().map(|p| &p.config).chain(
                self.groups
                    .iter()
                    .filter_map(|g| g.produce_to.as_ref().map(|o| &o.producer)),
            ),
            self.groups.iter().map(|g| &g.config),
        )
    }

    /// The consumer configuration of group `name` (after its client's defaults and the
    /// scenario's properties), if the scenario has that group.
    pub fn group_config(&self, name: &str) -> Option<&ConsumerConfig> {
        self.groups
            .iter()
            .find(|g| g.name == name)
            .map(|g| &g.config)
    }

    /// How the producers compress: the mean compressed fraction over producer instances
    /// (1 = nothing compressed), for the bench's disk arithmetic.
    pub fn compression_ratio(&self) -> f64 {
        if self.producers.is_empty() {
            return 1.0;
        }
        let sum: f64 = self
            .producers
            .iter()
            .map(|p| {
                let c = Compression::new(
                    p.config.compression,
                    p.config.compression_level(),
                    p.message_profile,
                );
                c.permille as f64 / 1000.0
            })
            .sum();
        sum / self.producers.len() as f64
    }
}
