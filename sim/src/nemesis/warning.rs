//! Scripted faults that did less than the scenario asked, said out loud: a target that named
//! no node when the fault fired (`leader:orders/0` while that partition had no leader: the
//! fault then hit nobody, or left that side of a partition empty), and a `duration` that ran
//! past the load phase (the heal at its end lifts the fault early). Either would otherwise
//! leave the user reading a run they did not ask for, with no line saying so.

use super::{op_nodes, InForce, Nemesis, Op, Resolver};
use crate::scenario::{format_duration, format_span, FaultAction, FaultKind, Target};
use kafsim_engine::{Duration, Instant, NodeId};

/// One scripted fault that did less than asked, in one run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultWarning {
    /// Which fault and what went wrong, the same in every seed (it names the fault as the
    /// scenario wrote it, never a node a target resolved to): campaigns count runs by it.
    pub what: String,
    /// Why, in this run: `orders/0 had no leader at 10000.000ms: broker-0, its leader in
    /// the controller's metadata, was paused since 8488.145ms`.
    pub why: String,
}

/// A scripted fault with a `duration`, as the scenario wrote it.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Written {
    at: Duration,
    lasts: Duration,
    /// `pause at 50s (broker:0)`.
    text: String,
}

impl Written {
    pub(super) fn new(at: Duration, lasts: Duration, action: &FaultAction) -> Written {
        Written {
            at,
            lasts,
            text: written(at, action),
        }
    }
}

/// A scripted fault as the scenario wrote it: `partition at 10s ([leader:orders/0] ->
/// [producer:0])`, `pause at 50s (broker:0)`.
fn written(at: Duration, action: &FaultAction) -> String {
    let group = |g: &Vec<Target>| {
        let names: Vec<String> = g.iter().map(Target::to_string).collect();
        format!("[{}]", names.join(","))
    };
    let targets = match action {
        FaultAction::Partition { groups, one_way } => {
            let sides: Vec<String> = groups.iter().map(group).collect();
            sides.join(if *one_way { " -> " } else { " | " })
        }
        other => {
            let names: Vec<String> = other.targets().iter().map(|t| t.to_string()).collect();
            names.join(" ")
        }
    };
    format!("{} at {} ({targets})", action.kind(), format_duration(at))
}

/// Whether an operation does nothing: no operation at all, or a partition with fewer than
/// two non-empty sides (a one-way partition from or to nobody).
fn cuts_nothing(op: Option<&Op>) -> bool {
    match op {
        None => true,
        Some(Op::PartitionOneWay(from, to)) => from.is_empty() || to.is_empty(),
        Some(Op::Partition(groups)) => groups.iter().filter(|g| !g.is_empty()).count() < 2,
        Some(_) => false,
    }
}

impl Nemesis {
    /// Warn about each target of a scripted fault that names no node at `now` (`op` is what
    /// the fault resolved to, `at` its time as written).
    pub(super) fn warn_unresolved(
        &mut self,
        now: Instant,
        at: Duration,
        action: &FaultAction,
        op: Option<&Op>,
        r: &dyn Resolver,
    ) {
        let empty: Vec<&Target> = (action.targets().into_iter())
            .filter(|t| super::resolve(t, r).is_empty())
            .collect();
        if empty.is_empty() {
            return;
        }
        let names: Vec<String> = empty.iter().map(|t| t.to_string()).collect();
        let reasons: Vec<String> = empty.iter().map(|t| self.why_no_node(now, t, r)).collect();
        let effect = if cuts_nothing(op) {
            match action.kind() {
                FaultKind::Partition | FaultKind::ProducerPartition => {
                    "so the partition cut nothing"
                }
                _ => "so it was not applied",
            }
        } else {
            "so it went ahead without that target"
        };
        self.warnings.push(FaultWarning {
            what: format!(
                "scripted {}: {} named no node when it fired",
                written(at, action),
                names.join(" and ")
            ),
            why: format!("{}, {effect}", reasons.join("; ")),
        });
    }

    /// Why `target` names no node at `now`, from the cluster's metadata and the faults in
    /// force.
    fn why_no_node(&self, now: Instant, target: &Target, r: &dyn Resolver) -> String {
        match target {
            Target::Leader { topic, partition } => {
                let tp = format!("{topic}/{partition}");
                match r.named_leader(topic, *partition) {
                    Some(Some(n)) if !r.is_up(n) => format!(
                        "{tp} had no leader at {now}: {}, its leader in the controller's \
                         metadata, {}",
                        r.name(n),
                        self.down_state(n)
                    ),
                    Some(Some(n)) => format!(
                        "{tp} had no leader at {now}: the controller had elected {}, which had \
                         not taken the leadership yet",
                        r.name(n)
                    ),
                    Some(None) => format!(
                        "{tp} had no leader at {now}: it was offline (no replica in its ISR \
                         the controller could elect){}",
                        self.down_brokers(r)
                    ),
                    None => format!(
                        "{tp} had no leader at {now}: no active controller knew the partition \
                         (none was active, or it was not created yet){}",
                        self.down_brokers(r)
                    ),
                }
            }
            Target::Follower { topic, partition } => format!(
                "{topic}/{partition} had no follower at {now}{}",
                self.down_brokers(r)
            ),
            Target::Controller => format!("no controller was active at {now}"),
            other => format!("{other} named no node at {now}"),
        }
    }

    /// `, broker-0 paused since 8488.145ms and broker-2 down since ...`: the brokers that were
    /// not up, with the fault that stopped each (empty when every broker was up).
    fn down_brokers(&self, r: &dyn Resolver) -> String {
        let down: Vec<String> = (r.brokers().into_iter())
            .filter(|b| !r.is_up(*b))
            .map(|b| format!("{} {}", r.name(b), self.down_state(b)))
            .collect();
        if down.is_empty() {
            String::new()
        } else {
            format!(" ({})", down.join(", "))
        }
    }

    /// `was paused since 8488.145ms`: the fault in force that stopped `node`.
    fn down_state(&self, node: NodeId) -> String {
        let stopped = self.in_force.iter().rev().find(|e| {
            matches!(e.op, Op::Crash(_) | Op::PowerLoss { .. } | Op::Pause(_))
                && op_nodes(&e.op).contains(&node)
        });
        match stopped {
            Some(e) => match e.op {
                Op::Pause(_) => format!("was paused since {}", e.began),
                Op::PowerLoss { .. } => format!("had lost power at {}", e.began),
                _ => format!("had crashed at {}", e.began),
            },
            None => "was down".to_string(),
        }
    }

    /// Warn about a scripted fault with a `duration` that the end of the load phase (`now`)
    /// cuts short.
    pub(super) fn warn_cut(&mut self, now: Instant, e: &InForce) {
        let (Some(w), Some(due)) = (&e.written, e.undo_at) else {
            return;
        };
        if due <= now {
            return;
        }
        self.warnings.push(FaultWarning {
            what: format!(
                "scripted {} was to last {}, until {}, but the load phase ends at {}: the \
                 heal there lifted it early",
                w.text,
                format_duration(w.lasts),
                format_duration(w.at + w.lasts),
                format_duration(self.load),
            ),
            why: format!("it ended at {now}, {} early", format_span(due - now)),
        });
    }
}
