//! One seed of a scenario, from parsed file to verdict (DESIGN §3 phases).
//!
//! [`prepare`] turns a [`Scenario`] into engine configurations once per campaign: this is
//! where a property the engine does not know, or a bad combination (idempotence with
//! acks=1), becomes a [`ScenarioError`] with the file, line and key — before any seed runs.
//! [`run_seed`] then builds a fresh [`World`] (controllers, brokers, producers, consumers),
//! runs the *safety* phase (load and faults for `duration`), *heals* (every fault lifted,
//! every node restarted and resumed, producers stop), *drains* (until everyone has caught
//! up, or nothing progresses for the liveness window, or an explicit `drain` bound runs out:
//! a `stall`; see [`crate::drain`]) and runs the *final checks*: the history
//! checkers, replica divergence, and the engine invariants checked after every event.

use crate::campaign::{GroupStats, ProducerStats, RunStats, SeedResult};
use crate::checker::{check_history, CheckConfig, GroupCheck};
use crate::cluster::{build_cluster, Cluster, ClusterSpec};
use crate::coverage::{self, Coverage, RunFacts};
use crate::database::Database;
use crate::drain::{DrainTracker, GroupInfo, Liveness, StallCause, StallContext};
use crate::history::History;
use crate::invariants::{self, DivergenceCheck, InvariantScope};
use crate::names::Names;
use crate::nemesis::{AppliedFault, Nemesis, Op, Resolver};
use crate::readiness::{self, ReadyOutcome, Release, Released};
use crate::scenario::{
    AfterBacklog, Drain, FaultAction, FaultKind, HandlerSpec as ScHandler, ProcessTime, Rate,
    Scenario, ScenarioError, ScheduledFault, Target,
};
use crate::seed::{rng_for, stream};
use crate::trace::{TraceEvent, TraceLevel};
use crate::violation::{Violation, ViolationKind};
use crate::world::{NodeState, RunOutcome, World, WorldConfig};
use kafsim_engine::admin::Admin;
use kafsim_engine::app::{CommitMode, HandlerSpec, SinkKind};
use kafsim_engine::broker::config::BrokerConfig;
use kafsim_engine::client::ClientKind;
use kafsim_engine::compression::{Compression, MessageProfile};
use kafsim_engine::consumer::config::ConsumerConfig;
use kafsim_engine::consumer::{Consumer, ConsumerSpec, ProduceTo};
use kafsim_engine::consumer::{OffsetReset, Standalone, Start};
use kafsim_engine::history::HistoryEvent;
use kafsim_engine::producer::config::ProducerConfig;
use kafsim_engine::producer::OnError;
use kafsim_engine::producer::{Producer, ProducerSpec};
use kafsim_engine::protocol::IsolationLevel;
use kafsim_engine::{Duration, Instant, Node, NodeId, TopicId, TopicPartition};
use std::collections::BTreeMap;

/// How often the safety phase compares replicas for divergence.
const DIVERGENCE_EVERY: Duration = Duration::from_secs(1);
/// How often the drain phase checks whether consumers have caught up.
const DRAIN_POLL: Duration = Duration::from_millis(250);
/// A streaming run hands the history to its consumer and forgets it every this much
/// simulated time, so what it holds is bounded by the record rate, not the record count.
const STREAM_SLICE: Duration = Duration::from_millis(10);

/// A scenario with its engine configurations built and validated.
#[derive(Clone, Debug)]
pub struct Prepared {
    pub scenario: Scenario,
    pub broker: BrokerConfig,
    producers: Vec<PreparedProducer>,
    groups: Vec<PreparedGroup>,
}

#[derive(Clone, Debug)]
struct PreparedProducer {
    index: u32,
    topic: TopicId,
    rate: Option<f64>,
    keys: u32,
    message_size: u32,
    message_profile: MessageProfile,
    config: ProducerConfig,
    transactions: Option<kafsim_engine::producer::workload::TxnWorkload>,
}

impl PreparedProducer {
    /// What this producer did against its rate, with why a shortfall happens under its
    /// settings (the warning a summary prints when it sent less than half).
    fn stats(&self, sent: u64, load_seconds: f64) -> ProducerStats {
        let asked = self.rate.map_or(0, |r| (r * load_seconds).round() as u64);
        let c = &self.config;
        let pace = if c.sync {
            let linger = match c.client {
                ClientKind::KafkaGo => "BatchTimeout",
                ClientKind::Sarama => "Producer.Flush.Frequency",
                ClientKind::Java | ClientKind::Librdkafka => "linger.ms",
            };
            format!(
                "it sends synchronously (`sync = true`: the application waits for each \
                 send's outcome before the next one), so each send takes {linger} ({} ms) \
                 plus a round trip to the leader, and longer while faults hold it up",
                c.linger.as_millis()
            )
        } else {
            "its client held the application back: the records it had handed over and not \
             yet completed reached the client's bound (buffer memory, in-flight limits), as \
             retries under faults keep them"
                .to_string()
        };
        ProducerStats { sent, asked, pace }
    }
}

