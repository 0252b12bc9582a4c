//! Test support for the consumer tests: a cluster with one topic, a keyed acks=all producer
//! (one request in flight per partition, so per-key send order is the log order), consumers
//! built from a profile and a handler, and readers of the history.
#![allow(dead_code)]

use crate::harness::Harness;
use kafsim_engine::app::{HandlerSpec, SinkKind};
use kafsim_engine::config::{ConfigValue, Configurable};
use kafsim_engine::consumer::{Consumer, ConsumerConfig, ConsumerSpec};
use kafsim_engine::history::HistoryEvent;
use kafsim_engine::protocol::*;
use kafsim_engine::{
    Cx, Duration, Instant, Key, Node, NodeId, Record, RecordBatch, Timer, TopicId, TopicPartition,
    ValueId,
};
use kafsim_sim::cluster::Cluster;
use kafsim_sim::database::{Database, DEFAULT_LATENCY};
use kafsim_sim::world::World;
use std::any::Any;
use std::collections::{BTreeMap, BTreeSet};

pub const TOPIC: TopicId = TopicId(0);

/// The consumer tests' cluster: three brokers, topic "t" of `partitions` partitions
/// (replication 3), `__consumer_offsets` of 4 partitions (groups spread over coordinators).
/// Add `.topic("dlq", 1, 3)` for a dead-letter topic.
pub fn consumer_harness(seed: u64, partitions: u32) -> Harness {
    Harness::new(seed)
        .partitions(partitions)
        .offsets_partitions(4)
}

/// Sends keyed records (key = n % keys, partition = key % partitions) with acks=all, one request
/// in flight per partition, one record every `interval` until `stop_at`.
pub struct KeyedProducer {
    index: u32,
    brokers: Vec<NodeId>,
    partitions: u32,
    keys: u32,
    interval: Duration,
    stop_at: Instant,
    leaders: BTreeMap<u32, NodeId>,
    in_flight: BTreeMap<u32, (u64, ValueId, Instant)>,
    /// Records waiting for their partition's in-flight request, per partition.
    backlog: BTreeMap<u32, Vec<(ValueId, Key)>>,
    next: u64,
    rotate: usize,
}

impl KeyedProducer {
    fn fail_partition(&mut self, cx: &mut Cx, partition: u32, reason: &'static str) {
        if let Some((_, value, _)) = self.in_flight.remove(&partition) {
            cx.record(HistoryEvent::SendInfo {
                producer: self.index,
                value,
                reason,
            });
        }
        self.leaders.remove(&partition);
    }

    fn send_next(&mut self, cx: &mut Cx, partition: u32) {
        if self.in_flight.contains_key(&partition) {
            return;
        }
        let Some(&leader) = self.leaders.get(&partition) else {
            return;
        };
        let backlog = self.backlog.entry(partition).or_default();
        if backlog.is_empty() {
            return;
        }
        let (value, key) = backlog.remove(0);
        let record = Record {
            value,
            key: Some(key),
            size: 100,
            create_time: cx.now(),
            payload: None,
        };
        let tp = TopicPartition::new(TOPIC, partition);
        let corr = value.0;
        cx.send(
            leader,
            Message::ProduceRequest(ProduceRequest {
                correlation_id: corr,
                acks: Acks::All,
                timeout: Duration::from_secs(3),
                transactional_id: None,
                batches: vec![(tp, RecordBatch::new(vec![record].into()))],
            }),
        );
        self.in_flight.insert(partition, (corr, value, cx.now()));
    }

    fn tick(&mut self, cx: &mut Cx) {
        for (p, (_, _, sent)) in self.in_flight.clone() {
            if cx.now().saturating_since(sent) > Duration::from_secs(4) {
                self.fail_partition(cx, p, "timeout");
            }
        }
        if self.leaders.len() < self.partitions as usize {
            self.rotate += 1;
            let b = self.brokers[self.rotate % self.brokers.len()];
            let req = MetadataRequest {
                correlation_id: 0,
                topics: vec![TOPIC],
            };
            cx.send(b, Message::MetadataRequest(req));
        }
        if cx.now() < self.stop_at {
            self.next += 1;
            let key = Key((self.next % self.keys as u64) as u32);
            let value = ValueId(((self.index as u64 + 1) << 40) | self.next);
            cx.record(HistoryEvent::SendInvoke {
                producer: self.index,
                value,
                key: Some(key),
                topic: TOPIC,
                scheduled: None,
            });
            let partition = key.0 % self.partitions;
            self.backlog
                .entry(partition)
                .or_default()
                .push((value, key));
        }
        for p in 0..self.partitions {
            self.send_next(cx, p);
        }
    }

