//! The nemesis: which faults hit a run, and when.
//!
//! A run's faults come from two sources, merged in time order: the scenario's scripted
//! `[[faults.schedule]]`, and, with `random = true`, a *swarm* draw made per seed (as in
//! swarm testing: each seed enables its own subset of the scenario's `kinds`, each with its
//! own rate around `mean_interval`), so that different seeds explore different fault mixes.
//! The draw is made up front from the nemesis stream and printed at the top of a replay.
//! Targets of random faults and of `leader:T/P`-style targets are resolved when the fault
//! fires, from the cluster as it is then; every random fault schedules its own undo
//! (restart, resume, heal, normal speed) a drawn time later.

use crate::scenario::{format_span, FaultAction, FaultKind, FaultSpec};
use kafsim_engine::time::duration_nanos;
use kafsim_engine::{Duration, Instant, NodeId};
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::fmt::Write as _;

mod resolve;
mod warning;
pub use resolve::resolve;
use resolve::{everyone_but, resolve_action};
pub use warning::FaultWarning;
use warning::Written;

/// What the runner must do to the world.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    Crash(Vec<NodeId>),
    Restart(Vec<NodeId>),
    PowerLoss {
        nodes: Vec<NodeId>,
        tear: bool,
    },
    Pause(Vec<NodeId>),
    Resume(Vec<NodeId>),
    /// Symmetric partition between consecutive groups (each group cut from all others).
    Partition(Vec<Vec<NodeId>>),
    /// One-way: nothing from the first group reaches the second.
    PartitionOneWay(Vec<NodeId>, Vec<NodeId>),
    /// Jepsen's bridge: `a` and `b` cut from each other, `bridge` reaches both.
    Bridge {
        a: Vec<NodeId>,
        bridge: NodeId,
        b: Vec<NodeId>,
    },
    /// Lifts every partition and slow link (the scenario's `heal` action).
    Heal,
    /// The end of one partition, bridge, slow link, slow disk or slowdown: lifts what that
    /// operation imposed and nothing else, so overlapping faults each last their own time.
    Lift(Box<Op>),
    SlowLink {
        nodes: Vec<NodeId>,
        latency: Duration,
    },
    SlowDisk {
        nodes: Vec<NodeId>,
        factor: f64,
    },
    Slowdown {
        nodes: Vec<NodeId>,
        factor: f64,
    },
    /// The operator grows `topic` by `count` partitions (through the admin client).
    AddPartitions {
        topic: String,
        count: u32,
    },
}

/// How the nemesis learns which nodes a target names, at the moment a fault fires.
pub trait Resolver {
    /// A node's role name (`broker-0`, `billing/1`) for the fault log.
    fn name(&self, id: NodeId) -> String {
        id.to_string()
    }
    fn brokers(&self) -> Vec<NodeId>;
    fn broker(&self, index: u32) -> Option<NodeId>;
    fn leader(&self, topic: &str, partition: u32) -> Option<NodeId>;
    fn followers(&self, topic: &str, partition: u32) -> Vec<NodeId>;
    fn controller(&self) -> Option<NodeId>;
    fn consumer(&self, group: &str, member: u32) -> Option<NodeId>;
    fn consumers(&self) -> Vec<NodeId>;
    fn producer(&self, index: u32) -> Option<NodeId>;
    fn producers(&self) -> Vec<NodeId>;
    /// The database node of consumer group `group`.
    fn database(&self, _group: &str) -> Option<NodeId> {
        None
    }
    /// The leader the active controller's metadata names for a partition: `Some(None)`
    /// while the partition is offline, `None` when no active controller knows it. Only
    /// for explaining a `leader:` target that named no node.
    fn named_leader(&self, _topic: &str, _partition: u32) -> Option<Option<NodeId>> {
        None
    }
    /// A random partition's (topic, partition), for random leader/follower targeting.
    fn partitions(&self) -> Vec<(String, u32)>;
    /// Whether a node is up (not crashed, powered off or paused). Random faults that stop a
    /// node pick among the nodes that are up: crashing a node that is already down would
    /// do nothing in a real test, yet print a second crash and an early restart in the
    /// story.
    fn is_up(&self, _id: NodeId) -> bool {
        true
    }
}

