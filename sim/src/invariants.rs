//! Internal invariants of the broker engine (DESIGN §4 `invariant`), checked read-only after
//! every event on the node that handled it, plus the `divergence` check the runner calls at
//! the end (and, cheaply, periodically).
//!
//! - `hw-monotonic`: a leader's high watermark never decreases within its leader epoch.
//! - `one-leader-per-epoch`: at most one broker ever leads a partition in a leader epoch.
//! - `leader-has-committed`: with clean election, a broker that becomes leader holds every
//!   record below the highest HW any earlier leader reached. Correlated power loss without
//!   fsync and the legacy high-watermark protocol lose committed records in real Kafka, so
//!   there it is not an engine invariant and is not registered (see [`InvariantScope`]).
//!
//! Each closure keeps a little per-partition state; per event it only looks at the partitions
//! of the node that handled the event.

use crate::cluster::Cluster;
use crate::names::Names;
use crate::violation::{Violation, ViolationKind};
use crate::world::World;
use kafsim_engine::broker::config::{BrokerConfig, ReplicationProtocol};
use kafsim_engine::broker::Broker;
use kafsim_engine::log::Log;
use kafsim_engine::replica::partition::Partition;
use kafsim_engine::{NodeId, TopicPartition, ValueId};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

/// What the run's configuration and faults allow, deciding which invariants are real.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvariantScope {
    /// Every replica of a partition may lose power while records are only in page caches.
    pub correlated_power_loss: bool,
}

