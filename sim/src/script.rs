//! The random faults of one run written back as a scripted schedule (`kafsim shrink`).
//!
//! A random fault is resolved when it fires (`leader of a random partition`, `a random
//! broker`); written as `leader:T/P` it would resolve again at fire time, and once the
//! scenario is made smaller the leader may be another broker. So each fault is written with
//! the nodes it actually hit: `broker:N`, `brokers:0,2`, `consumer:G/I`, `producer:I`, and the
//! active `controller` where the random partition put it. An isolation (one broker cut from
//! every other node) is written as a partition with a single `target`, which the script
//! resolves to the same "everyone else" when it fires.

use crate::nemesis::{Fired, Op};
use crate::scenario::{FaultAction, ScheduledFault, Target};
use kafsim_engine::time::duration_nanos;
use kafsim_engine::{Duration, NodeId};

/// The random faults of a run as scheduled faults, in firing order. `target_of` names the node
/// a fault hit as a scenario target; a fault that hit a node without one (none today) is left
/// out, and the caller's reproduction check will notice.
pub fn schedule_of(
    fired: &[Fired],
    target_of: &dyn Fn(NodeId) -> Option<Target>,
) -> Vec<ScheduledFault> {
    fired
        .iter()
        .filter_map(|f| {
            Some(ScheduledFault {
                at: Duration::from_nanos(f.at.as_nanos()),
                action: action_of(&f.op, target_of)?,
                undo_after: f.undo_after,
                line: 0,
            })
        })
        .collect()
}

/// One target for a set of nodes: a single node's own, or `brokers:a,b` for several brokers.
fn one_target(nodes: &[NodeId], target_of: &dyn Fn(NodeId) -> Option<Target>) -> Option<Target> {
    match nodes {
        [n] => target_of(*n),
        _ => {
            let mut ids = Vec::new();
            for n in nodes {
                match target_of(*n)? {
                    Target::Broker(i) => ids.push(i),
                    _ => return None,
                }
            }
            ids.sort_unstable();
            ids.dedup();
            Some(Target::Brokers(ids))
        }
    }
}

fn group(nodes: &[NodeId], target_of: &dyn Fn(NodeId) -> Option<Target>) -> Option<Vec<Target>> {
    nodes.iter().map(|n| target_of(*n)).collect()
}

fn action_of(op: &Op, target_of: &dyn Fn(NodeId) -> Option<Target>) -> Option<FaultAction> {
    let one = |nodes: &[NodeId]| one_target(nodes, target_of);
    Some(match op {
        Op::Crash(nodes) => match one(nodes)? {
            t @ Target::Consumer { .. } => FaultAction::ConsumerCrash(t),
            t @ Target::Producer(_) => FaultAction::ProducerCrash(t),
            t => FaultAction::Crash(t),
        },
        Op::PowerLoss { nodes, tear } => FaultAction::PowerLoss {
            target: one(nodes)?,
            tear: *tear,
        },
        Op::Pause(nodes) => FaultAction::Pause(one(nodes)?),
        Op::Partition(groups) => {
            let groups: Vec<Vec<Target>> = groups
                .iter()
                .map(|g| group(g, target_of))
                .collect::<Option<_>>()?;
            // The nemesis isolates a broker as [victim] | [everyone else]: a single target
            // says the same and stays true if the scenario is made smaller.
            let isolation = groups.len() == 2
                && groups[0].len() == 1
                && matches!(groups[0][0], Target::Broker(_))
                && groups[1]
                    .iter()
                    .any(|t| matches!(t, Target::Consumer { .. } | Target::Producer(_)));
            FaultAction::Partition {
                groups: if isolation {
                    vec![groups[0].clone()]
                } else {
                    groups
                },
                one_way: false,
            }
        }
        Op::PartitionOneWay(from, to) => FaultAction::Partition {
            groups: vec![group(from, target_of)?, group(to, target_of)?],
            one_way: true,
        },
        // A bridge cuts `a` from `b`; the bridge node, in neither group, reaches both.
        Op::Bridge { a, bridge, b } => {
            let keep = |v: &[NodeId]| -> Vec<NodeId> {
                v.iter().copied().filter(|n| n != bridge).collect()
            };
            FaultAction::Partition {
                groups: vec![group(&keep(a), target_of)?, group(&keep(b), target_of)?],
                one_way: false,
            }
        }
        Op::SlowLink { nodes, latency } => FaultAction::SlowLink {
            target: one(nodes)?,
            latency: *latency,
        },
        Op::SlowDisk { nodes, factor } => FaultAction::SlowDisk {
            target: one(nodes)?,
            factor: *factor,
        },
        Op::Slowdown { nodes, factor } => FaultAction::ConsumerSlowdown {
            target: one(nodes)?,
            factor: *factor,
        },
        // Undo operations are not random faults; their entry's `duration` says when.
        Op::Restart(_) | Op::Resume(_) | Op::Heal | Op::Lift(_) => return None,
        Op::AddPartitions { topic, count } => FaultAction::AddPartitions {
            topic: topic.clone(),
            count: *count,
        },
    })
}