#[derive(Clone, Debug)]
struct PreparedGroup {
    index: u32,
    name: String,
    members: u32,
    topics: Vec<TopicId>,
    topic_names: BTreeMap<TopicId, String>,
    dlq: Option<TopicId>,
    handler: HandlerSpec,
    config: ConsumerConfig,
    read_committed: bool,
    database_latency: Duration,
    /// The group declared a `sink`: it gets a database node.
    has_database: bool,
    /// A `[[consumers]]` entry: one standalone consumer (no group membership).
    standalone: Option<Standalone>,
    /// The group id its requests carry: the name, or a standalone consumer's `group.id`.
    kafka_group: String,
    /// Handler `produce_to`: the output topic and each member's producer (its
    /// `transactional.id`, `<group>-<member>`, set per member when transactional).
    produce_to: Option<ProduceTo>,
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

impl Prepared {
    /// `__transaction_state`, when a producer is transactional: Kafka creates it on the
    /// first FindCoordinator of type TRANSACTION (`transaction.state.log.num.partitions`
    /// partitions, `transaction.state.log.replication.factor` replicas at most the brokers).
    fn transaction_topic(&self) -> Option<(String, u32, u32)> {
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

/// What a run records beyond its verdict.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    pub trace: TraceLevel,
    /// Overrides the default world (the bench cost model, hardware profiles).
    pub world: Option<WorldConfig>,
    /// Keep the history in the output (replay, bench --check).
    pub keep_history: bool,
    /// Stream the history instead of keeping it (`kafsim bench` without `--check`): it is
    /// handed to [`run_seed_streaming`]'s consumer in slices and dropped, and the run does
    /// no checking beyond its liveness (`stall`) and engine panics: no history checkers, no
    /// per-event invariants, no replica divergence checks. Overrides `keep_history`.
    pub stream: bool,
    /// A bench's readiness phase ([`crate::readiness`]): hold the producers until every
    /// consumer group can read (OpenMessaging Benchmark's `ensureTopicsAreReady`), then run
    /// the load, its faults and its backlog phase for `duration` from that instant.
    pub await_consumers: bool,
}

/// What a streaming run hands its consumer: history slices, and the start of the load.
pub enum Streamed<'a> {
    History(&'a [crate::history::HistoryEntry]),
    /// The readiness phase ended at `at` (every entry after this one is at or after it);
    /// `unready` names the groups that were not ready then.
    LoadStart {
        at: Instant,
        unready: &'a [String],
    },
}

/// Record counts of a run, from its history (online in a streaming run).
#[derive(Clone, Debug, Default)]
struct Counts {
    produced: u64,
    /// Sends per producer index (the application's shortfall against its rate).
    sent_by: Vec<u64>,
    acked: u64,
    /// Acknowledged by the end of the safety phase (the produce rate stall and lag details
    /// quote).
    acked_in_load: u64,
    consumed: u64,
    refused: u64,
}

impl Counts {
    fn note(&mut self, entries: &[crate::history::HistoryEntry], safety_end: Instant) {
        for e in entries {
            match e.event {
                HistoryEvent::SendInvoke { producer, .. } => {
                    self.produced += 1;
                    let i = producer as usize;
                    if i >= self.sent_by.len() {
                        self.sent_by.resize(i + 1, 0);
                    }
                    self.sent_by[i] += 1;
                }
                HistoryEvent::SendOk { .. } => {
                    self.acked += 1;
                    if e.at <= safety_end {
                        self.acked_in_load += 1;
                    }
                }
                HistoryEvent::Poll { .. } => self.consumed += 1,
                HistoryEvent::SinkRefused { .. } => self.refused += 1,
                _ => {}
            }
        }
    }
}

/// What a streaming run does with its history as it goes.
struct Stream<'a> {
    consume: &'a mut dyn FnMut(Streamed<'_>),
    counts: Counts,
    safety_end: Instant,
}

/// Runs the world to `until`; a streaming run goes in slices of [`STREAM_SLICE`], handing
/// each slice's history to the drain tracker, the counts and the consumer, then dropping it.
fn advance(
    w: &mut World,
    until: Instant,
    tracker: &mut DrainTracker,
    stream: &mut Option<Stream<'_>>,
) -> RunOutcome {
    let Some(stream) = stream else {
        return w.run_until(until);
    };
    loop {
        let to = (w.now() + STREAM_SLICE).min(until);
        let outcome = w.run_until(to);
        tracker.scan(w.history());
        stream.counts.note(w.history().entries(), stream.safety_end);
        (stream.consume)(Streamed::History(w.history().entries()));
        w.clear_history();
        tracker.history_cleared();
        if outcome != RunOutcome::Reached || to >= until {
            return outcome;
        }
    }
}

