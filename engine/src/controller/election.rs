//! Partition leader election (Kafka's `PartitionLeaderElectionAlgorithms`): the first live
//! replica in assignment order that is in the ISR; with `unclean.leader.election.enable`, if
//! no ISR member is live, the first live replica at all, which may lack committed records.

use crate::node::NodeId;
use crate::protocol::PartitionState;

/// The outcome of an election.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Elected {
    Clean(NodeId),
    Unclean(NodeId),
    /// No eligible replica: the partition goes offline.
    None,
}

/// Elect a leader for `p` among replicas for which `live` holds. `out_of_isr` is the
/// test-only break that ignores the ISR while claiming a clean election.
pub fn elect(
    p: &PartitionState,
    live: &dyn Fn(NodeId) -> bool,
    unclean: bool,
    out_of_isr: bool,
) -> Elected {
    let clean = p
        .replicas
        .iter()
        .copied()
        .find(|r| live(*r) && (out_of_isr || p.isr.contains(r)));
    if let Some(r) = clean {
        return Elected::Clean(r);
    }
    if unclean {
        if let Some(r) = p.replicas.iter().copied().find(|r| live(*r)) {
            return Elected::Unclean(r);
        }
    }
    Elected::None
}

/// Apply an election to `p`: bump the leader and partition epochs; a clean leader keeps the
/// live ISR, an unclean one starts a new ISR of itself; an offline partition keeps its last
/// ISR member so that only it can become leader cleanly (ZooKeeper-era and KRaft behaviour).
pub fn apply(p: &mut PartitionState, e: Elected, live: &dyn Fn(NodeId) -> bool) {
    apply_with(p, e, live, true)
}

/// [`apply`], optionally without the leader-epoch bump (test-only break).
pub fn apply_with(p: &mut PartitionState, e: Elected, live: &dyn Fn(NodeId) -> bool, bump: bool) {
    if bump {
        p.leader_epoch += 1;
    }
    p.partition_epoch += 1;
    match e {
        Elected::Clean(l) => {
            p.leader = Some(l);
            p.isr.retain(|r| live(*r));
            if !p.isr.contains(&l) {
                p.isr.push(l);
            }
        }
        Elected::Unclean(l) => {
            p.leader = Some(l);
            p.isr = vec![l];
        }
        Elected::None => {
            p.leader = None;
            let last = p.isr.clone();
            p.isr.retain(|r| live(*r));
            if p.isr.is_empty() {
                p.isr = last.into_iter().take(1).collect();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{TopicId, TopicPartition};

    fn state(isr: &[u32]) -> PartitionState {
        PartitionState {
            partition: TopicPartition::new(TopicId(0), 0),
            leader: Some(NodeId(1)),
            leader_epoch: 3,
            isr: isr.iter().map(|&n| NodeId(n)).collect(),
            partition_epoch: 7,
            replicas: vec![NodeId(1), NodeId(2), NodeId(3)],
        }
    }

    #[test]
    fn clean_election_prefers_live_isr_in_assignment_order() {
        let p = state(&[1, 3]);
        let live = |n: NodeId| n != NodeId(1);
        assert_eq!(elect(&p, &live, false, false), Elected::Clean(NodeId(3)));
        let p = state(&[1]);
        assert_eq!(elect(&p, &live, false, false), Elected::None);
        assert_eq!(elect(&p, &live, true, false), Elected::Unclean(NodeId(2)));
        assert_eq!(elect(&p, &live, false, true), Elected::Clean(NodeId(2)));
    }

    #[test]
    fn apply_bumps_epochs_and_shapes_isr() {
        let live = |n: NodeId| n != NodeId(1);
        let mut p = state(&[1]);
        apply(&mut p, Elected::None, &live);
        assert_eq!((p.leader, p.leader_epoch, p.partition_epoch), (None, 4, 8));
        assert_eq!(p.isr, vec![NodeId(1)]);
        apply(&mut p, Elected::Unclean(NodeId(2)), &live);
        assert_eq!(p.isr, vec![NodeId(2)]);
        let mut p = state(&[1, 2, 3]);
        apply(&mut p, Elected::Clean(NodeId(2)), &live);
        assert_eq!(p.isr, vec![NodeId(2), NodeId(3)]);
    }
}