/// A fault due at a time: scripted, or a random kind to be drawn when it fires, or an undo.
#[derive(Clone, Debug)]
enum Due {
    Scripted {
        action: FaultAction,
        undo_after: Option<Duration>,
        /// `at` as the scenario wrote it (a bench shifts the due time, not this).
        at: Duration,
    },
    Random(FaultKind),
    Undo(Op),
}

/// One seed's swarm draw: the enabled kinds and their mean intervals.
#[derive(Clone, Debug, PartialEq)]
pub struct SwarmDraw {
    pub kinds: Vec<(FaultKind, Duration)>,
}

/// One fault as applied, for replay's record stories and campaign coverage.
#[derive(Clone, Debug, PartialEq)]
pub struct AppliedFault {
    pub at: Instant,
    /// The fault kind it fired as (random or scripted); `None` for the undo of an earlier
    /// fault (its restart, resume or heal).
    pub kind: Option<FaultKind>,
    pub op: Op,
    /// When it is undone, for faults that schedule their own undo.
    pub undo_after: Option<Duration>,
    /// What the fault log says after the operation: for the end of a fault, which fault it
    /// ends (`" (ends the pause of 10536.765ms)"`); empty for a fault that starts.
    pub note: String,
}

impl AppliedFault {
    /// The nodes the operation touches (every side of a partition).
    pub fn nodes(&self) -> Vec<NodeId> {
        op_nodes(&self.op)
    }
}

/// The nodes an operation touches, sorted.
pub fn op_nodes(op: &Op) -> Vec<NodeId> {
    let mut v: Vec<NodeId> = match op {
        Op::Crash(n) | Op::Restart(n) | Op::Pause(n) | Op::Resume(n) => n.clone(),
        Op::PowerLoss { nodes, .. }
        | Op::SlowLink { nodes, .. }
        | Op::SlowDisk { nodes, .. }
        | Op::Slowdown { nodes, .. } => nodes.clone(),
        Op::Partition(groups) => groups.concat(),
        Op::PartitionOneWay(a, b) => [a.as_slice(), b.as_slice()].concat(),
        Op::Bridge { a, bridge, b } => [a.as_slice(), &[*bridge], b.as_slice()].concat(),
        Op::Lift(op) => op_nodes(op),
        Op::Heal | Op::AddPartitions { .. } => Vec::new(),
    };
    v.sort();
    v.dedup();
    v
}

/// The fault schedule of one run.
pub struct Nemesis {
    /// (time, sequence, what): kept sorted by (time, sequence).
    due: Vec<(Instant, u64, Due)>,
    seq: u64,
    rng: ChaCha8Rng,
    pub swarm: Option<SwarmDraw>,
    /// Every fault applied, as printable lines (for replay).
    pub log: Vec<String>,
    /// Every fault applied, as data (same order as `log`).
    pub applied: Vec<AppliedFault>,
    /// Every random fault applied, as it was resolved (`kafsim shrink` turns them into a
    /// script).
    pub fired: Vec<Fired>,
    /// `[faults] undo_after`: the range every random fault's duration is drawn from.
    undo_after: Option<(Duration, Duration)>,
    /// The faults in force (crashes, pauses, partitions, slow links, disks and consumers),
    /// so that every end names the fault it ends and a panic can list them.
    in_force: Vec<InForce>,
    /// The load phase's length as the scenario wrote it (`duration`).
    load: Duration,
    /// Scripted faults that did less than the scenario asked (see [`FaultWarning`]).
    pub warnings: Vec<FaultWarning>,
}

/// A fault in force: the kind it fired as, when, when its own undo is due, and what it did
/// (a restart or resume takes its nodes out of it; a lift or a heal removes it).
#[derive(Clone, Debug, PartialEq)]
struct InForce {
    kind: FaultKind,
    began: Instant,
    undo_at: Option<Instant>,
    op: Op,
    /// A scripted fault with a `duration`: how the scenario wrote it.
    written: Option<Written>,
}

