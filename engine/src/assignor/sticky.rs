//! The sticky assignor of KIP-54 (Java's `StickyAssignor` general algorithm, as ported by
//! kafka-python 3.0.12's `StickyAssignmentExecutor`; sarama >= 1.24.0 and librdkafka run ports
//! of the same algorithm).
//!
//! Goals, in order: (1) balance: member partition counts differ by at most one, or no member
//! with 2+ fewer partitions could take one from a fuller member; (2) stickiness: as many
//! partitions as possible stay with the member that owned them in the previous generation.
//!
//! Outline (each step a method below, named as in kafka-python):
//! 1. Rebuild the current ownership from what members report (newest generation wins; the
//!    owner of the generation before becomes the partition's *previous* owner).
//! 2. Order the partitions for reassignment: by how few members can take them, or, when every
//!    member subscribes to the same topics, by repeatedly taking one partition from the member
//!    that owns the most.
//! 3. Keep every partition its owner still subscribes to; give each other partition to the
//!    member with the fewest partitions (ties: smallest id) that can take it.
//! 4. Move partitions from members with 2+ more than another candidate until balanced, and keep
//!    the result only if it is better balanced than before (unless starting from nothing).
//!
//! Where kafka-python picks from a Python set (arbitrary but hash-seed dependent order), this
//! port picks the smallest topic-partition; the golden cases are those on which every
//! hash seed and member order agreed. Where kafka-python would raise (moving a partition back
//! to a previous owner that cannot take it now) this port skips that shortcut and falls back to
//! the ordinary rebalancing step.

use super::sticky_movements::{Member, Movements, Tp};
use super::{Assignment, Group};
use std::collections::{BTreeMap, BTreeSet};

/// Sticky assignment of `group`, members reporting their previous ownership with the given
/// generations (id -> generation; every member of the group is present).
pub fn assign(group: &Group, generations: &BTreeMap<String, i32>) -> Assignment {
    let index = Index::new(group);
    let reports = index.reports(group, generations);
    let owned = run(&index, group, &reports);
    index.to_assignment(&owned)
}

/// Runs the executor and returns each member's final partitions (by member index).
pub(crate) fn run(index: &Index, group: &Group, reports: &[Report]) -> Vec<Vec<Tp>> {
    if group.members.is_empty() {
        return Vec::new();
    }
    let mut executor = Executor::new(index, group, reports);
    executor.perform_initial_assignment();
    executor.balance();
    executor.final_assignment()
}

/// Topic names and member ids by index: topic index order is name order, member index order
/// is id order, so tuple order on indices is the order kafka-python sorts names in.
pub(crate) struct Index<'a> {
    pub(crate) topics: Vec<&'a str>,
    pub(crate) members: Vec<&'a str>,
}

/// What one member reports: the partitions it owned, in the order it sent them (partitions of
/// unknown topics or beyond the partition count dropped), and its generation.
pub(crate) struct Report {
    pub(crate) partitions: Vec<Tp>,
    /// Whether it reported any partition at all, known or not (decides "fresh assignment").
    pub(crate) reported_any: bool,
    pub(crate) generation: i32,
}