/// The partitions `node` leads, with their leader epochs, when `node` is one of `brokers` and
/// up: every invariant below looks only at these.
fn led<'w>(
    w: &'w World,
    node: NodeId,
    brokers: &[NodeId],
) -> impl Iterator<Item = (TopicPartition, u32, &'w Partition)> + 'w {
    let broker = brokers
        .contains(&node)
        .then(|| w.node::<Broker>(node))
        .flatten();
    broker
        .into_iter()
        .flat_map(|b| b.replicas().iter())
        .filter(|(_, p)| p.is_leader())
        .map(|(tp, p)| (*tp, p.leader_epoch().unwrap_or(0), p))
}

/// A leader's view of one partition: `(partition, leader epoch, high watermark)`.
type LedState = (TopicPartition, u32, u64);

/// The last [`led`] state seen per node, so that each invariant looks only at what changed:
/// most events change nothing a leader shows, and a broker leads dozens of partitions
/// (`__consumer_offsets` included). Shared by the invariants, which all run after every
/// event: the first to ask after an event computes the changes, the others reuse them. Its
/// buffers are reused from event to event, so the per-event path allocates nothing once
/// they have grown.
#[derive(Default)]
struct LedChanges {
    last: BTreeMap<NodeId, Vec<LedState>>,
    /// Per node, the (incarnation, [`Broker::leadership_version`]) `last` was taken at: while
    /// it is the same, the broker leads the same partitions in the same epochs at the same
    /// HWs, and the walk is skipped (most events are fetches and produces that move none).
    stamps: BTreeMap<NodeId, (u64, u64)>,
    /// `(events handled, node)` the `changed` entries are for.
    computed_for: Option<(u64, NodeId)>,
    changed: Vec<LedState>,
    /// What the node leads now, while it is compared with `last` (then swapped into it).
    scratch: Vec<LedState>,
}

type SharedLedChanges = Rc<RefCell<LedChanges>>;

impl LedChanges {
    /// The entries of what `node` leads now that differ from what it led after its previous
    /// event (all of them when the set of partitions changed).
    fn changed(&mut self, w: &World, node: NodeId, brokers: &[NodeId]) -> &[LedState] {
        let key = (w.events_handled(), node);
        if self.computed_for != Some(key) && !brokers.contains(&node) {
            // A node that is no broker leads nothing, before and after.
            self.changed.clear();
            self.computed_for = Some(key);
        }
        if self.computed_for != Some(key) {
            let stamp = w
                .node::<Broker>(node)
                .map(|b| (w.incarnation(node), b.leadership_version()));
            let unchanged = stamp.is_some() && self.stamps.get(&node) == stamp.as_ref();
            if unchanged && !cfg!(debug_assertions) {
                self.changed.clear();
                self.computed_for = Some(key);
                return &self.changed;
            }
            match stamp {
                Some(stamp) => self.stamps.insert(node, stamp),
                None => self.stamps.remove(&node),
            };
            self.scratch.clear();
            self.scratch
                .extend(led(w, node, brokers).map(|(tp, epoch, p)| (tp, epoch, p.high_watermark)));
            let prev = self.last.entry(node).or_default();
            self.changed.clear();
            if prev.len() == self.scratch.len() {
                let differ = self.scratch.iter().zip(prev.iter()).filter(|(a, b)| a != b);
                self.changed.extend(differ.map(|(a, _)| *a));
            } else {
                self.changed.extend_from_slice(&self.scratch);
            }
            std::mem::swap(prev, &mut self.scratch);
            self.computed_for = Some(key);
            // The skip above is taken in release builds only; every debug run (every test)
            // proves here that it would have missed nothing.
            assert!(
                !unchanged || self.changed.is_empty(),
                "node {node:?}: what it leads changed ({:?}) but its leadership version did not",
                self.changed
            );
        }
        &self.changed
    }
}

/// Register the broker invariants on `w` for `cluster`.
pub fn register(w: &mut World, cluster: &Cluster, config: &BrokerConfig, scope: InvariantScope) {
    let brokers: Vec<NodeId> = cluster.brokers.clone();
    let topics = cluster.topic_names();
    let t1 = topics.clone();
    let seen: SharedLedChanges = Rc::default();
    let b1 = brokers.clone();
    let s1 = seen.clone();
    let mut last_hw: BTreeMap<(NodeId, TopicPartition), (u32, u64)> = BTreeMap::new();
    w.add_invariant("hw-monotonic", move |w, node| {
        let mut seen = s1.borrow_mut();
        for &(tp, epoch, hw) in seen.changed(w, node, &b1) {
            if let Some(&(e, prev)) = last_hw.get(&(node, tp)) {
                if e == epoch && hw < prev {
                    let n = Names::of_world(w, &t1, &[]);
                    return Err(format!(
                        "{} leader of {} in epoch {epoch}: HW went from {prev} to {hw}",
                        n.node(node),
                        n.tp(tp)
                    ));
                }
            }
            last_hw.insert((node, tp), (epoch, hw));
        }
        Ok(())
    });
    let b2 = brokers.clone();
    let t2 = topics.clone();
    let s2 = seen.clone();
    let mut leaders: BTreeMap<(TopicPartition, u32), NodeId> = BTreeMap::new();
    w.add_invariant("one-leader-per-epoch", move |w, node| {
        let mut seen = s2.borrow_mut();
        for &(tp, epoch, _) in seen.changed(w, node, &b2) {
            let first = *leaders.entry((tp, epoch)).or_insert(node);
            if first != node {
                let n = Names::of_world(w, &t2, &[]);
                return Err(format!(
                    "{} epoch {epoch} led by {} and by {}",
                    n.tp(tp),
                    n.node(first),
                    n.node(node)
                ));
            }
        }
        Ok(())
    });
    let clean = !config.unclean_leader_election
        && config.replication_protocol == ReplicationProtocol::LeaderEpoch
        && (!scope.correlated_power_loss || config.flush_interval_messages == Some(1));
    if clean {
        register_leader_has_committed(w, brokers, topics, seen);
    }
}

/// Per partition: the committed values seen on the newest leader, and its epoch. Leaders of
/// older epochs (deposed, not yet told) are neither checked nor trusted.
#[derive(Default)]
struct Committed {
    values: Vec<ValueId>,
    epoch: Option<u32>,
}

fn register_leader_has_committed(
    w: &mut World,
    brokers: Vec<NodeId>,
    topics: Vec<String>,
    seen: SharedLedChanges,
) {
    let mut committed: BTreeMap<TopicPartition, Committed> = BTreeMap::new();
    w.add_invariant("leader-has-committed", move |w, node| {
        let mut seen = seen.borrow_mut();
        let changed = seen.changed(w, node, &brokers);
        if changed.is_empty() {
            return Ok(());
        }
        let Some(b) = w.node::<Broker>(node) else {
            return Ok(());
        };
        for &(tp, epoch, hw) in changed {
            let p = b.partition(tp).expect("a led partition");
            let c = committed.entry(tp).or_default();
            if c.epoch.is_some_and(|e| epoch < e) {
                continue;
            }
            if c.epoch != Some(epoch) {
                c.epoch = Some(epoch);
                for (o, v) in c.values.iter().enumerate() {
                    let got = p.log.record_at(o as u64).map(|r| r.value);
                    if got != Some(*v) {
                        let n = Names::of_world(w, &topics, &[]);
                        return Err(format!(
                            "{} became leader of {} in epoch {epoch} without committed offset {o} (v{}), holds {}",
                            n.node(node),
                            n.tp(tp),
                            v.0,
                            got.map_or("nothing".to_string(), |g| format!("v{}", g.0))
                        ));
                    }
                }
            }
            // Learn the newly committed values: one search, then a walk through the batches.
            let from = c.values.len() as u64;
            let batches = p.log.batches();
            let start = batches.partition_point(|b| b.next_offset() <= from);
            'learn: for batch in &batches[start..] {
                for (o, r) in (batch.base_offset..).zip(batch.records.iter()) {
                    let next = c.values.len() as u64;
                    if o < next {
                        continue;
                    }
                    if o >= hw || o > next {
                        break 'learn;
                    }
                    c.values.push(r.value);
                }
            }
        }
        Ok(())
    });
}