impl InForce {
    /// `slow-link broker-0 +300ms of 8000.000ms`, and how early `now` ends it.
    fn describe(&self, now: Instant, name: &dyn Fn(NodeId) -> String) -> String {
        let early = match self.undo_at {
            Some(due) if due > now => format!(" {} early", format_span(due - now)),
            _ => String::new(),
        };
        format!("{} of {}{early}", describe(&self.op, name), self.began)
    }
}

/// A random fault that fired: the operation its draw resolved to, and when its undo was due.
#[derive(Clone, Debug, PartialEq)]
pub struct Fired {
    pub at: Instant,
    pub op: Op,
    pub undo_after: Option<Duration>,
}

/// Faults start after this, so the cluster has elected leaders and clients have connected.
const RANDOM_START: Duration = Duration::from_secs(2);

impl Nemesis {
    /// Plan the faults of one run of `duration`.
    pub fn plan(spec: &FaultSpec, duration: Duration, mut rng: ChaCha8Rng) -> Nemesis {
        let mut nemesis = Nemesis {
            due: Vec::new(),
            seq: 0,
            rng: rng.clone(),
            swarm: None,
            log: Vec::new(),
            applied: Vec::new(),
            fired: Vec::new(),
            undo_after: spec.undo_after,
            in_force: Vec::new(),
            load: duration,
            warnings: Vec::new(),
        };
        for s in &spec.schedule {
            nemesis.push(
                Instant::ZERO + s.at,
                Due::Scripted {
                    action: s.action.clone(),
                    undo_after: s.undo_after,
                    at: s.at,
                },
            );
        }
        if spec.random && !spec.kinds.is_empty() {
            let draw = swarm_draw(&spec.kinds, spec.mean_interval, &mut rng);
            for &(kind, mean) in &draw.kinds {
                let mut t = RANDOM_START;
                loop {
                    t += exponential(&mut rng, mean);
                    if t >= duration {
                        break;
                    }
                    nemesis.push(Instant::ZERO + t, Due::Random(kind));
                }
            }
            nemesis.swarm = Some(draw);
        }
        nemesis.rng = rng;
        nemesis
    }

    fn push(&mut self, at: Instant, due: Due) {
        self.seq += 1;
        let key = (at, self.seq);
        let i = self.due.partition_point(|(t, s, _)| (*t, *s) <= key);
        self.due.insert(i, (at, self.seq, due));
    }

    /// Move every planned fault `by` later: a bench's load (and with it its faults) starts
    /// when its readiness phase ends. Only before the first fault fired.
    pub fn shift(&mut self, by: Duration) {
        assert!(self.log.is_empty(), "nemesis: shifted after faults fired");
        for (at, _, _) in &mut self.due {
            *at += by;
        }
    }

    /// When the next fault is due.
    pub fn next_at(&self) -> Option<Instant> {
        self.due.first().map(|(t, _, _)| *t)
    }