/// Everything one seed produced.
#[derive(Debug)]
pub struct RunOutput {
    pub result: SeedResult,
    pub history: Option<History>,
    /// The fault plan drawn for this seed (swarm draw and schedule).
    pub plan: Vec<String>,
    /// Every fault applied, with its time.
    pub fault_log: Vec<String>,
    /// Every fault applied, as data (replay stories, campaign coverage).
    pub faults: Vec<AppliedFault>,
    /// The structured trace (with `TraceLevel::Events`).
    pub trace_events: Vec<TraceEvent>,
    /// How this run names its nodes, topics and groups (the naming service).
    pub names: Names,
    /// The random faults that fired, as scripted faults hitting the same nodes
    /// (`kafsim shrink`).
    pub random_faults: Vec<ScheduledFault>,
    /// Whether the consumers caught up within the drain.
    pub drained: bool,
    /// Per broker (by name): seconds its writers were paused by dirty-page throttling (the
    /// cost model's page cache; all zero without one).
    pub disk_throttled_s: Vec<(String, f64)>,
    /// With [`RunOptions::await_consumers`]: when the load started and which groups were
    /// not ready then.
    pub ready: Option<ReadyOutcome>,
}

/// The nodes of a run, by role.
struct Handles {
    cluster: Cluster,
    producers: Vec<NodeId>,
    /// Per group: its members' nodes.
    groups: Vec<(String, Vec<NodeId>)>,
    /// Per group (same order): its database node, if it declared a sink.
    databases: Vec<Option<NodeId>>,
    /// The operator's admin client, when the scenario schedules an `add-partitions`.
    admin: Option<NodeId>,
    /// With a readiness phase: the release the producers and consumers wait for.
    release: Option<Release>,
}

impl Handles {
    /// The scenario target that names exactly `node` (the controller: the active one).
    fn target_of(&self, node: NodeId) -> Option<Target> {
        let index = |v: &[NodeId]| v.iter().position(|n| *n == node).map(|i| i as u32);
        if let Some(i) = index(&self.cluster.brokers) {
            return Some(Target::Broker(i));
        }
        if self.cluster.controllers.contains(&node) {
            return Some(Target::Controller);
        }
        if let Some(i) = index(&self.producers) {
            return Some(Target::Producer(i));
        }
        if let Some(i) = self.databases.iter().position(|d| *d == Some(node)) {
            return Some(Target::Database {
                group: self.groups[i].0.clone(),
            });
        }
        self.groups.iter().find_map(|(g, members)| {
            index(members).map(|member| Target::Consumer {
                group: g.clone(),
                member,
            })
        })
    }
}

struct View<'a> {
    w: &'a World,
    h: &'a Handles,
}

impl View<'_> {
    fn tp(&self, topic: &str, partition: u32) -> TopicPartition {
        TopicPartition::new(self.h.cluster.topic(topic), partition)
    }
}

impl Resolver for View<'_> {
    fn name(&self, id: NodeId) -> String {
        self.w.name(id).to_string()
    }
    fn brokers(&self) -> Vec<NodeId> {
        self.h.cluster.brokers.clone()
    }
    fn broker(&self, index: u32) -> Option<NodeId> {
        self.h.cluster.brokers.get(index as usize).copied()
    }
    fn leader(&self, topic: &str, partition: u32) -> Option<NodeId> {
        self.h.cluster.leader_of(self.w, self.tp(topic, partition))
    }
    fn followers(&self, topic: &str, partition: u32) -> Vec<NodeId> {
        self.h
            .cluster
            .followers_of(self.w, self.tp(topic, partition))
    }
    fn controller(&self) -> Option<NodeId> {
        self.h
            .cluster
            .active_controller(self.w)
            .or_else(|| self.h.cluster.controllers.first().copied())
    }
    fn consumer(&self, group: &str, member: u32) -> Option<NodeId> {
        self.h
            .groups
            .iter()
            .filter(|(g, _)| g == group)
            .flat_map(|(_, members)| members.iter().copied())
            .nth(member as usize)
    }
    fn consumers(&self) -> Vec<NodeId> {
        self.h
            .groups
            .iter()
            .flat_map(|(_, m)| m.iter().copied())
            .collect()
    }
    fn producer(&self, index: u32) -> Option<NodeId> {
        self.h.producers.get(index as usize).copied()
    }
    fn producers(&self) -> Vec<NodeId> {
        self.h.producers.clone()
    }
    fn database(&self, group: &str) -> Option<NodeId> {
        let i = self.h.groups.iter().position(|(g, _)| g == group)?;
        self.h.databases.get(i).copied().flatten()
    }
    fn is_up(&self, id: NodeId) -> bool {
        self.w.is_up(id)
    }
    fn partitions(&self) -> Vec<(String, u32)> {
        self.h
            .cluster
            .topics
            .iter()
            .filter(|(id, _, _)| *id != self.h.cluster.offsets_topic)
            .flat_map(|(_, name, n)| (0..*n).map(move |p| (name.clone(), p)))
            .collect()
    }
}

/// Whether the faults of `scenario` can take every replica's page cache at once.
fn correlated_power_loss(s: &Scenario) -> bool {
    let random =
        s.faults.random && s.faults.kinds.contains(&FaultKind::PowerLoss) && s.cluster.brokers > 1;
    let scripted = s.faults.schedule.iter().any(|f| match &f.action {
        FaultAction::PowerLoss { target, .. } => {
            matches!(target, Target::AllBrokers | Target::Brokers(_))
        }
        _ => false,
    });
    // Several single-broker power losses can also overlap.
    let several = s
        .faults
        .schedule
        .iter()
        .filter(|f| matches!(f.action, FaultAction::PowerLoss { .. }))
        .count()
        > 1;
    random || scripted || several
}