/// `divergence`: two replicas of a partition that are up hold different records below the
/// lower of their high watermarks. One violation per partition and replica pair. Compares
/// every offset: meant for the end of a run (use [`DivergenceCheck`] periodically).
pub fn check_divergence(w: &World, cluster: &Cluster) -> Vec<Violation> {
    DivergenceCheck::default().check(w, cluster)
}

/// Incremental divergence check: per partition and replica pair it remembers how far the two
/// logs were found equal and compares only offsets past that, so calling it every simulated
/// second costs in proportion to new records. Each pair is reported once.
#[derive(Debug, Default)]
pub struct DivergenceCheck {
    verified: BTreeMap<(TopicPartition, NodeId, NodeId), u64>,
    reported: std::collections::BTreeSet<(TopicPartition, NodeId, NodeId)>,
}

impl DivergenceCheck {
    /// New divergences since the last call.
    pub fn check(&mut self, w: &World, cluster: &Cluster) -> Vec<Violation> {
        let mut out = Vec::new();
        let up: Vec<(NodeId, &Broker)> = cluster
            .brokers
            .iter()
            .filter_map(|b| Some((*b, w.node::<Broker>(*b)?)))
            .collect();
        for (i, (na, a)) in up.iter().enumerate() {
            for (nb, b) in &up[i + 1..] {
                for (tp, pa) in a.replicas() {
                    let Some(pb) = b.partition(*tp) else { continue };
                    let key = (*tp, *na, *nb);
                    if self.reported.contains(&key) {
                        continue;
                    }
                    let end = pa.high_watermark.min(pb.high_watermark);
                    let from = self.verified.get(&key).copied().unwrap_or(0).min(end);
                    let diff = first_difference(&pa.log, &pb.log, from, end);
                    let Some(o) = diff else {
                        self.verified.insert(key, end);
                        continue;
                    };
                    self.reported.insert(key);
                    let (ra, rb) = (pa.log.record_at(o), pb.log.record_at(o));
                    let n = cluster.names(w);
                    let value = |r: Option<&kafsim_engine::Record>| {
                        r.map_or("nothing".to_string(), |r| format!("v{}", r.value.0))
                    };
                    out.push(
                        Violation::new(
                            ViolationKind::Divergence,
                            w.now(),
                            format!(
                                "{} has {} and {} has {} at {} offset {o}, below both HWs",
                                n.node(*na),
                                value(ra),
                                n.node(*nb),
                                value(rb),
                                n.tp(*tp)
                            ),
                        )
                        .at_partition(*tp)
                        .at_offset(o),
                    );
                }
            }
        }
        out
    }
}

/// The first offset in `from..end` where two logs hold different values (or one holds none).
/// Walks both logs' batches in step: one search each, then constant work per offset. A
/// follower appends the leader's batches as it fetched them, sharing their records: a batch
/// both logs hold at one base offset with the very same records is passed over whole.
fn first_difference(a: &Log, b: &Log, from: u64, end: u64) -> Option<u64> {
    let mut ca = Cursor::new(a, from);
    let mut cb = Cursor::new(b, from);
    let mut o = from;
    while o < end {
        if let (Some(x), Some(y)) = (ca.batch_at(o), cb.batch_at(o)) {
            if x.base_offset == y.base_offset && Arc::ptr_eq(&x.records, &y.records) {
                debug_assert!((o..x.next_offset().min(end)).all(|k| {
                    let k = (k - x.base_offset) as usize;
                    x.records.get(k).map(|r| r.value) == y.records.get(k).map(|r| r.value)
                }));
                o = x.next_offset();
                continue;
            }
        }
        if ca.value_at(o) != cb.value_at(o) {
            return Some(o);
        }
        o += 1;
    }
    None
}

/// Reads a log's values at increasing offsets.
struct Cursor<'l> {
    batches: &'l [kafsim_engine::RecordBatch],
    i: usize,
}

impl<'l> Cursor<'l> {
    fn new(log: &'l Log, from: u64) -> Cursor<'l> {
        let batches = log.batches();
        let i = batches.partition_point(|b| b.next_offset() <= from);
        Cursor { batches, i }
    }

    /// The batch holding `offset`, if one does; offsets must not decrease from one call to
    /// the next.
    fn batch_at(&mut self, offset: u64) -> Option<&'l kafsim_engine::RecordBatch> {
        while self
            .batches
            .get(self.i)
            .is_some_and(|b| b.next_offset() <= offset)
        {
            self.i += 1;
        }
        self.batches.get(self.i).filter(|b| b.base_offset <= offset)
    }

    /// The value at `offset`; offsets must not decrease from one call to the next.
    fn value_at(&mut self, offset: u64) -> Option<ValueId> {
        let b = self.batch_at(offset)?;
        let k = offset - b.base_offset;
        b.records.get(k as usize).map(|r| r.value)
    }
}