    /// Take the faults due at or before `now` and resolve them into operations.
    pub fn fire(&mut self, now: Instant, resolver: &dyn Resolver) -> Vec<Op> {
        let mut ops = Vec::new();
        while self.due.first().is_some_and(|(t, _, _)| *t <= now) {
            let (_, _, due) = self.due.remove(0);
            let mut written = None;
            let (op, undo, kind) = match due {
                Due::Scripted {
                    action,
                    undo_after,
                    at,
                } => {
                    let op = resolve_action(&action, resolver);
                    self.warn_unresolved(now, at, &action, op.as_ref(), resolver);
                    written = undo_after.map(|lasts| Written::new(at, lasts, &action));
                    if op.is_none() {
                        // Say so: a scripted fault that silently did nothing would leave the
                        // user reading a run they did not ask for.
                        let targets: Vec<String> =
                            action.targets().iter().map(|t| t.to_string()).collect();
                        self.log.push(format!(
                            "{now} skipped {} {}: no node matches the target at this moment \
                             (a partition without a leader or follower now, or one not \
                             created yet)",
                            action.kind(),
                            targets.join(" ")
                        ));
                    }
                    let undo =
                        undo_after.and_then(|d| op.as_ref().and_then(undo_of).map(|u| (d, u)));
                    (op, undo, Some(action.kind()))
                }
                Due::Random(kind) => match self.random_op(kind, resolver) {
                    Some((op, d)) => {
                        let undo = undo_of(&op).map(|u| (d, u));
                        self.fired.push(Fired {
                            at: now,
                            op: op.clone(),
                            undo_after: undo.as_ref().map(|(d, _)| *d),
                        });
                        (Some(op), undo, Some(kind))
                    }
                    None => (None, None, None),
                },
                Due::Undo(op) => (Some(op), None, None),
            };
            if let Some(op) = op {
                let mut line = format!("{now} {}", describe(&op, &|n| resolver.name(n)));
                if let Some((d, _)) = &undo {
                    let _ = write!(line, " (undone after {})", format_span(*d));
                }
                let undo_at = undo.as_ref().map(|(d, _)| now + *d);
                let (note, in_force) =
                    self.note_fault(now, &op, kind, undo_at, written, &|n| resolver.name(n));
                line.push_str(&note);
                self.log.push(line);
                if !in_force {
                    // The end of a fault a heal already lifted: nothing to undo in the world.
                    continue;
                }
                self.applied.push(AppliedFault {
                    at: now,
                    kind,
                    op: op.clone(),
                    undo_after: undo.as_ref().map(|(d, _)| *d),
                    note,
                });
                ops.push(op);
            }
            if let Some((d, u)) = undo {
                self.push(now + d, Due::Undo(u));
            }
        }
        ops
    }

    /// Keep track of the faults in force, and say which one an end ends: a restart or a
    /// resume names the crash, power loss or pause it ends, a lift (`Op::Lift`: the own
    /// undo of one partition, slow link, slow disk or slowdown) names when its fault began,
    /// and a scheduled `heal`, which lifts every partition and slow link at once
    /// (`Network::heal`), names each it ends and how early (without that the log would
    /// promise durations the run did not have). Returns the note for the log line, and
    /// false for the end of a fault no longer in force.
    fn note_fault(
        &mut self,
        now: Instant,
        op: &Op,
        kind: Option<FaultKind>,
        undo_at: Option<Instant>,
        written: Option<Written>,
        name: &dyn Fn(NodeId) -> String,
    ) -> (String, bool) {
        let ends = |ended: Vec<String>| {
            if ended.is_empty() {
                String::new()
            } else {
                format!(" (ends {})", ended.join(", "))
            }
        };
        match op {
            Op::Restart(nodes) => {
                let ended = self.take_nodes(nodes, name, |op| {
                    matches!(op, Op::Crash(_) | Op::PowerLoss { .. })
                });
                (ends(ended), true)
            }
            Op::Resume(nodes) => {
                let ended = self.take_nodes(nodes, name, |op| matches!(op, Op::Pause(_)));
                (ends(ended), true)
            }
            Op::Lift(lifted) => match self.in_force.iter().position(|e| e.op == **lifted) {
                Some(i) => {
                    let e = self.in_force.remove(i);
                    (ends(vec![format!("the {} of {}", e.kind, e.began)]), true)
                }
                None => (
                    " (nothing left to lift: a heal ended it earlier)".to_string(),
                    false,
                ),
            },
            Op::Heal => {
                let (network, rest): (Vec<InForce>, Vec<InForce>) =
                    std::mem::take(&mut self.in_force)
                        .into_iter()
                        .partition(|e| is_network(&e.op));
                self.in_force = rest;
                if network.is_empty() {
                    return (String::new(), true);
                }
                let ended: Vec<String> = network.iter().map(|e| e.describe(now, name)).collect();
                let note = format!(
                    " (a heal lifts every partition and slow link: it ends {})",
                    ended.join(", ")
                );
                (note, true)
            }
            Op::AddPartitions { .. } => (String::new(), true),
            _ => {
                // Bounded: an entry lives from its fault to its end, and the end of the
                // safety phase ends them all (`end_all`).
                self.in_force.push(InForce {
                    kind: kind.unwrap_or_else(|| natural_kind(op)),
                    began: now,
                    undo_at,
                    op: op.clone(),
                    written,
                });
                (String::new(), true)
            }
        }
    }

