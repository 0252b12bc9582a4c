//! The cooperative-sticky assignor of KIP-429 (Java's `CooperativeStickyAssignor`, as ported
//! by kafka-python 3.0.12; sarama >= 1.60.1 and librdkafka run the same protocol).
//!
//! With the cooperative protocol members keep consuming their partitions across a rebalance
//! instead of revoking everything first. So a partition must never be handed to a new owner
//! while the old owner may still be consuming it: the leader computes the sticky target
//! assignment, then withholds every partition whose target owner differs from its current
//! owner. The current owner sees the partition missing from its assignment, revokes it and
//! rejoins; in the follow-up rebalance the partition is unowned and goes to its target.
//!
//! Example: `C0 = {0,2,4}`, `C1 = {1,3,5}`, `C2` joins. The sticky target moves 4 and 5 to C2,
//! so this round gives `C0 = {0,2}`, `C1 = {1,3}`, `C2 = {}`; the next round gives C2 `{4,5}`.

use super::sticky::{self, Index};
use super::sticky_movements::{Member, Tp};
use super::{Assignment, Group};
use std::collections::BTreeMap;

/// This round's assignment: the sticky target minus the partitions still owned by another
/// member.
pub fn assign(group: &Group, generations: &BTreeMap<String, i32>) -> Assignment {
    let index = Index::new(group);
    let reports = index.reports(group, generations);
    let target = sticky::run(&index, group, &reports);
    // Who owns each partition now. Should two members claim one, the last by id counts, as in
    // kafka-python (a later dict write wins).
    let mut owned_by: BTreeMap<Tp, Member> = BTreeMap::new();
    for (member, report) in reports.iter().enumerate() {
        for &tp in &report.partitions {
            owned_by.insert(tp, member);
        }
    }
    let this_round: Vec<Vec<Tp>> = target
        .iter()
        .enumerate()
        .map(|(member, partitions)| {
            let free = |tp: &&Tp| match owned_by.get(tp) {
                None => true,
                Some(&owner) => owner == member,
            };
            partitions.iter().filter(free).copied().collect()
        })
        .collect();
    index.to_assignment(&this_round)
}
