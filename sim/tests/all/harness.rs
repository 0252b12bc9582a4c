//! The one way the sim tests build a cluster: `Harness::new(seed)` is a world of that seed
//! with one controller, three brokers and topic "t" (one partition, replication factor 3),
//! and each builder call changes one thing, so a test names only what it is about:
//!
//! ```ignore
//! let (mut w, c) = Harness::new(21).broker_config(config).invariants(scope).build();
//! ```
//!
//! It replaces the `World::new` + `build_cluster` + `invariants::register` block the tests
//! each wrote (issue 18): a test that needs another cluster shape says so in one line.
#![allow(dead_code)]

use kafsim_engine::broker::config::BrokerConfig;
use kafsim_engine::history::HistoryEvent;
use kafsim_engine::producer::{Producer, ProducerConfig, ProducerSpec};
use kafsim_engine::protocol::ErrorCode;
use kafsim_engine::{Duration, Instant, Node, NodeId, TopicId};
use kafsim_sim::cluster::{build_cluster, Cluster, ClusterSpec};
use kafsim_sim::invariants::{self, InvariantScope};
use kafsim_sim::network::LinkConfig;
use kafsim_sim::world::{World, WorldConfig};

/// A cluster to build, and the world to build it in.
pub struct Harness {
    seed: u64,
    world: WorldConfig,
    brokers: u32,
    controllers: u32,
    broker_config: BrokerConfig,
    /// `offsets.topic.num.partitions`, applied over `broker_config`'s (1: a group's
    /// coordinator is always partition 0, and a small cluster starts fast).
    offsets_partitions: u32,
    /// (name, partitions, replication factor); topic "t" first.
    topics: Vec<(String, u32, u32)>,
    invariants: Option<InvariantScope>,
}

impl Harness {
    pub fn new(seed: u64) -> Harness {
        Harness {
            seed,
            world: WorldConfig::default(),
            brokers: 3,
            controllers: 1,
            broker_config: BrokerConfig::default(),
            offsets_partitions: 1,
            topics: vec![("t".to_string(), 1, 3)],
            invariants: None,
        }
    }

    pub fn world_config(mut self, world: WorldConfig) -> Harness {
        self.world = world;
        self
    }

    pub fn brokers(mut self, brokers: u32) -> Harness {
        self.brokers = brokers;
        self
    }

    /// 2: an active controller with a standby.
    pub fn controllers(mut self, controllers: u32) -> Harness {
        self.controllers = controllers;
        self
    }

    /// Partitions of topic "t".
    pub fn partitions(mut self, partitions: u32) -> Harness {
        self.topics[0].1 = partitions;
        self
    }

    /// Replication factor of topic "t".
    pub fn replication_factor(mut self, rf: u32) -> Harness {
        self.topics[0].2 = rf;
        self
    }

    /// Another topic besides "t".
    pub fn topic(mut self, name: &str, partitions: u32, rf: u32) -> Harness {
        self.topics.push((name.to_string(), partitions, rf));
        self
    }

    /// `min.insync.replicas` of the brokers' configuration (call after
    /// [`Harness::broker_config`], which replaces the whole configuration).
    pub fn min_insync_replicas(mut self, n: u32) -> Harness {
        self.broker_config.min_insync_replicas = n;
        self
    }

    /// The brokers' configuration (`offsets.topic.num.partitions` is the harness's).
    pub fn broker_config(mut self, config: BrokerConfig) -> Harness {
        self.broker_config = config;
        self
    }

    pub fn offsets_partitions(mut self, partitions: u32) -> Harness {
        self.offsets_partitions = partitions;
        self
    }

    /// Check the broker invariants after every event (as a run does), within `scope`.
    pub fn invariants(mut self, scope: InvariantScope) -> Harness {
        self.invariants = Some(scope);
        self
    }

    /// The world, with the cluster added (and its invariants registered).
    pub fn build(self) -> (World, Cluster) {
        let mut w = World::new(self.seed, self.world);
        // The harness owns `offsets.topic.num.partitions`: a config that set it would be
        // silently overridden.
        let default_offsets = BrokerConfig::default().offsets_topic_partitions;
        assert!(
            [default_offsets, self.offsets_partitions]
                .contains(&self.broker_config.offsets_topic_partitions),
            "set offsets.topic.num.partitions with Harness::offsets_partitions"
        );
        let mut broker_config = self.broker_config.clone();
        broker_config.offsets_topic_partitions = self.offsets_partitions;
        let spec = ClusterSpec {
            brokers: self.brokers,
            controllers: self.controllers,
            broker_config,
            topics: self.topics,
        };
        let c = build_cluster(&mut w, &spec);
        if let Some(scope) = self.invariants {
            invariants::register(&mut w, &c, &self.broker_config, scope);
        }
        (w, c)
    }
}

/// A world whose every link takes exactly `latency` (no jitter): tests that count
/// round trips.
pub fn fixed_latency(latency: Duration) -> WorldConfig {
    WorldConfig {
        link: LinkConfig {
            latency,
            jitter: Duration::ZERO,
            ..LinkConfig::default()
        },
        ..WorldConfig::default()
    }
}

/// Add `producer-0`, an engine producer of `config` sending to topic 0 of `c` at `rate`
/// records/s over `keys` keys (0: none) until `stop_ms`; returns its node.
pub fn add_producer(
    w: &mut World,
    c: &Cluster,
    config: ProducerConfig,
    rate: f64,
    keys: u32,
    stop_ms: u64,
) -> NodeId {
    let spec = ProducerSpec {
        index: 0,
        topic: TopicId(0),
        rate: Some(rate),
        keys,
        message_size: 100,
        message_profile: Default::default(),
        stop_at: Instant::from_millis(stop_ms),
        bootstrap: c.brokers.clone(),
        value_base: 0,
        transactions: None,
        held: false,
        start_phase: Default::default(),
    };
    w.add_node("producer-0", move || {
        Box::new(Producer::new(spec.clone(), config.clone())) as Box<dyn Node>
    })
}

/// How many sends of the run failed definitely with `error` (`SendFail`).
pub fn send_failures(w: &World, error: ErrorCode) -> usize {
    w.history()
        .entries()
        .filter(|e| matches!(e.event, HistoryEvent::SendFail { error: e, .. } if e == error))
        .count()
}