    /// Takes `nodes` out of the faults in force that `ends` (a restart: crashes and power
    /// losses; a resume: pauses); a fault with none of its nodes left is over. Returns what
    /// ended: `the crash of 8000.000ms`, naming the nodes when not all of the fault's.
    fn take_nodes(
        &mut self,
        nodes: &[NodeId],
        name: &dyn Fn(NodeId) -> String,
        ends: impl Fn(&Op) -> bool,
    ) -> Vec<String> {
        let mut ended = Vec::new();
        for e in &mut self.in_force {
            if !ends(&e.op) {
                continue;
            }
            let held = match &mut e.op {
                Op::Crash(n) | Op::Pause(n) | Op::PowerLoss { nodes: n, .. } => n,
                _ => continue,
            };
            let hit: Vec<NodeId> = held.iter().copied().filter(|n| nodes.contains(n)).collect();
            if hit.is_empty() {
                continue;
            }
            if hit.len() == held.len() && hit.len() == nodes.len() {
                ended.push(format!("the {} of {}", e.kind, e.began));
            } else {
                let who: Vec<String> = hit.iter().map(|n| name(*n)).collect();
                ended.push(format!(
                    "the {} of {} at {}",
                    e.kind,
                    who.join(","),
                    e.began
                ));
            }
            held.retain(|n| !nodes.contains(n));
        }
        self.in_force.retain(|e| !op_nodes(&e.op).is_empty());
        ended
    }

    /// The faults in force at `now`, one line each (`pause broker-0 since 8488.145ms, its
    /// own end due at 25977.145ms`): what a panic lists.
    pub fn in_force(&self, name: &dyn Fn(NodeId) -> String) -> Vec<String> {
        self.in_force
            .iter()
            .map(|e| {
                let until = match e.undo_at {
                    Some(t) => format!("its own end due at {t}"),
                    None => "until a heal".to_string(),
                };
                format!(
                    "{} since {} ({}, {until})",
                    describe(&e.op, name),
                    e.began,
                    e.kind
                )
            })
            .collect()
    }

    /// The end of the safety phase lifts every fault still in force: the note of the heal's
    /// log line, naming each and how early it ends (empty when none was in force). A
    /// scripted fault whose `duration` ran past the load phase gets a warning.
    pub fn end_all(&mut self, now: Instant, name: &dyn Fn(NodeId) -> String) -> String {
        let in_force = std::mem::take(&mut self.in_force);
        for e in &in_force {
            self.warn_cut(now, e);
        }
        let ended: Vec<String> = in_force.iter().map(|e| e.describe(now, name)).collect();
        if ended.is_empty() {
            return String::new();
        }
        format!(" (ends {})", ended.join(", "))
    }

    /// Draw the concrete fault of a random kind, and how long until its undo (from
    /// `undo_after` when the scenario sets it, else from the kind's own range).
    fn random_op(&mut self, kind: FaultKind, r: &dyn Resolver) -> Option<(Op, Duration)> {
        let (op, span) = self.random_op_of_kind(kind, r)?;
        Some(match self.undo_after {
            Some((lo, hi)) => {
                let (lo, hi) = (duration_nanos(lo), duration_nanos(hi));
                (op, Duration::from_nanos(self.rng.gen_range(lo..=hi)))
            }
            None => (op, span),
        })
    }

