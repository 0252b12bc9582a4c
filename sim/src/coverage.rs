//! Campaign coverage: did the faults a scenario asks for fire, did they touch anything a
//! client can see, and which interesting states did the runs reach? A green campaign whose
//! faults did nothing must not look like a pass, so the summary warns about a requested fault
//! kind that never fired or never affected a client-visible operation.
//!
//! Computed per run from what the runner already has — the applied faults (the nemesis's
//! record), the history (facts nodes recorded) and, for producer epoch bumps, the read-only
//! producer statistics — and summed over seeds, so the result does not depend on `--jobs`.
//!
//! A fault *affected a client-visible operation* when, between the moment it fired and
//! [`AFTER_UNDO`] after it was undone (or after the heal, for faults nothing undoes), a client
//! saw one of: a send that failed or has an unknown outcome, a failed commit, a rebalance
//! (a new assignment), a reset of a consumer position, a new leader of a partition (clients
//! must find it: NotLeaderOrFollower, metadata refresh), or a truncation of a log. A fault
//! of a consumer group member also counts what follows until its session could run out
//! (`session.timeout.ms` after it fired, then [`AFTER_UNDO`]): the group rebalances away from
//! a crashed member only then, whenever its process came back.

use crate::history::History;
use crate::nemesis::{AppliedFault, FaultWarning};
use crate::scenario::FaultKind;
use kafsim_engine::history::HistoryEvent;
use kafsim_engine::protocol::ErrorCode;
use kafsim_engine::{Duration, Instant, NodeId, TopicPartition};
use std::collections::{BTreeMap, BTreeSet};

/// How long after a fault is undone its consequences still count as its own: a session
/// timeout or a metadata refresh takes seconds to show.
pub const AFTER_UNDO: Duration = Duration::from_secs(10);

/// The interesting states, by the names the summary and JSON print.
pub const STATES: [&str; 6] = [
    "isr-shrunk-to-leader",
    "unclean-election",
    "leader-epoch-bump",
    "rebalance",
    "producer-epoch-bump",
    "truncation-below-hw",
];

/// How often one fault kind fired and affected clients.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FaultCount {
    /// Times the fault kind fired (undos not counted).
    pub fired: u64,
    /// Of those, how many were followed by a client-visible effect (see the module docs).
    pub affected: u64,
}

/// Runs in which one scripted fault did less than asked (a [`FaultWarning`]'s `what`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FaultNote {
    /// Runs it happened in.
    pub runs: u64,
    /// The lowest seed it happened in, and why there: the example the warning gives.
    pub seed: u64,
    pub why: String,
}

/// Coverage of one run, or the sum over a campaign.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Coverage {
    /// Every requested fault kind (also those that never fired), by name.
    pub faults: BTreeMap<String, FaultCount>,
    /// Per interesting state: (runs that reached it, occurrences).
    pub states: BTreeMap<String, (u64, u64)>,
    /// Scripted faults that did less than asked (a target that named no node, a duration
    /// the end of the load phase cut short), by what happened.
    pub scripted: BTreeMap<String, FaultNote>,
    /// Runs summed.
    pub runs: u64,
}

impl Coverage {
    pub fn add(&mut self, other: &Coverage) {
        for (k, c) in &other.faults {
            let mine = self.faults.entry(k.clone()).or_default();
            mine.fired += c.fired;
            mine.affected += c.affected;
        }
        for (k, (runs, n)) in &other.states {
            let mine = self.states.entry(k.clone()).or_default();
            mine.0 += runs;
            mine.1 += n;
        }
        for (what, n) in &other.scripted {
            match self.scripted.get_mut(what) {
                Some(mine) => {
                    mine.runs += n.runs;
                    if n.seed < mine.seed {
                        mine.seed = n.seed;
                        mine.why.clone_from(&n.why);
                    }
                }
                None => {
                    self.scripted.insert(what.clone(), n.clone());
                }
            }
        }
        self.runs += other.runs;
    }

