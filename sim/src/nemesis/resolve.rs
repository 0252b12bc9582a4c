//! Scripted faults' targets resolved against the cluster as it is when the fault fires
//! (`leader:T/P`, `follower:T/P`, `controller`, groups of a partition): apart from the
//! nemesis's schedule because it reads only the [`Resolver`].

use super::{Op, Resolver};
use crate::scenario::{FaultAction, Target};
use kafsim_engine::NodeId;

/// Every node of the run (brokers, controller, consumers, producers) except `inside`: the
/// other side of a partition that isolates `inside`.
pub(super) fn everyone_but(inside: &[NodeId], r: &dyn Resolver) -> Vec<NodeId> {
    let mut rest: Vec<NodeId> = r
        .brokers()
        .into_iter()
        .filter(|n| !inside.contains(n))
        .collect();
    rest.extend(r.controller().filter(|n| !inside.contains(n)));
    rest.extend(r.consumers().into_iter().filter(|n| !inside.contains(n)));
    rest.extend(r.producers().into_iter().filter(|n| !inside.contains(n)));
    rest
}

/// Resolve every target of a scripted action now.
pub(super) fn resolve_action(action: &FaultAction, r: &dyn Resolver) -> Option<Op> {
    let nodes = |t: &Target| resolve(t, r);
    let non_empty = |v: Vec<NodeId>| if v.is_empty() { None } else { Some(v) };
    Some(match action {
        FaultAction::Crash(t) | FaultAction::ConsumerCrash(t) | FaultAction::ProducerCrash(t) => {
            Op::Crash(non_empty(nodes(t))?)
        }
        FaultAction::Restart(t) => Op::Restart(non_empty(nodes(t))?),
        FaultAction::PowerLoss { target, tear } => Op::PowerLoss {
            nodes: non_empty(nodes(target))?,
            tear: *tear,
        },
        FaultAction::Pause(t) => Op::Pause(non_empty(nodes(t))?),
        FaultAction::Resume(t) => Op::Resume(non_empty(nodes(t))?),
        FaultAction::ProducerPartition(t) => {
            let inside = non_empty(nodes(t))?;
            Op::Partition(vec![inside.clone(), everyone_but(&inside, r)])
        }
        FaultAction::Partition { groups, one_way } => {
            let mut resolved: Vec<Vec<NodeId>> = groups
                .iter()
                .map(|g| g.iter().flat_map(nodes).collect())
                .collect();
            if resolved.len() == 1 {
                // A single group is isolated from every other node of the run.
                let rest = everyone_but(&resolved[0], r);
                resolved.push(rest);
            }
            if *one_way {
                let from = resolved[0].clone();
                let to: Vec<NodeId> = resolved[1..].iter().flatten().copied().collect();
                Op::PartitionOneWay(from, to)
            } else {
                Op::Partition(resolved)
            }
        }
        FaultAction::Heal => Op::Heal,
        FaultAction::SlowLink { target, latency } => Op::SlowLink {
            nodes: non_empty(nodes(target))?,
            latency: *latency,
        },
        FaultAction::SlowDisk { target, factor } => Op::SlowDisk {
            nodes: non_empty(nodes(target))?,
            factor: *factor,
        },
        FaultAction::ConsumerSlowdown { target, factor } => Op::Slowdown {
            nodes: non_empty(nodes(target))?,
            factor: *factor,
        },
        FaultAction::AddPartitions { topic, count } => Op::AddPartitions {
            topic: topic.clone(),
            count: *count,
        },
    })
}

/// The nodes a target names now (empty if, say, a partition has no leader at this moment).
pub fn resolve(target: &Target, r: &dyn Resolver) -> Vec<NodeId> {
    match target {
        Target::Broker(i) => r.broker(*i).into_iter().collect(),
        Target::Brokers(ids) => ids.iter().filter_map(|i| r.broker(*i)).collect(),
        Target::AllBrokers => r.brokers(),
        Target::Leader { topic, partition } => r.leader(topic, *partition).into_iter().collect(),
        Target::Follower { topic, partition } => {
            r.followers(topic, *partition).into_iter().take(1).collect()
        }
        Target::Controller => r.controller().into_iter().collect(),
        Target::Consumer { group, member } => r.consumer(group, *member).into_iter().collect(),
        Target::Producer(i) => r.producer(*i).into_iter().collect(),
        Target::Database { group } => r.database(group).into_iter().collect(),
    }
}