    fn random_op_of_kind(&mut self, kind: FaultKind, r: &dyn Resolver) -> Option<(Op, Duration)> {
        let rng = &mut self.rng;
        let up = |nodes: Vec<NodeId>| -> Vec<NodeId> {
            nodes.into_iter().filter(|n| r.is_up(*n)).collect()
        };
        let brokers = up(r.brokers());
        let pick = |rng: &mut ChaCha8Rng, v: &[NodeId]| v.choose(rng).copied();
        let span = |rng: &mut ChaCha8Rng, lo_ms: u64, hi_ms: u64| {
            Duration::from_millis(rng.gen_range(lo_ms..=hi_ms))
        };
        let target_broker = |rng: &mut ChaCha8Rng| -> Option<NodeId> {
            // Half the time aim at a partition leader: that is where acknowledged data lives.
            let parts = r.partitions();
            if rng.gen_bool(0.5) {
                if let Some((t, p)) = parts.choose(rng) {
                    if let Some(leader) = r.leader(t, *p).filter(|l| r.is_up(*l)) {
                        return Some(leader);
                    }
                }
            }
            pick(rng, &brokers)
        };
        Some(match kind {
            FaultKind::Crash => (
                Op::Crash(vec![target_broker(rng)?]),
                span(rng, 1_000, 15_000),
            ),
            FaultKind::PowerLoss => {
                // One broker most of the time; sometimes a correlated loss of several.
                let nodes = if rng.gen_bool(0.25) && brokers.len() > 1 {
                    let k = rng.gen_range(2..=brokers.len());
                    let mut all = brokers.clone();
                    all.shuffle(rng);
                    all.truncate(k);
                    all.sort();
                    all
                } else {
                    vec![target_broker(rng)?]
                };
                (
                    Op::PowerLoss {
                        nodes,
                        tear: rng.gen_bool(0.5),
                    },
                    span(rng, 1_000, 10_000),
                )
            }
            FaultKind::Pause => (Op::Pause(vec![target_broker(rng)?]), span(rng, 500, 20_000)),
            FaultKind::Partition => (
                random_partition(rng, &r.brokers(), r)?,
                span(rng, 1_000, 15_000),
            ),
            FaultKind::SlowLink => {
                let node = target_broker(rng)?;
                (
                    Op::SlowLink {
                        nodes: vec![node],
                        latency: span(rng, 10, 500),
                    },
                    span(rng, 2_000, 10_000),
                )
            }
            FaultKind::SlowDisk => {
                let node = target_broker(rng)?;
                (
                    Op::SlowDisk {
                        nodes: vec![node],
                        factor: rng.gen_range(5.0..100.0),
                    },
                    span(rng, 2_000, 10_000),
                )
            }
            FaultKind::ConsumerCrash => (
                Op::Crash(vec![pick(rng, &up(r.consumers()))?]),
                span(rng, 500, 5_000),
            ),
            FaultKind::ConsumerSlowdown => {
                let node = pick(rng, &up(r.consumers()))?;
                (
                    Op::Slowdown {
                        nodes: vec![node],
                        factor: rng.gen_range(3.0..30.0),
                    },
                    span(rng, 5_000, 20_000),
                )
            }
            FaultKind::ProducerCrash => (
                Op::Crash(vec![pick(rng, &up(r.producers()))?]),
                span(rng, 500, 5_000),
            ),
            FaultKind::ProducerPartition => {
                // A producer's host loses its network (half the time), or every producer's
                // at once (the application's hosts behind one failing switch or zone
                // uplink): what they have on the wire waits for TCP's retransmissions after
                // the heal, and their requests time out meanwhile.
                let producers = up(r.producers());
                let cut = if rng.gen_bool(0.5) {
                    producers
                } else {
                    vec![pick(rng, &producers)?]
                };
                if cut.is_empty() {
                    return None;
                }
                (
                    Op::Partition(vec![cut.clone(), everyone_but(&cut, r)]),
                    span(rng, 1_000, 15_000),
                )
            }
            FaultKind::Restart | FaultKind::Resume | FaultKind::Heal | FaultKind::AddPartitions => {
                return None
            }
        })
    }