/// Build the world of one seed.
fn build(p: &Prepared, seed: u64, opts: &RunOptions) -> (World, Handles) {
    let s = &p.scenario;
    let mut config = opts.world.clone().unwrap_or_default();
    config.trace = opts.trace;
    let mut w = World::new(seed, config);
    let spec = ClusterSpec {
        brokers: s.cluster.brokers,
        controllers: 2,
        broker_config: p.broker.clone(),
        topics: s
            .topics
            .iter()
            .map(|t| (t.name.clone(), t.partitions, t.replication_factor))
            .chain(p.transaction_topic())
            .collect(),
    };
    let cluster = build_cluster(&mut w, &spec);
    if !opts.stream {
        invariants::register(
            &mut w,
            &cluster,
            &p.broker,
            InvariantScope {
                correlated_power_loss: correlated_power_loss(s),
            },
        );
    }
    let stop_at = Instant::ZERO + s.duration;
    // A bench's backlog phase (`[bench] backlog`): consumers paused while producers fill,
    // producers stopping when the consumers resume if the workload says so.
    let resume_at = s
        .bench
        .backlog
        .map_or(Instant::ZERO, |b| Instant::ZERO + b.fill);
    let producers_stop_at = match s.bench.backlog {
        Some(b) if b.producers == AfterBacklog::Stop => resume_at,
        _ => stop_at,
    };
    // A readiness phase holds the producers (and starts a backlog phase) at the release.
    let release = (opts.await_consumers && !p.groups.is_empty()).then(Release::default);
    let held = release.is_some();
    let mut producers = Vec::new();
    for pp in &p.producers {
        let spec = ProducerSpec {
            index: pp.index,
            topic: pp.topic,
            rate: pp.rate,
            keys: pp.keys,
            message_size: pp.message_size,
            message_profile: pp.message_profile,
            stop_at: if held {
                Instant::MAX
            } else {
                producers_stop_at
            },
            bootstrap: cluster.brokers.clone(),
            value_base: (pp.index as u64 + 1) << 40,
            transactions: pp.transactions,
            held,
        };
        let config = pp.config.clone();
        let release = release.clone();
        producers.push(w.add_node(
            format!("producer-{}", pp.index),
            move || -> Box<dyn Node> {
                let mut spec = spec.clone();
                // Restarted after the release: the load is on.
                if let Some(r) = release.as_ref().and_then(Release::get) {
                    spec.held = false;
                    spec.stop_at = r.stop_at;
                }
                Box::new(Producer::new(spec, config.clone()))
            },
        ));
    }
    let mut groups: Vec<(String, Vec<NodeId>)> = Vec::new();
    // The database of each group that declared a sink, after every other node so the nodes
    // before it keep their ids.
    let first_database = w.node_count() as u32 + p.groups.iter().map(|g| g.members).sum::<u32>();
    let mut databases: Vec<Option<NodeId>> = Vec::new();
    for g in &p.groups {
        let next = first_database + databases.iter().flatten().count() as u32;
        databases.push(g.has_database.then_some(NodeId(next)));
    }
    for g in &p.groups {
        let mut members = Vec::new();
        // Services sharing one Kafka group: number members across their tables.
        let first: u32 = groups
            .iter()
            .filter(|(name, _)| *name == g.name)
            .map(|(_, m)| m.len() as u32)
            .sum();
        for m in first..first + g.members {
            let spec = ConsumerSpec {
                group_index: g.index,
                member_index: m,
                group: g.kafka_group.clone(),
                topics: g.topics.clone(),
                topic_names: g.topic_names.clone(),
                handler: g.handler.clone(),
                bootstrap: cluster.brokers.clone(),
                dlq_topic: g.dlq,
                database: databases[g.index as usize],
                fetch_paused_until: if held { Instant::ZERO } else { resume_at },
                standalone: g.standalone.clone(),
                produce_to: g.produce_to.clone().map(|mut out| {
                    if out.transactional {
                        // The member slot's own id: a restarted member fences its previous
                        // incarnation's producer.
                        out.producer.transactional_id = Some(format!("{}-{m}", g.kafka_group));
                    }
                    out
                }),
            };
            let config = g.config.clone();
            let release = release.clone();
            members.push(
                w.add_node(format!("{}/{m}", g.name), move || -> Box<dyn Node> {
                    let mut spec = spec.clone();
                    if let Some(r) = release.as_ref().and_then(Release::get) {
                        spec.fetch_paused_until = r.pause_until;
                    }
                    Box::new(Consumer::new(spec, config.clone()))
                }),
            );
        }
        groups.push((g.name.clone(), members));
    }
    for g in p.groups.iter().filter(|g| g.has_database) {
        let (index, kind, latency) = (g.index, g.handler.sink, g.database_latency);
        let id = w.add_node(format!("database:{}", g.name), move || -> Box<dyn Node> {
            Box::new(Database::new(index, kind, latency))
        });
        assert_eq!(
            Some(id),
            databases[g.index as usize],
            "database node ids as planned"
        );
    }
    // The operator's admin client, last of all (only when the script uses it, so every other
    // scenario keeps its node ids and trace).
    let operates = s
        .faults
        .schedule
        .iter()
        .any(|f| matches!(f.action, FaultAction::AddPartitions { .. }));
    let admin = operates.then(|| {
        let controllers = cluster.controllers.clone();
        w.add_node("admin".to_string(), move || -> Box<dyn Node> {
            Box::new(Admin::new(controllers.clone()))
        })
    });
    set_cost_classes(&mut w, &cluster, &producers, &groups);
    (
        w,
        Handles {
            cluster,
            producers,
            groups,
            databases,
            admin,
            release,
        },
    )
}