impl<'a> Index<'a> {
    pub(crate) fn new(group: &Group<'a>) -> Index<'a> {
        Index {
            topics: group.topics.keys().map(String::as_str).collect(),
            members: group.members.iter().map(|(id, _)| *id).collect(),
        }
    }

    fn topic(&self, name: &str) -> Option<u32> {
        self.topics.binary_search(&name).ok().map(|i| i as u32)
    }

    pub(crate) fn reports(
        &self,
        group: &Group,
        generations: &BTreeMap<String, i32>,
    ) -> Vec<Report> {
        let report = |member: &str| {
            let generation = generations.get(member).copied().unwrap_or(-1);
            let mut report = Report {
                partitions: Vec::new(),
                reported_any: false,
                generation,
            };
            let Some(owned) = group.previous.get(member) else {
                return report;
            };
            for (topic, partitions) in owned.iter() {
                report.reported_any |= !partitions.is_empty();
                let Some(t) = self.topic(topic) else { continue };
                let count = group.partition_count(topic);
                report
                    .partitions
                    .extend(partitions.iter().filter(|&&p| p < count).map(|&p| (t, p)));
            }
            report
        };
        self.members.iter().map(|m| report(m)).collect()
    }

    pub(crate) fn to_assignment(&self, owned: &[Vec<Tp>]) -> Assignment {
        let mut out = Assignment::new();
        for (member, partitions) in owned.iter().enumerate() {
            let topics = out.entry(self.members[member].to_string()).or_default();
            for &(t, p) in partitions {
                topics
                    .entry(self.topics[t as usize].to_string())
                    .or_default()
                    .push(p);
            }
        }
        out
    }
}

/// kafka-python's `StickyAssignmentExecutor`, on indices. `current` has dict semantics:
/// members whose assignment cannot change are taken out during balancing.
struct Executor {
    /// Per member: subscribed topic indices, in the order sent.
    subscriptions: Vec<Vec<u32>>,
    current: BTreeMap<Member, Vec<Tp>>,
    /// Partitions whose owner in the generation before the newest differs: that owner.
    previous: BTreeMap<Tp, Member>,
    owner: BTreeMap<Tp, Member>,
    fresh: bool,
    /// Every partition of every topic, with the members that subscribe to it.
    potential_consumers: BTreeMap<Tp, Vec<Member>>,
    potential_partitions: Vec<Vec<Tp>>,
    potential_set: Vec<BTreeSet<Tp>>,
    /// (partition count, member) of the members taking part, ascending.
    sorted_members: BTreeSet<(usize, Member)>,
    sorted_partitions: Vec<Tp>,
    unassigned: Vec<Tp>,
    revocation_required: bool,
    movements: Movements,
}

impl Executor {
    fn new(index: &Index, group: &Group, reports: &[Report]) -> Executor {
        let subscriptions: Vec<Vec<u32>> = group
            .members
            .iter()
            .map(|(_, topics)| topics.iter().filter_map(|t| index.topic(t)).collect())
            .collect();
        let mut executor = Executor {
            subscriptions,
            current: BTreeMap::new(),
            previous: BTreeMap::new(),
            owner: BTreeMap::new(),
            fresh: false,
            potential_consumers: BTreeMap::new(),
            potential_partitions: vec![Vec::new(); index.members.len()],
            potential_set: vec![BTreeSet::new(); index.members.len()],
            sorted_members: BTreeSet::new(),
            sorted_partitions: Vec::new(),
            unassigned: Vec::new(),
            revocation_required: false,
            movements: Movements::default(),
        };
        executor.init_current_assignments(reports);
        executor.init_potentials(index, group);
        executor
    }

    /// Newest generation wins a partition; the one before it is remembered as previous owner.
    /// Two members claiming one partition in the same generation: the first (by id) keeps it,
    /// except for generation 0 where kafka-python lets the later one overwrite.
    fn init_current_assignments(&mut self, reports: &[Report]) {
        let mut order: Vec<Tp> = Vec::new();
        let mut claims: BTreeMap<Tp, BTreeMap<i32, Member>> = BTreeMap::new();
        for (member, report) in reports.iter().enumerate() {
            for &tp in &report.partitions {
                let by_generation = claims.entry(tp).or_insert_with(|| {
                    order.push(tp);
                    BTreeMap::new()
                });
                let generation = report.generation;
                if generation != 0 && by_generation.contains_key(&generation) {
                    continue;
                }
                by_generation.insert(generation, member);
            }
        }
        for tp in order {
            let mut newest_first = claims[&tp].iter().rev();
            let (_, &owner) = newest_first.next().expect("sticky: claim without owner");
            self.current.entry(owner).or_default().push(tp);
            if let Some((_, &before)) = newest_first.next() {
                self.previous.insert(tp, before);
            }
        }
        self.fresh = !reports.iter().any(|r| r.reported_any);
        for (&member, partitions) in &self.current {
            for &tp in partitions {
                self.owner.insert(tp, member);
            }
        }
    }

    fn init_potentials(&mut self, index: &Index, group: &Group) {
        for (t, name) in index.topics.iter().enumerate() {
            for p in 0..group.partition_count(name) {
                self.potential_consumers.insert((t as u32, p), Vec::new());
            }
        }
        for member in 0..index.members.len() {
            for &t in &self.subscriptions[member] {
                for p in 0..group.partition_count(index.topics[t as usize]) {
                    self.potential_partitions[member].push((t, p));
                    self.potential_set[member].insert((t, p));
                    self.potential_consumers
                        .get_mut(&(t, p))
                        .expect("sticky: topic")
                        .push(member);
                }
            }
            self.current.entry(member).or_default();
        }
    }

    fn perform_initial_assignment(&mut self) {
        self.populate_sorted_partitions();
        self.populate_partitions_to_reassign();
    }

    fn subscriptions_identical(&self) -> bool {
        all_equal(self.potential_consumers.values()) && all_equal(self.potential_partitions.iter())
    }