    fn on_response(&mut self, cx: &mut Cx, resp: ProduceResponse) {
        let r = &resp.partitions[0];
        let p = r.partition.partition;
        match self.in_flight.get(&p) {
            Some((corr, _, _)) if *corr == resp.correlation_id => {}
            _ => return,
        }
        let (_, value, _) = self.in_flight.remove(&p).expect("checked");
        let event = match r.error {
            ErrorCode::None => HistoryEvent::SendOk {
                producer: self.index,
                value,
                partition: r.partition,
                offset: r.base_offset,
            },
            error if error.is_retriable() => {
                self.leaders.remove(&p);
                HistoryEvent::SendInfo {
                    producer: self.index,
                    value,
                    reason: "retriable",
                }
            }
            error => HistoryEvent::SendFail {
                producer: self.index,
                value,
                error,
            },
        };
        cx.record(event);
        self.send_next(cx, p);
    }
}

impl Node for KeyedProducer {
    fn on_start(&mut self, cx: &mut Cx) {
        cx.set_timer_after(self.interval, Timer::new(1, 0));
    }

    fn on_message(&mut self, cx: &mut Cx, from: NodeId, msg: Message) {
        match msg {
            Message::MetadataResponse(m) => {
                for pm in &m.partitions {
                    if let (TOPIC, Some(l)) = (pm.state.partition.topic, pm.state.leader) {
                        self.leaders.insert(pm.state.partition.partition, l);
                    }
                }
            }
            Message::ProduceResponse(r) => self.on_response(cx, r),
            Message::ConnectionReset => {
                let dead: Vec<u32> = self
                    .leaders
                    .iter()
                    .filter(|(_, l)| **l == from)
                    .map(|(p, _)| *p)
                    .collect();
                for p in dead {
                    self.fail_partition(cx, p, "connection-reset");
                }
            }
            _ => {}
        }
    }