    /// The plan as printable lines (the top of a replay).
    pub fn describe_plan(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if let Some(swarm) = &self.swarm {
            let kinds: Vec<String> = swarm
                .kinds
                .iter()
                .map(|(k, d)| format!("{k} every ~{:.1}s", d.as_secs_f64()))
                .collect();
            lines.push(format!("swarm: {}", kinds.join(", ")));
        }
        let scripted = self
            .due
            .iter()
            .filter(|(_, _, d)| matches!(d, Due::Scripted { .. }))
            .count();
        let random = self
            .due
            .iter()
            .filter(|(_, _, d)| matches!(d, Due::Random(_)))
            .count();
        lines.push(format!(
            "faults planned: {scripted} scripted, {random} random"
        ));
        for (at, _, due) in &self.due {
            match due {
                Due::Scripted { action, .. } => {
                    lines.push(format!("  {at} scripted {}", action.kind()))
                }
                Due::Random(kind) => lines.push(format!("  {at} random {kind}")),
                Due::Undo(_) => {}
            }
        }
        lines
    }
}

/// Each seed enables a non-empty random subset of `kinds`, each with a mean interval drawn
/// around `mean` and scaled so that the total fault rate stays near one per `mean`.
fn swarm_draw(kinds: &[FaultKind], mean: Duration, rng: &mut ChaCha8Rng) -> SwarmDraw {
    let mut chosen: Vec<FaultKind> = kinds
        .iter()
        .copied()
        .filter(|_| rng.gen_bool(0.6))
        .collect();
    if chosen.is_empty() {
        chosen.push(*kinds.choose(rng).expect("kinds is not empty"));
    }
    let n = chosen.len() as f64;
    let kinds = chosen
        .into_iter()
        .map(|k| {
            let scale = rng.gen_range(0.5..2.0) * n;
            (
                k,
                Duration::from_nanos((duration_nanos(mean) as f64 * scale) as u64),
            )
        })
        .collect();
    SwarmDraw { kinds }
}

fn exponential(rng: &mut ChaCha8Rng, mean: Duration) -> Duration {
    let u: f64 = rng.gen_range(f64::EPSILON..1.0);
    Duration::from_nanos((-u.ln() * duration_nanos(mean) as f64) as u64)
}

fn random_partition(rng: &mut ChaCha8Rng, brokers: &[NodeId], r: &dyn Resolver) -> Option<Op> {
    let mut shuffled = brokers.to_vec();
    shuffled.shuffle(rng);
    let victim = *shuffled.first()?;
    Some(match rng.gen_range(0..4) {
        // Isolate one broker from everything (clients and controller included).
        0 => {
            let mut others: Vec<NodeId> =
                brokers.iter().copied().filter(|b| *b != victim).collect();
            others.extend(r.controller());
            others.extend(r.consumers());
            others.extend(r.producers());
            Op::Partition(vec![vec![victim], others])
        }
        // Split the brokers in two (the controller goes with the larger side).
        1 if brokers.len() > 1 => {
            let k = rng.gen_range(1..brokers.len());
            let (a, b) = shuffled.split_at(k);
            let (mut small, mut large) = if a.len() <= b.len() {
                (a.to_vec(), b.to_vec())
            } else {
                (b.to_vec(), a.to_vec())
            };
            small.sort();
            large.sort();
            large.extend(r.controller());
            Op::Partition(vec![small, large])
        }
        // One-way: the victim can send but not receive.
        2 => {
            let mut others: Vec<NodeId> =
                brokers.iter().copied().filter(|b| *b != victim).collect();
            others.extend(r.controller());
            Op::PartitionOneWay(others, vec![victim])
        }
        // Bridge: two halves that only the victim connects.
        _ if brokers.len() >= 3 => {
            let rest: Vec<NodeId> = shuffled[1..].to_vec();
            let half = rest.len() / 2;
            Op::Bridge {
                a: rest[..half].to_vec(),
                bridge: victim,
                b: rest[half..].to_vec(),
            }
        }
        _ => Op::Partition(vec![
            vec![victim],
            brokers.iter().copied().filter(|b| *b != victim).collect(),
        ]),
    })
}

