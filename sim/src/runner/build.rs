//! One seed's [`World`] built from a [`Prepared`] scenario: the cluster, producers,
//! consumers and database, the CPU cost classes, and the nemesis's view of the nodes
//! ([`View`], a [`Resolver`]) through which faults are applied and healed. Apart from the
//! phases of a run because building is where node ids are handed out and named, once.

use super::{Prepared, RunOptions};
use crate::cluster::{build_cluster, Cluster, ClusterSpec};
use crate::database::Database;
use crate::invariants::{self, InvariantScope};
use crate::nemesis::{Op, Resolver};
use crate::readiness::Release;
use crate::scenario::{AfterBacklog, FaultAction, FaultKind, Scenario, Target};
use crate::world::{NodeState, World};
use kafsim_engine::admin::Admin;
use kafsim_engine::consumer::{Consumer, ConsumerSpec};
use kafsim_engine::controller::Controller;
use kafsim_engine::producer::{Producer, ProducerSpec};
use kafsim_engine::{Duration, Instant, Node, NodeId, TopicPartition};
use rand::Rng;

/// The span of the producers' start phases (see [`ProducerSpec::start_phase`]).
const STAGGER: Duration = Duration::from_secs(1);

/// The nodes of a run, by role.
pub(super) struct Handles {
    pub(super) cluster: Cluster,
    pub(super) producers: Vec<NodeId>,
    /// Per producer (same order): its application's start phase, what its rate could not ask
    /// for at the start of the load.
    pub(super) phases: Vec<Duration>,
    /// Per group: its members' nodes.
    pub(super) groups: Vec<(String, Vec<NodeId>)>,
    /// Per group (same order): its database node, if it declared a sink.
    pub(super) databases: Vec<Option<NodeId>>,
    /// The operator's admin client, when the scenario schedules an `add-partitions`.
    pub(super) admin: Option<NodeId>,
    /// With a readiness phase: the release the producers and consumers wait for.
    pub(super) release: Option<Release>,
}

impl Handles {
    /// The scenario target that names exactly `node` (the controller: the active one).
    pub(super) fn target_of(&self, node: NodeId) -> Option<Target> {
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

pub(super) struct View<'a> {
    pub(super) w: &'a World,
    pub(super) h: &'a Handles,
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
    fn named_leader(&self, topic: &str, partition: u32) -> Option<Option<NodeId>> {
        let controller = self.h.cluster.active_controller(self.w)?;
        let state = self.w.node::<Controller>(controller)?.state();
        Some(state.partition(self.tp(topic, partition))?.leader)
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
pub(super) fn build(p: &Prepared, seed: u64, opts: &RunOptions) -> (World, Handles) {
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
    let mut start_phases = Vec::new();
    // Each producer's application makes its first send at a random instant of its first
    // second, so that neither the producers nor a fault script at a round time are in step
    // with one batch cycle in every seed (linger and flush timers, up to kafka-go's 1 s
    // BatchTimeout, follow the sends). Benchmarks (their own cost model, readiness phase)
    // start in step, as OpenMessaging Benchmark's workers do.
    let mut phases = crate::seed::rng_for(seed, crate::seed::stream::PRODUCER_PHASE);
    let staggered = opts.world.is_none() && !held && !opts.producers_in_step;
    for pp in &p.producers {
        let start_phase = if staggered && pp.rate.is_some() {
            Duration::from_nanos(phases.gen_range(0..STAGGER.as_nanos() as u64))
        } else {
            Duration::ZERO
        };
        start_phases.push(start_phase);
        let spec = ProducerSpec {
            start_phase,
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
            let mut config = g.config.clone();
            // Static membership: member M is instance `<group.instance.id>-M`, as a
            // StatefulSet names its pods (numbered across tables that share the group).
            config.group_instance_id = config.group_instance_id.map(|id| format!("{id}-{m}"));
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
            phases: start_phases,
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

pub(super) fn apply(w: &mut World, h: &mut Handles, op: &Op) {
    match op {
        Op::Crash(nodes) => nodes.iter().for_each(|n| w.crash(*n)),
        Op::Restart(nodes) => {
            for &n in nodes {
                w.restart(n);
                // A slow application stays slow across its restart (the slowdown is its
                // host's or its dependencies', not the process's state).
                resignal_slowdown(w, n);
            }
        }
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
        Op::Lift(op) => lift(w, op),
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
            nodes.iter().for_each(|n| w.add_disk_slowdown(*n, *factor))
        }
        Op::Slowdown { nodes, factor } => {
            for &n in nodes {
                w.add_slowdown(n, *factor);
                w.signal(n, Consumer::slowdown_timer(w.slowdown(n)));
            }
        }
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

/// Ends one fault: exactly the cuts, latency or slowdown `op` added, so a partition, slow
/// link, slow disk or slowdown still in force from another fault stays (its own undo ends
/// it).
fn lift(w: &mut World, op: &Op) {
    match op {
        Op::Partition(groups) => {
            for (i, a) in groups.iter().enumerate() {
                for b in &groups[i + 1..] {
                    w.net().unpartition(a, b);
                }
            }
        }
        Op::PartitionOneWay(from, to) => w.net().unpartition_one_way(from, to),
        Op::Bridge { a, bridge, b } => w.net().unbridge(a, *bridge, b),
        Op::SlowLink { nodes, latency } => {
            let all: Vec<NodeId> = w.node_ids().collect();
            for &n in nodes {
                for &m in &all {
                    if m != n {
                        w.net().unslow_link(n, m, *latency);
                    }
                }
            }
        }
        Op::SlowDisk { nodes, factor } => {
            nodes.iter().for_each(|n| w.end_disk_slowdown(*n, *factor))
        }
        Op::Slowdown { nodes, factor } => {
            for &n in nodes {
                w.end_slowdown(n, *factor);
                w.signal(n, Consumer::slowdown_timer(w.slowdown(n)));
            }
        }
        other => unreachable!("only partitions, slow links and slowdowns are lifted: {other:?}"),
    }
}

/// Tells a restarted consumer that its application is still slowed down.
fn resignal_slowdown(w: &mut World, n: NodeId) {
    let factor = w.slowdown(n);
    if factor != 1.0 && w.state(n) == NodeState::Up {
        w.signal(n, Consumer::slowdown_timer(factor));
    }
}

/// Lift every fault: links healed, every node resumed or restarted at normal speed.
pub(super) fn heal(w: &mut World) {
    w.net().heal();
    let ids: Vec<NodeId> = w.node_ids().collect();
    for id in ids {
        match w.state(id) {
            NodeState::Paused => w.resume(id),
            NodeState::Down => w.restart(id),
            NodeState::Up => {}
        }
        if w.slowdown(id) != 1.0 {
            w.signal(id, Consumer::slowdown_timer(1.0));
        }
        w.clear_slowdowns(id);
        w.clear_disk_slowdowns(id);
    }
}
