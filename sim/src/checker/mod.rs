//! Jepsen-grade checkers over the client-visible history (DESIGN §4).
//!
//! The checkers see only what clients recorded (sends, acknowledgements, polls, assignments,
//! sink writes, transactions): they know nothing of the engine, so a bug in the engine cannot
//! hide itself by also corrupting the checker's view. Definitions follow Jepsen's Kafka workload
//! (`jepsen.tests.kafka`) where one exists: a value's position is evidenced by every
//! acknowledgement and every read of it, a skip is only a skip over an offset *known* to hold a
//! value, and reads are only expected to be monotonic while a consumer keeps its assignment.
//!
//! One module per concern; each exposes `check(history, index, config, out)`. [`check_history`]
//! runs them all over one shared [`index::HistoryIndex`] (built in a single pass) and returns
//! the violations sorted by `(at, kind, partition, offset, value, detail)`, so the output does
//! not depend on hash-map iteration order or on the order the checkers ran.
//!
//! Memory is bounded for broken runs: at most [`CheckConfig::max_per_kind`] violations of one
//! kind are kept in detail (the earliest ones in output order); the rest are counted and
//! reported in one summary violation of that kind at the end of the run.

pub mod cause;
pub mod delivery;
pub mod dense;
pub mod ignored;
pub mod index;
pub mod key_order;
pub mod poll_order;
pub mod send_order;
pub mod sink;
pub mod transactions;

#[cfg(test)]
mod model_tests;
#[cfg(test)]
pub(crate) mod test_support;

use crate::history::History;
use crate::names::Names;
use crate::violation::{Violation, ViolationKind};
use index::HistoryIndex;
use kafsim_engine::{Instant, TopicId, TopicPartition, ValueId};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap};

/// Default for [`CheckConfig::max_per_kind`]: enough to debug any run, small enough that a run
/// where every value is lost cannot exhaust memory with violation details.
pub const MAX_VIOLATIONS_PER_KIND: usize = 1000;

/// What the checkers need to know about one consumer group of the scenario.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupCheck {
    /// The group index clients record in the history.
    pub group: u32,
    /// The scenario's name for the group, used in violation details.
    pub name: String,
    /// Topics the group consumes: every acknowledged value of these must reach it.
    pub topics: Vec<TopicId>,
    /// `isolation.level=read_committed`: it must never see values of aborted transactions, and
    /// it legitimately skips their offsets.
    pub read_committed: bool,
    /// The group runs a service with a sink: every consumed value must reach the sink (or the
    /// dead-letter topic) exactly once.
    pub has_sink: bool,
    /// A standalone consumer's partitions (`[[consumers]]`); None: every partition of
    /// `topics`, whatever their number when the value was written.
    pub partitions: Option<Vec<TopicPartition>>,
    /// Handler `produce_to`: the output topic is the group's sink; its committed records
    /// (`OutputRecord`, from the final read) are its sink writes.
    pub output: Option<TopicId>,
}

impl GroupCheck {
    pub fn consumes(&self, topic: TopicId) -> bool {
        self.topics.contains(&topic)
    }

    /// Whether a value written to `tp` must reach the group.
    pub fn owes(&self, tp: TopicPartition) -> bool {
        self.consumes(tp.topic) && self.partitions.as_ref().is_none_or(|ps| ps.contains(&tp))
    }
}

/// Configuration of one check of one run's history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckConfig {
    pub groups: Vec<GroupCheck>,
    /// End of the run (after the drain): the time of `unseen` and `sink-loss` violations.
    pub end: Instant,
    /// Violations of one kind kept in detail; the rest are counted in a summary violation.
    pub max_per_kind: usize,
    /// Producers whose application ignores send outcomes (`on_error = "ignore"`): every value
    /// they hand over is owed (see [`ignored`]).
    pub ignoring_errors: Vec<u32>,
    /// Producers whose partitioner does not place keyed records by a hash of the key, with
    /// its name (`kafka-go-round-robin`, the kafka-go `Writer`'s default `Balancer`, ...):
    /// `key-order` says so when a key's records were in two partitions.
    pub keyless_partitioners: Vec<(u32, &'static str)>,
    /// How details name topics, groups, members and producers.
    pub names: Names,
    /// Per producer index, how it keeps a partition's batches in order (the causes of
    /// `nonmonotonic-send` and `duplicate`, [`cause`]).
    pub ordering: Vec<(u32, cause::Ordering)>,
    /// The nodes the nemesis stopped (crashes, power losses, pauses), in time order: why a
    /// member never committed what it wrote (the cause of a `sink-duplicate`).
    pub stops: Vec<cause::NodeStop>,
}

impl CheckConfig {
    pub fn new(end: Instant, groups: Vec<GroupCheck>) -> CheckConfig {
        let mut names = Names::new();
        for g in &groups {
            names.set_group(g.group, g.name.clone());
        }
        CheckConfig {
            groups,
            end,
            max_per_kind: MAX_VIOLATIONS_PER_KIND,
            ignoring_errors: Vec::new(),
            keyless_partitioners: Vec::new(),
            names,
            ordering: Vec::new(),
            stops: Vec::new(),
        }
    }

