//! Build a Kafka cluster in a [`World`]: controller nodes, broker nodes and the topics the
//! controller creates at its first start (`__consumer_offsets` last). Used by tests and by
//! the campaign runner; it only adds nodes, so faults and clients are the caller's business.
//!
//! Node ids are assigned in order: controllers first, then brokers.

use crate::names::Names;
use crate::world::World;
use kafsim_engine::broker::config::BrokerConfig;
use kafsim_engine::broker::{Broker, BrokerIdentity};
use kafsim_engine::controller::{Controller, ControllerConfig};
use kafsim_engine::protocol::NewTopic;
use kafsim_engine::{Node, NodeId, TopicId, TopicPartition};

/// Kafka's internal topic of committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Kafka's internal topic of transaction coordinator state. A cluster has one only if its
/// spec lists it (with `transaction.state.log.num.partitions` partitions and a replication
/// factor of `transaction.state.log.replication.factor`), as Kafka creates it on first use.
pub const TRANSACTION_TOPIC: &str = "__transaction_state";

#[derive(Clone, Debug)]
pub struct ClusterSpec {
    pub brokers: u32,
    /// The controllers: a metadata quorum of 1 to 5 voters (2: an active controller and a
    /// standby, which both must be up for metadata to change).
    pub controllers: u32,
    pub broker_config: BrokerConfig,
    /// (name, partitions, replication factor).
    pub topics: Vec<(String, u32, u32)>,
}

#[derive(Clone, Debug)]
pub struct Cluster {
    pub controllers: Vec<NodeId>,
    pub brokers: Vec<NodeId>,
    /// (id, name, partitions), `__consumer_offsets` last.
    pub topics: Vec<(TopicId, String, u32)>,
    pub offsets_topic: TopicId,
}

/// Add the cluster's nodes to `w`. Topics get ids 0.. in spec order; `__consumer_offsets`
/// gets the next id, `offsets.topic.num.partitions` partitions and a replication factor of
/// `offsets.topic.replication.factor` capped at the broker count (as Kafka's test clusters).
pub fn build_cluster(w: &mut World, spec: &ClusterSpec) -> Cluster {
    assert!(spec.brokers >= 1, "a cluster needs a broker");
    // KRaft quorums of one to five voters (three or five in production: a majority of the
    // controllers must be up for metadata to change).
    assert!(
        (1..=5).contains(&spec.controllers),
        "1 to 5 controllers, not {}",
        spec.controllers
    );
    let first = w.node_count() as u32;
    let controllers: Vec<NodeId> = (0..spec.controllers).map(|i| NodeId(first + i)).collect();
    let brokers: Vec<NodeId> = (0..spec.brokers)
        .map(|i| NodeId(first + spec.controllers + i))
        .collect();
    let mut topics: Vec<(TopicId, String, u32)> = spec
        .topics
        .iter()
        .enumerate()
        .map(|(i, (name, parts, _))| (TopicId(i as u32), name.clone(), *parts))
        .collect();
    let offsets_topic = TopicId(topics.len() as u32);
    let transaction_topic = topics
        .iter()
        .find(|(_, name, _)| name == TRANSACTION_TOPIC)
        .map(|(id, _, _)| *id);
    let mut broker_config = spec.broker_config.clone();
    // The brokers' replica fetchers assign partitions by the topic name's Java hash.
    broker_config.topic_name_hashes = topics
        .iter()
        .map(|(id, name, _)| (*id, kafsim_engine::coordinator::java_string_hash(name)))
        .collect();
    broker_config.topic_name_hashes.insert(
        offsets_topic,
        kafsim_engine::coordinator::java_string_hash(OFFSETS_TOPIC),
    );
    let cfg = &broker_config;
    topics.push((
        offsets_topic,
        OFFSETS_TOPIC.to_string(),
        cfg.offsets_topic_partitions,
    ));
    let mut new_topics: Vec<NewTopic> = spec
        .topics
        .iter()
        .enumerate()
        .map(|(i, (_, parts, rf))| NewTopic {
            topic: TopicId(i as u32),
            partitions: *parts,
            replication_factor: *rf,
        })
        .collect();
    new_topics.push(NewTopic {
        topic: offsets_topic,
        partitions: cfg.offsets_topic_partitions,
        replication_factor: cfg.offsets_topic_replication_factor.min(spec.brokers),
    });
    for (i, id) in controllers.iter().enumerate() {
        let config = ControllerConfig {
            controllers: controllers.clone(),
            brokers: brokers.clone(),
            topics: new_topics.clone(),
            broker: cfg.clone(),
        };
        let got = w.add_node(format!("controller-{i}"), move || {
            Box::new(Controller::new(config.clone())) as Box<dyn Node>
        });
        assert_eq!(got, *id, "node ids must be assigned in order");
    }
    for (i, id) in brokers.iter().enumerate() {
        let config = cfg.clone();
        let identity = BrokerIdentity {
            controllers: controllers.clone(),
            offsets_topic,
            transaction_topic,
        };
        let got = w.add_node(format!("broker-{i}"), move || {
            Box::new(Broker::new(config.clone(), identity.clone())) as Box<dyn Node>
        });
        assert_eq!(got, *id, "node ids must be assigned in order");
    }
    Cluster {
        controllers,
        brokers,
        topics,
        offsets_topic,
    }
}