/// A duration as a scenario file writes it, exactly: whole seconds, milliseconds or
/// microseconds when that is exact, else seconds with nine decimals ("2.345678901s").
pub fn duration_text(d: Duration) -> String {
    let nanos = duration_nanos(d);
    if nanos == 0 {
        "0s".to_string()
    } else if nanos.is_multiple_of(1_000_000_000) {
        format!("{}s", nanos / 1_000_000_000)
    } else if nanos.is_multiple_of(1_000_000) {
        format!("{}ms", nanos / 1_000_000)
    } else if nanos.is_multiple_of(1_000) {
        format!("{}us", nanos / 1_000)
    } else {
        format!("{}ns", nanos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::parse_duration;
    use kafsim_engine::Instant;

    fn target_of(n: NodeId) -> Option<Target> {
        match n.0 {
            0 => Some(Target::Controller),
            2..=4 => Some(Target::Broker(n.0 - 2)),
            5 => Some(Target::Consumer {
                group: "g".into(),
                member: 0,
            }),
            6 => Some(Target::Producer(0)),
            _ => None,
        }
    }

    #[test]
    fn random_faults_become_concrete_targets() {
        let fired = vec![
            Fired {
                at: Instant::from_nanos(2_345_678_901),
                op: Op::Crash(vec![NodeId(3)]),
                undo_after: Some(Duration::from_millis(4_000)),
            },
            Fired {
                at: Instant::from_millis(5_000),
                op: Op::Partition(vec![
                    vec![NodeId(4)],
                    vec![NodeId(2), NodeId(3), NodeId(0), NodeId(5), NodeId(6)],
                ]),
                undo_after: Some(Duration::from_secs(2)),
            },
            Fired {
                at: Instant::from_millis(6_000),
                op: Op::PowerLoss {
                    nodes: vec![NodeId(4), NodeId(2)],
                    tear: true,
                },
                undo_after: None,
            },
            Fired {
                at: Instant::from_millis(7_000),
                op: Op::Crash(vec![NodeId(5)]),
                undo_after: None,
            },
            // A node without a target is left out.
            Fired {
                at: Instant::from_millis(8_000),
                op: Op::Pause(vec![NodeId(9)]),
                undo_after: None,
            },
        ];
        let s = schedule_of(&fired, &target_of);
        assert_eq!(s.len(), 4);
        assert_eq!(s[0].action, FaultAction::Crash(Target::Broker(1)));
        assert_eq!(s[0].at, Duration::from_nanos(2_345_678_901));
        assert_eq!(s[0].undo_after, Some(Duration::from_secs(4)));
        assert_eq!(
            s[1].action,
            FaultAction::Partition {
                groups: vec![vec![Target::Broker(2)]],
                one_way: false
            }
        );
        assert_eq!(
            s[2].action,
            FaultAction::PowerLoss {
                target: Target::Brokers(vec![0, 2]),
                tear: true
            }
        );
        assert!(matches!(s[3].action, FaultAction::ConsumerCrash(_)));
    }

    #[test]
    fn durations_are_written_exactly() {
        for nanos in [
            1,
            1_000,
            2_000_000,
            3_000_000_000,
            2_345_678_901,
            59_999_999_999,
        ] {
            let d = Duration::from_nanos(nanos);
            assert_eq!(parse_duration(&duration_text(d)), Ok(d), "{nanos}");
        }
        assert_eq!(duration_text(Duration::from_millis(1500)), "1500ms");
    }
}