/// Tell the cost model what each node is (it charges brokers and clients differently; without
/// a CPU model in the world config this changes nothing).
fn set_cost_classes(
    w: &mut World,
    cluster: &Cluster,
    producers: &[NodeId],
    groups: &[(String, Vec<NodeId>)],
) {
    use crate::cost::CostClass;
    let classes: Vec<(NodeId, CostClass)> = cluster
        .brokers
        .iter()
        .map(|&n| (n, CostClass::Broker))
        .chain(
            cluster
                .controllers
                .iter()
                .map(|&n| (n, CostClass::Controller)),
        )
        .chain(producers.iter().map(|&n| (n, CostClass::Producer)))
        .chain(
            groups
                .iter()
                .flat_map(|(_, m)| m.iter().map(|&n| (n, CostClass::Consumer))),
        )
        .collect();
    for (node, class) in classes {
        w.set_cost_class(node, class);
    }
}

fn apply(w: &mut World, h: &mut Handles, op: &Op) {
    match op {
        Op::Crash(nodes) => nodes.iter().for_each(|n| w.crash(*n)),
        Op::Restart(nodes) => nodes.iter().for_each(|n| w.restart(*n)),
        Op::PowerLoss { nodes, tear } => nodes.iter().for_each(|n| w.power_loss(*n, *tear)),
        Op::Pause(nodes) => nodes.iter().for_each(|n| w.pause(*n)),
        Op::Resume(nodes) => nodes.iter().for_each(|n| w.resume(*n)),
        Op::Partition(groups) => {
            for (i, a) in groups.iter().enumerate() {
                for b in &groups[i + 1..] {
                    w.net().partition(a, b);
                }
            }
        }
        Op::PartitionOneWay(from, to) => w.net().partition_one_way(from, to),
        Op::Bridge { a, bridge, b } => w.net().bridge(a, *bridge, b),
        Op::Heal => w.net().heal(),
        Op::SlowLink { nodes, latency } => {
            let all: Vec<NodeId> = w.node_ids().collect();
            for &n in nodes {
                for &m in &all {
                    if m != n {
                        w.net().slow_link(n, m, *latency);
                    }
                }
            }
        }
        Op::SlowDisk { nodes, factor } => {
            nodes.iter().for_each(|n| w.set_disk_slowdown(*n, *factor))
        }
        Op::Slowdown { nodes, factor } => nodes.iter().for_each(|n| w.set_slowdown(*n, *factor)),
        Op::AddPartitions { topic, count } => {
            // The admin asks for the new total (`NewPartitions.increaseTo`); the run's view of
            // the topic (drain, leader targets, divergence) grows with it at once.
            let Some(t) = h.cluster.topics.iter_mut().find(|t| &t.1 == topic) else {
                return;
            };
            t.2 += count;
            let (id, total) = (t.0, t.2);
            let admin = h.admin.expect("an add-partitions run has an admin client");
            w.signal(admin, Admin::command_timer(id, total));
        }
    }
}

/// Lift every fault: links healed, every node resumed or restarted at normal speed.
fn heal(w: &mut World) {
    w.net().heal();
    let ids: Vec<NodeId> = w.node_ids().collect();
    for id in ids {
        match w.state(id) {
            NodeState::Paused => w.resume(id),
            NodeState::Down => w.restart(id),
            NodeState::Up => {}
        }
        w.set_slowdown(id, 1.0);
        w.set_disk_slowdown(id, 1.0);
    }
}