impl Cluster {
    /// The broker that leads `tp` in the highest leader epoch among brokers that are up and
    /// believe they lead it (a paused deposed leader may still believe so; it loses here).
    pub fn leader_of(&self, w: &World, tp: TopicPartition) -> Option<NodeId> {
        self.brokers
            .iter()
            .filter(|b| w.is_up(**b))
            .filter_map(|b| {
                let p = w.node::<Broker>(*b)?.partition(tp)?;
                p.is_leader().then(|| (p.leader_epoch().unwrap_or(0), *b))
            })
            .max()
            .map(|(_, b)| b)
    }

    /// Replicas of `tp` other than its current leader (by the leader's metadata, else any
    /// broker's).
    pub fn followers_of(&self, w: &World, tp: TopicPartition) -> Vec<NodeId> {
        let leader = self.leader_of(w, tp);
        let source = leader.into_iter().chain(self.brokers.iter().copied());
        let replicas = source
            .filter_map(|b| {
                w.node::<Broker>(b)?
                    .metadata(tp)
                    .map(|s| s.replicas.clone())
            })
            .next()
            .unwrap_or_default();
        replicas
            .into_iter()
            .filter(|r| Some(*r) != leader)
            .collect()
    }

    /// The up controller that is active with the highest controller epoch.
    pub fn active_controller(&self, w: &World) -> Option<NodeId> {
        self.controllers
            .iter()
            .filter(|c| w.is_up(**c))
            .filter_map(|c| {
                let ctl = w.node::<Controller>(*c)?;
                ctl.is_active().then(|| (ctl.state().controller_epoch, *c))
            })
            .max()
            .map(|(_, c)| c)
    }

    /// Id of the topic named `name`.
    pub fn topic(&self, name: &str) -> TopicId {
        self.topics
            .iter()
            .find(|(_, n, _)| n == name)
            .unwrap_or_else(|| panic!("no topic {name}"))
            .0
    }

    /// Topic names by id (for [`crate::names::Names`]).
    pub fn topic_names(&self) -> Vec<String> {
        let mut names = vec![String::new(); self.topics.len()];
        for (id, name, _) in &self.topics {
            if let Some(slot) = names.get_mut(id.0 as usize) {
                *slot = name.clone();
            }
        }
        names
    }

    /// The run's naming service as far as the cluster knows it (nodes and topics).
    pub fn names(&self, w: &World) -> Names {
        Names::of_world(w, &self.topic_names(), &[])
    }

    /// Every partition of the user topics (not `__consumer_offsets`).
    pub fn user_partitions(&self) -> Vec<TopicPartition> {
        self.topics
            .iter()
            .filter(|(t, _, _)| *t != self.offsets_topic)
            .flat_map(|(t, _, n)| (0..*n).map(move |p| TopicPartition::new(*t, p)))
            .collect()
    }
}