    fn populate_sorted_partitions(&mut self) {
        let mut by_potential: Vec<Tp> = self.potential_consumers.keys().copied().collect();
        by_potential.sort_by_key(|tp| (self.potential_consumers[tp].len(), *tp));
        if self.fresh || !self.subscriptions_identical() {
            self.sorted_partitions = by_potential;
            return;
        }
        // Identical subscriptions: take partitions round-robin from the members that own the
        // most, preferring ones that changed owner last generation.
        let mut assignments = self.current.clone();
        let mut sorted: BTreeSet<(usize, Member)> = assignments
            .iter()
            .map(|(&m, parts)| (parts.len(), m))
            .collect();
        let mut taken = BTreeSet::new();
        while let Some((_, member)) = sorted.pop_last() {
            let remaining = assignments.get_mut(&member).expect("sticky: member");
            let moved_before = remaining
                .iter()
                .filter(|tp| self.previous.contains_key(tp))
                .min()
                .copied();
            let next = match moved_before {
                Some(tp) => {
                    remove_first(remaining, tp);
                    Some(tp)
                }
                None => remaining.pop(),
            };
            if let Some(tp) = next {
                self.sorted_partitions.push(tp);
                taken.insert(tp);
                sorted.insert((remaining.len(), member));
            }
        }
        let rest = by_potential.into_iter().filter(|tp| !taken.contains(tp));
        self.sorted_partitions.extend(rest);
    }

    /// Keeps owned partitions whose topic the owner still subscribes to; everything else is
    /// left to assign.
    fn populate_partitions_to_reassign(&mut self) {
        self.unassigned = self.sorted_partitions.clone();
        let members: Vec<Member> = self.current.keys().copied().collect();
        for member in members {
            let partitions = self.current[&member].clone();
            for tp in partitions {
                if self.subscriptions[member].contains(&tp.0) {
                    remove_first(&mut self.unassigned, tp);
                } else {
                    self.revocation_required = true;
                    remove_first(self.current.get_mut(&member).expect("sticky: member"), tp);
                    self.owner.remove(&tp);
                }
            }
        }
    }

    fn balance(&mut self) {
        self.sorted_members = self
            .current
            .iter()
            .map(|(&m, parts)| (parts.len(), m))
            .collect();
        let initializing = match self.sorted_members.last() {
            None => true,
            Some(&(len, _)) => len == 0,
        };
        for tp in self.unassigned.clone() {
            if !self.potential_consumers[&tp].is_empty() {
                self.assign_partition(tp);
            }
        }
        let fixed_partitions: Vec<Tp> = self
            .potential_consumers
            .iter()
            .filter(|(_, c)| c.len() < 2)
            .map(|(tp, _)| *tp)
            .collect();
        for tp in fixed_partitions {
            remove_first(&mut self.sorted_partitions, tp);
            remove_first(&mut self.unassigned, tp);
        }
        let fixed = self.take_out_fixed_members();
        let before = self.current.clone();
        let owner_before = self.owner.clone();
        if !self.revocation_required {
            self.perform_reassignments(&self.unassigned.clone());
        }
        let performed = self.perform_reassignments(&self.sorted_partitions.clone());
        if !initializing && performed && balance_score(&self.current) >= balance_score(&before) {
            self.current = before;
            self.owner = owner_before;
        }
        for (member, partitions) in fixed {
            self.sorted_members.insert((partitions.len(), member));
            self.current.insert(member, partitions);
        }
    }

    /// Members that own all they can take, none of it movable, sit out the balancing.
    fn take_out_fixed_members(&mut self) -> BTreeMap<Member, Vec<Tp>> {
        let mut fixed = BTreeMap::new();
        for member in 0..self.potential_partitions.len() {
            if self.can_member_participate(member) {
                continue;
            }
            let partitions = self.current.remove(&member).expect("sticky: member");
            self.sorted_members.remove(&(partitions.len(), member));
            fixed.insert(member, partitions);
        }
        fixed
    }

    fn can_member_participate(&self, member: Member) -> bool {
        let partitions = &self.current[&member];
        let max = self.potential_partitions[member].len();
        assert!(
            partitions.len() <= max,
            "sticky: member {member} holds more than it can"
        );
        partitions.len() < max
            || partitions
                .iter()
                .any(|tp| self.potential_consumers[tp].len() >= 2)
    }

    fn len_of(&self, member: Member) -> usize {
        self.current.get(&member).map_or(0, Vec::len)
    }

    /// To the member with the fewest partitions (then smallest id) that can take it.
    fn assign_partition(&mut self, tp: Tp) {
        let member = self
            .sorted_members
            .iter()
            .map(|&(_, m)| m)
            .find(|&m| self.potential_set[m].contains(&tp));
        let Some(member) = member else { return };
        self.sorted_members.remove(&(self.len_of(member), member));
        self.current
            .get_mut(&member)
            .expect("sticky: member")
            .push(tp);
        self.owner.insert(tp, member);
        self.sorted_members.insert((self.len_of(member), member));
    }