impl Prepared {
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

/// Run one seed of a prepared scenario.
pub fn run_seed(p: &Prepared, seed: u64, opts: &RunOptions) -> RunOutput {
    run_seed_streaming(p, seed, opts, &mut |_| {})
}

/// The readiness phase ([`crate::readiness`]): run until every member is positioned, have
/// every producer send a probe, run until every group reading a produced topic has read;
/// each step gives up after [`readiness::READY_TIMEOUT`]. Returns when the load starts.
fn await_consumers(
    p: &Prepared,
    w: &mut World,
    h: &Handles,
    tracker: &mut DrainTracker,
    stream: &mut Option<Stream<'_>>,
    budget_ok: &mut bool,
) -> ReadyOutcome {
    let produced: Vec<TopicId> = p.producers.iter().map(|pp| pp.topic).collect();
    // Groups that must read a probe: those subscribed to a produced topic (a standalone
    // consumer may not own the probe's partition).
    let must_read: Vec<bool> = p
        .groups
        .iter()
        .map(|g| g.standalone.is_none() && g.topics.iter().any(|t| produced.contains(t)))
        .collect();
    let unpositioned = |w: &World| -> Vec<String> {
        h.groups
            .iter()
            .filter(|(_, members)| !members.iter().all(|m| readiness::positioned(w, *m)))
            .map(|(name, _)| format!("{name}: not every member had its partitions and a position"))
            .collect()
    };
    let unread = |tracker: &DrainTracker| -> Vec<String> {
        p.groups
            .iter()
            .zip(&must_read)
            .filter(|(g, must)| **must && tracker.records_read(g.index) == 0)
            .map(|(g, _)| format!("{}: did not read the probe records", g.name))
            .collect()
    };
    let mut probed = false;
    let mut deadline = w.now() + readiness::READY_TIMEOUT;
    loop {
        let waiting = if probed {
            unread(tracker)
        } else {
            unpositioned(w)
        };
        if waiting.is_empty() && !probed {
            probed = true;
            deadline = w.now() + readiness::READY_TIMEOUT;
            for &n in &h.producers {
                w.signal(n, Producer::probe_timer());
            }
            continue;
        }
        if waiting.is_empty() || w.now() >= deadline || !*budget_ok {
            return ReadyOutcome {
                load_start: w.now(),
                unready: waiting,
            };
        }
        let next = w.now() + readiness::READY_POLL;
        if advance(w, next, tracker, stream) != RunOutcome::Reached {
            *budget_ok = false;
        }
        tracker.scan(w.history());
    }
}

/// Run one seed; with [`RunOptions::stream`], `consume` gets every history entry once, in
/// order, in slices as the run goes (and the output has no history).
pub fn run_seed_streaming(
    p: &Prepared,
    seed: u64,
    opts: &RunOptions,
    consume: &mut dyn FnMut(Streamed<'_>),
) -> RunOutput {
    let wall = std::time::Instant::now();
    let s = &p.scenario;
    let (mut w, mut h) = build(p, seed, opts);
    let mut nemesis = Nemesis::plan(&s.faults, s.duration, rng_for(seed, stream::NEMESIS));
    let plan = nemesis.describe_plan();
    let mut violations: Vec<Violation> = Vec::new();
    let mut safety_end = Instant::ZERO + s.duration;
    let mut budget_ok = true;
    let mut groups = group_infos(p, &h);
    let mut tracker = DrainTracker::default();
    let mut stream = opts.stream.then_some(Stream {
        consume,
        counts: Counts::default(),
        safety_end,
    });

    // A bench's readiness phase: the load, its faults and its backlog phase start when
    // every group can read.
    let mut ready = None;
    if let Some(release) = h.release.clone() {
        let outcome = await_consumers(p, &mut w, &h, &mut tracker, &mut stream, &mut budget_ok);
        let at = outcome.load_start;
        let offset = at.saturating_since(Instant::ZERO);
        let (stop_at, pause_until) = match s.bench.backlog {
            Some(b) if b.producers == AfterBacklog::Stop => (at + b.fill, at + b.fill),
            Some(b) => (at + s.duration, at + b.fill),
            None => (at + s.duration, at),
        };
        release.set(Released {
            at,
            stop_at,
            pause_until,
        });
        for &n in &h.producers {
            w.signal(n, Producer::release_timer(stop_at));
        }
        if pause_until > at {
            for (_, members) in &h.groups {
                for &m in members {
                    w.signal(m, Consumer::pause_timer(pause_until));
                }
            }
        }
        nemesis.shift(offset);
        safety_end = at + s.duration;
        if let Some(stream) = &mut stream {
            stream.safety_end = safety_end;
            (stream.consume)(Streamed::LoadStart {
                at,
                unready: &outcome.unready,
            });
        }
        ready = Some(outcome);
    }

    // Safety phase: load and faults, with a replica divergence check and a lag sample every
    // second (a divergence below the HW can be repaired later by truncation, so the end alone
    // would miss it).
    let mut divergence = DivergenceCheck::default();
    while budget_ok && w.now() < safety_end {
        let tick = (w.now() + DIVERGENCE_EVERY).min(safety_end);
        let next = nemesis.next_at().filter(|t| *t < tick).unwrap_or(tick);
        if advance(&mut w, next, &mut tracker, &mut stream) == RunOutcome::BudgetExhausted {
            budget_ok = false;
            break;
        }
        if nemesis.next_at().is_some_and(|t| t <= next) {
            let ops = nemesis.fire(next, &View { w: &w, h: &h });
            for op in &ops {
                if let Op::Crash(nodes) | Op::PowerLoss { nodes, .. } = op {
                    for n in nodes {
                        tracker.crashed_at.insert(*n, w.now());
                    }
                }
                apply(&mut w, &mut h, op);
                if matches!(op, Op::AddPartitions { .. }) {
                    groups = group_infos(p, &h);
                }
            }
        }
        if next == tick {
            if stream.is_none() {
                violations.extend(divergence.check(&w, &h.cluster));
            }
            tracker.scan(w.history());
            let _ = tracker.observe(&w, &h.cluster, &groups);
        }
    }

    // Heal, then drain.
    heal(&mut w);
    let heal_at = w.now();
    let mut fault_log = std::mem::take(&mut nemesis.log);
    let faults = std::mem::take(&mut nemesis.applied);
    // The fault mix: a nemesis line is "<time> <action> ..." (see `nemesis::describe`).
    let mut fault_mix: BTreeMap<String, u64> = BTreeMap::new();
    for line in &fault_log {
        if let Some(action) = line.split_whitespace().nth(1) {
            *fault_mix.entry(action.to_string()).or_insert(0) += 1;
        }
    }
    fault_log.push(format!("{heal_at} heal: all faults lifted, every node up"));
    tracker.scan(w.history());
    tracker.healed(heal_at);
    let liveness = p.liveness();
    let drain_end = heal_at
        + match s.drain {
            Drain::Auto => liveness.cap,
            Drain::Bound(d) => d,
        };
    let mut stalled: Option<StallCause> = None;
    while stalled.is_none() {
        if !budget_ok {
            stalled = Some(StallCause::Budget(w.config().event_budget));
            break;
        }
        if tracker.observe(&w, &h.cluster, &groups).is_ok() {
            break;
        }
        if w.now() >= drain_end {
            stalled = Some(match s.drain {
                Drain::Auto => StallCause::Cap(liveness.cap),
                Drain::Bound(d) => StallCause::Bound(d),
            });
            break;
        }
        if s.drain == Drain::Auto
            && w.now().saturating_since(tracker.last_progress_at()) >= liveness.window
        {
            stalled = Some(StallCause::NoProgress(liveness.clone()));
            break;
        }
        let next = (w.now() + DRAIN_POLL).min(drain_end);
        budget_ok = advance(&mut w, next, &mut tracker, &mut stream) == RunOutcome::Reached;
        tracker.scan(w.history());
    }
    let drained = stalled.is_none();
    let load_seconds = s.duration.as_secs_f64();
    let mut history = w.take_history();
    if stream.is_none() {
        // The final read of every consume-transform-produce group's output topic.
        for g in p.groups.iter() {
            if let Some(out) = &g.produce_to {
                let partitions = partitions_of(&h, out.topic);
                crate::output::final_read(&w, &h.cluster, g.index, &partitions, &mut history);
            }
        }
    }
    let counts = match &stream {
        Some(stream) => stream.counts.clone(),
        None => {
            let mut counts = Counts::default();
            counts.note(history.entries(), safety_end);
            counts
        }
    };
    let produce_rate = counts.acked_in_load as f64 / load_seconds;
    if let Some(cause) = &stalled {
        let cx = StallContext {
            w: &w,
            cluster: &h.cluster,
            producers: &h.producers,
            groups: &groups,
            produce_rate,
        };
        violations.push(Violation::new(
            ViolationKind::Stall,
            w.now(),
            tracker.explain(cause, &cx),
        ));
    }
    if let Some(within) = s.expect.catch_up_within {
        violations.extend(lag_violations(
            &tracker,
            &groups,
            within,
            heal_at,
            w.now(),
            produce_rate,
        ));
    }

    // Final checks.
    if stream.is_none() {
        violations.extend(divergence.check(&w, &h.cluster));
    }
    violations.extend(w.violations().iter().cloned());
    let checks: Vec<GroupCheck> = p
        .groups
        .iter()
        .map(|g| GroupCheck {
            group: g.index,
            name: g.name.clone(),
            topics: g.topics.clone(),
            read_committed: g.read_committed,
            has_sink: true,
            partitions: g.standalone.as_ref().map(|s| s.partitions.clone()),
            output: g.produce_to.as_ref().map(|o| o.topic),
        })
        .collect();
    let group_names: Vec<String> = p.groups.iter().map(|g| g.name.clone()).collect();
    let names = Names::of_world(&w, &h.cluster.topic_names(), &group_names);
    let mut check_config = CheckConfig::new(w.now(), checks).with_names(names.clone());
    check_config.ignoring_errors = p
        .producers
        .iter()
        .filter(|producer| producer.config.on_error == OnError::Ignore)
        .map(|producer| producer.index)
        .collect();
    check_config.keyless_partitioners = p
        .producers
        .iter()
        .filter(|producer| !producer.config.partitioner.hashes_keys())
        .map(|producer| (producer.index, producer.config.partitioner.name()))
        .collect();
    let found = if stream.is_some() {
        Vec::new()
    } else {
        check_history(&history, &check_config)
    };
    // Without a drain, what was never read is a consequence of the stall, not a verdict.
    violations.extend(
        found.into_iter().filter(|v| {
            drained || !matches!(v.kind, ViolationKind::Unseen | ViolationKind::SinkLoss)
        }),
    );
    // Requests delivered after their client gave them up explain transactional anomalies.
    crate::late::explain(&mut violations, w.late_requests(), &history, &names);
    violations.sort_by(crate::checker::violation_order);

    let mut stats = RunStats {
        events: w.stats().events,
        sim_seconds: w.now().as_secs_f64(),
        load_seconds,
        sim_nanos: w.now().as_nanos(),
        load_nanos: kafsim_engine::time::duration_nanos(s.duration),
        records_failed: tracker.records_failed,
        records_unknown: tracker.records_unknown,
        faults: fault_mix,
        ..RunStats::default()
    };
    stats.records_produced = counts.produced;
    stats.records_acked = counts.acked;
    stats.records_consumed = counts.consumed;
    stats.records_refused = counts.refused;
    for g in &groups {
        stats.groups.insert(
            g.name.clone(),
            GroupStats {
                peak_lag: tracker.peak_lag.get(&g.index).copied().unwrap_or(0),
                catch_up_seconds: tracker.catch_up_seconds(g.index),
                records_consumed: tracker.records_read(g.index),
            },
        );
    }
    for pr in &p.producers {
        let sent = counts.sent_by.get(pr.index as usize).copied().unwrap_or(0);
        stats
            .producers
            .insert(names.producer(pr.index), pr.stats(sent, load_seconds));
    }
    stats.coverage = run_coverage(s, &w, &h, &faults, &history, heal_at);
    stats.wall_seconds = wall.elapsed().as_secs_f64();
    let disk_throttled_s = h
        .cluster
        .brokers
        .iter()
        .map(|&b| {
            let throttled = w.disk(b).throttled();
            (w.name(b).to_string(), throttled.as_secs_f64())
        })
        .collect();
    RunOutput {
        disk_throttled_s,
        result: SeedResult {
            seed,
            violations,
            stats,
            trace_hash: w.trace_hash(),
        },
        history: (opts.keep_history && !opts.stream).then_some(history),
        plan,
        fault_log,
        faults,
        trace_events: w.trace_events().to_vec(),
        names,
        random_faults: crate::script::schedule_of(&nemesis.fired, &|n| h.target_of(n)),
        drained,
        ready,
    }
}

/// The run's coverage: requested fault kinds fired and affecting clients, states reached.
fn run_coverage(
    s: &Scenario,
    w: &World,
    h: &Handles,
    faults: &[AppliedFault],
    history: &History,
    heal_at: Instant,
) -> Coverage {
    let mut requested: Vec<FaultKind> = Vec::new();
    if s.faults.random {
        requested.extend(s.faults.kinds.iter().copied());
    }
    requested.extend(s.faults.schedule.iter().map(|f| f.action.kind()));
    let producer_epoch_bumps = h
        .producers
        .iter()
        .filter_map(|p| w.node::<Producer>(*p))
        .map(|p| p.stats().epoch_bumps)
        .sum();
    coverage::of_run(&RunFacts {
        requested: &requested,
        faults,
        history,
        heal_at,
        producer_epoch_bumps,
    })
}

/// Every group, with the partitions it consumes and its members' nodes.
fn group_infos(p: &Prepared, h: &Handles) -> Vec<GroupInfo> {
    p.groups
        .iter()
        .zip(&h.groups)
        .map(|(g, (_, members))| GroupInfo {
            index: g.index,
            name: g.name.clone(),
            partitions: match &g.standalone {
                Some(s) => s.partitions.clone(),
                None => g
                    .topics
                    .iter()
                    .flat_map(|&topic| {
                        let n = h
                            .cluster
                            .topics
                            .iter()
                            .find(|t| t.0 == topic)
                            .map_or(0, |t| t.2);
                        (0..n).map(move |partition| TopicPartition::new(topic, partition))
                    })
                    .collect(),
            },
            members: members.clone(),
            database: h.databases.get(g.index as usize).copied().flatten(),
            outputs: g
                .produce_to
                .as_ref()
                .map(|o| partitions_of(h, o.topic))
                .unwrap_or_default(),
        })
        .collect()
}

/// Every partition `topic` has now.
fn partitions_of(h: &Handles, topic: TopicId) -> Vec<TopicPartition> {
    let n = h
        .cluster
        .topics
        .iter()
        .find(|t| t.0 == topic)
        .map_or(0, |t| t.2);
    (0..n)
        .map(|partition| TopicPartition::new(topic, partition))
        .collect()
}

/// `lag` violations: groups that caught up later than `within` after the heal, or never.
fn lag_violations(
    tracker: &DrainTracker,
    groups: &[GroupInfo],
    within: Duration,
    heal_at: Instant,
    now: Instant,
    produce_rate: f64,
) -> Vec<Violation> {
    let objective = within.as_secs_f64();
    groups
        .iter()
        .filter_map(|g| {
            let peak = tracker.peak_lag.get(&g.index).copied().unwrap_or(0);
            let (at, how) = match tracker.catch_up_seconds(g.index) {
                Some(t) if t <= objective => return None,
                Some(t) => (heal_at + Duration::from_secs_f64(t), format!("caught up {t:.1}s after the heal")),
                None => (now, "never caught up after the heal".to_string()),
            };
            Some(Violation::new(
                ViolationKind::Lag,
                at,
                format!(
                    "group {} {how}; objective catch_up_within = {objective:.1}s; peak lag {peak} records; read {:.0} records/s after the heal, produced {produce_rate:.0} records/s during the load",
                    g.name,
                    tracker.drain_rate(g.index, at),
                ),
            ))
        })
        .collect()
}

/// Whether `kind` counts as a failure in `scenario` (not in `[expect].allow`).
pub fn is_failure(scenario: &Scenario, kind: ViolationKind) -> bool {
    !scenario.expect.allow.contains(&kind)
}