    /// Note the scripted faults of one run (seed `seed`) that did less than asked.
    pub fn note_warnings(&mut self, seed: u64, warnings: &[FaultWarning]) {
        for w in warnings {
            let note = self.scripted.entry(w.what.clone()).or_insert(FaultNote {
                runs: 0,
                seed,
                why: w.why.clone(),
            });
            note.runs += 1;
        }
    }

    /// Warnings: requested fault kinds that never fired, or never affected clients.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (kind, c) in &self.faults {
            if c.fired == 0 {
                out.push(format!(
                    "warning: fault kind {kind} was requested but never fired in {} runs",
                    self.runs
                ));
            } else if c.affected == 0 {
                out.push(format!(
                    "warning: fault kind {kind} fired {} times but never affected a \
                     client-visible operation (no failed or unknown send, failed commit, \
                     rebalance, position reset, leader change or truncation followed it)",
                    c.fired
                ));
            }
        }
        for (what, n) in &self.scripted {
            if self.runs <= 1 {
                out.push(format!("warning: {what}: {}", n.why));
            } else {
                out.push(format!(
                    "warning: {what}, in {} of {} runs (seed {}: {})",
                    n.runs, self.runs, n.seed, n.why
                ));
            }
        }
        out
    }
}

/// Everything a run's coverage is computed from.
pub struct RunFacts<'a> {
    /// Fault kinds the scenario asks for (random kinds and scripted actions).
    pub requested: &'a [FaultKind],
    pub faults: &'a [AppliedFault],
    pub history: &'a History,
    /// When the heal lifted every fault.
    pub heal_at: Instant,
    /// Producer epoch bumps counted by the producers alive at the end.
    pub producer_epoch_bumps: u64,
    /// Each group member's `session.timeout.ms`, by its node.
    pub sessions: &'a BTreeMap<NodeId, Duration>,
}

/// The coverage of one run.
pub fn of_run(f: &RunFacts) -> Coverage {
    let mut cov = Coverage {
        runs: 1,
        ..Coverage::default()
    };
    for k in f.requested.iter().filter(|k| is_fault(**k)) {
        cov.faults.entry(k.as_str().to_string()).or_default();
    }
    let effects = client_visible_times(f.history);
    for a in f.faults {
        let Some(kind) = a.kind.filter(|k| is_fault(*k)) else {
            continue;
        };
        let undone = a.undo_after.map_or(f.heal_at, |d| a.at + d);
        let session = (a.nodes().iter())
            .filter_map(|n| f.sessions.get(n))
            .max()
            .map_or(undone, |s| a.at + *s);
        let until = undone.max(session) + AFTER_UNDO;
        let i = effects.partition_point(|t| *t < a.at);
        let affected = effects.get(i).is_some_and(|t| *t <= until);
        let c = cov.faults.entry(kind.as_str().to_string()).or_default();
        c.fired += 1;
        c.affected += affected as u64;
    }
    let mut counts = states(f.history);
    counts.insert("producer-epoch-bump", f.producer_epoch_bumps);
    for (s, n) in counts {
        if n > 0 {
            cov.states.insert(s.to_string(), (1, n));
        }
    }
    cov
}

/// Restart, resume and heal undo faults; they are not faults of their own.
fn is_fault(k: FaultKind) -> bool {
    !matches!(k, FaultKind::Restart | FaultKind::Resume | FaultKind::Heal)
}

/// The times of client-visible effects, sorted.
fn client_visible_times(history: &History) -> Vec<Instant> {
    history
        .entries()
        .filter(|e| match &e.event {
            HistoryEvent::SendFail { .. }
            | HistoryEvent::SendInfo { .. }
            | HistoryEvent::Assigned { .. }
            | HistoryEvent::PositionReset { .. }
            | HistoryEvent::Truncated { .. } => true,
            HistoryEvent::Commit { error, .. } => *error != ErrorCode::None,
            HistoryEvent::BecameLeader { leader_epoch, .. } => *leader_epoch > 0,
            _ => false,
        })
        .map(|e| e.at)
        .collect()
}