    fn on_timer(&mut self, cx: &mut Cx, _timer: Timer) {
        self.tick(cx);
        cx.set_timer_after(self.interval, Timer::new(1, 0));
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

pub fn add_producer(
    w: &mut World,
    c: &Cluster,
    index: u32,
    keys: u32,
    interval: Duration,
    stop_at: Instant,
) -> NodeId {
    let brokers = c.brokers.clone();
    let partitions = c.topics[0].2;
    w.add_node(format!("producer-{index}"), move || {
        Box::new(KeyedProducer {
            index,
            brokers: brokers.clone(),
            partitions,
            keys,
            interval,
            stop_at,
            leaders: BTreeMap::new(),
            in_flight: BTreeMap::new(),
            backlog: BTreeMap::new(),
            next: 0,
            rotate: 0,
        }) as Box<dyn Node>
    })
}

/// A consumer config of `client` with `overrides` (Java property names).
pub fn config(client: &str, overrides: &[(&str, ConfigValue)]) -> ConsumerConfig {
    let mut c = ConsumerConfig::for_client(client, None).expect("profile");
    for (k, v) in overrides {
        c.set(k, v).unwrap_or_else(|e| panic!("{k}: {e}"));
    }
    c.validate().expect("valid config");
    c
}

pub fn int(v: i64) -> ConfigValue {
    ConfigValue::Int(v)
}

pub fn text(v: &str) -> ConfigValue {
    ConfigValue::Str(v.to_string())
}

/// Add member `member` of group `group_index` ("g<index>") subscribed to "t", without a
/// database (its output is noted on its own disk).
pub fn add_consumer(
    w: &mut World,
    c: &Cluster,
    group_index: u32,
    member: u32,
    config: ConsumerConfig,
    handler: HandlerSpec,
) -> NodeId {
    add_member(w, c, group_index, member, config, handler, false)
}

/// [`add_consumer`] with the group's shared database ("database:g<index>", added with the
/// first member) as its sink.
pub fn add_consumer_with_database(
    w: &mut World,
    c: &Cluster,
    group_index: u32,
    member: u32,
    config: ConsumerConfig,
    handler: HandlerSpec,
) -> NodeId {
    add_member(w, c, group_index, member, config, handler, true)
}

fn add_member(
    w: &mut World,
    c: &Cluster,
    group_index: u32,
    member: u32,
    config: ConsumerConfig,
    handler: HandlerSpec,
    with_database: bool,
) -> NodeId {
    let mut topic_names = BTreeMap::new();
    topic_names.insert(TOPIC, "t".to_string());
    let dlq_topic = c.topics.iter().find(|t| t.1 == "dlq").map(|t| t.0);
    let handler_sink = handler.sink;
    let spec = ConsumerSpec {
        group_index,
        member_index: member,
        group: format!("g{group_index}"),
        topics: vec![TOPIC],
        topic_names,
        handler,
        bootstrap: c.brokers.clone(),
        dlq_topic,
        database: with_database.then(|| database(w, group_index, handler_sink)),
        fetch_paused_until: kafsim_engine::Instant::ZERO,
        standalone: None,
        produce_to: None,
    };
    w.add_node(format!("consumer-{group_index}-{member}"), move || {
        Box::new(Consumer::new(spec.clone(), config.clone())) as Box<dyn Node>
    })
}

/// The database node of group `group_index` ("database:g<index>"), added on first use.
pub fn database(w: &mut World, group_index: u32, kind: SinkKind) -> NodeId {
    let name = format!("database:g{group_index}");
    if let Some(id) = w.node_ids().find(|n| w.name(*n) == name) {
        return id;
    }
    w.add_node(name, move || {
        Box::new(Database::new(group_index, kind, DEFAULT_LATENCY)) as Box<dyn Node>
    })
}

/// Acknowledged values with their (partition, offset).
pub fn acked(w: &World) -> BTreeMap<ValueId, (TopicPartition, u64)> {
    w.history()
        .entries()
        .iter()
        .filter_map(|e| match &e.event {
            HistoryEvent::SendOk {
                value,
                partition,
                offset,
                ..
            } => Some((*value, (*partition, *offset))),
            _ => None,
        })
        .collect()
}

/// Sink writes of group `g`: (value, member, key) in history order.
pub fn sink_writes(w: &World, g: u32) -> Vec<(ValueId, u32, Option<Key>)> {
    w.history()
        .entries()
        .iter()
        .filter_map(|e| match &e.event {
            HistoryEvent::SinkWrite {
                group,
                member,
                value,
                key,
                ..
            } if *group == g => Some((*value, *member, *key)),
            _ => None,
        })
        .collect()
}

/// Acknowledged values never written to group `g`'s sink.
pub fn sink_lost(w: &World, g: u32) -> Vec<ValueId> {
    let written: BTreeSet<ValueId> = sink_writes(w, g).iter().map(|(v, _, _)| *v).collect();
    acked(w)
        .keys()
        .filter(|v| !written.contains(v))
        .copied()
        .collect()
}

/// Values written more than once to group `g`'s sink.
pub fn sink_duplicates(w: &World, g: u32) -> Vec<ValueId> {
    let mut seen = BTreeSet::new();
    let mut dup = BTreeSet::new();
    for (v, _, _) in sink_writes(w, g) {
        if !seen.insert(v) {
            dup.insert(v);
        }
    }
    dup.into_iter().collect()
}

/// Pairs of one key's values that the sink of group `g` wrote in an order other than their
/// send order (values of one producer grow with send order).
pub fn key_order_violations(w: &World, g: u32) -> usize {
    let mut last: BTreeMap<Key, ValueId> = BTreeMap::new();
    let mut bad = 0;
    for (v, _, key) in sink_writes(w, g) {
        let Some(k) = key else { continue };
        if let Some(prev) = last.get(&k) {
            if v < *prev {
                bad += 1;
            }
        }
        let e = last.entry(k).or_insert(v);
        *e = (*e).max(v);
    }
    bad
}

/// Assigned events of group `g`: (member, generation, partitions).
pub fn assigned(w: &World, g: u32) -> Vec<(u32, i32, Vec<TopicPartition>)> {
    w.history()
        .entries()
        .iter()
        .filter_map(|e| match &e.event {
            HistoryEvent::Assigned {
                group,
                member,
                generation,
                partitions,
            } if *group == g => Some((*member, *generation, partitions.clone())),
            _ => None,
        })
        .collect()
}

pub fn count_events(w: &World, pred: impl Fn(&HistoryEvent) -> bool) -> usize {
    w.history()
        .entries()
        .iter()
        .filter(|e| pred(&e.event))
        .count()
}

/// Whether the consumer `node` has positions past every acknowledged offset of the
/// partitions it owns, and owns every partition of the topic (a drained single-member group).
pub fn drained(w: &World, node: NodeId) -> bool {
    let Some(consumer) = w.node::<Consumer>(node) else {
        return false;
    };
    let mut end: BTreeMap<TopicPartition, u64> = BTreeMap::new();
    for (tp, offset) in acked(w).values() {
        let e = end.entry(*tp).or_insert(0);
        *e = (*e).max(offset + 1);
    }
    end.iter()
        .all(|(tp, e)| consumer.position(*tp).is_some_and(|p| p >= *e))
}