    /// The same configuration naming everything by `names` (the run's naming service).
    pub fn with_names(mut self, names: Names) -> CheckConfig {
        self.names = names;
        self
    }

    /// `billing/2` for details.
    pub fn member_name(&self, group: u32, member: u32) -> String {
        self.names.member(group, member)
    }

    /// The configuration of `group`, if the scenario declared it.
    pub fn group(&self, group: u32) -> Option<&GroupCheck> {
        self.groups.iter().find(|g| g.group == group)
    }

    /// Whether `group` reads with `read_committed` (undeclared groups read uncommitted).
    pub fn read_committed(&self, group: u32) -> bool {
        self.group(group).is_some_and(|g| g.read_committed)
    }

    /// How producer `producer` keeps a partition's batches in order, if the run said.
    pub fn ordering(&self, producer: u32) -> Option<&cause::Ordering> {
        self.ordering
            .iter()
            .find(|(p, _)| *p == producer)
            .map(|(_, o)| o)
    }

    /// Human name of a group for details: the scenario's name (`group-N` if undeclared).
    pub fn group_name(&self, group: u32) -> String {
        self.names.group(group)
    }
}

/// Runs every checker over `history` and returns the violations in deterministic order.
/// The offset of a `SendOk` under acks=0: acknowledged when sent, at no known position
/// (the producer's `OFFSET_UNKNOWN`). Such an ack owes the value to consumers but is no
/// evidence of where it is.
pub const OFFSET_UNKNOWN: u64 = u64::MAX;

pub fn check_history(history: &History, config: &CheckConfig) -> Vec<Violation> {
    let index = HistoryIndex::build(history, |g| config.read_committed(g));
    let mut out = Collector::new(config.max_per_kind);
    delivery::check(history, &index, config, &mut out);
    send_order::check(history, &index, config, &mut out);
    poll_order::check(history, &index, config, &mut out);
    sink::check_with_key_order(history, &index, config, &mut out);
    ignored::check(history, &index, config, &mut out);
    transactions::check(history, &index, config, &mut out);
    let mut found = out.finish(config.end);
    cause::explain(history, &index, config, &mut found);
    found.sort_by(violation_order);
    found
}

/// The total order of the output: `(at, kind, partition, offset, value, detail)`.
pub fn violation_order(a: &Violation, b: &Violation) -> Ordering {
    (a.at, a.kind, a.partition, a.offset, a.value, &a.detail).cmp(&(
        b.at,
        b.kind,
        b.partition,
        b.offset,
        b.value,
        &b.detail,
    ))
}

/// A violation ordered by [`violation_order`], for the bounded heaps of [`Collector`].
struct Ordered(Violation);

impl PartialEq for Ordered {
    fn eq(&self, other: &Ordered) -> bool {
        violation_order(&self.0, &other.0) == Ordering::Equal
    }
}
impl Eq for Ordered {}
impl PartialOrd for Ordered {
    fn partial_cmp(&self, other: &Ordered) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Ordered {
    fn cmp(&self, other: &Ordered) -> Ordering {
        violation_order(&self.0, &other.0)
    }
}

/// Collects violations, keeping per kind only the `cap` first in output order (a max-heap
/// evicts the latest), so what is kept does not depend on the order checkers emit in.
pub struct Collector {
    cap: usize,
    kept: BTreeMap<ViolationKind, BinaryHeap<Ordered>>,
    dropped: BTreeMap<ViolationKind, u64>,
}

impl Collector {
    pub fn new(cap: usize) -> Collector {
        Collector {
            cap,
            kept: BTreeMap::new(),
            dropped: BTreeMap::new(),
        }
    }

    pub fn push(&mut self, violation: Violation) {
        let kind = violation.kind;
        let heap = self.kept.entry(kind).or_default();
        heap.push(Ordered(violation));
        if heap.len() > self.cap {
            heap.pop();
            *self.dropped.entry(kind).or_default() += 1;
        }
    }

    /// Violations kept so far of `kind` (tests and summaries).
    pub fn count(&self, kind: ViolationKind) -> usize {
        self.kept.get(&kind).map_or(0, BinaryHeap::len)
    }

    /// The sorted output, with one summary violation (at `end`) per kind that overflowed.
    pub fn finish(self, end: Instant) -> Vec<Violation> {
        let mut all: Vec<Violation> = Vec::new();
        for heap in self.kept.into_values() {
            all.extend(heap.into_iter().map(|o| o.0));
        }
        for (kind, dropped) in self.dropped {
            all.push(Violation::new(
                kind,
                end,
                format!(
                    "{dropped} more {kind} violations not kept in detail (at most {} per kind)",
                    self.cap
                ),
            ));
        }
        all.sort_by(violation_order);
        all
    }
}

/// `v123` for details.
pub(crate) fn value_name(value: ValueId) -> String {
    format!("v{}", value.0)
}