    fn is_balanced(&self) -> bool {
        let (Some(&(min, _)), Some(&(max, _))) =
            (self.sorted_members.first(), self.sorted_members.last())
        else {
            return true;
        };
        if min + 1 >= max {
            return true;
        }
        for &(count, member) in &self.sorted_members {
            if count == self.potential_partitions[member].len() {
                continue;
            }
            for tp in &self.potential_partitions[member] {
                let owner = self.owner[tp];
                if owner != member
                    && self.current.contains_key(&owner)
                    && count < self.len_of(owner)
                {
                    return false;
                }
            }
        }
        true
    }

    /// Moves partitions towards members with fewer until balanced; true if anything moved.
    fn perform_reassignments(&mut self, partitions: &[Tp]) -> bool {
        let members = self.potential_partitions.len();
        let passes_max = 100 + 4 * (partitions.len() + 1) * (members + 1);
        let mut performed = false;
        for pass in 0.. {
            assert!(
                pass <= passes_max,
                "sticky: reassignment did not converge in {passes_max} passes"
            );
            let mut modified = false;
            for &tp in partitions {
                if self.is_balanced() {
                    break;
                }
                if self.try_move(tp) {
                    performed = true;
                    modified = true;
                }
            }
            if !modified {
                break;
            }
        }
        performed
    }

    /// One step of the balancing loop for `tp`: back to its previous owner if that one has 2+
    /// fewer, else to the emptiest candidate if some candidate has 2+ fewer.
    fn try_move(&mut self, tp: Tp) -> bool {
        let owner = *self
            .owner
            .get(&tp)
            .unwrap_or_else(|| panic!("sticky: {tp:?} has no owner"));
        let owner_len = self.len_of(owner);
        if let Some(&previous) = self.previous.get(&tp) {
            let eligible =
                self.current.contains_key(&previous) && self.potential_set[previous].contains(&tp);
            if eligible && owner_len > self.len_of(previous) + 1 {
                self.reassign_partition_to(tp, previous);
                return true;
            }
        }
        let better = self.potential_consumers[&tp]
            .iter()
            .any(|&other| owner_len > self.len_of(other) + 1);
        if !better {
            return false;
        }
        let new = self
            .sorted_members
            .iter()
            .map(|&(_, m)| m)
            .find(|&m| self.potential_set[m].contains(&tp));
        self.reassign_partition_to(
            tp,
            new.expect("sticky: no member can take a movable partition"),
        );
        true
    }

    fn reassign_partition_to(&mut self, tp: Tp, new: Member) {
        let old = self.owner[&tp];
        let moved = self.movements.partition_to_move(tp, old, new);
        self.move_partition(moved, new);
    }

    fn move_partition(&mut self, tp: Tp, new: Member) {
        let old = self.owner[&tp];
        assert!(
            self.current.contains_key(&new),
            "sticky: moving {tp:?} to fixed member {new}"
        );
        self.sorted_members.remove(&(self.len_of(old), old));
        self.sorted_members.remove(&(self.len_of(new), new));
        self.movements.record(tp, old, new);
        remove_first(self.current.get_mut(&old).expect("sticky: old owner"), tp);
        self.current
            .get_mut(&new)
            .expect("sticky: new owner")
            .push(tp);
        self.owner.insert(tp, new);
        self.sorted_members.insert((self.len_of(new), new));
        self.sorted_members.insert((self.len_of(old), old));
    }

    fn final_assignment(&self) -> Vec<Vec<Tp>> {
        (0..self.potential_partitions.len())
            .map(|m| self.current.get(&m).cloned().unwrap_or_default())
            .collect()
    }
}

/// Sum over all member pairs of the difference of their partition counts; 0 is perfect.
fn balance_score(assignment: &BTreeMap<Member, Vec<Tp>>) -> usize {
    let sizes: Vec<usize> = assignment.values().map(Vec::len).collect();
    let mut score = 0;
    for (i, a) in sizes.iter().enumerate() {
        score += sizes[i + 1..].iter().map(|b| a.abs_diff(*b)).sum::<usize>();
    }
    score
}

fn all_equal<'a, T: PartialEq + 'a>(mut lists: impl Iterator<Item = &'a Vec<T>>) -> bool {
    let Some(first) = lists.next() else {
        return true;
    };
    lists.all(|list| list == first)
}

fn remove_first(list: &mut Vec<Tp>, tp: Tp) {
    if let Some(at) = list.iter().position(|x| *x == tp) {
        list.remove(at);
    }
}