/// Whether `op` is a network fault (what a scheduled `heal` lifts).
fn is_network(op: &Op) -> bool {
    matches!(
        op,
        Op::Partition(_) | Op::PartitionOneWay(..) | Op::Bridge { .. } | Op::SlowLink { .. }
    )
}

/// The fault kind of an operation, for one that did not fire as a kind of its own.
fn natural_kind(op: &Op) -> FaultKind {
    match op {
        Op::Crash(_) => FaultKind::Crash,
        Op::PowerLoss { .. } => FaultKind::PowerLoss,
        Op::Pause(_) => FaultKind::Pause,
        Op::SlowLink { .. } => FaultKind::SlowLink,
        Op::SlowDisk { .. } => FaultKind::SlowDisk,
        Op::Slowdown { .. } => FaultKind::ConsumerSlowdown,
        Op::Restart(_) => FaultKind::Restart,
        Op::Resume(_) => FaultKind::Resume,
        Op::Heal | Op::Lift(_) => FaultKind::Heal,
        Op::AddPartitions { .. } => FaultKind::AddPartitions,
        Op::Partition(_) | Op::PartitionOneWay(..) | Op::Bridge { .. } => FaultKind::Partition,
    }
}

/// The operation that undoes `op`, if it has one.
fn undo_of(op: &Op) -> Option<Op> {
    Some(match op {
        Op::Crash(n) => Op::Restart(n.clone()),
        Op::PowerLoss { nodes, .. } => Op::Restart(nodes.clone()),
        Op::Pause(n) => Op::Resume(n.clone()),
        // Each ends exactly what it imposed (a slow disk or slowdown its own factor), so
        // that overlapping faults of one target each last their own time.
        Op::Partition(_)
        | Op::PartitionOneWay(..)
        | Op::Bridge { .. }
        | Op::SlowLink { .. }
        | Op::SlowDisk { .. }
        | Op::Slowdown { .. } => Op::Lift(Box::new(op.clone())),
        Op::Restart(_) | Op::Resume(_) | Op::Heal | Op::Lift(_) | Op::AddPartitions { .. } => {
            return None
        }
    })
}

/// One line describing an operation, naming nodes by `name`.
pub fn describe(op: &Op, name: &dyn Fn(NodeId) -> String) -> String {
    let ids = |v: &[NodeId]| v.iter().map(|n| name(*n)).collect::<Vec<_>>().join(",");
    match op {
        Op::Crash(n) => format!("crash {}", ids(n)),
        Op::Restart(n) => format!("restart {}", ids(n)),
        Op::PowerLoss { nodes, tear } => format!(
            "power-loss {}{}",
            ids(nodes),
            if *tear { " (tear)" } else { "" }
        ),
        Op::Pause(n) => format!("pause {}", ids(n)),
        Op::Resume(n) => format!("resume {}", ids(n)),
        Op::Partition(groups) => {
            let g: Vec<String> = groups.iter().map(|g| format!("[{}]", ids(g))).collect();
            format!("partition {}", g.join(" | "))
        }
        Op::PartitionOneWay(a, b) => format!("partition one-way [{}] -> [{}]", ids(a), ids(b)),
        Op::Bridge { a, bridge, b } => {
            format!(
                "partition bridge [{}] <-{}-> [{}]",
                ids(a),
                name(*bridge),
                ids(b)
            )
        }
        Op::Heal => "heal".to_string(),
        Op::Lift(op) => format!("heal {}", describe(op, name)),
        Op::SlowLink { nodes, latency } => {
            format!("slow-link {} +{}", ids(nodes), format_span(*latency))
        }
        Op::SlowDisk { nodes, factor } => format!("slow-disk {} x{factor:.1}", ids(nodes)),
        Op::Slowdown { nodes, factor } => format!("slowdown {} x{factor:.1}", ids(nodes)),
        Op::AddPartitions { topic, count } => format!("add-partitions {topic} +{count}"),
    }
}

#[cfg(test)]
mod tests;