/// Occurrences of the interesting states the history shows.
fn states(history: &History) -> BTreeMap<&'static str, u64> {
    let mut n: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut isr: BTreeMap<TopicPartition, (u32, Vec<NodeId>)> = BTreeMap::new();
    let mut epochs: BTreeMap<TopicPartition, u32> = BTreeMap::new();
    let mut hw: BTreeMap<TopicPartition, u64> = BTreeMap::new();
    let mut generations: BTreeSet<(u32, i32)> = BTreeSet::new();
    for e in history.entries() {
        match &e.event {
            HistoryEvent::IsrChanged {
                partition,
                leader_epoch,
                isr: new,
            } => {
                if let Some((epoch, old)) = isr.get(partition) {
                    if new.len() == 1 && old.len() > 1 {
                        *n.entry("isr-shrunk-to-leader").or_default() += 1;
                    }
                    // Election outside the ISR: a new epoch whose ISR has a broker the old
                    // one did not (Kafka sets the ISR to the unclean leader alone).
                    if leader_epoch > epoch && new.iter().any(|b| !old.contains(b)) {
                        *n.entry("unclean-election").or_default() += 1;
                    }
                }
                isr.insert(*partition, (*leader_epoch, new.clone()));
            }
            HistoryEvent::BecameLeader {
                partition,
                leader_epoch,
                ..
            } => {
                let top = epochs.entry(*partition).or_insert(*leader_epoch);
                if *leader_epoch > *top {
                    *top = *leader_epoch;
                    *n.entry("leader-epoch-bump").or_default() += 1;
                }
            }
            HistoryEvent::HighWatermark {
                partition,
                high_watermark,
                ..
            } => {
                let h = hw.entry(*partition).or_default();
                *h = (*h).max(*high_watermark);
            }
            HistoryEvent::Truncated {
                partition, offset, ..
            } if hw.get(partition).is_some_and(|h| offset < h) => {
                *n.entry("truncation-below-hw").or_default() += 1;
            }
            // The first generation is the group forming, not a rebalance.
            HistoryEvent::Assigned {
                group, generation, ..
            } if *generation > 1 && generations.insert((*group, *generation)) => {
                *n.entry("rebalance").or_default() += 1;
            }
            _ => {}
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::test_support::*;
    use crate::nemesis::Op;

    fn fault(at_ms: u64, kind: FaultKind, undo_ms: Option<u64>) -> AppliedFault {
        AppliedFault {
            at: Instant::from_millis(at_ms),
            kind: Some(kind),
            op: Op::Crash(vec![NodeId(1)]),
            undo_after: undo_ms.map(Duration::from_millis),
            note: String::new(),
        }
    }

    fn facts<'a>(
        requested: &'a [FaultKind],
        faults: &'a [AppliedFault],
        history: &'a History,
    ) -> RunFacts<'a> {
        static NO_SESSIONS: BTreeMap<NodeId, Duration> = BTreeMap::new();
        RunFacts {
            requested,
            faults,
            history,
            heal_at: Instant::from_millis(100_000),
            producer_epoch_bumps: 0,
            sessions: &NO_SESSIONS,
        }
    }

    #[test]
    fn a_fault_followed_by_a_client_visible_effect_counts_and_one_that_never_fired_warns() {
        let mut s = Story::new();
        s.send(1, 0, 1, 0, 0);
        s.fail(2_000, 0, 2); // within the crash at 1 s, undone after 500 ms (+10 s)
        let requested = [FaultKind::Crash, FaultKind::Partition];
        let faults = [fault(1_000, FaultKind::Crash, Some(500))];
        let cov = of_run(&facts(&requested, &faults, s.history()));
        assert_eq!(
            cov.faults["crash"],
            FaultCount {
                fired: 1,
                affected: 1
            }
        );
        assert_eq!(cov.faults["partition"], FaultCount::default());
        let warnings = cov.warnings();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("partition was requested but never fired"));
    }

    #[test]
    fn a_fault_with_no_effect_in_its_window_warns_that_it_did_nothing() {
        let mut s = Story::new();
        s.send(1, 0, 1, 0, 0);
        s.fail(30_000, 0, 2); // long after the crash's window (1 s + 500 ms + 10 s)
        let requested = [FaultKind::Crash];
        let faults = [fault(1_000, FaultKind::Crash, Some(500))];
        let cov = of_run(&facts(&requested, &faults, s.history()));
        assert_eq!(cov.faults["crash"].affected, 0);
        assert!(cov.warnings()[0].contains("never affected a client-visible operation"));
    }

    #[test]
    fn a_crashed_member_s_rebalance_counts_until_its_session_could_run_out() {
        let mut s = Story::new();
        s.send(1, 0, 1, 0, 0);
        // The member crashed at 1 s for 500 ms; its group moves its partitions when its
        // 45 s session runs out: a rebalance at 46 s is the crash's doing.
        s.fail(46_000, 0, 2);
        let requested = [FaultKind::ConsumerCrash];
        let faults = [fault(1_000, FaultKind::ConsumerCrash, Some(500))];
        let member = BTreeMap::from([(NodeId(1), Duration::from_secs(45))]);
        let other = BTreeMap::from([(NodeId(2), Duration::from_secs(45))]);
        let with = |sessions| RunFacts {
            sessions,
            ..facts(&requested, &faults, s.history())
        };
        assert_eq!(of_run(&with(&member)).faults["consumer-crash"].affected, 1);
        // A node that is no group member keeps the short window.
        assert_eq!(of_run(&with(&other)).faults["consumer-crash"].affected, 0);
    }

    #[test]
    fn states_are_counted_from_the_history_and_summed_over_runs() {
        let mut s = Story::new();
        let isr = |epoch, brokers: &[u32]| HistoryEvent::IsrChanged {
            partition: tp(0),
            leader_epoch: epoch,
            isr: brokers.iter().map(|b| NodeId(*b)).collect(),
        };
        let leader = |epoch| HistoryEvent::BecameLeader {
            broker: NodeId(2),
            partition: tp(0),
            leader_epoch: epoch,
            log_end_offset: 0,
        };
        // In time order, as the history requires.
        s.event(1, isr(0, &[1, 2, 3])).event(1, leader(0));
        s.event(2, isr(0, &[1])); // shrunk to the leader
        s.event(3, isr(1, &[2])); // unclean: 2 was not in the ISR
        s.event(3, leader(1));
        s.event(
            4,
            HistoryEvent::HighWatermark {
                broker: NodeId(1),
                partition: tp(0),
                leader_epoch: 0,
                high_watermark: 10,
            },
        );
        s.event(
            5,
            HistoryEvent::Truncated {
                broker: NodeId(1),
                partition: tp(0),
                offset: 4,
                reason: "diverging epoch",
            },
        );
        s.assign(6, 0, 0, &[0]); // generation 1: forming, not a rebalance
        s.event(
            7,
            HistoryEvent::Assigned {
                group: 0,
                member: 1,
                generation: 2,
                partitions: vec![tp(0)],
            },
        );
        let cov = of_run(&facts(&[], &[], s.history()));
        for state in [
            "isr-shrunk-to-leader",
            "unclean-election",
            "leader-epoch-bump",
            "truncation-below-hw",
            "rebalance",
        ] {
            assert_eq!(cov.states.get(state), Some(&(1, 1)), "{state}: {cov:?}");
        }
        assert_eq!(cov.states.get("producer-epoch-bump"), None);
        let mut sum = Coverage::default();
        sum.add(&cov);
        sum.add(&of_run(&facts(&[], &[], Story::new().history())));
        assert_eq!(sum.runs, 2);
        assert_eq!(sum.states["rebalance"], (1, 1));
    }
}
