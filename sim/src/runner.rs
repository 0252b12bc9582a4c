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

mod build;
mod prepare;
use build::{apply, build, heal, Handles, View};
pub use prepare::prepare;
use prepare::{PreparedGroup, PreparedProducer};

use crate::campaign::{GroupStats, RunStats, SeedResult};
use crate::checker::{check_history, CheckConfig, GroupCheck};
use crate::coverage::{self, RunFacts};
use crate::drain::{DrainTracker, GroupInfo, StallCause, StallContext};
use crate::history::History;
use crate::invariants::DivergenceCheck;
use crate::names::Names;
use crate::nemesis::{AppliedFault, Nemesis, Op};
use crate::readiness::{self, ReadyOutcome, Released};
use crate::scenario::{AfterBacklog, Drain, FaultKind, Scenario, ScheduledFault};
use crate::seed::{rng_for, stream};
use crate::trace::{TraceEvent, TraceLevel};
use crate::violation::{Violation, ViolationKind};
use crate::world::{RunOutcome, World, WorldConfig};
use kafsim_engine::broker::config::BrokerConfig;
use kafsim_engine::consumer::Consumer;
use kafsim_engine::history::HistoryEvent;
use kafsim_engine::producer::OnError;
use kafsim_engine::producer::Producer;
use kafsim_engine::{Duration, Instant, NodeId, TopicId, TopicPartition};
use std::collections::BTreeMap;
use std::fmt::Write as _;

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
    /// Called with the built world before it runs, to add nodes or invariants of the
    /// caller's own: the runner's tests add a node that panics on a given event, so that
    /// the panic path is exercised as any run takes it.
    pub extend: Option<fn(&mut World)>,
    /// Start every producer's application at instant zero instead of a random instant of
    /// its first second ([`kafsim_engine::producer::ProducerSpec::start_phase`]). For tests
    /// that time a fault by hand against one batch cycle, to pin one interleaving; no run a
    /// user starts sets it (their services are never started in step with a fault script).
    pub producers_in_step: bool,
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
    fn note<'a>(
        &mut self,
        entries: impl Iterator<Item = &'a crate::history::HistoryEntry>,
        safety_end: Instant,
    ) {
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
        for slice in w.history().slices() {
            (stream.consume)(Streamed::History(slice));
        }
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
    if let Some(extend) = opts.extend {
        extend(&mut w);
    }
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

    let mut ready = None;
    let mut divergence = DivergenceCheck::default();
    let mut heal_at = Instant::ZERO;
    let mut stalled: Option<StallCause> = None;
    let liveness = p.liveness();
    // Everything that drives the world, caught: an engine panic stops the run here, and the
    // world and the nemesis, as they were when it panicked, explain it (`panicked`).
    let driven = crate::campaign::catch_run(|| {
        // A bench's readiness phase: the load, its faults and its backlog phase start when
        // every group can read.
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
        heal_at = w.now();
        let ended = nemesis.end_all(heal_at, &|n| w.name(n).to_string());
        nemesis.log.push(format!(
            "{heal_at} heal: all faults lifted, every node up{ended}"
        ));
        tracker.scan(w.history());
        tracker.healed(heal_at);
        let drain_end = heal_at
            + match s.drain {
                Drain::Auto => liveness.cap,
                Drain::Bound(d) => d,
            };
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
    });
    if let Err(message) = driven {
        return panicked(Panicked {
            p,
            seed,
            opts,
            w,
            h: &h,
            nemesis,
            plan,
            message,
            ready,
            wall,
        });
    }
    let fault_log = std::mem::take(&mut nemesis.log);
    let faults = std::mem::take(&mut nemesis.applied);
    // The fault mix: a nemesis line is "<time> <action> ..." (see `nemesis::describe`); the
    // last line is the heal of the end of the safety phase.
    let mut fault_mix: BTreeMap<String, u64> = BTreeMap::new();
    for line in &fault_log[..fault_log.len() - 1] {
        if let Some(action) = line.split_whitespace().nth(1).filter(|a| *a != "skipped") {
            *fault_mix.entry(action.to_string()).or_insert(0) += 1;
        }
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
    let names = run_names(p, &w, &h);
    let mut check_config = CheckConfig::new(w.now(), checks).with_names(names.clone());
    check_config.ignoring_errors = p
        .producers
        .iter()
        .filter(|producer| producer.config.on_error == OnError::Ignore)
        .map(|producer| producer.index)
        .collect();
    check_config.ordering = p
        .producers
        .iter()
        .map(|producer| {
            let c = &producer.config;
            let ordering = crate::checker::cause::Ordering {
                words: c.ordering_words(),
                may_reorder: c.may_reorder(),
                idempotent: c.enable_idempotence,
            };
            (producer.index, ordering)
        })
        .collect();
    check_config.keyless_partitioners = p
        .producers
        .iter()
        .filter(|producer| !producer.config.partitioner.hashes_keys())
        .map(|producer| (producer.index, producer.config.partitioner.name()))
        .collect();
    // Everything the rest needs from the world, taken before the world is dropped: the
    // history checkers build their tables after it is gone, so the run's peak memory is the
    // larger of the two (the engine's logs and sinks, or the checkers' tables), not their sum.
    let late_requests = w.late_requests().to_vec();
    let events = w.stats().events;
    let end = w.now();
    let producer_epoch_bumps = h
        .producers
        .iter()
        .filter_map(|p| w.node::<Producer>(*p))
        .map(|p| p.stats().epoch_bumps)
        .sum();
    let disk_throttled_s = h
        .cluster
        .brokers
        .iter()
        .map(|&b| {
            let throttled = w.disk(b).throttled();
            (w.name(b).to_string(), throttled.as_secs_f64())
        })
        .collect();
    let trace_hash = w.trace_hash();
    let trace_events = w.trace_events().to_vec();
    drop(w);
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
    crate::late::explain(&mut violations, &late_requests, &history, &names);
    violations.sort_by(crate::checker::violation_order);

    let mut stats = RunStats {
        events,
        sim_seconds: end.as_secs_f64(),
        load_seconds,
        sim_nanos: end.as_nanos(),
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
    for (pr, phase) in p.producers.iter().zip(&h.phases) {
        let sent = counts.sent_by.get(pr.index as usize).copied().unwrap_or(0);
        // Its rate asks for sends from its first one, at its start phase, to the end of the load.
        let asked_seconds = (load_seconds - phase.as_secs_f64()).max(0.0);
        stats
            .producers
            .insert(names.producer(pr.index), pr.stats(sent, asked_seconds));
    }
    let sessions: BTreeMap<NodeId, Duration> = (groups.iter())
        .flat_map(|g| {
            let session = (p.groups.iter())
                .find(|pg| pg.index == g.index)
                .map_or(Duration::ZERO, |pg| pg.config.session_timeout);
            g.members.iter().map(move |m| (*m, session))
        })
        .collect();
    stats.coverage = coverage::of_run(&RunFacts {
        requested: &requested_faults(s),
        faults: &faults,
        history: &history,
        heal_at,
        producer_epoch_bumps,
        sessions: &sessions,
    });
    stats.coverage.note_warnings(seed, &nemesis.warnings);
    stats.wall_seconds = wall.elapsed().as_secs_f64();
    RunOutput {
        disk_throttled_s,
        result: SeedResult {
            seed,
            violations,
            stats,
            trace_hash,
        },
        history: (opts.keep_history && !opts.stream).then_some(history),
        plan,
        fault_log,
        faults,
        trace_events,
        names,
        random_faults: crate::script::schedule_of(&nemesis.fired, &|n| h.target_of(n)),
        drained,
        ready,
    }
}

/// How a run names its nodes, topics, groups and static members.
fn run_names(p: &Prepared, w: &World, h: &Handles) -> Names {
    let group_names: Vec<String> = p.groups.iter().map(|g| g.name.clone()).collect();
    let mut names = Names::of_world(w, &h.cluster.topic_names(), &group_names);
    for g in &p.groups {
        if let Some(id) = &g.config.group_instance_id {
            names.set_instance(g.index, id.clone());
        }
    }
    names
}

/// A run the engine panicked in, as it was at that moment.
struct Panicked<'a> {
    p: &'a Prepared,
    seed: u64,
    opts: &'a RunOptions,
    w: World,
    h: &'a Handles,
    nemesis: Nemesis,
    plan: Vec<String>,
    /// The panic's message and location (`campaign::catch_run`).
    message: String,
    ready: Option<ReadyOutcome>,
    wall: std::time::Instant,
}

/// The output of a run that panicked: one `panic` violation that explains itself (the
/// simulated time, the node by its name, the event it was handling, the panic's message and
/// location, the faults in force and the fault log up to then), and what the run recorded
/// until then: the fault log, the trace up to and including the event that panicked (so
/// `replay --trace` shows how the run got there), the history, the trace hash and the
/// counts. Nothing is checked: the world's state after a panic is not a result.
fn panicked(run: Panicked<'_>) -> RunOutput {
    let Panicked {
        p,
        seed,
        opts,
        mut w,
        h,
        mut nemesis,
        plan,
        message,
        ready,
        wall,
    } = run;
    let names = run_names(p, &w, h);
    let name = |n: NodeId| names.node(n);
    let now = w.now();
    let mut detail = message;
    let (node, event) = match w.handling() {
        Some(handling) => {
            let node = name(handling.node);
            let event = handling.describe(&name);
            let _ = write!(detail, "\n  at {now} in {node}, handling {event}");
            (Some(node), Some(event))
        }
        None => {
            let _ = write!(detail, "\n  at {now}, outside any node's handler");
            (None, None)
        }
    };
    let in_force = nemesis.in_force(&name);
    if in_force.is_empty() {
        detail.push_str("\n  faults in force: none");
    } else {
        detail.push_str("\n  faults in force:");
        for line in &in_force {
            let _ = write!(detail, "\n    {line}");
        }
    }
    if nemesis.log.is_empty() {
        detail.push_str("\n  fault log up to then: empty");
    } else {
        detail.push_str("\n  fault log up to then:");
        for line in &nemesis.log {
            let _ = write!(detail, "\n    {line}");
        }
    }
    let mut violation = Violation::new(ViolationKind::Panic, now, detail);
    violation.node = node;
    violation.event = event;
    let mut fault_log = std::mem::take(&mut nemesis.log);
    fault_log.push(format!(
        "{now} the engine panicked: the run stopped here, with {} fault(s) in force",
        in_force.len()
    ));
    let faults = std::mem::take(&mut nemesis.applied);
    let history = w.take_history();
    let mut counts = Counts::default();
    counts.note(history.entries(), Instant::ZERO + p.scenario.duration);
    let stats = RunStats {
        events: w.stats().events,
        sim_seconds: now.as_secs_f64(),
        load_seconds: p.scenario.duration.as_secs_f64(),
        sim_nanos: now.as_nanos(),
        load_nanos: kafsim_engine::time::duration_nanos(p.scenario.duration),
        records_produced: counts.produced,
        records_acked: counts.acked,
        records_consumed: counts.consumed,
        records_refused: counts.refused,
        wall_seconds: wall.elapsed().as_secs_f64(),
        ..RunStats::default()
    };
    RunOutput {
        disk_throttled_s: Vec::new(),
        result: SeedResult {
            seed,
            violations: vec![violation],
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
        drained: false,
        ready,
    }
}

/// The fault kinds the scenario asks for: its random kinds and its scripted actions.
fn requested_faults(s: &Scenario) -> Vec<FaultKind> {
    let mut requested: Vec<FaultKind> = Vec::new();
    if s.faults.random {
        requested.extend(s.faults.kinds.iter().copied());
    }
    requested.extend(s.faults.schedule.iter().map(|f| f.action.kind()));
    requested
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
                    .flat_map(|&topic| partitions_of(h, topic))
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
